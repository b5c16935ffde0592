/* The CPU backend: the reference implementation of every op.
 *
 * Memory is host memory (256-byte aligned); upload/download are memcpy and
 * map_host hands back the host pointer, so weights are read straight from
 * the file mapping. Compute calls run on a pinned thread pool (none when
 * n_threads == 1) with SIMD kernels picked once, at creation, from what the
 * machine supports.
 */
#define _GNU_SOURCE /* sched_getaffinity, pthread_setaffinity_np */
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cpu.h"
#include "error.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#endif

/* ---- ISA and kernel tables --------------------------------------------- */

#if defined(__x86_64__) && defined(__GNUC__)
/* F16C (CPUID.1:ECX bit 29); not every compiler's __builtin_cpu_supports
 * knows it. The AVX checks below cover the OS saving the vector state. */
static int sh_has_f16c(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    return (c >> 29) & 1u;
}
#endif

sh_cpu_isa sh_cpu_isa_best(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    int base = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && sh_has_f16c();
    if (base && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl"))
        return SH_CPU_AVX512;
    if (base) return SH_CPU_AVX2;
#endif
    return SH_CPU_SCALAR;
}

const char *sh_cpu_isa_name(sh_cpu_isa isa) {
    switch (isa) {
    case SH_CPU_SCALAR: return "scalar";
    case SH_CPU_AVX2: return "avx2";
    case SH_CPU_AVX512: return "avx512";
    default: return "?";
    }
}

static sh_cpu_kernels sh_kernels[SH_CPU_ISA_COUNT];
static pthread_once_t sh_kernels_once = PTHREAD_ONCE_INIT;

static void sh_kernels_init(void) {
    sh_cpu_kernels_scalar(&sh_kernels[SH_CPU_SCALAR]);
    sh_cpu_kernels_avx2(&sh_kernels[SH_CPU_AVX2]);
    sh_cpu_kernels_avx512(&sh_kernels[SH_CPU_AVX512]);
}

const sh_cpu_kernels *sh_cpu_kernels_for(sh_cpu_isa isa) {
    pthread_once(&sh_kernels_once, sh_kernels_init);
    return &sh_kernels[isa];
}

/* ---- memory ------------------------------------------------------------ */

static shoal_status sh_cpu_alloc(sh_backend *be, size_t bytes, void **out) {
    (void)be;
    *out = NULL;
    size_t n = bytes ? bytes : 1;
    if (n > SIZE_MAX - 255) return sh_fail(SHOAL_ERR_NOMEM, "cpu alloc: %zu bytes is too large", bytes);
    n = (n + 255) & ~(size_t)255;
    void *p = aligned_alloc(256, n);
    if (!p) return sh_fail(SHOAL_ERR_NOMEM, "cpu alloc: out of memory (%zu bytes)", bytes);
    *out = p;
    return SHOAL_OK;
}

static void sh_cpu_free(sh_backend *be, void *ptr) {
    (void)be;
    free(ptr);
}

static shoal_status sh_cpu_copy(sh_backend *be, void *dst, const void *src, size_t bytes) {
    (void)be;
    if (bytes) memmove(dst, src, bytes);
    return SHOAL_OK;
}

static shoal_status sh_cpu_map_host(sh_backend *be, const void *host, size_t bytes, void **out) {
    (void)be;
    (void)bytes;
    *out = (void *)(uintptr_t)host;
    return SHOAL_OK;
}

static int sh_cpu_supports(sh_backend *be, sh_op op, sh_dtype dt) {
    (void)be;
    switch (op) {
    case SH_OP_GEMM:
    case SH_OP_GET_ROWS: return sh_cpu_dt_index(dt) >= 0;
    case SH_OP_KV_WRITE:
    case SH_OP_ATTN: return dt == SH_F32 || dt == SH_F16;
    case SH_OP_NORM:
    case SH_OP_ROPE:
    case SH_OP_ACT:
    case SH_OP_POOL: return 1;
    default: return 0;
    }
}

static shoal_status sh_cpu_sync(sh_backend *be) {
    (void)be;
    return SHOAL_OK;
}

shoal_status sh_cpu_scratch_reserve(sh_cpu_backend *cb, size_t n) {
    for (int t = 0; t < cb->n_threads; t++) {
        sh_cpu_scratch *s = &cb->scratch[t];
        if (s->n >= n) continue;
        size_t want = n < 1024 ? 1024 : n;
        if (want > SIZE_MAX / sizeof(float) - 16) return sh_fail(SHOAL_ERR_NOMEM, "cpu scratch: too large");
        float *p = aligned_alloc(64, (want * sizeof(float) + 63) & ~(size_t)63);
        if (!p) return sh_fail(SHOAL_ERR_NOMEM, "cpu scratch: out of memory (%zu floats)", want);
        free(s->buf);
        s->buf = p;
        s->n = want;
    }
    return SHOAL_OK;
}

/* ---- compute ops: one call at a time ----------------------------------- */

#define SH_LOCKED(NAME, GROUP)                                                   \
    static shoal_status NAME##_locked(sh_backend *be, int n, const GROUP *g) {   \
        sh_cpu_backend *cb = (sh_cpu_backend *)be;                               \
        pthread_mutex_lock(&cb->lock);                                           \
        shoal_status s = NAME(be, n, g);                                         \
        pthread_mutex_unlock(&cb->lock);                                         \
        return s;                                                                \
    }
/* gemm with x transforms: the transformed rows are built by the norm and act
 * ops into xf_buf, then the plain GEMM reads them — bitwise the result of
 * the separate ops. */
static shoal_status sh_cpu_gemm_xf(sh_backend *be, int n, const sh_gemm_group *g) {
    sh_cpu_backend *cb = (sh_cpu_backend *)be;
    size_t need = 0;
    int n_xf = 0;
    for (int i = 0; i < n; i++)
        if (g[i].xf != SH_XF_NONE) {
            need += (size_t)g[i].x.rows * (size_t)g[i].x.cols;
            n_xf++;
        }
    if (n_xf == 0) return sh_cpu_gemm(be, n, g);
    if (need > cb->xf_cap) {
        float *p = aligned_alloc(64, (need * sizeof(float) + 63) & ~(size_t)63);
        if (!p) return sh_fail(SHOAL_ERR_NOMEM, "gemm: out of memory for %zu transformed activations", need);
        free(cb->xf_buf);
        cb->xf_buf = p;
        cb->xf_cap = need;
    }
    sh_gemm_group *gg = malloc((size_t)n * sizeof *gg);
    sh_norm_group *ng = malloc((size_t)n_xf * sizeof *ng);
    sh_act_group *ag = malloc((size_t)n_xf * sizeof *ag);
    shoal_status s = SHOAL_OK;
    if (!gg || !ng || !ag) {
        s = sh_fail(SHOAL_ERR_NOMEM, "gemm: out of memory");
        goto done;
    }
    int nn = 0, na = 0;
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        gg[i] = g[i];
        if (g[i].xf == SH_XF_NONE) continue;
        const sh_view x = g[i].x;
        const sh_view t = {cb->xf_buf + off, x.rows, x.cols, x.cols};
        off += (size_t)x.rows * (size_t)x.cols;
        if (g[i].xf == SH_XF_RMS || g[i].xf == SH_XF_LN)
            ng[nn++] = (sh_norm_group){x, {NULL, 0, 0, 0}, g[i].xf_gamma, g[i].xf == SH_XF_LN ? g[i].xf_beta : NULL,
                                       g[i].xf_eps, g[i].xf == SH_XF_LN ? SH_NORM_LAYER : SH_NORM_RMS, t};
        else
            ag[na++] = (sh_act_group){x, g[i].xf == SH_XF_SILU_MUL ? g[i].x2 : (sh_view){NULL, 0, 0, 0}, t,
                                      g[i].xf == SH_XF_SILU_MUL    ? SH_ACT_SILU_MUL
                                      : g[i].xf == SH_XF_GELU_TANH ? SH_ACT_GELU_TANH
                                                                   : SH_ACT_GELU_ERF};
        gg[i].x = t;
        gg[i].xf = SH_XF_NONE;
    }
    if (nn && (s = sh_cpu_norm(be, nn, ng)) != SHOAL_OK) goto done;
    if (na && (s = sh_cpu_act(be, na, ag)) != SHOAL_OK) goto done;
    s = sh_cpu_gemm(be, n, gg);
done:
    free(gg);
    free(ng);
    free(ag);
    return s;
}

/* gemm with epilogues: each group's plain GEMM (SILU_PAIR: the gate into y,
 * the up projection into epi_buf), then the act or rope op over the results,
 * the KV stores of kv_write and the row norms — bitwise the result of the
 * separate ops. */
static shoal_status sh_cpu_gemm_epi(sh_backend *be, int n, const sh_gemm_group *g) {
    sh_cpu_backend *cb = (sh_cpu_backend *)be;
    size_t need = 0;
    int n_epi = 0, n_pair = 0, n_norm = 0;
    for (int i = 0; i < n; i++) {
        if (g[i].kv_which)
            for (int r = 0; r < g[i].x.rows; r++)
                if (g[i].kv_slot[r] < 0)
                    return sh_fail(SHOAL_ERR_INVALID_ARG, "gemm: group %d: kv_slot[%d] = %d is negative", i, r,
                                   g[i].kv_slot[r]);
        if (g[i].norm_out.data) n_norm++;
        if (g[i].epi == SH_EPI_NONE && !g[i].kv_which) continue;
        n_epi++;
        if (g[i].epi == SH_EPI_SILU_PAIR) {
            need += (size_t)g[i].x.rows * (size_t)g[i].w.n_out;
            n_pair++;
        }
    }
    if (n_epi == 0 && n_norm == 0) return sh_cpu_gemm_xf(be, n, g);
    if (need > cb->epi_cap) {
        float *p = aligned_alloc(64, (need * sizeof(float) + 63) & ~(size_t)63);
        if (!p) return sh_fail(SHOAL_ERR_NOMEM, "gemm: out of memory for %zu epilogue outputs", need);
        free(cb->epi_buf);
        cb->epi_buf = p;
        cb->epi_cap = need;
    }
    sh_gemm_group *gg = malloc((size_t)(n + n_pair) * sizeof *gg);
    sh_act_group *ag = malloc((size_t)n_epi * sizeof *ag);
    sh_rope_group *rg = malloc((size_t)n_epi * sizeof *rg);
    sh_norm_group *nm = malloc((size_t)n_norm * sizeof *nm);
    shoal_status s = SHOAL_OK;
    if (!gg || (n_epi && (!ag || !rg)) || (n_norm && !nm)) {
        s = sh_fail(SHOAL_ERR_NOMEM, "gemm: out of memory");
        goto done;
    }
    int ng = n, na = 0, nr = 0, nn = 0;
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        gg[i] = g[i];
        gg[i].epi = SH_EPI_NONE;
        gg[i].kv_which = 0;
        gg[i].norm_out = (sh_view){NULL, 0, 0, 0};
        const sh_gemm_group *e = &g[i];
        if (e->norm_out.data)
            nm[nn++] = (sh_norm_group){e->y, {NULL, 0, 0, 0}, e->norm_gamma, e->norm_beta, e->norm_eps, e->norm_kind,
                                       e->norm_out};
        if (e->epi == SH_EPI_ROPE)
            rg[nr++] = (sh_rope_group){e->y, e->w.n_out / e->rope.head_dim, e->rope.head_dim, e->rope.n_rot, e->pos,
                                       e->rope.theta, e->rope.mode};
        if (e->epi != SH_EPI_SILU_PAIR && e->epi != SH_EPI_GELU_TANH && e->epi != SH_EPI_GELU_ERF) continue;
        sh_view b = {NULL, 0, 0, 0};
        if (e->epi == SH_EPI_SILU_PAIR) {
            b = (sh_view){cb->epi_buf + off, e->x.rows, e->w.n_out, e->w.n_out};
            off += (size_t)e->x.rows * (size_t)e->w.n_out;
            gg[ng] = gg[i];
            gg[ng].w = e->w2;
            gg[ng].bias = e->bias2;
            gg[ng++].y = b;
        }
        ag[na++] = (sh_act_group){e->y, b, e->y,
                                  e->epi == SH_EPI_SILU_PAIR   ? SH_ACT_SILU_MUL
                                  : e->epi == SH_EPI_GELU_TANH ? SH_ACT_GELU_TANH
                                                               : SH_ACT_GELU_ERF};
    }
    if ((s = sh_cpu_gemm_xf(be, ng, gg)) != SHOAL_OK) goto done;
    if (na && (s = sh_cpu_act(be, na, ag)) != SHOAL_OK) goto done;
    if (nr && (s = sh_cpu_rope(be, nr, rg)) != SHOAL_OK) goto done;
    for (int i = 0; i < n; i++)
        if (g[i].kv_which)
            for (int r = 0; r < g[i].x.rows; r++)
                sh_cpu_kv_put(&g[i].kv, g[i].kv_which - 1, g[i].kv_slot[r], g[i].y.data + (int64_t)r * g[i].y.stride);
    if (nn) s = sh_cpu_norm(be, nn, nm);
done:
    free(nm);
    free(gg);
    free(ag);
    free(rg);
    return s;
}

SH_LOCKED(sh_cpu_gemm_epi, sh_gemm_group)
SH_LOCKED(sh_cpu_get_rows, sh_get_rows_group)
SH_LOCKED(sh_cpu_norm, sh_norm_group)
SH_LOCKED(sh_cpu_rope, sh_rope_group)
SH_LOCKED(sh_cpu_kv_write, sh_kv_write_group)
SH_LOCKED(sh_cpu_attn, sh_attn_group)
SH_LOCKED(sh_cpu_act, sh_act_group)
SH_LOCKED(sh_cpu_pool_op, sh_pool_group)
SH_LOCKED(sh_cpu_argmax, sh_argmax_group)
SH_LOCKED(sh_cpu_sample, sh_sample_group)

static void sh_cpu_destroy(sh_backend *be) {
    sh_cpu_backend *cb = (sh_cpu_backend *)be;
    if (!cb) return;
    sh_cpu_pool_free(cb->pool);
    if (cb->scratch)
        for (int t = 0; t < cb->n_threads; t++) free(cb->scratch[t].buf);
    free(cb->scratch);
    free(cb->xf_buf);
    free(cb->epi_buf);
    pthread_mutex_destroy(&cb->lock);
    free(cb);
}

static const sh_backend_ops sh_cpu_ops = {
    .version = SH_BACKEND_VERSION,
    .name = "cpu",
    .destroy = sh_cpu_destroy,
    .alloc = sh_cpu_alloc,
    .free = sh_cpu_free,
    .upload = sh_cpu_copy,
    .download = sh_cpu_copy,
    .map_host = sh_cpu_map_host,
    .supports = sh_cpu_supports,
    .gemm = sh_cpu_gemm_epi_locked,
    .get_rows = sh_cpu_get_rows_locked,
    .norm = sh_cpu_norm_locked,
    .rope = sh_cpu_rope_locked,
    .kv_write = sh_cpu_kv_write_locked,
    .attn = sh_cpu_attn_locked,
    .act = sh_cpu_act_locked,
    .pool = sh_cpu_pool_op_locked,
    .sync = sh_cpu_sync,
    .step_begin = NULL,
    .step_end = NULL,
    .bandwidth = NULL,
    .argmax = sh_cpu_argmax_locked,
    .sample = sh_cpu_sample_locked,
};

/* ---- construction ------------------------------------------------------ */

/* CPUs this process may run on (at least 1). */
static int sh_cpu_count(void) {
#ifdef __linux__
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int c = CPU_COUNT(&set);
        if (c > 0) return c;
    }
#endif
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    return c > 0 ? (int)c : 1;
}

sh_cpu_isa sh_cpu_backend_isa(const sh_backend *be) { return ((const sh_cpu_backend *)be)->isa; }
int sh_cpu_backend_threads(const sh_backend *be) { return ((const sh_cpu_backend *)be)->n_threads; }

shoal_status sh_cpu_backend_create_isa(int n_threads, sh_cpu_isa isa, sh_backend **out) {
    if (!out) return sh_fail(SHOAL_ERR_INVALID_ARG, "cpu backend: out is NULL");
    *out = NULL;
    if (n_threads < 0 || n_threads > 1024)
        return sh_fail(SHOAL_ERR_INVALID_ARG, "cpu backend: n_threads %d out of range [0, 1024]", n_threads);
    if ((int)isa < 0 || isa >= SH_CPU_ISA_COUNT)
        return sh_fail(SHOAL_ERR_INVALID_ARG, "cpu backend: unknown ISA %d", (int)isa);
    if (isa > sh_cpu_isa_best())
        return sh_fail(SHOAL_ERR_UNSUPPORTED, "cpu backend: this machine lacks %s (best: %s)", sh_cpu_isa_name(isa),
                       sh_cpu_isa_name(sh_cpu_isa_best()));
    if (n_threads == 0) n_threads = sh_cpu_count();
    shoal_status st = SHOAL_ERR_NOMEM;
    sh_cpu_backend *cb = calloc(1, sizeof *cb);
    if (!cb) return sh_fail(SHOAL_ERR_NOMEM, "cpu backend: out of memory");
    if (pthread_mutex_init(&cb->lock, NULL) != 0) {
        free(cb);
        return sh_fail(SHOAL_ERR_NOMEM, "cpu backend: mutex init failed");
    }
    cb->base.ops = &sh_cpu_ops;
    cb->base.xf_rows_max = INT_MAX; /* materialised: the same work either way */
    cb->base.xf_ln = 1;
    cb->base.gemm_norm = 1;
    snprintf(cb->base.device, sizeof cb->base.device, "cpu");
    cb->isa = isa;
    cb->n_threads = n_threads;
    (void)sh_cpu_kernels_for(isa);
    cb->scratch = calloc((size_t)n_threads, sizeof *cb->scratch);
    if (!cb->scratch) {
        st = sh_fail(SHOAL_ERR_NOMEM, "cpu backend: out of memory");
        goto fail;
    }
    if (n_threads > 1) {
        st = sh_cpu_pool_create(n_threads, &cb->pool);
        if (st != SHOAL_OK) goto fail;
    }
    *out = &cb->base;
    return SHOAL_OK;
fail:
    sh_cpu_destroy(&cb->base);
    return st;
}

shoal_status sh_cpu_backend_create(int n_threads, sh_backend **out) {
    sh_cpu_isa isa = sh_cpu_isa_best();
    const char *env = getenv("SHOAL_CPU_ISA");
    if (env && *env) {
        int found = 0;
        for (int i = 0; i < SH_CPU_ISA_COUNT; i++)
            if (strcmp(env, sh_cpu_isa_name((sh_cpu_isa)i)) == 0) {
                isa = (sh_cpu_isa)i;
                found = 1;
            }
        if (!found) {
            if (out) *out = NULL;
            return sh_fail(SHOAL_ERR_INVALID_ARG, "SHOAL_CPU_ISA=%s: expected scalar, avx2 or avx512", env);
        }
    }
    return sh_cpu_backend_create_isa(n_threads, isa, out);
}
