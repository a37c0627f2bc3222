/* GGUF in and out of training. */
#include "export.h"

#include "../model/model_internal.h"
#include "llmos/gguf.h"

#include <stdio.h>
#include <string.h>

lm_status lm_train_shape_of(const lm_model *m, lm_train_shape *s, lm_error *err) {
    const lm_model_config *c = &m->cfg;
    if (c->rope_dim != c->head_dim) {
        return lm_error_set(err, LM_ERR_UNSUPPORTED, "training needs RoPE over the whole head (rope dimension %lld, head %lld)",
                            (long long)c->rope_dim, (long long)c->head_dim);
    }
    *s = (lm_train_shape){c->dim, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim, c->ffn_dim, c->n_vocab,
                          c->tied_output, c->norm_eps, c->rope_base};
    return LM_OK;
}

static void copy_matrix(const lm_weight *w, float *dst) {
    for (int64_t r = 0; r < w->rows; r++) lm_weight_row(w, r, dst + r * w->cols);
}

void lm_train_params_from_model(const lm_model *m, const lm_train_layout *l, float *params) {
    const int64_t D = m->cfg.dim;
    copy_matrix(&m->tok_embd, params + l->tok_embd);
    for (int64_t i = 0; i < m->cfg.n_layers; i++) {
        const layer_weights *w = &m->layers[i];
        const lm_train_layer_offsets *o = &l->layers[i];
        memcpy(params + o->attn_norm, w->attn_norm, (size_t)D * sizeof(float));
        copy_matrix(&w->wq, params + o->wq);
        copy_matrix(&w->wk, params + o->wk);
        copy_matrix(&w->wv, params + o->wv);
        copy_matrix(&w->wo, params + o->wo);
        memcpy(params + o->ffn_norm, w->ffn_norm, (size_t)D * sizeof(float));
        copy_matrix(&w->w_gate, params + o->w_gate);
        copy_matrix(&w->w_up, params + o->w_up);
        copy_matrix(&w->w_down, params + o->w_down);
    }
    memcpy(params + l->output_norm, m->output_norm, (size_t)D * sizeof(float));
    if (!m->cfg.tied_output) copy_matrix(&m->output, params + l->output);
}

lm_status lm_train_export(const char *template_path, const lm_train_shape *s, const lm_train_layout *l,
                          const float *params, const char *chat_template, const char *out_path, lm_error *err) {
    lm_gguf *g;
    lm_status st = lm_gguf_open(template_path, &g, err);
    if (st) return lm_error_prefix(err, st, "%s: ", template_path);
    lm_gguf_writer *w = lm_gguf_writer_init();
    if (!w) {
        lm_gguf_free(g);
        return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    }
    for (int64_t i = 0; i < lm_gguf_kv_count(g) && !st; i++) {
        const char *key = lm_gguf_key(g, i);
        if (strcmp(key, "general.name") == 0 || strcmp(key, "general.file_type") == 0) continue;
        /* The template the model was fine-tuned with replaces the one it came with. */
        if (chat_template && strcmp(key, "tokenizer.chat_template") == 0) continue;
        st = lm_gguf_writer_copy_kv(w, g, i, err);
    }
    if (!st && chat_template) {
        st = lm_gguf_writer_set_str(w, "tokenizer.chat_template", chat_template, err);
    }
    if (!st) st = lm_gguf_writer_set_str(w, "general.name", "llmos-trained", err);
    if (!st) st = lm_gguf_writer_set_u32(w, "general.file_type", 0, err); /* all F32 */
    const int64_t D = s->dim, qd = s->n_heads * s->head_dim, kvd = s->n_kv_heads * s->head_dim, F = s->ffn_dim;
    /* GGUF shapes list the contiguous dimension first: a (rows, cols) matrix is ne = {cols, rows}. */
#define ADD(name, off, cols, rows)                                                                                   \
    do {                                                                                                             \
        int64_t ne_[2] = {(cols), (rows)};                                                                           \
        if (!st) st = lm_gguf_writer_add_tensor(w, name, LM_TYPE_F32, (rows) == 1 ? 1 : 2, ne_, params + (off), err); \
    } while (0)
    ADD("token_embd.weight", l->tok_embd, D, s->n_vocab);
    ADD("output_norm.weight", l->output_norm, D, 1);
    if (!s->tied_output) ADD("output.weight", l->output, D, s->n_vocab);
    for (int64_t i = 0; i < s->n_layers && !st; i++) {
        const lm_train_layer_offsets *o = &l->layers[i];
        char nm[LM_GGUF_MAX_NAME];
#define LAYER(suffix, off, cols, rows) snprintf(nm, sizeof nm, "blk.%lld." suffix, (long long)i); ADD(nm, off, cols, rows)
        LAYER("attn_norm.weight", o->attn_norm, D, 1);
        LAYER("attn_q.weight", o->wq, D, qd);
        LAYER("attn_k.weight", o->wk, D, kvd);
        LAYER("attn_v.weight", o->wv, D, kvd);
        LAYER("attn_output.weight", o->wo, qd, D);
        LAYER("ffn_norm.weight", o->ffn_norm, D, 1);
        LAYER("ffn_gate.weight", o->w_gate, D, F);
        LAYER("ffn_up.weight", o->w_up, D, F);
        LAYER("ffn_down.weight", o->w_down, F, D);
#undef LAYER
    }
#undef ADD
    if (!st) st = lm_gguf_writer_write_file(w, out_path, err);
    lm_gguf_writer_free(w);
    lm_gguf_free(g);
    return st;
}
