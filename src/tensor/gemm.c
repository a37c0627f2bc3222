/* The blocked GEMM driver: packing, tiling and threads, for weights of any
 * type (lm_gemm) and strided f32 matrices (lm_sgemm). The vectorised
 * micro-kernels live in gemm_avx2.c and gemm_avx512.c; the plain C one is
 * here. */
#include "gemm.h"

#include "kernels.h"
#include "../base/cpu.h"
#include "../base/pool.h"
#include "../base/scratch.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Columns per block: a multiple of every block size (32 and 256), so a
 * block of any row dequantises on its own; Bp (KC, NR) is 32 KiB for
 * NR = 32 and stays in L1 while all of A's groups pass over it. */
enum { KC = 256 };

/* ---- The plain C micro-kernel: 4 x 8 tiles, for CPUs without AVX2. ---- */

static void micro_scalar(int64_t kc, const float *ap, const float *bp, float *tile, int64_t ldc, int accumulate) {
    float c[4][8] = {{0}};
    for (int64_t k = 0; k < kc; k++) {
        for (int i = 0; i < 4; i++) {
            for (int j = 0; j < 8; j++) c[i][j] += ap[k * 4 + i] * bp[k * 8 + j];
        }
    }
    for (int i = 0; i < 4; i++) {
        for (int j = 0; j < 8; j++) tile[i * ldc + j] = accumulate ? tile[i * ldc + j] + c[i][j] : c[i][j];
    }
}

static void transpose_scalar(const float *src, int64_t ld, int64_t nr, int64_t kc, float *dst, int64_t ldd) {
    for (int64_t k = 0; k < kc; k++) {
        for (int64_t j = 0; j < nr; j++) dst[k * ldd + j] = src[j * ld + k];
    }
}

const lm_gemm_kernel lm_gemm_scalar = {"scalar", 4, 8, micro_scalar, transpose_scalar, NULL};

static const lm_gemm_kernel *choose_kernel(void) {
#if defined(__x86_64__)
    const char *name = lm_kernels_best()->name;
    if (strcmp(name, "avx512") == 0 && lm_cpu_has_avx512f()) return &lm_gemm_avx512;
    if (strcmp(name, "avx512") == 0 || strcmp(name, "avx2") == 0) return &lm_gemm_avx2;
#endif
    return NULL;
}

static const lm_gemm_kernel *best_kernel;
static pthread_once_t best_once = PTHREAD_ONCE_INIT;
static void init_best(void) { best_kernel = choose_kernel(); }

const lm_gemm_kernel *lm_gemm_kernel_best(void) {
    pthread_once(&best_once, init_best);
    return best_kernel;
}

const lm_gemm_kernel *lm_gemm_kernel_any(void) {
    const lm_gemm_kernel *g = lm_gemm_kernel_best();
    return g ? g : &lm_gemm_scalar;
}

const lm_gemm_kernel *lm_gemm_kernel_attention(void) {
#if defined(__x86_64__)
    if (lm_gemm_kernel_best() == &lm_gemm_avx512) return &lm_gemm_avx512_attn;
#endif
    return lm_gemm_kernel_any();
}

/* Packed operands live in per-thread buffers that only grow (base/scratch.h). */

/* ---- The driver ---- */

/* Fills Bp (kc, NR) with columns n0..n0+NR-1 (0 past N) and rows
 * k0..k0+kc-1 of B; scratch holds NR * KC floats. */
typedef void (*pack_b_fn)(const void *ctx, const lm_gemm_kernel *g, float *bp, float *scratch, int64_t n0, int64_t k0,
                          int64_t kc);

/* Packs group gi of A (rows gi*MR..) for every column block; ctx is the
 * front end's description of A. */
typedef void (*pack_a_fn)(const void *ctx, const lm_gemm_kernel *g, float *ap, int64_t M, int64_t K, int64_t gi);

/* Ap for group gi (rows gi*MR..): (kc, MR) per column block, at
 * ap + k0 * groups * MR + gi * kc * MR; rows past M are 0. */
static void pack_a_group(const void *ctx, const lm_gemm_kernel *g, float *ap, int64_t M, int64_t K, int64_t gi) {
    const lm_fview A = *(const lm_fview *)ctx;
    const int mr = g->mr;
    int64_t groups = (M + mr - 1) / mr;
    for (int64_t k0 = 0; k0 < K; k0 += KC) {
        int64_t kc = K - k0 < KC ? K - k0 : KC;
        float *dst = ap + k0 * groups * mr + gi * kc * mr;
        if (g->pack_a && A.cs == 1 && (gi + 1) * mr <= M) { /* rows contiguous: a vectorised transpose */
            g->pack_a(A.p + gi * mr * A.rs + k0, A.rs, kc, dst);
            continue;
        }
        if (A.rs == 1 && (gi + 1) * mr <= M) { /* A^T views (dW = dY^T X): rows contiguous down a column */
            for (int64_t k = 0; k < kc; k++) {
                const float *src = A.p + gi * mr + (k0 + k) * A.cs;
                for (int i = 0; i < mr; i++) dst[k * mr + i] = src[i];
            }
            continue;
        }
        for (int i = 0; i < mr; i++) {
            int64_t m = gi * mr + i;
            if (m < M) {
                const float *src = A.p + m * A.rs + k0 * A.cs;
                if (A.cs == 1) {
                    for (int64_t k = 0; k < kc; k++) dst[k * mr + i] = src[k];
                } else {
                    for (int64_t k = 0; k < kc; k++) dst[k * mr + i] = src[k * A.cs];
                }
            } else {
                for (int64_t k = 0; k < kc; k++) dst[k * mr + i] = 0.0f;
            }
        }
    }
}

/* One GEMM's shared state: C_i (M, N_i) (+)= A (M, K) B_i (K, N_i) through
 * packed operands, for up to GEMM_MAX_B products that share A (a layer's
 * Q, K, V; gate and up): A is packed once, and the panels of all the B_i
 * are handed out as one sequence. */
enum { GEMM_MAX_B = 4 };
typedef struct {
    const void *ctx; /* pack_b's description of B */
    float *C;
    int64_t N, ldc;
} gemm_b;

typedef struct {
    const lm_gemm_kernel *g;
    int64_t M, K, groups;
    pack_a_fn pack_a;
    const void *actx;
    pack_b_fn pack_b;
    int n_b;
    gemm_b b[GEMM_MAX_B];
    int64_t first_panel[GEMM_MAX_B + 1]; /* B_i's panels are first_panel[i] .. first_panel[i + 1] - 1 */
    float *ap; /* all of A packed, (groups * MR, K) in (kc, MR) tiles */
    int accumulate;
    _Atomic int failed;
    _Alignas(64) _Atomic int64_t next_panel;
} gemm_job;

static void pack_a_range(void *arg, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const gemm_job *j = arg;
    for (int64_t gi = begin; gi < end; gi++) j->pack_a(j->actx, j->g, j->ap, j->M, j->K, gi);
}

/* Takes panels of NR columns of a C until none are left: per panel and block
 * of KC, B's block is packed once and every group of A passes over it. */
static void panels_share(void *arg, int thread, int n_threads) {
    (void)thread, (void)n_threads;
    gemm_job *j = arg;
    const lm_gemm_kernel *g = j->g;
    const int mr = g->mr, nr = g->nr;
    const int64_t M = j->M, K = j->K, groups = j->groups;
    /* Per thread: the packed panel, scratch for packing it, and a tile for
     * the edges of C (fewer than MR rows or NR columns left). */
    float *bp = lm_scratch(LM_SCRATCH_GEMM_PANEL, ((size_t)KC * nr * 2 + (size_t)mr * nr) * sizeof(float));
    if (!bp) {
        atomic_store(&j->failed, 1);
        return;
    }
    float *scratch = bp + (size_t)KC * nr, *edge = scratch + (size_t)KC * nr;
    for (int64_t pp; !atomic_load_explicit(&j->failed, memory_order_relaxed) &&
                     (pp = atomic_fetch_add_explicit(&j->next_panel, 1, memory_order_relaxed)) < j->first_panel[j->n_b];) {
        int i = 0;
        while (pp >= j->first_panel[i + 1]) i++;
        const gemm_b *b = &j->b[i];
        const int64_t n0 = (pp - j->first_panel[i]) * nr, n_cols = b->N - n0 < nr ? b->N - n0 : nr, ldc = b->ldc;
        for (int64_t k0 = 0; k0 < K; k0 += KC) {
            int64_t kc = K - k0 < KC ? K - k0 : KC;
            j->pack_b(b->ctx, g, bp, scratch, n0, k0, kc);
            const float *ablock = j->ap + k0 * groups * mr;
            int acc = j->accumulate || k0 > 0;
            for (int64_t gi = 0; gi < groups; gi++) {
                int64_t m0 = gi * mr, n_m = M - m0 < mr ? M - m0 : mr;
                float *tile = b->C + m0 * ldc + n0;
                if (n_m == mr && n_cols == nr) {
                    g->micro(kc, ablock + gi * kc * mr, bp, tile, ldc, acc);
                    continue;
                }
                g->micro(kc, ablock + gi * kc * mr, bp, edge, nr, 0);
                for (int64_t r = 0; r < n_m; r++) {
                    float *dst = tile + r * ldc;
                    const float *src = edge + r * nr;
                    if (acc) {
                        for (int64_t c = 0; c < n_cols; c++) dst[c] += src[c];
                    } else {
                        memcpy(dst, src, (size_t)n_cols * sizeof(float));
                    }
                }
            }
        }
    }
}

/* Runs a job whose B list is filled in: packs A, then all the panels. The
 * inference path (use_pool) runs on the worker pool of base/pool.h like the
 * rest of the forward pass; training runs its other steps in OpenMP teams,
 * so its products stay in OpenMP too (two sets of spinning threads would
 * fight over the cores). */
static int gemm_job_run(gemm_job *j, int n_threads, int use_pool) {
    const lm_gemm_kernel *g = j->g;
    j->groups = (j->M + g->mr - 1) / g->mr;
    for (int i = 0; i < j->n_b; i++) j->first_panel[i + 1] = j->first_panel[i] + (j->b[i].N + g->nr - 1) / g->nr;
    j->ap = lm_scratch(LM_SCRATCH_GEMM_A, (size_t)(j->groups * g->mr * j->K) * sizeof(float));
    if (!j->ap) return 0;
    if (n_threads > j->first_panel[j->n_b]) n_threads = (int)j->first_panel[j->n_b];
    if (use_pool || n_threads <= 1) {
        lm_parallel_for(n_threads, j->groups, pack_a_range, j);
        lm_parallel(n_threads, panels_share, j);
    } else {
#pragma omp parallel num_threads(n_threads)
        {
#pragma omp for schedule(static)
            for (int64_t gi = 0; gi < j->groups; gi++) pack_a_range(j, gi, gi + 1, 0);
            panels_share(j, 0, 1); /* (the for's barrier: A is packed) */
        }
    }
    return !atomic_load(&j->failed);
}

/* K counts packed units: values for f32, pairs of values for bf16. */
static int gemm_run(const lm_gemm_kernel *g, int64_t M, int64_t N, int64_t K, pack_a_fn pack_a, const void *actx,
                    pack_b_fn pack_b, const void *ctx, float *C, int64_t ldc, int accumulate, int n_threads,
                    int use_pool) {
    if (M <= 0 || N <= 0) return 1;
    if (K <= 0) { /* an empty sum */
        if (!accumulate) {
            for (int64_t m = 0; m < M; m++) memset(C + m * ldc, 0, (size_t)N * sizeof(float));
        }
        return 1;
    }
    gemm_job j = {.g = g, .M = M, .K = K, .pack_a = pack_a, .actx = actx, .pack_b = pack_b, .n_b = 1,
                  .b = {{ctx, C, N, ldc}}, .accumulate = accumulate};
    return gemm_job_run(&j, n_threads, use_pool);
}

/* ---- lm_gemm: B = W^T, panels dequantised from weight rows ---- */

/* Bp (kc, NR) from rows n0.. of W, columns k0..k0+kc: rows are dequantised
 * in their own order into scratch (NR, kc), then transposed. */
static void pack_weight(const void *ctx, const lm_gemm_kernel *g, float *bp, float *scratch, int64_t n0, int64_t k0,
                        int64_t kc) {
    const lm_weight *w = ctx;
    const uint8_t *base = w->data;
    size_t k0_bytes = lm_type_row_size(w->type, k0);
    lm_dequant_fn fast = g->dequant ? g->dequant[w->type] : NULL;
    uint8_t row_bytes[KC * 2]; /* an x16 row's KC columns back in GGUF's layout (at most 2 bytes a weight) */
    for (int j = 0; j < g->nr; j++) {
        int64_t r = n0 + j;
        float *dst = scratch + j * kc;
        const uint8_t *src = base + (size_t)r * w->row_bytes + k0_bytes;
        if (r < w->rows && w->layout == LM_LAYOUT_X16) {
            lm_x16_unpack_row(w->type, base, w->cols, r, k0, kc, row_bytes); /* KC is a multiple of 256 */
            src = row_bytes;
        }
        if (r >= w->rows) {
            memset(dst, 0, (size_t)kc * sizeof(float));
        } else if (fast) {
            fast(src, dst, kc);
        } else {
            lm_dequantize_row(w->type, src, dst, kc, NULL);
        }
    }
    g->transpose(scratch, kc, g->nr, kc, bp, g->nr);
}

int lm_gemm(const lm_gemm_kernel *g, float *Y, const lm_weight *w, const float *X, int64_t n_tok, int n_threads) {
    return lm_gemm_shared(g, &Y, &w, 1, X, n_tok, n_threads);
}

int lm_gemm_shared(const lm_gemm_kernel *g, float *const *Ys, const lm_weight *const *ws, int n, const float *X,
                   int64_t n_tok, int n_threads) {
    if (n < 1 || n > GEMM_MAX_B) return 0;
    if (n_tok <= 0) return 1;
    lm_fview A = {X, ws[0]->cols, 1};
    gemm_job j = {.g = g, .M = n_tok, .K = ws[0]->cols, .pack_a = pack_a_group, .actx = &A, .pack_b = pack_weight, .n_b = n};
    for (int i = 0; i < n; i++) {
        if (ws[i]->cols != ws[0]->cols) return 0;
        j.b[i] = (gemm_b){ws[i], Ys[i], ws[i]->rows, ws[i]->rows};
    }
    return gemm_job_run(&j, n_threads, 1);
}

/* ---- lm_sgemm: B a strided f32 view ---- */

typedef struct view_b { lm_fview B; int64_t N; } view_b;

static void pack_view(const void *ctx, const lm_gemm_kernel *g, float *bp, float *scratch, int64_t n0, int64_t k0,
                      int64_t kc) {
    const lm_fview *B = &((const view_b *)ctx)->B;
    const int64_t N = ((const view_b *)ctx)->N;
    const int nr = g->nr;
    int64_t n_cols = N - n0 < nr ? N - n0 : nr;
    if (B->rs == 1 && n_cols == nr) { /* columns contiguous (B = W^T): rows of W, transposed */
        for (int j = 0; j < nr; j++) memcpy(scratch + j * kc, B->p + (n0 + j) * B->cs + k0, (size_t)kc * sizeof(float));
        g->transpose(scratch, kc, nr, kc, bp, nr);
        return;
    }
    for (int64_t k = 0; k < kc; k++) {
        const float *src = B->p + (k0 + k) * B->rs + n0 * B->cs;
        float *dst = bp + k * nr;
        if (B->cs == 1) {
            memcpy(dst, src, (size_t)n_cols * sizeof(float));
        } else {
            for (int64_t j = 0; j < n_cols; j++) dst[j] = src[j * B->cs];
        }
        for (int64_t j = n_cols; j < nr; j++) dst[j] = 0.0f;
    }
}

int lm_sgemm(const lm_gemm_kernel *g, int64_t M, int64_t N, int64_t K, lm_fview A, lm_fview B, float *C, int64_t ldc,
             int accumulate, int n_threads) {
    view_b ctx = {B, N};
    return gemm_run(g, M, N, K, pack_a_group, &A, pack_view, &ctx, C, ldc, accumulate, n_threads, 0);
}

/* ---- lm_sgemm_bf16: the same views, multiplied in bf16 pairs ---- */

/* f32 to bf16, rounding to nearest even (NaN stays NaN). */
static inline uint32_t to_bf16(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (u >> 16) | 0x40;
    return (u + 0x7fffu + ((u >> 16) & 1)) >> 16;
}

/* Two bf16 in 32 bits: element k in the low half, k + 1 in the high half. */
static inline float bf16_pair(float lo, float hi) {
    uint32_t u = to_bf16(lo) | to_bf16(hi) << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

typedef struct view_bf16 { lm_fview v; int64_t rows_or_cols, K; } view_bf16;

/* As pack_a_group with units of two columns (k = 2u, 2u + 1; past K: 0). */
static void pack_a_bf16(const void *ctx, const lm_gemm_kernel *g, float *ap, int64_t M, int64_t K2, int64_t gi) {
    const view_bf16 *a = ctx;
    const int mr = g->mr;
    const lm_fview A = a->v;
    const int64_t K = a->K, groups = (M + mr - 1) / mr;
    for (int64_t k0 = 0; k0 < K2; k0 += KC) {
        int64_t kc = K2 - k0 < KC ? K2 - k0 : KC;
        float *dst = ap + k0 * groups * mr + gi * kc * mr;
        for (int i = 0; i < mr; i++) {
            int64_t m = gi * mr + i;
            for (int64_t u = 0; u < kc; u++) {
                int64_t k = 2 * (k0 + u);
                float lo = m < M ? A.p[m * A.rs + k * A.cs] : 0.0f;
                float hi = m < M && k + 1 < K ? A.p[m * A.rs + (k + 1) * A.cs] : 0.0f;
                dst[u * mr + i] = bf16_pair(lo, hi);
            }
        }
    }
}

static void pack_b_bf16(const void *ctx, const lm_gemm_kernel *g, float *bp, float *scratch, int64_t n0, int64_t k0,
                        int64_t kc) {
    (void)scratch;
    const view_bf16 *b = ctx;
    const lm_fview B = b->v;
    const int64_t N = b->rows_or_cols, K = b->K;
    for (int64_t u = 0; u < kc; u++) {
        int64_t k = 2 * (k0 + u);
        for (int j = 0; j < g->nr; j++) {
            int64_t n = n0 + j;
            float lo = n < N ? B.p[k * B.rs + n * B.cs] : 0.0f;
            float hi = n < N && k + 1 < K ? B.p[(k + 1) * B.rs + n * B.cs] : 0.0f;
            bp[u * g->nr + j] = bf16_pair(lo, hi);
        }
    }
}

const lm_gemm_kernel *lm_gemm_kernel_bf16(void) {
#if defined(__x86_64__)
    if (lm_gemm_kernel_best() == &lm_gemm_avx512 && lm_cpu_has_avx512_bf16()) return &lm_gemm_avx512_bf16;
#endif
    return NULL;
}

int lm_sgemm_bf16(const lm_gemm_kernel *g, int64_t M, int64_t N, int64_t K, lm_fview A, lm_fview B, float *C,
                  int64_t ldc, int accumulate, int n_threads) {
    view_bf16 a = {A, M, K}, b = {B, N, K};
    return gemm_run(g, M, N, (K + 1) / 2, pack_a_bf16, &a, pack_b_bf16, &b, C, ldc, accumulate, n_threads, 0);
}
