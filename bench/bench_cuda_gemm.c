/* CUDA grouped-GEMM microbenchmark: the same layer of 8 models (bf16
 * weights, distinct per model) at decode-sized M, served by ONE grouped
 * launch vs 8 separate launches of the same kernel.
 *
 *   bench_cuda_gemm [--out DIR] [--quick]
 *
 * Measures, on the backend's stream with CUDA events (warm-up first, median
 * of many trials, weights rotated over sets that together exceed L2 several
 * times, random data):
 *   - copy bandwidth (1 GiB device-to-device, bytes read + written);
 *   - for (N, K) = (1536, 576) and (576, 576) and M in {1, 4, 8, 16}:
 *     grouped (1 call, 8 groups) vs separate (8 calls of 1 group), both as
 *     plain calls (each call = one descriptor copy + one launch) and inside
 *     a step (one descriptor copy for all, launches deferred);
 *     time per layer, speed-up, achieved bandwidth (weights + x + y bytes);
 *   - the SIMT and tensor-core (MMA) paths at M = 8, 16, 32, 64, grouped.
 * Writes DIR/cuda-gemm-<gpu>.md and .json (DIR defaults to bench/results)
 * and prints the table.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"

#ifdef SHOAL_WITH_CUDA
#include <cuda_runtime_api.h>

#include "../kernels/cuda/cuda_backend.h"

#define N_MODELS 8

static sh_backend *be;
static cudaStream_t stream;

static void die(const char *what) {
    fprintf(stderr, "bench_cuda_gemm: %s: %s\n", what, shoal_last_error());
    exit(1);
}

static void cu_check(cudaError_t e, const char *what) {
    if (e != cudaSuccess) {
        fprintf(stderr, "bench_cuda_gemm: %s: %s\n", what, cudaGetErrorString(e));
        exit(1);
    }
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void *dev_random(size_t bytes, int as_bf16) {
    uint16_t *h = malloc(bytes);
    if (!h) die("host alloc");
    for (size_t i = 0; i < bytes / 2; i++) {
        if (as_bf16) { /* bf16 in [-1, 1]: exponent 118..126 */
            h[i] = (uint16_t)((rnd() & 1 ? 0x8000 : 0) | ((118 + rnd() % 9) << 7) | (rnd() & 127));
        } else {
            h[i] = (uint16_t)rnd();
        }
    }
    void *d = NULL;
    if (sh_be_alloc(be, bytes, &d) != SHOAL_OK || sh_be_upload(be, d, h, bytes) != SHOAL_OK) die("upload");
    free(h);
    return d;
}

static float *dev_floats(size_t n) {
    float *h = malloc(n * sizeof(float));
    if (!h) die("host alloc");
    for (size_t i = 0; i < n; i++) h[i] = (float)((int)(rnd() % 2001) - 1000) * 1e-3f;
    void *d = NULL;
    if (sh_be_alloc(be, n * sizeof(float), &d) != SHOAL_OK || sh_be_upload(be, d, h, n * sizeof(float)) != SHOAL_OK)
        die("upload");
    free(h);
    return d;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ---- the workload --------------------------------------------------------- */

typedef struct layer_sets {
    int n, k, n_sets;
    void **w;  /* (n_sets * N_MODELS) bf16 (n, k) */
    float *x;  /* (N_MODELS, 64, k) */
    float *y;  /* (N_MODELS, 64, n) */
} layer_sets;

enum { MODE_GROUPED = 0, MODE_SEPARATE = 1, MODE_GROUPED_STEP = 2, MODE_SEPARATE_STEP = 3 };
static const char *mode_name[] = {"grouped", "separate", "grouped, in a step", "separate, in a step"};

static void make_groups(const layer_sets *L, int set, int m, sh_gemm_group *g) {
    for (int j = 0; j < N_MODELS; j++)
        g[j] = (sh_gemm_group){{L->w[set * N_MODELS + j], SH_BF16, L->n, L->k},
                               NULL,
                               {L->x + (size_t)j * 64 * L->k, m, L->k, L->k},
                               {L->y + (size_t)j * 64 * L->n, m, L->n, L->n},
                               0};
}

static void issue(const layer_sets *L, int set, int m, int mode) {
    sh_gemm_group g[N_MODELS];
    make_groups(L, set, m, g);
    int step = mode == MODE_GROUPED_STEP || mode == MODE_SEPARATE_STEP;
    if (step && sh_be_step_begin(be) != SHOAL_OK) die("step_begin");
    if (mode == MODE_GROUPED || mode == MODE_GROUPED_STEP) {
        if (sh_be_gemm(be, N_MODELS, g) != SHOAL_OK) die("gemm");
    } else {
        for (int j = 0; j < N_MODELS; j++)
            if (sh_be_gemm(be, 1, &g[j]) != SHOAL_OK) die("gemm");
    }
    if (step && sh_be_step_end(be) != SHOAL_OK) die("step_end");
}

/* Median microseconds per layer (all 8 models) over trials of `reps`. */
static double time_layer(const layer_sets *L, int m, int mode, int trials, int reps) {
    cudaEvent_t e0, e1;
    cu_check(cudaEventCreate(&e0), "event");
    cu_check(cudaEventCreate(&e1), "event");
    for (int i = 0; i < 20; i++) issue(L, i % L->n_sets, m, mode); /* warm-up */
    if (sh_be_sync(be) != SHOAL_OK) die("sync");
    double *t = malloc((size_t)trials * sizeof(double));
    int set = 0;
    for (int tr = 0; tr < trials; tr++) {
        cu_check(cudaEventRecord(e0, stream), "record");
        for (int r = 0; r < reps; r++) {
            issue(L, set, m, mode);
            set = (set + 1) % L->n_sets;
        }
        cu_check(cudaEventRecord(e1, stream), "record");
        cu_check(cudaEventSynchronize(e1), "sync");
        float ms = 0;
        cu_check(cudaEventElapsedTime(&ms, e0, e1), "elapsed");
        t[tr] = 1000.0 * ms / reps;
    }
    if (sh_be_sync(be) != SHOAL_OK) die("sync");
    qsort(t, (size_t)trials, sizeof *t, cmp_double);
    double med = t[trials / 2];
    free(t);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    return med;
}

static double layer_bytes(const layer_sets *L, int m) {
    return (double)N_MODELS * ((double)L->n * L->k * 2 + (double)m * L->k * 4 + (double)m * L->n * 4);
}

static void layer_init(layer_sets *L, int n, int k, size_t min_bytes) {
    L->n = n;
    L->k = k;
    size_t per_set = (size_t)N_MODELS * n * k * 2;
    L->n_sets = (int)((min_bytes + per_set - 1) / per_set);
    if (L->n_sets < 2) L->n_sets = 2;
    L->w = malloc((size_t)L->n_sets * N_MODELS * sizeof(void *));
    for (int i = 0; i < L->n_sets * N_MODELS; i++) L->w[i] = dev_random((size_t)n * k * 2, 1);
    L->x = dev_floats((size_t)N_MODELS * 64 * k);
    L->y = dev_floats((size_t)N_MODELS * 64 * n);
}

static void layer_free(layer_sets *L) {
    for (int i = 0; i < L->n_sets * N_MODELS; i++) sh_be_free(be, L->w[i]);
    free(L->w);
    sh_be_free(be, L->x);
    sh_be_free(be, L->y);
}

/* ---- output --------------------------------------------------------------- */

typedef struct row {
    int n, k, m;
    const char *what;
    double us, gbps;
    double speedup; /* vs the separate launches of the same M, or 0 */
} row;

static row rows[256];
static int n_rows;

static void add_row(int n, int k, int m, const char *what, double us, double bytes, double speedup) {
    rows[n_rows++] = (row){n, k, m, what, us, bytes / (us * 1e-6) / 1e9, speedup};
    printf("  N=%-5d K=%-4d M=%-3d %-22s %9.2f us  %8.1f GB/s%s", n, k, m, what, us, bytes / (us * 1e-6) / 1e9,
           speedup > 0 ? "" : "\n");
    if (speedup > 0) printf("  x%.2f vs separate\n", speedup);
}

int main(int argc, char **argv) {
    const char *out_dir = "bench/results";
    int quick = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) out_dir = argv[++i];
        else if (strcmp(argv[i], "--quick") == 0) quick = 1;
        else {
            fprintf(stderr, "usage: bench_cuda_gemm [--out DIR] [--quick]\n");
            return 2;
        }
    }
    shoal_status s = sh_cuda_backend_create(0, &be);
    if (s != SHOAL_OK) {
        printf("skipped: %s\n", shoal_last_error());
        return 0;
    }
    stream = (cudaStream_t)sh_cuda_stream(be);
    const sh_cuda_device_info *info = sh_cuda_backend_info(be);
    printf("device: %s (%d SMs, cc %d.%d, %.1f GiB, L2 %d MiB)\n", info->name, info->sm_count, info->cc_major,
           info->cc_minor, (double)info->total_bytes / (1u << 30), info->l2_bytes >> 20);
    const int trials = quick ? 11 : 31, reps = quick ? 20 : 50;

    /* copy bandwidth: 1 GiB device to device, read + write */
    size_t cb = (size_t)1 << 30;
    void *a = NULL, *b = NULL;
    if (sh_be_alloc(be, cb, &a) != SHOAL_OK || sh_be_alloc(be, cb, &b) != SHOAL_OK) die("alloc 1 GiB");
    cu_check(cudaMemsetAsync(a, 1, cb, stream), "memset");
    double ct[9];
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    for (int i = 0; i < 9; i++) {
        cudaEventRecord(e0, stream);
        cu_check(cudaMemcpyAsync(b, a, cb, cudaMemcpyDeviceToDevice, stream), "copy");
        cudaEventRecord(e1, stream);
        cudaEventSynchronize(e1);
        float ms;
        cudaEventElapsedTime(&ms, e0, e1);
        ct[i] = ms;
    }
    qsort(ct, 9, sizeof ct[0], cmp_double);
    double copy_gbps = 2.0 * (double)cb / (ct[4] * 1e-3) / 1e9;
    printf("copy bandwidth (read + write): %.0f GB/s\n", copy_gbps);
    sh_be_free(be, a);
    sh_be_free(be, b);

    static const int shapes[][2] = {{1536, 576}, {576, 576}};
    static const int Ms[] = {1, 4, 8, 16};
    double min_speedup = 1e9;
    for (int si = 0; si < 2; si++) {
        layer_sets L;
        layer_init(&L, shapes[si][0], shapes[si][1], (size_t)4 * info->l2_bytes);
        printf("layer N=%d K=%d bf16 x %d models (%d weight sets, %.0f MB rotated)\n", L.n, L.k, N_MODELS, L.n_sets,
               (double)L.n_sets * N_MODELS * L.n * L.k * 2 / 1e6);
        for (int mi = 0; mi < 4; mi++) {
            int m = Ms[mi];
            double t[4];
            for (int mode = 0; mode < 4; mode++) t[mode] = time_layer(&L, m, mode, trials, reps);
            double by = layer_bytes(&L, m);
            add_row(L.n, L.k, m, mode_name[MODE_SEPARATE], t[MODE_SEPARATE], by, 0);
            add_row(L.n, L.k, m, mode_name[MODE_GROUPED], t[MODE_GROUPED], by, t[MODE_SEPARATE] / t[MODE_GROUPED]);
            add_row(L.n, L.k, m, mode_name[MODE_SEPARATE_STEP], t[MODE_SEPARATE_STEP], by, 0);
            add_row(L.n, L.k, m, mode_name[MODE_GROUPED_STEP], t[MODE_GROUPED_STEP], by,
                    t[MODE_SEPARATE_STEP] / t[MODE_GROUPED_STEP]);
            if (t[MODE_SEPARATE] / t[MODE_GROUPED] < min_speedup) min_speedup = t[MODE_SEPARATE] / t[MODE_GROUPED];
        }
        /* kernel paths, grouped */
        static const int Mp[] = {8, 16, 32, 64};
        for (int mi = 0; mi < (quick ? 2 : 4); mi++) {
            int m = Mp[mi];
            double by = layer_bytes(&L, m);
            sh_cuda_set_gemm_path(be, SH_CUDA_GEMM_SIMT);
            double ts = time_layer(&L, m, MODE_GROUPED, trials, reps);
            sh_cuda_set_gemm_path(be, SH_CUDA_GEMM_MMA);
            double tm = time_layer(&L, m, MODE_GROUPED, trials, reps);
            sh_cuda_set_gemm_path(be, SH_CUDA_GEMM_AUTO);
            add_row(L.n, L.k, m, "grouped, SIMT path", ts, by, 0);
            add_row(L.n, L.k, m, "grouped, MMA path", tm, by, 0);
        }
        layer_free(&L);
    }

    /* ---- files ---- */
    char slug[128];
    size_t j = 0;
    for (const char *p = info->name; *p && j + 1 < sizeof slug; p++) {
        char c = (char)tolower((unsigned char)*p);
        if (isalnum((unsigned char)c)) slug[j++] = c;
        else if (j > 0 && slug[j - 1] != '-') slug[j++] = '-';
    }
    while (j > 0 && slug[j - 1] == '-') j--;
    slug[j] = 0;
    time_t now = time(NULL);
    char date[32];
    strftime(date, sizeof date, "%Y-%m-%d", gmtime(&now));
    char path[512];
    snprintf(path, sizeof path, "%s/cuda-gemm-%s.json", out_dir, slug);
    FILE *f = fopen(path, "w");
    if (f) {
        fprintf(f, "{\n  \"bench\": \"cuda_gemm\",\n  \"gpu\": \"%s\",\n  \"date\": \"%s\",\n", info->name, date);
        fprintf(f, "  \"sm_count\": %d,\n  \"copy_gbps\": %.1f,\n  \"models\": %d,\n  \"dtype\": \"bf16\",\n",
                info->sm_count, copy_gbps, N_MODELS);
        fprintf(f, "  \"min_speedup_grouped_vs_separate\": %.3f,\n  \"rows\": [\n", min_speedup);
        for (int i = 0; i < n_rows; i++)
            fprintf(f, "    {\"n\": %d, \"k\": %d, \"m\": %d, \"mode\": \"%s\", \"us\": %.3f, \"gbps\": %.1f, "
                       "\"speedup\": %.3f}%s\n",
                    rows[i].n, rows[i].k, rows[i].m, rows[i].what, rows[i].us, rows[i].gbps, rows[i].speedup,
                    i + 1 < n_rows ? "," : "");
        fprintf(f, "  ]\n}\n");
        fclose(f);
        printf("wrote %s\n", path);
    } else {
        fprintf(stderr, "cannot write %s\n", path);
    }
    snprintf(path, sizeof path, "%s/cuda-gemm-%s.md", out_dir, slug);
    f = fopen(path, "w");
    if (f) {
        fprintf(f, "# CUDA grouped GEMM, %s (%s)\n\n", info->name, date);
        fprintf(f, "`bench_cuda_gemm`: the same layer of %d models, bf16 weights (distinct per model, rotated over "
                   "sets several times the L2), f32 activations. Time per layer (all %d models), median of %d "
                   "trials x %d layers, CUDA events on the backend stream. Bandwidth = (weights + x + y bytes) / "
                   "time. Copy bandwidth (device to device, read + write) in the same run: **%.0f GB/s**.\n\n",
                N_MODELS, N_MODELS, trials, reps, copy_gbps);
        fprintf(f, "| N | K | M | launches | us / layer | GB/s | %% of copy bw | grouped speed-up |\n");
        fprintf(f, "| ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |\n");
        for (int i = 0; i < n_rows; i++) {
            fprintf(f, "| %d | %d | %d | %s | %.2f | %.0f | %.0f%% | ", rows[i].n, rows[i].k, rows[i].m, rows[i].what,
                    rows[i].us, rows[i].gbps, 100.0 * rows[i].gbps / copy_gbps);
            if (rows[i].speedup > 0) fprintf(f, "**%.2fx** |\n", rows[i].speedup);
            else fprintf(f, " |\n");
        }
        fprintf(f, "\nSmallest grouped-vs-separate speed-up (plain calls, M <= 16): **%.2fx** (target >= 4x).\n",
                min_speedup);
        fclose(f);
        printf("wrote %s\n", path);
    }
    printf("smallest grouped-vs-separate speed-up (plain calls): %.2fx\n", min_speedup);
    sh_backend_free(be);
    return 0;
}

#else

int main(void) {
    printf("skipped: built without CUDA\n");
    return 0;
}

#endif
