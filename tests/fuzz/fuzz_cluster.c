/* libFuzzer: cluster config files (JSON: models, device, limits) through
 * shoal_cluster_load. Inputs naming synthetic shapes bigger than "tiny" are
 * skipped (building a 135M-parameter model per input would only measure the
 * allocator); every other path, key and value is the parser's to survive. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "shoal.h"

static int has(const uint8_t *d, size_t n, const char *s) {
    return memmem(d, n, s, strlen(s)) != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (has(data, size, "smollm") || has(data, size, "qwen") || has(data, size, "124m") || has(data, size, "cuda"))
        return 0;
    int fd = memfd_create("fuzz-cluster", 0);
    if (fd < 0) return 0;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    shoal_cluster_params d;
    shoal_cluster_params_init(&d);
    d.threaded = 0;
    d.n_threads = 1;
    d.kv_blocks = 64;
    shoal_cluster *c = NULL;
    if (shoal_cluster_load(path, &d, &c) == SHOAL_OK) {
        shoal_cluster_stats st;
        shoal_cluster_get_stats(c, &st);
        shoal_cluster_free(c);
    } else if (!*shoal_last_error()) {
        __builtin_trap(); /* a failure must say why */
    }
    close(fd);
    return 0;
}
