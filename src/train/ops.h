/* Forward and backward operations of the Llama block for training, in f32
 * (the trainer) and f64 (gradient checks). See ops_t.h for the meaning of
 * each; MATMUL_* conventions: C (M, N) = A B^T with A (M, K), B (N, K) [NT];
 * A B with B (K, N) [NN]; A^T B with A (K, M), B (K, N) [TN]; accumulate
 * adds into C instead of overwriting it. */
#ifndef LLMOS_TRAIN_OPS_H
#define LLMOS_TRAIN_OPS_H

#include <stdint.h>

#define LM_TR_DECLARE(REAL, SFX)                                                                                          \
    void lm_tr_matmul_nt_##SFX(REAL *C, const REAL *A, const REAL *B, int64_t M, int64_t N, int64_t K, int acc, int nt);  \
    void lm_tr_matmul_nn_##SFX(REAL *C, const REAL *A, const REAL *B, int64_t M, int64_t N, int64_t K, int acc, int nt);  \
    void lm_tr_matmul_tn_##SFX(REAL *C, const REAL *A, const REAL *B, int64_t M, int64_t N, int64_t K, int acc, int nt);  \
    void lm_tr_embedding_fwd_##SFX(REAL *out, const REAL *table, const int32_t *tokens, int64_t N, int64_t D);           \
    void lm_tr_embedding_bwd_##SFX(REAL *dtable, const REAL *dout, const int32_t *tokens, int64_t N, int64_t D, int nt); \
    void lm_tr_rmsnorm_fwd_##SFX(REAL *out, REAL *rstd, const REAL *x, const REAL *w, int64_t N, int64_t D, double eps,  \
                                 int nt);                                                                                \
    void lm_tr_rmsnorm_bwd_##SFX(REAL *dx, REAL *dw, const REAL *dout, const REAL *x, const REAL *w, const REAL *rstd,   \
                                 int64_t N, int64_t D, int nt);                                                          \
    void lm_tr_matmul_fwd_##SFX(REAL *Y, const REAL *X, const REAL *W, int64_t N, int64_t I, int64_t O, int nt);         \
    void lm_tr_matmul_bwd_##SFX(REAL *dX, REAL *dW, const REAL *dY, const REAL *X, const REAL *W, int64_t N, int64_t I,  \
                                int64_t O, int accumulate_dx, int nt);                                                   \
    void lm_tr_rope_##SFX(REAL *x, const double *cos_sin, int64_t N, int64_t T, int64_t n_heads, int64_t hd, int sign,    \
                          int nt);                                                                                       \
    void lm_tr_attention_fwd_##SFX(REAL *out, REAL *att, const REAL *q, const REAL *k, const REAL *v, int64_t B,         \
                                   int64_t T, int64_t H, int64_t KVH, int64_t hd, int nt);                               \
    void lm_tr_attention_bwd_##SFX(REAL *dq, REAL *dk, REAL *dv, const REAL *dout, const REAL *att, const REAL *q,       \
                                   const REAL *k, const REAL *v, int64_t B, int64_t T, int64_t H, int64_t KVH,           \
                                   int64_t hd, REAL *scratch, int nt);                                                   \
    void lm_tr_swiglu_fwd_##SFX(REAL *h, const REAL *gate, const REAL *up, int64_t n, int nt);                           \
    void lm_tr_swiglu_bwd_##SFX(REAL *dgate, REAL *dup, const REAL *dh, const REAL *gate, const REAL *up, int64_t n,     \
                                int nt);                                                                                 \
    double lm_tr_crossentropy_fwd_##SFX(REAL *logits, REAL *losses, const int32_t *targets, int64_t N, int64_t V,       \
                                        int nt);                                                                         \
    void lm_tr_crossentropy_bwd_##SFX(REAL *probs, const int32_t *targets, int64_t N, int64_t V, REAL scale, int nt);                                                                                                                       \
    void lm_tr_crossentropy_bwd_rows_##SFX(REAL *probs, const int32_t *targets, int64_t N, int64_t V, int64_t T,       \
                                          const double *row_scale, int nt);

LM_TR_DECLARE(float, f32)
LM_TR_DECLARE(double, f64)

/* Mixed precision for the f32 weight products (matmul_fwd / matmul_bwd):
 * operands rounded to bf16, f32 accumulation. Returns whether it is on
 * (off where the CPU has no AVX-512 BF16). Process-wide; set before
 * training. */
int lm_tr_set_bf16(int on);

/* (T, hd / 2, 2) cos and sin of position t times theta^(-2i / hd), in double. */
void lm_tr_rope_table(double *cos_sin, int64_t T, int64_t hd, double theta);

#endif
