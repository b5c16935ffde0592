/* Tensor maps of weight matrices (see cuda_tmap.h).
 *
 * A CUtensorMap is 128 bytes that the copy engine reads from global,
 * constant or parameter memory. The streamed GEMM's tensor-copy form needs
 * one or two per group of a launch; putting them in the per-step
 * descriptors would add 128-256 bytes per group to every step's copy, so
 * they live in a device table instead, one entry per distinct (base, shape,
 * stride, box), found through a hash of those. A new entry is encoded into
 * a page-locked mirror and copied to the device table on the backend's
 * stream, ahead of the kernels queued after it. Entries are never changed
 * or reused, so a map that a captured step graph reads stays valid; if the
 * stream is being captured by someone else, the copy becomes a node of that
 * graph, reading the same (unchanging) mirror entry at every replay.
 *
 * The encoder is the driver's cuTensorMapEncodeTiled, looked up through the
 * runtime (no link to the driver library).
 */
#include "cuda_tmap.h"

#include <cuda.h>
#include <stdlib.h>
#include <string.h>

#define SH_TM_CAP 8192        /* maps per backend */
#define SH_TM_SLOTS (2 * SH_TM_CAP)

typedef CUresult (*sh_tm_encode_fn)(CUtensorMap *, CUtensorMapDataType, cuuint32_t, void *, const cuuint64_t *,
                                    const cuuint64_t *, const cuuint32_t *, const cuuint32_t *, CUtensorMapInterleave,
                                    CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);

typedef struct sh_tm_key {
    const void *base;
    uint64_t cols, rows, stride;
    uint32_t box_rows;
} sh_tm_key;

struct sh_cu_tmaps {
    sh_tm_encode_fn encode;
    CUtensorMap *host;  /* page-locked mirror, SH_TM_CAP entries */
    CUtensorMap *dev;   /* device table */
    sh_tm_key keys[SH_TM_CAP];
    int32_t slot[SH_TM_SLOTS]; /* hash -> entry + 1; 0 empty */
    int n;
    int broken; /* no encoder or no memory: never try again */
};

static uint64_t sh_tm_hash(const sh_tm_key *k) {
    uint64_t h = 1469598103934665603ull;
    const uint64_t v[5] = {(uint64_t)(uintptr_t)k->base, k->cols, k->rows, k->stride, k->box_rows};
    for (int i = 0; i < 5; i++) {
        h ^= v[i];
        h *= 1099511628211ull;
        h ^= h >> 29;
    }
    return h;
}

static int sh_tm_same(const sh_tm_key *a, const sh_tm_key *b) {
    return a->base == b->base && a->cols == b->cols && a->rows == b->rows && a->stride == b->stride &&
           a->box_rows == b->box_rows;
}

static sh_cu_tmaps *sh_tm_create(void) {
    sh_cu_tmaps *tm = calloc(1, sizeof *tm);
    if (!tm) return NULL;
    void *fn = NULL;
    enum cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSymbolNotFound;
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess || !fn) {
        (void)cudaGetLastError();
        tm->broken = 1;
        return tm;
    }
    tm->encode = (sh_tm_encode_fn)fn;
    if (cudaMallocHost((void **)&tm->host, SH_TM_CAP * sizeof(CUtensorMap)) != cudaSuccess ||
        cudaMalloc((void **)&tm->dev, SH_TM_CAP * sizeof(CUtensorMap)) != cudaSuccess) {
        (void)cudaGetLastError();
        tm->broken = 1;
    }
    return tm;
}

const void *sh_cu_tmap(sh_cu_tmaps **tmp, cudaStream_t stream, const void *base, uint64_t cols, uint64_t rows,
                       uint64_t stride, uint32_t box_rows) {
    if (!*tmp) *tmp = sh_tm_create();
    sh_cu_tmaps *tm = *tmp;
    if (!tm || tm->broken || !base || !rows || !cols) return NULL;
    const sh_tm_key key = {base, cols, rows, stride, box_rows};
    uint64_t h = sh_tm_hash(&key) % SH_TM_SLOTS;
    while (tm->slot[h]) {
        const int e = tm->slot[h] - 1;
        if (sh_tm_same(&tm->keys[e], &key)) return tm->dev + e;
        h = (h + 1) % SH_TM_SLOTS;
    }
    if (tm->n >= SH_TM_CAP) return NULL;
    const int e = tm->n;
    const cuuint64_t dims[2] = {cols, rows}, strides[1] = {stride};
    const cuuint32_t box[2] = {64, box_rows}, estr[2] = {1, 1};
    if (tm->encode(&tm->host[e], CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, (void *)base, dims, strides, box, estr,
                   CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                   CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) != CUDA_SUCCESS)
        return NULL;
    if (cudaMemcpyAsync(tm->dev + e, &tm->host[e], sizeof(CUtensorMap), cudaMemcpyHostToDevice, stream) !=
        cudaSuccess) {
        (void)cudaGetLastError();
        return NULL;
    }
    tm->keys[e] = key;
    tm->slot[h] = e + 1;
    tm->n++;
    return tm->dev + e;
}

void sh_cu_tmaps_free(sh_cu_tmaps *tm) {
    if (!tm) return;
    if (tm->host) (void)cudaFreeHost(tm->host);
    if (tm->dev) (void)cudaFree(tm->dev);
    (void)cudaGetLastError();
    free(tm);
}
