/* Host side of the tensor copy engine for the CUDA benchmarks: a 2D bf16
 * tensor map (rows of `row_bytes`, `cols` elements each) with a box of
 * box_cols x box_rows elements, no swizzle unless asked, elements outside the tensor
 * read as zeros. The driver's encoder is looked up at run time (no link to
 * the driver library); false if it is missing or refuses the shape. */
#ifndef SH_BENCH_TENSOR_MAP_H
#define SH_BENCH_TENSOR_MAP_H

#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_runtime.h>
#include <stdint.h>

static inline bool bench_tensor_map_2d(CUtensorMap *map, const void *base, uint64_t cols, uint64_t rows,
                                       uint64_t row_bytes, uint32_t box_cols, uint32_t box_rows,
                                       CUtensorMapSwizzle swizzle = CU_TENSOR_MAP_SWIZZLE_NONE) {
    static PFN_cuTensorMapEncodeTiled_v12000 encode = nullptr;
    if (!encode) {
        void *fn = nullptr;
        cudaDriverEntryPointQueryResult q;
        if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &q) !=
                cudaSuccess ||
            q != cudaDriverEntryPointSuccess || !fn)
            return false;
        encode = reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(fn);
    }
    const cuuint64_t dims[2] = {cols, rows}, strides[1] = {row_bytes};
    const cuuint32_t box[2] = {box_cols, box_rows}, estr[2] = {1, 1};
    return encode(map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, const_cast<void *>(base), dims, strides, box, estr,
                  CU_TENSOR_MAP_INTERLEAVE_NONE, swizzle, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                  CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

#endif
