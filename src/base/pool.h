/* One process-wide pool of worker threads for the inference kernels.
 *
 * A decode step of a small model is ~50 short parallel regions (each matrix
 * product, each layer's attention); an OpenMP fork/join costs ~3 us on the
 * 2-vCPU machines we measure on, a spinning handoff ~0.6 us (numbers in
 * docs/performance.md). So the hot paths hand work to these threads:
 * lm_parallel(n, fn, arg) runs fn(arg, 0, n) on the calling thread and
 * fn(arg, i, n) on workers 1..n-1, and returns when all n have returned.
 *
 * Workers spin for a short while after each region (the next one usually
 * follows within microseconds), then sleep on a futex, so an idle process
 * costs nothing. One region runs at a time: a second caller waits its turn,
 * and a call from inside a region (nested) runs fn(arg, 0, 1) on the spot.
 * Any thread may call; the server's worker thread and the CLI share the pool. */
#ifndef LLMOS_POOL_H
#define LLMOS_POOL_H

#include <stdint.h>

typedef void (*lm_pool_fn)(void *arg, int thread, int n_threads);

/* Runs fn on n_threads threads (at most LM_POOL_MAX_THREADS; fewer if the
 * workers cannot be started, which fn sees in its n_threads argument). */
void lm_parallel(int n_threads, lm_pool_fn fn, void *arg);

enum { LM_POOL_MAX_THREADS = 256 };

/* The CPUs this process may run on (its affinity mask), at least 1: the
 * count the pool compares regions against to decide whether to spin. */
int lm_cpu_count(void);

/* Loops over items 0..n-1: fn(arg, begin, end, thread) gets runs of items,
 * thread being its caller's index (for per-thread scratch). lm_parallel_for
 * gives each thread one even run (as OpenMP's schedule(static)), which it
 * takes in chunks and then helps the others finish theirs; the dynamic
 * form hands out runs of `chunk` items as threads come for them. Neither
 * starts more threads than there are items (or chunks). */
typedef void (*lm_range_fn)(void *arg, int64_t begin, int64_t end, int thread);
void lm_parallel_for(int n_threads, int64_t n, lm_range_fn fn, void *arg);
void lm_parallel_for_dynamic(int n_threads, int64_t n, int64_t chunk, lm_range_fn fn, void *arg);

/* Thread t's share [*begin, *end) of n items split evenly into n_threads
 * contiguous runs (OpenMP's schedule(static)). */
static inline void lm_split(int64_t n, int t, int n_threads, int64_t *begin, int64_t *end) {
    int64_t per = n / n_threads, extra = n % n_threads;
    *begin = t * per + (t < extra ? t : extra);
    *end = *begin + per + (t < extra);
}

#endif
