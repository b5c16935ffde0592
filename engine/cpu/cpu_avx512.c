/* AVX-512 kernels (F, BW, VL + FMA + F16C), compiled for that target and chosen
 * at run time.
 *
 * GEMM tile: for each 32-element block of K, each of the two 16-lane halves
 * h of the block is dequantised to f32 (exactly the dtype's values) and
 * FMA'd into accumulator h of every (row, column) of the tile. An output
 * element is hsum(acc0 + acc1) — the same sequence of operations whatever the
 * tile shape. A K tail (float dtypes) is one zero-padded block.
 */
#if defined(__x86_64__) && defined(__GNUC__)

#include <immintrin.h>

#include "cpu.h"

#ifndef SH_PF_DIST
#define SH_PF_DIST 12288 /* bytes ahead of the current block (tuned on decode) */
#endif

#define SH_T __attribute__((target("avx512f,avx512bw,avx512vl,fma,f16c")))
#define SH_TI static inline __attribute__((target("avx512f,avx512bw,avx512vl,fma,f16c"), always_inline))

/* Half h (16 elements) of 32-block b of a weight row, dequantised. */
SH_TI __m512 sh_deq16(int dt, const uint8_t *row, int64_t b, int h) {
    switch (dt) {
    case SH_CPU_DT_F32: return _mm512_loadu_ps((const float *)(const void *)(row + (b * 32 + h * 16) * 4));
    case SH_CPU_DT_F16:
        return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(row + (b * 32 + h * 16) * 2)));
    case SH_CPU_DT_BF16: {
        __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(row + (b * 32 + h * 16) * 2));
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16));
    }
    case SH_CPU_DT_Q8_0: {
        const uint8_t *blk = row + b * 34;
        __m512 d = _mm512_cvtph_ps(_mm256_set1_epi16((short)sh_cpu_load_u16(blk)));
        __m128i q = _mm_loadu_si128((const __m128i *)(const void *)(blk + 2 + h * 16));
        return _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)));
    }
    default: { /* SH_CPU_DT_Q4_0 */
        const uint8_t *blk = row + b * 18;
        __m512 d = _mm512_cvtph_ps(_mm256_set1_epi16((short)sh_cpu_load_u16(blk)));
        __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(blk + 2)));
        v = h ? _mm512_srli_epi32(v, 4) : _mm512_and_si512(v, _mm512_set1_epi32(15));
        v = _mm512_sub_epi32(v, _mm512_set1_epi32(8));
        return _mm512_mul_ps(d, _mm512_cvtepi32_ps(v));
    }
    }
}

/* out[r * C + c] = sum_k x_r[k] w_c[k] over an R x C register tile. */
SH_TI void sh_tile512(int dt, int R, int C, const float *x, int64_t xs, const uint8_t *w, size_t wrow,
                      int K, float *out) {
    __m512 acc[SH_CPU_TILE_R][SH_CPU_TILE_C][2];
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) acc[r][c][0] = acc[r][c][1] = _mm512_setzero_ps();
    int64_t nb = K / 32;
    size_t bb = sh_cpu_row_bytes(dt, 32); /* bytes per 32-block */
    for (int64_t b = 0; b < nb; b++) {
        /* software prefetch: decode streams weights once, and the hardware
         * prefetchers alone leave the dequantising loop latency-bound */
        for (int c = 0; c < C; c++) _mm_prefetch((const char *)(w + (size_t)c * wrow + (size_t)b * bb + SH_PF_DIST), _MM_HINT_T0);
        for (int h = 0; h < 2; h++) {
            __m512 wv[SH_CPU_TILE_C];
            for (int c = 0; c < C; c++) wv[c] = sh_deq16(dt, w + (size_t)c * wrow, b, h);
            for (int r = 0; r < R; r++) {
                __m512 xv = _mm512_loadu_ps(x + r * xs + b * 32 + h * 16);
                for (int c = 0; c < C; c++) acc[r][c][h] = _mm512_fmadd_ps(xv, wv[c], acc[r][c][h]);
            }
        }
    }
    int tail = K - (int)nb * 32;
    if (dt <= SH_CPU_DT_BF16 && tail > 0) {
        float wp[SH_CPU_TILE_C][32], xp[SH_CPU_TILE_R][32];
        for (int c = 0; c < C; c++) sh_cpu_dequant_block(dt, w + (size_t)c * wrow, nb, tail, wp[c]);
        for (int r = 0; r < R; r++)
            for (int i = 0; i < 32; i++) xp[r][i] = i < tail ? x[r * xs + nb * 32 + i] : 0.0f;
        for (int h = 0; h < 2; h++) {
            for (int r = 0; r < R; r++) {
                __m512 xv = _mm512_loadu_ps(xp[r] + h * 16);
                for (int c = 0; c < C; c++)
                    acc[r][c][h] = _mm512_fmadd_ps(xv, _mm512_loadu_ps(wp[c] + h * 16), acc[r][c][h]);
            }
        }
    }
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) out[r * C + c] = _mm512_reduce_add_ps(_mm512_add_ps(acc[r][c][0], acc[r][c][1]));
}

#define SH_TILE(DTN, DT, R, C)                                                                  \
    static SH_T void sh_t512_##DTN##_##R##_##C(const float *x, int64_t xs, const uint8_t *w,   \
                                               size_t wrow, int K, float *out) {              \
        sh_tile512(DT, R, C, x, xs, w, wrow, K, out);                                         \
    }
#define SH_TILES_R(DTN, DT, R) SH_TILE(DTN, DT, R, 1) SH_TILE(DTN, DT, R, 2) SH_TILE(DTN, DT, R, 3) SH_TILE(DTN, DT, R, 4)
#define SH_TILES(DTN, DT) SH_TILES_R(DTN, DT, 1) SH_TILES_R(DTN, DT, 2) SH_TILES_R(DTN, DT, 3) SH_TILES_R(DTN, DT, 4)
SH_TILES(f32, SH_CPU_DT_F32)
SH_TILES(f16, SH_CPU_DT_F16)
SH_TILES(bf16, SH_CPU_DT_BF16)
SH_TILES(q8_0, SH_CPU_DT_Q8_0)
SH_TILES(q4_0, SH_CPU_DT_Q4_0)

#define SH_SET_R(DTN, DT, R)                                                     \
    k->tile[DT][R - 1][0] = sh_t512_##DTN##_##R##_1;                             \
    k->tile[DT][R - 1][1] = sh_t512_##DTN##_##R##_2;                             \
    k->tile[DT][R - 1][2] = sh_t512_##DTN##_##R##_3;                             \
    k->tile[DT][R - 1][3] = sh_t512_##DTN##_##R##_4;
#define SH_SET(DTN, DT) SH_SET_R(DTN, DT, 1) SH_SET_R(DTN, DT, 2) SH_SET_R(DTN, DT, 3) SH_SET_R(DTN, DT, 4)

/* ---- attention helpers ------------------------------------------------- */

/* dot = sum q[i] k[i]: one 16-lane accumulator, masked tail, then hsum */
static SH_T float sh_dot_kv_f32_512(const float *q, const float *k, int n) {
    __m512 acc = _mm512_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), _mm512_loadu_ps(k + i), acc);
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1u);
        acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + i), _mm512_maskz_loadu_ps(m, k + i), acc);
    }
    return _mm512_reduce_add_ps(acc);
}

static SH_T float sh_dot_kv_f16_512(const float *q, const uint16_t *k, int n) {
    __m512 acc = _mm512_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 kv = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(k + i)));
        acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), kv, acc);
    }
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1u);
        __m512 kv = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, k + i));
        acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + i), kv, acc);
    }
    return _mm512_reduce_add_ps(acc);
}

/* o += p v */
static SH_T void sh_axpy_kv_f32_512(float *o, float p, const float *v, int n) {
    __m512 pv = _mm512_set1_ps(p);
    int i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(o + i, _mm512_fmadd_ps(pv, _mm512_loadu_ps(v + i), _mm512_loadu_ps(o + i)));
    for (; i < n; i++) o[i] = __builtin_fmaf(p, v[i], o[i]);
}

static SH_T void sh_axpy_kv_f16_512(float *o, float p, const uint16_t *v, int n) {
    __m512 pv = _mm512_set1_ps(p);
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 vv = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(v + i)));
        _mm512_storeu_ps(o + i, _mm512_fmadd_ps(pv, vv, _mm512_loadu_ps(o + i)));
    }
    for (; i < n; i++) o[i] = __builtin_fmaf(p, sh_cpu_f16_f32(v[i]), o[i]);
}

void sh_cpu_kernels_avx512(sh_cpu_kernels *k) {
    memset(k, 0, sizeof *k);
    SH_SET(f32, SH_CPU_DT_F32)
    SH_SET(f16, SH_CPU_DT_F16)
    SH_SET(bf16, SH_CPU_DT_BF16)
    SH_SET(q8_0, SH_CPU_DT_Q8_0)
    SH_SET(q4_0, SH_CPU_DT_Q4_0)
    /* 32 zmm registers: R * C * 2 accumulators + C weights + 1 x */
    k->rmax = 4;
    k->cmax[0] = 4;
    k->cmax[1] = 4;
    k->cmax[2] = 3;
    k->cmax[3] = 3;
    k->dot_kv_f32 = sh_dot_kv_f32_512;
    k->dot_kv_f16 = sh_dot_kv_f16_512;
    k->axpy_kv_f32 = sh_axpy_kv_f32_512;
    k->axpy_kv_f16 = sh_axpy_kv_f16_512;
}

#else

#include "cpu.h"

void sh_cpu_kernels_avx512(sh_cpu_kernels *k) { sh_cpu_kernels_scalar(k); }

#endif
