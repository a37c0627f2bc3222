/* The training operations in f32, with matrix products through the blocked
 * GEMM (tensor/gemm.h). */
#include "ops.h"

#include "../tensor/gemm.h"

#include <math.h>

/* The naive product, for the rare case the GEMM cannot get memory for its
 * packed operands: still correct. */
#define NAIVE(REAL, C, A, B, M, N, K, a_rs, a_cs, b_rs, b_cs, acc)                                                      \
    for (int64_t i = 0; i < (M); i++)                                                                                    \
        for (int64_t j = 0; j < (N); j++) {                                                                              \
            REAL s_ = 0;                                                                                                 \
            for (int64_t k = 0; k < (K); k++) s_ += (A)[i * (a_rs) + k * (a_cs)] * (B)[k * (b_rs) + j * (b_cs)];        \
            (C)[i * (N) + j] = (acc) ? (C)[i * (N) + j] + s_ : s_;                                                       \
        }

static void sgemm(float *C, const float *A, int64_t a_rs, int64_t a_cs, const float *B, int64_t b_rs, int64_t b_cs,
                  int64_t M, int64_t N, int64_t K, int acc, int nt) {
    lm_fview a = {A, a_rs, a_cs}, b = {B, b_rs, b_cs};
    if (lm_sgemm(lm_gemm_kernel_any(), M, N, K, a, b, C, N, acc, nt)) return;
    NAIVE(float, C, A, B, M, N, K, a_rs, a_cs, b_rs, b_cs, acc)
}

void lm_tr_matmul_nt_f32(float *C, const float *A, const float *B, int64_t M, int64_t N, int64_t K, int acc, int nt) {
    sgemm(C, A, K, 1, B, 1, K, M, N, K, acc, nt);
}
void lm_tr_matmul_nn_f32(float *C, const float *A, const float *B, int64_t M, int64_t N, int64_t K, int acc, int nt) {
    sgemm(C, A, K, 1, B, N, 1, M, N, K, acc, nt);
}
void lm_tr_matmul_tn_f32(float *C, const float *A, const float *B, int64_t M, int64_t N, int64_t K, int acc, int nt) {
    sgemm(C, A, 1, M, B, N, 1, M, N, K, acc, nt);
}

void lm_tr_rope_table(double *cos_sin, int64_t T, int64_t hd, double theta) {
    for (int64_t t = 0; t < T; t++) {
        for (int64_t i = 0; i < hd / 2; i++) {
            double angle = (double)t * pow(theta, -2.0 * (double)i / (double)hd);
            cos_sin[(t * (hd / 2) + i) * 2] = cos(angle);
            cos_sin[(t * (hd / 2) + i) * 2 + 1] = sin(angle);
        }
    }
}

#define REAL float
#define SFX f32
#define MATMUL_NT lm_tr_matmul_nt_f32
#define MATMUL_NN lm_tr_matmul_nn_f32
#define MATMUL_TN lm_tr_matmul_tn_f32
#include "ops_t.h"
