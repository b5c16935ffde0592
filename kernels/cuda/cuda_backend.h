/* The CUDA backend's small public surface beyond backend.h: device
 * discovery (for `shoal info` and topology matching by PCI bus id) and a few
 * knobs for tests and benchmarks.
 *
 * Plain C; no CUDA headers needed to include it.
 */
#ifndef SH_CUDA_BACKEND_H
#define SH_CUDA_BACKEND_H

#include <stdint.h>

#include "backend.h"

/* One CUDA device as the runtime reports it. */
typedef struct sh_cuda_device_info {
    int index;              /* CUDA runtime ordinal */
    char name[256];         /* "NVIDIA H200" */
    char pci_bus_id[32];    /* "0000:00:06.0" (domain:bus:device.function) */
    uint64_t total_bytes;   /* device memory */
    uint64_t free_bytes;    /* free at the time of the call */
    int sm_count;           /* multiprocessors */
    int cc_major, cc_minor; /* compute capability */
    int l2_bytes;
    int smem_per_block_optin; /* largest dynamic shared memory a block may ask for */
    int mem_bus_bits;       /* memory bus width */
} sh_cuda_device_info;

/* Number of CUDA devices. No driver or no device is not an error: *n = 0 and
 * SHOAL_OK. Other runtime failures: SHOAL_ERR_DEVICE with a message. */
shoal_status sh_cuda_device_count(int *n);

/* Fills *out for device `index`. SHOAL_ERR_NOT_FOUND when index is out of
 * range (message says how many exist), SHOAL_ERR_DEVICE on runtime errors. */
shoal_status sh_cuda_device_info_get(int index, sh_cuda_device_info *out);

/* GEMM code paths, for tests and benchmarks that compare them. AUTO picks by
 * shape (the default); SIMT forces the CUDA-core kernel; MMA forces the
 * tensor-core kernel where the weight dtype allows it (f16, bf16, q8_0,
 * q4_0; f32 weights always take SIMT). */
typedef enum sh_cuda_gemm_path {
    SH_CUDA_GEMM_AUTO = 0,
    SH_CUDA_GEMM_SIMT = 1,
    SH_CUDA_GEMM_MMA = 2,
} sh_cuda_gemm_path;

/* Sets the GEMM path of a CUDA backend (be must come from
 * sh_cuda_backend_create). Returns SHOAL_ERR_INVALID_ARG otherwise. */
shoal_status sh_cuda_set_gemm_path(sh_backend *be, sh_cuda_gemm_path path);

/* Forces the tensor-core tile of GEMM launches that the wide tile would not
 * give 4 blocks per SM, for tests and measurements (also
 * SHOAL_CUDA_MMA_TILE=0..4 at creation): tile c of sh_cu_mma_wm/nt
 * (kernels/cuda/cuda_internal.h) where the launch's row class allows it
 * (else the nearest: 1 -> 2, 3 -> 0); 0 forces the wide tile everywhere;
 * -1 (the default): chosen per launch from its size. SHOAL_ERR_INVALID_ARG
 * for other values or a non-CUDA backend. */
shoal_status sh_cuda_set_mma_tile(sh_backend *be, int tile);

/* Split attention: the blocks per SM an attention launch may grow to by
 * dealing each unit's key tiles to several blocks (0: never split; the
 * default 4, or SHOAL_CUDA_ATTN_SPLIT). SHOAL_ERR_INVALID_ARG for a negative
 * value or a non-CUDA backend. */
shoal_status sh_cuda_set_attn_split(sh_backend *be, int blocks_per_sm);

/* Attention with every visible key in shared memory (one block per row and
 * KV head, the keys of earlier steps loaded while the previous kernel runs):
 * 0 never, 1 for launches of at least one (row, KV head) pair per SM, 2
 * (the default unless SHOAL_CUDA_ATTN_DEC says otherwise) whenever the keys
 * fit. SHOAL_ERR_INVALID_ARG for other values or a
 * non-CUDA backend. */
shoal_status sh_cuda_set_attn_dec(sh_backend *be, int mode);

/* attn_dec's split: in launches of few (row, KV head) pairs (one sequence),
 * each pair's keys are dealt to up to max_blocks blocks (a quarter of the
 * SMs' worth in all), the last to finish combining their softmax states in
 * a fixed order; 1 never splits. The default is 1 unless
 * SHOAL_CUDA_ATTN_DEC_SPLIT says otherwise: on the H200 splits of 2, 4 and 8
 * were 4-10% slower at one sequence (bench/NOTES.md, "Session 14"): the
 * combine's round trip costs more than the shorter phases save. Split and
 * unsplit launches sum
 * in another order: results agree within the attention bounds, not
 * bitwise. SHOAL_ERR_INVALID_ARG outside 1..32 or for a non-CUDA backend. */
shoal_status sh_cuda_set_attn_dec_split(sh_backend *be, int max_blocks);

/* The streamed GEMM (weights through a ring of shared-memory stages, a few
 * persistent blocks per SM) for tensor-core launches of 16-bit weights at
 * M >= 2: 0 never, 1 (the default unless SHOAL_CUDA_GEMM_RING says
 * otherwise) for launches with a 32-row tile per SM, 2
 * whenever eligible; 3 and 4 as 1 and 2, with the warpgroup form (wgmma,
 * bf16 weights, M <= 16 per group) where it applies. Results of 1 and 2 are
 * bitwise those of the tile kernels; the warpgroup form sums in another
 * order. SHOAL_ERR_INVALID_ARG for other values or a non-CUDA backend. */
shoal_status sh_cuda_set_gemm_ring(sh_backend *be, int mode);

/* The tensor-copy forms (sm_90, bf16 weights; see gemm_ring.cu) in the
 * default rules: 0 never (the rules of sh_cuda_set_gemm_ring alone), 1 (the
 * default unless SHOAL_CUDA_GEMM_TMX says otherwise) for launches of more
 * than 16 rows per group with an item per SM and, in ring mode 1, launches
 * of at most 16 rows with 4 items per SM (LM heads), 2 for every launch of
 * more than 16 rows it can take. Results sum in another order than the tile
 * kernels'. SHOAL_ERR_INVALID_ARG for other values or a non-CUDA backend. */
shoal_status sh_cuda_set_gemm_tmx(sh_backend *be, int mode);

/* The deep tensor-copy form (one block per SM holding up to 12 stages of
 * 16 KB, so that a block's weights are requested before the wait for the
 * previous kernel) for launches of 2 to 16 rows per group with bf16
 * weights, inside the default rules (ring mode 1 with the tensor-copy forms
 * on): 1 for launches whose 64-row items cover half to all of the SMs, 2
 * for every such launch below the LM-head rule, 0 never (the default unless
 * SHOAL_CUDA_GEMM_DEEP says otherwise: it measured slower, bench/NOTES.md,
 * "Session 10"). SHOAL_ERR_INVALID_ARG for other values or a non-CUDA
 * backend. */
shoal_status sh_cuda_set_gemm_deep(sh_backend *be, int mode);

/* The RMS x transform (a fused pre-attention or pre-FFN norm) in launches
 * that take the streamed forms: inside those named in `forms` (1 per-warp
 * ring, 2 tensor-copy form, 4 streamed terms; 7 all), and in the others as
 * a norm launch of its own before the GEMM (0, the default unless
 * SHOAL_CUDA_XF_FORMS says otherwise: it measured faster on the H200,
 * bench/NOTES.md, "Session 14"). Launches on the tile kernels keep the
 * transform either way. SHOAL_ERR_INVALID_ARG for other values or a
 * non-CUDA backend. */
shoal_status sh_cuda_set_xf_forms(sh_backend *be, int forms);

/* Programmatic dependent launch on (1, the default unless the environment
 * sets SHOAL_CUDA_PDL=0) or off, for benchmarks that compare. Flushes
 * queued work first. SHOAL_ERR_INVALID_ARG if be is not a CUDA backend. */
shoal_status sh_cuda_set_pdl(sh_backend *be, int on);

/* Step graphs (see cuda_backend.c): on by default unless the environment
 * sets SHOAL_CUDA_GRAPH=0. Off drops every captured graph. Flushes and
 * waits first. SHOAL_ERR_INVALID_ARG if be is not a CUDA backend. */
shoal_status sh_cuda_set_graphs(sh_backend *be, int on);

/* What step_end did with each step since the backend was created. */
typedef struct sh_cuda_graph_stats {
    uint64_t direct;           /* steps launched kernel by kernel (first sight, or graphs off) */
    uint64_t captures;         /* steps captured into a new graph (and launched from it) */
    uint64_t replays;          /* steps replayed from a cached graph */
    uint64_t evictions;        /* graphs dropped for a newer one */
    uint64_t capture_failures; /* captures that failed (the step ran directly) */
} sh_cuda_graph_stats;

shoal_status sh_cuda_graph_stats_get(const sh_backend *be, sh_cuda_graph_stats *out);

/* The backend's stream (a cudaStream_t), for benchmarks that time with CUDA
 * events on it. NULL if be is not a CUDA backend. */
void *sh_cuda_stream(sh_backend *be);

/* The device info of the backend's device (filled at creation). */
const sh_cuda_device_info *sh_cuda_backend_info(const sh_backend *be);

#endif
