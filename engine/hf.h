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
 * safetensors shape so ne[0] is innermost. Tensors are F32, F16 or BF16.
 * Tensors of the other known safetensors dtypes (F64, I64, I32, I16, I8, U64,
 * U32, U16, U8, BOOL, F8_E4M3, F8_E5M2) are checked like any other, then
 * skipped: not in the tensor table (see sh_hf_skipped_dtype). An unknown dtype
 * or more than 4 dims is SHOAL_ERR_UNSUPPORTED naming the tensor. */
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
/* The dtype name ("I64", ..) of a tensor the file holds but that was skipped
 * for its dtype; NULL if name is a loaded tensor or absent. Owned by the
 * library (static). */
const char *sh_hf_skipped_dtype(const sh_hf *h, const char *name);
/* Parsed config.json (owned by h), or NULL when there is none. */
const struct cJSON *sh_hf_config(const sh_hf *h);
/* The folder path (owned by h): the folder given, without trailing slashes,
 * or the parent of a single file ("." if it has none); NULL for an in-memory
 * image. */
const char *sh_hf_dir(const sh_hf *h);

#endif
