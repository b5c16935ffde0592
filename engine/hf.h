/* Hugging Face model folders: config.json + model.safetensors, or sharded
 * model-0000N-of-0000M.safetensors with model.safetensors.index.json.
 * Each safetensors header is bounds-checked (header length, JSON, dtype,
 * shape products, data_offsets inside the file and consistent with shape). */
#ifndef SH_HF_H
#define SH_HF_H

#include "shoal.h"
#include "tensor.h"

struct cJSON;
typedef struct sh_hf sh_hf;

/* Opens a folder (or a single .safetensors file, then config is NULL).
 * Tensors keep their Hugging Face names; ne[] is reversed from the
 * safetensors shape so ne[0] is innermost. Supported dtypes: F32, F16, BF16
 * (others are SHOAL_ERR_UNSUPPORTED naming the tensor). */
shoal_status sh_hf_open(const char *path, sh_hf **out);
/* One safetensors image in memory (used by the fuzzer). Tensor data points
 * into data, which is not copied and must outlive *out; config and dir are
 * NULL. On failure *out is NULL and the message names "<memory>". */
shoal_status sh_hf_open_safetensors_memory(const void *data, size_t size, sh_hf **out);
/* Unmaps and frees everything; NULL is a no-op. */
void sh_hf_close(sh_hf *h);

int sh_hf_n_tensors(const sh_hf *h);
const sh_tensor *sh_hf_tensor(const sh_hf *h, int i);
const sh_tensor *sh_hf_find_tensor(const sh_hf *h, const char *name); /* NULL if absent */
/* Parsed config.json (owned by h), or NULL when there is none. */
const struct cJSON *sh_hf_config(const sh_hf *h);
/* The folder path (owned by h): the folder given, without trailing slashes,
 * or the parent of a single file ("." if it has none); NULL for an in-memory
 * image. */
const char *sh_hf_dir(const sh_hf *h);

#endif
