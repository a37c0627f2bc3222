#include "llmos/bpe_train.h"

#include "../base/bytes.h"
#include "../base/checked.h"
#include "../base/hash.h"
#include "../base/strmap.h"
#include "llmos/file.h"
#include "llmos/tokenizer.h"
#include "pretok.h"
#include "unicode.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- growable arrays and a chunked arena (pointers into it never move) ---- */

#define GROW(ptr, n, cap, fail)                                              \
    do {                                                                     \
        if ((n) == (cap)) {                                                  \
            size_t c_ = (cap) ? (cap) * 2 : 16;                              \
            void *p_ = realloc((ptr), c_ * sizeof *(ptr));                   \
            if (!p_) fail;                                                   \
            (ptr) = p_;                                                      \
            (cap) = c_;                                                      \
        }                                                                    \
    } while (0)

typedef struct arena_block {
    struct arena_block *next;
    size_t used, cap;
    char data[];
} arena_block;

static char *arena_alloc(arena_block **head, size_t n) {
    arena_block *b = *head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > (1u << 20) ? n : (1u << 20);
        arena_block *nb = malloc(sizeof *nb + cap);
        if (!nb) return NULL;
        nb->next = b;
        nb->used = 0;
        nb->cap = cap;
        *head = b = nb;
    }
    char *p = b->data + b->used;
    b->used += n;
    return p;
}

static void arena_free(arena_block *b) {
    while (b) {
        arena_block *next = b->next;
        free(b);
        b = next;
    }
}

/* ---- pairs: (left, right) token ids -> count, and the words holding them ---- */

typedef struct pair_info {
    int32_t a, b;
    int64_t count;
    int32_t *words; /* word ids; may repeat or be stale, checked on use */
    size_t n_words, cap_words;
    int64_t touched; /* last merge step that increased the count */
} pair_info;

typedef struct heap_entry {
    int64_t count;
    int32_t pair;
} heap_entry;

struct lm_bpe_trainer {
    lm_bpe_train_params params;
    char **specials;
    size_t *special_lens;
    lm_pretok *pretok;
    lm_error *err; /* of the add_text call in progress */

    /* distinct pre-tokens */
    arena_block *arena;
    lm_strmap word_ids;
    int64_t *word_count;
    const char **word_text;
    uint32_t *word_text_len;
    size_t n_words, cap_words;

    /* after train */
    int32_t *syms;      /* all words' symbols back to back */
    size_t *word_start; /* (n_words) */
    uint32_t *word_len; /* (n_words) current symbol count */
    int64_t *word_stamp;

    /* vocabulary: bytes of each token */
    char **tok_bytes;
    size_t *tok_len;
    int64_t n_tokens;
    int32_t (*merges)[2];
    int64_t n_merges;

    pair_info *pairs;
    size_t n_pairs, cap_pairs;
    uint64_t *pair_keys; /* open addressing: key = (a << 32 | b) + 1, 0 = empty */
    int32_t *pair_slots;
    size_t pair_cap;
    heap_entry *heap;
    size_t heap_n, heap_cap;
    int32_t *touched;
    size_t n_touched, cap_touched;
};

static void progress(const lm_bpe_trainer *t, const char *stage, int64_t done, int64_t total) {
    if (t->params.progress) t->params.progress(t->params.progress_user, stage, done, total);
}

lm_status lm_bpe_trainer_init(const lm_bpe_train_params *params, lm_bpe_trainer **out, lm_error *err) {
    *out = NULL;
    int64_t min_vocab = (int64_t)params->n_special + 256;
    if (params->vocab_size < min_vocab || params->vocab_size > LM_TOKENIZER_MAX_VOCAB) {
        return lm_error_set(err, LM_ERR_ARG, "vocabulary size %lld must be in %lld..%d (256 bytes + %zu special tokens at least)",
                            (long long)params->vocab_size, (long long)min_vocab, LM_TOKENIZER_MAX_VOCAB, params->n_special);
    }
    lm_bpe_trainer *t = calloc(1, sizeof *t);
    if (!t) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    t->params = *params;
    t->params.special_tokens = NULL; /* copied into t->specials */
    t->params.split_regex = NULL;    /* copied below; the trainer owns its copies */
    lm_status st = LM_OK;
    if (params->n_special) {
        t->specials = calloc(params->n_special, sizeof *t->specials);
        t->special_lens = calloc(params->n_special, sizeof *t->special_lens);
        if (!t->specials || !t->special_lens) st = lm_error_set(err, LM_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < params->n_special && !st; i++) {
            size_t len = strlen(params->special_tokens[i]);
            if (len == 0 || memchr(params->special_tokens[i], '\n', len)) {
                /* add_file cuts its chunks at newlines, which no special token may hold. */
                st = lm_error_set(err, LM_ERR_ARG, "special tokens must not be empty or contain a newline");
            } else if (!(t->specials[i] = strdup(params->special_tokens[i]))) {
                st = lm_error_set(err, LM_ERR_NOMEM, "out of memory");
            }
            t->special_lens[i] = len;
            for (size_t j = 0; j < i && !st; j++) {
                if (strcmp(t->specials[i], t->specials[j]) == 0) st = lm_error_set(err, LM_ERR_ARG, "special token '%s' given twice", t->specials[i]);
            }
        }
    }
    if (!st && params->split_regex && !(t->params.split_regex = strdup(params->split_regex))) {
        st = lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    }
    const char *re = params->split_regex ? params->split_regex : lm_pretok_gpt4_pattern;
    if (!st) st = lm_pretok_compile(&re, 1, &t->pretok, err);
    if (!st && lm_strmap_init(&t->word_ids, 1024) != 0) st = lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    if (st) {
        lm_bpe_trainer_free(t);
        return st;
    }
    *out = t;
    return LM_OK;
}

void lm_bpe_trainer_free(lm_bpe_trainer *t) {
    if (!t) return;
    for (size_t i = 0; i < t->params.n_special && t->specials; i++) free(t->specials[i]);
    free(t->specials);
    free(t->special_lens);
    free((char *)t->params.split_regex);
    lm_pretok_free(t->pretok);
    arena_free(t->arena);
    lm_strmap_free(&t->word_ids);
    free(t->word_count);
    free(t->word_text);
    free(t->word_text_len);
    free(t->syms);
    free(t->word_start);
    free(t->word_len);
    free(t->word_stamp);
    free(t->tok_bytes);
    free(t->tok_len);
    free(t->merges);
    for (size_t i = 0; i < t->n_pairs; i++) free(t->pairs[i].words);
    free(t->pairs);
    free(t->pair_keys);
    free(t->pair_slots);
    free(t->heap);
    free(t->touched);
    free(t);
}

/* ---- counting ---- */

static lm_status count_piece_(lm_bpe_trainer *t, const char *piece, size_t len);

static lm_status count_piece(void *user, const char *piece, size_t len) {
    lm_bpe_trainer *t = user;
    lm_status st = count_piece_(t, piece, len);
    return st ? lm_error_set(t->err, st, st == LM_ERR_LIMIT ? "too many distinct pre-tokens" : "out of memory") : LM_OK;
}

/* 0, or the failure's status. */
static lm_status count_piece_(lm_bpe_trainer *t, const char *piece, size_t len) {
    if (len > UINT32_MAX) return LM_ERR_LIMIT;
    int32_t id = lm_strmap_get(&t->word_ids, piece, len);
    if (id >= 0) {
        t->word_count[id]++;
        return LM_OK;
    }
    if (t->n_words >= INT32_MAX) return LM_ERR_LIMIT;
    size_t cap = t->cap_words;
    if (t->n_words == cap) {
        size_t nc = cap ? cap * 2 : 1024;
        int64_t *c = realloc(t->word_count, nc * sizeof *c);
        if (!c) return LM_ERR_NOMEM;
        t->word_count = c;
        const char **w = realloc(t->word_text, nc * sizeof *w);
        if (!w) return LM_ERR_NOMEM;
        t->word_text = w;
        uint32_t *l = realloc(t->word_text_len, nc * sizeof *l);
        if (!l) return LM_ERR_NOMEM;
        t->word_text_len = l;
        t->cap_words = nc;
    }
    char *copy = arena_alloc(&t->arena, len);
    if (!copy) return LM_ERR_NOMEM;
    memcpy(copy, piece, len);
    if (lm_strmap_put(&t->word_ids, copy, len, (int32_t)t->n_words) < 0) return LM_ERR_NOMEM;
    t->word_text[t->n_words] = copy;
    t->word_text_len[t->n_words] = (uint32_t)len;
    t->word_count[t->n_words] = 1;
    t->n_words++;
    return LM_OK;
}

/* Finds the earliest special token in text; returns its index or -1. */
static int64_t find_special(const lm_bpe_trainer *t, const char *text, size_t len, size_t *at) {
    int64_t best = -1;
    size_t best_at = len;
    for (size_t i = 0; i < t->params.n_special; i++) {
        /* An occurrence that starts before best_at may end after it. */
        size_t span = best_at + t->special_lens[i] - 1 < len ? best_at + t->special_lens[i] - 1 : len;
        const char *p = lm_memmem(text, span, t->specials[i], t->special_lens[i]);
        if (p && (size_t)(p - text) < best_at) {
            best_at = (size_t)(p - text);
            best = (int64_t)i;
        }
    }
    *at = best_at;
    return best;
}

lm_status lm_bpe_trainer_add_text(lm_bpe_trainer *t, const char *text, size_t len, lm_error *err) {
    if (t->syms) return lm_error_set(err, LM_ERR_ARG, "the trainer has already trained");
    t->err = err;
    while (len > 0) {
        size_t at;
        int64_t s = find_special(t, text, len, &at);
        lm_status st = lm_pretok_split(t->pretok, text, at, count_piece, t, err);
        if (st) return st;
        if (s < 0) break;
        size_t skip = at + t->special_lens[s];
        text += skip;
        len -= skip;
    }
    return LM_OK;
}

/* A cut just after '\n' and before a non-space byte: no pre-token of the
 * GPT-2 or GPT-4 expressions spans it, and no special token contains '\n'. */
static size_t safe_cut(const char *buf, size_t len) {
    for (size_t i = len; i > 1; i--) {
        char c = buf[i - 1];
        if (buf[i - 2] == '\n' && c != ' ' && c != '\n' && c != '\r' && c != '\t') return i - 1;
    }
    return len;
}

lm_status lm_bpe_trainer_add_file(lm_bpe_trainer *t, const char *path, lm_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return lm_error_set(err, LM_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    const size_t chunk = 8u << 20;
    char *buf = malloc(2 * chunk);
    if (!buf) {
        fclose(f);
        return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    }
    size_t have = 0;
    lm_status st = LM_OK;
    int64_t done = 0;
    for (;;) {
        size_t got = fread(buf + have, 1, 2 * chunk - have, f);
        have += got;
        int eof = got == 0 || feof(f);
        if (ferror(f)) {
            st = lm_error_set(err, LM_ERR_IO, "cannot read %s", path);
            break;
        }
        size_t cut = eof ? have : safe_cut(buf, have);
        if ((st = lm_bpe_trainer_add_text(t, buf, cut, err))) break;
        done += (int64_t)cut;
        progress(t, "counting", done, -1);
        memmove(buf, buf + cut, have - cut);
        have -= cut;
        if (eof && have == 0) break;
        if (eof) {
            if ((st = lm_bpe_trainer_add_text(t, buf, have, err))) break;
            break;
        }
    }
    free(buf);
    fclose(f);
    return st;
}

/* ---- merging ---- */

static int bytes_cmp(const lm_bpe_trainer *t, int32_t x, int32_t y) {
    size_t lx = t->tok_len[x], ly = t->tok_len[y];
    int c = memcmp(t->tok_bytes[x], t->tok_bytes[y], lx < ly ? lx : ly);
    if (c) return c;
    return (lx > ly) - (lx < ly);
}

/* Heap order: higher count first; ties to the greater (bytes(a), bytes(b)). */
static int entry_before(const lm_bpe_trainer *t, const heap_entry *x, const heap_entry *y) {
    if (x->count != y->count) return x->count > y->count;
    const pair_info *p = &t->pairs[x->pair], *q = &t->pairs[y->pair];
    int c = bytes_cmp(t, p->a, q->a);
    if (c == 0) c = bytes_cmp(t, p->b, q->b);
    return c > 0;
}

static int heap_push(lm_bpe_trainer *t, heap_entry e) {
    GROW(t->heap, t->heap_n, t->heap_cap, return -1);
    size_t i = t->heap_n++;
    t->heap[i] = e;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!entry_before(t, &t->heap[i], &t->heap[parent])) break;
        heap_entry tmp = t->heap[i];
        t->heap[i] = t->heap[parent];
        t->heap[parent] = tmp;
        i = parent;
    }
    return 0;
}

static heap_entry heap_pop(lm_bpe_trainer *t) {
    heap_entry top = t->heap[0];
    t->heap[0] = t->heap[--t->heap_n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, best = i;
        if (l < t->heap_n && entry_before(t, &t->heap[l], &t->heap[best])) best = l;
        if (r < t->heap_n && entry_before(t, &t->heap[r], &t->heap[best])) best = r;
        if (best == i) break;
        heap_entry tmp = t->heap[i];
        t->heap[i] = t->heap[best];
        t->heap[best] = tmp;
        i = best;
    }
    return top;
}

static int pair_table_grow(lm_bpe_trainer *t) {
    size_t cap = t->pair_cap ? t->pair_cap * 2 : 1 << 16;
    uint64_t *keys = calloc(cap, sizeof *keys);
    int32_t *slots = malloc(cap * sizeof *slots);
    if (!keys || !slots) {
        free(keys);
        free(slots);
        return -1;
    }
    for (size_t i = 0; i < t->pair_cap; i++) {
        if (!t->pair_keys[i]) continue;
        size_t j = (size_t)lm_mix64(t->pair_keys[i]) & (cap - 1);
        while (keys[j]) j = (j + 1) & (cap - 1);
        keys[j] = t->pair_keys[i];
        slots[j] = t->pair_slots[i];
    }
    free(t->pair_keys);
    free(t->pair_slots);
    t->pair_keys = keys;
    t->pair_slots = slots;
    t->pair_cap = cap;
    return 0;
}

/* The index of pair (a, b), created with count 0 if new; -1 on OOM. */
static int32_t pair_get(lm_bpe_trainer *t, int32_t a, int32_t b) {
    if ((t->n_pairs + 1) * 2 > t->pair_cap && pair_table_grow(t) < 0) return -1;
    uint64_t key = lm_pair_key(a, b);
    size_t j = (size_t)lm_mix64(key) & (t->pair_cap - 1);
    while (t->pair_keys[j]) {
        if (t->pair_keys[j] == key) return t->pair_slots[j];
        j = (j + 1) & (t->pair_cap - 1);
    }
    if (t->n_pairs >= INT32_MAX) return -1;
    GROW(t->pairs, t->n_pairs, t->cap_pairs, return -1);
    pair_info *p = &t->pairs[t->n_pairs];
    memset(p, 0, sizeof *p);
    p->a = a;
    p->b = b;
    p->touched = -1;
    t->pair_keys[j] = key;
    t->pair_slots[j] = (int32_t)t->n_pairs;
    return (int32_t)t->n_pairs++;
}

/* count(a, b) += delta for word w; a positive delta records w and marks the pair touched. */
static int pair_add(lm_bpe_trainer *t, int32_t a, int32_t b, int64_t delta, int32_t w, int64_t step) {
    int32_t i = pair_get(t, a, b);
    if (i < 0) return -1;
    pair_info *p = &t->pairs[i];
    p->count += delta;
    if (delta > 0) {
        GROW(p->words, p->n_words, p->cap_words, return -1);
        p->words[p->n_words++] = w;
        if (p->touched != step) {
            p->touched = step;
            GROW(t->touched, t->n_touched, t->cap_touched, return -1);
            t->touched[t->n_touched++] = i;
        }
    }
    return 0;
}

static int add_token(lm_bpe_trainer *t, const char *bytes, size_t len) {
    char *copy = arena_alloc(&t->arena, len ? len : 1);
    if (!copy) return -1;
    memcpy(copy, bytes, len);
    t->tok_bytes[t->n_tokens] = copy;
    t->tok_len[t->n_tokens] = len;
    t->n_tokens++;
    return 0;
}

/* Replaces every (a, b) in word w by token n, left to right, updating the
 * counts of the neighbouring pairs. */
static int merge_word(lm_bpe_trainer *t, int32_t w, int32_t a, int32_t b, int32_t n, int64_t step) {
    int32_t *s = t->syms + t->word_start[w];
    uint32_t len = t->word_len[w], out = 0;
    int64_t c = t->word_count[w];
    for (uint32_t i = 0; i < len;) {
        if (i + 1 < len && s[i] == a && s[i + 1] == b) {
            if (out > 0 && (pair_add(t, s[out - 1], a, -c, w, step) || pair_add(t, s[out - 1], n, c, w, step))) return -1;
            if (i + 2 < len && (pair_add(t, b, s[i + 2], -c, w, step) || pair_add(t, n, s[i + 2], c, w, step))) return -1;
            s[out++] = n;
            i += 2;
        } else {
            s[out++] = s[i++];
        }
    }
    t->word_len[w] = out;
    return 0;
}

lm_status lm_bpe_trainer_train(lm_bpe_trainer *t, lm_error *err) {
    if (t->syms) return lm_error_set(err, LM_ERR_ARG, "the trainer has already trained");
    size_t total = 0;
    for (size_t w = 0; w < t->n_words; w++) {
        if (lm_add_overflow_size(total, t->word_text_len[w], &total)) return lm_error_set(err, LM_ERR_LIMIT, "too much text");
    }
    int64_t vocab = t->params.vocab_size;
    t->syms = malloc((total ? total : 1) * sizeof *t->syms);
    t->word_start = malloc((t->n_words ? t->n_words : 1) * sizeof *t->word_start);
    t->word_len = malloc((t->n_words ? t->n_words : 1) * sizeof *t->word_len);
    t->word_stamp = malloc((t->n_words ? t->n_words : 1) * sizeof *t->word_stamp);
    t->tok_bytes = malloc((size_t)vocab * sizeof *t->tok_bytes);
    t->tok_len = malloc((size_t)vocab * sizeof *t->tok_len);
    t->merges = malloc((size_t)vocab * sizeof *t->merges);
    if (!t->syms || !t->word_start || !t->word_len || !t->word_stamp || !t->tok_bytes || !t->tok_len || !t->merges) {
        return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    }
    /* Specials, then the bytes in GPT-2 order; byte_id[b] is byte b's token. */
    int32_t byte_id[256];
    for (size_t i = 0; i < t->params.n_special; i++) {
        if (add_token(t, t->specials[i], t->special_lens[i])) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < 256; i++) {
        char b = (char)lm_gpt2_byte_order(i);
        byte_id[(uint8_t)b] = (int32_t)t->n_tokens;
        if (add_token(t, &b, 1)) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    }
    size_t pos = 0;
    for (size_t w = 0; w < t->n_words; w++) {
        t->word_start[w] = pos;
        t->word_len[w] = t->word_text_len[w];
        t->word_stamp[w] = -1;
        for (uint32_t k = 0; k < t->word_text_len[w]; k++) t->syms[pos++] = byte_id[(uint8_t)t->word_text[w][k]];
    }
    for (size_t w = 0; w < t->n_words; w++) {
        const int32_t *s = t->syms + t->word_start[w];
        for (uint32_t k = 0; k + 1 < t->word_len[w]; k++) {
            if (pair_add(t, s[k], s[k + 1], t->word_count[w], (int32_t)w, 0)) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
        }
    }
    for (size_t i = 0; i < t->n_touched; i++) {
        heap_entry e = {t->pairs[t->touched[i]].count, t->touched[i]};
        if (heap_push(t, e)) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    }
    t->n_touched = 0;

    int64_t target = vocab - t->n_tokens;
    for (int64_t step = 1; t->n_tokens < vocab && t->heap_n > 0;) {
        heap_entry e = heap_pop(t);
        pair_info *p = &t->pairs[e.pair];
        if (p->count != e.count) {
            /* Stale: the count fell since this entry was pushed. */
            if (p->count > 0 && p->count < e.count) {
                heap_entry again = {p->count, e.pair};
                if (heap_push(t, again)) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
            }
            continue;
        }
        if (p->count <= 0) break;
        int32_t a = p->a, b = p->b, n = (int32_t)t->n_tokens;
        size_t la = t->tok_len[a], lb = t->tok_len[b];
        char *joined = malloc(la + lb);
        if (!joined) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
        memcpy(joined, t->tok_bytes[a], la);
        memcpy(joined + la, t->tok_bytes[b], lb);
        int bad = add_token(t, joined, la + lb);
        free(joined);
        if (bad) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
        t->merges[t->n_merges][0] = a;
        t->merges[t->n_merges][1] = b;
        t->n_merges++;
        /* The words list may grow while we walk it (a == b), so walk a copy. */
        int32_t *words = p->words;
        size_t n_words = p->n_words;
        p->words = NULL;
        p->n_words = p->cap_words = 0;
        for (size_t k = 0; k < n_words; k++) {
            int32_t w = words[k];
            if (t->word_stamp[w] == step) continue;
            t->word_stamp[w] = step;
            if (merge_word(t, w, a, b, n, step)) {
                free(words);
                return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
            }
        }
        free(words);
        t->pairs[e.pair].count = 0;
        for (size_t i = 0; i < t->n_touched; i++) {
            pair_info *q = &t->pairs[t->touched[i]];
            heap_entry ne = {q->count, t->touched[i]};
            if (q->count > 0 && heap_push(t, ne)) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
        }
        t->n_touched = 0;
        if (step % 256 == 0) progress(t, "merging", t->n_merges, target);
        step++;
    }
    progress(t, "merging", t->n_merges, target);
    return LM_OK;
}

int64_t lm_bpe_trainer_vocab_size(const lm_bpe_trainer *t) { return t->n_tokens; }
int64_t lm_bpe_trainer_merge_count(const lm_bpe_trainer *t) { return t->n_merges; }
int64_t lm_bpe_trainer_distinct_pretokens(const lm_bpe_trainer *t) { return (int64_t)t->n_words; }

lm_str lm_bpe_trainer_token_bytes(const lm_bpe_trainer *t, int64_t id) {
    lm_str s = {"", 0};
    if (id >= 0 && id < t->n_tokens) {
        s.ptr = t->tok_bytes[id];
        s.len = t->tok_len[id];
    }
    return s;
}

void lm_bpe_trainer_merge(const lm_bpe_trainer *t, int64_t i, int32_t *left, int32_t *right) {
    *left = *right = -1;
    if (i >= 0 && i < t->n_merges) {
        *left = t->merges[i][0];
        *right = t->merges[i][1];
    }
}

/* ---- output ---- */

lm_status lm_bpe_trainer_write_gguf(const lm_bpe_trainer *t, const char *path, lm_error *err) {
    if (!t->syms) return lm_error_set(err, LM_ERR_ARG, "train before writing");
    int64_t n = t->n_tokens, n_special = (int64_t)t->params.n_special;
    lm_str *texts = calloc((size_t)n, sizeof *texts);
    int32_t *types = calloc((size_t)n, sizeof *types);
    lm_str *merges = calloc((size_t)(t->n_merges ? t->n_merges : 1), sizeof *merges);
    /* Mapped text is at most 2 bytes per byte; merges add a space. */
    size_t cap = 0;
    for (int64_t i = 0; i < n; i++) cap += 2 * t->tok_len[i] + 1;
    for (int64_t i = 0; i < t->n_merges; i++) cap += 2 * (t->tok_len[t->merges[i][0]] + t->tok_len[t->merges[i][1]]) + 2;
    char *arena = malloc(cap + 1), *p = arena;
    lm_gguf_writer *w = lm_gguf_writer_init();
    lm_status st = LM_OK;
    if (!texts || !types || !merges || !arena || !w) {
        st = lm_error_set(err, LM_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int64_t i = 0; i < n; i++) {
        texts[i].ptr = p;
        if (i < n_special) {
            memcpy(p, t->tok_bytes[i], t->tok_len[i]);
            texts[i].len = t->tok_len[i];
            types[i] = LM_TOKEN_CONTROL;
        } else {
            texts[i].len = lm_bytes_to_unicode_text((const uint8_t *)t->tok_bytes[i], t->tok_len[i], p);
            types[i] = LM_TOKEN_NORMAL;
        }
        p += texts[i].len;
    }
    for (int64_t i = 0; i < t->n_merges; i++) {
        const lm_str *l = &texts[t->merges[i][0]], *r = &texts[t->merges[i][1]];
        merges[i].ptr = p;
        memcpy(p, l->ptr, (size_t)l->len);
        p += l->len;
        *p++ = ' ';
        memcpy(p, r->ptr, (size_t)r->len);
        p += r->len;
        merges[i].len = l->len + 1 + r->len;
    }
    const char *re = t->params.split_regex ? t->params.split_regex : lm_pretok_gpt4_pattern;
    const char *pre = lm_pretok_name_for_pattern(re);
    if (!pre) pre = "default"; /* with the expression itself in tokenizer.llmos.split_regex */
#define TRY(call) if ((st = (call))) goto done
    TRY(lm_gguf_writer_set_str(w, "general.name", "llmos-bpe", err));
    TRY(lm_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2", err));
    TRY(lm_gguf_writer_set_str(w, "tokenizer.ggml.pre", pre, err));
    if (strcmp(pre, "default") == 0) TRY(lm_gguf_writer_set_str(w, "tokenizer.llmos.split_regex", re, err));
    TRY(lm_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", texts, (uint64_t)n, err));
    TRY(lm_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", LM_GGUF_INT32, types, (uint64_t)n, err));
    TRY(lm_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, (uint64_t)t->n_merges, err));
    for (int64_t i = 0; i < n_special; i++) {
        if (strcmp(t->specials[i], "<|endoftext|>") == 0) {
            TRY(lm_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)i, err));
            TRY(lm_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)i, err));
        }
    }
    TRY(lm_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", 0, err));
    TRY(lm_gguf_writer_write_file(w, path, err));
#undef TRY
done:
    lm_gguf_writer_free(w);
    free(texts);
    free(types);
    free(merges);
    free(arena);
    return st;
}
