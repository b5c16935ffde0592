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

/* ---- clusters and requests --------------------------------------------- *
 *
 * A cluster holds several models on one device, one paged KV pool shared by
 * all of them, a bounded request queue and a scheduler. Every scheduler step
 * runs one fused batch over the sequences of every model (decode rows and
 * chunked-prefill rows mixed), so a step costs the same launches for eight
 * models as for one.
 *
 *   shoal_cluster_model ms[] = {{"a", "synthetic:tiny:f32:1"}, {"b", "b.gguf"}};
 *   shoal_cluster_params cp; shoal_cluster_params_init(&cp);
 *   cp.models = ms; cp.n_models = 2;
 *   shoal_cluster *c;
 *   shoal_cluster_create(&cp, &c);              // or shoal_cluster_load("c.json", NULL, &c)
 *   shoal_request_params rp; shoal_request_params_init(&rp);
 *   rp.model = "a"; rp.prompt = ids; rp.n_prompt = n; rp.max_tokens = 32;
 *   shoal_request *r;
 *   if (shoal_cluster_submit(c, &rp, &r) == SHOAL_OK) {
 *       shoal_request_wait(r, -1);
 *       shoal_request_result res; shoal_request_get_result(r, &res);
 *       ... res.tokens[0 .. res.n_tokens) ...
 *       shoal_request_free(r);
 *   }
 *   shoal_cluster_free(c);
 *
 * Every accepted request finishes exactly once with a status: SHOAL_OK
 * (done), SHOAL_ERR_CANCELLED, or an error with its message. Nothing is
 * dropped silently: requests still pending when the cluster is freed finish
 * cancelled.
 */

typedef struct shoal_cluster shoal_cluster;
typedef struct shoal_request shoal_request;

/* Milliseconds on the monotonic clock deadlines and timings use. */
double shoal_clock_ms(void);

typedef struct shoal_cluster_model {
    const char *name; /* unique, 1..63 characters; requests name their model by it */
    const char *path; /* GGUF file, Hugging Face folder, or "synthetic:SHAPE[:DTYPE[:SEED]]" */
} shoal_cluster_model;

/* What one scheduler step did (for progress lines and roofline reports). */
typedef struct shoal_step_info {
    uint64_t index;        /* 0-based step number */
    int rows;              /* rows (tokens) computed */
    int seqs;              /* sequences in the step */
    int decode_rows;       /* sequences fed exactly one token */
    int prefill_rows;      /* rows of prompt (or recompute) chunks */
    int models;            /* distinct models present */
    int admitted;          /* sequences that entered the running set this step */
    int finished;          /* requests that finished after this step */
    uint64_t launches;     /* grouped backend calls of the step */
    uint64_t groups;       /* groups over those calls */
    uint64_t weight_bytes; /* bytes of the weights of the models present */
    uint64_t kv_bytes;     /* KV bytes attention read (positions x layers x K,V x width) */
    double ms;             /* wall time: plan + compute + sampling + callbacks */
    double exec_ms;        /* the fused compute call alone (logits download included) */
    double sample_ms;      /* host sampling and token callbacks */
} shoal_step_info;

typedef void (*shoal_step_cb)(const shoal_step_info *info, void *user);

typedef struct shoal_cluster_params {
    const char *device;                 /* "cpu" (default), "cuda", "cuda:N" */
    int n_threads;                      /* CPU threads; 0 = all online cores */
    const shoal_cluster_model *models;  /* (n_models); paths are read at create */
    int n_models;
    int max_queue;      /* requests waiting to start; a submit past it is SHOAL_ERR_BUSY. 0 = 1024 */
    int max_running;    /* sequences holding KV and stepping; 0 = min(256, max_batch_rows) */
    int max_batch_rows; /* rows (tokens) per step; 0 = 512 */
    int prefill_chunk;  /* prompt rows one sequence feeds per step; 0 = 256 */
    int kv_blocks;      /* blocks of 16 tokens in the shared pool; 0 = from kv_bytes */
    uint64_t kv_bytes;  /* pool bytes when kv_blocks is 0; 0 = 256 MiB, at least one
                         * full context of the largest model */
    const char *kv_dtype; /* "f32" (default), "f16", or "auto" (f16 where a non-CPU
                           * backend supports it, else f32) */
    int threaded;       /* 1 (default): a scheduler thread runs steps while there
                         * is work; 0: the caller drives with shoal_cluster_step /
                         * shoal_cluster_run_until_idle (deterministic tests) */
    int fused;          /* 1 (default): every model in one step; 0: one model per
                         * step, round robin (the unfused baseline) */
    int sample_threads; /* extra host threads sampling a step's sequences in
                         * parallel; 0 = none on the CPU device (its threads
                         * compute), min(8, cores - 1) on accelerators */
    shoal_step_cb on_step; /* (optional) after every step, on the stepping thread */
    void *step_user;
} shoal_cluster_params;

/* Fills defaults (see the fields); models NULL. */
void shoal_cluster_params_init(shoal_cluster_params *p);

/* Creates a cluster: one backend for the device, every model loaded onto it,
 * the KV pool (block size of the largest model), and the scheduler thread
 * when threaded. On failure *out is NULL and nothing is leaked. */
shoal_status shoal_cluster_create(const shoal_cluster_params *p, shoal_cluster **out);

/* Creates a cluster from a JSON config file:
 *   {"device": "cpu", "threads": 0, "sample_threads": 0, "kv_dtype": "f32",
 *    "models": [{"name": "a", "path": "a.gguf"}, ...],
 *    "limits": {"max_queue": 1024, "max_running": 256, "max_batch_rows": 512,
 *               "prefill_chunk": 256, "kv_blocks": 0, "kv_bytes": 0}}
 * Relative model paths are relative to the file's folder. defaults (may be
 * NULL) gives every value the file leaves out (threaded, fused, on_step come
 * only from it). Unknown keys are an error (SHOAL_ERR_FORMAT). */
shoal_status shoal_cluster_load(const char *json_path, const shoal_cluster_params *defaults,
                                shoal_cluster **out);

/* Stops the scheduler, finishes every pending request as cancelled ("cluster
 * freed"), frees models, KV and backend. Request handles stay valid until
 * shoal_request_free. NULL is fine. Not from a callback. */
void shoal_cluster_free(shoal_cluster *c);

int shoal_cluster_n_models(const shoal_cluster *c);
/* Name of model i (0-based), or NULL when out of range. */
const char *shoal_cluster_model_name(const shoal_cluster *c, int i);
/* The cluster's model of that name (owned by the cluster; do not free):
 * SHOAL_ERR_NOT_FOUND if there is none. */
shoal_status shoal_cluster_get_model(const shoal_cluster *c, const char *name, shoal_model **out);

typedef enum shoal_request_kind {
    SHOAL_REQUEST_GENERATE = 0, /* decoders: prompt -> generated tokens */
    SHOAL_REQUEST_EMBED = 1,    /* encoders: prompt -> pooled, L2-normalised embedding */
} shoal_request_kind;

typedef enum shoal_request_state {
    SHOAL_REQUEST_QUEUED = 0,   /* waiting for KV and a batch slot */
    SHOAL_REQUEST_RUNNING = 1,  /* holds KV; prefilling or decoding */
    SHOAL_REQUEST_FINISHED = 2, /* see the result's status and finish reason */
} shoal_request_state;

typedef enum shoal_finish_reason {
    SHOAL_FINISH_NONE = 0,      /* not finished */
    SHOAL_FINISH_LENGTH = 1,    /* max_tokens generated (or the embedding is ready) */
    SHOAL_FINISH_STOP = 2,      /* a stop id or the model's EOS was generated (included) */
    SHOAL_FINISH_CALLBACK = 3,  /* the token callback returned nonzero */
    SHOAL_FINISH_CONTEXT = 4,   /* the model's context is full */
    SHOAL_FINISH_CANCELLED = 5, /* shoal_request_cancel / _free, or the cluster was freed */
    SHOAL_FINISH_DEADLINE = 6,  /* cancel_at_deadline and the deadline passed */
    SHOAL_FINISH_ERROR = 7,     /* a device or KV error; the status and message say which */
} shoal_finish_reason;

/* Called for every generated token, on the scheduler thread (or the thread in
 * shoal_cluster_step), with no shoal lock held: it may submit or cancel, but
 * must not free the cluster. index is the token's 0-based position in the
 * output. Return nonzero to stop the request (SHOAL_FINISH_CALLBACK). */
typedef int (*shoal_request_token_cb)(shoal_request *r, int32_t token, int index, void *user);
/* Called once when the request finishes, on the thread that finished it. */
typedef void (*shoal_request_done_cb)(shoal_request *r, void *user);

typedef struct shoal_request_params {
    const char *model;            /* a cluster model name */
    shoal_request_kind kind;      /* GENERATE (default) or EMBED */
    const int32_t *prompt;        /* (n_prompt) token ids, copied at submit */
    int n_prompt;
    const char *prompt_text;      /* or a text prompt (NUL-terminated UTF-8), tokenized
                                   * with the model's tokenizer (SHOAL_ERR_UNSUPPORTED
                                   * when the model has none); prompt must be NULL */
    const int32_t *token_types;   /* EMBED: (n_prompt) or NULL = all 0; copied */
    shoal_sampling_params sampling; /* stop_ids (and stop_at_eos) end generation; copied */
    int max_tokens;               /* tokens to generate; default 16; 0 = prefill only */
    int priority;                 /* higher runs first and is preempted last; default 0 */
    double deadline_ms;           /* absolute, on shoal_clock_ms(); 0 = none */
    double deadline_in_ms;        /* relative to submit; 0 = none (earlier of the two wins) */
    int cancel_at_deadline;       /* 1: finish cancelled (SHOAL_FINISH_DEADLINE) once the
                                   * deadline passes; 0 (default): deadlines only order */
    shoal_request_token_cb on_token; /* (optional) */
    shoal_request_done_cb on_done;   /* (optional) */
    void *user;
} shoal_request_params;

/* Fills defaults: GENERATE, greedy sampling, max_tokens 16, priority 0, no
 * deadline, no callbacks. */
void shoal_request_params_init(shoal_request_params *p);

/* Queues a request and returns at once. Fails without queueing:
 * SHOAL_ERR_BUSY when max_queue requests already wait; SHOAL_ERR_NOT_FOUND for
 * an unknown model; SHOAL_ERR_RANGE when the prompt is longer than the model's
 * context or than the whole KV pool; SHOAL_ERR_INVALID_ARG for a bad prompt or
 * a kind the model cannot do. On success the caller owns *out and frees it
 * with shoal_request_free. */
shoal_status shoal_cluster_submit(shoal_cluster *c, const shoal_request_params *p, shoal_request **out);

/* Runs one scheduler iteration on the calling thread: admits, preempts,
 * steps and samples. *did_work (may be NULL) is 0 when there was nothing to
 * do. SHOAL_ERR_INVALID_ARG on a threaded cluster; a device error fails the
 * requests of the step (they finish with it) and is returned too. */
shoal_status shoal_cluster_step(shoal_cluster *c, int *did_work);
/* Steps until no request is queued or running (non-threaded clusters), or
 * waits until the scheduler thread is idle (threaded ones). */
shoal_status shoal_cluster_run_until_idle(shoal_cluster *c);

typedef struct shoal_cluster_stats {
    uint64_t steps;             /* fused steps run */
    uint64_t launches;          /* grouped backend calls over all steps */
    uint64_t groups;            /* groups over those calls */
    uint64_t rows;              /* rows over all steps */
    double launches_per_step;   /* launches / steps */
    double groups_per_launch;   /* groups / launches */
    double rows_per_step;       /* rows / steps */
    uint64_t max_launches_per_step;
    uint64_t last_launches, last_groups; /* of the last step */
    int last_rows, last_models;
    uint64_t submitted;         /* accepted requests */
    uint64_t rejected;          /* submits refused (busy or invalid) */
    uint64_t completed;         /* finished with SHOAL_OK */
    uint64_t cancelled;         /* finished cancelled (incl. deadline) */
    uint64_t failed;            /* finished with an error */
    uint64_t preemptions;       /* sequences evicted from KV for recompute */
    uint64_t tokens_generated;
    uint64_t prefill_rows;      /* prompt and recompute rows */
    int queued, running;        /* now */
    int kv_blocks, kv_free;     /* pool size and free blocks now */
    double busy_ms;             /* time spent inside steps */
    uint64_t overlapped_steps;  /* decode steps queued behind the step before them, before its
                                 * tokens were on the host (SHOAL_STEP_OVERLAP=0: none) */
} shoal_cluster_stats;

shoal_status shoal_cluster_get_stats(shoal_cluster *c, shoal_cluster_stats *st);

/* Non-blocking progress: copies generated tokens [from, from + *n_out) into
 * out (capacity cap; out may be NULL when cap is 0) and sets *state (either
 * pointer may be NULL). Tokens stay readable after the request finishes. */
shoal_status shoal_request_poll(shoal_request *r, int from, int32_t *out, int cap, int *n_out,
                                shoal_request_state *state);

/* Blocks until the request finishes or timeout_ms passes (< 0: no limit).
 * Returns the request's final status (SHOAL_OK, SHOAL_ERR_CANCELLED or its
 * error, with the message set on this thread), or SHOAL_ERR_BUSY on timeout.
 * On a non-threaded cluster it runs scheduler steps itself meanwhile. */
shoal_status shoal_request_wait(shoal_request *r, double timeout_ms);

/* Cancels: a queued request finishes at once; a running one releases its KV
 * blocks at once (or right after the step in flight) and finishes with the
 * tokens it has. Cancelling a finished request does nothing. */
shoal_status shoal_request_cancel(shoal_request *r);

typedef struct shoal_request_result {
    uint64_t id;                /* 1-based, in submit order, for logs */
    shoal_status status;        /* SHOAL_OK, SHOAL_ERR_CANCELLED or the error */
    shoal_finish_reason finish;
    const char *message;        /* "" when done; why it was cancelled or failed */
    const int32_t *tokens;      /* (n_tokens) generated ids, stop token included */
    int n_tokens;
    const float *embedding;     /* EMBED: (n_embd), else NULL */
    int n_embd;
    int n_prompt;
    int n_preempted;            /* times its KV was evicted and recomputed */
    double queued_ms;           /* submit -> first scheduled */
    double ttft_ms;             /* submit -> first token (or the embedding); -1 if none */
    double total_ms;            /* submit -> finish */
    const double *token_ms;     /* (n_tokens) submit -> each token */
} shoal_request_result;

/* The result of a finished request; pointers stay valid until
 * shoal_request_free. SHOAL_ERR_BUSY while it has not finished. */
shoal_status shoal_request_get_result(shoal_request *r, shoal_request_result *res);

/* Releases the caller's handle; an unfinished request is cancelled first.
 * NULL is fine. Not from the request's own callbacks. */
void shoal_request_free(shoal_request *r);

/* ---- end of clusters and requests ---------------------------------------- */

#ifdef __cplusplus
}
#endif
#endif /* SHOAL_H */
