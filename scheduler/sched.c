/* Iteration-level scheduling: every step continues each running sequence
 * (one decode row, or its next prefill chunk) and admits queued requests
 * under a row budget, then runs all of them — every model at once — through
 * one fused sh_exec_step.
 *
 * Rank (who runs first, who is preempted last): higher priority, then
 * earlier deadline, then older. The queue is kept in rank order and admits
 * head first; a head that does not fit blocks those behind it (no
 * overtaking), except that a head ranked above running sequences may evict
 * them when KV is short. When running sequences cannot grow by one row, the
 * lowest-ranked running sequence is preempted: its blocks are freed and it
 * goes back to the queue to recompute prompt + generated tokens later
 * (ids = prompt ++ generated, so a recompute is just a longer prefill).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler.h"

/* ============================================================================
 * Queue and running set (c->mu held)
 * ========================================================================== */

int sh_req_rank_cmp(const shoal_request *a, const shoal_request *b) {
    if (a->priority != b->priority) return a->priority > b->priority ? -1 : 1;
    if (a->deadline != b->deadline) return a->deadline < b->deadline ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

static shoal_status grow_ptrs(shoal_request ***arr, int *cap, int need) {
    if (need <= *cap) return SHOAL_OK;
    int nc = *cap ? *cap : 64;
    while (nc < need) nc *= 2;
    shoal_request **na = realloc(*arr, (size_t)nc * sizeof *na);
    if (!na) return sh_fail(SHOAL_ERR_NOMEM, "out of memory");
    *arr = na;
    *cap = nc;
    return SHOAL_OK;
}

shoal_status sh_queue_insert(shoal_cluster *c, shoal_request *r) {
    SH_TRY(grow_ptrs(&c->queue, &c->cap_queue, c->n_queue + 1));
    /* binary search for the first entry ranked below r */
    int lo = 0, hi = c->n_queue;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (sh_req_rank_cmp(c->queue[mid], r) < 0) lo = mid + 1;
        else hi = mid;
    }
    memmove(c->queue + lo + 1, c->queue + lo, (size_t)(c->n_queue - lo) * sizeof *c->queue);
    c->queue[lo] = r;
    c->n_queue++;
    r->where = SH_REQ_QUEUED;
    return SHOAL_OK;
}

static void remove_from(shoal_request **arr, int *n, shoal_request *r) {
    for (int i = 0; i < *n; i++)
        if (arr[i] == r) {
            memmove(arr + i, arr + i + 1, (size_t)(*n - i - 1) * sizeof *arr);
            (*n)--;
            return;
        }
}

void sh_queue_remove(shoal_cluster *c, shoal_request *r) { remove_from(c->queue, &c->n_queue, r); }
void sh_running_remove(shoal_cluster *c, shoal_request *r) { remove_from(c->running, &c->n_running, r); }

/* Keeps the running set in rank order (insertion sort: it is nearly sorted). */
static void sort_running(shoal_cluster *c) {
    for (int i = 1; i < c->n_running; i++) {
        shoal_request *x = c->running[i];
        int j = i - 1;
        while (j >= 0 && sh_req_rank_cmp(c->running[j], x) > 0) {
            c->running[j + 1] = c->running[j];
            j--;
        }
        c->running[j + 1] = x;
    }
}

/* Evicts a running sequence: frees its KV and requeues it for recompute.
 * The queue may go past max_queue here: an accepted request is never dropped. */
static shoal_status preempt(shoal_cluster *c, shoal_request *v) {
    SH_TRY(grow_ptrs(&c->queue, &c->cap_queue, c->n_queue + 1));
    sh_seq_release(c->pool, &v->kv);
    sh_running_remove(c, v);
    v->n_preempted++;
    c->st.preemptions++;
    return sh_queue_insert(c, v); /* cannot fail: capacity reserved above */
}

/* ============================================================================
 * Planning (c->mu held, not in_step)
 * ========================================================================== */

static inline int in_filter(const shoal_request *r, int only) { return only < 0 || r->model == only; }

/* Blocks r needs to hold n more positions. */
static inline int blocks_more(const shoal_request *r, int rows) {
    int need = sh_kv_blocks_for(r->kv.n_past + rows) - r->kv.n_blocks;
    return need > 0 ? need : 0;
}

/* Blocks a queued request needs to start: its whole feed (prompt, or prompt
 * + generated tokens for a recompute) and one more position for the next
 * token (decoders). */
static inline int admit_blocks(const shoal_request *r) {
    int enc = r->m->hp.tmpl == SH_TMPL_BERT;
    return blocks_more(r, r->n_ids - r->kv.n_past + (enc ? 0 : 1));
}

/* Unfused mode: the next model (round robin) with running or queued work. */
static int pick_model(shoal_cluster *c) {
    for (int k = 0; k < c->n_models; k++) {
        int m = (c->rr + k) % c->n_models;
        int has = 0;
        for (int i = 0; i < c->n_running && !has; i++) has = c->running[i]->model == m;
        for (int i = 0; i < c->n_queue && !has; i++) has = c->queue[i]->model == m;
        if (has) {
            c->rr = (m + 1) % c->n_models;
            return m;
        }
    }
    return -1;
}

/* Deadlines that cancel, and cancels flagged during the last step. */
static void expire(shoal_cluster *c, double now, shoal_request **fin) {
    for (int i = c->n_queue - 1; i >= 0; i--) {
        shoal_request *r = c->queue[i];
        if (r->cancel_at_deadline && now >= r->deadline)
            sh_fin_push(c, fin, r, SHOAL_ERR_CANCELLED, SHOAL_FINISH_DEADLINE, "the deadline passed while queued");
    }
    for (int i = c->n_running - 1; i >= 0; i--) {
        shoal_request *r = c->running[i];
        if (r->cancel) sh_fin_push(c, fin, r, SHOAL_ERR_CANCELLED, SHOAL_FINISH_CANCELLED, "cancelled");
        else if (r->cancel_at_deadline && now >= r->deadline)
            sh_fin_push(c, fin, r, SHOAL_ERR_CANCELLED, SHOAL_FINISH_DEADLINE, "the deadline passed while running");
    }
}

typedef struct plan {
    int n;          /* entries in c->breq / c->brows */
    int rows;       /* total rows */
    int admitted;
} plan;

/* Resizes a step's scratch arrays to nc entries; 0 when one failed (the
 * others may have moved: the old capacity still holds for all). */
static int scratch_resize(sh_step_seq **batch, shoal_request ***breq, int **brows, int32_t **sampled,
                          sh_sample_params **bsp, int nc) {
    sh_step_seq *nb = realloc(*batch, (size_t)nc * sizeof *nb);
    if (nb) *batch = nb;
    shoal_request **nr = realloc(*breq, (size_t)nc * sizeof *nr);
    if (nr) *breq = nr;
    int *nw = realloc(*brows, (size_t)nc * sizeof *nw);
    if (nw) *brows = nw;
    int32_t *ns = realloc(*sampled, (size_t)nc * sizeof *ns);
    if (ns) *sampled = ns;
    sh_sample_params *np = realloc(*bsp, (size_t)nc * sizeof *np);
    if (np) *bsp = np;
    return nb && nr && nw && ns && np;
}

static shoal_status plan_add(shoal_cluster *c, plan *pl, shoal_request *r, int rows) {
    if (pl->n == c->cap_batch) {
        int nc = c->cap_batch ? 2 * c->cap_batch : 64;
        int *nt = realloc(c->to_sample, (size_t)nc * sizeof *nt);
        if (nt) c->to_sample = nt;
        if (!scratch_resize(&c->batch, &c->breq, &c->brows, &c->sampled, &c->bsp, nc) || !nt)
            return sh_fail(SHOAL_ERR_NOMEM, "out of memory");
        c->cap_batch = nc;
    }
    c->breq[pl->n] = r;
    c->brows[pl->n] = rows;
    pl->n++;
    pl->rows += rows;
    return SHOAL_OK;
}

/* Builds the step. Everything it decides is in c->breq/c->brows[0, pl->n). */
static shoal_status make_plan(shoal_cluster *c, int only, plan *pl, shoal_request **fin) {
    memset(pl, 0, sizeof *pl);
    sh_kv_pool *pool = c->pool;
    sort_running(c);

    /* A: every running sequence of the filter gets one row; make KV room for
     * that by preempting the lowest-ranked running sequences */
    uint64_t preempted0 = c->st.preemptions;
    for (;;) {
        int need = 0, n_in = 0;
        for (int i = 0; i < c->n_running; i++)
            if (in_filter(c->running[i], only)) {
                need += blocks_more(c->running[i], 1);
                n_in++;
            }
        if (need <= pool->n_free || n_in == 0) break;
        shoal_request *v = c->running[c->n_running - 1];
        if (c->n_running == 1) {
            sh_fin_push(c, fin, v, SHOAL_ERR_RANGE, SHOAL_FINISH_ERROR,
                        "KV cache exhausted: %d positions need more than the pool's %d blocks of %d tokens",
                        v->kv.n_past + 1, pool->n_blocks, SH_KV_BLOCK);
            continue;
        }
        SH_TRY(preempt(c, v));
    }
    int n_min = 0, need_min = 0;
    for (int i = 0; i < c->n_running; i++)
        if (in_filter(c->running[i], only)) {
            n_min++;
            need_min += blocks_more(c->running[i], 1);
        }
    int avail = pool->n_free - need_min; /* blocks beyond the one-row minimum */
    int budget = c->p.max_batch_rows - n_min; /* rows beyond the minimum */
    if (budget < 0) budget = 0;

    /* P: a queue head ranked above running sequences may evict them when it
     * cannot start otherwise (and evicting them makes it fit) */
    shoal_request *head = NULL;
    for (int i = 0; i < c->n_queue && !head; i++)
        if (in_filter(c->queue[i], only)) head = c->queue[i];
    int starved = c->st.preemptions != preempted0; /* no admissions after a preemption */
    if (head && c->n_running < c->p.max_running && !starved) {
        int want = admit_blocks(head);
        if (want > avail) {
            int could = avail;
            for (int i = c->n_running - 1; i >= 0 && sh_req_rank_cmp(c->running[i], head) > 0; i--) {
                shoal_request *v = c->running[i];
                could += v->kv.n_blocks + (in_filter(v, only) ? blocks_more(v, 1) : 0);
            }
            while (could >= want && want > avail && c->n_running > 0 &&
                   sh_req_rank_cmp(c->running[c->n_running - 1], head) > 0) {
                shoal_request *v = c->running[c->n_running - 1];
                int freed = v->kv.n_blocks, minneed = in_filter(v, only) ? blocks_more(v, 1) : 0;
                if (in_filter(v, only)) {
                    n_min--;
                    budget++;
                }
                SH_TRY(preempt(c, v));
                avail += freed + minneed;
            }
        }
    }

    /* B: running sequences (rank order): one row each, more for prefills */
    for (int i = 0; i < c->n_running; i++) {
        shoal_request *r = c->running[i];
        if (!in_filter(r, only)) continue;
        int pend = r->n_ids - r->kv.n_past;
        int rows = 1;
        if (r->m->hp.tmpl == SH_TMPL_BERT) {
            /* an encoder left running by a failed plan: it still runs whole */
            rows = pend;
            avail -= blocks_more(r, rows) - blocks_more(r, 1);
        } else if (pend > 1) {
            int want = pend < c->p.prefill_chunk ? pend : c->p.prefill_chunk;
            if (want > 1 + budget) want = 1 + budget;
            int base = blocks_more(r, 1);
            int max_pos = (r->kv.n_blocks + base + avail) * SH_KV_BLOCK - r->kv.n_past;
            if (want > max_pos) want = max_pos;
            if (want < 1) want = 1;
            rows = want;
            avail -= blocks_more(r, rows) - base;
            budget -= rows - 1;
        }
        SH_TRY(plan_add(c, pl, r, rows));
    }

    /* C: admit from the queue head while rows, slots and blocks last. A
     * request starts only when its whole feed and its first token fit in the
     * free blocks (or nothing else runs): partial starts would take blocks
     * running sequences are about to need, and be preempted again at once. */
    for (int i = 0; i < c->n_queue && budget > 0 && c->n_running < c->p.max_running && !starved;) {
        shoal_request *r = c->queue[i];
        if (!in_filter(r, only)) {
            i++;
            continue;
        }
        int enc = r->m->hp.tmpl == SH_TMPL_BERT;
        int pend = r->n_ids - r->kv.n_past;
        int rows;
        if (c->n_running > 0 && admit_blocks(r) > avail) break;
        if (enc) {
            /* encoders run whole; an oversize one runs alone */
            if (pend > budget && pl->n > 0) break;
            if (blocks_more(r, pend) > avail) break;
            rows = pend;
        } else {
            rows = pend < c->p.prefill_chunk ? pend : c->p.prefill_chunk;
            if (rows > budget) rows = budget;
            int max_pos = (r->kv.n_blocks + avail) * SH_KV_BLOCK - r->kv.n_past;
            if (rows > max_pos) rows = max_pos;
            if (rows < 1) break;
        }
        SH_TRY(grow_ptrs(&c->running, &c->cap_running, c->n_running + 1));
        SH_TRY(plan_add(c, pl, r, rows));
        sh_queue_remove(c, r); /* the next candidate moves into slot i */
        c->running[c->n_running++] = r;
        r->where = SH_REQ_RUNNING;
        if (r->t_admit < 0) r->t_admit = sh_now_ms();
        avail -= blocks_more(r, rows);
        budget -= rows;
        pl->admitted++;
    }
    return SHOAL_OK;
}

/* ============================================================================
 * Parallel sampling
 * ========================================================================== */

/* Samples the sequences of items [next...) until none is left. Sampling a
 * sequence touches only that request (its logits, history and rng). */
static void sample_items(shoal_cluster *c, const int *items, int n_items, atomic_int *next) {
    for (;;) {
        int k = atomic_fetch_add(next, 1);
        if (k >= n_items) return;
        int i = items[k];
        shoal_request *r = c->breq[i];
        c->sampled[i] = sh_sample(c->batch[i].logits, r->m->hp.n_vocab, &r->sp, r->ids, r->n_ids, &r->rng);
    }
}

static void *spool_main(void *arg) {
    sh_spool *sp = arg;
    uint64_t seen = 0;
    pthread_mutex_lock(&sp->mu);
    for (;;) {
        while (!sp->stop && sp->gen == seen) pthread_cond_wait(&sp->cv_go, &sp->mu);
        if (sp->stop) break;
        seen = sp->gen;
        shoal_cluster *c = sp->c;
        const int *items = sp->items;
        int n_items = sp->n_items;
        pthread_mutex_unlock(&sp->mu);
        sample_items(c, items, n_items, &sp->next);
        pthread_mutex_lock(&sp->mu);
        if (--sp->busy == 0) pthread_cond_signal(&sp->cv_done);
    }
    pthread_mutex_unlock(&sp->mu);
    return NULL;
}

shoal_status sh_spool_create(shoal_cluster *c, int n, sh_spool **out) {
    *out = NULL;
    sh_spool *sp = calloc(1, sizeof *sp);
    if (!sp) return sh_fail(SHOAL_ERR_NOMEM, "out of memory");
    sp->th = calloc((size_t)n, sizeof *sp->th);
    if (!sp->th) {
        free(sp);
        return sh_fail(SHOAL_ERR_NOMEM, "out of memory");
    }
    pthread_mutex_init(&sp->mu, NULL);
    pthread_cond_init(&sp->cv_go, NULL);
    pthread_cond_init(&sp->cv_done, NULL);
    sp->c = c;
    for (int i = 0; i < n; i++) {
        if (pthread_create(&sp->th[i], NULL, spool_main, sp) != 0) break;
        sp->n++;
    }
    if (sp->n == 0) {
        sh_spool_free(sp);
        return sh_fail(SHOAL_ERR_NOMEM, "cluster: cannot start sampling threads");
    }
    *out = sp;
    return SHOAL_OK;
}

void sh_spool_free(sh_spool *sp) {
    if (!sp) return;
    pthread_mutex_lock(&sp->mu);
    sp->stop = 1;
    pthread_cond_broadcast(&sp->cv_go);
    pthread_mutex_unlock(&sp->mu);
    for (int i = 0; i < sp->n; i++) pthread_join(sp->th[i], NULL);
    pthread_mutex_destroy(&sp->mu);
    pthread_cond_destroy(&sp->cv_go);
    pthread_cond_destroy(&sp->cv_done);
    free(sp->th);
    free(sp);
}

/* Fills c->sampled[i] for every batch index in items, helpers joining in when
 * there are enough sequences to pay for waking them. */
static void sample_all(shoal_cluster *c, const int *items, int n_items) {
    sh_spool *sp = c->spool;
    if (!sp || n_items < 8) {
        atomic_int next;
        atomic_init(&next, 0);
        sample_items(c, items, n_items, &next);
        return;
    }
    pthread_mutex_lock(&sp->mu);
    sp->items = items;
    sp->n_items = n_items;
    atomic_store(&sp->next, 0);
    sp->busy = sp->n;
    sp->gen++;
    pthread_cond_broadcast(&sp->cv_go);
    pthread_mutex_unlock(&sp->mu);
    sample_items(c, items, n_items, &sp->next);
    pthread_mutex_lock(&sp->mu);
    while (sp->busy > 0) pthread_cond_wait(&sp->cv_done, &sp->mu);
    pthread_mutex_unlock(&sp->mu);
}

/* ============================================================================
 * The step
 * ========================================================================== */

static shoal_status grow_logits(shoal_cluster *c, size_t n) {
    if (n <= c->cap_logits) return SHOAL_OK;
    size_t nc = c->cap_logits ? c->cap_logits : 4096;
    while (nc < n) nc *= 2;
    float *nl = realloc(c->logits, nc * sizeof *nl);
    if (!nl) return sh_fail(SHOAL_ERR_NOMEM, "out of memory");
    c->logits = nl;
    c->cap_logits = nc;
    return SHOAL_OK;
}

/* A decoder whose feed ends with this chunk and that may still generate. */
static inline int wants_token(const shoal_request *r, int rows) {
    return r->m->hp.tmpl != SH_TMPL_BERT && r->kv.n_past + rows == r->n_ids && r->n_ids - r->n_prompt < r->max_gen;
}

/* Sampling that is the argmax of the raw logits (sh_sample's greedy case:
 * temperature 0, no repetition penalty): the step computes it. */
static inline int plain_greedy(const shoal_request *r) {
    return !(r->sp.temperature > 0) && (r->sp.repetition_penalty == 1.0f || !(r->sp.repetition_penalty > 0));
}

/* Sampling that runs inside the step (the backend's sample op): anything but
 * plain greedy without a repetition penalty, which needs the host path. */
static inline int step_sampled(const shoal_cluster *c, const shoal_request *r) {
    return !plain_greedy(r) && sh_exec_device_sample(c->ex) &&
           !(r->sp.repetition_penalty > 0 && r->sp.repetition_penalty != 1.0f);
}

static int is_stop(const shoal_request *r, int32_t id) {
    if (r->sp.stop_at_eos && r->m->hp.eos_id >= 0 && id == r->m->hp.eos_id) return 1;
    for (int i = 0; i < r->sp.n_stop_ids; i++)
        if (id == r->sp.stop_ids[i]) return 1;
    return 0;
}

/* The step info of entries [0, n) of a step's scratch (c->mu held). */
static void step_info(shoal_cluster *c, shoal_request *const *breq, const int *brows, int n, int chained,
                      shoal_step_info *info) {
    memset(info, 0, sizeof *info);
    c->n_plans++;
    info->seqs = n;
    for (int i = 0; i < n; i++) {
        shoal_request *r = breq[i];
        int rows = brows[i];
        /* a chained row is a decode row: its token is the one the step before
         * it computes (n_past has moved on, n_ids not yet) */
        if (chained || (rows == 1 && r->kv.n_past + 1 == r->n_ids && r->n_ids > r->n_prompt)) info->decode_rows++;
        else info->prefill_rows += rows;
        info->rows += rows;
        if (c->model_mark[r->model] != c->n_plans) {
            c->model_mark[r->model] = c->n_plans;
            info->models++;
            info->weight_bytes += r->m->n_bytes;
        }
        const sh_hparams *hp = &r->m->hp;
        uint64_t attended = (uint64_t)rows * (uint64_t)r->kv.n_past + (uint64_t)rows * (uint64_t)(rows + 1) / 2;
        info->kv_bytes += attended * (uint64_t)hp->n_layer * 2u * (uint64_t)sh_model_kv_dim(r->m) *
                          (c->kv_dtype == SH_F16 ? 2u : 4u);
    }
}

/* Whether the step being finished (entries [0, n)) can have the next one
 * chained behind it, queued before its ids are on the host: every entry is
 * a decoder on a one-row step whose id the device decides; the chained step
 * takes those that are still running and will want a token after this one
 * (those that finish by length here are left out), and nothing waits to be
 * admitted (the plan would differ). Marks the entries it takes in c->nx_brows
 * and returns how many. (c->mu held) */
/* The nx scratch at the step scratch's capacity, so that swapping them
 * keeps every array (to_sample included) as large as cap_batch says. */
static int chain_room(shoal_cluster *c, int n) {
    if (c->cap_nx != c->cap_batch) {
        if (!scratch_resize(&c->nx_batch, &c->nx_breq, &c->nx_brows, &c->nx_sampled, &c->nx_bsp, c->cap_batch))
            return 0;
        c->cap_nx = c->cap_batch;
    }
    return n <= c->cap_nx;
}

static int chain_ok(shoal_cluster *c, int n, double now) {
    if (!c->overlap || !c->p.fused || n < 1 || !chain_room(c, n)) return 0;
    if (c->n_queue && c->n_running < c->p.max_running) return 0;
    int take = 0, left = 0;
    for (int i = 0; i < n; i++) {
        const shoal_request *r = c->breq[i];
        const sh_step_seq *b = &c->batch[i];
        if (c->brows[i] != 1 || b->out != SH_OUT_LAST || !b->next || b->logits) return 0;
        const int g = r->n_ids + 1 - r->n_prompt; /* tokens generated once this step's is in */
        const int on = r->where == SH_REQ_RUNNING && !r->cancel && !(r->cancel_at_deadline && now >= r->deadline) &&
                       g < r->max_tokens && g < r->max_gen;
        c->nx_brows[i] = on;
        take += on;
        left += !on;
    }
    /* finishing sequences free room a queued request would take */
    if (c->n_queue && left) return 0;
    return take;
}

/* Builds the chained step into the nx scratch from the entries chain_ok
 * marked, in order, one row each, tokens from the device. 0 when the engine
 * cannot take it (KV blocks, buffers); the rng draws are taken only once it
 * can, so they match the steps planned one by one. (c->mu held) */
static int chain_build(shoal_cluster *c, int n) {
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (!c->nx_brows[i]) continue;
        shoal_request *r = c->breq[i];
        sh_step_seq *b = &c->nx_batch[k];
        memset(b, 0, sizeof *b);
        b->model = r->m;
        b->seq = &r->kv;
        b->n_tokens = 1;
        b->out = SH_OUT_LAST;
        b->next = &c->nx_sampled[k];
        b->sample = c->batch[i].sample ? &c->nx_bsp[k] : NULL; /* filled below */
        c->nx_breq[k++] = r;
    }
    if (!k || !sh_exec_can_chain(c->ex, k, c->nx_batch)) return 0;
    for (int i = 0; i < k; i++) {
        shoal_request *r = c->nx_breq[i];
        c->nx_brows[i] = 1;
        if (c->nx_batch[i].sample)
            c->nx_bsp[i] = (sh_sample_params){r->sp.temperature, r->sp.top_k, r->sp.top_p, r->sp.min_p,
                                              sh_rng_uniform(&r->rng)};
    }
    return k;
}

/* The chained scratch becomes the step's (the old one is kept for reuse). */
static void swap_scratch(shoal_cluster *c) {
#define SWAP(T, a, b) do { T t_ = (a); (a) = (b); (b) = t_; } while (0)
    SWAP(sh_step_seq *, c->batch, c->nx_batch);
    SWAP(shoal_request **, c->breq, c->nx_breq);
    SWAP(int *, c->brows, c->nx_brows);
    SWAP(int32_t *, c->sampled, c->nx_sampled);
    SWAP(sh_sample_params *, c->bsp, c->nx_bsp);
    SWAP(int, c->cap_batch, c->cap_nx);
#undef SWAP
    /* to_sample follows cap_batch (host sampling only: never of a chained step) */
}

static void unref_all(shoal_request *const *breq, int n) {
    for (int i = 0; i < n; i++) sh_req_unref(breq[i]);
}

void sh_sched_drain(shoal_cluster *c) {
    if (!c || !c->n_fly) return;
    (void)sh_exec_finish(c->ex);
    unref_all(c->breq, c->n_fly);
    c->n_fly = 0;
    pthread_mutex_lock(&c->mu);
    c->in_step = 0;
    pthread_mutex_unlock(&c->mu);
}

/* One step: plan, launch and finish it, or finish the one a previous call
 * left in flight; and, where nothing would change (chain_ok), queue the next
 * step behind it first, so the device runs that one while the host takes
 * this one's ids, streams them and decides. */
shoal_status sh_sched_step(shoal_cluster *c, int *did_work) {
    if (did_work) *did_work = 0;
    double t0 = sh_now_ms();
    shoal_request *fin = NULL;
    shoal_status s = SHOAL_OK;
    pthread_mutex_lock(&c->mu);
    if (c->stepping) { /* another stepper is inside */
        pthread_mutex_unlock(&c->mu);
        return SHOAL_OK;
    }
    c->stepping = 1;
    expire(c, t0, &fin);
    int n;
    const int held = c->n_fly > 0; /* finishing a step queued by an earlier call: its entries hold refs */
    shoal_step_info info;
    double exec_ms = 0;
    if (held) {
        n = c->n_fly;
        info = c->fly_info;
    } else {
        int only = c->p.fused ? -1 : pick_model(c);
        plan pl;
        s = make_plan(c, only, &pl, &fin);
        n = pl.n;
        if (s != SHOAL_OK || n == 0) {
            /* nothing to run (or out of host memory for the plan: fail nothing,
             * the next step retries) */
            int idle = !c->n_queue && !c->n_running;
            if (idle) pthread_cond_broadcast(&c->cv_idle);
            c->stepping = 0;
            pthread_mutex_unlock(&c->mu);
            if (did_work && fin) *did_work = 1;
            sh_fin_run(fin);
            return s;
        }

        /* ---- the batch: a next token for sequences whose feed ends here; plain
         * greedy ones take the step's argmax, those without a repetition penalty
         * the step's sample with a draw from their rng (both on the device where
         * the backend can: no logits download), the others sample from host
         * logits ---- */
        size_t n_logits = 0;
        for (int i = 0; i < n; i++) {
            shoal_request *r = c->breq[i];
            if (wants_token(r, c->brows[i]) && !plain_greedy(r) && !step_sampled(c, r))
                n_logits += (size_t)r->m->hp.n_vocab;
        }
        s = grow_logits(c, n_logits ? n_logits : 1);
        step_info(c, c->breq, c->brows, n, 0, &info);
        info.admitted = pl.admitted;
        size_t lo = 0;
        for (int i = 0; i < n && s == SHOAL_OK; i++) {
            shoal_request *r = c->breq[i];
            int rows = c->brows[i];
            sh_step_seq *b = &c->batch[i];
            memset(b, 0, sizeof *b);
            b->model = r->m;
            b->seq = &r->kv;
            b->tokens = r->ids + r->kv.n_past;
            b->n_tokens = rows;
            if (r->m->hp.tmpl == SH_TMPL_BERT) {
                b->types = r->types;
                b->embedding = r->embedding;
            } else if (wants_token(r, rows)) {
                b->out = SH_OUT_LAST;
                if (plain_greedy(r)) {
                    b->next = &c->sampled[i];
                } else if (step_sampled(c, r)) {
                    /* temperature > 0 here: the one draw sh_sample would take */
                    c->bsp[i] = (sh_sample_params){r->sp.temperature, r->sp.top_k, r->sp.top_p, r->sp.min_p,
                                                   sh_rng_uniform(&r->rng)};
                    b->next = &c->sampled[i];
                    b->sample = &c->bsp[i];
                } else {
                    b->logits = c->logits + lo;
                    lo += (size_t)r->m->hp.n_vocab;
                }
            }
        }
        c->in_step = 1;
        pthread_mutex_unlock(&c->mu);
        double te0 = sh_now_ms();
        if (s == SHOAL_OK) s = sh_exec_launch(c->ex, n, c->batch, 0);
        exec_ms += sh_now_ms() - te0;
        pthread_mutex_lock(&c->mu);
    }

    /* ---- the next step, chained behind this one where nothing would change ---- */
    int nx = 0;
    shoal_step_info nx_info;
    if (s == SHOAL_OK && chain_ok(c, n, t0) && (nx = chain_build(c, n)) > 0) {
        step_info(c, c->nx_breq, c->nx_brows, nx, 1, &nx_info);
        for (int i = 0; i < nx; i++) atomic_fetch_add(&c->nx_breq[i]->refs, 1);
    }
    pthread_mutex_unlock(&c->mu);
    shoal_status s_nx = SHOAL_OK;
    char nx_err[256] = "";
    if (nx) {
        double te0 = sh_now_ms();
        s_nx = sh_exec_launch(c->ex, nx, c->nx_batch, 1);
        exec_ms += sh_now_ms() - te0;
        if (s_nx != SHOAL_OK) snprintf(nx_err, sizeof nx_err, "%s", shoal_last_error());
    }

    /* ---- this step's ids ---- */
    double te0 = sh_now_ms();
    if (s == SHOAL_OK) s = sh_exec_finish(c->ex);
    exec_ms += sh_now_ms() - te0;
    info.exec_ms = exec_ms;
    info.index = c->st.steps;
    const sh_step_stats *es = sh_exec_stats(c->ex);
    info.launches = s == SHOAL_OK ? es->last_launches : 0;
    info.groups = s == SHOAL_OK ? es->last_groups : 0;

    /* ---- sample, stream, decide (no lock: in_step keeps others off) ---- */
    int n_fin = 0, n_tok = 0;
    double ts0 = sh_now_ms();
    if (s == SHOAL_OK) {
        int n_items = 0;
        for (int i = 0; i < n; i++)
            if (c->batch[i].out == SH_OUT_LAST && c->batch[i].logits) c->to_sample[n_items++] = i;
        sample_all(c, c->to_sample, n_items);
        double now = sh_now_ms();
        for (int i = 0; i < n; i++) {
            shoal_request *r = c->breq[i];
            sh_step_seq *b = &c->batch[i];
            if (r->where != SH_REQ_RUNNING) continue; /* finished while in flight (cancel, deadline) */
            r->fin_next = NULL;
            r->finish = SHOAL_FINISH_NONE;
            if (r->m->hp.tmpl == SH_TMPL_BERT) {
                r->t_first = now;
                r->finish = SHOAL_FINISH_LENGTH;
                continue;
            }
            if (b->out == SH_OUT_LAST) {
                int32_t id = c->sampled[i];
                int g = r->n_ids - r->n_prompt;
                r->ids[r->n_ids++] = id;
                r->token_ms[g] = now - r->t_submit;
                if (r->t_first < 0) r->t_first = now;
                sh_req_publish(r, g + 1);
                n_tok++;
                int stop = is_stop(r, id);
                int cb_stop = r->on_token ? r->on_token(r, id, g, r->user) != 0 : 0;
                if (stop) r->finish = SHOAL_FINISH_STOP;
                else if (cb_stop) r->finish = SHOAL_FINISH_CALLBACK;
                else if (g + 1 >= r->max_tokens) r->finish = SHOAL_FINISH_LENGTH;
                else if (g + 1 >= r->max_gen) r->finish = SHOAL_FINISH_CONTEXT;
            } else if (r->kv.n_past == r->n_ids && r->max_gen == 0) {
                r->finish = SHOAL_FINISH_LENGTH; /* prefill only (max_tokens 0) */
            }
        }
    }
    info.sample_ms = sh_now_ms() - ts0;
    const char *err = s == SHOAL_OK ? NULL : shoal_last_error();
    char errbuf[256];
    if (err) snprintf(errbuf, sizeof errbuf, "%s", err);

    /* ---- commit ---- */
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < n; i++) {
        shoal_request *r = c->breq[i];
        if (r->where != SH_REQ_RUNNING) continue;
        if (s != SHOAL_OK)
            sh_fin_push(c, &fin, r, s, SHOAL_FINISH_ERROR, "step failed: %s", errbuf);
        else if (r->finish != SHOAL_FINISH_NONE)
            sh_fin_push(c, &fin, r, SHOAL_OK, r->finish, NULL);
        else if (r->cancel)
            sh_fin_push(c, &fin, r, SHOAL_ERR_CANCELLED, SHOAL_FINISH_CANCELLED, "cancelled");
        else
            continue;
        n_fin++;
    }
    /* a chained step that failed to go out fails its sequences */
    for (int i = 0; nx && s_nx != SHOAL_OK && i < nx; i++)
        if (c->nx_breq[i]->where == SH_REQ_RUNNING) {
            sh_fin_push(c, &fin, c->nx_breq[i], s_nx, SHOAL_FINISH_ERROR, "step failed: %s", nx_err);
            n_fin++;
        }
    /* cancels of running sequences outside this step (unfused mode) */
    for (int i = c->n_running - 1; i >= 0; i--)
        if (c->running[i]->cancel) {
            sh_fin_push(c, &fin, c->running[i], SHOAL_ERR_CANCELLED, SHOAL_FINISH_CANCELLED, "cancelled");
            n_fin++;
        }
    info.finished = n_fin;
    info.ms = sh_now_ms() - t0;
    if (s == SHOAL_OK) {
        c->st.steps++;
        c->st.launches += info.launches;
        c->st.groups += info.groups;
        c->st.rows += (uint64_t)info.rows;
        c->st.last_launches = info.launches;
        c->st.last_groups = info.groups;
        c->st.last_rows = info.rows;
        c->st.last_models = info.models;
        if (info.launches > c->st.max_launches_per_step) c->st.max_launches_per_step = info.launches;
        c->st.prefill_rows += (uint64_t)info.prefill_rows;
        c->st.tokens_generated += (uint64_t)n_tok;
        if (held) c->st.overlapped_steps++;
    }
    c->st.busy_ms += info.ms;
    /* the entries of a step queued by an earlier call held a reference each
     * (they may have finished meanwhile); the chained step, if it went out,
     * is now the one in flight */
    if (held) unref_all(c->breq, n);
    c->n_fly = 0;
    if (nx && s_nx == SHOAL_OK) {
        swap_scratch(c);
        c->n_fly = nx;
        c->fly_info = nx_info;
        int live = 0;
        for (int i = 0; i < nx && !live; i++) live = c->breq[i]->where == SH_REQ_RUNNING;
        if (!live) { /* every one of its sequences finished here: drop it */
            pthread_mutex_unlock(&c->mu);
            (void)sh_exec_finish(c->ex);
            pthread_mutex_lock(&c->mu);
            unref_all(c->breq, nx);
            c->n_fly = 0;
        }
    } else if (nx) {
        unref_all(c->nx_breq, nx);
    }
    c->in_step = c->n_fly > 0;
    c->stepping = 0;
    if (!c->n_queue && !c->n_running && !c->n_fly) pthread_cond_broadcast(&c->cv_idle);
    shoal_step_cb on_step = c->p.on_step;
    void *step_user = c->p.step_user;
    pthread_mutex_unlock(&c->mu);

    sh_fin_run(fin);
    if (on_step && s == SHOAL_OK) on_step(&info, step_user);
    if (did_work) *did_work = 1;
    if (s != SHOAL_OK) return sh_fail(s, "%s", errbuf);
    return SHOAL_OK;
}

shoal_status shoal_cluster_step(shoal_cluster *c, int *did_work) {
    if (did_work) *did_work = 0;
    if (!c) return sh_fail(SHOAL_ERR_INVALID_ARG, "shoal_cluster_step: cluster is NULL");
    if (c->has_thread)
        return sh_fail(SHOAL_ERR_INVALID_ARG, "shoal_cluster_step: the cluster has a scheduler thread");
    return sh_sched_step(c, did_work);
}

shoal_status shoal_cluster_run_until_idle(shoal_cluster *c) {
    if (!c) return sh_fail(SHOAL_ERR_INVALID_ARG, "shoal_cluster_run_until_idle: cluster is NULL");
    if (c->has_thread) {
        pthread_mutex_lock(&c->mu);
        while (c->n_queue || c->n_running || c->in_step || c->n_finishing) pthread_cond_wait(&c->cv_idle, &c->mu);
        pthread_mutex_unlock(&c->mu);
        return SHOAL_OK;
    }
    shoal_status first = SHOAL_OK;
    int idle_tries = 0;
    for (;;) {
        int did = 0;
        shoal_status s = sh_sched_step(c, &did);
        if (s != SHOAL_OK && first == SHOAL_OK) first = s;
        pthread_mutex_lock(&c->mu);
        int idle = !c->n_queue && !c->n_running;
        pthread_mutex_unlock(&c->mu);
        if (idle) break;
        idle_tries = did ? 0 : idle_tries + 1;
        /* unfused mode may skip a model whose head cannot start yet, but a
         * whole round without work means no progress is possible */
        if (idle_tries > c->n_models)
            return first != SHOAL_OK ? first : sh_fail(SHOAL_ERR_NOMEM, "scheduler: no request can run");
    }
    return first;
}

void *sh_sched_thread(void *arg) {
    shoal_cluster *c = arg;
    int idle_tries = 0;
    pthread_mutex_lock(&c->mu);
    while (!c->stop) {
        if (!c->n_queue && !c->n_running) {
            pthread_cond_broadcast(&c->cv_idle);
            pthread_cond_wait(&c->cv_work, &c->mu);
            continue;
        }
        pthread_mutex_unlock(&c->mu);
        int did = 0;
        sh_sched_step(c, &did); /* failures finish their requests */
        pthread_mutex_lock(&c->mu);
        idle_tries = did ? 0 : idle_tries + 1;
        if (idle_tries > c->n_models && !c->stop) {
            /* work exists but none could run for a whole round (out of host
             * memory): back off 1 ms */
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 1000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&c->cv_work, &c->mu, &ts);
        }
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}
