/* Fusion against independent references, on any device (SHOAL_TEST_DEVICE,
 * default cpu): every decoder fixture model (llama MHA/GQA/MQA, qwen2, gpt2;
 * f32 and f16 GGUF, so two families and several widths of KV) in ONE cluster,
 * requests arriving staggered, some with shorter prompts, all fused into the
 * same steps. Each full-prompt request's greedy tokens must equal the Hugging
 * Face reference path (ref.json; the fixtures' top-1/top-2 margins are >= 1e-2
 * relative, so device rounding cannot flip them), and each short-prompt
 * request's tokens must equal the same model run alone through a context on the
 * same device. A BERT fixture rides along as an embedding request. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "shoal.h"

#define MAXM 12
#define NGEN 16

typedef struct fx {
    char name[32], path[1024];
    int32_t prompt[32];
    int n_prompt;
    int32_t ref[NGEN];
} fx;

static const char *g_dev;

static int load_ref(const char *dir, const char *model, const char *variant, fx *f) {
    char p[1024];
    snprintf(p, sizeof p, "%s/models/%s/ref.json", dir, model);
    char *js = check_read_file(p, NULL);
    if (!js) return 0;
    cJSON *r = cJSON_Parse(js);
    free(js);
    if (!r) return 0;
    const cJSON *tk = cJSON_GetObjectItem(r, "tokens");
    f->n_prompt = cJSON_GetArraySize(tk);
    for (int i = 0; i < f->n_prompt && i < 32; i++) f->prompt[i] = (int32_t)cJSON_GetArrayItem(tk, i)->valuedouble;
    const cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "variants"), variant);
    const cJSON *ids = cJSON_GetObjectItem(cJSON_GetObjectItem(v, "greedy"), "ids");
    int ok = cJSON_GetArraySize(ids) >= NGEN;
    for (int i = 0; ok && i < NGEN; i++) f->ref[i] = (int32_t)cJSON_GetArrayItem(ids, i)->valuedouble;
    snprintf(f->name, sizeof f->name, "%s-%s", model, variant);
    snprintf(f->path, sizeof f->path, "%s/models/%s/%s", dir, model, cJSON_GetStringValue(cJSON_GetObjectItem(v, "gguf")));
    cJSON_Delete(r);
    return ok;
}

/* Greedy tokens of path alone through a context on the test device. */
static int alone(const char *path, const int32_t *prompt, int n, int32_t *out) {
    shoal_model_params mp;
    shoal_model_params_init(&mp);
    mp.device = g_dev;
    shoal_model *m = NULL;
    shoal_context *c = NULL;
    int got = 0;
    shoal_sampling_params sp;
    shoal_sampling_params_init(&sp);
    sp.stop_at_eos = 0;
    if (shoal_model_load(path, &mp, &m) == SHOAL_OK && shoal_context_create(m, NULL, &c) == SHOAL_OK)
        shoal_generate(c, prompt, n, &sp, NGEN, out, &got, NULL, NULL);
    shoal_context_free(c);
    shoal_model_free(m);
    return got;
}

static shoal_request *submit(shoal_cluster *c, const char *model, const int32_t *prompt, int n) {
    shoal_request_params rp;
    shoal_request_params_init(&rp);
    rp.model = model;
    rp.prompt = prompt;
    rp.n_prompt = n;
    rp.max_tokens = NGEN;
    rp.sampling.stop_at_eos = 0;
    shoal_request *r = NULL;
    shoal_status s = shoal_cluster_submit(c, &rp, &r);
    CHECK(s == SHOAL_OK, "submit %s: %s", model, shoal_last_error());
    return r;
}

int main(void) {
    const char *dir = check_env("SHOAL_FIXTURES", "tests/fixtures");
    g_dev = check_env("SHOAL_TEST_DEVICE", "cpu");
    static const char *models[] = {"llama-mha-tied", "llama-gqa", "llama-mqa", "qwen2", "gpt2"};
    static const char *variants[] = {"f32", "f16"};
    fx f[MAXM];
    int nf = 0;
    for (int i = 0; i < 5; i++)
        for (int v = 0; v < 2; v++) {
            CHECK(load_ref(dir, models[i], variants[v], &f[nf]), "fixture %s %s", models[i], variants[v]);
            nf++;
        }
    shoal_cluster_model cm[MAXM];
    for (int i = 0; i < nf; i++) cm[i] = (shoal_cluster_model){f[i].name, f[i].path};
    char bert[1024];
    snprintf(bert, sizeof bert, "%s/models/bert/model-f32.gguf", dir);
    cm[nf] = (shoal_cluster_model){"bert", bert};
    shoal_cluster_params cp;
    shoal_cluster_params_init(&cp);
    cp.device = g_dev;
    cp.models = cm;
    cp.n_models = nf + 1;
    cp.threaded = 0;
    cp.prefill_chunk = 5; /* prompts span several steps, mixed with decode rows */
    shoal_cluster *c = NULL;
    shoal_status s = shoal_cluster_create(&cp, &c);
    CHECK(s == SHOAL_OK, "cluster on %s: %s", g_dev, shoal_last_error());
    if (s != SHOAL_OK) return check_report();

    shoal_request *full[MAXM] = {0}, *part[MAXM] = {0}, *emb = NULL;
    /* wave 1: half the models; then a few steps; wave 2: the rest + short prompts */
    for (int i = 0; i < nf; i += 2) full[i] = submit(c, f[i].name, f[i].prompt, f[i].n_prompt);
    for (int k = 0; k < 4; k++) shoal_cluster_step(c, NULL);
    for (int i = 1; i < nf; i += 2) full[i] = submit(c, f[i].name, f[i].prompt, f[i].n_prompt);
    for (int i = 0; i < nf; i++) part[i] = submit(c, f[i].name, f[i].prompt, 3 + i % 5);
    shoal_request_params rp;
    shoal_request_params_init(&rp);
    rp.model = "bert";
    rp.kind = SHOAL_REQUEST_EMBED;
    rp.prompt = f[0].prompt;
    rp.n_prompt = f[0].n_prompt;
    CHECK(shoal_cluster_submit(c, &rp, &emb) == SHOAL_OK, "embed submit: %s", shoal_last_error());
    CHECK(shoal_cluster_run_until_idle(c) == SHOAL_OK, "run: %s", shoal_last_error());

    shoal_cluster_stats st;
    shoal_cluster_get_stats(c, &st);
    printf("%s: %llu steps, %.1f launches/step, %.1f groups/launch\n", g_dev, (unsigned long long)st.steps,
           st.steps ? (double)st.launches / (double)st.steps : 0.0,
           st.launches ? (double)st.groups / (double)st.launches : 0.0);
    for (int i = 0; i < nf; i++) {
        shoal_request_result res;
        if (full[i] && shoal_request_get_result(full[i], &res) == SHOAL_OK) {
            int same = res.status == SHOAL_OK && res.n_tokens == NGEN;
            for (int k = 0; same && k < NGEN; k++) same = res.tokens[k] == f[i].ref[k];
            CHECK(same, "%s fused on %s: tokens differ from the HF greedy path", f[i].name, g_dev);
        } else {
            CHECK(0, "%s: no result", f[i].name);
        }
        if (part[i] && shoal_request_get_result(part[i], &res) == SHOAL_OK) {
            int32_t solo[NGEN];
            int n = alone(f[i].path, f[i].prompt, 3 + i % 5, solo);
            int same = res.status == SHOAL_OK && res.n_tokens == NGEN && n == NGEN;
            for (int k = 0; same && k < NGEN; k++) same = res.tokens[k] == solo[k];
            CHECK(same, "%s short prompt fused on %s: tokens differ from the model alone", f[i].name, g_dev);
        } else {
            CHECK(0, "%s: no short-prompt result", f[i].name);
        }
        shoal_request_free(full[i]);
        shoal_request_free(part[i]);
    }
    if (emb) {
        shoal_request_result res;
        float ref[64];
        char p[1100];
        snprintf(p, sizeof p, "%s/models/bert/embed-f32.bin", dir);
        FILE *fe = fopen(p, "rb");
        int okr = fe && fread(ref, 4, 64, fe) == 64;
        if (fe) fclose(fe);
        CHECK(okr && shoal_request_get_result(emb, &res) == SHOAL_OK && res.embedding && res.n_embd == 64,
              "bert result");
        if (okr && res.embedding) {
            double d = 0;
            for (int i = 0; i < 64; i++) d += (double)res.embedding[i] * ref[i];
            CHECK(d >= 0.99999, "bert embedding cosine %.7f", d);
        }
        shoal_request_free(emb);
    }
    shoal_cluster_free(c);
    return check_report();
}
