/* The `calculator` tool: exact arithmetic on decimals of any size (up to
 * 10,000 digits), parsed by a recursive-descent parser (nothing is eval'd).
 *
 * Grammar, loosest first:
 *   top     := sum [cmp sum]          cmp: < <= > >= == != (also = ≤ ≥ ≠);
 *                                     not chained, only outermost; "true"/"false"
 *   sum     := term (('+' | '-') term)*
 *   term    := unary (('*' | '/' | '%') unary)*      (also × ÷)
 *   unary   := ('-' | '+') unary | power              (also −, U+2212)
 *   power   := primary [('^' | '**') unary]          right-associative
 *   primary := number | '(' sum ')'                  number: 12, 1.5, .5, 5.
 * so -2^2 = -4 and 2^-1 = 0.5, 2^3^2 = 512, as in mathematics and Python.
 *
 * Division is truncated toward zero to 50 decimal places (exact whenever it
 * terminates within 50), % is a - trunc(a/b)*b, powers need integer exponents
 * (see src/tools/bignum.h). Results print as plain decimals: "-0.125", "42".
 *
 * Limits: 65,536 bytes of expression, 100 levels of nesting, 10,000 digits
 * in any number or result, exponents up to 40,000 (bases other than 0, ±1),
 * and a work budget per evaluation. */
#ifndef LLMOS_CALCULATOR_H
#define LLMOS_CALCULATOR_H

#include "llmos/base.h"
#include "llmos/tool.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LM_CALC_MAX_LEN 65536
#define LM_CALC_MAX_DEPTH 100

/* Evaluates expr. *result (malloc'd) is the value, "true"/"false" for a
 * comparison, or, with *is_error = 1, a message such as "division by zero"
 * or "unexpected ')' at 7" (positions count characters from 1). Returns
 * non-LM_OK only when the calculator cannot work (out of memory, NULL
 * arguments). */
lm_status lm_calc_eval(const char *expr, char **result, int *is_error, lm_error *err);

/* Fills *out with the calculator tool: arguments {"expression": "..."}. */
lm_status lm_tool_calculator(lm_tool *out, lm_error *err);

#ifdef __cplusplus
}
#endif
#endif
