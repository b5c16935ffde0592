/* Streamed grouped GEMM for decode-sized M (2 to 64 activation rows per
 * group) with bf16 or f16 weights, on tensor cores.
 *
 * The tile kernels of gemm_kernel.cuh hold a block's weights in registers:
 * at M = 16-64 they need ~170-240 registers per thread, so 2-3 blocks of 4
 * warps fit an SM, each issuing its loads in one or two batches and then
 * waiting; the 8 x 16 SmolLM step's GEMMs ran at 0.4-1.5 TB/s with 11-13%
 * of warp slots active (bench/NOTES.md, "Streamed GEMM"). Here the weights
 * travel through shared memory instead: a fixed grid of two blocks per SM,
 * each owning a contiguous run of work, keeps a ring of stages in flight
 * with cp.async, so the bytes in flight per SM no longer depend on
 * registers, and the first stages' weights are requested before the wait
 * for the previous kernel. Up to 16 activation rows per item ride in the
 * stages too (no global load sits between a warp and its tensor-core
 * work); 32 would leave room for one block per SM, which measured slower,
 * so there each warp reads its activations from L2 a stage ahead.
 *
 * Work: an item is one tile of 16 * WM weight rows (8 * WM output pairs with
 * a pair epilogue) x 8 * NT activation rows; a stage is an item's rows over
 * 4 chunks of 32 elements (one chunk per warp). Groups' items are numbered
 * group by group, an item's stages consecutively; starts[g] is the first
 * stage of group g, and block b takes the items whose first stage lies in
 * [b T / G, (b + 1) T / G) of the T stages (starts[n_groups + 1]).
 *
 * The arithmetic per chunk and the reduction over warps are those of the
 * tile kernels (mma_chunk, mma_store_tile: warp w sums chunks w, w + 4, ...
 * in order, the four warps are added in order), so both kernels give the
 * same bits for a group, whatever else shares the launch.
 *
 * Stage layout: weight row r is 256 bytes (16 units of 16 bytes: chunk
 * j / 4, piece j % 4), unit j stored at j ^ 4 (r & 1) so that the two rows a
 * quarter-warp reads (g = 2p, 2p + 1) fall in different banks; then (NT <= 2) the
 * 8 NT activation rows of the item's m tile, 4 chunks of 32 floats each,
 * 528 bytes apart (the 16-byte pad spreads rows g over the banks).
 */
#include "gemm_kernel.cuh"
#include "hopper.cuh"

namespace {

constexpr int kRowBytes = 256;    /* a stage's weight row: 4 chunks of 32 16-bit weights */
constexpr int kXRow = 4 * 32 * 4 + 16; /* a stage's activation row: 4 chunks of 32 floats, padded */

/* Activations in the stages (NT <= 2) or read by each warp from L2 a stage
 * ahead (NT = 4: 32 activation rows per stage would leave room for one
 * block per SM, which measured slower). = SH_CU_RING_SMEM's terms. */
__host__ __device__ constexpr bool ring_xs(int nt) { return nt <= 2; }
__host__ __device__ constexpr int ring_stages(int nt) { return ring_xs(nt) ? 6 : 8; }
__host__ __device__ constexpr int ring_stage_bytes(int nt, int wm) {
    return 16 * wm * kRowBytes + (ring_xs(nt) ? 8 * nt * kXRow : 0);
}

/* The block's walk over its items: group g, item i of the group. */
struct ring_it {
    int g, i;
    int items, slabs, mtiles, chunks; /* of group g */
    int64_t start;                    /* first stage of item i */
};

template <int NT>
__device__ __forceinline__ void ring_load_group(const sh_cu_gemm_desc *__restrict__ descs, ring_it &it) {
    const sh_cu_gemm_desc *d = descs + it.g;
    it.chunks = d->k >> 5;
    it.slabs = (it.chunks + 3) >> 2;
    it.mtiles = (d->m + 8 * NT - 1) / (8 * NT);
    it.items = d->tiles_n * it.mtiles;
}

/* Moves to the next item; false past the block's last one (hi: the first
 * stage that belongs to the next block). */
template <int NT>
__device__ __forceinline__ bool ring_next(const sh_cu_gemm_desc *__restrict__ descs,
                                          const int32_t *__restrict__ starts, int n_groups, int64_t hi, ring_it &it) {
    it.i++;
    it.start += it.slabs;
    while (it.i >= it.items) {
        if (++it.g >= n_groups) return false;
        it.start = __ldg(starts + it.g);
        if (it.start >= hi) return false;
        it.i = 0;
        ring_load_group<NT>(descs, it);
    }
    return it.start < hi;
}

/* The first item of [lo, hi); false when there is none. */
template <int NT>
__device__ __forceinline__ bool ring_first(const sh_cu_gemm_desc *__restrict__ descs,
                                           const int32_t *__restrict__ starts, int n_groups, int64_t lo, int64_t hi,
                                           ring_it &it) {
    if (lo >= hi) return false;
    it.g = sh_find_group(starts, n_groups, (int)lo);
    ring_load_group<NT>(descs, it);
    const int64_t s0 = __ldg(starts + it.g);
    const int64_t i = it.slabs > 0 ? (lo - s0 + it.slabs - 1) / it.slabs : 0;
    it.i = (int)i - 1;
    it.start = s0 + (i - 1) * it.slabs;
    return ring_next<NT>(descs, starts, n_groups, hi, it);
}

/* First output row (pair) of item i's weight tile, and its activation rows. */
template <int NT, int WM>
__device__ __forceinline__ void ring_tile(const sh_cu_gemm_desc &d, const ring_it &it, int &n0, int &m0) {
    const int unit = it.i / it.mtiles;
    n0 = unit * (epi_pair(d) ? 8 : 16) * WM;
    m0 = (it.i - unit * it.mtiles) * 8 * NT;
}

/* The producer side of one thread: the weight rows (tid / 16) + 8 q of the
 * current item, piece tid % 16 of each stage row; the activation rows
 * (tid / 32) + 4 q of its m tile, piece tid % 32. */
template <int NT, int WM>
struct ring_src {
    const unsigned char *row[2 * WM];
    const float *x;
    int64_t x_stride;
    int m0, m;
    ring_it it;
    int slab;
    bool live;
};

template <int NT, int WM>
__device__ __forceinline__ void ring_src_rows(const sh_cu_gemm_desc *__restrict__ descs, ring_src<NT, WM> &p) {
    const sh_cu_gemm_desc &d = descs[p.it.g];
    int n0, m0;
    ring_tile<NT, WM>(d, p.it, n0, m0);
    const bool pair = epi_pair(d);
    p.x = d.x;
    p.x_stride = d.x_stride;
    p.m0 = m0;
    p.m = d.m;
#pragma unroll
    for (int q = 0; q < 2 * WM; q++) {
        const int r = (threadIdx.x >> 4) + 8 * q, wm = r >> 4, ii = r & 15;
        p.row[q] = pair ? pair_row(d, n0 + wm * 8 + (ii & 7), ii >= 8)
                        : static_cast<const unsigned char *>(d.w) +
                              (int64_t)min(n0 + wm * 16 + ii, d.n - 1) * d.row_bytes;
    }
}

/* The weight rows of the producer's stage into buffer buf: rows of 256
 * bytes (units swizzled as above), or (WG) the warpgroup form's core
 * matrices: unit j of row r at j * 1024 + r * 16. */
template <int NT, int WM, bool WG = false>
__device__ __forceinline__ void ring_issue_w(const ring_src<NT, WM> &p, unsigned char *buf) {
    if (!p.live) return;
    const int j = threadIdx.x & 15, c = p.slab * 4 + (j >> 2);
    if (!WG && c >= p.it.chunks) return;
#pragma unroll
    for (int q = 0; q < 2 * WM; q++) {
        const int r = (threadIdx.x >> 4) + 8 * q;
        if (WG) /* past K: zeros, so every k-step of a stage can run */
            cp_async16_zfill(buf + j * 1024 + r * 16, p.row[q] + min(c, p.it.chunks - 1) * 64 + (j & 3) * 16,
                             c < p.it.chunks);
        else
            cp_async16(buf + r * kRowBytes + ((j ^ ((r & 1) << 2)) << 4), p.row[q] + c * 64 + (j & 3) * 16);
    }
}

/* The activation rows of the producer's stage into buffer buf (after the
 * weights: 8 NT rows of kXRow bytes; rows past M repeat the last). */
template <int NT, int WM, bool WG = false>
__device__ __forceinline__ void ring_issue_x(const ring_src<NT, WM> &p, unsigned char *buf) {
    if (!ring_xs(NT) || !p.live) return;
    const int j = threadIdx.x & 31, c = p.slab * 4 + (j >> 3);
    if (!WG && c >= p.it.chunks) return;
    unsigned char *xb = buf + 16 * WM * kRowBytes;
#pragma unroll
    for (int q = 0; q < 2 * NT; q++) {
        const int r = (threadIdx.x >> 5) + 4 * q;
        const float *src = p.x + (int64_t)min(p.m0 + r, p.m - 1) * p.x_stride;
        if (WG) /* past K: zeros (see ring_issue_w) */
            cp_async16_zfill(xb + r * kXRow + j * 16, src + min(c, p.it.chunks - 1) * 32 + (j & 7) * 4,
                             c < p.it.chunks);
        else
            cp_async16(xb + r * kXRow + j * 16, src + p.slab * 128 + j * 4);
    }
}

/* The producer's next stage. */
template <int NT, int WM>
__device__ __forceinline__ void ring_advance(const sh_cu_gemm_desc *__restrict__ descs,
                                             const int32_t *__restrict__ starts, int n_groups, int64_t hi,
                                             ring_src<NT, WM> &p) {
    if (!p.live) return;
    if (++p.slab == p.it.slabs) {
        p.slab = 0;
        p.live = ring_next<NT>(descs, starts, n_groups, hi, p.it);
        if (p.live) ring_src_rows<NT, WM>(descs, p);
    }
}

/* The block's first NS - 1 stages from item it on: their weights before the
 * wait for the previous kernel (a commit group each), their activations
 * after it (a group each; none at NT = 4); then every stage's group holds
 * both, so stage s is complete once at most NS - 2 groups are pending.
 * p: the producer, left at stage NS - 1. */
template <int NT, int WM, int NS, int kStage, bool WG>
__device__ __forceinline__ void ring_prologue(const sh_cu_gemm_desc *__restrict__ descs,
                                              const int32_t *__restrict__ starts, int n_groups, int64_t hi,
                                              const ring_it &it, unsigned char *smem, ring_src<NT, WM> &p) {
    p.it = it;
    p.slab = 0;
    p.live = true;
    ring_src_rows<NT, WM>(descs, p);
    ring_src<NT, WM> px = p;
#pragma unroll 1
    for (int s = 0; s < NS - 1; s++) {
        ring_issue_w<NT, WM, WG>(p, smem + s * kStage);
        cp_async_commit();
        ring_advance<NT, WM>(descs, starts, n_groups, hi, p);
    }
    pdl_wait();
#pragma unroll 1
    for (int s = 0; ring_xs(NT) && s < NS - 1; s++) {
        ring_issue_x<NT, WM, WG>(px, smem + s * kStage);
        cp_async_commit();
        ring_advance<NT, WM>(descs, starts, n_groups, hi, px);
    }
}

/* The block's share of the launch's T stages, [b T / G, (b + 1) T / G)
 * (hi: its end): its first item (it) and prologue (p); false when it has
 * none. */
template <int NT, int WM, int NS, int kStage, bool WG>
__device__ __forceinline__ bool ring_start(const sh_cu_gemm_desc *__restrict__ descs,
                                           const int32_t *__restrict__ starts, int n_groups, unsigned char *smem,
                                           ring_it &it, ring_src<NT, WM> &p, int64_t &hi) {
    const int64_t T = __ldg(starts + n_groups + 1), G = gridDim.x;
    const int64_t lo = (int64_t)blockIdx.x * T / G;
    hi = ((int64_t)blockIdx.x + 1) * T / G;
    if (!ring_first<NT>(descs, starts, n_groups, lo, hi, it)) return false;
    ring_prologue<NT, WM, NS, kStage, WG>(descs, starts, n_groups, hi, it, smem, p);
    return true;
}

/* activation rows g of a warp's n tiles, chunk c, elements o0 and o1 onward (NT = 4) */
template <int NT>
__device__ __forceinline__ void ring_load_x(const float *const (&xr)[NT], int c, int o0, int o1, float4 (&xv)[NT][2]) {
#pragma unroll
    for (int nt = 0; nt < NT; nt++) {
        xv[nt][0] = __ldg(reinterpret_cast<const float4 *>(xr[nt] + c * 32 + o0));
        xv[nt][1] = __ldg(reinterpret_cast<const float4 *>(xr[nt] + c * 32 + o1));
    }
}

template <int NT, int WM, int DT>
__global__ void __launch_bounds__(kThreads, SH_CU_RING_PER_SM)
    gemm_ring_kernel(const sh_cu_gemm_desc *__restrict__ descs, const int32_t *__restrict__ starts, int n_groups) {
    extern __shared__ __align__(16) unsigned char ring_smem[];
    constexpr int NS = ring_stages(NT), kStage = ring_stage_bytes(NT, WM);
    float *red = reinterpret_cast<float *>(ring_smem + NS * kStage);
    pdl_trigger();
    ring_it it;
    ring_src<NT, WM> p;
    int64_t hi;
    if (!ring_start<NT, WM, NS, kStage, false>(descs, starts, n_groups, ring_smem, it, p, hi)) return;

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int o0 = 8 * t, o1 = 8 * t + 4;
    int s = 0; /* the block's stage counter */
    float ss[NT];
#pragma unroll
    for (int nt = 0; nt < NT; nt++) ss[nt] = 0.0f;
    do {
        const sh_cu_gemm_desc &d = descs[it.g];
        int n0, m0;
        ring_tile<NT, WM>(d, it, n0, m0);
        float acc[WM][NT][4];
        mma_zero(acc);
        const float *xr[NT];
        float4 xv[NT][2];
        if (!ring_xs(NT)) {
#pragma unroll
            for (int nt = 0; nt < NT; nt++) xr[nt] = d.x + (int64_t)min(m0 + nt * 8 + g, d.m - 1) * d.x_stride;
            if (warp < it.chunks) ring_load_x<NT>(xr, warp, o0, o1, xv);
        }
#pragma unroll 1
        for (int slab = 0; slab < it.slabs; slab++, s++) {
            cp_async_wait<NS - 2>();
            __syncthreads(); /* stage s is in; every warp is done with stage s - 1 */
            {
                unsigned char *nb = ring_smem + ((s + NS - 1) % NS) * kStage;
                ring_issue_w<NT, WM>(p, nb);
                ring_issue_x<NT, WM>(p, nb);
                cp_async_commit();
                ring_advance<NT, WM>(descs, starts, n_groups, hi, p);
            }
            const int c = slab * 4 + warp;
            float4 xn[NT][2];
            if (!ring_xs(NT) && c + 4 < it.chunks) ring_load_x<NT>(xr, c + 4, o0, o1, xn);
            if (c < it.chunks) {
                const unsigned char *buf = ring_smem + (s % NS) * kStage;
                const unsigned char *xb = buf + 16 * WM * kRowBytes + warp * 128 + t * 32;
                unsigned ra[WM][2][5];
#pragma unroll
                for (int wm = 0; wm < WM; wm++)
#pragma unroll
                    for (int h = 0; h < 2; h++) {
                        const int r = wm * 16 + g + 8 * h;
                        const uint4 u = *reinterpret_cast<const uint4 *>(
                            buf + r * kRowBytes + (((warp * 4 + t) ^ ((g & 1) << 2)) << 4));
                        ra[wm][h][0] = u.x;
                        ra[wm][h][1] = u.y;
                        ra[wm][h][2] = u.z;
                        ra[wm][h][3] = u.w;
                        ra[wm][h][4] = 0u;
                    }
                if (ring_xs(NT)) {
#pragma unroll
                    for (int nt = 0; nt < NT; nt++) {
                        xv[nt][0] = *reinterpret_cast<const float4 *>(xb + (nt * 8 + g) * kXRow);
                        xv[nt][1] = *reinterpret_cast<const float4 *>(xb + (nt * 8 + g) * kXRow + 16);
                    }
                }
                mma_chunk<NT, WM, DT, 0>(d, ra, xv, xv, c, o0, o1, acc, ss);
            }
            if (!ring_xs(NT) && c + 4 < it.chunks) {
#pragma unroll
                for (int nt = 0; nt < NT; nt++) xv[nt][0] = xn[nt][0], xv[nt][1] = xn[nt][1];
            }
        }
        mma_store_tile<NT, WM, SH_CU_WARPS * WM * NT * 4 * 32, 0>(descs[it.g], n0, m0, acc, ss, red);
    } while (ring_next<NT>(descs, starts, n_groups, hi, it));
    cp_async_wait<0>(); /* the empty tail groups */
}

/* ---- warpgroup form ------------------------------------------------------
 *
 * The per-warp form above spends ~470 instructions per warp on each 8 KB
 * stage (bench/NOTES.md, "Why the streamed GEMM stalls"): every warp
 * loads its A fragments, splits its activations and issues 24 mma.sync per
 * chunk, and the warps' K partials meet in shared memory per item. Here the
 * block is one warpgroup and the tensor cores read both operands from shared
 * memory (wgmma, sm_90a): an item is 64 weight rows (warp w owns rows
 * 16w .. 16w + 15 of the result) x 8 NT activation rows over the whole K,
 * so no partials are exchanged; per 16 KB stage the block splits the
 * stage's activations once into three bf16 terms (hi + mid + lo = x, as the
 * other kernels do) and issues 8 k-steps x 3 terms of m64n(8 NT)k16 into six
 * independent accumulators; they run while the block waits for the next
 * stage's copies.
 * Results differ from the tile kernels' only in the order of the f32 sums.
 *
 * Shared layouts (no swizzle, K-major core matrices of 8 rows x 16 bytes):
 * weights: unit j (8 elements) of row r at j * 1024 + r * 16, so core
 * matrices are 1024 bytes apart along K and 128 along the rows; the terms:
 * unit j of activation row n at j * 128 NT + n * 16 (128 NT along K, 128
 * along the rows), one 2048 NT-byte plane per term. */
constexpr int kWgStages = 4;
__host__ __device__ constexpr int wg_stage_bytes(int nt) { return 64 * kRowBytes + 8 * nt * kXRow; }
__host__ __device__ constexpr int wg_term_bytes(int nt) { return 8 * nt * 128 * 2; }

/* The stage's f32 activations (8 NT rows of kXRow bytes) as three bf16 term
 * planes; unit u of the stage = (row u % 8 NT, 8 elements u / 8 NT). */
template <int NT>
__device__ __forceinline__ void wg_split_x(const unsigned char *xs, unsigned char *xb) {
#pragma unroll
    for (int i = 0; i < NT; i++) {
        const int u = threadIdx.x + kThreads * i, n = u % (8 * NT), j = u / (8 * NT);
        const float4 a = *reinterpret_cast<const float4 *>(xs + n * kXRow + j * 32);
        const float4 b = *reinterpret_cast<const float4 *>(xs + n * kXRow + j * 32 + 16);
        uint4 h, m, l;
        split3(a.x, a.y, h.x, m.x, l.x);
        split3(a.z, a.w, h.y, m.y, l.y);
        split3(b.x, b.y, h.z, m.z, l.z);
        split3(b.z, b.w, h.w, m.w, l.w);
        const int off = j * 128 * NT + n * 16;
        *reinterpret_cast<uint4 *>(xb + off) = h;
        *reinterpret_cast<uint4 *>(xb + wg_term_bytes(NT) + off) = m;
        *reinterpret_cast<uint4 *>(xb + 2 * wg_term_bytes(NT) + off) = l;
    }
}

/* Warp w's rows of the item's result, straight from its accumulators:
 * d[4j + i] is row g (i < 2) or g + 8 of the warp's 16, activation row
 * 8 j + 2 t + (i & 1) (the mma.m16n8 layout per 8 columns). */
template <int NT>
__device__ __forceinline__ void wg_store(const sh_cu_gemm_desc &d, int n0, int m0, const float (&acc)[4 * NT]) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    if (epi_pair(d)) {
#pragma unroll
        for (int j = 0; j < NT; j++)
#pragma unroll
            for (int i = 0; i < 2; i++)
                store_pair(d, m0 + j * 8 + 2 * t + i, n0 + warp * 8 + g, acc[4 * j + i], acc[4 * j + 2 + i]);
    } else {
#pragma unroll
        for (int j = 0; j < NT; j++)
#pragma unroll
            for (int i = 0; i < 4; i++)
                store_y(d, m0 + j * 8 + 2 * t + (i & 1), n0 + warp * 16 + g + ((i & 2) ? 8 : 0), acc[4 * j + i]);
    }
}

template <int NT>
__global__ void __launch_bounds__(kThreads, SH_CU_RING_PER_SM)
    gemm_wg_kernel(const sh_cu_gemm_desc *__restrict__ descs, const int32_t *__restrict__ starts, int n_groups) {
    extern __shared__ __align__(128) unsigned char ring_smem[];
    constexpr int NS = kWgStages, kStage = wg_stage_bytes(NT), WM = 4;
    unsigned char *xb = ring_smem + NS * kStage;
    pdl_trigger();
    ring_it it;
    ring_src<NT, WM> p;
    int64_t hi;
    if (!ring_start<NT, WM, NS, kStage, true>(descs, starts, n_groups, ring_smem, it, p, hi)) return;

    int s = 0;
    do {
        const sh_cu_gemm_desc &d = descs[it.g];
        int n0, m0;
        ring_tile<NT, WM>(d, it, n0, m0);
        /* six independent accumulator chains (term x k-step parity), so the
         * tensor cores are not held to one dependent chain per stage */
        float acc[6][4 * NT];
#pragma unroll
        for (int c = 0; c < 6; c++)
#pragma unroll
            for (int i = 0; i < 4 * NT; i++) acc[c][i] = 0.0f;
#pragma unroll 1
        for (int slab = 0; slab < it.slabs; slab++, s++) {
            cp_async_wait<NS - 2>();
            wg_wait<0>(); /* the previous stage's products */
#pragma unroll
            for (int c = 0; c < 6; c++) wg_fence_regs(acc[c]);
            asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
            __syncthreads(); /* stage s is in; the previous stage's tensor-core reads are done */
            {
                unsigned char *nb = ring_smem + ((s + NS - 1) % NS) * kStage;
                ring_issue_w<NT, WM, true>(p, nb);
                ring_issue_x<NT, WM, true>(p, nb);
                cp_async_commit();
                ring_advance<NT, WM>(descs, starts, n_groups, hi, p);
            }
            const unsigned char *buf = ring_smem + (s % NS) * kStage;
            wg_split_x<NT>(buf + 64 * kRowBytes, xb);
            asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
            __syncthreads(); /* the terms are written */
#pragma unroll
            for (int c = 0; c < 6; c++) wg_fence_regs(acc[c]);
            wg_fence();
#pragma unroll
            for (int k = 0; k < 8; k++) { /* k-steps past K multiply zeros */
                const uint64_t a = wg_desc(buf + k * 2048, 1024, 128);
#pragma unroll
                for (int term = 0; term < 3; term++)
                    wg_mma<NT>(acc[term * 2 + (k & 1)], a,
                               wg_desc(xb + term * wg_term_bytes(NT) + k * 256 * NT, 128 * NT, 128));
            }
            wg_commit();
#pragma unroll
            for (int c = 0; c < 6; c++) wg_fence_regs(acc[c]);
        }
        wg_wait<0>();
#pragma unroll
        for (int c = 0; c < 6; c++) wg_fence_regs(acc[c]);
        float sum[4 * NT]; /* the small terms first */
#pragma unroll
        for (int i = 0; i < 4 * NT; i++)
            sum[i] = ((acc[4][i] + acc[5][i]) + (acc[2][i] + acc[3][i])) + (acc[0][i] + acc[1][i]);
        wg_store<NT>(descs[it.g], n0, m0, sum);
    } while (ring_next<NT>(descs, starts, n_groups, hi, it));
    cp_async_wait<0>();
}

template <int NT>
cudaError_t launch_wg(cudaStream_t s, const sh_cu_launch_args *a) {
    static int set_bytes[64];
    const int smem = sh_cu_ring_smem(NT, 4);
    static_assert(kWgStages * wg_stage_bytes(NT) + 3 * wg_term_bytes(NT) == SH_CU_WG_SMEM(NT),
                  "host and kernel disagree on the warpgroup form's shared memory");
    const cudaError_t e = sh_cu_smem_optin(gemm_wg_kernel<NT>, smem, set_bytes);
    if (e != cudaSuccess) return e;
    return sh_cu_launch_ks(gemm_wg_kernel<NT>, a->n_blocks, kThreads, (size_t)smem, s, a->pdl,
                           static_cast<const sh_cu_gemm_desc *>(a->desc), a->starts, a->n_groups);
}

template <int NT, int WM, int DT>
cudaError_t launch_ring(cudaStream_t s, const sh_cu_launch_args *a) {
    static int set_bytes[64];
    const int smem = sh_cu_ring_smem(NT, WM);
    static_assert(ring_stages(NT) * ring_stage_bytes(NT, WM) + SH_CU_WARPS * WM * NT * 4 * 32 * 4 ==
                      SH_CU_RING_SMEM(NT, WM), "host and kernel disagree on the ring's shared memory");
    const cudaError_t e = sh_cu_smem_optin(gemm_ring_kernel<NT, WM, DT>, smem, set_bytes);
    if (e != cudaSuccess) return e;
    return sh_cu_launch_ks(gemm_ring_kernel<NT, WM, DT>, a->n_blocks, kThreads, (size_t)smem, s, a->pdl,
                           static_cast<const sh_cu_gemm_desc *>(a->desc), a->starts, a->n_groups);
}

template <int NT, int WM>
cudaError_t launch_ring_dt(cudaStream_t s, const sh_cu_launch_args *a) {
    return (a->variant >> 8) & 1 ? launch_ring<NT, WM, DT_F16>(s, a) : launch_ring<NT, WM, DT_BF16>(s, a);
}

} // namespace

/* variant = NT | WM << 4 | (f16 weights) << 8; WM = 4: the warpgroup form (bf16, NT <= 2) */
extern "C" cudaError_t sh_cu_launch_gemm_ring(cudaStream_t s, const sh_cu_launch_args *a) {
    switch (a->variant & 0xff) {
    case 1 | 4 << 4: return (a->variant >> 8) & 1 ? cudaErrorInvalidValue : launch_wg<1>(s, a);
    case 2 | 4 << 4: return (a->variant >> 8) & 1 ? cudaErrorInvalidValue : launch_wg<2>(s, a);
    case 1 | 1 << 4: return launch_ring_dt<1, 1>(s, a);
    case 2 | 1 << 4: return launch_ring_dt<2, 1>(s, a);
    case 4 | 1 << 4: return launch_ring_dt<4, 1>(s, a);
    case 1 | 2 << 4: return launch_ring_dt<1, 2>(s, a);
    case 2 | 2 << 4: return launch_ring_dt<2, 2>(s, a);
    case 4 | 2 << 4: return launch_ring_dt<4, 2>(s, a);
    default: return cudaErrorInvalidValue;
    }
}
