#ifndef LLMOS_MODEL_INTERNAL_H
#define LLMOS_MODEL_INTERNAL_H

#include "llmos/model.h"

/* Weight shapes in row-major view (rows, cols): a projection from n_in to
 * n_out is (n_out, n_in), which GGUF stores as ne = [n_in, n_out]. */
typedef struct layer_weights {
    const float *attn_norm; /* (dim) */
    const float *wq;        /* (n_heads * head_dim, dim) */
    const float *wk;        /* (n_kv_heads * head_dim, dim) */
    const float *wv;        /* (n_kv_heads * head_dim, dim) */
    const float *wo;        /* (dim, n_heads * head_dim) */
    const float *ffn_norm;  /* (dim) */
    const float *w_gate;    /* (ffn_dim, dim) */
    const float *w_up;      /* (ffn_dim, dim) */
    const float *w_down;    /* (dim, ffn_dim) */
} layer_weights;

struct lm_model {
    lm_gguf *gguf;
    lm_tokenizer *tokenizer;
    lm_model_config cfg;
    const float *tok_embd;    /* (n_vocab, dim) */
    const float *output_norm; /* (dim) */
    const float *output;      /* (n_vocab, dim); tok_embd when tied */
    layer_weights *layers;    /* (n_layers) */
};

#endif
