/* The CPU backend's thread pool: n - 1 pinned workers plus the caller.
 *
 * A job is (fn, ctx, n_items, chunk). Threads take chunks with an atomic
 * counter, so which thread runs which item varies from run to run; kernels
 * keep results independent of that (see cpu.h). The caller works too and
 * returns once every item is done — it never waits for a worker that has not
 * started (on a busy machine a worker may be off its core for a whole time
 * slice; the caller then simply does the items itself).
 *
 * Publishing a job (gen is the job generation, odd while the caller edits
 * the job):
 *   caller: gen++ (odd: closed); wait until no worker is active; write the
 *           job; gen++ (even: open); wake sleepers; work; wait for done.
 *   worker: see an even gen g it has not run; active++; re-read gen: if it
 *           is not g, active-- and look again; else claim chunks; active--.
 * Both sides touch (gen, active) with sequentially consistent atomics, so a
 * worker either sees the closed gen and backs off, or the caller sees it
 * active and waits for it: no worker ever reads a job being rewritten.
 * Idle workers spin briefly (decode issues hundreds of small calls per
 * token), then sleep on a condition variable.
 */
#define _GNU_SOURCE /* sched_getaffinity, pthread_setaffinity_np */
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpu.h"
#include "error.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SH_CPU_RELAX() _mm_pause()
#else
#define SH_CPU_RELAX() ((void)0)
#endif

#define SH_POOL_SPIN_NS 200000 /* how long an idle worker spins before sleeping */

typedef struct sh_cpu_worker {
    struct sh_cpu_pool *pool;
    int index; /* 1 .. n_threads - 1 */
    pthread_t th;
} sh_cpu_worker;

struct sh_cpu_pool {
    int n_threads;
    sh_cpu_worker *workers; /* (n_threads - 1) */
    int n_started;

    /* the current job; written by the caller only while gen is odd */
    sh_cpu_task fn;
    void *ctx;
    int64_t n_items, chunk;
    _Atomic int64_t next;   /* next unclaimed item */
    _Atomic int64_t done;   /* items finished */
    _Atomic uint64_t gen;   /* job generation: odd while closed */
    _Atomic int active;     /* workers inside a job */
    _Atomic int stop;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    _Atomic int n_sleeping;
};

static uint64_t sh_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Claims and runs chunks of the current job until none are left. */
static void sh_pool_work(sh_cpu_pool *p, int thread) {
    for (;;) {
        int64_t b = atomic_fetch_add(&p->next, p->chunk);
        if (b >= p->n_items) break;
        int64_t e = b + p->chunk < p->n_items ? b + p->chunk : p->n_items;
        p->fn(p->ctx, b, e, thread);
        atomic_fetch_add(&p->done, e - b);
    }
}

/* 1 if g is an open job generation other than seen. */
static inline int sh_pool_new_job(uint64_t g, uint64_t seen) { return (g & 1) == 0 && g != seen; }

/* Waits for an open job other than `seen` (or stop); returns its gen. */
static uint64_t sh_pool_wait_job(sh_cpu_pool *p, uint64_t seen) {
    uint64_t t0 = 0;
    for (int i = 0;; i++) {
        uint64_t g = atomic_load(&p->gen);
        if (sh_pool_new_job(g, seen) || atomic_load(&p->stop)) return g;
        SH_CPU_RELAX();
        if ((i & 63) == 63) {
            uint64_t t = sh_now_ns();
            if (t0 == 0) t0 = t;
            else if (t - t0 > SH_POOL_SPIN_NS) break;
        }
    }
    /* Sleep. The caller opens a job and then reads n_sleeping; we bump
     * n_sleeping and then read gen: at least one of us sees the other. */
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add(&p->n_sleeping, 1);
    while (!sh_pool_new_job(atomic_load(&p->gen), seen) && !atomic_load(&p->stop)) pthread_cond_wait(&p->cv, &p->mu);
    atomic_fetch_sub(&p->n_sleeping, 1);
    pthread_mutex_unlock(&p->mu);
    return atomic_load(&p->gen);
}

static void *sh_pool_main(void *arg) {
    sh_cpu_worker *w = arg;
    sh_cpu_pool *p = w->pool;
    uint64_t seen = 0;
    for (;;) {
        uint64_t g = sh_pool_wait_job(p, seen);
        if (atomic_load(&p->stop)) break;
        if (!sh_pool_new_job(g, seen)) continue;
        atomic_fetch_add(&p->active, 1);
        if (atomic_load(&p->gen) == g) {
            seen = g;
            sh_pool_work(p, w->index);
        }
        atomic_fetch_sub(&p->active, 1);
    }
    return NULL;
}

/* Pins worker `index` to the index-th CPU of the affinity mask (wrapping);
 * failures are ignored (containers may forbid it). */
static void sh_pool_pin(pthread_t th, int index) {
#ifdef __linux__
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return;
    int count = CPU_COUNT(&allowed);
    if (count <= 1) return;
    int want = index % count, seen = 0;
    for (int c = 0; c < CPU_SETSIZE; c++) {
        if (!CPU_ISSET(c, &allowed)) continue;
        if (seen++ == want) {
            cpu_set_t one;
            CPU_ZERO(&one);
            CPU_SET(c, &one);
            (void)pthread_setaffinity_np(th, sizeof one, &one);
            return;
        }
    }
#else
    (void)th;
    (void)index;
#endif
}

shoal_status sh_cpu_pool_create(int n_threads, sh_cpu_pool **out) {
    *out = NULL;
    if (n_threads < 2) return sh_fail(SHOAL_ERR_INVALID_ARG, "cpu pool: n_threads %d < 2", n_threads);
    sh_cpu_pool *p = calloc(1, sizeof *p);
    if (!p) return sh_fail(SHOAL_ERR_NOMEM, "cpu pool: out of memory");
    p->n_threads = n_threads;
    atomic_init(&p->next, 0);
    atomic_init(&p->done, 0);
    atomic_init(&p->active, 0);
    atomic_init(&p->gen, 0);
    atomic_init(&p->stop, 0);
    atomic_init(&p->n_sleeping, 0);
    int mu_ok = 0, cv_ok = 0;
    if (pthread_mutex_init(&p->mu, NULL) != 0) goto fail;
    mu_ok = 1;
    if (pthread_cond_init(&p->cv, NULL) != 0) goto fail;
    cv_ok = 1;
    p->workers = calloc((size_t)(n_threads - 1), sizeof *p->workers);
    if (!p->workers) goto fail;
    /* SHOAL_CPU_PIN=0 leaves placement to the OS (e.g. on a shared machine,
     * where a pinned worker cannot move off a busy core) */
    const char *pin_env = getenv("SHOAL_CPU_PIN");
    int pin = !(pin_env && strcmp(pin_env, "0") == 0);
    for (int i = 0; i < n_threads - 1; i++) {
        sh_cpu_worker *w = &p->workers[i];
        w->pool = p;
        w->index = i + 1;
        int rc = pthread_create(&w->th, NULL, sh_pool_main, w);
        if (rc != 0) {
            sh_cpu_pool_free(p);
            return sh_fail(SHOAL_ERR_NOMEM, "cpu pool: pthread_create failed (%d)", rc);
        }
        p->n_started++;
        if (pin) sh_pool_pin(w->th, w->index);
    }
    *out = p;
    return SHOAL_OK;
fail:
    if (cv_ok) pthread_cond_destroy(&p->cv);
    if (mu_ok) pthread_mutex_destroy(&p->mu);
    free(p->workers);
    free(p);
    return sh_fail(SHOAL_ERR_NOMEM, "cpu pool: out of memory");
}

void sh_cpu_pool_free(sh_cpu_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_started; i++) pthread_join(p->workers[i].th, NULL);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->workers);
    free(p);
}

void sh_cpu_pool_run(sh_cpu_pool *p, int64_t n_items, int64_t chunk, sh_cpu_task fn, void *ctx) {
    if (n_items <= 0) return;
    if (chunk < 1) chunk = 1;
    if (!p || n_items <= chunk) {
        fn(ctx, 0, n_items, 0);
        return;
    }
    /* close: no worker may enter the old job's state from here on */
    atomic_fetch_add(&p->gen, 1);
    for (int i = 0; atomic_load(&p->active) > 0; i++) {
        SH_CPU_RELAX();
        if ((i & 1023) == 1023) sched_yield();
    }
    p->fn = fn;
    p->ctx = ctx;
    p->n_items = n_items;
    p->chunk = chunk;
    atomic_store(&p->next, 0);
    atomic_store(&p->done, 0);
    atomic_fetch_add(&p->gen, 1); /* open */
    if (atomic_load(&p->n_sleeping) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    sh_pool_work(p, 0);
    /* only chunks already claimed by workers remain */
    for (int i = 0; atomic_load(&p->done) < n_items; i++) {
        SH_CPU_RELAX();
        if ((i & 1023) == 1023) sched_yield();
    }
}
