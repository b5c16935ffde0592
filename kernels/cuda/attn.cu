/* Grouped attention over the paged KV pool: one launch for every sequence
 * (group) of a call, decode rows and prefill rows alike.
 *
 * One block (128 threads) per (group, query row, KV head) serves the query
 * heads that read that KV head (GQA: query head h reads KV head
 * h / (n_head / n_head_kv)), up to four of them (a KV head with more query
 * heads gets several blocks). Small launches (fewer (row, KV head) pairs than
 * about two per SM) take one query head per block instead, for parallelism. The visible keys are taken in tiles of TK
 * keys whose K and V rows are copied from their pool blocks into shared
 * memory with cp.async — every 16-byte piece of a tile in flight at once,
 * and the next tile's copy issued before the current one is used — so the
 * memory latency is paid about once per tile, and each tile is read once
 * for all the heads of the block. Per tile and head: the scores
 * q . K_j * scale, the tile maximum, the rescaled running softmax (max m,
 * sum l), and p_j V_j[d] accumulated by thread (partition p, dim d) over
 * its share of the keys; partitions are summed at the end. Causal rows see
 * positions [0, pos0 + row]; bidirectional rows see [0, n_kv). expf is the
 * accurate one (no fast-math intrinsics). A negative block id skips its
 * keys and raises SH_CU_ERR_BLOCK_ID.
 */
#include <math.h>

#include "cuda_common.cuh"

namespace {

#include "attn_tile.cuh"

constexpr int kHeads = 4;          /* query heads served by one block at most (one warp each);
                                    * SH_CU_ATTN_BLOCKS_PER_KV (cuda_internal.h) sizes the grid to match */
static_assert(SH_CU_ATTN_BLOCKS_PER_KV(4, kHeads) == 1 && SH_CU_ATTN_BLOCKS_PER_KV(5, kHeads) == 2, "grid");

/* out[row, h] = sum_t softmax_t(q_h . K_t * scale) V_t over the visible t,
 * for the nh (<= kHeads) query heads h = head0 .. head0 + nh - 1 that share
 * KV head hk: each K/V tile is copied to shared memory once and serves them
 * all. Per tile: thread c scores the pair (head c / nk, key c % nk); warp h
 * updates head h's running max / sum and leaves the weights p[h][j] and the
 * rescale factor in shared memory; thread (partition, dim d) accumulates
 * p[h][j] V_j[d] for every head over its share of the keys. */
__global__ void __launch_bounds__(kThreads)
    attn_kernel(const sh_cu_attn_desc *__restrict__ descs, const int32_t *__restrict__ starts, int n_groups,
                int *err) {
    __shared__ __align__(16) unsigned char stage[2][kStageBytes];
    __shared__ __align__(16) float qs[kHeads][SH_CU_ATTN_DMAX];
    __shared__ float ps[kHeads][kTKMax]; /* scores, then weights, of the tile */
    __shared__ float corr_s[kHeads], l_s[kHeads];

    if (sh_block_idle(starts, n_groups)) return; /* capacity padding */
    const int gi = sh_find_group(starts, n_groups, blockIdx.x);
    const sh_cu_attn_desc d = descs[gi];
    pdl_trigger();
    /* The grid has SH_CU_ATTN_BLOCKS_PER_KV(ratio, hpb) units per (row, KV
     * head), each of d.splits blocks; unit c of KV head hk serves query heads
     * hk * ratio + c * hpb .. + nh - 1 (hpb <= kHeads, chosen by the host per
     * launch), its block sp the key tiles sp, sp + splits, ... */
    const int S = d.splits, sp = (blockIdx.x - __ldg(starts + gi)) % S;
    const int unit = (blockIdx.x - __ldg(starts + gi)) / S;
    const int ratio = d.n_head / d.n_head_kv, hpb = d.hpb;
    const int cpk = SH_CU_ATTN_BLOCKS_PER_KV(ratio, hpb), per_row = d.n_head_kv * cpk;
    const int row = unit / per_row, rem = unit - row * per_row;
    const int hk = rem / cpk, hin = (rem - hk * cpk) * hpb;
    const int head = hk * ratio + hin;
    const int nh = min(hpb, ratio - hin);
    pdl_wait(); /* everything below reads or writes what earlier kernels may touch */
    const int hd = d.head_dim;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;

    const attn_geo g = attn_geo_make(d, hk, row);
    const int n_tiles = (g.n_keys + g.tk - 1) / g.tk;

    bool bad = false;
    fetch_tile(g, stage[0], sp, n_tiles, bad);
    const float *q = d.q + (int64_t)row * d.q_stride + (int64_t)(head * hd);
    for (int i = tid; i < nh * hd; i += kThreads) qs[i / hd][i % hd] = q[i];

    /* P partitions of D threads: thread (part, d0) owns dims d0, d0 + D (< hd) */
    const int D = hd <= 32 ? 32 : hd <= 64 ? 64 : 128;
    const int P = kThreads / D, part_id = tid / D, d0 = tid % D;
    float acc0[kHeads], acc1[kHeads];
#pragma unroll
    for (int h = 0; h < kHeads; h++) acc0[h] = acc1[h] = 0.0f;
    float m_run = -INFINITY, l_run = 0.0f; /* of head `warp` (warp < nh) */

    for (int it = 0, ti = sp; ti < n_tiles; it++, ti += S) {
        const int t0 = ti * g.tk, nk = min(g.tk, g.n_keys - t0);
        next_tile(g, stage, it, ti, S, n_tiles, bad);
        __syncthreads(); /* the tile (and q) are in shared memory */
        const unsigned char *ks = stage[it & 1];
        const unsigned char *vs = ks + g.tk * g.rs;
        for (int c = tid; c < nh * nk; c += kThreads) {
            const int h = c / nk, j = c - h * nk;
            const int32_t blk = __ldg(g.table + ((t0 + j) >> 4));
            ps[h][j] = blk >= 0 ? dot_qk(qs[h], ks + j * g.rs, hd, g.f16, g.vec) * d.scale : -INFINITY;
        }
        __syncthreads(); /* scores published */
        if (warp < nh) {
            float s[kTKMax / 32];
            float m_tile = -INFINITY;
#pragma unroll
            for (int r = 0; r < kTKMax / 32; r++) {
                const int j = lane + 32 * r;
                s[r] = j < nk ? ps[warp][j] : -INFINITY;
                m_tile = fmaxf(m_tile, s[r]);
            }
            m_tile = warp_max(m_tile);
            float corr = 1.0f;
            if (m_tile != -INFINITY) { /* warp-uniform */
                const float m_new = fmaxf(m_run, m_tile);
                float sum = 0.0f;
#pragma unroll
                for (int r = 0; r < kTKMax / 32; r++) {
                    const int j = lane + 32 * r;
                    const float p = s[r] == -INFINITY ? 0.0f : expf(s[r] - m_new);
                    if (j < nk) ps[warp][j] = p;
                    sum += p;
                }
                corr = expf(m_run - m_new); /* 0 on the first visible tile */
                l_run = l_run * corr + warp_sum(sum);
                m_run = m_new;
            } else {
#pragma unroll
                for (int r = 0; r < kTKMax / 32; r++)
                    if (lane + 32 * r < nk) ps[warp][lane + 32 * r] = 0.0f;
            }
            if (lane == 0) corr_s[warp] = corr;
        }
        __syncthreads(); /* weights and rescale factors published */
#pragma unroll
        for (int h = 0; h < kHeads; h++)
            if (h < nh) {
                acc0[h] *= corr_s[h];
                acc1[h] *= corr_s[h];
            }
        for (int j = part_id; j < nk; j += P) {
            const unsigned char *vp = vs + j * g.rs;
            float v0 = 0.0f, v1 = 0.0f;
            if (g.f16) {
                const __half *vh = reinterpret_cast<const __half *>(vp);
                if (d0 < hd) v0 = __half2float(vh[d0]);
                if (d0 + D < hd) v1 = __half2float(vh[d0 + D]);
            } else {
                const float *vf = reinterpret_cast<const float *>(vp);
                if (d0 < hd) v0 = vf[d0];
                if (d0 + D < hd) v1 = vf[d0 + D];
            }
#pragma unroll
            for (int h = 0; h < kHeads; h++)
                if (h < nh) {
                    const float pj = ps[h][j];
                    if (pj != 0.0f) { /* also keeps 0 * (zeroed row) out */
                        acc0[h] = fmaf(pj, v0, acc0[h]);
                        acc1[h] = fmaf(pj, v1, acc1[h]);
                    }
                }
        }
        __syncthreads(); /* readers of this stage and of ps are done */
    }
    if (bad) atomicOr(err, SH_CU_ERR_BLOCK_ID);

    /* partition partials, [head][dim slot][thread], in the (idle) stage */
    float *part = reinterpret_cast<float *>(stage);
#pragma unroll
    for (int h = 0; h < kHeads; h++)
        if (h < nh) {
            part[(2 * h) * kThreads + tid] = acc0[h];
            part[(2 * h + 1) * kThreads + tid] = acc1[h];
        }
    __shared__ float m_s[kHeads];
    if (warp < nh && lane == 0) {
        l_s[warp] = l_run;
        m_s[warp] = m_run;
    }
    __syncthreads();
    float *out = d.out + (int64_t)row * d.out_stride + (int64_t)(head * hd);
    if (S == 1) {
        for (int i = tid; i < nh * hd; i += kThreads) {
            const int h = i / hd, dd = i - h * hd;
            const int slot = dd / D, dl = dd % D;
            float num = 0.0f;
            for (int pp = 0; pp < P; pp++) num += part[(2 * h + slot) * kThreads + pp * D + dl];
            out[i] = l_s[h] > 0.0f ? num / l_s[h] : 0.0f;
        }
        return;
    }
    /* split: publish each head's state (m, l, sum p V) at (row, query head,
     * sp); the last of the unit's S blocks combines (as attn1.cu does) */
    const int pw = 2 + hd;
    for (int i = tid; i < nh * hd; i += kThreads) {
        const int h = i / hd, dd = i - h * hd;
        const int slot = dd / D, dl = dd % D;
        float num = 0.0f;
        for (int pp = 0; pp < P; pp++) num += part[(2 * h + slot) * kThreads + pp * D + dl];
        d.part[(((int64_t)row * d.n_head + head + h) * S + sp) * pw + 2 + dd] = num;
    }
    if (tid < nh) {
        float *st = d.part + (((int64_t)row * d.n_head + head + tid) * S + sp) * pw;
        st[0] = m_s[tid];
        st[1] = l_s[tid];
    }
    if (!split_arrive(d.count + unit, S)) return;
    for (int i = tid; i < nh * hd; i += kThreads) {
        const int h = i / hd, dd = i - h * hd;
        out[i] = split_combine(d.part + ((int64_t)row * d.n_head + head + h) * S * pw, S, pw, dd);
    }
    if (tid == 0) d.count[unit] = 0; /* ready for the next launch */
}

} // namespace

/* variant = query heads per block (1 or 4, nothing above bit 7): 1 takes the
 * one-head kernel (attn1.cu), whose grid (row, query head) is this grid with
 * hpb = 1; 2, 3 or 4 | (shared KB << 8), never below 16 KB, the
 * all-keys-resident kernel (attn_dec.cu), a block per (row, KV head). */
extern "C" cudaError_t sh_cu_launch_attn(cudaStream_t s, const sh_cu_launch_args *a) {
    if (a->variant == 1) return sh_cu_launch_attn1(s, a);
    if (a->variant >> 8) return sh_cu_launch_attn_dec(s, a);
    return sh_cu_launch_k(attn_kernel, a->n_blocks, kThreads, s, a->pdl, static_cast<const sh_cu_attn_desc *>(a->desc),
                          a->starts, a->n_groups, a->err);
}
