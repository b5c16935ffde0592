/* The scheduler's internals: clusters, requests and the step loop.
 *
 * Locks and who owns what:
 *  - c->mu guards the queue, the running set, every request's `where` and
 *    `cancel` fields, the stats, `stepping` and `in_step`.
 *  - One stepper at a time (the scheduler thread, or a caller of
 *    shoal_cluster_step) sets stepping, plans a step under c->mu, sets
 *    in_step, and then runs the fused compute, sampling and callbacks without
 *    the lock. While stepping, only the stepper touches the KV pool and the running sequences'
 *    KV and ids; others only flag (cancel). Between a stepper's calls
 *    (!stepping) anyone holding c->mu may release a running request's KV
 *    (cancel frees it at once), even with a step in flight (n_fly): the device
 *    runs work in queue order, so blocks freed then serve only later work,
 *    and the step in flight skips entries that are no longer running.
 *  - r->mu guards what readers of a request see: n_gen (tokens visible to
 *    poll) and the finished state. The stepper writes ids/token_ms beyond
 *    n_gen first and publishes by raising n_gen under r->mu.
 */
#ifndef SH_SCHEDULER_H
#define SH_SCHEDULER_H

#include <pthread.h>
#include <stdatomic.h>

#include "kv.h"
#include "model.h"
#include "sample.h"
#include "step.h"
#include "error.h"

typedef enum sh_where {
    SH_REQ_QUEUED = 0,   /* in c->queue */
    SH_REQ_RUNNING = 1,  /* in c->running, may hold KV */
    SH_REQ_DONE = 2,     /* out of both; finishing or finished */
} sh_where;

typedef struct sh_cmodel {
    char name[64];
    shoal_model *m;
    struct sh_tokenizer *tok; /* for text prompts; NULL when the model has none */
} sh_cmodel;

struct shoal_request {
    atomic_int refs;            /* the caller's handle + the cluster's while not DONE */
    shoal_cluster *c;           /* NULL once finished */
    uint64_t id;                /* 1-based submit order; also the age tie-break */
    int model;                  /* index into c->models */
    shoal_model *m;
    shoal_request_kind kind;

    /* scheduling keys (immutable after submit) */
    int priority;
    double deadline;            /* absolute ms; INFINITY = none */
    int cancel_at_deadline;

    /* token state: ids = prompt ++ generated; positions [0, kv.n_past) are in KV */
    int32_t *ids;               /* (cap_ids) */
    int n_prompt, n_ids, cap_ids;
    int max_gen;                /* min(max_tokens, n_ctx - n_prompt + 1) */
    int max_tokens;
    int32_t *types;             /* EMBED: (n_prompt) or NULL */
    float *embedding;           /* EMBED: (n_embd) */
    int n_embd;
    double *token_ms;           /* (max_gen) submit -> token i */
    sh_seq kv;
    shoal_sampling_params sp;   /* stop_ids points at stop_ids below */
    int32_t *stop_ids;
    sh_rng rng;
    shoal_request_token_cb on_token;
    shoal_request_done_cb on_done;
    void *user;

    /* guarded by c->mu */
    sh_where where;
    int cancel;                 /* cancel asked while in a step */
    int n_preempted;

    double t_submit, t_admit, t_first, t_done; /* ms; t_admit/t_first < 0 until set */

    /* a finisher's list (see sh_fin); status/finish/message are written
     * before `finished` is raised and read only after */
    shoal_request *fin_next;

    /* guarded by r->mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n_gen;                  /* generated tokens visible to poll */
    int finished;
    shoal_status status;
    shoal_finish_reason finish;
    char message[256];
};

/* Host threads that sample a step's sequences in parallel (greedy argmax
 * over a 49k vocabulary is ~50 us a row; 128 rows would cost ~6 ms). The
 * stepper publishes a job, helpers and the stepper take items by an atomic
 * counter, and the stepper waits for the helpers to go idle. */
typedef struct sh_spool {
    pthread_t *th;              /* (n) helpers */
    int n;
    pthread_mutex_t mu;
    pthread_cond_t cv_go, cv_done;
    uint64_t gen;               /* job generation; helpers wait for a new one */
    int stop;
    int busy;                   /* helpers still in the current job */
    /* the job: items [0, n_items) of `items` */
    struct shoal_cluster *c;
    const int *items;           /* batch indices of sequences to sample */
    int n_items;
    atomic_int next;
} sh_spool;

struct shoal_cluster {
    shoal_cluster_params p;     /* resolved limits; models/device not kept */
    char device[64];
    sh_backend *be;
    sh_cmodel *models;          /* (n_models) */
    int n_models;
    sh_kv_pool *pool;
    sh_exec *ex;
    sh_dtype kv_dtype;

    pthread_mutex_t mu;
    pthread_cond_t cv_work;     /* the scheduler thread sleeps on it */
    pthread_cond_t cv_idle;     /* run_until_idle waits on it */
    pthread_t thread;
    int has_thread, stop;
    int in_step;                /* a stepper is between plan and commit, or a step is in flight */
    int stepping;               /* a stepper is inside sh_sched_step */
    int n_finishing;            /* pushed by sh_fin_push, not yet through sh_fin_run */

    shoal_request **queue;      /* (n_queue) best first: priority, deadline, age */
    int n_queue, cap_queue;
    shoal_request **running;    /* (n_running) */
    int n_running, cap_running;
    uint64_t next_id;
    int rr;                     /* unfused: next model to step */

    /* stepper scratch (owned by whoever steps) */
    sh_step_seq *batch;
    shoal_request **breq;
    int *brows;
    int cap_batch;
    float *logits;
    size_t cap_logits;
    int32_t *sampled;           /* (cap_batch) token sampled for batch entry i */
    int *to_sample;             /* (cap_batch) batch indices with logits */
    sh_sample_params *bsp;      /* (cap_batch) parameters and draw of entries sampled in the step */
    sh_spool *spool;            /* NULL: sample on the stepper alone */
    uint64_t *model_mark;       /* (n_models) the plan number a model was last counted in */
    uint64_t n_plans;           /* plans made (failed steps included) */
    /* overlapped steps: a decode step chained behind the one being finished
     * is queued before that one's ids are known (sh_exec_launch, chain) and
     * finished by the next sh_sched_step; its scratch, swapped with the
     * above when it becomes the step being finished */
    int overlap;                /* chain steps (SHOAL_STEP_OVERLAP=0: never) */
    sh_step_seq *nx_batch;
    shoal_request **nx_breq;
    int *nx_brows;
    int32_t *nx_sampled;
    sh_sample_params *nx_bsp;
    int cap_nx;
    int n_fly;                  /* entries of the step in flight (c->breq/c->batch), 0: none */
    shoal_step_info fly_info;   /* its step info so far */

    shoal_cluster_stats st;
};

/* ---- sched.c ---- */

/* Order: higher priority, then earlier deadline, then older. <0 if a first. */
int sh_req_rank_cmp(const shoal_request *a, const shoal_request *b);
/* Inserts r into the queue in rank order (c->mu held). */
shoal_status sh_queue_insert(shoal_cluster *c, shoal_request *r);
/* Removes r from the queue / running set (c->mu held). */
void sh_queue_remove(shoal_cluster *c, shoal_request *r);
void sh_running_remove(shoal_cluster *c, shoal_request *r);
/* Starts n sampling helpers (n >= 1). */
shoal_status sh_spool_create(shoal_cluster *c, int n, sh_spool **out);
void sh_spool_free(sh_spool *sp);
/* One iteration (see shoal_cluster_step); the caller is the only stepper. */
shoal_status sh_sched_step(shoal_cluster *c, int *did_work);
/* Finishes a step left in flight and drops its results (cluster teardown). */
void sh_sched_drain(shoal_cluster *c);
/* The scheduler thread's body. */
void *sh_sched_thread(void *arg);

/* ---- request.c ---- */

/* Finishing is two-phase. Under c->mu: sh_fin_push takes r out of the queue
 * or running set (where = DONE), releases its KV (the caller must be allowed
 * to: the stepper, or anyone when not in_step), counts it in the stats and
 * records status, reason and message on r. Then, with c->mu released,
 * sh_fin_run raises `finished`, wakes waiters, calls on_done and drops the
 * cluster's reference, for every request of the list. */
void sh_fin_push(shoal_cluster *c, shoal_request **list, shoal_request *r, shoal_status status,
                 shoal_finish_reason why, const char *fmt, ...) SH_PRINTF(6, 7);
void sh_fin_run(shoal_request *list);
/* Publishes tokens [n_gen, n) to pollers. */
void sh_req_publish(shoal_request *r, int n_gen);
void sh_req_unref(shoal_request *r);

double sh_now_ms(void);

#endif
