/* Tokenizer edge cases: broken tokenizer.json files give clear errors, empty
 * and megabyte inputs, invalid UTF-8, unknown special tokens, streaming
 * detokenisation of partial UTF-8, vocabulary accessors, bad arguments. */
#include <string.h>
#include <time.h>

#include "check.h"
#include "test_tokenizer_common.h"
#include "tokenizer.h"

static char fxdir[1024];

static sh_tokenizer *load(const char *name) {
    char p[1200];
    snprintf(p, sizeof p, "%s/%s/tokenizer.json", fxdir, name);
    sh_tokenizer *t = NULL;
    shoal_status st = sh_tokenizer_load_json(p, &t);
    CHECK(st == SHOAL_OK, "load %s: %s", name, shoal_last_error());
    return t;
}

static int enc(const sh_tokenizer *t, const char *s, size_t n, int special, int32_t *out, int cap) {
    int32_t *ids = NULL;
    int k = 0;
    if (sh_tokenizer_encode(t, s, n, special, &ids, &k) != SHOAL_OK) return -1;
    for (int i = 0; i < k && i < cap; i++) out[i] = ids[i];
    free(ids);
    return k;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- broken tokenizer.json ---------------------------------------------- */

static void test_broken_json(void) {
    static const struct { const char *json, *want; } bad[] = {
        {"", "not valid JSON"},
        {"{", "not valid JSON"},
        {"[]", "not a JSON object"},
        {"{}", "model: missing"},
        {"{\"model\":{}}", "not supported"},
        {"{\"model\":{\"type\":\"Unigram\",\"vocab\":[]}}", "Unigram"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{}}}", "empty"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":[1,2]}}", "model.vocab"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-1}}}", "out of range"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":1e300}}}", "out of range"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0.5}}}", "out of range"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":\"x\"}}}", "not a number"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"a b\"]}}", "not in the vocabulary"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"ab\"]}}", "is not \"a b\""},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[3]}}", "not a string pair"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":{}}}", "not a list"},
        {"{\"model\":{\"type\":\"WordPiece\",\"vocab\":{\"a\":0}}}", "unk_token"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}},\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":"
         "{\"Regex\":\"\\\\w+\"},\"behavior\":\"Isolated\",\"invert\":false}}",
         "not one of the known"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}},\"normalizer\":{\"type\":\"NFKC\"}}", "NFKC"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}},\"pre_tokenizer\":{\"type\":\"Whitespace\"}}", "Whitespace"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}},\"decoder\":{\"type\":\"CTC\"}}", "CTC"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}},\"post_processor\":{\"type\":\"TemplateProcessing\","
         "\"single\":[{\"SpecialToken\":{\"id\":\"X\"}}],\"special_tokens\":{}}}",
         "has no ids"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}},\"post_processor\":{\"type\":\"BertProcessing\","
         "\"cls\":[\"a\",7],\"sep\":[\"a\",0]}}",
         "bad id"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}},\"added_tokens\":[{\"content\":\"x\"}]}", "without id"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}},\"normalizer\":{\"type\":\"Sequence\"}}", "normalizers"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"continuing_subword_prefix\":\"##\"}}",
         "continuing_subword_prefix"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sh_tokenizer *t = (sh_tokenizer *)1;
        shoal_status st = sh_tokenizer_load_json_buffer(bad[i].json, strlen(bad[i].json), NULL, 0, &t);
        const char *msg = shoal_last_error();
        CHECK(st != SHOAL_OK && t == NULL, "broken json %zu accepted", i);
        CHECK(strstr(msg, bad[i].want) != NULL, "broken json %zu: message \"%s\" lacks \"%s\"", i, msg, bad[i].want);
    }
    /* a bad tokenizer_config.json */
    const char *ok = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}}}";
    sh_tokenizer *t;
    CHECK(sh_tokenizer_load_json_buffer(ok, strlen(ok), "[1]", 3, &t) == SHOAL_ERR_FORMAT, "bad config accepted");
    CHECK(strstr(shoal_last_error(), "tokenizer_config.json") != NULL, "config message: %s", shoal_last_error());
    /* missing file */
    CHECK(sh_tokenizer_load_json("/nonexistent/tokenizer.json", &t) == SHOAL_ERR_IO && !t, "missing file");
    CHECK(strstr(shoal_last_error(), "/nonexistent/tokenizer.json") != NULL, "missing file message: %s",
          shoal_last_error());
    CHECK(sh_tokenizer_load("/nonexistent", &t) == SHOAL_ERR_IO, "missing path");
    /* every truncation of a real file fails cleanly */
    char p[1200];
    snprintf(p, sizeof p, "%s/bpe_gpt2/tokenizer.json", fxdir);
    FILE *f = fopen(p, "rb");
    CHECK(f != NULL, "open %s", p);
    if (f) {
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 0, SEEK_SET);
        char *b = malloc((size_t)n);
        CHECK(fread(b, 1, (size_t)n, f) == (size_t)n, "read");
        fclose(f);
        int fails = 0;
        for (long cut = 0; cut < n; cut += n / 97 + 1) {
            shoal_status st = sh_tokenizer_load_json_buffer(b, (size_t)cut, NULL, 0, &t);
            fails += st != SHOAL_OK;
            sh_tokenizer_free(t);
        }
        CHECK(fails == 98 || fails == 97, "truncated files: %d of ~98 failed", fails);
        CHECK(sh_tokenizer_load_json_buffer(b, (size_t)n, NULL, 0, &t) == SHOAL_OK, "whole file: %s",
              shoal_last_error());
        sh_tokenizer_free(t);
        free(b);
    }
}

/* ---- a hand-made tokenizer ---------------------------------------------- */

static void test_tiny(void) {
    const char *j = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2,\"c\":3,\"abc\":4,\"<u>\":5},"
                    "\"merges\":[\"a b\",\"ab c\"],\"unk_token\":\"<u>\",\"fuse_unk\":true},"
                    "\"added_tokens\":[{\"id\":6,\"content\":\"<X>\",\"special\":true},"
                    "{\"id\":7,\"content\":\"<Y>\",\"special\":false,\"lstrip\":true,\"rstrip\":true}]}";
    sh_tokenizer *t;
    shoal_status st = sh_tokenizer_load_json_buffer(j, strlen(j), NULL, 0, &t);
    CHECK(st == SHOAL_OK, "tiny: %s", shoal_last_error());
    if (st != SHOAL_OK) return;
    int32_t v[16];
    int n = enc(t, "abcab", 5, 0, v, 16);
    CHECK(n == 2 && v[0] == 4 && v[1] == 2, "abcab -> %d ids", n);
    n = enc(t, "xyab", 4, 0, v, 16); /* unknown characters fused into one <u> */
    CHECK(n == 2 && v[0] == 5 && v[1] == 2, "xyab -> %d ids (%d %d)", n, v[0], v[1]);
    n = enc(t, "a<X>b", 5, 0, v, 16);
    CHECK(n == 3 && v[0] == 0 && v[1] == 6 && v[2] == 1, "added special token in text");
    n = enc(t, "a  <Y>  b", 9, 0, v, 16); /* lstrip/rstrip eat the spaces */
    CHECK(n == 3 && v[0] == 0 && v[1] == 7 && v[2] == 1, "lstrip/rstrip: %d ids", n);
    n = enc(t, "<Z>", 3, 0, v, 16); /* not a token: plain text, unknown characters fused */
    CHECK(n == 1 && v[0] == 5, "unknown special: %d ids", n);
    CHECK(sh_tokenizer_n_vocab(t) == 8, "n_vocab %d", sh_tokenizer_n_vocab(t));
    CHECK(sh_tokenizer_token_id(t, "abc", 3) == 4 && sh_tokenizer_token_id(t, "zz", 2) == -1, "token_id");
    CHECK(sh_tokenizer_is_special(t, 6) && !sh_tokenizer_is_special(t, 7) && !sh_tokenizer_is_special(t, 99),
          "is_special");
    char *text;
    size_t len;
    int32_t ids[] = {4, 6, 2};
    CHECK(sh_tokenizer_decode(t, ids, 3, 0, &text, &len) == SHOAL_OK && !strcmp(text, "abc <X> ab"),
          "no decoder joins with spaces: \"%s\"", text);
    free(text);
    CHECK(sh_tokenizer_decode(t, ids, 3, 1, &text, &len) == SHOAL_OK && !strcmp(text, "abc ab"), "skip: \"%s\"",
          text);
    free(text);
    sh_tokenizer_free(t);
}

/* ---- inputs --------------------------------------------------------------- */

static void test_inputs(void) {
    static const char *names[] = {"bpe_gpt2", "bpe_llama3", "bpe_qwen2", "bpe_smollm", "spm", "wordpiece", "minilm"};
    /* megabyte inputs: mixed text and pathological repetitions */
    size_t big = 4u << 20;
    char *buf = malloc(big + 16);
    {
        /* mixed: cycle through the committed test strings */
        char p[1200];
        snprintf(p, sizeof p, "%s/vectors/strings.txt", fxdir);
        tv_lines L;
        CHECK(tv_read_lines(p, &L), "strings.txt");
        size_t n = 0;
        char tmp[65536];
        for (int i = 0; n < big - 70000; i = (i + 1) % L.n) {
            if (strlen(L.line[i]) >= sizeof tmp) continue;
            size_t k = tv_unescape(L.line[i], tmp);
            memcpy(buf + n, tmp, k);
            n += k;
            buf[n++] = '\n';
        }
        big = n;
        tv_free_lines(&L);
    }
    static const char *pats[] = {"a", " ", "  x", "7", "\xE4\xB8\xAD", "\n", "\xC3\xA9", "\xFF", "<s>", "'s", "\xF0\x9F\x98",
                                 "\t\r\n ", "\xE2\x96\x81"};
    size_t pn = 1u << 20;
    char *pb = malloc(pn + 8);
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        sh_tokenizer *t = load(names[k]);
        if (!t) continue;
        int32_t *ids;
        int n;
        double t0 = now();
        shoal_status st = sh_tokenizer_encode(t, buf, big, 0, &ids, &n);
        double dt = now() - t0;
        CHECK(st == SHOAL_OK && n > 100000, "%s: %zu bytes of text: %s", names[k], big, shoal_last_error());
        CHECK(dt < 30, "%s: %zu bytes took %.1f s", names[k], big, dt);
        if (st == SHOAL_OK) {
            char *back;
            size_t bl;
            CHECK(sh_tokenizer_decode(t, ids, n, 0, &back, &bl) == SHOAL_OK && bl > 0, "%s: big decode", names[k]);
            free(back);
        }
        free(ids);
        for (size_t q = 0; q < sizeof pats / sizeof pats[0]; q++) {
            size_t L = strlen(pats[q]), m = 0;
            while (m + L <= pn) {
                memcpy(pb + m, pats[q], L);
                m += L;
            }
            t0 = now();
            st = sh_tokenizer_encode(t, pb, m, 1, &ids, &n);
            dt = now() - t0;
            CHECK(st == SHOAL_OK && n >= 1, "%s: 1 MB of pattern %zu: %s", names[k], q, shoal_last_error());
            CHECK(dt < 10, "%s: 1 MB of pattern %zu took %.1f s", names[k], q, dt);
            for (int i = 0; st == SHOAL_OK && i < n; i++)
                if (ids[i] < 0 || ids[i] >= sh_tokenizer_n_vocab(t)) {
                    CHECK(0, "%s: id %d out of range", names[k], ids[i]);
                    break;
                }
            free(ids);
        }
        /* empty input */
        ids = (int32_t *)1;
        st = sh_tokenizer_encode(t, NULL, 0, 0, &ids, &n);
        CHECK(st == SHOAL_OK && n == 0 && ids != NULL, "%s: empty", names[k]);
        free(ids);
        /* invalid UTF-8 gives the ids of the U+FFFD-replaced text */
        int32_t a[64], b[64];
        int na = enc(t, "ab\xC3(\xE2\x82 \xF0\x9F\x98x\xFF", 12, 0, a, 64);
        const char *repl = "ab\xEF\xBF\xBD(\xEF\xBF\xBD \xEF\xBF\xBDx\xEF\xBF\xBD";
        int nb = enc(t, repl, strlen(repl), 0, b, 64);
        CHECK(na > 0 && na == nb && memcmp(a, b, sizeof(int32_t) * (size_t)na) == 0, "%s: lossy input", names[k]);
        /* a NUL byte inside the text is text */
        na = enc(t, "a\0b", 3, 0, a, 64);
        CHECK(na >= 1, "%s: NUL inside text", names[k]);
        /* bad arguments */
        CHECK(sh_tokenizer_encode(t, NULL, 5, 0, &ids, &n) == SHOAL_ERR_INVALID_ARG && ids == NULL && n == 0,
              "%s: NULL text", names[k]);
        char *txt = (char *)1;
        int32_t bad[] = {0, sh_tokenizer_n_vocab(t)};
        CHECK(sh_tokenizer_decode(t, bad, 2, 0, &txt, NULL) == SHOAL_ERR_INVALID_ARG && txt == NULL, "%s: bad id",
              names[k]);
        CHECK(strstr(shoal_last_error(), "outside the vocabulary") != NULL, "bad id message: %s", shoal_last_error());
        bad[1] = -1;
        CHECK(sh_tokenizer_decode(t, bad, 2, 0, &txt, NULL) == SHOAL_ERR_INVALID_ARG, "%s: negative id", names[k]);
        CHECK(sh_tokenizer_decode(t, NULL, 0, 0, &txt, NULL) == SHOAL_OK && txt && !*txt, "%s: decode nothing",
              names[k]);
        free(txt);
        CHECK(sh_tokenizer_token_text(t, -1, NULL) == NULL && sh_tokenizer_token_to_piece(t, 1 << 30, NULL, 0) == -1,
              "%s: accessors with bad ids", names[k]);
        sh_tokenizer_free(t);
    }
    free(pb);
    free(buf);
    sh_tokenizer_free(NULL);
}

/* ---- streaming ------------------------------------------------------------ */

static void test_stream(void) {
    sh_tokenizer *t = load("bpe_gpt2");
    if (!t) return;
    const char *text = "emoji 😶‍🌫️ and 中文 ok";
    int32_t *ids;
    int n;
    CHECK(sh_tokenizer_encode(t, text, strlen(text), 0, &ids, &n) == SHOAL_OK, "encode");
    sh_detok *d;
    CHECK(sh_detok_create(t, 0, &d) == SHOAL_OK, "detok");
    char acc[256];
    size_t an = 0;
    int held = 0;
    for (int i = 0; i < n; i++) {
        const char *s;
        size_t sl;
        CHECK(sh_detok_push(d, ids[i], &s, &sl) == SHOAL_OK, "push");
        char piece[64];
        int pl = sh_tokenizer_token_to_piece(t, ids[i], piece, sizeof piece);
        held += (size_t)pl != sl;
        /* each chunk is whole UTF-8 */
        size_t k = 0;
        while (k < sl) {
            unsigned c = (unsigned char)s[k];
            size_t w = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
            CHECK(c < 0x80 || c >= 0xC0, "chunk starts inside a character");
            k += w;
        }
        CHECK(k == sl, "chunk ends inside a character");
        memcpy(acc + an, s, sl);
        an += sl;
    }
    CHECK(held > 0, "byte-level pieces of multi-byte characters are held back (%d)", held);
    const char *s;
    size_t sl;
    sh_detok_flush(d, &s, &sl);
    CHECK(sl == 0, "nothing left");
    CHECK(an == strlen(text) && memcmp(acc, text, an) == 0, "stream \"%.*s\"", (int)an, acc);
    free(ids);
    /* a lone lead byte: held, then U+FFFD on flush */
    int32_t lead = sh_tokenizer_token_id(t, "\xC3\xB0", 2); /* 'ð' is byte 0xF0 */
    CHECK(lead >= 0, "byte token for 0xF0");
    CHECK(sh_detok_push(d, lead, &s, &sl) == SHOAL_OK && sl == 0, "lead byte held");
    sh_detok_flush(d, &s, &sl);
    CHECK(sl == 3 && !memcmp(s, "\xEF\xBF\xBD", 3), "flush -> U+FFFD");
    /* a lead byte then ASCII: U+FFFD then the ASCII at once */
    int32_t x = sh_tokenizer_token_id(t, "x", 1);
    sh_detok_push(d, lead, &s, &sl);
    CHECK(sh_detok_push(d, x, &s, &sl) == SHOAL_OK && sl == 4 && !memcmp(s, "\xEF\xBF\xBDx", 4), "invalid -> FFFD x");
    CHECK(sh_detok_push(d, 1 << 30, &s, &sl) == SHOAL_ERR_INVALID_ARG, "bad id");
    sh_detok_free(d);
    char piece[16];
    int32_t the = sh_tokenizer_token_id(t, "\xC4\xA0the", 5); /* "Ġthe" */
    CHECK(the < 0 || (sh_tokenizer_token_to_piece(t, the, piece, 16) == 4 && !memcmp(piece, " the", 4)), "Ġthe");
    CHECK(sh_tokenizer_token_to_piece(t, x, NULL, 0) == 1, "piece length without a buffer");
    sh_tokenizer_free(t);

    /* SentencePiece: byte pieces recombined; the leading space dropped only
     * at the start of a text */
    t = load("spm");
    if (!t) return;
    int32_t b0 = sh_tokenizer_token_id(t, "<0xE4>", 6), b1 = sh_tokenizer_token_id(t, "<0xB8>", 6),
            b2 = sh_tokenizer_token_id(t, "<0xAD>", 6), nl = sh_tokenizer_token_id(t, "<0x0A>", 6);
    CHECK(b0 >= 0 && b1 >= 0 && b2 >= 0 && nl >= 0, "byte tokens present");
    CHECK(sh_tokenizer_token_to_piece(t, nl, piece, 16) == 1 && piece[0] == '\n', "<0x0A> piece");
    CHECK(sh_detok_create(t, 0, &d) == SHOAL_OK, "detok");
    sh_detok_push(d, b0, &s, &sl);
    CHECK(sl == 0, "E4 held");
    sh_detok_push(d, b1, &s, &sl);
    CHECK(sl == 0, "B8 held");
    sh_detok_push(d, b2, &s, &sl);
    CHECK(sl == 3 && !memcmp(s, "\xE4\xB8\xAD", 3), "U+4E2D complete");
    sh_detok_free(d);
    int32_t hello = -1;
    {
        int32_t v[8];
        int k = enc(t, "the", 3, 0, v, 8);
        CHECK(k >= 1, "encode the");
        hello = v[0];
    }
    char *out;
    CHECK(sh_tokenizer_decode(t, &hello, 1, 0, &out, NULL) == SHOAL_OK && out[0] != ' ', "leading space dropped");
    free(out);
    CHECK(sh_detok_create(t, SH_DETOK_KEEP_LEADING_SPACE, &d) == SHOAL_OK, "detok");
    sh_detok_push(d, hello, &s, &sl);
    CHECK(sl >= 1 && s[0] == ' ', "continuation keeps its space");
    sh_detok_free(d);
    sh_tokenizer_info info;
    sh_tokenizer_get_info(t, &info);
    CHECK(info.add_bos && !info.add_eos && info.bos_id == 1 && info.eos_id == 2 && info.unk_id == 0,
          "spm info: bos %d eos %d unk %d", info.bos_id, info.eos_id, info.unk_id);
    CHECK(info.chat_template && strstr(info.chat_template, "[INST]"), "spm chat template");
    CHECK(sh_tokenizer_is_eog(t, 2) && !sh_tokenizer_is_eog(t, 1), "spm eog");
    sh_tokenizer_free(t);

    /* WordPiece pieces */
    t = load("minilm");
    if (!t) return;
    int32_t ing = sh_tokenizer_token_id(t, "##ing", 5);
    CHECK(ing >= 0 && sh_tokenizer_token_to_piece(t, ing, piece, 16) == 3 && !memcmp(piece, "ing", 3), "##ing");
    sh_tokenizer_get_info(t, &info);
    CHECK(info.family == SH_TOK_WORDPIECE && info.cls_id == 101 && info.sep_id == 102 && info.unk_id == 100 &&
              info.pad_id == 0 && info.mask_id == 103 && info.add_bos && info.add_eos,
          "minilm info");
    int32_t v[8];
    CHECK(enc(t, "", 0, 1, v, 8) == 2 && v[0] == 101 && v[1] == 102, "minilm empty with specials");
    sh_tokenizer_free(t);

    /* end of generation ids and chat templates of the byte-level fixtures */
    t = load("bpe_llama3");
    if (!t) return;
    int32_t eot = sh_tokenizer_token_id(t, "<|eot_id|>", 10), eot2 = sh_tokenizer_token_id(t, "<|end_of_text|>", 15);
    int32_t eog[8];
    int ne = sh_tokenizer_eog_ids(t, eog, 8);
    CHECK(ne >= 2 && sh_tokenizer_is_eog(t, eot) && sh_tokenizer_is_eog(t, eot2), "llama3 eog (%d)", ne);
    sh_tokenizer_get_info(t, &info);
    CHECK(!strcmp(info.pre, "llama3") && info.add_bos && info.bos_id == sh_tokenizer_token_id(t, "<|begin_of_text|>", 17),
          "llama3 info: pre %s", info.pre);
    sh_tokenizer_free(t);
    t = load("bpe_smollm");
    if (!t) return;
    sh_tokenizer_get_info(t, &info);
    CHECK(!strcmp(info.pre, "smollm") && !info.add_bos, "smollm pre %s", info.pre);
    CHECK(sh_tokenizer_is_eog(t, sh_tokenizer_token_id(t, "<|im_end|>", 10)), "smollm eog");
    sh_tokenizer_free(t);
    t = load("bpe_qwen2");
    if (!t) return;
    sh_tokenizer_get_info(t, &info);
    CHECK(!strcmp(info.pre, "qwen2") && info.bos_id == -1, "qwen2 pre %s bos %d", info.pre, info.bos_id);
    sh_tokenizer_free(t);

    /* sh_tokenizer_load: a folder and a GGUF file */
    char p[1200];
    snprintf(p, sizeof p, "%s/minilm", fxdir);
    CHECK(sh_tokenizer_load(p, &t) == SHOAL_OK, "load folder: %s", shoal_last_error());
    sh_tokenizer_free(t);
    snprintf(p, sizeof p, "%s/spm/vocab.gguf", fxdir);
    CHECK(sh_tokenizer_load(p, &t) == SHOAL_OK, "load gguf: %s", shoal_last_error());
    sh_tokenizer_free(t);
    snprintf(p, sizeof p, "%s/chat.json", fxdir);
    CHECK(sh_tokenizer_load(p, &t) != SHOAL_OK && strstr(shoal_last_error(), "chat.json"), "not a tokenizer: %s",
          shoal_last_error());
}

int main(void) {
    snprintf(fxdir, sizeof fxdir, "%s/tokenizers", check_env("SHOAL_FIXTURES", "tests/fixtures"));
    test_broken_json();
    test_tiny();
    test_inputs();
    test_stream();
    return check_report();
}
