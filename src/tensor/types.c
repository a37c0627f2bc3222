#include "llmos/types.h"

/* Block sizes and bytes per block, from ggml's type traits. Numbers that ggml
 * removed (4, 5, 31-33, 36-38) stay unknown and are rejected. */
static const lm_type_info type_table[LM_TYPE_COUNT_] = {
    [LM_TYPE_F32] = {"f32", 1, 4},
    [LM_TYPE_F16] = {"f16", 1, 2},
    [LM_TYPE_Q4_0] = {"q4_0", 32, 18},
    [LM_TYPE_Q4_1] = {"q4_1", 32, 20},
    [LM_TYPE_Q5_0] = {"q5_0", 32, 22},
    [LM_TYPE_Q5_1] = {"q5_1", 32, 24},
    [LM_TYPE_Q8_0] = {"q8_0", 32, 34},
    [LM_TYPE_Q8_1] = {"q8_1", 32, 36},
    [LM_TYPE_Q2_K] = {"q2_K", 256, 84},
    [LM_TYPE_Q3_K] = {"q3_K", 256, 110},
    [LM_TYPE_Q4_K] = {"q4_K", 256, 144},
    [LM_TYPE_Q5_K] = {"q5_K", 256, 176},
    [LM_TYPE_Q6_K] = {"q6_K", 256, 210},
    [LM_TYPE_Q8_K] = {"q8_K", 256, 292},
    [LM_TYPE_IQ2_XXS] = {"iq2_xxs", 256, 66},
    [LM_TYPE_IQ2_XS] = {"iq2_xs", 256, 74},
    [LM_TYPE_IQ3_XXS] = {"iq3_xxs", 256, 98},
    [LM_TYPE_IQ1_S] = {"iq1_s", 256, 50},
    [LM_TYPE_IQ4_NL] = {"iq4_nl", 32, 18},
    [LM_TYPE_IQ3_S] = {"iq3_s", 256, 110},
    [LM_TYPE_IQ2_S] = {"iq2_s", 256, 82},
    [LM_TYPE_IQ4_XS] = {"iq4_xs", 256, 136},
    [LM_TYPE_I8] = {"i8", 1, 1},
    [LM_TYPE_I16] = {"i16", 1, 2},
    [LM_TYPE_I32] = {"i32", 1, 4},
    [LM_TYPE_I64] = {"i64", 1, 8},
    [LM_TYPE_F64] = {"f64", 1, 8},
    [LM_TYPE_IQ1_M] = {"iq1_m", 256, 56},
    [LM_TYPE_BF16] = {"bf16", 1, 2},
    [LM_TYPE_TQ1_0] = {"tq1_0", 256, 54},
    [LM_TYPE_TQ2_0] = {"tq2_0", 256, 66},
    [LM_TYPE_MXFP4] = {"mxfp4", 32, 17},
};

const lm_type_info *lm_type_get_info(uint32_t type) {
    if (type >= LM_TYPE_COUNT_ || type_table[type].name == NULL) return NULL;
    return &type_table[type];
}
