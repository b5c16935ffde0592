/* Internal error helpers: set the thread's last-error message and return. */
#ifndef SH_ERROR_H
#define SH_ERROR_H

#include "shoal.h"

#if defined(__GNUC__)
#define SH_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define SH_PRINTF(a, b)
#endif

/* Sets the calling thread's last-error message (printf style) and returns s,
 * so callers write `return sh_fail(SHOAL_ERR_FORMAT, "bad magic in %s", p);`. */
shoal_status sh_fail(shoal_status s, const char *fmt, ...) SH_PRINTF(2, 3);

/* Prefixes the current message: "context: <old message>". Returns s. */
shoal_status sh_fail_prefix(shoal_status s, const char *fmt, ...) SH_PRINTF(2, 3);

/* Overflow-checked size arithmetic: return 0 on overflow, 1 otherwise. */
static inline int sh_mul_ok(uint64_t a, uint64_t b, uint64_t *out) {
    if (a != 0 && b > UINT64_MAX / a) return 0;
    *out = a * b;
    return 1;
}
static inline int sh_add_ok(uint64_t a, uint64_t b, uint64_t *out) {
    if (b > UINT64_MAX - a) return 0;
    *out = a + b;
    return 1;
}

#define SH_TRY(expr)                          \
    do {                                      \
        shoal_status sh_try_s_ = (expr);      \
        if (sh_try_s_ != SHOAL_OK) return sh_try_s_; \
    } while (0)

#endif
