/* Chat templates as fixed renderers. Each renderer produces exactly what the
 * family's Hugging Face Jinja template renders (tests/fixtures/tokenizers/
 * chat.json holds Jinja renderings that tests compare against):
 *
 *   chatml  <|im_start|>{role}\n{content}<|im_end|>\n ... [<|im_start|>assistant\n]
 *   llama2  <s>[INST] [<<SYS>>\n{system}\n<</SYS>>\n\n]{user|strip} [/INST] {assistant|strip} </s>...
 *   llama3  <|begin_of_text|><|start_header_id|>{role}<|end_header_id|>\n\n{content|trim}<|eot_id|>...
 *           [<|start_header_id|>assistant<|end_header_id|>\n\n]
 *   zephyr  <|{role}|>\n{content}</s>\n ... [<|assistant|>\n]
 *   plain   the contents, concatenated */
#include "chat.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tokenizer_impl.h"

static const char *const style_names[] = {"plain", "chatml", "llama2", "llama3", "zephyr"};

sh_chat_style sh_chat_style_detect(const char *tmpl) {
    if (!tmpl) return SH_CHAT_PLAIN;
    if (strstr(tmpl, "<|im_start|>")) return SH_CHAT_CHATML;
    if (strstr(tmpl, "<|start_header_id|>")) return SH_CHAT_LLAMA3;
    if (strstr(tmpl, "[INST]")) return SH_CHAT_LLAMA2;
    if (strstr(tmpl, "<|user|>")) return SH_CHAT_ZEPHYR;
    return SH_CHAT_PLAIN;
}

shoal_status sh_chat_style_from_name(const char *name, sh_chat_style *out) {
    for (int i = 0; name && i < (int)(sizeof style_names / sizeof style_names[0]); i++)
        if (!strcasecmp(name, style_names[i])) {
            *out = (sh_chat_style)i;
            return SHOAL_OK;
        }
    return sh_fail(SHOAL_ERR_INVALID_ARG, "unknown chat template \"%s\" (plain, chatml, llama2, llama3, zephyr)",
                   name ? name : "(null)");
}

const char *sh_chat_style_name(sh_chat_style style) {
    if ((int)style < 0 || (int)style >= (int)(sizeof style_names / sizeof style_names[0])) return "?";
    return style_names[style];
}

const char *sh_chat_end_of_turn(sh_chat_style style) {
    switch (style) {
    case SH_CHAT_CHATML: return "<|im_end|>";
    case SH_CHAT_LLAMA3: return "<|eot_id|>";
    case SH_CHAT_LLAMA2:
    case SH_CHAT_ZEPHYR: return "</s>";
    case SH_CHAT_PLAIN: break;
    }
    return "";
}

/* Python's str.isspace() for one code point (what Jinja's strip/trim use). */
static int py_space(uint32_t c) {
    return (c >= 9 && c <= 13) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Appends s with leading and trailing whitespace removed. */
static shoal_status put_stripped(sh_buf *b, const char *s) {
    const unsigned char *u = (const unsigned char *)s;
    size_t n = strlen(s), a = 0, e = n;
    while (a < n) {
        uint32_t cp;
        int r = sh_utf8_next(u + a, n - a, &cp);
        if (r <= 0 || !py_space(cp)) break;
        a += (size_t)r;
    }
    while (e > a) {
        size_t k = e - 1;
        while (k > a && (u[k] & 0xC0) == 0x80) k--;
        uint32_t cp;
        int r = sh_utf8_next(u + k, e - k, &cp);
        if (r <= 0 || (size_t)r != e - k || !py_space(cp)) break;
        e = k;
    }
    return sh_buf_put(b, s + a, e - a);
}

static shoal_status put(sh_buf *b, const char *s) { return sh_buf_put(b, s, strlen(s)); }

static int is_role(const sh_chat_msg *m, const char *role) { return m->role && !strcmp(m->role, role); }

static shoal_status render(sh_chat_style style, const sh_chat_msg *m, int n, int gen, sh_buf *b) {
    switch (style) {
    case SH_CHAT_PLAIN:
        for (int i = 0; i < n; i++) SH_TRY(put(b, m[i].content));
        return SHOAL_OK;
    case SH_CHAT_CHATML:
        for (int i = 0; i < n; i++) {
            SH_TRY(put(b, "<|im_start|>"));
            SH_TRY(put(b, m[i].role));
            SH_TRY(put(b, "\n"));
            SH_TRY(put(b, m[i].content));
            SH_TRY(put(b, "<|im_end|>\n"));
        }
        if (gen) SH_TRY(put(b, "<|im_start|>assistant\n"));
        return SHOAL_OK;
    case SH_CHAT_LLAMA3:
        for (int i = 0; i < n; i++) {
            if (i == 0) SH_TRY(put(b, "<|begin_of_text|>"));
            SH_TRY(put(b, "<|start_header_id|>"));
            SH_TRY(put(b, m[i].role));
            SH_TRY(put(b, "<|end_header_id|>\n\n"));
            SH_TRY(put_stripped(b, m[i].content));
            SH_TRY(put(b, "<|eot_id|>"));
        }
        if (gen) SH_TRY(put(b, "<|start_header_id|>assistant<|end_header_id|>\n\n"));
        return SHOAL_OK;
    case SH_CHAT_ZEPHYR:
        for (int i = 0; i < n; i++) {
            if (is_role(&m[i], "user") || is_role(&m[i], "system") || is_role(&m[i], "assistant")) {
                SH_TRY(put(b, "<|"));
                SH_TRY(put(b, m[i].role));
                SH_TRY(put(b, "|>\n"));
                SH_TRY(put(b, m[i].content));
                SH_TRY(put(b, "</s>\n"));
            }
            if (i == n - 1 && gen) SH_TRY(put(b, "<|assistant|>\n"));
        }
        return SHOAL_OK;
    case SH_CHAT_LLAMA2: {
        const char *sys = NULL;
        if (n > 0 && is_role(&m[0], "system")) {
            sys = m[0].content;
            m++;
            n--;
        }
        for (int i = 0; i < n; i++) {
            if (is_role(&m[i], "user") != (i % 2 == 0))
                return sh_fail(SHOAL_ERR_INVALID_ARG, "chat llama2: roles must alternate user/assistant/user/... "
                                                      "(message %d is \"%s\")", i + (sys != NULL), m[i].role);
            sh_buf content = {0};
            shoal_status st = SHOAL_OK;
            if (i == 0 && sys) {
                st = put(&content, "<<SYS>>\n");
                if (st == SHOAL_OK) st = put(&content, sys);
                if (st == SHOAL_OK) st = put(&content, "\n<</SYS>>\n\n");
            }
            if (st == SHOAL_OK) st = put(&content, m[i].content);
            if (st == SHOAL_OK) {
                if (is_role(&m[i], "user")) {
                    st = put(b, "<s>[INST] ");
                    if (st == SHOAL_OK) st = put_stripped(b, content.p);
                    if (st == SHOAL_OK) st = put(b, " [/INST]");
                } else if (is_role(&m[i], "assistant")) {
                    st = put(b, " ");
                    if (st == SHOAL_OK) st = put_stripped(b, content.p);
                    if (st == SHOAL_OK) st = put(b, " </s>");
                }
            }
            sh_buf_free(&content);
            SH_TRY(st);
        }
        return SHOAL_OK;
    }
    }
    return sh_fail(SHOAL_ERR_INVALID_ARG, "chat: unknown style %d", (int)style);
}

shoal_status sh_chat_format(sh_chat_style style, const sh_chat_msg *msgs, int n, int add_generation_prompt,
                            char **out) {
    if (!out) return sh_fail(SHOAL_ERR_INVALID_ARG, "chat: out is NULL");
    *out = NULL;
    if (n < 0 || (n > 0 && !msgs)) return sh_fail(SHOAL_ERR_INVALID_ARG, "chat: bad message list");
    for (int i = 0; i < n; i++) {
        if (!msgs[i].role || !msgs[i].content) return sh_fail(SHOAL_ERR_INVALID_ARG, "chat: message %d has no %s", i,
                                                              msgs[i].role ? "content" : "role");
        if (is_role(&msgs[i], "system") && i > 0)
            return sh_fail(SHOAL_ERR_INVALID_ARG, "chat: a system message is only allowed first (message %d)", i);
    }
    sh_buf b = {0};
    shoal_status st = sh_buf_put(&b, "", 0);
    if (st == SHOAL_OK) st = render(style, msgs, n, add_generation_prompt, &b);
    if (st != SHOAL_OK) {
        sh_buf_free(&b);
        return st;
    }
    *out = b.p;
    return SHOAL_OK;
}
