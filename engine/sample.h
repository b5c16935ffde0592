/* Token sampling on host logits. */
#ifndef SH_SAMPLE_H
#define SH_SAMPLE_H

#include "backend.h"
#include "shoal.h"

typedef struct sh_rng { uint64_t s[4]; } sh_rng;

void sh_rng_seed(sh_rng *r, uint64_t seed);
uint64_t sh_rng_next(sh_rng *r);
/* Uniform in [0, 1). */
double sh_rng_uniform(sh_rng *r);

/* Picks a token from logits (n_vocab, modified in place by penalties and
 * temperature). history: ids seen so far (for the repetition penalty), may be
 * NULL. Greedy (temperature 0) returns the first maximum. Without memory for
 * the candidate list it falls back to greedy. */
int32_t sh_sample(float *logits, int n_vocab, const shoal_sampling_params *p, const int32_t *history,
                  int n_history, sh_rng *rng);

/* sh_sample with its one random draw given: u in [0, 1) is the uniform that
 * sh_sample takes from rng when temperature > 0 (and ignores otherwise).
 * Deterministic: sh_sample(.., rng) == sh_sample_u(.., sh_rng_uniform(rng))
 * for temperature > 0. The steps after the repetition penalty: scaled =
 * logit / temperature (f32); candidates ordered by (scaled desc, id asc);
 * the first top_k kept (0 < top_k < n); p_i = exp(scaled_i - scaled_0) / sum
 * over the kept (f64); top-p keeps the first i + 1 where the running sum
 * first reaches top_p (0 < top_p < 1); min-p keeps the leading p_i >= min_p
 * * p_0 (min_p > 0, at least one); the result is the first kept candidate
 * whose running sum exceeds u * (sum of the kept p_i), else the last kept. */
int32_t sh_sample_u(float *logits, int n_vocab, const shoal_sampling_params *p, const int32_t *history,
                    int n_history, double u);

/* sh_sample_u with a row's sh_sample_params (no repetition penalty, so the
 * logits are only read). */
int32_t sh_sample_row(float *logits, int n_vocab, const sh_sample_params *p);

#endif
