/* Grouped GEMM kernels that read x through the LayerNorm transform (XK = 4):
 * one-row launches only (simt_ln), so only the S = 1 kernels exist. */
#include "gemm_kernel.cuh"

extern "C" cudaError_t sh_cu_launch_gemm_ln(cudaStream_t s, const sh_cu_launch_args *a) {
    const sh_cu_gemm_desc *desc = static_cast<const sh_cu_gemm_desc *>(a->desc);
    switch (a->variant & 0xfff) {
        SH_CU_GEMM_CASE(1, 0, 4) SH_CU_GEMM_CASE(1, 1, 4) SH_CU_GEMM_CASE(1, 2, 4)
    default: return cudaErrorInvalidValue;
    }
}
