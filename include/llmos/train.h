/* Pre-training a Llama model on token shards (llmos/data.h): AdamW with
 * decoupled weight decay, gradient clipping by global norm, warmup then
 * cosine or linear decay, gradient accumulation, validation, checkpoints
 * that resume bit for bit, and a GGUF at the end. */
#ifndef LLMOS_TRAIN_H
#define LLMOS_TRAIN_H

#include "llmos/base.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lm_lr_schedule { LM_LR_COSINE = 0, LM_LR_LINEAR = 1, LM_LR_CONSTANT = 2 } lm_lr_schedule;

/* Pre-packed rows of training data (supervised fine-tuning, llmos/sft.h):
 * row r is inputs[r*T .. r*T+T) with targets[r*T ..] (-1: not scored). */
typedef struct lm_train_rows {
    const int32_t *inputs, *targets;
    int64_t n_rows;
} lm_train_rows;

typedef struct lm_train_options {
    const char *data_dir;   /* shards from `llmos data prepare` (train, and val if present) */
    const char *tokenizer;  /* GGUF whose tokenizer.* keys go into new models */
    const char *init_model; /* start from this GGUF (any weight type); NULL: a new model of the shape below */
    int64_t dim, n_layers, n_heads, n_kv_heads, ffn_dim; /* new models only */
    int64_t context;        /* tokens per sequence (T) */
    int64_t batch;          /* sequences per micro-batch (B) */
    int64_t batch_tokens;   /* tokens per optimizer step (a multiple of B*T after rounding up); 0: B*T */
    int64_t max_steps;
    double time_budget_s;   /* stop (with a checkpoint) after this much time; 0: none */
    double lr, min_lr_ratio; /* peak learning rate; the decay ends at lr * min_lr_ratio */
    int64_t warmup_steps;
    lm_lr_schedule schedule;
    double weight_decay, beta1, beta2, adam_eps, grad_clip; /* grad_clip 0: none */
    int decay_embeddings;   /* weight decay on the embedding too (never on norms) */
    uint64_t seed;          /* initialisation and batch sampling */
    int64_t eval_every;     /* steps between validation losses; 0: only at the end */
    int64_t eval_batches;   /* micro-batches of validation per evaluation */
    int64_t checkpoint_every; /* 0: only at the end and on SIGINT/SIGTERM */
    const char *checkpoint_dir; /* NULL: OUT.ckpt/ */
    int resume;             /* continue from the newest valid checkpoint in checkpoint_dir */
    int n_threads;
    const char *json_log;   /* append one JSON object per step; NULL: none */
    const char *out_path;   /* the trained model (GGUF) */
    int quiet;              /* no progress bar or step lines */
    int bf16;               /* weight products in bf16 (AVX-512 BF16), f32 master weights */
    const lm_train_rows *rows_train, *rows_val; /* instead of data_dir: random rows (SFT); val rows may be NULL */
    const char *chat_template; /* written into the output as tokenizer.chat_template (replacing the model's); NULL: kept */
    double dpo_beta;        /* > 0: direct preference optimisation with this beta; rows_train and rows_val hold
                               pairs: row 2i the prompt with the chosen answer, row 2i + 1 with the rejected one,
                               only the answers scored. The reference model is the starting model. */
    int64_t lora_rank;      /* > 0: train LoRA factors of this rank on every layer's seven matrices, the weights
                               frozen; out_path gets the adapter (llmos/lora.h), not a model */
    double lora_alpha;      /* the adapter's alpha (scale alpha / rank); 0: 2 * rank */
} lm_train_options;

/* Fills the defaults: lr 1e-3, min_lr_ratio 0.1, warmup 0 (set by the CLI to
 * 5% of the steps), cosine, weight decay 0.1, betas 0.9 / 0.95, eps 1e-8,
 * clip 1.0, context 256, batch 8, eval_batches 8, seed 1337. */
void lm_train_options_default(lm_train_options *o);

/* What one step reports. val_loss < 0: not evaluated this step. */
typedef struct lm_train_step_info {
    int64_t step, max_steps;
    double loss, val_loss, lr, grad_norm, tokens_per_s, mfu, elapsed_s;
} lm_train_step_info;

/* Runs training to max_steps (or the time budget, or a signal), writing
 * checkpoints, the log, OUT.loss.csv and OUT.loss.svg, and the model.
 * Returns LM_OK also when stopped early by time or signal (the model and a
 * checkpoint are written); *stopped_early says which. */
lm_status lm_train_run(const lm_train_options *o, int *stopped_early, lm_error *err);

#ifdef __cplusplus
}
#endif
#endif
