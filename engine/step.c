/* The fused step planner (see step.h). */
#include "step.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "sample.h"

/* ============================================================================
 * Execution state
 * ========================================================================== */

typedef struct seg {
    shoal_model *m;
    int s0, ns;         /* sorted sequences [s0, s0 + ns) */
    int rows;           /* rows of this model */
    int row0;           /* first global row */
    int lrows;          /* rows that need logits */
    int lbase;          /* first logits row over all segments */
    /* arena offsets (floats) */
    size_t x, xn, q, k, v, att, fa, fb, xl, lg;
} seg;

typedef struct sseq {   /* a sequence in model order */
    sh_step_seq *in;
    int seg;
    int row;            /* first row within its segment */
    int lrow;           /* first logits row within its segment */
    int nl;             /* logits rows */
    int dev;            /* its ids come from the device argmax/sample call */
    int tok_at;         /* chained launches: where its token is in the ints (the last launch's id) */
    size_t bt;          /* staging offset of its block table (ints) */
    size_t pool;        /* arena offset of its pooled embedding */
} sseq;

struct sh_exec {
    sh_backend *be;
    sh_kv_pool *pool;
    float *arena;       /* backend address */
    size_t arena_cap;   /* floats */
    int32_t *ints;      /* backend address */
    size_t ints_cap;    /* int32s */
    int32_t *h_ints;    /* host staging */
    size_t h_ints_cap;
    float *h_floats;    /* host download buffer */
    size_t h_floats_cap;
    seg *segs;
    int cap_segs;
    sseq *ss;
    int cap_ss;
    void *groups;       /* host scratch for group arrays */
    size_t groups_cap;  /* bytes */
    sh_sample_params *h_sp; /* host: per logits row, for the sample call */
    size_t h_sp_cap;
    int dev_sample;     /* sampled rows use the backend's sample op */
    sh_step_stats stats;
    int fuse;           /* 1: norms, activations and RoPE fused into their neighbours */
    int fuse_epi;       /* 1: the FFN activation as the up GEMM's epilogue (with fuse) */
    int fuse_norm;      /* 1: each norm as the row norm of the GEMM that ends the residual rows (with fuse) */
    int fuse_kv;        /* 1: the KV store (and llama's RoPE) as the QKV GEMM's epilogue (with fuse_epi) */
    int chunk;          /* layers per step chunk after the first (sh_be_step_flush); 0: one chunk */
    int chunk0;         /* layers in a step's first chunk */
    int chained;        /* the launch being packed reads its tokens from the last launch's ids */
    int *map;           /* chained launches: each sequence's token offset (caller's order) */
    size_t map_cap;
    /* steps launched and not yet finished, oldest first (sh_exec_launch) */
    struct flight {
        int n;          /* sequences */
        int async;      /* its ids come by a download ticket; else its results are already out */
        int ticket;
        int lrows;      /* ids (one a logits row, at the ints' start) */
        int32_t *ids;   /* host (lrows) */
        size_t ids_cap;
        int32_t **dst;  /* per sequence (caller's order): where its ids go, their offset and count */
        int *off, *cnt;
        const sh_seq **seq; /* per sequence: its KV state (chains must name the same ones) */
        int cap;
        uint64_t launches, groups;
        int models;
    } fl[2];
    int n_fl;
};

shoal_status sh_exec_create(sh_backend *be, sh_kv_pool *pool, sh_exec **out) {
    *out = NULL;
    if (!be || !pool) return sh_fail(SHOAL_ERR_INVALID_ARG, "sh_exec_create: NULL argument");
    sh_exec *ex = calloc(1, sizeof *ex);
    if (!ex) return sh_fail(SHOAL_ERR_NOMEM, "out of memory");
    ex->be = be;
    ex->pool = pool;
    const char *env = getenv("SHOAL_DEVICE_SAMPLE");
    ex->dev_sample = be->ops->sample != NULL && !(env && strcmp(env, "0") == 0);
    /* SHOAL_FUSE_OPS=0: every norm, activation and RoPE as its own call (the
     * baseline for measuring the fused forms; results are the same) */
    const char *fe = getenv("SHOAL_FUSE_OPS");
    ex->fuse = !(fe && strcmp(fe, "0") == 0);
    /* SHOAL_FUSE_EPI=0: the FFN activation as before epilogues existed (its
     * own call, or the down GEMM's x transform), to measure the epilogue */
    const char *fp = getenv("SHOAL_FUSE_EPI");
    ex->fuse_epi = ex->fuse && !(fp && strcmp(fp, "0") == 0);
    /* SHOAL_FUSE_NORM=0: norms as their own calls, to measure the row norm */
    const char *fn = getenv("SHOAL_FUSE_NORM");
    ex->fuse_norm = ex->fuse && be->gemm_norm && !(fn && strcmp(fn, "0") == 0);
    /* SHOAL_FUSE_KV=0: the KV store as its own call, to measure the epilogue */
    const char *fk = getenv("SHOAL_FUSE_KV");
    ex->fuse_kv = ex->fuse_epi && !(fk && strcmp(fk, "0") == 0);
    /* SHOAL_STEP_CHUNK=n: a step starts on the device after its first
     * SHOAL_STEP_CHUNK0 (2) layers and again every n (8) layers (0: only
     * when wholly packed) */
    const char *sc = getenv("SHOAL_STEP_CHUNK"), *s0 = getenv("SHOAL_STEP_CHUNK0");
    ex->chunk = sc ? atoi(sc) : 8;
    if (ex->chunk < 0) ex->chunk = 0;
    ex->chunk0 = s0 && atoi(s0) >= 1 ? atoi(s0) : 2;
    *out = ex;
    return SHOAL_OK;
}

void sh_exec_free(sh_exec *ex) {
    if (!ex) return;
    sh_be_free(ex->be, ex->arena);
    sh_be_free(ex->be, ex->ints);
    free(ex->h_ints);
    free(ex->h_floats);
    free(ex->segs);
    free(ex->ss);
    free(ex->groups);
    free(ex->h_sp);
    free(ex->map);
    for (int i = 0; i < 2; i++) {
        free(ex->fl[i].ids);
        free(ex->fl[i].dst);
        free(ex->fl[i].off);
        free(ex->fl[i].cnt);
        free(ex->fl[i].seq);
    }
    free(ex);
}

const sh_step_stats *sh_exec_stats(const sh_exec *ex) { return &ex->stats; }

int sh_exec_device_sample(const sh_exec *ex) { return ex && ex->dev_sample; }

static shoal_status grow_host(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return SHOAL_OK;
    size_t nc = *cap ? *cap : 64;
    while (nc < need) nc *= 2;
    void *np = realloc(*p, nc * elem);
    if (!np) return sh_fail(SHOAL_ERR_NOMEM, "out of memory");
    *p = np;
    *cap = nc;
    return SHOAL_OK;
}

static shoal_status grow_dev(sh_backend *be, void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return SHOAL_OK;
    size_t nc = *cap ? *cap : 4096;
    while (nc < need) nc *= 2;
    sh_be_free(be, *p);
    *p = NULL;
    *cap = 0;
    SH_TRY(sh_be_alloc(be, nc * elem, p));
    *cap = nc;
    return SHOAL_OK;
}

/* ============================================================================
 * Helpers
 * ========================================================================== */

static inline size_t al64(size_t n) { return (n + 63) & ~(size_t)63; }

static inline sh_view V(float *base, size_t off, int rows, int cols, int stride) {
    sh_view v = {base + off, rows, cols, stride};
    return v;
}
static const sh_view NOVIEW = {NULL, 0, 0, 0};

/* y (+)= x W^T + b, x read through the transform xf (SH_XF_NONE: as it is) */
static inline sh_gemm_group GG(sh_weight w, const float *b, sh_view x, sh_view y, int acc, sh_gemm_xf xf,
                               const float *gamma, float eps) {
    sh_gemm_group e = {.w = w, .bias = b, .x = x, .y = y, .accumulate = acc, .xf = xf, .xf_gamma = gamma,
                       .xf_eps = eps};
    return e;
}

/* The row norm of a GEMM group: norm(y) into out (see sh_gemm_group). */
static inline void gg_norm(sh_gemm_group *e, sh_view out, const float *gamma, const float *beta, float eps,
                           sh_norm_kind kind) {
    e->norm_out = out;
    e->norm_gamma = gamma;
    e->norm_beta = beta;
    e->norm_eps = eps;
    e->norm_kind = kind;
}

static inline sh_kv_ref kvref(sh_exec *ex, const shoal_model *m, const sseq *q, int layer) {
    sh_kv_ref r;
    r.pool = ex->pool->base;
    r.dtype = ex->pool->dtype;
    r.block_bytes = ex->pool->block_bytes;
    r.block_table = ex->ints + q->bt;
    r.layer = layer;
    r.kv_dim = sh_model_kv_dim(m);
    return r;
}

/* ============================================================================
 * The step
 * ========================================================================== */

/* Whether a model's QKV GEMM applies RoPE and writes K and V to the pool
 * itself (the epilogue needs every dim rotated). */
static int qkv_epi(const sh_exec *ex, sh_template t, const shoal_model *m) {
    return ex->fuse_kv && ((t == SH_TMPL_LLAMA && m->hp.n_rot == m->hp.head_dim) || t == SH_TMPL_GPT2);
}

/* The KV store as the epilogue of a model's three QKV groups e[0 .. 2]
 * (q: none, k: kv_which 1, v: 2), rows at slots `slot`. */
static void qkv_kv_store(sh_gemm_group *e, const int32_t *slot, sh_kv_ref kv) {
    kv.block_table = NULL;
    for (int j = 0; j < 3; j++) {
        e[j].kv_which = j;
        e[j].kv_slot = j ? slot : NULL;
        e[j].kv = kv;
    }
}

/* Rows r0 .. r0 + n - 1 of w (backend addresses are linear, as the
 * activation views' are). */
static sh_weight wrows(sh_weight w, int r0, int n) {
    w.data = (const unsigned char *)w.data + (size_t)r0 * sh_dtype_row_bytes(w.dtype, (uint64_t)w.n_in);
    w.n_out = n;
    return w;
}

/* Emits every op of every layer slot for the segments of one template. */
static shoal_status run_template(sh_exec *ex, sh_template t, const int *segidx, int nseg, size_t off_tok,
                                 size_t off_pos, size_t off_typ, size_t off_slot) {
    seg *S = ex->segs;
    sseq *Q = ex->ss;
    float *A = ex->arena;
    int32_t *I = ex->ints;
    int max_layers = 0, nseq = 0;
    for (int i = 0; i < nseg; i++) {
        const seg *g = &S[segidx[i]];
        if (g->m->hp.n_layer > max_layers) max_layers = g->m->hp.n_layer;
        nseq += g->ns;
    }
    int cap = 3 * nseg > nseq ? 3 * nseg : nseq;
    if (cap < 2 * nseg) cap = 2 * nseg;
    /* group scratch: large enough for any group struct type */
    size_t gsz = sizeof(sh_attn_group);
    if (sizeof(sh_gemm_group) > gsz) gsz = sizeof(sh_gemm_group);
    if (sizeof(sh_kv_write_group) > gsz) gsz = sizeof(sh_kv_write_group);
    SH_TRY(grow_host(&ex->groups, &ex->groups_cap, (size_t)cap * gsz, 1));
    sh_gemm_group *gg = ex->groups;
    sh_norm_group *ng = ex->groups;
    sh_rope_group *rg = ex->groups;
    sh_kv_write_group *kg = ex->groups;
    sh_attn_group *ag = ex->groups;
    sh_act_group *cg = ex->groups;
    sh_get_rows_group *eg = ex->groups;
    int n;

    /* ---- embeddings ---- */
    n = 0;
    for (int i = 0; i < nseg; i++) {
        const seg *g = &S[segidx[i]];
        int d = g->m->hp.n_embd;
        if (ex->chained) {
            /* a chained launch's tokens are the ids the launch before it left
             * at the ints' start: a group a sequence (one row each) */
            for (int j = g->s0; j < g->s0 + g->ns; j++)
                eg[n++] = (sh_get_rows_group){g->m->tok_embd, I + Q[j].tok_at, V(A, g->x + (size_t)Q[j].row * d, 1, d, d), 0};
            continue;
        }
        eg[n++] = (sh_get_rows_group){g->m->tok_embd, I + off_tok + g->row0, V(A, g->x, g->rows, d, d), 0};
    }
    SH_TRY(sh_be_get_rows(ex->be, n, eg));
    if (t != SH_TMPL_LLAMA) {
        n = 0;
        for (int i = 0; i < nseg; i++) {
            const seg *g = &S[segidx[i]];
            int d = g->m->hp.n_embd;
            eg[n++] = (sh_get_rows_group){g->m->pos_embd, I + off_pos + g->row0, V(A, g->x, g->rows, d, d), 1};
        }
        SH_TRY(sh_be_get_rows(ex->be, n, eg));
    }
    if (t == SH_TMPL_BERT) {
        n = 0;
        for (int i = 0; i < nseg; i++) {
            const seg *g = &S[segidx[i]];
            int d = g->m->hp.n_embd;
            eg[n++] = (sh_get_rows_group){g->m->type_embd, I + off_typ + g->row0, V(A, g->x, g->rows, d, d), 1};
        }
        SH_TRY(sh_be_get_rows(ex->be, n, eg));
        n = 0;
        for (int i = 0; i < nseg; i++) {
            const seg *g = &S[segidx[i]];
            const shoal_model *m = g->m;
            int d = m->hp.n_embd;
            sh_view x = V(A, g->x, g->rows, d, d);
            ng[n++] = (sh_norm_group){x, NOVIEW, m->embd_norm, m->embd_norm_b, m->hp.eps, SH_NORM_LAYER, x};
        }
        SH_TRY(sh_be_norm(ex->be, n, ng));
    }

    /* ---- layer slots ---- */
    for (int l = 0; l < max_layers; l++) {
        /* segments that have layer l */
        int act[nseg > 0 ? nseg : 1], na = 0;
        for (int i = 0; i < nseg; i++)
            if (l < S[segidx[i]].m->hp.n_layer) act[na++] = segidx[i];

#define FOR_SEG for (int i_ = 0; i_ < na; i_++)
#define SEGV const seg *g = &S[act[i_]]; const shoal_model *m = g->m; const sh_layer *L = &m->layers[l]; \
        int d = m->hp.n_embd, hd = m->hp.head_dim, qd = m->hp.n_head * hd, kvd = m->hp.n_head_kv * hd, \
            ff = m->hp.n_ff, R = g->rows; (void)L; (void)d; (void)R; (void)qd; (void)kvd; (void)ff; (void)hd
#define FOR_SEQ for (int j_ = g->s0; j_ < g->s0 + g->ns; j_++)

        /* llama: RoPE is done by the KV write; when the backend says they pay
         * at this many rows, the RMS norms are read by the GEMMs after them and
         * the activation by the down projection */
        int max_rows = 0, tot_rows = 0;
        FOR_SEG {
            if (S[act[i_]].rows > max_rows) max_rows = S[act[i_]].rows;
            tot_rows += S[act[i_]].rows;
        }
        /* one-row segments, however many, or a launch of at most
         * xf_rows_max rows in all */
        const int fuse_xf = ex->fuse && (max_rows <= 1 ? ex->be->xf_rows_max >= 1 : tot_rows <= ex->be->xf_rows_max);
        const int fuse_rope = ex->fuse && t == SH_TMPL_LLAMA;
        const int fuse = fuse_xf && t == SH_TMPL_LLAMA;
        /* gpt2: the LayerNorms read by the QKV and up GEMMs' LN transform */
        const int fuse_ln = fuse_xf && t == SH_TMPL_GPT2 && ex->be->xf_ln;
        const int fused_norms = fuse || fuse_ln;
        /* norms as the row norms of the o and down GEMMs; a layer that reads
         * x through the QKV GEMMs' x transform needs none (fuse holds for the
         * later layers too: they have a subset of the rows) */
        const int norm_epi = ex->fuse_norm && !fused_norms;
        const sh_norm_kind nk = t == SH_TMPL_LLAMA ? SH_NORM_RMS : SH_NORM_LAYER;
        /* pre-attention norm (llama, gpt2), unless the previous down GEMM did it */
        if (t != SH_TMPL_BERT && !fused_norms && !(norm_epi && l > 0)) {
            n = 0;
            FOR_SEG {
                SEGV;
                ng[n++] = (sh_norm_group){V(A, g->x, R, d, d), NOVIEW, L->attn_norm, L->attn_norm_b, m->hp.eps,
                                          t == SH_TMPL_GPT2 ? SH_NORM_LAYER : SH_NORM_RMS, V(A, g->xn, R, d, d)};
            }
            SH_TRY(sh_be_norm(ex->be, n, ng));
        }
        /* QKV projections: every model's q, k and v in one call */
        n = 0;
        FOR_SEG {
            SEGV;
            size_t in = t == SH_TMPL_BERT || fuse_ln ? g->x : g->xn;
            const sh_gemm_xf lxf = fuse_ln ? SH_XF_LN : SH_XF_NONE;
            const float *lgam = fuse_ln ? L->attn_norm : NULL, *qkv_beta = fuse_ln ? L->attn_norm_b : NULL;
            if (t == SH_TMPL_GPT2 && qkv_epi(ex, t, m)) {
                /* q, k and v as three groups, k and v also stored to the pool */
                for (int j = 0; j < 3; j++) {
                    gg[n + j] = GG(wrows(L->wqkv, j * d, d), L->bqkv ? L->bqkv + j * d : NULL, V(A, in, R, d, d),
                                   V(A, g->q + j * d, R, d, 3 * d), 0, lxf, lgam, m->hp.eps);
                    gg[n + j].xf_beta = qkv_beta;
                }
                qkv_kv_store(&gg[n], I + off_slot + g->row0, kvref(ex, m, &Q[g->s0], l));
                n += 3;
            } else if (t == SH_TMPL_GPT2) {
                gg[n] = GG(L->wqkv, L->bqkv, V(A, in, R, d, d), V(A, g->q, R, 3 * d, 3 * d), 0, lxf, lgam, m->hp.eps);
                gg[n++].xf_beta = qkv_beta;
            } else {
                const sh_view x = fuse ? V(A, g->x, R, d, d) : V(A, in, R, d, d);
                const sh_gemm_xf xf = fuse ? SH_XF_RMS : SH_XF_NONE;
                const int q0 = n;
                gg[n++] = GG(L->wq, L->bq, x, V(A, g->q, R, qd, qd), 0, xf, L->attn_norm, m->hp.eps);
                gg[n++] = GG(L->wk, L->bk, x, V(A, g->k, R, kvd, kvd), 0, xf, L->attn_norm, m->hp.eps);
                gg[n++] = GG(L->wv, L->bv, x, V(A, g->v, R, kvd, kvd), 0, xf, L->attn_norm, m->hp.eps);
                if (qkv_epi(ex, t, m)) {
                    /* RoPE on q and k and the KV write as the GEMM's epilogue */
                    const sh_rope_params rp = {hd, m->hp.n_rot, m->hp.rope_theta, m->hp.rope_mode};
                    const int32_t *pos = I + off_pos + g->row0;
                    for (int j = 0; j < 3; j++) {
                        gg[q0 + j].epi = j < 2 ? SH_EPI_ROPE : SH_EPI_NONE;
                        gg[q0 + j].rope = rp;
                        gg[q0 + j].pos = pos;
                    }
                    qkv_kv_store(&gg[q0], I + off_slot + g->row0, kvref(ex, m, &Q[g->s0], l));
                }
            }
        }
        SH_TRY(sh_be_gemm(ex->be, n, gg));
        /* RoPE on q and k */
        if (t == SH_TMPL_LLAMA && !fuse_rope) {
            n = 0;
            FOR_SEG {
                SEGV;
                const int32_t *pos = I + off_pos + g->row0;
                rg[n++] = (sh_rope_group){V(A, g->q, R, qd, qd), m->hp.n_head, hd, m->hp.n_rot, pos,
                                          m->hp.rope_theta, m->hp.rope_mode};
                rg[n++] = (sh_rope_group){V(A, g->k, R, kvd, kvd), m->hp.n_head_kv, hd, m->hp.n_rot, pos,
                                          m->hp.rope_theta, m->hp.rope_mode};
            }
            SH_TRY(sh_be_rope(ex->be, n, rg));
        }
        /* K, V -> paged pool, one group per sequence (unless the QKV GEMM wrote them) */
        n = 0;
        FOR_SEG {
            SEGV;
            if (qkv_epi(ex, t, m)) continue;
            FOR_SEQ {
                const sseq *q = &Q[j_];
                int r = q->row, nr = q->in->n_tokens;
                sh_view kv_k, kv_v;
                if (t == SH_TMPL_GPT2) {
                    kv_k = V(A, g->q + (size_t)r * 3 * d + d, nr, d, 3 * d);
                    kv_v = V(A, g->q + (size_t)r * 3 * d + 2 * d, nr, d, 3 * d);
                } else {
                    kv_k = V(A, g->k + (size_t)r * kvd, nr, kvd, kvd);
                    kv_v = V(A, g->v + (size_t)r * kvd, nr, kvd, kvd);
                }
                kg[n] = (sh_kv_write_group){.k = kv_k, .v = kv_v, .pos = I + off_pos + g->row0 + r, .kv = kvref(ex, m, q, l)};
                if (fuse_rope) {
                    kg[n].rope = (sh_rope_params){hd, m->hp.n_rot, m->hp.rope_theta, m->hp.rope_mode};
                    kg[n].q = V(A, g->q + (size_t)r * qd, nr, qd, qd);
                    kg[n].n_head = m->hp.n_head;
                }
                n++;
            }
        }
        SH_TRY(sh_be_kv_write(ex->be, n, kg));
        /* attention, one group per sequence */
        n = 0;
        FOR_SEG {
            SEGV;
            FOR_SEQ {
                const sseq *q = &Q[j_];
                int r = q->row, nr = q->in->n_tokens, p0 = q->in->seq->n_past;
                sh_view qv = t == SH_TMPL_GPT2 ? V(A, g->q + (size_t)r * 3 * d, nr, d, 3 * d)
                                               : V(A, g->q + (size_t)r * qd, nr, qd, qd);
                ag[n++] = (sh_attn_group){qv, V(A, g->att + (size_t)r * qd, nr, qd, qd), m->hp.n_head,
                                          m->hp.n_head_kv, hd, 1.0f / sqrtf((float)hd), p0, p0 + nr,
                                          t != SH_TMPL_BERT, kvref(ex, m, q, l)};
            }
        }
        SH_TRY(sh_be_attn(ex->be, n, ag));
        /* output projection, added onto the residual stream */
        n = 0;
        FOR_SEG {
            SEGV;
            gg[n] = GG(L->wo, L->bo, V(A, g->att, R, qd, qd), V(A, g->x, R, d, d), 1, SH_XF_NONE, NULL, 0.0f);
            if (norm_epi) {
                /* the norm below, done by this GEMM */
                if (t == SH_TMPL_BERT)
                    gg_norm(&gg[n], V(A, g->x, R, d, d), L->attn_out_norm, L->attn_out_norm_b, m->hp.eps, nk);
                else
                    gg_norm(&gg[n], V(A, g->xn, R, d, d), L->ffn_norm, L->ffn_norm_b, m->hp.eps, nk);
            }
            n++;
        }
        SH_TRY(sh_be_gemm(ex->be, n, gg));
        /* norm before the FFN (pre-norm), or post-attention LN (bert) */
        n = 0;
        if (!fused_norms && !norm_epi) FOR_SEG {
            SEGV;
            sh_view x = V(A, g->x, R, d, d);
            if (t == SH_TMPL_BERT)
                ng[n++] = (sh_norm_group){x, NOVIEW, L->attn_out_norm, L->attn_out_norm_b, m->hp.eps,
                                          SH_NORM_LAYER, x};
            else
                ng[n++] = (sh_norm_group){x, NOVIEW, L->ffn_norm, L->ffn_norm_b, m->hp.eps,
                                          t == SH_TMPL_GPT2 ? SH_NORM_LAYER : SH_NORM_RMS, V(A, g->xn, R, d, d)};
        }
        if (n) SH_TRY(sh_be_norm(ex->be, n, ng));
        /* FFN up (and gate), with the activation as the GEMM's epilogue when
         * fusing: one group per model computes silu(gate) * up or gelu(up) */
        const int fuse_epi = ex->fuse_epi;
        const sh_act_kind ak = t == SH_TMPL_LLAMA ? SH_ACT_SILU_MUL : t == SH_TMPL_GPT2 ? SH_ACT_GELU_TANH : SH_ACT_GELU_ERF;
        n = 0;
        FOR_SEG {
            SEGV;
            size_t in = t == SH_TMPL_BERT || fused_norms ? g->x : g->xn;
            const sh_gemm_xf xf = fuse ? SH_XF_RMS : fuse_ln ? SH_XF_LN : SH_XF_NONE;
            const float *up_beta = fuse_ln ? L->ffn_norm_b : NULL;
            const sh_view x = V(A, in, R, d, d);
            if (fuse_epi) {
                if (t == SH_TMPL_LLAMA) {
                    gg[n] = GG(L->w_gate, NULL, x, V(A, g->fa, R, ff, ff), 0, xf, L->ffn_norm, m->hp.eps);
                    gg[n].epi = SH_EPI_SILU_PAIR;
                    gg[n].w2 = L->w_up;
                    gg[n].bias2 = L->b_up;
                } else {
                    gg[n] = GG(L->w_up, L->b_up, x, V(A, g->fa, R, ff, ff), 0, xf, L->ffn_norm, m->hp.eps);
                    gg[n].epi = ak == SH_ACT_GELU_TANH ? SH_EPI_GELU_TANH : SH_EPI_GELU_ERF;
                    gg[n].xf_beta = up_beta;
                }
                n++;
                continue;
            }
            if (t == SH_TMPL_LLAMA)
                gg[n++] = GG(L->w_gate, NULL, x, V(A, g->fa, R, ff, ff), 0, xf, L->ffn_norm, m->hp.eps);
            gg[n] = GG(L->w_up, L->b_up, x, V(A, t == SH_TMPL_LLAMA ? g->fb : g->fa, R, ff, ff), 0, xf, L->ffn_norm, m->hp.eps);
            gg[n++].xf_beta = up_beta;
        }
        SH_TRY(sh_be_gemm(ex->be, n, gg));
        /* the activation: done above, its own call, or read by the down projection */
        const int fuse_act = fuse_xf && !fuse_epi;
        n = 0;
        if (!fuse_act && !fuse_epi) FOR_SEG {
            SEGV;
            sh_view fa = V(A, g->fa, R, ff, ff);
            cg[n++] = (sh_act_group){fa, t == SH_TMPL_LLAMA ? V(A, g->fb, R, ff, ff) : NOVIEW, fa, ak};
        }
        if (n) SH_TRY(sh_be_act(ex->be, n, cg));
        n = 0;
        FOR_SEG {
            SEGV;
            gg[n] = GG(L->w_down, L->b_down, V(A, g->fa, R, ff, ff), V(A, g->x, R, d, d), 1, SH_XF_NONE, NULL, 0.0f);
            if (fuse_act) {
                gg[n].xf = t == SH_TMPL_LLAMA ? SH_XF_SILU_MUL : t == SH_TMPL_GPT2 ? SH_XF_GELU_TANH : SH_XF_GELU_ERF;
                if (t == SH_TMPL_LLAMA) gg[n].x2 = V(A, g->fb, R, ff, ff);
            }
            if (norm_epi) {
                /* bert's output LN, or the next layer's pre-attention norm
                 * (the last layer's final norm reads only the logit rows) */
                if (t == SH_TMPL_BERT) {
                    gg_norm(&gg[n], V(A, g->x, R, d, d), L->out_norm, L->out_norm_b, m->hp.eps, nk);
                } else if (l + 1 < m->hp.n_layer) {
                    const sh_layer *L1 = &m->layers[l + 1];
                    gg_norm(&gg[n], V(A, g->xn, R, d, d), L1->attn_norm, L1->attn_norm_b, m->hp.eps, nk);
                }
            }
            n++;
        }
        SH_TRY(sh_be_gemm(ex->be, n, gg));
        if (t == SH_TMPL_BERT && !norm_epi) {
            n = 0;
            FOR_SEG {
                SEGV;
                sh_view x = V(A, g->x, R, d, d);
                ng[n++] = (sh_norm_group){x, NOVIEW, L->out_norm, L->out_norm_b, m->hp.eps, SH_NORM_LAYER, x};
            }
            SH_TRY(sh_be_norm(ex->be, n, ng));
        }
#undef FOR_SEG
#undef SEGV
#undef FOR_SEQ
        /* step chunks: the first after ex->chunk0 layers, then every
         * ex->chunk layers, so the device runs while the host packs the rest */
        const int done = l + 1;
        if (ex->chunk > 0 && !ex->chained && done < max_layers &&
            (done == ex->chunk0 || (done > ex->chunk0 && (done - ex->chunk0) % ex->chunk == 0)))
            SH_TRY(sh_be_step_flush(ex->be));
    }

    /* ---- heads ---- */
    if (t == SH_TMPL_BERT) {
        sh_pool_group *pg = ex->groups;
        n = 0;
        for (int i = 0; i < nseg; i++) {
            const seg *g = &S[segidx[i]];
            int d = g->m->hp.n_embd;
            for (int j = g->s0; j < g->s0 + g->ns; j++)
                if (Q[j].in->embedding)
                    pg[n++] = (sh_pool_group){V(A, g->x + (size_t)Q[j].row * d, Q[j].in->n_tokens, d, d),
                                              A + Q[j].pool, 1};
        }
        if (n) SH_TRY(sh_be_pool(ex->be, n, pg));
        return SHOAL_OK;
    }
    /* final norm of the rows that need logits, gathered into xl */
    n = 0;
    for (int i = 0; i < nseg; i++) {
        const seg *g = &S[segidx[i]];
        const shoal_model *m = g->m;
        int d = m->hp.n_embd;
        for (int j = g->s0; j < g->s0 + g->ns; j++) {
            const sseq *q = &Q[j];
            if (!q->nl) continue;
            int r = q->row + q->in->n_tokens - q->nl;
            ng[n++] = (sh_norm_group){V(A, g->x + (size_t)r * d, q->nl, d, d), NOVIEW, m->out_norm, m->out_norm_b,
                                      m->hp.eps, t == SH_TMPL_GPT2 ? SH_NORM_LAYER : SH_NORM_RMS,
                                      V(A, g->xl + (size_t)q->lrow * d, q->nl, d, d)};
        }
    }
    if (n) SH_TRY(sh_be_norm(ex->be, n, ng));
    /* LM head: one group per model over its gathered rows */
    n = 0;
    for (int i = 0; i < nseg; i++) {
        const seg *g = &S[segidx[i]];
        if (!g->lrows) continue;
        int d = g->m->hp.n_embd, nv = g->m->hp.n_vocab;
        gg[n++] = GG(g->m->output, NULL, V(A, g->xl, g->lrows, d, d), V(A, g->lg, g->lrows, nv, nv), 0, SH_XF_NONE, NULL, 0.0f);
    }
    if (n) SH_TRY(sh_be_gemm(ex->be, n, gg));
    return SHOAL_OK;
}

static int cmp_seq_model(const void *a, const void *b) {
    /* stable by construction: ties broken by original index */
    const sseq *x = a, *y = b;
    if (x->seg != y->seg) return x->seg < y->seg ? -1 : 1;
    return x->in < y->in ? -1 : x->in > y->in;
}

/* Whether n sequences can run as a launch chained to the last one: that
 * launch is in flight with ids coming by ticket, and every sequence here is
 * one of its (in its order, any of them left out) with a row and an id
 * there and here. map (n, or NULL): each one's id offset in the ints. */
static int chain_match(const sh_exec *ex, int n, const sh_step_seq *seqs, int *map) {
    if (ex->n_fl < 1 || ex->n_fl >= 2) return 0;
    const struct flight *f = &ex->fl[ex->n_fl - 1];
    if (!f->async || n > f->n) return 0;
    int j = 0;
    for (int i = 0; i < n; i++) {
        const sh_step_seq *s = &seqs[i];
        if (s->n_tokens != 1 || s->out != SH_OUT_LAST || !s->next || s->logits || s->model->hp.tmpl == SH_TMPL_BERT)
            return 0;
        while (j < f->n && f->seq[j] != s->seq) j++;
        if (j == f->n || f->cnt[j] != 1) return 0;
        if (map) map[i] = f->off[j];
        j++;
    }
    return 1;
}

static shoal_status fl_reserve(struct flight *f, int n) {
    if (n <= f->cap) return SHOAL_OK;
    int nc = f->cap ? f->cap : 16;
    while (nc < n) nc *= 2;
    int32_t **d = realloc(f->dst, (size_t)nc * sizeof *d);
    if (d) f->dst = d;
    int *o = realloc(f->off, (size_t)nc * sizeof *o);
    if (o) f->off = o;
    int *c = realloc(f->cnt, (size_t)nc * sizeof *c);
    if (c) f->cnt = c;
    const sh_seq **q = realloc(f->seq, (size_t)nc * sizeof *q);
    if (q) f->seq = q;
    if (!d || !o || !c || !q) return sh_fail(SHOAL_ERR_NOMEM, "out of memory");
    f->cap = nc;
    return SHOAL_OK;
}

int sh_exec_in_flight(const sh_exec *ex) { return ex ? ex->n_fl : 0; }

int sh_exec_can_chain(const sh_exec *ex, int n, const sh_step_seq *seqs) {
    if (!ex || n < 1 || !seqs || !chain_match(ex, n, seqs, NULL)) return 0;
    /* the ints must not move (they hold the ids the chained launch reads) */
    size_t n_bt = 0, need_blocks = 0;
    for (int i = 0; i < n; i++) {
        const sh_seq *q = seqs[i].seq;
        int nb = sh_kv_blocks_for(q->n_past + 1);
        if (nb < q->n_blocks) nb = q->n_blocks;
        n_bt += (size_t)nb;
        need_blocks += (size_t)(nb - q->n_blocks);
        if ((int64_t)q->n_past + 1 > seqs[i].model->hp.n_ctx) return 0;
    }
    if (need_blocks > (size_t)ex->pool->n_free) return 0;
    const size_t lr = (size_t)ex->fl[ex->n_fl - 1].lrows; /* the ids read, before what is uploaded */
    return (lr > (size_t)n ? lr : (size_t)n) + 4 * (size_t)n + n_bt <= ex->ints_cap;
}

shoal_status sh_exec_step(sh_exec *ex, int n, sh_step_seq *seqs) {
    if (ex && ex->n_fl) return sh_fail(SHOAL_ERR_INVALID_ARG, "sh_exec_step: a launched step is not finished");
    SH_TRY(sh_exec_launch(ex, n, seqs, 0));
    return n > 0 ? sh_exec_finish(ex) : SHOAL_OK;
}

shoal_status sh_exec_launch(sh_exec *ex, int n, sh_step_seq *seqs, int chain) {
    if (!ex || n < 0 || (n > 0 && !seqs)) return sh_fail(SHOAL_ERR_INVALID_ARG, "sh_exec_launch: bad arguments");
    if (n == 0) return SHOAL_OK;
    if (ex->n_fl >= 2) return sh_fail(SHOAL_ERR_INVALID_ARG, "sh_exec_launch: two steps are in flight already");
    /* a chained launch: each sequence's token offset, from the step in flight (caller's order) */
    if (chain) SH_TRY(grow_host((void **)&ex->map, &ex->map_cap, (size_t)n, sizeof(int)));
    if (chain && !chain_match(ex, n, seqs, ex->map))
        return sh_fail(SHOAL_ERR_INVALID_ARG, "sh_exec_launch: a chained step must run sequences of the step in "
                                              "flight, in its order, one row and one id each");
    const int prev_lrows = chain ? ex->fl[ex->n_fl - 1].lrows : 0;
    /* ---- validate, and order by model (segments in first-appearance order) ---- */
    if (n > ex->cap_ss) {
        sseq *ns = realloc(ex->ss, (size_t)n * sizeof *ns);
        if (!ns) return sh_fail(SHOAL_ERR_NOMEM, "out of memory");
        ex->ss = ns;
        ex->cap_ss = n;
    }
    if (n > ex->cap_segs) {
        seg *ng = realloc(ex->segs, (size_t)n * sizeof *ng);
        if (!ng) return sh_fail(SHOAL_ERR_NOMEM, "out of memory");
        ex->segs = ng;
        ex->cap_segs = n;
    }
    int nseg = 0, need_blocks_total = 0;
    for (int i = 0; i < n; i++) {
        sh_step_seq *s = &seqs[i];
        if (!s->model || !s->seq || (!s->tokens && !chain) || s->n_tokens < 1)
            return sh_fail(SHOAL_ERR_INVALID_ARG, "step: sequence %d has no model, KV state or tokens", i);
        const sh_hparams *hp = &s->model->hp;
        if (s->model->be != ex->be)
            return sh_fail(SHOAL_ERR_INVALID_ARG, "step: sequence %d's model lives on another device", i);
        if (sh_model_kv_block_bytes(s->model, ex->pool->dtype) > ex->pool->block_bytes)
            return sh_fail(SHOAL_ERR_INVALID_ARG, "step: the KV pool's blocks are too small for sequence %d's model", i);
        if (hp->tmpl == SH_TMPL_BERT && s->seq->n_past != 0)
            return sh_fail(SHOAL_ERR_INVALID_ARG, "step: encoder sequences run whole (n_past must be 0)");
        if ((int64_t)s->seq->n_past + s->n_tokens > hp->n_ctx)
            return sh_fail(SHOAL_ERR_RANGE, "step: %d + %d positions exceed the model's context of %d",
                           s->seq->n_past, s->n_tokens, hp->n_ctx);
        for (int k = 0; !chain && k < s->n_tokens; k++) {
            if (s->tokens[k] < 0 || s->tokens[k] >= hp->n_vocab)
                return sh_fail(SHOAL_ERR_INVALID_ARG, "step: token id %d at %d is outside the vocabulary (%d)",
                               s->tokens[k], k, hp->n_vocab);
            if (hp->tmpl == SH_TMPL_BERT && s->types && (s->types[k] < 0 || s->types[k] >= hp->n_type))
                return sh_fail(SHOAL_ERR_INVALID_ARG, "step: token type %d is out of range", s->types[k]);
        }
        if (hp->tmpl != SH_TMPL_BERT && s->out != SH_OUT_NONE && !s->logits && !s->next)
            return sh_fail(SHOAL_ERR_INVALID_ARG, "step: sequence %d wants logits but has no buffer", i);
        if (s->sample && !s->next)
            return sh_fail(SHOAL_ERR_INVALID_ARG, "step: sequence %d has sampling parameters but no next buffer", i);
        int sg = -1;
        for (int k = 0; k < nseg; k++)
            if (ex->segs[k].m == s->model) sg = k;
        if (sg < 0) {
            sg = nseg++;
            memset(&ex->segs[sg], 0, sizeof ex->segs[sg]);
            ex->segs[sg].m = s->model;
        }
        ex->ss[i] = (sseq){.in = s, .seg = sg};
        int need = sh_kv_blocks_for(s->seq->n_past + s->n_tokens) - s->seq->n_blocks;
        if (need > 0) need_blocks_total += need;
    }
    if (need_blocks_total > ex->pool->n_free)
        return sh_fail(SHOAL_ERR_RANGE, "KV cache exhausted: the step needs %d more blocks, %d of %d free",
                       need_blocks_total, ex->pool->n_free, ex->pool->n_blocks);
    for (int i = 0; i < n; i++)
        SH_TRY(sh_seq_reserve(ex->pool, seqs[i].seq, seqs[i].seq->n_past + seqs[i].n_tokens));
    qsort(ex->ss, (size_t)n, sizeof *ex->ss, cmp_seq_model);

    /* ---- layout: rows, arena offsets, staging ---- */
    size_t fl = 0; /* arena floats */
    int rows = 0;
    size_t n_bt = 0;
    for (int i = 0; i < n; i++) {
        sseq *q = &ex->ss[i];
        seg *g = &ex->segs[q->seg];
        if (g->ns == 0) g->s0 = i;
        g->ns++;
        q->row = g->rows;
        g->rows += q->in->n_tokens;
        q->nl = g->m->hp.tmpl == SH_TMPL_BERT ? 0
              : q->in->out == SH_OUT_ALL      ? q->in->n_tokens
              : q->in->out == SH_OUT_LAST     ? 1
                                              : 0;
        q->lrow = g->lrows;
        g->lrows += q->nl;
        q->bt = n_bt;
        n_bt += (size_t)q->in->seq->n_blocks;
    }
    for (int k = 0; k < nseg; k++) {
        seg *g = &ex->segs[k];
        const sh_hparams *hp = &g->m->hp;
        size_t R = (size_t)g->rows, d = (size_t)hp->n_embd, qd = (size_t)hp->n_head * hp->head_dim,
               kvd = (size_t)hp->n_head_kv * hp->head_dim, ff = (size_t)hp->n_ff;
        g->row0 = rows;
        rows += g->rows;
        g->x = fl, fl += al64(R * d);
        g->xn = fl, fl += al64(R * d);
        g->q = fl, fl += al64(R * (hp->tmpl == SH_TMPL_GPT2 ? 3 * d : qd));
        g->k = fl, fl += al64(R * kvd);
        g->v = fl, fl += al64(R * kvd);
        g->att = fl, fl += al64(R * qd);
        g->fa = fl, fl += al64(R * ff);
        g->fb = fl, fl += al64(R * ff);
        g->xl = fl, fl += al64((size_t)g->lrows * d);
        g->lg = fl, fl += al64((size_t)g->lrows * (size_t)hp->n_vocab);
    }
    for (int i = 0; i < n; i++) {
        sseq *q = &ex->ss[i];
        if (ex->segs[q->seg].m->hp.tmpl == SH_TMPL_BERT) {
            q->pool = fl;
            fl += al64((size_t)ex->segs[q->seg].m->hp.n_embd);
        }
    }
    /* Sequences that want only ids get them from one device call: sample
     * when any of them samples (greedy rows ride along at temperature 0),
     * else argmax. The others download their logits rows. */
    int lrows_all = 0, n_dev = 0, any_sample = 0;
    const int has_argmax = ex->be->ops->argmax != NULL;
    for (int k = 0; k < nseg; k++) {
        ex->segs[k].lbase = lrows_all;
        lrows_all += ex->segs[k].lrows;
    }
    for (int i = 0; i < n; i++) {
        sseq *q = &ex->ss[i];
        const sh_step_seq *s = q->in;
        q->dev = q->nl && !s->logits && s->next && (s->sample ? ex->dev_sample : has_argmax || ex->dev_sample);
        n_dev += q->dev;
        any_sample |= q->dev && s->sample;
    }
    const int dev_call_sample = n_dev && (any_sample || !has_argmax);
    /* ints: the ids first (a chained launch reads them where the launch
     * before it left them), then what the host uploads */
    size_t off_am = 0, off_tok = (size_t)(lrows_all > prev_lrows ? lrows_all : prev_lrows);
    size_t off_pos = off_tok + (size_t)rows, off_typ = off_pos + (size_t)rows;
    size_t off_bt = off_typ + (size_t)rows;
    size_t off_slot = off_bt + n_bt; /* each row's KV pool slot (block * SH_KV_BLOCK + offset) */
    size_t n_ints = off_slot + (size_t)rows;
    for (int i = 0; i < n; i++) ex->ss[i].bt += off_bt;
    if (chain && (n_dev != n || lrows_all != n || n_ints > ex->ints_cap || fl > ex->arena_cap))
        return sh_fail(SHOAL_ERR_INVALID_ARG, "sh_exec_launch: this step cannot be chained (sh_exec_can_chain)");
    for (int i = 0; chain && i < n; i++) ex->ss[i].tok_at = ex->map[ex->ss[i].in - seqs];
    SH_TRY(grow_dev(ex->be, (void **)&ex->arena, &ex->arena_cap, fl, sizeof(float)));
    /* room for a chained step's new blocks (one a sequence) */
    SH_TRY(grow_dev(ex->be, (void **)&ex->ints, &ex->ints_cap, n_ints + (size_t)n, sizeof(int32_t)));
    SH_TRY(grow_host((void **)&ex->h_ints, &ex->h_ints_cap, n_ints, sizeof(int32_t)));
    for (int i = 0; i < n; i++) {
        const sseq *q = &ex->ss[i];
        const sh_step_seq *s = q->in;
        int r0 = ex->segs[q->seg].row0 + q->row;
        for (int k = 0; k < s->n_tokens; k++) {
            ex->h_ints[off_tok + r0 + k] = chain ? 0 : s->tokens[k];
            ex->h_ints[off_pos + r0 + k] = s->seq->n_past + k;
            ex->h_ints[off_typ + r0 + k] = s->types ? s->types[k] : 0;
            const int p = s->seq->n_past + k, b = p / SH_KV_BLOCK;
            ex->h_ints[off_slot + r0 + k] = b < s->seq->n_blocks && s->seq->blocks[b] >= 0
                                                ? s->seq->blocks[b] * SH_KV_BLOCK + p % SH_KV_BLOCK
                                                : -1;
        }
        memcpy(ex->h_ints + q->bt, s->seq->blocks, (size_t)s->seq->n_blocks * sizeof(int32_t));
    }

    uint64_t l0 = ex->be->n_launches, g0 = ex->be->n_groups;
    SH_TRY(sh_be_step_begin(ex->be));
    SH_TRY(sh_be_upload(ex->be, ex->ints + off_tok, ex->h_ints + off_tok, (n_ints - off_tok) * sizeof(int32_t)));
    /* ---- one walk per template present ---- */
    int idx[nseg];
    for (int t = 0; t < SH_TMPL_COUNT; t++) {
        int ns = 0;
        for (int k = 0; k < nseg; k++)
            if (ex->segs[k].m->hp.tmpl == (sh_template)t) idx[ns++] = k;
        if (ns) {
            ex->chained = chain;
            shoal_status st = run_template(ex, (sh_template)t, idx, ns, off_tok, off_pos, off_typ, off_slot);
            ex->chained = 0;
            SH_TRY(st);
        }
    }
    if (n_dev) {
        /* one group per run of consecutive device sequences of a model (one
         * per model when all of them are); ids land at off_am + lbase + lrow */
        size_t gsz = dev_call_sample ? sizeof(sh_sample_group) : sizeof(sh_argmax_group);
        SH_TRY(grow_host(&ex->groups, &ex->groups_cap, (size_t)n_dev * gsz, 1));
        if (dev_call_sample) SH_TRY(grow_host((void **)&ex->h_sp, &ex->h_sp_cap, (size_t)lrows_all, sizeof(sh_sample_params)));
        sh_argmax_group *am = ex->groups;
        sh_sample_group *sg = ex->groups;
        int na = 0;
        for (int k = 0; k < nseg; k++) {
            const seg *g = &ex->segs[k];
            int nv = g->m->hp.n_vocab;
            for (int j = g->s0; j < g->s0 + g->ns;) {
                if (!ex->ss[j].dev) {
                    j++;
                    continue;
                }
                int lrow0 = ex->ss[j].lrow, rows_run = 0;
                for (; j < g->s0 + g->ns && ex->ss[j].dev; j++) {
                    const sseq *q = &ex->ss[j];
                    for (int r = 0; dev_call_sample && r < q->nl; r++)
                        ex->h_sp[g->lbase + q->lrow + r] =
                            q->in->sample ? q->in->sample[r] : (sh_sample_params){0.0f, 0, 1.0f, 0.0f, 0.0};
                    rows_run += q->nl;
                }
                sh_view x = V(ex->arena, g->lg + (size_t)lrow0 * nv, rows_run, nv, nv);
                int32_t *o = ex->ints + off_am + g->lbase + lrow0;
                if (dev_call_sample) sg[na++] = (sh_sample_group){x, ex->h_sp + g->lbase + lrow0, o};
                else am[na++] = (sh_argmax_group){x, o};
            }
        }
        if (dev_call_sample) SH_TRY(sh_be_sample(ex->be, na, sg));
        else SH_TRY(sh_be_argmax(ex->be, na, am));
    }
    SH_TRY(sh_be_step_end(ex->be));

    /* ---- the flight record ---- */
    struct flight *f = &ex->fl[ex->n_fl];
    SH_TRY(fl_reserve(f, n));
    f->n = n;
    f->lrows = lrows_all;
    f->async = n_dev == n && lrows_all == n; /* only ids come back: no logits, hidden states or embeddings */
    f->ticket = -1;
    f->launches = ex->be->n_launches - l0;
    f->groups = ex->be->n_groups - g0;
    f->models = nseg;
    for (int i = 0; i < n; i++) f->seq[i] = seqs[i].seq;
    if (f->async) {
        /* ids only: queue their download and return; sh_exec_finish waits */
        SH_TRY(grow_host((void **)&f->ids, &f->ids_cap, (size_t)lrows_all, sizeof(int32_t)));
        for (int i = 0; i < n; i++) {
            const sseq *q = &ex->ss[i];
            const size_t k = (size_t)(q->in - seqs); /* the caller's index */
            f->dst[k] = q->in->next;
            f->off[k] = ex->segs[q->seg].lbase + q->lrow;
            f->cnt[k] = q->nl;
        }
        SH_TRY(sh_be_download_async(ex->be, f->ids, ex->ints + off_am, (size_t)lrows_all * sizeof(int32_t), &f->ticket));
        for (int i = 0; i < n; i++) seqs[i].seq->n_past += seqs[i].n_tokens;
        ex->stats.rows += (uint64_t)rows;
        ex->n_fl++;
        return SHOAL_OK;
    }

    /* ---- results back to the host (everything else: now) ---- */
    if (n_dev)
        SH_TRY(sh_be_download(ex->be, ex->h_ints + off_am, ex->ints + off_am, (size_t)lrows_all * sizeof(int32_t)));
    for (int k = 0; k < nseg; k++) {
        const seg *g = &ex->segs[k];
        const sh_hparams *hp = &g->m->hp;
        const size_t nv = (size_t)hp->n_vocab;
        for (int j = g->s0; j < g->s0 + g->ns;) {
            const sseq *q = &ex->ss[j];
            if (q->dev) {
                memcpy(q->in->next, ex->h_ints + off_am + g->lbase + q->lrow, (size_t)q->nl * sizeof(int32_t));
                j++;
                continue;
            }
            if (!q->nl) {
                j++;
                continue;
            }
            /* a run of consecutive sequences that need logits rows: one download */
            int j1 = j, lrow0 = q->lrow, rows_run = 0;
            for (; j1 < g->s0 + g->ns && !ex->ss[j1].dev; j1++) rows_run += ex->ss[j1].nl;
            size_t cnt = (size_t)rows_run * nv;
            SH_TRY(grow_host((void **)&ex->h_floats, &ex->h_floats_cap, cnt, sizeof(float)));
            SH_TRY(sh_be_download(ex->be, ex->h_floats, ex->arena + g->lg + (size_t)lrow0 * nv, cnt * sizeof(float)));
            for (; j < j1; j++) {
                q = &ex->ss[j];
                float *src = ex->h_floats + (size_t)(q->lrow - lrow0) * nv;
                if (q->nl && q->in->logits) memcpy(q->in->logits, src, (size_t)q->nl * nv * sizeof(float));
                for (int r = 0; q->in->next && r < q->nl; r++) {
                    float *row = src + (size_t)r * nv;
                    if (q->in->sample) {
                        q->in->next[r] = sh_sample_row(row, hp->n_vocab, &q->in->sample[r]);
                        continue;
                    }
                    int32_t b = 0;
                    for (int c = 1; c < hp->n_vocab; c++)
                        if (row[c] > row[b]) b = c;
                    q->in->next[r] = b;
                }
            }
        }
        if (hp->tmpl == SH_TMPL_BERT) {
            for (int j = g->s0; j < g->s0 + g->ns; j++) {
                const sseq *q = &ex->ss[j];
                size_t d = (size_t)hp->n_embd;
                if (q->in->hidden)
                    SH_TRY(sh_be_download(ex->be, q->in->hidden, ex->arena + g->x + (size_t)q->row * d,
                                          (size_t)q->in->n_tokens * d * sizeof(float)));
                if (q->in->embedding)
                    SH_TRY(sh_be_download(ex->be, q->in->embedding, ex->arena + q->pool, d * sizeof(float)));
            }
        }
    }
    SH_TRY(sh_be_sync(ex->be));
    for (int i = 0; i < n; i++) seqs[i].seq->n_past += seqs[i].n_tokens;
    ex->stats.rows += (uint64_t)rows;
    ex->n_fl++;
    return SHOAL_OK;
}

shoal_status sh_exec_finish(sh_exec *ex) {
    if (!ex) return sh_fail(SHOAL_ERR_INVALID_ARG, "sh_exec_finish: exec is NULL");
    if (!ex->n_fl) return sh_fail(SHOAL_ERR_INVALID_ARG, "sh_exec_finish: no step in flight");
    struct flight *f = &ex->fl[0];
    shoal_status s = SHOAL_OK;
    if (f->async) {
        s = sh_be_wait_download(ex->be, f->ticket);
        for (int i = 0; s == SHOAL_OK && i < f->n; i++)
            memcpy(f->dst[i], f->ids + f->off[i], (size_t)f->cnt[i] * sizeof(int32_t));
    }
    ex->stats.steps++;
    ex->stats.last_launches = f->launches;
    ex->stats.last_groups = f->groups;
    ex->stats.launches += f->launches;
    ex->stats.groups += f->groups;
    ex->stats.last_models = f->models;
    /* the next oldest moves to the front (its buffers swap in) */
    struct flight t = ex->fl[0];
    ex->fl[0] = ex->fl[1];
    ex->fl[1] = t;
    ex->n_fl--;
    return s;
}
