/* Synthetic models: the shapes of real small models with random weights, for
 * benchmarks and the README's default job. Nothing is read from disk. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "model.h"
#include "sample.h"

typedef struct shape {
    const char *name;
    sh_arch arch;
    int d, L, H, KV, ff, V, ctx;
    float theta;
} shape;

static const shape shapes[] = {
    {"tiny", SH_ARCH_LLAMA, 64, 2, 4, 2, 128, 512, 2048, 10000.0f},
    {"tiny-wide", SH_ARCH_LLAMA, 128, 3, 8, 2, 320, 512, 2048, 10000.0f},
    {"tiny-gpt2", SH_ARCH_GPT2, 64, 2, 4, 4, 256, 512, 1024, 0.0f},
    {"smollm-135m", SH_ARCH_LLAMA, 576, 30, 9, 3, 1536, 49152, 2048, 10000.0f},
    {"smollm-360m", SH_ARCH_LLAMA, 960, 32, 15, 5, 2560, 49152, 2048, 10000.0f},
    {"qwen2.5-0.5b", SH_ARCH_QWEN2, 896, 24, 14, 2, 4864, 151936, 4096, 1000000.0f},
    {"gpt2-124m", SH_ARCH_GPT2, 768, 12, 12, 12, 3072, 50257, 1024, 0.0f},
};

shoal_status sh_synthetic_hparams(const char *name, sh_hparams *hp) {
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const shape *s = &shapes[i];
        if (strcmp(s->name, name) != 0) continue;
        memset(hp, 0, sizeof *hp);
        hp->arch = s->arch;
        hp->tmpl = s->arch == SH_ARCH_GPT2 ? SH_TMPL_GPT2 : SH_TMPL_LLAMA;
        hp->n_layer = s->L;
        hp->n_embd = s->d;
        hp->n_head = s->H;
        hp->n_head_kv = s->KV;
        hp->head_dim = s->d / s->H;
        hp->n_ff = s->ff;
        hp->n_vocab = s->V;
        hp->n_ctx = s->ctx;
        hp->n_pos = s->arch == SH_ARCH_GPT2 ? s->ctx : 0;
        hp->eps = 1e-5f;
        hp->rope_theta = s->theta;
        hp->n_rot = hp->head_dim;
        hp->rope_mode = SH_ROPE_NEOX;
        hp->tied = 1;
        hp->bos_id = -1;
        hp->eos_id = -1;
        return SHOAL_OK;
    }
    return sh_fail(SHOAL_ERR_NOT_FOUND,
                   "unknown synthetic shape '%s' (tiny, tiny-wide, tiny-gpt2, smollm-135m, smollm-360m, qwen2.5-0.5b, "
                   "gpt2-124m)",
                   name);
}

/* Uniform values with standard deviation std. */
static void fill(float *x, size_t n, float std, sh_rng *r) {
    float a = std * 1.7320508f;
    for (size_t i = 0; i < n; i++) x[i] = (float)((sh_rng_uniform(r) * 2.0 - 1.0) * a);
}

static shoal_status mat(shoal_model *m, int n_out, int n_in, sh_dtype dt, sh_rng *r, sh_weight *w) {
    uint64_t rb = sh_dtype_row_bytes(dt, (uint64_t)n_in);
    if (!rb) return sh_fail(SHOAL_ERR_INVALID_ARG, "synthetic: row of %d does not fit dtype %s", n_in, sh_dtype_name(dt));
    size_t bytes = (size_t)rb * (size_t)n_out;
    void *host;
    SH_TRY(sh_model_host_alloc(m, bytes, &host));
    float *row = malloc((size_t)n_in * sizeof *row);
    if (!row) return sh_fail(SHOAL_ERR_NOMEM, "out of memory");
    float std = 1.0f / sqrtf((float)n_in);
    for (int o = 0; o < n_out; o++) {
        fill(row, (size_t)n_in, std, r);
        if (dt == SH_F32) memcpy((char *)host + (size_t)o * rb, row, rb);
        else sh_quantize_row(dt, row, (char *)host + (size_t)o * rb, n_in);
    }
    free(row);
    const void *dev;
    SH_TRY(sh_model_to_backend(m, host, bytes, &dev));
    *w = (sh_weight){dev, dt, n_out, n_in};
    m->n_params += (uint64_t)n_out * (uint64_t)n_in;
    m->n_bytes += bytes;
    return SHOAL_OK;
}

static shoal_status vec(shoal_model *m, int n, float value, const float **out) {
    float *host;
    SH_TRY(sh_model_host_alloc(m, (size_t)n * sizeof *host, (void **)&host));
    for (int i = 0; i < n; i++) host[i] = value;
    const void *dev;
    SH_TRY(sh_model_to_backend(m, host, (size_t)n * sizeof *host, &dev));
    *out = dev;
    m->n_params += (uint64_t)n;
    m->n_bytes += (uint64_t)n * sizeof *host;
    return SHOAL_OK;
}

static shoal_status build(shoal_model *m, sh_dtype dt, sh_rng *r) {
    const sh_hparams *hp = &m->hp;
    int d = hp->n_embd, qd = hp->n_head * hp->head_dim, kvd = hp->n_head_kv * hp->head_dim, ff = hp->n_ff;
    int gpt2 = hp->tmpl == SH_TMPL_GPT2;
    SH_TRY(mat(m, hp->n_vocab, d, dt, r, &m->tok_embd));
    m->output = m->tok_embd;
    if (gpt2) SH_TRY(mat(m, hp->n_pos, d, SH_F32, r, &m->pos_embd));
    SH_TRY(vec(m, d, 1.0f, &m->out_norm));
    if (gpt2) SH_TRY(vec(m, d, 0.0f, &m->out_norm_b));
    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers) return sh_fail(SHOAL_ERR_NOMEM, "out of memory");
    for (int l = 0; l < hp->n_layer; l++) {
        sh_layer *L = &m->layers[l];
        SH_TRY(vec(m, d, 1.0f, &L->attn_norm));
        SH_TRY(vec(m, d, 1.0f, &L->ffn_norm));
        if (gpt2) {
            SH_TRY(vec(m, d, 0.0f, &L->attn_norm_b));
            SH_TRY(vec(m, d, 0.0f, &L->ffn_norm_b));
            SH_TRY(mat(m, 3 * d, d, dt, r, &L->wqkv));
            SH_TRY(vec(m, 3 * d, 0.0f, &L->bqkv));
            SH_TRY(vec(m, d, 0.0f, &L->bo));
            SH_TRY(vec(m, ff, 0.0f, &L->b_up));
            SH_TRY(vec(m, d, 0.0f, &L->b_down));
        } else {
            SH_TRY(mat(m, qd, d, dt, r, &L->wq));
            SH_TRY(mat(m, kvd, d, dt, r, &L->wk));
            SH_TRY(mat(m, kvd, d, dt, r, &L->wv));
            SH_TRY(mat(m, ff, d, dt, r, &L->w_gate));
            if (hp->arch == SH_ARCH_QWEN2) {
                SH_TRY(vec(m, qd, 0.0f, &L->bq));
                SH_TRY(vec(m, kvd, 0.0f, &L->bk));
                SH_TRY(vec(m, kvd, 0.0f, &L->bv));
            }
        }
        SH_TRY(mat(m, d, qd, dt, r, &L->wo));
        SH_TRY(mat(m, ff, d, dt, r, &L->w_up));
        SH_TRY(mat(m, d, ff, dt, r, &L->w_down));
    }
    return SHOAL_OK;
}

shoal_status sh_model_synthetic(const char *shape_name, sh_dtype dt, uint64_t seed, sh_backend *be,
                                shoal_model **out) {
    if (!out) return sh_fail(SHOAL_ERR_INVALID_ARG, "synthetic: out is NULL");
    *out = NULL;
    if (!shape_name || !be) return sh_fail(SHOAL_ERR_INVALID_ARG, "synthetic: NULL argument");
    if (!sh_dtype_valid(dt)) return sh_fail(SHOAL_ERR_INVALID_ARG, "synthetic: bad dtype");
    shoal_model *m = calloc(1, sizeof *m);
    if (!m) return sh_fail(SHOAL_ERR_NOMEM, "out of memory");
    m->be = be;
    m->weight_dtype = dt;
    snprintf(m->path, sizeof m->path, "synthetic:%s:%s:%llu", shape_name, sh_dtype_name(dt),
             (unsigned long long)seed);
    shoal_status s = sh_synthetic_hparams(shape_name, &m->hp);
    if (s != SHOAL_OK) goto fail;
    sh_rng r;
    sh_rng_seed(&r, seed * 0x9E3779B97F4A7C15ull + 1);
    s = build(m, dt, &r);
    if (s != SHOAL_OK) goto fail;
    *out = m;
    return SHOAL_OK;
fail:
    sh_model_release(m);
    free(m);
    return s;
}

shoal_status sh_model_synthetic_spec(const char *spec, sh_backend *be, shoal_model **out) {
    char buf[128];
    snprintf(buf, sizeof buf, "%s", spec);
    char *shape_name = buf, *dts = NULL, *seeds = NULL;
    char *c = strchr(buf, ':');
    if (c) {
        *c = 0;
        dts = c + 1;
        c = strchr(dts, ':');
        if (c) {
            *c = 0;
            seeds = c + 1;
        }
    }
    int dt = dts ? sh_dtype_from_name(dts) : SH_F32;
    if (dt < 0) return sh_fail(SHOAL_ERR_INVALID_ARG, "synthetic: unknown dtype '%s'", dts);
    uint64_t seed = 0;
    if (seeds) {
        char *end;
        seed = strtoull(seeds, &end, 10);
        if (*end || !*seeds) return sh_fail(SHOAL_ERR_INVALID_ARG, "synthetic: bad seed '%s'", seeds);
    }
    return sh_model_synthetic(shape_name, (sh_dtype)dt, seed, be, out);
}
