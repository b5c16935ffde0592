/* libFuzzer target for the tokenizers. The first input byte picks a mode:
 *   0..6   encode the rest with one of the committed fixture tokenizers
 *          (bit 7: add special tokens), decode the ids back, stream them
 *          through an sh_detok, and decode the rest read as raw ids
 *   7      load the rest as a tokenizer.json (then encode/decode with it)
 *   8      load the rest as a GGUF image and a tokenizer from its metadata
 *   9      render the rest as chat messages in every style
 * Fixtures come from $SHOAL_FIXTURES/tokenizers or, when unset, from the
 * source tree next to this file. Seeds: tests/fuzz/corpus/fuzz_tokenizer/
 * (written by tests/fixtures/gen_tokenizer_vectors.py). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "gguf.h"
#include "tokenizer.h"

static const char *const names[] = {"bpe_gpt2", "bpe_llama3", "bpe_qwen2", "bpe_smollm", "spm", "wordpiece", "minilm"};
#define N_TOK 7
static sh_tokenizer *toks[N_TOK];

static void load_fixtures(void) {
    char dir[1024];
    const char *fx = getenv("SHOAL_FIXTURES");
    if (fx && *fx) {
        snprintf(dir, sizeof dir, "%s/tokenizers", fx);
    } else {
        /* __FILE__ is .../tests/fuzz/fuzz_tokenizer.c */
        snprintf(dir, sizeof dir, "%s", __FILE__);
        char *s = strrchr(dir, '/');
        if (s) *s = 0;
        s = strrchr(dir, '/');
        if (s) *s = 0;
        strncat(dir, "/fixtures/tokenizers", sizeof dir - strlen(dir) - 1);
    }
    for (int i = 0; i < N_TOK; i++) {
        char p[1200];
        snprintf(p, sizeof p, "%s/%s/tokenizer.json", dir, names[i]);
        if (sh_tokenizer_load_json(p, &toks[i]) != SHOAL_OK) {
            fprintf(stderr, "fuzz_tokenizer: cannot load %s: %s\n", p, shoal_last_error());
            abort();
        }
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    load_fixtures();
    return 0;
}

static void exercise(const sh_tokenizer *t, const uint8_t *data, size_t size, int special) {
    int32_t *ids = NULL;
    int n = 0;
    if (sh_tokenizer_encode(t, (const char *)data, size, special, &ids, &n) != SHOAL_OK) abort();
    int nv = sh_tokenizer_n_vocab(t);
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= nv) abort();
    char *text = NULL;
    size_t len = 0;
    if (sh_tokenizer_decode(t, ids, n, 0, &text, &len) != SHOAL_OK) abort();
    /* streaming gives the same bytes */
    sh_detok *d;
    if (sh_detok_create(t, 0, &d) != SHOAL_OK) abort();
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        const char *s;
        size_t sl;
        if (sh_detok_push(d, ids[i], &s, &sl) != SHOAL_OK) abort();
        if (at + sl > len || memcmp(text + at, s, sl) != 0) abort();
        at += sl;
    }
    const char *s;
    size_t sl;
    sh_detok_flush(d, &s, &sl);
    if (at + sl != len || memcmp(text + at, s, sl) != 0) abort();
    sh_detok_free(d);
    free(text);
    free(ids);
    /* the raw bytes as ids */
    int m = (int)(size / 2);
    int32_t *raw = malloc(sizeof(int32_t) * (size_t)(m ? m : 1));
    for (int i = 0; i < m; i++) raw[i] = (int32_t)((data[2 * i] | data[2 * i + 1] << 8) % (unsigned)nv);
    if (sh_tokenizer_decode(t, raw, m, special, &text, &len) != SHOAL_OK) abort();
    if (strlen(text) > len) abort();
    free(text);
    for (int i = 0; i < m && i < 4; i++) {
        char piece[8];
        sh_tokenizer_token_to_piece(t, raw[i], piece, sizeof piece);
    }
    free(raw);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int mode = data[0] & 0x7F, special = data[0] >> 7;
    data++;
    size--;
    if (mode < N_TOK) {
        exercise(toks[mode], data, size, special);
    } else if (mode == 7) {
        sh_tokenizer *t;
        if (sh_tokenizer_load_json_buffer((const char *)data, size, NULL, 0, &t) == SHOAL_OK) {
            exercise(t, (const uint8_t *)"Hello, world! \xC3\xA9 \xE4\xB8\xAD 123 \xFF", 25, special);
            sh_tokenizer_free(t);
        } else if (!shoal_last_error()[0]) {
            abort(); /* a failure always says why */
        }
    } else if (mode == 8) {
        sh_gguf *g;
        if (sh_gguf_open_memory(data, size, &g) == SHOAL_OK) {
            sh_tokenizer *t;
            if (sh_tokenizer_load_gguf(g, &t) == SHOAL_OK) {
                sh_gguf_close(g);
                exercise(t, (const uint8_t *)"Hello, world! \xC3\xA9 \xE4\xB8\xAD 123 \xFF", 25, special);
                sh_tokenizer_free(t);
            } else {
                sh_gguf_close(g);
            }
        }
    } else if (mode == 9) {
        /* NUL-separated role/content pairs */
        char *copy = malloc(size + 1);
        memcpy(copy, data, size);
        copy[size] = 0;
        sh_chat_msg msgs[8];
        int n = 0;
        char *p = copy, *end = copy + size;
        while (n < 8 && p < end) {
            msgs[n].role = p;
            p += strlen(p) + 1;
            if (p >= end) break;
            msgs[n].content = p;
            p += strlen(p) + 1;
            n++;
        }
        for (int st = SH_CHAT_PLAIN; st <= SH_CHAT_ZEPHYR; st++) {
            char *out;
            if (sh_chat_format((sh_chat_style)st, msgs, n, special, &out) == SHOAL_OK) free(out);
        }
        sh_chat_style_detect(copy);
        free(copy);
    }
    return 0;
}
