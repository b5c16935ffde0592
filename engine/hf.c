/* Hugging Face model folders and safetensors files.
 *
 * A safetensors file is
 *   u64 N (little-endian) | N bytes of JSON header | data
 * The header is an object { name: {"dtype": "F32", "shape": [d0, ..],
 * "data_offsets": [begin, end]}, .., "__metadata__": {str: str} } with offsets
 * relative to the first data byte. Every field is checked before a tensor is
 * exposed; tensor data points into the read-only mapping of the file and has
 * no alignment guarantee (the format does not promise any). Tensors of a known
 * dtype the engine does not compute with (I64, F64, ..) pass the same checks
 * and are then recorded by name only ("skipped"), not exposed as tensors. */
#include "hf.h"

#include "error.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define HF_MAX_HEADER ((uint64_t)100 << 20)   /* safetensors JSON header cap */
#define HF_MAX_JSON_FILE ((uint64_t)64 << 20) /* config.json / index cap */
#define HF_MAX_INT 9007199254740992.0         /* 2^53: exact in a double */

/* One mapped file (a shard). */
typedef struct hf_map {
    char *path;  /* owned */
    void *base;  /* mmap base, read-only */
    size_t size; /* bytes mapped */
} hf_map;

/* A tensor that passed every check but has a dtype the engine does not
 * compute with: kept by name so lookups can say why it is absent. */
typedef struct hf_skip {
    char *name;        /* owned */
    const char *dtype; /* static dtype name, e.g. "I64" */
    int shard;         /* index into maps (0 for an in-memory image) */
} hf_skip;

struct sh_hf {
    char *dir;        /* folder path; NULL for an in-memory image */
    cJSON *config;    /* parsed config.json, or NULL */
    sh_tensor *t;     /* [n] tensors in load order */
    int *shard;       /* [n] index into maps (0 for an in-memory image) */
    int n, cap;
    hf_skip *skip;    /* [n_skip] skipped tensors in load order */
    int n_skip, cap_skip;
    hf_map *maps;     /* [n_maps] */
    int n_maps;
    int *slots;       /* [n_slots] open-addressing name index: -1 empty, k >= 0
                         tensor k, k <= -2 skipped entry -k - 2 */
    size_t n_slots;   /* power of two, > 2 (n + n_skip) */
};

/* ---- name index ---------------------------------------------------------- */

/* FNV-1a over the NUL-terminated name. */
static uint64_t hf_hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

/* Name and shard of a non-empty slot value (see sh_hf.slots). */
static const char *hf_entry_name(const sh_hf *h, int v) { return v >= 0 ? h->t[v].name : h->skip[-v - 2].name; }
static int hf_entry_shard(const sh_hf *h, int v) { return v >= 0 ? h->shard[v] : h->skip[-v - 2].shard; }

/* Slot holding name, or the empty slot where it would go. */
static size_t hf_slot(const sh_hf *h, const char *name) {
    size_t mask = h->n_slots - 1;
    size_t i = (size_t)hf_hash(name) & mask;
    while (h->slots[i] != -1 && strcmp(hf_entry_name(h, h->slots[i]), name) != 0) i = (i + 1) & mask;
    return i;
}

/* Slot value for name (tensor or skipped entry), or -1 if absent. */
static int hf_lookup(const sh_hf *h, const char *name) {
    if (!h || !name || !h->n_slots) return -1;
    return h->slots[hf_slot(h, name)];
}

/* Makes room for one more entry: keeps the load factor under 1/2. */
static shoal_status hf_index_reserve(sh_hf *h) {
    size_t used = (size_t)h->n + (size_t)h->n_skip;
    if (h->n_slots && (used + 1) * 2 <= h->n_slots) return SHOAL_OK;
    size_t ns = h->n_slots ? h->n_slots * 2 : 64;
    int *s = malloc(ns * sizeof *s);
    if (!s) return sh_fail(SHOAL_ERR_NOMEM, "out of memory for the tensor index");
    for (size_t i = 0; i < ns; i++) s[i] = -1;
    free(h->slots);
    h->slots = s;
    h->n_slots = ns;
    for (int k = 0; k < h->n; k++) h->slots[hf_slot(h, h->t[k].name)] = k;
    for (int k = 0; k < h->n_skip; k++) h->slots[hf_slot(h, h->skip[k].name)] = -k - 2;
    return SHOAL_OK;
}

/* ---- small helpers ------------------------------------------------------- */

static char *hf_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* "dir/name" in fresh memory, or NULL. */
static char *hf_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

/* The value as an integer in [0, 2^53]; 0 if it is not one. */
static int hf_json_uint(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0.0) || d > HF_MAX_INT || d != floor(d)) return 0;
    *out = (uint64_t)d;
    return 1;
}

/* Writes "[d0, d1, ..]" of a JSON array's raw values (for messages). */
static void hf_fmt_array(char *buf, size_t cap, const cJSON *arr) {
    size_t n = 0;
    int k = 0;
    const cJSON *e;
    buf[0] = 0;
    n += (size_t)snprintf(buf + n, cap - n, "[");
    cJSON_ArrayForEach(e, arr) {
        if (n >= cap) break;
        if (cJSON_IsNumber(e) && e->valuedouble == floor(e->valuedouble) && fabs(e->valuedouble) < 1e20)
            n += (size_t)snprintf(buf + n, cap - n, "%s%.0f", k ? ", " : "", e->valuedouble);
        else if (cJSON_IsNumber(e))
            n += (size_t)snprintf(buf + n, cap - n, "%s%.17g", k ? ", " : "", e->valuedouble);
        else
            n += (size_t)snprintf(buf + n, cap - n, "%s?", k ? ", " : "");
        k++;
    }
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

/* Parses len bytes of JSON (need not be NUL-terminated). Only whitespace may
 * follow the value. On failure returns NULL with the message set. */
static cJSON *hf_parse_json(const char *label, const char *what, const char *text, size_t len) {
    char *copy = malloc(len + 1); /* NUL-terminated copy: cJSON never reads past it */
    if (!copy) {
        sh_fail(SHOAL_ERR_NOMEM, "%s: out of memory for the %s (%zu bytes)", label, what, len);
        return NULL;
    }
    memcpy(copy, text, len);
    copy[len] = 0;
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(copy, len, &end, 0);
    if (!j) {
        size_t at = end && end >= copy && end <= copy + len ? (size_t)(end - copy) : 0;
        sh_fail(SHOAL_ERR_FORMAT, "%s: %s is not valid JSON (error near byte %zu)", label, what, at);
        free(copy);
        return NULL;
    }
    for (const char *p = end; p < copy + len; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            sh_fail(SHOAL_ERR_FORMAT, "%s: %s has trailing bytes after the JSON value (at byte %zu)",
                    label, what, (size_t)(p - copy));
            cJSON_Delete(j);
            free(copy);
            return NULL;
        }
    }
    free(copy);
    return j;
}

/* Reads a whole JSON file (at most HF_MAX_JSON_FILE bytes) and parses it. */
static shoal_status hf_read_json_file(const char *path, cJSON **out) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT) return sh_fail(SHOAL_ERR_NOT_FOUND, "%s: not found", path);
        return sh_fail(SHOAL_ERR_IO, "%s: %s", path, strerror(errno));
    }
    shoal_status s = SHOAL_OK;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            if (cap >= HF_MAX_JSON_FILE) {
                s = sh_fail(SHOAL_ERR_FORMAT, "%s: larger than the %llu MB limit for JSON files", path,
                            (unsigned long long)(HF_MAX_JSON_FILE >> 20));
                goto done;
            }
            size_t nc = cap ? cap * 2 : 4096;
            char *nb = realloc(buf, nc);
            if (!nb) {
                s = sh_fail(SHOAL_ERR_NOMEM, "%s: out of memory", path);
                goto done;
            }
            buf = nb;
            cap = nc;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f)) s = sh_fail(SHOAL_ERR_IO, "%s: read error", path);
            break;
        }
    }
    if (s == SHOAL_OK) {
        cJSON *j = hf_parse_json(path, "file", buf ? buf : "", len);
        if (!j) s = SHOAL_ERR_FORMAT;
        else if (!cJSON_IsObject(j)) {
            cJSON_Delete(j);
            s = sh_fail(SHOAL_ERR_FORMAT, "%s: not a JSON object", path);
        } else
            *out = j;
    }
done:
    free(buf);
    fclose(f);
    return s;
}

/* ---- one safetensors image ---------------------------------------------- */

typedef struct hf_dtype_info {
    const char *name;
    int supported; /* 0: known to the format, validated, then skipped */
    sh_dtype dtype; /* meaningful only when supported */
    uint32_t size;  /* bytes per element */
} hf_dtype_info;

static const hf_dtype_info hf_dtypes[] = {
    {"F32", 1, SH_F32, 4},     {"F16", 1, SH_F16, 2},     {"BF16", 1, SH_BF16, 2},
    {"F64", 0, SH_F32, 8},     {"I64", 0, SH_F32, 8},     {"I32", 0, SH_F32, 4},
    {"I16", 0, SH_F32, 2},     {"I8", 0, SH_F32, 1},      {"U8", 0, SH_F32, 1},
    {"U16", 0, SH_F32, 2},     {"U32", 0, SH_F32, 4},     {"U64", 0, SH_F32, 8},
    {"BOOL", 0, SH_F32, 1},    {"F8_E4M3", 0, SH_F32, 1}, {"F8_E5M2", 0, SH_F32, 1},
};

/* Appends one tensor (t != NULL) or one skipped entry of dtype skip_dtype
 * (t == NULL); the name is copied. Duplicate names, of either kind, are an
 * error. */
static shoal_status hf_add(sh_hf *h, const char *label, const char *name, const sh_tensor *t,
                           const char *skip_dtype, int shard) {
    SH_TRY(hf_index_reserve(h));
    size_t slot = hf_slot(h, name);
    if (h->slots[slot] != -1) {
        int other = hf_entry_shard(h, h->slots[slot]);
        if (other != shard && other < h->n_maps)
            return sh_fail(SHOAL_ERR_FORMAT, "%s: tensor '%s' is also in %s", label, name,
                           h->maps[other].path);
        return sh_fail(SHOAL_ERR_FORMAT, "%s: tensor '%s' appears twice", label, name);
    }
    if (!t) {
        if (h->n_skip == h->cap_skip) {
            int nc = h->cap_skip ? h->cap_skip * 2 : 8;
            hf_skip *nk = realloc(h->skip, (size_t)nc * sizeof *nk);
            if (!nk) return sh_fail(SHOAL_ERR_NOMEM, "%s: out of memory for tensors", label);
            h->skip = nk;
            h->cap_skip = nc;
        }
        char *nm = hf_strdup(name);
        if (!nm) return sh_fail(SHOAL_ERR_NOMEM, "%s: out of memory for tensor names", label);
        h->skip[h->n_skip] = (hf_skip){nm, skip_dtype, shard};
        h->slots[slot] = -h->n_skip - 2;
        h->n_skip++;
        return SHOAL_OK;
    }
    if (h->n == h->cap) {
        int nc = h->cap ? h->cap * 2 : 64;
        sh_tensor *nt = realloc(h->t, (size_t)nc * sizeof *nt);
        if (!nt) return sh_fail(SHOAL_ERR_NOMEM, "%s: out of memory for tensors", label);
        h->t = nt;
        int *ns = realloc(h->shard, (size_t)nc * sizeof *ns);
        if (!ns) return sh_fail(SHOAL_ERR_NOMEM, "%s: out of memory for tensors", label);
        h->shard = ns;
        h->cap = nc;
    }
    char *nm = hf_strdup(name);
    if (!nm) return sh_fail(SHOAL_ERR_NOMEM, "%s: out of memory for tensor names", label);
    h->t[h->n] = *t;
    h->t[h->n].name = nm;
    h->shard[h->n] = shard;
    h->slots[slot] = h->n;
    h->n++;
    return SHOAL_OK;
}

/* Checks one header entry and appends the tensor it describes. data/data_size
 * is the data section (the bytes after the header). */
static shoal_status hf_entry(sh_hf *h, const char *label, const cJSON *e, const uint8_t *data,
                             uint64_t data_size, int shard) {
    const char *name = e->string;
    if (!cJSON_IsObject(e))
        return sh_fail(SHOAL_ERR_FORMAT, "%s: tensor '%s': entry is not a JSON object", label, name);

    /* dtype */
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    if (!cJSON_IsString(jd) || !jd->valuestring)
        return sh_fail(SHOAL_ERR_FORMAT, "%s: tensor '%s': missing or non-string \"dtype\"", label, name);
    const hf_dtype_info *di = NULL;
    for (size_t i = 0; i < sizeof hf_dtypes / sizeof hf_dtypes[0]; i++)
        if (strcmp(jd->valuestring, hf_dtypes[i].name) == 0) di = &hf_dtypes[i];
    if (!di)
        return sh_fail(SHOAL_ERR_UNSUPPORTED,
                       "%s: tensor '%s': dtype %s is not a known safetensors dtype (F32, F16, BF16 are computed "
                       "with; F64, I64, I32, I16, I8, U64, U32, U16, U8, BOOL, F8_E4M3, F8_E5M2 are skipped)",
                       label, name, jd->valuestring);

    /* shape: at most SH_MAX_DIMS non-negative integers; [] is a scalar */
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
    if (!cJSON_IsArray(js))
        return sh_fail(SHOAL_ERR_FORMAT, "%s: tensor '%s': missing or non-array \"shape\"", label, name);
    int nd = cJSON_GetArraySize(js);
    char shp[160];
    hf_fmt_array(shp, sizeof shp, js);
    if (nd > SH_MAX_DIMS)
        return sh_fail(SHOAL_ERR_UNSUPPORTED, "%s: tensor '%s': shape %s has %d dims (at most %d supported)",
                       label, name, shp, nd, SH_MAX_DIMS);
    uint64_t dims[SH_MAX_DIMS] = {0};
    uint64_t nel = 1, bound = 1; /* bound: product of max(d, 1), kept <= 2^53 */
    int k = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, js) {
        if (!hf_json_uint(v, &dims[k]))
            return sh_fail(SHOAL_ERR_FORMAT,
                           "%s: tensor '%s': shape %s: dim %d is not an integer in [0, 2^53]", label, name,
                           shp, k);
        if (!sh_mul_ok(bound, dims[k] ? dims[k] : 1, &bound) || bound > (uint64_t)HF_MAX_INT)
            return sh_fail(SHOAL_ERR_FORMAT, "%s: tensor '%s': shape %s has too many elements", label,
                           name, shp);
        nel *= dims[k]; /* nel <= bound <= 2^53 */
        k++;
    }
    uint64_t nbytes = nel * di->size; /* <= 2^53 * 8 */

    /* data_offsets: [begin, end] inside the data section, end - begin == nbytes */
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2)
        return sh_fail(SHOAL_ERR_FORMAT, "%s: tensor '%s': \"data_offsets\" is not an array of 2 numbers",
                       label, name);
    char offs[96];
    hf_fmt_array(offs, sizeof offs, jo);
    uint64_t b, en;
    if (!hf_json_uint(cJSON_GetArrayItem(jo, 0), &b) || !hf_json_uint(cJSON_GetArrayItem(jo, 1), &en))
        return sh_fail(SHOAL_ERR_FORMAT, "%s: tensor '%s': data_offsets %s are not integers in [0, 2^53]",
                       label, name, offs);
    if (b > en)
        return sh_fail(SHOAL_ERR_FORMAT, "%s: tensor '%s': data_offsets %s are reversed", label, name, offs);
    if (en > data_size)
        return sh_fail(SHOAL_ERR_FORMAT, "%s: tensor '%s': data_offsets %s run past the data (%llu bytes)",
                       label, name, offs, (unsigned long long)data_size);
    if (en - b != nbytes)
        return sh_fail(SHOAL_ERR_FORMAT,
                       "%s: tensor '%s': data_offsets %s do not match shape %s %s (%llu bytes)", label, name,
                       offs, shp, di->name, (unsigned long long)nbytes);
    if (!di->supported) return hf_add(h, label, name, NULL, di->name, shard);

    sh_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = di->dtype;
    t.n_dims = nd > 0 ? nd : 1;
    for (int i = 0; i < SH_MAX_DIMS; i++) t.ne[i] = 1;
    for (int i = 0; i < nd; i++) t.ne[i] = (int64_t)dims[nd - 1 - i];
    t.data = data + b;
    t.nbytes = nbytes;
    return hf_add(h, label, name, &t, NULL, shard);
}

/* Parses the safetensors image img[0..size) and appends its tensors, tagged
 * with shard. label names the file in messages. */
static shoal_status hf_parse_image(sh_hf *h, const char *label, const uint8_t *img, size_t size, int shard) {
    if (size < 8)
        return sh_fail(SHOAL_ERR_FORMAT, "%s: %zu bytes, too short for the 8-byte header length", label, size);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | img[i];
    if (hl > HF_MAX_HEADER)
        return sh_fail(SHOAL_ERR_FORMAT, "%s: header length %llu exceeds the %llu MB limit", label,
                       (unsigned long long)hl, (unsigned long long)(HF_MAX_HEADER >> 20));
    if (hl > size - 8)
        return sh_fail(SHOAL_ERR_FORMAT, "%s: header length %llu runs past the end of the file (%zu bytes)",
                       label, (unsigned long long)hl, size);
    const uint8_t *data = img + 8 + hl;
    uint64_t data_size = size - 8 - hl;

    cJSON *root = hf_parse_json(label, "header", (const char *)img + 8, (size_t)hl);
    if (!root) return SHOAL_ERR_FORMAT;
    shoal_status s = SHOAL_OK;
    if (!cJSON_IsObject(root)) {
        s = sh_fail(SHOAL_ERR_FORMAT, "%s: header is not a JSON object", label);
        goto done;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, root) {
        if (!e->string) { /* cannot happen for a parsed object; be safe */
            s = sh_fail(SHOAL_ERR_FORMAT, "%s: header entry without a name", label);
            goto done;
        }
        if (strcmp(e->string, "__metadata__") == 0) {
            if (!cJSON_IsObject(e)) {
                s = sh_fail(SHOAL_ERR_FORMAT, "%s: \"__metadata__\" is not a JSON object", label);
                goto done;
            }
            const cJSON *m;
            cJSON_ArrayForEach(m, e) {
                if (!cJSON_IsString(m)) {
                    s = sh_fail(SHOAL_ERR_FORMAT, "%s: \"__metadata__\" value '%s' is not a string", label,
                                m->string ? m->string : "?");
                    goto done;
                }
            }
            continue;
        }
        s = hf_entry(h, label, e, data, data_size, shard);
        if (s != SHOAL_OK) goto done;
    }
done:
    cJSON_Delete(root);
    return s;
}

/* Maps path read-only, records it in h->maps and parses it. */
static shoal_status hf_load_file(sh_hf *h, const char *path) {
    hf_map *nm = realloc(h->maps, (size_t)(h->n_maps + 1) * sizeof *nm);
    if (!nm) return sh_fail(SHOAL_ERR_NOMEM, "%s: out of memory", path);
    h->maps = nm;
    hf_map *m = &h->maps[h->n_maps];
    memset(m, 0, sizeof *m);
    m->path = hf_strdup(path);
    if (!m->path) return sh_fail(SHOAL_ERR_NOMEM, "%s: out of memory", path);
    h->n_maps++; /* from here sh_hf_close releases m */

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return sh_fail(SHOAL_ERR_NOT_FOUND, "%s: not found", path);
        return sh_fail(SHOAL_ERR_IO, "%s: %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        return sh_fail(SHOAL_ERR_IO, "%s: %s", path, strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return sh_fail(SHOAL_ERR_INVALID_ARG, "%s: not a regular file", path);
    }
    if (st.st_size < 8) {
        close(fd);
        return sh_fail(SHOAL_ERR_FORMAT, "%s: %lld bytes, too short for the 8-byte header length", path,
                       (long long)st.st_size);
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        return sh_fail(SHOAL_ERR_RANGE, "%s: too large to map", path);
    }
    void *base = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int err = errno;
    close(fd);
    if (base == MAP_FAILED) return sh_fail(SHOAL_ERR_IO, "%s: mmap: %s", path, strerror(err));
    m->base = base;
    m->size = (size_t)st.st_size;
    return hf_parse_image(h, m->path, base, m->size, h->n_maps - 1);
}

/* ---- folders ------------------------------------------------------------- */

/* 1 if name is a plain file name inside the folder (no separators, not . or ..). */
static int hf_plain_name(const char *name) {
    if (!name[0] || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) return 0;
    return strchr(name, '/') == NULL && strchr(name, '\\') == NULL;
}

/* Loads the shards that index.json's "weight_map" {tensor: shard file} names,
 * each once, and checks that every listed tensor is in its shard. Tensors a
 * shard holds beyond the map are kept (and still may not repeat a name). */
static shoal_status hf_load_index(sh_hf *h, const char *index_path) {
    cJSON *idx = NULL;
    char *shard_path = NULL;
    SH_TRY(hf_read_json_file(index_path, &idx));
    shoal_status s = SHOAL_OK;
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(idx, "weight_map");
    if (!cJSON_IsObject(wm) || !wm->child) {
        s = sh_fail(SHOAL_ERR_FORMAT, "%s: \"weight_map\" is missing, not an object, or empty", index_path);
        goto done;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, wm) {
        if (!cJSON_IsString(e) || !e->valuestring) {
            s = sh_fail(SHOAL_ERR_FORMAT, "%s: weight_map entry for '%s' is not a string", index_path,
                        e->string ? e->string : "?");
            goto done;
        }
        const char *file = e->valuestring;
        if (!hf_plain_name(file)) {
            s = sh_fail(SHOAL_ERR_FORMAT,
                        "%s: weight_map entry for '%s': shard '%s' is not a plain file name in the folder",
                        index_path, e->string, file);
            goto done;
        }
        free(shard_path);
        shard_path = hf_join(h->dir, file);
        if (!shard_path) {
            s = sh_fail(SHOAL_ERR_NOMEM, "%s: out of memory", index_path);
            goto done;
        }
        int si = -1;
        for (int i = 0; i < h->n_maps; i++)
            if (strcmp(h->maps[i].path, shard_path) == 0) si = i;
        if (si < 0) { /* first mention: load it now */
            s = hf_load_file(h, shard_path);
            if (s != SHOAL_OK) {
                sh_fail_prefix(s, "%s: shard of tensor '%s'", index_path, e->string);
                goto done;
            }
            si = h->n_maps - 1;
        }
        int v = hf_lookup(h, e->string); /* skipped tensors are listed too */
        if (v == -1) {
            s = sh_fail(SHOAL_ERR_FORMAT, "%s: weight_map puts tensor '%s' in %s, which has no such tensor",
                        index_path, e->string, file);
            goto done;
        }
        if (hf_entry_shard(h, v) != si) {
            s = sh_fail(SHOAL_ERR_FORMAT, "%s: weight_map puts tensor '%s' in %s, but it is in %s", index_path,
                        e->string, file, h->maps[hf_entry_shard(h, v)].path);
            goto done;
        }
    }
done:
    free(shard_path);
    cJSON_Delete(idx);
    return s;
}

static shoal_status hf_open_dir(sh_hf *h) {
    shoal_status s;
    char *p = hf_join(h->dir, "config.json");
    if (!p) return sh_fail(SHOAL_ERR_NOMEM, "out of memory");
    s = hf_read_json_file(p, &h->config);
    free(p);
    if (s != SHOAL_OK) return s;

    struct stat st;
    p = hf_join(h->dir, "model.safetensors");
    if (!p) return sh_fail(SHOAL_ERR_NOMEM, "out of memory");
    if (stat(p, &st) == 0) {
        s = hf_load_file(h, p);
        free(p);
        return s;
    }
    free(p);
    p = hf_join(h->dir, "model.safetensors.index.json");
    if (!p) return sh_fail(SHOAL_ERR_NOMEM, "out of memory");
    if (stat(p, &st) == 0) {
        s = hf_load_index(h, p);
        free(p);
        return s;
    }
    free(p);
    return sh_fail(SHOAL_ERR_NOT_FOUND, "%s: neither model.safetensors nor model.safetensors.index.json found",
                   h->dir);
}

/* ---- public -------------------------------------------------------------- */

shoal_status sh_hf_open(const char *path, sh_hf **out) {
    if (!out) return sh_fail(SHOAL_ERR_INVALID_ARG, "sh_hf_open: out is NULL");
    *out = NULL;
    if (!path || !path[0]) return sh_fail(SHOAL_ERR_INVALID_ARG, "sh_hf_open: empty path");
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT) return sh_fail(SHOAL_ERR_NOT_FOUND, "%s: not found", path);
        return sh_fail(SHOAL_ERR_IO, "%s: %s", path, strerror(errno));
    }
    sh_hf *h = calloc(1, sizeof *h);
    if (!h) return sh_fail(SHOAL_ERR_NOMEM, "out of memory");
    shoal_status s;
    if (S_ISDIR(st.st_mode)) {
        h->dir = hf_strdup(path);
        if (!h->dir) goto nomem;
        size_t n = strlen(h->dir);
        while (n > 1 && h->dir[n - 1] == '/') h->dir[--n] = 0;
        s = hf_open_dir(h);
    } else {
        /* a single safetensors file: the folder is its parent */
        const char *slash = strrchr(path, '/');
        if (!slash) h->dir = hf_strdup(".");
        else if (slash == path) h->dir = hf_strdup("/");
        else if ((h->dir = malloc((size_t)(slash - path) + 1))) {
            memcpy(h->dir, path, (size_t)(slash - path));
            h->dir[slash - path] = 0;
        }
        if (!h->dir) goto nomem;
        s = hf_load_file(h, path);
    }
    if (s != SHOAL_OK) goto fail;
    *out = h;
    return SHOAL_OK;
nomem:
    s = sh_fail(SHOAL_ERR_NOMEM, "out of memory");
fail:
    sh_hf_close(h);
    return s;
}

shoal_status sh_hf_open_safetensors_memory(const void *data, size_t size, sh_hf **out) {
    if (!out) return sh_fail(SHOAL_ERR_INVALID_ARG, "sh_hf_open_safetensors_memory: out is NULL");
    *out = NULL;
    if (!data && size) return sh_fail(SHOAL_ERR_INVALID_ARG, "sh_hf_open_safetensors_memory: data is NULL");
    sh_hf *h = calloc(1, sizeof *h);
    if (!h) return sh_fail(SHOAL_ERR_NOMEM, "out of memory");
    shoal_status s = hf_parse_image(h, "<memory>", data ? data : "", size, 0);
    if (s != SHOAL_OK) {
        sh_hf_close(h);
        return s;
    }
    *out = h;
    return SHOAL_OK;
}

void sh_hf_close(sh_hf *h) {
    if (!h) return;
    for (int i = 0; i < h->n; i++) free(h->t[i].name);
    free(h->t);
    free(h->shard);
    for (int i = 0; i < h->n_skip; i++) free(h->skip[i].name);
    free(h->skip);
    free(h->slots);
    for (int i = 0; i < h->n_maps; i++) {
        if (h->maps[i].base) munmap(h->maps[i].base, h->maps[i].size);
        free(h->maps[i].path);
    }
    free(h->maps);
    cJSON_Delete(h->config);
    free(h->dir);
    free(h);
}

int sh_hf_n_tensors(const sh_hf *h) { return h ? h->n : 0; }

const sh_tensor *sh_hf_tensor(const sh_hf *h, int i) {
    if (!h || i < 0 || i >= h->n) return NULL;
    return &h->t[i];
}

const sh_tensor *sh_hf_find_tensor(const sh_hf *h, const char *name) {
    int k = hf_lookup(h, name);
    return k >= 0 ? &h->t[k] : NULL;
}

const char *sh_hf_skipped_dtype(const sh_hf *h, const char *name) {
    int k = hf_lookup(h, name);
    return k <= -2 ? h->skip[-k - 2].dtype : NULL;
}

const struct cJSON *sh_hf_config(const sh_hf *h) { return h ? h->config : NULL; }

const char *sh_hf_dir(const sh_hf *h) { return h ? h->dir : NULL; }
