/* Attention over the paged KV pool on the CPU.
 *
 * out[i, h] = sum_j softmax_j(scale * q[i, h] . K[j, h / g]) V[j, h / g],
 * j over [0, pos0 + i] (causal) or [0, n_kv), g = n_head / n_head_kv.
 * Softmax is the stable form: p_j = exp(s_j - max s), out = sum p_j V_j / sum p_j.
 *
 * Work items are (group, head, block of SH_ATTN_RB query rows), flattened
 * over all groups; each (row, head) is computed by one thread in a fixed
 * order, so grouping and threading never change results.
 */
#include <math.h>
#include <stdlib.h>

#include "cpu.h"
#include "error.h"

#define SH_ATTN_RB 16 /* query rows per work item */

typedef struct sh_attn_job {
    const sh_attn_group *g;
    int n;
    const int64_t *start; /* (n + 1) */
    sh_cpu_backend *cb;
    const sh_cpu_kernels *k;
} sh_attn_job;

/* Address of (kv k|v, position p, head kh, dim 0) in ref's layer. */
static inline const uint8_t *sh_attn_kv(const sh_kv_ref *ref, int kv, int p, int64_t off, size_t es) {
    int64_t blk = ref->block_table[p / SH_KV_BLOCK];
    int t = p % SH_KV_BLOCK;
    return (const uint8_t *)ref->pool + (uint64_t)blk * ref->block_bytes +
           ((((uint64_t)ref->layer * 2 + (uint64_t)kv) * SH_KV_BLOCK + (uint64_t)t) * (uint64_t)ref->kv_dim +
            (uint64_t)off) * es;
}

static void sh_attn_task(void *ctx, int64_t begin, int64_t end, int thread) {
    const sh_attn_job *job = ctx;
    const sh_cpu_kernels *k = job->k;
    float *scores = job->cb->scratch[thread].buf;
    for (int64_t it = begin; it < end; it++) {
        int gi = sh_cpu_find_group(job->start, job->n, it);
        const sh_attn_group *g = &job->g[gi];
        int64_t local = it - job->start[gi];
        int nrb = (g->q.rows + SH_ATTN_RB - 1) / SH_ATTN_RB;
        int h = (int)(local / nrb), rb = (int)(local % nrb);
        int hd = g->head_dim;
        int kh = h / (g->n_head / g->n_head_kv);
        int64_t off = (int64_t)kh * hd;
        int f16 = g->kv.dtype == SH_F16;
        size_t es = f16 ? 2 : 4;
        float *o = scores + g->n_kv; /* (head_dim) accumulator */
        int r1 = (rb + 1) * SH_ATTN_RB < g->q.rows ? (rb + 1) * SH_ATTN_RB : g->q.rows;
        for (int i = rb * SH_ATTN_RB; i < r1; i++) {
            const float *q = g->q.data + (int64_t)i * g->q.stride + (int64_t)h * hd;
            int L = g->causal ? g->pos0 + i + 1 : g->n_kv;
            float mx = -INFINITY;
            for (int j = 0; j < L; j++) {
                const void *kr = sh_attn_kv(&g->kv, 0, j, off, es);
                float s = f16 ? k->dot_kv_f16(q, kr, hd) : k->dot_kv_f32(q, kr, hd);
                s *= g->scale;
                scores[j] = s;
                if (s > mx) mx = s;
            }
            float sum = 0.0f;
            for (int j = 0; j < L; j++) {
                scores[j] = expf(scores[j] - mx);
                sum += scores[j];
            }
            for (int c = 0; c < hd; c++) o[c] = 0.0f;
            for (int j = 0; j < L; j++) {
                const void *vr = sh_attn_kv(&g->kv, 1, j, off, es);
                if (f16) k->axpy_kv_f16(o, scores[j], vr, hd);
                else k->axpy_kv_f32(o, scores[j], vr, hd);
            }
            float inv = 1.0f / sum;
            float *out = g->out.data + (int64_t)i * g->out.stride + (int64_t)h * hd;
            for (int c = 0; c < hd; c++) out[c] = o[c] * inv;
        }
    }
}

shoal_status sh_cpu_attn(sh_backend *be, int n, const sh_attn_group *g) {
    sh_cpu_backend *cb = (sh_cpu_backend *)be;
    size_t need = 0;
    for (int i = 0; i < n; i++) {
        size_t s = (size_t)g[i].n_kv + (size_t)g[i].head_dim;
        if (s > need) need = s;
        for (int b = 0; b < (g[i].n_kv + SH_KV_BLOCK - 1) / SH_KV_BLOCK; b++)
            if (g[i].kv.block_table[b] < 0)
                return sh_fail(SHOAL_ERR_INVALID_ARG, "attn: group %d: block_table[%d] is negative", i, b);
    }
    SH_TRY(sh_cpu_scratch_reserve(cb, need));
    int64_t small[65], *start = small;
    if (n + 1 > 65) {
        start = malloc((size_t)(n + 1) * sizeof *start);
        if (!start) return sh_fail(SHOAL_ERR_NOMEM, "attn: out of memory");
    }
    start[0] = 0;
    for (int i = 0; i < n; i++)
        start[i + 1] = start[i] + (int64_t)g[i].n_head * ((g[i].q.rows + SH_ATTN_RB - 1) / SH_ATTN_RB);
    sh_attn_job job = {g, n, start, cb, sh_cpu_kernels_for(cb->isa)};
    sh_cpu_pool_run(cb->pool, start[n], 1, sh_attn_task, &job);
    if (start != small) free(start);
    return SHOAL_OK;
}
