/* The calculator tool (llmos/calculator.h): a recursive-descent parser over
 * the expression bytes, run twice: once to check the syntax (so a malformed
 * expression is reported as such even when it would also divide by zero),
 * then to evaluate with bignum.c. Nothing is ever handed to an interpreter. */
#include "llmos/calculator.h"

#include "bignum.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    T_END, T_NUM, T_ADD, T_SUB, T_MUL, T_DIV, T_MOD, T_POW, T_LP, T_RP,
    T_LT, T_LE, T_GT, T_GE, T_EQ, T_NE, T_BAD
};

typedef struct token {
    int kind;
    size_t pos, len;
} token;

typedef struct calc {
    const char *s;
    size_t len, pos;
    int depth, eval;
    bn_ctx ctx;
    lm_error *err;
} calc;

/* 1-based character column of byte offset pos. */
static size_t column(const calc *c, size_t pos) {
    size_t col = 1;
    for (size_t i = 0; i < pos && i < c->len; i++) col += ((unsigned char)c->s[i] & 0xC0) != 0x80;
    return col;
}

/* Length of a valid UTF-8 sequence at p (at most n bytes), 0 if invalid. */
static size_t utf8_len(const unsigned char *p, size_t n) {
    size_t k;
    unsigned char lo = 0x80, hi = 0xBF;
    if (p[0] < 0x80) return 1;
    if (p[0] >= 0xC2 && p[0] <= 0xDF) k = 2;
    else if (p[0] >= 0xE0 && p[0] <= 0xEF) {
        k = 3;
        if (p[0] == 0xE0) lo = 0xA0;
        if (p[0] == 0xED) hi = 0x9F;
    } else if (p[0] >= 0xF0 && p[0] <= 0xF4) {
        k = 4;
        if (p[0] == 0xF0) lo = 0x90;
        if (p[0] == 0xF4) hi = 0x8F;
    } else {
        return 0;
    }
    if (n < k || p[1] < lo || p[1] > hi) return 0;
    for (size_t i = 2; i < k; i++)
        if ((p[i] & 0xC0) != 0x80) return 0;
    return k;
}

static int starts(const calc *c, size_t pos, const char *lit) {
    size_t n = strlen(lit);
    return pos + n <= c->len && memcmp(c->s + pos, lit, n) == 0;
}

static token peek(calc *c) {
    static const struct {
        const char *text;
        int kind;
    } ops[] = {
        {"**", T_POW}, {"<=", T_LE}, {">=", T_GE}, {"==", T_EQ}, {"!=", T_NE},
        {"\xE2\x88\x92", T_SUB}, /* − */
        {"\xC3\x97", T_MUL},     /* × */
        {"\xC3\xB7", T_DIV},     /* ÷ */
        {"\xE2\x89\xA4", T_LE},  /* ≤ */
        {"\xE2\x89\xA5", T_GE},  /* ≥ */
        {"\xE2\x89\xA0", T_NE},  /* ≠ */
        {"+", T_ADD}, {"-", T_SUB}, {"*", T_MUL}, {"/", T_DIV}, {"%", T_MOD}, {"^", T_POW},
        {"(", T_LP}, {")", T_RP}, {"<", T_LT}, {">", T_GT}, {"=", T_EQ},
    };
    size_t p = c->pos;
    for (;;) {
        if (p < c->len && (c->s[p] == ' ' || c->s[p] == '\t' || c->s[p] == '\n' || c->s[p] == '\r'))
            p++;
        else if (starts(c, p, "\xC2\xA0")) /* no-break space */
            p += 2;
        else
            break;
    }
    token t = {T_END, p, 0};
    if (p >= c->len) return t;
    char ch = c->s[p];
    if ((ch >= '0' && ch <= '9') || ch == '.') {
        size_t q = p;
        while (q < c->len && ((c->s[q] >= '0' && c->s[q] <= '9') || c->s[q] == '.')) q++;
        t.kind = T_NUM;
        t.len = q - p;
        return t;
    }
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        if (starts(c, p, ops[i].text)) {
            t.kind = ops[i].kind;
            t.len = strlen(ops[i].text);
            return t;
        }
    }
    t.kind = T_BAD;
    t.len = 1;
    return t;
}

static void advance(calc *c, token t) { c->pos = t.pos + t.len; }

static lm_status unexpected(calc *c, token t) {
    if (t.kind == T_END) return lm_error_set(c->err, LM_ERR_FORMAT, "unexpected end of expression");
    const unsigned char *p = (const unsigned char *)c->s + t.pos;
    size_t col = column(c, t.pos);
    if (t.kind == T_NUM) {
        int n = t.len > 20 ? 20 : (int)t.len;
        return lm_error_set(c->err, LM_ERR_FORMAT, "unexpected number '%.*s%s' at %zu", n,
                            (const char *)p, t.len > 20 ? "..." : "", col);
    }
    size_t k = utf8_len(p, c->len - t.pos);
    if (k == 0 || (k == 1 && (p[0] < 0x20 || p[0] == 0x7F)))
        return lm_error_set(c->err, LM_ERR_FORMAT, "unexpected byte 0x%02X at %zu", p[0], col);
    if (t.kind != T_BAD) k = t.len;
    return lm_error_set(c->err, LM_ERR_FORMAT, "unexpected '%.*s' at %zu", (int)k, (const char *)p,
                        col);
}

static lm_status parse_sum(calc *c, bn *out);
static lm_status parse_unary(calc *c, bn *out);

static lm_status parse_number(calc *c, token t, bn *out) {
    size_t ndig = 0, npoint = 0;
    for (size_t i = 0; i < t.len; i++) {
        if (c->s[t.pos + i] == '.') npoint++;
        else ndig++;
    }
    size_t col = column(c, t.pos);
    if (npoint > 1 || !ndig) {
        int n = t.len > 20 ? 20 : (int)t.len;
        return lm_error_set(c->err, LM_ERR_FORMAT, "malformed number '%.*s%s' at %zu", n,
                            c->s + t.pos, t.len > 20 ? "..." : "", col);
    }
    if (ndig > BN_MAX_DIGITS)
        return lm_error_set(c->err, LM_ERR_LIMIT, "number too long at %zu (more than %d digits)",
                            col, BN_MAX_DIGITS);
    advance(c, t);
    return c->eval ? bn_parse(c->s + t.pos, t.len, out, c->err) : LM_OK;
}

static lm_status parse_primary(calc *c, bn *out) {
    token t = peek(c);
    if (t.kind == T_NUM) return parse_number(c, t, out);
    if (t.kind != T_LP) return unexpected(c, t);
    advance(c, t);
    lm_status st = parse_sum(c, out);
    if (st) return st;
    token r = peek(c);
    if (r.kind == T_RP) {
        advance(c, r);
        return LM_OK;
    }
    if (r.kind >= T_LT && r.kind <= T_NE)
        return lm_error_set(c->err, LM_ERR_FORMAT,
                            "comparison at %zu must be the outermost operation, not in parentheses",
                            column(c, r.pos));
    if (r.kind == T_END)
        return lm_error_set(c->err, LM_ERR_FORMAT, "missing ')' for the '(' at %zu",
                            column(c, t.pos));
    return unexpected(c, r);
}

/* out = a op b; a and b are consumed. */
static lm_status apply(calc *c, int op, bn *a, bn *b, bn *out) {
    if (!c->eval) return LM_OK;
    bn r;
    bn_init(&r);
    lm_status st;
    switch (op) {
    case T_ADD: st = bn_add(&c->ctx, a, b, &r, c->err); break;
    case T_SUB: st = bn_sub(&c->ctx, a, b, &r, c->err); break;
    case T_MUL: st = bn_mul(&c->ctx, a, b, &r, c->err); break;
    case T_DIV: st = bn_div(&c->ctx, a, b, &r, c->err); break;
    case T_MOD: st = bn_mod(&c->ctx, a, b, &r, c->err); break;
    default: st = bn_pow(&c->ctx, a, b, &r, c->err); break;
    }
    bn_free(a);
    bn_free(b);
    if (st) {
        bn_free(&r);
        return st;
    }
    *out = r;
    return LM_OK;
}

static lm_status parse_power(calc *c, bn *out) {
    lm_status st = parse_primary(c, out);
    if (st) return st;
    token t = peek(c);
    if (t.kind != T_POW) return LM_OK;
    advance(c, t);
    bn e;
    bn_init(&e);
    st = parse_unary(c, &e);
    if (st) {
        bn_free(&e);
        return st;
    }
    return apply(c, T_POW, out, &e, out);
}

static lm_status parse_unary(calc *c, bn *out) {
    if (++c->depth > LM_CALC_MAX_DEPTH)
        return lm_error_set(c->err, LM_ERR_LIMIT, "expression nested too deeply (more than %d levels)",
                            LM_CALC_MAX_DEPTH);
    lm_status st;
    token t = peek(c);
    if (t.kind == T_SUB || t.kind == T_ADD) {
        advance(c, t);
        st = parse_unary(c, out);
        if (!st && t.kind == T_SUB) bn_negate(out);
    } else {
        st = parse_power(c, out);
    }
    c->depth--;
    return st;
}

static lm_status parse_binary(calc *c, bn *out, int lo, int hi, int is_sum) {
    lm_status st = is_sum ? parse_binary(c, out, T_MUL, T_MOD, 0) : parse_unary(c, out);
    while (!st) {
        token t = peek(c);
        if (t.kind < lo || t.kind > hi) break;
        advance(c, t);
        bn b;
        bn_init(&b);
        st = is_sum ? parse_binary(c, &b, T_MUL, T_MOD, 0) : parse_unary(c, &b);
        if (st) {
            bn_free(&b);
            break;
        }
        st = apply(c, t.kind, out, &b, out);
    }
    return st;
}

static lm_status parse_sum(calc *c, bn *out) { return parse_binary(c, out, T_ADD, T_SUB, 1); }

/* top := sum [cmp sum] END; *cmp_result is -1 when there is no comparison. */
static lm_status parse_top(calc *c, bn *out, int *cmp_result) {
    *cmp_result = -1;
    token t = peek(c);
    if (t.kind == T_END) return lm_error_set(c->err, LM_ERR_FORMAT, "empty expression");
    lm_status st = parse_sum(c, out);
    if (st) return st;
    t = peek(c);
    if (t.kind >= T_LT && t.kind <= T_NE) {
        advance(c, t);
        bn b;
        bn_init(&b);
        st = parse_sum(c, &b);
        int cmp = 0;
        if (!st && c->eval) st = bn_cmp(&c->ctx, out, &b, &cmp, c->err);
        bn_free(&b);
        if (st) return st;
        switch (t.kind) {
        case T_LT: *cmp_result = cmp < 0; break;
        case T_LE: *cmp_result = cmp <= 0; break;
        case T_GT: *cmp_result = cmp > 0; break;
        case T_GE: *cmp_result = cmp >= 0; break;
        case T_EQ: *cmp_result = cmp == 0; break;
        default: *cmp_result = cmp != 0; break;
        }
        token u = peek(c);
        if (u.kind >= T_LT && u.kind <= T_NE)
            return lm_error_set(c->err, LM_ERR_FORMAT, "comparisons cannot be chained (at %zu)",
                                column(c, u.pos));
        t = u;
    }
    if (t.kind != T_END) {
        if (t.kind == T_RP)
            return lm_error_set(c->err, LM_ERR_FORMAT, "unexpected ')' at %zu", column(c, t.pos));
        return unexpected(c, t);
    }
    return LM_OK;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

lm_status lm_calc_eval(const char *expr, char **result, int *is_error, lm_error *err) {
    if (!expr || !result || !is_error) return lm_error_set(err, LM_ERR_ARG, "lm_calc_eval: NULL argument");
    *result = NULL;
    *is_error = 0;
    lm_error perr;
    lm_error_clear(&perr);
    calc c = {0};
    c.s = expr;
    c.len = strlen(expr);
    c.err = &perr;
    c.ctx.work_left = BN_WORK_LIMIT;
    bn v;
    bn_init(&v);
    int cmp = -1;
    lm_status st;
    if (c.len > LM_CALC_MAX_LEN) {
        st = lm_error_set(&perr, LM_ERR_LIMIT, "expression too long (more than %d bytes)",
                          LM_CALC_MAX_LEN);
    } else {
        st = parse_top(&c, &v, &cmp); /* syntax only */
        if (!st) {
            c.pos = 0;
            c.depth = 0;
            c.eval = 1;
            st = parse_top(&c, &v, &cmp);
        }
    }
    if (st == LM_ERR_NOMEM) {
        bn_free(&v);
        return lm_error_set(err, st, "calculator: %s", perr.message);
    }
    if (st) {
        *is_error = 1;
        *result = dup_str(perr.message);
    } else if (cmp >= 0) {
        *result = dup_str(cmp ? "true" : "false");
    } else {
        st = bn_to_string(&v, result, err);
        if (st) {
            bn_free(&v);
            return st;
        }
    }
    bn_free(&v);
    if (!*result) return lm_error_set(err, LM_ERR_NOMEM, "calculator: out of memory");
    return LM_OK;
}

static lm_status calc_call(void *state, const char *args_json, lm_tool_result *out, lm_error *err) {
    (void)state;
    memset(out, 0, sizeof *out);
    cJSON *root = args_json ? cJSON_Parse(args_json) : NULL;
    const char *msg = NULL;
    const cJSON *expr = NULL;
    if (!cJSON_IsObject(root)) {
        msg = "arguments must be a JSON object like {\"expression\": \"2 + 2\"}";
    } else {
        expr = cJSON_GetObjectItemCaseSensitive(root, "expression");
        if (!cJSON_IsString(expr) || !expr->valuestring) msg = "missing string argument \"expression\"";
        for (const cJSON *it = root->child; !msg && it; it = it->next)
            if (!it->string || strcmp(it->string, "expression") != 0)
                msg = "unknown argument: only \"expression\" is accepted";
    }
    lm_status st = LM_OK;
    if (msg) {
        out->text = dup_str(msg);
        out->is_error = 1;
        if (!out->text) st = lm_error_set(err, LM_ERR_NOMEM, "calculator: out of memory");
    } else {
        st = lm_calc_eval(expr->valuestring, &out->text, &out->is_error, err);
    }
    cJSON_Delete(root);
    if (st) {
        lm_tool_result_free(out);
        return st;
    }
    out->len = strlen(out->text);
    return LM_OK;
}

lm_status lm_tool_calculator(lm_tool *out, lm_error *err) {
    if (!out) return lm_error_set(err, LM_ERR_ARG, "lm_tool_calculator: NULL tool");
    memset(out, 0, sizeof *out);
    out->name = "calculator";
    out->description =
        "Exact arithmetic on integers of any size and decimals: + - * / % ^ (integer powers), "
        "parentheses, and one comparison (< <= > >= == !=) giving true or false; a division "
        "that does not terminate is truncated to 50 decimal places.";
    out->parameters_schema =
        "{\"type\":\"object\",\"properties\":{\"expression\":{\"type\":\"string\","
        "\"description\":\"The arithmetic expression, e.g. \\\"(2^100 + 3) * 1.5\\\" or "
        "\\\"7 / 3 > 2\\\"\"}},\"required\":[\"expression\"],\"additionalProperties\":false}";
    out->call = calc_call;
    return LM_OK;
}
