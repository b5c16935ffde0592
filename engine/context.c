/* Contexts: one sequence with a private KV pool, run through the same fused
 * step as the scheduler (a batch of one). */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "kv.h"
#include "model.h"
#include "sample.h"
#include "step.h"

struct shoal_context {
    shoal_model *m;
    sh_kv_pool *pool;
    sh_exec *ex;
    sh_seq seq;
    int n_ctx;
    int32_t *history;  /* every id fed or generated, for the repetition penalty */
    int n_history, cap_history;
};

void shoal_context_params_init(shoal_context_params *p) {
    if (!p) return;
    memset(p, 0, sizeof *p);
}

shoal_status shoal_context_create(shoal_model *m, const shoal_context_params *params, shoal_context **out) {
    if (!out) return sh_fail(SHOAL_ERR_INVALID_ARG, "shoal_context_create: out is NULL");
    *out = NULL;
    if (!m) return sh_fail(SHOAL_ERR_INVALID_ARG, "shoal_context_create: model is NULL");
    shoal_context_params p;
    shoal_context_params_init(&p);
    if (params) p = *params;
    int n_ctx = p.n_ctx > 0 ? p.n_ctx : m->hp.n_ctx;
    if (n_ctx > m->hp.n_ctx) n_ctx = m->hp.n_ctx;
    if (p.n_ctx <= 0 && n_ctx > 4096) n_ctx = 4096;
    if (n_ctx < 1) return sh_fail(SHOAL_ERR_INVALID_ARG, "shoal_context_create: n_ctx must be positive");
    shoal_context *c = calloc(1, sizeof *c);
    if (!c) return sh_fail(SHOAL_ERR_NOMEM, "out of memory");
    c->m = m;
    c->n_ctx = n_ctx;
    shoal_status s = sh_kv_pool_create(m->be, SH_F32, sh_model_kv_block_bytes(m, SH_F32), sh_kv_blocks_for(n_ctx),
                                       &c->pool);
    if (s != SHOAL_OK) goto fail;
    s = sh_exec_create(m->be, c->pool, &c->ex);
    if (s != SHOAL_OK) goto fail;
    *out = c;
    return SHOAL_OK;
fail:
    shoal_context_free(c);
    return s;
}

void shoal_context_free(shoal_context *c) {
    if (!c) return;
    sh_seq_destroy(c->pool, &c->seq);
    sh_exec_free(c->ex);
    sh_kv_pool_free(c->pool);
    free(c->history);
    free(c);
}

void shoal_context_reset(shoal_context *c) {
    if (!c) return;
    sh_seq_release(c->pool, &c->seq);
    c->n_history = 0;
}

int shoal_context_n_past(const shoal_context *c) { return c ? c->seq.n_past : 0; }

static shoal_status remember(shoal_context *c, const int32_t *ids, int n) {
    if (c->n_history + n > c->cap_history) {
        int nc = c->cap_history ? c->cap_history : 256;
        while (nc < c->n_history + n) nc *= 2;
        int32_t *h = realloc(c->history, (size_t)nc * sizeof *h);
        if (!h) return sh_fail(SHOAL_ERR_NOMEM, "out of memory");
        c->history = h;
        c->cap_history = nc;
    }
    memcpy(c->history + c->n_history, ids, (size_t)n * sizeof *ids);
    c->n_history += n;
    return SHOAL_OK;
}

/* One step of n tokens. out: which rows give logits (into logits) and/or
 * their argmax (into next), or with sample (the last row only) its sampled
 * id; either buffer may be NULL. */
static shoal_status decode_step(shoal_context *c, const int32_t *tokens, int n, sh_out_mode out, float *logits,
                                int32_t *next, const sh_sample_params *sample) {
    if (c->seq.n_past + n > c->n_ctx)
        return sh_fail(SHOAL_ERR_RANGE, "%d tokens after %d exceed the context of %d positions", n, c->seq.n_past,
                       c->n_ctx);
    sh_step_seq s = {.model = c->m, .seq = &c->seq, .tokens = tokens, .n_tokens = n,
                     .out = (logits || next) ? out : SH_OUT_NONE, .logits = logits, .next = next,
                     .sample = sample};
    SH_TRY(sh_exec_step(c->ex, 1, &s));
    return remember(c, tokens, n);
}

shoal_status shoal_decode(shoal_context *c, const int32_t *tokens, int n, int all_logits, float *logits) {
    if (!c || !tokens || n < 1) return sh_fail(SHOAL_ERR_INVALID_ARG, "shoal_decode: need a context and tokens");
    if (c->m->hp.tmpl == SH_TMPL_BERT) {
        if (logits) return sh_fail(SHOAL_ERR_INVALID_ARG, "shoal_decode: encoders give no logits; use shoal_encode");
        return shoal_encode(c, tokens, n, NULL, NULL);
    }
    return decode_step(c, tokens, n, all_logits ? SH_OUT_ALL : SH_OUT_LAST, logits, NULL, NULL);
}

shoal_status shoal_encode(shoal_context *c, const int32_t *tokens, int n, float *hidden, float *embedding) {
    if (!c || !tokens || n < 1) return sh_fail(SHOAL_ERR_INVALID_ARG, "shoal_encode: need a context and tokens");
    if (c->m->hp.tmpl != SH_TMPL_BERT)
        return sh_fail(SHOAL_ERR_INVALID_ARG, "shoal_encode: %s is not an encoder", sh_arch_name(c->m->hp.arch));
    if (n > c->n_ctx)
        return sh_fail(SHOAL_ERR_RANGE, "%d tokens exceed the encoder's %d positions", n, c->n_ctx);
    sh_seq_release(c->pool, &c->seq);
    sh_step_seq s = {.model = c->m, .seq = &c->seq, .tokens = tokens, .n_tokens = n, .hidden = hidden,
                     .embedding = embedding};
    shoal_status st = sh_exec_step(c->ex, 1, &s);
    sh_seq_release(c->pool, &c->seq);
    return st;
}

shoal_status shoal_generate(shoal_context *c, const int32_t *prompt, int n_prompt, const shoal_sampling_params *sp,
                            int max_tokens, int32_t *out, int *n_out, shoal_token_cb cb, void *user) {
    if (n_out) *n_out = 0;
    if (!c || !prompt || n_prompt < 1 || max_tokens < 0 || (max_tokens > 0 && !out))
        return sh_fail(SHOAL_ERR_INVALID_ARG, "shoal_generate: need a context, a prompt and an output buffer");
    if (c->m->hp.tmpl == SH_TMPL_BERT)
        return sh_fail(SHOAL_ERR_INVALID_ARG, "shoal_generate: %s is an encoder", sh_arch_name(c->m->hp.arch));
    shoal_sampling_params p;
    shoal_sampling_params_init(&p);
    if (sp) p = *sp;
    int nv = c->m->hp.n_vocab;
    float *logits = malloc((size_t)nv * sizeof *logits);
    if (!logits) return sh_fail(SHOAL_ERR_NOMEM, "out of memory");
    sh_rng rng;
    sh_rng_seed(&rng, p.seed);
    /* plain greedy needs only the argmax, and sampling without a repetition
     * penalty only the step's sample op (the draw from rng, as sh_sample
     * would take it): the device can give either */
    int no_penalty = p.repetition_penalty == 1.0f || !(p.repetition_penalty > 0);
    int argmax_only = !(p.temperature > 0) && no_penalty;
    int in_step = !argmax_only && no_penalty && sh_exec_device_sample(c->ex);
    int ids_only = argmax_only || in_step;
    sh_sample_params dp = {p.temperature, p.top_k, p.top_p, p.min_p, 0.0};
    if (in_step) dp.u = sh_rng_uniform(&rng);
    int32_t next = -1;
    shoal_status s = decode_step(c, prompt, n_prompt, SH_OUT_LAST, ids_only ? NULL : logits, ids_only ? &next : NULL,
                                 in_step ? &dp : NULL);
    int produced = 0;
    while (s == SHOAL_OK && produced < max_tokens) {
        int32_t id = ids_only ? next : sh_sample(logits, nv, &p, c->history, c->n_history, &rng);
        out[produced++] = id;
        int stop = (p.stop_at_eos && id == c->m->hp.eos_id);
        for (int i = 0; i < p.n_stop_ids && p.stop_ids; i++) stop |= id == p.stop_ids[i];
        if (cb && cb(id, user)) stop = 1;
        if (stop || produced == max_tokens) break;
        if (c->seq.n_past + 1 > c->n_ctx) break; /* context full: stop cleanly */
        if (in_step) dp.u = sh_rng_uniform(&rng);
        s = decode_step(c, &id, 1, SH_OUT_LAST, ids_only ? NULL : logits, ids_only ? &next : NULL, in_step ? &dp : NULL);
    }
    free(logits);
    if (n_out) *n_out = produced;
    return s;
}
