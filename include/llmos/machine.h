/* The machine's own limits, measured, so speeds can be quoted as fractions of them. */
#ifndef LLMOS_MACHINE_H
#define LLMOS_MACHINE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Read bandwidth in GB/s (1e9 bytes/s): n_threads stream disjoint parts of a
 * buffer of `bytes` (far larger than the caches), each as one sequential
 * stream and as four at once, best of 6 passes (3 each). 0 on allocation
 * failure. */
double lm_measure_read_bandwidth(int n_threads, size_t bytes);

/* The same measurement again and again on one buffer, allocated and first
 * touched once (most of a single measurement's time): for quoting each run
 * of a benchmark against the bandwidth measured next to it, on machines
 * whose bandwidth changes from minute to minute. new returns NULL on
 * allocation failure; measure returns GB/s, best of `passes` passes
 * (alternately one stream and four per thread). */
typedef struct lm_bandwidth_probe lm_bandwidth_probe;
lm_bandwidth_probe *lm_bandwidth_probe_new(int n_threads, size_t bytes);
double lm_bandwidth_probe_measure(lm_bandwidth_probe *p, int passes);
void lm_bandwidth_probe_free(lm_bandwidth_probe *p);

/* Peak fp32 FMA throughput in GFLOP/s (an FMA counts 2) with the vector
 * instructions the kernels use (AVX2 + FMA; scalar elsewhere), n_threads
 * each running independent FMA chains, best of 3. *isa names the path. */
double lm_measure_fma_peak(int n_threads, const char **isa);

/* Peak int8 dot-product throughput in G-ops/s (a byte product and its add
 * count 2) of AVX-512 VNNI's vpdpbusd, the instruction of the integer
 * kernels that multiply Q8_0, Q4_0, Q4_K and Q6_K matrices, measured as
 * above; 0 where the CPU has no VNNI (those types then use the f32 GEMM). */
double lm_measure_int8_peak(int n_threads);

/* Nanoseconds for a cache line to go from one thread to another and back,
 * the threads pinned to the first two CPUs this process may run on (median
 * of 5 runs of 20,000 round trips). On the 2-vCPU VMs we measure on it is
 * about 100 ns when the two vCPUs share a CCD and 420-460 ns when they do
 * not, which also changes the read bandwidth (docs/performance.md): a
 * benchmark reports it so that its figures say which machine they came
 * from. 0 with fewer than two CPUs, off Linux, if the threads cannot be
 * started or pinned, or if a run's round trips take over a second (a busy
 * machine). */
double lm_measure_core_round_trip(void);

#ifdef __cplusplus
}
#endif
#endif
