/* Grouped GEMM launches without an activation transform (XK = 0), and the
 * entry that routes a launch to the translation unit compiled for its
 * transform class (the kernels themselves: gemm_kernel.cuh). */
#include "gemm_kernel.cuh"

SH_CU_GEMM_LAUNCHER(sh_cu_launch_gemm_plain, 0)

extern "C" cudaError_t sh_cu_launch_gemm(cudaStream_t s, const sh_cu_launch_args *a) {
    switch (a->variant >> 12) {
    case 0: return sh_cu_launch_gemm_plain(s, a);
    case 1: return sh_cu_launch_gemm_rms(s, a);
    case 2: return sh_cu_launch_gemm_silu(s, a);
    case 3: return sh_cu_launch_gemm_gelu(s, a);
    case 4: return sh_cu_launch_gemm_ln(s, a);
    default: return cudaErrorInvalidValue;
    }
}

extern "C" cudaError_t sh_cu_probe_kernels(void) {
    cudaFuncAttributes attr;
    return cudaFuncGetAttributes(&attr, gemm_kernel<1, 0, 0>);
}
