/* The worker pool of pool.h.
 *
 * State: one 32-bit word, `region`, holds a region counter (high 23 bits)
 * and the region's thread count (low 9 bits). The caller writes fn, arg and
 * pending, then stores a new word (release); a worker that loads a word it
 * has not seen (acquire) and whose index is below the count runs fn and
 * decrements pending. Because the count travels in the same word as the
 * counter, a worker never pairs one region's counter with another's count.
 * fn and arg stay put until pending reaches 0, so participants may read them
 * at leisure; the word is also the futex that sleeping workers wait on. */
#define _GNU_SOURCE
#include "pool.h"

#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

enum {
    COUNT_BITS = 9, /* LM_POOL_MAX_THREADS fits */
    COUNT_MASK = (1 << COUNT_BITS) - 1,
};
_Static_assert((int)LM_POOL_MAX_THREADS <= (int)COUNT_MASK, "thread count must fit the region word");

/* How long an idle worker spins before sleeping: decode steps follow each
 * other within tens of microseconds, a futex wake costs about as much. */
#define SPIN_NS 1000000L

static struct {
    pthread_mutex_t lock; /* held by the caller for the whole region */
    int n_workers;        /* started so far; under lock */
    uint32_t start_word[LM_POOL_MAX_THREADS]; /* the word each worker was started at; under lock */
    lm_pool_fn fn;
    void *arg;
    _Alignas(64) _Atomic uint32_t region;
    _Alignas(64) _Atomic int pending; /* participants still running */
    _Atomic int asleep[LM_POOL_MAX_THREADS]; /* worker i waits in the kernel */
    _Atomic long spin_ns; /* how long idle workers spin: 0 with more threads than CPUs */
    int n_cpus;           /* CPUs this process may run on; under lock */
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Set inside a region (and for good in workers): a nested call runs alone. */
static _Thread_local int in_region;

static long elapsed_ns(const struct timespec *t0) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (t.tv_sec - t0->tv_sec) * 1000000000L + (t.tv_nsec - t0->tv_nsec);
}

/* Worker i sleeps on the region word with futex bit (i - 1) % 32, so a
 * region wakes only its own participants (the workers past a smaller
 * region's count stay asleep). */
static uint32_t wake_bits(int n_threads) { return n_threads - 1 >= 32 ? ~0u : (1u << (n_threads - 1)) - 1; }

static void sleep_until_changed(int index, uint32_t seen) {
    /* We say we sleep, then the kernel compares the word; the caller stores
     * the word, then reads our flag: one of us sees the other (both
     * sequentially consistent). */
    atomic_store(&pool.asleep[index], 1);
    syscall(SYS_futex, (uint32_t *)&pool.region, FUTEX_WAIT_BITSET_PRIVATE, seen, NULL, NULL,
            1u << ((index - 1) % 32));
    atomic_store(&pool.asleep[index], 0);
}

static void *worker_main(void *p) {
    const int index = (int)(intptr_t)p; /* 1 .. LM_POOL_MAX_THREADS - 1 */
    in_region = 1;
    uint32_t seen = pool.start_word[index];
    struct timespec last_work; /* spinning lasts SPIN_NS after the last region we ran */
    clock_gettime(CLOCK_MONOTONIC, &last_work);
    for (;;) {
        uint32_t w;
        for (unsigned spins = 1; (w = atomic_load_explicit(&pool.region, memory_order_acquire)) == seen; spins++) {
            cpu_relax();
            if (spins % 256 == 0 && elapsed_ns(&last_work) > atomic_load_explicit(&pool.spin_ns, memory_order_relaxed)) {
                sleep_until_changed(index, seen);
            }
        }
        seen = w;
        int n = (int)(w & COUNT_MASK);
        if (index >= n) continue; /* not in this region */
        pool.fn(pool.arg, index, n);
        atomic_fetch_sub_explicit(&pool.pending, 1, memory_order_release);
        clock_gettime(CLOCK_MONOTONIC, &last_work);
    }
    return NULL;
}

/* Starts worker number pool.n_workers + 1; under lock. Signals stay with
 * the program's own threads (a worker never runs a handler). */
static int start_worker(void) {
    const int index = pool.n_workers + 1;
    pool.start_word[index] = atomic_load_explicit(&pool.region, memory_order_relaxed);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t attr;
    pthread_t t;
    int ok = pthread_attr_init(&attr) == 0;
    if (ok) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        ok = pthread_create(&t, &attr, worker_main, (void *)(intptr_t)index) == 0;
        pthread_attr_destroy(&attr);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (ok) pool.n_workers++;
    return ok;
}

int lm_cpu_count(void) {
    cpu_set_t set;
    long n = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > INT_MAX ? INT_MAX : (int)n;
}

void lm_parallel(int n_threads, lm_pool_fn fn, void *arg) {
    if (n_threads > LM_POOL_MAX_THREADS) n_threads = LM_POOL_MAX_THREADS;
    if (n_threads <= 1 || in_region) {
        fn(arg, 0, 1);
        return;
    }
    pthread_mutex_lock(&pool.lock);
    if (!pool.n_cpus) pool.n_cpus = lm_cpu_count();
    while (pool.n_workers < n_threads - 1 && start_worker()) {
    }
    if (n_threads > pool.n_workers + 1) n_threads = pool.n_workers + 1;
    if (n_threads <= 1) { /* no thread could be started */
        pthread_mutex_unlock(&pool.lock);
        fn(arg, 0, 1);
        return;
    }
    /* With more threads than CPUs a spinning thread holds the CPU that the
     * thread it waits for needs: then nobody spins (as libgomp does). */
    const int oversubscribed = n_threads > pool.n_cpus;
    atomic_store_explicit(&pool.spin_ns, oversubscribed ? 0 : SPIN_NS, memory_order_relaxed);
    pool.fn = fn;
    pool.arg = arg;
    atomic_store_explicit(&pool.pending, n_threads - 1, memory_order_relaxed);
    uint32_t word = atomic_load_explicit(&pool.region, memory_order_relaxed);
    word = (((word >> COUNT_BITS) + 1) << COUNT_BITS) | (uint32_t)n_threads;
    atomic_store(&pool.region, word); /* sequentially consistent: see sleep_until_changed */
    for (int i = 1; i < n_threads; i++) {
        if (atomic_load(&pool.asleep[i])) {
            syscall(SYS_futex, (uint32_t *)&pool.region, FUTEX_WAKE_BITSET_PRIVATE, INT_MAX, NULL, NULL, wake_bits(n_threads));
            break;
        }
    }
    in_region = 1;
    fn(arg, 0, n_threads);
    in_region = 0;
    /* The workers' shares take as long as ours; a worker that lost its CPU
     * (more runnable threads than cores) gets it back through sched_yield. */
    for (unsigned spins = 1; atomic_load_explicit(&pool.pending, memory_order_acquire) > 0; spins++) {
        cpu_relax();
        if (oversubscribed || spins % 4096 == 0) sched_yield();
    }
    pthread_mutex_unlock(&pool.lock);
}

/* ---- parallel loops over items ---- */

typedef struct {
    lm_range_fn fn;
    void *arg;
    int64_t n, chunk;
    _Alignas(64) _Atomic int64_t next; /* dynamic: the first item not yet handed out */
} range_job;

/* lm_parallel_for: thread t owns the t-th even run of items and takes it
 * in chunks from the front, then helps the others with what they have not
 * started. Without interference every thread streams through its own run
 * (handing chunks out from one counter interleaves the threads' memory
 * streams, measured 5% slower); when one thread loses its CPU for a while
 * (the server's connection threads share the cores) the other finishes
 * its work instead of waiting for it. */
enum { MAX_OWNED = 64, CHUNKS_PER_RUN = 8 };
typedef struct {
    _Alignas(64) _Atomic int64_t next; /* the run's first item not yet taken */
    int64_t end;
} owned_run;

typedef struct {
    lm_range_fn fn;
    void *arg;
    int64_t chunk;
    int n_runs; /* the threads asked for; the pool may give fewer, who then take all runs */
    owned_run run[MAX_OWNED];
} owned_job;

/* Chunks shrink toward a run's end (a quarter of what is left, at most
 * j->chunk): the last ones are single items, so that the threads finish
 * within an item of each other. */
static void owned_share(void *p, int t, int nt) {
    owned_job *j = p;
    (void)nt;
    for (int k = 0; k < j->n_runs; k++) {
        owned_run *r = &j->run[(t + k) % j->n_runs]; /* ours first */
        int64_t begin = atomic_load_explicit(&r->next, memory_order_relaxed);
        while (begin < r->end) {
            const int64_t quarter = (r->end - begin) / 4;
            const int64_t take = quarter < 1 ? 1 : quarter < j->chunk ? quarter : j->chunk;
            if (atomic_compare_exchange_weak_explicit(&r->next, &begin, begin + take, memory_order_relaxed,
                                                      memory_order_relaxed)) {
                j->fn(j->arg, begin, begin + take, t);
                begin = atomic_load_explicit(&r->next, memory_order_relaxed);
            }
        }
    }
}

static void static_share(void *p, int t, int nt) {
    range_job *j = p;
    int64_t begin, end;
    lm_split(j->n, t, nt, &begin, &end);
    if (begin < end) j->fn(j->arg, begin, end, t);
}

static void dynamic_share(void *p, int t, int nt) {
    (void)nt;
    range_job *j = p;
    for (;;) {
        int64_t begin = atomic_fetch_add_explicit(&j->next, j->chunk, memory_order_relaxed);
        if (begin >= j->n) return;
        j->fn(j->arg, begin, begin + j->chunk < j->n ? begin + j->chunk : j->n, t);
    }
}

void lm_parallel_for(int n_threads, int64_t n, lm_range_fn fn, void *arg) {
    if (n <= 0) return;
    if (n_threads > n) n_threads = (int)n;
    if (n_threads < 1) n_threads = 1;
    if (n_threads > MAX_OWNED) {
        range_job j = {fn, arg, n, 0, 0};
        lm_parallel(n_threads, static_share, &j);
        return;
    }
    owned_job *j = &(owned_job){.fn = fn, .arg = arg, .n_runs = n_threads};
    const int64_t per = n / n_threads;
    j->chunk = per / CHUNKS_PER_RUN > 1 ? per / CHUNKS_PER_RUN : 1;
    for (int t = 0; t < n_threads; t++) {
        int64_t begin, end;
        lm_split(n, t, n_threads, &begin, &end);
        atomic_init(&j->run[t].next, begin);
        j->run[t].end = end;
    }
    lm_parallel(n_threads, owned_share, j);
}

void lm_parallel_for_dynamic(int n_threads, int64_t n, int64_t chunk, lm_range_fn fn, void *arg) {
    if (n <= 0) return;
    if (chunk < 1) chunk = 1;
    if (n_threads > (n + chunk - 1) / chunk) n_threads = (int)((n + chunk - 1) / chunk);
    range_job j = {fn, arg, n, chunk, 0};
    lm_parallel(n_threads, dynamic_share, &j);
}
