/* Scalar dequantisation of every GGUF weight type llmos reads: the reference
 * that fast kernels are tested against. Formats as in ggml-quants.c. */
#include "fp16.h"
#include "llmos/types.h"
#include "quant_blocks.h"

#include <string.h>

static void dq_q4_0(const block_q4_0 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, y += QK4_0) {
        const float d = lm_fp16_to_fp32(x[i].d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            y[j] = ((x[i].qs[j] & 0x0F) - 8) * d;
            y[j + QK4_0 / 2] = ((x[i].qs[j] >> 4) - 8) * d;
        }
    }
}

static void dq_q4_1(const block_q4_1 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, y += QK4_1) {
        const float d = lm_fp16_to_fp32(x[i].d), m = lm_fp16_to_fp32(x[i].m);
        for (int j = 0; j < QK4_1 / 2; j++) {
            y[j] = (x[i].qs[j] & 0x0F) * d + m;
            y[j + QK4_1 / 2] = (x[i].qs[j] >> 4) * d + m;
        }
    }
}

static void dq_q5_0(const block_q5_0 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, y += QK5_0) {
        const float d = lm_fp16_to_fp32(x[i].d);
        uint32_t qh;
        memcpy(&qh, x[i].qh, 4);
        for (int j = 0; j < QK5_0 / 2; j++) {
            const uint8_t h0 = ((qh >> j) << 4) & 0x10, h1 = (qh >> (j + 12)) & 0x10;
            y[j] = ((int32_t)((x[i].qs[j] & 0x0F) | h0) - 16) * d;
            y[j + QK5_0 / 2] = ((int32_t)((x[i].qs[j] >> 4) | h1) - 16) * d;
        }
    }
}

static void dq_q5_1(const block_q5_1 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, y += QK5_1) {
        const float d = lm_fp16_to_fp32(x[i].d), m = lm_fp16_to_fp32(x[i].m);
        uint32_t qh;
        memcpy(&qh, x[i].qh, 4);
        for (int j = 0; j < QK5_1 / 2; j++) {
            const uint8_t h0 = ((qh >> j) << 4) & 0x10, h1 = (qh >> (j + 12)) & 0x10;
            y[j] = ((x[i].qs[j] & 0x0F) | h0) * d + m;
            y[j + QK5_1 / 2] = ((x[i].qs[j] >> 4) | h1) * d + m;
        }
    }
}

static void dq_q8_0(const block_q8_0 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, y += QK8_0) {
        const float d = lm_fp16_to_fp32(x[i].d);
        for (int j = 0; j < QK8_0; j++) y[j] = x[i].qs[j] * d;
    }
}

static void dq_q2_K(const block_q2_K *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = lm_fp16_to_fp32(x[i].d), min = lm_fp16_to_fp32(x[i].dmin);
        const uint8_t *q = x[i].qs;
        int is = 0;
        for (int n = 0; n < QK_K; n += 128) {
            int shift = 0;
            for (int j = 0; j < 4; j++) {
                uint8_t sc = x[i].scales[is++];
                float dl = d * (sc & 0xF), ml = min * (sc >> 4);
                for (int l = 0; l < 16; l++) *y++ = dl * ((q[l] >> shift) & 3) - ml;
                sc = x[i].scales[is++];
                dl = d * (sc & 0xF), ml = min * (sc >> 4);
                for (int l = 0; l < 16; l++) *y++ = dl * ((q[l + 16] >> shift) & 3) - ml;
                shift += 2;
            }
            q += 32;
        }
    }
}

/* The 16 6-bit scales of a q3_K block, unpacked from 12 bytes. */
static void q3_K_scales(const uint8_t *packed, int8_t *scales) {
    const uint32_t kmask1 = 0x03030303, kmask2 = 0x0f0f0f0f;
    uint32_t aux[4];
    memcpy(aux, packed, 12);
    uint32_t tmp = aux[2];
    aux[2] = ((aux[0] >> 4) & kmask2) | (((tmp >> 4) & kmask1) << 4);
    aux[3] = ((aux[1] >> 4) & kmask2) | (((tmp >> 6) & kmask1) << 4);
    aux[0] = (aux[0] & kmask2) | (((tmp >> 0) & kmask1) << 4);
    aux[1] = (aux[1] & kmask2) | (((tmp >> 2) & kmask1) << 4);
    memcpy(scales, aux, 16);
}

static void dq_q3_K(const block_q3_K *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d_all = lm_fp16_to_fp32(x[i].d);
        const uint8_t *q = x[i].qs, *hm = x[i].hmask;
        int8_t scales[16];
        q3_K_scales(x[i].scales, scales);
        uint8_t m = 1;
        int is = 0;
        for (int n = 0; n < QK_K; n += 128) {
            int shift = 0;
            for (int j = 0; j < 4; j++) {
                float dl = d_all * (scales[is++] - 32);
                for (int l = 0; l < 16; l++) *y++ = dl * ((int8_t)((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4));
                dl = d_all * (scales[is++] - 32);
                for (int l = 0; l < 16; l++) *y++ = dl * ((int8_t)((q[l + 16] >> shift) & 3) - ((hm[l + 16] & m) ? 0 : 4));
                shift += 2;
                m <<= 1;
            }
            q += 32;
        }
    }
}

static void dq_q4_K(const block_q4_K *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *q = x[i].qs;
        const float d = lm_fp16_to_fp32(x[i].d), min = lm_fp16_to_fp32(x[i].dmin);
        for (int j = 0, is = 0; j < QK_K; j += 64, is += 2, q += 32) {
            uint8_t sc, m;
            lm_q4_K_scale_min(is, x[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = min * m;
            lm_q4_K_scale_min(is + 1, x[i].scales, &sc, &m);
            const float d2 = d * sc, m2 = min * m;
            for (int l = 0; l < 32; l++) *y++ = d1 * (q[l] & 0xF) - m1;
            for (int l = 0; l < 32; l++) *y++ = d2 * (q[l] >> 4) - m2;
        }
    }
}

static void dq_q5_K(const block_q5_K *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *ql = x[i].qs, *qh = x[i].qh;
        const float d = lm_fp16_to_fp32(x[i].d), min = lm_fp16_to_fp32(x[i].dmin);
        uint8_t u1 = 1, u2 = 2;
        for (int j = 0, is = 0; j < QK_K; j += 64, is += 2, ql += 32, u1 <<= 2, u2 <<= 2) {
            uint8_t sc, m;
            lm_q4_K_scale_min(is, x[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = min * m;
            lm_q4_K_scale_min(is + 1, x[i].scales, &sc, &m);
            const float d2 = d * sc, m2 = min * m;
            for (int l = 0; l < 32; l++) *y++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; l++) *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
        }
    }
}

static void dq_q6_K(const block_q6_K *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = lm_fp16_to_fp32(x[i].d);
        const uint8_t *ql = x[i].ql, *qh = x[i].qh;
        const int8_t *sc = x[i].scales;
        for (int n = 0; n < QK_K; n += 128, y += 128, ql += 64, qh += 32, sc += 8) {
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                const int q1 = (int8_t)((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int q2 = (int8_t)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q3 = (int8_t)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q4 = (int8_t)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l] = d * sc[is + 0] * q1;
                y[l + 32] = d * sc[is + 2] * q2;
                y[l + 64] = d * sc[is + 4] * q3;
                y[l + 96] = d * sc[is + 6] * q4;
            }
        }
    }
}

static void dq_q8_K(const block_q8_K *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        for (int j = 0; j < QK_K; j++) *y++ = x[i].d * x[i].qs[j];
    }
}

int lm_type_can_dequantize(lm_type t) {
    switch (t) {
    case LM_TYPE_F32: case LM_TYPE_F16: case LM_TYPE_BF16: case LM_TYPE_Q4_0: case LM_TYPE_Q4_1:
    case LM_TYPE_Q5_0: case LM_TYPE_Q5_1: case LM_TYPE_Q8_0: case LM_TYPE_Q2_K: case LM_TYPE_Q3_K:
    case LM_TYPE_Q4_K: case LM_TYPE_Q5_K: case LM_TYPE_Q6_K: case LM_TYPE_Q8_K:
        return 1;
    default:
        return 0;
    }
}

size_t lm_type_row_size(lm_type type, int64_t n) {
    const lm_type_info *ti = lm_type_get_info(type);
    if (!ti || n < 0 || n % ti->block_size) return 0;
    return (size_t)(n / ti->block_size) * ti->type_size;
}

lm_status lm_dequantize_row(lm_type type, const void *src, float *y, int64_t n, lm_error *err) {
    const lm_type_info *ti = lm_type_get_info(type);
    if (!ti || !lm_type_can_dequantize(type)) {
        return lm_error_set(err, LM_ERR_UNSUPPORTED, "cannot dequantize type %s", ti ? ti->name : "?");
    }
    if (n % ti->block_size) return lm_error_set(err, LM_ERR_ARG, "%lld is not a whole number of %s blocks", (long long)n, ti->name);
    int64_t nb = n / ti->block_size;
    switch (type) {
    case LM_TYPE_F32: memcpy(y, src, (size_t)n * sizeof(float)); break;
    case LM_TYPE_F16: {
        const uint8_t *p = src;
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            y[i] = lm_fp16_to_fp32(h);
        }
        break;
    }
    case LM_TYPE_BF16: {
        const uint8_t *p = src;
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            y[i] = lm_bf16_to_fp32(h);
        }
        break;
    }
    case LM_TYPE_Q4_0: dq_q4_0(src, y, nb); break;
    case LM_TYPE_Q4_1: dq_q4_1(src, y, nb); break;
    case LM_TYPE_Q5_0: dq_q5_0(src, y, nb); break;
    case LM_TYPE_Q5_1: dq_q5_1(src, y, nb); break;
    case LM_TYPE_Q8_0: dq_q8_0(src, y, nb); break;
    case LM_TYPE_Q2_K: dq_q2_K(src, y, nb); break;
    case LM_TYPE_Q3_K: dq_q3_K(src, y, nb); break;
    case LM_TYPE_Q4_K: dq_q4_K(src, y, nb); break;
    case LM_TYPE_Q5_K: dq_q5_K(src, y, nb); break;
    case LM_TYPE_Q6_K: dq_q6_K(src, y, nb); break;
    case LM_TYPE_Q8_K: dq_q8_K(src, y, nb); break;
    default: break;
    }
    return LM_OK;
}
