/* Element types and their GGUF block layouts (bit-exact with ggml/gguf).
 *
 *   f32, f16 (IEEE half), bf16 (upper half of an f32)
 *   q8_0: blocks of 32: { f16 d; int8 qs[32]; }            34 bytes, x = d*q
 *   q4_0: blocks of 32: { f16 d; uint8 qs[16]; }           18 bytes,
 *         x[j] = d*((qs[j] & 15) - 8), x[j+16] = d*((qs[j] >> 4) - 8)
 */
#ifndef SH_DTYPE_H
#define SH_DTYPE_H

#include <stddef.h>
#include <stdint.h>

typedef enum sh_dtype {
    SH_F32 = 0,
    SH_F16 = 1,
    SH_Q4_0 = 2,
    SH_Q8_0 = 8,
    SH_BF16 = 30,
} sh_dtype; /* values are the GGUF/ggml type ids */

#define SH_QK 32 /* elements per q8_0 / q4_0 block */

typedef struct { uint16_t d; int8_t qs[SH_QK]; } sh_block_q8_0;      /* 34 bytes */
typedef struct { uint16_t d; uint8_t qs[SH_QK / 2]; } sh_block_q4_0; /* 18 bytes */

/* 1 if t is one of the dtypes above. */
int sh_dtype_valid(int t);
/* "f32", "f16", "bf16", "q8_0", "q4_0", or "?" */
const char *sh_dtype_name(sh_dtype t);
/* Parses a name as above; returns -1 if unknown. */
int sh_dtype_from_name(const char *name);
/* Elements per block (1 for float types, 32 for quants) and bytes per block. */
int sh_dtype_block(sh_dtype t);
int sh_dtype_block_bytes(sh_dtype t);
/* Bytes of a row of n elements; 0 if n is not a multiple of the block size
 * or on overflow. */
uint64_t sh_dtype_row_bytes(sh_dtype t, uint64_t n);

/* Scalar conversions (round to nearest even, like ggml's reference). */
float sh_f16_to_f32(uint16_t h);
uint16_t sh_f32_to_f16(float f);
float sh_bf16_to_f32(uint16_t h);
uint16_t sh_f32_to_bf16(float f); /* ggml rounding: NaN kept quiet, RNE */

/* Row conversions. n must be a multiple of sh_dtype_block(t). */
void sh_dequantize_row(sh_dtype t, const void *src, float *dst, int64_t n);
void sh_quantize_row(sh_dtype t, const float *src, void *dst, int64_t n);

#endif
