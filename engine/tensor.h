/* A named tensor as read from a model file. */
#ifndef SH_TENSOR_H
#define SH_TENSOR_H

#include "dtype.h"

#define SH_MAX_DIMS 4

typedef struct sh_tensor {
    char *name;            /* owned, NUL-terminated */
    sh_dtype dtype;
    int n_dims;            /* 1..4 */
    int64_t ne[SH_MAX_DIMS]; /* ne[0] is the innermost (contiguous) dimension,
                              * as in GGUF; unused dims are 1. A matrix of
                              * n_out rows of n_in elements has ne = {n_in, n_out}. */
    const void *data;      /* points into the file mapping (or owned memory) */
    uint64_t nbytes;       /* bytes of data */
} sh_tensor;

/* Element count (product of ne); 0 on overflow. */
uint64_t sh_tensor_nelements(const sh_tensor *t);

#endif
