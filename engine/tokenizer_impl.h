/* Internals shared by the tokenizer files (tokenizer*.c). Not for callers:
 * the API is engine/tokenizer.h. */
#ifndef SH_TOKENIZER_IMPL_H
#define SH_TOKENIZER_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "tokenizer.h"

/* ==== Unicode tables (tokenizer_unicode.c, generated) ===================== */

enum {
    SH_UF_L = 1 << 0,       /* general category L* */
    SH_UF_N = 1 << 1,       /* N* */
    SH_UF_P = 1 << 2,       /* P* */
    SH_UF_MN = 1 << 3,      /* Mn */
    SH_UF_M = 1 << 4,       /* M* */
    SH_UF_C = 1 << 5,       /* C* (Cc Cf Cs Co Cn) */
    SH_UF_WS = 1 << 6,      /* White_Space property */
    SH_UF_LOWER = 1 << 7,   /* has a lower-case mapping */
    SH_UF_DECOMP = 1 << 8,  /* has a canonical decomposition (Hangul excluded) */
    SH_UF_PC = 1 << 9,      /* Pc */
    SH_UF_S = 1 << 10,      /* S* */
    SH_UF_Z = 1 << 11,      /* Z* */
    /* as Hugging Face's BERT components see them (older Unicode tables;
     * the generator lists the differences) */
    SH_UF_HF_CTL = 1 << 12,   /* removed by BertNormalizer clean_text */
    SH_UF_HF_MARK = 1 << 13,  /* removed by StripAccents */
    SH_UF_HF_PUNCT = 1 << 14, /* isolated by BertPreTokenizer */
    SH_UF_HF_BERT_MN = 1 << 15, /* removed by BertNormalizer strip_accents */
    SH_UF_COMP2 = 1 << 16,      /* second character of a canonical composition */
};

typedef struct sh_uc_record { uint32_t flags; uint8_t ccc; } sh_uc_record;
typedef struct sh_uc_map { uint32_t cp, off, n; } sh_uc_map;
typedef struct sh_uc_comp { uint32_t a, b, c; } sh_uc_comp;

extern const char sh_unicode_version[];
extern const sh_uc_record sh_uc_records[];
extern const uint16_t sh_uc_stage1[];
extern const uint8_t sh_uc_stage2[];
extern const sh_uc_map sh_uc_lower[], sh_uc_decomp[];
extern const uint32_t sh_uc_lower_data[], sh_uc_decomp_data[];
extern const int sh_uc_lower_n, sh_uc_decomp_n;
extern const sh_uc_comp sh_uc_comps[];
extern const int sh_uc_comps_n;

static inline const sh_uc_record *sh_uc_rec(uint32_t cp) {
    if (cp >= 0x110000) cp = 0xFFFF; /* a noncharacter: category Cn */
    return &sh_uc_records[sh_uc_stage2[(uint32_t)sh_uc_stage1[cp >> 7] * 128u + (cp & 127u)]];
}
static inline unsigned sh_uc_flags(uint32_t cp) { return sh_uc_rec(cp)->flags; }
static inline int sh_uc_ccc(uint32_t cp) { return sh_uc_rec(cp)->ccc; }

/* Full lower-case mapping of cp into out (at most 3 code points); returns the
 * count (1 and out[0] = cp when cp has no mapping). */
int sh_uc_tolower(uint32_t cp, uint32_t out[3]);
/* Full canonical decomposition of cp (Hangul included, at most 18 code
 * points, not reordered); returns the count (1 when cp does not decompose). */
int sh_uc_decompose(uint32_t cp, uint32_t out[18]);
/* Primary composite of (a, b), Hangul included; 0 when there is none. */
uint32_t sh_uc_compose(uint32_t a, uint32_t b);

/* ==== UTF-8 ================================================================ */

/* Decodes one character at s[0..n) (n >= 1). Returns its length 1..4 and
 * sets *cp, or returns -k (k >= 1) when s starts with a maximal invalid
 * subsequence of k bytes (the unit one U+FFFD replaces), or 0 when s holds a
 * valid but incomplete prefix of a character (only possible at the end). */
int sh_utf8_next(const unsigned char *s, size_t n, uint32_t *cp);
/* Writes cp as UTF-8 into out (4 bytes room); returns its length. */
int sh_utf8_put(uint32_t cp, char *out);

/* ==== growable byte buffer ================================================= */

typedef struct sh_buf { char *p; size_t n, cap; } sh_buf;

shoal_status sh_buf_reserve(sh_buf *b, size_t extra);
shoal_status sh_buf_put(sh_buf *b, const void *data, size_t n);
shoal_status sh_buf_putc(sh_buf *b, char c);
shoal_status sh_buf_put_cp(sh_buf *b, uint32_t cp);
void sh_buf_free(sh_buf *b);

/* Appends src[0..n) to b with every maximal invalid UTF-8 subsequence
 * replaced by U+FFFD; an incomplete sequence at the end counts as invalid. */
shoal_status sh_buf_put_lossy(sh_buf *b, const char *src, size_t n);

/* ==== hash maps ============================================================ */

uint64_t sh_hash_bytes(const void *p, size_t n);

/* string -> id over the tokenizer's token strings (keys are not copied: an
 * entry is an id whose string the map reads back through the tokenizer). */
typedef struct sh_strmap { int32_t *slot; uint32_t mask; uint32_t count; } sh_strmap;

/* (left id, right id) -> (rank, merged id) */
typedef struct sh_pair_entry {
    uint64_t key; /* (left << 32 | right) + 1; 0 = empty */
    int32_t rank, merged;
} sh_pair_entry;

typedef struct sh_pairmap {
    sh_pair_entry *e; /* (mask + 1) slots, open addressing */
    uint32_t mask, count;
} sh_pairmap;

shoal_status sh_pairmap_init(sh_pairmap *m, uint32_t expected);
/* Adds a pair; an existing pair keeps its first (lowest) rank. */
shoal_status sh_pairmap_add(sh_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t merged);
int sh_pairmap_get(const sh_pairmap *m, int32_t a, int32_t b, int32_t *rank, int32_t *merged);
void sh_pairmap_free(sh_pairmap *m);

/* ==== the tokenizer ======================================================== */

enum { /* token attributes, t->attr[id] */
    SH_TA_PRESENT = 1,  /* the id has a string */
    SH_TA_SPECIAL = 2,  /* skipped by decode(skip_special) */
    SH_TA_ADDED = 4,    /* matched literally in input text */
    SH_TA_BYTE = 8,     /* a <0xXX> byte-fallback piece */
    SH_TA_LSTRIP = 16,  /* added token: eats whitespace on its left */
    SH_TA_RSTRIP = 32,  /* added token: eats whitespace on its right */
    SH_TA_SINGLE_WORD = 64,
};

typedef enum sh_norm_kind {
    SH_NORM_BERT,          /* clean_text, handle_chinese_chars, strip_accents, lowercase */
    SH_NORM_LOWER,
    SH_NORM_STRIP_ACCENTS, /* drop Mn (after an NFD op) */
    SH_NORM_NFD,
    SH_NORM_NFC,
    SH_NORM_PREPEND,       /* prepend s when the text is not empty */
    SH_NORM_REPLACE,       /* replace every s by r */
} sh_norm_kind;

typedef struct sh_norm_op {
    sh_norm_kind kind;
    int clean_text, chinese, strip_accents, lowercase; /* SH_NORM_BERT */
    char s[16], r[16];                                 /* PREPEND / REPLACE */
    int slen, rlen;
} sh_norm_op;

typedef enum sh_regex_kind {
    SH_RE_GPT2,   /* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
    SH_RE_LLAMA3, /* (?i:'s|...)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
    SH_RE_QWEN2,  /* as LLAMA3 with \p{N} (one digit) */
} sh_regex_kind;

typedef enum sh_pre_kind {
    SH_PRE_BYTELEVEL, /* optional prefix space, optional GPT-2 regex split */
    SH_PRE_REGEX,     /* Split(Regex, Isolated) with a known pattern */
    SH_PRE_DIGITS,    /* isolate digits (individually or as runs) */
    SH_PRE_BERT,      /* split on whitespace (removed) and punctuation (isolated) */
    SH_PRE_WSSPLIT,   /* split on whitespace (removed) */
    SH_PRE_METASPACE, /* ' ' -> replacement, prepend per scheme, optional split */
} sh_pre_kind;

typedef struct sh_pre_op {
    sh_pre_kind kind;
    sh_regex_kind re;
    int add_prefix_space, use_regex; /* BYTELEVEL */
    int individual;                  /* DIGITS */
    int prepend;                     /* METASPACE: 0 never, 1 always, 2 first */
    int split;                       /* METASPACE */
    uint32_t replacement;            /* METASPACE */
} sh_pre_op;

struct sh_tokenizer {
    sh_tok_family family;
    int n_vocab;
    /* token strings: id -> tok[off[id] .. off[id] + len[id]) */
    char *tok;
    uint32_t *off, *len;
    uint8_t *attr;   /* SH_TA_* per id */
    float *score;    /* per id (SentencePiece by score), else NULL */
    sh_strmap vocab; /* string -> id */
    int max_tok_len; /* longest token string, bytes */

    /* decoded bytes of each id alone: dec[doff[id] .. doff[id] + dlen[id]) */
    char *dec;
    uint32_t *doff, *dlen;

    /* normaliser and pre-tokenizer op lists */
    sh_norm_op *norm;
    int n_norm;
    sh_pre_op *pre;
    int n_pre;
    char pre_name[32];

    /* BPE */
    sh_pairmap merges;
    int merge_by_score; /* 1: pair priority = score of the merged piece */
    int ignore_merges;  /* a whole piece in the vocabulary is one token */
    int byte_level;     /* symbols are bytes through byte_sym */
    int32_t byte_sym[256]; /* id of the byte-level character of each byte */
    int byte_fallback;
    int32_t byte_tok[256]; /* id of <0xXX>, -1 when absent */
    int fuse_unk;

    /* WordPiece */
    char wp_prefix[16];
    int wp_prefix_len;
    int wp_max_chars;

    /* decoding */
    int dec_bytelevel, dec_metaspace, dec_bytefallback, dec_strip_space, dec_wordpiece,
        dec_cleanup, dec_join_space;

    /* added tokens, for literal matching: ids sorted by first byte */
    int32_t *added;
    int n_added;
    int added_first[257]; /* added[added_first[b] .. added_first[b+1]) start with byte b */

    /* specials and post-processing */
    int32_t bos, eos, unk, pad, sep, cls, mask, eot;
    int32_t prefix[4], suffix[4];
    int n_prefix, n_suffix;
    int32_t eog[16];
    int n_eog;
    char *chat_template;
};

/* ---- construction helpers (tokenizer.c) ---- */

/* Allocates an empty tokenizer (all ids -1). */
shoal_status sh_tok_new(sh_tokenizer **out);
/* Sets the token strings: n ids, strs[i] of lens[i] bytes (NULL = unused).
 * Builds the vocabulary map (first id wins on duplicates). */
shoal_status sh_tok_set_vocab(sh_tokenizer *t, int n, const char *const *strs, const uint32_t *lens);
/* After vocabulary, attributes, family and decoder flags: derives byte
 * tables, decoded pieces, added-token index, end-of-generation ids. */
shoal_status sh_tok_finish(sh_tokenizer *t);
int32_t sh_tok_lookup(const sh_tokenizer *t, const char *s, size_t n);

/* ---- stages ---- */

/* Applies the normaliser ops to s[0..n) (valid UTF-8) into out (cleared first). */
shoal_status sh_normalize(const sh_tokenizer *t, const char *s, size_t n, sh_buf *out);

/* Pre-tokenized pieces of one text segment: the segment as code points with
 * byte offsets, and pieces as [start, end) code point ranges. */
typedef struct sh_pieces {
    sh_buf text;     /* the (possibly rewritten) segment, UTF-8 */
    uint32_t *cp;    /* (nch) code points */
    uint32_t *boff;  /* (nch + 1) byte offset of each code point in text */
    int nch, cap_ch;
    int32_t *pc;     /* (2 * npieces) start, end code point index */
    int npieces, cap_pieces;
    int32_t *tmp;    /* scratch for splits */
    int cap_tmp;
} sh_pieces;

/* Runs the pre-tokenizer ops on text[0..n); first: the segment starts the
 * input (Metaspace "first"). */
shoal_status sh_pretokenize(const sh_tokenizer *t, const char *text, size_t n, int first,
                            sh_pieces *p);
void sh_pieces_free(sh_pieces *p);

/* Growable id list with BPE/WordPiece scratch. */
typedef struct sh_ids {
    int32_t *v;
    int n, cap;
    /* BPE scratch */
    void *sym;
    int cap_sym;
    void *heap;
    int cap_heap;
    sh_buf word;
} sh_ids;

shoal_status sh_ids_push(sh_ids *o, int32_t id);
void sh_ids_free(sh_ids *o);

/* Models: append the ids of one piece s[0..n) to out. */
shoal_status sh_bpe_piece(const sh_tokenizer *t, const char *s, size_t n, sh_ids *out);
shoal_status sh_wordpiece_piece(const sh_tokenizer *t, const char *s, size_t n, sh_ids *out);

/* GPT-2 byte <-> character map: the code point byte b is written as. */
uint32_t sh_bytelevel_cp(unsigned b);
/* Inverse: the byte of code point cp, or -1 when cp is not in the map. */
int sh_bytelevel_byte(uint32_t cp);

/* Recognises a tokenizer.json Split regex; returns 0 and sets *k, or -1. */
int sh_regex_from_pattern(const char *pattern, sh_regex_kind *k);

#endif
