/* ggml's quantisation blocks, byte for byte (ggml-common.h). Each weight row
 * is a run of these blocks; QK is the number of weights per block. Half
 * values (d, m, dmin) are IEEE fp16 bits. */
#ifndef LLMOS_QUANT_BLOCKS_H
#define LLMOS_QUANT_BLOCKS_H

#include <stdint.h>

#define QK4_0 32
#define QK4_1 32
#define QK5_0 32
#define QK5_1 32
#define QK8_0 32
#define QK_K 256
#define K_SCALE_SIZE 12

/* x = d * (q - 8), q in 0..15; low nibbles hold weights 0..15, high 16..31. */
typedef struct { uint16_t d; uint8_t qs[QK4_0 / 2]; } block_q4_0;
/* x = d * q + m, q in 0..15. */
typedef struct { uint16_t d, m; uint8_t qs[QK4_1 / 2]; } block_q4_1;
/* x = d * (q - 16), q in 0..31: 4 low bits in qs, the 5th bit of weight j in bit j of qh. */
typedef struct { uint16_t d; uint8_t qh[4]; uint8_t qs[QK5_0 / 2]; } block_q5_0;
/* x = d * q + m, q in 0..31. */
typedef struct { uint16_t d, m; uint8_t qh[4]; uint8_t qs[QK5_1 / 2]; } block_q5_1;
/* x = d * q, q in -127..127. */
typedef struct { uint16_t d; int8_t qs[QK8_0]; } block_q8_0;

/* K-quants: 256 weights in sub-blocks with quantised scales (and mins). */
typedef struct { uint8_t scales[QK_K / 16]; uint8_t qs[QK_K / 4]; uint16_t d, dmin; } block_q2_K;
typedef struct { uint8_t hmask[QK_K / 8]; uint8_t qs[QK_K / 4]; uint8_t scales[12]; uint16_t d; } block_q3_K;
typedef struct { uint16_t d, dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qs[QK_K / 2]; } block_q4_K;
typedef struct { uint16_t d, dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qh[QK_K / 8]; uint8_t qs[QK_K / 2]; } block_q5_K;
typedef struct { uint8_t ql[QK_K / 2]; uint8_t qh[QK_K / 4]; int8_t scales[QK_K / 16]; uint16_t d; } block_q6_K;
/* Activations for K-quant dot products: float scale, sums of each 16. */
typedef struct { float d; int8_t qs[QK_K]; int16_t bsums[QK_K / 16]; } block_q8_K;

/* Scale and min j (0..7) of a q4_K / q5_K block: 6 bits each, packed in 12 bytes. */
static inline void lm_q4_K_scale_min(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

_Static_assert(sizeof(block_q4_0) == 18, "q4_0");
_Static_assert(sizeof(block_q4_1) == 20, "q4_1");
_Static_assert(sizeof(block_q5_0) == 22, "q5_0");
_Static_assert(sizeof(block_q5_1) == 24, "q5_1");
_Static_assert(sizeof(block_q8_0) == 34, "q8_0");
_Static_assert(sizeof(block_q2_K) == 84, "q2_K");
_Static_assert(sizeof(block_q3_K) == 110, "q3_K");
_Static_assert(sizeof(block_q4_K) == 144, "q4_K");
_Static_assert(sizeof(block_q5_K) == 176, "q5_K");
_Static_assert(sizeof(block_q6_K) == 210, "q6_K");
_Static_assert(sizeof(block_q8_K) == 292, "q8_K");

#endif
