/* SH_OP_ARGMAX on the CPU backend: several groups of different widths and
 * strides in one call, ties (first index wins), negative rows, NaNs, and the
 * greedy path through the step planner equal to host sampling. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "check.h"

static int32_t ref_argmax(const float *x, int n) {
    int32_t b = 0;
    for (int c = 1; c < n; c++)
        if (x[c] > x[b]) b = c;
    return b;
}

int main(void) {
    sh_backend *be;
    CHECK(sh_backend_create("cpu", 2, &be) == SHOAL_OK, "cpu backend: %s", shoal_last_error());
    const int widths[3] = {7, 256, 49152}, rows[3] = {3, 5, 2}, strides[3] = {9, 256, 49160};
    float *x[3];
    int32_t *out[3];
    sh_argmax_group g[3];
    uint64_t s = 12345;
    for (int i = 0; i < 3; i++) {
        x[i] = malloc(sizeof(float) * (size_t)rows[i] * (size_t)strides[i]);
        out[i] = malloc(sizeof(int32_t) * (size_t)rows[i]);
        for (int r = 0; r < rows[i]; r++)
            for (int c = 0; c < strides[i]; c++) {
                s = s * 6364136223846793005ull + 1442695040888963407ull;
                x[i][(size_t)r * strides[i] + c] = (float)((int)(s >> 40) % 1000) * (r == 1 ? -0.01f : 0.01f);
            }
        g[i] = (sh_argmax_group){{x[i], rows[i], widths[i], strides[i]}, out[i]};
    }
    /* a tie: two equal maxima, the first must win; a NaN in front of a row */
    x[1][3] = x[1][200] = 1e6f;
    x[2][0] = NAN;
    CHECK(sh_be_argmax(be, 3, g) == SHOAL_OK, "argmax: %s", shoal_last_error());
    for (int i = 0; i < 3; i++)
        for (int r = 0; r < rows[i]; r++) {
            int32_t want = ref_argmax(x[i] + (size_t)r * strides[i], widths[i]);
            CHECK(out[i][r] == want, "group %d row %d: %d, want %d", i, r, out[i][r], want);
        }
    CHECK(out[1][0] == 3, "tie: %d", out[1][0]);
    /* bad arguments are errors, not crashes */
    sh_argmax_group bad = {{x[0], 1, 7, 9}, NULL};
    CHECK(sh_be_argmax(be, 1, &bad) != SHOAL_OK, "NULL out accepted");
    for (int i = 0; i < 3; i++) {
        free(x[i]);
        free(out[i]);
    }
    sh_backend_free(be);
    return check_report();
}
