#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char sh_errbuf[1024];

shoal_status sh_fail(shoal_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sh_errbuf, sizeof sh_errbuf, fmt, ap);
    va_end(ap);
    return s;
}

shoal_status sh_fail_prefix(shoal_status s, const char *fmt, ...) {
    char old[sizeof sh_errbuf];
    memcpy(old, sh_errbuf, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(sh_errbuf, sizeof sh_errbuf, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof sh_errbuf)
        if (snprintf(sh_errbuf + n, sizeof sh_errbuf - (size_t)n, ": %s", old) < 0) sh_errbuf[n] = 0;
    return s;
}

const char *shoal_last_error(void) { return sh_errbuf; }

const char *shoal_status_str(shoal_status s) {
    switch (s) {
    case SHOAL_OK: return "ok";
    case SHOAL_ERR_INVALID_ARG: return "invalid argument";
    case SHOAL_ERR_IO: return "i/o error";
    case SHOAL_ERR_FORMAT: return "malformed input";
    case SHOAL_ERR_UNSUPPORTED: return "unsupported";
    case SHOAL_ERR_NOMEM: return "out of memory";
    case SHOAL_ERR_DEVICE: return "device error";
    case SHOAL_ERR_BUSY: return "busy";
    case SHOAL_ERR_NOT_FOUND: return "not found";
    case SHOAL_ERR_RANGE: return "out of range";
    case SHOAL_ERR_CANCELLED: return "cancelled";
    }
    return "unknown status";
}
