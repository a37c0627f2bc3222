#ifndef LLMOS_MODEL_INTERNAL_H
#define LLMOS_MODEL_INTERNAL_H

#include "../tensor/ops.h"
#include "llmos/model.h"

/* Weight shapes in row-major view (rows, cols): a projection from n_in to
 * n_out is (n_out, n_in), which GGUF stores as ne = [n_in, n_out]. */
typedef struct layer_weights {
    const float *attn_norm; /* (dim) */
    lm_weight wq;           /* (n_heads * head_dim, dim) */
    lm_weight wk;           /* (n_kv_heads * head_dim, dim) */
    lm_weight wv;           /* (n_kv_heads * head_dim, dim) */
    lm_weight wo;           /* (dim, n_heads * head_dim) */
    const float *ffn_norm;  /* (dim) */
    lm_weight w_gate;       /* (ffn_dim, dim) */
    lm_weight w_up;         /* (ffn_dim, dim) */
    lm_weight w_down;       /* (dim, ffn_dim) */
} layer_weights;

struct lm_model {
    lm_gguf *gguf;
    lm_tokenizer *tokenizer;
    lm_model_config cfg;
    lm_weight tok_embd;       /* (n_vocab, dim) */
    const float *output_norm; /* (dim) */
    lm_weight output;         /* (n_vocab, dim); tok_embd when tied */
    layer_weights *layers;    /* (n_layers) */
    float **owned;            /* norm vectors converted to f32 at load, freed with the model */
    size_t n_owned;
};

#endif
