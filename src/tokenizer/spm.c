/* SentencePiece-style BPE, as llama.cpp's llm_tokenizer_spm does it:
 *   1. optionally prepend the dummy-prefix space, replace ' ' by U+2581 ("▁");
 *   2. split into UTF-8 characters (symbols);
 *   3. repeatedly merge the adjacent pair whose concatenation is a token with
 *      the highest score (ties: leftmost);
 *   4. symbols that are not tokens fall back to <0xNN> byte tokens, else unk.
 * Merged symbols are always tokens, so step 4 only meets single characters.
 *
 * One deliberate difference: a literal U+2581 in the input would become a
 * space on decoding, so when the vocabulary has byte tokens it is encoded as
 * <0xE2><0x96><0x81>, which decode to exactly those bytes. */
#include "tokenizer_internal.h"

#include "../base/bytes.h"
#include "../base/checked.h"
#include "unicode.h"

#include <stdlib.h>
#include <string.h>

typedef struct encoder {
    const lm_tokenizer *tok;
    const char *text;
    symbol *syms;
    bigram_heap queue;
} encoder;

/* Queues (left, right) if their concatenation is a token; check = its length. */
static int try_add_bigram(encoder *e, int64_t left, int64_t right) {
    if (left < 0 || right < 0) return 0;
    size_t len = e->syms[left].len + e->syms[right].len;
    int32_t id = lm_tok_find(e->tok, e->text + e->syms[left].start, len);
    if (id < 0) return 0;
    bigram b = {e->tok->scores[id], left, len};
    return bigram_heap_push(&e->queue, b);
}

static lm_status encode_segment(const lm_tokenizer *tok, const char *text, size_t len, int prefix_space, token_vec *out,
                                lm_error *err) {
    if (len == 0 && !prefix_space) return LM_OK;
    size_t norm_cap;
    if (lm_mul_overflow_size(len + 1, 3, &norm_cap)) return lm_error_set(err, LM_ERR_LIMIT, "text too long");
    char *norm = malloc(norm_cap);
    symbol *syms = malloc((len + 1) * sizeof *syms);
    encoder e = {tok, norm, syms, {0}};
    lm_status st = LM_OK;
    if (!norm || !syms) goto oom;
    size_t n_norm = 0;
    if (prefix_space) {
        memcpy(norm, "\xe2\x96\x81", 3);
        n_norm = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(norm + n_norm, "\xe2\x96\x81", 3);
            n_norm += 3;
        } else {
            norm[n_norm++] = text[i];
        }
    }
    int64_t n_syms = 0;
    for (size_t pos = 0; pos < n_norm;) {
        size_t cl = lm_utf8_len((const uint8_t *)norm + pos, n_norm - pos);
        syms[n_syms] = (symbol){pos, cl, -1, n_syms - 1, n_syms + 1};
        n_syms++;
        pos += cl;
    }
    if (n_syms == 0) goto done;
    syms[n_syms - 1].next = -1;
    for (int64_t i = 1; i < n_syms; i++) {
        if (try_add_bigram(&e, i - 1, i) < 0) goto oom;
    }
    while (e.queue.n > 0) {
        bigram b = bigram_heap_pop(&e.queue);
        symbol *left = &syms[b.left];
        if (left->len == 0 || left->next < 0) continue;
        symbol *right = &syms[left->next];
        if (left->len + right->len != b.check) continue; /* stale: one side changed */
        left->len += right->len;
        right->len = 0;
        left->next = right->next;
        if (right->next >= 0) syms[right->next].prev = b.left;
        if (try_add_bigram(&e, left->prev, b.left) < 0 || try_add_bigram(&e, b.left, left->next) < 0) goto oom;
    }
    for (int64_t i = 0; i >= 0; i = syms[i].next) {
        const symbol *s = &syms[i];
        int32_t id = lm_tok_find(tok, norm + s->start, s->len);
        if (id >= 0) {
            if (token_vec_push(out, id) < 0) goto oom;
            continue;
        }
        for (size_t k = 0; k < s->len; k++) {
            int32_t b = tok->byte_to_id[(uint8_t)norm[s->start + k]];
            if (b < 0) b = tok->unk;
            if (b < 0) {
                st = lm_error_set(err, LM_ERR_FORMAT, "text has a character the vocabulary cannot represent (no byte tokens, no unknown token)");
                goto done;
            }
            if (token_vec_push(out, b) < 0) goto oom;
        }
    }
    goto done;
oom:
    st = lm_error_set(err, LM_ERR_NOMEM, "out of memory");
done:
    free(norm);
    free(syms);
    free(e.queue.v);
    return st;
}

lm_status lm_spm_encode(const lm_tokenizer *tok, const char *text, size_t len, int prefix_space, token_vec *out,
                        lm_error *err) {
    static const char mark[3] = {'\xe2', '\x96', '\x81'};
    int32_t b0 = tok->byte_to_id[0xe2], b1 = tok->byte_to_id[0x96], b2 = tok->byte_to_id[0x81];
    if (len == 0) return LM_OK;
    if (b0 < 0 || b1 < 0 || b2 < 0) return encode_segment(tok, text, len, prefix_space, out, err);
    for (;;) {
        const char *hit = lm_memmem(text, len, mark, 3);
        size_t seg = hit ? (size_t)(hit - text) : len;
        lm_status st = encode_segment(tok, text, seg, prefix_space && seg > 0, out, err);
        if (st || !hit) return st;
        if (token_vec_push(out, b0) < 0 || token_vec_push(out, b1) < 0 || token_vec_push(out, b2) < 0) {
            return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
        }
        prefix_space = 0;
        text += seg + 3;
        len -= seg + 3;
        if (len == 0) return LM_OK;
    }
}
