#include "llmos/sampler.h"

#include "../base/rng.h"
#include "../tensor/kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct candidate {
    int32_t id;
    float logit;
    float p;
} candidate;

struct lm_sampler {
    lm_sampler_params params;
    int32_t n_vocab;
    lm_rng rng;
    candidate *cands; /* (n_vocab) */
    float *logits;    /* (n_vocab) penalised copy */
};

lm_sampler_params lm_sampler_default_params(void) {
    lm_sampler_params p = {0.8f, 40, 0.95f, 0.05f, 1.0f, 64, 0};
    return p;
}

lm_status lm_sampler_init(const lm_sampler_params *params, int32_t n_vocab, lm_sampler **out, lm_error *err) {
    *out = NULL;
    const lm_sampler_params *p = params;
    if (n_vocab < 1) return lm_error_set(err, LM_ERR_ARG, "vocabulary is empty");
    if (!(p->temperature >= 0.0f && p->temperature <= 100.0f)) return lm_error_set(err, LM_ERR_ARG, "temperature must be in [0, 100]");
    if (p->top_k < 0) return lm_error_set(err, LM_ERR_ARG, "top-k must be >= 0");
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f)) return lm_error_set(err, LM_ERR_ARG, "top-p must be in (0, 1]");
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f)) return lm_error_set(err, LM_ERR_ARG, "min-p must be in [0, 1]");
    if (!(p->repeat_penalty > 0.0f && p->repeat_penalty <= 100.0f)) {
        return lm_error_set(err, LM_ERR_ARG, "repeat penalty must be in (0, 100]");
    }
    if (p->repeat_last_n < 0) return lm_error_set(err, LM_ERR_ARG, "repeat-last-n must be >= 0");
    lm_sampler *s = calloc(1, sizeof *s);
    if (!s) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    s->params = *p;
    s->n_vocab = n_vocab;
    s->cands = malloc((size_t)n_vocab * sizeof *s->cands);
    s->logits = malloc((size_t)n_vocab * sizeof *s->logits);
    if (!s->cands || !s->logits) {
        lm_sampler_free(s);
        return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    }
    lm_rng_seed(&s->rng, p->seed);
    *out = s;
    return LM_OK;
}

void lm_sampler_free(lm_sampler *s) {
    if (!s) return;
    free(s->cands);
    free(s->logits);
    free(s);
}

/* Descending logit; ties by ascending id so the order is total. */
static int cmp_candidates(const void *a, const void *b) {
    const candidate *x = a, *y = b;
    if (x->logit != y->logit) return x->logit > y->logit ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* a ranks after b in the candidate order (cmp_candidates > 0). */
static int ranks_after(const candidate *a, const candidate *b) { return cmp_candidates(a, b) > 0; }

/* The k best of n logits into out[0..k), unordered: a heap whose root is the
 * worst kept candidate, so one pass costs O(n log k) instead of a full sort. */
static void select_top_k(const float *logits, int32_t n, candidate *out, int32_t k) {
    for (int32_t i = 0; i < n; i++) {
        candidate x = {i, logits[i], 0.0f};
        size_t j;
        if (i < k) {
            j = (size_t)i; /* sift up */
            while (j > 0 && ranks_after(&x, &out[(j - 1) / 2])) {
                out[j] = out[(j - 1) / 2];
                j = (j - 1) / 2;
            }
            out[j] = x;
        } else if (ranks_after(&out[0], &x)) {
            j = 0; /* replace the worst, sift down */
            for (;;) {
                size_t l = 2 * j + 1, r = l + 1, w = j;
                const candidate *worst = &x;
                if (l < (size_t)k && ranks_after(&out[l], worst)) w = l, worst = &out[l];
                if (r < (size_t)k && ranks_after(&out[r], worst)) w = r;
                if (w == j) break;
                out[j] = out[w];
                j = w;
            }
            out[j] = x;
        }
    }
}

/* CTRL-style penalty as llama.cpp applies it: divide positive logits, multiply
 * negative ones, once per distinct token in the window. */
static void apply_repeat_penalty(lm_sampler *s, const int32_t *history, size_t n) {
    float pen = s->params.repeat_penalty;
    if (pen == 1.0f || !history) return;
    size_t start = n > (size_t)s->params.repeat_last_n ? n - (size_t)s->params.repeat_last_n : 0;
    for (size_t i = start; i < n; i++) {
        int32_t id = history[i];
        if (id < 0 || id >= s->n_vocab) continue;
        int seen = 0;
        for (size_t j = start; j < i && !seen; j++) seen = history[j] == id;
        if (seen) continue;
        float *l = &s->logits[id];
        *l = *l > 0 ? *l / pen : *l * pen;
    }
}

/* The first index of the largest value (x has no NaN). The maximum first, in 8 independent
 * running maxima (one compare-and-keep chain per element was most of a draw over a large
 * vocabulary), then its first position. */
static int32_t argmax(const float *x, int32_t n) {
    float m[8] = {x[0], x[0], x[0], x[0], x[0], x[0], x[0], x[0]};
    int32_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) m[j] = x[i + j] > m[j] ? x[i + j] : m[j];
    float top = m[0];
    for (int j = 1; j < 8; j++) top = m[j] > top ? m[j] : top;
    for (; i < n; i++) top = x[i] > top ? x[i] : top;
    int32_t best = 0;
    while (x[best] != top) best++;
    return best;
}

int32_t lm_sampler_sample(lm_sampler *s, const float *logits, const int32_t *history, size_t n_history) {
    const lm_sampler_params *p = &s->params;
    int32_t n = s->n_vocab;
    memcpy(s->logits, logits, (size_t)n * sizeof *logits);
    for (int32_t i = 0; i < n; i++) {
        if (isnan(s->logits[i])) s->logits[i] = -INFINITY;
    }
    apply_repeat_penalty(s, history, n_history);
    int32_t best = argmax(s->logits, n);
    /* Greedy; and a +inf logit (probability 1) or all -inf (nothing to weigh)
     * would turn the softmax below into NaN. */
    if (p->temperature == 0.0f || isinf(s->logits[best])) return best;

    int32_t k = p->top_k > 0 && p->top_k < n ? p->top_k : n;
    if (k == n && p->min_p <= 0.0f && p->top_p >= 1.0f) {
        /* Nothing is cut (the server's default): the whole softmax through the vectorised
         * kernel, drawn in token order. The general path below builds, sorts and normalises
         * candidates with a double exp per token: 0.36-0.49 ms a draw over 32,000 tokens. */
        const float inv_t = 1.0f / p->temperature;
        for (int32_t i = 0; i < n; i++) s->logits[i] *= inv_t;
        lm_kernels_best()->softmax(s->logits, n);
        double r = lm_rng_uniform(&s->rng), cum = 0.0;
        int32_t last = best;
        for (int32_t i = 0; i < n; i++) {
            if (s->logits[i] <= 0.0f) continue; /* -inf logits (banned tokens) are never drawn */
            cum += s->logits[i];
            last = i;
            if (r < cum) return i;
        }
        return last; /* the probabilities summed to a little under r: the last token with weight */
    }
    candidate *c = s->cands;
    if (k < n) {
        select_top_k(s->logits, n, c, k);
    } else {
        for (int32_t i = 0; i < n; i++) c[i] = (candidate){i, s->logits[i], 0.0f};
    }
    /* min-p and top-p cut the ranked list; without them the order does not matter and the sort
     * (most of the sampler's time over a whole vocabulary) is skipped. */
    if (p->min_p > 0.0f || p->top_p < 1.0f) qsort(c, (size_t)k, sizeof *c, cmp_candidates);

    /* Softmax with temperature over the top k (the max is the argmax's logit). */
    double sum = 0.0, top = (double)s->logits[best];
    for (int32_t i = 0; i < k; i++) {
        double e = exp(((double)c[i].logit - top) / p->temperature);
        c[i].p = (float)e;
        sum += e;
    }
    for (int32_t i = 0; i < k; i++) c[i].p = (float)(c[i].p / sum);

    if (p->min_p > 0.0f) { /* sorted: c[0] is the most likely */
        float threshold = p->min_p * c[0].p;
        int32_t keep = 1;
        while (keep < k && c[keep].p >= threshold) keep++;
        k = keep;
    }
    if (p->top_p < 1.0f) {
        double cum = 0.0;
        int32_t keep = 0;
        while (keep < k) {
            cum += c[keep++].p;
            if (cum >= p->top_p) break;
        }
        k = keep;
    }
    double total = 0.0;
    for (int32_t i = 0; i < k; i++) total += c[i].p;
    double r = lm_rng_uniform(&s->rng) * total, cum = 0.0;
    for (int32_t i = 0; i < k; i++) {
        cum += c[i].p;
        if (r < cum) return c[i].id;
    }
    return c[k - 1].id;
}
