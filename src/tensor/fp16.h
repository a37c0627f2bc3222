/* IEEE half and bfloat16 conversions, bit-exact with ggml's (round to
 * nearest even; NaN stays NaN). Software versions (after Marat Dukhan's FP16
 * library), so results do not depend on the CPU. Needs strict float
 * semantics: never build this with -ffast-math. */
#ifndef LLMOS_FP16_H
#define LLMOS_FP16_H

#include <stdint.h>
#include <string.h>

static inline float lm_bits_to_f32(uint32_t w) {
    float f;
    memcpy(&f, &w, 4);
    return f;
}

static inline uint32_t lm_f32_to_bits(float f) {
    uint32_t w;
    memcpy(&w, &f, 4);
    return w;
}

static inline float lm_fp16_to_fp32(uint16_t h) {
    const uint32_t w = (uint32_t)h << 16;
    const uint32_t sign = w & 0x80000000u;
    const uint32_t two_w = w + w;
    const float normalized = lm_bits_to_f32((two_w >> 4) + (0xE0u << 23)) * 0x1.0p-112f;
    const float denormalized = lm_bits_to_f32((two_w >> 17) | (126u << 23)) - 0.5f;
    const uint32_t result = sign | (two_w < (1u << 27) ? lm_f32_to_bits(denormalized) : lm_f32_to_bits(normalized));
    return lm_bits_to_f32(result);
}

static inline uint16_t lm_fp32_to_fp16(float f) {
    float base = (__builtin_fabsf(f) * 0x1.0p+112f) * 0x1.0p-110f;
    const uint32_t w = lm_f32_to_bits(f);
    const uint32_t shl1_w = w + w;
    const uint32_t sign = w & 0x80000000u;
    uint32_t bias = shl1_w & 0xFF000000u;
    if (bias < 0x71000000u) bias = 0x71000000u;
    base = lm_bits_to_f32((bias >> 1) + 0x07800000u) + base;
    const uint32_t bits = lm_f32_to_bits(base);
    const uint32_t exp_bits = (bits >> 13) & 0x00007C00u;
    const uint32_t mantissa_bits = bits & 0x00000FFFu;
    const uint32_t nonsign = exp_bits + mantissa_bits;
    return (uint16_t)((sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u : nonsign));
}

static inline float lm_bf16_to_fp32(uint16_t h) { return lm_bits_to_f32((uint32_t)h << 16); }

static inline uint16_t lm_fp32_to_bf16(float f) {
    uint32_t u = lm_f32_to_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 64); /* NaN: keep it quiet */
    return (uint16_t)((u + (0x7fffu + ((u >> 16) & 1))) >> 16);
}

#endif
