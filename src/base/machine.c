#include "llmos/machine.h"

#include "cpu.h"
#include "pool.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Sums n floats read as `streams` sequential streams at once (the n
 * floats cut into that many parts, 32 floats of each in turn). One stream
 * per thread read 4-34% below four (three runs) on the 2-vCPU EPYC VMs
 * this was measured on (the x16 kernels, whose prefetches run ahead of
 * their loads, streamed faster than a one-stream probe said the machine
 * could); the probe reports the better of 1 and 4. */
#if defined(__x86_64__)
__attribute__((target("avx2"))) static double sum_avx2(const float *p, size_t n, int streams) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    const size_t part = n / (size_t)streams / 32 * 32;
    for (size_t i = 0; i < part; i += 32) {
        for (int s = 0; s < streams; s++) {
            const float *q = p + (size_t)s * part + i;
            a0 = _mm256_add_ps(a0, _mm256_load_ps(q));
            a1 = _mm256_add_ps(a1, _mm256_load_ps(q + 8));
            a2 = _mm256_add_ps(a2, _mm256_load_ps(q + 16));
            a3 = _mm256_add_ps(a3, _mm256_load_ps(q + 24));
        }
    }
    float out[8];
    _mm256_storeu_ps(out, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    double s = 0;
    for (int k = 0; k < 8; k++) s += out[k];
    return s;
}
#endif

static double sum_scalar(const float *p, size_t n, int streams) {
    float a[8] = {0};
    const size_t part = n / (size_t)streams / 8 * 8;
    for (size_t i = 0; i < part; i += 8) {
        for (int s = 0; s < streams; s++) {
            for (int k = 0; k < 8; k++) a[k] += p[(size_t)s * part + i + k];
        }
    }
    double s = 0;
    for (int k = 0; k < 8; k++) s += a[k];
    return s;
}

/* The threads of these measurements are the worker pool's, the threads
 * that run the model (base/pool.h). Each writes its result to its own slot. */
typedef struct {
    float *buf;
    size_t n;
    int use_avx2, width, streams;
    long iters;
    double result[LM_POOL_MAX_THREADS];
    int threads; /* how many threads the pool gave */
} measure_job;

/* Thread t's share of buf: whole runs of 32 floats, the rest to the last. */
static void share_of(const measure_job *j, int t, int nt, size_t *start, size_t *len) {
    size_t per = j->n / (size_t)nt / 32 * 32;
    *start = per * (size_t)t;
    *len = t == nt - 1 ? j->n - *start : per;
}

/* First touch from the threads that will read, so pages are local. */
static void touch_share(void *arg, int t, int nt) {
    measure_job *j = arg;
    size_t start, len;
    share_of(j, t, nt, &start, &len);
    for (size_t i = 0; i < len; i++) j->buf[start + i] = 1.0f;
}

static void read_share(void *arg, int t, int nt) {
    measure_job *j = arg;
    size_t start, len;
    share_of(j, t, nt, &start, &len);
    if (t == 0) j->threads = nt; /* (one writer; the others report through result[t]) */
#if defined(__x86_64__)
    j->result[t] = j->use_avx2 ? sum_avx2(j->buf + start, len, j->streams) : sum_scalar(j->buf + start, len, j->streams);
#else
    j->result[t] = sum_scalar(j->buf + start, len, j->streams);
#endif
}

static double result_sum(const measure_job *j) {
    double s = 0;
    for (int t = 0; t < j->threads; t++) s += j->result[t];
    return s;
}

struct lm_bandwidth_probe {
    measure_job job;
    int n_threads;
};

lm_bandwidth_probe *lm_bandwidth_probe_new(int n_threads, size_t bytes) {
    lm_bandwidth_probe *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    measure_job *j = &p->job;
    p->n_threads = n_threads < 1 ? 1 : n_threads;
    j->n = bytes / sizeof(float) / 256 * 256;
    j->buf = j->n ? aligned_alloc(64, j->n * sizeof(float)) : NULL;
    if (!j->buf) {
        free(p);
        return NULL;
    }
#if defined(__x86_64__)
    j->use_avx2 = lm_cpu_has_avx2();
#endif
    lm_parallel(p->n_threads, touch_share, j);
    return p;
}

double lm_bandwidth_probe_measure(lm_bandwidth_probe *p, int passes) {
    measure_job *j = &p->job;
    double best = 1e30, sink = 0;
    for (int pass = 0; pass < (passes < 1 ? 1 : passes); pass++) {
        j->streams = pass % 2 ? 4 : 1;
        double t0 = now();
        lm_parallel(p->n_threads, read_share, j);
        double dt = now() - t0;
        sink += result_sum(j);
        if (dt < best) best = dt;
    }
    volatile double keep = sink;
    (void)keep;
    return (double)(j->n * sizeof(float)) / best / 1e9;
}

void lm_bandwidth_probe_free(lm_bandwidth_probe *p) {
    if (!p) return;
    free(p->job.buf);
    free(p);
}

double lm_measure_read_bandwidth(int n_threads, size_t bytes) {
    lm_bandwidth_probe *p = lm_bandwidth_probe_new(n_threads, bytes);
    if (!p) return 0.0;
    double gb_per_s = lm_bandwidth_probe_measure(p, 6);
    lm_bandwidth_probe_free(p);
    return gb_per_s;
}

#if defined(__x86_64__)
/* 12 independent chains in registers hide the FMA latency (4 cycles x 2 ports + slack). */
__attribute__((target("avx2,fma"))) static double fma_chains_avx2(long iters) {
    volatile float seed = 1e-7f;
    const __m256 a = _mm256_set1_ps(seed), b = _mm256_set1_ps(0.999999f);
    /* Distinct starting values: chains that start equal compute the same
     * thing, and the compiler merges them into one. */
    __m256 c0 = _mm256_set1_ps(seed * 1), c1 = _mm256_set1_ps(seed * 2), c2 = _mm256_set1_ps(seed * 3),
           c3 = _mm256_set1_ps(seed * 4), c4 = _mm256_set1_ps(seed * 5), c5 = _mm256_set1_ps(seed * 6),
           c6 = _mm256_set1_ps(seed * 7), c7 = _mm256_set1_ps(seed * 8), c8 = _mm256_set1_ps(seed * 9),
           c9 = _mm256_set1_ps(seed * 10), c10 = _mm256_set1_ps(seed * 11), c11 = _mm256_set1_ps(seed * 12);
    for (long i = 0; i < iters; i++) {
        c0 = _mm256_fmadd_ps(c0, b, a);
        c1 = _mm256_fmadd_ps(c1, b, a);
        c2 = _mm256_fmadd_ps(c2, b, a);
        c3 = _mm256_fmadd_ps(c3, b, a);
        c4 = _mm256_fmadd_ps(c4, b, a);
        c5 = _mm256_fmadd_ps(c5, b, a);
        c6 = _mm256_fmadd_ps(c6, b, a);
        c7 = _mm256_fmadd_ps(c7, b, a);
        c8 = _mm256_fmadd_ps(c8, b, a);
        c9 = _mm256_fmadd_ps(c9, b, a);
        c10 = _mm256_fmadd_ps(c10, b, a);
        c11 = _mm256_fmadd_ps(c11, b, a);
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(c0, c1), _mm256_add_ps(c2, c3)),
                             _mm256_add_ps(_mm256_add_ps(c4, c5), _mm256_add_ps(c6, c7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(c8, c9), _mm256_add_ps(c10, c11)));
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0];
}

/* The same chains in 512-bit registers: CPUs with two full-width FMA units
 * (e.g. AMD Zen 5, Intel server cores) reach twice the AVX2 figure. */
__attribute__((target("avx512f"))) static double fma_chains_avx512(long iters) {
    volatile float seed = 1e-7f;
    const __m512 a = _mm512_set1_ps(seed), b = _mm512_set1_ps(0.999999f);
    /* Distinct starting values: chains that start equal compute the same
     * thing, and the compiler merges them into one. */
    __m512 c0 = _mm512_set1_ps(seed * 1), c1 = _mm512_set1_ps(seed * 2), c2 = _mm512_set1_ps(seed * 3),
           c3 = _mm512_set1_ps(seed * 4), c4 = _mm512_set1_ps(seed * 5), c5 = _mm512_set1_ps(seed * 6),
           c6 = _mm512_set1_ps(seed * 7), c7 = _mm512_set1_ps(seed * 8), c8 = _mm512_set1_ps(seed * 9),
           c9 = _mm512_set1_ps(seed * 10), c10 = _mm512_set1_ps(seed * 11), c11 = _mm512_set1_ps(seed * 12);
    for (long i = 0; i < iters; i++) {
        c0 = _mm512_fmadd_ps(c0, b, a);
        c1 = _mm512_fmadd_ps(c1, b, a);
        c2 = _mm512_fmadd_ps(c2, b, a);
        c3 = _mm512_fmadd_ps(c3, b, a);
        c4 = _mm512_fmadd_ps(c4, b, a);
        c5 = _mm512_fmadd_ps(c5, b, a);
        c6 = _mm512_fmadd_ps(c6, b, a);
        c7 = _mm512_fmadd_ps(c7, b, a);
        c8 = _mm512_fmadd_ps(c8, b, a);
        c9 = _mm512_fmadd_ps(c9, b, a);
        c10 = _mm512_fmadd_ps(c10, b, a);
        c11 = _mm512_fmadd_ps(c11, b, a);
    }
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(c0, c1), _mm512_add_ps(c2, c3)),
                             _mm512_add_ps(_mm512_add_ps(c4, c5), _mm512_add_ps(c6, c7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(c8, c9), _mm512_add_ps(c10, c11)));
    return _mm512_reduce_add_ps(s);
}
#endif

#if defined(__x86_64__)
/* 12 independent chains of vpdpbusd, the instruction of the x16 integer
 * kernels: 64 byte products added into 16 int32 lanes each. */
__attribute__((target("avx512f,avx512vnni"))) static double dot_chains_vnni(long iters) {
    volatile int seed = 3;
    /* b is 0 at run time (the compiler cannot know): the sums stay small,
     * and their total fits an int. */
    const __m512i a = _mm512_set1_epi8((char)seed), b = _mm512_set1_epi8((char)(seed - 3));
    __m512i c[12];
    for (int k = 0; k < 12; k++) c[k] = _mm512_set1_epi32(seed * k);
    for (long i = 0; i < iters; i++) {
#pragma GCC unroll 12
        for (int k = 0; k < 12; k++) c[k] = _mm512_dpbusd_epi32(c[k], a, b);
    }
    __m512i s = c[0];
    for (int k = 1; k < 12; k++) s = _mm512_add_epi32(s, c[k]);
    return (double)_mm512_reduce_add_epi32(s);
}
#endif

static double fma_chains_scalar(long iters) {
    volatile float seed = 1e-7f;
    float a = seed, b = 0.999999f, c[12];
    for (int k = 0; k < 12; k++) c[k] = (float)k * seed;
    for (long i = 0; i < iters; i++) {
        for (int k = 0; k < 12; k++) c[k] = c[k] * b + a;
    }
    double s = 0;
    for (int k = 0; k < 12; k++) s += c[k];
    return s;
}

static void fma_share(void *arg, int t, int nt) {
    measure_job *j = arg;
    if (t == 0) j->threads = nt; /* (one writer; the others report through result[t]) */
#if defined(__x86_64__)
    j->result[t] = j->width == 64   ? dot_chains_vnni(j->iters)
                   : j->width == 16 ? fma_chains_avx512(j->iters)
                   : j->width == 8  ? fma_chains_avx2(j->iters)
                                    : fma_chains_scalar(j->iters);
#else
    j->result[t] = fma_chains_scalar(j->iters);
#endif
}

/* Operations per second (2 per multiply-add) of 12 chains of `width`-lane
 * multiply-adds on each of n_threads, best of 3 runs. */
static double chains_peak(int n_threads, int width) {
    if (n_threads < 1) n_threads = 1;
    measure_job *j = calloc(1, sizeof *j);
    if (!j) return 0.0;
    j->width = width;
    j->iters = width > 1 ? 20 * 1000 * 1000 : 2500 * 1000;
    double best = 1e30, sink = 0;
    for (int pass = 0; pass < 3; pass++) {
        double t0 = now();
        lm_parallel(n_threads, fma_share, j);
        double dt = now() - t0;
        sink += result_sum(j);
        if (dt < best) best = dt;
    }
    volatile double keep = sink;
    (void)keep;
    const double flops = (double)j->iters * 12 * width * 2 * j->threads;
    free(j);
    return flops / best / 1e9;
}

double lm_measure_fma_peak(int n_threads, const char **isa) {
    /* The widest FMA this CPU has: the one the matrix-matrix kernels use. */
    int width = 1;
#if defined(__x86_64__)
    if (lm_cpu_has_avx512f()) width = 16;
    else if (lm_cpu_has_avx2()) width = 8;
#endif
    if (isa) *isa = width == 16 ? "avx512-fma" : width == 8 ? "avx2-fma" : "scalar";
    return chains_peak(n_threads, width);
}

double lm_measure_int8_peak(int n_threads) {
#if defined(__x86_64__)
    if (lm_cpu_has_avx512_vnni()) return chains_peak(n_threads, 64);
#endif
    (void)n_threads;
    return 0.0;
}
