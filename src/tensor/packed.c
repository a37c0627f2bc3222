/* The x16 layouts (packed.h): packing from GGUF rows and back. */
#include "packed.h"

#include "../base/checked.h"
#include "../base/pool.h"
#include "quant_blocks.h"

#include <string.h>

/* Bytes of one x16 block (16 rows x lm_x16_block_cols columns), 0 for
 * types without an x16 layout. */
static size_t x16_block_bytes(lm_type t) {
    switch (t) {
    case LM_TYPE_F16: return sizeof(block_f16x16);
    case LM_TYPE_Q4_0: return sizeof(block_q4_0x16);
    case LM_TYPE_Q8_0: return sizeof(block_q8_0x16);
    case LM_TYPE_Q4_K: return sizeof(block_q4_Kx16);
    case LM_TYPE_Q6_K: return sizeof(block_q6_Kx16);
    default: return 0;
    }
}

int lm_x16_supported(lm_type t) { return x16_block_bytes(t) != 0; }

int64_t lm_x16_block_cols(lm_type t) { return lm_type_get_info(t)->block_size == 256 ? 256 : 32; }

size_t lm_x16_group_bytes(lm_type t, int64_t cols) { return (size_t)(cols / lm_x16_block_cols(t)) * x16_block_bytes(t); }

size_t lm_x16_size(lm_type t, int64_t rows, int64_t cols) {
    size_t per_block = x16_block_bytes(t), total;
    if (!per_block || rows <= 0 || cols <= 0 || cols % lm_x16_block_cols(t)) return 0;
    uint64_t groups = ((uint64_t)rows + LM_X16 - 1) / LM_X16, blocks = (uint64_t)(cols / lm_x16_block_cols(t));
    if (lm_mul_overflow_size((size_t)groups, (size_t)blocks, &total) || lm_mul_overflow_size(total, per_block, &total)) {
        return 0;
    }
    return total;
}

/* Lane i of a Q4_K x16 block from GGUF block b (NULL: a zero row). */
static void pack_lane_q4_K(block_q4_Kx16 *p, const block_q4_K *b, int i) {
    static const uint8_t zero[4];
    p->d[i] = b ? b->d : 0;
    p->dmin[i] = b ? b->dmin : 0;
    for (int j = 0; j < 8; j++) {
        uint8_t sc = 0, m = 0;
        if (b) lm_q4_K_scale_min(j, b->scales, &sc, &m);
        p->sc[j][i] = sc;
        p->mn[j / 2][2 * i + j % 2] = m;
    }
    for (int g = 0; g < 4; g++) {
        for (int k = 0; k < 8; k++) memcpy(&p->qs[g][k][4 * i], b ? b->qs + 32 * g + 4 * k : zero, 4);
    }
}

/* GGUF block b from lane i: the 6-bit scales and mins packed back into 12
 * bytes exactly as lm_q4_K_scale_min unpacks them (bytes 0-3: scales 0-3
 * and the top bits of scales 4-7; 4-7: mins 0-3 and the top bits of mins
 * 4-7; 8-11: the low nibbles of scales and mins 4-7). */
static void unpack_lane_q4_K(const block_q4_Kx16 *p, block_q4_K *b, int i) {
    uint8_t sc[8], m[8];
    b->d = p->d[i];
    b->dmin = p->dmin[i];
    for (int j = 0; j < 8; j++) {
        sc[j] = p->sc[j][i];
        m[j] = p->mn[j / 2][2 * i + j % 2];
    }
    for (int j = 0; j < 4; j++) {
        b->scales[j] = (uint8_t)(sc[j] | (sc[j + 4] >> 4) << 6);
        b->scales[j + 4] = (uint8_t)(m[j] | (m[j + 4] >> 4) << 6);
        b->scales[j + 8] = (uint8_t)((sc[j + 4] & 0xF) | (m[j + 4] & 0xF) << 4);
    }
    for (int g = 0; g < 4; g++) {
        for (int k = 0; k < 8; k++) memcpy(b->qs + 32 * g + 4 * k, &p->qs[g][k][4 * i], 4);
    }
}

/* Lane i of a Q6_K x16 block from GGUF block b (NULL: a zero row, values
 * 32, which stand for 0): the 256 6-bit values gathered in ggml's order (in
 * each half of 128, ql[l] and ql[l + 32] hold weights l, l + 32 in their low
 * nibbles and l + 64, l + 96 in their high ones, qh[l] the top 2 bits of
 * all four), then laid out as packed.h says. */
static void pack_lane_q6_K(block_q6_Kx16 *p, const block_q6_K *b, int i) {
    uint8_t q[256];
    p->d[i] = b ? b->d : 0;
    for (int j = 0; j < 16; j++) p->sc[j / 2][2 * i + j % 2] = b ? b->scales[j] : 0;
    if (b) {
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
            uint8_t *v = q + 128 * h;
            for (int l = 0; l < 32; l++) {
                v[l] = (uint8_t)((ql[l] & 15) | (qh[l] & 3) << 4);
                v[l + 32] = (uint8_t)((ql[l + 32] & 15) | ((qh[l] >> 2) & 3) << 4);
                v[l + 64] = (uint8_t)((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4);
                v[l + 96] = (uint8_t)((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4);
            }
        }
    } else {
        memset(q, 32, sizeof q);
    }
    int32_t corr = 0; /* |corr| <= 128 x 16 x 128 x 16 x 32 < 2^31 */
    for (int sb = 0; sb < 16; sb++) {
        for (int v = 0; v < 3; v++) {
            for (int j = 0; j < 4; j++) {
                const uint8_t top = (uint8_t)(((q[16 * sb + 12 + j] >> (2 * v)) & 3) << 6);
                p->qs[sb][v][4 * i + j] = (uint8_t)(q[16 * sb + 4 * v + j] | top);
            }
        }
        int32_t centred = 0;
        for (int w = 0; w < 16; w++) centred += q[16 * sb + w] - 32;
        corr += (b ? b->scales[sb] : 0) * centred;
    }
    p->corr[i] = 128 * corr;
}

/* GGUF block b from lane i: the 256 6-bit values gathered, then packed as
 * ggml's quantize_row_q6_K packs them. (Setting the bits one weight at a
 * time made the prefill GEMM, which unpacks rows for its panels, about 20%
 * slower on Q4_K_M files.) */
static void unpack_lane_q6_K(const block_q6_Kx16 *p, block_q6_K *b, int i) {
    uint8_t q[256];
    b->d = p->d[i];
    for (int j = 0; j < 16; j++) b->scales[j] = p->sc[j / 2][2 * i + j % 2];
    for (int sb = 0; sb < 16; sb++) {
        for (int j = 0; j < 4; j++) {
            uint8_t last = 0;
            for (int v = 0; v < 3; v++) {
                const uint8_t byte = p->qs[sb][v][4 * i + j];
                q[16 * sb + 4 * v + j] = byte & 63;
                last |= (uint8_t)((byte >> 6) << (2 * v));
            }
            q[16 * sb + 12 + j] = last;
        }
    }
    for (int h = 0; h < 2; h++) {
        const uint8_t *v = q + 128 * h;
        uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
        for (int l = 0; l < 32; l++) {
            ql[l] = (uint8_t)((v[l] & 15) | (v[l + 64] & 15) << 4);
            ql[l + 32] = (uint8_t)((v[l + 32] & 15) | (v[l + 96] & 15) << 4);
            qh[l] = (uint8_t)(v[l] >> 4 | (v[l + 32] >> 4) << 2 | (v[l + 64] >> 4) << 4 | (v[l + 96] >> 4) << 6);
        }
    }
}

/* Lane i of x16 block o from GGUF block s, or a zero row when s is NULL. */
static void pack_lane(lm_type t, void *o, const void *s, int i) {
    if (t == LM_TYPE_Q6_K) {
        pack_lane_q6_K(o, s, i);
    } else if (t == LM_TYPE_F16) {
        block_f16x16 *p = o;
        const uint16_t *v = s;
        for (int c = 0; c < 32; c++) p->v[c][i] = v ? v[c] : 0;
    } else if (t == LM_TYPE_Q4_K) {
        pack_lane_q4_K(o, s, i);
    } else if (t == LM_TYPE_Q4_0) {
        block_q4_0x16 *p = o;
        const block_q4_0 *b = s;
        p->d[i] = b ? b->d : 0;
        for (int k = 0; k < 4; k++) {
            if (b) memcpy(&p->qs[k][4 * i], b->qs + 4 * k, 4);
            else memset(&p->qs[k][4 * i], 0x88, 4); /* nibbles of 8: weight 0 */
        }
    } else {
        block_q8_0x16 *p = o;
        const block_q8_0 *b = s;
        p->d[i] = b ? b->d : 0;
        for (int k = 0; k < 8; k++) { /* 4 values at a time, each + 128 (the top bit flipped) */
            uint32_t v = 0;
            if (b) memcpy(&v, b->qs + 4 * k, 4);
            v ^= 0x80808080u;
            memcpy(&p->qs[k][4 * i], &v, 4);
        }
    }
}

/* GGUF block s from lane i of x16 block o. */
static void unpack_lane(lm_type t, const void *o, void *s, int i) {
    if (t == LM_TYPE_Q6_K) {
        unpack_lane_q6_K(o, s, i);
    } else if (t == LM_TYPE_F16) {
        const block_f16x16 *p = o;
        uint16_t *v = s;
        for (int c = 0; c < 32; c++) v[c] = p->v[c][i];
    } else if (t == LM_TYPE_Q4_K) {
        unpack_lane_q4_K(o, s, i);
    } else if (t == LM_TYPE_Q4_0) {
        const block_q4_0x16 *p = o;
        block_q4_0 *b = s;
        b->d = p->d[i];
        for (int k = 0; k < 4; k++) memcpy(b->qs + 4 * k, &p->qs[k][4 * i], 4);
    } else {
        const block_q8_0x16 *p = o;
        block_q8_0 *b = s;
        b->d = p->d[i];
        for (int k = 0; k < 8; k++) {
            uint32_t v;
            memcpy(&v, &p->qs[k][4 * i], 4);
            v ^= 0x80808080u;
            memcpy(b->qs + 4 * k, &v, 4);
        }
    }
}

typedef struct {
    lm_type t;
    const uint8_t *src;
    int64_t rows, cols;
    uint8_t *dst;
} pack_job;

static void pack_groups(void *arg, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const pack_job *j = arg;
    const lm_type t = j->t;
    const size_t per_block = x16_block_bytes(t), src_block = lm_type_row_size(t, lm_x16_block_cols(t));
    const size_t row_bytes = lm_type_row_size(t, j->cols), group_bytes = lm_x16_group_bytes(t, j->cols);
    const int64_t nb = j->cols / lm_x16_block_cols(t);
    for (int64_t g = begin; g < end; g++) {
        uint8_t *out = j->dst + (size_t)g * group_bytes;
        for (int64_t b = 0; b < nb; b++) {
            for (int i = 0; i < LM_X16; i++) {
                int64_t r = g * LM_X16 + i;
                const void *s = r < j->rows ? j->src + (size_t)r * row_bytes + (size_t)b * src_block : NULL;
                pack_lane(t, out + (size_t)b * per_block, s, i);
            }
        }
    }
}

void lm_x16_pack(lm_type t, const void *src, int64_t rows, int64_t cols, void *dst, int n_threads) {
    pack_job j = {t, src, rows, cols, dst};
    lm_parallel_for(n_threads, (rows + LM_X16 - 1) / LM_X16, pack_groups, &j);
}

void lm_x16_unpack_row(lm_type t, const void *packed, int64_t cols, int64_t r, int64_t c0, int64_t n, void *out) {
    const int64_t b0 = c0 / lm_x16_block_cols(t), nb = n / lm_x16_block_cols(t);
    const size_t per_block = x16_block_bytes(t), src_block = lm_type_row_size(t, lm_x16_block_cols(t));
    const uint8_t *group = (const uint8_t *)packed + (size_t)(r / LM_X16) * lm_x16_group_bytes(t, cols);
    for (int64_t b = 0; b < nb; b++) {
        unpack_lane(t, group + (size_t)(b0 + b) * per_block, (uint8_t *)out + (size_t)b * src_block, (int)(r % LM_X16));
    }
}
