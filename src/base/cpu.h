/* CPU features from CPUID, the same with gcc and clang (whose
 * __builtin_cpu_supports do not know the same feature names). */
#ifndef LLMOS_CPU_H
#define LLMOS_CPU_H

#if defined(__x86_64__)
#include <cpuid.h>
#include <stdint.h>

/* AVX2, FMA and F16C, with the OS saving the YMM registers (XGETBV). */
static inline int lm_cpu_has_avx2(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, f16c = (c >> 29) & 1, avx = (c >> 28) & 1;
    if (!(fma && osxsave && f16c && avx)) return 0;
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 6) != 6) return 0; /* XMM and YMM state */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    return (b >> 5) & 1;
}
/* AVX-512 F, BW, VL and VNNI, with the OS saving the opmask and ZMM state. */
static inline int lm_cpu_has_avx512_vnni(void) {
    unsigned a, b, c, d;
    if (!lm_cpu_has_avx2()) return 0;
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 0xE6) != 0xE6) return 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    int f = (b >> 16) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1, vnni = (c >> 11) & 1;
    return f && bw && vl && vnni;
}
/* AVX-512 F, with the OS saving the opmask and ZMM state. */
static inline int lm_cpu_has_avx512f(void) {
    unsigned a, b, c, d;
    if (!lm_cpu_has_avx2()) return 0;
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 0xE6) != 0xE6) return 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    return (b >> 16) & 1;
}
/* AVX-512 BF16 (vdpbf16ps): CPUID leaf 7 sub-leaf 1, EAX bit 5. */
static inline int lm_cpu_has_avx512_bf16(void) {
    unsigned a, b, c, d;
    if (!lm_cpu_has_avx512f()) return 0;
    if (!__get_cpuid_count(7, 1, &a, &b, &c, &d)) return 0;
    return (a >> 5) & 1;
}
#else
static inline int lm_cpu_has_avx2(void) { return 0; }
static inline int lm_cpu_has_avx512_bf16(void) { return 0; }
static inline int lm_cpu_has_avx512f(void) { return 0; }
static inline int lm_cpu_has_avx512_vnni(void) { return 0; }
#endif

#endif
