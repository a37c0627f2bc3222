#include "ops.h"

#include "gemm.h"
#include "kernels.h"
#include "../base/checked.h"
#include "../base/pool.h"
#include "../base/scratch.h"
#include "quant_blocks.h"

#include <stdlib.h>
#include <string.h>
#include <math.h>

float lm_dot_f32(const float *a, const float *b, int64_t n) {
    /* Eight independent accumulators let the compiler vectorise without
     * reassociating (no -ffast-math), so results are reproducible. */
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        for (int k = 0; k < 8; k++) acc[k] += a[i + k] * b[i + k];
    }
    float sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < n; i++) sum += a[i] * b[i];
    return sum;
}

float lm_vec_dot_row(lm_type t, const void *row, const float *x, int64_t n) {
    if (t == LM_TYPE_F32) return lm_dot_f32(row, x, n);
    /* The scalar reference for every other type: dequantise 256 weights at a
     * time (a whole number of blocks of every type) and take the f32 dot. */
    enum { CHUNK = 256 };
    float tmp[CHUNK], sum = 0.0f;
    const uint8_t *p = row;
    size_t chunk_bytes = lm_type_row_size(t, CHUNK);
    for (int64_t i = 0; i < n; i += CHUNK) {
        int64_t k = n - i < CHUNK ? n - i : CHUNK;
        lm_dequantize_row(t, p, tmp, k, NULL);
        sum += lm_dot_f32(tmp, x + i, k);
        p += chunk_bytes;
    }
    return sum;
}

/* n_tok activation vectors of act_size bytes: this thread's scratch
 * (base/scratch.h), on a cache line (the 512-bit kernels read them 64
 * bytes at a time, and a load split across two lines costs two), kept for
 * the next product (a fresh allocation per product was 0.6% of a 110M
 * model's decode). NULL on overflow or out of memory. */
static uint8_t *act_buffer(size_t act_size, int64_t n_tok) {
    size_t bytes;
    if (n_tok < 0 || lm_mul_overflow_size(act_size, (size_t)n_tok, &bytes)) return NULL;
    return lm_scratch(LM_SCRATCH_ACT, bytes);
}

/* Below ~64k multiply-adds a region costs more than it saves. */
static int threads_for(int64_t macs, int n_threads) { return macs >= (1 << 16) ? n_threads : 1; }

/* Ys[i] (n_tok, rows_i) = X @ W_i^T for n x16 matrices of one type and
 * column count: the activations are quantised once, and one split of all
 * the matrices' groups of 16 rows over the threads (lm_parallel_for; each
 * thread writes whole 64-byte runs of Y) unpacks each group once per 8
 * tokens (4 for F16). */
enum { MAX_SHARED = 4, MAX_SPREAD = 8 /* the most threads x16_spread orders items for */ };

/* A run of one matrix's groups: the job's groups group0 .. group0 + groups - 1. */
typedef struct {
    int64_t group0, groups;
} x16_segment;

typedef struct {
    float *const *Ys;
    const lm_weight *const *ws;
    int64_t first_group[MAX_SHARED + 1]; /* matrix i's groups are first_group[i] .. first_group[i + 1] - 1 */
    lm_dot_x16_fn dot;
    lm_dot_x16_pair_fn pair; /* NULL: one group at a time */
    lm_dot_x32_fn x32;       /* NULL: a prompt's groups one at a time */
    int64_t per_item;        /* groups per item of the parallel loop: 2 with x32 or pair (no chunk splits a pair) */
    const uint8_t *act; /* n_tok quantised activation vectors, act_size bytes apart */
    size_t act_size, group_bytes;
    int64_t n_tok;
    int64_t tok_chunk; /* tokens taken through a range of groups at a time */
    /* With several matrices and tokens, the items spread each matrix over
     * the threads (x16_spread): segment s holds items seg_item0[s] ..
     * seg_item0[s + 1] - 1. n_seg 0: the items are the groups in order. */
    int n_seg;
    int64_t seg_item0[MAX_SHARED * MAX_SPREAD + 1];
    x16_segment seg[MAX_SHARED * MAX_SPREAD];
} x16_job;

/* Tokens t0 .. t0 + n - 1 through group gg (of all the job's matrices'
 * groups), which is in matrix i; with two, through groups gg and gg + 1 of
 * matrix i, both full, in one x32 call (bit for bit two calls without). */
static void x16_group(const x16_job *j, int64_t gg, int i, int64_t t0, int64_t n, int two) {
    const int64_t cols = j->ws[0]->cols, g = gg - j->first_group[i], rows = j->ws[i]->rows, r0 = g * LM_X16;
    const int64_t nr = rows - r0 < LM_X16 ? rows - r0 : LM_X16;
    const uint8_t *group = (const uint8_t *)j->ws[i]->data + (size_t)g * j->group_bytes;
    if (nr == LM_X16) { /* straight into Y: copying through a buffer was 3% of a 110M prompt */
        for (int64_t t = t0; t < t0 + n; t += 4096) {
            const int nt = t0 + n - t < 4096 ? (int)(t0 + n - t) : 4096;
            const uint8_t *act = j->act + (size_t)t * j->act_size;
            float *y = j->Ys[i] + t * rows + r0;
            if (two) j->x32(group, j->group_bytes, act, j->act_size, cols, nt, y, rows);
            else j->dot(group, act, j->act_size, cols, nt, y, rows);
        }
        return;
    }
    for (int64_t t = t0; t < t0 + n; t += 8) {
        const int nt = t0 + n - t < 8 ? (int)(t0 + n - t) : 8;
        float out[8][LM_X16];
        j->dot(group, j->act + (size_t)t * j->act_size, j->act_size, cols, nt, out[0], LM_X16);
        for (int k = 0; k < nt; k++) memcpy(j->Ys[i] + (t + k) * rows + r0, out[k], (size_t)nr * sizeof(float));
    }
}

/* The matrix group gg is in, searching from matrix i. */
static int x16_matrix_of(const x16_job *j, int64_t gg, int i) {
    while (gg >= j->first_group[i + 1]) i++;
    return i;
}

/* Whether group gg of matrix i has all 16 rows. */
static int x16_full(const x16_job *j, int64_t gg, int i) {
    return (gg - j->first_group[i] + 1) * LM_X16 <= j->ws[i]->rows;
}

static void x16_groups(void *arg, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const x16_job *j = arg;
    const int64_t end_item = end;
    begin *= j->per_item;
    end = end * j->per_item < j->first_group[MAX_SHARED] ? end * j->per_item : j->first_group[MAX_SHARED];
    if (j->pair && j->n_tok == 1 && end - begin >= 2) {
        /* One token: groups begin + k and mid + k together, two streams of
         * weights at once. */
        const int64_t mid = begin + (end - begin) / 2;
        int ia = 0, ib = 0;
        for (int64_t ga = begin; ga < mid; ga++) {
            const int64_t gb = mid + (ga - begin);
            ia = x16_matrix_of(j, ga, ia);
            ib = x16_matrix_of(j, gb, ib);
            if (x16_full(j, ga, ia) && x16_full(j, gb, ib)) {
                const int64_t a = ga - j->first_group[ia], b = gb - j->first_group[ib];
                j->pair((const uint8_t *)j->ws[ia]->data + (size_t)a * j->group_bytes,
                        (const uint8_t *)j->ws[ib]->data + (size_t)b * j->group_bytes, j->act, j->ws[0]->cols,
                        j->Ys[ia] + a * LM_X16, j->Ys[ib] + b * LM_X16);
            } else {
                x16_group(j, ga, ia, 0, 1, 0);
                x16_group(j, gb, ib, 0, 1, 0);
            }
        }
        if ((end - begin) % 2) x16_group(j, end - 1, x16_matrix_of(j, end - 1, ib), 0, 1, 0);
        return;
    }
    /* Many tokens: a chunk of them at a time through all the range's groups,
     * so that the chunk's activations stay in L2 while the groups pass
     * (all the tokens through each group in turn read a long prompt's
     * activations again for every group; 1-3% slower). */
    int64_t first[MAX_SHARED * MAX_SPREAD], last[MAX_SHARED * MAX_SPREAD]; /* the ranges of groups */
    int ranges = 0;
    if (!j->n_seg) {
        first[0] = begin, last[0] = end, ranges = 1;
    }
    for (int s = 0; s < j->n_seg; s++) {
        const int64_t lo = begin / j->per_item > j->seg_item0[s] ? begin / j->per_item : j->seg_item0[s];
        const int64_t hi = end_item < j->seg_item0[s + 1] ? end_item : j->seg_item0[s + 1];
        if (lo >= hi) continue;
        const int64_t g0 = j->seg[s].group0 + (lo - j->seg_item0[s]) * j->per_item;
        const int64_t g1 = j->seg[s].group0 + (hi - j->seg_item0[s]) * j->per_item, seg_end = j->seg[s].group0 + j->seg[s].groups;
        first[ranges] = g0;
        last[ranges++] = g1 < seg_end ? g1 : seg_end;
    }
    const int64_t chunk = j->tok_chunk;
    for (int64_t t0 = 0; t0 < j->n_tok; t0 += chunk) {
        const int64_t n = j->n_tok - t0 < chunk ? j->n_tok - t0 : chunk;
        for (int r = 0; r < ranges; r++) {
            int i = 0;
            for (int64_t gg = first[r]; gg < last[r]; gg++) {
                i = x16_matrix_of(j, gg, i);
                /* gg + 1 full: so is gg */
                const int two = j->x32 && n >= 2 && gg + 1 < last[r] && gg + 1 < j->first_group[i + 1] && x16_full(j, gg + 1, i);
                x16_group(j, gg, i, t0, n, two);
                gg += two;
            }
        }
    }
}

/* Activation rows [begin, end) quantised into their kind. */
typedef struct {
    lm_act_kind kind;
    const float *X;
    uint8_t *act;
    int64_t cols;
    size_t act_size;
} quantize_job;

static void quantize_rows(void *arg, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const quantize_job *q = arg;
    for (int64_t t = begin; t < end; t++) lm_act_quantize(q->kind, q->X + t * q->cols, q->act + (size_t)t * q->act_size, q->cols);
}

/* Quantises n_tok activation rows; a prompt's split over the threads (at 512 tokens alone on
 * one thread it was 6% of a 110M model's prefill, the other thread waiting). */
static void quantize_acts(lm_act_kind kind, const float *X, uint8_t *act, int64_t n_tok, int64_t cols, size_t act_size,
                          int n_threads) {
    quantize_job q = {kind, X, act, cols, act_size};
    lm_parallel_for(n_tok * cols >= (1 << 16) ? n_threads : 1, n_tok, quantize_rows, &q);
}

static void run_x16(x16_job *j, int n, int64_t macs, int n_threads);

/* Whether one x16 job can take ws[0 .. n - 1] (1..MAX_SHARED): x16
 * matrices of one type and column count, with kernels in k. */
static int x16_shareable(const lm_weight *const *ws, int n, const lm_kernels *k) {
    if (n < 1 || n > MAX_SHARED || !k->dot_x16[ws[0]->type]) return 0;
    for (int i = 0; i < n; i++) {
        if (ws[i]->layout != LM_LAYOUT_X16 || ws[i]->type != ws[0]->type || ws[i]->cols != ws[0]->cols) return 0;
    }
    return 1;
}

/* The job of n matrices x16_shareable in k, all but its activations;
 * *macs: its multiply-adds. */
static x16_job x16_job_for(float *const *Ys, const lm_weight *const *ws, int n, const lm_kernels *k, int64_t n_tok,
                           int64_t *macs) {
    const lm_type type = ws[0]->type;
    const int64_t cols = ws[0]->cols;
    x16_job j = {.Ys = Ys, .ws = ws, .dot = k->dot_x16[type], .pair = k->dot_x16_pair[type], .x32 = k->dot_x32[type],
                 .n_tok = n_tok, .group_bytes = lm_x16_group_bytes(type, cols)};
    *macs = 0;
    for (int i = 0; i < n; i++) {
        j.first_group[i + 1] = j.first_group[i] + (ws[i]->rows + LM_X16 - 1) / LM_X16;
        *macs += ws[i]->rows * cols * n_tok;
    }
    j.per_item = (j.x32 && n_tok >= 2) || (j.pair && n_tok == 1) ? 2 : 1;
    j.act_size = lm_act_size(lm_x16_act(type), cols);
    /* About 256 KB of activations a chunk (half an L2), a multiple of 8 tokens. */
    j.tok_chunk = (int64_t)(((size_t)256 << 10) / (j.act_size ? j.act_size : 1)) / 8 * 8;
    if (j.tok_chunk < 8) j.tok_chunk = 8;
    /* The tokens in chunks of even size: a last chunk of a few tokens went
     * through the x16 kernels, below the x32 ones' X32_BYTES_MIN_TOKENS
     * (256 tokens of a 2,048-wide product: 112, 112 and 32, now 88, 88, 80). */
    if (n_tok > j.tok_chunk) {
        const int64_t chunks = (n_tok + j.tok_chunk - 1) / j.tok_chunk;
        j.tok_chunk = ((n_tok + chunks - 1) / chunks + 7) / 8 * 8;
    }
    return j;
}

/* With table k's x16 kernels (k->dot_x16[type] set). Returns 0 if out of
 * memory for the activations (the caller then takes the reference path). */
static int matmul_x16(float *const *Ys, const lm_weight *const *ws, int n, const lm_kernels *k, const float *X,
                      int64_t n_tok, int n_threads) {
    int64_t macs;
    x16_job j = x16_job_for(Ys, ws, n, k, n_tok, &macs);
    uint8_t *act = act_buffer(j.act_size, n_tok);
    if (!act) return 0;
    quantize_acts(lm_x16_act(ws[0]->type), X, act, n_tok, ws[0]->cols, j.act_size, n_threads);
    j.act = act;
    run_x16(&j, n, macs, n_threads);
    return 1;
}

size_t lm_x16_act_bytes(const lm_weight *const *ws, int n) {
    if (!x16_shareable(ws, n, lm_kernels_best())) return 0;
    return lm_act_size(lm_x16_act(ws[0]->type), ws[0]->cols);
}

void lm_x16_quantize_into(const lm_weight *w, const float *x, void *act) {
    lm_act_quantize(lm_x16_act(w->type), x, act, w->cols);
}

int lm_matmul_shared_act(float *const *Ys, const lm_weight *const *ws, int n, const void *act, int64_t n_tok,
                         int n_threads) {
    const lm_kernels *k = lm_kernels_best();
    if (n_tok < 1 || !x16_shareable(ws, n, k)) return 0;
    int64_t macs;
    x16_job j = x16_job_for(Ys, ws, n, k, n_tok, &macs);
    j.act = act;
    run_x16(&j, n, macs, n_threads);
    return 1;
}

/* lm_matmul_swiglu_act's job: item p is group pair p of gate and of up. */
typedef struct {
    float *H, *H_up;
    const lm_weight *gate, *up;
    lm_dot_x32_fn x32;
    lm_swiglu_fn swiglu;
    const uint8_t *act;
    size_t act_size, group_bytes;
    int64_t n_tok, tok_chunk;
} swiglu_job;

static void swiglu_pairs(void *arg, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const swiglu_job *j = arg;
    const int64_t rows = j->gate->rows, cols = j->gate->cols;
    /* up's part of a chunk: (tok_chunk, 32), or (out of memory) its place in H_up */
    float *tile = lm_scratch(LM_SCRATCH_TILE, (size_t)j->tok_chunk * 32 * sizeof(float));
    for (int64_t t0 = 0; t0 < j->n_tok; t0 += j->tok_chunk) {
        const int n = (int)(j->n_tok - t0 < j->tok_chunk ? j->n_tok - t0 : j->tok_chunk);
        const uint8_t *act = j->act + (size_t)t0 * j->act_size;
        for (int64_t p = begin; p < end; p++) {
            const size_t at = (size_t)(2 * p) * j->group_bytes;
            float *h = j->H + t0 * rows + 32 * p, *u = tile ? tile : j->H_up + t0 * rows + 32 * p;
            const int64_t ldu = tile ? 32 : rows;
            j->x32((const uint8_t *)j->gate->data + at, j->group_bytes, act, j->act_size, cols, n, h, rows);
            j->x32((const uint8_t *)j->up->data + at, j->group_bytes, act, j->act_size, cols, n, u, ldu);
            for (int t = 0; t < n; t++) j->swiglu(h + t * rows, u + t * ldu, 32);
        }
    }
}

int lm_matmul_swiglu_act(float *H, float *H_up, const lm_weight *gate, const lm_weight *up, const void *act,
                         int64_t n_tok, int n_threads) {
    const lm_kernels *k = lm_kernels_best();
    const lm_weight *const ws[2] = {gate, up};
    if (n_tok < 2 || !x16_shareable(ws, 2, k) || !k->dot_x32[gate->type] || gate->rows != up->rows ||
        gate->rows % 32 != 0) {
        return 0;
    }
    int64_t macs;
    float *const Ys[2] = {H, H_up};
    const x16_job x = x16_job_for(Ys, ws, 2, k, n_tok, &macs);
    swiglu_job j = {H, H_up, gate, up, x.x32, k->swiglu, act, x.act_size, x.group_bytes, n_tok, x.tok_chunk};
    lm_parallel_for(threads_for(macs, n_threads), gate->rows / 32, swiglu_pairs, &j);
    return 1;
}

int lm_matmul_swiglu_quantize(void *act_out, const lm_weight *down, const lm_weight *gate, const lm_weight *up,
                               const void *act, int64_t n_tok) {
    const lm_kernels *k = lm_kernels_best();
    const lm_weight *const ws[2] = {gate, up};
    const int64_t rows = gate->rows, cols = gate->cols;
    if (n_tok < 2 || !x16_shareable(ws, 2, k) || !k->dot_x32[gate->type] || up->rows != rows || rows % 256 != 0 ||
        down->layout != LM_LAYOUT_X16 || !k->dot_x16[down->type] || down->cols != rows) {
        return 0;
    }
    /* down's activations must be a row of independent 256-value pieces
     * (Q8_K blocks, or q8s runs of 8 blocks sharing a scale) */
    const lm_act_kind kind = lm_x16_act(down->type);
    const size_t piece = lm_act_size(kind, 256), down_bytes = lm_act_size(kind, rows);
    if (kind == LM_ACT_F32 || piece * (size_t)(rows / 256) != down_bytes) return 0;
    int64_t macs;
    float *const Ys[2] = {NULL, NULL};
    const x16_job x = x16_job_for(Ys, ws, 2, k, n_tok, &macs);
    /* (tok_chunk, 256) gated values of one piece, then (tok_chunk, 32) of up's */
    size_t h_floats, u_floats, bytes;
    if (lm_mul_overflow_size((size_t)x.tok_chunk, 256, &h_floats) || lm_mul_overflow_size((size_t)x.tok_chunk, 32, &u_floats) ||
        lm_mul_overflow_size(h_floats + u_floats, sizeof(float), &bytes)) {
        return 0;
    }
    float *h = lm_scratch(LM_SCRATCH_TILE, bytes);
    if (!h) return 0;
    float *u = h + h_floats;
    for (int64_t t0 = 0; t0 < n_tok; t0 += x.tok_chunk) {
        const int n = (int)(n_tok - t0 < x.tok_chunk ? n_tok - t0 : x.tok_chunk);
        const uint8_t *a = (const uint8_t *)act + (size_t)t0 * x.act_size;
        for (int64_t c = 0; c < rows / 256; c++) {
            for (int64_t p = 8 * c; p < 8 * c + 8; p++) {
                const size_t at = (size_t)(2 * p) * x.group_bytes;
                float *hp = h + 32 * (p - 8 * c);
                x.x32((const uint8_t *)gate->data + at, x.group_bytes, a, x.act_size, cols, n, hp, 256);
                x.x32((const uint8_t *)up->data + at, x.group_bytes, a, x.act_size, cols, n, u, 32);
                for (int t = 0; t < n; t++) k->swiglu(hp + t * 256, u + t * 32, 32);
            }
            uint8_t *out = (uint8_t *)act_out + (size_t)t0 * down_bytes + (size_t)c * piece;
            for (int t = 0; t < n; t++) lm_act_quantize(kind, h + t * 256, out + (size_t)t * down_bytes, 256);
        }
    }
    return 1;
}

/* The items of a job of n matrices and many tokens in the order that gives
 * each of nt threads (the pool's runs: lm_parallel_for) an even share of
 * every matrix: part p of each matrix in turn, for p = 0 .. nt - 1. Then
 * Q's rows, which the attention reads by heads, come from both threads
 * (in matrix order thread 0 had all of Q: in the VM's two-CCD mode the
 * other thread's heads then read all their queries from the other core).
 * Returns the item count. */
static int64_t x16_spread(x16_job *j, int n, int nt) {
    j->n_seg = 0;
    int64_t items = 0;
    for (int p = 0; p < nt; p++) {
        for (int i = 0; i < n; i++) {
            const int64_t groups = j->first_group[i + 1] - j->first_group[i], units = (groups + j->per_item - 1) / j->per_item;
            int64_t b, e;
            lm_split(units, p, nt, &b, &e);
            if (b >= e) continue;
            const int64_t g1 = e * j->per_item < groups ? e * j->per_item : groups;
            j->seg[j->n_seg] = (x16_segment){j->first_group[i] + b * j->per_item, g1 - b * j->per_item};
            j->seg_item0[j->n_seg++] = items;
            items += e - b;
        }
    }
    j->seg_item0[j->n_seg] = items;
    return items;
}

/* The parallel loop of a job whose activations are in place. */
static void run_x16(x16_job *j, int n, int64_t macs, int n_threads) {
    for (int i = n + 1; i <= MAX_SHARED; i++) j->first_group[i] = j->first_group[n];
    const int nt = threads_for(macs, n_threads);
    int64_t items = (j->first_group[n] + j->per_item - 1) / j->per_item;
    if (n > 1 && j->n_tok > 1 && nt > 1 && nt <= MAX_SPREAD) items = x16_spread(j, n, nt);
    lm_parallel_for(nt, items, x16_groups, j);
}

int lm_matvec_act(float *y, const lm_weight *w, const void *act, int n_threads) {
    const lm_kernels *k = lm_kernels_best();
    if (w->layout != LM_LAYOUT_X16 || !k->dot_x16[w->type]) return 0;
    float *const Ys[1] = {y};
    const lm_weight *const ws[1] = {w};
    int64_t macs;
    x16_job j = x16_job_for(Ys, ws, 1, k, 1, &macs);
    j.act = act;
    run_x16(&j, 1, macs, n_threads);
    return 1;
}

const void *lm_x16_quantize(const lm_weight *w, const float *x) {
    if (w->layout != LM_LAYOUT_X16 || !lm_kernels_best()->dot_x16[w->type]) return NULL;
    const lm_act_kind kind = lm_x16_act(w->type);
    uint8_t *act = act_buffer(lm_act_size(kind, w->cols), 1);
    if (act) lm_act_quantize(kind, x, act, w->cols);
    return act;
}

int lm_matvec_rows_act(float *y, const lm_weight *w, const void *act, int64_t r0, int64_t r1) {
    const lm_kernels *k = lm_kernels_best();
    if (w->layout != LM_LAYOUT_X16 || !k->dot_x16[w->type] || r0 < 0 || r1 > w->rows || r0 % LM_X16 || r1 % LM_X16) {
        return 0;
    }
    const lm_dot_x16_fn dot = k->dot_x16[w->type];
    const lm_dot_x16_pair_fn pair = k->dot_x16_pair[w->type];
    const size_t gb = lm_x16_group_bytes(w->type, w->cols);
    const uint8_t *base = w->data;
    const int64_t g0 = r0 / LM_X16, g1 = r1 / LM_X16, mid = g0 + (g1 - g0) / 2;
    if (!pair) {
        for (int64_t g = g0; g < g1; g++) dot(base + (size_t)g * gb, act, 0, w->cols, 1, y + g * LM_X16, LM_X16);
        return 1;
    }
    /* two streams, as x16_groups reads one token's groups */
    for (int64_t g = g0; g < mid; g++) {
        const int64_t h = mid + (g - g0);
        pair(base + (size_t)g * gb, base + (size_t)h * gb, act, w->cols, y + g * LM_X16, y + h * LM_X16);
    }
    if ((g1 - g0) % 2) dot(base + (size_t)(g1 - 1) * gb, act, 0, w->cols, 1, y + (g1 - 1) * LM_X16, LM_X16);
    return 1;
}

/* lm_ffn_swiglu_act's region: thread t takes an even run of whole
 * quantisation units of the down projection's input (whole x16 groups). */
typedef struct {
    const lm_weight *gate, *up;
    const lm_kernels *k;
    const uint8_t *x_act; /* the input, quantised for gate and up */
    float *h, *h_up;      /* (ffn): silu(gate) * up; up's rows */
    uint8_t *act;         /* h quantised for down */
    lm_act_kind act_kind;
    int64_t quant;        /* values a quantiser call takes: as the whole row would be quantised (its blocks, or
                           * its runs of blocks sharing a scale; 0: any run, F32) */
    int64_t unit;         /* rows per run unit: a multiple of 16 and of quant */
} ffn_job;

static void ffn_rows(void *arg, int thread, int n_threads) {
    const ffn_job *j = arg;
    const lm_type type = j->gate->type;
    const int64_t cols = j->gate->cols;
    const size_t gb = lm_x16_group_bytes(type, cols);
    int64_t u0, u1;
    lm_split(j->gate->rows / j->unit, thread, n_threads, &u0, &u1);
    const int64_t r0 = u0 * j->unit, r1 = u1 * j->unit;
    if (r1 <= r0) return;
    const uint8_t *wg = j->gate->data, *wu = j->up->data;
    for (int64_t g = r0 / LM_X16; g < r1 / LM_X16; g++) {
        float *yg = j->h + g * LM_X16, *yu = j->h_up + g * LM_X16;
        if (j->k->dot_x16_pair[type]) {
            j->k->dot_x16_pair[type](wg + (size_t)g * gb, wu + (size_t)g * gb, j->x_act, cols, yg, yu);
        } else {
            j->k->dot_x16[type](wg + (size_t)g * gb, j->x_act, 0, cols, 1, yg, LM_X16);
            j->k->dot_x16[type](wu + (size_t)g * gb, j->x_act, 0, cols, 1, yu, LM_X16);
        }
    }
    j->k->swiglu(j->h + r0, j->h_up + r0, r1 - r0);
    const int64_t quant = j->quant ? j->quant : r1 - r0;
    for (int64_t c = r0; c < r1; c += quant) {
        lm_act_quantize(j->act_kind, j->h + c, j->act + lm_act_size(j->act_kind, c), quant);
    }
}

int lm_ffn_swiglu_act(float *h, float *h_up, void *act, const lm_weight *gate, const lm_weight *up,
                      const lm_weight *down, const float *x, int n_threads) {
    const lm_kernels *k = lm_kernels_best();
    const int64_t ffn = gate->rows, cols = gate->cols;
    if (gate->layout != LM_LAYOUT_X16 || up->layout != LM_LAYOUT_X16 || down->layout != LM_LAYOUT_X16 ||
        !k->dot_x16[gate->type] || !k->dot_x16[down->type] || up->type != gate->type || up->rows != ffn ||
        up->cols != cols || down->cols != ffn) {
        return 0;
    }
    const lm_act_kind down_kind = lm_x16_act(down->type);
    /* Q8S: blocks of 32, in runs of 8 sharing a scale where the row is whole runs (lm_quantize_q8a_ref) */
    const int64_t quant = down_kind == LM_ACT_F32 ? 0 : down_kind != LM_ACT_Q8S ? QK_K : ffn % 256 == 0 ? 256 : 32;
    const int64_t unit = quant > LM_X16 ? quant : LM_X16;
    if (ffn % unit) return 0;
    const uint8_t *x_act = lm_x16_quantize(gate, x);
    if (!x_act) return 0;
    ffn_job j = {gate, up, k, x_act, h, h_up, act, down_kind, quant, unit};
    lm_parallel(threads_for(2 * ffn * cols, n_threads), ffn_rows, &j);
    return 1;
}

/* Columns c .. c + k - 1 (k <= 256, whole x16 blocks) of row r of an x16
 * matrix as floats: the bytes back in GGUF's layout, then dequantised. */
static void x16_row_part(const lm_weight *w, int64_t r, int64_t c, int64_t k, float *out) {
    uint8_t bytes[256 * 2]; /* 256 weights: at most 2 bytes each (F16) */
    lm_x16_unpack_row(w->type, w->data, w->cols, r, c, k, bytes);
    lm_dequantize_row(w->type, bytes, out, k, NULL);
}

/* Row r of W dotted with x by dequantising (any layout): the reference path
 * for types without a kernel, and the fallback when memory runs out. */
static float ref_dot_row(const lm_weight *w, int64_t r, const float *x) {
    if (w->layout == LM_LAYOUT_ROWS) return lm_vec_dot_row(w->type, (const uint8_t *)w->data + (size_t)r * w->row_bytes, x, w->cols);
    float tmp[256], sum = 0.0f;
    for (int64_t c = 0; c < w->cols; c += 256) {
        int64_t k = w->cols - c < 256 ? w->cols - c : 256;
        x16_row_part(w, r, c, k, tmp);
        sum += lm_dot_f32(tmp, x + c, k);
    }
    return sum;
}

/* Y (n_tok, rows) = X @ W^T one row of W at a time: by the type's dot
 * kernel on activations quantised once for all rows (and its 4-token form
 * where it has one, unpacking each weight block once per 4 tokens), or with
 * dot NULL by the dequantising reference. */
typedef struct {
    float *Y;
    const lm_weight *w;
    const float *X;
    int64_t n_tok;
    lm_dot_fn dot;
    lm_dot4_fn dot4;
    const uint8_t *acts; /* token t's activations at acts + t * stride */
    size_t stride;
} rows_job;

static void rows_range(void *arg, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const rows_job *j = arg;
    const int64_t rows = j->w->rows, cols = j->w->cols, n_tok = j->n_tok;
    for (int64_t r = begin; r < end; r++) {
        if (!j->dot) {
            for (int64_t t = 0; t < n_tok; t++) j->Y[t * rows + r] = ref_dot_row(j->w, r, j->X + t * cols);
            continue;
        }
        const uint8_t *row = (const uint8_t *)j->w->data + (size_t)r * j->w->row_bytes;
        int64_t t = 0;
        if (j->dot4) {
            for (; t + 4 <= n_tok; t += 4) {
                float out[4];
                j->dot4(row, j->acts + (size_t)t * j->stride, j->stride, cols, out);
                for (int k = 0; k < 4; k++) j->Y[(t + k) * rows + r] = out[k];
            }
        }
        for (; t < n_tok; t++) j->Y[t * rows + r] = j->dot(row, j->acts + (size_t)t * j->stride, cols);
    }
}

/* Y = X @ W^T by the fastest kernel short of the GEMM. */
static void matmul_kernels(float *Y, const lm_weight *w, const float *X, int64_t n_tok, int n_threads) {
    const lm_kernels *k = lm_kernels_best();
    const int nt = threads_for(w->rows * w->cols * n_tok, n_threads);
    rows_job j = {.Y = Y, .w = w, .X = X, .n_tok = n_tok};
    if (w->layout == LM_LAYOUT_X16) {
        if (k->dot_x16[w->type] && matmul_x16(&Y, &w, 1, k, X, n_tok, n_threads)) return;
        lm_parallel_for(nt, w->rows, rows_range, &j); /* no kernel, or no memory: the reference */
        return;
    }
    const int64_t cols = w->cols;
    const lm_act_kind kind = lm_kernels_act(k, w->type);
    const size_t act_size = lm_act_size(kind, cols);
    uint8_t *act = k->dot[w->type] && kind != LM_ACT_F32 ? act_buffer(act_size, n_tok) : NULL;
    /* Without a kernel for this type (or memory for the activations), the
     * reference, which needs no allocation: still correct, just slower. */
    if (k->dot[w->type] && (kind == LM_ACT_F32 || act)) {
        j.dot = k->dot[w->type];
        j.dot4 = k->dot4[w->type];
        if (act) quantize_acts(kind, X, act, n_tok, cols, act_size, n_threads);
        j.acts = act ? act : (const uint8_t *)X;
        j.stride = act ? act_size : (size_t)cols * sizeof(float);
    }
    /* An even static split: handing out chunks dynamically was measured
     * slower (110M Q4_0 decode 164 vs 230 tok/s, 1.1B Q4_K_M 31 vs 36). */
    lm_parallel_for(nt, w->rows, rows_range, &j);
}

void lm_matvec(float *y, const lm_weight *w, const float *x, int n_threads) { matmul_kernels(y, w, x, 1, n_threads); }

/* Whether w goes through an x16 kernel at any token count. They beat the
 * GEMM over dequantised weights at every batch size measured (8192 x 2048,
 * 2 threads, ms per token at 16 / 64 / 512 tokens, GEMM -> x16): Q8_0
 * 0.41 / 0.16 / 0.095 -> 0.052 / 0.042 / 0.040; Q4_0 0.32 / 0.16 / 0.11 ->
 * 0.037; Q4_K 0.42 / 0.17 / 0.11 -> 0.052 / 0.056 / 0.060; Q6_K 0.96 / 0.31
 * / 0.13 -> 0.090 / 0.077 / 0.087; F16 0.54 / 0.21 / 0.115 -> 0.14 / 0.12 /
 * 0.11. The integer kernels do 4 times the multiply-adds per instruction of
 * f32 FMA, and there is no whole matrix to dequantise per product. */
static int has_x16_kernel(const lm_weight *w) {
    return w->layout == LM_LAYOUT_X16 && lm_kernels_best()->dot_x16[w->type] != NULL;
}

void lm_matmul(float *Y, const lm_weight *w, const float *X, int64_t n_tok, int n_threads) {
    const lm_gemm_kernel *g = lm_gemm_kernel_best();
    if (g && n_tok >= LM_GEMM_MIN_TOKENS && !has_x16_kernel(w) && lm_type_can_dequantize(w->type) &&
        lm_gemm(g, Y, w, X, n_tok, n_threads)) {
        return;
    }
    matmul_kernels(Y, w, X, n_tok, n_threads);
}

void lm_matmul_shared(float *const *Ys, const lm_weight *const *ws, int n, const float *X, int64_t n_tok, int n_threads) {
    const lm_kernels *k = lm_kernels_best();
    if (x16_shareable(ws, n, k) && matmul_x16(Ys, ws, n, k, X, n_tok, n_threads)) return;
    const lm_gemm_kernel *g = lm_gemm_kernel_best();
    int gemm = g && n_tok >= LM_GEMM_MIN_TOKENS && n <= 4;
    for (int i = 0; gemm && i < n; i++) {
        gemm = lm_type_can_dequantize(ws[i]->type) && ws[i]->cols == ws[0]->cols && !has_x16_kernel(ws[i]);
    }
    if (gemm && lm_gemm_shared(g, Ys, ws, n, X, n_tok, n_threads)) return;
    for (int i = 0; i < n; i++) {
        if (n_tok == 1) lm_matvec(Ys[i], ws[i], X, n_threads);
        else lm_matmul(Ys[i], ws[i], X, n_tok, n_threads);
    }
}

void lm_weight_row(const lm_weight *w, int64_t r, float *out) {
    if (w->layout == LM_LAYOUT_X16) {
        for (int64_t c = 0; c < w->cols; c += 256) x16_row_part(w, r, c, w->cols - c < 256 ? w->cols - c : 256, out + c);
        return;
    }
    const uint8_t *row = (const uint8_t *)w->data + (size_t)r * w->row_bytes;
    /* the GEMM's vectorised dequantiser where there is one (the same bits:
     * a prompt's embedding rows through the scalar one were 0.2% of a 110M
     * Q4_K_M prefill) */
    const lm_gemm_kernel *g = lm_gemm_kernel_best();
    const lm_type_info *info = lm_type_get_info((uint32_t)w->type);
    if (g && g->dequant && g->dequant[w->type] && info && info->block_size > 0 && w->cols % info->block_size == 0) {
        g->dequant[w->type](row, out, w->cols);
        return;
    }
    lm_dequantize_row(w->type, row, out, w->cols, NULL);
}

void lm_scale_f32(float *x, float s, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) { /* 8 at a time: the plain loop stayed scalar (as lm_add_f32's) */
        for (int j = 0; j < 8; j++) x[i + j] *= s;
    }
    for (; i < n; i++) x[i] *= s;
}

void lm_add_f32(float *x, const float *a, int64_t n) { lm_kernels_best()->add(x, a, n); }

void lm_rmsnorm_f32(float *out, const float *x, const float *weight, int64_t n, float eps) {
    lm_kernels_best()->rmsnorm(out, x, weight, n, eps);
}

void lm_softmax_f32(float *x, int64_t n) {
    /* the scalar table's exponentials (times 1: e^(x - max) exactly as before) */
    const double sum = lm_kernels_scalar.softmax_exp(x, n, 1.0f);
    float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++) x[i] *= inv;
}

void lm_rope_f32(float *x, int64_t n_heads, int64_t head_dim, int64_t rope_dim, const float *cos_sin) {
    lm_kernels_best()->rope(x, n_heads, head_dim, rope_dim, cos_sin);
}

void lm_swiglu_f32(float *gate, const float *up, int64_t n) { lm_kernels_best()->swiglu(gate, up, n); }
