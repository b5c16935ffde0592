/* Requests: submit (validation, admission control), poll, wait, cancel,
 * results, and the two-phase finish every request goes through once. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "scheduler.h"
#include "tokenizer.h"

double sh_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

double shoal_clock_ms(void) { return sh_now_ms(); }

void shoal_request_params_init(shoal_request_params *p) {
    if (!p) return;
    memset(p, 0, sizeof *p);
    p->kind = SHOAL_REQUEST_GENERATE;
    shoal_sampling_params_init(&p->sampling);
    p->max_tokens = 16;
}

/* ============================================================================
 * Lifetime
 * ========================================================================== */

static void req_destroy(shoal_request *r) {
    /* KV was released when the request left the running set; the pool may be
     * gone by now, so only the table memory is freed here */
    free(r->kv.blocks);
    free(r->ids);
    free(r->types);
    free(r->embedding);
    free(r->token_ms);
    free(r->stop_ids);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}

void sh_req_unref(shoal_request *r) {
    if (r && atomic_fetch_sub(&r->refs, 1) == 1) req_destroy(r);
}

void sh_req_publish(shoal_request *r, int n_gen) {
    pthread_mutex_lock(&r->mu);
    r->n_gen = n_gen;
    pthread_mutex_unlock(&r->mu);
}

void sh_fin_push(shoal_cluster *c, shoal_request **list, shoal_request *r, shoal_status status,
                 shoal_finish_reason why, const char *fmt, ...) {
    if (r->where == SH_REQ_QUEUED) sh_queue_remove(c, r);
    else if (r->where == SH_REQ_RUNNING) sh_running_remove(c, r);
    r->where = SH_REQ_DONE;
    r->cancel = 0;
    if (c->pool) sh_seq_release(c->pool, &r->kv);
    r->status = status;
    r->finish = why;
    r->message[0] = '\0';
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->message, sizeof r->message, fmt, ap);
        va_end(ap);
    }
    r->t_done = sh_now_ms();
    c->n_finishing++;
    if (status == SHOAL_OK) c->st.completed++;
    else if (status == SHOAL_ERR_CANCELLED) c->st.cancelled++;
    else c->st.failed++;
    r->fin_next = *list;
    *list = r;
}

void sh_fin_run(shoal_request *list) {
    /* pushed newest first: reverse so callbacks run in finishing order */
    shoal_request *rev = NULL;
    while (list) {
        shoal_request *n = list->fin_next;
        list->fin_next = rev;
        rev = list;
        list = n;
    }
    while (rev) {
        shoal_request *r = rev;
        rev = r->fin_next;
        r->fin_next = NULL;
        pthread_mutex_lock(&r->mu);
        r->finished = 1;
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
        if (r->on_done) r->on_done(r, r->user);
        /* idle only once every finished request is visible as finished */
        shoal_cluster *c = r->c;
        pthread_mutex_lock(&c->mu);
        if (--c->n_finishing == 0 && !c->n_queue && !c->n_running && !c->in_step)
            pthread_cond_broadcast(&c->cv_idle);
        pthread_mutex_unlock(&c->mu);
        sh_req_unref(r);
    }
}

/* ============================================================================
 * Submit
 * ========================================================================== */

static shoal_status reject(shoal_cluster *c, shoal_status s) {
    pthread_mutex_lock(&c->mu);
    c->st.rejected++;
    pthread_mutex_unlock(&c->mu);
    return s;
}

static shoal_status submit_tokens(shoal_cluster *c, const shoal_request_params *p, shoal_request **out);

/* Text prompts are tokenized with the model's own tokenizer (special tokens as
 * its config adds them), then submitted like token prompts. */
shoal_status shoal_cluster_submit(shoal_cluster *c, const shoal_request_params *p, shoal_request **out) {
    if (out) *out = NULL;
    if (!c || !p || !out || !p->prompt_text) return submit_tokens(c, p, out);
    if (p->prompt)
        return reject(c, sh_fail(SHOAL_ERR_INVALID_ARG, "submit: give either prompt token ids or prompt_text, not both"));
    int mi = -1;
    for (int i = 0; p->model && i < c->n_models; i++)
        if (strcmp(c->models[i].name, p->model) == 0) mi = i;
    if (mi >= 0 && !c->models[mi].tok)
        return reject(c, sh_fail(SHOAL_ERR_UNSUPPORTED, "submit: model '%s' has no tokenizer; pass token ids", p->model));
    if (mi < 0) return submit_tokens(c, p, out); /* answers NOT_FOUND */
    int32_t *ids;
    int n;
    SH_TRY(sh_tokenizer_encode(c->models[mi].tok, p->prompt_text, strlen(p->prompt_text), 1, &ids, &n));
    shoal_request_params q = *p;
    q.prompt = ids;
    q.n_prompt = n;
    q.prompt_text = NULL;
    shoal_status s = submit_tokens(c, &q, out);
    free(ids);
    return s;
}

static shoal_status submit_tokens(shoal_cluster *c, const shoal_request_params *p, shoal_request **out) {
    if (out) *out = NULL;
    if (!c || !p || !out) return sh_fail(SHOAL_ERR_INVALID_ARG, "shoal_cluster_submit: NULL argument");
    double now = sh_now_ms();
    int mi = -1;
    for (int i = 0; p->model && i < c->n_models; i++)
        if (strcmp(c->models[i].name, p->model) == 0) mi = i;
    if (mi < 0)
        return reject(c, sh_fail(SHOAL_ERR_NOT_FOUND, "submit: the cluster has no model named '%s'",
                                 p->model ? p->model : "(null)"));
    shoal_model *m = c->models[mi].m;
    const sh_hparams *hp = &m->hp;
    int enc = hp->tmpl == SH_TMPL_BERT;
    if (p->kind != SHOAL_REQUEST_GENERATE && p->kind != SHOAL_REQUEST_EMBED)
        return reject(c, sh_fail(SHOAL_ERR_INVALID_ARG, "submit: unknown request kind %d", (int)p->kind));
    if (p->kind == SHOAL_REQUEST_EMBED && !enc)
        return reject(c, sh_fail(SHOAL_ERR_INVALID_ARG, "submit: model '%s' is a decoder; embeddings need an encoder",
                                 p->model));
    if (p->kind == SHOAL_REQUEST_GENERATE && enc)
        return reject(c, sh_fail(SHOAL_ERR_INVALID_ARG, "submit: model '%s' is an encoder; use SHOAL_REQUEST_EMBED",
                                 p->model));
    if (!p->prompt || p->n_prompt < 1)
        return reject(c, sh_fail(SHOAL_ERR_INVALID_ARG, "submit: the prompt is empty"));
    if (p->max_tokens < 0)
        return reject(c, sh_fail(SHOAL_ERR_INVALID_ARG, "submit: max_tokens is negative"));
    if (p->sampling.n_stop_ids < 0 || p->sampling.n_stop_ids > 4096 || (p->sampling.n_stop_ids && !p->sampling.stop_ids))
        return reject(c, sh_fail(SHOAL_ERR_INVALID_ARG, "submit: bad stop id list"));
    if (p->n_prompt > hp->n_ctx)
        return reject(c, sh_fail(SHOAL_ERR_RANGE, "submit: a prompt of %d tokens exceeds model '%s''s context of %d",
                                 p->n_prompt, p->model, hp->n_ctx));
    if (sh_kv_blocks_for(p->n_prompt) > c->pool->n_blocks)
        return reject(c, sh_fail(SHOAL_ERR_RANGE, "submit: a prompt of %d tokens needs %d KV blocks; the pool has %d",
                                 p->n_prompt, sh_kv_blocks_for(p->n_prompt), c->pool->n_blocks));
    for (int i = 0; i < p->n_prompt; i++) {
        if (p->prompt[i] < 0 || p->prompt[i] >= hp->n_vocab)
            return reject(c, sh_fail(SHOAL_ERR_INVALID_ARG, "submit: token %d at %d is outside the vocabulary (%d)",
                                     p->prompt[i], i, hp->n_vocab));
        if (enc && p->token_types && (p->token_types[i] < 0 || p->token_types[i] >= (hp->n_type > 0 ? hp->n_type : 1)))
            return reject(c, sh_fail(SHOAL_ERR_INVALID_ARG, "submit: token type %d at %d is out of range",
                                     p->token_types[i], i));
    }
    /* a cheap early answer for a full queue, before any allocation */
    pthread_mutex_lock(&c->mu);
    int full = c->n_queue >= c->p.max_queue;
    int nq = c->n_queue;
    pthread_mutex_unlock(&c->mu);
    if (full)
        return reject(c, sh_fail(SHOAL_ERR_BUSY, "submit: the queue is full (%d requests waiting); retry later", nq));

    shoal_request *r = calloc(1, sizeof *r);
    if (!r) return reject(c, sh_fail(SHOAL_ERR_NOMEM, "out of memory"));
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    atomic_init(&r->refs, 2);
    r->c = c;
    r->model = mi;
    r->m = m;
    r->kind = p->kind;
    r->priority = p->priority;
    r->deadline = INFINITY;
    if (p->deadline_ms > 0) r->deadline = p->deadline_ms;
    if (p->deadline_in_ms > 0 && now + p->deadline_in_ms < r->deadline) r->deadline = now + p->deadline_in_ms;
    r->cancel_at_deadline = p->cancel_at_deadline;
    r->n_prompt = p->n_prompt;
    int gen_cap = enc ? 0 : hp->n_ctx - p->n_prompt + 1;
    r->max_tokens = enc ? 0 : p->max_tokens;
    r->max_gen = r->max_tokens < gen_cap ? r->max_tokens : gen_cap;
    r->cap_ids = p->n_prompt + r->max_gen;
    r->ids = malloc((size_t)r->cap_ids * sizeof *r->ids);
    r->token_ms = malloc((size_t)(r->max_gen > 0 ? r->max_gen : 1) * sizeof *r->token_ms);
    int ok = r->ids && r->token_ms;
    if (ok && enc) {
        r->n_embd = hp->n_embd;
        r->embedding = calloc((size_t)hp->n_embd, sizeof *r->embedding);
        ok = r->embedding != NULL;
        if (ok && p->token_types) {
            r->types = malloc((size_t)p->n_prompt * sizeof *r->types);
            ok = r->types != NULL;
            if (ok) memcpy(r->types, p->token_types, (size_t)p->n_prompt * sizeof *r->types);
        }
    }
    r->sp = p->sampling;
    r->sp.stop_ids = NULL;
    if (ok && p->sampling.n_stop_ids > 0) {
        r->stop_ids = malloc((size_t)p->sampling.n_stop_ids * sizeof *r->stop_ids);
        ok = r->stop_ids != NULL;
        if (ok) {
            memcpy(r->stop_ids, p->sampling.stop_ids, (size_t)p->sampling.n_stop_ids * sizeof *r->stop_ids);
            r->sp.stop_ids = r->stop_ids;
        }
    }
    if (!ok) {
        req_destroy(r);
        return reject(c, sh_fail(SHOAL_ERR_NOMEM, "out of memory"));
    }
    memcpy(r->ids, p->prompt, (size_t)p->n_prompt * sizeof *r->ids);
    r->n_ids = p->n_prompt;
    sh_rng_seed(&r->rng, r->sp.seed);
    r->on_token = p->on_token;
    r->on_done = p->on_done;
    r->user = p->user;
    r->t_submit = now;
    r->t_admit = -1;
    r->t_first = -1;

    pthread_mutex_lock(&c->mu);
    shoal_status s = SHOAL_OK;
    if (c->stop) s = sh_fail(SHOAL_ERR_INVALID_ARG, "submit: the cluster is shutting down");
    else if (c->n_queue >= c->p.max_queue)
        s = sh_fail(SHOAL_ERR_BUSY, "submit: the queue is full (%d requests waiting); retry later", c->n_queue);
    else {
        r->id = ++c->next_id;
        s = sh_queue_insert(c, r);
    }
    if (s != SHOAL_OK) {
        c->st.rejected++;
        pthread_mutex_unlock(&c->mu);
        req_destroy(r);
        return s;
    }
    r->where = SH_REQ_QUEUED;
    c->st.submitted++;
    pthread_cond_signal(&c->cv_work);
    pthread_mutex_unlock(&c->mu);
    *out = r;
    return SHOAL_OK;
}

/* ============================================================================
 * Progress, cancel, results
 * ========================================================================== */

shoal_status shoal_request_poll(shoal_request *r, int from, int32_t *out, int cap, int *n_out,
                                shoal_request_state *state) {
    if (n_out) *n_out = 0;
    if (!r || from < 0 || cap < 0 || (cap > 0 && !out))
        return sh_fail(SHOAL_ERR_INVALID_ARG, "shoal_request_poll: bad arguments");
    pthread_mutex_lock(&r->mu);
    int n = r->n_gen - from;
    if (n < 0) n = 0;
    if (n > cap) n = cap;
    if (n > 0) memcpy(out, r->ids + r->n_prompt + from, (size_t)n * sizeof *out);
    int fin = r->finished;
    pthread_mutex_unlock(&r->mu);
    if (n_out) *n_out = n;
    if (state) {
        if (fin) *state = SHOAL_REQUEST_FINISHED;
        else {
            /* where is guarded by c->mu; a stale read here only delays the
             * QUEUED -> RUNNING report by one poll */
            shoal_cluster *c = r->c;
            pthread_mutex_lock(&c->mu);
            sh_where w = r->where;
            pthread_mutex_unlock(&c->mu);
            *state = w == SH_REQ_QUEUED ? SHOAL_REQUEST_QUEUED : SHOAL_REQUEST_RUNNING;
        }
    }
    return SHOAL_OK;
}

static shoal_status final_status(shoal_request *r) {
    if (r->status == SHOAL_OK) return SHOAL_OK;
    return sh_fail(r->status, "request %llu: %s", (unsigned long long)r->id, r->message);
}

shoal_status shoal_request_wait(shoal_request *r, double timeout_ms) {
    if (!r) return sh_fail(SHOAL_ERR_INVALID_ARG, "shoal_request_wait: request is NULL");
    double t_end = timeout_ms >= 0 ? sh_now_ms() + timeout_ms : INFINITY;
    for (;;) {
        pthread_mutex_lock(&r->mu);
        int fin = r->finished;
        pthread_mutex_unlock(&r->mu);
        if (fin) return final_status(r);
        double now = sh_now_ms();
        if (now >= t_end)
            return sh_fail(SHOAL_ERR_BUSY, "request %llu has not finished after %.1f ms", (unsigned long long)r->id,
                           timeout_ms);
        shoal_cluster *c = r->c;
        int did = 0;
        if (!c->has_thread) {
            shoal_status s = shoal_cluster_step(c, &did);
            (void)s; /* a failed step finishes its requests; the loop reads r's own status */
        }
        if (!did) {
            /* sleep until r finishes, up to 1 ms when stepping ourselves */
            double until = c->has_thread ? t_end : (now + 1.0 < t_end ? now + 1.0 : t_end);
            pthread_mutex_lock(&r->mu);
            while (!r->finished) {
                if (isinf(until)) {
                    pthread_cond_wait(&r->cv, &r->mu);
                    continue;
                }
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                double left = until - sh_now_ms();
                if (left <= 0) break;
                long long ns = (long long)ts.tv_nsec + (long long)(left * 1e6);
                ts.tv_sec += (time_t)(ns / 1000000000LL);
                ts.tv_nsec = (long)(ns % 1000000000LL);
                if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) == ETIMEDOUT) break;
            }
            pthread_mutex_unlock(&r->mu);
        }
    }
}

shoal_status shoal_request_cancel(shoal_request *r) {
    if (!r) return sh_fail(SHOAL_ERR_INVALID_ARG, "shoal_request_cancel: request is NULL");
    pthread_mutex_lock(&r->mu);
    int fin = r->finished;
    pthread_mutex_unlock(&r->mu);
    if (fin) return SHOAL_OK;
    shoal_cluster *c = r->c;
    shoal_request *list = NULL;
    pthread_mutex_lock(&c->mu);
    /* between steps a running request finishes here, even with a step in
     * flight on the device (overlapped steps): that step's entry for it is
     * dropped when it finishes, and its KV blocks can only be handed out to
     * work queued after that step, which runs after it */
    if (r->where == SH_REQ_QUEUED || (r->where == SH_REQ_RUNNING && !c->stepping))
        sh_fin_push(c, &list, r, SHOAL_ERR_CANCELLED, SHOAL_FINISH_CANCELLED, "cancelled");
    else if (r->where == SH_REQ_RUNNING)
        r->cancel = 1; /* the stepper frees its KV right after the step it is running */
    pthread_mutex_unlock(&c->mu);
    sh_fin_run(list);
    return SHOAL_OK;
}

shoal_status shoal_request_get_result(shoal_request *r, shoal_request_result *res) {
    if (!r || !res) return sh_fail(SHOAL_ERR_INVALID_ARG, "shoal_request_get_result: NULL argument");
    pthread_mutex_lock(&r->mu);
    int fin = r->finished;
    int n_gen = r->n_gen;
    pthread_mutex_unlock(&r->mu);
    if (!fin) return sh_fail(SHOAL_ERR_BUSY, "request %llu has not finished", (unsigned long long)r->id);
    memset(res, 0, sizeof *res);
    res->id = r->id;
    res->status = r->status;
    res->finish = r->finish;
    res->message = r->message;
    res->tokens = r->ids + r->n_prompt;
    res->n_tokens = n_gen;
    res->embedding = r->kind == SHOAL_REQUEST_EMBED && r->finish == SHOAL_FINISH_LENGTH ? r->embedding : NULL;
    res->n_embd = res->embedding ? r->n_embd : 0;
    res->n_prompt = r->n_prompt;
    res->n_preempted = r->n_preempted;
    res->queued_ms = r->t_admit >= 0 ? r->t_admit - r->t_submit : r->t_done - r->t_submit;
    res->ttft_ms = r->t_first >= 0 ? r->t_first - r->t_submit : -1;
    res->total_ms = r->t_done - r->t_submit;
    res->token_ms = r->token_ms;
    return SHOAL_OK;
}

void shoal_request_free(shoal_request *r) {
    if (!r) return;
    shoal_request_cancel(r);
    sh_req_unref(r);
}
