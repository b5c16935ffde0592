/* Grouped GEMM on the CPU: y (+)= x W^T + b for every group in one call.
 *
 * Work items are (group, block of up to SH_GEMM_MB rows, block of NB output
 * columns), flattened over all groups, so one call with many small groups
 * keeps every thread busy. Inside an item, rows go in register tiles of up to
 * 4 and columns in tiles of up to 4 (sh_cpu_kernels.tile): each dequantised
 * weight block is reused by every row of the tile, so prefill does not pay M
 * times the weight traffic. The per-element arithmetic does not depend on the
 * tile shape or the split (see cpu.h), only on K and the ISA.
 */
#include <stdlib.h>

#include "cpu.h"
#include "error.h"

#define SH_GEMM_MB 64 /* rows per work item */

/* ---- scalar kernels: the reference path -------------------------------- */

/* 8 float lanes in a generic vector: compilers lower it to whatever SIMD
 * the base target has (SSE2 on x86-64, NEON on aarch64). */
typedef float sh_v8 __attribute__((vector_size(32)));

/* out = sum_k x[k] w[k]: lane j of the accumulator sums elements 8i + j of
 * each dequantised 32-block; lanes summed pairwise at the end. */
static inline __attribute__((always_inline)) float sh_dot_scalar(int dt, const float *x, const uint8_t *wrow, int K) {
    sh_v8 acc = {0, 0, 0, 0, 0, 0, 0, 0};
    float wb[32], xb[32];
    int64_t nb = (K + 31) / 32;
    for (int64_t b = 0; b < nb; b++) {
        int n = K - (int)(b * 32) < 32 ? K - (int)(b * 32) : 32;
        sh_cpu_dequant_block(dt, wrow, b, n, wb);
        const float *xs = x + b * 32;
        if (n < 32) {
            for (int i = 0; i < 32; i++) xb[i] = i < n ? xs[i] : 0.0f;
            xs = xb;
        }
        for (int i = 0; i < 32; i += 8) {
            sh_v8 xv, wv;
            memcpy(&xv, xs + i, sizeof xv);
            memcpy(&wv, wb + i, sizeof wv);
            acc += xv * wv;
        }
    }
    return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

#define SH_SCALAR_TILE(NAME, DT)                                                              \
    static void NAME(const float *x, int64_t xs, const uint8_t *w, size_t wrow, int K,       \
                     float *out) {                                                            \
        (void)xs;                                                                             \
        (void)wrow;                                                                           \
        out[0] = sh_dot_scalar(DT, x, w, K);                                                  \
    }
SH_SCALAR_TILE(sh_tile_scalar_f32, SH_CPU_DT_F32)
SH_SCALAR_TILE(sh_tile_scalar_f16, SH_CPU_DT_F16)
SH_SCALAR_TILE(sh_tile_scalar_bf16, SH_CPU_DT_BF16)
SH_SCALAR_TILE(sh_tile_scalar_q8_0, SH_CPU_DT_Q8_0)
SH_SCALAR_TILE(sh_tile_scalar_q4_0, SH_CPU_DT_Q4_0)

/* dot = sum q[i] k[i] in 8 lanes; axpy o += p v */
static float sh_dot_kv_f32_scalar(const float *q, const float *k, int n) {
    float lane[8] = {0};
    for (int i = 0; i < n; i++) lane[i & 7] += q[i] * k[i];
    return ((lane[0] + lane[4]) + (lane[2] + lane[6])) + ((lane[1] + lane[5]) + (lane[3] + lane[7]));
}
static float sh_dot_kv_f16_scalar(const float *q, const uint16_t *k, int n) {
    float lane[8] = {0};
    for (int i = 0; i < n; i++) lane[i & 7] += q[i] * sh_cpu_f16_f32(k[i]);
    return ((lane[0] + lane[4]) + (lane[2] + lane[6])) + ((lane[1] + lane[5]) + (lane[3] + lane[7]));
}
static void sh_axpy_kv_f32_scalar(float *o, float p, const float *v, int n) {
    for (int i = 0; i < n; i++) o[i] += p * v[i];
}
static void sh_axpy_kv_f16_scalar(float *o, float p, const uint16_t *v, int n) {
    for (int i = 0; i < n; i++) o[i] += p * sh_cpu_f16_f32(v[i]);
}

void sh_cpu_kernels_scalar(sh_cpu_kernels *k) {
    memset(k, 0, sizeof *k);
    k->tile[SH_CPU_DT_F32][0][0] = sh_tile_scalar_f32;
    k->tile[SH_CPU_DT_F16][0][0] = sh_tile_scalar_f16;
    k->tile[SH_CPU_DT_BF16][0][0] = sh_tile_scalar_bf16;
    k->tile[SH_CPU_DT_Q8_0][0][0] = sh_tile_scalar_q8_0;
    k->tile[SH_CPU_DT_Q4_0][0][0] = sh_tile_scalar_q4_0;
    k->rmax = 1;
    k->cmax[0] = 1;
    k->dot_kv_f32 = sh_dot_kv_f32_scalar;
    k->dot_kv_f16 = sh_dot_kv_f16_scalar;
    k->axpy_kv_f32 = sh_axpy_kv_f32_scalar;
    k->axpy_kv_f16 = sh_axpy_kv_f16_scalar;
}

int sh_cpu_dt_index(sh_dtype dt) {
    switch (dt) {
    case SH_F32: return SH_CPU_DT_F32;
    case SH_F16: return SH_CPU_DT_F16;
    case SH_BF16: return SH_CPU_DT_BF16;
    case SH_Q8_0: return SH_CPU_DT_Q8_0;
    case SH_Q4_0: return SH_CPU_DT_Q4_0;
    }
    return -1;
}

/* ---- the driver -------------------------------------------------------- */

typedef struct sh_gemm_job {
    const sh_gemm_group *g;
    int n;
    const int64_t *start; /* (n + 1) first item of each group */
    int nb;               /* columns per item */
    const sh_cpu_kernels *k;
} sh_gemm_job;

/* Rows [m0, m1) x columns [n0, n1) of one group. */
static void sh_gemm_block(const sh_cpu_kernels *k, const sh_gemm_group *g, int m0, int m1, int n0,
                          int n1) {
    int dt = sh_cpu_dt_index(g->w.dtype);
    int K = g->w.n_in;
    size_t wrow = sh_cpu_row_bytes(dt, K);
    const uint8_t *w = g->w.data;
    float out[SH_CPU_TILE_R * SH_CPU_TILE_C];
    for (int m = m0; m < m1; m += k->rmax) {
        int R = m1 - m < k->rmax ? m1 - m : k->rmax;
        int C = k->cmax[R - 1];
        const float *x = g->x.data + (int64_t)m * g->x.stride;
        for (int n = n0; n < n1; n += C) {
            int c = n1 - n < C ? n1 - n : C;
            k->tile[dt][R - 1][c - 1](x, g->x.stride, w + (size_t)n * wrow, wrow, K, out);
            for (int r = 0; r < R; r++) {
                float *y = g->y.data + (int64_t)(m + r) * g->y.stride + n;
                for (int j = 0; j < c; j++) {
                    float v = out[r * c + j];
                    if (g->bias) v += g->bias[n + j];
                    y[j] = g->accumulate ? y[j] + v : v;
                }
            }
        }
    }
}

static void sh_gemm_task(void *ctx, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const sh_gemm_job *job = ctx;
    for (int64_t it = begin; it < end; it++) {
        int gi = sh_cpu_find_group(job->start, job->n, it);
        const sh_gemm_group *g = &job->g[gi];
        int64_t local = it - job->start[gi];
        int64_t ncb = (g->w.n_out + job->nb - 1) / job->nb;
        int mb = (int)(local / ncb), cb = (int)(local % ncb);
        int m0 = mb * SH_GEMM_MB, n0 = cb * job->nb;
        int m1 = m0 + SH_GEMM_MB < g->x.rows ? m0 + SH_GEMM_MB : g->x.rows;
        int n1 = n0 + job->nb < g->w.n_out ? n0 + job->nb : g->w.n_out;
        sh_gemm_block(job->k, g, m0, m1, n0, n1);
    }
}

shoal_status sh_cpu_gemm(sh_backend *be, int n, const sh_gemm_group *g) {
    sh_cpu_backend *cb = (sh_cpu_backend *)be;
    int64_t small[65], *start = small;
    if (n + 1 > 65) {
        start = malloc((size_t)(n + 1) * sizeof *start);
        if (!start) return sh_fail(SHOAL_ERR_NOMEM, "gemm: out of memory");
    }
    /* columns per item: about 8 items per thread over the whole call, a
     * multiple of 16 in [16, 512] (512 keeps an item's weights in L2) */
    int64_t cols = 0;
    for (int i = 0; i < n; i++) cols += (int64_t)((g[i].x.rows + SH_GEMM_MB - 1) / SH_GEMM_MB) * g[i].w.n_out;
    int64_t nb = cb->n_threads > 1 ? cols / (8 * cb->n_threads) / 16 * 16 : 512;
    if (nb < 16) nb = 16;
    if (nb > 512) nb = 512;
    start[0] = 0;
    for (int i = 0; i < n; i++) {
        int64_t items = (int64_t)((g[i].x.rows + SH_GEMM_MB - 1) / SH_GEMM_MB) * ((g[i].w.n_out + nb - 1) / nb);
        start[i + 1] = start[i] + items;
    }
    sh_gemm_job job = {g, n, start, (int)nb, sh_cpu_kernels_for(cb->isa)};
    sh_cpu_pool_run(cb->pool, start[n], 1, sh_gemm_task, &job);
    if (start != small) free(start);
    return SHOAL_OK;
}
