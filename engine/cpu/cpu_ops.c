/* Row-wise CPU ops: get_rows, norm, rope, kv_write, act, pool.
 *
 * Each op splits its call into items of one row of one group (pool: one
 * group), flattened over all groups. Per-row results depend only on that
 * row's data and the group's parameters, so grouping and threading never
 * change them. Portable C: these ops move little data next to GEMM.
 */
#include <math.h>
#include <stdlib.h>

#include "cpu.h"
#include "error.h"

/* Fills start[0..n] with running sums of items(g[i]); start must hold
 * n + 1 entries. */
#define SH_FILL_START(start, n, g, ITEMS)                        \
    do {                                                         \
        (start)[0] = 0;                                          \
        for (int i_ = 0; i_ < (n); i_++) {                       \
            int64_t items_ = (ITEMS);                            \
            (start)[i_ + 1] = (start)[i_] + items_;              \
        }                                                        \
    } while (0)

/* A start table on the stack for small calls, else on the heap. */
typedef struct sh_starts {
    int64_t small[65];
    int64_t *p;
} sh_starts;

static shoal_status sh_starts_init(sh_starts *s, int n, const char *op) {
    s->p = s->small;
    if (n + 1 > 65) {
        s->p = malloc((size_t)(n + 1) * sizeof *s->p);
        if (!s->p) return sh_fail(SHOAL_ERR_NOMEM, "%s: out of memory", op);
    }
    return SHOAL_OK;
}

static void sh_starts_free(sh_starts *s) {
    if (s->p != s->small) free(s->p);
}

typedef struct sh_rows_job {
    const void *g;        /* the group array */
    int n;
    const int64_t *start; /* (n + 1) */
    sh_cpu_backend *cb;
} sh_rows_job;

/* Fixed-order sum of n floats in 8 lanes. */
static float sh_sum8(const float *v, int n, float shift, int square) {
    float lane[8] = {0};
    for (int i = 0; i < n; i++) {
        float d = v[i] - shift;
        lane[i & 7] += square ? d * d : d;
    }
    return ((lane[0] + lane[4]) + (lane[2] + lane[6])) + ((lane[1] + lane[5]) + (lane[3] + lane[7]));
}

/* ---- get_rows: out[r] (+)= dequant(w[ids[r]]) --------------------------- */

static void sh_get_rows_task(void *ctx, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const sh_rows_job *job = ctx;
    const sh_get_rows_group *gs = job->g;
    for (int64_t it = begin; it < end; it++) {
        int gi = sh_cpu_find_group(job->start, job->n, it);
        const sh_get_rows_group *g = &gs[gi];
        int r = (int)(it - job->start[gi]);
        int dt = sh_cpu_dt_index(g->w.dtype);
        int d = g->w.n_in;
        const uint8_t *row = (const uint8_t *)g->w.data + (size_t)g->ids[r] * sh_cpu_row_bytes(dt, d);
        float *out = g->out.data + (int64_t)r * g->out.stride;
        float blk[32];
        for (int64_t b = 0; b * 32 < d; b++) {
            int nn = d - (int)(b * 32) < 32 ? d - (int)(b * 32) : 32;
            sh_cpu_dequant_block(dt, row, b, nn, blk);
            float *o = out + b * 32;
            for (int i = 0; i < nn; i++) o[i] = g->accumulate ? o[i] + blk[i] : blk[i];
        }
    }
}

shoal_status sh_cpu_get_rows(sh_backend *be, int n, const sh_get_rows_group *g) {
    sh_cpu_backend *cb = (sh_cpu_backend *)be;
    for (int i = 0; i < n; i++)
        for (int r = 0; r < g[i].out.rows; r++)
            if (g[i].ids[r] < 0 || g[i].ids[r] >= g[i].w.n_out)
                return sh_fail(SHOAL_ERR_INVALID_ARG, "get_rows: group %d: ids[%d] = %d out of range [0, %d)", i, r,
                               (int)g[i].ids[r], g[i].w.n_out);
    sh_starts s;
    SH_TRY(sh_starts_init(&s, n, "get_rows"));
    SH_FILL_START(s.p, n, g, g[i_].out.rows);
    sh_rows_job job = {g, n, s.p, cb};
    sh_cpu_pool_run(cb->pool, s.p[n], 4, sh_get_rows_task, &job);
    sh_starts_free(&s);
    return SHOAL_OK;
}

/* ---- norm: x += add; out = norm(x) * gamma + beta ---------------------- */

static void sh_norm_task(void *ctx, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const sh_rows_job *job = ctx;
    const sh_norm_group *gs = job->g;
    for (int64_t it = begin; it < end; it++) {
        int gi = sh_cpu_find_group(job->start, job->n, it);
        const sh_norm_group *g = &gs[gi];
        int r = (int)(it - job->start[gi]);
        int n = g->x.cols;
        float *x = g->x.data + (int64_t)r * g->x.stride;
        float *out = g->out.data + (int64_t)r * g->out.stride;
        if (g->add.data) {
            const float *a = g->add.data + (int64_t)r * g->add.stride;
            for (int c = 0; c < n; c++) x[c] += a[c];
        }
        float mean = 0.0f, scale;
        if (g->kind == SH_NORM_LAYER) {
            mean = sh_sum8(x, n, 0.0f, 0) / (float)n;
            float var = sh_sum8(x, n, mean, 1) / (float)n;
            scale = 1.0f / sqrtf(var + g->eps);
        } else {
            float ms = sh_sum8(x, n, 0.0f, 1) / (float)n;
            scale = 1.0f / sqrtf(ms + g->eps);
        }
        for (int c = 0; c < n; c++) {
            float v = (x[c] - mean) * scale;
            if (g->gamma) v *= g->gamma[c];
            if (g->beta && g->kind == SH_NORM_LAYER) v += g->beta[c];
            out[c] = v;
        }
    }
}

shoal_status sh_cpu_norm(sh_backend *be, int n, const sh_norm_group *g) {
    sh_cpu_backend *cb = (sh_cpu_backend *)be;
    sh_starts s;
    SH_TRY(sh_starts_init(&s, n, "norm"));
    SH_FILL_START(s.p, n, g, g[i_].x.rows);
    sh_rows_job job = {g, n, s.p, cb};
    sh_cpu_pool_run(cb->pool, s.p[n], 4, sh_norm_task, &job);
    sh_starts_free(&s);
    return SHOAL_OK;
}

/* ---- rope: rotate pairs of each head by p * theta^(-2i / n_rot) -------- */

static void sh_rope_task(void *ctx, int64_t begin, int64_t end, int thread) {
    const sh_rows_job *job = ctx;
    const sh_rope_group *gs = job->g;
    float *cs = job->cb->scratch[thread].buf; /* (n_rot): cos, sin per pair */
    for (int64_t it = begin; it < end; it++) {
        int gi = sh_cpu_find_group(job->start, job->n, it);
        const sh_rope_group *g = &gs[gi];
        int r = (int)(it - job->start[gi]);
        int half = g->n_rot / 2;
        double p = (double)g->pos[r], lt = log((double)g->theta);
        for (int i = 0; i < half; i++) {
            /* angle in double, rounded once to f32 cos/sin */
            double a = p * exp(-(2.0 * i / g->n_rot) * lt);
            cs[2 * i] = (float)cos(a);
            cs[2 * i + 1] = (float)sin(a);
        }
        float *row = g->x.data + (int64_t)r * g->x.stride;
        for (int h = 0; h < g->n_head; h++) {
            float *v = row + (int64_t)h * g->head_dim;
            for (int i = 0; i < half; i++) {
                int i0 = g->mode == SH_ROPE_NEOX ? i : 2 * i;
                int i1 = g->mode == SH_ROPE_NEOX ? i + half : 2 * i + 1;
                float c = cs[2 * i], sn = cs[2 * i + 1];
                float x0 = v[i0], x1 = v[i1];
                v[i0] = x0 * c - x1 * sn;
                v[i1] = x0 * sn + x1 * c;
            }
        }
    }
}

shoal_status sh_cpu_rope(sh_backend *be, int n, const sh_rope_group *g) {
    sh_cpu_backend *cb = (sh_cpu_backend *)be;
    int max_rot = 0;
    for (int i = 0; i < n; i++) {
        if (g[i].n_rot > max_rot) max_rot = g[i].n_rot;
        for (int r = 0; r < g[i].x.rows; r++)
            if (g[i].pos[r] < 0)
                return sh_fail(SHOAL_ERR_INVALID_ARG, "rope: group %d: pos[%d] = %d is negative", i, r, (int)g[i].pos[r]);
    }
    SH_TRY(sh_cpu_scratch_reserve(cb, (size_t)max_rot));
    sh_starts s;
    SH_TRY(sh_starts_init(&s, n, "rope"));
    SH_FILL_START(s.p, n, g, g[i_].x.rows);
    sh_rows_job job = {g, n, s.p, cb};
    sh_cpu_pool_run(cb->pool, s.p[n], 4, sh_rope_task, &job);
    sh_starts_free(&s);
    return SHOAL_OK;
}

/* ---- kv_write: K, V rows -> their paged slots --------------------------- */

/* Address of (kv k|v, position p, dim 0) of ref's layer; see sh_kv_ref. */
static inline uint8_t *sh_kv_addr(const sh_kv_ref *ref, int kv, int p) {
    size_t es = ref->dtype == SH_F16 ? 2 : 4;
    int64_t blk = ref->block_table[p / SH_KV_BLOCK];
    int t = p % SH_KV_BLOCK;
    return (uint8_t *)ref->pool + (uint64_t)blk * ref->block_bytes +
           ((((uint64_t)ref->layer * 2 + (uint64_t)kv) * SH_KV_BLOCK + (uint64_t)t) * (uint64_t)ref->kv_dim) * es;
}

static void sh_kv_store(const sh_kv_ref *ref, uint8_t *dst, const float *src) {
    if (ref->dtype == SH_F16) {
        for (int c = 0; c < ref->kv_dim; c++) {
            uint16_t h = sh_cpu_f32_f16(src[c]);
            memcpy(dst + (size_t)c * 2, &h, 2);
        }
    } else {
        memcpy(dst, src, (size_t)ref->kv_dim * 4);
    }
}

void sh_cpu_kv_put(const sh_kv_ref *ref, int kv, int32_t slot, const float *src) {
    const size_t es = ref->dtype == SH_F16 ? 2 : 4;
    const int t = slot % SH_KV_BLOCK;
    uint8_t *dst = (uint8_t *)ref->pool + (uint64_t)(slot / SH_KV_BLOCK) * ref->block_bytes +
                   ((((uint64_t)ref->layer * 2 + (uint64_t)kv) * SH_KV_BLOCK + (uint64_t)t) * (uint64_t)ref->kv_dim) * es;
    sh_kv_store(ref, dst, src);
}

static void sh_kv_write_task(void *ctx, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const sh_rows_job *job = ctx;
    const sh_kv_write_group *gs = job->g;
    for (int64_t it = begin; it < end; it++) {
        int gi = sh_cpu_find_group(job->start, job->n, it);
        const sh_kv_write_group *g = &gs[gi];
        int r = (int)(it - job->start[gi]);
        int p = g->pos[r];
        sh_kv_store(&g->kv, sh_kv_addr(&g->kv, 0, p), g->k.data + (int64_t)r * g->k.stride);
        sh_kv_store(&g->kv, sh_kv_addr(&g->kv, 1, p), g->v.data + (int64_t)r * g->v.stride);
    }
}

shoal_status sh_cpu_kv_write(sh_backend *be, int n, const sh_kv_write_group *g) {
    sh_cpu_backend *cb = (sh_cpu_backend *)be;
    for (int i = 0; i < n; i++)
        for (int r = 0; r < g[i].k.rows; r++) {
            int p = g[i].pos[r];
            if (p < 0) return sh_fail(SHOAL_ERR_INVALID_ARG, "kv_write: group %d: pos[%d] = %d is negative", i, r, p);
            if (g[i].kv.block_table[p / SH_KV_BLOCK] < 0)
                return sh_fail(SHOAL_ERR_INVALID_ARG, "kv_write: group %d: block_table[%d] is negative", i,
                               p / SH_KV_BLOCK);
        }
    /* fused RoPE: q and k rotated in place first, as SH_OP_ROPE does */
    int n_rope = 0;
    for (int i = 0; i < n; i++)
        if (g[i].rope.n_rot > 0) n_rope += g[i].q.data ? 2 : 1;
    if (n_rope > 0) {
        sh_rope_group *rg = malloc((size_t)n_rope * sizeof *rg);
        if (!rg) return sh_fail(SHOAL_ERR_NOMEM, "kv_write: out of memory");
        int m = 0;
        for (int i = 0; i < n; i++) {
            const sh_rope_params *rp = &g[i].rope;
            if (rp->n_rot <= 0) continue;
            if (g[i].q.data)
                rg[m++] = (sh_rope_group){g[i].q, g[i].n_head, rp->head_dim, rp->n_rot, g[i].pos, rp->theta, rp->mode};
            rg[m++] = (sh_rope_group){g[i].k, g[i].kv.kv_dim / rp->head_dim, rp->head_dim, rp->n_rot, g[i].pos,
                                      rp->theta, rp->mode};
        }
        shoal_status st = sh_cpu_rope(be, m, rg);
        free(rg);
        SH_TRY(st);
    }
    sh_starts s;
    SH_TRY(sh_starts_init(&s, n, "kv_write"));
    SH_FILL_START(s.p, n, g, g[i_].k.rows);
    sh_rows_job job = {g, n, s.p, cb};
    sh_cpu_pool_run(cb->pool, s.p[n], 8, sh_kv_write_task, &job);
    sh_starts_free(&s);
    return SHOAL_OK;
}

/* ---- act: silu(a) * b, gelu(a) ------------------------------------------ */

static void sh_act_task(void *ctx, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const sh_rows_job *job = ctx;
    const sh_act_group *gs = job->g;
    for (int64_t it = begin; it < end; it++) {
        int gi = sh_cpu_find_group(job->start, job->n, it);
        const sh_act_group *g = &gs[gi];
        int r = (int)(it - job->start[gi]);
        int n = g->a.cols;
        const float *a = g->a.data + (int64_t)r * g->a.stride;
        float *out = g->out.data + (int64_t)r * g->out.stride;
        switch (g->kind) {
        case SH_ACT_SILU_MUL: {
            const float *b = g->b.data + (int64_t)r * g->b.stride;
            for (int c = 0; c < n; c++) out[c] = a[c] / (1.0f + expf(-a[c])) * b[c];
            break;
        }
        case SH_ACT_GELU_TANH:
            for (int c = 0; c < n; c++) {
                float v = a[c];
                out[c] = 0.5f * v * (1.0f + tanhf(0.79788456080286536f * (v + 0.044715f * v * v * v)));
            }
            break;
        case SH_ACT_GELU_ERF:
            for (int c = 0; c < n; c++) {
                float v = a[c];
                out[c] = 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
            }
            break;
        }
    }
}

shoal_status sh_cpu_act(sh_backend *be, int n, const sh_act_group *g) {
    sh_cpu_backend *cb = (sh_cpu_backend *)be;
    sh_starts s;
    SH_TRY(sh_starts_init(&s, n, "act"));
    SH_FILL_START(s.p, n, g, g[i_].a.rows);
    sh_rows_job job = {g, n, s.p, cb};
    sh_cpu_pool_run(cb->pool, s.p[n], 4, sh_act_task, &job);
    sh_starts_free(&s);
    return SHOAL_OK;
}

/* ---- pool: out = mean over rows; optionally out /= max(|out|_2, 1e-12) -- */

static void sh_pool_task(void *ctx, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const sh_rows_job *job = ctx;
    const sh_pool_group *gs = job->g;
    for (int64_t gi = begin; gi < end; gi++) {
        const sh_pool_group *g = &gs[gi];
        int n = g->x.cols;
        for (int c = 0; c < n; c++) g->out[c] = 0.0f;
        for (int r = 0; r < g->x.rows; r++) {
            const float *x = g->x.data + (int64_t)r * g->x.stride;
            for (int c = 0; c < n; c++) g->out[c] += x[c];
        }
        for (int c = 0; c < n; c++) g->out[c] /= (float)g->x.rows;
        if (g->normalize) {
            float nrm = sqrtf(sh_sum8(g->out, n, 0.0f, 1));
            if (nrm < 1e-12f) nrm = 1e-12f;
            for (int c = 0; c < n; c++) g->out[c] /= nrm;
        }
    }
}

shoal_status sh_cpu_pool_op(sh_backend *be, int n, const sh_pool_group *g) {
    sh_cpu_backend *cb = (sh_cpu_backend *)be;
    sh_rows_job job = {g, n, NULL, cb};
    sh_cpu_pool_run(cb->pool, n, 1, sh_pool_task, &job);
    return SHOAL_OK;
}

/* ---- argmax: index of the first maximum of each row --------------------- */

/* argmax(x[r]) = the smallest c with x[r][c] > every earlier element (a NaN
 * never wins a comparison, so it is skipped unless it stands first). */
shoal_status sh_cpu_argmax(sh_backend *be, int n, const sh_argmax_group *g) {
    (void)be;
    for (int i = 0; i < n; i++) {
        const sh_argmax_group *e = &g[i];
        for (int r = 0; r < e->x.rows; r++) {
            const float *row = e->x.data + (size_t)r * (size_t)e->x.stride;
            int32_t b = 0;
            for (int c = 1; c < e->x.cols; c++)
                if (row[c] > row[b]) b = c;
            e->out[r] = b;
        }
    }
    return SHOAL_OK;
}
