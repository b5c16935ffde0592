/* Chat templates against Jinja renderings of the families' Hugging Face
 * templates ($SHOAL_FIXTURES/tokenizers/chat.json, from
 * gen_tokenizer_vectors.py), style detection from template text and from
 * the fixture tokenizers' metadata, and a formatted prompt's special tokens
 * encoding to single ids. */
#include <cjson/cJSON.h>
#include <string.h>

#include "chat.h"
#include "check.h"
#include "test_tokenizer_common.h"
#include "tokenizer.h"

int main(void) {
    const char *fx = check_env("SHOAL_FIXTURES", "tests/fixtures");
    char path[1100];
    snprintf(path, sizeof path, "%s/tokenizers/chat.json", fx);
    tv_lines raw;
    CHECK(tv_read_lines(path, &raw), "read %s", path);
    /* the file is JSON: rejoin the lines */
    size_t total = 0;
    for (int i = 0; i < raw.n; i++) total += strlen(raw.line[i]) + 1;
    char *json = malloc(total + 1);
    json[0] = 0;
    for (int i = 0; i < raw.n; i++) {
        strcat(json, raw.line[i]);
        strcat(json, "\n");
    }
    cJSON *root = cJSON_Parse(json);
    CHECK(root != NULL, "parse chat.json");
    const cJSON *cases = cJSON_GetObjectItem(root, "cases"), *c;
    const cJSON *templates = cJSON_GetObjectItem(root, "templates"), *tm;
    int n_cases = 0;
    cJSON_ArrayForEach(c, cases) {
        const char *style_name = cJSON_GetObjectItem(c, "style")->valuestring;
        sh_chat_style style;
        CHECK(sh_chat_style_from_name(style_name, &style) == SHOAL_OK, "style %s", style_name);
        const cJSON *msgs = cJSON_GetObjectItem(c, "messages"), *m;
        sh_chat_msg mv[16];
        int n = 0;
        cJSON_ArrayForEach(m, msgs) {
            mv[n].role = cJSON_GetObjectItem(m, "role")->valuestring;
            mv[n].content = cJSON_GetObjectItem(m, "content")->valuestring;
            n++;
        }
        int gen = cJSON_IsTrue(cJSON_GetObjectItem(c, "add_generation_prompt"));
        int err = cJSON_IsTrue(cJSON_GetObjectItem(c, "error"));
        const char *want = cJSON_GetObjectItem(c, "expected")->valuestring;
        char *out = NULL;
        shoal_status st = sh_chat_format(style, mv, n, gen, &out);
        if (err) {
            CHECK(st == SHOAL_ERR_INVALID_ARG && out == NULL, "%s case %d should fail", style_name, n_cases);
        } else {
            CHECK(st == SHOAL_OK && !strcmp(out, want), "%s case %d:\n  got  \"%s\"\n  want \"%s\"", style_name,
                  n_cases, out ? out : shoal_last_error(), want);
        }
        free(out);
        n_cases++;
    }
    CHECK(n_cases >= 40, "only %d cases", n_cases);
    /* detection from the template text */
    cJSON_ArrayForEach(tm, templates) {
        sh_chat_style want;
        CHECK(sh_chat_style_from_name(tm->string, &want) == SHOAL_OK, "name %s", tm->string);
        CHECK(sh_chat_style_detect(tm->valuestring) == want, "detect %s", tm->string);
        CHECK(!strcmp(sh_chat_style_name(want), tm->string), "name round trip %s", tm->string);
    }
    CHECK(sh_chat_style_detect(NULL) == SH_CHAT_PLAIN && sh_chat_style_detect("{{ x }}") == SH_CHAT_PLAIN, "plain");
    sh_chat_style s;
    CHECK(sh_chat_style_from_name("ChatML", &s) == SHOAL_OK && s == SH_CHAT_CHATML, "case-insensitive name");
    CHECK(sh_chat_style_from_name("vicuna", &s) == SHOAL_ERR_INVALID_ARG && strstr(shoal_last_error(), "chatml"),
          "unknown name lists the known ones: %s", shoal_last_error());
    /* plain concatenates; a late system message is refused */
    sh_chat_msg two[] = {{"user", "Hello, "}, {"assistant", "world"}};
    char *out;
    CHECK(sh_chat_format(SH_CHAT_PLAIN, two, 2, 1, &out) == SHOAL_OK && !strcmp(out, "Hello, world"), "plain");
    free(out);
    sh_chat_msg late[] = {{"user", "a"}, {"system", "b"}};
    CHECK(sh_chat_format(SH_CHAT_CHATML, late, 2, 1, &out) == SHOAL_ERR_INVALID_ARG && !out, "late system");
    sh_chat_msg norole[] = {{NULL, "a"}};
    CHECK(sh_chat_format(SH_CHAT_CHATML, norole, 1, 1, &out) == SHOAL_ERR_INVALID_ARG, "no role");
    CHECK(sh_chat_format(SH_CHAT_CHATML, NULL, 0, 1, &out) == SHOAL_OK && !strcmp(out, "<|im_start|>assistant\n"),
          "no messages");
    free(out);
    CHECK(!strcmp(sh_chat_end_of_turn(SH_CHAT_LLAMA3), "<|eot_id|>") && !strcmp(sh_chat_end_of_turn(SH_CHAT_PLAIN), ""),
          "end of turn");
    /* styles picked from the fixture tokenizers' metadata; the formatted
     * prompt's markers are single special ids */
    static const struct { const char *name; sh_chat_style style; const char *marker; } fxs[] = {
        {"bpe_llama3", SH_CHAT_LLAMA3, "<|begin_of_text|>"},
        {"bpe_qwen2", SH_CHAT_CHATML, "<|im_end|>"},
        {"bpe_smollm", SH_CHAT_CHATML, "<|im_end|>"},
        {"spm", SH_CHAT_LLAMA2, "<s>"},
        {"bpe_gpt2", SH_CHAT_PLAIN, NULL},
    };
    for (size_t k = 0; k < sizeof fxs / sizeof fxs[0]; k++) {
        snprintf(path, sizeof path, "%s/tokenizers/%s/tokenizer.json", fx, fxs[k].name);
        sh_tokenizer *t;
        CHECK(sh_tokenizer_load_json(path, &t) == SHOAL_OK, "load %s", fxs[k].name);
        sh_tokenizer_info info;
        sh_tokenizer_get_info(t, &info);
        sh_chat_style st = sh_chat_style_detect(info.chat_template);
        CHECK(st == fxs[k].style, "%s: detected %s", fxs[k].name, sh_chat_style_name(st));
        sh_chat_msg msgs[] = {{"user", "Hi there"}};
        CHECK(sh_chat_format(st, msgs, 1, 1, &out) == SHOAL_OK, "format");
        int32_t *ids;
        int n;
        CHECK(sh_tokenizer_encode(t, out, strlen(out), 0, &ids, &n) == SHOAL_OK, "encode prompt");
        if (fxs[k].marker) {
            int32_t mid = sh_tokenizer_token_id(t, fxs[k].marker, strlen(fxs[k].marker));
            int found = 0;
            for (int i = 0; i < n; i++) found += ids[i] == mid;
            CHECK(mid >= 0 && found == 1, "%s: marker %s appears %d times as one id", fxs[k].name, fxs[k].marker,
                  found);
        }
        free(ids);
        free(out);
        sh_tokenizer_free(t);
    }
    cJSON_Delete(root);
    free(json);
    tv_free_lines(&raw);
    return check_report();
}
