/* The CPU backend's internals: thread pool, ISA selection, kernel tables and
 * the small inline conversions every CPU kernel shares.
 *
 * Determinism: every output element of every op is computed by one thread
 * with a fixed reduction order that depends only on the op's shapes and the
 * ISA chosen when the backend was created — never on the thread count, on how
 * work items were split, on the other groups of the call, or (for GEMM) on
 * the number of rows M. So a grouped call gives bitwise the results of
 * separate single-group calls, and a decode row equals the same row computed
 * inside a prefill batch.
 */
#ifndef SH_CPU_H
#define SH_CPU_H

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "backend.h"

/* ---- ISA --------------------------------------------------------------- */

typedef enum sh_cpu_isa {
    SH_CPU_SCALAR = 0, /* portable C: the reference path */
    SH_CPU_AVX2 = 1,   /* AVX2 + FMA + F16C */
    SH_CPU_AVX512 = 2, /* AVX-512 F/BW/VL + FMA + F16C */
    SH_CPU_ISA_COUNT
} sh_cpu_isa;

/* The best ISA this machine and OS support. */
sh_cpu_isa sh_cpu_isa_best(void);
/* "scalar", "avx2", "avx512". */
const char *sh_cpu_isa_name(sh_cpu_isa isa);

/* Creates a CPU backend with a given ISA (for tests and benchmarks). Fails
 * with SHOAL_ERR_UNSUPPORTED if the machine lacks it. n_threads 0 = all cores
 * this process may run on. sh_cpu_backend_create uses the best ISA, or the
 * one named by the environment variable SHOAL_CPU_ISA if set (a name above;
 * an ISA the machine lacks is an error). */
shoal_status sh_cpu_backend_create_isa(int n_threads, sh_cpu_isa isa, sh_backend **out);
/* The ISA and thread count of a CPU backend (be->ops->name is "cpu"). */
sh_cpu_isa sh_cpu_backend_isa(const sh_backend *be);
int sh_cpu_backend_threads(const sh_backend *be);

/* ---- thread pool ------------------------------------------------------- */

/* Runs items [begin, end) on pool thread `thread` (0 = the calling thread). */
typedef void (*sh_cpu_task)(void *ctx, int64_t begin, int64_t end, int thread);

typedef struct sh_cpu_pool sh_cpu_pool;

/* Starts n_threads - 1 workers (the caller is thread 0), each pinned to one
 * CPU of the process's affinity mask where allowed (worker i to the i-th
 * allowed CPU; the caller's thread is left alone), unless the environment
 * sets SHOAL_CPU_PIN=0. n_threads >= 2. */
shoal_status sh_cpu_pool_create(int n_threads, sh_cpu_pool **out);
void sh_cpu_pool_free(sh_cpu_pool *p); /* NULL is fine */

/* Calls fn over items [0, n_items) in chunks of `chunk` items, spread over
 * the pool's threads, and returns when all are done. A NULL pool, or a job of
 * one chunk, runs inline on the caller without touching the pool. */
void sh_cpu_pool_run(sh_cpu_pool *p, int64_t n_items, int64_t chunk, sh_cpu_task fn, void *ctx);

/* ---- the backend object ------------------------------------------------ */

/* Per-thread scratch, grown by the caller before a parallel job. */
typedef struct sh_cpu_scratch {
    float *buf;
    size_t n; /* floats */
} sh_cpu_scratch;

typedef struct sh_cpu_backend {
    sh_backend base;
    sh_cpu_isa isa;
    int n_threads;
    sh_cpu_pool *pool;        /* NULL when n_threads == 1 */
    pthread_mutex_t lock;     /* one compute call at a time */
    sh_cpu_scratch *scratch;  /* (n_threads) */
    float *xf_buf;            /* gemm x transforms: the transformed rows of a call */
    size_t xf_cap;            /* floats */
    float *epi_buf;           /* gemm SILU_PAIR epilogues: the up projections of a call */
    size_t epi_cap;           /* floats */
} sh_cpu_backend;

/* Makes every thread's scratch hold at least n floats. */
shoal_status sh_cpu_scratch_reserve(sh_cpu_backend *cb, size_t n);

/* ---- kernels: the GEMM tile table -------------------------------------- */

/* out[r * C + c] = sum_k x[r * xs + k] * w_c[k] for r < R, c < C, where w_c
 * is the c-th weight row at w + c * wrow (dtype of the table slot), K
 * elements. Each output element is accumulated in the ISA's fixed order. */
typedef void (*sh_cpu_tile_fn)(const float *x, int64_t xs, const uint8_t *w, size_t wrow, int K,
                               float *out);

#define SH_CPU_TILE_R 4 /* rows per register tile, at most */
#define SH_CPU_TILE_C 4 /* columns per register tile, at most */

/* Index of a weight dtype in the tile tables: f32, f16, bf16, q8_0, q4_0. */
enum { SH_CPU_DT_F32, SH_CPU_DT_F16, SH_CPU_DT_BF16, SH_CPU_DT_Q8_0, SH_CPU_DT_Q4_0, SH_CPU_DT_COUNT };
int sh_cpu_dt_index(sh_dtype dt); /* -1 if not a GEMM dtype */

typedef struct sh_cpu_kernels {
    /* tile[dt][R - 1][C - 1], NULL where not provided */
    sh_cpu_tile_fn tile[SH_CPU_DT_COUNT][SH_CPU_TILE_R][SH_CPU_TILE_C];
    int rmax;                /* tallest tile provided (1 .. SH_CPU_TILE_R) */
    int cmax[SH_CPU_TILE_R]; /* widest tile used for R rows; narrower ones
                              * (every C < cmax) must exist for the remainder */
    /* Attention helpers over one KV row of n elements (dtype f32 or f16):
     * dot = sum q[i] k[i]; axpy: o[i] += p * v[i]. */
    float (*dot_kv_f32)(const float *q, const float *k, int n);
    float (*dot_kv_f16)(const float *q, const uint16_t *k, int n);
    void (*axpy_kv_f32)(float *o, float p, const float *v, int n);
    void (*axpy_kv_f16)(float *o, float p, const uint16_t *v, int n);
} sh_cpu_kernels;

void sh_cpu_kernels_scalar(sh_cpu_kernels *k);
void sh_cpu_kernels_avx2(sh_cpu_kernels *k);
void sh_cpu_kernels_avx512(sh_cpu_kernels *k);

/* ---- op entry points (cpu_gemm.c, cpu_ops.c, cpu_attn.c) -------------- */

const sh_cpu_kernels *sh_cpu_kernels_for(sh_cpu_isa isa);

shoal_status sh_cpu_gemm(sh_backend *be, int n, const sh_gemm_group *g);
shoal_status sh_cpu_get_rows(sh_backend *be, int n, const sh_get_rows_group *g);
shoal_status sh_cpu_norm(sh_backend *be, int n, const sh_norm_group *g);
shoal_status sh_cpu_rope(sh_backend *be, int n, const sh_rope_group *g);
shoal_status sh_cpu_kv_write(sh_backend *be, int n, const sh_kv_write_group *g);
/* Stores one row of kv_dim floats as K (kv 0) or V (1) of pool slot (physical
 * block * SH_KV_BLOCK + offset) in ref's layer, as kv_write does. */
void sh_cpu_kv_put(const sh_kv_ref *ref, int kv, int32_t slot, const float *src);
shoal_status sh_cpu_attn(sh_backend *be, int n, const sh_attn_group *g);
shoal_status sh_cpu_act(sh_backend *be, int n, const sh_act_group *g);
shoal_status sh_cpu_pool_op(sh_backend *be, int n, const sh_pool_group *g);
shoal_status sh_cpu_argmax(sh_backend *be, int n, const sh_argmax_group *g);
shoal_status sh_cpu_sample(sh_backend *be, int n, const sh_sample_group *g); /* cpu_sample.c */

/* Finds the group of a flattened item: the largest g with start[g] <= item,
 * where start has n + 1 ascending entries (start[0] = 0). */
static inline int sh_cpu_find_group(const int64_t *start, int n, int64_t item) {
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (start[mid] <= item) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

/* ---- scalar conversions (exact; f32 -> f16 rounds to nearest even) ----- */

static inline float sh_cpu_bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint32_t sh_cpu_f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline float sh_cpu_f16_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0) {
        /* zero or subnormal: m * 2^-24, exact in f32 */
        float v = (float)m * 5.9604644775390625e-8f;
        return sh_cpu_bits_f32(sh_cpu_f32_bits(v) | sign);
    }
    if (e == 31) return sh_cpu_bits_f32(sign | 0x7f800000u | (m << 13));
    return sh_cpu_bits_f32(sign | ((e + 112u) << 23) | (m << 13));
}

static inline uint16_t sh_cpu_f32_f16(float f) {
    uint32_t x = sh_cpu_f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu)); /* NaN, quiet */
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds to >= 65536: inf */
    if (ax >= 0x38800000u) {
        /* normal: rebias the exponent, round the 13 dropped bits to even */
        uint32_t r = ax - 0x38000000u;
        r = (r + 0xfffu + ((r >> 13) & 1u)) >> 13;
        return (uint16_t)(sign | r);
    }
    uint32_t e = ax >> 23;
    if (e < 102) return sign; /* below 2^-25: rounds to zero */
    /* subnormal: m = round_even(mant * 2^(e - 126)) */
    uint32_t mant = (ax & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - e; /* 14 .. 24 */
    uint32_t m = mant >> shift, rem = mant & ((1u << shift) - 1u), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (m & 1u))) m++;
    return (uint16_t)(sign | m);
}

static inline float sh_cpu_bf16_f32(uint16_t h) { return sh_cpu_bits_f32((uint32_t)h << 16); }

static inline uint16_t sh_cpu_load_u16(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

/* Dequantises one 32-element block of a weight row (block index b) into
 * out[32], exactly as the dtype defines: q8_0 d*q, q4_0 d*(q-8), floats
 * converted. For float dtypes b counts 32-element chunks and n (<= 32) says
 * how many are present (the rest are zero). */
static inline void sh_cpu_dequant_block(int dt, const uint8_t *row, int64_t b, int n, float *out) {
    switch (dt) {
    case SH_CPU_DT_F32:
        for (int i = 0; i < 32; i++) {
            float v = 0.0f;
            if (i < n) memcpy(&v, row + (b * 32 + i) * 4, 4);
            out[i] = v;
        }
        break;
    case SH_CPU_DT_F16:
        for (int i = 0; i < 32; i++)
            out[i] = i < n ? sh_cpu_f16_f32(sh_cpu_load_u16(row + (b * 32 + i) * 2)) : 0.0f;
        break;
    case SH_CPU_DT_BF16:
        for (int i = 0; i < 32; i++)
            out[i] = i < n ? sh_cpu_bf16_f32(sh_cpu_load_u16(row + (b * 32 + i) * 2)) : 0.0f;
        break;
    case SH_CPU_DT_Q8_0: {
        const uint8_t *blk = row + b * 34;
        float d = sh_cpu_f16_f32(sh_cpu_load_u16(blk));
        for (int i = 0; i < 32; i++) out[i] = d * (float)(int8_t)blk[2 + i];
        break;
    }
    case SH_CPU_DT_Q4_0: {
        const uint8_t *blk = row + b * 18;
        float d = sh_cpu_f16_f32(sh_cpu_load_u16(blk));
        for (int i = 0; i < 16; i++) {
            out[i] = d * (float)((int)(blk[2 + i] & 15) - 8);
            out[i + 16] = d * (float)((int)(blk[2 + i] >> 4) - 8);
        }
        break;
    }
    default: break;
    }
}

/* Bytes of a weight row of n elements for a table dtype index. */
static inline size_t sh_cpu_row_bytes(int dt, int64_t n) {
    switch (dt) {
    case SH_CPU_DT_F32: return (size_t)n * 4;
    case SH_CPU_DT_F16:
    case SH_CPU_DT_BF16: return (size_t)n * 2;
    case SH_CPU_DT_Q8_0: return (size_t)(n / 32) * 34;
    case SH_CPU_DT_Q4_0: return (size_t)(n / 32) * 18;
    default: return 0;
    }
}

#endif
