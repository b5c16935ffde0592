/* The paged KV pool: one per device, shared by every model on it. Blocks of
 * SH_KV_BLOCK tokens; a block holds every layer's K and V for its tokens in
 * the layout backend.h describes (sh_kv_ref). Sequences own block tables. */
#ifndef SH_KV_H
#define SH_KV_H

#include "backend.h"

typedef struct sh_kv_pool {
    sh_backend *be;
    void *base;           /* backend address: n_blocks * block_bytes */
    sh_dtype dtype;       /* SH_F32 or SH_F16 */
    uint64_t block_bytes; /* fixed for the pool: the largest model's block */
    int n_blocks;
    int32_t *free_ids;    /* (n_blocks) stack of free block ids */
    int n_free;
} sh_kv_pool;

/* One sequence's KV state. */
typedef struct sh_seq {
    int32_t *blocks;      /* (n_blocks) physical ids, host copy */
    int n_blocks;
    int cap_blocks;
    int n_past;           /* positions written */
} sh_seq;

/* Allocates n_blocks blocks of block_bytes on be. */
shoal_status sh_kv_pool_create(sh_backend *be, sh_dtype dtype, uint64_t block_bytes, int n_blocks,
                               sh_kv_pool **out);
void sh_kv_pool_free(sh_kv_pool *p);

/* Makes seq's table cover n_pos positions. SHOAL_ERR_RANGE when the pool
 * has too few free blocks (seq keeps what it had). */
shoal_status sh_seq_reserve(sh_kv_pool *p, sh_seq *seq, int n_pos);
/* Returns every block of seq to the pool and resets it (n_past = 0). */
void sh_seq_release(sh_kv_pool *p, sh_seq *seq);
/* Frees the table memory itself (after release). */
void sh_seq_destroy(sh_kv_pool *p, sh_seq *seq);

static inline int sh_kv_blocks_for(int n_pos) { return (n_pos + SH_KV_BLOCK - 1) / SH_KV_BLOCK; }

#endif
