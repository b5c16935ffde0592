/* The fused forms of norm, activation and RoPE (GEMM x transforms, RoPE in
 * kv_write) against the separate ops, end to end through the public API:
 * every fixture model (llama MHA/GQA/MQA, qwen2, gpt2, bert; f32, f16, q8_0,
 * q4_0 GGUF) decodes a prompt, then single tokens, with SHOAL_FUSE_OPS=0 and
 * with the default (fused). On the CPU backend the logits must be bitwise
 * equal; on another device (SHOAL_TEST_DEVICE=cuda) within 1e-4 of the
 * largest logit (the fused GEMM sums in another order). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "shoal.h"

static const char *g_dir, *g_device;

/* Prompt logits (nt rows) then 4 single-token steps (1 row each), or the
 * bert hidden states of the prompt; NULL on failure. */
static float *run(const char *path, int fuse, const int32_t *toks, int nt, size_t *n_out) {
    setenv("SHOAL_FUSE_OPS", fuse ? "1" : "0", 1);
    shoal_model_params mp;
    shoal_model_params_init(&mp);
    mp.device = g_device;
    mp.n_threads = 2;
    shoal_model *m = NULL;
    if (shoal_model_load(path, &mp, &m) != SHOAL_OK) {
        CHECK(0, "load %s: %s", path, shoal_last_error());
        return NULL;
    }
    shoal_model_info info;
    shoal_model_get_info(m, &info);
    shoal_context *c = NULL;
    float *out = NULL;
    if (shoal_context_create(m, NULL, &c) != SHOAL_OK) {
        CHECK(0, "context %s: %s", path, shoal_last_error());
        goto done;
    }
    if (info.is_encoder) {
        *n_out = (size_t)nt * info.n_embd;
        out = malloc(*n_out * sizeof *out);
        shoal_status s = shoal_encode(c, toks, nt, out, NULL);
        CHECK(s == SHOAL_OK, "encode %s: %s", path, shoal_last_error());
        goto done;
    }
    *n_out = (size_t)(nt + 4) * info.n_vocab;
    out = malloc(*n_out * sizeof *out);
    shoal_status s = shoal_decode(c, toks, nt, 1, out);
    for (int i = 0; s == SHOAL_OK && i < 4; i++)
        s = shoal_decode(c, &toks[i], 1, 0, out + (size_t)(nt + i) * info.n_vocab);
    CHECK(s == SHOAL_OK, "decode %s: %s", path, shoal_last_error());
done:
    shoal_context_free(c);
    shoal_model_free(m);
    unsetenv("SHOAL_FUSE_OPS");
    return out;
}

int main(void) {
    g_dir = check_env("SHOAL_FIXTURES", "tests/fixtures");
    g_device = check_env("SHOAL_TEST_DEVICE", "cpu");
    const int exact = strcmp(g_device, "cpu") == 0;
    static const char *models[] = {"llama-mha-tied", "llama-gqa", "llama-mqa", "qwen2", "gpt2", "bert"};
    static const char *files[] = {"model-f32.gguf", "model-f16.gguf", "model-q8_0.gguf", "model-q4_0.gguf", "hf-f32"};
    int32_t toks[19];
    for (int i = 0; i < 19; i++) toks[i] = (i * 37 + 11) % 97 + 1;
    for (size_t mi = 0; mi < sizeof models / sizeof models[0]; mi++)
        for (size_t fi = 0; fi < sizeof files / sizeof files[0]; fi++) {
            char p[1024];
            snprintf(p, sizeof p, "%s/models/%s/%s", g_dir, models[mi], files[fi]);
            size_t na = 0, nb = 0;
            float *a = run(p, 0, toks, 19, &na), *b = run(p, 1, toks, 19, &nb);
            if (a && b && na == nb) {
                double md = 0, mr = 0;
                for (size_t i = 0; i < na; i++) {
                    double d = fabs((double)a[i] - b[i]);
                    if (!(d == d)) d = INFINITY;
                    if (d > md) md = d;
                    if (fabs((double)a[i]) > mr) mr = fabs((double)a[i]);
                }
                const double e = mr > 0 ? md / mr : md;
                printf("  %-15s %-16s fused vs separate: %.3g\n", models[mi], files[fi], e);
                if (exact) CHECK(memcmp(a, b, na * sizeof *a) == 0, "%s: fused differs from separate (%.3g)", p, e);
                else CHECK(e <= 1e-4, "%s: fused vs separate %.3g > 1e-4", p, e);
            }
            free(a);
            free(b);
        }
    return check_report();
}
