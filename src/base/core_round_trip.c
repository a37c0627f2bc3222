/* lm_measure_core_round_trip (llmos/machine.h): two threads pinned to two
 * CPUs pass a counter back and forth through one cache line. */
#define _GNU_SOURCE
#include "llmos/machine.h"

#include <stdlib.h>
#include <time.h>

#if defined(__linux__)
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

enum { BOUNCES = 20000, RUNS = 5 };

typedef struct {
    _Alignas(64) _Atomic long word; /* 2i + 1: the first thread has sent bounce i; 2i + 2: the second answered; -1: give up */
    char pad[64 - sizeof(long)];
    int cpu[2];
    double seconds; /* the first thread's time for BOUNCES round trips, 0 if it gave up */
} bounce_job;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int pin_to(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0;
}

/* Waits until word is want (1) or -1 / a second has passed (0). */
static int wait_for(bounce_job *j, long want, double give_up_at) {
    for (unsigned spins = 1;; spins++) {
        const long w = atomic_load_explicit(&j->word, memory_order_acquire);
        if (w == want) return 1;
        if (w < 0 || (spins % 1024 == 0 && now() > give_up_at)) {
            atomic_store_explicit(&j->word, -1, memory_order_release);
            return 0;
        }
    }
}

/* Pins the calling thread to j->cpu[which]; on failure tells the other
 * thread to give up. */
static int start_on(bounce_job *j, int which) {
    if (pin_to(j->cpu[which])) return 1;
    atomic_store_explicit(&j->word, -1, memory_order_release);
    return 0;
}

static void *second(void *arg) {
    bounce_job *j = arg;
    const double give_up_at = now() + 1.0;
    if (!start_on(j, 1)) return NULL;
    for (long i = 0; i < BOUNCES; i++) {
        if (!wait_for(j, 2 * i + 1, give_up_at)) return NULL;
        atomic_store_explicit(&j->word, 2 * i + 2, memory_order_release);
    }
    return NULL;
}

static void *first(void *arg) {
    bounce_job *j = arg;
    const double give_up_at = now() + 1.0;
    if (!start_on(j, 0)) return NULL;
    const double t0 = now();
    for (long i = 0; i < BOUNCES; i++) {
        long expected = 2 * i; /* the second thread's answer (0 to start) */
        if (!atomic_compare_exchange_strong_explicit(&j->word, &expected, 2 * i + 1, memory_order_acq_rel,
                                                     memory_order_acquire)) {
            return NULL; /* -1: the second gave up */
        }
        if (!wait_for(j, 2 * i + 2, give_up_at)) return NULL;
    }
    j->seconds = now() - t0;
    return NULL;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double lm_measure_core_round_trip(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return 0.0;
    int cpus[2], found = 0;
    for (int c = 0; c < CPU_SETSIZE && found < 2; c++) {
        if (CPU_ISSET(c, &set)) cpus[found++] = c;
    }
    if (found < 2) return 0.0;
    double ns[RUNS];
    for (int r = 0; r < RUNS; r++) {
        bounce_job *j = aligned_alloc(64, sizeof *j);
        if (!j) return 0.0;
        atomic_init(&j->word, 0);
        j->cpu[0] = cpus[0];
        j->cpu[1] = cpus[1];
        j->seconds = 0;
        pthread_t a, b;
        if (pthread_create(&b, NULL, second, j) != 0) {
            free(j);
            return 0.0;
        }
        if (pthread_create(&a, NULL, first, j) != 0) {
            atomic_store_explicit(&j->word, -1, memory_order_release);
            pthread_join(b, NULL);
            free(j);
            return 0.0;
        }
        pthread_join(a, NULL);
        pthread_join(b, NULL);
        const double seconds = j->seconds;
        free(j);
        if (seconds <= 0) return 0.0;
        ns[r] = seconds / BOUNCES * 1e9;
    }
    qsort(ns, RUNS, sizeof *ns, cmp_double);
    return ns[RUNS / 2];
}
#else
double lm_measure_core_round_trip(void) { return 0.0; }
#endif
