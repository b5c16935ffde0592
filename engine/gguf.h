/* GGUF v2/v3 reader: mmap, metadata, tensor infos. Every offset, size and
 * count is checked against the file; a malformed field is SHOAL_ERR_FORMAT. */
#ifndef SH_GGUF_H
#define SH_GGUF_H

#include "shoal.h"
#include "tensor.h"

typedef enum sh_gguf_type {
    SH_GGUF_UINT8 = 0, SH_GGUF_INT8 = 1, SH_GGUF_UINT16 = 2, SH_GGUF_INT16 = 3,
    SH_GGUF_UINT32 = 4, SH_GGUF_INT32 = 5, SH_GGUF_FLOAT32 = 6, SH_GGUF_BOOL = 7,
    SH_GGUF_STRING = 8, SH_GGUF_ARRAY = 9, SH_GGUF_UINT64 = 10, SH_GGUF_INT64 = 11,
    SH_GGUF_FLOAT64 = 12,
} sh_gguf_type;

typedef struct sh_gguf sh_gguf;

/* Opens and maps path. On failure *out is NULL and the message names the file
 * and the field. */
shoal_status sh_gguf_open(const char *path, sh_gguf **out);
/* Parses an in-memory image (used by the fuzzer; the buffer must outlive g). */
shoal_status sh_gguf_open_memory(const void *data, size_t size, sh_gguf **out);
void sh_gguf_close(sh_gguf *g);

uint32_t sh_gguf_version(const sh_gguf *g);

/* Tensors: data points into the mapping, aligned to general.alignment. */
int sh_gguf_n_tensors(const sh_gguf *g);
const sh_tensor *sh_gguf_tensor(const sh_gguf *g, int i);
const sh_tensor *sh_gguf_find_tensor(const sh_gguf *g, const char *name); /* NULL if absent */

/* Metadata. Lookups return SHOAL_ERR_NOT_FOUND (message set) when the key is
 * absent and SHOAL_ERR_FORMAT when its type does not fit. */
int sh_gguf_n_kv(const sh_gguf *g);
const char *sh_gguf_key(const sh_gguf *g, int i);
int sh_gguf_find_key(const sh_gguf *g, const char *key); /* -1 if absent */
sh_gguf_type sh_gguf_kv_type(const sh_gguf *g, int i);

/* Any integer or bool type. */
shoal_status sh_gguf_get_int(const sh_gguf *g, const char *key, int64_t *out);
/* f32, f64, or any integer type. */
shoal_status sh_gguf_get_float(const sh_gguf *g, const char *key, double *out);
/* String value: *s points into the mapping, NOT NUL-terminated; *len bytes. */
shoal_status sh_gguf_get_str(const sh_gguf *g, const char *key, const char **s, uint64_t *len);
/* Array: element type and count. */
shoal_status sh_gguf_get_arr(const sh_gguf *g, const char *key, sh_gguf_type *elem, uint64_t *n);
/* Array elements (i < n; the caller checked the element type). */
const char *sh_gguf_arr_str(const sh_gguf *g, const char *key, uint64_t i, uint64_t *len);
int64_t sh_gguf_arr_int(const sh_gguf *g, const char *key, uint64_t i);
double sh_gguf_arr_float(const sh_gguf *g, const char *key, uint64_t i);

#endif
