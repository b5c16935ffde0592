/* The CPU backend against the double-precision reference (tests/op_ref.h),
 * on every ISA this machine has and on 1 and 2 threads; plus the registry,
 * the argument checks of the sh_be_* wrappers, and CPU-specific properties
 * (a row's GEMM result does not depend on M; memory and map_host). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "op_ref.h"
#include "cpu/cpu.h"

/* ---- registry ---------------------------------------------------------- */

static void test_registry(void) {
    sh_backend *be = (sh_backend *)1;
    CHECK(sh_backend_create("cpu", 1, &be) == SHOAL_OK && be, "cpu: %s", shoal_last_error());
    if (be) {
        CHECK(strcmp(be->ops->name, "cpu") == 0 && strcmp(be->device, "cpu") == 0, "names %s %s", be->ops->name, be->device);
        CHECK(be->ops->version == SH_BACKEND_VERSION, "version %d", be->ops->version);
        sh_backend_free(be);
    }
    be = (sh_backend *)1;
    CHECK(sh_backend_create("tpu", 0, &be) == SHOAL_ERR_NOT_FOUND && be == NULL, "tpu: %s", shoal_last_error());
    CHECK(strstr(shoal_last_error(), "tpu") != NULL, "message: %s", shoal_last_error());
    CHECK(sh_backend_create("cudax", 0, &be) == SHOAL_ERR_NOT_FOUND, "cudax");
    CHECK(sh_backend_create("cuda:x", 0, &be) == SHOAL_ERR_INVALID_ARG, "cuda:x: %s", shoal_last_error());
    CHECK(sh_backend_create("cuda:", 0, &be) == SHOAL_ERR_INVALID_ARG, "cuda:");
    CHECK(sh_backend_create("cpu", -1, &be) == SHOAL_ERR_INVALID_ARG, "n_threads -1");
#ifndef SHOAL_WITH_CUDA
    CHECK(sh_backend_create("cuda", 0, &be) == SHOAL_ERR_UNSUPPORTED, "cuda: %s", shoal_last_error());
    CHECK(strstr(shoal_last_error(), "without CUDA") != NULL, "message: %s", shoal_last_error());
    CHECK(sh_backend_create("cuda:1", 0, &be) == SHOAL_ERR_UNSUPPORTED, "cuda:1");
#endif
    sh_backend_free(NULL);
    for (int op = 0; op < SH_OP_COUNT; op++) CHECK(strcmp(sh_op_name((sh_op)op), "?") != 0, "op %d has no name", op);

    /* SHOAL_CPU_ISA picks (or refuses) an ISA */
    setenv("SHOAL_CPU_ISA", "scalar", 1);
    CHECK(sh_backend_create("cpu", 1, &be) == SHOAL_OK && sh_cpu_backend_isa(be) == SH_CPU_SCALAR, "env scalar");
    sh_backend_free(be);
    setenv("SHOAL_CPU_ISA", "sse9", 1);
    CHECK(sh_backend_create("cpu", 1, &be) == SHOAL_ERR_INVALID_ARG, "env sse9");
    unsetenv("SHOAL_CPU_ISA");
    CHECK(sh_backend_create("cpu", 0, &be) == SHOAL_OK && sh_cpu_backend_isa(be) == sh_cpu_isa_best() &&
              sh_cpu_backend_threads(be) >= 1,
          "default cpu backend");
    sh_backend_free(be);
}

/* ---- memory ------------------------------------------------------------ */

static void test_memory(sh_backend *be) {
    void *p = NULL;
    CHECK(sh_be_alloc(be, 1000, &p) == SHOAL_OK && p && ((uintptr_t)p & 255) == 0, "alloc alignment %p", p);
    char src[1000], dst[1000];
    for (int i = 0; i < 1000; i++) src[i] = (char)i;
    CHECK(sh_be_upload(be, p, src, 1000) == SHOAL_OK, "upload");
    CHECK(sh_be_download(be, dst, p, 1000) == SHOAL_OK && memcmp(src, dst, 1000) == 0, "round trip");
    sh_be_free(be, p);
    sh_be_free(be, NULL);
    void *m = NULL;
    CHECK(sh_be_map_host(be, src, sizeof src, &m) == SHOAL_OK && m == (void *)src, "map_host is the host pointer");
    CHECK(sh_be_alloc(be, 0, &p) == SHOAL_OK && p, "alloc 0");
    sh_be_free(be, p);
    CHECK(sh_be_sync(be) == SHOAL_OK && sh_be_step_begin(be) == SHOAL_OK && sh_be_step_end(be) == SHOAL_OK, "sync/step");
}

/* ---- argument checks --------------------------------------------------- */

static int only_f32(sh_backend *be, sh_op op, sh_dtype dt) {
    (void)be;
    (void)op;
    return dt == SH_F32;
}

#define EXPECT_FAIL(call, status, needle)                                                                   \
    do {                                                                                                   \
        uint64_t l0_ = be->n_launches;                                                                     \
        shoal_status s_ = (call);                                                                          \
        CHECK(s_ == (status) && strstr(shoal_last_error(), needle) != NULL && be->n_launches == l0_,       \
              "%s: got %d '%s', want %d '%s'", #call, (int)s_, shoal_last_error(), (int)(status), needle); \
    } while (0)

/* the same for checks a backend makes itself (after the launch is counted) */
#define EXPECT_FAIL_BE(call, status, needle)                                                                \
    do {                                                                                                   \
        shoal_status s_ = (call);                                                                          \
        CHECK(s_ == (status) && strstr(shoal_last_error(), needle) != NULL, "%s: got %d '%s', want %d '%s'", \
              #call, (int)s_, shoal_last_error(), (int)(status), needle);                                  \
    } while (0)

static void test_checks(sh_backend *be) {
    float *buf = NULL;
    CHECK(sh_be_alloc(be, 4096 * sizeof(float), (void **)&buf) == SHOAL_OK, "alloc");
    if (!buf) return;
    memset(buf, 0, 4096 * sizeof(float));
    uint8_t *w = (uint8_t *)(buf + 2048);
    int32_t *ids = (int32_t *)(buf + 3072);
    sh_view x = {buf, 4, 64, 64}, y = {buf + 512, 4, 32, 32};
    sh_gemm_group g[2] = {{{w, SH_F32, 32, 64}, NULL, x, y, 0}, {{w, SH_F32, 32, 64}, NULL, x, y, 0}};

    uint64_t l0 = be->n_launches, g0 = be->n_groups;
    CHECK(sh_be_gemm(be, 2, g) == SHOAL_OK, "valid gemm: %s", shoal_last_error());
    CHECK(be->n_launches == l0 + 1 && be->n_groups == g0 + 2, "counters %llu %llu", (unsigned long long)be->n_launches,
          (unsigned long long)be->n_groups);
    CHECK(sh_be_gemm(be, 0, NULL) == SHOAL_OK && be->n_launches == l0 + 1, "n == 0 is a no-op");
    EXPECT_FAIL(sh_be_gemm(be, -1, g), SHOAL_ERR_INVALID_ARG, "gemm");
    EXPECT_FAIL(sh_be_gemm(be, 1, NULL), SHOAL_ERR_INVALID_ARG, "gemm");

    g[1].x.cols = 63;
    EXPECT_FAIL(sh_be_gemm(be, 2, g), SHOAL_ERR_INVALID_ARG, "gemm: group 1: x has 63 cols");
    g[1].x.cols = 64;
    g[1].y.rows = 3;
    EXPECT_FAIL(sh_be_gemm(be, 2, g), SHOAL_ERR_INVALID_ARG, "gemm: group 1: y has 3 rows");
    g[1].y.rows = 4;
    g[1].x.stride = 60;
    EXPECT_FAIL(sh_be_gemm(be, 2, g), SHOAL_ERR_INVALID_ARG, "gemm: group 1: x.stride");
    g[1].x.stride = 64;
    g[0].w.data = NULL;
    EXPECT_FAIL(sh_be_gemm(be, 2, g), SHOAL_ERR_INVALID_ARG, "gemm: group 0: weight data is NULL");
    g[0].w.data = w;
    g[0].w.dtype = SH_Q8_0; /* n_in 64 fine */
    g[0].w.n_in = 48;
    g[0].x.cols = g[0].x.stride = 48;
    EXPECT_FAIL(sh_be_gemm(be, 2, g), SHOAL_ERR_INVALID_ARG, "not a multiple");
    g[0].w.dtype = SH_F32;
    g[0].w.n_in = g[0].x.cols = g[0].x.stride = 64;
    g[0].w.dtype = (sh_dtype)77;
    EXPECT_FAIL(sh_be_gemm(be, 2, g), SHOAL_ERR_INVALID_ARG, "unknown weight dtype");
    g[0].w.dtype = SH_F32;
    g[1].y = (sh_view){buf + 32, 4, 32, 64}; /* interleaved with x (stride 64): overlaps */
    EXPECT_FAIL(sh_be_gemm(be, 2, g), SHOAL_ERR_INVALID_ARG, "gemm: group 1: y overlaps x");
    /* same buffer, disjoint column ranges: fine */
    g[1].x = (sh_view){buf, 4, 32, 64};
    g[1].w.n_in = 32;
    CHECK(sh_be_gemm(be, 2, g) == SHOAL_OK, "interleaved disjoint views: %s", shoal_last_error());
    g[1].x = x;
    g[1].w.n_in = 64;
    g[1].y = y;

    /* epilogues: a bad one is refused before anything runs */
    g[1].epi = (sh_gemm_epi)9;
    EXPECT_FAIL(sh_be_gemm(be, 2, g), SHOAL_ERR_INVALID_ARG, "gemm: group 1: unknown epilogue 9");
    g[1].epi = SH_EPI_SILU_PAIR;
    g[1].w2 = (sh_weight){w, SH_F32, 16, 64};
    EXPECT_FAIL(sh_be_gemm(be, 2, g), SHOAL_ERR_INVALID_ARG, "differs from w");
    g[1].w2.n_out = 32;
    g[1].accumulate = 1;
    EXPECT_FAIL(sh_be_gemm(be, 2, g), SHOAL_ERR_INVALID_ARG, "an epilogue cannot accumulate");
    g[1].accumulate = 0;
    CHECK(sh_be_gemm(be, 2, g) == SHOAL_OK, "SILU_PAIR: %s", shoal_last_error());
    g[1].epi = SH_EPI_ROPE;
    g[1].rope = (sh_rope_params){16, 8, 10000.0f, SH_ROPE_NEOX};
    g[1].pos = ids;
    EXPECT_FAIL(sh_be_gemm(be, 2, g), SHOAL_ERR_INVALID_ARG, "must equal head_dim");
    g[1].rope.n_rot = 16;
    g[1].rope.theta = -1.0f;
    EXPECT_FAIL(sh_be_gemm(be, 2, g), SHOAL_ERR_INVALID_ARG, "rope theta");
    g[1].rope.theta = 10000.0f;
    g[1].pos = NULL;
    EXPECT_FAIL(sh_be_gemm(be, 2, g), SHOAL_ERR_INVALID_ARG, "rope pos is NULL");
    g[1].pos = ids;
    CHECK(sh_be_gemm(be, 2, g) == SHOAL_OK, "ROPE: %s", shoal_last_error());
    g[1].kv_which = 3;
    EXPECT_FAIL(sh_be_gemm(be, 2, g), SHOAL_ERR_INVALID_ARG, "kv_which 3");
    g[1].kv_which = 1;
    EXPECT_FAIL(sh_be_gemm(be, 2, g), SHOAL_ERR_INVALID_ARG, "kv_slot is NULL");
    g[1].epi = SH_EPI_NONE;
    g[1].kv_which = 0;

    /* row norms: whole rows only (no other group writes them), norm_out
     * apart from every view of the call or y itself */
    const sh_view y0 = {buf + 1024, 4, 32, 32}, yn = {buf + 1536, 4, 32, 32};
    g[0].y = y0;
    g[1].norm_out = yn;
    g[1].norm_eps = 1e-5f;
    CHECK(sh_be_gemm(be, 2, g) == SHOAL_OK, "row norm: %s", shoal_last_error());
    g[1].norm_out = y;
    CHECK(sh_be_gemm(be, 2, g) == SHOAL_OK, "row norm in place: %s", shoal_last_error());
    g[1].norm_kind = (sh_norm_kind)5;
    EXPECT_FAIL(sh_be_gemm(be, 2, g), SHOAL_ERR_INVALID_ARG, "gemm: group 1: unknown norm kind 5");
    g[1].norm_kind = SH_NORM_LAYER;
    g[1].norm_eps = NAN;
    EXPECT_FAIL(sh_be_gemm(be, 2, g), SHOAL_ERR_INVALID_ARG, "norm_eps");
    g[1].norm_eps = 1e-5f;
    g[1].norm_out = (sh_view){buf + 1536, 3, 32, 32};
    EXPECT_FAIL(sh_be_gemm(be, 2, g), SHOAL_ERR_INVALID_ARG, "gemm: group 1: norm_out has 3 rows");
    g[1].norm_out = (sh_view){buf + 512 + 16, 4, 32, 32};
    EXPECT_FAIL(sh_be_gemm(be, 2, g), SHOAL_ERR_INVALID_ARG, "norm_out overlaps y without being y");
    g[1].norm_out = (sh_view){buf + 8, 4, 32, 64};
    EXPECT_FAIL(sh_be_gemm(be, 2, g), SHOAL_ERR_INVALID_ARG, "gemm: group 1: norm_out overlaps x");
    g[1].norm_out = y0;
    EXPECT_FAIL(sh_be_gemm(be, 2, g), SHOAL_ERR_INVALID_ARG, "group 1's norm_out overlaps a view of group 0");
    g[1].norm_out = yn;
    g[0].y = y;
    EXPECT_FAIL(sh_be_gemm(be, 2, g), SHOAL_ERR_INVALID_ARG, "group 0 writes rows of group 1's normed y");
    g[0].y = y0;
    g[1].epi = SH_EPI_GELU_TANH;
    EXPECT_FAIL(sh_be_gemm(be, 2, g), SHOAL_ERR_INVALID_ARG, "a row norm follows no epilogue");
    g[1].epi = SH_EPI_NONE;
    g[1].norm_out = (sh_view){NULL, 0, 0, 0};
    g[0].y = y;

    /* a backend that lacks a dtype says UNSUPPORTED */
    const sh_backend_ops *ops = be->ops;
    sh_backend_ops fake = *ops;
    fake.supports = only_f32;
    be->ops = &fake;
    g[1].w.dtype = SH_F16;
    EXPECT_FAIL(sh_be_gemm(be, 2, g), SHOAL_ERR_UNSUPPORTED, "gemm: group 1: weight dtype f16 is not supported");
    be->ops = ops;
    g[1].w.dtype = SH_F32;

    /* get_rows: ids checked by the CPU backend */
    ids[0] = 5;
    ids[1] = 32;
    sh_get_rows_group gr = {{w, SH_F32, 32, 64}, ids, {buf, 2, 64, 64}, 0};
    EXPECT_FAIL_BE(sh_be_get_rows(be, 1, &gr), SHOAL_ERR_INVALID_ARG, "get_rows: group 0: ids[1] = 32");
    gr.ids = NULL;
    EXPECT_FAIL(sh_be_get_rows(be, 1, &gr), SHOAL_ERR_INVALID_ARG, "get_rows: group 0: ids is NULL");

    /* norm */
    sh_norm_group ng[2] = {{x, {0}, NULL, NULL, 1e-5f, SH_NORM_RMS, x}, {x, {0}, NULL, NULL, 1e-5f, SH_NORM_RMS, x}};
    CHECK(sh_be_norm(be, 2, ng) == SHOAL_OK, "norm in place: %s", shoal_last_error());
    ng[1].out = (sh_view){buf + 1, 4, 64, 64};
    EXPECT_FAIL(sh_be_norm(be, 2, ng), SHOAL_ERR_INVALID_ARG, "norm: group 1: out overlaps x");
    ng[1].out = x;
    ng[1].kind = (sh_norm_kind)5;
    EXPECT_FAIL(sh_be_norm(be, 2, ng), SHOAL_ERR_INVALID_ARG, "norm: group 1: unknown kind");
    ng[1].kind = SH_NORM_LAYER;
    ng[1].add = (sh_view){buf + 1024, 3, 64, 64};
    EXPECT_FAIL(sh_be_norm(be, 2, ng), SHOAL_ERR_INVALID_ARG, "norm: group 1: add has 3 rows");

    /* rope */
    int32_t *pos = ids;
    ids[0] = 0;
    ids[1] = 1;
    sh_rope_group rg = {{buf, 2, 64, 64}, 4, 16, 16, pos, 10000.0f, SH_ROPE_NEOX};
    CHECK(sh_be_rope(be, 1, &rg) == SHOAL_OK, "rope: %s", shoal_last_error());
    rg.n_rot = 15;
    EXPECT_FAIL(sh_be_rope(be, 1, &rg), SHOAL_ERR_INVALID_ARG, "rope: group 0: n_rot 15");
    rg.n_rot = 18;
    EXPECT_FAIL(sh_be_rope(be, 1, &rg), SHOAL_ERR_INVALID_ARG, "rope: group 0: n_rot 18");
    rg.n_rot = 16;
    rg.n_head = 3;
    EXPECT_FAIL(sh_be_rope(be, 1, &rg), SHOAL_ERR_INVALID_ARG, "rope: group 0: x has 64 cols, expected 48");
    rg.n_head = 4;
    ids[1] = -3;
    EXPECT_FAIL_BE(sh_be_rope(be, 1, &rg), SHOAL_ERR_INVALID_ARG, "rope: group 0: pos[1] = -3");
    ids[1] = 1;

    /* attention / kv */
    int32_t *table = ids + 8;
    table[0] = 0;
    sh_kv_ref kv = {buf + 1024, SH_F32, 2 * SH_KV_BLOCK * 16 * 4, table, 0, 16};
    sh_attn_group ag = {{buf, 1, 64, 64}, {buf + 512, 1, 64, 64}, 4, 1, 16, 0.25f, 3, 4, 1, kv};
    CHECK(sh_be_attn(be, 1, &ag) == SHOAL_OK, "attn: %s", shoal_last_error());
    ag.n_head_kv = 3;
    EXPECT_FAIL(sh_be_attn(be, 1, &ag), SHOAL_ERR_INVALID_ARG, "attn: group 0: n_head 4 is not a multiple of n_head_kv 3");
    ag.n_head_kv = 1;
    ag.n_kv = 3;
    EXPECT_FAIL(sh_be_attn(be, 1, &ag), SHOAL_ERR_INVALID_ARG, "attn: group 0: n_kv 3 < pos0 3 + rows 1");
    ag.n_kv = 4;
    ag.kv.kv_dim = 32;
    EXPECT_FAIL(sh_be_attn(be, 1, &ag), SHOAL_ERR_INVALID_ARG, "attn: group 0: kv.kv_dim 32, expected 16");
    ag.kv.kv_dim = 16;
    ag.kv.layer = 1;
    EXPECT_FAIL(sh_be_attn(be, 1, &ag), SHOAL_ERR_INVALID_ARG, "block_bytes");
    ag.kv.layer = 0;
    ag.kv.dtype = SH_Q8_0;
    EXPECT_FAIL(sh_be_attn(be, 1, &ag), SHOAL_ERR_INVALID_ARG, "attn: group 0: kv dtype q8_0");
    ag.kv.dtype = SH_F32;
    sh_kv_write_group kg = {{buf, 1, 16, 16}, {buf + 16, 1, 16, 16}, pos, kv};
    CHECK(sh_be_kv_write(be, 1, &kg) == SHOAL_OK, "kv_write: %s", shoal_last_error());
    kg.v.rows = 2;
    EXPECT_FAIL(sh_be_kv_write(be, 1, &kg), SHOAL_ERR_INVALID_ARG, "kv_write: group 0: v has 2 rows");
    kg.v.rows = 1;
    kg.kv.block_table = NULL;
    EXPECT_FAIL(sh_be_kv_write(be, 1, &kg), SHOAL_ERR_INVALID_ARG, "kv_write: group 0: kv.block_table is NULL");

    /* act, pool */
    sh_act_group cg = {x, {0}, x, SH_ACT_SILU_MUL};
    EXPECT_FAIL(sh_be_act(be, 1, &cg), SHOAL_ERR_INVALID_ARG, "act: group 0: b.data is NULL");
    cg.kind = SH_ACT_GELU_ERF;
    CHECK(sh_be_act(be, 1, &cg) == SHOAL_OK, "gelu in place: %s", shoal_last_error());
    sh_pool_group pg = {x, NULL, 1};
    EXPECT_FAIL(sh_be_pool(be, 1, &pg), SHOAL_ERR_INVALID_ARG, "pool: group 0: out is NULL");
    sh_be_free(be, buf);
}

/* ---- batch invariance: a row's GEMM result does not depend on M --------- */

static void test_row_invariance(sh_backend *be, const char *lbl) {
    static const sh_dtype dts[] = {SH_F32, SH_F16, SH_BF16, SH_Q8_0, SH_Q4_0};
    for (int t = 0; t < 5; t++) {
        opr_rng r = {100 + (uint64_t)t};
        int N = 45, K = dts[t] == SH_F32 ? 100 : 96, M = 23;
        uint8_t *w = opr_weight_bytes(&r, dts[t], N, K);
        float *x = malloc((size_t)M * K * sizeof(float)), *yb = malloc((size_t)M * N * sizeof(float)),
              *y1 = malloc((size_t)N * sizeof(float));
        for (int i = 0; i < M * K; i++) x[i] = opr_unif(&r, -1, 1);
        sh_gemm_group g = {{w, dts[t], N, K}, NULL, {x, M, K, K}, {yb, M, N, N}, 0};
        CHECK(sh_be_gemm(be, 1, &g) == SHOAL_OK, "gemm");
        int same = 1;
        for (int m = 0; m < M; m++) {
            sh_gemm_group g1 = {{w, dts[t], N, K}, NULL, {x + (size_t)m * K, 1, K, K}, {y1, 1, N, N}, 0};
            CHECK(sh_be_gemm(be, 1, &g1) == SHOAL_OK, "gemm");
            same &= memcmp(y1, yb + (size_t)m * N, (size_t)N * sizeof(float)) == 0;
        }
        CHECK(same, "[%s] gemm %s: rows of an M=%d call differ from M=1 calls", lbl, opr_dt_name(dts[t]), M);
        free(w);
        free(x);
        free(yb);
        free(y1);
    }
}

/* ---- the thread pool: every item of every job exactly once ------------- */

typedef struct pool_job {
    int *hits; /* (n_items) */
    int64_t sum;
} pool_job;

static void pool_task(void *ctx, int64_t begin, int64_t end, int thread) {
    pool_job *j = ctx;
    (void)thread;
    for (int64_t i = begin; i < end; i++) __atomic_fetch_add(&j->hits[i], 1, __ATOMIC_RELAXED);
}

static void test_pool(void) {
    for (int threads = 2; threads <= 5; threads += 3) {
        sh_cpu_pool *p = NULL;
        CHECK(sh_cpu_pool_create(threads, &p) == SHOAL_OK, "pool: %s", shoal_last_error());
        if (!p) continue;
        int hits[64], bad = 0;
        opr_rng r = {9};
        for (int job = 0; job < 20000; job++) {
            int n = 1 + opr_int(&r, 64), chunk = 1 + opr_int(&r, 3);
            memset(hits, 0, sizeof hits);
            pool_job j = {hits, 0};
            sh_cpu_pool_run(p, n, chunk, pool_task, &j);
            for (int i = 0; i < 64; i++) bad += hits[i] != (i < n);
            if (job % 5000 == 4999) {
                struct timespec ts = {0, 3000000}; /* let the workers fall asleep */
                nanosleep(&ts, NULL);
            }
        }
        CHECK(bad == 0, "pool with %d threads: %d items run a wrong number of times", threads, bad);
        sh_cpu_pool_free(p);
    }
}

int main(void) {
    test_pool();
    test_registry();
    for (int isa = 0; isa <= (int)sh_cpu_isa_best(); isa++) {
        for (int threads = 1; threads <= 2; threads++) {
            sh_backend *be = NULL;
            shoal_status s = sh_cpu_backend_create_isa(threads, (sh_cpu_isa)isa, &be);
            CHECK(s == SHOAL_OK, "create %s/%d: %s", sh_cpu_isa_name((sh_cpu_isa)isa), threads, shoal_last_error());
            if (s != SHOAL_OK) continue;
            char lbl[64];
            snprintf(lbl, sizeof lbl, "cpu/%s/t%d", sh_cpu_isa_name((sh_cpu_isa)isa), threads);
            int f0 = check_fail_;
            opref_run_all(be, lbl);
            test_row_invariance(be, lbl);
            if (isa == 0 && threads == 1) {
                test_memory(be);
                test_checks(be);
            }
            printf("%s: %s\n", lbl, check_fail_ == f0 ? "ok" : "FAILED");
            sh_backend_free(be);
        }
    }
    return check_report();
}
