/* WordPiece model (BERT, MiniLM): greedy longest match from the left, pieces
 * after the first carry the continuation prefix ("##"); a word with a part
 * that matches nothing, or longer than max_input_chars_per_word characters,
 * is one [UNK]. */
#include <string.h>

#include "tokenizer_impl.h"

shoal_status sh_wordpiece_piece(const sh_tokenizer *t, const char *s, size_t n, sh_ids *out) {
    if (n == 0) return SHOAL_OK;
    size_t nch = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) nch++;
    if (nch > (size_t)t->wp_max_chars) return sh_ids_push(out, t->unk);
    int mark = out->n;
    sh_buf *w = &out->word;
    size_t start = 0;
    while (start < n) {
        size_t pre = start > 0 ? (size_t)t->wp_prefix_len : 0;
        size_t end = n;
        /* no token is longer than max_tok_len bytes */
        if (end - start + pre > (size_t)t->max_tok_len) {
            end = start + ((size_t)t->max_tok_len > pre ? (size_t)t->max_tok_len - pre : 0);
            while (end > start && ((unsigned char)s[end] & 0xC0) == 0x80) end--;
        }
        int32_t found = -1;
        while (end > start) {
            w->n = 0;
            SH_TRY(sh_buf_put(w, t->wp_prefix, pre));
            SH_TRY(sh_buf_put(w, s + start, end - start));
            found = sh_tok_lookup(t, w->p, w->n);
            if (found >= 0) break;
            end--;
            while (end > start && ((unsigned char)s[end] & 0xC0) == 0x80) end--;
        }
        if (found < 0) {
            out->n = mark;
            return sh_ids_push(out, t->unk);
        }
        SH_TRY(sh_ids_push(out, found));
        start = end;
    }
    return SHOAL_OK;
}
