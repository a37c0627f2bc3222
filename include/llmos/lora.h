/* LoRA adapters: for some weight matrices W (rows = out, cols = in) of a
 * model, two low-rank factors A (rank, cols) and B (rows, rank); the adapted
 * weight is W + scale * B A, with scale = user_scale * alpha / rank
 * (user_scale alone when alpha is 0), as llama.cpp computes it (rank is
 * lora_b's ne[0], llama_adapter_lora_weight::get_scale).
 *
 * Files follow llama.cpp's adapter GGUF: general.type = "adapter",
 * adapter.type = "lora", adapter.lora.alpha (f32), general.architecture of
 * the base model, and for each adapted tensor "<base name>.lora_a" (ggml
 * shape [cols, rank], i.e. row-major (rank, cols)) and "<base name>.lora_b"
 * (ggml shape [rank, rows], row-major (rows, rank)), stored as F32.
 * lm_lora_read also takes F16, BF16 and the block types llama.cpp's
 * converter can write (q8_0), converted to F32; tensors named
 * "*_norm.weight" are skipped as llama.cpp skips them. Adapters of
 * token_embd.weight (which llama.cpp stores with A and B swapped) are
 * refused. */
#ifndef LLMOS_LORA_H
#define LLMOS_LORA_H

#include "llmos/base.h"
#include "llmos/model.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lm_lora_tensor {
    char name[96];            /* the base tensor, e.g. "blk.0.attn_q.weight" */
    int64_t rows, cols, rank; /* W is (rows, cols) */
    float *a;                 /* (rank, cols) */
    float *b;                 /* (rows, rank) */
} lm_lora_tensor;

typedef struct lm_lora {
    char arch[32];            /* general.architecture of the base */
    float alpha;              /* adapter.lora.alpha; 0: scale = user_scale */
    lm_lora_tensor *tensors;
    int64_t n_tensors;
} lm_lora;

/* Writes an adapter file atomically (temp file, fsync, rename), tensors as
 * F32. Base names must be at most 56 bytes (GGUF names hold 63, and
 * ".lora_a" takes 7). */
lm_status lm_lora_write(const char *path, const lm_lora *lora, lm_error *err);
/* Reads and validates an adapter file (types, shapes, ranks, pairs of a and b). */
lm_status lm_lora_read(const char *path, lm_lora **out, lm_error *err);
/* The same from an open GGUF (the adapter copies what it needs from g). */
lm_status lm_lora_read_gguf(const lm_gguf *g, lm_lora **out, lm_error *err);
/* Frees an adapter from lm_lora_read, or one built by the caller with
 * malloc'd tensors, a and b. NULL is fine. */
void lm_lora_free(lm_lora *lora);

/* The scale a tensor's B A is multiplied by. */
float lm_lora_scale(const lm_lora *lora, const lm_lora_tensor *t, float user_scale);

/* Attaches an adapter to a loaded model: every tensor must name a matrix of
 * the model with the same shape and the architecture must match. From then
 * on forward passes compute W x + scale * B (A x) for those matrices. The
 * model keeps its own copy; call before creating contexts.
 * The matrices an adapter can change at run time are those of the blocks:
 * attn_q, attn_k, attn_v, attn_output, ffn_gate, ffn_up, ffn_down. An
 * adapter of output.weight is refused here (lm_lora_merge applies it). One
 * adapter per model; on failure the model is unchanged. */
lm_status lm_model_attach_lora(lm_model *m, const lm_lora *lora, float user_scale, lm_error *err);

/* lm_lora_read + lm_model_attach_lora, for a file. */
lm_status lm_model_attach_lora_file(lm_model *m, const char *path, float user_scale, lm_error *err);

typedef struct lm_lora_merge_params {
    float scale;             /* user_scale (1 = the adapter as trained) */
    int n_threads;
    lm_progress_fn progress; /* (user, tensor name, tensors done, tensors total) */
    void *progress_user;
} lm_lora_merge_params;

/* Writes out_path (atomically): the base model with every adapted matrix
 * replaced by W + scale * B A stored as F32 (W dequantised first); all
 * other tensors and all metadata are copied unchanged. Every adapter tensor
 * must name a 2-D tensor of the base with its shape (token_embd excluded),
 * and the architectures must match. */
lm_status lm_lora_merge(const char *base_path, const char *adapter_path, const char *out_path,
                        const lm_lora_merge_params *params, lm_error *err);

#ifdef __cplusplus
}
#endif
#endif
