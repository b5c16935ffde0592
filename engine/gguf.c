/* GGUF v2/v3 reader.
 *
 * File layout (all little-endian):
 *   u32 magic "GGUF", u32 version, u64 n_tensors, u64 n_kv
 *   n_kv x      { str key; u32 type; value }
 *   n_tensors x { str name; u32 n_dims; u64 ne[n_dims]; u32 type; u64 offset }
 *   padding to general.alignment (default 32), then the data section;
 *   each tensor's offset is relative to the start of the data section.
 *   str = { u64 len; u8 bytes[len] }   (not NUL-terminated)
 *   array value = { u32 elem_type; u64 count; elem[count] }
 *
 * The image is never trusted: every read is bounds-checked, every count is
 * compared with the bytes left before anything is allocated for it, and all
 * size arithmetic is overflow-checked. Values are decoded byte by byte, so the
 * mapping may be at any alignment. Metadata values stay in the image; the
 * reader keeps offsets to them.
 */
#include "gguf.h"

#include "error.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_MAGIC 0x46554747u /* "GGUF" read as a little-endian u32 */
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_NAME 64      /* tensor names: at most 64 bytes (format rule) */
#define GGUF_MAX_DEPTH 8      /* arrays of arrays nest at most this deep */

/* Smallest encodings, used to bound counts by the bytes left:
 * kv: key len (8) + 1 key byte + type (4) + 1 value byte;
 * tensor info: name len (8) + 1 name byte + n_dims (4) + 1 dim (8) + type (4) + offset (8). */
#define GGUF_MIN_KV 14u
#define GGUF_MIN_TINFO 33u

typedef struct gguf_kv {
    char *key;            /* owned, NUL-terminated copy */
    sh_gguf_type type;
    uint64_t off;         /* value bytes; for arrays the first element */
    uint64_t len;         /* string: bytes; array: element count */
    sh_gguf_type elem;    /* array element type */
    uint64_t *str_off;    /* string arrays: offset of each element's u64 length
                           * (owned, len entries); NULL otherwise */
} gguf_kv;

struct sh_gguf {
    char *path;           /* for messages; owned */
    const uint8_t *base;  /* the image: size bytes */
    size_t size;
    int mapped;           /* 1: base is our mmap, unmapped on close */
    uint32_t version;
    uint64_t alignment;
    uint64_t data_off;    /* start of the data section */
    int n_kv;
    gguf_kv *kv;          /* n_kv */
    int n_tensors;
    sh_tensor *tensors;   /* n_tensors; data points into the image */
    size_t kv_mask;       /* hash tables of index+1 (0 = empty), mask+1 slots */
    uint32_t *kv_hash;
    size_t t_mask;
    uint32_t *t_hash;
};

/* ---- little-endian decoding ---------------------------------------------- */

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p) | ((uint64_t)le32(p + 4) << 32); }

/* A cursor over the image; what names the item being read, for messages. */
typedef struct reader {
    const sh_gguf *g;
    uint64_t pos;
} reader;

static uint64_t left(const reader *r) { return (uint64_t)r->g->size - r->pos; }

/* Fails unless n more bytes are in the image. */
static shoal_status need(reader *r, uint64_t n, const char *ctx, const char *what) {
    if (n <= left(r)) return SHOAL_OK;
    return sh_fail(SHOAL_ERR_FORMAT, "%s: %s%s%s at offset %llu needs %llu bytes, only %llu left (truncated file?)",
                   r->g->path, ctx, *ctx ? ": " : "", what, (unsigned long long)r->pos,
                   (unsigned long long)n, (unsigned long long)left(r));
}

static shoal_status get_u32(reader *r, uint32_t *v, const char *ctx, const char *what) {
    SH_TRY(need(r, 4, ctx, what));
    *v = le32(r->g->base + r->pos);
    r->pos += 4;
    return SHOAL_OK;
}

static shoal_status get_u64(reader *r, uint64_t *v, const char *ctx, const char *what) {
    SH_TRY(need(r, 8, ctx, what));
    *v = le64(r->g->base + r->pos);
    r->pos += 8;
    return SHOAL_OK;
}

/* A string: *off and *len locate its bytes; the length is bounded by the file. */
static shoal_status get_str(reader *r, uint64_t *off, uint64_t *len, const char *ctx, const char *what) {
    uint64_t at = r->pos;
    SH_TRY(get_u64(r, len, ctx, what));
    if (*len > left(r))
        return sh_fail(SHOAL_ERR_FORMAT, "%s: %s%s%s at offset %llu has length %llu but only %llu bytes follow",
                       r->g->path, ctx, *ctx ? ": " : "", what, (unsigned long long)at,
                       (unsigned long long)*len, (unsigned long long)left(r));
    *off = r->pos;
    r->pos += *len;
    return SHOAL_OK;
}

/* ---- value types ----------------------------------------------------------- */

static const char *type_name(uint32_t t) {
    static const char *names[] = {"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
                                  "bool", "string", "array", "uint64", "int64", "float64"};
    return t < sizeof names / sizeof names[0] ? names[t] : "unknown";
}

static int type_valid(uint32_t t) { return t <= SH_GGUF_FLOAT64; }

/* Bytes of a fixed-size value; 0 for string and array. */
static uint64_t type_size(uint32_t t) {
    switch (t) {
    case SH_GGUF_UINT8: case SH_GGUF_INT8: case SH_GGUF_BOOL: return 1;
    case SH_GGUF_UINT16: case SH_GGUF_INT16: return 2;
    case SH_GGUF_UINT32: case SH_GGUF_INT32: case SH_GGUF_FLOAT32: return 4;
    case SH_GGUF_UINT64: case SH_GGUF_INT64: case SH_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

/* Fewest bytes one value of type t can take. */
static uint64_t type_min_size(uint32_t t) {
    if (t == SH_GGUF_STRING) return 8;
    if (t == SH_GGUF_ARRAY) return 12;
    return type_size(t);
}

static int type_is_int(uint32_t t) {
    switch (t) {
    case SH_GGUF_UINT8: case SH_GGUF_INT8: case SH_GGUF_UINT16: case SH_GGUF_INT16:
    case SH_GGUF_UINT32: case SH_GGUF_INT32: case SH_GGUF_UINT64: case SH_GGUF_INT64:
    case SH_GGUF_BOOL: return 1;
    default: return 0;
    }
}

/* Decodes an integer/bool value at p. *overflow is set for a u64 past INT64_MAX. */
static int64_t decode_int(uint32_t t, const uint8_t *p, int *overflow) {
    *overflow = 0;
    switch (t) {
    case SH_GGUF_UINT8: case SH_GGUF_BOOL: return p[0];
    case SH_GGUF_INT8: return (int8_t)p[0];
    case SH_GGUF_UINT16: return le16(p);
    case SH_GGUF_INT16: return (int16_t)le16(p);
    case SH_GGUF_UINT32: return le32(p);
    case SH_GGUF_INT32: return (int32_t)le32(p);
    case SH_GGUF_INT64: return (int64_t)le64(p);
    case SH_GGUF_UINT64: {
        uint64_t v = le64(p);
        if (v > (uint64_t)INT64_MAX) { *overflow = 1; return INT64_MAX; }
        return (int64_t)v;
    }
    default: return 0;
    }
}

/* f32/f64 values, and integers converted. */
static double decode_float(uint32_t t, const uint8_t *p) {
    if (t == SH_GGUF_FLOAT32) {
        uint32_t u = le32(p);
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    if (t == SH_GGUF_FLOAT64) {
        uint64_t u = le64(p);
        double d;
        memcpy(&d, &u, 8);
        return d;
    }
    if (t == SH_GGUF_UINT64) return (double)le64(p);
    int ovf;
    return (double)decode_int(t, p, &ovf);
}

/* Skips one value of type t, checking it. depth counts enclosing arrays. */
static shoal_status skip_value(reader *r, uint32_t t, int depth, const char *ctx);

/* Skips count elements of type t; used for arrays. */
static shoal_status skip_elems(reader *r, uint32_t t, uint64_t count, int depth, const char *ctx) {
    uint64_t fixed = type_size(t);
    if (fixed) {
        uint64_t n = count * fixed; /* no overflow: count <= left / min size */
        SH_TRY(need(r, n, ctx, "array elements"));
        if (t == SH_GGUF_BOOL) {
            for (uint64_t i = 0; i < count; i++)
                if (r->g->base[r->pos + i] > 1)
                    return sh_fail(SHOAL_ERR_FORMAT, "%s: %s: bool element %llu at offset %llu is %u (must be 0 or 1)",
                                   r->g->path, ctx, (unsigned long long)i,
                                   (unsigned long long)(r->pos + i), r->g->base[r->pos + i]);
        }
        r->pos += n;
        return SHOAL_OK;
    }
    for (uint64_t i = 0; i < count; i++) SH_TRY(skip_value(r, t, depth, ctx));
    return SHOAL_OK;
}

/* Reads an array header, checking the element type and that count elements
 * can fit in the bytes left. */
static shoal_status array_header(reader *r, uint32_t *elem, uint64_t *count, const char *ctx) {
    SH_TRY(get_u32(r, elem, ctx, "array element type"));
    if (!type_valid(*elem))
        return sh_fail(SHOAL_ERR_FORMAT, "%s: %s: unknown array element type %u at offset %llu", r->g->path,
                       ctx, *elem, (unsigned long long)(r->pos - 4));
    SH_TRY(get_u64(r, count, ctx, "array count"));
    uint64_t min = type_min_size(*elem);
    if (*count > left(r) / min)
        return sh_fail(SHOAL_ERR_FORMAT,
                       "%s: %s: array of %llu %s elements at offset %llu cannot fit in the %llu bytes left",
                       r->g->path, ctx, (unsigned long long)*count, type_name(*elem),
                       (unsigned long long)(r->pos - 8), (unsigned long long)left(r));
    return SHOAL_OK;
}

static shoal_status skip_value(reader *r, uint32_t t, int depth, const char *ctx) {
    if (t == SH_GGUF_STRING) {
        uint64_t off, len;
        return get_str(r, &off, &len, ctx, "string");
    }
    if (t == SH_GGUF_ARRAY) {
        if (depth >= GGUF_MAX_DEPTH)
            return sh_fail(SHOAL_ERR_FORMAT, "%s: %s: arrays nested more than %d deep at offset %llu", r->g->path,
                           ctx, GGUF_MAX_DEPTH, (unsigned long long)r->pos);
        uint32_t elem;
        uint64_t count;
        SH_TRY(array_header(r, &elem, &count, ctx));
        return skip_elems(r, elem, count, depth + 1, ctx);
    }
    return skip_elems(r, t, 1, depth, ctx);
}

/* ---- name hashing ---------------------------------------------------------- */

static uint64_t hash_bytes(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

/* Allocates a table with at least 2n slots (a power of two). */
static uint32_t *hash_new(int n, size_t *mask) {
    size_t cap = 8;
    while (cap < 2 * (size_t)n) cap <<= 1;
    *mask = cap - 1;
    return calloc(cap, sizeof(uint32_t));
}

/* Returns the slot holding name, or the empty slot where it would go. */
static size_t hash_slot(const uint32_t *tab, size_t mask, const char *name,
                        const char *(*name_of)(const sh_gguf *, uint32_t), const sh_gguf *g) {
    size_t i = (size_t)hash_bytes(name) & mask;
    while (tab[i] && strcmp(name_of(g, tab[i] - 1), name) != 0) i = (i + 1) & mask;
    return i;
}

static const char *kv_name(const sh_gguf *g, uint32_t i) { return g->kv[i].key; }
static const char *tensor_name(const sh_gguf *g, uint32_t i) { return g->tensors[i].name; }

/* ---- parsing --------------------------------------------------------------- */

/* Copies a name out of the image: non-empty, no NUL bytes. */
static shoal_status copy_name(const sh_gguf *g, uint64_t off, uint64_t len, char **out, const char *what,
                              uint64_t index) {
    if (len == 0)
        return sh_fail(SHOAL_ERR_FORMAT, "%s: %s %llu at offset %llu: empty name", g->path, what,
                       (unsigned long long)index, (unsigned long long)off - 8);
    if (memchr(g->base + off, 0, len))
        return sh_fail(SHOAL_ERR_FORMAT, "%s: %s %llu at offset %llu: name contains a NUL byte", g->path, what,
                       (unsigned long long)index, (unsigned long long)off - 8);
    char *s = malloc(len + 1);
    if (!s) return sh_fail(SHOAL_ERR_NOMEM, "%s: out of memory for a %llu-byte name", g->path, (unsigned long long)len);
    memcpy(s, g->base + off, len);
    s[len] = 0;
    *out = s;
    return SHOAL_OK;
}

static shoal_status parse_kv(sh_gguf *g, reader *r, int i) {
    gguf_kv *kv = &g->kv[i];
    char ctx[160];
    snprintf(ctx, sizeof ctx, "kv %d", i);
    uint64_t koff, klen;
    SH_TRY(get_str(r, &koff, &klen, ctx, "key"));
    SH_TRY(copy_name(g, koff, klen, &kv->key, "kv", (uint64_t)i));
    snprintf(ctx, sizeof ctx, "kv %d '%.100s'", i, kv->key);

    size_t slot = hash_slot(g->kv_hash, g->kv_mask, kv->key, kv_name, g);
    if (g->kv_hash[slot])
        return sh_fail(SHOAL_ERR_FORMAT, "%s: %s: duplicate key (also kv %u)", g->path, ctx, g->kv_hash[slot] - 1);
    g->kv_hash[slot] = (uint32_t)i + 1;

    uint32_t t;
    SH_TRY(get_u32(r, &t, ctx, "value type"));
    if (!type_valid(t))
        return sh_fail(SHOAL_ERR_FORMAT, "%s: %s: unknown value type %u at offset %llu", g->path, ctx, t,
                       (unsigned long long)(r->pos - 4));
    kv->type = (sh_gguf_type)t;
    if (t == SH_GGUF_STRING) {
        SH_TRY(get_str(r, &kv->off, &kv->len, ctx, "string value"));
        return SHOAL_OK;
    }
    if (t != SH_GGUF_ARRAY) {
        kv->off = r->pos;
        return skip_elems(r, t, 1, 0, ctx);
    }
    uint32_t elem;
    SH_TRY(array_header(r, &elem, &kv->len, ctx));
    kv->elem = (sh_gguf_type)elem;
    kv->off = r->pos;
    if (elem != SH_GGUF_STRING) return skip_elems(r, elem, kv->len, 1, ctx);

    /* string arrays get an index for random access; len <= left / 8 */
    kv->str_off = malloc((kv->len ? kv->len : 1) * sizeof(uint64_t));
    if (!kv->str_off)
        return sh_fail(SHOAL_ERR_NOMEM, "%s: %s: out of memory indexing %llu strings", g->path, ctx,
                       (unsigned long long)kv->len);
    for (uint64_t e = 0; e < kv->len; e++) {
        uint64_t soff, slen;
        kv->str_off[e] = r->pos;
        SH_TRY(get_str(r, &soff, &slen, ctx, "array string"));
    }
    return SHOAL_OK;
}

/* Names of ggml tensor types, for messages about the ones we do not read. */
static const char *ggml_type_name(uint32_t t) {
    static const char *names[] = {
        "f32", "f16", "q4_0", "q4_1", "q4_2", "q4_3", "q5_0", "q5_1", "q8_0", "q8_1",
        "q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "q8_K", "iq2_xxs", "iq2_xs", "iq3_xxs", "iq1_s",
        "iq4_nl", "iq3_s", "iq2_s", "iq4_xs", "i8", "i16", "i32", "i64", "f64", "iq1_m",
        "bf16", "q4_0_4_4", "q4_0_4_8", "q4_0_8_8", "tq1_0", "tq2_0", "iq4_nl_4_4", "iq4_nl_4_8",
        "iq4_nl_8_8", "mxfp4"};
    return t < sizeof names / sizeof names[0] ? names[t] : NULL;
}

static shoal_status parse_tensor_info(sh_gguf *g, reader *r, int i, uint32_t *types, uint64_t *offsets) {
    sh_tensor *t = &g->tensors[i];
    char ctx[160];
    snprintf(ctx, sizeof ctx, "tensor %d", i);
    uint64_t noff, nlen;
    SH_TRY(get_str(r, &noff, &nlen, ctx, "name"));
    if (nlen > GGUF_MAX_NAME)
        return sh_fail(SHOAL_ERR_FORMAT, "%s: tensor %d at offset %llu: name is %llu bytes (at most %d allowed)",
                       g->path, i, (unsigned long long)noff - 8, (unsigned long long)nlen, GGUF_MAX_NAME);
    SH_TRY(copy_name(g, noff, nlen, &t->name, "tensor", (uint64_t)i));
    snprintf(ctx, sizeof ctx, "tensor '%s'", t->name);

    size_t slot = hash_slot(g->t_hash, g->t_mask, t->name, tensor_name, g);
    if (g->t_hash[slot])
        return sh_fail(SHOAL_ERR_FORMAT, "%s: %s: duplicate tensor name (tensors %u and %d)", g->path, ctx,
                       g->t_hash[slot] - 1, i);
    g->t_hash[slot] = (uint32_t)i + 1;

    uint32_t n_dims;
    SH_TRY(get_u32(r, &n_dims, ctx, "n_dims"));
    if (n_dims < 1 || n_dims > SH_MAX_DIMS)
        return sh_fail(SHOAL_ERR_FORMAT, "%s: %s: n_dims %u at offset %llu (must be 1..%d)", g->path, ctx, n_dims,
                       (unsigned long long)(r->pos - 4), SH_MAX_DIMS);
    t->n_dims = (int)n_dims;
    for (int d = 0; d < SH_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        uint64_t ne;
        SH_TRY(get_u64(r, &ne, ctx, "ne"));
        if (ne == 0 || ne > (uint64_t)INT64_MAX)
            return sh_fail(SHOAL_ERR_FORMAT, "%s: %s: ne[%u] = %llu at offset %llu (must be 1..2^63-1)", g->path,
                           ctx, d, (unsigned long long)ne, (unsigned long long)(r->pos - 8));
        t->ne[d] = (int64_t)ne;
    }
    SH_TRY(get_u32(r, &types[i], ctx, "type"));
    SH_TRY(get_u64(r, &offsets[i], ctx, "data offset"));
    return SHOAL_OK;
}

/* Checks one tensor against the data section and points it into the image. */
static shoal_status place_tensor(sh_gguf *g, int i, uint32_t type, uint64_t offset) {
    sh_tensor *t = &g->tensors[i];
    if (!sh_dtype_valid((int)type)) {
        const char *n = ggml_type_name(type);
        if (n)
            return sh_fail(SHOAL_ERR_UNSUPPORTED,
                           "%s: tensor '%s': type %s (%u) is not supported (f32, f16, bf16, q8_0, q4_0 are)",
                           g->path, t->name, n, type);
        return sh_fail(SHOAL_ERR_UNSUPPORTED, "%s: tensor '%s': unknown tensor type %u", g->path, t->name, type);
    }
    t->dtype = (sh_dtype)type;
    uint64_t blk = (uint64_t)sh_dtype_block(t->dtype);
    if ((uint64_t)t->ne[0] % blk != 0)
        return sh_fail(SHOAL_ERR_FORMAT, "%s: tensor '%s': ne[0] = %lld is not a multiple of the %s block size %llu",
                       g->path, t->name, (long long)t->ne[0], sh_dtype_name(t->dtype), (unsigned long long)blk);
    if (sh_tensor_nelements(t) == 0)
        return sh_fail(SHOAL_ERR_FORMAT, "%s: tensor '%s': element count %lld x %lld x %lld x %lld overflows",
                       g->path, t->name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                       (long long)t->ne[3]);
    uint64_t nbytes = sh_dtype_row_bytes(t->dtype, (uint64_t)t->ne[0]);
    int ok = nbytes != 0;
    for (int d = 1; d < SH_MAX_DIMS && ok; d++) ok = sh_mul_ok(nbytes, (uint64_t)t->ne[d], &nbytes);
    if (!ok)
        return sh_fail(SHOAL_ERR_FORMAT, "%s: tensor '%s': byte size of %lld x %lld x %lld x %lld %s overflows",
                       g->path, t->name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                       (long long)t->ne[3], sh_dtype_name(t->dtype));
    if (offset % g->alignment != 0)
        return sh_fail(SHOAL_ERR_FORMAT, "%s: tensor '%s': data offset %llu is not a multiple of the alignment %llu",
                       g->path, t->name, (unsigned long long)offset, (unsigned long long)g->alignment);
    uint64_t start, end;
    if (!sh_add_ok(g->data_off, offset, &start) || !sh_add_ok(start, nbytes, &end) || end > g->size)
        return sh_fail(SHOAL_ERR_FORMAT,
                       "%s: tensor '%s': data offset %llu + %llu bytes past end of file (%llu bytes; data section at %llu)",
                       g->path, t->name, (unsigned long long)offset, (unsigned long long)nbytes,
                       (unsigned long long)g->size, (unsigned long long)g->data_off);
    t->data = g->base + start;
    t->nbytes = nbytes;
    return SHOAL_OK;
}

/* general.alignment: optional integer, a nonzero power of two. */
static shoal_status read_alignment(sh_gguf *g) {
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    int k = sh_gguf_find_key(g, "general.alignment");
    if (k < 0) return SHOAL_OK;
    const gguf_kv *kv = &g->kv[k];
    if (!type_is_int(kv->type) || kv->type == SH_GGUF_BOOL)
        return sh_fail(SHOAL_ERR_FORMAT, "%s: general.alignment has type %s (must be an integer)", g->path,
                       type_name(kv->type));
    int ovf;
    int64_t a = decode_int(kv->type, g->base + kv->off, &ovf);
    if (ovf || a <= 0 || a > (int64_t)1 << 30 || (a & (a - 1)) != 0)
        return sh_fail(SHOAL_ERR_FORMAT, "%s: general.alignment = %lld (must be a power of two, 1..2^30)", g->path,
                       ovf ? (long long)INT64_MAX : (long long)a);
    g->alignment = (uint64_t)a;
    return SHOAL_OK;
}

static shoal_status parse(sh_gguf *g) {
    reader r = {g, 0};
    uint32_t *types = NULL;
    uint64_t *offsets = NULL;
    shoal_status s;
    uint32_t version;
    uint64_t n_tensors, n_kv;

    if (g->size < 4 || le32(g->base) != GGUF_MAGIC) {
        if (g->size < 4) return sh_fail(SHOAL_ERR_FORMAT, "%s: not a GGUF file (%zu bytes)", g->path, g->size);
        return sh_fail(SHOAL_ERR_FORMAT, "%s: not a GGUF file (magic %02x %02x %02x %02x, want \"GGUF\")", g->path,
                       g->base[0], g->base[1], g->base[2], g->base[3]);
    }
    r.pos = 4;
    SH_TRY(get_u32(&r, &version, "", "version"));
    if (version == 1)
        return sh_fail(SHOAL_ERR_UNSUPPORTED, "%s: GGUF version 1 is not supported (only 2 and 3)", g->path);
    if ((version & 0xffffu) == 0 && (version >> 24) >= 1 && (version >> 24) <= 3)
        return sh_fail(SHOAL_ERR_UNSUPPORTED, "%s: big-endian GGUF (version %u byte-swapped) is not supported",
                       g->path, version >> 24);
    if (version != 2 && version != 3)
        return sh_fail(version > 3 ? SHOAL_ERR_UNSUPPORTED : SHOAL_ERR_FORMAT,
                       "%s: GGUF version %u is not supported (only 2 and 3)", g->path, version);
    g->version = version;
    SH_TRY(get_u64(&r, &n_tensors, "", "n_tensors"));
    SH_TRY(get_u64(&r, &n_kv, "", "n_kv"));

    /* bound both counts by the bytes left before allocating for them */
    uint64_t min_kv = 0, min_ti = 0, min_all = 0;
    if (n_kv > INT_MAX || !sh_mul_ok(n_kv, GGUF_MIN_KV, &min_kv) || min_kv > left(&r))
        return sh_fail(SHOAL_ERR_FORMAT, "%s: n_kv = %llu cannot fit in the %llu bytes after the header", g->path,
                       (unsigned long long)n_kv, (unsigned long long)left(&r));
    if (n_tensors > INT_MAX || !sh_mul_ok(n_tensors, GGUF_MIN_TINFO, &min_ti) ||
        !sh_add_ok(min_kv, min_ti, &min_all) || min_all > left(&r))
        return sh_fail(SHOAL_ERR_FORMAT, "%s: n_tensors = %llu (with n_kv = %llu) cannot fit in the %llu bytes after the header",
                       g->path, (unsigned long long)n_tensors, (unsigned long long)n_kv,
                       (unsigned long long)left(&r));
    g->n_kv = (int)n_kv;
    g->n_tensors = (int)n_tensors;

    g->kv = calloc(n_kv ? n_kv : 1, sizeof *g->kv);
    g->kv_hash = hash_new(g->n_kv, &g->kv_mask);
    g->tensors = calloc(n_tensors ? n_tensors : 1, sizeof *g->tensors);
    g->t_hash = hash_new(g->n_tensors, &g->t_mask);
    types = calloc(n_tensors ? n_tensors : 1, sizeof *types);
    offsets = calloc(n_tensors ? n_tensors : 1, sizeof *offsets);
    if (!g->kv || !g->kv_hash || !g->tensors || !g->t_hash || !types || !offsets) {
        s = sh_fail(SHOAL_ERR_NOMEM, "%s: out of memory for %llu keys and %llu tensors", g->path,
                    (unsigned long long)n_kv, (unsigned long long)n_tensors);
        goto fail;
    }

    for (int i = 0; i < g->n_kv; i++)
        if ((s = parse_kv(g, &r, i)) != SHOAL_OK) goto fail;
    if ((s = read_alignment(g)) != SHOAL_OK) goto fail;
    for (int i = 0; i < g->n_tensors; i++)
        if ((s = parse_tensor_info(g, &r, i, types, offsets)) != SHOAL_OK) goto fail;

    /* the data section starts at the next multiple of the alignment */
    uint64_t pad = (g->alignment - r.pos % g->alignment) % g->alignment;
    if (!sh_add_ok(r.pos, pad, &g->data_off)) {
        s = sh_fail(SHOAL_ERR_FORMAT, "%s: data section offset overflows", g->path);
        goto fail;
    }
    for (int i = 0; i < g->n_tensors; i++)
        if ((s = place_tensor(g, i, types[i], offsets[i])) != SHOAL_OK) goto fail;
    free(types);
    free(offsets);
    return SHOAL_OK;
fail:
    free(types);
    free(offsets);
    return s;
}

/* ---- open / close ---------------------------------------------------------- */

static shoal_status open_image(const char *path, const void *data, size_t size, int mapped, sh_gguf **out) {
    sh_gguf *g = calloc(1, sizeof *g);
    char *p = strdup(path);
    if (!g || !p) {
        free(g);
        free(p);
        if (mapped) munmap((void *)data, size);
        return sh_fail(SHOAL_ERR_NOMEM, "%s: out of memory", path);
    }
    g->path = p;
    g->base = data;
    g->size = size;
    g->mapped = mapped;
    shoal_status s = parse(g);
    if (s != SHOAL_OK) {
        sh_gguf_close(g);
        return s;
    }
    *out = g;
    return SHOAL_OK;
}

shoal_status sh_gguf_open(const char *path, sh_gguf **out) {
    if (!out) return sh_fail(SHOAL_ERR_INVALID_ARG, "sh_gguf_open: out is NULL");
    *out = NULL;
    if (!path) return sh_fail(SHOAL_ERR_INVALID_ARG, "sh_gguf_open: path is NULL");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return sh_fail(SHOAL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return sh_fail(SHOAL_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return sh_fail(SHOAL_ERR_IO, "%s: not a regular file", path);
    }
    if (st.st_size < 4) {
        close(fd);
        return sh_fail(SHOAL_ERR_FORMAT, "%s: not a GGUF file (%lld bytes)", path, (long long)st.st_size);
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        return sh_fail(SHOAL_ERR_IO, "%s: too large to map (%lld bytes)", path, (long long)st.st_size);
    }
    size_t size = (size_t)st.st_size;
    void *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (m == MAP_FAILED) return sh_fail(SHOAL_ERR_IO, "%s: cannot mmap %zu bytes: %s", path, size, strerror(e));
    return open_image(path, m, size, 1, out);
}

shoal_status sh_gguf_open_memory(const void *data, size_t size, sh_gguf **out) {
    if (!out) return sh_fail(SHOAL_ERR_INVALID_ARG, "sh_gguf_open_memory: out is NULL");
    *out = NULL;
    if (!data && size) return sh_fail(SHOAL_ERR_INVALID_ARG, "sh_gguf_open_memory: data is NULL");
    static const uint8_t empty[1];
    return open_image("<memory>", data ? data : empty, size, 0, out);
}

void sh_gguf_close(sh_gguf *g) {
    if (!g) return;
    if (g->kv)
        for (int i = 0; i < g->n_kv; i++) {
            free(g->kv[i].key);
            free(g->kv[i].str_off);
        }
    if (g->tensors)
        for (int i = 0; i < g->n_tensors; i++) free(g->tensors[i].name);
    free(g->kv);
    free(g->tensors);
    free(g->kv_hash);
    free(g->t_hash);
    if (g->mapped) munmap((void *)g->base, g->size);
    free(g->path);
    free(g);
}

/* ---- accessors ------------------------------------------------------------- */

uint32_t sh_gguf_version(const sh_gguf *g) { return g ? g->version : 0; }

int sh_gguf_n_tensors(const sh_gguf *g) { return g ? g->n_tensors : 0; }

const sh_tensor *sh_gguf_tensor(const sh_gguf *g, int i) {
    if (!g || i < 0 || i >= g->n_tensors) return NULL;
    return &g->tensors[i];
}

const sh_tensor *sh_gguf_find_tensor(const sh_gguf *g, const char *name) {
    if (!g || !name) return NULL;
    size_t slot = hash_slot(g->t_hash, g->t_mask, name, tensor_name, g);
    return g->t_hash[slot] ? &g->tensors[g->t_hash[slot] - 1] : NULL;
}

int sh_gguf_n_kv(const sh_gguf *g) { return g ? g->n_kv : 0; }

const char *sh_gguf_key(const sh_gguf *g, int i) {
    if (!g || i < 0 || i >= g->n_kv) return NULL;
    return g->kv[i].key;
}

int sh_gguf_find_key(const sh_gguf *g, const char *key) {
    if (!g || !key) return -1;
    size_t slot = hash_slot(g->kv_hash, g->kv_mask, key, kv_name, g);
    return g->kv_hash[slot] ? (int)g->kv_hash[slot] - 1 : -1;
}

sh_gguf_type sh_gguf_kv_type(const sh_gguf *g, int i) {
    if (!g || i < 0 || i >= g->n_kv) return (sh_gguf_type)-1;
    return g->kv[i].type;
}

/* The kv of key, or NULL with SHOAL_ERR_NOT_FOUND in *s. */
static const gguf_kv *lookup(const sh_gguf *g, const char *key, shoal_status *s) {
    int i = sh_gguf_find_key(g, key);
    if (i < 0) {
        *s = sh_fail(SHOAL_ERR_NOT_FOUND, "%s: no key '%s'", g ? g->path : "gguf", key ? key : "(null)");
        return NULL;
    }
    *s = SHOAL_OK;
    return &g->kv[i];
}

static shoal_status wrong_type(const sh_gguf *g, const gguf_kv *kv, const char *want) {
    return sh_fail(SHOAL_ERR_FORMAT, "%s: key '%s' has type %s, want %s", g->path, kv->key, type_name(kv->type), want);
}

shoal_status sh_gguf_get_int(const sh_gguf *g, const char *key, int64_t *out) {
    shoal_status s;
    const gguf_kv *kv = lookup(g, key, &s);
    if (!kv) return s;
    if (!type_is_int(kv->type)) return wrong_type(g, kv, "an integer");
    int ovf;
    int64_t v = decode_int(kv->type, g->base + kv->off, &ovf);
    if (ovf)
        return sh_fail(SHOAL_ERR_FORMAT, "%s: key '%s': uint64 value %llu does not fit int64", g->path, key,
                       (unsigned long long)le64(g->base + kv->off));
    *out = v;
    return SHOAL_OK;
}

shoal_status sh_gguf_get_float(const sh_gguf *g, const char *key, double *out) {
    shoal_status s;
    const gguf_kv *kv = lookup(g, key, &s);
    if (!kv) return s;
    if (kv->type == SH_GGUF_BOOL || (!type_is_int(kv->type) && kv->type != SH_GGUF_FLOAT32 &&
                                     kv->type != SH_GGUF_FLOAT64))
        return wrong_type(g, kv, "a number");
    *out = decode_float(kv->type, g->base + kv->off);
    return SHOAL_OK;
}

shoal_status sh_gguf_get_str(const sh_gguf *g, const char *key, const char **str, uint64_t *len) {
    shoal_status s;
    const gguf_kv *kv = lookup(g, key, &s);
    if (!kv) return s;
    if (kv->type != SH_GGUF_STRING) return wrong_type(g, kv, "string");
    *str = (const char *)g->base + kv->off;
    *len = kv->len;
    return SHOAL_OK;
}

shoal_status sh_gguf_get_arr(const sh_gguf *g, const char *key, sh_gguf_type *elem, uint64_t *n) {
    shoal_status s;
    const gguf_kv *kv = lookup(g, key, &s);
    if (!kv) return s;
    if (kv->type != SH_GGUF_ARRAY) return wrong_type(g, kv, "array");
    *elem = kv->elem;
    *n = kv->len;
    return SHOAL_OK;
}

/* The array kv of key with element i in range, else NULL (message set). */
static const gguf_kv *arr_elem(const sh_gguf *g, const char *key, uint64_t i) {
    shoal_status s;
    const gguf_kv *kv = lookup(g, key, &s);
    if (!kv) return NULL;
    if (kv->type != SH_GGUF_ARRAY) {
        wrong_type(g, kv, "array");
        return NULL;
    }
    if (i >= kv->len) {
        sh_fail(SHOAL_ERR_RANGE, "%s: key '%s': index %llu past %llu elements", g->path, key,
                (unsigned long long)i, (unsigned long long)kv->len);
        return NULL;
    }
    return kv;
}

const char *sh_gguf_arr_str(const sh_gguf *g, const char *key, uint64_t i, uint64_t *len) {
    if (len) *len = 0;
    const gguf_kv *kv = arr_elem(g, key, i);
    if (!kv) return NULL;
    if (kv->elem != SH_GGUF_STRING) {
        sh_fail(SHOAL_ERR_FORMAT, "%s: key '%s' is an array of %s, not strings", g->path, key, type_name(kv->elem));
        return NULL;
    }
    uint64_t at = kv->str_off[i];
    if (len) *len = le64(g->base + at);
    return (const char *)g->base + at + 8;
}

int64_t sh_gguf_arr_int(const sh_gguf *g, const char *key, uint64_t i) {
    const gguf_kv *kv = arr_elem(g, key, i);
    if (!kv) return 0;
    if (!type_is_int(kv->elem)) {
        sh_fail(SHOAL_ERR_FORMAT, "%s: key '%s' is an array of %s, not integers", g->path, key, type_name(kv->elem));
        return 0;
    }
    int ovf;
    return decode_int(kv->elem, g->base + kv->off + i * type_size(kv->elem), &ovf);
}

double sh_gguf_arr_float(const sh_gguf *g, const char *key, uint64_t i) {
    const gguf_kv *kv = arr_elem(g, key, i);
    if (!kv) return 0;
    if (kv->elem == SH_GGUF_BOOL || (!type_is_int(kv->elem) && kv->elem != SH_GGUF_FLOAT32 &&
                                     kv->elem != SH_GGUF_FLOAT64)) {
        sh_fail(SHOAL_ERR_FORMAT, "%s: key '%s' is an array of %s, not numbers", g->path, key, type_name(kv->elem));
        return 0;
    }
    return decode_float(kv->elem, g->base + kv->off + i * type_size(kv->elem));
}
