/* The op conformance harness: runs every op of a backend on random data and
 * compares with a naive double-precision reference written here, from the
 * contracts in engine/backend.h (independently of any backend's code).
 *
 * Backend-agnostic: every address handed to the backend is backend memory
 * (sh_be_alloc + sh_be_upload), results come back with sh_be_download, so
 * the same harness checks "cpu" and accelerator backends:
 *
 *   opref_run_all(be, "cuda");           // ops x dtypes x shapes vs reference
 *   opref_grouped_run_all(be, "cuda");   // grouped call == separate calls, bitwise
 *
 * Error measure: max|got - ref| / max|ref| over the output, limit OPREF_TOL.
 * Views get strides > cols, odd offsets, and NaN in their padding: a kernel
 * that reads outside a view produces NaN, one that writes outside is caught
 * by the padding check. Unused KV blocks and slots are NaN as well.
 *
 * Header-only; include after check.h in one test file.
 */
#ifndef SH_OP_REF_H
#define SH_OP_REF_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "check.h"

#ifndef OPREF_TOL
#define OPREF_TOL 1e-5
#endif

/* every function here may go unused in a given test */
#define OPR_FN static __attribute__((unused))

/* ---- random numbers (splitmix64) --------------------------------------- */

typedef struct opr_rng {
    uint64_t s;
} opr_rng;

static inline uint64_t opr_next(opr_rng *r) {
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline float opr_unif(opr_rng *r, float lo, float hi) {
    return lo + (hi - lo) * (float)((double)(opr_next(r) >> 11) * (1.0 / 9007199254740992.0));
}

static inline int opr_int(opr_rng *r, int n) { return (int)(opr_next(r) % (uint64_t)n); }

/* ---- formats, decoded independently ------------------------------------ */

static inline double opr_f16(uint16_t h) {
    int e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
    return (h & 0x8000) ? -v : v;
}

static inline double opr_bf16(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* A random f16 with biased exponent in [emin, emax] and random sign. */
static inline uint16_t opr_rand_f16(opr_rng *r, int emin, int emax) {
    uint16_t e = (uint16_t)(emin + opr_int(r, emax - emin + 1));
    return (uint16_t)((opr_next(r) & 1 ? 0x8000 : 0) | (e << 10) | (opr_next(r) & 1023));
}

static inline uint16_t opr_get16(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

static inline size_t opr_row_bytes(sh_dtype dt, int n) {
    switch (dt) {
    case SH_F32: return (size_t)n * 4;
    case SH_F16:
    case SH_BF16: return (size_t)n * 2;
    case SH_Q8_0: return (size_t)n / 32 * 34;
    case SH_Q4_0: return (size_t)n / 32 * 18;
    }
    return 0;
}

static inline const char *opr_dt_name(sh_dtype dt) {
    switch (dt) {
    case SH_F32: return "f32";
    case SH_F16: return "f16";
    case SH_BF16: return "bf16";
    case SH_Q8_0: return "q8_0";
    case SH_Q4_0: return "q4_0";
    }
    return "?";
}

/* Random weight bytes (rows x n) of dt with values of order 1. */
OPR_FN uint8_t *opr_weight_bytes(opr_rng *r, sh_dtype dt, int rows, int n) {
    size_t rb = opr_row_bytes(dt, n), total = rb * (size_t)rows;
    uint8_t *w = malloc(total ? total : 1);
    for (int i = 0; i < rows; i++) {
        uint8_t *row = w + rb * (size_t)i;
        switch (dt) {
        case SH_F32:
            for (int k = 0; k < n; k++) {
                float v = opr_unif(r, -1, 1);
                memcpy(row + 4 * k, &v, 4);
            }
            break;
        case SH_F16:
            for (int k = 0; k < n; k++) {
                uint16_t h = opr_rand_f16(r, 8, 15);
                memcpy(row + 2 * k, &h, 2);
            }
            break;
        case SH_BF16:
            for (int k = 0; k < n; k++) {
                float v = opr_unif(r, -1, 1);
                uint32_t u;
                memcpy(&u, &v, 4);
                uint16_t h = (uint16_t)(u >> 16);
                memcpy(row + 2 * k, &h, 2);
            }
            break;
        case SH_Q8_0:
            for (int b = 0; b < n / 32; b++) {
                uint16_t d = opr_rand_f16(r, 7, 9) & 0x7fff;
                memcpy(row + 34 * b, &d, 2);
                for (int k = 0; k < 32; k++) row[34 * b + 2 + k] = (uint8_t)opr_next(r);
            }
            break;
        case SH_Q4_0:
            for (int b = 0; b < n / 32; b++) {
                uint16_t d = opr_rand_f16(r, 10, 12) & 0x7fff;
                memcpy(row + 18 * b, &d, 2);
                for (int k = 0; k < 16; k++) row[18 * b + 2 + k] = (uint8_t)opr_next(r);
            }
            break;
        }
    }
    return w;
}

/* Element k of a weight row, dequantised by the dtype's definition. */
OPR_FN double opr_weight_at(sh_dtype dt, const uint8_t *row, int k) {
    switch (dt) {
    case SH_F32: {
        float v;
        memcpy(&v, row + 4 * k, 4);
        return v;
    }
    case SH_F16: return opr_f16(opr_get16(row + 2 * k));
    case SH_BF16: return opr_bf16(opr_get16(row + 2 * k));
    case SH_Q8_0: {
        const uint8_t *b = row + 34 * (k / 32);
        return opr_f16(opr_get16(b)) * (double)(int8_t)b[2 + k % 32];
    }
    case SH_Q4_0: {
        const uint8_t *b = row + 18 * (k / 32);
        int j = k % 32;
        int q = j < 16 ? (b[2 + j] & 15) : (b[2 + j - 16] >> 4);
        return opr_f16(opr_get16(b)) * (double)(q - 8);
    }
    }
    return NAN;
}

/* ---- backend buffers --------------------------------------------------- */

OPR_FN void *opr_upload(sh_backend *be, const void *host, size_t bytes) {
    void *d = NULL;
    shoal_status s = sh_be_alloc(be, bytes ? bytes : 1, &d);
    CHECK(s == SHOAL_OK, "alloc %zu: %s", bytes, shoal_last_error());
    if (s != SHOAL_OK) return NULL;
    s = sh_be_upload(be, d, host, bytes);
    CHECK(s == SHOAL_OK, "upload: %s", shoal_last_error());
    return d;
}

OPR_FN void opr_download(sh_backend *be, void *host, const void *dev, size_t bytes) {
    shoal_status s = sh_be_download(be, host, dev, bytes);
    CHECK(s == SHOAL_OK, "download: %s", shoal_last_error());
}

/* A view in its own backend buffer: rows x cols at offset `off` floats,
 * stride >= cols; padding is NaN. host mirrors the whole buffer. */
typedef struct opr_buf {
    float *host;    /* (n) */
    float *init;    /* (n) as uploaded */
    float *dev;     /* backend address of the buffer */
    size_t n;
    sh_view v;      /* backend view */
} opr_buf;

OPR_FN void opr_buf_make(sh_backend *be, opr_rng *r, int rows, int cols, int stride, int off, float lo, float hi,
                         opr_buf *b) {
    b->n = (size_t)off + (size_t)rows * (size_t)stride + 3;
    b->host = malloc(b->n * sizeof(float));
    b->init = malloc(b->n * sizeof(float));
    for (size_t i = 0; i < b->n; i++) b->host[i] = NAN;
    for (int i = 0; i < rows; i++)
        for (int c = 0; c < cols; c++) b->host[(size_t)off + (size_t)i * stride + c] = opr_unif(r, lo, hi);
    memcpy(b->init, b->host, b->n * sizeof(float));
    b->dev = opr_upload(be, b->host, b->n * sizeof(float));
    b->v = (sh_view){b->dev ? b->dev + off : NULL, rows, cols, stride};
}

OPR_FN void opr_buf_fetch(sh_backend *be, opr_buf *b) { opr_download(be, b->host, b->dev, b->n * sizeof(float)); }

/* Host element (r, c) of the view. */
static inline float *opr_at(opr_buf *b, int r, int c) {
    return b->host + (b->v.data - b->dev) + (size_t)r * b->v.stride + c;
}
static inline float opr_init_at(const opr_buf *b, int r, int c) {
    return b->init[(b->v.data - b->dev) + (size_t)r * b->v.stride + c];
}

/* 1 if everything outside the view is as uploaded (bitwise). */
OPR_FN int opr_buf_padding_intact(const opr_buf *b) {
    size_t off = (size_t)(b->v.data - b->dev);
    for (size_t i = 0; i < b->n; i++) {
        int inside = 0;
        if (i >= off) {
            size_t rel = i - off, r = rel / (size_t)b->v.stride, c = rel % (size_t)b->v.stride;
            inside = r < (size_t)b->v.rows && c < (size_t)b->v.cols;
        }
        if (!inside && memcmp(&b->host[i], &b->init[i], sizeof(float)) != 0) return 0;
    }
    return 1;
}

OPR_FN void opr_buf_free(sh_backend *be, opr_buf *b) {
    sh_be_free(be, b->dev);
    free(b->host);
    free(b->init);
    memset(b, 0, sizeof *b);
}

/* max|got - ref| / max|ref| over a view; NaN anywhere gives infinity. */
OPR_FN double opr_err(opr_buf *b, const double *ref, int rows, int cols) {
    double md = 0, mr = 0;
    for (int i = 0; i < rows; i++)
        for (int c = 0; c < cols; c++) {
            double g = *opr_at(b, i, c), e = ref[(size_t)i * cols + c];
            if (isnan(g) || isnan(e)) return INFINITY;
            if (fabs(g - e) > md) md = fabs(g - e);
            if (fabs(e) > mr) mr = fabs(e);
        }
    return mr > 0 ? md / mr : md;
}

/* ---- op cases against the reference ------------------------------------ */

/* y (+)= x W^T + b */
OPR_FN void opref_gemm(sh_backend *be, const char *lbl, uint64_t seed, sh_dtype dt, int M, int N, int K, int xpad,
                       int ypad, int with_bias, int accumulate) {
    opr_rng r = {seed};
    uint8_t *wb = opr_weight_bytes(&r, dt, N, K);
    size_t rb = opr_row_bytes(dt, K);
    opr_buf x, y;
    opr_buf_make(be, &r, M, K, K + xpad, xpad % 3, -1, 1, &x);
    opr_buf_make(be, &r, M, N, N + ypad, 1, -1, 1, &y);
    float *bias = malloc((size_t)N * sizeof(float));
    for (int i = 0; i < N; i++) bias[i] = opr_unif(&r, -1, 1);
    void *wd = opr_upload(be, wb, rb * (size_t)N);
    float *bd = with_bias ? opr_upload(be, bias, (size_t)N * sizeof(float)) : NULL;
    double *ref = malloc((size_t)M * N * sizeof(double));
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double s = 0;
            for (int k = 0; k < K; k++) s += (double)*opr_at(&x, m, k) * opr_weight_at(dt, wb + rb * (size_t)n, k);
            if (with_bias) s += bias[n];
            if (accumulate) s += opr_init_at(&y, m, n);
            ref[(size_t)m * N + n] = s;
        }
    sh_gemm_group g = {{wd, dt, N, K}, bd, x.v, y.v, accumulate};
    shoal_status s = sh_be_gemm(be, 1, &g);
    CHECK(s == SHOAL_OK, "[%s] gemm %s: %s", lbl, opr_dt_name(dt), shoal_last_error());
    opr_buf_fetch(be, &y);
    opr_buf_fetch(be, &x);
    double e = opr_err(&y, ref, M, N);
    CHECK(e <= OPREF_TOL, "[%s] gemm %s M=%d N=%d K=%d xpad=%d ypad=%d bias=%d acc=%d: err %.3g", lbl, opr_dt_name(dt),
          M, N, K, xpad, ypad, with_bias, accumulate, e);
    CHECK(opr_buf_padding_intact(&y) && opr_buf_padding_intact(&x), "[%s] gemm %s M=%d N=%d K=%d: wrote outside y",
          lbl, opr_dt_name(dt), M, N, K);
    sh_be_free(be, wd);
    sh_be_free(be, bd);
    opr_buf_free(be, &x);
    opr_buf_free(be, &y);
    free(wb);
    free(bias);
    free(ref);
}

/* out (+)= W[ids] */
OPR_FN void opref_get_rows(sh_backend *be, const char *lbl, uint64_t seed, sh_dtype dt, int n_table, int d, int rows,
                           int pad, int accumulate) {
    opr_rng r = {seed};
    uint8_t *wb = opr_weight_bytes(&r, dt, n_table, d);
    size_t rb = opr_row_bytes(dt, d);
    int32_t *ids = malloc((size_t)rows * sizeof(int32_t));
    for (int i = 0; i < rows; i++) ids[i] = i == 0 ? n_table - 1 : i == 1 ? 0 : opr_int(&r, n_table);
    opr_buf out;
    opr_buf_make(be, &r, rows, d, d + pad, 2, -1, 1, &out);
    void *wd = opr_upload(be, wb, rb * (size_t)n_table);
    int32_t *idd = opr_upload(be, ids, (size_t)rows * sizeof(int32_t));
    double *ref = malloc((size_t)rows * d * sizeof(double));
    for (int i = 0; i < rows; i++)
        for (int c = 0; c < d; c++)
            ref[(size_t)i * d + c] = opr_weight_at(dt, wb + rb * (size_t)ids[i], c) + (accumulate ? opr_init_at(&out, i, c) : 0);
    sh_get_rows_group g = {{wd, dt, n_table, d}, idd, out.v, accumulate};
    shoal_status s = sh_be_get_rows(be, 1, &g);
    CHECK(s == SHOAL_OK, "[%s] get_rows: %s", lbl, shoal_last_error());
    opr_buf_fetch(be, &out);
    double e = opr_err(&out, ref, rows, d);
    CHECK(e <= OPREF_TOL, "[%s] get_rows %s d=%d rows=%d acc=%d: err %.3g", lbl, opr_dt_name(dt), d, rows, accumulate, e);
    CHECK(opr_buf_padding_intact(&out), "[%s] get_rows %s: wrote outside out", lbl, opr_dt_name(dt));
    sh_be_free(be, wd);
    sh_be_free(be, idd);
    opr_buf_free(be, &out);
    free(wb);
    free(ids);
    free(ref);
}

/* x += add; out = norm(x) * gamma + beta */
OPR_FN void opref_norm(sh_backend *be, const char *lbl, uint64_t seed, sh_norm_kind kind, int rows, int n, int with_add,
                       int with_gamma, int with_beta, int in_place, float offset) {
    opr_rng r = {seed};
    opr_buf x, add, out;
    opr_buf_make(be, &r, rows, n, n + 5, 1, -2 + offset, 2 + offset, &x);
    opr_buf_make(be, &r, rows, n, n + 2, 0, -1, 1, &add);
    if (!in_place) opr_buf_make(be, &r, rows, n, n + 1, 3, -1, 1, &out);
    float *gamma = malloc((size_t)n * sizeof(float)), *beta = malloc((size_t)n * sizeof(float));
    for (int i = 0; i < n; i++) {
        gamma[i] = opr_unif(&r, 0.5f, 1.5f);
        beta[i] = opr_unif(&r, -0.5f, 0.5f);
    }
    float *gd = with_gamma ? opr_upload(be, gamma, (size_t)n * 4) : NULL;
    float *bd = with_beta ? opr_upload(be, beta, (size_t)n * 4) : NULL;
    float eps = 1e-5f;
    double *ref = malloc((size_t)rows * n * sizeof(double)), *refx = malloc((size_t)rows * n * sizeof(double));
    for (int i = 0; i < rows; i++) {
        double *xr = refx + (size_t)i * n;
        for (int c = 0; c < n; c++) xr[c] = with_add ? (double)(*opr_at(&x, i, c) + *opr_at(&add, i, c)) : *opr_at(&x, i, c);
        double mean = 0, var = 0;
        if (kind == SH_NORM_LAYER) {
            for (int c = 0; c < n; c++) mean += xr[c];
            mean /= n;
        }
        for (int c = 0; c < n; c++) var += (xr[c] - mean) * (xr[c] - mean);
        var /= n;
        double sc = 1.0 / sqrt(var + eps);
        for (int c = 0; c < n; c++) {
            double v = (xr[c] - mean) * sc;
            if (with_gamma) v *= gamma[c];
            if (with_beta && kind == SH_NORM_LAYER) v += beta[c];
            ref[(size_t)i * n + c] = v;
        }
    }
    sh_norm_group g = {x.v, with_add ? add.v : (sh_view){0}, gd, bd, eps, kind, in_place ? x.v : out.v};
    shoal_status s = sh_be_norm(be, 1, &g);
    CHECK(s == SHOAL_OK, "[%s] norm: %s", lbl, shoal_last_error());
    opr_buf_fetch(be, &x);
    opr_buf *o = in_place ? &x : &out;
    if (!in_place) opr_buf_fetch(be, &out);
    double e = opr_err(o, ref, rows, n);
    CHECK(e <= OPREF_TOL, "[%s] norm %s rows=%d n=%d add=%d gamma=%d beta=%d inplace=%d off=%g: err %.3g", lbl,
          kind == SH_NORM_RMS ? "rms" : "layer", rows, n, with_add, with_gamma, with_beta, in_place, (double)offset, e);
    if (with_add && !in_place) {
        double ex = opr_err(&x, refx, rows, n);
        CHECK(ex == 0, "[%s] norm rows=%d n=%d: x != x + add (err %.3g)", lbl, rows, n, ex);
    }
    CHECK(opr_buf_padding_intact(o) && opr_buf_padding_intact(&x), "[%s] norm: wrote outside the view", lbl);
    sh_be_free(be, gd);
    sh_be_free(be, bd);
    opr_buf_free(be, &x);
    opr_buf_free(be, &add);
    if (!in_place) opr_buf_free(be, &out);
    free(gamma);
    free(beta);
    free(ref);
    free(refx);
}

/* in-place rotary embedding */
OPR_FN void opref_rope(sh_backend *be, const char *lbl, uint64_t seed, sh_rope_mode mode, int rows, int n_head,
                       int head_dim, int n_rot, float theta, int max_pos) {
    opr_rng r = {seed};
    int cols = n_head * head_dim;
    opr_buf x;
    opr_buf_make(be, &r, rows, cols, cols + 3, 1, -1, 1, &x);
    int32_t *pos = malloc((size_t)rows * sizeof(int32_t));
    for (int i = 0; i < rows; i++) pos[i] = i == 0 ? 0 : i == 1 ? max_pos : opr_int(&r, max_pos + 1);
    int32_t *pd = opr_upload(be, pos, (size_t)rows * 4);
    double *ref = malloc((size_t)rows * cols * sizeof(double));
    for (int i = 0; i < rows; i++)
        for (int h = 0; h < n_head; h++) {
            double *o = ref + (size_t)i * cols + (size_t)h * head_dim;
            for (int c = 0; c < head_dim; c++) o[c] = *opr_at(&x, i, h * head_dim + c);
            for (int k = 0; k < n_rot / 2; k++) {
                double a = pos[i] * pow((double)theta, -2.0 * k / n_rot);
                int i0 = mode == SH_ROPE_NEOX ? k : 2 * k, i1 = mode == SH_ROPE_NEOX ? k + n_rot / 2 : 2 * k + 1;
                double x0 = *opr_at(&x, i, h * head_dim + i0), x1 = *opr_at(&x, i, h * head_dim + i1);
                o[i0] = x0 * cos(a) - x1 * sin(a);
                o[i1] = x0 * sin(a) + x1 * cos(a);
            }
        }
    sh_rope_group g = {x.v, n_head, head_dim, n_rot, pd, theta, mode};
    shoal_status s = sh_be_rope(be, 1, &g);
    CHECK(s == SHOAL_OK, "[%s] rope: %s", lbl, shoal_last_error());
    opr_buf_fetch(be, &x);
    double e = opr_err(&x, ref, rows, cols);
    CHECK(e <= OPREF_TOL, "[%s] rope %s rows=%d heads=%d hd=%d n_rot=%d max_pos=%d: err %.3g", lbl,
          mode == SH_ROPE_NEOX ? "neox" : "norm", rows, n_head, head_dim, n_rot, max_pos, e);
    CHECK(opr_buf_padding_intact(&x), "[%s] rope: wrote outside x", lbl);
    sh_be_free(be, pd);
    opr_buf_free(be, &x);
    free(pos);
    free(ref);
}

/* ---- paged KV ---------------------------------------------------------- */

/* A pool of n_phys blocks for n_layer layers of kv_dim, every slot NaN, and
 * a block table mapping n_logical blocks to shuffled distinct physical ones. */
typedef struct opr_kv {
    uint8_t *host;
    void *dev;
    size_t bytes;
    uint64_t block_bytes;
    int32_t *table; /* host (n_logical) */
    int32_t *table_dev;
    int n_logical, n_layer, kv_dim;
    sh_dtype dt;
} opr_kv;

OPR_FN void opr_kv_make(sh_backend *be, opr_rng *r, sh_dtype dt, int n_layer, int kv_dim, int n_logical, int n_phys,
                        opr_kv *kv) {
    size_t es = dt == SH_F16 ? 2 : 4;
    kv->dt = dt;
    kv->n_layer = n_layer;
    kv->kv_dim = kv_dim;
    kv->n_logical = n_logical;
    kv->block_bytes = (uint64_t)n_layer * 2 * SH_KV_BLOCK * kv_dim * es + 64; /* + slack between blocks */
    kv->bytes = (size_t)kv->block_bytes * (size_t)n_phys;
    kv->host = malloc(kv->bytes);
    if (dt == SH_F16) {
        for (size_t i = 0; i < kv->bytes / 2; i++) {
            uint16_t h = 0x7e00; /* NaN */
            memcpy(kv->host + 2 * i, &h, 2);
        }
    } else {
        for (size_t i = 0; i < kv->bytes / 4; i++) {
            float f = NAN;
            memcpy(kv->host + 4 * i, &f, 4);
        }
    }
    int *perm = malloc((size_t)n_phys * sizeof(int));
    for (int i = 0; i < n_phys; i++) perm[i] = i;
    for (int i = n_phys - 1; i > 0; i--) {
        int j = opr_int(r, i + 1), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    kv->table = malloc((size_t)(n_logical ? n_logical : 1) * sizeof(int32_t));
    for (int i = 0; i < n_logical; i++) kv->table[i] = perm[i];
    free(perm);
    kv->dev = NULL;
    kv->table_dev = opr_upload(be, kv->table, (size_t)(n_logical ? n_logical : 1) * sizeof(int32_t));
}

/* Byte offset of (layer, kv k|v, position p, dim c). */
OPR_FN size_t opr_kv_off(const opr_kv *kv, int layer, int which, int p, int c) {
    size_t es = kv->dt == SH_F16 ? 2 : 4;
    return (size_t)kv->table[p / SH_KV_BLOCK] * kv->block_bytes +
           ((((size_t)layer * 2 + which) * SH_KV_BLOCK + p % SH_KV_BLOCK) * kv->kv_dim + c) * es;
}

OPR_FN double opr_kv_get(const opr_kv *kv, int layer, int which, int p, int c) {
    const uint8_t *q = kv->host + opr_kv_off(kv, layer, which, p, c);
    if (kv->dt == SH_F16) return opr_f16(opr_get16(q));
    float f;
    memcpy(&f, q, 4);
    return f;
}

OPR_FN void opr_kv_set_random(opr_kv *kv, opr_rng *r, int layer, int which, int p, int c, float lo, float hi) {
    uint8_t *q = kv->host + opr_kv_off(kv, layer, which, p, c);
    if (kv->dt == SH_F16) {
        /* a random f16 in about [lo, hi]: a random value's nearest neighbour
         * from below in f16 is not needed; any f16 of that size will do */
        float v = opr_unif(r, lo, hi);
        double a = fabs(v);
        uint16_t h = 0;
        if (a >= ldexp(1, -14)) {
            int e;
            double f = frexp(a, &e); /* a = f 2^e, f in [0.5, 1) */
            h = (uint16_t)(((e + 14) << 10) | ((int)((f * 2 - 1) * 1024) & 1023));
        }
        if (v < 0) h |= 0x8000;
        memcpy(q, &h, 2);
    } else {
        float v = opr_unif(r, lo, hi);
        memcpy(q, &v, 4);
    }
}

OPR_FN sh_kv_ref opr_kv_ref(const opr_kv *kv, int layer) {
    return (sh_kv_ref){kv->dev, kv->dt, kv->block_bytes, kv->table_dev, layer, kv->kv_dim};
}

OPR_FN void opr_kv_free(sh_backend *be, opr_kv *kv) {
    sh_be_free(be, kv->dev);
    sh_be_free(be, kv->table_dev);
    free(kv->host);
    free(kv->table);
    memset(kv, 0, sizeof *kv);
}

/* 1 if f16 h is a nearest f16 to x (ties either way) */
OPR_FN int opr_f16_nearest(uint16_t h, float x) {
    double v = opr_f16(h), d = fabs(v - x);
    uint16_t up = (uint16_t)(h + 1), dn = (uint16_t)(h - 1);
    if ((h & 0x7fff) != 0x7bff && fabs(opr_f16(up) - x) < d) return 0;
    if ((h & 0x7fff) != 0 && fabs(opr_f16(dn) - x) < d) return 0;
    if ((h & 0x7fff) == 0 && fabs(opr_f16((uint16_t)(h ^ 0x8001)) - x) < d) return 0;
    return !isnan(v);
}

/* K, V rows -> pool at scattered positions; checks every byte of the pool */
OPR_FN void opref_kv_write(sh_backend *be, const char *lbl, uint64_t seed, sh_dtype dt, int kv_dim, int rows,
                           int n_layer, int layer) {
    opr_rng r = {seed};
    int n_logical = 6, n_phys = 9;
    opr_kv kv;
    opr_kv_make(be, &r, dt, n_layer, kv_dim, n_logical, n_phys, &kv);
    kv.dev = opr_upload(be, kv.host, kv.bytes);
    opr_buf k, v;
    opr_buf_make(be, &r, rows, kv_dim, kv_dim + 2, 1, -3, 3, &k);
    opr_buf_make(be, &r, rows, kv_dim, kv_dim + 7, 2, -3, 3, &v);
    /* distinct positions, scattered over the logical blocks */
    int32_t *pos = malloc((size_t)rows * sizeof(int32_t));
    int npos = n_logical * SH_KV_BLOCK;
    for (int i = 0; i < rows; i++) {
        int p, dup;
        do {
            p = opr_int(&r, npos);
            dup = 0;
            for (int j = 0; j < i; j++) dup |= pos[j] == p;
        } while (dup);
        pos[i] = p;
    }
    int32_t *pd = opr_upload(be, pos, (size_t)rows * 4);
    sh_kv_write_group g = {k.v, v.v, pd, opr_kv_ref(&kv, layer)};
    shoal_status s = sh_be_kv_write(be, 1, &g);
    CHECK(s == SHOAL_OK, "[%s] kv_write: %s", lbl, shoal_last_error());
    uint8_t *after = malloc(kv.bytes), *expect = malloc(kv.bytes);
    opr_download(be, after, kv.dev, kv.bytes);
    memcpy(expect, kv.host, kv.bytes);
    int bad_val = 0;
    size_t es = dt == SH_F16 ? 2 : 4;
    for (int i = 0; i < rows; i++)
        for (int which = 0; which < 2; which++)
            for (int c = 0; c < kv_dim; c++) {
                size_t o = opr_kv_off(&kv, layer, which, pos[i], c);
                float want = *opr_at(which ? &v : &k, i, c);
                if (dt == SH_F16) {
                    if (!opr_f16_nearest(opr_get16(after + o), want)) bad_val++;
                } else if (memcmp(after + o, &want, 4) != 0) {
                    bad_val++;
                }
                memcpy(expect + o, after + o, es); /* checked; the rest must be untouched */
            }
    CHECK(bad_val == 0, "[%s] kv_write %s kv_dim=%d rows=%d layer=%d/%d: %d wrong values", lbl, opr_dt_name(dt), kv_dim,
          rows, layer, n_layer, bad_val);
    CHECK(memcmp(after, expect, kv.bytes) == 0, "[%s] kv_write %s: wrote outside its slots", lbl, opr_dt_name(dt));
    free(after);
    free(expect);
    sh_be_free(be, pd);
    free(pos);
    opr_buf_free(be, &k);
    opr_buf_free(be, &v);
    opr_kv_free(be, &kv);
}

/* softmax(q K^T scale) V over a paged pool. q is uniform in [-qscale,
 * qscale]: a large qscale gives scores past 88, where an exp without the max
 * subtracted overflows f32. */
OPR_FN void opref_attn(sh_backend *be, const char *lbl, uint64_t seed, sh_dtype dt, int n_head, int n_head_kv,
                       int head_dim, int rows, int pos0, int n_kv, int causal, float qscale, int n_layer, int layer) {
    opr_rng r = {seed};
    int kvd = n_head_kv * head_dim, qd = n_head * head_dim;
    int n_logical = (n_kv + SH_KV_BLOCK - 1) / SH_KV_BLOCK;
    opr_kv kv;
    opr_kv_make(be, &r, dt, n_layer, kvd, n_logical, n_logical + 3, &kv);
    for (int p = 0; p < n_kv; p++)
        for (int which = 0; which < 2; which++)
            for (int c = 0; c < kvd; c++) opr_kv_set_random(&kv, &r, layer, which, p, c, -1, 1);
    kv.dev = opr_upload(be, kv.host, kv.bytes);
    opr_buf q, out;
    opr_buf_make(be, &r, rows, qd, qd + 4, 1, -qscale, qscale, &q);
    opr_buf_make(be, &r, rows, qd, qd + 1, 2, -1, 1, &out);
    float scale = 1.0f / sqrtf((float)head_dim);
    double *ref = malloc((size_t)rows * qd * sizeof(double)), *sc = malloc((size_t)n_kv * sizeof(double));
    for (int i = 0; i < rows; i++)
        for (int h = 0; h < n_head; h++) {
            int kh = h / (n_head / n_head_kv), L = causal ? pos0 + i + 1 : n_kv;
            double mx = -INFINITY, sum = 0;
            for (int j = 0; j < L; j++) {
                double s = 0;
                for (int c = 0; c < head_dim; c++)
                    s += (double)*opr_at(&q, i, h * head_dim + c) * opr_kv_get(&kv, layer, 0, j, kh * head_dim + c);
                sc[j] = s * scale;
                if (sc[j] > mx) mx = sc[j];
            }
            for (int j = 0; j < L; j++) sum += (sc[j] = exp(sc[j] - mx));
            for (int c = 0; c < head_dim; c++) {
                double o = 0;
                for (int j = 0; j < L; j++) o += sc[j] * opr_kv_get(&kv, layer, 1, j, kh * head_dim + c);
                ref[(size_t)i * qd + h * head_dim + c] = o / sum;
            }
        }
    sh_attn_group g = {q.v, out.v, n_head, n_head_kv, head_dim, scale, pos0, n_kv, causal, opr_kv_ref(&kv, layer)};
    shoal_status s = sh_be_attn(be, 1, &g);
    CHECK(s == SHOAL_OK, "[%s] attn: %s", lbl, shoal_last_error());
    opr_buf_fetch(be, &out);
    double e = opr_err(&out, ref, rows, qd);
    CHECK(e <= OPREF_TOL, "[%s] attn %s heads=%d/%d hd=%d rows=%d pos0=%d n_kv=%d causal=%d qscale=%g: err %.3g", lbl,
          opr_dt_name(dt), n_head, n_head_kv, head_dim, rows, pos0, n_kv, causal, (double)qscale, e);
    CHECK(opr_buf_padding_intact(&out), "[%s] attn: wrote outside out", lbl);
    free(ref);
    free(sc);
    opr_buf_free(be, &q);
    opr_buf_free(be, &out);
    opr_kv_free(be, &kv);
}

/* silu(a) * b, gelu(a) */
OPR_FN void opref_act(sh_backend *be, const char *lbl, uint64_t seed, sh_act_kind kind, int rows, int n, int in_place) {
    opr_rng r = {seed};
    opr_buf a, b, out;
    opr_buf_make(be, &r, rows, n, n + 3, 1, -8, 8, &a);
    opr_buf_make(be, &r, rows, n, n + 1, 0, -2, 2, &b);
    if (!in_place) opr_buf_make(be, &r, rows, n, n, 2, -1, 1, &out);
    double *ref = malloc((size_t)rows * n * sizeof(double));
    for (int i = 0; i < rows; i++)
        for (int c = 0; c < n; c++) {
            double x = *opr_at(&a, i, c), y;
            if (kind == SH_ACT_SILU_MUL) y = x / (1 + exp(-x)) * *opr_at(&b, i, c);
            else if (kind == SH_ACT_GELU_TANH) y = 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
            else y = 0.5 * x * (1 + erf(x / sqrt(2.0)));
            ref[(size_t)i * n + c] = y;
        }
    sh_act_group g = {a.v, kind == SH_ACT_SILU_MUL ? b.v : (sh_view){0}, in_place ? a.v : out.v, kind};
    shoal_status s = sh_be_act(be, 1, &g);
    CHECK(s == SHOAL_OK, "[%s] act: %s", lbl, shoal_last_error());
    opr_buf *o = in_place ? &a : &out;
    opr_buf_fetch(be, o);
    double e = opr_err(o, ref, rows, n);
    CHECK(e <= OPREF_TOL, "[%s] act %d rows=%d n=%d inplace=%d: err %.3g", lbl, (int)kind, rows, n, in_place, e);
    CHECK(opr_buf_padding_intact(o), "[%s] act: wrote outside out", lbl);
    free(ref);
    opr_buf_free(be, &a);
    opr_buf_free(be, &b);
    if (!in_place) opr_buf_free(be, &out);
}

/* mean over rows, optional L2 normalisation */
OPR_FN void opref_pool(sh_backend *be, const char *lbl, uint64_t seed, int rows, int n, int normalize) {
    opr_rng r = {seed};
    opr_buf x;
    opr_buf_make(be, &r, rows, n, n + 2, 1, -1, 1.5f, &x);
    float *init = malloc((size_t)(n + 2) * sizeof(float));
    for (int c = 0; c < n + 2; c++) init[c] = NAN;
    float *od = opr_upload(be, init, (size_t)(n + 2) * 4);
    double *ref = malloc((size_t)n * sizeof(double)), nrm = 0;
    for (int c = 0; c < n; c++) {
        double s = 0;
        for (int i = 0; i < rows; i++) s += *opr_at(&x, i, c);
        ref[c] = s / rows;
        nrm += ref[c] * ref[c];
    }
    nrm = sqrt(nrm);
    if (normalize)
        for (int c = 0; c < n; c++) ref[c] /= nrm > 1e-12 ? nrm : 1e-12;
    sh_pool_group g = {x.v, od ? od + 1 : NULL, normalize};
    shoal_status s = sh_be_pool(be, 1, &g);
    CHECK(s == SHOAL_OK, "[%s] pool: %s", lbl, shoal_last_error());
    float *got = malloc((size_t)(n + 2) * sizeof(float));
    opr_download(be, got, od, (size_t)(n + 2) * 4);
    double md = 0, mr = 0;
    for (int c = 0; c < n; c++) {
        double d = isnan(got[c + 1]) ? INFINITY : fabs(got[c + 1] - ref[c]);
        if (d > md) md = d;
        if (fabs(ref[c]) > mr) mr = fabs(ref[c]);
    }
    CHECK(md / mr <= OPREF_TOL, "[%s] pool rows=%d n=%d norm=%d: err %.3g", lbl, rows, n, normalize, md / mr);
    CHECK(isnan(got[0]) && isnan(got[n + 1]), "[%s] pool: wrote outside out", lbl);
    free(got);
    free(init);
    free(ref);
    sh_be_free(be, od);
    opr_buf_free(be, &x);
}

/* y = act(x W^T + b) with the activation as the GEMM's epilogue: SILU_PAIR
 * silu(x W^T + b) * (x W2^T + b2), GELU_TANH / GELU_ERF gelu(x W^T + b) */
OPR_FN void opref_gemm_epi(sh_backend *be, const char *lbl, uint64_t seed, sh_dtype dt, sh_gemm_epi epi, int M, int N,
                           int K, int xpad, int ypad, int with_bias) {
    opr_rng r = {seed};
    uint8_t *wb = opr_weight_bytes(&r, dt, N, K), *wb2 = opr_weight_bytes(&r, dt, N, K);
    size_t rb = opr_row_bytes(dt, K);
    opr_buf x, y;
    opr_buf_make(be, &r, M, K, K + xpad, xpad % 3, -1, 1, &x);
    opr_buf_make(be, &r, M, N, N + ypad, 1, -1, 1, &y);
    float *bias = malloc((size_t)2 * N * sizeof(float));
    for (int i = 0; i < 2 * N; i++) bias[i] = opr_unif(&r, -1, 1);
    void *wd = opr_upload(be, wb, rb * (size_t)N), *wd2 = opr_upload(be, wb2, rb * (size_t)N);
    float *bd = with_bias ? opr_upload(be, bias, (size_t)N * sizeof(float)) : NULL;
    float *bd2 = with_bias ? opr_upload(be, bias + N, (size_t)N * sizeof(float)) : NULL;
    double *ref = malloc((size_t)M * N * sizeof(double));
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double a = 0, u = 0, v;
            for (int k = 0; k < K; k++) {
                a += (double)*opr_at(&x, m, k) * opr_weight_at(dt, wb + rb * (size_t)n, k);
                u += (double)*opr_at(&x, m, k) * opr_weight_at(dt, wb2 + rb * (size_t)n, k);
            }
            if (with_bias) a += bias[n], u += bias[N + n];
            if (epi == SH_EPI_SILU_PAIR) v = a / (1 + exp(-a)) * u;
            else if (epi == SH_EPI_GELU_TANH) v = 0.5 * a * (1 + tanh(sqrt(2 / M_PI) * (a + 0.044715 * a * a * a)));
            else v = 0.5 * a * (1 + erf(a / sqrt(2.0)));
            ref[(size_t)m * N + n] = v;
        }
    sh_gemm_group g = {{wd, dt, N, K}, bd, x.v, y.v, 0};
    g.epi = epi;
    if (epi == SH_EPI_SILU_PAIR) {
        g.w2 = (sh_weight){wd2, dt, N, K};
        g.bias2 = bd2;
    }
    shoal_status s = sh_be_gemm(be, 1, &g);
    CHECK(s == SHOAL_OK, "[%s] gemm epi %d %s: %s", lbl, (int)epi, opr_dt_name(dt), shoal_last_error());
    opr_buf_fetch(be, &y);
    double e = opr_err(&y, ref, M, N);
    CHECK(e <= OPREF_TOL, "[%s] gemm epi %d %s M=%d N=%d K=%d xpad=%d ypad=%d bias=%d: err %.3g", lbl, (int)epi,
          opr_dt_name(dt), M, N, K, xpad, ypad, with_bias, e);
    CHECK(opr_buf_padding_intact(&y), "[%s] gemm epi %d %s M=%d N=%d K=%d: wrote outside y", lbl, (int)epi,
          opr_dt_name(dt), M, N, K);
    sh_be_free(be, wd);
    sh_be_free(be, wd2);
    sh_be_free(be, bd);
    sh_be_free(be, bd2);
    opr_buf_free(be, &x);
    opr_buf_free(be, &y);
    free(wb);
    free(wb2);
    free(bias);
    free(ref);
}

/* y = rope(x W^T + b) as the GEMM's epilogue (n_head heads of head_dim, every
 * dim rotated), with which = 1 / 2 its rows also stored as K / V of the paged
 * pool at distinct positions: y against the double reference, the pool
 * against y (f16: the nearest f16), nothing else in the pool touched. */
OPR_FN void opref_gemm_rope(sh_backend *be, const char *lbl, uint64_t seed, sh_dtype dt, int rope, sh_rope_mode mode,
                            int which, sh_dtype kdt, int M, int n_head, int head_dim, int K, float theta) {
    opr_rng r = {seed};
    const int N = n_head * head_dim;
    uint8_t *wb = opr_weight_bytes(&r, dt, N, K);
    size_t rb = opr_row_bytes(dt, K);
    opr_buf x, y;
    opr_buf_make(be, &r, M, K, K + 1, 1, -1, 1, &x);
    opr_buf_make(be, &r, M, N, N + 3, 2, -1, 1, &y);
    float *bias = malloc((size_t)N * sizeof(float));
    for (int i = 0; i < N; i++) bias[i] = opr_unif(&r, -1, 1);
    void *wd = opr_upload(be, wb, rb * (size_t)N);
    float *bd = opr_upload(be, bias, (size_t)N * sizeof(float));
    int n_logical = (M + SH_KV_BLOCK - 1) / SH_KV_BLOCK + 2, n_layer = 3, layer = 1;
    opr_kv kv;
    opr_kv_make(be, &r, kdt, n_layer, N, n_logical, n_logical + 3, &kv);
    kv.dev = opr_upload(be, kv.host, kv.bytes);
    int32_t *pos = malloc((size_t)M * sizeof(int32_t)), *slot = malloc((size_t)M * sizeof(int32_t));
    for (int i = 0; i < M; i++) {
        int p, dup;
        do {
            p = opr_int(&r, n_logical * SH_KV_BLOCK);
            dup = 0;
            for (int j = 0; j < i; j++) dup |= pos[j] == p;
        } while (dup);
        pos[i] = p;
        slot[i] = kv.table[p / SH_KV_BLOCK] * SH_KV_BLOCK + p % SH_KV_BLOCK;
    }
    int32_t *pd = opr_upload(be, pos, (size_t)M * 4), *sd = opr_upload(be, slot, (size_t)M * 4);
    double *ref = malloc((size_t)M * N * sizeof(double)), *v = malloc((size_t)N * sizeof(double));
    for (int m = 0; m < M; m++) {
        for (int n = 0; n < N; n++) {
            double a = bias[n];
            for (int k = 0; k < K; k++) a += (double)*opr_at(&x, m, k) * opr_weight_at(dt, wb + rb * (size_t)n, k);
            v[n] = a;
        }
        double *o = ref + (size_t)m * N;
        memcpy(o, v, (size_t)N * sizeof(double));
        for (int h = 0; rope && h < n_head; h++)
            for (int k = 0; k < head_dim / 2; k++) {
                double ang = pos[m] * pow((double)theta, -2.0 * k / head_dim);
                int i0 = h * head_dim + (mode == SH_ROPE_NEOX ? k : 2 * k);
                int i1 = h * head_dim + (mode == SH_ROPE_NEOX ? k + head_dim / 2 : 2 * k + 1);
                o[i0] = v[i0] * cos(ang) - v[i1] * sin(ang);
                o[i1] = v[i0] * sin(ang) + v[i1] * cos(ang);
            }
    }
    sh_gemm_group g = {{wd, dt, N, K}, bd, x.v, y.v, 0};
    if (rope) {
        g.epi = SH_EPI_ROPE;
        g.rope = (sh_rope_params){head_dim, head_dim, theta, mode};
        g.pos = pd;
    }
    g.kv_which = which;
    g.kv_slot = which ? sd : NULL;
    g.kv = opr_kv_ref(&kv, layer);
    g.kv.block_table = NULL;
    shoal_status s = sh_be_gemm(be, 1, &g);
    CHECK(s == SHOAL_OK, "[%s] gemm rope %d kv %d %s: %s", lbl, rope, which, opr_dt_name(dt), shoal_last_error());
    opr_buf_fetch(be, &y);
    double e = opr_err(&y, ref, M, N);
    CHECK(e <= OPREF_TOL, "[%s] gemm rope %d %s kv %d %s M=%d heads=%d hd=%d K=%d: err %.3g", lbl, rope,
          mode == SH_ROPE_NEOX ? "neox" : "norm", which, opr_dt_name(dt), M, n_head, head_dim, K, e);
    CHECK(opr_buf_padding_intact(&y), "[%s] gemm rope: wrote outside y", lbl);
    uint8_t *after = malloc(kv.bytes), *expect = malloc(kv.bytes);
    opr_download(be, after, kv.dev, kv.bytes);
    memcpy(expect, kv.host, kv.bytes);
    int bad = 0;
    const size_t es = kdt == SH_F16 ? 2 : 4;
    for (int m = 0; which && m < M; m++)
        for (int c = 0; c < N; c++) {
            size_t o = opr_kv_off(&kv, layer, which - 1, pos[m], c);
            float want = *opr_at(&y, m, c);
            if (kdt == SH_F16 ? !opr_f16_nearest(opr_get16(after + o), want) : memcmp(after + o, &want, 4) != 0) bad++;
            memcpy(expect + o, after + o, es);
        }
    CHECK(bad == 0, "[%s] gemm kv store %d %s: %d values differ from y", lbl, which, opr_dt_name(kdt), bad);
    CHECK(memcmp(after, expect, kv.bytes) == 0, "[%s] gemm kv store %d %s: wrote outside its slots", lbl, which,
          opr_dt_name(kdt));
    free(after);
    free(expect);
    sh_be_free(be, wd);
    sh_be_free(be, bd);
    sh_be_free(be, pd);
    sh_be_free(be, sd);
    opr_kv_free(be, &kv);
    opr_buf_free(be, &x);
    opr_buf_free(be, &y);
    free(wb);
    free(bias);
    free(pos);
    free(slot);
    free(ref);
    free(v);
}

/* y (+)= x W^T + b, then out = norm(y) as the GEMM's row norm (RMS or
 * LayerNorm; apart, or in place in y): y and out against the double
 * reference, nothing outside either view written. */
OPR_FN void opref_gemm_norm(sh_backend *be, const char *lbl, uint64_t seed, sh_dtype dt, sh_norm_kind kind, int M,
                            int N, int K, int accumulate, int in_place, int with_gamma, int with_beta) {
    opr_rng r = {seed};
    uint8_t *wb = opr_weight_bytes(&r, dt, N, K);
    size_t rb = opr_row_bytes(dt, K);
    opr_buf x, y, out;
    opr_buf_make(be, &r, M, K, K + 1, 1, -1, 1, &x);
    opr_buf_make(be, &r, M, N, N + 2, 3, -1, 1, &y);
    if (!in_place) opr_buf_make(be, &r, M, N, N + 1, 2, -1, 1, &out);
    float *pv = malloc((size_t)3 * N * sizeof(float)); /* bias, gamma, beta */
    for (int i = 0; i < N; i++) {
        pv[i] = opr_unif(&r, -1, 1);
        pv[N + i] = opr_unif(&r, 0.5f, 1.5f);
        pv[2 * N + i] = opr_unif(&r, -0.5f, 0.5f);
    }
    void *wd = opr_upload(be, wb, rb * (size_t)N);
    float *bd = opr_upload(be, pv, (size_t)N * sizeof(float));
    float *gd = with_gamma ? opr_upload(be, pv + N, (size_t)N * sizeof(float)) : NULL;
    float *ed = with_beta ? opr_upload(be, pv + 2 * N, (size_t)N * sizeof(float)) : NULL;
    const float eps = 1e-5f;
    double *ry = malloc((size_t)M * N * sizeof(double)), *ro = malloc((size_t)M * N * sizeof(double));
    for (int m = 0; m < M; m++) {
        double *yr = ry + (size_t)m * N, mean = 0, var = 0;
        for (int n = 0; n < N; n++) {
            double a = pv[n] + (accumulate ? (double)opr_init_at(&y, m, n) : 0.0);
            for (int k = 0; k < K; k++) a += (double)*opr_at(&x, m, k) * opr_weight_at(dt, wb + rb * (size_t)n, k);
            yr[n] = a;
        }
        if (kind == SH_NORM_LAYER) {
            for (int n = 0; n < N; n++) mean += yr[n];
            mean /= N;
        }
        for (int n = 0; n < N; n++) var += (yr[n] - mean) * (yr[n] - mean);
        var /= N;
        for (int n = 0; n < N; n++) {
            double v = (yr[n] - mean) / sqrt(var + eps);
            if (with_gamma) v *= pv[N + n];
            if (with_beta && kind == SH_NORM_LAYER) v += pv[2 * N + n];
            ro[(size_t)m * N + n] = v;
        }
    }
    sh_gemm_group g = {{wd, dt, N, K}, bd, x.v, y.v, accumulate};
    g.norm_out = in_place ? y.v : out.v;
    g.norm_kind = kind;
    g.norm_gamma = gd;
    g.norm_beta = ed;
    g.norm_eps = eps;
    shoal_status s = sh_be_gemm(be, 1, &g);
    const char *kn = kind == SH_NORM_RMS ? "rms" : "layer";
    CHECK(s == SHOAL_OK, "[%s] gemm norm %s %s: %s", lbl, kn, opr_dt_name(dt), shoal_last_error());
    opr_buf_fetch(be, &y);
    if (!in_place) {
        opr_buf_fetch(be, &out);
        double e = opr_err(&y, ry, M, N);
        CHECK(e <= OPREF_TOL, "[%s] gemm norm %s %s M=%d N=%d K=%d acc=%d: y err %.3g", lbl, kn, opr_dt_name(dt), M,
              N, K, accumulate, e);
        CHECK(opr_buf_padding_intact(&out), "[%s] gemm norm %s: wrote outside out", lbl, kn);
    }
    double e = opr_err(in_place ? &y : &out, ro, M, N);
    CHECK(e <= OPREF_TOL, "[%s] gemm norm %s %s M=%d N=%d K=%d acc=%d inplace=%d gamma=%d beta=%d: err %.3g", lbl, kn,
          opr_dt_name(dt), M, N, K, accumulate, in_place, with_gamma, with_beta, e);
    CHECK(opr_buf_padding_intact(&y), "[%s] gemm norm %s: wrote outside y", lbl, kn);
    sh_be_free(be, wd);
    sh_be_free(be, bd);
    sh_be_free(be, gd);
    sh_be_free(be, ed);
    opr_buf_free(be, &x);
    opr_buf_free(be, &y);
    if (!in_place) opr_buf_free(be, &out);
    free(wb);
    free(pv);
    free(ry);
    free(ro);
}

/* The attention cases, both KV dtypes: MHA, GQA 4:1, MQA; causal and not;
 * pos0 > 0; odd head_dim. Returns the next seed. */
OPR_FN uint64_t opref_attn_all(sh_backend *be, const char *lbl, uint64_t seed) {
    for (int f = 0; f < 2; f++) {
        sh_dtype dt = f ? SH_F16 : SH_F32;
        opref_attn(be, lbl, seed++, dt, 4, 4, 16, 1, 0, 1, 1, 1, 1, 0);
        opref_attn(be, lbl, seed++, dt, 8, 2, 64, 1, 40, 41, 1, 3, 2, 1);
        opref_attn(be, lbl, seed++, dt, 8, 2, 64, 19, 13, 32, 1, 3, 3, 2);
        opref_attn(be, lbl, seed++, dt, 6, 1, 32, 5, 30, 35, 1, 2, 1, 0);
        opref_attn(be, lbl, seed++, dt, 3, 3, 24, 33, 0, 33, 0, 2, 1, 0);
        opref_attn(be, lbl, seed++, dt, 4, 1, 40, 7, 0, 50, 0, 1, 2, 1);
        opref_attn(be, lbl, seed++, dt, 2, 2, 17, 4, 60, 70, 1, 1, 1, 0);
        opref_attn(be, lbl, seed++, dt, 2, 1, 64, 3, 20, 23, 1, 12, 1, 0);  /* sharp softmax */
        opref_attn(be, lbl, seed++, dt, 2, 1, 64, 3, 20, 23, 0, 150, 1, 0); /* scores past 88 */
        opref_attn(be, lbl, seed++, dt, 14, 2, 64, 1, 150, 151, 1, 1, 2, 1);  /* 7 heads per KV head, long */
        opref_attn(be, lbl, seed++, dt, 8, 1, 128, 2, 33, 35, 1, 1, 1, 0);    /* head_dim 128, 8:1 */
    }
    return seed;
}

/* ---- the suite --------------------------------------------------------- */

/* Every op x dtype x a spread of shapes on be; failures are CHECKs labelled
 * with lbl. */
OPR_FN void opref_run_all(sh_backend *be, const char *lbl) {
    static const sh_dtype wdt[] = {SH_F32, SH_F16, SH_BF16, SH_Q8_0, SH_Q4_0};
    uint64_t seed = 1;
    for (int t = 0; t < 5; t++) {
        sh_dtype dt = wdt[t];
        int fl = dt == SH_F32 || dt == SH_F16 || dt == SH_BF16; /* K need not be a block multiple */
        static const int Ms[] = {1, 3, 17, 64};
        for (int mi = 0; mi < 4; mi++) {
            int M = Ms[mi];
            opref_gemm(be, lbl, seed++, dt, M, 33, 64, 0, 0, 0, 0);
            opref_gemm(be, lbl, seed++, dt, M, 67, 96, 5, 3, 1, 0);
            opref_gemm(be, lbl, seed++, dt, M, 8, 32, 1, 0, 0, 1);
            opref_gemm(be, lbl, seed++, dt, M, 130, 576, 7, 2, 1, 1);
            if (fl) {
                opref_gemm(be, lbl, seed++, dt, M, 21, 7, 1, 1, 0, 0);
                opref_gemm(be, lbl, seed++, dt, M, 19, 45, 3, 0, 1, 0);
                opref_gemm(be, lbl, seed++, dt, M, 5, 100, 0, 4, 0, 1);
            }
        }
        opref_gemm(be, lbl, seed++, dt, 5, 1, 64, 0, 0, 1, 0);
        opref_gemm(be, lbl, seed++, dt, 2, 600, 1536, 2, 1, 0, 0);
        for (int epi = SH_EPI_SILU_PAIR; epi <= SH_EPI_GELU_ERF; epi++) {
            static const int Me[] = {1, 2, 9, 16, 33, 64};
            for (int mi = 0; mi < 6; mi++) {
                opref_gemm_epi(be, lbl, seed++, dt, (sh_gemm_epi)epi, Me[mi], 100, 64, mi & 1, 2 * (mi & 1), mi & 1);
                if (epi == SH_EPI_SILU_PAIR || mi % 3 == 0)
                    opref_gemm_epi(be, lbl, seed++, dt, (sh_gemm_epi)epi, Me[mi], 1536 + 8 * mi, 576, 0, 0, mi % 2 == 0);
            }
            if (fl) opref_gemm_epi(be, lbl, seed++, dt, (sh_gemm_epi)epi, 3, 21, 7, 1, 1, 1);
        }
        /* q (rope), k (rope + K store), v (V store); both rotations, both KV dtypes */
        static const int Mr[] = {1, 2, 16, 40, 64};
        for (int mi = 0; mi < 5; mi++)
            for (int which = 0; which < 3; which++) {
                const sh_rope_mode mode = (mi + which) % 2 ? SH_ROPE_NEOX : SH_ROPE_NORM;
                const sh_dtype kdt = (mi + which) % 3 ? SH_F16 : SH_F32;
                opref_gemm_rope(be, lbl, seed++, dt, which < 2, mode, which, kdt, Mr[mi], which ? 3 : 9, 64, 576,
                                10000.0f);
            }
        opref_gemm_rope(be, lbl, seed++, dt, 1, SH_ROPE_NEOX, 1, SH_F16, 5, 2, 32, 96, 500000.0f);
        opref_gemm_rope(be, lbl, seed++, dt, 1, SH_ROPE_NORM, 0, SH_F16, 17, 7, 16, 64, 100.0f);
        /* row norms: M 1 (SIMT) to 64 (several MMA m tiles), N past a block's registers */
        static const int Mn[] = {1, 2, 16, 33, 64};
        for (int mi = 0; mi < 5; mi++) {
            const sh_norm_kind kind = mi % 2 ? SH_NORM_LAYER : SH_NORM_RMS;
            opref_gemm_norm(be, lbl, seed++, dt, kind, Mn[mi], 576, fl ? 96 : 64, mi != 2, mi == 3, mi != 1, 1);
            opref_gemm_norm(be, lbl, seed++, dt, (sh_norm_kind)!kind, Mn[mi], mi == 4 ? 1100 : 48, 128, 1, mi == 1,
                            1, mi % 2);
        }
        opref_get_rows(be, lbl, seed++, dt, 50, 64, 7, 3, 0);
        opref_get_rows(be, lbl, seed++, dt, 9, 96, 1, 0, 1);
        opref_get_rows(be, lbl, seed++, dt, 13, 32, 20, 1, 1);
        if (fl) opref_get_rows(be, lbl, seed++, dt, 11, 37, 4, 2, 0);
    }
    for (int kind = 0; kind < 2; kind++) {
        opref_norm(be, lbl, seed++, (sh_norm_kind)kind, 1, 64, 0, 1, 1, 0, 0);
        opref_norm(be, lbl, seed++, (sh_norm_kind)kind, 5, 576, 1, 1, 1, 0, 0);
        opref_norm(be, lbl, seed++, (sh_norm_kind)kind, 17, 37, 1, 0, 0, 1, 0);
        opref_norm(be, lbl, seed++, (sh_norm_kind)kind, 3, 96, 0, 1, 0, 1, 0);
        opref_norm(be, lbl, seed++, (sh_norm_kind)kind, 4, 100, 0, 0, 1, 0, 30.0f);
    }
    for (int mode = 0; mode < 2; mode++) {
        opref_rope(be, lbl, seed++, (sh_rope_mode)mode, 1, 9, 64, 64, 10000.0f, 0);
        opref_rope(be, lbl, seed++, (sh_rope_mode)mode, 7, 4, 64, 64, 10000.0f, 4096);
        opref_rope(be, lbl, seed++, (sh_rope_mode)mode, 5, 3, 32, 16, 500000.0f, 300);
        opref_rope(be, lbl, seed++, (sh_rope_mode)mode, 17, 2, 80, 40, 10000.0f, 2048);
        opref_rope(be, lbl, seed++, (sh_rope_mode)mode, 3, 1, 6, 2, 100.0f, 77);
    }
    for (int f = 0; f < 2; f++) {
        sh_dtype dt = f ? SH_F16 : SH_F32;
        opref_kv_write(be, lbl, seed++, dt, 64, 1, 1, 0);
        opref_kv_write(be, lbl, seed++, dt, 192, 17, 3, 2);
        opref_kv_write(be, lbl, seed++, dt, 24, 40, 2, 1);
    }
    seed = opref_attn_all(be, lbl, seed);
    for (int kind = 0; kind < 3; kind++) {
        opref_act(be, lbl, seed++, (sh_act_kind)kind, 1, 1536, 0);
        opref_act(be, lbl, seed++, (sh_act_kind)kind, 7, 37, 1);
        opref_act(be, lbl, seed++, (sh_act_kind)kind, 3, 100, 0);
    }
    opref_pool(be, lbl, seed++, 1, 64, 0);
    opref_pool(be, lbl, seed++, 9, 96, 1);
    opref_pool(be, lbl, seed++, 33, 37, 1);
}

/* ---- grouped calls: one call == separate calls, bitwise ----------------- */

/* Five "models" of different widths and weight dtypes (the K tail of bf16
 * and f32 models is not a multiple of 32), and sequences over them. */
typedef struct opr_model {
    int d, n_out, n_head, n_head_kv, head_dim, n_rot;
    sh_dtype wdt, kvdt;
    sh_rope_mode mode;
} opr_model;

static const opr_model opr_models[] = {
    {64, 160, 4, 1, 16, 16, SH_F16, SH_F16, SH_ROPE_NEOX},  /* A: MQA */
    {96, 96, 6, 2, 16, 8, SH_Q8_0, SH_F32, SH_ROPE_NORM},   /* B: GQA 3:1, partial rotary */
    {32, 80, 2, 2, 16, 16, SH_Q4_0, SH_F16, SH_ROPE_NEOX},  /* C: MHA */
    {40, 40, 5, 5, 8, 8, SH_BF16, SH_F32, SH_ROPE_NORM},    /* D */
    {24, 56, 3, 1, 8, 4, SH_F32, SH_F16, SH_ROPE_NEOX},     /* E */
};

typedef struct opr_seq {
    int model, rows, pos0;
} opr_seq;

static const opr_seq opr_seqs[] = {
    {0, 1, 5}, {1, 3, 0}, {2, 17, 4}, {0, 6, 0}, {3, 2, 9}, {4, 64, 0}, {1, 1, 31}, {2, 1, 0},
};
#define OPR_NSEQ ((int)(sizeof opr_seqs / sizeof opr_seqs[0]))
#define OPR_NMODEL ((int)(sizeof opr_models / sizeof opr_models[0]))

/* A float arena with a host image; views are carved from it with a gap. */
typedef struct opr_arena {
    float *img;  /* (cap) initial contents */
    size_t used, cap;
    float *dev;
} opr_arena;

OPR_FN size_t opr_take(opr_arena *a, size_t n) {
    size_t off = a->used;
    a->used += n + 5;
    if (a->used > a->cap) {
        fprintf(stderr, "op_ref: arena too small\n");
        abort();
    }
    return off;
}

/* A rows x cols view with stride cols + pad carved from a (in backend
 * addresses once a->dev is set; offsets until then, fixed by opr_fix). */
OPR_FN sh_view opr_carve(opr_arena *a, int rows, int cols, int pad) {
    size_t off = opr_take(a, (size_t)rows * (size_t)(cols + pad));
    return (sh_view){(float *)(uintptr_t)(off * sizeof(float) + 1), rows, cols, cols + pad};
}

/* Turns a carved view's offset into a backend address. */
OPR_FN void opr_fix(const opr_arena *a, sh_view *v) {
    if (v->data) v->data = a->dev + ((uintptr_t)v->data - 1) / sizeof(float);
}

typedef shoal_status (*opr_call_fn)(sh_backend *be, int n, const void *g);
OPR_FN shoal_status opr_call_gemm(sh_backend *be, int n, const void *g) { return sh_be_gemm(be, n, g); }
OPR_FN shoal_status opr_call_get_rows(sh_backend *be, int n, const void *g) { return sh_be_get_rows(be, n, g); }
OPR_FN shoal_status opr_call_norm(sh_backend *be, int n, const void *g) { return sh_be_norm(be, n, g); }
OPR_FN shoal_status opr_call_rope(sh_backend *be, int n, const void *g) { return sh_be_rope(be, n, g); }
OPR_FN shoal_status opr_call_kv_write(sh_backend *be, int n, const void *g) { return sh_be_kv_write(be, n, g); }
OPR_FN shoal_status opr_call_attn(sh_backend *be, int n, const void *g) { return sh_be_attn(be, n, g); }
OPR_FN shoal_status opr_call_act(sh_backend *be, int n, const void *g) { return sh_be_act(be, n, g); }
OPR_FN shoal_status opr_call_pool(sh_backend *be, int n, const void *g) { return sh_be_pool(be, n, g); }

OPR_FN uint64_t opr_fnv(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* Runs op once over all n groups and once per group from the same arena
 * image; every group's output region (outs[i]: view into the arena) and the
 * whole arena must match bitwise. Returns a hash of the grouped result. */
OPR_FN uint64_t opr_grouped_compare(sh_backend *be, const char *lbl, const char *op, opr_arena *a, opr_call_fn fn,
                                    const void *groups, size_t gsize, int n, const sh_view *outs) {
    size_t bytes = a->used * sizeof(float);
    float *all = malloc(bytes), *one = malloc(bytes);
    sh_be_upload(be, a->dev, a->img, bytes);
    uint64_t l0 = be->n_launches;
    shoal_status s = fn(be, n, groups);
    CHECK(s == SHOAL_OK, "[%s] grouped %s: %s", lbl, op, shoal_last_error());
    CHECK(be->n_launches == l0 + 1, "[%s] grouped %s: %llu launches", lbl, op, (unsigned long long)(be->n_launches - l0));
    opr_download(be, all, a->dev, bytes);
    sh_be_upload(be, a->dev, a->img, bytes);
    for (int i = 0; i < n; i++) {
        s = fn(be, 1, (const uint8_t *)groups + gsize * (size_t)i);
        CHECK(s == SHOAL_OK, "[%s] single %s group %d: %s", lbl, op, i, shoal_last_error());
    }
    opr_download(be, one, a->dev, bytes);
    for (int i = 0; outs && i < n; i++) {
        if (!outs[i].data) continue;
        size_t off = (size_t)(outs[i].data - a->dev);
        int same = 1, changed = 0;
        for (int r = 0; r < outs[i].rows; r++) {
            size_t o = off + (size_t)r * outs[i].stride;
            same &= memcmp(all + o, one + o, (size_t)outs[i].cols * sizeof(float)) == 0;
            changed |= memcmp(all + o, a->img + o, (size_t)outs[i].cols * sizeof(float)) != 0;
        }
        CHECK(same, "[%s] %s group %d (model %c): grouped result differs from a single-group call", lbl, op, i,
              i < OPR_NSEQ ? 'A' + opr_seqs[i].model : '?');
        CHECK(changed, "[%s] %s group %d: output unchanged (the op did nothing?)", lbl, op, i);
    }
    CHECK(memcmp(all, one, bytes) == 0, "[%s] %s: grouped and single-group arenas differ", lbl, op);
    uint64_t h = opr_fnv(0xcbf29ce484222325ull, all, bytes);
    free(all);
    free(one);
    return h;
}

/* Every compute op called once with groups from models of different widths
 * and dtypes, compared bitwise with separate single-group calls. Returns a
 * hash of all grouped results (equal hashes across thread counts mean the
 * split does not change the arithmetic). */
OPR_FN uint64_t opref_grouped_run_all(sh_backend *be, const char *lbl) {
    opr_rng r = {4242};
    uint64_t hash = 0xcbf29ce484222325ull;
    opr_arena a = {0};
    a.cap = 1 << 20;
    a.img = malloc(a.cap * sizeof(float));
    for (size_t i = 0; i < a.cap; i++) a.img[i] = opr_unif(&r, -1, 1);
    a.dev = opr_upload(be, a.img, a.cap * sizeof(float));
    if (!a.dev) return 0;
    void *wdev[OPR_NMODEL], *tdev[OPR_NMODEL];
    int n_vocab = 37;
    float *bias = malloc(4096 * sizeof(float));
    for (int i = 0; i < 4096; i++) bias[i] = opr_unif(&r, -1, 1);
    float *bias_dev = opr_upload(be, bias, 4096 * sizeof(float));
    for (int m = 0; m < OPR_NMODEL; m++) {
        const opr_model *md = &opr_models[m];
        uint8_t *w = opr_weight_bytes(&r, md->wdt, md->n_out, md->d);
        wdev[m] = opr_upload(be, w, opr_row_bytes(md->wdt, md->d) * (size_t)md->n_out);
        free(w);
        w = opr_weight_bytes(&r, md->wdt, n_vocab, md->d);
        tdev[m] = opr_upload(be, w, opr_row_bytes(md->wdt, md->d) * (size_t)n_vocab);
        free(w);
    }
    /* ids and positions: per sequence, in one int buffer */
    int32_t ints[4096];
    int ids_off[OPR_NSEQ], pos_off[OPR_NSEQ], tab_off[OPR_NSEQ], ni = 0, nblk = 0;
    for (int s = 0; s < OPR_NSEQ; s++) {
        const opr_seq *q = &opr_seqs[s];
        ids_off[s] = ni;
        for (int i = 0; i < q->rows; i++) ints[ni++] = opr_int(&r, n_vocab);
        pos_off[s] = ni;
        for (int i = 0; i < q->rows; i++) ints[ni++] = q->pos0 + i;
        /* each sequence owns distinct physical blocks, in reverse order */
        int nl = (q->pos0 + q->rows + 8 + SH_KV_BLOCK - 1) / SH_KV_BLOCK;
        tab_off[s] = ni;
        for (int b = 0; b < nl; b++) ints[ni++] = nblk + nl - 1 - b;
        nblk += nl;
    }
    int32_t *ints_dev = opr_upload(be, ints, (size_t)ni * sizeof(int32_t));
    /* the KV pool, inside the arena: 2 layers, the widest kv_dim, f32 */
    int n_layer = 2, max_kvd = 0;
    for (int m = 0; m < OPR_NMODEL; m++)
        if (opr_models[m].n_head_kv * opr_models[m].head_dim > max_kvd) max_kvd = opr_models[m].n_head_kv * opr_models[m].head_dim;
    uint64_t block_bytes = (uint64_t)n_layer * 2 * SH_KV_BLOCK * max_kvd * 4;
    size_t pool_off = opr_take(&a, (size_t)(block_bytes / 4) * (size_t)nblk);
    /* pairs of f16 values: finite read as f16 or as f32 (random float bits
     * read as f16 would be NaN or inf now and then) */
    for (size_t i = 0; i < (size_t)(block_bytes / 4) * (size_t)nblk; i++) {
        uint16_t h[2] = {opr_rand_f16(&r, 10, 15), opr_rand_f16(&r, 10, 15)};
        memcpy(&a.img[pool_off + i], h, 4);
    }
    size_t mark = a.used;

#define OPR_KVREF(s, layer)                                                                                     \
    ((sh_kv_ref){a.dev + pool_off, opr_models[opr_seqs[s].model].kvdt, block_bytes, ints_dev + tab_off[s], layer, \
                 opr_models[opr_seqs[s].model].n_head_kv * opr_models[opr_seqs[s].model].head_dim})

    sh_view outs[2 * OPR_NSEQ];

    /* gemm: x (rows, d) -> y (rows, n_out); bias and accumulate vary */
    {
        sh_gemm_group g[OPR_NSEQ];
        a.used = mark;
        for (int s = 0; s < OPR_NSEQ; s++) {
            const opr_model *md = &opr_models[opr_seqs[s].model];
            int R = opr_seqs[s].rows;
            sh_view x = opr_carve(&a, R, md->d, s % 3), y = opr_carve(&a, R, md->n_out, (s + 1) % 4);
            opr_fix(&a, &x);
            opr_fix(&a, &y);
            g[s] = (sh_gemm_group){{wdev[opr_seqs[s].model], md->wdt, md->n_out, md->d}, s % 2 ? bias_dev : NULL, x, y, s % 3 == 1};
            outs[s] = y;
        }
        hash ^= opr_grouped_compare(be, lbl, "gemm", &a, opr_call_gemm, g, sizeof g[0], OPR_NSEQ, outs);
    }
    /* get_rows */
    {
        sh_get_rows_group g[OPR_NSEQ];
        a.used = mark;
        for (int s = 0; s < OPR_NSEQ; s++) {
            const opr_model *md = &opr_models[opr_seqs[s].model];
            sh_view o = opr_carve(&a, opr_seqs[s].rows, md->d, s % 2);
            opr_fix(&a, &o);
            g[s] = (sh_get_rows_group){{tdev[opr_seqs[s].model], md->wdt, n_vocab, md->d}, ints_dev + ids_off[s], o, s % 2};
            outs[s] = o;
        }
        hash ^= opr_grouped_compare(be, lbl, "get_rows", &a, opr_call_get_rows, g, sizeof g[0], OPR_NSEQ, outs);
    }
    /* norm: RMS and Layer, with and without add, in place or not */
    {
        sh_norm_group g[OPR_NSEQ];
        a.used = mark;
        for (int s = 0; s < OPR_NSEQ; s++) {
            const opr_model *md = &opr_models[opr_seqs[s].model];
            int R = opr_seqs[s].rows;
            sh_view x = opr_carve(&a, R, md->d, 1), add = opr_carve(&a, R, md->d, 0), o = opr_carve(&a, R, md->d, 2);
            opr_fix(&a, &x);
            opr_fix(&a, &add);
            opr_fix(&a, &o);
            int in_place = s % 3 == 0;
            g[s] = (sh_norm_group){x, s % 2 ? add : (sh_view){0}, s % 4 ? bias_dev : NULL, bias_dev + 100, 1e-5f,
                                   (sh_norm_kind)(s % 2), in_place ? x : o};
            outs[s] = in_place ? x : o;
        }
        hash ^= opr_grouped_compare(be, lbl, "norm", &a, opr_call_norm, g, sizeof g[0], OPR_NSEQ, outs);
    }
    /* rope on q and on k of every sequence */
    {
        sh_rope_group g[2 * OPR_NSEQ];
        a.used = mark;
        for (int s = 0; s < OPR_NSEQ; s++) {
            const opr_model *md = &opr_models[opr_seqs[s].model];
            int R = opr_seqs[s].rows;
            sh_view q = opr_carve(&a, R, md->n_head * md->head_dim, 3), k = opr_carve(&a, R, md->n_head_kv * md->head_dim, 0);
            opr_fix(&a, &q);
            opr_fix(&a, &k);
            g[2 * s] = (sh_rope_group){q, md->n_head, md->head_dim, md->n_rot, ints_dev + pos_off[s], 10000.0f, md->mode};
            g[2 * s + 1] = (sh_rope_group){k, md->n_head_kv, md->head_dim, md->n_rot, ints_dev + pos_off[s], 10000.0f, md->mode};
            outs[2 * s] = q;
            outs[2 * s + 1] = k;
        }
        hash ^= opr_grouped_compare(be, lbl, "rope", &a, opr_call_rope, g, sizeof g[0], 2 * OPR_NSEQ, NULL);
    }
    /* kv_write of every sequence into the shared pool, layer 1 */
    {
        sh_kv_write_group g[OPR_NSEQ];
        a.used = mark;
        for (int s = 0; s < OPR_NSEQ; s++) {
            const opr_model *md = &opr_models[opr_seqs[s].model];
            int R = opr_seqs[s].rows, kvd = md->n_head_kv * md->head_dim;
            sh_view k = opr_carve(&a, R, kvd, 1), v = opr_carve(&a, R, kvd, 0);
            opr_fix(&a, &k);
            opr_fix(&a, &v);
            g[s] = (sh_kv_write_group){k, v, ints_dev + pos_off[s], OPR_KVREF(s, 1)};
            outs[s] = (sh_view){0};
        }
        hash ^= opr_grouped_compare(be, lbl, "kv_write", &a, opr_call_kv_write, g, sizeof g[0], OPR_NSEQ, outs);
    }
    /* attention of every sequence, causal and not */
    {
        sh_attn_group g[OPR_NSEQ];
        a.used = mark;
        for (int s = 0; s < OPR_NSEQ; s++) {
            const opr_model *md = &opr_models[opr_seqs[s].model];
            int R = opr_seqs[s].rows, qd = md->n_head * md->head_dim, causal = s != 2;
            sh_view q = opr_carve(&a, R, qd, 2), o = opr_carve(&a, R, qd, 1);
            opr_fix(&a, &q);
            opr_fix(&a, &o);
            g[s] = (sh_attn_group){q, o, md->n_head, md->n_head_kv, md->head_dim, 1.0f / sqrtf((float)md->head_dim),
                                   opr_seqs[s].pos0, opr_seqs[s].pos0 + R + (causal ? 0 : 5), causal, OPR_KVREF(s, s % 2)};
            outs[s] = o;
        }
        hash ^= opr_grouped_compare(be, lbl, "attn", &a, opr_call_attn, g, sizeof g[0], OPR_NSEQ, outs);
    }
    /* act: each model its kind, some in place */
    {
        sh_act_group g[OPR_NSEQ];
        a.used = mark;
        for (int s = 0; s < OPR_NSEQ; s++) {
            const opr_model *md = &opr_models[opr_seqs[s].model];
            int R = opr_seqs[s].rows;
            sh_view x = opr_carve(&a, R, md->n_out, 1), b = opr_carve(&a, R, md->n_out, 2), o = opr_carve(&a, R, md->n_out, 0);
            opr_fix(&a, &x);
            opr_fix(&a, &b);
            opr_fix(&a, &o);
            sh_act_kind kind = (sh_act_kind)(opr_seqs[s].model % 3);
            g[s] = (sh_act_group){x, kind == SH_ACT_SILU_MUL ? b : (sh_view){0}, s % 2 ? x : o, kind};
            outs[s] = s % 2 ? x : o;
        }
        hash ^= opr_grouped_compare(be, lbl, "act", &a, opr_call_act, g, sizeof g[0], OPR_NSEQ, outs);
    }
    /* pool */
    {
        sh_pool_group g[OPR_NSEQ];
        a.used = mark;
        for (int s = 0; s < OPR_NSEQ; s++) {
            const opr_model *md = &opr_models[opr_seqs[s].model];
            sh_view x = opr_carve(&a, opr_seqs[s].rows, md->d, s % 2), o = opr_carve(&a, 1, md->d, 0);
            opr_fix(&a, &x);
            opr_fix(&a, &o);
            g[s] = (sh_pool_group){x, o.data, s % 2};
            outs[s] = o;
        }
        hash ^= opr_grouped_compare(be, lbl, "pool", &a, opr_call_pool, g, sizeof g[0], OPR_NSEQ, outs);
    }
#undef OPR_KVREF
    for (int m = 0; m < OPR_NMODEL; m++) {
        sh_be_free(be, wdev[m]);
        sh_be_free(be, tdev[m]);
    }
    sh_be_free(be, bias_dev);
    sh_be_free(be, ints_dev);
    sh_be_free(be, a.dev);
    free(a.img);
    free(bias);
    return hash;
}

#endif
