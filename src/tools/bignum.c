/* Arbitrary-precision signed decimals (bignum.h): base-10^9 limbs, schoolbook
 * multiplication, Knuth's algorithm D for division. */
#include "bignum.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BASE 1000000000u

static const uint32_t POW10[10] = {1,      10,      100,      1000,      10000,
                                   100000, 1000000, 10000000, 100000000, 1000000000};

void bn_init(bn *x) { memset(x, 0, sizeof *x); }

void bn_free(bn *x) {
    if (!x) return;
    free(x->d);
    bn_init(x);
}

int bn_is_zero(const bn *x) { return x->n == 0; }

static size_t limb_digits(uint32_t v) {
    size_t k = 1;
    while (k < 9 && v >= POW10[k]) k++;
    return k;
}

static size_t coef_digits(const bn *x) {
    return x->n ? (x->n - 1) * 9 + limb_digits(x->d[x->n - 1]) : 1;
}

size_t bn_ndigits(const bn *x) {
    size_t c = coef_digits(x), s = (size_t)x->scale;
    return c > s ? c : s;
}

static lm_status reserve(bn *x, size_t n, lm_error *err) {
    if (n <= x->cap) return LM_OK;
    uint32_t *p = realloc(x->d, n * sizeof *p);
    if (!p) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    x->d = p;
    x->cap = n;
    return LM_OK;
}

static lm_status charge(bn_ctx *c, uint64_t work, lm_error *err) {
    if (work > c->work_left) {
        c->work_left = 0;
        return lm_error_set(err, LM_ERR_LIMIT, "calculation too expensive (work limit reached)");
    }
    c->work_left -= work;
    return LM_OK;
}

static void trim(bn *x) {
    while (x->n && !x->d[x->n - 1]) x->n--;
}

/* x *= m (m < BASE), in place; needs one spare limb of capacity. */
static void mul_small(bn *x, uint32_t m) {
    uint64_t carry = 0;
    for (size_t i = 0; i < x->n; i++) {
        uint64_t t = (uint64_t)x->d[i] * m + carry;
        x->d[i] = (uint32_t)(t % BASE);
        carry = t / BASE;
    }
    if (carry) x->d[x->n++] = (uint32_t)carry;
}

/* x /= m (0 < m < BASE), in place; returns the remainder. */
static uint32_t div_small(bn *x, uint32_t m) {
    uint64_t rem = 0;
    for (size_t i = x->n; i-- > 0;) {
        uint64_t t = rem * BASE + x->d[i];
        x->d[i] = (uint32_t)(t / m);
        rem = t % m;
    }
    trim(x);
    return (uint32_t)rem;
}

/* coef *= 10^k, scale unchanged. */
static lm_status shift_up(bn *x, size_t k, lm_error *err) {
    if (!x->n || !k) return LM_OK;
    size_t limbs = k / 9;
    lm_status st = reserve(x, x->n + limbs + 1, err);
    if (st) return st;
    memmove(x->d + limbs, x->d, x->n * sizeof *x->d);
    memset(x->d, 0, limbs * sizeof *x->d);
    x->n += limbs;
    if (k % 9) mul_small(x, POW10[k % 9]);
    return LM_OK;
}

/* Drops trailing zeros after the point and gives zero one form. */
static void normalize(bn *x) {
    trim(x);
    if (!x->n) {
        x->neg = 0;
        x->scale = 0;
        return;
    }
    size_t tz = 0, i = 0;
    while (i < x->n && x->d[i] == 0) {
        tz += 9;
        i++;
    }
    uint32_t v = x->d[i];
    while (v % 10 == 0) {
        tz++;
        v /= 10;
    }
    size_t t = tz < (size_t)x->scale ? tz : (size_t)x->scale;
    if (!t) return;
    size_t limbs = t / 9;
    memmove(x->d, x->d + limbs, (x->n - limbs) * sizeof *x->d);
    x->n -= limbs;
    if (t % 9) div_small(x, POW10[t % 9]);
    x->scale -= (int32_t)t;
}

static lm_status check_size(bn *x, lm_error *err) {
    if (bn_ndigits(x) > BN_MAX_DIGITS)
        return lm_error_set(err, LM_ERR_LIMIT, "result too large (more than %d digits)",
                            BN_MAX_DIGITS);
    return LM_OK;
}

lm_status bn_copy(const bn *x, bn *out, lm_error *err) {
    lm_status st = reserve(out, x->n + 1, err);
    if (st) return st;
    if (x->n) memcpy(out->d, x->d, x->n * sizeof *x->d);
    out->n = x->n;
    out->scale = x->scale;
    out->neg = x->neg;
    return LM_OK;
}

void bn_negate(bn *x) {
    if (x->n) x->neg = !x->neg;
}

lm_status bn_parse(const char *s, size_t len, bn *out, lm_error *err) {
    size_t ndig = 0, frac = 0;
    int seen_point = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '.') {
            if (seen_point) return lm_error_set(err, LM_ERR_FORMAT, "malformed number");
            seen_point = 1;
        } else if (s[i] >= '0' && s[i] <= '9') {
            ndig++;
            frac += seen_point;
        } else {
            return lm_error_set(err, LM_ERR_FORMAT, "malformed number");
        }
    }
    if (!ndig) return lm_error_set(err, LM_ERR_FORMAT, "malformed number");
    if (ndig > BN_MAX_DIGITS)
        return lm_error_set(err, LM_ERR_LIMIT, "number too long (more than %d digits)",
                            BN_MAX_DIGITS);
    lm_status st = reserve(out, ndig / 9 + 2, err);
    if (st) return st;
    /* Fill limbs from the least significant digit. */
    size_t n = 0, k = 0;
    uint32_t limb = 0;
    for (size_t i = len; i-- > 0;) {
        if (s[i] == '.') continue;
        limb += (uint32_t)(s[i] - '0') * POW10[k];
        if (++k == 9) {
            out->d[n++] = limb;
            limb = 0;
            k = 0;
        }
    }
    if (k) out->d[n++] = limb;
    out->n = n;
    out->scale = (int32_t)frac;
    out->neg = 0;
    normalize(out);
    return LM_OK;
}

lm_status bn_to_string(const bn *x, char **out, lm_error *err) {
    size_t cd = coef_digits(x), sc = (size_t)x->scale;
    char *digits = malloc(cd + 1);
    char *s = malloc(cd + sc + 4);
    if (!digits || !s) {
        free(digits);
        free(s);
        return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    }
    if (!x->n) {
        strcpy(digits, "0");
    } else {
        size_t p = (size_t)snprintf(digits, cd + 1, "%u", (unsigned)x->d[x->n - 1]);
        for (size_t i = x->n - 1; i-- > 0;) p += (size_t)snprintf(digits + p, 10, "%09u", (unsigned)x->d[i]);
    }
    char *w = s;
    if (x->neg) *w++ = '-';
    if (sc >= cd) {
        *w++ = '0';
        if (sc) {
            *w++ = '.';
            memset(w, '0', sc - cd);
            w += sc - cd;
            memcpy(w, digits, cd);
            w += cd;
        }
    } else {
        memcpy(w, digits, cd - sc);
        w += cd - sc;
        if (sc) {
            *w++ = '.';
            memcpy(w, digits + cd - sc, sc);
            w += sc;
        }
    }
    *w = '\0';
    free(digits);
    *out = s;
    return LM_OK;
}

static int mag_cmp(const bn *a, const bn *b) {
    if (a->n != b->n) return a->n < b->n ? -1 : 1;
    for (size_t i = a->n; i-- > 0;)
        if (a->d[i] != b->d[i]) return a->d[i] < b->d[i] ? -1 : 1;
    return 0;
}

/* A copy of x written with `scale` decimals (scale >= x->scale). */
static lm_status aligned(bn_ctx *c, const bn *x, int32_t scale, bn *out, lm_error *err) {
    lm_status st = bn_copy(x, out, err);
    if (!st) st = charge(c, x->n + (size_t)(scale - x->scale) / 9 + 1, err);
    if (!st) st = shift_up(out, (size_t)(scale - x->scale), err);
    if (!st) out->scale = scale;
    return st;
}

/* out = a + (negate_b ? -b : b). */
static lm_status add_signed(bn_ctx *c, const bn *a, const bn *b, int negate_b, bn *out,
                            lm_error *err) {
    int32_t s = a->scale > b->scale ? a->scale : b->scale;
    bn x, y;
    bn_init(&x);
    bn_init(&y);
    lm_status st = aligned(c, a, s, &x, err);
    if (!st) st = aligned(c, b, s, &y, err);
    if (!st && negate_b) bn_negate(&y);
    size_t n = (x.n > y.n ? x.n : y.n) + 1;
    if (!st) st = charge(c, n, err);
    if (!st) st = reserve(out, n, err);
    if (st) goto done;
    if (x.neg == y.neg) {
        uint32_t carry = 0;
        for (size_t i = 0; i < n; i++) {
            uint32_t t = carry + (i < x.n ? x.d[i] : 0) + (i < y.n ? y.d[i] : 0);
            carry = t >= BASE;
            out->d[i] = carry ? t - BASE : t;
        }
        out->neg = x.neg;
    } else {
        const bn *big = &x, *small = &y;
        if (mag_cmp(&x, &y) < 0) {
            big = &y;
            small = &x;
        }
        uint32_t borrow = 0;
        for (size_t i = 0; i < n; i++) {
            int64_t t = (int64_t)(i < big->n ? big->d[i] : 0) - (i < small->n ? small->d[i] : 0) -
                        borrow;
            borrow = t < 0;
            out->d[i] = (uint32_t)(borrow ? t + BASE : t);
        }
        out->neg = big->neg;
    }
    out->n = n;
    out->scale = s;
    normalize(out);
    st = check_size(out, err);
done:
    bn_free(&x);
    bn_free(&y);
    return st;
}

lm_status bn_add(bn_ctx *c, const bn *a, const bn *b, bn *out, lm_error *err) {
    return add_signed(c, a, b, 0, out, err);
}

lm_status bn_sub(bn_ctx *c, const bn *a, const bn *b, bn *out, lm_error *err) {
    return add_signed(c, a, b, 1, out, err);
}

lm_status bn_mul(bn_ctx *c, const bn *a, const bn *b, bn *out, lm_error *err) {
    if (!a->n || !b->n) {
        out->n = 0;
        normalize(out);
        return LM_OK;
    }
    /* The product needs at least this many digits: refuse before working. */
    if (coef_digits(a) + coef_digits(b) - 1 > BN_MAX_DIGITS)
        return lm_error_set(err, LM_ERR_LIMIT, "result too large (more than %d digits)",
                            BN_MAX_DIGITS);
    lm_status st = charge(c, (uint64_t)a->n * b->n, err);
    if (!st) st = reserve(out, a->n + b->n, err);
    if (st) return st;
    memset(out->d, 0, (a->n + b->n) * sizeof *out->d);
    for (size_t i = 0; i < a->n; i++) {
        uint64_t carry = 0;
        for (size_t j = 0; j < b->n; j++) {
            uint64_t t = (uint64_t)a->d[i] * b->d[j] + out->d[i + j] + carry;
            out->d[i + j] = (uint32_t)(t % BASE);
            carry = t / BASE;
        }
        out->d[i + b->n] = (uint32_t)carry;
    }
    out->n = a->n + b->n;
    out->scale = a->scale + b->scale;
    out->neg = a->neg != b->neg;
    normalize(out);
    return check_size(out, err);
}

/* Integer division of magnitudes: q = u / v, r = u % v (either may be NULL);
 * v nonzero. Knuth, TAOCP vol. 2, 4.3.1, algorithm D, in base 10^9. */
static lm_status mag_divmod(bn_ctx *c, const bn *u, const bn *v, bn *q, bn *r, lm_error *err) {
    size_t nu = u->n, nv = v->n;
    lm_status st = charge(c, (uint64_t)(nu + 1) * nv, err);
    if (st) return st;
    if (mag_cmp(u, v) < 0) {
        if (q) q->n = 0;
        if (r) {
            st = bn_copy(u, r, err);
            if (st) return st;
        }
        return LM_OK;
    }
    if (nv == 1) {
        bn t;
        bn_init(&t);
        st = bn_copy(u, &t, err);
        if (st) return st;
        uint32_t rem = div_small(&t, v->d[0]);
        if (r) {
            st = reserve(r, 1, err);
            if (st) {
                bn_free(&t);
                return st;
            }
            r->d[0] = rem;
            r->n = 1;
            trim(r);
        }
        if (q) {
            bn_free(q);
            *q = t;
        } else {
            bn_free(&t);
        }
        return LM_OK;
    }
    uint32_t dnorm = (uint32_t)(BASE / ((uint64_t)v->d[nv - 1] + 1));
    bn un, vn;
    bn_init(&un);
    bn_init(&vn);
    st = bn_copy(u, &un, err);
    if (!st) st = reserve(&un, nu + 1, err);
    if (!st) st = bn_copy(v, &vn, err);
    if (!st) st = reserve(&vn, nv + 1, err);
    if (!st && q) st = reserve(q, nu - nv + 1, err);
    if (st) goto done;
    mul_small(&un, dnorm);
    if (un.n == nu) un.d[un.n++] = 0;
    mul_small(&vn, dnorm);
    {
        const uint64_t vtop = vn.d[nv - 1], vnext = vn.d[nv - 2];
        for (size_t j = nu - nv + 1; j-- > 0;) {
            uint64_t num = (uint64_t)un.d[j + nv] * BASE + un.d[j + nv - 1];
            uint64_t qhat = num / vtop, rhat = num % vtop;
            if (qhat >= BASE) {
                rhat += (qhat - (BASE - 1)) * vtop;
                qhat = BASE - 1;
            }
            while (rhat < BASE && qhat * vnext > rhat * BASE + un.d[j + nv - 2]) {
                qhat--;
                rhat += vtop;
            }
            int64_t borrow = 0;
            uint64_t carry = 0;
            for (size_t i = 0; i < nv; i++) {
                uint64_t p = qhat * vn.d[i] + carry;
                carry = p / BASE;
                int64_t t = (int64_t)un.d[i + j] - (int64_t)(p % BASE) - borrow;
                borrow = t < 0;
                un.d[i + j] = (uint32_t)(borrow ? t + BASE : t);
            }
            int64_t top = (int64_t)un.d[j + nv] - (int64_t)carry - borrow;
            if (top < 0) { /* qhat was one too large: add v back */
                qhat--;
                uint64_t cy = 0;
                for (size_t i = 0; i < nv; i++) {
                    uint64_t s = (uint64_t)un.d[i + j] + vn.d[i] + cy;
                    un.d[i + j] = (uint32_t)(s % BASE);
                    cy = s / BASE;
                }
                top += (int64_t)cy;
            }
            un.d[j + nv] = (uint32_t)top;
            if (q) q->d[j] = (uint32_t)qhat;
        }
    }
    if (q) {
        q->n = nu - nv + 1;
        trim(q);
    }
    if (r) {
        un.n = nv;
        trim(&un);
        div_small(&un, dnorm);
        bn_free(r);
        *r = un;
        bn_init(&un);
    }
done:
    bn_free(&un);
    bn_free(&vn);
    return st;
}

lm_status bn_div(bn_ctx *c, const bn *a, const bn *b, bn *out, lm_error *err) {
    if (!b->n) return lm_error_set(err, LM_ERR_ARG, "division by zero");
    /* trunc(a/b * 10^S) = trunc(A * 10^(sb + S - sa) / B) with a = A/10^sa, b = B/10^sb. */
    int64_t e = (int64_t)b->scale + BN_DIV_SCALE - a->scale;
    bn num, den;
    bn_init(&num);
    bn_init(&den);
    lm_status st = bn_copy(a, &num, err);
    if (!st) st = bn_copy(b, &den, err);
    if (!st) st = charge(c, num.n + den.n + (uint64_t)(e < 0 ? -e : e) / 9, err);
    if (!st) st = e >= 0 ? shift_up(&num, (size_t)e, err) : shift_up(&den, (size_t)-e, err);
    if (!st) st = mag_divmod(c, &num, &den, out, NULL, err);
    if (!st) {
        out->scale = BN_DIV_SCALE;
        out->neg = a->neg != b->neg;
        normalize(out);
        st = check_size(out, err);
    }
    bn_free(&num);
    bn_free(&den);
    return st;
}

lm_status bn_mod(bn_ctx *c, const bn *a, const bn *b, bn *out, lm_error *err) {
    if (!b->n) return lm_error_set(err, LM_ERR_ARG, "modulo by zero");
    int32_t s = a->scale > b->scale ? a->scale : b->scale;
    bn x, y;
    bn_init(&x);
    bn_init(&y);
    lm_status st = aligned(c, a, s, &x, err);
    if (!st) st = aligned(c, b, s, &y, err);
    if (!st) st = mag_divmod(c, &x, &y, NULL, out, err);
    if (!st) {
        out->scale = s;
        out->neg = a->neg;
        normalize(out);
        st = check_size(out, err);
    }
    bn_free(&x);
    bn_free(&y);
    return st;
}

static lm_status set_small(bn *x, uint32_t v, int neg, lm_error *err) {
    lm_status st = reserve(x, 1, err);
    if (st) return st;
    x->d[0] = v;
    x->n = 1;
    x->scale = 0;
    x->neg = neg;
    normalize(x);
    return LM_OK;
}

lm_status bn_pow(bn_ctx *c, const bn *a, const bn *e, bn *out, lm_error *err) {
    if (e->scale) return lm_error_set(err, LM_ERR_ARG, "exponent must be an integer");
    int odd = e->n && (e->d[0] & 1);
    if (!e->n) return set_small(out, 1, 0, err); /* x^0 = 1, 0^0 included */
    if (!a->n) {
        if (e->neg) return lm_error_set(err, LM_ERR_ARG, "division by zero");
        return set_small(out, 0, 0, err);
    }
    if (a->n == 1 && a->d[0] == 1 && a->scale == 0) return set_small(out, 1, a->neg && odd, err);
    uint64_t n = 0;
    for (size_t i = e->n; i-- > 0;) {
        if (n > BN_MAX_EXP) break;
        n = n * BASE + e->d[i];
    }
    /* |a| != 0, 1: the digits of a^n grow at least like n*log10(2) or n*scale. */
    if (n > BN_MAX_EXP || (uint64_t)(coef_digits(a) - 1) * n + 1 > BN_MAX_DIGITS ||
        (uint64_t)a->scale * n > BN_MAX_DIGITS)
        return lm_error_set(err, LM_ERR_LIMIT, "result too large (more than %d digits)",
                            BN_MAX_DIGITS);
    bn result, base, t;
    bn_init(&result);
    bn_init(&base);
    bn_init(&t);
    lm_status st = set_small(&result, 1, 0, err);
    if (!st) st = bn_copy(a, &base, err);
    while (!st) {
        if (n & 1) {
            st = bn_mul(c, &result, &base, &t, err);
            if (st) break;
            bn tmp = result;
            result = t;
            t = tmp;
        }
        n >>= 1;
        if (!n) break;
        st = bn_mul(c, &base, &base, &t, err);
        if (st) break;
        bn tmp = base;
        base = t;
        t = tmp;
    }
    if (!st) {
        if (e->neg) {
            bn one;
            bn_init(&one);
            st = set_small(&one, 1, 0, err);
            if (!st) st = bn_div(c, &one, &result, out, err);
            bn_free(&one);
        } else {
            bn_free(out);
            *out = result;
            bn_init(&result);
        }
    }
    bn_free(&result);
    bn_free(&base);
    bn_free(&t);
    return st;
}

lm_status bn_cmp(bn_ctx *c, const bn *a, const bn *b, int *cmp, lm_error *err) {
    bn d;
    bn_init(&d);
    lm_status st = bn_sub(c, a, b, &d, err);
    if (!st) *cmp = !d.n ? 0 : d.neg ? -1 : 1;
    bn_free(&d);
    return st;
}
