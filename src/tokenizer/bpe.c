/* Byte-level BPE (tokenizer.ggml.model = "gpt2"), as llama.cpp's
 * llm_tokenizer_bpe does it: pre-tokenize with the vocabulary's expressions,
 * then in each pre-token start from one symbol per byte (each byte's mapped
 * character is a token) and repeatedly apply the merge of lowest rank (ties:
 * leftmost). With ignore_merges (Llama 3), a pre-token that is itself a token
 * is emitted whole. Repeated pre-tokens are encoded once per call (a cache). */
#include "tokenizer_internal.h"

#include "../base/hash.h"
#include "unicode.h"

#include <stdlib.h>
#include <string.h>

#define CACHE_MAX_WORD 64         /* longer pre-tokens are rare; not worth caching */
#define CACHE_MAX_ENTRIES (1 << 18)

typedef struct bpe_state {
    const lm_tokenizer *tok;
    token_vec *out;
    lm_error *err;
    symbol *syms;
    size_t syms_cap;
    bigram_heap queue;
    char *mapped; /* byte-level text of one pre-token (ignore_merges) */
    size_t mapped_cap;
    /* cache: pre-token bytes (pointing into the caller's text) -> tokens */
    lm_strmap cache;
    int cache_ok;
    token_vec cache_tokens;
    uint32_t *cache_start; /* (entries): start in cache_tokens; count follows */
    uint32_t *cache_count;
    size_t cache_n, cache_cap;
} bpe_state;

static const merge_slot *find_merge(const lm_tokenizer *tok, int32_t a, int32_t b) {
    uint64_t key = lm_pair_key(a, b);
    size_t j = (size_t)lm_mix64(key) & (tok->merge_cap - 1);
    while (tok->merges[j].key) {
        if (tok->merges[j].key == key) return &tok->merges[j];
        j = (j + 1) & (tok->merge_cap - 1);
    }
    return NULL;
}

static int queue_pair(bpe_state *s, int64_t left, int64_t right) {
    if (left < 0 || right < 0) return 0;
    const merge_slot *m = find_merge(s->tok, s->syms[left].id, s->syms[right].id);
    if (!m) return 0;
    uint64_t check = ((uint64_t)(uint32_t)s->syms[left].id << 32) | (uint32_t)s->syms[right].id;
    bigram b = {-(double)m->rank, left, check};
    return bigram_heap_push(&s->queue, b);
}

static lm_status fail_oom(bpe_state *s) { return lm_error_set(s->err, LM_ERR_NOMEM, "out of memory"); }

/* Appends the tokens of one pre-token. */
static lm_status encode_word(bpe_state *s, const char *word, size_t len) {
    const lm_tokenizer *tok = s->tok;
    if (tok->ignore_merges) {
        if (2 * len > s->mapped_cap) {
            char *p = realloc(s->mapped, 2 * len);
            if (!p) return fail_oom(s);
            s->mapped = p;
            s->mapped_cap = 2 * len;
        }
        size_t n = lm_bytes_to_unicode_text((const uint8_t *)word, len, s->mapped);
        int32_t id = lm_tok_find(tok, s->mapped, n);
        if (id >= 0) return token_vec_push(s->out, id) < 0 ? fail_oom(s) : LM_OK;
    }
    if (len > s->syms_cap) {
        symbol *p = realloc(s->syms, len * sizeof *p);
        if (!p) return fail_oom(s);
        s->syms = p;
        s->syms_cap = len;
    }
    for (size_t i = 0; i < len; i++) {
        int32_t id = tok->byte_to_id[(uint8_t)word[i]];
        if (id < 0) id = tok->unk;
        if (id < 0) {
            return lm_error_set(s->err, LM_ERR_FORMAT, "byte 0x%02x has no token in this vocabulary", (uint8_t)word[i]);
        }
        s->syms[i] = (symbol){i, 1, id, (int64_t)i - 1, i + 1 < len ? (int64_t)i + 1 : -1};
    }
    s->queue.n = 0;
    for (size_t i = 1; i < len; i++) {
        if (queue_pair(s, (int64_t)i - 1, (int64_t)i) < 0) return fail_oom(s);
    }
    while (s->queue.n > 0) {
        bigram b = bigram_heap_pop(&s->queue);
        symbol *left = &s->syms[b.left];
        if (left->len == 0 || left->next < 0) continue;
        symbol *right = &s->syms[left->next];
        uint64_t now = ((uint64_t)(uint32_t)left->id << 32) | (uint32_t)right->id;
        if (now != b.check) continue; /* stale */
        left->id = find_merge(tok, left->id, right->id)->result;
        left->len += right->len;
        right->len = 0;
        left->next = right->next;
        if (right->next >= 0) s->syms[right->next].prev = b.left;
        if (queue_pair(s, left->prev, b.left) < 0 || queue_pair(s, b.left, left->next) < 0) return fail_oom(s);
    }
    for (int64_t i = 0; i >= 0; i = s->syms[i].next) {
        if (token_vec_push(s->out, s->syms[i].id) < 0) return fail_oom(s);
    }
    return LM_OK;
}

static int cache_add(bpe_state *s, const char *word, size_t len, size_t first) {
    if (s->cache_n == s->cache_cap) {
        size_t cap = s->cache_cap ? s->cache_cap * 2 : 1024;
        uint32_t *a = realloc(s->cache_start, cap * sizeof *a);
        if (!a) return -1;
        s->cache_start = a;
        uint32_t *b = realloc(s->cache_count, cap * sizeof *b);
        if (!b) return -1;
        s->cache_count = b;
        s->cache_cap = cap;
    }
    size_t count = s->out->n - first;
    if (s->cache_tokens.n + count > UINT32_MAX) return 0;
    s->cache_start[s->cache_n] = (uint32_t)s->cache_tokens.n;
    s->cache_count[s->cache_n] = (uint32_t)count;
    for (size_t i = first; i < s->out->n; i++) {
        if (token_vec_push(&s->cache_tokens, s->out->v[i]) < 0) return -1;
    }
    if (lm_strmap_put(&s->cache, word, len, (int32_t)s->cache_n) < 0) return -1;
    s->cache_n++;
    return 0;
}

static lm_status on_piece(void *user, const char *word, size_t len) {
    bpe_state *s = user;
    int cacheable = s->cache_ok && len <= CACHE_MAX_WORD;
    if (cacheable) {
        int32_t hit = lm_strmap_get(&s->cache, word, len);
        if (hit >= 0) {
            for (uint32_t i = 0; i < s->cache_count[hit]; i++) {
                if (token_vec_push(s->out, s->cache_tokens.v[s->cache_start[hit] + i]) < 0) return fail_oom(s);
            }
            return LM_OK;
        }
    }
    size_t first = s->out->n;
    lm_status st = encode_word(s, word, len);
    if (st) return st;
    if (cacheable && s->cache_n < CACHE_MAX_ENTRIES && cache_add(s, word, len, first) < 0) return fail_oom(s);
    return LM_OK;
}

lm_status lm_bpe_encode(const lm_tokenizer *tok, const char *text, size_t len, token_vec *out, lm_error *err) {
    if (len == 0) return LM_OK;
    bpe_state s = {0};
    s.tok = tok;
    s.out = out;
    s.err = err;
    /* Texts under a few kilobytes repeat too few pre-tokens to pay for a cache. */
    s.cache_ok = len > 4096 && lm_strmap_init(&s.cache, 4096) == 0;
    lm_status st = lm_pretok_split(tok->pretok, text, len, on_piece, &s, err);
    free(s.syms);
    free(s.queue.v);
    free(s.mapped);
    if (s.cache_ok) lm_strmap_free(&s.cache);
    free(s.cache_tokens.v);
    free(s.cache_start);
    free(s.cache_count);
    return st;
}
