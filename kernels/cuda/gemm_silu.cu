/* Grouped GEMM kernels that read x through the SiLU-gate transform (XK = 2);
 * their own translation unit so the classes compile in parallel. */
#include "gemm_kernel.cuh"

SH_CU_GEMM_LAUNCHER(sh_cu_launch_gemm_silu, 2)
