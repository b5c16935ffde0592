#include "kv.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"

shoal_status sh_kv_pool_create(sh_backend *be, sh_dtype dtype, uint64_t block_bytes, int n_blocks,
                               sh_kv_pool **out) {
    *out = NULL;
    if (!be || n_blocks < 1 || block_bytes == 0 || (dtype != SH_F32 && dtype != SH_F16))
        return sh_fail(SHOAL_ERR_INVALID_ARG, "kv pool: bad arguments");
    block_bytes = (block_bytes + 255) & ~(uint64_t)255;
    uint64_t total;
    if (!sh_mul_ok(block_bytes, (uint64_t)n_blocks, &total) || total > ((uint64_t)1 << 40))
        return sh_fail(SHOAL_ERR_NOMEM, "kv pool: %d blocks of %llu bytes is too large", n_blocks,
                       (unsigned long long)block_bytes);
    sh_kv_pool *p = calloc(1, sizeof *p);
    if (!p) return sh_fail(SHOAL_ERR_NOMEM, "out of memory");
    p->be = be;
    p->dtype = dtype;
    p->block_bytes = block_bytes;
    p->n_blocks = n_blocks;
    p->free_ids = malloc((size_t)n_blocks * sizeof *p->free_ids);
    shoal_status s = SHOAL_OK;
    if (!p->free_ids) {
        s = sh_fail(SHOAL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    s = sh_be_alloc(be, (size_t)total, &p->base);
    if (s != SHOAL_OK) goto fail;
    /* stack: pop from the end, so block 0 is handed out first */
    for (int i = 0; i < n_blocks; i++) p->free_ids[i] = n_blocks - 1 - i;
    p->n_free = n_blocks;
    *out = p;
    return SHOAL_OK;
fail:
    sh_kv_pool_free(p);
    return s;
}

void sh_kv_pool_free(sh_kv_pool *p) {
    if (!p) return;
    if (p->base) sh_be_free(p->be, p->base);
    free(p->free_ids);
    free(p);
}

shoal_status sh_seq_reserve(sh_kv_pool *p, sh_seq *seq, int n_pos) {
    if (n_pos < 0) return sh_fail(SHOAL_ERR_INVALID_ARG, "kv: negative position count");
    int need = sh_kv_blocks_for(n_pos);
    if (need <= seq->n_blocks) return SHOAL_OK;
    int more = need - seq->n_blocks;
    if (more > p->n_free)
        return sh_fail(SHOAL_ERR_RANGE, "KV cache exhausted: need %d more blocks, %d of %d free", more, p->n_free,
                       p->n_blocks);
    if (need > seq->cap_blocks) {
        int nc = seq->cap_blocks ? seq->cap_blocks : 4;
        while (nc < need) nc *= 2;
        int32_t *nb = realloc(seq->blocks, (size_t)nc * sizeof *nb);
        if (!nb) return sh_fail(SHOAL_ERR_NOMEM, "out of memory");
        seq->blocks = nb;
        seq->cap_blocks = nc;
    }
    while (seq->n_blocks < need) seq->blocks[seq->n_blocks++] = p->free_ids[--p->n_free];
    return SHOAL_OK;
}

void sh_seq_release(sh_kv_pool *p, sh_seq *seq) {
    for (int i = 0; i < seq->n_blocks; i++) p->free_ids[p->n_free++] = seq->blocks[i];
    seq->n_blocks = 0;
    seq->n_past = 0;
}

void sh_seq_destroy(sh_kv_pool *p, sh_seq *seq) {
    if (p) sh_seq_release(p, seq);
    free(seq->blocks);
    memset(seq, 0, sizeof *seq);
}
