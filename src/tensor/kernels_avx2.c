/* AVX2 + FMA + F16C kernels. Each computes what its scalar twin in
 * kernels_scalar.c computes; integer sums are exact, float sums differ only
 * in order. Compiled for this instruction set per function, so the library
 * still runs on CPUs without it (the dispatcher never calls these there). */
#if defined(__x86_64__)
#include "fp16.h"
#include "kernels.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

#define AVX2 __attribute__((target("avx2,fma,f16c")))


/* 8 int32 sums of 4 products each of unsigned bytes a and signed bytes b.
 * Products never overflow 16 bits here (|w| <= 127 and activations >= -127). */
#define UDOT(a, b) _mm256_madd_epi16(_mm256_maddubs_epi16((a), (b)), _mm256_set1_epi16(1))

AVX2 static inline float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* One fp16 scale to float in one instruction (the software conversion costs ~10). */
AVX2 static inline float half(uint16_t h) { return _cvtsh_ss(h); }

/* Sum of products of 32 signed bytes, as 8 int32 (the u8 x s8 instructions
 * need an unsigned operand: |a| and b with a's sign). */
AVX2 static inline __m256i dot_i8(__m256i a, __m256i b) {
    return UDOT(_mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a));
}

/* Q8_0 and Q4_0 rows use two accumulators in registers, even blocks and
 * odd blocks, so two FMA chains overlap; dot4 keeps that order per token. */

/* The int32 lane sums of block b of a q8_0 row with its activations. */
AVX2 static inline __m256i q8_0_block(const block_q8_0 *w, const block_q8a *x, int64_t b) {
    return dot_i8(_mm256_loadu_si256((const __m256i *)w[b].qs), _mm256_loadu_si256((const __m256i *)x[b].qs));
}

/* Block b of a q4_0 row as 32 signed bytes: low nibbles (weights 0..15), then high (16..31), minus 8. */
AVX2 static inline __m256i q4_0_unpack(const block_q4_0 *w, int64_t b) {
    __m128i raw = _mm_loadu_si128((const __m128i *)w[b].qs);
    __m256i q = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), _mm256_set1_epi8(0x0F));
    return _mm256_sub_epi8(q, _mm256_set1_epi8(8));
}

#define FMA_BLOCK(acc, scale, sums) acc = _mm256_fmadd_ps(_mm256_set1_ps(scale), _mm256_cvtepi32_ps(sums), acc)

AVX2 static float dot_q8_0(const void *row, const void *act, int64_t n) {
    const block_q8_0 *w = row;
    const block_q8a *x = act;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t nb = n / 32, b = 0;
    for (; b + 2 <= nb; b += 2) {
        FMA_BLOCK(acc0, half(w[b].d) * x[b].d, q8_0_block(w, x, b));
        FMA_BLOCK(acc1, half(w[b + 1].d) * x[b + 1].d, q8_0_block(w, x, b + 1));
    }
    if (b < nb) FMA_BLOCK(acc0, half(w[b].d) * x[b].d, q8_0_block(w, x, b));
    return hsum_ps(_mm256_add_ps(acc0, acc1));
}

AVX2 static float dot_q4_0(const void *row, const void *act, int64_t n) {
    const block_q4_0 *w = row;
    const block_q8a *x = act;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t nb = n / 32, b = 0;
    for (; b + 2 <= nb; b += 2) {
        __m256i q0 = q4_0_unpack(w, b), q1 = q4_0_unpack(w, b + 1);
        FMA_BLOCK(acc0, half(w[b].d) * x[b].d, dot_i8(q0, _mm256_loadu_si256((const __m256i *)x[b].qs)));
        FMA_BLOCK(acc1, half(w[b + 1].d) * x[b + 1].d, dot_i8(q1, _mm256_loadu_si256((const __m256i *)x[b + 1].qs)));
    }
    if (b < nb) FMA_BLOCK(acc0, half(w[b].d) * x[b].d, dot_i8(q4_0_unpack(w, b), _mm256_loadu_si256((const __m256i *)x[b].qs)));
    return hsum_ps(_mm256_add_ps(acc0, acc1));
}

/* One weight block (signed bytes qw, scale dw) against block b of token t's
 * activations, into that token's accumulator. */
#define TOKEN_BLOCK(acc, t, qw, aw, dw, b)                                                                     \
    do {                                                                                                       \
        __m256i qx_ = _mm256_loadu_si256((const __m256i *)x[t][b].qs);                                         \
        __m256i p_ = UDOT(aw, _mm256_sign_epi8(qx_, qw));                                                   \
        FMA_BLOCK(acc, dw * x[t][b].d, p_);                                                                    \
    } while (0)

/* Four tokens, each with the even/odd accumulators of the single-token kernel. */
#define DOT4_BODY(UNPACK)                                                                                   \
    const block_q8a *x[4];                                                                                  \
    for (int t = 0; t < 4; t++) x[t] = (const block_q8a *)(const void *)((const uint8_t *)act + t * stride); \
    __m256 e0 = _mm256_setzero_ps(), e1 = e0, e2 = e0, e3 = e0, o0 = e0, o1 = e0, o2 = e0, o3 = e0;        \
    int64_t nb = n / 32;                                                                                    \
    for (int64_t b = 0; b < nb; b++) {                                                                      \
        __m256i qw = UNPACK;                                                                                \
        const __m256i aw = _mm256_sign_epi8(qw, qw);                                                        \
        float dw = half(w[b].d);                                                                            \
        if ((b & 1) == 0) {                                                                                 \
            TOKEN_BLOCK(e0, 0, qw, aw, dw, b);                                                              \
            TOKEN_BLOCK(e1, 1, qw, aw, dw, b);                                                              \
            TOKEN_BLOCK(e2, 2, qw, aw, dw, b);                                                              \
            TOKEN_BLOCK(e3, 3, qw, aw, dw, b);                                                              \
        } else {                                                                                            \
            TOKEN_BLOCK(o0, 0, qw, aw, dw, b);                                                              \
            TOKEN_BLOCK(o1, 1, qw, aw, dw, b);                                                              \
            TOKEN_BLOCK(o2, 2, qw, aw, dw, b);                                                              \
            TOKEN_BLOCK(o3, 3, qw, aw, dw, b);                                                              \
        }                                                                                                   \
    }                                                                                                       \
    out[0] = hsum_ps(_mm256_add_ps(e0, o0));                                                                \
    out[1] = hsum_ps(_mm256_add_ps(e1, o1));                                                                \
    out[2] = hsum_ps(_mm256_add_ps(e2, o2));                                                                \
    out[3] = hsum_ps(_mm256_add_ps(e3, o3));

AVX2 static void dot4_q8_0(const void *row, const void *act, size_t stride, int64_t n, float out[4]) {
    const block_q8_0 *w = row;
    DOT4_BODY(_mm256_loadu_si256((const __m256i *)w[b].qs))
}

AVX2 static void dot4_q4_0(const void *row, const void *act, size_t stride, int64_t n, float out[4]) {
    const block_q4_0 *w = row;
    DOT4_BODY(q4_0_unpack(w, b))
}



/* lm_quantize_q8a_ref's result: the same max, scale and product per value; round() as
 * trunc(s) + sign(s) where |s - trunc(s)| >= 0.5, exact where adding 0.5 would round. */
/* The largest magnitude of 32 values. */
AVX2 static inline __attribute__((always_inline)) float block_amax(const float *x) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 amax = _mm256_setzero_ps();
    for (int i = 0; i < 4; i++) amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + 8 * i)));
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

/* 32 values quantised with scale d as lm_quantize_q8a_ref quantises them:
 * the bytes in order in the return value, and their sum in *sum. */
AVX2 static inline __attribute__((always_inline)) __m256i quantize_block_with(const float *x, float d, int32_t *sum) {
    const __m256 sign = _mm256_set1_ps(-0.0f), half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    __m256 v[4];
    for (int i = 0; i < 4; i++) v[i] = _mm256_loadu_ps(x + 8 * i);
    const float id = d ? 1.0f / d : 0.0f;
    const __m256 vid = _mm256_set1_ps(id);
    __m256i q[4];
    for (int i = 0; i < 4; i++) {
        __m256 s = _mm256_mul_ps(v[i], vid);
        __m256 t = _mm256_round_ps(s, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
        __m256 frac = _mm256_andnot_ps(sign, _mm256_sub_ps(s, t));
        __m256 step = _mm256_or_ps(one, _mm256_and_ps(sign, s)); /* +-1, s's sign */
        t = _mm256_add_ps(t, _mm256_and_ps(_mm256_cmp_ps(frac, half, _CMP_GE_OQ), step));
        q[i] = _mm256_cvttps_epi32(t);
    }
    if (sum) { /* the int32 values before packing (within -127..127: packing does not clip them) */
        __m256i s8 = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s8), _mm256_extracti128_si256(s8, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
        *sum = _mm_cvtsi128_si32(s4);
    }
    /* packs work within 128-bit halves: the permute puts the 32 bytes back in order */
    __m256i r = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
    return _mm256_permutevar8x32_epi32(r, order);
}

/* The scale of the run of blocks starting at x (lm_quantize_q8a_ref). */
AVX2 static inline __attribute__((always_inline)) float run_scale(const float *x, int64_t run) {
    float amax = 0.0f;
    for (int64_t b = 0; b < run; b++) amax = fmaxf(amax, block_amax(x + 32 * b));
    return amax / 127;
}

AVX2 void lm_quantize_q8a_avx2(const float *x, block_q8a *y, int64_t nb) {
    const int64_t run = nb % 8 == 0 ? 8 : 1; /* blocks sharing a scale */
    for (int64_t b0 = 0; b0 < nb; b0 += run) {
        const float d = run_scale(x + 32 * b0, run);
        for (int64_t b = b0; b < b0 + run; b++) {
            y[b].d = d;
            _mm256_storeu_si256((__m256i *)y[b].qs, quantize_block_with(x + 32 * b, d, NULL));
        }
    }
}

AVX2 void lm_quantize_q8s_avx2(const float *x, block_q8s *y, int64_t nb) {
    const int64_t run = nb % 8 == 0 ? 8 : 1;
    for (int64_t b0 = 0; b0 < nb; b0 += run) {
        const float d = run_scale(x + 32 * b0, run);
        for (int64_t b = b0; b < b0 + run; b++) {
            y[b].d = d;
            _mm256_storeu_si256((__m256i *)y[b].qs, quantize_block_with(x + 32 * b, d, &y[b].sum));
        }
    }
}

/* lm_quantize_row(Q8_K)'s result, bit for bit: the value of largest
 * magnitude (the first, on a tie) sets iscale = -127 / max; each value is
 * iscale * x rounded to nearest even (cvtps's default, as nearest_int) and
 * capped at 127; bsums are exact integer sums; d = 1 / iscale. */
AVX2 void lm_quantize_q8_K_avx2(const float *x, block_q8_K *y, int64_t nb) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7), cap = _mm256_set1_epi32(127);
    for (int64_t b = 0; b < nb; b++, x += QK_K) {
        __m256 amax = _mm256_setzero_ps();
        for (int i = 0; i < QK_K; i += 8) amax = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)), amax);
        __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
        m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        m = _mm_max_ss(m, _mm_movehdup_ps(m));
        const float top = _mm_cvtss_f32(m);
        /* (maxps returns its second operand when either is NaN: NaN values
         * are passed over, as the reference's compare passes over them) */
        if (!(top > 0)) { /* all zero or NaN: the reference's zero block */
            memset(&y[b], 0, sizeof y[b]);
            continue;
        }
        float max = 0;
        const __m256 vtop = _mm256_set1_ps(top);
        for (int i = 0; i < QK_K; i += 8) { /* the first value whose magnitude is the maximum */
            int hit = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)), vtop, _CMP_EQ_OQ));
            if (hit) {
                max = x[i + __builtin_ctz((unsigned)hit)];
                break;
            }
        }
        const float iscale = -127.f / max;
        const __m256 vis = _mm256_set1_ps(iscale);
        for (int g = 0; g < QK_K; g += 32) {
            __m256i q[4];
            for (int i = 0; i < 4; i++) {
                q[i] = _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(vis, _mm256_loadu_ps(x + g + 8 * i))), cap);
            }
            /* 16 values a bsum: q[0], q[1] and q[2], q[3] */
            for (int h = 0; h < 2; h++) {
                __m256i s = _mm256_add_epi32(q[2 * h], q[2 * h + 1]);
                __m128i t = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
                t = _mm_hadd_epi32(t, t);
                t = _mm_hadd_epi32(t, t);
                y[b].bsums[g / 16 + h] = (int16_t)_mm_cvtsi128_si32(t);
            }
            __m256i r = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
            _mm256_storeu_si256((__m256i *)(y[b].qs + g), _mm256_permutevar8x32_epi32(r, order));
        }
        y[b].d = 1 / iscale;
    }
}

AVX2 static float dot_f32(const void *row, const void *act, int64_t n) {
    const float *a = row, *b = act;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
    }
    float sum = hsum_ps(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++) sum += a[i] * b[i];
    return sum;
}

AVX2 static float dot_f16(const void *row, const void *act, int64_t n) {
    const uint16_t *a = row;
    const float *b = act;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 w0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i)));
        __m256 w1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i + 8)));
        acc0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(b + i), acc0);
        acc1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(b + i + 8), acc1);
    }
    float sum = hsum_ps(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++) sum += lm_fp16_to_fp32(a[i]) * b[i];
    return sum;
}

AVX2 static inline __m256 load_bf16(const uint16_t *p) {
    __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

AVX2 static float dot_bf16(const void *row, const void *act, int64_t n) {
    const uint16_t *a = row;
    const float *b = act;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(load_bf16(a + i), _mm256_loadu_ps(b + i), acc0);
        acc1 = _mm256_fmadd_ps(load_bf16(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
    }
    float sum = hsum_ps(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++) sum += lm_bf16_to_fp32(a[i]) * b[i];
    return sum;
}

/* The 8 sub-block scales of a q4_K / q5_K block, and sum(min * activation
 * sums), the part the mins contribute. */
static int32_t k_scales_and_min_sum(const uint8_t *packed, const int16_t *bsums, uint8_t sc[8]) {
    int32_t summ = 0;
    for (int j = 0; j < 8; j++) {
        uint8_t m;
        lm_q4_K_scale_min(j, packed, &sc[j], &m);
        summ += m * (bsums[2 * j] + bsums[2 * j + 1]);
    }
    return summ;
}

AVX2 static float dot_q4_K(const void *row, const void *act, int64_t n) {
    const block_q4_K *w = row;
    const block_q8_K *x = act;
    const __m256i low = _mm256_set1_epi8(0x0F);
    __m256 acc = _mm256_setzero_ps();
    float mins = 0.0f;
    for (int64_t b = 0; b < n / QK_K; b++) {
        uint8_t sc[8];
        int32_t summ = k_scales_and_min_sum(w[b].scales, x[b].bsums, sc);
        __m256i sumi = _mm256_setzero_si256();
        for (int g = 0; g < 4; g++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(w[b].qs + 32 * g));
            __m256i q0 = _mm256_and_si256(q, low), q1 = _mm256_and_si256(_mm256_srli_epi16(q, 4), low);
            __m256i x0 = _mm256_loadu_si256((const __m256i *)(x[b].qs + 64 * g));
            __m256i x1 = _mm256_loadu_si256((const __m256i *)(x[b].qs + 64 * g + 32));
            __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(q0, x0), _mm256_set1_epi16(sc[2 * g]));
            __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(q1, x1), _mm256_set1_epi16(sc[2 * g + 1]));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p1));
        }
        /* the per-lane sums go into a float accumulator: one horizontal sum per row, not per block */
        acc = _mm256_fmadd_ps(_mm256_set1_ps(x[b].d * half(w[b].d)), _mm256_cvtepi32_ps(sumi), acc);
        mins += x[b].d * half(w[b].dmin) * (float)summ;
    }
    return hsum_ps(acc) - mins;
}

AVX2 static float dot_q5_K(const void *row, const void *act, int64_t n) {
    const block_q5_K *w = row;
    const block_q8_K *x = act;
    const __m256i low = _mm256_set1_epi8(0x0F), sixteen = _mm256_set1_epi8(16);
    __m256 acc = _mm256_setzero_ps();
    float mins = 0.0f;
    for (int64_t b = 0; b < n / QK_K; b++) {
        uint8_t sc[8];
        int32_t summ = k_scales_and_min_sum(w[b].scales, x[b].bsums, sc);
        const __m256i qh = _mm256_loadu_si256((const __m256i *)w[b].qh);
        __m256i sumi = _mm256_setzero_si256();
        for (int g = 0; g < 4; g++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(w[b].qs + 32 * g));
            /* the 5th bit of sub-block 2g is bit 2g of qh[l], of 2g+1 bit 2g+1 */
            __m256i h0 = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, _mm256_set1_epi8((char)(1 << (2 * g)))),
                                                            _mm256_set1_epi8((char)(1 << (2 * g)))), sixteen);
            __m256i h1 = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, _mm256_set1_epi8((char)(1 << (2 * g + 1)))),
                                                            _mm256_set1_epi8((char)(1 << (2 * g + 1)))), sixteen);
            __m256i q0 = _mm256_or_si256(_mm256_and_si256(q, low), h0);
            __m256i q1 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), low), h1);
            __m256i x0 = _mm256_loadu_si256((const __m256i *)(x[b].qs + 64 * g));
            __m256i x1 = _mm256_loadu_si256((const __m256i *)(x[b].qs + 64 * g + 32));
            __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(q0, x0), _mm256_set1_epi16(sc[2 * g]));
            __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(q1, x1), _mm256_set1_epi16(sc[2 * g + 1]));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p1));
        }
        /* the per-lane sums go into a float accumulator: one horizontal sum per row, not per block */
        acc = _mm256_fmadd_ps(_mm256_set1_ps(x[b].d * half(w[b].d)), _mm256_cvtepi32_ps(sumi), acc);
        mins += x[b].d * half(w[b].dmin) * (float)summ;
    }
    return hsum_ps(acc) - mins;
}

/* Σ scale * (q - 32) * x = Σ scale * q * x - 32 * Σ scale * bsum: q stays unsigned for maddubs. */
AVX2 static float dot_q6_K(const void *row, const void *act, int64_t n) {
    const block_q6_K *w = row;
    const block_q8_K *x = act;
    const __m256i low = _mm256_set1_epi8(0x0F), three = _mm256_set1_epi8(3);
    __m256 acc = _mm256_setzero_ps();
    float offsets = 0.0f;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const uint8_t *ql = w[b].ql, *qh = w[b].qh;
        const int8_t *sc = w[b].scales, *xq = x[b].qs;
        int32_t offset = 0;
        for (int j = 0; j < 16; j++) offset += sc[j] * x[b].bsums[j];
        __m256i sumi = _mm256_setzero_si256();
        for (int half = 0; half < 2; half++, ql += 64, qh += 32, sc += 8, xq += 128) {
            __m256i l0 = _mm256_loadu_si256((const __m256i *)ql), l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
            __m256i h = _mm256_loadu_si256((const __m256i *)qh);
            __m256i lows[4] = {_mm256_and_si256(l0, low), _mm256_and_si256(l1, low),
                               _mm256_and_si256(_mm256_srli_epi16(l0, 4), low), _mm256_and_si256(_mm256_srli_epi16(l1, 4), low)};
            for (int quarter = 0; quarter < 4; quarter++) {
                __m256i hi = _mm256_and_si256(_mm256_srli_epi16(h, 2 * quarter), three);
                __m256i q = _mm256_or_si256(lows[quarter], _mm256_slli_epi16(hi, 4));
                __m256i xv = _mm256_loadu_si256((const __m256i *)(xq + 32 * quarter));
                /* lane 0 holds weights l < 16 (scale 2q), lane 1 l >= 16 (scale 2q+1) */
                __m256i scales = _mm256_set_m128i(_mm_set1_epi16(sc[2 * quarter + 1]), _mm_set1_epi16(sc[2 * quarter]));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(q, xv), scales));
            }
        }
        const float d = half(w[b].d) * x[b].d;
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
        offsets += d * (float)(32 * offset);
    }
    return hsum_ps(acc) - offsets;
}

/* Four tokens against one F16 row; each token keeps dot_f16's two
 * accumulators (elements 0-7 and 8-15 of each 16) and its scalar tail, so
 * the sums are bit-identical. Named registers: arrays here get spilled. */
AVX2 static void dot4_f16(const void *row, const void *act, size_t stride, int64_t n, float out[4]) {
    const uint16_t *a = row;
    const float *x0 = act, *x1 = (const float *)(const void *)((const uint8_t *)act + stride);
    const float *x2 = (const float *)(const void *)((const uint8_t *)act + 2 * stride);
    const float *x3 = (const float *)(const void *)((const uint8_t *)act + 3 * stride);
    __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 w0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i)));
        __m256 w1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i + 8)));
        a00 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x0 + i), a00);
        a01 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x0 + i + 8), a01);
        a10 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x1 + i), a10);
        a11 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x1 + i + 8), a11);
        a20 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x2 + i), a20);
        a21 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x2 + i + 8), a21);
        a30 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x3 + i), a30);
        a31 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x3 + i + 8), a31);
    }
    float s0 = hsum_ps(_mm256_add_ps(a00, a01)), s1 = hsum_ps(_mm256_add_ps(a10, a11));
    float s2 = hsum_ps(_mm256_add_ps(a20, a21)), s3 = hsum_ps(_mm256_add_ps(a30, a31));
    for (; i < n; i++) {
        float w = lm_fp16_to_fp32(a[i]);
        s0 += w * x0[i];
        s1 += w * x1[i];
        s2 += w * x2[i];
        s3 += w * x3[i];
    }
    out[0] = s0;
    out[1] = s1;
    out[2] = s2;
    out[3] = s3;
}

/* ---- Attention over the KV cache: keys and values as floats, or as IEEE
 * halves (an f16 cache) that F16C converts exactly as they are loaded. */

AVX2 static inline __m256 load8_f16(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }

/* 8 (or 1) elements of a key or value row at element i: floats, or halves when half. */
AVX2 static inline __m256 load8_kv(const void *p, int64_t i, const int half) {
    return half ? load8_f16((const uint16_t *)p + i) : _mm256_loadu_ps((const float *)p + i);
}

static inline float load1_kv(const void *p, int64_t i, const int half) {
    return half ? lm_fp16_to_fp32(((const uint16_t *)p)[i]) : ((const float *)p)[i];
}

/* Four keys at a time share the loads of q; head sizes that are not a
 * multiple of 8 take the plain loop. k holds floats, or halves when half. */
AVX2 static inline __attribute__((always_inline)) void scores_any(float *att, const float *q, const void *k,
                                                                  int64_t stride, int64_t n, int64_t hd, float scale,
                                                                  const int half) {
    int64_t t = 0;
    if (hd % 8 == 0) {
        for (; t + 4 <= n; t += 4) {
            const int64_t k0 = t * stride, k1 = k0 + stride, k2 = k1 + stride, k3 = k2 + stride;
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (int64_t i = 0; i < hd; i += 8) {
                __m256 qi = _mm256_loadu_ps(q + i);
                a0 = _mm256_fmadd_ps(qi, load8_kv(k, k0 + i, half), a0);
                a1 = _mm256_fmadd_ps(qi, load8_kv(k, k1 + i, half), a1);
                a2 = _mm256_fmadd_ps(qi, load8_kv(k, k2 + i, half), a2);
                a3 = _mm256_fmadd_ps(qi, load8_kv(k, k3 + i, half), a3);
            }
            /* Four horizontal sums at once: (a0 a1 a2 a3) -> 4 floats. */
            __m256 h01 = _mm256_hadd_ps(a0, a1), h23 = _mm256_hadd_ps(a2, a3);
            __m256 h = _mm256_hadd_ps(h01, h23);
            __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
            _mm_storeu_ps(att + t, _mm_mul_ps(s4, _mm_set1_ps(scale)));
        }
        for (; t < n; t++) {
            if (!half) {
                att[t] = dot_f32(q, (const float *)k + t * stride, hd) * scale;
                continue;
            }
            __m256 a = _mm256_setzero_ps();
            for (int64_t i = 0; i < hd; i += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), load8_kv(k, t * stride + i, half), a);
            att[t] = hsum_ps(a) * scale;
        }
        return;
    }
    for (; t < n; t++) {
        float sum = 0.0f;
        for (int64_t i = 0; i < hd; i++) sum += q[i] * load1_kv(k, t * stride + i, half);
        att[t] = sum * scale;
    }
}

AVX2 static void attn_scores(float *att, const float *q, const float *k, int64_t stride, int64_t n, int64_t hd,
                             float scale) {
    scores_any(att, q, k, stride, n, hd, scale, 0);
}

AVX2 static void attn_scores_f16(float *att, const float *q, const uint16_t *k, int64_t stride, int64_t n, int64_t hd,
                                 float scale) {
    scores_any(att, q, k, stride, n, hd, scale, 1);
}

/* The output stays in registers, 32 floats at a time, while all n values
 * stream past; v holds floats, or IEEE halves when half. */
AVX2 static inline __attribute__((always_inline)) void values_any(float *out, const float *att, const void *v,
                                                                  int64_t stride, int64_t n, int64_t hd, const int half) {
    int64_t i = 0;
    for (; i + 32 <= hd; i += 32) {
        __m256 o0 = _mm256_setzero_ps(), o1 = o0, o2 = o0, o3 = o0;
        for (int64_t t = 0; t < n; t++) {
            const int64_t at = t * stride + i;
            __m256 a = _mm256_broadcast_ss(att + t);
            o0 = _mm256_fmadd_ps(a, load8_kv(v, at, half), o0);
            o1 = _mm256_fmadd_ps(a, load8_kv(v, at + 8, half), o1);
            o2 = _mm256_fmadd_ps(a, load8_kv(v, at + 16, half), o2);
            o3 = _mm256_fmadd_ps(a, load8_kv(v, at + 24, half), o3);
        }
        _mm256_storeu_ps(out + i, o0);
        _mm256_storeu_ps(out + i + 8, o1);
        _mm256_storeu_ps(out + i + 16, o2);
        _mm256_storeu_ps(out + i + 24, o3);
    }
    for (; i + 8 <= hd; i += 8) {
        __m256 o = _mm256_setzero_ps();
        for (int64_t t = 0; t < n; t++) o = _mm256_fmadd_ps(_mm256_broadcast_ss(att + t), load8_kv(v, t * stride + i, half), o);
        _mm256_storeu_ps(out + i, o);
    }
    for (; i < hd; i++) {
        float o = 0.0f;
        for (int64_t t = 0; t < n; t++) o += att[t] * load1_kv(v, t * stride + i, half);
        out[i] = o;
    }
}

AVX2 static void attn_values(float *out, const float *att, const float *v, int64_t stride, int64_t n, int64_t hd) {
    values_any(out, att, v, stride, n, hd, 0);
}

AVX2 static void attn_values_f16(float *out, const float *att, const uint16_t *v, int64_t stride, int64_t n, int64_t hd) {
    values_any(out, att, v, stride, n, hd, 1);
}

/* F16C rounds to nearest even, as lm_fp32_to_fp16 does (NaNs stay NaN, their
 * payload bits may differ). */
AVX2 static void to_f16(uint16_t *dst, const float *src, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    }
    for (; i < n; i++) dst[i] = lm_fp32_to_fp16(src[i]);
}

AVX2 static void from_f16(float *dst, const uint16_t *src, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load8_f16(src + i));
    for (; i < n; i++) dst[i] = lm_fp16_to_fp32(src[i]);
}

/* The scalar rope's values (lm_rope_fn), 4 pairs a vector: each lane's two
 * products as the scalar code rounds them, the second negated in the even
 * lanes, then their sum. The angles' cosines and sines are spread once per
 * 8 values for all heads. */
AVX2 static void rope(float *x, int64_t n_heads, int64_t head_dim, int64_t rope_dim, const float *cos_sin) {
    const __m256 even_sign = _mm256_castsi256_ps(_mm256_setr_epi32(INT32_MIN, 0, INT32_MIN, 0, INT32_MIN, 0, INT32_MIN, 0));
    const int64_t whole = rope_dim / 8 * 8;
    for (int64_t i = 0; i < whole; i += 8) {
        const __m256 cs = _mm256_loadu_ps(cos_sin + i);
        const __m256 c = _mm256_moveldup_ps(cs), s = _mm256_movehdup_ps(cs);
        for (int64_t h = 0; h < n_heads; h++) {
            float *v = x + h * head_dim + i;
            const __m256 a = _mm256_loadu_ps(v);
            const __m256 q = _mm256_mul_ps(_mm256_permute_ps(a, 0xB1), s);
            _mm256_storeu_ps(v, _mm256_add_ps(_mm256_mul_ps(a, c), _mm256_xor_ps(q, even_sign)));
        }
    }
    for (int64_t h = 0; h < n_heads; h++) {
        float *v = x + h * head_dim;
        for (int64_t i = whole / 2; i < rope_dim / 2; i++) {
            const float c = cos_sin[2 * i], s = cos_sin[2 * i + 1], a = v[2 * i], b = v[2 * i + 1];
            v[2 * i] = a * c - b * s;
            v[2 * i + 1] = a * s + b * c;
        }
    }
}

/* The scalar rmsnorm's bits (lm_rmsnorm_fn): the 32 partial sums in 8
 * registers of 4 doubles (squares of floats are exact in double, so a
 * fused multiply-add rounds as the scalar add does), then the scale as the
 * scalar code rounds it, 8 values a vector. */
AVX2 static double sum_of_squares(const float *x, int64_t n) {
    __m256d acc[8];
    for (int u = 0; u < 8; u++) acc[u] = _mm256_setzero_pd();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        for (int u = 0; u < 8; u++) {
            const __m256d v = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 4 * u));
            acc[u] = _mm256_fmadd_pd(v, v, acc[u]);
        }
    }
    double p[32];
    for (int u = 0; u < 8; u++) _mm256_storeu_pd(p + 4 * u, acc[u]);
    return lm_sum_of_squares_finish(p, x, i, n);
}

AVX2 static void rmsnorm(float *out, const float *x, const float *weight, int64_t n, float eps) {
    const float scale = (float)(1.0 / sqrt(sum_of_squares(x, n) / (double)n + eps));
    const __m256 vs = _mm256_set1_ps(scale);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vs), _mm256_loadu_ps(weight + i)));
    for (; i < n; i++) out[i] = x[i] * scale * weight[i];
}

AVX2 static void add(float *x, const float *a, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_add_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(a + i)));
    for (; i < n; i++) x[i] += a[i];
}

/* e^x for x <= 0 (softmax arguments), within 2 ulp: x = n ln2 + r with
 * |r| <= ln2 / 2, e^r by a degree-6 polynomial, 2^n through the exponent
 * bits. Below -87.3 the result is 0 (as expf's underflow to 0 matters
 * not at all next to the maximum's 1). */
AVX2 static inline __m256 exp_nonpositive(__m256 x) {
    const __m256 log2e = _mm256_set1_ps(1.44269504088896341f);
    const __m256 ln2_hi = _mm256_set1_ps(0.693359375f), ln2_lo = _mm256_set1_ps(-2.12194440e-4f);
    __m256 below = _mm256_cmp_ps(x, _mm256_set1_ps(-87.3f), _CMP_LT_OQ);
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.3f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, ln2_hi, x);
    r = _mm256_fnmadd_ps(n, ln2_lo, r);
    /* Taylor coefficients 1/k!, Horner form. */
    __m256 p = _mm256_set1_ps(1.0f / 720);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(below, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

/* The scalar table's column softmax (lm_softmax_exp_cols_fn), 8 columns a
 * vector, as the AVX-512 one runs it: per column vector, the rows every
 * column sees (up to first) 4 at a time into 4 maxima and 4 sums (one chain
 * down the rows waits on each max's and add's latency), the float sums
 * folded into double every 64 rows; then the band below, where the columns
 * that see row r are the lanes from r - first - c0 up, a row at a time
 * under a mask. A width's last partial vector goes through a buffer. */
AVX2 static inline __m256 cols_load(const float *p, int64_t k, float *buf) {
    if (k == 8) return _mm256_loadu_ps(p);
    memset(buf, 0, 8 * sizeof *buf);
    memcpy(buf, p, (size_t)k * sizeof *buf);
    return _mm256_loadu_ps(buf);
}

AVX2 static inline void cols_store(float *p, int64_t k, __m256 v, float *buf) {
    if (k == 8) {
        _mm256_storeu_ps(p, v);
        return;
    }
    _mm256_storeu_ps(buf, v);
    memcpy(p, buf, (size_t)k * sizeof *buf);
}

AVX2 static inline void cols_fold(__m256 t, __m256d *lo, __m256d *hi) {
    *lo = _mm256_add_pd(*lo, _mm256_cvtps_pd(_mm256_castps256_ps128(t)));
    *hi = _mm256_add_pd(*hi, _mm256_cvtps_pd(_mm256_extractf128_ps(t, 1)));
}

AVX2 static void softmax_exp_cols(float *s, int64_t rows, int64_t width, int64_t first, float scale, float *sums) {
    const __m256 vscale = _mm256_set1_ps(scale);
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const int64_t full = first + 1 < rows ? first + 1 : rows; /* rows 0 .. full - 1: seen by every column */
    float buf[8];
    for (int64_t c0 = 0; c0 < width; c0 += 8) {
        const int64_t k = width - c0 < 8 ? width - c0 : 8;
        float *col = s + c0;
        __m256 m[4];
        for (int u = 0; u < 4; u++) m[u] = _mm256_set1_ps(-INFINITY);
        int64_t r = 0;
        for (; r + 4 <= full; r += 4) {
            for (int u = 0; u < 4; u++) m[u] = _mm256_max_ps(m[u], cols_load(col + (r + u) * width, k, buf));
        }
        for (; r < rows; r++) {
            /* column c0 + lane sees row r when lane >= r - first - c0 (kept in -1..8) */
            int64_t from = r - first - c0;
            from = from < -1 ? -1 : from > 8 ? 8 : from;
            const __m256 seen = _mm256_castsi256_ps(_mm256_cmpgt_epi32(lane, _mm256_set1_epi32((int)from - 1)));
            m[0] = _mm256_blendv_ps(m[0], _mm256_max_ps(m[0], cols_load(col + r * width, k, buf)), seen);
        }
        const __m256 max = _mm256_max_ps(_mm256_max_ps(m[0], m[1]), _mm256_max_ps(m[2], m[3]));
        __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
        __m256 a[4];
        for (int u = 0; u < 4; u++) a[u] = _mm256_setzero_ps();
        r = 0;
        for (int64_t run = 0; r + 4 <= full; r += 4) {
            for (int u = 0; u < 4; u++) {
                float *p = col + (r + u) * width;
                const __m256 e = exp_nonpositive(_mm256_mul_ps(_mm256_sub_ps(cols_load(p, k, buf), max), vscale));
                cols_store(p, k, e, buf);
                a[u] = _mm256_add_ps(a[u], e);
            }
            if (++run == 16) { /* 64 rows */
                cols_fold(_mm256_add_ps(_mm256_add_ps(a[0], a[1]), _mm256_add_ps(a[2], a[3])), &lo, &hi);
                for (int u = 0; u < 4; u++) a[u] = _mm256_setzero_ps();
                run = 0;
            }
        }
        for (; r < rows; r++) {
            int64_t from = r - first - c0;
            from = from < -1 ? -1 : from > 8 ? 8 : from;
            const __m256 seen = _mm256_castsi256_ps(_mm256_cmpgt_epi32(lane, _mm256_set1_epi32((int)from - 1)));
            float *p = col + r * width;
            const __m256 e = _mm256_and_ps(exp_nonpositive(_mm256_mul_ps(_mm256_sub_ps(cols_load(p, k, buf), max), vscale)), seen);
            cols_store(p, k, e, buf);
            a[r % 4] = _mm256_add_ps(a[r % 4], e);
        }
        cols_fold(_mm256_add_ps(_mm256_add_ps(a[0], a[1]), _mm256_add_ps(a[2], a[3])), &lo, &hi);
        double d[8];
        _mm256_storeu_pd(d, lo);
        _mm256_storeu_pd(d + 4, hi);
        for (int64_t j = c0; j < c0 + k; j++) sums[j] = (float)d[j - c0];
    }
}

AVX2 static double softmax_exp(float *x, int64_t n, float scale) {
    float max = x[0];
    int64_t i = 0;
    if (n >= 8) { /* the same maximum, 8 lanes at a time (max is exact in any order) */
        __m256 m = _mm256_loadu_ps(x);
        for (i = 8; i + 8 <= n; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(x + i));
        __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        max = _mm_cvtss_f32(_mm_max_ss(h, _mm_movehdup_ps(h)));
    }
    for (; i < n; i++) max = x[i] > max ? x[i] : max;
    const __m256 vmax = _mm256_set1_ps(max), vscale = _mm256_set1_ps(scale);
    __m256 acc = _mm256_setzero_ps();
    i = 0;
    for (; i + 8 <= n; i += 8) {
        /* (a multiply by 1 changes nothing: softmax's values stay as they were) */
        __m256 e = exp_nonpositive(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vmax), vscale));
        _mm256_storeu_ps(x + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    double sum = hsum_ps(acc);
    for (; i < n; i++) {
        x[i] = expf((x[i] - max) * scale);
        sum += x[i];
    }
    return sum;
}

AVX2 static void softmax(float *x, int64_t n) {
    const double sum = softmax_exp(x, n, 1.0f);
    const __m256 inv = _mm256_set1_ps((float)(1.0 / sum));
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
    for (; i < n; i++) x[i] *= (float)(1.0 / sum);
}

/* silu(g) = g * sigmoid(g), with e = e^-|g| (never overflows):
 * sigmoid(g) = 1 / (1 + e) for g >= 0, e / (1 + e) below. */
AVX2 static void swiglu(float *gate, const float *up, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 g = _mm256_loadu_ps(gate + i);
        const __m256 e = exp_nonpositive(_mm256_or_ps(g, sign)); /* e^-|g| */
        const __m256 negative = _mm256_cmp_ps(g, _mm256_setzero_ps(), _CMP_LT_OQ);
        const __m256 sig = _mm256_div_ps(_mm256_blendv_ps(one, e, negative), _mm256_add_ps(one, e));
        _mm256_storeu_ps(gate + i, _mm256_mul_ps(_mm256_mul_ps(g, sig), _mm256_loadu_ps(up + i)));
    }
    for (; i < n; i++) {
        float g = gate[i];
        gate[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

const lm_kernels lm_kernels_avx2 = {
    "avx2",
    {
        [LM_TYPE_F32] = dot_f32,
        [LM_TYPE_F16] = dot_f16,
        [LM_TYPE_BF16] = dot_bf16,
        [LM_TYPE_Q8_0] = dot_q8_0,
        [LM_TYPE_Q4_0] = dot_q4_0,
        [LM_TYPE_Q4_K] = dot_q4_K,
        [LM_TYPE_Q5_K] = dot_q5_K,
        [LM_TYPE_Q6_K] = dot_q6_K,
    },
    {
        [LM_TYPE_F16] = dot4_f16,
        [LM_TYPE_Q8_0] = dot4_q8_0,
        [LM_TYPE_Q4_0] = dot4_q4_0,
    },
    {0}, /* no x16 kernels: nothing is packed for AVX2 */
    attn_scores,
    attn_values,
    attn_scores_f16,
    attn_values_f16,
    to_f16,
    from_f16,
    softmax,
    swiglu,
    {0}, /* activation kinds: lm_act_kind_for's */
    {0}, /* no x16 kernels, no pairs */
    softmax_exp,
    {0}, /* no x16 kernels, no x32 */
    rope,
    softmax_exp_cols,
    rmsnorm,
    add,
    lm_rope_cols_ref, /* (AVX2 prefill attention is the scalar GEMM's kernel anyway) */
};
#endif
