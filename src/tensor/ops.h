/* F32 reference kernels for the forward pass. Shapes in comments use the
 * row-major view: W (rows, cols) means rows contiguous vectors of cols. */
#ifndef LLMOS_OPS_H
#define LLMOS_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "llmos/types.h"
#include "packed.h"

/* A weight matrix (rows, cols) of any dequantisable type, rows contiguous. */
typedef struct lm_weight {
    const void *data;
    lm_type type;
    int64_t rows, cols;
    size_t row_bytes;  /* of a row in GGUF's layout, whatever the layout */
    lm_layout layout;  /* LM_LAYOUT_X16: data is packed (packed.h) */
} lm_weight;

/* y (rows) = W @ x (cols), split by rows over n_threads. */
void lm_matvec(float *y, const lm_weight *w, const float *x, int n_threads);
/* Y (n_tok, rows) = X (n_tok, cols) @ W^T: each weight row is read once for
 * all n_tok activation vectors (prefill). A matrix with an x16 kernel (the
 * AVX-512 table's F16, Q8_0, Q4_0, Q4_K, Q6_K) goes through it at any token
 * count, so Y[t] equals lm_matvec(W, X[t]) bit for bit; other matrices, from
 * LM_GEMM_MIN_TOKENS tokens on (where the CPU has a GEMM micro-kernel), go
 * through a blocked f32 GEMM over dequantised weights, and below that equal
 * lm_matvec too. */
void lm_matmul(float *Y, const lm_weight *w, const float *X, int64_t n_tok, int n_threads);
/* Ys[i] (n_tok, ws[i]->rows) = X (n_tok, cols) @ ws[i]^T for n matrices
 * that share the input (a layer's Q, K and V; gate and up). Each Ys[i]
 * equals lm_matmul's bit for bit; where all are x16 matrices of one type
 * (lm_x16_act_bytes), the activations are quantised once and one parallel region does all the
 * rows (a decode step has about 7 of these products a layer, and each
 * region's start and join costs); where none has an x16 kernel, from
 * LM_GEMM_MIN_TOKENS on, the GEMM packs the activations once for all
 * (lm_gemm_shared). */
void lm_matmul_shared(float *const *Ys, const lm_weight *const *ws, int n, const float *X, int64_t n_tok, int n_threads);
/* A decode token's feed-forward middle: h (ffn) = silu(W_gate x) * (W_up x),
 * with h_up (ffn) as scratch, and h quantised into act (at least
 * lm_act_size(lm_x16_act(down->type), ffn) bytes) for lm_matvec_act with
 * W_down. Each thread computes, gates and quantises the same rows of both
 * products, so none of them crosses to another core before the down
 * projection reads the quantised h (on a VM whose two vCPUs sit on two
 * CCDs, a cache line between them takes ~220 ns one way). h equals
 * lm_matmul_shared's gate through lm_swiglu_f32 bit for bit, act
 * lm_act_quantize of it. Returns 0, doing nothing, unless all three are x16
 * matrices with kernels, gate and up of one type and shape, and ffn a whole
 * number of the down activations' blocks (and of 16 rows). */
int lm_ffn_swiglu_act(float *h, float *h_up, void *act, const lm_weight *gate, const lm_weight *up,
                      const lm_weight *down, const float *x, int n_threads);
/* y (rows) = W @ x from x already quantised for W's x16 kernel (as
 * lm_ffn_swiglu_act leaves it); equals lm_matvec bit for bit. 0 if W is not
 * an x16 matrix with a kernel. */
int lm_matvec_act(float *y, const lm_weight *w, const void *act, int n_threads);
/* x (w->cols) quantised for w's x16 kernel, in the calling thread's
 * scratch (valid until its next product); NULL if w is not an x16 matrix
 * with a kernel, or out of memory. */
const void *lm_x16_quantize(const lm_weight *w, const float *x);
/* Bytes of one activation row quantised for the x16 kernels of ws[0 .. n
 * - 1] (what lm_x16_quantize_into writes), or 0 unless all n (1..4) are x16
 * matrices with kernels of one type and column count. */
size_t lm_x16_act_bytes(const lm_weight *const *ws, int n);
/* x (w->cols) quantised for w's x16 kernel into act (lm_x16_act_bytes
 * bytes), as lm_matmul quantises each row; w must have one. */
void lm_x16_quantize_into(const lm_weight *w, const float *x, void *act);
/* lm_matmul_shared from activations already quantised: act holds n_tok
 * rows of lm_x16_act_bytes(ws, n) bytes each (lm_x16_quantize_into), so a
 * prompt's per-token steps can quantise each row as they finish it (a
 * region and a pass over the rows fewer). The same bits as lm_matmul_shared.
 * 0 (nothing done) where lm_x16_act_bytes(ws, n) is 0. */
int lm_matmul_shared_act(float *const *Ys, const lm_weight *const *ws, int n, const void *act, int64_t n_tok,
                         int n_threads);
/* H (n_tok, rows) = silu(X @ gate^T) * (X @ up^T) from X already quantised
 * as for lm_matmul_shared_act: a chunk of tokens through each pair of
 * groups of gate, then of up into a small per-thread tile, then the pair's
 * 32 gated values, so up's products never go through memory and the gating
 * reads values still in L1. The same bits as lm_matmul_shared_act then
 * lm_swiglu_f32 (H_up (n_tok, rows) only if out of memory for the tile).
 * 0 (nothing done) unless gate and up are x16 matrices of one type and
 * shape with an x32 kernel, rows a multiple of 32, and n_tok >= 2. */
int lm_matmul_swiglu_act(float *H, float *H_up, const lm_weight *gate, const lm_weight *up, const void *act,
                         int64_t n_tok, int n_threads);
/* The same gated values, quantised for down (n_tok rows of
 * lm_x16_act_bytes(&down, 1) bytes into act_out, as lm_x16_quantize_into
 * would quantise lm_matmul_swiglu_act's H) on the calling thread, without
 * H: a chunk of tokens goes through 256 rows of gate and up (8 pairs of
 * groups) into a tile, which is gated and quantised while it is in L2. The
 * same bytes as the product, gating and quantising apart. 0 (nothing done)
 * where lm_matmul_swiglu_act would refuse, or rows is not a multiple of
 * 256, or down is not an x16 matrix with a kernel and rows columns, or out
 * of memory for the tile. */
int lm_matmul_swiglu_quantize(void *act_out, const lm_weight *down, const lm_weight *gate, const lm_weight *up,
                               const void *act, int64_t n_tok);
/* Rows r0 .. r1 - 1 of y = W x (whole groups of 16) on the calling thread,
 * from act as lm_x16_quantize leaves it: the same bits as lm_matvec's. 0
 * (nothing written) if W is not an x16 matrix with a kernel or the rows
 * are not whole groups. */
int lm_matvec_rows_act(float *y, const lm_weight *w, const void *act, int64_t r0, int64_t r1);
/* dot(row of type t, x) over n elements (a whole number of blocks). */
float lm_vec_dot_row(lm_type t, const void *row, const float *x, int64_t n);
/* Row r of W as floats (an embedding lookup). */
void lm_weight_row(const lm_weight *w, int64_t r, float *out);

float lm_dot_f32(const float *a, const float *b, int64_t n);
/* x (n) *= s. */
void lm_scale_f32(float *x, float s, int64_t n);
/* x (n) += a (n): the residual stream's additions. */
void lm_add_f32(float *x, const float *a, int64_t n);
/* out (n) = x / rms(x) * weight; out may alias x. */
void lm_rmsnorm_f32(float *out, const float *x, const float *weight, int64_t n, float eps);
/* In place, numerically stable. */
void lm_softmax_f32(float *x, int64_t n);
/* Rotates adjacent pairs (x[2i], x[2i+1]) of the first rope_dim values of
 * each of n_heads heads; cos_sin holds (rope_dim / 2) (cos, sin) pairs. */
void lm_rope_f32(float *x, int64_t n_heads, int64_t head_dim, int64_t rope_dim, const float *cos_sin);
/* gate (n) = silu(gate) * up, by the best kernel table's swiglu */
void lm_swiglu_f32(float *gate, const float *up, int64_t n);

#endif
