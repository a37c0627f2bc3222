#include "llmos/generate.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

lm_status lm_generate(const lm_model *m, const char *prompt, size_t prompt_len, const lm_generate_params *params,
                      lm_token_callback callback, void *user, lm_generate_stats *stats, lm_error *err) {
    const lm_model_config *cfg = lm_model_get_config(m);
    const lm_tokenizer *tok = lm_model_get_tokenizer(m);
    lm_generate_stats local = {0};
    if (!stats) stats = &local;
    *stats = local;
    if (params->n_predict < 0) return lm_error_set(err, LM_ERR_ARG, "number of tokens to predict must be >= 0");

    /* The prompt is the user's text: control-token look-alikes in it stay text. */
    int32_t *tokens = NULL;
    size_t n_prompt = 0;
    lm_status st = lm_tokenizer_encode(tok, prompt, prompt_len, params->add_bos != 0 ? LM_ENCODE_ADD_SPECIAL : 0, &tokens,
                                       &n_prompt, err);
    if (st) return st;
    int32_t bos = lm_tokenizer_bos(tok);
    if (params->add_bos == 1 && bos >= 0 && (n_prompt == 0 || tokens[0] != bos)) {
        int32_t *p = realloc(tokens, (n_prompt + 1) * sizeof *p);
        if (!p) {
            free(tokens);
            return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
        }
        tokens = p;
        memmove(tokens + 1, tokens, n_prompt * sizeof *tokens);
        tokens[0] = bos;
        n_prompt++;
    }
    if (n_prompt == 0) {
        free(tokens);
        return lm_error_set(err, LM_ERR_ARG, "the prompt is empty and the model has no BOS token to start from");
    }
    int64_t n_ctx = params->n_ctx;
    if (n_ctx == 0) {
        n_ctx = (int64_t)n_prompt + params->n_predict;
        if (n_ctx > cfg->context_length) n_ctx = cfg->context_length;
    }
    if ((int64_t)n_prompt > n_ctx) {
        free(tokens);
        return lm_error_set(err, LM_ERR_LIMIT, "the prompt is %zu tokens, longer than the context (%lld)", n_prompt,
                            (long long)n_ctx);
    }
    /* history holds prompt + generated tokens for the repetition penalty. */
    int32_t *history = realloc(tokens, (size_t)n_ctx * sizeof *history);
    if (!history) {
        free(tokens);
        return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    }
    lm_context *ctx = NULL;
    lm_sampler *sampler = NULL;
    lm_detokenizer *detok = NULL;
    char *piece = NULL;
    if ((st = lm_context_init_kv(m, n_ctx, params->n_threads, params->kv_type, &ctx, err))) goto done;
    if ((st = lm_sampler_init(&params->sampling, (int32_t)cfg->n_vocab, &sampler, err))) goto done;

    stats->n_prompt = (int64_t)n_prompt;
    const float *logits = NULL;
    double t0 = now_seconds();
    /* The prompt in one batched pass (prefill). */
    if ((st = lm_context_forward_batch(ctx, history, (int64_t)n_prompt, 0, NULL, &logits, err))) goto done;
    double t1 = now_seconds();
    stats->prompt_seconds = t1 - t0;

    int64_t pos = (int64_t)n_prompt;
    /* The prompt goes through the decoder too (output dropped) so the first
     * generated piece is decoded in context (leading space, split characters). */
    if ((st = lm_detokenizer_init(tok, 0, &detok, err))) goto done;
    size_t piece_cap = lm_detokenizer_max_output(detok);
    if (!(piece = malloc(piece_cap))) {
        st = lm_error_set(err, LM_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n_prompt; i++) lm_detokenizer_push(detok, history[i], piece, piece_cap);
    lm_detokenizer_flush(detok, piece, piece_cap);
    for (;;) {
        if (stats->n_generated >= params->n_predict) {
            stats->stop_reason = 0;
            break;
        }
        if (pos >= n_ctx) {
            stats->stop_reason = 2;
            break;
        }
        int32_t next = lm_sampler_sample(sampler, logits, history, (size_t)pos);
        if (lm_tokenizer_is_eog(tok, next)) {
            stats->stop_reason = 1;
            break;
        }
        history[pos] = next;
        stats->n_generated++;
        int64_t n = lm_detokenizer_push(detok, next, piece, piece_cap);
        if (n < 0) n = 0;
        if (callback && callback(user, next, piece, (size_t)n)) {
            stats->stop_reason = 3;
            break;
        }
        if (stats->n_generated < params->n_predict && pos + 1 < n_ctx) {
            if ((st = lm_context_forward(ctx, next, pos, &logits, err))) goto done;
        }
        pos++;
    }
    /* A character left incomplete at the end goes out as the bytes it has. */
    int64_t rest = lm_detokenizer_flush(detok, piece, piece_cap);
    if (rest > 0 && callback) callback(user, -1, piece, (size_t)rest);
    stats->generate_seconds = now_seconds() - t1;
done:
    lm_detokenizer_free(detok);
    free(piece);
    lm_sampler_free(sampler);
    lm_context_free(ctx);
    free(history);
    return st;
}
