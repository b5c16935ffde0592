/* libFuzzer: a whole GGUF model load (parser, metadata -> hyperparameters,
 * tensor mapping onto the layer templates) from an in-memory file. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "shoal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int fd = memfd_create("fuzz-model", 0);
    if (fd < 0) return 0;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    shoal_model_params mp;
    shoal_model_params_init(&mp);
    mp.n_threads = 1;
    shoal_model *m = NULL;
    if (shoal_model_load(path, &mp, &m) == SHOAL_OK) {
        shoal_model_info info;
        shoal_model_get_info(m, &info);
        shoal_model_free(m);
    } else if (!*shoal_last_error()) {
        __builtin_trap(); /* a failure must say why */
    }
    close(fd);
    return 0;
}
