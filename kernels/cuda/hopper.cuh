/* Hopper (sm_90) device helpers: mbarriers, the copy engine (bulk and
 * tensor copies completing on an mbarrier) and warpgroup matrix multiplies
 * from shared memory. Included by .cu files; the wgmma forms need sm_90a. */
#ifndef SH_CUDA_HOPPER_CUH
#define SH_CUDA_HOPPER_CUH

#include <stdint.h>

__device__ __forceinline__ unsigned smem_u32(const void *p) { return (unsigned)__cvta_generic_to_shared(p); }

/* p moved up to the next 128-byte boundary of the shared window (tensor
 * copies need it; reserve 128 bytes more) */
__device__ __forceinline__ unsigned char *smem_align128(unsigned char *p) {
    return p + ((128u - (smem_u32(p) & 127u)) & 127u);
}

/* p moved up to the next 1024-byte boundary (128-byte swizzled tensor
 * copies read by wgmma; reserve 1024 bytes more) */
__device__ __forceinline__ unsigned char *smem_align1024(unsigned char *p) {
    return p + ((1024u - (smem_u32(p) & 1023u)) & 1023u);
}

/* ---- mbarriers ---------------------------------------------------------- */

__device__ __forceinline__ void mbar_init(uint64_t *bar, unsigned count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_u32(bar)), "r"(count) : "memory");
}
/* this thread's arrival, announcing `bytes` of copies that complete the phase */
__device__ __forceinline__ void mbar_expect_tx(uint64_t *bar, unsigned bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_u32(bar)), "r"(bytes) : "memory");
}
/* until the phase of parity `parity` has completed */
__device__ __forceinline__ void mbar_wait(uint64_t *bar, unsigned parity) {
    asm volatile("{\n.reg .pred p;\nW: mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n@!p bra W;\n}" ::"r"(
                     smem_u32(bar)),
                 "r"(parity)
                 : "memory");
}
/* every barrier of bar (one arrival per phase) by thread 0, then a block barrier */
template <int NS>
__device__ __forceinline__ void mbar_init_all(uint64_t (&bar)[NS]) {
    if (threadIdx.x == 0) {
        for (int i = 0; i < NS; i++) mbar_init(&bar[i], 1);
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    __syncthreads();
}

/* ---- the copy engine ----------------------------------------------------- */

/* bytes (a multiple of 16) from global src to shared dst (both 16-byte aligned) */
__device__ __forceinline__ void bulk_copy(void *dst, const void *src, unsigned bytes, uint64_t *bar) {
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(
                     smem_u32(dst)),
                 "l"(src), "r"(bytes), "r"(smem_u32(bar))
                 : "memory");
}
/* the box of tensor map `map` (a CUtensorMap in global, constant or
 * parameter memory) at coordinates (c0, c1[, c2]) into dst (128-byte
 * aligned); elements outside the tensor arrive as zeros */
__device__ __forceinline__ void tma_copy_2d(void *dst, const void *map, int c0, int c1, uint64_t *bar) {
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4}], [%2];" ::
                     "r"(smem_u32(dst)),
                 "l"(reinterpret_cast<uint64_t>(map)), "r"(smem_u32(bar)), "r"(c0), "r"(c1)
                 : "memory");
}
__device__ __forceinline__ void tma_copy_3d(void *dst, const void *map, int c0, int c1, int c2, uint64_t *bar) {
    asm volatile(
        "cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4, %5}], [%2];" ::
            "r"(smem_u32(dst)),
        "l"(reinterpret_cast<uint64_t>(map)), "r"(smem_u32(bar)), "r"(c0), "r"(c1), "r"(c2)
        : "memory");
}

/* ---- warpgroup matrix multiply (sm_90a) ------------------------------------ */

/* Shared-memory matrix descriptor, no swizzle: K-major core matrices of 8
 * rows x 16 bytes, `lead` bytes apart along K and `stride` bytes apart
 * along the rows. */
__device__ __forceinline__ uint64_t wg_desc(const void *smem, unsigned lead, unsigned stride) {
    const uint64_t a = (uint64_t)__cvta_generic_to_shared(smem);
    return ((a & 0x3FFFFu) >> 4) | ((uint64_t)(lead >> 4) << 16) | ((uint64_t)(stride >> 4) << 32);
}

/* The same for a K-major operand of 128-byte rows stored by a tensor copy
 * with 128-byte swizzle (8-row groups 1024 bytes apart; the 1024-byte
 * pattern must start 1024-aligned). A k-step of 16 elements at byte b of
 * the row (b < 128, a multiple of 32) is the descriptor of smem + b. */
__device__ __forceinline__ uint64_t wg_desc_sw128(const void *smem) {
    const uint64_t a = (uint64_t)__cvta_generic_to_shared(smem);
    return ((a & 0x3FFFFu) >> 4) | ((uint64_t)1 << 16) | ((uint64_t)(1024 >> 4) << 32) | ((uint64_t)1 << 62);
}

/* d += A B, A 64 x 16 and B 16 x 8 NT bf16 from shared memory, f32 d (the
 * mma.m16n8 accumulator layout per warp and 8 columns) */
template <int NT>
__device__ __forceinline__ void wg_mma(float (&d)[4 * NT], uint64_t a, uint64_t b);
template <>
__device__ __forceinline__ void wg_mma<1>(float (&d)[4], uint64_t a, uint64_t b) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %6, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n8k16.f32.bf16.bf16 {%0, %1, %2, %3}, %4, %5, p, 1, 1, 0, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "l"(a), "l"(b), "r"(1));
}
template <>
__device__ __forceinline__ void wg_mma<2>(float (&d)[8], uint64_t a, uint64_t b) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %10, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n16k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7}, %8, %9, p, 1, "
                 "1, 0, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7])
                 : "l"(a), "l"(b), "r"(1));
}

/* The same with d = A B (the old d ignored) when !accumulate: no separate
 * zeroing instruction touches accumulators that products may still write. */
__device__ __forceinline__ void wg_mma_sd(float (&d)[8], uint64_t a, uint64_t b, int accumulate) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %10, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n16k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7}, %8, %9, p, 1, "
                 "1, 0, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7])
                 : "l"(a), "l"(b), "r"(accumulate));
}

/* d (+)= A B (d = A B when !accumulate) with B 16 x 24 or 16 x 48: three
 * stacked operands of 8 or 16 rows; 12 or 24 f32 per thread */
__device__ __forceinline__ void wg_mma_n24(float (&d)[12], uint64_t a, uint64_t b, int accumulate) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %14, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n24k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11}, %12, %13, p, 1, 1, 0, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11])
                 : "l"(a), "l"(b), "r"(accumulate));
}
__device__ __forceinline__ void wg_mma_n48(float (&d)[24], uint64_t a, uint64_t b, int accumulate) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %26, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n48k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23}, %24, %25, p, 1, 1, 0, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23])
                 : "l"(a), "l"(b), "r"(accumulate));
}

/* The accumulators are written by the tensor cores until wgmma.wait_group:
 * this keeps the compiler from moving their reads or writes across it. */
template <int N>
__device__ __forceinline__ void wg_fence_regs(float (&d)[N]) {
#pragma unroll
    for (int i = 0; i < N; i++) asm volatile("" : "+f"(d[i])::"memory");
}
__device__ __forceinline__ void wg_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wg_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wg_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(N) : "memory"); }

#endif
