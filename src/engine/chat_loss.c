/* The assistant-token loss of conversations (llmos/perplexity.h). */
#include "llmos/perplexity.h"
#include "llmos/sft.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { CHUNK = 64 }; /* tokens per forward pass: bounds the logits buffer to CHUNK x n_vocab */

/* -log softmax(logits)[target] */
static double nll(const float *logits, int64_t V, int32_t target) {
    float max = logits[0];
    for (int64_t j = 1; j < V; j++) max = logits[j] > max ? logits[j] : max;
    double sum = 0;
    for (int64_t j = 0; j < V; j++) sum += exp((double)(logits[j] - max));
    return log(sum) - (double)(logits[target] - max);
}

lm_status lm_chat_loss(const lm_model *m, const lm_chat_template *tpl, const lm_conversation_set *set, int64_t n_ctx,
                       int n_threads, lm_chat_loss_result *r, lm_error *err) {
    memset(r, 0, sizeof *r);
    const lm_model_config *cfg = lm_model_get_config(m);
    const lm_tokenizer *tok = lm_model_get_tokenizer(m);
    const int64_t V = cfg->n_vocab;
    if (n_ctx <= 0 || n_ctx > cfg->context_length) n_ctx = cfg->context_length;
    lm_context *ctx = NULL;
    lm_status st = lm_context_init(m, n_ctx, n_threads, &ctx, err);
    if (st) return st;
    float *logits = malloc((size_t)CHUNK * (size_t)V * sizeof *logits);
    if (!logits) {
        st = lm_error_set(err, LM_ERR_NOMEM, "out of memory");
        goto done;
    }
    double total = 0;
    for (int64_t c = 0; c < set->n && !st; c++) {
        const lm_conversation *conv = &set->items[c];
        lm_sft_example ex = {0};
        lm_error e2 = {0};
        lm_chat_message *msgs;
        if ((st = lm_conversation_messages(conv, &msgs, err))) break;
        lm_status ts = lm_sft_tokenize_tools(tok, tpl, msgs, (size_t)conv->n_messages, conv->tools_json, &ex, &e2);
        free(msgs);
        if (ts) {
            r->n_skipped++;
            continue;
        }
        int64_t n = ex.n < n_ctx ? ex.n : n_ctx, scored = 0;
        r->n_cut += ex.n > n_ctx;
        for (int64_t i = 1; i < n; i++) scored += ex.train[i] != 0;
        if (scored == 0) {
            r->n_skipped++;
            lm_sft_example_free(&ex);
            continue;
        }
        /* the logits at position i predict token i + 1 */
        for (int64_t k = 0; k + 1 < n && !st; k += CHUNK) {
            int64_t nb = n - 1 - k < CHUNK ? n - 1 - k : CHUNK;
            st = lm_context_forward_batch(ctx, ex.tokens + k, nb, k, logits, NULL, err);
            for (int64_t i = 0; !st && i < nb; i++) {
                if (ex.train[k + i + 1]) total += nll(logits + i * V, V, ex.tokens[k + i + 1]);
            }
        }
        r->n_scored += scored;
        r->n_conversations++;
        lm_sft_example_free(&ex);
    }
    r->loss = r->n_scored ? total / (double)r->n_scored : NAN;
done:
    free(logits);
    lm_context_free(ctx);
    return st;
}
