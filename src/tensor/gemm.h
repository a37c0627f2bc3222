/* Matrix-matrix products for prefill: Y (n_tok, rows) = X (n_tok, cols) @ W^T
 * with W of any dequantisable type.
 *
 * Blocked like a BLAS GEMM: W is dequantised, NR rows by KC columns at a
 * time, into a packed panel Wp (KC, NR) that stays in L1; X is packed once
 * into groups of MR tokens, Xp (KC, MR) per group and column block; a
 * register-blocked micro-kernel multiplies one (MR, KC) x (KC, NR) pair into
 * an (MR, NR) tile of Y held in registers. Threads take row panels, so each
 * weight is dequantised once per call, however many tokens there are. */
#ifndef LLMOS_GEMM_H
#define LLMOS_GEMM_H

#include "ops.h"

#include <stdint.h>

/* Tile (MR, NR) += or = Xp (kc, MR) @ Wp (kc, NR); tile rows are ldc apart. */
typedef void (*lm_gemm_micro_fn)(int64_t kc, const float *xp, const float *wp, float *tile, int64_t ldc,
                                 int accumulate);

typedef struct lm_gemm_kernel {
    const char *name;
    int mr, nr; /* tokens and rows per tile */
    lm_gemm_micro_fn micro;
} lm_gemm_kernel;

/* The micro-kernel for the chosen kernel table (LLMOS_KERNELS), or NULL
 * where there is none (the scalar table: prefill then uses dot products). */
const lm_gemm_kernel *lm_gemm_kernel_best(void);

/* Fewer tokens than this go through the dot-product kernels: dequantising
 * the whole matrix costs about as much as 8 dot products per weight. */
enum { LM_GEMM_MIN_TOKENS = 16 };

/* Y = X @ W^T with micro-kernel g. Returns 0 when it cannot run (no memory
 * for the packed operands); the caller then uses the dot-product path. */
int lm_gemm(const lm_gemm_kernel *g, float *Y, const lm_weight *w, const float *X, int64_t n_tok, int n_threads);

#if defined(__x86_64__)
/* dst (kc, nr) = src (nr, kc) transposed; nr a multiple of 8. */
void lm_gemm_transpose_avx2(const float *src, int64_t nr, int64_t kc, float *dst);
extern const lm_gemm_kernel lm_gemm_avx2;
extern const lm_gemm_kernel lm_gemm_avx512;
#endif

#endif
