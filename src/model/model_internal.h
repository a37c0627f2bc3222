#ifndef LLMOS_MODEL_INTERNAL_H
#define LLMOS_MODEL_INTERNAL_H

#include "../tensor/ops.h"
#include "llmos/model.h"

/* An attached LoRA adapter's factors for one matrix W (rows, cols), owned by
 * the model (lora.c): the forward pass adds B (scale * (A x)) to W x. */
typedef struct lora_factors {
    lm_weight a;  /* F32 (rank, cols) */
    lm_weight b;  /* F32 (rows, rank) */
    float scale;  /* lm_lora_scale */
    float *data;  /* a then b, one allocation */
} lora_factors;

/* The adaptable matrices of a block, in layer_weights.lora. */
enum { LORA_Q, LORA_K, LORA_V, LORA_O, LORA_GATE, LORA_UP, LORA_DOWN, LORA_KINDS };

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
    const lora_factors *lora[LORA_KINDS]; /* NULL: no adapter on that matrix */
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
    void *packed;             /* the matrices re-laid at load (packed.h), one buffer */
    lora_factors *lora;       /* (n_lora) the attached adapter, NULL without one */
    int64_t n_lora;
    int64_t lora_max_rank, lora_max_rows; /* scratch a context needs for it */
};

/* Frees the attached adapter (lora.c); called by lm_model_free. */
void lm_model_lora_free(lm_model *m);

#endif
