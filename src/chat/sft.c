/* Conversations to training tokens with a loss mask (llmos/sft.h). */
#include "llmos/sft.h"

#include "../base/checked.h"

#include <stdlib.h>
#include <string.h>

/* Appends n tokens with one train flag to the example, growing it. */
static lm_status append(lm_sft_example *e, int64_t *cap, const int32_t *toks, size_t n, uint8_t flag, lm_error *err) {
    if (e->n + (int64_t)n > *cap) {
        int64_t want = (*cap ? *cap * 2 : 256);
        while (want < e->n + (int64_t)n) want *= 2;
        int32_t *t = realloc(e->tokens, (size_t)want * sizeof *t);
        if (t) e->tokens = t;
        uint8_t *f = t ? realloc(e->train, (size_t)want) : NULL;
        if (!t || !f) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
        e->train = f;
        *cap = want;
    }
    memcpy(e->tokens + e->n, toks, n * sizeof *toks);
    memset(e->train + e->n, flag, n);
    e->n += (int64_t)n;
    return LM_OK;
}

/* The text of a special token id, or "" (for bos/eos strings). */
static char *token_string(const lm_tokenizer *tok, int32_t id) {
    if (id < 0) return calloc(1, 1);
    lm_str s = lm_tokenizer_token_text(tok, id);
    char *out = malloc(s.len + 1);
    if (out) {
        memcpy(out, s.ptr, s.len);
        out[s.len] = 0;
    }
    return out;
}

/* Both entry points: render (with or without the generation prompt), then
 * tokenize segment by segment with the train flags of lm_sft_tokenize. */
static lm_status tokenize_conversation(const lm_tokenizer *tok, const lm_chat_template *tpl, const lm_chat_message *msgs,
                                       size_t n, int add_generation_prompt, lm_sft_example *out, lm_error *err) {
    memset(out, 0, sizeof *out);
    char *bos = token_string(tok, lm_tokenizer_bos(tok)), *eos = token_string(tok, lm_tokenizer_eos(tok));
    char *text = NULL;
    size_t len = 0, n_seg = 0;
    lm_chat_segment *seg = NULL;
    lm_status st = LM_OK;
    if (!bos || !eos) st = lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    lm_chat_render_options ro = {add_generation_prompt != 0, bos, eos, NULL, 0};
    if (!st) st = lm_chat_template_render(tpl, msgs, n, &ro, &text, &len, &seg, &n_seg, err);
    int64_t cap = 0;
    int closing = 0; /* after an assistant content: train the template text up to a control token */
    for (size_t i = 0; i < n_seg && !st; i++) {
        const lm_chat_segment *s = &seg[i];
        int is_content = s->kind == LM_CHAT_SEG_CONTENT;
        int32_t *toks = NULL;
        size_t nt = 0;
        st = lm_tokenizer_encode(tok, text + s->offset, s->length, is_content ? 0 : LM_ENCODE_PARSE_SPECIAL, &toks, &nt, err);
        if (st) break;
        if (is_content) {
            int assistant = s->message >= 0 && (size_t)s->message < n && strcmp(msgs[s->message].role, "assistant") == 0;
            st = append(out, &cap, toks, nt, (uint8_t)assistant, err);
            closing = assistant;
        } else if (closing) {
            /* Train up to and including the first control token. */
            size_t k = 0;
            while (k < nt && lm_tokenizer_token_type(tok, toks[k]) != LM_TOKEN_CONTROL) k++;
            size_t trained = k < nt ? k + 1 : nt;
            st = append(out, &cap, toks, trained, 1, err);
            if (!st) st = append(out, &cap, toks + trained, nt - trained, 0, err);
            closing = k >= nt; /* no end marker yet: keep going into the next template text */
        } else {
            st = append(out, &cap, toks, nt, 0, err);
        }
        free(toks);
    }
    free(text);
    free(seg);
    free(bos);
    free(eos);
    if (st) lm_sft_example_free(out);
    return st;
}

lm_status lm_sft_tokenize(const lm_tokenizer *tok, const lm_chat_template *tpl, const lm_chat_message *msgs, size_t n,
                          lm_sft_example *out, lm_error *err) {
    return tokenize_conversation(tok, tpl, msgs, n, 0, out, err);
}

lm_status lm_chat_tokenize(const lm_tokenizer *tok, const lm_chat_template *tpl, const lm_chat_message *msgs, size_t n,
                           int add_generation_prompt, int32_t **tokens, size_t *n_tokens, lm_error *err) {
    lm_sft_example e;
    lm_status st = tokenize_conversation(tok, tpl, msgs, n, add_generation_prompt, &e, err);
    if (st) return st;
    free(e.train);
    *tokens = e.tokens;
    *n_tokens = (size_t)e.n;
    return LM_OK;
}

void lm_sft_example_free(lm_sft_example *e) {
    free(e->tokens);
    free(e->train);
    memset(e, 0, sizeof *e);
}

lm_status lm_sft_pack(const lm_sft_example *ex, size_t n, int64_t T, int32_t pad_token, int32_t **inputs,
                      int32_t **targets, int64_t *n_rows, int64_t *truncated, lm_error *err) {
    *inputs = *targets = NULL;
    *n_rows = *truncated = 0;
    if (T < 1) return lm_error_set(err, LM_ERR_ARG, "context %lld must be positive", (long long)T);
    /* First pass: count rows. */
    int64_t rows = 0, used = T + 1;
    for (size_t i = 0; i < n; i++) {
        int64_t len = ex[i].n < T + 1 ? ex[i].n : T + 1;
        if (len == 0) continue;
        if (used + len > T + 1) rows++, used = 0;
        used += len;
    }
    size_t cells;
    if (lm_mul_overflow_size((size_t)rows, (size_t)T, &cells) || cells > ((size_t)1 << 40)) {
        return lm_error_set(err, LM_ERR_LIMIT, "%lld rows of %lld tokens are too many", (long long)rows, (long long)T);
    }
    int32_t *row = malloc((size_t)(T + 1) * sizeof *row);
    uint8_t *flag = malloc((size_t)(T + 1));
    int32_t *in = malloc((cells ? cells : 1) * sizeof *in), *tg = malloc((cells ? cells : 1) * sizeof *tg);
    if (!row || !flag || !in || !tg) {
        free(row), free(flag), free(in), free(tg);
        return lm_error_set(err, LM_ERR_NOMEM, "out of memory packing %lld rows", (long long)rows);
    }
    int64_t r = -1;
    used = T + 1;
    /* Emits the row being filled (padding its rest). */
#define FLUSH()                                                                  \
    do {                                                                         \
        if (r >= 0) {                                                            \
            for (int64_t k = used; k < T + 1; k++) row[k] = pad_token, flag[k] = 0; \
            for (int64_t t = 0; t < T; t++) {                                    \
                in[r * T + t] = row[t];                                          \
                tg[r * T + t] = flag[t + 1] ? row[t + 1] : -1;                   \
            }                                                                    \
        }                                                                        \
    } while (0)
    for (size_t i = 0; i < n; i++) {
        int64_t len = ex[i].n;
        if (len == 0) continue;
        if (len > T + 1) len = T + 1, (*truncated)++;
        if (used + len > T + 1) {
            FLUSH();
            r++, used = 0;
        }
        memcpy(row + used, ex[i].tokens, (size_t)len * sizeof *row);
        memcpy(flag + used, ex[i].train, (size_t)len);
        used += len;
    }
    FLUSH();
#undef FLUSH
    free(row);
    free(flag);
    *inputs = in, *targets = tg, *n_rows = rows;
    return LM_OK;
}
