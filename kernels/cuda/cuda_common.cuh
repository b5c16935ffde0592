/* Device helpers shared by the CUDA kernels: group lookup, reductions,
 * dtype loads. Included by the .cu files only. */
#ifndef SH_CUDA_COMMON_CUH
#define SH_CUDA_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

#include "cuda_internal.h"

/* dtype ids (the GGUF type ids of dtype.h; dtype.h itself is C-only). */
enum { DT_F32 = 0, DT_F16 = 1, DT_Q4_0 = 2, DT_Q8_0 = 8, DT_BF16 = 30 };

#define FULL_MASK 0xffffffffu

/* The group of flattened block b: the largest g with starts[g] <= b
 * (starts ascending, starts[0] = 0). Called by every lane of a full warp
 * (the result is warp-uniform): a 32-ary search, so one dependent load for
 * up to 32 groups, two for up to 1024. */
/* True for the blocks past a launch's real work: the grid is rounded up to a
 * capacity bucket (cuda_backend.c) and starts[n_groups + 1] holds the real
 * block count. Every kernel returns at once for them. */
__device__ __forceinline__ bool sh_block_idle(const int32_t *__restrict__ starts, int n_groups) {
    return (int)blockIdx.x >= __ldg(starts + n_groups + 1);
}

__device__ __forceinline__ int sh_find_group(const int32_t *__restrict__ starts, int n, int b) {
    const int lane = threadIdx.x & 31;
    int lo = 0, hi = n; /* starts[lo] <= b, and the answer is in [lo, hi) */
    while (hi - lo > 1) {
        const int step = (hi - lo + 31) >> 5;
        const int idx = lo + lane * step;
        const bool le = idx < hi && __ldg(starts + idx) <= b;
        const unsigned m = __ballot_sync(0xffffffffu, le); /* a prefix of lanes; lane 0 always set */
        lo += (31 - __clz((int)m)) * step;
        hi = min(hi, lo + step);
    }
    return lo;
}

/* ---- RoPE and the paged KV pool (kv_write, the GEMM epilogue) ---------- */

/* Pair i (< heads * n_rot / 2) of a row: its two offsets (NORM: 2j, 2j + 1;
 * NEOX: j, j + n_rot / 2 within head i / (n_rot / 2)) and frequency index j. */
__device__ __forceinline__ int rope_pair(int i, int head_dim, int n_rot, int mode, int &o0, int &o1) {
    const int half = n_rot / 2, h = i / half, j = i % half;
    o0 = h * head_dim + (mode == 0 ? 2 * j : j);
    o1 = h * head_dim + (mode == 0 ? 2 * j + 1 : j + half);
    return j;
}

/* theta^(-2j / n_rot), the frequency of pair j (every RoPE path uses this
 * one expression, so their angles agree bit for bit). */
__device__ __forceinline__ double rope_inv_freq(int j, int n_rot, float theta) {
    return exp(-(2.0 * j / n_rot) * log((double)theta));
}
/* cos and sin of the angle p * f, in double, each rounded once to f32 (the
 * GEMM epilogue's table holds exactly these). */
__device__ __forceinline__ void rope_cs(double p, double f, float &cs, float &sn) {
    const double ang = p * f;
    cs = (float)cos(ang);
    sn = (float)sin(ang);
}
__device__ __forceinline__ void rope_apply(float a, float b, float cs, float sn, float &x0, float &x1) {
    x0 = a * cs - b * sn;
    x1 = a * sn + b * cs;
}
/* (a, b) rotated by p * f. */
__device__ __forceinline__ void rope_rotate(float a, float b, double p, double f, float &x0, float &x1) {
    float cs, sn;
    rope_cs(p, f, cs, sn);
    rope_apply(a, b, cs, sn, x0, x1);
}

/* K (which 0) or V (1) row of token tok in physical block blk of kv's layer. */
__device__ __forceinline__ unsigned char *kv_row(const sh_cu_kv &kv, int32_t blk, int tok, int which) {
    const int es = kv.dtype == DT_F16 ? 2 : 4;
    return kv.pool + (uint64_t)blk * kv.block_bytes +
           ((uint64_t)((kv.layer * 2 + which) * SH_KV_TOKENS + tok) * (uint64_t)kv.kv_dim) * (uint64_t)es;
}

/* Programmatic dependent launch (sm_90). Every kernel triggers its
 * dependents at entry, so the next kernel of the stream may start while
 * this one runs; the next kernel does what depends on no earlier kernel
 * (group lookup, descriptors, weights) and then waits in pdl_wait() for
 * the earlier grids to complete and their writes to be visible, before it
 * reads activations, ids or the KV pool, or writes anything. What only
 * host copies write (positions, block tables, KV slots: copied before any
 * kernel of the step starts) may be read before the wait. Without the
 * launch attribute both are no-ops. */
__device__ __forceinline__ void pdl_trigger() { asm volatile("griddepcontrol.launch_dependents;" ::: "memory"); }
__device__ __forceinline__ void pdl_wait() { asm volatile("griddepcontrol.wait;" ::: "memory"); }

/* Phase clocks for diagnosis, compiled in only with -DSH_CU_PHASES=POS
 * (bench/gpu/e2e.sh phases): a kernel marks SH_CU_PHASE(0) .. (7) in order
 * (SM clock), and thread 0 of block 0 (and of every SH_CU_PHASES_EVERY-th
 * block when that is defined) prints its SM, its start (%globaltimer) and the
 * seven differences in ns (the clock rate from %clock64 against %globaltimer)
 * when the launch's condition holds (attn_dec: position POS, layers 0-3; with
 * -DSH_CU_PHASES_LAUNCH every block of layer 2's launch whose first group is
 * at POS: bench/gpu/phases_launch.py reads those). */
#ifdef SH_CU_PHASES
#include <cstdio>
#ifndef SH_CU_PHASES_EVERY
#define SH_CU_PHASES_EVERY (1 << 30)
#endif
#define SH_CU_PHASE(i)                                                                                       \
    long long sh_ph_##i;                                                                                     \
    asm volatile("mov.u64 %0, %%clock64;" : "=l"(sh_ph_##i)::"memory");                                    \
    if (i == 0) asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(sh_ph_g0)::"memory")
#define SH_CU_PHASE_DECL unsigned long long sh_ph_g0 = 0
#define SH_CU_PHASE_PRINT(name, cond, arg)                                                                   \
    do {                                                                                                     \
        unsigned long long g1;                                                                               \
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(g1)::"memory");                                    \
        const double ghz = (double)(sh_ph_7 - sh_ph_0) / (double)(g1 - sh_ph_g0 + 1);                        \
        if (blockIdx.x % SH_CU_PHASES_EVERY == 0 && threadIdx.x == 0 && (cond))                               \
        {                                                                                                    \
            unsigned sh_sm;                                                                                  \
            asm volatile("mov.u32 %0, %%smid;" : "=r"(sh_sm));                                               \
            printf("phases %s block %d sm %u t0 %llu arg %d: %.0f %.0f %.0f %.0f %.0f %.0f %.0f ns (clock %.2f GHz)\n", \
                   name, (int)blockIdx.x, sh_sm, sh_ph_g0, (int)(arg),                                       \
                   (sh_ph_1 - sh_ph_0) / ghz, (sh_ph_2 - sh_ph_1) / ghz, (sh_ph_3 - sh_ph_2) / ghz,          \
                   (sh_ph_4 - sh_ph_3) / ghz, (sh_ph_5 - sh_ph_4) / ghz, (sh_ph_6 - sh_ph_5) / ghz,          \
                   (sh_ph_7 - sh_ph_6) / ghz, ghz);                                                          \
        }                                                                                                    \
    } while (0)
#else
#define SH_CU_PHASE(i) ((void)0)
#define SH_CU_PHASE_DECL ((void)0)
#define SH_CU_PHASE_PRINT(name, cond, arg) ((void)0)
#endif

/* 16-byte asynchronous copies to shared memory (bypassing L1), their
 * commit groups, and the wait until at most N groups are pending. */
__device__ __forceinline__ void cp_async16(void *smem, const void *gmem) {
    const unsigned sa = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(sa), "l"(gmem) : "memory");
}
/* The same, or 16 zero bytes (nothing read) when !valid. */
__device__ __forceinline__ void cp_async16_zfill(void *smem, const void *gmem, bool valid) {
    const unsigned sa = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(sa), "l"(gmem), "r"(valid ? 16 : 0) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory"); }

/* Dynamic shared memory past 48 KB is an opt-in per device and kernel:
 * asked for once per size a kernel grows to on the current device, set[]
 * recording the largest granted per device (a static array of the caller's,
 * one per kernel). Launches replayed from graphs do not come here. */
template <typename... KArgs>
static inline cudaError_t sh_cu_smem_optin(void (*kernel)(KArgs...), int bytes, int (&set)[64]) {
    int dev = 0;
    cudaError_t e = cudaGetDevice(&dev);
    if (e != cudaSuccess) return e;
    if (dev < 0 || dev >= 64) return cudaErrorInvalidDevice;
    if (bytes > __atomic_load_n(&set[dev], __ATOMIC_RELAXED)) {
        e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
        if (e != cudaSuccess) return e;
        __atomic_store_n(&set[dev], bytes, __ATOMIC_RELAXED);
    }
    return cudaSuccess;
}

/* Launches kernel on a grid of `blocks` x `threads` with smem bytes of
 * dynamic shared memory on stream s, with programmatic stream serialization
 * when pdl is set. */
template <typename... KArgs, typename... Args>
static inline cudaError_t sh_cu_launch_ks(void (*kernel)(KArgs...), int blocks, int threads, size_t smem,
                                          cudaStream_t s, int pdl, Args &&...args) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3((unsigned)blocks);
    cfg.blockDim = dim3((unsigned)threads);
    cfg.dynamicSmemBytes = smem;
    cfg.stream = s;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr;
    cfg.numAttrs = pdl ? 1 : 0;
    cudaError_t e = cudaLaunchKernelEx(&cfg, kernel, static_cast<Args &&>(args)...);
    return e != cudaSuccess ? e : cudaGetLastError();
}

/* The same without dynamic shared memory. */
template <typename... KArgs, typename... Args>
static inline cudaError_t sh_cu_launch_k(void (*kernel)(KArgs...), int blocks, int threads, cudaStream_t s, int pdl,
                                         Args &&...args) {
    return sh_cu_launch_ks(kernel, blocks, threads, 0, s, pdl, static_cast<Args &&>(args)...);
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(FULL_MASK, v, o));
    return v;
}

/* Sum of v over the block (blockDim.x a multiple of 32, <= 1024); every
 * thread gets the result. red: 32 floats of shared memory, free on entry;
 * the call ends with a barrier so red can be reused. */
__device__ __forceinline__ float block_sum(float v, float *red) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int nw = blockDim.x >> 5;
    v = warp_sum(v);
    if (lane == 0) red[warp] = v;
    __syncthreads();
    float t = lane < nw ? red[lane] : 0.0f;
    t = warp_sum(t);
    __syncthreads();
    return t;
}

/* The last of S blocks sharing a unit of work (split attention's partial
 * states, a GEMM's row tile before its norm): every thread calls this once
 * its block's results are written. True in the last block of the unit to
 * arrive, which then reads the others' results and resets *count to 0 for
 * the next launch. */
__device__ __forceinline__ bool split_arrive(int32_t *count, int S) {
    __shared__ int last;
    __threadfence(); /* the results are visible before the counter moves */
    __syncthreads();
    if (threadIdx.x == 0) last = atomicAdd(count, 1) == S - 1;
    __syncthreads();
    if (last) __threadfence(); /* the other blocks' results are read after their counts */
    return last;
}

__device__ __forceinline__ float f16_bits_to_f32(unsigned u) {
    return __half2float(__ushort_as_half((unsigned short)u));
}

__device__ __forceinline__ float bf16_bits_to_f32(unsigned u) { return __uint_as_float(u << 16); }

__device__ __forceinline__ unsigned ldg_u16(const unsigned char *p) {
    return __ldg(reinterpret_cast<const unsigned short *>(p));
}

/* Element c of a weight row in its dtype, dequantised. */
__device__ __forceinline__ float load_weight_elem(const unsigned char *row, int dtype, int c) {
    switch (dtype) {
    case DT_F32: return __ldg(reinterpret_cast<const float *>(row) + c);
    case DT_F16: return f16_bits_to_f32(ldg_u16(row + 2 * c));
    case DT_BF16: return bf16_bits_to_f32(ldg_u16(row + 2 * c));
    case DT_Q8_0: {
        const unsigned char *b = row + (c >> 5) * 34;
        const float d = f16_bits_to_f32(ldg_u16(b));
        return d * (float)(int8_t)__ldg(b + 2 + (c & 31));
    }
    case DT_Q4_0: {
        const unsigned char *b = row + (c >> 5) * 18;
        const float d = f16_bits_to_f32(ldg_u16(b));
        const int j = c & 31;
        const unsigned q = __ldg(b + 2 + (j & 15));
        const int v = (int)(j < 16 ? (q & 15u) : (q >> 4)) - 8;
        return d * (float)v;
    }
    default: return 0.0f;
    }
}

#endif
