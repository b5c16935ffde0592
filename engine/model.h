/* Models: hyperparameters, layer templates and weights on a backend. */
#ifndef SH_MODEL_H
#define SH_MODEL_H

#include "backend.h"
#include "shoal.h"

struct sh_gguf;
struct sh_hf;

typedef enum sh_arch { SH_ARCH_LLAMA = 0, SH_ARCH_QWEN2, SH_ARCH_GPT2, SH_ARCH_BERT } sh_arch;

/* Layer templates: models of one template fuse into the same grouped calls. */
typedef enum sh_template {
    SH_TMPL_LLAMA = 0, /* pre-RMSNorm, RoPE, GQA, SiLU-gated FFN (llama, qwen2) */
    SH_TMPL_GPT2 = 1,  /* pre-LayerNorm, learned positions, fused QKV, tanh-GELU */
    SH_TMPL_BERT = 2,  /* post-LayerNorm encoder, erf-GELU, bidirectional */
    SH_TMPL_COUNT
} sh_template;

typedef struct sh_hparams {
    sh_arch arch;
    sh_template tmpl;
    int n_layer;
    int n_embd;
    int n_head;
    int n_head_kv;
    int head_dim;     /* n_embd / n_head unless the file says otherwise */
    int n_ff;
    int n_vocab;
    int n_ctx;        /* trained context length */
    int n_pos;        /* rows of the learned position table (gpt2, bert), else 0 */
    int n_type;       /* rows of the token-type table (bert), else 0 */
    float eps;
    float rope_theta;
    int n_rot;
    sh_rope_mode rope_mode;
    int tied;         /* LM head = token embedding */
    int bos_id, eos_id;
} sh_hparams;

/* One transformer block's weights. Vectors are f32 backend addresses (or
 * NULL when the architecture has none); matrices stay in their file dtype. */
typedef struct sh_layer {
    const float *attn_norm, *attn_norm_b;   /* (n_embd) pre-attention norm */
    sh_weight wq, wk, wv;                   /* (n_head*hd | n_head_kv*hd, n_embd) */
    sh_weight wqkv;                         /* gpt2: (3*n_embd, n_embd) */
    const float *bq, *bk, *bv, *bqkv;       /* biases or NULL */
    sh_weight wo;                           /* (n_embd, n_head*hd) */
    const float *bo;
    const float *attn_out_norm, *attn_out_norm_b; /* bert post-attention LN */
    const float *ffn_norm, *ffn_norm_b;     /* pre-FFN norm (llama, gpt2) */
    sh_weight w_gate, w_up;                 /* (n_ff, n_embd) */
    const float *b_up;
    sh_weight w_down;                       /* (n_embd, n_ff) */
    const float *b_down;
    const float *out_norm, *out_norm_b;     /* bert post-FFN LN */
} sh_layer;

struct shoal_model {
    sh_hparams hp;
    sh_backend *be;      /* owned when owns_be */
    int owns_be;
    struct sh_gguf *gguf; /* the source file (one of the two) */
    struct sh_hf *hf;
    char path[1024];

    sh_layer *layers;    /* (n_layer) */
    sh_weight tok_embd;  /* (n_vocab, n_embd) */
    sh_weight pos_embd;  /* (n_pos, n_embd) or data NULL */
    sh_weight type_embd; /* (n_type, n_embd) or data NULL */
    const float *embd_norm, *embd_norm_b; /* bert embedding LayerNorm */
    const float *out_norm, *out_norm_b;   /* final norm (decoders) */
    sh_weight output;    /* LM head (n_vocab, n_embd); = tok_embd when tied */

    void **owned;        /* backend allocations freed with the model */
    int n_owned, cap_owned;
    void **host_owned;   /* host allocations (converted tensors) */
    int n_host_owned, cap_host_owned;

    void *tokenizer;     /* (optional) sh_tokenizer *, owned */

    uint64_t n_params, n_bytes;
    sh_dtype weight_dtype;
};

/* Loads a model onto an existing backend (not owned). */
shoal_status sh_model_load_on(const char *path, sh_backend *be, shoal_model **out);

/* A synthetic model with random weights (std 1/sqrt(n_in), norms 1) of a named
 * shape: "tiny", "smollm-135m", "smollm-360m", "qwen2.5-0.5b", "gpt2-124m".
 * Matrices in dtype (f32, f16, bf16, q8_0, q4_0); distinct seeds give
 * distinct weights. Not owned backend. */
shoal_status sh_model_synthetic(const char *shape, sh_dtype dtype, uint64_t seed, sh_backend *be,
                                shoal_model **out);
/* "SHAPE[:DTYPE[:SEED]]", as in a model path "synthetic:smollm-135m:q8_0". */
shoal_status sh_model_synthetic_spec(const char *spec, sh_backend *be, shoal_model **out);
/* Fills hp for a named shape; SHOAL_ERR_NOT_FOUND if unknown. */
shoal_status sh_synthetic_hparams(const char *shape, sh_hparams *hp);

/* Internal to loaders: host memory freed with the model; host bytes placed on
 * the model's backend (mapped in place when it can). */
shoal_status sh_model_host_alloc(shoal_model *m, size_t bytes, void **out);
shoal_status sh_model_to_backend(shoal_model *m, const void *host, size_t bytes, const void **out);
/* Maps a Hugging Face config.json (parsed) to hyperparameters and checks
 * them, as loading a folder does (used by the config fuzzer). */
struct cJSON;
shoal_status sh_model_hparams_from_config(const struct cJSON *cfg, sh_hparams *hp);

/* Frees what a model holds, not the struct itself. */
void sh_model_release(shoal_model *m);

/* The KV width of one token in one layer (floats). */
static inline int sh_model_kv_dim(const shoal_model *m) { return m->hp.n_head_kv * m->hp.head_dim; }

/* Bytes of one KV block (SH_KV_BLOCK tokens, every layer, K and V). */
uint64_t sh_model_kv_block_bytes(const shoal_model *m, sh_dtype kv_dtype);

const char *sh_arch_name(sh_arch a);

#endif
