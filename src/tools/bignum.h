/* Arbitrary-precision signed decimal numbers for the calculator tool.
 *
 * A value is (-1)^neg * coef / 10^scale, coef held in base-10^9 limbs (least
 * significant first, n == 0 for zero). Every result is normalised: no
 * leading zero limbs, no trailing zeros after the decimal point, zero is
 * "+0" with scale 0.
 *
 * Rules:
 *   + - * and integer powers are exact.
 *   a / b is truncated toward zero to BN_DIV_SCALE (50) decimal places, then
 *     trailing zeros dropped: exact whenever the quotient terminates within
 *     50 decimals (bc with scale=50 gives the same digits).
 *   a % b = a - trunc(a / b) * b, exact (sign of a, like C and bc's scale=0).
 *   a ^ n needs an integer n; n < 0 gives 1 / a^|n| under the division rule.
 *
 * Limits (each a clear error, never a hang or a huge allocation): no value
 * may need more than BN_MAX_DIGITS digits to write out, exponents are capped,
 * and a bn_ctx carries a work budget in limb operations for a whole
 * evaluation. Errors: LM_ERR_ARG (division by zero, fractional exponent),
 * LM_ERR_LIMIT (too large, too expensive), LM_ERR_NOMEM. */
#ifndef LLMOS_TOOLS_BIGNUM_H
#define LLMOS_TOOLS_BIGNUM_H

#include "llmos/base.h"

#include <stddef.h>
#include <stdint.h>

#define BN_MAX_DIGITS 10000
#define BN_DIV_SCALE 50
#define BN_MAX_EXP 40000 /* past this only 0, 1 and -1 give a result that fits */
#define BN_WORK_LIMIT 100000000ull

typedef struct bn {
    uint32_t *d;
    size_t n, cap;
    int32_t scale;
    int neg;
} bn;

typedef struct bn_ctx {
    uint64_t work_left; /* limb operations left; BN_WORK_LIMIT to start */
} bn_ctx;

void bn_init(bn *x);
void bn_free(bn *x);
int bn_is_zero(const bn *x);
/* Digits needed to write |x| (the quantity BN_MAX_DIGITS caps). */
size_t bn_ndigits(const bn *x);

/* s[0..len) is ASCII digits with at most one '.', at least one digit, and at
 * most BN_MAX_DIGITS digits (the caller's tokenizer checks). */
lm_status bn_parse(const char *s, size_t len, bn *out, lm_error *err);
/* Canonical text: "-12.5", "0.001", "42"; malloc'd. */
lm_status bn_to_string(const bn *x, char **out, lm_error *err);

/* out must be an initialised bn distinct from the operands; on success its
 * old value is replaced. */
lm_status bn_copy(const bn *x, bn *out, lm_error *err);
void bn_negate(bn *x);
lm_status bn_add(bn_ctx *c, const bn *a, const bn *b, bn *out, lm_error *err);
lm_status bn_sub(bn_ctx *c, const bn *a, const bn *b, bn *out, lm_error *err);
lm_status bn_mul(bn_ctx *c, const bn *a, const bn *b, bn *out, lm_error *err);
lm_status bn_div(bn_ctx *c, const bn *a, const bn *b, bn *out, lm_error *err);
lm_status bn_mod(bn_ctx *c, const bn *a, const bn *b, bn *out, lm_error *err);
lm_status bn_pow(bn_ctx *c, const bn *a, const bn *e, bn *out, lm_error *err);
/* *cmp = -1, 0 or 1 as a <, ==, > b. */
lm_status bn_cmp(bn_ctx *c, const bn *a, const bn *b, int *cmp, lm_error *err);

#endif
