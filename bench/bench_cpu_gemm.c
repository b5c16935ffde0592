/* CPU GEMM microbenchmark: weight bytes streamed per second at M = 1 (decode)
 * next to the machine's memory bandwidth measured in the same run.
 *
 *   bench_cpu_gemm [--threads 1,2] [--isa avx512|avx2|scalar] [--quick]
 *
 * Reports, for each thread count:
 *   - read bandwidth (threads summing disjoint slices of 1 GiB) and memcpy
 *     bandwidth (bytes read + written);
 *   - single GEMMs (N, K) = (1536, 576) and (49152, 576), q8_0 and f32:
 *     "hot" (one weight matrix reused: caches help) and "cold" (a fresh
 *     matrix per call, cycling through >= 1 GiB: what decode sees);
 *   - a SmolLM-135M-shaped decode step (30 layers: qkv, o, gate+up, down
 *     as grouped calls, then the 49152-row LM head), q8_0 and f32 weights,
 *     every matrix distinct: weight GB/s and the fraction of read bandwidth.
 * Prints a table and one JSON line per measurement (prefix "json: ").
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "cpu/cpu.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng_state = 88172645463325252ull;
static uint64_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void *xmalloc(size_t n) {
    void *p = aligned_alloc(256, (n + 255) & ~(size_t)255);
    if (!p) {
        fprintf(stderr, "out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

/* Fills rows of q8_0 / f32 weights with finite values of order 0.01..1. */
static void fill_weights(sh_dtype dt, uint8_t *p, size_t bytes) {
    if (dt == SH_F32) {
        float *f = (float *)(void *)p;
        for (size_t i = 0; i < bytes / 4; i++) f[i] = (float)((int)(rnd() % 2001) - 1000) * 1e-3f;
    } else { /* q8_0: 34-byte blocks, d = a small positive f16 */
        for (size_t b = 0; b < bytes / 34; b++) {
            uint8_t *blk = p + b * 34;
            uint16_t d = (uint16_t)((8 << 10) | (rnd() & 1023));
            memcpy(blk, &d, 2);
            for (int i = 0; i < 32; i++) blk[2 + i] = (uint8_t)rnd();
        }
    }
}

static size_t row_bytes(sh_dtype dt, int k) { return dt == SH_F32 ? (size_t)k * 4 : (size_t)k / 32 * 34; }

/* ---- memory bandwidth --------------------------------------------------- */

typedef struct bw_arg {
    const uint64_t *p;
    size_t n;
    uint64_t sum;
    int streams; /* 1 or 4 */
} bw_arg;

/* sum of 64-bit words with 256-bit loads (the plain loop would be built
 * for SSE2 and could be compute-bound on a fast memory system) */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
__attribute__((target("avx2"))) static uint64_t sum_words(const uint64_t *p, size_t n) {
    __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_add_epi64(s0, _mm256_load_si256((const __m256i *)(const void *)(p + i)));
        s1 = _mm256_add_epi64(s1, _mm256_load_si256((const __m256i *)(const void *)(p + i + 4)));
        s2 = _mm256_add_epi64(s2, _mm256_load_si256((const __m256i *)(const void *)(p + i + 8)));
        s3 = _mm256_add_epi64(s3, _mm256_load_si256((const __m256i *)(const void *)(p + i + 12)));
    }
    s0 = _mm256_add_epi64(_mm256_add_epi64(s0, s1), _mm256_add_epi64(s2, s3));
    uint64_t out[4];
    _mm256_storeu_si256((__m256i *)(void *)out, s0);
    return out[0] + out[1] + out[2] + out[3];
}
/* the same over 4 streams (quarters of the slice) walked together: a
 * single stream can be limited by the prefetcher rather than by memory */
__attribute__((target("avx2"))) static uint64_t sum_words4(const uint64_t *p, size_t n) {
    size_t q = n / 4 / 4 * 4;
    const uint64_t *p0 = p, *p1 = p + q, *p2 = p + 2 * q, *p3 = p + 3 * q;
    __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
    for (size_t i = 0; i + 4 <= q; i += 4) {
        s0 = _mm256_add_epi64(s0, _mm256_load_si256((const __m256i *)(const void *)(p0 + i)));
        s1 = _mm256_add_epi64(s1, _mm256_load_si256((const __m256i *)(const void *)(p1 + i)));
        s2 = _mm256_add_epi64(s2, _mm256_load_si256((const __m256i *)(const void *)(p2 + i)));
        s3 = _mm256_add_epi64(s3, _mm256_load_si256((const __m256i *)(const void *)(p3 + i)));
    }
    s0 = _mm256_add_epi64(_mm256_add_epi64(s0, s1), _mm256_add_epi64(s2, s3));
    uint64_t out[4];
    _mm256_storeu_si256((__m256i *)(void *)out, s0);
    return out[0] + out[1] + out[2] + out[3];
}
static int have_avx2(void) { return __builtin_cpu_supports("avx2"); }
#else
static uint64_t sum_words4(const uint64_t *p, size_t n) { (void)p; (void)n; return 0; }
static uint64_t sum_words(const uint64_t *p, size_t n) { (void)p; (void)n; return 0; }
static int have_avx2(void) { return 0; }
#endif

static void *bw_read(void *arg) {
    bw_arg *a = arg;
    if (have_avx2()) {
        a->sum = a->streams == 4 ? sum_words4(a->p, a->n) : sum_words(a->p, a->n);
        return NULL;
    }
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = 0; i + 4 <= a->n; i += 4) {
        s0 += a->p[i];
        s1 += a->p[i + 1];
        s2 += a->p[i + 2];
        s3 += a->p[i + 3];
    }
    a->sum = s0 + s1 + s2 + s3;
    return NULL;
}

/* Read bandwidth in bytes/s with n threads over buf: best of 5 runs each
 * with 1 and 4 streams per thread. */
static double read_bw(const uint64_t *buf, size_t n, int threads) {
    double best = 0;
    for (int rep = 0; rep < 10; rep++) {
        pthread_t th[64];
        bw_arg a[64];
        double t0 = now_s();
        for (int t = 0; t < threads; t++) {
            a[t] = (bw_arg){buf + n / (size_t)threads * (size_t)t, n / (size_t)threads, 0, rep % 2 ? 4 : 1};
            pthread_create(&th[t], NULL, bw_read, &a[t]);
        }
        uint64_t sum = 0;
        for (int t = 0; t < threads; t++) {
            pthread_join(th[t], NULL);
            sum += a[t].sum;
        }
        double dt = now_s() - t0;
        if (sum == 42) printf(" ");
        double bw = (double)(n / (size_t)threads * (size_t)threads) * 8 / dt;
        if (bw > best) best = bw;
    }
    return best;
}

static double memcpy_bw(uint8_t *dst, const uint8_t *src, size_t n) {
    double best = 0;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now_s();
        memcpy(dst, src, n);
        double dt = now_s() - t0;
        if (2.0 * (double)n / dt > best) best = 2.0 * (double)n / dt;
    }
    return best;
}

/* ---- GEMM timing --------------------------------------------------------- */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median over 7 runs of (bytes streamed per second) for M = 1 GEMMs of
 * (n, k) that walk through `copies` distinct matrices in pool. */
static double gemm_bw(sh_backend *be, sh_dtype dt, const uint8_t *pool, int copies, int n, int k, const float *x,
                      float *y, double min_s) {
    size_t mb = row_bytes(dt, k) * (size_t)n;
    double r[7];
    int c = 0;
    for (int rep = 0; rep < 7; rep++) {
        int calls = 0;
        double t0 = now_s(), dt_s;
        do {
            sh_gemm_group g = {{pool + mb * (size_t)c, dt, n, k}, NULL, {(float *)x, 1, k, k}, {y, 1, n, n}, 0};
            if (sh_be_gemm(be, 1, &g) != SHOAL_OK) {
                fprintf(stderr, "gemm: %s\n", shoal_last_error());
                exit(1);
            }
            c = (c + 1) % copies;
            calls++;
            dt_s = now_s() - t0;
        } while (dt_s < min_s);
        r[rep] = (double)mb * calls / dt_s;
    }
    qsort(r, 7, sizeof r[0], cmp_double);
    return r[3];
}

/* ---- a SmolLM-135M-shaped decode step ----------------------------------- */

enum { L_N = 30, D = 576, KVD = 192, FF = 1536, VOCAB = 49152 };

typedef struct model {
    sh_dtype dt;
    uint8_t *w;
    size_t off[L_N][7], head, bytes;
} model;

static void model_make(model *m, sh_dtype dt) {
    static const int shape[7][2] = {{D, D}, {KVD, D}, {KVD, D}, {D, D}, {FF, D}, {FF, D}, {D, FF}};
    m->dt = dt;
    size_t o = 0;
    for (int l = 0; l < L_N; l++)
        for (int j = 0; j < 7; j++) {
            m->off[l][j] = o;
            o += row_bytes(dt, shape[j][1]) * (size_t)shape[j][0];
        }
    m->head = o;
    o += row_bytes(dt, D) * VOCAB;
    m->bytes = o;
    m->w = xmalloc(o);
    fill_weights(dt, m->w, o);
}

/* One decode token: the engine's grouped calls for one model at M = 1. */
static void model_step(sh_backend *be, const model *m, float *act) {
    float *x = act, *q = act + 4096, *k = q + D, *v = k + KVD, *a = v + KVD, *b = a + FF, *lg = b + FF;
    for (int l = 0; l < L_N; l++) {
        const uint8_t *w = m->w;
        sh_gemm_group g[3] = {
            {{w + m->off[l][0], m->dt, D, D}, NULL, {x, 1, D, D}, {q, 1, D, D}, 0},
            {{w + m->off[l][1], m->dt, KVD, D}, NULL, {x, 1, D, D}, {k, 1, KVD, KVD}, 0},
            {{w + m->off[l][2], m->dt, KVD, D}, NULL, {x, 1, D, D}, {v, 1, KVD, KVD}, 0},
        };
        sh_be_gemm(be, 3, g);
        g[0] = (sh_gemm_group){{w + m->off[l][3], m->dt, D, D}, NULL, {q, 1, D, D}, {a, 1, D, D}, 0};
        sh_be_gemm(be, 1, g);
        g[0] = (sh_gemm_group){{w + m->off[l][4], m->dt, FF, D}, NULL, {x, 1, D, D}, {a, 1, FF, FF}, 0};
        g[1] = (sh_gemm_group){{w + m->off[l][5], m->dt, FF, D}, NULL, {x, 1, D, D}, {b, 1, FF, FF}, 0};
        sh_be_gemm(be, 2, g);
        g[0] = (sh_gemm_group){{w + m->off[l][6], m->dt, D, FF}, NULL, {a, 1, FF, FF}, {q, 1, D, D}, 0};
        sh_be_gemm(be, 1, g);
    }
    sh_gemm_group h = {{m->w + m->head, m->dt, VOCAB, D}, NULL, {x, 1, D, D}, {lg, 1, VOCAB, VOCAB}, 0};
    sh_be_gemm(be, 1, &h);
}

static double model_bw(sh_backend *be, const model *m, float *act, double min_s, double *tok_s) {
    double r[5];
    model_step(be, m, act); /* warm-up */
    for (int rep = 0; rep < 5; rep++) {
        int steps = 0;
        double t0 = now_s(), dt;
        do {
            model_step(be, m, act);
            steps++;
            dt = now_s() - t0;
        } while (dt < min_s);
        r[rep] = (double)steps / dt;
    }
    qsort(r, 5, sizeof r[0], cmp_double);
    *tok_s = r[2];
    return r[2] * (double)m->bytes;
}

int main(int argc, char **argv) {
    int threads[8] = {1, 2}, nt = 2, quick = 0;
    sh_cpu_isa isa = sh_cpu_isa_best();
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            nt = 0;
            for (char *s = strtok(argv[++i], ","); s && nt < 8; s = strtok(NULL, ",")) threads[nt++] = atoi(s);
        } else if (strcmp(argv[i], "--isa") == 0 && i + 1 < argc) {
            const char *n = argv[++i];
            isa = strcmp(n, "scalar") == 0 ? SH_CPU_SCALAR : strcmp(n, "avx2") == 0 ? SH_CPU_AVX2 : SH_CPU_AVX512;
        } else if (strcmp(argv[i], "--quick") == 0) {
            quick = 1;
        } else {
            fprintf(stderr, "usage: %s [--threads 1,2] [--isa avx512|avx2|scalar] [--quick]\n", argv[0]);
            return 2;
        }
    }
    double min_s = quick ? 0.05 : 0.2;
    size_t bw_bytes = (size_t)1 << 30;
    uint64_t *bwbuf = xmalloc(bw_bytes);
    for (size_t i = 0; i < bw_bytes / 8; i++) bwbuf[i] = i;

    /* weights for single-GEMM runs: >= 1 GiB of copies for "cold" */
    static const int shapes[2][2] = {{1536, 576}, {49152, 576}};
    static const sh_dtype dts[2] = {SH_Q8_0, SH_F32};
    uint8_t *pool = xmalloc(bw_bytes);
    float *x = xmalloc(256 * 1536 * sizeof(float)), *y = xmalloc(65536 * sizeof(float)), *act = xmalloc(256 * 1536 * sizeof(float));
    for (int i = 0; i < 256 * 1536; i++) x[i] = (float)((int)(rnd() % 2001) - 1000) * 1e-3f;
    memset(act, 0, 256 * 1536 * sizeof(float));
    for (int i = 0; i < D; i++) act[i] = x[i];
    model mq, mf;
    model_make(&mq, SH_Q8_0);
    model_make(&mf, SH_F32);

    printf("cpu gemm bench: isa %s, %ld online cpus\n", sh_cpu_isa_name(isa), sysconf(_SC_NPROCESSORS_ONLN));
    for (int ti = 0; ti < nt; ti++) {
        int t = threads[ti];
        sh_backend *be;
        if (sh_cpu_backend_create_isa(t, isa, &be) != SHOAL_OK) {
            fprintf(stderr, "backend: %s\n", shoal_last_error());
            return 1;
        }
        double rbw = read_bw(bwbuf, bw_bytes / 8, t);
        double cbw = memcpy_bw(pool, (const uint8_t *)bwbuf, bw_bytes / 2);
        printf("\n== %d thread%s ==\n", t, t > 1 ? "s" : "");
        printf("memory: read %.1f GB/s (%d thread%s), memcpy %.1f GB/s (read+write, 1 thread)\n", rbw / 1e9, t,
               t > 1 ? "s" : "", cbw / 1e9);
        printf("json: {\"bench\":\"cpu_gemm\",\"isa\":\"%s\",\"threads\":%d,\"what\":\"read_bw\",\"gb_s\":%.2f,"
               "\"memcpy_gb_s\":%.2f}\n",
               sh_cpu_isa_name(isa), t, rbw / 1e9, cbw / 1e9);
        printf("%-6s %-14s %10s %10s %8s\n", "dtype", "N x K", "hot GB/s", "cold GB/s", "cold/bw");
        for (int di = 0; di < 2; di++)
            for (int si = 0; si < 2; si++) {
                sh_dtype dt = dts[di];
                int n = shapes[si][0], k = shapes[si][1];
                size_t mb = row_bytes(dt, k) * (size_t)n;
                int copies = (int)(bw_bytes / mb);
                fill_weights(dt, pool, mb * (size_t)copies);
                double hot = gemm_bw(be, dt, pool, 1, n, k, x, y, min_s);
                double cold = gemm_bw(be, dt, pool, copies, n, k, x, y, min_s);
                printf("%-6s %6d x %-5d %10.1f %10.1f %7.0f%%\n", dt == SH_F32 ? "f32" : "q8_0", n, k, hot / 1e9,
                       cold / 1e9, 100 * cold / rbw);
                printf("json: {\"bench\":\"cpu_gemm\",\"isa\":\"%s\",\"threads\":%d,\"dtype\":\"%s\",\"n\":%d,\"k\":%d,"
                       "\"hot_gb_s\":%.2f,\"cold_gb_s\":%.2f,\"read_bw_gb_s\":%.2f}\n",
                       sh_cpu_isa_name(isa), t, dt == SH_F32 ? "f32" : "q8_0", n, k, hot / 1e9, cold / 1e9, rbw / 1e9);
            }
        /* prefill: M rows through one (1536, 576) matrix, GFLOP/s */
        for (int di = 0; di < 2; di++) {
            sh_dtype dt = dts[di];
            int n = 1536, k = 576, M = 256;
            fill_weights(dt, pool, row_bytes(dt, k) * (size_t)n);
            double r[5];
            for (int rep = 0; rep < 5; rep++) {
                int calls = 0;
                double t0 = now_s(), el;
                do {
                    sh_gemm_group g = {{pool, dt, n, k}, NULL, {x, M, k, k}, {(float *)act, M, n, n}, 0};
                    sh_be_gemm(be, 1, &g);
                    calls++;
                    el = now_s() - t0;
                } while (el < min_s);
                r[rep] = 2.0 * M * n * k * calls / el;
            }
            qsort(r, 5, sizeof r[0], cmp_double);
            printf("prefill %-4s M=%d N=%d K=%d: %.1f GFLOP/s\n", dt == SH_F32 ? "f32" : "q8_0", M, n, k, r[2] / 1e9);
            printf("json: {\"bench\":\"cpu_gemm\",\"isa\":\"%s\",\"threads\":%d,\"what\":\"prefill\",\"dtype\":\"%s\","
                   "\"m\":%d,\"n\":%d,\"k\":%d,\"gflop_s\":%.2f}\n",
                   sh_cpu_isa_name(isa), t, dt == SH_F32 ? "f32" : "q8_0", M, n, k, r[2] / 1e9);
        }
        for (int mi = 0; mi < 2; mi++) {
            const model *m = mi ? &mf : &mq;
            double tok;
            double bw = model_bw(be, m, act, min_s * 2, &tok);
            printf("smollm-135m-shaped decode %-4s: %.1f MB/token, %.1f tok/s, %.1f GB/s = %.0f%% of read bw\n",
                   mi ? "f32" : "q8_0", (double)m->bytes / 1e6, tok, bw / 1e9, 100 * bw / rbw);
            printf("json: {\"bench\":\"cpu_gemm\",\"isa\":\"%s\",\"threads\":%d,\"what\":\"smollm135m_decode\","
                   "\"dtype\":\"%s\",\"mb_per_token\":%.1f,\"tok_s\":%.2f,\"gb_s\":%.2f,\"read_bw_gb_s\":%.2f}\n",
                   sh_cpu_isa_name(isa), t, mi ? "f32" : "q8_0", (double)m->bytes / 1e6, tok, bw / 1e9, rbw / 1e9);
        }
        sh_backend_free(be);
    }
    free(bwbuf);
    free(pool);
    free(x);
    free(y);
    free(act);
    free(mq.w);
    free(mf.w);
    return 0;
}
