/* The whole model's forward and backward pass, for REAL / SFX (see
 * model.h; compiled by model_f32.c and model_f64.c). */
#include "../base/checked.h"

#include <stdlib.h>
#include <string.h>

#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)
#define OP(name) CAT(lm_tr_##name, SFX)
#define TRM CAT(lm_trm, SFX)
#define TFN(name) CAT(lm_trm_##name, SFX)

/* Saved activations of one layer for the backward pass; N = B * T. */
typedef struct CAT(layer_acts, SFX) {
    REAL *x;          /* (N, D) the layer's input (residual stream) */
    REAL *xn1, *rs1;  /* (N, D) attn_norm(x), (N) its 1/rms */
    REAL *q, *k, *v;  /* (N, H*hd), (N, KVH*hd) x2, after RoPE */
    REAL *att;        /* (B, H, T, T) attention probabilities */
    REAL *ao;         /* (N, H*hd) attention output, before wo */
    REAL *xm;         /* (N, D) x + wo . ao */
    REAL *xn2, *rs2;  /* (N, D), (N) ffn_norm(xm) */
    REAL *gate, *up, *h; /* (N, F) each; h = silu(gate) * up */
} CAT(layer_acts, SFX);

struct TRM {
    lm_train_shape s;
    lm_train_layout lay;
    int64_t B, T;
    int nt;
    REAL *params, *grads;
    CAT(layer_acts, SFX) *acts; /* n_layers */
    REAL *xf, *rsf;   /* (N, D) final norm's output, (N) */
    REAL *x_out;      /* (N, D) the last layer's output */
    REAL *logits;     /* (N, V), probabilities after a scored forward */
    REAL *losses;     /* (N) */
    int32_t *inputs, *targets; /* (N) copies for the backward pass */
    int scored;
    double *rope;     /* (T, hd / 2, 2) */
    /* backward scratch */
    REAL *dx, *dxn, *dq, *dk, *dv, *dao, *dgate, *dup, *dh, *att_scratch;
    void *arena;      /* every buffer above lives in it */
};

/* Carves n elements from the arena, after checking the size. */
static REAL *CAT(carve, SFX)(char **at, int64_t n) {
    REAL *p = (REAL *)(void *)*at;
    *at += ((size_t)n * sizeof(REAL) + 63) & ~(size_t)63;
    return p;
}

lm_status TFN(create)(const lm_train_shape *s, int64_t B, int64_t T, int n_threads, TRM **out, lm_error *err) {
    *out = NULL;
    if (B < 1 || T < 1 || B > (1 << 20) || T > (1 << 20)) {
        return lm_error_set(err, LM_ERR_ARG, "batch %lld x context %lld out of range", (long long)B, (long long)T);
    }
    TRM *m = calloc(1, sizeof *m);
    if (!m) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    m->s = *s;
    m->B = B, m->T = T, m->nt = n_threads > 0 ? n_threads : 1;
    lm_status st = lm_train_layout_init(s, &m->lay, err);
    if (st) {
        free(m);
        return st;
    }
    const int64_t N = B * T, D = s->dim, hd = s->head_dim, qd = s->n_heads * hd, kvd = s->n_kv_heads * hd,
                  F = s->ffn_dim, V = s->n_vocab, L = s->n_layers, H = s->n_heads;
    /* Element counts of every buffer, summed with overflow checks. */
    int64_t per_layer[] = {N * D, N * D, N, N * qd, N * kvd, N * kvd, B * H * T * T, N * qd, N * D, N * D, N, N * F, N * F, N * F};
    int64_t sizes[] = {m->lay.n_params, m->lay.n_params, N * D, N, N * D, N * V, N, N * D, N * D, N * qd, N * kvd,
                       N * kvd, N * qd, N * F, N * F, N * F, B * s->n_kv_heads * T};
    size_t total = 0, bytes;
    int over = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        over |= lm_mul_overflow_size((size_t)sizes[i], sizeof(REAL), &bytes) || lm_add_overflow_size(total, bytes + 64, &total);
    }
    for (int64_t l = 0; l < L && !over; l++) {
        for (size_t i = 0; i < sizeof per_layer / sizeof *per_layer; i++) {
            over |= lm_mul_overflow_size((size_t)per_layer[i], sizeof(REAL), &bytes) || lm_add_overflow_size(total, bytes + 64, &total);
        }
    }
    size_t rope_bytes = (size_t)(T * hd) * sizeof(double);
    if (over || lm_add_overflow_size(total, rope_bytes + 64, &total)) {
        lm_train_layout_free(&m->lay);
        free(m);
        return lm_error_set(err, LM_ERR_LIMIT, "the model and its activations for %lld x %lld tokens are too large",
                            (long long)B, (long long)T);
    }
    m->arena = aligned_alloc(64, (total + 63) & ~(size_t)63);
    m->acts = calloc((size_t)L, sizeof *m->acts);
    m->inputs = malloc((size_t)N * sizeof(int32_t));
    m->targets = malloc((size_t)N * sizeof(int32_t));
    if (!m->arena || !m->acts || !m->inputs || !m->targets) {
        TFN(free)(m);
        return lm_error_set(err, LM_ERR_NOMEM, "out of memory for the model and activations (%.1f MB)", (double)total / 1e6);
    }
    memset(m->arena, 0, total);
    char *at = m->arena;
    m->params = CAT(carve, SFX)(&at, m->lay.n_params);
    m->grads = CAT(carve, SFX)(&at, m->lay.n_params);
    for (int64_t l = 0; l < L; l++) {
        CAT(layer_acts, SFX) *a = &m->acts[l];
        a->x = CAT(carve, SFX)(&at, N * D);
        a->xn1 = CAT(carve, SFX)(&at, N * D);
        a->rs1 = CAT(carve, SFX)(&at, N);
        a->q = CAT(carve, SFX)(&at, N * qd);
        a->k = CAT(carve, SFX)(&at, N * kvd);
        a->v = CAT(carve, SFX)(&at, N * kvd);
        a->att = CAT(carve, SFX)(&at, B * H * T * T);
        a->ao = CAT(carve, SFX)(&at, N * qd);
        a->xm = CAT(carve, SFX)(&at, N * D);
        a->xn2 = CAT(carve, SFX)(&at, N * D);
        a->rs2 = CAT(carve, SFX)(&at, N);
        a->gate = CAT(carve, SFX)(&at, N * F);
        a->up = CAT(carve, SFX)(&at, N * F);
        a->h = CAT(carve, SFX)(&at, N * F);
    }
    m->xf = CAT(carve, SFX)(&at, N * D);
    m->rsf = CAT(carve, SFX)(&at, N);
    m->x_out = CAT(carve, SFX)(&at, N * D);
    m->logits = CAT(carve, SFX)(&at, N * V);
    m->losses = CAT(carve, SFX)(&at, N);
    m->dx = CAT(carve, SFX)(&at, N * D);
    m->dxn = CAT(carve, SFX)(&at, N * D);
    m->dq = CAT(carve, SFX)(&at, N * qd);
    m->dk = CAT(carve, SFX)(&at, N * kvd);
    m->dv = CAT(carve, SFX)(&at, N * kvd);
    m->dao = CAT(carve, SFX)(&at, N * qd);
    m->dgate = CAT(carve, SFX)(&at, N * F);
    m->dup = CAT(carve, SFX)(&at, N * F);
    m->dh = CAT(carve, SFX)(&at, N * F);
    m->att_scratch = CAT(carve, SFX)(&at, B * s->n_kv_heads * T);
    m->rope = (double *)(void *)at;
    lm_tr_rope_table(m->rope, T, hd, s->rope_theta);
    *out = m;
    return LM_OK;
}

void TFN(free)(TRM *m) {
    if (!m) return;
    lm_train_layout_free(&m->lay);
    free(m->arena);
    free(m->acts);
    free(m->inputs);
    free(m->targets);
    free(m);
}

REAL *TFN(params)(TRM *m) { return m->params; }
REAL *TFN(grads)(TRM *m) { return m->grads; }
const lm_train_layout *TFN(layout)(const TRM *m) { return &m->lay; }
const REAL *TFN(logits)(const TRM *m) { return m->logits; }

double TFN(forward)(TRM *m, const int32_t *inputs, const int32_t *targets, int64_t *n_scored) {
    const lm_train_shape *s = &m->s;
    const int64_t B = m->B, T = m->T, N = B * T, D = s->dim, hd = s->head_dim, H = s->n_heads, KVH = s->n_kv_heads,
                  qd = H * hd, kvd = KVH * hd, F = s->ffn_dim, V = s->n_vocab;
    const int nt = m->nt;
    const REAL *P = m->params;
    memcpy(m->inputs, inputs, (size_t)N * sizeof(int32_t));
    OP(embedding_fwd)(m->acts[0].x, P + m->lay.tok_embd, inputs, N, D);
    for (int64_t l = 0; l < s->n_layers; l++) {
        CAT(layer_acts, SFX) *a = &m->acts[l];
        const lm_train_layer_offsets *o = &m->lay.layers[l];
        REAL *x_next = l + 1 < s->n_layers ? m->acts[l + 1].x : m->x_out;
        OP(rmsnorm_fwd)(a->xn1, a->rs1, a->x, P + o->attn_norm, N, D, s->norm_eps, nt);
        OP(matmul_fwd)(a->q, a->xn1, P + o->wq, N, D, qd, nt);
        OP(matmul_fwd)(a->k, a->xn1, P + o->wk, N, D, kvd, nt);
        OP(matmul_fwd)(a->v, a->xn1, P + o->wv, N, D, kvd, nt);
        OP(rope)(a->q, m->rope, N, T, H, hd, 1, nt);
        OP(rope)(a->k, m->rope, N, T, KVH, hd, 1, nt);
        OP(attention_fwd)(a->ao, a->att, a->q, a->k, a->v, B, T, H, KVH, hd, nt);
        OP(matmul_fwd)(a->xm, a->ao, P + o->wo, N, qd, D, nt);
        for (int64_t i = 0; i < N * D; i++) a->xm[i] += a->x[i];
        OP(rmsnorm_fwd)(a->xn2, a->rs2, a->xm, P + o->ffn_norm, N, D, s->norm_eps, nt);
        OP(matmul_fwd)(a->gate, a->xn2, P + o->w_gate, N, D, F, nt);
        OP(matmul_fwd)(a->up, a->xn2, P + o->w_up, N, D, F, nt);
        OP(swiglu_fwd)(a->h, a->gate, a->up, N * F, nt);
        OP(matmul_fwd)(x_next, a->h, P + o->w_down, N, F, D, nt);
        for (int64_t i = 0; i < N * D; i++) x_next[i] += a->xm[i];
    }
    OP(rmsnorm_fwd)(m->xf, m->rsf, m->x_out, P + m->lay.output_norm, N, D, s->norm_eps, nt);
    OP(matmul_fwd)(m->logits, m->xf, P + m->lay.output, N, D, V, nt);
    m->scored = targets != NULL;
    if (!targets) {
        if (n_scored) *n_scored = 0;
        return 0;
    }
    memcpy(m->targets, targets, (size_t)N * sizeof(int32_t));
    int64_t count = 0;
    for (int64_t i = 0; i < N; i++) count += targets[i] >= 0;
    if (n_scored) *n_scored = count;
    return OP(crossentropy_fwd)(m->logits, m->losses, targets, N, V, nt);
}

static void CAT(backward_from_dlogits, SFX)(TRM *m);

void TFN(backward)(TRM *m, double loss_scale) {
    if (!m->scored) return;
    OP(crossentropy_bwd)(m->logits, m->targets, m->B * m->T, m->s.n_vocab, (REAL)loss_scale, m->nt);
    CAT(backward_from_dlogits, SFX)(m);
}

void TFN(backward_rows)(TRM *m, const double *row_scale) {
    if (!m->scored) return;
    OP(crossentropy_bwd_rows)(m->logits, m->targets, m->B * m->T, m->s.n_vocab, m->T, row_scale, m->nt);
    CAT(backward_from_dlogits, SFX)(m);
}

const REAL *TFN(token_losses)(const TRM *m) { return m->losses; }

/* The backward pass once m->logits holds d(loss)/d(logits). */
static void CAT(backward_from_dlogits, SFX)(TRM *m) {
    const lm_train_shape *s = &m->s;
    const int64_t B = m->B, T = m->T, N = B * T, D = s->dim, hd = s->head_dim, H = s->n_heads, KVH = s->n_kv_heads,
                  qd = H * hd, kvd = KVH * hd, F = s->ffn_dim, V = s->n_vocab;
    const int nt = m->nt;
    const REAL *P = m->params;
    REAL *G = m->grads;
    /* the output matrix and final norm */
    OP(matmul_bwd)(m->dxn, G + m->lay.output, m->logits, m->xf, P + m->lay.output, N, D, V, 0, nt);
    memset(m->dx, 0, (size_t)(N * D) * sizeof(REAL));
    OP(rmsnorm_bwd)(m->dx, G + m->lay.output_norm, m->dxn, m->x_out, P + m->lay.output_norm, m->rsf, N, D, nt);
    m->scored = 0; /* the probabilities are now gradients */
    for (int64_t l = s->n_layers - 1; l >= 0; l--) {
        CAT(layer_acts, SFX) *a = &m->acts[l];
        const lm_train_layer_offsets *o = &m->lay.layers[l];
        /* dx holds d(loss)/d(layer output); it flows unchanged through both residuals. */
        OP(matmul_bwd)(m->dh, G + o->w_down, m->dx, a->h, P + o->w_down, N, F, D, 0, nt);
        OP(swiglu_bwd)(m->dgate, m->dup, m->dh, a->gate, a->up, N * F, nt);
        OP(matmul_bwd)(m->dxn, G + o->w_gate, m->dgate, a->xn2, P + o->w_gate, N, D, F, 0, nt);
        OP(matmul_bwd)(m->dxn, G + o->w_up, m->dup, a->xn2, P + o->w_up, N, D, F, 1, nt);
        OP(rmsnorm_bwd)(m->dx, G + o->ffn_norm, m->dxn, a->xm, P + o->ffn_norm, a->rs2, N, D, nt);
        /* attention sub-layer */
        OP(matmul_bwd)(m->dao, G + o->wo, m->dx, a->ao, P + o->wo, N, qd, D, 0, nt);
        OP(attention_bwd)(m->dq, m->dk, m->dv, m->dao, a->att, a->q, a->k, a->v, B, T, H, KVH, hd, m->att_scratch, nt);
        OP(rope)(m->dq, m->rope, N, T, H, hd, -1, nt);
        OP(rope)(m->dk, m->rope, N, T, KVH, hd, -1, nt);
        OP(matmul_bwd)(m->dxn, G + o->wq, m->dq, a->xn1, P + o->wq, N, D, qd, 0, nt);
        OP(matmul_bwd)(m->dxn, G + o->wk, m->dk, a->xn1, P + o->wk, N, D, kvd, 1, nt);
        OP(matmul_bwd)(m->dxn, G + o->wv, m->dv, a->xn1, P + o->wv, N, D, kvd, 1, nt);
        OP(rmsnorm_bwd)(m->dx, G + o->attn_norm, m->dxn, a->x, P + o->attn_norm, a->rs1, N, D, nt);
    }
    OP(embedding_bwd)(G + m->lay.tok_embd, m->dx, m->inputs, N, D, nt);
}

#undef TFN
#undef TRM
#undef OP
#undef CAT
#undef CAT_
