/* Loading a Hugging Face tokenizer.json (+ tokenizer_config.json beside it).
 * The supported subset: models BPE and WordPiece; normalizers BertNormalizer,
 * Lowercase, StripAccents, NFD, NFC, Prepend, Replace (string pattern) and
 * Sequence; pre-tokenizers ByteLevel, Split (the GPT-2/Llama-3/Qwen2 regexes),
 * Digits, BertPreTokenizer, WhitespaceSplit, Metaspace and Sequence; decoders
 * ByteLevel, WordPiece, Metaspace, Replace(U+2581 -> ' '), ByteFallback, Fuse,
 * Strip and Sequence; post-processors TemplateProcessing, BertProcessing,
 * RobertaProcessing, ByteLevel and Sequence. Anything else is a clear
 * SHOAL_ERR_UNSUPPORTED naming the component. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_impl.h"

#define META "\xE2\x96\x81" /* U+2581 LOWER ONE EIGHTH BLOCK */

typedef struct jload {
    sh_tokenizer *t;
    const cJSON *root, *config;
    int has_bytelevel_pre;
    /* post-processor ids (before resolving config overrides) */
    int32_t prefix[4], suffix[4];
    int n_prefix, n_suffix;
} jload;

static int32_t to_id(double d);

static const char *jstr(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* 1/0 for a bool, dflt when absent or null */
static int jbool(const cJSON *o, const char *key, int dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
    return dflt;
}

static const char *type_of(const cJSON *o) {
    const char *s = jstr(o, "type");
    return s ? s : "";
}

/* ==== normalizers ========================================================== */

static shoal_status add_norm(sh_tokenizer *t, sh_norm_op op) {
    sh_norm_op *n = realloc(t->norm, sizeof *n * (size_t)(t->n_norm + 1));
    if (!n) return sh_fail(SHOAL_ERR_NOMEM, "tokenizer: out of memory");
    t->norm = n;
    t->norm[t->n_norm++] = op;
    return SHOAL_OK;
}

static shoal_status set_small(char *dst, int *len, const char *src, const char *what) {
    size_t n = strlen(src);
    if (n >= 16) return sh_fail(SHOAL_ERR_UNSUPPORTED, "%s: string longer than 15 bytes", what);
    memcpy(dst, src, n + 1);
    *len = (int)n;
    return SHOAL_OK;
}

static shoal_status parse_normalizer(jload *L, const cJSON *o, int depth) {
    if (!o || cJSON_IsNull(o)) return SHOAL_OK;
    if (depth > 8 || !cJSON_IsObject(o)) return sh_fail(SHOAL_ERR_FORMAT, "normalizer: not an object");
    const char *ty = type_of(o);
    sh_norm_op op;
    memset(&op, 0, sizeof op);
    if (!strcmp(ty, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, "normalizers"), *it;
        if (!cJSON_IsArray(list)) return sh_fail(SHOAL_ERR_FORMAT, "normalizer Sequence: no normalizers list");
        cJSON_ArrayForEach(it, list) SH_TRY(parse_normalizer(L, it, depth + 1));
        return SHOAL_OK;
    }
    if (!strcmp(ty, "BertNormalizer")) {
        op.kind = SH_NORM_BERT;
        op.clean_text = jbool(o, "clean_text", 1);
        op.chinese = jbool(o, "handle_chinese_chars", 1);
        op.strip_accents = jbool(o, "strip_accents", -1);
        op.lowercase = jbool(o, "lowercase", 1);
    } else if (!strcmp(ty, "Lowercase")) {
        op.kind = SH_NORM_LOWER;
    } else if (!strcmp(ty, "StripAccents")) {
        op.kind = SH_NORM_STRIP_ACCENTS;
    } else if (!strcmp(ty, "NFD")) {
        op.kind = SH_NORM_NFD;
    } else if (!strcmp(ty, "NFC")) {
        op.kind = SH_NORM_NFC;
    } else if (!strcmp(ty, "Prepend")) {
        const char *p = jstr(o, "prepend");
        if (!p) return sh_fail(SHOAL_ERR_FORMAT, "normalizer Prepend: no prepend string");
        op.kind = SH_NORM_PREPEND;
        SH_TRY(set_small(op.s, &op.slen, p, "normalizer Prepend"));
    } else if (!strcmp(ty, "Replace")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(o, "pattern");
        const char *from = jstr(pat, "String"), *to = jstr(o, "content");
        if (!from || !to)
            return sh_fail(SHOAL_ERR_UNSUPPORTED, "normalizer Replace: only String patterns are supported");
        if (!*from) return sh_fail(SHOAL_ERR_FORMAT, "normalizer Replace: empty pattern");
        op.kind = SH_NORM_REPLACE;
        SH_TRY(set_small(op.s, &op.slen, from, "normalizer Replace"));
        SH_TRY(set_small(op.r, &op.rlen, to, "normalizer Replace"));
    } else {
        return sh_fail(SHOAL_ERR_UNSUPPORTED, "normalizer \"%s\" is not supported", ty);
    }
    return add_norm(L->t, op);
}

/* ==== pre-tokenizers ======================================================= */

static shoal_status add_pre(sh_tokenizer *t, sh_pre_op op) {
    sh_pre_op *n = realloc(t->pre, sizeof *n * (size_t)(t->n_pre + 1));
    if (!n) return sh_fail(SHOAL_ERR_NOMEM, "tokenizer: out of memory");
    t->pre = n;
    t->pre[t->n_pre++] = op;
    return SHOAL_OK;
}

static void name_pre(sh_tokenizer *t, const char *name) {
    if (!t->pre_name[0] || !strcmp(t->pre_name, "digits")) snprintf(t->pre_name, sizeof t->pre_name, "%s", name);
}

static shoal_status metaspace_opts(const cJSON *o, sh_pre_op *op, const char *what) {
    const char *rep = jstr(o, "replacement");
    uint32_t cp = 0x2581;
    if (rep) {
        int r = *rep ? sh_utf8_next((const unsigned char *)rep, strlen(rep), &cp) : 0;
        if (r <= 0 || rep[r] != 0) return sh_fail(SHOAL_ERR_UNSUPPORTED, "%s: replacement must be one character", what);
    }
    op->replacement = cp;
    const char *scheme = jstr(o, "prepend_scheme");
    if (scheme) {
        if (!strcmp(scheme, "always")) op->prepend = 1;
        else if (!strcmp(scheme, "first")) op->prepend = 2;
        else if (!strcmp(scheme, "never")) op->prepend = 0;
        else return sh_fail(SHOAL_ERR_UNSUPPORTED, "%s: prepend_scheme \"%s\"", what, scheme);
    } else {
        op->prepend = jbool(o, "add_prefix_space", 1) ? 1 : 0;
    }
    op->split = jbool(o, "split", 1);
    return SHOAL_OK;
}

static shoal_status parse_pre(jload *L, const cJSON *o, int depth) {
    if (!o || cJSON_IsNull(o)) return SHOAL_OK;
    if (depth > 8 || !cJSON_IsObject(o)) return sh_fail(SHOAL_ERR_FORMAT, "pre_tokenizer: not an object");
    const char *ty = type_of(o);
    sh_pre_op op;
    memset(&op, 0, sizeof op);
    if (!strcmp(ty, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, "pretokenizers"), *it;
        if (!cJSON_IsArray(list)) return sh_fail(SHOAL_ERR_FORMAT, "pre_tokenizer Sequence: no pretokenizers list");
        cJSON_ArrayForEach(it, list) SH_TRY(parse_pre(L, it, depth + 1));
        return SHOAL_OK;
    }
    if (!strcmp(ty, "ByteLevel")) {
        op.kind = SH_PRE_BYTELEVEL;
        op.add_prefix_space = jbool(o, "add_prefix_space", 1);
        op.use_regex = jbool(o, "use_regex", 1);
        L->has_bytelevel_pre = 1;
        if (op.use_regex) name_pre(L->t, "gpt2");
    } else if (!strcmp(ty, "Split")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(o, "pattern");
        const char *re = jstr(pat, "Regex"), *beh = jstr(o, "behavior");
        if (!re) return sh_fail(SHOAL_ERR_UNSUPPORTED, "pre_tokenizer Split: only Regex patterns are supported");
        if (jbool(o, "invert", 0) || !beh || strcmp(beh, "Isolated") != 0)
            return sh_fail(SHOAL_ERR_UNSUPPORTED, "pre_tokenizer Split: only behavior Isolated without invert");
        if (sh_regex_from_pattern(re, &op.re) != 0)
            return sh_fail(SHOAL_ERR_UNSUPPORTED, "pre_tokenizer Split: regex %.120s is not one of the known "
                                                  "(GPT-2, Llama-3, Qwen2) patterns", re);
        op.kind = SH_PRE_REGEX;
        name_pre(L->t, op.re == SH_RE_GPT2 ? "gpt2" : op.re == SH_RE_LLAMA3 ? "llama3" : "qwen2");
    } else if (!strcmp(ty, "Digits")) {
        op.kind = SH_PRE_DIGITS;
        op.individual = jbool(o, "individual_digits", 0);
        name_pre(L->t, "digits");
    } else if (!strcmp(ty, "BertPreTokenizer")) {
        op.kind = SH_PRE_BERT;
        name_pre(L->t, "bert");
    } else if (!strcmp(ty, "WhitespaceSplit")) {
        op.kind = SH_PRE_WSSPLIT;
        name_pre(L->t, "whitespace");
    } else if (!strcmp(ty, "Metaspace")) {
        op.kind = SH_PRE_METASPACE;
        SH_TRY(metaspace_opts(o, &op, "pre_tokenizer Metaspace"));
        name_pre(L->t, "metaspace");
    } else {
        return sh_fail(SHOAL_ERR_UNSUPPORTED, "pre_tokenizer \"%s\" is not supported", ty);
    }
    /* Digits then the GPT-2 ByteLevel regex is SmolLM's pre-tokenizer */
    if (op.kind == SH_PRE_BYTELEVEL && op.use_regex && L->t->n_pre > 0 &&
        L->t->pre[L->t->n_pre - 1].kind == SH_PRE_DIGITS && L->t->pre[L->t->n_pre - 1].individual)
        snprintf(L->t->pre_name, sizeof L->t->pre_name, "smollm");
    return add_pre(L->t, op);
}

/* ==== decoders ============================================================= */

static shoal_status parse_decoder(jload *L, const cJSON *o, int depth) {
    sh_tokenizer *t = L->t;
    if (!o || cJSON_IsNull(o)) {
        if (depth == 0) t->dec_join_space = 1;
        return SHOAL_OK;
    }
    if (depth > 8 || !cJSON_IsObject(o)) return sh_fail(SHOAL_ERR_FORMAT, "decoder: not an object");
    const char *ty = type_of(o);
    if (!strcmp(ty, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, "decoders"), *it;
        if (!cJSON_IsArray(list)) return sh_fail(SHOAL_ERR_FORMAT, "decoder Sequence: no decoders list");
        cJSON_ArrayForEach(it, list) SH_TRY(parse_decoder(L, it, depth + 1));
    } else if (!strcmp(ty, "ByteLevel")) {
        t->dec_bytelevel = 1;
    } else if (!strcmp(ty, "WordPiece")) {
        const char *p = jstr(o, "prefix");
        if (p) SH_TRY(set_small(t->wp_prefix, &t->wp_prefix_len, p, "decoder WordPiece prefix"));
        t->dec_wordpiece = 1;
        t->dec_cleanup = jbool(o, "cleanup", 1);
    } else if (!strcmp(ty, "Metaspace")) {
        sh_pre_op op;
        memset(&op, 0, sizeof op);
        SH_TRY(metaspace_opts(o, &op, "decoder Metaspace"));
        if (op.replacement != 0x2581) return sh_fail(SHOAL_ERR_UNSUPPORTED, "decoder Metaspace: replacement not U+2581");
        t->dec_metaspace = 1;
        t->dec_strip_space = op.prepend != 0;
    } else if (!strcmp(ty, "Replace")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(o, "pattern");
        const char *from = jstr(pat, "String"), *to = jstr(o, "content");
        if (!from || !to || strcmp(from, META) != 0 || strcmp(to, " ") != 0)
            return sh_fail(SHOAL_ERR_UNSUPPORTED, "decoder Replace: only U+2581 -> ' ' is supported");
        t->dec_metaspace = 1;
    } else if (!strcmp(ty, "ByteFallback")) {
        t->dec_bytefallback = 1;
    } else if (!strcmp(ty, "Fuse")) {
        /* concatenation is what decode does anyway */
    } else if (!strcmp(ty, "Strip")) {
        const char *c = jstr(o, "content");
        const cJSON *start = cJSON_GetObjectItemCaseSensitive(o, "start"),
                    *stop = cJSON_GetObjectItemCaseSensitive(o, "stop");
        int st = cJSON_IsNumber(start) ? start->valueint : 0, sp = cJSON_IsNumber(stop) ? stop->valueint : 0;
        if (!c || strcmp(c, " ") != 0 || st > 1 || sp != 0)
            return sh_fail(SHOAL_ERR_UNSUPPORTED, "decoder Strip: only one leading ' ' is supported");
        t->dec_strip_space = st == 1;
    } else {
        return sh_fail(SHOAL_ERR_UNSUPPORTED, "decoder \"%s\" is not supported", ty);
    }
    return SHOAL_OK;
}

/* ==== post-processors ====================================================== */

static shoal_status push_id(int32_t *v, int *n, int32_t id, const char *what) {
    if (*n >= 4) return sh_fail(SHOAL_ERR_UNSUPPORTED, "%s: more than 4 special ids around a sequence", what);
    v[(*n)++] = id;
    return SHOAL_OK;
}

static shoal_status pair_id(const cJSON *o, const char *key, int32_t *id) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, key);
    const cJSON *v = cJSON_GetArrayItem(p, 1);
    if (!cJSON_IsArray(p) || !cJSON_IsNumber(v)) return sh_fail(SHOAL_ERR_FORMAT, "post_processor: bad %s", key);
    *id = to_id(v->valuedouble);
    return SHOAL_OK;
}

static shoal_status parse_post(jload *L, const cJSON *o, int depth) {
    if (!o || cJSON_IsNull(o)) return SHOAL_OK;
    if (depth > 8 || !cJSON_IsObject(o)) return sh_fail(SHOAL_ERR_FORMAT, "post_processor: not an object");
    const char *ty = type_of(o);
    if (!strcmp(ty, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, "processors"), *it;
        if (!cJSON_IsArray(list)) return sh_fail(SHOAL_ERR_FORMAT, "post_processor Sequence: no processors list");
        cJSON_ArrayForEach(it, list) SH_TRY(parse_post(L, it, depth + 1));
    } else if (!strcmp(ty, "ByteLevel")) {
        /* offsets only */
    } else if (!strcmp(ty, "BertProcessing") || !strcmp(ty, "RobertaProcessing")) {
        int32_t cls = -1, sep = -1;
        SH_TRY(pair_id(o, "cls", &cls));
        SH_TRY(pair_id(o, "sep", &sep));
        L->n_prefix = L->n_suffix = 0;
        SH_TRY(push_id(L->prefix, &L->n_prefix, cls, "post_processor"));
        SH_TRY(push_id(L->suffix, &L->n_suffix, sep, "post_processor"));
    } else if (!strcmp(ty, "TemplateProcessing")) {
        const cJSON *single = cJSON_GetObjectItemCaseSensitive(o, "single"), *it;
        const cJSON *specials = cJSON_GetObjectItemCaseSensitive(o, "special_tokens");
        if (!cJSON_IsArray(single)) return sh_fail(SHOAL_ERR_FORMAT, "post_processor TemplateProcessing: no single");
        L->n_prefix = L->n_suffix = 0;
        int seen_seq = 0;
        cJSON_ArrayForEach(it, single) {
            const cJSON *sp = cJSON_GetObjectItemCaseSensitive(it, "SpecialToken");
            if (cJSON_GetObjectItemCaseSensitive(it, "Sequence")) {
                seen_seq = 1;
                continue;
            }
            const char *name = jstr(sp, "id");
            if (!name) return sh_fail(SHOAL_ERR_FORMAT, "post_processor TemplateProcessing: bad item");
            const cJSON *ent = cJSON_GetObjectItemCaseSensitive(specials, name);
            const cJSON *ids = cJSON_GetObjectItemCaseSensitive(ent, "ids"), *x;
            if (!cJSON_IsArray(ids))
                return sh_fail(SHOAL_ERR_FORMAT, "post_processor TemplateProcessing: special token %s has no ids", name);
            cJSON_ArrayForEach(x, ids) {
                if (!cJSON_IsNumber(x)) return sh_fail(SHOAL_ERR_FORMAT, "post_processor: bad id");
                if (seen_seq) SH_TRY(push_id(L->suffix, &L->n_suffix, to_id(x->valuedouble), "post_processor"));
                else SH_TRY(push_id(L->prefix, &L->n_prefix, to_id(x->valuedouble), "post_processor"));
            }
        }
    } else {
        return sh_fail(SHOAL_ERR_UNSUPPORTED, "post_processor \"%s\" is not supported", ty);
    }
    return SHOAL_OK;
}

/* ==== vocabulary =========================================================== */

typedef struct vocab_tmp {
    const char **strs;
    uint32_t *lens;
    int n;
} vocab_tmp;

/* A JSON number as a token id, -1 unless it is an integer in [0, 2^31). */
static int32_t to_id(double d) {
    if (!(d >= 0 && d < 2147483648.0) || d != (double)(int64_t)d) return -1;
    return (int32_t)d;
}

static shoal_status vocab_put(vocab_tmp *v, double d, const char *s, int limit) {
    int32_t id = to_id(d);
    if (id < 0 || id >= limit) return sh_fail(SHOAL_ERR_FORMAT, "token id %.0f out of range", d);
    size_t n = strlen(s);
    if (n >= UINT32_MAX) return sh_fail(SHOAL_ERR_FORMAT, "token too long");
    v->strs[id] = s;
    v->lens[id] = (uint32_t)n;
    if (id + 1 > v->n) v->n = (int)id + 1;
    return SHOAL_OK;
}

static shoal_status load_vocab(jload *L, const cJSON *model, const cJSON *added) {
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab"), *it;
    if (!cJSON_IsObject(vocab)) return sh_fail(SHOAL_ERR_FORMAT, "model.vocab: missing or not an object");
    int count = cJSON_GetArraySize(vocab) + (cJSON_IsArray(added) ? cJSON_GetArraySize(added) : 0);
    if (count <= 0) return sh_fail(SHOAL_ERR_FORMAT, "model.vocab: empty");
    /* ids must be dense-ish: allow holes but not absurd ids */
    int limit = count * 2 + 1024;
    vocab_tmp v = {calloc((size_t)limit, sizeof(char *)), calloc((size_t)limit, sizeof(uint32_t)), 0};
    shoal_status st = SHOAL_OK;
    if (!v.strs || !v.lens) {
        st = sh_fail(SHOAL_ERR_NOMEM, "tokenizer: out of memory");
        goto done;
    }
    cJSON_ArrayForEach(it, vocab) {
        if (!cJSON_IsNumber(it) || !it->string) {
            st = sh_fail(SHOAL_ERR_FORMAT, "model.vocab: entry is not a number");
            goto done;
        }
        if ((st = vocab_put(&v, it->valuedouble, it->string, limit)) != SHOAL_OK) goto done;
    }
    if (cJSON_IsArray(added)) {
        cJSON_ArrayForEach(it, added) {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
            const char *content = jstr(it, "content");
            if (!cJSON_IsNumber(id) || !content) {
                st = sh_fail(SHOAL_ERR_FORMAT, "added_tokens: entry without id/content");
                goto done;
            }
            if ((st = vocab_put(&v, id->valuedouble, content, limit)) != SHOAL_OK) goto done;
        }
    }
    if ((st = sh_tok_set_vocab(L->t, v.n, v.strs, v.lens)) != SHOAL_OK) goto done;
    if (cJSON_IsArray(added)) {
        cJSON_ArrayForEach(it, added) {
            int32_t id = to_id(cJSON_GetObjectItemCaseSensitive(it, "id")->valuedouble);
            uint8_t a = SH_TA_ADDED;
            if (jbool(it, "special", 0)) a |= SH_TA_SPECIAL;
            if (jbool(it, "lstrip", 0)) a |= SH_TA_LSTRIP;
            if (jbool(it, "rstrip", 0)) a |= SH_TA_RSTRIP;
            if (jbool(it, "single_word", 0)) a |= SH_TA_SINGLE_WORD;
            L->t->attr[id] |= a;
        }
    }
done:
    free(v.strs);
    free(v.lens);
    return st;
}

static shoal_status load_merges(jload *L, const cJSON *model) {
    sh_tokenizer *t = L->t;
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges"), *it;
    if (!merges || cJSON_IsNull(merges)) return SHOAL_OK;
    if (!cJSON_IsArray(merges)) return sh_fail(SHOAL_ERR_FORMAT, "model.merges: not a list");
    int n = cJSON_GetArraySize(merges);
    SH_TRY(sh_pairmap_init(&t->merges, (uint32_t)n + 1));
    sh_buf both = {0};
    shoal_status st = SHOAL_OK;
    int rank = 0;
    cJSON_ArrayForEach(it, merges) {
        const char *a, *b;
        size_t al, bl;
        if (cJSON_IsString(it)) {
            const char *s = it->valuestring, *sp = strchr(s, ' ');
            if (!sp || strchr(sp + 1, ' ')) {
                st = sh_fail(SHOAL_ERR_FORMAT, "model.merges[%d]: \"%.60s\" is not \"a b\"", rank, s);
                break;
            }
            a = s;
            al = (size_t)(sp - s);
            b = sp + 1;
            bl = strlen(b);
        } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 && cJSON_IsString(cJSON_GetArrayItem(it, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(it, 1))) {
            a = cJSON_GetArrayItem(it, 0)->valuestring;
            b = cJSON_GetArrayItem(it, 1)->valuestring;
            al = strlen(a);
            bl = strlen(b);
        } else {
            st = sh_fail(SHOAL_ERR_FORMAT, "model.merges[%d]: not a string pair", rank);
            break;
        }
        int32_t ia = sh_tok_lookup(t, a, al), ib = sh_tok_lookup(t, b, bl);
        both.n = 0;
        if ((st = sh_buf_put(&both, a, al)) != SHOAL_OK || (st = sh_buf_put(&both, b, bl)) != SHOAL_OK) break;
        int32_t im = sh_tok_lookup(t, both.p, both.n);
        if (ia < 0 || ib < 0 || im < 0) {
            st = sh_fail(SHOAL_ERR_FORMAT, "model.merges[%d]: a token of \"%.40s\" + \"%.40s\" is not in the vocabulary",
                         rank, a, b);
            break;
        }
        if ((st = sh_pairmap_add(&t->merges, ia, ib, rank, im)) != SHOAL_OK) break;
        rank++;
    }
    sh_buf_free(&both);
    return st;
}

/* ==== specials and config ================================================== */

/* A token given as a string or as {"content": ...}. */
static const char *token_name(const cJSON *v) {
    if (cJSON_IsString(v)) return v->valuestring;
    if (cJSON_IsObject(v)) return jstr(v, "content");
    return NULL;
}

static int32_t lookup_name(const sh_tokenizer *t, const char *s) { return s ? sh_tok_lookup(t, s, strlen(s)) : -1; }

static void set_special(const sh_tokenizer *t, const cJSON *cfg, const char *key, int32_t *dst,
                        const char *const *guesses) {
    if (cfg) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
        if (v) {
            int32_t id = lookup_name(t, token_name(v));
            if (id >= 0 || cJSON_IsNull(v)) {
                *dst = id;
                return;
            }
        }
    }
    if (*dst >= 0) return;
    for (int i = 0; guesses && guesses[i]; i++) {
        int32_t id = lookup_name(t, guesses[i]);
        if (id >= 0 && (t->attr[id] & SH_TA_ADDED)) {
            *dst = id;
            return;
        }
    }
}

static shoal_status apply_config(jload *L) {
    sh_tokenizer *t = L->t;
    const cJSON *cfg = L->config;
    static const char *const bos_g[] = {"<s>", "<|begin_of_text|>", "<|endoftext|>", NULL};
    static const char *const eos_g[] = {"</s>", "<|end_of_text|>", "<|endoftext|>", NULL};
    static const char *const unk_g[] = {"<unk>", "[UNK]", NULL};
    static const char *const pad_g[] = {"<pad>", "[PAD]", NULL};
    static const char *const sep_g[] = {"[SEP]", NULL};
    static const char *const cls_g[] = {"[CLS]", NULL};
    static const char *const mask_g[] = {"[MASK]", "<mask>", NULL};
    static const char *const eot_g[] = {"<|eot_id|>", "<|im_end|>", NULL};
    int wp = t->family == SH_TOK_WORDPIECE;
    set_special(t, cfg, "bos_token", &t->bos, wp ? NULL : bos_g);
    set_special(t, cfg, "eos_token", &t->eos, wp ? NULL : eos_g);
    set_special(t, cfg, "unk_token", &t->unk, unk_g);
    set_special(t, cfg, "pad_token", &t->pad, pad_g);
    set_special(t, cfg, "sep_token", &t->sep, sep_g);
    set_special(t, cfg, "cls_token", &t->cls, cls_g);
    set_special(t, cfg, "mask_token", &t->mask, mask_g);
    set_special(t, NULL, "", &t->eot, wp ? NULL : eot_g);
    if (wp) {
        if (t->bos < 0) t->bos = t->cls;
        if (t->eos < 0) t->eos = t->sep;
    }
    memcpy(t->prefix, L->prefix, sizeof t->prefix);
    memcpy(t->suffix, L->suffix, sizeof t->suffix);
    t->n_prefix = L->n_prefix;
    t->n_suffix = L->n_suffix;
    if (cfg) {
        const cJSON *ab = cJSON_GetObjectItemCaseSensitive(cfg, "add_bos_token");
        const cJSON *ae = cJSON_GetObjectItemCaseSensitive(cfg, "add_eos_token");
        if (cJSON_IsBool(ab)) {
            t->n_prefix = 0;
            if (cJSON_IsTrue(ab) && t->bos >= 0) t->prefix[t->n_prefix++] = t->bos;
        }
        if (cJSON_IsBool(ae)) {
            t->n_suffix = 0;
            if (cJSON_IsTrue(ae) && t->eos >= 0) t->suffix[t->n_suffix++] = t->eos;
        }
        const cJSON *ct = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
        const char *tmpl = NULL;
        if (cJSON_IsString(ct)) {
            tmpl = ct->valuestring;
        } else if (cJSON_IsArray(ct)) {
            const cJSON *it;
            cJSON_ArrayForEach(it, ct) {
                const char *name = jstr(it, "name"), *tx = jstr(it, "template");
                if (tx && (!tmpl || (name && !strcmp(name, "default")))) tmpl = tx;
            }
        }
        if (tmpl) {
            t->chat_template = strdup(tmpl);
            if (!t->chat_template) return sh_fail(SHOAL_ERR_NOMEM, "tokenizer: out of memory");
        }
    }
    for (int i = 0; i < t->n_prefix; i++)
        if (t->prefix[i] < 0 || t->prefix[i] >= t->n_vocab) return sh_fail(SHOAL_ERR_FORMAT, "post_processor: bad id");
    for (int i = 0; i < t->n_suffix; i++)
        if (t->suffix[i] < 0 || t->suffix[i] >= t->n_vocab) return sh_fail(SHOAL_ERR_FORMAT, "post_processor: bad id");
    return SHOAL_OK;
}

/* ==== the loader =========================================================== */

static shoal_status load_root(jload *L) {
    sh_tokenizer *t = L->t;
    const cJSON *root = L->root;
    if (!cJSON_IsObject(root)) return sh_fail(SHOAL_ERR_FORMAT, "not a JSON object");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model)) return sh_fail(SHOAL_ERR_FORMAT, "model: missing");
    const char *mty = jstr(model, "type");
    /* older files omit model.type; a "merges" list means BPE */
    if (!mty) mty = cJSON_GetObjectItemCaseSensitive(model, "merges") ? "BPE" : "";
    if (!strcmp(mty, "BPE")) {
        const char *csp = jstr(model, "continuing_subword_prefix"), *eow = jstr(model, "end_of_word_suffix");
        if ((csp && *csp) || (eow && *eow))
            return sh_fail(SHOAL_ERR_UNSUPPORTED, "model BPE: continuing_subword_prefix/end_of_word_suffix");
    } else if (strcmp(mty, "WordPiece") != 0) {
        return sh_fail(SHOAL_ERR_UNSUPPORTED, "model \"%s\" is not supported (BPE and WordPiece are)", mty);
    }
    SH_TRY(parse_pre(L, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), 0));
    if (!strcmp(mty, "WordPiece")) {
        t->family = SH_TOK_WORDPIECE;
    } else {
        t->family = L->has_bytelevel_pre ? SH_TOK_BPE_BYTE : SH_TOK_BPE_SPM;
        t->byte_level = L->has_bytelevel_pre;
    }
    if (!t->pre_name[0]) snprintf(t->pre_name, sizeof t->pre_name, "none");
    SH_TRY(load_vocab(L, model, cJSON_GetObjectItemCaseSensitive(root, "added_tokens")));
    SH_TRY(parse_normalizer(L, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), 0));
    SH_TRY(parse_decoder(L, cJSON_GetObjectItemCaseSensitive(root, "decoder"), 0));
    SH_TRY(parse_post(L, cJSON_GetObjectItemCaseSensitive(root, "post_processor"), 0));
    const char *unk = jstr(model, "unk_token");
    if (unk) t->unk = lookup_name(t, unk);
    if (t->family == SH_TOK_WORDPIECE) {
        const char *p = jstr(model, "continuing_subword_prefix");
        if (p) SH_TRY(set_small(t->wp_prefix, &t->wp_prefix_len, p, "model WordPiece prefix"));
        const cJSON *mx = cJSON_GetObjectItemCaseSensitive(model, "max_input_chars_per_word");
        if (cJSON_IsNumber(mx)) t->wp_max_chars = mx->valuedouble < 0 ? 0 : mx->valuedouble > 1e9 ? 1000000000 : mx->valueint;
        if (t->unk < 0) return sh_fail(SHOAL_ERR_FORMAT, "model WordPiece: unk_token missing from the vocabulary");
    } else {
        t->byte_fallback = jbool(model, "byte_fallback", 0);
        t->fuse_unk = jbool(model, "fuse_unk", 0);
        t->ignore_merges = jbool(model, "ignore_merges", 0);
        SH_TRY(load_merges(L, model));
    }
    SH_TRY(apply_config(L));
    return sh_tok_finish(t);
}

static shoal_status load_buffer(const char *json, size_t len, const char *config, size_t config_len,
                                sh_tokenizer **out, const char *name) {
    if (!out) return sh_fail(SHOAL_ERR_INVALID_ARG, "tokenizer: out is NULL");
    *out = NULL;
    if (!json) return sh_fail(SHOAL_ERR_INVALID_ARG, "tokenizer: json is NULL");
    jload L;
    memset(&L, 0, sizeof L);
    shoal_status st = SHOAL_OK;
    cJSON *root = cJSON_ParseWithLength(json, len);
    cJSON *cfg = NULL;
    if (!root) {
        st = sh_fail(SHOAL_ERR_FORMAT, "%s: not valid JSON", name);
        goto fail;
    }
    if (config) {
        cfg = cJSON_ParseWithLength(config, config_len);
        if (!cJSON_IsObject(cfg)) {
            st = sh_fail(SHOAL_ERR_FORMAT, "tokenizer_config.json: not a JSON object");
            goto fail;
        }
    }
    if ((st = sh_tok_new(&L.t)) != SHOAL_OK) goto fail;
    L.root = root;
    L.config = cfg;
    if ((st = load_root(&L)) != SHOAL_OK) {
        sh_fail_prefix(st, "%s", name);
        goto fail;
    }
    cJSON_Delete(root);
    cJSON_Delete(cfg);
    *out = L.t;
    return SHOAL_OK;
fail:
    sh_tokenizer_free(L.t);
    cJSON_Delete(root);
    cJSON_Delete(cfg);
    return st;
}

shoal_status sh_tokenizer_load_json_buffer(const char *json, size_t len, const char *config, size_t config_len,
                                           sh_tokenizer **out) {
    return load_buffer(json, len, config, config_len, out, "tokenizer.json");
}

/* Reads a whole file; *data is malloc'd and NUL-terminated. */
static shoal_status read_file(const char *path, char **data, size_t *len) {
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return sh_fail(SHOAL_ERR_IO, "%s: cannot open", path);
    sh_buf b = {0};
    char chunk[65536];
    size_t n;
    shoal_status st = SHOAL_OK;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if ((st = sh_buf_put(&b, chunk, n)) != SHOAL_OK) break;
    if (st == SHOAL_OK && ferror(f)) st = sh_fail(SHOAL_ERR_IO, "%s: read error", path);
    fclose(f);
    if (st == SHOAL_OK && !b.p) st = sh_buf_put(&b, "", 0);
    if (st != SHOAL_OK) {
        sh_buf_free(&b);
        return st;
    }
    *data = b.p;
    *len = b.n;
    return SHOAL_OK;
}

shoal_status sh_tokenizer_load_json(const char *path, sh_tokenizer **out) {
    if (!out) return sh_fail(SHOAL_ERR_INVALID_ARG, "tokenizer: out is NULL");
    *out = NULL;
    if (!path) return sh_fail(SHOAL_ERR_INVALID_ARG, "tokenizer: path is NULL");
    char *json = NULL, *cfg = NULL, *cfg_path = NULL;
    size_t len = 0, cfg_len = 0;
    shoal_status st = read_file(path, &json, &len);
    if (st != SHOAL_OK) return st;
    /* tokenizer_config.json in the same folder */
    const char *slash = strrchr(path, '/');
    size_t dir = slash ? (size_t)(slash - path + 1) : 0;
    cfg_path = malloc(dir + sizeof "tokenizer_config.json");
    if (!cfg_path) {
        free(json);
        return sh_fail(SHOAL_ERR_NOMEM, "tokenizer: out of memory");
    }
    memcpy(cfg_path, path, dir);
    memcpy(cfg_path + dir, "tokenizer_config.json", sizeof "tokenizer_config.json");
    FILE *f = fopen(cfg_path, "rb");
    if (f) {
        fclose(f);
        if ((st = read_file(cfg_path, &cfg, &cfg_len)) != SHOAL_OK) goto done;
    }
    st = load_buffer(json, len, cfg, cfg_len, out, path);
done:
    free(json);
    free(cfg);
    free(cfg_path);
    return st;
}
