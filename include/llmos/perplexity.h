/* Perplexity of a model on a text, optionally against a base model's logits. */
#ifndef LLMOS_PERPLEXITY_H
#define LLMOS_PERPLEXITY_H

#include "llmos/chat_template.h"
#include "llmos/conversation.h"
#include "llmos/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lm_perplexity_params {
    int64_t n_ctx;          /* tokens per chunk, BOS included (0: 512, at most the model's context) */
    int64_t max_chunks;     /* 0: the whole text */
    int n_threads;
    const lm_model *kl_base; /* NULL, or a model with the same vocabulary to compare with */
    lm_progress_fn progress; /* ("chunks", done, total) */
    void *progress_user;
    lm_kv_type kv_type;      /* the model's KV cache (0: f32, exact); the base's is always f32 */
} lm_perplexity_params;

typedef struct lm_perplexity_result {
    int64_t n_chunks;
    int64_t n_scored;     /* tokens whose probability was measured */
    uint64_t n_bytes;     /* bytes of text those tokens cover */
    double loss;          /* mean negative log-likelihood, nats per token */
    double perplexity;    /* exp(loss) */
    double bits_per_byte; /* total NLL / ln 2 / bytes */
    int has_kl;
    double kl_mean;       /* mean KL(base || model), nats per token */
    double top1_agreement; /* fraction of positions where both models' argmax agree */
} lm_perplexity_result;

/* The text is tokenised as untrusted text (no BOS) and cut into chunks of
 * n_ctx - 1 tokens; each chunk is evaluated after a BOS (when the vocabulary
 * has one) and every token of it is scored. */
lm_status lm_perplexity(const lm_model *m, const char *text, size_t len, const lm_perplexity_params *params,
                        lm_perplexity_result *result, lm_error *err);

/* The loss on the assistant's tokens of conversations (what `llmos sft`
 * trains and holds out): each is rendered with tpl and tokenized as for
 * fine-tuning (lm_sft_tokenize), cut to n_ctx tokens, run from position 0,
 * and every token the fine-tuning mask trains is scored. */
typedef struct lm_chat_loss_result {
    int64_t n_conversations;
    int64_t n_cut;        /* conversations longer than n_ctx, scored up to it */
    int64_t n_skipped;    /* conversations that could not be rendered or had nothing to score */
    int64_t n_scored;     /* tokens scored */
    double loss;          /* mean negative log-likelihood, nats per token */
} lm_chat_loss_result;

lm_status lm_chat_loss(const lm_model *m, const lm_chat_template *tpl, const lm_conversation_set *set, int64_t n_ctx,
                       int n_threads, lm_chat_loss_result *result, lm_error *err);

#ifdef __cplusplus
}
#endif
#endif
