/* CUDA backend conformance.
 *
 *  1. tests/op_ref.h on the CUDA backend: every op x dtype x shape against
 *     the double-precision reference (limit OPREF_TOL = 1e-5, normalised),
 *     once per GEMM path (auto, SIMT forced, tensor-core MMA forced), and the
 *     grouped-call == separate-calls bitwise check.
 *  2. Ragged calls compared with the CPU backend: one call mixing groups of
 *     every weight dtype, widths, M from 1 (decode) to 200 (prefill), K up to
 *     9000, strides and alignments; the same for every other op (KV pools of
 *     both dtypes in one attention call, GQA, causal and bidirectional).
 *     Limits per op, as max|gpu - cpu| / max|cpu|:
 *       gemm 1e-5 (f32 accumulation in another order; the tensor-core path
 *         multiplies exact bf16 splits, so only the order differs too),
 *       get_rows, kv_write 0 (the same conversions, bit for bit),
 *       norm, pool 1e-5 (reduction order), rope 1e-6 (cos/sin rounded
 *         from double on both; only fma contraction differs),
 *       attn 1e-5 (online softmax vs two-pass, accurate expf on both),
 *       act 2e-6 (expf/tanhf/erff: CUDA's are within 2 ulp, glibc's 1).
 *     Outputs start poisoned (NaN), so an unwritten element fails, and the
 *     padding of every view must come back unchanged.
 *  3. A step (step_begin .. step_end) of dependent ops, a chain of 60
 *     dependent kernels (with and without programmatic dependent launch,
 *     and without step graphs), steps replayed from a captured graph with
 *     fresh inputs and moved buffers, argmax against the host loop (ties,
 *     NaNs, tails), large uploads and downloads, the copy-bandwidth
 *     probe, calls with thousands
 *     of groups (descriptor staging growth) and many calls in a row (the
 *     staging ring), and device-side range errors reported by sync.
 *
 * Without a CUDA device (or a build without CUDA) it prints why and counts
 * as skipped.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "check.h"
#include "op_ref.h"

#ifdef SHOAL_WITH_CUDA
#include "../kernels/cuda/cuda_backend.h"

static sh_backend *cpu, *gpu;
static double worst[SH_OP_COUNT]; /* largest error seen per op (CPU comparisons) */

/* ---- buffers mirrored on both backends --------------------------------- */

typedef struct mbuf {
    size_t bytes;
    void *c, *g; /* cpu and gpu addresses */
} mbuf;

static void mb_new(mbuf *b, const void *init, size_t bytes) {
    b->bytes = bytes;
    b->c = opr_upload(cpu, init, bytes);
    b->g = opr_upload(gpu, init, bytes);
}

static void *mb(const mbuf *b, int on_gpu) { return on_gpu ? b->g : b->c; }

static void mb_free(mbuf *b) {
    sh_be_free(cpu, b->c);
    sh_be_free(gpu, b->g);
    memset(b, 0, sizeof *b);
}

/* A float buffer: rows x cols at offset off, stride; everything else NaN
 * (poison, kept as padding), the view filled uniformly in [lo, hi] unless
 * poison_view. */
typedef struct fview {
    mbuf m;
    int rows, cols, stride, off;
} fview;

static void fv_new(fview *v, opr_rng *r, int rows, int cols, int stride, int off, float lo, float hi,
                   int poison_view) {
    size_t n = (size_t)off + (size_t)rows * stride + 2;
    float *h = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) h[i] = NAN;
    if (!poison_view)
        for (int i = 0; i < rows; i++)
            for (int c = 0; c < cols; c++) h[(size_t)off + (size_t)i * stride + c] = opr_unif(r, lo, hi);
    mb_new(&v->m, h, n * sizeof(float));
    free(h);
    v->rows = rows;
    v->cols = cols;
    v->stride = stride;
    v->off = off;
}

static sh_view fv_view(const fview *v, int on_gpu) {
    return (sh_view){(float *)mb(&v->m, on_gpu) + v->off, v->rows, v->cols, v->stride};
}

/* Compares the gpu copy of v with the cpu copy: returns the normalised
 * error over the view (infinity if the gpu has a NaN where the cpu has
 * not); *pad_ok says whether the bytes outside the view agree bitwise. */
static double fv_compare(const fview *v, int *pad_ok) {
    size_t n = v->m.bytes / sizeof(float);
    float *c = malloc(v->m.bytes), *g = malloc(v->m.bytes);
    opr_download(cpu, c, v->m.c, v->m.bytes);
    opr_download(gpu, g, v->m.g, v->m.bytes);
    double md = 0, mr = 0;
    int pad = 1;
    for (size_t i = 0; i < n; i++) {
        int inside = 0;
        if (i >= (size_t)v->off) {
            size_t rel = i - (size_t)v->off, r = rel / (size_t)v->stride, col = rel % (size_t)v->stride;
            inside = r < (size_t)v->rows && col < (size_t)v->cols;
        }
        if (!inside) {
            pad &= memcmp(&c[i], &g[i], sizeof(float)) == 0;
            continue;
        }
        if (isnan(g[i]) != isnan(c[i])) md = INFINITY;
        if (isnan(c[i])) continue;
        double d = fabs((double)g[i] - (double)c[i]);
        if (d > md) md = d;
        if (fabs((double)c[i]) > mr) mr = fabs((double)c[i]);
    }
    free(c);
    free(g);
    *pad_ok = pad;
    return mr > 0 ? md / mr : md;
}

static int compared[SH_OP_COUNT]; /* comparisons noted per op */

static void note(sh_op op, double e) {
    if (e > worst[op]) worst[op] = e;
    compared[op]++;
}

#define OK(expr)                                                              \
    do {                                                                      \
        shoal_status ok_s_ = (expr);                                          \
        CHECK(ok_s_ == SHOAL_OK, "%s: %s", #expr, shoal_last_error());        \
    } while (0)

/* Checks one output view against the CPU with limit tol. */
static void expect_close(const char *what, int gi, const fview *v, double tol, sh_op op) {
    int pad = 1;
    double e = fv_compare(v, &pad);
    note(op, e);
    CHECK(e <= tol, "%s group %d (%dx%d): err %.3g > %.3g", what, gi, v->rows, v->cols, e, tol);
    CHECK(pad, "%s group %d: wrote outside the view", what, gi);
}

/* ---- gemm: one ragged call ---------------------------------------------- */

typedef struct gemm_case {
    sh_dtype dt;
    int n, k, m;
    int xpad, xoff, ypad, bias, acc;
    sh_gemm_xf xf; /* activation transform (the CPU backend applies the separate op) */
    sh_gemm_epi epi; /* epilogue (the CPU backend applies the separate act op) */
    int norm;        /* row norm: 0 none, 1 RMS, 2 LAYER into a view of its own; 3 RMS, 4 LAYER in place */
} gemm_case;

static void test_gemm_mixed(const char *label, const gemm_case *cs, int nc, sh_cuda_gemm_path path) {
    opr_rng r = {0x5eed0000u + (uint64_t)nc * 31u + (uint64_t)path};
    OK(sh_cuda_set_gemm_path(gpu, path));
    mbuf *w = calloc((size_t)nc, sizeof *w), *b = calloc((size_t)nc, sizeof *b);
    fview *x = calloc((size_t)nc, sizeof *x), *y = calloc((size_t)nc, sizeof *y);
    fview *x2 = calloc((size_t)nc, sizeof *x2), *yn = calloc((size_t)nc, sizeof *yn);
    mbuf *ngam = calloc((size_t)nc, sizeof *ngam), *nbet = calloc((size_t)nc, sizeof *nbet);
    mbuf *gam = calloc((size_t)nc, sizeof *gam), *w2 = calloc((size_t)nc, sizeof *w2), *b2 = calloc((size_t)nc, sizeof *b2);
    mbuf *bet = calloc((size_t)nc, sizeof *bet);
    sh_gemm_group *gc = calloc((size_t)nc, sizeof *gc), *gg = calloc((size_t)nc, sizeof *gg);
    for (int i = 0; i < nc; i++) {
        const gemm_case *c = &cs[i];
        uint8_t *wb = opr_weight_bytes(&r, c->dt, c->n, c->k);
        mb_new(&w[i], wb, opr_row_bytes(c->dt, c->k) * (size_t)c->n);
        free(wb);
        float *bias = malloc((size_t)c->n * sizeof(float));
        for (int j = 0; j < c->n; j++) bias[j] = opr_unif(&r, -1, 1);
        mb_new(&b[i], bias, (size_t)c->n * sizeof(float));
        if (c->epi == SH_EPI_SILU_PAIR) {
            wb = opr_weight_bytes(&r, c->dt, c->n, c->k);
            mb_new(&w2[i], wb, opr_row_bytes(c->dt, c->k) * (size_t)c->n);
            free(wb);
            for (int j = 0; j < c->n; j++) bias[j] = opr_unif(&r, -1, 1);
            mb_new(&b2[i], bias, (size_t)c->n * sizeof(float));
        }
        free(bias);
        fv_new(&x[i], &r, c->m, c->k, c->k + c->xpad, c->xoff, c->xf == SH_XF_NONE ? -1 : -4, c->xf == SH_XF_NONE ? 1 : 4,
               0);
        fv_new(&y[i], &r, c->m, c->n, c->n + c->ypad, 1, -1, 1, !c->acc);
        if (c->xf == SH_XF_SILU_MUL) fv_new(&x2[i], &r, c->m, c->k, c->k + 4, 0, -2, 2, 0);
        if (c->norm) {
            if (c->norm <= 2) fv_new(&yn[i], &r, c->m, c->n, c->n + 3, 2, -1, 1, 1);
            float *gm = malloc((size_t)c->n * sizeof(float));
            for (int j = 0; j < c->n; j++) gm[j] = opr_unif(&r, 0.5f, 1.5f);
            mb_new(&ngam[i], gm, (size_t)c->n * sizeof(float));
            for (int j = 0; j < c->n; j++) gm[j] = opr_unif(&r, -0.5f, 0.5f);
            mb_new(&nbet[i], gm, (size_t)c->n * sizeof(float));
            free(gm);
        }
        if (c->xf == SH_XF_RMS || c->xf == SH_XF_LN) {
            float *gm = malloc((size_t)c->k * sizeof(float));
            for (int j = 0; j < c->k; j++) gm[j] = opr_unif(&r, 0.5f, 1.5f);
            mb_new(&gam[i], gm, (size_t)c->k * sizeof(float));
            for (int j = 0; j < c->k; j++) gm[j] = opr_unif(&r, -0.5f, 0.5f);
            mb_new(&bet[i], gm, (size_t)c->k * sizeof(float));
            free(gm);
        }
        for (int on_gpu = 0; on_gpu < 2; on_gpu++) {
            sh_gemm_group *g = on_gpu ? &gg[i] : &gc[i];
            *g = (sh_gemm_group){{mb(&w[i], on_gpu), c->dt, c->n, c->k}, c->bias ? mb(&b[i], on_gpu) : NULL,
                                 fv_view(&x[i], on_gpu), fv_view(&y[i], on_gpu), c->acc};
            g->xf = c->xf;
            if (c->xf == SH_XF_RMS || c->xf == SH_XF_LN) {
                g->xf_gamma = (i & 1) ? mb(&gam[i], on_gpu) : NULL; /* NULL: gamma 1 */
                g->xf_eps = 1e-5f;
            }
            if (c->xf == SH_XF_LN) g->xf_beta = (i % 3) ? mb(&bet[i], on_gpu) : NULL; /* NULL: beta 0 */
            if (c->xf == SH_XF_SILU_MUL) g->x2 = fv_view(&x2[i], on_gpu);
            g->epi = c->epi;
            if (c->epi == SH_EPI_SILU_PAIR) {
                g->w2 = (sh_weight){mb(&w2[i], on_gpu), c->dt, c->n, c->k};
                g->bias2 = c->bias ? mb(&b2[i], on_gpu) : NULL;
            }
            if (c->norm) {
                g->norm_out = c->norm <= 2 ? fv_view(&yn[i], on_gpu) : g->y;
                g->norm_kind = c->norm % 2 ? SH_NORM_RMS : SH_NORM_LAYER;
                g->norm_gamma = (i % 3) ? mb(&ngam[i], on_gpu) : NULL; /* NULL: gamma 1 */
                g->norm_beta = (i % 3) != 1 ? mb(&nbet[i], on_gpu) : NULL;
                g->norm_eps = 1e-5f;
            }
        }
    }
    OK(sh_be_gemm(cpu, nc, gc));
    OK(sh_be_gemm(gpu, nc, gg));
    OK(sh_be_sync(gpu));
    for (int i = 0; i < nc; i++) {
        char what[96];
        snprintf(what, sizeof what, "gemm %s [%s %dx%d M=%d xf %d epi %d norm %d]", label, opr_dt_name(cs[i].dt),
                 cs[i].n, cs[i].k, cs[i].m, (int)cs[i].xf, (int)cs[i].epi, cs[i].norm);
        expect_close(what, i, &y[i], 1e-5, SH_OP_GEMM);
        if (cs[i].norm) {
            if (cs[i].norm <= 2) {
                char wn[128];
                snprintf(wn, sizeof wn, "%s normed", what);
                expect_close(wn, i, &yn[i], 1e-5, SH_OP_GEMM);
                mb_free(&yn[i].m);
            }
            mb_free(&ngam[i]);
            mb_free(&nbet[i]);
        }
        if (cs[i].xf == SH_XF_SILU_MUL) mb_free(&x2[i].m);
        if (cs[i].xf == SH_XF_RMS || cs[i].xf == SH_XF_LN) mb_free(&gam[i]), mb_free(&bet[i]);
        if (cs[i].epi == SH_EPI_SILU_PAIR) mb_free(&w2[i]), mb_free(&b2[i]);
        mb_free(&w[i]);
        mb_free(&b[i]);
        mb_free(&x[i].m);
        mb_free(&y[i].m);
    }
    free(w);
    free(b);
    free(x);
    free(y);
    free(x2);
    free(yn);
    free(ngam);
    free(nbet);
    free(gam);
    free(bet);
    free(w2);
    free(b2);
    free(gc);
    free(gg);
    OK(sh_cuda_set_gemm_path(gpu, SH_CUDA_GEMM_AUTO));
}

static const gemm_case gemm_decode[] = {
    {SH_BF16, 576, 576, 1, 0, 0, 0, 1, 0},    {SH_F16, 1536, 576, 5, 4, 0, 3, 1, 1},
    {SH_Q8_0, 100, 64, 16, 0, 0, 0, 0, 0},    {SH_Q4_0, 333, 1024, 2, 8, 0, 1, 1, 0},
    {SH_F32, 37, 37, 7, 4, 1, 0, 1, 1},       {SH_BF16, 49, 40, 12, 0, 0, 2, 0, 0},
    {SH_F16, 64, 24, 9, 0, 0, 0, 1, 0},       {SH_F16, 17, 20, 3, 1, 2, 0, 0, 1},
    {SH_Q8_0, 512, 4096, 8, 0, 0, 0, 1, 0},   {SH_F32, 64, 9000, 1, 0, 0, 0, 1, 0},
    {SH_Q4_0, 96, 4864, 16, 4, 0, 0, 0, 1},   {SH_BF16, 1536, 576, 16, 0, 0, 0, 0, 0},
    {SH_BF16, 8, 2048, 4, 0, 0, 0, 1, 1},
};

static const gemm_case gemm_prefill[] = {
    {SH_BF16, 256, 512, 200, 0, 0, 0, 1, 0}, {SH_Q4_0, 128, 256, 130, 0, 0, 1, 0, 1},
    {SH_F16, 72, 96, 65, 4, 0, 0, 1, 0},     {SH_Q8_0, 40, 160, 64, 0, 0, 0, 0, 0},
    {SH_F32, 33, 70, 100, 1, 0, 0, 1, 0},    {SH_BF16, 576, 576, 1, 0, 0, 0, 0, 0},
};

/* the fused norm and activations of the decode step: every dtype, M from 1
 * (the direct SIMT path) to 64, K of the shapes served */
static const gemm_case gemm_xf[] = {
    {SH_BF16, 576, 576, 1, 0, 0, 0, 1, 0, SH_XF_RMS},       {SH_BF16, 192, 576, 1, 0, 0, 0, 0, 0, SH_XF_RMS},
    {SH_BF16, 576, 1536, 1, 0, 0, 0, 0, 1, SH_XF_SILU_MUL}, {SH_F16, 576, 1536, 16, 4, 0, 0, 1, 1, SH_XF_SILU_MUL},
    {SH_BF16, 1536, 576, 16, 0, 0, 0, 0, 0, SH_XF_RMS},     {SH_Q8_0, 960, 576, 16, 0, 0, 0, 1, 0, SH_XF_RMS},
    {SH_Q4_0, 576, 1536, 64, 0, 0, 0, 0, 1, SH_XF_SILU_MUL}, {SH_BF16, 768, 3072, 3, 0, 0, 0, 1, 1, SH_XF_GELU_TANH},
    {SH_F16, 768, 3072, 64, 0, 0, 0, 1, 1, SH_XF_GELU_TANH}, {SH_F32, 384, 1536, 5, 0, 0, 0, 1, 1, SH_XF_GELU_ERF},
    {SH_F32, 100, 576, 7, 4, 1, 0, 1, 0, SH_XF_RMS},        {SH_BF16, 64, 576, 64, 0, 0, 0, 0, 0, SH_XF_RMS},
    {SH_Q8_0, 576, 1536, 1, 0, 0, 0, 0, 1, SH_XF_SILU_MUL}, {SH_F16, 333, 576, 2, 0, 2, 0, 1, 0, SH_XF_RMS},
    {SH_BF16, 40, 64, 9, 4, 0, 0, 0, 1, SH_XF_SILU_MUL},    {SH_Q4_0, 96, 2048, 32, 0, 0, 0, 1, 0, SH_XF_RMS},
};

/* the LayerNorm transform (gpt2's fused norms): one row with 16-byte rows
 * (the one-row kernel: f32, f16, bf16, GELU epilogue, accumulation, gamma
 * and beta on and off), and what takes the norm apart (a quant dtype, an
 * unaligned x, more rows) */
static const gemm_case gemm_ln[] = {
    {SH_BF16, 2304, 768, 1, 0, 0, 0, 1, 0, SH_XF_LN},       {SH_F16, 3072, 768, 1, 0, 0, 0, 1, 0, SH_XF_LN, SH_EPI_GELU_TANH},
    {SH_BF16, 768, 768, 1, 0, 0, 2, 1, 1, SH_XF_LN},        {SH_F32, 100, 576, 1, 0, 0, 0, 0, 0, SH_XF_LN},
    {SH_Q8_0, 576, 768, 1, 0, 0, 0, 1, 0, SH_XF_LN},        {SH_BF16, 333, 96, 1, 4, 1, 0, 1, 0, SH_XF_LN},
    {SH_BF16, 768, 768, 7, 0, 0, 0, 1, 1, SH_XF_LN},        {SH_F16, 64, 1536, 1, 0, 0, 0, 0, 1, SH_XF_LN},
};

/* GEMM epilogues (the FFN's activation), mixed with plain groups and with x
 * transforms in one call: every dtype, M from 1 to 64 */
static const gemm_case gemm_epi[] = {
    {SH_BF16, 1536, 576, 1, 0, 0, 0, 0, 0, SH_XF_NONE, SH_EPI_SILU_PAIR},
    {SH_BF16, 576, 576, 1, 0, 0, 0, 1, 1, SH_XF_NONE, SH_EPI_NONE},
    {SH_F16, 1536, 576, 16, 4, 0, 3, 1, 0, SH_XF_NONE, SH_EPI_SILU_PAIR},
    {SH_Q8_0, 960, 576, 5, 0, 0, 0, 1, 0, SH_XF_NONE, SH_EPI_SILU_PAIR},
    {SH_Q4_0, 100, 64, 64, 0, 0, 1, 0, 0, SH_XF_NONE, SH_EPI_SILU_PAIR},
    {SH_BF16, 3072, 768, 16, 0, 0, 0, 1, 0, SH_XF_NONE, SH_EPI_GELU_TANH},
    {SH_F16, 1536, 384, 9, 0, 0, 0, 1, 0, SH_XF_NONE, SH_EPI_GELU_ERF},
    {SH_F32, 37, 40, 3, 4, 1, 2, 1, 0, SH_XF_NONE, SH_EPI_SILU_PAIR},
    {SH_BF16, 40, 64, 2, 0, 0, 0, 1, 0, SH_XF_NONE, SH_EPI_SILU_PAIR},
    {SH_BF16, 17, 32, 33, 0, 0, 0, 0, 0, SH_XF_NONE, SH_EPI_SILU_PAIR},
    {SH_F16, 333, 96, 1, 0, 0, 0, 1, 0, SH_XF_NONE, SH_EPI_GELU_TANH},
};

/* the same with an RMS x transform on every group (the fused pre-FFN norm) */
static const gemm_case gemm_epi_rms[] = {
    {SH_BF16, 1536, 576, 1, 0, 0, 0, 0, 0, SH_XF_RMS, SH_EPI_SILU_PAIR},
    {SH_BF16, 1536, 576, 16, 0, 0, 0, 0, 0, SH_XF_RMS, SH_EPI_SILU_PAIR},
    {SH_Q8_0, 960, 576, 64, 0, 0, 0, 1, 0, SH_XF_RMS, SH_EPI_SILU_PAIR},
    {SH_F16, 200, 576, 7, 0, 0, 0, 1, 0, SH_XF_RMS, SH_EPI_GELU_TANH},
};

/* GEMM row norms (the residual GEMMs of a layer: o and down with the next
 * norm), mixed with plain groups: every dtype, RMS and LayerNorm, apart and
 * in place, M from 1 (one SIMT block set) to 64 (several MMA m tiles) */
static const gemm_case gemm_norm[] = {
    {SH_BF16, 576, 576, 1, 0, 0, 0, 1, 1, SH_XF_NONE, SH_EPI_NONE, 1},
    {SH_BF16, 576, 1536, 16, 0, 0, 0, 0, 1, SH_XF_NONE, SH_EPI_NONE, 1},
    {SH_F16, 768, 3072, 5, 4, 0, 3, 1, 1, SH_XF_NONE, SH_EPI_NONE, 2},
    {SH_BF16, 40, 64, 33, 0, 0, 0, 1, 0, SH_XF_NONE, SH_EPI_NONE, 0},
    {SH_Q8_0, 960, 576, 64, 0, 0, 0, 1, 1, SH_XF_NONE, SH_EPI_NONE, 3},
    {SH_Q4_0, 384, 1536, 2, 0, 0, 1, 0, 1, SH_XF_NONE, SH_EPI_NONE, 4},
    {SH_F32, 100, 37, 9, 4, 1, 2, 1, 1, SH_XF_NONE, SH_EPI_NONE, 2},
    {SH_F16, 1200, 96, 3, 0, 0, 0, 1, 0, SH_XF_NONE, SH_EPI_NONE, 1},
    {SH_BF16, 1536, 576, 1, 0, 0, 0, 0, 0, SH_XF_NONE, SH_EPI_SILU_PAIR, 0},
    {SH_BF16, 17, 32, 40, 0, 0, 0, 1, 1, SH_XF_NONE, SH_EPI_NONE, 3},
};

/* ---- get_rows ------------------------------------------------------------ */

static void test_get_rows_mixed(void) {
    static const struct { sh_dtype dt; int n_table, d, rows, pad, acc; } cs[] = {
        {SH_F32, 50, 37, 5, 1, 0}, {SH_F16, 40, 64, 1, 0, 1},  {SH_BF16, 30, 576, 9, 3, 0},
        {SH_Q8_0, 20, 96, 3, 0, 1}, {SH_Q4_0, 60, 128, 17, 2, 0}, {SH_F16, 7, 21, 2, 0, 0},
    };
    enum { NC = sizeof cs / sizeof cs[0] };
    opr_rng r = {77};
    mbuf w[NC], ids[NC];
    fview out[NC];
    sh_get_rows_group gc[NC], gg[NC];
    for (int i = 0; i < NC; i++) {
        uint8_t *wb = opr_weight_bytes(&r, cs[i].dt, cs[i].n_table, cs[i].d);
        mb_new(&w[i], wb, opr_row_bytes(cs[i].dt, cs[i].d) * (size_t)cs[i].n_table);
        free(wb);
        int32_t id[64];
        for (int j = 0; j < cs[i].rows; j++) id[j] = j == 0 ? cs[i].n_table - 1 : opr_int(&r, cs[i].n_table);
        mb_new(&ids[i], id, (size_t)cs[i].rows * sizeof(int32_t));
        fv_new(&out[i], &r, cs[i].rows, cs[i].d, cs[i].d + cs[i].pad, 2, -1, 1, !cs[i].acc);
        for (int on_gpu = 0; on_gpu < 2; on_gpu++)
            (on_gpu ? gg : gc)[i] = (sh_get_rows_group){{mb(&w[i], on_gpu), cs[i].dt, cs[i].n_table, cs[i].d},
                                                        mb(&ids[i], on_gpu), fv_view(&out[i], on_gpu), cs[i].acc};
    }
    OK(sh_be_get_rows(cpu, NC, gc));
    OK(sh_be_get_rows(gpu, NC, gg));
    for (int i = 0; i < NC; i++) {
        expect_close("get_rows mixed", i, &out[i], 0.0, SH_OP_GET_ROWS);
        mb_free(&w[i]);
        mb_free(&ids[i]);
        mb_free(&out[i].m);
    }
}

/* ---- norm, act, rope, pool ----------------------------------------------- */

static void test_norm_mixed(void) {
    static const struct { sh_norm_kind kind; int rows, n, add, gamma, beta, in_place; } cs[] = {
        {SH_NORM_RMS, 1, 576, 1, 1, 0, 1},   {SH_NORM_LAYER, 7, 768, 1, 1, 1, 0}, {SH_NORM_RMS, 3, 37, 0, 1, 0, 0},
        {SH_NORM_LAYER, 2, 2048, 0, 0, 1, 1}, {SH_NORM_RMS, 40, 64, 1, 0, 0, 0},  {SH_NORM_LAYER, 1, 5, 1, 1, 1, 0},
        {SH_NORM_RMS, 2, 4864, 1, 1, 1, 0},
    };
    enum { NC = sizeof cs / sizeof cs[0] };
    opr_rng r = {99};
    fview x[NC], add[NC], out[NC];
    mbuf gam[NC], bet[NC];
    sh_norm_group gc[NC], gg[NC];
    for (int i = 0; i < NC; i++) {
        int n = cs[i].n;
        fv_new(&x[i], &r, cs[i].rows, n, n + 3, 1, -2, 2.5f, 0);
        fv_new(&add[i], &r, cs[i].rows, n, n, 0, -1, 1, 0);
        fv_new(&out[i], &r, cs[i].rows, n, n + 1, 2, 0, 0, 1);
        float *p = malloc((size_t)n * sizeof(float));
        for (int j = 0; j < n; j++) p[j] = opr_unif(&r, 0.5f, 1.5f);
        mb_new(&gam[i], p, (size_t)n * 4);
        for (int j = 0; j < n; j++) p[j] = opr_unif(&r, -0.5f, 0.5f);
        mb_new(&bet[i], p, (size_t)n * 4);
        free(p);
        for (int on_gpu = 0; on_gpu < 2; on_gpu++) {
            sh_view xv = fv_view(&x[i], on_gpu);
            (on_gpu ? gg : gc)[i] = (sh_norm_group){
                xv, cs[i].add ? fv_view(&add[i], on_gpu) : (sh_view){0}, cs[i].gamma ? mb(&gam[i], on_gpu) : NULL,
                cs[i].beta ? mb(&bet[i], on_gpu) : NULL, 1e-5f, cs[i].kind, cs[i].in_place ? xv : fv_view(&out[i], on_gpu)};
        }
    }
    OK(sh_be_norm(cpu, NC, gc));
    OK(sh_be_norm(gpu, NC, gg));
    for (int i = 0; i < NC; i++) {
        expect_close("norm mixed (x)", i, &x[i], cs[i].in_place ? 1e-5 : 0.0, SH_OP_NORM);
        if (!cs[i].in_place) expect_close("norm mixed (out)", i, &out[i], 1e-5, SH_OP_NORM);
        mb_free(&x[i].m);
        mb_free(&add[i].m);
        mb_free(&out[i].m);
        mb_free(&gam[i]);
        mb_free(&bet[i]);
    }
}

static void test_act_mixed(void) {
    static const struct { sh_act_kind kind; int rows, n, in_place; } cs[] = {
        {SH_ACT_SILU_MUL, 1, 1536, 0}, {SH_ACT_GELU_TANH, 5, 3072, 1}, {SH_ACT_GELU_ERF, 3, 37, 0},
        {SH_ACT_SILU_MUL, 17, 100, 1}, {SH_ACT_GELU_TANH, 2, 1, 0},
    };
    enum { NC = sizeof cs / sizeof cs[0] };
    opr_rng r = {123};
    fview a[NC], b[NC], out[NC];
    sh_act_group gc[NC], gg[NC];
    for (int i = 0; i < NC; i++) {
        fv_new(&a[i], &r, cs[i].rows, cs[i].n, cs[i].n + 2, 1, -9, 9, 0);
        fv_new(&b[i], &r, cs[i].rows, cs[i].n, cs[i].n, 0, -2, 2, 0);
        fv_new(&out[i], &r, cs[i].rows, cs[i].n, cs[i].n + 1, 3, 0, 0, 1);
        for (int on_gpu = 0; on_gpu < 2; on_gpu++) {
            sh_view av = fv_view(&a[i], on_gpu);
            (on_gpu ? gg : gc)[i] = (sh_act_group){av, cs[i].kind == SH_ACT_SILU_MUL ? fv_view(&b[i], on_gpu) : (sh_view){0},
                                                   cs[i].in_place ? av : fv_view(&out[i], on_gpu), cs[i].kind};
        }
    }
    OK(sh_be_act(cpu, NC, gc));
    OK(sh_be_act(gpu, NC, gg));
    for (int i = 0; i < NC; i++) {
        expect_close("act mixed", i, cs[i].in_place ? &a[i] : &out[i], 2e-6, SH_OP_ACT);
        mb_free(&a[i].m);
        mb_free(&b[i].m);
        mb_free(&out[i].m);
    }
}

static void test_rope_mixed(void) {
    static const struct { sh_rope_mode mode; int rows, n_head, hd, n_rot, max_pos; float theta; } cs[] = {
        {SH_ROPE_NEOX, 1, 9, 64, 64, 300, 10000.0f},   {SH_ROPE_NORM, 7, 3, 64, 64, 2000, 10000.0f},
        {SH_ROPE_NEOX, 5, 14, 64, 32, 4000, 1e6f},     {SH_ROPE_NORM, 33, 2, 128, 96, 100, 500000.0f},
        {SH_ROPE_NEOX, 2, 1, 6, 2, 10, 100.0f},
    };
    enum { NC = sizeof cs / sizeof cs[0] };
    opr_rng r = {321};
    fview x[NC];
    mbuf pos[NC];
    sh_rope_group gc[NC], gg[NC];
    for (int i = 0; i < NC; i++) {
        int cols = cs[i].n_head * cs[i].hd;
        fv_new(&x[i], &r, cs[i].rows, cols, cols + 1, 0, -1, 1, 0);
        int32_t p[64];
        for (int j = 0; j < cs[i].rows; j++) p[j] = j == 0 ? cs[i].max_pos : opr_int(&r, cs[i].max_pos + 1);
        mb_new(&pos[i], p, (size_t)cs[i].rows * 4);
        for (int on_gpu = 0; on_gpu < 2; on_gpu++)
            (on_gpu ? gg : gc)[i] = (sh_rope_group){fv_view(&x[i], on_gpu), cs[i].n_head, cs[i].hd, cs[i].n_rot,
                                                    mb(&pos[i], on_gpu), cs[i].theta, cs[i].mode};
    }
    OK(sh_be_rope(cpu, NC, gc));
    OK(sh_be_rope(gpu, NC, gg));
    for (int i = 0; i < NC; i++) {
        expect_close("rope mixed", i, &x[i], 1e-6, SH_OP_ROPE);
        mb_free(&x[i].m);
        mb_free(&pos[i]);
    }
}

static void test_pool_mixed(void) {
    static const struct { int rows, n, normalize; } cs[] = {{1, 384, 1}, {50, 384, 1}, {7, 37, 0}, {128, 768, 1}, {3, 1, 0}};
    enum { NC = sizeof cs / sizeof cs[0] };
    opr_rng r = {555};
    fview x[NC], out[NC];
    sh_pool_group gc[NC], gg[NC];
    for (int i = 0; i < NC; i++) {
        fv_new(&x[i], &r, cs[i].rows, cs[i].n, cs[i].n + 1, 1, -1, 1.5f, 0);
        fv_new(&out[i], &r, 1, cs[i].n, cs[i].n, 1, 0, 0, 1);
        for (int on_gpu = 0; on_gpu < 2; on_gpu++)
            (on_gpu ? gg : gc)[i] = (sh_pool_group){fv_view(&x[i], on_gpu), fv_view(&out[i], on_gpu).data, cs[i].normalize};
    }
    OK(sh_be_pool(cpu, NC, gc));
    OK(sh_be_pool(gpu, NC, gg));
    for (int i = 0; i < NC; i++) {
        expect_close("pool mixed", i, &out[i], 1e-5, SH_OP_POOL);
        mb_free(&x[i].m);
        mb_free(&out[i].m);
    }
}

/* ---- paged KV: kv_write and attention ------------------------------------ */

#define POOL_BLOCKS 96
#define POOL_LAYERS 4
#define POOL_KVD 512

typedef struct kvpool {
    mbuf m;
    sh_dtype dt;
    uint64_t block_bytes;
} kvpool;

static void pool_new(kvpool *p, opr_rng *r, sh_dtype dt) {
    size_t es = dt == SH_F16 ? 2 : 4;
    p->dt = dt;
    p->block_bytes = (uint64_t)POOL_LAYERS * 2 * SH_KV_BLOCK * POOL_KVD * es;
    size_t bytes = (size_t)p->block_bytes * POOL_BLOCKS;
    uint8_t *h = malloc(bytes);
    if (dt == SH_F16) {
        for (size_t i = 0; i < bytes / 2; i++) {
            uint16_t v = opr_rand_f16(r, 10, 15);
            memcpy(h + 2 * i, &v, 2);
        }
    } else {
        for (size_t i = 0; i < bytes / 4; i++) {
            float v = opr_unif(r, -1, 1);
            memcpy(h + 4 * i, &v, 4);
        }
    }
    mb_new(&p->m, h, bytes);
    free(h);
}

static int pool_same(const kvpool *p) {
    uint8_t *c = malloc(p->m.bytes), *g = malloc(p->m.bytes);
    opr_download(cpu, c, p->m.c, p->m.bytes);
    opr_download(gpu, g, p->m.g, p->m.bytes);
    int same = memcmp(c, g, p->m.bytes) == 0;
    free(c);
    free(g);
    return same;
}

/* Largest |gpu - cpu| over the pool relative to the largest |cpu| (NaN
 * mismatches: infinity). */
static double pool_err(const kvpool *p) {
    uint8_t *c = malloc(p->m.bytes), *g = malloc(p->m.bytes);
    opr_download(cpu, c, p->m.c, p->m.bytes);
    opr_download(gpu, g, p->m.g, p->m.bytes);
    const int f16 = p->dt == SH_F16;
    const size_t n = p->m.bytes / (f16 ? 2 : 4);
    double md = 0, mr = 0;
    for (size_t i = 0; i < n; i++) {
        float a, b;
        if (f16) {
            uint16_t x, y;
            memcpy(&x, c + 2 * i, 2);
            memcpy(&y, g + 2 * i, 2);
            a = sh_f16_to_f32(x);
            b = sh_f16_to_f32(y);
        } else {
            memcpy(&a, c + 4 * i, 4);
            memcpy(&b, g + 4 * i, 4);
        }
        if (isnan(a) != isnan(b)) md = INFINITY;
        if (isnan(a)) continue;
        if (fabs((double)a - b) > md) md = fabs((double)a - b);
        if (fabs((double)a) > mr) mr = fabs((double)a);
    }
    free(c);
    free(g);
    return mr > 0 ? md / mr : md;
}

/* The pool's physical blocks in a shuffled order (tests deal them out). */
static void pool_perm(int *perm, opr_rng *r) {
    for (int i = 0; i < POOL_BLOCKS; i++) perm[i] = i;
    for (int i = POOL_BLOCKS - 1; i > 0; i--) {
        int j = opr_int(r, i + 1), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

/* rope = 1: the fused RoPE rotates q and k first; the rotated values may
 * differ from the CPU's by rounding (as SH_OP_ROPE's do), so the pools are
 * compared within the f16 rounding step instead of bitwise. */
static void test_kv_write_mixed(int rope) {
    opr_rng r = {2024};
    kvpool pools[2];
    pool_new(&pools[0], &r, SH_F32);
    pool_new(&pools[1], &r, SH_F16);
    static const struct { int f16, layer, kvd, rows, first; } cs[] = {
        {0, 1, 192, 1, 37}, {1, 3, 64, 20, 5}, {0, 0, 256, 7, -1}, {1, 2, 36, 3, -1}, {1, 0, 128, 1, 0},
    };
    enum { NC = sizeof cs / sizeof cs[0] };
    /* each group owns 8 distinct physical blocks of a shuffled list */
    int perm[POOL_BLOCKS];
    pool_perm(perm, &r);
    fview k[NC], v[NC], q[NC];
    mbuf tab[NC], pos[NC];
    sh_kv_write_group gc[NC], gg[NC];
    for (int i = 0; i < NC; i++) {
        int32_t t[8], p[32];
        for (int j = 0; j < 8; j++) t[j] = perm[8 * i + j];
        mb_new(&tab[i], t, sizeof t);
        for (int j = 0; j < cs[i].rows; j++) p[j] = cs[i].first >= 0 ? cs[i].first + j : 127 - 17 * j;
        mb_new(&pos[i], p, (size_t)cs[i].rows * 4);
        fv_new(&k[i], &r, cs[i].rows, cs[i].kvd, cs[i].kvd + 2, 1, -3, 3, 0);
        fv_new(&v[i], &r, cs[i].rows, cs[i].kvd, cs[i].kvd, 0, -3, 3, 0);
        const kvpool *pl = &pools[cs[i].f16];
        /* rope: the fused RoPE on q (3 heads per KV head, or none) and k */
        const int hd = cs[i].kvd % 64 == 0 ? 64 : cs[i].kvd / 2, nh = 3 * (cs[i].kvd / hd);
        if (rope) fv_new(&q[i], &r, cs[i].rows, nh * hd, nh * hd + 4, 0, -3, 3, 0);
        for (int on_gpu = 0; on_gpu < 2; on_gpu++) {
            sh_kv_write_group *e = &(on_gpu ? gg : gc)[i];
            *e = (sh_kv_write_group){
                fv_view(&k[i], on_gpu), fv_view(&v[i], on_gpu), mb(&pos[i], on_gpu),
                {mb(&pl->m, on_gpu), pl->dt, pl->block_bytes, mb(&tab[i], on_gpu), cs[i].layer, cs[i].kvd}};
            if (rope) {
                e->rope = (sh_rope_params){hd, i == 2 ? hd / 2 : hd, i & 1 ? 10000.0f : 1e6f,
                                           i & 1 ? SH_ROPE_NEOX : SH_ROPE_NORM};
                if (i != 3) {
                    e->q = fv_view(&q[i], on_gpu);
                    e->n_head = nh;
                }
            }
        }
    }
    OK(sh_be_kv_write(cpu, NC, gc));
    OK(sh_be_kv_write(gpu, NC, gg));
    if (!rope) {
        CHECK(pool_same(&pools[0]), "kv_write mixed: f32 pools differ");
        CHECK(pool_same(&pools[1]), "kv_write mixed: f16 pools differ");
    } else {
        double e0 = pool_err(&pools[0]), e1 = pool_err(&pools[1]);
        note(SH_OP_KV_WRITE, e0);
        CHECK(e0 <= 1e-6, "kv_write mixed (rope): f32 pool err %.3g > 1e-6", e0);
        CHECK(e1 <= 1e-3, "kv_write mixed (rope): f16 pool err %.3g > 1e-3", e1);
    }
    for (int i = 0; i < NC && rope; i++) {
        expect_close("kv_write rope k", i, &k[i], 1e-6, SH_OP_ROPE);
        if (i != 3) expect_close("kv_write rope q", i, &q[i], 1e-6, SH_OP_ROPE);
        mb_free(&q[i].m);
    }
    for (int i = 0; i < NC; i++) {
        mb_free(&k[i].m);
        mb_free(&v[i].m);
        mb_free(&tab[i]);
        mb_free(&pos[i]);
    }
    mb_free(&pools[0].m);
    mb_free(&pools[1].m);
}

/* The QKV GEMM with its epilogues, as the step planner issues it for two
 * models in one call: q (RoPE), k (RoPE + K store), v (V store) per model,
 * heads of 64 (NEOX, f16 pool) and of 32 (NORM, f32 pool), bf16 / q8_0
 * weights, rows of many sequences scattered over the pool, a plain group
 * beside them. y within the GEMM limit, pools within f32 / f16 rounding. */
/* The streamed GEMM (gemm_ring.cu) takes calls whose groups all have 16-bit
 * weights of one dtype: M from 2 to 64, K not a multiple of its 128-element
 * stages, rows not a multiple of its tiles, pair and GELU epilogues, padded
 * and offset views, accumulation. */
static const gemm_case gemm_ring_bf16[] = {
    {SH_BF16, 1536, 576, 16, 0, 0, 0, 0, 0, SH_XF_NONE, SH_EPI_SILU_PAIR},
    {SH_BF16, 576, 1536, 16, 0, 0, 0, 1, 1},
    {SH_BF16, 960, 576, 64, 4, 1, 3, 1, 0},
    {SH_BF16, 333, 96, 2, 0, 0, 0, 1, 0},
    {SH_BF16, 40, 160, 33, 0, 2, 1, 0, 1},
    {SH_BF16, 3072, 768, 9, 0, 0, 0, 1, 0, SH_XF_NONE, SH_EPI_GELU_TANH},
    {SH_BF16, 17, 32, 5, 0, 0, 0, 0, 0, SH_XF_NONE, SH_EPI_SILU_PAIR},
    {SH_BF16, 768, 3072, 64, 0, 0, 0, 1, 1},
};
/* M <= 16 per group (the tensor-copy form's reach): K tails of 32, 64 and
 * 96 past a 128-element stage, pair and GELU epilogues, padding,
 * accumulation. The first TMA_CASES have K <= 576, so that a call of them
 * together fits the form (two blocks per SM); the others are too long for
 * that (K > 576 at 16 rows, 1536 at 8) and take the per-warp form. */
static const gemm_case gemm_ring_wg[] = {
    {SH_BF16, 1536, 576, 16, 4, 1, 3, 1, 0, SH_XF_NONE, SH_EPI_SILU_PAIR},
    {SH_BF16, 960, 576, 9, 4, 1, 3, 1, 0},
    {SH_BF16, 333, 96, 2, 0, 0, 0, 1, 0},
    {SH_BF16, 40, 160, 5, 0, 2, 1, 0, 1},
    {SH_BF16, 17, 32, 3, 0, 0, 0, 0, 0, SH_XF_NONE, SH_EPI_SILU_PAIR},
    {SH_BF16, 100, 224, 8, 0, 1, 0, 0, 0, SH_XF_NONE, SH_EPI_GELU_ERF},
    {SH_BF16, 300, 512, 12, 0, 0, 0, 1, 0, SH_XF_NONE, SH_EPI_GELU_TANH},
    {SH_BF16, 576, 1536, 16, 0, 0, 0, 1, 1},
    {SH_BF16, 3072, 768, 16, 0, 0, 0, 1, 0, SH_XF_NONE, SH_EPI_GELU_TANH},
    {SH_BF16, 576, 1536, 8, 0, 0, 0, 1, 1},
};
enum { TMA_CASES = 7 };
/* 17 to 64 rows per group (the form with streamed terms): K not a multiple
 * of its 64-element stages, rows not a multiple of its m tiles (8, 16, 32
 * or 64 rows), outputs not a multiple of 64, pair and GELU epilogues,
 * padded and offset views, accumulation, a long K; an LM-head-sized group
 * gives the launch an item per SM at 64-row tiles. */
static const gemm_case gemm_tmx[] = {
    {SH_BF16, 1536, 576, 64, 4, 1, 3, 1, 0, SH_XF_NONE, SH_EPI_SILU_PAIR},
    {SH_BF16, 960, 576, 33, 4, 1, 3, 1, 0},
    {SH_BF16, 333, 96, 17, 0, 0, 0, 1, 0},
    {SH_BF16, 40, 160, 64, 0, 2, 1, 0, 1},
    {SH_BF16, 17, 32, 20, 0, 0, 0, 0, 0, SH_XF_NONE, SH_EPI_SILU_PAIR},
    {SH_BF16, 100, 224, 48, 0, 1, 0, 0, 0, SH_XF_NONE, SH_EPI_GELU_ERF},
    {SH_BF16, 3072, 768, 64, 0, 0, 0, 1, 0, SH_XF_NONE, SH_EPI_GELU_TANH},
    {SH_BF16, 768, 3072, 40, 0, 0, 0, 1, 1},
    {SH_BF16, 9000, 576, 64, 0, 0, 0, 0, 0},
};
/* the RMS transform (the fused pre-attention and pre-FFN norms) in each
 * streamed form: bf16 weights, pair / GELU / RoPE epilogues, padding,
 * accumulation; 2 to 64 rows (per-warp ring), at most 16 with K <= 576
 * (tensor-copy form), 17 to 64 (streamed terms, whose split kernel
 * normalises the rows) */
static const gemm_case gemm_ring_rms[] = {
    {SH_BF16, 1536, 576, 16, 0, 0, 0, 0, 0, SH_XF_RMS, SH_EPI_SILU_PAIR},
    {SH_BF16, 960, 576, 16, 4, 0, 3, 1, 0, SH_XF_RMS},
    {SH_BF16, 576, 576, 64, 0, 0, 0, 1, 1, SH_XF_RMS},
    {SH_BF16, 333, 96, 2, 0, 0, 0, 1, 0, SH_XF_RMS},
    {SH_BF16, 40, 160, 33, 0, 0, 1, 0, 1, SH_XF_RMS},
    {SH_BF16, 3072, 768, 9, 0, 0, 0, 1, 0, SH_XF_RMS, SH_EPI_GELU_TANH},
};
static const gemm_case gemm_tma_rms[] = {
    {SH_BF16, 1536, 576, 16, 4, 0, 3, 1, 0, SH_XF_RMS, SH_EPI_SILU_PAIR},
    {SH_BF16, 960, 576, 9, 4, 0, 3, 1, 0, SH_XF_RMS},
    {SH_BF16, 333, 96, 2, 0, 0, 0, 1, 1, SH_XF_RMS},
    {SH_BF16, 17, 32, 3, 0, 0, 0, 0, 0, SH_XF_RMS, SH_EPI_SILU_PAIR},
    {SH_BF16, 300, 512, 12, 0, 0, 0, 1, 0, SH_XF_RMS, SH_EPI_GELU_TANH},
    {SH_BF16, 576, 576, 16, 0, 0, 0, 0, 1, SH_XF_RMS},
};
static const gemm_case gemm_tmx_rms[] = {
    {SH_BF16, 1536, 576, 64, 4, 0, 3, 1, 0, SH_XF_RMS, SH_EPI_SILU_PAIR},
    {SH_BF16, 960, 576, 33, 4, 0, 3, 1, 0, SH_XF_RMS},
    {SH_BF16, 333, 96, 17, 0, 0, 0, 1, 1, SH_XF_RMS},
    {SH_BF16, 100, 224, 48, 0, 0, 0, 0, 0, SH_XF_RMS, SH_EPI_GELU_ERF},
    {SH_BF16, 9000, 576, 64, 0, 0, 0, 0, 0, SH_XF_RMS},
};
static const gemm_case gemm_ring_f16[] = {
    {SH_F16, 1536, 576, 16, 4, 0, 3, 1, 0, SH_XF_NONE, SH_EPI_SILU_PAIR},
    {SH_F16, 576, 576, 8, 0, 0, 0, 1, 1},
    {SH_F16, 100, 224, 40, 0, 1, 0, 0, 0, SH_XF_NONE, SH_EPI_GELU_ERF},
    {SH_F16, 64, 64, 3, 0, 0, 0, 1, 0},
};

/* The same call through the tile kernels and the streamed GEMM: bitwise
 * equal outputs (both sum each output's chunks by warp, in order). */
static void test_gemm_ring_bitwise(const char *label, const gemm_case *cs, int nc) {
    opr_rng r = {0x719u + (uint64_t)nc};
    OK(sh_cuda_set_gemm_path(gpu, SH_CUDA_GEMM_AUTO));
    mbuf *w = calloc((size_t)nc, sizeof *w), *w2 = calloc((size_t)nc, sizeof *w2);
    fview *x = calloc((size_t)nc, sizeof *x), *y = calloc((size_t)nc, sizeof *y);
    sh_gemm_group *gg = calloc((size_t)nc, sizeof *gg);
    float **out = calloc((size_t)nc, sizeof *out);
    for (int i = 0; i < nc; i++) {
        const gemm_case *c = &cs[i];
        uint8_t *wb = opr_weight_bytes(&r, c->dt, c->n, c->k);
        mb_new(&w[i], wb, opr_row_bytes(c->dt, c->k) * (size_t)c->n);
        free(wb);
        fv_new(&x[i], &r, c->m, c->k, c->k + c->xpad, c->xoff, -1, 1, 0);
        fv_new(&y[i], &r, c->m, c->n, c->n + c->ypad, 1, -1, 1, 0);
        gg[i] = (sh_gemm_group){{w[i].g, c->dt, c->n, c->k}, NULL, fv_view(&x[i], 1), fv_view(&y[i], 1), c->acc};
        gg[i].epi = c->epi;
        if (c->xf == SH_XF_RMS) { /* gamma 1: the row sums and the scale */
            gg[i].xf = SH_XF_RMS;
            gg[i].xf_eps = 1e-5f;
        }
        if (c->epi == SH_EPI_SILU_PAIR) {
            wb = opr_weight_bytes(&r, c->dt, c->n, c->k);
            mb_new(&w2[i], wb, opr_row_bytes(c->dt, c->k) * (size_t)c->n);
            free(wb);
            gg[i].w2 = (sh_weight){w2[i].g, c->dt, c->n, c->k};
        }
        out[i] = malloc(y[i].m.bytes);
    }
    OK(sh_cuda_set_gemm_ring(gpu, 0));
    OK(sh_be_gemm(gpu, nc, gg));
    OK(sh_be_sync(gpu));
    for (int i = 0; i < nc; i++) {
        opr_download(gpu, out[i], y[i].m.g, y[i].m.bytes);
        float *init = malloc(y[i].m.bytes); /* y as it was before the call (the CPU copy is untouched) */
        opr_download(cpu, init, y[i].m.c, y[i].m.bytes);
        OK(sh_be_upload(gpu, y[i].m.g, init, y[i].m.bytes));
        free(init);
    }
    OK(sh_cuda_set_gemm_ring(gpu, 2));
    OK(sh_be_gemm(gpu, nc, gg));
    OK(sh_be_sync(gpu));
    for (int i = 0; i < nc; i++) {
        float *o = malloc(y[i].m.bytes);
        opr_download(gpu, o, y[i].m.g, y[i].m.bytes);
        CHECK(memcmp(o, out[i], y[i].m.bytes) == 0, "gemm ring %s group %d (%s %dx%d M=%d): not bitwise the tile kernels'",
              label, i, opr_dt_name(cs[i].dt), cs[i].n, cs[i].k, cs[i].m);
        free(o);
        free(out[i]);
        mb_free(&w[i]);
        if (cs[i].epi == SH_EPI_SILU_PAIR) mb_free(&w2[i]);
        mb_free(&x[i].m);
        mb_free(&y[i].m);
    }
    OK(sh_cuda_set_gemm_ring(gpu, 1));
    free(w);
    free(w2);
    free(x);
    free(y);
    free(gg);
    free(out);
}

/* only: every model's weights in this dtype (-1: the table's mix); cap: at
 * most this many rows per model (0: the table's) */
/* rms: the q, k and v groups read x through the RMS transform (SH_XF_RMS)
 * or the LayerNorm one (SH_XF_LN), gamma and beta per model */
static void test_gemm_qkv_mixed(const char *label, sh_cuda_gemm_path path, int only, int cap, int rms) {
    opr_rng r = {0x9e0000u + (uint64_t)path};
    OK(sh_cuda_set_gemm_path(gpu, path));
    kvpool pools[2];
    pool_new(&pools[0], &r, SH_F32);
    pool_new(&pools[1], &r, SH_F16);
    static const struct { sh_dtype dt; int k, hd, nh, nkv, rows, layer, f16; sh_rope_mode mode; } ms[] = {
        {SH_BF16, 576, 64, 9, 3, 16, 1, 1, SH_ROPE_NEOX},
        {SH_Q8_0, 128, 32, 4, 2, 3, 3, 0, SH_ROPE_NORM},
        {SH_F16, 256, 64, 4, 4, 40, 0, 1, SH_ROPE_NORM},
    };
    enum { NM = sizeof ms / sizeof ms[0], NC = 3 * NM + 1 };
    mbuf w[NC], pos[NM], slot[NM], gam[NM], bet[NM];
    fview x[NM + 1], y[NC];
    sh_gemm_group gc[NC], gg[NC];
    /* each model owns 8 distinct physical blocks (as a sequence owns its
     * blocks: models of other KV widths lay a block out differently) */
    int perm[POOL_BLOCKS], used[8 * SH_KV_BLOCK];
    pool_perm(perm, &r);
    for (int i = 0; i < NM; i++) {
        const int rows = cap > 0 && ms[i].rows > cap ? cap : ms[i].rows;
        int32_t p[64], sl[64];
        memset(used, 0, sizeof used);
        for (int j = 0; j < rows; j++) {
            int s;
            do s = opr_int(&r, 8 * SH_KV_BLOCK);
            while (used[s]);
            used[s] = 1;
            sl[j] = perm[8 * i + s / SH_KV_BLOCK] * SH_KV_BLOCK + s % SH_KV_BLOCK;
            /* every third row past 8190: positions on both sides of the backend's RoPE table end (8192) */
            p[j] = opr_int(&r, 4096) + (j % 3 == 2 ? 8190 : 0);
        }
        mb_new(&pos[i], p, (size_t)rows * 4);
        mb_new(&slot[i], sl, (size_t)rows * 4);
        fv_new(&x[i], &r, rows, ms[i].k, ms[i].k, 0, rms ? -4 : -1, rms ? 4 : 1, 0);
        {
            float gm[576];
            for (int j = 0; j < ms[i].k; j++) gm[j] = opr_unif(&r, 0.5f, 1.5f);
            mb_new(&gam[i], gm, (size_t)ms[i].k * sizeof(float));
            for (int j = 0; j < ms[i].k; j++) gm[j] = opr_unif(&r, -0.5f, 0.5f);
            mb_new(&bet[i], gm, (size_t)ms[i].k * sizeof(float));
        }
        const sh_dtype dt = only >= 0 ? (sh_dtype)only : ms[i].dt;
        for (int j = 0; j < 3; j++) {
            const int c = 3 * i + j, n = (j ? ms[i].nkv : ms[i].nh) * ms[i].hd;
            uint8_t *wb = opr_weight_bytes(&r, dt, n, ms[i].k);
            mb_new(&w[c], wb, opr_row_bytes(dt, ms[i].k) * (size_t)n);
            free(wb);
            fv_new(&y[c], &r, rows, n, n + 2, 1, -1, 1, 1);
            const kvpool *pl = &pools[ms[i].f16];
            for (int on_gpu = 0; on_gpu < 2; on_gpu++) {
                sh_gemm_group *e = &(on_gpu ? gg : gc)[c];
                *e = (sh_gemm_group){{mb(&w[c], on_gpu), dt, n, ms[i].k}, NULL, fv_view(&x[i], on_gpu),
                                     fv_view(&y[c], on_gpu), 0};
                e->epi = j < 2 ? SH_EPI_ROPE : SH_EPI_NONE;
                e->rope = (sh_rope_params){ms[i].hd, ms[i].hd, i ? 10000.0f : 1e6f, ms[i].mode};
                e->pos = mb(&pos[i], on_gpu);
                e->kv_which = j;
                e->kv_slot = j ? mb(&slot[i], on_gpu) : NULL;
                e->kv = (sh_kv_ref){mb(&pl->m, on_gpu), pl->dt, pl->block_bytes, NULL, ms[i].layer,
                                    ms[i].nkv * ms[i].hd};
                if (rms) {
                    e->xf = rms == SH_XF_LN ? SH_XF_LN : SH_XF_RMS;
                    e->xf_gamma = mb(&gam[i], on_gpu);
                    e->xf_beta = rms == SH_XF_LN ? mb(&bet[i], on_gpu) : NULL;
                    e->xf_eps = 1e-5f;
                }
            }
        }
    }
    { /* a plain group in the same call */
        const int c = NC - 1;
        uint8_t *wb = opr_weight_bytes(&r, SH_BF16, 100, 64);
        mb_new(&w[c], wb, opr_row_bytes(SH_BF16, 64) * 100);
        free(wb);
        fv_new(&x[NM], &r, 5, 64, 64, 0, -1, 1, 0);
        fv_new(&y[c], &r, 5, 100, 100, 0, -1, 1, 1);
        for (int on_gpu = 0; on_gpu < 2; on_gpu++)
            (on_gpu ? gg : gc)[c] = (sh_gemm_group){{mb(&w[c], on_gpu), SH_BF16, 100, 64}, NULL,
                                                    fv_view(&x[NM], on_gpu), fv_view(&y[c], on_gpu), 0};
    }
    OK(sh_be_gemm(cpu, NC, gc));
    OK(sh_be_gemm(gpu, NC, gg));
    OK(sh_be_sync(gpu));
    for (int c = 0; c < NC; c++) {
        char what[96];
        snprintf(what, sizeof what, "gemm qkv epilogue %s [group %d]", label, c);
        expect_close(what, c, &y[c], 1e-5, SH_OP_GEMM);
    }
    const double e0 = pool_err(&pools[0]), e1 = pool_err(&pools[1]);
    note(SH_OP_KV_WRITE, e0);
    CHECK(e0 <= 1e-5, "gemm qkv epilogue %s: f32 pool err %.3g > 1e-5", label, e0);
    CHECK(e1 <= 1e-3, "gemm qkv epilogue %s: f16 pool err %.3g > 1e-3", label, e1);
    for (int c = 0; c < NC; c++) {
        mb_free(&w[c]);
        mb_free(&y[c].m);
    }
    for (int i = 0; i <= NM; i++) mb_free(&x[i].m);
    for (int i = 0; i < NM; i++) {
        mb_free(&pos[i]);
        mb_free(&slot[i]);
        mb_free(&gam[i]);
        mb_free(&bet[i]);
    }
    mb_free(&pools[0].m);
    mb_free(&pools[1].m);
    OK(sh_cuda_set_gemm_path(gpu, SH_CUDA_GEMM_AUTO));
}

/* A GEMM form behind a mode setter (0 never, 1 by launch size, 2 forced):
 * forced, the double reference suite, grouped == separate bitwise, the
 * cases against the CPU together and one group each, RoPE + KV store at
 * qkv_cap rows (0: up to 40); then by launch size; then mode dflt. */
static void test_gemm_form(const char *name, shoal_status (*set)(sh_backend *, int), int dflt, const gemm_case *cs,
                           int n, int qkv_cap, const gemm_case *rms, int n_rms) {
    char lbl[64];
    OK(set(gpu, 2));
    const int f0 = check_fail_;
    snprintf(lbl, sizeof lbl, "cuda/%s", name);
    opref_run_all(gpu, lbl);
    opref_grouped_run_all(gpu, lbl);
    printf("op_ref suite [%s]: %s\n", lbl, check_fail_ == f0 ? "ok" : "FAILED");
    test_gemm_mixed(name, cs, n, SH_CUDA_GEMM_AUTO);
    snprintf(lbl, sizeof lbl, "%s (one group)", name);
    for (int i = 0; i < n; i++) test_gemm_mixed(lbl, &cs[i], 1, SH_CUDA_GEMM_AUTO);
    snprintf(lbl, sizeof lbl, "%s (%d rows)", name, qkv_cap ? qkv_cap : 40);
    test_gemm_qkv_mixed(lbl, SH_CUDA_GEMM_AUTO, SH_BF16, qkv_cap, 0);
    for (int in = 1; in >= 0; in--) { /* the RMS transform inside the form, then as a norm launch before it */
        OK(sh_cuda_set_xf_forms(gpu, in ? 7 : 0));
        snprintf(lbl, sizeof lbl, "%s (%d rows, RMS%s)", name, qkv_cap ? qkv_cap : 40, in ? " inside" : " apart");
        test_gemm_qkv_mixed(lbl, SH_CUDA_GEMM_AUTO, SH_BF16, qkv_cap, 1);
        if (rms) {
            snprintf(lbl, sizeof lbl, "%s RMS%s", name, in ? " inside" : " apart");
            test_gemm_mixed(lbl, rms, n_rms, SH_CUDA_GEMM_AUTO);
        }
    }
    OK(set(gpu, 1));
    snprintf(lbl, sizeof lbl, "%s by size", name);
    test_gemm_mixed(lbl, cs, n, SH_CUDA_GEMM_AUTO);
    OK(set(gpu, dflt));
    CHECK(set(gpu, 3) == SHOAL_ERR_INVALID_ARG, "%s: mode setter took 3", name);
}

/* split = 0: one call for all groups (enough (row, KV head) pairs that the
 * backend shares K/V tiles among up to 4 query heads per block); split = 1:
 * one call per group (small launches: one query head per block). */
typedef struct attn_case {
    int f16, layer, n_head, n_head_kv, hd, rows, pos0, n_kv, causal;
    float qs;
} attn_case;

static const attn_case attn_cases[] = {
        {1, 0, 9, 3, 64, 1, 299, 300, 1, 3},   /* decode, GQA 3:1 */
        {0, 1, 4, 4, 32, 40, 0, 40, 1, 2},     /* prefill, causal */
        {1, 3, 8, 2, 128, 13, 20, 33, 1, 2},   /* prefill continuing a sequence */
        {0, 2, 6, 6, 64, 30, 0, 30, 0, 2},     /* encoder, bidirectional */
        {1, 1, 2, 1, 80, 2, 50, 52, 1, 4},     /* head_dim 80 */
        {0, 0, 2, 1, 256, 1, 600, 601, 1, 2},  /* head_dim 256, long */
        {1, 2, 3, 3, 20, 5, 0, 17, 0, 2},      /* unaligned rows (scalar loads) */
        {0, 3, 4, 1, 64, 1, 0, 1, 1, 2},       /* first token */
        {1, 0, 2, 2, 64, 3, 40, 43, 1, 40},    /* scores far past exp's range */
        {0, 1, 8, 1, 64, 6, 30, 36, 1, 2},     /* MQA 8:1: two blocks per KV head */
        {1, 2, 9, 1, 64, 2, 70, 72, 1, 2},     /* 9:1: three blocks, the last with one head */
        {0, 3, 12, 2, 32, 20, 0, 20, 0, 2},    /* 6:1 bidirectional */
};

/* groups that attn_dec.cu takes together (head_dim a multiple of 8, at most
 * 8 query heads per KV head, every key in 96 KB): decode at several lengths,
 * a prefill chunk, an encoder, both KV dtypes */
static const attn_case attn_dec_cases[] = {
    {1, 0, 9, 3, 64, 1, 191, 192, 1, 3},   /* the benchmark's last decode step */
    {0, 1, 9, 3, 64, 1, 63, 64, 1, 3},     /* f32 KV */
    {1, 2, 14, 2, 64, 1, 300, 301, 1, 2},  /* 7:1, long */
    {0, 3, 8, 8, 64, 1, 17, 18, 1, 2},     /* MHA */
    {1, 1, 8, 1, 128, 1, 40, 41, 1, 2},    /* 8:1, head_dim 128 */
    {1, 0, 4, 2, 64, 9, 20, 29, 1, 2},     /* prefill continuing a sequence */
    {0, 2, 6, 6, 32, 12, 0, 12, 0, 2},     /* encoder, bidirectional */
    {1, 3, 2, 2, 64, 1, 0, 1, 1, 2},       /* first token */
    {1, 1, 2, 1, 64, 1, 47, 48, 1, 40},    /* scores far past exp's range */
    {1, 0, 9, 3, 64, 64, 100, 164, 1, 3},  /* a 64-row chunk: 192 blocks alone (256 threads), more with the rest (128) */
};

static void test_attn_mixed(const char *label, const attn_case *cs, int nc, int split) {
    opr_rng r = {4096};
    kvpool pools[2];
    pool_new(&pools[0], &r, SH_F32);
    pool_new(&pools[1], &r, SH_F16);
    enum { NC = 16 };
    CHECK(nc <= NC, "attn cases: %d > %d", nc, NC);
    if (nc > NC) nc = NC;
    fview q[NC], out[NC];
    mbuf tab[NC];
    sh_attn_group gc[NC], gg[NC];
    for (int i = 0; i < nc; i++) {
        int qd = cs[i].n_head * cs[i].hd;
        int nb = (cs[i].n_kv + SH_KV_BLOCK - 1) / SH_KV_BLOCK;
        int32_t *t = malloc((size_t)nb * sizeof(int32_t));
        for (int j = 0; j < nb; j++) t[j] = opr_int(&r, POOL_BLOCKS);
        mb_new(&tab[i], t, (size_t)nb * sizeof(int32_t));
        free(t);
        fv_new(&q[i], &r, cs[i].rows, qd, qd + 4, 1, -cs[i].qs, cs[i].qs, 0);
        fv_new(&out[i], &r, cs[i].rows, qd, qd + 1, 2, 0, 0, 1);
        const kvpool *pl = &pools[cs[i].f16];
        for (int on_gpu = 0; on_gpu < 2; on_gpu++)
            (on_gpu ? gg : gc)[i] = (sh_attn_group){
                fv_view(&q[i], on_gpu), fv_view(&out[i], on_gpu), cs[i].n_head, cs[i].n_head_kv, cs[i].hd,
                1.0f / sqrtf((float)cs[i].hd), cs[i].pos0, cs[i].n_kv, cs[i].causal,
                {mb(&pl->m, on_gpu), pl->dt, pl->block_bytes, mb(&tab[i], on_gpu), cs[i].layer,
                 cs[i].n_head_kv * cs[i].hd}};
    }
    OK(sh_be_attn(cpu, nc, gc));
    if (split)
        for (int i = 0; i < nc; i++) OK(sh_be_attn(gpu, 1, &gg[i]));
    else
        OK(sh_be_attn(gpu, nc, gg));
    for (int i = 0; i < nc; i++) {
        char what[120];
        snprintf(what, sizeof what, "attn %s%s [%s hd=%d rows=%d %d:%d pos0=%d]", label, split ? " split" : "",
                 cs[i].f16 ? "f16" : "f32", cs[i].hd, cs[i].rows, cs[i].n_head, cs[i].n_head_kv, cs[i].pos0);
        expect_close(what, i, &out[i], 1e-5, SH_OP_ATTN);
        mb_free(&q[i].m);
        mb_free(&out[i].m);
        mb_free(&tab[i]);
    }
    mb_free(&pools[0].m);
    mb_free(&pools[1].m);
}

/* ---- a step of dependent ops --------------------------------------------- */

/* h = rmsnorm(x); u = h W1^T; a = silu(u) * u; y = a W2^T; y += x, h =
 * rmsnorm(y): queued in one step on the GPU (one descriptor copy, launches
 * deferred to step_end) vs the CPU. */
static void test_step(void) {
    opr_rng r = {8080};
    const int M = 6, D = 256, F = 512;
    fview x, h, u, a, y;
    fv_new(&x, &r, M, D, D, 0, -1, 1, 0);
    fv_new(&h, &r, M, D, D, 0, 0, 0, 1);
    fv_new(&u, &r, M, F, F, 0, 0, 0, 1);
    fv_new(&a, &r, M, F, F, 0, 0, 0, 1);
    fv_new(&y, &r, M, D, D, 0, 0, 0, 1);
    mbuf w1, w2;
    uint8_t *wb = opr_weight_bytes(&r, SH_BF16, F, D);
    mb_new(&w1, wb, opr_row_bytes(SH_BF16, D) * F);
    free(wb);
    wb = opr_weight_bytes(&r, SH_Q8_0, D, F);
    mb_new(&w2, wb, opr_row_bytes(SH_Q8_0, F) * D);
    free(wb);
    for (int on_gpu = 0; on_gpu < 2; on_gpu++) {
        sh_backend *be = on_gpu ? gpu : cpu;
        OK(sh_be_step_begin(be));
        sh_norm_group n = {fv_view(&x, on_gpu), {0}, NULL, NULL, 1e-6f, SH_NORM_RMS, fv_view(&h, on_gpu)};
        OK(sh_be_norm(be, 1, &n));
        sh_gemm_group g1 = {{mb(&w1, on_gpu), SH_BF16, F, D}, NULL, fv_view(&h, on_gpu), fv_view(&u, on_gpu), 0};
        OK(sh_be_gemm(be, 1, &g1));
        sh_act_group ac = {fv_view(&u, on_gpu), fv_view(&u, on_gpu), fv_view(&a, on_gpu), SH_ACT_SILU_MUL};
        OK(sh_be_act(be, 1, &ac));
        sh_gemm_group g2 = {{mb(&w2, on_gpu), SH_Q8_0, D, F}, NULL, fv_view(&a, on_gpu), fv_view(&y, on_gpu), 0};
        OK(sh_be_gemm(be, 1, &g2));
        sh_norm_group res = {fv_view(&y, on_gpu), fv_view(&x, on_gpu), NULL, NULL, 1e-6f, SH_NORM_RMS,
                             fv_view(&h, on_gpu)};
        OK(sh_be_norm(be, 1, &res));
        OK(sh_be_step_end(be));
    }
    OK(sh_be_sync(gpu));
    expect_close("step (u)", 0, &u, 1e-5, SH_OP_GEMM);
    expect_close("step (a)", 0, &a, 1e-5, SH_OP_ACT);
    expect_close("step (y = a W2^T + x)", 0, &y, 1e-5, SH_OP_GEMM);
    expect_close("step (h)", 0, &h, 1e-5, SH_OP_NORM);
    mb_free(&x.m);
    mb_free(&h.m);
    mb_free(&u.m);
    mb_free(&a.m);
    mb_free(&y.m);
    mb_free(&w1);
    mb_free(&w2);
}

/* 30 rounds of b = a W^T (bf16, M = 3, decode-sized and MMA), a = rmsnorm(b
 * + a) in one step: every kernel reads what the previous one wrote, so a
 * kernel that touched activations before its programmatic-launch wait
 * would read stale rows. */
static void test_chain(const char *label) {
    opr_rng r = {6060};
    const int M = 3, D = 128;
    fview a, b;
    fv_new(&a, &r, M, D, D, 0, -1, 1, 0);
    fv_new(&b, &r, M, D, D, 0, 0, 0, 1);
    mbuf w;
    uint8_t *wb = opr_weight_bytes(&r, SH_BF16, D, D);
    mb_new(&w, wb, opr_row_bytes(SH_BF16, D) * D);
    free(wb);
    for (int on_gpu = 0; on_gpu < 2; on_gpu++) {
        sh_backend *be = on_gpu ? gpu : cpu;
        OK(sh_be_step_begin(be));
        for (int it = 0; it < 30; it++) {
            sh_gemm_group g = {{mb(&w, on_gpu), SH_BF16, D, D}, NULL, fv_view(&a, on_gpu), fv_view(&b, on_gpu), 0};
            OK(sh_be_gemm(be, 1, &g));
            sh_norm_group n = {fv_view(&b, on_gpu), fv_view(&a, on_gpu), NULL, NULL, 1e-6f, SH_NORM_RMS,
                               fv_view(&a, on_gpu)};
            OK(sh_be_norm(be, 1, &n));
        }
        OK(sh_be_step_end(be));
    }
    OK(sh_be_sync(gpu));
    /* errors compound over 30 rounds; each round is within 1e-5 */
    expect_close(label, 0, &a, 1e-4, SH_OP_NORM);
    mb_free(&a.m);
    mb_free(&b.m);
    mb_free(&w);
}

/* ---- many groups, many calls --------------------------------------------- */

static void test_many(void) {
    opr_rng r = {31337};
    /* 3000 one-row norms in one call: 3000 descriptors (staging grows) */
    enum { NG = 3000, N = 32 };
    fview x, out;
    fv_new(&x, &r, NG, N, N + 1, 0, -2, 2, 0);
    fv_new(&out, &r, NG, N, N, 0, 0, 0, 1);
    sh_norm_group *gc = malloc(NG * sizeof *gc), *gg = malloc(NG * sizeof *gg);
    for (int i = 0; i < NG; i++)
        for (int on_gpu = 0; on_gpu < 2; on_gpu++) {
            sh_view xv = fv_view(&x, on_gpu), ov = fv_view(&out, on_gpu);
            xv.data += (size_t)i * xv.stride;
            ov.data += (size_t)i * ov.stride;
            xv.rows = ov.rows = 1;
            (on_gpu ? gg : gc)[i] = (sh_norm_group){xv, {0}, NULL, NULL, 1e-5f, (sh_norm_kind)(i % 2), ov};
        }
    OK(sh_be_norm(cpu, NG, gc));
    OK(sh_be_norm(gpu, NG, gg));
    expect_close("3000 groups", 0, &out, 1e-5, SH_OP_NORM);
    /* 50 calls in a row, each a different slice: the staging ring turns */
    for (int i = 0; i < 50; i++) {
        OK(sh_be_norm(cpu, 60, gc + 60 * i));
        OK(sh_be_norm(gpu, 60, gg + 60 * i));
    }
    expect_close("50 calls", 0, &out, 1e-5, SH_OP_NORM);
    free(gc);
    free(gg);
    mb_free(&x.m);
    mb_free(&out.m);
}

/* ---- argmax ---------------------------------------------------------------- */

/* The host loop the step planner uses without a device argmax. */
static int32_t host_argmax(const float *row, int n) {
    int32_t b = 0;
    for (int c = 1; c < n; c++)
        if (row[c] > row[b]) b = c;
    return b;
}

/* One call over groups of different widths (LM-head sized rows with 16-byte
 * loads, odd widths and offsets without), with planted ties (the first
 * wins), a maximum in the last column, NaNs (skipped; in column 0 it wins)
 * and a row of -inf; ids compared with the host loop, and the int slots
 * around each group's output untouched. */
static void test_argmax(void) {
    static const struct { int rows, n, pad, off; } cs[] = {
        {3, 49152, 0, 0}, {1, 50257, 3, 1}, {5, 1001, 0, 4}, {2, 96, 7, 0}, {4, 5, 0, 3}, {1, 1, 0, 0},
    };
    enum { NC = sizeof cs / sizeof cs[0] };
    opr_rng r = {4242};
    float *h[NC];
    void *x[NC], *o[NC];
    sh_argmax_group g[NC];
    for (int i = 0; i < NC; i++) {
        const int stride = cs[i].n + cs[i].pad, rows = cs[i].rows;
        size_t nf = (size_t)cs[i].off + (size_t)rows * stride;
        h[i] = malloc(nf * sizeof(float));
        for (size_t k = 0; k < nf; k++) h[i][k] = opr_unif(&r, -4, 4);
        float *v = h[i] + cs[i].off;
        for (int rr = 0; rr < rows; rr++) {
            float *row = v + (size_t)rr * stride;
            const int n = cs[i].n;
            switch ((i + rr) % 6) {
            case 0: /* tie: the same maximum twice, far apart */
                row[n / 3] = 9.0f;
                row[n - 1 - n / 7] = 9.0f;
                break;
            case 1: row[n - 1] = 9.5f; break; /* maximum in the tail */
            case 2: /* NaNs around a maximum */
                row[n / 2] = NAN;
                if (n > 4) row[n / 4] = 8.0f;
                break;
            case 3: row[0] = NAN; break; /* NaN in column 0 */
            case 4:
                for (int c = 0; c < n; c++) row[c] = -INFINITY;
                break;
            default: break; /* plain random */
            }
        }
        x[i] = opr_upload(gpu, h[i], nf * sizeof(float));
        int32_t *init = malloc(((size_t)rows + 2) * sizeof(int32_t));
        for (int k = 0; k < rows + 2; k++) init[k] = -7;
        o[i] = opr_upload(gpu, init, ((size_t)rows + 2) * sizeof(int32_t));
        free(init);
        g[i] = (sh_argmax_group){{(float *)x[i] + cs[i].off, rows, cs[i].n, stride}, (int32_t *)o[i] + 1};
    }
    OK(sh_be_argmax(gpu, NC, g));
    OK(sh_be_sync(gpu));
    for (int i = 0; i < NC; i++) {
        const int rows = cs[i].rows, stride = cs[i].n + cs[i].pad;
        int32_t got[8];
        opr_download(gpu, got, o[i], ((size_t)rows + 2) * sizeof(int32_t));
        CHECK(got[0] == -7 && got[rows + 1] == -7, "argmax group %d: wrote outside its rows", i);
        for (int rr = 0; rr < rows; rr++) {
            int32_t want = host_argmax(h[i] + cs[i].off + (size_t)rr * stride, cs[i].n);
            CHECK(got[1 + rr] == want, "argmax group %d row %d (n %d): got %d, want %d", i, rr, cs[i].n,
                  got[1 + rr], want);
        }
        sh_be_free(gpu, x[i]);
        sh_be_free(gpu, o[i]);
        free(h[i]);
    }
}

/* ---- large copies ------------------------------------------------------------ */

/* Uploads (asynchronous from pageable memory) and downloads (chunked through
 * bounce buffers from 256 KiB) of odd sizes and offsets, byte for byte; the
 * source buffer is overwritten right after the upload returns. */
static void test_copies(void) {
    static const size_t sizes[] = {1, 4099, (size_t)256 << 10, ((size_t)5 << 20) + 123, (size_t)9 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        unsigned char *h = malloc(n + 3), *back = malloc(n + 3), *ref = malloc(n);
        for (size_t k = 0; k < n + 3; k++) h[k] = (unsigned char)(k * 131u + i * 7u + (k >> 12));
        memcpy(ref, h + 3, n);
        void *dv = NULL;
        OK(sh_be_alloc(gpu, n + 64, &dv));
        if (!dv) break;
        OK(sh_be_upload(gpu, (unsigned char *)dv + 1, h + 3, n));
        memset(h, 0xee, n + 3); /* the upload must have consumed its source */
        memset(back, 0, n + 3);
        OK(sh_be_download(gpu, back + 3, (unsigned char *)dv + 1, n));
        CHECK(memcmp(back + 3, ref, n) == 0 && back[0] == 0 && back[1] == 0 && back[2] == 0,
              "copy of %zu bytes came back different", n);
        sh_be_free(gpu, dv);
        free(h);
        free(back);
        free(ref);
    }
}

/* ---- bandwidth -------------------------------------------------------------- */

static void test_bandwidth(void) {
    double a = 0, b = 0;
    OK(gpu->ops->bandwidth(gpu, &a));
    OK(gpu->ops->bandwidth(gpu, &b));
    printf("device copy bandwidth (read + write): %.0f GB/s\n", a / 1e9);
    CHECK(a > 1e10 && a < 1e14, "copy bandwidth %.3g B/s is implausible", a);
    CHECK(a == b, "bandwidth not cached: %.6g then %.6g", a, b);
}

/* ---- step graphs ------------------------------------------------------------ */

/* The ops of one small decode-like step, after uploading fresh x inside the
 * step: h = rmsnorm(x); u = h W1^T (bf16); a = silu(u) * u; y = a W2^T
 * (q8_0); ids = argmax(y) (GPU only). Buffers of set k. */
typedef struct gstep {
    fview x, h, u, a, y;
    void *ids; /* gpu: (M) int32 */
} gstep;

static void gstep_new(gstep *s, opr_rng *r, int m, int d, int f) {
    fv_new(&s->x, r, m, d, d, 0, -1, 1, 0);
    fv_new(&s->h, r, m, d, d, 0, 0, 0, 1);
    fv_new(&s->u, r, m, f, f, 0, 0, 0, 1);
    fv_new(&s->a, r, m, f, f, 0, 0, 0, 1);
    fv_new(&s->y, r, m, d, d, 0, 0, 0, 1);
    int32_t z[64] = {0};
    s->ids = opr_upload(gpu, z, sizeof z);
}

static void gstep_free(gstep *s) {
    mb_free(&s->x.m);
    mb_free(&s->h.m);
    mb_free(&s->u.m);
    mb_free(&s->a.m);
    mb_free(&s->y.m);
    sh_be_free(gpu, s->ids);
}

static void gstep_run(gstep *s, const mbuf *w1, const mbuf *w2, int d, int f, const float *xh, int on_gpu) {
    sh_backend *be = on_gpu ? gpu : cpu;
    OK(sh_be_step_begin(be));
    OK(sh_be_upload(be, mb(&s->x.m, on_gpu), xh, s->x.m.bytes));
    sh_norm_group n = {fv_view(&s->x, on_gpu), {0}, NULL, NULL, 1e-6f, SH_NORM_RMS, fv_view(&s->h, on_gpu)};
    OK(sh_be_norm(be, 1, &n));
    sh_gemm_group g1 = {{mb(w1, on_gpu), SH_BF16, f, d}, NULL, fv_view(&s->h, on_gpu), fv_view(&s->u, on_gpu), 0};
    OK(sh_be_gemm(be, 1, &g1));
    sh_act_group ac = {fv_view(&s->u, on_gpu), fv_view(&s->u, on_gpu), fv_view(&s->a, on_gpu), SH_ACT_SILU_MUL};
    OK(sh_be_act(be, 1, &ac));
    sh_gemm_group g2 = {{mb(w2, on_gpu), SH_Q8_0, d, f}, NULL, fv_view(&s->a, on_gpu), fv_view(&s->y, on_gpu), 0};
    OK(sh_be_gemm(be, 1, &g2));
    if (on_gpu) {
        sh_argmax_group am = {fv_view(&s->y, 1), s->ids};
        OK(sh_be_argmax(be, 1, &am));
    }
    OK(sh_be_step_end(be));
}

/* Runs one step on both backends with inputs xh and compares: u and y with
 * the CPU, the device argmax with the host loop over the GPU's own y. */
static void gstep_check(gstep *s, const mbuf *w1, const mbuf *w2, int d, int f, const float *xh, const char *label,
                        int it) {
    const int m = s->x.rows;
    gstep_run(s, w1, w2, d, f, xh, 0);
    gstep_run(s, w1, w2, d, f, xh, 1);
    OK(sh_be_sync(gpu));
    char what[96];
    snprintf(what, sizeof what, "%s step %d, %d rows (u)", label, it, m);
    expect_close(what, 0, &s->u, 1e-5, SH_OP_GEMM);
    snprintf(what, sizeof what, "%s step %d, %d rows (y)", label, it, m);
    expect_close(what, 0, &s->y, 1e-5, SH_OP_GEMM);
    float *yg = malloc(s->y.m.bytes);
    int32_t ids[64];
    opr_download(gpu, yg, s->y.m.g, s->y.m.bytes);
    opr_download(gpu, ids, s->ids, (size_t)m * sizeof(int32_t));
    for (int rr = 0; rr < m; rr++)
        CHECK(ids[rr] == host_argmax(yg + (size_t)rr * d, d), "%s step %d: argmax row %d", label, it, rr);
    free(yg);
}

/* Steps of one shape alternate between two buffer sets with fresh inputs
 * uploaded inside the step, each compared with the CPU, argmax with the host
 * loop over the GPU's own y. The backend's two descriptor arenas take turns
 * (a step's graph is per arena), so steps 0 and 1 run directly, 2 and 3 are
 * captured and 4 replays; step 5, of another shape, runs directly, and step 6
 * (the first shape, arena of steps 0, 2, 4) replays again. */
static void test_graph_replay(const char *label) {
    opr_rng r = {9090};
    const int D = 256, F = 512;
    mbuf w1, w2;
    uint8_t *wb = opr_weight_bytes(&r, SH_BF16, F, D);
    mb_new(&w1, wb, opr_row_bytes(SH_BF16, D) * F);
    free(wb);
    wb = opr_weight_bytes(&r, SH_Q8_0, D, F);
    mb_new(&w2, wb, opr_row_bytes(SH_Q8_0, F) * D);
    free(wb);
    gstep set[2], other;
    gstep_new(&set[0], &r, 3, D, F);
    gstep_new(&set[1], &r, 3, D, F);
    gstep_new(&other, &r, 5, D, F);
    sh_cuda_graph_stats g0, g1;
    OK(sh_be_sync(gpu));
    OK(sh_cuda_graph_stats_get(gpu, &g0));
    float *xh = malloc((size_t)5 * D * sizeof(float));
    for (int it = 0; it < 7; it++) {
        gstep *s = it == 5 ? &other : &set[it % 2];
        for (int k = 0; k < s->x.rows * D; k++) xh[k] = opr_unif(&r, -1, 1);
        gstep_check(s, &w1, &w2, D, F, xh, label, it);
    }
    free(xh);
    OK(sh_cuda_graph_stats_get(gpu, &g1));
    uint64_t dir = g1.direct - g0.direct, cap = g1.captures - g0.captures, rep = g1.replays - g0.replays;
    printf("%s: %llu direct, %llu captured, %llu replayed\n", label, (unsigned long long)dir,
           (unsigned long long)cap, (unsigned long long)rep);
    CHECK(dir == 3 && cap == 2 && rep == 2 && g1.capture_failures == g0.capture_failures,
          "%s: steps direct/captured/replayed %llu/%llu/%llu, want 3/2/2", label, (unsigned long long)dir,
          (unsigned long long)cap, (unsigned long long)rep);
    gstep_free(&set[0]);
    gstep_free(&set[1]);
    gstep_free(&other);
    mb_free(&w1);
    mb_free(&w2);
}

/* Capacity buckets: steps whose row counts differ but round to the same
 * bucket (37-40 rows: the counts are rounded up to a multiple of 4 there)
 * reuse the captured graphs with the descriptors rewritten in place — one
 * graph per descriptor arena (they take turns): the first two steps run
 * directly, the next two are captured, the other 3 replay — and every step
 * still equals the CPU. Without buckets the four row counts would be eight
 * graphs (no replays among 7 steps). */
static void test_graph_buckets(void) {
    opr_rng r = {4242};
    const int D = 128, F = 256;
    static const int rows[7] = {37, 40, 38, 39, 37, 40, 38};
    mbuf w1, w2;
    uint8_t *wb = opr_weight_bytes(&r, SH_BF16, F, D);
    mb_new(&w1, wb, opr_row_bytes(SH_BF16, D) * F);
    free(wb);
    wb = opr_weight_bytes(&r, SH_Q8_0, D, F);
    mb_new(&w2, wb, opr_row_bytes(SH_Q8_0, F) * D);
    free(wb);
    gstep st[7];
    for (int i = 0; i < 7; i++) gstep_new(&st[i], &r, rows[i], D, F);
    sh_cuda_graph_stats g0, g1;
    OK(sh_be_sync(gpu));
    OK(sh_cuda_graph_stats_get(gpu, &g0));
    float *xh = malloc((size_t)40 * D * sizeof(float));
    for (int it = 0; it < 7; it++) {
        for (int k = 0; k < rows[it] * D; k++) xh[k] = opr_unif(&r, -1, 1);
        gstep_check(&st[it], &w1, &w2, D, F, xh, "buckets", it);
    }
    free(xh);
    OK(sh_cuda_graph_stats_get(gpu, &g1));
    uint64_t dir = g1.direct - g0.direct, cap = g1.captures - g0.captures, rep = g1.replays - g0.replays;
    printf("graph buckets (37-40 rows): %llu direct, %llu captured, %llu replayed\n", (unsigned long long)dir,
           (unsigned long long)cap, (unsigned long long)rep);
    CHECK(dir == 2 && cap == 2 && rep == 3 && g1.capture_failures == g0.capture_failures,
          "graph buckets: steps direct/captured/replayed %llu/%llu/%llu, want 2/2/3", (unsigned long long)dir,
          (unsigned long long)cap, (unsigned long long)rep);
    for (int i = 0; i < 7; i++) gstep_free(&st[i]);
    mb_free(&w1);
    mb_free(&w2);
}

/* ---- device-side errors and the small API -------------------------------- */

static void test_errors_and_info(void) {
    const sh_cuda_device_info *info = sh_cuda_backend_info(gpu);
    CHECK(info != NULL, "no device info");
    if (info) {
        printf("device: %s, %d SMs, cc %d.%d, %.1f GiB, pci %s\n", info->name, info->sm_count, info->cc_major,
               info->cc_minor, (double)info->total_bytes / (1u << 30), info->pci_bus_id);
        CHECK(info->name[0] && info->sm_count > 0 && info->total_bytes > 0 && info->pci_bus_id[0],
              "incomplete device info");
    }
    int n = 0;
    OK(sh_cuda_device_count(&n));
    CHECK(n >= 1, "device count %d", n);
    sh_cuda_device_info di;
    CHECK(sh_cuda_device_info_get(n, &di) == SHOAL_ERR_NOT_FOUND, "device %d should not exist", n);
    sh_backend *be2 = NULL;
    CHECK(sh_cuda_backend_create(n, &be2) == SHOAL_ERR_NOT_FOUND && !be2, "cuda:%d should not exist", n);
    CHECK(sh_cuda_set_gemm_path(cpu, SH_CUDA_GEMM_SIMT) == SHOAL_ERR_INVALID_ARG, "set_gemm_path took a CPU backend");
    CHECK(sh_cuda_stream(cpu) == NULL && sh_cuda_stream(gpu) != NULL, "sh_cuda_stream");
    CHECK(strcmp(gpu->ops->name, "cuda") == 0, "name %s", gpu->ops->name);

    /* an embedding id out of range: zero row, SHOAL_ERR_RANGE at sync, then clear */
    opr_rng r = {1};
    uint8_t *wb = opr_weight_bytes(&r, SH_F16, 4, 32);
    void *w = opr_upload(gpu, wb, opr_row_bytes(SH_F16, 32) * 4);
    free(wb);
    int32_t ids[2] = {1, 4};
    int32_t *idd = opr_upload(gpu, ids, sizeof ids);
    float init[64];
    for (int c = 0; c < 64; c++) init[c] = 5.0f;
    float *o = opr_upload(gpu, init, sizeof init);
    sh_get_rows_group g = {{w, SH_F16, 4, 32}, idd, {o, 2, 32, 32}, 0};
    OK(sh_be_get_rows(gpu, 1, &g));
    CHECK(sh_be_sync(gpu) == SHOAL_ERR_RANGE, "bad id not reported");
    OK(sh_be_sync(gpu));
    float got[64];
    opr_download(gpu, got, o, sizeof got);
    int zero = 1;
    for (int c = 32; c < 64; c++) zero &= got[c] == 0.0f;
    CHECK(zero, "row of a bad id not zeroed");
    sh_be_free(gpu, w);
    sh_be_free(gpu, idd);
    sh_be_free(gpu, o);

    /* allocation failure is a status, not an abort */
    void *big = NULL;
    shoal_status s = sh_be_alloc(gpu, (size_t)1 << 50, &big);
    CHECK(s == SHOAL_ERR_NOMEM && big == NULL, "1 PiB alloc: %d", (int)s);
    OK(sh_be_sync(gpu));
}

int main(int argc, char **argv) {
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0; /* for compute-sanitizer runs */
    shoal_status s = sh_cuda_backend_create(0, &gpu);
    if (s != SHOAL_OK) {
        /* no device, or one this build has no kernels for (sm_90a only) */
        printf("skipped: %s\n0 passed, 0 failed, 1 skipped\n", shoal_last_error());
        return s == SHOAL_ERR_DEVICE || s == SHOAL_ERR_UNSUPPORTED ? 0 : 1;
    }
    OK(sh_cpu_backend_create(0, &cpu));
    if (!cpu) return check_report();
    /* attn_dec's split of one-sequence launches sums in another order than a
     * launch of more pairs: off (the default) for the bitwise grouped ==
     * separate checks, on and off in the attention section below */
    OK(sh_cuda_set_attn_dec_split(gpu, 1));

    test_errors_and_info();

    /* the double-precision reference suite, per GEMM path */
    static const struct { sh_cuda_gemm_path p; const char *name; } paths[] = {
        {SH_CUDA_GEMM_AUTO, "cuda/auto"}, {SH_CUDA_GEMM_SIMT, "cuda/simt"}, {SH_CUDA_GEMM_MMA, "cuda/mma"}};
    for (int i = 0; i < (quick ? 1 : 3); i++) {
        int f0 = check_fail_;
        OK(sh_cuda_set_gemm_path(gpu, paths[i].p));
        opref_run_all(gpu, paths[i].name);
        printf("op_ref suite [%s]: %s\n", paths[i].name, check_fail_ == f0 ? "ok" : "FAILED");
    }
    OK(sh_cuda_set_gemm_path(gpu, SH_CUDA_GEMM_AUTO));
    /* bitwise needs the same kernel for a group alone and in company: the
     * tensor-copy forms, chosen by launch size, sum in another order (their
     * own section below checks them forced) */
    OK(sh_cuda_set_gemm_tmx(gpu, 0));
    int f0 = check_fail_;
    opref_grouped_run_all(gpu, "cuda");
    printf("grouped == separate calls (bitwise): %s\n", check_fail_ == f0 ? "ok" : "FAILED");
    OK(sh_cuda_set_gemm_tmx(gpu, 1));

    /* ragged calls against the CPU backend */
    static const struct { sh_cuda_gemm_path p; const char *name; } gp[] = {
        {SH_CUDA_GEMM_AUTO, "auto"}, {SH_CUDA_GEMM_SIMT, "simt"}, {SH_CUDA_GEMM_MMA, "mma"}};
    for (int i = 0; i < 3; i++) {
        test_gemm_mixed(gp[i].name, gemm_decode, (int)(sizeof gemm_decode / sizeof gemm_decode[0]), gp[i].p);
        if (!quick)
            test_gemm_mixed(gp[i].name, gemm_prefill, (int)(sizeof gemm_prefill / sizeof gemm_prefill[0]), gp[i].p);
        test_gemm_mixed(gp[i].name, gemm_xf, (int)(sizeof gemm_xf / sizeof gemm_xf[0]), gp[i].p);
        test_gemm_mixed(gp[i].name, gemm_ln, (int)(sizeof gemm_ln / sizeof gemm_ln[0]), gp[i].p);
        for (int c = 0; c < (int)(sizeof gemm_ln / sizeof gemm_ln[0]); c++)
            test_gemm_mixed(gp[i].name, &gemm_ln[c], 1, gp[i].p);
        test_gemm_mixed(gp[i].name, gemm_epi, (int)(sizeof gemm_epi / sizeof gemm_epi[0]), gp[i].p);
        test_gemm_mixed(gp[i].name, gemm_epi_rms, (int)(sizeof gemm_epi_rms / sizeof gemm_epi_rms[0]), gp[i].p);
        test_gemm_mixed(gp[i].name, gemm_norm, (int)(sizeof gemm_norm / sizeof gemm_norm[0]), gp[i].p);
        test_gemm_qkv_mixed(gp[i].name, gp[i].p, -1, 0, 0);
    }
    /* one row: the SIMT path that reads the slot and the angle before the wait */
    test_gemm_qkv_mixed("auto (one row)", SH_CUDA_GEMM_AUTO, -1, 1, 0);
    test_gemm_qkv_mixed("auto (one row, LN)", SH_CUDA_GEMM_AUTO, -1, 1, SH_XF_LN);
    test_gemm_qkv_mixed("auto (LN apart)", SH_CUDA_GEMM_AUTO, -1, 0, SH_XF_LN);
    /* every tensor-core tile configuration, whatever the launch size picks */
    static const char *tiles[] = {"mma/tile0", "mma/tile1", "mma/tile2", "mma/tile3", "mma/tile4"};
    OK(sh_cuda_set_gemm_tmx(gpu, 0));
    for (int t = 0; t < 5; t++) {
        OK(sh_cuda_set_mma_tile(gpu, t));
        test_gemm_mixed(tiles[t], gemm_decode, (int)(sizeof gemm_decode / sizeof gemm_decode[0]), SH_CUDA_GEMM_MMA);
        test_gemm_mixed(tiles[t], gemm_prefill, (int)(sizeof gemm_prefill / sizeof gemm_prefill[0]), SH_CUDA_GEMM_MMA);
        test_gemm_mixed(tiles[t], gemm_xf, (int)(sizeof gemm_xf / sizeof gemm_xf[0]), SH_CUDA_GEMM_MMA);
        test_gemm_mixed(tiles[t], gemm_epi, (int)(sizeof gemm_epi / sizeof gemm_epi[0]), SH_CUDA_GEMM_MMA);
        test_gemm_mixed(tiles[t], gemm_norm, (int)(sizeof gemm_norm / sizeof gemm_norm[0]), SH_CUDA_GEMM_MMA);
        test_gemm_qkv_mixed(tiles[t], SH_CUDA_GEMM_MMA, -1, 0, 0);
    }
    OK(sh_cuda_set_mma_tile(gpu, -1));
    OK(sh_cuda_set_gemm_tmx(gpu, 1));
    /* the streamed GEMM forced onto every eligible call: the reference suite,
     * grouped == separate, ragged calls against the CPU, bitwise the tile
     * kernels' results */
    {
        const int nb = (int)(sizeof gemm_ring_bf16 / sizeof gemm_ring_bf16[0]);
        const int nf = (int)(sizeof gemm_ring_f16 / sizeof gemm_ring_f16[0]);
        const int nr = (int)(sizeof gemm_ring_rms / sizeof gemm_ring_rms[0]);
        OK(sh_cuda_set_gemm_tmx(gpu, 0));
        OK(sh_cuda_set_gemm_ring(gpu, 2));
        f0 = check_fail_;
        opref_run_all(gpu, "cuda/ring");
        opref_grouped_run_all(gpu, "cuda/ring");
        printf("op_ref suite [cuda/ring]: %s\n", check_fail_ == f0 ? "ok" : "FAILED");
        test_gemm_mixed("ring", gemm_ring_bf16, nb, SH_CUDA_GEMM_AUTO);
        test_gemm_mixed("ring", gemm_ring_f16, nf, SH_CUDA_GEMM_AUTO);
        test_gemm_qkv_mixed("ring", SH_CUDA_GEMM_AUTO, SH_BF16, 0, 0);
        for (int in = 1; in >= 0; in--) { /* the RMS transform inside the ring, then as a norm launch before it */
            OK(sh_cuda_set_xf_forms(gpu, in ? 7 : 0));
            test_gemm_qkv_mixed(in ? "ring (RMS inside)" : "ring (RMS apart)", SH_CUDA_GEMM_AUTO, SH_BF16, 0, 1);
            test_gemm_mixed(in ? "ring RMS inside" : "ring RMS apart", gemm_ring_rms, nr, SH_CUDA_GEMM_AUTO);
        }
        OK(sh_cuda_set_gemm_ring(gpu, 1));
        test_gemm_ring_bitwise("bf16", gemm_ring_bf16, nb);
        OK(sh_cuda_set_xf_forms(gpu, 7));
        test_gemm_ring_bitwise("bf16 RMS", gemm_ring_rms, nr);
        OK(sh_cuda_set_xf_forms(gpu, 0));
        CHECK(sh_cuda_set_xf_forms(gpu, 8) == SHOAL_ERR_INVALID_ARG, "set_xf_forms took 8");
        CHECK(sh_cuda_set_xf_forms(cpu, 1) == SHOAL_ERR_INVALID_ARG, "set_xf_forms took a CPU backend");
        test_gemm_ring_bitwise("f16", gemm_ring_f16, nf);
        CHECK(sh_cuda_set_gemm_ring(gpu, 5) == SHOAL_ERR_INVALID_ARG, "set_gemm_ring took 5");
    }
    /* its tensor-copy form (wgmma; bf16 weights, M <= 16, sm_90) forced the
     * same way, against the double reference and the CPU (not bitwise the
     * tile kernels: it sums in another order); elsewhere mode 4 falls back
     * to the per-warp form and these repeat the sections above */
    {
        const int nw = (int)(sizeof gemm_ring_wg / sizeof gemm_ring_wg[0]);
        OK(sh_cuda_set_gemm_tmx(gpu, 0));
        OK(sh_cuda_set_gemm_ring(gpu, 4));
        f0 = check_fail_;
        opref_run_all(gpu, "cuda/ring-tma");
        opref_grouped_run_all(gpu, "cuda/ring-tma");
        printf("op_ref suite [cuda/ring-tma]: %s\n", check_fail_ == f0 ? "ok" : "FAILED");
        test_gemm_mixed("ring-tma", gemm_ring_wg, TMA_CASES, SH_CUDA_GEMM_AUTO);
        test_gemm_mixed("ring-tma (with K > 640)", gemm_ring_wg, nw, SH_CUDA_GEMM_AUTO);
        for (int i = 0; i < nw; i++) test_gemm_mixed("ring-tma (one group)", &gemm_ring_wg[i], 1, SH_CUDA_GEMM_AUTO);
        /* RoPE (both pair orders) with the KV store: at 16 rows per model
         * the call takes the tensor-copy form; at up to 40 the per-warp one */
        test_gemm_qkv_mixed("ring-tma", SH_CUDA_GEMM_AUTO, SH_BF16, 16, 0);
        test_gemm_qkv_mixed("ring-tma (40 rows)", SH_CUDA_GEMM_AUTO, SH_BF16, 0, 0);
        for (int in = 1; in >= 0; in--) { /* the RMS transform inside the form, then as a norm launch before it */
            OK(sh_cuda_set_xf_forms(gpu, in ? 7 : 0));
            test_gemm_qkv_mixed(in ? "ring-tma (RMS inside)" : "ring-tma (RMS apart)", SH_CUDA_GEMM_AUTO, SH_BF16, 16, 1);
            test_gemm_mixed(in ? "ring-tma RMS inside" : "ring-tma RMS apart", gemm_tma_rms,
                            (int)(sizeof gemm_tma_rms / sizeof gemm_tma_rms[0]), SH_CUDA_GEMM_AUTO);
            for (int i = 0; i < (int)(sizeof gemm_tma_rms / sizeof gemm_tma_rms[0]); i++)
                test_gemm_mixed(in ? "ring-tma RMS inside (one group)" : "ring-tma RMS apart (one group)", &gemm_tma_rms[i],
                                1, SH_CUDA_GEMM_AUTO);
        }
        OK(sh_cuda_set_gemm_ring(gpu, 1));
        OK(sh_cuda_set_gemm_tmx(gpu, 1));
    }
    /* its deep form (one block per SM, up to 12 stages: chunks wholly past K
     * copy an earlier chunk instead of zeroed stages) forced onto every call
     * of 2 to 16 rows below the LM-head rule, then by launch size, then off
     * (the default); RoPE + KV store at 16 rows */
    test_gemm_form("deep", sh_cuda_set_gemm_deep, 0, gemm_ring_wg, (int)(sizeof gemm_ring_wg / sizeof gemm_ring_wg[0]),
                   16, gemm_tma_rms, (int)(sizeof gemm_tma_rms / sizeof gemm_tma_rms[0]));
    /* the form with streamed terms (bf16, 17 to 64 rows per group, sm_90)
     * forced onto every call it can take, then by launch size (the default);
     * RoPE + KV store at up to 40 rows. Elsewhere both repeat the sections
     * above with the other kernels */
    test_gemm_form("tmx", sh_cuda_set_gemm_tmx, 1, gemm_tmx, (int)(sizeof gemm_tmx / sizeof gemm_tmx[0]), 0,
                   gemm_tmx_rms, (int)(sizeof gemm_tmx_rms / sizeof gemm_tmx_rms[0]));
    test_get_rows_mixed();
    test_norm_mixed();
    test_act_mixed();
    test_rope_mixed();
    test_pool_mixed();
    test_kv_write_mixed(0);
    test_kv_write_mixed(1);
    const int na = (int)(sizeof attn_cases / sizeof attn_cases[0]);
    const int nd = (int)(sizeof attn_dec_cases / sizeof attn_dec_cases[0]);
    test_attn_mixed("mixed", attn_cases, na, 0);
    test_attn_mixed("mixed", attn_cases, na, 1);
    /* the shared-tile kernel with its key tiles split (the default budget
     * splits only small launches), then no split at all */
    OK(sh_cuda_set_attn_split(gpu, 16));
    test_attn_mixed("mixed", attn_cases, na, 0);
    OK(sh_cuda_set_attn_split(gpu, 0));
    test_attn_mixed("mixed", attn_cases, na, 0);
    test_attn_mixed("mixed", attn_cases, na, 1);
    OK(sh_cuda_set_attn_split(gpu, 4));
    CHECK(sh_cuda_set_attn_split(gpu, -1) == SHOAL_ERR_INVALID_ARG, "set_attn_split took -1");
    /* every key in shared memory (attn_dec.cu): never, small launches (the
     * default), whenever the keys fit — against the CPU and the reference */
    static const char *dec_names[] = {"cuda/attn-tiles", "cuda/attn-dec-auto", "cuda/attn-dec",
                                      "cuda/attn-dec-auto (split 8)", "cuda/attn-dec (split 8)",
                                      "cuda/attn-dec (split 32)"};
    static const int dec_modes[] = {0, 1, 2, 1, 2, 2}, dec_split[] = {1, 1, 1, 8, 8, 32};
    for (int c = 0; c < 6; c++) {
        OK(sh_cuda_set_attn_dec(gpu, dec_modes[c]));
        OK(sh_cuda_set_attn_dec_split(gpu, dec_split[c]));
        test_attn_mixed(dec_names[c], attn_dec_cases, nd, 0);
        test_attn_mixed(dec_names[c], attn_dec_cases, nd, 1);
        f0 = check_fail_;
        opref_attn_all(gpu, dec_names[c], 7000);
        printf("op_ref attention [%s]: %s\n", dec_names[c], check_fail_ == f0 ? "ok" : "FAILED");
    }
    OK(sh_cuda_set_attn_dec(gpu, 1));
    OK(sh_cuda_set_attn_dec_split(gpu, 1));
    CHECK(sh_cuda_set_attn_dec_split(gpu, 0) == SHOAL_ERR_INVALID_ARG, "set_attn_dec_split took 0");
    CHECK(sh_cuda_set_attn_dec_split(gpu, 33) == SHOAL_ERR_INVALID_ARG, "set_attn_dec_split took 33");
    CHECK(sh_cuda_set_attn_dec(gpu, 3) == SHOAL_ERR_INVALID_ARG, "set_attn_dec took 3");
    test_argmax();
    test_copies();
    test_step();
    test_many();
    test_chain("chain (pdl)");
    test_graph_replay("graph (pdl)");
    test_graph_buckets();
    /* the same without programmatic dependent launch */
    OK(sh_cuda_set_pdl(gpu, 0));
    test_step();
    test_chain("chain (no pdl)");
    test_graph_replay("graph (no pdl)");
    OK(sh_cuda_set_pdl(gpu, 1));
    /* and without graphs */
    OK(sh_cuda_set_graphs(gpu, 0));
    test_step();
    test_chain("chain (no graphs)");
    OK(sh_cuda_set_graphs(gpu, 1));
    if (!quick) test_bandwidth();
    OK(sh_be_sync(gpu));

    printf("largest error vs the CPU backend:");
    for (int op = 0; op < SH_OP_COUNT; op++)
        if (compared[op]) printf(" %s %.2g", sh_op_name((sh_op)op), worst[op]); /* argmax, sample: exact tests */
    printf("\n");
    sh_backend_free(cpu);
    sh_backend_free(gpu);
    return check_report();
}

#else /* !SHOAL_WITH_CUDA */

int main(void) {
    printf("skipped: built without CUDA\n0 passed, 0 failed, 1 skipped\n");
    return 0;
}

#endif
