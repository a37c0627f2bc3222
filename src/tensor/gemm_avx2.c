/* AVX2 GEMM micro-kernel: a tile of 6 tokens x 16 rows in 12 ymm
 * accumulators (16 registers: 12 + 2 weight vectors + 1 broadcast). */
#if defined(__x86_64__)
#include "gemm.h"

#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma")))

#define ACC_DECL(i) __m256 c##i##a = _mm256_setzero_ps(), c##i##b = _mm256_setzero_ps()
#define ACC_FMA(i)                                                  \
    do {                                                            \
        __m256 x_ = _mm256_broadcast_ss(xp + k * 6 + i);            \
        c##i##a = _mm256_fmadd_ps(x_, w0, c##i##a);                 \
        c##i##b = _mm256_fmadd_ps(x_, w1, c##i##b);                 \
    } while (0)
#define ACC_STORE(i)                                                                                   \
    do {                                                                                               \
        float *t_ = tile + i * ldc;                                                                    \
        if (accumulate) {                                                                              \
            c##i##a = _mm256_add_ps(c##i##a, _mm256_loadu_ps(t_));                                     \
            c##i##b = _mm256_add_ps(c##i##b, _mm256_loadu_ps(t_ + 8));                                 \
        }                                                                                              \
        _mm256_storeu_ps(t_, c##i##a);                                                                 \
        _mm256_storeu_ps(t_ + 8, c##i##b);                                                             \
    } while (0)

AVX2 static void micro_6x16(int64_t kc, const float *xp, const float *wp, float *tile, int64_t ldc, int accumulate) {
    ACC_DECL(0); ACC_DECL(1); ACC_DECL(2); ACC_DECL(3); ACC_DECL(4); ACC_DECL(5);
    for (int64_t k = 0; k < kc; k++) {
        __m256 w0 = _mm256_load_ps(wp + k * 16), w1 = _mm256_load_ps(wp + k * 16 + 8);
        ACC_FMA(0); ACC_FMA(1); ACC_FMA(2); ACC_FMA(3); ACC_FMA(4); ACC_FMA(5);
    }
    ACC_STORE(0); ACC_STORE(1); ACC_STORE(2); ACC_STORE(3); ACC_STORE(4); ACC_STORE(5);
}

/* d[c * ldd + r] = s[r * ld + c] for an 8 x 8 block (rows r, columns c). */
AVX2 static inline __attribute__((always_inline)) void transpose8x8(const float *s, int64_t ld, float *d, int64_t ldd) {
    __m256 r0 = _mm256_loadu_ps(s), r1 = _mm256_loadu_ps(s + ld), r2 = _mm256_loadu_ps(s + 2 * ld),
           r3 = _mm256_loadu_ps(s + 3 * ld), r4 = _mm256_loadu_ps(s + 4 * ld), r5 = _mm256_loadu_ps(s + 5 * ld),
           r6 = _mm256_loadu_ps(s + 6 * ld), r7 = _mm256_loadu_ps(s + 7 * ld);
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3),
           t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
           t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE),
           u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE),
           u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE),
           u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(d, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(d + ldd, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(d + 2 * ldd, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(d + 3 * ldd, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(d + 4 * ldd, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(d + 5 * ldd, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(d + 6 * ldd, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(d + 7 * ldd, _mm256_permute2f128_ps(u3, u7, 0x31));
}

/* 8x8 blocks through registers: dst (kc rows, ldd apart) = src (nr rows,
 * ld apart) transposed. */
AVX2 void lm_gemm_transpose_avx2(const float *src, int64_t ld, int64_t nr, int64_t kc, float *dst, int64_t ldd) {
    int64_t k8 = kc / 8 * 8;
    for (int64_t j = 0; j + 8 <= nr; j += 8) {
        for (int64_t k = 0; k < k8; k += 8) transpose8x8(src + j * ld + k, ld, dst + k * ldd + j, ldd);
    }
    /* Columns past the last multiple of 8 (f32 weights of odd widths). */
    for (int64_t k = k8; k < kc; k++) {
        for (int64_t j = 0; j < nr; j++) dst[k * ldd + j] = src[j * ld + k];
    }
}

/* Ap (kc, 12) = rows 0..11 of A (row stride ld, kc columns each),
 * transposed: 8 x 8 blocks for rows 0-7, 4 x 4 ones for rows 8-11. One
 * strided store per value was 3-6% of a 110M prompt (the attention's P). */
AVX2 void lm_gemm_pack_a12_avx2(const float *src, int64_t ld, int64_t kc, float *dst) {
    const int64_t k8 = kc / 8 * 8;
    for (int64_t k = 0; k < k8; k += 8) {
        const float *s = src + k;
        float *d = dst + k * 12;
        transpose8x8(s, ld, d, 12);
        for (int h = 0; h < 8; h += 4) { /* rows 8-11, columns k + h .. k + h + 3 */
            __m128 a = _mm_loadu_ps(s + 8 * ld + h), b = _mm_loadu_ps(s + 9 * ld + h), c = _mm_loadu_ps(s + 10 * ld + h),
                   e = _mm_loadu_ps(s + 11 * ld + h);
            _MM_TRANSPOSE4_PS(a, b, c, e);
            _mm_storeu_ps(d + h * 12 + 8, a);
            _mm_storeu_ps(d + (h + 1) * 12 + 8, b);
            _mm_storeu_ps(d + (h + 2) * 12 + 8, c);
            _mm_storeu_ps(d + (h + 3) * 12 + 8, e);
        }
    }
    for (int64_t k = k8; k < kc; k++) {
        for (int i = 0; i < 12; i++) dst[k * 12 + i] = src[i * ld + k];
    }
}

/* Ap (kc, 8) = rows 0..7 of A (row stride ld), transposed in 8 x 8 blocks. */
AVX2 void lm_gemm_pack_a8_avx2(const float *src, int64_t ld, int64_t kc, float *dst) {
    const int64_t k8 = kc / 8 * 8;
    for (int64_t k = 0; k < k8; k += 8) transpose8x8(src + k, ld, dst + k * 8, 8);
    for (int64_t k = k8; k < kc; k++) {
        for (int i = 0; i < 8; i++) dst[k * 8 + i] = src[i * ld + k];
    }
}

const lm_gemm_kernel lm_gemm_avx2 = {"avx2", 6, 16, micro_6x16, lm_gemm_transpose_avx2, lm_dequant_avx2};
#endif
