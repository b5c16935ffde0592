/* Chat templates: turn a list of messages into the prompt text a chat model
 * was trained on. Styles are fixed renderers of the common templates; the
 * style of a model is picked from its chat_template text by recognisable
 * markers (sh_chat_style_detect) or named by the user (sh_chat_style_from_name).
 *
 *   sh_chat_msg msgs[] = {{"system", "Be brief."}, {"user", "Hi"}};
 *   char *prompt;
 *   sh_chat_format(SH_CHAT_CHATML, msgs, 2, 1, &prompt);
 *   // "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
 *   // "<|im_start|>assistant\n"
 *   sh_tokenizer_encode(t, prompt, strlen(prompt), 0, &ids, &n); // add_special = 0:
 *   free(prompt);                       // the text already holds BOS where needed
 */
#ifndef SH_CHAT_H
#define SH_CHAT_H

#include "shoal.h"

typedef enum sh_chat_style {
    SH_CHAT_PLAIN = 0,  /* contents concatenated, no markers (GPT-2) */
    SH_CHAT_CHATML = 1, /* <|im_start|>role\n...<|im_end|>\n (Qwen2, SmolLM) */
    SH_CHAT_LLAMA2 = 2, /* <s>[INST] <<SYS>>\n...\n<</SYS>>\n\n... [/INST] ... </s> */
    SH_CHAT_LLAMA3 = 3, /* <|begin_of_text|><|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|> */
    SH_CHAT_ZEPHYR = 4, /* <|user|>\n...</s>\n<|assistant|>\n (TinyLlama chat) */
} sh_chat_style;

typedef struct sh_chat_msg {
    const char *role;    /* "system", "user" or "assistant" */
    const char *content; /* NUL-terminated UTF-8 */
} sh_chat_msg;

/* Picks the style whose markers appear in a model's chat_template text.
 * NULL or an unrecognised template gives SH_CHAT_PLAIN. */
sh_chat_style sh_chat_style_detect(const char *chat_template);

/* "plain", "chatml", "llama2", "llama3", "zephyr" (case-insensitive).
 * Unknown names are SHOAL_ERR_INVALID_ARG with the list in the message. */
shoal_status sh_chat_style_from_name(const char *name, sh_chat_style *out);
const char *sh_chat_style_name(sh_chat_style style);

/* Renders n messages as the style's template does (same text as the Hugging
 * Face Jinja template of that family, BOS text included where the template
 * writes it), then the assistant header when add_generation_prompt is set.
 * A system message is only allowed first. Llama-2 needs user/assistant to
 * alternate starting with user (otherwise SHOAL_ERR_INVALID_ARG, as the
 * template raises). *out is malloc'd and NUL-terminated; on failure NULL. */
shoal_status sh_chat_format(sh_chat_style style, const sh_chat_msg *msgs, int n,
                            int add_generation_prompt, char **out);

/* The text that ends an assistant turn in the style ("<|im_end|>",
 * "<|eot_id|>", "</s>"; "" for plain), useful as a stop string. */
const char *sh_chat_end_of_turn(sh_chat_style style);

#endif
