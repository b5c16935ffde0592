/* libFuzzer target for the safetensors reader. Each input is parsed twice:
 *   1. as a whole safetensors image;
 *   2. as the JSON header of an image built around it (correct length prefix,
 *      then 256 data bytes), so mutations reach the per-tensor checks without
 *      first having to get the length prefix right.
 * Every byte of every tensor is read, so a data pointer outside the image
 * shows up under ASan; the image buffers are exactly sized heap copies. */
#include "hf.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define DATA_BYTES 256

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Opens img[0..size) and checks the invariants the reader promises. */
static void run_one(const uint8_t *img, size_t size) {
    sh_hf *h = NULL;
    if (sh_hf_open_safetensors_memory(img, size, &h) != SHOAL_OK) {
        /* failure: no handle, and a message */
        if (h != NULL || shoal_last_error()[0] == 0) __builtin_trap();
        return;
    }
    volatile uint8_t sink = 0;
    for (int i = 0; i < sh_hf_n_tensors(h); i++) {
        const sh_tensor *t = sh_hf_tensor(h, i);
        if (!t || sh_hf_find_tensor(h, t->name) != t) __builtin_trap();
        if (t->n_dims < 1 || t->n_dims > SH_MAX_DIMS) __builtin_trap();
        if (t->dtype != SH_F32 && t->dtype != SH_F16 && t->dtype != SH_BF16) __builtin_trap();
        uint64_t n = t->dtype == SH_F32 ? 4 : 2;
        for (int d = 0; d < SH_MAX_DIMS; d++) {
            if (t->ne[d] < 0) __builtin_trap();
            n *= (uint64_t)t->ne[d]; /* bounded: the reader caps the product at 2^53 */
        }
        if (n != t->nbytes) __builtin_trap();
        const uint8_t *p = t->data;
        if (t->nbytes && (p < img || t->nbytes > size || p > img + size - t->nbytes)) __builtin_trap();
        for (uint64_t b = 0; b < t->nbytes; b++) sink ^= p[b];
        sink ^= (uint8_t)strlen(t->name);
    }
    (void)sink;
    sh_hf_close(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *img = malloc(size ? size : 1);
    if (!img) return 0;
    if (size) memcpy(img, data, size);
    run_one(img, size);
    free(img);

    size_t n = 8 + size + DATA_BYTES;
    img = malloc(n);
    if (!img) return 0;
    for (int i = 0; i < 8; i++) img[i] = (uint8_t)((uint64_t)size >> (8 * i));
    if (size) memcpy(img + 8, data, size);
    for (size_t i = 0; i < DATA_BYTES; i++) img[8 + size + i] = (uint8_t)i;
    run_one(img, n);
    free(img);
    return 0;
}
