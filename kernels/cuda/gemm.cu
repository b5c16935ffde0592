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
 *  Within a 32-element chunk the k order fed to the mma is permuted so that
 *  each lane's operands come from contiguous memory: lane (g, t) holds
 *  elements [8t, 8t + 8) of weight rows g and g + 8 and of activation row g
 *  (q4_0: [4t, 4t + 4) and [16 + 4t, 16 + 4t + 4), the nibble layout); the
 *  same permutation on both operands leaves the dot product unchanged.
 */
#include "cuda_common.cuh"

namespace {

constexpr int kThreads = SH_CU_WARPS * 32;
constexpr int kSmemFloats = 8192; /* 32 KB: SIMT activations or MMA partials */

/* ---- loads -------------------------------------------------------------- */

/* 16 bytes of streamed weights: read-only path, not kept in L1. */
__device__ __forceinline__ uint4 ld_stream16(const void *p) {
    uint4 v;
    asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
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

/* ---- SIMT body ---------------------------------------------------------- */

/* acc[r][m] += sum over this K chunk of w_r[k] x_m[k]; 16-byte weight loads. */
template <int MT, int R, int DT>
__device__ __forceinline__ void simt_vec(const unsigned char *const (&wrow)[R], int k0, int kc,
                                         const float *xs, int kcap, float (&acc)[R][MT], int lane) {
    constexpr int ES = DT == DT_F32 ? 4 : 2;
    constexpr int V = 16 / ES;
#pragma unroll 2
    for (int kk = lane * V; kk < kc; kk += 32 * V) {
        float w[R][V];
#pragma unroll
        for (int r = 0; r < R; r++) unpack16<DT>(ld_stream16(wrow[r] + (int64_t)(k0 + kk) * ES), w[r]);
#pragma unroll
        for (int m = 0; m < MT; m++) {
            float xv[V];
#pragma unroll
            for (int j = 0; j < V / 4; j++) {
                const float4 t = *reinterpret_cast<const float4 *>(xs + m * kcap + kk + 4 * j);
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

/* Same, one element per lane per step (unaligned rows or odd K). */
template <int MT, int R>
__device__ __forceinline__ void simt_scalar(const unsigned char *const (&wrow)[R], int dtype, int k0,
                                            int kc, const float *xs, int kcap, float (&acc)[R][MT],
                                            int lane) {
    for (int kk = lane; kk < kc; kk += 32) {
        float w[R];
#pragma unroll
        for (int r = 0; r < R; r++) w[r] = load_weight_elem(wrow[r], dtype, k0 + kk);
#pragma unroll
        for (int m = 0; m < MT; m++) {
            const float xv = xs[m * kcap + kk];
#pragma unroll
            for (int r = 0; r < R; r++) acc[r][m] = fmaf(w[r], xv, acc[r][m]);
        }
    }
}

/* q8_0 / q4_0: each lane takes 4 consecutive elements of a 32-element block
 * per step (8 lanes per block), so the activation reads stay contiguous. */
template <int MT, int R, int DT>
__device__ __forceinline__ void simt_quant(const unsigned char *const (&wrow)[R], int k0, int kc,
                                           const float *xs, int kcap, float (&acc)[R][MT], int lane) {
    constexpr int BB = DT == DT_Q8_0 ? 34 : 18;
#pragma unroll 2
    for (int kk = lane * 4; kk < kc; kk += 128) {
        const int kg = k0 + kk;
        const int blk = kg >> 5, within = kg & 31;
        float w[R][4];
#pragma unroll
        for (int r = 0; r < R; r++) {
            const unsigned char *p = wrow[r] + (int64_t)blk * BB;
            const float d = f16_bits_to_f32(ldg_u16(p));
            if (DT == DT_Q8_0) {
                const unsigned u0 = ldg_u16(p + 2 + within), u1 = ldg_u16(p + 4 + within);
                w[r][0] = d * (float)(int8_t)(u0 & 0xffu);
                w[r][1] = d * (float)(int8_t)(u0 >> 8);
                w[r][2] = d * (float)(int8_t)(u1 & 0xffu);
                w[r][3] = d * (float)(int8_t)(u1 >> 8);
            } else {
                const int off = within & 15, sh = within >= 16 ? 4 : 0;
                const unsigned u = ldg_u16(p + 2 + off) | (ldg_u16(p + 4 + off) << 16);
#pragma unroll
                for (int j = 0; j < 4; j++) w[r][j] = d * (float)((int)((u >> (8 * j + sh)) & 15u) - 8);
            }
        }
#pragma unroll
        for (int m = 0; m < MT; m++) {
            const float4 t = *reinterpret_cast<const float4 *>(xs + m * kcap + kk);
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

/* y[m0 + m][row] (+)= v + bias[row] for the rows/columns that exist. */
__device__ __forceinline__ void store_y(const sh_cu_gemm_desc &d, int m, int row, float v) {
    if (row >= d.n || m >= d.m) return;
    if (d.bias) v += __ldg(d.bias + row);
    float *p = d.y + (int64_t)m * d.y_stride + row;
    *p = d.accumulate ? *p + v : v;
}

/* Block = 4 warps x R weight rows; all M rows of the group in passes of MT. */
template <int MT, int R>
__device__ __forceinline__ void gemm_simt_body(const sh_cu_gemm_desc &d, int local, float *xs) {
    constexpr int KC = kSmemFloats / MT; /* K chunk staged per pass */
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int row0 = local * (SH_CU_WARPS * R) + warp * R;
    const unsigned char *wrow[R];
#pragma unroll
    for (int r = 0; r < R; r++)
        wrow[r] = static_cast<const unsigned char *>(d.w) + (int64_t)min(row0 + r, d.n - 1) * d.row_bytes;

    for (int m0 = 0; m0 < d.m; m0 += MT) {
        float acc[R][MT];
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
                    for (int kk = threadIdx.x; kk < kc; kk += kThreads) dst[kk] = src[kk];
                } else {
                    for (int kk = threadIdx.x; kk < kc; kk += kThreads) dst[kk] = 0.0f;
                }
            }
            __syncthreads();
            if (row0 < d.n) {
                switch (d.dtype) {
                case DT_F32:
                    if (d.vec) simt_vec<MT, R, DT_F32>(wrow, k0, kc, xs, KC, acc, lane);
                    else simt_scalar<MT, R>(wrow, d.dtype, k0, kc, xs, KC, acc, lane);
                    break;
                case DT_F16:
                    if (d.vec) simt_vec<MT, R, DT_F16>(wrow, k0, kc, xs, KC, acc, lane);
                    else simt_scalar<MT, R>(wrow, d.dtype, k0, kc, xs, KC, acc, lane);
                    break;
                case DT_BF16:
                    if (d.vec) simt_vec<MT, R, DT_BF16>(wrow, k0, kc, xs, KC, acc, lane);
                    else simt_scalar<MT, R>(wrow, d.dtype, k0, kc, xs, KC, acc, lane);
                    break;
                case DT_Q8_0: simt_quant<MT, R, DT_Q8_0>(wrow, k0, kc, xs, KC, acc, lane); break;
                case DT_Q4_0: simt_quant<MT, R, DT_Q4_0>(wrow, k0, kc, xs, KC, acc, lane); break;
                default: break;
                }
            }
        }
        /* every lane ends with every sum; lane (r * MT + m) % 32 stores it */
#pragma unroll
        for (int r = 0; r < R; r++)
#pragma unroll
            for (int m = 0; m < MT; m++) {
                const float v = warp_sum(acc[r][m]);
                if (lane == ((r * MT + m) & 31)) store_y(d, m0 + m, row0 + r, v);
            }
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

/* The 8 weights of lane (g, t) in one 32-element chunk of one row, as four
 * bf16 pairs (exact). q: also returns the block scale. */
template <int DT>
__device__ __forceinline__ void load_a_quant(const unsigned char *row, int chunk, int t, unsigned (&a)[4],
                                             float &scale) {
    if (DT == DT_Q8_0) {
        const unsigned char *p = row + (int64_t)chunk * 34;
        scale = f16_bits_to_f32(ldg_u16(p));
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const unsigned u = ldg_u16(p + 2 + 8 * t + 2 * i);
            a[i] = pack_bf2((float)(int8_t)(u & 0xffu), (float)(int8_t)(u >> 8));
        }
    } else {
        const unsigned char *p = row + (int64_t)chunk * 18;
        scale = f16_bits_to_f32(ldg_u16(p));
        const unsigned u = ldg_u16(p + 2 + 4 * t) | (ldg_u16(p + 4 + 4 * t) << 16);
        /* low nibbles: elements 4t..4t+3; high nibbles: 16+4t..16+4t+3 */
        a[0] = pack_bf2((float)((int)(u & 15u) - 8), (float)((int)((u >> 8) & 15u) - 8));
        a[1] = pack_bf2((float)((int)((u >> 16) & 15u) - 8), (float)((int)((u >> 24) & 15u) - 8));
        a[2] = pack_bf2((float)((int)((u >> 4) & 15u) - 8), (float)((int)((u >> 12) & 15u) - 8));
        a[3] = pack_bf2((float)((int)((u >> 20) & 15u) - 8), (float)((int)((u >> 28) & 15u) - 8));
    }
}

template <int NT, int WM, int DT>
__device__ __forceinline__ void mma_loop(const sh_cu_gemm_desc &d, const unsigned char *const (&wa)[WM][2],
                                         const float *const (&xr)[NT], float (&acc)[WM][NT][4]) {
    constexpr bool kQuant = DT == DT_Q8_0 || DT == DT_Q4_0;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int t = lane & 3;
    const int o0 = DT == DT_Q4_0 ? 4 * t : 8 * t;
    const int o1 = DT == DT_Q4_0 ? 16 + 4 * t : 8 * t + 4;
    const int n_chunks = d.k >> 5;
#pragma unroll 2
    for (int c = warp; c < n_chunks; c += SH_CU_WARPS) {
        const int kb = c * 32;
        /* A: rows g (e) and g + 8 (f) of each m tile as four bf16 pairs;
         * pair i holds permuted k (2i, 2i + 1); mma step s uses pairs 2s, 2s + 1.
         * f16 weights: e/f hold the hi terms and el/fl the lo terms. */
        unsigned e[WM][4], f[WM][4], el[WM][4], fl[WM][4];
        float se[WM], sf[WM];
#pragma unroll
        for (int wm = 0; wm < WM; wm++) {
            if (kQuant) {
                load_a_quant<DT>(wa[wm][0], c, t, e[wm], se[wm]);
                load_a_quant<DT>(wa[wm][1], c, t, f[wm], sf[wm]);
            } else {
                const uint4 ue = ld_stream16(wa[wm][0] + (int64_t)(kb + 8 * t) * 2);
                const uint4 uf = ld_stream16(wa[wm][1] + (int64_t)(kb + 8 * t) * 2);
                const unsigned ea[4] = {ue.x, ue.y, ue.z, ue.w}, fa[4] = {uf.x, uf.y, uf.z, uf.w};
#pragma unroll
                for (int i = 0; i < 4; i++) {
                    if (DT == DT_F16) {
                        split_f16(ea[i], e[wm][i], el[wm][i]);
                        split_f16(fa[i], f[wm][i], fl[wm][i]);
                    } else {
                        e[wm][i] = ea[i];
                        f[wm][i] = fa[i];
                    }
                }
            }
        }
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
            /* B: activation row g of this n tile, split into three bf16 terms */
            unsigned bh[4], bm[4], bl[4];
            const float4 v0 = __ldg(reinterpret_cast<const float4 *>(xr[nt] + kb + o0));
            const float4 v1 = __ldg(reinterpret_cast<const float4 *>(xr[nt] + kb + o1));
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
                    const unsigned b0 = 2 * s, b1 = 2 * s + 1;
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
}

/* Block tile: weight rows [n0, n0 + 16 WM) x activation rows [m0, m0 + 8 NT). */
template <int NT, int WM>
__device__ __forceinline__ void gemm_mma_body(const sh_cu_gemm_desc &d, int local, float *red) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = lane >> 2;
    const int n0 = (local % d.tiles_n) * 16 * WM;
    const int m0 = (local / d.tiles_n) * 8 * NT;

    const unsigned char *wa[WM][2];
#pragma unroll
    for (int wm = 0; wm < WM; wm++)
#pragma unroll
        for (int h = 0; h < 2; h++)
            wa[wm][h] = static_cast<const unsigned char *>(d.w) +
                        (int64_t)min(n0 + wm * 16 + g + 8 * h, d.n - 1) * d.row_bytes;
    const float *xr[NT];
#pragma unroll
    for (int nt = 0; nt < NT; nt++) xr[nt] = d.x + (int64_t)min(m0 + nt * 8 + g, d.m - 1) * d.x_stride;

    float acc[WM][NT][4];
#pragma unroll
    for (int wm = 0; wm < WM; wm++)
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int j = 0; j < 4; j++) acc[wm][nt][j] = 0.0f;

    switch (d.dtype) {
    case DT_BF16: mma_loop<NT, WM, DT_BF16>(d, wa, xr, acc); break;
    case DT_F16: mma_loop<NT, WM, DT_F16>(d, wa, xr, acc); break;
    case DT_Q8_0: mma_loop<NT, WM, DT_Q8_0>(d, wa, xr, acc); break;
    case DT_Q4_0: mma_loop<NT, WM, DT_Q4_0>(d, wa, xr, acc); break;
    default: break;
    }

    /* partials of the 4 warps: red[warp][slot][lane], slot = (wm NT + nt) 4 + j */
    constexpr int kPer = WM * NT * 4 * 32;
    static_assert(SH_CU_WARPS * kPer <= kSmemFloats, "MMA partials exceed shared memory");
#pragma unroll
    for (int wm = 0; wm < WM; wm++)
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int j = 0; j < 4; j++) red[warp * kPer + ((wm * NT + nt) * 4 + j) * 32 + lane] = acc[wm][nt][j];
    __syncthreads();
    for (int i = threadIdx.x; i < kPer; i += kThreads) {
        const float v = red[i] + red[kPer + i] + red[2 * kPer + i] + red[3 * kPer + i];
        const int ln = i & 31, slot = i >> 5;
        const int j = slot & 3, nt = (slot >> 2) % NT, wm = (slot >> 2) / NT;
        const int row = n0 + wm * 16 + (ln >> 2) + ((j & 2) ? 8 : 0);
        const int m = m0 + nt * 8 + (ln & 3) * 2 + (j & 1);
        store_y(d, m, row, v);
    }
}

/* ---- the kernel --------------------------------------------------------- */

/* For every group g: y_g (+)= x_g W_g^T + b_g; blocks of a group are its
 * SIMT row tiles or MMA tiles, as its descriptor's path says. */
template <int S>
__global__ void __launch_bounds__(kThreads)
    gemm_kernel(const sh_cu_gemm_desc *__restrict__ descs, const int32_t *__restrict__ starts, int n_groups) {
    __shared__ __align__(16) float smem[kSmemFloats];
    const int g = sh_find_group(starts, n_groups, blockIdx.x);
    const int local = blockIdx.x - __ldg(starts + g);
    const sh_cu_gemm_desc d = descs[g];
    constexpr int MT = S < 8 ? S : 8;
    constexpr int R = S >= 8 ? 4 : 2;
    constexpr int NT = S <= 8 ? 1 : S / 8;
    constexpr int WM = S <= 8 ? 1 : 2;
    if (d.path == SH_CU_PATH_MMA) gemm_mma_body<NT, WM>(d, local, smem);
    else gemm_simt_body<MT, R>(d, local, smem);
}

} // namespace

extern "C" cudaError_t sh_cu_launch_gemm(cudaStream_t s, const sh_cu_launch_args *a) {
    const sh_cu_gemm_desc *desc = static_cast<const sh_cu_gemm_desc *>(a->desc);
    const dim3 grid(a->n_blocks), block(kThreads);
    switch (a->variant) {
    case 1: gemm_kernel<1><<<grid, block, 0, s>>>(desc, a->starts, a->n_groups); break;
    case 2: gemm_kernel<2><<<grid, block, 0, s>>>(desc, a->starts, a->n_groups); break;
    case 4: gemm_kernel<4><<<grid, block, 0, s>>>(desc, a->starts, a->n_groups); break;
    case 8: gemm_kernel<8><<<grid, block, 0, s>>>(desc, a->starts, a->n_groups); break;
    case 16: gemm_kernel<16><<<grid, block, 0, s>>>(desc, a->starts, a->n_groups); break;
    case 32: gemm_kernel<32><<<grid, block, 0, s>>>(desc, a->starts, a->n_groups); break;
    case 64: gemm_kernel<64><<<grid, block, 0, s>>>(desc, a->starts, a->n_groups); break;
    default: return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}

extern "C" cudaError_t sh_cu_probe_kernels(void) {
    cudaFuncAttributes attr;
    return cudaFuncGetAttributes(&attr, gemm_kernel<1>);
}
