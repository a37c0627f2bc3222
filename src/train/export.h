/* Moving weights between GGUF models and the trainer's parameter array. */
#ifndef LLMOS_TRAIN_EXPORT_H
#define LLMOS_TRAIN_EXPORT_H

#include "llmos/model.h"
#include "model.h"

/* The training shape of a loaded model; fails for what the trainer does not
 * support (partial RoPE, a head size that differs from dim / heads is fine). */
lm_status lm_train_shape_of(const lm_model *m, lm_train_shape *s, lm_error *err);
/* Copies (dequantising) every weight of m into params laid out by l. */
void lm_train_params_from_model(const lm_model *m, const lm_train_layout *l, float *params);
/* Writes params as an F32 GGUF: every key of template_path (architecture,
 * hyperparameters, tokenizer) except general.name / general.file_type, and
 * the tensors under llama.cpp's names; chat_template (may be NULL) becomes
 * tokenizer.chat_template, replacing the template file's. Written
 * atomically. */
lm_status lm_train_export(const char *template_path, const lm_train_shape *s, const lm_train_layout *l,
                          const float *params, const char *chat_template, const char *out_path, lm_error *err);

#endif
