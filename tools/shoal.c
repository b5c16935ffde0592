/* The shoal command line: thin wrappers over the library.
 *
 *   shoal info   -m PATH [--tensors]
 *   shoal logits -m PATH --tokens 1,2,3 [--device cpu] [--threads N] --out FILE
 *   shoal embed  -m PATH --tokens 1,2,3 [--out FILE] [--hidden FILE]
 *   shoal run    -m PATH --tokens 1,2,3 [-n 8] [--temp 0] [--top-k K] [--top-p P]
 *                [--min-p P] [--repeat-penalty R] [--seed S] [--stop 1,2] [--print-ids]
 *
 * Exit status 0 on success; otherwise 1 and one line on stderr.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "shoal.h"

/* ============================================================================
 * Argument helpers
 * ========================================================================== */

int cli_die(const char *fmt, const char *arg) {
    fprintf(stderr, "shoal: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    return 1;
}

int cli_fail(const char *what) {
    fprintf(stderr, "shoal: %s: %s\n", what, shoal_last_error());
    return 1;
}

int cli_parse_int(const char *s, long lo, long hi, long *out) {
    if (!s || !*s) return 0;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

int cli_parse_float(const char *s, double *out) {
    if (!s || !*s) return 0;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || v != v) return 0;
    *out = v;
    return 1;
}

/* "1,2,3" -> ids; returns count or -1 on a malformed list. */
int cli_parse_ids(const char *s, int32_t **ids) {
    *ids = NULL;
    if (!s || !*s) return -1;
    int n = 1;
    for (const char *p = s; *p; p++) n += *p == ',';
    int32_t *v = malloc((size_t)n * sizeof *v);
    if (!v) return -1;
    const char *p = s;
    for (int i = 0; i < n; i++) {
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (errno || end == p || x < 0 || x > INT32_MAX || (*end != ',' && *end != '\0')) {
            free(v);
            return -1;
        }
        v[i] = (int32_t)x;
        p = end + (*end == ',');
    }
    *ids = v;
    return n;
}

int cli_write_f32(const char *path, const float *x, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "shoal: %s: %s\n", path, strerror(errno));
        return 1;
    }
    size_t w = fwrite(x, sizeof *x, n, f);
    if (fclose(f) != 0 || w != n) {
        fprintf(stderr, "shoal: %s: write failed\n", path);
        return 1;
    }
    return 0;
}

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Common options: -m, --device, --threads, --tokens, --out, ... Unknown
 * options are an error. */
int cli_parse(int argc, char **argv, cli_opts *o) {
    memset(o, 0, sizeof *o);
    o->device = "cpu";
    o->n_predict = 16;
    o->temp = 0.0;
    o->top_p = 1.0;
    o->repeat_penalty = 1.0;
    o->seed = 0x5EED;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VALUE() \
    if (!v) return cli_die("option %s needs a value", a); \
    i++
        long lv;
        double dv;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) { NEED_VALUE(); o->model = v; }
        else if (!strcmp(a, "--device")) { NEED_VALUE(); o->device = v; }
        else if (!strcmp(a, "--threads") || !strcmp(a, "-t")) {
            NEED_VALUE();
            if (!cli_parse_int(v, 0, 1024, &lv)) return cli_die("bad thread count '%s'", v);
            o->threads = (int)lv;
        } else if (!strcmp(a, "--tokens")) { NEED_VALUE(); o->tokens = v; }
        else if (!strcmp(a, "--out") || !strcmp(a, "-o")) { NEED_VALUE(); o->out = v; }
        else if (!strcmp(a, "--hidden")) { NEED_VALUE(); o->hidden = v; }
        else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            NEED_VALUE();
            if (!cli_parse_int(v, 0, 1 << 20, &lv)) return cli_die("bad token count '%s'", v);
            o->n_predict = (int)lv;
        } else if (!strcmp(a, "--temp")) {
            NEED_VALUE();
            if (!cli_parse_float(v, &dv) || dv < 0) return cli_die("bad temperature '%s'", v);
            o->temp = dv;
        } else if (!strcmp(a, "--top-k")) {
            NEED_VALUE();
            if (!cli_parse_int(v, 0, 1 << 30, &lv)) return cli_die("bad top-k '%s'", v);
            o->top_k = (int)lv;
        } else if (!strcmp(a, "--top-p")) {
            NEED_VALUE();
            if (!cli_parse_float(v, &dv) || dv <= 0 || dv > 1) return cli_die("bad top-p '%s'", v);
            o->top_p = dv;
        } else if (!strcmp(a, "--min-p")) {
            NEED_VALUE();
            if (!cli_parse_float(v, &dv) || dv < 0 || dv > 1) return cli_die("bad min-p '%s'", v);
            o->min_p = dv;
        } else if (!strcmp(a, "--repeat-penalty")) {
            NEED_VALUE();
            if (!cli_parse_float(v, &dv) || dv <= 0) return cli_die("bad repetition penalty '%s'", v);
            o->repeat_penalty = dv;
        } else if (!strcmp(a, "--seed")) {
            NEED_VALUE();
            if (!cli_parse_int(v, 0, INT32_MAX, &lv)) return cli_die("bad seed '%s'", v);
            o->seed = (uint64_t)lv;
        } else if (!strcmp(a, "--stop")) { NEED_VALUE(); o->stop = v; }
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) { NEED_VALUE(); o->prompt = v; }
        else if (!strcmp(a, "--text")) { NEED_VALUE(); o->text = v; }
        else if (!strcmp(a, "--file")) { NEED_VALUE(); o->file = v; }
        else if (!strcmp(a, "--format")) { NEED_VALUE(); o->format = v; }
        else if (!strcmp(a, "--template")) { NEED_VALUE(); o->chat_template = v; }
        else if (!strcmp(a, "--system")) { NEED_VALUE(); o->system = v; }
        else if (!strcmp(a, "--no-special")) o->no_special = 1;
        else if (!strcmp(a, "--echo")) o->echo = 1;
        else if (!strcmp(a, "--print-ids")) o->print_ids = 1;
        else if (!strcmp(a, "--tensors")) o->tensors = 1;
        else if (!strcmp(a, "--ignore-eos")) o->ignore_eos = 1;
        else return cli_die("unknown option '%s'", a);
#undef NEED_VALUE
    }
    return 0;
}

int cli_load(const cli_opts *o, shoal_model **m) {
    if (!o->model) return cli_die("%s", "-m PATH is required");
    shoal_model_params mp;
    shoal_model_params_init(&mp);
    mp.device = o->device;
    mp.n_threads = o->threads;
    if (shoal_model_load(o->model, &mp, m) != SHOAL_OK) return cli_fail("load");
    return 0;
}

/* ============================================================================
 * Commands
 * ========================================================================== */

static int cmd_logits(int argc, char **argv) {
    cli_opts o;
    if (cli_parse(argc, argv, &o)) return 1;
    if (!o.tokens || !o.out) return cli_die("%s", "logits needs --tokens and --out");
    int32_t *ids;
    int n = cli_parse_ids(o.tokens, &ids);
    if (n < 1) return cli_die("bad token list '%s'", o.tokens);
    shoal_model *m = NULL;
    shoal_context *c = NULL;
    float *lg = NULL;
    int rc = 1;
    if (cli_load(&o, &m)) goto done;
    shoal_model_info info;
    shoal_model_get_info(m, &info);
    if (info.is_encoder) {
        cli_die("%s is an encoder: use shoal embed", o.model);
        goto done;
    }
    if (shoal_context_create(m, NULL, &c) != SHOAL_OK) {
        cli_fail("context");
        goto done;
    }
    lg = malloc((size_t)n * (size_t)info.n_vocab * sizeof *lg);
    if (!lg) {
        cli_die("%s", "out of memory");
        goto done;
    }
    if (shoal_decode(c, ids, n, 1, lg) != SHOAL_OK) {
        cli_fail("logits");
        goto done;
    }
    rc = cli_write_f32(o.out, lg, (size_t)n * (size_t)info.n_vocab);
done:
    free(lg);
    free(ids);
    shoal_context_free(c);
    shoal_model_free(m);
    return rc;
}

static int cmd_embed(int argc, char **argv) {
    cli_opts o;
    if (cli_parse(argc, argv, &o)) return 1;
    if (o.text || o.file) return cli_embed_text(&o);
    if (!o.tokens) return cli_die("%s", "embed needs --tokens, --text or --file");
    int32_t *ids;
    int n = cli_parse_ids(o.tokens, &ids);
    if (n < 1) return cli_die("bad token list '%s'", o.tokens);
    shoal_model *m = NULL;
    shoal_context *c = NULL;
    float *hid = NULL, *emb = NULL;
    int rc = 1;
    if (cli_load(&o, &m)) goto done;
    shoal_model_info info;
    shoal_model_get_info(m, &info);
    if (!info.is_encoder) {
        cli_die("%s is not an encoder model", o.model);
        goto done;
    }
    if (shoal_context_create(m, NULL, &c) != SHOAL_OK) {
        cli_fail("context");
        goto done;
    }
    hid = malloc((size_t)n * (size_t)info.n_embd * sizeof *hid);
    emb = malloc((size_t)info.n_embd * sizeof *emb);
    if (!hid || !emb) {
        cli_die("%s", "out of memory");
        goto done;
    }
    if (shoal_encode(c, ids, n, hid, emb) != SHOAL_OK) {
        cli_fail("embed");
        goto done;
    }
    rc = 0;
    if (o.out) rc |= cli_write_f32(o.out, emb, (size_t)info.n_embd);
    if (o.hidden) rc |= cli_write_f32(o.hidden, hid, (size_t)n * (size_t)info.n_embd);
    if (!o.out && !o.hidden) {
        for (int i = 0; i < info.n_embd; i++) printf(i ? " %.7g" : "%.7g", (double)emb[i]);
        printf("\n");
    }
done:
    free(hid);
    free(emb);
    free(ids);
    shoal_context_free(c);
    shoal_model_free(m);
    return rc;
}

typedef struct run_state {
    int print_ids;
    int first;
} run_state;

static int on_token(int32_t id, void *user) {
    run_state *st = user;
    if (st->print_ids) {
        printf(st->first ? "%d" : " %d", id);
        st->first = 0;
        fflush(stdout);
    }
    return 0;
}

static int cmd_run(int argc, char **argv) {
    cli_opts o;
    if (cli_parse(argc, argv, &o)) return 1;
    if (o.prompt) return cli_run_text(&o);
    if (!o.tokens) return cli_die("%s", "run needs --tokens or -p TEXT");
    int32_t *ids = NULL, *stop = NULL, *out = NULL;
    int n = cli_parse_ids(o.tokens, &ids);
    if (n < 1) return cli_die("bad token list '%s'", o.tokens);
    int n_stop = 0;
    if (o.stop && (n_stop = cli_parse_ids(o.stop, &stop)) < 1) {
        free(ids);
        return cli_die("bad stop list '%s'", o.stop);
    }
    shoal_model *m = NULL;
    shoal_context *c = NULL;
    int rc = 1;
    if (cli_load(&o, &m)) goto done;
    if (shoal_context_create(m, NULL, &c) != SHOAL_OK) {
        cli_fail("context");
        goto done;
    }
    shoal_sampling_params sp;
    shoal_sampling_params_init(&sp);
    sp.temperature = (float)o.temp;
    sp.top_k = o.top_k;
    sp.top_p = (float)o.top_p;
    sp.min_p = (float)o.min_p;
    sp.repetition_penalty = (float)o.repeat_penalty;
    sp.seed = o.seed;
    sp.stop_ids = stop;
    sp.n_stop_ids = n_stop;
    sp.stop_at_eos = !o.ignore_eos;
    out = malloc((size_t)(o.n_predict > 0 ? o.n_predict : 1) * sizeof *out);
    if (!out) {
        cli_die("%s", "out of memory");
        goto done;
    }
    run_state st = {1, 1};
    int n_out = 0;
    double t0 = cli_now();
    shoal_status s = shoal_generate(c, ids, n, &sp, o.n_predict, out, &n_out, on_token, &st);
    double dt = cli_now() - t0;
    printf("\n");
    if (s != SHOAL_OK) {
        cli_fail("run");
        goto done;
    }
    if (!o.print_ids)
        fprintf(stderr, "prompt %d tokens, generated %d tokens, %.1f tok/s\n", n, n_out,
                dt > 0 ? n_out / dt : 0.0);
    rc = 0;
done:
    free(ids);
    free(stop);
    free(out);
    shoal_context_free(c);
    shoal_model_free(m);
    return rc;
}

static int usage(FILE *f) {
    fprintf(f,
            "usage: shoal COMMAND [options]\n"
            "  info    -m PATH [--tensors]             architecture, shapes, dtypes, bytes\n"
            "  logits  -m PATH --tokens 1,2,3 --out F  every position's logits (f32, n x vocab)\n"
            "  embed   -m PATH --tokens 1,2,3 [--out F] [--hidden F]\n"
            "  embed   -m PATH --text TEXT | --file LINES [--format json|f32] [--out F]\n"
            "  run     -m PATH --tokens 1,2,3 | -p TEXT [-n N] [--temp T] [--top-k K] [--top-p P]\n"
            "          [--min-p P] [--repeat-penalty R] [--seed S] [--stop IDS] [--ignore-eos] [--print-ids]\n"
            "  tokenize -m PATH --text TEXT [--no-special]\n"
            "  chat    -m PATH [--template chatml|llama2|llama3|zephyr|plain] [--system TEXT]\n"
            "  bench   --synthetic SHAPE ...           see `shoal bench --help`\n"
            "  devices                                 CPU cores and CUDA devices (name, PCI bus id, memory)\n"
            "common: --device cpu|cuda[:N]  --threads N\n");
    return f == stderr ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc < 2) return usage(stderr);
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) return usage(stdout);
    if (!strcmp(cmd, "info")) return cli_cmd_info(argc - 2, argv + 2);
    if (!strcmp(cmd, "logits")) return cmd_logits(argc - 2, argv + 2);
    if (!strcmp(cmd, "embed")) return cmd_embed(argc - 2, argv + 2);
    if (!strcmp(cmd, "run")) return cmd_run(argc - 2, argv + 2);
    if (!strcmp(cmd, "bench")) return cli_cmd_bench(argc - 2, argv + 2);
    if (!strcmp(cmd, "tokenize")) return cli_cmd_tokenize(argc - 2, argv + 2);
    if (!strcmp(cmd, "chat")) return cli_cmd_chat(argc - 2, argv + 2);
    if (!strcmp(cmd, "devices")) return cli_cmd_devices(argc - 2, argv + 2);
    fprintf(stderr, "shoal: unknown command '%s' (try shoal --help)\n", cmd);
    return 1;
}
