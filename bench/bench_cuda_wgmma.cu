/* Prototype of the decode GEMM fed by the tensor copy engine: the warpgroup
 * form of kernels/cuda/gemm_ring.cu with its weight stages filled by 2D
 * tensor copies, and each group's activations, split beforehand into three
 * bf16 terms, resident in shared memory for all of the group's items. Both
 * arrive through the copy engine (the async proxy that wgmma reads through),
 * so no proxy fence stands between a stage's copies and its products. Its
 * first form (boxes of 8 elements x 64 rows, no swizzle) streamed only
 * 1.35 TB/s at one block per SM on the LM head: ~1024 16-byte rows per 16 KB
 * stage through the copy engine. This one copies 128-byte rows, swizzled
 * (bench/NOTES.md, "Why the streamed GEMM stalls").
 *
 *   bench_cuda_wgmma [--quick]
 *
 * Shapes: 576-wide bf16 weights (SmolLM-135M's QKV, o, gate+up as one
 * matrix, LM head) for 8 groups and for 1, 16 activation rows per group.
 * Each is first checked: the outputs of one call (every row, or every 41st
 * of the LM heads) against a double reference on the host (limit 1e-5 of
 * the largest |y|, the conformance suite's), then timed as 32 launches back to back, each on the next of
 * enough weight sets to pass L2 (median of 11), in us per launch and TB/s of
 * weights, for 1 and 2 blocks per SM and ring depths 3-8.
 *
 * Layouts (K-major):
 *  - weight stage: 1 or 2 boxes of 64 rows x 64 elements, each one tensor
 *    copy with 128-byte swizzle into its own 1024-aligned 8 KB (a box
 *    wholly past K is not issued; a partial one reads zeros past K);
 *  - activation terms: [k / 8][term * 16 + m][8] (core matrices of 8 rows x
 *    16 bytes, no swizzle), Kp / 8 x 768 bytes, Kp = K rounded up to 128
 *    (zeros past K), copied whole per group; one m64n48k16 product per
 *    k-step multiplies a weight k-step by all three terms.
 */
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/cuda/hopper.cuh"
#include "tensor_map.h"

namespace {

constexpr int kThreads = 128, kRowsItem = 64, kM = 16, kBox = 8192; /* a box: 64 rows x 64 elements */
constexpr int kRowsX = 3 * kM;                                     /* the three terms, stacked */

__host__ __device__ constexpr int kpad(int k) { return (k + 127) / 128 * 128; }
__host__ __device__ constexpr int x_bytes(int k) { return kpad(k) / 8 * kRowsX * 16; } /* a group's terms */

/* x (groups x 16 x K f32) as the shared image of each group's three terms:
 * [k / 8][term * 16 + m][k % 8], zeros past K */
__global__ void split_terms(const float *x, int K, unsigned char *xb) {
    const int g = blockIdx.y, Kp = kpad(K);
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < kM * Kp; i += gridDim.x * blockDim.x) {
        const int m = i / Kp, k = i % Kp;
        const float v = k < K ? x[((size_t)g * kM + m) * K + k] : 0.0f;
        const __nv_bfloat16 h = __float2bfloat16_rn(v);
        const float r1 = v - __bfloat162float(h);
        const __nv_bfloat16 mid = __float2bfloat16_rn(r1);
        const __nv_bfloat16 lo = __float2bfloat16_rn(r1 - __bfloat162float(mid));
        unsigned char *base = xb + (size_t)g * x_bytes(K) + (size_t)(k / 8) * kRowsX * 16 + (k % 8) * 2;
        *reinterpret_cast<__nv_bfloat16 *>(base + m * 16) = h;
        *reinterpret_cast<__nv_bfloat16 *>(base + (kM + m) * 16) = mid;
        *reinterpret_cast<__nv_bfloat16 *>(base + (2 * kM + m) * 16) = lo;
    }
}

/* y[g][m][n] = sum_k w[g n + n][k] x[g][m][k] for the items (64 weight rows
 * each, over all groups' rows) of this block; one warpgroup per block. A
 * stage is BX boxes of 64 rows x 64 elements (128-byte swizzle), one tensor
 * copy each; a k-step is one m64n48k16 product (the three terms at once). */
template <int NS, int BX>
__global__ void __launch_bounds__(kThreads) gemm_tma_kernel(const __grid_constant__ CUtensorMap wmap,
                                                            const unsigned char *__restrict__ xb, int N, int K,
                                                            int items, float *y) {
    constexpr int SK = 64 * BX, SB = kBox * BX;
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    unsigned char *smem = smem_align1024(smem_raw); /* 1024 bytes reserved for this */
    __shared__ uint64_t full[NS], xbar[1];
    unsigned char *bres = smem + NS * SB; /* resident terms */
    const int slabs = (K + SK - 1) / SK, tb = x_bytes(K);
    const int i0 = (int)((int64_t)blockIdx.x * items / gridDim.x), i1 = (int)((int64_t)(blockIdx.x + 1) * items / gridDim.x);
    const int total = (i1 - i0) * slabs;
    if (total <= 0) return;
    /* The stages start as zeros: a tail stage's copies stop at K (no box wholly past the tensor
     * is issued), and what lies past K in a buffer is then zeros or an earlier stage's finite
     * weights, multiplied by the terms' zero padding. Written by ordinary stores, read by the
     * tensor cores: a proxy fence (once; no copy is in flight yet). */
    for (int i = threadIdx.x; i < NS * SB / 16; i += kThreads) reinterpret_cast<uint4 *>(smem)[i] = make_uint4(0, 0, 0, 0);
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
    if (threadIdx.x == 0) mbar_init(&xbar[0], 1);
    mbar_init_all<NS>(full); /* its fence and barrier cover xbar and the zeros too */
    /* stage n: item i0 + n / slabs, columns (n % slabs) * SK .. */
    auto issue = [&](int n) {
        if (threadIdx.x != 0 || n >= total) return;
        uint64_t *bar = &full[n % NS];
        unsigned char *dst = smem + (n % NS) * SB;
        const int row = (i0 + n / slabs) * kRowsItem, c0 = (n % slabs) * SK;
        const int boxes = min(BX, (K - c0 + 63) / 64);
        mbar_expect_tx(bar, (unsigned)boxes * kBox);
#pragma unroll 1
        for (int j = 0; j < boxes; j++) tma_copy_2d(dst + j * kBox, &wmap, c0 + 64 * j, row, bar);
    };
    for (int n = 0; n < NS - 1; n++) issue(n);

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, gq = lane >> 2, t = lane & 3;
    float acc[24]; /* an item's first product overwrites it */
#pragma unroll
    for (int i = 0; i < 24; i++) acc[i] = 0.0f;
    int cur = -1;
    unsigned xphase = 0;
    for (int s = 0; s < total; s++) {
        const int item = i0 + s / slabs, slab = s % slabs, g = item * kRowsItem / N;
        if (g != cur) { /* the group's terms: after every product that reads the old ones */
            wg_wait<0>();
            __syncthreads();
            if (threadIdx.x == 0) {
                mbar_expect_tx(&xbar[0], (unsigned)tb);
                bulk_copy(bres, xb + (size_t)g * tb, (unsigned)tb, &xbar[0]);
            }
            mbar_wait(&xbar[0], xphase);
            xphase ^= 1;
            cur = g;
        }
        mbar_wait(&full[s % NS], (unsigned)((s / NS) & 1));
        wg_fence();
        const unsigned char *buf = smem + (s % NS) * SB;
#pragma unroll
        for (int k = 0; k < 4 * BX; k++) {
            const uint64_t a = wg_desc_sw128(buf + (k / 4) * kBox + (k % 4) * 32);
            const int kq = slab * (SK / 8) + 2 * k; /* first 8-element unit of this k-step */
            wg_mma_n48(acc, a, wg_desc(bres + kq * kRowsX * 16, kRowsX * 16, 128), k > 0 || slab > 0);
        }
        wg_commit();
        /* the stage's products done before the loop goes on (products in
         * flight across the loop's back edge make the compiler wait at every
         * use anyway); the copies of the next NS - 1 stages stay in flight */
        wg_wait<0>();
        wg_fence_regs(acc);
        __syncthreads(); /* every warp's products are done: the buffer may be refilled */
        issue(s + NS - 1);
        if (slab == slabs - 1) { /* the item's outputs: column 8 j + 2 t (+1) of term j / 2 */
            const int r0 = item * kRowsItem - g * N + warp * 16 + gq; /* row within the group */
#pragma unroll
            for (int j = 0; j < 2; j++)
#pragma unroll
                for (int i = 0; i < 4; i++) {
                    const float v = (acc[4 * (j + 4) + i] + acc[4 * (j + 2) + i]) + acc[4 * j + i];
                    const int m = 8 * j + 2 * t + (i & 1), r = r0 + ((i & 2) ? 8 : 0);
                    y[((size_t)g * kM + m) * N + r] = v;
                }
        }
    }
}

void check(cudaError_t e, const char *what) {
    if (e != cudaSuccess) {
        fprintf(stderr, "bench_cuda_wgmma: %s: %s\n", what, cudaGetErrorString(e));
        exit(1);
    }
}

uint64_t rng = 0x2545f4914f6cdd1dull;
uint64_t rnd() {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

float bf16_to_f32(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

int cmp_float(const void *a, const void *b) {
    const float x = *static_cast<const float *>(a), y = *static_cast<const float *>(b);
    return x < y ? -1 : x > y;
}

struct shape {
    int groups, N, K;
    const char *what;
};

template <int NS, int BX>
size_t smem_bytes(const shape &sh) { return (size_t)NS * BX * kBox + x_bytes(sh.K) + 1024; }

template <int NS, int BX>
void launch(const CUtensorMap &map, const unsigned char *xb, const shape &sh, float *y, int grid, cudaStream_t st) {
    const int items = sh.groups * sh.N / kRowsItem;
    gemm_tma_kernel<NS, BX><<<grid, kThreads, smem_bytes<NS, BX>(sh), st>>>(map, xb, sh.N, sh.K, items, y);
}

template <int NS, int BX>
bool setup_kernel(const shape &sh, size_t smem_max) {
    const size_t smem = smem_bytes<NS, BX>(sh);
    if (smem + 1024 > smem_max) return false;
    check(cudaFuncSetAttribute(gemm_tma_kernel<NS, BX>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem), "smem");
    return true;
}

template <int NS, int BX>
void run_config(const shape &sh, const CUtensorMap *maps, int sets, const unsigned char *xb, float *y, int sms,
                size_t smem_max, int bps, int trials) {
    if (!setup_kernel<NS, BX>(sh, smem_max)) return;
    const size_t smem = smem_bytes<NS, BX>(sh);
    if ((smem + 1024) * (size_t)bps > smem_max) return;
    const int items = sh.groups * sh.N / kRowsItem;
    const int grid = items < sms * bps ? items : sms * bps;
    cudaEvent_t e0, e1;
    check(cudaEventCreate(&e0), "event");
    check(cudaEventCreate(&e1), "event");
    float t[32];
    for (int tr = -1; tr < trials; tr++) {
        check(cudaEventRecord(e0), "record");
        for (int r = 0; r < 32; r++) launch<NS, BX>(maps[r % sets], xb, sh, y, grid, 0);
        check(cudaEventRecord(e1), "record");
        check(cudaEventSynchronize(e1), "sync");
        if (tr >= 0) check(cudaEventElapsedTime(&t[tr], e0, e1), "elapsed");
    }
    check(cudaGetLastError(), "launch");
    qsort(t, (size_t)trials, sizeof t[0], cmp_float);
    const double us = t[trials / 2] * 1e3 / 32, bytes = (double)sh.groups * sh.N * sh.K * 2;
    printf("| %-24s | %d x %2d KB | %d | %3zu | %8.2f | %5.2f |\n", sh.what, NS, BX * 8, bps, smem / 1024, us, bytes / (us * 1e-6) / 1e12);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
}

} // namespace

int main(int argc, char **argv) {
    const bool quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) {
        printf("skipped: no CUDA device\n");
        return 0;
    }
    if (prop.major < 9) {
        printf("skipped: %s has no tensor copy engine / wgmma (compute capability %d.%d)\n", prop.name, prop.major,
               prop.minor);
        return 0;
    }
    const int sms = prop.multiProcessorCount;
    const size_t smem_max = (size_t)prop.sharedMemPerMultiprocessor;
    printf("%s, %d SMs, L2 %d MB\n\n", prop.name, sms, prop.l2CacheSize >> 20);
    const shape shapes[] = {{8, 960, 576, "8 x 960 x 576 (QKV)"},     {8, 576, 576, "8 x 576 x 576 (o)"},
                            {8, 3072, 576, "8 x 3072 x 576 (gate+up)"}, {8, 49152, 576, "8 x 49152 x 576 (head)"},
                            {1, 3072, 576, "1 x 3072 x 576"},          {1, 49152, 576, "1 x 49152 x 576 (head)"}};
    printf("| shape, 16 rows per group | stages | blocks/SM | KB/block | us/launch | TB/s |\n"
           "| --- | ---: | ---: | ---: | ---: | ---: |\n");
    int failures = 0;
    for (const shape &sh : shapes) {
        const size_t wbytes = (size_t)sh.groups * sh.N * sh.K * 2;
        const int sets = (int)((2 * (size_t)prop.l2CacheSize + wbytes - 1) / wbytes) + 1;
        /* weights: |w| in [2^-9, 1) as bf16; x in [-1, 1) */
        uint16_t *hw = static_cast<uint16_t *>(malloc(wbytes));
        float *hx = static_cast<float *>(malloc((size_t)sh.groups * kM * sh.K * 4));
        for (size_t i = 0; i < wbytes / 2; i++)
            hw[i] = (uint16_t)((rnd() & 1 ? 0x8000 : 0) | ((118 + rnd() % 9) << 7) | (rnd() & 127));
        for (size_t i = 0; i < (size_t)sh.groups * kM * sh.K; i++) hx[i] = (float)((double)(rnd() >> 11) / 4503599627370496.0 - 1.0);
        unsigned char **w = static_cast<unsigned char **>(malloc((size_t)sets * sizeof *w));
        CUtensorMap *maps = static_cast<CUtensorMap *>(malloc((size_t)sets * sizeof *maps));
        for (int i = 0; i < sets; i++) {
            check(cudaMalloc(&w[i], wbytes), "malloc");
            check(cudaMemcpy(w[i], hw, wbytes, cudaMemcpyHostToDevice), "upload");
            if (!bench_tensor_map_2d(&maps[i], w[i], (uint64_t)sh.K, (uint64_t)sh.groups * sh.N, (uint64_t)sh.K * 2, 64,
                                     kRowsItem, CU_TENSOR_MAP_SWIZZLE_128B)) {
                printf("skipped: no tensor maps (cuTensorMapEncodeTiled unavailable or refused)\n");
                return 0;
            }
        }
        float *x = nullptr, *y = nullptr;
        unsigned char *xb = nullptr;
        check(cudaMalloc(&x, (size_t)sh.groups * kM * sh.K * 4), "malloc");
        check(cudaMalloc(&y, (size_t)sh.groups * kM * sh.N * 4), "malloc");
        check(cudaMalloc(&xb, (size_t)sh.groups * x_bytes(sh.K)), "malloc");
        check(cudaMemcpy(x, hx, (size_t)sh.groups * kM * sh.K * 4, cudaMemcpyHostToDevice), "upload");
        split_terms<<<dim3(64, sh.groups), 256>>>(x, sh.K, xb);
        /* correctness: one call of each stage form (1 block per SM) */
        if (!setup_kernel<4, 1>(sh, smem_max) || !setup_kernel<3, 2>(sh, smem_max)) {
            printf("| %-24s | (does not fit) |\n", sh.what);
            continue;
        }
        float *hy = static_cast<float *>(malloc((size_t)sh.groups * kM * sh.N * 4));
        for (int form = 0; form < 2; form++) {
            check(cudaMemset(y, 0xff, (size_t)sh.groups * kM * sh.N * 4), "memset"); /* NaN: unwritten outputs fail */
            if (form == 0)
                launch<4, 1>(maps[0], xb, sh, y, sms, 0);
            else
                launch<3, 2>(maps[0], xb, sh, y, sms, 0);
            check(cudaDeviceSynchronize(), "check run");
            check(cudaMemcpy(hy, y, (size_t)sh.groups * kM * sh.N * 4, cudaMemcpyDeviceToHost), "download");
            /* every row up to 4096 rows per group; past that every 41st (41 is prime to the
             * 64-row items, so every row position of an item and every warp is covered) */
            const int step = sh.N > 4096 ? 41 : 1;
            double maxref = 0, maxerr = 0;
            for (int g = 0; g < sh.groups; g++)
                for (int n = 0; n < sh.N; n += step) {
                    const uint16_t *wr = hw + ((size_t)g * sh.N + n) * sh.K;
                    for (int m = 0; m < kM; m++) {
                        const float *xr = hx + ((size_t)g * kM + m) * sh.K;
                        double ref = 0;
                        for (int k = 0; k < sh.K; k++) ref += (double)bf16_to_f32(wr[k]) * (double)xr[k];
                        const double got = hy[((size_t)g * kM + m) * sh.N + n];
                        const double err = isnan(got) ? INFINITY : fabs(got - ref);
                        if (fabs(ref) > maxref) maxref = fabs(ref);
                        if (err > maxerr) maxerr = err;
                    }
                }
            const double rel = maxref > 0 ? maxerr / maxref : maxerr;
            const bool ok = rel <= 1e-5;
            failures += !ok;
            printf("| %-24s | check (%d KB stages): max |y - ref| / max |ref| = %.2g (limit 1e-5): %s |\n", sh.what,
                   8 * (form + 1), rel, ok ? "ok" : "FAIL");
        }
        free(hy);
        const int trials = quick ? 5 : 11;
        for (int bps = 1; bps <= 2; bps++) {
            run_config<4, 1>(sh, maps, sets, xb, y, sms, smem_max, bps, trials);
            run_config<6, 1>(sh, maps, sets, xb, y, sms, smem_max, bps, trials);
            run_config<8, 1>(sh, maps, sets, xb, y, sms, smem_max, bps, trials);
            run_config<3, 2>(sh, maps, sets, xb, y, sms, smem_max, bps, trials);
            run_config<4, 2>(sh, maps, sets, xb, y, sms, smem_max, bps, trials);
        }
        for (int i = 0; i < sets; i++) cudaFree(w[i]);
        cudaFree(x);
        cudaFree(y);
        cudaFree(xb);
        free(w);
        free(maps);
        free(hw);
        free(hx);
    }
    printf("\n%s\n", failures ? "FAILED: a shape's outputs are off" : "all shapes within 1e-5");
    return failures ? 1 : 0;
}
