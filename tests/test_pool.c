/* The worker pool (base/pool.h): every thread index runs once per region,
 * loops cover every item exactly once, nested calls run alone, callers on
 * several threads take turns, and a long run of short regions (a decode
 * step's pattern) loses and repeats nothing. */
#include "base/pool.h"
#include "test.h"

#include <pthread.h>
#include <stdatomic.h>

typedef struct {
    _Atomic int ran[LM_POOL_MAX_THREADS];
    _Atomic int reported_n; /* the n_threads each thread saw, or -1 if they differ */
    _Atomic int nested_ok;
} region_log;

static void log_thread(void *arg, int t, int nt) {
    region_log *r = arg;
    atomic_fetch_add(&r->ran[t], 1);
    int expected = 0;
    if (!atomic_compare_exchange_strong(&r->reported_n, &expected, nt) && expected != nt) atomic_store(&r->reported_n, -1);
}

static void check_region(int n) {
    region_log r = {0};
    lm_parallel(n, log_thread, &r);
    int nt = atomic_load(&r.reported_n);
    CHECKF(nt == (n < 1 ? 1 : n > LM_POOL_MAX_THREADS ? LM_POOL_MAX_THREADS : n), "asked %d, ran %d", n, nt);
    for (int t = 0; t < LM_POOL_MAX_THREADS; t++) {
        int want = t < (nt > 0 ? nt : 1) ? 1 : 0;
        if (atomic_load(&r.ran[t]) != want) {
            CHECKF(0, "region of %d: thread %d ran %d times", n, t, atomic_load(&r.ran[t]));
            break;
        }
    }
}

typedef struct {
    int64_t n;
    _Atomic int *hits;
    _Atomic int bad_thread;
    int n_threads;
} cover_job;

static void mark_range(void *arg, int64_t begin, int64_t end, int thread) {
    cover_job *j = arg;
    if (thread < 0 || thread >= j->n_threads || begin < 0 || end > j->n || begin >= end) atomic_store(&j->bad_thread, 1);
    for (int64_t i = begin; i < end && i >= 0 && i < j->n; i++) atomic_fetch_add(&j->hits[i], 1);
}

static void check_cover(int n_threads, int64_t n, int64_t chunk) {
    _Atomic int *hits = calloc((size_t)(n > 0 ? n : 1), sizeof *hits);
    REQUIRE(hits);
    cover_job j = {n, hits, 0, n_threads};
    if (chunk) lm_parallel_for_dynamic(n_threads, n, chunk, mark_range, &j);
    else lm_parallel_for(n_threads, n, mark_range, &j);
    int64_t wrong = 0;
    for (int64_t i = 0; i < n; i++) wrong += atomic_load(&hits[i]) != 1;
    CHECKF(wrong == 0 && !atomic_load(&j.bad_thread), "%d threads, %lld items, chunk %lld: %lld items not run once",
           n_threads, (long long)n, (long long)chunk, (long long)wrong);
    free(hits);
}

static void inner(void *arg, int t, int nt) {
    region_log *r = arg;
    if (t == 0 && nt == 1) atomic_fetch_add(&r->nested_ok, 1);
}

static void outer(void *arg, int t, int nt) {
    (void)t, (void)nt;
    lm_parallel(4, inner, arg); /* from inside a region: alone, at once */
}

/* Two caller threads, each running many regions that add up its items. */
typedef struct {
    int64_t sum[LM_POOL_MAX_THREADS];
} sums;

static void add_items(void *arg, int64_t begin, int64_t end, int thread) {
    sums *s = arg;
    for (int64_t i = begin; i < end; i++) s->sum[thread] += i;
}

static void *caller(void *arg) {
    int *failures = arg;
    for (int rep = 0; rep < 2000; rep++) {
        sums s = {{0}};
        lm_parallel_for(3, 1000, add_items, &s);
        int64_t total = 0;
        for (int t = 0; t < 3; t++) total += s.sum[t];
        if (total != 999 * 1000 / 2) (*failures)++;
    }
    return NULL;
}

int main(void) {
    for (int n = -1; n <= 6; n++) check_region(n);
    check_region(LM_POOL_MAX_THREADS + 5);
    check_region(2); /* fewer threads after more: the others sit out */

    const int64_t sizes[] = {0, 1, 2, 3, 15, 16, 17, 1000, 4099};
    for (int nt = 1; nt <= 5; nt++) {
        for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
            check_cover(nt, sizes[i], 0);
            check_cover(nt, sizes[i], 1);
            check_cover(nt, sizes[i], 7);
        }
    }

    region_log r = {0};
    lm_parallel(3, outer, &r);
    CHECKF(atomic_load(&r.nested_ok) == 3, "nested regions ran alone %d times of 3", atomic_load(&r.nested_ok));

    /* A decode step's pattern: many short regions back to back. */
    int64_t total = 0;
    for (int rep = 0; rep < 100000; rep++) {
        sums s = {{0}};
        lm_parallel_for(2, 64, add_items, &s);
        total += s.sum[0] + s.sum[1];
    }
    CHECK(total == (int64_t)100000 * (63 * 64 / 2));

    int failures[2] = {0, 0};
    pthread_t t[2];
    REQUIRE(pthread_create(&t[0], NULL, caller, &failures[0]) == 0);
    REQUIRE(pthread_create(&t[1], NULL, caller, &failures[1]) == 0);
    pthread_join(t[0], NULL);
    pthread_join(t[1], NULL);
    CHECKF(failures[0] == 0 && failures[1] == 0, "concurrent callers: %d and %d wrong sums", failures[0], failures[1]);
    TEST_END();
}
