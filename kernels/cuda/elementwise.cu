/* Grouped row-wise ops: embedding gather, norm (+ residual add), RoPE, KV
 * write, activation, mean pooling. One launch per call; each block finds its
 * group from the starts table and handles one row (pooling: one group). */
#include <limits.h>
#include <math.h>

#include "cuda_common.cuh"

namespace {

constexpr int kRowThreads = 256;

/* ---- get_rows ----------------------------------------------------------- */

/* out[r, c] (+)= dequant(W[ids[r], c]); an id outside [0, n_out) gives a zero
 * row and raises SH_CU_ERR_ROW_ID. */
__global__ void __launch_bounds__(kRowThreads)
    get_rows_kernel(const sh_cu_get_rows_desc *__restrict__ descs, const int32_t *__restrict__ starts, int n,
                    int *err) {
    if (sh_block_idle(starts, n)) return; /* capacity padding */
    const int g = sh_find_group(starts, n, blockIdx.x);
    const sh_cu_get_rows_desc d = descs[g];
    pdl_trigger();
    pdl_wait(); /* everything below reads or writes what earlier kernels may touch */
    const int r = blockIdx.x - __ldg(starts + g);
    const int id = __ldg(d.ids + r);
    const bool ok = id >= 0 && id < d.n_out;
    if (!ok && threadIdx.x == 0) atomicOr(err, SH_CU_ERR_ROW_ID);
    const unsigned char *row = static_cast<const unsigned char *>(d.w) + (int64_t)(ok ? id : 0) * d.row_bytes;
    float *out = d.out + (int64_t)r * d.stride;
    for (int c = threadIdx.x; c < d.d; c += kRowThreads) {
        const float v = ok ? load_weight_elem(row, d.dtype, c) : 0.0f;
        out[c] = d.accumulate ? out[c] + v : v;
    }
}

/* ---- norm --------------------------------------------------------------- */

constexpr int kNB = 8; /* elements a thread holds in registers (rows <= kNB * kRowThreads) */

/* x += add (written back); RMS: out = x / sqrt(mean(x^2) + eps) * gamma;
 * LAYER: out = (x - mean) / sqrt(var + eps) * gamma + beta. Rows of up to
 * kNB * kRowThreads columns stay in registers: gamma and beta are loaded
 * before the wait for the previous kernel, x and add in one batch after it.
 * Longer rows take the same steps in passes over memory. Each thread
 * touches the same columns in every pass, so out may alias x. */
__global__ void __launch_bounds__(kRowThreads)
    norm_kernel(const sh_cu_norm_desc *__restrict__ descs, const int32_t *__restrict__ starts, int n_groups) {
    __shared__ float red[32];
    if (sh_block_idle(starts, n_groups)) return; /* capacity padding */
    const int g = sh_find_group(starts, n_groups, blockIdx.x);
    const sh_cu_norm_desc d = descs[g];
    pdl_trigger();
    const int r = blockIdx.x - __ldg(starts + g);
    const int n = d.n, tid = threadIdx.x;
    const bool layer = d.kind == 1;
    float *x = d.x + (int64_t)r * d.x_stride;
    const float *add = d.add ? d.add + (int64_t)r * d.add_stride : nullptr;
    float *out = d.out + (int64_t)r * d.out_stride;

    if (n <= kNB * kRowThreads) {
        float gm[kNB], bt[kNB], v[kNB];
#pragma unroll
        for (int i = 0; i < kNB; i++) {
            const int c = tid + i * kRowThreads;
            gm[i] = d.gamma && c < n ? __ldg(d.gamma + c) : 1.0f;
            bt[i] = layer && d.beta && c < n ? __ldg(d.beta + c) : 0.0f;
        }
        pdl_wait(); /* x and add come from earlier kernels */
#pragma unroll
        for (int i = 0; i < kNB; i++) {
            const int c = tid + i * kRowThreads;
            v[i] = c < n ? x[c] : 0.0f;
        }
        if (add) {
            float av[kNB];
#pragma unroll
            for (int i = 0; i < kNB; i++) {
                const int c = tid + i * kRowThreads;
                av[i] = c < n ? add[c] : 0.0f;
            }
#pragma unroll
            for (int i = 0; i < kNB; i++) {
                const int c = tid + i * kRowThreads;
                v[i] += av[i];
                if (c < n) x[c] = v[i];
            }
        }
        float s = 0.0f;
#pragma unroll
        for (int i = 0; i < kNB; i++) s += layer ? v[i] : v[i] * v[i];
        s = block_sum(s, red);
        float mean = 0.0f, var;
        if (!layer) {
            var = s / (float)n;
        } else {
            mean = s / (float)n;
            float s2 = 0.0f;
#pragma unroll
            for (int i = 0; i < kNB; i++) {
                const int c = tid + i * kRowThreads;
                const float t = v[i] - mean;
                s2 += c < n ? t * t : 0.0f;
            }
            var = block_sum(s2, red) / (float)n;
        }
        const float inv = 1.0f / sqrtf(var + d.eps);
#pragma unroll
        for (int i = 0; i < kNB; i++) {
            const int c = tid + i * kRowThreads;
            if (c < n) out[c] = (v[i] - mean) * inv * gm[i] + bt[i];
        }
        return;
    }

    pdl_wait(); /* everything below reads or writes what earlier kernels may touch */
    float s = 0.0f;
    for (int c = tid; c < n; c += kRowThreads) {
        float v = x[c];
        if (add) {
            v += add[c];
            x[c] = v;
        }
        s += layer ? v : v * v;
    }
    s = block_sum(s, red);
    float mean = 0.0f, var;
    if (!layer) {
        var = s / (float)n;
    } else {
        mean = s / (float)n;
        float s2 = 0.0f;
        for (int c = tid; c < n; c += kRowThreads) {
            const float t = x[c] - mean;
            s2 += t * t;
        }
        var = block_sum(s2, red) / (float)n;
    }
    const float inv = 1.0f / sqrtf(var + d.eps);
    for (int c = tid; c < n; c += kRowThreads) {
        float v = (x[c] - mean) * inv;
        if (d.gamma) v *= d.gamma[c];
        if (d.beta && layer) v += d.beta[c];
        out[c] = v;
    }
}

/* ---- rope --------------------------------------------------------------- */

constexpr int kRopeHalfMax = 512; /* n_rot / 2 held in shared memory */

/* Per head, pair i < n_rot / 2 rotates by angle pos * theta^(-2i / n_rot):
 * (a, b) -> (a cos - b sin, a sin + b cos). NORM pairs (2i, 2i + 1), NEOX
 * pairs (i, i + n_rot / 2). The angle and its cos/sin are computed in double
 * and rounded once to f32. The n_rot / 2 frequencies go to shared memory
 * (one exp per thread) before the wait for the previous kernel; each pass
 * loads kNB pairs per thread before storing any. */
/* Frequencies theta^(-2j / n_rot), j < n_rot / 2, into freq (when they fit). */
__device__ __forceinline__ void rope_freqs(double *freq, int n_rot, float theta) {
    const int half = n_rot / 2;
    if (half <= kRopeHalfMax)
        for (int j = threadIdx.x; j < half; j += kRowThreads) freq[j] = rope_inv_freq(j, n_rot, theta);
}

/* theta^(-2j / n_rot): from the table when it fits, else computed. */
__device__ __forceinline__ double rope_freq(const double *freq, int j, int n_rot, float theta) {
    return n_rot / 2 <= kRopeHalfMax ? freq[j] : rope_inv_freq(j, n_rot, theta);
}

/* Rotates the n_head heads of one row x in place at position p (whole block). */
__device__ __forceinline__ void rope_row(float *x, int n_head, int head_dim, int n_rot, int mode, float theta,
                                         double p, const double *freq) {
    const int total = n_head * (n_rot / 2);
    for (int i0 = threadIdx.x; i0 < total; i0 += kNB * kRowThreads) {
        float av[kNB], bv[kNB];
        int o0[kNB], o1[kNB], jj[kNB];
#pragma unroll
        for (int u = 0; u < kNB; u++) {
            const int i = i0 + u * kRowThreads;
            jj[u] = rope_pair(i, head_dim, n_rot, mode, o0[u], o1[u]);
            av[u] = i < total ? x[o0[u]] : 0.0f;
            bv[u] = i < total ? x[o1[u]] : 0.0f;
        }
#pragma unroll
        for (int u = 0; u < kNB; u++) {
            const int i = i0 + u * kRowThreads;
            if (i >= total) break;
            rope_rotate(av[u], bv[u], p, rope_freq(freq, jj[u], n_rot, theta), x[o0[u]], x[o1[u]]);
        }
    }
}

__global__ void __launch_bounds__(kRowThreads)
    rope_kernel(const sh_cu_rope_desc *__restrict__ descs, const int32_t *__restrict__ starts, int n_groups) {
    __shared__ double freq[kRopeHalfMax];
    if (sh_block_idle(starts, n_groups)) return; /* capacity padding */
    const int g = sh_find_group(starts, n_groups, blockIdx.x);
    const sh_cu_rope_desc d = descs[g];
    pdl_trigger();
    const int r = blockIdx.x - __ldg(starts + g);
    rope_freqs(freq, d.n_rot, d.theta);
    __syncthreads();
    pdl_wait(); /* x and pos below */
    rope_row(d.x + (int64_t)r * d.stride, d.n_head, d.head_dim, d.n_rot, d.mode, d.theta, (double)__ldg(d.pos + r),
             freq);
}

/* ---- kv_write ----------------------------------------------------------- */

/* kv_write with RoPE: q rotated in place (rope_row); each of k's rotated
 * pairs is loaded, rotated and stored to the activation and the pool by one
 * thread (rope_kernel's maths, one pass, no barrier); k's other dims and v
 * are copied. */
__device__ __forceinline__ void kv_write_rope(const sh_cu_kv_write_desc &d, int r, const double *freq, int *err) {
    const int pos = __ldg(d.pos + r);
    const double p = (double)pos;
    if (d.q) rope_row(d.q + (int64_t)r * d.q_stride, d.n_head, d.head_dim, d.n_rot, d.rope_mode, d.theta, p, freq);
    const int32_t blk = __ldg(d.kv.block_table + pos / SH_KV_TOKENS);
    if (blk < 0) {
        if (threadIdx.x == 0) atomicOr(err, SH_CU_ERR_BLOCK_ID);
        return;
    }
    float *k = const_cast<float *>(d.k) + (int64_t)r * d.k_stride;
    const float *v = d.v + (int64_t)r * d.v_stride;
    unsigned char *kd = kv_row(d.kv, blk, pos % SH_KV_TOKENS, 0), *vd = kv_row(d.kv, blk, pos % SH_KV_TOKENS, 1);
    const bool f16 = d.kv.dtype == DT_F16;
    auto put = [&](unsigned char *dst, int c, float x) {
        if (f16) reinterpret_cast<__half *>(dst)[c] = __float2half_rn(x);
        else reinterpret_cast<float *>(dst)[c] = x;
    };
    const int hd = d.head_dim, n = d.kv.kv_dim;
    const int total = (n / hd) * (d.n_rot / 2);
    for (int i = threadIdx.x; i < total; i += kRowThreads) {
        int o0, o1;
        const int j = rope_pair(i, hd, d.n_rot, d.rope_mode, o0, o1);
        float x0, x1;
        rope_rotate(k[o0], k[o1], p, rope_freq(freq, j, d.n_rot, d.theta), x0, x1);
        k[o0] = x0;
        k[o1] = x1;
        put(kd, o0, x0);
        put(kd, o1, x1);
    }
    for (int c = threadIdx.x; c < n; c += kRowThreads) {
        if (c % hd >= d.n_rot) put(kd, c, k[c]); /* dims past n_rot: not rotated */
        put(vd, c, v[c]);
    }
}

/* With RoPE (n_rot > 0): kv_write_rope.
 * pool[block_table[p / 16]] layer slot (K, t = p % 16) = k row, same for V;
 * f16 pools round to nearest even. The k and v rows are loaded (kNB
 * elements per thread per pass) alongside the position and block id. */
__global__ void __launch_bounds__(kRowThreads)
    kv_write_kernel(const sh_cu_kv_write_desc *__restrict__ descs, const int32_t *__restrict__ starts, int n_groups,
                    int *err) {
    __shared__ double freq[kRopeHalfMax];
    if (sh_block_idle(starts, n_groups)) return; /* capacity padding */
    const int g = sh_find_group(starts, n_groups, blockIdx.x);
    const sh_cu_kv_write_desc d = descs[g];
    pdl_trigger();
    if (d.n_rot > 0) { /* uniform per block */
        rope_freqs(freq, d.n_rot, d.theta);
        __syncthreads();
    }
    pdl_wait(); /* everything below reads or writes what earlier kernels may touch */
    const int r = blockIdx.x - __ldg(starts + g);
    if (d.n_rot > 0) {
        kv_write_rope(d, r, freq, err);
        return;
    }
    const float *k = d.k + (int64_t)r * d.k_stride;
    const float *v = d.v + (int64_t)r * d.v_stride;
    const int n = d.kv.kv_dim;
    float kk[kNB], vv[kNB];
#pragma unroll
    for (int i = 0; i < kNB; i++) {
        const int c = threadIdx.x + i * kRowThreads;
        kk[i] = c < n ? k[c] : 0.0f;
        vv[i] = c < n ? v[c] : 0.0f;
    }
    const int p = __ldg(d.pos + r);
    const int32_t blk = __ldg(d.kv.block_table + p / SH_KV_TOKENS);
    if (blk < 0) {
        if (threadIdx.x == 0) atomicOr(err, SH_CU_ERR_BLOCK_ID);
        return;
    }
    const int tok = p % SH_KV_TOKENS;
    unsigned char *kd = kv_row(d.kv, blk, tok, 0), *vd = kv_row(d.kv, blk, tok, 1);
    const bool f16 = d.kv.dtype == DT_F16;
    for (int c0 = threadIdx.x;; c0 += kNB * kRowThreads) {
#pragma unroll
        for (int i = 0; i < kNB; i++) {
            const int c = c0 + i * kRowThreads;
            if (c >= n) break;
            if (f16) {
                reinterpret_cast<__half *>(kd)[c] = __float2half_rn(kk[i]);
                reinterpret_cast<__half *>(vd)[c] = __float2half_rn(vv[i]);
            } else {
                reinterpret_cast<float *>(kd)[c] = kk[i];
                reinterpret_cast<float *>(vd)[c] = vv[i];
            }
        }
        if (c0 + kNB * kRowThreads >= n) break;
        /* rows past kNB * kRowThreads: the next pass */
#pragma unroll
        for (int i = 0; i < kNB; i++) {
            const int c = c0 + kNB * kRowThreads + i * kRowThreads;
            kk[i] = c < n ? k[c] : 0.0f;
            vv[i] = c < n ? v[c] : 0.0f;
        }
    }
}

/* ---- act ---------------------------------------------------------------- */

/* SILU_MUL: out = a / (1 + e^-a) * b; GELU_TANH: 0.5 a (1 + tanh(sqrt(2/pi)
 * (a + 0.044715 a^3))); GELU_ERF: 0.5 a (1 + erf(a / sqrt 2)). Each pass
 * loads kNB elements per thread (a and b) before computing and storing
 * any, since out may alias a. */
__global__ void __launch_bounds__(kRowThreads)
    act_kernel(const sh_cu_act_desc *__restrict__ descs, const int32_t *__restrict__ starts, int n_groups) {
    if (sh_block_idle(starts, n_groups)) return; /* capacity padding */
    const int g = sh_find_group(starts, n_groups, blockIdx.x);
    const sh_cu_act_desc d = descs[g];
    pdl_trigger();
    pdl_wait(); /* everything below reads or writes what earlier kernels may touch */
    const int r = blockIdx.x - __ldg(starts + g);
    const float *a = d.a + (int64_t)r * d.a_stride;
    const float *b = d.b ? d.b + (int64_t)r * d.b_stride : nullptr;
    float *out = d.out + (int64_t)r * d.out_stride;
    for (int c0 = threadIdx.x; c0 < d.n; c0 += kNB * kRowThreads) {
        float xa[kNB], xb[kNB];
#pragma unroll
        for (int i = 0; i < kNB; i++) {
            const int c = c0 + i * kRowThreads;
            xa[i] = c < d.n ? a[c] : 0.0f;
            xb[i] = b && c < d.n ? b[c] : 0.0f;
        }
#pragma unroll
        for (int i = 0; i < kNB; i++) {
            const int c = c0 + i * kRowThreads;
            const float x = xa[i];
            float y;
            if (d.kind == 0) {
                y = x / (1.0f + expf(-x)) * xb[i];
            } else if (d.kind == 1) {
                y = 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
            } else {
                y = 0.5f * x * (1.0f + erff(x * 0.7071067811865476f));
            }
            if (c < d.n) out[c] = y;
        }
    }
}

/* ---- pool --------------------------------------------------------------- */

/* out[c] = mean_r x[r, c]; normalize: out /= max(||out||_2, 1e-12). One block
 * per group. */
__global__ void __launch_bounds__(kRowThreads)
    pool_kernel(const sh_cu_pool_desc *__restrict__ descs, const int32_t *__restrict__ starts, int n_groups) {
    __shared__ float red[32];
    if (sh_block_idle(starts, n_groups)) return; /* capacity padding */
    const int g = sh_find_group(starts, n_groups, blockIdx.x);
    const sh_cu_pool_desc d = descs[g];
    pdl_trigger();
    pdl_wait(); /* everything below reads or writes what earlier kernels may touch */
    float sq = 0.0f;
    for (int c = threadIdx.x; c < d.n; c += kRowThreads) {
        float s = 0.0f;
        for (int r = 0; r < d.rows; r++) s += d.x[(int64_t)r * d.stride + c];
        const float m = s / (float)d.rows;
        d.out[c] = m;
        sq += m * m;
    }
    if (!d.normalize) return; /* uniform per block: no thread waits at the barrier below */
    sq = block_sum(sq, red);
    const float inv = 1.0f / fmaxf(sqrtf(sq), 1e-12f);
    for (int c = threadIdx.x; c < d.n; c += kRowThreads) d.out[c] *= inv;
}

/* ---- argmax ------------------------------------------------------------- */

constexpr int kArgThreads = 1024;

/* (v, i) beats (bv, bi): larger value, or equal value at a smaller index. */
__device__ __forceinline__ bool am_better(float v, int i, float bv, int bi) {
    return v > bv || (v == bv && i < bi);
}

/* out[r] = the first c with x[r, c] maximal, as the host loop `if (x[c] >
 * x[best]) best = c` from best = 0 finds it: NaNs never win, except that a
 * NaN in column 0 is kept. Each thread scans its columns in ascending order
 * (16-byte loads, four in flight), then (value, index) pairs are reduced. */
__global__ void __launch_bounds__(kArgThreads)
    argmax_kernel(const sh_cu_argmax_desc *__restrict__ descs, const int32_t *__restrict__ starts, int n_groups) {
    __shared__ float sv[32];
    __shared__ int si[32];
    if (sh_block_idle(starts, n_groups)) return; /* capacity padding */
    const int g = sh_find_group(starts, n_groups, blockIdx.x);
    const sh_cu_argmax_desc d = descs[g];
    pdl_trigger();
    pdl_wait(); /* the logits come from the previous kernel */
    const int r = blockIdx.x - __ldg(starts + g);
    const float *x = d.x + (int64_t)r * d.stride;
    float bv = -INFINITY;
    int bi = INT_MAX; /* nothing above -inf seen yet */
    if (d.vec) {
        const int n4 = d.n >> 2;
        const float4 *x4 = reinterpret_cast<const float4 *>(x);
        for (int i0 = threadIdx.x; i0 < n4; i0 += 4 * kArgThreads) {
            float4 v[4];
#pragma unroll
            for (int u = 0; u < 4; u++) {
                const int i = i0 + u * kArgThreads;
                v[u] = i < n4 ? x4[i] : make_float4(-INFINITY, -INFINITY, -INFINITY, -INFINITY);
            }
#pragma unroll
            for (int u = 0; u < 4; u++) {
                const int c = 4 * (i0 + u * kArgThreads);
                if (v[u].x > bv) bv = v[u].x, bi = c;
                if (v[u].y > bv) bv = v[u].y, bi = c + 1;
                if (v[u].z > bv) bv = v[u].z, bi = c + 2;
                if (v[u].w > bv) bv = v[u].w, bi = c + 3;
            }
        }
        /* loads of one thread jump by 4 * kArgThreads vectors between its
         * batches but rise within them, so "first" holds per thread */
        for (int c = 4 * n4 + threadIdx.x; c < d.n; c += kArgThreads)
            if (x[c] > bv) bv = x[c], bi = c;
    } else {
        for (int c = threadIdx.x; c < d.n; c += kArgThreads)
            if (x[c] > bv) bv = x[c], bi = c;
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(FULL_MASK, bv, o);
        const int oi = __shfl_xor_sync(FULL_MASK, bi, o);
        if (am_better(ov, oi, bv, bi)) bv = ov, bi = oi;
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) {
        sv[warp] = bv;
        si[warp] = bi;
    }
    __syncthreads();
    if (warp == 0) {
        bv = lane < kArgThreads / 32 ? sv[lane] : -INFINITY;
        bi = lane < kArgThreads / 32 ? si[lane] : INT_MAX;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            const float ov = __shfl_xor_sync(FULL_MASK, bv, o);
            const int oi = __shfl_xor_sync(FULL_MASK, bi, o);
            if (am_better(ov, oi, bv, bi)) bv = ov, bi = oi;
        }
        if (lane == 0) d.out[r] = (bi == INT_MAX || isnan(x[0])) ? 0 : bi;
    }
}

} // namespace

/* One block per row (pool: per group), kRowThreads threads each. */
/* The GEMM epilogue's RoPE table: the values rope_kernel computes for the
 * same (theta, head_dim, position, pair), bit for bit. */
__global__ void rope_table_kernel(float2 *tab, int n_pos, int head_dim, float theta) {
    const int half = head_dim / 2;
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (int64_t)n_pos * half) return;
    const int p = (int)(i / half), j = (int)(i % half);
    float cs, sn;
    rope_cs((double)p, rope_inv_freq(j, head_dim, theta), cs, sn);
    tab[i] = make_float2(cs, sn);
}

extern "C" cudaError_t sh_cu_rope_table(cudaStream_t s, void *tab, int n_pos, int head_dim, float theta) {
    const int64_t n = (int64_t)n_pos * (head_dim / 2);
    if (n <= 0) return cudaSuccess;
    rope_table_kernel<<<(unsigned)((n + 255) / 256), 256, 0, s>>>(static_cast<float2 *>(tab), n_pos, head_dim, theta);
    return cudaGetLastError();
}

extern "C" cudaError_t sh_cu_launch_get_rows(cudaStream_t s, const sh_cu_launch_args *a) {
    return sh_cu_launch_k(get_rows_kernel, a->n_blocks, kRowThreads, s, a->pdl,
                          static_cast<const sh_cu_get_rows_desc *>(a->desc), a->starts, a->n_groups, a->err);
}

extern "C" cudaError_t sh_cu_launch_norm(cudaStream_t s, const sh_cu_launch_args *a) {
    return sh_cu_launch_k(norm_kernel, a->n_blocks, kRowThreads, s, a->pdl,
                          static_cast<const sh_cu_norm_desc *>(a->desc), a->starts, a->n_groups);
}

extern "C" cudaError_t sh_cu_launch_rope(cudaStream_t s, const sh_cu_launch_args *a) {
    return sh_cu_launch_k(rope_kernel, a->n_blocks, kRowThreads, s, a->pdl,
                          static_cast<const sh_cu_rope_desc *>(a->desc), a->starts, a->n_groups);
}

extern "C" cudaError_t sh_cu_launch_kv_write(cudaStream_t s, const sh_cu_launch_args *a) {
    return sh_cu_launch_k(kv_write_kernel, a->n_blocks, kRowThreads, s, a->pdl,
                          static_cast<const sh_cu_kv_write_desc *>(a->desc), a->starts, a->n_groups, a->err);
}

extern "C" cudaError_t sh_cu_launch_act(cudaStream_t s, const sh_cu_launch_args *a) {
    return sh_cu_launch_k(act_kernel, a->n_blocks, kRowThreads, s, a->pdl,
                          static_cast<const sh_cu_act_desc *>(a->desc), a->starts, a->n_groups);
}

extern "C" cudaError_t sh_cu_launch_pool(cudaStream_t s, const sh_cu_launch_args *a) {
    return sh_cu_launch_k(pool_kernel, a->n_blocks, kRowThreads, s, a->pdl,
                          static_cast<const sh_cu_pool_desc *>(a->desc), a->starts, a->n_groups);
}

extern "C" cudaError_t sh_cu_launch_argmax(cudaStream_t s, const sh_cu_launch_args *a) {
    return sh_cu_launch_k(argmax_kernel, a->n_blocks, kArgThreads, s, a->pdl,
                          static_cast<const sh_cu_argmax_desc *>(a->desc), a->starts, a->n_groups);
}
