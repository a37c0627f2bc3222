/* The sampler: greedy and degenerate settings, seeded determinism, the drawn
 * distribution against softmax, the top-k / min-p / top-p truncations, the
 * repetition penalty, and parameter validation. */
#include "llmos/sampler.h"
#include "test.h"

#include <math.h>

/* All filters off, temperature 1, no penalty. */
static lm_sampler_params plain(uint64_t seed) {
    lm_sampler_params p = {1.0f, 0, 1.0f, 0.0f, 1.0f, 64, seed};
    return p;
}

static lm_sampler *make(const lm_sampler_params *p, int32_t n_vocab) {
    lm_error err = {0};
    lm_sampler *s = NULL;
    lm_status st = lm_sampler_init(p, n_vocab, &s, &err);
    if (st != LM_OK || !s) {
        fprintf(stderr, "lm_sampler_init: %s\n", err.message);
        exit(1);
    }
    return s;
}

/* Draws n tokens and counts them per id. Returns the number of ids outside
 * the vocabulary (should be 0). */
static int draw_counts(const lm_sampler_params *p, const float *logits, int32_t n_vocab, int n, long *counts) {
    lm_sampler *s = make(p, n_vocab);
    int bad = 0;
    for (int32_t i = 0; i < n_vocab; i++) counts[i] = 0;
    for (int i = 0; i < n; i++) {
        int32_t t = lm_sampler_sample(s, logits, NULL, 0);
        if (t < 0 || t >= n_vocab) bad++;
        else counts[t]++;
    }
    lm_sampler_free(s);
    return bad;
}

/* Softmax of logits / temp over the ids with keep[i] (all when keep is NULL). */
static void softmax_ref(const float *logits, int32_t n, double temp, const int *keep, double *out) {
    double max = -INFINITY, sum = 0.0;
    for (int32_t i = 0; i < n; i++) {
        if ((!keep || keep[i]) && logits[i] > max) max = logits[i];
    }
    for (int32_t i = 0; i < n; i++) {
        out[i] = (!keep || keep[i]) ? exp(((double)logits[i] - max) / temp) : 0.0;
        sum += out[i];
    }
    for (int32_t i = 0; i < n; i++) out[i] /= sum;
}

/* Every drawn frequency within tol of want. */
static void check_frequencies(const char *what, const long *counts, const double *want, int32_t n, int draws,
                              double tol) {
    double worst = 0.0;
    int worst_id = 0;
    for (int32_t i = 0; i < n; i++) {
        double d = fabs((double)counts[i] / draws - want[i]);
        if (d > worst) {
            worst = d;
            worst_id = i;
        }
    }
    CHECKF(worst <= tol, "%s: token %d drawn with frequency %.4f, expected %.4f", what, worst_id,
           (double)counts[worst_id] / draws, want[worst_id]);
}

static void test_greedy(void) {
    /* NaN and -inf elsewhere, including at id 0 where a naive argmax starts. */
    const float logits[] = {NAN, -INFINITY, 2.0f, 3.5f, NAN, 1.0f, -INFINITY, 3.25f};
    const int32_t n = 8, best = 3;
    lm_sampler_params p = lm_sampler_default_params(); /* top-k 40, top-p 0.95, min-p 0.05 */
    p.temperature = 0.0f;
    lm_sampler *s = make(&p, n);
    int wrong = 0;
    for (int i = 0; i < 100; i++) wrong += lm_sampler_sample(s, logits, NULL, 0) != best;
    CHECKF(wrong == 0, "temperature 0: %d of 100 draws are not the argmax", wrong);
    lm_sampler_free(s);

    /* The maximum in the last slot, and a -inf first slot. */
    const float last[] = {-INFINITY, -3.0f, -2.0f, -1.0f, 0.25f};
    s = make(&p, 5);
    CHECK(lm_sampler_sample(s, last, NULL, 0) == 4);
    lm_sampler_free(s);

    /* top-k 1 at temperature 1. */
    p = plain(7);
    p.top_k = 1;
    s = make(&p, n);
    wrong = 0;
    for (int i = 0; i < 1000; i++) wrong += lm_sampler_sample(s, logits, NULL, 0) != best;
    CHECKF(wrong == 0, "top-k 1: %d of 1000 draws are not the argmax", wrong);
    lm_sampler_free(s);

    /* A tiny top-p keeps only the most likely token. */
    p = plain(8);
    p.top_p = 1e-6f;
    s = make(&p, n);
    wrong = 0;
    for (int i = 0; i < 1000; i++) wrong += lm_sampler_sample(s, logits, NULL, 0) != best;
    CHECKF(wrong == 0, "top-p 1e-6: %d of 1000 draws are not the argmax", wrong);
    lm_sampler_free(s);

    /* min-p 1 keeps only tokens as likely as the best. */
    p = plain(9);
    p.min_p = 1.0f;
    s = make(&p, n);
    wrong = 0;
    for (int i = 0; i < 1000; i++) wrong += lm_sampler_sample(s, logits, NULL, 0) != best;
    CHECKF(wrong == 0, "min-p 1: %d of 1000 draws are not the argmax", wrong);
    lm_sampler_free(s);

    /* At temperature 1 with nothing filtered, NaN and -inf are never drawn. */
    long counts[8];
    p = plain(10);
    CHECK(draw_counts(&p, logits, n, 20000, counts) == 0);
    CHECKF(counts[0] == 0 && counts[1] == 0 && counts[4] == 0 && counts[6] == 0,
           "NaN / -inf tokens drawn: %ld %ld %ld %ld", counts[0], counts[1], counts[4], counts[6]);
    CHECK(counts[2] > 0 && counts[3] > 0 && counts[5] > 0 && counts[7] > 0);
}

static void test_determinism(void) {
    enum { V = 50, N = 1000 };
    float logits[V];
    for (int i = 0; i < V; i++) logits[i] = (float)sin(1.7 * i) * 2.0f;
    lm_sampler_params p = lm_sampler_default_params();
    p.top_k = 20;
    p.seed = 1234;
    int32_t history[8] = {3, 5, 7, 3, 11, 13, 17, 19};
    p.repeat_penalty = 1.1f;
    lm_sampler *a = make(&p, V), *b = make(&p, V);
    p.seed = 1235;
    lm_sampler *c = make(&p, V);
    int same_ab = 1, same_ac = 1, distinct = 0;
    int seen[V] = {0};
    for (int i = 0; i < N; i++) {
        int32_t ta = lm_sampler_sample(a, logits, history, 8);
        int32_t tb = lm_sampler_sample(b, logits, history, 8);
        int32_t tc = lm_sampler_sample(c, logits, history, 8);
        same_ab &= ta == tb;
        same_ac &= ta == tc;
        if (ta >= 0 && ta < V && !seen[ta]) {
            seen[ta] = 1;
            distinct++;
        }
    }
    CHECKF(same_ab, "the same seed and parameters gave different sequences");
    CHECKF(!same_ac, "seeds 1234 and 1235 gave the same 1000 draws");
    CHECKF(distinct > 1, "the seeded sequence never varies (%d distinct tokens)", distinct);
    lm_sampler_free(a);
    lm_sampler_free(b);
    lm_sampler_free(c);

    /* A fresh sampler with the same seed replays the sequence from the start. */
    p.seed = 99;
    a = make(&p, V);
    int32_t first[20];
    for (int i = 0; i < 20; i++) first[i] = lm_sampler_sample(a, logits, NULL, 0);
    lm_sampler_free(a);
    a = make(&p, V);
    int replay = 1;
    for (int i = 0; i < 20; i++) replay &= lm_sampler_sample(a, logits, NULL, 0) == first[i];
    CHECK(replay);
    lm_sampler_free(a);
}

static void test_distribution(void) {
    enum { V = 5, DRAWS = 200000 };
    const float logits[V] = {1.0f, 2.0f, 0.5f, -1.0f, 1.5f};
    long counts[V];
    double want[V];

    lm_sampler_params p = plain(42);
    CHECK(draw_counts(&p, logits, V, DRAWS, counts) == 0);
    softmax_ref(logits, V, 1.0, NULL, want);
    check_frequencies("temperature 1", counts, want, V, DRAWS, 0.01);

    p = plain(43);
    p.temperature = 0.5f;
    CHECK(draw_counts(&p, logits, V, DRAWS, counts) == 0);
    softmax_ref(logits, V, 0.5, NULL, want);
    check_frequencies("temperature 0.5", counts, want, V, DRAWS, 0.01);

    /* A high temperature flattens toward uniform. */
    p = plain(44);
    p.temperature = 4.0f;
    CHECK(draw_counts(&p, logits, V, DRAWS, counts) == 0);
    softmax_ref(logits, V, 4.0, NULL, want);
    check_frequencies("temperature 4", counts, want, V, DRAWS, 0.01);
}

static void test_truncation(void) {
    enum { DRAWS = 50000 };
    long counts[8];
    double want[8];

    /* top-k 2: only the two best ever appear, in their renormalised ratio. */
    {
        const float logits[8] = {0.3f, 1.2f, -0.5f, 1.0f, 0.9f, 0.2f, 0.95f, -2.0f};
        const int keep[8] = {0, 1, 0, 1, 0, 0, 0, 0};
        lm_sampler_params p = plain(100);
        p.top_k = 2;
        CHECK(draw_counts(&p, logits, 8, DRAWS, counts) == 0);
        long others = 0;
        for (int i = 0; i < 8; i++) others += keep[i] ? 0 : counts[i];
        CHECKF(others == 0, "top-k 2: %ld draws outside the two best", others);
        CHECK(counts[1] > 0 && counts[3] > 0);
        softmax_ref(logits, 8, 1.0, keep, want);
        check_frequencies("top-k 2", counts, want, 8, DRAWS, 0.01);
    }

    /* min-p 0.1: p / p_max = 1, 0.61, 0.14, 0.050, 0.0067, so ids 3 and 4
     * (below 0.1 * p_max) never appear and id 2 (just above) does. */
    {
        const float logits[5] = {3.0f, 2.5f, 1.0f, 0.0f, -2.0f};
        const int keep[5] = {1, 1, 1, 0, 0};
        lm_sampler_params p = plain(101);
        p.min_p = 0.1f;
        CHECK(draw_counts(&p, logits, 5, DRAWS, counts) == 0);
        CHECKF(counts[3] == 0 && counts[4] == 0, "min-p 0.1: ids 3, 4 drawn %ld, %ld times", counts[3], counts[4]);
        CHECK(counts[0] > 0 && counts[1] > 0 && counts[2] > 0);
        softmax_ref(logits, 5, 1.0, keep, want);
        check_frequencies("min-p 0.1", counts, want, 5, DRAWS, 0.01);

        /* min-p 0.2 also drops id 2. */
        p = plain(102);
        p.min_p = 0.2f;
        CHECK(draw_counts(&p, logits, 5, DRAWS, counts) == 0);
        CHECKF(counts[2] == 0 && counts[3] == 0 && counts[4] == 0, "min-p 0.2: ids 2..4 drawn");
        CHECK(counts[0] > 0 && counts[1] > 0);
    }

    /* top-p over probabilities 0.5, 0.3, 0.15, 0.05 (given in shuffled order):
     * 0.75 keeps the smallest prefix reaching it, {0.5, 0.3}; 0.85 keeps
     * three; 0.45 keeps only the 0.5 token. (Thresholds stay clear of the
     * prefix sums so float rounding cannot decide.) */
    {
        const float logits[4] = {(float)log(0.15), (float)log(0.5), (float)log(0.05), (float)log(0.3)};
        lm_sampler_params p = plain(103);
        p.top_p = 0.75f;
        CHECK(draw_counts(&p, logits, 4, DRAWS, counts) == 0);
        CHECKF(counts[0] == 0 && counts[2] == 0, "top-p 0.75: ids outside the prefix drawn %ld, %ld times", counts[0],
               counts[2]);
        const int keep2[4] = {0, 1, 0, 1};
        softmax_ref(logits, 4, 1.0, keep2, want);
        check_frequencies("top-p 0.75", counts, want, 4, DRAWS, 0.01);

        p = plain(104);
        p.top_p = 0.85f;
        CHECK(draw_counts(&p, logits, 4, DRAWS, counts) == 0);
        CHECKF(counts[2] == 0, "top-p 0.85: the 0.05 token drawn %ld times", counts[2]);
        CHECK(counts[0] > 0 && counts[1] > 0 && counts[3] > 0);
        const int keep3[4] = {1, 1, 0, 1};
        softmax_ref(logits, 4, 1.0, keep3, want);
        check_frequencies("top-p 0.85", counts, want, 4, DRAWS, 0.01);

        p = plain(105);
        p.top_p = 0.45f;
        CHECK(draw_counts(&p, logits, 4, DRAWS, counts) == 0);
        CHECKF(counts[1] == DRAWS, "top-p 0.45: only the 0.5 token expected, it came %ld of %d times", counts[1],
               DRAWS);
    }
}

static int32_t greedy_with(const float *logits, int32_t n, float penalty, int32_t last_n, const int32_t *history,
                           size_t n_history) {
    lm_sampler_params p = plain(1);
    p.temperature = 0.0f;
    p.repeat_penalty = penalty;
    p.repeat_last_n = last_n;
    lm_sampler *s = make(&p, n);
    int32_t t = lm_sampler_sample(s, logits, history, n_history);
    lm_sampler_free(s);
    return t;
}

static void test_repeat_penalty(void) {
    /* Token 1 (2.0) leads token 2 (1.9) and is in the history. */
    const float pos[4] = {0.0f, 2.0f, 1.9f, 0.5f};
    const int32_t h1[1] = {1};
    CHECK(greedy_with(pos, 4, 1.0f, 64, h1, 1) == 1);  /* no penalty */
    CHECK(greedy_with(pos, 4, 1.02f, 64, h1, 1) == 1); /* 2.0 / 1.02 = 1.96 still leads */
    CHECK(greedy_with(pos, 4, 1.2f, 64, h1, 1) == 2);  /* 2.0 / 1.2 = 1.67 loses */
    CHECK(greedy_with(pos, 4, 1.2f, 64, NULL, 0) == 1);
    /* The logits passed in are not modified. */
    CHECK(pos[1] == 2.0f);

    /* Positive logits are divided: multiplying 2.0 by 1.2 would keep it on top. */
    const float pos2[3] = {1.0f, 2.0f, 1.8f};
    CHECK(greedy_with(pos2, 3, 1.2f, 64, h1, 1) == 2);

    /* Negative logits are multiplied: -1.0 * 1.5 = -1.5 falls behind -1.1,
     * where dividing (-0.67) would keep token 0 on top. */
    const float neg[3] = {-1.0f, -1.1f, -5.0f};
    const int32_t h0[1] = {0};
    CHECK(greedy_with(neg, 3, 1.5f, 64, h0, 1) == 1);
    CHECK(greedy_with(neg, 3, 1.05f, 64, h0, 1) == 0); /* -1.05 still leads */

    /* A penalty below 1 favours repeats: 0.9 / 0.5 = 1.8 beats 1.0. */
    const float fav[2] = {1.0f, 0.9f};
    const int32_t hf[1] = {1};
    CHECK(greedy_with(fav, 2, 0.5f, 64, hf, 1) == 1);

    /* A token repeated in the window is penalised once, as llama.cpp does:
     * 2.0 / 1.2 = 1.67 still beats 1.6 (twice would be 1.39). */
    const float once[3] = {0.0f, 2.0f, 1.6f};
    const int32_t h4[4] = {1, 1, 1, 1};
    CHECK(greedy_with(once, 3, 1.2f, 64, h4, 4) == 1);

    /* Only the last repeat_last_n tokens count. Token 1 is 4 back. */
    const int32_t hw[4] = {1, 3, 3, 3};
    CHECK(greedy_with(pos, 4, 1.2f, 3, hw, 4) == 1); /* outside the window */
    CHECK(greedy_with(pos, 4, 1.2f, 4, hw, 4) == 2); /* inside */
    CHECK(greedy_with(pos, 4, 1.2f, 100, hw, 4) == 2);
    CHECK(greedy_with(pos, 4, 1.2f, 0, hw, 4) == 1); /* 0: looks at nothing */

    /* History ids outside the vocabulary are ignored, not used as indices. */
    const int32_t hbad[4] = {-1, 4, 1000000, -7};
    CHECK(greedy_with(pos, 4, 1.2f, 64, hbad, 4) == 1);

    /* The penalty also shapes sampling: at temperature 1 a strongly
     * penalised leader all but disappears. */
    {
        const float two[2] = {3.0f, 0.0f};
        const int32_t h[1] = {0};
        lm_sampler_params p = plain(200);
        p.repeat_penalty = 100.0f; /* 3.0 -> 0.03 */
        lm_sampler *s = make(&p, 2);
        long c0 = 0;
        for (int i = 0; i < 20000; i++) c0 += lm_sampler_sample(s, two, h, 1) == 0;
        lm_sampler_free(s);
        double want0 = exp(0.03) / (exp(0.03) + 1.0);
        CHECKF(fabs((double)c0 / 20000 - want0) <= 0.02, "penalised sampling: token 0 frequency %.4f, want %.4f",
               (double)c0 / 20000, want0);
    }
}

static void test_bad_params(void) {
    struct {
        const char *what;
        lm_sampler_params p;
        int32_t n_vocab;
    } cases[14];
    int n = 0;
#define CASE(desc, field, value)            \
    cases[n].what = desc;                   \
    cases[n].p = plain(1);                  \
    cases[n].p.field = value;               \
    cases[n].n_vocab = 10;                  \
    n++;
    CASE("negative temperature", temperature, -0.1f)
    CASE("NaN temperature", temperature, NAN)
    CASE("top-p 0", top_p, 0.0f)
    CASE("top-p > 1", top_p, 1.01f)
    CASE("negative top-p", top_p, -0.5f)
    CASE("NaN top-p", top_p, NAN)
    CASE("min-p > 1", min_p, 1.5f)
    CASE("negative min-p", min_p, -0.1f)
    CASE("negative top-k", top_k, -1)
    CASE("repeat penalty 0", repeat_penalty, 0.0f)
    CASE("negative repeat penalty", repeat_penalty, -1.0f)
    CASE("negative repeat-last-n", repeat_last_n, -1)
    CASE("empty vocabulary", seed, 1)
    cases[n - 1].n_vocab = 0;
#undef CASE
    for (int i = 0; i < n; i++) {
        lm_error err = {0};
        lm_sampler *s = (lm_sampler *)&err; /* must be reset to NULL */
        lm_status st = lm_sampler_init(&cases[i].p, cases[i].n_vocab, &s, &err);
        CHECKF(st != LM_OK, "%s was accepted", cases[i].what);
        CHECKF(err.message[0] != '\0', "%s: no error message", cases[i].what);
        CHECKF(s == NULL, "%s: *out not NULL on failure", cases[i].what);
        if (st == LM_OK) lm_sampler_free(s);
    }

    /* Edges that are valid. */
    lm_sampler_params ok[4] = {plain(1), plain(1), plain(1), plain(1)};
    ok[0].temperature = 0.0f;
    ok[1].top_p = 1.0f;
    ok[1].min_p = 1.0f;
    ok[2].top_k = 1000; /* more than the vocabulary */
    ok[3] = lm_sampler_default_params();
    for (int i = 0; i < 4; i++) {
        lm_error err = {0};
        lm_sampler *s = NULL;
        CHECKF(lm_sampler_init(&ok[i], 10, &s, &err) == LM_OK && s, "valid parameters %d refused: %s", i, err.message);
        lm_sampler_free(s);
    }

    /* The documented defaults. */
    lm_sampler_params d = lm_sampler_default_params();
    CHECK(d.temperature == 0.8f && d.top_k == 40 && d.top_p == 0.95f && d.min_p == 0.05f && d.repeat_penalty == 1.0f);
}

/* A +inf logit has all the probability; all -inf leaves only the argmax. */
static void test_infinite_logits(void) {
    float with_inf[4] = {0.0f, INFINITY, 1.0f, -3.0f};
    long counts[4];
    lm_sampler_params p = plain(5);
    CHECK(draw_counts(&p, with_inf, 4, 1000, counts) == 0);
    CHECKF(counts[1] == 1000, "+inf token drawn %ld of 1000 times", counts[1]);
    float all_neg_inf[3] = {-INFINITY, -INFINITY, -INFINITY};
    CHECK(draw_counts(&p, all_neg_inf, 3, 100, counts) == 0);
    CHECK(counts[0] == 100);
}

int main(void) {
    test_greedy();
    test_infinite_logits();
    test_determinism();
    test_distribution();
    test_truncation();
    test_repeat_penalty();
    test_bad_params();
    TEST_END();
}
