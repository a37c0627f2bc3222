/* Weight matrices re-laid for multi-row kernels ("x16"): rows interleaved 16
 * at a time, so that one 512-bit vpdpbusd multiplies 4 weights of each of
 * 16 rows by the same 4 activations (broadcast), and the integer sums of 16
 * rows come out in the 16 lanes of one register. The per-block float scaling
 * then costs one multiply-add per 16 rows instead of one per row, and the
 * weights unpacked once serve several tokens. llama.cpp repacks Q4_0 for
 * x86 at load time the same way ("Q4_0 8x8").
 *
 * The model loader packs the matrices whose type the chosen kernel table has
 * an x16 kernel for (LLMOS_REPACK=0 turns it off); lm_weight.layout says
 * which layout a matrix is in, and every consumer (matvec, matmul, the
 * prefill GEMM, embedding lookup) reads both.
 *
 * Layout: group g holds rows 16g..16g+15 (the last group padded with zero
 * rows), its column blocks one after another; within a block struct, lane i
 * is row i:
 *   Q4_0: d[i] row i's scale; qs[k][4i..4i+3] row i's quant bytes 4k..4k+3
 *         (low nibbles weights 4k.., high nibbles weights 16 + 4k..);
 *   Q8_0: d[i] row i's scale; qs[k][4i + j] row i's weight 4k + j plus 128,
 *         unsigned (vpdpbusd multiplies unsigned bytes by signed ones; the
 *         kernel subtracts 128 x the activations' block sum);
 *   F16:  per 32 columns, v[c][i] row i's weight in column c (16 rows'
 *         halves convert to one register of floats);
 *   Q4_K: per 256 weights, d[i] and dmin[i] row i's block scales; sc[j][i]
 *         row i's 6-bit scale of sub-block j (0..7) and mn[p][2i + h] its
 *         min of sub-block 2p + h, a byte each (GGUF packs them in 12 bytes;
 *         unpacking packs them back exactly); qs[g][k][4i..4i+3] row i's
 *         quant bytes 32g + 4k .. + 3 (low nibbles sub-block 2g, high
 *         2g + 1). 2,368 bytes for GGUF's 2,304: 3% more to read;
 *   Q6_K: per 256 weights, with q(w) row i's 6-bit value of weight w:
 *         for sub-block s (weights 16s..16s+15) and v = 0..2,
 *         qs[s][v][4i + j] = q(16s + 4v + j) | ((q(16s + 12 + j) >> 2v) & 3) << 6
 *         (j 0..3): three vectors carry four vectors' values, the fourth
 *         in their top bits (q6_K_subblock rebuilds it); sc[p][2i + h]
 *         row i's scale of sub-block 2p + h (16 weights each); d[i] row
 *         i's scale; corr[i] = 128 x the sum over sub-blocks s of row i's
 *         scale of s x the sum of (q(w) - 32) over its weights: the kernel
 *         multiplies activations + 128 (unsigned) by q - 32 (signed), and
 *         this is what the + 128 adds to row i's scaled sums. 3,424 bytes
 *         for GGUF's 3,360: 2% more to read. */
#ifndef LLMOS_PACKED_H
#define LLMOS_PACKED_H

#include "llmos/types.h"

#include <stddef.h>
#include <stdint.h>

enum { LM_X16 = 16 };

typedef enum lm_layout {
    LM_LAYOUT_ROWS = 0, /* GGUF's: rows one after another */
    LM_LAYOUT_X16 = 1   /* rows interleaved 16 at a time, as above */
} lm_layout;

typedef struct { uint16_t v[32][16]; } block_f16x16;                 /* 16 rows x 32 weights, 1,024 bytes */
typedef struct { uint16_t d[16]; uint8_t qs[4][64]; } block_q4_0x16; /* 16 rows x 32 weights, 288 bytes */
typedef struct { uint16_t d[16]; uint8_t qs[8][64]; } block_q8_0x16; /* 16 rows x 32 weights, 544 bytes */
typedef struct {
    uint16_t d[16], dmin[16];
    uint8_t sc[8][16];
    uint8_t mn[4][32];
    uint8_t qs[4][8][64];
} block_q4_Kx16; /* 16 rows x 256 weights, 2,368 bytes */
typedef struct {
    uint8_t qs[16][3][64];
    int8_t sc[8][32];
    uint16_t d[16];
    int32_t corr[16];
} block_q6_Kx16; /* 16 rows x 256 weights, 3,424 bytes */

/* Whether type t has an x16 layout. */
int lm_x16_supported(lm_type t);
/* Bytes of the x16 layout of a (rows, cols) matrix; 0 if unsupported or on
 * overflow. cols is a whole number of the type's blocks. */
size_t lm_x16_size(lm_type t, int64_t rows, int64_t cols);
/* dst (lm_x16_size bytes) = src (rows of row_bytes, GGUF's layout) in x16. */
void lm_x16_pack(lm_type t, const void *src, int64_t rows, int64_t cols, void *dst, int n_threads);
/* Columns per x16 block: 256 for K-quants, 32 for the others. */
int64_t lm_x16_block_cols(lm_type t);
/* Columns c0 .. c0 + n - 1 of row r of an x16 matrix, back in GGUF's layout
 * (lm_type_row_size(t, n) bytes at out); c0 and n are multiples of
 * lm_x16_block_cols. */
void lm_x16_unpack_row(lm_type t, const void *packed, int64_t cols, int64_t r, int64_t c0, int64_t n, void *out);
/* Bytes of one group (16 rows, all columns). */
size_t lm_x16_group_bytes(lm_type t, int64_t cols);

#endif
