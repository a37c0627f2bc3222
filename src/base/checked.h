/* Overflow-checked size arithmetic. Every product of sizes that comes from a
 * file goes through these; they return 1 on overflow and leave *out unset. */
#ifndef LLMOS_CHECKED_H
#define LLMOS_CHECKED_H

#include <stddef.h>
#include <stdint.h>

static inline int lm_mul_overflow_u64(uint64_t a, uint64_t b, uint64_t *out) {
    return __builtin_mul_overflow(a, b, out);
}
static inline int lm_add_overflow_u64(uint64_t a, uint64_t b, uint64_t *out) {
    return __builtin_add_overflow(a, b, out);
}
static inline int lm_mul_overflow_size(size_t a, size_t b, size_t *out) {
    return __builtin_mul_overflow(a, b, out);
}
static inline int lm_add_overflow_size(size_t a, size_t b, size_t *out) {
    return __builtin_add_overflow(a, b, out);
}

/* Rounds x up to a multiple of align (a power of two); 1 on overflow. */
static inline int lm_align_up_u64(uint64_t x, uint64_t align, uint64_t *out) {
    uint64_t t;
    if (__builtin_add_overflow(x, align - 1, &t)) return 1;
    *out = t & ~(align - 1);
    return 0;
}

#endif
