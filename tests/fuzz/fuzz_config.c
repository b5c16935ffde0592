/* libFuzzer: config.json text -> cJSON -> hyperparameters (the mapping every
 * Hugging Face folder goes through). Must never crash; failures set a message. */
#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cJSON *cfg = cJSON_ParseWithLength((const char *)data, size);
    if (!cfg) return 0;
    sh_hparams hp;
    if (sh_model_hparams_from_config(cfg, &hp) != SHOAL_OK) {
        const char *msg = shoal_last_error();
        if (!msg || !*msg) __builtin_trap(); /* a failure must say why */
    }
    cJSON_Delete(cfg);
    return 0;
}
