/* Element types: names, block sizes, scalar f16/bf16 conversions and the
 * q8_0 / q4_0 row quantisers.
 *
 * The quantisers reproduce, bit for bit, the reference rounding of the
 * format (what the `gguf` Python package writes):
 *   - every intermediate is an f32 operation, evaluated in program order
 *     (no fused multiply-add: see the pragmas below);
 *   - f32 -> int conversions behave as a truncating conversion to int32
 *     whose low byte is kept; NaN, inf and |v| >= 2^31 give 0.
 * NaN and inf inputs therefore give defined (if useless) blocks instead of
 * undefined behaviour.
 */
#include "dtype.h"

#include <math.h>
#include <string.h>

/* x*id + 8.5f must round twice, like the reference; forbid contraction. */
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

_Static_assert(sizeof(sh_block_q8_0) == 34, "q8_0 block is 34 bytes");
_Static_assert(sizeof(sh_block_q4_0) == 18, "q4_0 block is 18 bytes");

/* ---- names and sizes ------------------------------------------------------ */

int sh_dtype_valid(int t) {
    switch (t) {
    case SH_F32: case SH_F16: case SH_BF16: case SH_Q8_0: case SH_Q4_0: return 1;
    default: return 0;
    }
}

const char *sh_dtype_name(sh_dtype t) {
    switch (t) {
    case SH_F32: return "f32";
    case SH_F16: return "f16";
    case SH_BF16: return "bf16";
    case SH_Q8_0: return "q8_0";
    case SH_Q4_0: return "q4_0";
    }
    return "?";
}

int sh_dtype_from_name(const char *name) {
    static const sh_dtype all[] = {SH_F32, SH_F16, SH_BF16, SH_Q8_0, SH_Q4_0};
    if (!name) return -1;
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (strcmp(name, sh_dtype_name(all[i])) == 0) return (int)all[i];
    return -1;
}

int sh_dtype_block(sh_dtype t) {
    switch (t) {
    case SH_F32: case SH_F16: case SH_BF16: return 1;
    case SH_Q8_0: case SH_Q4_0: return SH_QK;
    }
    return 0;
}

int sh_dtype_block_bytes(sh_dtype t) {
    switch (t) {
    case SH_F32: return 4;
    case SH_F16: case SH_BF16: return 2;
    case SH_Q8_0: return (int)sizeof(sh_block_q8_0);
    case SH_Q4_0: return (int)sizeof(sh_block_q4_0);
    }
    return 0;
}

uint64_t sh_dtype_row_bytes(sh_dtype t, uint64_t n) {
    uint64_t blk = (uint64_t)sh_dtype_block(t), bb = (uint64_t)sh_dtype_block_bytes(t);
    if (blk == 0 || n % blk != 0) return 0;
    uint64_t nb = n / blk;
    if (nb != 0 && bb > UINT64_MAX / nb) return 0;
    return nb * bb;
}

/* ---- scalar conversions --------------------------------------------------- */

static inline uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* h: sign(1) exp(5) mant(10). Exact; NaN payloads are kept (shifted up). */
float sh_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    if (exp == 0x1f) return bits_f32(sign | 0x7f800000u | (mant << 13));
    if (exp != 0) return bits_f32(sign | ((exp + 112u) << 23) | (mant << 13));
    if (mant == 0) return bits_f32(sign);
    /* subnormal: mant * 2^-24; normalise so the leading 1 lands on bit 10 */
    uint32_t e = 113; /* biased f32 exponent of 2^-14 */
    while (!(mant & 0x400u)) { mant <<= 1; e--; }
    return bits_f32(sign | (e << 23) | ((mant & 0x3ffu) << 13));
}

/* Round to nearest, ties to even, with subnormals; overflow gives inf.
 * NaN keeps its sign and the top 10 payload bits (0x7c01 if those are 0). */
uint16_t sh_f32_to_f16(float f) {
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu, exp = a >> 23;
    if (exp == 0xff) {
        if ((a & 0x7fffffu) == 0) return sign | 0x7c00u;
        uint16_t r = (uint16_t)(0x7c00u + ((a & 0x7fffffu) >> 13));
        return sign | (r == 0x7c00u ? 0x7c01u : r);
    }
    if (a >= 0x477ff000u) return sign | 0x7c00u; /* >= 65520 rounds to inf */
    if (exp >= 113) {                             /* normal half */
        uint32_t base = (a >> 13) - (112u << 10), rem = a & 0x1fffu;
        if (rem > 0x1000u || (rem == 0x1000u && (base & 1u))) base++;
        return sign | (uint16_t)base;
    }
    if (exp < 102) return sign; /* below 2^-25: rounds to zero */
    /* subnormal half: value = m * 2^(exp-150), in units of 2^-24 shift by s */
    uint32_t m = (a & 0x7fffffu) | 0x800000u, s = 126u - exp; /* 14..24 */
    uint32_t q = m >> s, rem = m & ((1u << s) - 1u), half = 1u << (s - 1u);
    if (rem > half || (rem == half && (q & 1u))) q++;
    return sign | (uint16_t)q;
}

float sh_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

/* NaN: quiet bit forced, top payload kept; otherwise round to nearest even
 * on the upper 16 bits (finite values may round up to inf). */
uint16_t sh_f32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) u = (u & 0xffff0000u) | 0x00400000u;
    uint64_t r = ((uint64_t)u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    return (uint16_t)r;
}

/* ---- quantisers ----------------------------------------------------------- */

/* The low byte of a truncating f32 -> int32 conversion; 0 when the value is
 * NaN, infinite or outside int32 (what the reference's casts produce). */
static inline uint8_t trunc_low_byte(float v) {
    if (!(fabsf(v) < 2147483648.0f)) return 0;
    return (uint8_t)((uint32_t)(int32_t)v & 0xffu);
}

/* Round half away from zero; NaN and inf pass through. */
static inline float round_away(float v) { return roundf(v); }

/* q8_0: d = max|x| / 127, q = round_away(x / d) (as x * (1/d)). */
static void quantize_q8_0(const float *x, uint8_t *out, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, x += SH_QK, out += sizeof(sh_block_q8_0)) {
        sh_block_q8_0 y;
        float amax = 0.0f;
        for (int j = 0; j < SH_QK; j++) {
            float a = fabsf(x[j]);
            if (isnan(a)) { amax = a; break; } /* max propagates NaN */
            if (a > amax) amax = a;
        }
        float d = amax / 127.0f;
        float id = d == 0.0f ? 0.0f : 1.0f / d;
        y.d = sh_f32_to_f16(d);
        for (int j = 0; j < SH_QK; j++) {
            uint8_t q = trunc_low_byte(round_away(x[j] * id));
            memcpy(&y.qs[j], &q, 1);
        }
        memcpy(out, &y, sizeof y); /* dst may be unaligned */
    }
}

/* q4_0: m = the x of largest |x| (first one; a NaN wins), d = m / -8,
 * q = min(15, trunc(x * (1/d) + 8.5)); x[j] goes to the low nibble of
 * qs[j], x[j+16] to the high nibble. */
static void quantize_q4_0(const float *x, uint8_t *out, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, x += SH_QK, out += sizeof(sh_block_q4_0)) {
        sh_block_q4_0 y;
        float amax = -1.0f, m = 0.0f;
        for (int j = 0; j < SH_QK; j++) {
            float a = fabsf(x[j]);
            if (isnan(a)) { m = x[j]; break; }
            if (a > amax) { amax = a; m = x[j]; }
        }
        float d = m / -8.0f;
        float id = d == 0.0f ? 0.0f : 1.0f / d;
        y.d = sh_f32_to_f16(d);
        uint8_t q[SH_QK];
        for (int j = 0; j < SH_QK; j++) {
            float v = x[j] * id;
            v = v + 8.5f;
            uint8_t t = trunc_low_byte(truncf(v));
            q[j] = t > 15 ? 15 : t;
        }
        for (int j = 0; j < SH_QK / 2; j++)
            y.qs[j] = (uint8_t)(q[j] | (q[j + SH_QK / 2] << 4));
        memcpy(out, &y, sizeof y);
    }
}

void sh_quantize_row(sh_dtype t, const float *src, void *dst, int64_t n) {
    switch (t) {
    case SH_F32: memcpy(dst, src, (size_t)n * sizeof(float)); return;
    case SH_F16: {
        uint8_t *o = dst;
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = sh_f32_to_f16(src[i]);
            memcpy(o + 2 * i, &h, 2);
        }
        return;
    }
    case SH_BF16: {
        uint8_t *o = dst;
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = sh_f32_to_bf16(src[i]);
            memcpy(o + 2 * i, &h, 2);
        }
        return;
    }
    case SH_Q8_0: quantize_q8_0(src, dst, n / SH_QK); return;
    case SH_Q4_0: quantize_q4_0(src, dst, n / SH_QK); return;
    }
}

/* ---- dequantisers --------------------------------------------------------- */

void sh_dequantize_row(sh_dtype t, const void *src, float *dst, int64_t n) {
    switch (t) {
    case SH_F32: memcpy(dst, src, (size_t)n * sizeof(float)); return;
    case SH_F16: {
        const uint8_t *p = src;
        for (int64_t i = 0; i < n; i++) {
            uint16_t h; memcpy(&h, p + 2 * i, 2);
            dst[i] = sh_f16_to_f32(h);
        }
        return;
    }
    case SH_BF16: {
        const uint8_t *p = src;
        for (int64_t i = 0; i < n; i++) {
            uint16_t h; memcpy(&h, p + 2 * i, 2);
            dst[i] = sh_bf16_to_f32(h);
        }
        return;
    }
    case SH_Q8_0: {
        /* x = d * q; blocks may sit at any byte offset in a mapping */
        const uint8_t *p = src;
        for (int64_t b = 0; b < n / SH_QK; b++, p += sizeof(sh_block_q8_0)) {
            uint16_t h; memcpy(&h, p, 2);
            float d = sh_f16_to_f32(h);
            for (int j = 0; j < SH_QK; j++) {
                int8_t q; memcpy(&q, p + 2 + j, 1);
                dst[b * SH_QK + j] = (float)q * d;
            }
        }
        return;
    }
    case SH_Q4_0: {
        /* x[j] = d * ((qs[j] & 15) - 8), x[j+16] = d * ((qs[j] >> 4) - 8) */
        const uint8_t *p = src;
        for (int64_t b = 0; b < n / SH_QK; b++, p += sizeof(sh_block_q4_0)) {
            uint16_t h; memcpy(&h, p, 2);
            float d = sh_f16_to_f32(h);
            for (int j = 0; j < SH_QK / 2; j++) {
                uint8_t v = p[2 + j];
                dst[b * SH_QK + j] = d * (float)((int)(v & 15) - 8);
                dst[b * SH_QK + j + SH_QK / 2] = d * (float)((int)(v >> 4) - 8);
            }
        }
        return;
    }
    }
}
