/* shoal's grouped GEMM vs cuBLAS, to decide where cuBLAS should serve.
 *
 *   bench_cublas_gemm [--out FILE.md]
 *
 * The same 8 groups of y = x W^T (W bf16 (N, K), distinct per group), for
 * (N, K) in {(1536, 576), (576, 1536), (49152, 576)} and M in {1, 16, 64, 256,
 * 1024} rows per group, timed with CUDA events (warm-up, median of 15, random
 * data) as:
 *   shoal   one grouped backend call (x, y f32; exact f32 products)
 *   cublas8 8 cublasGemmEx calls (x bf16, y f32, f32 compute)
 *   cublasG one cublasGemmGroupedBatchedEx call (x bf16, y f32)
 * cuBLAS takes bf16 activations, so its results round x to bf16 — a numeric
 * change shoal's kernels avoid; the table shows what that buys. The
 * conversion of x itself is not timed (it would add to cuBLAS's side).
 *
 *   bench_cublas_gemm --single
 *
 * One model instead (a single group per call), the decode shapes of
 * SmolLM-135M and GPT-2-124M at M = 16 and 64, 32 calls back to back over
 * weight sets that together pass L2 twice, microseconds per call:
 *   shoal    one backend call per GEMM, the 32 in one step (as the engine)
 *   cublas3  cublasGemmEx on the three bf16 terms of x stacked as 3 M rows —
 *            the exact form shoal's kernels compute (hi + mid + lo = x), so
 *            a route through cuBLAS would lose nothing; the split of x and
 *            the sum of the three row blocks (small kernels) are not timed
 *   cublas1  the same on M rows of bf16 x (the peers' precision)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"

#ifdef SHOAL_WITH_CUDA
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "../kernels/cuda/cuda_backend.h"

#define G 8
#define TRIALS 15

static void cu(cudaError_t e, const char *w) {
    if (e != cudaSuccess) {
        fprintf(stderr, "bench_cublas_gemm: %s: %s\n", w, cudaGetErrorString(e));
        exit(1);
    }
}
static void cb(cublasStatus_t s, const char *w) {
    if (s != CUBLAS_STATUS_SUCCESS) {
        fprintf(stderr, "bench_cublas_gemm: %s: cublas status %d\n", w, (int)s);
        exit(1);
    }
}
static void sh(shoal_status s, const char *w) {
    if (s != SHOAL_OK) {
        fprintf(stderr, "bench_cublas_gemm: %s: %s\n", w, shoal_last_error());
        exit(1);
    }
}

static uint64_t rs = 88172645463325252ull;
static float frand(void) {
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (float)((rs >> 11) * 0x1.0p-53) * 2.0f - 1.0f;
}
static uint16_t bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

static int cmpf(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

/* --single: see the top of the file */
static int run_single(sh_backend *be, cublasHandle_t h, cudaStream_t st, const sh_cuda_device_info *di) {
    static const struct { const char *what; int N, K; } shp[] = {
        {"smollm QKV", 960, 576},   {"smollm o", 576, 576},     {"smollm gate+up", 3072, 576},
        {"smollm down", 576, 1536}, {"smollm head", 49152, 576}, {"gpt2 QKV", 2304, 768},
        {"gpt2 o", 768, 768},       {"gpt2 up", 3072, 768},     {"gpt2 down", 768, 3072},
        {"gpt2 head", 50304, 768},
    };
    printf("# one model: shoal vs cuBLAS (%s)\n\nbf16 weights, 32 calls back to back, median of %d, us per call.\n\n",
           di->name, TRIALS);
    printf("| shape | N x K | M | shoal | cublas3 (exact) | cublas1 (bf16 x) | weights GB/s (shoal, cublas3) |\n");
    printf("| --- | --- | ---: | ---: | ---: | ---: | --- |\n");
    const float alpha = 1.0f, beta = 0.0f;
    cudaEvent_t e0, e1;
    cu(cudaEventCreate(&e0), "event");
    cu(cudaEventCreate(&e1), "event");
    for (size_t s = 0; s < sizeof shp / sizeof shp[0]; s++) {
        const int N = shp[s].N, K = shp[s].K;
        const size_t wbytes = (size_t)N * K * 2;
        int sets = (int)((2 * (size_t)di->l2_bytes + wbytes - 1) / wbytes) + 1;
        if (sets > 64) sets = 64;
        void *W[64];
        uint16_t *hw = malloc(wbytes);
        for (size_t i = 0; i < (size_t)N * K; i++) hw[i] = bf16(frand() * 0.05f);
        for (int i = 0; i < sets; i++) {
            sh(sh_be_alloc(be, wbytes, &W[i]), "alloc w");
            sh(sh_be_upload(be, W[i], hw, wbytes), "upload w");
        }
        free(hw);
        for (int M = 16; M <= 64; M *= 4) {
            float *X, *Y;
            void *Xb;
            float *hx = malloc((size_t)M * K * 4);
            uint16_t *hxb = malloc((size_t)3 * M * K * 2);
            for (size_t i = 0; i < (size_t)M * K; i++) hx[i] = frand();
            for (int r = 0; r < 3 * M; r++) /* terms: rows [0, M) hi, [M, 2M) mid, [2M, 3M) lo (values irrelevant to timing) */
                for (int k = 0; k < K; k++) hxb[(size_t)r * K + k] = bf16(hx[(size_t)(r % M) * K + k]);
            sh(sh_be_alloc(be, (size_t)M * K * 4, (void **)&X), "alloc x");
            sh(sh_be_alloc(be, (size_t)3 * M * K * 2, &Xb), "alloc xb");
            sh(sh_be_alloc(be, (size_t)3 * M * N * 4, (void **)&Y), "alloc y");
            sh(sh_be_upload(be, X, hx, (size_t)M * K * 4), "upload x");
            sh(sh_be_upload(be, Xb, hxb, (size_t)3 * M * K * 2), "upload xb");
            free(hx);
            free(hxb);
            float t[3][TRIALS];
            for (int mode = 0; mode < 3; mode++) {
                for (int tr = -2; tr < TRIALS; tr++) {
                    cu(cudaEventRecord(e0, st), "record");
                    if (mode == 0) sh(sh_be_step_begin(be), "step_begin");
                    for (int c = 0; c < 32; c++) {
                        void *w = W[(tr + 2 + c) % sets];
                        if (mode == 0) {
                            sh_gemm_group g = {{w, SH_BF16, N, K}, NULL, {X, M, K, K}, {Y, M, N, N}, 0};
                            sh(sh_be_gemm(be, 1, &g), "gemm");
                        } else {
                            const int rows = mode == 1 ? 3 * M : M;
                            cb(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, N, rows, K, &alpha, w, CUDA_R_16BF, K, Xb,
                                            CUDA_R_16BF, K, &beta, Y, CUDA_R_32F, N, CUBLAS_COMPUTE_32F,
                                            CUBLAS_GEMM_DEFAULT),
                               "gemmex");
                        }
                    }
                    if (mode == 0) sh(sh_be_step_end(be), "step_end");
                    cu(cudaEventRecord(e1, st), "record");
                    cu(cudaEventSynchronize(e1), "sync");
                    float ms;
                    cu(cudaEventElapsedTime(&ms, e0, e1), "elapsed");
                    if (tr >= 0) t[mode][tr] = ms * 1000.0f / 32;
                }
                qsort(t[mode], TRIALS, sizeof(float), cmpf);
            }
            sh(sh_be_sync(be), "sync");
            const double a = t[0][TRIALS / 2], b = t[1][TRIALS / 2], c = t[2][TRIALS / 2];
            printf("| %s | %d x %d | %d | %.2f | %.2f | %.2f | %.0f, %.0f |\n", shp[s].what, N, K, M, a, b, c,
                   (double)wbytes / (a * 1e3), (double)wbytes / (b * 1e3));
            sh_be_free(be, X);
            sh_be_free(be, Xb);
            sh_be_free(be, Y);
        }
        for (int i = 0; i < sets; i++) sh_be_free(be, W[i]);
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    return 0;
}

int main(int argc, char **argv) {
    const char *out_md = argc > 2 && !strcmp(argv[1], "--out") ? argv[2] : NULL;
    int ndev = 0;
    if (sh_cuda_device_count(&ndev) != SHOAL_OK || ndev == 0) {
        printf("no CUDA device\n0 passed, 0 failed, 1 skipped\n");
        return 0;
    }
    sh_backend *be;
    sh(sh_cuda_backend_create(0, &be), "backend");
    sh_cuda_device_info di;
    sh(sh_cuda_device_info_get(0, &di), "device info");
    cudaStream_t st = (cudaStream_t)sh_cuda_stream(be);
    cublasHandle_t h;
    cb(cublasCreate(&h), "create");
    cb(cublasSetStream(h, st), "stream");
    if (argc > 1 && !strcmp(argv[1], "--single")) {
        run_single(be, h, st, &di);
        cublasDestroy(h);
        sh_backend_free(be);
        return 0;
    }

    static const int NK[3][2] = {{1536, 576}, {576, 1536}, {49152, 576}};
    static const int MS[5] = {1, 16, 64, 256, 1024};
    FILE *md = out_md ? fopen(out_md, "w") : NULL;
    char line[512];
#define EMIT(...)                               \
    do {                                        \
        snprintf(line, sizeof line, __VA_ARGS__); \
        fputs(line, stdout);                    \
        if (md) fputs(line, md);                \
    } while (0)
    EMIT("# shoal grouped GEMM vs cuBLAS (%s)\n\n8 groups, bf16 weights, median of %d, microseconds per call.\n\n",
         di.name, TRIALS);
    EMIT("| N x K | M/group | shoal (1 call) | cublas 8 calls | cublas grouped | shoal / best cublas |\n");
    EMIT("| --- | ---: | ---: | ---: | ---: | ---: |\n");
    for (int s = 0; s < 3; s++) {
        int N = NK[s][0], K = NK[s][1];
        size_t wbytes = (size_t)N * K * 2;
        void *W[G];
        uint16_t *hw = malloc(wbytes);
        for (int g = 0; g < G; g++) {
            for (size_t i = 0; i < (size_t)N * K; i++) hw[i] = bf16(frand() * 0.05f);
            sh(sh_be_alloc(be, wbytes, &W[g]), "alloc w");
            sh(sh_be_upload(be, W[g], hw, wbytes), "upload w");
        }
        free(hw);
        for (int mi = 0; mi < 5; mi++) {
            int M = MS[mi];
            if (N == 49152 && M > 256) continue;
            float *X[G], *Y[G];
            void *Xb[G];
            float *hx = malloc((size_t)M * K * 4);
            uint16_t *hxb = malloc((size_t)M * K * 2);
            for (int g = 0; g < G; g++) {
                for (size_t i = 0; i < (size_t)M * K; i++) {
                    hx[i] = frand();
                    hxb[i] = bf16(hx[i]);
                }
                sh(sh_be_alloc(be, (size_t)M * K * 4, (void **)&X[g]), "alloc x");
                sh(sh_be_alloc(be, (size_t)M * K * 2, &Xb[g]), "alloc xb");
                sh(sh_be_alloc(be, (size_t)M * N * 4, (void **)&Y[g]), "alloc y");
                sh(sh_be_upload(be, X[g], hx, (size_t)M * K * 4), "upload x");
                sh(sh_be_upload(be, Xb[g], hxb, (size_t)M * K * 2), "upload xb");
            }
            free(hx);
            free(hxb);
            sh_gemm_group gg[G];
            for (int g = 0; g < G; g++)
                gg[g] = (sh_gemm_group){{W[g], SH_BF16, N, K}, NULL, {X[g], M, K, K}, {Y[g], M, N, N}, 0};
            /* cuBLAS column-major: C (N x M) = W^T-as-(K x N)^T * X (K x M):
             * op(A) = W viewed column-major (K x N) transposed, B = X (K x M). */
            const float alpha = 1.0f, beta = 0.0f;
            cublasOperation_t ta[G], tb[G];
            int ms_[G], ns_[G], ks_[G], lda[G], ldb[G], ldc[G], gsz[G];
            float al[G], bt[G];
            const void *Aa[G], *Ba[G];
            void *Ca[G];
            for (int g = 0; g < G; g++) {
                ta[g] = CUBLAS_OP_T;
                tb[g] = CUBLAS_OP_N;
                ms_[g] = N;
                ns_[g] = M;
                ks_[g] = K;
                lda[g] = K;
                ldb[g] = K;
                ldc[g] = N;
                gsz[g] = 1;
                al[g] = 1.0f;
                bt[g] = 0.0f;
                Aa[g] = W[g];
                Ba[g] = Xb[g];
                Ca[g] = Y[g];
            }
            const void **dA, **dB;
            void **dC;
            cu(cudaMalloc((void **)&dA, sizeof Aa), "malloc");
            cu(cudaMalloc((void **)&dB, sizeof Ba), "malloc");
            cu(cudaMalloc((void **)&dC, sizeof Ca), "malloc");
            cu(cudaMemcpy(dA, Aa, sizeof Aa, cudaMemcpyHostToDevice), "copy");
            cu(cudaMemcpy(dB, Ba, sizeof Ba, cudaMemcpyHostToDevice), "copy");
            cu(cudaMemcpy(dC, Ca, sizeof Ca, cudaMemcpyHostToDevice), "copy");
            float t[3][TRIALS];
            int grouped_ok = 1;
            cudaEvent_t e0, e1;
            cu(cudaEventCreate(&e0), "event");
            cu(cudaEventCreate(&e1), "event");
            for (int mode = 0; mode < 3; mode++) {
                for (int tr = -3; tr < TRIALS; tr++) {
                    cu(cudaEventRecord(e0, st), "record");
                    if (mode == 0) {
                        sh(sh_be_gemm(be, G, gg), "gemm");
                    } else if (mode == 1) {
                        for (int g = 0; g < G; g++)
                            cb(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &alpha, W[g], CUDA_R_16BF, K, Xb[g],
                                            CUDA_R_16BF, K, &beta, Y[g], CUDA_R_32F, N, CUBLAS_COMPUTE_32F,
                                            CUBLAS_GEMM_DEFAULT),
                               "gemmex");
                    } else {
                        cublasStatus_t gs = cublasGemmGroupedBatchedEx(
                            h, ta, tb, ms_, ns_, ks_, al, dA, CUDA_R_16BF, lda, dB, CUDA_R_16BF, ldb, bt, dC,
                            CUDA_R_32F, ldc, G, gsz, CUBLAS_COMPUTE_32F);
                        if (gs != CUBLAS_STATUS_SUCCESS) grouped_ok = 0;
                    }
                    cu(cudaEventRecord(e1, st), "record");
                    cu(cudaEventSynchronize(e1), "sync");
                    float ms;
                    cu(cudaEventElapsedTime(&ms, e0, e1), "elapsed");
                    if (tr >= 0) t[mode][tr] = ms * 1000.0f;
                    if (mode == 2 && !grouped_ok) break;
                }
                if (mode != 2 || grouped_ok) qsort(t[mode], TRIALS, sizeof(float), cmpf);
            }
            sh(sh_be_sync(be), "sync");
            float a = t[0][TRIALS / 2], b = t[1][TRIALS / 2], c = grouped_ok ? t[2][TRIALS / 2] : -1;
            float best = c > 0 && c < b ? c : b;
            char cs[32];
            if (c > 0) snprintf(cs, sizeof cs, "%.1f", (double)c);
            else snprintf(cs, sizeof cs, "n/a");
            EMIT("| %d x %d | %d | %.1f | %.1f | %s | %.2f |\n", N, K, M, (double)a, (double)b, cs, (double)(a / best));
            cudaEventDestroy(e0);
            cudaEventDestroy(e1);
            cudaFree(dA);
            cudaFree(dB);
            cudaFree(dC);
            for (int g = 0; g < G; g++) {
                sh_be_free(be, X[g]);
                sh_be_free(be, Xb[g]);
                sh_be_free(be, Y[g]);
            }
        }
        for (int g = 0; g < G; g++) sh_be_free(be, W[g]);
    }
    if (md) fclose(md);
    cublasDestroy(h);
    sh_backend_free(be);
    return 0;
}
#else
int main(void) {
    printf("bench_cublas_gemm: built without CUDA\n");
    return 0;
}
#endif
