/* Tokenizer core: UTF-8 and buffers, hash maps, vocabulary construction,
 * the encode pipeline (added tokens -> normaliser -> pre-tokenizer -> model
 * -> post-processing), decoding and streaming detokenisation. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_impl.h"

/* ==== UTF-8 ================================================================ */

int sh_utf8_next(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int need;
    uint32_t v;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        v = c & 0x0F;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        v = c & 0x07;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return -1;
    }
    size_t i = 1;
    for (int k = 0; k < need; k++, i++) {
        if (i >= n) return 0;
        unsigned b = s[i];
        if (b < lo || b > hi) return -(int)i;
        lo = 0x80;
        hi = 0xBF;
        v = (v << 6) | (b & 0x3F);
    }
    *cp = v;
    return (int)i;
}

int sh_utf8_put(uint32_t cp, char *o) {
    unsigned char *u = (unsigned char *)o;
    if (cp < 0x80) {
        u[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        u[0] = (unsigned char)(0xC0 | (cp >> 6));
        u[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        u[0] = (unsigned char)(0xE0 | (cp >> 12));
        u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    u[0] = (unsigned char)(0xF0 | (cp >> 18));
    u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    u[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

static int utf8_valid(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        int r = sh_utf8_next(u + i, n - i, &cp);
        if (r <= 0) return 0;
        i += (size_t)r;
    }
    return 1;
}

/* ==== buffers ============================================================== */

shoal_status sh_buf_reserve(sh_buf *b, size_t extra) {
    if (b->cap - b->n > extra) return SHOAL_OK;
    size_t want = b->n + extra + 1;
    if (want < b->n) return sh_fail(SHOAL_ERR_NOMEM, "tokenizer: buffer size overflow");
    size_t cap = b->cap ? b->cap : 64;
    while (cap < want) {
        if (cap > SIZE_MAX / 2) return sh_fail(SHOAL_ERR_NOMEM, "tokenizer: buffer size overflow");
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p) return sh_fail(SHOAL_ERR_NOMEM, "tokenizer: out of memory (%zu bytes)", cap);
    b->p = p;
    b->cap = cap;
    return SHOAL_OK;
}

shoal_status sh_buf_put(sh_buf *b, const void *data, size_t n) {
    SH_TRY(sh_buf_reserve(b, n));
    if (n) memcpy(b->p + b->n, data, n);
    b->n += n;
    b->p[b->n] = 0;
    return SHOAL_OK;
}

shoal_status sh_buf_putc(sh_buf *b, char c) { return sh_buf_put(b, &c, 1); }

shoal_status sh_buf_put_cp(sh_buf *b, uint32_t cp) {
    char tmp[4];
    return sh_buf_put(b, tmp, (size_t)sh_utf8_put(cp, tmp));
}

void sh_buf_free(sh_buf *b) {
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

shoal_status sh_buf_put_lossy(sh_buf *b, const char *src, size_t n) {
    const unsigned char *u = (const unsigned char *)src;
    SH_TRY(sh_buf_reserve(b, n));
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && u[j] < 0x80) j++;
        if (j > i) {
            SH_TRY(sh_buf_put(b, u + i, j - i));
            i = j;
            continue;
        }
        uint32_t cp;
        int r = sh_utf8_next(u + i, n - i, &cp);
        if (r > 0) {
            SH_TRY(sh_buf_put(b, u + i, (size_t)r));
            i += (size_t)r;
        } else {
            SH_TRY(sh_buf_put_cp(b, 0xFFFD));
            i += r < 0 ? (size_t)(-r) : n - i;
        }
    }
    return SHOAL_OK;
}

/* ==== hashing ============================================================== */

uint64_t sh_hash_bytes(const void *p, size_t n) {
    const unsigned char *s = p;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ ((uint64_t)n * 0xA24BAED4963EE407ull);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xFF51AFD7ED558CCDull;
        h ^= h >> 32;
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, s, n);
    h = (h ^ w) * 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 29;
    h *= 0xFF51AFD7ED558CCDull;
    h ^= h >> 32;
    return h;
}

static uint32_t table_size(uint32_t expected) {
    uint32_t sz = 16;
    while (sz < expected * 2u && sz < (1u << 30)) sz *= 2;
    return sz;
}

int32_t sh_tok_lookup(const sh_tokenizer *t, const char *s, size_t n) {
    const sh_strmap *m = &t->vocab;
    if (!m->slot) return -1;
    uint32_t i = (uint32_t)sh_hash_bytes(s, n) & m->mask;
    for (;;) {
        int32_t id = m->slot[i];
        if (id < 0) return -1;
        if (t->len[id] == n && memcmp(t->tok + t->off[id], s, n) == 0) return id;
        i = (i + 1) & m->mask;
    }
}

static shoal_status strmap_build(sh_tokenizer *t) {
    uint32_t sz = table_size((uint32_t)t->n_vocab);
    t->vocab.slot = malloc(sizeof(int32_t) * sz);
    if (!t->vocab.slot) return sh_fail(SHOAL_ERR_NOMEM, "tokenizer: out of memory");
    memset(t->vocab.slot, 0xFF, sizeof(int32_t) * sz);
    t->vocab.mask = sz - 1;
    for (int id = 0; id < t->n_vocab; id++) {
        if (!(t->attr[id] & SH_TA_PRESENT)) continue;
        const char *s = t->tok + t->off[id];
        size_t n = t->len[id];
        uint32_t i = (uint32_t)sh_hash_bytes(s, n) & t->vocab.mask;
        int dup = 0;
        while (t->vocab.slot[i] >= 0) {
            int32_t o = t->vocab.slot[i];
            if (t->len[o] == n && memcmp(t->tok + t->off[o], s, n) == 0) {
                dup = 1;
                break;
            }
            i = (i + 1) & t->vocab.mask;
        }
        if (!dup) {
            t->vocab.slot[i] = id;
            t->vocab.count++;
        }
    }
    return SHOAL_OK;
}

shoal_status sh_pairmap_init(sh_pairmap *m, uint32_t expected) {
    uint32_t sz = table_size(expected);
    m->e = calloc(sz, sizeof *m->e);
    if (!m->e) return sh_fail(SHOAL_ERR_NOMEM, "tokenizer: out of memory for merges");
    m->mask = sz - 1;
    m->count = 0;
    return SHOAL_OK;
}

static uint32_t pair_slot(uint64_t k) {
    k *= 0x9E3779B97F4A7C15ull;
    return (uint32_t)(k >> 32) ^ (uint32_t)k;
}

shoal_status sh_pairmap_add(sh_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t merged) {
    if ((uint64_t)(m->count + 1) * 2 > (uint64_t)m->mask + 1)
        return sh_fail(SHOAL_ERR_FORMAT, "tokenizer: more merges than announced");
    uint64_t k = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
    uint32_t i = pair_slot(k) & m->mask;
    while (m->e[i].key) {
        if (m->e[i].key == k) return SHOAL_OK;
        i = (i + 1) & m->mask;
    }
    m->e[i].key = k;
    m->e[i].rank = rank;
    m->e[i].merged = merged;
    m->count++;
    return SHOAL_OK;
}

int sh_pairmap_get(const sh_pairmap *m, int32_t a, int32_t b, int32_t *rank, int32_t *merged) {
    if (!m->e) return 0;
    uint64_t k = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
    uint32_t i = pair_slot(k) & m->mask;
    while (m->e[i].key) {
        if (m->e[i].key == k) {
            *rank = m->e[i].rank;
            *merged = m->e[i].merged;
            return 1;
        }
        i = (i + 1) & m->mask;
    }
    return 0;
}

void sh_pairmap_free(sh_pairmap *m) {
    free(m->e);
    memset(m, 0, sizeof *m);
}

/* ==== construction ========================================================= */

shoal_status sh_tok_new(sh_tokenizer **out) {
    sh_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return sh_fail(SHOAL_ERR_NOMEM, "tokenizer: out of memory");
    t->bos = t->eos = t->unk = t->pad = t->sep = t->cls = t->mask = t->eot = -1;
    for (int i = 0; i < 256; i++) t->byte_sym[i] = t->byte_tok[i] = -1;
    t->wp_max_chars = 100;
    memcpy(t->wp_prefix, "##", 3);
    t->wp_prefix_len = 2;
    *out = t;
    return SHOAL_OK;
}

shoal_status sh_tok_set_vocab(sh_tokenizer *t, int n, const char *const *strs, const uint32_t *lens) {
    if (n <= 0) return sh_fail(SHOAL_ERR_FORMAT, "tokenizer: empty vocabulary");
    uint64_t total = 0;
    for (int i = 0; i < n; i++)
        if (strs[i] && !sh_add_ok(total, lens[i], &total))
            return sh_fail(SHOAL_ERR_FORMAT, "tokenizer: vocabulary too large");
    if (total >= UINT32_MAX) return sh_fail(SHOAL_ERR_FORMAT, "tokenizer: vocabulary too large");
    t->n_vocab = n;
    t->tok = malloc(total + 1);
    t->off = calloc((size_t)n, sizeof *t->off);
    t->len = calloc((size_t)n, sizeof *t->len);
    t->attr = calloc((size_t)n, 1);
    if (!t->tok || !t->off || !t->len || !t->attr) return sh_fail(SHOAL_ERR_NOMEM, "tokenizer: out of memory");
    uint32_t pos = 0;
    t->max_tok_len = 0;
    for (int i = 0; i < n; i++) {
        if (!strs[i]) continue;
        memcpy(t->tok + pos, strs[i], lens[i]);
        t->off[i] = pos;
        t->len[i] = lens[i];
        t->attr[i] |= SH_TA_PRESENT;
        pos += lens[i];
        if ((int)lens[i] > t->max_tok_len) t->max_tok_len = (int)lens[i];
    }
    t->tok[pos] = 0;
    return strmap_build(t);
}

static int is_byte_token(const char *s, size_t n, unsigned *v) {
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return 0;
    unsigned x = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        unsigned d;
        if (c >= '0' && c <= '9') d = (unsigned)(c - '0');
        else if (c >= 'A' && c <= 'F') d = (unsigned)(c - 'A' + 10);
        else return 0;
        x = x * 16 + d;
    }
    *v = x;
    return 1;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Decoded bytes of one id on its own (before per-position rules). */
static shoal_status build_piece(const sh_tokenizer *t, int32_t id, sh_buf *o) {
    const char *s = t->tok + t->off[id];
    size_t n = t->len[id];
    unsigned bv;
    if (t->dec_bytefallback && is_byte_token(s, n, &bv)) {
        char c = (char)bv;
        return sh_buf_put(o, &c, 1);
    }
    if (t->dec_bytelevel) {
        /* all characters in the byte map -> those bytes; else the raw string */
        size_t start = o->n, i = 0;
        while (i < n) {
            uint32_t cp;
            int r = sh_utf8_next((const unsigned char *)s + i, n - i, &cp);
            int b = r > 0 ? sh_bytelevel_byte(cp) : -1;
            if (b < 0) {
                o->n = start;
                return sh_buf_put(o, s, n);
            }
            char c = (char)b;
            SH_TRY(sh_buf_put(o, &c, 1));
            i += (size_t)r;
        }
        return SHOAL_OK;
    }
    if (t->dec_metaspace) {
        for (size_t i = 0; i < n;) {
            if (i + 3 <= n && memcmp(s + i, "\xE2\x96\x81", 3) == 0) {
                SH_TRY(sh_buf_putc(o, ' '));
                i += 3;
            } else {
                SH_TRY(sh_buf_putc(o, s[i]));
                i++;
            }
        }
        return SHOAL_OK;
    }
    return sh_buf_put(o, s, n);
}

static void add_eog(sh_tokenizer *t, int32_t id) {
    if (id < 0 || id >= t->n_vocab) return;
    for (int i = 0; i < t->n_eog; i++)
        if (t->eog[i] == id) return;
    if (t->n_eog < (int)(sizeof t->eog / sizeof t->eog[0])) t->eog[t->n_eog++] = id;
}

shoal_status sh_tok_finish(sh_tokenizer *t) {
    shoal_status st = SHOAL_OK;
    /* byte tables */
    for (int id = 0; id < t->n_vocab; id++) {
        unsigned bv;
        if ((t->attr[id] & SH_TA_PRESENT) && is_byte_token(t->tok + t->off[id], t->len[id], &bv)) {
            if (t->byte_tok[bv] < 0) t->byte_tok[bv] = id;
            if (t->family == SH_TOK_BPE_SPM) t->attr[id] |= SH_TA_BYTE;
        }
    }
    if (t->byte_level) {
        for (unsigned b = 0; b < 256; b++) {
            char tmp[4];
            int k = sh_utf8_put(sh_bytelevel_cp(b), tmp);
            t->byte_sym[b] = sh_tok_lookup(t, tmp, (size_t)k);
        }
    }
    /* decoded pieces */
    sh_buf d = {0};
    t->doff = calloc((size_t)t->n_vocab, sizeof *t->doff);
    t->dlen = calloc((size_t)t->n_vocab, sizeof *t->dlen);
    if (!t->doff || !t->dlen) return sh_fail(SHOAL_ERR_NOMEM, "tokenizer: out of memory");
    for (int id = 0; id < t->n_vocab; id++) {
        if (!(t->attr[id] & SH_TA_PRESENT)) continue;
        size_t at = d.n;
        if ((st = build_piece(t, id, &d)) != SHOAL_OK) {
            sh_buf_free(&d);
            return st;
        }
        if (d.n >= UINT32_MAX) {
            sh_buf_free(&d);
            return sh_fail(SHOAL_ERR_FORMAT, "tokenizer: vocabulary too large");
        }
        t->doff[id] = (uint32_t)at;
        t->dlen[id] = (uint32_t)(d.n - at);
    }
    if (!d.p && (st = sh_buf_putc(&d, 0)) != SHOAL_OK) return st;
    t->dec = d.p;
    /* added tokens, sorted by first byte then longest first */
    int na = 0;
    for (int id = 0; id < t->n_vocab; id++)
        if ((t->attr[id] & SH_TA_ADDED) && t->len[id] > 0) na++;
    t->added = malloc(sizeof(int32_t) * (size_t)(na ? na : 1));
    if (!t->added) return sh_fail(SHOAL_ERR_NOMEM, "tokenizer: out of memory");
    na = 0;
    for (int id = 0; id < t->n_vocab; id++)
        if ((t->attr[id] & SH_TA_ADDED) && t->len[id] > 0) t->added[na++] = id;
    t->n_added = na;
    uint64_t *keys = malloc(sizeof(uint64_t) * (size_t)(na ? na : 1));
    if (!keys) return sh_fail(SHOAL_ERR_NOMEM, "tokenizer: out of memory");
    for (int i = 0; i < na; i++) {
        int32_t id = t->added[i];
        uint64_t fb = (unsigned char)t->tok[t->off[id]];
        uint64_t ln = t->len[id] > 0xFFFFFFu ? 0xFFFFFFu : t->len[id];
        keys[i] = fb << 56 | (0xFFFFFFu - ln) << 32 | (uint32_t)id;
    }
    qsort(keys, (size_t)na, sizeof *keys, cmp_u64);
    for (int b = 0; b <= 256; b++) t->added_first[b] = na;
    for (int i = na - 1; i >= 0; i--) {
        t->added[i] = (int32_t)(uint32_t)keys[i];
        t->added_first[keys[i] >> 56] = i;
    }
    for (int b = 255; b >= 0; b--)
        if (t->added_first[b] > t->added_first[b + 1]) t->added_first[b] = t->added_first[b + 1];
    free(keys);
    /* end-of-generation ids */
    add_eog(t, t->eos);
    add_eog(t, t->eot);
    static const char *const eog_names[] = {"<|im_end|>", "<|eot_id|>", "<|endoftext|>", "<|end_of_text|>",
                                            "</s>", "<|end|>", "<end_of_turn>", "<|eom_id|>"};
    if (t->family != SH_TOK_WORDPIECE)
        for (size_t i = 0; i < sizeof eog_names / sizeof eog_names[0]; i++)
            add_eog(t, sh_tok_lookup(t, eog_names[i], strlen(eog_names[i])));
    return SHOAL_OK;
}

/* ==== encode =============================================================== */

typedef struct sh_enc {
    sh_buf norm;
    sh_pieces pieces;
    sh_ids out;
} sh_enc;

shoal_status sh_ids_push(sh_ids *o, int32_t id) {
    if (o->n == o->cap) {
        if (o->cap > (1 << 29)) return sh_fail(SHOAL_ERR_RANGE, "tokenizer: too many tokens");
        int cap = o->cap ? o->cap * 2 : 256;
        int32_t *v = realloc(o->v, sizeof(int32_t) * (size_t)cap);
        if (!v) return sh_fail(SHOAL_ERR_NOMEM, "tokenizer: out of memory");
        o->v = v;
        o->cap = cap;
    }
    o->v[o->n++] = id;
    return SHOAL_OK;
}

void sh_ids_free(sh_ids *o) {
    free(o->v);
    free(o->sym);
    free(o->heap);
    sh_buf_free(&o->word);
    memset(o, 0, sizeof *o);
}

static uint32_t cp_before(const char *s, size_t lo, size_t pos, size_t *start) {
    size_t k = pos - 1;
    while (k > lo && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
    uint32_t cp = 0xFFFD;
    if (sh_utf8_next((const unsigned char *)s + k, pos - k, &cp) <= 0) cp = 0xFFFD;
    *start = k;
    return cp;
}

static uint32_t cp_at(const char *s, size_t pos, size_t n, int *len) {
    uint32_t cp = 0xFFFD;
    int r = sh_utf8_next((const unsigned char *)s + pos, n - pos, &cp);
    *len = r > 0 ? r : 1;
    return r > 0 ? cp : 0xFFFD;
}

static int is_word_cp(uint32_t cp) { return cp == '_' || (sh_uc_flags(cp) & (SH_UF_L | SH_UF_N)); }

/* Finds the leftmost-longest added token in s[lo..n); lstrip/rstrip widen the
 * match over whitespace (not before seg_lo). */
static int find_added(const sh_tokenizer *t, const char *s, size_t seg_lo, size_t lo, size_t n, size_t *ms,
                      size_t *me, int32_t *mid) {
    for (size_t p = lo; p < n; p++) {
        unsigned b = (unsigned char)s[p];
        for (int k = t->added_first[b]; k < t->added_first[b + 1]; k++) {
            int32_t id = t->added[k];
            size_t L = t->len[id];
            if (L > n - p || memcmp(s + p, t->tok + t->off[id], L) != 0) continue;
            size_t a = p, e = p + L;
            if (t->attr[id] & SH_TA_SINGLE_WORD) {
                size_t st;
                int cl;
                if (a > 0 && is_word_cp(cp_before(s, 0, a, &st))) continue;
                if (e < n && is_word_cp(cp_at(s, e, n, &cl))) continue;
            }
            if (t->attr[id] & SH_TA_LSTRIP) {
                while (a > seg_lo) {
                    size_t st;
                    if (!(sh_uc_flags(cp_before(s, seg_lo, a, &st)) & SH_UF_WS)) break;
                    a = st;
                }
            }
            if (t->attr[id] & SH_TA_RSTRIP) {
                while (e < n) {
                    int cl;
                    if (!(sh_uc_flags(cp_at(s, e, n, &cl)) & SH_UF_WS)) break;
                    e += (size_t)cl;
                }
            }
            *ms = a;
            *me = e;
            *mid = id;
            return 1;
        }
    }
    return 0;
}

static shoal_status encode_segment(const sh_tokenizer *t, const char *s, size_t n, int first, sh_enc *e) {
    if (n == 0) return SHOAL_OK;
    if (t->n_norm) {
        SH_TRY(sh_normalize(t, s, n, &e->norm));
        s = e->norm.p;
        n = e->norm.n;
        if (n == 0) return SHOAL_OK;
    }
    SH_TRY(sh_pretokenize(t, s, n, first, &e->pieces));
    const sh_pieces *p = &e->pieces;
    for (int i = 0; i < p->npieces; i++) {
        uint32_t a = p->boff[p->pc[2 * i]], b = p->boff[p->pc[2 * i + 1]];
        if (b <= a) continue;
        if (t->family == SH_TOK_WORDPIECE)
            SH_TRY(sh_wordpiece_piece(t, p->text.p + a, b - a, &e->out));
        else
            SH_TRY(sh_bpe_piece(t, p->text.p + a, b - a, &e->out));
    }
    return SHOAL_OK;
}

static shoal_status encode_all(const sh_tokenizer *t, const char *s, size_t n, int add_special, sh_enc *e) {
    if (add_special)
        for (int i = 0; i < t->n_prefix; i++) SH_TRY(sh_ids_push(&e->out, t->prefix[i]));
    size_t pos = 0;
    while (pos < n) {
        size_t ms = n, me = n;
        int32_t id = -1;
        if (!t->n_added || !find_added(t, s, pos, pos, n, &ms, &me, &id)) ms = me = n;
        SH_TRY(encode_segment(t, s + pos, ms - pos, pos == 0, e));
        if (id >= 0) SH_TRY(sh_ids_push(&e->out, id));
        pos = me;
    }
    if (add_special)
        for (int i = 0; i < t->n_suffix; i++) SH_TRY(sh_ids_push(&e->out, t->suffix[i]));
    return SHOAL_OK;
}

shoal_status sh_tokenizer_encode(const sh_tokenizer *t, const char *text, size_t len, int add_special, int32_t **ids,
                                 int *n) {
    if (ids) *ids = NULL;
    if (n) *n = 0;
    if (!t || !ids || !n || (!text && len)) return sh_fail(SHOAL_ERR_INVALID_ARG, "tokenizer: encode: bad argument");
    if (len > (size_t)INT32_MAX / 2) return sh_fail(SHOAL_ERR_RANGE, "tokenizer: input of %zu bytes is too long", len);
    sh_enc e = {0};
    sh_buf clean = {0};
    shoal_status st = SHOAL_OK;
    if (len && !utf8_valid(text, len)) {
        if ((st = sh_buf_put_lossy(&clean, text, len)) != SHOAL_OK) goto fail;
        text = clean.p;
        len = clean.n;
    }
    if ((st = encode_all(t, text ? text : "", len, add_special, &e)) != SHOAL_OK) goto fail;
    if (!e.out.v && (st = sh_ids_push(&e.out, 0)) == SHOAL_OK) e.out.n = 0;
    if (st != SHOAL_OK) goto fail;
    *ids = e.out.v;
    *n = e.out.n;
    e.out.v = NULL;
fail:
    sh_ids_free(&e.out);
    sh_buf_free(&e.norm);
    sh_pieces_free(&e.pieces);
    sh_buf_free(&clean);
    return st;
}

/* ==== decode =============================================================== */

struct sh_detok {
    const sh_tokenizer *t;
    int flags;
    int started;  /* a token has been decoded */
    int at_start; /* no output byte yet */
    unsigned char pend[4];
    int npend;
    sh_buf out, tmp, word;
};

/* WordPiece decoder clean-up, applied to each token with its leading space. */
static void wp_cleanup(sh_buf *b) {
    static const char *const from[] = {" .", " ?", " !", " ,", " ' ", " n't", " 'm", " do not", " 's", " 've", " 're"};
    static const char *const to[] = {".", "?", "!", ",", "'", "n't", "'m", " don't", "'s", "'ve", "'re"};
    for (size_t r = 0; r < sizeof from / sizeof from[0]; r++) {
        size_t fl = strlen(from[r]), tl = strlen(to[r]);
        size_t i = 0, o = 0;
        while (i < b->n) {
            if (i + fl <= b->n && memcmp(b->p + i, from[r], fl) == 0) {
                memmove(b->p + o, to[r], tl);
                o += tl;
                i += fl;
            } else {
                b->p[o++] = b->p[i++];
            }
        }
        b->n = o;
    }
}

/* Appends bytes to the output, holding an incomplete UTF-8 tail. */
static shoal_status detok_bytes(sh_detok *d, const char *s, size_t n) {
    d->tmp.n = 0;
    SH_TRY(sh_buf_put(&d->tmp, d->pend, (size_t)d->npend));
    SH_TRY(sh_buf_put(&d->tmp, s, n));
    d->npend = 0;
    const unsigned char *u = (const unsigned char *)d->tmp.p;
    size_t m = d->tmp.n, i = 0;
    while (i < m) {
        uint32_t cp;
        int r = sh_utf8_next(u + i, m - i, &cp);
        if (r > 0) {
            SH_TRY(sh_buf_put(&d->out, u + i, (size_t)r));
            i += (size_t)r;
        } else if (r < 0) {
            SH_TRY(sh_buf_put_cp(&d->out, 0xFFFD));
            i += (size_t)(-r);
        } else {
            memcpy(d->pend, u + i, m - i);
            d->npend = (int)(m - i);
            break;
        }
    }
    return SHOAL_OK;
}

shoal_status sh_detok_create(const sh_tokenizer *t, int flags, sh_detok **out) {
    *out = NULL;
    if (!t) return sh_fail(SHOAL_ERR_INVALID_ARG, "tokenizer: detok: NULL tokenizer");
    sh_detok *d = calloc(1, sizeof *d);
    if (!d) return sh_fail(SHOAL_ERR_NOMEM, "tokenizer: out of memory");
    d->t = t;
    d->flags = flags;
    sh_detok_reset(d);
    *out = d;
    return SHOAL_OK;
}

void sh_detok_reset(sh_detok *d) {
    if (!d) return;
    d->started = (d->flags & SH_DETOK_KEEP_LEADING_SPACE) ? 1 : 0;
    d->at_start = (d->flags & SH_DETOK_KEEP_LEADING_SPACE) ? 0 : 1;
    d->npend = 0;
    d->out.n = 0;
}

static shoal_status detok_push(sh_detok *d, int32_t id) {
    const sh_tokenizer *t = d->t;
    if ((d->flags & SH_DETOK_SKIP_SPECIAL) && (t->attr[id] & SH_TA_SPECIAL)) return SHOAL_OK;
    const char *s = t->dec + t->doff[id];
    size_t n = t->dlen[id];
    if (t->dec_wordpiece || t->dec_join_space) {
        sh_buf *w = &d->word;
        w->n = 0;
        if (d->started) {
            if (t->dec_wordpiece && n >= (size_t)t->wp_prefix_len &&
                memcmp(s, t->wp_prefix, (size_t)t->wp_prefix_len) == 0) {
                s += t->wp_prefix_len;
                n -= (size_t)t->wp_prefix_len;
            } else {
                SH_TRY(sh_buf_putc(w, ' '));
            }
        }
        SH_TRY(sh_buf_put(w, s, n));
        if (t->dec_cleanup) wp_cleanup(w);
        d->started = 1;
        return detok_bytes(d, w->p, w->n);
    }
    d->started = 1;
    if (d->at_start && n > 0) {
        if (t->dec_strip_space && s[0] == ' ') {
            s++;
            n--;
        }
        d->at_start = 0;
    }
    return detok_bytes(d, s, n);
}

shoal_status sh_detok_push(sh_detok *d, int32_t id, const char **text, size_t *len) {
    if (!d || !text || !len) return sh_fail(SHOAL_ERR_INVALID_ARG, "tokenizer: detok: bad argument");
    *text = "";
    *len = 0;
    if (id < 0 || id >= d->t->n_vocab)
        return sh_fail(SHOAL_ERR_INVALID_ARG, "tokenizer: token id %d outside the vocabulary (%d)", (int)id,
                       d->t->n_vocab);
    d->out.n = 0;
    SH_TRY(detok_push(d, id));
    *text = d->out.p ? d->out.p : "";
    *len = d->out.n;
    return SHOAL_OK;
}

shoal_status sh_detok_flush(sh_detok *d, const char **text, size_t *len) {
    if (!d || !text || !len) return sh_fail(SHOAL_ERR_INVALID_ARG, "tokenizer: detok: bad argument");
    d->out.n = 0;
    if (d->npend) SH_TRY(sh_buf_put_cp(&d->out, 0xFFFD));
    d->npend = 0;
    *text = d->out.p ? d->out.p : "";
    *len = d->out.n;
    int keep = d->flags & SH_DETOK_KEEP_LEADING_SPACE;
    d->started = keep ? 1 : 0;
    d->at_start = keep ? 0 : 1;
    return SHOAL_OK;
}

void sh_detok_free(sh_detok *d) {
    if (!d) return;
    sh_buf_free(&d->out);
    sh_buf_free(&d->tmp);
    sh_buf_free(&d->word);
    free(d);
}

shoal_status sh_tokenizer_decode(const sh_tokenizer *t, const int32_t *ids, int n, int skip_special, char **text,
                                 size_t *len) {
    if (text) *text = NULL;
    if (len) *len = 0;
    if (!t || !text || n < 0 || (n > 0 && !ids)) return sh_fail(SHOAL_ERR_INVALID_ARG, "tokenizer: decode: bad argument");
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= t->n_vocab)
            return sh_fail(SHOAL_ERR_INVALID_ARG, "tokenizer: token id %d (position %d) outside the vocabulary (%d)",
                           (int)ids[i], i, t->n_vocab);
    sh_detok d = {0};
    d.t = t;
    d.flags = skip_special ? SH_DETOK_SKIP_SPECIAL : 0;
    sh_detok_reset(&d);
    sh_buf all = {0};
    shoal_status st = sh_buf_reserve(&all, 16);
    for (int i = 0; i < n && st == SHOAL_OK; i++) {
        d.out.n = 0;
        st = detok_push(&d, ids[i]);
        if (st == SHOAL_OK) st = sh_buf_put(&all, d.out.p, d.out.n);
    }
    if (st == SHOAL_OK && d.npend) st = sh_buf_put_cp(&all, 0xFFFD);
    sh_buf_free(&d.out);
    sh_buf_free(&d.tmp);
    sh_buf_free(&d.word);
    if (st != SHOAL_OK) {
        sh_buf_free(&all);
        return st;
    }
    all.p[all.n] = 0;
    *text = all.p;
    if (len) *len = all.n;
    return SHOAL_OK;
}

/* ==== vocabulary accessors ================================================= */

void sh_tokenizer_get_info(const sh_tokenizer *t, sh_tokenizer_info *info) {
    memset(info, 0, sizeof *info);
    info->family = t->family;
    info->n_vocab = t->n_vocab;
    info->bos_id = t->bos;
    info->eos_id = t->eos;
    info->unk_id = t->unk;
    info->pad_id = t->pad;
    info->sep_id = t->sep;
    info->cls_id = t->cls;
    info->mask_id = t->mask;
    info->eot_id = t->eot;
    info->add_bos = t->n_prefix > 0;
    info->add_eos = t->n_suffix > 0;
    info->pre = t->pre_name;
    info->chat_template = t->chat_template;
}

int sh_tokenizer_n_vocab(const sh_tokenizer *t) { return t->n_vocab; }
int32_t sh_tokenizer_bos(const sh_tokenizer *t) { return t->bos; }
int32_t sh_tokenizer_eos(const sh_tokenizer *t) { return t->eos; }

const char *sh_tokenizer_token_text(const sh_tokenizer *t, int32_t id, size_t *len) {
    if (len) *len = 0;
    if (!t || id < 0 || id >= t->n_vocab || !(t->attr[id] & SH_TA_PRESENT)) return NULL;
    if (len) *len = t->len[id];
    return t->tok + t->off[id];
}

int sh_tokenizer_token_to_piece(const sh_tokenizer *t, int32_t id, char *buf, int cap) {
    if (!t || id < 0 || id >= t->n_vocab) return -1;
    const char *s = t->dec + t->doff[id];
    size_t n = t->dlen[id];
    int space = 0;
    if (t->dec_wordpiece && !(t->attr[id] & SH_TA_SPECIAL)) {
        if (n >= (size_t)t->wp_prefix_len && memcmp(s, t->wp_prefix, (size_t)t->wp_prefix_len) == 0) {
            s += t->wp_prefix_len;
            n -= (size_t)t->wp_prefix_len;
        } else {
            space = 1;
        }
    }
    size_t total = n + (size_t)space;
    if (total > INT32_MAX) return -1;
    if (buf && cap > 0) {
        size_t k = 0;
        if (space) buf[k++] = ' ';
        size_t m = n < (size_t)cap - k ? n : (size_t)cap - k;
        memcpy(buf + k, s, m);
    }
    return (int)total;
}

int32_t sh_tokenizer_token_id(const sh_tokenizer *t, const char *text, size_t len) {
    if (!t || (!text && len)) return -1;
    return sh_tok_lookup(t, text ? text : "", len);
}

int sh_tokenizer_is_special(const sh_tokenizer *t, int32_t id) {
    return t && id >= 0 && id < t->n_vocab && (t->attr[id] & SH_TA_SPECIAL) != 0;
}

int sh_tokenizer_is_eog(const sh_tokenizer *t, int32_t id) {
    if (!t) return 0;
    for (int i = 0; i < t->n_eog; i++)
        if (t->eog[i] == id) return 1;
    return 0;
}

int sh_tokenizer_eog_ids(const sh_tokenizer *t, int32_t *out, int cap) {
    if (!t) return 0;
    for (int i = 0; i < t->n_eog && i < cap; i++) out[i] = t->eog[i];
    return t->n_eog;
}

void sh_tokenizer_free(sh_tokenizer *t) {
    if (!t) return;
    free(t->tok);
    free(t->off);
    free(t->len);
    free(t->attr);
    free(t->score);
    free(t->vocab.slot);
    free(t->dec);
    free(t->doff);
    free(t->dlen);
    free(t->norm);
    free(t->pre);
    sh_pairmap_free(&t->merges);
    free(t->added);
    free(t->chat_template);
    free(t);
}
