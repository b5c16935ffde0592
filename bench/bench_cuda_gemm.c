/* CUDA grouped-GEMM microbenchmark: the same layer of 8 models (bf16
 * weights, distinct per model) at decode-sized M, served by ONE grouped
 * launch vs 8 separate launches of the same kernel; kernel paths; and the
 * bandwidth reached on one large matrix per weight dtype.
 *
 *   bench_cuda_gemm [--out DIR] [--quick] [--profile] [--decode]
 *
 * Measures, on the backend's stream with CUDA events (warm-up first, median
 * of many trials, weights rotated over sets that together exceed L2 several
 * times, random data):
 *   - copy bandwidth (1 GiB device-to-device, bytes read + written);
 *   - for (N, K) = (1536, 576) and (576, 576) x 8 models, M in {1, 4, 8, 16}:
 *     grouped (1 call, 8 groups) vs separate (8 calls of 1 group), as plain
 *     calls (each = one descriptor copy + one launch) and with the layer in
 *     a step (one descriptor copy), and 32 grouped layers per step;
 *   - SIMT and tensor-core (MMA) paths at M = 1 .. 64, grouped;
 *   - a 49152 x 576 matrix (an LM head) in bf16, q8_0, q4_0 at M = 1, 16, 64.
 * Time per layer, speed-up, achieved bandwidth (weights + x + y bytes).
 * Writes DIR/cuda-gemm-<gpu>.md and .json (DIR defaults to bench/results)
 * and prints the table. --profile: a few single launches for ncu.
 * --decode: only the GEMMs of a SmolLM-135M decode step (8 models x 16 rows,
 * 1 x 16, 1 x 64), 32 per step, tile kernels vs the streamed GEMM and its
 * warpgroup form; prints
 * the table (no files).
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

/* Device copy of random weights (rows x k) of dt, values of order 1. */
static void *dev_weights(sh_dtype dt, int rows, int k) {
    size_t rb = dt == SH_BF16 ? (size_t)k * 2 : dt == SH_Q8_0 ? (size_t)k / 32 * 34 : (size_t)k / 32 * 18;
    size_t bytes = rb * (size_t)rows;
    uint8_t *h = malloc(bytes);
    if (!h) die("host alloc");
    if (dt == SH_BF16) {
        uint16_t *p = (uint16_t *)(void *)h;
        for (size_t i = 0; i < bytes / 2; i++) /* |v| in [2^-9, 1): exponent 118..126 */
            p[i] = (uint16_t)((rnd() & 1 ? 0x8000 : 0) | ((118 + rnd() % 9) << 7) | (rnd() & 127));
    } else {
        int bb = dt == SH_Q8_0 ? 34 : 18;
        for (size_t b = 0; b < bytes / (size_t)bb; b++) {
            uint8_t *blk = h + b * (size_t)bb;
            uint16_t d = (uint16_t)((8 << 10) | (rnd() & 1023)); /* f16 scale ~ 2^-7 */
            memcpy(blk, &d, 2);
            for (int i = 2; i < bb; i++) blk[i] = (uint8_t)rnd();
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

/* One layer of n_models models, (n, k) weights of dt each, in n_sets
 * copies (rotated so the weights come from DRAM, not L2). */
typedef struct layer_sets {
    int n_models, n, k, n_sets;
    sh_dtype dt;
    void **w;  /* (n_sets * n_models) (n, k) */
    float *x;  /* (n_models, 64, k) */
    float *y;  /* (n_models, 64, n) */
} layer_sets;

enum { MODE_GROUPED, MODE_SEPARATE, MODE_GROUPED_STEP, MODE_SEPARATE_STEP, MODE_GROUPED_32 };
static const char *mode_name[] = {"grouped", "separate", "grouped, in a step", "separate, in a step",
                                  "grouped, 32 per step"};

static void make_groups(const layer_sets *L, int set, int m, sh_gemm_group *g) {
    for (int j = 0; j < L->n_models; j++)
        g[j] = (sh_gemm_group){{L->w[set * L->n_models + j], L->dt, L->n, L->k},
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
    if (mode == MODE_SEPARATE || mode == MODE_SEPARATE_STEP) {
        for (int j = 0; j < L->n_models; j++)
            if (sh_be_gemm(be, 1, &g[j]) != SHOAL_OK) die("gemm");
    } else {
        if (sh_be_gemm(be, L->n_models, g) != SHOAL_OK) die("gemm");
    }
    if (step && sh_be_step_end(be) != SHOAL_OK) die("step_end");
}

/* Median microseconds per layer (all models) over trials of `reps` layers.
 * MODE_GROUPED_32: each trial's layers are queued in one step (one
 * descriptor copy), which leaves kernel time plus launch gaps. */
static double time_layer(const layer_sets *L, int m, int mode, int trials, int reps) {
    cudaEvent_t e0, e1;
    cu_check(cudaEventCreate(&e0), "event");
    cu_check(cudaEventCreate(&e1), "event");
    if (mode == MODE_GROUPED_32) reps = 32;
    for (int i = 0; i < 20; i++) issue(L, i % L->n_sets, m, mode == MODE_GROUPED_32 ? MODE_GROUPED : mode);
    if (sh_be_sync(be) != SHOAL_OK) die("sync");
    double *t = malloc((size_t)trials * sizeof(double));
    int set = 0;
    for (int tr = 0; tr < trials; tr++) {
        cu_check(cudaEventRecord(e0, stream), "record");
        if (mode == MODE_GROUPED_32 && sh_be_step_begin(be) != SHOAL_OK) die("step_begin");
        for (int r = 0; r < reps; r++) {
            issue(L, set, m, mode == MODE_GROUPED_32 ? MODE_GROUPED : mode);
            set = (set + 1) % L->n_sets;
        }
        if (mode == MODE_GROUPED_32 && sh_be_step_end(be) != SHOAL_OK) die("step_end");
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

/* Queues the layer of every weight set (no step brackets); 0 on success. */
static int queue_all_sets(const layer_sets *L, int m, int grouped) {
    sh_gemm_group g[N_MODELS];
    for (int set = 0; set < L->n_sets; set++) {
        make_groups(L, set, m, g);
        if (grouped) {
            if (sh_be_gemm(be, L->n_models, g) != SHOAL_OK) return -1;
        } else {
            for (int j = 0; j < L->n_models; j++)
                if (sh_be_gemm(be, 1, &g[j]) != SHOAL_OK) return -1;
        }
    }
    return 0;
}

/* Median microseconds per layer when one step holding every weight set's
 * layer (grouped: one call each; else one call per model) is captured in a
 * CUDA graph and replayed: no host launch cost, one descriptor copy.
 * Returns -1 (and says why) if the capture fails. */
static double time_graph(const layer_sets *L, int m, int grouped, int trials, int reps) {
    /* the same step, uncaptured, until every staging buffer and the device
     * descriptor arena have grown to it (growing syncs, which capture forbids) */
    for (int i = 0; i < 5; i++) {
        if (sh_be_step_begin(be) != SHOAL_OK || queue_all_sets(L, m, grouped) || sh_be_step_end(be) != SHOAL_OK)
            die("step");
    }
    if (sh_be_sync(be) != SHOAL_OK) die("sync");
    cudaGraph_t graph = NULL;
    cudaGraphExec_t exec = NULL;
    cu_check(cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed), "begin capture");
    int bad = sh_be_step_begin(be) != SHOAL_OK || queue_all_sets(L, m, grouped) || sh_be_step_end(be) != SHOAL_OK;
    cudaError_t ce = cudaStreamEndCapture(stream, &graph);
    if (bad || ce != cudaSuccess || cudaGraphInstantiate(&exec, graph, 0) != cudaSuccess) {
        printf("  (graph capture failed: %s / %s)\n", bad ? shoal_last_error() : "-", cudaGetErrorString(ce));
        (void)cudaGetLastError();
        if (graph) cudaGraphDestroy(graph);
        (void)sh_be_sync(be);
        return -1;
    }
    cudaEvent_t e0, e1;
    cu_check(cudaEventCreate(&e0), "event");
    cu_check(cudaEventCreate(&e1), "event");
    int per = reps / L->n_sets > 0 ? reps / L->n_sets : 1;
    for (int i = 0; i < 3; i++) cu_check(cudaGraphLaunch(exec, stream), "graph launch");
    double *t = malloc((size_t)trials * sizeof(double));
    for (int tr = 0; tr < trials; tr++) {
        cu_check(cudaEventRecord(e0, stream), "record");
        for (int r = 0; r < per; r++) cu_check(cudaGraphLaunch(exec, stream), "graph launch");
        cu_check(cudaEventRecord(e1, stream), "record");
        cu_check(cudaEventSynchronize(e1), "sync");
        float ms = 0;
        cu_check(cudaEventElapsedTime(&ms, e0, e1), "elapsed");
        t[tr] = 1000.0 * ms / ((double)per * L->n_sets);
    }
    qsort(t, (size_t)trials, sizeof *t, cmp_double);
    double med = t[trials / 2];
    free(t);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    if (sh_be_sync(be) != SHOAL_OK) die("sync");
    return med;
}

static double weight_bytes(const layer_sets *L) {
    double rb = L->dt == SH_BF16 ? L->k * 2.0 : L->dt == SH_Q8_0 ? L->k / 32 * 34.0 : L->k / 32 * 18.0;
    return rb * L->n;
}

static double layer_bytes(const layer_sets *L, int m) {
    return (double)L->n_models * (weight_bytes(L) + (double)m * L->k * 4 + (double)m * L->n * 4);
}

static void layer_init(layer_sets *L, int n_models, sh_dtype dt, int n, int k, size_t min_bytes) {
    L->n_models = n_models;
    L->dt = dt;
    L->n = n;
    L->k = k;
    size_t per_set = (size_t)((double)n_models * weight_bytes(L));
    L->n_sets = (int)((min_bytes + per_set - 1) / per_set);
    if (L->n_sets < 2) L->n_sets = 2;
    L->w = malloc((size_t)L->n_sets * n_models * sizeof(void *));
    for (int i = 0; i < L->n_sets * n_models; i++) L->w[i] = dev_weights(dt, n, k);
    L->x = dev_floats((size_t)n_models * 64 * k);
    L->y = dev_floats((size_t)n_models * 64 * n);
}

static void layer_free(layer_sets *L) {
    for (int i = 0; i < L->n_sets * L->n_models; i++) sh_be_free(be, L->w[i]);
    free(L->w);
    sh_be_free(be, L->x);
    sh_be_free(be, L->y);
}

/* ---- output --------------------------------------------------------------- */

typedef struct row {
    int models, n, k, m;
    const char *dt;
    const char *what;
    double us, gbps;
    double speedup; /* vs the separate launches of the same M, or 0 */
} row;

static row rows[512];
static int n_rows;

static void add_row(const layer_sets *L, int m, const char *what, double us, double speedup) {
    const char *dt = L->dt == SH_BF16 ? "bf16" : L->dt == SH_Q8_0 ? "q8_0" : "q4_0";
    double gbps = layer_bytes(L, m) / (us * 1e-6) / 1e9;
    rows[n_rows++] = (row){L->n_models, L->n, L->k, m, dt, what, us, gbps, speedup};
    printf("  %dx N=%-5d K=%-4d %-4s M=%-3d %-22s %9.2f us  %8.1f GB/s", L->n_models, L->n, L->k, dt, m, what, us,
           gbps);
    if (speedup > 0) printf("  x%.2f vs separate", speedup);
    printf("\n");
}

/* --profile: a few launches, once each, for a profiler to time
 * (ncu -k regex:gemm_kernel): prints the order. */
static void run_profile(void) {
    layer_sets L8, H8, Hq;
    layer_init(&L8, N_MODELS, SH_BF16, 1536, 576, 0);
    layer_init(&H8, 1, SH_BF16, 49152, 576, 0);
    layer_init(&Hq, 1, SH_Q8_0, 49152, 576, 0);
    struct { layer_sets *L; int m; sh_cuda_gemm_path p; const char *what; } runs[] = {
        {&L8, 1, SH_CUDA_GEMM_SIMT, "8x 1536x576 bf16 M=1 SIMT"},  {&L8, 1, SH_CUDA_GEMM_MMA, "8x 1536x576 bf16 M=1 MMA"},
        {&L8, 16, SH_CUDA_GEMM_SIMT, "8x 1536x576 bf16 M=16 SIMT"}, {&L8, 16, SH_CUDA_GEMM_MMA, "8x 1536x576 bf16 M=16 MMA"},
        {&H8, 1, SH_CUDA_GEMM_SIMT, "49152x576 bf16 M=1 SIMT"},    {&H8, 1, SH_CUDA_GEMM_MMA, "49152x576 bf16 M=1 MMA"},
        {&H8, 64, SH_CUDA_GEMM_MMA, "49152x576 bf16 M=64 MMA"},    {&Hq, 1, SH_CUDA_GEMM_SIMT, "49152x576 q8_0 M=1 SIMT"},
        {&Hq, 1, SH_CUDA_GEMM_MMA, "49152x576 q8_0 M=1 MMA"},
    };
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        sh_cuda_set_gemm_path(be, runs[i].p);
        issue(runs[i].L, 0, runs[i].m, MODE_GROUPED);
        if (sh_be_sync(be) != SHOAL_OK) die("sync");
        printf("profile launch %zu: %s\n", i + 1, runs[i].what);
    }
    sh_cuda_set_gemm_path(be, SH_CUDA_GEMM_AUTO);
    /* the streamed GEMM (ncu -k regex:gemm_ring): a layer and the LM head of 8 models at 16 rows */
    layer_sets H88;
    layer_init(&H88, N_MODELS, SH_BF16, 49152, 576, 0);
    if (sh_cuda_set_gemm_ring(be, 2) != SHOAL_OK) die("set_gemm_ring");
    issue(&L8, 0, 16, MODE_GROUPED);
    if (sh_be_sync(be) != SHOAL_OK) die("sync");
    printf("profile ring launch 1: 8x 1536x576 bf16 M=16\n");
    issue(&H88, 0, 16, MODE_GROUPED);
    if (sh_be_sync(be) != SHOAL_OK) die("sync");
    printf("profile ring launch 2: 8x 49152x576 bf16 M=16\n");
    if (sh_cuda_set_gemm_ring(be, 4) != SHOAL_OK) die("set_gemm_ring"); /* the warpgroup form */
    issue(&L8, 1, 16, MODE_GROUPED);
    issue(&H88, 1, 16, MODE_GROUPED);
    if (sh_be_sync(be) != SHOAL_OK) die("sync");
    printf("profile ring launches 3, 4: the same, warpgroup form\n");
    if (sh_cuda_set_gemm_ring(be, 1) != SHOAL_OK) die("set_gemm_ring");
    layer_free(&H88);
    layer_free(&L8);
    layer_free(&H8);
    layer_free(&Hq);
}

/* --decode: the GEMM shapes of a SmolLM-135M layer and its LM head (QKV,
 * o, gate+up as one 3072-row matrix, down, head), grouped as the fused step
 * issues them, 32 launches per step (kernel time plus the gaps PDL leaves),
 * and those of GPT-2-124M at 64 rows: through the tile kernels (ring 0),
 * the streamed GEMM (ring 2), at M <= 16 its tensor-copy form (ring 4),
 * the default rules (ring 1, tensor-copy forms by launch size), at M <= 16
 * the deep form by launch size and forced (deep 1, 2), and at
 * M > 16 the form with streamed terms forced (tmx 2). */
static void run_decode(int trials, int reps, size_t l2) {
    static const struct { int models, n, k, m; } cs[] = {
        {N_MODELS, 960, 576, 16}, {N_MODELS, 576, 576, 16}, {N_MODELS, 3072, 576, 16}, {N_MODELS, 576, 1536, 16},
        {N_MODELS, 49152, 576, 16}, {1, 960, 576, 16}, {1, 576, 576, 16}, {1, 3072, 576, 16},
        {1, 576, 1536, 16}, {1, 49152, 576, 16}, {1, 960, 576, 64}, {1, 576, 576, 64},
        {1, 3072, 576, 64}, {1, 576, 1536, 64}, {1, 49152, 576, 64}, {1, 2304, 768, 64},
        {1, 768, 768, 64}, {1, 3072, 768, 64}, {1, 768, 3072, 64}, {1, 50304, 768, 64},
        {N_MODELS, 960, 576, 64}, {N_MODELS, 3072, 576, 64}, {N_MODELS, 576, 1536, 64},
    };
    static const struct { int ring, tmx, deep; const char *what; } md[] = {
        {0, 0, 0, "tiles, 32 per step"}, {2, 0, 0, "ring, 32 per step"}, {4, 0, 0, "ring wgmma, 32 per step"},
        {1, 1, 0, "default, 32 per step"}, {1, 1, 1, "deep by size, 32 per step"}, {1, 1, 2, "deep forced, 32 per step"},
        {1, 2, 0, "tmx forced, 32 per step"},
    };
    for (size_t ci = 0; ci < sizeof cs / sizeof cs[0]; ci++) {
        layer_sets L;
        layer_init(&L, cs[ci].models, SH_BF16, cs[ci].n, cs[ci].k, (size_t)4 * l2);
        for (size_t mi = 0; mi < sizeof md / sizeof md[0]; mi++) {
            if (((md[mi].ring == 4 || md[mi].deep) && cs[ci].m > 16) || (md[mi].tmx == 2 && cs[ci].m <= 16)) continue;
            if (sh_cuda_set_gemm_ring(be, md[mi].ring) != SHOAL_OK || sh_cuda_set_gemm_tmx(be, md[mi].tmx) != SHOAL_OK ||
                sh_cuda_set_gemm_deep(be, md[mi].deep) != SHOAL_OK)
                die("set_gemm_ring / set_gemm_tmx / set_gemm_deep");
            const double t = time_layer(&L, cs[ci].m, MODE_GROUPED_32, trials, reps);
            add_row(&L, cs[ci].m, md[mi].what, t, 0);
        }
        if (sh_cuda_set_gemm_ring(be, 1) != SHOAL_OK || sh_cuda_set_gemm_tmx(be, 1) != SHOAL_OK ||
            sh_cuda_set_gemm_deep(be, 0) != SHOAL_OK)
            die("set_gemm_ring");
        layer_free(&L);
    }
}

int main(int argc, char **argv) {
    const char *out_dir = "bench/results";
    int quick = 0, profile = 0, decode = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) out_dir = argv[++i];
        else if (strcmp(argv[i], "--quick") == 0) quick = 1;
        else if (strcmp(argv[i], "--profile") == 0) profile = 1;
        else if (strcmp(argv[i], "--decode") == 0) decode = 1;
        else {
            fprintf(stderr, "usage: bench_cuda_gemm [--out DIR] [--quick] [--profile] [--decode]\n");
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
    if (profile) {
        run_profile();
        sh_backend_free(be);
        return 0;
    }
    if (decode) {
        run_decode(trials, reps, (size_t)info->l2_bytes);
        sh_backend_free(be);
        return 0;
    }

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

    /* 1. the same layer of 8 models: one grouped launch vs 8 launches */
    static const int shapes[][2] = {{1536, 576}, {576, 576}};
    static const int Ms[] = {1, 4, 8, 16};
    double min_speedup = 1e9, min_speedup_step = 1e9;
    for (int si = 0; si < 2; si++) {
        layer_sets L;
        layer_init(&L, N_MODELS, SH_BF16, shapes[si][0], shapes[si][1], (size_t)4 * info->l2_bytes);
        printf("layer N=%d K=%d bf16 x %d models (%d weight sets, %.0f MB rotated)\n", L.n, L.k, N_MODELS, L.n_sets,
               (double)L.n_sets * L.n_models * weight_bytes(&L) / 1e6);
        for (int mi = 0; mi < 4; mi++) {
            int m = Ms[mi];
            double t[5];
            for (int mode = 0; mode < 5; mode++) t[mode] = time_layer(&L, m, mode, trials, reps);
            add_row(&L, m, mode_name[MODE_SEPARATE], t[MODE_SEPARATE], 0);
            add_row(&L, m, mode_name[MODE_GROUPED], t[MODE_GROUPED], t[MODE_SEPARATE] / t[MODE_GROUPED]);
            add_row(&L, m, mode_name[MODE_SEPARATE_STEP], t[MODE_SEPARATE_STEP], 0);
            add_row(&L, m, mode_name[MODE_GROUPED_STEP], t[MODE_GROUPED_STEP],
                    t[MODE_SEPARATE_STEP] / t[MODE_GROUPED_STEP]);
            add_row(&L, m, mode_name[MODE_GROUPED_32], t[MODE_GROUPED_32], 0);
            if (t[MODE_SEPARATE] / t[MODE_GROUPED] < min_speedup) min_speedup = t[MODE_SEPARATE] / t[MODE_GROUPED];
            if (t[MODE_SEPARATE_STEP] / t[MODE_GROUPED_STEP] < min_speedup_step)
                min_speedup_step = t[MODE_SEPARATE_STEP] / t[MODE_GROUPED_STEP];
        }
        /* launch costs: CUDA graph replay, and programmatic dependent launch off */
        for (int mi = 0; mi < (quick ? 1 : 2); mi++) {
            int m = mi ? 16 : 1;
            double gs = time_graph(&L, m, 0, trials, 4 * reps);
            double gg = time_graph(&L, m, 1, trials, 4 * reps);
            if (gs > 0 && gg > 0) {
                add_row(&L, m, "separate, CUDA graph", gs, 0);
                add_row(&L, m, "grouped, CUDA graph", gg, gs / gg);
            }
            sh_cuda_set_pdl(be, 0);
            double ns = time_layer(&L, m, MODE_SEPARATE_STEP, trials, reps);
            double n32 = time_layer(&L, m, MODE_GROUPED_32, trials, reps);
            double gsn = time_graph(&L, m, 0, trials, 4 * reps);
            double ggn = time_graph(&L, m, 1, trials, 4 * reps);
            sh_cuda_set_pdl(be, 1);
            add_row(&L, m, "separate, in a step, no PDL", ns, 0);
            add_row(&L, m, "grouped, 32 per step, no PDL", n32, 0);
            if (gsn > 0 && ggn > 0) {
                add_row(&L, m, "separate, CUDA graph, no PDL", gsn, 0);
                add_row(&L, m, "grouped, CUDA graph, no PDL", ggn, gsn / ggn);
            }
        }
        /* 2. kernel paths, grouped, 32 layers per step (kernel time + launch gaps) */
        static const int Mp[] = {1, 2, 4, 8, 16, 32, 64};
        for (int mi = 0; mi < (quick ? 4 : 7); mi++) {
            int m = Mp[mi];
            sh_cuda_set_gemm_path(be, SH_CUDA_GEMM_SIMT);
            double ts = time_layer(&L, m, MODE_GROUPED_32, trials, reps);
            sh_cuda_set_gemm_path(be, SH_CUDA_GEMM_MMA);
            double tm = time_layer(&L, m, MODE_GROUPED_32, trials, reps);
            sh_cuda_set_gemm_path(be, SH_CUDA_GEMM_AUTO);
            add_row(&L, m, "SIMT path, 32 per step", ts, 0);
            add_row(&L, m, "MMA path, 32 per step", tm, 0);
        }
        layer_free(&L);
    }
    /* 3. one large matrix (an LM head, 49152 x 576) per dtype: bandwidth */
    static const sh_dtype head_dt[] = {SH_BF16, SH_Q8_0, SH_Q4_0};
    for (int di = 0; di < 3; di++) {
        layer_sets L;
        layer_init(&L, 1, head_dt[di], 49152, 576, (size_t)2 * info->l2_bytes);
        static const int Mh[] = {1, 16, 64};
        for (int mi = 0; mi < 3; mi++) {
            int m = Mh[mi];
            sh_cuda_set_gemm_path(be, SH_CUDA_GEMM_SIMT);
            double ts = time_layer(&L, m, MODE_GROUPED_32, trials, reps);
            sh_cuda_set_gemm_path(be, SH_CUDA_GEMM_MMA);
            double tm = time_layer(&L, m, MODE_GROUPED_32, trials, reps);
            sh_cuda_set_gemm_path(be, SH_CUDA_GEMM_AUTO);
            add_row(&L, m, "SIMT path, 32 per step", ts, 0);
            add_row(&L, m, "MMA path, 32 per step", tm, 0);
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
        fprintf(f, "  \"sm_count\": %d,\n  \"copy_gbps\": %.1f,\n", info->sm_count, copy_gbps);
        fprintf(f, "  \"min_speedup_grouped_vs_separate\": %.3f,\n", min_speedup);
        fprintf(f, "  \"min_speedup_grouped_vs_separate_in_a_step\": %.3f,\n  \"rows\": [\n", min_speedup_step);
        for (int i = 0; i < n_rows; i++)
            fprintf(f, "    {\"models\": %d, \"n\": %d, \"k\": %d, \"dtype\": \"%s\", \"m\": %d, \"mode\": \"%s\", "
                       "\"us\": %.3f, \"gbps\": %.1f, \"speedup\": %.3f}%s\n",
                    rows[i].models, rows[i].n, rows[i].k, rows[i].dt, rows[i].m, rows[i].what, rows[i].us,
                    rows[i].gbps, rows[i].speedup, i + 1 < n_rows ? "," : "");
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
        fprintf(f, "`bench_cuda_gemm`: the same layer of %d models (distinct random weights per model, rotated over "
                   "sets several times the L2), f32 activations. Time per layer (all models of the row), median of "
                   "%d trials x %d layers, CUDA events on the backend stream. Bandwidth = (weights + x + y bytes) / "
                   "time. Copy bandwidth (device to device, read + write) in the same run: **%.0f GB/s**.\n\n",
                N_MODELS, trials, reps, copy_gbps);
        fprintf(f, "Modes: *separate* = one call per model, each a descriptor copy + a launch; *grouped* = one call "
                   "for all models; *in a step* = the calls of one layer between step_begin/step_end (one "
                   "descriptor copy); *32 per step* = 32 grouped layers in one step (kernel time + launch gaps); "
                   "*CUDA graph* = one step holding the layer of every weight set, captured once and replayed (no "
                   "host launch cost). Launches use programmatic dependent launch unless the row says *no PDL*.\n\n");
        fprintf(f, "| models | N | K | dtype | M | mode | us / layer | GB/s | %% of copy bw | grouped speed-up |\n");
        fprintf(f, "| ---: | ---: | ---: | --- | ---: | --- | ---: | ---: | ---: | ---: |\n");
        for (int i = 0; i < n_rows; i++) {
            fprintf(f, "| %d | %d | %d | %s | %d | %s | %.2f | %.0f | %.0f%% | ", rows[i].models, rows[i].n, rows[i].k,
                    rows[i].dt, rows[i].m, rows[i].what, rows[i].us, rows[i].gbps, 100.0 * rows[i].gbps / copy_gbps);
            if (rows[i].speedup > 0) fprintf(f, "**%.2fx** |\n", rows[i].speedup);
            else fprintf(f, " |\n");
        }
        fprintf(f, "\nSmallest grouped-vs-separate speed-up at M <= 16: **%.2fx** as plain calls, **%.2fx** with "
                   "each layer in a step (target >= 4x).\n",
                min_speedup, min_speedup_step);
        fclose(f);
        printf("wrote %s\n", path);
    }
    printf("smallest grouped-vs-separate speed-up: %.2fx (plain calls), %.2fx (in a step)\n", min_speedup,
           min_speedup_step);
    sh_backend_free(be);
    return 0;
}

#else

int main(void) {
    printf("skipped: built without CUDA\n");
    return 0;
}

#endif
