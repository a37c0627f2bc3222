/* AVX2 + F16C dequantisation of the common weight types into f32, for the
 * GEMM's packed panels (tensor/gemm.c). Each gives exactly the floats of its
 * scalar twin in dequant.c (the same products in the same order, no fused
 * multiply-adds), which test_kernels checks. */
#if defined(__x86_64__)
#include "dequant_fast.h"

#include "fp16.h"
#include "quant_blocks.h"

#include <immintrin.h>
#include <string.h>

#define AVX2 __attribute__((target("avx2,fma,f16c")))

AVX2 static void dq_f16(const void *row, float *y, int64_t n) {
    const uint16_t *x = row;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))));
    for (; i < n; i++) y[i] = lm_fp16_to_fp32(x[i]);
}

AVX2 static void dq_bf16(const void *row, float *y, int64_t n) {
    const uint16_t *x = row;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(x + i)));
        _mm256_storeu_ps(y + i, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
    }
    for (; i < n; i++) y[i] = lm_bf16_to_fp32(x[i]);
}

/* 8 signed bytes at p to 8 floats times d. */
AVX2 static inline __m256 i8x8_times(const void *p, __m256 d) {
    __m128i b = _mm_loadl_epi64((const __m128i *)p);
    return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b)), d);
}

AVX2 static void dq_q8_0(const void *row, float *y, int64_t n) {
    const block_q8_0 *x = row;
    for (int64_t b = 0; b < n / QK8_0; b++, y += QK8_0) {
        __m256 d = _mm256_set1_ps(_cvtsh_ss(x[b].d));
        for (int j = 0; j < 32; j += 8) _mm256_storeu_ps(y + j, i8x8_times(x[b].qs + j, d));
    }
}

AVX2 static void dq_q4_0(const void *row, float *y, int64_t n) {
    const block_q4_0 *x = row;
    const __m128i low = _mm_set1_epi8(0x0F), eight = _mm_set1_epi8(8);
    for (int64_t b = 0; b < n / QK4_0; b++, y += QK4_0) {
        __m256 d = _mm256_set1_ps(_cvtsh_ss(x[b].d));
        __m128i raw = _mm_loadu_si128((const __m128i *)x[b].qs);
        __m128i lo = _mm_sub_epi8(_mm_and_si128(raw, low), eight);                     /* weights 0..15 */
        __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(raw, 4), low), eight);  /* weights 16..31 */
        _mm256_storeu_ps(y, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo)), d));
        _mm256_storeu_ps(y + 8, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8))), d));
        _mm256_storeu_ps(y + 16, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi)), d));
        _mm256_storeu_ps(y + 24, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8))), d));
    }
}

/* 32 unsigned 4-bit values (nibbles of 32 bytes at q, shifted by shift) to
 * d * q - m. */
AVX2 static inline void q4_K_run(const uint8_t *q, int shift, __m256 d, __m256 m, float *y) {
    for (int l = 0; l < 32; l += 8) {
        __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(q + l)));
        v = _mm256_and_si256(_mm256_srli_epi32(v, shift), _mm256_set1_epi32(0xF));
        _mm256_storeu_ps(y + l, _mm256_sub_ps(_mm256_mul_ps(d, _mm256_cvtepi32_ps(v)), m));
    }
}

AVX2 static void dq_q4_K(const void *row, float *y, int64_t n) {
    const block_q4_K *x = row;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const uint8_t *q = x[i].qs;
        const float d = _cvtsh_ss(x[i].d), min = _cvtsh_ss(x[i].dmin);
        for (int j = 0, is = 0; j < QK_K; j += 64, is += 2, q += 32) {
            uint8_t sc, m;
            lm_q4_K_scale_min(is, x[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = min * m;
            lm_q4_K_scale_min(is + 1, x[i].scales, &sc, &m);
            const float d2 = d * sc, m2 = min * m;
            q4_K_run(q, 0, _mm256_set1_ps(d1), _mm256_set1_ps(m1), y);
            q4_K_run(q, 4, _mm256_set1_ps(d2), _mm256_set1_ps(m2), y + 32);
            y += 64;
        }
    }
}

AVX2 static void dq_q6_K(const void *row, float *y, int64_t n) {
    const block_q6_K *x = row;
    const __m256i mask4 = _mm256_set1_epi32(0xF), mask2 = _mm256_set1_epi32(3), off = _mm256_set1_epi32(32);
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = _cvtsh_ss(x[i].d);
        const uint8_t *ql = x[i].ql, *qh = x[i].qh;
        const int8_t *sc = x[i].scales;
        for (int nn = 0; nn < QK_K; nn += 128, y += 128, ql += 64, qh += 32, sc += 8) {
            for (int l = 0; l < 32; l += 8) {
                int is = l / 16;
                __m256i a = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(ql + l)));
                __m256i b = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(ql + l + 32)));
                __m256i h = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(qh + l)));
                __m256i q1 = _mm256_or_si256(_mm256_and_si256(a, mask4), _mm256_slli_epi32(_mm256_and_si256(h, mask2), 4));
                __m256i q2 = _mm256_or_si256(_mm256_and_si256(b, mask4),
                                             _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(h, 2), mask2), 4));
                __m256i q3 = _mm256_or_si256(_mm256_srli_epi32(a, 4),
                                             _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(h, 4), mask2), 4));
                __m256i q4 = _mm256_or_si256(_mm256_srli_epi32(b, 4), _mm256_slli_epi32(_mm256_srli_epi32(h, 6), 4));
                /* d * sc first, then * q: the scalar order. */
                _mm256_storeu_ps(y + l, _mm256_mul_ps(_mm256_set1_ps(d * sc[is + 0]), _mm256_cvtepi32_ps(_mm256_sub_epi32(q1, off))));
                _mm256_storeu_ps(y + l + 32, _mm256_mul_ps(_mm256_set1_ps(d * sc[is + 2]), _mm256_cvtepi32_ps(_mm256_sub_epi32(q2, off))));
                _mm256_storeu_ps(y + l + 64, _mm256_mul_ps(_mm256_set1_ps(d * sc[is + 4]), _mm256_cvtepi32_ps(_mm256_sub_epi32(q3, off))));
                _mm256_storeu_ps(y + l + 96, _mm256_mul_ps(_mm256_set1_ps(d * sc[is + 6]), _mm256_cvtepi32_ps(_mm256_sub_epi32(q4, off))));
            }
        }
    }
}

const lm_dequant_fn lm_dequant_avx2[LM_TYPE_COUNT_] = {
    [LM_TYPE_F16] = dq_f16,   [LM_TYPE_BF16] = dq_bf16, [LM_TYPE_Q8_0] = dq_q8_0,
    [LM_TYPE_Q4_0] = dq_q4_0, [LM_TYPE_Q4_K] = dq_q4_K, [LM_TYPE_Q6_K] = dq_q6_K,
};
#endif
