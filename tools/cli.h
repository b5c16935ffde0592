/* Shared pieces of the shoal CLI. */
#ifndef SHOAL_CLI_H
#define SHOAL_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "shoal.h"

typedef struct cli_opts {
    const char *model, *device, *tokens, *out, *hidden, *stop;
    const char *prompt, *text, *file, *format, *chat_template, *system;
    int threads, n_predict, top_k, print_ids, tensors, ignore_eos, no_special, echo;
    double temp, top_p, min_p, repeat_penalty;
    uint64_t seed;
} cli_opts;

int cli_die(const char *fmt, const char *arg);          /* prints "shoal: ...", returns 1 */
int cli_fail(const char *what);                         /* prints what + shoal_last_error() */
int cli_parse_int(const char *s, long lo, long hi, long *out);
int cli_parse_float(const char *s, double *out);
int cli_parse_ids(const char *s, int32_t **ids);        /* count, or -1 */
int cli_write_f32(const char *path, const float *x, size_t n);
double cli_now(void);
int cli_parse(int argc, char **argv, cli_opts *o);
int cli_load(const cli_opts *o, shoal_model **m);

int cli_cmd_info(int argc, char **argv);
int cli_cmd_bench(int argc, char **argv);
int cli_cmd_tokenize(int argc, char **argv);
int cli_cmd_chat(int argc, char **argv);
int cli_cmd_devices(int argc, char **argv);
int cli_run_text(const cli_opts *o);   /* run -p TEXT: streamed text + stats line */
int cli_embed_text(const cli_opts *o); /* embed --text / --file */

#endif
