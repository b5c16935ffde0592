/* Weight-streaming microbenchmark: how fast can a fixed grid of blocks pull
 * decode-GEMM weights from HBM through a ring of cp.async shared-memory
 * stages, with no tensor-core work? It separates the memory side of the
 * streamed GEMM (kernels/cuda/gemm_ring.cu) from its consumer side
 * (bench/NOTES.md, "Streamed GEMM": the GEMM reached 1.2-1.8 TB/s).
 *
 *   bench_cuda_stream [--mb N]      (default 1024 MB of weights)
 *
 * The weights are rows of 1152 bytes (K = 576 bf16), in items of 32 rows as
 * the GEMM takes them; each block streams a contiguous run of items. Access
 * patterns per stage:
 *   slab     32 rows x 256 bytes, rows 1152 bytes apart (the GEMM's stages)
 *   slab+x   the same plus 8 KB of a small, L2-resident activation buffer
 *   flat     8 KB contiguous (the item's bytes in order)
 *   regs     no shared memory: each warp loads 8 x 16 bytes per lane, then
 *            uses them (the tile kernels' batches)
 *   bulk     flat 8 KB stages by the copy engine (cp.async.bulk, one thread
 *            issues, completion on an mbarrier per stage)
 *   bslab    the slab stage by the copy engine: 32 row pieces of 256 bytes,
 *            issued by the lanes of warp 0 onto one mbarrier
 *   slab+f   slab with a generic-to-async proxy fence after each stage's
 *            wait, as the warpgroup GEMM form has (kernels/cuda/gemm_ring.cu)
 *   tma      the slab stage as one 2D tensor copy (cp.async.bulk.tensor, a
 *            tensor map over the weight rows, box 128 elements x 32 rows,
 *            past-the-row elements zero-filled), one thread issues,
 *            completion on an mbarrier per stage
 * for ring depths of 4, 6, 8 and 12 stages and 1-4 blocks per SM (as many
 * as fit). Each thread folds the 16 bytes it reads per stage into a value
 * that is written out, so no load is dead. Prints TB/s of weight bytes
 * (median of 9 timed runs after one warm-up, CUDA events) beside the
 * device-to-device copy bandwidth of the same buffer size.
 *
 * Then the decode-sized launches: back-to-back launches of 2-57 MB each (the
 * sizes of one fused layer's GEMMs and LM head), every launch on a fresh
 * slice of the buffer so none is an L2 hit: microseconds per launch and
 * TB/s, i.e. what the ramp and the tail of a short kernel cost.
 */
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/cuda/cuda_common.cuh"
#include "../kernels/cuda/hopper.cuh"
#include "tensor_map.h"

namespace {

constexpr int kThreads = 128;
constexpr int kRow = 1152, kRows = 32, kItem = kRow * kRows; /* bytes */
constexpr int kSlab = 256, kSlabs = (kRow + kSlab - 1) / kSlab;
constexpr int kStageW = kRows * kSlab; /* 8 KB */
constexpr int kStageX = 8192;
enum { P_SLAB = 0, P_SLABX = 1, P_FLAT = 2, P_REGS = 3, P_BULK = 4, P_BSLAB = 5, P_SLABF = 6 };

__host__ __device__ constexpr int stage_bytes(int p) { return p == P_SLABX ? kStageW + kStageX : kStageW; }

/* the stage's copies for thread threadIdx.x: 4 pieces of 16 bytes (+ 4 of x) */
template <int P>
__device__ __forceinline__ void issue(const unsigned char *item, int slab, const unsigned char *x, unsigned char *buf) {
    const int t = threadIdx.x;
#pragma unroll
    for (int q = 0; q < 4; q++) {
        const int piece = t + kThreads * q; /* 0 .. 511 */
        if (P == P_FLAT) {
            const int off = slab * kStageW + piece * 16;
            if (off < kItem) cp_async16(buf + piece * 16, item + off);
        } else {
            const int r = piece >> 4, j = piece & 15, col = slab * kSlab + j * 16;
            if (col < kRow) cp_async16(buf + piece * 16, item + r * kRow + col);
        }
    }
    if (P == P_SLABX) {
#pragma unroll
        for (int q = 0; q < 4; q++) {
            const int piece = t + kThreads * q;
            cp_async16(buf + kStageW + piece * 16, x + ((slab * kStageX + piece * 16) & (64 * 1024 - 1)));
        }
    }
}

template <int P, int NS>
__global__ void __launch_bounds__(kThreads) ring_kernel(const unsigned char *__restrict__ w, int64_t items,
                                                        const unsigned char *__restrict__ x, uint4 *out) {
    extern __shared__ __align__(16) unsigned char smem[];
    constexpr int SB = stage_bytes(P);
    const int64_t i0 = (int64_t)blockIdx.x * items / gridDim.x, i1 = ((int64_t)blockIdx.x + 1) * items / gridDim.x;
    const int64_t total = (i1 - i0) * kSlabs; /* stages of this block */
    uint4 acc = make_uint4(0, 0, 0, 0);
    for (int64_t s = 0; s < NS - 1; s++) {
        if (s < total) issue<P>(w + (i0 + s / kSlabs) * kItem, (int)(s % kSlabs), x, smem + s * SB);
        cp_async_commit();
    }
    for (int64_t s = 0; s < total; s++) {
        cp_async_wait<NS - 2>();
        /* slab+fence: the proxy fence the warpgroup GEMM issues here before
         * the tensor cores read the stage (does it wait for the later stages' copies too?) */
        if (P == P_SLABF) asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
        __syncthreads();
        const int64_t n = s + NS - 1;
        if (n < total) issue<P>(w + (i0 + n / kSlabs) * kItem, (int)(n % kSlabs), x, smem + (n % NS) * SB);
        cp_async_commit();
        const uint4 v = *reinterpret_cast<const uint4 *>(smem + (s % NS) * SB + threadIdx.x * 16);
        acc.x ^= v.x, acc.y ^= v.y, acc.z ^= v.z, acc.w ^= v.w;
    }
    cp_async_wait<0>();
    out[(int64_t)blockIdx.x * kThreads + threadIdx.x] = acc;
}

/* stage n of the block's run by the copy engine: flat (one copy) or slab (32 row pieces by warp 0's lanes) */
template <int P>
__device__ __forceinline__ void bulk_issue(const unsigned char *item, int slab, unsigned char *buf, uint64_t *bar) {
    if (P == P_BULK) {
        if (threadIdx.x == 0) {
            const int off = slab * kStageW, n = min(kStageW, kItem - off);
            mbar_expect_tx(bar, (unsigned)n);
            bulk_copy(buf, item + off, (unsigned)n, bar);
        }
    } else if (threadIdx.x < 32) {
        const int col = slab * kSlab, n = min(kSlab, kRow - col);
        if (threadIdx.x == 0) mbar_expect_tx(bar, (unsigned)(n * kRows));
        __syncwarp();
        bulk_copy(buf + threadIdx.x * kSlab, item + threadIdx.x * kRow + col, (unsigned)n, bar);
    }
}

template <int P, int NS>
__global__ void __launch_bounds__(kThreads) bulk_kernel(const unsigned char *__restrict__ w, int64_t items, uint4 *out) {
    extern __shared__ __align__(16) unsigned char smem[];
    __shared__ uint64_t bar[NS];
    const int64_t i0 = (int64_t)blockIdx.x * items / gridDim.x, i1 = ((int64_t)blockIdx.x + 1) * items / gridDim.x;
    const int64_t total = (i1 - i0) * kSlabs;
    mbar_init_all<NS>(bar);
    uint4 acc = make_uint4(0, 0, 0, 0);
    for (int64_t s = 0; s < NS - 1 && s < total; s++)
        bulk_issue<P>(w + (i0 + s / kSlabs) * kItem, (int)(s % kSlabs), smem + s * kStageW, &bar[s]);
    for (int64_t s = 0; s < total; s++) {
        __syncthreads(); /* stage (s - 1) % NS is free: every thread is done with it */
        const int64_t n = s + NS - 1;
        if (n < total) bulk_issue<P>(w + (i0 + n / kSlabs) * kItem, (int)(n % kSlabs), smem + (n % NS) * kStageW, &bar[n % NS]);
        mbar_wait(&bar[s % NS], (unsigned)((s / NS) & 1));
        const uint4 v = *reinterpret_cast<const uint4 *>(smem + (s % NS) * kStageW + threadIdx.x * 16);
        acc.x ^= v.x, acc.y ^= v.y, acc.z ^= v.z, acc.w ^= v.w;
    }
    out[(int64_t)blockIdx.x * kThreads + threadIdx.x] = acc;
}

/* the slab stages of items [i0, i1) (item i = rows 32 (row0 + i) ..) by the tensor copy engine */
template <int NS>
__global__ void __launch_bounds__(kThreads) tma_kernel(const __grid_constant__ CUtensorMap map, int64_t row0,
                                                       int64_t items, uint4 *out) {
    extern __shared__ __align__(128) unsigned char tsmem_raw[];
    unsigned char *tsmem = smem_align128(tsmem_raw); /* 128 bytes reserved for this */
    __shared__ uint64_t bar[NS];
    const int64_t i0 = (int64_t)blockIdx.x * items / gridDim.x, i1 = ((int64_t)blockIdx.x + 1) * items / gridDim.x;
    const int64_t total = (i1 - i0) * kSlabs;
    mbar_init_all<NS>(bar);
    auto issue_t = [&](int64_t n) {
        if (threadIdx.x == 0) {
            const int64_t it = i0 + n / kSlabs;
            mbar_expect_tx(&bar[n % NS], (unsigned)kStageW);
            tma_copy_2d(tsmem + (n % NS) * kStageW, &map, (int)(n % kSlabs) * 128, (int)((row0 + it) * kRows), &bar[n % NS]);
        }
    };
    uint4 acc = make_uint4(0, 0, 0, 0);
    for (int64_t n = 0; n < NS - 1 && n < total; n++) issue_t(n);
    for (int64_t s = 0; s < total; s++) {
        __syncthreads(); /* stage (s - 1) % NS is free */
        if (s + NS - 1 < total) issue_t(s + NS - 1);
        mbar_wait(&bar[s % NS], (unsigned)((s / NS) & 1));
        const uint4 v = *reinterpret_cast<const uint4 *>(tsmem + (s % NS) * kStageW + threadIdx.x * 16);
        acc.x ^= v.x, acc.y ^= v.y, acc.z ^= v.z, acc.w ^= v.w;
    }
    out[(int64_t)blockIdx.x * kThreads + threadIdx.x] = acc;
}

/* registers: warp w of the block takes 16-byte pieces of its items, 8 per lane in flight */
__global__ void __launch_bounds__(kThreads) regs_kernel(const unsigned char *__restrict__ w, int64_t items, uint4 *out) {
    const int64_t i0 = (int64_t)blockIdx.x * items / gridDim.x, i1 = ((int64_t)blockIdx.x + 1) * items / gridDim.x;
    const int64_t b0 = i0 * kItem, b1 = i1 * kItem;
    uint4 acc = make_uint4(0, 0, 0, 0);
    for (int64_t b = b0 + threadIdx.x * 16; b < b1; b += 8 * kThreads * 16) {
        uint4 v[8];
#pragma unroll
        for (int u = 0; u < 8; u++) {
            const int64_t o = b + (int64_t)u * kThreads * 16;
            v[u] = o < b1 ? __ldg(reinterpret_cast<const uint4 *>(w + o)) : make_uint4(0, 0, 0, 0);
        }
#pragma unroll
        for (int u = 0; u < 8; u++) acc.x ^= v[u].x, acc.y ^= v[u].y, acc.z ^= v[u].z, acc.w ^= v[u].w;
    }
    out[(int64_t)blockIdx.x * kThreads + threadIdx.x] = acc;
}

void check(cudaError_t e, const char *what) {
    if (e != cudaSuccess) {
        fprintf(stderr, "bench_cuda_stream: %s: %s\n", what, cudaGetErrorString(e));
        exit(1);
    }
}

int cmp_float(const void *a, const void *b) {
    const float x = *static_cast<const float *>(a), y = *static_cast<const float *>(b);
    return x < y ? -1 : x > y;
}

/* median ms of 9 runs of f after one warm-up */
template <typename F>
float time_ms(F f) {
    cudaEvent_t e0, e1;
    check(cudaEventCreate(&e0), "event");
    check(cudaEventCreate(&e1), "event");
    f();
    check(cudaGetLastError(), "launch");
    float t[9];
    for (int i = 0; i < 9; i++) {
        check(cudaEventRecord(e0), "record");
        f();
        check(cudaEventRecord(e1), "record");
        check(cudaEventSynchronize(e1), "sync");
        check(cudaEventElapsedTime(&t[i], e0, e1), "elapsed");
    }
    check(cudaGetLastError(), "launch");
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    qsort(t, 9, sizeof t[0], cmp_float);
    return t[4];
}

template <int P, int NS>
void run_ring(const char *name, const unsigned char *w, int64_t items, const unsigned char *x, uint4 *out, int sms,
              size_t smem_max) {
    const size_t smem = (size_t)NS * stage_bytes(P);
    check(cudaFuncSetAttribute(ring_kernel<P, NS>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem), "smem");
    for (int bps = 1; bps <= 4; bps++) {
        if ((smem + 1024) * (size_t)bps > smem_max) break;
        const int grid = sms * bps;
        const float ms = time_ms([&] { ring_kernel<P, NS><<<grid, kThreads, smem>>>(w, items, x, out); });
        printf("| %-6s | %2d | %d | %3zu | %6.2f |\n", name, NS, bps, smem / 1024, (double)items * kItem / (ms * 1e-3) / 1e12);
    }
}

template <int P, int NS>
void run_bulk(const char *name, const unsigned char *w, int64_t items, uint4 *out, int sms, size_t smem_max) {
    const size_t smem = (size_t)NS * kStageW;
    check(cudaFuncSetAttribute(bulk_kernel<P, NS>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem), "smem");
    for (int bps = 1; bps <= 4; bps++) {
        if ((smem + 1024) * (size_t)bps > smem_max) break;
        const int grid = sms * bps;
        const float ms = time_ms([&] { bulk_kernel<P, NS><<<grid, kThreads, smem>>>(w, items, out); });
        printf("| %-6s | %2d | %d | %3zu | %6.2f |\n", name, NS, bps, smem / 1024, (double)items * kItem / (ms * 1e-3) / 1e12);
    }
}

/* Decode-sized launches: `reps` back-to-back launches of `mb` MB each, launch
 * i on slice i of the buffer (slices cycle through all of it, so each is
 * cold in L2). launch(w_slice, items) enqueues one. Prints us per launch. */
template <typename F>
void run_small(const char *name, const unsigned char *w, int64_t all_items, double mb, F launch) {
    const int64_t items = (int64_t)(mb * 1024 * 1024 / kItem);
    const int64_t slices = all_items / items;
    const int reps = 200;
    const float ms = time_ms([&] {
        for (int r = 0; r < reps; r++) launch(w + (int64_t)(r % slices) * items * kItem, items);
    });
    const double us = ms * 1e3 / reps;
    printf("| %-14s | %5.1f | %7.2f | %5.2f |\n", name, mb, us, (double)items * kItem / (us * 1e-6) / 1e12);
}

template <int NS>
void run_tma(const CUtensorMap &map, int64_t items, uint4 *out, int sms, size_t smem_max) {
    const size_t smem = (size_t)NS * kStageW + 128;
    check(cudaFuncSetAttribute(tma_kernel<NS>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem), "smem");
    for (int bps = 1; bps <= 4; bps++) {
        if ((smem + 1024) * (size_t)bps > smem_max) break;
        const float ms = time_ms([&] { tma_kernel<NS><<<sms * bps, kThreads, smem>>>(map, 0, items, out); });
        printf("| %-6s | %2d | %d | %3zu | %6.2f |\n", "tma", NS, bps, smem / 1024, (double)items * kItem / (ms * 1e-3) / 1e12);
    }
}

} // namespace

int main(int argc, char **argv) {
    int64_t mb = 1024;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--mb") == 0 && i + 1 < argc) mb = atoll(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_cuda_stream [--mb N]\n");
            return 2;
        }
    }
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) {
        printf("skipped: no CUDA device\n");
        return 0;
    }
    const int64_t items = mb * 1024 * 1024 / kItem;
    const size_t bytes = (size_t)items * kItem;
    unsigned char *w = nullptr, *w2 = nullptr, *x = nullptr;
    uint4 *out = nullptr;
    check(cudaMalloc(&w, bytes), "malloc");
    check(cudaMalloc(&w2, bytes), "malloc");
    check(cudaMalloc(&x, 64 * 1024), "malloc");
    check(cudaMalloc(&out, (size_t)prop.multiProcessorCount * 8 * kThreads * sizeof(uint4)), "malloc");
    check(cudaMemset(w, 0x5a, bytes), "memset");
    check(cudaMemset(x, 0x33, 64 * 1024), "memset");
    const int sms = prop.multiProcessorCount;
    const float copy_ms = time_ms([&] { check(cudaMemcpyAsync(w2, w, bytes, cudaMemcpyDeviceToDevice), "copy"); });
    printf("%s, %d SMs, %zu MB of weights; copy (read + write) %.2f TB/s\n\n", prop.name, sms, bytes >> 20,
           2.0 * (double)bytes / (copy_ms * 1e-3) / 1e12);
    printf("| pattern | stages | blocks/SM | KB/block | TB/s |\n| --- | ---: | ---: | ---: | ---: |\n");
    const size_t smem_max = (size_t)prop.sharedMemPerMultiprocessor;
    run_ring<P_SLAB, 4>("slab", w, items, x, out, sms, smem_max);
    run_ring<P_SLAB, 6>("slab", w, items, x, out, sms, smem_max);
    run_ring<P_SLAB, 8>("slab", w, items, x, out, sms, smem_max);
    run_ring<P_SLAB, 12>("slab", w, items, x, out, sms, smem_max);
    run_ring<P_SLABF, 4>("slab+f", w, items, x, out, sms, smem_max);
    run_ring<P_SLABF, 8>("slab+f", w, items, x, out, sms, smem_max);
    run_ring<P_SLABX, 4>("slab+x", w, items, x, out, sms, smem_max);
    run_ring<P_SLABX, 6>("slab+x", w, items, x, out, sms, smem_max);
    run_ring<P_FLAT, 6>("flat", w, items, x, out, sms, smem_max);
    run_ring<P_FLAT, 12>("flat", w, items, x, out, sms, smem_max);
    for (int bps = 1; bps <= 8; bps *= 2) {
        const float ms = time_ms([&] { regs_kernel<<<sms * bps, kThreads>>>(w, items, out); });
        printf("| regs   |  - | %d |   0 | %6.2f |\n", bps, (double)bytes / (ms * 1e-3) / 1e12);
    }
    run_bulk<P_BULK, 4>("bulk", w, items, out, sms, smem_max);
    run_bulk<P_BULK, 6>("bulk", w, items, out, sms, smem_max);
    run_bulk<P_BULK, 8>("bulk", w, items, out, sms, smem_max);
    run_bulk<P_BULK, 12>("bulk", w, items, out, sms, smem_max);
    run_bulk<P_BSLAB, 6>("bslab", w, items, out, sms, smem_max);
    run_bulk<P_BSLAB, 8>("bslab", w, items, out, sms, smem_max);

    CUtensorMap map;
    const bool have_map = bench_tensor_map_2d(&map, w, kRow / 2, (uint64_t)(items * kRows), kRow, 128, kRows);
    if (have_map) {
        run_tma<4>(map, items, out, sms, smem_max);
        run_tma<6>(map, items, out, sms, smem_max);
        run_tma<8>(map, items, out, sms, smem_max);
    } else {
        printf("| tma | (no tensor maps: cuTensorMapEncodeTiled unavailable) |\n");
    }

    printf("\nDecode-sized launches (200 back to back, each on a cold slice):\n\n");
    printf("| kernel | MB | us/launch | TB/s |\n| --- | ---: | ---: | ---: |\n");
    const double sizes[] = {2.2, 5.3, 8.8, 14.2, 28.3, 56.6};
    for (double mb : sizes) {
        run_small("slab 6st 2/SM", w, items, mb, [&](const unsigned char *ws, int64_t n) {
            ring_kernel<P_SLAB, 6><<<sms * 2, kThreads, 6 * kStageW>>>(ws, n, x, out);
        });
        run_small("slab 8st 2/SM", w, items, mb, [&](const unsigned char *ws, int64_t n) {
            ring_kernel<P_SLAB, 8><<<sms * 2, kThreads, 8 * kStageW>>>(ws, n, x, out);
        });
        run_small("slab+f 6st 2/SM", w, items, mb, [&](const unsigned char *ws, int64_t n) {
            ring_kernel<P_SLABF, 6><<<sms * 2, kThreads, 6 * kStageW>>>(ws, n, x, out);
        });
        run_small("flat 6st 3/SM", w, items, mb, [&](const unsigned char *ws, int64_t n) {
            ring_kernel<P_FLAT, 6><<<sms * 3, kThreads, 6 * kStageW>>>(ws, n, x, out);
        });
        run_small("bulk 6st 2/SM", w, items, mb, [&](const unsigned char *ws, int64_t n) {
            bulk_kernel<P_BULK, 6><<<sms * 2, kThreads, 6 * kStageW>>>(ws, n, out);
        });
        run_small("bulk 8st 1/SM", w, items, mb, [&](const unsigned char *ws, int64_t n) {
            bulk_kernel<P_BULK, 8><<<sms, kThreads, 8 * kStageW>>>(ws, n, out);
        });
        run_small("bslab 8st 2/SM", w, items, mb, [&](const unsigned char *ws, int64_t n) {
            bulk_kernel<P_BSLAB, 8><<<sms * 2, kThreads, 8 * kStageW>>>(ws, n, out);
        });
        if (have_map)
            run_small("tma 6st 2/SM", w, items, mb, [&](const unsigned char *ws, int64_t n) {
                tma_kernel<6><<<sms * 2, kThreads, 6 * kStageW + 128>>>(map, (ws - w) / kItem, n, out);
            });
        run_small("regs 4/SM", w, items, mb,
                  [&](const unsigned char *ws, int64_t n) { regs_kernel<<<sms * 4, kThreads>>>(ws, n, out); });
        run_small("memcpy d2d", w, items, mb, [&](const unsigned char *ws, int64_t n) {
            check(cudaMemcpyAsync(w2, ws, (size_t)n * kItem, cudaMemcpyDeviceToDevice), "copy");
        });
    }
    cudaFree(w);
    cudaFree(w2);
    cudaFree(x);
    cudaFree(out);
    return 0;
}
