/* Conformance with Hugging Face tokenizers: for every tokenizer under
 * $SHOAL_FIXTURES/tokenizers (trained offline by gen_tokenizer_vectors.py, plus
 * the real all-MiniLM-L6-v2 vocabulary), each of the 2200 test strings must
 * give exactly the reference ids (with and without special tokens), decode
 * exactly to the reference text (skipping special tokens or not), and the
 * streaming decoder must produce the same text as decode. */
#include "check.h"
#include "test_tokenizer_common.h"
#include "tokenizer.h"

#define N_SPECIAL 200

typedef struct named { const char *name; sh_tok_family family; } named;

static void run(const char *dir, const tv_lines *strs, char **bytes, size_t *blen, const named *nt) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s/tokenizer.json", dir, nt->name);
    sh_tokenizer *t = NULL;
    shoal_status st = sh_tokenizer_load_json(path, &t);
    CHECK(st == SHOAL_OK, "%s: load: %s", nt->name, shoal_last_error());
    if (st != SHOAL_OK) return;
    CHECK(sh_tokenizer_n_vocab(t) > 1000, "%s: vocab %d", nt->name, sh_tokenizer_n_vocab(t));
    sh_tokenizer_info info;
    sh_tokenizer_get_info(t, &info);
    CHECK(info.family == nt->family, "%s: family %d", nt->name, (int)info.family);
    tv_lines ids, sids, dec;
    snprintf(path, sizeof path, "%s/vectors/%s.ids", dir, nt->name);
    int ok1 = tv_read_lines(path, &ids);
    snprintf(path, sizeof path, "%s/vectors/%s.sids", dir, nt->name);
    int ok2 = tv_read_lines(path, &sids);
    snprintf(path, sizeof path, "%s/vectors/%s.dec", dir, nt->name);
    int ok3 = tv_read_lines(path, &dec);
    CHECK(ok1 && ok2 && ok3 && ids.n == strs->n && dec.n == strs->n && sids.n == N_SPECIAL,
          "%s: vector files missing or of the wrong length", nt->name);
    if (!(ok1 && ok2 && ok3 && ids.n == strs->n && dec.n == strs->n && sids.n == N_SPECIAL)) goto done;
    int n_enc = 0, n_dec = 0, n_stream = 0, n_rt = 0;
    sh_detok *d;
    CHECK(sh_detok_create(t, 0, &d) == SHOAL_OK, "detok create");
    char *tmp = NULL;
    for (int i = 0; i < strs->n; i++) {
        int32_t *want, *got = NULL;
        int nw = tv_parse_ids(ids.line[i], &want), ng = 0;
        st = sh_tokenizer_encode(t, bytes[i], blen[i], 0, &got, &ng);
        int same = st == SHOAL_OK && tv_ids_equal(got, ng, want, nw);
        CHECK(same, "%s: string %d \"%.60s\": encode differs (%s)", nt->name, i, strs->line[i],
              st == SHOAL_OK ? "ids" : shoal_last_error());
        if (!same && st == SHOAL_OK) {
            tv_print_ids("got", got, ng);
            tv_print_ids("want", want, nw);
        }
        n_enc += same;
        free(got);
        if (i < N_SPECIAL) {
            int32_t *ws;
            int nws = tv_parse_ids(sids.line[i], &ws);
            st = sh_tokenizer_encode(t, bytes[i], blen[i], 1, &got, &ng);
            same = st == SHOAL_OK && tv_ids_equal(got, ng, ws, nws);
            CHECK(same, "%s: string %d \"%.60s\": encode with specials differs", nt->name, i, strs->line[i]);
            if (!same && st == SHOAL_OK) {
                tv_print_ids("got", got, ng);
                tv_print_ids("want", ws, nws);
            }
            free(got);
            free(ws);
        }
        /* decode the reference ids */
        char *c1 = dec.line[i], *tab = strchr(c1, '\t');
        CHECK(tab != NULL, "%s: .dec line %d has no tab", nt->name, i);
        if (!tab) {
            free(want);
            continue;
        }
        *tab = 0;
        char *c2 = tab + 1;
        size_t need = strlen(c1) + strlen(c2) + blen[i] + 4;
        tmp = realloc(tmp, need);
        const char *exp1;
        size_t e1;
        if (!strcmp(c1, "=")) {
            exp1 = bytes[i];
            e1 = blen[i];
        } else {
            e1 = tv_unescape(c1, tmp);
            exp1 = tmp;
        }
        char *out = NULL;
        size_t olen = 0;
        st = sh_tokenizer_decode(t, want, nw, 0, &out, &olen);
        same = st == SHOAL_OK && olen == e1 && memcmp(out, exp1, e1) == 0;
        CHECK(same, "%s: string %d: decode differs:\n  got  \"%.*s\"\n  want \"%.*s\"", nt->name, i, (int)olen,
              out ? out : "", (int)e1, exp1);
        n_dec += same;
        n_rt += same && !strcmp(c1, "=");
        /* streaming: the same text, piece by piece, never a broken character */
        {
            char *acc = malloc(olen + 64 + 4 * (size_t)nw);
            size_t an = 0;
            int valid = 1;
            for (int k = 0; k < nw; k++) {
                const char *s;
                size_t sl;
                if (sh_detok_push(d, want[k], &s, &sl) != SHOAL_OK) valid = 0;
                if (sl && ((unsigned char)s[0] & 0xC0) == 0x80) valid = 0; /* starts mid-character */
                memcpy(acc + an, s, sl);
                an += sl;
            }
            const char *s;
            size_t sl;
            sh_detok_flush(d, &s, &sl);
            memcpy(acc + an, s, sl);
            an += sl;
            same = valid && st == SHOAL_OK && an == olen && memcmp(acc, out, olen) == 0;
            CHECK(same, "%s: string %d: streaming decode differs from decode", nt->name, i);
            n_stream += same;
            free(acc);
        }
        free(out);
        /* skip_special */
        const char *exp2;
        size_t e2;
        if (!strcmp(c2, "=")) {
            exp2 = exp1;
            e2 = e1;
        } else {
            e2 = tv_unescape(c2, tmp + e1 + 1);
            exp2 = tmp + e1 + 1;
        }
        st = sh_tokenizer_decode(t, want, nw, 1, &out, &olen);
        same = st == SHOAL_OK && olen == e2 && memcmp(out, exp2, e2) == 0;
        CHECK(same, "%s: string %d: decode(skip_special) differs:\n  got  \"%.*s\"\n  want \"%.*s\"", nt->name, i,
              (int)olen, out ? out : "", (int)e2, exp2);
        free(out);
        free(want);
    }
    free(tmp);
    sh_detok_free(d);
    printf("%-11s %d strings: encode %d, decode %d (round trips %d), streaming %d match\n", nt->name, strs->n, n_enc,
           n_dec, n_rt, n_stream);
done:
    tv_free_lines(&ids);
    tv_free_lines(&sids);
    tv_free_lines(&dec);
    sh_tokenizer_free(t);
}

int main(void) {
    const char *fx = check_env("SHOAL_FIXTURES", "tests/fixtures");
    char dir[1024], path[1100];
    snprintf(dir, sizeof dir, "%s/tokenizers", fx);
    snprintf(path, sizeof path, "%s/vectors/strings.txt", dir);
    tv_lines strs;
    int ok = tv_read_lines(path, &strs);
    CHECK(ok && strs.n >= 2000, "%s: missing or fewer than 2000 strings", path);
    if (!ok) return check_report();
    char **bytes = malloc(sizeof(char *) * (size_t)strs.n);
    size_t *blen = malloc(sizeof(size_t) * (size_t)strs.n);
    for (int i = 0; i < strs.n; i++) {
        bytes[i] = malloc(strlen(strs.line[i]) + 1);
        blen[i] = tv_unescape(strs.line[i], bytes[i]);
    }
    static const named all[] = {
        {"bpe_gpt2", SH_TOK_BPE_BYTE},   {"bpe_llama3", SH_TOK_BPE_BYTE}, {"bpe_qwen2", SH_TOK_BPE_BYTE},
        {"bpe_smollm", SH_TOK_BPE_BYTE}, {"spm", SH_TOK_BPE_SPM},         {"wordpiece", SH_TOK_WORDPIECE},
        {"minilm", SH_TOK_WORDPIECE},
    };
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) run(dir, &strs, bytes, blen, &all[k]);
    for (int i = 0; i < strs.n; i++) free(bytes[i]);
    free(bytes);
    free(blen);
    tv_free_lines(&strs);
    return check_report();
}
