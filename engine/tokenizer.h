/* Tokenizers: text <-> token ids for the model families shoal runs.
 *
 *   sh_tokenizer *t;
 *   if (sh_tokenizer_load("path/to/model-or-tokenizer", &t) != SHOAL_OK)
 *       fprintf(stderr, "%s\n", shoal_last_error());
 *   int32_t *ids; int n;
 *   sh_tokenizer_encode(t, text, strlen(text), 1, &ids, &n); // ids: malloc'd
 *   sh_detok *d;
 *   sh_detok_create(t, SH_DETOK_SKIP_SPECIAL, &d);
 *   for (each generated id) {
 *       const char *s; size_t len;
 *       sh_detok_push(d, id, &s, &len);   // only whole UTF-8 characters
 *       fwrite(s, 1, len, stdout);
 *   }
 *   sh_detok_flush(d, &s, &len); ...
 *   sh_detok_free(d); free(ids); sh_tokenizer_free(t);
 *
 * Families (sh_tok_family):
 *   BPE_BYTE   byte-level BPE (GPT-2, Llama-3, Qwen2, SmolLM): the text is split
 *              by the pre-tokenizer (a Unicode-aware regex, implemented by hand),
 *              each byte of a piece maps to one symbol, symbols merge by rank.
 *   BPE_SPM    SentencePiece-style BPE (Llama-2, TinyLlama): ' ' becomes U+2581
 *              and one U+2581 is prepended; symbols are characters, merged by
 *              rank (tokenizer.json) or by the merged piece's score (GGUF);
 *              characters outside the vocabulary become <0xXX> byte pieces.
 *   WORDPIECE  BERT/MiniLM: BERT normaliser (clean text, CJK split, lower-case
 *              and accent stripping as configured), whitespace/punctuation
 *              split, greedy longest match with "##" continuations, [UNK].
 *
 * Invalid UTF-8 in the input is decoded lossily first: every maximal invalid
 * subsequence becomes U+FFFD, exactly as Python's bytes.decode("utf-8",
 * "replace") does; the result is then tokenized like any valid text.
 *
 * Added/special tokens (tokenizer.json "added_tokens"; GGUF control and
 * user-defined tokens) written literally in the text are always recognised and
 * become their own ids, as Hugging Face's encode does by default.
 *
 * A loaded tokenizer is immutable: encode/decode may run on it from many
 * threads at once. An sh_detok belongs to one caller at a time.
 */
#ifndef SH_TOKENIZER_H
#define SH_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "shoal.h"

typedef struct sh_gguf sh_gguf;
typedef struct sh_tokenizer sh_tokenizer;

typedef enum sh_tok_family {
    SH_TOK_BPE_BYTE = 0,
    SH_TOK_BPE_SPM = 1,
    SH_TOK_WORDPIECE = 2,
} sh_tok_family;

/* ---- loading ----------------------------------------------------------- */

/* Loads a Hugging Face tokenizer.json. tokenizer_config.json in the same
 * folder, when present, supplies add_bos_token/add_eos_token (overriding the
 * post-processor), bos/eos token names and chat_template. On failure *out is
 * NULL and the message names the file and the field. */
shoal_status sh_tokenizer_load_json(const char *tokenizer_json_path, sh_tokenizer **out);

/* The same from memory: json (len bytes, need not be NUL-terminated) and an
 * optional tokenizer_config.json image (config may be NULL). Used by tests and
 * the fuzzer. */
shoal_status sh_tokenizer_load_json_buffer(const char *json, size_t len, const char *config,
                                           size_t config_len, sh_tokenizer **out);

/* Loads from GGUF metadata (tokenizer.ggml.*): model "gpt2" (byte-level BPE
 * with merges; tokenizer.ggml.pre picks the pre-tokenizer), "llama"
 * (SentencePiece BPE with scores and byte fallback) or "bert" (WordPiece).
 * The tokenizer copies what it needs; g may be closed afterwards. */
shoal_status sh_tokenizer_load_gguf(const sh_gguf *g, sh_tokenizer **out);

/* Convenience: path is a .gguf file, a tokenizer.json file, or a folder
 * holding tokenizer.json (a Hugging Face model folder). */
shoal_status sh_tokenizer_load(const char *path, sh_tokenizer **out);

/* Frees t (NULL is fine). */
void sh_tokenizer_free(sh_tokenizer *t);

/* ---- encode / decode --------------------------------------------------- */

/* Tokenizes len bytes of text (text may be NULL when len is 0; it need not be
 * NUL-terminated). add_special: add what the model's config adds around a
 * sequence (BOS for Llama, [CLS] ... [SEP] for BERT, nothing for GPT-2).
 * On success *ids is a malloc'd array of *n ids (never NULL, even for n = 0)
 * that the caller frees. On failure *ids is NULL and *n is 0. */
shoal_status sh_tokenizer_encode(const sh_tokenizer *t, const char *text, size_t len,
                                 int add_special, int32_t **ids, int *n);

/* Turns ids back into text the way Hugging Face's decode does (byte-level
 * bytes reassembled; U+2581 -> ' ' and the leading space dropped for
 * SentencePiece; "##" joined and spaces cleaned up for WordPiece).
 * skip_special drops special tokens (BOS, EOS, [CLS], ...). Bytes that do not
 * form valid UTF-8 come out as U+FFFD (maximal invalid subsequences).
 * *text is malloc'd and NUL-terminated, *len its length without the NUL (len
 * may be NULL). An id outside the vocabulary is SHOAL_ERR_INVALID_ARG. */
shoal_status sh_tokenizer_decode(const sh_tokenizer *t, const int32_t *ids, int n,
                                 int skip_special, char **text, size_t *len);

/* ---- streaming detokenisation ------------------------------------------ */

typedef struct sh_detok sh_detok;

enum {
    SH_DETOK_SKIP_SPECIAL = 1,       /* drop special tokens (BOS, EOS, ...) */
    SH_DETOK_KEEP_LEADING_SPACE = 2, /* the text continues a prompt: keep the
                                        space SentencePiece/WordPiece would
                                        drop before the first piece */
};

/* Creates a streaming decoder for t (t must outlive it). flags: SH_DETOK_*. */
shoal_status sh_detok_create(const sh_tokenizer *t, int flags, sh_detok **out);

/* Pushes one id. *text and *len receive the newly completed text: whole UTF-8
 * characters only (a partial sequence is held until it completes or proves
 * invalid, then U+FFFD). The pointer stays valid until the next call on d.
 * An out-of-range id is SHOAL_ERR_INVALID_ARG (d is unchanged). */
shoal_status sh_detok_push(sh_detok *d, int32_t id, const char **text, size_t *len);

/* Emits what is held (an incomplete sequence becomes U+FFFD) and resets d to
 * the start of a new text. */
shoal_status sh_detok_flush(sh_detok *d, const char **text, size_t *len);

/* Forgets held bytes and starts a new text. */
void sh_detok_reset(sh_detok *d);
void sh_detok_free(sh_detok *d);

/* ---- vocabulary -------------------------------------------------------- */

typedef struct sh_tokenizer_info {
    sh_tok_family family;
    int n_vocab;         /* ids are 0 .. n_vocab-1, added tokens included */
    int32_t bos_id, eos_id, unk_id, pad_id, sep_id, cls_id, mask_id, eot_id; /* -1: none */
    int add_bos, add_eos; /* encode(add_special=1) puts a prefix/suffix id */
    const char *pre;     /* pre-tokenizer: "gpt2", "llama3", "qwen2", "smollm",
                            "bert", "metaspace", "none", ... (owned by t) */
    const char *chat_template; /* the model's template text or NULL (owned by t) */
} sh_tokenizer_info;

void sh_tokenizer_get_info(const sh_tokenizer *t, sh_tokenizer_info *info);

int sh_tokenizer_n_vocab(const sh_tokenizer *t);
int32_t sh_tokenizer_bos(const sh_tokenizer *t); /* -1 if none */
int32_t sh_tokenizer_eos(const sh_tokenizer *t); /* -1 if none */

/* The vocabulary string of id as stored ("Ġthe", "▁the", "##ing", "<0x0A>",
 * "<|endoftext|>"), *len its bytes (len may be NULL); NULL if id is out of
 * range or unused. Owned by t. */
const char *sh_tokenizer_token_text(const sh_tokenizer *t, int32_t id, size_t *len);

/* The bytes id stands for on its own: " the" for "Ġthe" or "▁the", "ing" for
 * "##ing", the single byte 0x0A for "<0x0A>" (so possibly a partial UTF-8
 * sequence). Writes at most cap bytes to buf and returns the full length
 * (call again with a larger buf if it is > cap), or -1 for a bad id. */
int sh_tokenizer_token_to_piece(const sh_tokenizer *t, int32_t id, char *buf, int cap);

/* The id whose vocabulary string is exactly text[0..len), or -1. */
int32_t sh_tokenizer_token_id(const sh_tokenizer *t, const char *text, size_t len);

/* 1 for special tokens (BOS/EOS/[CLS]/control tokens, added tokens marked
 * special), 0 otherwise (also for bad ids). */
int sh_tokenizer_is_special(const sh_tokenizer *t, int32_t id);

/* 1 when id ends generation: EOS, EOT, or an end-of-turn marker of a chat
 * format present in the vocabulary (<|im_end|>, <|eot_id|>, <|endoftext|>,
 * <|end_of_text|>, </s>). */
int sh_tokenizer_is_eog(const sh_tokenizer *t, int32_t id);

/* Writes up to cap end-of-generation ids to out; returns how many exist. */
int sh_tokenizer_eog_ids(const sh_tokenizer *t, int32_t *out, int cap);

#endif
