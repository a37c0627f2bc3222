/* The Q8_0 / Q4_0 dot-product kernels and their helpers, compiled once per
 * instruction set: the including file defines
 *   KTARGET     the function attribute with the target features, and
 *   KUDOT(a, b) 8 int32 sums of 4 products each of unsigned bytes a and
 *               signed bytes b (maddubs + madd on AVX2, vpdpbusd with VNNI).
 * Products never overflow 16 bits here (|w| <= 127 and activations >= -127),
 * so both definitions give the same sums, and results are bit-identical
 * across the instruction sets. */
KTARGET static inline float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* One fp16 scale to float in one instruction (the software conversion costs ~10). */
KTARGET static inline float half(uint16_t h) { return _cvtsh_ss(h); }

/* Sum of products of 32 signed bytes, as 8 int32 (the u8 x s8 instructions
 * need an unsigned operand: |a| and b with a's sign). */
KTARGET static inline __m256i dot_i8(__m256i a, __m256i b) {
    return KUDOT(_mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a));
}

/* Q8_0 and Q4_0 rows use two accumulators in registers, even blocks and
 * odd blocks, so two FMA chains overlap; dot4 keeps that order per token. */

/* The int32 lane sums of block b of a q8_0 row with its activations. */
KTARGET static inline __m256i q8_0_block(const block_q8_0 *w, const block_q8a *x, int64_t b) {
    return dot_i8(_mm256_loadu_si256((const __m256i *)w[b].qs), _mm256_loadu_si256((const __m256i *)x[b].qs));
}

/* Block b of a q4_0 row as 32 signed bytes: low nibbles (weights 0..15), then high (16..31), minus 8. */
KTARGET static inline __m256i q4_0_unpack(const block_q4_0 *w, int64_t b) {
    __m128i raw = _mm_loadu_si128((const __m128i *)w[b].qs);
    __m256i q = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), _mm256_set1_epi8(0x0F));
    return _mm256_sub_epi8(q, _mm256_set1_epi8(8));
}

#define FMA_BLOCK(acc, scale, sums) acc = _mm256_fmadd_ps(_mm256_set1_ps(scale), _mm256_cvtepi32_ps(sums), acc)

KTARGET static float dot_q8_0(const void *row, const void *act, int64_t n) {
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

KTARGET static float dot_q4_0(const void *row, const void *act, int64_t n) {
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
        __m256i p_ = KUDOT(aw, _mm256_sign_epi8(qx_, qw));                                                   \
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

KTARGET static void dot4_q8_0(const void *row, const void *act, size_t stride, int64_t n, float out[4]) {
    const block_q8_0 *w = row;
    DOT4_BODY(_mm256_loadu_si256((const __m256i *)w[b].qs))
}

KTARGET static void dot4_q4_0(const void *row, const void *act, size_t stride, int64_t n, float out[4]) {
    const block_q4_0 *w = row;
    DOT4_BODY(q4_0_unpack(w, b))
}

