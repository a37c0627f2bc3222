/* Vectorised dequantisation for the types the GEMM meets most; each entry
 * equals lm_dequantize_row bit for bit (test_kernels checks). */
#ifndef LLMOS_DEQUANT_FAST_H
#define LLMOS_DEQUANT_FAST_H

#include "llmos/types.h"

#include <stdint.h>

/* n values of a row (a whole number of blocks) into y. */
typedef void (*lm_dequant_fn)(const void *row, float *y, int64_t n);

#if defined(__x86_64__)
/* NULL where a type has no AVX2 version. */
extern const lm_dequant_fn lm_dequant_avx2[LM_TYPE_COUNT_];
#endif

#endif
