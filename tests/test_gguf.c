/* GGUF reader: the files written by gguf.GGUFWriter under fixtures/gguf
 * (tests/fixtures/gen_gguf_fixtures.py), every truncation of them, malformed
 * images built here byte by byte, and the malformed files in
 * fixtures/malformed. */
#include "check.h"
#include "error.h"
#include "gguf.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *fixdir;

static char *fixture(const char *rel) {
    static char path[1024];
    snprintf(path, sizeof path, "%s/%s", fixdir, rel);
    return path;
}

static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "cannot open %s\n", path); exit(2); }
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(sz > 0 ? (size_t)sz : 1);
    if (!b || fread(b, 1, (size_t)sz, f) != (size_t)sz) { fprintf(stderr, "read %s\n", path); exit(2); }
    fclose(f);
    *n = (size_t)sz;
    return b;
}

static void clear_error(void) { sh_fail(SHOAL_OK, "%s", ""); }

static float ramp(int64_t i, float scale, float offset) {
    return (float)((double)(i % 97) * scale + offset);
}

/* ---- the valid fixtures ---------------------------------------------------- */

static void check_str(const sh_gguf *g, const char *key, const char *want) {
    const char *s = NULL;
    uint64_t len = 0;
    shoal_status st = sh_gguf_get_str(g, key, &s, &len);
    CHECK(st == SHOAL_OK && len == strlen(want) && memcmp(s, want, len) == 0, "%s: status %d len %llu", key,
          st, (unsigned long long)len);
}

static void check_int(const sh_gguf *g, const char *key, int64_t want) {
    int64_t v = 0;
    shoal_status st = sh_gguf_get_int(g, key, &v);
    CHECK(st == SHOAL_OK && v == want, "%s: status %d value %lld want %lld", key, st, (long long)v, (long long)want);
}

static void check_kv(const sh_gguf *g) {
    CHECK(sh_gguf_n_kv(g) == 25, "n_kv %d", sh_gguf_n_kv(g));
    for (int i = 0; i < sh_gguf_n_kv(g); i++)
        CHECK(sh_gguf_find_key(g, sh_gguf_key(g, i)) == i, "key %d '%s' not found by name", i, sh_gguf_key(g, i));
    CHECK(sh_gguf_find_key(g, "no.such.key") == -1, "absent key");
    CHECK(sh_gguf_kv_type(g, sh_gguf_find_key(g, "test.u16")) == SH_GGUF_UINT16, "u16 type");
    CHECK(sh_gguf_kv_type(g, sh_gguf_find_key(g, "test.f64")) == SH_GGUF_FLOAT64, "f64 type");
    CHECK(sh_gguf_kv_type(g, sh_gguf_find_key(g, "test.arr_str")) == SH_GGUF_ARRAY, "array type");
    CHECK(sh_gguf_kv_type(g, sh_gguf_find_key(g, "test.bool")) == SH_GGUF_BOOL, "bool type");
    CHECK(sh_gguf_key(g, -1) == NULL && sh_gguf_key(g, 25) == NULL, "key index out of range");

    check_str(g, "general.architecture", "shoaltest");
    check_str(g, "test.str", "h\xc3\xa9llo w\xc3\xb6rld");
    check_str(g, "test.empty_str", "");
    check_int(g, "test.u8", 200);
    check_int(g, "test.i8", -100);
    check_int(g, "test.u16", 60000);
    check_int(g, "test.i16", -30000);
    check_int(g, "test.u32", 4000000000);
    check_int(g, "test.i32", -2000000000);
    check_int(g, "test.bool", 1);
    check_int(g, "test.bool_false", 0);
    check_int(g, "test.u64_small", 123456789012);
    check_int(g, "test.i64", -((int64_t)1 << 62));

    int64_t iv;
    clear_error();
    CHECK(sh_gguf_get_int(g, "test.u64", &iv) == SHOAL_ERR_FORMAT && *shoal_last_error(), "u64 past int64");
    clear_error();
    CHECK(sh_gguf_get_int(g, "test.f32", &iv) == SHOAL_ERR_FORMAT && *shoal_last_error(), "int from f32");
    clear_error();
    CHECK(sh_gguf_get_int(g, "nope", &iv) == SHOAL_ERR_NOT_FOUND && strstr(shoal_last_error(), "nope"),
          "missing key: %s", shoal_last_error());

    double fv = 0;
    CHECK(sh_gguf_get_float(g, "test.f32", &fv) == SHOAL_OK && fv == 0.15625, "f32 %g", fv);
    CHECK(sh_gguf_get_float(g, "test.f64", &fv) == SHOAL_OK && fv == -1.0e300, "f64 %g", fv);
    CHECK(sh_gguf_get_float(g, "test.i32", &fv) == SHOAL_OK && fv == -2000000000.0, "f from i32 %g", fv);
    CHECK(sh_gguf_get_float(g, "test.u64", &fv) == SHOAL_OK && fv == 9223372036854775813.0, "f from u64 %g", fv);
    CHECK(sh_gguf_get_float(g, "test.str", &fv) == SHOAL_ERR_FORMAT, "float from string");
    CHECK(sh_gguf_get_float(g, "test.bool", &fv) == SHOAL_ERR_FORMAT, "float from bool");
    const char *s;
    uint64_t len;
    CHECK(sh_gguf_get_str(g, "test.u8", &s, &len) == SHOAL_ERR_FORMAT, "string from u8");

    sh_gguf_type et;
    uint64_t n;
    CHECK(sh_gguf_get_arr(g, "test.arr_i32", &et, &n) == SHOAL_OK && et == SH_GGUF_INT32 && n == 5, "arr_i32");
    static const int64_t i32s[] = {1, -2, 3, -4, 5};
    for (uint64_t i = 0; i < 5; i++)
        CHECK(sh_gguf_arr_int(g, "test.arr_i32", i) == i32s[i], "arr_i32[%llu]", (unsigned long long)i);
    CHECK(sh_gguf_arr_float(g, "test.arr_i32", 1) == -2.0, "arr_i32 as float");
    CHECK(sh_gguf_get_arr(g, "test.arr_f32", &et, &n) == SHOAL_OK && et == SH_GGUF_FLOAT32 && n == 3, "arr_f32");
    CHECK(sh_gguf_arr_float(g, "test.arr_f32", 0) == 0.5 && sh_gguf_arr_float(g, "test.arr_f32", 1) == -1.25 &&
          sh_gguf_arr_float(g, "test.arr_f32", 2) == 3.0, "arr_f32 values");
    CHECK(sh_gguf_get_arr(g, "test.arr_bool", &et, &n) == SHOAL_OK && et == SH_GGUF_BOOL && n == 3, "arr_bool");
    CHECK(sh_gguf_arr_int(g, "test.arr_bool", 0) == 1 && sh_gguf_arr_int(g, "test.arr_bool", 1) == 0 &&
          sh_gguf_arr_int(g, "test.arr_bool", 2) == 1, "arr_bool values");
    CHECK(sh_gguf_get_arr(g, "test.arr_u8", &et, &n) == SHOAL_OK && et == SH_GGUF_UINT8 && n == 3, "arr_u8");
    CHECK(sh_gguf_arr_int(g, "test.arr_u8", 2) == 255, "arr_u8[2]");
    CHECK(sh_gguf_get_arr(g, "test.arr_f64", &et, &n) == SHOAL_OK && et == SH_GGUF_FLOAT64 && n == 2, "arr_f64");
    CHECK(sh_gguf_arr_float(g, "test.arr_f64", 0) == 1e-300 && sh_gguf_arr_float(g, "test.arr_f64", 1) == 2.5,
          "arr_f64 values");
    CHECK(sh_gguf_get_arr(g, "test.arr_u64", &et, &n) == SHOAL_OK && et == SH_GGUF_UINT64 && n == 2, "arr_u64");
    CHECK(sh_gguf_arr_float(g, "test.arr_u64", 0) == 18446744073709551615.0, "arr_u64[0] as float");
    CHECK(sh_gguf_arr_int(g, "test.arr_u64", 1) == 7, "arr_u64[1]");

    CHECK(sh_gguf_get_arr(g, "test.arr_str", &et, &n) == SHOAL_OK && et == SH_GGUF_STRING && n == 4, "arr_str");
    static const char *strs[] = {"a", "", "ccc", "\xe6\x97\xa5\xe6\x9c\xac"};
    for (uint64_t i = 0; i < 4; i++) {
        const char *e = sh_gguf_arr_str(g, "test.arr_str", i, &len);
        CHECK(e && len == strlen(strs[i]) && memcmp(e, strs[i], len) == 0, "arr_str[%llu]", (unsigned long long)i);
    }
    clear_error();
    CHECK(sh_gguf_arr_str(g, "test.arr_str", 4, &len) == NULL && len == 0 && *shoal_last_error(),
          "arr_str index past the end");
    clear_error();
    CHECK(sh_gguf_arr_str(g, "test.arr_i32", 0, &len) == NULL && *shoal_last_error(), "arr_str of ints");
    clear_error();
    CHECK(sh_gguf_arr_int(g, "test.arr_str", 0) == 0 && *shoal_last_error(), "arr_int of strings");
    CHECK(sh_gguf_arr_int(g, "test.u32", 0) == 0, "arr_int of a scalar");

    /* arrays of arrays are read (and skipped over) but not indexed */
    CHECK(sh_gguf_get_arr(g, "test.arr_arr", &et, &n) == SHOAL_OK && et == SH_GGUF_ARRAY && n == 2, "arr_arr");
    CHECK(sh_gguf_get_arr(g, "test.arr_arr_str", &et, &n) == SHOAL_OK && et == SH_GGUF_ARRAY && n == 2,
          "arr_arr_str");
    clear_error();
    CHECK(sh_gguf_arr_int(g, "test.arr_arr", 0) == 0 && *shoal_last_error(), "arr_int of arrays");
    CHECK(sh_gguf_get_arr(g, "test.u8", &et, &n) == SHOAL_ERR_FORMAT, "array from u8");
}

static const sh_tensor *want_tensor(const sh_gguf *g, const char *name, sh_dtype dt, int n_dims, int64_t ne0,
                                    int64_t ne1, int64_t ne2, int64_t ne3) {
    const sh_tensor *t = sh_gguf_find_tensor(g, name);
    CHECK(t != NULL, "tensor %s missing", name);
    if (!t) return NULL;
    CHECK(strcmp(t->name, name) == 0, "name %s", t->name);
    CHECK(t->dtype == dt, "%s dtype %d", name, (int)t->dtype);
    CHECK(t->n_dims == n_dims, "%s n_dims %d", name, t->n_dims);
    CHECK(t->ne[0] == ne0 && t->ne[1] == ne1 && t->ne[2] == ne2 && t->ne[3] == ne3, "%s ne %lld %lld %lld %lld",
          name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3]);
    uint64_t nel = sh_tensor_nelements(t);
    CHECK(t->nbytes == sh_dtype_row_bytes(dt, nel), "%s nbytes %llu", name, (unsigned long long)t->nbytes);
    return t;
}

static void check_f32_ramp(const sh_tensor *t, float scale, float offset) {
    if (!t) return;
    uint64_t n = sh_tensor_nelements(t);
    for (uint64_t i = 0; i < n; i++) {
        float v;
        memcpy(&v, (const uint8_t *)t->data + 4 * i, 4);
        if (v != ramp((int64_t)i, scale, offset)) {
            CHECK(0, "%s[%llu] = %g want %g", t->name, (unsigned long long)i, (double)v,
                  (double)ramp((int64_t)i, scale, offset));
            return;
        }
    }
}

/* A quantised tensor's dequantisation equals its '.deq' companion (written
 * by gguf.quants.dequantize) bit for bit. */
static void check_deq(const sh_gguf *g, const sh_tensor *t) {
    if (!t) return;
    char name[96];
    snprintf(name, sizeof name, "%s.deq", t->name);
    const sh_tensor *d = sh_gguf_find_tensor(g, name);
    CHECK(d && d->dtype == SH_F32 && sh_tensor_nelements(d) == sh_tensor_nelements(t), "%s", name);
    if (!d) return;
    int64_t n = (int64_t)sh_tensor_nelements(t);
    float *got = malloc((size_t)n * sizeof(float));
    sh_dequantize_row(t->dtype, t->data, got, n);
    CHECK(memcmp(got, d->data, (size_t)n * 4) == 0, "%s dequantised differs from %s", t->name, name);
    free(got);
}

static void check_tensors(const sh_gguf *g, uint64_t align) {
    CHECK(sh_gguf_n_tensors(g) == 11, "n_tensors %d", sh_gguf_n_tensors(g));
    check_f32_ramp(want_tensor(g, "t.f32", SH_F32, 2, 3, 2, 1, 1), 0.5f, -1.0f);
    check_f32_ramp(want_tensor(g, "t.f32_1d", SH_F32, 1, 7, 1, 1, 1), 1.0f, 0.0f);
    check_f32_ramp(want_tensor(g, "t.f32_3d", SH_F32, 3, 4, 3, 2, 1), 0.25f, 0.0f);
    check_f32_ramp(want_tensor(g, "t.f32_4d", SH_F32, 4, 2, 1, 3, 2), 2.0f, 0.0f);
    const sh_tensor *t = want_tensor(g, "t.f16", SH_F16, 1, 5, 1, 1, 1);
    if (t)
        for (int i = 0; i < 5; i++) {
            uint16_t h;
            memcpy(&h, (const uint8_t *)t->data + 2 * i, 2);
            CHECK(sh_f16_to_f32(h) == ramp(i, 0.25f, 1.0f), "t.f16[%d]", i);
        }
    t = want_tensor(g, "t.bf16", SH_BF16, 3, 4, 3, 2, 1);
    if (t)
        for (int i = 0; i < 24; i++) {
            uint16_t h;
            memcpy(&h, (const uint8_t *)t->data + 2 * i, 2);
            CHECK(h == sh_f32_to_bf16(ramp(i, 0.125f, -3.0f) * 1.1f), "t.bf16[%d] = %04x", i, h);
        }
    check_deq(g, t);
    t = want_tensor(g, "t.q8_0", SH_Q8_0, 2, 64, 2, 1, 1);
    CHECK(t && t->nbytes == 4 * 34, "q8_0 bytes");
    check_deq(g, t);
    t = want_tensor(g, "t.q4_0", SH_Q4_0, 2, 32, 3, 1, 1);
    CHECK(t && t->nbytes == 3 * 18, "q4_0 bytes");
    check_deq(g, t);
    for (int i = 0; i < sh_gguf_n_tensors(g); i++) {
        const sh_tensor *ti = sh_gguf_tensor(g, i);
        CHECK(ti && (uintptr_t)ti->data % align == 0, "tensor %d data not %llu-aligned", i,
              (unsigned long long)align);
        CHECK(ti && sh_gguf_find_tensor(g, ti->name) == ti, "find tensor %d", i);
    }
    CHECK(sh_gguf_tensor(g, -1) == NULL && sh_gguf_tensor(g, 11) == NULL, "tensor index out of range");
    CHECK(sh_gguf_find_tensor(g, "t.f3") == NULL && sh_gguf_find_tensor(g, "") == NULL, "absent tensor");
}

static void test_valid_files(void) {
    static const char *files[] = {"gguf/tiny_v3.gguf", "gguf/tiny_v2.gguf"};
    for (int f = 0; f < 2; f++) {
        sh_gguf *g = NULL;
        shoal_status st = sh_gguf_open(fixture(files[f]), &g);
        CHECK(st == SHOAL_OK && g, "%s: %s", files[f], shoal_last_error());
        if (!g) continue;
        CHECK(sh_gguf_version(g) == (f == 0 ? 3u : 2u), "version %u", sh_gguf_version(g));
        check_kv(g);
        check_tensors(g, 32);
        sh_gguf_close(g);
    }

    sh_gguf *g = NULL;
    CHECK(sh_gguf_open(fixture("gguf/align64.gguf"), &g) == SHOAL_OK, "align64: %s", shoal_last_error());
    if (g) {
        CHECK(sh_gguf_n_tensors(g) == 3, "align64 tensors");
        check_f32_ramp(want_tensor(g, "a", SH_F32, 1, 3, 1, 1, 1), 1.0f, 0.0f);
        check_f32_ramp(want_tensor(g, "b", SH_F32, 1, 5, 1, 1, 1), 1.0f, 10.0f);
        const sh_tensor *c = want_tensor(g, "c", SH_Q8_0, 1, 32, 1, 1, 1);
        for (int i = 0; i < 3; i++) {
            const sh_tensor *t = sh_gguf_tensor(g, i);
            CHECK((uintptr_t)t->data % 64 == 0, "align64 tensor %d", i);
        }
        if (c) {
            float src[32], y[32];
            uint8_t q[34];
            for (int i = 0; i < 32; i++) src[i] = ramp(i, 0.5f, 0.0f);
            sh_quantize_row(SH_Q8_0, src, q, 32);
            CHECK(memcmp(q, c->data, 34) == 0, "align64 q8_0 bytes");
            sh_dequantize_row(SH_Q8_0, c->data, y, 32);
            CHECK(fabsf(y[31] - 15.5f) < 0.1f, "align64 q8_0 value %g", (double)y[31]);
        }
        check_str(g, "test.str", "aligned");
        check_int(g, "general.alignment", 64);
        sh_gguf_close(g);
    }

    g = NULL;
    CHECK(sh_gguf_open(fixture("gguf/meta_only.gguf"), &g) == SHOAL_OK, "meta_only: %s", shoal_last_error());
    if (g) {
        CHECK(sh_gguf_n_tensors(g) == 0 && sh_gguf_tensor(g, 0) == NULL, "meta_only has no tensors");
        check_int(g, "test.u32", 7);
        uint64_t len;
        const char *s = sh_gguf_arr_str(g, "test.arr_str", 1, &len);
        CHECK(s && len == 8 && memcmp(s, "metadata", 8) == 0, "meta_only arr_str");
        sh_gguf_close(g);
    }

    /* in memory, at an odd address: every field is read without alignment */
    size_t n;
    uint8_t *img = slurp(fixture("gguf/tiny_v3.gguf"), &n);
    uint8_t *odd = malloc(n + 1);
    memcpy(odd + 1, img, n);
    g = NULL;
    CHECK(sh_gguf_open_memory(odd + 1, n, &g) == SHOAL_OK, "memory image: %s", shoal_last_error());
    if (g) {
        check_kv(g);
        check_tensors(g, 1);
        sh_gguf_close(g);
    }
    free(odd);
    free(img);
}

/* Every cut of a valid file fails cleanly, except cuts at or past the end of
 * the last tensor's data (trailing padding may be missing). */
static void test_truncation(const char *rel) {
    size_t n;
    uint8_t *img = slurp(fixture(rel), &n);
    sh_gguf *g = NULL;
    CHECK(sh_gguf_open_memory(img, n, &g) == SHOAL_OK, "%s: %s", rel, shoal_last_error());
    if (!g) { free(img); return; }
    size_t need = 0;
    for (int i = 0; i < sh_gguf_n_tensors(g); i++) {
        const sh_tensor *t = sh_gguf_tensor(g, i);
        size_t end = (size_t)((const uint8_t *)t->data - img) + (size_t)t->nbytes;
        if (end > need) need = end;
    }
    sh_gguf_close(g);
    int bad = 0, ok_cuts = 0;
    size_t first_ok = n;
    for (size_t cut = 0; cut < n; cut++) {
        uint8_t *c = malloc(cut ? cut : 1); /* exactly cut bytes: ASan sees over-reads */
        memcpy(c, img, cut);
        clear_error();
        g = (sh_gguf *)1;
        shoal_status st = sh_gguf_open_memory(c, cut, &g);
        if (st == SHOAL_OK) {
            ok_cuts++;
            if (cut < first_ok) first_ok = cut;
            sh_gguf_close(g);
        } else if ((g != NULL || !*shoal_last_error()) && bad++ < 3) {
            CHECK(0, "%s cut at %zu: status %d, handle %p, message '%s'", rel, cut, st, (void *)g,
                  shoal_last_error());
        }
        free(c);
    }
    CHECK(bad == 0, "%s: %d cuts failed without a message", rel, bad);
    /* tensor files parse exactly from the end of the last tensor's data on;
     * files without tensors from somewhere past the header */
    CHECK(ok_cuts == (int)(n - first_ok), "%s: %d of the cuts from %zu on parse", rel, ok_cuts, first_ok);
    CHECK(need ? first_ok == need : first_ok > 24, "%s: cuts parse from %zu, tensor data ends at %zu", rel,
          first_ok, need);
    free(img);
}

/* ---- malformed images built byte by byte ----------------------------------- */

typedef struct { uint8_t *p; size_t n, cap; } buf;

static void put(buf *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void u32(buf *b, uint32_t v) { uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)}; put(b, x, 4); }
static void u64(buf *b, uint64_t v) { u32(b, (uint32_t)v); u32(b, (uint32_t)(v >> 32)); }
static void str(buf *b, const char *s) { u64(b, strlen(s)); put(b, s, strlen(s)); }
static void header(buf *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    put(b, "GGUF", 4); u32(b, version); u64(b, n_tensors); u64(b, n_kv);
}
static void kv_u32(buf *b, const char *k, uint32_t v) { str(b, k); u32(b, SH_GGUF_UINT32); u32(b, v); }
/* A tensor info with up to 4 dims (ne list ends at the first 0 unless n_dims says otherwise). */
static void tinfo(buf *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type, uint64_t off) {
    str(b, name); u32(b, n_dims);
    for (uint32_t i = 0; i < n_dims; i++) u64(b, ne[i]);
    u32(b, type); u64(b, off);
}
static void pad_to(buf *b, size_t align) { while (b->n % align) put(b, "", 1); }
static void zeros(buf *b, size_t n) { for (size_t i = 0; i < n; i++) put(b, "", 1); }

/* Opens b (copied to an exact-size allocation) and expects status want with a
 * message containing sub (if not NULL). */
static void expect(buf *b, shoal_status want, const char *sub, const char *what) {
    uint8_t *c = malloc(b->n ? b->n : 1);
    memcpy(c, b->p, b->n);
    clear_error();
    sh_gguf *g = (sh_gguf *)1;
    shoal_status st = sh_gguf_open_memory(c, b->n, &g);
    const char *msg = shoal_last_error();
    if (want == SHOAL_OK) {
        CHECK(st == SHOAL_OK && g, "%s: status %d: %s", what, st, msg);
    } else {
        CHECK(st == want && g == NULL && *msg, "%s: status %d (want %d), message '%s'", what, st, want, msg);
        if (sub) CHECK(strstr(msg, sub) != NULL, "%s: message '%s' lacks '%s'", what, msg, sub);
    }
    if (st == SHOAL_OK) sh_gguf_close(g);
    free(c);
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

static void test_built(void) {
    buf b = {0};
    const uint64_t ne2x4[] = {4, 2};
    uint64_t ne[4];

    /* a valid one, to show the builder is right */
    header(&b, 3, 1, 1); kv_u32(&b, "a.b", 1); tinfo(&b, "w", 2, ne2x4, SH_F32, 0); pad_to(&b, 32); zeros(&b, 32);
    expect(&b, SHOAL_OK, NULL, "valid built image");
    header(&b, 2, 0, 0);
    expect(&b, SHOAL_OK, NULL, "empty v2 file");
    /* alignment 1: no padding at all */
    header(&b, 3, 1, 1); kv_u32(&b, "general.alignment", 1); tinfo(&b, "w", 2, ne2x4, SH_F32, 0); zeros(&b, 32);
    expect(&b, SHOAL_OK, NULL, "alignment 1");

    /* header */
    put(&b, "GGU", 3);
    expect(&b, SHOAL_ERR_FORMAT, "not a GGUF", "3 bytes");
    put(&b, "GGML", 4); u32(&b, 3); u64(&b, 0); u64(&b, 0);
    expect(&b, SHOAL_ERR_FORMAT, "magic", "wrong magic");
    header(&b, 1, 0, 0);
    expect(&b, SHOAL_ERR_UNSUPPORTED, "version 1", "version 1");
    header(&b, 99, 0, 0);
    expect(&b, SHOAL_ERR_UNSUPPORTED, "version 99", "version 99");
    header(&b, 0, 0, 0);
    expect(&b, SHOAL_ERR_FORMAT, "version 0", "version 0");
    header(&b, 0x03000000u, 0, 0);
    expect(&b, SHOAL_ERR_UNSUPPORTED, "big-endian", "big-endian file");
    header(&b, 3, 0, 0); b.n -= 1;
    expect(&b, SHOAL_ERR_FORMAT, "n_kv", "header cut in n_kv");

    /* absurd counts are refused before any allocation */
    header(&b, 3, UINT64_MAX, 0);
    expect(&b, SHOAL_ERR_FORMAT, "n_tensors", "n_tensors 2^64-1");
    header(&b, 3, (uint64_t)INT_MAX + 1, 0);
    expect(&b, SHOAL_ERR_FORMAT, "n_tensors", "n_tensors 2^31");
    header(&b, 3, 0, (uint64_t)1 << 62);
    expect(&b, SHOAL_ERR_FORMAT, "n_kv", "n_kv 2^62");
    header(&b, 3, 0, 2); kv_u32(&b, "a", 1);
    expect(&b, SHOAL_ERR_FORMAT, "n_kv", "n_kv one too many");
    header(&b, 3, 1, 1); kv_u32(&b, "a", 1);
    expect(&b, SHOAL_ERR_FORMAT, "n_tensors", "n_tensors one too many");

    /* strings */
    header(&b, 3, 0, 1); u64(&b, UINT64_MAX); zeros(&b, 16);
    expect(&b, SHOAL_ERR_FORMAT, "key", "key length 2^64-1");
    header(&b, 3, 0, 1); u64(&b, 1000); put(&b, "abcdefghijklmn", 14);
    expect(&b, SHOAL_ERR_FORMAT, "length 1000", "key length past the end");
    header(&b, 3, 0, 1); str(&b, "k"); u32(&b, SH_GGUF_STRING); u64(&b, (uint64_t)1 << 63); put(&b, "x", 1);
    expect(&b, SHOAL_ERR_FORMAT, "'k'", "string value length 2^63");
    header(&b, 3, 0, 1); str(&b, ""); u32(&b, SH_GGUF_UINT8); put(&b, "x", 1); zeros(&b, 8);
    expect(&b, SHOAL_ERR_FORMAT, "empty", "empty key");
    header(&b, 3, 0, 1); u64(&b, 3); put(&b, "a\0b", 3); u32(&b, SH_GGUF_UINT8); put(&b, "x", 1);
    expect(&b, SHOAL_ERR_FORMAT, "NUL", "key with a NUL");
    header(&b, 3, 0, 2); kv_u32(&b, "same", 1); kv_u32(&b, "same", 2);
    expect(&b, SHOAL_ERR_FORMAT, "duplicate key", "duplicate key");

    /* value types */
    header(&b, 3, 0, 1); str(&b, "k"); u32(&b, 13); zeros(&b, 16);
    expect(&b, SHOAL_ERR_FORMAT, "value type 13", "value type 13");
    header(&b, 3, 0, 1); str(&b, "k"); u32(&b, SH_GGUF_BOOL); put(&b, "\2", 1);
    expect(&b, SHOAL_ERR_FORMAT, "bool", "bool 2");
    header(&b, 3, 0, 1); str(&b, "k"); u32(&b, SH_GGUF_UINT64); u32(&b, 0);
    expect(&b, SHOAL_ERR_FORMAT, "'k'", "u64 cut short");

    /* arrays */
    header(&b, 3, 0, 1); str(&b, "k"); u32(&b, SH_GGUF_ARRAY); u32(&b, SH_GGUF_UINT32); u64(&b, (uint64_t)1 << 62);
    zeros(&b, 64);
    expect(&b, SHOAL_ERR_FORMAT, "array of", "u32 array count 2^62 (x4 overflows)");
    header(&b, 3, 0, 1); str(&b, "k"); u32(&b, SH_GGUF_ARRAY); u32(&b, SH_GGUF_STRING); u64(&b, UINT64_MAX);
    zeros(&b, 64);
    expect(&b, SHOAL_ERR_FORMAT, "array of", "string array count 2^64-1");
    header(&b, 3, 0, 1); str(&b, "k"); u32(&b, SH_GGUF_ARRAY); u32(&b, SH_GGUF_STRING); u64(&b, 2);
    str(&b, "ok"); u64(&b, 99); put(&b, "short", 5);
    expect(&b, SHOAL_ERR_FORMAT, "array string", "string array element past the end");
    header(&b, 3, 0, 1); str(&b, "k"); u32(&b, SH_GGUF_ARRAY); u32(&b, 77); u64(&b, 1); zeros(&b, 8);
    expect(&b, SHOAL_ERR_FORMAT, "element type 77", "array element type 77");
    header(&b, 3, 0, 1); str(&b, "k"); u32(&b, SH_GGUF_ARRAY); u32(&b, SH_GGUF_BOOL); u64(&b, 3); put(&b, "\1\0\7", 3);
    expect(&b, SHOAL_ERR_FORMAT, "bool element 2", "bool array element 7");
    header(&b, 3, 0, 1); str(&b, "k"); u32(&b, SH_GGUF_ARRAY); u32(&b, SH_GGUF_ARRAY); u64(&b, (uint64_t)1 << 40);
    zeros(&b, 64);
    expect(&b, SHOAL_ERR_FORMAT, "array of", "array-of-arrays count 2^40");
    /* nesting: 8 levels parse, 9 do not */
    for (int depth = 8; depth <= 9; depth++) {
        header(&b, 3, 0, 1); str(&b, "k"); u32(&b, SH_GGUF_ARRAY);
        for (int d = 1; d < depth; d++) { u32(&b, SH_GGUF_ARRAY); u64(&b, 1); }
        u32(&b, SH_GGUF_UINT8); u64(&b, 2); put(&b, "ab", 2);
        expect(&b, depth == 8 ? SHOAL_OK : SHOAL_ERR_FORMAT, depth == 8 ? NULL : "nested", "nested arrays");
    }
    /* a deep chain of empty arrays inside an array: bounded work, fine */
    header(&b, 3, 0, 1); str(&b, "k"); u32(&b, SH_GGUF_ARRAY); u32(&b, SH_GGUF_ARRAY); u64(&b, 1000);
    for (int i = 0; i < 1000; i++) { u32(&b, SH_GGUF_UINT8); u64(&b, 0); }
    expect(&b, SHOAL_OK, NULL, "array of 1000 empty arrays");

    /* alignment */
    static const uint32_t bad_align[] = {0, 3, 48, 1u << 31};
    for (int i = 0; i < 4; i++) {
        header(&b, 3, 0, 1); kv_u32(&b, "general.alignment", bad_align[i]);
        expect(&b, SHOAL_ERR_FORMAT, "general.alignment", "bad alignment value");
    }
    header(&b, 3, 0, 1); str(&b, "general.alignment"); u32(&b, SH_GGUF_STRING); str(&b, "32");
    expect(&b, SHOAL_ERR_FORMAT, "general.alignment", "alignment as a string");
    header(&b, 3, 0, 1); str(&b, "general.alignment"); u32(&b, SH_GGUF_UINT64); u64(&b, UINT64_MAX);
    expect(&b, SHOAL_ERR_FORMAT, "general.alignment", "alignment 2^64-1");

    /* tensor infos */
    header(&b, 3, 1, 0); tinfo(&b, "w", 0, NULL, SH_F32, 0); zeros(&b, 64);
    expect(&b, SHOAL_ERR_FORMAT, "n_dims 0", "n_dims 0");
    ne[0] = ne[1] = ne[2] = ne[3] = 1;
    header(&b, 3, 1, 0); str(&b, "w"); u32(&b, 5); for (int i = 0; i < 5; i++) u64(&b, 1);
    u32(&b, 0); u64(&b, 0); zeros(&b, 64);
    expect(&b, SHOAL_ERR_FORMAT, "n_dims 5", "n_dims 5");
    header(&b, 3, 1, 0); str(&b, "w"); u32(&b, UINT32_MAX); zeros(&b, 64);
    expect(&b, SHOAL_ERR_FORMAT, "n_dims", "n_dims 2^32-1");
    ne[0] = 4; ne[1] = 0;
    header(&b, 3, 1, 0); tinfo(&b, "w", 2, ne, SH_F32, 0); zeros(&b, 64);
    expect(&b, SHOAL_ERR_FORMAT, "ne[1] = 0", "ne 0");
    ne[0] = (uint64_t)1 << 63;
    header(&b, 3, 1, 0); tinfo(&b, "w", 1, ne, SH_F32, 0); zeros(&b, 64);
    expect(&b, SHOAL_ERR_FORMAT, "ne[0]", "ne 2^63");
    ne[0] = ne[1] = (uint64_t)1 << 32;
    header(&b, 3, 1, 0); tinfo(&b, "w", 2, ne, SH_F32, 0); zeros(&b, 64);
    expect(&b, SHOAL_ERR_FORMAT, "overflows", "element count 2^64");
    ne[0] = ne[1] = (uint64_t)1 << 31;
    header(&b, 3, 1, 0); tinfo(&b, "w", 2, ne, SH_F32, 0); zeros(&b, 64);
    expect(&b, SHOAL_ERR_FORMAT, "overflows", "byte size 2^64");
    ne[0] = 1 << 20; ne[1] = 1 << 20; ne[2] = 1 << 20; ne[3] = 1 << 2;
    header(&b, 3, 1, 0); tinfo(&b, "w", 4, ne, SH_F16, 0); zeros(&b, 64);
    expect(&b, SHOAL_ERR_FORMAT, NULL, "2^62 f16 elements: 2^63 bytes, past the end");
    ne[0] = 33; ne[1] = 1;
    header(&b, 3, 1, 0); tinfo(&b, "w", 1, ne, SH_Q8_0, 0); zeros(&b, 64);
    expect(&b, SHOAL_ERR_FORMAT, "block size", "q8_0 ne[0] 33");
    header(&b, 3, 1, 0); tinfo(&b, "w", 2, ne2x4, 12, 0); pad_to(&b, 32); zeros(&b, 64);
    expect(&b, SHOAL_ERR_UNSUPPORTED, "'w': type q4_K", "q4_K tensor");
    header(&b, 3, 1, 0); tinfo(&b, "w", 2, ne2x4, 100000, 0); pad_to(&b, 32); zeros(&b, 64);
    expect(&b, SHOAL_ERR_UNSUPPORTED, "100000", "unknown tensor type");
    header(&b, 3, 1, 0); tinfo(&b, "w", 2, ne2x4, SH_F32, 4); pad_to(&b, 32); zeros(&b, 64);
    expect(&b, SHOAL_ERR_FORMAT, "not a multiple of the alignment", "misaligned offset");
    header(&b, 3, 1, 0); tinfo(&b, "w", 2, ne2x4, SH_F32, 32); pad_to(&b, 32); zeros(&b, 32);
    expect(&b, SHOAL_ERR_FORMAT, "'w': data offset 32 + 32 bytes past end of file", "offset past end");
    header(&b, 3, 1, 0); tinfo(&b, "w", 2, ne2x4, SH_F32, UINT64_MAX - 31); pad_to(&b, 32); zeros(&b, 32);
    expect(&b, SHOAL_ERR_FORMAT, "past end of file", "offset 2^64-32 (sum overflows)");
    header(&b, 3, 2, 0); tinfo(&b, "w", 2, ne2x4, SH_F32, 0); tinfo(&b, "w", 2, ne2x4, SH_F32, 32);
    pad_to(&b, 32); zeros(&b, 64);
    expect(&b, SHOAL_ERR_FORMAT, "duplicate tensor name", "duplicate tensor");
    header(&b, 3, 2, 0); tinfo(&b, "w", 2, ne2x4, SH_F32, 0); tinfo(&b, "v", 2, ne2x4, SH_F32, 0);
    pad_to(&b, 32); zeros(&b, 32);
    expect(&b, SHOAL_OK, NULL, "two tensors sharing data");
    char longname[80];
    memset(longname, 'n', 65); longname[65] = 0;
    header(&b, 3, 1, 0); tinfo(&b, longname, 2, ne2x4, SH_F32, 0); pad_to(&b, 32); zeros(&b, 32);
    expect(&b, SHOAL_ERR_FORMAT, "at most 64", "65-byte tensor name");
    longname[64] = 0;
    header(&b, 3, 1, 0); tinfo(&b, longname, 2, ne2x4, SH_F32, 0); pad_to(&b, 32); zeros(&b, 32);
    expect(&b, SHOAL_OK, NULL, "64-byte tensor name");
    header(&b, 3, 1, 0); tinfo(&b, "", 2, ne2x4, SH_F32, 0); pad_to(&b, 32); zeros(&b, 32);
    expect(&b, SHOAL_ERR_FORMAT, "empty", "empty tensor name");
    header(&b, 3, 1, 0); str(&b, "wwwwwwwwwwwwwwwwwwww"); u32(&b, 2); u64(&b, 4);
    expect(&b, SHOAL_ERR_FORMAT, "tensor 'wwwwwwwwwwwwwwwwwwww': ne", "tensor info cut in ne");
}

/* ---- files on disk --------------------------------------------------------- */

static void test_files(void) {
    static const struct { const char *file; shoal_status st; const char *sub; } cases[] = {
        {"bad_magic.gguf", SHOAL_ERR_FORMAT, "magic"},
        {"version1.gguf", SHOAL_ERR_UNSUPPORTED, "version 1"},
        {"version99.gguf", SHOAL_ERR_UNSUPPORTED, "version 99"},
        {"truncated_header.gguf", SHOAL_ERR_FORMAT, "n_kv"},
        {"truncated_data.gguf", SHOAL_ERR_FORMAT, "past end of file"},
        {"huge_n_tensors.gguf", SHOAL_ERR_FORMAT, "n_tensors"},
        {"huge_n_kv.gguf", SHOAL_ERR_FORMAT, "n_kv"},
        {"huge_key_len.gguf", SHOAL_ERR_FORMAT, "key"},
        {"offset_past_end.gguf", SHOAL_ERR_FORMAT, "tensor 'v': data offset 4096"},
        {"misaligned_offset.gguf", SHOAL_ERR_FORMAT, "alignment"},
        {"type_q4_K.gguf", SHOAL_ERR_UNSUPPORTED, "tensor 'w': type q4_K"},
        {"type_unknown.gguf", SHOAL_ERR_UNSUPPORTED, "1000"},
        {"n_dims5.gguf", SHOAL_ERR_FORMAT, "n_dims 5"},
        {"duplicate_tensor.gguf", SHOAL_ERR_FORMAT, "duplicate"},
        {"bad_alignment.gguf", SHOAL_ERR_FORMAT, "general.alignment = 48"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "malformed/%s", cases[i].file);
        const char *path = fixture(rel);
        sh_gguf *g = (sh_gguf *)1;
        clear_error();
        shoal_status st = sh_gguf_open(path, &g);
        const char *msg = shoal_last_error();
        CHECK(st == cases[i].st && g == NULL, "%s: status %d want %d (%s)", cases[i].file, st, cases[i].st, msg);
        CHECK(strncmp(msg, path, strlen(path)) == 0 && strstr(msg, cases[i].sub), "%s: message '%s'",
              cases[i].file, msg);
        if (st == SHOAL_OK) sh_gguf_close(g);
    }

    sh_gguf *g = (sh_gguf *)1;
    clear_error();
    CHECK(sh_gguf_open(fixture("gguf/no_such_file.gguf"), &g) == SHOAL_ERR_IO && g == NULL &&
          strstr(shoal_last_error(), "no_such_file.gguf"), "missing file: %s", shoal_last_error());
    CHECK(sh_gguf_open(fixture("gguf"), &g) == SHOAL_ERR_IO && g == NULL, "directory");
    char tmp[] = "/tmp/shoal_test_gguf_XXXXXX";
    int fd = mkstemp(tmp);
    CHECK(fd >= 0, "mkstemp");
    if (fd >= 0) {
        close(fd);
        clear_error();
        CHECK(sh_gguf_open(tmp, &g) == SHOAL_ERR_FORMAT && *shoal_last_error(), "empty file: %s",
              shoal_last_error());
        unlink(tmp);
    }
    CHECK(sh_gguf_open(NULL, &g) == SHOAL_ERR_INVALID_ARG, "NULL path");
    CHECK(sh_gguf_open_memory(NULL, 10, &g) == SHOAL_ERR_INVALID_ARG, "NULL data");
    CHECK(sh_gguf_open_memory(NULL, 0, &g) == SHOAL_ERR_FORMAT, "empty image");
    sh_gguf_close(NULL);
    CHECK(sh_gguf_n_tensors(NULL) == 0 && sh_gguf_n_kv(NULL) == 0 && sh_gguf_find_key(NULL, "a") == -1 &&
          sh_gguf_find_tensor(NULL, "a") == NULL, "NULL handle accessors");
}

int main(void) {
    fixdir = check_env("SHOAL_FIXTURES", "tests/fixtures");
    test_valid_files();
    test_truncation("gguf/tiny_v3.gguf");
    test_truncation("gguf/align64.gguf");
    test_truncation("gguf/meta_only.gguf");
    test_built();
    test_files();
    return check_report();
}
