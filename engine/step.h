/* The fused step: one batch of rows from many sequences of many models on one
 * backend, computed with one grouped backend call per op per layer slot.
 *
 * Rows are ordered by model (a segment per model present). For each layer
 * template present, the planner walks layer slots 0..max(n_layer) and, for
 * each op of the template, issues a single grouped call covering every
 * segment whose model has that layer. Launch count per step therefore does
 * not grow with the number of models.
 */
#ifndef SH_STEP_H
#define SH_STEP_H

#include "kv.h"
#include "model.h"

typedef enum sh_out_mode {
    SH_OUT_NONE = 0, /* no logits (prefill chunk that is not the last) */
    SH_OUT_LAST = 1, /* logits of the last row */
    SH_OUT_ALL = 2,  /* logits of every row */
} sh_out_mode;

typedef struct sh_step_seq {
    shoal_model *model;
    sh_seq *seq;            /* KV state; positions seq->n_past.. are written,
                             * n_past advances by n_tokens on success */
    const int32_t *tokens;  /* (n_tokens) */
    const int32_t *types;   /* (n_tokens) token types (encoders) or NULL = 0 */
    int n_tokens;
    sh_out_mode out;        /* decoders */
    float *logits;          /* host: (1 | n_tokens, n_vocab) per out mode, or NULL
                             * when only next is wanted */
    int32_t *next;          /* host: (1 | n_tokens) argmax of each logits row, or
                             * NULL; computed on the device when the backend
                             * can, so greedy decoding downloads no logits */
    float *hidden;          /* host (n_tokens, n_embd), encoders, or NULL */
    float *embedding;       /* host (n_embd) mean-pooled + L2-normalised, encoders, or NULL */
    const sh_sample_params *sample; /* host: (1 | n_tokens) per logits row, or NULL;
                             * with next: next[r] = sh_sample_u of row r with
                             * sample[r] (no repetition penalty) instead of the
                             * argmax, on the device where the backend has the
                             * sample op, else on downloaded logits */
} sh_step_seq;

typedef struct sh_step_stats {
    uint64_t steps;
    uint64_t launches;      /* grouped backend calls, all steps */
    uint64_t groups;        /* groups over those calls */
    uint64_t rows;          /* rows (tokens) over all steps */
    uint64_t last_launches; /* launches of the last step */
    uint64_t last_groups;
    int last_models;        /* models present in the last step */
} sh_step_stats;

typedef struct sh_exec sh_exec;

/* Execution state for one backend and its KV pool (arena, staging). */
shoal_status sh_exec_create(sh_backend *be, sh_kv_pool *pool, sh_exec **out);
void sh_exec_free(sh_exec *ex);
const sh_step_stats *sh_exec_stats(const sh_exec *ex);
/* 1 if sampled rows (sh_step_seq.sample) run on the backend's sample op: the
 * backend has one and the environment does not set SHOAL_DEVICE_SAMPLE=0. */
int sh_exec_device_sample(const sh_exec *ex);

/* Runs one fused step over n sequences (any order; any mix of models on this
 * backend). Reserves KV blocks as needed: SHOAL_ERR_RANGE when the pool is
 * exhausted, before any sequence is modified. Encoder sequences must start
 * at n_past 0 and are run bidirectionally. */
shoal_status sh_exec_step(sh_exec *ex, int n, sh_step_seq *seqs);

/* sh_exec_step in two halves, so the host can queue the next step while the
 * device runs this one (overlapped steps). sh_exec_launch packs and queues
 * the step and advances n_past; when every sequence wants only ids from the
 * device (argmax or sample: no logits, hidden states or embeddings), their
 * download is queued too and the call returns at once, else it returns with
 * the results out, as sh_exec_step. sh_exec_finish completes the oldest
 * launched step: waits for its ids and writes them to each sequence's next
 * (the seqs array and its next buffers must live until then). At most two
 * steps are in flight.
 *
 * chain = 1: the step's input tokens are the ids the step in flight is
 * computing, read on the device (seqs[i].tokens may be NULL), so it can be
 * queued before that step is finished. It must name the same KV states in
 * the same order, one row and one id each (sh_exec_can_chain says whether
 * it can, KV blocks and buffers included). */
shoal_status sh_exec_launch(sh_exec *ex, int n, sh_step_seq *seqs, int chain);
shoal_status sh_exec_finish(sh_exec *ex);
int sh_exec_in_flight(const sh_exec *ex);
int sh_exec_can_chain(const sh_exec *ex, int n, const sh_step_seq *seqs);

#endif
