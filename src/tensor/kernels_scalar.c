/* The reference kernels: plain C, integer sums exact, one float multiply per block. */
#include "../base/cpu.h"
#include "fp16.h"
#include "kernels.h"
#include "ops.h"

#include <math.h>
#include <string.h>


lm_act_kind lm_act_kind_for(lm_type t) {
    switch (t) {
    case LM_TYPE_Q8_0: case LM_TYPE_Q4_0: return LM_ACT_Q8A;
    case LM_TYPE_Q4_K: case LM_TYPE_Q5_K: case LM_TYPE_Q6_K: return LM_ACT_Q8K;
    default: return LM_ACT_F32;
    }
}

lm_act_kind lm_x16_act(lm_type t) {
    switch (t) {
    case LM_TYPE_Q4_K: return LM_ACT_Q8K32;
    case LM_TYPE_Q6_K: return LM_ACT_Q8K_U;
    case LM_TYPE_F16: return LM_ACT_F32;
    default: return LM_ACT_Q8S;
    }
}

lm_act_kind lm_kernels_act(const lm_kernels *k, lm_type t) { return k->act[t] ? k->act[t] : lm_act_kind_for(t); }

size_t lm_act_size(lm_act_kind kind, int64_t n) {
    switch (kind) {
    case LM_ACT_Q4_0_X2: return (size_t)((n / 32 + 1) / 2) * sizeof(block_q8_x2);
    case LM_ACT_Q8A: return (size_t)(n / 32) * sizeof(block_q8a);
    case LM_ACT_Q8S: return (size_t)(n / 32) * sizeof(block_q8s);
    case LM_ACT_Q8K: case LM_ACT_Q8K32: case LM_ACT_Q8K_U: return (size_t)(n / QK_K) * sizeof(block_q8_K);
    default: return (size_t)n * sizeof(float);
    }
}

/* Block b of q8a activations for x. */
/* The blocks of nb that share a scale (lm_quantize_q8a_ref). */
static int64_t q8_run(int64_t nb) { return nb % 8 == 0 ? 8 : 1; }

/* The scale of n values: their largest magnitude / 127. */
static float q8_scale(const float *x, int64_t n) {
    float amax = 0.0f;
    for (int64_t j = 0; j < n; j++) amax = fmaxf(amax, fabsf(x[j]));
    return amax / 127;
}

/* 32 values at scale d; returns their sum. */
static int32_t q8_block_with(const float *x, float d, int8_t *qs) {
    const float id = d ? 1.0f / d : 0.0f;
    int32_t sum = 0;
    for (int j = 0; j < 32; j++) {
        qs[j] = (int8_t)roundf(x[j] * id);
        sum += qs[j];
    }
    return sum;
}

void lm_quantize_q8a_ref(const float *x, block_q8a *y, int64_t nb) {
    const int64_t run = q8_run(nb);
    for (int64_t b0 = 0; b0 < nb; b0 += run) {
        block_q8s s[8]; /* a run as block_q8s quantises it (a whole run of 8, or one block), less the sums */
        lm_quantize_q8s_ref(x + 32 * b0, s, run);
        for (int64_t i = 0; i < run; i++) {
            y[b0 + i].d = s[i].d;
            memcpy(y[b0 + i].qs, s[i].qs, sizeof s[i].qs);
        }
    }
}

void lm_quantize_q8s_ref(const float *x, block_q8s *y, int64_t nb) {
    const int64_t run = q8_run(nb);
    for (int64_t b0 = 0; b0 < nb; b0 += run) {
        const float d = q8_scale(x + 32 * b0, 32 * run);
        for (int64_t b = b0; b < b0 + run; b++) {
            y[b].d = d;
            y[b].sum = q8_block_with(x + 32 * b, d, y[b].qs);
        }
    }
}

/* Whether the bit-identical AVX2 activation quantisers may run: not when
 * LLMOS_KERNELS=scalar forces the reference. */
static int act_avx2(void) {
#if defined(__x86_64__)
    static int use_avx2 = -1; /* decided once; threads that race here decide alike */
    int use = __atomic_load_n(&use_avx2, __ATOMIC_RELAXED);
    if (use < 0) {
        use = lm_kernels_best() != &lm_kernels_scalar && lm_cpu_has_avx2();
        __atomic_store_n(&use_avx2, use, __ATOMIC_RELAXED);
    }
    return use;
#else
    return 0;
#endif
}

/* Whether the AVX-512 one may: with the avx512 table (LLMOS_KERNELS=avx2
 * keeps AVX2's, so that path runs as it would on an AVX2 machine). */
static int act_avx512(void) {
#if defined(__x86_64__)
    static int use_avx512 = -1;
    int use = __atomic_load_n(&use_avx512, __ATOMIC_RELAXED);
    if (use < 0) {
        use = act_avx2() && lm_cpu_has_avx512_vnni() && lm_kernels_best() == lm_kernels_named("avx512");
        __atomic_store_n(&use_avx512, use, __ATOMIC_RELAXED);
    }
    return use;
#else
    return 0;
#endif
}

/* q8a blocks through the fastest bit-identical path. */
static void quantize_q8a(const float *x, block_q8a *y, int64_t nb) {
#if defined(__x86_64__)
    if (act_avx2()) {
        lm_quantize_q8a_avx2(x, y, nb);
        return;
    }
#endif
    lm_quantize_q8a_ref(x, y, nb);
}

/* Pairs of q8a blocks in the block_q8_x2 layout for Q4_0 weights. */
static void quantize_q4_0_x2(const float *x, block_q8_x2 *y, int64_t nb) {
    /* runs of 8 blocks sharing a scale, as quantize_q8a of the whole row */
    block_q8a run[8];
    for (int64_t p = 0; p < (nb + 1) / 2; p++) {
        block_q8a b[2];
        memset(b, 0, sizeof b);
        if (nb % 8 == 0) {
            if (p % 4 == 0) quantize_q8a(x + 64 * p, run, 8);
            memcpy(b, run + 2 * (p % 4), sizeof b);
        } else {
            quantize_q8a(x + 64 * p, b, 2 * p + 1 < nb ? 2 : 1);
        }
        block_q8_x2 *o = &y[p];
        for (int lane = 0; lane < 16; lane++) {
            /* Which block and which of its values the lane's 4 bytes hold:
             * Q4_0 pairs unpack to b0[0:16] b1[0:16] b0[16:32] b1[16:32]. */
            int blk = (lane / 4) % 2, first = 16 * (lane / 8) + 4 * (lane % 4);
            int32_t sum = 0;
            for (int j = 0; j < 4; j++) {
                o->qs[4 * lane + j] = b[blk].qs[first + j];
                sum += b[blk].qs[first + j];
            }
            o->corr[lane] = -8 * sum;
            o->dx[lane] = b[blk].d;
        }
    }
}

/* q8a blocks with their sums, for the x16 kernels (one block at a time
 * through quantize_q8a and a scalar sum, this was 14% of a 512-token
 * Q8_0 product). */
static void quantize_q8s(const float *x, block_q8s *y, int64_t nb) {
#if defined(__x86_64__)
    if (act_avx512()) {
        lm_quantize_q8s_avx512(x, y, nb);
        return;
    }
    if (act_avx2()) {
        lm_quantize_q8s_avx2(x, y, nb);
        return;
    }
#endif
    lm_quantize_q8s_ref(x, y, nb);
}

/* n / QK_K blocks of Q8_K activations, bit for bit lm_quantize_row's. */
static void quantize_q8_K(const float *x, block_q8_K *y, int64_t n) {
#if defined(__x86_64__)
    if (act_avx512()) {
        lm_quantize_q8_K_avx512(x, y, n / QK_K);
        return;
    }
    if (act_avx2()) {
        lm_quantize_q8_K_avx2(x, y, n / QK_K);
        return;
    }
#endif
    lm_quantize_row(LM_TYPE_Q8_K, x, y, n, NULL);
}

void lm_act_quantize(lm_act_kind kind, const float *x, void *out, int64_t n) {
    if (kind == LM_ACT_Q8S) {
        quantize_q8s(x, out, n / 32);
    } else if (kind == LM_ACT_Q4_0_X2) {
        quantize_q4_0_x2(x, out, n / 32);
    } else if (kind == LM_ACT_Q8K || kind == LM_ACT_Q8K32 || kind == LM_ACT_Q8K_U) {
#if defined(__x86_64__)
        if (act_avx512()) { /* the kind's changes in the same pass */
            lm_quantize_q8_K_kind_avx512(x, out, n / QK_K, kind == LM_ACT_Q8K32, kind == LM_ACT_Q8K_U);
            return;
        }
#endif
        quantize_q8_K(x, out, n);
        if (kind == LM_ACT_Q8K_U) {
            block_q8_K *y = out;
            for (int64_t b = 0; b < n / QK_K; b++) { /* value + 128: the top bit flipped */
                for (int j = 0; j < QK_K; j++) y[b].qs[j] = (int8_t)((uint8_t)y[b].qs[j] ^ 0x80u);
            }
        }
        if (kind == LM_ACT_Q8K32) {
            block_q8_K *y = out;
            for (int64_t b = 0; b < n / QK_K; b++) { /* |sum of 32| <= 32 x 128: int16 */
                for (int j = 0; j < 8; j++) y[b].bsums[j] = (int16_t)(y[b].bsums[2 * j] + y[b].bsums[2 * j + 1]);
                memset(y[b].bsums + 8, 0, 8 * sizeof *y[b].bsums);
            }
        }
    } else if (kind == LM_ACT_Q8A) {
        quantize_q8a(x, out, n / 32);
    } else {
        memcpy(out, x, (size_t)n * sizeof(float));
    }
}

static float dot_f32(const void *row, const void *act, int64_t n) { return lm_dot_f32(row, act, n); }

static float dot_f16(const void *row, const void *act, int64_t n) {
    const uint16_t *a = row;
    const float *b = act;
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) sum += lm_fp16_to_fp32(a[i]) * b[i];
    return sum;
}

static float dot_bf16(const void *row, const void *act, int64_t n) {
    const uint16_t *a = row;
    const float *b = act;
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) sum += lm_bf16_to_fp32(a[i]) * b[i];
    return sum;
}

static float dot_q8_0(const void *row, const void *act, int64_t n) {
    const block_q8_0 *w = row;
    const block_q8a *x = act;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / 32; b++) {
        int32_t s = 0;
        for (int j = 0; j < 32; j++) s += w[b].qs[j] * x[b].qs[j];
        sum += lm_fp16_to_fp32(w[b].d) * x[b].d * (float)s;
    }
    return sum;
}

static float dot_q4_0(const void *row, const void *act, int64_t n) {
    const block_q4_0 *w = row;
    const block_q8a *x = act;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / 32; b++) {
        int32_t s = 0;
        for (int j = 0; j < 16; j++) {
            s += ((w[b].qs[j] & 0x0F) - 8) * x[b].qs[j];
            s += ((w[b].qs[j] >> 4) - 8) * x[b].qs[j + 16];
        }
        sum += lm_fp16_to_fp32(w[b].d) * x[b].d * (float)s;
    }
    return sum;
}

/* Shared by q4_K and q5_K: levels q[256] (0..31) of one block. */
static float k_block_dot(const uint8_t *scales, uint16_t d16, uint16_t dmin16, const uint8_t *q, const block_q8_K *x) {
    int32_t sumi = 0, summ = 0;
    for (int sub = 0; sub < 8; sub++) {
        uint8_t sc, m;
        lm_q4_K_scale_min(sub, scales, &sc, &m);
        int32_t s = 0;
        for (int l = 0; l < 32; l++) s += q[32 * sub + l] * x->qs[32 * sub + l];
        sumi += sc * s;
        summ += m * (x->bsums[2 * sub] + x->bsums[2 * sub + 1]);
    }
    return x->d * (lm_fp16_to_fp32(d16) * (float)sumi - lm_fp16_to_fp32(dmin16) * (float)summ);
}

static float dot_q4_K(const void *row, const void *act, int64_t n) {
    const block_q4_K *w = row;
    const block_q8_K *x = act;
    float sum = 0.0f;
    uint8_t q[QK_K];
    for (int64_t b = 0; b < n / QK_K; b++) {
        for (int g = 0; g < 4; g++) {
            for (int l = 0; l < 32; l++) {
                q[64 * g + l] = w[b].qs[32 * g + l] & 0xF;
                q[64 * g + 32 + l] = w[b].qs[32 * g + l] >> 4;
            }
        }
        sum += k_block_dot(w[b].scales, w[b].d, w[b].dmin, q, &x[b]);
    }
    return sum;
}

static float dot_q5_K(const void *row, const void *act, int64_t n) {
    const block_q5_K *w = row;
    const block_q8_K *x = act;
    float sum = 0.0f;
    uint8_t q[QK_K];
    for (int64_t b = 0; b < n / QK_K; b++) {
        for (int g = 0; g < 4; g++) {
            for (int l = 0; l < 32; l++) {
                q[64 * g + l] = (uint8_t)((w[b].qs[32 * g + l] & 0xF) | (((w[b].qh[l] >> (2 * g)) & 1) << 4));
                q[64 * g + 32 + l] = (uint8_t)((w[b].qs[32 * g + l] >> 4) | (((w[b].qh[l] >> (2 * g + 1)) & 1) << 4));
            }
        }
        sum += k_block_dot(w[b].scales, w[b].d, w[b].dmin, q, &x[b]);
    }
    return sum;
}

static float dot_q6_K(const void *row, const void *act, int64_t n) {
    const block_q6_K *w = row;
    const block_q8_K *x = act;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const uint8_t *ql = w[b].ql, *qh = w[b].qh;
        const int8_t *sc = w[b].scales, *xq = x[b].qs;
        int32_t sumi = 0;
        for (int half = 0; half < 2; half++, ql += 64, qh += 32, sc += 8, xq += 128) {
            for (int quarter = 0; quarter < 4; quarter++) {
                int32_t s0 = 0, s1 = 0;
                for (int l = 0; l < 32; l++) {
                    int low = quarter == 0 ? ql[l] & 15 : quarter == 1 ? ql[l + 32] & 15 : quarter == 2 ? ql[l] >> 4 : ql[l + 32] >> 4;
                    int q = (low | (((qh[l] >> (2 * quarter)) & 3) << 4)) - 32;
                    if (l < 16) s0 += q * xq[32 * quarter + l];
                    else s1 += q * xq[32 * quarter + l];
                }
                sumi += sc[2 * quarter] * s0 + sc[2 * quarter + 1] * s1;
            }
        }
        sum += lm_fp16_to_fp32(w[b].d) * x[b].d * (float)sumi;
    }
    return sum;
}

static void attn_scores(float *att, const float *q, const float *k, int64_t stride, int64_t n, int64_t hd, float scale) {
    for (int64_t t = 0; t < n; t++) att[t] = lm_dot_f32(q, k + t * stride, hd) * scale;
}

static void attn_values(float *out, const float *att, const float *v, int64_t stride, int64_t n, int64_t hd) {
    memset(out, 0, (size_t)hd * sizeof *out);
    for (int64_t t = 0; t < n; t++) {
        const float *vt = v + t * stride;
        for (int64_t i = 0; i < hd; i++) out[i] += att[t] * vt[i];
    }
}

static void attn_scores_f16(float *att, const float *q, const uint16_t *k, int64_t stride, int64_t n, int64_t hd,
                            float scale) {
    for (int64_t t = 0; t < n; t++) {
        const uint16_t *kt = k + t * stride;
        float sum = 0.0f;
        for (int64_t i = 0; i < hd; i++) sum += q[i] * lm_fp16_to_fp32(kt[i]);
        att[t] = sum * scale;
    }
}

static void attn_values_f16(float *out, const float *att, const uint16_t *v, int64_t stride, int64_t n, int64_t hd) {
    memset(out, 0, (size_t)hd * sizeof *out);
    for (int64_t t = 0; t < n; t++) {
        const uint16_t *vt = v + t * stride;
        for (int64_t i = 0; i < hd; i++) out[i] += att[t] * lm_fp16_to_fp32(vt[i]);
    }
}

static void to_f16(uint16_t *dst, const float *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = lm_fp32_to_fp16(src[i]);
}

static void from_f16(float *dst, const uint16_t *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = lm_fp16_to_fp32(src[i]);
}

static void swiglu(float *gate, const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i];
        gate[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

static void add(float *x, const float *a, int64_t n) {
    /* Through a copy of 8, which the compiler vectorises (not knowing
     * whether a overlaps x, it left the plain loop scalar). */
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        float v[8];
        for (int j = 0; j < 8; j++) v[j] = x[i + j] + a[i + j];
        memcpy(x + i, v, sizeof v);
    }
    for (; i < n; i++) x[i] += a[i];
}

/* The sum of squares over 32 partial sums (lm_sum_of_squares_finish): one
 * chain of dependent double adds (4 cycles each) was 3.5% of a 110M
 * model's prefill; squares of floats are exact in double, so the order
 * moves only the last bits of a double, which the float scale below almost
 * never sees. */
static void rmsnorm(float *out, const float *x, const float *weight, int64_t n, float eps) {
    double p[32] = {0};
    double ss = lm_sum_of_squares_finish(p, x, 0, n);
    float scale = (float)(1.0 / sqrt(ss / (double)n + eps));
    /* 8 values read before any is written: out may be x, and the compiler,
     * not knowing, left the plain loop scalar (2% of a 110M prefill). */
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        float v[8];
        for (int j = 0; j < 8; j++) v[j] = x[i + j] * scale * weight[i + j];
        memcpy(out + i, v, sizeof v);
    }
    for (; i < n; i++) out[i] = x[i] * scale * weight[i];
}

static void rope(float *x, int64_t n_heads, int64_t head_dim, int64_t rope_dim, const float *cos_sin) {
    for (int64_t h = 0; h < n_heads; h++) {
        float *v = x + h * head_dim;
        int64_t i = 0;
        /* 4 pairs at a time through a copy, which the compiler vectorises
         * (the plain loop stayed scalar). */
        for (; i + 4 <= rope_dim / 2; i += 4) {
            float in[8], cs[8], r[8];
            memcpy(in, v + 2 * i, sizeof in);
            memcpy(cs, cos_sin + 2 * i, sizeof cs);
            for (int j = 0; j < 8; j += 2) {
                r[j] = in[j] * cs[j] - in[j + 1] * cs[j + 1];
                r[j + 1] = in[j] * cs[j + 1] + in[j + 1] * cs[j];
            }
            memcpy(v + 2 * i, r, sizeof r);
        }
        for (; i < rope_dim / 2; i++) {
            float c = cos_sin[2 * i], s = cos_sin[2 * i + 1];
            float a = v[2 * i], b = v[2 * i + 1];
            v[2 * i] = a * c - b * s;
            v[2 * i + 1] = a * s + b * c;
        }
    }
}

void lm_rope_cols_ref(float *qt, int64_t nr, int64_t rope_dim, const float *cos_t, const float *sin_t, int64_t stride,
                      int64_t pos) {
    for (int64_t i = 0; i < rope_dim / 2; i++) {
        float *a = qt + 2 * i * nr, *b = a + nr;
        const float *c = cos_t + i * stride + pos, *s = sin_t + i * stride + pos;
        for (int64_t j = 0; j < nr; j++) {
            const float x = a[j], y = b[j];
            a[j] = x * c[j] - y * s[j];
            b[j] = x * s[j] + y * c[j];
        }
    }
}

static void softmax_exp_cols(float *s, int64_t rows, int64_t width, int64_t first, float scale, float *sums) {
    for (int64_t j = 0; j < width; j++) {
        const int64_t seen = first + j + 1 < rows ? first + j + 1 : rows;
        float max = s[j];
        for (int64_t r = 1; r < seen; r++) max = s[r * width + j] > max ? s[r * width + j] : max;
        double sum = 0.0;
        for (int64_t r = 0; r < rows; r++) {
            float *v = &s[r * width + j];
            *v = r < seen ? expf((*v - max) * scale) : 0.0f;
            sum += *v;
        }
        sums[j] = (float)sum;
    }
}

static double softmax_exp(float *x, int64_t n, float scale) {
    float max = x[0];
    for (int64_t i = 1; i < n; i++) max = x[i] > max ? x[i] : max;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        x[i] = expf((x[i] - max) * scale);
        sum += x[i];
    }
    return sum;
}

const lm_kernels lm_kernels_scalar = {
    "scalar",
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
    {0}, /* four calls of dot */
    {0}, /* no x16 kernels: nothing is packed for the reference */
    attn_scores,
    attn_values,
    attn_scores_f16,
    attn_values_f16,
    to_f16,
    from_f16,
    lm_softmax_f32,
    swiglu,
    {0}, /* activation kinds: lm_act_kind_for's */
    {0}, /* no x16 kernels, no pairs */
    softmax_exp,
    {0}, /* no x16 kernels, no x32 */
    rope,
    softmax_exp_cols,
    rmsnorm,
    add,
    lm_rope_cols_ref,
};
