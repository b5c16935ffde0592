/* The backend registry and the checked sh_be_* wrappers.
 *
 * Every compute wrapper checks every group (shapes consistent between views,
 * strides, dtypes the backend supports, head counts, positions) and fails
 * with a message naming the op and the group index before anything runs, so
 * backends may trust their inputs. Values that live in backend memory (ids,
 * positions, block tables) cannot be read here; backends that can read them
 * check them themselves.
 */
#include "backend.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"

const char *sh_op_name(sh_op op) {
    switch (op) {
    case SH_OP_GEMM: return "gemm";
    case SH_OP_GET_ROWS: return "get_rows";
    case SH_OP_NORM: return "norm";
    case SH_OP_ROPE: return "rope";
    case SH_OP_KV_WRITE: return "kv_write";
    case SH_OP_ATTN: return "attn";
    case SH_OP_ACT: return "act";
    case SH_OP_POOL: return "pool";
    case SH_OP_ARGMAX: return "argmax";
    case SH_OP_SAMPLE: return "sample";
    case SH_OP_COUNT: break;
    }
    return "?";
}

/* ---- registry ---------------------------------------------------------- */

shoal_status sh_backend_create(const char *device, int n_threads, sh_backend **out) {
    if (!out) return sh_fail(SHOAL_ERR_INVALID_ARG, "backend: out is NULL");
    *out = NULL;
    if (!device || !*device) device = "cpu";
    shoal_status s;
    sh_backend *be = NULL;
    if (strncmp(device, "cuda", 4) == 0 && (device[4] == '\0' || device[4] == ':')) {
        int index = 0;
        if (device[4] == ':') {
            const char *p = device + 5;
            if (!*p || strlen(p) > 4) return sh_fail(SHOAL_ERR_INVALID_ARG, "backend: bad device '%s' (expected cuda:N)", device);
            for (; *p; p++) {
                if (*p < '0' || *p > '9')
                    return sh_fail(SHOAL_ERR_INVALID_ARG, "backend: bad device '%s' (expected cuda:N)", device);
                index = index * 10 + (*p - '0');
            }
        }
#ifdef SHOAL_WITH_CUDA
        s = sh_cuda_backend_create(index, &be);
#else
        (void)index;
        return sh_fail(SHOAL_ERR_UNSUPPORTED, "backend: device '%s': shoal was built without CUDA", device);
#endif
    } else if (strcmp(device, "cpu") == 0) {
        s = sh_cpu_backend_create(n_threads, &be);
    } else {
        return sh_fail(SHOAL_ERR_NOT_FOUND, "backend: unknown device '%s' (expected cpu, cuda or cuda:N)", device);
    }
    if (s != SHOAL_OK) return s;
    if (!be || !be->ops || be->ops->version != SH_BACKEND_VERSION) {
        int v = be && be->ops ? be->ops->version : -1;
        if (be && be->ops && be->ops->destroy) be->ops->destroy(be);
        return sh_fail(SHOAL_ERR_UNSUPPORTED, "backend: '%s' implements interface version %d, expected %d", device, v,
                       SH_BACKEND_VERSION);
    }
    const char *ht = getenv("SHOAL_HOST_TIMING");
    be->host_timing = ht && atoi(ht) != 0;
    *out = be;
    return SHOAL_OK;
}

static void host_timing_report(const sh_backend *be);

void sh_backend_free(sh_backend *be) {
    if (be && be->host_timing) host_timing_report(be);
    if (be && be->ops && be->ops->destroy) be->ops->destroy(be);
}

/* ---- memory wrappers --------------------------------------------------- */

shoal_status sh_be_alloc(sh_backend *be, size_t bytes, void **out) {
    if (!out) return sh_fail(SHOAL_ERR_INVALID_ARG, "alloc: out is NULL");
    *out = NULL;
    if (!be) return sh_fail(SHOAL_ERR_INVALID_ARG, "alloc: backend is NULL");
    return be->ops->alloc(be, bytes, out);
}

void sh_be_free(sh_backend *be, void *ptr) {
    if (be && ptr) be->ops->free(be, ptr);
}

shoal_status sh_be_upload(sh_backend *be, void *dst, const void *src, size_t bytes) {
    if (!be) return sh_fail(SHOAL_ERR_INVALID_ARG, "upload: backend is NULL");
    if (bytes == 0) return SHOAL_OK;
    if (!dst || !src) return sh_fail(SHOAL_ERR_INVALID_ARG, "upload: NULL %s", dst ? "source" : "destination");
    return be->ops->upload(be, dst, src, bytes);
}

shoal_status sh_be_download(sh_backend *be, void *dst, const void *src, size_t bytes) {
    if (!be) return sh_fail(SHOAL_ERR_INVALID_ARG, "download: backend is NULL");
    if (bytes == 0) return SHOAL_OK;
    if (!dst || !src) return sh_fail(SHOAL_ERR_INVALID_ARG, "download: NULL %s", dst ? "source" : "destination");
    return be->ops->download(be, dst, src, bytes);
}

shoal_status sh_be_map_host(sh_backend *be, const void *host, size_t bytes, void **out) {
    if (!out) return sh_fail(SHOAL_ERR_INVALID_ARG, "map_host: out is NULL");
    *out = NULL;
    if (!be) return sh_fail(SHOAL_ERR_INVALID_ARG, "map_host: backend is NULL");
    if (!host) return sh_fail(SHOAL_ERR_INVALID_ARG, "map_host: host is NULL");
    if (be->ops->map_host) return be->ops->map_host(be, host, bytes, out);
    /* default: a device copy */
    void *dev;
    SH_TRY(be->ops->alloc(be, bytes, &dev));
    shoal_status s = be->ops->upload(be, dev, host, bytes);
    if (s != SHOAL_OK) {
        be->ops->free(be, dev);
        return s;
    }
    *out = dev;
    return SHOAL_OK;
}

shoal_status sh_be_sync(sh_backend *be) {
    if (!be) return sh_fail(SHOAL_ERR_INVALID_ARG, "sync: backend is NULL");
    return be->ops->sync ? be->ops->sync(be) : SHOAL_OK;
}

shoal_status sh_be_step_begin(sh_backend *be) {
    if (!be) return sh_fail(SHOAL_ERR_INVALID_ARG, "step_begin: backend is NULL");
    return be->ops->step_begin ? be->ops->step_begin(be) : SHOAL_OK;
}

shoal_status sh_be_step_end(sh_backend *be) {
    if (!be) return sh_fail(SHOAL_ERR_INVALID_ARG, "step_end: backend is NULL");
    return be->ops->step_end ? be->ops->step_end(be) : SHOAL_OK;
}

shoal_status sh_be_download_async(sh_backend *be, void *dst, const void *src, size_t bytes, int *ticket) {
    if (!ticket) return sh_fail(SHOAL_ERR_INVALID_ARG, "download_async: ticket is NULL");
    *ticket = -1;
    if (!be) return sh_fail(SHOAL_ERR_INVALID_ARG, "download_async: backend is NULL");
    if (bytes == 0) return SHOAL_OK;
    if (!dst || !src) return sh_fail(SHOAL_ERR_INVALID_ARG, "download_async: NULL %s", dst ? "source" : "destination");
    if (be->ops->download_async && be->ops->wait_download) return be->ops->download_async(be, dst, src, bytes, ticket);
    return be->ops->download(be, dst, src, bytes);
}

shoal_status sh_be_wait_download(sh_backend *be, int ticket) {
    if (!be) return sh_fail(SHOAL_ERR_INVALID_ARG, "wait_download: backend is NULL");
    if (ticket < 0) return SHOAL_OK;
    if (!be->ops->wait_download) return sh_fail(SHOAL_ERR_INVALID_ARG, "wait_download: the backend has no tickets");
    return be->ops->wait_download(be, ticket);
}

shoal_status sh_be_step_flush(sh_backend *be) {
    if (!be) return sh_fail(SHOAL_ERR_INVALID_ARG, "step_flush: backend is NULL");
    return be->ops->step_flush ? be->ops->step_flush(be) : SHOAL_OK;
}

/* ---- argument checks --------------------------------------------------- */

#define BAD(...) sh_fail(SHOAL_ERR_INVALID_ARG, __VA_ARGS__)

/* A view of rows x cols (either may be -1: not checked). */
static shoal_status check_view(const char *op, int gi, const char *name, const sh_view *v, int rows, int cols) {
    if (!v->data) return BAD("%s: group %d: %s.data is NULL", op, gi, name);
    if (v->rows <= 0 || v->cols <= 0)
        return BAD("%s: group %d: %s is %d x %d (rows and cols must be > 0)", op, gi, name, v->rows, v->cols);
    if (v->stride < v->cols) return BAD("%s: group %d: %s.stride %d < cols %d", op, gi, name, v->stride, v->cols);
    if (rows >= 0 && v->rows != rows) return BAD("%s: group %d: %s has %d rows, expected %d", op, gi, name, v->rows, rows);
    if (cols >= 0 && v->cols != cols) return BAD("%s: group %d: %s has %d cols, expected %d", op, gi, name, v->cols, cols);
    return SHOAL_OK;
}

/* 1 if two checked views may share an element. Exact for equal strides
 * (interleaved column ranges of one buffer are disjoint), conservative
 * otherwise (overlapping address ranges). */
static int views_overlap(const sh_view *a, const sh_view *b) {
    uintptr_t a0 = (uintptr_t)a->data, b0 = (uintptr_t)b->data;
    uintptr_t a1 = a0 + ((uint64_t)(a->rows - 1) * (uint64_t)a->stride + (uint64_t)a->cols) * sizeof(float);
    uintptr_t b1 = b0 + ((uint64_t)(b->rows - 1) * (uint64_t)b->stride + (uint64_t)b->cols) * sizeof(float);
    if (a1 <= b0 || b1 <= a0) return 0;
    uintptr_t lo = a0 < b0 ? a0 : b0, hi = a0 < b0 ? b0 : a0;
    if (a->stride != b->stride || (hi - lo) % sizeof(float) != 0) return 1;
    /* columns (mod stride) covered by each: [0, cols) for the lower one,
     * [rem, rem + cols) for the upper one */
    const sh_view *first = a0 <= b0 ? a : b, *second = a0 <= b0 ? b : a;
    uint64_t rem = (uint64_t)((hi - lo) / sizeof(float)) % (uint64_t)a->stride;
    if (rem < (uint64_t)first->cols) return 1;
    if (rem + (uint64_t)second->cols > (uint64_t)a->stride) return 1;
    return 0;
}

static int views_same(const sh_view *a, const sh_view *b) {
    return a->data == b->data && a->stride == b->stride && a->rows == b->rows && a->cols == b->cols;
}

/* Weights of op: valid dtype the backend supports, n_in a block multiple. */
static shoal_status check_weight(sh_backend *be, sh_op op, int gi, const sh_weight *w) {
    const char *on = sh_op_name(op);
    if (!w->data) return BAD("%s: group %d: weight data is NULL", on, gi);
    if (!sh_dtype_valid((int)w->dtype)) return BAD("%s: group %d: unknown weight dtype %d", on, gi, (int)w->dtype);
    if (w->n_out <= 0 || w->n_in <= 0)
        return BAD("%s: group %d: weight is %d x %d (must be > 0)", on, gi, w->n_out, w->n_in);
    if (w->n_in % sh_dtype_block(w->dtype) != 0)
        return BAD("%s: group %d: weight n_in %d is not a multiple of the %s block size %d", on, gi, w->n_in,
                   sh_dtype_name(w->dtype), sh_dtype_block(w->dtype));
    if (!be->ops->supports(be, op, w->dtype))
        return sh_fail(SHOAL_ERR_UNSUPPORTED, "%s: group %d: weight dtype %s is not supported by backend %s", on, gi,
                       sh_dtype_name(w->dtype), be->ops->name);
    return SHOAL_OK;
}

/* A KV reference of op with kv_dim columns. */
static shoal_status check_kv(sh_backend *be, sh_op op, int gi, const sh_kv_ref *kv, int kv_dim) {
    const char *on = sh_op_name(op);
    if (!kv->pool) return BAD("%s: group %d: kv.pool is NULL", on, gi);
    if (!kv->block_table) return BAD("%s: group %d: kv.block_table is NULL", on, gi);
    if (kv->dtype != SH_F32 && kv->dtype != SH_F16)
        return BAD("%s: group %d: kv dtype %s (expected f32 or f16)", on, gi, sh_dtype_name(kv->dtype));
    if (!be->ops->supports(be, op, kv->dtype))
        return sh_fail(SHOAL_ERR_UNSUPPORTED, "%s: group %d: kv dtype %s is not supported by backend %s", on, gi,
                       sh_dtype_name(kv->dtype), be->ops->name);
    if (kv->layer < 0) return BAD("%s: group %d: kv.layer %d < 0", on, gi, kv->layer);
    if (kv->kv_dim != kv_dim) return BAD("%s: group %d: kv.kv_dim %d, expected %d", on, gi, kv->kv_dim, kv_dim);
    /* the layer's slice must fit in a block */
    uint64_t need;
    uint64_t es = kv->dtype == SH_F16 ? 2 : 4;
    if (!sh_mul_ok((uint64_t)kv->layer + 1, 2u * SH_KV_BLOCK, &need) || !sh_mul_ok(need, (uint64_t)kv_dim, &need) ||
        !sh_mul_ok(need, es, &need) || kv->block_bytes < need)
        return BAD("%s: group %d: kv.block_bytes %llu too small for layer %d of kv_dim %d", on, gi,
                   (unsigned long long)kv->block_bytes, kv->layer, kv_dim);
    return SHOAL_OK;
}

/* RoPE done inside another op: a known rotation and a positive base. */
static shoal_status check_rope_mode_theta(const char *op, int gi, const sh_rope_params *r) {
    if (r->mode != SH_ROPE_NORM && r->mode != SH_ROPE_NEOX)
        return BAD("%s: group %d: unknown rope mode %d", op, gi, (int)r->mode);
    if (!isfinite(r->theta) || r->theta <= 0.0f)
        return BAD("%s: group %d: rope theta %g must be > 0", op, gi, (double)r->theta);
    return SHOAL_OK;
}

static shoal_status check_call(sh_backend *be, sh_op op, int n, const void *g) {
    if (!be) return BAD("%s: backend is NULL", sh_op_name(op));
    if (n < 0) return BAD("%s: %d groups", sh_op_name(op), n);
    if (n > 0 && !g) return BAD("%s: groups are NULL", sh_op_name(op));
    return SHOAL_OK;
}

/* heads * head_dim as an int, or -1 on overflow */
static int heads_cols(int heads, int head_dim) {
    int64_t c = (int64_t)heads * head_dim;
    return c > INT32_MAX ? -1 : (int)c;
}

#define DISPATCH(OP)                       \
    do {                                   \
        if (n == 0) return SHOAL_OK;       \
        be->n_launches += 1;               \
        be->n_groups += (uint64_t)n;       \
        return be->ops->OP(be, n, g);      \
    } while (0)

/* ---- compute wrappers -------------------------------------------------- */

/* A GEMM group's row norm (version 4): its rows are whole only when no other
 * group of the call writes them, and norm_out is written while the call's
 * other groups may still read or write their views. */
static shoal_status check_gemm_norm(int n, const sh_gemm_group *g, int i) {
    const sh_gemm_group *e = &g[i];
    if (e->norm_kind != SH_NORM_RMS && e->norm_kind != SH_NORM_LAYER)
        return BAD("gemm: group %d: unknown norm kind %d", i, (int)e->norm_kind);
    if (!isfinite(e->norm_eps) || e->norm_eps < 0.0f)
        return BAD("gemm: group %d: norm_eps %g is not finite and >= 0", i, (double)e->norm_eps);
    if (e->epi != SH_EPI_NONE || e->kv_which)
        return BAD("gemm: group %d: a row norm follows no epilogue and no KV store", i);
    SH_TRY(check_view("gemm", i, "norm_out", &e->norm_out, e->y.rows, e->y.cols));
    const int in_place = views_same(&e->norm_out, &e->y);
    if (!in_place && views_overlap(&e->norm_out, &e->y)) return BAD("gemm: group %d: norm_out overlaps y without being y", i);
    if (views_overlap(&e->norm_out, &e->x)) return BAD("gemm: group %d: norm_out overlaps x", i);
    if (e->xf == SH_XF_SILU_MUL && views_overlap(&e->norm_out, &e->x2)) return BAD("gemm: group %d: norm_out overlaps x2", i);
    for (int j = 0; j < n; j++) {
        if (j == i) continue;
        const sh_gemm_group *o = &g[j];
        if (views_overlap(&o->y, &e->y)) return BAD("gemm: group %d writes rows of group %d's normed y", j, i);
        if (views_overlap(&o->y, &e->norm_out) || views_overlap(&o->x, &e->norm_out) ||
            (o->xf == SH_XF_SILU_MUL && views_overlap(&o->x2, &e->norm_out)) ||
            (o->norm_out.data && views_overlap(&o->norm_out, &e->norm_out)))
            return BAD("gemm: group %d's norm_out overlaps a view of group %d", i, j);
    }
    return SHOAL_OK;
}

static shoal_status be_gemm(sh_backend *be, int n, const sh_gemm_group *g) {
    SH_TRY(check_call(be, SH_OP_GEMM, n, g));
    for (int i = 0; i < n; i++) {
        const sh_gemm_group *e = &g[i];
        SH_TRY(check_weight(be, SH_OP_GEMM, i, &e->w));
        SH_TRY(check_view("gemm", i, "x", &e->x, -1, e->w.n_in));
        SH_TRY(check_view("gemm", i, "y", &e->y, e->x.rows, e->w.n_out));
        if (views_overlap(&e->x, &e->y)) return BAD("gemm: group %d: y overlaps x", i);
        switch (e->xf) {
        case SH_XF_NONE:
        case SH_XF_GELU_TANH:
        case SH_XF_GELU_ERF: break;
        case SH_XF_RMS:
        case SH_XF_LN:
            if (!isfinite(e->xf_eps) || e->xf_eps < 0.0f)
                return BAD("gemm: group %d: xf_eps %g is not finite and >= 0", i, (double)e->xf_eps);
            break;
        case SH_XF_SILU_MUL:
            SH_TRY(check_view("gemm", i, "x2", &e->x2, e->x.rows, e->x.cols));
            if (views_overlap(&e->x2, &e->y)) return BAD("gemm: group %d: y overlaps x2", i);
            break;
        default: return BAD("gemm: group %d: unknown x transform %d", i, (int)e->xf);
        }
        switch (e->epi) {
        case SH_EPI_NONE: break;
        case SH_EPI_SILU_PAIR:
            SH_TRY(check_weight(be, SH_OP_GEMM, i, &e->w2));
            if (e->w2.dtype != e->w.dtype || e->w2.n_out != e->w.n_out || e->w2.n_in != e->w.n_in)
                return BAD("gemm: group %d: w2 (%s %dx%d) differs from w (%s %dx%d)", i, sh_dtype_name(e->w2.dtype),
                           e->w2.n_out, e->w2.n_in, sh_dtype_name(e->w.dtype), e->w.n_out, e->w.n_in);
            /* fall through */
        case SH_EPI_GELU_TANH:
        case SH_EPI_GELU_ERF:
            if (e->accumulate) return BAD("gemm: group %d: an epilogue cannot accumulate", i);
            break;
        case SH_EPI_ROPE: {
            const sh_rope_params *r = &e->rope;
            if (e->accumulate) return BAD("gemm: group %d: an epilogue cannot accumulate", i);
            if (r->head_dim <= 0 || r->head_dim % 2 != 0 || e->w.n_out % r->head_dim != 0)
                return BAD("gemm: group %d: rope head_dim %d must be even and divide N %d", i, r->head_dim, e->w.n_out);
            if (r->n_rot != r->head_dim)
                return BAD("gemm: group %d: rope n_rot %d must equal head_dim %d in a GEMM epilogue", i, r->n_rot,
                           r->head_dim);
            SH_TRY(check_rope_mode_theta("gemm", i, r));
            if (!e->pos) return BAD("gemm: group %d: rope pos is NULL", i);
            break;
        }
        default: return BAD("gemm: group %d: unknown epilogue %d", i, (int)e->epi);
        }
        if (e->kv_which != 0) {
            if (e->kv_which != 1 && e->kv_which != 2) return BAD("gemm: group %d: kv_which %d (expected 0, 1 or 2)", i, e->kv_which);
            if (e->epi != SH_EPI_NONE && e->epi != SH_EPI_ROPE)
                return BAD("gemm: group %d: a KV store follows no epilogue or ROPE only", i);
            if (e->accumulate) return BAD("gemm: group %d: a KV store cannot accumulate", i);
            if (!e->kv_slot) return BAD("gemm: group %d: kv_slot is NULL", i);
            sh_kv_ref k = e->kv;
            k.block_table = e->kv_slot; /* not used; check_kv wants one */
            SH_TRY(check_kv(be, SH_OP_KV_WRITE, i, &k, e->w.n_out));
        }
        if (e->norm_out.data) SH_TRY(check_gemm_norm(n, g, i));
    }
    DISPATCH(gemm);
}

static shoal_status be_get_rows(sh_backend *be, int n, const sh_get_rows_group *g) {
    SH_TRY(check_call(be, SH_OP_GET_ROWS, n, g));
    for (int i = 0; i < n; i++) {
        const sh_get_rows_group *e = &g[i];
        SH_TRY(check_weight(be, SH_OP_GET_ROWS, i, &e->w));
        if (!e->ids) return BAD("get_rows: group %d: ids is NULL", i);
        SH_TRY(check_view("get_rows", i, "out", &e->out, -1, e->w.n_in));
    }
    DISPATCH(get_rows);
}

static shoal_status be_norm(sh_backend *be, int n, const sh_norm_group *g) {
    SH_TRY(check_call(be, SH_OP_NORM, n, g));
    for (int i = 0; i < n; i++) {
        const sh_norm_group *e = &g[i];
        if (e->kind != SH_NORM_RMS && e->kind != SH_NORM_LAYER) return BAD("norm: group %d: unknown kind %d", i, (int)e->kind);
        if (!isfinite(e->eps) || e->eps < 0.0f) return BAD("norm: group %d: eps %g is not finite and >= 0", i, (double)e->eps);
        SH_TRY(check_view("norm", i, "x", &e->x, -1, -1));
        if (e->add.data) {
            SH_TRY(check_view("norm", i, "add", &e->add, e->x.rows, e->x.cols));
            if (!views_same(&e->add, &e->x) && views_overlap(&e->add, &e->x))
                return BAD("norm: group %d: add overlaps x", i);
        }
        SH_TRY(check_view("norm", i, "out", &e->out, e->x.rows, e->x.cols));
        if (!views_same(&e->out, &e->x) && views_overlap(&e->out, &e->x))
            return BAD("norm: group %d: out overlaps x without being x", i);
    }
    DISPATCH(norm);
}

static shoal_status be_rope(sh_backend *be, int n, const sh_rope_group *g) {
    SH_TRY(check_call(be, SH_OP_ROPE, n, g));
    for (int i = 0; i < n; i++) {
        const sh_rope_group *e = &g[i];
        if (e->n_head <= 0 || e->head_dim <= 0)
            return BAD("rope: group %d: n_head %d, head_dim %d (must be > 0)", i, e->n_head, e->head_dim);
        if (e->n_rot <= 0 || e->n_rot % 2 != 0 || e->n_rot > e->head_dim)
            return BAD("rope: group %d: n_rot %d must be even and in (0, head_dim %d]", i, e->n_rot, e->head_dim);
        if (e->mode != SH_ROPE_NORM && e->mode != SH_ROPE_NEOX) return BAD("rope: group %d: unknown mode %d", i, (int)e->mode);
        if (!isfinite(e->theta) || e->theta <= 0.0f) return BAD("rope: group %d: theta %g must be > 0", i, (double)e->theta);
        if (!e->pos) return BAD("rope: group %d: pos is NULL", i);
        int cols = heads_cols(e->n_head, e->head_dim);
        if (cols < 0) return BAD("rope: group %d: n_head * head_dim overflows", i);
        SH_TRY(check_view("rope", i, "x", &e->x, -1, cols));
    }
    DISPATCH(rope);
}

static shoal_status be_kv_write(sh_backend *be, int n, const sh_kv_write_group *g) {
    SH_TRY(check_call(be, SH_OP_KV_WRITE, n, g));
    for (int i = 0; i < n; i++) {
        const sh_kv_write_group *e = &g[i];
        if (e->kv.kv_dim <= 0) return BAD("kv_write: group %d: kv.kv_dim %d must be > 0", i, e->kv.kv_dim);
        SH_TRY(check_kv(be, SH_OP_KV_WRITE, i, &e->kv, e->kv.kv_dim));
        SH_TRY(check_view("kv_write", i, "k", &e->k, -1, e->kv.kv_dim));
        SH_TRY(check_view("kv_write", i, "v", &e->v, e->k.rows, e->kv.kv_dim));
        if (!e->pos) return BAD("kv_write: group %d: pos is NULL", i);
        if (e->rope.n_rot != 0) {
            const sh_rope_params *r = &e->rope;
            if (r->head_dim <= 0 || e->kv.kv_dim % r->head_dim != 0)
                return BAD("kv_write: group %d: rope head_dim %d does not divide kv_dim %d", i, r->head_dim, e->kv.kv_dim);
            if (r->n_rot < 0 || r->n_rot % 2 != 0 || r->n_rot > r->head_dim)
                return BAD("kv_write: group %d: rope n_rot %d must be even and in (0, head_dim %d]", i, r->n_rot,
                           r->head_dim);
            SH_TRY(check_rope_mode_theta("kv_write", i, r));
            if (e->q.data) {
                if (e->n_head <= 0) return BAD("kv_write: group %d: n_head %d must be > 0", i, e->n_head);
                int cols = heads_cols(e->n_head, r->head_dim);
                if (cols < 0) return BAD("kv_write: group %d: n_head * head_dim overflows", i);
                SH_TRY(check_view("kv_write", i, "q", &e->q, e->k.rows, cols));
                if (views_overlap(&e->q, &e->k) || views_overlap(&e->q, &e->v))
                    return BAD("kv_write: group %d: q overlaps k or v", i);
            }
        }
    }
    DISPATCH(kv_write);
}

static shoal_status be_attn(sh_backend *be, int n, const sh_attn_group *g) {
    SH_TRY(check_call(be, SH_OP_ATTN, n, g));
    for (int i = 0; i < n; i++) {
        const sh_attn_group *e = &g[i];
        if (e->n_head <= 0 || e->n_head_kv <= 0 || e->head_dim <= 0)
            return BAD("attn: group %d: n_head %d, n_head_kv %d, head_dim %d (must be > 0)", i, e->n_head, e->n_head_kv,
                       e->head_dim);
        if (e->n_head % e->n_head_kv != 0)
            return BAD("attn: group %d: n_head %d is not a multiple of n_head_kv %d", i, e->n_head, e->n_head_kv);
        if (!isfinite(e->scale)) return BAD("attn: group %d: scale is not finite", i);
        int cols = heads_cols(e->n_head, e->head_dim), kvd = heads_cols(e->n_head_kv, e->head_dim);
        if (cols < 0) return BAD("attn: group %d: n_head * head_dim overflows", i);
        SH_TRY(check_view("attn", i, "q", &e->q, -1, cols));
        SH_TRY(check_view("attn", i, "out", &e->out, e->q.rows, cols));
        if (e->pos0 < 0) return BAD("attn: group %d: pos0 %d < 0", i, e->pos0);
        if ((int64_t)e->n_kv < (int64_t)e->pos0 + e->q.rows)
            return BAD("attn: group %d: n_kv %d < pos0 %d + rows %d", i, e->n_kv, e->pos0, e->q.rows);
        SH_TRY(check_kv(be, SH_OP_ATTN, i, &e->kv, kvd));
    }
    DISPATCH(attn);
}

static shoal_status be_act(sh_backend *be, int n, const sh_act_group *g) {
    SH_TRY(check_call(be, SH_OP_ACT, n, g));
    for (int i = 0; i < n; i++) {
        const sh_act_group *e = &g[i];
        if (e->kind != SH_ACT_SILU_MUL && e->kind != SH_ACT_GELU_TANH && e->kind != SH_ACT_GELU_ERF)
            return BAD("act: group %d: unknown kind %d", i, (int)e->kind);
        SH_TRY(check_view("act", i, "a", &e->a, -1, -1));
        SH_TRY(check_view("act", i, "out", &e->out, e->a.rows, e->a.cols));
        if (!views_same(&e->out, &e->a) && views_overlap(&e->out, &e->a))
            return BAD("act: group %d: out overlaps a without being a", i);
        if (e->kind == SH_ACT_SILU_MUL) {
            SH_TRY(check_view("act", i, "b", &e->b, e->a.rows, e->a.cols));
            if (!views_same(&e->out, &e->b) && views_overlap(&e->out, &e->b))
                return BAD("act: group %d: out overlaps b without being b", i);
        }
    }
    DISPATCH(act);
}

static shoal_status be_pool(sh_backend *be, int n, const sh_pool_group *g) {
    SH_TRY(check_call(be, SH_OP_POOL, n, g));
    for (int i = 0; i < n; i++) {
        const sh_pool_group *e = &g[i];
        SH_TRY(check_view("pool", i, "x", &e->x, -1, -1));
        if (!e->out) return BAD("pool: group %d: out is NULL", i);
    }
    DISPATCH(pool);
}

static shoal_status be_argmax(sh_backend *be, int n, const sh_argmax_group *g) {
    SH_TRY(check_call(be, SH_OP_ARGMAX, n, g));
    if (!be->ops->argmax) return sh_fail(SHOAL_ERR_UNSUPPORTED, "argmax: backend %s has no argmax", be->ops->name);
    for (int i = 0; i < n; i++) {
        const sh_argmax_group *e = &g[i];
        SH_TRY(check_view("argmax", i, "x", &e->x, -1, -1));
        if (!e->out) return BAD("argmax: group %d: out is NULL", i);
    }
    DISPATCH(argmax);
}

static shoal_status be_sample(sh_backend *be, int n, const sh_sample_group *g) {
    SH_TRY(check_call(be, SH_OP_SAMPLE, n, g));
    if (!be->ops->sample) return sh_fail(SHOAL_ERR_UNSUPPORTED, "sample: backend %s has no sample", be->ops->name);
    for (int i = 0; i < n; i++) {
        const sh_sample_group *e = &g[i];
        SH_TRY(check_view("sample", i, "x", &e->x, -1, -1));
        if (!e->out) return BAD("sample: group %d: out is NULL", i);
        if (!e->p) return BAD("sample: group %d: p is NULL", i);
        for (int r = 0; r < e->x.rows; r++)
            if (e->p[r].temperature > 0 && !(e->p[r].u >= 0.0 && e->p[r].u < 1.0))
                return BAD("sample: group %d row %d: u %g is outside [0, 1)", i, r, e->p[r].u);
    }
    DISPATCH(sample);
}

/* ---- host time per op (SHOAL_HOST_TIMING=1) ---------------------------- */

double sh_host_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The checked wrappers, timed when the backend was created with host timing
 * on: checks, packing and queueing of each call, summed per op. */
#define TIMED_OP(NAME, OP)                                                                  \
    shoal_status sh_be_##NAME(sh_backend *be, int n, const sh_##NAME##_group *g) {          \
        if (!be || !be->host_timing) return be_##NAME(be, n, g);                            \
        const double t0 = sh_host_seconds();                                                       \
        const shoal_status s = be_##NAME(be, n, g);                                         \
        be->host_op_s[OP] += sh_host_seconds() - t0;                                               \
        be->host_op_calls[OP]++;                                                            \
        be->host_op_groups[OP] += n > 0 ? (uint64_t)n : 0;                                  \
        return s;                                                                           \
    }
TIMED_OP(gemm, SH_OP_GEMM)
TIMED_OP(get_rows, SH_OP_GET_ROWS)
TIMED_OP(norm, SH_OP_NORM)
TIMED_OP(rope, SH_OP_ROPE)
TIMED_OP(kv_write, SH_OP_KV_WRITE)
TIMED_OP(attn, SH_OP_ATTN)
TIMED_OP(act, SH_OP_ACT)
TIMED_OP(pool, SH_OP_POOL)
TIMED_OP(argmax, SH_OP_ARGMAX)
TIMED_OP(sample, SH_OP_SAMPLE)

static void host_timing_report(const sh_backend *be) {
    fprintf(stderr, "host time per op (%s, checks + packing + queueing):", be->device);
    for (int op = 0; op < SH_OP_COUNT; op++)
        if (be->host_op_calls[op])
            fprintf(stderr, " %s %.1f ms / %llu calls / %llu groups (%.0f ns a group);", sh_op_name((sh_op)op),
                    1e3 * be->host_op_s[op], (unsigned long long)be->host_op_calls[op],
                    (unsigned long long)be->host_op_groups[op],
                    be->host_op_groups[op] ? 1e9 * be->host_op_s[op] / (double)be->host_op_groups[op] : 0.0);
    fprintf(stderr, "\n");
}
