/* Grouped GEMM kernels that read x through the GELU transform (XK = 3);
 * their own translation unit so the classes compile in parallel. */
#include "gemm_kernel.cuh"

SH_CU_GEMM_LAUNCHER(sh_cu_launch_gemm_gelu, 3)
