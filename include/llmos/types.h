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

#ifdef __cplusplus
}
#endif
#endif
