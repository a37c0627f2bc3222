#include "llmos/perplexity.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* log-softmax normaliser: log(sum(exp(x))) */
static double log_sum_exp(const float *x, int64_t n) {
    float max = x[0];
    for (int64_t i = 1; i < n; i++) max = x[i] > max ? x[i] : max;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += exp((double)x[i] - max);
    return max + log(sum);
}

static int64_t argmax(const float *x, int64_t n) {
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++) {
        if (x[i] > x[best]) best = i;
    }
    return best;
}

/* KL(p || q) for logits a (p) and b (q). */
static double kl_divergence(const float *a, const float *b, int64_t n) {
    double la = log_sum_exp(a, n), lb = log_sum_exp(b, n), kl = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double lpa = a[i] - la, lpb = b[i] - lb;
        kl += exp(lpa) * (lpa - lpb);
    }
    return kl > 0 ? kl : 0.0;
}

lm_status lm_perplexity(const lm_model *m, const char *text, size_t len, const lm_perplexity_params *params,
                        lm_perplexity_result *r, lm_error *err) {
    memset(r, 0, sizeof *r);
    const lm_model_config *cfg = lm_model_get_config(m);
    const lm_tokenizer *tok = lm_model_get_tokenizer(m);
    int64_t n_ctx = params->n_ctx > 0 ? params->n_ctx : 512;
    if (n_ctx > cfg->context_length) n_ctx = cfg->context_length;
    if (n_ctx < 2) return lm_error_set(err, LM_ERR_ARG, "the context must hold at least 2 tokens");
    if (params->kl_base && lm_model_get_config(params->kl_base)->n_vocab != cfg->n_vocab) {
        return lm_error_set(err, LM_ERR_ARG, "the base model's vocabulary (%lld tokens) differs from the model's (%lld)",
                            (long long)lm_model_get_config(params->kl_base)->n_vocab, (long long)cfg->n_vocab);
    }
    int32_t *ids;
    size_t n_ids;
    lm_status st = lm_tokenizer_encode(tok, text, len, 0, &ids, &n_ids, err);
    if (st) return st;
    int32_t bos = lm_tokenizer_bos(tok);
    /* Tokens per chunk after the BOS (without one, the first token is only context). */
    int64_t per_chunk = bos >= 0 ? n_ctx - 1 : n_ctx;
    int64_t n_chunks = n_ids == 0 ? 0 : ((int64_t)n_ids + per_chunk - 1) / per_chunk;
    if (params->max_chunks > 0 && n_chunks > params->max_chunks) n_chunks = params->max_chunks;
    if (n_chunks == 0) {
        free(ids);
        return lm_error_set(err, LM_ERR_ARG, "the text has no tokens to score");
    }
    lm_context *ctx = NULL, *base_ctx = NULL;
    float *saved = NULL;
    int64_t nv = cfg->n_vocab;
    if ((st = lm_context_init(m, n_ctx, params->n_threads, &ctx, err))) goto done;
    if (params->kl_base) {
        if ((st = lm_context_init(params->kl_base, n_ctx, params->n_threads, &base_ctx, err))) goto done;
        if (!(saved = malloc((size_t)nv * sizeof *saved))) {
            st = lm_error_set(err, LM_ERR_NOMEM, "out of memory");
            goto done;
        }
    }
    double nll = 0.0, kl = 0.0;
    int64_t agree = 0, scored = 0, scored_tokens_end = 0;
    for (int64_t c = 0; c < n_chunks; c++) {
        int64_t start = c * per_chunk, end = start + per_chunk < (int64_t)n_ids ? start + per_chunk : (int64_t)n_ids;
        int64_t pos = 0;
        int32_t prev = bos;
        int64_t first = start;
        if (bos < 0) { /* the first token has no prediction to score */
            prev = ids[start];
            first = start + 1;
        }
        for (int64_t i = first; i <= end; i++, pos++) {
            const float *logits, *base_logits;
            if ((st = lm_context_forward(ctx, prev, pos, &logits, err))) goto done;
            if (i == end) break;
            nll += log_sum_exp(logits, nv) - logits[ids[i]];
            if (base_ctx) {
                memcpy(saved, logits, (size_t)nv * sizeof *saved);
                if ((st = lm_context_forward(base_ctx, prev, pos, &base_logits, err))) goto done;
                kl += kl_divergence(base_logits, saved, nv);
                agree += argmax(base_logits, nv) == argmax(saved, nv);
            }
            scored++;
            prev = ids[i];
        }
        scored_tokens_end = end;
        if (params->progress) params->progress(params->progress_user, "chunks", c + 1, n_chunks);
    }
    /* Bytes covered: the decoded length of the scored tokens. */
    uint64_t bytes = 0;
    char *piece = malloc(lm_tokenizer_max_piece_len(tok));
    for (int64_t i = 0; piece && i < scored_tokens_end; i++) {
        int64_t k = lm_tokenizer_decode_token(tok, ids[i], 0, piece, lm_tokenizer_max_piece_len(tok));
        if (k > 0) bytes += (uint64_t)k;
    }
    free(piece);
    r->n_chunks = n_chunks;
    r->n_scored = scored;
    r->n_bytes = bytes;
    r->loss = scored ? nll / (double)scored : 0.0;
    r->perplexity = exp(r->loss);
    r->bits_per_byte = bytes ? nll / log(2.0) / (double)bytes : 0.0;
    if (base_ctx) {
        r->has_kl = 1;
        r->kl_mean = scored ? kl / (double)scored : 0.0;
        r->top1_agreement = scored ? (double)agree / (double)scored : 0.0;
    }
done:
    free(saved);
    lm_context_free(ctx);
    lm_context_free(base_ctx);
    free(ids);
    return st;
}
