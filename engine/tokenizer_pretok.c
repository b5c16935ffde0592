/* Pre-tokenizers: split a normalised segment into pieces the model encodes
 * one by one. The regex pre-tokenizers of GPT-2, Llama-3 and Qwen2 are
 * written out by hand as ordered alternatives over Unicode categories; each
 * matcher returns the length of the match at a position the way a
 * backtracking regex engine would (first alternative that matches wins). */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_impl.h"

/* ==== character classes ==================================================== */

static inline unsigned cls(uint32_t c) {
    if (c < 0x80) {
        if ((c | 32) >= 'a' && (c | 32) <= 'z') return SH_UF_L;
        if (c >= '0' && c <= '9') return SH_UF_N;
        if (c == ' ' || (c >= 9 && c <= 13)) return SH_UF_WS;
        return c < 0x20 || c == 0x7F ? SH_UF_C : SH_UF_P;
    }
    return sh_uc_flags(c);
}

#define IS_L(c) ((cls(c) & SH_UF_L) != 0)
#define IS_N(c) ((cls(c) & SH_UF_N) != 0)
#define IS_WS(c) ((cls(c) & SH_UF_WS) != 0)
/* [^\s\p{L}\p{N}] */
#define IS_OTHER(c) ((cls(c) & (SH_UF_L | SH_UF_N | SH_UF_WS)) == 0)
#define IS_NL(c) ((c) == '\r' || (c) == '\n')

static int lower_ascii_eq(uint32_t c, char want) {
    if (want == 's' && c == 0x17F) return 1; /* LATIN SMALL LETTER LONG S folds to s */
    return c < 0x80 && (char)(c | 32) == want && ((c | 32) >= 'a' && (c | 32) <= 'z');
}

/* 's|'t|'re|'ve|'m|'ll|'d, case-insensitively when ci. Returns 0, 2 or 3. */
static int contraction(const uint32_t *cp, int i, int n, int ci) {
    if (cp[i] != '\'' || i + 1 >= n) return 0;
    uint32_t a = cp[i + 1];
    if (!ci) {
        if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
        if (i + 2 < n) {
            uint32_t b = cp[i + 2];
            if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
        }
        return 0;
    }
    if (lower_ascii_eq(a, 's') || lower_ascii_eq(a, 't') || lower_ascii_eq(a, 'm') || lower_ascii_eq(a, 'd'))
        return 2;
    if (i + 2 < n) {
        uint32_t b = cp[i + 2];
        if ((lower_ascii_eq(a, 'r') && lower_ascii_eq(b, 'e')) || (lower_ascii_eq(a, 'v') && lower_ascii_eq(b, 'e')) ||
            (lower_ascii_eq(a, 'l') && lower_ascii_eq(b, 'l')))
            return 3;
    }
    return 0;
}

/* \s+(?!\S) then \s+ at i (cp[i] is whitespace) */
static int ws_tail(const uint32_t *cp, int i, int n) {
    int k = i;
    while (k < n && IS_WS(cp[k])) k++;
    int m = k - i;
    if (k == n) return m;
    return m >= 2 ? m - 1 : 1;
}

/* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static int match_gpt2(const uint32_t *cp, int i, int n) {
    int k = contraction(cp, i, n, 0);
    if (k) return k;
    int j = (cp[i] == ' ' && i + 1 < n) ? i + 1 : i;
    uint32_t c = cp[j];
    if (IS_L(c)) {
        k = j;
        while (k < n && IS_L(cp[k])) k++;
        return k - i;
    }
    if (IS_N(c)) {
        k = j;
        while (k < n && IS_N(cp[k])) k++;
        return k - i;
    }
    if (IS_OTHER(c)) {
        k = j;
        while (k < n && IS_OTHER(cp[k])) k++;
        return k - i;
    }
    if (IS_WS(cp[i])) return ws_tail(cp, i, n);
    return 1;
}

/* (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max_digits}
 * | ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
static int match_llama3(const uint32_t *cp, int i, int n, int max_digits) {
    int k = contraction(cp, i, n, 1);
    if (k) return k;
    uint32_t c = cp[i];
    /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    if (!IS_NL(c) && !IS_L(c) && !IS_N(c) && i + 1 < n && IS_L(cp[i + 1])) {
        k = i + 1;
        while (k < n && IS_L(cp[k])) k++;
        return k - i;
    }
    if (IS_L(c)) {
        k = i;
        while (k < n && IS_L(cp[k])) k++;
        return k - i;
    }
    /* \p{N}{1,3} */
    if (IS_N(c)) {
        k = i;
        while (k < n && k - i < max_digits && IS_N(cp[k])) k++;
        return k - i;
    }
    /*  ?[^\s\p{L}\p{N}]+[\r\n]* */
    int j = (c == ' ' && i + 1 < n) ? i + 1 : i;
    if (IS_OTHER(cp[j])) {
        k = j;
        while (k < n && IS_OTHER(cp[k])) k++;
        while (k < n && IS_NL(cp[k])) k++;
        return k - i;
    }
    if (IS_WS(c)) {
        /* \s*[\r\n]+ : up to and including the last newline of the run */
        k = i;
        int last_nl = -1;
        while (k < n && IS_WS(cp[k])) {
            if (IS_NL(cp[k])) last_nl = k;
            k++;
        }
        if (last_nl >= 0) return last_nl + 1 - i;
        return ws_tail(cp, i, n);
    }
    return 1;
}

int sh_regex_from_pattern(const char *p, sh_regex_kind *k) {
    static const char gpt2[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
    static const char llama3[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                                 "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    static const char qwen2[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
                                "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    if (strcmp(p, gpt2) == 0) *k = SH_RE_GPT2;
    else if (strcmp(p, llama3) == 0) *k = SH_RE_LLAMA3;
    else if (strcmp(p, qwen2) == 0) *k = SH_RE_QWEN2;
    else return -1;
    return 0;
}

/* ==== piece lists ========================================================== */

void sh_pieces_free(sh_pieces *p) {
    sh_buf_free(&p->text);
    free(p->cp);
    free(p->boff);
    free(p->pc);
    free(p->tmp);
    memset(p, 0, sizeof *p);
}

static shoal_status grow32(int32_t **v, int *cap, int need) {
    if (need <= *cap) return SHOAL_OK;
    int c = *cap ? *cap : 64;
    while (c < need) {
        if (c > (1 << 29)) return sh_fail(SHOAL_ERR_RANGE, "tokenizer: too many pieces");
        c *= 2;
    }
    int32_t *n = realloc(*v, sizeof(int32_t) * (size_t)c);
    if (!n) return sh_fail(SHOAL_ERR_NOMEM, "tokenizer: out of memory");
    *v = n;
    *cap = c;
    return SHOAL_OK;
}

/* Decodes p->text into cp/boff. */
static shoal_status decode_text(sh_pieces *p) {
    size_t n = p->text.n;
    if (n + 1 > (size_t)p->cap_ch) {
        size_t c = n + 1 + n / 2;
        if (c > (size_t)INT32_MAX) return sh_fail(SHOAL_ERR_RANGE, "tokenizer: segment too long");
        uint32_t *a = realloc(p->cp, sizeof(uint32_t) * c);
        if (!a) return sh_fail(SHOAL_ERR_NOMEM, "tokenizer: out of memory");
        p->cp = a;
        uint32_t *b = realloc(p->boff, sizeof(uint32_t) * c);
        if (!b) return sh_fail(SHOAL_ERR_NOMEM, "tokenizer: out of memory");
        p->boff = b;
        p->cap_ch = (int)c;
    }
    const unsigned char *u = (const unsigned char *)p->text.p;
    int k = 0;
    size_t i = 0;
    while (i < n) {
        uint32_t c;
        int r;
        if (u[i] < 0x80) {
            c = u[i];
            r = 1;
        } else {
            r = sh_utf8_next(u + i, n - i, &c);
            if (r <= 0) { /* cannot happen on validated text; stay total */
                c = 0xFFFD;
                r = 1;
            }
        }
        p->cp[k] = c;
        p->boff[k] = (uint32_t)i;
        k++;
        i += (size_t)r;
    }
    p->boff[k] = (uint32_t)n;
    p->nch = k;
    return SHOAL_OK;
}

/* Output piece list is built in p->tmp then swapped in. */
typedef struct split_out { sh_pieces *p; int n; } split_out;

static shoal_status emit(split_out *o, int a, int b) {
    if (b <= a) return SHOAL_OK;
    SH_TRY(grow32(&o->p->tmp, &o->p->cap_tmp, 2 * (o->n + 1)));
    o->p->tmp[2 * o->n] = a;
    o->p->tmp[2 * o->n + 1] = b;
    o->n++;
    return SHOAL_OK;
}

static void commit(split_out *o) {
    sh_pieces *p = o->p;
    int32_t *t = p->pc;
    int c = p->cap_pieces;
    p->pc = p->tmp;
    p->cap_pieces = p->cap_tmp;
    p->tmp = t;
    p->cap_tmp = c;
    p->npieces = o->n;
}

static shoal_status split_regex(sh_pieces *p, sh_regex_kind re) {
    split_out o = {p, 0};
    for (int k = 0; k < p->npieces; k++) {
        int a = p->pc[2 * k], b = p->pc[2 * k + 1];
        const uint32_t *cp = p->cp + a;
        int n = b - a, i = 0;
        while (i < n) {
            int m = re == SH_RE_GPT2 ? match_gpt2(cp, i, n) : match_llama3(cp, i, n, re == SH_RE_LLAMA3 ? 3 : 1);
            SH_TRY(emit(&o, a + i, a + i + m));
            i += m;
        }
    }
    commit(&o);
    return SHOAL_OK;
}

static shoal_status split_digits(sh_pieces *p, int individual) {
    split_out o = {p, 0};
    for (int k = 0; k < p->npieces; k++) {
        int a = p->pc[2 * k], b = p->pc[2 * k + 1], s = a;
        for (int i = a; i < b; i++) {
            int dig = IS_N(p->cp[i]);
            int prev_dig = i > s && IS_N(p->cp[i - 1]);
            if (i > s && (dig != prev_dig || (dig && individual))) {
                SH_TRY(emit(&o, s, i));
                s = i;
            }
        }
        SH_TRY(emit(&o, s, b));
    }
    commit(&o);
    return SHOAL_OK;
}

static int is_bert_punct(uint32_t c) { return (sh_uc_flags(c) & SH_UF_HF_PUNCT) != 0; }

/* whitespace removed; with punct, punctuation isolated */
static shoal_status split_ws(sh_pieces *p, int punct) {
    split_out o = {p, 0};
    for (int k = 0; k < p->npieces; k++) {
        int a = p->pc[2 * k], b = p->pc[2 * k + 1], s = a;
        for (int i = a; i < b; i++) {
            uint32_t c = p->cp[i];
            if (IS_WS(c)) {
                SH_TRY(emit(&o, s, i));
                s = i + 1;
            } else if (punct && is_bert_punct(c)) {
                SH_TRY(emit(&o, s, i));
                SH_TRY(emit(&o, i, i + 1));
                s = i + 1;
            }
        }
        SH_TRY(emit(&o, s, b));
    }
    commit(&o);
    return SHOAL_OK;
}

/* Rewrites the text piece by piece: an optional prefix code point per piece
 * (when the piece does not start with it already) and ' ' -> space_to. */
static shoal_status rewrite(sh_pieces *p, uint32_t prefix, int prefix_first_only, int first, uint32_t space_to) {
    sh_buf nt = {0};
    split_out o = {p, 0};
    shoal_status st = SHOAL_OK;
    int nch = 0;
    for (int k = 0; k < p->npieces && st == SHOAL_OK; k++) {
        int a = p->pc[2 * k], b = p->pc[2 * k + 1];
        int start = nch;
        uint32_t c0 = p->cp[a] == ' ' && space_to ? space_to : p->cp[a];
        int want = prefix && c0 != prefix && (!prefix_first_only || (first && k == 0 && a == 0));
        if (want) {
            st = sh_buf_put_cp(&nt, prefix);
            nch++;
        }
        for (int i = a; i < b && st == SHOAL_OK; i++) {
            uint32_t c = p->cp[i];
            if (c == ' ' && space_to) {
                st = sh_buf_put_cp(&nt, space_to);
            } else {
                st = sh_buf_put(&nt, p->text.p + p->boff[i], p->boff[i + 1] - p->boff[i]);
            }
            nch++;
        }
        if (st == SHOAL_OK) st = emit(&o, start, nch);
    }
    if (st == SHOAL_OK) {
        commit(&o);
        sh_buf_free(&p->text);
        p->text = nt;
        if (!p->text.p) st = sh_buf_put(&p->text, "", 0);
        if (st == SHOAL_OK) st = decode_text(p);
    } else {
        sh_buf_free(&nt);
    }
    return st;
}

/* MergedWithNext on c: each c starts a new piece. */
static shoal_status split_before(sh_pieces *p, uint32_t c) {
    split_out o = {p, 0};
    for (int k = 0; k < p->npieces; k++) {
        int a = p->pc[2 * k], b = p->pc[2 * k + 1], s = a;
        for (int i = a + 1; i < b; i++)
            if (p->cp[i] == c) {
                SH_TRY(emit(&o, s, i));
                s = i;
            }
        SH_TRY(emit(&o, s, b));
    }
    commit(&o);
    return SHOAL_OK;
}

shoal_status sh_pretokenize(const sh_tokenizer *t, const char *text, size_t n, int first, sh_pieces *p) {
    p->text.n = 0;
    SH_TRY(sh_buf_put(&p->text, text, n));
    SH_TRY(decode_text(p));
    SH_TRY(grow32(&p->pc, &p->cap_pieces, 2));
    p->pc[0] = 0;
    p->pc[1] = p->nch;
    p->npieces = p->nch > 0;
    for (int k = 0; k < t->n_pre && p->npieces; k++) {
        const sh_pre_op *op = &t->pre[k];
        switch (op->kind) {
        case SH_PRE_BYTELEVEL:
            if (op->add_prefix_space) SH_TRY(rewrite(p, ' ', 0, first, 0));
            if (op->use_regex) SH_TRY(split_regex(p, SH_RE_GPT2));
            break;
        case SH_PRE_REGEX: SH_TRY(split_regex(p, op->re)); break;
        case SH_PRE_DIGITS: SH_TRY(split_digits(p, op->individual)); break;
        case SH_PRE_BERT: SH_TRY(split_ws(p, 1)); break;
        case SH_PRE_WSSPLIT: SH_TRY(split_ws(p, 0)); break;
        case SH_PRE_METASPACE:
            SH_TRY(rewrite(p, op->prepend ? op->replacement : 0, op->prepend == 2, first, op->replacement));
            if (op->split) SH_TRY(split_before(p, op->replacement));
            break;
        }
    }
    return SHOAL_OK;
}
