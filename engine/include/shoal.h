/* shoal — an inference engine for clusters of small language models.
 *
 * Usage:
 *
 *   shoal_model_params mp; shoal_model_params_init(&mp);
 *   mp.device = "cpu";
 *   shoal_model *m;
 *   if (shoal_model_load("smollm.gguf", &mp, &m) != SHOAL_OK)
 *       fprintf(stderr, "%s\n", shoal_last_error());
 *
 *   shoal_context *ctx;
 *   shoal_context_create(m, NULL, &ctx);
 *   int32_t prompt[] = {1, 2, 3}, out[16]; int n_out;
 *   shoal_sampling_params sp; shoal_sampling_params_init(&sp);
 *   shoal_generate(ctx, prompt, 3, &sp, 16, out, &n_out, NULL, NULL);
 *   shoal_context_free(ctx);
 *   shoal_model_free(m);
 *
 * Every call that can fail returns a shoal_status and, on failure, sets a
 * message readable with shoal_last_error() (per thread). Every _free accepts
 * NULL. Nothing in the library exits or aborts on bad input or device errors.
 */
#ifndef SHOAL_H
#define SHOAL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status ------------------------------------------------------------ */

typedef enum shoal_status {
    SHOAL_OK = 0,
    SHOAL_ERR_INVALID_ARG = 1, /* a caller passed something unusable */
    SHOAL_ERR_IO = 2,          /* open/read/mmap failed */
    SHOAL_ERR_FORMAT = 3,      /* a file is malformed */
    SHOAL_ERR_UNSUPPORTED = 4, /* valid but not implemented (arch, dtype, op) */
    SHOAL_ERR_NOMEM = 5,       /* host or device allocation failed */
    SHOAL_ERR_DEVICE = 6,      /* a device/driver call failed */
    SHOAL_ERR_BUSY = 7,        /* a bounded queue is full; retry later */
    SHOAL_ERR_NOT_FOUND = 8,   /* unknown model, tensor, key or device */
    SHOAL_ERR_RANGE = 9,       /* too long: prompt past context, KV exhausted */
    SHOAL_ERR_CANCELLED = 10,  /* the request was cancelled */
} shoal_status;

/* The message of the last failure on this thread ("" if none). The pointer
 * stays valid until the next failing call on this thread. */
const char *shoal_last_error(void);

/* A constant name for a status ("ok", "invalid argument", ...). */
const char *shoal_status_str(shoal_status s);

/* ---- models ------------------------------------------------------------ */

typedef struct shoal_model shoal_model;

typedef struct shoal_model_params {
    const char *device; /* "cpu" (default), "cuda", "cuda:N" */
    int n_threads;      /* CPU threads; 0 = all online cores */
} shoal_model_params;

/* Fills defaults: device "cpu", n_threads 0. */
void shoal_model_params_init(shoal_model_params *p);

/* Loads a GGUF file or a Hugging Face folder (config.json + *.safetensors,
 * sharded or not). params may be NULL for defaults. On success *out owns the
 * model; on failure *out is NULL and the message says what was wrong. */
shoal_status shoal_model_load(const char *path, const shoal_model_params *params,
                              shoal_model **out);

/* Frees a model (NULL is fine). Contexts of the model must be freed first. */
void shoal_model_free(shoal_model *m);

typedef struct shoal_model_info {
    char arch[32];        /* "llama", "qwen2", "gpt2", "bert" */
    int is_encoder;       /* 1 for BERT-style encoders (embed, no generate) */
    int n_layer, n_embd, n_head, n_head_kv, head_dim, n_ff, n_vocab, n_ctx;
    float norm_eps, rope_theta;
    int tied_embeddings;  /* LM head reads the token embedding */
    char weight_dtype[8]; /* dtype of the largest matrices: "f32", "q8_0", ... */
    uint64_t n_params;    /* parameters (elements) over all tensors */
    uint64_t n_bytes;     /* bytes of all tensors as stored */
    int bos_id, eos_id;   /* -1 if unknown */
} shoal_model_info;

shoal_status shoal_model_get_info(const shoal_model *m, shoal_model_info *info);

/* ---- contexts: one sequence with its KV cache -------------------------- */

typedef struct shoal_context shoal_context;

typedef struct shoal_context_params {
    int n_ctx; /* max positions; 0 = the model's trained context (capped 4096) */
} shoal_context_params;

void shoal_context_params_init(shoal_context_params *p);

/* params may be NULL. */
shoal_status shoal_context_create(shoal_model *m, const shoal_context_params *params,
                                  shoal_context **out);
void shoal_context_free(shoal_context *ctx);

/* Forgets every position (the KV cache is reused from position 0). */
void shoal_context_reset(shoal_context *ctx);

/* Positions already in the KV cache. */
int shoal_context_n_past(const shoal_context *ctx);

/* Decoders: appends n tokens at the next positions and writes logits.
 * logits: NULL, or n x n_vocab f32 (all_logits=1) or n_vocab (last row only).
 * Encoders: runs the n tokens as one bidirectional sequence (the context is
 * reset first); logits must be NULL — use shoal_encode. */
shoal_status shoal_decode(shoal_context *ctx, const int32_t *tokens, int n,
                          int all_logits, float *logits);

/* Encoders: hidden (n x n_embd, last hidden state) and/or embedding (n_embd,
 * mean-pooled then L2-normalised); either may be NULL. */
shoal_status shoal_encode(shoal_context *ctx, const int32_t *tokens, int n,
                          float *hidden, float *embedding);

/* ---- sampling and generation ------------------------------------------- */

typedef struct shoal_sampling_params {
    float temperature;        /* 0 = greedy */
    int top_k;                /* 0 = off */
    float top_p;              /* 1 = off */
    float min_p;              /* 0 = off */
    float repetition_penalty; /* 1 = off; applied to every id seen so far */
    uint64_t seed;
    const int32_t *stop_ids;  /* generation ends after emitting one of these */
    int n_stop_ids;
    int stop_at_eos;          /* 1 (default): the model's EOS ends generation */
} shoal_sampling_params;

void shoal_sampling_params_init(shoal_sampling_params *p);

/* Called for each generated token; return nonzero to stop. */
typedef int (*shoal_token_cb)(int32_t token, void *user);

/* Feeds the prompt, then generates up to max_tokens tokens into out (capacity
 * max_tokens), setting *n_out. The stop token, when hit, is included. */
shoal_status shoal_generate(shoal_context *ctx, const int32_t *prompt, int n_prompt,
                            const shoal_sampling_params *sp, int max_tokens,
                            int32_t *out, int *n_out, shoal_token_cb cb, void *user);

#ifdef __cplusplus
}
#endif
#endif /* SHOAL_H */
