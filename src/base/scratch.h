/* Per-thread scratch buffers that only grow.
 *
 * Prefill, training and decode call the products many times per layer;
 * fresh multi-megabyte allocations cost a page fault and a cleared page
 * every 4 KiB, and small ones a trip through malloc per product (0.6% of a
 * 110M model's decode). Each thread keeps one buffer per slot, 64-byte
 * aligned, hanging off a thread-specific key whose destructor frees them
 * when the thread ends (OpenMP ends pool threads when a smaller team
 * follows a larger one, and the server's connection threads come and go:
 * plain __thread buffers would leak). A slot's buffer is the caller's until
 * its next call for the same slot on the same thread; its contents do not
 * survive a call that grows it. */
#ifndef LLMOS_SCRATCH_H
#define LLMOS_SCRATCH_H

#include <stddef.h>

typedef enum lm_scratch_slot {
    LM_SCRATCH_GEMM_A,     /* gemm.c: all of A, packed */
    LM_SCRATCH_GEMM_PANEL, /* gemm.c: a B panel, its scratch and an edge tile */
    LM_SCRATCH_ACT,        /* ops.c: a product's quantised activations */
    LM_SCRATCH_ATTN,       /* forward.c: a KV head packed for the prefill's attention */
    LM_SCRATCH_WEIGHTS,    /* kernels_avx512.c: two groups of K-quant weights unpacked to bytes */
    LM_SCRATCH_ACT2,       /* forward.c: a prompt's rows quantised for a second activation kind (Q4_K_M's Q6_K V),
                            * or a layer tail's rows quantised for down */
    LM_SCRATCH_ROW,        /* forward.c: a prompt token's normalised row, on its way to being quantised */
    LM_SCRATCH_TILE,       /* ops.c: a chunk of tokens' up projections for one pair of groups, before gating
                            * (and their gated values for 256 rows, before quantising) */
    LM_SCRATCH_SLOTS
} lm_scratch_slot;

/* At least bytes of this thread's buffer for slot, 64-byte aligned; NULL
 * if out of memory (the slot then holds nothing). */
void *lm_scratch(lm_scratch_slot slot, size_t bytes);

#endif
