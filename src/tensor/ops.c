#include "ops.h"

#include "gemm.h"
#include "kernels.h"

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

/* Activation buffers start on a cache line: the 512-bit kernels read them
 * 64 bytes at a time, and a load split across two lines costs two. */
static void *alloc_act(size_t bytes) { return aligned_alloc(64, (bytes + 63) & ~(size_t)63); }

/* Ys[i] (n_tok, rows_i) = X @ W_i^T for n x16 matrices of one type and
 * column count: the activations are quantised once, and one static split
 * over all the matrices' groups of 16 rows (each thread writes whole 64-byte
 * runs of Y) unpacks each group once per 4 tokens. Returns 0 if out of
 * memory for the activations (the caller then takes the reference path). */
static int matmul_x16(float *const *Ys, const lm_weight *const *ws, int n, lm_dot_x16_fn dot, const float *X,
                      int64_t n_tok, int n_threads) {
    enum { MAX_SHARED = 4 };
    const lm_type type = ws[0]->type;
    const int64_t cols = ws[0]->cols;
    int64_t first_group[MAX_SHARED + 1] = {0}; /* matrix i's groups are first_group[i] .. first_group[i + 1] - 1 */
    int64_t macs = 0;
    for (int i = 0; i < n; i++) {
        first_group[i + 1] = first_group[i] + (ws[i]->rows + LM_X16 - 1) / LM_X16;
        macs += ws[i]->rows * cols * n_tok;
    }
    const lm_act_kind kind = lm_x16_act(type);
    const size_t act_size = lm_act_size(kind, cols), group_bytes = lm_x16_group_bytes(type, cols);
    uint8_t *act = alloc_act(act_size * (size_t)n_tok);
    if (!act) return 0;
    for (int64_t t = 0; t < n_tok; t++) lm_act_quantize(kind, X + t * cols, act + (size_t)t * act_size, cols);
    int parallel = n_threads > 1 && macs >= (1 << 16);
    (void)parallel;
#pragma omp parallel for num_threads(n_threads) if (parallel) schedule(static)
    for (int64_t gg = 0; gg < first_group[n]; gg++) {
        int i = 0;
        while (gg >= first_group[i + 1]) i++;
        const int64_t g = gg - first_group[i], rows = ws[i]->rows, r0 = g * LM_X16;
        const int64_t nr = rows - r0 < LM_X16 ? rows - r0 : LM_X16;
        const uint8_t *group = (const uint8_t *)ws[i]->data + (size_t)g * group_bytes;
        for (int64_t t = 0; t < n_tok; t += 4) {
            const int nt = n_tok - t < 4 ? (int)(n_tok - t) : 4;
            float out[4][LM_X16];
            dot(group, act + (size_t)t * act_size, act_size, cols, nt, out[0], LM_X16);
            for (int j = 0; j < nt; j++) memcpy(Ys[i] + (t + j) * rows + r0, out[j], (size_t)nr * sizeof(float));
        }
    }
    free(act);
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

void lm_matvec(float *y, const lm_weight *w, const float *x, int n_threads) {
    const lm_kernels *k = lm_kernels_best();
    if (w->layout == LM_LAYOUT_X16) {
        lm_dot_x16_fn dot = k->dot_x16[w->type];
        if (dot && matmul_x16(&y, &w, 1, dot, x, 1, n_threads)) return;
#pragma omp parallel for num_threads(n_threads) schedule(static)
        for (int64_t r = 0; r < w->rows; r++) y[r] = ref_dot_row(w, r, x);
        return;
    }
    lm_dot_fn dot = k->dot[w->type];
    /* Below ~64k multiply-adds a thread team costs more than it saves. */
    int parallel = n_threads > 1 && w->rows * w->cols >= (1 << 16);
    (void)parallel;
    const uint8_t *base = w->data;
    if (!dot) { /* no kernel for this type: the dequantising reference */
#pragma omp parallel for num_threads(n_threads) if (parallel) schedule(static)
        for (int64_t r = 0; r < w->rows; r++) y[r] = lm_vec_dot_row(w->type, base + (size_t)r * w->row_bytes, x, w->cols);
        return;
    }
    /* Integer kernels take the activations quantised once for all rows. */
    lm_act_kind kind = lm_kernels_act(k, w->type);
    void *act = kind == LM_ACT_F32 ? NULL : alloc_act(lm_act_size(kind, w->cols));
    if (kind != LM_ACT_F32 && !act) { /* out of memory: still correct, just slower */
#pragma omp parallel for num_threads(n_threads) if (parallel) schedule(static)
        for (int64_t r = 0; r < w->rows; r++) y[r] = lm_vec_dot_row(w->type, base + (size_t)r * w->row_bytes, x, w->cols);
        return;
    }
    if (act) lm_act_quantize(kind, x, act, w->cols);
    const void *a = act ? act : (const void *)x;
    /* An even static split: handing out chunks dynamically was measured
     * slower (110M Q4_0 decode 164 vs 230 tok/s, 1.1B Q4_K_M 31 vs 36). */
#pragma omp parallel for num_threads(n_threads) if (parallel) schedule(static)
    for (int64_t r = 0; r < w->rows; r++) y[r] = dot(base + (size_t)r * w->row_bytes, a, w->cols);
    free(act);
}

void lm_matmul(float *Y, const lm_weight *w, const float *X, int64_t n_tok, int n_threads) {
    const lm_gemm_kernel *g = lm_gemm_kernel_best();
    if (g && n_tok >= LM_GEMM_MIN_TOKENS && lm_type_can_dequantize(w->type) && lm_gemm(g, Y, w, X, n_tok, n_threads)) {
        return;
    }
    const lm_kernels *k = lm_kernels_best();
    if (w->layout == LM_LAYOUT_X16) {
        lm_dot_x16_fn dot = k->dot_x16[w->type];
        if (dot && matmul_x16(&Y, &w, 1, dot, X, n_tok, n_threads)) return;
#pragma omp parallel for num_threads(n_threads) schedule(static)
        for (int64_t r = 0; r < w->rows; r++) {
            for (int64_t t = 0; t < n_tok; t++) Y[t * w->rows + r] = ref_dot_row(w, r, X + t * w->cols);
        }
        return;
    }
    lm_dot_fn dot = k->dot[w->type];
    const uint8_t *base = w->data;
    int64_t rows = w->rows, cols = w->cols;
    lm_act_kind kind = lm_kernels_act(k, w->type);
    size_t act_size = lm_act_size(kind, cols);
    uint8_t *act = dot && kind != LM_ACT_F32 ? alloc_act(act_size * (size_t)n_tok) : NULL;
    if (!dot || (kind != LM_ACT_F32 && !act)) {
        /* No kernel for this type (or no memory for the activations): the
         * dequantising reference, which needs no allocation. */
        free(act);
#pragma omp parallel for num_threads(n_threads) schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            for (int64_t t = 0; t < n_tok; t++) Y[t * rows + r] = lm_vec_dot_row(w->type, base + (size_t)r * w->row_bytes, X + t * cols, cols);
        }
        return;
    }
    if (act) {
        for (int64_t t = 0; t < n_tok; t++) lm_act_quantize(kind, X + t * cols, act + (size_t)t * act_size, cols);
    }
    int parallel = n_threads > 1 && rows * cols * n_tok >= (1 << 16);
    (void)parallel;
    lm_dot4_fn dot4 = k->dot4[w->type];
    const uint8_t *acts = act ? act : (const uint8_t *)X; /* token t's activations at acts + t * stride */
    size_t stride = act ? act_size : (size_t)cols * sizeof(float);
#pragma omp parallel for num_threads(n_threads) if (parallel) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t *row = base + (size_t)r * w->row_bytes;
        int64_t t = 0;
        if (dot4) { /* each weight block unpacked once for four tokens */
            for (; t + 4 <= n_tok; t += 4) {
                float out[4];
                dot4(row, acts + (size_t)t * stride, stride, cols, out);
                for (int j = 0; j < 4; j++) Y[(t + j) * rows + r] = out[j];
            }
        }
        for (; t < n_tok; t++) Y[t * rows + r] = dot(row, acts + (size_t)t * stride, cols);
    }
    free(act);
}

void lm_matmul_shared(float *const *Ys, const lm_weight *const *ws, int n, const float *X, int64_t n_tok, int n_threads) {
    const lm_kernels *k = lm_kernels_best();
    lm_dot_x16_fn dot = n > 0 ? k->dot_x16[ws[0]->type] : NULL;
    int shared = dot && n <= 4 && n_tok < LM_GEMM_MIN_TOKENS;
    for (int i = 0; shared && i < n; i++) {
        shared = ws[i]->layout == LM_LAYOUT_X16 && ws[i]->type == ws[0]->type && ws[i]->cols == ws[0]->cols;
    }
    if (shared && matmul_x16(Ys, ws, n, dot, X, n_tok, n_threads)) return;
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
    lm_dequantize_row(w->type, (const uint8_t *)w->data + (size_t)r * w->row_bytes, out, w->cols, NULL);
}

void lm_rmsnorm_f32(float *out, const float *x, const float *weight, int64_t n, float eps) {
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float scale = (float)(1.0 / sqrt(ss / (double)n + eps));
    for (int64_t i = 0; i < n; i++) out[i] = x[i] * scale * weight[i];
}

void lm_softmax_f32(float *x, int64_t n) {
    float max = x[0];
    for (int64_t i = 1; i < n; i++) max = x[i] > max ? x[i] : max;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++) x[i] *= inv;
}

void lm_rope_f32(float *x, int64_t n_heads, int64_t head_dim, int64_t rope_dim, const float *cos_sin) {
    for (int64_t h = 0; h < n_heads; h++) {
        float *v = x + h * head_dim;
        for (int64_t i = 0; i < rope_dim / 2; i++) {
            float c = cos_sin[2 * i], s = cos_sin[2 * i + 1];
            float a = v[2 * i], b = v[2 * i + 1];
            v[2 * i] = a * c - b * s;
            v[2 * i + 1] = a * s + b * c;
        }
    }
}

void lm_swiglu_f32(float *gate, const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i];
        gate[i] = g / (1.0f + expf(-g)) * up[i];
    }
}
