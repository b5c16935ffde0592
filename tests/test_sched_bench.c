/* `shoal bench` end to end on the CPU: the stable flags, the summary, the
 * JSON (fused, --unfused, --compare) and --peer with a stand-in peer script
 * that prints one JSON line the way ../shared/peers/torch_decode.py does. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

static double num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

/* Runs the bench with extra arguments; returns its parsed JSON or NULL. */
static cJSON *bench(const char *bin, const char *dir, const char *extra, char *out, size_t out_cap) {
    char cmd[2048], json[600], txt[600];
    snprintf(json, sizeof json, "%s/b.json", dir);
    snprintf(txt, sizeof txt, "%s/b.txt", dir);
    unlink(json);
    snprintf(cmd, sizeof cmd,
             "'%s' bench --synthetic tiny --models 3 --seqs 2 --prompt 9 --tokens 7 --device cpu --threads 1 "
             "--quiet --json '%s' %s > '%s' 2>&1",
             bin, json, extra, txt);
    int rc = system(cmd);
    char *t = check_read_file(txt, NULL);
    snprintf(out, out_cap, "%s", t ? t : "");
    free(t);
    CHECK(rc == 0, "bench %s exits 0 (%d): %s", extra, rc, out);
    char *j = check_read_file(json, NULL);
    cJSON *root = j ? cJSON_Parse(j) : NULL;
    CHECK(root != NULL, "bench %s writes JSON", extra);
    free(j);
    return root;
}

int main(void) {
    const char *bin = getenv("SHOAL_BIN");
    if (!bin || !*bin) {
        printf("SHOAL_BIN not set: run through ctest\n");
        return check_report();
    }
    char dir[] = "/tmp/shoal_bench_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "temp dir");
    char out[8192];

    /* fused */
    cJSON *j = bench(bin, dir, "", out, sizeof out);
    if (j) {
        CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "fused")), "fused run");
        CHECK(num(j, "models") == 3 && num(j, "seqs") == 2 && num(j, "prompt") == 9 && num(j, "tokens") == 7,
              "workload echoed");
        const cJSON *run = cJSON_GetObjectItemCaseSensitive(j, "run");
        CHECK(cJSON_IsObject(run), "run object");
        CHECK(num(run, "tokens") == 3 * 2 * 7, "every token generated (%g)", num(run, "tokens"));
        CHECK(num(run, "aggregate_tok_s") > 0 && num(run, "decode_tok_s") > 0, "throughput");
        CHECK(num(run, "ttft_ms_p50") > 0 && num(run, "ttft_ms_p99") >= num(run, "ttft_ms_p50"), "ttft");
        CHECK(num(run, "tpot_ms_p50") > 0 && num(run, "tpot_ms_p99") >= num(run, "tpot_ms_p50"), "per token");
        CHECK(num(run, "launches_per_decode_step") > 0 && num(run, "groups_per_launch") > 1, "launches");
        CHECK(num(run, "bandwidth_bytes_per_s") > 0 && num(run, "bytes_per_step") > 0, "bandwidth and bytes");
        CHECK(num(run, "preemptions") == 0, "no preemption in the benchmark");
        CHECK(strstr(out, "aggregate:") && strstr(out, "ttft:") && strstr(out, "per token:") &&
                  strstr(out, "launches:") && strstr(out, "bandwidth:"),
              "summary lines: %s", out);
        cJSON_Delete(j);
    }

    /* --unfused: same launches per step, one model per step */
    j = bench(bin, dir, "--unfused", out, sizeof out);
    if (j) {
        CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j, "fused")), "unfused run");
        const cJSON *run = cJSON_GetObjectItemCaseSensitive(j, "run");
        CHECK(num(run, "tokens") == 42, "unfused generates every token");
        CHECK(num(run, "steps") >= 3 * 7, "one model per step (%g steps)", num(run, "steps"));
        cJSON_Delete(j);
    }

    /* --compare and --peer (a stand-in peer) */
    char peer[700];
    snprintf(peer, sizeof peer, "%s/peer.py", dir);
    FILE *f = fopen(peer, "w");
    fprintf(f, "import json, sys\n"
               "a = sys.argv[1:]\n"
               "print('warming up')\n"
               "print(json.dumps(dict(peer=a[a.index('--peer') + 1], shape=a[a.index('--shape') + 1],\n"
               "                      models=int(a[a.index('--models') + 1]), tok_s=1000.0)))\n");
    fclose(f);
    char extra[800];
    snprintf(extra, sizeof extra, "--compare --peer '%s' --peer-kind hf", peer);
    j = bench(bin, dir, extra, out, sizeof out);
    if (j) {
        const cJSON *unf = cJSON_GetObjectItemCaseSensitive(j, "unfused");
        const cJSON *run = cJSON_GetObjectItemCaseSensitive(j, "run");
        CHECK(cJSON_IsObject(unf) && num(j, "fused_over_unfused") > 0, "compare: both runs and the ratio");
        CHECK(num(unf, "launches_per_decode_step") == num(run, "launches_per_decode_step"),
              "launches per decode step: fused %g == unfused %g", num(run, "launches_per_decode_step"),
              num(unf, "launches_per_decode_step"));
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "peer");
        CHECK(cJSON_IsObject(p) && num(p, "tok_s") == 1000.0 && num(p, "models") == 3, "peer line embedded");
        const cJSON *pk = p ? cJSON_GetObjectItemCaseSensitive(p, "peer") : NULL;
        CHECK(cJSON_IsString(pk) && !strcmp(pk->valuestring, "hf"), "peer kind passed");
        CHECK(num(j, "over_peer_decode") > 0, "ratio to the peer");
        CHECK(strstr(out, "fused / unfused") && strstr(out, "peer (hf)"), "summary has the ratios: %s", out);
        cJSON_Delete(j);
    }

    /* a failing peer is reported, not fatal */
    f = fopen(peer, "w");
    fprintf(f, "import sys\nsys.exit(3)\n");
    fclose(f);
    snprintf(extra, sizeof extra, "--peer '%s'", peer);
    j = bench(bin, dir, extra, out, sizeof out);
    if (j) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "peer_error");
        CHECK(cJSON_IsString(e) && strstr(e->valuestring, "status 3"), "peer failure recorded");
        cJSON_Delete(j);
    }

    /* bad flags */
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "'%s' bench --synthetic nope --quiet > /dev/null 2>&1", bin);
    CHECK(system(cmd) != 0, "unknown shape fails");
    snprintf(cmd, sizeof cmd, "'%s' bench --synthetic tiny --bogus > /dev/null 2>&1", bin);
    CHECK(system(cmd) != 0, "unknown flag fails");

    char path[800];
    snprintf(path, sizeof path, "%s/b.json", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/b.txt", dir);
    unlink(path);
    unlink(peer);
    rmdir(dir);
    return check_report();
}
