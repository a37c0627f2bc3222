/* Quantising a whole GGUF model. */
#ifndef LLMOS_QUANTIZE_H
#define LLMOS_QUANTIZE_H

#include "llmos/gguf.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lm_quantize_params {
    /* f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_K, q5_K, q6_K, or the
     * llama.cpp-style mixes q4_K_M / q5_K_M (case-insensitive). */
    const char *scheme;
    int n_threads;
    lm_progress_fn progress; /* (user, tensor name, tensors done, tensors total) */
    void *progress_user;
} lm_quantize_params;

typedef struct lm_quantize_stats {
    uint64_t bytes_in, bytes_out; /* tensor data */
    int64_t n_quantized, n_kept;
    int64_t n_fallback; /* rows not a whole number of the chosen type's blocks: stored in a fallback type */
} lm_quantize_stats;

/* Reads in_path, writes out_path atomically with every metadata key kept,
 * general.file_type and general.quantization_version set, 2-D weight
 * matrices quantised by the scheme and everything else copied unchanged.
 * K-quant mixes follow llama.cpp: output (or tied embedding) in q6_K, and
 * attn_v / ffn_down in q6_K for the first and last eighth of the layers and
 * every third in between. A row length that is not a whole number of blocks
 * falls back as llama.cpp does (q4_K -> q5_0, q5_K -> q5_1, q6_K -> q8_0,
 * then f16). */
lm_status lm_quantize_model(const char *in_path, const char *out_path, const lm_quantize_params *params,
                            lm_quantize_stats *stats, lm_error *err);

#ifdef __cplusplus
}
#endif
#endif
