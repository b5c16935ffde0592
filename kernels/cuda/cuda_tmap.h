/* Tensor maps of weight matrices for the copy engine (sm_90): encoded once
 * per (weights, shape, box) on the host, kept in a device table that
 * kernels reach through their descriptors. See cuda_tmap.c. */
#ifndef SH_CUDA_TMAP_H
#define SH_CUDA_TMAP_H

#include <stdint.h>

#include <cuda_runtime_api.h>

typedef struct sh_cu_tmaps sh_cu_tmaps;

/* The device address of the tensor map of `rows` rows of `cols` bf16
 * elements starting at base, rows `stride` bytes apart, read in boxes of
 * 64 elements x box_rows rows with 128-byte swizzle (elements outside the
 * matrix read as zeros); NULL when no map can be had (no driver encoder,
 * the table is full, the shape is refused, a CUDA error). A new map is
 * copied to the table on `stream`, ahead of the kernels that use it. *tm is
 * created on first use. */
const void *sh_cu_tmap(sh_cu_tmaps **tm, cudaStream_t stream, const void *base, uint64_t cols, uint64_t rows,
                       uint64_t stride, uint32_t box_rows);
void sh_cu_tmaps_free(sh_cu_tmaps *tm);

#endif
