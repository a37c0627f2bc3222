/* Gradient checks for training: every backward operation, and the whole
 * model on tiny shapes, against float64 central finite differences of the
 * same forward pass (relative error < 1e-4); the f32 model's gradients
 * against the f64 model's (stated tolerance); and the f32 GEMM against a
 * float64 product for every transposition and awkward sizes. */
#include "base/rng.h"
#include "tensor/gemm.h"
#include "test.h"
#include "train/dpo.h"
#include "train/lora_train.h"
#include "train/model.h"
#include "train/ops.h"

#include <math.h>

static lm_rng rng;
static double uni(void) { return 2 * lm_rng_uniform(&rng) - 1; }
static void fill(double *x, int64_t n, double scale) {
    for (int64_t i = 0; i < n; i++) x[i] = scale * uni();
}

/* |a - f| relative to the larger of |a| and |f|; below 1e-4 (gradients
 * here are 0.01 to 1) the difference counts absolutely over 1e-4, since a
 * finite difference of a loss of ~20 carries ~1e-9 of rounding. */
static double rel_err(double a, double f) {
    double m = fmax(fmax(fabs(a), fabs(f)), 1e-4);
    return fabs(a - f) / m;
}

/* A scalar loss of an output: sum(out * R). */
static double dotr(const double *out, const double *r, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += out[i] * r[i];
    return s;
}

#define H_STEP 1e-6

/* Checks d(loss)/d(x[i]) = analytic[i] for all i, where loss() recomputes
 * the loss from x. */
#define FD_CHECK(name, x, n, analytic, loss_expr)                                                                      \
    do {                                                                                                               \
        double worst_ = 0, worst_a_ = 0, worst_f_ = 0;                                                                 \
        for (int64_t i_ = 0; i_ < (n); i_++) {                                                                         \
            double keep_ = (x)[i_];                                                                                    \
            (x)[i_] = keep_ + H_STEP;                                                                                  \
            double lp_ = (loss_expr);                                                                                  \
            (x)[i_] = keep_ - H_STEP;                                                                                  \
            double lm_ = (loss_expr);                                                                                  \
            (x)[i_] = keep_;                                                                                           \
            double e_ = rel_err((analytic)[i_], (lp_ - lm_) / (2 * H_STEP));                                           \
            if (e_ > worst_) worst_a_ = (analytic)[i_], worst_f_ = (lp_ - lm_) / (2 * H_STEP);                         \
            worst_ = e_ > worst_ ? e_ : worst_;                                                                        \
        }                                                                                                              \
        printf("%-28s worst relative error %.2e over %lld values (%.3e vs %.3e)\n", name, worst_, (long long)(n),    \
               worst_a_, worst_f_);                                                                                    \
        CHECKF(worst_ < 1e-4, "%s: gradient off by %.3e", name, worst_);                                             \
    } while (0)

static double *alloc(int64_t n) { return calloc((size_t)n, sizeof(double)); }

static void check_ops(void) {
    const int nt = 2;
    /* embedding */
    {
        int64_t V = 7, D = 5, N = 9;
        int32_t tok[9] = {0, 3, 3, 6, 1, 0, 2, 3, 5};
        double *table = alloc(V * D), *out = alloc(N * D), *r = alloc(N * D), *g = alloc(V * D);
        fill(table, V * D, 1), fill(r, N * D, 1);
        lm_tr_embedding_bwd_f64(g, r, tok, N, D, nt);
        FD_CHECK("embedding", table, V * D, g, (lm_tr_embedding_fwd_f64(out, table, tok, N, D), dotr(out, r, N * D)));
        free(table), free(out), free(r), free(g);
    }
    /* rmsnorm: input and weight */
    {
        int64_t N = 4, D = 6;
        double *x = alloc(N * D), *w = alloc(D), *out = alloc(N * D), *rs = alloc(N), *r = alloc(N * D), *dx = alloc(N * D),
               *dw = alloc(D);
        fill(x, N * D, 1.5), fill(w, D, 1), fill(r, N * D, 1);
        lm_tr_rmsnorm_fwd_f64(out, rs, x, w, N, D, 1e-5, nt);
        lm_tr_rmsnorm_bwd_f64(dx, dw, r, x, w, rs, N, D, nt);
#define RMS_LOSS (lm_tr_rmsnorm_fwd_f64(out, rs, x, w, N, D, 1e-5, nt), dotr(out, r, N * D))
        FD_CHECK("rmsnorm dx", x, N * D, dx, RMS_LOSS);
        FD_CHECK("rmsnorm dw", w, D, dw, RMS_LOSS);
#undef RMS_LOSS
        free(x), free(w), free(out), free(rs), free(r), free(dx), free(dw);
    }
    /* matmul: input and weight */
    {
        int64_t N = 5, I = 7, O = 3;
        double *x = alloc(N * I), *w = alloc(O * I), *y = alloc(N * O), *r = alloc(N * O), *dx = alloc(N * I), *dw = alloc(O * I);
        fill(x, N * I, 1), fill(w, O * I, 1), fill(r, N * O, 1);
        lm_tr_matmul_bwd_f64(dx, dw, r, x, w, N, I, O, 0, nt);
#define MM_LOSS (lm_tr_matmul_fwd_f64(y, x, w, N, I, O, nt), dotr(y, r, N * O))
        FD_CHECK("matmul dx", x, N * I, dx, MM_LOSS);
        FD_CHECK("matmul dw", w, O * I, dw, MM_LOSS);
#undef MM_LOSS
        free(x), free(w), free(y), free(r), free(dx), free(dw);
    }
    /* rope: the backward is the inverse rotation */
    {
        int64_t B = 2, T = 3, Hh = 2, hd = 4, n = B * T * Hh * hd;
        double *tab = alloc(T * hd), *x = alloc(n), *y = alloc(n), *r = alloc(n), *g = alloc(n);
        lm_tr_rope_table(tab, T, hd, 10000.0);
        fill(x, n, 1), fill(r, n, 1);
        memcpy(g, r, (size_t)n * sizeof *g);
        lm_tr_rope_f64(g, tab, B * T, T, Hh, hd, -1, nt);
        FD_CHECK("rope", x, n, g, (memcpy(y, x, (size_t)n * sizeof *y), lm_tr_rope_f64(y, tab, B * T, T, Hh, hd, 1, nt), dotr(y, r, n)));
        free(tab), free(x), free(y), free(r), free(g);
    }
    /* attention with grouped kv heads: q, k, v */
    {
        int64_t B = 2, T = 4, Hh = 4, KVH = 2, hd = 3;
        int64_t nq = B * T * Hh * hd, nkv = B * T * KVH * hd;
        double *q = alloc(nq), *k = alloc(nkv), *v = alloc(nkv), *out = alloc(nq), *att = alloc(B * Hh * T * T),
               *r = alloc(nq), *dq = alloc(nq), *dk = alloc(nkv), *dv = alloc(nkv), *scratch = alloc(B * KVH * T);
        fill(q, nq, 1), fill(k, nkv, 1), fill(v, nkv, 1), fill(r, nq, 1);
        lm_tr_attention_fwd_f64(out, att, q, k, v, B, T, Hh, KVH, hd, nt);
        lm_tr_attention_bwd_f64(dq, dk, dv, r, att, q, k, v, B, T, Hh, KVH, hd, scratch, nt);
#define ATT_LOSS (lm_tr_attention_fwd_f64(out, att, q, k, v, B, T, Hh, KVH, hd, nt), dotr(out, r, nq))
        FD_CHECK("attention dq", q, nq, dq, ATT_LOSS);
        FD_CHECK("attention dk", k, nkv, dk, ATT_LOSS);
        FD_CHECK("attention dv", v, nkv, dv, ATT_LOSS);
#undef ATT_LOSS
        free(q), free(k), free(v), free(out), free(att), free(r), free(dq), free(dk), free(dv), free(scratch);
    }
    /* swiglu */
    {
        int64_t n = 17;
        double *g = alloc(n), *u = alloc(n), *h = alloc(n), *r = alloc(n), *dg = alloc(n), *du = alloc(n);
        fill(g, n, 3), fill(u, n, 2), fill(r, n, 1);
        lm_tr_swiglu_bwd_f64(dg, du, r, g, u, n, nt);
#define SW_LOSS (lm_tr_swiglu_fwd_f64(h, g, u, n, nt), dotr(h, r, n))
        FD_CHECK("swiglu dgate", g, n, dg, SW_LOSS);
        FD_CHECK("swiglu dup", u, n, du, SW_LOSS);
#undef SW_LOSS
        free(g), free(u), free(h), free(r), free(dg), free(du);
    }
    /* cross-entropy, with a masked target */
    {
        int64_t N = 4, V = 6;
        int32_t tg[4] = {2, -1, 5, 0};
        double *l = alloc(N * V), *work = alloc(N * V), *losses = alloc(N), *g = alloc(N * V);
        fill(l, N * V, 3);
        memcpy(g, l, (size_t)(N * V) * sizeof *g);
        lm_tr_crossentropy_fwd_f64(g, losses, tg, N, V, nt);
        lm_tr_crossentropy_bwd_f64(g, tg, N, V, 0.5, nt);
        FD_CHECK("cross-entropy", l, N * V, g,
                 (memcpy(work, l, (size_t)(N * V) * sizeof *work), 0.5 * lm_tr_crossentropy_fwd_f64(work, losses, tg, N, V, nt)));
        CHECK(losses[1] == 0);
        free(l), free(work), free(losses), free(g);
    }
}

/* The whole model in f64: every parameter's gradient against finite
 * differences of the summed loss. */
static void check_model(int tied) {
    lm_train_shape s = {8, 2, 4, 2, 2, 12, 11, tied, 1e-5, 10000.0};
    const int64_t B = 2, T = 5;
    lm_error err = {0};
    lm_trm_f64 *m;
    REQUIRE(lm_trm_create_f64(&s, B, T, 2, &m, &err) == LM_OK);
    double *p = lm_trm_params_f64(m), *g = lm_trm_grads_f64(m);
    const lm_train_layout *lay = lm_trm_layout_f64(m);
    int64_t n = lay->n_params;
    for (int64_t i = 0; i < n; i++) p[i] = 0.3 * uni();
    /* norms near 1, as after initialisation */
    for (int64_t l = 0; l < s.n_layers; l++) {
        for (int64_t j = 0; j < s.dim; j++) {
            p[lay->layers[l].attn_norm + j] = 1 + 0.1 * uni();
            p[lay->layers[l].ffn_norm + j] = 1 + 0.1 * uni();
        }
    }
    int32_t in[10], tg[10];
    for (int i = 0; i < 10; i++) in[i] = (int32_t)(lm_rng_next(&rng) % 11), tg[i] = (int32_t)(lm_rng_next(&rng) % 11);
    tg[3] = -1; /* a masked position */
    int64_t scored;
    lm_trm_forward_f64(m, in, tg, &scored);
    CHECK(scored == 9);
    lm_trm_backward_f64(m, 1.0);
    double *an = malloc((size_t)n * sizeof *an);
    memcpy(an, g, (size_t)n * sizeof *an);
    char name[64];
    snprintf(name, sizeof name, "whole model (%s output)", tied ? "tied" : "own");
    FD_CHECK(name, p, n, an, lm_trm_forward_f64(m, in, tg, NULL));

    /* f32 gradients of the same model, against these (stated tolerance:
     * 1e-3 of the largest gradient). */
    lm_trm_f32 *m32;
    REQUIRE(lm_trm_create_f32(&s, B, T, 2, &m32, &err) == LM_OK);
    float *p32 = lm_trm_params_f32(m32), *g32 = lm_trm_grads_f32(m32);
    for (int64_t i = 0; i < n; i++) p32[i] = (float)p[i];
    double l32 = lm_trm_forward_f32(m32, in, tg, NULL), l64 = lm_trm_forward_f64(m, in, tg, NULL);
    lm_trm_backward_f32(m32, 1.0);
    double gmax = 0, diff = 0;
    for (int64_t i = 0; i < n; i++) {
        gmax = fmax(gmax, fabs(an[i]));
        diff = fmax(diff, fabs(an[i] - g32[i]));
    }
    printf("f32 model: loss %.9f vs f64 %.9f, gradients within %.2e of the largest (%.3f)\n", l32, l64, diff / gmax, gmax);
    CHECK(fabs(l32 - l64) < 1e-5 * fabs(l64));
    CHECK(diff < 1e-3 * gmax);
    free(an);
    lm_trm_free_f64(m);
    lm_trm_free_f32(m32);
}

/* A random small model in f64 with norms near 1. */
static lm_trm_f64 *random_model(const lm_train_shape *s, int64_t B, int64_t T) {
    lm_error err = {0};
    lm_trm_f64 *m;
    REQUIRE(lm_trm_create_f64(s, B, T, 2, &m, &err) == LM_OK);
    double *p = lm_trm_params_f64(m);
    const lm_train_layout *lay = lm_trm_layout_f64(m);
    for (int64_t i = 0; i < lay->n_params; i++) p[i] = 0.3 * uni();
    for (int64_t l = 0; l < s->n_layers; l++) {
        for (int64_t j = 0; j < s->dim; j++) {
            p[lay->layers[l].attn_norm + j] = 1 + 0.1 * uni();
            p[lay->layers[l].ffn_norm + j] = 1 + 0.1 * uni();
        }
    }
    return m;
}

/* DPO: the mean pair loss over a batch of 2 pairs (4 rows), with fixed
 * reference log-probabilities, as the trainer computes its gradient
 * (lm_dpo_pair_loss's derivative into per-row scales of the token losses'
 * backward pass), against finite differences. */
static double dpo_batch_loss(lm_trm_f64 *m, const int32_t *in, const int32_t *tg, const double *ref, double beta,
                             double *row_scale) {
    const int64_t B = 4, T = 5;
    lm_trm_forward_f64(m, in, tg, NULL);
    const double *losses = lm_trm_token_losses_f64(m);
    double logp[4] = {0}, total = 0;
    for (int64_t b = 0; b < B; b++) {
        for (int64_t t = 0; t < T; t++) logp[b] -= tg[b * T + t] >= 0 ? losses[b * T + t] : 0;
    }
    for (int p = 0; p < 2; p++) {
        double margin, d;
        total += lm_dpo_pair_loss(logp[2 * p], logp[2 * p + 1], ref[2 * p], ref[2 * p + 1], beta, &margin, &d) / 2;
        if (row_scale) row_scale[2 * p] = -d / 2, row_scale[2 * p + 1] = d / 2;
    }
    return total;
}

static void check_dpo(void) {
    lm_train_shape s = {8, 2, 4, 2, 2, 12, 11, 0, 1e-5, 10000.0};
    lm_trm_f64 *m = random_model(&s, 4, 5);
    double *p = lm_trm_params_f64(m), *g = lm_trm_grads_f64(m);
    const int64_t n = lm_trm_layout_f64(m)->n_params;
    int32_t in[20], tg[20];
    for (int i = 0; i < 20; i++) {
        in[i] = (int32_t)(lm_rng_next(&rng) % 11);
        tg[i] = i % 5 < 2 ? -1 : (int32_t)(lm_rng_next(&rng) % 11); /* the prompt part unscored */
    }
    const double ref[4] = {-9.0, -8.5, -10.0, -7.0}, beta = 0.5;
    double row_scale[4];
    dpo_batch_loss(m, in, tg, ref, beta, row_scale);
    memset(g, 0, (size_t)n * sizeof *g);
    lm_trm_backward_rows_f64(m, row_scale);
    double *an = malloc((size_t)n * sizeof *an);
    memcpy(an, g, (size_t)n * sizeof *an);
    FD_CHECK("DPO loss of 2 pairs", p, n, an, dpo_batch_loss(m, in, tg, ref, beta, NULL));
    double margin, d;
    double l0 = lm_dpo_pair_loss(-5, -5, -5, -5, 0.1, &margin, &d);
    CHECK(fabs(l0 - log(2.0)) < 1e-12 && margin == 0 && fabs(d + 0.05) < 1e-12);
    CHECK(lm_dpo_pair_loss(0, -1e6, 0, 0, 1, &margin, &d) < 1e-12); /* no overflow far out */
    CHECK(fabs(lm_dpo_pair_loss(-1e6, 0, 0, 0, 1, &margin, &d) - 1e6) < 1e-3);
    free(an);
    lm_trm_free_f64(m);
}

/* LoRA: the factors' gradients (from the full gradient) against finite
 * differences of the loss of the f64 model whose matrices are rebuilt here
 * as W0 + (alpha / r) B A from the flat factor array (all A then B of wq,
 * wk, wv, wo, w_gate, w_up, w_down, layer by layer). */
static void lora_weights(const lm_train_shape *s, const lm_train_layout *lay, const double *w0, const double *f,
                         int64_t r, double scale, double *p) {
    const int64_t D = s->dim, qd = s->n_heads * s->head_dim, kvd = s->n_kv_heads * s->head_dim, F = s->ffn_dim;
    const int64_t shapes[7][2] = {{qd, D}, {kvd, D}, {kvd, D}, {D, qd}, {F, D}, {F, D}, {D, F}};
    int64_t at = 0;
    for (int64_t l = 0; l < s->n_layers; l++) {
        const lm_train_layer_offsets *o = &lay->layers[l];
        const int64_t offs[7] = {o->wq, o->wk, o->wv, o->wo, o->w_gate, o->w_up, o->w_down};
        for (int k = 0; k < 7; k++) {
            const int64_t rows = shapes[k][0], cols = shapes[k][1];
            const double *A = f + at, *Bm = f + at + r * cols;
            for (int64_t i = 0; i < rows; i++) {
                for (int64_t j = 0; j < cols; j++) {
                    double acc = 0;
                    for (int64_t q = 0; q < r; q++) acc += Bm[i * r + q] * A[q * cols + j];
                    p[offs[k] + i * cols + j] = w0[offs[k] + i * cols + j] + scale * acc;
                }
            }
            at += r * cols + rows * r;
        }
    }
}

static double lora_loss(lm_trm_f64 *m, const lm_train_shape *s, const double *w0, const double *f, int64_t r,
                        double scale, const int32_t *in, const int32_t *tg) {
    lora_weights(s, lm_trm_layout_f64(m), w0, f, r, scale, lm_trm_params_f64(m));
    return lm_trm_forward_f64(m, in, tg, NULL);
}

static void check_lora(void) {
    lm_train_shape s = {8, 2, 4, 2, 2, 12, 11, 0, 1e-5, 10000.0};
    const int64_t r = 2, n_rows_tokens = 10;
    const float alpha = 3;
    lm_trm_f64 *m = random_model(&s, 2, 5);
    const lm_train_layout *lay = lm_trm_layout_f64(m);
    const int64_t n = lay->n_params;
    double *w0 = malloc((size_t)n * sizeof *w0);
    float *p32 = malloc((size_t)n * sizeof *p32), *g32 = malloc((size_t)n * sizeof *g32);
    memcpy(w0, lm_trm_params_f64(m), (size_t)n * sizeof *w0);
    for (int64_t i = 0; i < n; i++) p32[i] = (float)w0[i];
    lm_error err = {0};
    lm_lora_state *st;
    REQUIRE(lm_lora_state_create(&s, lay, p32, r, alpha, 7, &st, &err) == LM_OK);
    const int64_t nf = lm_lora_state_count(st);
    float *f32 = lm_lora_state_params(st);
    double *f = malloc((size_t)nf * sizeof *f);
    for (int64_t i = 0; i < nf; i++) f32[i] = (float)(0.5 * uni()), f[i] = f32[i]; /* B random too */
    /* the state's own W0 + s B A agrees with the reference construction */
    lm_lora_state_apply(st, p32, 1);
    lora_weights(&s, lay, w0, f, r, alpha / (double)r, lm_trm_params_f64(m));
    double worst_w = 0;
    for (int64_t i = 0; i < n; i++) worst_w = fmax(worst_w, fabs(p32[i] - lm_trm_params_f64(m)[i]));
    CHECKF(worst_w < 1e-5, "LoRA effective weights off by %.3e", worst_w);
    int32_t in[10], tg[10];
    for (int i = 0; i < n_rows_tokens; i++) in[i] = (int32_t)(lm_rng_next(&rng) % 11), tg[i] = (int32_t)(lm_rng_next(&rng) % 11);
    lora_loss(m, &s, w0, f, r, alpha / (double)r, in, tg);
    memset(lm_trm_grads_f64(m), 0, (size_t)n * sizeof(double));
    lm_trm_backward_f64(m, 1.0);
    for (int64_t i = 0; i < n; i++) g32[i] = (float)lm_trm_grads_f64(m)[i];
    lm_lora_state_backward(st, g32, 2);
    double *an = malloc((size_t)nf * sizeof *an);
    for (int64_t i = 0; i < nf; i++) an[i] = lm_lora_state_grads(st)[i];
    FD_CHECK("LoRA factors (rank 2)", f, nf, an, lora_loss(m, &s, w0, f, r, alpha / (double)r, in, tg));
    lm_lora_state *bad;
    CHECK(lm_lora_state_create(&s, lay, p32, 0, alpha, 7, &bad, &err) == LM_ERR_ARG);
    CHECK(lm_lora_state_create(&s, lay, p32, 9, alpha, 7, &bad, &err) == LM_ERR_ARG); /* above min(rows, cols) = 4 */
    free(an), free(f), free(w0), free(p32), free(g32);
    lm_lora_state_free(st);
    lm_trm_free_f64(m);
}

/* lm_sgemm (or lm_sgemm_bf16 with bf16 set, within bf16's rounding: each
 * operand to 8 bits of mantissa, so 2^-7 of the sum of |products|) for
 * every transposition, sizes around the tile edges, odd K, 1 and 3 threads,
 * plain and accumulating. */
static void check_sgemm(const lm_gemm_kernel *g, int bf16) {
    const int64_t sizes[][3] = {{1, 1, 1}, {13, 17, 5}, {12, 32, 256}, {25, 70, 300}, {7, 3, 513}, {40, 33, 64}};
    double worst = 0;
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        int64_t M = sizes[si][0], N = sizes[si][1], K = sizes[si][2];
        float *a = malloc((size_t)(M * K) * 4), *b = malloc((size_t)(K * N) * 4), *c = malloc((size_t)(M * N) * 4);
        for (int64_t i = 0; i < M * K; i++) a[i] = (float)uni();
        for (int64_t i = 0; i < K * N; i++) b[i] = (float)uni();
        for (int ta = 0; ta < 2; ta++) {
            for (int tb = 0; tb < 2; tb++) {
                /* the same numbers seen through transposed views */
                lm_fview A = ta ? (lm_fview){a, 1, M} : (lm_fview){a, K, 1};
                lm_fview Bv = tb ? (lm_fview){b, 1, K} : (lm_fview){b, N, 1};
                for (int acc = 0; acc < 2; acc++) {
                    for (int nt = 1; nt <= 3; nt += 2) {
                        for (int64_t i = 0; i < M * N; i++) c[i] = acc ? 1.0f : NAN;
                        CHECK((bf16 ? lm_sgemm_bf16 : lm_sgemm)(g, M, N, K, A, Bv, c, N, acc, nt) == 1);
                        for (int64_t i = 0; i < M; i++) {
                            for (int64_t j = 0; j < N; j++) {
                                double ref = acc ? 1.0 : 0.0, mag = 1;
                                for (int64_t k = 0; k < K; k++) {
                                    double x = A.p[i * A.rs + k * A.cs], y = Bv.p[k * Bv.rs + j * Bv.cs];
                                    ref += x * y, mag += fabs(x * y);
                                }
                                double e = fabs(c[i * N + j] - ref) / mag;
                                worst = e > worst ? e : worst;
                            }
                        }
                    }
                }
            }
        }
        free(a), free(b), free(c);
    }
    printf("sgemm %s: worst error %.2e of the sum of |products|\n", g->name, worst);
    CHECKF(worst < (bf16 ? 1.0 / 128 : 1e-6), "sgemm %s off by %.2e", g->name, worst);
    if (bf16) CHECKF(worst > 1e-6, "sgemm %s: no rounding at all (%.2e): not bf16?", g->name, worst);
}

int main(void) {
    lm_rng_seed(&rng, 1234);
    check_ops();
    check_model(0);
    check_model(1);
    check_dpo();
    check_lora();
    check_sgemm(&lm_gemm_scalar, 0);
    if (lm_gemm_kernel_best()) check_sgemm(lm_gemm_kernel_best(), 0);
#if defined(__x86_64__)
    if (lm_gemm_kernel_best() == &lm_gemm_avx512) check_sgemm(&lm_gemm_avx2, 0);
#endif
    if (lm_gemm_kernel_bf16()) check_sgemm(lm_gemm_kernel_bf16(), 1);
    else printf("no bf16 dot product on this CPU: bf16 GEMM not tested\n");
    TEST_END();
}
