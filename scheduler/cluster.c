/* Clusters: one backend, several models on it, one shared paged KV pool, the
 * queue and the scheduler thread; created from params or a JSON config. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "scheduler.h"
#include "tokenizer.h"

#define SH_DEF_MAX_QUEUE 1024
#define SH_DEF_MAX_BATCH_ROWS 512
#define SH_DEF_MAX_RUNNING 256
#define SH_DEF_PREFILL_CHUNK 256
#define SH_DEF_KV_BYTES ((uint64_t)256 << 20)
#define SH_CONFIG_MAX_BYTES (1 << 20)

void shoal_cluster_params_init(shoal_cluster_params *p) {
    if (!p) return;
    memset(p, 0, sizeof *p);
    p->device = "cpu";
    p->max_queue = SH_DEF_MAX_QUEUE;
    p->max_batch_rows = SH_DEF_MAX_BATCH_ROWS;
    p->prefill_chunk = SH_DEF_PREFILL_CHUNK;
    p->kv_dtype = "f32";
    p->threaded = 1;
    p->fused = 1;
}

/* ============================================================================
 * Create / free
 * ========================================================================== */

static shoal_status pick_kv_dtype(sh_backend *be, const char *name, sh_dtype *out) {
    int f16_ok = be->ops->supports(be, SH_OP_ATTN, SH_F16) && be->ops->supports(be, SH_OP_KV_WRITE, SH_F16);
    if (!name || !strcmp(name, "f32")) *out = SH_F32;
    else if (!strcmp(name, "f16")) {
        if (!f16_ok) return sh_fail(SHOAL_ERR_UNSUPPORTED, "cluster: device %s has no f16 KV cache", be->device);
        *out = SH_F16;
    } else if (!strcmp(name, "auto")) {
        *out = f16_ok && strcmp(be->ops->name, "cpu") != 0 ? SH_F16 : SH_F32;
    } else {
        return sh_fail(SHOAL_ERR_INVALID_ARG, "cluster: unknown kv_dtype '%s' (f32, f16, auto)", name);
    }
    return SHOAL_OK;
}

shoal_status shoal_cluster_create(const shoal_cluster_params *params, shoal_cluster **out) {
    if (!out) return sh_fail(SHOAL_ERR_INVALID_ARG, "shoal_cluster_create: out is NULL");
    *out = NULL;
    if (!params) return sh_fail(SHOAL_ERR_INVALID_ARG, "shoal_cluster_create: params is NULL");
    const shoal_cluster_params *p = params;
    if (p->n_models < 1 || !p->models)
        return sh_fail(SHOAL_ERR_INVALID_ARG, "cluster: at least one model is needed");
    if (p->max_queue < 0 || p->max_running < 0 || p->max_batch_rows < 0 || p->prefill_chunk < 0 || p->kv_blocks < 0 ||
        p->n_threads < 0 || p->sample_threads < 0 || p->sample_threads > 256)
        return sh_fail(SHOAL_ERR_INVALID_ARG, "cluster: limits must not be negative");
    for (int i = 0; i < p->n_models; i++) {
        const char *nm = p->models[i].name;
        if (!nm || !*nm || strlen(nm) >= sizeof ((sh_cmodel *)0)->name)
            return sh_fail(SHOAL_ERR_INVALID_ARG, "cluster: model %d needs a name of 1 to 63 characters", i);
        if (!p->models[i].path) return sh_fail(SHOAL_ERR_INVALID_ARG, "cluster: model '%s' has no path", nm);
        for (int j = 0; j < i; j++)
            if (!strcmp(p->models[j].name, nm))
                return sh_fail(SHOAL_ERR_INVALID_ARG, "cluster: two models are named '%s'", nm);
    }

    shoal_cluster *c = calloc(1, sizeof *c);
    if (!c) return sh_fail(SHOAL_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv_work, NULL);
    pthread_cond_init(&c->cv_idle, NULL);
    c->p = *p;
    c->p.models = NULL;
    c->p.device = NULL;
    c->p.kv_dtype = NULL;
    if (!c->p.max_queue) c->p.max_queue = SH_DEF_MAX_QUEUE;
    if (!c->p.max_batch_rows) c->p.max_batch_rows = SH_DEF_MAX_BATCH_ROWS;
    if (!c->p.prefill_chunk) c->p.prefill_chunk = SH_DEF_PREFILL_CHUNK;
    if (!c->p.max_running) c->p.max_running = SH_DEF_MAX_RUNNING;
    /* every running sequence must get a row each step */
    if (c->p.max_running > c->p.max_batch_rows) c->p.max_running = c->p.max_batch_rows;
    /* SHOAL_STEP_OVERLAP=0: every step planned after the last one's ids are
     * on the host (the baseline for overlapped steps; results are the same) */
    const char *ov = getenv("SHOAL_STEP_OVERLAP");
    c->overlap = !(ov && strcmp(ov, "0") == 0);
    const char *device = p->device && *p->device ? p->device : "cpu";
    snprintf(c->device, sizeof c->device, "%s", device);

    shoal_status s = sh_backend_create(device, p->n_threads, &c->be);
    if (s != SHOAL_OK) goto fail;
    c->models = calloc((size_t)p->n_models, sizeof *c->models);
    c->model_mark = calloc((size_t)p->n_models, sizeof *c->model_mark);
    if (!c->models || !c->model_mark) {
        s = sh_fail(SHOAL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < p->n_models; i++) {
        const char *path = p->models[i].path;
        snprintf(c->models[i].name, sizeof c->models[i].name, "%s", p->models[i].name);
        s = strncmp(path, "synthetic:", 10) == 0 ? sh_model_synthetic_spec(path + 10, c->be, &c->models[i].m)
                                                 : sh_model_load_on(path, c->be, &c->models[i].m);
        if (s != SHOAL_OK) {
            s = sh_fail_prefix(s, "cluster: model '%s' (%s)", p->models[i].name, path);
            goto fail;
        }
        c->n_models = i + 1;
        /* a model file or folder that carries a tokenizer accepts text prompts */
        if (strncmp(path, "synthetic:", 10) != 0 && sh_tokenizer_load(path, &c->models[i].tok) != SHOAL_OK)
            c->models[i].tok = NULL;
    }
    s = pick_kv_dtype(c->be, p->kv_dtype, &c->kv_dtype);
    if (s != SHOAL_OK) goto fail;
    uint64_t block_bytes = 0;
    int max_ctx = 0;
    for (int i = 0; i < c->n_models; i++) {
        uint64_t b = sh_model_kv_block_bytes(c->models[i].m, c->kv_dtype);
        if (b > block_bytes) block_bytes = b;
        int ctx = c->models[i].m->hp.n_ctx < 4096 ? c->models[i].m->hp.n_ctx : 4096;
        if (ctx > max_ctx) max_ctx = ctx;
    }
    int n_blocks = p->kv_blocks;
    if (n_blocks == 0) {
        uint64_t bytes = p->kv_bytes ? p->kv_bytes : SH_DEF_KV_BYTES;
        uint64_t nb = bytes / block_bytes;
        if (!p->kv_bytes && nb < (uint64_t)sh_kv_blocks_for(max_ctx)) nb = (uint64_t)sh_kv_blocks_for(max_ctx);
        if (nb > (1u << 30)) nb = 1u << 30;
        if (nb < 1) {
            s = sh_fail(SHOAL_ERR_INVALID_ARG, "cluster: kv_bytes %llu is less than one block (%llu bytes)",
                        (unsigned long long)bytes, (unsigned long long)block_bytes);
            goto fail;
        }
        n_blocks = (int)nb;
    }
    s = sh_kv_pool_create(c->be, c->kv_dtype, block_bytes, n_blocks, &c->pool);
    if (s != SHOAL_OK) goto fail;
    s = sh_exec_create(c->be, c->pool, &c->ex);
    if (s != SHOAL_OK) goto fail;
    /* sampling helpers: the CPU backend's own threads are busy computing, so
     * only accelerator clusters get them by default */
    int n_samplers = p->sample_threads;
    if (n_samplers == 0 && strcmp(c->be->ops->name, "cpu") != 0) {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        n_samplers = ncpu > 1 ? (int)(ncpu - 1 < 8 ? ncpu - 1 : 8) : 0;
    }
    if (n_samplers > 0) {
        s = sh_spool_create(c, n_samplers, &c->spool);
        if (s != SHOAL_OK) goto fail;
    }
    if (c->p.threaded) {
        if (pthread_create(&c->thread, NULL, sh_sched_thread, c) != 0) {
            s = sh_fail(SHOAL_ERR_NOMEM, "cluster: cannot start the scheduler thread");
            goto fail;
        }
        c->has_thread = 1;
    }
    *out = c;
    return SHOAL_OK;
fail:
    shoal_cluster_free(c);
    return s;
}

void shoal_cluster_free(shoal_cluster *c) {
    if (!c) return;
    pthread_mutex_lock(&c->mu);
    c->stop = 1;
    pthread_cond_broadcast(&c->cv_work);
    pthread_mutex_unlock(&c->mu);
    if (c->has_thread) pthread_join(c->thread, NULL);
    c->has_thread = 0;
    sh_sched_drain(c); /* a step the last stepper left in flight */
    /* finish everything still pending */
    shoal_request *fin = NULL;
    pthread_mutex_lock(&c->mu);
    while (c->n_running)
        sh_fin_push(c, &fin, c->running[c->n_running - 1], SHOAL_ERR_CANCELLED, SHOAL_FINISH_CANCELLED,
                    "the cluster was freed");
    while (c->n_queue)
        sh_fin_push(c, &fin, c->queue[c->n_queue - 1], SHOAL_ERR_CANCELLED, SHOAL_FINISH_CANCELLED,
                    "the cluster was freed");
    pthread_mutex_unlock(&c->mu);
    sh_fin_run(fin);
    sh_spool_free(c->spool);
    sh_exec_free(c->ex);
    sh_kv_pool_free(c->pool);
    for (int i = 0; i < c->n_models; i++) {
        shoal_model_free(c->models[i].m);
        sh_tokenizer_free(c->models[i].tok);
    }
    free(c->models);
    free(c->model_mark);
    sh_backend_free(c->be);
    free(c->queue);
    free(c->running);
    free(c->batch);
    free(c->breq);
    free(c->brows);
    free(c->nx_batch);
    free(c->nx_breq);
    free(c->nx_brows);
    free(c->nx_sampled);
    free(c->nx_bsp);
    free(c->logits);
    free(c->sampled);
    free(c->to_sample);
    free(c->bsp);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv_work);
    pthread_cond_destroy(&c->cv_idle);
    free(c);
}

/* ============================================================================
 * Models and stats
 * ========================================================================== */

int shoal_cluster_n_models(const shoal_cluster *c) { return c ? c->n_models : 0; }

const char *shoal_cluster_model_name(const shoal_cluster *c, int i) {
    if (!c || i < 0 || i >= c->n_models) return NULL;
    return c->models[i].name;
}

shoal_status shoal_cluster_get_model(const shoal_cluster *c, const char *name, shoal_model **out) {
    if (out) *out = NULL;
    if (!c || !name || !out) return sh_fail(SHOAL_ERR_INVALID_ARG, "shoal_cluster_get_model: NULL argument");
    for (int i = 0; i < c->n_models; i++)
        if (!strcmp(c->models[i].name, name)) {
            *out = c->models[i].m;
            return SHOAL_OK;
        }
    return sh_fail(SHOAL_ERR_NOT_FOUND, "the cluster has no model named '%s'", name);
}

shoal_status shoal_cluster_get_stats(shoal_cluster *c, shoal_cluster_stats *st) {
    if (!c || !st) return sh_fail(SHOAL_ERR_INVALID_ARG, "shoal_cluster_get_stats: NULL argument");
    pthread_mutex_lock(&c->mu);
    *st = c->st;
    st->queued = c->n_queue;
    st->running = c->n_running;
    st->kv_blocks = c->pool->n_blocks;
    st->kv_free = c->pool->n_free;
    pthread_mutex_unlock(&c->mu);
    st->launches_per_step = st->steps ? (double)st->launches / (double)st->steps : 0;
    st->groups_per_launch = st->launches ? (double)st->groups / (double)st->launches : 0;
    st->rows_per_step = st->steps ? (double)st->rows / (double)st->steps : 0;
    return SHOAL_OK;
}

/* ============================================================================
 * JSON config
 * ========================================================================== */

static shoal_status read_file(const char *path, char **out) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return sh_fail(SHOAL_ERR_IO, "cluster config %s: cannot open", path);
    char *buf = malloc(SH_CONFIG_MAX_BYTES + 1);
    if (!buf) {
        fclose(f);
        return sh_fail(SHOAL_ERR_NOMEM, "out of memory");
    }
    size_t n = fread(buf, 1, SH_CONFIG_MAX_BYTES + 1, f);
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        return sh_fail(SHOAL_ERR_IO, "cluster config %s: read error", path);
    }
    if (n > SH_CONFIG_MAX_BYTES) {
        free(buf);
        return sh_fail(SHOAL_ERR_FORMAT, "cluster config %s: larger than %d bytes", path, SH_CONFIG_MAX_BYTES);
    }
    buf[n] = '\0';
    *out = buf;
    return SHOAL_OK;
}

/* A non-negative integer member; absent leaves *v as it is. */
static shoal_status get_int(const cJSON *obj, const char *key, double max, double *v, const char *path) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it) return SHOAL_OK;
    if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble > max || it->valuedouble != floor(it->valuedouble))
        return sh_fail(SHOAL_ERR_FORMAT, "cluster config %s: '%s' must be an integer in [0, %.0f]", path, key, max);
    *v = it->valuedouble;
    return SHOAL_OK;
}

static shoal_status check_keys(const cJSON *obj, const char *const *allowed, const char *where, const char *path) {
    for (const cJSON *it = obj->child; it; it = it->next) {
        int ok = 0;
        for (int i = 0; allowed[i] && !ok; i++) ok = it->string && !strcmp(it->string, allowed[i]);
        if (!ok)
            return sh_fail(SHOAL_ERR_FORMAT, "cluster config %s: unknown key '%s' in %s", path,
                           it->string ? it->string : "?", where);
    }
    return SHOAL_OK;
}

shoal_status shoal_cluster_load(const char *json_path, const shoal_cluster_params *defaults, shoal_cluster **out) {
    if (out) *out = NULL;
    if (!json_path || !out) return sh_fail(SHOAL_ERR_INVALID_ARG, "shoal_cluster_load: NULL argument");
    shoal_cluster_params p;
    shoal_cluster_params_init(&p);
    if (defaults) p = *defaults;
    char *text = NULL;
    SH_TRY(read_file(json_path, &text));
    cJSON *root = cJSON_Parse(text);
    free(text);
    shoal_cluster_model *models = NULL;
    char **paths = NULL;
    int n_models = 0;
    shoal_status s = SHOAL_OK;
    if (!root || !cJSON_IsObject(root)) {
        s = sh_fail(SHOAL_ERR_FORMAT, "cluster config %s: not a JSON object", json_path);
        goto done;
    }
    static const char *const top_keys[] = {"device", "threads", "sample_threads", "kv_dtype", "models", "limits", NULL};
    static const char *const limit_keys[] = {"max_queue",     "max_running", "max_batch_rows",
                                             "prefill_chunk", "kv_blocks",   "kv_bytes", NULL};
    static const char *const model_keys[] = {"name", "path", NULL};
    s = check_keys(root, top_keys, "the top level", json_path);
    if (s != SHOAL_OK) goto done;
    const cJSON *dev = cJSON_GetObjectItemCaseSensitive(root, "device");
    if (dev) {
        if (!cJSON_IsString(dev)) {
            s = sh_fail(SHOAL_ERR_FORMAT, "cluster config %s: 'device' must be a string", json_path);
            goto done;
        }
        p.device = dev->valuestring;
    }
    const cJSON *kvd = cJSON_GetObjectItemCaseSensitive(root, "kv_dtype");
    if (kvd) {
        if (!cJSON_IsString(kvd)) {
            s = sh_fail(SHOAL_ERR_FORMAT, "cluster config %s: 'kv_dtype' must be a string", json_path);
            goto done;
        }
        p.kv_dtype = kvd->valuestring;
    }
    double v = p.n_threads;
    if ((s = get_int(root, "threads", 4096, &v, json_path)) != SHOAL_OK) goto done;
    p.n_threads = (int)v;
    v = p.sample_threads;
    if ((s = get_int(root, "sample_threads", 256, &v, json_path)) != SHOAL_OK) goto done;
    p.sample_threads = (int)v;
    const cJSON *lim = cJSON_GetObjectItemCaseSensitive(root, "limits");
    if (lim) {
        if (!cJSON_IsObject(lim)) {
            s = sh_fail(SHOAL_ERR_FORMAT, "cluster config %s: 'limits' must be an object", json_path);
            goto done;
        }
        if ((s = check_keys(lim, limit_keys, "limits", json_path)) != SHOAL_OK) goto done;
        int *fields[] = {&p.max_queue, &p.max_running, &p.max_batch_rows, &p.prefill_chunk, &p.kv_blocks};
        for (int i = 0; i < 5; i++) {
            v = *fields[i];
            if ((s = get_int(lim, limit_keys[i], 1 << 30, &v, json_path)) != SHOAL_OK) goto done;
            *fields[i] = (int)v;
        }
        v = (double)p.kv_bytes;
        if ((s = get_int(lim, "kv_bytes", 9.0e15, &v, json_path)) != SHOAL_OK) goto done;
        p.kv_bytes = (uint64_t)v;
    }
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(root, "models");
    if (!ms || !cJSON_IsArray(ms) || cJSON_GetArraySize(ms) < 1 || cJSON_GetArraySize(ms) > 4096) {
        s = sh_fail(SHOAL_ERR_FORMAT, "cluster config %s: 'models' must be a non-empty array", json_path);
        goto done;
    }
    int cnt = cJSON_GetArraySize(ms);
    models = calloc((size_t)cnt, sizeof *models);
    paths = calloc((size_t)cnt, sizeof *paths);
    if (!models || !paths) {
        s = sh_fail(SHOAL_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* the folder of the config, for relative model paths */
    const char *slash = strrchr(json_path, '/');
    size_t dir_len = slash ? (size_t)(slash - json_path) + 1 : 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, ms) {
        if (!cJSON_IsObject(it)) {
            s = sh_fail(SHOAL_ERR_FORMAT, "cluster config %s: model %d is not an object", json_path, n_models);
            goto done;
        }
        if ((s = check_keys(it, model_keys, "a model", json_path)) != SHOAL_OK) goto done;
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(it, "name");
        const cJSON *pa = cJSON_GetObjectItemCaseSensitive(it, "path");
        if (!cJSON_IsString(nm) || !cJSON_IsString(pa) || !*pa->valuestring) {
            s = sh_fail(SHOAL_ERR_FORMAT, "cluster config %s: model %d needs string 'name' and 'path'", json_path,
                        n_models);
            goto done;
        }
        const char *mp = pa->valuestring;
        int relative = mp[0] != '/' && strncmp(mp, "synthetic:", 10) != 0;
        size_t len = (relative ? dir_len : 0) + strlen(mp) + 1;
        paths[n_models] = malloc(len);
        if (!paths[n_models]) {
            s = sh_fail(SHOAL_ERR_NOMEM, "out of memory");
            goto done;
        }
        snprintf(paths[n_models], len, "%.*s%s", relative ? (int)dir_len : 0, json_path, mp);
        models[n_models].name = nm->valuestring;
        models[n_models].path = paths[n_models];
        n_models++;
    }
    p.models = models;
    p.n_models = n_models;
    s = shoal_cluster_create(&p, out);
done:
    for (int i = 0; paths && i < n_models; i++) free(paths[i]);
    free(paths);
    free(models);
    cJSON_Delete(root);
    return s;
}
