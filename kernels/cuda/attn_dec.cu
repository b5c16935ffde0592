/* Grouped attention with every visible key of a block in shared memory, for
 * short contexts (attn.cu dispatches here: variant 2). Over the paged KV pool:
 * one launch for every sequence (group) of a call.
 *
 * One block (128 threads; 512 in launches of a few blocks) per (group,
 * query row, KV head) serves all G =
 * n_head / n_head_kv query heads that read that KV head (G <= kDecHeads,
 * head_dim <= 128, 16-byte K/V rows; the host checks). The K and V rows of
 * the keys before pos0 were written by earlier steps, so their copies into
 * shared memory (cp.async) are issued before the wait for the previous
 * kernel and load while it runs; after the wait come this step's keys and
 * the queries. Then, with everything resident: a thread per (head, key)
 * scores that key for that head, warp w takes heads w, w + 4 (the
 * maximum, the weights e^(s - max), their sum), and thread (partition, dim
 * d) accumulates p_h[j] V_j[d] for every head over its share of the keys;
 * partitions are summed at the end, in an order that does not depend on the
 * block size. One pass over the keys: no running
 * rescale and no tile barriers. Causal rows see [0, pos0 + row],
 * bidirectional ones [0, n_kv). A negative block id zeroes its keys' rows,
 * scores them -inf and raises SH_CU_ERR_BLOCK_ID. expf is the accurate one.
 *
 * Shared memory (dynamic, sized by the host per launch, see
 * sh_cu_attn_dec_smem): K rows, V rows (rs bytes apart: the row plus 16, so
 * threads reading different rows at one offset hit different banks), the
 * queries, the scores / weights [G][keys], the partition sums.
 */
#include <math.h>

#include "cuda_common.cuh"

namespace {

#include "attn_tile.cuh"

constexpr int kDecHeads = SH_CU_ATTN_DEC_HEADS;

/* Issues the copies of the K and V rows of keys [k0, k1) into ks / vs
 * (blockDim.x threads). */
__device__ __forceinline__ void dec_copy(const sh_cu_attn_desc &d, int hk, unsigned char *ks, unsigned char *vs,
                                         int rs, int k0, int k1, bool &bad) {
    const int es = d.kv.dtype == DT_F16 ? 2 : 4;
    const int rb = d.head_dim * es, n16 = rb >> 4, nk = k1 - k0;
    const uint64_t row_bytes = (uint64_t)d.kv.kv_dim * es;
    const uint64_t k_slot = (uint64_t)(d.kv.layer * 2) * SH_KV_TOKENS * row_bytes;
    const uint64_t v_off = (uint64_t)SH_KV_TOKENS * row_bytes, head_off = (uint64_t)hk * rb;
    for (int c = threadIdx.x; c < 2 * nk * n16; c += blockDim.x) {
        const int kv = c >= nk * n16;
        const int rem = c - kv * nk * n16;
        const int j = k0 + rem / n16, piece = rem % n16;
        const int32_t blk = __ldg(d.kv.block_table + (j >> 4));
        unsigned char *dst = (kv ? vs : ks) + j * rs + 16 * piece;
        if (blk < 0) {
            bad = true;
            *reinterpret_cast<uint4 *>(dst) = make_uint4(0, 0, 0, 0);
            continue;
        }
        cp_async16(dst, d.kv.pool + (uint64_t)blk * d.kv.block_bytes + k_slot + kv * v_off +
                            (uint64_t)(j & 15) * row_bytes + head_off + 16 * piece);
    }
}

template <int NT>
__global__ void __launch_bounds__(NT)
    attn_dec_kernel(const sh_cu_attn_desc *__restrict__ descs, const int32_t *__restrict__ starts, int n_groups,
                    int *err) {
    extern __shared__ __align__(16) unsigned char sm[];
    SH_CU_PHASE_DECL;
    SH_CU_PHASE(0);
    if (sh_block_idle(starts, n_groups)) return; /* capacity padding */
    const int gi = sh_find_group(starts, n_groups, blockIdx.x);
    const sh_cu_attn_desc d = descs[gi];
    pdl_trigger();
    const int local = blockIdx.x - __ldg(starts + gi);
    const int row = local / d.n_head_kv, hk = local % d.n_head_kv;
    const int G = d.n_head / d.n_head_kv, hd = d.head_dim, head0 = hk * G;
    const bool f16 = d.kv.dtype == DT_F16;
    const int rs = hd * (f16 ? 2 : 4) + 16;
    const int n_keys = d.causal ? d.pos0 + row + 1 : d.n_kv;
    const int nkp = (n_keys + 3) & ~3;
    unsigned char *ks = sm, *vs = sm + (size_t)n_keys * rs;
    float *qs = reinterpret_cast<float *>(vs + (size_t)n_keys * rs); /* [G][hd] */
    float *ps = qs + G * hd;                                         /* [G][nkp] */
    float *acc_s = ps + G * nkp;                                      /* [G][partition][D] */
    float *l_s = acc_s + G * SH_CU_ATTN_DEC_WIDE;                     /* [G] */

    bool bad = false;
    const int early = min(d.pos0, n_keys); /* keys of earlier steps */
    dec_copy(d, hk, ks, vs, rs, 0, early, bad);
    cp_async_commit();
    SH_CU_PHASE(1);
    pdl_wait(); /* everything below reads or writes what earlier kernels may touch */
    SH_CU_PHASE(2);
    dec_copy(d, hk, ks, vs, rs, early, n_keys, bad);
    cp_async_commit();
    const float *q = d.q + (int64_t)row * d.q_stride + (int64_t)head0 * hd;
    for (int i = threadIdx.x; i < G * hd; i += NT) qs[i] = q[i];
    cp_async_wait<0>();
    __syncthreads();
    SH_CU_PHASE(3);

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    /* scores: thread w takes (head w / n_keys, key w % n_keys), its K row against the head's query in four
     * interleaved partial sums (short dependent chains: G * n_keys threads busy rather than n_keys) */
    for (int w = tid; w < G * n_keys; w += NT) {
        const int h = w / n_keys, j = w - h * n_keys;
        const bool ok = __ldg(d.kv.block_table + (j >> 4)) >= 0;
        const unsigned char *kp = ks + j * rs;
        const float *qh = qs + h * hd;
        float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
#pragma unroll 4
        for (int i = 0; i < hd; i += 8) {
            float kf[8];
            if (f16) {
                const uint4 u = *reinterpret_cast<const uint4 *>(kp + 2 * i);
                const unsigned wv[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
                for (int t = 0; t < 4; t++) {
                    const float2 f = __half22float2(*reinterpret_cast<const __half2 *>(&wv[t]));
                    kf[2 * t] = f.x;
                    kf[2 * t + 1] = f.y;
                }
            } else {
                const float4 x0 = *reinterpret_cast<const float4 *>(kp + 4 * i);
                const float4 x1 = *reinterpret_cast<const float4 *>(kp + 4 * i + 16);
                kf[0] = x0.x, kf[1] = x0.y, kf[2] = x0.z, kf[3] = x0.w;
                kf[4] = x1.x, kf[5] = x1.y, kf[6] = x1.z, kf[7] = x1.w;
            }
            const float4 q0 = *reinterpret_cast<const float4 *>(qh + i);
            const float4 q1 = *reinterpret_cast<const float4 *>(qh + i + 4);
            a0 = fmaf(q0.x, kf[0], a0);
            a1 = fmaf(q0.y, kf[1], a1);
            a2 = fmaf(q0.z, kf[2], a2);
            a3 = fmaf(q0.w, kf[3], a3);
            a0 = fmaf(q1.x, kf[4], a0);
            a1 = fmaf(q1.y, kf[5], a1);
            a2 = fmaf(q1.z, kf[6], a2);
            a3 = fmaf(q1.w, kf[7], a3);
        }
        ps[h * nkp + j] = ok ? ((a0 + a1) + (a2 + a3)) * d.scale : -INFINITY;
    }
    __syncthreads();
    SH_CU_PHASE(4);
    /* softmax weights per head: warp w takes heads w, w + 4, ... */
    for (int h = warp; h < G; h += NT / 32) {
        float *p = ps + h * nkp;
        float m = -INFINITY;
#pragma unroll 4
        for (int j = lane; j < n_keys; j += 32) m = fmaxf(m, p[j]);
        m = warp_max(m);
        float l = 0.0f;
#pragma unroll 4
        for (int j = lane; j < n_keys; j += 32) {
            const float e = p[j] == -INFINITY ? 0.0f : expf(p[j] - m);
            p[j] = e;
            l += e;
        }
        l = warp_sum(l);
        if (lane == 0) l_s[h] = l;
    }
    __syncthreads();
    SH_CU_PHASE(5);
    /* p V: NW / D logical partitions of D dims, partition lp summing keys
     * lp, lp + NW / D, ... for every head; a thread takes NW / NT of them,
     * and the partitions are added in order at the end — the same sums for
     * either block size, so a launch's choice of size leaves results bitwise
     * unchanged */
    constexpr int NW = SH_CU_ATTN_DEC_WIDE, L = NW / NT;
    const int D = hd <= 32 ? 32 : hd <= 64 ? 64 : 128;
    const int PL = NW / D, P = NT / D, part = tid / D, d0 = tid % D;
#pragma unroll
    for (int l = 0; l < L; l++) {
        const int lp = part + l * P;
        float acc[kDecHeads];
#pragma unroll
        for (int h = 0; h < kDecHeads; h++) acc[h] = 0.0f;
        if (d0 < hd) {
            for (int j = lp; j < n_keys; j += PL) {
                const unsigned char *vp = vs + j * rs;
                const float v = f16 ? __half2float(reinterpret_cast<const __half *>(vp)[d0])
                                    : reinterpret_cast<const float *>(vp)[d0];
#pragma unroll
                for (int h = 0; h < kDecHeads; h++)
                    if (h < G) acc[h] = fmaf(ps[h * nkp + j], v, acc[h]);
            }
        }
#pragma unroll
        for (int h = 0; h < kDecHeads; h++)
            if (h < G) acc_s[h * NW + lp * D + d0] = acc[h];
    }
    __syncthreads();
    SH_CU_PHASE(6);
    float *out = d.out + (int64_t)row * d.out_stride + (int64_t)head0 * hd;
    for (int i = tid; i < G * hd; i += NT) {
        const int h = i / hd, dd = i - h * hd;
        float num = 0.0f;
        for (int pp = 0; pp < PL; pp++) num += acc_s[h * NW + pp * D + dd];
        out[i] = l_s[h] > 0.0f ? num / l_s[h] : 0.0f;
    }
    if (bad) atomicOr(err, SH_CU_ERR_BLOCK_ID);
    SH_CU_PHASE(7);
    SH_CU_PHASE_PRINT("attn_dec", d.pos0 == SH_CU_PHASES && d.kv.layer < 4, n_keys);
}

} // namespace

/* variant = 2 (128 threads) or 3 (512: launches of a few blocks) | (shared
 * bytes / 1024) << 8 */
template <int NT>
static cudaError_t launch_dec(cudaStream_t s, const sh_cu_launch_args *a, int smem) {
    static int set_bytes[64];
    const cudaError_t e = sh_cu_smem_optin(attn_dec_kernel<NT>, smem, set_bytes);
    if (e != cudaSuccess) return e;
    int runs = 1;
#ifdef SH_CU_PHASES
    runs = 2; /* diagnosis: the same launch twice (idempotent), so the phase clocks of the
               * second show the kernel with its code already in the instruction caches */
#endif
    cudaError_t r = cudaSuccess;
    for (int i = 0; i < runs && r == cudaSuccess; i++)
        r = sh_cu_launch_ks(attn_dec_kernel<NT>, a->n_blocks, NT, (size_t)smem, s, a->pdl,
                            static_cast<const sh_cu_attn_desc *>(a->desc), a->starts, a->n_groups, a->err);
    return r;
}

extern "C" cudaError_t sh_cu_launch_attn_dec(cudaStream_t s, const sh_cu_launch_args *a) {
    const int smem = (a->variant >> 8) * 1024;
    return (a->variant & 0xff) == 3 ? launch_dec<SH_CU_ATTN_DEC_WIDE>(s, a, smem) : launch_dec<kThreads>(s, a, smem);
}
