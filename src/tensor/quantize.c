/* Reference quantisers: the same algorithms, and so the same bytes, as
 * ggml's quantize_row_*_ref (ggml-quants.c). Scalar and deterministic. */
#include "fp16.h"
#include "llmos/types.h"
#include "quant_blocks.h"

#include <ctype.h>
#include <math.h>
#include <string.h>

#define GROUP_MAX_EPS 1e-15f
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Round to nearest, ties to even, as ggml's nearest_int (|x| < 2^22). */
static inline int nearest_int(float fval) {
    float val = fval + 12582912.f;
    int i;
    memcpy(&i, &val, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

static void q_q4_0(const float *x, block_q4_0 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK4_0) {
        float amax = 0.0f, max = 0.0f; /* the value of largest magnitude, with its sign */
        for (int j = 0; j < QK4_0; j++) {
            if (amax < fabsf(x[j])) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        const float d = max / -8, id = d ? 1.0f / d : 0.0f;
        y[i].d = lm_fp32_to_fp16(d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            const uint8_t a = MIN(15, (int8_t)(x[j] * id + 8.5f));
            const uint8_t b = MIN(15, (int8_t)(x[j + QK4_0 / 2] * id + 8.5f));
            y[i].qs[j] = a | (uint8_t)(b << 4);
        }
    }
}

static void q_q4_1(const float *x, block_q4_1 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK4_1) {
        float min = INFINITY, max = -INFINITY;
        for (int j = 0; j < QK4_1; j++) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        const float d = (max - min) / 15, id = d ? 1.0f / d : 0.0f;
        y[i].d = lm_fp32_to_fp16(d);
        y[i].m = lm_fp32_to_fp16(min);
        for (int j = 0; j < QK4_1 / 2; j++) {
            const uint8_t a = MIN(15, (int8_t)((x[j] - min) * id + 0.5f));
            const uint8_t b = MIN(15, (int8_t)((x[j + QK4_1 / 2] - min) * id + 0.5f));
            y[i].qs[j] = a | (uint8_t)(b << 4);
        }
    }
}

static void q_q5_0(const float *x, block_q5_0 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK5_0) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK5_0; j++) {
            if (amax < fabsf(x[j])) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        const float d = max / -16, id = d ? 1.0f / d : 0.0f;
        y[i].d = lm_fp32_to_fp16(d);
        uint32_t qh = 0;
        for (int j = 0; j < QK5_0 / 2; j++) {
            const uint8_t a = MIN(31, (int8_t)(x[j] * id + 16.5f));
            const uint8_t b = MIN(31, (int8_t)(x[j + QK5_0 / 2] * id + 16.5f));
            y[i].qs[j] = (a & 0x0F) | (uint8_t)((b & 0x0F) << 4);
            qh |= ((a & 0x10u) >> 4) << j;
            qh |= ((b & 0x10u) >> 4) << (j + QK5_0 / 2);
        }
        memcpy(y[i].qh, &qh, 4);
    }
}

static void q_q5_1(const float *x, block_q5_1 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK5_1) {
        float min = INFINITY, max = -INFINITY;
        for (int j = 0; j < QK5_1; j++) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        const float d = (max - min) / 31, id = d ? 1.0f / d : 0.0f;
        y[i].d = lm_fp32_to_fp16(d);
        y[i].m = lm_fp32_to_fp16(min);
        uint32_t qh = 0;
        for (int j = 0; j < QK5_1 / 2; j++) {
            const uint8_t a = (uint8_t)((x[j] - min) * id + 0.5f);
            const uint8_t b = (uint8_t)((x[j + QK5_1 / 2] - min) * id + 0.5f);
            y[i].qs[j] = (a & 0x0F) | (uint8_t)((b & 0x0F) << 4);
            qh |= ((a & 0x10u) >> 4) << j;
            qh |= ((b & 0x10u) >> 4) << (j + QK5_1 / 2);
        }
        memcpy(y[i].qh, &qh, 4);
    }
}

static void q_q8_0(const float *x, block_q8_0 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK8_0) {
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; j++) amax = MAX(amax, fabsf(x[j]));
        const float d = amax / 127, id = d ? 1.0f / d : 0.0f;
        y[i].d = lm_fp32_to_fp16(d);
        for (int j = 0; j < QK8_0; j++) y[i].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

static void q_q8_K(const float *x, block_q8_K *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        float max = 0, amax = 0;
        for (int j = 0; j < QK_K; j++) {
            float ax = fabsf(x[j]);
            if (ax > amax) {
                amax = ax;
                max = x[j];
            }
        }
        if (!amax) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        const float iscale = -127.f / max;
        for (int j = 0; j < QK_K; j++) y[i].qs[j] = (int8_t)MIN(127, nearest_int(iscale * x[j]));
        for (int j = 0; j < QK_K / 16; j++) {
            int sum = 0;
            for (int k = 0; k < 16; k++) sum += y[i].qs[j * 16 + k];
            y[i].bsums[j] = (int16_t)sum;
        }
        y[i].d = 1 / iscale;
    }
}

/* Best scale and min for n weights on levels 0..nmax, searched around the
 * min/max fit (ggml's make_qkx2_quants). Returns the scale; *the_min = -min. */
static float make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L, float *the_min,
                              uint8_t *Laux, float rmin, float rdelta, int nstep) {
    float min = x[0], max = x[0], sum_w = weights[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        for (int i = 0; i < n; i++) L[i] = 0;
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min), scale = 1 / iscale, best_mad = 0;
    for (int i = 0; i < n; i++) {
        int l = nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)MAX(0, MIN(nmax, l));
        float diff = scale * L[i] + min - x[i];
        best_mad += weights[i] * diff * diff;
    }
    if (nstep < 1) {
        *the_min = -min;
        return scale;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = nearest_int(iscale * (x[i] - min));
            l = MAX(0, MIN(nmax, l));
            Laux[i] = (uint8_t)l;
            float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float mad = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                mad += weights[i] * diff * diff;
            }
            if (mad < best_mad) {
                for (int i = 0; i < n; i++) L[i] = Laux[i];
                best_mad = mad;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/* Symmetric scale for n weights on levels -nmax..nmax-1, weighted by x^2
 * (ggml's make_qx_quants with rmse_type 1). L holds level + nmax. */
static float make_qx_quants(int n, int nmax, const float *x, int8_t *L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < GROUP_MAX_EPS) {
        for (int i = 0; i < n; i++) L[i] = 0;
        return 0.f;
    }
    float iscale = -nmax / max, sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = nearest_int(iscale * x[i]);
        l = MAX(-nmax, MIN(nmax - 1, l));
        L[i] = (int8_t)(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f, best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = nearest_int(iscale * x[i]);
            l = MAX(-nmax, MIN(nmax - 1, l));
            float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) {
                int l = nearest_int(iscale * x[i]);
                L[i] = (int8_t)(nmax + MAX(-nmax, MIN(nmax - 1, l)));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}


/* The 8 sub-block scales and mins of a q4_K/q5_K block, 6 bits each, and the
 * levels L (0..nmax) of its 256 weights. */
static void k_scales_and_levels(const float *x, int nmax, float rmin, int nstep, uint8_t *scales_out, uint16_t *d_out,
                                uint16_t *dmin_out, uint8_t *L) {
    uint8_t Laux[32];
    float weights[32], mins[QK_K / 32], scales[QK_K / 32], max_scale = 0, max_min = 0;
    for (int j = 0; j < QK_K / 32; j++) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) sum_x2 += x[32 * j + l] * x[32 * j + l];
        float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++) weights[l] = av_x + fabsf(x[32 * j + l]);
        scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f, inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    memset(scales_out, 0, K_SCALE_SIZE);
    for (int j = 0; j < QK_K / 32; j++) {
        uint8_t ls = (uint8_t)MIN(63, nearest_int(inv_scale * scales[j]));
        uint8_t lm = (uint8_t)MIN(63, nearest_int(inv_min * mins[j]));
        if (j < 4) {
            scales_out[j] = ls;
            scales_out[j + 4] = lm;
        } else {
            scales_out[j + 4] = (ls & 0xF) | (uint8_t)((lm & 0xF) << 4);
            scales_out[j - 4] |= (uint8_t)((ls >> 4) << 6);
            scales_out[j] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    *d_out = lm_fp32_to_fp16(max_scale / 63.f);
    *dmin_out = lm_fp32_to_fp16(max_min / 63.f);
    for (int j = 0; j < QK_K / 32; j++) {
        uint8_t sc, m;
        lm_q4_K_scale_min(j, scales_out, &sc, &m);
        const float d = lm_fp16_to_fp32(*d_out) * sc;
        if (!d) continue;
        const float dm = lm_fp16_to_fp32(*dmin_out) * m;
        for (int ii = 0; ii < 32; ii++) {
            int l = nearest_int((x[32 * j + ii] + dm) / d);
            L[32 * j + ii] = (uint8_t)MAX(0, MIN(nmax, l));
        }
    }
}

static void q_q4_K(const float *x, block_q4_K *y, int64_t nb) {
    uint8_t L[QK_K];
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        k_scales_and_levels(x, 15, -1.f, 20, y[i].scales, &y[i].d, &y[i].dmin, L);
        uint8_t *q = y[i].qs;
        for (int j = 0; j < QK_K; j += 64, q += 32) {
            for (int l = 0; l < 32; l++) q[l] = L[j + l] | (uint8_t)(L[j + l + 32] << 4);
        }
    }
}

static void q_q5_K(const float *x, block_q5_K *y, int64_t nb) {
    uint8_t L[QK_K];
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        k_scales_and_levels(x, 31, -0.5f, 15, y[i].scales, &y[i].d, &y[i].dmin, L);
        uint8_t *qh = y[i].qh, *ql = y[i].qs;
        memset(qh, 0, QK_K / 8);
        uint8_t m1 = 1, m2 = 2;
        for (int n = 0; n < QK_K; n += 64, m1 <<= 2, m2 <<= 2, ql += 32) {
            for (int j = 0; j < 32; j++) {
                int l1 = L[n + j], l2 = L[n + j + 32];
                if (l1 > 15) {
                    l1 -= 16;
                    qh[j] |= m1;
                }
                if (l2 > 15) {
                    l2 -= 16;
                    qh[j] |= m2;
                }
                ql[j] = (uint8_t)(l1 | (l2 << 4));
            }
        }
    }
}

static void q_q6_K(const float *x, block_q6_K *y, int64_t nb) {
    int8_t L[QK_K];
    float scales[QK_K / 16];
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        float max_scale = 0, max_abs_scale = 0;
        for (int ib = 0; ib < QK_K / 16; ib++) {
            const float scale = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
            scales[ib] = scale;
            if (fabsf(scale) > max_abs_scale) {
                max_abs_scale = fabsf(scale);
                max_scale = scale;
            }
        }
        if (max_abs_scale < GROUP_MAX_EPS) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        float iscale = -128.f / max_scale;
        y[i].d = lm_fp32_to_fp16(1 / iscale);
        for (int ib = 0; ib < QK_K / 16; ib++) y[i].scales[ib] = (int8_t)MIN(127, nearest_int(iscale * scales[ib]));
        for (int j = 0; j < QK_K / 16; j++) {
            float d = lm_fp16_to_fp32(y[i].d) * y[i].scales[j];
            if (!d) continue;
            for (int ii = 0; ii < 16; ii++) {
                int l = nearest_int(x[16 * j + ii] / d);
                L[16 * j + ii] = (int8_t)(MAX(-32, MIN(31, l)) + 32);
            }
        }
        uint8_t *ql = y[i].ql, *qh = y[i].qh;
        for (int j = 0; j < QK_K; j += 128, ql += 64, qh += 32) {
            for (int l = 0; l < 32; l++) {
                const uint8_t q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF, q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
                ql[l] = q1 | (uint8_t)(q3 << 4);
                ql[l + 32] = q2 | (uint8_t)(q4 << 4);
                qh[l] = (uint8_t)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) |
                                  ((L[j + l + 96] >> 4) << 6));
            }
        }
    }
}

int lm_type_can_quantize(lm_type t) {
    switch (t) {
    case LM_TYPE_F32: case LM_TYPE_F16: case LM_TYPE_BF16: case LM_TYPE_Q4_0: case LM_TYPE_Q4_1:
    case LM_TYPE_Q5_0: case LM_TYPE_Q5_1: case LM_TYPE_Q8_0: case LM_TYPE_Q4_K: case LM_TYPE_Q5_K:
    case LM_TYPE_Q6_K: case LM_TYPE_Q8_K:
        return 1;
    default:
        return 0;
    }
}

lm_status lm_quantize_row(lm_type type, const float *x, void *dst, int64_t n, lm_error *err) {
    const lm_type_info *ti = lm_type_get_info(type);
    if (!ti || !lm_type_can_quantize(type)) {
        return lm_error_set(err, LM_ERR_UNSUPPORTED, "no quantizer for type %s", ti ? ti->name : "?");
    }
    if (n % ti->block_size) return lm_error_set(err, LM_ERR_ARG, "%lld is not a whole number of %s blocks", (long long)n, ti->name);
    int64_t nb = n / ti->block_size;
    switch (type) {
    case LM_TYPE_F32: memcpy(dst, x, (size_t)n * sizeof(float)); break;
    case LM_TYPE_F16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = lm_fp32_to_fp16(x[i]);
            memcpy((uint8_t *)dst + 2 * i, &h, 2);
        }
        break;
    case LM_TYPE_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = lm_fp32_to_bf16(x[i]);
            memcpy((uint8_t *)dst + 2 * i, &h, 2);
        }
        break;
    case LM_TYPE_Q4_0: q_q4_0(x, dst, nb); break;
    case LM_TYPE_Q4_1: q_q4_1(x, dst, nb); break;
    case LM_TYPE_Q5_0: q_q5_0(x, dst, nb); break;
    case LM_TYPE_Q5_1: q_q5_1(x, dst, nb); break;
    case LM_TYPE_Q8_0: q_q8_0(x, dst, nb); break;
    case LM_TYPE_Q4_K: q_q4_K(x, dst, nb); break;
    case LM_TYPE_Q5_K: q_q5_K(x, dst, nb); break;
    case LM_TYPE_Q6_K: q_q6_K(x, dst, nb); break;
    case LM_TYPE_Q8_K: q_q8_K(x, dst, nb); break;
    default: break;
    }
    return LM_OK;
}

int lm_type_from_name(const char *name) {
    for (uint32_t t = 0; t < LM_TYPE_COUNT_; t++) {
        const lm_type_info *ti = lm_type_get_info(t);
        if (!ti) continue;
        size_t i = 0;
        while (ti->name[i] && name[i] && tolower((unsigned char)ti->name[i]) == tolower((unsigned char)name[i])) i++;
        if (!ti->name[i] && !name[i]) return (int)t;
    }
    return -1;
}
