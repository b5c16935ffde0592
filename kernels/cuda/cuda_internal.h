/* CUDA backend internals shared by the host side (cuda_backend.c, C) and the
 * kernels (*.cu): the packed device descriptors of each op and the launch
 * entry points.
 *
 * Every op is served by one launch whose blocks cover all groups: the host
 * packs one descriptor per group plus a table starts[n_groups + 1] (first
 * block of each group, ascending; starts[n_groups] = total blocks) into the
 * step's descriptor buffer, copies it to device memory once, and the kernel
 * finds its group by binary search over starts.
 */
#ifndef SH_CUDA_INTERNAL_H
#define SH_CUDA_INTERNAL_H

#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- descriptors (plain data, same layout in C and CUDA) --------------- */

enum { SH_CU_PATH_SIMT = 0, SH_CU_PATH_MMA = 1 };

/* y (+)= x W^T + b for one group. */
/* One layer of one sequence in the paged pool (see sh_kv_ref). */
typedef struct sh_cu_kv {
    unsigned char *pool;
    const int32_t *block_table; /* (ceil(n_pos / 16)) */
    uint64_t block_bytes;
    int32_t dtype, layer, kv_dim, pad_;
} sh_cu_kv;

typedef struct sh_cu_gemm_desc {
    const void *w;       /* (n, k) weight rows, row_bytes apart, file dtype */
    const float *bias;   /* (n) or NULL */
    const float *x;      /* (m, k), x_stride floats between rows */
    float *y;            /* (m, n), y_stride floats between rows */
    int64_t row_bytes;
    int32_t n, k, m;
    int32_t x_stride, y_stride;
    int32_t dtype;       /* sh_dtype */
    int32_t accumulate;  /* 1: y += ... */
    int32_t vec;         /* SIMT: 1 if 16-byte weight loads are allowed */
    int32_t xdirect;     /* SIMT, M = 1: x is 16-byte aligned, read straight from global */
    int32_t path;        /* SH_CU_PATH_* */
    int32_t tiles_n;     /* MMA: column tiles; block b -> (b % tiles_n, b / tiles_n) */
    /* activation transform (sh_gemm_xf) applied as x is read */
    int32_t xf;
    float eps;           /* RMS, LN */
    const float *gamma;  /* RMS, LN: (k) or NULL; 16-byte aligned on the MMA path and for LN */
    const float *beta;   /* LN: (k) or NULL; 16-byte aligned */
    const float *x2;     /* SILU_MUL: (m, k), x2_stride floats between rows */
    int32_t x2_stride;
    /* epilogue (sh_gemm_epi) applied to each output */
    int32_t epi;
    const void *w2;      /* SILU_PAIR: the second (up) weights, like w */
    const float *bias2;  /* SILU_PAIR: (n) or NULL */
    const int32_t *pos;  /* ROPE: (m) */
    int32_t head_dim, rope_mode; /* ROPE (n_rot = head_dim) */
    float theta;
    int32_t rope_tab_n;  /* ROPE: positions [0, rope_tab_n) have rope_tab rows */
    const void *rope_tab; /* ROPE: (position, pair j < head_dim / 2) -> float2 (cos, sin) as rope_cs rounds them */
    int32_t np;          /* SILU_PAIR / ROPE: outputs pairs (n, n / 2); a tile unit holds 8 pairs */
    /* KV store (kv_which 1: K, 2: V): kv.block_table holds each row's slot
     * (physical block * SH_KV_TOKENS + offset) */
    sh_cu_kv kv;
    int32_t kv_which, pad2_;
    int *err;            /* device error word (a negative slot) */
    /* the streamed GEMM's tensor-copy form: CUtensorMaps (in the backend's
     * table) of the weights, boxes of 64 x 64 elements, or with a pair
     * epilogue of 64 x 32 for the first (tma_a) and second (tma_b) rows */
    const void *tma_a, *tma_b;
    /* its form with streamed terms (M up to 64): the activations' three bf16
     * terms, written by the launch's split kernel at xt (K rounded up to 64
     * per row; per m tile of 8 NT rows the hi, mid and lo rows), read by
     * tensor copies through tma_x, a map of the whole term buffer, from its
     * row xt_row0 */
    void *xt;
    const void *tma_x;
    int32_t xt_row0, pad3_;
    /* row norm (nrm_kind 1 RMS, 2 LAYER; 0 none): the last of the nrm_per
     * blocks of an m tile to store (counter nrm_count[tile]) normalises the
     * tile's rows of y into nrm_out */
    float *nrm_out;      /* (m, n), nrm_stride floats between rows; may equal y */
    const float *nrm_gamma, *nrm_beta;
    int32_t *nrm_count;
    int32_t nrm_kind, nrm_stride, nrm_per;
    float nrm_eps;
} sh_cu_gemm_desc;

/* out[r] (+)= dequant(W[ids[r]]); one block per row. */
typedef struct sh_cu_get_rows_desc {
    const void *w;        /* (n_out, d) rows of row_bytes */
    const int32_t *ids;   /* (rows) */
    float *out;           /* (rows, d), stride floats between rows */
    int64_t row_bytes;
    int32_t n_out, d, stride, dtype, accumulate, pad_;
} sh_cu_get_rows_desc;

/* x += add; out = norm(x) * gamma + beta; one block per row. */
typedef struct sh_cu_norm_desc {
    float *x;             /* (rows, n) */
    const float *add;     /* (rows, n) or NULL */
    const float *gamma;   /* (n) or NULL */
    const float *beta;    /* (n) or NULL */
    float *out;           /* (rows, n), may equal x */
    int32_t n, x_stride, add_stride, out_stride, kind;
    float eps;
} sh_cu_norm_desc;

/* Rotary embedding in place; one block per row. */
typedef struct sh_cu_rope_desc {
    float *x;             /* (rows, n_head * head_dim) */
    const int32_t *pos;   /* (rows) */
    int32_t stride, n_head, head_dim, n_rot, mode;
    float theta;
} sh_cu_rope_desc;


/* K, V rows -> pool; one block per row. */
typedef struct sh_cu_kv_write_desc {
    const float *k;       /* (rows, kv_dim) */
    const float *v;       /* (rows, kv_dim) */
    const int32_t *pos;   /* (rows) */
    sh_cu_kv kv;
    int32_t k_stride, v_stride;
    /* RoPE first (n_rot > 0): q (if set) and k rotated in place */
    float *q;             /* (rows, n_head * head_dim) or NULL */
    int32_t q_stride, n_head, head_dim, n_rot, rope_mode;
    float theta;
} sh_cu_kv_write_desc;

/* softmax(q K^T scale) V; one block per (row, head), block b -> row b / n_head. */
typedef struct sh_cu_attn_desc {
    const float *q;       /* (rows, n_head * head_dim) */
    float *out;           /* (rows, n_head * head_dim) */
    sh_cu_kv kv;
    int32_t q_stride, out_stride, n_head, n_head_kv, head_dim;
    int32_t pos0, n_kv, causal;
    int32_t vec;          /* 1: K/V rows allow 16-byte loads */
    float scale;
    int32_t hpb;          /* query heads per block (1 .. 4) sharing one K/V tile */
    /* hpb = 1: the key tiles of a (row, head) split over `splits` blocks, the
     * last to finish combining their partial softmax states; attn_dec: the
     * keys of a (row, KV head) the same way */
    int32_t splits;       /* >= 1 */
    float *part;          /* splits > 1: (rows * n_head, splits, 2 + head_dim) m, l, sum p V */
    int32_t *count;       /* splits > 1: (rows * n_head; attn_dec: rows * n_head_kv) finished blocks, left at 0 */
} sh_cu_attn_desc;

/* Element-wise activation; one block per row. */
typedef struct sh_cu_act_desc {
    const float *a;       /* (rows, n) */
    const float *b;       /* (rows, n) or NULL */
    float *out;           /* (rows, n) */
    int32_t n, a_stride, b_stride, out_stride, kind, pad_;
} sh_cu_act_desc;

/* Mean over rows (+ L2 normalisation); one block per group. */
typedef struct sh_cu_pool_desc {
    const float *x;       /* (rows, n) */
    float *out;           /* (n) */
    int32_t rows, n, stride, normalize;
} sh_cu_pool_desc;

/* Index of the first maximum of each row; one block per row. A NaN in
 * column 0 gives 0; other NaNs are skipped (the host loop `x[c] > x[best]`). */
typedef struct sh_cu_argmax_desc {
    const float *x;       /* (rows, n), stride floats between rows */
    int32_t *out;         /* (rows) */
    int32_t n, stride;
    int32_t vec;          /* 1: x and stride allow 16-byte loads */
    int32_t pad_;
} sh_cu_argmax_desc;

/* One row of SH_OP_SAMPLE (sh_sample_params + where); one block per row. */
typedef struct sh_cu_sample_desc {
    const float *x;       /* (n) logits */
    int32_t *out;         /* (1) the id */
    double u;
    int32_t n;
    int32_t vec;          /* 1: x allows 16-byte loads */
    float temperature, top_p, min_p;
    int32_t top_k;
} sh_cu_sample_desc;

/* Bits of the device error word (kernels atomicOr them; sync reports). */
enum {
    SH_CU_ERR_ROW_ID = 1,      /* get_rows: an id outside [0, n_out) (row written as 0) */
    SH_CU_ERR_BLOCK_ID = 2,    /* kv_write/attn: a negative physical block id (skipped) */
};

/* ---- GEMM shape classes ------------------------------------------------ */

/* A launch is specialised on S, the largest group's M rounded up to a power
 * of two (at most 64), and on the MMA tile configuration (variant = S | c << 8). SIMT blocks process MT rows of x per pass over their
 * 4 * R weight rows; MMA blocks compute a (16 * WM) x (8 * NT) tile of y^T. */
static inline int sh_cu_gemm_class(int max_m) {
    int s = 1;
    while (s < max_m && s < 64) s *= 2;
    return s;
}
static inline int sh_cu_simt_mt(int s) { return s < 8 ? s : 8; }
/* SIMT weight rows per warp: 4, or 1 in the S = 1 kernel of tile c = 1 (a
 * small M = 1 layer spread over 4 times the blocks), or 2 in that of c = 2
 * (the same for launches with pair epilogues, which need 2 rows per warp). */
static inline int sh_cu_simt_r(int s, int c) { return s == 1 && c == 1 ? 1 : s == 1 && c == 2 ? 2 : 4; }
/* MMA tile configuration c (weight rows 16 * WM x activation rows 8 * NT;
 * NT0 = max(1, S / 8)): 0 wide (WM = 2, NT = NT0; WM = 1 at S = 1),
 * 1 (1, min(2, NT0)), 2 (1, 1), 3 (2, min(2, NT0)), 4 (4, min(2, NT0)).
 * The kernel exists for c = 0 at every S, c = 2 and 4 from S = 2, c = 1 and
 * 3 from S = 16 (below that they equal 2 and 0). */
static inline int sh_cu_mma_nt(int s, int c) {
    int nt0 = s <= 8 ? 1 : s / 8;
    return c == 0 ? nt0 : c == 2 ? 1 : (nt0 < 2 ? nt0 : 2);
}
static inline int sh_cu_mma_wm(int s, int c) { return c == 0 ? (s == 1 ? 1 : 2) : c == 3 ? 2 : c == 4 ? 4 : 1; }
static inline int sh_cu_mma_valid(int s, int c) {
    return c == 0 || (s >= 2 && (c == 2 || c == 4)) || (s >= 16 && (c == 1 || c == 3));
}
#define SH_CU_WARPS 4 /* warps per GEMM block */

/* Streamed GEMM (gemm_ring.cu): activation rows per item (8 NT) for shape
 * class S; a block's shared bytes: a ring of stages — 6 of 16 WM weight rows
 * x 256 bytes and 8 NT activation rows x 528 at NT <= 2, 8 of the weight
 * rows alone at NT = 4 — the warps' partial sums and the RMS
 * row sums' 256 floats; blocks per SM. */
static inline int sh_cu_ring_nt(int s) { return s <= 8 ? 1 : s == 16 ? 2 : 4; }
#define SH_CU_RING_SMEM(nt, wm)                                                          \
    (((nt) <= 2 ? 6 * (16 * (wm) * 256 + 8 * (nt) * 528) : 8 * 16 * (wm) * 256) + \
     (SH_CU_WARPS * (wm) * (nt) * 4 * 32 + 256) * 4)
/* Its tensor-copy form (WM = 4, NT <= 2, bf16, sm_90a): ns stages of 16 KB
 * (3 at two blocks per SM; up to SH_CU_TMA_MAX_STAGES at one, so that a
 * small launch requests all of a block's weights before the wait), the
 * activations' three bf16 terms (8 NT rows each) up to kp elements of K (a
 * multiple of 64) and 16 elements of zeros, plus 1024 bytes to align the
 * stages. */
#define SH_CU_TMA_SMEM(ns, nt, kp) ((ns) * 16384 + ((kp) / 8 + 2) * 384 * (nt) + 1024)
#define SH_CU_TMA_MAX_STAGES 12
#define SH_CU_RING_PER_SM 2
/* The form with streamed terms (NT 2, 4 or 8): 4 stages of a 64 x 64
 * weight chunk (8 KB) and 64 elements of the 24 NT term rows, plus 1024
 * bytes to align them; its split kernel's grid is SH_CU_TMX_SPLIT_PER_SM
 * blocks of 256 threads per SM. The term buffer: SH_CU_XTERMS_BYTES. */
#define SH_CU_TMX_SMEM(nt) (4 * (8192 + 24 * (nt) * 128) + 1024)
#define SH_CU_TMX_SPLIT_PER_SM 2
#define SH_CU_XTERMS_BYTES ((size_t)32 << 20)
/* rows of the norms a streamed-form launch takes before it (sh_cuda_set_xf_forms 0) */
#define SH_CU_XNORM_BYTES ((size_t)8 << 20)
static inline int sh_cu_ring_smem(int nt, int wm) { return SH_CU_RING_SMEM(nt, wm); }

/* ---- launches ---------------------------------------------------------- */

typedef struct sh_cu_launch_args {
    const void *desc;       /* device: (n_groups) descriptors of the op */
    const int32_t *starts;  /* device: (n_groups + 1) first block per group */
    int n_groups;
    int n_blocks;           /* starts[n_groups], > 0 */
    int variant;            /* op specific (GEMM: the shape class S and MMA tile) */
    int *err;               /* device error word */
    int pdl;                /* launch with programmatic stream serialization */
} sh_cu_launch_args;

typedef cudaError_t (*sh_cu_launch_fn)(cudaStream_t s, const sh_cu_launch_args *a);

cudaError_t sh_cu_launch_gemm(cudaStream_t s, const sh_cu_launch_args *a);
/* streamed weights (gemm_ring.cu): variant = NT | WM << 4 | (f16) << 8 | (RMS transform, bf16) << 9; grid fixed,
 * work in starts;
 * WM = 4: the tensor-copy form (bf16, NT <= 2), the launch's largest K in units of 64 at bit 9, its stages at bit 16;
 * WM = 5: the tensor-copy form with streamed terms (bf16, NT 2, 4 or 8), the split grid at bit 9 */
cudaError_t sh_cu_launch_gemm_ring(cudaStream_t s, const sh_cu_launch_args *a);
cudaError_t sh_cu_launch_get_rows(cudaStream_t s, const sh_cu_launch_args *a);
cudaError_t sh_cu_launch_norm(cudaStream_t s, const sh_cu_launch_args *a);
cudaError_t sh_cu_launch_rope(cudaStream_t s, const sh_cu_launch_args *a);
cudaError_t sh_cu_launch_kv_write(cudaStream_t s, const sh_cu_launch_args *a);
cudaError_t sh_cu_launch_attn(cudaStream_t s, const sh_cu_launch_args *a);
/* one query head per block (variant 1 of attn) */
cudaError_t sh_cu_launch_attn1(cudaStream_t s, const sh_cu_launch_args *a);
/* every visible key in shared memory (variants 2 and 3 of attn) */
cudaError_t sh_cu_launch_attn_dec(cudaStream_t s, const sh_cu_launch_args *a);
cudaError_t sh_cu_launch_act(cudaStream_t s, const sh_cu_launch_args *a);
cudaError_t sh_cu_launch_pool(cudaStream_t s, const sh_cu_launch_args *a);
cudaError_t sh_cu_launch_argmax(cudaStream_t s, const sh_cu_launch_args *a);
/* Fills tab[p * (head_dim / 2) + j] (float2: cos, sin) for positions p < n_pos. */
cudaError_t sh_cu_rope_table(cudaStream_t s, void *tab, int n_pos, int head_dim, float theta);
cudaError_t sh_cu_launch_sample(cudaStream_t s, const sh_cu_launch_args *a);

/* Tokens per KV block (= SH_KV_BLOCK of backend.h). */
#define SH_KV_TOKENS 16

/* Largest head_dim the attention kernel takes. */
#define SH_CU_ATTN_DMAX 256
/* Attention K/V tiles: bytes of the shared-memory stage holding one tile's K
 * and V rows, and keys per tile at most. */
#define SH_CU_ATTN_STAGE_BYTES 18432
#define SH_CU_ATTN_TK_MAX 128
/* Keys per tile for head_dim hd of es-byte elements: K and V rows padded to
 * 16 bytes plus 16 (bank spread), as many as the stage holds. The host sizes
 * attention splits with it; the kernels tile with it. */
#ifdef __CUDACC__
#define SH_CU_HD __host__ __device__
#else
#define SH_CU_HD
#endif
static inline SH_CU_HD int sh_cu_attn_tile_keys(int hd, int es) {
    const int rs = ((hd * es + 15) & ~15) + 16;
    const int tk = SH_CU_ATTN_STAGE_BYTES / (2 * rs);
    return tk < SH_CU_ATTN_TK_MAX ? tk : SH_CU_ATTN_TK_MAX;
}

/* Split attention: partial-state floats and counters the backend keeps. */
#define SH_CU_ATTN_PART_FLOATS (2u << 20)
#define SH_CU_ATTN_COUNTS 4096
/* GEMM row norms: counters per launch (one per m tile of a normed group) */
#define SH_CU_GEMM_COUNTS 16384
/* attention blocks per (row, KV head) when each serves up to hpb query heads */
/* Attention with every key in shared memory (attn_dec.cu): query heads per
 * KV head at most, the shared memory a launch may ask for, and what a block
 * of n_keys keys needs (K and V rows of hd es-byte elements padded by 16;
 * queries, scores, partition sums and row sums in floats). */
#define SH_CU_ATTN_DEC_HEADS 8
#define SH_CU_ATTN_DEC_SMEM_MAX (96 * 1024)
#define SH_CU_ATTN_DEC_WIDE 512 /* threads per block in launches of a few blocks */
#define SH_CU_ATTN_DEC_PARTS 16  /* p V: key ranges summed apart, a warp each, then in order */
/* p V's dims per partition: head_dim rounded up to 32, 64 or 128 (a lane takes span / 32) */
static inline SH_CU_HD int sh_cu_attn_dec_span(int hd) { return hd <= 32 ? 32 : hd <= 64 ? 64 : 128; }
static inline SH_CU_HD long sh_cu_attn_dec_acc_bytes(long hd, long heads) {
    return 4 * heads * SH_CU_ATTN_DEC_PARTS * (long)sh_cu_attn_dec_span((int)hd);
}
/* K rows (p V's partition sums take their place once the scores are done),
 * V rows, the queries, the scores, the heads' sums and maxima */
static inline long sh_cu_attn_dec_smem(long n_keys, long hd, long es, long heads) {
    const long rows = n_keys * (hd * es + 16), acc = sh_cu_attn_dec_acc_bytes(hd, heads);
    return (rows > acc ? rows : acc) + rows + 4 * heads * (hd + ((n_keys + 3) & ~3L) + 2);
}
/* Split launches (desc.splits = S > 1): the keys of a (row, KV head) in S
 * blocks of this many (a multiple of 4), the last ones possibly fewer or
 * none. */
static inline SH_CU_HD int sh_cu_attn_dec_part_keys(int n_keys, int splits) {
    return ((n_keys + splits - 1) / splits + 3) & ~3;
}
#define SH_CU_ATTN_BLOCKS_PER_KV(ratio, hpb) (((ratio) + (hpb) - 1) / (hpb))

/* cudaSuccess if this binary has kernels for the current device. */
cudaError_t sh_cu_probe_kernels(void);

#ifdef __cplusplus
}
#endif

#endif
