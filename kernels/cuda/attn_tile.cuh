/* Shared pieces of the two attention kernels (attn.cu: K/V tiles shared by up
 * to 4 query heads; attn1.cu: one query head per block): block size, the
 * shared-memory stage of one K/V tile, and the geometry and
 * loaders of paged K/V tiles. Included inside each file's anonymous namespace. */
#ifndef SH_ATTN_TILE_CUH
#define SH_ATTN_TILE_CUH

constexpr int kThreads = 128;
constexpr int kStageBytes = SH_CU_ATTN_STAGE_BYTES; /* K + V of one tile */
constexpr int kTKMax = SH_CU_ATTN_TK_MAX;          /* keys per tile at most */

/* Geometry of one (row, head) block. K and V rows sit in shared memory rs
 * bytes apart (the row rounded up to 16 bytes, plus 16 so that threads
 * reading different rows at one offset hit different banks). */
struct attn_geo {
    const unsigned char *pool;
    const int32_t *table;
    uint64_t block_bytes, row_bytes, head_off, k_slot, v_off;
    int rb, rs, tk, n_keys;
    bool f16, vec;
};

/* The geometry of KV head hk's keys for query row `row` of desc d. */
__device__ __forceinline__ attn_geo attn_geo_make(const sh_cu_attn_desc &d, int hk, int row) {
    attn_geo g;
    g.f16 = d.kv.dtype == DT_F16;
    g.vec = d.vec != 0;
    const int es = g.f16 ? 2 : 4;
    g.pool = d.kv.pool;
    g.table = d.kv.block_table;
    g.block_bytes = d.kv.block_bytes;
    g.row_bytes = (uint64_t)d.kv.kv_dim * es;
    g.head_off = (uint64_t)hk * (uint64_t)d.head_dim * es;
    g.k_slot = (uint64_t)(d.kv.layer * 2) * SH_KV_TOKENS * g.row_bytes;
    g.v_off = (uint64_t)SH_KV_TOKENS * g.row_bytes; /* V slot follows the K slot */
    g.rb = d.head_dim * es;
    g.rs = ((g.rb + 15) & ~15) + 16;
    g.tk = sh_cu_attn_tile_keys(d.head_dim, es);
    g.n_keys = d.causal ? d.pos0 + row + 1 : d.n_kv;
    return g;
}

/* Issues the copies of keys [t0, t0 + nk) into stage st (K rows, then V
 * rows at tk * rs). Keys of a negative block id get zero rows (and bad). */
__device__ __forceinline__ void load_tile(const attn_geo &g, unsigned char *st, int t0, int nk, bool &bad) {
    if (g.vec) {
        const int n16 = g.rb >> 4;
        const int total = 2 * nk * n16;
        for (int c = threadIdx.x; c < total; c += kThreads) {
            const int kv = c >= nk * n16;
            const int rem = c - kv * nk * n16;
            const int j = rem / n16, piece = rem - j * n16;
            const int t = t0 + j;
            const int32_t blk = __ldg(g.table + (t >> 4));
            unsigned char *dst = st + kv * g.tk * g.rs + j * g.rs + 16 * piece;
            if (blk < 0) {
                bad = true;
                *reinterpret_cast<uint4 *>(dst) = make_uint4(0, 0, 0, 0);
                continue;
            }
            const unsigned char *src = g.pool + (uint64_t)blk * g.block_bytes + g.k_slot + kv * g.v_off +
                                       (uint64_t)(t & 15) * g.row_bytes + g.head_off + 16 * piece;
            cp_async16(dst, src);
        }
    } else {
        /* rows not 16-byte aligned: element copies (2 or 4 bytes) */
        const int es = g.f16 ? 2 : 4, ne = g.rb / es;
        const int total = 2 * nk * ne;
        for (int c = threadIdx.x; c < total; c += kThreads) {
            const int kv = c >= nk * ne;
            const int rem = c - kv * nk * ne;
            const int j = rem / ne, e = rem - j * ne;
            const int t = t0 + j;
            const int32_t blk = __ldg(g.table + (t >> 4));
            unsigned char *dst = st + kv * g.tk * g.rs + j * g.rs + es * e;
            const unsigned char *src = g.pool + (uint64_t)(blk < 0 ? 0 : blk) * g.block_bytes + g.k_slot +
                                       kv * g.v_off + (uint64_t)(t & 15) * g.row_bytes + g.head_off + es * e;
            if (blk < 0) bad = true;
            if (g.f16) *reinterpret_cast<unsigned short *>(dst) = blk < 0 ? 0 : (unsigned short)ldg_u16(src);
            else *reinterpret_cast<float *>(dst) = blk < 0 ? 0.0f : __ldg(reinterpret_cast<const float *>(src));
        }
    }
}

/* Copies tile ti of g's keys (if it exists) into stage st, as one commit group. */
__device__ __forceinline__ void fetch_tile(const attn_geo &g, unsigned char *st, int ti, int n_tiles, bool &bad) {
    if (ti < n_tiles) load_tile(g, st, ti * g.tk, min(g.tk, g.n_keys - ti * g.tk), bad);
    cp_async_commit();
}

/* Step it of a block's walk over tiles ti = sp, sp + S, ... (double
 * buffered, tile ti in stage[it & 1]): starts the copy of tile ti + S into
 * the other stage and waits for tile ti; the caller's barrier then makes it
 * visible to the block. */
__device__ __forceinline__ void next_tile(const attn_geo &g, unsigned char (*stage)[kStageBytes], int it, int ti,
                                          int S, int n_tiles, bool &bad) {
    if (ti + S < n_tiles) {
        fetch_tile(g, stage[(it + 1) & 1], ti + S, n_tiles, bad);
        cp_async_wait<1>();
    } else {
        cp_async_wait<0>();
    }
}

/* q . K_j for the K row at kp (shared memory, hd elements). */
__device__ __forceinline__ float dot_qk(const float *qs, const unsigned char *kp, int hd, bool f16, bool vec) {
    float s = 0.0f;
    if (f16 && vec) {
        for (int i = 0; i < hd; i += 8) {
            const uint4 u = *reinterpret_cast<const uint4 *>(kp + 2 * i);
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
    } else if (vec) {
        for (int i = 0; i < hd; i += 4) {
            const float4 k4 = *reinterpret_cast<const float4 *>(kp + 4 * i);
            const float4 q4 = *reinterpret_cast<const float4 *>(qs + i);
            s = fmaf(q4.x, k4.x, s);
            s = fmaf(q4.y, k4.y, s);
            s = fmaf(q4.z, k4.z, s);
            s = fmaf(q4.w, k4.w, s);
        }
    } else if (f16) {
        for (int i = 0; i < hd; i++)
            s = fmaf(qs[i], __half2float(*reinterpret_cast<const __half *>(kp + 2 * i)), s);
    } else {
        for (int i = 0; i < hd; i++) s = fmaf(qs[i], reinterpret_cast<const float *>(kp)[i], s);
    }
    return s;
}

/* Dimension dd of one head's output from its S states at `all` (pw floats
 * apart): sum_s e^(m_s - M) acc_s[dd] / sum_s e^(m_s - M) l_s. */
__device__ __forceinline__ float split_combine(const float *all, int S, int pw, int dd) {
    float M = -INFINITY;
    for (int k = 0; k < S; k++) M = fmaxf(M, __ldcg(all + (int64_t)k * pw));
    float L = 0.0f, num = 0.0f;
    for (int k = 0; k < S; k++) {
        const float mk = __ldcg(all + (int64_t)k * pw);
        if (mk == -INFINITY) continue;
        const float w = expf(mk - M);
        L += w * __ldcg(all + (int64_t)k * pw + 1);
        num += w * __ldcg(all + (int64_t)k * pw + 2 + dd);
    }
    return L > 0.0f ? num / L : 0.0f;
}

#endif
