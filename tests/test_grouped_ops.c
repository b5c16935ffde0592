/* Grouped ops: every compute op called ONCE with groups from several
 * "models" of different widths and weight dtypes (f16, q8_0, q4_0, bf16,
 * f32) must give, group by group, bitwise the results of separate
 * single-group calls (tests/op_ref.h: opref_grouped_run_all). On the CPU
 * backend this holds for every ISA and thread count, and the results are
 * also identical across thread counts. */
#include <stdio.h>

#include "check.h"
#include "op_ref.h"
#include "cpu/cpu.h"

int main(void) {
    for (int isa = 0; isa <= (int)sh_cpu_isa_best(); isa++) {
        uint64_t first = 0;
        static const int threads[] = {1, 2, 3, 8};
        for (int ti = 0; ti < 4; ti++) {
            sh_backend *be = NULL;
            shoal_status s = sh_cpu_backend_create_isa(threads[ti], (sh_cpu_isa)isa, &be);
            CHECK(s == SHOAL_OK, "create: %s", shoal_last_error());
            if (s != SHOAL_OK) continue;
            char lbl[64];
            snprintf(lbl, sizeof lbl, "cpu/%s/t%d", sh_cpu_isa_name((sh_cpu_isa)isa), threads[ti]);
            int f0 = check_fail_;
            uint64_t h = opref_grouped_run_all(be, lbl);
            if (ti == 0) first = h;
            CHECK(h == first, "[%s] results differ from the 1-thread run", lbl);
            printf("%s: %s (hash %016llx)\n", lbl, check_fail_ == f0 ? "ok" : "FAILED", (unsigned long long)h);
            sh_backend_free(be);
        }
    }
    return check_report();
}
