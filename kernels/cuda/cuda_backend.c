/* The CUDA backend, host side: device discovery, memory, the stream, the
 * descriptor staging that lets one launch serve every group of an op, and
 * the mapping of every CUDA error to a shoal_status.
 *
 * Descriptors. Each compute call packs one device descriptor per group plus
 * a starts table (first block of each group) into a pinned host staging
 * buffer and queues a launch record. A flush copies the staged bytes to the
 * device descriptor arena with one cudaMemcpyAsync and then launches every
 * queued kernel on the backend's stream. Outside a step every call flushes
 * at once; between step_begin and step_end the calls are only queued, so a
 * whole step costs one descriptor copy, and the step's descriptors sit at
 * fixed offsets of one device buffer, rewritten in place each step — the
 * layout a captured CUDA graph can replay. upload/download/free/sync flush
 * first, so work stays in call order.
 *
 * Launches use programmatic dependent launch (Hopper): a kernel may start
 * while the previous one finishes, doing its group lookup and weight loads,
 * and waits (griddepcontrol.wait) before it touches activations. Memory
 * copies keep their ordinary stream order. SHOAL_CUDA_PDL=0 turns it off.
 *
 * Step graphs. At step_end the queued launches are compared with the steps
 * seen before: their signature is every launch's kernel, variant, grid and
 * descriptor offsets, plus the staged byte count and the arena (kernel
 * parameters are only these and the arena address). A signature seen once
 * before is captured (kernels only) into a CUDA graph and kept (LRU of
 * SH_CU_NGRAPH); a known one replays its graph. Either way the descriptors
 * go first as a plain asynchronous copy into that arena, so a replay reads
 * this step's descriptors, and every address a kernel uses comes from them:
 * the graph stays valid while the engine's buffers move. Growing the arenas
 * drops every graph. SHOAL_CUDA_GRAPH=0 turns graphs off; SHOAL_CUDA_GRAPH_STATS=1
 * times steps (host packing, device execution) and prints that and what
 * step_end did when the backend is destroyed; =2 adds the idle probe (how
 * long the device waited for the host before and within steps).
 *
 * Staging buffers rotate (SH_CU_NSTAGE of them); a buffer is refilled only
 * after the event recorded behind its last copy has completed, so the host
 * may run several flushes ahead of the device. The device arenas are two,
 * filled in turn on a copy stream: a flush's copy waits only for the kernels
 * of the flush before the previous one (the last readers of that arena), so
 * it runs while the previous flush's kernels do, and its kernels wait for it
 * (an event). A graph's kernels read one arena: it is part of the step's
 * signature.
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "backend.h"
#include "cuda_backend.h"
#include "cuda_internal.h"
#include "cuda_tmap.h"
#include "dtype.h"
#include "error.h"

_Static_assert(SH_KV_TOKENS == SH_KV_BLOCK, "kernel and interface KV block sizes differ");

#define SH_CU_NSTAGE 4
/* AUTO GEMM path: tensor cores from this many rows (bench/NOTES.md, "CUDA GEMM") */
#define SH_CU_MMA_MIN_M 2
#define SH_CU_ALIGN 64 /* bytes between packed descriptor arrays */
#define SH_CU_NGRAPH 16 /* step graphs kept (a step of several chunks takes one a chunk) */
#define SH_CU_NROPE 8          /* RoPE tables kept (one per theta and head size) */
#define SH_CU_ROPE_POS 8192    /* positions a RoPE table covers; later ones compute the angle */
#define SH_CU_NSEEN 16 /* step signatures remembered before capture */
#define SH_CU_NIDLE 64 /* flushes the idle probe keeps in flight */
#define SH_CU_NASYNC 4 /* downloads in flight (download_async) */
_Static_assert(SH_CU_NASYNC >= SH_BE_ASYNC_TICKETS, "fewer async downloads than the interface promises");
#define SH_CU_BOUNCE ((size_t)2 << 20)       /* bytes per download bounce buffer */
#define SH_CU_BOUNCE_MIN ((size_t)256 << 10) /* downloads from this size use them */

typedef struct sh_cu_stage {
    unsigned char *host; /* pinned */
    size_t cap;
    cudaEvent_t done;    /* recorded after the copy out of this buffer */
    int pending;         /* done was recorded and not yet waited for */
} sh_cu_stage;

/* A download in flight (download_async): the bytes, then the device error
 * word, land in a page-locked buffer; wait_download copies them out. */
typedef struct sh_cu_async {
    unsigned char *host; /* pinned */
    size_t cap;
    cudaEvent_t ev;      /* recorded behind the copies */
    void *dst;
    size_t bytes;
    int ticket;          /* -1: free */
} sh_cu_async;

typedef struct sh_cu_launch_rec {
    sh_cu_launch_fn fn;
    size_t desc_off, starts_off; /* in the staged (= device arena) bytes */
    int n_groups, n_blocks, variant;
} sh_cu_launch_rec;

/* A captured step: its launch list (the signature) and the executable graph. */
typedef struct sh_cu_graph {
    uint64_t hash;
    sh_cu_launch_rec *recs; /* (n_recs) */
    int n_recs;
    size_t used;            /* staged bytes of the step */
    const void *arena;      /* the descriptor buffer its kernels read */
    cudaGraphExec_t exec;   /* NULL: free slot */
    uint64_t last_use;
} sh_cu_graph;

typedef struct sh_cu_backend {
    sh_backend base;
    int device;
    sh_cuda_device_info info;
    cudaStream_t stream;
    sh_cu_stage stage[SH_CU_NSTAGE];
    int cur;                 /* stage being filled */
    int cur_ready;           /* its previous copy is known complete */
    size_t used;             /* bytes packed into stage[cur] */
    unsigned char *arena;    /* device descriptor buffer of the flush being launched (one of arenas) */
    unsigned char *arenas[2];/* two, used in turn: a flush's copy overlaps the kernels of the one before */
    size_t arena_cap;        /* bytes each */
    int half;                /* arenas[half] is the last one filled */
    cudaStream_t cstream;    /* descriptor copies (off the kernels' stream) */
    cudaEvent_t half_free[2];  /* recorded behind the launches that read arenas[i] */
    cudaEvent_t half_ready[2]; /* recorded behind the copy into arenas[i] */
    int half_used[2];        /* half_free[i] was recorded */
    int desc_stream;         /* copies on cstream into the arenas in turn (SHOAL_CUDA_DESC_STREAM=0: one arena, in order) */
    sh_cu_launch_rec *recs;  /* queued launches */
    int n_recs, cap_recs;
    int in_step;
    int *d_err;              /* device error word (SH_CU_ERR_* bits) */
    float *attn_part;        /* split attention: partial states (SH_CU_ATTN_PART_FLOATS) */
    int32_t *attn_count;     /* split attention: counters (SH_CU_ATTN_COUNTS), zero between launches */
    int32_t *gemm_count;     /* GEMM row norms: counters (SH_CU_GEMM_COUNTS), zero between launches */
    int64_t attn_split_blocks; /* split attention: blocks a launch may grow to (SHOAL_CUDA_ATTN_SPLIT) */
    int gemm_ring;             /* streamed GEMM (gemm_ring.cu): 0 never, 1 launches of a 32-row item per SM, 2 whenever
                                  eligible; 3, 4: as 1, 2 with the tensor-copy form where it applies */
    sh_cu_tmaps *tmaps;        /* tensor maps of weights and terms (the streamed GEMM's tensor-copy forms) */
    int gemm_tmx;              /* tensor-copy forms by default (sh_cuda_set_gemm_tmx): 0 never, 1 by launch, 2 forced */
    int gemm_deep;             /* deep tensor-copy form at <= 16 rows (sh_cuda_set_gemm_deep): 0 never, 1 by launch, 2 forced */
    void *xterms;              /* the activations' terms (SH_CU_XTERMS_BYTES; sm_90 only) */
    int xf_forms;              /* the streamed forms that take the RMS transform inside (sh_cuda_set_xf_forms: 1
                                  per-warp ring, 2 tensor-copy, 4 streamed terms); the others' launches take a
                                  norm launch into xnorm and read that instead */
    float *xnorm;              /* those norms' rows (SH_CU_XNORM_BYTES) */
    struct {                   /* the RoPE epilogue's tables (cos, sin per position and pair) */
        float theta;
        int head_dim;
        void *tab;             /* SH_CU_ROPE_POS x head_dim / 2 float2 */
    } rope[SH_CU_NROPE];
    int n_rope;
    int attn_dec;              /* attention with every key in shared memory: 0 never, 1 launches of a (row, KV head) per SM, 2 whenever it fits */
    int attn_kb;               /* attn_dec: shared memory asked for in steps of this many KB (SHOAL_CUDA_ATTN_KB, 16) */
    int attn_mid;              /* attn_dec: 256 threads a block in launches of up to two blocks an SM (SHOAL_CUDA_ATTN_MID=0: 128; 2: in every launch that is not wide) */
    int attn_wide;             /* attn_dec: threads a block in launches of a few blocks (SHOAL_CUDA_ATTN_WIDE: 512, 256, 128) */
    int attn_dec_split;        /* attn_dec: blocks a (row, KV head) may be split over in launches of a few pairs (sh_cuda_set_attn_dec_split; 1: never) */
    int *h_err;              /* pinned copy */
    sh_cuda_gemm_path gemm_path;
    int pdl;                 /* launch with programmatic dependent launch */
    int graphs;              /* replay steps from captured graphs */
    int mma_tile;            /* MMA tile configuration forced (0..2), -1: by launch size */
    sh_cu_graph graph[SH_CU_NGRAPH];
    uint64_t seen[SH_CU_NSEEN]; /* hashes of steps flushed once (ring) */
    int seen_next;
    uint64_t tick;           /* LRU clock */
    sh_cuda_graph_stats gstats;
    double bw;               /* measured copy bandwidth (bytes/s); 0: not yet */
    sh_cu_async async[SH_CU_NASYNC];
    int async_next;          /* the next ticket */
    void *bounce[2];         /* pinned, SH_CU_BOUNCE bytes each (large downloads) */
    cudaEvent_t bounce_ev[2];
    /* step timing (SHOAL_CUDA_GRAPH_STATS=1): host time from step_begin to
     * step_end, device time from the step's descriptor copy to its last kernel */
    int timing;
    cudaEvent_t t_ev[2];
    int t_pending;           /* t_ev holds an unread step */
    int t_marked;            /* t_ev[0] was recorded for the step in flight */
    int t_chunks;            /* chunks flushed so far in this step */
    double t_begin, host_s, dev_s;
    uint64_t t_steps, t_dev_steps;
    /* device idle probe (SHOAL_CUDA_GRAPH_STATS=2): events before each
     * flush's copy and after its launches; the gap from one flush's end to
     * the next one's start is time the device waited for the host */
    struct {
        cudaEvent_t a, b;
        int first; /* first flush of a step */
    } idle[SH_CU_NIDLE];
    int idle_n, idle_read;   /* recorded / read (counters; slot = count % SH_CU_NIDLE) */
    int idle_have_prev;      /* idle_prev_b holds the last read flush's end */
    int idle_first;          /* the next flush is a step's first */
    cudaEvent_t idle_prev_b;
    double idle_step_s, idle_in_s;
    uint64_t idle_steps;
} sh_cu_backend;

static const sh_backend_ops sh_cu_ops;

/* ---- errors ------------------------------------------------------------ */

static shoal_status cu_fail(cudaError_t e, const char *what) {
    shoal_status s = e == cudaErrorMemoryAllocation ? SHOAL_ERR_NOMEM : SHOAL_ERR_DEVICE;
    return sh_fail(s, "cuda: %s: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
}

#define CU_TRY(call, what)                              \
    do {                                                \
        cudaError_t cu_e_ = (call);                     \
        if (cu_e_ != cudaSuccess) return cu_fail(cu_e_, what); \
    } while (0)

static shoal_status cu_set_device(sh_cu_backend *cb) {
    CU_TRY(cudaSetDevice(cb->device), "cudaSetDevice");
    return SHOAL_OK;
}

/* ---- discovery --------------------------------------------------------- */

shoal_status sh_cuda_device_count(int *n) {
    if (!n) return sh_fail(SHOAL_ERR_INVALID_ARG, "cuda: device count: n is NULL");
    *n = 0;
    int c = 0;
    cudaError_t e = cudaGetDeviceCount(&c);
    if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver || e == cudaErrorInitializationError ||
        e == cudaErrorSystemDriverMismatch || e == cudaErrorCompatNotSupportedOnDevice) {
        (void)cudaGetLastError(); /* not sticky: clear it */
        return SHOAL_OK;
    }
    if (e != cudaSuccess) return cu_fail(e, "cudaGetDeviceCount");
    *n = c;
    return SHOAL_OK;
}

shoal_status sh_cuda_device_info_get(int index, sh_cuda_device_info *out) {
    if (!out) return sh_fail(SHOAL_ERR_INVALID_ARG, "cuda: device info: out is NULL");
    memset(out, 0, sizeof *out);
    int n;
    SH_TRY(sh_cuda_device_count(&n));
    if (index < 0 || index >= n)
        return sh_fail(SHOAL_ERR_NOT_FOUND, "cuda:%d: no such device (%d present)", index, n);
    struct cudaDeviceProp p;
    CU_TRY(cudaGetDeviceProperties(&p, index), "cudaGetDeviceProperties");
    out->index = index;
    snprintf(out->name, sizeof out->name, "%s", p.name);
    if (cudaDeviceGetPCIBusId(out->pci_bus_id, (int)sizeof out->pci_bus_id, index) != cudaSuccess)
        snprintf(out->pci_bus_id, sizeof out->pci_bus_id, "%04x:%02x:%02x.0", p.pciDomainID, p.pciBusID,
                 p.pciDeviceID);
    out->total_bytes = (uint64_t)p.totalGlobalMem;
    out->sm_count = p.multiProcessorCount;
    out->cc_major = p.major;
    out->cc_minor = p.minor;
    out->l2_bytes = p.l2CacheSize;
    out->smem_per_block_optin = (int)p.sharedMemPerBlockOptin;
    out->mem_bus_bits = p.memoryBusWidth;
    int cur = 0;
    if (cudaGetDevice(&cur) == cudaSuccess && cudaSetDevice(index) == cudaSuccess) {
        size_t fr = 0, tot = 0;
        if (cudaMemGetInfo(&fr, &tot) == cudaSuccess) out->free_bytes = (uint64_t)fr;
        (void)cudaSetDevice(cur);
    }
    (void)cudaGetLastError();
    return SHOAL_OK;
}

/* ---- staging and launch queue ------------------------------------------ */

/* Reserves `bytes` in the current staging buffer (SH_CU_ALIGN-aligned);
 * *off is the offset shared by the staging buffer and the device arena. */
static shoal_status cu_stage_reserve(sh_cu_backend *cb, size_t bytes, size_t *off, void **host) {
    sh_cu_stage *st = &cb->stage[cb->cur];
    if (!cb->cur_ready) {
        if (st->pending) {
            CU_TRY(cudaEventSynchronize(st->done), "staging wait");
            st->pending = 0;
        }
        cb->cur_ready = 1;
    }
    size_t o = (cb->used + SH_CU_ALIGN - 1) & ~(size_t)(SH_CU_ALIGN - 1);
    if (bytes > SIZE_MAX / 2 - o) return sh_fail(SHOAL_ERR_NOMEM, "cuda: descriptor staging overflow");
    size_t need = o + bytes;
    if (need > st->cap) {
        size_t cap = st->cap ? st->cap : 64 * 1024;
        while (cap < need) cap *= 2;
        void *p = NULL;
        CU_TRY(cudaHostAlloc(&p, cap, cudaHostAllocDefault), "cudaHostAlloc (descriptor staging)");
        if (cb->used) memcpy(p, st->host, cb->used);
        if (st->host) (void)cudaFreeHost(st->host);
        st->host = p;
        st->cap = cap;
    }
    cb->used = need;
    *off = o;
    *host = st->host + o;
    return SHOAL_OK;
}

/* ---- step graphs ------------------------------------------------------- */

static void cu_graph_clear(sh_cu_backend *cb) {
    for (int i = 0; i < SH_CU_NGRAPH; i++) {
        sh_cu_graph *g = &cb->graph[i];
        if (g->exec) (void)cudaGraphExecDestroy(g->exec);
        free(g->recs);
        memset(g, 0, sizeof *g);
    }
    memset(cb->seen, 0, sizeof cb->seen);
}

/* 64-bit signature of a launch list (FNV-1a over the fields that become
 * kernel parameters or grid sizes). 0 is kept for "empty". */
static uint64_t cu_sig(const sh_cu_launch_rec *r, int n, size_t used, int pdl) {
    uint64_t h = 1469598103934665603ull;
#define CU_MIX(v)                                    \
    do {                                             \
        h ^= (uint64_t)(v);                          \
        h *= 1099511628211ull;                       \
        h ^= h >> 29;                                \
    } while (0)
    CU_MIX(n);
    CU_MIX(used);
    CU_MIX(pdl);
    for (int i = 0; i < n; i++) {
        CU_MIX((uintptr_t)r[i].fn);
        CU_MIX(r[i].desc_off);
        CU_MIX(r[i].starts_off);
        CU_MIX(((uint64_t)(uint32_t)r[i].n_groups << 32) | (uint32_t)r[i].n_blocks);
        CU_MIX(r[i].variant);
    }
#undef CU_MIX
    return h ? h : 1;
}

static int cu_recs_equal(const sh_cu_launch_rec *a, const sh_cu_launch_rec *b, int n) {
    for (int i = 0; i < n; i++)
        if (a[i].fn != b[i].fn || a[i].desc_off != b[i].desc_off || a[i].starts_off != b[i].starts_off ||
            a[i].n_groups != b[i].n_groups || a[i].n_blocks != b[i].n_blocks || a[i].variant != b[i].variant)
            return 0;
    return 1;
}

/* Launches the queue's kernels directly on the stream. */
static shoal_status cu_launch_recs(sh_cu_backend *cb, const sh_cu_launch_rec *recs, int n_recs) {
    for (int i = 0; i < n_recs; i++) {
        const sh_cu_launch_rec *r = &recs[i];
        sh_cu_launch_args a = {cb->arena + r->desc_off, (const int32_t *)(cb->arena + r->starts_off), r->n_groups,
                               r->n_blocks, r->variant, cb->d_err, cb->pdl};
        cudaError_t e = r->fn(cb->stream, &a);
        if (e != cudaSuccess) return cu_fail(e, "kernel launch");
    }
    return SHOAL_OK;
}

/* Captures the kernels of a step into an executable graph; NULL (and no
 * error) when the capture fails, so the caller launches directly. */
static cudaGraphExec_t cu_capture(sh_cu_backend *cb, const sh_cu_launch_rec *recs, int n_recs) {
    if (cudaStreamBeginCapture(cb->stream, cudaStreamCaptureModeThreadLocal) != cudaSuccess) {
        (void)cudaGetLastError();
        return NULL;
    }
    int bad = 0;
    for (int i = 0; i < n_recs && !bad; i++) {
        const sh_cu_launch_rec *r = &recs[i];
        sh_cu_launch_args a = {cb->arena + r->desc_off, (const int32_t *)(cb->arena + r->starts_off), r->n_groups,
                               r->n_blocks, r->variant, cb->d_err, cb->pdl};
        bad = r->fn(cb->stream, &a) != cudaSuccess;
    }
    cudaGraph_t graph = NULL;
    cudaError_t e = cudaStreamEndCapture(cb->stream, &graph);
    cudaGraphExec_t exec = NULL;
    if (!bad && e == cudaSuccess && graph && cudaGraphInstantiate(&exec, graph, 0) != cudaSuccess) exec = NULL;
    if (graph) (void)cudaGraphDestroy(graph);
    (void)cudaGetLastError();
    return exec;
}

/* Runs a step's launch list through the graph cache: replay a known step,
 * capture one seen before, else remember it and launch directly. */
static shoal_status cu_run_step(sh_cu_backend *cb, const sh_cu_launch_rec *recs, int n_recs, size_t used) {
    const uint64_t h = cu_sig(recs, n_recs, used, cb->pdl) ^ (uint64_t)(uintptr_t)cb->arena;
    cb->tick++;
    for (int i = 0; i < SH_CU_NGRAPH; i++) {
        sh_cu_graph *g = &cb->graph[i];
        if (g->exec && g->hash == h && g->n_recs == n_recs && g->used == used && g->arena == cb->arena &&
            cu_recs_equal(g->recs, recs, n_recs)) {
            g->last_use = cb->tick;
            cb->gstats.replays++;
            CU_TRY(cudaGraphLaunch(g->exec, cb->stream), "cudaGraphLaunch");
            return SHOAL_OK;
        }
    }
    int seen = 0;
    for (int i = 0; i < SH_CU_NSEEN; i++) seen |= cb->seen[i] == h;
    if (!seen) {
        cb->seen[cb->seen_next] = h;
        cb->seen_next = (cb->seen_next + 1) % SH_CU_NSEEN;
        cb->gstats.direct++;
        return cu_launch_recs(cb, recs, n_recs);
    }
    /* second sight: capture into the least recently used slot */
    sh_cu_graph *slot = &cb->graph[0];
    for (int i = 1; i < SH_CU_NGRAPH; i++)
        if (!cb->graph[i].exec || (slot->exec && cb->graph[i].last_use < slot->last_use)) slot = &cb->graph[i];
    sh_cu_launch_rec *copy = malloc((size_t)n_recs * sizeof *copy);
    cudaGraphExec_t exec = copy ? cu_capture(cb, recs, n_recs) : NULL;
    if (!exec) {
        free(copy);
        cb->gstats.capture_failures++;
        cb->gstats.direct++;
        return cu_launch_recs(cb, recs, n_recs);
    }
    memcpy(copy, recs, (size_t)n_recs * sizeof *copy);
    if (slot->exec) {
        (void)cudaGraphExecDestroy(slot->exec);
        cb->gstats.evictions++;
    }
    free(slot->recs);
    *slot = (sh_cu_graph){h, copy, n_recs, used, cb->arena, exec, cb->tick};
    cb->gstats.captures++;
    CU_TRY(cudaGraphLaunch(exec, cb->stream), "cudaGraphLaunch");
    return SHOAL_OK;
}

/* Idle probe: reads the flushes whose end event has completed, oldest first. */
static void cu_idle_collect(sh_cu_backend *cb, int wait) {
    while (cb->idle_read < cb->idle_n) {
        int i = cb->idle_read % SH_CU_NIDLE;
        if (wait) (void)cudaEventSynchronize(cb->idle[i].b);
        if (cudaEventQuery(cb->idle[i].b) != cudaSuccess) break;
        float ms = 0;
        if (cb->idle_have_prev && cudaEventElapsedTime(&ms, cb->idle_prev_b, cb->idle[i].a) == cudaSuccess && ms > 0) {
            if (cb->idle[i].first) cb->idle_step_s += 1e-3 * ms;
            else cb->idle_in_s += 1e-3 * ms;
        }
        if (cb->idle[i].first) cb->idle_steps++;
        /* keep this end: swap it with the spare so the slot can be reused */
        cudaEvent_t t = cb->idle_prev_b;
        cb->idle_prev_b = cb->idle[i].b;
        cb->idle[i].b = t;
        cb->idle_have_prev = 1;
        cb->idle_read++;
    }
    (void)cudaGetLastError();
}

/* Records the start event of a flush of a step (returns its slot, -1: none). */
static int cu_idle_begin(sh_cu_backend *cb) {
    if (cb->timing < 2) return -1;
    if (cb->idle_n - cb->idle_read >= SH_CU_NIDLE) cu_idle_collect(cb, 1);
    int i = cb->idle_n % SH_CU_NIDLE;
    if (cudaEventRecord(cb->idle[i].a, cb->stream) != cudaSuccess) {
        (void)cudaGetLastError();
        return -1;
    }
    cb->idle[i].first = cb->idle_first;
    cb->idle_first = 0;
    return i;
}

static void cu_idle_end(sh_cu_backend *cb, int i) {
    if (i < 0) return;
    if (cudaEventRecord(cb->idle[i].b, cb->stream) == cudaSuccess) cb->idle_n++;
    (void)cudaGetLastError();
}

/* Copies the staged descriptors to the device and launches the queue;
 * at_step_end: through the step-graph cache. */
static shoal_status cu_flush_ex(sh_cu_backend *cb, int at_step_end) {
    if (cb->n_recs == 0) return SHOAL_OK;
    sh_cu_stage *st = &cb->stage[cb->cur];
    const size_t used = cb->used;
    const int n_recs = cb->n_recs;
    /* the queue is consumed whatever happens below */
    cb->n_recs = 0;
    cb->used = 0;
    cb->cur = (cb->cur + 1) % SH_CU_NSTAGE;
    cb->cur_ready = 0;

    if (used > cb->arena_cap) {
        size_t cap = cb->arena_cap ? cb->arena_cap : 64 * 1024;
        while (cap < used) cap *= 2;
        /* kernels still queued may read the old arenas, copies may fill them */
        CU_TRY(cudaStreamSynchronize(cb->stream), "cudaStreamSynchronize (descriptor arena)");
        CU_TRY(cudaStreamSynchronize(cb->cstream), "cudaStreamSynchronize (descriptor arena)");
        cu_graph_clear(cb); /* their kernel parameters point into the old arenas */
        for (int i = 0; i < 2; i++) {
            if (cb->arenas[i]) (void)cudaFree(cb->arenas[i]);
            cb->arenas[i] = NULL;
            cb->half_used[i] = 0;
        }
        cb->arena = NULL;
        cb->arena_cap = 0;
        for (int i = 0; i < 2; i++) {
            void *p = NULL;
            CU_TRY(cudaMalloc(&p, cap), "cudaMalloc (descriptor arena)");
            cb->arenas[i] = p;
        }
        cb->arena_cap = cap;
    }
    /* Under someone else's stream capture the copy becomes a graph node that
     * reads the staging buffer at every replay: no event can track it, so
     * that caller syncs before capturing and keeps the backend idle while it
     * replays; the copy stays on the captured stream, into the arena last
     * filled. Our own step graphs hold kernels only. */
    enum cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
    CU_TRY(cudaStreamIsCapturing(cb->stream, &cap), "cudaStreamIsCapturing");
    if (cap != cudaStreamCaptureStatusNone || !cb->desc_stream) {
        cb->arena = cb->arenas[cb->half];
        CU_TRY(cudaMemcpyAsync(cb->arena, st->host, used, cudaMemcpyHostToDevice, cb->stream), "descriptor copy");
        if (cap == cudaStreamCaptureStatusNone) { /* SHOAL_CUDA_DESC_STREAM=0: one arena, in stream order */
            CU_TRY(cudaEventRecord(st->done, cb->stream), "cudaEventRecord");
            st->pending = 1;
            if (at_step_end && cb->graphs) return cu_run_step(cb, cb->recs, n_recs, used);
        }
        if (at_step_end) cb->gstats.direct++;
        return cu_launch_recs(cb, cb->recs, n_recs);
    }
    const int probe = at_step_end && cb->timing >= 2 ? cu_idle_begin(cb) : -1;
    /* the other arena: its copy waits only for the kernels that last read it
     * (the flush before the previous one), on the copy stream, so it runs
     * while the previous flush's kernels do; the kernels wait for it */
    const int hf = cb->half ^ 1;
    cb->half = hf;
    cb->arena = cb->arenas[hf];
    if (cb->half_used[hf]) CU_TRY(cudaStreamWaitEvent(cb->cstream, cb->half_free[hf], 0), "cudaStreamWaitEvent");
    CU_TRY(cudaMemcpyAsync(cb->arena, st->host, used, cudaMemcpyHostToDevice, cb->cstream), "descriptor copy");
    CU_TRY(cudaEventRecord(st->done, cb->cstream), "cudaEventRecord");
    st->pending = 1;
    CU_TRY(cudaEventRecord(cb->half_ready[hf], cb->cstream), "cudaEventRecord");
    CU_TRY(cudaStreamWaitEvent(cb->stream, cb->half_ready[hf], 0), "cudaStreamWaitEvent");
    shoal_status s;
    if (at_step_end && cb->graphs) {
        s = cu_run_step(cb, cb->recs, n_recs, used);
    } else {
        if (at_step_end) cb->gstats.direct++;
        s = cu_launch_recs(cb, cb->recs, n_recs);
    }
    if (cudaEventRecord(cb->half_free[hf], cb->stream) == cudaSuccess) cb->half_used[hf] = 1;
    else if (s == SHOAL_OK) s = cu_fail(cudaGetLastError(), "cudaEventRecord");
    cu_idle_end(cb, probe);
    return s;
}

static shoal_status cu_flush(sh_cu_backend *cb) { return cu_flush_ex(cb, 0); }

/* Stages n descriptors of desc_size bytes and a starts table; returns host
 * pointers to fill. The launch is queued by cu_queue. */
typedef struct sh_cu_pack {
    void *desc;
    int32_t *starts;
    size_t desc_off, starts_off;
    int n_pad; /* groups the launch is sized for (cu_bucket of the real count) */
} sh_cu_pack;

/* Capacity buckets: group and block counts are rounded up (exact up to 8,
 * then to a multiple of an eighth of their power of two: at most 12.5% more)
 * so that a step graph captured for one batch replays for every batch whose
 * counts fall in the same buckets — the descriptors are rewritten in place
 * and the graph is unchanged. Padding groups are empty; blocks past the real
 * count return at once (starts[n_pad + 1] holds that count). */
static int64_t cu_bucket(int64_t x) {
    if (x <= 8) return x;
    int64_t p = 8;
    while (p * 2 <= x) p *= 2;
    int64_t step = p / 8;
    return (x + step - 1) / step * step;
}

static shoal_status cu_pack(sh_cu_backend *cb, int n, size_t desc_size, sh_cu_pack *pk) {
    const int n_pad = (int)cu_bucket(n);
    pk->n_pad = n_pad;
    size_t dbytes = (size_t)n_pad * desc_size;
    size_t sbytes = ((size_t)n_pad + 2) * sizeof(int32_t);
    size_t dpad = (dbytes + SH_CU_ALIGN - 1) & ~(size_t)(SH_CU_ALIGN - 1);
    size_t off = 0;
    void *host = NULL;
    SH_TRY(cu_stage_reserve(cb, dpad + sbytes, &off, &host));
    memset(host, 0, dpad);
    pk->desc = host;
    pk->starts = (int32_t *)((unsigned char *)host + dpad);
    pk->desc_off = off;
    pk->starts_off = off + dpad;
    return SHOAL_OK;
}

/* Queues the launch of a packed op (n real groups, n_blocks = starts[n]
 * units of work) on a grid of `grid` blocks, and flushes unless a step is
 * open. The kernel finds the work in starts[n_pad + 1]. */
static shoal_status cu_queue_grid(sh_cu_backend *cb, sh_cu_launch_fn fn, const sh_cu_pack *pk, int n,
                                  int64_t n_blocks, int64_t grid, int variant, const char *op) {
    if (grid > INT_MAX || n_blocks > INT_MAX)
        return sh_fail(SHOAL_ERR_UNSUPPORTED, "cuda: %s: %lld blocks exceed the grid limit", op, (long long)n_blocks);
    for (int i = n + 1; i < pk->n_pad; i++) pk->starts[i] = (int32_t)n_blocks; /* empty padding groups */
    pk->starts[pk->n_pad] = (int32_t)grid;
    pk->starts[pk->n_pad + 1] = (int32_t)n_blocks;
    n = pk->n_pad;
    n_blocks = grid;
    if (cb->n_recs == cb->cap_recs) {
        int cap = cb->cap_recs ? cb->cap_recs * 2 : 64;
        sh_cu_launch_rec *p = realloc(cb->recs, (size_t)cap * sizeof *p);
        if (!p) return sh_fail(SHOAL_ERR_NOMEM, "cuda: %s: out of memory (launch queue)", op);
        cb->recs = p;
        cb->cap_recs = cap;
    }
    cb->recs[cb->n_recs++] = (sh_cu_launch_rec){fn, pk->desc_off, pk->starts_off, n, (int)n_blocks, variant};
    return cb->in_step ? SHOAL_OK : cu_flush(cb);
}

/* The same on a grid of one block per unit of work, sized to its capacity
 * bucket (extra blocks return at once). */
static shoal_status cu_queue(sh_cu_backend *cb, sh_cu_launch_fn fn, const sh_cu_pack *pk, int n, int64_t n_blocks,
                             int variant, const char *op) {
    return cu_queue_grid(cb, fn, pk, n, n_blocks, cu_bucket(n_blocks), variant, op);
}

/* Adds `blocks` to the running total and stores the group's first block. */
#define CU_START(pk, i, total, blocks)          \
    do {                                        \
        (pk).starts[i] = (int32_t)(total);      \
        (total) += (int64_t)(blocks);           \
        if ((total) > INT_MAX)                  \
            return sh_fail(SHOAL_ERR_UNSUPPORTED, "cuda: too many blocks in one call"); \
    } while (0)

/* ---- memory ------------------------------------------------------------ */

static shoal_status cu_alloc(sh_backend *be, size_t bytes, void **out) {
    sh_cu_backend *cb = (sh_cu_backend *)be;
    *out = NULL;
    SH_TRY(cu_set_device(cb));
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return sh_fail(e == cudaErrorMemoryAllocation ? SHOAL_ERR_NOMEM : SHOAL_ERR_DEVICE,
                       "cuda:%d: cudaMalloc of %zu bytes failed: %s", cb->device, bytes, cudaGetErrorString(e));
    }
    *out = p;
    return SHOAL_OK;
}

static void cu_free(sh_backend *be, void *ptr) {
    sh_cu_backend *cb = (sh_cu_backend *)be;
    if (!ptr || cu_set_device(cb) != SHOAL_OK) return;
    /* queued kernels may still use ptr */
    (void)cu_flush(cb);
    (void)cudaStreamSynchronize(cb->stream);
    (void)cudaFree(ptr);
}

/* From pageable memory the runtime has consumed src when cudaMemcpyAsync
 * returns (it stages the bytes itself), so the copy may finish in stream
 * order with no wait here; page-locked or device sources are waited for. */
static shoal_status cu_upload(sh_backend *be, void *dst, const void *src, size_t bytes) {
    sh_cu_backend *cb = (sh_cu_backend *)be;
    SH_TRY(cu_set_device(cb));
    SH_TRY(cu_flush(cb));
    struct cudaPointerAttributes pa;
    int pageable = cudaPointerGetAttributes(&pa, src) == cudaSuccess && pa.type == cudaMemoryTypeUnregistered;
    (void)cudaGetLastError();
    CU_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, cb->stream), "upload");
    if (!pageable) CU_TRY(cudaStreamSynchronize(cb->stream), "upload");
    return SHOAL_OK;
}

/* Large downloads into pageable memory go through two page-locked bounce
 * buffers: the device copies chunk i + 1 while the host copies chunk i out
 * (a pageable destination otherwise gets the driver's slower staging). */
static shoal_status cu_download(sh_backend *be, void *dst, const void *src, size_t bytes) {
    sh_cu_backend *cb = (sh_cu_backend *)be;
    SH_TRY(cu_set_device(cb));
    SH_TRY(cu_flush(cb));
    struct cudaPointerAttributes pa;
    int pageable = cudaPointerGetAttributes(&pa, dst) == cudaSuccess && pa.type == cudaMemoryTypeUnregistered;
    (void)cudaGetLastError();
    if (!pageable || bytes < SH_CU_BOUNCE_MIN) {
        CU_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, cb->stream), "download");
        CU_TRY(cudaStreamSynchronize(cb->stream), "download");
        return SHOAL_OK;
    }
    for (int i = 0; i < 2; i++) {
        if (!cb->bounce[i]) {
            void *p = NULL;
            CU_TRY(cudaHostAlloc(&p, SH_CU_BOUNCE, cudaHostAllocDefault), "cudaHostAlloc (download bounce)");
            cb->bounce[i] = p;
        }
        if (!cb->bounce_ev[i])
            CU_TRY(cudaEventCreateWithFlags(&cb->bounce_ev[i], cudaEventDisableTiming), "cudaEventCreate");
    }
    const size_t nch = (bytes + SH_CU_BOUNCE - 1) / SH_CU_BOUNCE;
    for (size_t i = 0; i < nch + 1; i++) {
        if (i < nch) { /* device: chunk i into buffer i % 2 */
            size_t off = i * SH_CU_BOUNCE, len = bytes - off < SH_CU_BOUNCE ? bytes - off : SH_CU_BOUNCE;
            CU_TRY(cudaMemcpyAsync(cb->bounce[i % 2], (const unsigned char *)src + off, len, cudaMemcpyDeviceToHost,
                                   cb->stream), "download");
            CU_TRY(cudaEventRecord(cb->bounce_ev[i % 2], cb->stream), "download");
        }
        if (i > 0) { /* host: chunk i - 1 out of buffer (i - 1) % 2 */
            size_t j = i - 1, off = j * SH_CU_BOUNCE, len = bytes - off < SH_CU_BOUNCE ? bytes - off : SH_CU_BOUNCE;
            CU_TRY(cudaEventSynchronize(cb->bounce_ev[j % 2]), "download");
            memcpy((unsigned char *)dst + off, cb->bounce[j % 2], len);
        }
    }
    return SHOAL_OK;
}

static int cu_supports(sh_backend *be, sh_op op, sh_dtype dt) {
    (void)be;
    switch (op) {
    case SH_OP_GEMM:
    case SH_OP_GET_ROWS:
        return dt == SH_F32 || dt == SH_F16 || dt == SH_BF16 || dt == SH_Q8_0 || dt == SH_Q4_0;
    case SH_OP_KV_WRITE:
    case SH_OP_ATTN: return dt == SH_F32 || dt == SH_F16;
    default: return 1;
    }
}

/* ---- ops --------------------------------------------------------------- */

static int cu_aligned(const void *p, uintptr_t a) { return ((uintptr_t)p % a) == 0; }

/* Bytes a weight element needs aligned for scalar loads. */
static uintptr_t cu_elem_align(sh_dtype dt) { return dt == SH_F32 ? 4 : 2; }

/* Pair epilogues take two weight rows per output pair: SILU_PAIR (a row of
 * w and of w2 per output), ROPE (the two rows of a rotated dim pair). */
/* The RoPE table of (theta, head_dim), made on first use: NULL (the epilogue
 * computes the angle) when the table list is full, the stream is being
 * captured, or the memory is not there. */
static const void *cu_rope_tab(sh_cu_backend *cb, float theta, int head_dim) {
    for (int i = 0; i < cb->n_rope; i++)
        if (cb->rope[i].theta == theta && cb->rope[i].head_dim == head_dim) return cb->rope[i].tab;
    enum cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
    if (cb->n_rope == SH_CU_NROPE || head_dim < 2 || head_dim > 1024 ||
        cudaStreamIsCapturing(cb->stream, &cap) != cudaSuccess || cap != cudaStreamCaptureStatusNone)
        return NULL;
    void *tab = NULL;
    if (cudaMalloc(&tab, (size_t)SH_CU_ROPE_POS * (size_t)(head_dim / 2) * 8) != cudaSuccess) {
        (void)cudaGetLastError();
        return NULL;
    }
    if (sh_cu_rope_table(cb->stream, tab, SH_CU_ROPE_POS, head_dim, theta) != cudaSuccess) {
        (void)cudaGetLastError();
        (void)cudaFree(tab);
        return NULL;
    }
    cb->rope[cb->n_rope].theta = theta;
    cb->rope[cb->n_rope].head_dim = head_dim;
    cb->rope[cb->n_rope].tab = tab;
    cb->n_rope++;
    return tab;
}

static int cu_pair(const sh_gemm_group *e) { return e->epi == SH_EPI_SILU_PAIR || e->epi == SH_EPI_ROPE; }
static int cu_np(const sh_gemm_group *e) { return e->epi == SH_EPI_ROPE ? e->w.n_out / 2 : e->w.n_out; }

/* Blocks of a launch's MMA groups with tile c (a SILU_PAIR tile covers half
 * the outputs: its units hold 8 rows of each weight). */
static int64_t cu_mma_blocks(int S, int c, int n, const sh_gemm_group *g, const unsigned char *mma) {
    const int rows = 16 * sh_cu_mma_wm(S, c), cols = 8 * sh_cu_mma_nt(S, c);
    int64_t blocks = 0;
    for (int i = 0; i < n; i++) {
        const int r = cu_pair(&g[i]) ? rows / 2 : rows, units = cu_np(&g[i]);
        if (mma[i]) blocks += (int64_t)((units + r - 1) / r) * ((g[i].x.rows + cols - 1) / cols);
    }
    return blocks;
}

/* Tile configuration of a launch (bench/NOTES.md, "CUDA decode step").
 * S = 1: SIMT blocks of 16 weight rows, or of 4 rows (c = 1) when 16 would
 * leave SMs idle (8 rows, c = 2, in launches with pair epilogues). Tensor cores: the wide tile when it gives at least 4
 * blocks per SM (LM heads, many models), else the widest of 64 x 16, 32 x 16
 * and 16 x 16 that gives 1.75 blocks per SM, else 16 x 8. Narrow tiles
 * re-read weights from L2 once per 8 or 16 activation rows and x once per
 * 16 * WM weight rows; in exchange a small layer runs on the whole chip.
 * A forced tile (sh_cuda_set_mma_tile) replaces the choice below the
 * 4-per-SM line. */
static int cu_mma_config(const sh_cu_backend *cb, int S, int n, const sh_gemm_group *g, const unsigned char *mma) {
    const int64_t sms = cb->info.sm_count > 0 ? cb->info.sm_count : 132;
    if (S < 2) {
        int64_t rows = 0; /* SIMT groups' weight rows */
        int pair = 0;     /* pair epilogues need >= 2 rows per warp: c = 2 instead of 1 */
        for (int i = 0; i < n; i++)
            if (!mma[i]) {
                rows += (cu_pair(&g[i]) ? 2 : 1) * (int64_t)cu_np(&g[i]);
                pair |= cu_pair(&g[i]);
            }
        if (pair) return rows > 0 && (rows + 15) / 16 < sms ? 2 : 0;
        if (cb->mma_tile >= 0) return cb->mma_tile == 1;
        return rows > 0 && (rows + 15) / 16 < sms;
    }
    if (cb->mma_tile == 0 || cu_mma_blocks(S, 0, n, g, mma) >= 4 * sms) return 0;
    if (cb->mma_tile > 0) {
        if (sh_cu_mma_valid(S, cb->mma_tile)) return cb->mma_tile;
        return cb->mma_tile == 1 ? 2 : 0; /* below S = 16: 1 is 2, 3 is 0 */
    }
    static const int order[] = {4, 3, 1};
    for (int oi = 0; oi < 3; oi++)
        if (sh_cu_mma_valid(S, order[oi]) && 4 * cu_mma_blocks(S, order[oi], n, g, mma) >= 7 * sms) return order[oi];
    return 2;
}

/* Streamed GEMM (gemm_ring.cu) for a launch, as its WM (weight rows 16 WM
 * per item), or 0 for the tile kernels. Eligible: every group on the
 * tensor-core path with 16-bit weights of one dtype, no activation transform
 * but RMS (bf16 weights) and no row norm, M >= 2. Mode 2 takes every eligible launch (WM = 2 when
 * that gives an item per SM). Mode 1, the default, takes launches with at
 * least one 32-row item per SM: on the H200 the ring lost with 16-row items
 * (a single-model M = 16 FFN) (bench/NOTES.md, "Streamed GEMM"). Modes 3
 * and 4 are 1 and 2 with the tensor-copy form (WM = 4) where it applies
 * (cu_tma_ok). */
static int64_t cu_ring_items(int S, int wm, int n, const sh_gemm_group *g) {
    const int nt = sh_cu_ring_nt(S);
    int64_t items = 0;
    for (int i = 0; i < n; i++) {
        const int r = (cu_pair(&g[i]) ? 8 : 16) * wm;
        items += (int64_t)((cu_np(&g[i]) + r - 1) / r) * ((g[i].x.rows + 8 * nt - 1) / (8 * nt));
    }
    return items;
}

/* The tensor-copy form's two tensor maps of group e (the first and second
 * rows of its output pairs; both the one map without a pair epilogue);
 * 0 when it cannot take the group. */
static int cu_tma_maps(sh_cu_backend *cb, const sh_gemm_group *e, const void **a, const void **b) {
    const uint64_t k = (uint64_t)e->w.n_in, n = (uint64_t)e->w.n_out, rb = sh_dtype_row_bytes(SH_BF16, k);
    sh_cu_tmaps **tm = &cb->tmaps;
    *a = *b = NULL;
    if (e->epi == SH_EPI_SILU_PAIR) {
        *a = sh_cu_tmap(tm, cb->stream, e->w.data, k, n, rb, 32);
        *b = sh_cu_tmap(tm, cb->stream, e->w2.data, k, n, rb, 32);
    } else if (e->epi == SH_EPI_ROPE && e->rope.mode == SH_ROPE_NORM) { /* even rows, odd rows */
        if (n % 2) return 0;
        *a = sh_cu_tmap(tm, cb->stream, e->w.data, k, n / 2, 2 * rb, 32);
        *b = sh_cu_tmap(tm, cb->stream, (const unsigned char *)e->w.data + rb, k, n / 2, 2 * rb, 32);
    } else if (e->epi == SH_EPI_ROPE) { /* 32 pairs in a row of one half of a head */
        if (e->rope.head_dim % 64) return 0;
        *a = *b = sh_cu_tmap(tm, cb->stream, e->w.data, k, n, rb, 32);
    } else {
        *a = *b = sh_cu_tmap(tm, cb->stream, e->w.data, k, n, rb, 64);
    }
    return *a && *b;
}

/* The tensor-copy form's blocks per SM for the launch (its K up to kp), or
 * 0 when it does not apply: sm_90, bf16 weights, M <= 16, the activations'
 * terms and 3 stages in half an SM's shared memory (at one block per SM
 * the 8 x 16 down projection ran at half the ring's speed: too few stages in
 * flight), a tensor map for every group. */
static int cu_tma_ok(sh_cu_backend *cb, int S, int n, const sh_gemm_group *g, int deep, int *kp_out, int *ns_out) {
    if (cb->info.cc_major != 9 || g[0].w.dtype != SH_BF16 || sh_cu_ring_nt(S) > 2) return 0;
    int kp = 64;
    for (int i = 0; i < n; i++) {
        const int k = (g[i].w.n_in + 63) / 64 * 64;
        if (k > kp) kp = k;
    }
    /* an SM's 228 KB: per block 1 KB reserved, the pair exchange (<= 4.3 KB)
     * and barriers. Two blocks of 3 stages, or one of as many stages as fit
     * (at most a block's slabs: one item's K in slabs of 128, times 2) */
    const int per_sm = deep ? 1 : 2;
    int ns = 3;
    if (deep) {
        const int want = 2 * ((kp + 127) / 128);
        while (ns < SH_CU_TMA_MAX_STAGES && ns < want &&
               SH_CU_TMA_SMEM(ns + 1, sh_cu_ring_nt(S), kp) + 6144 <= 233472)
            ns++;
    }
    if (kp / 64 > 0x7f || per_sm * (SH_CU_TMA_SMEM(ns, sh_cu_ring_nt(S), kp) + 6144) > 233472) return 0;
    for (int i = 0; i < n; i++) {
        const void *a, *b;
        if (!cu_tma_maps(cb, &g[i], &a, &b)) return 0;
    }
    *kp_out = kp;
    *ns_out = ns;
    return per_sm;
}

static int64_t cu_tmx_items(int nt, int n, const sh_gemm_group *g);

static int cu_ring_config(sh_cu_backend *cb, int S, int xk, int n, const sh_gemm_group *g, const unsigned char *mma,
                          int *tma_kp, int *tma_per_sm, int *tma_ns) {
    *tma_kp = *tma_per_sm = *tma_ns = 0;
    /* the RMS transform: bf16 weights only (its kernels are compiled for
     * them alone), gamma 16-byte aligned (the tensor-copy form's loads) */
    if (!cb->gemm_ring || S < 2 || xk > 1 || (xk == 1 && g[0].w.dtype != SH_BF16)) return 0;
    for (int i = 0; xk == 1 && i < n; i++)
        if (!cu_aligned(g[i].xf_gamma, 16)) return 0;
    const sh_dtype dt = g[0].w.dtype;
    if (dt != SH_BF16 && dt != SH_F16) return 0;
    for (int i = 0; i < n; i++)
        if (!mma[i] || g[i].w.dtype != dt || g[i].norm_out.data) return 0;
    const int64_t sms = cb->info.sm_count > 0 ? cb->info.sm_count : 132;
    const int64_t items = cu_ring_items(S, 2, n, g);
    /* mode 1 with the forms on: the tensor-copy form for launches of 4
     * items per SM (LM heads; bench/NOTES.md, "Tensor-copy form"), and its
     * deep form (one block per SM, all of its weights requested before the
     * wait) for launches of 64-row items for at least half the SMs and at
     * most one per SM ("Deep tensor-copy form") */
    if (cb->gemm_ring == 1 && cb->gemm_tmx && items < 4 * sms && cb->gemm_deep && S <= 16) {
        const int64_t items64 = cu_tmx_items(sh_cu_ring_nt(S), n, g);
        if (cb->gemm_deep == 2 || (2 * items64 >= sms && items64 <= sms))
            if ((*tma_per_sm = cu_tma_ok(cb, S, n, g, 1, tma_kp, tma_ns)) > 0) return 4;
    }
    if (cb->gemm_ring == 1 || cb->gemm_ring == 3)
        if (items < sms) return 0;
    const int tma = cb->gemm_ring >= 3 || (cb->gemm_ring == 1 && cb->gemm_tmx && items >= 4 * sms);
    if (tma && (*tma_per_sm = cu_tma_ok(cb, S, n, g, 0, tma_kp, tma_ns)) > 0) return 4;
    return cb->gemm_ring == 2 || cb->gemm_ring == 4 ? (items >= sms ? 2 : 1) : 2;
}

/* The form with streamed terms: items of 64 weight rows x 8 NT activation
 * rows, and each group's place in the term buffer (its first row, in rows
 * of K rounded up to 64; 0 when the buffer is full). */
static int64_t cu_tmx_items(int nt, int n, const sh_gemm_group *g) {
    int64_t items = 0;
    for (int i = 0; i < n; i++)
        items += (int64_t)((cu_np(&g[i]) + (cu_pair(&g[i]) ? 31 : 63)) / (cu_pair(&g[i]) ? 32 : 64)) *
                 ((g[i].x.rows + 8 * nt - 1) / (8 * nt));
    return items;
}
static int cu_tmx_place(int nt, int n, const sh_gemm_group *g, int32_t *row0) {
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        const size_t pitch = (size_t)(g[i].w.n_in + 63) / 64 * 128, rows = (size_t)((g[i].x.rows + 8 * nt - 1) / (8 * nt)) * 24 * nt;
        const size_t r0 = (off + pitch - 1) / pitch;
        off = (r0 + rows) * pitch;
        if (off > SH_CU_XTERMS_BYTES || r0 > INT32_MAX) return 0;
        if (row0) row0[i] = (int32_t)r0;
    }
    return 1;
}
/* The term buffer's map for rows of K = kp (a multiple of 64) and m tiles of 8 NT rows. */
static const void *cu_tmx_map(sh_cu_backend *cb, int kp, int nt) {
    const uint64_t pitch = (uint64_t)kp * 2;
    return sh_cu_tmap(&cb->tmaps, cb->stream, cb->xterms, (uint64_t)kp, SH_CU_XTERMS_BYTES / pitch, pitch,
                      (uint32_t)(24 * nt));
}

/* The tensor-copy form with streamed terms (gemm_ring.cu) for a launch of
 * more than 16 rows per group: its NT (8, 4 or 2) and blocks per SM, or 0
 * for the other kernels. Eligible: sm_90, every group on the tensor-core
 * path with bf16 weights, no activation transform but RMS (its split kernel
 * normalises the rows) and no row norm, the
 * weights' tensor maps, the terms within the term buffer. NT: the widest
 * the rows allow whose items still give every SM one (else 2); mode 1
 * takes launches where that holds, mode 2 every eligible one; neither
 * with the streamed GEMM off (sh_cuda_set_gemm_ring 0). */
static int cu_tmx_config(sh_cu_backend *cb, int S, int xk, int n, const sh_gemm_group *g, const unsigned char *mma,
                         int *per_sm) {
    *per_sm = 0;
    if (!cb->gemm_tmx || !cb->gemm_ring || !cb->xterms || cb->info.cc_major != 9 || xk > 1 || S < 32 || S > 64) return 0;
    for (int i = 0; i < n; i++)
        if (!mma[i] || g[i].w.dtype != SH_BF16 || g[i].norm_out.data) return 0;
    const int64_t sms = cb->info.sm_count > 0 ? cb->info.sm_count : 132;
    int nt = S >= 64 ? 8 : 4;
    while (nt > 2 && cu_tmx_items(nt, n, g) < sms) nt /= 2;
    if (cb->gemm_tmx == 1 && cu_tmx_items(nt, n, g) < sms) return 0;
    if (!cu_tmx_place(nt, n, g, NULL)) return 0;
    for (int i = 0; i < n; i++) {
        const void *a, *b;
        if (!cu_tma_maps(cb, &g[i], &a, &b) || !cu_tmx_map(cb, (g[i].w.n_in + 63) / 64 * 64, nt)) return 0;
    }
    *per_sm = nt == 8 ? 1 : nt == 4 ? 2 : 3;
    return nt;
}

/* SILU_MUL's second operand allows the 16-byte loads x does */
static int cu_x2_aligned(const sh_gemm_group *e) {
    return e->xf != SH_XF_SILU_MUL || (cu_aligned(e->x2.data, 16) && e->x2.stride % 4 == 0);
}

/* The kernels' transform class of a group: 0 none, 1 RMS, 2 SiLU-gate, 3 GELU, 4 LN. */
static int cu_xk(sh_gemm_xf xf) { return xf == SH_XF_LN ? 4 : xf >= SH_XF_GELU_TANH ? 3 : (int)xf; }

static sh_cu_kv cu_kv(const sh_kv_ref *r) {
    return (sh_cu_kv){
        .pool = r->pool, .block_table = r->block_table, .block_bytes = r->block_bytes,
        .dtype = (int32_t)r->dtype, .layer = r->layer, .kv_dim = r->kv_dim,
    };
}

static shoal_status cu_gemm(sh_backend *be, int n, const sh_gemm_group *g);
static shoal_status cu_norm(sh_backend *be, int n, const sh_norm_group *g);

/* The call's GEMMs without their row norms, then the norms as one launch. */
static shoal_status cu_gemm_norm_apart(sh_backend *be, int n, const sh_gemm_group *g) {
    sh_gemm_group *sub = malloc((size_t)n * sizeof *sub);
    sh_norm_group *ng = malloc((size_t)n * sizeof *ng);
    shoal_status st = SHOAL_OK;
    if (!sub || !ng) st = sh_fail(SHOAL_ERR_NOMEM, "gemm: out of memory");
    int nn = 0;
    for (int i = 0; st == SHOAL_OK && i < n; i++) {
        sub[i] = g[i];
        sub[i].norm_out = (sh_view){NULL, 0, 0, 0};
        if (g[i].norm_out.data)
            ng[nn++] = (sh_norm_group){g[i].y, {NULL, 0, 0, 0}, g[i].norm_gamma, g[i].norm_beta, g[i].norm_eps,
                                       g[i].norm_kind, g[i].norm_out};
    }
    if (st == SHOAL_OK) st = cu_gemm(be, n, sub);
    if (st == SHOAL_OK && nn) st = cu_norm(be, nn, ng);
    free(sub);
    free(ng);
    return st;
}

/* A launch of RMS-transform groups that the streamed forms take, or of LN
 * groups that the one-row kernel cannot take: the norms first, as a launch
 * of their own into xnorm, then the GEMM on those rows without the
 * transform. On the H200 the norm launch (hidden under PDL) cost less than
 * the RMS transform inside those forms (bench/NOTES.md, "Session 14"). Past
 * xnorm's capacity, group by group; a group larger than xnorm keeps the RMS
 * transform in the GEMM, and an LN one is refused. */
static shoal_status cu_gemm_norm_first(sh_cu_backend *cb, int n, const sh_gemm_group *g) {
    size_t need = 0;
    for (int i = 0; i < n; i++) need += ((size_t)g[i].x.rows * (size_t)g[i].w.n_in + 3) / 4 * 4;
    if (!cb->xnorm || need * sizeof(float) > SH_CU_XNORM_BYTES) {
        if (n > 1) {
            for (int i = 0; i < n; i++) SH_TRY(cu_gemm_norm_first(cb, 1, &g[i]));
            return SHOAL_OK;
        }
        if (g[0].xf == SH_XF_LN)
            return sh_fail(SHOAL_ERR_UNSUPPORTED, "cuda: gemm: an LN transform over %d x %d activations exceeds %zu bytes",
                           g[0].x.rows, (int)g[0].w.n_in, SH_CU_XNORM_BYTES);
        const int keep = cb->xf_forms;
        cb->xf_forms = 7;
        const shoal_status st = cu_gemm(&cb->base, n, g);
        cb->xf_forms = keep;
        return st;
    }
    sh_norm_group *ng = malloc((size_t)n * sizeof *ng);
    sh_gemm_group *gg = malloc((size_t)n * sizeof *gg);
    shoal_status st = SHOAL_OK;
    if (!ng || !gg) st = sh_fail(SHOAL_ERR_NOMEM, "gemm: out of memory");
    size_t off = 0;
    for (int i = 0; i < n && st == SHOAL_OK; i++) {
        const int k = (int)g[i].w.n_in;
        const sh_view out = {cb->xnorm + off, g[i].x.rows, k, k};
        const int ln = g[i].xf == SH_XF_LN;
        ng[i] = (sh_norm_group){g[i].x, {NULL, 0, 0, 0}, g[i].xf_gamma, ln ? g[i].xf_beta : NULL, g[i].xf_eps,
                                ln ? SH_NORM_LAYER : SH_NORM_RMS, out};
        gg[i] = g[i];
        gg[i].x = out;
        gg[i].xf = SH_XF_NONE;
        gg[i].xf_gamma = gg[i].xf_beta = NULL;
        off += ((size_t)g[i].x.rows * (size_t)k + 3) / 4 * 4;
    }
    if (st == SHOAL_OK) st = cu_norm(&cb->base, n, ng);
    if (st == SHOAL_OK) st = cu_gemm(&cb->base, n, gg);
    free(ng);
    free(gg);
    return st;
}

static shoal_status cu_gemm(sh_backend *be, int n, const sh_gemm_group *g) {
    sh_cu_backend *cb = (sh_cu_backend *)be;
    SH_TRY(cu_set_device(cb));
    const int xk = cu_xk(g[0].xf);
    for (int i = 1; i < n; i++)
        if (cu_xk(g[i].xf) != xk) {
            /* transform classes are compiled separately: a call mixing them
             * takes one launch per class (the step planner never mixes) */
            sh_gemm_group *sub = malloc((size_t)n * sizeof *sub);
            if (!sub) return sh_fail(SHOAL_ERR_NOMEM, "gemm: out of memory");
            shoal_status st = SHOAL_OK;
            for (int k = 0; k < 5 && st == SHOAL_OK; k++) {
                int m = 0;
                for (int j = 0; j < n; j++)
                    if (cu_xk(g[j].xf) == k) sub[m++] = g[j];
                if (m) st = cu_gemm(be, m, sub);
            }
            free(sub);
            return st;
        }
    /* row norms: a counter per m tile (8 rows or more each); past the
     * counters' capacity the norms are a launch of their own */
    int64_t counts = 0;
    for (int i = 0; i < n; i++)
        if (g[i].norm_out.data) counts += (g[i].x.rows + 7) / 8;
    if (counts > SH_CU_GEMM_COUNTS) return cu_gemm_norm_apart(be, n, g);
    int max_m = 1;
    for (int i = 0; i < n; i++) {
        for (int h = 0; h < 1 + (g[i].epi == SH_EPI_SILU_PAIR); h++) {
            const void *w = h ? g[i].w2.data : g[i].w.data;
            if (!cu_aligned(w, cu_elem_align(g[i].w.dtype)))
                return sh_fail(SHOAL_ERR_UNSUPPORTED, "gemm: group %d: %s weights at %p are not %d-byte aligned", i,
                               sh_dtype_name(g[i].w.dtype), w, (int)cu_elem_align(g[i].w.dtype));
        }
        if (g[i].x.rows > max_m) max_m = g[i].x.rows;
    }
    const int S = sh_cu_gemm_class(max_m);
    unsigned char mma_small[64], *mma = n <= 64 ? mma_small : malloc((size_t)n);
    if (!mma) return sh_fail(SHOAL_ERR_NOMEM, "gemm: out of memory");
    for (int i = 0; i < n; i++) {
        const sh_gemm_group *e = &g[i];
        const sh_dtype dt = e->w.dtype;
        const uint64_t rb = sh_dtype_row_bytes(dt, (uint64_t)e->w.n_in);
        const int float_dt = dt == SH_F32 || dt == SH_F16 || dt == SH_BF16;
        const int vec = float_dt && cu_aligned(e->w.data, 16) && rb % 16 == 0 &&
                        (e->epi != SH_EPI_SILU_PAIR || cu_aligned(e->w2.data, 16));
        const int mma_ok = dt != SH_F32 && e->w.n_in % 32 == 0 && cu_aligned(e->x.data, 16) &&
                           e->x.stride % 4 == 0 && (!float_dt || vec) && cu_x2_aligned(e);
        mma[i] = mma_ok && (cb->gemm_path == SH_CUDA_GEMM_MMA ||
                            (cb->gemm_path == SH_CUDA_GEMM_AUTO && e->x.rows >= SH_CU_MMA_MIN_M));
    }
    if (xk == 4) { /* LN: the one-row SIMT kernel with x direct and 16-byte rows (simt_ln), else the norm apart */
        int native = S == 1 && cb->base.xf_ln;
        for (int i = 0; i < n && native; i++) {
            const sh_gemm_group *e = &g[i];
            const sh_dtype dt = e->w.dtype;
            native = !mma[i] && (dt == SH_F32 || dt == SH_F16 || dt == SH_BF16) && cu_aligned(e->w.data, 16) &&
                     sh_dtype_row_bytes(dt, (uint64_t)e->w.n_in) % 16 == 0 &&
                     (e->epi != SH_EPI_SILU_PAIR || cu_aligned(e->w2.data, 16)) && cu_aligned(e->x.data, 16) &&
                     !e->norm_out.data && cu_aligned(e->xf_gamma, 16) && cu_aligned(e->xf_beta, 16);
        }
        if (!native) {
            if (mma != mma_small) free(mma);
            return cu_gemm_norm_first(cb, n, g);
        }
    }
    int tma_kp = 0, tma_per_sm = 0, tma_ns = 0, tmx_per_sm = 0;
    const int tmx_nt = cu_tmx_config(cb, S, xk, n, g, mma, &tmx_per_sm);
    const int ring_wm = tmx_nt ? 4 : cu_ring_config(cb, S, xk, n, g, mma, &tma_kp, &tma_per_sm, &tma_ns);
    int32_t *tmx_row0 = NULL;
    if (tmx_nt && (!(tmx_row0 = malloc((size_t)n * sizeof *tmx_row0)) || !cu_tmx_place(tmx_nt, n, g, tmx_row0))) {
        free(tmx_row0);
        if (mma != mma_small) free(mma);
        return sh_fail(SHOAL_ERR_NOMEM, "gemm: out of memory");
    }
    if (xk == 1 && (tmx_nt || ring_wm) && !(cb->xf_forms & (tmx_nt ? 4 : ring_wm == 4 ? 2 : 1))) {
        if (mma != mma_small) free(mma);
        free(tmx_row0);
        return cu_gemm_norm_first(cb, n, g);
    }
    const int C = ring_wm ? 0 : cu_mma_config(cb, S, n, g, mma);
    const int simt_rows = SH_CU_WARPS * sh_cu_simt_r(S, C);
    const int mma_rows = 16 * sh_cu_mma_wm(S, C), mma_cols = 8 * sh_cu_mma_nt(S, C);
    sh_cu_pack pk;
    shoal_status st = cu_pack(cb, n, sizeof(sh_cu_gemm_desc), &pk);
    if (st != SHOAL_OK) {
        if (mma != mma_small) free(mma);
        free(tmx_row0);
        return st;
    }
    sh_cu_gemm_desc *d = pk.desc;
    int64_t total = 0, n_counts = 0;
    for (int i = 0; i < n; i++) {
        const sh_gemm_group *e = &g[i];
        const sh_dtype dt = e->w.dtype;
        const uint64_t rb = sh_dtype_row_bytes(dt, (uint64_t)e->w.n_in);
        d[i] = (sh_cu_gemm_desc){
            .w = e->w.data, .bias = e->bias, .x = e->x.data, .y = e->y.data, .row_bytes = (int64_t)rb,
            .n = e->w.n_out, .k = e->w.n_in, .m = e->x.rows, .x_stride = e->x.stride, .y_stride = e->y.stride,
            .dtype = (int32_t)dt, .accumulate = e->accumulate != 0,
        };
        const int float_dt = dt == SH_F32 || dt == SH_F16 || dt == SH_BF16;
        d[i].vec = float_dt && cu_aligned(e->w.data, 16) && rb % 16 == 0 &&
                   (e->epi != SH_EPI_SILU_PAIR || cu_aligned(e->w2.data, 16));
        d[i].epi = (int32_t)e->epi;
        d[i].np = cu_np(e);
        if (e->epi == SH_EPI_SILU_PAIR) {
            d[i].w2 = e->w2.data;
            d[i].bias2 = e->bias2;
        }
        if (e->epi == SH_EPI_ROPE) {
            d[i].pos = e->pos;
            d[i].head_dim = e->rope.head_dim;
            d[i].rope_mode = (int32_t)e->rope.mode;
            d[i].theta = e->rope.theta;
            d[i].rope_tab = cu_rope_tab(cb, e->rope.theta, e->rope.head_dim);
            d[i].rope_tab_n = d[i].rope_tab ? SH_CU_ROPE_POS : 0;
        }
        d[i].err = cb->d_err;
        if (e->kv_which) {
            sh_kv_ref kv = e->kv;
            kv.block_table = e->kv_slot;
            d[i].kv = cu_kv(&kv);
            d[i].kv_which = e->kv_which;
        }
        const int pair_div = cu_pair(e) ? 2 : 1; /* weight rows per output */
        d[i].xdirect = cu_aligned(e->x.data, 16) && cu_x2_aligned(e);
        d[i].xf = (int32_t)e->xf;
        d[i].eps = e->xf_eps;
        d[i].gamma = e->xf == SH_XF_RMS || e->xf == SH_XF_LN ? e->xf_gamma : NULL;
        d[i].beta = e->xf == SH_XF_LN ? e->xf_beta : NULL;
        if (e->xf == SH_XF_SILU_MUL) {
            d[i].x2 = e->x2.data;
            d[i].x2_stride = e->x2.stride;
        }
        if (tmx_nt) {
            const int kp = (e->w.n_in + 63) / 64 * 64;
            d[i].xt = (unsigned char *)cb->xterms + (size_t)tmx_row0[i] * (size_t)kp * 2;
            d[i].xt_row0 = tmx_row0[i];
            d[i].tma_x = cu_tmx_map(cb, kp, tmx_nt);
        }
        if (ring_wm == 4 && (!cu_tma_maps(cb, e, &d[i].tma_a, &d[i].tma_b) || (tmx_nt && !d[i].tma_x))) {
            if (mma != mma_small) free(mma);
            free(tmx_row0);
            return sh_fail(SHOAL_ERR_DEVICE, "cuda: gemm: group %d: its tensor map was lost", i);
        }
        int64_t blocks;
        if (ring_wm) {
            /* work = stages: items x 4-chunk slabs */
            const int nt = tmx_nt ? tmx_nt : sh_cu_ring_nt(S), r = 16 * ring_wm / pair_div;
            d[i].path = SH_CU_PATH_MMA;
            d[i].tiles_n = (cu_np(e) + r - 1) / r;
            blocks = (int64_t)d[i].tiles_n * ((e->x.rows + 8 * nt - 1) / (8 * nt)) * ((e->w.n_in / 32 + 3) / 4);
        } else if (mma[i]) {
            d[i].path = SH_CU_PATH_MMA;
            const int r = mma_rows / pair_div;
            d[i].tiles_n = (cu_np(e) + r - 1) / r;
            blocks = (int64_t)d[i].tiles_n * ((e->x.rows + mma_cols - 1) / mma_cols);
        } else {
            d[i].path = SH_CU_PATH_SIMT;
            const int r = simt_rows / pair_div;
            blocks = (cu_np(e) + r - 1) / r;
        }
        if (e->norm_out.data) {
            const int tiles = mma[i] ? (e->x.rows + mma_cols - 1) / mma_cols : 1;
            d[i].nrm_kind = 1 + (int32_t)e->norm_kind;
            d[i].nrm_out = e->norm_out.data;
            d[i].nrm_stride = e->norm_out.stride;
            d[i].nrm_gamma = e->norm_gamma;
            d[i].nrm_beta = e->norm_kind == SH_NORM_LAYER ? e->norm_beta : NULL;
            d[i].nrm_eps = e->norm_eps;
            d[i].nrm_per = mma[i] ? d[i].tiles_n : (int32_t)blocks;
            d[i].nrm_count = cb->gemm_count + n_counts;
            n_counts += tiles;
        }
        pk.starts[i] = (int32_t)total;
        total += blocks;
        if (total > INT_MAX) {
            if (mma != mma_small) free(mma);
            free(tmx_row0);
            return sh_fail(SHOAL_ERR_UNSUPPORTED, "cuda: too many blocks in one call");
        }
    }
    if (mma != mma_small) free(mma);
    free(tmx_row0);
    pk.starts[n] = (int32_t)total;
    if (ring_wm) {
        const int nt = sh_cu_ring_nt(S);
        const int64_t sms = cb->info.sm_count > 0 ? cb->info.sm_count : 132;
        if (tmx_nt)
            return cu_queue_grid(cb, sh_cu_launch_gemm_ring, &pk, n, total, sms * tmx_per_sm,
                                 tmx_nt | 5 << 4 | (int)(sms * SH_CU_TMX_SPLIT_PER_SM) << 9, "gemm");
        if (ring_wm == 4)
            return cu_queue_grid(cb, sh_cu_launch_gemm_ring, &pk, n, total, sms * tma_per_sm,
                                 nt | 4 << 4 | (tma_kp / 64) << 9 | tma_ns << 16, "gemm");
        return cu_queue_grid(cb, sh_cu_launch_gemm_ring, &pk, n, total, sms * SH_CU_RING_PER_SM,
                             nt | ring_wm << 4 | (g[0].w.dtype == SH_F16) << 8 | (xk == 1) << 9, "gemm");
    }
    return cu_queue(cb, sh_cu_launch_gemm, &pk, n, total, S | (C << 8) | (xk << 12), "gemm");
}

static shoal_status cu_get_rows(sh_backend *be, int n, const sh_get_rows_group *g) {
    sh_cu_backend *cb = (sh_cu_backend *)be;
    SH_TRY(cu_set_device(cb));
    for (int i = 0; i < n; i++)
        if (!cu_aligned(g[i].w.data, cu_elem_align(g[i].w.dtype)))
            return sh_fail(SHOAL_ERR_UNSUPPORTED, "get_rows: group %d: weights are not %d-byte aligned", i,
                           (int)cu_elem_align(g[i].w.dtype));
    sh_cu_pack pk;
    SH_TRY(cu_pack(cb, n, sizeof(sh_cu_get_rows_desc), &pk));
    sh_cu_get_rows_desc *d = pk.desc;
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        const sh_get_rows_group *e = &g[i];
        d[i] = (sh_cu_get_rows_desc){
            .w = e->w.data, .ids = e->ids, .out = e->out.data,
            .row_bytes = (int64_t)sh_dtype_row_bytes(e->w.dtype, (uint64_t)e->w.n_in), .n_out = e->w.n_out,
            .d = e->w.n_in, .stride = e->out.stride, .dtype = (int32_t)e->w.dtype, .accumulate = e->accumulate != 0,
        };
        CU_START(pk, i, total, e->out.rows);
    }
    pk.starts[n] = (int32_t)total;
    return cu_queue(cb, sh_cu_launch_get_rows, &pk, n, total, 0, "get_rows");
}

static shoal_status cu_norm(sh_backend *be, int n, const sh_norm_group *g) {
    sh_cu_backend *cb = (sh_cu_backend *)be;
    SH_TRY(cu_set_device(cb));
    sh_cu_pack pk;
    SH_TRY(cu_pack(cb, n, sizeof(sh_cu_norm_desc), &pk));
    sh_cu_norm_desc *d = pk.desc;
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        const sh_norm_group *e = &g[i];
        d[i] = (sh_cu_norm_desc){
            .x = e->x.data, .add = e->add.data, .gamma = e->gamma, .beta = e->beta, .out = e->out.data,
            .n = e->x.cols, .x_stride = e->x.stride, .add_stride = e->add.data ? e->add.stride : 0,
            .out_stride = e->out.stride, .kind = (int32_t)e->kind, .eps = e->eps,
        };
        CU_START(pk, i, total, e->x.rows);
    }
    pk.starts[n] = (int32_t)total;
    return cu_queue(cb, sh_cu_launch_norm, &pk, n, total, 0, "norm");
}

static shoal_status cu_rope(sh_backend *be, int n, const sh_rope_group *g) {
    sh_cu_backend *cb = (sh_cu_backend *)be;
    SH_TRY(cu_set_device(cb));
    sh_cu_pack pk;
    SH_TRY(cu_pack(cb, n, sizeof(sh_cu_rope_desc), &pk));
    sh_cu_rope_desc *d = pk.desc;
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        const sh_rope_group *e = &g[i];
        d[i] = (sh_cu_rope_desc){
            .x = e->x.data, .pos = e->pos, .stride = e->x.stride, .n_head = e->n_head, .head_dim = e->head_dim,
            .n_rot = e->n_rot, .mode = (int32_t)e->mode, .theta = e->theta,
        };
        CU_START(pk, i, total, e->x.rows);
    }
    pk.starts[n] = (int32_t)total;
    return cu_queue(cb, sh_cu_launch_rope, &pk, n, total, 0, "rope");
}


static shoal_status cu_kv_write(sh_backend *be, int n, const sh_kv_write_group *g) {
    sh_cu_backend *cb = (sh_cu_backend *)be;
    SH_TRY(cu_set_device(cb));
    for (int i = 0; i < n; i++)
        if (!cu_aligned(g[i].kv.pool, 4) || g[i].kv.block_bytes % 4 != 0)
            return sh_fail(SHOAL_ERR_UNSUPPORTED, "kv_write: group %d: pool and block_bytes must be 4-byte aligned", i);
    sh_cu_pack pk;
    SH_TRY(cu_pack(cb, n, sizeof(sh_cu_kv_write_desc), &pk));
    sh_cu_kv_write_desc *d = pk.desc;
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        const sh_kv_write_group *e = &g[i];
        d[i] = (sh_cu_kv_write_desc){
            .k = e->k.data, .v = e->v.data, .pos = e->pos, .kv = cu_kv(&e->kv), .k_stride = e->k.stride,
            .v_stride = e->v.stride,
        };
        if (e->rope.n_rot > 0) {
            d[i].q = e->q.data;
            d[i].q_stride = e->q.data ? e->q.stride : 0;
            d[i].n_head = e->q.data ? e->n_head : 0;
            d[i].head_dim = e->rope.head_dim;
            d[i].n_rot = e->rope.n_rot;
            d[i].rope_mode = (int32_t)e->rope.mode;
            d[i].theta = e->rope.theta;
        }
        CU_START(pk, i, total, e->k.rows);
    }
    pk.starts[n] = (int32_t)total;
    return cu_queue(cb, sh_cu_launch_kv_write, &pk, n, total, 0, "kv_write");
}

static shoal_status cu_attn(sh_backend *be, int n, const sh_attn_group *g) {
    sh_cu_backend *cb = (sh_cu_backend *)be;
    SH_TRY(cu_set_device(cb));
    for (int i = 0; i < n; i++) {
        if (g[i].head_dim > SH_CU_ATTN_DMAX)
            return sh_fail(SHOAL_ERR_UNSUPPORTED, "attn: group %d: head_dim %d > %d", i, g[i].head_dim,
                           SH_CU_ATTN_DMAX);
        if (!cu_aligned(g[i].kv.pool, 4) || g[i].kv.block_bytes % 4 != 0)
            return sh_fail(SHOAL_ERR_UNSUPPORTED, "attn: group %d: pool and block_bytes must be 4-byte aligned", i);
    }
    sh_cu_pack pk;
    SH_TRY(cu_pack(cb, n, sizeof(sh_cu_attn_desc), &pk));
    sh_cu_attn_desc *d = pk.desc;
    /* Query heads per block: sharing a K/V tile among up to 4 heads of one
     * KV head saves reads when the launch has blocks to spare; a small launch
     * (decode of a few sequences) keeps one head per block for parallelism. */
    int64_t pairs = 0;
    for (int i = 0; i < n; i++) pairs += (int64_t)g[i].q.rows * g[i].n_head_kv;
    const int64_t sms = cb->info.sm_count > 0 ? cb->info.sm_count : 132;
    const int hpb = pairs >= 2 * sms ? 4 : 1;
    /* Launches whose keys fit in shared memory take attn_dec.cu (mode 2, the
     * default): a block per (row, KV head) with every key resident, the
     * earlier steps' keys loaded while the previous kernel runs; 512 threads
     * per block when the launch has fewer blocks than half the SMs, 256 when
     * it has at most two an SM (more warps for the latency-bound phases;
     * the results do not depend on the block size). */
    if (cb->attn_dec == 2 || (cb->attn_dec == 1 && pairs >= sms)) {
        const int wide = 2 * pairs < sms, mid = cb->attn_mid && !wide && (cb->attn_mid == 2 || pairs <= 2 * sms);
        /* with the split on (sh_cuda_set_attn_dec_split; off by default: it
         * measured 4-10% slower at one sequence, bench/NOTES.md, "Session
         * 14"), a launch of a few (row, KV head) pairs deals each pair's keys
         * to S blocks, a quarter of the SMs' worth in all, the last to finish
         * combining */
        int S = wide && pairs > 0 ? (int)(sms / (4 * pairs)) : 1;
        if (S > cb->attn_dec_split) S = cb->attn_dec_split;
        if (S < 1) S = 1;
        int64_t part_need = 0, count_need = 0;
        for (int i = 0; i < n; i++) {
            part_need += (int64_t)g[i].q.rows * g[i].n_head * S * (2 + g[i].head_dim);
            count_need += (int64_t)g[i].q.rows * g[i].n_head_kv;
        }
        if (S > 1 && (!cb->attn_part || part_need > (int64_t)SH_CU_ATTN_PART_FLOATS || count_need > SH_CU_ATTN_COUNTS))
            S = 1;
        long smem = 0;
        for (int i = 0; i < n && smem >= 0; i++) {
            const sh_attn_group *e = &g[i];
            const long es = e->kv.dtype == SH_F16 ? 2 : 4, G = e->n_head / e->n_head_kv;
            const long keys = e->causal ? (long)e->pos0 + e->q.rows : e->n_kv;
            const long need = sh_cu_attn_dec_smem(S > 1 ? sh_cu_attn_dec_part_keys((int)keys, S) : keys, e->head_dim,
                                                  es, G);
            const int fits = G <= SH_CU_ATTN_DEC_HEADS && e->head_dim <= 128 && e->head_dim % 8 == 0 &&
                             cu_aligned(e->kv.pool, 16) && e->kv.block_bytes % 16 == 0 &&
                             ((uint64_t)e->kv.kv_dim * (uint64_t)es) % 16 == 0 && need <= SH_CU_ATTN_DEC_SMEM_MAX;
            smem = fits && need > smem ? need : fits ? smem : -1;
        }
        if (smem >= 0) {
            /* the size in steps of cb->attn_kb KB, so a step graph survives the keys growing */
            const long step = 1024L * cb->attn_kb, kb = (smem + step - 1) / step * cb->attn_kb;
            int64_t total = 0, part_off = 0, count_off = 0;
            for (int i = 0; i < n; i++) {
                const sh_attn_group *e = &g[i];
                d[i] = (sh_cu_attn_desc){
                    .q = e->q.data, .out = e->out.data, .kv = cu_kv(&e->kv), .q_stride = e->q.stride,
                    .out_stride = e->out.stride, .n_head = e->n_head, .n_head_kv = e->n_head_kv,
                    .head_dim = e->head_dim, .pos0 = e->pos0, .n_kv = e->n_kv, .causal = e->causal != 0,
                    .vec = 1, .scale = e->scale, .hpb = e->n_head / e->n_head_kv, .splits = S,
                };
                if (S > 1) {
                    d[i].part = cb->attn_part + part_off;
                    d[i].count = cb->attn_count + count_off;
                    part_off += (int64_t)e->q.rows * e->n_head * S * (2 + e->head_dim);
                    count_off += (int64_t)e->q.rows * e->n_head_kv;
                }
                CU_START(pk, i, total, (int64_t)e->q.rows * e->n_head_kv * S);
            }
            pk.starts[n] = (int32_t)total;
            const int v = wide ? (cb->attn_wide == 512 ? 3 : cb->attn_wide == 256 ? 4 : 2) : mid ? 4 : 2;
            return cu_queue(cb, sh_cu_launch_attn, &pk, n, total, v | (int)(kb << 8), "attn");
        }
    }
    /* Split: the key tiles of each block's (row, heads) unit are dealt to up
     * to cb->attn_split_blocks / units blocks (at most 32, and no more than
     * the tiles), when the partial states fit; the last block combines. */
    int64_t units = 0, part_need = 0, count_need = 0;
    for (int i = 0; i < n; i++)
        units += (int64_t)g[i].q.rows * g[i].n_head_kv * SH_CU_ATTN_BLOCKS_PER_KV(g[i].n_head / g[i].n_head_kv, hpb);
    const int64_t budget = cb->attn_part && units > 0 ? cb->attn_split_blocks / units : 1;
    for (int i = 0; i < n; i++) {
        const sh_attn_group *e = &g[i];
        const int64_t tk = sh_cu_attn_tile_keys(e->head_dim, e->kv.dtype == SH_F16 ? 2 : 4);
        const int64_t keys = e->causal ? (int64_t)e->pos0 + e->q.rows : e->n_kv;
        int64_t s = (keys + tk - 1) / tk;
        if (s > budget) s = budget;
        if (s > 32) s = 32;
        if (s < 1) s = 1;
        d[i].splits = (int32_t)s;
        if (s > 1) {
            part_need += (int64_t)e->q.rows * e->n_head * s * (2 + e->head_dim);
            count_need += (int64_t)e->q.rows * e->n_head_kv * SH_CU_ATTN_BLOCKS_PER_KV(e->n_head / e->n_head_kv, hpb);
        }
    }
    const int split_ok = part_need <= (int64_t)SH_CU_ATTN_PART_FLOATS && count_need <= SH_CU_ATTN_COUNTS;
    int64_t total = 0, part_off = 0, count_off = 0;
    for (int i = 0; i < n; i++) {
        const sh_attn_group *e = &g[i];
        const uint64_t es = e->kv.dtype == SH_F16 ? 2 : 4;
        const int32_t splits = split_ok ? d[i].splits : 1;
        d[i] = (sh_cu_attn_desc){
            .q = e->q.data, .out = e->out.data, .kv = cu_kv(&e->kv), .q_stride = e->q.stride,
            .out_stride = e->out.stride, .n_head = e->n_head, .n_head_kv = e->n_head_kv, .head_dim = e->head_dim,
            .pos0 = e->pos0, .n_kv = e->n_kv, .causal = e->causal != 0, .scale = e->scale, .hpb = hpb,
            .splits = splits,
        };
        if (d[i].splits > 1) {
            d[i].part = cb->attn_part + part_off;
            d[i].count = cb->attn_count + count_off;
            part_off += (int64_t)e->q.rows * e->n_head * d[i].splits * (2 + e->head_dim);
            count_off += (int64_t)e->q.rows * e->n_head_kv * SH_CU_ATTN_BLOCKS_PER_KV(e->n_head / e->n_head_kv, hpb);
        }
        d[i].vec = cu_aligned(e->kv.pool, 16) && e->kv.block_bytes % 16 == 0 &&
                   ((uint64_t)e->kv.kv_dim * es) % 16 == 0 && ((uint64_t)e->head_dim * es) % 16 == 0;
        CU_START(pk, i, total,
                 (int64_t)e->q.rows * e->n_head_kv * SH_CU_ATTN_BLOCKS_PER_KV(e->n_head / e->n_head_kv, hpb) *
                     d[i].splits);
    }
    pk.starts[n] = (int32_t)total;
    return cu_queue(cb, sh_cu_launch_attn, &pk, n, total, hpb, "attn");
}

static shoal_status cu_act(sh_backend *be, int n, const sh_act_group *g) {
    sh_cu_backend *cb = (sh_cu_backend *)be;
    SH_TRY(cu_set_device(cb));
    sh_cu_pack pk;
    SH_TRY(cu_pack(cb, n, sizeof(sh_cu_act_desc), &pk));
    sh_cu_act_desc *d = pk.desc;
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        const sh_act_group *e = &g[i];
        const int mul = e->kind == SH_ACT_SILU_MUL;
        d[i] = (sh_cu_act_desc){
            .a = e->a.data, .b = mul ? e->b.data : NULL, .out = e->out.data, .n = e->a.cols,
            .a_stride = e->a.stride, .b_stride = mul ? e->b.stride : 0, .out_stride = e->out.stride,
            .kind = (int32_t)e->kind,
        };
        CU_START(pk, i, total, e->a.rows);
    }
    pk.starts[n] = (int32_t)total;
    return cu_queue(cb, sh_cu_launch_act, &pk, n, total, 0, "act");
}

static shoal_status cu_pool(sh_backend *be, int n, const sh_pool_group *g) {
    sh_cu_backend *cb = (sh_cu_backend *)be;
    SH_TRY(cu_set_device(cb));
    sh_cu_pack pk;
    SH_TRY(cu_pack(cb, n, sizeof(sh_cu_pool_desc), &pk));
    sh_cu_pool_desc *d = pk.desc;
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        const sh_pool_group *e = &g[i];
        d[i] = (sh_cu_pool_desc){
            .x = e->x.data, .out = e->out, .rows = e->x.rows, .n = e->x.cols, .stride = e->x.stride,
            .normalize = e->normalize != 0,
        };
        CU_START(pk, i, total, 1);
    }
    pk.starts[n] = (int32_t)total;
    return cu_queue(cb, sh_cu_launch_pool, &pk, n, total, 0, "pool");
}

static shoal_status cu_argmax(sh_backend *be, int n, const sh_argmax_group *g) {
    sh_cu_backend *cb = (sh_cu_backend *)be;
    SH_TRY(cu_set_device(cb));
    sh_cu_pack pk;
    SH_TRY(cu_pack(cb, n, sizeof(sh_cu_argmax_desc), &pk));
    sh_cu_argmax_desc *d = pk.desc;
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        const sh_argmax_group *e = &g[i];
        d[i] = (sh_cu_argmax_desc){
            .x = e->x.data, .out = e->out, .n = e->x.cols, .stride = e->x.stride,
            .vec = cu_aligned(e->x.data, 16) && e->x.stride % 4 == 0,
        };
        CU_START(pk, i, total, e->x.rows);
    }
    pk.starts[n] = (int32_t)total;
    return cu_queue(cb, sh_cu_launch_argmax, &pk, n, total, 0, "argmax");
}

/* One descriptor (and block) per row: each row has its own parameters. */
static shoal_status cu_sample(sh_backend *be, int n, const sh_sample_group *g) {
    sh_cu_backend *cb = (sh_cu_backend *)be;
    SH_TRY(cu_set_device(cb));
    int64_t rows = 0;
    for (int i = 0; i < n; i++) rows += g[i].x.rows;
    if (rows > INT_MAX / 2) return sh_fail(SHOAL_ERR_UNSUPPORTED, "cuda: sample: %lld rows in one call", (long long)rows);
    sh_cu_pack pk;
    SH_TRY(cu_pack(cb, (int)rows, sizeof(sh_cu_sample_desc), &pk));
    sh_cu_sample_desc *d = pk.desc;
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        const sh_sample_group *e = &g[i];
        const int vec = cu_aligned(e->x.data, 16) && e->x.stride % 4 == 0;
        for (int r = 0; r < e->x.rows; r++) {
            const sh_sample_params *p = &e->p[r];
            d[total] = (sh_cu_sample_desc){
                .x = e->x.data + (size_t)r * (size_t)e->x.stride, .out = e->out + r, .u = p->u, .n = e->x.cols,
                .vec = vec, .temperature = p->temperature, .top_p = p->top_p, .min_p = p->min_p, .top_k = p->top_k,
            };
            pk.starts[total] = (int32_t)total;
            total++;
        }
    }
    pk.starts[total] = (int32_t)total;
    return cu_queue(cb, sh_cu_launch_sample, &pk, (int)total, total, 0, "sample");
}

/* ---- bandwidth --------------------------------------------------------- */

static int cmp_f(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Device copy bandwidth: a device-to-device copy of up to 512 MiB (smaller
 * if memory is short), 2 warm-ups then the median of 9 timed copies, bytes
 * read + written per second. Measured once, then cached. */
static shoal_status cu_bandwidth(sh_backend *be, double *bytes_per_s) {
    sh_cu_backend *cb = (sh_cu_backend *)be;
    *bytes_per_s = 0;
    if (cb->bw > 0) {
        *bytes_per_s = cb->bw;
        return SHOAL_OK;
    }
    SH_TRY(cu_set_device(cb));
    SH_TRY(cu_flush(cb));
    CU_TRY(cudaStreamSynchronize(cb->stream), "bandwidth");
    size_t bytes = (size_t)512 << 20;
    void *a = NULL, *b = NULL;
    while (bytes >= ((size_t)16 << 20)) {
        if (cudaMalloc(&a, bytes) == cudaSuccess && cudaMalloc(&b, bytes) == cudaSuccess) break;
        (void)cudaGetLastError();
        if (a) (void)cudaFree(a);
        a = b = NULL;
        bytes /= 2;
    }
    if (!a) return sh_fail(SHOAL_ERR_NOMEM, "cuda: bandwidth: no room for two 16 MiB buffers");
    enum { WARM = 2, TIMED = 9 };
    cudaEvent_t ev[TIMED + 1] = {0};
    float ms[TIMED];
    shoal_status s = SHOAL_OK;
    cudaError_t e = cudaMemsetAsync(a, 0x5a, bytes, cb->stream);
    for (int i = 0; i <= TIMED && e == cudaSuccess; i++) e = cudaEventCreate(&ev[i]);
    for (int i = 0; i < WARM && e == cudaSuccess; i++)
        e = cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, cb->stream);
    if (e == cudaSuccess) e = cudaEventRecord(ev[0], cb->stream);
    for (int i = 0; i < TIMED && e == cudaSuccess; i++) {
        e = cudaMemcpyAsync(i % 2 ? a : b, i % 2 ? b : a, bytes, cudaMemcpyDeviceToDevice, cb->stream);
        if (e == cudaSuccess) e = cudaEventRecord(ev[i + 1], cb->stream);
    }
    if (e == cudaSuccess) e = cudaEventSynchronize(ev[TIMED]);
    for (int i = 0; i < TIMED && e == cudaSuccess; i++) e = cudaEventElapsedTime(&ms[i], ev[i], ev[i + 1]);
    if (e != cudaSuccess) s = cu_fail(e, "bandwidth");
    for (int i = 0; i <= TIMED; i++)
        if (ev[i]) (void)cudaEventDestroy(ev[i]);
    (void)cudaFree(a);
    (void)cudaFree(b);
    if (s != SHOAL_OK) return s;
    qsort(ms, TIMED, sizeof ms[0], cmp_f);
    if (!(ms[TIMED / 2] > 0)) return sh_fail(SHOAL_ERR_DEVICE, "cuda: bandwidth: the copy took no time");
    cb->bw = 2.0 * (double)bytes / (ms[TIMED / 2] * 1e-3);
    *bytes_per_s = cb->bw;
    return SHOAL_OK;
}

/* ---- sync and steps ---------------------------------------------------- */

static shoal_status cu_sync(sh_backend *be);

static shoal_status cu_download_async(sh_backend *be, void *dst, const void *src, size_t bytes, int *ticket) {
    sh_cu_backend *cb = (sh_cu_backend *)be;
    *ticket = -1;
    SH_TRY(cu_set_device(cb));
    SH_TRY(cu_flush(cb));
    if (cb->async_next < 0) cb->async_next = 0; /* wrapped */
    sh_cu_async *a = &cb->async[cb->async_next % SH_CU_NASYNC];
    if (a->ticket >= 0)
        return sh_fail(SHOAL_ERR_INVALID_ARG, "cuda: more than %d downloads in flight", SH_CU_NASYNC);
    const size_t eo = (bytes + 15) & ~(size_t)15, need = eo + sizeof(int);
    if (need > a->cap) {
        if (a->host) (void)cudaFreeHost(a->host);
        a->host = NULL;
        a->cap = 0;
        void *p = NULL;
        size_t cap = 256;
        while (cap < need) cap *= 2;
        CU_TRY(cudaHostAlloc(&p, cap, cudaHostAllocDefault), "cudaHostAlloc (async download)");
        a->host = p;
        a->cap = cap;
    }
    if (!a->ev) CU_TRY(cudaEventCreateWithFlags(&a->ev, cudaEventDisableTiming), "cudaEventCreate");
    CU_TRY(cudaMemcpyAsync(a->host, src, bytes, cudaMemcpyDeviceToHost, cb->stream), "download");
    CU_TRY(cudaMemcpyAsync(a->host + eo, cb->d_err, sizeof(int), cudaMemcpyDeviceToHost, cb->stream), "download");
    CU_TRY(cudaEventRecord(a->ev, cb->stream), "cudaEventRecord");
    a->dst = dst;
    a->bytes = bytes;
    a->ticket = cb->async_next++;
    *ticket = a->ticket;
    return SHOAL_OK;
}

static shoal_status cu_wait_download(sh_backend *be, int ticket) {
    sh_cu_backend *cb = (sh_cu_backend *)be;
    sh_cu_async *a = ticket >= 0 ? &cb->async[ticket % SH_CU_NASYNC] : NULL;
    if (!a || a->ticket != ticket)
        return sh_fail(SHOAL_ERR_INVALID_ARG, "cuda: wait_download: ticket %d is not in flight", ticket);
    SH_TRY(cu_set_device(cb));
    a->ticket = -1;
    CU_TRY(cudaEventSynchronize(a->ev), "wait_download");
    memcpy(a->dst, a->host, a->bytes);
    int err = 0;
    memcpy(&err, a->host + ((a->bytes + 15) & ~(size_t)15), sizeof err);
    /* a device error: drain, and let sync report and clear it */
    return err ? cu_sync(be) : SHOAL_OK;
}

static shoal_status cu_sync(sh_backend *be) {
    sh_cu_backend *cb = (sh_cu_backend *)be;
    SH_TRY(cu_set_device(cb));
    SH_TRY(cu_flush(cb));
    CU_TRY(cudaMemcpyAsync(cb->h_err, cb->d_err, sizeof(int), cudaMemcpyDeviceToHost, cb->stream), "sync");
    CU_TRY(cudaStreamSynchronize(cb->stream), "sync");
    for (int i = 0; i < SH_CU_NSTAGE; i++) cb->stage[i].pending = 0; /* every copy is done */
    int err = *cb->h_err;
    if (err) {
        *cb->h_err = 0;
        CU_TRY(cudaMemsetAsync(cb->d_err, 0, sizeof(int), cb->stream), "sync");
        CU_TRY(cudaStreamSynchronize(cb->stream), "sync");
        if (err & SH_CU_ERR_ROW_ID)
            return sh_fail(SHOAL_ERR_RANGE, "cuda: get_rows: a row id was out of range (its row was zeroed)");
        return sh_fail(SHOAL_ERR_RANGE, "cuda: kv_write/attn: a KV block table held a negative block id");
    }
    return SHOAL_OK;
}

/* Adds the previous step's device time if its events have completed. */
static void cu_timing_collect(sh_cu_backend *cb) {
    if (!cb->t_pending || cudaEventQuery(cb->t_ev[1]) != cudaSuccess) {
        (void)cudaGetLastError();
        return;
    }
    float ms = 0;
    if (cudaEventElapsedTime(&ms, cb->t_ev[0], cb->t_ev[1]) == cudaSuccess) {
        cb->dev_s += 1e-3 * ms;
        cb->t_dev_steps++;
    }
    (void)cudaGetLastError();
    cb->t_pending = 0;
}

static shoal_status cu_step_begin(sh_backend *be) {
    sh_cu_backend *cb = (sh_cu_backend *)be;
    SH_TRY(cu_set_device(cb));
    SH_TRY(cu_flush(cb)); /* anything queued before belongs to no step */
    cb->in_step = 1;
    if (cb->timing) {
        cu_timing_collect(cb);
        if (cb->timing >= 2) cu_idle_collect(cb, 0);
        cb->idle_first = 1;
        cb->t_begin = sh_host_seconds();
    }
    return SHOAL_OK;
}

/* The device-time event before a step's first flush (its first chunk's). */
static void cu_timing_mark(sh_cu_backend *cb) {
    enum cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
    cb->t_marked = !cb->t_pending && cudaStreamIsCapturing(cb->stream, &cap) == cudaSuccess &&
                   cap == cudaStreamCaptureStatusNone && cudaEventRecord(cb->t_ev[0], cb->stream) == cudaSuccess;
}

/* A chunk of the step: its queue goes through the graph cache as a step of
 * its own (its own signature and graph, its descriptors at the arena's
 * start: the copy is stream-ordered after the previous chunk's kernels). */
static shoal_status cu_step_flush(sh_backend *be) {
    sh_cu_backend *cb = (sh_cu_backend *)be;
    if (!cb->in_step || cb->n_recs == 0) return SHOAL_OK;
    SH_TRY(cu_set_device(cb));
    if (cb->timing && !cb->t_chunks++) cu_timing_mark(cb);
    return cu_flush_ex(cb, 1);
}

static shoal_status cu_step_end(sh_backend *be) {
    sh_cu_backend *cb = (sh_cu_backend *)be;
    cb->in_step = 0;
    SH_TRY(cu_set_device(cb));
    if (!cb->timing || (cb->n_recs == 0 && !cb->t_chunks)) return cu_flush_ex(cb, 1);
    if (!cb->t_chunks) cu_timing_mark(cb);
    cb->t_chunks = 0;
    cb->host_s += sh_host_seconds() - cb->t_begin;
    cb->t_steps++;
    SH_TRY(cu_flush_ex(cb, 1));
    if (cb->t_marked && cudaEventRecord(cb->t_ev[1], cb->stream) == cudaSuccess) cb->t_pending = 1;
    return SHOAL_OK;
}

/* ---- lifetime ---------------------------------------------------------- */

static void cu_destroy(sh_backend *be) {
    sh_cu_backend *cb = (sh_cu_backend *)be;
    if (!cb) return;
    if (cb->timing) {
        if (cb->stream && cudaSetDevice(cb->device) == cudaSuccess && cudaStreamSynchronize(cb->stream) == cudaSuccess) {
            cu_timing_collect(cb);
            if (cb->timing >= 2) cu_idle_collect(cb, 0);
        }
        if (cb->timing >= 2)
            fprintf(stderr, "cuda idle probe: the device waited %.1f us a step for the host before a step's first "
                    "chunk and %.1f us within steps (%llu steps)\n",
                    cb->idle_steps ? 1e6 * cb->idle_step_s / (double)cb->idle_steps : 0.0,
                    cb->idle_steps ? 1e6 * cb->idle_in_s / (double)cb->idle_steps : 0.0,
                    (unsigned long long)cb->idle_steps);
        fprintf(stderr, "cuda step graphs: %llu direct, %llu captured, %llu replayed, %llu evicted, %llu failed; "
                "per step: host %.1f us from step_begin to step_end (%llu steps), device %.1f us from descriptor "
                "copy to last kernel (%llu steps)\n",
                (unsigned long long)cb->gstats.direct, (unsigned long long)cb->gstats.captures,
                (unsigned long long)cb->gstats.replays, (unsigned long long)cb->gstats.evictions,
                (unsigned long long)cb->gstats.capture_failures,
                cb->t_steps ? 1e6 * cb->host_s / (double)cb->t_steps : 0.0, (unsigned long long)cb->t_steps,
                cb->t_dev_steps ? 1e6 * cb->dev_s / (double)cb->t_dev_steps : 0.0,
                (unsigned long long)cb->t_dev_steps);
    }
    if (cudaSetDevice(cb->device) == cudaSuccess) {
        if (cb->stream) {
            (void)cu_flush(cb);
            (void)cudaStreamSynchronize(cb->stream);
        }
        for (int i = 0; i < SH_CU_NSTAGE; i++) {
            if (cb->stage[i].host) (void)cudaFreeHost(cb->stage[i].host);
            if (cb->stage[i].done) (void)cudaEventDestroy(cb->stage[i].done);
        }
        cu_graph_clear(cb);
        if (cb->cstream) (void)cudaStreamSynchronize(cb->cstream);
        for (int i = 0; i < 2; i++) {
            if (cb->arenas[i]) (void)cudaFree(cb->arenas[i]);
            if (cb->half_free[i]) (void)cudaEventDestroy(cb->half_free[i]);
            if (cb->half_ready[i]) (void)cudaEventDestroy(cb->half_ready[i]);
        }
        if (cb->cstream) (void)cudaStreamDestroy(cb->cstream);
        if (cb->d_err) (void)cudaFree(cb->d_err);
        if (cb->attn_part) (void)cudaFree(cb->attn_part);
        if (cb->attn_count) (void)cudaFree(cb->attn_count);
        if (cb->gemm_count) (void)cudaFree(cb->gemm_count);
        if (cb->xterms) (void)cudaFree(cb->xterms);
        if (cb->xnorm) (void)cudaFree(cb->xnorm);
        for (int i = 0; i < cb->n_rope; i++) (void)cudaFree(cb->rope[i].tab);
        sh_cu_tmaps_free(cb->tmaps);
        if (cb->h_err) (void)cudaFreeHost(cb->h_err);
        for (int i = 0; i < 2; i++) {
            if (cb->bounce[i]) (void)cudaFreeHost(cb->bounce[i]);
            if (cb->bounce_ev[i]) (void)cudaEventDestroy(cb->bounce_ev[i]);
            if (cb->t_ev[i]) (void)cudaEventDestroy(cb->t_ev[i]);
        }
        for (int i = 0; i < SH_CU_NASYNC; i++) {
            if (cb->async[i].host) (void)cudaFreeHost(cb->async[i].host);
            if (cb->async[i].ev) (void)cudaEventDestroy(cb->async[i].ev);
        }
        for (int i = 0; i < SH_CU_NIDLE; i++) {
            if (cb->idle[i].a) (void)cudaEventDestroy(cb->idle[i].a);
            if (cb->idle[i].b) (void)cudaEventDestroy(cb->idle[i].b);
        }
        if (cb->idle_prev_b) (void)cudaEventDestroy(cb->idle_prev_b);
        if (cb->stream) (void)cudaStreamDestroy(cb->stream);
    }
    (void)cudaGetLastError();
    free(cb->recs);
    free(cb);
}

static const sh_backend_ops sh_cu_ops = {
    .version = SH_BACKEND_VERSION,
    .name = "cuda",
    .destroy = cu_destroy,
    .alloc = cu_alloc,
    .free = cu_free,
    .upload = cu_upload,
    .download = cu_download,
    .map_host = NULL,
    .supports = cu_supports,
    .gemm = cu_gemm,
    .get_rows = cu_get_rows,
    .norm = cu_norm,
    .rope = cu_rope,
    .kv_write = cu_kv_write,
    .attn = cu_attn,
    .act = cu_act,
    .pool = cu_pool,
    .sync = cu_sync,
    .step_begin = cu_step_begin,
    .step_end = cu_step_end,
    .step_flush = cu_step_flush,
    .bandwidth = cu_bandwidth,
    .argmax = cu_argmax,
    .sample = cu_sample,
    .download_async = cu_download_async,
    .wait_download = cu_wait_download,
};

shoal_status sh_cuda_backend_create(int device_index, sh_backend **out) {
    if (!out) return sh_fail(SHOAL_ERR_INVALID_ARG, "cuda: out is NULL");
    *out = NULL;
    int n;
    SH_TRY(sh_cuda_device_count(&n));
    if (n == 0) return sh_fail(SHOAL_ERR_DEVICE, "no CUDA device (no driver, or no GPU visible)");
    if (device_index < 0 || device_index >= n)
        return sh_fail(SHOAL_ERR_NOT_FOUND, "cuda:%d: no such device (%d present)", device_index, n);

    shoal_status s;
    cudaError_t e;
    sh_cu_backend *cb = calloc(1, sizeof *cb);
    if (!cb) return sh_fail(SHOAL_ERR_NOMEM, "cuda: out of memory");
    cb->base.ops = &sh_cu_ops;
    for (int i = 0; i < SH_CU_NASYNC; i++) cb->async[i].ticket = -1;
    /* GEMM x transforms (the RMS norms read by the QKV and gate+up GEMMs)
     * for launches of one-row groups and launches of up to 16 rows in all:
     * there they take the tile kernels and win (one row: +6-10% SmolLM-135M
     * x 1 on an H200; 1 x 16: +4 to +7% in three of four A/B calls). At 64
     * rows the tile kernels' transform lost (-3.7%), and launches that take
     * the streamed forms run the norm apart first (sh_cuda_set_xf_forms),
     * which still measured -2 to -3.5% at 8 x 16 (bench/NOTES.md,
     * "Session 10" and "Session 14"). SHOAL_CUDA_XF_ROWS=N sets the largest
     * row count. */
    const char *xr = getenv("SHOAL_CUDA_XF_ROWS");
    cb->base.xf_rows_max = xr ? atoi(xr) : 16;
    /* GPT-2's LayerNorms through the QKV and up GEMMs (one row: simt_ln;
     * else a norm launch apart); SHOAL_CUDA_XF_LN=0 keeps the norm launches */
    const char *xl = getenv("SHOAL_CUDA_XF_LN");
    cb->base.xf_ln = !(xl && strcmp(xl, "0") == 0);
    /* GEMM row norms lose to the separate norm kernel on the H200 at every
     * size measured (bench/NOTES.md, "GEMM row norms"); SHOAL_CUDA_GEMM_NORM=1
     * has the planner use them. */
    const char *gn = getenv("SHOAL_CUDA_GEMM_NORM");
    cb->base.gemm_norm = gn && strcmp(gn, "1") == 0;
    snprintf(cb->base.device, sizeof cb->base.device, "cuda:%d", device_index);
    cb->device = device_index;
    cb->gemm_path = SH_CUDA_GEMM_AUTO;
    cb->mma_tile = -1;
    const char *tile_env = getenv("SHOAL_CUDA_MMA_TILE"); /* for measurements: force a tile (0..4) */
    if (tile_env && tile_env[0] >= '0' && tile_env[0] <= '4' && !tile_env[1]) cb->mma_tile = tile_env[0] - '0';
    const char *pdl_env = getenv("SHOAL_CUDA_PDL");
    cb->pdl = !(pdl_env && strcmp(pdl_env, "0") == 0);
    const char *graph_env = getenv("SHOAL_CUDA_GRAPH");
    cb->graphs = !(graph_env && strcmp(graph_env, "0") == 0);
    const char *kb_env = getenv("SHOAL_CUDA_ATTN_KB");
    cb->attn_kb = kb_env && atoi(kb_env) >= 1 && atoi(kb_env) <= 64 ? atoi(kb_env) : 16;
    const char *mid_env = getenv("SHOAL_CUDA_ATTN_MID");
    cb->attn_mid = mid_env ? atoi(mid_env) : 1; /* 2: 256 threads in every launch of more blocks (measurements) */
    /* SHOAL_CUDA_ATTN_WIDE=256 or 128: launches of a few blocks take that many threads a block, not 512 */
    const char *wide_env = getenv("SHOAL_CUDA_ATTN_WIDE");
    cb->attn_wide = wide_env && (atoi(wide_env) == 256 || atoi(wide_env) == 128) ? atoi(wide_env) : 512;
    /* SHOAL_CUDA_ATTN_DEC_SPLIT=N: attn_dec's split of one-sequence launches, at most N blocks a pair (1: off) */
    const char *ds_env = getenv("SHOAL_CUDA_ATTN_DEC_SPLIT");
    cb->attn_dec_split = ds_env && atoi(ds_env) >= 1 && atoi(ds_env) <= 32 ? atoi(ds_env) : 1;

    if ((s = sh_cuda_device_info_get(device_index, &cb->info)) != SHOAL_OK) goto fail;
    /* split attention up to 4 blocks per SM (bench/NOTES.md, "Split decode
     * attention": 8 and 16 were slower at 8 x 16 and 1 x 64);
     * SHOAL_CUDA_ATTN_SPLIT=N blocks per SM, 0 off (after the device info: it needs the SM count) */
    const char *as = getenv("SHOAL_CUDA_ATTN_SPLIT");
    cb->attn_split_blocks = (int64_t)(as ? atoi(as) : 4) * (cb->info.sm_count > 0 ? cb->info.sm_count : 132);
    /* SHOAL_CUDA_ATTN_DEC: 0 never, 1 launches of a (row, KV head) per SM, 2 (default) whenever the keys fit
     * (bench/NOTES.md, "Attention with every key in shared memory") */
    const char *ad = getenv("SHOAL_CUDA_ATTN_DEC");
    cb->attn_dec = ad ? atoi(ad) : 2;
    /* SHOAL_CUDA_GEMM_RING: 0 never, 1 (default) launches of a 32-row item per SM, 2 whenever eligible;
     * 3, 4: as 1, 2 with the tensor-copy form (wgmma, sm_90) for bf16 weights at M <= 16
     * (bench/NOTES.md, "Streamed GEMM") */
    const char *gr = getenv("SHOAL_CUDA_GEMM_RING");
    cb->gemm_ring = gr && atoi(gr) >= 0 && atoi(gr) <= 4 ? atoi(gr) : 1;
    /* SHOAL_CUDA_GEMM_TMX: the tensor-copy forms in the default rules (sh_cuda_set_gemm_tmx) */
    const char *gx = getenv("SHOAL_CUDA_GEMM_TMX");
    cb->gemm_tmx = gx && atoi(gx) >= 0 && atoi(gx) <= 2 ? atoi(gx) : 1;
    /* SHOAL_CUDA_GEMM_DEEP: the deep tensor-copy form in the default rules (sh_cuda_set_gemm_deep) */
    const char *gd = getenv("SHOAL_CUDA_GEMM_DEEP");
    cb->gemm_deep = gd && atoi(gd) >= 0 && atoi(gd) <= 2 ? atoi(gd) : 0;
    if ((e = cudaSetDevice(device_index)) != cudaSuccess) {
        s = cu_fail(e, "cudaSetDevice");
        goto fail;
    }
    if ((e = sh_cu_probe_kernels()) != cudaSuccess) {
        s = sh_fail(SHOAL_ERR_UNSUPPORTED, "cuda:%d: %s (compute capability %d.%d) cannot run this build's kernels: %s",
                    device_index, cb->info.name, cb->info.cc_major, cb->info.cc_minor, cudaGetErrorString(e));
        (void)cudaGetLastError();
        goto fail;
    }
    if ((e = cudaStreamCreateWithFlags(&cb->stream, cudaStreamNonBlocking)) != cudaSuccess ||
        (e = cudaStreamCreateWithFlags(&cb->cstream, cudaStreamNonBlocking)) != cudaSuccess) {
        s = cu_fail(e, "cudaStreamCreate");
        goto fail;
    }
    for (int i = 0; i < 2; i++)
        if ((e = cudaEventCreateWithFlags(&cb->half_free[i], cudaEventDisableTiming)) != cudaSuccess ||
            (e = cudaEventCreateWithFlags(&cb->half_ready[i], cudaEventDisableTiming)) != cudaSuccess) {
            s = cu_fail(e, "cudaEventCreate");
            goto fail;
        }
    for (int i = 0; i < SH_CU_NSTAGE; i++)
        if ((e = cudaEventCreateWithFlags(&cb->stage[i].done, cudaEventDisableTiming)) != cudaSuccess) {
            s = cu_fail(e, "cudaEventCreate");
            goto fail;
        }
    if ((e = cudaMalloc((void **)&cb->d_err, sizeof(int))) != cudaSuccess ||
        (e = cudaMemset(cb->d_err, 0, sizeof(int))) != cudaSuccess ||
        (e = cudaMalloc((void **)&cb->attn_part, SH_CU_ATTN_PART_FLOATS * sizeof(float))) != cudaSuccess ||
        (e = cudaMalloc((void **)&cb->attn_count, SH_CU_ATTN_COUNTS * sizeof(int32_t))) != cudaSuccess ||
        (e = cudaMemset(cb->attn_count, 0, SH_CU_ATTN_COUNTS * sizeof(int32_t))) != cudaSuccess ||
        (e = cudaMalloc((void **)&cb->gemm_count, SH_CU_GEMM_COUNTS * sizeof(int32_t))) != cudaSuccess ||
        (e = cudaMemset(cb->gemm_count, 0, SH_CU_GEMM_COUNTS * sizeof(int32_t))) != cudaSuccess ||
        (e = cudaHostAlloc((void **)&cb->h_err, sizeof(int), cudaHostAllocDefault)) != cudaSuccess) {
        s = cu_fail(e, "error word");
        goto fail;
    }
    if (cb->info.cc_major == 9 && (e = cudaMalloc(&cb->xterms, SH_CU_XTERMS_BYTES)) != cudaSuccess) {
        s = cu_fail(e, "cudaMalloc (term buffer)");
        goto fail;
    }
    if ((e = cudaMalloc((void **)&cb->xnorm, SH_CU_XNORM_BYTES)) != cudaSuccess) {
        s = cu_fail(e, "cudaMalloc (norm rows)");
        goto fail;
    }
    const char *ds = getenv("SHOAL_CUDA_DESC_STREAM");
    cb->desc_stream = !(ds && strcmp(ds, "0") == 0);
    /* SHOAL_CUDA_XF_FORMS=N: the streamed forms that take the RMS transform inside (sh_cuda_set_xf_forms) */
    const char *xff = getenv("SHOAL_CUDA_XF_FORMS");
    cb->xf_forms = xff && atoi(xff) >= 0 && atoi(xff) <= 7 ? atoi(xff) : 0;
    *cb->h_err = 0;
    const char *gs = getenv("SHOAL_CUDA_GRAPH_STATS");
    if (gs && (strcmp(gs, "1") == 0 || strcmp(gs, "2") == 0)) {
        cb->timing = gs[0] - '0';
        for (int i = 0; i < 2; i++)
            if ((e = cudaEventCreate(&cb->t_ev[i])) != cudaSuccess) {
                s = cu_fail(e, "cudaEventCreate");
                goto fail;
            }
        for (int i = 0; cb->timing >= 2 && i < SH_CU_NIDLE; i++)
            if ((e = cudaEventCreate(&cb->idle[i].a)) != cudaSuccess || (e = cudaEventCreate(&cb->idle[i].b)) != cudaSuccess ||
                (!cb->idle_prev_b && (e = cudaEventCreate(&cb->idle_prev_b)) != cudaSuccess)) {
                s = cu_fail(e, "cudaEventCreate");
                goto fail;
            }
    }
    *out = &cb->base;
    return SHOAL_OK;
fail:
    cu_destroy(&cb->base);
    return s;
}

/* ---- knobs --------------------------------------------------------------- */

static sh_cu_backend *cu_of(const sh_backend *be) {
    return be && be->ops == &sh_cu_ops ? (sh_cu_backend *)be : NULL;
}

shoal_status sh_cuda_set_gemm_path(sh_backend *be, sh_cuda_gemm_path path) {
    sh_cu_backend *cb = cu_of(be);
    if (!cb) return sh_fail(SHOAL_ERR_INVALID_ARG, "cuda: set_gemm_path: not a CUDA backend");
    if (path != SH_CUDA_GEMM_AUTO && path != SH_CUDA_GEMM_SIMT && path != SH_CUDA_GEMM_MMA)
        return sh_fail(SHOAL_ERR_INVALID_ARG, "cuda: set_gemm_path: unknown path %d", (int)path);
    cb->gemm_path = path;
    return SHOAL_OK;
}

shoal_status sh_cuda_set_mma_tile(sh_backend *be, int tile) {
    sh_cu_backend *cb = cu_of(be);
    if (!cb) return sh_fail(SHOAL_ERR_INVALID_ARG, "cuda: set_mma_tile: not a CUDA backend");
    if (tile < -1 || tile > 4) return sh_fail(SHOAL_ERR_INVALID_ARG, "cuda: set_mma_tile: unknown tile %d", tile);
    cb->mma_tile = tile;
    return SHOAL_OK;
}

shoal_status sh_cuda_set_attn_split(sh_backend *be, int blocks_per_sm) {
    sh_cu_backend *cb = cu_of(be);
    if (!cb) return sh_fail(SHOAL_ERR_INVALID_ARG, "cuda: set_attn_split: not a CUDA backend");
    if (blocks_per_sm < 0)
        return sh_fail(SHOAL_ERR_INVALID_ARG, "cuda: set_attn_split: %d blocks per SM", blocks_per_sm);
    cb->attn_split_blocks = (int64_t)blocks_per_sm * (cb->info.sm_count > 0 ? cb->info.sm_count : 132);
    return SHOAL_OK;
}

shoal_status sh_cuda_set_gemm_ring(sh_backend *be, int mode) {
    sh_cu_backend *cb = cu_of(be);
    if (!cb) return sh_fail(SHOAL_ERR_INVALID_ARG, "cuda: set_gemm_ring: not a CUDA backend");
    if (mode < 0 || mode > 4) return sh_fail(SHOAL_ERR_INVALID_ARG, "cuda: set_gemm_ring: unknown mode %d", mode);
    cb->gemm_ring = mode;
    return SHOAL_OK;
}

shoal_status sh_cuda_set_gemm_tmx(sh_backend *be, int mode) {
    sh_cu_backend *cb = cu_of(be);
    if (!cb) return sh_fail(SHOAL_ERR_INVALID_ARG, "cuda: set_gemm_tmx: not a CUDA backend");
    if (mode < 0 || mode > 2) return sh_fail(SHOAL_ERR_INVALID_ARG, "cuda: set_gemm_tmx: unknown mode %d", mode);
    cb->gemm_tmx = mode;
    return SHOAL_OK;
}

shoal_status sh_cuda_set_gemm_deep(sh_backend *be, int mode) {
    sh_cu_backend *cb = cu_of(be);
    if (!cb) return sh_fail(SHOAL_ERR_INVALID_ARG, "cuda: set_gemm_deep: not a CUDA backend");
    if (mode < 0 || mode > 2) return sh_fail(SHOAL_ERR_INVALID_ARG, "cuda: set_gemm_deep: unknown mode %d", mode);
    cb->gemm_deep = mode;
    return SHOAL_OK;
}

shoal_status sh_cuda_set_xf_forms(sh_backend *be, int forms) {
    sh_cu_backend *cb = cu_of(be);
    if (!cb) return sh_fail(SHOAL_ERR_INVALID_ARG, "cuda: set_xf_forms: not a CUDA backend");
    if (forms < 0 || forms > 7) return sh_fail(SHOAL_ERR_INVALID_ARG, "cuda: set_xf_forms: unknown forms %d", forms);
    cb->xf_forms = forms;
    return SHOAL_OK;
}

shoal_status sh_cuda_set_attn_dec_split(sh_backend *be, int max_blocks) {
    sh_cu_backend *cb = cu_of(be);
    if (!cb) return sh_fail(SHOAL_ERR_INVALID_ARG, "cuda: set_attn_dec_split: not a CUDA backend");
    if (max_blocks < 1 || max_blocks > 32)
        return sh_fail(SHOAL_ERR_INVALID_ARG, "cuda: set_attn_dec_split: %d blocks", max_blocks);
    cb->attn_dec_split = max_blocks;
    return SHOAL_OK;
}

shoal_status sh_cuda_set_attn_dec(sh_backend *be, int mode) {
    sh_cu_backend *cb = cu_of(be);
    if (!cb) return sh_fail(SHOAL_ERR_INVALID_ARG, "cuda: set_attn_dec: not a CUDA backend");
    if (mode < 0 || mode > 2) return sh_fail(SHOAL_ERR_INVALID_ARG, "cuda: set_attn_dec: unknown mode %d", mode);
    cb->attn_dec = mode;
    return SHOAL_OK;
}

shoal_status sh_cuda_set_pdl(sh_backend *be, int on) {
    sh_cu_backend *cb = cu_of(be);
    if (!cb) return sh_fail(SHOAL_ERR_INVALID_ARG, "cuda: set_pdl: not a CUDA backend");
    SH_TRY(cu_set_device(cb));
    SH_TRY(cu_flush(cb)); /* queued launches keep the setting they were queued under */
    cb->pdl = on != 0;
    return SHOAL_OK;
}

shoal_status sh_cuda_set_graphs(sh_backend *be, int on) {
    sh_cu_backend *cb = cu_of(be);
    if (!cb) return sh_fail(SHOAL_ERR_INVALID_ARG, "cuda: set_graphs: not a CUDA backend");
    SH_TRY(cu_set_device(cb));
    SH_TRY(cu_flush(cb));
    CU_TRY(cudaStreamSynchronize(cb->stream), "set_graphs");
    cb->graphs = on != 0;
    if (!cb->graphs) cu_graph_clear(cb);
    return SHOAL_OK;
}

shoal_status sh_cuda_graph_stats_get(const sh_backend *be, sh_cuda_graph_stats *out) {
    sh_cu_backend *cb = cu_of(be);
    if (!cb || !out) return sh_fail(SHOAL_ERR_INVALID_ARG, "cuda: graph_stats: not a CUDA backend");
    *out = cb->gstats;
    return SHOAL_OK;
}

void *sh_cuda_stream(sh_backend *be) {
    sh_cu_backend *cb = cu_of(be);
    return cb ? (void *)cb->stream : NULL;
}

const sh_cuda_device_info *sh_cuda_backend_info(const sh_backend *be) {
    sh_cu_backend *cb = cu_of(be);
    return cb ? &cb->info : NULL;
}
