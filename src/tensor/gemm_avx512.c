/* AVX-512 GEMM micro-kernel: a tile of 12 tokens x 32 rows in 24 zmm
 * accumulators; per column, two 16-float loads of the weight panel and 12
 * broadcasts of the tokens' activations feed 24 FMAs. */
#if defined(__x86_64__)
#include "gemm.h"

#include <immintrin.h>

#define AVX512 __attribute__((target("avx512f")))

/* Token i's two accumulators: rows 0..15 and 16..31. */
#define ACC_DECL(i) __m512 c##i##a = _mm512_setzero_ps(), c##i##b = _mm512_setzero_ps()
/* Row i of an A panel of MR rows (ap (kc, MR)) times this column's two weight vectors. */
#define ACC_FMA_MR(i, ap, mr)                                       \
    do {                                                            \
        __m512 x_ = _mm512_set1_ps((ap)[k * (mr) + i]);             \
        c##i##a = _mm512_fmadd_ps(x_, w0, c##i##a);                 \
        c##i##b = _mm512_fmadd_ps(x_, w1, c##i##b);                 \
    } while (0)
#define ACC_FMA(i) ACC_FMA_MR(i, xp, 12)
#define ACC_STORE(i)                                                                                   \
    do {                                                                                               \
        float *t_ = tile + i * ldc;                                                                    \
        if (accumulate) {                                                                              \
            c##i##a = _mm512_add_ps(c##i##a, _mm512_loadu_ps(t_));                                     \
            c##i##b = _mm512_add_ps(c##i##b, _mm512_loadu_ps(t_ + 16));                                \
        }                                                                                              \
        _mm512_storeu_ps(t_, c##i##a);                                                                 \
        _mm512_storeu_ps(t_ + 16, c##i##b);                                                            \
    } while (0)

AVX512 static void micro_12x32(int64_t kc, const float *xp, const float *wp, float *tile, int64_t ldc, int accumulate) {
    ACC_DECL(0); ACC_DECL(1); ACC_DECL(2); ACC_DECL(3); ACC_DECL(4); ACC_DECL(5);
    ACC_DECL(6); ACC_DECL(7); ACC_DECL(8); ACC_DECL(9); ACC_DECL(10); ACC_DECL(11);
    for (int64_t k = 0; k < kc; k++) {
        __m512 w0 = _mm512_load_ps(wp + k * 32), w1 = _mm512_load_ps(wp + k * 32 + 16);
        ACC_FMA(0); ACC_FMA(1); ACC_FMA(2); ACC_FMA(3); ACC_FMA(4); ACC_FMA(5);
        ACC_FMA(6); ACC_FMA(7); ACC_FMA(8); ACC_FMA(9); ACC_FMA(10); ACC_FMA(11);
    }
    ACC_STORE(0); ACC_STORE(1); ACC_STORE(2); ACC_STORE(3); ACC_STORE(4); ACC_STORE(5);
    ACC_STORE(6); ACC_STORE(7); ACC_STORE(8); ACC_STORE(9); ACC_STORE(10); ACC_STORE(11);
}

/* The bf16 micro-kernel: the same 12 x 32 tile, but each packed unit is a
 * pair of bf16 (two consecutive k), and vdpbf16ps adds both products of a
 * pair into each f32 lane. */
#define AVX512BF __attribute__((target("avx512f,avx512bf16")))
#define BACC_FMA(i)                                                                         \
    do {                                                                                    \
        __m512bh x_ = (__m512bh)_mm512_set1_ps(ap[k * 12 + i]);                             \
        c##i##a = _mm512_dpbf16_ps(c##i##a, x_, w0);                                        \
        c##i##b = _mm512_dpbf16_ps(c##i##b, x_, w1);                                        \
    } while (0)

AVX512BF static void micro_12x32_bf16(int64_t kc, const float *ap, const float *bp, float *tile, int64_t ldc,
                                      int accumulate) {
    ACC_DECL(0); ACC_DECL(1); ACC_DECL(2); ACC_DECL(3); ACC_DECL(4); ACC_DECL(5);
    ACC_DECL(6); ACC_DECL(7); ACC_DECL(8); ACC_DECL(9); ACC_DECL(10); ACC_DECL(11);
    const float *wp = bp;
    for (int64_t k = 0; k < kc; k++) {
        __m512bh w0 = (__m512bh)_mm512_load_ps(wp + k * 32), w1 = (__m512bh)_mm512_load_ps(wp + k * 32 + 16);
        BACC_FMA(0); BACC_FMA(1); BACC_FMA(2); BACC_FMA(3); BACC_FMA(4); BACC_FMA(5);
        BACC_FMA(6); BACC_FMA(7); BACC_FMA(8); BACC_FMA(9); BACC_FMA(10); BACC_FMA(11);
    }
    ACC_STORE(0); ACC_STORE(1); ACC_STORE(2); ACC_STORE(3); ACC_STORE(4); ACC_STORE(5);
    ACC_STORE(6); ACC_STORE(7); ACC_STORE(8); ACC_STORE(9); ACC_STORE(10); ACC_STORE(11);
}

const lm_gemm_kernel lm_gemm_avx512_bf16 = {"avx512-bf16", 12, 32, micro_12x32_bf16, lm_gemm_transpose_avx2, NULL};

const lm_gemm_kernel lm_gemm_avx512 = {"avx512", 12, 32, micro_12x32, lm_gemm_transpose_avx2, lm_dequant_avx2,
                                       lm_gemm_pack_a12_avx2};
/* Attention's tile, 8 x 32: 16 accumulators, as many multiply-adds a cycle
 * as micro_12x32 (both FMA-bound: 250-253 GFLOP/s on one core from L1), and
 * 64-wide heads are whole panels of 8 where they were 6 of 12 with 8 rows of
 * zeros (V^T), as the last key panel of a causal block is 8 rather than 12
 * (K): a 110M head at pp512, one thread, 206 -> 192 us. */
#define ACC8_FMA(i) ACC_FMA_MR(i, ap, 8)

AVX512 static void micro_8x32(int64_t kc, const float *ap, const float *wp, float *tile, int64_t ldc, int accumulate) {
    ACC_DECL(0); ACC_DECL(1); ACC_DECL(2); ACC_DECL(3); ACC_DECL(4); ACC_DECL(5); ACC_DECL(6); ACC_DECL(7);
    for (int64_t k = 0; k < kc; k++) {
        __m512 w0 = _mm512_load_ps(wp + k * 32), w1 = _mm512_load_ps(wp + k * 32 + 16);
        ACC8_FMA(0); ACC8_FMA(1); ACC8_FMA(2); ACC8_FMA(3); ACC8_FMA(4); ACC8_FMA(5); ACC8_FMA(6); ACC8_FMA(7);
    }
    ACC_STORE(0); ACC_STORE(1); ACC_STORE(2); ACC_STORE(3); ACC_STORE(4); ACC_STORE(5); ACC_STORE(6); ACC_STORE(7);
}
const lm_gemm_kernel lm_gemm_avx512_attn = {"avx512-8x32", 8, 32, micro_8x32, lm_gemm_transpose_avx2, NULL,
                                            lm_gemm_pack_a8_avx2};
#endif
