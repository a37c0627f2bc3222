/* The calculator tool: unit cases (precedence, decimals, big integers, the
 * division rule, every error), property tests against bc (thousands of
 * seeded random expressions, evaluated by us and by `bc` in one run, compared
 * digit for digit; skipped with a message when bc is absent), and the call
 * path through lm_tool (JSON arguments in, text out). */
#include "llmos/calculator.h"
#include "test.h"

#include <cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *eval(const char *expr, int *is_error) {
    char *r = NULL;
    lm_error err;
    lm_status st = lm_calc_eval(expr, &r, is_error, &err);
    REQUIRE(st == LM_OK && r);
    return r;
}

static void check_value(const char *expr, const char *want, int line) {
    int e = 0;
    char *r = eval(expr, &e);
    if (e || strcmp(r, want) != 0) {
        fprintf(stderr, "line %d: %s: got %s%s, want %s\n", line, expr, e ? "error " : "", r, want);
        test_failures_++;
    }
    test_checks_++;
    free(r);
}

static void check_error(const char *expr, const char *want_sub, int line) {
    int e = 0;
    char *r = eval(expr, &e);
    if (!e || !strstr(r, want_sub)) {
        fprintf(stderr, "line %d: %.60s: got %s%s, want error containing '%s'\n", line, expr,
                e ? "error " : "", r, want_sub);
        test_failures_++;
    }
    test_checks_++;
    free(r);
}

#define VAL(expr, want) check_value(expr, want, __LINE__)
#define ERR(expr, sub) check_error(expr, sub, __LINE__)

static char *repeat(const char *s, int n, const char *tail) {
    size_t k = strlen(s), t = strlen(tail);
    char *p = malloc(k * (size_t)n + t + 1);
    REQUIRE(p);
    for (int i = 0; i < n; i++) memcpy(p + k * (size_t)i, s, k);
    memcpy(p + k * (size_t)n, tail, t + 1);
    return p;
}

static void unit_cases(void) {
    VAL("1 + 2 * 3", "7");
    VAL("(1 + 2) * 3", "9");
    VAL("10 - 4 - 3", "3");
    VAL("100 / 10 / 5", "2");
    VAL("2 ^ 3 ^ 2", "512");
    VAL("2 ** 3 ** 2", "512");
    VAL("-2 ^ 2", "-4");
    VAL("(-2) ^ 2", "4");
    VAL("2 ^ -2", "0.25");
    VAL("-(-(3))", "3");
    VAL("--3", "3");
    VAL("+5 - -5", "10");
    VAL("3 * -2", "-6");
    VAL("7 % 3 * 2", "2");
    VAL("2 + 3 % 2", "3");
    VAL("0.1 + 0.2", "0.3");
    VAL("1.50 * 2", "3");
    VAL(".5 + 5.", "5.5");
    VAL("0.001 * 0.001", "0.000001");
    VAL("-1.25 - 0.75", "-2");
    VAL("007", "7");
    VAL("0 * -5", "0");
    VAL("-0", "0");
    VAL("3 \xC3\x97 4 \xC3\xB7 2 \xE2\x88\x92 1", "5"); /* 3 × 4 ÷ 2 − 1 */
    VAL("  \t1\n+\r2  ", "3");
    VAL("2^200", "1606938044258990275541962092341162602522202993782792835301376");
    VAL("0^0", "1");
    VAL("(-1)^1000001", "-1");
    VAL("1^123456789012345678901234567890", "1");
    VAL("0^99999999999999999999", "0");
    VAL("1.5^2", "2.25");
    VAL("2^1.0", "2");
    /* 100-digit multiplication: (10^100 - 1)^2 = 10^200 - 2*10^100 + 1. */
    {
        char *a = repeat("9", 100, ""), expr[256], want[256];
        snprintf(expr, sizeof expr, "%s * %s", a, a);
        memset(want, '9', 99);
        want[99] = '8';
        memset(want + 100, '0', 99);
        want[199] = '1';
        want[200] = '\0';
        VAL(expr, want);
        free(a);
    }
    /* Division: exact when it terminates within 50 decimals, else truncated
     * toward zero at 50. */
    VAL("1 / 8", "0.125");
    VAL("1 / 3", "0.33333333333333333333333333333333333333333333333333");
    VAL("2 / 3", "0.66666666666666666666666666666666666666666666666666");
    VAL("-2 / 3", "-0.66666666666666666666666666666666666666666666666666");
    VAL("1 / 2^50", "0.00000000000000088817841970012523233890533447265625");
    VAL("1 / 2^51", "0.00000000000000044408920985006261616945266723632812");
    VAL("1 / 10^51", "0");
    VAL("10^60 / 10^10", "100000000000000000000000000000000000000000000000000");
    VAL("123456789012345678901234567890 / 123456789", "1000000000100000000010");
    VAL("123456789012345678901234567891 / 123456789", "1000000000100000000010.00000000810000007371000067076100610392515554571891");
    VAL("2^-3", "0.125");
    /* Modulo: a - trunc(a/b)*b, sign of a. */
    VAL("7 % 3", "1");
    VAL("-7 % 3", "-1");
    VAL("7 % -3", "1");
    VAL("5.5 % 2", "1.5");
    VAL("2^100 % 1000000007", "976371285");
    /* Comparisons. */
    VAL("1 < 2", "true");
    VAL("2 <= 2", "true");
    VAL("3 > 4", "false");
    VAL("1.0 >= 1", "true");
    VAL("0.1 + 0.2 == 0.3", "true");
    VAL("0.1 + 0.2 = 0.3", "true");
    VAL("1/3 != 0.33333", "true");
    VAL("2^64 \xE2\x89\xA5 18446744073709551616", "true"); /* ≥ */
    VAL("-1 \xE2\x89\xA4 -2", "false");                   /* ≤ */
    VAL("1 \xE2\x89\xA0 1", "false");                      /* ≠ */

    ERR("1 / 0", "division by zero");
    ERR("1 / (2 - 2)", "division by zero");
    ERR("5 % 0", "modulo by zero");
    ERR("5 % 0.0", "modulo by zero");
    ERR("0 ^ -1", "division by zero");
    ERR("2 ^ 0.5", "exponent must be an integer");
    ERR("9^9^9", "result too large");
    ERR("2^100000", "result too large");
    ERR("2^123456789012345678901234567890", "result too large");
    ERR("10^9999 * 10", "result too large");
    ERR("0.1^10001", "result too large");
    ERR("1 +", "unexpected end of expression");
    ERR("(1 + 2", "missing ')' for the '(' at 1");
    ERR("1 + 2)", "unexpected ')' at 6");
    ERR("(1+2))*3", "unexpected ')' at 6");
    ERR("1..2", "malformed number '1..2' at 1");
    ERR("1 + .", "malformed number '.' at 5");
    ERR("2 3", "unexpected number '3' at 3");
    ERR("2(3)", "unexpected '(' at 2");
    ERR("abc", "unexpected 'a' at 1");
    ERR("1e5", "unexpected 'e' at 2");
    ERR("\xC3\x97 2", "unexpected '\xC3\x97' at 1");
    ERR("1 + \xE2\x82\xAC", "unexpected '\xE2\x82\xAC' at 5"); /* € */
    ERR("1 + \x01", "unexpected byte 0x01 at 5");
    ERR("1 + \xFF", "unexpected byte 0xFF at 5");
    ERR("\xE2\x88\x92\xE2\x88\x92 x", "unexpected 'x' at 4"); /* columns count characters */
    ERR("", "empty expression");
    ERR("   ", "empty expression");
    ERR("1 < 2 < 3", "comparisons cannot be chained");
    ERR("(1 < 2)", "must be the outermost operation");
    ERR("1 < ", "unexpected end of expression");
    ERR("1 / 0 +", "unexpected end of expression"); /* syntax is checked first */
    ERR("__import__('os')", "unexpected '_' at 1");
    {
        char *deep = repeat("(", 101, "1");
        char *p = repeat(")", 101, "");
        char *e = malloc(strlen(deep) + strlen(p) + 1);
        REQUIRE(e);
        strcpy(e, deep);
        strcat(e, p);
        ERR(e, "nested too deeply");
        free(deep);
        free(p);
        free(e);
        char *ok = repeat("(", 90, "1");
        char *q = repeat(")", 90, "");
        e = malloc(strlen(ok) + strlen(q) + 1);
        REQUIRE(e);
        strcpy(e, ok);
        strcat(e, q);
        VAL(e, "1");
        free(ok);
        free(q);
        free(e);
        char *neg = repeat("-", 200, "1");
        ERR(neg, "nested too deeply");
        free(neg);
        char *pw = repeat("1^", 200, "1");
        ERR(pw, "nested too deeply");
        free(pw);
    }
    {
        char *longnum = repeat("1", 10001, "");
        ERR(longnum, "number too long at 1");
        longnum[10000] = '\0';
        int e = 0;
        char *r = eval(longnum, &e);
        CHECK(!e && strcmp(r, longnum) == 0);
        free(r);
        free(longnum);
        char *huge = repeat("1+", 40000, "1");
        ERR(huge, "expression too long");
        free(huge);
        /* Each 9^9999 is ~0.7M limb operations: 400 of them pass the budget. */
        char *work = repeat("9^9999*0+", 400, "1");
        ERR(work, "too expensive");
        free(work);
        VAL("9^9999 % 1000", "889");
    }
}

/* ---- property tests against bc ---- */

typedef struct sbuf {
    char *p;
    size_t n, cap;
} sbuf;

static void sb_put(sbuf *b, const char *s) {
    size_t k = strlen(s);
    if (b->n + k + 1 > b->cap) {
        b->cap = (b->n + k + 1) * 2;
        b->p = realloc(b->p, b->cap);
        REQUIRE(b->p);
    }
    memcpy(b->p + b->n, s, k + 1);
    b->n += k;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static int rnd_below(int n) { return (int)(rnd() % (uint64_t)n); }

enum { P_SUM = 1, P_TERM, P_UNARY, P_POWER, P_PRIMARY };

typedef struct node {
    sbuf ours, bc;
    int prec;
} node;

static void digits(sbuf *b, int n, int lead_nonzero) {
    char d[2] = {0, 0};
    for (int i = 0; i < n; i++) {
        d[0] = (char)('0' + (i == 0 && lead_nonzero ? 1 + rnd_below(9) : rnd_below(10)));
        sb_put(b, d);
    }
}

static void leaf(node *r, int max_digits) {
    sbuf lit = {0};
    if (rnd_below(3) == 0) { /* decimal */
        int ip = rnd_below(max_digits / 2 + 1), fp = 1 + rnd_below(max_digits / 2);
        if (ip) digits(&lit, ip, 1);
        else sb_put(&lit, "0");
        sb_put(&lit, ".");
        digits(&lit, fp, 0);
    } else {
        digits(&lit, 1 + rnd_below(max_digits), rnd_below(20) != 0);
    }
    if (rnd_below(4) == 0) {
        sb_put(&r->ours, rnd_below(4) ? "-" : "\xE2\x88\x92");
        sb_put(&r->ours, lit.p);
        sb_put(&r->bc, "(-");
        sb_put(&r->bc, lit.p);
        sb_put(&r->bc, ")");
        r->prec = P_UNARY;
    } else {
        sb_put(&r->ours, lit.p);
        sb_put(&r->bc, lit.p);
        r->prec = P_PRIMARY;
    }
    free(lit.p);
}

static void sp(sbuf *b) {
    if (rnd_below(2)) sb_put(b, " ");
}

/* Appends child's text to ours, in parentheses when its precedence is below
 * min (or now and then for no reason). */
static void put_child(sbuf *b, const node *ch, int min) {
    int paren = ch->prec < min || rnd_below(12) == 0;
    if (paren) sb_put(b, "(");
    sb_put(b, ch->ours.p);
    if (paren) sb_put(b, ")");
}

static void gen(node *r, int depth, int max_digits) {
    memset(r, 0, sizeof *r);
    if (depth == 0 || rnd_below(4) == 0) {
        leaf(r, max_digits);
        return;
    }
    int op = rnd_below(11);
    node a, b;
    if (op == 10) { /* power: small base, exponent 0..4 */
        gen(&a, rnd_below(3) == 0 ? 1 : 0, max_digits > 12 ? 12 : max_digits);
        char e[8];
        snprintf(e, sizeof e, "%d", rnd_below(5));
        put_child(&r->ours, &a, P_PRIMARY);
        sp(&r->ours);
        sb_put(&r->ours, rnd_below(2) ? "^" : "**");
        sp(&r->ours);
        sb_put(&r->ours, e);
        sb_put(&r->bc, "(");
        sb_put(&r->bc, a.bc.p);
        sb_put(&r->bc, ")^");
        sb_put(&r->bc, e);
        r->prec = P_POWER;
        free(a.ours.p);
        free(a.bc.p);
        return;
    }
    gen(&a, depth - 1, max_digits);
    gen(&b, depth - 1, max_digits);
    static const char *sym[] = {"+", "-", "*", "/", "%"};
    static const char *uni[] = {"+", "\xE2\x88\x92", "\xC3\x97", "\xC3\xB7", "%"};
    int k = op < 3 ? 0 : op < 5 ? 1 : op < 7 ? 2 : op < 9 ? 3 : 4;
    int is_sum = k < 2;
    put_child(&r->ours, &a, is_sum ? P_SUM : P_TERM);
    sp(&r->ours);
    sb_put(&r->ours, rnd_below(5) ? sym[k] : uni[k]);
    sp(&r->ours);
    put_child(&r->ours, &b, is_sum ? P_TERM : P_UNARY);
    r->prec = is_sum ? P_SUM : P_TERM;
    if (k == 3 || k == 4) {
        sb_put(&r->bc, k == 3 ? "d(" : "m(");
        sb_put(&r->bc, a.bc.p);
        sb_put(&r->bc, ",");
        sb_put(&r->bc, b.bc.p);
        sb_put(&r->bc, ")");
    } else {
        sb_put(&r->bc, "(");
        sb_put(&r->bc, a.bc.p);
        sb_put(&r->bc, ")");
        sb_put(&r->bc, sym[k]);
        sb_put(&r->bc, "(");
        sb_put(&r->bc, b.bc.p);
        sb_put(&r->bc, ")");
    }
    free(a.ours.p);
    free(a.bc.p);
    free(b.ours.p);
    free(b.bc.p);
}

/* bc prints ".5", "-.50", "3.00": bring it to our canonical form. */
static void canon_bc(char *s) {
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == '\\')) s[--n] = '\0';
    if (strchr(s, '.')) {
        while (n && s[n - 1] == '0') s[--n] = '\0';
        if (n && s[n - 1] == '.') s[--n] = '\0';
    }
    const char *body = s[0] == '-' ? s + 1 : s;
    if (body[0] == '.' || body[0] == '\0') {
        /* insert a leading zero */
        size_t neg = s[0] == '-';
        memmove(s + neg + 1, s + neg, strlen(s + neg) + 1);
        s[neg] = '0';
    }
    if (strcmp(s, "-0") == 0) strcpy(s, "0");
}

static const char BC_PRELUDE[] =
    "define d(a,b){auto s,r;s=scale;scale=50;r=a/b;scale=s;return(r);}\n"
    "define m(a,b){auto s,r;s=scale;scale=0;r=a%b;scale=s;return(r);}\n"
    "scale=20000\n";

/* Runs every bc expression in one bc process and compares line by line. */
static int compare_with_bc(const char *label, char **bc_expr, char **ours, int n) {
    char path[] = "/tmp/llmos_calc_bcXXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    FILE *f = fdopen(fd, "w");
    REQUIRE(f);
    fputs(BC_PRELUDE, f);
    for (int i = 0; i < n; i++) fprintf(f, "%s\n", bc_expr[i]);
    fputs("quit\n", f);
    fclose(f);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "BC_LINE_LENGTH=0 bc -q %s", path);
    FILE *p = popen(cmd, "r");
    REQUIRE(p);
    size_t cap = 1 << 20;
    char *line = malloc(cap);
    REQUIRE(line);
    int compared = 0;
    for (int i = 0; i < n; i++) {
        if (!fgets(line, (int)cap, p)) {
            fprintf(stderr, "%s: bc stopped after %d lines\n", label, i);
            test_failures_++;
            break;
        }
        canon_bc(line);
        test_checks_++;
        if (strcmp(line, ours[i]) != 0) {
            fprintf(stderr, "%s: mismatch #%d\n  bc:   %s\n  ours: %s\n  expr: %s\n", label, i, line,
                    ours[i], bc_expr[i]);
            test_failures_++;
        } else {
            compared++;
        }
    }
    pclose(p);
    unlink(path);
    free(line);
    return compared;
}

static void random_vs_bc(void) {
    if (system("command -v bc >/dev/null 2>&1") != 0) {
        printf("bc not found: skipping the property tests against bc\n");
        return;
    }
    enum { N = 4000, NBIG = 300 };
    char **bc_expr = calloc(N + NBIG, sizeof *bc_expr), **ours = calloc(N + NBIG, sizeof *ours);
    REQUIRE(bc_expr && ours);
    int n = 0, zero_div = 0;
    for (int i = 0; i < N; i++) {
        node a;
        gen(&a, 1 + rnd_below(4), 40);
        sbuf o = {0}, b = {0};
        if (rnd_below(6) == 0) { /* a comparison at the top */
            static const char *cmp[] = {"<", "<=", ">", ">=", "==", "!="};
            int k = rnd_below(6);
            node c;
            gen(&c, rnd_below(3), 40);
            if (rnd_below(3) == 0) { /* make equality likely */
                free(c.ours.p);
                free(c.bc.p);
                memset(&c, 0, sizeof c);
                sb_put(&c.ours, a.ours.p);
                sb_put(&c.bc, a.bc.p);
            }
            sb_put(&o, a.ours.p);
            sb_put(&o, " ");
            sb_put(&o, cmp[k]);
            sb_put(&o, " ");
            sb_put(&o, c.ours.p);
            sb_put(&b, "(");
            sb_put(&b, a.bc.p);
            sb_put(&b, ")");
            sb_put(&b, cmp[k]);
            sb_put(&b, "(");
            sb_put(&b, c.bc.p);
            sb_put(&b, ")");
            free(c.ours.p);
            free(c.bc.p);
        } else {
            sb_put(&o, a.ours.p);
            sb_put(&b, a.bc.p);
        }
        free(a.ours.p);
        free(a.bc.p);
        int e = 0;
        char *r = eval(o.p, &e);
        if (e) {
            if (strcmp(r, "division by zero") && strcmp(r, "modulo by zero")) {
                fprintf(stderr, "unexpected error '%s' for %s\n", r, o.p);
                test_failures_++;
            }
            zero_div++;
            free(r);
            free(o.p);
            free(b.p);
            continue;
        }
        if (!strcmp(r, "true") || !strcmp(r, "false")) {
            char *t = malloc(2);
            REQUIRE(t);
            strcpy(t, r[0] == 't' ? "1" : "0");
            free(r);
            r = t;
        }
        bc_expr[n] = b.p;
        ours[n] = r;
        n++;
        free(o.p);
    }
    int small = n;
    /* Big operands: 50..2000 digits through *, / and % (multi-limb divisors). */
    for (int i = 0; i < NBIG; i++) {
        sbuf x = {0}, y = {0}, o = {0}, b = {0};
        digits(&x, 50 + rnd_below(1950), 1);
        digits(&y, 1 + rnd_below(1000), 1);
        if (rnd_below(3) == 0) {
            sb_put(&y, ".");
            digits(&y, 1 + rnd_below(30), 0);
        }
        int k = rnd_below(3);
        sb_put(&o, x.p);
        sb_put(&o, k == 0 ? " * " : k == 1 ? " / " : " % ");
        sb_put(&o, y.p);
        if (k == 0) {
            sb_put(&b, x.p);
            sb_put(&b, "*");
            sb_put(&b, y.p);
        } else {
            sb_put(&b, k == 1 ? "d(" : "m(");
            sb_put(&b, x.p);
            sb_put(&b, ",");
            sb_put(&b, y.p);
            sb_put(&b, ")");
        }
        int e = 0;
        char *r = eval(o.p, &e);
        CHECKF(!e, "%s", r);
        bc_expr[n] = b.p;
        ours[n] = r;
        n++;
        free(x.p);
        free(y.p);
        free(o.p);
    }
    int c1 = compare_with_bc("random", bc_expr, ours, small);
    int c2 = compare_with_bc("big", bc_expr + small, ours + small, n - small);
    printf("bc agreed on %d of %d random expressions (%d more hit a zero divisor) and %d of %d "
           "big-operand operations\n",
           c1, small, zero_div, c2, n - small);
    for (int i = 0; i < n; i++) {
        free(bc_expr[i]);
        free(ours[i]);
    }
    free(bc_expr);
    free(ours);
}

static void tool_path(void) {
    lm_tool t;
    lm_error err;
    REQUIRE(lm_tool_calculator(&t, &err) == LM_OK);
    CHECK(strcmp(t.name, "calculator") == 0);
    CHECK(t.description && strlen(t.description) > 10);
    cJSON *schema = cJSON_Parse(t.parameters_schema);
    CHECK(cJSON_IsObject(schema));
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(schema, "properties");
    const cJSON *ex = cJSON_GetObjectItemCaseSensitive(props, "expression");
    CHECK(cJSON_IsObject(ex));
    CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(schema, "additionalProperties")));
    cJSON_Delete(schema);

    static const struct {
        const char *args, *want;
        int is_error;
    } calls[] = {
        {"{\"expression\": \"2 + 2\"}", "4", 0},
        {"{\"expression\": \"2^64\"}", "18446744073709551616", 0},
        {"{\"expression\": \"3 \\u00d7 4\"}", "12", 0},
        {"{\"expression\": \"1 < 2\"}", "true", 0},
        {"{\"expression\": \"1/0\"}", "division by zero", 1},
        {"{\"expression\": \"1 +\"}", "unexpected end of expression", 1},
        {"{\"expression\": 5}", "missing string argument", 1},
        {"{}", "missing string argument", 1},
        {"{\"expression\": \"1\", \"x\": 1}", "unknown argument", 1},
        {"{\"expression\": ", "JSON object", 1},
        {"[\"2+2\"]", "JSON object", 1},
        {"", "JSON object", 1},
    };
    for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
        lm_tool_result r;
        lm_status st = t.call(t.state, calls[i].args, &r, &err);
        CHECKF(st == LM_OK, "%s", calls[i].args);
        if (st) continue;
        CHECKF(r.is_error == calls[i].is_error && strstr(r.text, calls[i].want) &&
                   r.len == strlen(r.text),
               "%s -> %s", calls[i].args, r.text);
        lm_tool_result_free(&r);
    }
    lm_tool_result r;
    CHECK(t.call(t.state, NULL, &r, &err) == LM_OK && r.is_error);
    lm_tool_result_free(&r);
    lm_tool_free(&t);
}

int main(void) {
    unit_cases();
    tool_path();
    random_vs_bc();
    TEST_END();
}
