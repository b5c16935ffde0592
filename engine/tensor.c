#include "tensor.h"

/* Product of ne[0..SH_MAX_DIMS); 0 if any ne is not positive or the product
 * does not fit int64. Unused dims are 1 by convention. */
uint64_t sh_tensor_nelements(const sh_tensor *t) {
    if (!t) return 0;
    uint64_t n = 1;
    for (int i = 0; i < SH_MAX_DIMS; i++) {
        if (t->ne[i] <= 0) return 0;
        uint64_t e = (uint64_t)t->ne[i];
        if (e > (uint64_t)INT64_MAX / n) return 0;
        n *= e;
    }
    return n;
}
