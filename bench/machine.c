/* The machine's read bandwidth, fp32 FMA peak and int8 dot-product peak (AVX-512 VNNI; 0
 * without it), as llmos bench measures them, and the cache-line round trip between the
 * first two CPUs (lm_measure_core_round_trip).
 *   bench_machine [THREADS]   (default 2) */
#include "llmos/machine.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    const char *isa;
    double bw = lm_measure_read_bandwidth(threads, (size_t)1 << 30);
    double peak = lm_measure_fma_peak(threads, &isa);
    double int8 = lm_measure_int8_peak(threads);
    double round_trip = lm_measure_core_round_trip();
    printf("{\"threads\":%d,\"read_gb_per_s\":%.1f,\"fma_gflop_per_s\":%.1f,\"isa\":\"%s\",\"int8_gop_per_s\":%.1f,"
           "\"round_trip_ns\":%.0f}\n",
           threads, bw, peak, isa, int8, round_trip);
    return bw > 0 ? 0 : 1;
}
