/* dtype conversions against vectors written by the gguf Python package
 * (tests/fixtures/gen_dtype_vectors.py), plus exhaustive f16/bf16 checks and
 * the size arithmetic. */
#include "check.h"
#include "dtype.h"
#include "tensor.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

static const char *fixdir;

/* Reads a whole fixture file; *n gets its size in bytes. Exits on failure:
 * a missing fixture is a broken checkout, not a test result. */
static uint8_t *load(const char *name, size_t *n) {
    char path[1024];
    snprintf(path, sizeof path, "%s/dtype/%s", fixdir, name);
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "cannot open %s\n", path); exit(2); }
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(sz > 0 ? (size_t)sz : 1);
    if (!buf || fread(buf, 1, (size_t)sz, f) != (size_t)sz) { fprintf(stderr, "read %s\n", path); exit(2); }
    fclose(f);
    *n = (size_t)sz;
    return buf;
}

static uint32_t bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float fbits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* Compares float arrays bit for bit; where exact_nan is 0, two NaNs match
 * whatever their payloads (NaNs made by arithmetic are platform-defined). */
static int same_floats(const char *what, const float *want, const float *got, size_t n, int exact_nan) {
    for (size_t i = 0; i < n; i++) {
        uint32_t a = bits(want[i]), b = bits(got[i]);
        if (a == b) continue;
        if (!exact_nan && isnan(want[i]) && isnan(got[i])) continue;
        CHECK(0, "%s[%zu]: want %08x (%g) got %08x (%g)", what, i, a, (double)want[i], b, (double)got[i]);
        return 0;
    }
    return 1;
}

static void test_vectors(void) {
    size_t nin;
    float *in = (float *)load("inputs.f32", &nin);
    int64_t n = (int64_t)(nin / 4);
    CHECK(n > 0 && n % SH_QK == 0, "inputs: %lld values", (long long)n);
    static const sh_dtype types[] = {SH_F16, SH_BF16, SH_Q8_0, SH_Q4_0};
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        sh_dtype t = types[k];
        char name[64];
        size_t nq, nd;
        snprintf(name, sizeof name, "%s.bin", sh_dtype_name(t));
        uint8_t *want_q = load(name, &nq);
        snprintf(name, sizeof name, "%s.deq.f32", sh_dtype_name(t));
        float *want_d = (float *)load(name, &nd);
        CHECK(nq == sh_dtype_row_bytes(t, (uint64_t)n), "%s: %zu bytes, row_bytes says %llu",
              sh_dtype_name(t), nq, (unsigned long long)sh_dtype_row_bytes(t, (uint64_t)n));
        CHECK(nd == nin, "%s: deq size %zu", sh_dtype_name(t), nd);

        /* quantise into an odd address: the block layout has no alignment */
        uint8_t *got_q = calloc(1, nq + 1);
        sh_quantize_row(t, in, got_q + 1, n);
        size_t bad = nq;
        for (size_t i = 0; i < nq; i++)
            if (got_q[1 + i] != want_q[i]) { bad = i; break; }
        size_t el = bad < nq ? bad / (size_t)sh_dtype_block_bytes(t) * (size_t)sh_dtype_block(t) : 0;
        CHECK(bad == nq, "%s quantize: byte %zu want %02x got %02x (block of input %zu = %08x)",
              sh_dtype_name(t), bad, bad < nq ? want_q[bad] : 0, bad < nq ? got_q[1 + bad] : 0, el,
              bits(in[el]));

        /* dequantise the reference bytes, also from an odd address */
        uint8_t *src = malloc(nq + 1);
        memcpy(src + 1, want_q, nq);
        float *got_d = malloc(nin);
        sh_dequantize_row(t, src + 1, got_d, n);
        same_floats(name, want_d, got_d, (size_t)n, t == SH_F16 || t == SH_BF16);
        free(src); free(got_d); free(got_q); free(want_q); free(want_d);
    }
    free(in);

    static const char *raws[] = {"q8_0", "q4_0", "bf16"};
    for (size_t k = 0; k < 3; k++) {
        char name[64];
        size_t nq, nd;
        snprintf(name, sizeof name, "raw_%s.bin", raws[k]);
        uint8_t *q = load(name, &nq);
        snprintf(name, sizeof name, "raw_%s.deq.f32", raws[k]);
        float *want = (float *)load(name, &nd);
        sh_dtype t = (sh_dtype)sh_dtype_from_name(raws[k]);
        int64_t ne = (int64_t)(nd / 4);
        CHECK(nq == sh_dtype_row_bytes(t, (uint64_t)ne), "%s: %zu bytes for %lld values", name, nq, (long long)ne);
        float *got = malloc(nd);
        sh_dequantize_row(t, q, got, ne);
        same_floats(name, want, got, (size_t)ne, t == SH_BF16);
        free(got); free(q); free(want);
    }
}

/* Every half: to f32 against a formula, and back unchanged (NaN payloads too). */
static void test_f16_exhaustive(void) {
    int bad_val = 0, bad_rt = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = sh_f16_to_f32((uint16_t)h);
        uint32_t e = (h >> 10) & 31, m = h & 1023;
        double sgn = (h & 0x8000) ? -1.0 : 1.0;
        if (e == 31) {
            uint32_t want = ((h & 0x8000u) << 16) | 0x7f800000u | (m << 13);
            if (bits(f) != want && bad_val++ < 5) CHECK(0, "f16 %04x -> %08x, want %08x", h, bits(f), want);
        } else {
            double v = e == 0 ? ldexp((double)m, -24) : ldexp((double)(1024 + m), (int)e - 25);
            if ((double)f != sgn * v || (signbit(f) != 0) != (int)(h >> 15)) {
                if (bad_val++ < 5) CHECK(0, "f16 %04x -> %g, want %g", h, (double)f, sgn * v);
            }
        }
        uint16_t back = sh_f32_to_f16(f);
        if (back != h && bad_rt++ < 5) CHECK(0, "f16 %04x -> f32 -> %04x", h, back);
    }
    CHECK(bad_val == 0, "%d f16 values wrong", bad_val);
    CHECK(bad_rt == 0, "%d f16 round trips wrong", bad_rt);

    /* rounding at the edges, independent of the fixtures */
    CHECK(sh_f32_to_f16(65504.0f) == 0x7bff, "max half");
    CHECK(sh_f32_to_f16(65519.99f) == 0x7bff, "below the overflow tie");
    CHECK(sh_f32_to_f16(65520.0f) == 0x7c00, "tie to even overflows to inf");
    CHECK(sh_f32_to_f16(-1e9f) == 0xfc00, "-inf");
    CHECK(sh_f32_to_f16(ldexpf(1.0f, -25)) == 0x0000, "2^-25 ties to 0");
    CHECK(sh_f32_to_f16(nextafterf(ldexpf(1.0f, -25), 1.0f)) == 0x0001, "just above 2^-25");
    CHECK(sh_f32_to_f16(ldexpf(3.0f, -25)) == 0x0002, "1.5 ulp ties to even 2");
    CHECK(sh_f32_to_f16(ldexpf(5.0f, -25)) == 0x0002, "2.5 ulp ties to even 2");
    CHECK(sh_f32_to_f16(ldexpf(1.0f, -14) - ldexpf(1.0f, -25)) == 0x0400, "rounds up into the normals");
    CHECK(sh_f32_to_f16(fbits(0x00000001)) == 0x0000, "f32 subnormal");
    CHECK(sh_f32_to_f16(fbits(0x80000001)) == 0x8000, "-f32 subnormal");
    CHECK(sh_f32_to_f16(1.0f + ldexpf(1.0f, -11)) == 0x3c00, "1 + half ulp ties to even");
    CHECK(sh_f32_to_f16(1.0f + 3 * ldexpf(1.0f, -11)) == 0x3c02, "1 + 1.5 ulp ties to even");
    CHECK(sh_f32_to_f16(fbits(0x7f800001)) == 0x7c01, "NaN with a low payload stays NaN");
    CHECK(sh_f32_to_f16(fbits(0xffc00000)) == 0xfe00, "-NaN");
}

static void test_bf16(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = sh_bf16_to_f32((uint16_t)h);
        if (bits(f) != h << 16 && bad++ < 5) CHECK(0, "bf16 %04x -> %08x", h, bits(f));
        uint16_t want = (uint16_t)h;
        if ((h & 0x7fff) > 0x7f80) want |= 0x40; /* NaNs come back quiet */
        uint16_t back = sh_f32_to_bf16(f);
        if (back != want && bad++ < 5) CHECK(0, "bf16 %04x -> f32 -> %04x, want %04x", h, back, want);
    }
    CHECK(bad == 0, "%d bf16 values wrong", bad);
    CHECK(sh_f32_to_bf16(fbits(0x3f808000)) == 0x3f80, "tie to even (down)");
    CHECK(sh_f32_to_bf16(fbits(0x3f818000)) == 0x3f82, "tie to even (up)");
    CHECK(sh_f32_to_bf16(fbits(0x3f808001)) == 0x3f81, "above the tie");
    CHECK(sh_f32_to_bf16(fbits(0x7f7fffff)) == 0x7f80, "max f32 rounds to inf");
    CHECK(sh_f32_to_bf16(fbits(0x7f800001)) == 0x7fc0, "sNaN quietened");
}

/* Hand-made q8_0 / q4_0 blocks with known answers. */
static void test_known_blocks(void) {
    float x[SH_QK];
    for (int j = 0; j < SH_QK; j++) x[j] = (float)(j - 16) * 0.5f; /* max |x| = 8 at j=0 */
    sh_block_q8_0 b8;
    sh_quantize_row(SH_Q8_0, x, &b8, SH_QK);
    CHECK(b8.d == sh_f32_to_f16(8.0f / 127.0f), "q8_0 d %04x", b8.d);
    CHECK(b8.qs[0] == -127, "q8_0 qs[0] %d", b8.qs[0]);
    CHECK(b8.qs[16] == 0, "q8_0 qs[16] %d", b8.qs[16]);
    sh_block_q4_0 b4;
    sh_quantize_row(SH_Q4_0, x, &b4, SH_QK);
    CHECK(b4.d == sh_f32_to_f16(1.0f), "q4_0 d = -8/-8 = 1: %04x", b4.d);
    float y[SH_QK];
    sh_dequantize_row(SH_Q4_0, &b4, y, SH_QK);
    CHECK(y[0] == -8.0f && y[16] == 0.0f && y[31] == 7.0f, "q4_0 dequant %g %g %g",
          (double)y[0], (double)y[16], (double)y[31]);

    float z[SH_QK] = {0};
    sh_quantize_row(SH_Q4_0, z, &b4, SH_QK);
    CHECK(b4.d == 0x8000, "q4_0 of +0 block: d = +0/-8 = -0, got %04x", b4.d);
    CHECK(b4.qs[0] == 0x88, "q4_0 zero block nibbles are 8: %02x", b4.qs[0]);
    sh_quantize_row(SH_Q8_0, z, &b8, SH_QK);
    CHECK(b8.d == 0 && b8.qs[0] == 0, "q8_0 zero block");
}

static void test_sizes(void) {
    CHECK(sh_dtype_valid(0) && sh_dtype_valid(1) && sh_dtype_valid(2) && sh_dtype_valid(8) && sh_dtype_valid(30),
          "valid ids");
    CHECK(!sh_dtype_valid(3) && !sh_dtype_valid(12) && !sh_dtype_valid(-1) && !sh_dtype_valid(31), "invalid ids");
    static const char *names[] = {"f32", "f16", "bf16", "q8_0", "q4_0"};
    for (int i = 0; i < 5; i++) {
        int t = sh_dtype_from_name(names[i]);
        CHECK(t >= 0 && strcmp(sh_dtype_name((sh_dtype)t), names[i]) == 0, "name %s", names[i]);
    }
    CHECK(sh_dtype_from_name("q4_K") == -1 && sh_dtype_from_name(NULL) == -1, "unknown names");
    CHECK(strcmp(sh_dtype_name((sh_dtype)99), "?") == 0, "unknown id name");
    CHECK(sh_dtype_block(SH_Q8_0) == 32 && sh_dtype_block_bytes(SH_Q8_0) == 34, "q8_0 block");
    CHECK(sh_dtype_block(SH_Q4_0) == 32 && sh_dtype_block_bytes(SH_Q4_0) == 18, "q4_0 block");
    CHECK(sh_dtype_block(SH_BF16) == 1 && sh_dtype_block_bytes(SH_BF16) == 2, "bf16 block");
    CHECK(sh_dtype_row_bytes(SH_F32, 10) == 40, "f32 row");
    CHECK(sh_dtype_row_bytes(SH_F16, 7) == 14, "f16 row");
    CHECK(sh_dtype_row_bytes(SH_Q8_0, 4096) == 128 * 34, "q8_0 row");
    CHECK(sh_dtype_row_bytes(SH_Q4_0, 64) == 36, "q4_0 row");
    CHECK(sh_dtype_row_bytes(SH_Q4_0, 48) == 0, "q4_0 row not a block multiple");
    CHECK(sh_dtype_row_bytes(SH_Q8_0, 31) == 0, "q8_0 row not a block multiple");
    CHECK(sh_dtype_row_bytes(SH_F32, UINT64_MAX / 4 + 1) == 0, "f32 row overflow");
    CHECK(sh_dtype_row_bytes(SH_F32, UINT64_MAX / 4) == (UINT64_MAX / 4) * 4, "f32 largest row");
    CHECK(sh_dtype_row_bytes(SH_Q8_0, (UINT64_MAX / 34 + 1) * 32) == 0, "q8_0 row overflow");
    CHECK(sh_dtype_row_bytes((sh_dtype)7, 32) == 0, "unknown dtype row");

    sh_tensor t = {.n_dims = 2, .ne = {4096, 32000, 1, 1}};
    CHECK(sh_tensor_nelements(&t) == 4096ull * 32000ull, "nelements");
    sh_tensor big = {.n_dims = 4, .ne = {INT64_MAX, 2, 1, 1}};
    CHECK(sh_tensor_nelements(&big) == 0, "nelements overflow");
    sh_tensor big2 = {.n_dims = 4, .ne = {1 << 20, 1 << 20, 1 << 20, 1 << 3}};
    CHECK(sh_tensor_nelements(&big2) == 0, "nelements overflow past int64 (2^63)");
    sh_tensor neg = {.n_dims = 1, .ne = {-1, 1, 1, 1}};
    CHECK(sh_tensor_nelements(&neg) == 0, "negative ne");
    CHECK(sh_tensor_nelements(NULL) == 0, "NULL tensor");
}

int main(void) {
    fixdir = check_env("SHOAL_FIXTURES", "tests/fixtures");
    test_vectors();
    test_f16_exhaustive();
    test_bf16();
    test_known_blocks();
    test_sizes();
    return check_report();
}
