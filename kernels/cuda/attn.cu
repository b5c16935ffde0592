/* Grouped attention over the paged KV pool: one launch for every sequence
 * (group) of a call, decode rows and prefill rows alike.
 *
 * One block per (group, query row, head). The block's 4 warps take 32-key
 * chunks in turn; within a chunk lane j scores key j (q K^T scale, the K
 * row read straight from its pool block), the warp updates a running
 * softmax (max m, sum l) and accumulates V with each lane owning head dims
 * lane, lane + 32, ...; the warps' partial (m, l, acc) are merged at the end.
 * GQA: query head h reads KV head h / (n_head / n_head_kv). Causal rows see
 * positions [0, pos0 + row]; bidirectional rows see [0, n_kv). expf is the
 * accurate one (no fast-math intrinsics).
 */
#include <math.h>

#include "cuda_common.cuh"

namespace {

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr int kVB = 8; /* V rows loaded together */

/* sum_i qs[i] k[i] over hd dims of one K row (f32 or f16). */
__device__ __forceinline__ float dot_k(const float *qs, const unsigned char *kp, int hd, bool f16, bool vec) {
    float s = 0.0f;
    if (f16) {
        if (vec) {
#pragma unroll 4
            for (int i = 0; i < hd; i += 8) {
                const uint4 u = __ldg(reinterpret_cast<const uint4 *>(kp + 2 * i));
                const unsigned w[4] = {u.x, u.y, u.z, u.w};
                const float4 q0 = *reinterpret_cast<const float4 *>(qs + i);
                const float4 q1 = *reinterpret_cast<const float4 *>(qs + i + 4);
                const float qv[8] = {q0.x, q0.y, q0.z, q0.w, q1.x, q1.y, q1.z, q1.w};
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    const float2 f = __half22float2(*reinterpret_cast<const __half2 *>(&w[j]));
                    s = fmaf(qv[2 * j], f.x, s);
                    s = fmaf(qv[2 * j + 1], f.y, s);
                }
            }
        } else {
            for (int i = 0; i < hd; i++) s = fmaf(qs[i], f16_bits_to_f32(ldg_u16(kp + 2 * i)), s);
        }
    } else {
        const float *kf = reinterpret_cast<const float *>(kp);
        if (vec) {
#pragma unroll 4
            for (int i = 0; i < hd; i += 4) {
                const float4 k4 = __ldg(reinterpret_cast<const float4 *>(kf + i));
                const float4 q4 = *reinterpret_cast<const float4 *>(qs + i);
                s = fmaf(q4.x, k4.x, s);
                s = fmaf(q4.y, k4.y, s);
                s = fmaf(q4.z, k4.z, s);
                s = fmaf(q4.w, k4.w, s);
            }
        } else {
            for (int i = 0; i < hd; i++) s = fmaf(qs[i], __ldg(kf + i), s);
        }
    }
    return s;
}

/* out[row, head] = sum_t softmax_t(q . K_t * scale) V_t over the visible t.
 * DPL: head dims per lane (head_dim <= 32 * DPL for every group). */
template <int DPL>
__global__ void __launch_bounds__(kThreads)
    attn_kernel(const sh_cu_attn_desc *__restrict__ descs, const int32_t *__restrict__ starts, int n_groups,
                int *err) {
    __shared__ __align__(16) float qs[SH_CU_ATTN_DMAX];
    __shared__ float wmax[kWarps], wsum[kWarps];
    __shared__ float wacc[kWarps][SH_CU_ATTN_DMAX];

    const int g = sh_find_group(starts, n_groups, blockIdx.x);
    const sh_cu_attn_desc d = descs[g];
    pdl_trigger();
    pdl_wait(); /* everything below reads or writes what earlier kernels may touch */
    const int local = blockIdx.x - __ldg(starts + g);
    const int row = local / d.n_head, head = local % d.n_head;
    const int hd = d.head_dim;
    const int hk = head / (d.n_head / d.n_head_kv);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;

    const float *q = d.q + (int64_t)row * d.q_stride + (int64_t)head * hd;
    for (int i = threadIdx.x; i < hd; i += kThreads) qs[i] = q[i];
    __syncthreads();

    const int n_keys = d.causal ? d.pos0 + row + 1 : d.n_kv;
    const bool f16 = d.kv.dtype == DT_F16;
    const uint64_t es = f16 ? 2 : 4;
    const uint64_t head_off = (uint64_t)hk * (uint64_t)hd * es;
    const uint64_t row_bytes = (uint64_t)d.kv.kv_dim * es;
    const uint64_t v_off = (uint64_t)SH_KV_TOKENS * row_bytes; /* V slot follows the K slot */
    const uint64_t k_slot = (uint64_t)(d.kv.layer * 2) * SH_KV_TOKENS * row_bytes;

    float m_run = -INFINITY, l_run = 0.0f;
    float acc[DPL];
#pragma unroll
    for (int i = 0; i < DPL; i++) acc[i] = 0.0f;
    bool bad = false;

    for (int c0 = warp * 32; c0 < n_keys; c0 += kWarps * 32) {
        const int t = c0 + lane;
        uint64_t koff = 0;
        float s = -INFINITY;
        if (t < n_keys) {
            const int32_t blk = __ldg(d.kv.block_table + (t >> 4));
            if (blk < 0) {
                bad = true;
            } else {
                koff = (uint64_t)blk * d.kv.block_bytes + k_slot + (uint64_t)(t & 15) * row_bytes + head_off;
                s = dot_k(qs, d.kv.pool + koff, hd, f16, d.vec != 0) * d.scale;
            }
        }
        const float cmax = warp_max(s);
        if (cmax == -INFINITY) continue; /* warp-uniform: nothing visible here */
        const float m_new = fmaxf(m_run, cmax);
        const float p = s == -INFINITY ? 0.0f : expf(s - m_new);
        const float corr = expf(m_run - m_new); /* 0 on the first chunk */
        l_run = l_run * corr + warp_sum(p);
#pragma unroll
        for (int i = 0; i < DPL; i++) acc[i] *= corr;
        /* acc += p_j V_j over the chunk's keys, kVB V rows in flight at a time
         * (past the chunk: the last key again, with weight 0) */
        const int nv = min(32, n_keys - c0);
        for (int j0 = 0; j0 < nv; j0 += kVB) {
            float pj[kVB], vv[kVB][DPL];
#pragma unroll
            for (int jj = 0; jj < kVB; jj++) {
                const int j = min(j0 + jj, nv - 1);
                const float pw = __shfl_sync(FULL_MASK, p, j);
                const unsigned long long vo = __shfl_sync(FULL_MASK, (unsigned long long)koff, j) + v_off;
                pj[jj] = j0 + jj < nv ? pw : 0.0f;
                const unsigned char *vp = d.kv.pool + vo;
#pragma unroll
                for (int i = 0; i < DPL; i++) {
                    const int dd = lane + 32 * i;
                    vv[jj][i] = dd >= hd ? 0.0f
                                : f16 ? f16_bits_to_f32(ldg_u16(vp + 2 * dd))
                                      : __ldg(reinterpret_cast<const float *>(vp) + dd);
                }
            }
#pragma unroll
            for (int jj = 0; jj < kVB; jj++) {
                if (pj[jj] == 0.0f) continue; /* warp-uniform; also keeps 0 * (unwritten slot) out */
#pragma unroll
                for (int i = 0; i < DPL; i++) acc[i] = fmaf(pj[jj], vv[jj][i], acc[i]);
            }
        }
        m_run = m_new;
    }
    if (bad) atomicOr(err, SH_CU_ERR_BLOCK_ID);

    if (lane == 0) {
        wmax[warp] = m_run;
        wsum[warp] = l_run;
    }
#pragma unroll
    for (int i = 0; i < DPL; i++) {
        const int dd = lane + 32 * i;
        if (dd < hd) wacc[warp][dd] = acc[i];
    }
    __syncthreads();
    float mx = -INFINITY;
#pragma unroll
    for (int w = 0; w < kWarps; w++) mx = fmaxf(mx, wmax[w]);
    float *out = d.out + (int64_t)row * d.out_stride + (int64_t)head * hd;
    for (int dd = threadIdx.x; dd < hd; dd += kThreads) {
        float num = 0.0f, den = 0.0f;
#pragma unroll
        for (int w = 0; w < kWarps; w++) {
            if (wmax[w] == -INFINITY) continue;
            const float f = expf(wmax[w] - mx);
            num = fmaf(wacc[w][dd], f, num);
            den = fmaf(wsum[w], f, den);
        }
        out[dd] = den > 0.0f ? num / den : 0.0f;
    }
}

} // namespace

extern "C" cudaError_t sh_cu_launch_attn(cudaStream_t s, const sh_cu_launch_args *a) {
    const sh_cu_attn_desc *desc = static_cast<const sh_cu_attn_desc *>(a->desc);
    switch (a->variant) {
    case 1: return sh_cu_launch_k(attn_kernel<1>, a->n_blocks, kThreads, s, a->pdl, desc, a->starts, a->n_groups, a->err);
    case 2: return sh_cu_launch_k(attn_kernel<2>, a->n_blocks, kThreads, s, a->pdl, desc, a->starts, a->n_groups, a->err);
    case 4: return sh_cu_launch_k(attn_kernel<4>, a->n_blocks, kThreads, s, a->pdl, desc, a->starts, a->n_groups, a->err);
    case 8: return sh_cu_launch_k(attn_kernel<8>, a->n_blocks, kThreads, s, a->pdl, desc, a->starts, a->n_groups, a->err);
    default: return cudaErrorInvalidValue;
    }
}
