/* Grouped GEMM: y (+)= x W^T + b for every group of a call in one launch.
 *
 * Weights stay in their file dtype (f32, f16, bf16, q8_0, q4_0) and are
 * dequantised in registers; activations and accumulation are f32. Each
 * block reads its group descriptor (sh_cu_gemm_desc) from device memory and
 * takes one of two bodies, chosen per group by the host:
 *
 *  SIMT (CUDA cores, any dtype): warp-per-weight-row dot products. A block
 *    owns 4 * R weight rows (R per warp) and streams them once per pass of
 *    MT activation rows, which sit in shared memory (staged in K chunks).
 *    Weight loads are 16 bytes per lane where alignment allows.
 *
 *  MMA (tensor cores; f16, bf16, q8_0, q4_0 with K % 32 == 0): a block
 *    computes a (16 * WM weight rows) x (8 * NT activation rows) tile of
 *    y^T with mma.m16n8k16 bf16, its 4 warps splitting K (32-element chunks
 *    interleaved) and reducing through shared memory. The f32 activations are
 *    split exactly into three bf16 terms (hi + mid + lo = x), f16 weights
 *    into two (hi + lo = w), and q8_0/q4_0 quants are small integers (exact
 *    in bf16) whose block scale is applied in f32 per 32-element chunk — so
 *    the products are those of the f32 computation and only the summation
 *    order differs from the CPU reference.
 *
 *  Activation transforms (desc.xf): the fused form of a norm or activation
 *  whose only reader is this GEMM. SILU_MUL / GELU are applied to each x
 *  element as it is read (act_kernel's formulas); RMS multiplies x by gamma
 *  as it is read, sums the squares of the raw row alongside, and scales the
 *  row's dot products by 1 / sqrt(mean + eps) before the bias.
 *
 *  Epilogues (desc.epi): GELU is applied to each output after the bias.
 *  The pair epilogues need two weight rows per output: SILU_PAIR computes
 *  silu(x W^T + b) * (x W2^T + b2) (pair p: row p of W and of W2), ROPE
 *  rotates each (o0, o1) dim pair of q or k by its position (pair p: rows
 *  o0 and o1 of W, rope_pair's order). Every 16-row unit of a tile holds the
 *  first rows of 8 pairs (its A rows g) and their second rows (rows g + 8),
 *  so a lane's accumulators hold both members of its pairs (SIMT: a warp's
 *  first R/2 rows are first rows, the last R/2 the second rows). A KV store
 *  also writes each output (after the epilogue) to the paged pool, as
 *  kv_write does.
 *
 *  Row norm (desc.nrm_kind): the norm that reads y next. The rows of an MMA
 *  m tile (SIMT: all rows of the group) are whole once every block of the
 *  tile has stored; each block counts itself in on the tile's counter after
 *  its stores, and the last to arrive normalises the rows into nrm_out.
 *
 *  Within a 32-element chunk the k order fed to the mma is permuted so that
 *  each lane's operands come from contiguous memory: lane (g, t) holds
 *  elements [8t, 8t + 8) of weight rows g and g + 8 and of activation row g
 *  (q4_0: [4t, 4t + 4) and [16 + 4t, 16 + 4t + 4), the nibble layout); the
 *  same permutation on both operands leaves the dot product unchanged.
 */
#ifndef SH_GEMM_KERNEL_CUH
#define SH_GEMM_KERNEL_CUH

#include "cuda_common.cuh"

namespace {

constexpr int kThreads = SH_CU_WARPS * 32;
constexpr int kSsFloats = 256; /* shared tail for RMS row sums: 4 warps x up to 64 rows */
/* Shared floats a launch of shape class S uses (small M: more blocks fit). */
__host__ __device__ constexpr int smem_floats(int s) { return s == 1 ? 2048 : s < 8 ? 4096 : 8192; }

/* ---- loads -------------------------------------------------------------- */

/* 16 bytes of streamed weights: read-only path, not kept in L1 (volatile:
 * stays ahead of pdl_wait, so weight loads overlap the previous kernel). */
__device__ __forceinline__ uint4 ld_stream16(const void *p) {
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
        : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
        : "l"(p));
    return v;
}

template <int DT>
__device__ __forceinline__ void unpack16(const uint4 u, float *w) {
    const unsigned a[4] = {u.x, u.y, u.z, u.w};
    if (DT == DT_F32) {
#pragma unroll
        for (int i = 0; i < 4; i++) w[i] = __uint_as_float(a[i]);
    } else if (DT == DT_BF16) {
#pragma unroll
        for (int i = 0; i < 4; i++) {
            w[2 * i] = __uint_as_float(a[i] << 16);
            w[2 * i + 1] = __uint_as_float(a[i] & 0xffff0000u);
        }
    } else { /* DT_F16 */
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const float2 f = __half22float2(*reinterpret_cast<const __half2 *>(&a[i]));
            w[2 * i] = f.x;
            w[2 * i + 1] = f.y;
        }
    }
}

/* ---- activation transforms ---------------------------------------------- */

enum { XF_NONE = 0, XF_RMS = 1, XF_SILU_MUL = 2, XF_GELU_TANH = 3, XF_GELU_ERF = 4, XF_LN = 5 };

/* Transform classes a kernel is compiled for (XK; the host picks one per
 * launch): 0 none, 1 RMS, 2 SILU_MUL, 3 GELU (tanh or erf, per group), 4 LN
 * (one-row SIMT launches with 16-byte rows only: simt_ln). */
__host__ __device__ constexpr int xk_of(int xf) { return xf == XF_LN ? 4 : xf >= XF_GELU_TANH ? 3 : xf; }

/* silu(a) * b, gelu_tanh(a), gelu_erf(a): act_kernel's expressions */
__device__ __forceinline__ float xf_act(int xf, float a, float b) {
    if (xf == XF_SILU_MUL) return a / (1.0f + expf(-a)) * b;
    if (xf == XF_GELU_TANH) return 0.5f * a * (1.0f + tanhf(0.7978845608028654f * (a + 0.044715f * a * a * a)));
    return 0.5f * a * (1.0f + erff(a * 0.7071067811865476f));
}

/* Element k of activation row m as the GEMM uses it (see the header). RMS
 * adds the raw square to ss. */
template <int XK>
__device__ __forceinline__ float xf1(const sh_cu_gemm_desc &d, float v, int m, int k, float &ss) {
    if (XK == 1) {
        ss = fmaf(v, v, ss);
        return d.gamma ? v * __ldg(d.gamma + k) : v;
    }
    if (XK == 2) return xf_act(XF_SILU_MUL, v, __ldg(d.x2 + (int64_t)m * d.x2_stride + k));
    if (XK == 3) return xf_act(d.xf, v, 0.0f);
    return v;
}

/* Four consecutive elements k .. k + 3 (x2 16-byte aligned there). b: the
 * SILU_MUL partners when already loaded. */
template <int XK>
__device__ __forceinline__ float4 xf4(const sh_cu_gemm_desc &d, float4 v, int m, int k, float &ss,
                                      const float4 *b = nullptr) {
    if (XK == 0) return v;
    if (XK == 1) {
        ss = fmaf(v.x, v.x, ss);
        ss = fmaf(v.y, v.y, ss);
        ss = fmaf(v.z, v.z, ss);
        ss = fmaf(v.w, v.w, ss);
        if (d.gamma) {
            v.x *= __ldg(d.gamma + k);
            v.y *= __ldg(d.gamma + k + 1);
            v.z *= __ldg(d.gamma + k + 2);
            v.w *= __ldg(d.gamma + k + 3);
        }
        return v;
    }
    if (XK == 2) {
        const float4 u = b ? *b : __ldg(reinterpret_cast<const float4 *>(d.x2 + (int64_t)m * d.x2_stride + k));
        return make_float4(xf_act(XF_SILU_MUL, v.x, u.x), xf_act(XF_SILU_MUL, v.y, u.y),
                           xf_act(XF_SILU_MUL, v.z, u.z), xf_act(XF_SILU_MUL, v.w, u.w));
    }
    return make_float4(xf_act(d.xf, v.x, 0.0f), xf_act(d.xf, v.y, 0.0f), xf_act(d.xf, v.z, 0.0f),
                       xf_act(d.xf, v.w, 0.0f));
}

/* The RMS row scale from the sum of squares over k elements. */
__device__ __forceinline__ float xf_rstd(const sh_cu_gemm_desc &d, float ss) {
    return 1.0f / sqrtf(ss / (float)d.k + d.eps);
}

/* ---- SIMT body ---------------------------------------------------------- */

/* Warp-steps whose weight loads a lane issues together: M = 1 covers 768
 * bf16 elements per row in one batch with few registers (so 6 blocks fit an
 * SM); larger MT needs registers for the accumulators. */
__host__ __device__ constexpr int simt_batch(int mt, int r) { return mt == 1 ? (r == 4 ? 3 : 6) : mt == 2 ? 4 : 2; }

/* Activations come from shared memory (staged chunks) or, XG, straight from
 * global memory through the read-only path. */
template <bool XG>
__device__ __forceinline__ float4 ldx4(const float *p) {
    return XG ? __ldg(reinterpret_cast<const float4 *>(p)) : *reinterpret_cast<const float4 *>(p);
}

enum { EPI_NONE = 0, EPI_SILU_PAIR = 1, EPI_GELU_TANH = 2, EPI_GELU_ERF = 3, EPI_ROPE = 4 }; /* = sh_gemm_epi */

/* What an output's epilogue reads besides its sums: row m's KV slot and,
 * for ROPE, its position and the cos / sin of its pair there (from the
 * table when it covers the position). Positions and slots are written only
 * by host copies that complete before any kernel of the stream runs, the
 * table at its creation: the one-row path reads them before the PDL wait
 * (epi_begin before its weight loads, epi_end after them). */
struct epi_in {
    float cs, sn;
    int32_t slot, pos;
};

/* The angle in double when the table does not cover the position (not
 * inlined: its registers stay off the main loop). */
__device__ __noinline__ void rope_cs_at(float theta, int head_dim, int j, int pos, float &cs, float &sn) {
    rope_cs((double)pos, rope_inv_freq(j, head_dim, theta), cs, sn);
}

/* The loads that depend on nothing: row m's slot and position. */
__device__ __forceinline__ epi_in epi_begin(const sh_cu_gemm_desc &d, int m) {
    epi_in e = {1.0f, 0.0f, 0, 0};
    if (m >= d.m) return e;
    if (d.kv_which) e.slot = __ldg(d.kv.block_table + m);
    if (d.epi == EPI_ROPE) e.pos = __ldg(d.pos + m);
    return e;
}
/* cos / sin of frequency j at pos: from the table when it covers pos. */
__device__ __forceinline__ void rope_cs_tab(const void *tab, int tab_n, float theta, int head_dim, int j, int pos,
                                            float &cs, float &sn) {
    if (pos >= 0 && pos < tab_n) {
        const float2 t = __ldg(static_cast<const float2 *>(tab) + (int64_t)pos * (head_dim / 2) + j);
        cs = t.x;
        sn = t.y;
    } else {
        rope_cs_at(theta, head_dim, j, pos, cs, sn);
    }
}
/* ROPE: the cos / sin of output pair p at e.pos. */
__device__ __forceinline__ void epi_end(const sh_cu_gemm_desc &d, int p, epi_in &e) {
    if (d.epi != EPI_ROPE || p >= d.np) return;
    rope_cs_tab(d.rope_tab, d.rope_tab_n, d.theta, d.head_dim, p % (d.head_dim / 2), e.pos, e.cs, e.sn);
}

/* The one-row path's epilogue inputs: begun before the weight loads, ended
 * (armed) just before the first wait. */
struct epi_pre {
    epi_in e;
    int p;
    bool armed;
};
__device__ __forceinline__ void pre_wait(const sh_cu_gemm_desc &d, epi_pre *pre) {
    if (pre && pre->armed) {
        epi_end(d, pre->p, pre->e);
        pre->armed = false;
    }
    pdl_wait();
}

/* acc[r][m] += sum over this K chunk of w_r[k] x_m[k]; 16-byte weight loads.
 * Each lane issues the loads of U warp-steps for all R rows before using
 * any of them (addresses past the chunk are clamped to its last vector and
 * their products skipped), so U * R loads are in flight per lane. */
template <int MT, int R, int DT, bool XG, int XK>
__device__ __forceinline__ void simt_vec(const sh_cu_gemm_desc &d, const unsigned char *const (&wrow)[R], int k0,
                                         int kc, const float *xs, int kcap, float (&acc)[R][MT], float &ss, int lane,
                                         epi_pre *pre) {
    constexpr int ES = DT == DT_F32 ? 4 : 2;
    constexpr int V = 16 / ES;
    constexpr int U = simt_batch(MT, R);
    for (int kb = lane * V; kb < kc; kb += U * 32 * V) {
        uint4 raw[U][R];
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int kk = min(kb + u * 32 * V, kc - V);
#pragma unroll
            for (int r = 0; r < R; r++) raw[u][r] = ld_stream16(wrow[r] + (int64_t)(k0 + kk) * ES);
        }
        if (XG) pre_wait(d, pre); /* activations next; no-op after the first batch */
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int kk = kb + u * 32 * V;
            if (kk >= kc) break;
            float w[R][V];
#pragma unroll
            for (int r = 0; r < R; r++) unpack16<DT>(raw[u][r], w[r]);
#pragma unroll
            for (int m = 0; m < MT; m++) {
                float xv[V];
#pragma unroll
                for (int j = 0; j < V / 4; j++) {
                    float4 t = ldx4<XG>(xs + m * kcap + kk + 4 * j);
                    if (XG) t = xf4<XK>(d, t, m, k0 + kk + 4 * j, ss);
                    xv[4 * j] = t.x;
                    xv[4 * j + 1] = t.y;
                    xv[4 * j + 2] = t.z;
                    xv[4 * j + 3] = t.w;
                }
#pragma unroll
                for (int r = 0; r < R; r++)
#pragma unroll
                    for (int j = 0; j < V; j++) acc[r][m] = fmaf(w[r][j], xv[j], acc[r][m]);
            }
        }
    }
}

/* One activation row through the LayerNorm transform (XK = 4), 16-byte
 * weight rows: besides a1[r] = sum w_r[k] gamma[k] x[k] the lane sums
 * a2[r] = sum w_r[k] gamma[k], a3[r] = sum w_r[k] beta[k], s1 = sum x[k]
 * and ss = sum x[k]^2, so that with mean mu and rstd = 1 / sqrt(var + eps)
 * row r's result is rstd (a1 - mu a2) + a3 = sum w_r ((x - mu) rstd gamma +
 * beta) — the norm and the GEMM in one pass over the weights. gamma and beta
 * are 16-byte aligned (the host checks). */
template <int R, int DT>
__device__ __forceinline__ void simt_ln(const sh_cu_gemm_desc &d, const unsigned char *const (&wrow)[R],
                                        float (&a1)[R][1], float (&a2)[R], float (&a3)[R], float &s1, float &ss,
                                        int lane, epi_pre *pre) {
    constexpr int ES = DT == DT_F32 ? 4 : 2;
    constexpr int V = 16 / ES;
    constexpr int U = simt_batch(1, R);
    const int kc = d.k;
    for (int kb = lane * V; kb < kc; kb += U * 32 * V) {
        uint4 raw[U][R];
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int kk = min(kb + u * 32 * V, kc - V);
#pragma unroll
            for (int r = 0; r < R; r++) raw[u][r] = ld_stream16(wrow[r] + (int64_t)kk * ES);
        }
        pre_wait(d, pre); /* activations next; no-op after the first batch */
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int kk = kb + u * 32 * V;
            if (kk >= kc) break;
            float w[R][V], xv[V], gv[V], bv[V];
#pragma unroll
            for (int r = 0; r < R; r++) unpack16<DT>(raw[u][r], w[r]);
#pragma unroll
            for (int j = 0; j < V / 4; j++) {
                const float4 t = __ldg(reinterpret_cast<const float4 *>(d.x + kk + 4 * j));
                const float4 g = d.gamma ? __ldg(reinterpret_cast<const float4 *>(d.gamma + kk + 4 * j))
                                         : make_float4(1.f, 1.f, 1.f, 1.f);
                const float4 b = d.beta ? __ldg(reinterpret_cast<const float4 *>(d.beta + kk + 4 * j))
                                        : make_float4(0.f, 0.f, 0.f, 0.f);
                s1 += (t.x + t.y) + (t.z + t.w);
                ss = fmaf(t.x, t.x, ss);
                ss = fmaf(t.y, t.y, ss);
                ss = fmaf(t.z, t.z, ss);
                ss = fmaf(t.w, t.w, ss);
                xv[4 * j] = t.x * g.x, xv[4 * j + 1] = t.y * g.y, xv[4 * j + 2] = t.z * g.z, xv[4 * j + 3] = t.w * g.w;
                gv[4 * j] = g.x, gv[4 * j + 1] = g.y, gv[4 * j + 2] = g.z, gv[4 * j + 3] = g.w;
                bv[4 * j] = b.x, bv[4 * j + 1] = b.y, bv[4 * j + 2] = b.z, bv[4 * j + 3] = b.w;
            }
#pragma unroll
            for (int r = 0; r < R; r++)
#pragma unroll
                for (int j = 0; j < V; j++) {
                    a1[r][0] = fmaf(w[r][j], xv[j], a1[r][0]);
                    a2[r] = fmaf(w[r][j], gv[j], a2[r]);
                    a3[r] = fmaf(w[r][j], bv[j], a3[r]);
                }
        }
    }
}

/* Same, one element per lane per step (unaligned rows or odd K). */
template <int MT, int R, bool XG, int XK>
__device__ __forceinline__ void simt_scalar(const sh_cu_gemm_desc &d, const unsigned char *const (&wrow)[R], int dtype,
                                            int k0, int kc, const float *xs, int kcap, float (&acc)[R][MT], float &ss,
                                            int lane, epi_pre *pre) {
    if (XG) pre_wait(d, pre);
#pragma unroll 4
    for (int kk = lane; kk < kc; kk += 32) {
        float w[R];
#pragma unroll
        for (int r = 0; r < R; r++) w[r] = load_weight_elem(wrow[r], dtype, k0 + kk);
#pragma unroll
        for (int m = 0; m < MT; m++) {
            const float xv = XG ? xf1<XK>(d, __ldg(xs + m * kcap + kk), m, k0 + kk, ss) : xs[m * kcap + kk];
#pragma unroll
            for (int r = 0; r < R; r++) acc[r][m] = fmaf(w[r], xv, acc[r][m]);
        }
    }
}

/* q8_0 / q4_0: each lane takes 4 consecutive elements of a 32-element block
 * per step (8 lanes per block), so the activation reads stay contiguous;
 * loads batched as in simt_vec. Blocks are only 2-byte aligned: 16-bit loads. */
template <int MT, int R, int DT, bool XG, int XK>
__device__ __forceinline__ void simt_quant(const sh_cu_gemm_desc &d, const unsigned char *const (&wrow)[R], int k0,
                                           int kc, const float *xs, int kcap, float (&acc)[R][MT], float &ss,
                                           int lane, epi_pre *pre) {
    constexpr int BB = DT == DT_Q8_0 ? 34 : 18;
    constexpr int U = simt_batch(MT, R);
    for (int kb = lane * 4; kb < kc; kb += U * 128) {
        unsigned raw[U][R][3]; /* scale bits, two 16-bit words of quants */
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int kg = k0 + min(kb + u * 128, kc - 4);
            const int blk = kg >> 5, within = kg & 31;
            const int off = DT == DT_Q8_0 ? within : (within & 15);
#pragma unroll
            for (int r = 0; r < R; r++) {
                const unsigned char *p = wrow[r] + (int64_t)blk * BB;
                raw[u][r][0] = ldg_u16(p);
                raw[u][r][1] = ldg_u16(p + 2 + off);
                raw[u][r][2] = ldg_u16(p + 4 + off);
            }
        }
        if (XG) pre_wait(d, pre); /* activations next; no-op after the first batch */
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int kk = kb + u * 128;
            if (kk >= kc) break;
            const int sh = DT == DT_Q4_0 && ((k0 + kk) & 31) >= 16 ? 4 : 0;
            float w[R][4];
#pragma unroll
            for (int r = 0; r < R; r++) {
                const float d = f16_bits_to_f32(raw[u][r][0]);
                const unsigned q = raw[u][r][1] | (raw[u][r][2] << 16);
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    if (DT == DT_Q8_0) w[r][j] = d * (float)(int8_t)((q >> (8 * j)) & 0xffu);
                    else w[r][j] = d * (float)((int)((q >> (8 * j + sh)) & 15u) - 8);
                }
            }
#pragma unroll
            for (int m = 0; m < MT; m++) {
                float4 t = ldx4<XG>(xs + m * kcap + kk);
                if (XG) t = xf4<XK>(d, t, m, k0 + kk, ss);
#pragma unroll
                for (int r = 0; r < R; r++) {
                    float a = acc[r][m];
                    a = fmaf(w[r][0], t.x, a);
                    a = fmaf(w[r][1], t.y, a);
                    a = fmaf(w[r][2], t.z, a);
                    a = fmaf(w[r][3], t.w, a);
                    acc[r][m] = a;
                }
            }
        }
    }
}

/* One K chunk of every row of this warp, by dtype. */
template <int MT, int R, bool XG, int XK>
__device__ __forceinline__ void simt_chunk(const sh_cu_gemm_desc &d, const unsigned char *const (&wrow)[R], int k0,
                                           int kc, const float *xs, int kcap, float (&acc)[R][MT], float &ss,
                                           int lane, epi_pre *pre = nullptr) {
    switch (d.dtype) {
    case DT_F32:
        if (d.vec) simt_vec<MT, R, DT_F32, XG, XK>(d, wrow, k0, kc, xs, kcap, acc, ss, lane, pre);
        else simt_scalar<MT, R, XG, XK>(d, wrow, d.dtype, k0, kc, xs, kcap, acc, ss, lane, pre);
        break;
    case DT_F16:
        if (d.vec) simt_vec<MT, R, DT_F16, XG, XK>(d, wrow, k0, kc, xs, kcap, acc, ss, lane, pre);
        else simt_scalar<MT, R, XG, XK>(d, wrow, d.dtype, k0, kc, xs, kcap, acc, ss, lane, pre);
        break;
    case DT_BF16:
        if (d.vec) simt_vec<MT, R, DT_BF16, XG, XK>(d, wrow, k0, kc, xs, kcap, acc, ss, lane, pre);
        else simt_scalar<MT, R, XG, XK>(d, wrow, d.dtype, k0, kc, xs, kcap, acc, ss, lane, pre);
        break;
    case DT_Q8_0: simt_quant<MT, R, DT_Q8_0, XG, XK>(d, wrow, k0, kc, xs, kcap, acc, ss, lane, pre); break;
    case DT_Q4_0: simt_quant<MT, R, DT_Q4_0, XG, XK>(d, wrow, k0, kc, xs, kcap, acc, ss, lane, pre); break;
    default: break;
    }
}

__device__ __forceinline__ bool epi_pair(const sh_cu_gemm_desc &d) { return d.epi == EPI_SILU_PAIR || d.epi == EPI_ROPE; }

/* First (h = 0) or second (h = 1) weight row of output pair p (clamped). */
__device__ __forceinline__ const unsigned char *pair_row(const sh_cu_gemm_desc &d, int p, int h) {
    p = min(p, d.np - 1);
    if (d.epi == EPI_SILU_PAIR) return static_cast<const unsigned char *>(h ? d.w2 : d.w) + (int64_t)p * d.row_bytes;
    int o0, o1;
    rope_pair(p, d.head_dim, d.head_dim, d.rope_mode, o0, o1);
    return static_cast<const unsigned char *>(d.w) + (int64_t)(h ? o1 : o0) * d.row_bytes;
}

/* KV store: output (m, col) into the pool slot of its row, as kv_write
 * converts it (not inlined: off the main loop's path). */
__device__ __noinline__ void kv_put_at(sh_cu_kv kv, int which, int *err, int32_t slot, int col, float v) {
    if (slot < 0) {
        atomicOr(err, SH_CU_ERR_BLOCK_ID);
        return;
    }
    unsigned char *dst = kv_row(kv, slot / SH_KV_TOKENS, slot % SH_KV_TOKENS, which - 1);
    if (kv.dtype == DT_F16) reinterpret_cast<__half *>(dst)[col] = __float2half_rn(v);
    else reinterpret_cast<float *>(dst)[col] = v;
}

/* y[m][row] (+)= epi(v + bias[row]) for the rows/columns that exist; e:
 * the row's epi_in when read already (the one-row path), else NULL. */
__device__ __forceinline__ void store_y(const sh_cu_gemm_desc &d, int m, int row, float v, const epi_in *e = nullptr) {
    if (row >= d.n || m >= d.m) return;
    if (d.bias) v += __ldg(d.bias + row);
    if (d.epi == EPI_GELU_TANH) v = xf_act(XF_GELU_TANH, v, 0.0f);
    else if (d.epi == EPI_GELU_ERF) v = xf_act(XF_GELU_ERF, v, 0.0f);
    float *p = d.y + (int64_t)m * d.y_stride + row;
    *p = d.accumulate ? *p + v : v;
    if (d.kv_which) kv_put_at(d.kv, d.kv_which, d.err, e ? e->slot : __ldg(d.kv.block_table + m), row, v);
}

/* ROPE: dims (o0, o1) of pair p rotated as kv_write / rope_kernel do, by
 * the angle's cos / sin. */
__device__ __forceinline__ void rope_out(float *y, const float *bias, int head_dim, int mode, int p, float v0,
                                         float v1, float cs, float sn, float &x0, float &x1, int &o0, int &o1) {
    rope_pair(p, head_dim, head_dim, mode, o0, o1);
    if (bias) v0 += __ldg(bias + o0), v1 += __ldg(bias + o1);
    rope_apply(v0, v1, cs, sn, x0, x1);
    y[o0] = x0;
    y[o1] = x1;
}
/* The same with the angle looked up here (the general path; not inlined:
 * its registers stay off the GEMM's main loop). */
__device__ __noinline__ void store_rope(float *y, const float *bias, int head_dim, int mode, float theta,
                                       const void *tab, int tab_n, int pos, int p, float v0, float v1, float &x0,
                                       float &x1, int &o0, int &o1) {
    float cs, sn;
    rope_cs_tab(tab, tab_n, theta, head_dim, p % (head_dim / 2), pos, cs, sn);
    rope_out(y, bias, head_dim, mode, p, v0, v1, cs, sn, x0, x1, o0, o1);
}

/* Output pair p of row m from its two dot products: SILU_PAIR y[m][p] =
 * silu(v0 + bias[p]) * (v1 + bias2[p]) (act_kernel's expression), or ROPE
 * then the KV store; e as for store_y. */
__device__ __forceinline__ void store_pair(const sh_cu_gemm_desc &d, int m, int p, float v0, float v1,
                                           const epi_in *e = nullptr) {
    if (p >= d.np || m >= d.m) return;
    float *y = d.y + (int64_t)m * d.y_stride;
    if (d.epi == EPI_ROPE) {
        float x0, x1;
        int o0, o1;
        if (e) rope_out(y, d.bias, d.head_dim, d.rope_mode, p, v0, v1, e->cs, e->sn, x0, x1, o0, o1);
        else store_rope(y, d.bias, d.head_dim, d.rope_mode, d.theta, d.rope_tab, d.rope_tab_n, __ldg(d.pos + m), p,
                        v0, v1, x0, x1, o0, o1);
        if (d.kv_which) {
            const int32_t slot = e ? e->slot : __ldg(d.kv.block_table + m);
            kv_put_at(d.kv, d.kv_which, d.err, slot, o0, x0);
            kv_put_at(d.kv, d.kv_which, d.err, slot, o1, x1);
        }
        return;
    }
    if (d.bias) v0 += __ldg(d.bias + p);
    if (d.bias2) v1 += __ldg(d.bias2 + p);
    y[p] = xf_act(XF_SILU_MUL, v0, v1);
}

/* Weight row r of a warp's rows starting at row0 (SIMT): with a pair
 * epilogue, row0 counts pairs and rows r < R/2 are the first rows of pairs
 * row0 + r, the others their second rows. */
template <int R>
__device__ __forceinline__ const unsigned char *simt_row(const sh_cu_gemm_desc &d, int row0, int r) {
    constexpr int RH = R >= 2 ? R / 2 : 1;
    if (R >= 2 && epi_pair(d)) return pair_row(d, row0 + r % RH, r >= RH);
    return static_cast<const unsigned char *>(d.w) + (int64_t)min(row0 + r, d.n - 1) * d.row_bytes;
}

/* Sums each lane's partials over the warp; lane (r * MT + m) % 32 stores.
 * pre (one row, MT = 1): the epi_in of lane r's output (pair) row0 + r,
 * read before the wait; NULL: read here. */
template <int MT, int R>
__device__ __forceinline__ void simt_store(const sh_cu_gemm_desc &d, int m0, int row0, float (&acc)[R][MT],
                                           const float (&scale)[MT], int lane, const epi_in *pre = nullptr) {
    pdl_wait(); /* lanes that loaded nothing have not waited yet */
    if (R >= 2 && epi_pair(d)) {
        constexpr int RH = R >= 2 ? R / 2 : 1;
#pragma unroll
        for (int r = 0; r < RH; r++)
#pragma unroll
            for (int m = 0; m < MT; m++) {
                const float vg = warp_sum(acc[r][m]), vu = warp_sum(acc[r + RH][m]);
                if (lane == ((r * MT + m) & 31)) store_pair(d, m0 + m, row0 + r, vg * scale[m], vu * scale[m], pre);
            }
        return;
    }
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int m = 0; m < MT; m++) {
            const float v = warp_sum(acc[r][m]);
            if (lane == ((r * MT + m) & 31)) store_y(d, m0 + m, row0 + r, v * scale[m], pre);
        }
}

/* Block = 4 warps x R weight rows; all M rows of the group in passes of MT.
 * M = 1 with aligned x skips shared memory (no barrier before the first
 * weight load). */
template <int MT, int R, int SMEM, int XK>
__device__ __forceinline__ void gemm_simt_body(const sh_cu_gemm_desc &d, int local, float *xs) {
    constexpr int KC = SMEM / MT; /* K chunk staged per pass: a multiple of 256 */
    static_assert(KC % 256 == 0, "K chunk must keep every lane's k order");
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int rpw = R >= 2 && epi_pair(d) ? R / 2 : R; /* output rows (pairs) per warp */
    const int row0 = local * (SH_CU_WARPS * rpw) + warp * rpw;
    const unsigned char *wrow[R];
#pragma unroll
    for (int r = 0; r < R; r++) wrow[r] = simt_row<R>(d, row0, r);

    if constexpr (XK == 4) { /* LN: one-row launches with x direct and 16-byte rows only (the host checks) */
        float a1[R][1], a2[R], a3[R], s1 = 0.0f, ss = 0.0f, scale[1] = {1.0f};
#pragma unroll
        for (int r = 0; r < R; r++) a1[r][0] = a2[r] = a3[r] = 0.0f;
        epi_pre pre = {epi_begin(d, 0), row0 + lane, d.epi == EPI_ROPE};
        if (row0 < d.n) {
            if (d.dtype == DT_BF16) simt_ln<R, DT_BF16>(d, wrow, a1, a2, a3, s1, ss, lane, &pre);
            else if (d.dtype == DT_F16) simt_ln<R, DT_F16>(d, wrow, a1, a2, a3, s1, ss, lane, &pre);
            else simt_ln<R, DT_F32>(d, wrow, a1, a2, a3, s1, ss, lane, &pre);
        }
        if (pre.armed) epi_end(d, pre.p, pre.e);
        const float mu = warp_sum(s1) / (float)d.k, var = fmaxf(warp_sum(ss) / (float)d.k - mu * mu, 0.0f);
        const float rstd = 1.0f / sqrtf(var + d.eps);
#pragma unroll
        for (int r = 0; r < R; r++) { /* the row's result in lane 0 (simt_store sums the warp: + zeros) */
            const float v1 = warp_sum(a1[r][0]), v2 = warp_sum(a2[r]), v3 = warp_sum(a3[r]);
            a1[r][0] = lane == 0 ? rstd * (v1 - mu * v2) + v3 : 0.0f;
        }
        simt_store<1, R>(d, 0, row0, a1, scale, lane, &pre.e);
        return;
    } else if (MT == 1 && d.xdirect) {
        float acc[R][MT], ss = 0.0f, scale[MT] = {1.0f};
#pragma unroll
        for (int r = 0; r < R; r++) acc[r][0] = 0.0f;
        /* the normed launches (QKV) read the epilogue's slot and angle with the weights (lane r stores
         * output row0 + r); in the others the registers would cost more than the reads */
        epi_pre pre = {XK == 1 ? epi_begin(d, 0) : epi_in{}, row0 + lane, XK == 1 && d.epi == EPI_ROPE};
        /* every warp reads the whole row: its own RMS sum is the row's */
        if (row0 < d.n) simt_chunk<MT, R, true, XK>(d, wrow, 0, d.k, d.x, 0, acc, ss, lane, XK == 1 ? &pre : nullptr);
        if (pre.armed) epi_end(d, pre.p, pre.e);
        if (XK == 1) scale[0] = xf_rstd(d, warp_sum(ss));
        simt_store<MT, R>(d, 0, row0, acc, scale, lane, XK == 1 ? &pre.e : nullptr);
        return;
    }
    pdl_wait();
    float *ssh = xs + SMEM; /* RMS: [warp][m] partial sums */
    for (int m0 = 0; m0 < d.m; m0 += MT) {
        float acc[R][MT], ss[MT], scale[MT], unused = 0.0f;
#pragma unroll
        for (int m = 0; m < MT; m++) ss[m] = 0.0f, scale[m] = 1.0f;
#pragma unroll
        for (int r = 0; r < R; r++)
#pragma unroll
            for (int m = 0; m < MT; m++) acc[r][m] = 0.0f;

        for (int k0 = 0; k0 < d.k; k0 += KC) {
            const int kc = min(KC, d.k - k0);
            __syncthreads(); /* the previous chunk's readers are done */
#pragma unroll
            for (int m = 0; m < MT; m++) {
                float *dst = xs + m * KC;
                if (m0 + m < d.m) {
                    const float *src = d.x + (int64_t)(m0 + m) * d.x_stride + k0;
                    for (int kk = threadIdx.x; kk < kc; kk += kThreads)
                        dst[kk] = xf1<XK>(d, src[kk], m0 + m, k0 + kk, ss[m]);
                } else {
                    for (int kk = threadIdx.x; kk < kc; kk += kThreads) dst[kk] = 0.0f;
                }
            }
            __syncthreads();
            if (row0 < d.n) simt_chunk<MT, R, false, 0>(d, wrow, k0, kc, xs, KC, acc, unused, lane);
        }
        if (XK == 1) {
            const int warp = threadIdx.x >> 5;
#pragma unroll
            for (int m = 0; m < MT; m++) {
                const float v = warp_sum(ss[m]);
                if (lane == 0) ssh[warp * MT + m] = v;
            }
            __syncthreads();
#pragma unroll
            for (int m = 0; m < MT; m++)
                scale[m] = xf_rstd(d, ssh[m] + ssh[MT + m] + ssh[2 * MT + m] + ssh[3 * MT + m]);
            __syncthreads(); /* ssh is rewritten by the next pass */
        }
        simt_store<MT, R>(d, m0, row0, acc, scale, lane);
    }
}

/* ---- MMA body ----------------------------------------------------------- */

/* c += a b for one m16n8k16 tile: a (16 x 16, row-major bf16 pairs), b
 * (16 x 8, column-major bf16 pairs), c (16 x 8 f32). */
__device__ __forceinline__ void mma_bf16(float (&c)[4], unsigned a0, unsigned a1, unsigned a2, unsigned a3,
                                         unsigned b0, unsigned b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
        "{%8, %9}, {%0, %1, %2, %3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

__device__ __forceinline__ unsigned bf2_bits(__nv_bfloat162 v) { return *reinterpret_cast<unsigned *>(&v); }

/* Splits the pair (a, b) exactly into bf16 pairs hi + mid + lo. */
__device__ __forceinline__ void split3(float a, float b, unsigned &hi, unsigned &mid, unsigned &lo) {
    const __nv_bfloat162 h = __floats2bfloat162_rn(a, b);
    a -= __low2float(h);
    b -= __high2float(h);
    const __nv_bfloat162 m = __floats2bfloat162_rn(a, b);
    a -= __low2float(m);
    b -= __high2float(m);
    hi = bf2_bits(h);
    mid = bf2_bits(m);
    lo = bf2_bits(__floats2bfloat162_rn(a, b));
}

/* Splits an f16 pair (as 32 bits) exactly into bf16 pairs hi + lo. */
__device__ __forceinline__ void split_f16(unsigned u, unsigned &hi, unsigned &lo) {
    const float2 f = __half22float2(*reinterpret_cast<const __half2 *>(&u));
    const __nv_bfloat162 h = __floats2bfloat162_rn(f.x, f.y);
    hi = bf2_bits(h);
    lo = bf2_bits(__floats2bfloat162_rn(f.x - __low2float(h), f.y - __high2float(h)));
}

__device__ __forceinline__ unsigned pack_bf2(float a, float b) { return bf2_bits(__floats2bfloat162_rn(a, b)); }

/* Raw A operand bits of one row and one 32-element chunk for lane t:
 * f16/bf16: 16 bytes (ra[0..3]); q8_0: scale + four 16-bit words of quants;
 * q4_0: scale + two 16-bit words of nibbles. */
template <int DT>
__device__ __forceinline__ void load_a_raw(const unsigned char *row, int chunk, int t, unsigned (&ra)[5]) {
    if (DT == DT_BF16 || DT == DT_F16) {
        const uint4 u = ld_stream16(row + (int64_t)chunk * 64 + 16 * t);
        ra[0] = u.x;
        ra[1] = u.y;
        ra[2] = u.z;
        ra[3] = u.w;
    } else if (DT == DT_Q8_0) {
        const unsigned char *p = row + (int64_t)chunk * 34;
        ra[0] = ldg_u16(p);
#pragma unroll
        for (int i = 0; i < 4; i++) ra[1 + i] = ldg_u16(p + 2 + 8 * t + 2 * i);
    } else {
        const unsigned char *p = row + (int64_t)chunk * 18;
        ra[0] = ldg_u16(p);
        ra[1] = ldg_u16(p + 2 + 4 * t);
        ra[2] = ldg_u16(p + 4 + 4 * t);
    }
}

/* The raw bits as four bf16 pairs (exact); pair i holds permuted k
 * (2i, 2i + 1). f16: hi terms in a, lo terms in al. Quants: block scale. */
template <int DT>
__device__ __forceinline__ void decode_a(const unsigned (&ra)[5], unsigned (&a)[4], unsigned (&al)[4], float &scale) {
    if (DT == DT_BF16) {
#pragma unroll
        for (int i = 0; i < 4; i++) a[i] = ra[i];
    } else if (DT == DT_F16) {
#pragma unroll
        for (int i = 0; i < 4; i++) split_f16(ra[i], a[i], al[i]);
    } else if (DT == DT_Q8_0) {
        scale = f16_bits_to_f32(ra[0]);
#pragma unroll
        for (int i = 0; i < 4; i++) a[i] = pack_bf2((float)(int8_t)(ra[1 + i] & 0xffu), (float)(int8_t)(ra[1 + i] >> 8));
    } else {
        scale = f16_bits_to_f32(ra[0]);
        const unsigned u = ra[1] | (ra[2] << 16);
        /* low nibbles: elements 4t..4t+3; high nibbles: 16+4t..16+4t+3 */
        a[0] = pack_bf2((float)((int)(u & 15u) - 8), (float)((int)((u >> 8) & 15u) - 8));
        a[1] = pack_bf2((float)((int)((u >> 16) & 15u) - 8), (float)((int)((u >> 24) & 15u) - 8));
        a[2] = pack_bf2((float)((int)((u >> 4) & 15u) - 8), (float)((int)((u >> 12) & 15u) - 8));
        a[3] = pack_bf2((float)((int)((u >> 20) & 15u) - 8), (float)((int)((u >> 28) & 15u) - 8));
    }
}

/* One 32-element chunk c of every weight row of the tile: A operands from
 * their raw bits (ra: rows g and g + 8 of each 16-row unit), B from the f32
 * activations xv (row g of each n tile, elements o0 .. o0 + 3 and o1 ..
 * o1 + 3), transformed (XK) and split into three bf16 terms. The same
 * instruction order wherever it is called, so every kernel that uses it
 * produces the same sums. */
template <int NT, int WM, int DT, int XK>
__device__ __forceinline__ void mma_chunk(const sh_cu_gemm_desc &d, const unsigned (&ra)[WM][2][5],
                                          const float4 (&xv)[NT][2], const float4 (&x2v)[NT][2], int c, int o0, int o1,
                                          float (&acc)[WM][NT][4], float (&ss)[NT]) {
    constexpr bool kQuant = DT == DT_Q8_0 || DT == DT_Q4_0;
    /* A: rows g (e) and g + 8 (f) of each m tile; mma step s uses pairs 2s, 2s + 1 */
    unsigned e[WM][4], f[WM][4], el[WM][4], fl[WM][4];
    float se[WM], sf[WM];
#pragma unroll
    for (int wm = 0; wm < WM; wm++) {
        decode_a<DT>(ra[wm][0], e[wm], el[wm], se[wm]);
        decode_a<DT>(ra[wm][1], f[wm], fl[wm], sf[wm]);
    }
#pragma unroll
    for (int nt = 0; nt < NT; nt++) {
        /* B: activation row g of this n tile, split into three bf16 terms */
        unsigned bh[4], bm[4], bl[4];
        float4 v0 = xv[nt][0], v1 = xv[nt][1];
        if (XK == 1) {
            v0 = xf4<1>(d, v0, 0, c * 32 + o0, ss[nt]);
            v1 = xf4<1>(d, v1, 0, c * 32 + o1, ss[nt]);
        } else if (XK == 2) {
            v0 = xf4<2>(d, v0, 0, 0, ss[nt], &x2v[nt][0]);
            v1 = xf4<2>(d, v1, 0, 0, ss[nt], &x2v[nt][1]);
        } else if (XK == 3) {
            v0 = xf4<3>(d, v0, 0, 0, ss[nt]);
            v1 = xf4<3>(d, v1, 0, 0, ss[nt]);
        }
        split3(v0.x, v0.y, bh[0], bm[0], bl[0]);
        split3(v0.z, v0.w, bh[1], bm[1], bl[1]);
        split3(v1.x, v1.y, bh[2], bm[2], bl[2]);
        split3(v1.z, v1.w, bh[3], bm[3], bl[3]);
#pragma unroll
        for (int wm = 0; wm < WM; wm++) {
            float tmp[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            float(&cc)[4] = kQuant ? tmp : acc[wm][nt];
#pragma unroll
            for (int s = 0; s < 2; s++) {
                const unsigned a0 = e[wm][2 * s], a1 = f[wm][2 * s], a2 = e[wm][2 * s + 1], a3 = f[wm][2 * s + 1];
                const int b0 = 2 * s, b1 = 2 * s + 1;
                mma_bf16(cc, a0, a1, a2, a3, bh[b0], bh[b1]);
                mma_bf16(cc, a0, a1, a2, a3, bm[b0], bm[b1]);
                mma_bf16(cc, a0, a1, a2, a3, bl[b0], bl[b1]);
                if (DT == DT_F16) {
                    const unsigned l0 = el[wm][2 * s], l1 = fl[wm][2 * s];
                    const unsigned l2 = el[wm][2 * s + 1], l3 = fl[wm][2 * s + 1];
                    mma_bf16(cc, l0, l1, l2, l3, bh[b0], bh[b1]);
                    mma_bf16(cc, l0, l1, l2, l3, bm[b0], bm[b1]);
                }
            }
            if (kQuant) {
                /* rows g (c0, c1) and g + 8 (c2, c3) have their own scales */
                acc[wm][nt][0] = fmaf(se[wm], tmp[0], acc[wm][nt][0]);
                acc[wm][nt][1] = fmaf(se[wm], tmp[1], acc[wm][nt][1]);
                acc[wm][nt][2] = fmaf(sf[wm], tmp[2], acc[wm][nt][2]);
                acc[wm][nt][3] = fmaf(sf[wm], tmp[3], acc[wm][nt][3]);
            }
        }
    }
}

/* The warp's chunks c = warp, warp + 4, ... in batches of U: the A and x
 * loads of a batch are all issued before any is used. XK: 0 plain or an
 * activation computed from x alone, 1 RMS (ss: this lane's sum of squares of
 * row g of each n tile), 2 SILU_MUL (the x2 rows x2r loaded with x). */
template <int NT, int WM, int U, int DT, int XK>
__device__ __forceinline__ void mma_loop(const sh_cu_gemm_desc &d, const unsigned char *const (&wa)[WM][2],
                                         const float *const (&xr)[NT], const float *const (&x2r)[NT],
                                         float (&acc)[WM][NT][4], float (&ss)[NT]) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int t = lane & 3;
    const int o0 = DT == DT_Q4_0 ? 4 * t : 8 * t;
    const int o1 = DT == DT_Q4_0 ? 16 + 4 * t : 8 * t + 4;
    const int n_chunks = d.k >> 5;
    for (int c0 = warp; c0 < n_chunks; c0 += SH_CU_WARPS * U) {
        unsigned ra[U][WM][2][5];
        float4 xv[U][NT][2], x2v[XK == 2 ? U : 1][NT][2];
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int c = min(c0 + SH_CU_WARPS * u, n_chunks - 1);
#pragma unroll
            for (int wm = 0; wm < WM; wm++) {
                load_a_raw<DT>(wa[wm][0], c, t, ra[u][wm][0]);
                load_a_raw<DT>(wa[wm][1], c, t, ra[u][wm][1]);
            }
        }
        pdl_wait(); /* activations next; no-op after the first batch */
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int c = min(c0 + SH_CU_WARPS * u, n_chunks - 1);
#pragma unroll
            for (int nt = 0; nt < NT; nt++) {
                xv[u][nt][0] = __ldg(reinterpret_cast<const float4 *>(xr[nt] + c * 32 + o0));
                xv[u][nt][1] = __ldg(reinterpret_cast<const float4 *>(xr[nt] + c * 32 + o1));
                if (XK == 2) {
                    x2v[XK == 2 ? u : 0][nt][0] = __ldg(reinterpret_cast<const float4 *>(x2r[nt] + c * 32 + o0));
                    x2v[XK == 2 ? u : 0][nt][1] = __ldg(reinterpret_cast<const float4 *>(x2r[nt] + c * 32 + o1));
                }
            }
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            if (c0 + SH_CU_WARPS * u >= n_chunks) break;
            mma_chunk<NT, WM, DT, XK>(d, ra[u], xv[u], x2v[XK == 2 ? u : 0], c0 + SH_CU_WARPS * u, o0, o1, acc, ss);
        }
    }
}

template <int NT, int WM, int U, int XK>
__device__ __forceinline__ void mma_dtype(const sh_cu_gemm_desc &d, const unsigned char *const (&wa)[WM][2],
                                          const float *const (&xr)[NT], const float *const (&x2r)[NT],
                                          float (&acc)[WM][NT][4], float (&ss)[NT]) {
    switch (d.dtype) {
    case DT_BF16: mma_loop<NT, WM, U, DT_BF16, XK>(d, wa, xr, x2r, acc, ss); break;
    case DT_F16: mma_loop<NT, WM, U, DT_F16, XK>(d, wa, xr, x2r, acc, ss); break;
    case DT_Q8_0: mma_loop<NT, WM, U, DT_Q8_0, XK>(d, wa, xr, x2r, acc, ss); break;
    case DT_Q4_0: mma_loop<NT, WM, U, DT_Q4_0, XK>(d, wa, xr, x2r, acc, ss); break;
    default: break;
    }
}

template <int NT, int WM>
__device__ __forceinline__ void mma_zero(float (&acc)[WM][NT][4]) {
#pragma unroll
    for (int wm = 0; wm < WM; wm++)
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int j = 0; j < 4; j++) acc[wm][nt][j] = 0.0f;
}

/* The block's tile [n0, n0 + 16 WM) x [m0, m0 + 8 NT): the partial sums of
 * the 4 warps added in warp order through shared memory (red), then scaled
 * (RMS), biased and stored with the group's epilogue. Every thread calls it. */
template <int NT, int WM, int SMEM, int XK>
__device__ __forceinline__ void mma_store_tile(const sh_cu_gemm_desc &d, int n0, int m0, const float (&acc)[WM][NT][4],
                                               const float (&ss)[NT], float *red) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = lane >> 2;
    const bool pair = epi_pair(d);
    pdl_wait(); /* warps without chunks have not waited yet */
    /* partials of the 4 warps: red[warp][slot][lane], slot = (wm NT + nt) 4 + j */
    constexpr int kPer = WM * NT * 4 * 32;
    static_assert(SH_CU_WARPS * kPer <= SMEM, "MMA partials exceed shared memory");
#pragma unroll
    for (int wm = 0; wm < WM; wm++)
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int j = 0; j < 4; j++) red[warp * kPer + ((wm * NT + nt) * 4 + j) * 32 + lane] = acc[wm][nt][j];
    /* RMS: row sums of the 4 lanes of a row, then of the 4 warps (below) */
    float *ssh = red + SMEM; /* [warp][8 NT] */
    static_assert(SH_CU_WARPS * 8 * NT <= kSsFloats, "RMS sums exceed their shared tail");
    if (XK == 1) {
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
            float v = ss[nt];
            v += __shfl_xor_sync(0xffffffffu, v, 1);
            v += __shfl_xor_sync(0xffffffffu, v, 2);
            if ((lane & 3) == 0) ssh[warp * 8 * NT + nt * 8 + g] = v;
        }
    }
    __syncthreads();
    if (pair) {
        /* slots j = 0, 1 (first rows g of the pairs) with j + 2 (their second rows) */
        for (int i = threadIdx.x; i < kPer / 2; i += kThreads) {
            const int ln = i & 31, q = i >> 5, j = q & 1, wn = q >> 1;
            const int s0 = ((wn * 4 + j) << 5) + ln, s1 = s0 + 64;
            const float vg = red[s0] + red[kPer + s0] + red[2 * kPer + s0] + red[3 * kPer + s0];
            const float vu = red[s1] + red[kPer + s1] + red[2 * kPer + s1] + red[3 * kPer + s1];
            const int nt = wn % NT, wm = wn / NT;
            const int lm = nt * 8 + (ln & 3) * 2 + j;
            float sc = 1.0f;
            if (XK == 1)
                sc = xf_rstd(d, ssh[lm] + ssh[8 * NT + lm] + ssh[16 * NT + lm] + ssh[24 * NT + lm]);
            store_pair(d, m0 + lm, n0 + wm * 8 + (ln >> 2), vg * sc, vu * sc);
        }
        return;
    }
    for (int i = threadIdx.x; i < kPer; i += kThreads) {
        const float v = red[i] + red[kPer + i] + red[2 * kPer + i] + red[3 * kPer + i];
        const int ln = i & 31, slot = i >> 5;
        const int j = slot & 3, nt = (slot >> 2) % NT, wm = (slot >> 2) / NT;
        const int row = n0 + wm * 16 + (ln >> 2) + ((j & 2) ? 8 : 0);
        const int lm = nt * 8 + (ln & 3) * 2 + (j & 1);
        float sc = 1.0f;
        if (XK == 1)
            sc = xf_rstd(d, ssh[lm] + ssh[8 * NT + lm] + ssh[16 * NT + lm] + ssh[24 * NT + lm]);
        store_y(d, m0 + lm, row, v * sc);
    }
}

/* Block tile: weight rows [n0, n0 + 16 WM) x activation rows [m0, m0 + 8 NT). */
template <int NT, int WM, int U, int SMEM, int XK>
__device__ __forceinline__ void gemm_mma_body(const sh_cu_gemm_desc &d, int local, float *red) {
    const int g = (threadIdx.x & 31) >> 2;
    const bool pair = epi_pair(d);
    const int urows = pair ? 8 : 16; /* output rows (pairs) per 16-row unit */
    const int n0 = (local % d.tiles_n) * urows * WM;
    const int m0 = (local / d.tiles_n) * 8 * NT;

    const unsigned char *wa[WM][2];
#pragma unroll
    for (int wm = 0; wm < WM; wm++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            wa[wm][h] = pair ? pair_row(d, n0 + wm * 8 + g, h)
                             : static_cast<const unsigned char *>(d.w) +
                                   (int64_t)min(n0 + wm * 16 + g + 8 * h, d.n - 1) * d.row_bytes;
        }
    const float *xr[NT], *x2r[NT];
    float ss[NT];
#pragma unroll
    for (int nt = 0; nt < NT; nt++) {
        const int m = min(m0 + nt * 8 + g, d.m - 1);
        xr[nt] = d.x + (int64_t)m * d.x_stride;
        x2r[nt] = d.x2 ? d.x2 + (int64_t)m * d.x2_stride : xr[nt];
        ss[nt] = 0.0f;
    }

    float acc[WM][NT][4];
    mma_zero(acc);

    mma_dtype<NT, WM, U, XK>(d, wa, xr, x2r, acc, ss);

    mma_store_tile<NT, WM, SMEM, XK>(d, n0, m0, acc, ss, red);
}

/* ---- row norm ---------------------------------------------------------- */

template <bool BLOCK>
__device__ __forceinline__ float nrm_sum(float v, float *red) { return BLOCK ? block_sum(v, red) : warp_sum(v); }

/* Row m of y normalised into nrm_out as norm_kernel does, by the whole block
 * (BLOCK) or one warp. Rows of up to NV elements per thread stay in
 * registers; every thread touches the same columns in each pass, so nrm_out
 * may be y. y is read from L2 (__ldcg): other blocks wrote it. */
template <bool BLOCK>
__device__ __forceinline__ void nrm_row(const sh_cu_gemm_desc *dp, int m, float *red) {
    constexpr int W = BLOCK ? kThreads : 32, NV = BLOCK ? 8 : 32;
    const int t = BLOCK ? threadIdx.x : threadIdx.x & 31;
    const int n = dp->n;
    const bool layer = dp->nrm_kind == 2, cached = n <= NV * W;
    const float *y = dp->y + (int64_t)m * dp->y_stride;
    float *out = dp->nrm_out + (int64_t)m * dp->nrm_stride;
    const float *gamma = dp->nrm_gamma, *beta = layer ? dp->nrm_beta : nullptr;
    float v[NV], s = 0.0f;
    if (cached) {
#pragma unroll
        for (int i = 0; i < NV; i++) v[i] = t + i * W < n ? __ldcg(y + t + i * W) : 0.0f;
#pragma unroll
        for (int i = 0; i < NV; i++) s += layer ? v[i] : v[i] * v[i];
    } else {
        for (int c = t; c < n; c += W) {
            const float e = __ldcg(y + c);
            s += layer ? e : e * e;
        }
    }
    s = nrm_sum<BLOCK>(s, red);
    float mean = 0.0f, var;
    if (!layer) {
        var = s / (float)n;
    } else {
        mean = s / (float)n;
        float s2 = 0.0f;
        if (cached) {
#pragma unroll
            for (int i = 0; i < NV; i++) {
                const float e = v[i] - mean;
                s2 += t + i * W < n ? e * e : 0.0f;
            }
        } else {
            for (int c = t; c < n; c += W) {
                const float e = __ldcg(y + c) - mean;
                s2 += e * e;
            }
        }
        var = nrm_sum<BLOCK>(s2, red) / (float)n;
    }
    const float inv = 1.0f / sqrtf(var + dp->nrm_eps);
    if (cached) {
#pragma unroll
        for (int i = 0; i < NV; i++) {
            const int c = t + i * W;
            if (c < n) out[c] = (v[i] - mean) * inv * (gamma ? __ldg(gamma + c) : 1.0f) + (beta ? __ldg(beta + c) : 0.0f);
        }
    } else {
        for (int c = t; c < n; c += W)
            out[c] = (__ldcg(y + c) - mean) * inv * (gamma ? __ldg(gamma + c) : 1.0f) + (beta ? __ldg(beta + c) : 0.0f);
    }
}

/* Called by every thread of a block once its outputs are stored: the last
 * block of m tile `tile` to arrive normalises the tile's rows [r0, r1) —
 * the whole block per row when there are fewer rows than warps, else a
 * warp per row. Not inlined: it reads the descriptor from global memory and
 * keeps its registers out of the main loop's budget. */
__device__ __noinline__ void gemm_row_norm(const sh_cu_gemm_desc *dp, int tile, int r0, int r1, float *red) {
    int32_t *count = dp->nrm_count + tile;
    if (!split_arrive(count, dp->nrm_per)) return;
    if (r1 - r0 < SH_CU_WARPS) {
        for (int m = r0; m < r1; m++) nrm_row<true>(dp, m, red);
    } else {
        for (int m = r0 + (threadIdx.x >> 5); m < r1; m += SH_CU_WARPS) nrm_row<false>(dp, m, red);
    }
    if (threadIdx.x == 0) *count = 0; /* ready for the next launch */
}

/* ---- the kernel --------------------------------------------------------- */

/* For every group g: y_g (+)= x_g W_g^T + b_g; blocks of a group are its
 * SIMT row tiles or MMA tiles, as its descriptor's path says.
 *
 * MMA tile configurations (C, chosen per launch by the host; see
 * sh_cu_mma_wm/nt): C = 0 is the wide tile, 16 * WM0 weight rows x 8 * NT0
 * activation rows, for launches with work for many waves (LM heads); the
 * others trade tile width against the number of blocks so a small layer
 * reaches every SM, each warp issuing the loads of U chunks at once.
 * Blocks per SM the register budget must allow: small M is latency-bound,
 * so it trades registers for resident warps (S = 1: 6 blocks of 16 or 4
 * rows; S = 2..8: 3 blocks of 32 rows; narrow tiles: 3; 32 or 64 weight
 * rows: 2). With an x transform (XK > 0) the S = 1 kernels allow 3 blocks:
 * their extra registers would spill at 6, and M = 1 layers have few blocks. */
__host__ __device__ constexpr int min_blocks(int s, int c, int xk) {
    return s == 1 ? (xk ? 3 : 6) : c >= 3 ? 2 : c > 0 ? 3 : s <= 8 ? 3 : 1;
}

template <int S, int C, int XK>
__global__ void __launch_bounds__(kThreads, min_blocks(S, C, XK))
    gemm_kernel(const sh_cu_gemm_desc *__restrict__ descs, const int32_t *__restrict__ starts, int n_groups) {
    constexpr int SMEM = smem_floats(S);
    __shared__ __align__(16) float smem[SMEM + kSsFloats];
    pdl_trigger();
    if (sh_block_idle(starts, n_groups)) return; /* capacity padding */
    const int g = sh_find_group(starts, n_groups, blockIdx.x);
    const int local = blockIdx.x - __ldg(starts + g);
    const sh_cu_gemm_desc d = descs[g];
    constexpr int MT = S < 8 ? S : 8;
    constexpr int R = S == 1 && C == 1 ? 1 : S == 1 && C == 2 ? 2 : 4; /* = sh_cu_simt_r */
    constexpr int NT0 = S <= 8 ? 1 : S / 8;
    constexpr int NT2 = NT0 < 2 ? NT0 : 2;
    constexpr int NT = C == 0 ? NT0 : C == 2 ? 1 : NT2;                          /* = sh_cu_mma_nt */
    constexpr int WM = C == 0 ? (S == 1 ? 1 : 2) : C == 3 ? 2 : C == 4 ? 4 : 1; /* = sh_cu_mma_wm */
    /* MMA chunks per load batch */
    constexpr int U = C == 4 ? 2 : C > 0 ? 4 : S == 1 ? 2 : NT <= 2 ? 4 : NT == 4 ? 2 : 1;
    const bool mma = d.path == SH_CU_PATH_MMA;
    if (mma) gemm_mma_body<NT, WM, U, SMEM, XK>(d, local, smem);
    else gemm_simt_body<MT, R, SMEM, XK>(d, local, smem);
    if (d.nrm_kind) {
        /* SIMT blocks cover every row of the group, MMA blocks one m tile */
        const int tile = mma ? local / d.tiles_n : 0;
        const int r0 = tile * 8 * NT, r1 = mma ? min(r0 + 8 * NT, d.m) : d.m;
        gemm_row_norm(descs + g, tile, r0, r1, smem);
    }
}

} // namespace

/* The launch entry of the kernels of transform class XK: variant = S | C << 8 | XK << 12. */
#define SH_CU_GEMM_LAUNCHER(NAME, XK)                                                                         \
    extern "C" cudaError_t NAME(cudaStream_t s, const sh_cu_launch_args *a) {                                 \
        const sh_cu_gemm_desc *desc = static_cast<const sh_cu_gemm_desc *>(a->desc);                          \
        switch (a->variant & 0xfff) {                                                                         \
            SH_CU_GEMM_CASE(1, 0, XK) SH_CU_GEMM_CASE(1, 1, XK) SH_CU_GEMM_CASE(1, 2, XK)                     \
            SH_CU_GEMM_CASE(2, 0, XK) SH_CU_GEMM_CASE(2, 2, XK) SH_CU_GEMM_CASE(2, 4, XK)                     \
            SH_CU_GEMM_CASE(4, 0, XK) SH_CU_GEMM_CASE(4, 2, XK) SH_CU_GEMM_CASE(4, 4, XK)                     \
            SH_CU_GEMM_CASE(8, 0, XK) SH_CU_GEMM_CASE(8, 2, XK) SH_CU_GEMM_CASE(8, 4, XK)                     \
            SH_CU_GEMM_CASE(16, 0, XK) SH_CU_GEMM_CASE(16, 1, XK) SH_CU_GEMM_CASE(16, 2, XK)                  \
            SH_CU_GEMM_CASE(16, 3, XK) SH_CU_GEMM_CASE(16, 4, XK)                                             \
            SH_CU_GEMM_CASE(32, 0, XK) SH_CU_GEMM_CASE(32, 1, XK) SH_CU_GEMM_CASE(32, 2, XK)                  \
            SH_CU_GEMM_CASE(32, 3, XK) SH_CU_GEMM_CASE(32, 4, XK)                                             \
            SH_CU_GEMM_CASE(64, 0, XK) SH_CU_GEMM_CASE(64, 1, XK) SH_CU_GEMM_CASE(64, 2, XK)                  \
            SH_CU_GEMM_CASE(64, 3, XK) SH_CU_GEMM_CASE(64, 4, XK)                                             \
        default: return cudaErrorInvalidValue;                                                                \
        }                                                                                                     \
    }
#define SH_CU_GEMM_CASE(S, C, XK)                                                                             \
    case S | (C << 8):                                                                                        \
        return sh_cu_launch_k(gemm_kernel<S, C, XK>, a->n_blocks, kThreads, s, a->pdl, desc, a->starts,      \
                              a->n_groups);

/* one per translation unit (gemm.cu, gemm_rms.cu, gemm_silu.cu, gemm_gelu.cu, gemm_ln.cu) */
extern "C" cudaError_t sh_cu_launch_gemm_rms(cudaStream_t s, const sh_cu_launch_args *a);
extern "C" cudaError_t sh_cu_launch_gemm_ln(cudaStream_t s, const sh_cu_launch_args *a);
extern "C" cudaError_t sh_cu_launch_gemm_silu(cudaStream_t s, const sh_cu_launch_args *a);
extern "C" cudaError_t sh_cu_launch_gemm_gelu(cudaStream_t s, const sh_cu_launch_args *a);

#endif
