/* Tokenizer throughput: MB/s encoding a few MB of generated text with each
 * fixture tokenizer (tests/fixtures/tokenizers), against Hugging Face
 * `tokenizers` on the same text in the same run (bench/tokenizer_peer.py,
 * started through popen; single-threaded and with its default thread pool).
 * Every line of the corpus is encoded without special tokens; the ids of
 * both sides are compared through a checksum.
 *
 *   bench_tokenizer [--mb 4] [--repeat 3] [--out DIR] [--no-peer] [--python python3]
 *
 * Results: DIR/tokenizer-YYYY-MM-DD.json and .md (DIR defaults to the
 * source tree's bench/results). */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "tokenizer.h"

static const char *const names[] = {"bpe_gpt2", "bpe_llama3", "bpe_qwen2", "bpe_smollm", "spm", "wordpiece", "minilm"};
#define N_TOK 7

typedef struct result {
    double mb_s, seconds;
    long long ids;
    uint64_t checksum;
    double hf1_mb_s, hfn_mb_s;
    int hf_match;
} result;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) b[n] = 0;
    *len = (size_t)n;
    return b;
}

/* Runs cmd and returns its stdout (malloc'd), NULL on failure. */
static char *run(const char *cmd) {
    FILE *p = popen(cmd, "r");
    if (!p) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    size_t k;
    while ((k = fread(b + n, 1, cap - n - 1, p)) > 0) {
        n += k;
        if (cap - n < 1024) b = realloc(b, cap *= 2);
    }
    b[n] = 0;
    if (pclose(p) != 0) {
        free(b);
        return NULL;
    }
    return b;
}

static void cpu_model(char *out, size_t cap) {
    snprintf(out, cap, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "model name", 10)) {
            char *c = strchr(line, ':');
            if (c) {
                c += 2;
                c[strcspn(c, "\n")] = 0;
                snprintf(out, cap, "%s", c);
            }
            break;
        }
    }
    fclose(f);
}

int main(int argc, char **argv) {
    double mb = 4;
    int repeat = 3, peer = 1;
    const char *out_dir = NULL, *python = "python3";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--mb") && i + 1 < argc) mb = atof(argv[++i]);
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) repeat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) out_dir = argv[++i];
        else if (!strcmp(argv[i], "--python") && i + 1 < argc) python = argv[++i];
        else if (!strcmp(argv[i], "--no-peer")) peer = 0;
        else {
            fprintf(stderr, "usage: %s [--mb N] [--repeat R] [--out DIR] [--no-peer] [--python PY]\n", argv[0]);
            return 2;
        }
    }
    if (repeat < 1) repeat = 1;
    /* the source tree: this file is <repo>/bench/bench_tokenizer.c */
    char repo[1024];
    const char *env = getenv("SHOAL_REPO");
    snprintf(repo, sizeof repo, "%s", env ? env : __FILE__);
    if (!env) {
        for (int k = 0; k < 2; k++) {
            char *s = strrchr(repo, '/');
            if (s) *s = 0;
            else snprintf(repo, sizeof repo, ".");
        }
    }
    char fixtures[1100], results[1100], corpus[256], cmd[4096];
    snprintf(fixtures, sizeof fixtures, "%s/tests/fixtures/tokenizers", repo);
    snprintf(results, sizeof results, "%s", out_dir ? out_dir : "");
    if (!out_dir) snprintf(results, sizeof results, "%s/bench/results", repo);
    snprintf(corpus, sizeof corpus, "/tmp/shoal-bench-tokenizer-%d.txt", (int)getpid());
    snprintf(cmd, sizeof cmd, "%s %s/bench/tokenizer_peer.py --make-corpus %s --mb %g", python, repo, corpus, mb);
    char *o = run(cmd);
    if (!o) {
        fprintf(stderr, "bench_tokenizer: corpus generation failed: %s\n", cmd);
        return 1;
    }
    free(o);
    size_t len;
    char *text = slurp(corpus, &len);
    if (!text) {
        fprintf(stderr, "bench_tokenizer: cannot read %s\n", corpus);
        return 1;
    }
    /* lines */
    int nl = 1;
    for (size_t i = 0; i < len; i++) nl += text[i] == '\n';
    const char **line = malloc(sizeof(char *) * (size_t)nl);
    size_t *llen = malloc(sizeof(size_t) * (size_t)nl);
    nl = 0;
    for (size_t a = 0;;) {
        char *e = memchr(text + a, '\n', len - a);
        size_t b = e ? (size_t)(e - text) : len;
        line[nl] = text + a;
        llen[nl++] = b - a;
        if (!e) break;
        a = b + 1;
    }
    printf("corpus: %.2f MB, %d lines\n", (double)len / 1e6, nl);

    result res[N_TOK];
    memset(res, 0, sizeof res);
    for (int k = 0; k < N_TOK; k++) {
        char p[1200];
        snprintf(p, sizeof p, "%s/%s/tokenizer.json", fixtures, names[k]);
        sh_tokenizer *t;
        if (sh_tokenizer_load_json(p, &t) != SHOAL_OK) {
            fprintf(stderr, "bench_tokenizer: %s\n", shoal_last_error());
            return 1;
        }
        double best = 1e30;
        for (int r = 0; r < repeat; r++) {
            long long n_ids = 0;
            uint64_t h = 0;
            double t0 = now();
            for (int i = 0; i < nl; i++) {
                int32_t *ids;
                int n;
                if (sh_tokenizer_encode(t, line[i], llen[i], 0, &ids, &n) != SHOAL_OK) {
                    fprintf(stderr, "bench_tokenizer: encode: %s\n", shoal_last_error());
                    return 1;
                }
                for (int j = 0; j < n; j++) h = h * 1000003u + (uint64_t)ids[j] + 1u;
                n_ids += n;
                free(ids);
            }
            double dt = now() - t0;
            if (dt < best) best = dt;
            res[k].ids = n_ids;
            res[k].checksum = h;
        }
        res[k].seconds = best;
        res[k].mb_s = (double)len / best / 1e6;
        printf("shoal %-11s %8.2f MB/s  %lld ids\n", names[k], res[k].mb_s, res[k].ids);
        fflush(stdout);
        sh_tokenizer_free(t);
    }

    char hf_version[64] = "not run";
    if (peer) {
        for (int pass = 0; pass < 2; pass++) {
            int threads = pass == 0 ? 1 : 0;
            snprintf(cmd, sizeof cmd, "%s %s/bench/tokenizer_peer.py --corpus %s --fixtures %s --threads %d --repeat %d",
                     python, repo, corpus, fixtures, threads, repeat);
            o = run(cmd);
            cJSON *j = o ? cJSON_Parse(o) : NULL;
            free(o);
            if (!j) {
                fprintf(stderr, "bench_tokenizer: peer failed: %s\n", cmd);
                break;
            }
            const cJSON *v = cJSON_GetObjectItem(j, "version");
            if (cJSON_IsString(v)) snprintf(hf_version, sizeof hf_version, "%s", v->valuestring);
            const cJSON *tk = cJSON_GetObjectItem(j, "tokenizers");
            for (int k = 0; k < N_TOK; k++) {
                const cJSON *e = cJSON_GetObjectItem(tk, names[k]);
                const cJSON *m = cJSON_GetObjectItem(e, "mb_s"), *c = cJSON_GetObjectItem(e, "checksum"),
                            *n = cJSON_GetObjectItem(e, "ids");
                if (!cJSON_IsNumber(m)) continue;
                if (pass == 0) {
                    char hex[32];
                    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)res[k].checksum);
                    res[k].hf1_mb_s = m->valuedouble;
                    res[k].hf_match = cJSON_IsString(c) && !strcmp(c->valuestring, hex) && cJSON_IsNumber(n) &&
                                      (long long)n->valuedouble == res[k].ids;
                } else {
                    res[k].hfn_mb_s = m->valuedouble;
                }
            }
            cJSON_Delete(j);
        }
    }
    remove(corpus);

    /* report */
    time_t tt = time(NULL);
    struct tm tmv;
    gmtime_r(&tt, &tmv);
    char date[32], cpu[256];
    strftime(date, sizeof date, "%Y-%m-%d", &tmv);
    cpu_model(cpu, sizeof cpu);
    struct utsname un;
    uname(&un);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "date", date);
    cJSON_AddStringToObject(root, "cpu", cpu);
    cJSON_AddNumberToObject(root, "cpus_online", (double)ncpu);
    cJSON_AddStringToObject(root, "machine", un.machine);
    cJSON_AddStringToObject(root, "hf_tokenizers_version", hf_version);
    cJSON_AddNumberToObject(root, "corpus_bytes", (double)len);
    cJSON_AddNumberToObject(root, "corpus_lines", nl);
    cJSON_AddNumberToObject(root, "repeat", repeat);
    cJSON *arr = cJSON_AddArrayToObject(root, "results");
    for (int k = 0; k < N_TOK; k++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "tokenizer", names[k]);
        cJSON_AddNumberToObject(e, "shoal_mb_s", res[k].mb_s);
        cJSON_AddNumberToObject(e, "hf_1thread_mb_s", res[k].hf1_mb_s);
        cJSON_AddNumberToObject(e, "hf_default_threads_mb_s", res[k].hfn_mb_s);
        cJSON_AddNumberToObject(e, "ids", (double)res[k].ids);
        cJSON_AddBoolToObject(e, "ids_match_hf", res[k].hf_match);
        cJSON_AddItemToArray(arr, e);
    }
    char path[1300];
    snprintf(path, sizeof path, "%s/tokenizer-%s.json", results, date);
    FILE *f = fopen(path, "w");
    char *js = cJSON_Print(root);
    if (f) {
        fprintf(f, "%s\n", js);
        fclose(f);
    } else {
        fprintf(stderr, "bench_tokenizer: cannot write %s\n", path);
    }
    free(js);
    cJSON_Delete(root);
    snprintf(path, sizeof path, "%s/tokenizer-%s.md", results, date);
    f = fopen(path, "w");
    FILE *outs[2] = {stdout, f};
    for (int w = 0; w < 2; w++) {
        FILE *g = outs[w];
        if (!g) continue;
        fprintf(g, "# Tokenizer throughput, %s\n\n", date);
        fprintf(g, "Encoding %.2f MB of generated text (%d lines, each line one call, no special tokens), best of %d; "
                   "CPU: %s, %ld CPUs online. Hugging Face tokenizers %s on the same text in the same run "
                   "(encode_batch over all lines; 1 thread, and its default thread pool). \"ids match\": shoal's ids "
                   "equal Hugging Face's for the whole corpus (count and checksum). Command: `bench_tokenizer --mb "
                   "%g`.\n\n",
                (double)len / 1e6, nl, repeat, cpu, ncpu, hf_version, mb);
        fprintf(g, "| tokenizer | shoal MB/s (1 thread) | HF MB/s (1 thread) | HF MB/s (default threads) | ids | ids match |\n");
        fprintf(g, "| --- | ---: | ---: | ---: | ---: | --- |\n");
        for (int k = 0; k < N_TOK; k++)
            fprintf(g, "| %s | %.2f | %.2f | %.2f | %lld | %s |\n", names[k], res[k].mb_s, res[k].hf1_mb_s,
                    res[k].hfn_mb_s, res[k].ids, peer ? (res[k].hf_match ? "yes" : "NO") : "-");
    }
    if (f) fclose(f);
    printf("\nwrote %s/tokenizer-%s.{json,md}\n", results, date);
    free(line);
    free(llen);
    free(text);
    int all = 1;
    for (int k = 0; k < N_TOK && peer; k++) all &= res[k].hf_match;
    return all ? 0 : 3;
}
