/* Grouped GEMM kernels that read x through the RMS norm transform (XK = 1);
 * their own translation unit so the classes compile in parallel. */
#include "gemm_kernel.cuh"

SH_CU_GEMM_LAUNCHER(sh_cu_launch_gemm_rms, 1)
