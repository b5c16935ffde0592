/* shoal bench: synthetic cluster workloads run through the fused step.
 *
 *   shoal bench --synthetic SHAPE --models N --seqs S --prompt P --tokens T
 *               [--device DEV] [--dtype DT] [--threads N] [--json FILE] [--unfused] [--quiet]
 *
 * N models of one shape with distinct random weights, S sequences per model,
 * each with a random prompt of P tokens, generating T tokens greedily. All
 * sequences start together; prefill runs in fused chunks, then every decode
 * step carries one row per sequence of every model (fused: one step for all
 * models; --unfused: one step per model, the baseline in the same binary).
 * Memory bandwidth is measured in the same run and each decode step's bytes
 * (weights + KV read) are reported against it.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../tools/cli.h"
#include "error.h"
#include "kv.h"
#include "model.h"
#include "sample.h"
#include "step.h"

typedef struct bopts {
    const char *shape, *device, *json, *dtype;
    int models, seqs, prompt, tokens, threads, unfused, quiet, prefill_chunk;
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
        double t0 = cli_now();
        for (int t = 0; t < nthreads; t++) {
            args[t] = (bw_arg){buf + (size_t)t * per, per, 0};
            pthread_create(&th[t], NULL, bw_read, &args[t]);
        }
        double sink = 0;
        for (int t = 0; t < nthreads; t++) {
            pthread_join(th[t], NULL);
            sink += args[t].sum;
        }
        double dt = cli_now() - t0;
        if (sink == -1) fprintf(stderr, " ");
        double bw = (double)per * nthreads * sizeof(double) / dt;
        if (bw > best) best = bw;
    }
    free(buf);
    return best;
}

/* ============================================================================
 * Workload
 * ========================================================================== */

typedef struct bseq {
    int model;
    sh_seq kv;
    int32_t *prompt;
    int32_t last;        /* last generated token */
    int generated;
    double t_first;      /* time of the first token */
    int32_t *out;        /* (tokens) */
} bseq;

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

static int32_t argmax(const float *x, int n) {
    int32_t b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

static int parse(int argc, char **argv, bopts *o) {
    memset(o, 0, sizeof *o);
    o->shape = "smollm-135m";
    o->device = "cpu";
    o->dtype = NULL;
    o->models = 1;
    o->seqs = 1;
    o->prompt = 64;
    o->tokens = 128;
    o->prefill_chunk = 512;
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
        STROPT("--synthetic", shape)
        STROPT("--device", device)
        STROPT("--json", json)
        STROPT("--dtype", dtype)
        if (!strcmp(a, "--unfused")) { o->unfused = 1; continue; }
        if (!strcmp(a, "--quiet")) { o->quiet = 1; continue; }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: shoal bench --synthetic SHAPE --models N --seqs S --prompt P --tokens T\n"
                   "                   [--device cpu|cuda] [--dtype f32|f16|bf16|q8_0|q4_0] [--threads N]\n"
                   "                   [--json FILE] [--unfused] [--quiet]\n"
                   "shapes: tiny, tiny-gpt2, smollm-135m, smollm-360m, qwen2.5-0.5b, gpt2-124m\n");
            exit(0);
        }
        return cli_die("unknown bench option '%s'", a);
#undef INTOPT
#undef STROPT
    }
    return 0;
}

int cli_cmd_bench(int argc, char **argv) {
    bopts o;
    if (parse(argc, argv, &o)) return 1;
    int is_cuda = strncmp(o.device, "cuda", 4) == 0;
    const char *dts = o.dtype ? o.dtype : (is_cuda ? "bf16" : "q8_0");
    int dt = sh_dtype_from_name(dts);
    if (dt < 0) return cli_die("unknown dtype '%s'", dts);
    sh_hparams hp;
    if (sh_synthetic_hparams(o.shape, &hp) != SHOAL_OK) return cli_fail("bench");
    if (o.prompt + o.tokens > hp.n_ctx) return cli_die("%s", "prompt + tokens exceed the shape's context");

    int rc = 1;
    sh_backend *be = NULL;
    shoal_model **models = calloc((size_t)o.models, sizeof *models);
    int nseq = o.models * o.seqs;
    bseq *seqs = calloc((size_t)nseq, sizeof *seqs);
    sh_step_seq *batch = calloc((size_t)nseq, sizeof *batch);
    float *logits = NULL;
    double *step_ms = NULL, *ttft = NULL;
    sh_kv_pool *pool = NULL;
    sh_exec *ex = NULL;
    if (!models || !seqs || !batch) return cli_die("%s", "out of memory");

    if (sh_backend_create(o.device, o.threads, &be) != SHOAL_OK) {
        cli_fail("device");
        goto done;
    }
    int nthreads = o.threads > 0 ? o.threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (!o.quiet) fprintf(stderr, "building %d synthetic %s models (%s) on %s...\n", o.models, o.shape, dts, be->device);
    uint64_t weight_bytes = 0;
    for (int i = 0; i < o.models; i++) {
        if (sh_model_synthetic(o.shape, (sh_dtype)dt, (uint64_t)i + 1, be, &models[i]) != SHOAL_OK) {
            cli_fail("model");
            goto done;
        }
        weight_bytes += models[i]->n_bytes;
    }
    double bw = 0;
    const char *bw_kind;
    if (be->ops->bandwidth) {
        if (be->ops->bandwidth(be, &bw) != SHOAL_OK) {
            cli_fail("bandwidth");
            goto done;
        }
        bw_kind = "device copy (read+write)";
    } else {
        bw = host_read_bandwidth(nthreads);
        bw_kind = "host read";
    }

    int per_seq_blocks = sh_kv_blocks_for(o.prompt + o.tokens);
    if (sh_kv_pool_create(be, SH_F32, sh_model_kv_block_bytes(models[0], SH_F32), nseq * per_seq_blocks + 1, &pool) !=
            SHOAL_OK ||
        sh_exec_create(be, pool, &ex) != SHOAL_OK) {
        cli_fail("kv");
        goto done;
    }
    int nv = hp.n_vocab;
    logits = malloc((size_t)nseq * (size_t)nv * sizeof *logits);
    step_ms = malloc((size_t)(o.tokens + 1) * (size_t)(o.unfused ? o.models : 1) * sizeof *step_ms);
    ttft = malloc((size_t)nseq * sizeof *ttft);
    if (!logits || !step_ms || !ttft) {
        cli_die("%s", "out of memory");
        goto done;
    }
    sh_rng rng;
    sh_rng_seed(&rng, 42);
    for (int i = 0; i < nseq; i++) {
        seqs[i].model = i / o.seqs;
        seqs[i].prompt = malloc((size_t)o.prompt * sizeof(int32_t));
        seqs[i].out = malloc((size_t)o.tokens * sizeof(int32_t));
        if (!seqs[i].prompt || !seqs[i].out) {
            cli_die("%s", "out of memory");
            goto done;
        }
        for (int k = 0; k < o.prompt; k++) seqs[i].prompt[k] = (int32_t)(sh_rng_next(&rng) % (uint64_t)nv);
    }

    /* ---- prefill: chunks of whole prompts, fused across models ---- */
    double t0 = cli_now();
    int per_chunk = o.prefill_chunk / o.prompt;
    if (per_chunk < 1) per_chunk = 1;
    for (int s0 = 0; s0 < nseq; s0 += per_chunk) {
        int cnt = nseq - s0 < per_chunk ? nseq - s0 : per_chunk;
        for (int j = 0; j < cnt; j++) {
            bseq *q = &seqs[s0 + j];
            batch[j] = (sh_step_seq){.model = models[q->model], .seq = &q->kv, .tokens = q->prompt,
                                     .n_tokens = o.prompt, .out = SH_OUT_LAST,
                                     .logits = logits + (size_t)(s0 + j) * nv};
        }
        if (sh_exec_step(ex, cnt, batch) != SHOAL_OK) {
            cli_fail("prefill");
            goto done;
        }
        double now = cli_now();
        for (int j = 0; j < cnt; j++) {
            bseq *q = &seqs[s0 + j];
            q->last = argmax(logits + (size_t)(s0 + j) * nv, nv);
            q->out[q->generated++] = q->last;
            q->t_first = now - t0;
            ttft[s0 + j] = q->t_first * 1e3;
        }
        if (!o.quiet) fprintf(stderr, "\rprefill %d/%d sequences", s0 + cnt, nseq);
    }
    double t_prefill = cli_now() - t0;

    /* ---- decode ---- */
    int n_steps = 0;
    uint64_t l_before = sh_exec_stats(ex)->launches, st_before = sh_exec_stats(ex)->steps;
    double kv_bytes_total = 0;
    double td0 = cli_now();
    int kvd = hp.n_head_kv * hp.head_dim;
    for (int t = 1; t < o.tokens; t++) {
        int groups = o.unfused ? o.models : 1;
        for (int gidx = 0; gidx < groups; gidx++) {
            int a = o.unfused ? gidx * o.seqs : 0, b = o.unfused ? a + o.seqs : nseq;
            for (int i = a; i < b; i++) {
                bseq *q = &seqs[i];
                batch[i - a] = (sh_step_seq){.model = models[q->model], .seq = &q->kv, .tokens = &q->last,
                                             .n_tokens = 1, .out = SH_OUT_LAST, .logits = logits + (size_t)i * nv};
                kv_bytes_total += 2.0 * hp.n_layer * (double)(q->kv.n_past + 1) * kvd * sizeof(float);
            }
            double s_t = cli_now();
            if (sh_exec_step(ex, b - a, batch) != SHOAL_OK) {
                cli_fail("decode");
                goto done;
            }
            step_ms[n_steps++] = (cli_now() - s_t) * 1e3;
            for (int i = a; i < b; i++) {
                bseq *q = &seqs[i];
                q->last = argmax(logits + (size_t)i * nv, nv);
                q->out[q->generated++] = q->last;
            }
        }
        if (!o.quiet && (t % 4 == 0 || t == o.tokens - 1)) {
            double el = cli_now() - td0;
            fprintf(stderr, "\rdecode %d/%d  %.1f tok/s  step %.2f ms      ", t + 1, o.tokens,
                    el > 0 ? (double)t * nseq / el : 0.0, step_ms[n_steps - 1]);
        }
    }
    double t_decode = cli_now() - td0;
    if (!o.quiet) fprintf(stderr, "\n");

    /* ---- report ---- */
    const sh_step_stats *st = sh_exec_stats(ex);
    uint64_t dsteps = st->steps - st_before;
    double launches_per_step = dsteps ? (double)(st->launches - l_before) / (double)dsteps : 0;
    int decode_tokens = (o.tokens - 1) * nseq;
    double tok_s = t_decode > 0 ? decode_tokens / t_decode : 0;
    double total_tok_s = (t_prefill + t_decode) > 0 ? (double)o.tokens * nseq / (t_prefill + t_decode) : 0;
    /* bytes one fused decode round moves: every model's weights once + KV read */
    int rounds = o.tokens - 1;
    double bytes_round = (double)weight_bytes + (rounds ? kv_bytes_total / rounds : 0);
    double round_s = rounds ? t_decode / rounds : 0;
    double achieved = round_s > 0 ? bytes_round / round_s : 0;
    double *lat = malloc((size_t)(n_steps ? n_steps : 1) * sizeof *lat);
    if (!lat) goto done;
    memcpy(lat, step_ms, (size_t)n_steps * sizeof *lat);
    double tpot50 = pct(lat, n_steps, 50), tpot99 = pct(lat, n_steps, 99);
    free(lat);
    if (o.unfused) { /* a token of one sequence waits for every model's step */
        tpot50 *= o.models;
        tpot99 *= o.models;
    }
    double ttft50 = pct(ttft, nseq, 50), ttft99 = pct(ttft, nseq, 99);
    printf("shoal bench: %d x %s (%s) x %d seqs, prompt %d, tokens %d, %s, %s, %d threads\n", o.models, o.shape, dts,
           o.seqs, o.prompt, o.tokens, be->device, o.unfused ? "unfused" : "fused", nthreads);
    printf("  decode:      %.1f tok/s aggregate (%d tokens in %.3f s)\n", tok_s, decode_tokens, t_decode);
    printf("  end to end:  %.1f tok/s incl. prefill (%.3f s prefill)\n", total_tok_s, t_prefill);
    printf("  ttft:        p50 %.2f ms  p99 %.2f ms\n", ttft50, ttft99);
    printf("  per token:   p50 %.3f ms  p99 %.3f ms\n", tpot50, tpot99);
    printf("  launches:    %.1f per step (%d models)\n", launches_per_step, o.models);
    printf("  bytes/round: %.1f MB (weights %.1f MB) in %.3f ms = %.2f GB/s\n", bytes_round / 1e6,
           (double)weight_bytes / 1e6, round_s * 1e3, achieved / 1e9);
    printf("  bandwidth:   %.2f GB/s measured (%s); roofline fraction %.1f%%\n", bw / 1e9, bw_kind,
           bw > 0 ? 100.0 * achieved / bw : 0.0);
    if (o.json) {
        FILE *f = fopen(o.json, "w");
        if (!f) {
            cli_die("cannot write %s", o.json);
            goto done;
        }
        fprintf(f,
                "{\"tool\":\"shoal bench\",\"shape\":\"%s\",\"dtype\":\"%s\",\"models\":%d,\"seqs\":%d,\"prompt\":%d,"
                "\"tokens\":%d,\"device\":\"%s\",\"threads\":%d,\"fused\":%s,\"decode_tok_s\":%.3f,"
                "\"e2e_tok_s\":%.3f,\"prefill_s\":%.6f,\"decode_s\":%.6f,\"ttft_ms_p50\":%.4f,\"ttft_ms_p99\":%.4f,"
                "\"tpot_ms_p50\":%.4f,\"tpot_ms_p99\":%.4f,\"launches_per_step\":%.2f,\"weight_bytes\":%llu,"
                "\"bytes_per_round\":%.0f,\"round_ms\":%.6f,\"achieved_bytes_per_s\":%.0f,"
                "\"bandwidth_bytes_per_s\":%.0f,\"bandwidth_kind\":\"%s\",\"roofline_fraction\":%.5f}\n",
                o.shape, dts, o.models, o.seqs, o.prompt, o.tokens, be->device, nthreads, o.unfused ? "false" : "true",
                tok_s, total_tok_s, t_prefill, t_decode, ttft50, ttft99, tpot50, tpot99, launches_per_step,
                (unsigned long long)weight_bytes, bytes_round, round_s * 1e3, achieved, bw, bw_kind,
                bw > 0 ? achieved / bw : 0.0);
        fclose(f);
    }
    rc = 0;
done:
    for (int i = 0; i < nseq && seqs; i++) {
        if (pool) sh_seq_destroy(pool, &seqs[i].kv);
        free(seqs[i].prompt);
        free(seqs[i].out);
    }
    sh_exec_free(ex);
    sh_kv_pool_free(pool);
    for (int i = 0; i < o.models && models; i++) shoal_model_free(models[i]);
    sh_backend_free(be);
    free(models);
    free(seqs);
    free(batch);
    free(logits);
    free(step_ms);
    free(ttft);
    return rc;
}
