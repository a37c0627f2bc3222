/* The blocked GEMM driver: packing, dequantisation into panels, tiling and
 * threads. The micro-kernels live in gemm_avx2.c and gemm_avx512.c. */
#include "gemm.h"

#include "dequant_fast.h"
#include "kernels.h"
#include "../base/cpu.h"

#include <stdlib.h>
#include <string.h>

/* Columns per block: a multiple of every block size (32 and 256), so a
 * block of any row dequantises on its own; Wp (KC, NR) is 32 KiB for
 * NR = 32 and stays in L1 while all token groups pass over it. */
enum { KC = 256 };

const lm_gemm_kernel *lm_gemm_kernel_best(void) {
#if defined(__x86_64__)
    const char *name = lm_kernels_best()->name;
    if (strcmp(name, "avx512") == 0 && lm_cpu_has_avx512f()) return &lm_gemm_avx512;
    if (strcmp(name, "avx512") == 0 || strcmp(name, "avx2") == 0) return &lm_gemm_avx2;
#endif
    return NULL;
}

/* Xp: for each column block (k0) and token group g, (kc, MR) floats at
 * xp + k0 * groups * MR + g * kc * MR; missing tokens are 0. Packs group g. */
static void pack_x_group(float *xp, const float *X, int64_t n_tok, int64_t cols, int mr, int64_t g) {
    int64_t groups = (n_tok + mr - 1) / mr;
    for (int64_t k0 = 0; k0 < cols; k0 += KC) {
        int64_t kc = cols - k0 < KC ? cols - k0 : KC;
        float *dst = xp + k0 * groups * mr + g * kc * mr;
        for (int i = 0; i < mr; i++) {
            int64_t t = g * mr + i;
            if (t < n_tok) {
                const float *src = X + t * cols + k0;
                for (int64_t k = 0; k < kc; k++) dst[k * mr + i] = src[k];
            } else {
                for (int64_t k = 0; k < kc; k++) dst[k * mr + i] = 0.0f;
            }
        }
    }
}

/* Wp (kc, NR) from rows r0.. of W, columns k0..k0+kc; rows past the end are
 * 0. rm (NR, kc) is scratch: rows are dequantised in their own order, then
 * transposed 8x8 at a time. */
static void pack_w(float *wp, float *rm, const lm_weight *w, int64_t r0, int64_t k0, int64_t kc, int nr) {
    const uint8_t *base = w->data;
    size_t k0_bytes = lm_type_row_size(w->type, k0);
    lm_dequant_fn fast = NULL;
#if defined(__x86_64__)
    fast = lm_dequant_avx2[w->type];
#endif
    for (int j = 0; j < nr; j++) {
        int64_t r = r0 + j;
        float *dst = rm + j * kc;
        const uint8_t *src = base + (size_t)r * w->row_bytes + k0_bytes;
        if (r >= w->rows) {
            memset(dst, 0, (size_t)kc * sizeof(float));
        } else if (fast) {
            fast(src, dst, kc);
        } else {
            lm_dequantize_row(w->type, src, dst, kc, NULL);
        }
    }
#if defined(__x86_64__)
    lm_gemm_transpose_avx2(rm, nr, kc, wp);
#else
    for (int64_t k = 0; k < kc; k++) {
        for (int j = 0; j < nr; j++) wp[k * nr + j] = rm[j * kc + k];
    }
#endif
}

/* aligned_alloc wants a multiple of the alignment. */
static size_t round64(size_t n) { return (n + 63) & ~(size_t)63; }

/* Packed operands live in per-thread buffers that only grow: prefill calls
 * this ~10 times per layer, and fresh multi-megabyte allocations would cost
 * a page fault and a cleared page every 4 KiB each time. */
typedef struct workspace { float *p; size_t bytes; } workspace;
static __thread workspace ws_x, ws_panel;

static float *workspace_get(workspace *ws, size_t bytes) {
    bytes = round64(bytes);
    if (ws->bytes >= bytes) return ws->p;
    free(ws->p);
    ws->p = aligned_alloc(64, bytes);
    ws->bytes = ws->p ? bytes : 0;
    return ws->p;
}

int lm_gemm(const lm_gemm_kernel *g, float *Y, const lm_weight *w, const float *X, int64_t n_tok, int n_threads) {
    const int mr = g->mr, nr = g->nr;
    const int64_t rows = w->rows, cols = w->cols, groups = (n_tok + mr - 1) / mr;
    const int64_t panels = (rows + nr - 1) / nr;
    float *xp = workspace_get(&ws_x, (size_t)(groups * mr * cols) * sizeof(float));
    if (!xp) return 0;
    int failed = 0;
#pragma omp parallel num_threads(n_threads)
    {
        /* Per thread: the packed panel, the rows before transposition, and a
         * tile for the edges of Y (fewer than MR tokens or NR rows left). */
        float *wp = workspace_get(&ws_panel, ((size_t)KC * nr * 2 + (size_t)mr * nr) * sizeof(float));
        if (!wp) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (int64_t gi = 0; gi < groups; gi++) pack_x_group(xp, X, n_tok, cols, mr, gi);
        /* (the for's barrier also publishes `failed`) */
        if (!failed) {
            float *rows_tmp = wp + (size_t)KC * nr, *edge = rows_tmp + (size_t)KC * nr;
#pragma omp for schedule(dynamic, 1)
            for (int64_t p = 0; p < panels; p++) {
                int64_t r0 = p * nr, n_rows = rows - r0 < nr ? rows - r0 : nr;
                for (int64_t k0 = 0; k0 < cols; k0 += KC) {
                    int64_t kc = cols - k0 < KC ? cols - k0 : KC;
                    pack_w(wp, rows_tmp, w, r0, k0, kc, nr);
                    const float *xblock = xp + k0 * groups * mr;
                    int acc = k0 > 0;
                    for (int64_t gi = 0; gi < groups; gi++) {
                        int64_t t0 = gi * mr, n_t = n_tok - t0 < mr ? n_tok - t0 : mr;
                        float *tile = Y + t0 * rows + r0;
                        if (n_t == mr && n_rows == nr) {
                            g->micro(kc, xblock + gi * kc * mr, wp, tile, rows, acc);
                            continue;
                        }
                        g->micro(kc, xblock + gi * kc * mr, wp, edge, nr, 0);
                        for (int64_t i = 0; i < n_t; i++) {
                            float *dst = tile + i * rows;
                            const float *src = edge + i * nr;
                            if (acc) {
                                for (int64_t j = 0; j < n_rows; j++) dst[j] += src[j];
                            } else {
                                memcpy(dst, src, (size_t)n_rows * sizeof(float));
                            }
                        }
                    }
                }
            }
        }
    }
    return !failed;
}
