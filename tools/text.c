/* Text in and out: shoal tokenize, run -p, embed --text/--file, chat.
 * The tokenizer comes from the model path itself (GGUF metadata, or
 * tokenizer.json in a Hugging Face folder). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "cli.h"
#include "tokenizer.h"

static int load_tok(const cli_opts *o, sh_tokenizer **t) {
    if (!o->model) return cli_die("%s", "-m PATH is required");
    if (sh_tokenizer_load(o->model, t) != SHOAL_OK) return cli_fail("tokenizer");
    return 0;
}

/* ============================================================================
 * shoal tokenize -m PATH --text "..." [--no-special]
 * ========================================================================== */

int cli_cmd_tokenize(int argc, char **argv) {
    cli_opts o;
    if (cli_parse(argc, argv, &o)) return 1;
    if (!o.text) return cli_die("%s", "tokenize needs --text");
    sh_tokenizer *t;
    if (load_tok(&o, &t)) return 1;
    int32_t *ids;
    int n;
    int rc = 0;
    if (sh_tokenizer_encode(t, o.text, strlen(o.text), !o.no_special, &ids, &n) != SHOAL_OK) {
        rc = cli_fail("tokenize");
    } else {
        for (int i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        printf("\n");
        free(ids);
    }
    sh_tokenizer_free(t);
    return rc;
}

/* ============================================================================
 * Streaming generation shared by run -p and chat
 * ========================================================================== */

typedef struct stream {
    sh_detok *d;
    FILE *out;
    int bad;
} stream;

static int on_token(int32_t id, void *user) {
    stream *s = user;
    const char *txt;
    size_t len;
    if (sh_detok_push(s->d, id, &txt, &len) != SHOAL_OK) {
        s->bad = 1;
        return 1;
    }
    fwrite(txt, 1, len, s->out);
    fflush(s->out);
    return 0;
}

static void fill_sampling(const cli_opts *o, shoal_sampling_params *sp, const int32_t *stop, int n_stop) {
    shoal_sampling_params_init(sp);
    sp->temperature = (float)o->temp;
    sp->top_k = o->top_k;
    sp->top_p = (float)o->top_p;
    sp->min_p = (float)o->min_p;
    sp->repetition_penalty = (float)o->repeat_penalty;
    sp->seed = o->seed;
    sp->stop_ids = stop;
    sp->n_stop_ids = n_stop;
    sp->stop_at_eos = !o->ignore_eos;
}

int cli_run_text(const cli_opts *o) {
    sh_tokenizer *t = NULL;
    shoal_model *m = NULL;
    shoal_context *c = NULL;
    sh_detok *d = NULL;
    int32_t *ids = NULL, *out = NULL, stop[16];
    int n = 0, rc = 1;
    if (load_tok(o, &t)) goto done;
    if (sh_tokenizer_encode(t, o->prompt, strlen(o->prompt), !o->no_special, &ids, &n) != SHOAL_OK) {
        cli_fail("tokenize");
        goto done;
    }
    if (n == 0) {
        cli_die("%s", "the prompt is empty after tokenization");
        goto done;
    }
    if (cli_load(o, &m)) goto done;
    if (sh_tokenizer_n_vocab(t) > 0) {
        shoal_model_info info;
        shoal_model_get_info(m, &info);
        if (sh_tokenizer_n_vocab(t) > info.n_vocab) {
            cli_die("%s: the tokenizer's vocabulary is larger than the model's", o->model);
            goto done;
        }
    }
    if (shoal_context_create(m, NULL, &c) != SHOAL_OK || sh_detok_create(t, SH_DETOK_SKIP_SPECIAL | SH_DETOK_KEEP_LEADING_SPACE, &d) != SHOAL_OK) {
        cli_fail("context");
        goto done;
    }
    int n_stop = o->ignore_eos ? 0 : sh_tokenizer_eog_ids(t, stop, 16);
    if (n_stop > 16) n_stop = 16;
    shoal_sampling_params sp;
    fill_sampling(o, &sp, stop, n_stop);
    out = malloc((size_t)(o->n_predict > 0 ? o->n_predict : 1) * sizeof *out);
    if (!out) {
        cli_die("%s", "out of memory");
        goto done;
    }
    stream st = {d, stdout, 0};
    if (o->echo) fputs(o->prompt, stdout);
    int n_out = 0;
    double t0 = cli_now();
    shoal_status s = shoal_generate(c, ids, n, &sp, o->n_predict, out, &n_out, on_token, &st);
    double dt = cli_now() - t0;
    const char *tail;
    size_t tl;
    if (sh_detok_flush(d, &tail, &tl) == SHOAL_OK) fwrite(tail, 1, tl, stdout);
    printf("\n");
    fflush(stdout);
    if (s != SHOAL_OK) {
        cli_fail("run");
        goto done;
    }
    fprintf(stderr, "[prompt %d tokens, generated %d tokens, %.1f tok/s]\n", n, n_out, dt > 0 ? n_out / dt : 0.0);
    rc = 0;
done:
    free(ids);
    free(out);
    sh_detok_free(d);
    shoal_context_free(c);
    shoal_model_free(m);
    sh_tokenizer_free(t);
    return rc;
}

/* ============================================================================
 * shoal embed --text / --file
 * ========================================================================== */

static int embed_one(shoal_context *c, const sh_tokenizer *t, const char *text, int n_ctx, float *emb) {
    int32_t *ids;
    int n;
    if (sh_tokenizer_encode(t, text, strlen(text), 1, &ids, &n) != SHOAL_OK) return cli_fail("tokenize");
    if (n > n_ctx) { /* encoders see at most their position table: truncate, keeping the final [SEP] */
        ids[n_ctx - 1] = ids[n - 1];
        n = n_ctx;
    }
    int rc = 0;
    if (n == 0) rc = cli_die("%s", "empty input after tokenization");
    else if (shoal_encode(c, ids, n, NULL, emb) != SHOAL_OK) rc = cli_fail("embed");
    free(ids);
    return rc;
}

static void print_json_vec(FILE *f, const float *v, int n) {
    fputc('[', f);
    for (int i = 0; i < n; i++) fprintf(f, i ? ",%.8g" : "%.8g", (double)v[i]);
    fputc(']', f);
}

int cli_embed_text(const cli_opts *o) {
    sh_tokenizer *t = NULL;
    shoal_model *m = NULL;
    shoal_context *c = NULL;
    float *emb = NULL;
    FILE *in = NULL, *out = stdout;
    char *line = NULL;
    size_t cap = 0;
    int rc = 1;
    int json = !o->format || !strcmp(o->format, "json");
    if (o->format && strcmp(o->format, "json") && strcmp(o->format, "f32")) {
        cli_die("unknown format '%s' (json, f32)", o->format);
        goto done;
    }
    if (!json && !o->out) {
        cli_die("%s", "--format f32 needs --out FILE");
        goto done;
    }
    if (load_tok(o, &t) || cli_load(o, &m)) goto done;
    shoal_model_info info;
    shoal_model_get_info(m, &info);
    if (!info.is_encoder) {
        cli_die("%s is not an encoder model", o->model);
        goto done;
    }
    if (shoal_context_create(m, NULL, &c) != SHOAL_OK) {
        cli_fail("context");
        goto done;
    }
    emb = malloc((size_t)info.n_embd * sizeof *emb);
    if (!emb) goto done;
    if (o->out && !(out = fopen(o->out, json ? "w" : "wb"))) {
        fprintf(stderr, "shoal: %s: %s\n", o->out, strerror(errno));
        out = stdout;
        goto done;
    }
    if (o->text) {
        if (embed_one(c, t, o->text, info.n_ctx, emb)) goto done;
        if (json) {
            print_json_vec(out, emb, info.n_embd);
            fputc('\n', out);
        } else if (fwrite(emb, sizeof *emb, (size_t)info.n_embd, out) != (size_t)info.n_embd) {
            cli_die("%s", "write failed");
            goto done;
        }
    } else {
        if (!(in = fopen(o->file, "r"))) {
            fprintf(stderr, "shoal: %s: %s\n", o->file, strerror(errno));
            goto done;
        }
        ssize_t len;
        int k = 0;
        while ((len = getline(&line, &cap, in)) >= 0) {
            while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
            if (embed_one(c, t, line, info.n_ctx, emb)) {
                fprintf(stderr, "shoal: (line %d)\n", k + 1);
                goto done;
            }
            if (json) {
                print_json_vec(out, emb, info.n_embd);
                fputc('\n', out);
            } else if (fwrite(emb, sizeof *emb, (size_t)info.n_embd, out) != (size_t)info.n_embd) {
                cli_die("%s", "write failed");
                goto done;
            }
            k++;
        }
    }
    rc = 0;
done:
    if (out && out != stdout && fclose(out) != 0) rc = cli_die("%s", "write failed");
    if (in) fclose(in);
    free(line);
    free(emb);
    shoal_context_free(c);
    shoal_model_free(m);
    sh_tokenizer_free(t);
    return rc;
}

/* ============================================================================
 * shoal chat -m PATH [--template NAME] [--system TEXT]
 * ========================================================================== */

int cli_cmd_chat(int argc, char **argv) {
    cli_opts o;
    if (cli_parse(argc, argv, &o)) return 1;
    if (o.n_predict == 16) o.n_predict = 512; /* a chat reply, not a probe */
    sh_tokenizer *t = NULL;
    shoal_model *m = NULL;
    shoal_context *c = NULL;
    sh_detok *d = NULL;
    sh_chat_msg *msgs = NULL;
    int n_msgs = 0, cap_msgs = 0, rc = 1;
    int32_t *kv = NULL, *out = NULL, stop[16];
    int n_kv = 0;
    char *line = NULL;
    size_t lcap = 0;
    if (load_tok(&o, &t) || cli_load(&o, &m)) goto done;
    sh_tokenizer_info ti;
    sh_tokenizer_get_info(t, &ti);
    sh_chat_style style = sh_chat_style_detect(ti.chat_template);
    if (o.chat_template && sh_chat_style_from_name(o.chat_template, &style) != SHOAL_OK) {
        cli_fail("chat");
        goto done;
    }
    if (shoal_context_create(m, NULL, &c) != SHOAL_OK || sh_detok_create(t, SH_DETOK_SKIP_SPECIAL, &d) != SHOAL_OK) {
        cli_fail("context");
        goto done;
    }
    int n_stop = sh_tokenizer_eog_ids(t, stop, 16);
    if (n_stop > 16) n_stop = 16;
    shoal_sampling_params sp;
    fill_sampling(&o, &sp, stop, n_stop);
    out = malloc((size_t)o.n_predict * sizeof *out);
    if (!out) goto done;
    if (o.system) {
        cap_msgs = 16;
        msgs = malloc((size_t)cap_msgs * sizeof *msgs);
        if (!msgs) goto done;
        msgs[n_msgs++] = (sh_chat_msg){"system", strdup(o.system)};
    }
    fprintf(stderr, "shoal chat (%s template); end with Ctrl-D\n", sh_chat_style_name(style));
    for (;;) {
        fprintf(stderr, "> ");
        ssize_t len = getline(&line, &lcap, stdin);
        if (len < 0) break;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (len == 0) continue;
        if (n_msgs + 2 > cap_msgs) {
            cap_msgs = cap_msgs ? cap_msgs * 2 : 16;
            sh_chat_msg *nm = realloc(msgs, (size_t)cap_msgs * sizeof *nm);
            if (!nm) goto done;
            msgs = nm;
        }
        msgs[n_msgs++] = (sh_chat_msg){"user", strdup(line)};
        char *prompt;
        if (sh_chat_format(style, msgs, n_msgs, 1, &prompt) != SHOAL_OK) {
            cli_fail("chat");
            n_msgs--;
            free((char *)msgs[n_msgs].content);
            continue;
        }
        int32_t *ids;
        int n;
        shoal_status s = sh_tokenizer_encode(t, prompt, strlen(prompt), 0, &ids, &n);
        free(prompt);
        if (s != SHOAL_OK) {
            cli_fail("tokenize");
            goto done;
        }
        /* reuse the KV cache when the history is a prefix of the new prompt */
        int same = n_kv <= n;
        for (int i = 0; same && i < n_kv; i++) same = kv[i] == ids[i];
        if (!same || n_kv == n) {
            shoal_context_reset(c);
            n_kv = 0;
        }
        int n_out = 0;
        stream st = {d, stdout, 0};
        sh_detok_reset(d);
        s = shoal_generate(c, ids + n_kv, n - n_kv, &sp, o.n_predict, out, &n_out, on_token, &st);
        const char *tail;
        size_t tl;
        if (sh_detok_flush(d, &tail, &tl) == SHOAL_OK) fwrite(tail, 1, tl, stdout);
        printf("\n");
        fflush(stdout);
        if (s != SHOAL_OK) {
            cli_fail("chat");
            free(ids);
            goto done;
        }
        /* the context now holds ids + every generated token but the last */
        free(kv);
        kv = malloc((size_t)(n + n_out) * sizeof *kv);
        if (!kv) {
            free(ids);
            goto done;
        }
        memcpy(kv, ids, (size_t)n * sizeof *kv);
        memcpy(kv + n, out, (size_t)(n_out > 0 ? n_out - 1 : 0) * sizeof *kv);
        n_kv = n + (n_out > 0 ? n_out - 1 : 0);
        free(ids);
        char *reply;
        int keep = n_out;
        if (keep > 0 && sh_tokenizer_is_eog(t, out[keep - 1])) keep--;
        if (sh_tokenizer_decode(t, out, keep, 1, &reply, NULL) != SHOAL_OK) reply = strdup("");
        msgs[n_msgs++] = (sh_chat_msg){"assistant", reply};
    }
    rc = 0;
done:
    for (int i = 0; i < n_msgs; i++) free((char *)msgs[i].content);
    free(msgs);
    free(line);
    free(kv);
    free(out);
    sh_detok_free(d);
    shoal_context_free(c);
    shoal_model_free(m);
    sh_tokenizer_free(t);
    return rc;
}
