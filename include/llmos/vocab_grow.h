/* Growing a model's vocabulary by control tokens, so a base model whose
 * tokenizer lacks a chat template's markers (<|im_start|>, <|im_end|>, ...)
 * can learn them as single tokens in fine-tuning. */
#ifndef LLMOS_VOCAB_GROW_H
#define LLMOS_VOCAB_GROW_H

#include "llmos/base.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LM_VOCAB_GROW_MAX_TOKENS 256   /* new tokens per call */
#define LM_VOCAB_GROW_MAX_TOKEN_LEN 128 /* bytes of one new token's text */

/* Writes a copy of the model GGUF at in_path to out_path (atomically) with
 * the n tokens appended to the vocabulary as control tokens (ids n_vocab ..
 * n_vocab + n - 1): tokenizer.ggml.tokens extended, tokenizer.ggml.token_type
 * 3 for them (the array is created, all normal, if the file has none),
 * tokenizer.ggml.scores extended with 0 if present, merges unchanged,
 * {arch}.vocab_size updated if present. token_embd.weight and output.weight
 * (unless tied) get n more rows, each the mean of the existing rows; those
 * two tensors are written as F32 (the old rows dequantised, so bit-identical
 * for F32 files), every other tensor and key is copied as it is. eot, when
 * >= 0, is the index in tokens of the end-of-turn marker: it becomes
 * tokenizer.ggml.eot_token_id unless the file already names one.
 *
 * Refused (LM_ERR_ARG): n of 0 or above LM_VOCAB_GROW_MAX_TOKENS, a token
 * that is empty, longer than LM_VOCAB_GROW_MAX_TOKEN_LEN, holds white space
 * or control characters, repeats another, or is already in the vocabulary;
 * eot outside -1..n-1; in_path equal to out_path. */
lm_status lm_vocab_grow(const char *in_path, const char *out_path, const char *const *tokens, size_t n, int32_t eot,
                        lm_error *err);

#ifdef __cplusplus
}
#endif
#endif
