/* Matrix-matrix products, blocked like a BLAS GEMM.
 *
 * C (M, N) = or += A (M, K) @ B (K, N). A is packed in groups of MR rows,
 * Ap (kc, MR) per group and column block of KC; B is packed a panel of NR
 * columns at a time, Bp (kc, NR), small enough to stay in L1; a
 * register-blocked micro-kernel multiplies one (MR, kc) x (kc, NR) pair into
 * an (MR, NR) tile of C held in registers. Threads take panels of B's
 * columns, so each B element is packed once per call however large M is.
 *
 * Two front ends share the driver:
 *  - lm_gemm: prefill, Y (n_tok, rows) = X (n_tok, cols) @ W^T with W of any
 *    dequantisable type (B's panels are dequantised weight rows);
 *  - lm_sgemm: f32 matrices given as strided views (any transposition), the
 *    training passes. */
#ifndef LLMOS_GEMM_H
#define LLMOS_GEMM_H

#include "dequant_fast.h"
#include "ops.h"

#include <stdint.h>

/* Tile (MR, NR) += or = Ap (kc, MR) @ Bp (kc, NR); tile rows are ldc apart. */
typedef void (*lm_gemm_micro_fn)(int64_t kc, const float *ap, const float *bp, float *tile, int64_t ldc,
                                 int accumulate);
/* dst (kc rows, ldd apart, of nr values) = src (nr rows, ld apart, of kc
 * values) transposed. */
typedef void (*lm_gemm_transpose_fn)(const float *src, int64_t ld, int64_t nr, int64_t kc, float *dst, int64_t ldd);
/* dst (kc, MR) = MR rows of A (ld apart, kc contiguous values each)
 * transposed: A's packing where its rows are contiguous. */
typedef void (*lm_gemm_pack_a_fn)(const float *src, int64_t ld, int64_t kc, float *dst);

typedef struct lm_gemm_kernel {
    const char *name;
    int mr, nr; /* rows of A and columns of B per tile */
    lm_gemm_micro_fn micro;
    lm_gemm_transpose_fn transpose;
    const lm_dequant_fn *dequant; /* vectorised dequantisation per type, or NULL */
    lm_gemm_pack_a_fn pack_a;     /* NULL: a plain loop (one strided store per value) */
} lm_gemm_kernel;

/* The micro-kernel for the chosen kernel table (LLMOS_KERNELS), or NULL
 * where there is none (the scalar table: prefill then uses dot products). */
const lm_gemm_kernel *lm_gemm_kernel_best(void);
/* The same, or the plain C kernel where there is no vectorised one. */
const lm_gemm_kernel *lm_gemm_kernel_any(void);
/* The kernel for the prefill's attention (tensor/attention.h): AVX-512's
 * 8 x 32 tiles where lm_gemm_kernel_best is AVX-512's, else that one. */
const lm_gemm_kernel *lm_gemm_kernel_attention(void);

/* Fewer tokens than this go through the dot-product kernels: dequantising
 * the whole matrix costs about as much as 8 dot products per weight. (Types
 * with x16 kernels never take the GEMM: see lm_matmul.) */
enum { LM_GEMM_MIN_TOKENS = 16 };

/* Y = X @ W^T with micro-kernel g. Returns 0 when it cannot run (no memory
 * for the packed operands); the caller then uses the dot-product path. */
int lm_gemm(const lm_gemm_kernel *g, float *Y, const lm_weight *w, const float *X, int64_t n_tok, int n_threads);
/* Ys[i] = X @ W_i^T for n <= 4 matrices with one column count (products that
 * share an input): X is packed once for all of them. Each Ys[i] equals
 * lm_gemm's bit for bit. Returns 0 as lm_gemm does (or for n outside 1..4,
 * or differing column counts). */
int lm_gemm_shared(const lm_gemm_kernel *g, float *const *Ys, const lm_weight *const *ws, int n, const float *X,
                   int64_t n_tok, int n_threads);

/* A strided view of an f32 matrix: element (i, j) at p[i * rs + j * cs]. */
typedef struct lm_fview {
    const float *p;
    int64_t rs, cs;
} lm_fview;

/* C (M, N), rows ldc apart, = A @ B (accumulate 0) or += A @ B (1).
 * Returns 0 when out of memory (C is then unchanged if accumulate, else
 * undefined). Each element of C is summed in the same order whatever the
 * thread count, so results are reproducible bit for bit. */
int lm_sgemm(const lm_gemm_kernel *g, int64_t M, int64_t N, int64_t K, lm_fview A, lm_fview B, float *C, int64_t ldc,
             int accumulate, int n_threads);

/* The same product with A and B rounded to bf16 (to nearest even) and
 * multiplied in pairs with f32 accumulation (AVX-512 BF16's vdpbf16ps):
 * twice the multiply-adds per instruction. g from lm_gemm_kernel_bf16,
 * which is NULL where the CPU has no bf16 dot product. */
int lm_sgemm_bf16(const lm_gemm_kernel *g, int64_t M, int64_t N, int64_t K, lm_fview A, lm_fview B, float *C,
                  int64_t ldc, int accumulate, int n_threads);
const lm_gemm_kernel *lm_gemm_kernel_bf16(void);

extern const lm_gemm_kernel lm_gemm_scalar;
#if defined(__x86_64__)
/* dst (kc rows, ldd apart) = src (nr rows, ld apart) transposed; nr a multiple of 8. */
void lm_gemm_transpose_avx2(const float *src, int64_t ld, int64_t nr, int64_t kc, float *dst, int64_t ldd);
/* lm_gemm_pack_a_fn for MR = 12 and MR = 8. */
void lm_gemm_pack_a12_avx2(const float *src, int64_t ld, int64_t kc, float *dst);
void lm_gemm_pack_a8_avx2(const float *src, int64_t ld, int64_t kc, float *dst);
extern const lm_gemm_kernel lm_gemm_avx2;
extern const lm_gemm_kernel lm_gemm_avx512;
extern const lm_gemm_kernel lm_gemm_avx512_attn; /* 8 x 32 tiles, for attention (lm_gemm_kernel_attention) */
extern const lm_gemm_kernel lm_gemm_avx512_bf16; /* packed units are bf16 pairs */
#endif

#endif
