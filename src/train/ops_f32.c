/* The training operations in f32, with matrix products through the blocked
 * GEMM (tensor/gemm.h). */
#include "ops.h"

#include "../tensor/gemm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The naive product, for the rare case the GEMM cannot get memory for its
 * packed operands: still correct. */
#define NAIVE(REAL, C, A, B, M, N, K, a_rs, a_cs, b_rs, b_cs, acc)                                                      \
    for (int64_t i = 0; i < (M); i++)                                                                                    \
        for (int64_t j = 0; j < (N); j++) {                                                                              \
            REAL s_ = 0;                                                                                                 \
            for (int64_t k = 0; k < (K); k++) s_ += (A)[i * (a_rs) + k * (a_cs)] * (B)[k * (b_rs) + j * (b_cs)];        \
            (C)[i * (N) + j] = (acc) ? (C)[i * (N) + j] + s_ : s_;                                                       \
        }

/* Mixed precision: the weight products in bf16 (f32 accumulation, f32
 * master weights and everything else). Set once per run, before training. */
static int use_bf16;

int lm_tr_set_bf16(int on) {
    use_bf16 = on && lm_gemm_kernel_bf16() != NULL;
    return use_bf16;
}

static void sgemm(float *C, const float *A, int64_t a_rs, int64_t a_cs, const float *B, int64_t b_rs, int64_t b_cs,
                  int64_t M, int64_t N, int64_t K, int acc, int nt) {
    lm_fview a = {A, a_rs, a_cs}, b = {B, b_rs, b_cs};
    if (use_bf16 && lm_sgemm_bf16(lm_gemm_kernel_bf16(), M, N, K, a, b, C, N, acc, nt)) return;
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

/* C (M, N), rows ldc apart, (+)= A B on one thread (the callers run one
 * head per thread). */
static void gemm1(int64_t M, int64_t N, int64_t K, lm_fview A, lm_fview B, float *C, int64_t ldc, int acc) {
    if (lm_sgemm(lm_gemm_kernel_any(), M, N, K, A, B, C, ldc, acc, 1)) return;
    for (int64_t i = 0; i < M; i++) {
        for (int64_t j = 0; j < N; j++) {
            float s = 0;
            for (int64_t k = 0; k < K; k++) s += A.p[i * A.rs + k * A.cs] * B.p[k * B.rs + j * B.cs];
            C[i * ldc + j] = acc ? C[i * ldc + j] + s : s;
        }
    }
}

/* Causal attention (the meaning of ops_t.h's version) with the products as
 * GEMMs per (sequence, head): S = Q K^T over the whole T x T square (the
 * masked half is wasted, but a GEMM is an order of magnitude faster than
 * the loops), then the masked softmax in place, then O = P V. */
void lm_tr_attention_fwd_f32(float *out, float *att, const float *q, const float *k, const float *v, int64_t B, int64_t T,
                             int64_t H, int64_t KVH, int64_t hd, int nt) {
    const int64_t group = H / KVH, qs = H * hd, ks = KVH * hd;
    const float scale = (float)(1.0 / sqrt((double)hd));
#pragma omp parallel for collapse(2) num_threads(nt) schedule(dynamic, 1)
    for (int64_t b = 0; b < B; b++) {
        for (int64_t h = 0; h < H; h++) {
            const int64_t kh = h / group;
            float *S = att + (b * H + h) * T * T;
            lm_fview Q = {q + (b * T * H + h) * hd, qs, 1}, Kt = {k + (b * T * KVH + kh) * hd, 1, ks};
            gemm1(T, T, hd, Q, Kt, S, T, 0);
            for (int64_t t = 0; t < T; t++) {
                float *row = S + t * T, max = -INFINITY, sum = 0;
                for (int64_t s = 0; s <= t; s++) {
                    row[s] *= scale;
                    max = row[s] > max ? row[s] : max;
                }
                for (int64_t s = 0; s <= t; s++) sum += (row[s] = expf(row[s] - max));
                for (int64_t s = 0; s <= t; s++) row[s] /= sum;
                for (int64_t s = t + 1; s < T; s++) row[s] = 0;
            }
            lm_fview P = {S, T, 1}, V = {v + (b * T * KVH + kh) * hd, ks, 1};
            gemm1(T, hd, T, P, V, out + (b * T * H + h) * hd, qs, 0);
        }
    }
}

/* The backward pass as GEMMs per (sequence, kv head), the heads of a group
 * in order: dP = dO V^T, dS = P (dP - rowsum(P dP)) / sqrt(hd), dQ = dS K,
 * dK += dS^T Q, dV += P^T dO. scratch is unused (each thread allocates its
 * T x T dP). */
void lm_tr_attention_bwd_f32(float *dq, float *dk, float *dv, const float *dout, const float *att, const float *q,
                             const float *k, const float *v, int64_t B, int64_t T, int64_t H, int64_t KVH, int64_t hd,
                             float *scratch, int nt) {
    (void)scratch;
    const int64_t group = H / KVH, qs = H * hd, ks = KVH * hd;
    const float scale = (float)(1.0 / sqrt((double)hd));
#pragma omp parallel num_threads(nt)
    {
        float *dP = malloc((size_t)(T * T) * sizeof *dP);
#pragma omp for collapse(2) schedule(dynamic, 1)
        for (int64_t b = 0; b < B; b++) {
            for (int64_t kh = 0; kh < KVH; kh++) {
                float *dkb = dk + (b * T * KVH + kh) * hd, *dvb = dv + (b * T * KVH + kh) * hd;
                for (int64_t t = 0; t < T; t++) {
                    memset(dkb + t * ks, 0, (size_t)hd * sizeof(float));
                    memset(dvb + t * ks, 0, (size_t)hd * sizeof(float));
                }
                if (!dP) { /* out of memory: this head's gradients are 0 rather than a crash */
                    for (int64_t h = kh * group; h < (kh + 1) * group; h++) {
                        for (int64_t t = 0; t < T; t++) memset(dq + ((b * T + t) * H + h) * hd, 0, (size_t)hd * sizeof(float));
                    }
                    continue;
                }
                lm_fview Kv = {k + (b * T * KVH + kh) * hd, ks, 1}, Vt = {v + (b * T * KVH + kh) * hd, 1, ks};
                for (int64_t h = kh * group; h < (kh + 1) * group; h++) {
                    const float *P = att + (b * H + h) * T * T;
                    lm_fview dO = {dout + (b * T * H + h) * hd, qs, 1}, Q = {q + (b * T * H + h) * hd, qs, 1};
                    gemm1(T, T, hd, dO, Vt, dP, T, 0);
                    for (int64_t t = 0; t < T; t++) {
                        const float *p = P + t * T;
                        float *d = dP + t * T, pdp = 0;
                        for (int64_t s = 0; s <= t; s++) pdp += p[s] * d[s];
                        for (int64_t s = 0; s <= t; s++) d[s] = p[s] * (d[s] - pdp) * scale;
                        for (int64_t s = t + 1; s < T; s++) d[s] = 0;
                    }
                    lm_fview dS = {dP, T, 1}, dSt = {dP, 1, T}, Pt = {P, 1, T};
                    gemm1(T, hd, T, dS, Kv, dq + (b * T * H + h) * hd, qs, 0);
                    gemm1(T, hd, T, dSt, Q, dkb, ks, 1);
                    gemm1(T, hd, T, Pt, dO, dvb, ks, 1);
                }
            }
        }
        free(dP);
    }
}

#define LM_TR_ATTENTION_PROVIDED
#define REAL float
#define SFX f32
#define MATMUL_NT lm_tr_matmul_nt_f32
#define MATMUL_NN lm_tr_matmul_nn_f32
#define MATMUL_TN lm_tr_matmul_tn_f32
#include "ops_t.h"
