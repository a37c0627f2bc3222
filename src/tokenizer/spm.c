/* SentencePiece-style BPE, as llama.cpp's llm_tokenizer_spm does it:
 *   1. prepend the dummy-prefix space, replace ' ' by U+2581 ("▁");
 *   2. split into UTF-8 characters (symbols);
 *   3. repeatedly merge the adjacent pair whose concatenation is a token with
 *      the highest score (ties: leftmost), using a heap of candidate pairs;
 *   4. symbols that are not tokens fall back to <0xNN> byte tokens, else unk.
 * Merged symbols are always tokens, so step 4 only meets single characters. */
#include "tokenizer_internal.h"

#include "../base/checked.h"

#include <stdlib.h>
#include <string.h>

typedef struct symbol {
    size_t start, len; /* byte range in the normalised text; len 0 = merged away */
    int64_t prev, next;
} symbol;

typedef struct bigram {
    float score;
    int64_t left;
    size_t len; /* combined length when queued; a mismatch means stale */
} bigram;

typedef struct heap {
    bigram *v;
    size_t n, cap;
} heap;

/* a before b: higher score, then smaller left index. */
static int bigram_before(const bigram *a, const bigram *b) {
    if (a->score != b->score) return a->score > b->score;
    return a->left < b->left;
}

static int heap_push(heap *h, bigram b) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        bigram *p = realloc(h->v, cap * sizeof *p);
        if (!p) return -1;
        h->v = p;
        h->cap = cap;
    }
    size_t i = h->n++;
    h->v[i] = b;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!bigram_before(&h->v[i], &h->v[parent])) break;
        bigram t = h->v[i];
        h->v[i] = h->v[parent];
        h->v[parent] = t;
        i = parent;
    }
    return 0;
}

static bigram heap_pop(heap *h) {
    bigram top = h->v[0];
    h->v[0] = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, best = i;
        if (l < h->n && bigram_before(&h->v[l], &h->v[best])) best = l;
        if (r < h->n && bigram_before(&h->v[r], &h->v[best])) best = r;
        if (best == i) break;
        bigram t = h->v[i];
        h->v[i] = h->v[best];
        h->v[best] = t;
        i = best;
    }
    return top;
}

/* Length of the UTF-8 sequence at s (n bytes left): a well-formed lead byte
 * with its continuation bytes, else 1, so invalid bytes never swallow the
 * characters after them. */
static size_t utf8_char_len(const uint8_t *s, size_t n) {
    uint8_t c = s[0];
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    if (len == 0 || len > n) return 1;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 1;
    }
    return len;
}

typedef struct encoder {
    const lm_tokenizer *tok;
    const char *text;
    symbol *syms;
    heap queue;
} encoder;

static int try_add_bigram(encoder *e, int64_t left, int64_t right) {
    if (left < 0 || right < 0) return 0;
    size_t len = e->syms[left].len + e->syms[right].len;
    int32_t id = lm_strmap_get(&e->tok->text_to_id, e->text + e->syms[left].start, len);
    if (id < 0) return 0;
    bigram b = {e->tok->scores[id], left, len};
    return heap_push(&e->queue, b);
}

typedef struct token_vec {
    int32_t *v;
    size_t n, cap;
} token_vec;

static int vec_push(token_vec *t, int32_t id) {
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        int32_t *p = realloc(t->v, cap * sizeof *p);
        if (!p) return -1;
        t->v = p;
        t->cap = cap;
    }
    t->v[t->n++] = id;
    return 0;
}

lm_status lm_spm_encode(const lm_tokenizer *tok, const char *text, size_t len, int32_t **out, size_t *n_out,
                        size_t *cap_out, lm_error *err) {
    token_vec result = {*out, *n_out, *cap_out};
    lm_status st = LM_OK;
    if (len == 0) return LM_OK;
    /* Normalise: optional dummy prefix, then ' ' -> U+2581 (3 bytes). */
    size_t norm_cap;
    if (lm_mul_overflow_size(len + 1, 3, &norm_cap)) return lm_error_set(err, LM_ERR_LIMIT, "text too long");
    char *norm = malloc(norm_cap);
    symbol *syms = malloc((len + 1) * sizeof *syms);
    encoder e = {tok, norm, syms, {0}};
    if (!norm || !syms) {
        st = lm_error_set(err, LM_ERR_NOMEM, "out of memory");
        goto done;
    }
    size_t n_norm = 0;
    if (tok->add_space_prefix) {
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
        size_t cl = utf8_char_len((const uint8_t *)norm + pos, n_norm - pos);
        syms[n_syms] = (symbol){pos, cl, n_syms - 1, n_syms + 1};
        n_syms++;
        pos += cl;
    }
    syms[n_syms - 1].next = -1;
    for (int64_t i = 1; i < n_syms; i++) {
        if (try_add_bigram(&e, i - 1, i) < 0) goto oom;
    }
    while (e.queue.n > 0) {
        bigram b = heap_pop(&e.queue);
        symbol *left = &syms[b.left];
        if (left->len == 0 || left->next < 0) continue;
        symbol *right = &syms[left->next];
        if (left->len + right->len != b.len) continue; /* stale: one side changed */
        left->len += right->len;
        right->len = 0;
        left->next = right->next;
        if (right->next >= 0) syms[right->next].prev = b.left;
        if (try_add_bigram(&e, left->prev, b.left) < 0 || try_add_bigram(&e, b.left, left->next) < 0) goto oom;
    }
    for (int64_t i = 0; i >= 0; i = syms[i].next) {
        const symbol *s = &syms[i];
        int32_t id = lm_strmap_get(&tok->text_to_id, norm + s->start, s->len);
        if (id >= 0) {
            if (vec_push(&result, id) < 0) goto oom;
            continue;
        }
        for (size_t k = 0; k < s->len; k++) {
            int32_t b = tok->byte_to_id[(uint8_t)norm[s->start + k]];
            if (b < 0) b = tok->unk;
            if (b < 0) {
                st = lm_error_set(err, LM_ERR_FORMAT,
                                  "text has a character the vocabulary cannot represent (no byte tokens, no unknown token)");
                goto done;
            }
            if (vec_push(&result, b) < 0) goto oom;
        }
    }
    goto done;
oom:
    st = lm_error_set(err, LM_ERR_NOMEM, "out of memory");
done:
    free(norm);
    free(syms);
    free(e.queue.v);
    *out = result.v;
    *n_out = result.n;
    *cap_out = result.cap;
    return st;
}

lm_status lm_tokenizer_encode(const lm_tokenizer *tok, const char *text, size_t len, int add_bos, int32_t **tokens,
                              size_t *n_tokens, lm_error *err) {
    token_vec v = {0};
    *tokens = NULL;
    *n_tokens = 0;
    if (add_bos && tok->bos >= 0 && vec_push(&v, tok->bos) < 0) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    lm_status st = lm_spm_encode(tok, text, len, &v.v, &v.n, &v.cap, err);
    if (st) {
        free(v.v);
        return st;
    }
    *tokens = v.v;
    *n_tokens = v.n;
    return LM_OK;
}

int64_t lm_tokenizer_decode_token(const lm_tokenizer *tok, int32_t id, int strip_leading_space, char *buf,
                                  size_t cap) {
    if (id < 0 || id >= tok->n_vocab) return -1;
    lm_str s = lm_tokenizer_token_text(tok, id);
    size_t n = 0;
    switch ((lm_token_type)tok->types[id]) {
    case LM_TOKEN_CONTROL:
    case LM_TOKEN_UNUSED:
        return 0;
    case LM_TOKEN_BYTE:
        if (cap < 1) return -1;
        for (int b = 0; b < 256; b++) {
            if (tok->byte_to_id[b] == id) {
                buf[0] = (char)b;
                return 1;
            }
        }
        return 0;
    case LM_TOKEN_UNKNOWN:
        /* llama.cpp prints U+2585 for the unknown token. */
        if (cap < 3) return -1;
        memcpy(buf, "\xe2\x96\x85", 3);
        return 3;
    default:
        break;
    }
    for (uint64_t i = 0; i < s.len; i++) {
        if (i + 2 < s.len && memcmp(s.ptr + i, "\xe2\x96\x81", 3) == 0) {
            if (!(strip_leading_space && n == 0 && i == 0)) {
                if (n >= cap) return -1;
                buf[n++] = ' ';
            }
            i += 2;
        } else {
            if (n >= cap) return -1;
            buf[n++] = s.ptr[i];
        }
    }
    return (int64_t)n;
}
