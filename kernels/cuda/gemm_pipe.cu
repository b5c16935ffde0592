/* Pipelined grouped GEMM for f16/bf16 weights at decode-sized M: y (+)= x W^T + b.
 *
 * The MMA body of gemm_kernel.cuh issues a batch of weight loads, waits for
 * them, computes, and only then issues the next batch, so each warp has
 * bytes in flight for a fraction of its life (bench/NOTES.md, "Pipelined
 * GEMM"). Here a block streams its weight tile through a ring of
 * kPipeDepth shared-memory stages filled by cp.async: while the warps
 * compute stage s, the copies of stages s + 1 .. s + kPipeDepth - 1 are in
 * flight, and no register holds an unused load.
 *
 * Block: WN warps, tile = 16 WN weight rows x 8 NT activation rows, the
 * whole K. Warp w owns weight rows [16 w, 16 w + 16) of the tile and all of
 * its activation rows (no cross-warp reduction). A stage is kPipeKs = 64
 * elements of K: the tile's weight rows (two 32-element chunks, stored
 * chunk-major so a quarter-warp's 16-byte reads cover 128 contiguous bytes)
 * and the tile's f32 activation rows, which the block splits once per stage
 * into three bf16 terms (hi + mid + lo = x, exact; split3) laid out as the
 * mma B fragments read them. Products are therefore those of the f32
 * computation, as on the MMA path; f16 weights are split into two bf16
 * terms. The k order inside a 32-element chunk is gemm_kernel.cuh's
 * permutation (lane t holds elements [8t, 8t + 8) of both operands).
 */
#include <stdlib.h>

#include "gemm_kernel.cuh"

namespace {

constexpr int kPipeKs = 64;    /* K elements per stage */
constexpr int kPipeDepth = 4;  /* stages in the ring */
constexpr int kPipeXRow = kPipeKs + 4; /* floats per staged x row (16 bytes of padding: no bank conflicts) */

/* Shared bytes: ring of weight stages, ring of raw x stages, the split terms of one stage. */
__host__ __device__ constexpr int pipe_w_bytes(int wn) { return 16 * wn * kPipeKs * 2; }
__host__ __device__ constexpr int pipe_x_bytes(int nt) { return 8 * nt * kPipeXRow * 4; }
__host__ __device__ constexpr int pipe_t_bytes(int nt) { return 3 * 2 * 8 * nt * 64; }
__host__ __device__ constexpr int pipe_smem(int wn, int nt) {
    return kPipeDepth * (pipe_w_bytes(wn) + pipe_x_bytes(nt)) + pipe_t_bytes(nt);
}

__device__ __forceinline__ void cp_async16(void *dst, const void *src) {
    const unsigned s = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(s), "l"(src) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}

/* The mma of one stage for one warp: CH chunks (2, or 1 at a K tail), chunk c
 * into acc[c], the two chains interleaved. w: this lane's A bytes of chunk 0
 * (row g, bytes 16 t); chunk c is c * BN rows on, row g + 8 is 8 rows on.
 * b: this lane's B bytes of term 0, chunk 0, activation row g. */
/* c += a b (m16n8k16, bf16 in, f32 accumulate); not volatile, so the
 * compiler may interleave independent chains */
__device__ __forceinline__ void mma16816(float (&c)[4], unsigned a0, unsigned a1, unsigned a2, unsigned a3,
                                         unsigned b0, unsigned b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

/* accumulator sets: two (one per chunk of a stage) when a warp has few
 * activation tiles, so its mma chains are not one long dependency */
__host__ __device__ constexpr int pipe_na(int nt) { return nt <= 2 ? 2 : 1; }

template <int CH, int NT, int DT, int BN, int BM>
__device__ __forceinline__ void pipe_mma(float (&acc)[pipe_na(NT)][NT][4], const unsigned char *w,
                                         const unsigned char *b) {
    constexpr int NA = pipe_na(NT);
    unsigned e[CH][4], f[CH][4], el[CH][4], fl[CH][4];
#pragma unroll
    for (int c = 0; c < CH; c++) {
        const uint4 ea = *reinterpret_cast<const uint4 *>(w + c * BN * 64);
        const uint4 fa = *reinterpret_cast<const uint4 *>(w + (c * BN + 8) * 64);
        e[c][0] = ea.x, e[c][1] = ea.y, e[c][2] = ea.z, e[c][3] = ea.w;
        f[c][0] = fa.x, f[c][1] = fa.y, f[c][2] = fa.z, f[c][3] = fa.w;
        if (DT == DT_F16) {
#pragma unroll
            for (int i = 0; i < 4; i++) {
                split_f16(e[c][i], e[c][i], el[c][i]);
                split_f16(f[c][i], f[c][i], fl[c][i]);
            }
        }
    }
#pragma unroll
    for (int nt = 0; nt < NT; nt++) {
        unsigned bt[CH][3][4]; /* [chunk][term][pair] */
#pragma unroll
        for (int c = 0; c < CH; c++)
#pragma unroll
            for (int term = 0; term < 3; term++) {
                const uint4 v = *reinterpret_cast<const uint4 *>(b + ((term * 2 + c) * BM + nt * 8) * 64);
                bt[c][term][0] = v.x, bt[c][term][1] = v.y, bt[c][term][2] = v.z, bt[c][term][3] = v.w;
            }
        /* step st uses pairs 2 st, 2 st + 1 of both operands; weight term x activation terms */
#pragma unroll
        for (int st = 0; st < 2; st++)
#pragma unroll
            for (int term = 0; term < 3; term++)
#pragma unroll
                for (int c = 0; c < CH; c++)
                    mma16816(acc[c % NA][nt], e[c][2 * st], f[c][2 * st], e[c][2 * st + 1], f[c][2 * st + 1],
                             bt[c][term][2 * st], bt[c][term][2 * st + 1]);
        if (DT == DT_F16) {
#pragma unroll
            for (int st = 0; st < 2; st++)
#pragma unroll
                for (int term = 0; term < 2; term++)
#pragma unroll
                    for (int c = 0; c < CH; c++)
                        mma16816(acc[c % NA][nt], el[c][2 * st], fl[c][2 * st], el[c][2 * st + 1],
                                 fl[c][2 * st + 1], bt[c][term][2 * st], bt[c][term][2 * st + 1]);
        }
    }
}

template <int WN, int NT, int DT>
__device__ __forceinline__ void pipe_body(const sh_cu_gemm_desc &d, int local, unsigned char *smem) {
    constexpr int BN = 16 * WN, BM = 8 * NT, T = 32 * WN;
    constexpr int WB = pipe_w_bytes(WN), XB = pipe_x_bytes(NT);
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
    const int n0 = (local % d.tiles_n) * BN, m0 = (local / d.tiles_n) * BM;
    const int n_chunks = d.k >> 5; /* k % 32 == 0 (host) */
    const int n_stages = (n_chunks + 1) >> 1;
    unsigned char *ws = smem;                                    /* [stage][chunk 2][BN rows][64 B] */
    float *xs = reinterpret_cast<float *>(smem + kPipeDepth * WB); /* [stage][BM rows][kPipeXRow] */
    unsigned char *ts = smem + kPipeDepth * (WB + XB);           /* [term 3][chunk 2][BM rows][64 B] */

    /* stage st of the weight tile: BN rows x 8 pieces of 16 bytes (pieces past K skipped) */
    auto load_w = [&](int st) {
        unsigned char *dst = ws + (st % kPipeDepth) * WB;
        const int pieces = min(8, 4 * (n_chunks - 2 * st));
#pragma unroll
        for (int i = 0; i < BN * 8 / T; i++) {
            const int q = tid + i * T, r = q >> 3, p = q & 7;
            if (p < pieces)
                cp_async16(dst + (((p >> 2) * BN + r) * 4 + (p & 3)) * 16,
                           static_cast<const unsigned char *>(d.w) + (int64_t)min(n0 + r, d.n - 1) * d.row_bytes +
                               (int64_t)st * (kPipeKs * 2) + p * 16);
        }
    };
    /* stage st of the activation tile: BM rows x 16 pieces of 4 floats */
    auto load_x = [&](int st) {
        float *dst = xs + (st % kPipeDepth) * (XB / 4);
        const int pieces = min(16, 8 * (n_chunks - 2 * st));
        for (int q = tid; q < BM * 16; q += T) {
            const int r = q >> 4, p = q & 15;
            if (p < pieces)
                cp_async16(dst + r * kPipeXRow + p * 4,
                           d.x + (int64_t)min(m0 + r, d.m - 1) * d.x_stride + st * kPipeKs + p * 4);
        }
    };

    /* weights need nothing from the previous kernel: their copies start before pdl_wait */
#pragma unroll
    for (int st = 0; st < kPipeDepth - 1; st++) {
        if (st < n_stages) load_w(st);
        cp_async_commit();
    }
    pdl_wait();
#pragma unroll
    for (int st = 0; st < kPipeDepth - 1; st++) {
        if (st < n_stages) load_x(st);
        cp_async_commit();
    }

    /* chunk c of a stage accumulates into acc[c % NA] */
    constexpr int NA = pipe_na(NT);
    float acc[NA][NT][4];
#pragma unroll
    for (int c = 0; c < NA; c++)
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int j = 0; j < 4; j++) acc[c][nt][j] = 0.0f;

    for (int s = 0; s < n_stages; s++) {
        /* groups committed so far end with stages s + 1 .. s + kPipeDepth - 2: all but those have landed */
        cp_async_wait<kPipeDepth - 2>();
        __syncthreads(); /* stage s visible to all; every warp is past stage s - 1 (its slot and ts are free) */
        if (s + kPipeDepth - 1 < n_stages) {
            load_w(s + kPipeDepth - 1);
            load_x(s + kPipeDepth - 1);
        }
        cp_async_commit();

        /* split the stage's activations: piece p of row r = elements 4p .. 4p + 3 */
        const float *xr = xs + (s % kPipeDepth) * (XB / 4);
        for (int q = tid; q < BM * 16; q += T) {
            const int r = q >> 4, p = q & 15;
            const float4 v = *reinterpret_cast<const float4 *>(xr + r * kPipeXRow + p * 4);
            unsigned h0, md0, l0, h1, md1, l1;
            split3(v.x, v.y, h0, md0, l0);
            split3(v.z, v.w, h1, md1, l1);
            unsigned char *o = ts + ((p >> 3) * BM + r) * 64 + (p & 7) * 8;
            *reinterpret_cast<uint2 *>(o) = make_uint2(h0, h1);
            *reinterpret_cast<uint2 *>(o + 2 * BM * 64) = make_uint2(md0, md1);
            *reinterpret_cast<uint2 *>(o + 4 * BM * 64) = make_uint2(l0, l1);
        }
        __syncthreads();

        const unsigned char *wst = ws + (s % kPipeDepth) * WB + (warp * 16 + g) * 64 + t * 16;
        const unsigned char *tst = ts + g * 64 + t * 16;
        if (2 * s + 2 <= n_chunks) pipe_mma<2, NT, DT, BN, BM>(acc, wst, tst);
        else pipe_mma<1, NT, DT, BN, BM>(acc, wst, tst);
    }
    cp_async_wait<0>(); /* nothing is left in flight when the block exits */

    /* c[j]: weight row g + 8 (j >> 1), activation row 2t + (j & 1) of the warp's 16 x 8 piece */
    const int row = n0 + warp * 16 + g;
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
#pragma unroll
        for (int j = 0; j < 4; j++)
            store_y(d, m0 + nt * 8 + 2 * t + (j & 1), row + 8 * (j >> 1),
                    NA == 2 ? acc[0][nt][j] + acc[NA - 1][nt][j] : acc[0][nt][j]);
}

/* For every group g: y_g (+)= x_g W_g^T + b_g; block b of group g is tile
 * (b % tiles_n, b / tiles_n) of its weight rows x activation rows. */
template <int WN, int NT>
__global__ void __launch_bounds__(32 * WN)
    gemm_pipe_kernel(const sh_cu_gemm_desc *__restrict__ descs, const int32_t *__restrict__ starts, int n_groups) {
    extern __shared__ __align__(16) unsigned char pipe_smem_[];
    pdl_trigger();
    if (sh_block_idle(starts, n_groups)) return; /* capacity padding */
    const int g = sh_find_group(starts, n_groups, blockIdx.x);
    const int local = blockIdx.x - __ldg(starts + g);
    const sh_cu_gemm_desc d = descs[g];
    if (d.dtype == DT_F16) pipe_body<WN, NT, DT_F16>(d, local, pipe_smem_);
    else pipe_body<WN, NT, DT_BF16>(d, local, pipe_smem_);
}

template <int WN, int NT>
cudaError_t pipe_launch(cudaStream_t s, const sh_cu_launch_args *a) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3((unsigned)a->n_blocks);
    cfg.blockDim = dim3(32u * WN);
    cfg.dynamicSmemBytes = pipe_smem(WN, NT);
    cfg.stream = s;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr;
    cfg.numAttrs = a->pdl ? 1 : 0;
    const cudaError_t e = cudaLaunchKernelEx(&cfg, gemm_pipe_kernel<WN, NT>,
                                             static_cast<const sh_cu_gemm_desc *>(a->desc), a->starts, a->n_groups);
    return e != cudaSuccess ? e : cudaGetLastError();
}

/* carveout: percent of the unified L1 the kernel prefers as shared memory (-1: the driver's choice) */
template <int WN, int NT>
cudaError_t pipe_allow_smem(int carveout) {
    cudaError_t e = cudaFuncSetAttribute(gemm_pipe_kernel<WN, NT>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         pipe_smem(WN, NT));
    if (e == cudaSuccess && carveout >= 0)
        e = cudaFuncSetAttribute(gemm_pipe_kernel<WN, NT>, cudaFuncAttributePreferredSharedMemoryCarveout, carveout);
    return e;
}

} // namespace

/* variant = the tile index of sh_cu_pipe_wn/nt (cuda_internal.h) */
extern "C" cudaError_t sh_cu_launch_gemm_pipe(cudaStream_t s, const sh_cu_launch_args *a) {
    switch (a->variant) {
    case 0: return pipe_launch<4, 1>(s, a);
    case 1: return pipe_launch<4, 2>(s, a);
    case 2: return pipe_launch<4, 4>(s, a);
    case 3: return pipe_launch<4, 8>(s, a);
    case 4: return pipe_launch<2, 1>(s, a);
    case 5: return pipe_launch<2, 2>(s, a);
    case 6: return pipe_launch<2, 4>(s, a);
    case 7: return pipe_launch<2, 8>(s, a);
    default: return cudaErrorInvalidValue;
    }
}

/* Lets every pipelined kernel use the shared memory its tile needs (above
 * the 48 KiB default); once per device, before any launch or capture. */
extern "C" cudaError_t sh_cu_pipe_init(void) {
    /* all of it by default, so the blocks a tile allows fit (SHOAL_CUDA_PIPE_CARVEOUT for measurements) */
    const char *env = getenv("SHOAL_CUDA_PIPE_CARVEOUT");
    const int co = env ? atoi(env) : 100;
    const cudaError_t e[] = {pipe_allow_smem<4, 1>(co), pipe_allow_smem<4, 2>(co), pipe_allow_smem<4, 4>(co),
                             pipe_allow_smem<4, 8>(co), pipe_allow_smem<2, 1>(co), pipe_allow_smem<2, 2>(co),
                             pipe_allow_smem<2, 4>(co), pipe_allow_smem<2, 8>(co)};
    for (cudaError_t x : e)
        if (x != cudaSuccess) return x;
    return cudaSuccess;
}
