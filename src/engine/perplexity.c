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
    int64_t nv = cfg->n_vocab;
    if ((st = lm_context_init_kv(m, n_ctx, params->n_threads, params->kv_type, &ctx, err))) goto done;
    if (params->kl_base && (st = lm_context_init(params->kl_base, n_ctx, params->n_threads, &base_ctx, err))) goto done;
    double nll = 0.0, kl = 0.0;
    int64_t agree = 0, scored = 0;
    uint64_t bytes = 0;
    size_t piece_cap = lm_tokenizer_max_piece_len(tok);
    char *piece = malloc(piece_cap);
    /* One chunk: [BOS] + per_chunk tokens in, logits for every position out. */
    int32_t *in = malloc((size_t)(per_chunk + 1) * sizeof *in);
    /* Logits for one slice of SLICE positions at a time (not a whole chunk:
     * context x vocabulary floats can be gigabytes). */
    enum { SLICE = 64 };
    float *all = malloc((size_t)SLICE * (size_t)nv * sizeof *all);
    float *base_all = base_ctx ? malloc((size_t)SLICE * (size_t)nv * sizeof *base_all) : NULL;
    if (!in || !all || !piece || (base_ctx && !base_all)) {
        st = lm_error_set(err, LM_ERR_NOMEM, "out of memory");
        goto chunks_done;
    }
    for (int64_t c = 0; c < n_chunks; c++) {
        int64_t start = c * per_chunk, end = start + per_chunk < (int64_t)n_ids ? start + per_chunk : (int64_t)n_ids;
        /* Inputs: [BOS] ids[start .. end-2]; the prediction from input j scores
         * ids[first + j]. Without a BOS the first token is only context. */
        int64_t n_in = 0, first = bos >= 0 ? start : start + 1;
        if (bos >= 0) in[n_in++] = bos;
        for (int64_t i = start; i < end - 1; i++) in[n_in++] = ids[i];
        if (end - first <= 0) continue;
        for (int64_t s0 = 0; s0 < n_in; s0 += SLICE) {
            int64_t len = n_in - s0 < SLICE ? n_in - s0 : SLICE;
            if ((st = lm_context_forward_batch(ctx, in + s0, len, s0, all, NULL, err))) goto chunks_done;
            if (base_ctx && (st = lm_context_forward_batch(base_ctx, in + s0, len, s0, base_all, NULL, err))) goto chunks_done;
            for (int64_t j = 0; j < len; j++) {
                const float *lg = all + j * nv;
                nll += log_sum_exp(lg, nv) - lg[ids[first + s0 + j]];
                if (base_ctx) {
                    const float *bl = base_all + j * nv;
                    kl += kl_divergence(bl, lg, nv);
                    agree += argmax(bl, nv) == argmax(lg, nv);
                }
                scored++;
            }
        }
        /* Bytes of text the scored tokens cover. */
        for (int64_t i = first; i < end; i++) {
            int64_t k = lm_tokenizer_decode_token(tok, ids[i], 0, piece, piece_cap);
            if (k > 0) bytes += (uint64_t)k;
        }
        if (params->progress) params->progress(params->progress_user, "chunks", c + 1, n_chunks);
    }
chunks_done:
    free(piece);
    free(in);
    free(all);
    free(base_all);
    if (st) goto done;
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
    lm_context_free(ctx);
    lm_context_free(base_ctx);
    free(ids);
    return st;
}
