/* SH_OP_SAMPLE and sh_sample_u.
 *
 *  1. sh_sample(rng) == sh_sample_u(the uniform rng gives), penalties and
 *     history included (the split keeps the tokens of a seed).
 *  2. The CPU backend's op against sh_sample_u, exactly: one call with groups
 *     of vocabularies 1, 7, 1000, 50257 and 151936 (strides, offsets), rows
 *     of random temperature (greedy ones too), top-k 0/1/5/50/n, top-p
 *     0.1..1, min-p 0..0.2, u, and logits with ties, -inf entries, flat and
 *     peaked rows. Argument checks.
 *  3. With a CUDA device: the same rows on the CUDA op, alone and inside
 *     step_begin/step_end (the third step replays a captured graph with new
 *     draws). Ids must equal sh_sample_u's, except on rows where a boundary
 *     lies within 1e-6 (relative, computed here in f64) of its target: u *
 *     sum near a running sum, a running sum near top_p, or a p_i near min_p *
 *     p_0. Those rows are counted as ambiguous (reported; more than 1% fails);
 *     greedy rows must match always. Kernel times for 128-row batches of
 *     49152 and 151936 columns (CUDA events; printed, not checked).
 *     `--quick` (for compute-sanitizer): fewer rows, no timing.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "check.h"
#include "sample.h"

#ifdef SHOAL_WITH_CUDA
#include <cuda_runtime_api.h>

#include "../kernels/cuda/cuda_backend.h"
#endif

#define OK(call)                                                          \
    do {                                                                  \
        shoal_status s_ = (call);                                         \
        CHECK(s_ == SHOAL_OK, "%s: %s", #call, shoal_last_error());       \
    } while (0)

/* ---- random data --------------------------------------------------------- */

static uint64_t g_rng = 0x243F6A8885A308D3ull;
static uint64_t rnext(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}
static double runif(void) { return (double)(rnext() >> 11) * 0x1.0p-53; }
static int rint_(int n) { return (int)(rnext() % (uint64_t)n); }
static double rnorm(void) {
    double a = runif(), b = runif();
    return sqrt(-2.0 * log(a + 1e-300)) * cos(6.283185307179586 * b);
}

/* A logits row of one of several shapes. */
static void fill_row(float *x, int n, int kind) {
    switch (kind) {
    case 0: /* smooth */
        for (int i = 0; i < n; i++) x[i] = (float)(3.0 * rnorm());
        break;
    case 1: /* many ties */
        for (int i = 0; i < n; i++) x[i] = (float)floor(2.0 * rnorm());
        break;
    case 2: /* masked entries, -0 and +0 */
        for (int i = 0; i < n; i++) {
            int r = rint_(8);
            x[i] = r == 0 ? -INFINITY : r == 1 ? -0.0f : r == 2 ? 0.0f : (float)(2.0 * rnorm());
        }
        break;
    case 3: /* nearly flat */
        for (int i = 0; i < n; i++) x[i] = (float)(0.01 * rnorm());
        break;
    default: /* peaked: a few large logits */
        for (int i = 0; i < n; i++) x[i] = (float)(1.5 * rnorm());
        for (int k = 0; k < 3; k++) x[rint_(n)] = (float)(12.0 + 4.0 * runif());
        break;
    }
}

static sh_sample_params rand_params(int n) {
    sh_sample_params p;
    p.temperature = rint_(10) == 0 ? 0.0f : (float)(0.1 + 1.9 * runif());
    static const int ks[] = {0, 1, 5, 50, -1};
    int k = ks[rint_(5)];
    p.top_k = k < 0 ? n : k;
    p.top_p = rint_(2) ? 1.0f : (float)(0.1 + 0.9 * runif());
    p.min_p = rint_(2) ? 0.0f : (float)(0.2 * runif());
    p.u = runif();
    return p;
}

/* ---- the f64 boundary analysis ------------------------------------------ */

typedef struct cand { float s; int32_t id; } cand;

static int cmp_cand(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->s != y->s) return x->s > y->s ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* 1 if a boundary of sh_sample_u's cuts or draw lies within eps (relative)
 * of its target for this row. */
static int ambiguous(const float *x, int n, const sh_sample_params *p, double eps) {
    if (!(p->temperature > 0)) return 0;
    cand *c = malloc((size_t)n * sizeof *c);
    double *pr = malloc((size_t)n * sizeof *pr);
    if (!c || !pr) {
        free(c);
        free(pr);
        return 1;
    }
    for (int i = 0; i < n; i++) c[i] = (cand){x[i] / p->temperature, i};
    qsort(c, (size_t)n, sizeof *c, cmp_cand);
    int m = p->top_k > 0 && p->top_k < n ? p->top_k : n;
    double mx = c[0].s, sum = 0;
    for (int i = 0; i < m; i++) sum += (pr[i] = exp((double)c[i].s - mx));
    for (int i = 0; i < m; i++) pr[i] /= sum;
    int amb = 0;
    if (p->top_p > 0 && p->top_p < 1) {
        double cum = 0;
        int keep = m;
        for (int i = 0; i < m; i++) {
            cum += pr[i];
            if (fabs(cum - p->top_p) <= eps) amb = 1;
            if (cum >= p->top_p && keep == m) keep = i + 1;
        }
        m = keep;
    }
    if (p->min_p > 0) {
        int keep = 1;
        for (int i = 1; i < m; i++) {
            if (fabs(pr[i] - p->min_p * pr[0]) <= eps * pr[0]) amb = 1;
            if (keep == i && pr[i] >= p->min_p * pr[0]) keep = i + 1;
        }
        m = keep;
    }
    double tot = 0;
    for (int i = 0; i < m; i++) tot += pr[i];
    double t = p->u * tot, acc = 0;
    for (int i = 0; i < m; i++) {
        acc += pr[i];
        if (fabs(acc - t) <= eps * tot) amb = 1;
    }
    free(c);
    free(pr);
    return amb;
}

/* ---- the row sets ---------------------------------------------------------- */

enum { NSET = 5 };
static const int set_n[NSET] = {1, 7, 1000, 50257, 151936};

typedef struct rowset {
    int n, rows, stride, off; /* row r at x + off + r * stride */
    float *x;                 /* host */
    sh_sample_params *p;      /* (rows) */
    int32_t *ref;             /* (rows) sh_sample_u */
    unsigned char *amb;       /* (rows) ambiguous at 1e-6 */
} rowset;

static rowset g_sets[NSET];

static void make_sets(int quick) {
    static const int full_rows[NSET] = {64, 200, 200, 48, 24};
    static const int quick_rows[NSET] = {8, 16, 16, 6, 4};
    for (int s = 0; s < NSET; s++) {
        rowset *q = &g_sets[s];
        q->n = set_n[s];
        q->rows = quick ? quick_rows[s] : full_rows[s];
        q->stride = q->n + (s % 2 ? 3 : 0);
        q->off = s % 3 == 1 ? 1 : 0;
        size_t tot = (size_t)q->off + (size_t)q->rows * q->stride;
        q->x = malloc(tot * sizeof *q->x);
        q->p = malloc((size_t)q->rows * sizeof *q->p);
        q->ref = malloc((size_t)q->rows * sizeof *q->ref);
        q->amb = malloc((size_t)q->rows);
        for (size_t i = 0; i < tot; i++) q->x[i] = NAN; /* padding */
        for (int r = 0; r < q->rows; r++) {
            float *row = q->x + q->off + (size_t)r * q->stride;
            fill_row(row, q->n, r % 5);
            q->p[r] = rand_params(q->n);
            q->ref[r] = sh_sample_row(row, q->n, &q->p[r]);
            q->amb[r] = (unsigned char)ambiguous(row, q->n, &q->p[r], 1e-6);
        }
    }
}

static void free_sets(void) {
    for (int s = 0; s < NSET; s++) {
        free(g_sets[s].x);
        free(g_sets[s].p);
        free(g_sets[s].ref);
        free(g_sets[s].amb);
    }
}

/* ---- 1: the split ------------------------------------------------------------ */

static void test_split(void) {
    int n = 3000, same = 0, tries = 0;
    float *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b), *x = malloc((size_t)n * sizeof *x);
    int32_t hist[40];
    for (int i = 0; i < 40; i++) hist[i] = rint_(n);
    for (int t = 0; t < 60; t++) {
        fill_row(x, n, t % 5);
        shoal_sampling_params sp;
        shoal_sampling_params_init(&sp);
        sp.temperature = t % 7 == 0 ? 0.0f : (float)(0.2 + runif());
        sp.top_k = t % 3 == 0 ? 20 : 0;
        sp.top_p = t % 2 ? 0.8f : 1.0f;
        sp.min_p = t % 4 == 1 ? 0.05f : 0.0f;
        sp.repetition_penalty = t % 5 == 2 ? 1.3f : 1.0f;
        sh_rng r1, r2;
        sh_rng_seed(&r1, 1000 + (uint64_t)t);
        sh_rng_seed(&r2, 1000 + (uint64_t)t);
        memcpy(a, x, (size_t)n * sizeof *x);
        memcpy(b, x, (size_t)n * sizeof *x);
        int32_t ia = sh_sample(a, n, &sp, hist, 40, &r1);
        double u = sp.temperature > 0 ? sh_rng_uniform(&r2) : 0.0;
        int32_t ib = sh_sample_u(b, n, &sp, hist, 40, u);
        same += ia == ib && r1.s[0] == r2.s[0] && r1.s[3] == r2.s[3];
        tries++;
    }
    CHECK(same == tries, "sh_sample == sh_sample_u(drawn u) and the same rng state: %d of %d", same, tries);
    free(a);
    free(b);
    free(x);
}

/* ---- 2: the CPU op ----------------------------------------------------------- */

static void run_op(sh_backend *be, int32_t **outs_host) {
    sh_sample_group g[NSET];
    void *xb[NSET], *ob[NSET];
    for (int s = 0; s < NSET; s++) {
        rowset *q = &g_sets[s];
        size_t tot = (size_t)q->off + (size_t)q->rows * q->stride;
        OK(sh_be_alloc(be, tot * sizeof(float), &xb[s]));
        OK(sh_be_alloc(be, (size_t)q->rows * sizeof(int32_t), &ob[s]));
        OK(sh_be_upload(be, xb[s], q->x, tot * sizeof(float)));
        g[s] = (sh_sample_group){{(float *)xb[s] + q->off, q->rows, q->n, q->stride}, q->p, ob[s]};
    }
    OK(sh_be_sample(be, NSET, g));
    for (int s = 0; s < NSET; s++) {
        outs_host[s] = malloc((size_t)g_sets[s].rows * sizeof(int32_t));
        OK(sh_be_download(be, outs_host[s], ob[s], (size_t)g_sets[s].rows * sizeof(int32_t)));
        sh_be_free(be, xb[s]);
        sh_be_free(be, ob[s]);
    }
    OK(sh_be_sync(be));
}

static void test_cpu(void) {
    sh_backend *cpu = NULL;
    OK(sh_backend_create("cpu", 0, &cpu));
    if (!cpu) return;
    int32_t *out[NSET];
    run_op(cpu, out);
    int bad = 0, total = 0;
    for (int s = 0; s < NSET; s++)
        for (int r = 0; r < g_sets[s].rows; r++) {
            total++;
            if (out[s][r] != g_sets[s].ref[r]) {
                bad++;
                CHECK(0, "cpu op n %d row %d: %d, sh_sample_u %d", g_sets[s].n, r, out[s][r], g_sets[s].ref[r]);
            }
        }
    printf("cpu op: %d/%d rows equal sh_sample_u\n", total - bad, total);
    for (int s = 0; s < NSET; s++) free(out[s]);

    /* argument checks */
    float x[8] = {0};
    int32_t o[1];
    sh_sample_params p = {1.0f, 0, 1.0f, 0.0f, 1.0};
    sh_sample_group g = {{x, 1, 8, 8}, &p, o};
    CHECK(sh_be_sample(cpu, 1, &g) != SHOAL_OK, "u = 1 accepted");
    p.u = -0.5;
    CHECK(sh_be_sample(cpu, 1, &g) != SHOAL_OK, "u < 0 accepted");
    p.temperature = 0.0f; /* greedy rows ignore u */
    CHECK(sh_be_sample(cpu, 1, &g) == SHOAL_OK, "greedy row with any u: %s", shoal_last_error());
    g.p = NULL;
    CHECK(sh_be_sample(cpu, 1, &g) != SHOAL_OK, "NULL params accepted");
    g.p = &p;
    g.out = NULL;
    CHECK(sh_be_sample(cpu, 1, &g) != SHOAL_OK, "NULL out accepted");
    CHECK(sh_be_sample(cpu, 0, NULL) == SHOAL_OK, "no groups");
    sh_backend_free(cpu);
}

/* ---- 3: the CUDA op ---------------------------------------------------------- */

#ifdef SHOAL_WITH_CUDA
/* Compares one run's ids with sh_sample_u; returns rows that differ. */
static int compare_gpu(const char *label, int32_t **out, int *n_amb, int *n_rows) {
    int diff = 0, amb = 0, rows = 0, amb_diff = 0;
    for (int s = 0; s < NSET; s++)
        for (int r = 0; r < g_sets[s].rows; r++) {
            rowset *q = &g_sets[s];
            rows++;
            amb += q->amb[r];
            if (out[s][r] == q->ref[r]) continue;
            diff++;
            if (q->amb[r]) {
                amb_diff++;
                continue;
            }
            CHECK(0, "%s: n %d row %d (T %g k %d p %g minp %g u %.17g): cuda %d, sh_sample_u %d", label, q->n, r,
                  (double)q->p[r].temperature, q->p[r].top_k, (double)q->p[r].top_p, (double)q->p[r].min_p,
                  q->p[r].u, out[s][r], q->ref[r]);
        }
    printf("%s: %d/%d rows equal sh_sample_u; %d ambiguous at 1e-6 (%d of them differ)\n", label, rows - diff, rows,
           amb, amb_diff);
    *n_amb = amb;
    *n_rows = rows;
    return diff;
}

static void time_batch(sh_backend *gpu, int n, int rows) {
    size_t cnt = (size_t)rows * n;
    float *x = malloc(cnt * sizeof *x);
    for (int r = 0; r < rows; r++) fill_row(x + (size_t)r * n, n, r % 2 ? 0 : 4);
    void *xd = NULL, *od = NULL;
    OK(sh_be_alloc(gpu, cnt * sizeof(float), &xd));
    OK(sh_be_alloc(gpu, (size_t)rows * sizeof(int32_t), &od));
    OK(sh_be_upload(gpu, xd, x, cnt * sizeof(float)));
    sh_sample_params *p = malloc((size_t)rows * sizeof *p);
    static const struct { const char *name; float t; int k; float tp, mp; } cfg[] = {
        {"greedy", 0.0f, 0, 1.0f, 0.0f},         {"temperature 0.8", 0.8f, 0, 1.0f, 0.0f},
        {"top-k 50", 0.8f, 50, 1.0f, 0.0f},      {"top-p 0.9", 0.8f, 0, 0.9f, 0.0f},
        {"top-k 50 top-p 0.9 min-p 0.05", 0.8f, 50, 0.9f, 0.05f},
    };
    cudaStream_t st = (cudaStream_t)sh_cuda_stream(gpu);
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    for (size_t c = 0; c < sizeof cfg / sizeof cfg[0]; c++) {
        for (int r = 0; r < rows; r++)
            p[r] = (sh_sample_params){cfg[c].t, cfg[c].k, cfg[c].tp, cfg[c].mp, runif()};
        sh_sample_group g = {{xd, rows, n, n}, p, od};
        OK(sh_be_sample(gpu, 1, &g)); /* warm-up */
        OK(sh_be_sync(gpu));
        enum { REPS = 10 };
        cudaEventRecord(e0, st);
        for (int i = 0; i < REPS; i++) OK(sh_be_sample(gpu, 1, &g));
        cudaEventRecord(e1, st);
        OK(sh_be_sync(gpu));
        float ms = 0;
        cudaEventElapsedTime(&ms, e0, e1);
        printf("cuda sample %d x %d, %s: %.1f us per call\n", rows, n, cfg[c].name, 1e3 * ms / REPS);
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    sh_be_free(gpu, xd);
    sh_be_free(gpu, od);
    free(p);
    free(x);
}

static void test_cuda(int quick) {
    sh_backend *gpu = NULL;
    shoal_status s = sh_cuda_backend_create(0, &gpu);
    if (s != SHOAL_OK) {
        printf("cuda: skipped (no CUDA device: %s)\n", shoal_last_error());
        return;
    }
    int32_t *out[NSET];
    int amb, rows;
    run_op(gpu, out);
    compare_gpu("cuda op", out, &amb, &rows);
    /* (--quick has too few rows for the share to mean anything) */
    CHECK(quick || amb * 100 <= rows, "%d of %d rows ambiguous (more than 1%%)", amb, rows);
    for (int k = 0; k < NSET; k++) free(out[k]);

    /* inside steps: the same shapes three times (direct, captured, replayed),
     * each with new draws */
    for (int step = 0; step < 3; step++) {
        for (int k = 0; k < NSET; k++)
            for (int r = 0; r < g_sets[k].rows; r++) {
                rowset *q = &g_sets[k];
                q->p[r].u = runif();
                const float *row = q->x + q->off + (size_t)r * q->stride;
                float *tmp = malloc((size_t)q->n * sizeof *tmp);
                memcpy(tmp, row, (size_t)q->n * sizeof *tmp);
                q->ref[r] = sh_sample_row(tmp, q->n, &q->p[r]);
                q->amb[r] = (unsigned char)ambiguous(row, q->n, &q->p[r], 1e-6);
                free(tmp);
            }
        sh_sample_group g[NSET];
        void *xb[NSET], *ob[NSET];
        for (int k = 0; k < NSET; k++) {
            rowset *q = &g_sets[k];
            size_t tot = (size_t)q->off + (size_t)q->rows * q->stride;
            OK(sh_be_alloc(gpu, tot * sizeof(float), &xb[k]));
            OK(sh_be_alloc(gpu, (size_t)q->rows * sizeof(int32_t), &ob[k]));
            OK(sh_be_upload(gpu, xb[k], q->x, tot * sizeof(float)));
            g[k] = (sh_sample_group){{(float *)xb[k] + q->off, q->rows, q->n, q->stride}, q->p, ob[k]};
        }
        OK(sh_be_step_begin(gpu));
        OK(sh_be_sample(gpu, NSET, g));
        OK(sh_be_step_end(gpu));
        for (int k = 0; k < NSET; k++) {
            out[k] = malloc((size_t)g_sets[k].rows * sizeof(int32_t));
            OK(sh_be_download(gpu, out[k], ob[k], (size_t)g_sets[k].rows * sizeof(int32_t)));
            sh_be_free(gpu, xb[k]);
            sh_be_free(gpu, ob[k]);
        }
        OK(sh_be_sync(gpu));
        char label[64];
        snprintf(label, sizeof label, "cuda op in step %d", step);
        compare_gpu(label, out, &amb, &rows);
        CHECK(quick || amb * 100 <= rows, "%d of %d rows ambiguous (more than 1%%)", amb, rows);
        for (int k = 0; k < NSET; k++) free(out[k]);
    }
    sh_cuda_graph_stats gs;
    if (sh_cuda_graph_stats_get(gpu, &gs) == SHOAL_OK)
        printf("step graphs: %llu captured, %llu replayed\n", (unsigned long long)gs.captures,
               (unsigned long long)gs.replays);

    if (!quick) {
        time_batch(gpu, 49152, 128);
        time_batch(gpu, 151936, 128);
    }
    sh_backend_free(gpu);
}
#endif

int main(int argc, char **argv) {
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    make_sets(quick);
    int amb = 0, rows = 0;
    for (int s = 0; s < NSET; s++)
        for (int r = 0; r < g_sets[s].rows; r++) amb += g_sets[s].amb[r], rows++;
    printf("%d rows, %d ambiguous at 1e-6\n", rows, amb);
    test_split();
    test_cpu();
#ifdef SHOAL_WITH_CUDA
    test_cuda(quick);
#else
    printf("cuda: skipped (no CUDA device: built without CUDA)\n");
#endif
    free_sets();
    return check_report();
}
