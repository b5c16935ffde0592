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
 * bytes (units swizzled as above). */
template <int NT, int WM>
__device__ __forceinline__ void ring_issue_w(const ring_src<NT, WM> &p, unsigned char *buf) {
    if (!p.live) return;
    const int j = threadIdx.x & 15, c = p.slab * 4 + (j >> 2);
    if (c >= p.it.chunks) return;
#pragma unroll
    for (int q = 0; q < 2 * WM; q++) {
        const int r = (threadIdx.x >> 4) + 8 * q;
        cp_async16(buf + r * kRowBytes + ((j ^ ((r & 1) << 2)) << 4), p.row[q] + c * 64 + (j & 3) * 16);
    }
}

/* The activation rows of the producer's stage into buffer buf (after the
 * weights: 8 NT rows of kXRow bytes; rows past M repeat the last). */
template <int NT, int WM>
__device__ __forceinline__ void ring_issue_x(const ring_src<NT, WM> &p, unsigned char *buf) {
    if (!ring_xs(NT) || !p.live) return;
    const int j = threadIdx.x & 31, c = p.slab * 4 + (j >> 3);
    if (c >= p.it.chunks) return;
    unsigned char *xb = buf + 16 * WM * kRowBytes;
#pragma unroll
    for (int q = 0; q < 2 * NT; q++) {
        const int r = (threadIdx.x >> 5) + 4 * q;
        const float *src = p.x + (int64_t)min(p.m0 + r, p.m - 1) * p.x_stride;
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
template <int NT, int WM, int NS, int kStage>
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
        ring_issue_w<NT, WM>(p, smem + s * kStage);
        cp_async_commit();
        ring_advance<NT, WM>(descs, starts, n_groups, hi, p);
    }
    pdl_wait();
#pragma unroll 1
    for (int s = 0; ring_xs(NT) && s < NS - 1; s++) {
        ring_issue_x<NT, WM>(px, smem + s * kStage);
        cp_async_commit();
        ring_advance<NT, WM>(descs, starts, n_groups, hi, px);
    }
}

/* The block's share of the launch's T stages, [b T / G, (b + 1) T / G)
 * (hi: its end): its first item (it) and prologue (p); false when it has
 * none. */
template <int NT, int WM, int NS, int kStage>
__device__ __forceinline__ bool ring_start(const sh_cu_gemm_desc *__restrict__ descs,
                                           const int32_t *__restrict__ starts, int n_groups, unsigned char *smem,
                                           ring_it &it, ring_src<NT, WM> &p, int64_t &hi) {
    const int64_t T = __ldg(starts + n_groups + 1), G = gridDim.x;
    const int64_t lo = (int64_t)blockIdx.x * T / G;
    hi = ((int64_t)blockIdx.x + 1) * T / G;
    if (!ring_first<NT>(descs, starts, n_groups, lo, hi, it)) return false;
    ring_prologue<NT, WM, NS, kStage>(descs, starts, n_groups, hi, it, smem, p);
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

/* XK: 0, or 1 for groups whose x is read through the RMS transform (the
 * sums of squares ride with the chunks; mma_store_tile scales the rows) */
template <int NT, int WM, int DT, int XK>
__global__ void __launch_bounds__(kThreads, SH_CU_RING_PER_SM)
    gemm_ring_kernel(const sh_cu_gemm_desc *__restrict__ descs, const int32_t *__restrict__ starts, int n_groups) {
    extern __shared__ __align__(16) unsigned char ring_smem[];
    constexpr int NS = ring_stages(NT), kStage = ring_stage_bytes(NT, WM);
    float *red = reinterpret_cast<float *>(ring_smem + NS * kStage);
    pdl_trigger();
    ring_it it;
    ring_src<NT, WM> p;
    int64_t hi;
    if (!ring_start<NT, WM, NS, kStage>(descs, starts, n_groups, ring_smem, it, p, hi)) return;

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int o0 = 8 * t, o1 = 8 * t + 4;
    int s = 0; /* the block's stage counter */
    do {
        const sh_cu_gemm_desc &d = descs[it.g];
        int n0, m0;
        ring_tile<NT, WM>(d, it, n0, m0);
        float acc[WM][NT][4], ss[NT];
        mma_zero(acc);
#pragma unroll
        for (int nt = 0; nt < NT; nt++) ss[nt] = 0.0f;
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
                mma_chunk<NT, WM, DT, XK>(d, ra, xv, xv, c, o0, o1, acc, ss);
            }
            if (!ring_xs(NT) && c + 4 < it.chunks) {
#pragma unroll
                for (int nt = 0; nt < NT; nt++) xv[nt][0] = xn[nt][0], xv[nt][1] = xn[nt][1];
            }
        }
        mma_store_tile<NT, WM, SH_CU_WARPS * WM * NT * 4 * 32, XK>(descs[it.g], n0, m0, acc, ss, red);
    } while (ring_next<NT>(descs, starts, n_groups, hi, it));
    cp_async_wait<0>(); /* the empty tail groups */
}

/* ---- tensor-copy form (sm_90a) ---------------------------------------------
 *
 * The per-warp form above spends ~470 instructions per warp on each 8 KB
 * stage (bench/NOTES.md, "Why the streamed GEMM stalls"): every warp loads
 * its A fragments, splits its activations and issues 24 mma.sync per chunk,
 * and the warps' K partials meet in shared memory per item. Here the block
 * is one warpgroup, the copy engine fills the stages and the tensor cores
 * read both operands from shared memory (wgmma):
 *  - an item is 64 weight rows (32 output pairs with a pair epilogue) x
 *    8 NT activation rows over the whole K; warp w owns result rows
 *    16w .. 16w + 15, so no partial sums are exchanged;
 *  - a stage is 128 elements of K: two 8 KB chunks of 64 rows x 64
 *    elements, each brought by tensor copies with 128-byte swizzle (one box
 *    of 64 rows, or with a pair epilogue two of 32: the first and the
 *    second rows of 32 pairs, from the descriptor's two tensor maps; the
 *    pairs' sums meet in shared memory before the epilogue), completing on
 *    the stage's mbarrier; thread 0 issues them, the first stages before
 *    the wait for the previous kernel;
 *  - the activations of the item's rows are split once per group into
 *    three bf16 terms (hi + mid + lo = x, as the other kernels do) and stay
 *    in shared memory for all of the group's items, stacked as 24 NT rows:
 *    one m64n(24 NT)k16 product per k-step takes all three terms.
 * Results differ from the tile kernels' only in the order of the f32 sums.
 * The tensor maps live in the backend's table (cuda_tmap.c). Past K: a
 * chunk wholly past K holds a copy of an earlier one (finite weights), a
 * partial one reads zeros (the tensor copy's fill), and
 * the terms are zeros up to K rounded to 64 and read as zeros past that,
 * so every k-step can run.
 *
 * Shared layouts: a chunk's 8-row groups 1024 bytes apart (the 128-byte
 * swizzle's unit); the terms: unit j (8 elements) of stacked row n at
 * j * 384 NT + n * 16 (core matrices 384 NT bytes apart along K, 128 along
 * the rows). bench_cuda_wgmma is this kernel's stand-alone prototype. */
constexpr int kTmaChunk = 8192;

/* The row coordinate of the box of pairs p .. p + 31 of a pair epilogue in
 * its tensor map (h: their second rows). SILU_PAIR and adjacent-pair RoPE
 * have maps of their own for the second rows (w2, or the odd rows);
 * half-split RoPE (half a multiple of 32) reads both from one map. */
__device__ __forceinline__ int tma_pair_coord(const sh_cu_gemm_desc &d, int p, int h) {
    p = min(p, d.np - 1);
    if (d.epi == EPI_ROPE && d.rope_mode != 0) {
        int o0, o1;
        rope_pair(p, d.head_dim, d.head_dim, d.rope_mode, o0, o1);
        return h ? o1 : o0;
    }
    return p;
}

/* Thread 0's stage of item it, slab `slab` into buf (two chunks). A chunk
 * wholly past K copies the slab's first chunk again: finite weights, which
 * meet the terms' zeros there, so no stage needs zeroing first. */
template <int NT>
__device__ __forceinline__ void tma_issue(const sh_cu_gemm_desc &d, const ring_it &it, int slab, unsigned char *buf,
                                          uint64_t *bar) {
    int n0, m0;
    ring_tile<NT, 4>(d, it, n0, m0);
    const int c0 = slab * 128;
    mbar_expect_tx(bar, (unsigned)(2 * kTmaChunk));
    for (int c = 0; c < 2; c++) {
        unsigned char *dst = buf + c * kTmaChunk;
        const int k = c0 + 64 * c < d.k ? c0 + 64 * c : c0;
        if (!epi_pair(d)) {
            tma_copy_2d(dst, d.tma_a, k, n0, bar);
        } else {
            tma_copy_2d(dst, d.tma_a, k, tma_pair_coord(d, n0, 0), bar);
            tma_copy_2d(dst + 4096, d.tma_b, k, tma_pair_coord(d, n0, 1), bar);
        }
    }
}

/* Rows m0 .. m0 + 8 NT - 1 of the group's activations (zeros past M and
 * past K, up to kp) as three stacked bf16 term planes in xb. The loads of
 * 8 units per thread are issued together: one L2 round trip per batch.
 * RMS transform: x times gamma is split, and warp w's sums of the raw
 * squares of row n go to rss[w * 8 NT + n] (every unit of a thread lies in
 * row threadIdx.x % 8 NT); tma_finish scales the row's results. */
template <int NT>
__device__ __forceinline__ void tma_split_x(const sh_cu_gemm_desc &d, int m0, int kp, unsigned char *xb, float *rss) {
    constexpr int R = 8 * NT, B = 8;
    static_assert(kThreads % R == 0, "a thread's units share one row");
    const int units = R * (kp / 8);
    const bool rms = d.xf == XF_RMS;
    float ss = 0.0f;
    for (int u0 = threadIdx.x; u0 < units; u0 += B * kThreads) {
        float4 a[B], b[B], ga[B], gb[B]; /* x and, RMS, gamma: one round trip for both */
#pragma unroll
        for (int q = 0; q < B; q++) {
            const int u = u0 + q * kThreads, n = u % R, j = u / R, m = m0 + n;
            a[q] = b[q] = make_float4(0.f, 0.f, 0.f, 0.f);
            ga[q] = gb[q] = make_float4(1.f, 1.f, 1.f, 1.f);
            if (u < units && m < d.m && 8 * j < d.k) {
                const float *src = d.x + (int64_t)m * d.x_stride + 8 * j;
                a[q] = __ldg(reinterpret_cast<const float4 *>(src));
                b[q] = __ldg(reinterpret_cast<const float4 *>(src + 4));
                if (rms && d.gamma) { /* 16-byte aligned (the host checks) */
                    ga[q] = __ldg(reinterpret_cast<const float4 *>(d.gamma + 8 * j));
                    gb[q] = __ldg(reinterpret_cast<const float4 *>(d.gamma + 8 * j + 4));
                }
            }
        }
#pragma unroll
        for (int q = 0; q < B; q++) {
            const int u = u0 + q * kThreads, n = u % R, j = u / R;
            if (u >= units) break;
            if (rms) {
                float *v = &a[q].x, *w = &b[q].x;
                const float *gv = &ga[q].x, *gw = &gb[q].x;
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    ss = fmaf(v[e], v[e], ss);
                    ss = fmaf(w[e], w[e], ss);
                    v[e] *= gv[e];
                    w[e] *= gw[e];
                }
            }
            uint4 h, md, l;
            split3(a[q].x, a[q].y, h.x, md.x, l.x);
            split3(a[q].z, a[q].w, h.y, md.y, l.y);
            split3(b[q].x, b[q].y, h.z, md.z, l.z);
            split3(b[q].z, b[q].w, h.w, md.w, l.w);
            unsigned char *o = xb + j * (3 * R * 16) + n * 16;
            *reinterpret_cast<uint4 *>(o) = h;
            *reinterpret_cast<uint4 *>(o + R * 16) = md;
            *reinterpret_cast<uint4 *>(o + 2 * R * 16) = l;
        }
    }
    if (rms) { /* the lanes of a warp that share a row, then one slot per (warp, row) */
#pragma unroll
        for (int o = R; o < 32; o *= 2) ss += __shfl_xor_sync(0xffffffffu, ss, o);
        if ((threadIdx.x & 31) < R) rss[(threadIdx.x >> 5) * R + (threadIdx.x & 31)] = ss;
    }
}

/* Warp w's rows of the item's result (no pair epilogue), straight from its
 * accumulators: d[4j + i] is row g (i < 2) or g + 8 of the warp's 16,
 * activation row 8 j + 2 t + (i & 1) (the mma.m16n8 layout per 8 columns). */
template <int NT>
__device__ __forceinline__ void wg_store(const sh_cu_gemm_desc &d, int n0, int m0, const float (&acc)[4 * NT]) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int j = 0; j < NT; j++)
#pragma unroll
        for (int i = 0; i < 4; i++)
            store_y(d, m0 + j * 8 + 2 * t + (i & 1), n0 + warp * 16 + g + ((i & 2) ? 8 : 0), acc[4 * j + i]);
}

/* The item's result with a pair epilogue: rows 0-31 are the first rows of
 * pairs n0 .. n0 + 31, rows 32-63 their second rows (warps 0-1 and 2-3), so
 * the sums meet in shared memory (ex: 64 x 8 NT floats) first. */
template <int NT>
__device__ __forceinline__ void tma_store_pairs(const sh_cu_gemm_desc &d, int n0, int m0, const float (&sum)[4 * NT],
                                                float *ex) {
    constexpr int C = 8 * NT + 1; /* padded row */
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int j = 0; j < NT; j++)
#pragma unroll
        for (int i = 0; i < 4; i++) ex[(warp * 16 + g + ((i & 2) ? 8 : 0)) * C + 8 * j + 2 * t + (i & 1)] = sum[4 * j + i];
    __syncthreads();
    for (int e = threadIdx.x; e < 32 * 8 * NT; e += kThreads) {
        const int p = e & 31, m = e >> 5;
        store_pair(d, m0 + m, n0 + p, ex[p * C + m], ex[(p + 32) * C + m]);
    }
    /* the next item's writes to ex come after its stages' block barriers */
}

template <int NT>
__device__ __forceinline__ void tma_mma(float (&acc)[12 * NT], uint64_t a, uint64_t b, int accumulate);
template <>
__device__ __forceinline__ void tma_mma<1>(float (&acc)[12], uint64_t a, uint64_t b, int accumulate) {
    wg_mma_n24(acc, a, b, accumulate);
}
template <>
__device__ __forceinline__ void tma_mma<2>(float (&acc)[24], uint64_t a, uint64_t b, int accumulate) {
    wg_mma_n48(acc, a, b, accumulate);
}
template <>
__device__ __forceinline__ void tma_mma<4>(float (&acc)[48], uint64_t a, uint64_t b, int accumulate) {
    wg_mma_n96(acc, a, b, accumulate);
}
template <>
__device__ __forceinline__ void tma_mma<8>(float (&acc)[96], uint64_t a, uint64_t b, int accumulate) {
    wg_mma_n192(acc, a, b, accumulate);
}

/* The item's result: the three terms' products summed (the small terms
 * first), then stored through the epilogue. */
template <int NT>
__device__ __forceinline__ void tma_finish(const sh_cu_gemm_desc &d, int n0, int m0, const float (&acc)[12 * NT],
                                           float *ex, const float *rss = nullptr) {
    float sum[4 * NT];
#pragma unroll
    for (int j = 0; j < NT; j++)
#pragma unroll
        for (int i = 0; i < 4; i++)
            sum[4 * j + i] = (acc[4 * (j + 2 * NT) + i] + acc[4 * (j + NT) + i]) + acc[4 * j + i];
    if (rss && d.xf == XF_RMS) { /* the RMS scale of activation row 8 j + 2 t + (i & 1) (tma_split_x) */
        constexpr int R = 8 * NT;
        const int t = threadIdx.x & 3;
#pragma unroll
        for (int j = 0; j < NT; j++)
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const int r = 8 * j + 2 * t + (i & 1);
                sum[4 * j + i] *= xf_rstd(d, rss[r] + rss[R + r] + rss[2 * R + r] + rss[3 * R + r]);
            }
    }
    if (epi_pair(d))
        tma_store_pairs<NT>(d, n0, m0, sum, ex);
    else
        wg_store<NT>(d, n0, m0, sum);
}

/* kp: the launch's largest K rounded up to 64 (the terms' capacity); past
 * it two units of zeros, which the k-steps of a stage's second chunk read
 * when it lies wholly past the group's K (a select, not a branch: wgmma in
 * a conditional path would be serialised) */
template <int NT>
__global__ void __launch_bounds__(kThreads, 1)
    gemm_tma_kernel(const sh_cu_gemm_desc *__restrict__ descs, const int32_t *__restrict__ starts, int n_groups,
                    int kp, int ns) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    constexpr int SB = 2 * kTmaChunk, R3 = 24 * NT;
    extern __shared__ __align__(1024) unsigned char tma_smem_raw[];
    unsigned char *smem = smem_align1024(tma_smem_raw);
    unsigned char *xb = smem + ns * SB;
    __shared__ uint64_t full[SH_CU_TMA_MAX_STAGES];
    __shared__ float ex[64 * (8 * NT + 1)]; /* pair epilogues' exchange */
    __shared__ float rss[SH_CU_WARPS * 8 * NT]; /* RMS row sums of the current terms */
    pdl_trigger();
    const int64_t T = __ldg(starts + n_groups + 1), G = gridDim.x;
    const int64_t lo = (int64_t)blockIdx.x * T / G, hi = ((int64_t)blockIdx.x + 1) * T / G;
    ring_it it;
    if (!ring_first<NT>(descs, starts, n_groups, lo, hi, it)) return;
    mbar_init_n(full, ns);
    /* the producer (thread 0): its own walk, ns - 1 stages ahead; the first
     * stages' weights are requested before the wait for the previous kernel */
    ring_it pit = it;
    int pslab = 0;
    bool plive = true;
    auto produce = [&](int stage) {
        if (!plive) return;
        tma_issue<NT>(descs[pit.g], pit, pslab, smem + (stage % ns) * SB, &full[stage % ns]);
        if (++pslab == pit.slabs) {
            pslab = 0;
            plive = ring_next<NT>(descs, starts, n_groups, hi, pit);
        }
    };
    if (threadIdx.x == 0)
        for (int s = 0; s < ns - 1; s++) produce(s);
    /* zeros past the terms (k-steps of a second chunk wholly past K), by
     * ordinary stores read by the tensor cores: ordered by the fence and
     * barrier after the first split below */
    unsigned char *xzero = xb + (kp / 8) * R3 * 16;
    for (int i = threadIdx.x; i < 2 * R3; i += kThreads) reinterpret_cast<uint4 *>(xzero)[i] = make_uint4(0u, 0u, 0u, 0u);
    pdl_wait();

    int s = 0, cur_g = -1, cur_m0 = -1;
    do {
        const sh_cu_gemm_desc &d = descs[it.g];
        int n0, m0;
        ring_tile<NT, 4>(d, it, n0, m0);
        if (it.g != cur_g || m0 != cur_m0) { /* after every product that reads the old terms */
            __syncthreads();
            tma_split_x<NT>(d, m0, (d.k + 63) / 64 * 64, xb, rss);
            asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
            __syncthreads();
            cur_g = it.g;
            cur_m0 = m0;
        }
        float acc[12 * NT]; /* the item's first product overwrites it */
#pragma unroll
        for (int i = 0; i < 12 * NT; i++) acc[i] = 0.0f;
#pragma unroll 1
        for (int slab = 0; slab < it.slabs; slab++, s++) {
            mbar_wait(&full[s % ns], (unsigned)((s / ns) & 1));
            const unsigned char *buf = smem + (s % ns) * SB;
            const int units = (d.k + 63) / 64 * 8; /* the group's terms */
            wg_fence_regs(acc);
            wg_fence();
#pragma unroll
            for (int k = 0; k < 8; k++) { /* a chunk past K: finite weights times zero terms */
                const int j = slab * 16 + 2 * k;
                tma_mma<NT>(acc, wg_desc_sw128(buf + (k >> 2) * kTmaChunk + (k & 3) * 32),
                            wg_desc(j < units ? xb + j * R3 * 16 : xzero, R3 * 16, 128), slab > 0 || k > 0);
            }
            wg_commit();
            /* the stage's products done before the loop goes on (products in
             * flight across the loop's back edge make the compiler wait at
             * every use anyway); the next stages' copies stay in flight */
            wg_wait<0>();
            wg_fence_regs(acc);
            __syncthreads(); /* every warp is done with the buffer: refill it */
            if (threadIdx.x == 0) produce(s + ns - 1);
        }
        tma_finish<NT>(d, n0, m0, acc, ex, rss);
    } while (ring_next<NT>(descs, starts, n_groups, hi, it));
#endif
}

template <int NT>
cudaError_t launch_tma(cudaStream_t s, const sh_cu_launch_args *a) {
    static int set_bytes[64];
    const int kp = ((a->variant >> 9) & 0x7f) * 64, ns = (a->variant >> 16) & 0xf, smem = SH_CU_TMA_SMEM(ns, NT, kp);
    if (ns < 2 || ns > SH_CU_TMA_MAX_STAGES) return cudaErrorInvalidValue;
    const cudaError_t e = sh_cu_smem_optin(gemm_tma_kernel<NT>, smem, set_bytes);
    if (e != cudaSuccess) return e;
    return sh_cu_launch_ks(gemm_tma_kernel<NT>, a->n_blocks, kThreads, (size_t)smem, s, a->pdl,
                           static_cast<const sh_cu_gemm_desc *>(a->desc), a->starts, a->n_groups, kp, ns);
}

/* ---- tensor-copy form with streamed terms (M up to 64) ---------------------
 *
 * At 32-64 activation rows per group the terms of the form above no longer
 * fit beside its stages (64 rows x K = 576 x 3 terms x 2 bytes = 221 KB),
 * and the tile kernels re-read each weight tile from L2 once per 16 rows
 * (bench/NOTES.md, "Tensor-copy form with streamed terms"). Here a split
 * kernel first writes every group's terms once to a buffer in global memory
 * (tmx_split_kernel: rows padded to m tiles of 8 NT, K padded to 64 with
 * zeros), and the GEMM brings them by tensor copies beside the weights:
 *  - an item is 64 weight rows (32 pairs) x 8 NT activation rows, NT = 2, 4
 *    or 8 (the host picks the widest that still gives every SM an item), so
 *    at NT = 8 each weight tile is read once for 64 rows;
 *  - a stage is 64 elements of K: the 8 KB weight chunk (as above) and the
 *    24 NT term rows of the item's m tile, both 128-byte swizzled, one
 *    m64n(24 NT)k16 product per k-step; weights past K arrive as zeros;
 *  - thread 0 issues the first stages' weight copies before the wait for
 *    the previous kernel (the split kernel), their term copies after it.
 * Sums, epilogues and stores are the form's above. */
constexpr int kTmxStages = 4;
__host__ __device__ constexpr int tmx_stage_bytes(int nt) { return kTmaChunk + 24 * nt * 128; }

/* The terms of the 8 elements [8 j, 8 j + 8) of row `row`, a and b. */
template <int NT>
__device__ __forceinline__ void tmx_put(unsigned char *xt, int64_t pitch, int row, int j, float4 a, float4 b) {
    constexpr int R = 8 * NT;
    uint4 h, md, l;
    split3(a.x, a.y, h.x, md.x, l.x);
    split3(a.z, a.w, h.y, md.y, l.y);
    split3(b.x, b.y, h.z, md.z, l.z);
    split3(b.z, b.w, h.w, md.w, l.w);
    const int t = row / R, r = row - t * R;
    unsigned char *o = xt + ((int64_t)(3 * t) * R + r) * pitch + 16 * j;
    *reinterpret_cast<uint4 *>(o) = h;
    *reinterpret_cast<uint4 *>(o + R * pitch) = md;
    *reinterpret_cast<uint4 *>(o + 2 * R * pitch) = l;
}

/* A group with the RMS transform: a warp per row, which it normalises as
 * the norm kernel does (x / sqrt(mean(x^2) + eps) * gamma) before the split,
 * so the GEMM reads plain terms. */
template <int NT>
__device__ __forceinline__ void tmx_split_rms(const sh_cu_gemm_desc &d, int kp8, int rows, int64_t pitch,
                                              unsigned char *xt) {
    const int lane = threadIdx.x & 31, warps = (int)(gridDim.x * blockDim.x) >> 5;
    for (int row = (int)((blockIdx.x * blockDim.x + threadIdx.x) >> 5); row < rows; row += warps) {
        const float *src = d.x + (int64_t)min(row, d.m - 1) * d.x_stride;
        float ss = 0.0f;
        for (int j = lane; 8 * j < d.k; j += 32) {
            const float4 a = __ldg(reinterpret_cast<const float4 *>(src + 8 * j));
            const float4 b = __ldg(reinterpret_cast<const float4 *>(src + 8 * j + 4));
            ss += a.x * a.x + a.y * a.y + a.z * a.z + a.w * a.w + b.x * b.x + b.y * b.y + b.z * b.z + b.w * b.w;
        }
        const float inv = 1.0f / sqrtf(warp_sum(ss) / (float)d.k + d.eps);
        for (int j = lane; j < kp8; j += 32) {
            float4 a = make_float4(0.f, 0.f, 0.f, 0.f), b = a;
            if (row < d.m && 8 * j < d.k) {
                a = __ldg(reinterpret_cast<const float4 *>(src + 8 * j));
                b = __ldg(reinterpret_cast<const float4 *>(src + 8 * j + 4));
                float *v = &a.x, *w = &b.x;
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    v[e] = v[e] * inv * (d.gamma ? __ldg(d.gamma + 8 * j + e) : 1.0f);
                    w[e] = w[e] * inv * (d.gamma ? __ldg(d.gamma + 8 * j + 4 + e) : 1.0f);
                }
            }
            tmx_put<NT>(xt, pitch, row, j, a, b);
        }
    }
}

template <int NT>
__global__ void __launch_bounds__(256) tmx_split_kernel(const sh_cu_gemm_desc *__restrict__ descs, int n_groups) {
    constexpr int R = 8 * NT;
    pdl_trigger();
    pdl_wait();
    const int64_t step = (int64_t)gridDim.x * blockDim.x;
    for (int gi = 0; gi < n_groups; gi++) {
        const sh_cu_gemm_desc &d = descs[gi];
        const int kp8 = (d.k + 63) / 64 * 8, mt = (d.m + R - 1) / R;
        const int64_t units = (int64_t)mt * R * kp8, pitch = (int64_t)kp8 * 16;
        unsigned char *xt = static_cast<unsigned char *>(d.xt);
        if (d.xf == XF_RMS) {
            tmx_split_rms<NT>(d, kp8, mt * R, pitch, xt);
            continue;
        }
        for (int64_t u = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; u < units; u += step) {
            const int row = (int)(u / kp8), j = (int)(u - (int64_t)row * kp8);
            float4 a = make_float4(0.f, 0.f, 0.f, 0.f), b = a;
            if (row < d.m && 8 * j < d.k) {
                const float *src = d.x + (int64_t)row * d.x_stride + 8 * j;
                a = __ldg(reinterpret_cast<const float4 *>(src));
                b = __ldg(reinterpret_cast<const float4 *>(src + 4));
            }
            tmx_put<NT>(xt, pitch, row, j, a, b);
        }
    }
}

/* Thread 0's copies of chunk c (64 elements of K) of item it into buf: the
 * weights (announcing the whole stage's bytes on bar) and/or the terms. */
template <int NT>
__device__ __forceinline__ void tmx_issue(const sh_cu_gemm_desc &d, const ring_it &it, int c, unsigned char *buf,
                                          uint64_t *bar, bool weights, bool terms) {
    int n0, m0;
    ring_tile<NT, 4>(d, it, n0, m0);
    if (weights) {
        mbar_expect_tx(bar, (unsigned)tmx_stage_bytes(NT));
        if (!epi_pair(d)) {
            tma_copy_2d(buf, d.tma_a, 64 * c, n0, bar);
        } else {
            tma_copy_2d(buf, d.tma_a, 64 * c, tma_pair_coord(d, n0, 0), bar);
            tma_copy_2d(buf + 4096, d.tma_b, 64 * c, tma_pair_coord(d, n0, 1), bar);
        }
    }
    if (terms) tma_copy_2d(buf + kTmaChunk, d.tma_x, 64 * c, d.xt_row0 + (m0 / (8 * NT)) * 24 * NT, bar);
}

template <int NT>
__global__ void __launch_bounds__(kThreads, 1)
    gemm_tmx_kernel(const sh_cu_gemm_desc *__restrict__ descs, const int32_t *__restrict__ starts, int n_groups) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    constexpr int NS = kTmxStages, SB = tmx_stage_bytes(NT);
    static_assert(SB % 1024 == 0, "stages keep the 1024-byte swizzle alignment");
    extern __shared__ __align__(1024) unsigned char tmx_smem_raw[];
    unsigned char *smem = smem_align1024(tmx_smem_raw);
    __shared__ uint64_t full[NS];
    __shared__ float ex[64 * (8 * NT + 1)]; /* pair epilogues' exchange */
    pdl_trigger();
    const int64_t T = __ldg(starts + n_groups + 1), G = gridDim.x;
    const int64_t lo = (int64_t)blockIdx.x * T / G, hi = ((int64_t)blockIdx.x + 1) * T / G;
    ring_it it;
    if (!ring_first<NT>(descs, starts, n_groups, lo, hi, it)) return;
    mbar_init_all<NS>(full);
    /* the producer (thread 0): its own walk over (item, chunk), NS stages ahead */
    auto advance = [&](ring_it &w, int &c, bool &live) {
        if (++c == (descs[w.g].k + 63) / 64) {
            c = 0;
            live = ring_next<NT>(descs, starts, n_groups, hi, w);
        }
    };
    ring_it pit = it;
    int pc = 0;
    bool plive = true;
    if (threadIdx.x == 0) { /* weights of the first stages: before the split kernel ends */
        ring_it w = it;
        int c = 0;
        bool live = true;
        for (int s = 0; s < NS && live; s++) {
            tmx_issue<NT>(descs[w.g], w, c, smem + s * SB, &full[s], true, false);
            advance(w, c, live);
        }
    }
    pdl_wait();
    if (threadIdx.x == 0)
        for (int s = 0; s < NS && plive; s++) {
            tmx_issue<NT>(descs[pit.g], pit, pc, smem + s * SB, &full[s], false, true);
            advance(pit, pc, plive);
        }

    int s = 0;
    do {
        const sh_cu_gemm_desc &d = descs[it.g];
        int n0, m0;
        ring_tile<NT, 4>(d, it, n0, m0);
        const int nc = (d.k + 63) / 64;
        float acc[12 * NT]; /* the item's first product overwrites it */
#pragma unroll
        for (int i = 0; i < 12 * NT; i++) acc[i] = 0.0f;
        /* the stage before the current one is refilled once its products
         * are done, while the current stage's run (one group in flight) */
        auto refill = [&](int st) {
            __syncthreads(); /* every warp is done with stage st */
            if (threadIdx.x == 0 && plive) {
                tmx_issue<NT>(descs[pit.g], pit, pc, smem + (st % NS) * SB, &full[st % NS], true, true);
                advance(pit, pc, plive);
            }
        };
#pragma unroll 1
        for (int c = 0; c < nc; c++, s++) {
            mbar_wait(&full[s % NS], (unsigned)((s / NS) & 1));
            unsigned char *buf = smem + (s % NS) * SB;
            wg_fence_regs(acc);
            wg_fence();
#pragma unroll
            for (int k = 0; k < 4; k++)
                tma_mma<NT>(acc, wg_desc_sw128(buf + 32 * k), wg_desc_sw128(buf + kTmaChunk + 32 * k), c > 0 || k > 0);
            wg_commit();
            wg_wait<1>();
            wg_fence_regs(acc);
            if (c > 0) refill(s - 1 + NS);
        }
        wg_wait<0>();
        wg_fence_regs(acc);
        refill(s - 1 + NS);
        tma_finish<NT>(d, n0, m0, acc, ex);
    } while (ring_next<NT>(descs, starts, n_groups, hi, it));
#endif
}

/* the split kernel, then the GEMM (variant >> 9: the split grid) */
template <int NT>
cudaError_t launch_tmx(cudaStream_t s, const sh_cu_launch_args *a) {
    static int set_bytes[64];
    const int smem = SH_CU_TMX_SMEM(NT), split_blocks = (a->variant >> 9) & 0xfffff;
    static_assert(kTmxStages * tmx_stage_bytes(NT) + 1024 == SH_CU_TMX_SMEM(NT),
                  "host and kernel disagree on the form's shared memory");
    cudaError_t e = sh_cu_smem_optin(gemm_tmx_kernel<NT>, smem, set_bytes);
    if (e != cudaSuccess) return e;
    const sh_cu_gemm_desc *desc = static_cast<const sh_cu_gemm_desc *>(a->desc);
    e = sh_cu_launch_ks(tmx_split_kernel<NT>, split_blocks > 0 ? split_blocks : 1, 256, 0, s, a->pdl, desc,
                        a->n_groups);
    if (e != cudaSuccess) return e;
    return sh_cu_launch_ks(gemm_tmx_kernel<NT>, a->n_blocks, kThreads, (size_t)smem, s, a->pdl, desc, a->starts,
                           a->n_groups);
}

template <int NT, int WM, int DT, int XK>
cudaError_t launch_ring(cudaStream_t s, const sh_cu_launch_args *a) {
    static int set_bytes[64];
    const int smem = sh_cu_ring_smem(NT, WM);
    static_assert(ring_stages(NT) * ring_stage_bytes(NT, WM) + (SH_CU_WARPS * WM * NT * 4 * 32 + kSsFloats) * 4 ==
                      SH_CU_RING_SMEM(NT, WM), "host and kernel disagree on the ring's shared memory");
    const cudaError_t e = sh_cu_smem_optin(gemm_ring_kernel<NT, WM, DT, XK>, smem, set_bytes);
    if (e != cudaSuccess) return e;
    return sh_cu_launch_ks(gemm_ring_kernel<NT, WM, DT, XK>, a->n_blocks, kThreads, (size_t)smem, s, a->pdl,
                           static_cast<const sh_cu_gemm_desc *>(a->desc), a->starts, a->n_groups);
}

/* f16 weights at bit 8; the RMS transform (bf16 only) at bit 9 */
template <int NT, int WM>
cudaError_t launch_ring_dt(cudaStream_t s, const sh_cu_launch_args *a) {
    if ((a->variant >> 9) & 1)
        return (a->variant >> 8) & 1 ? cudaErrorInvalidValue : launch_ring<NT, WM, DT_BF16, 1>(s, a);
    return (a->variant >> 8) & 1 ? launch_ring<NT, WM, DT_F16, 0>(s, a) : launch_ring<NT, WM, DT_BF16, 0>(s, a);
}

} // namespace

/* variant: see cuda_internal.h */
extern "C" cudaError_t sh_cu_launch_gemm_ring(cudaStream_t s, const sh_cu_launch_args *a) {
    switch (a->variant & 0xff) {
    case 1 | 4 << 4: return (a->variant >> 8) & 1 ? cudaErrorInvalidValue : launch_tma<1>(s, a);
    case 2 | 4 << 4: return (a->variant >> 8) & 1 ? cudaErrorInvalidValue : launch_tma<2>(s, a);
    case 2 | 5 << 4: return launch_tmx<2>(s, a);
    case 4 | 5 << 4: return launch_tmx<4>(s, a);
    case 8 | 5 << 4: return launch_tmx<8>(s, a);
    case 1 | 1 << 4: return launch_ring_dt<1, 1>(s, a);
    case 2 | 1 << 4: return launch_ring_dt<2, 1>(s, a);
    case 4 | 1 << 4: return launch_ring_dt<4, 1>(s, a);
    case 1 | 2 << 4: return launch_ring_dt<1, 2>(s, a);
    case 2 | 2 << 4: return launch_ring_dt<2, 2>(s, a);
    case 4 | 2 << 4: return launch_ring_dt<4, 2>(s, a);
    default: return cudaErrorInvalidValue;
    }
}
