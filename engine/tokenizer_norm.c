/* Normalisers: BERT (clean text, CJK padding, accent stripping, lower case),
 * NFD, NFC, lower case, strip accents, prepend, replace. All work on valid
 * UTF-8 (the encoder replaced invalid input first). */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_impl.h"

/* ==== Unicode lookups ====================================================== */

static const sh_uc_map *map_find(const sh_uc_map *m, int n, uint32_t cp) {
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (m[mid].cp == cp) return &m[mid];
        if (m[mid].cp < cp) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

int sh_uc_tolower(uint32_t cp, uint32_t out[3]) {
    if (cp < 0x80) {
        out[0] = (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
        return 1;
    }
    if (sh_uc_flags(cp) & SH_UF_LOWER) {
        const sh_uc_map *m = map_find(sh_uc_lower, sh_uc_lower_n, cp);
        if (m && m->n <= 3) {
            for (uint32_t i = 0; i < m->n; i++) out[i] = sh_uc_lower_data[m->off + i];
            return (int)m->n;
        }
    }
    out[0] = cp;
    return 1;
}

enum { SBASE = 0xAC00, LBASE = 0x1100, VBASE = 0x1161, TBASE = 0x11A7, LCOUNT = 19, VCOUNT = 21, TCOUNT = 28,
       NCOUNT = VCOUNT * TCOUNT, SCOUNT = LCOUNT * NCOUNT };

int sh_uc_decompose(uint32_t cp, uint32_t out[18]) {
    if (cp >= SBASE && cp < SBASE + SCOUNT) {
        uint32_t s = cp - SBASE;
        out[0] = LBASE + s / NCOUNT;
        out[1] = VBASE + (s % NCOUNT) / TCOUNT;
        if (s % TCOUNT) {
            out[2] = TBASE + s % TCOUNT;
            return 3;
        }
        return 2;
    }
    if (cp >= 0xC0 && (sh_uc_flags(cp) & SH_UF_DECOMP)) {
        const sh_uc_map *m = map_find(sh_uc_decomp, sh_uc_decomp_n, cp);
        if (m && m->n <= 18) {
            for (uint32_t i = 0; i < m->n; i++) out[i] = sh_uc_decomp_data[m->off + i];
            return (int)m->n;
        }
    }
    out[0] = cp;
    return 1;
}

uint32_t sh_uc_compose(uint32_t a, uint32_t b) {
    if (a >= LBASE && a < LBASE + LCOUNT && b >= VBASE && b < VBASE + VCOUNT)
        return SBASE + ((a - LBASE) * VCOUNT + (b - VBASE)) * TCOUNT;
    if (a >= SBASE && a < SBASE + SCOUNT && (a - SBASE) % TCOUNT == 0 && b > TBASE && b < TBASE + TCOUNT)
        return a + (b - TBASE);
    int lo = 0, hi = sh_uc_comps_n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        const sh_uc_comp *c = &sh_uc_comps[mid];
        if (c->a == a && c->b == b) return c->c;
        if (c->a < a || (c->a == a && c->b < b)) lo = mid + 1;
        else hi = mid - 1;
    }
    return 0;
}

/* ==== code point vectors =================================================== */

typedef struct cpvec { uint32_t *v; size_t n, cap; } cpvec;

static shoal_status cp_push(cpvec *c, uint32_t cp) {
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        uint32_t *v = realloc(c->v, cap * sizeof *v);
        if (!v) return sh_fail(SHOAL_ERR_NOMEM, "tokenizer: out of memory");
        c->v = v;
        c->cap = cap;
    }
    c->v[c->n++] = cp;
    return SHOAL_OK;
}

static void cp_decode(const char *s, size_t n, cpvec *c, shoal_status *st) {
    c->n = 0;
    size_t i = 0;
    while (i < n && *st == SHOAL_OK) {
        uint32_t cp;
        int r = sh_utf8_next((const unsigned char *)s + i, n - i, &cp);
        if (r <= 0) {
            cp = 0xFFFD;
            r = 1;
        }
        *st = cp_push(c, cp);
        i += (size_t)r;
    }
}

static shoal_status cp_encode(const cpvec *c, sh_buf *out) {
    out->n = 0;
    SH_TRY(sh_buf_reserve(out, c->n * 4));
    for (size_t i = 0; i < c->n; i++) out->n += (size_t)sh_utf8_put(c->v[i], out->p + out->n);
    out->p[out->n] = 0;
    return SHOAL_OK;
}

/* NFD: full canonical decomposition, then canonical ordering of marks. */
static shoal_status nfd(const cpvec *in, cpvec *out) {
    out->n = 0;
    for (size_t i = 0; i < in->n; i++) {
        uint32_t d[18];
        int k = sh_uc_decompose(in->v[i], d);
        for (int j = 0; j < k; j++) SH_TRY(cp_push(out, d[j]));
    }
    /* stable insertion sort of each run of non-starters by combining class */
    for (size_t i = 1; i < out->n; i++) {
        int cc = sh_uc_ccc(out->v[i]);
        if (cc == 0) continue;
        size_t j = i;
        uint32_t c = out->v[i];
        while (j > 0) {
            int pc = sh_uc_ccc(out->v[j - 1]);
            if (pc == 0 || pc <= cc) break;
            out->v[j] = out->v[j - 1];
            j--;
        }
        out->v[j] = c;
    }
    return SHOAL_OK;
}

/* Canonical composition in place (input in NFD). */
static void compose(cpvec *c) {
    if (c->n == 0) return;
    size_t o = 0;
    long starter = -1;
    int last_cc = -1;
    for (size_t i = 0; i < c->n; i++) {
        uint32_t ch = c->v[i];
        int cc = sh_uc_ccc(ch);
        if (starter >= 0) {
            int adjacent = (size_t)starter == o - 1;
            int blocked = !adjacent && (last_cc == 0 || last_cc >= cc);
            if (!blocked && (sh_uc_flags(ch) & SH_UF_COMP2)) {
                uint32_t comp = sh_uc_compose(c->v[starter], ch);
                if (comp) {
                    c->v[starter] = comp;
                    continue;
                }
            }
        }
        if (cc == 0) starter = (long)o;
        c->v[o++] = ch;
        last_cc = cc;
    }
    c->n = o;
}

/* ==== BERT ================================================================= */

static int is_cjk(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static shoal_status bert_clean(const sh_norm_op *op, const cpvec *in, cpvec *out) {
    out->n = 0;
    for (size_t i = 0; i < in->n; i++) {
        uint32_t c = in->v[i];
        if (op->clean_text) {
            /* control characters (category C but \t \n \r) go first, then
             * whitespace becomes ' ' */
            unsigned f = sh_uc_flags(c);
            int keep_ctl = c == '\t' || c == '\n' || c == '\r';
            if (c == 0 || c == 0xFFFD || (!keep_ctl && (f & SH_UF_HF_CTL))) continue;
            if (keep_ctl || (f & SH_UF_WS)) c = ' ';
        }
        if (op->chinese && is_cjk(c)) {
            SH_TRY(cp_push(out, ' '));
            SH_TRY(cp_push(out, c));
            SH_TRY(cp_push(out, ' '));
            continue;
        }
        SH_TRY(cp_push(out, c));
    }
    return SHOAL_OK;
}

/* Drops marks: flag SH_UF_HF_BERT_MN (BertNormalizer) or SH_UF_HF_MARK
 * (StripAccents). */
static void drop_marks(cpvec *c, unsigned flag) {
    size_t o = 0;
    for (size_t i = 0; i < c->n; i++)
        if (!(sh_uc_flags(c->v[i]) & flag)) c->v[o++] = c->v[i];
    c->n = o;
}

static shoal_status lower(const cpvec *in, cpvec *out) {
    out->n = 0;
    for (size_t i = 0; i < in->n; i++) {
        uint32_t l[3];
        int k = sh_uc_tolower(in->v[i], l);
        for (int j = 0; j < k; j++) SH_TRY(cp_push(out, l[j]));
    }
    return SHOAL_OK;
}

/* ==== the op list ========================================================== */

static void swap(cpvec *a, cpvec *b) {
    cpvec t = *a;
    *a = *b;
    *b = t;
}

static shoal_status replace_bytes(const char *s, size_t n, const char *from, size_t fl, const char *to, size_t tl,
                                  sh_buf *out) {
    out->n = 0;
    SH_TRY(sh_buf_reserve(out, n));
    size_t i = 0;
    while (i < n) {
        if (fl && i + fl <= n && memcmp(s + i, from, fl) == 0) {
            SH_TRY(sh_buf_put(out, to, tl));
            i += fl;
        } else {
            SH_TRY(sh_buf_put(out, s + i, 1));
            i++;
        }
    }
    if (!out->p) SH_TRY(sh_buf_reserve(out, 1));
    out->p[out->n] = 0;
    return SHOAL_OK;
}

shoal_status sh_normalize(const sh_tokenizer *t, const char *s, size_t n, sh_buf *out) {
    shoal_status st = SHOAL_OK;
    cpvec a = {0}, b = {0};
    sh_buf cur = {0}, nxt = {0};
    if ((st = sh_buf_put(&cur, s, n)) != SHOAL_OK) goto done;
    for (int k = 0; k < t->n_norm && st == SHOAL_OK; k++) {
        const sh_norm_op *op = &t->norm[k];
        switch (op->kind) {
        case SH_NORM_PREPEND:
            if (cur.n) {
                nxt.n = 0;
                if ((st = sh_buf_put(&nxt, op->s, (size_t)op->slen)) == SHOAL_OK)
                    st = sh_buf_put(&nxt, cur.p, cur.n);
            } else {
                st = sh_buf_put(&nxt, "", 0);
                nxt.n = 0;
            }
            break;
        case SH_NORM_REPLACE:
            st = replace_bytes(cur.p, cur.n, op->s, (size_t)op->slen, op->r, (size_t)op->rlen, &nxt);
            break;
        default:
            if (op->kind == SH_NORM_NFC || op->kind == SH_NORM_NFD || op->kind == SH_NORM_STRIP_ACCENTS) {
                /* identity on ASCII text */
                size_t i = 0;
                while (i < cur.n && (unsigned char)cur.p[i] < 0x80) i++;
                if (i == cur.n) continue;
            }
            cp_decode(cur.p, cur.n, &a, &st);
            if (st != SHOAL_OK) break;
            if (op->kind == SH_NORM_BERT) {
                int strip = op->strip_accents > 0 || (op->strip_accents < 0 && op->lowercase);
                if ((st = bert_clean(op, &a, &b)) != SHOAL_OK) break;
                swap(&a, &b);
                if (strip) {
                    if ((st = nfd(&a, &b)) != SHOAL_OK) break;
                    swap(&a, &b);
                    drop_marks(&a, SH_UF_HF_BERT_MN);
                }
                if (op->lowercase) {
                    if ((st = lower(&a, &b)) != SHOAL_OK) break;
                    swap(&a, &b);
                }
            } else if (op->kind == SH_NORM_LOWER) {
                if ((st = lower(&a, &b)) != SHOAL_OK) break;
                swap(&a, &b);
            } else if (op->kind == SH_NORM_STRIP_ACCENTS) {
                drop_marks(&a, SH_UF_HF_MARK);
            } else if (op->kind == SH_NORM_NFD || op->kind == SH_NORM_NFC) {
                if ((st = nfd(&a, &b)) != SHOAL_OK) break;
                swap(&a, &b);
                if (op->kind == SH_NORM_NFC) compose(&a);
            }
            st = cp_encode(&a, &nxt);
            break;
        }
        sh_buf tmp = cur;
        cur = nxt;
        nxt = tmp;
    }
    if (st == SHOAL_OK) {
        out->n = 0;
        st = sh_buf_put(out, cur.p, cur.n);
    }
done:
    free(a.v);
    free(b.v);
    sh_buf_free(&cur);
    sh_buf_free(&nxt);
    return st;
}
