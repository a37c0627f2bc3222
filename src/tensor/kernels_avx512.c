/* AVX-512 kernels (VNNI):
 *  - x16 kernels for F16, Q4_0, Q8_0, Q4_K and Q6_K matrices the loader re-laid 16 rows at a
 *    time (packed.h): what decoding uses for those types;
 *  - Q4_0 two blocks per 512-bit vpdpbusd on GGUF's own layout, with
 *    activations in the block_q8_x2 layout made for it (LLMOS_REPACK=0);
 *  - Q4_K and Q6_K on GGUF's layout;
 *  - attention scores and values over the f32 KV cache, 16 keys at a time.
 * Other types keep their AVX2 kernels (kernels.c builds the table): 512-bit
 * F16 and row-wise Q8_0 kernels were tried and measured no faster
 * (docs/performance.md). */
#if defined(__x86_64__)
#include "../base/scratch.h"
#include "fp16.h"
#include "kernels.h"
#include "packed.h"
#include "quant_blocks.h"

#include <immintrin.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

/* (prfchw: __builtin_prefetch(p, 1) becomes PREFETCHW, which every AVX-512
 * CPU has; older ones run its encoding as a NOP) */
#define K512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c,prfchw")))

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

/* K-quants take Q8_K activations in their natural order: a 64-weight group
 * (32 bytes of nibbles, or 64 of Q6_K's low and high bits) lines up with 64
 * activation bytes, one vpdpbusd. Each int32 lane then holds 4 products of
 * one 16- or 32-weight sub-block; these sums fit in 16 bits, so vpmaddwd
 * against [scale, 0] pairs multiplies each lane by its sub-block's scale. */

/* The 8 six-bit scales and 8 mins of a q4_K block, unpacked from 12 bytes:
 * bytes 0..7 of out the scales, 8..15 the mins. */
static inline void q4_K_unpack_scales(const uint8_t *packed, uint32_t out[4]) {
    uint32_t u[3];
    memcpy(u, packed, 12);
    const uint32_t six = 0x3f3f3f3f, low4 = 0x0f0f0f0f, top2 = 0x03030303;
    out[0] = u[0] & six;
    out[1] = (u[2] & low4) | (((u[0] >> 6) & top2) << 4);
    out[2] = u[1] & six;
    out[3] = ((u[2] >> 4) & low4) | (((u[1] >> 6) & top2) << 4);
}

K512 static float dot_q4_K_512(const void *row, const void *act, int64_t n) {
    const block_q4_K *w = row;
    const block_q8_K *x = act;
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    /* lanes 0-7 take sub-block 2g's scale, 8-15 sub-block 2g+1's */
    const __m512i pick0 = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512i two = _mm512_set1_epi32(2);
    __m512 acc = _mm512_setzero_ps();
    __m128 acc_min = _mm_setzero_ps();
    for (int64_t b = 0; b < n / QK_K; b++) {
        uint32_t u[4];
        q4_K_unpack_scales(w[b].scales, u);
        const __m128i sc16 = _mm_cvtepu8_epi16(_mm_set_epi32(0, 0, (int)u[1], (int)u[0]));
        const __m128i m16 = _mm_cvtepu8_epi16(_mm_set_epi32(0, 0, (int)u[3], (int)u[2]));
        /* mins x activation sums of each 32 (pairs of the 16-sums) */
        __m128i pair_sums = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)x[b].bsums),
                                           _mm_loadu_si128((const __m128i *)(x[b].bsums + 8)));
        __m128i mins = _mm_madd_epi16(m16, pair_sums);
        acc_min = _mm_fmadd_ps(_mm_set1_ps(x[b].d * _cvtsh_ss(w[b].dmin)), _mm_cvtepi32_ps(mins), acc_min);
        /* scales as int32 lanes with a zero high half: [sc, 0] int16 pairs */
        const __m512i sc32 = _mm512_castsi256_si512(_mm256_cvtepu16_epi32(sc16));
        __m512i idx = pick0, sumi = _mm512_setzero_si512();
        for (int g = 0; g < 4; g++, idx = _mm512_add_epi32(idx, two)) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(w[b].qs + 32 * g));
            __m512i z = _mm512_and_si512(_mm512_inserti64x4(_mm512_castsi256_si512(q), _mm256_srli_epi16(q, 4), 1), low4);
            __m512i dp = _mm512_dpbusd_epi32(_mm512_setzero_si512(), z, _mm512_loadu_si512(x[b].qs + 64 * g));
            sumi = _mm512_add_epi32(sumi, _mm512_madd_epi16(dp, _mm512_permutexvar_epi32(idx, sc32)));
        }
        acc = _mm512_fmadd_ps(_mm512_set1_ps(x[b].d * _cvtsh_ss(w[b].d)), _mm512_cvtepi32_ps(sumi), acc);
    }
    __m128 m = _mm_add_ps(acc_min, _mm_movehl_ps(acc_min, acc_min));
    m = _mm_add_ss(m, _mm_movehdup_ps(m));
    return _mm512_reduce_add_ps(acc) - _mm_cvtss_f32(m);
}

/* Q6_K: Σ sc (q - 32) x = Σ sc q x - 32 Σ sc bsum; q (0..63) stays unsigned. */
K512 static float dot_q6_K_512(const void *row, const void *act, int64_t n) {
    const block_q6_K *w = row;
    const block_q8_K *x = act;
    const __m512i low4 = _mm512_set1_epi8(0x0F), three = _mm512_set1_epi8(3);
    /* zmm k of a block covers scales 4k..4k+3, four lanes each */
    const __m512i pick0 = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
    const __m512i four = _mm512_set1_epi32(4);
    __m512 acc = _mm512_setzero_ps();
    __m256 acc_off = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / QK_K; b++) {
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)w[b].scales));
        __m256i off = _mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)x[b].bsums));
        const float d = _cvtsh_ss(w[b].d) * x[b].d;
        acc_off = _mm256_fmadd_ps(_mm256_set1_ps(d * 32), _mm256_cvtepi32_ps(off), acc_off);
        const __m512i sc32 = _mm512_cvtepu16_epi32(sc16); /* [sc, 0] int16 pairs */
        __m512i idx = pick0, sumi = _mm512_setzero_si512();
        for (int h = 0; h < 2; h++) {
            __m512i l = _mm512_loadu_si512(w[b].ql + 64 * h);
            __m256i hb = _mm256_loadu_si256((const __m256i *)(w[b].qh + 32 * h));
            /* quarters 0, 1: low nibbles of ql[0..31], ql[32..63]; high bits 0-1, 2-3 of qh */
            __m512i h01 = _mm512_inserti64x4(_mm512_castsi256_si512(hb), _mm256_srli_epi16(hb, 2), 1);
            __m512i h23 = _mm512_srli_epi16(h01, 4); /* bits 4-5, 6-7 */
            __m512i q01 = _mm512_or_si512(_mm512_and_si512(l, low4), _mm512_slli_epi16(_mm512_and_si512(h01, three), 4));
            __m512i q23 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), low4),
                                          _mm512_slli_epi16(_mm512_and_si512(h23, three), 4));
            __m512i dp01 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q01, _mm512_loadu_si512(x[b].qs + 128 * h));
            __m512i dp23 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q23, _mm512_loadu_si512(x[b].qs + 128 * h + 64));
            sumi = _mm512_add_epi32(sumi, _mm512_madd_epi16(dp01, _mm512_permutexvar_epi32(idx, sc32)));
            idx = _mm512_add_epi32(idx, four);
            sumi = _mm512_add_epi32(sumi, _mm512_madd_epi16(dp23, _mm512_permutexvar_epi32(idx, sc32)));
            idx = _mm512_add_epi32(idx, four);
        }
        acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc);
    }
    __m128 o = _mm_add_ps(_mm256_castps256_ps128(acc_off), _mm256_extractf128_ps(acc_off, 1));
    o = _mm_add_ps(o, _mm_movehl_ps(o, o));
    o = _mm_add_ss(o, _mm_movehdup_ps(o));
    return _mm512_reduce_add_ps(acc) - _mm_cvtss_f32(o);
}

/* ---- x16 kernels: 16 interleaved rows at a time (packed.h) ----
 * Per 32-weight block and token: the 16 rows' integer sums build up in the
 * lanes of one register, 4 weights a vpdpbusd against 4 broadcast
 * activations, starting from -offset x the activations' block sum; then one
 * convert and one multiply-add scale all 16. One chain of 8 vpdpbusd per
 * token and block: the tokens' (or, for one token, two groups') chains are
 * independent, and two chains of 4 with an add measured no faster.
 * The loops over tokens and over a block's vectors are unrolled (gcc -O2
 * would keep them as loops with the arrays on the stack: half the speed). */

/* Asks for the bytes [p, p + n) in L1 ahead of use (prefetches past the end
 * of a buffer are harmless: they never fault). Always inlined: as a plain
 * static inline function gcc 12 inlined it into the kernels and dropped
 * the prefetch instructions, so none of them ran until 2026-11-30. */
K512 static inline __attribute__((always_inline)) void prefetch_bytes(const void *p, size_t n) {
    for (size_t o = 0; o < n; o += 64) _mm_prefetch((const char *)p + o, _MM_HINT_T0);
}

/* Four activation bytes as one int32, read in place: _mm512_set1_epi32 of
 * one becomes a broadcast load. Copied into an int32_t array first, gcc
 * moved each through a general register (vpbroadcastd from a GPR), which
 * measured 20% slower at 4 and 8 tokens (Q8_0, one thread, in cache). */
typedef int32_t __attribute__((may_alias, aligned(1))) i32_bytes;


/* The n_tok activation vectors' block b. */
#define X16_TOKEN(act, stride, t, b) ((const block_q8s *)((const uint8_t *)(act) + (size_t)(t) * (stride)) + (b))

/* Q4_0 (nibbles = 1) and Q8_0 (nibbles = 0) x16 blocks: both hold the 16
 * rows' scales, then their quant bytes (packed.h). Per block, v[0..3] get
 * the rows' values 0..15 and v[4..7] values 16..31 (Q4_0: the low and high
 * nibbles; Q8_0: the block's two halves), which vpdpbusd takes as unsigned:
 * Q4_0's 0..15 stand for -8..7, Q8_0's bytes hold the value + 128, and the
 * sums start from that offset x the activations' block sum. */
_Static_assert(offsetof(block_q4_0x16, qs) == 32 && offsetof(block_q8_0x16, qs) == 32,
               "x16 Q4_0 and Q8_0 blocks start with 16 fp16 scales");

/* The block's 16 rows x 32 values as 8 vectors of unsigned bytes (see
 * above), and its 16 row scales. */
K512 static inline __attribute__((always_inline)) __m512 q8s_unpack(const uint8_t *blk, const int nibbles, __m512i v[8]) {
    const uint8_t *qs = blk + 32;
    if (nibbles) {
        const __m512i low4 = _mm512_set1_epi8(0x0F);
#pragma GCC unroll 8
        for (int k = 0; k < 4; k++) {
            __m512i bytes = _mm512_loadu_si512(qs + 64 * k);
            v[k] = _mm512_and_si512(bytes, low4);
            v[4 + k] = _mm512_and_si512(_mm512_srli_epi16(bytes, 4), low4);
        }
    } else {
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++) v[k] = _mm512_loadu_si512(qs + 64 * k);
    }
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)blk));
}

/* The float steps, shared by every Q4_0 and Q8_0 x16 kernel so that they
 * agree bit for bit: the activations' blocks come in runs that share a
 * scale (8 blocks where the row is whole runs, else 1: lm_quantize_q8a_ref);
 * per block, part += (integer sums) x dw (the rows' scales), and per run,
 * acc += part x the run's scale. One multiply by the activations' scale per
 * run, not per block: the 110M shape's Q8_0 prompt kernel 72-73 -> 78-80%
 * of the int8 peak (one thread). */
static inline int64_t q8s_run(int64_t nb) { return nb % 8 == 0 ? 8 : 1; }

K512 static inline __attribute__((always_inline)) __m512 q8s_part(__m512 part, __m512i s, __m512 dw) {
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), dw, part);
}

K512 static inline __attribute__((always_inline)) __m512 q8s_run_end(__m512 acc, __m512 part, const block_q8s *x) {
    return _mm512_fmadd_ps(part, _mm512_set1_ps(x->d), acc);
}

/* part += the 16 rows' dot products with token block x, times the rows'
 * scales dw. */
K512 static inline __attribute__((always_inline)) __m512 q8s_block(__m512 part, const __m512i v[8], __m512 dw,
                                                                 const block_q8s *x, const int nibbles) {
    const i32_bytes *q = (const i32_bytes *)x->qs;
    __m512i s = _mm512_set1_epi32(-(nibbles ? 8 : 128) * x->sum);
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++) s = _mm512_dpbusd_epi32(s, v[k], _mm512_set1_epi32(q[k]));
    return q8s_part(part, s, dw);
}

K512 static inline __attribute__((always_inline)) void q8s_x16_tokens(const uint8_t *w, size_t block_bytes,
                                                                    const int nibbles, const void *act, size_t stride,
                                                                    int64_t nb, const int T, float *y, int64_t ldy) {
    /* the sums kept in y between runs: with 8 tokens' acc and part in
     * registers as well as the block's 8 vectors, the compiler spilled in
     * the inner loop (8 tokens: 64 -> 53% of the int8 peak) */
    __m512 part[8];
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) _mm512_storeu_ps(y + t * ldy, _mm512_setzero_ps());
    const int64_t run = q8s_run(nb);
    for (int64_t b0 = 0; b0 < nb; b0 += run) {
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) part[t] = _mm512_setzero_ps();
        for (int64_t b = b0; b < b0 + run; b++) {
            const uint8_t *blk = w + (size_t)b * block_bytes;
            /* With 2 or more tokens a block is enough work that the loads of
             * blocks further on wait: prefetching 16 blocks ahead (into the
             * next group, which this thread takes next) made 8 tokens over a
             * 142 MB Q8_0 matrix 1.4 times faster (3.45 -> 2.5 ms, 2 threads).
             * One token comes here alone only for a group without a partner
             * (decode takes groups in pairs: q8s_x16_pair, which prefetches). */
            if (T > 1) {
                prefetch_bytes(blk + 16 * block_bytes, block_bytes);
            }
            __m512i v[8];
            const __m512 dw = q8s_unpack(blk, nibbles, v);
#pragma GCC unroll 8
            for (int t = 0; t < T; t++) part[t] = q8s_block(part[t], v, dw, X16_TOKEN(act, stride, t, b), nibbles);
        }
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            const __m512 prev = _mm512_loadu_ps(y + t * ldy);
            _mm512_storeu_ps(y + t * ldy, q8s_run_end(prev, part[t], X16_TOKEN(act, stride, t, b0)));
        }
    }
}

/* One token against two groups (lm_dot_x16_pair_fn): the same arithmetic
 * as q8s_x16_tokens with T = 1, the activations' broadcasts shared. Q4_0's
 * streams are prefetched 16 blocks (4.6 KB) ahead: on 2 threads, 1.1B
 * decode 66-73 -> 82-87 tok/s in alternating runs; 200 Q4_0 2048 x 2048
 * matrices one after another streamed at 53 GB/s instead of 42, the
 * hardware's prefetchers restarting at every matrix (and, in a faster
 * spell, 108-111 -> 113-116 tok/s). Q8_0's 544-byte blocks stream faster
 * without: prefetching 4, 8 or 16 blocks ahead, 1.1B decode 58-61 tok/s
 * against 63-65 without, 110M 477-489 against 539-578 (alternating runs
 * with the bandwidth probe at 70-77 GB/s; in a slower spell the prefetch
 * had measured 42-51 -> 44-52, within that spell's noise). */
K512 static inline __attribute__((always_inline)) void q8s_x16_pair(const uint8_t *wa, const uint8_t *wb, size_t block_bytes,
                                                                  const int nibbles, const void *act, int64_t nb,
                                                                  float *ya, float *yb) {
    __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
    const int64_t run = q8s_run(nb);
    for (int64_t b0 = 0; b0 < nb; b0 += run) {
        __m512 part[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
        for (int64_t b = b0; b < b0 + run; b++) {
            const block_q8s *x = (const block_q8s *)act + b;
            if (nibbles) {
                prefetch_bytes(wa + (size_t)(b + 16) * block_bytes, block_bytes);
                prefetch_bytes(wb + (size_t)(b + 16) * block_bytes, block_bytes);
            }
#pragma GCC unroll 2
            for (int gi = 0; gi < 2; gi++) {
                __m512i v[8];
                const __m512 dw = q8s_unpack((gi ? wb : wa) + (size_t)b * block_bytes, nibbles, v);
                part[gi] = q8s_block(part[gi], v, dw, x, nibbles);
            }
        }
#pragma GCC unroll 2
        for (int gi = 0; gi < 2; gi++) acc[gi] = q8s_run_end(acc[gi], part[gi], (const block_q8s *)act + b0);
    }
    _mm512_storeu_ps(ya, acc[0]);
    _mm512_storeu_ps(yb, acc[1]);
}

/* Two adjacent groups x T (1..4) tokens (lm_dot_x32_fn): per block, the
 * loop runs over the 4 bytes a vpdpbusd takes (k and k + 4, which one load
 * of Q4_0 nibbles gives), and each token's broadcast activations meet both
 * groups' weights. The broadcasts, one per vpdpbusd in q8s_x16_tokens, held
 * its speed down: one thread, 8 tokens, 128 rows x 2048 in L2, Q8_0 64-68
 * -> 70-77% of the core's int8 peak (Q4_0 alike). Each token's integer sums
 * start from the same offset and add the same products as q8s_block's (in
 * another order, exactly), and the float steps are q8s_block's: the results
 * equal two q8s_x16_tokens calls bit for bit. */
K512 static inline __attribute__((always_inline)) void q8s_x32_tokens(const uint8_t *w, size_t group_bytes,
                                                                    size_t block_bytes, const int nibbles,
                                                                    const void *act, size_t stride, int64_t nb,
                                                                    const int T, float *y, int64_t ldy) {
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    __m512 acc[2][4];
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) acc[0][t] = acc[1][t] = _mm512_setzero_ps();
    const int64_t run = q8s_run(nb);
    for (int64_t b0 = 0; b0 < nb; b0 += run) {
        __m512 part[2][4];
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) part[0][t] = part[1][t] = _mm512_setzero_ps();
        for (int64_t b = b0; b < b0 + run; b++) {
            const uint8_t *blk[2] = {w + (size_t)b * block_bytes, w + group_bytes + (size_t)b * block_bytes};
            __m512i s[2][4];
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) {
                s[0][t] = s[1][t] = _mm512_set1_epi32(-(nibbles ? 8 : 128) * X16_TOKEN(act, stride, t, b)->sum);
            }
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                __m512i v[2][2]; /* [group][bytes 4k.. or 16 + 4k..] */
#pragma GCC unroll 2
                for (int g = 0; g < 2; g++) {
                    const uint8_t *qs = blk[g] + 32;
                    if (nibbles) {
                        const __m512i bytes = _mm512_loadu_si512(qs + 64 * k);
                        v[g][0] = _mm512_and_si512(bytes, low4);
                        v[g][1] = _mm512_and_si512(_mm512_srli_epi16(bytes, 4), low4);
                    } else {
                        v[g][0] = _mm512_loadu_si512(qs + 64 * k);
                        v[g][1] = _mm512_loadu_si512(qs + 64 * (k + 4));
                    }
                }
#pragma GCC unroll 4
                for (int t = 0; t < T; t++) {
                    const i32_bytes *q = (const i32_bytes *)X16_TOKEN(act, stride, t, b)->qs;
                    const __m512i x0 = _mm512_set1_epi32(q[k]), x1 = _mm512_set1_epi32(q[k + 4]);
#pragma GCC unroll 2
                    for (int g = 0; g < 2; g++) {
                        s[g][t] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(s[g][t], v[g][0], x0), v[g][1], x1);
                    }
                }
            }
            const __m512 dw[2] = {_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)blk[0])),
                                  _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)blk[1]))};
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) {
#pragma GCC unroll 2
                for (int g = 0; g < 2; g++) part[g][t] = q8s_part(part[g][t], s[g][t], dw[g]);
            }
        }
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) {
#pragma GCC unroll 2
            for (int g = 0; g < 2; g++) acc[g][t] = q8s_run_end(acc[g][t], part[g][t], X16_TOKEN(act, stride, t, b0));
    }
    }
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) {
        _mm512_storeu_ps(y + t * ldy, acc[0][t]);
        _mm512_storeu_ps(y + t * ldy + 16, acc[1][t]);
    }
}

/* Four tokens a pass, then the 1-3 left (a constant count each, so the
 * accumulators stay in registers). */
#define X32_DISPATCH(name, block, nibbles)                                                                          \
    K512 static void name(const void *group, size_t group_bytes, const void *act, size_t stride, int64_t n,         \
                          int n_tok, float *y, int64_t ldy) {                                                        \
        const int64_t nb = n / 32;                                                                                  \
        for (; n_tok >= 4; n_tok -= 4) {                                                                            \
            q8s_x32_tokens(group, group_bytes, sizeof(block), nibbles, act, stride, nb, 4, y, ldy);                 \
            act = (const uint8_t *)act + 4 * stride;                                                                \
            y += 4 * ldy;                                                                                           \
        }                                                                                                           \
        switch (n_tok) {                                                                                            \
        case 1: q8s_x32_tokens(group, group_bytes, sizeof(block), nibbles, act, stride, nb, 1, y, ldy); break;     \
        case 2: q8s_x32_tokens(group, group_bytes, sizeof(block), nibbles, act, stride, nb, 2, y, ldy); break;     \
        case 3: q8s_x32_tokens(group, group_bytes, sizeof(block), nibbles, act, stride, nb, 3, y, ldy); break;     \
        default: break;                                                                                             \
        }                                                                                                           \
    }
X32_DISPATCH(dot_q4_0_x32, block_q4_0x16, 1)
X32_DISPATCH(dot_q8_0_x32, block_q8_0x16, 0)

K512 static void dot_q4_0_x16_pair(const void *ga, const void *gb, const void *act, int64_t n, float *ya, float *yb) {
    q8s_x16_pair(ga, gb, sizeof(block_q4_0x16), 1, act, n / 32, ya, yb);
}

K512 static void dot_q8_0_x16_pair(const void *ga, const void *gb, const void *act, int64_t n, float *ya, float *yb) {
    q8s_x16_pair(ga, gb, sizeof(block_q8_0x16), 0, act, n / 32, ya, yb);
}

K512 static inline __attribute__((always_inline)) void q4_0x16_tokens(const block_q4_0x16 *w, const void *act,
                                                                    size_t stride, int64_t nb, const int T, float *y,
                                                                    int64_t ldy) {
    q8s_x16_tokens((const uint8_t *)w, sizeof *w, 1, act, stride, nb, T, y, ldy);
}

K512 static inline __attribute__((always_inline)) void q8_0x16_tokens(const block_q8_0x16 *w, const void *act,
                                                                    size_t stride, int64_t nb, const int T, float *y,
                                                                    int64_t ldy) {
    q8s_x16_tokens((const uint8_t *)w, sizeof *w, 0, act, stride, nb, T, y, ldy);
}

/* F16: per column, the 16 rows' halves convert to one register of floats
 * that meets the column's activation in one multiply-add; 4 accumulators
 * per token. */
K512 static inline __attribute__((always_inline)) void f16x16_tokens(const block_f16x16 *w, const void *act,
                                                                   size_t stride, int64_t nb, const int T, float *y,
                                                                   int64_t ldy) {
    __m512 acc[4][4];
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) {
#pragma GCC unroll 4
        for (int u = 0; u < 4; u++) acc[t][u] = _mm512_setzero_ps();
    }
    for (int64_t b = 0; b < nb; b++) {
#pragma GCC unroll 8
        for (int c = 0; c < 32; c += 4) {
            __m512 v[4];
#pragma GCC unroll 4
            for (int u = 0; u < 4; u++) v[u] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)w[b].v[c + u]));
#pragma GCC unroll 8
            for (int t = 0; t < T; t++) {
                const float *x = (const float *)((const uint8_t *)act + (size_t)t * stride) + 32 * b + c;
#pragma GCC unroll 4
                for (int u = 0; u < 4; u++) acc[t][u] = _mm512_fmadd_ps(v[u], _mm512_set1_ps(x[u]), acc[t][u]);
            }
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) {
        _mm512_storeu_ps(y + t * ldy, _mm512_add_ps(_mm512_add_ps(acc[t][0], acc[t][1]), _mm512_add_ps(acc[t][2], acc[t][3])));
    }
}

/* One token against two F16 groups (lm_dot_x16_pair_fn): f16x16_tokens'
 * arithmetic with T = 1, each activation broadcast once for both. */
K512 static void dot_f16_x16_pair(const void *ga, const void *gb, const void *act, int64_t n, float *ya, float *yb) {
    const block_f16x16 *w[2] = {ga, gb};
    const float *xs = act;
    __m512 acc[2][4];
#pragma GCC unroll 2
    for (int gi = 0; gi < 2; gi++) {
#pragma GCC unroll 4
        for (int u = 0; u < 4; u++) acc[gi][u] = _mm512_setzero_ps();
    }
    for (int64_t b = 0; b < n / 32; b++) {
#pragma GCC unroll 8
        for (int c = 0; c < 32; c += 4) {
#pragma GCC unroll 4
            for (int u = 0; u < 4; u++) {
                const __m512 x = _mm512_set1_ps(xs[32 * b + c + u]);
#pragma GCC unroll 2
                for (int gi = 0; gi < 2; gi++) {
                    const __m512 v = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)w[gi][b].v[c + u]));
                    acc[gi][u] = _mm512_fmadd_ps(v, x, acc[gi][u]);
                }
            }
        }
    }
    _mm512_storeu_ps(ya, _mm512_add_ps(_mm512_add_ps(acc[0][0], acc[0][1]), _mm512_add_ps(acc[0][2], acc[0][3])));
    _mm512_storeu_ps(yb, _mm512_add_ps(_mm512_add_ps(acc[1][0], acc[1][1]), _mm512_add_ps(acc[1][2], acc[1][3])));
}

/* Q4_K: per 32-weight sub-block, 8 vpdpbusd give the 16 rows' sums of
 * nibble x activation in two halves, which vpdpwssd multiplies by the rows'
 * sub-block scales and adds up; the mins meet the activations' sums of 32
 * in vpdpwssd too, after the sums. The loop over a block's 4 groups stays
 * a loop: unrolled, gcc spilled into a 4.7 KB stack frame, and 2 and 4
 * tokens over a 74 MB matrix took 30-35% longer (one token the same). */
K512 static inline __attribute__((always_inline)) void q4_Kx16_tokens(const block_q4_Kx16 *w, const void *act,
                                                                    size_t stride, int64_t nb, const int T, float *y,
                                                                    int64_t ldy) {
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    /* The accumulators live in y (a load and a store per token and block):
     * in registers with 8 tokens, gcc spilled the sums instead. */
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) _mm512_storeu_ps(y + t * ldy, _mm512_setzero_ps());
    for (int64_t b = 0; b < nb; b++) {
        const block_q4_Kx16 *p = &w[b];
        /* A block is 37 cache lines and too much work for the out-of-order
         * window to reach the next one's loads: prefetching two blocks ahead,
         * one token over a 310 MB matrix streamed at 73 GB/s on 2 threads
         * instead of 43. */
        prefetch_bytes(p + 2, sizeof *p);
        const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p->d));
        const __m512 dm = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p->dmin));
        __m512i isum[8];
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) isum[t] = _mm512_setzero_si512();
#pragma GCC unroll 1
        for (int g = 0; g < 4; g++) {
#pragma GCC unroll 2
            for (int half = 0; half < 2; half++) { /* low nibbles: sub-block 2g; high: 2g + 1 */
                /* [scale, scale] int16 pairs */
                const __m512i sc8 = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p->sc[2 * g + half]));
                const __m512i sc = _mm512_or_si512(sc8, _mm512_slli_epi32(sc8, 16));
                __m512i v[8];
#pragma GCC unroll 8
                for (int k = 0; k < 8; k++) {
                    const __m512i raw = _mm512_loadu_si512(p->qs[g][k]);
                    v[k] = _mm512_and_si512(half ? _mm512_srli_epi16(raw, 4) : raw, low4);
                }
#pragma GCC unroll 8
                for (int t = 0; t < T; t++) {
                    const block_q8_K *x = (const block_q8_K *)((const uint8_t *)act + (size_t)t * stride) + b;
                    const i32_bytes *q = (const i32_bytes *)(x->qs + 64 * g + 32 * half);
                    /* Two sums of 16 products each (|sum| <= 16 x 15 x 128: int16),
                     * s in the low halves of the lanes and u in the high ones, so
                     * one vpdpwssd against [scale, scale] pairs scales and adds
                     * both (it was one chain of 8, vpmulld and vpaddd: 55 -> 57%
                     * of one core's int8 peak for the kernel, 8 tokens; then a
                     * vpdpwssd for each half against [scale, 0]: 67-68 -> 68-69%
                     * with one, all the tokens through 48 groups of 768 columns). */
                    __m512i s = _mm512_setzero_si512(), u = _mm512_setzero_si512();
#pragma GCC unroll 4
                    for (int k = 0; k < 4; k++) {
                        s = _mm512_dpbusd_epi32(s, v[k], _mm512_set1_epi32(q[k]));
                        u = _mm512_dpbusd_epi32(u, v[k + 4], _mm512_set1_epi32(q[k + 4]));
                    }
                    const __m512i su = _mm512_mask_blend_epi16(0xAAAAAAAA, s, _mm512_slli_epi32(u, 16));
                    isum[t] = _mm512_dpwssd_epi32(isum[t], su, sc);
                }
            }
        }
        /* The mins: mn[q] holds [min 2q, min 2q + 1] per row, which widened
         * to int16 pairs meet the activations' two sums of 32 (LM_ACT_Q8K32:
         * one 32-bit word, broadcast from memory) in one vpdpwssd, 4 per
         * token; then y += dx (dw sums - dmin mins), one update of y per
         * token and block. (The mins went first, through 4 x vpmaddwd,
         * vpaddd and a broadcast from a general register with the pairs of
         * sums added in scalar code, and y took two updates: 52 -> 62% of
         * one core's int8 peak for the kernel, 8 tokens, 128 x 2048 in L2,
         * with the halves' vpdpwssd above.) */
        __m512i mins[4];
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++) mins[q] = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)p->mn[q]));
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            const block_q8_K *x = (const block_q8_K *)((const uint8_t *)act + (size_t)t * stride) + b;
            const i32_bytes *sums = (const i32_bytes *)x->bsums; /* sums[q]: sub-blocks 2q and 2q + 1's */
            __m512i m = _mm512_setzero_si512();
#pragma GCC unroll 4
            for (int q = 0; q < 4; q++) m = _mm512_dpwssd_epi32(m, mins[q], _mm512_set1_epi32(sums[q]));
            const __m512 f = _mm512_fmsub_ps(_mm512_cvtepi32_ps(isum[t]), dw, _mm512_mul_ps(_mm512_cvtepi32_ps(m), dm));
            _mm512_storeu_ps(y + t * ldy, _mm512_fmadd_ps(f, _mm512_set1_ps(x->d), _mm512_loadu_ps(y + t * ldy)));
        }
    }
}

/* Q6_K: a sub-block's 16 weights of the 16 rows are 4 vectors of 6-bit
 * values (unsigned, 0..63) stored in 3 (packed.h): A, B and C hold weights
 * 0-3, 4-7 and 8-11 in their low 6 bits, and their top 2 bits together
 * make weights 12-15. Per sub-block and token, 4 vpdpbusd of the
 * activations + 128 (unsigned) by the values - 32 (signed) give the rows'
 * sums, times their scales (vpmulld; the sums can pass 16 bits); the + 128
 * adds the rows' corr (packed.h), where the sums start. (One chain of 4
 * vpdpbusd a sub-block when several tokens share the pass: 46 -> 51% of
 * one core's int8 peak; corr in place of a pass of vpdpwssd per token
 * over the activations' sums: 55-56 -> 58-60%, all tokens through 48
 * groups of 768 columns.) This layout costs
 * 2.25 operations per vector of values against 3.25 for GGUF's
 * nibbles and 2-bit planes; with the loop over sub-block pairs kept a loop
 * (unrolled, gcc spilled the vectors into a 10 KB stack frame), one token
 * streams a 110 MB matrix at 58 GB/s on 2 threads instead of 34. GFNI's
 * affine bit-moves for the fourth vector (4 operations instead of 6)
 * measured no faster. */

/* The 4 vectors of values of the sub-block at qs (3 x 64 bytes). 16-bit
 * shifts pull a neighbour's bits into the high ones, so the selects keep
 * bits 0-1 of A >> 6 and 2-3 of B >> 4, then bits 4-5 of C >> 2, and a
 * mask clears bits 6-7. */
K512 static inline __attribute__((always_inline)) void q6_K_subblock(const uint8_t *qs, __m512i v[4]) {
    const __m512i low6 = _mm512_set1_epi8(0x3F);
    const __m512i a = _mm512_loadu_si512(qs), b = _mm512_loadu_si512(qs + 64), c = _mm512_loadu_si512(qs + 128);
    v[0] = _mm512_and_si512(a, low6);
    v[1] = _mm512_and_si512(b, low6);
    v[2] = _mm512_and_si512(c, low6);
    const __m512i ab = _mm512_ternarylogic_epi32(_mm512_set1_epi8(0x03), _mm512_srli_epi16(a, 6), _mm512_srli_epi16(b, 4),
                                                 0xCA); /* mask ? a : b */
    v[3] = _mm512_and_si512(_mm512_ternarylogic_epi32(_mm512_set1_epi8(0x0F), ab, _mm512_srli_epi16(c, 2), 0xCA), low6);
}

K512 static inline __attribute__((always_inline)) void q6_Kx16_tokens(const block_q6_Kx16 *w, const void *act,
                                                                    size_t stride, int64_t nb, const int T, float *y,
                                                                    int64_t ldy) {
    const __m512i off = _mm512_set1_epi8(32);
    /* The accumulators live in y (a load and a store per token and block):
     * in registers with 8 tokens, gcc spilled the sums instead. */
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) _mm512_storeu_ps(y + t * ldy, _mm512_setzero_ps());
    for (int64_t b = 0; b < nb; b++) {
        const block_q6_Kx16 *p = &w[b];
        prefetch_bytes(p + 2, sizeof *p);
        /* The activations come + 128 (LM_ACT_Q8K_U) and the weights as
         * q - 32, so vpdpbusd (unsigned x signed) sums (a + 128)(q - 32): the
         * + 128's part is the rows' corr, which the sums start below. */
        const __m512i start = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_loadu_si512(p->corr));
        __m512i isum[8];
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) isum[t] = start;
#pragma GCC unroll 1
        for (int q = 0; q < 8; q++) { /* sub-blocks 2q, 2q + 1 */
            const __m512i pairs = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)p->sc[q]));
            const __m512i sc0 = _mm512_srai_epi32(_mm512_slli_epi32(pairs, 16), 16), sc1 = _mm512_srai_epi32(pairs, 16);
            __m512i v0[4], v1[4];
            q6_K_subblock(p->qs[2 * q][0], v0);
            q6_K_subblock(p->qs[2 * q + 1][0], v1);
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                v0[k] = _mm512_sub_epi8(v0[k], off);
                v1[k] = _mm512_sub_epi8(v1[k], off);
            }
#pragma GCC unroll 8
            for (int t = 0; t < T; t++) {
                const block_q8_K *x = (const block_q8_K *)((const uint8_t *)act + (size_t)t * stride) + b;
                const i32_bytes *q0 = (const i32_bytes *)(x->qs + 32 * q), *q1 = q0 + 4;
                __m512i d0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi32(q0[0]), v0[0]);
                __m512i d1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi32(q1[0]), v1[0]);
                if (T > 1) { /* the tokens' chains overlap: one chain a sub-block */
#pragma GCC unroll 3
                    for (int k = 1; k < 4; k++) {
                        d0 = _mm512_dpbusd_epi32(d0, _mm512_set1_epi32(q0[k]), v0[k]);
                        d1 = _mm512_dpbusd_epi32(d1, _mm512_set1_epi32(q1[k]), v1[k]);
                    }
                } else { /* one token: two chains a sub-block, half as long */
                    __m512i e0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi32(q0[1]), v0[1]);
                    __m512i e1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi32(q1[1]), v1[1]);
                    d0 = _mm512_add_epi32(_mm512_dpbusd_epi32(d0, _mm512_set1_epi32(q0[2]), v0[2]),
                                          _mm512_dpbusd_epi32(e0, _mm512_set1_epi32(q0[3]), v0[3]));
                    d1 = _mm512_add_epi32(_mm512_dpbusd_epi32(d1, _mm512_set1_epi32(q1[2]), v1[2]),
                                          _mm512_dpbusd_epi32(e1, _mm512_set1_epi32(q1[3]), v1[3]));
                }
                isum[t] = _mm512_add_epi32(isum[t], _mm512_add_epi32(_mm512_mullo_epi32(d0, sc0), _mm512_mullo_epi32(d1, sc1)));
            }
        }
        const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p->d));
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            const block_q8_K *x = (const block_q8_K *)((const uint8_t *)act + (size_t)t * stride) + b;
            _mm512_storeu_ps(y + t * ldy, _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[t]), _mm512_mul_ps(dw, _mm512_set1_ps(x->d)),
                                                         _mm512_loadu_ps(y + t * ldy)));
        }
    }
}

/* ---- Attention over an f32 KV cache ----
 * Scores: 16 keys at a time, each key's hd products summed in its own
 * register (the query stays in registers), then one transpose-and-add tree
 * turns the 16 registers into the 16 scores (45 shuffles and adds for 16
 * keys, against a horizontal sum per key). Values: the output stays in
 * registers while the keys stream past, two keys per step in separate
 * accumulators so the multiply-adds do not wait on each other. Head sizes
 * up to 128 (8 vectors; a partial last vector is masked); larger ones go
 * 128 columns at a time (values) or one key at a time (scores). */

/* v[0..15] (one key's partial sums each) -> one vector of their 16 sums. */
K512 static inline __m512 sum16(__m512 v[16]) {
    __m512 r[8], s[4], u[2];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) { /* keys 2i, 2i+1 interleaved in each 128-bit block */
        r[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
    }
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) { /* keys 4i..4i+3 in order in each block */
        s[i] = _mm512_add_ps(_mm512_shuffle_ps(r[2 * i], r[2 * i + 1], 0x44), _mm512_shuffle_ps(r[2 * i], r[2 * i + 1], 0xEE));
    }
#pragma GCC unroll 2
    for (int i = 0; i < 2; i++) { /* blocks: keys 8i..8i+3 (twice), 8i+4..8i+7 (twice) */
        u[i] = _mm512_add_ps(_mm512_shuffle_f32x4(s[2 * i], s[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_f32x4(s[2 * i], s[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)));
    }
    return _mm512_add_ps(_mm512_shuffle_f32x4(u[0], u[1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(u[0], u[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

/* 16 elements of a key or value row from p (floats, or IEEE halves when
 * half) as floats; lanes outside m are 0. */
K512 static inline __attribute__((always_inline)) __m512 load16(const void *p, __mmask16 m, const int half) {
    return half ? _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p)) : _mm512_maskz_loadu_ps(m, p);
}

K512 static inline __attribute__((always_inline)) void scores_nv(float *att, const float *q, const void *k,
                                                                 int64_t stride, int64_t n, int64_t hd, float scale,
                                                                 const int nv, const int half) {
    const __mmask16 last = (__mmask16)(hd % 16 ? (1u << (hd % 16)) - 1 : 0xFFFF);
    const size_t elt = half ? 2 : 4, row = (size_t)stride * elt;
    __m512 qv[8];
#pragma GCC unroll 8
    for (int i = 0; i < nv; i++) qv[i] = _mm512_maskz_loadu_ps(i == nv - 1 ? last : 0xFFFF, q + 16 * i);
    const __m512 vscale = _mm512_set1_ps(scale);
    int64_t t = 0;
    for (; t + 16 <= n; t += 16) {
        __m512 acc[16];
#pragma GCC unroll 16
        for (int p = 0; p < 16; p++) {
            const char *kp = (const char *)k + (size_t)(t + p) * row;
            acc[p] = _mm512_mul_ps(qv[0], load16(kp, nv == 1 ? last : 0xFFFF, half));
#pragma GCC unroll 8
            for (int i = 1; i < nv; i++) {
                acc[p] = _mm512_fmadd_ps(qv[i], load16(kp + 16 * i * elt, i == nv - 1 ? last : 0xFFFF, half), acc[p]);
            }
        }
        _mm512_storeu_ps(att + t, _mm512_mul_ps(sum16(acc), vscale));
    }
    for (; t < n; t++) {
        const char *kp = (const char *)k + (size_t)t * row;
        __m512 acc = _mm512_mul_ps(qv[0], load16(kp, nv == 1 ? last : 0xFFFF, half));
#pragma GCC unroll 8
        for (int i = 1; i < nv; i++) acc = _mm512_fmadd_ps(qv[i], load16(kp + 16 * i * elt, i == nv - 1 ? last : 0xFFFF, half), acc);
        att[t] = _mm512_reduce_add_ps(acc) * scale;
    }
}

/* Scores over keys of floats or (half) IEEE halves. */
K512 static inline __attribute__((always_inline)) void scores_any(float *att, const float *q, const void *k,
                                                                  int64_t stride, int64_t n, int64_t hd, float scale,
                                                                  const int half) {
    switch ((hd + 15) / 16) {
    case 1: scores_nv(att, q, k, stride, n, hd, scale, 1, half); return;
    case 2: scores_nv(att, q, k, stride, n, hd, scale, 2, half); return;
    case 3: scores_nv(att, q, k, stride, n, hd, scale, 3, half); return;
    case 4: scores_nv(att, q, k, stride, n, hd, scale, 4, half); return;
    case 5: scores_nv(att, q, k, stride, n, hd, scale, 5, half); return;
    case 6: scores_nv(att, q, k, stride, n, hd, scale, 6, half); return;
    case 7: scores_nv(att, q, k, stride, n, hd, scale, 7, half); return;
    case 8: scores_nv(att, q, k, stride, n, hd, scale, 8, half); return;
    default: break;
    }
    const size_t elt = half ? 2 : 4;
    for (int64_t t = 0; t < n; t++) { /* heads over 128: one key at a time */
        const char *kp = (const char *)k + (size_t)(t * stride) * elt;
        __m512 acc = _mm512_setzero_ps();
        int64_t i = 0;
        for (; i + 16 <= hd; i += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), load16(kp + i * elt, 0xFFFF, half), acc);
        const __mmask16 m = (__mmask16)((1u << (hd - i)) - 1);
        acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + i), load16(kp + i * elt, m, half), acc);
        att[t] = _mm512_reduce_add_ps(acc) * scale;
    }
}

K512 static void attn_scores_512(float *att, const float *q, const float *k, int64_t stride, int64_t n, int64_t hd,
                                 float scale) {
    scores_any(att, q, k, stride, n, hd, scale, 0);
}

K512 static void attn_scores_f16_512(float *att, const float *q, const uint16_t *k, int64_t stride, int64_t n,
                                     int64_t hd, float scale) {
    scores_any(att, q, k, stride, n, hd, scale, 1);
}

/* out[0 .. width) for width <= 16 * nv columns (the last vector masked);
 * v holds floats, or IEEE halves when half. */
K512 static inline __attribute__((always_inline)) void values_nv(float *out, const float *att, const void *v,
                                                                 int64_t stride, int64_t n, int64_t width, const int nv,
                                                                 const int half) {
    const __mmask16 last = (__mmask16)(width % 16 ? (1u << (width % 16)) - 1 : 0xFFFF);
    const size_t elt = half ? 2 : 4, row = (size_t)stride * elt;
    __m512 o0[8], o1[8];
#pragma GCC unroll 8
    for (int i = 0; i < nv; i++) o0[i] = o1[i] = _mm512_setzero_ps();
    int64_t t = 0;
    for (; t + 2 <= n; t += 2) {
        const __m512 a0 = _mm512_set1_ps(att[t]), a1 = _mm512_set1_ps(att[t + 1]);
        const char *v0 = (const char *)v + (size_t)t * row, *v1 = v0 + row;
#pragma GCC unroll 8
        for (int i = 0; i < nv; i++) {
            const __mmask16 m = i == nv - 1 ? last : 0xFFFF;
            o0[i] = _mm512_fmadd_ps(a0, load16(v0 + 16 * i * elt, m, half), o0[i]);
            o1[i] = _mm512_fmadd_ps(a1, load16(v1 + 16 * i * elt, m, half), o1[i]);
        }
    }
    if (t < n) {
        const __m512 a0 = _mm512_set1_ps(att[t]);
        const char *v0 = (const char *)v + (size_t)t * row;
#pragma GCC unroll 8
        for (int i = 0; i < nv; i++) {
            o0[i] = _mm512_fmadd_ps(a0, load16(v0 + 16 * i * elt, i == nv - 1 ? last : 0xFFFF, half), o0[i]);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < nv; i++) _mm512_mask_storeu_ps(out + 16 * i, i == nv - 1 ? last : 0xFFFF, _mm512_add_ps(o0[i], o1[i]));
}

K512 static inline __attribute__((always_inline)) void values_any(float *out, const float *att, const void *v,
                                                                  int64_t stride, int64_t n, int64_t hd, const int half) {
    const size_t elt = half ? 2 : 4;
    for (int64_t c = 0; c < hd; c += 128) { /* 128 columns (8 vectors) at a time */
        const int64_t width = hd - c < 128 ? hd - c : 128;
        const char *vc = (const char *)v + c * elt;
        switch ((width + 15) / 16) {
        case 1: values_nv(out + c, att, vc, stride, n, width, 1, half); break;
        case 2: values_nv(out + c, att, vc, stride, n, width, 2, half); break;
        case 3: values_nv(out + c, att, vc, stride, n, width, 3, half); break;
        case 4: values_nv(out + c, att, vc, stride, n, width, 4, half); break;
        case 5: values_nv(out + c, att, vc, stride, n, width, 5, half); break;
        case 6: values_nv(out + c, att, vc, stride, n, width, 6, half); break;
        case 7: values_nv(out + c, att, vc, stride, n, width, 7, half); break;
        default: values_nv(out + c, att, vc, stride, n, width, 8, half); break;
        }
    }
}

K512 static void attn_values_512(float *out, const float *att, const float *v, int64_t stride, int64_t n, int64_t hd) {
    values_any(out, att, v, stride, n, hd, 0);
}

K512 static void attn_values_f16_512(float *out, const float *att, const uint16_t *v, int64_t stride, int64_t n,
                                     int64_t hd) {
    values_any(out, att, v, stride, n, hd, 1);
}

/* e^x = 2^n e^r for x clamped at or above lo: returns e^r (|r| <= ln2 / 2,
 * a degree-6 polynomial) and sets *n. */
K512 static inline __m512 exp_reduced_512(__m512 x, float lo, __m512 *n) {
    const __m512 log2e = _mm512_set1_ps(1.44269504088896341f);
    const __m512 ln2_hi = _mm512_set1_ps(0.693359375f), ln2_lo = _mm512_set1_ps(-2.12194440e-4f);
    x = _mm512_max_ps(x, _mm512_set1_ps(lo));
    *n = _mm512_roundscale_ps(_mm512_mul_ps(x, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(*n, ln2_hi, x);
    r = _mm512_fnmadd_ps(*n, ln2_lo, r);
    __m512 p = _mm512_set1_ps(1.0f / 720);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
}

/* AVX2's exp_nonpositive, 16 lanes: e^x for x <= 0 within 2 ulp (the same
 * operations per lane, so the same values). */
K512 static inline __m512 exp_nonpositive_512(__m512 x) {
    const __mmask16 below = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.3f), _CMP_LT_OQ);
    __m512 n;
    const __m512 p = exp_reduced_512(x, -87.3f, &n);
    const __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_maskz_mul_ps((__mmask16)~below, p, _mm512_castsi512_ps(e));
}

/* e^x for x <= 0 within 2 ulp for the column softmax: the same reduction,
 * but 2^n applied by vscalefps, which also takes e^x below -87.3 to 0 or a
 * denormal (the clamp at -104 only keeps -inf out of the reduction): 4
 * instructions fewer a vector than the exponent bits and the mask, for the
 * prefill's softmax, whose values need not equal the decode's bit for bit. */
K512 static inline __m512 exp_nonpositive_scalef_512(__m512 x) {
    __m512 n;
    const __m512 p = exp_reduced_512(x, -104.0f, &n);
    return _mm512_scalef_ps(p, n);
}

/* Lanes i .. i + 15 that are below n. */
static inline __mmask16 tail_mask(int64_t i, int64_t n) { return n - i >= 16 ? 0xFFFF : (__mmask16)((1u << (n - i)) - 1); }

K512 static double softmax_exp_512(float *x, int64_t n, float scale) {
    __m512 m = _mm512_set1_ps(-INFINITY);
    for (int64_t i = 0; i < n; i += 16) m = _mm512_max_ps(m, _mm512_mask_loadu_ps(m, tail_mask(i, n), x + i));
    const __m512 vmax = _mm512_set1_ps(_mm512_reduce_max_ps(m)), vscale = _mm512_set1_ps(scale);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = tail_mask(i, n);
        const __m512 d = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), vmax), vscale);
        const __m512 e = _mm512_maskz_mov_ps(k, exp_nonpositive_512(d));
        _mm512_mask_storeu_ps(x + i, k, e);
        acc = _mm512_add_ps(acc, e);
    }
    return _mm512_reduce_add_ps(acc);
}

/* AVX2's rope, 8 pairs a vector, the last ones masked (the same values).
 * A 110M prompt's 512 x 24 heads took 2% of its prefill in the scalar
 * code's 4-pair steps. */
K512 static void rope_512(float *x, int64_t n_heads, int64_t head_dim, int64_t rope_dim, const float *cos_sin) {
    const __m512i even_sign = _mm512_set4_epi32(0, INT32_MIN, 0, INT32_MIN);
    const int64_t used = rope_dim / 2 * 2;
    for (int64_t i = 0; i < used; i += 16) {
        const __mmask16 k = tail_mask(i, used);
        const __m512 cs = _mm512_maskz_loadu_ps(k, cos_sin + i);
        const __m512 c = _mm512_moveldup_ps(cs), s = _mm512_movehdup_ps(cs);
        for (int64_t h = 0; h < n_heads; h++) {
            float *v = x + h * head_dim + i;
            const __m512 a = _mm512_maskz_loadu_ps(k, v);
            const __m512 q = _mm512_mul_ps(_mm512_permute_ps(a, 0xB1), s);
            const __m512 minus_q = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(q), even_sign));
            _mm512_mask_storeu_ps(v, k, _mm512_add_ps(_mm512_mul_ps(a, c), minus_q));
        }
    }
}

/* lm_rope_cols_ref 16 columns a vector (the same bits: each product
 * rounded, then the difference or sum), the last ones masked. Rotating the
 * queries here, as the attention packs them, saved the pass over all of Q
 * that rotated it between the product and the attention (by tokens, where
 * the attention reads it by heads). */
K512 static void rope_cols_512(float *qt, int64_t nr, int64_t rope_dim, const float *cos_t, const float *sin_t,
                               int64_t stride, int64_t pos) {
    for (int64_t i = 0; i < rope_dim / 2; i++) {
        float *a = qt + 2 * i * nr, *b = a + nr;
        const float *c = cos_t + i * stride + pos, *s = sin_t + i * stride + pos;
        for (int64_t j = 0; j < nr; j += 16) {
            const __mmask16 k = tail_mask(j, nr);
            const __m512 x = _mm512_maskz_loadu_ps(k, a + j), y = _mm512_maskz_loadu_ps(k, b + j);
            const __m512 vc = _mm512_maskz_loadu_ps(k, c + j), vs = _mm512_maskz_loadu_ps(k, s + j);
            _mm512_mask_storeu_ps(a + j, k, _mm512_sub_ps(_mm512_mul_ps(x, vc), _mm512_mul_ps(y, vs)));
            _mm512_mask_storeu_ps(b + j, k, _mm512_add_ps(_mm512_mul_ps(x, vs), _mm512_mul_ps(y, vc)));
        }
    }
}

/* The column softmax (lm_softmax_exp_cols_fn), AVX2's steps with 16
 * columns a vector. Per column vector, the rows every column sees (up to
 * first) go 4 at a time into 4 maxima and 4 sums: one chain down the rows
 * waited on each max and add's latency (the softmax took longer than the
 * row-wise one and its packing together). The float sums fold into double
 * every 64 rows. The band below, where the columns that see row r are the
 * lanes from r - first - c0 up, goes a row at a time under a mask. */
K512 static void softmax_exp_cols_512(float *s, int64_t rows, int64_t width, int64_t first, float scale, float *sums) {
    const __m512 vscale = _mm512_set1_ps(scale);
    const int64_t full = first + 1 < rows ? first + 1 : rows; /* rows 0 .. full - 1: seen by every column */
    for (int64_t c0 = 0; c0 < width; c0 += 16) {
        const __mmask16 in = tail_mask(c0, width);
        float *col = s + c0;
        __m512 m[4];
        for (int u = 0; u < 4; u++) m[u] = _mm512_set1_ps(-INFINITY);
        int64_t r = 0;
        for (; r + 4 <= full; r += 4) {
            for (int u = 0; u < 4; u++) m[u] = _mm512_max_ps(m[u], _mm512_maskz_loadu_ps(in, col + (r + u) * width));
        }
        for (; r < rows; r++) {
            const int64_t from = r - first - c0;
            const __mmask16 seen = from <= 0 ? in : from >= 16 ? 0 : (__mmask16)(in & (0xFFFFu << from));
            m[0] = _mm512_mask_max_ps(m[0], seen, m[0], _mm512_maskz_loadu_ps(in, col + r * width));
        }
        const __m512 max = _mm512_max_ps(_mm512_max_ps(m[0], m[1]), _mm512_max_ps(m[2], m[3]));
        __m512d lo = _mm512_setzero_pd(), hi = _mm512_setzero_pd();
        __m512 a[4];
        for (int u = 0; u < 4; u++) a[u] = _mm512_setzero_ps();
        r = 0;
        for (int64_t run = 0; r + 4 <= full; r += 4) {
            for (int u = 0; u < 4; u++) {
                float *p = col + (r + u) * width;
                const __m512 x = _mm512_maskz_loadu_ps(in, p);
                const __m512 e = exp_nonpositive_scalef_512(_mm512_mul_ps(_mm512_sub_ps(x, max), vscale));
                _mm512_mask_storeu_ps(p, in, e);
                a[u] = _mm512_add_ps(a[u], e);
            }
            if (++run == 16) { /* 64 rows */
                const __m512 t = _mm512_add_ps(_mm512_add_ps(a[0], a[1]), _mm512_add_ps(a[2], a[3]));
                lo = _mm512_add_pd(lo, _mm512_cvtps_pd(_mm512_castps512_ps256(t)));
                hi = _mm512_add_pd(hi, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(t), 1))));
                for (int u = 0; u < 4; u++) a[u] = _mm512_setzero_ps();
                run = 0;
            }
        }
        for (; r < rows; r++) {
            const int64_t from = r - first - c0;
            const __mmask16 seen = from <= 0 ? in : from >= 16 ? 0 : (__mmask16)(in & (0xFFFFu << from));
            float *p = col + r * width;
            const __m512 x = _mm512_maskz_loadu_ps(in, p);
            const __m512 e =
                _mm512_maskz_mov_ps(seen, exp_nonpositive_scalef_512(_mm512_mul_ps(_mm512_sub_ps(x, max), vscale)));
            _mm512_mask_storeu_ps(p, in, e);
            a[r % 4] = _mm512_add_ps(a[r % 4], e);
        }
        const __m512 t = _mm512_add_ps(_mm512_add_ps(a[0], a[1]), _mm512_add_ps(a[2], a[3]));
        lo = _mm512_add_pd(lo, _mm512_cvtps_pd(_mm512_castps512_ps256(t)));
        hi = _mm512_add_pd(hi, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(t), 1))));
        double d[16];
        _mm512_storeu_pd(d, lo);
        _mm512_storeu_pd(d + 8, hi);
        for (int64_t j = c0; j < width && j < c0 + 16; j++) sums[j] = (float)d[j - c0];
    }
}

/* AVX2's rmsnorm, 16 values a vector (the same bits): the 32 partial sums
 * in 4 registers of 8 doubles. */
K512 static void rmsnorm_512(float *out, const float *x, const float *weight, int64_t n, float eps) {
    __m512d acc[4];
    for (int u = 0; u < 4; u++) acc[u] = _mm512_setzero_pd();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        for (int u = 0; u < 4; u++) {
            const __m512d v = _mm512_cvtps_pd(_mm256_loadu_ps(x + i + 8 * u));
            acc[u] = _mm512_fmadd_pd(v, v, acc[u]);
        }
    }
    double p[32];
    for (int u = 0; u < 4; u++) _mm512_storeu_pd(p + 8 * u, acc[u]);
    const double ss = lm_sum_of_squares_finish(p, x, i, n);
    const float scale = (float)(1.0 / sqrt(ss / (double)n + eps));
    const __m512 vs = _mm512_set1_ps(scale);
    for (i = 0; i < n; i += 16) {
        const __mmask16 k = tail_mask(i, n);
        _mm512_mask_storeu_ps(out + i, k, _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), vs), _mm512_maskz_loadu_ps(k, weight + i)));
    }
}

K512 static void add_512(float *x, const float *a, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = tail_mask(i, n);
        _mm512_mask_storeu_ps(x + i, k, _mm512_add_ps(_mm512_maskz_loadu_ps(k, x + i), _mm512_maskz_loadu_ps(k, a + i)));
    }
}

/* Halves to floats and back, 16 at a time (AVX2's 8 at a time took 2% of a
 * 110M prompt's profile, converting the f16 cache's rows as the prefill's
 * attention packs them); the conversions are exact one way and round to
 * nearest even the other, as lm_fp16_to_fp32 and lm_fp32_to_fp16 do. */
K512 static void from_f16_512(float *dst, const uint16_t *src, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + i))));
    for (; i < n; i++) dst[i] = lm_fp16_to_fp32(src[i]);
}

K512 static void to_f16_512(uint16_t *dst, const float *src, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        _mm256_storeu_si256((__m256i *)(dst + i), _mm512_cvtps_ph(_mm512_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    }
    for (; i < n; i++) dst[i] = lm_fp32_to_fp16(src[i]);
}

/* AVX2's swiglu, 16 lanes (the same values): silu(g) = g * sigmoid(g), with
 * e = e^-|g|, sigmoid = 1 / (1 + e) for g >= 0 and e / (1 + e) below. */
K512 static void swiglu_512(float *gate, const float *up, int64_t n) {
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = tail_mask(i, n);
        /* 256 bytes ahead: a 110M prefill's gates and ups (4 MB each) come
         * from L3 or memory, and without this the loads waited (swiglu
         * 4.2% of the profile, 1.6% with). */
        _mm_prefetch((const char *)(gate + i + 64), _MM_HINT_T0);
        _mm_prefetch((const char *)(up + i + 64), _MM_HINT_T0);
        const __m512 g = _mm512_maskz_loadu_ps(k, gate + i);
        const __m512 e = exp_nonpositive_512(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_abs_ps(g)));
        const __mmask16 negative = _mm512_cmp_ps_mask(g, _mm512_setzero_ps(), _CMP_LT_OQ);
        const __m512 sig = _mm512_div_ps(_mm512_mask_blend_ps(negative, one, e), _mm512_add_ps(one, e));
        _mm512_mask_storeu_ps(gate + i, k, _mm512_mul_ps(_mm512_mul_ps(g, sig), _mm512_maskz_loadu_ps(k, up + i)));
    }
}

/* Round half away from zero (lm_quantize_q8a_ref's roundf), 16 values:
 * truncated after adding the largest float below 1/2 with s's sign, which
 * equals roundf for every |s| <= 128 (checked over all of those floats;
 * the quantisers' values are within 127), NaN to INT32_MIN as before, in
 * 3 operations where truncating, comparing the fraction and stepping took
 * 7. */
K512 static inline __m512i round_away_512(__m512 s) {
    const __m512i sign = _mm512_set1_epi32(INT32_MIN), below_half = _mm512_castps_si512(_mm512_set1_ps(0.49999997f));
    /* (sign & s) | below_half */
    const __m512i h = _mm512_ternarylogic_epi32(sign, _mm512_castps_si512(s), below_half, 0xEA);
    return _mm512_cvttps_epi32(_mm512_add_ps(s, _mm512_castsi512_ps(h)));
}

/* Lane i = the maximum of v[i]'s lanes: four levels of halving shuffles
 * (15 maxima for 16 vectors, where a reduction each took 4), whose lanes
 * end transposed in fours (lane 4L + j holds v[4j + L]): `order` puts them
 * back. */
K512 static inline __m512 max_of_each_512(const __m512 v[16], __m512i order) {
    __m512 c[8], e[4], f[2];
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++) {
        c[k] = _mm512_max_ps(_mm512_shuffle_f32x4(v[2 * k], v[2 * k + 1], 0x44),
                             _mm512_shuffle_f32x4(v[2 * k], v[2 * k + 1], 0xEE));
    }
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
        e[k] = _mm512_max_ps(_mm512_shuffle_f32x4(c[2 * k], c[2 * k + 1], 0x88),
                             _mm512_shuffle_f32x4(c[2 * k], c[2 * k + 1], 0xDD));
    }
#pragma GCC unroll 2
    for (int k = 0; k < 2; k++) {
        f[k] = _mm512_max_ps(_mm512_shuffle_ps(e[2 * k], e[2 * k + 1], 0x44),
                             _mm512_shuffle_ps(e[2 * k], e[2 * k + 1], 0xEE));
    }
    const __m512 g = _mm512_max_ps(_mm512_shuffle_ps(f[0], f[1], 0x88), _mm512_shuffle_ps(f[0], f[1], 0xDD));
    return _mm512_permutexvar_ps(order, g);
}

/* lm_quantize_q8s_avx2's result bit for bit (runs of 8 blocks sharing a
 * scale where nb is a multiple of 8), 16 blocks at a time: their maxima in
 * one vector (max_of_each_512), the scales of all 16 in two vector
 * divisions (IEEE division rounds alike in any width), and two blocks at a
 * time packed to bytes in order and summed by vpsadbw. (A reduction per
 * block for its maximum and one for its sum had it at 74 ns a run of 8
 * blocks, one thread; now 39.) */
K512 void lm_quantize_q8s_avx512(const float *x, block_q8s *y, int64_t nb) {
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512i bias = _mm512_set1_epi8((char)0x80);
    const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    for (int64_t b0 = 0; b0 < nb; b0 += 16) {
        const int m = nb - b0 < 16 ? (int)(nb - b0) : 16;
        const float *xb = x + 32 * b0;
        __m512 v[16];
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++) {
            v[i] = i < m ? _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(xb + 32 * i)),
                                         _mm512_abs_ps(_mm512_loadu_ps(xb + 32 * i + 16)))
                         : _mm512_setzero_ps();
        }
        __m512 amax = max_of_each_512(v, order);
        if (nb % 8 == 0) { /* runs of 8 blocks share a scale: each lane gets its run's maximum */
            const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
            for (int span = 1; span < 8; span *= 2) {
                const __m512i other = _mm512_xor_si512(lane, _mm512_set1_epi32(span));
                amax = _mm512_max_ps(amax, _mm512_permutexvar_ps(other, amax));
            }
        }
        float d[16], id[16];
        const __m512 vd = _mm512_div_ps(amax, _mm512_set1_ps(127.0f));
        _mm512_storeu_ps(d, vd);
        _mm512_storeu_ps(id, _mm512_maskz_div_ps(_mm512_cmp_ps_mask(vd, _mm512_setzero_ps(), _CMP_NEQ_UQ), one, vd));
        for (int i = 0; i < m; i += 2) {
            const int two = i + 1 < m; /* block i + 1 is there */
            __m512i q[4];
            const __m512 vid0 = _mm512_set1_ps(id[i]), vid1 = _mm512_set1_ps(two ? id[i + 1] : 0.0f);
            for (int h = 0; h < 2; h++) {
                q[h] = round_away_512(_mm512_mul_ps(_mm512_loadu_ps(xb + 32 * i + 16 * h), vid0));
                q[2 + h] = two ? round_away_512(_mm512_mul_ps(_mm512_loadu_ps(xb + 32 * i + 32 + 16 * h), vid1))
                               : _mm512_setzero_si512();
            }
            /* after the two packs, 128-bit lane L holds dwords 4L..4L+3 of q[0..3] in turn */
            const __m512i bytes = _mm512_permutexvar_epi32(
                order, _mm512_packs_epi16(_mm512_packs_epi32(q[0], q[1]), _mm512_packs_epi32(q[2], q[3])));
            uint64_t eights[8]; /* sums of 8 values + 128 each: blocks i, i + 1 */
            _mm512_storeu_si512(eights, _mm512_sad_epu8(_mm512_xor_si512(bytes, bias), _mm512_setzero_si512()));
            block_q8s *out = &y[b0 + i];
            _mm256_storeu_si256((__m256i *)out[0].qs, _mm512_castsi512_si256(bytes));
            out[0].d = d[i];
            out[0].sum = (int32_t)((int64_t)(eights[0] + eights[1] + eights[2] + eights[3]) - 32 * 128);
            if (two) {
                _mm256_storeu_si256((__m256i *)out[1].qs, _mm512_extracti64x4_epi64(bytes, 1));
                out[1].d = d[i + 1];
                out[1].sum = (int32_t)((int64_t)(eights[4] + eights[5] + eights[6] + eights[7]) - 32 * 128);
            }
        }
    }
}

/* lm_quantize_q8_K_avx2's result bit for bit, 16 values a vector: the same
 * maximum magnitude (NaNs passed over), the first value that has it, the
 * same products rounded to nearest even and capped at 127 (and saturated
 * below at -128, as the packs do: only a NaN's INT_MIN gets there). 64
 * values at a time are packed to bytes in order and summed by vpsadbw (a
 * reduction per 16 values, a chain of 16 maxima and a division waiting on
 * the search for the largest value had it at 40-46 ns a block of 256, one
 * thread; now 20-21, the kinds' passes included). The activation kinds'
 * changes are made in the same pass: sums32, bsums[0..7] are the sums of
 * 32 values and bsums[8..15] are 0 (LM_ACT_Q8K32); flip, the bytes are the
 * values + 128 (LM_ACT_Q8K_U). */
K512 void lm_quantize_q8_K_kind_avx512(const float *x, block_q8_K *y, int64_t nb, int sums32, int flip) {
    const __m512i cap = _mm512_set1_epi32(127), bias = _mm512_set1_epi8((char)0x80);
    /* after the two packs, 128-bit lane L holds dwords 4L..4L+3 of q[0..3] in turn */
    const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    const __m512i even = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
    const __m512i odd = _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15);
    for (int64_t b = 0; b < nb; b++, x += QK_K) {
        /* the largest and the smallest value, four chains each (one chain
         * waited on its maxima's latency); maxps and minps return the second
         * operand when either is NaN, so NaN values are passed over */
        __m512 hi[4], lo[4];
#pragma GCC unroll 4
        for (int u = 0; u < 4; u++) hi[u] = lo[u] = _mm512_setzero_ps();
#pragma GCC unroll 4
        for (int i = 0; i < QK_K; i += 64) {
#pragma GCC unroll 4
            for (int u = 0; u < 4; u++) {
                const __m512 v = _mm512_loadu_ps(x + i + 16 * u);
                hi[u] = _mm512_max_ps(v, hi[u]);
                lo[u] = _mm512_min_ps(v, lo[u]);
            }
        }
        const __m512 hi_all = _mm512_max_ps(_mm512_max_ps(hi[0], hi[1]), _mm512_max_ps(hi[2], hi[3]));
        const __m512 lo_all = _mm512_min_ps(_mm512_min_ps(lo[0], lo[1]), _mm512_min_ps(lo[2], lo[3]));
        const float top_pos = _mm512_reduce_max_ps(hi_all), top_neg = -_mm512_reduce_min_ps(lo_all);
        const float top = top_pos > top_neg ? top_pos : top_neg;
        if (!(top > 0)) { /* all zero or NaN: the reference's zero block */
            memset(&y[b], 0, sizeof y[b]);
            if (flip) memset(y[b].qs, 0x80, sizeof y[b].qs);
            continue;
        }
        /* iscale = -127 / max, max the first value of the largest magnitude:
         * its sign is the larger side's, and only when +top and -top are both
         * there is the first looked for (a search for every block was a
         * branch mispredicted in most) */
        int negative = top_neg > top_pos;
        if (top_neg == top_pos) {
            const __m512 vtop = _mm512_set1_ps(top);
            for (int i = 0; i < QK_K; i += 16) {
                const __mmask16 hit = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(x + i)), vtop, _CMP_EQ_OQ);
                if (hit) {
                    negative = x[i + __builtin_ctz((unsigned)hit)] < 0;
                    break;
                }
            }
        }
        /* (the division of magnitudes is exact to the sign) */
        const float iscale = negative ? 127.f / top : -127.f / top;
        const __m512 vis = _mm512_set1_ps(iscale);
        __m512i eights[4]; /* 64 values each: sums of 8 values + 128 each */
#pragma GCC unroll 4
        for (int g = 0; g < QK_K; g += 64) {
            __m512i q[4];
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++) {
                q[i] = _mm512_min_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(vis, _mm512_loadu_ps(x + g + 16 * i))), cap);
            }
            const __m512i bytes = _mm512_permutexvar_epi32(
                order, _mm512_packs_epi16(_mm512_packs_epi32(q[0], q[1]), _mm512_packs_epi32(q[2], q[3])));
            const __m512i u = _mm512_xor_si512(bytes, bias);
            _mm512_storeu_si512(y[b].qs + g, flip ? u : bytes);
            eights[g / 64] = _mm512_sad_epu8(u, _mm512_setzero_si512());
        }
        /* sums of 16: the even eights plus the odd, less 16 x 128 */
        const __m512i lo16 = _mm512_sub_epi64(_mm512_add_epi64(_mm512_permutex2var_epi64(eights[0], even, eights[1]),
                                                               _mm512_permutex2var_epi64(eights[0], odd, eights[1])),
                                              _mm512_set1_epi64(16 * 128));
        const __m512i hi16 = _mm512_sub_epi64(_mm512_add_epi64(_mm512_permutex2var_epi64(eights[2], even, eights[3]),
                                                               _mm512_permutex2var_epi64(eights[2], odd, eights[3])),
                                              _mm512_set1_epi64(16 * 128));
        if (sums32) {
            const __m512i s32 = _mm512_add_epi64(_mm512_permutex2var_epi64(lo16, even, hi16),
                                                 _mm512_permutex2var_epi64(lo16, odd, hi16));
            _mm_storeu_si128((__m128i *)y[b].bsums, _mm512_cvtepi64_epi16(s32));
            _mm_storeu_si128((__m128i *)(y[b].bsums + 8), _mm_setzero_si128());
        } else {
            _mm_storeu_si128((__m128i *)y[b].bsums, _mm512_cvtepi64_epi16(lo16));
            _mm_storeu_si128((__m128i *)(y[b].bsums + 8), _mm512_cvtepi64_epi16(hi16));
        }
        y[b].d = 1 / iscale;
    }
}

K512 void lm_quantize_q8_K_avx512(const float *x, block_q8_K *y, int64_t nb) {
    lm_quantize_q8_K_kind_avx512(x, y, nb, 0, 0);
}

/* One entry point per type; the token count becomes a constant so the
 * accumulators stay in registers. Kernels whose registers hold 8 tokens
 * (wide) take up to 8 in one pass over the weights, the others 4 at a time.
 * (With the switch inside the loop over passes, one Q8_0 token decoded
 * 15-18% slower.) */
#define X16_DISPATCH(name, fn, block, per_block, wide)                                                            \
    K512 static void name(const void *group, const void *act, size_t stride, int64_t n, int n_tok, float *y,     \
                          int64_t ldy) {                                                                          \
        const block *w = group;                                                                                   \
        const int64_t nb = n / (per_block);                                                                       \
        const int max_tok = (wide) ? 8 : 4;                                                                       \
        for (; n_tok > max_tok; n_tok -= max_tok) {                                                               \
            fn(w, act, stride, nb, max_tok, y, ldy);                                                              \
            act = (const uint8_t *)act + (size_t)max_tok * stride;                                                \
            y += max_tok * ldy;                                                                                   \
        }                                                                                                         \
        switch (n_tok) {                                                                                          \
        case 1: fn(w, act, stride, nb, 1, y, ldy); break;                                                         \
        case 2: fn(w, act, stride, nb, 2, y, ldy); break;                                                         \
        case 3: fn(w, act, stride, nb, 3, y, ldy); break;                                                         \
        case 4: fn(w, act, stride, nb, 4, y, ldy); break;                                                         \
        case 5: fn(w, act, stride, nb, (wide) ? 5 : 4, y, ldy); break;                                            \
        case 6: fn(w, act, stride, nb, (wide) ? 6 : 4, y, ldy); break;                                            \
        case 7: fn(w, act, stride, nb, (wide) ? 7 : 4, y, ldy); break;                                            \
        default: fn(w, act, stride, nb, (wide) ? 8 : 4, y, ldy); break;                                           \
        }                                                                                                         \
    }
X16_DISPATCH(dot_f16_x16, f16x16_tokens, block_f16x16, 32, 0)
X16_DISPATCH(dot_q4_0_x16, q4_0x16_tokens, block_q4_0x16, 32, 1)
X16_DISPATCH(dot_q8_0_x16, q8_0x16_tokens, block_q8_0x16, 32, 1)
X16_DISPATCH(dot_q4_K_x16, q4_Kx16_tokens, block_q4_Kx16, QK_K, 1)
X16_DISPATCH(dot_q6_K_x16, q6_Kx16_tokens, block_q6_Kx16, QK_K, 1)

/* K-quant prompts, two adjacent groups x many tokens (lm_dot_x32_fn). The
 * x16 kernels above broadcast an activation word for every vpdpbusd and
 * unpack the weights again for every pass of 8 tokens; timing-only
 * variants of Q4_K's said the broadcasts were its limit (one per 8
 * vpdpbusd: 70 -> 76% of one core's int8 peak, all tokens through 48
 * groups of 768 columns), and fewer tokens a pass made the unpacking
 * dearer (two groups, 2 tokens a pass: 52%). So from X32_BYTES_MIN_TOKENS
 * tokens a call, a pair's weights are unpacked to bytes once per call,
 * X32_BYTES_SLICE blocks at a time (per-thread scratch that stays in L1),
 * and all the tokens pass through a slice 6 at a time, each broadcast
 * meeting both groups' rows: per sub-block and token, one chain of
 * vpdpbusd a group, its sum scaled by vpmulld (the sums pass 16 bits, so
 * not the x16 kernels' vpdpwssd). 6 tokens keep 24 accumulators and the
 * scales in registers. The integer sums and every float step are the x16
 * kernels': the results equal two calls of them bit for bit. Q4_K, one
 * thread, groups of a matrix in turn with the tokens a call the model
 * passes (ops.c's chunks): 768 columns x 296 tokens 69-70 -> 74-75% of the
 * int8 peak, 2,048 x 112 61-63 -> 70%, 5,632 x 40 67 -> 69%; 110M Q4_K_M
 * pp512 median ratio 1.08, 1.1B 1.07 (3 alternating pairs each). At 16-32
 * tokens a call the unpacking did not pay (1-5% slower than the x16
 * kernel). */
enum { X32_PASS_TOKENS = 6, X32_BYTES_MIN_TOKENS = 40, X32_BYTES_SLICE = 2 };

/* How one type's pair goes through x32_bytes: expand unpacks nb blocks of
 * both groups (group, group + group_bytes) into e; pass runs T (1..6)
 * tokens through them, adding each block's part to y (rows of 32), whose
 * first block's part with add 0 starts y instead. (Zeroing y ahead of the
 * passes was a tenth of these products' time: every row's first write
 * missed the caches, with no work around it to hide that.) */
typedef struct {
    size_t block_bytes;     /* an x16 block */
    size_t unpacked_bytes;  /* a block of the pair, unpacked */
    void (*expand)(const uint8_t *group, size_t group_bytes, int64_t nb, void *e);
    void (*pass)(const void *e, const uint8_t *group, size_t group_bytes, const void *act, size_t stride, int64_t nb,
                 int T, int add, float *y, int64_t ldy);
} x32_bytes_kind;

/* Returns 0 (nothing written) if the call is too short or out of memory:
 * the caller then takes the x16 kernel on each group. */
K512 static int x32_bytes(const x32_bytes_kind *kind, const void *group, size_t group_bytes, const void *act,
                          size_t stride, int64_t nb, int n_tok, float *y, int64_t ldy) {
    void *e = n_tok >= X32_BYTES_MIN_TOKENS && nb > 0 ? lm_scratch(LM_SCRATCH_WEIGHTS, X32_BYTES_SLICE * kind->unpacked_bytes)
                                                      : NULL;
    if (!e) return 0;
    const int passes = (n_tok + X32_PASS_TOKENS - 1) / X32_PASS_TOKENS;
    for (int64_t b0 = 0; b0 < nb; b0 += X32_BYTES_SLICE) {
        const int64_t ns = nb - b0 < X32_BYTES_SLICE ? nb - b0 : X32_BYTES_SLICE;
        const uint8_t *w = (const uint8_t *)group + (size_t)b0 * kind->block_bytes;
        const uint8_t *a = (const uint8_t *)act + (size_t)b0 * sizeof(block_q8_K);
        kind->expand(w, group_bytes, ns, e);
        /* The next slice, or the pair this thread takes next (x16_groups'
         * order), is prefetched a part before each pass: a 1.1B model's
         * weights come from DRAM, and all at once they were more than the
         * misses a core keeps in flight (Q4_K, 2 x 5,632 columns, 40
         * tokens: 64% of the peak against the x16 kernel's 67%). */
        const int64_t after = nb - b0 - ns, next_blocks = after > 0 ? after : nb;
        const uint8_t *next = after > 0 ? w + (size_t)ns * kind->block_bytes : (const uint8_t *)group + 2 * group_bytes;
        const size_t next_bytes = (size_t)(next_blocks < X32_BYTES_SLICE ? next_blocks : X32_BYTES_SLICE) * kind->block_bytes;
        const size_t part = (next_bytes / (size_t)passes + 63) / 64 * 64;
        for (int pass = 0, t = 0; pass < passes; pass++, t += X32_PASS_TOKENS) {
            /* The first slice starts the next pass's rows of y, asked for
             * with intent to write a pass ahead: lines the per-token steps
             * (often the other core's) had last, whose first stores were
             * otherwise waited for (110M Q4_K_M pp512, 16 alternating
             * pairs: median ratio 1.009 one-CCD, 1.018 two-CCD). */
            for (int i = X32_PASS_TOKENS; b0 == 0 && i < 2 * X32_PASS_TOKENS && t + i < n_tok; i++) {
                __builtin_prefetch(y + (t + i) * ldy, 1);
                __builtin_prefetch(y + (t + i) * ldy + 16, 1);
            }
            if (pass * part < next_bytes) {
                const size_t len = next_bytes - pass * part < part ? next_bytes - pass * part : part;
                prefetch_bytes(next + pass * part, len);
                prefetch_bytes(next + group_bytes + pass * part, len);
            }
            kind->pass(e, w, group_bytes, a + (size_t)t * stride, stride, ns,
                       n_tok - t < X32_PASS_TOKENS ? n_tok - t : X32_PASS_TOKENS, b0 > 0, y + t * ldy, ldy);
        }
    }
    return 1;
}

/* A pass function from a kernel taking T as a constant (registers). */
#define X32_PASS(name, tokens_fn)                                                                                    \
    K512 static void name(const void *e, const uint8_t *group, size_t group_bytes, const void *act, size_t stride,   \
                          int64_t nb, int T, int add, float *y, int64_t ldy) {                                       \
        switch (T) {                                                                                                 \
        case 1: tokens_fn(e, group, group_bytes, act, stride, nb, 1, add, y, ldy); break;                            \
        case 2: tokens_fn(e, group, group_bytes, act, stride, nb, 2, add, y, ldy); break;                            \
        case 3: tokens_fn(e, group, group_bytes, act, stride, nb, 3, add, y, ldy); break;                            \
        case 4: tokens_fn(e, group, group_bytes, act, stride, nb, 4, add, y, ldy); break;                            \
        case 5: tokens_fn(e, group, group_bytes, act, stride, nb, 5, add, y, ldy); break;                            \
        default: tokens_fn(e, group, group_bytes, act, stride, nb, X32_PASS_TOKENS, add, y, ldy); break;             \
        }                                                                                                            \
    }

/* The entry point: x32_bytes, or the x16 kernel on each group. */
#define X32_BYTES_DISPATCH(name, kind, x16)                                                                          \
    K512 static void name(const void *group, size_t group_bytes, const void *act, size_t stride, int64_t n,         \
                          int n_tok, float *y, int64_t ldy) {                                                        \
        if (x32_bytes(&(kind), group, group_bytes, act, stride, n / QK_K, n_tok, y, ldy)) return;                   \
        x16(group, act, stride, n, n_tok, y, ldy);                                                                   \
        x16((const uint8_t *)group + group_bytes, act, stride, n, n_tok, y + 16, ldy);                               \
    }

/* One sub-block of a pair for T tokens: per group, one chain of `words`
 * vpdpbusd (q: [word][group][64] bytes, the 16 rows' 4 weights each) against
 * the tokens' broadcast activation words from byte `col` of their block b,
 * scaled by the rows' scales (sc: [group][16]) into isum. weights_unsigned:
 * the weights are vpdpbusd's unsigned operand (Q4_K's 0..15), else the
 * activations are (Q6_K's + 128 against signed weights). */
K512 static inline __attribute__((always_inline)) void x32_subblock(const uint8_t *q, const int32_t *sc, const int words,
                                                                   const int weights_unsigned, const void *act,
                                                                   size_t stride, int64_t b, int col, const int T,
                                                                   __m512i isum[2][X32_PASS_TOKENS]) {
    __m512i c[2][X32_PASS_TOKENS];
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) c[0][t] = c[1][t] = _mm512_setzero_si512();
#pragma GCC unroll 8
    for (int k = 0; k < words; k++) {
        const __m512i w0 = _mm512_loadu_si512(q + k * 128), w1 = _mm512_loadu_si512(q + k * 128 + 64);
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            const block_q8_K *x = (const block_q8_K *)((const uint8_t *)act + (size_t)t * stride) + b;
            const __m512i xb = _mm512_set1_epi32(((const i32_bytes *)(x->qs + col))[k]);
            c[0][t] = weights_unsigned ? _mm512_dpbusd_epi32(c[0][t], w0, xb) : _mm512_dpbusd_epi32(c[0][t], xb, w0);
            c[1][t] = weights_unsigned ? _mm512_dpbusd_epi32(c[1][t], w1, xb) : _mm512_dpbusd_epi32(c[1][t], xb, w1);
        }
    }
    const __m512i sc0 = _mm512_loadu_si512(sc), sc1 = _mm512_loadu_si512(sc + 16);
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) {
        isum[0][t] = _mm512_add_epi32(isum[0][t], _mm512_mullo_epi32(c[0][t], sc0));
        isum[1][t] = _mm512_add_epi32(isum[1][t], _mm512_mullo_epi32(c[1][t], sc1));
    }
}

/* Q4_K: a sub-block (32 columns) of a pair, unpacked. */
typedef struct {
    uint8_t q[8][2][64]; /* [word k][group]: the 16 rows' bytes 4k .. 4k + 3 of the sub-block, 0..15 */
    int32_t sc[2][16];   /* [group]: the rows' scales */
} q4k_sub_bytes;

/* e[b * 8 + j]: sub-block j of block b. */
K512 static void q4_K_expand_pair(const uint8_t *group, size_t group_bytes, int64_t nb, void *out) {
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    q4k_sub_bytes *e = out;
    for (int64_t b = 0; b < nb; b++) {
        q4k_sub_bytes *eb = e + b * 8;
        for (int G = 0; G < 2; G++) {
            const block_q4_Kx16 *p = (const block_q4_Kx16 *)(group + (size_t)G * group_bytes) + b;
            for (int g = 0; g < 4; g++) { /* low nibbles: sub-block 2g; high: 2g + 1 */
                for (int k = 0; k < 8; k++) {
                    const __m512i raw = _mm512_loadu_si512(p->qs[g][k]);
                    _mm512_storeu_si512(eb[2 * g].q[k][G], _mm512_and_si512(raw, low4));
                    _mm512_storeu_si512(eb[2 * g + 1].q[k][G], _mm512_and_si512(_mm512_srli_epi16(raw, 4), low4));
                }
            }
            for (int j = 0; j < 8; j++) {
                _mm512_storeu_si512(eb[j].sc[G], _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p->sc[j])));
            }
        }
    }
}

K512 static inline __attribute__((always_inline)) void q4_Kx32_tokens(const q4k_sub_bytes *e, const uint8_t *group,
                                                                    size_t group_bytes, const void *act, size_t stride,
                                                                    int64_t nb, const int T, int add, float *y,
                                                                    int64_t ldy) {
    for (int64_t b = 0; b < nb; b++) {
        __m512i isum[2][X32_PASS_TOKENS];
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) isum[0][t] = isum[1][t] = _mm512_setzero_si512();
#pragma GCC unroll 1
        for (int j = 0; j < 8; j++) {
            const q4k_sub_bytes *s = &e[b * 8 + j];
            x32_subblock(s->q[0][0], s->sc[0], 8, 1, act, stride, b, 32 * j, T, isum);
        }
        /* The mins and the float steps, as in q4_Kx16_tokens. */
#pragma GCC unroll 2
        for (int G = 0; G < 2; G++) {
            const block_q4_Kx16 *p = (const block_q4_Kx16 *)(group + (size_t)G * group_bytes) + b;
            const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p->d));
            const __m512 dm = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p->dmin));
            __m512i mins[4];
#pragma GCC unroll 4
            for (int q = 0; q < 4; q++) mins[q] = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)p->mn[q]));
#pragma GCC unroll 8
            for (int t = 0; t < T; t++) {
                const block_q8_K *x = (const block_q8_K *)((const uint8_t *)act + (size_t)t * stride) + b;
                const i32_bytes *sums = (const i32_bytes *)x->bsums;
                __m512i m = _mm512_setzero_si512();
#pragma GCC unroll 4
                for (int q = 0; q < 4; q++) m = _mm512_dpwssd_epi32(m, mins[q], _mm512_set1_epi32(sums[q]));
                const __m512 f = _mm512_fmsub_ps(_mm512_cvtepi32_ps(isum[G][t]), dw, _mm512_mul_ps(_mm512_cvtepi32_ps(m), dm));
                float *yt = y + t * ldy + 16 * G;
                const __m512 prev = add || b > 0 ? _mm512_loadu_ps(yt) : _mm512_setzero_ps();
                _mm512_storeu_ps(yt, _mm512_fmadd_ps(f, _mm512_set1_ps(x->d), prev));
            }
        }
    }
}
X32_PASS(q4_K_x32_pass, q4_Kx32_tokens)
static const x32_bytes_kind q4_K_bytes = {sizeof(block_q4_Kx16), 8 * sizeof(q4k_sub_bytes), q4_K_expand_pair, q4_K_x32_pass};
X32_BYTES_DISPATCH(dot_q4_K_x32, q4_K_bytes, dot_q4_K_x16)

/* Q6_K: a sub-block (16 columns) of a pair, unpacked. */
typedef struct {
    int8_t q[4][2][64]; /* [word k][group]: the 16 rows' values - 32 of columns 4k .. 4k + 3 */
    int32_t sc[2][16];  /* [group]: the rows' scales */
} q6k_sub_bytes;

/* e[b * 16 + s]: sub-block s of block b. */
K512 static void q6_K_expand_pair(const uint8_t *group, size_t group_bytes, int64_t nb, void *out) {
    const __m512i off = _mm512_set1_epi8(32);
    q6k_sub_bytes *e = out;
    for (int64_t b = 0; b < nb; b++) {
        q6k_sub_bytes *eb = e + b * 16;
        for (int G = 0; G < 2; G++) {
            const block_q6_Kx16 *p = (const block_q6_Kx16 *)(group + (size_t)G * group_bytes) + b;
            for (int s = 0; s < 16; s++) {
                __m512i v[4];
                q6_K_subblock(p->qs[s][0], v);
                for (int k = 0; k < 4; k++) _mm512_storeu_si512(eb[s].q[k][G], _mm512_sub_epi8(v[k], off));
            }
            for (int q = 0; q < 8; q++) { /* sc[q]: sub-blocks 2q, 2q + 1 of each row in turn */
                const __m512i pairs = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)p->sc[q]));
                _mm512_storeu_si512(eb[2 * q].sc[G], _mm512_srai_epi32(_mm512_slli_epi32(pairs, 16), 16));
                _mm512_storeu_si512(eb[2 * q + 1].sc[G], _mm512_srai_epi32(pairs, 16));
            }
        }
    }
}

K512 static inline __attribute__((always_inline)) void q6_Kx32_tokens(const q6k_sub_bytes *e, const uint8_t *group,
                                                                    size_t group_bytes, const void *act, size_t stride,
                                                                    int64_t nb, const int T, int add, float *y,
                                                                    int64_t ldy) {
    for (int64_t b = 0; b < nb; b++) {
        const block_q6_Kx16 *p[2] = {(const block_q6_Kx16 *)group + b, (const block_q6_Kx16 *)(group + group_bytes) + b};
        /* the activations come + 128: the sums start at minus its part (corr) */
        __m512i isum[2][X32_PASS_TOKENS];
#pragma GCC unroll 2
        for (int G = 0; G < 2; G++) {
            const __m512i start = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_loadu_si512(p[G]->corr));
#pragma GCC unroll 8
            for (int t = 0; t < T; t++) isum[G][t] = start;
        }
#pragma GCC unroll 1
        for (int s = 0; s < 16; s++) {
            const q6k_sub_bytes *sb = &e[b * 16 + s];
            x32_subblock((const uint8_t *)sb->q[0][0], sb->sc[0], 4, 0, act, stride, b, 16 * s, T, isum);
        }
        /* The float step, as in q6_Kx16_tokens. */
#pragma GCC unroll 2
        for (int G = 0; G < 2; G++) {
            const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p[G]->d));
#pragma GCC unroll 8
            for (int t = 0; t < T; t++) {
                const block_q8_K *x = (const block_q8_K *)((const uint8_t *)act + (size_t)t * stride) + b;
                float *yt = y + t * ldy + 16 * G;
                const __m512 prev = add || b > 0 ? _mm512_loadu_ps(yt) : _mm512_setzero_ps();
                _mm512_storeu_ps(yt, _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[G][t]), _mm512_mul_ps(dw, _mm512_set1_ps(x->d)), prev));
            }
        }
    }
}
X32_PASS(q6_K_x32_pass, q6_Kx32_tokens)
static const x32_bytes_kind q6_K_bytes = {sizeof(block_q6_Kx16), 16 * sizeof(q6k_sub_bytes), q6_K_expand_pair, q6_K_x32_pass};
X32_BYTES_DISPATCH(dot_q6_K_x32, q6_K_bytes, dot_q6_K_x16)

const lm_kernels lm_kernels_avx512_vnni_only = {
    "avx512",
    {
        [LM_TYPE_Q4_0] = dot_q4_0_x2,
        [LM_TYPE_Q4_K] = dot_q4_K_512,
        [LM_TYPE_Q6_K] = dot_q6_K_512,
    },
    {0}, /* dot4: kernels.c drops AVX2's where the activation kind differs */
    {
        [LM_TYPE_F16] = dot_f16_x16,
        [LM_TYPE_Q4_0] = dot_q4_0_x16,
        [LM_TYPE_Q8_0] = dot_q8_0_x16,
        [LM_TYPE_Q4_K] = dot_q4_K_x16,
        [LM_TYPE_Q6_K] = dot_q6_K_x16,
    },
    attn_scores_512,
    attn_values_512,
    attn_scores_f16_512,
    attn_values_f16_512,
    to_f16_512,
    from_f16_512,
    NULL, /* softmax: AVX2's */
    swiglu_512,
    {
        [LM_TYPE_Q4_0] = LM_ACT_Q4_0_X2,
    },
    {
        [LM_TYPE_F16] = dot_f16_x16_pair,
        [LM_TYPE_Q4_0] = dot_q4_0_x16_pair,
        [LM_TYPE_Q8_0] = dot_q8_0_x16_pair,
    },
    softmax_exp_512,
    {
        [LM_TYPE_Q4_0] = dot_q4_0_x32,
        [LM_TYPE_Q8_0] = dot_q8_0_x32,
        [LM_TYPE_Q4_K] = dot_q4_K_x32,
        [LM_TYPE_Q6_K] = dot_q6_K_x32,
    },
    rope_512,
    softmax_exp_cols_512,
    rmsnorm_512,
    add_512,
    rope_cols_512,
};
#endif
