/* Tensor element types, numbered as in GGUF/ggml so files stay byte-compatible. */
#ifndef LLMOS_TYPES_H
#define LLMOS_TYPES_H

#include "llmos/base.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lm_type {
    LM_TYPE_F32 = 0,
    LM_TYPE_F16 = 1,
    LM_TYPE_Q4_0 = 2,
    LM_TYPE_Q4_1 = 3,
    LM_TYPE_Q5_0 = 6,
    LM_TYPE_Q5_1 = 7,
    LM_TYPE_Q8_0 = 8,
    LM_TYPE_Q8_1 = 9,
    LM_TYPE_Q2_K = 10,
    LM_TYPE_Q3_K = 11,
    LM_TYPE_Q4_K = 12,
    LM_TYPE_Q5_K = 13,
    LM_TYPE_Q6_K = 14,
    LM_TYPE_Q8_K = 15,
    LM_TYPE_IQ2_XXS = 16,
    LM_TYPE_IQ2_XS = 17,
    LM_TYPE_IQ3_XXS = 18,
    LM_TYPE_IQ1_S = 19,
    LM_TYPE_IQ4_NL = 20,
    LM_TYPE_IQ3_S = 21,
    LM_TYPE_IQ2_S = 22,
    LM_TYPE_IQ4_XS = 23,
    LM_TYPE_I8 = 24,
    LM_TYPE_I16 = 25,
    LM_TYPE_I32 = 26,
    LM_TYPE_I64 = 27,
    LM_TYPE_F64 = 28,
    LM_TYPE_IQ1_M = 29,
    LM_TYPE_BF16 = 30,
    LM_TYPE_TQ1_0 = 34,
    LM_TYPE_TQ2_0 = 35,
    LM_TYPE_MXFP4 = 39,
    LM_TYPE_COUNT_ = 40
} lm_type;

typedef struct lm_type_info {
    const char *name;   /* "f32", "q4_K", ... as ggml spells them; NULL if unknown */
    uint32_t block_size; /* elements per block */
    uint32_t type_size;  /* bytes per block */
} lm_type_info;

/* NULL when the number is not a known type (including removed ones). */
const lm_type_info *lm_type_get_info(uint32_t type);

/* Bytes of a row of n elements (n a multiple of the block size), or 0 when
 * the type is unknown or n is not a whole number of blocks. */
size_t lm_type_row_size(lm_type type, int64_t n);

/* 1 if lm_dequantize_row handles the type: F32, F16, BF16, Q4_0, Q4_1, Q5_0,
 * Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K. */
int lm_type_can_dequantize(lm_type type);
/* 1 if lm_quantize_row handles the type: F32, F16, BF16, Q4_0, Q4_1, Q5_0,
 * Q5_1, Q8_0, Q4_K, Q5_K, Q6_K, Q8_K. */
int lm_type_can_quantize(lm_type type);

/* n elements (a whole number of blocks) of type from src to floats. */
lm_status lm_dequantize_row(lm_type type, const void *src, float *dst, int64_t n, lm_error *err);
/* n floats to type, with ggml's reference quantisers (same bytes as
 * llama.cpp's quantize_row_*_ref). */
lm_status lm_quantize_row(lm_type type, const float *src, void *dst, int64_t n, lm_error *err);

/* Name ("q4_K", "f16", ...) to type, case-insensitive; -1 if unknown. */
int lm_type_from_name(const char *name);

#ifdef __cplusplus
}
#endif
#endif
