/* Grouped attention, one query head per block (small launches; attn.cu has
 * the shared-tile kernel for large ones and dispatches here). Over the paged KV pool: one launch for every sequence
 * (group) of a call, decode rows and prefill rows alike.
 *
 * One block (128 threads) per (group, query row, head). The visible keys
 * are taken in tiles of TK keys whose K and V rows are copied from their
 * pool blocks into shared memory with cp.async — every 16-byte piece of a
 * tile in flight at once, and the next tile's copy issued before the
 * current one is used — so the memory latency is paid about once per tile
 * rather than once per dependent load. Per tile: thread j scores key j
 * (q . K_j * scale), the block takes the tile maximum, rescales its running
 * softmax (max m, sum l), and thread (partition p, dim d) accumulates
 * p_j V_j[d] over its share of the keys; partitions are summed at the end.
 * GQA: query head h reads KV head h / (n_head / n_head_kv). Causal rows see
 * positions [0, pos0 + row]; bidirectional rows see [0, n_kv). expf is the
 * accurate one (no fast-math intrinsics). A negative block id skips its
 * keys and raises SH_CU_ERR_BLOCK_ID.
 *
 * Split (desc.splits = S > 1, decode of a few sequences): the tiles of one
 * (row, head) are dealt to S blocks (tile s, s + S, ...); each writes its
 * partial state (running max m, sum l, sum p V) to desc.part, and the last
 * of the S to finish (a counter per (row, head), reset by that block)
 * rescales and adds them: out = sum_s e^(m_s - M) acc_s / sum_s e^(m_s - M) l_s.
 */
#include <math.h>

#include "cuda_common.cuh"

namespace {

#include "attn_tile.cuh"

/* Block-wide max / sum (every thread gets it); red: 4 floats, the call ends
 * with a barrier so red can be reused. */
__device__ __forceinline__ float block_max4(float v, float *red) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = warp_max(v);
    if (lane == 0) red[warp] = v;
    __syncthreads();
    v = fmaxf(fmaxf(red[0], red[1]), fmaxf(red[2], red[3]));
    __syncthreads();
    return v;
}
__device__ __forceinline__ float block_sum4(float v, float *red) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = warp_sum(v);
    if (lane == 0) red[warp] = v;
    __syncthreads();
    v = (red[0] + red[1]) + (red[2] + red[3]);
    __syncthreads();
    return v;
}

/* out[row, head] = sum_t softmax_t(q . K_t * scale) V_t over the visible t. */
__global__ void __launch_bounds__(kThreads)
    attn1_kernel(const sh_cu_attn_desc *__restrict__ descs, const int32_t *__restrict__ starts, int n_groups,
                int *err) {
    __shared__ __align__(16) unsigned char stage[2][kStageBytes];
    __shared__ __align__(16) float qs[SH_CU_ATTN_DMAX];
    __shared__ float ps[kTKMax];
    __shared__ float red[4];
    __shared__ float part[kThreads * 2]; /* partition partials: [dim slot][thread] */

    if (sh_block_idle(starts, n_groups)) return; /* capacity padding */
    const int gi = sh_find_group(starts, n_groups, blockIdx.x);
    const sh_cu_attn_desc d = descs[gi];
    pdl_trigger();
    pdl_wait(); /* everything below reads or writes what earlier kernels may touch */
    const int local = blockIdx.x - __ldg(starts + gi);
    const int S = d.splits, sp = local % S, rh = local / S;
    const int row = rh / d.n_head, head = rh % d.n_head;
    const int hd = d.head_dim;
    const int hk = head / (d.n_head / d.n_head_kv);
    const int tid = threadIdx.x;

    const attn_geo g = attn_geo_make(d, hk, row);
    const int n_tiles = (g.n_keys + g.tk - 1) / g.tk;

    bool bad = false;
    fetch_tile(g, stage[0], sp, n_tiles, bad);
    const float *q = d.q + (int64_t)row * d.q_stride + (int64_t)head * hd;
    for (int i = tid; i < hd; i += kThreads) qs[i] = q[i];

    /* P partitions of D threads: thread (part, d0) owns dims d0, d0 + D (< hd) */
    const int D = hd <= 32 ? 32 : hd <= 64 ? 64 : 128;
    const int P = kThreads / D, part_id = tid / D, d0 = tid % D;
    float acc0 = 0.0f, acc1 = 0.0f;
    float m_run = -INFINITY, l_run = 0.0f;

    for (int it = 0, ti = sp; ti < n_tiles; it++, ti += S) {
        const int t0 = ti * g.tk, nk = min(g.tk, g.n_keys - t0);
        next_tile(g, stage, it, ti, S, n_tiles, bad);
        __syncthreads(); /* the tile (and q) are in shared memory */
        const unsigned char *ks = stage[it & 1];
        const unsigned char *vs = ks + g.tk * g.rs;
        float s = -INFINITY;
        if (tid < nk) {
            const int32_t blk = __ldg(g.table + ((t0 + tid) >> 4));
            if (blk >= 0) s = dot_qk(qs, ks + tid * g.rs, hd, g.f16, g.vec) * d.scale;
        }
        const float m_tile = block_max4(s, red);
        if (m_tile != -INFINITY) { /* block-uniform */
            const float m_new = fmaxf(m_run, m_tile);
            const float p = s == -INFINITY ? 0.0f : expf(s - m_new);
            if (tid < nk) ps[tid] = p;
            const float corr = expf(m_run - m_new); /* 0 on the first visible tile */
            l_run = l_run * corr + block_sum4(p, red); /* its barriers also publish ps */
            acc0 *= corr;
            acc1 *= corr;
            for (int j = part_id; j < nk; j += P) {
                const float pj = ps[j];
                if (pj == 0.0f) continue; /* also keeps 0 * (zeroed row) out */
                const unsigned char *vp = vs + j * g.rs;
                if (g.f16) {
                    const __half *vh = reinterpret_cast<const __half *>(vp);
                    if (d0 < hd) acc0 = fmaf(pj, __half2float(vh[d0]), acc0);
                    if (d0 + D < hd) acc1 = fmaf(pj, __half2float(vh[d0 + D]), acc1);
                } else {
                    const float *vf = reinterpret_cast<const float *>(vp);
                    if (d0 < hd) acc0 = fmaf(pj, vf[d0], acc0);
                    if (d0 + D < hd) acc1 = fmaf(pj, vf[d0 + D], acc1);
                }
            }
            m_run = m_new;
        }
        __syncthreads(); /* readers of this stage and of ps are done */
    }
    if (bad) atomicOr(err, SH_CU_ERR_BLOCK_ID);

    part[tid] = acc0;
    part[kThreads + tid] = acc1;
    __syncthreads();
    float *out = d.out + (int64_t)row * d.out_stride + (int64_t)head * hd;
    if (S == 1) {
        for (int dd = tid; dd < hd; dd += kThreads) {
            const int slot = dd / D, dl = dd % D;
            float num = 0.0f;
            for (int pp = 0; pp < P; pp++) num += part[slot * kThreads + pp * D + dl];
            out[dd] = l_run > 0.0f ? num / l_run : 0.0f;
        }
        return;
    }
    /* split: publish this block's state; the last of the S combines */
    const int pw = 2 + hd; /* floats per partial state */
    float *mine = d.part + ((int64_t)rh * S + sp) * pw;
    for (int dd = tid; dd < hd; dd += kThreads) {
        const int slot = dd / D, dl = dd % D;
        float num = 0.0f;
        for (int pp = 0; pp < P; pp++) num += part[slot * kThreads + pp * D + dl];
        mine[2 + dd] = num;
    }
    if (tid == 0) {
        mine[0] = m_run;
        mine[1] = l_run;
    }
    if (!split_arrive(d.count + rh, S)) return;
    for (int dd = tid; dd < hd; dd += kThreads) out[dd] = split_combine(d.part + (int64_t)rh * S * pw, S, pw, dd);
    if (tid == 0) d.count[rh] = 0; /* ready for the next launch */
}

} // namespace

extern "C" cudaError_t sh_cu_launch_attn1(cudaStream_t s, const sh_cu_launch_args *a) {
    return sh_cu_launch_k(attn1_kernel, a->n_blocks, kThreads, s, a->pdl, static_cast<const sh_cu_attn_desc *>(a->desc),
                          a->starts, a->n_groups, a->err);
}
