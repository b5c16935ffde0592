/* Tokenizers loaded from vocabulary-only GGUF files:
 *  - the committed fixtures tests/fixtures/tokenizers/{spm,bpe_llama3,
 *    bpe_smollm}/vocab.gguf against the same vectors as their tokenizer.json
 *    (spm: against sentencepiece's own ids, since GGUF merges by score);
 *  - the files in $SHOAL_SHARED/data/tokenizer-vectors (ggml-vocab-*.gguf +
 *    .inp/.out, expected ids from Hugging Face tokenizers; see that folder's
 *    README), skipped with a message when the folder is absent. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "gguf.h"
#include "test_tokenizer_common.h"
#include "tokenizer.h"

static const char SEP[] = "\n__ggml_vocab_test__\n";

static void run_file(const char *dir, const char *name, sh_tok_family family) {
    char path[1024], inp[1100], outp[1100];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(inp, sizeof inp, "%s.inp", path);
    snprintf(outp, sizeof outp, "%s.out", path);
    sh_gguf *g = NULL;
    sh_tokenizer *t = NULL;
    shoal_status st = sh_gguf_open(path, &g);
    CHECK(st == SHOAL_OK, "%s: open: %s", name, shoal_last_error());
    if (st != SHOAL_OK) return;
    st = sh_tokenizer_load_gguf(g, &t);
    CHECK(st == SHOAL_OK, "%s: load: %s", name, shoal_last_error());
    sh_gguf_close(g);
    if (st != SHOAL_OK) return;
    sh_tokenizer_info info;
    sh_tokenizer_get_info(t, &info);
    CHECK(info.family == family, "%s: family %d", name, (int)info.family);
    size_t ilen;
    char *in = check_read_file(inp, &ilen), *out = check_read_file(outp, NULL);
    CHECK(in && out, "%s: cannot read .inp/.out", name);
    int n_ok = 0, n_all = 0;
    char *p = in, *line = out;
    while (in && out && *p) {
        char *e = strstr(p, SEP);
        if (!e) break;
        char *nl = strchr(line, '\n');
        if (!nl) break;
        *nl = 0;
        int32_t want[512];
        int nw = 0;
        char *q = line;
        while (nw < 512) {
            char *end;
            long v = strtol(q, &end, 10);
            if (end == q) break;
            want[nw++] = (int32_t)v;
            q = end;
        }
        int32_t *ids = NULL;
        int n = 0;
        st = sh_tokenizer_encode(t, p, (size_t)(e - p), 0, &ids, &n);
        int same = st == SHOAL_OK && n == nw && (n == 0 || memcmp(ids, want, sizeof(int32_t) * (size_t)n) == 0);
        CHECK(same, "%s: \"%.*s\": got %d ids, want %d", name, (int)(e - p), p, n, nw);
        if (!same && st == SHOAL_OK) {
            fprintf(stderr, "  got: ");
            for (int i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
            fprintf(stderr, "\n  want:");
            for (int i = 0; i < nw; i++) fprintf(stderr, " %d", want[i]);
            fprintf(stderr, "\n");
        }
        n_ok += same;
        n_all++;
        free(ids);
        p = e + sizeof SEP - 1;
        line = nl + 1;
    }
    CHECK(n_all >= 40, "%s: only %d strings read", name, n_all);
    printf("%s: %d/%d strings match\n", name, n_ok, n_all);
    free(in);
    free(out);
    sh_tokenizer_free(t);
}

static sh_tokenizer *load_gguf(const char *path) {
    sh_gguf *g = NULL;
    sh_tokenizer *t = NULL;
    shoal_status st = sh_gguf_open(path, &g);
    CHECK(st == SHOAL_OK, "%s: open: %s", path, shoal_last_error());
    if (st != SHOAL_OK) return NULL;
    st = sh_tokenizer_load_gguf(g, &t);
    CHECK(st == SHOAL_OK, "%s: load: %s", path, shoal_last_error());
    sh_gguf_close(g);
    return t;
}

/* vocab.gguf of a fixture tokenizer against <ids> (lines "=" defer to <name>.ids) */
static void run_fixture(const char *dir, const char *name, const char *ids_ext, sh_tok_family family) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s/vocab.gguf", dir, name);
    sh_tokenizer *t = load_gguf(path);
    if (!t) return;
    sh_tokenizer_info info;
    sh_tokenizer_get_info(t, &info);
    CHECK(info.family == family, "%s: family %d", path, (int)info.family);
    CHECK(info.chat_template && strlen(info.chat_template) > 20, "%s: no chat template", path);
    tv_lines strs, ids, alt;
    snprintf(path, sizeof path, "%s/vectors/strings.txt", dir);
    int ok = tv_read_lines(path, &strs);
    snprintf(path, sizeof path, "%s/vectors/%s.ids", dir, name);
    ok &= tv_read_lines(path, &ids);
    snprintf(path, sizeof path, "%s/vectors/%s.%s", dir, name, ids_ext);
    ok &= tv_read_lines(path, &alt);
    CHECK(ok && strs.n == ids.n && strs.n == alt.n && strs.n >= 2000, "%s: vectors missing", name);
    int n_ok = 0;
    char *buf = NULL;
    for (int i = 0; ok && i < strs.n; i++) {
        buf = realloc(buf, strlen(strs.line[i]) + 1);
        size_t n = tv_unescape(strs.line[i], buf);
        int32_t *want, *got = NULL;
        int nw = tv_parse_ids(strcmp(alt.line[i], "=") ? alt.line[i] : ids.line[i], &want), ng = 0;
        shoal_status st = sh_tokenizer_encode(t, buf, n, 0, &got, &ng);
        int same = st == SHOAL_OK && tv_ids_equal(got, ng, want, nw);
        CHECK(same, "%s gguf: string %d \"%.60s\" differs", name, i, strs.line[i]);
        if (!same && st == SHOAL_OK) {
            tv_print_ids("got", got, ng);
            tv_print_ids("want", want, nw);
        }
        n_ok += same;
        free(got);
        free(want);
    }
    printf("%s/vocab.gguf: %d/%d strings match\n", name, n_ok, strs.n);
    free(buf);
    tv_free_lines(&strs);
    tv_free_lines(&ids);
    tv_free_lines(&alt);
    sh_tokenizer_free(t);
}

int main(void) {
    const char *fx = check_env("SHOAL_FIXTURES", "tests/fixtures");
    char fdir[1024];
    snprintf(fdir, sizeof fdir, "%s/tokenizers", fx);
    run_fixture(fdir, "spm", "sp", SH_TOK_BPE_SPM);
    run_fixture(fdir, "bpe_llama3", "ids", SH_TOK_BPE_BYTE);
    run_fixture(fdir, "bpe_smollm", "ids", SH_TOK_BPE_BYTE);

    const char *shared = check_env("SHOAL_SHARED", "../shared");
    char dir[900];
    snprintf(dir, sizeof dir, "%s/data/tokenizer-vectors", shared);
    char probe[1000];
    snprintf(probe, sizeof probe, "%s/README.md", dir);
    FILE *f = fopen(probe, "rb");
    if (!f) {
        printf("SKIP: %s not found; GGUF tokenizer vectors not checked\n", dir);
        return check_report();
    }
    fclose(f);
    run_file(dir, "ggml-vocab-gpt-2.gguf", SH_TOK_BPE_BYTE);
    run_file(dir, "ggml-vocab-llama-bpe.gguf", SH_TOK_BPE_BYTE);
    run_file(dir, "ggml-vocab-llama-spm.gguf", SH_TOK_BPE_SPM);
    run_file(dir, "ggml-vocab-bert-bge.gguf", SH_TOK_WORDPIECE);
    return check_report();
}
