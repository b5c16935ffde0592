/* SH_OP_SAMPLE on the CPU backend: sh_sample_u per row, rows spread over the
 * pool (each row is one item; sh_sample_u is deterministic, so the split
 * does not change the ids). */
#include <stdlib.h>

#include "cpu.h"
#include "error.h"
#include "sample.h"

typedef struct sh_sample_job {
    const sh_sample_group *g;
    const int64_t *start; /* (n + 1) first flattened row of each group */
    int n;
} sh_sample_job;

static void sh_sample_task(void *ctx, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const sh_sample_job *job = ctx;
    for (int64_t it = begin; it < end; it++) {
        int gi = sh_cpu_find_group(job->start, job->n, it);
        const sh_sample_group *e = &job->g[gi];
        int r = (int)(it - job->start[gi]);
        float *row = e->x.data + (size_t)r * (size_t)e->x.stride; /* only read */
        e->out[r] = sh_sample_row(row, e->x.cols, &e->p[r]);
    }
}

shoal_status sh_cpu_sample(sh_backend *be, int n, const sh_sample_group *g) {
    sh_cpu_backend *cb = (sh_cpu_backend *)be;
    int64_t *start = malloc(((size_t)n + 1) * sizeof *start);
    if (!start) return sh_fail(SHOAL_ERR_NOMEM, "sample: out of memory");
    start[0] = 0;
    for (int i = 0; i < n; i++) start[i + 1] = start[i] + g[i].x.rows;
    sh_sample_job job = {g, start, n};
    sh_cpu_pool_run(cb->pool, start[n], 1, sh_sample_task, &job);
    free(start);
    return SHOAL_OK;
}
