/* Where each tensor lives in the trainer's parameter array. */
#include "model.h"

#include "../base/checked.h"

#include <stdlib.h>

lm_status lm_train_layout_init(const lm_train_shape *s, lm_train_layout *out, lm_error *err) {
    out->layers = NULL;
    const int64_t cap = (int64_t)1 << 32; /* per dimension: keeps every product below 2^63 */
    if (s->dim < 1 || s->n_layers < 1 || s->n_heads < 1 || s->n_kv_heads < 1 || s->head_dim < 2 || s->ffn_dim < 1 ||
        s->n_vocab < 1 || s->dim > cap || s->ffn_dim > cap || s->n_vocab > cap || s->n_layers > 4096 ||
        s->n_heads > 4096 || s->head_dim > 4096) {
        return lm_error_set(err, LM_ERR_ARG, "model shape out of range (dim %lld, layers %lld, heads %lld, ffn %lld, vocab %lld)",
                            (long long)s->dim, (long long)s->n_layers, (long long)s->n_heads, (long long)s->ffn_dim,
                            (long long)s->n_vocab);
    }
    if (s->n_heads % s->n_kv_heads || s->head_dim % 2) {
        return lm_error_set(err, LM_ERR_ARG, "%lld heads do not share %lld kv heads evenly, or head size %lld is odd",
                            (long long)s->n_heads, (long long)s->n_kv_heads, (long long)s->head_dim);
    }
    out->layers = calloc((size_t)s->n_layers, sizeof *out->layers);
    if (!out->layers) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    const int64_t D = s->dim, qd = s->n_heads * s->head_dim, kvd = s->n_kv_heads * s->head_dim, F = s->ffn_dim;
    int64_t at = 0;
    out->tok_embd = at;
    at += s->n_vocab * D;
    for (int64_t l = 0; l < s->n_layers; l++) {
        lm_train_layer_offsets *o = &out->layers[l];
        o->attn_norm = at, at += D;
        o->wq = at, at += qd * D;
        o->wk = at, at += kvd * D;
        o->wv = at, at += kvd * D;
        o->wo = at, at += D * qd;
        o->ffn_norm = at, at += D;
        o->w_gate = at, at += F * D;
        o->w_up = at, at += F * D;
        o->w_down = at, at += D * F;
    }
    out->output_norm = at, at += D;
    if (s->tied_output) {
        out->output = out->tok_embd;
    } else {
        out->output = at, at += s->n_vocab * D;
    }
    out->n_params = at;
    return LM_OK;
}

void lm_train_layout_free(lm_train_layout *l) {
    free(l->layers);
    l->layers = NULL;
}
