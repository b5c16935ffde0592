/* shoal info: architecture, shapes, dtypes and bytes of a model. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "gguf.h"
#include "hf.h"
#include "model.h"

static void tensor_line(const sh_tensor *t) {
    printf("  %-40s %-5s [", t->name, sh_dtype_name(t->dtype));
    for (int d = 0; d < t->n_dims; d++) printf(d ? ", %lld" : "%lld", (long long)t->ne[d]);
    printf("] %llu bytes\n", (unsigned long long)t->nbytes);
}

int cli_cmd_info(int argc, char **argv) {
    cli_opts o;
    if (cli_parse(argc, argv, &o)) return 1;
    shoal_model *m;
    if (cli_load(&o, &m)) return 1;
    shoal_model_info in;
    shoal_model_get_info(m, &in);
    printf("model:        %s\n", o.model);
    printf("architecture: %s (%s)\n", in.arch, in.is_encoder ? "encoder" : "decoder");
    printf("layers:       %d\n", in.n_layer);
    printf("embedding:    %d\n", in.n_embd);
    printf("heads:        %d (kv %d, head dim %d)\n", in.n_head, in.n_head_kv, in.head_dim);
    printf("ffn:          %d\n", in.n_ff);
    printf("vocab:        %d\n", in.n_vocab);
    printf("context:      %d\n", in.n_ctx);
    printf("norm eps:     %g\n", (double)in.norm_eps);
    if (!in.is_encoder && strcmp(in.arch, "gpt2") != 0) printf("rope theta:   %g\n", (double)in.rope_theta);
    printf("tied head:    %s\n", in.tied_embeddings ? "yes" : "no");
    printf("weights:      %s\n", in.weight_dtype);
    printf("parameters:   %llu\n", (unsigned long long)in.n_params);
    printf("bytes:        %llu (%.2f MiB)\n", (unsigned long long)in.n_bytes, (double)in.n_bytes / 1048576.0);
    if (o.tensors) {
        printf("tensors:\n");
        if (m->gguf)
            for (int i = 0; i < sh_gguf_n_tensors(m->gguf); i++) tensor_line(sh_gguf_tensor(m->gguf, i));
        else
            for (int i = 0; i < sh_hf_n_tensors(m->hf); i++) tensor_line(sh_hf_tensor(m->hf, i));
    }
    shoal_model_free(m);
    return 0;
}
