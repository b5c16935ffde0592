/* Kernel timeline of a CUDA program through CUPTI's activity API, for the
 * machines that have no Nsight Systems: preloaded into the program, it
 * records every kernel's start and end (graph-replayed kernels included,
 * without serialising them) and writes one CSV line per kernel at exit:
 * start_ns,end_ns,grid,block,graph_id,name.
 *
 *   cc -shared -fPIC -O2 -I$CUDA/include bench/gpu/ktrace.c -o ktrace.so -L$CUDA/lib64 -lcupti
 *   KTRACE_OUT=trace.csv LD_PRELOAD=./ktrace.so shoal bench ...
 *   python3 bench/gpu/ktrace_steps.py trace.csv
 */
#include <cupti.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define BUF_BYTES (1u << 20) /* small, so full buffers are handed over while the program runs */

static FILE *out;

static void CUPTIAPI buffer_requested(uint8_t **buffer, size_t *size, size_t *max_records) {
    *buffer = aligned_alloc(8, BUF_BYTES);
    *size = *buffer ? BUF_BYTES : 0;
    *max_records = 0;
}

static void CUPTIAPI buffer_completed(CUcontext ctx, uint32_t stream, uint8_t *buffer, size_t size, size_t valid) {
    (void)ctx;
    (void)stream;
    (void)size;
    CUpti_Activity *rec = NULL;
    while (out && cuptiActivityGetNextRecord(buffer, valid, &rec) == CUPTI_SUCCESS) {
        if (rec->kind != CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) continue;
        const CUpti_ActivityKernel10 *k = (const CUpti_ActivityKernel10 *)rec;
        fprintf(out, "%llu,%llu,%d,%d,%u,\"%s\"\n", (unsigned long long)k->start, (unsigned long long)k->end, k->gridX,
                k->blockX, k->graphId, k->name ? k->name : "?");
    }
    free(buffer);
}

__attribute__((constructor)) static void ktrace_init(void) {
    const char *path = getenv("KTRACE_OUT");
    out = fopen(path ? path : "ktrace.csv", "w");
    if (!out) return;
    fprintf(out, "start,end,grid,block,graph,name\n");
    if (cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed) != CUPTI_SUCCESS ||
        cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) != CUPTI_SUCCESS)
        fprintf(stderr, "ktrace: CUPTI activity tracing is not available\n");
}

__attribute__((destructor)) static void ktrace_fini(void) {
    cuptiActivityFlushAll(1);
    if (out) fclose(out);
    out = NULL;
}
