/* The Llama-architecture transformer for inference: configuration from GGUF
 * metadata, weights bound to the memory-mapped tensors, and a forward pass
 * over one token at a time with a KV cache.
 *
 * An lm_model is read-only after loading and can be shared; each lm_context
 * holds one sequence's KV cache and scratch buffers. */
#ifndef LLMOS_MODEL_H
#define LLMOS_MODEL_H

#include "llmos/gguf.h"
#include "llmos/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lm_model_config {
    char arch[32];          /* general.architecture */
    int64_t n_vocab;
    int64_t dim;            /* {arch}.embedding_length */
    int64_t n_layers;       /* {arch}.block_count */
    int64_t n_heads;        /* {arch}.attention.head_count */
    int64_t n_kv_heads;     /* {arch}.attention.head_count_kv (default n_heads) */
    int64_t head_dim;       /* {arch}.attention.key_length (default dim / n_heads) */
    int64_t ffn_dim;        /* {arch}.feed_forward_length */
    int64_t context_length; /* {arch}.context_length */
    int64_t rope_dim;       /* {arch}.rope.dimension_count (default head_dim) */
    double rope_base;       /* {arch}.rope.freq_base (default 10000) */
    double norm_eps;        /* {arch}.attention.layer_norm_rms_epsilon (default 1e-5) */
    int tied_output;        /* 1 when output.weight is absent and token_embd is reused */
} lm_model_config;

typedef struct lm_model lm_model;

/* Opens a GGUF file and loads model and tokenizer from it. */
lm_status lm_model_load(const char *path, lm_model **out, lm_error *err);
/* Loads from an open GGUF; the model takes ownership of g (also on failure). */
lm_status lm_model_load_gguf(lm_gguf *g, lm_model **out, lm_error *err);
void lm_model_free(lm_model *m);

const lm_model_config *lm_model_get_config(const lm_model *m);
const lm_tokenizer *lm_model_get_tokenizer(const lm_model *m);
const lm_gguf *lm_model_get_gguf(const lm_model *m);

/* The model's matrix weights as a prompt meets them: the layers' multiply
 * every token, the output matrix only the last (a prompt needs the last
 * token's logits); and how many of each go through integer kernels on this
 * CPU (int8 dot products, AVX-512 VNNI), the others through f32
 * multiply-adds. So prompt speed can be quoted in the work it does, against
 * the peak of the instructions used. */
typedef struct lm_matrix_params {
    uint64_t layers, layers_int8; /* all layers' matrices; those on int8 kernels */
    uint64_t output, output_int8; /* the output matrix (the embedding when tied) */
} lm_matrix_params;
lm_matrix_params lm_model_matrix_params(const lm_model *m);

typedef struct lm_context lm_context;

/* n_ctx positions of KV cache (1 .. context_length); n_threads >= 1. */
lm_status lm_context_init(const lm_model *m, int64_t n_ctx, int n_threads, lm_context **out, lm_error *err);

/* The KV cache's element type. LM_KV_F16 (llama.cpp's default) halves the
 * cache's memory and the bytes each token's attention reads; keys and values
 * are rounded to IEEE half, which moves the logits by about 1e-3.
 * lm_context_init keeps f32, the exact reference. */
typedef enum { LM_KV_F32 = 0, LM_KV_F16 = 1 } lm_kv_type;
lm_status lm_context_init_kv(const lm_model *m, int64_t n_ctx, int n_threads, lm_kv_type kv, lm_context **out,
                             lm_error *err);
lm_kv_type lm_context_kv_type(const lm_context *c);
/* "f16" or "f32" into *out; 0 on success, -1 for anything else. */
int lm_kv_type_parse(const char *name, lm_kv_type *out);
const char *lm_kv_type_name(lm_kv_type kv);
void lm_context_free(lm_context *c);
/* Tokens per prefill batch (default 512, at most n_ctx): smaller batches use
 * less memory and dequantise the weights more often. */
lm_status lm_context_set_batch_size(lm_context *c, int64_t n, lm_error *err);
int64_t lm_context_batch_size(const lm_context *c);
int64_t lm_context_size(const lm_context *c);

/* Runs token at position pos (positions 0..pos-1 must already be cached) and
 * returns the n_vocab logits, valid until the next call. */
lm_status lm_context_forward(lm_context *c, int32_t token, int64_t pos, const float **logits, lm_error *err);

/* One step of n tokens of one or more sequences (continuous batching): token
 * tokens[b] at position pos[b] of context ctxs[b], each context its own
 * sequence with its own KV cache, all of the same model and none larger than
 * ctxs[0]; n is at most ctxs[0]'s batch size. A context may come several
 * times at distinct positions (a chunk of its prompt read in the same pass
 * as the others' next tokens). The weight matrices are read once for the
 * whole step; each token attends to its own context's positions up to its
 * own, those stored earlier and those of this step, so every position below
 * a token must be one or the other. want (n flags; NULL: all) says whose
 * logits to compute: logits receives (number wanted, n_vocab), in order,
 * equal to what lm_context_forward gives token by token (to rounding: the
 * products are matrix-matrix). */
lm_status lm_context_forward_step(lm_context *const *ctxs, const int32_t *tokens, const int64_t *pos, int64_t n,
                                  const unsigned char *want, float *logits, lm_error *err);
/* lm_context_forward_step with every token's logits, (n, n_vocab): one decode
 * step of n sequences, one token each. */
lm_status lm_context_forward_multi(lm_context *const *ctxs, const int32_t *tokens, const int64_t *pos, int64_t n,
                                   float *logits_all, lm_error *err);

/* Runs n tokens at positions pos0 .. pos0 + n - 1 in one pass (prefill):
 * every weight matrix is read once per batch rather than once per token. The
 * results equal n calls of lm_context_forward bit for bit. logits_all, if
 * not NULL, receives (n, n_vocab) logits; *logits (if not NULL) points at the
 * last token's, valid until the next call. */
lm_status lm_context_forward_batch(lm_context *c, const int32_t *tokens, int64_t n, int64_t pos0, float *logits_all,
                                   const float **logits, lm_error *err);

#ifdef __cplusplus
}
#endif
#endif
