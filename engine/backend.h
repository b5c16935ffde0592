/* The backend interface: grouped ops over a segment table.
 *
 * Every compute op takes a list of groups. One call covers every group — the
 * groups may belong to different models with different shapes and dtypes —
 * and an accelerator backend serves the whole list with one launch. A
 * single-model forward is the one-group case of the same calls.
 *
 * Addresses inside groups (view data, weight data, ids, positions, block
 * tables, KV pools) are *backend addresses*: host pointers on the CPU backend,
 * device pointers on CUDA. Activations are f32. Group arrays themselves are
 * host memory owned by the caller and only read during the call.
 *
 * The vtable is versioned: new entries are appended, never reordered.
 * Argument checks and defaults live in backend.c (sh_be_* wrappers); backend
 * implementations may assume their inputs passed those checks.
 */
#ifndef SH_BACKEND_H
#define SH_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"
#include "shoal.h"

#define SH_BACKEND_VERSION 4 /* 2: gemm x transforms, kv_write RoPE; 3: gemm epilogues; 4: gemm row norms */
#define SH_KV_BLOCK 16 /* tokens per KV block */

/* The single list of operations. Append only. */
typedef enum sh_op {
    SH_OP_GEMM = 0,     /* y (+)= x W^T + b */
    SH_OP_GET_ROWS = 1, /* out (+)= W[ids] (embedding gather, dequantised) */
    SH_OP_NORM = 2,     /* x += add; out = norm(x) * gamma + beta */
    SH_OP_ROPE = 3,     /* rotary position embedding, in place */
    SH_OP_KV_WRITE = 4, /* K, V rows -> paged KV pool */
    SH_OP_ATTN = 5,     /* softmax(q K^T * scale) V over the paged KV pool */
    SH_OP_ACT = 6,      /* silu(a) * b, gelu(a) */
    SH_OP_POOL = 7,     /* mean over rows, optional L2 normalisation */
    SH_OP_ARGMAX = 8,   /* index of each row's maximum (greedy sampling on device) */
    SH_OP_SAMPLE = 9,   /* a token per row: greedy, or temperature/top-k/top-p/min-p and a draw */
    SH_OP_COUNT
} sh_op;

const char *sh_op_name(sh_op op);

/* ---- views and weights ------------------------------------------------- */

/* A ragged block of f32 rows: element (r, c) is data[r * stride + c]. */
typedef struct sh_view {
    float *data; /* backend address of (0, 0) */
    int rows;
    int cols;
    int stride;  /* elements between rows, >= cols */
} sh_view;

/* A weight matrix in its file dtype: n_out rows of n_in elements, row-major,
 * each row sh_dtype_row_bytes(dtype, n_in) bytes, rows contiguous. */
typedef struct sh_weight {
    const void *data; /* backend address; (n_out, n_in) */
    sh_dtype dtype;
    int n_out;
    int n_in;         /* a multiple of the dtype's block size */
} sh_weight;

/* ---- groups, one struct per op ----------------------------------------- */

/* A transform of the GEMM's activation rows, applied as they are read (x
 * itself is not written): the fused form of a norm or activation op whose
 * only reader is this GEMM. The result equals that op followed by the plain
 * GEMM (bitwise on the CPU backend; within the GEMM's bounds elsewhere). */
typedef enum sh_gemm_xf {
    SH_XF_NONE = 0,
    SH_XF_RMS = 1,       /* x <- x / sqrt(mean(x^2) + xf_eps) * xf_gamma (row-wise over K) */
    SH_XF_SILU_MUL = 2,  /* x <- silu(x) * x2 */
    SH_XF_GELU_TANH = 3, /* x <- gelu_tanh(x) (as SH_ACT_GELU_TANH) */
    SH_XF_GELU_ERF = 4,  /* x <- gelu_erf(x) (as SH_ACT_GELU_ERF) */
    SH_XF_LN = 5,        /* x <- (x - mean(x)) / sqrt(var(x) + xf_eps) * xf_gamma + xf_beta (row-wise over K) */
} sh_gemm_xf;

typedef enum sh_rope_mode {
    SH_ROPE_NORM = 0, /* rotate adjacent pairs (x[2i], x[2i+1]) — GGUF llama */
    SH_ROPE_NEOX = 1, /* rotate halves (x[i], x[i + n_rot/2]) — HF, GGUF qwen2 */
} sh_rope_mode;

/* One sequence's slice of the paged KV pool for one layer. A block holds
 * SH_KV_BLOCK tokens of every layer: element (layer l, kv k|v, token t, dim c)
 * of logical block b lives at
 *   pool + block_table[b] * block_bytes
 *        + (((l * 2 + kv) * SH_KV_BLOCK + t) * kv_dim + c) * sizeof(dtype). */
typedef struct sh_kv_ref {
    void *pool;                /* backend address of the pool */
    sh_dtype dtype;            /* SH_F32 or SH_F16 */
    uint64_t block_bytes;      /* >= n_layer * 2 * SH_KV_BLOCK * kv_dim * size */
    const int32_t *block_table;/* (ceil(n_pos / SH_KV_BLOCK)) physical block ids */
    int layer;
    int kv_dim;                /* n_head_kv * head_dim */
} sh_kv_ref;

/* RoPE applied inside another op (version 2): n_rot == 0 means none. */
typedef struct sh_rope_params {
    int head_dim;
    int n_rot;            /* rotated dims per head (<= head_dim, even), 0: no rotation */
    float theta;
    sh_rope_mode mode;
} sh_rope_params;

typedef enum sh_norm_kind { SH_NORM_RMS = 0, SH_NORM_LAYER = 1 } sh_norm_kind;

/* An epilogue of the GEMM, applied to each output before it is stored: the
 * fused form of the activation op whose only input is this GEMM's output.
 * Results equal the separate ops (bitwise on the CPU backend). */
typedef enum sh_gemm_epi {
    SH_EPI_NONE = 0,
    SH_EPI_SILU_PAIR = 1, /* y = silu(x W^T + b) * (x W2^T + b2): gate and up in one group */
    SH_EPI_GELU_TANH = 2, /* y = gelu_tanh(x W^T + b) (as SH_ACT_GELU_TANH) */
    SH_EPI_GELU_ERF = 3,  /* y = gelu_erf(x W^T + b) (as SH_ACT_GELU_ERF) */
    SH_EPI_ROPE = 4,      /* y = rope(x W^T + b) at positions pos (as SH_OP_ROPE with
                           * N / rope.head_dim heads; rope.n_rot == rope.head_dim) */
} sh_gemm_epi;

typedef struct sh_gemm_group {
    sh_weight w;        /* (N, K) */
    const float *bias;  /* (N) or NULL */
    sh_view x;          /* (M, K) */
    sh_view y;          /* (M, N); must not overlap x (or x2) */
    int accumulate;     /* 1: y += x W^T + b; 0: y = x W^T + b */
    /* version 2; zero = no transform */
    sh_gemm_xf xf;
    const float *xf_gamma; /* RMS, LN: (K) or NULL (= 1) */
    float xf_eps;          /* RMS, LN */
    sh_view x2;            /* SILU_MUL: (M, K) */
    /* version 3; zero = none. An epilogue needs accumulate == 0. */
    sh_gemm_epi epi;
    sh_weight w2;          /* SILU_PAIR: (N, K), same dtype as w */
    const float *bias2;    /* SILU_PAIR: (N) or NULL */
    sh_rope_params rope;   /* ROPE */
    const int32_t *pos;    /* ROPE: (M) position of each row */
    /* KV store: kv_which 1 (K) or 2 (V) also writes output row m (after the
     * epilogue) to the paged pool as token kv_slot[m] = physical block *
     * SH_KV_BLOCK + offset of layer kv.layer (kv.block_table is not used;
     * kv.kv_dim == N) — the fused form of SH_OP_KV_WRITE for rows of many
     * sequences. Epilogue NONE or ROPE. */
    int kv_which;
    const int32_t *kv_slot; /* (M) */
    sh_kv_ref kv;
    /* version 4: the norm of the rows this GEMM completes — the fused form of
     * the SH_OP_NORM that reads y next. With norm_out.data set, once a row of
     * y is written (accumulate applied) norm_out's row = norm(y's row) as
     * SH_OP_NORM computes it (norm_kind, norm_gamma, norm_beta, norm_eps);
     * y keeps the raw rows (the residual stream). norm_out is y itself (in
     * place) or apart from it. Epilogue NONE, no KV store; within the call no
     * other group may write y's rows, nor read or write norm_out. */
    sh_view norm_out;
    sh_norm_kind norm_kind;
    const float *norm_gamma; /* (N) or NULL (= 1) */
    const float *norm_beta;  /* (N) or NULL (= 0); LAYER only */
    float norm_eps;
    /* version 5 */
    const float *xf_beta;    /* LN: (K) or NULL (= 0) */
} sh_gemm_group;

typedef struct sh_get_rows_group {
    sh_weight w;          /* (n_rows_table, d) */
    const int32_t *ids;   /* (out.rows) row indices into w, each < w.n_out */
    sh_view out;          /* (rows, d) */
    int accumulate;       /* 1: out += w[ids] */
} sh_get_rows_group;

typedef struct sh_norm_group {
    sh_view x;            /* (rows, n) */
    sh_view add;          /* (rows, n) or data == NULL: if set, x += add first (x is written) */
    const float *gamma;   /* (n) or NULL (= 1) */
    const float *beta;    /* (n) or NULL (= 0); LayerNorm only */
    float eps;
    sh_norm_kind kind;    /* RMS: x / sqrt(mean(x^2) + eps); LAYER: (x - mean) / sqrt(var + eps) */
    sh_view out;          /* (rows, n); may equal x (in place) */
} sh_norm_group;


typedef struct sh_rope_group {
    sh_view x;            /* (rows, n_head * head_dim), rotated in place */
    int n_head;
    int head_dim;
    int n_rot;            /* rotated dims per head (<= head_dim, even) */
    const int32_t *pos;   /* (rows) position of each row */
    float theta;          /* base; angle(p, i) = p * theta^(-2i / n_rot) */
    sh_rope_mode mode;
} sh_rope_group;



typedef struct sh_kv_write_group {
    sh_view k;            /* (rows, kv_dim) */
    sh_view v;            /* (rows, kv_dim) */
    const int32_t *pos;   /* (rows) positions to write */
    sh_kv_ref kv;
    /* version 2: with rope.n_rot > 0, k is rotated in place (kv_dim / head_dim
     * heads) before it is written and q (if q.data) in place too — the fused
     * form of SH_OP_ROPE on q and k at the same positions. */
    sh_rope_params rope;
    sh_view q;            /* (rows, n_head * head_dim) or data == NULL */
    int n_head;           /* heads of q */
} sh_kv_write_group;

/* One sequence: rows are consecutive positions pos0 .. pos0 + rows - 1.
 * Row i attends to positions [0, pos0 + i] when causal, else [0, n_kv). */
typedef struct sh_attn_group {
    sh_view q;            /* (rows, n_head * head_dim) */
    sh_view out;          /* (rows, n_head * head_dim) */
    int n_head;
    int n_head_kv;        /* divides n_head (GQA/MQA) */
    int head_dim;
    float scale;          /* usually 1/sqrt(head_dim) */
    int pos0;
    int n_kv;             /* positions present in the cache (>= pos0 + rows) */
    int causal;
    sh_kv_ref kv;
} sh_attn_group;

typedef enum sh_act_kind {
    SH_ACT_SILU_MUL = 0,  /* out = silu(a) * b */
    SH_ACT_GELU_TANH = 1, /* out = 0.5 a (1 + tanh(sqrt(2/pi) (a + 0.044715 a^3))) */
    SH_ACT_GELU_ERF = 2,  /* out = 0.5 a (1 + erf(a / sqrt 2)) */
} sh_act_kind;

typedef struct sh_act_group {
    sh_view a;            /* (rows, n) */
    sh_view b;            /* (rows, n) for SILU_MUL; ignored otherwise */
    sh_view out;          /* (rows, n); may equal a */
    sh_act_kind kind;
} sh_act_group;

typedef struct sh_pool_group {
    sh_view x;            /* (rows, n) */
    float *out;           /* (n) mean over rows */
    int normalize;        /* 1: divide by the L2 norm */
} sh_pool_group;

typedef struct sh_argmax_group {
    sh_view x;            /* (rows, n) */
    int32_t *out;         /* (rows) backend address: index of the first maximum of each row */
} sh_argmax_group;

/* One row's sampling parameters: sh_sample_u (sample.h) without the
 * repetition penalty, which needs the host path (the step planner sends only
 * rows without one to this op). */
typedef struct sh_sample_params {
    float temperature;  /* not > 0: greedy, the first maximum (as SH_OP_ARGMAX) */
    int32_t top_k;      /* on when 0 < top_k < cols */
    float top_p;        /* on when 0 < top_p < 1 */
    float min_p;        /* on when > 0 */
    double u;           /* the draw, in [0, 1) when temperature > 0 */
} sh_sample_params;

/* out[r] = sh_sample_u(x[r], cols, p[r], no history, p[r].u): scaled =
 * x / temperature (f32); order by (scaled desc, id asc); keep the first
 * top_k; softmax over the kept (f64); top-p cut at the first running sum >=
 * top_p; min-p keeps the leading p_i >= min_p * p_0; the first kept id whose
 * running sum exceeds u * (sum kept), else the last kept. Accelerators may
 * sum the probabilities in another order: their ids can differ only where u
 * * sum or a top-p / min-p cut lies within rounding of a boundary. */
typedef struct sh_sample_group {
    sh_view x;                  /* (rows, n_vocab) logits, read only */
    const sh_sample_params *p;  /* host: (rows) */
    int32_t *out;               /* (rows) backend address */
} sh_sample_group;

/* ---- the vtable -------------------------------------------------------- */

typedef struct sh_backend sh_backend;

typedef struct sh_backend_ops {
    int version;      /* SH_BACKEND_VERSION the backend was built against */
    const char *name; /* "cpu", "cuda", ... */

    /* Frees everything the backend owns. */
    void (*destroy)(sh_backend *be);

    /* Device memory: at least 256-byte aligned. *out is NULL on failure. */
    shoal_status (*alloc)(sh_backend *be, size_t bytes, void **out);
    void (*free)(sh_backend *be, void *ptr); /* NULL is fine */
    /* Synchronous copies host -> backend and backend -> host. */
    shoal_status (*upload)(sh_backend *be, void *dst, const void *src, size_t bytes);
    shoal_status (*download)(sh_backend *be, void *dst, const void *src, size_t bytes);
    /* (optional) Use host bytes that outlive their use in place (the CPU
     * backend reads weights straight from the mmap). NULL: alloc + upload. */
    shoal_status (*map_host)(sh_backend *be, const void *host, size_t bytes, void **out);

    /* 1 if op is implemented for weights (GEMM, GET_ROWS) or KV (ATTN,
     * KV_WRITE) of dtype dt; other ops ignore dt. */
    int (*supports)(sh_backend *be, sh_op op, sh_dtype dt);

    /* Compute ops: n >= 1 groups, one call (one launch on accelerators). */
    shoal_status (*gemm)(sh_backend *be, int n, const sh_gemm_group *g);
    shoal_status (*get_rows)(sh_backend *be, int n, const sh_get_rows_group *g);
    shoal_status (*norm)(sh_backend *be, int n, const sh_norm_group *g);
    shoal_status (*rope)(sh_backend *be, int n, const sh_rope_group *g);
    shoal_status (*kv_write)(sh_backend *be, int n, const sh_kv_write_group *g);
    shoal_status (*attn)(sh_backend *be, int n, const sh_attn_group *g);
    shoal_status (*act)(sh_backend *be, int n, const sh_act_group *g);
    shoal_status (*pool)(sh_backend *be, int n, const sh_pool_group *g);

    /* Waits for queued work; reports deferred device errors. */
    shoal_status (*sync)(sh_backend *be);
    /* (optional) Brackets one scheduler step, so a backend can batch
     * descriptor uploads or replay a captured graph. */
    shoal_status (*step_begin)(sh_backend *be);
    shoal_status (*step_end)(sh_backend *be);
    /* (optional) Measures device memory bandwidth now (a large device-side
     * copy; bytes read + written per second), for roofline reports. */
    shoal_status (*bandwidth)(sh_backend *be, double *bytes_per_s);
    /* (optional) SH_OP_ARGMAX; without it the step planner downloads the
     * logits and takes the maximum on the host. */
    shoal_status (*argmax)(sh_backend *be, int n, const sh_argmax_group *g);
    /* (optional) SH_OP_SAMPLE; without it the step planner samples
     * downloaded logits on the host. */
    shoal_status (*sample)(sh_backend *be, int n, const sh_sample_group *g);
    /* (optional) Inside a step: starts what is queued so far, so the device
     * runs the step's first layers while the host packs the rest. */
    shoal_status (*step_flush)(sh_backend *be);
    /* (optional, both or neither) A download queued behind the work queued
     * so far that returns at once: *ticket names it, and wait_download
     * blocks until that copy (and the work before it) is done, leaves the
     * bytes at dst and reports deferred device errors as sync does. Tickets
     * are waited for in the order issued; a backend keeps at least
     * SH_BE_ASYNC_TICKETS in flight. Lets the planner queue the next step
     * before the last one's ids are on the host (overlapped steps). */
    shoal_status (*download_async)(sh_backend *be, void *dst, const void *src, size_t bytes, int *ticket);
    shoal_status (*wait_download)(sh_backend *be, int ticket);
} sh_backend_ops;

#define SH_BE_ASYNC_TICKETS 2

struct sh_backend {
    const sh_backend_ops *ops;
    char device[64];           /* "cpu", "cuda:0" */
    uint64_t n_launches;       /* compute-op calls issued (counter) */
    uint64_t n_groups;         /* groups over all calls (counter) */
    /* Planner hint: the largest rows of a launch (all its groups together)
     * for which GEMM x transforms (sh_gemm_xf) beat the separate norm/act
     * calls on this backend, and a launch of one-row groups takes them
     * whenever it is >= 1; 0: never. RoPE inside kv_write is always used
     * when available. */
    int xf_rows_max;
    /* Planner hint: 1 if the backend takes SH_XF_LN (gpt2's LayerNorms read
     * through the QKV and up GEMMs under the same row rule). */
    int xf_ln;
    /* Planner hint: 1 if GEMM row norms (sh_gemm_group.norm_out) beat the
     * separate norm calls on this backend. */
    int gemm_norm;
    /* SHOAL_HOST_TIMING=1: host time in each op's checked wrapper, printed
     * when the backend is freed (backend.c) */
    int host_timing;
    double host_op_s[SH_OP_COUNT];
    uint64_t host_op_calls[SH_OP_COUNT], host_op_groups[SH_OP_COUNT];
};

/* ---- registry and checked wrappers (backend.c) ------------------------- */

/* Creates the backend for a device string: "cpu", "cuda", "cuda:N".
 * n_threads is for the CPU backend (0 = all cores). */
shoal_status sh_backend_create(const char *device, int n_threads, sh_backend **out);
void sh_backend_free(sh_backend *be);

/* Constructors each backend provides (registered statically). */
shoal_status sh_cpu_backend_create(int n_threads, sh_backend **out);
#ifdef SHOAL_WITH_CUDA
shoal_status sh_cuda_backend_create(int device_index, sh_backend **out);
#endif

shoal_status sh_be_alloc(sh_backend *be, size_t bytes, void **out);
void sh_be_free(sh_backend *be, void *ptr);
shoal_status sh_be_upload(sh_backend *be, void *dst, const void *src, size_t bytes);
shoal_status sh_be_download(sh_backend *be, void *dst, const void *src, size_t bytes);
shoal_status sh_be_map_host(sh_backend *be, const void *host, size_t bytes, void **out);
shoal_status sh_be_sync(sh_backend *be);
shoal_status sh_be_step_begin(sh_backend *be);
shoal_status sh_be_step_end(sh_backend *be);
shoal_status sh_be_step_flush(sh_backend *be);
/* download_async where the backend has it (*ticket >= 0); elsewhere a
 * synchronous download (*ticket = -1, which wait_download passes). */
shoal_status sh_be_download_async(sh_backend *be, void *dst, const void *src, size_t bytes, int *ticket);
shoal_status sh_be_wait_download(sh_backend *be, int ticket);

/* Seconds on the monotonic clock (host timing of steps and calls). */
double sh_host_seconds(void);

/* Check shapes and dtypes of every group, then dispatch (n == 0 is a no-op). */
shoal_status sh_be_gemm(sh_backend *be, int n, const sh_gemm_group *g);
shoal_status sh_be_get_rows(sh_backend *be, int n, const sh_get_rows_group *g);
shoal_status sh_be_norm(sh_backend *be, int n, const sh_norm_group *g);
shoal_status sh_be_rope(sh_backend *be, int n, const sh_rope_group *g);
shoal_status sh_be_kv_write(sh_backend *be, int n, const sh_kv_write_group *g);
shoal_status sh_be_attn(sh_backend *be, int n, const sh_attn_group *g);
shoal_status sh_be_act(sh_backend *be, int n, const sh_act_group *g);
shoal_status sh_be_pool(sh_backend *be, int n, const sh_pool_group *g);
/* SHOAL_ERR_UNSUPPORTED when the backend has no argmax entry. */
shoal_status sh_be_argmax(sh_backend *be, int n, const sh_argmax_group *g);
/* SHOAL_ERR_UNSUPPORTED when the backend has no sample entry. */
shoal_status sh_be_sample(sh_backend *be, int n, const sh_sample_group *g);

#endif
