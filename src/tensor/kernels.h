/* Dot-product kernels per weight type, in one table per instruction set.
 *
 * For integer types the activations are quantised once per matrix-vector
 * product (as llama.cpp does): to q8a blocks (32 int8 and a float scale) for
 * Q8_0 and Q4_0 weights, to Q8_K blocks for K-quants. F16, BF16 and F32
 * rows take f32 activations. Every table entry computes the same sum; the
 * scalar table is the reference the others are tested against. */
#ifndef LLMOS_KERNELS_H
#define LLMOS_KERNELS_H

#include "quant_blocks.h"
#include "llmos/types.h"

#include <stddef.h>
#include <stdint.h>

/* Activations for Q8_0 / Q4_0 weights: x = d * qs. */
typedef struct { float d; int8_t qs[32]; } block_q8a;

typedef enum lm_act_kind {
    LM_ACT_F32 = 0,     /* the row is dotted with f32 activations */
    LM_ACT_Q8A = 1,     /* with block_q8a activations */
    LM_ACT_Q8K = 2,     /* with block_q8_K activations */
    LM_ACT_Q4_0_X2 = 3, /* with block_q8_x2, values in the order Q4_0 pairs unpack to */
    LM_ACT_Q8S = 4,     /* with block_q8s (x16 kernels) */
    LM_ACT_Q8K32 = 5,   /* with block_q8_K whose bsums[j] (j < 8) sum values 32j..32j + 31, 8..15 zero
                           (Q4_K's x16 kernels: a sub-block's min meets one sum) */
    LM_ACT_Q8K_U = 6    /* with block_q8_K whose values are stored + 128, unsigned (Q6_K's x16 kernels:
                           unsigned activations against signed weights, packed.h) */
} lm_act_kind;

/* A q8a block with the sum of its values, which the x16 kernels need to
 * cancel the offset of their unsigned weights (packed.h). */
typedef struct { float d; int32_t sum; int8_t qs[32]; } block_q8s;

/* The q8a blocks 2p and 2p + 1 (the same int8 values and scales), laid out
 * for 512-bit VNNI kernels, which take two weight blocks per instruction:
 *   qs    the 64 values in the order the two weight blocks unpack to
 *         (Q4_0: b0[0:16] b1[0:16] b0[16:32] b1[16:32]);
 *   corr  per int32 lane (4 values), the term that cancels the offset in
 *         the unsigned weights vpdpbusd needs (Q4_0's 0..15 stand for
 *         -8..7: -8 x the lane's sum), so the instruction can start from it;
 *   dx    each lane's activation scale.
 * A row with an odd number of blocks ends in a half-empty pair (zeros). */
typedef struct { int8_t qs[64]; int32_t corr[16]; float dx[16]; } block_q8_x2;

/* n is a multiple of the weight type's block size; act points to the
 * activations in the kind the type asks for. */
typedef float (*lm_dot_fn)(const void *row, const void *act, int64_t n);

/* Four dot products of one row with four activation vectors (act,
 * act + stride, ...), each summed exactly as lm_dot_fn sums it: prefill
 * unpacks each weight block once for four tokens. */
typedef void (*lm_dot4_fn)(const void *row, const void *act, size_t stride, int64_t n, float out[4]);

/* Rows 16g..16g+15 of an x16 matrix (group: its first block, packed.h)
 * dotted with n_tok (1 or more) activation vectors of kind lm_x16_act (act,
 * act + stride, ...): y[t * ldy + i] = dot(row i, token t). Each token's
 * sums run in the same order whatever n_tok is, so a token's results do
 * not depend on which others share the call. */
typedef void (*lm_dot_x16_fn)(const void *group, const void *act, size_t stride, int64_t n, int n_tok, float *y,
                              int64_t ldy);

/* Two full groups of one x16 matrix (or of two with the same type and
 * columns) dotted with one activation vector: ya = group a's 16 results, yb
 * = group b's, equal bit for bit to two lm_dot_x16_fn calls. Reading two
 * groups at once keeps two memory streams going per thread. */
typedef void (*lm_dot_x16_pair_fn)(const void *group_a, const void *group_b, const void *act, int64_t n, float *ya,
                                   float *yb);

/* Groups g and g + 1 of one x16 matrix (group: g's first block; the next
 * starts group_bytes later) dotted with n_tok activation vectors:
 * y[t * ldy + i], i < 32, bit for bit two lm_dot_x16_fn calls. Each
 * broadcast activation meets both groups' weights: one broadcast per two
 * vpdpbusd instead of one per vpdpbusd. */
typedef void (*lm_dot_x32_fn)(const void *group, size_t group_bytes, const void *act, size_t stride, int64_t n,
                              int n_tok, float *y, int64_t ldy);
/* Attention of one query over n keys (rows of hd floats, stride floats
 * apart): att[t] = scale * dot(q, k_t). */
typedef void (*lm_attn_scores_fn)(float *att, const float *q, const float *k, int64_t stride, int64_t n, int64_t hd,
                                  float scale);
/* out (hd) = sum over t < n of att[t] * v_t. */
typedef void (*lm_attn_values_fn)(float *out, const float *att, const float *v, int64_t stride, int64_t n, int64_t hd);

/* The same over keys and values stored as IEEE half (an f16 KV cache):
 * each element is converted exactly to float, then used as above. */
typedef void (*lm_attn_scores_f16_fn)(float *att, const float *q, const uint16_t *k, int64_t stride, int64_t n,
                                      int64_t hd, float scale);
typedef void (*lm_attn_values_f16_fn)(float *out, const float *att, const uint16_t *v, int64_t stride, int64_t n,
                                      int64_t hd);
/* dst (n) = src rounded to IEEE half (to nearest even), or back exactly. */
typedef void (*lm_to_f16_fn)(uint16_t *dst, const float *src, int64_t n);
typedef void (*lm_from_f16_fn)(float *dst, const uint16_t *src, int64_t n);

/* x (n) = softmax(x), in place. */
typedef void (*lm_softmax_fn)(float *x, int64_t n);

/* x (n) = e^(scale (x - max x)), in place (scale > 0); returns their sum.
 * softmax(scale x) is this times 1 / sum: the prefill's attention takes its
 * raw scores and scales its output rows instead (hd values a query, not one
 * per key). */
typedef double (*lm_softmax_exp_fn)(float *x, int64_t n, float scale);

/* gate (n) = silu(gate) * up: the feed-forward's gate, in place. */
typedef void (*lm_swiglu_fn)(float *gate, const float *up, int64_t n);

/* Rotary position embedding in place: x holds n_heads heads of head_dim
 * values; in each, the first rope_dim values are rope_dim / 2 pairs
 * (x[2i], x[2i + 1]) rotated by the angle whose cosine and sine are
 * cos_sin[2i] and cos_sin[2i + 1]: (a c - b s, a s + b c), each product
 * rounded, then the sum (no fused multiply-add: every table gives the
 * same bits). */
typedef void (*lm_rope_fn)(float *x, int64_t n_heads, int64_t head_dim, int64_t rope_dim, const float *cos_sin);

/* The same rotation for a block of queries in the transposed layout the
 * prefill attention packs (tensor/attention.c): qt has nr columns, row r
 * holding dimension r of each query; column j's pairs (qt[2i][j],
 * qt[2i + 1][j]) turn by the angle of position pos + j, whose cosine and
 * sine are cos_t[i * stride + pos + j] and sin_t[i * stride + pos + j].
 * The same arithmetic as lm_rope_fn: a query turned here has the bits
 * lm_rope_fn gives it. */
typedef void (*lm_rope_cols_fn)(float *qt, int64_t nr, int64_t rope_dim, const float *cos_t, const float *sin_t,
                                int64_t stride, int64_t pos);
void lm_rope_cols_ref(float *qt, int64_t nr, int64_t rope_dim, const float *cos_t, const float *sin_t, int64_t stride,
                      int64_t pos);

/* Causal softmax numerators down the columns of s (rows, width), row-major,
 * width <= 64: the prefill attention's scores with keys down and queries
 * across. Column j sees rows 0 .. first + j (all rows if that is past the
 * last), which become e^(scale (s - the column's maximum over them)), as
 * lm_softmax_exp_fn's, and the rows past them 0; sums[j] = the sum of the
 * column's exponentials (accumulated in double). */
typedef void (*lm_softmax_exp_cols_fn)(float *s, int64_t rows, int64_t width, int64_t first, float scale, float *sums);

/* out (n) = x * scale * weight, scale = 1 / sqrt(mean of x^2 + eps), the
 * mean's sum in double as lm_sum_of_squares_finish orders it: every table
 * gives the same bits. out may be x. */
typedef void (*lm_rmsnorm_fn)(float *out, const float *x, const float *weight, int64_t n, float eps);

/* rmsnorm's sum of squares, in double: value i's square (exact in double)
 * joins partial sum i % 32, each in order of i, and the 32 are added
 * pairwise (p[j] += p[j + s] for s = 16, 8, 4, 2, 1). The vector tables
 * keep the partial sums of values 0 .. from - 1 in registers (from a
 * multiple of 32) and finish here; 32 chains of adds, not 8, so that a
 * 768-value norm is not one chain of 96 dependent adds. */
static inline double lm_sum_of_squares_finish(double p[32], const float *x, int64_t from, int64_t n) {
    for (int64_t i = from; i < n; i++) p[i % 32] += (double)x[i] * x[i];
    for (int s = 16; s >= 1; s /= 2) {
        for (int j = 0; j < s; j++) p[j] += p[j + s];
    }
    return p[0];
}
/* x (n) += a. */
typedef void (*lm_add_fn)(float *x, const float *a, int64_t n);

typedef struct lm_kernels {
    const char *name;               /* "scalar", "avx2", "avx512" */
    lm_dot_fn dot[LM_TYPE_COUNT_];   /* NULL: no kernel for that type */
    lm_dot4_fn dot4[LM_TYPE_COUNT_]; /* NULL: four calls of dot */
    lm_dot_x16_fn dot_x16[LM_TYPE_COUNT_]; /* NULL: the type is not packed for this table */
    lm_attn_scores_fn attn_scores;
    lm_attn_values_fn attn_values;
    lm_attn_scores_f16_fn attn_scores_f16;
    lm_attn_values_f16_fn attn_values_f16;
    lm_to_f16_fn to_f16;
    lm_from_f16_fn from_f16;
    lm_softmax_fn softmax;
    lm_swiglu_fn swiglu;
    lm_act_kind act[LM_TYPE_COUNT_]; /* 0 (F32): lm_act_kind_for's kind */
    lm_dot_x16_pair_fn dot_x16_pair[LM_TYPE_COUNT_]; /* NULL: groups go one at a time */
    lm_softmax_exp_fn softmax_exp;
    lm_dot_x32_fn dot_x32[LM_TYPE_COUNT_]; /* NULL: a prompt's groups go one at a time */
    lm_rope_fn rope;
    lm_softmax_exp_cols_fn softmax_exp_cols;
    lm_rmsnorm_fn rmsnorm;
    lm_add_fn add;
    lm_rope_cols_fn rope_cols;
} lm_kernels;

/* The activation kind table k's kernel for type t takes. */
lm_act_kind lm_kernels_act(const lm_kernels *k, lm_type t);

/* The activation kind the x16 kernels of type t take: f32 for F16, Q8_K for
 * Q6_K, Q8_K with sums of 32 for Q4_K, block_q8s otherwise. */
lm_act_kind lm_x16_act(lm_type t);

/* The activation kind each weight type's kernels take (F32 if none). */
lm_act_kind lm_act_kind_for(lm_type t);
/* Bytes of activations of that kind for n values. */
size_t lm_act_size(lm_act_kind kind, int64_t n);
/* Quantises n activations into the kind (a no-op copy for F32). */
void lm_act_quantize(lm_act_kind kind, const float *x, void *out, int64_t n);

/* nb blocks of 32 activations to q8a: d = max|x| / 127, qs = round(x / d)
 * (halves away from zero), where max|x| is over the block or, when nb is a
 * multiple of 8, over its run of 8 blocks (256 values), which then share
 * one scale (stored in each block): the x16 kernels multiply by the
 * activations' scale once a run instead of once a block (a prompt's Q8_0
 * kernel, one thread: 72-73 -> 78-80% of the int8 peak), and every layout
 * and table quantises alike. The plain C reference, and AVX2's, equal to it
 * bit for bit, which lm_act_quantize uses unless LLMOS_KERNELS=scalar (a
 * decode step quantises every matrix's input: with libm's roundf per value
 * that was a tenth of a 110M model's token). */
void lm_quantize_q8a_ref(const float *x, block_q8a *y, int64_t nb);
/* The same values in block_q8s (the x16 kernels' Q8_0 and Q4_0
 * activations), with each block's sum. */
void lm_quantize_q8s_ref(const float *x, block_q8s *y, int64_t nb);
#if defined(__x86_64__)
void lm_quantize_q8a_avx2(const float *x, block_q8a *y, int64_t nb);
/* lm_quantize_q8s_ref's result bit for bit. */
void lm_quantize_q8s_avx2(const float *x, block_q8s *y, int64_t nb);
/* lm_quantize_q8s_avx2's result with AVX-512 (BW), bit for bit: what the
 * avx512 table's x16 products take. */
void lm_quantize_q8s_avx512(const float *x, block_q8s *y, int64_t nb);
/* nb blocks of 256 activations to Q8_K, equal to lm_quantize_row's bit for
 * bit (what the K-quant kernels take; lm_act_quantize uses it the same way). */
void lm_quantize_q8_K_avx2(const float *x, block_q8_K *y, int64_t nb);
/* The same with AVX-512 (BW), bit for bit, for the avx512 table. */
void lm_quantize_q8_K_avx512(const float *x, block_q8_K *y, int64_t nb);
/* The same with an activation kind's changes made in the pass: sums32, bsums[0..7] are the sums of 32
 * values and bsums[8..15] 0 (LM_ACT_Q8K32); flip, the bytes are the values + 128 (LM_ACT_Q8K_U). */
void lm_quantize_q8_K_kind_avx512(const float *x, block_q8_K *y, int64_t nb, int sums32, int flip);
#endif

/* The best table this CPU runs, or the one LLMOS_KERNELS names
 * (scalar, avx2, avx512); chosen once. */
const lm_kernels *lm_kernels_best(void);
/* A named table, or NULL if unknown or this CPU cannot run it. */
const lm_kernels *lm_kernels_named(const char *name);

extern const lm_kernels lm_kernels_scalar;
#if defined(__x86_64__)
extern const lm_kernels lm_kernels_avx2;
/* The types with a VNNI kernel; kernels.c fills the rest from AVX2. */
extern const lm_kernels lm_kernels_avx512_vnni_only;
#endif

#endif
