/* shoal bench: synthetic cluster workloads run through the scheduler.
 *
 *   shoal bench --synthetic SHAPE --models N --seqs S --prompt P --tokens T
 *               [--device DEV] [--dtype DT] [--kv-dtype f32|f16|auto] [--threads N]
 *               [--max-batch-rows R] [--prefill-chunk C] [--json FILE] [--unfused]
 *               [--compare] [--peer PATH/torch_decode.py] [--peer-kind graph|hf] [--quiet]
 *
 * N models of one shape with distinct random weights form a cluster on one
 * device; S requests per model, each a random prompt of P tokens generating
 * T tokens greedily, are submitted together and served by the cluster's
 * scheduler thread: chunked prefill mixed with decode rows, every model in
 * one fused step (--unfused: one model per step, round robin — the baseline
 * in the same binary; --compare runs both and reports the ratio).
 *
 * Reported: aggregate tok/s (all generated tokens over the wall time from
 * submit to idle), decode tok/s (rows of decode-only steps over their time),
 * time to first token and per-token latency (gaps between a request's
 * tokens) p50/p99, launches per step and groups per launch, and each decode
 * step's bytes (weights of the models present + KV read) over its time
 * against memory bandwidth measured in the same run. --peer runs the PyTorch
 * peer on the same workload afterwards and reports its line and our ratio.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../tools/cli.h"
#include "error.h"
#include "model.h"
#include "sample.h"
#include "scheduler.h"

typedef struct bopts {
    const char *shape, *device, *json, *dtype, *kv_dtype, *peer, *peer_kind;
    int models, seqs, prompt, tokens, threads, unfused, compare, quiet, prefill_chunk, max_batch_rows;
} bopts;

/* ============================================================================
 * Host memory bandwidth: threads summing disjoint slices of a large buffer
 * ========================================================================== */

typedef struct bw_arg { const double *p; size_t n; double sum; } bw_arg;

static void *bw_read(void *a_) {
    bw_arg *a = a_;
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = 0; i + 4 <= a->n; i += 4) {
        s0 += a->p[i];
        s1 += a->p[i + 1];
        s2 += a->p[i + 2];
        s3 += a->p[i + 3];
    }
    a->sum = s0 + s1 + s2 + s3;
    return NULL;
}

/* Read bandwidth (bytes/s) with n threads over 512 MiB; best of 5. */
static double host_read_bandwidth(int nthreads) {
    size_t bytes = (size_t)512 << 20, n = bytes / sizeof(double);
    double *buf = malloc(bytes);
    if (!buf) return 0;
    for (size_t i = 0; i < n; i++) buf[i] = (double)(i & 255);
    if (nthreads < 1) nthreads = 1;
    if (nthreads > 256) nthreads = 256;
    double best = 0;
    for (int rep = 0; rep < 5; rep++) {
        pthread_t th[256];
        bw_arg args[256];
        size_t per = n / (size_t)nthreads;
        int started = 0;
        double t0 = cli_now();
        for (int t = 0; t < nthreads; t++) {
            args[t] = (bw_arg){buf + (size_t)t * per, per, 0};
            if (pthread_create(&th[t], NULL, bw_read, &args[t]) != 0) break;
            started++;
        }
        double sink = 0;
        for (int t = 0; t < started; t++) {
            pthread_join(th[t], NULL);
            sink += args[t].sum;
        }
        double dt = cli_now() - t0;
        if (sink == -1) fprintf(stderr, " ");
        double bw = (double)per * started * sizeof(double) / dt;
        if (bw > best) best = bw;
    }
    free(buf);
    return best;
}

/* ============================================================================
 * One run: a cluster, the requests, the step log
 * ========================================================================== */

typedef struct step_rec {
    double ms, exec_ms, sample_ms;
    int rows, decode_rows, prefill_rows, models;
    uint64_t launches, groups, bytes;
} step_rec;

typedef struct step_log {
    step_rec *v;
    int n, cap;
    int oom;
    /* progress line */
    int quiet;
    double t0, last_print;
    uint64_t tokens, total_tokens;
} step_log;

/* Runs on the scheduler thread after every step. */
static void on_step(const shoal_step_info *in, void *user) {
    step_log *lg = user;
    if (lg->n == lg->cap) {
        int nc = lg->cap ? 2 * lg->cap : 1024;
        step_rec *nv = realloc(lg->v, (size_t)nc * sizeof *nv);
        if (!nv) {
            lg->oom = 1;
            return;
        }
        lg->v = nv;
        lg->cap = nc;
    }
    lg->v[lg->n++] = (step_rec){in->ms, in->exec_ms, in->sample_ms, in->rows, in->decode_rows, in->prefill_rows, in->models,
                                in->launches, in->groups, in->weight_bytes + in->kv_bytes};
    /* a row that ends a feed produced a token: decode rows, plus the first
     * token of each finished prefill (counted at the end exactly) */
    lg->tokens += (uint64_t)in->decode_rows;
    double now = cli_now();
    if (!lg->quiet && (now - lg->last_print > 0.25)) {
        lg->last_print = now;
        double el = now - lg->t0;
        fprintf(stderr, "\rstep %-6llu %5.1f%%  %9.1f tok/s  %3d rows %2d models  %3llu launches  %.2f ms/step   ",
                (unsigned long long)in->index + 1,
                lg->total_tokens ? 100.0 * (double)lg->tokens / (double)lg->total_tokens : 0.0,
                el > 0 ? (double)lg->tokens / el : 0.0, in->rows, in->models, (unsigned long long)in->launches, in->ms);
    }
}

typedef struct run_result {
    int ok;
    char device[64];
    double wall_s, agg_tok_s, decode_tok_s, decode_s;
    double ttft50, ttft99, tpot50, tpot99;
    double launches_per_step, launches_per_decode_step, groups_per_launch, rows_per_step;
    double bytes_per_step, step_ms, exec_ms, sample_ms, achieved, bw;
    const char *bw_kind;
    uint64_t weight_bytes, steps, decode_steps, preemptions, tokens, overlapped;
    int nthreads;
    const char *kv_dtype;
} run_result;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p) {
    if (n <= 0) return 0;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    int i = (int)ceil(p / 100.0 * n) - 1;
    if (i < 0) i = 0;
    if (i >= n) i = n - 1;
    return v[i];
}

static int run_once(const bopts *o, const char *dts, int fused, run_result *rr) {
    memset(rr, 0, sizeof *rr);
    int nseq = o->models * o->seqs;
    int rc = 1;
    shoal_cluster_model *ms = calloc((size_t)o->models, sizeof *ms);
    char (*names)[16] = calloc((size_t)o->models, sizeof *names);
    char (*paths)[96] = calloc((size_t)o->models, sizeof *paths);
    shoal_request **reqs = calloc((size_t)nseq, sizeof *reqs);
    int32_t *prompt = malloc((size_t)o->prompt * sizeof *prompt);
    double *ttft = malloc((size_t)nseq * sizeof *ttft);
    double *gaps = malloc((size_t)nseq * (size_t)o->tokens * sizeof *gaps);
    step_log lg;
    memset(&lg, 0, sizeof lg);
    shoal_cluster *c = NULL;
    if (!ms || !names || !paths || !reqs || !prompt || !ttft || !gaps) {
        cli_die("%s", "out of memory");
        goto done;
    }
    for (int i = 0; i < o->models; i++) {
        snprintf(names[i], sizeof names[i], "m%d", i);
        snprintf(paths[i], sizeof paths[i], "synthetic:%s:%s:%d", o->shape, dts, i + 1);
        ms[i] = (shoal_cluster_model){names[i], paths[i]};
    }
    shoal_cluster_params cp;
    shoal_cluster_params_init(&cp);
    cp.device = o->device;
    cp.n_threads = o->threads;
    cp.models = ms;
    cp.n_models = o->models;
    cp.max_queue = nseq;
    cp.max_running = nseq;
    cp.max_batch_rows = o->max_batch_rows ? o->max_batch_rows : (nseq > 512 ? nseq : 512);
    if (cp.max_batch_rows < nseq) cp.max_batch_rows = nseq; /* every sequence decodes every step */
    cp.prefill_chunk = o->prefill_chunk;
    /* room for every sequence's whole context: the benchmark measures
     * steady decoding, not preemption */
    cp.kv_blocks = nseq * sh_kv_blocks_for(o->prompt + o->tokens) + 1;
    cp.kv_dtype = o->kv_dtype;
    cp.threaded = 1;
    cp.fused = fused;
    cp.on_step = on_step;
    cp.step_user = &lg;
    if (!o->quiet)
        fprintf(stderr, "building %d synthetic %s models (%s) on %s...\n", o->models, o->shape, dts, o->device);
    if (shoal_cluster_create(&cp, &c) != SHOAL_OK) {
        cli_fail("cluster");
        goto done;
    }
    snprintf(rr->device, sizeof rr->device, "%s", c->be->device);
    rr->kv_dtype = c->kv_dtype == SH_F16 ? "f16" : "f32";
    for (int i = 0; i < o->models; i++) rr->weight_bytes += c->models[i].m->n_bytes;
    rr->nthreads = o->threads > 0 ? o->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (c->be->ops->bandwidth) {
        if (c->be->ops->bandwidth(c->be, &rr->bw) != SHOAL_OK) {
            cli_fail("bandwidth");
            goto done;
        }
        rr->bw_kind = "device copy (read+write)";
    } else if (strcmp(c->be->ops->name, "cpu") != 0) {
        rr->bw = 0; /* host bandwidth says nothing about a device's memory */
        rr->bw_kind = "not measured: the backend has no bandwidth probe";
    } else {
        rr->bw = host_read_bandwidth(rr->nthreads);
        rr->bw_kind = "host read";
    }

    int nv = c->models[0].m->hp.n_vocab;
    sh_rng rng;
    sh_rng_seed(&rng, 42);
    shoal_request_params rp;
    shoal_request_params_init(&rp);
    rp.prompt = prompt;
    rp.n_prompt = o->prompt;
    rp.max_tokens = o->tokens;
    rp.sampling.stop_at_eos = 0;
    lg.quiet = o->quiet;
    lg.total_tokens = (uint64_t)nseq * (uint64_t)o->tokens;
    double t0 = cli_now();
    lg.t0 = t0;
    for (int i = 0; i < nseq; i++) {
        for (int k = 0; k < o->prompt; k++) prompt[k] = (int32_t)(sh_rng_next(&rng) % (uint64_t)nv);
        rp.model = names[i / o->seqs];
        if (shoal_cluster_submit(c, &rp, &reqs[i]) != SHOAL_OK) {
            cli_fail("submit");
            goto done;
        }
    }
    shoal_cluster_run_until_idle(c);
    double t1 = cli_now();
    if (!o->quiet) fprintf(stderr, "\n");
    if (lg.oom) {
        cli_die("%s", "out of memory for the step log");
        goto done;
    }

    /* ---- per-request latencies ---- */
    int n_gaps = 0, n_ttft = 0;
    uint64_t tokens = 0;
    for (int i = 0; i < nseq; i++) {
        shoal_request_result res;
        if (shoal_request_get_result(reqs[i], &res) != SHOAL_OK || res.status != SHOAL_OK) {
            fprintf(stderr, "shoal: bench: request %d failed: %s\n", i, res.message ? res.message : "?");
            goto done;
        }
        tokens += (uint64_t)res.n_tokens;
        if (res.ttft_ms >= 0) ttft[n_ttft++] = res.ttft_ms;
        for (int k = 1; k < res.n_tokens; k++) gaps[n_gaps++] = res.token_ms[k] - res.token_ms[k - 1];
    }
    rr->tokens = tokens;
    rr->wall_s = t1 - t0;
    rr->agg_tok_s = rr->wall_s > 0 ? (double)tokens / rr->wall_s : 0;
    rr->ttft50 = pct(ttft, n_ttft, 50);
    rr->ttft99 = pct(ttft, n_ttft, 99);
    rr->tpot50 = pct(gaps, n_gaps, 50);
    rr->tpot99 = pct(gaps, n_gaps, 99);

    /* ---- steps: decode-only ones carry the steady-state numbers ---- */
    shoal_cluster_stats st;
    shoal_cluster_get_stats(c, &st);
    rr->steps = st.steps;
    rr->preemptions = st.preemptions;
    rr->overlapped = st.overlapped_steps;
    rr->launches_per_step = st.launches_per_step;
    rr->groups_per_launch = st.groups_per_launch;
    rr->rows_per_step = st.rows_per_step;
    double dec_ms = 0, dec_exec = 0, dec_sample = 0, dec_bytes = 0, dec_launches = 0;
    uint64_t dec_rows = 0;
    for (int i = 0; i < lg.n; i++) {
        const step_rec *s = &lg.v[i];
        if (s->prefill_rows || !s->decode_rows) continue;
        rr->decode_steps++;
        dec_ms += s->ms;
        dec_exec += s->exec_ms;
        dec_sample += s->sample_ms;
        dec_bytes += (double)s->bytes;
        dec_launches += (double)s->launches;
        dec_rows += (uint64_t)s->decode_rows;
    }
    if (rr->decode_steps) {
        rr->decode_s = dec_ms * 1e-3;
        rr->decode_tok_s = dec_ms > 0 ? (double)dec_rows / (dec_ms * 1e-3) : 0;
        rr->launches_per_decode_step = dec_launches / (double)rr->decode_steps;
        rr->bytes_per_step = dec_bytes / (double)rr->decode_steps;
        rr->step_ms = dec_ms / (double)rr->decode_steps;
        rr->exec_ms = dec_exec / (double)rr->decode_steps;
        rr->sample_ms = dec_sample / (double)rr->decode_steps;
        rr->achieved = dec_ms > 0 ? dec_bytes / (dec_ms * 1e-3) : 0;
    }
    rr->ok = 1;
    rc = 0;
done:
    for (int i = 0; reqs && i < nseq; i++) shoal_request_free(reqs[i]);
    shoal_cluster_free(c);
    free(lg.v);
    free(ms);
    free(names);
    free(paths);
    free(reqs);
    free(prompt);
    free(ttft);
    free(gaps);
    return rc;
}

/* ============================================================================
 * The PyTorch peer
 * ========================================================================== */

typedef struct peer_result {
    int ok;
    char line[2048];   /* its JSON line */
    double tok_s;
    char error[256];
} peer_result;

/* Runs python3 PATH --peer KIND ... and keeps the last JSON line it prints. */
static void run_peer(const bopts *o, const char *dts, peer_result *pr) {
    memset(pr, 0, sizeof *pr);
    char models[16], seqs[16], prompt[16], tokens[16];
    snprintf(models, sizeof models, "%d", o->models);
    snprintf(seqs, sizeof seqs, "%d", o->seqs);
    snprintf(prompt, sizeof prompt, "%d", o->prompt);
    snprintf(tokens, sizeof tokens, "%d", o->tokens);
    const char *pdt = !strcmp(dts, "f16") ? "f16" : "bf16";
    char *argv[] = {"python3", (char *)o->peer, "--peer", (char *)o->peer_kind, "--shape", (char *)o->shape,
                    "--models", models, "--seqs", seqs, "--prompt", prompt, "--tokens", tokens, "--dtype",
                    (char *)pdt, NULL};
    int fd[2];
    if (pipe(fd) != 0) {
        snprintf(pr->error, sizeof pr->error, "pipe failed");
        return;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        snprintf(pr->error, sizeof pr->error, "fork failed");
        return;
    }
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        execvp("python3", argv);
        _exit(127);
    }
    close(fd[1]);
    char buf[4096];
    size_t used = 0;
    char line[2048] = "";
    FILE *f = fdopen(fd[0], "r");
    if (f) {
        while (fgets(buf, sizeof buf, f)) {
            used = strlen(buf);
            while (used && (buf[used - 1] == '\n' || buf[used - 1] == '\r')) buf[--used] = '\0';
            if (buf[0] == '{') snprintf(line, sizeof line, "%s", buf);
        }
        fclose(f);
    } else {
        close(fd[0]);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        snprintf(pr->error, sizeof pr->error, "the peer exited with status %d",
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        return;
    }
    cJSON *j = cJSON_Parse(line);
    const cJSON *t = j ? cJSON_GetObjectItemCaseSensitive(j, "tok_s") : NULL;
    if (!cJSON_IsNumber(t)) {
        snprintf(pr->error, sizeof pr->error, "the peer printed no JSON line with tok_s");
        cJSON_Delete(j);
        return;
    }
    pr->tok_s = t->valuedouble;
    snprintf(pr->line, sizeof pr->line, "%s", line);
    pr->ok = 1;
    cJSON_Delete(j);
}

/* ============================================================================
 * Options, summary, JSON
 * ========================================================================== */

static int parse(int argc, char **argv, bopts *o) {
    memset(o, 0, sizeof *o);
    o->shape = "smollm-135m";
    o->device = "cpu";
    o->models = 1;
    o->seqs = 1;
    o->prompt = 64;
    o->tokens = 128;
    o->prefill_chunk = 256;
    o->peer_kind = "graph";
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long lv;
#define INTOPT(flag, field, lo, hi)                                             \
    if (!strcmp(a, flag)) {                                                     \
        if (!v || !cli_parse_int(v, lo, hi, &lv)) return cli_die("bad value for %s", flag); \
        o->field = (int)lv;                                                     \
        i++;                                                                    \
        continue;                                                               \
    }
#define STROPT(flag, field)                                        \
    if (!strcmp(a, flag)) {                                        \
        if (!v) return cli_die("option %s needs a value", flag);   \
        o->field = v;                                              \
        i++;                                                       \
        continue;                                                  \
    }
        INTOPT("--models", models, 1, 1024)
        INTOPT("--seqs", seqs, 1, 4096)
        INTOPT("--prompt", prompt, 1, 1 << 16)
        INTOPT("--tokens", tokens, 1, 1 << 16)
        INTOPT("--threads", threads, 0, 1024)
        INTOPT("--prefill-chunk", prefill_chunk, 1, 1 << 20)
        INTOPT("--max-batch-rows", max_batch_rows, 1, 1 << 20)
        STROPT("--synthetic", shape)
        STROPT("--device", device)
        STROPT("--json", json)
        STROPT("--dtype", dtype)
        STROPT("--kv-dtype", kv_dtype)
        STROPT("--peer", peer)
        STROPT("--peer-kind", peer_kind)
        if (!strcmp(a, "--unfused")) { o->unfused = 1; continue; }
        if (!strcmp(a, "--compare")) { o->compare = 1; continue; }
        if (!strcmp(a, "--quiet")) { o->quiet = 1; continue; }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: shoal bench --synthetic SHAPE --models N --seqs S --prompt P --tokens T\n"
                   "                   [--device cpu|cuda|cuda:N] [--dtype f32|f16|bf16|q8_0|q4_0]\n"
                   "                   [--kv-dtype f32|f16|auto] [--threads N] [--max-batch-rows R]\n"
                   "                   [--prefill-chunk C] [--json FILE] [--unfused] [--compare]\n"
                   "                   [--peer PATH/torch_decode.py] [--peer-kind graph|hf] [--quiet]\n"
                   "shapes: tiny, tiny-gpt2, smollm-135m, smollm-360m, qwen2.5-0.5b, gpt2-124m\n"
                   "--unfused: one model per step (the baseline); --compare: fused, then unfused\n");
            exit(0);
        }
        return cli_die("unknown bench option '%s'", a);
#undef INTOPT
#undef STROPT
    }
    if (o->unfused && o->compare) return cli_die("%s", "--unfused and --compare exclude each other");
    if (strcmp(o->peer_kind, "graph") && strcmp(o->peer_kind, "hf"))
        return cli_die("bad --peer-kind '%s' (graph or hf)", o->peer_kind);
    return 0;
}

static void print_run(const bopts *o, const char *dts, const run_result *r, int fused) {
    printf("shoal bench: %d x %s (%s, kv %s) x %d seqs, prompt %d, tokens %d, %s, %s, %d threads\n", o->models,
           o->shape, dts, r->kv_dtype, o->seqs, o->prompt, o->tokens, r->device, fused ? "fused" : "unfused",
           r->nthreads);
    printf("  aggregate:   %.1f tok/s (%llu tokens in %.3f s, prefill included)\n", r->agg_tok_s,
           (unsigned long long)r->tokens, r->wall_s);
    printf("  decode:      %.1f tok/s over %llu decode-only steps (%.3f s)\n", r->decode_tok_s,
           (unsigned long long)r->decode_steps, r->decode_s);
    printf("  ttft:        p50 %.2f ms  p99 %.2f ms\n", r->ttft50, r->ttft99);
    printf("  per token:   p50 %.3f ms  p99 %.3f ms\n", r->tpot50, r->tpot99);
    printf("  launches:    %.1f per decode step, %.1f per step overall, %.2f groups per launch (%d models, "
           "%llu steps, %llu overlapped, %.1f rows/step)\n",
           r->launches_per_decode_step, r->launches_per_step, r->groups_per_launch, o->models,
           (unsigned long long)r->steps, (unsigned long long)r->overlapped, r->rows_per_step);
    printf("  decode step: %.3f ms = compute %.3f (logits download included) + sampling %.3f + scheduling %.3f\n",
           r->step_ms, r->exec_ms, r->sample_ms, r->step_ms - r->exec_ms - r->sample_ms);
    printf("  bytes/step:  %.2f MB (weights of all models %.1f MB) in %.3f ms = %.2f GB/s\n", r->bytes_per_step / 1e6,
           (double)r->weight_bytes / 1e6, r->step_ms, r->achieved / 1e9);
    printf("  bandwidth:   %.2f GB/s measured (%s); roofline fraction %.1f%%\n", r->bw / 1e9, r->bw_kind,
           r->bw > 0 ? 100.0 * r->achieved / r->bw : 0.0);
    if (r->preemptions) printf("  preemptions: %llu\n", (unsigned long long)r->preemptions);
}

static void json_run(FILE *f, const run_result *r) {
    fprintf(f,
            "{\"device\":\"%s\",\"kv_dtype\":\"%s\",\"threads\":%d,\"aggregate_tok_s\":%.3f,\"wall_s\":%.6f,"
            "\"tokens\":%llu,\"decode_tok_s\":%.3f,\"decode_s\":%.6f,\"decode_steps\":%llu,\"steps\":%llu,"
            "\"ttft_ms_p50\":%.4f,\"ttft_ms_p99\":%.4f,\"tpot_ms_p50\":%.4f,\"tpot_ms_p99\":%.4f,"
            "\"launches_per_decode_step\":%.2f,\"launches_per_step\":%.2f,\"groups_per_launch\":%.3f,"
            "\"rows_per_step\":%.2f,\"weight_bytes\":%llu,\"bytes_per_step\":%.0f,\"step_ms\":%.6f,"
            "\"step_exec_ms\":%.6f,\"step_sample_ms\":%.6f,"
            "\"achieved_bytes_per_s\":%.0f,\"bandwidth_bytes_per_s\":%.0f,\"bandwidth_kind\":\"%s\","
            "\"roofline_fraction\":%.5f,\"preemptions\":%llu,\"overlapped_steps\":%llu}",
            r->device, r->kv_dtype, r->nthreads, r->agg_tok_s, r->wall_s, (unsigned long long)r->tokens,
            r->decode_tok_s, r->decode_s, (unsigned long long)r->decode_steps, (unsigned long long)r->steps, r->ttft50,
            r->ttft99, r->tpot50, r->tpot99, r->launches_per_decode_step, r->launches_per_step, r->groups_per_launch,
            r->rows_per_step, (unsigned long long)r->weight_bytes, r->bytes_per_step, r->step_ms, r->exec_ms, r->sample_ms,
            r->achieved, r->bw,
            r->bw_kind, r->bw > 0 ? r->achieved / r->bw : 0.0, (unsigned long long)r->preemptions,
            (unsigned long long)r->overlapped);
}

int cli_cmd_bench(int argc, char **argv) {
    bopts o;
    if (parse(argc, argv, &o)) return 1;
    int is_cuda = strncmp(o.device, "cuda", 4) == 0;
    const char *dts = o.dtype ? o.dtype : (is_cuda ? "bf16" : "q8_0");
    if (sh_dtype_from_name(dts) < 0) return cli_die("unknown dtype '%s'", dts);
    if (!o.kv_dtype) o.kv_dtype = "auto";
    sh_hparams hp;
    if (sh_synthetic_hparams(o.shape, &hp) != SHOAL_OK) return cli_fail("bench");
    if (o.prompt + o.tokens > hp.n_ctx) return cli_die("%s", "prompt + tokens exceed the shape's context");

    run_result main_r, base_r;
    int fused = !o.unfused;
    if (run_once(&o, dts, fused, &main_r)) return 1;
    print_run(&o, dts, &main_r, fused);
    int have_base = 0;
    if (o.compare) {
        if (run_once(&o, dts, 0, &base_r)) return 1;
        print_run(&o, dts, &base_r, 0);
        have_base = 1;
        printf("  fused / unfused: %.2fx aggregate, %.2fx decode\n",
               base_r.agg_tok_s > 0 ? main_r.agg_tok_s / base_r.agg_tok_s : 0.0,
               base_r.decode_tok_s > 0 ? main_r.decode_tok_s / base_r.decode_tok_s : 0.0);
    }
    peer_result pr;
    memset(&pr, 0, sizeof pr);
    if (o.peer) {
        if (!o.quiet) fprintf(stderr, "running the peer: python3 %s --peer %s ...\n", o.peer, o.peer_kind);
        run_peer(&o, dts, &pr);
        if (pr.ok)
            printf("  peer (%s):  %.1f tok/s; shoal decode / peer = %.2fx, aggregate / peer = %.2fx\n  peer line:  %s\n",
                   o.peer_kind, pr.tok_s, pr.tok_s > 0 ? main_r.decode_tok_s / pr.tok_s : 0.0,
                   pr.tok_s > 0 ? main_r.agg_tok_s / pr.tok_s : 0.0, pr.line);
        else
            printf("  peer (%s):  failed: %s\n", o.peer_kind, pr.error);
    }
    if (o.json) {
        FILE *f = fopen(o.json, "w");
        if (!f) return cli_die("cannot write %s", o.json);
        fprintf(f,
                "{\"tool\":\"shoal bench\",\"shape\":\"%s\",\"dtype\":\"%s\",\"models\":%d,\"seqs\":%d,\"prompt\":%d,"
                "\"tokens\":%d,\"device\":\"%s\",\"fused\":%s,\"scheduler\":true,",
                o.shape, dts, o.models, o.seqs, o.prompt, o.tokens, main_r.device, fused ? "true" : "false");
        /* the main run's numbers at the top level, as before */
        fprintf(f,
                "\"decode_tok_s\":%.3f,\"e2e_tok_s\":%.3f,\"ttft_ms_p50\":%.4f,\"ttft_ms_p99\":%.4f,"
                "\"tpot_ms_p50\":%.4f,\"tpot_ms_p99\":%.4f,\"launches_per_step\":%.2f,\"roofline_fraction\":%.5f,",
                main_r.decode_tok_s, main_r.agg_tok_s, main_r.ttft50, main_r.ttft99, main_r.tpot50, main_r.tpot99,
                main_r.launches_per_decode_step, main_r.bw > 0 ? main_r.achieved / main_r.bw : 0.0);
        fprintf(f, "\"run\":");
        json_run(f, &main_r);
        if (have_base) {
            fprintf(f, ",\"unfused\":");
            json_run(f, &base_r);
            fprintf(f, ",\"fused_over_unfused\":%.4f,\"fused_over_unfused_decode\":%.4f",
                    base_r.agg_tok_s > 0 ? main_r.agg_tok_s / base_r.agg_tok_s : 0.0,
                    base_r.decode_tok_s > 0 ? main_r.decode_tok_s / base_r.decode_tok_s : 0.0);
        }
        if (o.peer) {
            if (pr.ok)
                fprintf(f, ",\"peer\":%s,\"over_peer_decode\":%.4f,\"over_peer_aggregate\":%.4f", pr.line,
                        pr.tok_s > 0 ? main_r.decode_tok_s / pr.tok_s : 0.0,
                        pr.tok_s > 0 ? main_r.agg_tok_s / pr.tok_s : 0.0);
            else
                fprintf(f, ",\"peer_error\":\"%s\"", pr.error);
        }
        fprintf(f, "}\n");
        fclose(f);
    }
    return 0;
}
