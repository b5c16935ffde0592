/* Hugging Face folder / safetensors reader: valid folders load with the right
 * names, shapes, dtypes and values; every malformed case fails with a status
 * and a message, never a crash. Fixtures: tests/fixtures/gen_hf_cases.py. */
#include "check.h"
#include "hf.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdint.h>
#include <string.h>

static const char *fx;

static char *path_of(const char *rel) {
    static char buf[4][1024];
    static int k;
    char *p = buf[k++ & 3];
    snprintf(p, sizeof buf[0], "%s/hf/%s", fx, rel);
    return p;
}

static void *read_all(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *p = malloc(n > 0 ? (size_t)n : 1);
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    *size = (size_t)n;
    return p;
}

static float f32_at(const sh_tensor *t, size_t i) {
    float v;
    memcpy(&v, (const char *)t->data + 4 * i, 4);
    return v;
}
static uint16_t u16_at(const sh_tensor *t, size_t i) {
    const uint8_t *p = (const uint8_t *)t->data + 2 * i;
    return (uint16_t)(p[0] | p[1] << 8);
}
/* Test-local conversions so the test does not depend on dtype.c. */
static float bf16_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static float f16_f32(uint16_t h) { /* normal numbers and zero only */
    uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 31, m = h & 1023;
    uint32_t u = e == 0 && m == 0 ? sign : sign | ((e + 112) << 23) | (m << 13);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static const sh_tensor *expect(const sh_hf *h, const char *name, sh_dtype dt, int n_dims, int64_t ne0,
                               int64_t ne1, int64_t ne2, int64_t ne3) {
    const sh_tensor *t = sh_hf_find_tensor(h, name);
    CHECK(t != NULL, "tensor %s missing", name);
    if (!t) return NULL;
    CHECK(strcmp(t->name, name) == 0, "name %s vs %s", t->name, name);
    CHECK(t->dtype == dt, "%s dtype %d want %d", name, (int)t->dtype, (int)dt);
    CHECK(t->n_dims == n_dims, "%s n_dims %d want %d", name, t->n_dims, n_dims);
    int64_t want[4] = {ne0, ne1, ne2, ne3};
    for (int i = 0; i < 4; i++) CHECK(t->ne[i] == want[i], "%s ne[%d] %lld want %lld", name, i,
                                      (long long)t->ne[i], (long long)want[i]);
    uint64_t esz = dt == SH_F32 ? 4 : 2;
    CHECK(t->nbytes == (uint64_t)(ne0 * ne1 * ne2 * ne3) * esz, "%s nbytes %llu", name,
          (unsigned long long)t->nbytes);
    return t;
}

/* ---- valid folders ------------------------------------------------------ */

static void check_single(const sh_hf *h) {
    CHECK(sh_hf_n_tensors(h) == 4, "n_tensors %d", sh_hf_n_tensors(h));
    const sh_tensor *t = expect(h, "model.embed_tokens.weight", SH_F32, 2, 8, 4, 1, 1);
    if (t)
        for (size_t i = 0; i < 32; i++)
            CHECK(f32_at(t, i) == (float)i * 0.5f - 3.0f, "embed[%zu] = %g", i, f32_at(t, i));
    t = expect(h, "model.norm.weight", SH_F16, 1, 8, 1, 1, 1);
    if (t)
        for (size_t i = 0; i < 8; i++)
            CHECK(f16_f32(u16_at(t, i)) == (float)i * 0.25f + 1.0f, "norm[%zu] = %g", i,
                  f16_f32(u16_at(t, i)));
    t = expect(h, "scalar", SH_F32, 1, 1, 1, 1, 1);
    if (t) CHECK(f32_at(t, 0) == 3.25f, "scalar = %g", f32_at(t, 0));
    t = expect(h, "empty", SH_F32, 2, 3, 0, 1, 1);
    CHECK(sh_hf_find_tensor(h, "nope") == NULL, "found a missing tensor");
    CHECK(sh_hf_find_tensor(h, "") == NULL, "found the empty name");
    /* index order and find agree */
    for (int i = 0; i < sh_hf_n_tensors(h); i++) {
        const sh_tensor *ti = sh_hf_tensor(h, i);
        CHECK(ti && sh_hf_find_tensor(h, ti->name) == ti, "tensor %d not found by its name", i);
    }
    CHECK(sh_hf_tensor(h, -1) == NULL && sh_hf_tensor(h, 4) == NULL, "out-of-range index gave a tensor");
}

static void test_single(void) {
    sh_hf *h = NULL;
    shoal_status s = sh_hf_open(path_of("single"), &h);
    CHECK(s == SHOAL_OK, "open single: %s", shoal_last_error());
    if (!h) return;
    check_single(h);
    const cJSON *cfg = sh_hf_config(h);
    CHECK(cfg != NULL, "no config");
    const cJSON *hs = cJSON_GetObjectItemCaseSensitive(cfg, "hidden_size");
    CHECK(cJSON_IsNumber(hs) && hs->valuedouble == 8, "config hidden_size");
    CHECK(strcmp(sh_hf_dir(h), path_of("single")) == 0, "dir %s", sh_hf_dir(h));
    sh_hf_close(h);

    /* trailing slash is stripped from the folder name */
    char p[1100];
    snprintf(p, sizeof p, "%s/", path_of("single"));
    s = sh_hf_open(p, &h);
    CHECK(s == SHOAL_OK, "open single/: %s", shoal_last_error());
    if (h) CHECK(strcmp(sh_hf_dir(h), path_of("single")) == 0, "dir %s", sh_hf_dir(h));
    sh_hf_close(h);

    /* a single file: tensors only, no config, dir is the parent */
    s = sh_hf_open(path_of("single/model.safetensors"), &h);
    CHECK(s == SHOAL_OK, "open single file: %s", shoal_last_error());
    if (!h) return;
    check_single(h);
    CHECK(sh_hf_config(h) == NULL, "single file has a config");
    CHECK(strcmp(sh_hf_dir(h), path_of("single")) == 0, "dir %s", sh_hf_dir(h));
    sh_hf_close(h);

    /* the same image from memory: data points into the caller's buffer */
    size_t n;
    void *img = read_all(path_of("single/model.safetensors"), &n);
    CHECK(img != NULL, "read single");
    if (!img) return;
    s = sh_hf_open_safetensors_memory(img, n, &h);
    CHECK(s == SHOAL_OK, "memory: %s", shoal_last_error());
    if (h) {
        check_single(h);
        CHECK(sh_hf_config(h) == NULL && sh_hf_dir(h) == NULL, "memory image has config/dir");
        for (int i = 0; i < sh_hf_n_tensors(h); i++) {
            const sh_tensor *t = sh_hf_tensor(h, i);
            const char *d = t->data;
            CHECK(d >= (const char *)img && d + t->nbytes <= (const char *)img + n, "%s outside the image",
                  t->name);
        }
    }
    sh_hf_close(h);
    free(img);
}

static void test_sharded(void) {
    sh_hf *h = NULL;
    shoal_status s = sh_hf_open(path_of("sharded"), &h);
    CHECK(s == SHOAL_OK, "open sharded: %s", shoal_last_error());
    if (!h) return;
    CHECK(sh_hf_n_tensors(h) == 4, "n_tensors %d", sh_hf_n_tensors(h));
    CHECK(sh_hf_config(h) != NULL, "no config");
    static const float aw[6] = {1, -2, 3.5f, 4, -5, 6.25f};
    static const float bb[5] = {0.5f, -1, 2, -4, 8};
    static const float cw[6] = {1, -2, 0.5f, 3, -0.125f, 256};
    const sh_tensor *t = expect(h, "a.weight", SH_F32, 2, 2, 3, 1, 1);
    if (t)
        for (size_t i = 0; i < 6; i++) CHECK(f32_at(t, i) == aw[i], "a[%zu] = %g", i, f32_at(t, i));
    t = expect(h, "b.bias", SH_F16, 1, 5, 1, 1, 1);
    if (t)
        for (size_t i = 0; i < 5; i++)
            CHECK(f16_f32(u16_at(t, i)) == bb[i], "b[%zu] = %g", i, f16_f32(u16_at(t, i)));
    t = expect(h, "c.weight", SH_BF16, 2, 3, 2, 1, 1);
    if (t)
        for (size_t i = 0; i < 6; i++)
            CHECK(bf16_f32(u16_at(t, i)) == cw[i], "c[%zu] = %g", i, bf16_f32(u16_at(t, i)));
    t = expect(h, "d", SH_F32, 4, 2, 2, 2, 2);
    if (t)
        for (size_t i = 0; i < 16; i++) CHECK(f32_at(t, i) == (float)i, "d[%zu] = %g", i, f32_at(t, i));
    sh_hf_close(h);
}

/* ---- known dtypes the engine does not compute with: checked, then skipped */

static const struct {
    const char *dtype, *file;
} skip_dtypes[] = {
    {"F64", "skip/f64.safetensors"},         {"I64", "skip/i64.safetensors"},
    {"I32", "skip/i32.safetensors"},         {"I16", "skip/i16.safetensors"},
    {"I8", "skip/i8.safetensors"},           {"U8", "skip/u8.safetensors"},
    {"U16", "skip/u16.safetensors"},         {"U32", "skip/u32.safetensors"},
    {"U64", "skip/u64.safetensors"},         {"BOOL", "skip/bool.safetensors"},
    {"F8_E4M3", "skip/f8_e4m3.safetensors"}, {"F8_E5M2", "skip/f8_e5m2.safetensors"},
};

/* One file per dtype, holding only the skipped tensor "t" of 4 elements. */
static void test_skip_dtypes(void) {
    for (size_t i = 0; i < sizeof skip_dtypes / sizeof skip_dtypes[0]; i++) {
        const char *dt = skip_dtypes[i].dtype;
        sh_hf *h = NULL;
        shoal_status s = sh_hf_open(path_of(skip_dtypes[i].file), &h);
        CHECK(s == SHOAL_OK, "%s: %s", dt, shoal_last_error());
        size_t n;
        void *img = read_all(path_of(skip_dtypes[i].file), &n);
        CHECK(img != NULL, "read %s", skip_dtypes[i].file);
        sh_hf *hm = NULL;
        if (img) CHECK(sh_hf_open_safetensors_memory(img, n, &hm) == SHOAL_OK, "%s memory: %s", dt,
                       shoal_last_error());
        for (int k = 0; k < 2; k++) {
            const sh_hf *x = k ? hm : h;
            if (!x) continue;
            CHECK(sh_hf_n_tensors(x) == 0, "%s: n_tensors %d", dt, sh_hf_n_tensors(x));
            CHECK(sh_hf_tensor(x, 0) == NULL, "%s: tensor 0 exists", dt);
            CHECK(sh_hf_find_tensor(x, "t") == NULL, "%s: skipped tensor found", dt);
            const char *got = sh_hf_skipped_dtype(x, "t");
            CHECK(got && strcmp(got, dt) == 0, "%s: skipped dtype %s", dt, got ? got : "(null)");
            CHECK(sh_hf_skipped_dtype(x, "u") == NULL && sh_hf_skipped_dtype(x, "") == NULL,
                  "%s: skipped dtype for an absent name", dt);
        }
        sh_hf_close(h);
        sh_hf_close(hm);
        free(img);
    }
    CHECK(sh_hf_skipped_dtype(NULL, "t") == NULL, "NULL handle skipped dtype");
}

/* Loaded and skipped tensors mixed; the loaded ones keep their values. */
static void check_skipped_mix(const sh_hf *h, const char *what) {
    static const float aw[6] = {1, -2, 3.5f, 4, -5, 6.25f};
    static const float bb[5] = {0.5f, -1, 2, -4, 8};
    CHECK(sh_hf_n_tensors(h) == 2, "%s: n_tensors %d", what, sh_hf_n_tensors(h));
    const sh_tensor *t = expect(h, "a.weight", SH_F32, 2, 2, 3, 1, 1);
    if (t)
        for (size_t i = 0; i < 6; i++) CHECK(f32_at(t, i) == aw[i], "%s: a[%zu] = %g", what, i, f32_at(t, i));
    t = expect(h, "b.bias", SH_F16, 1, 5, 1, 1, 1);
    if (t)
        for (size_t i = 0; i < 5; i++)
            CHECK(f16_f32(u16_at(t, i)) == bb[i], "%s: b[%zu] = %g", what, i, f16_f32(u16_at(t, i)));
    static const char *names[3] = {"embeddings.position_ids", "mask", "scale"};
    static const char *dts[3] = {"I64", "BOOL", "F64"};
    for (int i = 0; i < 3; i++) {
        CHECK(sh_hf_find_tensor(h, names[i]) == NULL, "%s: skipped %s found", what, names[i]);
        const char *got = sh_hf_skipped_dtype(h, names[i]);
        CHECK(got && strcmp(got, dts[i]) == 0, "%s: %s skipped dtype %s", what, names[i], got ? got : "(null)");
    }
    CHECK(sh_hf_skipped_dtype(h, "a.weight") == NULL, "%s: loaded tensor reported skipped", what);
    CHECK(sh_hf_skipped_dtype(h, "position_ids") == NULL, "%s: partial name reported skipped", what);
    for (int i = 0; i < sh_hf_n_tensors(h); i++) {
        const sh_tensor *ti = sh_hf_tensor(h, i);
        CHECK(ti && sh_hf_find_tensor(h, ti->name) == ti, "%s: tensor %d not found by its name", what, i);
    }
}

static void test_skipped(void) {
    sh_hf *h = NULL;
    shoal_status s = sh_hf_open(path_of("skipped"), &h);
    CHECK(s == SHOAL_OK, "open skipped: %s", shoal_last_error());
    if (h) {
        CHECK(sh_hf_config(h) != NULL, "skipped: no config");
        check_skipped_mix(h, "skipped");
    }
    sh_hf_close(h);
    size_t n;
    void *img = read_all(path_of("skipped/model.safetensors"), &n);
    CHECK(img != NULL, "read skipped");
    h = NULL;
    if (img) {
        CHECK(sh_hf_open_safetensors_memory(img, n, &h) == SHOAL_OK, "skipped memory: %s", shoal_last_error());
        if (h) check_skipped_mix(h, "skipped memory");
    }
    sh_hf_close(h);
    free(img);

    /* sharded: weight_map lists skipped tensors, and their shards are checked */
    h = NULL;
    s = sh_hf_open(path_of("sharded_skipped"), &h);
    CHECK(s == SHOAL_OK, "open sharded_skipped: %s", shoal_last_error());
    if (!h) return;
    static const float cw[6] = {1, -2, 0.5f, 3, -0.125f, 256};
    CHECK(sh_hf_n_tensors(h) == 2, "sharded_skipped: n_tensors %d", sh_hf_n_tensors(h));
    expect(h, "a.weight", SH_F32, 2, 2, 3, 1, 1);
    const sh_tensor *t = expect(h, "c.weight", SH_BF16, 2, 3, 2, 1, 1);
    if (t)
        for (size_t i = 0; i < 6; i++)
            CHECK(bf16_f32(u16_at(t, i)) == cw[i], "c[%zu] = %g", i, bf16_f32(u16_at(t, i)));
    const char *a = sh_hf_skipped_dtype(h, "embeddings.position_ids"), *b = sh_hf_skipped_dtype(h, "counts");
    CHECK(a && strcmp(a, "I64") == 0, "position_ids skipped dtype %s", a ? a : "(null)");
    CHECK(b && strcmp(b, "U32") == 0, "counts skipped dtype %s", b ? b : "(null)");
    CHECK(sh_hf_find_tensor(h, "counts") == NULL, "counts found");
    sh_hf_close(h);
}

/* ---- malformed inputs --------------------------------------------------- */

static void expect_fail(shoal_status s, sh_hf *h, shoal_status want, const char *what, const char *needle) {
    CHECK(s != SHOAL_OK, "%s: accepted", what);
    CHECK(h == NULL, "%s: handle set on failure", what);
    CHECK(want == SHOAL_OK || s == want, "%s: status %s want %s (%s)", what, shoal_status_str(s),
          shoal_status_str(want), shoal_last_error());
    const char *m = shoal_last_error();
    CHECK(m && m[0], "%s: empty message", what);
    if (needle) CHECK(m && strstr(m, needle), "%s: message '%s' lacks '%s'", what, m, needle);
    if (h != (sh_hf *)1) sh_hf_close(h); /* 1: the caller's "not written" marker */
}

/* Every prefix of a valid image fails (the last tensor ends at EOF). The copy
 * is exactly cut bytes long so the sanitizer sees any over-read. */
static void test_truncations(const char *rel) {
    size_t n;
    uint8_t *img = read_all(path_of(rel), &n);
    CHECK(img != NULL, "read %s", rel);
    if (!img) return;
    int bad = 0;
    for (size_t cut = 0; cut < n; cut++) {
        uint8_t *p = malloc(cut ? cut : 1);
        memcpy(p, img, cut);
        sh_hf *h = NULL;
        shoal_status s = sh_hf_open_safetensors_memory(p, cut, &h);
        if (s == SHOAL_OK || h || !shoal_last_error()[0]) {
            if (bad++ < 5) CHECK(0, "%s cut at %zu of %zu: accepted or no message", rel, cut, n);
        }
        sh_hf_close(h);
        free(p);
    }
    CHECK(bad == 0, "%s: %d cut points accepted", rel, bad);
    sh_hf *h = NULL;
    CHECK(sh_hf_open_safetensors_memory(img, n, &h) == SHOAL_OK, "%s whole: %s", rel, shoal_last_error());
    sh_hf_close(h);
    free(img);
}

/* Every file in hf/bad fails, by path and from memory, with the status its
 * name announces. */
static void test_bad_files(void) {
    DIR *d = opendir(path_of("bad"));
    CHECK(d != NULL, "no hf/bad folder");
    if (!d) return;
    int count = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        shoal_status want = strncmp(de->d_name, "unsupported_", 12) == 0 ? SHOAL_ERR_UNSUPPORTED
                            : strncmp(de->d_name, "format_", 7) == 0  ? SHOAL_ERR_FORMAT
                                                                      : SHOAL_OK;
        CHECK(want != SHOAL_OK, "fixture %s has no status prefix", de->d_name);
        char rel[512];
        snprintf(rel, sizeof rel, "bad/%s", de->d_name);
        const char *p = path_of(rel);
        sh_hf *h = (sh_hf *)1;
        shoal_status s = sh_hf_open(p, &h);
        expect_fail(s, h, want, de->d_name, de->d_name); /* message names the file */
        size_t n;
        void *img = read_all(p, &n);
        CHECK(img != NULL, "read %s", p);
        if (img) {
            h = (sh_hf *)1;
            s = sh_hf_open_safetensors_memory(img, n, &h);
            expect_fail(s, h, want, de->d_name, "<memory>");
            free(img);
        }
        count++;
    }
    closedir(d);
    CHECK(count >= 62, "only %d bad fixtures", count);
}

/* A few messages in full detail. */
static void test_messages(void) {
    sh_hf *h = NULL;
    shoal_status s = sh_hf_open(path_of("bad/format_offsets_mismatch_small.safetensors"), &h);
    expect_fail(s, h, SHOAL_ERR_FORMAT, "mismatch",
                "format_offsets_mismatch_small.safetensors: tensor 't': data_offsets [0, 12] do not match "
                "shape [2, 2] F32 (16 bytes)");
    h = NULL;
    s = sh_hf_open(path_of("bad/unsupported_dtype_q9.safetensors"), &h);
    expect_fail(s, h, SHOAL_ERR_UNSUPPORTED, "q9", "tensor 't': dtype Q9 is not a known safetensors dtype");
    h = NULL;
    s = sh_hf_open(path_of("bad/unsupported_dtype_lowercase_i64.safetensors"), &h);
    expect_fail(s, h, SHOAL_ERR_UNSUPPORTED, "i64", "tensor 't': dtype i64 is not a known safetensors dtype");
    h = NULL;
    s = sh_hf_open(path_of("bad/format_skipped_offsets_mismatch.safetensors"), &h);
    expect_fail(s, h, SHOAL_ERR_FORMAT, "skipped mismatch",
                "tensor 't': data_offsets [0, 16] do not match shape [4] I64 (32 bytes)");
    h = NULL;
    s = sh_hf_open(path_of("bad/format_skipped_offsets_past_end.safetensors"), &h);
    expect_fail(s, h, SHOAL_ERR_FORMAT, "skipped past end", "data_offsets [0, 40] run past the data (32 bytes)");
    h = NULL;
    s = sh_hf_open(path_of("bad/format_duplicate_skipped_then_loaded.safetensors"), &h);
    expect_fail(s, h, SHOAL_ERR_FORMAT, "dup skipped/loaded", "tensor 't' appears twice");
    h = NULL;
    s = sh_hf_open(path_of("bad/format_duplicate_loaded_then_skipped.safetensors"), &h);
    expect_fail(s, h, SHOAL_ERR_FORMAT, "dup loaded/skipped", "tensor 't' appears twice");
    h = NULL;
    s = sh_hf_open(path_of("bad/unsupported_skipped_5dims.safetensors"), &h);
    expect_fail(s, h, SHOAL_ERR_UNSUPPORTED, "skipped 5 dims", "shape [1, 1, 1, 2, 2] has 5 dims");
    h = NULL;
    s = sh_hf_open(path_of("bad/format_offsets_reversed.safetensors"), &h);
    expect_fail(s, h, SHOAL_ERR_FORMAT, "reversed", "data_offsets [16, 0] are reversed");
    h = NULL;
    s = sh_hf_open(path_of("bad/format_shape_overflow.safetensors"), &h);
    expect_fail(s, h, SHOAL_ERR_FORMAT, "overflow", "has too many elements");
    h = NULL;
    s = sh_hf_open(path_of("bad/format_duplicate_names.safetensors"), &h);
    expect_fail(s, h, SHOAL_ERR_FORMAT, "dup", "tensor 't' appears twice");
    h = NULL;
    s = sh_hf_open(path_of("bad/format_len_past_eof.safetensors"), &h);
    expect_fail(s, h, SHOAL_ERR_FORMAT, "past eof", "header length 1000 runs past the end");
    h = NULL;
    s = sh_hf_open(path_of("bad/unsupported_shape_5dims.safetensors"), &h);
    expect_fail(s, h, SHOAL_ERR_UNSUPPORTED, "5 dims", "shape [1, 1, 1, 2, 2] has 5 dims");
}

static void test_folders(void) {
    static const struct {
        const char *dir;
        shoal_status want;
        const char *needle;
    } cases[] = {
        {"no_config", SHOAL_ERR_NOT_FOUND, "no_config/config.json: not found"},
        {"no_weights", SHOAL_ERR_NOT_FOUND, "neither model.safetensors nor"},
        {"config_bad_json", SHOAL_ERR_FORMAT, "config.json: file is not valid JSON"},
        {"config_not_object", SHOAL_ERR_FORMAT, "config.json: not a JSON object"},
        {"index_missing_shard", SHOAL_ERR_NOT_FOUND, "model-00003-of-00003.safetensors: not found"},
        {"index_dotdot", SHOAL_ERR_FORMAT, "'../single/model.safetensors' is not a plain file name"},
        {"index_absolute", SHOAL_ERR_FORMAT, "is not a plain file name"},
        {"index_subdir", SHOAL_ERR_FORMAT, "is not a plain file name"},
        {"index_wrong_shard", SHOAL_ERR_FORMAT, "weight_map puts tensor 'a.weight' in model-00002"},
        {"index_wrong_shard_loaded", SHOAL_ERR_FORMAT,
         "weight_map puts tensor 'd' in model-00001-of-00002.safetensors, but it is in"},
        {"index_unknown_tensor", SHOAL_ERR_FORMAT, "tensor 'zzz'"},
        {"index_not_string", SHOAL_ERR_FORMAT, "weight_map entry for 'd' is not a string"},
        {"index_empty_map", SHOAL_ERR_FORMAT, "\"weight_map\" is missing"},
        {"index_no_map", SHOAL_ERR_FORMAT, "\"weight_map\" is missing"},
        {"index_bad_json", SHOAL_ERR_FORMAT, "model.safetensors.index.json: file is not valid JSON"},
        {"index_duplicate_across_shards", SHOAL_ERR_FORMAT, "tensor 'x' is also in"},
        {"index_bad_shard", SHOAL_ERR_FORMAT, "model-00002-of-00002.safetensors: tensor"},
        {"index_wrong_shard_skipped", SHOAL_ERR_FORMAT,
         "weight_map puts tensor 'counts' in model-00001-of-00002.safetensors, but it is in"},
        {"index_duplicate_skipped_across_shards", SHOAL_ERR_FORMAT, "tensor 'x' is also in"},
        {"does_not_exist", SHOAL_ERR_NOT_FOUND, "does_not_exist: not found"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sh_hf *h = (sh_hf *)1;
        shoal_status s = sh_hf_open(path_of(cases[i].dir), &h);
        expect_fail(s, h, cases[i].want, cases[i].dir, cases[i].needle);
    }
}

static void test_args(void) {
    shoal_status s;
    sh_hf *h = (sh_hf *)1;
    s = sh_hf_open(NULL, &h);
    expect_fail(s, h, SHOAL_ERR_INVALID_ARG, "NULL path", NULL);
    h = (sh_hf *)1;
    s = sh_hf_open("", &h);
    expect_fail(s, h, SHOAL_ERR_INVALID_ARG, "empty path", NULL);
    CHECK(sh_hf_open(path_of("single"), NULL) == SHOAL_ERR_INVALID_ARG, "NULL out");
    h = (sh_hf *)1;
    s = sh_hf_open_safetensors_memory(NULL, 0, &h);
    expect_fail(s, h, SHOAL_ERR_FORMAT, "empty image", NULL);
    h = (sh_hf *)1;
    s = sh_hf_open_safetensors_memory(NULL, 10, &h);
    expect_fail(s, h, SHOAL_ERR_INVALID_ARG, "NULL image", NULL);
    sh_hf_close(NULL);
    CHECK(sh_hf_n_tensors(NULL) == 0 && sh_hf_tensor(NULL, 0) == NULL && sh_hf_find_tensor(NULL, "x") == NULL &&
              sh_hf_config(NULL) == NULL && sh_hf_dir(NULL) == NULL,
          "NULL handle accessors");
    /* an empty header object is a valid file with no tensors */
    static const uint8_t empty[16] = {8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '};
    h = NULL;
    CHECK(sh_hf_open_safetensors_memory(empty, sizeof empty, &h) == SHOAL_OK, "empty header: %s",
          shoal_last_error());
    CHECK(sh_hf_n_tensors(h) == 0 && sh_hf_find_tensor(h, "x") == NULL, "empty header has tensors");
    sh_hf_close(h);
}

/* Many tensors: the name index grows and every name is found. */
static void test_many(void) {
    enum { N = 3000 };
    size_t cap = (size_t)N * 80 + 64, len = 0;
    char *js = malloc(cap);
    len += (size_t)snprintf(js + len, cap - len, "{");
    for (int i = 0; i < N; i++)
        len += (size_t)snprintf(js + len, cap - len, "%s\"layer.%d.w\":{\"dtype\":\"F16\",\"shape\":[1],"
                                "\"data_offsets\":[%d,%d]}", i ? "," : "", i, 2 * i, 2 * i + 2);
    len += (size_t)snprintf(js + len, cap - len, "}");
    size_t total = 8 + len + 2 * N;
    uint8_t *img = malloc(total);
    for (int i = 0; i < 8; i++) img[i] = (uint8_t)((uint64_t)len >> (8 * i));
    memcpy(img + 8, js, len);
    for (int i = 0; i < N; i++) {
        img[8 + len + 2 * i] = (uint8_t)i;
        img[8 + len + 2 * i + 1] = (uint8_t)(i >> 8);
    }
    sh_hf *h = NULL;
    CHECK(sh_hf_open_safetensors_memory(img, total, &h) == SHOAL_OK, "many: %s", shoal_last_error());
    if (h) {
        CHECK(sh_hf_n_tensors(h) == N, "many: n %d", sh_hf_n_tensors(h));
        int miss = 0;
        for (int i = 0; i < N; i++) {
            char name[32];
            snprintf(name, sizeof name, "layer.%d.w", i);
            const sh_tensor *t = sh_hf_find_tensor(h, name);
            if (!t || u16_at(t, 0) != (uint16_t)i) miss++;
        }
        CHECK(miss == 0, "many: %d names not found or wrong data", miss);
    }
    sh_hf_close(h);
    free(img);
    free(js);
}

int main(void) {
    fx = check_env("SHOAL_FIXTURES", "tests/fixtures");
    test_single();
    test_sharded();
    test_truncations("single/model.safetensors");
    test_truncations("sharded/model-00001-of-00002.safetensors");
    test_truncations("sharded/model-00002-of-00002.safetensors");
    test_truncations("skipped/model.safetensors");
    test_truncations("skip/i64.safetensors");
    test_skip_dtypes();
    test_skipped();
    test_bad_files();
    test_messages();
    test_folders();
    test_args();
    test_many();
    return check_report();
}
