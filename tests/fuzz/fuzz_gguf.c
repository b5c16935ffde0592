/* libFuzzer target for the GGUF reader: parses the input as an in-memory
 * image, then touches every key, value, array element and tensor byte through
 * the accessors and checks the invariants the reader promises. The image is
 * an exactly sized heap copy, so any read past it shows up under ASan. */
#include "gguf.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint64_t sink;

static void touch(const void *p, uint64_t n) {
    const uint8_t *b = p;
    uint64_t s = 0;
    for (uint64_t i = 0; i < n; i++) s += b[i];
    sink += s;
}

static void check_kv(const sh_gguf *g, const uint8_t *img, size_t size) {
    for (int i = 0; i < sh_gguf_n_kv(g); i++) {
        const char *key = sh_gguf_key(g, i);
        if (!key || !*key || sh_gguf_find_key(g, key) != i) __builtin_trap();
        sh_gguf_type t = sh_gguf_kv_type(g, i);
        if ((int)t < 0 || t > SH_GGUF_FLOAT64) __builtin_trap();
        int64_t iv;
        double fv;
        const char *s;
        uint64_t len, n;
        sh_gguf_type et;
        if (sh_gguf_get_int(g, key, &iv) == SHOAL_OK) sink += (uint64_t)iv;
        if (sh_gguf_get_float(g, key, &fv) == SHOAL_OK) sink += (uint64_t)(fv == fv);
        if (sh_gguf_get_str(g, key, &s, &len) == SHOAL_OK) {
            if (t != SH_GGUF_STRING) __builtin_trap();
            if ((const uint8_t *)s < img || len > size || (const uint8_t *)s > img + size - len) __builtin_trap();
            touch(s, len);
        }
        if (sh_gguf_get_arr(g, key, &et, &n) != SHOAL_OK) {
            if (t == SH_GGUF_ARRAY) __builtin_trap();
            continue;
        }
        if (t != SH_GGUF_ARRAY || n > size) __builtin_trap();
        for (uint64_t e = 0; e < n; e++) {
            s = sh_gguf_arr_str(g, key, e, &len);
            if ((s != NULL) != (et == SH_GGUF_STRING)) __builtin_trap();
            if (s) {
                if ((const uint8_t *)s < img || len > size || (const uint8_t *)s > img + size - len) __builtin_trap();
                touch(s, len);
            }
            sink += (uint64_t)sh_gguf_arr_int(g, key, e);
            fv = sh_gguf_arr_float(g, key, e);
            sink += (uint64_t)(fv == fv);
        }
        /* one past the end is refused */
        if (sh_gguf_arr_str(g, key, n, &len) != NULL) __builtin_trap();
    }
}

static void check_tensors(const sh_gguf *g, const uint8_t *img, size_t size) {
    for (int i = 0; i < sh_gguf_n_tensors(g); i++) {
        const sh_tensor *t = sh_gguf_tensor(g, i);
        if (!t || !t->name || sh_gguf_find_tensor(g, t->name) != t) __builtin_trap();
        if (t->n_dims < 1 || t->n_dims > SH_MAX_DIMS || !sh_dtype_valid((int)t->dtype)) __builtin_trap();
        uint64_t nel = sh_tensor_nelements(t);
        if (nel == 0 || t->nbytes != sh_dtype_row_bytes(t->dtype, nel)) __builtin_trap();
        const uint8_t *p = t->data;
        if (p < img || t->nbytes > size || p > img + size - t->nbytes) __builtin_trap();
        touch(p, t->nbytes);
        /* dequantise the first row of arbitrary bytes (bounded by the image) */
        float *row = malloc((size_t)t->ne[0] * sizeof(float));
        if (!row) __builtin_trap();
        sh_dequantize_row(t->dtype, p, row, t->ne[0]);
        sink += (uint64_t)(row[0] == row[0]);
        free(row);
    }
    if (sh_gguf_tensor(g, sh_gguf_n_tensors(g)) != NULL) __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *img = malloc(size ? size : 1);
    if (!img) return 0;
    if (size) memcpy(img, data, size);
    sh_gguf *g = NULL;
    if (sh_gguf_open_memory(img, size, &g) != SHOAL_OK) {
        if (g != NULL || shoal_last_error()[0] == 0) __builtin_trap();
        free(img);
        return 0;
    }
    uint32_t v = sh_gguf_version(g);
    if (v != 2 && v != 3) __builtin_trap();
    check_kv(g, img, size);
    check_tensors(g, img, size);
    sh_gguf_close(g);
    free(img);
    return 0;
}
