/* Token sampling on host logits. */
#ifndef SH_SAMPLE_H
#define SH_SAMPLE_H

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

#endif
