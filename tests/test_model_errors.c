/* Malformed models at the architecture level: missing or absurd config keys,
 * unknown architectures, missing tensors, wrong shapes. Each load must fail
 * with a non-zero status and a message, never crash. Also request-level
 * errors: tokens outside the vocabulary, prompts past the context. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "shoal.h"

static char g_tmp[256];

static void write_file(const char *dir, const char *name, const void *data, size_t n) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (!f) return;
    fwrite(data, 1, n, f);
    fclose(f);
}

/* Writes model.safetensors with f32 tensors of the given shapes (values 0.01). */
typedef struct { const char *name; int rows, cols; } tdesc;
static void write_st(const char *dir, const tdesc *t, int n) {
    char hdr[8192];
    size_t off = 0, len = 0;
    len += (size_t)snprintf(hdr + len, sizeof hdr - len, "{");
    for (int i = 0; i < n; i++) {
        size_t bytes = (size_t)t[i].rows * (size_t)(t[i].cols ? t[i].cols : 1) * 4;
        if (t[i].cols)
            len += (size_t)snprintf(hdr + len, sizeof hdr - len,
                                    "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%d,%d],\"data_offsets\":[%zu,%zu]}",
                                    i ? "," : "", t[i].name, t[i].rows, t[i].cols, off, off + bytes);
        else
            len += (size_t)snprintf(hdr + len, sizeof hdr - len,
                                    "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%d],\"data_offsets\":[%zu,%zu]}",
                                    i ? "," : "", t[i].name, t[i].rows, off, off + bytes);
        off += bytes;
    }
    len += (size_t)snprintf(hdr + len, sizeof hdr - len, "}");
    size_t total = 8 + len + off;
    unsigned char *buf = calloc(1, total);
    uint64_t hl = len;
    memcpy(buf, &hl, 8);
    memcpy(buf + 8, hdr, len);
    float *f = (float *)(buf + 8 + len);
    for (size_t i = 0; i < off / 4; i++) memcpy((unsigned char *)f + i * 4, &(float){0.01f}, 4);
    write_file(dir, "model.safetensors", buf, total);
    free(buf);
}

static const char *mkcase(const char *name) {
    static char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", g_tmp, name);
    mkdir(dir, 0700);
    return dir;
}

static void expect_fail(const char *path, const char *what) {
    shoal_model *m = (shoal_model *)0x1;
    shoal_status s = shoal_model_load(path, NULL, &m);
    const char *msg = shoal_last_error();
    CHECK(s != SHOAL_OK && m == NULL && msg && *msg, "%s: status %d, message '%s'", what, s, msg ? msg : "");
    if (s != SHOAL_OK) printf("  %-28s -> %s: %s\n", what, shoal_status_str(s), msg);
    shoal_model_free(s == SHOAL_OK ? m : NULL);
}

static const char *llama_cfg =
    "{\"model_type\":\"llama\",\"hidden_size\":64,\"intermediate_size\":128,\"num_hidden_layers\":1,"
    "\"num_attention_heads\":4,\"num_key_value_heads\":2,\"vocab_size\":32,\"rms_norm_eps\":1e-5}";

static const tdesc llama_tensors[] = {
    {"model.embed_tokens.weight", 32, 64},
    {"model.norm.weight", 64, 0},
    {"model.layers.0.input_layernorm.weight", 64, 0},
    {"model.layers.0.post_attention_layernorm.weight", 64, 0},
    {"model.layers.0.self_attn.q_proj.weight", 64, 64},
    {"model.layers.0.self_attn.k_proj.weight", 32, 64},
    {"model.layers.0.self_attn.v_proj.weight", 32, 64},
    {"model.layers.0.self_attn.o_proj.weight", 64, 64},
    {"model.layers.0.mlp.gate_proj.weight", 128, 64},
    {"model.layers.0.mlp.up_proj.weight", 128, 64},
    {"model.layers.0.mlp.down_proj.weight", 64, 128},
};
#define N_LLAMA (int)(sizeof llama_tensors / sizeof llama_tensors[0])

static void cfg_case(const char *name, const char *cfg) {
    const char *d = mkcase(name);
    write_file(d, "config.json", cfg, strlen(cfg));
    write_st(d, llama_tensors, N_LLAMA);
    expect_fail(d, name);
}

/* Replaces the first occurrence of from (flen bytes, as is to) in a copy of src. */
static int patch_copy(const char *src, const char *dst, const char *from, const char *to, size_t flen) {
    FILE *f = fopen(src, "rb");
    if (!f) return 0;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n);
    size_t got = fread(b, 1, (size_t)n, f);
    fclose(f);
    int done = 0;
    for (long i = 0; got == (size_t)n && i + (long)flen <= n && !done; i++)
        if (memcmp(b + i, from, flen) == 0) {
            memcpy(b + i, to, flen);
            done = 1;
        }
    FILE *o = fopen(dst, "wb");
    if (o) {
        fwrite(b, 1, (size_t)n, o);
        fclose(o);
    }
    free(b);
    return done;
}

int main(void) {
    snprintf(g_tmp, sizeof g_tmp, "/tmp/shoal-model-errors-XXXXXX");
    if (!mkdtemp(g_tmp)) return 1;

    /* the well-formed case loads: the malformed ones differ in one thing */
    {
        const char *d = mkcase("good");
        write_file(d, "config.json", llama_cfg, strlen(llama_cfg));
        write_st(d, llama_tensors, N_LLAMA);
        shoal_model *m = NULL;
        CHECK(shoal_model_load(d, NULL, &m) == SHOAL_OK, "good folder: %s", shoal_last_error());
        if (m) {
            shoal_context *c = NULL;
            CHECK(shoal_context_create(m, NULL, &c) == SHOAL_OK, "context");
            float lg[32];
            int32_t bad_tok[] = {1, 32};
            CHECK(shoal_decode(c, bad_tok, 2, 0, lg) == SHOAL_ERR_INVALID_ARG, "token id == vocab accepted");
            int32_t neg_tok[] = {-1};
            CHECK(shoal_decode(c, neg_tok, 1, 0, lg) == SHOAL_ERR_INVALID_ARG, "negative token accepted");
            CHECK(shoal_context_n_past(c) == 0, "failed decode advanced the context");
            int32_t *many = calloc(5000, sizeof *many);
            CHECK(shoal_decode(c, many, 5000, 0, lg) == SHOAL_ERR_RANGE, "prompt past the context accepted");
            free(many);
            int32_t ok_tok[] = {1, 2, 3};
            CHECK(shoal_decode(c, ok_tok, 3, 0, lg) == SHOAL_OK, "decode after errors: %s", shoal_last_error());
            float h[64];
            CHECK(shoal_encode(c, ok_tok, 3, h, NULL) == SHOAL_ERR_INVALID_ARG, "encode on a decoder accepted");
            shoal_context_free(c);
        }
        shoal_model_free(m);
    }
    cfg_case("unknown-arch", "{\"model_type\":\"mamba\",\"hidden_size\":64}");
    cfg_case("no-model-type", "{\"hidden_size\":64}");
    cfg_case("missing-hidden", "{\"model_type\":\"llama\",\"intermediate_size\":128,\"num_hidden_layers\":1,"
                               "\"num_attention_heads\":4,\"vocab_size\":32}");
    cfg_case("missing-layers", "{\"model_type\":\"llama\",\"hidden_size\":64,\"intermediate_size\":128,"
                               "\"num_attention_heads\":4,\"vocab_size\":32}");
    cfg_case("absurd-hidden", "{\"model_type\":\"llama\",\"hidden_size\":1e12,\"intermediate_size\":128,"
                              "\"num_hidden_layers\":1,\"num_attention_heads\":4,\"vocab_size\":32}");
    cfg_case("negative-layers", "{\"model_type\":\"llama\",\"hidden_size\":64,\"intermediate_size\":128,"
                                "\"num_hidden_layers\":-3,\"num_attention_heads\":4,\"vocab_size\":32}");
    cfg_case("huge-layers", "{\"model_type\":\"llama\",\"hidden_size\":64,\"intermediate_size\":128,"
                            "\"num_hidden_layers\":100000000,\"num_attention_heads\":4,\"vocab_size\":32}");
    cfg_case("kv-heads-not-dividing", "{\"model_type\":\"llama\",\"hidden_size\":64,\"intermediate_size\":128,"
                                      "\"num_hidden_layers\":1,\"num_attention_heads\":4,\"num_key_value_heads\":3,"
                                      "\"vocab_size\":32}");
    cfg_case("string-for-number", "{\"model_type\":\"llama\",\"hidden_size\":\"64\",\"intermediate_size\":128,"
                                  "\"num_hidden_layers\":1,\"num_attention_heads\":4,\"vocab_size\":32}");
    cfg_case("vocab-mismatch", "{\"model_type\":\"llama\",\"hidden_size\":64,\"intermediate_size\":128,"
                               "\"num_hidden_layers\":1,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
                               "\"vocab_size\":33}");
    cfg_case("bad-eps", "{\"model_type\":\"llama\",\"hidden_size\":64,\"intermediate_size\":128,"
                        "\"num_hidden_layers\":1,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
                        "\"vocab_size\":32,\"rms_norm_eps\":-1}");
    cfg_case("not-json", "{\"model_type\": llama");
    cfg_case("layers-past-tensors", "{\"model_type\":\"llama\",\"hidden_size\":64,\"intermediate_size\":128,"
                                    "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
                                    "\"vocab_size\":32}");
    {   /* a tensor missing from the file */
        const char *d = mkcase("missing-tensor");
        write_file(d, "config.json", llama_cfg, strlen(llama_cfg));
        write_st(d, llama_tensors, N_LLAMA - 1);
        expect_fail(d, "missing-tensor");
    }
    {   /* a tensor with the wrong shape */
        tdesc t[N_LLAMA];
        memcpy(t, llama_tensors, sizeof t);
        t[5].rows = 16;
        const char *d = mkcase("wrong-shape");
        write_file(d, "config.json", llama_cfg, strlen(llama_cfg));
        write_st(d, t, N_LLAMA);
        expect_fail(d, "wrong-shape");
    }
    {   /* no config.json in a folder */
        const char *d = mkcase("no-config");
        write_st(d, llama_tensors, N_LLAMA);
        expect_fail(d, "no-config");
    }
    /* GGUF: unknown architecture (the value patched in place) */
    {
        char src[512], dst[512];
        snprintf(src, sizeof src, "%s/models/llama-gqa/model-f32.gguf", check_env("SHOAL_FIXTURES", "tests/fixtures"));
        snprintf(dst, sizeof dst, "%s/unknown-arch.gguf", g_tmp);
        static const char from[] = "general.architecture\x08\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00llama";
        static const char to[] = "general.architecture\x08\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00" "falco";
        CHECK(patch_copy(src, dst, from, to, sizeof from - 1),
              "could not patch %s", src);
        expect_fail(dst, "gguf-unknown-arch");
        snprintf(dst, sizeof dst, "%s/missing-key.gguf", g_tmp);
        CHECK(patch_copy(src, dst, "llama.block_count", "llama.block_coun_", 17), "patch block_count");
        expect_fail(dst, "gguf-missing-key");
    }
    expect_fail("/nonexistent/model.gguf", "missing-path");
    expect_fail("synthetic:nonsense", "unknown-synthetic-shape");
    {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
        if (system(cmd) != 0) fprintf(stderr, "cleanup failed\n");
    }
    return check_report();
}
