/* Sampling: repetition penalty, then greedy, or temperature -> top-k -> top-p
 * -> min-p -> a draw from the renormalised distribution. */
#include "sample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void shoal_sampling_params_init(shoal_sampling_params *p) {
    if (!p) return;
    memset(p, 0, sizeof *p);
    p->temperature = 0.0f;
    p->top_k = 0;
    p->top_p = 1.0f;
    p->min_p = 0.0f;
    p->repetition_penalty = 1.0f;
    p->seed = 0x5EED;
    p->stop_at_eos = 1;
}

static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void sh_rng_seed(sh_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* xoshiro256** */
uint64_t sh_rng_next(sh_rng *r) {
    uint64_t *s = r->s, res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return res;
}

double sh_rng_uniform(sh_rng *r) { return (double)(sh_rng_next(r) >> 11) * 0x1.0p-53; }

typedef struct { float logit; int32_t id; } cand;

static int cmp_cand(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->logit != y->logit) return x->logit > y->logit ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int32_t argmax(const float *l, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (l[i] > l[best]) best = i;
    return best;
}

int32_t sh_sample(float *logits, int n_vocab, const shoal_sampling_params *p, const int32_t *history,
                  int n_history, sh_rng *rng) {
    double u = p->temperature > 0 ? sh_rng_uniform(rng) : 0.0;
    return sh_sample_u(logits, n_vocab, p, history, n_history, u);
}

int32_t sh_sample_u(float *logits, int n_vocab, const shoal_sampling_params *p, const int32_t *history,
                    int n_history, double u) {
    /* repetition penalty over the distinct ids seen: positive logits divided,
     * negative ones multiplied */
    if (p->repetition_penalty > 0 && p->repetition_penalty != 1.0f && history) {
        for (int i = 0; i < n_history; i++) {
            int32_t id = history[i];
            if (id < 0 || id >= n_vocab) continue;
            int seen = 0;
            for (int j = 0; j < i; j++)
                if (history[j] == id) {
                    seen = 1;
                    break;
                }
            if (seen) continue;
            float *x = &logits[id];
            *x = *x > 0 ? *x / p->repetition_penalty : *x * p->repetition_penalty;
        }
    }
    if (!(p->temperature > 0)) return argmax(logits, n_vocab);

    cand *c = malloc((size_t)n_vocab * sizeof *c);
    if (!c) return argmax(logits, n_vocab); /* no memory: degrade to greedy */
    for (int i = 0; i < n_vocab; i++) c[i] = (cand){logits[i] / p->temperature, i};
    int n = n_vocab;
    qsort(c, (size_t)n, sizeof *c, cmp_cand);
    if (p->top_k > 0 && p->top_k < n) n = p->top_k;
    /* softmax over the kept candidates */
    double mx = c[0].logit, sum = 0;
    double *pr = malloc((size_t)n * sizeof *pr);
    if (!pr) {
        int32_t id = c[0].id;
        free(c);
        return id;
    }
    for (int i = 0; i < n; i++) sum += (pr[i] = exp((double)c[i].logit - mx));
    for (int i = 0; i < n; i++) pr[i] /= sum;
    if (p->top_p > 0 && p->top_p < 1) {
        double cum = 0;
        int keep = n;
        for (int i = 0; i < n; i++) {
            cum += pr[i];
            if (cum >= p->top_p) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
    }
    if (p->min_p > 0) {
        int keep = 1;
        while (keep < n && pr[keep] >= p->min_p * pr[0]) keep++;
        n = keep;
    }
    double tot = 0;
    for (int i = 0; i < n; i++) tot += pr[i];
    double target = u * tot, acc = 0;
    int32_t id = c[n - 1].id;
    for (int i = 0; i < n; i++) {
        acc += pr[i];
        if (target < acc) {
            id = c[i].id;
            break;
        }
    }
    free(pr);
    free(c);
    return id;
}

int32_t sh_sample_row(float *logits, int n_vocab, const sh_sample_params *p) {
    shoal_sampling_params sp;
    shoal_sampling_params_init(&sp);
    sp.temperature = p->temperature;
    sp.top_k = p->top_k;
    sp.top_p = p->top_p;
    sp.min_p = p->min_p;
    sp.repetition_penalty = 1.0f;
    return sh_sample_u(logits, n_vocab, &sp, NULL, 0, p->u);
}
