/* Pipelined grouped GEMM for f16/bf16 weights at decode-sized M: y (+)= x W^T + b.
 *
 * The MMA body of gemm_kernel.cuh issues a batch of weight loads, waits for
 * them, computes, and only then issues the next batch; between batches a
 * warp has nothing in flight, and a small layer's blocks each cover one
 * tile and leave (bench/NOTES.md, "Pipelined GEMM"). Here every block keeps
 * up to SH_CU_PIPE_DEPTH - 1 stages of cp.async copies in flight in a ring
 * of shared-memory slots and walks the tiles b, b + grid, b + 2 grid, ...
 * of the launch (persistent): the copies of the next tile start while the
 * current one is computed, so an SM streams weights from its first stage to
 * its last.
 *
 * Tile: 16 RT weight rows x 8 NT activation rows, the whole K. A stage is
 * SH_CU_PIPE_KS = 128 elements of K: four 32-element chunks of the tile's
 * weight rows (chunk-major: a quarter-warp's 16-byte reads cover 128
 * contiguous bytes) and of its f32 activation rows (rows padded by 16 bytes:
 * no bank conflicts). Warp w takes chunk w of every stage (a K split), all
 * RT x NT mma tiles of it; the four warps' partial sums meet in shared
 * memory when a tile ends. Activations are split exactly into three bf16
 * terms as they are read (split3) and f16 weights into two, so products are
 * those of the f32 computation, as on the MMA path; the k order inside a
 * chunk is gemm_kernel.cuh's permutation (lane t holds elements [8t, 8t + 8)
 * of both operands).
 */
#include <stdlib.h>

#include "gemm_kernel.cuh"

namespace {

constexpr int kKs = SH_CU_PIPE_KS;
constexpr int kDepth = SH_CU_PIPE_DEPTH;
constexpr int kXRow = kKs + 4; /* floats per staged activation row */

constexpr int kWRow = kKs * 2 + 64; /* bytes per staged weight row (64 of padding: no bank conflicts) */

/* Bulk copies (the Hopper copy engine: no load slots held per thread)
 * signal an mbarrier per ring slot with the bytes they wrote. */
__device__ __forceinline__ unsigned smem_u32(const void *p) { return (unsigned)__cvta_generic_to_shared(p); }
__device__ __forceinline__ void mbar_init(uint64_t *b) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(smem_u32(b)) : "memory");
}
__device__ __forceinline__ void mbar_expect(uint64_t *b, unsigned bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_u32(b)), "r"(bytes) : "memory");
}
__device__ __forceinline__ void bulk_copy(void *dst, const void *src, unsigned bytes, uint64_t *b) {
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(
                     smem_u32(dst)),
                 "l"(src), "r"(bytes), "r"(smem_u32(b))
                 : "memory");
}
__device__ __forceinline__ void mbar_wait(uint64_t *b, unsigned parity) {
    unsigned done;
    do {
        asm volatile("{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n selp.u32 %0, 1, 0, p;\n}"
                     : "=r"(done)
                     : "r"(smem_u32(b)), "r"(parity)
                     : "memory");
    } while (!done);
}

/* c += a b (m16n8k16, bf16 in, f32 accumulate); not volatile, so the
 * compiler may interleave independent chains */
__device__ __forceinline__ void mma16816(float (&c)[4], unsigned a0, unsigned a1, unsigned a2, unsigned a3,
                                         unsigned b0, unsigned b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

/* What a block needs of the tile it loads or computes. */
struct pipe_tile {
    const sh_cu_gemm_desc *d;
    int n0, m0, n_chunks, n_stages;
};

/* Tile tau of the launch (tau below the real tile count). All threads call
 * (the group lookup is warp-collective). */
template <int RT, int NT>
__device__ __forceinline__ pipe_tile pipe_tile_of(const sh_cu_gemm_desc *__restrict__ descs,
                                                  const int32_t *__restrict__ starts, int n_groups, int tau) {
    const int g = sh_find_group(starts, n_groups, tau);
    const int local = tau - __ldg(starts + g);
    pipe_tile p;
    p.d = descs + g;
    const int tiles_n = __ldg(&p.d->tiles_n);
    p.n0 = (local % tiles_n) * 16 * RT;
    p.m0 = (local / tiles_n) * 8 * NT;
    p.n_chunks = __ldg(&p.d->k) >> 5; /* k % 32 == 0 (host) */
    p.n_stages = (p.n_chunks + 3) >> 2;
    return p;
}

template <int RT, int NT>
__global__ void __launch_bounds__(128, 1)
    gemm_pipe_kernel(const sh_cu_gemm_desc *__restrict__ descs, const int32_t *__restrict__ starts, int n_groups) {
    constexpr int BN = 16 * RT, BM = 8 * NT;
    constexpr int WB = BN * kWRow, XB = BM * kXRow * 4;
    extern __shared__ __align__(16) unsigned char smem[];
    unsigned char *ws = smem;                                /* [slot][BN rows][kWRow B] */
    float *xs = reinterpret_cast<float *>(smem + kDepth * WB); /* [slot][BM rows][kXRow] */
    float *red = reinterpret_cast<float *>(smem + kDepth * (WB + XB)); /* [warp][RT][NT][4][32] */
    uint64_t *full = reinterpret_cast<uint64_t *>(red + 4 * RT * NT * 4 * 32); /* [slot]: the stage landed */
    pdl_trigger();
    const int n_tiles = __ldg(starts + n_groups + 1); /* the real ones; the grid may be smaller or larger */
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
    if ((int)blockIdx.x >= n_tiles) return;
    if (tid == 0) {
        for (int i = 0; i < kDepth; i++) mbar_init(full + i);
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    __syncthreads();

    /* producer (warp 0 issues; every thread tracks): the next stage to copy
     * (tile lt, stage ls) into slot ps */
    int lt = blockIdx.x, ls = 0, ps = 0;
    pipe_tile lp = pipe_tile_of<RT, NT>(descs, starts, n_groups, lt);
    /* arms slot `slot` for the stage's bytes and copies its weight rows */
    auto load_w = [&](const pipe_tile &p, int st, int slot) {
        if (warp != 0) return;
        const sh_cu_gemm_desc *d = p.d;
        const unsigned wbytes = 64u * min(4, p.n_chunks - 4 * st); /* of a weight row in this stage */
        if (lane == 0) mbar_expect(full + slot, BN * wbytes + BM * 2 * wbytes);
        __syncwarp();
        const unsigned char *w = static_cast<const unsigned char *>(d->w);
        const int64_t rb = __ldg(&d->row_bytes);
        const int n = __ldg(&d->n);
#pragma unroll
        for (int i = 0; i < (BN + 31) / 32; i++) {
            const int r = lane + 32 * i;
            if (r < BN)
                bulk_copy(ws + slot * WB + r * kWRow, w + (int64_t)min(p.n0 + r, n - 1) * rb + (int64_t)st * (kKs * 2),
                          wbytes, full + slot);
        }
    };
    auto load_x = [&](const pipe_tile &p, int st, int slot) {
        if (warp != 0) return;
        const sh_cu_gemm_desc *d = p.d;
        const unsigned xbytes = 128u * min(4, p.n_chunks - 4 * st); /* of an activation row in this stage */
        const float *x = d->x;
        const int xstr = __ldg(&d->x_stride), m = __ldg(&d->m);
        if (lane < BM)
            bulk_copy(xs + slot * (XB / 4) + lane * kXRow, x + (int64_t)min(p.m0 + lane, m - 1) * xstr + st * kKs,
                      xbytes, full + slot);
    };
    /* moves the producer one stage on (to the block's next tile after the last stage) */
    auto advance = [&]() {
        ps = ps + 1 == kDepth ? 0 : ps + 1;
        if (++ls == lp.n_stages) {
            ls = 0;
            lt += gridDim.x;
            if (lt < n_tiles) lp = pipe_tile_of<RT, NT>(descs, starts, n_groups, lt);
        }
    };

    /* prologue: the weights of the first kDepth - 1 stages need nothing from
     * the previous kernel and are copied before pdl_wait; their activations after */
    {
        const int lt0 = lt, ls0 = ls, ps0 = ps;
        const pipe_tile lp0 = lp;
#pragma unroll 1
        for (int i = 0; i < kDepth - 1 && lt < n_tiles; i++) {
            load_w(lp, ls, ps);
            advance();
        }
        pdl_wait();
        lt = lt0, ls = ls0, ps = ps0, lp = lp0;
#pragma unroll 1
        for (int i = 0; i < kDepth - 1 && lt < n_tiles; i++) {
            load_x(lp, ls, ps);
            advance();
        }
    }

    /* consumer: tile ct, stage cs, slot cslot in its phase cpar */
    int ct = blockIdx.x, cs = 0, cslot = 0;
    unsigned cpar = 0;
    pipe_tile cp = pipe_tile_of<RT, NT>(descs, starts, n_groups, ct);
    float acc[RT][NT][4];
#pragma unroll
    for (int r = 0; r < RT; r++)
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int j = 0; j < 4; j++) acc[r][nt][j] = 0.0f;

    while (ct < n_tiles) {
        mbar_wait(full + cslot, cpar);
        __syncthreads(); /* every warp is done with slot ps (the previous stage's) */
        if (lt < n_tiles) {
            load_w(lp, ls, ps);
            load_x(lp, ls, ps);
            advance();
        }

        const int chunk = 4 * cs + warp;
        if (chunk < cp.n_chunks) {
            /* B: activation rows nt 8 + g, elements [8t, 8t + 8) of this warp's chunk, split in three */
            unsigned bh[NT][4], bm[NT][4], bl[NT][4];
            const float *xr = xs + cslot * (XB / 4) + g * kXRow + warp * 32 + 8 * t;
#pragma unroll
            for (int nt = 0; nt < NT; nt++) {
                const float4 v0 = *reinterpret_cast<const float4 *>(xr + nt * 8 * kXRow);
                const float4 v1 = *reinterpret_cast<const float4 *>(xr + nt * 8 * kXRow + 4);
                split3(v0.x, v0.y, bh[nt][0], bm[nt][0], bl[nt][0]);
                split3(v0.z, v0.w, bh[nt][1], bm[nt][1], bl[nt][1]);
                split3(v1.x, v1.y, bh[nt][2], bm[nt][2], bl[nt][2]);
                split3(v1.z, v1.w, bh[nt][3], bm[nt][3], bl[nt][3]);
            }
            const unsigned char *wr = ws + cslot * WB + g * kWRow + warp * 64 + t * 16;
            const int f16 = __ldg(&cp.d->dtype) == DT_F16;
#pragma unroll
            for (int r = 0; r < RT; r++) {
                /* A: weight rows 16 r + g (e) and + 8 (f); pairs 2 s, 2 s + 1 feed mma step s */
                const uint4 ea = *reinterpret_cast<const uint4 *>(wr + r * 16 * kWRow);
                const uint4 fa = *reinterpret_cast<const uint4 *>(wr + (r * 16 + 8) * kWRow);
                unsigned e[4] = {ea.x, ea.y, ea.z, ea.w}, f[4] = {fa.x, fa.y, fa.z, fa.w};
                unsigned el[4] = {0, 0, 0, 0}, fl[4] = {0, 0, 0, 0};
                if (f16) {
#pragma unroll
                    for (int i = 0; i < 4; i++) {
                        split_f16(e[i], e[i], el[i]);
                        split_f16(f[i], f[i], fl[i]);
                    }
                }
#pragma unroll
                for (int s2 = 0; s2 < 2; s2++)
#pragma unroll
                    for (int nt = 0; nt < NT; nt++) {
                        const unsigned a0 = e[2 * s2], a1 = f[2 * s2], a2 = e[2 * s2 + 1], a3 = f[2 * s2 + 1];
                        mma16816(acc[r][nt], a0, a1, a2, a3, bh[nt][2 * s2], bh[nt][2 * s2 + 1]);
                        mma16816(acc[r][nt], a0, a1, a2, a3, bm[nt][2 * s2], bm[nt][2 * s2 + 1]);
                        mma16816(acc[r][nt], a0, a1, a2, a3, bl[nt][2 * s2], bl[nt][2 * s2 + 1]);
                    }
                if (f16) {
#pragma unroll
                    for (int s2 = 0; s2 < 2; s2++)
#pragma unroll
                        for (int nt = 0; nt < NT; nt++) {
                            const unsigned a0 = el[2 * s2], a1 = fl[2 * s2], a2 = el[2 * s2 + 1], a3 = fl[2 * s2 + 1];
                            mma16816(acc[r][nt], a0, a1, a2, a3, bh[nt][2 * s2], bh[nt][2 * s2 + 1]);
                            mma16816(acc[r][nt], a0, a1, a2, a3, bm[nt][2 * s2], bm[nt][2 * s2 + 1]);
                        }
                }
            }
        }
        if (++cslot == kDepth) cslot = 0, cpar ^= 1u;

        if (++cs == cp.n_stages) {
            /* the tile's last stage: the four warps' partials meet in red */
#pragma unroll
            for (int r = 0; r < RT; r++)
#pragma unroll
                for (int nt = 0; nt < NT; nt++)
#pragma unroll
                    for (int j = 0; j < 4; j++) {
                        red[(((warp * RT + r) * NT + nt) * 4 + j) * 32 + lane] = acc[r][nt][j];
                        acc[r][nt][j] = 0.0f;
                    }
            __syncthreads();
            const sh_cu_gemm_desc &d = *cp.d;
            constexpr int kPer = RT * NT * 4 * 32;
            for (int i = tid; i < kPer; i += 128) {
                const float v = red[i] + red[kPer + i] + red[2 * kPer + i] + red[3 * kPer + i];
                const int ln = i & 31, slot = i >> 5;
                const int j = slot & 3, nt = (slot >> 2) % NT, r = (slot >> 2) / NT;
                /* c[j]: weight row g + 8 (j >> 1), activation row 2t + (j & 1) of the 16 x 8 piece */
                store_y(d, cp.m0 + nt * 8 + (ln & 3) * 2 + (j & 1), cp.n0 + r * 16 + (ln >> 2) + 8 * (j >> 1), v);
            }
            /* red is next written after at least one more stage barrier */
            cs = 0;
            ct += gridDim.x;
            if (ct < n_tiles) cp = pipe_tile_of<RT, NT>(descs, starts, n_groups, ct);
        }
    }
    /* every copy issued was for a stage consumed above: nothing is in flight */
}

template <int RT, int NT>
cudaError_t pipe_launch(cudaStream_t s, const sh_cu_launch_args *a) {
    /* persistent: as many blocks as fit on the device, at most one per tile */
    const int per_sm = SH_CU_PIPE_SMEM_SM / sh_cu_pipe_smem(RT, NT);
    const int cap = (a->variant >> 4) * (per_sm > 0 ? per_sm : 1);
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3((unsigned)(a->n_blocks < cap ? a->n_blocks : cap));
    cfg.blockDim = dim3(128u);
    cfg.dynamicSmemBytes = sh_cu_pipe_smem(RT, NT);
    cfg.stream = s;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr;
    cfg.numAttrs = a->pdl ? 1 : 0;
    const cudaError_t e = cudaLaunchKernelEx(&cfg, gemm_pipe_kernel<RT, NT>,
                                             static_cast<const sh_cu_gemm_desc *>(a->desc), a->starts, a->n_groups);
    return e != cudaSuccess ? e : cudaGetLastError();
}

template <int RT, int NT>
cudaError_t pipe_allow_smem() {
    cudaError_t e = cudaFuncSetAttribute(gemm_pipe_kernel<RT, NT>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         sh_cu_pipe_smem(RT, NT));
    if (e == cudaSuccess)
        e = cudaFuncSetAttribute(gemm_pipe_kernel<RT, NT>, cudaFuncAttributePreferredSharedMemoryCarveout, 100);
    return e;
}

} // namespace

/* variant = tile | sms << 4 (the tile of sh_cu_pipe_rt/nt, cuda_internal.h) */
extern "C" cudaError_t sh_cu_launch_gemm_pipe(cudaStream_t s, const sh_cu_launch_args *a) {
    switch (a->variant & 15) {
    case 0: return pipe_launch<1, 1>(s, a);
    case 1: return pipe_launch<2, 1>(s, a);
    case 2: return pipe_launch<4, 1>(s, a);
    case 3: return pipe_launch<1, 2>(s, a);
    case 4: return pipe_launch<2, 2>(s, a);
    case 5: return pipe_launch<4, 2>(s, a);
    case 6: return pipe_launch<1, 4>(s, a);
    case 7: return pipe_launch<2, 4>(s, a);
    default: return cudaErrorInvalidValue;
    }
}

/* Lets every pipelined kernel use the shared memory its tile needs (above
 * the 48 KiB default) with all of the L1 carved out as shared memory; once
 * per device, before any launch or capture. */
extern "C" cudaError_t sh_cu_pipe_init(void) {
    const cudaError_t e[] = {pipe_allow_smem<1, 1>(), pipe_allow_smem<2, 1>(), pipe_allow_smem<4, 1>(),
                             pipe_allow_smem<1, 2>(), pipe_allow_smem<2, 2>(), pipe_allow_smem<4, 2>(),
                             pipe_allow_smem<1, 4>(), pipe_allow_smem<2, 4>()};
    for (cudaError_t x : e)
        if (x != cudaSuccess) return x;
    return cudaSuccess;
}
