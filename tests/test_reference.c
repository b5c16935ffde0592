/* Reference fixtures from Hugging Face transformers (tests/fixtures/models,
 * made by gen_fixtures.py): every model x variant x source format through the
 * public API on a device (SHOAL_TEST_DEVICE, default "cpu").
 *
 * Bounds, as max|ours - ref| / max|ref|:
 *   f32 weights vs the f32 reference                    <= 1e-4 (the bound)
 *   f16 weights vs the f32 reference                    <= 1e-2 (the bound)
 *   f16 weights vs the f16-weight reference             <= 1e-4
 *   q8_0 / q4_0 vs the dequantised-weight reference     <= 1e-4 (weights are
 *       dequantised and the maths is f32, so only rounding order differs)
 * Greedy continuations (16 tokens) equal the reference for f32 and for every
 * variant whose own reference path is recorded (margins >= 1e-2 relative).
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "shoal.h"

static const char *g_dir;
static const char *g_device;
/* On accelerators the bounds widen to the CUDA issue's "within f16 bounds". */
static double g_tol_tight = 1e-4;

static float *read_f32(const char *model, const char *file, size_t expect) {
    char p[1024];
    snprintf(p, sizeof p, "%s/models/%s/%s", g_dir, model, file);
    size_t n = 0;
    char *b = check_read_file(p, &n);
    if (!b || n != expect * sizeof(float)) {
        fprintf(stderr, "cannot read %s (%zu bytes, expected %zu)\n", p, n, expect * sizeof(float));
        free(b);
        return NULL;
    }
    return (float *)b;
}

static double rel_err(const float *a, const float *ref, size_t n) {
    double md = 0, mr = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)ref[i]);
        if (!(d == d)) return INFINITY;
        if (d > md) md = d;
        if (fabs((double)ref[i]) > mr) mr = fabs((double)ref[i]);
    }
    return mr > 0 ? md / mr : md;
}

static shoal_model *load(const char *model, const char *rel) {
    char p[1024];
    snprintf(p, sizeof p, "%s/models/%s/%s", g_dir, model, rel);
    shoal_model_params mp;
    shoal_model_params_init(&mp);
    mp.device = g_device;
    mp.n_threads = 2;
    shoal_model *m = NULL;
    shoal_status s = shoal_model_load(p, &mp, &m);
    CHECK(s == SHOAL_OK, "load %s: %s", p, shoal_last_error());
    return m;
}

static void run_decoder(const char *name, const cJSON *ref, const int32_t *toks, int nt, int nv) {
    const cJSON *vars = cJSON_GetObjectItem(ref, "variants");
    float *ref32 = read_f32(name, "logits-f32.bin", (size_t)nt * nv);
    CHECK(ref32 != NULL, "%s: f32 reference", name);
    if (!ref32) return;
    const cJSON *v;
    cJSON_ArrayForEach(v, vars) {
        const char *vn = v->string;
        const char *lf = cJSON_GetStringValue(cJSON_GetObjectItem(v, "logits"));
        float *refv = read_f32(name, lf, (size_t)nt * nv);
        CHECK(refv != NULL, "%s/%s reference", name, vn);
        if (!refv) continue;
        const char *srcs[2] = {cJSON_GetStringValue(cJSON_GetObjectItem(v, "gguf")),
                               cJSON_GetStringValue(cJSON_GetObjectItem(v, "hf"))};
        for (int si = 0; si < 2; si++) {
            if (!srcs[si]) continue;
            shoal_model *m = load(name, srcs[si]);
            if (!m) continue;
            shoal_context *c = NULL;
            CHECK(shoal_context_create(m, NULL, &c) == SHOAL_OK, "context: %s", shoal_last_error());
            float *lg = malloc((size_t)nt * nv * sizeof *lg);
            if (c && lg && shoal_decode(c, toks, nt, 1, lg) == SHOAL_OK) {
                double e_own = rel_err(lg, refv, (size_t)nt * nv);
                double e_32 = rel_err(lg, ref32, (size_t)nt * nv);
                printf("  %-16s %-5s %-15s vs own ref %.3g, vs f32 ref %.3g\n", name, vn, srcs[si], e_own, e_32);
                CHECK(e_own <= g_tol_tight, "%s %s %s: error %.3g vs its reference", name, vn, srcs[si], e_own);
                if (!strcmp(vn, "f32")) CHECK(e_32 <= g_tol_tight, "%s f32: %.3g", name, e_32);
                if (!strcmp(vn, "f16")) CHECK(e_32 <= 1e-2, "%s f16 vs f32 reference: %.3g", name, e_32);
            } else {
                CHECK(0, "%s %s %s: decode failed: %s", name, vn, srcs[si], shoal_last_error());
            }
            /* greedy continuation from the prompt equals the reference path */
            const cJSON *gr = cJSON_GetObjectItem(cJSON_GetObjectItem(v, "greedy"), "ids");
            if (c && cJSON_IsArray(gr)) {
                int ng = cJSON_GetArraySize(gr);
                int32_t out[64];
                int n_out = 0;
                shoal_sampling_params sp;
                shoal_sampling_params_init(&sp);
                sp.stop_at_eos = 0;
                shoal_context_reset(c);
                shoal_status s = shoal_generate(c, toks, nt, &sp, ng, out, &n_out, NULL, NULL);
                CHECK(s == SHOAL_OK && n_out == ng, "%s %s generate: %s", name, vn, shoal_last_error());
                int same = n_out == ng;
                for (int i = 0; same && i < ng; i++) same = out[i] == (int32_t)cJSON_GetArrayItem(gr, i)->valuedouble;
                CHECK(same, "%s %s %s: greedy continuation differs from the reference", name, vn, srcs[si]);
            }
            free(lg);
            shoal_context_free(c);
            shoal_model_free(m);
        }
        free(refv);
    }
    free(ref32);
}

static void run_encoder(const char *name, const cJSON *ref, const int32_t *toks, int nt, int d) {
    const cJSON *v;
    cJSON_ArrayForEach(v, cJSON_GetObjectItem(ref, "variants")) {
        const char *vn = v->string;
        float *rh = read_f32(name, cJSON_GetStringValue(cJSON_GetObjectItem(v, "hidden")), (size_t)nt * d);
        float *re = read_f32(name, cJSON_GetStringValue(cJSON_GetObjectItem(v, "embed")), (size_t)d);
        CHECK(rh && re, "%s/%s references", name, vn);
        const char *srcs[2] = {cJSON_GetStringValue(cJSON_GetObjectItem(v, "gguf")),
                               cJSON_GetStringValue(cJSON_GetObjectItem(v, "hf"))};
        for (int si = 0; si < 2 && rh && re; si++) {
            if (!srcs[si]) continue;
            shoal_model *m = load(name, srcs[si]);
            if (!m) continue;
            shoal_context *c = NULL;
            CHECK(shoal_context_create(m, NULL, &c) == SHOAL_OK, "context: %s", shoal_last_error());
            float *h = malloc((size_t)nt * d * sizeof *h), *e = malloc((size_t)d * sizeof *e);
            if (c && h && e && shoal_encode(c, toks, nt, h, e) == SHOAL_OK) {
                double eh = rel_err(h, rh, (size_t)nt * d), ee = rel_err(e, re, (size_t)d);
                double cosv = 0;
                for (int i = 0; i < d; i++) cosv += (double)e[i] * re[i];
                printf("  %-16s %-5s %-15s hidden %.3g, embedding %.3g, cosine %.8f\n", name, vn, srcs[si], eh, ee,
                       cosv);
                CHECK(eh <= g_tol_tight, "%s %s %s hidden error %.3g", name, vn, srcs[si], eh);
                CHECK(ee <= g_tol_tight, "%s %s %s embedding error %.3g", name, vn, srcs[si], ee);
            } else {
                CHECK(0, "%s %s %s: encode failed: %s", name, vn, srcs[si], shoal_last_error());
            }
            free(h);
            free(e);
            shoal_context_free(c);
            shoal_model_free(m);
        }
        free(rh);
        free(re);
    }
}

int main(void) {
    g_dir = check_env("SHOAL_FIXTURES", "tests/fixtures");
    g_device = check_env("SHOAL_TEST_DEVICE", "cpu");
    if (strcmp(g_device, "cpu") != 0) g_tol_tight = 1e-3;
    static const char *models[] = {"llama-mha-tied", "llama-gqa", "llama-mqa", "qwen2", "gpt2", "bert"};
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        char p[1024];
        snprintf(p, sizeof p, "%s/models/%s/ref.json", g_dir, models[i]);
        char *js = check_read_file(p, NULL);
        CHECK(js != NULL, "cannot read %s", p);
        if (!js) continue;
        cJSON *ref = cJSON_Parse(js);
        free(js);
        CHECK(ref != NULL, "bad json %s", p);
        if (!ref) continue;
        const cJSON *tk = cJSON_GetObjectItem(ref, "tokens");
        int nt = cJSON_GetArraySize(tk);
        int32_t toks[64];
        for (int k = 0; k < nt && k < 64; k++) toks[k] = (int32_t)cJSON_GetArrayItem(tk, k)->valuedouble;
        int nv = (int)cJSON_GetObjectItem(ref, "n_vocab")->valuedouble;
        int d = (int)cJSON_GetObjectItem(ref, "n_embd")->valuedouble;
        if (!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(ref, "arch")), "bert"))
            run_encoder(models[i], ref, toks, nt, d);
        else
            run_decoder(models[i], ref, toks, nt, nv);
        cJSON_Delete(ref);
    }
    return check_report();
}
