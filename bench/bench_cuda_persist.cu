/* Kernel boundaries against grid barriers: what one dependent decode op costs
 * when every op is its own kernel (graph-replayed, with and without
 * programmatic dependent launch) and when one persistent kernel walks all the
 * ops with a grid-wide barrier between them.
 *
 *   bench_cuda_persist [--layers L] [--reps R]
 *
 * The workload is the GEMV chain of a SmolLM-135M-shaped decode step at one
 * row: per layer four bf16 matrix-vector products, K x N = 576 x 960 (QKV),
 * 576 x 576 (o), 576 x 3072 (gate+up) and 1536 x 576 (down), each op reading
 * the previous op's output (f32) and writing its own, every op with its own
 * weights (30 layers: 212 MB, so replays do not hit L2). A warp computes rows
 * gw, gw + W, ...; the first two of its rows' weights are loaded into
 * registers before the wait (the kernel's griddepcontrol.wait, or the grid
 * barrier), the activation after it, so both forms overlap the weight loads
 * with the previous op in the same way and compute bitwise the same result.
 *
 * Forms:
 *   graph      one kernel per op in a CUDA graph, no PDL
 *   graph+pdl  the same with programmatic stream serialization
 *   persist    one cooperative launch, ops separated by a grid barrier
 *              (__syncthreads; thread 0: fence, atomic add, spin on an
 *              acquire load; __syncthreads)
 * each with and without the GEMV work ("empty": the boundary alone), for 1 and
 * 2 blocks of 256 threads per SM, and with each op asking L2 for the weights of
 * the op 1, 2, 4 or 8 ahead (cp.async.bulk.prefetch.L2, each block its share;
 * the first op also for the ops before that). Prints microseconds per op (median of
 * R replays after one warm-up) and the weight bytes' TB/s beside the
 * device-to-device copy bandwidth.
 */
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <climits>
#include <vector>

#include "../kernels/cuda/cuda_common.cuh"

namespace {

constexpr int kThreads = 256, kWarps = kThreads / 32;
constexpr int kRW = 2;   /* rows per warp whose weights are loaded before the wait */
constexpr int kMaxJ = 6; /* 16-byte pieces per lane and row: K <= 6 * 32 * 8 = 1536 */

struct Op {
    const uint4 *w; /* N rows of K bf16 */
    int K, N;
};

void check(cudaError_t e, const char *what) {
    if (e != cudaSuccess) {
        fprintf(stderr, "bench_cuda_persist: %s: %s\n", what, cudaGetErrorString(e));
        exit(1);
    }
}

__device__ __forceinline__ void prefetch(const Op &op, int gw, int W, uint4 (&wr)[kRW][kMaxJ]) {
    const int lane = threadIdx.x & 31, kv = op.K / 8;
#pragma unroll
    for (int k = 0; k < kRW; k++) {
        const int r = gw + k * W;
#pragma unroll
        for (int j = 0; j < kMaxJ; j++) {
            const int c = lane + 32 * j;
            wr[k][j] = r < op.N && c < kv ? __ldg(op.w + (int64_t)r * kv + c) : make_uint4(0, 0, 0, 0);
        }
    }
}

/* x in global memory read through L2 only (XS 0: other blocks wrote it), staged in shared memory (1), or in
 * global memory through the read-only L1 path (2: kernels only, where x was written by an earlier kernel) */
template <int XS> __device__ __forceinline__ float4 ldx(const float *x) {
    return XS == 1 ? *reinterpret_cast<const float4 *>(x)
         : XS == 2 ? __ldg(reinterpret_cast<const float4 *>(x))
                   : __ldcg(reinterpret_cast<const float4 *>(x));
}

/* 8 bf16 weights against 8 activations */
__device__ __forceinline__ float dot8v(const uint4 w, const float4 a, const float4 b) {
    return bf16_bits_to_f32(w.x & 0xffff) * a.x + bf16_bits_to_f32(w.x >> 16) * a.y +
           bf16_bits_to_f32(w.y & 0xffff) * a.z + bf16_bits_to_f32(w.y >> 16) * a.w +
           bf16_bits_to_f32(w.z & 0xffff) * b.x + bf16_bits_to_f32(w.z >> 16) * b.y +
           bf16_bits_to_f32(w.w & 0xffff) * b.z + bf16_bits_to_f32(w.w >> 16) * b.w;
}

template <int XS> __device__ __forceinline__ float dot8(const uint4 w, const float *x) {
    return dot8v(w, ldx<XS>(x), ldx<XS>(x + 4));
}

/* XS 1: the block copies x (K floats) to xsm, one 16-byte load per thread and piece, and reads it there */
template <int XS> __device__ __forceinline__ const float *stage_x(const float *xg, int K, float *xsm) {
    if (XS == 1) {
        for (int c = threadIdx.x; c < K / 4; c += kThreads)
            reinterpret_cast<float4 *>(xsm)[c] = __ldcg(reinterpret_cast<const float4 *>(xg) + c);
        __syncthreads();
        return xsm;
    }
    return xg;
}

/* The rows of this warp past the first kRW, whose weights are loaded after the wait */
template <int XS>
__device__ __forceinline__ void rest_rows(const Op &op, int gw, int W, const float *x, float *y) {
    const int lane = threadIdx.x & 31, kv = op.K / 8;
    for (int r = gw + kRW * W; r < op.N; r += W) {
        float acc = 0.0f;
        for (int c = lane; c < kv; c += 32) acc += dot8<XS>(__ldg(op.w + (int64_t)r * kv + c), x + 8 * c);
        acc = warp_sum(acc);
        if (lane == 0) y[r] = acc;
    }
}

/* XS: the block first copies x (K floats) to shared memory, one 16-byte load per thread and piece, so each
 * block reads x from L2 once instead of each warp. */
template <int XS>
__device__ __forceinline__ void compute(const Op &op, int gw, int W, const uint4 (&wr)[kRW][kMaxJ], const float *xg,
                                        float *y) {
    __shared__ __align__(16) float xsm[1536];
    const int lane = threadIdx.x & 31, kv = op.K / 8;
    const float *x = stage_x<XS>(xg, op.K, xsm);
#pragma unroll
    for (int k = 0; k < kRW; k++) {
        const int r = gw + k * W;
        if (r >= op.N) break;
        float acc = 0.0f;
#pragma unroll
        for (int j = 0; j < kMaxJ; j++) {
            const int c = lane + 32 * j;
            if (c < kv) acc += dot8<XS>(wr[k][j], x + 8 * c);
        }
        acc = warp_sum(acc);
        if (lane == 0) y[r] = acc;
    }
    rest_rows<XS>(op, gw, W, x, y);
    if (XS == 1) __syncthreads(); /* xsm is free for the next op */
}

/* Asks L2 for this block's share of op j's weights (one bulk prefetch per 4 KB piece, by warp 0's lanes). */
__device__ __forceinline__ void l2_prefetch(const Op *__restrict__ ops, int j, int n_ops) {
    if (j >= n_ops || threadIdx.x >= 32) return;
    const Op op = ops[j];
    const int64_t bytes = (int64_t)op.K * op.N * 2, share = ((bytes + gridDim.x - 1) / gridDim.x + 4095) & ~(int64_t)4095;
    const int64_t b0 = blockIdx.x * share, b1 = b0 + share < bytes ? b0 + share : bytes;
    const char *base = reinterpret_cast<const char *>(op.w);
    for (int64_t b = b0 + threadIdx.x * 4096; b < b1; b += 32 * 4096) {
        const unsigned n = (unsigned)(b1 - b < 4096 ? b1 - b : 4096);
        asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(base + b), "r"(n) : "memory");
    }
}

template <bool WORK, int XS>
__global__ void __launch_bounds__(kThreads) op_kernel(const Op *__restrict__ ops, int i, float *a0, float *a1, int pf,
                                                      int n_ops) {
    pdl_trigger();
    const int W = gridDim.x * kWarps, gw = blockIdx.x * kWarps + (threadIdx.x >> 5);
    const Op op = ops[i];
    if (pf > 0) {
        if (i == 0)
            for (int j = 1; j < pf; j++) l2_prefetch(ops, j, n_ops);
        l2_prefetch(ops, i + pf, n_ops);
    }
    uint4 wr[kRW][kMaxJ];
    if (WORK) prefetch(op, gw, W, wr);
    pdl_wait();
    if (WORK) compute<XS>(op, gw, W, wr, (i & 1) ? a1 : a0, (i & 1) ? a0 : a1);
    else if (threadIdx.x == 0 && blockIdx.x == 0) a1[i & 1023] = (float)i;
}

__device__ __forceinline__ unsigned ld_acquire(const unsigned *p) {
    unsigned v;
    asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
}

__device__ __forceinline__ void grid_barrier(unsigned *count, unsigned target) {
    __syncthreads();
    if (threadIdx.x == 0) {
        __threadfence();
        atomicAdd(count, 1u);
        while (ld_acquire(count) < target) {
        }
    }
    __syncthreads();
}

template <bool WORK, int XS>
__global__ void __launch_bounds__(kThreads) persist_kernel(const Op *__restrict__ ops, int n_ops, float *a0, float *a1,
                                                           unsigned *count, int pf) {
    const int W = gridDim.x * kWarps, gw = blockIdx.x * kWarps + (threadIdx.x >> 5);
    for (int j = 1; j < pf; j++) l2_prefetch(ops, j, n_ops);
    for (int i = 0; i < n_ops; i++) {
        const Op op = ops[i];
        if (pf > 0) l2_prefetch(ops, i + pf, n_ops);
        uint4 wr[kRW][kMaxJ];
        if (WORK) prefetch(op, gw, W, wr);
        if (i > 0) grid_barrier(count, (unsigned)i * gridDim.x);
        if (WORK) compute<XS>(op, gw, W, wr, (i & 1) ? a1 : a0, (i & 1) ? a0 : a1);
        else if (threadIdx.x == 0 && blockIdx.x == 0) a1[i & 1023] = (float)i;
    }
}

/* The persistent form with warp 0 of each block timing its phases (SM clock),
 * T[op][block][0..6]: op start, after the weight requests, after the barrier,
 * x arrived, weights arrived, row stored; plus the last op's end. Lane 0's
 * stores to `sink` make each clock read wait for the values before it. */
__device__ __forceinline__ long long clk() {
    long long c;
    asm volatile("mov.u64 %0, %%clock64;" : "=l"(c)::"memory");
    return c;
}

template <int XS>
__global__ void __launch_bounds__(kThreads) trace_kernel(const Op *__restrict__ ops, int n_ops, float *a0, float *a1,
                                                         unsigned *count, long long *T, unsigned long long *gt) {
    __shared__ volatile float sink;
    const int W = gridDim.x * kWarps, gw = blockIdx.x * kWarps + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    const bool rec = threadIdx.x == 0;
    unsigned long long g0;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(g0));
    const long long c0 = clk();
    for (int i = 0; i < n_ops; i++) {
        long long *t = T + ((int64_t)i * gridDim.x + blockIdx.x) * 6;
        if (rec) t[0] = clk();
        const Op op = ops[i];
        uint4 wr[kRW][kMaxJ];
        prefetch(op, gw, W, wr);
        if (rec) t[1] = clk();
        if (i > 0) grid_barrier(count, (unsigned)i * gridDim.x);
        if (rec) t[2] = clk();
        __shared__ __align__(16) float xsm[1536];
        const float *x = stage_x<XS>((i & 1) ? a1 : a0, op.K, xsm);
        float *y = (i & 1) ? a0 : a1;
        const int kv = op.K / 8;
        float4 xr[kMaxJ][2];
#pragma unroll
        for (int j = 0; j < kMaxJ; j++) {
            const int c = lane + 32 * j;
            xr[j][0] = c < kv ? ldx<XS>(x + 8 * c) : make_float4(0, 0, 0, 0);
            xr[j][1] = c < kv ? ldx<XS>(x + 8 * c + 4) : make_float4(0, 0, 0, 0);
        }
        float xs = 0;
#pragma unroll
        for (int j = 0; j < kMaxJ; j++) xs += xr[j][0].x + xr[j][1].w;
        if (rec) sink = xs, t[3] = clk();
        unsigned ws = 0;
#pragma unroll
        for (int k = 0; k < kRW; k++)
#pragma unroll
            for (int j = 0; j < kMaxJ; j++) ws ^= wr[k][j].x ^ wr[k][j].w;
        if (rec) sink = (float)ws, t[4] = clk();
#pragma unroll
        for (int k = 0; k < kRW; k++) {
            const int r = gw + k * W;
            if (r >= op.N) break;
            float acc = 0.0f;
#pragma unroll
            for (int j = 0; j < kMaxJ; j++) acc += dot8v(wr[k][j], xr[j][0], xr[j][1]);
            acc = warp_sum(acc);
            if (lane == 0) y[r] = acc;
        }
        rest_rows<XS>(op, gw, W, x, y);
        if (XS) __syncthreads();
        if (rec) t[5] = clk();
    }
    if (rec) {
        unsigned long long g1;
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(g1));
        gt[blockIdx.x * 2] = g1 - g0;
        gt[blockIdx.x * 2 + 1] = (unsigned long long)(clk() - c0);
    }
}

__global__ void fill_bf16(uint16_t *w, int64_t n, uint32_t seed) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        uint32_t h = (uint32_t)i * 2654435761u ^ seed;
        h ^= h >> 15, h *= 2246822519u, h ^= h >> 13;
        const float v = ((float)(h & 0xffff) / 65535.0f - 0.5f) * 0.144f; /* std 1/sqrt(576): the 576-wide ops keep the scale */
        w[i] = __bfloat16_as_ushort(__float2bfloat16(v));
    }
}

template <class F> float median_ms(int reps, F &&f) {
    cudaEvent_t e0, e1;
    check(cudaEventCreate(&e0), "event");
    check(cudaEventCreate(&e1), "event");
    f(); /* warm-up */
    check(cudaDeviceSynchronize(), "warm-up");
    std::vector<float> t;
    for (int r = 0; r < reps; r++) {
        check(cudaEventRecord(e0), "record");
        f();
        check(cudaEventRecord(e1), "record");
        check(cudaEventSynchronize(e1), "sync");
        float ms = 0;
        check(cudaEventElapsedTime(&ms, e0, e1), "elapsed");
        t.push_back(ms);
    }
    std::sort(t.begin(), t.end());
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    return t[t.size() / 2];
}

} // namespace

int main(int argc, char **argv) {
    int layers = 30, reps = 21;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--layers") == 0 && i + 1 < argc) layers = atoi(argv[++i]);
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) reps = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_cuda_persist [--layers L] [--reps R]\n");
            return 2;
        }
    }
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) {
        printf("skipped: no CUDA device\n");
        return 0;
    }
    const int sms = prop.multiProcessorCount;
    const int shape[4][2] = {{576, 960}, {576, 576}, {576, 3072}, {1536, 576}};
    const int n_ops = 4 * layers;
    std::vector<Op> ops(n_ops);
    int64_t total = 0;
    for (int i = 0; i < n_ops; i++) total += (int64_t)shape[i % 4][0] * shape[i % 4][1];
    uint16_t *w = nullptr;
    check(cudaMalloc(&w, (size_t)total * 2), "malloc");
    fill_bf16<<<sms * 8, 256>>>(w, total, 12345u);
    int64_t off = 0;
    for (int i = 0; i < n_ops; i++) {
        ops[i] = Op{reinterpret_cast<const uint4 *>(w + off), shape[i % 4][0], shape[i % 4][1]};
        off += (int64_t)shape[i % 4][0] * shape[i % 4][1];
    }
    Op *d_ops = nullptr;
    float *a0 = nullptr, *a1 = nullptr, *x0 = nullptr;
    unsigned *count = nullptr;
    check(cudaMalloc(&d_ops, sizeof(Op) * n_ops), "malloc");
    check(cudaMemcpy(d_ops, ops.data(), sizeof(Op) * n_ops, cudaMemcpyHostToDevice), "copy");
    check(cudaMalloc(&a0, 4096 * 4), "malloc");
    check(cudaMalloc(&a1, 4096 * 4), "malloc");
    check(cudaMalloc(&x0, 4096 * 4), "malloc");
    check(cudaMalloc(&count, 4), "malloc");
    std::vector<float> hx(4096);
    for (int i = 0; i < 4096; i++) hx[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
    check(cudaMemcpy(x0, hx.data(), 4096 * 4, cudaMemcpyHostToDevice), "copy");
    uint16_t *w2 = nullptr;
    check(cudaMalloc(&w2, (size_t)total * 2), "malloc");
    const float copy_ms = median_ms(5, [&] { check(cudaMemcpyAsync(w2, w, (size_t)total * 2, cudaMemcpyDeviceToDevice), "copy"); });
    const double copy_tbs = 2.0 * (double)total * 2 / (copy_ms * 1e-3) / 1e12;
    check(cudaFree(w2), "free");
    printf("%s, %d SMs; %d layers, %d ops, %.1f MB of bf16 weights; copy (read + write) %.2f TB/s\n\n", prop.name, sms,
           layers, n_ops, (double)total * 2 / 1e6, copy_tbs);
    printf("| form | L2 prefetch (ops ahead) | blocks/SM | us per op (work) | us per op (empty) | weight TB/s | result |\n");
    printf("| --- | ---: | ---: | ---: | ---: | ---: | --- |\n");

    std::vector<float> ref(4096), got(4096);
    bool have_ref = false;
    const int pfs[] = {0, 2};
    for (int bps = 1; bps <= 2; bps *= 2) {
        const int G = sms * bps;
        const float *final_buf = (n_ops & 1) ? a1 : a0;
        for (int form = 0; form < 6; form++)
            for (int pf : pfs) {
                if (form == 0 && pf > 0) continue;
                float ms[2] = {0, 0};
                const int xs = form == 5 ? 2 : form >= 3, pdl = form == 1 || form == 3 || form == 5;
                const bool persist = form == 2 || form == 4;
                for (int work = 1; work >= 0; work--) {
                    void (*opk)(const Op *, int, float *, float *, int, int) =
                        work ? (xs == 2 ? op_kernel<true, 2> : xs ? op_kernel<true, 1> : op_kernel<true, 0>)
                             : (xs == 2 ? op_kernel<false, 2> : xs ? op_kernel<false, 1> : op_kernel<false, 0>);
                    void (*pk)(const Op *, int, float *, float *, unsigned *, int) =
                        work ? (xs ? persist_kernel<true, 1> : persist_kernel<true, 0>)
                             : (xs ? persist_kernel<false, 1> : persist_kernel<false, 0>);
                    cudaGraphExec_t exec = nullptr;
                    if (!persist) {
                        cudaStream_t s;
                        check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "stream");
                        cudaGraph_t g;
                        check(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), "capture");
                        check(cudaMemcpyAsync(a0, x0, 4096 * 4, cudaMemcpyDeviceToDevice, s), "copy");
                        for (int i = 0; i < n_ops; i++)
                            check(sh_cu_launch_k(opk, G, kThreads, s, pdl, d_ops,
                                                 i, a0, a1, pf, n_ops),
                                  "launch");
                        check(cudaStreamEndCapture(s, &g), "end capture");
                        check(cudaGraphInstantiate(&exec, g, 0), "instantiate");
                        check(cudaGraphDestroy(g), "graph");
                        check(cudaStreamDestroy(s), "stream");
                    }
                    int occ = 0;
                    check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
                              &occ, pk, kThreads, 0),
                          "occupancy");
                    if (persist && occ < bps) {
                        ms[work] = -1;
                        continue;
                    }
                    ms[work] = median_ms(reps, [&] {
                        if (!persist) {
                            check(cudaGraphLaunch(exec, 0), "graph launch");
                            return;
                        }
                        check(cudaMemcpyAsync(a0, x0, 4096 * 4, cudaMemcpyDeviceToDevice), "copy");
                        check(cudaMemsetAsync(count, 0, 4), "memset");
                        int n = n_ops, p = pf;
                        void *args[] = {&d_ops, &n, &a0, &a1, &count, &p};
                        check(cudaLaunchCooperativeKernel((void *)pk,
                                                          dim3(G), dim3(kThreads), args, 0, 0),
                              "cooperative launch");
                    });
                    if (exec) check(cudaGraphExecDestroy(exec), "exec");
                    if (work) { /* the last timed run's result */
                        check(cudaDeviceSynchronize(), "sync");
                        check(cudaMemcpy(got.data(), final_buf, 4096 * 4, cudaMemcpyDeviceToHost), "copy");
                    }
                }
                const char *names[] = {"graph", "graph+pdl", "persist", "graph+pdl, x in smem", "persist, x in smem",
                                       "graph+pdl, x through L1"};
                const char *name = names[form];
                if (ms[1] < 0) {
                    printf("| %s | %d | %d | does not fit | | | |\n", name, pf, bps);
                    continue;
                }
                if (!have_ref) ref = got, have_ref = true;
                float maxd = 0;
                for (int r = 0; r < 576; r++) maxd = std::max(maxd, fabsf(got[r] - ref[r]));
                printf("| %s | %d | %d | %.2f | %.2f | %.2f | max abs diff vs the first row %.3g (|y| ~ %.3g) |\n",
                       name, pf, bps, 1e3f * ms[1] / n_ops, 1e3f * ms[0] / n_ops,
                       2.0 * (double)total / (ms[1] * 1e-3) / 1e12, maxd, fabsf(ref[0]));
                fflush(stdout);
            }
    }

    /* phase times of the persistent form, one block per SM */
    for (int xs = 0; xs < 2; xs++) {
        const int G = sms;
        long long *T = nullptr;
        unsigned long long *gt = nullptr;
        check(cudaMalloc(&T, sizeof(long long) * 6 * n_ops * G), "malloc");
        check(cudaMalloc(&gt, sizeof(unsigned long long) * 2 * G), "malloc");
        for (int rep = 0; rep < 3; rep++) {
            check(cudaMemcpy(a0, x0, 4096 * 4, cudaMemcpyDeviceToDevice), "copy");
            check(cudaMemset(count, 0, 4), "memset");
            int n = n_ops;
            void *args[] = {&d_ops, &n, &a0, &a1, &count, &T, &gt};
            check(cudaLaunchCooperativeKernel(xs ? (void *)trace_kernel<1> : (void *)trace_kernel<0>, dim3(G), dim3(kThreads), args, 0, 0), "trace launch");
            check(cudaDeviceSynchronize(), "trace");
        }
        std::vector<long long> h((size_t)6 * n_ops * G);
        std::vector<unsigned long long> hg((size_t)2 * G);
        check(cudaMemcpy(h.data(), T, h.size() * sizeof(long long), cudaMemcpyDeviceToHost), "copy");
        check(cudaMemcpy(hg.data(), gt, hg.size() * sizeof(unsigned long long), cudaMemcpyDeviceToHost), "copy");
        const double ghz = (double)hg[1] / (double)hg[0]; /* SM cycles per ns, block 0 */
        printf("\npersistent form%s, phases of warp 0 (median over blocks and layers, ns; SM clock %.2f GHz, whole run %.1f us):\n",
               xs ? ", x in smem" : "", ghz, hg[0] / 1e3);
        printf("| op (K x N) | descriptor + weight requests | barrier | x arrived | weights arrived | rows computed, stored | to next op start | spread over blocks of (barrier exit - op start) |\n");
        printf("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
        for (int kind = 0; kind < 4; kind++) {
            std::vector<double> ph[7];
            for (int i = kind; i < n_ops; i += 4) {
                if (i == 0) continue; /* no barrier before the first op */
                long long mn = INT64_MAX, mx = INT64_MIN;
                for (int b = 0; b < G; b++) {
                    const long long *t = &h[((size_t)i * G + b) * 6];
                    for (int p = 0; p < 5; p++) ph[p].push_back((double)(t[p + 1] - t[p]) / ghz);
                    if (i + 1 < n_ops) ph[5].push_back((double)(h[((size_t)(i + 1) * G + b) * 6] - t[5]) / ghz);
                }
                for (int b = 0; b < G; b++) { /* SM clocks are not aligned: the spread of a per-block difference */
                    const long long *t = &h[((size_t)i * G + b) * 6];
                    mn = std::min(mn, t[2] - t[0]), mx = std::max(mx, t[2] - t[0]);
                }
                ph[6].push_back((double)(mx - mn) / ghz);
            }
            printf("| %d x %d |", shape[kind][0], shape[kind][1]);
            for (int p = 0; p < 7; p++) {
                std::sort(ph[p].begin(), ph[p].end());
                printf(" %.0f |", ph[p].empty() ? 0.0 : ph[p][ph[p].size() / 2]);
            }
            printf("\n");
        }
        check(cudaFree(T), "free");
        check(cudaFree(gt), "free");
    }
    return 0;
}
