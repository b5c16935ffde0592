/* AVX2 kernels (AVX2 + FMA + F16C), compiled for that target and chosen at
 * run time.
 *
 * GEMM tile: each 32-element block of K is taken as four 8-lane quarters q;
 * quarter q is dequantised to f32 (exactly the dtype's values) and FMA'd into
 * accumulator (q & 1) of every (row, column) of the tile. An output element
 * is hsum(acc0 + acc1) — the same sequence of operations whatever the tile
 * shape. A K tail (float dtypes) is one zero-padded block.
 */
#if defined(__x86_64__) && defined(__GNUC__)

#include <immintrin.h>

#include "cpu.h"

#ifndef SH_PF_DIST
#define SH_PF_DIST 12288 /* bytes ahead of the current block (see cpu_avx512.c) */
#endif

#define SH_T __attribute__((target("avx2,fma,f16c")))
#define SH_TI static inline __attribute__((target("avx2,fma,f16c"), always_inline))

/* Quarter q (8 elements) of 32-block b of a weight row, dequantised. */
SH_TI __m256 sh_deq8(int dt, const uint8_t *row, int64_t b, int q) {
    switch (dt) {
    case SH_CPU_DT_F32: return _mm256_loadu_ps((const float *)(const void *)(row + (b * 32 + q * 8) * 4));
    case SH_CPU_DT_F16:
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(row + (b * 32 + q * 8) * 2)));
    case SH_CPU_DT_BF16: {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(row + (b * 32 + q * 8) * 2));
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(v), 16));
    }
    case SH_CPU_DT_Q8_0: {
        const uint8_t *blk = row + b * 34;
        __m256 d = _mm256_cvtph_ps(_mm_set1_epi16((short)sh_cpu_load_u16(blk)));
        __m128i v = _mm_loadl_epi64((const __m128i *)(const void *)(blk + 2 + q * 8));
        return _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v)));
    }
    default: { /* SH_CPU_DT_Q4_0: quarters 0,1 low nibbles, 2,3 high nibbles */
        const uint8_t *blk = row + b * 18;
        __m256 d = _mm256_cvtph_ps(_mm_set1_epi16((short)sh_cpu_load_u16(blk)));
        __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(blk + 2 + (q & 1) * 8)));
        v = q >= 2 ? _mm256_srli_epi32(v, 4) : _mm256_and_si256(v, _mm256_set1_epi32(15));
        v = _mm256_sub_epi32(v, _mm256_set1_epi32(8));
        return _mm256_mul_ps(d, _mm256_cvtepi32_ps(v));
    }
    }
}

/* Fixed-order horizontal sum of 8 lanes. */
SH_TI float sh_hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* out[r * C + c] = sum_k x_r[k] w_c[k] over an R x C register tile. */
SH_TI void sh_tile256(int dt, int R, int C, const float *x, int64_t xs, const uint8_t *w, size_t wrow,
                      int K, float *out) {
    __m256 acc[SH_CPU_TILE_R][SH_CPU_TILE_C][2];
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) acc[r][c][0] = acc[r][c][1] = _mm256_setzero_ps();
    int64_t nb = K / 32;
    size_t bb = sh_cpu_row_bytes(dt, 32); /* bytes per 32-block */
    for (int64_t b = 0; b < nb; b++) {
        for (int c = 0; c < C; c++) _mm_prefetch((const char *)(w + (size_t)c * wrow + (size_t)b * bb + SH_PF_DIST), _MM_HINT_T0);
        for (int q = 0; q < 4; q++) {
            __m256 wv[SH_CPU_TILE_C];
            for (int c = 0; c < C; c++) wv[c] = sh_deq8(dt, w + (size_t)c * wrow, b, q);
            for (int r = 0; r < R; r++) {
                __m256 xv = _mm256_loadu_ps(x + r * xs + b * 32 + q * 8);
                for (int c = 0; c < C; c++) acc[r][c][q & 1] = _mm256_fmadd_ps(xv, wv[c], acc[r][c][q & 1]);
            }
        }
    }
    int tail = K - (int)nb * 32;
    if (dt <= SH_CPU_DT_BF16 && tail > 0) {
        float wp[SH_CPU_TILE_C][32], xp[SH_CPU_TILE_R][32];
        for (int c = 0; c < C; c++) sh_cpu_dequant_block(dt, w + (size_t)c * wrow, nb, tail, wp[c]);
        for (int r = 0; r < R; r++)
            for (int i = 0; i < 32; i++) xp[r][i] = i < tail ? x[r * xs + nb * 32 + i] : 0.0f;
        for (int q = 0; q < 4; q++) {
            for (int r = 0; r < R; r++) {
                __m256 xv = _mm256_loadu_ps(xp[r] + q * 8);
                for (int c = 0; c < C; c++)
                    acc[r][c][q & 1] = _mm256_fmadd_ps(xv, _mm256_loadu_ps(wp[c] + q * 8), acc[r][c][q & 1]);
            }
        }
    }
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) out[r * C + c] = sh_hsum8(_mm256_add_ps(acc[r][c][0], acc[r][c][1]));
}

#define SH_TILE(DTN, DT, R, C)                                                                  \
    static SH_T void sh_t256_##DTN##_##R##_##C(const float *x, int64_t xs, const uint8_t *w,   \
                                               size_t wrow, int K, float *out) {              \
        sh_tile256(DT, R, C, x, xs, w, wrow, K, out);                                         \
    }
#define SH_TILES_R(DTN, DT, R) SH_TILE(DTN, DT, R, 1) SH_TILE(DTN, DT, R, 2) SH_TILE(DTN, DT, R, 3)
#define SH_TILES(DTN, DT) SH_TILES_R(DTN, DT, 1) SH_TILES_R(DTN, DT, 2) SH_TILES_R(DTN, DT, 3)
SH_TILES(f32, SH_CPU_DT_F32)
SH_TILES(f16, SH_CPU_DT_F16)
SH_TILES(bf16, SH_CPU_DT_BF16)
SH_TILES(q8_0, SH_CPU_DT_Q8_0)
SH_TILES(q4_0, SH_CPU_DT_Q4_0)

#define SH_SET_R(DTN, DT, R)                                                     \
    k->tile[DT][R - 1][0] = sh_t256_##DTN##_##R##_1;                             \
    k->tile[DT][R - 1][1] = sh_t256_##DTN##_##R##_2;                             \
    k->tile[DT][R - 1][2] = sh_t256_##DTN##_##R##_3;
#define SH_SET(DTN, DT) SH_SET_R(DTN, DT, 1) SH_SET_R(DTN, DT, 2) SH_SET_R(DTN, DT, 3)

/* ---- attention helpers ------------------------------------------------- */

/* dot = sum q[i] k[i]: one 8-lane accumulator, scalar tail added last */
static SH_T float sh_dot_kv_f32_256(const float *q, const float *k, int n) {
    __m256 acc = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_loadu_ps(k + i), acc);
    float s = sh_hsum8(acc);
    for (; i < n; i++) s = __builtin_fmaf(q[i], k[i], s);
    return s;
}

static SH_T float sh_dot_kv_f16_256(const float *q, const uint16_t *k, int n) {
    __m256 acc = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 kv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(k + i)));
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), kv, acc);
    }
    float s = sh_hsum8(acc);
    for (; i < n; i++) s = __builtin_fmaf(q[i], sh_cpu_f16_f32(k[i]), s);
    return s;
}

/* o += p v */
static SH_T void sh_axpy_kv_f32_256(float *o, float p, const float *v, int n) {
    __m256 pv = _mm256_set1_ps(p);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(o + i, _mm256_fmadd_ps(pv, _mm256_loadu_ps(v + i), _mm256_loadu_ps(o + i)));
    for (; i < n; i++) o[i] = __builtin_fmaf(p, v[i], o[i]);
}

static SH_T void sh_axpy_kv_f16_256(float *o, float p, const uint16_t *v, int n) {
    __m256 pv = _mm256_set1_ps(p);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 vv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(v + i)));
        _mm256_storeu_ps(o + i, _mm256_fmadd_ps(pv, vv, _mm256_loadu_ps(o + i)));
    }
    for (; i < n; i++) o[i] = __builtin_fmaf(p, sh_cpu_f16_f32(v[i]), o[i]);
}

void sh_cpu_kernels_avx2(sh_cpu_kernels *k) {
    memset(k, 0, sizeof *k);
    SH_SET(f32, SH_CPU_DT_F32)
    SH_SET(f16, SH_CPU_DT_F16)
    SH_SET(bf16, SH_CPU_DT_BF16)
    SH_SET(q8_0, SH_CPU_DT_Q8_0)
    SH_SET(q4_0, SH_CPU_DT_Q4_0)
    /* 16 ymm registers: R * C * 2 accumulators + C weights + 1 x */
    k->rmax = 3;
    k->cmax[0] = 3;
    k->cmax[1] = 2;
    k->cmax[2] = 2;
    k->dot_kv_f32 = sh_dot_kv_f32_256;
    k->dot_kv_f16 = sh_dot_kv_f16_256;
    k->axpy_kv_f32 = sh_axpy_kv_f32_256;
    k->axpy_kv_f16 = sh_axpy_kv_f16_256;
}

#else

#include "cpu.h"

void sh_cpu_kernels_avx2(sh_cpu_kernels *k) { sh_cpu_kernels_scalar(k); }

#endif
