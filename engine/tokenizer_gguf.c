/* Loading a tokenizer from GGUF metadata (tokenizer.ggml.*), and
 * sh_tokenizer_load, which picks GGUF or tokenizer.json from a path. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gguf.h"
#include "tokenizer_impl.h"

#define META "\xE2\x96\x81" /* U+2581 */

enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER_DEFINED = 4, TT_UNUSED = 5, TT_BYTE = 6 };

static int64_t get_int(const sh_gguf *g, const char *key, int64_t dflt) {
    int64_t v;
    if (sh_gguf_find_key(g, key) < 0 || sh_gguf_get_int(g, key, &v) != SHOAL_OK) return dflt;
    return v;
}

static int32_t get_id(const sh_gguf *g, const char *key, int n_vocab) {
    int64_t v = get_int(g, key, -1);
    return v >= 0 && v < n_vocab ? (int32_t)v : -1;
}

/* Copies a GGUF string value into a NUL-terminated buffer of cap bytes. */
static int get_small_str(const sh_gguf *g, const char *key, char *out, size_t cap) {
    const char *s;
    uint64_t n;
    out[0] = 0;
    if (sh_gguf_find_key(g, key) < 0 || sh_gguf_get_str(g, key, &s, &n) != SHOAL_OK) return 0;
    if (n >= cap) n = cap - 1;
    memcpy(out, s, (size_t)n);
    out[n] = 0;
    return 1;
}

typedef struct pre_map { const char *name; int regex; sh_regex_kind re; int digits; int ignore_merges; } pre_map;

static const pre_map known_pre[] = {
    {"gpt-2", 1, SH_RE_GPT2, 0, 0},       {"gpt2", 1, SH_RE_GPT2, 0, 0},
    {"default", 1, SH_RE_GPT2, 0, 0},     {"", 1, SH_RE_GPT2, 0, 0},
    {"llama-bpe", 1, SH_RE_LLAMA3, 0, 1}, {"llama3", 1, SH_RE_LLAMA3, 0, 1},
    {"llama-v3", 1, SH_RE_LLAMA3, 0, 1},  {"smaug-bpe", 1, SH_RE_LLAMA3, 0, 0},
    {"qwen2", 1, SH_RE_QWEN2, 0, 0},      {"smollm", 1, SH_RE_GPT2, 1, 0},
    {"starcoder", 1, SH_RE_GPT2, 1, 0},   {"refact", 1, SH_RE_GPT2, 1, 0},
    {"codeshell", 1, SH_RE_GPT2, 1, 0},   {"command-r", 1, SH_RE_GPT2, 1, 0},
};

static shoal_status add_pre(sh_tokenizer *t, sh_pre_op op) {
    sh_pre_op *n = realloc(t->pre, sizeof *n * (size_t)(t->n_pre + 1));
    if (!n) return sh_fail(SHOAL_ERR_NOMEM, "tokenizer: out of memory");
    t->pre = n;
    t->pre[t->n_pre++] = op;
    return SHOAL_OK;
}

static shoal_status add_norm(sh_tokenizer *t, sh_norm_op op) {
    sh_norm_op *n = realloc(t->norm, sizeof *n * (size_t)(t->n_norm + 1));
    if (!n) return sh_fail(SHOAL_ERR_NOMEM, "tokenizer: out of memory");
    t->norm = n;
    t->norm[t->n_norm++] = op;
    return SHOAL_OK;
}

/* Token strings (BERT files store word-initial pieces as U+2581 + piece and
 * continuations bare; turned back into the "##" form here). */
static shoal_status load_tokens(sh_tokenizer *t, const sh_gguf *g, int bert) {
    sh_gguf_type el;
    uint64_t n;
    SH_TRY(sh_gguf_get_arr(g, "tokenizer.ggml.tokens", &el, &n));
    if (el != SH_GGUF_STRING) return sh_fail(SHOAL_ERR_FORMAT, "tokenizer.ggml.tokens: not an array of strings");
    if (n == 0 || n > (1u << 26)) return sh_fail(SHOAL_ERR_FORMAT, "tokenizer.ggml.tokens: %llu tokens", (unsigned long long)n);
    const char **strs = calloc((size_t)n, sizeof *strs);
    uint32_t *lens = calloc((size_t)n, sizeof *lens);
    sh_buf conv = {0};
    size_t *coff = NULL;
    shoal_status st = SHOAL_OK;
    if (!strs || !lens) {
        st = sh_fail(SHOAL_ERR_NOMEM, "tokenizer: out of memory");
        goto done;
    }
    if (bert && !(coff = calloc((size_t)n, sizeof *coff))) {
        st = sh_fail(SHOAL_ERR_NOMEM, "tokenizer: out of memory");
        goto done;
    }
    for (uint64_t i = 0; i < n; i++) {
        uint64_t len;
        const char *s = sh_gguf_arr_str(g, "tokenizer.ggml.tokens", i, &len);
        if (!s || len >= UINT32_MAX) {
            st = sh_fail(SHOAL_ERR_FORMAT, "tokenizer.ggml.tokens[%llu]: unreadable", (unsigned long long)i);
            goto done;
        }
        if (bert) {
            coff[i] = conv.n;
            if (len >= 3 && memcmp(s, META, 3) == 0) {
                st = sh_buf_put(&conv, s + 3, (size_t)len - 3);
            } else if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
                st = sh_buf_put(&conv, s, (size_t)len);
            } else {
                st = sh_buf_put(&conv, "##", 2);
                if (st == SHOAL_OK) st = sh_buf_put(&conv, s, (size_t)len);
            }
            if (st != SHOAL_OK) goto done;
            lens[i] = (uint32_t)(conv.n - coff[i]);
        } else {
            strs[i] = s;
            lens[i] = (uint32_t)len;
        }
    }
    if (bert) {
        if (!conv.p && (st = sh_buf_put(&conv, "", 0)) != SHOAL_OK) goto done;
        for (uint64_t i = 0; i < n; i++) strs[i] = conv.p + coff[i];
    }
    st = sh_tok_set_vocab(t, (int)n, strs, lens);
done:
    free(strs);
    free(lens);
    free(coff);
    sh_buf_free(&conv);
    return st;
}

static shoal_status load_types(sh_tokenizer *t, const sh_gguf *g) {
    sh_gguf_type el;
    uint64_t n;
    if (sh_gguf_find_key(g, "tokenizer.ggml.token_type") < 0) return SHOAL_OK;
    SH_TRY(sh_gguf_get_arr(g, "tokenizer.ggml.token_type", &el, &n));
    if (n != (uint64_t)t->n_vocab || el == SH_GGUF_STRING || el == SH_GGUF_ARRAY || el == SH_GGUF_FLOAT32 ||
        el == SH_GGUF_FLOAT64)
        return sh_fail(SHOAL_ERR_FORMAT, "tokenizer.ggml.token_type: %llu integers expected", (unsigned long long)t->n_vocab);
    for (uint64_t i = 0; i < n; i++) {
        int64_t ty = sh_gguf_arr_int(g, "tokenizer.ggml.token_type", i);
        if (ty == TT_CONTROL || ty == TT_UNKNOWN) t->attr[i] |= SH_TA_SPECIAL | SH_TA_ADDED;
        else if (ty == TT_USER_DEFINED) t->attr[i] |= SH_TA_ADDED;
    }
    return SHOAL_OK;
}

static shoal_status load_scores(sh_tokenizer *t, const sh_gguf *g) {
    sh_gguf_type el;
    uint64_t n;
    if (sh_gguf_find_key(g, "tokenizer.ggml.scores") < 0)
        return sh_fail(SHOAL_ERR_FORMAT, "tokenizer.ggml.scores: missing (needed by a \"llama\" tokenizer)");
    SH_TRY(sh_gguf_get_arr(g, "tokenizer.ggml.scores", &el, &n));
    if (n != (uint64_t)t->n_vocab || (el != SH_GGUF_FLOAT32 && el != SH_GGUF_FLOAT64))
        return sh_fail(SHOAL_ERR_FORMAT, "tokenizer.ggml.scores: %d floats expected", t->n_vocab);
    t->score = malloc(sizeof(float) * (size_t)t->n_vocab);
    if (!t->score) return sh_fail(SHOAL_ERR_NOMEM, "tokenizer: out of memory");
    for (uint64_t i = 0; i < n; i++) t->score[i] = (float)sh_gguf_arr_float(g, "tokenizer.ggml.scores", i);
    return SHOAL_OK;
}

static shoal_status load_merges(sh_tokenizer *t, const sh_gguf *g) {
    sh_gguf_type el;
    uint64_t n;
    SH_TRY(sh_gguf_get_arr(g, "tokenizer.ggml.merges", &el, &n));
    if (el != SH_GGUF_STRING || n > (1u << 26))
        return sh_fail(SHOAL_ERR_FORMAT, "tokenizer.ggml.merges: not an array of strings");
    SH_TRY(sh_pairmap_init(&t->merges, (uint32_t)n + 1));
    sh_buf both = {0};
    shoal_status st = SHOAL_OK;
    for (uint64_t i = 0; i < n && st == SHOAL_OK; i++) {
        uint64_t len;
        const char *s = sh_gguf_arr_str(g, "tokenizer.ggml.merges", i, &len);
        const char *sp = s ? memchr(s, ' ', (size_t)len) : NULL;
        if (!sp) {
            st = sh_fail(SHOAL_ERR_FORMAT, "tokenizer.ggml.merges[%llu]: not \"a b\"", (unsigned long long)i);
            break;
        }
        size_t al = (size_t)(sp - s), bl = (size_t)len - al - 1;
        int32_t ia = sh_tok_lookup(t, s, al), ib = sh_tok_lookup(t, sp + 1, bl);
        both.n = 0;
        if ((st = sh_buf_put(&both, s, al)) != SHOAL_OK || (st = sh_buf_put(&both, sp + 1, bl)) != SHOAL_OK) break;
        int32_t im = sh_tok_lookup(t, both.p, both.n);
        if (ia < 0 || ib < 0 || im < 0) {
            st = sh_fail(SHOAL_ERR_FORMAT, "tokenizer.ggml.merges[%llu]: \"%.*s\" uses a token outside the vocabulary",
                         (unsigned long long)i, (int)(len > 80 ? 80 : len), s);
            break;
        }
        st = sh_pairmap_add(&t->merges, ia, ib, (int32_t)i, im);
    }
    sh_buf_free(&both);
    return st;
}

static shoal_status load_gguf(sh_tokenizer *t, const sh_gguf *g) {
    char model[32], pre[64];
    if (!get_small_str(g, "tokenizer.ggml.model", model, sizeof model))
        return sh_fail(SHOAL_ERR_NOT_FOUND, "tokenizer.ggml.model: missing (the file carries no tokenizer)");
    get_small_str(g, "tokenizer.ggml.pre", pre, sizeof pre);
    int bert = !strcmp(model, "bert"), llama = !strcmp(model, "llama"), gpt2 = !strcmp(model, "gpt2");
    if (!bert && !llama && !gpt2)
        return sh_fail(SHOAL_ERR_UNSUPPORTED, "tokenizer.ggml.model \"%s\" is not supported (gpt2, llama, bert are)",
                       model);
    SH_TRY(load_tokens(t, g, bert));
    SH_TRY(load_types(t, g));
    int n = t->n_vocab;
    t->bos = get_id(g, "tokenizer.ggml.bos_token_id", n);
    t->eos = get_id(g, "tokenizer.ggml.eos_token_id", n);
    t->unk = get_id(g, "tokenizer.ggml.unknown_token_id", n);
    t->pad = get_id(g, "tokenizer.ggml.padding_token_id", n);
    t->sep = get_id(g, "tokenizer.ggml.seperator_token_id", n);
    if (t->sep < 0) t->sep = get_id(g, "tokenizer.ggml.separator_token_id", n);
    t->cls = get_id(g, "tokenizer.ggml.cls_token_id", n);
    t->mask = get_id(g, "tokenizer.ggml.mask_token_id", n);
    t->eot = get_id(g, "tokenizer.ggml.eot_token_id", n);
    int add_bos, add_eos;
    if (bert) {
        t->family = SH_TOK_WORDPIECE;
        snprintf(t->pre_name, sizeof t->pre_name, "bert");
        sh_norm_op op;
        memset(&op, 0, sizeof op);
        op.kind = SH_NORM_BERT;
        op.clean_text = op.chinese = op.lowercase = 1;
        op.strip_accents = -1;
        SH_TRY(add_norm(t, op));
        sh_pre_op p;
        memset(&p, 0, sizeof p);
        p.kind = SH_PRE_BERT;
        SH_TRY(add_pre(t, p));
        t->dec_wordpiece = t->dec_cleanup = 1;
        if (t->unk < 0) t->unk = sh_tok_lookup(t, "[UNK]", 5);
        if (t->unk < 0) return sh_fail(SHOAL_ERR_FORMAT, "bert tokenizer without an unknown token");
        if (t->bos < 0) t->bos = t->cls;
        if (t->eos < 0) t->eos = t->sep;
        add_bos = (int)get_int(g, "tokenizer.ggml.add_bos_token", 1);
        add_eos = (int)get_int(g, "tokenizer.ggml.add_eos_token", 1);
        if (add_bos && t->cls >= 0) t->prefix[t->n_prefix++] = t->cls;
        if (add_eos && t->sep >= 0) t->suffix[t->n_suffix++] = t->sep;
    } else if (llama) {
        t->family = SH_TOK_BPE_SPM;
        snprintf(t->pre_name, sizeof t->pre_name, "spm");
        SH_TRY(load_scores(t, g));
        t->merge_by_score = 1;
        t->byte_fallback = 1;
        t->fuse_unk = 1;
        int prefix = (int)get_int(g, "tokenizer.ggml.add_space_prefix", 1);
        sh_norm_op op;
        memset(&op, 0, sizeof op);
        if (prefix) {
            op.kind = SH_NORM_PREPEND;
            memcpy(op.s, META, 4);
            op.slen = 3;
            SH_TRY(add_norm(t, op));
        }
        op.kind = SH_NORM_REPLACE;
        memcpy(op.s, " ", 2);
        op.slen = 1;
        memcpy(op.r, META, 4);
        op.rlen = 3;
        SH_TRY(add_norm(t, op));
        t->dec_metaspace = t->dec_bytefallback = 1;
        t->dec_strip_space = prefix;
        add_bos = (int)get_int(g, "tokenizer.ggml.add_bos_token", 1);
        add_eos = (int)get_int(g, "tokenizer.ggml.add_eos_token", 0);
        if (add_bos && t->bos >= 0) t->prefix[t->n_prefix++] = t->bos;
        if (add_eos && t->eos >= 0) t->suffix[t->n_suffix++] = t->eos;
    } else {
        t->family = SH_TOK_BPE_BYTE;
        t->byte_level = 1;
        t->dec_bytelevel = 1;
        const pre_map *pm = NULL;
        for (size_t i = 0; i < sizeof known_pre / sizeof known_pre[0]; i++)
            if (!strcmp(known_pre[i].name, pre)) pm = &known_pre[i];
        if (!pm)
            return sh_fail(SHOAL_ERR_UNSUPPORTED, "tokenizer.ggml.pre \"%s\" is not supported (gpt2, llama-bpe, "
                                                  "qwen2, smollm, starcoder, ...)", pre);
        snprintf(t->pre_name, sizeof t->pre_name, "%s",
                 pm->digits ? "smollm" : pm->re == SH_RE_GPT2 ? "gpt2" : pm->re == SH_RE_LLAMA3 ? "llama3" : "qwen2");
        sh_pre_op p;
        memset(&p, 0, sizeof p);
        if (pm->digits) {
            p.kind = SH_PRE_DIGITS;
            p.individual = 1;
            SH_TRY(add_pre(t, p));
        }
        p.kind = SH_PRE_REGEX;
        p.re = pm->re;
        SH_TRY(add_pre(t, p));
        t->ignore_merges = pm->ignore_merges;
        SH_TRY(load_merges(t, g));
        add_bos = (int)get_int(g, "tokenizer.ggml.add_bos_token", 0);
        add_eos = (int)get_int(g, "tokenizer.ggml.add_eos_token", 0);
        if (add_bos && t->bos >= 0) t->prefix[t->n_prefix++] = t->bos;
        if (add_eos && t->eos >= 0) t->suffix[t->n_suffix++] = t->eos;
    }
    const char *tmpl;
    uint64_t tl;
    if (sh_gguf_find_key(g, "tokenizer.chat_template") >= 0 &&
        sh_gguf_get_str(g, "tokenizer.chat_template", &tmpl, &tl) == SHOAL_OK) {
        t->chat_template = malloc((size_t)tl + 1);
        if (!t->chat_template) return sh_fail(SHOAL_ERR_NOMEM, "tokenizer: out of memory");
        memcpy(t->chat_template, tmpl, (size_t)tl);
        t->chat_template[tl] = 0;
    }
    return sh_tok_finish(t);
}

shoal_status sh_tokenizer_load_gguf(const sh_gguf *g, sh_tokenizer **out) {
    if (!out) return sh_fail(SHOAL_ERR_INVALID_ARG, "tokenizer: out is NULL");
    *out = NULL;
    if (!g) return sh_fail(SHOAL_ERR_INVALID_ARG, "tokenizer: gguf is NULL");
    sh_tokenizer *t;
    SH_TRY(sh_tok_new(&t));
    shoal_status st = load_gguf(t, g);
    if (st != SHOAL_OK) {
        sh_tokenizer_free(t);
        return sh_fail_prefix(st, "gguf tokenizer");
    }
    *out = t;
    return SHOAL_OK;
}

shoal_status sh_tokenizer_load(const char *path, sh_tokenizer **out) {
    if (!out) return sh_fail(SHOAL_ERR_INVALID_ARG, "tokenizer: out is NULL");
    *out = NULL;
    if (!path) return sh_fail(SHOAL_ERR_INVALID_ARG, "tokenizer: path is NULL");
    struct stat sb;
    if (stat(path, &sb) != 0) return sh_fail(SHOAL_ERR_IO, "%s: no such file or folder", path);
    if (S_ISDIR(sb.st_mode)) {
        size_t n = strlen(path);
        char *p = malloc(n + sizeof "/tokenizer.json");
        if (!p) return sh_fail(SHOAL_ERR_NOMEM, "tokenizer: out of memory");
        memcpy(p, path, n);
        memcpy(p + n, "/tokenizer.json", sizeof "/tokenizer.json");
        shoal_status st = sh_tokenizer_load_json(p, out);
        free(p);
        return st;
    }
    size_t n = strlen(path);
    if (n >= 5 && !strcmp(path + n - 5, ".json")) return sh_tokenizer_load_json(path, out);
    sh_gguf *g;
    SH_TRY(sh_gguf_open(path, &g));
    shoal_status st = sh_tokenizer_load_gguf(g, out);
    sh_gguf_close(g);
    if (st != SHOAL_OK) sh_fail_prefix(st, "%s", path);
    return st;
}
