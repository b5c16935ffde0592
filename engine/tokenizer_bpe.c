/* BPE models: byte-level (GPT-2 family: one symbol per byte through the
 * GPT-2 byte<->character map, merges by rank) and SentencePiece-style (one
 * symbol per character, merges by rank or by the score of the merged piece,
 * <0xXX> byte fallback). The merge loop is a binary heap of candidate pairs
 * ordered by (priority, position): O(n log n) per piece. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_impl.h"

/* ==== GPT-2 byte <-> character map ========================================= */

/* Printable bytes ('!'..'~', 0xA1..0xAC, 0xAE..0xFF) stand for themselves;
 * the other 68 bytes, in increasing order, become U+0100 .. U+0143. */
uint32_t sh_bytelevel_cp(unsigned b) {
    if (b <= 32) return 256 + b;
    if (b >= 127 && b <= 160) return 256 + 33 + (b - 127);
    if (b == 173) return 256 + 33 + 34;
    return b;
}

int sh_bytelevel_byte(uint32_t cp) {
    if ((cp >= 33 && cp <= 126) || (cp >= 161 && cp <= 172) || (cp >= 174 && cp <= 255)) return (int)cp;
    if (cp >= 256 && cp < 256 + 33) return (int)(cp - 256);
    if (cp >= 256 + 33 && cp < 256 + 33 + 34) return (int)(cp - 256 - 33 + 127);
    if (cp == 256 + 33 + 34) return 173;
    return -1;
}

/* ==== merge loop =========================================================== */

typedef struct bsym {
    int32_t id;          /* -1: not in the vocabulary (resolved at the end) */
    int32_t prev, next;  /* linked list of live symbols */
    uint32_t start, len; /* bytes of the piece; len 0 = merged away */
} bsym;

typedef struct bpair {
    double prio; /* rank, or -score; smaller first */
    int32_t pos, left, right, merged;
} bpair;

static int pair_less(const bpair *a, const bpair *b) {
    return a->prio < b->prio || (a->prio == b->prio && a->pos < b->pos);
}

typedef struct heap { bpair *v; int n, cap; } heap;

static void heap_push(heap *h, bpair x) {
    int i = h->n++;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!pair_less(&x, &h->v[p])) break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = x;
}

static bpair heap_pop(heap *h) {
    bpair top = h->v[0], x = h->v[--h->n];
    int i = 0;
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        const bpair *best = &x;
        if (l < h->n && pair_less(&h->v[l], best)) {
            m = l;
            best = &h->v[l];
        }
        if (r < h->n && pair_less(&h->v[r], best)) m = r;
        if (m == i) break;
        h->v[i] = h->v[m];
        i = m;
    }
    if (h->n > 0) h->v[i] = x;
    return top;
}

/* Looks up the merge of symbols a, b (adjacent). */
static int find_merge(const sh_tokenizer *t, const char *s, const bsym *a, const bsym *b, bpair *out) {
    if (t->merge_by_score) {
        int32_t id = sh_tok_lookup(t, s + a->start, (size_t)a->len + b->len);
        if (id < 0 || (t->attr[id] & SH_TA_ADDED)) return 0;
        out->prio = t->score ? -(double)t->score[id] : 0.0;
        out->merged = id;
        return 1;
    }
    if (a->id < 0 || b->id < 0) return 0;
    int32_t rank, merged;
    if (!sh_pairmap_get(&t->merges, a->id, b->id, &rank, &merged)) return 0;
    out->prio = rank;
    out->merged = merged;
    return 1;
}

static void try_pair(const sh_tokenizer *t, const char *s, bsym *sym, int32_t i, heap *h) {
    if (i < 0 || sym[i].next < 0) return;
    int32_t j = sym[i].next;
    bpair p;
    if (!find_merge(t, s, &sym[i], &sym[j], &p)) return;
    p.pos = i;
    p.left = sym[i].id;
    p.right = sym[j].id;
    heap_push(h, p);
}

static shoal_status grow(void **v, int *cap, int need, size_t elem) {
    if (need <= *cap) return SHOAL_OK;
    int c = *cap ? *cap : 64;
    while (c < need) {
        if (c > (1 << 28)) return sh_fail(SHOAL_ERR_RANGE, "tokenizer: piece too long");
        c *= 2;
    }
    void *n = realloc(*v, elem * (size_t)c);
    if (!n) return sh_fail(SHOAL_ERR_NOMEM, "tokenizer: out of memory");
    *v = n;
    *cap = c;
    return SHOAL_OK;
}

/* Short pieces: the same merges as the heap loop (lowest priority first,
 * leftmost on ties), found by scanning a per-symbol pair cache; cheaper than
 * a heap for the few symbols of a typical word. */
enum { SMALL_PIECE = 48 };

static void merge_small(const sh_tokenizer *t, const char *s, bsym *sym) {
    bpair pr[SMALL_PIECE]; /* pr[i]: the pair (i, sym[i].next); pos < 0: none */
    for (int32_t i = 0; i >= 0; i = sym[i].next) {
        pr[i].pos = -1;
        if (sym[i].next >= 0 && find_merge(t, s, &sym[i], &sym[sym[i].next], &pr[i])) pr[i].pos = i;
    }
    for (;;) {
        int32_t best = -1;
        for (int32_t i = 0; i >= 0; i = sym[i].next)
            if (pr[i].pos >= 0 && (best < 0 || pr[i].prio < pr[best].prio)) best = i;
        if (best < 0) return;
        bsym *a = &sym[best], *b = &sym[a->next];
        a->id = pr[best].merged;
        a->len += b->len;
        a->next = b->next;
        if (b->next >= 0) sym[b->next].prev = best;
        b->len = 0;
        int32_t around[2] = {a->prev, best};
        for (int k = 0; k < 2; k++) {
            int32_t i = around[k];
            if (i < 0) continue;
            pr[i].pos = -1;
            if (sym[i].next >= 0 && find_merge(t, s, &sym[i], &sym[sym[i].next], &pr[i])) pr[i].pos = i;
        }
    }
}

static shoal_status push_unknown(const sh_tokenizer *t, const char *s, const bsym *y, int *last_unk, sh_ids *out) {
    if (t->byte_fallback) {
        int ok = 1;
        for (uint32_t k = 0; k < y->len; k++)
            if (t->byte_tok[(unsigned char)s[y->start + k]] < 0) ok = 0;
        if (ok) {
            for (uint32_t k = 0; k < y->len; k++) SH_TRY(sh_ids_push(out, t->byte_tok[(unsigned char)s[y->start + k]]));
            *last_unk = 0;
            return SHOAL_OK;
        }
    }
    if (t->unk < 0) return SHOAL_OK; /* no unknown token: the character is dropped */
    if (t->fuse_unk && *last_unk) return SHOAL_OK;
    *last_unk = 1;
    return sh_ids_push(out, t->unk);
}

shoal_status sh_bpe_piece(const sh_tokenizer *t, const char *s, size_t n, sh_ids *out) {
    if (n == 0) return SHOAL_OK;
    if (n > (size_t)(1 << 27)) return sh_fail(SHOAL_ERR_RANGE, "tokenizer: piece of %zu bytes too long", n);
    /* a whole piece found in the vocabulary */
    if (t->ignore_merges) {
        int32_t id;
        if (t->byte_level) {
            out->word.n = 0;
            for (size_t i = 0; i < n; i++) SH_TRY(sh_buf_put_cp(&out->word, sh_bytelevel_cp((unsigned char)s[i])));
            id = sh_tok_lookup(t, out->word.p, out->word.n);
        } else {
            id = sh_tok_lookup(t, s, n);
        }
        if (id >= 0) return sh_ids_push(out, id);
    }
    SH_TRY(grow(&out->sym, &out->cap_sym, (int)n, sizeof(bsym)));
    bsym *sym = out->sym;
    int ns = 0;
    if (t->byte_level) {
        for (size_t i = 0; i < n; i++) {
            sym[ns] = (bsym){t->byte_sym[(unsigned char)s[i]], ns - 1, ns + 1, (uint32_t)i, 1};
            ns++;
        }
    } else {
        size_t i = 0;
        while (i < n) {
            uint32_t cp;
            int r = sh_utf8_next((const unsigned char *)s + i, n - i, &cp);
            if (r <= 0) r = 1;
            int32_t id = sh_tok_lookup(t, s + i, (size_t)r);
            sym[ns] = (bsym){id, ns - 1, ns + 1, (uint32_t)i, (uint32_t)r};
            ns++;
            i += (size_t)r;
        }
    }
    sym[ns - 1].next = -1;
    if (ns > 1 && ns <= SMALL_PIECE) {
        merge_small(t, s, sym);
    } else if (ns > 1) {
        SH_TRY(grow(&out->heap, &out->cap_heap, 3 * ns + 4, sizeof(bpair)));
        heap h = {out->heap, 0, out->cap_heap};
        for (int i = 0; i + 1 < ns; i++) try_pair(t, s, sym, i, &h);
        while (h.n > 0) {
            bpair p = heap_pop(&h);
            bsym *a = &sym[p.pos];
            if (a->len == 0 || a->id != p.left || a->next < 0) continue;
            bsym *b = &sym[a->next];
            if (b->id != p.right) continue;
            if (t->merge_by_score && p.left < 0) {
                /* ids -1 compare equal: confirm the span is unchanged */
                int32_t id = sh_tok_lookup(t, s + a->start, (size_t)a->len + b->len);
                if (id != p.merged) continue;
            }
            a->id = p.merged;
            a->len += b->len;
            a->next = b->next;
            if (b->next >= 0) sym[b->next].prev = p.pos;
            b->len = 0;
            /* heap room: each merge adds at most 2 pairs and removed 1 */
            if (h.n + 2 > h.cap) {
                out->heap = h.v;
                SH_TRY(grow(&out->heap, &out->cap_heap, h.n + 2, sizeof(bpair)));
                h.v = out->heap;
                h.cap = out->cap_heap;
            }
            try_pair(t, s, sym, a->prev, &h);
            try_pair(t, s, sym, p.pos, &h);
        }
        out->heap = h.v;
    }
    int last_unk = 0;
    for (int i = 0; i >= 0; i = sym[i].next) {
        const bsym *y = &sym[i];
        if (y->id >= 0) {
            SH_TRY(sh_ids_push(out, y->id));
            last_unk = 0;
        } else {
            SH_TRY(push_unknown(t, s, y, &last_unk, out));
        }
    }
    return SHOAL_OK;
}
