/* Causal attention of a block of queries against one KV head, as GEMM
 * micro-kernel calls (the prefill's attention, tensor/attention.c).
 *
 * The head's keys and values are packed once as A operands of the
 * micro-kernel: K (keys, hd) in panels of MR keys, V^T (hd, keys) in panels
 * of MR dimensions. Then, per NR queries:
 *   S^T (seen, NR) = K Q^T      keys down, queries across: Q^T is one B panel
 *   P^T = column softmax of S^T  causal, in place: P^T is then a B panel itself
 *   O^T (hd, NR) = V^T P^T       and O = O^T^T / each query's sum
 * so that neither the scores nor the weights are ever repacked, and the
 * softmax's reductions run down columns (vertical maxima and sums). */
#ifndef LLMOS_ATTENTION_H
#define LLMOS_ATTENTION_H

#include "gemm.h"

#include <stddef.h>
#include <stdint.h>

/* A KV head in the cache: position t's key at k + t * stride, its value at
 * v + t * stride, hd elements each, floats or IEEE halves. */
typedef struct lm_kv_head {
    const void *k, *v;
    int64_t stride;
    int half; /* 1: IEEE halves (an f16 cache) */
} lm_kv_head;

/* Floats of scratch for one head of up to `keys` keys (packed K and V^T
 * and the per-block buffers), or 0 on overflow or for a kernel whose
 * panels are wider than 64 columns. */
size_t lm_attn_scratch_floats(const lm_gemm_kernel *g, int64_t keys, int64_t hd);

/* Packs keys and values 0 .. keys - 1 of kv into scratch (64-byte aligned,
 * lm_attn_scratch_floats(g, keys, hd) floats). */
void lm_attn_pack_head(const lm_gemm_kernel *g, lm_kv_head kv, int64_t keys, int64_t hd, float *scratch);

/* A rotary table for the queries: pair i's cosine and sine at position p
 * are cos_t[i * stride + p] and sin_t[i * stride + p], for every p up to
 * the last query's position + NR (a block's padded columns read them). */
typedef struct lm_attn_rope {
    const float *cos_t, *sin_t;
    int64_t stride, rope_dim;
} lm_attn_rope;

/* out (n, hd), rows out_stride apart = softmax(scale q k^T) v, causal, for
 * queries q (n, hd), rows q_stride apart, at positions pos0 .. pos0 + n - 1,
 * against the head scratch holds (packed with keys = pos0 + n or more:
 * pass that count as keys). With rope, each query is first rotated for its
 * position (lm_rope_cols_fn: the bits lm_rope_fn would give it); with
 * NULL, q is used as it is. */
void lm_attn_causal(const lm_gemm_kernel *g, float *scratch, int64_t keys, int64_t hd, const float *q, int64_t q_stride,
                    int64_t n, int64_t pos0, float scale, const lm_attn_rope *rope, float *out, int64_t out_stride);

#endif
