/* The training operations in f64, for gradient checks: plain loops, each
 * output summed in index order. */
#include "ops.h"

#define MM(C, A, B, M, N, K, a_rs, a_cs, b_rs, b_cs, acc, nt)                                                           \
    _Pragma("omp parallel for num_threads(nt) schedule(static)") for (int64_t i = 0; i < (M); i++) {                     \
        for (int64_t j = 0; j < (N); j++) {                                                                              \
            double s_ = 0;                                                                                               \
            for (int64_t k = 0; k < (K); k++) s_ += (A)[i * (a_rs) + k * (a_cs)] * (B)[k * (b_rs) + j * (b_cs)];        \
            (C)[i * (N) + j] = (acc) ? (C)[i * (N) + j] + s_ : s_;                                                       \
        }                                                                                                                \
    }

void lm_tr_matmul_nt_f64(double *C, const double *A, const double *B, int64_t M, int64_t N, int64_t K, int acc, int nt) {
    (void)nt;
    MM(C, A, B, M, N, K, K, 1, 1, K, acc, nt)
}
void lm_tr_matmul_nn_f64(double *C, const double *A, const double *B, int64_t M, int64_t N, int64_t K, int acc, int nt) {
    (void)nt;
    MM(C, A, B, M, N, K, K, 1, N, 1, acc, nt)
}
void lm_tr_matmul_tn_f64(double *C, const double *A, const double *B, int64_t M, int64_t N, int64_t K, int acc, int nt) {
    (void)nt;
    MM(C, A, B, M, N, K, 1, M, N, 1, acc, nt)
}

#define REAL double
#define SFX f64
#define MATMUL_NT lm_tr_matmul_nt_f64
#define MATMUL_NN lm_tr_matmul_nn_f64
#define MATMUL_TN lm_tr_matmul_tn_f64
#include "ops_t.h"
