/* Model loading: hyperparameters and tensors from GGUF files or Hugging Face
 * folders, mapped onto the layer templates of model.h.
 *
 * Matrices stay in their file dtype and are handed to the backend as they
 * are (the CPU backend reads them straight from the mapping). Vectors (norm
 * weights, biases) are converted to f32. Two layouts need a host copy:
 * GPT-2 Conv1D weights in HF folders are stored (in, out) and are transposed.
 */
#include "model.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "gguf.h"
#include "hf.h"
#include "tensor.h"

const char *sh_arch_name(sh_arch a) {
    switch (a) {
    case SH_ARCH_LLAMA: return "llama";
    case SH_ARCH_QWEN2: return "qwen2";
    case SH_ARCH_GPT2: return "gpt2";
    case SH_ARCH_BERT: return "bert";
    }
    return "?";
}

uint64_t sh_model_kv_block_bytes(const shoal_model *m, sh_dtype kv_dtype) {
    uint64_t es = kv_dtype == SH_F16 ? 2 : 4;
    return (uint64_t)m->hp.n_layer * 2 * SH_KV_BLOCK * (uint64_t)sh_model_kv_dim(m) * es;
}

/* ============================================================================
 * Ownership helpers
 * ========================================================================== */

static shoal_status own_push(void ***arr, int *n, int *cap, void *p) {
    if (*n == *cap) {
        int nc = *cap ? *cap * 2 : 64;
        void **na = realloc(*arr, (size_t)nc * sizeof *na);
        if (!na) return sh_fail(SHOAL_ERR_NOMEM, "out of memory");
        *arr = na;
        *cap = nc;
    }
    (*arr)[(*n)++] = p;
    return SHOAL_OK;
}

shoal_status sh_model_host_alloc(shoal_model *m, size_t bytes, void **out) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) return sh_fail(SHOAL_ERR_NOMEM, "out of memory (%zu bytes)", bytes);
    shoal_status s = own_push(&m->host_owned, &m->n_host_owned, &m->cap_host_owned, p);
    if (s != SHOAL_OK) {
        free(p);
        return s;
    }
    *out = p;
    return SHOAL_OK;
}

/* Places host bytes on the backend: mapped in place when the bytes outlive
 * the model (file mapping or host_owned) and the backend can, else copied. */
shoal_status sh_model_to_backend(shoal_model *m, const void *host, size_t bytes, const void **out) {
    void *dev = NULL;
    if (m->be->ops->map_host) {
        SH_TRY(sh_be_map_host(m->be, host, bytes, &dev));
        *out = dev;
        return SHOAL_OK;
    }
    SH_TRY(sh_be_alloc(m->be, bytes, &dev));
    shoal_status s = own_push(&m->owned, &m->n_owned, &m->cap_owned, dev);
    if (s != SHOAL_OK) {
        sh_be_free(m->be, dev);
        return s;
    }
    SH_TRY(sh_be_upload(m->be, dev, host, bytes));
    *out = dev;
    return SHOAL_OK;
}

/* ============================================================================
 * Tensor lookup over either source
 * ========================================================================== */

/* HF names differ by prefix depending on the head class that saved them. */
static const char *const hf_prefixes[] = {"", "model.", "transformer.", "bert.", "encoder.", NULL};

static const sh_tensor *find_hf(const shoal_model *m, const char *name) {
    char buf[256];
    for (int i = 0; hf_prefixes[i]; i++) {
        snprintf(buf, sizeof buf, "%s%s", hf_prefixes[i], name);
        const sh_tensor *t = sh_hf_find_tensor(m->hf, buf);
        if (t) return t;
    }
    return NULL;
}

/* The dtype name if an HF file holds name (under any prefix) in a dtype the
 * reader skipped, else NULL. */
static const char *skipped_hf(const shoal_model *m, const char *name) {
    char buf[256];
    for (int i = 0; m->hf && hf_prefixes[i]; i++) {
        snprintf(buf, sizeof buf, "%s%s", hf_prefixes[i], name);
        const char *dt = sh_hf_skipped_dtype(m->hf, buf);
        if (dt) return dt;
    }
    return NULL;
}

static const sh_tensor *find(const shoal_model *m, const char *name) {
    return m->gguf ? sh_gguf_find_tensor(m->gguf, name) : find_hf(m, name);
}

static void account(shoal_model *m, const sh_tensor *t) {
    m->n_params += sh_tensor_nelements(t);
    m->n_bytes += t->nbytes;
}

/* Loads a vector of n elements as f32 onto the backend. */
static shoal_status load_vec(shoal_model *m, const char *name, int n, int required, const float **out) {
    *out = NULL;
    const sh_tensor *t = find(m, name);
    if (!t) {
        if (!required) return SHOAL_OK;
        if (skipped_hf(m, name))
            return sh_fail(SHOAL_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s, which shoal does not compute with",
                           m->path, name, skipped_hf(m, name));
        return sh_fail(SHOAL_ERR_FORMAT, "%s: missing tensor '%s'", m->path, name);
    }
    uint64_t ne = sh_tensor_nelements(t);
    if (ne != (uint64_t)n)
        return sh_fail(SHOAL_ERR_FORMAT, "%s: tensor '%s' has %llu elements, expected %d", m->path, name,
                       (unsigned long long)ne, n);
    account(m, t);
    const void *src = t->data;
    if (t->dtype != SH_F32) {
        if (t->dtype != SH_F16 && t->dtype != SH_BF16)
            return sh_fail(SHOAL_ERR_UNSUPPORTED, "%s: vector '%s' has dtype %s", m->path, name,
                           sh_dtype_name(t->dtype));
        void *f;
        SH_TRY(sh_model_host_alloc(m, (size_t)n * sizeof(float), &f));
        sh_dequantize_row(t->dtype, t->data, f, n);
        src = f;
    } else if (((uintptr_t)src & 3) != 0) {
        void *f;
        SH_TRY(sh_model_host_alloc(m, (size_t)n * sizeof(float), &f));
        memcpy(f, t->data, (size_t)n * sizeof(float));
        src = f;
    }
    const void *dev;
    SH_TRY(sh_model_to_backend(m, src, (size_t)n * sizeof(float), &dev));
    *out = dev;
    return SHOAL_OK;
}

/* Loads a matrix (n_out, n_in). transpose: the file stores (n_in, n_out). */
static shoal_status load_mat(shoal_model *m, const char *name, int n_out, int n_in, int required,
                             int transpose, sh_weight *w) {
    memset(w, 0, sizeof *w);
    const sh_tensor *t = find(m, name);
    if (!t) {
        if (!required) return SHOAL_OK;
        if (skipped_hf(m, name))
            return sh_fail(SHOAL_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s, which shoal does not compute with",
                           m->path, name, skipped_hf(m, name));
        return sh_fail(SHOAL_ERR_FORMAT, "%s: missing tensor '%s'", m->path, name);
    }
    int64_t want0 = transpose ? n_out : n_in, want1 = transpose ? n_in : n_out;
    if (t->n_dims != 2 || t->ne[0] != want0 || t->ne[1] != want1)
        return sh_fail(SHOAL_ERR_FORMAT, "%s: tensor '%s' has shape [%lld, %lld], expected [%lld, %lld]", m->path,
                       name, (long long)t->ne[0], (long long)t->ne[1], (long long)want0, (long long)want1);
    int blk = sh_dtype_block(t->dtype);
    if (n_in % blk != 0)
        return sh_fail(SHOAL_ERR_FORMAT, "%s: tensor '%s': row of %d is not a multiple of the %s block", m->path,
                       name, n_in, sh_dtype_name(t->dtype));
    account(m, t);
    const void *src = t->data;
    size_t bytes = (size_t)t->nbytes;
    if (transpose) {
        if (t->dtype != SH_F32 && t->dtype != SH_F16 && t->dtype != SH_BF16)
            return sh_fail(SHOAL_ERR_UNSUPPORTED, "%s: cannot transpose '%s' of dtype %s", m->path, name,
                           sh_dtype_name(t->dtype));
        size_t es = t->dtype == SH_F32 ? 4 : 2;
        void *dst;
        SH_TRY(sh_model_host_alloc(m, bytes, &dst));
        const unsigned char *s = t->data;
        unsigned char *d = dst;
        /* file (n_in rows of n_out) -> (n_out rows of n_in) */
        for (int i = 0; i < n_in; i++)
            for (int o = 0; o < n_out; o++)
                memcpy(d + ((size_t)o * n_in + i) * es, s + ((size_t)i * n_out + o) * es, es);
        src = dst;
    }
    const void *dev;
    SH_TRY(sh_model_to_backend(m, src, bytes, &dev));
    w->data = dev;
    w->dtype = t->dtype;
    w->n_out = n_out;
    w->n_in = n_in;
    return SHOAL_OK;
}

/* ============================================================================
 * Hyperparameters
 * ========================================================================== */

static shoal_status gguf_int(shoal_model *m, const char *arch, const char *key, int required, int dflt,
                             int *out) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    int64_t v;
    if (sh_gguf_find_key(m->gguf, k) < 0) {
        if (required) return sh_fail(SHOAL_ERR_FORMAT, "%s: missing metadata key '%s'", m->path, k);
        *out = dflt;
        return SHOAL_OK;
    }
    shoal_status s = sh_gguf_get_int(m->gguf, k, &v);
    if (s != SHOAL_OK) return sh_fail_prefix(s, "%s", m->path);
    if (v < 0 || v > (1 << 30))
        return sh_fail(SHOAL_ERR_FORMAT, "%s: metadata '%s' = %lld is out of range", m->path, k, (long long)v);
    *out = (int)v;
    return SHOAL_OK;
}

static shoal_status gguf_flt(shoal_model *m, const char *arch, const char *key, float dflt, float *out) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    double v;
    if (sh_gguf_find_key(m->gguf, k) < 0) {
        *out = dflt;
        return SHOAL_OK;
    }
    shoal_status s = sh_gguf_get_float(m->gguf, k, &v);
    if (s != SHOAL_OK) return sh_fail_prefix(s, "%s", m->path);
    if (!(v >= -3.0e38 && v <= 3.0e38))
        return sh_fail(SHOAL_ERR_FORMAT, "%s: metadata '%s' is not a finite number", m->path, k);
    *out = (float)v;
    return SHOAL_OK;
}

static shoal_status arch_from_name(shoal_model *m, const char *name, size_t len) {
    struct { const char *n; sh_arch a; } tab[] = {
        {"llama", SH_ARCH_LLAMA}, {"qwen2", SH_ARCH_QWEN2}, {"gpt2", SH_ARCH_GPT2}, {"bert", SH_ARCH_BERT},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (strlen(tab[i].n) == len && memcmp(tab[i].n, name, len) == 0) {
            m->hp.arch = tab[i].a;
            return SHOAL_OK;
        }
    return sh_fail(SHOAL_ERR_UNSUPPORTED, "%s: unknown architecture '%.*s' (supported: llama, qwen2, gpt2, bert)",
                   m->path, (int)(len > 64 ? 64 : len), name);
}

static shoal_status hparams_gguf(shoal_model *m) {
    sh_hparams *hp = &m->hp;
    const char *an;
    uint64_t alen;
    shoal_status s = sh_gguf_get_str(m->gguf, "general.architecture", &an, &alen);
    if (s != SHOAL_OK) return sh_fail_prefix(s, "%s", m->path);
    SH_TRY(arch_from_name(m, an, (size_t)alen));
    const char *a = sh_arch_name(hp->arch);
    SH_TRY(gguf_int(m, a, "block_count", 1, 0, &hp->n_layer));
    SH_TRY(gguf_int(m, a, "embedding_length", 1, 0, &hp->n_embd));
    SH_TRY(gguf_int(m, a, "attention.head_count", 1, 0, &hp->n_head));
    SH_TRY(gguf_int(m, a, "attention.head_count_kv", 0, hp->n_head, &hp->n_head_kv));
    SH_TRY(gguf_int(m, a, "feed_forward_length", 1, 0, &hp->n_ff));
    SH_TRY(gguf_int(m, a, "context_length", 0, 2048, &hp->n_ctx));
    int kl = 0;
    SH_TRY(gguf_int(m, a, "attention.key_length", 0, 0, &kl));
    hp->head_dim = kl ? kl : (hp->n_head ? hp->n_embd / hp->n_head : 0);
    SH_TRY(gguf_int(m, a, "rope.dimension_count", 0, hp->head_dim, &hp->n_rot));
    SH_TRY(gguf_flt(m, a, "rope.freq_base", 10000.0f, &hp->rope_theta));
    if (hp->arch == SH_ARCH_LLAMA || hp->arch == SH_ARCH_QWEN2)
        SH_TRY(gguf_flt(m, a, "attention.layer_norm_rms_epsilon", 1e-5f, &hp->eps));
    else
        SH_TRY(gguf_flt(m, a, "attention.layer_norm_epsilon", 1e-5f, &hp->eps));
    /* llama GGUF files store Q/K permuted for adjacent-pair rotation. */
    hp->rope_mode = hp->arch == SH_ARCH_LLAMA ? SH_ROPE_NORM : SH_ROPE_NEOX;
    int64_t v;
    hp->bos_id = hp->eos_id = -1;
    if (sh_gguf_find_key(m->gguf, "tokenizer.ggml.bos_token_id") >= 0 &&
        sh_gguf_get_int(m->gguf, "tokenizer.ggml.bos_token_id", &v) == SHOAL_OK && v >= 0 && v < (1 << 30))
        hp->bos_id = (int)v;
    if (sh_gguf_find_key(m->gguf, "tokenizer.ggml.eos_token_id") >= 0 &&
        sh_gguf_get_int(m->gguf, "tokenizer.ggml.eos_token_id", &v) == SHOAL_OK && v >= 0 && v < (1 << 30))
        hp->eos_id = (int)v;
    return SHOAL_OK;
}

static shoal_status cj_int(shoal_model *m, const cJSON *cfg, const char *key, int required, int dflt, int *out) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (!it || cJSON_IsNull(it)) {
        if (required) return sh_fail(SHOAL_ERR_FORMAT, "%s/config.json: missing key '%s'", m->path, key);
        *out = dflt;
        return SHOAL_OK;
    }
    if (!cJSON_IsNumber(it) || !(it->valuedouble >= 0 && it->valuedouble <= (double)(1 << 30)) ||
        it->valuedouble != (double)(int)it->valuedouble)
        return sh_fail(SHOAL_ERR_FORMAT, "%s/config.json: '%s' is not a valid count", m->path, key);
    *out = (int)it->valuedouble;
    return SHOAL_OK;
}

static shoal_status cj_flt(shoal_model *m, const cJSON *cfg, const char *key, float dflt, float *out) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (!it || cJSON_IsNull(it)) {
        *out = dflt;
        return SHOAL_OK;
    }
    if (!cJSON_IsNumber(it) || !(it->valuedouble >= -3.0e38 && it->valuedouble <= 3.0e38))
        return sh_fail(SHOAL_ERR_FORMAT, "%s/config.json: '%s' is not a finite number", m->path, key);
    *out = (float)it->valuedouble;
    return SHOAL_OK;
}

/* A token id from config.json, or -1 when absent or not a valid id. */
static int json_token_id(const cJSON *it) {
    if (!cJSON_IsNumber(it) || !(it->valuedouble >= 0 && it->valuedouble < (double)(1 << 30))) return -1;
    return (int)it->valuedouble;
}

static shoal_status hparams_hf(shoal_model *m, const cJSON *cfg) {
    sh_hparams *hp = &m->hp;
    if (!cfg || !cJSON_IsObject(cfg))
        return sh_fail(SHOAL_ERR_FORMAT, "%s: a Hugging Face folder needs config.json", m->path);
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(cfg, "model_type");
    if (!cJSON_IsString(mt)) return sh_fail(SHOAL_ERR_FORMAT, "%s/config.json: missing key 'model_type'", m->path);
    SH_TRY(arch_from_name(m, mt->valuestring, strlen(mt->valuestring)));
    hp->bos_id = hp->eos_id = -1;
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(cfg, "tie_word_embeddings");
    switch (hp->arch) {
    case SH_ARCH_LLAMA:
    case SH_ARCH_QWEN2:
        SH_TRY(cj_int(m, cfg, "num_hidden_layers", 1, 0, &hp->n_layer));
        SH_TRY(cj_int(m, cfg, "hidden_size", 1, 0, &hp->n_embd));
        SH_TRY(cj_int(m, cfg, "num_attention_heads", 1, 0, &hp->n_head));
        SH_TRY(cj_int(m, cfg, "num_key_value_heads", 0, hp->n_head, &hp->n_head_kv));
        SH_TRY(cj_int(m, cfg, "intermediate_size", 1, 0, &hp->n_ff));
        SH_TRY(cj_int(m, cfg, "vocab_size", 1, 0, &hp->n_vocab));
        SH_TRY(cj_int(m, cfg, "max_position_embeddings", 0, 2048, &hp->n_ctx));
        SH_TRY(cj_int(m, cfg, "head_dim", 0, hp->n_head ? hp->n_embd / hp->n_head : 0, &hp->head_dim));
        SH_TRY(cj_flt(m, cfg, "rms_norm_eps", 1e-6f, &hp->eps));
        SH_TRY(cj_flt(m, cfg, "rope_theta", 10000.0f, &hp->rope_theta));
        hp->n_rot = hp->head_dim;
        hp->rope_mode = SH_ROPE_NEOX; /* HF checkpoints rotate halves */
        hp->tied = tie ? cJSON_IsTrue(tie) : 0;
        break;
    case SH_ARCH_GPT2:
        SH_TRY(cj_int(m, cfg, "n_layer", 1, 0, &hp->n_layer));
        SH_TRY(cj_int(m, cfg, "n_embd", 1, 0, &hp->n_embd));
        SH_TRY(cj_int(m, cfg, "n_head", 1, 0, &hp->n_head));
        hp->n_head_kv = hp->n_head;
        SH_TRY(cj_int(m, cfg, "n_inner", 0, hp->n_embd <= (1 << 20) ? 4 * hp->n_embd : 0, &hp->n_ff));
        SH_TRY(cj_int(m, cfg, "vocab_size", 1, 0, &hp->n_vocab));
        SH_TRY(cj_int(m, cfg, "n_positions", 0, 1024, &hp->n_pos));
        hp->n_ctx = hp->n_pos;
        SH_TRY(cj_flt(m, cfg, "layer_norm_epsilon", 1e-5f, &hp->eps));
        hp->head_dim = hp->n_head ? hp->n_embd / hp->n_head : 0;
        hp->tied = 1;
        break;
    case SH_ARCH_BERT:
        SH_TRY(cj_int(m, cfg, "num_hidden_layers", 1, 0, &hp->n_layer));
        SH_TRY(cj_int(m, cfg, "hidden_size", 1, 0, &hp->n_embd));
        SH_TRY(cj_int(m, cfg, "num_attention_heads", 1, 0, &hp->n_head));
        hp->n_head_kv = hp->n_head;
        SH_TRY(cj_int(m, cfg, "intermediate_size", 1, 0, &hp->n_ff));
        SH_TRY(cj_int(m, cfg, "vocab_size", 1, 0, &hp->n_vocab));
        SH_TRY(cj_int(m, cfg, "max_position_embeddings", 0, 512, &hp->n_pos));
        SH_TRY(cj_int(m, cfg, "type_vocab_size", 0, 2, &hp->n_type));
        hp->n_ctx = hp->n_pos;
        SH_TRY(cj_flt(m, cfg, "layer_norm_eps", 1e-12f, &hp->eps));
        hp->head_dim = hp->n_head ? hp->n_embd / hp->n_head : 0;
        break;
    }
    const cJSON *eos = cJSON_GetObjectItemCaseSensitive(cfg, "eos_token_id");
    hp->bos_id = json_token_id(cJSON_GetObjectItemCaseSensitive(cfg, "bos_token_id"));
    hp->eos_id = json_token_id(cJSON_IsArray(eos) ? cJSON_GetArrayItem(eos, 0) : eos);
    return SHOAL_OK;
}

static shoal_status check_hparams(shoal_model *m) {
    sh_hparams *hp = &m->hp;
    hp->tmpl = hp->arch == SH_ARCH_GPT2 ? SH_TMPL_GPT2 : hp->arch == SH_ARCH_BERT ? SH_TMPL_BERT : SH_TMPL_LLAMA;
    if (hp->n_layer < 1 || hp->n_layer > 1024 || hp->n_embd < 1 || hp->n_embd > 65536 || hp->n_head < 1 ||
        hp->n_head > 1024 || hp->n_head_kv < 1 || hp->n_head % hp->n_head_kv != 0 || hp->head_dim < 2 ||
        hp->head_dim > 1024 || hp->n_ff < 1 || hp->n_ff > (1 << 20))
        return sh_fail(SHOAL_ERR_FORMAT,
                       "%s: implausible shape (layers %d, embd %d, heads %d/%d, head_dim %d, ff %d)", m->path,
                       hp->n_layer, hp->n_embd, hp->n_head, hp->n_head_kv, hp->head_dim, hp->n_ff);
    if (hp->tmpl != SH_TMPL_LLAMA && hp->n_head * hp->head_dim != hp->n_embd)
        return sh_fail(SHOAL_ERR_FORMAT, "%s: n_head * head_dim != n_embd", m->path);
    if (hp->tmpl == SH_TMPL_LLAMA && (hp->n_rot < 2 || hp->n_rot > hp->head_dim || hp->n_rot % 2))
        return sh_fail(SHOAL_ERR_FORMAT, "%s: bad rope dimension count %d", m->path, hp->n_rot);
    if (!(hp->eps > 0) || !(hp->eps < 1))
        return sh_fail(SHOAL_ERR_FORMAT, "%s: norm epsilon %g is out of range", m->path, (double)hp->eps);
    if (hp->tmpl == SH_TMPL_LLAMA && !(hp->rope_theta > 0))
        return sh_fail(SHOAL_ERR_FORMAT, "%s: rope theta %g is out of range", m->path, (double)hp->rope_theta);
    if (hp->n_ctx < 1) hp->n_ctx = 2048;
    return SHOAL_OK;
}

shoal_status sh_model_hparams_from_config(const struct cJSON *cfg, sh_hparams *hp) {
    shoal_model *m = calloc(1, sizeof *m);
    if (!m) return sh_fail(SHOAL_ERR_NOMEM, "out of memory");
    snprintf(m->path, sizeof m->path, "config");
    shoal_status s = hparams_hf(m, cfg);
    if (s == SHOAL_OK) s = check_hparams(m);
    if (s == SHOAL_OK) *hp = m->hp;
    free(m);
    return s;
}

/* ============================================================================
 * Tensors per template
 * ========================================================================== */

/* Two naming schemes: GGUF ("blk.N.attn_q.weight") and HF. */
typedef struct names {
    const char *tok, *pos, *type, *embd_norm, *out_norm, *output;
    const char *attn_norm, *wq, *wk, *wv, *wqkv, *wo, *attn_out_norm, *ffn_norm, *gate, *up, *down, *out_ln;
} names;

static const names gguf_names = {
    "token_embd", "position_embd", "token_types", "token_embd_norm", "output_norm", "output",
    "blk.%d.attn_norm", "blk.%d.attn_q", "blk.%d.attn_k", "blk.%d.attn_v", "blk.%d.attn_qkv",
    "blk.%d.attn_output", "blk.%d.attn_output_norm", "blk.%d.ffn_norm", "blk.%d.ffn_gate", "blk.%d.ffn_up",
    "blk.%d.ffn_down", "blk.%d.layer_output_norm",
};
static const names hf_llama_names = {
    "embed_tokens", NULL, NULL, NULL, "norm", "lm_head",
    "layers.%d.input_layernorm", "layers.%d.self_attn.q_proj", "layers.%d.self_attn.k_proj",
    "layers.%d.self_attn.v_proj", NULL, "layers.%d.self_attn.o_proj", NULL,
    "layers.%d.post_attention_layernorm", "layers.%d.mlp.gate_proj", "layers.%d.mlp.up_proj",
    "layers.%d.mlp.down_proj", NULL,
};
static const names hf_gpt2_names = {
    "wte", "wpe", NULL, NULL, "ln_f", NULL,
    "h.%d.ln_1", NULL, NULL, NULL, "h.%d.attn.c_attn", "h.%d.attn.c_proj", NULL, "h.%d.ln_2", NULL,
    "h.%d.mlp.c_fc", "h.%d.mlp.c_proj", NULL,
};
static const names hf_bert_names = {
    "embeddings.word_embeddings", "embeddings.position_embeddings", "embeddings.token_type_embeddings",
    "embeddings.LayerNorm", NULL, NULL,
    NULL, "layer.%d.attention.self.query", "layer.%d.attention.self.key", "layer.%d.attention.self.value", NULL,
    "layer.%d.attention.output.dense", "layer.%d.attention.output.LayerNorm", NULL, NULL,
    "layer.%d.intermediate.dense", "layer.%d.output.dense", "layer.%d.output.LayerNorm",
};

/* name + suffix for layer il (fmt may contain %d) */
static const char *nm(char *buf, size_t n, const char *fmt, int il, const char *suffix) {
    char base[160];
    snprintf(base, sizeof base, fmt, il);
    snprintf(buf, n, "%s.%s", base, suffix);
    return buf;
}

/* Norm weights in older BERT checkpoints are "gamma"/"beta". */
static shoal_status load_norm(shoal_model *m, const char *fmt, int il, int n, int bias, const float **w,
                              const float **b) {
    char buf[256];
    nm(buf, sizeof buf, fmt, il, "gamma");
    if (m->gguf || !find(m, buf)) nm(buf, sizeof buf, fmt, il, "weight");
    SH_TRY(load_vec(m, buf, n, 1, w));
    if (bias) {
        nm(buf, sizeof buf, fmt, il, "beta");
        if (m->gguf || !find(m, buf)) nm(buf, sizeof buf, fmt, il, "bias");
        SH_TRY(load_vec(m, buf, n, 1, b));
    }
    return SHOAL_OK;
}

static shoal_status load_linear(shoal_model *m, const char *fmt, int il, int n_out, int n_in, int bias,
                                int transpose, sh_weight *w, const float **b) {
    char buf[256];
    SH_TRY(load_mat(m, nm(buf, sizeof buf, fmt, il, "weight"), n_out, n_in, 1, transpose, w));
    if (b) SH_TRY(load_vec(m, nm(buf, sizeof buf, fmt, il, "bias"), n_out, bias, b));
    return SHOAL_OK;
}

static shoal_status load_tensors(shoal_model *m) {
    sh_hparams *hp = &m->hp;
    const names *N = m->gguf ? &gguf_names
                   : hp->tmpl == SH_TMPL_GPT2 ? &hf_gpt2_names
                   : hp->tmpl == SH_TMPL_BERT ? &hf_bert_names
                                              : &hf_llama_names;
    int tr = !m->gguf && hp->tmpl == SH_TMPL_GPT2; /* Conv1D (in, out) */
    int d = hp->n_embd, hd = hp->head_dim, qd = hp->n_head * hd, kvd = hp->n_head_kv * hd;
    char buf[256];

    /* token embedding: its rows give the vocabulary size for GGUF files */
    const sh_tensor *te = find(m, nm(buf, sizeof buf, N->tok, 0, "weight"));
    if (!te) return sh_fail(SHOAL_ERR_FORMAT, "%s: missing tensor '%s'", m->path, buf);
    if (te->n_dims != 2 || te->ne[0] != d || te->ne[1] < 1 || te->ne[1] > (1 << 24))
        return sh_fail(SHOAL_ERR_FORMAT, "%s: token embedding has shape [%lld, %lld], expected [%d, n_vocab]",
                       m->path, (long long)te->ne[0], (long long)te->ne[1], d);
    if (hp->n_vocab && hp->n_vocab != te->ne[1])
        return sh_fail(SHOAL_ERR_FORMAT, "%s: vocab_size %d != token embedding rows %lld", m->path, hp->n_vocab,
                       (long long)te->ne[1]);
    hp->n_vocab = (int)te->ne[1];
    SH_TRY(load_mat(m, buf, hp->n_vocab, d, 1, 0, &m->tok_embd));

    if (hp->tmpl != SH_TMPL_LLAMA) {
        const sh_tensor *pe = find(m, nm(buf, sizeof buf, N->pos, 0, "weight"));
        if (!pe || pe->n_dims != 2 || pe->ne[1] < 1 || pe->ne[1] > (1 << 20))
            return sh_fail(SHOAL_ERR_FORMAT, "%s: missing or malformed position embedding '%s'", m->path, buf);
        hp->n_pos = (int)pe->ne[1];
        if (hp->n_ctx > hp->n_pos) hp->n_ctx = hp->n_pos;
        SH_TRY(load_mat(m, buf, hp->n_pos, d, 1, 0, &m->pos_embd));
    }
    if (hp->tmpl == SH_TMPL_BERT) {
        const sh_tensor *tt = find(m, nm(buf, sizeof buf, N->type, 0, "weight"));
        if (!tt || tt->n_dims != 2 || tt->ne[1] < 1 || tt->ne[1] > 1024)
            return sh_fail(SHOAL_ERR_FORMAT, "%s: missing or malformed token-type embedding '%s'", m->path, buf);
        hp->n_type = (int)tt->ne[1];
        SH_TRY(load_mat(m, buf, hp->n_type, d, 1, 0, &m->type_embd));
        SH_TRY(load_norm(m, N->embd_norm, 0, d, 1, &m->embd_norm, &m->embd_norm_b));
    } else {
        SH_TRY(load_norm(m, N->out_norm, 0, d, hp->tmpl == SH_TMPL_GPT2, &m->out_norm, &m->out_norm_b));
        const sh_tensor *ot = N->output ? find(m, nm(buf, sizeof buf, N->output, 0, "weight")) : NULL;
        if (ot) {
            SH_TRY(load_mat(m, buf, hp->n_vocab, d, 1, 0, &m->output));
            hp->tied = 0;
        } else {
            m->output = m->tok_embd;
            hp->tied = 1;
        }
    }

    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers) return sh_fail(SHOAL_ERR_NOMEM, "out of memory");
    for (int il = 0; il < hp->n_layer; il++) {
        sh_layer *L = &m->layers[il];
        switch (hp->tmpl) {
        case SH_TMPL_LLAMA:
            SH_TRY(load_norm(m, N->attn_norm, il, d, 0, &L->attn_norm, NULL));
            SH_TRY(load_linear(m, N->wq, il, qd, d, 0, 0, &L->wq, &L->bq));
            SH_TRY(load_linear(m, N->wk, il, kvd, d, 0, 0, &L->wk, &L->bk));
            SH_TRY(load_linear(m, N->wv, il, kvd, d, 0, 0, &L->wv, &L->bv));
            if (hp->arch == SH_ARCH_QWEN2 && !(L->bq && L->bk && L->bv))
                return sh_fail(SHOAL_ERR_FORMAT, "%s: qwen2 layer %d lacks q/k/v biases", m->path, il);
            SH_TRY(load_linear(m, N->wo, il, d, qd, 0, 0, &L->wo, NULL));
            SH_TRY(load_norm(m, N->ffn_norm, il, d, 0, &L->ffn_norm, NULL));
            SH_TRY(load_linear(m, N->gate, il, hp->n_ff, d, 0, 0, &L->w_gate, NULL));
            SH_TRY(load_linear(m, N->up, il, hp->n_ff, d, 0, 0, &L->w_up, NULL));
            SH_TRY(load_linear(m, N->down, il, d, hp->n_ff, 0, 0, &L->w_down, NULL));
            break;
        case SH_TMPL_GPT2:
            SH_TRY(load_norm(m, N->attn_norm, il, d, 1, &L->attn_norm, &L->attn_norm_b));
            SH_TRY(load_linear(m, N->wqkv, il, 3 * d, d, 1, tr, &L->wqkv, &L->bqkv));
            SH_TRY(load_linear(m, N->wo, il, d, d, 1, tr, &L->wo, &L->bo));
            SH_TRY(load_norm(m, N->ffn_norm, il, d, 1, &L->ffn_norm, &L->ffn_norm_b));
            SH_TRY(load_linear(m, N->up, il, hp->n_ff, d, 1, tr, &L->w_up, &L->b_up));
            SH_TRY(load_linear(m, N->down, il, d, hp->n_ff, 1, tr, &L->w_down, &L->b_down));
            break;
        case SH_TMPL_BERT:
            SH_TRY(load_linear(m, N->wq, il, d, d, 1, 0, &L->wq, &L->bq));
            SH_TRY(load_linear(m, N->wk, il, d, d, 1, 0, &L->wk, &L->bk));
            SH_TRY(load_linear(m, N->wv, il, d, d, 1, 0, &L->wv, &L->bv));
            SH_TRY(load_linear(m, N->wo, il, d, d, 1, 0, &L->wo, &L->bo));
            SH_TRY(load_norm(m, N->attn_out_norm, il, d, 1, &L->attn_out_norm, &L->attn_out_norm_b));
            SH_TRY(load_linear(m, N->up, il, hp->n_ff, d, 1, 0, &L->w_up, &L->b_up));
            SH_TRY(load_linear(m, N->down, il, d, hp->n_ff, 1, 0, &L->w_down, &L->b_down));
            SH_TRY(load_norm(m, N->out_ln, il, d, 1, &L->out_norm, &L->out_norm_b));
            break;
        default: break;
        }
    }
    m->weight_dtype = m->layers[0].w_up.dtype;
    return SHOAL_OK;
}

/* ============================================================================
 * Public entry points
 * ========================================================================== */

void shoal_model_params_init(shoal_model_params *p) {
    if (!p) return;
    memset(p, 0, sizeof *p);
    p->device = "cpu";
}

void sh_model_release(shoal_model *m) {
    for (int i = 0; i < m->n_owned; i++) sh_be_free(m->be, m->owned[i]);
    free(m->owned);
    for (int i = 0; i < m->n_host_owned; i++) free(m->host_owned[i]);
    free(m->host_owned);
    free(m->layers);
    if (m->gguf) sh_gguf_close(m->gguf);
    if (m->hf) sh_hf_close(m->hf);
    if (m->owns_be) sh_backend_free(m->be);
}

void shoal_model_free(shoal_model *m) {
    if (!m) return;
    sh_model_release(m);
    free(m);
}

shoal_status sh_model_load_on(const char *path, sh_backend *be, shoal_model **out) {
    if (!out) return sh_fail(SHOAL_ERR_INVALID_ARG, "shoal_model_load: out is NULL");
    *out = NULL;
    if (!path || !be) return sh_fail(SHOAL_ERR_INVALID_ARG, "shoal_model_load: path or backend is NULL");
    shoal_model *m = calloc(1, sizeof *m);
    if (!m) return sh_fail(SHOAL_ERR_NOMEM, "out of memory");
    m->be = be;
    m->weight_dtype = SH_F32;
    snprintf(m->path, sizeof m->path, "%s", path);
    struct stat st;
    shoal_status s;
    if (stat(path, &st) != 0) {
        s = sh_fail(SHOAL_ERR_IO, "%s: %s", path, strerror(errno));
        goto fail;
    }
    if (S_ISDIR(st.st_mode)) s = sh_hf_open(path, &m->hf);
    else s = sh_gguf_open(path, &m->gguf);
    if (s != SHOAL_OK) goto fail;
    s = m->gguf ? hparams_gguf(m) : hparams_hf(m, sh_hf_config(m->hf));
    if (s != SHOAL_OK) goto fail;
    s = check_hparams(m);
    if (s != SHOAL_OK) goto fail;
    s = load_tensors(m);
    if (s != SHOAL_OK) goto fail;
    *out = m;
    return SHOAL_OK;
fail:
    sh_model_release(m);
    free(m);
    return s;
}

shoal_status shoal_model_load(const char *path, const shoal_model_params *params, shoal_model **out) {
    shoal_model_params p;
    shoal_model_params_init(&p);
    if (params) p = *params;
    if (!out) return sh_fail(SHOAL_ERR_INVALID_ARG, "shoal_model_load: out is NULL");
    *out = NULL;
    sh_backend *be;
    SH_TRY(sh_backend_create(p.device ? p.device : "cpu", p.n_threads, &be));
    shoal_status s = path && strncmp(path, "synthetic:", 10) == 0 ? sh_model_synthetic_spec(path + 10, be, out)
                                                                   : sh_model_load_on(path, be, out);
    if (s != SHOAL_OK) {
        sh_backend_free(be);
        return s;
    }
    (*out)->owns_be = 1;
    return SHOAL_OK;
}

shoal_status shoal_model_get_info(const shoal_model *m, shoal_model_info *info) {
    if (!m || !info) return sh_fail(SHOAL_ERR_INVALID_ARG, "shoal_model_get_info: NULL argument");
    memset(info, 0, sizeof *info);
    const sh_hparams *hp = &m->hp;
    snprintf(info->arch, sizeof info->arch, "%s", sh_arch_name(hp->arch));
    info->is_encoder = hp->tmpl == SH_TMPL_BERT;
    info->n_layer = hp->n_layer;
    info->n_embd = hp->n_embd;
    info->n_head = hp->n_head;
    info->n_head_kv = hp->n_head_kv;
    info->head_dim = hp->head_dim;
    info->n_ff = hp->n_ff;
    info->n_vocab = hp->n_vocab;
    info->n_ctx = hp->n_ctx;
    info->norm_eps = hp->eps;
    info->rope_theta = hp->rope_theta;
    info->tied_embeddings = hp->tied;
    snprintf(info->weight_dtype, sizeof info->weight_dtype, "%s", sh_dtype_name(m->weight_dtype));
    info->n_params = m->n_params;
    info->n_bytes = m->n_bytes;
    info->bos_id = hp->bos_id;
    info->eos_id = hp->eos_id;
    return SHOAL_OK;
}
