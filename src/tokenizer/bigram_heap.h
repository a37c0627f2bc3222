/* A max-heap of candidate merges of adjacent symbols, shared by the
 * SentencePiece (score) and byte-level BPE (rank) encoders. Higher priority
 * pops first; equal priorities pop leftmost first. `check` lets the caller
 * recognise entries made stale by earlier merges. */
#ifndef LLMOS_BIGRAM_HEAP_H
#define LLMOS_BIGRAM_HEAP_H

#include <stdint.h>
#include <stdlib.h>

typedef struct bigram {
    double priority;
    int64_t left;
    uint64_t check;
} bigram;

typedef struct bigram_heap {
    bigram *v;
    size_t n, cap;
} bigram_heap;

static inline int bigram_before(const bigram *a, const bigram *b) {
    if (a->priority != b->priority) return a->priority > b->priority;
    return a->left < b->left;
}

static inline int bigram_heap_push(bigram_heap *h, bigram b) {
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

static inline bigram bigram_heap_pop(bigram_heap *h) {
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

/* A doubly linked run of symbols over a byte buffer. */
typedef struct symbol {
    size_t start, len; /* len 0: merged into its left neighbour */
    int32_t id;        /* token id, -1 if the text is not a token */
    int64_t prev, next;
} symbol;

/* A growable vector of token ids. */
typedef struct token_vec {
    int32_t *v;
    size_t n, cap;
} token_vec;

static inline int token_vec_push(token_vec *t, int32_t id) {
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

#endif
