/* Helpers shared by the tokenizer tests: reading the vector files written by
 * tests/fixtures/gen_tokenizer_vectors.py (see its header for the formats). */
#ifndef TEST_TOKENIZER_COMMON_H
#define TEST_TOKENIZER_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct tv_lines {
    char *data;   /* the whole file, '\n' replaced by NUL */
    char **line;  /* (n) line starts */
    int n;
} tv_lines;

static inline int tv_read_lines(const char *path, tv_lines *out) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    out->data = malloc((size_t)n + 1);
    if (!out->data || fread(out->data, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        free(out->data);
        out->data = NULL;
        return 0;
    }
    fclose(f);
    out->data[n] = 0;
    int cap = 1024;
    out->line = malloc(sizeof(char *) * (size_t)cap);
    char *p = out->data, *end = out->data + n;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) nl = end;
        *nl = 0;
        if (out->n == cap) {
            cap *= 2;
            out->line = realloc(out->line, sizeof(char *) * (size_t)cap);
        }
        out->line[out->n++] = p;
        p = nl + 1;
    }
    return 1;
}

static inline void tv_free_lines(tv_lines *l) {
    free(l->data);
    free(l->line);
    memset(l, 0, sizeof *l);
}

/* Unescapes \\ \n \r \t \xHH in place; returns the byte length. */
static inline size_t tv_unescape(const char *in, char *out) {
    size_t o = 0;
    for (size_t i = 0; in[i];) {
        if (in[i] != '\\') {
            out[o++] = in[i++];
            continue;
        }
        char c = in[i + 1];
        if (c == 'n') out[o++] = '\n';
        else if (c == 'r') out[o++] = '\r';
        else if (c == 't') out[o++] = '\t';
        else if (c == '\\') out[o++] = '\\';
        else if (c == 'x') {
            unsigned v = 0;
            for (int k = 2; k < 4; k++) {
                char h = in[i + k];
                v = v * 16 + (unsigned)(h >= 'a' ? h - 'a' + 10 : h >= 'A' ? h - 'A' + 10 : h - '0');
            }
            out[o++] = (char)v;
            i += 4;
            continue;
        } else {
            out[o++] = c;
        }
        i += 2;
    }
    out[o] = 0;
    return o;
}

/* Parses space-separated ids; returns the count (malloc'd *ids). */
static inline int tv_parse_ids(const char *s, int32_t **ids) {
    int cap = 64, n = 0;
    *ids = malloc(sizeof(int32_t) * (size_t)cap);
    const char *p = s;
    for (;;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p) break;
        if (n == cap) {
            cap *= 2;
            *ids = realloc(*ids, sizeof(int32_t) * (size_t)cap);
        }
        (*ids)[n++] = (int32_t)v;
        p = end;
    }
    return n;
}

static inline int tv_ids_equal(const int32_t *a, int na, const int32_t *b, int nb) {
    return na == nb && (na == 0 || memcmp(a, b, sizeof(int32_t) * (size_t)na) == 0);
}

static inline void tv_print_ids(const char *what, const int32_t *v, int n) {
    fprintf(stderr, "  %s (%d):", what, n);
    for (int i = 0; i < n && i < 80; i++) fprintf(stderr, " %d", v[i]);
    fprintf(stderr, n > 80 ? " ...\n" : "\n");
}

#endif
