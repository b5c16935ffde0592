/* Grouped attention with every visible key of a block in shared memory, for
 * short contexts (attn.cu dispatches here: variant 2). Over the paged KV pool:
 * one launch for every sequence (group) of a call.
 *
 * One block (128 threads; 512 in launches of a few blocks, 256 in launches of
 * up to two blocks an SM) per (group,
 * query row, KV head) serves all G =
 * n_head / n_head_kv query heads that read that KV head (G <= 8,
 * head_dim <= 128, 16-byte K/V rows; the host checks). The K and V rows of
 * the keys before pos0 were written by earlier steps, so their copies into
 * shared memory (cp.async) are issued before the wait for the previous
 * kernel and load while it runs; after the wait come this step's keys and
 * the queries. Then, with everything resident: a thread per (head, key)
 * scores that key for that head, warp w takes heads w, w + 4 (the
 * maximum, the weights e^(s - max), their sum), and a warp per range of
 * keys accumulates p_h[j] V_j for every head (a lane per few dims, the head
 * count a template parameter); the ranges are summed at the end, in an order
 * that does not depend on the block size. One pass over the keys: no running
 * rescale and no tile barriers. Causal rows see [0, pos0 + row],
 * bidirectional ones [0, n_kv). A negative block id zeroes its keys' rows,
 * scores them -inf and raises SH_CU_ERR_BLOCK_ID. expf is the accurate one.
 *
 * Split launches (desc.splits = S > 1, launches of a few pairs: one
 * sequence): the pair's keys are cut into S runs of
 * sh_cu_attn_dec_part_keys keys, a block each; each block leaves its
 * softmax state per head (maximum, sum of weights, p V) in desc.part, counts
 * itself in on desc.count, and the last to arrive adds the S states in run
 * order (the same sums whichever block it is) and writes the output.
 *
 * Shared memory (dynamic, sized by the host per launch, see
 * sh_cu_attn_dec_smem): K rows, V rows (rs bytes apart: the row plus 16, so
 * threads reading different rows at one offset hit different banks), the
 * queries, the scores / weights [G][keys], the heads' sums of weights and
 * maxima; the partition sums of p V reuse the K rows' space (at least their
 * size), which the scores were the last to read. Smaller blocks leave room
 * beside the GEMM blocks before and after attention, so more of its blocks
 * start early under PDL.
 */
#include <math.h>

#include "cuda_common.cuh"

namespace {

#include "attn_tile.cuh"

/* Issues the copies of the K and V rows of keys [k0, k1) into ks / vs
 * (blockDim.x threads). A thread takes four 16-byte pieces a round and
 * reads their four block-table entries before any of the copies, so the
 * round waits on one table read rather than four in a row. */
__device__ __forceinline__ void dec_copy(const sh_cu_attn_desc &d, int hk, unsigned char *ks, unsigned char *vs,
                                         int rs, int k0, int k1, int kb, bool &bad) {
    constexpr int U = 4;
    const int es = d.kv.dtype == DT_F16 ? 2 : 4;
    const int rb = d.head_dim * es, n16 = rb >> 4, nk = k1 - k0, total = 2 * nk * n16;
    const uint64_t row_bytes = (uint64_t)d.kv.kv_dim * es;
    const uint64_t k_slot = (uint64_t)(d.kv.layer * 2) * SH_KV_TOKENS * row_bytes;
    const uint64_t v_off = (uint64_t)SH_KV_TOKENS * row_bytes, head_off = (uint64_t)hk * rb;
    for (int c0 = threadIdx.x; c0 < total; c0 += U * blockDim.x) {
        int j[U], piece[U], kv[U];
        int32_t blk[U];
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int c = c0 + u * blockDim.x;
            kv[u] = c >= nk * n16;
            const int rem = c - kv[u] * nk * n16;
            j[u] = k0 + rem / n16;
            piece[u] = rem % n16;
            blk[u] = c < total ? __ldg(d.kv.block_table + (j[u] >> 4)) : 0;
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            if (c0 + u * blockDim.x >= total) break;
            unsigned char *dst = (kv[u] ? vs : ks) + (j[u] - kb) * rs + 16 * piece[u];
            if (blk[u] < 0) {
                bad = true;
                *reinterpret_cast<uint4 *>(dst) = make_uint4(0, 0, 0, 0);
            } else {
                cp_async16(dst, d.kv.pool + (uint64_t)blk[u] * d.kv.block_bytes + k_slot + kv[u] * v_off +
                                    (uint64_t)(j[u] & 15) * row_bytes + head_off + 16 * piece[u]);
            }
        }
    }
}

/* VD consecutive elements of a K/V row in shared memory, as floats */
template <int VD>
__device__ __forceinline__ void dec_row(const unsigned char *p, bool f16, float *v) {
    if (f16) {
        if constexpr (VD == 1) {
            v[0] = __half2float(*reinterpret_cast<const __half *>(p));
        } else if constexpr (VD == 2) {
            const float2 f = __half22float2(*reinterpret_cast<const __half2 *>(p));
            v[0] = f.x, v[1] = f.y;
        } else {
            const uint2 u = *reinterpret_cast<const uint2 *>(p);
            const float2 a = __half22float2(*reinterpret_cast<const __half2 *>(&u.x));
            const float2 b = __half22float2(*reinterpret_cast<const __half2 *>(&u.y));
            v[0] = a.x, v[1] = a.y, v[2] = b.x, v[3] = b.y;
        }
    } else {
        if constexpr (VD == 1) {
            v[0] = *reinterpret_cast<const float *>(p);
        } else if constexpr (VD == 2) {
            const float2 f = *reinterpret_cast<const float2 *>(p);
            v[0] = f.x, v[1] = f.y;
        } else {
            const float4 f = *reinterpret_cast<const float4 *>(p);
            v[0] = f.x, v[1] = f.y, v[2] = f.z, v[3] = f.w;
        }
    }
}

/* p V over keys [j0, j1) (j0 a multiple of 4) for G heads, the lane's VD
 * dims from d0: sums in key order, written to out[h * stride + i]. */
template <int G, int VD>
__device__ __forceinline__ void dec_pv(const unsigned char *vs, int rs, bool f16, const float *ps, int nkp, int j0,
                                       int j1, int d0, float *out, int stride) {
    float acc[G][VD];
#pragma unroll
    for (int h = 0; h < G; h++)
#pragma unroll
        for (int i = 0; i < VD; i++) acc[h][i] = 0.0f;
    const int eb = (f16 ? 2 : 4) * d0;
    int j = j0;
    for (; j + 4 <= j1; j += 4) {
        float4 p4[G];
#pragma unroll
        for (int h = 0; h < G; h++) p4[h] = *reinterpret_cast<const float4 *>(ps + h * nkp + j);
#pragma unroll
        for (int u = 0; u < 4; u++) {
            float v[VD];
            dec_row<VD>(vs + (j + u) * rs + eb, f16, v);
#pragma unroll
            for (int h = 0; h < G; h++) {
                const float w = u == 0 ? p4[h].x : u == 1 ? p4[h].y : u == 2 ? p4[h].z : p4[h].w;
#pragma unroll
                for (int i = 0; i < VD; i++) acc[h][i] = fmaf(w, v[i], acc[h][i]);
            }
        }
    }
    for (; j < j1; j++) {
        float v[VD];
        dec_row<VD>(vs + j * rs + eb, f16, v);
#pragma unroll
        for (int h = 0; h < G; h++) {
            const float w = ps[h * nkp + j];
#pragma unroll
            for (int i = 0; i < VD; i++) acc[h][i] = fmaf(w, v[i], acc[h][i]);
        }
    }
#pragma unroll
    for (int h = 0; h < G; h++)
#pragma unroll
        for (int i = 0; i < VD; i++) out[h * stride + d0 + i] = acc[h][i];
}

template <int VD>
__device__ __forceinline__ void dec_pv_g(int G, const unsigned char *vs, int rs, bool f16, const float *ps, int nkp,
                                         int j0, int j1, int d0, float *out, int stride) {
    switch (G) {
    case 1: dec_pv<1, VD>(vs, rs, f16, ps, nkp, j0, j1, d0, out, stride); break;
    case 2: dec_pv<2, VD>(vs, rs, f16, ps, nkp, j0, j1, d0, out, stride); break;
    case 3: dec_pv<3, VD>(vs, rs, f16, ps, nkp, j0, j1, d0, out, stride); break;
    case 4: dec_pv<4, VD>(vs, rs, f16, ps, nkp, j0, j1, d0, out, stride); break;
    case 5: dec_pv<5, VD>(vs, rs, f16, ps, nkp, j0, j1, d0, out, stride); break;
    case 6: dec_pv<6, VD>(vs, rs, f16, ps, nkp, j0, j1, d0, out, stride); break;
    case 7: dec_pv<7, VD>(vs, rs, f16, ps, nkp, j0, j1, d0, out, stride); break;
    default: dec_pv<8, VD>(vs, rs, f16, ps, nkp, j0, j1, d0, out, stride); break;
    }
}
static_assert(SH_CU_ATTN_DEC_HEADS == 8, "dec_pv_g instantiates 1 to 8 heads");

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
    const int S = d.splits; /* > 1: the keys of a (row, KV head) are dealt to S blocks, the last combines */
    const int local = blockIdx.x - __ldg(starts + gi), pair = local / S, part = local - pair * S;
    const int row = pair / d.n_head_kv, hk = pair % d.n_head_kv;
    const int G = d.n_head / d.n_head_kv, hd = d.head_dim, head0 = hk * G;
    const bool f16 = d.kv.dtype == DT_F16;
    const int rs = hd * (f16 ? 2 : 4) + 16;
    const int n_all = d.causal ? d.pos0 + row + 1 : d.n_kv;
    const int per = S > 1 ? sh_cu_attn_dec_part_keys(n_all, S) : n_all;
    const int k0 = min(part * per, n_all), n_keys = min(k0 + per, n_all) - k0; /* this block's keys [k0, k0 + n_keys) */
    const int nkp = (n_keys + 3) & ~3;
    /* the layout of sh_cu_attn_dec_smem: p V's sums over the K rows, which the scores were the last to read */
    const size_t rows = (size_t)n_keys * rs, acc_b = (size_t)sh_cu_attn_dec_acc_bytes(hd, G);
    unsigned char *ks = sm, *vs = sm + (rows > acc_b ? rows : acc_b);
    float *qs = reinterpret_cast<float *>(vs + rows); /* [G][hd] */
    float *ps = qs + G * hd;                          /* [G][nkp] */
    float *acc_s = reinterpret_cast<float *>(sm);     /* [G][partition][span] */
    float *l_s = ps + G * nkp;                        /* [G] */
    float *m_s = l_s + G;                             /* [G] */

    bool bad = false;
    const int early = max(k0, min(d.pos0, k0 + n_keys)); /* keys of earlier steps: [k0, early) */
    dec_copy(d, hk, ks, vs, rs, k0, early, k0, bad);
    cp_async_commit();
    SH_CU_PHASE(1);
    pdl_wait(); /* everything below reads or writes what earlier kernels may touch */
    SH_CU_PHASE(2);
    dec_copy(d, hk, ks, vs, rs, early, k0 + n_keys, k0, bad);
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
        const bool ok = __ldg(d.kv.block_table + ((k0 + j) >> 4)) >= 0;
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
        if (lane == 0) l_s[h] = l, m_s[h] = m;
    }
    __syncthreads();
    SH_CU_PHASE(5);
    /* p V: the keys are cut into SH_CU_ATTN_DEC_PARTS ranges of a multiple of 4 keys; warp w takes ranges w,
     * w + NT / 32, ..., a lane VD = span / 32 dims of every head over its range in key order; the ranges are
     * added in order at the end. The sums do not depend on the block size, so a launch's choice of size
     * leaves results bitwise unchanged. */
    constexpr int PL = SH_CU_ATTN_DEC_PARTS;
    const int D = sh_cu_attn_dec_span(hd), VD = D / 32, d0 = VD * lane;
    const int cs = ((n_keys + PL - 1) / PL + 3) & ~3;
    for (int pp = warp; pp < PL; pp += NT / 32) {
        const int j0 = min(pp * cs, n_keys), j1 = min(j0 + cs, n_keys);
        float *o = acc_s + pp * D;
        if (d0 >= hd) continue;
        if (VD == 1)
            dec_pv_g<1>(G, vs, rs, f16, ps, nkp, j0, j1, d0, o, PL * D);
        else if (VD == 2)
            dec_pv_g<2>(G, vs, rs, f16, ps, nkp, j0, j1, d0, o, PL * D);
        else
            dec_pv_g<4>(G, vs, rs, f16, ps, nkp, j0, j1, d0, o, PL * D);
    }
    __syncthreads();
    SH_CU_PHASE(6);
    float *out = d.out + (int64_t)row * d.out_stride + (int64_t)head0 * hd;
    if (S == 1) {
        for (int i = tid; i < G * hd; i += NT) {
            const int h = i / hd, dd = i - h * hd;
            float num = 0.0f;
#pragma unroll 4
            for (int pp = 0; pp < PL; pp++) num += acc_s[(h * PL + pp) * D + dd];
            out[i] = l_s[h] > 0.0f ? num / l_s[h] : 0.0f;
        }
    } else {
        /* this block's state per head (m, l, sum p V) to d.part[(row, head), part]; the last block of the
         * pair to finish adds the S states in part order (whichever block that is: the same sums) */
        float *pst = d.part + (int64_t)(row * d.n_head + head0) * S * (2 + hd);
        for (int i = tid; i < G * hd; i += NT) {
            const int h = i / hd, dd = i - h * hd;
            float num = 0.0f;
#pragma unroll 4
            for (int pp = 0; pp < PL; pp++) num += acc_s[(h * PL + pp) * D + dd];
            pst[(int64_t)(h * S + part) * (2 + hd) + 2 + dd] = num;
        }
        if (tid < G) {
            pst[(int64_t)(tid * S + part) * (2 + hd)] = n_keys > 0 ? m_s[tid] : -INFINITY;
            pst[(int64_t)(tid * S + part) * (2 + hd) + 1] = n_keys > 0 ? l_s[tid] : 0.0f;
        }
        __threadfence();
        __syncthreads();
        __shared__ int last;
        if (tid == 0) last = atomicAdd(d.count + pair, 1) == S - 1;
        __syncthreads();
        if (last) {
            __threadfence();
            for (int i = tid; i < G * hd; i += NT) {
                const int h = i / hd, dd = i - h * hd;
                const float *ph = pst + (int64_t)h * S * (2 + hd);
                float mx = -INFINITY;
                for (int p = 0; p < S; p++) mx = fmaxf(mx, __ldcg(ph + (int64_t)p * (2 + hd)));
                float num = 0.0f, den = 0.0f;
                for (int p = 0; p < S; p++) {
                    const float mp = __ldcg(ph + (int64_t)p * (2 + hd));
                    if (mp == -INFINITY) continue;
                    const float w = expf(mp - mx);
                    den = fmaf(w, __ldcg(ph + (int64_t)p * (2 + hd) + 1), den);
                    num = fmaf(w, __ldcg(ph + (int64_t)p * (2 + hd) + 2 + dd), num);
                }
                out[i] = den > 0.0f ? num / den : 0.0f;
            }
            if (tid == 0) d.count[pair] = 0; /* for the next launch (stream order) */
        }
    }
    if (bad) atomicOr(err, SH_CU_ERR_BLOCK_ID);
    SH_CU_PHASE(7);
#ifdef SH_CU_PHASES_LAUNCH /* every block of one launch: layer 2 when the launch's first group is at POS */
    SH_CU_PHASE_PRINT("attn_dec", descs[0].pos0 == SH_CU_PHASES && d.kv.layer == 2, n_keys);
#else
    SH_CU_PHASE_PRINT("attn_dec", d.pos0 == SH_CU_PHASES && d.kv.layer < 4, n_keys);
#endif
}

} // namespace

/* variant = 2 (128 threads), 3 (512: launches of a few blocks) or 4 (256:
 * launches of about two blocks an SM) | (shared bytes / 1024) << 8 */
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
    const int v = a->variant & 0xff;
    return v == 3 ? launch_dec<SH_CU_ATTN_DEC_WIDE>(s, a, smem)
           : v == 4 ? launch_dec<2 * kThreads>(s, a, smem)
                    : launch_dec<kThreads>(s, a, smem);
}
