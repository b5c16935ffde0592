/* The scheduler: fused steps do not change results, launches do not grow
 * with models, and the request lifecycle (busy, deadlines, cancel, preempt,
 * config files, embeddings, the scheduler thread).
 *
 * Exactness: the CPU backend computes every row independently of the batch
 * (cpu.h), so a sequence's greedy tokens in a mixed cluster — other models,
 * other widths, other templates, chunked prefill, staggered arrivals,
 * preemption and recompute — must equal the tokens of the same model run
 * alone through shoal_context, bit for bit.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "scheduler.h"
#include "shoal.h"

static const char *g_fix;
static int g_samplers; /* sampling helpers for manual clusters */
static char g_paths[8][1100];

/* ============================================================================
 * Helpers
 * ========================================================================== */

/* Tokens of `path` run alone through a context (the reference), with
 * sampling sp (NULL: greedy). */
static int solo_generate_sp(const char *path, const int32_t *prompt, int n, int max_tokens, int32_t *out,
                            const shoal_sampling_params *spp) {
    shoal_model_params mp;
    shoal_model_params_init(&mp);
    mp.n_threads = 1;
    shoal_model *m = NULL;
    shoal_context *ctx = NULL;
    int n_out = -1;
    if (shoal_model_load(path, &mp, &m) != SHOAL_OK || shoal_context_create(m, NULL, &ctx) != SHOAL_OK) {
        fprintf(stderr, "solo %s: %s\n", path, shoal_last_error());
        goto done;
    }
    shoal_sampling_params sp;
    shoal_sampling_params_init(&sp);
    if (spp) sp = *spp;
    if (shoal_generate(ctx, prompt, n, &sp, max_tokens, out, &n_out, NULL, NULL) != SHOAL_OK) {
        fprintf(stderr, "solo generate %s: %s\n", path, shoal_last_error());
        n_out = -1;
    }
done:
    shoal_context_free(ctx);
    shoal_model_free(m);
    return n_out;
}

static int solo_generate(const char *path, const int32_t *prompt, int n, int max_tokens, int32_t *out) {
    return solo_generate_sp(path, prompt, n, max_tokens, out, NULL);
}

static void make_prompt(int32_t *p, int n, int vocab, uint64_t seed) {
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (int32_t)(x % (uint64_t)vocab);
    }
}

static shoal_cluster *make_cluster(const shoal_cluster_model *ms, int n, int threaded, int kv_blocks, int rows,
                                   int chunk) {
    shoal_cluster_params cp;
    shoal_cluster_params_init(&cp);
    cp.models = ms;
    cp.n_models = n;
    cp.n_threads = 1;
    cp.threaded = threaded;
    cp.sample_threads = threaded ? 3 : g_samplers; /* the parallel sampler too */
    cp.kv_blocks = kv_blocks;
    if (rows) cp.max_batch_rows = rows;
    if (chunk) cp.prefill_chunk = chunk;
    shoal_cluster *c = NULL;
    shoal_status s = shoal_cluster_create(&cp, &c);
    CHECK(s == SHOAL_OK, "cluster create: %s", shoal_last_error());
    return c;
}

static shoal_request *submit(shoal_cluster *c, const char *model, const int32_t *prompt, int n, int max_tokens) {
    shoal_request_params rp;
    shoal_request_params_init(&rp);
    rp.model = model;
    rp.prompt = prompt;
    rp.n_prompt = n;
    rp.max_tokens = max_tokens;
    shoal_request *r = NULL;
    shoal_status s = shoal_cluster_submit(c, &rp, &r);
    CHECK(s == SHOAL_OK, "submit to %s: %s", model, shoal_last_error());
    return r;
}

static int kv_free(shoal_cluster *c) {
    shoal_cluster_stats st;
    shoal_cluster_get_stats(c, &st);
    return st.kv_free;
}

/* ============================================================================
 * Fusion does not change results
 * ========================================================================== */

typedef struct job {
    int model;      /* index into the cluster's models */
    int n_prompt;
    int max_tokens;
    int arrive;     /* submitted before this step number */
    int32_t prompt[96];
    shoal_sampling_params sp; /* greedy, greedy with a repetition penalty, or sampled */
    shoal_request *r;
} job;

static void test_exact_mixed(void) {
    /* one llama template at different widths and depths (kv heads 4/2/1,
     * ffn 128/192, 2 or 3 layers, biases, vocab 256 and 512, q8_0 and f32),
     * plus two gpt2-template models fused in the same steps */
    shoal_cluster_model ms[] = {
        {"mha", g_paths[0]}, {"gqa", g_paths[1]}, {"mqa", g_paths[2]}, {"qwen2", g_paths[3]},
        {"tiny", "synthetic:tiny:f32:7"}, {"tinyq", "synthetic:tiny:q8_0:8"},
        {"gpt2", g_paths[4]}, {"tinyg", "synthetic:tiny-gpt2:f32:9"}, {NULL, NULL},
    };
    int n_models = 8;
    int vocab[] = {256, 256, 256, 256, 512, 512, 256, 512, 512};
    /* a wider member of the family (n_embd != 64) when the engine has one */
    sh_hparams whp;
    if (sh_synthetic_hparams("tiny-wide", &whp) == SHOAL_OK) {
        ms[n_models] = (shoal_cluster_model){"wide", "synthetic:tiny-wide:f32:10"};
        vocab[n_models] = whp.n_vocab;
        n_models++;
    } else {
        printf("(no synthetic 'tiny-wide' shape: every llama member has n_embd 64)\n");
    }
    /* small rows and chunks: prefills are split and mixed with decode rows */
    shoal_cluster *c = make_cluster(ms, n_models, 0, 0, 48, 16);
    if (!c) return;
    enum { NJ = 24 };
    job jobs[NJ];
    int lens[] = {1, 5, 17, 33, 50, 90};
    for (int i = 0; i < NJ; i++) {
        job *j = &jobs[i];
        j->model = i % n_models;
        j->n_prompt = lens[(i * 7) % 6];
        j->max_tokens = 6 + (i * 5) % 19;
        j->arrive = (i * 3) % 11;
        j->r = NULL;
        make_prompt(j->prompt, j->n_prompt, vocab[j->model], (uint64_t)i + 100);
        shoal_sampling_params_init(&j->sp);
        if (i % 4 == 2) j->sp.repetition_penalty = 1.3f;
        if (i % 4 == 3) {
            j->sp.temperature = 0.8f;
            j->sp.top_k = 40;
            j->sp.top_p = 0.9f;
            j->sp.seed = (uint64_t)i * 7919u;
        }
    }
    int submitted = 0, step = 0;
    while (submitted < NJ || 1) {
        for (int i = 0; i < NJ; i++)
            if (!jobs[i].r && jobs[i].arrive <= step) {
                shoal_request_params rp;
                shoal_request_params_init(&rp);
                rp.model = ms[jobs[i].model].name;
                rp.prompt = jobs[i].prompt;
                rp.n_prompt = jobs[i].n_prompt;
                rp.max_tokens = jobs[i].max_tokens;
                rp.sampling = jobs[i].sp;
                CHECK(shoal_cluster_submit(c, &rp, &jobs[i].r) == SHOAL_OK, "submit: %s", shoal_last_error());
                submitted++;
            }
        int did = 0;
        CHECK(shoal_cluster_step(c, &did) == SHOAL_OK, "step: %s", shoal_last_error());
        step++;
        if (!did && submitted == NJ) break;
        if (step > 5000) break;
    }
    shoal_cluster_stats st;
    shoal_cluster_get_stats(c, &st);
    CHECK(st.completed == NJ, "completed %llu of %d", (unsigned long long)st.completed, NJ);
    CHECK(st.last_models >= 1 && st.max_launches_per_step > 0, "stats recorded");
    CHECK(st.kv_free == st.kv_blocks, "KV all free at the end (%d of %d)", st.kv_free, st.kv_blocks);
    int mixed_ok = 0;
    for (int i = 0; i < NJ; i++) {
        job *j = &jobs[i];
        int32_t ref[64];
        int n_ref = solo_generate_sp(ms[j->model].path, j->prompt, j->n_prompt, j->max_tokens, ref, &j->sp);
        shoal_request_result res;
        CHECK(shoal_request_get_result(j->r, &res) == SHOAL_OK, "result");
        CHECK(res.status == SHOAL_OK, "job %d status %d: %s", i, res.status, res.message);
        int same = n_ref == res.n_tokens && n_ref > 0 && !memcmp(ref, res.tokens, (size_t)n_ref * sizeof *ref);
        CHECK(same, "job %d (model %s, prompt %d): fused tokens differ from the model alone (%d vs %d tokens)", i,
              ms[j->model].name, j->n_prompt, res.n_tokens, n_ref);
        mixed_ok += same;
        CHECK(res.ttft_ms >= 0 && res.total_ms >= res.ttft_ms && res.queued_ms >= 0, "timings");
        for (int k = 1; k < res.n_tokens; k++) CHECK(res.token_ms[k] >= res.token_ms[k - 1], "token times rise");
        shoal_request_free(j->r);
    }
    printf("exact mixed (%d sampling helpers): %d/%d sequences equal alone, %llu steps, %.1f launches/step, %.2f groups/launch\n",
           g_samplers, mixed_ok, NJ, (unsigned long long)st.steps, st.launches_per_step, st.groups_per_launch);
    shoal_cluster_free(c);
}

/* ============================================================================
 * Launches per step with 8 models == with 1 model
 * ========================================================================== */

typedef struct launch_rec { uint64_t decode_launches; int decode_steps; int max_models; int bad; } launch_rec;

static void on_step_launch(const shoal_step_info *in, void *u) {
    launch_rec *lr = u;
    if (in->prefill_rows == 0) {
        if (lr->decode_steps && lr->decode_launches != in->launches) lr->bad++;
        lr->decode_launches = in->launches;
        lr->decode_steps++;
    }
    if (in->models > lr->max_models) lr->max_models = in->models;
}

static launch_rec run_launches(int n_models, const char *shape) {
    shoal_cluster_model ms[8];
    char names[8][16], paths[8][64];
    for (int i = 0; i < n_models; i++) {
        snprintf(names[i], sizeof names[i], "m%d", i);
        snprintf(paths[i], sizeof paths[i], "synthetic:%s:q8_0:%d", shape, i + 1);
        ms[i] = (shoal_cluster_model){names[i], paths[i]};
    }
    launch_rec lr = {0, 0, 0, 0};
    shoal_cluster_params cp;
    shoal_cluster_params_init(&cp);
    cp.models = ms;
    cp.n_models = n_models;
    cp.n_threads = 1;
    cp.threaded = 0;
    cp.on_step = on_step_launch;
    cp.step_user = &lr;
    shoal_cluster *c = NULL;
    CHECK(shoal_cluster_create(&cp, &c) == SHOAL_OK, "create: %s", shoal_last_error());
    if (!c) return lr;
    shoal_request *rs[32];
    int nr = 0;
    for (int i = 0; i < n_models; i++)
        for (int k = 0; k < 2; k++) {
            int32_t p[8];
            make_prompt(p, 8, 256, (uint64_t)(i * 2 + k));
            rs[nr++] = submit(c, names[i], p, 8, 6);
        }
    CHECK(shoal_cluster_run_until_idle(c) == SHOAL_OK, "run: %s", shoal_last_error());
    for (int i = 0; i < nr; i++) {
        CHECK(shoal_request_wait(rs[i], 0) == SHOAL_OK, "request %d done", i);
        shoal_request_free(rs[i]);
    }
    shoal_cluster_free(c);
    return lr;
}

static void test_launches(void) {
    const char *shapes[] = {"tiny", "tiny-gpt2"};
    for (int s = 0; s < 2; s++) {
        launch_rec one = run_launches(1, shapes[s]), eight = run_launches(8, shapes[s]);
        CHECK(one.decode_steps > 0 && eight.decode_steps > 0, "decode steps seen");
        CHECK(eight.max_models == 8, "all 8 models in one step (%d)", eight.max_models);
        CHECK(one.bad == 0 && eight.bad == 0, "decode launches constant");
        CHECK(one.decode_launches == eight.decode_launches && one.decode_launches > 0,
              "%s: launches per decode step, 8 models (%llu) == 1 model (%llu)", shapes[s],
              (unsigned long long)eight.decode_launches, (unsigned long long)one.decode_launches);
        printf("launches per decode step (%s): 1 model %llu, 8 models %llu\n", shapes[s],
               (unsigned long long)one.decode_launches, (unsigned long long)eight.decode_launches);
    }
}

/* ============================================================================
 * Admission control
 * ========================================================================== */

static void test_busy_and_errors(void) {
    shoal_cluster_model ms[] = {{"a", "synthetic:tiny:f32:1"}};
    shoal_cluster_params cp;
    shoal_cluster_params_init(&cp);
    cp.models = ms;
    cp.n_models = 1;
    cp.n_threads = 1;
    cp.threaded = 0;
    cp.max_queue = 3;
    shoal_cluster *c = NULL;
    CHECK(shoal_cluster_create(&cp, &c) == SHOAL_OK, "create: %s", shoal_last_error());
    if (!c) return;
    int32_t p[4] = {1, 2, 3, 4};
    shoal_request *rs[4] = {0};
    for (int i = 0; i < 3; i++) rs[i] = submit(c, "a", p, 4, 4);
    shoal_request_params rp;
    shoal_request_params_init(&rp);
    rp.model = "a";
    rp.prompt = p;
    rp.n_prompt = 4;
    shoal_request *x = (shoal_request *)&x;
    double t0 = shoal_clock_ms();
    shoal_status s = shoal_cluster_submit(c, &rp, &x);
    double dt = shoal_clock_ms() - t0;
    CHECK(s == SHOAL_ERR_BUSY, "full queue answers busy (%d)", s);
    CHECK(x == NULL, "no handle on busy");
    CHECK(strstr(shoal_last_error(), "full") != NULL, "busy message: '%s'", shoal_last_error());
    CHECK(dt < 50.0, "busy answered at once (%.2f ms)", dt);
    /* once the queue drains into the running set, submits succeed again */
    CHECK(shoal_cluster_step(c, NULL) == SHOAL_OK, "step");
    rs[3] = submit(c, "a", p, 4, 4);
    CHECK(rs[3] != NULL, "submit after the queue drained");

    rp.model = "nope";
    CHECK(shoal_cluster_submit(c, &rp, &x) == SHOAL_ERR_NOT_FOUND, "unknown model");
    rp.model = "a";
    int32_t *big = calloc(4096, sizeof *big);
    rp.prompt = big;
    rp.n_prompt = 2049; /* tiny's context is 2048 */
    CHECK(shoal_cluster_submit(c, &rp, &x) == SHOAL_ERR_RANGE, "prompt past context: %s", shoal_last_error());
    rp.n_prompt = 4;
    rp.prompt = p;
    rp.kind = SHOAL_REQUEST_EMBED;
    CHECK(shoal_cluster_submit(c, &rp, &x) == SHOAL_ERR_INVALID_ARG, "embed on a decoder");
    rp.kind = SHOAL_REQUEST_GENERATE;
    rp.prompt_text = "hello"; /* synthetic models carry no tokenizer */
    CHECK(shoal_cluster_submit(c, &rp, &x) == SHOAL_ERR_INVALID_ARG, "ids and text together");
    rp.prompt = NULL;
    CHECK(shoal_cluster_submit(c, &rp, &x) == SHOAL_ERR_UNSUPPORTED, "text without a tokenizer");
    rp.prompt_text = NULL;
    rp.prompt = p;
    int32_t badtok = 100000;
    rp.prompt = &badtok;
    rp.n_prompt = 1;
    CHECK(shoal_cluster_submit(c, &rp, &x) == SHOAL_ERR_INVALID_ARG, "token outside the vocabulary");
    free(big);
    CHECK(shoal_cluster_run_until_idle(c) == SHOAL_OK, "run");
    shoal_cluster_stats st;
    shoal_cluster_get_stats(c, &st);
    CHECK(st.submitted == 4 && st.completed == 4 && st.rejected == 7, "counts: %llu submitted %llu done %llu rejected",
          (unsigned long long)st.submitted, (unsigned long long)st.completed, (unsigned long long)st.rejected);
    for (int i = 0; i < 4; i++) shoal_request_free(rs[i]);
    shoal_cluster_free(c);

    /* cluster creation errors */
    shoal_cluster_model dup[] = {{"a", "synthetic:tiny"}, {"a", "synthetic:tiny"}};
    cp.models = dup;
    cp.n_models = 2;
    CHECK(shoal_cluster_create(&cp, &c) == SHOAL_ERR_INVALID_ARG && c == NULL, "duplicate names");
    shoal_cluster_model bad[] = {{"a", "synthetic:no-such-shape"}};
    cp.models = bad;
    cp.n_models = 1;
    CHECK(shoal_cluster_create(&cp, &c) == SHOAL_ERR_NOT_FOUND && c == NULL, "unknown shape: %s", shoal_last_error());
}

/* ============================================================================
 * Deadlines and priorities
 * ========================================================================== */

typedef struct order_rec { int order[16]; int n; } order_rec;

static void on_done_order(shoal_request *r, void *u) {
    order_rec *o = u;
    shoal_request_result res;
    if (shoal_request_get_result(r, &res) == SHOAL_OK && o->n < 16) o->order[o->n++] = (int)res.id;
}

static void test_deadlines(void) {
    shoal_cluster_model ms[] = {{"a", "synthetic:tiny:f32:1"}};
    shoal_cluster_params cp;
    shoal_cluster_params_init(&cp);
    cp.models = ms;
    cp.n_models = 1;
    cp.n_threads = 1;
    cp.threaded = 0;
    cp.max_running = 1; /* one at a time: finishing order = admission order */
    shoal_cluster *c = NULL;
    CHECK(shoal_cluster_create(&cp, &c) == SHOAL_OK, "create: %s", shoal_last_error());
    if (!c) return;
    order_rec o = {{0}, 0};
    int32_t p[3] = {5, 6, 7};
    /* id: 1..6 in submit order */
    double now = shoal_clock_ms();
    struct { int prio; double rel, abs; } spec[] = {
        {0, 5000, 0},          /* 1 */
        {0, 1000, 0},          /* 2 */
        {0, 0, now + 3000},    /* 3: absolute */
        {0, 0, 0},             /* 4: no deadline: last of priority 0 */
        {0, 2000, now + 1500}, /* 5: the earlier of the two (1500) */
        {1, 9000, 0},          /* 6: higher priority beats every deadline */
    };
    shoal_request *rs[6];
    for (int i = 0; i < 6; i++) {
        shoal_request_params rp;
        shoal_request_params_init(&rp);
        rp.model = "a";
        rp.prompt = p;
        rp.n_prompt = 3;
        rp.max_tokens = 2;
        rp.priority = spec[i].prio;
        rp.deadline_in_ms = spec[i].rel;
        rp.deadline_ms = spec[i].abs;
        rp.on_done = on_done_order;
        rp.user = &o;
        CHECK(shoal_cluster_submit(c, &rp, &rs[i]) == SHOAL_OK, "submit");
    }
    CHECK(shoal_cluster_run_until_idle(c) == SHOAL_OK, "run");
    int expect[] = {6, 2, 5, 3, 1, 4};
    int same = o.n == 6;
    for (int i = 0; i < 6 && same; i++) same = o.order[i] == expect[i];
    CHECK(same, "order by priority then earliest deadline: got %d %d %d %d %d %d", o.order[0], o.order[1],
          o.order[2], o.order[3], o.order[4], o.order[5]);
    for (int i = 0; i < 6; i++) shoal_request_free(rs[i]);

    /* a queued request whose deadline passes is cancelled, not run */
    int32_t lp[40];
    make_prompt(lp, 40, 512, 3);
    shoal_request *longr = submit(c, "a", lp, 40, 30);
    shoal_request_params rp;
    shoal_request_params_init(&rp);
    rp.model = "a";
    rp.prompt = p;
    rp.n_prompt = 3;
    rp.deadline_in_ms = 1;
    rp.cancel_at_deadline = 1;
    rp.priority = -1; /* behind the long one */
    shoal_request *late = NULL;
    CHECK(shoal_cluster_submit(c, &rp, &late) == SHOAL_OK, "submit late");
    usleep(3000);
    CHECK(shoal_cluster_run_until_idle(c) == SHOAL_OK, "run");
    shoal_request_result res;
    CHECK(shoal_request_get_result(late, &res) == SHOAL_OK, "late result");
    CHECK(res.status == SHOAL_ERR_CANCELLED && res.finish == SHOAL_FINISH_DEADLINE && res.n_tokens == 0,
          "deadline cancels: status %d finish %d", res.status, res.finish);
    CHECK(shoal_request_wait(late, 0) == SHOAL_ERR_CANCELLED, "wait reports the cancel");
    CHECK(shoal_request_get_result(longr, &res) == SHOAL_OK && res.status == SHOAL_OK && res.n_tokens == 30,
          "long one done");
    shoal_request_free(longr);
    shoal_request_free(late);
    shoal_cluster_free(c);
}

/* ============================================================================
 * Cancellation frees KV at once
 * ========================================================================== */

typedef struct cancel_cb { int seen; int stop_at; } cancel_cb;

static int on_token_stop(shoal_request *r, int32_t tok, int index, void *u) {
    (void)r;
    (void)tok;
    cancel_cb *cc = u;
    cc->seen = index + 1;
    return index + 1 >= cc->stop_at;
}

static void test_cancel(void) {
    shoal_cluster_model ms[] = {{"a", "synthetic:tiny:f32:1"}, {"b", "synthetic:tiny:f32:2"}};
    shoal_cluster *c = make_cluster(ms, 2, 0, 64, 0, 0);
    if (!c) return;
    int32_t p[40];
    make_prompt(p, 40, 512, 11);
    shoal_request *r[3];
    r[0] = submit(c, "a", p, 40, 100);
    r[1] = submit(c, "b", p, 33, 100);
    r[2] = submit(c, "a", p, 20, 100);
    for (int i = 0; i < 4; i++) CHECK(shoal_cluster_step(c, NULL) == SHOAL_OK, "step");
    int before = kv_free(c);
    int held = r[1]->kv.n_blocks;
    CHECK(held == 3 && before == 64 - 3 - 3 - 2, "blocks held: %d, free %d", held, before);
    int32_t got[8];
    int n_got = 0;
    shoal_request_state state;
    CHECK(shoal_request_poll(r[1], 0, got, 8, &n_got, &state) == SHOAL_OK && n_got == 4 &&
              state == SHOAL_REQUEST_RUNNING,
          "poll while running: %d tokens", n_got);
    CHECK(shoal_request_cancel(r[1]) == SHOAL_OK, "cancel");
    CHECK(kv_free(c) == before + held, "cancel frees its blocks at once: %d -> %d", before, kv_free(c));
    shoal_request_result res;
    CHECK(shoal_request_get_result(r[1], &res) == SHOAL_OK && res.status == SHOAL_ERR_CANCELLED &&
              res.finish == SHOAL_FINISH_CANCELLED && res.n_tokens == 4,
          "cancelled with its tokens");
    CHECK(shoal_request_cancel(r[1]) == SHOAL_OK, "cancel twice is fine");
    /* freeing an unfinished handle cancels it */
    shoal_request_free(r[0]);
    shoal_request_free(r[2]);
    CHECK(kv_free(c) == 64, "all KV back after cancel-by-free (%d)", kv_free(c));
    shoal_cluster_stats st;
    shoal_cluster_get_stats(c, &st);
    CHECK(st.cancelled == 3 && st.running == 0 && st.queued == 0, "counts after cancel");
    shoal_request_free(r[1]);

    /* a queued request cancelled before it ever ran */
    shoal_request *q = submit(c, "a", p, 10, 5);
    CHECK(shoal_request_cancel(q) == SHOAL_OK, "cancel queued");
    CHECK(shoal_request_wait(q, 0) == SHOAL_ERR_CANCELLED, "queued cancel");
    shoal_request_free(q);

    /* the token callback stops a request */
    cancel_cb cc = {0, 4};
    shoal_request_params rp;
    shoal_request_params_init(&rp);
    rp.model = "b";
    rp.prompt = p;
    rp.n_prompt = 5;
    rp.max_tokens = 50;
    rp.on_token = on_token_stop;
    rp.user = &cc;
    shoal_request *cr = NULL;
    CHECK(shoal_cluster_submit(c, &rp, &cr) == SHOAL_OK, "submit");
    CHECK(shoal_request_wait(cr, -1) == SHOAL_OK, "wait drives steps on a manual cluster");
    CHECK(shoal_request_get_result(cr, &res) == SHOAL_OK && res.finish == SHOAL_FINISH_CALLBACK && res.n_tokens == 4 &&
              cc.seen == 4,
          "callback stop after 4 (%d, finish %d)", res.n_tokens, res.finish);
    shoal_request_free(cr);

    /* stop ids: the stop token is included and ends generation */
    int32_t ref[20];
    int n_ref = solo_generate("synthetic:tiny:f32:2", p, 5, 20, ref);
    shoal_request_params_init(&rp);
    rp.model = "b";
    rp.prompt = p;
    rp.n_prompt = 5;
    rp.max_tokens = 20;
    int32_t stop = n_ref > 3 ? ref[3] : 0;
    rp.sampling.stop_ids = &stop;
    rp.sampling.n_stop_ids = 1;
    CHECK(shoal_cluster_submit(c, &rp, &cr) == SHOAL_OK, "submit");
    CHECK(shoal_request_wait(cr, -1) == SHOAL_OK, "wait");
    shoal_request_get_result(cr, &res);
    int first_stop = 0;
    while (first_stop < n_ref && ref[first_stop] != stop) first_stop++;
    CHECK(res.finish == SHOAL_FINISH_STOP && res.n_tokens == first_stop + 1 && res.tokens[first_stop] == stop,
          "stop id ends generation (%d tokens, finish %d)", res.n_tokens, res.finish);
    shoal_request_free(cr);
    shoal_cluster_free(c);
}

/* ============================================================================
 * Preemption under KV exhaustion
 * ========================================================================== */

static void run_preempt(int threaded) {
    /* 10 blocks of 16 tokens; each request needs 20 + 44 = 64 positions (4
     * blocks): four of them cannot all hold KV at once */
    shoal_cluster_model ms[] = {{"a", "synthetic:tiny:f32:3"}, {"b", "synthetic:tiny:q8_0:4"}};
    shoal_cluster *c = make_cluster(ms, 2, threaded, 10, 64, 16);
    if (!c) return;
    enum { N = 6 };
    int32_t prompts[N][24];
    shoal_request *rs[N];
    for (int i = 0; i < N; i++) {
        make_prompt(prompts[i], 20, 512, (uint64_t)(40 + i));
        shoal_request_params rp;
        shoal_request_params_init(&rp);
        rp.model = ms[i % 2].name;
        rp.prompt = prompts[i];
        rp.n_prompt = 20;
        rp.max_tokens = 44;
        rp.priority = i == 0 ? 5 : 0;
        CHECK(shoal_cluster_submit(c, &rp, &rs[i]) == SHOAL_OK, "submit");
    }
    CHECK(shoal_cluster_run_until_idle(c) == SHOAL_OK, "run: %s", shoal_last_error());
    shoal_cluster_stats st;
    shoal_cluster_get_stats(c, &st);
    CHECK(st.preemptions > 0, "KV exhaustion preempted (%llu)", (unsigned long long)st.preemptions);
    CHECK(st.completed == N && st.failed == 0, "all completed (%llu, %llu failed)", (unsigned long long)st.completed,
          (unsigned long long)st.failed);
    CHECK(st.kv_free == 10, "KV all free (%d)", st.kv_free);
    int preempted = 0;
    for (int i = 0; i < N; i++) {
        CHECK(shoal_request_wait(rs[i], -1) == SHOAL_OK, "request %d: %s", i, shoal_last_error());
        shoal_request_result res;
        shoal_request_get_result(rs[i], &res);
        int32_t ref[64];
        int n_ref = solo_generate(ms[i % 2].path, prompts[i], 20, 44, ref);
        CHECK(n_ref == 44 && res.n_tokens == 44 && !memcmp(ref, res.tokens, 44 * sizeof *ref),
              "request %d (preempted %d times) equals the model alone", i, res.n_preempted);
        if (i == 0) CHECK(res.n_preempted == 0, "the high-priority request is never preempted");
        preempted += res.n_preempted;
        shoal_request_free(rs[i]);
    }
    printf("preemption (%s): %llu preemptions, %d on requests\n", threaded ? "threaded" : "manual",
           (unsigned long long)st.preemptions, preempted);
    shoal_cluster_free(c);
}

static void test_preempt(void) {
    run_preempt(0);
    run_preempt(1);
}

/* ============================================================================
 * Limits: a sequence the whole pool cannot hold, the model's context, prefill only
 * ========================================================================== */

static void test_limits(void) {
    const char *path = "synthetic:tiny:f32:12";
    shoal_cluster_model ms[] = {{"a", path}};
    /* 2 blocks = 32 positions: a lone sequence that outgrows the pool fails
     * with RANGE, keeping the tokens it made (equal to the model alone) */
    shoal_cluster *c = make_cluster(ms, 1, 0, 2, 0, 0);
    if (!c) return;
    int32_t p[2048];
    make_prompt(p, 2048, 512, 5);
    shoal_request *r = submit(c, "a", p, 20, 40);
    CHECK(shoal_request_wait(r, -1) == SHOAL_ERR_RANGE, "outgrowing the pool is RANGE: %s", shoal_last_error());
    shoal_request_result res;
    shoal_request_get_result(r, &res);
    int32_t ref[64];
    int n_ref = solo_generate(path, p, 20, 40, ref);
    CHECK(res.finish == SHOAL_FINISH_ERROR && res.n_tokens == 13 && n_ref == 40 &&
              !memcmp(ref, res.tokens, 13 * sizeof *ref),
          "13 tokens kept before the pool ran out (%d, finish %d): %s", res.n_tokens, res.finish, res.message);
    CHECK(kv_free(c) == 2, "blocks back after the failure");
    shoal_request_free(r);
    /* a prompt larger than the whole pool is refused at submit */
    shoal_request_params rp;
    shoal_request_params_init(&rp);
    rp.model = "a";
    rp.prompt = p;
    rp.n_prompt = 40;
    CHECK(shoal_cluster_submit(c, &rp, &r) == SHOAL_ERR_RANGE, "prompt past the pool");
    shoal_cluster_free(c);

    /* the context fills: tiny has 2048 positions, so a 2040-token prompt
     * yields 9 tokens, as shoal_generate does */
    c = make_cluster(ms, 1, 0, 0, 512, 128);
    if (!c) return;
    r = submit(c, "a", p, 2040, 20);
    CHECK(shoal_request_wait(r, -1) == SHOAL_OK, "context run");
    shoal_request_get_result(r, &res);
    n_ref = solo_generate(path, p, 2040, 20, ref);
    CHECK(res.finish == SHOAL_FINISH_CONTEXT && res.n_tokens == 9 && n_ref == 9 &&
              !memcmp(ref, res.tokens, 9 * sizeof *ref),
          "context full after 9 tokens (%d, finish %d)", res.n_tokens, res.finish);
    shoal_request_free(r);
    /* max_tokens 0: prefill only */
    r = submit(c, "a", p, 33, 0);
    CHECK(shoal_request_wait(r, -1) == SHOAL_OK, "prefill only");
    shoal_request_get_result(r, &res);
    CHECK(res.finish == SHOAL_FINISH_LENGTH && res.n_tokens == 0 && res.ttft_ms < 0, "no tokens, no ttft");
    shoal_request_free(r);
    CHECK(kv_free(c) == c->pool->n_blocks, "KV free");
    shoal_cluster_free(c);
}

/* ============================================================================
 * The scheduler thread
 * ========================================================================== */

typedef struct stream_rec { int n; int32_t toks[64]; } stream_rec;

static int on_token_rec(shoal_request *r, int32_t tok, int index, void *u) {
    (void)r;
    stream_rec *s = u;
    if (index == s->n && s->n < 64) s->toks[s->n++] = tok;
    return 0;
}

static void test_threaded(void) {
    shoal_cluster_model ms[] = {{"a", "synthetic:tiny:f32:5"}, {"b", "synthetic:tiny-gpt2:f32:6"}};
    shoal_cluster *c = make_cluster(ms, 2, 1, 0, 0, 0);
    if (!c) return;
    int32_t p[12];
    make_prompt(p, 12, 512, 77);
    stream_rec sr = {0, {0}};
    shoal_request_params rp;
    shoal_request_params_init(&rp);
    rp.model = "b";
    rp.prompt = p;
    rp.n_prompt = 12;
    rp.max_tokens = 24;
    rp.on_token = on_token_rec;
    rp.user = &sr;
    shoal_request *a = submit(c, "a", p, 12, 24), *b = NULL;
    CHECK(shoal_cluster_submit(c, &rp, &b) == SHOAL_OK, "submit b");
    CHECK(shoal_request_wait(a, 10000) == SHOAL_OK, "wait a");
    CHECK(shoal_request_wait(b, 10000) == SHOAL_OK, "wait b");
    int32_t ref[24], polled[24];
    int n_polled = 0;
    shoal_request_state state;
    CHECK(shoal_request_poll(b, 0, polled, 24, &n_polled, &state) == SHOAL_OK && state == SHOAL_REQUEST_FINISHED,
          "poll finished");
    int n_ref = solo_generate("synthetic:tiny-gpt2:f32:6", p, 12, 24, ref);
    CHECK(n_ref == 24 && n_polled == 24 && sr.n == 24 && !memcmp(ref, polled, sizeof ref) &&
              !memcmp(ref, sr.toks, sizeof ref),
          "streamed and polled tokens equal the model alone");
    CHECK(shoal_cluster_step(c, NULL) == SHOAL_ERR_INVALID_ARG, "manual step refused on a threaded cluster");
    shoal_request_free(a);
    shoal_request_free(b);

    /* cancel while the thread runs it */
    shoal_request *r = submit(c, "a", p, 12, 1500);
    int n = 0;
    for (int i = 0; i < 20000 && n < 2; i++) {
        shoal_request_poll(r, 0, NULL, 0, NULL, NULL);
        shoal_request_poll(r, 0, polled, 24, &n, NULL);
        usleep(100);
    }
    CHECK(n >= 2, "tokens streamed before the cancel");
    CHECK(shoal_request_cancel(r) == SHOAL_OK, "cancel");
    CHECK(shoal_request_wait(r, 10000) == SHOAL_ERR_CANCELLED, "cancelled while running");
    CHECK(shoal_cluster_run_until_idle(c) == SHOAL_OK, "idle");
    CHECK(kv_free(c) == c->pool->n_blocks, "KV back after the cancel");
    shoal_request_free(r);

    /* requests still pending at free finish cancelled, handles stay valid */
    shoal_request *p1 = submit(c, "a", p, 12, 1500), *p2 = submit(c, "b", p, 12, 1500);
    shoal_cluster_free(c);
    CHECK(shoal_request_wait(p1, 0) == SHOAL_ERR_CANCELLED, "pending at free: cancelled");
    shoal_request_result res;
    CHECK(shoal_request_get_result(p2, &res) == SHOAL_OK && res.status == SHOAL_ERR_CANCELLED &&
              strstr(res.message, "freed"),
          "message says why: %s", res.message);
    shoal_request_free(p1);
    shoal_request_free(p2);
}

/* ============================================================================
 * Embeddings and the JSON config
 * ========================================================================== */

static void test_embed_and_config(void) {
    char dir[] = "/tmp/shoal_sched_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "temp dir");
    char cfg[1200], link[1200];
    /* a relative model path resolves against the config's folder */
    snprintf(link, sizeof link, "%s/bert.gguf", dir);
    CHECK(symlink(g_paths[5], link) == 0, "symlink");
    snprintf(cfg, sizeof cfg, "%s/cluster.json", dir);
    FILE *f = fopen(cfg, "w");
    fprintf(f,
            "{\"device\": \"cpu\", \"threads\": 1, \"sample_threads\": 2, \"kv_dtype\": \"f32\",\n"
            " \"models\": [{\"name\": \"enc\", \"path\": \"bert.gguf\"},\n"
            "            {\"name\": \"dec\", \"path\": \"synthetic:tiny:f32:1\"}],\n"
            " \"limits\": {\"max_queue\": 8, \"max_running\": 4, \"max_batch_rows\": 64,\n"
            "            \"prefill_chunk\": 32, \"kv_blocks\": 32}}\n");
    fclose(f);
    shoal_cluster_params def;
    shoal_cluster_params_init(&def);
    def.threaded = 0;
    shoal_cluster *c = NULL;
    CHECK(shoal_cluster_load(cfg, &def, &c) == SHOAL_OK, "load config: %s", shoal_last_error());
    if (c) {
        CHECK(shoal_cluster_n_models(c) == 2 && !strcmp(shoal_cluster_model_name(c, 0), "enc"), "models named");
        shoal_cluster_stats st;
        shoal_cluster_get_stats(c, &st);
        CHECK(st.kv_blocks == 32, "limits read (kv_blocks %d)", st.kv_blocks);
        CHECK(c->p.max_queue == 8 && c->p.max_running == 4 && c->p.max_batch_rows == 64 && c->p.prefill_chunk == 32,
              "limits read");
        CHECK(c->spool && c->spool->n == 2, "sample_threads read");
        shoal_model *enc = NULL;
        CHECK(shoal_cluster_get_model(c, "enc", &enc) == SHOAL_OK, "get model");
        shoal_model_info info;
        shoal_model_get_info(enc, &info);
        int32_t p[10] = {101, 7, 8, 9, 10, 11, 12, 13, 14, 102};
        int32_t p2[6] = {101, 50, 60, 70, 80, 102};
        shoal_request_params rp;
        shoal_request_params_init(&rp);
        rp.model = "enc";
        rp.kind = SHOAL_REQUEST_EMBED;
        rp.prompt = p;
        rp.n_prompt = 10;
        shoal_request *e1 = NULL, *e2 = NULL, *d = NULL;
        CHECK(shoal_cluster_submit(c, &rp, &e1) == SHOAL_OK, "embed submit: %s", shoal_last_error());
        rp.prompt = p2;
        rp.n_prompt = 6;
        CHECK(shoal_cluster_submit(c, &rp, &e2) == SHOAL_OK, "embed submit 2");
        d = submit(c, "dec", p, 10, 5);
        CHECK(shoal_cluster_run_until_idle(c) == SHOAL_OK, "run");
        /* reference: the encoder alone */
        shoal_model_params mp;
        shoal_model_params_init(&mp);
        mp.n_threads = 1;
        shoal_model *m = NULL;
        shoal_context *ctx = NULL;
        float ref1[64], ref2[64];
        CHECK(shoal_model_load(g_paths[5], &mp, &m) == SHOAL_OK && shoal_context_create(m, NULL, &ctx) == SHOAL_OK,
              "encoder alone");
        CHECK(info.n_embd == 64, "n_embd");
        if (ctx) {
            shoal_encode(ctx, p, 10, NULL, ref1);
            shoal_encode(ctx, p2, 6, NULL, ref2);
        }
        shoal_request_result res;
        CHECK(e1 && shoal_request_get_result(e1, &res) == SHOAL_OK && res.status == SHOAL_OK && res.n_embd == 64 &&
                  !memcmp(res.embedding, ref1, sizeof ref1),
              "embedding 1 equals the encoder alone");
        CHECK(e2 && shoal_request_get_result(e2, &res) == SHOAL_OK && res.status == SHOAL_OK && res.n_embd == 64 &&
                  !memcmp(res.embedding, ref2, sizeof ref2) && res.ttft_ms >= 0,
              "embedding 2 equals the encoder alone");
        CHECK(shoal_request_wait(d, 0) == SHOAL_OK, "decoder alongside");
        shoal_context_free(ctx);
        shoal_model_free(m);
        shoal_request_free(e1);
        shoal_request_free(e2);
        shoal_request_free(d);
        rp.kind = SHOAL_REQUEST_GENERATE;
        CHECK(shoal_cluster_submit(c, &rp, &e1) == SHOAL_ERR_INVALID_ARG, "generate on an encoder");
        shoal_cluster_free(c);
    }
    /* malformed configs */
    const char *bad[] = {
        "{\"models\": []}",
        "{\"models\": [{\"name\": \"a\", \"path\": \"synthetic:tiny\"}], \"limits\": {\"max_qeue\": 3}}",
        "{\"models\": [{\"name\": \"a\"}]}",
        "{\"models\": [{\"name\": \"a\", \"path\": \"synthetic:tiny\"}], \"limits\": {\"kv_blocks\": -1}}",
        "{\"models\": [{\"name\": \"a\", \"path\": \"synthetic:tiny\"}], \"device\": 3}",
        "[1, 2]",
        "{\"models\": [{\"name\": \"a\", \"path\": \"synthetic:tiny\"}]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        f = fopen(cfg, "w");
        fputs(bad[i], f);
        fclose(f);
        c = (shoal_cluster *)&c;
        shoal_status s = shoal_cluster_load(cfg, &def, &c);
        CHECK(s == SHOAL_ERR_FORMAT && c == NULL, "bad config %zu refused (%d: %s)", i, s, shoal_last_error());
    }
    CHECK(shoal_cluster_load("/nonexistent/cluster.json", NULL, &c) == SHOAL_ERR_IO, "missing config");
    unlink(cfg);
    unlink(link);
    rmdir(dir);
}


/* ============================================================================
 * Overlapped steps change nothing: the same tokens, finish reasons and KV
 * ========================================================================== */

typedef struct ov_out {
    int32_t tokens[8][40];
    int n[8];
    shoal_status status[8];
    shoal_finish_reason finish[8];
    uint64_t overlapped, steps;
    int kv_end_free, kv_blocks;
} ov_out;

/* Eight sequences of three models decoding together (greedy and sampled,
 * some with stop ids that end them mid-run, one cancelled mid-run) under
 * SHOAL_STEP_OVERLAP=on (1) or 0, stepped by hand. */
static void run_overlap(int on, ov_out *o) {
    memset(o, 0, sizeof *o);
    setenv("SHOAL_STEP_OVERLAP", on ? "1" : "0", 1);
    shoal_cluster_model ms[] = {{"tiny", "synthetic:tiny:f32:7"}, {"gqa", g_paths[1]}, {"tinyg", "synthetic:tiny-gpt2:f32:9"}};
    const int vocab[] = {512, 256, 512};
    shoal_cluster *c = make_cluster(ms, 3, 0, 0, 0, 0);
    unsetenv("SHOAL_STEP_OVERLAP");
    if (!c) return;
    static const int32_t stops[] = {3, 17, 40, 101, 200, 77, 5, 9, 250, 128, 64, 31};
    shoal_request *r[8];
    for (int i = 0; i < 8; i++) {
        int32_t prompt[24];
        make_prompt(prompt, 6 + 2 * i, vocab[i % 3], (uint64_t)i + 900);
        shoal_request_params rp;
        shoal_request_params_init(&rp);
        rp.model = ms[i % 3].name;
        rp.prompt = prompt;
        rp.n_prompt = 6 + 2 * i;
        rp.max_tokens = 12 + 3 * i;
        if (i % 2) rp.sampling.n_stop_ids = 12, rp.sampling.stop_ids = stops;
        if (i % 4 == 1) rp.sampling.temperature = 0.9f, rp.sampling.top_k = 50, rp.sampling.seed = 11u * (uint64_t)i + 1;
        CHECK(shoal_cluster_submit(c, &rp, &r[i]) == SHOAL_OK, "submit: %s", shoal_last_error());
    }
    for (int step = 0; step < 400; step++) {
        if (step == 9) CHECK(shoal_request_cancel(r[6]) == SHOAL_OK, "cancel");
        int did = 0;
        CHECK(shoal_cluster_step(c, &did) == SHOAL_OK, "step: %s", shoal_last_error());
        if (!did) break;
    }
    for (int i = 0; i < 8; i++) {
        shoal_request_result res;
        CHECK(shoal_request_get_result(r[i], &res) == SHOAL_OK, "result");
        o->status[i] = res.status;
        o->finish[i] = res.finish;
        o->n[i] = res.n_tokens < 40 ? res.n_tokens : 40;
        memcpy(o->tokens[i], res.tokens, (size_t)o->n[i] * sizeof(int32_t));
        shoal_request_free(r[i]);
    }
    shoal_cluster_stats st;
    shoal_cluster_get_stats(c, &st);
    o->overlapped = st.overlapped_steps;
    o->steps = st.steps;
    o->kv_end_free = st.kv_free;
    o->kv_blocks = st.kv_blocks;
    shoal_cluster_free(c);
}

static void test_overlap(void) {
    static ov_out on, off;
    run_overlap(0, &off);
    run_overlap(1, &on);
    int same = 0, stopped = 0;
    for (int i = 0; i < 8; i++) {
        int eq = on.n[i] == off.n[i] && !memcmp(on.tokens[i], off.tokens[i], (size_t)on.n[i] * sizeof(int32_t)) &&
                 on.status[i] == off.status[i] && on.finish[i] == off.finish[i];
        CHECK(eq, "sequence %d: overlapped steps changed it (%d vs %d tokens, finish %d vs %d)", i, on.n[i], off.n[i],
              on.finish[i], off.finish[i]);
        same += eq;
        stopped += off.finish[i] == SHOAL_FINISH_STOP;
    }
    CHECK(off.finish[6] == SHOAL_FINISH_CANCELLED && off.status[6] == SHOAL_ERR_CANCELLED, "sequence 6 was cancelled");
    CHECK(stopped > 0, "some sequence ended on a stop id (%d)", stopped);
    CHECK(off.overlapped == 0, "no overlapped steps with SHOAL_STEP_OVERLAP=0 (%llu)", (unsigned long long)off.overlapped);
    CHECK(on.overlapped * 2 > on.steps, "most steps overlapped (%llu of %llu)", (unsigned long long)on.overlapped,
          (unsigned long long)on.steps);
    CHECK(on.kv_end_free == on.kv_blocks && off.kv_end_free == off.kv_blocks, "KV all free at the end");
    printf("overlap: %d/8 sequences the same, %llu of %llu steps overlapped (%llu steps without), %d stopped on an id\n",
           same, (unsigned long long)on.overlapped, (unsigned long long)on.steps, (unsigned long long)off.steps, stopped);
}

int main(void) {
    static char fix[1024];
    g_fix = realpath(check_env("SHOAL_FIXTURES", "tests/fixtures"), fix) ? fix : "tests/fixtures";
    const char *names[] = {"llama-mha-tied", "llama-gqa", "llama-mqa", "qwen2", "gpt2", "bert"};
    for (int i = 0; i < 6; i++) snprintf(g_paths[i], sizeof g_paths[i], "%s/models/%s/model-f32.gguf", g_fix, names[i]);
    test_busy_and_errors();
    test_deadlines();
    test_cancel();
    test_launches();
    test_exact_mixed();
    test_overlap();
    g_samplers = 2; /* again with sequences sampled on helper threads */
    test_exact_mixed();
    g_samplers = 0;
    test_preempt();
    test_limits();
    test_threaded();
    test_embed_and_config();
    return check_report();
}
