/* Integer hashing for open-addressing tables keyed by 64-bit values. */
#ifndef LLMOS_HASH_H
#define LLMOS_HASH_H

#include <stdint.h>

/* The finaliser of MurmurHash3: spreads every input bit over the low bits. */
static inline uint64_t lm_mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

/* The key of an ordered pair of token ids; never 0, so 0 can mark an empty slot. */
static inline uint64_t lm_pair_key(int32_t a, int32_t b) {
    return (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
}

#endif
