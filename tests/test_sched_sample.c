/* Sampling inside the step (the backend's sample op, draws from each
 * request's rng on the host) gives the tokens of the host path (logits
 * downloaded, sh_sample on the sampling threads), for the same seeds: a
 * cluster of three synthetic models runs requests that are greedy, greedy
 * with a repetition penalty (host path either way), and sampled with
 * temperature, top-k, top-p and min-p in combinations; then again with
 * SHOAL_DEVICE_SAMPLE=0. The same for shoal_generate on a context. Device:
 * SHOAL_TEST_DEVICE (default cpu); on an accelerator the two paths may
 * differ only where a draw lies within rounding of a boundary (vocabularies
 * of 512: not expected). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "shoal.h"

enum { NJ = 18, NGEN = 24 };

static const char *g_dev;
static const shoal_cluster_model g_models[] = {
    {"tiny", "synthetic:tiny:f32:7"}, {"tinyq", "synthetic:tiny:q8_0:8"}, {"tinyg", "synthetic:tiny-gpt2:f32:9"},
};

static shoal_sampling_params job_params(int i) {
    shoal_sampling_params sp;
    shoal_sampling_params_init(&sp);
    sp.stop_at_eos = 0;
    sp.seed = 1234u + (uint64_t)i * 7919u;
    switch (i % 6) {
    case 0: break; /* greedy */
    case 1: sp.repetition_penalty = 1.3f; break;
    case 2: sp.temperature = 0.9f; break;
    case 3: sp.temperature = 0.7f, sp.top_k = 40, sp.top_p = 0.9f; break;
    case 4: sp.temperature = 1.2f, sp.min_p = 0.05f; break;
    default: sp.temperature = 0.8f, sp.top_p = 0.5f, sp.repetition_penalty = 1.1f; break;
    }
    return sp;
}

static void make_prompt(int32_t *p, int n, uint64_t seed) {
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (int32_t)(x % 256u);
    }
}

/* Runs every job through one cluster; tokens into out[job][NGEN]. */
static int run_cluster(int32_t out[NJ][NGEN], int n_out[NJ]) {
    shoal_cluster_params cp;
    shoal_cluster_params_init(&cp);
    cp.device = g_dev;
    cp.models = g_models;
    cp.n_models = 3;
    cp.sample_threads = 2;
    cp.max_batch_rows = 64;
    cp.prefill_chunk = 16;
    shoal_cluster *c = NULL;
    if (shoal_cluster_create(&cp, &c) != SHOAL_OK) {
        CHECK(0, "cluster create: %s", shoal_last_error());
        return 0;
    }
    shoal_request *rq[NJ];
    int32_t prompts[NJ][40];
    for (int i = 0; i < NJ; i++) {
        int np = 3 + (i * 11) % 37;
        make_prompt(prompts[i], np, (uint64_t)i + 5);
        shoal_request_params rp;
        shoal_request_params_init(&rp);
        rp.model = g_models[i % 3].name;
        rp.prompt = prompts[i];
        rp.n_prompt = np;
        rp.max_tokens = NGEN;
        rp.sampling = job_params(i);
        rq[i] = NULL;
        CHECK(shoal_cluster_submit(c, &rp, &rq[i]) == SHOAL_OK, "submit: %s", shoal_last_error());
    }
    CHECK(shoal_cluster_run_until_idle(c) == SHOAL_OK, "run: %s", shoal_last_error());
    for (int i = 0; i < NJ; i++) {
        n_out[i] = -1;
        if (!rq[i]) continue;
        shoal_request_result res;
        if (shoal_request_get_result(rq[i], &res) == SHOAL_OK && res.status == SHOAL_OK) {
            n_out[i] = res.n_tokens;
            memcpy(out[i], res.tokens, (size_t)res.n_tokens * sizeof(int32_t));
        }
        shoal_request_free(rq[i]);
    }
    shoal_cluster_free(c);
    return 1;
}

/* shoal_generate on a context for job i's parameters (greedy: temperature 0). */
static int run_context(int i, int32_t *out, int greedy) {
    shoal_model_params mp;
    shoal_model_params_init(&mp);
    mp.device = g_dev;
    shoal_model *m = NULL;
    shoal_context *ctx = NULL;
    int got = -1;
    int32_t prompt[40];
    int np = 3 + (i * 11) % 37;
    make_prompt(prompt, np, (uint64_t)i + 5);
    shoal_sampling_params sp = job_params(i);
    if (greedy) sp.temperature = 0.0f;
    if (shoal_model_load(g_models[i % 3].path, &mp, &m) == SHOAL_OK && shoal_context_create(m, NULL, &ctx) == SHOAL_OK)
        CHECK(shoal_generate(ctx, prompt, np, &sp, NGEN, out, &got, NULL, NULL) == SHOAL_OK, "generate: %s",
              shoal_last_error());
    shoal_context_free(ctx);
    shoal_model_free(m);
    return got;
}

int main(void) {
    g_dev = check_env("SHOAL_TEST_DEVICE", "cpu");
    static int32_t dev[NJ][NGEN], host[NJ][NGEN], cdev[NJ][NGEN], chost[NJ][NGEN];
    int n_dev[NJ], n_host[NJ], nc_dev[NJ], nc_host[NJ];
    unsetenv("SHOAL_DEVICE_SAMPLE");
    if (!run_cluster(dev, n_dev)) {
        printf("skipped: %s\n", shoal_last_error());
        return check_report();
    }
    for (int i = 0; i < NJ; i++) nc_dev[i] = run_context(i, cdev[i], 0);
    setenv("SHOAL_DEVICE_SAMPLE", "0", 1);
    run_cluster(host, n_host);
    for (int i = 0; i < NJ; i++) nc_host[i] = run_context(i, chost[i], 0);
    unsetenv("SHOAL_DEVICE_SAMPLE");
    int same = 0, same_ctx = 0, sampled = 0, distinct = 0;
    for (int i = 0; i < NJ; i++) {
        int eq = n_dev[i] == NGEN && n_host[i] == NGEN && !memcmp(dev[i], host[i], sizeof dev[i]);
        int eqc = nc_dev[i] == NGEN && nc_host[i] == NGEN && !memcmp(cdev[i], chost[i], sizeof cdev[i]);
        CHECK(eq, "%s job %d: cluster tokens with the sample op differ from the host path", g_dev, i);
        CHECK(eqc, "%s job %d: context tokens with the sample op differ from the host path", g_dev, i);
        same += eq;
        same_ctx += eqc;
        if (job_params(i).temperature > 0) {
            sampled++;
            /* the draws matter: sampled tokens differ from greedy ones */
            int32_t g[NGEN];
            distinct += run_context(i, g, 1) == NGEN && memcmp(dev[i], g, sizeof g) != 0;
        }
    }
    CHECK(distinct > 0, "no sampled job differs from greedy: the draws are not used");
    printf("%s: cluster %d/%d and context %d/%d jobs equal between the sample op and the host path "
           "(%d sampled, %d of them unlike greedy)\n",
           g_dev, same, NJ, same_ctx, NJ, sampled, distinct);
    return check_report();
}
