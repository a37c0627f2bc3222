/* A Llama model held for training: parameters, gradients and the saved
 * activations of one micro-batch, in f32 (training) or f64 (gradient
 * checks). The same code (model_t.h) is compiled for both.
 *
 * Parameters are one contiguous array, in this order (row-major shapes):
 *   tok_embd (V, D)
 *   per layer: attn_norm (D), wq (H*hd, D), wk (KVH*hd, D), wv (KVH*hd, D),
 *              wo (D, H*hd), ffn_norm (D), w_gate (F, D), w_up (F, D),
 *              w_down (D, F)
 *   output_norm (D), output (V, D) (absent when tied to tok_embd)
 * The gradients have the same layout. */
#ifndef LLMOS_TRAIN_MODEL_H
#define LLMOS_TRAIN_MODEL_H

#include "llmos/base.h"

#include <stddef.h>
#include <stdint.h>

typedef struct lm_train_shape {
    int64_t dim, n_layers, n_heads, n_kv_heads, head_dim, ffn_dim, n_vocab;
    int tied_output;
    double norm_eps, rope_theta;
} lm_train_shape;

/* Offsets (in elements) of one layer's tensors in the parameter array. */
typedef struct lm_train_layer_offsets {
    int64_t attn_norm, wq, wk, wv, wo, ffn_norm, w_gate, w_up, w_down;
} lm_train_layer_offsets;

typedef struct lm_train_layout {
    int64_t tok_embd, output_norm, output; /* output == tok_embd when tied */
    lm_train_layer_offsets *layers;        /* n_layers */
    int64_t n_params;
} lm_train_layout;

/* Checks the shape (positive sizes, heads divide, even head size, counts
 * that cannot overflow) and fills the layout; free with lm_train_layout_free. */
lm_status lm_train_layout_init(const lm_train_shape *s, lm_train_layout *out, lm_error *err);
void lm_train_layout_free(lm_train_layout *l);

#define LM_TRM_DECLARE(REAL, SFX)                                                                                        \
    typedef struct lm_trm_##SFX lm_trm_##SFX;                                                                           \
    /* params and grads (n_params each, zeroed) and activations for B x T tokens. */                                    \
    lm_status lm_trm_create_##SFX(const lm_train_shape *s, int64_t B, int64_t T, int n_threads, lm_trm_##SFX **out,      \
                                  lm_error *err);                                                                        \
    void lm_trm_free_##SFX(lm_trm_##SFX *m);                                                                             \
    REAL *lm_trm_params_##SFX(lm_trm_##SFX *m);                                                                          \
    REAL *lm_trm_grads_##SFX(lm_trm_##SFX *m);                                                                           \
    const lm_train_layout *lm_trm_layout_##SFX(const lm_trm_##SFX *m);                                                  \
    /* Forward pass over inputs (B, T); with targets (B, T, -1 = not scored), returns the summed loss and keeps   \
     * what backward needs; n_scored gets the number of scored targets. */                                              \
    double lm_trm_forward_##SFX(lm_trm_##SFX *m, const int32_t *inputs, const int32_t *targets, int64_t *n_scored);     \
    /* Adds d(loss_sum * loss_scale)/d(params) into the gradients, for the last forward. */                             \
    void lm_trm_backward_##SFX(lm_trm_##SFX *m, double loss_scale);                                                      \
    /* The same with a scale per sequence: d(sum_b row_scale[b] * loss of row b)/d(params) (B values). */             \
    void lm_trm_backward_rows_##SFX(lm_trm_##SFX *m, const double *row_scale);                                           \
    /* The per-token losses (B * T; 0 where not scored) of the last scored forward. */                                  \
    const REAL *lm_trm_token_losses_##SFX(const lm_trm_##SFX *m);                                                       \
    /* The logits (B * T, V) of the last forward without targets (probabilities after one with targets). */            \
    const REAL *lm_trm_logits_##SFX(const lm_trm_##SFX *m);

LM_TRM_DECLARE(float, f32)
LM_TRM_DECLARE(double, f64)

#endif
