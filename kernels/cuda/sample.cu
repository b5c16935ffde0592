/* SH_OP_SAMPLE: one block per logits row, sh_sample_u's result without a sort.
 *
 * Order. scaled s = x / temperature (f32, IEEE division as on the host);
 * candidates in order of (s desc, id asc). dkey(s) is an order-reversing u32
 * image of s (ascending dkey = descending s, -0 = +0), so the order is that
 * of (dkey, id).
 *
 * Cuts. Every step of sh_sample_u is "the first candidate, in that order,
 * where a running count or running mass reaches a target", inside the prefix
 * kept so far (the domain: candidates up to a limit (dkey, id)):
 *   top-k     running count >= k;
 *   top-p     running mass >= top_p * (mass of the domain);
 *   the draw  running mass >  u * (mass of the domain);
 * with mass e = exp(s - max) in f64 (the host's p_i times its sum). min-p
 * keeps the candidates with e >= min_p (p_i >= min_p * p_0 with p_0 = 1/sum),
 * a prefix: one max-reduction gives its last candidate.
 *
 * Select. A radix selection over the row, each level one pass with count and
 * mass histograms in shared memory (mass summed in f64), then a block scan
 * over the bins for the first bin whose running value reaches the target:
 *   level 0   bin = floor(32 (max - s)), distances >= 64 in the last bin (the
 *             mass sits near the maximum; this spreads it over many bins);
 *   level 1-3 within that bin: dkey bits 31..21, 20..10, 9..0.
 * A chosen bin holding one candidate ends the search (each bin remembers one
 * of its candidates). After level 3 the dkey is known; if several candidates
 * share it (equal s), the j-th smallest id among them is found by a count
 * over contiguous id ranges and a scan. The sums run in another order than
 * the host's, so ids differ from sh_sample_u only where a target lies within
 * rounding of a boundary.
 */
#include <climits>

#include "cuda_common.cuh"

namespace {

constexpr int kThreads = 1024;
constexpr int kBins = 2048;
constexpr int kPer = kBins / kThreads; /* bins per thread in the scans */
constexpr int kNW = kThreads / 32;

enum { SEL_COUNT = 0, SEL_MASS_GE = 1, SEL_MASS_GT = 2 };

struct Smem {
    unsigned cnt[kBins];   /* candidates per bin */
    double mass[kBins];    /* sum of e per bin */
    unsigned bkey[kBins];  /* one candidate of each bin (exact when cnt == 1) */
    int bid[kBins];
    unsigned wc[kNW];      /* block scan: per-warp totals */
    double wm[kNW];
    unsigned long long red;
    int pick, last;
    unsigned before_c;     /* running values before the picked bin */
    double before_m;
    int tie_id;
};

struct Row {
    const float *x;
    int n, vec;
    float temp;            /* 1 and no division for greedy rows */
    int greedy;
    double mx;             /* max s */
};

/* A domain limit: candidates (k, id) <= (lk, lid) in candidate order. */
struct Lim {
    unsigned k;
    int id;
};

__device__ __forceinline__ bool in_dom(const Lim &L, unsigned k, int i) { return k < L.k || (k == L.k && i <= L.id); }

__device__ __forceinline__ unsigned dkey_of(float s) {
    const unsigned b = __float_as_uint(s == 0.0f ? 0.0f : s);
    return (b & 0x80000000u) ? b : ~(b | 0x80000000u);
}

__device__ __forceinline__ float s_of_dkey(unsigned k) {
    const unsigned a = ~k;
    return __uint_as_float((a & 0x80000000u) ? (a & 0x7fffffffu) : ~a);
}

__device__ __forceinline__ float scaled(const Row &R, float x) { return R.greedy ? x : __fdiv_rn(x, R.temp); }

__device__ __forceinline__ unsigned long long comp(unsigned k, int i) {
    return ((unsigned long long)k << 32) | (unsigned)i;
}

/* f(id, x) for every element of the row; 16-byte loads when allowed. */
template <class F> __device__ __forceinline__ void each(const Row &R, F &&f) {
    if (R.vec) {
        const float4 *x4 = reinterpret_cast<const float4 *>(R.x);
        const int n4 = R.n >> 2;
#pragma unroll 2
        for (int i = threadIdx.x; i < n4; i += kThreads) {
            const float4 v = x4[i];
            f(4 * i, v.x);
            f(4 * i + 1, v.y);
            f(4 * i + 2, v.z);
            f(4 * i + 3, v.w);
        }
        for (int c = 4 * n4 + threadIdx.x; c < R.n; c += kThreads) f(c, R.x[c]);
    } else {
        for (int c = threadIdx.x; c < R.n; c += kThreads) f(c, R.x[c]);
    }
}

__device__ unsigned long long block_min_u64(unsigned long long v, Smem &sm) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const unsigned long long w = __shfl_xor_sync(FULL_MASK, v, o);
        v = w < v ? w : v;
    }
    if (threadIdx.x == 0) sm.red = ~0ull;
    __syncthreads();
    if ((threadIdx.x & 31) == 0) atomicMin(&sm.red, v);
    __syncthreads();
    v = sm.red;
    __syncthreads();
    return v;
}

__device__ unsigned long long block_max_u64(unsigned long long v, Smem &sm) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const unsigned long long w = __shfl_xor_sync(FULL_MASK, v, o);
        v = w > v ? w : v;
    }
    if (threadIdx.x == 0) sm.red = 0ull;
    __syncthreads();
    if ((threadIdx.x & 31) == 0) atomicMax(&sm.red, v);
    __syncthreads();
    v = sm.red;
    __syncthreads();
    return v;
}

/* Exclusive scan of (c, m) over the threads in order: (ec, em) before this
 * thread, (tc, tm) the totals. */
__device__ void block_scan(unsigned c, double m, unsigned &ec, double &em, unsigned &tc, double &tm, Smem &sm) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    unsigned ic = c;
    double im = m;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const unsigned oc = __shfl_up_sync(FULL_MASK, ic, o);
        const double om = __shfl_up_sync(FULL_MASK, im, o);
        if (lane >= o) {
            ic += oc;
            im += om;
        }
    }
    if (lane == 31) {
        sm.wc[warp] = ic;
        sm.wm[warp] = im;
    }
    __syncthreads();
    if (warp == 0) {
        unsigned xc = lane < kNW ? sm.wc[lane] : 0u;
        double xm = lane < kNW ? sm.wm[lane] : 0.0;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const unsigned oc = __shfl_up_sync(FULL_MASK, xc, o);
            const double om = __shfl_up_sync(FULL_MASK, xm, o);
            if (lane >= o) {
                xc += oc;
                xm += om;
            }
        }
        if (lane < kNW) {
            sm.wc[lane] = xc;
            sm.wm[lane] = xm;
        }
    }
    __syncthreads();
    unsigned pc = __shfl_up_sync(FULL_MASK, ic, 1);
    double pm = __shfl_up_sync(FULL_MASK, im, 1);
    if (lane == 0) {
        pc = 0u;
        pm = 0.0;
    }
    ec = (warp ? sm.wc[warp - 1] : 0u) + pc;
    em = (warp ? sm.wm[warp - 1] : 0.0) + pm;
    tc = sm.wc[kNW - 1];
    tm = sm.wm[kNW - 1];
    __syncthreads();
}

/* The j-th smallest id (1-based) among domain candidates with dkey K. */
__device__ int jth_id(const Row &R, const Lim &L, unsigned K, unsigned j, Smem &sm) {
    const int chunk = (R.n + kThreads - 1) / kThreads;
    const int c0 = min(R.n, (int)threadIdx.x * chunk), c1 = min(R.n, c0 + chunk);
    unsigned cnt = 0;
    for (int i = c0; i < c1; i++) {
        const unsigned k = dkey_of(scaled(R, R.x[i]));
        cnt += k == K && in_dom(L, k, i);
    }
    if (threadIdx.x == 0) sm.tie_id = -1;
    unsigned ec, tc;
    double em, tm;
    block_scan(cnt, 0.0, ec, em, tc, tm, sm);
    if (ec < j && j <= ec + cnt) {
        unsigned seen = ec;
        for (int i = c0; i < c1; i++) {
            const unsigned k = dkey_of(scaled(R, R.x[i]));
            if (k == K && in_dom(L, k, i) && ++seen == j) {
                sm.tie_id = i;
                break;
            }
        }
    }
    __syncthreads();
    const int id = sm.tie_id;
    __syncthreads();
    return id;
}

struct Sel {
    Lim at;
    int found;
};

/* The first domain candidate where the running count reaches kth (COUNT) or
 * the running mass reaches frac * (domain mass) (MASS_GE: >=, MASS_GT: >).
 * Not found (found 0) when the domain total does not reach the target. */
__device__ Sel select(const Row &R, const Lim &L, int mode, unsigned kth, double frac, Smem &sm) {
    const bool need_mass = mode != SEL_COUNT;
    unsigned acc_c = 0;     /* running values before the current bin */
    double acc_m = 0.0, target = 0.0;
    int b0 = 0;             /* level-0 bin */
    unsigned prefix = 0;    /* dkey bits chosen at levels 1, 2 */
    for (int level = 0; level < 4; level++) {
        for (int b = threadIdx.x; b < kBins; b += kThreads) {
            sm.cnt[b] = 0u;
            sm.mass[b] = 0.0;
        }
        if (threadIdx.x == 0) {
            sm.pick = INT_MAX;
            sm.last = -1;
        }
        __syncthreads();
        each(R, [&](int i, float xv) {
            const float s = scaled(R, xv);
            const unsigned k = dkey_of(s);
            if (!in_dom(L, k, i)) return;
            const double d = R.mx - (double)s;
            const int lin = d < 64.0 ? (int)(d * 32.0) : kBins - 1;
            int bin;
            if (level == 0) {
                bin = lin;
            } else {
                if (lin != b0) return;
                if (level == 1) {
                    bin = (int)(k >> 21);
                } else if (level == 2) {
                    if ((k >> 21) != prefix) return;
                    bin = (int)((k >> 10) & 0x7ffu);
                } else {
                    if ((k >> 10) != prefix) return;
                    bin = (int)(k & 0x3ffu);
                }
            }
            atomicAdd(&sm.cnt[bin], 1u);
            if (need_mass && d < 746.0) {
                const double e = exp(-d);
                if (e != 0.0) atomicAdd(&sm.mass[bin], e);
            }
            sm.bkey[bin] = k;
            sm.bid[bin] = i;
        });
        __syncthreads();
        unsigned c[kPer], lc = 0;
        double m[kPer], lm = 0.0;
#pragma unroll
        for (int j = 0; j < kPer; j++) {
            c[j] = sm.cnt[threadIdx.x * kPer + j];
            m[j] = sm.mass[threadIdx.x * kPer + j];
            lc += c[j];
            lm += m[j];
        }
        unsigned ec, tc;
        double em, tm;
        block_scan(lc, lm, ec, em, tc, tm, sm);
        if (level == 0) target = frac * tm;
        unsigned vc = acc_c + ec, bc[kPer];
        double vm = acc_m + em, bm[kPer];
#pragma unroll
        for (int j = 0; j < kPer; j++) {
            bc[j] = vc;
            bm[j] = vm;
            vc += c[j];
            vm += m[j];
            const bool hit = mode == SEL_COUNT ? vc >= kth : mode == SEL_MASS_GE ? vm >= target : vm > target;
            if (c[j]) {
                if (hit) atomicMin(&sm.pick, (int)threadIdx.x * kPer + j);
                atomicMax(&sm.last, (int)threadIdx.x * kPer + j);
            }
        }
        __syncthreads();
        int pick = sm.pick;
        if (pick == INT_MAX) {
            if (level == 0) { /* uniform: every thread returns */
                __syncthreads();
                return Sel{L, 0};
            }
            pick = sm.last; /* rounding: the crossing is at the end of the bin chosen above */
        }
#pragma unroll
        for (int j = 0; j < kPer; j++)
            if ((int)threadIdx.x * kPer + j == pick) {
                sm.before_c = bc[j];
                sm.before_m = bm[j];
            }
        __syncthreads();
        acc_c = sm.before_c;
        acc_m = sm.before_m;
        const unsigned pc = sm.cnt[pick];
        const Lim one = {sm.bkey[pick], sm.bid[pick]};
        __syncthreads(); /* everything read before the next level clears it */
        if (pc == 1) return Sel{one, 1};
        if (level == 0) {
            b0 = pick;
        } else if (level == 1) {
            prefix = (unsigned)pick;
        } else if (level == 2) {
            prefix = (prefix << 11) | (unsigned)pick;
        } else {
            /* pc candidates share this dkey (equal s): the j-th by id */
            const unsigned K = (prefix << 10) | (unsigned)pick;
            unsigned j;
            if (mode == SEL_COUNT) {
                j = kth - acc_c;
            } else {
                const double e = exp((double)s_of_dkey(K) - R.mx);
                const double q = e > 0.0 ? (target - acc_m) / e : (double)pc;
                j = q < 1.0 ? 1u : q >= (double)pc ? pc : (unsigned)q;
                auto hit = [&](unsigned jj) {
                    const double v = acc_m + (double)jj * e;
                    return mode == SEL_MASS_GE ? v >= target : v > target;
                };
                while (j > 1 && hit(j - 1)) j--;
                while (j < pc && !hit(j)) j++;
            }
            j = j < 1 ? 1 : j > pc ? pc : j;
            return Sel{{K, jth_id(R, L, K, j, sm)}, 1};
        }
    }
    return Sel{L, 0}; /* not reached */
}

/* out = sh_sample_u(x, n, params, u) (see the file comment); greedy rows:
 * the first maximum as the host loop `x[c] > x[best]` finds it (a NaN in
 * column 0 gives 0, other NaNs never win). */
__global__ void __launch_bounds__(kThreads)
    sample_kernel(const sh_cu_sample_desc *__restrict__ descs, const int32_t *__restrict__ starts, int n_groups) {
    __shared__ Smem sm;
    if (sh_block_idle(starts, n_groups)) return; /* capacity padding */
    const sh_cu_sample_desc d = descs[blockIdx.x];
    pdl_trigger();
    pdl_wait(); /* the logits come from the previous kernel */
    Row R;
    R.x = d.x;
    R.n = d.n;
    R.vec = d.vec;
    R.greedy = !(d.temperature > 0.0f);
    R.temp = R.greedy ? 1.0f : d.temperature;
    R.mx = 0.0;

    /* the first candidate: smallest (dkey, id), NaNs skipped; and the last */
    unsigned long long best = ~0ull, worst = 0ull;
    each(R, [&](int i, float xv) {
        const float s = scaled(R, xv);
        if (s == s) {
            const unsigned long long cc = comp(dkey_of(s), i);
            best = cc < best ? cc : best;
            worst = cc > worst ? cc : worst;
        }
    });
    best = block_min_u64(best, sm);
    if (best == ~0ull || (R.greedy && isnan(d.x[0]))) {
        if (threadIdx.x == 0) *d.out = 0;
        return;
    }
    const Lim first = {(unsigned)(best >> 32), (int)(best & 0xffffffffu)};
    if (R.greedy) {
        if (threadIdx.x == 0) *d.out = first.id;
        return;
    }
    R.mx = (double)s_of_dkey(first.k);
    auto is_first = [&](const Lim &L) { return L.k == first.k && L.id == first.id; };

    /* the domain: every candidate (a cut not reached keeps its last one) */
    worst = block_max_u64(worst, sm);
    Lim L = {(unsigned)(worst >> 32), (int)(worst & 0xffffffffu)};
    if (d.top_k > 0 && d.top_k < d.n) {
        if (d.top_k == 1) L = first;
        else L = select(R, L, SEL_COUNT, (unsigned)d.top_k, 0.0, sm).at;
    }
    if (!is_first(L) && d.top_p > 0.0f && d.top_p < 1.0f) {
        const Sel r = select(R, L, SEL_MASS_GE, 0u, (double)d.top_p, sm);
        if (r.found) L = r.at;
    }
    if (!is_first(L) && d.min_p > 0.0f) {
        /* the last domain candidate with e >= min_p; the first always stays */
        const double mp = (double)d.min_p;
        unsigned long long lastc = best;
        each(R, [&](int i, float xv) {
            const float s = scaled(R, xv);
            const unsigned k = dkey_of(s);
            if (!in_dom(L, k, i)) return;
            const double dd = R.mx - (double)s;
            if (dd < 746.0 && exp(-dd) >= mp) {
                const unsigned long long cc = comp(k, i);
                lastc = cc > lastc ? cc : lastc;
            }
        });
        lastc = block_max_u64(lastc, sm);
        L = Lim{(unsigned)(lastc >> 32), (int)(lastc & 0xffffffffu)};
    }
    int id = first.id;
    if (!is_first(L)) {
        const Sel r = select(R, L, SEL_MASS_GT, 0u, d.u, sm);
        id = r.found ? r.at.id : L.id;
    }
    if (threadIdx.x == 0) *d.out = id;
}

} // namespace

/* One block per row (one descriptor per row). */
extern "C" cudaError_t sh_cu_launch_sample(cudaStream_t s, const sh_cu_launch_args *a) {
    return sh_cu_launch_k(sample_kernel, a->n_blocks, kThreads, s, a->pdl,
                          static_cast<const sh_cu_sample_desc *>(a->desc), a->starts, a->n_groups);
}
