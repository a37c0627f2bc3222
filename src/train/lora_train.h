/* LoRA fine-tuning on top of the full-parameter trainer.
 *
 * The model's parameter array always holds the effective weights
 * W = W0 + s B A of the adapted matrices, so the forward and backward passes
 * are the ordinary ones. After the backward pass, the gradient of the loss
 * with respect to W (dW, computed anyway) gives the factors' gradients
 * exactly: dB = s dW A^T and dA = s B^T dW. Only A and B are optimised; the
 * other parameters stay as loaded. */
#ifndef LLMOS_TRAIN_LORA_TRAIN_H
#define LLMOS_TRAIN_LORA_TRAIN_H

#include "model.h"

typedef struct lm_lora_state lm_lora_state;

/* One (A, B) pair for each of the seven matrices of every layer (wq, wk, wv,
 * wo, w_gate, w_up, w_down), rank r <= min(rows, cols). A is random
 * (uniform in +-1/sqrt(cols)), B zero, so training starts from the loaded
 * model. params holds W0 (it is copied). scale = alpha / rank. */
lm_status lm_lora_state_create(const lm_train_shape *s, const lm_train_layout *l, const float *params, int64_t rank,
                               float alpha, uint64_t seed, lm_lora_state **out, lm_error *err);
void lm_lora_state_free(lm_lora_state *st);

/* The trainable values, all A then B of each matrix in turn, and their gradients. */
int64_t lm_lora_state_count(const lm_lora_state *st);
float *lm_lora_state_params(lm_lora_state *st);
float *lm_lora_state_grads(lm_lora_state *st);

/* The factors' gradients (overwritten) from the full gradient array. */
void lm_lora_state_backward(lm_lora_state *st, const float *full_grads, int nt);
/* params' adapted matrices = W0 + s B A. */
void lm_lora_state_apply(const lm_lora_state *st, float *params, int nt);
/* Writes the adapter (llmos/lora.h) for a base of architecture arch. */
lm_status lm_lora_state_export(const lm_lora_state *st, const char *arch, const char *path, lm_error *err);

#endif
