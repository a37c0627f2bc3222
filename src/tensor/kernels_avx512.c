/* AVX-512 kernels: Q4_0 two blocks per 512-bit vpdpbusd (VNNI), with
 * activations in the block_q8_x2 layout made for it. Other types keep their
 * AVX2 kernels (kernels.c builds the table): 512-bit F16 and Q8_0 kernels
 * were tried and measured no faster, those types being bound by memory
 * bandwidth already (docs/performance.md). */
#if defined(__x86_64__)
#include "fp16.h"
#include "kernels.h"

#include <immintrin.h>
#include <string.h>

#define K512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))

/* [dw0 x 4, dw1 x 4, dw0 x 4, dw1 x 4] from two fp16 scales (idx). */
K512 static inline __m512 pair_scales(uint16_t d0, uint16_t d1, __m512i idx) {
    __m128 f = _mm_cvtph_ps(_mm_cvtsi32_si128((int)((uint32_t)d0 | (uint32_t)d1 << 16)));
    return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(f));
}

/* One pair's contribution: acc += (int sums) * dw * dx. */
#define PAIR_FMA(acc, sums, dw, a) acc = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(sums), dw), _mm512_loadu_ps((a).dx), acc)

/* Two Q4_0 blocks' 32 bytes as 64 unsigned nibbles: [b0 lo, b1 lo, b0 hi,
 * b1 hi]; vpdpbusd starts from the activations' -8 x lane sums. */
K512 static inline __m512i q4_0_pair(const block_q4_0 *w, int64_t b, int full) {
    __m128i r0 = _mm_loadu_si128((const __m128i *)w[b].qs);
    __m128i r1 = full ? _mm_loadu_si128((const __m128i *)w[b + 1].qs) : _mm_setzero_si128();
    __m256i r = _mm256_inserti128_si256(_mm256_castsi128_si256(r0), r1, 1);
    __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(r), _mm256_srli_epi16(r, 4), 1);
    return _mm512_and_si512(z, _mm512_set1_epi8(0x0F));
}

K512 static float dot_q4_0_x2(const void *row, const void *act, int64_t n) {
    const block_q4_0 *w = row;
    const block_q8_x2 *a = act;
    const __m512i idx = _mm512_set_epi32(1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int64_t nb = n / 32, p = 0;
    for (; 2 * p + 4 <= nb; p += 2) {
        const int64_t b = 2 * p;
        __m512i s0 = _mm512_dpbusd_epi32(_mm512_loadu_si512(a[p].corr), q4_0_pair(w, b, 1), _mm512_loadu_si512(a[p].qs));
        __m512i s1 = _mm512_dpbusd_epi32(_mm512_loadu_si512(a[p + 1].corr), q4_0_pair(w, b + 2, 1),
                                         _mm512_loadu_si512(a[p + 1].qs));
        PAIR_FMA(acc0, s0, pair_scales(w[b].d, w[b + 1].d, idx), a[p]);
        PAIR_FMA(acc1, s1, pair_scales(w[b + 2].d, w[b + 3].d, idx), a[p + 1]);
    }
    for (; 2 * p < nb; p++) {
        const int64_t b = 2 * p;
        int full = b + 1 < nb;
        __m512i s0 = _mm512_dpbusd_epi32(_mm512_loadu_si512(a[p].corr), q4_0_pair(w, b, full), _mm512_loadu_si512(a[p].qs));
        PAIR_FMA(acc0, s0, pair_scales(w[b].d, full ? w[b + 1].d : 0, idx), a[p]);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

const lm_kernels lm_kernels_avx512_vnni_only = {
    "avx512",
    {
        [LM_TYPE_Q4_0] = dot_q4_0_x2,
    },
    {0}, /* dot4: kernels.c drops AVX2's where the activation kind differs */
    NULL, /* attention and softmax: AVX2's */
    NULL,
    NULL,
    {
        [LM_TYPE_Q4_0] = LM_ACT_Q4_0_X2,
    },
};
#endif
