/* LoRA factors trained through the full-parameter gradient (lora_train.h). */
#include "lora_train.h"

#include "../base/checked.h"
#include "../base/rng.h"
#include "llmos/lora.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { KINDS = 7 };
static const char *const kind_names[KINDS] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};

typedef struct adapted {
    int64_t offset, rows, cols; /* the matrix in the parameter array, (rows, cols) */
    int64_t a, b;               /* A (rank, cols) and B (rows, rank) in the flat trainable array */
    float *w0;                  /* (rows, cols) the frozen weights */
    int layer, kind;
} adapted;

struct lm_lora_state {
    int64_t rank, n, count;
    float alpha, scale;
    adapted *mats;
    float *values, *grads; /* count each */
};

static int64_t layer_offset(const lm_train_layer_offsets *o, int kind) {
    const int64_t offs[KINDS] = {o->wq, o->wk, o->wv, o->wo, o->w_gate, o->w_up, o->w_down};
    return offs[kind];
}

void lm_lora_state_free(lm_lora_state *st) {
    if (!st) return;
    for (int64_t i = 0; st->mats && i < st->n; i++) free(st->mats[i].w0);
    free(st->mats);
    free(st->values);
    free(st->grads);
    free(st);
}

lm_status lm_lora_state_create(const lm_train_shape *s, const lm_train_layout *l, const float *params, int64_t rank,
                               float alpha, uint64_t seed, lm_lora_state **out, lm_error *err) {
    *out = NULL;
    const int64_t D = s->dim, qd = s->n_heads * s->head_dim, kvd = s->n_kv_heads * s->head_dim, F = s->ffn_dim;
    const int64_t shapes[KINDS][2] = {{qd, D}, {kvd, D}, {kvd, D}, {D, qd}, {F, D}, {F, D}, {D, F}};
    int64_t min_side = D;
    for (int k = 0; k < KINDS; k++) {
        if (shapes[k][0] < min_side) min_side = shapes[k][0];
        if (shapes[k][1] < min_side) min_side = shapes[k][1];
    }
    if (rank < 1 || rank > min_side) {
        return lm_error_set(err, LM_ERR_ARG, "LoRA rank %lld out of range (1 .. %lld for this model)", (long long)rank,
                            (long long)min_side);
    }
    if (!(alpha > 0) || !isfinite(alpha)) return lm_error_set(err, LM_ERR_ARG, "LoRA alpha must be positive");
    lm_lora_state *st = calloc(1, sizeof *st);
    if (!st) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    st->rank = rank, st->alpha = alpha, st->scale = alpha / (float)rank;
    st->n = s->n_layers * KINDS;
    st->mats = calloc((size_t)st->n, sizeof *st->mats);
    if (!st->mats) goto nomem;
    int64_t at = 0;
    for (int64_t i = 0; i < st->n; i++) {
        adapted *a = &st->mats[i];
        a->layer = (int)(i / KINDS), a->kind = (int)(i % KINDS);
        a->rows = shapes[a->kind][0], a->cols = shapes[a->kind][1];
        a->offset = layer_offset(&l->layers[a->layer], a->kind);
        a->a = at, at += rank * a->cols;
        a->b = at, at += a->rows * rank;
        if (!(a->w0 = malloc((size_t)(a->rows * a->cols) * sizeof(float)))) goto nomem;
        memcpy(a->w0, params + a->offset, (size_t)(a->rows * a->cols) * sizeof(float));
    }
    st->count = at;
    st->values = calloc((size_t)at, sizeof(float));
    st->grads = calloc((size_t)at, sizeof(float));
    if (!st->values || !st->grads) goto nomem;
    lm_rng rng;
    lm_rng_seed(&rng, seed ^ 0x10ba10baull);
    for (int64_t i = 0; i < st->n; i++) {
        const adapted *a = &st->mats[i];
        const double bound = 1.0 / sqrt((double)a->cols);
        for (int64_t j = 0; j < rank * a->cols; j++) st->values[a->a + j] = (float)((2 * lm_rng_uniform(&rng) - 1) * bound);
    }
    *out = st;
    return LM_OK;
nomem:
    lm_lora_state_free(st);
    return lm_error_set(err, LM_ERR_NOMEM, "out of memory for the LoRA factors");
}

int64_t lm_lora_state_count(const lm_lora_state *st) { return st->count; }
float *lm_lora_state_params(lm_lora_state *st) { return st->values; }
float *lm_lora_state_grads(lm_lora_state *st) { return st->grads; }

void lm_lora_state_backward(lm_lora_state *st, const float *full_grads, int nt) {
    const int64_t r = st->rank;
    const float s = st->scale;
    for (int64_t i = 0; i < st->n; i++) {
        const adapted *a = &st->mats[i];
        const float *dW = full_grads + a->offset, *A = st->values + a->a, *B = st->values + a->b;
        float *dA = st->grads + a->a, *dB = st->grads + a->b;
        const int64_t rows = a->rows, cols = a->cols;
        /* dB (rows, r) = s dW (rows, cols) A^T (cols, r) */
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int64_t o = 0; o < rows; o++) {
            for (int64_t k = 0; k < r; k++) {
                double acc = 0;
                for (int64_t c = 0; c < cols; c++) acc += (double)dW[o * cols + c] * A[k * cols + c];
                dB[o * r + k] = (float)(s * acc);
            }
        }
        /* dA (r, cols) = s B^T (r, rows) dW (rows, cols) */
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int64_t k = 0; k < r; k++) {
            float *row = dA + k * cols;
            for (int64_t c = 0; c < cols; c++) row[c] = 0;
            for (int64_t o = 0; o < rows; o++) {
                const float bo = s * B[o * r + k];
                const float *g = dW + o * cols;
                for (int64_t c = 0; c < cols; c++) row[c] += bo * g[c];
            }
        }
    }
}

void lm_lora_state_apply(const lm_lora_state *st, float *params, int nt) {
    const int64_t r = st->rank;
    const float s = st->scale;
    for (int64_t i = 0; i < st->n; i++) {
        const adapted *a = &st->mats[i];
        const float *A = st->values + a->a, *B = st->values + a->b;
        float *W = params + a->offset;
        const int64_t cols = a->cols;
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int64_t o = 0; o < a->rows; o++) {
            float *w = W + o * cols;
            memcpy(w, a->w0 + o * cols, (size_t)cols * sizeof(float));
            for (int64_t k = 0; k < r; k++) {
                const float bk = s * B[o * r + k];
                const float *ak = A + k * cols;
                for (int64_t c = 0; c < cols; c++) w[c] += bk * ak[c];
            }
        }
    }
}

lm_status lm_lora_state_export(const lm_lora_state *st, const char *arch, const char *path, lm_error *err) {
    lm_lora lora;
    memset(&lora, 0, sizeof lora);
    snprintf(lora.arch, sizeof lora.arch, "%s", arch);
    lora.alpha = st->alpha;
    lora.n_tensors = st->n;
    lora.tensors = calloc((size_t)st->n, sizeof *lora.tensors);
    if (!lora.tensors) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < st->n; i++) {
        const adapted *a = &st->mats[i];
        lm_lora_tensor *t = &lora.tensors[i];
        snprintf(t->name, sizeof t->name, "blk.%d.%s.weight", a->layer, kind_names[a->kind]);
        t->rows = a->rows, t->cols = a->cols, t->rank = st->rank;
        t->a = st->values + a->a;
        t->b = st->values + a->b;
    }
    lm_status s = lm_lora_write(path, &lora, err);
    free(lora.tensors);
    return s;
}
