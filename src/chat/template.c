/* The chat-template engine: lexer, parser and evaluator of the Jinja subset
 * documented in include/llmos/chat_template.h.
 *
 * Memory: a template owns one arena (a copy of the source, token strings, the
 * AST); a render uses another arena for its values, freed at the end, and a
 * string builder for the output. Strings carry spans that say which of their
 * bytes came from which message's content; the output's spans become the
 * segments. */
#include "llmos/chat_template.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ arena */

typedef struct chunk {
    struct chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
} chunk;

typedef struct arena {
    chunk *head;
    size_t total, limit;
} arena;

static void *arena_alloc(arena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (n == 0) n = 16;
    if (!a->head || a->head->cap - a->head->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        if (cap > a->limit || a->total > a->limit - cap) return NULL;
        chunk *c = malloc(sizeof(chunk) + cap);
        if (!c) return NULL;
        c->next = a->head;
        c->used = 0;
        c->cap = cap;
        a->head = c;
        a->total += cap;
    }
    void *p = a->head->data + a->head->used;
    a->head->used += n;
    return p;
}

static void arena_free(arena *a) {
    chunk *c = a->head;
    while (c) {
        chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
    a->total = 0;
}

/* ------------------------------------------------------------------ values */

typedef struct span {
    size_t off, len;
    int32_t msg;
} span;

/* A string: bytes (not owned) plus the spans of message content in it. */
typedef struct lstr {
    const char *p;
    size_t len;
    const span *sp;
    size_t nsp;
} lstr;

enum vkind { V_UNDEF, V_NONE, V_BOOL, V_INT, V_STR, V_LIST, V_DICT, V_LOOP };

struct value;
typedef struct list {
    struct value *v;
    size_t n;
} list;

typedef struct dict {
    lstr *k;
    struct value *v;
    size_t n, cap;
    int ns; /* a namespace(): attributes may be assigned */
} dict;

typedef struct loopst {
    int64_t i, n;
    const list *items;
} loopst;

typedef struct value {
    int k;
    union {
        int b;
        int64_t i;
        lstr s;
        list *l;
        dict *d;
        loopst *lp;
    } u;
} value;

static const char *kind_name(int k) {
    switch (k) {
    case V_UNDEF: return "undefined";
    case V_NONE: return "none";
    case V_BOOL: return "boolean";
    case V_INT: return "integer";
    case V_STR: return "string";
    case V_LIST: return "list";
    case V_DICT: return "dict";
    case V_LOOP: return "loop";
    }
    return "?";
}

static value v_undef(void) {
    value v;
    memset(&v, 0, sizeof v);
    v.k = V_UNDEF;
    return v;
}
static value v_int(int64_t i) {
    value v = v_undef();
    v.k = V_INT;
    v.u.i = i;
    return v;
}
static value v_bool(int b) {
    value v = v_undef();
    v.k = V_BOOL;
    v.u.b = b != 0;
    return v;
}
static value v_str(lstr s) {
    value v = v_undef();
    v.k = V_STR;
    v.u.s = s;
    return v;
}
static lstr plain(const char *p, size_t len) {
    lstr s = {p, len, NULL, 0};
    return s;
}

/* ------------------------------------------------------------------ AST */

enum nkind {
    N_LIT, N_VAR, N_ATTR, N_INDEX, N_SLICE, N_BIN, N_NOT, N_NEG, N_COND, N_LIST, N_DICT,
    N_FILTER, N_TEST, N_METHOD, N_CALL,
    S_TEXT, S_OUT, S_IF, S_FOR, S_SET
};

enum binop { B_ADD, B_SUB, B_MUL, B_MOD, B_CAT, B_EQ, B_NE, B_LT, B_GT, B_LE, B_GE, B_AND, B_OR, B_IN, B_NOTIN };

enum { F_TRIM, F_TOJSON, F_LENGTH, F_UPPER, F_LOWER, F_DEFAULT, F_STRING, F_JOIN, F_FIRST, F_LAST, F_LIST,
       F_SELECTATTR, F_REJECTATTR };
enum { T_DEFINED, T_UNDEFINED, T_NONE, T_STRING, T_NUMBER, T_INTEGER, T_BOOLEAN, T_MAPPING, T_SEQUENCE, T_TRUE, T_FALSE };
enum { M_STRIP, M_LSTRIP, M_RSTRIP, M_STARTSWITH, M_ENDSWITH, M_UPPER, M_LOWER, M_SPLIT, M_REPLACE, M_GET, M_ITEMS,
       M_KEYS, M_VALUES };
enum { FN_RAISE, FN_RANGE, FN_NAMESPACE };

typedef struct named {
    const char *name;
    int id;
} named;

static const named filters[] = {{"trim", F_TRIM},       {"tojson", F_TOJSON}, {"length", F_LENGTH}, {"count", F_LENGTH},
                                {"upper", F_UPPER},     {"lower", F_LOWER},   {"default", F_DEFAULT}, {"d", F_DEFAULT},
                                {"string", F_STRING},   {"join", F_JOIN},     {"first", F_FIRST},   {"last", F_LAST},
                                {"list", F_LIST},       {"selectattr", F_SELECTATTR}, {"rejectattr", F_REJECTATTR},
                                {NULL, 0}};
static const named tests[] = {{"defined", T_DEFINED}, {"undefined", T_UNDEFINED}, {"none", T_NONE},
                              {"string", T_STRING},   {"number", T_NUMBER},       {"integer", T_INTEGER},
                              {"boolean", T_BOOLEAN}, {"mapping", T_MAPPING},     {"sequence", T_SEQUENCE},
                              {"iterable", T_SEQUENCE}, {"true", T_TRUE},         {"false", T_FALSE},
                              {NULL, 0}};
static const named methods[] = {{"strip", M_STRIP},   {"lstrip", M_LSTRIP}, {"rstrip", M_RSTRIP},
                                {"startswith", M_STARTSWITH}, {"endswith", M_ENDSWITH}, {"upper", M_UPPER},
                                {"lower", M_LOWER},   {"split", M_SPLIT},   {"replace", M_REPLACE},
                                {"get", M_GET},       {"items", M_ITEMS},   {"keys", M_KEYS},
                                {"values", M_VALUES}, {NULL, 0}};
static const named functions[] = {{"raise_exception", FN_RAISE}, {"range", FN_RANGE}, {"namespace", FN_NAMESPACE},
                                  {NULL, 0}};

static int lookup_named(const named *t, const char *name) {
    for (; t->name; t++)
        if (strcmp(t->name, name) == 0) return t->id;
    return -1;
}

typedef struct node node;
struct node {
    int kind, line, col;
    int op;                 /* binop, filter/test/method/function id */
    int negate;             /* `is not` */
    const char *name;       /* variable, attribute, filter... name; set target */
    const char *attr;       /* set ns.attr */
    node *a, *b, *c;        /* operands */
    node **args;            /* call / filter / list items / dict values */
    const char **kw;        /* keyword of each arg, or NULL entries */
    node **keys;            /* dict keys */
    size_t nargs;
    node **body, **els;     /* statements */
    size_t nbody, nels;
    const char **targets;   /* for a, b in ...: the loop variables (NULL for one, in name) */
    size_t ntargets;
    value lit;
};

struct lm_chat_template {
    arena ar;
    node **body;
    size_t nbody;
};

/* ------------------------------------------------------------------ lexer */

enum tkind { TK_TEXT, TK_VAR_BEGIN, TK_VAR_END, TK_BLOCK_BEGIN, TK_BLOCK_END, TK_NAME, TK_STRING, TK_INT, TK_OP, TK_EOF };

typedef struct token {
    int kind, line, col;
    const char *p; /* NUL-terminated text (name, op, decoded string, text) */
    size_t len;
    int64_t ival;
} token;

typedef struct parser {
    lm_chat_template *t;
    const char *src;
    size_t n;
    token *tok;
    size_t ntok, captok, pos;
    int depth;
    lm_error *err;
    lm_status st;
    /* incremental line/column */
    size_t lc_off;
    int lc_line, lc_col;
} parser;

static void line_col(parser *ps, size_t off, int *line, int *col) {
    if (off < ps->lc_off) {
        ps->lc_off = 0;
        ps->lc_line = 1;
        ps->lc_col = 1;
    }
    for (; ps->lc_off < off && ps->lc_off < ps->n; ps->lc_off++) {
        if (ps->src[ps->lc_off] == '\n') {
            ps->lc_line++;
            ps->lc_col = 1;
        } else {
            ps->lc_col++;
        }
    }
    *line = ps->lc_line;
    *col = ps->lc_col;
}

#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static int perr(parser *ps, int line, int col, const char *fmt, ...) {
    if (ps->st != LM_OK) return -1;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ps->st = lm_error_set(ps->err, LM_ERR_FORMAT, "chat template line %d, column %d: %s", line, col, msg);
    return -1;
}

static int nomem(parser *ps) {
    if (ps->st == LM_OK) ps->st = lm_error_set(ps->err, LM_ERR_NOMEM, "chat template: out of memory");
    return -1;
}

static char *pdup(parser *ps, const char *p, size_t len) {
    char *s = arena_alloc(&ps->t->ar, len + 1);
    if (!s) return NULL;
    memcpy(s, p, len);
    s[len] = '\0';
    return s;
}

static int push_tok(parser *ps, int kind, size_t off, const char *p, size_t len, int64_t ival) {
    if (ps->ntok == ps->captok) {
        size_t cap = ps->captok ? ps->captok * 2 : 256;
        token *nt = realloc(ps->tok, cap * sizeof *nt);
        if (!nt) return nomem(ps);
        ps->tok = nt;
        ps->captok = cap;
    }
    token *t = &ps->tok[ps->ntok];
    t->kind = kind;
    line_col(ps, off, &t->line, &t->col);
    t->p = p ? pdup(ps, p, len) : "";
    if (!t->p) return nomem(ps);
    t->len = len;
    t->ival = ival;
    ps->ntok++;
    return 0;
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
static int is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* Tokens of one {{ }} or {% %} starting at *pi (after the opener); close is
 * '}' or '%'. Sets *strip when the tag ends with '-'. */
static int lex_tag(parser *ps, size_t *pi, char close, int *strip) {
    const char *s = ps->src;
    size_t n = ps->n, i = *pi;
    int depth = 0;
    for (;;) {
        while (i < n && is_space(s[i])) i++;
        if (i >= n) {
            int l, c;
            line_col(ps, i, &l, &c);
            return perr(ps, l, c, "unterminated %s", close == '}' ? "'{{'" : "'{%'");
        }
        if (depth == 0 && s[i] == '-' && i + 2 < n && s[i + 1] == close && s[i + 2] == '}') {
            *strip = 1;
            *pi = i + 3;
            return push_tok(ps, close == '}' ? TK_VAR_END : TK_BLOCK_END, i, NULL, 0, 0);
        }
        if (depth == 0 && s[i] == close && i + 1 < n && s[i + 1] == '}') {
            *strip = 0;
            *pi = i + 2;
            return push_tok(ps, close == '}' ? TK_VAR_END : TK_BLOCK_END, i, NULL, 0, 0);
        }
        char c = s[i];
        if (is_alpha(c)) {
            size_t j = i;
            while (j < n && (is_alpha(s[j]) || is_digit(s[j]))) j++;
            if (push_tok(ps, TK_NAME, i, s + i, j - i, 0)) return -1;
            i = j;
        } else if (is_digit(c)) {
            size_t j = i;
            int64_t v = 0;
            while (j < n && is_digit(s[j])) {
                if (v > (INT64_MAX - (s[j] - '0')) / 10) {
                    int l, co;
                    line_col(ps, i, &l, &co);
                    return perr(ps, l, co, "integer literal too large");
                }
                v = v * 10 + (s[j] - '0');
                j++;
            }
            if (j + 1 < n && s[j] == '.' && is_digit(s[j + 1])) {
                int l, co;
                line_col(ps, i, &l, &co);
                return perr(ps, l, co, "float literals are not supported");
            }
            if (push_tok(ps, TK_INT, i, s + i, j - i, v)) return -1;
            i = j;
        } else if (c == '\'' || c == '"') {
            /* Decode into a scratch buffer no longer than the literal. */
            size_t j = i + 1, k = 0;
            char *buf = malloc(n - i + 1);
            if (!buf) return nomem(ps);
            while (j < n && s[j] != c) {
                if (s[j] == '\\' && j + 1 < n) {
                    char e = s[j + 1];
                    switch (e) {
                    case 'n': buf[k++] = '\n'; break;
                    case 't': buf[k++] = '\t'; break;
                    case 'r': buf[k++] = '\r'; break;
                    case '0': buf[k++] = '\0'; break;
                    case '\\': case '\'': case '"': buf[k++] = e; break;
                    default: buf[k++] = '\\'; buf[k++] = e; break; /* Python keeps unknown escapes */
                    }
                    j += 2;
                } else {
                    buf[k++] = s[j++];
                }
            }
            if (j >= n) {
                free(buf);
                int l, co;
                line_col(ps, i, &l, &co);
                return perr(ps, l, co, "unterminated string literal");
            }
            int r = push_tok(ps, TK_STRING, i, buf, k, 0);
            free(buf);
            if (r) return -1;
            i = j + 1;
        } else {
            static const char *two[] = {"==", "!=", "<=", ">=", "//", "**", NULL};
            size_t len = 1;
            for (int q = 0; two[q]; q++)
                if (i + 1 < n && s[i] == two[q][0] && s[i + 1] == two[q][1]) len = 2;
            if (len == 1 && !strchr("()[]{},.:|~+-*/%<>=", c)) {
                int l, co;
                line_col(ps, i, &l, &co);
                return perr(ps, l, co, "unexpected character '%c'", c);
            }
            if (c == '(' || c == '[' || c == '{') depth++;
            if ((c == ')' || c == ']' || c == '}') && depth > 0) depth--;
            if (push_tok(ps, TK_OP, i, s + i, len, 0)) return -1;
            i += len;
        }
    }
}

static int lex(parser *ps) {
    const char *s = ps->src;
    size_t n = ps->n, i = 0;
    int strip_ws = 0, trim_nl = 0;
    for (;;) {
        size_t j = i;
        while (j + 1 < n && !(s[j] == '{' && (s[j + 1] == '{' || s[j + 1] == '%' || s[j + 1] == '#'))) j++;
        if (j + 1 >= n) j = n;
        size_t ts = i, te = j;
        if (strip_ws) {
            while (ts < te && is_space(s[ts])) ts++;
        } else if (trim_nl) {
            if (ts < te && s[ts] == '\n') ts++;
            else if (ts + 1 < te && s[ts] == '\r' && s[ts + 1] == '\n') ts += 2;
        }
        char kind = j < n ? s[j + 1] : 0;
        if (j < n && j + 2 < n && s[j + 2] == '-') {
            while (te > ts && is_space(s[te - 1])) te--;
        } else if (j < n && (kind == '%' || kind == '#') && !(j + 2 < n && s[j + 2] == '+')) {
            size_t k = te; /* lstrip_blocks */
            while (k > ts && (s[k - 1] == ' ' || s[k - 1] == '\t')) k--;
            if (k == 0 || s[k - 1] == '\n') te = k;
        }
        if (te > ts && push_tok(ps, TK_TEXT, ts, s + ts, te - ts, 0)) return -1;
        if (j >= n) break;
        if (kind == '#') {
            size_t e = j + 2;
            while (e + 1 < n && !(s[e] == '#' && s[e + 1] == '}')) e++;
            if (e + 1 >= n) {
                int l, c;
                line_col(ps, j, &l, &c);
                return perr(ps, l, c, "unterminated comment");
            }
            strip_ws = e > j + 2 && s[e - 1] == '-';
            trim_nl = 1;
            i = e + 2;
            continue;
        }
        if (push_tok(ps, kind == '{' ? TK_VAR_BEGIN : TK_BLOCK_BEGIN, j, NULL, 0, 0)) return -1;
        i = j + 2;
        if (i < n && (s[i] == '-' || (kind == '%' && s[i] == '+'))) i++;
        if (lex_tag(ps, &i, kind == '{' ? '}' : '%', &strip_ws)) return -1;
        trim_nl = kind == '%';
    }
    return push_tok(ps, TK_EOF, n, NULL, 0, 0);
}

/* ------------------------------------------------------------------ parser */

static token *peek(parser *ps) { return &ps->tok[ps->pos]; }
static token *next(parser *ps) {
    token *t = &ps->tok[ps->pos];
    if (t->kind != TK_EOF) ps->pos++;
    return t;
}
static int is_op(const token *t, const char *op) { return t->kind == TK_OP && strcmp(t->p, op) == 0; }
static int is_name(const token *t, const char *nm) { return t->kind == TK_NAME && strcmp(t->p, nm) == 0; }

static const char *tok_desc(const token *t) {
    switch (t->kind) {
    case TK_TEXT: return "template text";
    case TK_VAR_BEGIN: return "'{{'";
    case TK_VAR_END: return "'}}'";
    case TK_BLOCK_BEGIN: return "'{%'";
    case TK_BLOCK_END: return "'%}'";
    case TK_EOF: return "end of template";
    default: return t->p;
    }
}

static int expect_op(parser *ps, const char *op) {
    token *t = next(ps);
    if (!is_op(t, op)) return perr(ps, t->line, t->col, "expected '%s', found %s", op, tok_desc(t));
    return 0;
}

static int expect_kind(parser *ps, int kind, const char *what) {
    token *t = next(ps);
    if (t->kind != kind) return perr(ps, t->line, t->col, "expected %s, found %s", what, tok_desc(t));
    return 0;
}

static node *mk(parser *ps, int kind, const token *at) {
    node *n = arena_alloc(&ps->t->ar, sizeof *n);
    if (!n) {
        nomem(ps);
        return NULL;
    }
    memset(n, 0, sizeof *n);
    n->kind = kind;
    n->line = at->line;
    n->col = at->col;
    n->lit = v_undef();
    return n;
}

/* A growable array of node pointers (malloc'd while parsing, copied to the
 * arena when done). */
typedef struct nvec {
    node **v;
    const char **kw;
    node **keys;
    size_t n, cap;
} nvec;

static int nvec_push(parser *ps, nvec *v, node *x, const char *kw, node *key) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 8;
        node **nv = realloc(v->v, cap * sizeof *nv);
        if (!nv) return nomem(ps);
        v->v = nv;
        const char **nk = realloc(v->kw, cap * sizeof *nk);
        if (!nk) return nomem(ps);
        v->kw = nk;
        node **nkeys = realloc(v->keys, cap * sizeof *nkeys);
        if (!nkeys) return nomem(ps);
        v->keys = nkeys;
        v->cap = cap;
    }
    v->v[v->n] = x;
    v->kw[v->n] = kw;
    v->keys[v->n] = key;
    v->n++;
    return 0;
}

static void nvec_free(nvec *v) {
    free(v->v);
    free(v->kw);
    free(v->keys);
}

/* Moves v into the arena: items into *items, keywords/keys when asked. */
static int nvec_finish(parser *ps, nvec *v, node ***items, const char ***kw, node ***keys) {
    size_t n = v->n ? v->n : 1;
    *items = arena_alloc(&ps->t->ar, n * sizeof(node *));
    if (!*items) return nomem(ps);
    if (v->n) memcpy(*items, v->v, v->n * sizeof(node *));
    if (kw) {
        *kw = arena_alloc(&ps->t->ar, n * sizeof(char *));
        if (!*kw) return nomem(ps);
        if (v->n) memcpy((void *)*kw, v->kw, v->n * sizeof(char *));
    }
    if (keys) {
        *keys = arena_alloc(&ps->t->ar, n * sizeof(node *));
        if (!*keys) return nomem(ps);
        if (v->n) memcpy(*keys, v->keys, v->n * sizeof(node *));
    }
    return 0;
}

static node *parse_expr(parser *ps);
static node *parse_or(parser *ps);
static node *parse_unary(parser *ps);

static int enter(parser *ps, const token *at) {
    if (++ps->depth > LM_CHAT_TEMPLATE_MAX_DEPTH) {
        if (ps->st == LM_OK) {
            ps->st = lm_error_set(ps->err, LM_ERR_LIMIT, "chat template line %d, column %d: nesting deeper than %d",
                                  at->line, at->col, LM_CHAT_TEMPLATE_MAX_DEPTH);
        }
        return -1;
    }
    return 0;
}

/* (args) after the '(' was consumed: positional and name=value arguments. */
static int parse_args(parser *ps, node *call) {
    nvec v = {0};
    int rc = -1;
    if (is_op(peek(ps), ")")) {
        next(ps);
    } else {
        for (;;) {
            const char *kw = NULL;
            if (peek(ps)->kind == TK_NAME && ps->pos + 1 < ps->ntok && is_op(&ps->tok[ps->pos + 1], "=")) {
                kw = next(ps)->p;
                next(ps);
            }
            node *a = parse_expr(ps);
            if (!a || nvec_push(ps, &v, a, kw, NULL)) goto done;
            token *t = next(ps);
            if (is_op(t, ")")) break;
            if (!is_op(t, ",")) {
                perr(ps, t->line, t->col, "expected ',' or ')' in arguments, found %s", tok_desc(t));
                goto done;
            }
        }
    }
    if (nvec_finish(ps, &v, &call->args, &call->kw, NULL)) goto done;
    call->nargs = v.n;
    rc = 0;
done:
    nvec_free(&v);
    return rc;
}

static node *parse_primary(parser *ps) {
    token *t = next(ps);
    node *n = NULL;
    if (t->kind == TK_NAME) {
        const char *nm = t->p;
        if (!strcmp(nm, "true") || !strcmp(nm, "True") || !strcmp(nm, "false") || !strcmp(nm, "False")) {
            n = mk(ps, N_LIT, t);
            if (n) n->lit = v_bool(nm[0] == 't' || nm[0] == 'T');
        } else if (!strcmp(nm, "none") || !strcmp(nm, "None")) {
            n = mk(ps, N_LIT, t);
            if (n) n->lit.k = V_NONE;
        } else if (is_op(peek(ps), "(")) {
            int id = lookup_named(functions, nm);
            if (id < 0) {
                perr(ps, t->line, t->col, "unknown function '%s'", nm);
                return NULL;
            }
            next(ps);
            n = mk(ps, N_CALL, t);
            if (!n) return NULL;
            n->op = id;
            n->name = nm;
            if (parse_args(ps, n)) return NULL;
        } else {
            n = mk(ps, N_VAR, t);
            if (n) n->name = nm;
        }
    } else if (t->kind == TK_STRING) {
        /* Adjacent literals concatenate, as in Python. */
        size_t len = t->len, start = ps->pos;
        while (peek(ps)->kind == TK_STRING) len += next(ps)->len;
        char *buf = arena_alloc(&ps->t->ar, len + 1);
        if (!buf) {
            nomem(ps);
            return NULL;
        }
        memcpy(buf, t->p, t->len);
        size_t k = t->len;
        for (size_t q = start; q < ps->pos; q++) {
            memcpy(buf + k, ps->tok[q].p, ps->tok[q].len);
            k += ps->tok[q].len;
        }
        buf[k] = '\0';
        n = mk(ps, N_LIT, t);
        if (n) n->lit = v_str(plain(buf, len));
    } else if (t->kind == TK_INT) {
        n = mk(ps, N_LIT, t);
        if (n) n->lit = v_int(t->ival);
    } else if (is_op(t, "(")) {
        if (enter(ps, t)) return NULL;
        n = parse_expr(ps);
        ps->depth--;
        if (!n || expect_op(ps, ")")) return NULL;
    } else if (is_op(t, "[") || is_op(t, "{")) {
        int dict = is_op(t, "{");
        const char *close = dict ? "}" : "]";
        if (enter(ps, t)) return NULL;
        n = mk(ps, dict ? N_DICT : N_LIST, t);
        if (!n) return NULL;
        nvec v = {0};
        int ok = 0;
        while (!is_op(peek(ps), close)) {
            node *key = NULL;
            if (dict) {
                key = parse_expr(ps);
                if (!key || expect_op(ps, ":")) goto list_done;
            }
            node *x = parse_expr(ps);
            if (!x || nvec_push(ps, &v, x, NULL, key)) goto list_done;
            if (is_op(peek(ps), ",")) {
                next(ps);
                continue;
            }
            if (!is_op(peek(ps), close)) {
                token *b = peek(ps);
                perr(ps, b->line, b->col, "expected ',' or '%s', found %s", close, tok_desc(b));
                goto list_done;
            }
        }
        next(ps);
        if (nvec_finish(ps, &v, &n->args, NULL, &n->keys)) goto list_done;
        n->nargs = v.n;
        ok = 1;
    list_done:
        nvec_free(&v);
        ps->depth--;
        if (!ok) return NULL;
    } else {
        perr(ps, t->line, t->col, "expected an expression, found %s", tok_desc(t));
        return NULL;
    }
    if (!n) return NULL;
    /* Postfix: .attr, .method(...), [index], [slice]. */
    for (;;) {
        token *p = peek(ps);
        if (is_op(p, ".")) {
            next(ps);
            token *nm = next(ps);
            if (nm->kind != TK_NAME && nm->kind != TK_INT) {
                perr(ps, nm->line, nm->col, "expected an attribute name after '.', found %s", tok_desc(nm));
                return NULL;
            }
            if (is_op(peek(ps), "(")) {
                int id = lookup_named(methods, nm->p);
                if (id < 0) {
                    perr(ps, nm->line, nm->col, "unknown method '%s'", nm->p);
                    return NULL;
                }
                next(ps);
                node *m = mk(ps, N_METHOD, nm);
                if (!m) return NULL;
                m->op = id;
                m->name = nm->p;
                m->a = n;
                if (parse_args(ps, m)) return NULL;
                n = m;
            } else {
                node *m = mk(ps, N_ATTR, nm);
                if (!m) return NULL;
                m->name = nm->p;
                m->a = n;
                n = m;
            }
        } else if (is_op(p, "[")) {
            next(ps);
            if (enter(ps, p)) return NULL;
            node *parts[3] = {NULL, NULL, NULL};
            int nparts = 0, colon = 0;
            for (;;) {
                token *q = peek(ps);
                if (is_op(q, "]")) {
                    next(ps);
                    break;
                }
                if (is_op(q, ":")) {
                    next(ps);
                    if (++nparts > 2) {
                        perr(ps, q->line, q->col, "too many ':' in slice");
                        return NULL;
                    }
                    colon = 1;
                    continue;
                }
                if (parts[nparts]) {
                    perr(ps, q->line, q->col, "expected ':' or ']', found %s", tok_desc(q));
                    return NULL;
                }
                parts[nparts] = parse_expr(ps);
                if (!parts[nparts]) return NULL;
            }
            ps->depth--;
            node *m = mk(ps, colon ? N_SLICE : N_INDEX, p);
            if (!m) return NULL;
            m->a = n;
            if (!colon && !parts[0]) {
                perr(ps, p->line, p->col, "empty index");
                return NULL;
            }
            if (colon) {
                /* args[0..2] = start, stop, step (NULL when left out) */
                m->args = arena_alloc(&ps->t->ar, 3 * sizeof(node *));
                if (!m->args) {
                    nomem(ps);
                    return NULL;
                }
                memcpy(m->args, parts, sizeof parts);
                m->nargs = 3;
            } else {
                m->b = parts[0];
            }
            n = m;
        } else if (is_op(p, "(")) {
            perr(ps, p->line, p->col, "only named functions and methods can be called");
            return NULL;
        } else {
            break;
        }
    }
    return n;
}

/* primary postfix, then | filters and `is` tests. */
static node *parse_filtered(parser *ps) {
    node *n = parse_primary(ps);
    while (n) {
        token *p = peek(ps);
        if (is_op(p, "|")) {
            next(ps);
            token *nm = next(ps);
            if (nm->kind != TK_NAME) {
                perr(ps, nm->line, nm->col, "expected a filter name after '|', found %s", tok_desc(nm));
                return NULL;
            }
            int id = lookup_named(filters, nm->p);
            if (id < 0) {
                perr(ps, nm->line, nm->col, "unknown filter '%s'", nm->p);
                return NULL;
            }
            node *f = mk(ps, N_FILTER, nm);
            if (!f) return NULL;
            f->op = id;
            f->name = nm->p;
            f->a = n;
            if (is_op(peek(ps), "(")) {
                next(ps);
                if (parse_args(ps, f)) return NULL;
            }
            n = f;
        } else if (is_name(p, "is")) {
            next(ps);
            int neg = 0;
            if (is_name(peek(ps), "not")) {
                next(ps);
                neg = 1;
            }
            token *nm = next(ps);
            if (nm->kind != TK_NAME) {
                perr(ps, nm->line, nm->col, "expected a test name after 'is', found %s", tok_desc(nm));
                return NULL;
            }
            int id = lookup_named(tests, nm->p);
            if (id < 0) {
                perr(ps, nm->line, nm->col, "unknown test '%s'", nm->p);
                return NULL;
            }
            node *f = mk(ps, N_TEST, nm);
            if (!f) return NULL;
            f->op = id;
            f->name = nm->p;
            f->negate = neg;
            f->a = n;
            n = f;
        } else {
            break;
        }
    }
    return n;
}

static node *parse_unary(parser *ps) {
    token *t = peek(ps);
    if (is_op(t, "-") || is_op(t, "+")) {
        next(ps);
        if (enter(ps, t)) return NULL;
        node *a = parse_unary(ps);
        ps->depth--;
        if (!a) return NULL;
        if (is_op(t, "+")) return a;
        node *n = mk(ps, N_NEG, t);
        if (n) n->a = a;
        return n;
    }
    return parse_filtered(ps);
}

static node *binary(parser *ps, const token *at, int op, node *a, node *b) {
    if (!a || !b) return NULL;
    node *n = mk(ps, N_BIN, at);
    if (!n) return NULL;
    n->op = op;
    n->a = a;
    n->b = b;
    return n;
}

static node *parse_math2(parser *ps) {
    node *n = parse_unary(ps);
    while (n) {
        token *t = peek(ps);
        if (is_op(t, "*") || is_op(t, "%")) {
            next(ps);
            n = binary(ps, t, is_op(t, "*") ? B_MUL : B_MOD, n, parse_unary(ps));
        } else if (is_op(t, "/") || is_op(t, "//") || is_op(t, "**")) {
            perr(ps, t->line, t->col, "operator '%s' is not supported", t->p);
            return NULL;
        } else {
            break;
        }
    }
    return n;
}

static node *parse_concat(parser *ps) {
    node *n = parse_math2(ps);
    while (n && is_op(peek(ps), "~")) {
        token *t = next(ps);
        n = binary(ps, t, B_CAT, n, parse_math2(ps));
    }
    return n;
}

static node *parse_math1(parser *ps) {
    node *n = parse_concat(ps);
    while (n && (is_op(peek(ps), "+") || is_op(peek(ps), "-"))) {
        token *t = next(ps);
        n = binary(ps, t, is_op(t, "+") ? B_ADD : B_SUB, n, parse_concat(ps));
    }
    return n;
}

static node *parse_compare(parser *ps) {
    node *n = parse_math1(ps);
    while (n) {
        token *t = peek(ps);
        int op = -1;
        if (is_op(t, "==")) op = B_EQ;
        else if (is_op(t, "!=")) op = B_NE;
        else if (is_op(t, "<")) op = B_LT;
        else if (is_op(t, ">")) op = B_GT;
        else if (is_op(t, "<=")) op = B_LE;
        else if (is_op(t, ">=")) op = B_GE;
        else if (is_name(t, "in")) op = B_IN;
        else if (is_name(t, "not") && ps->pos + 1 < ps->ntok && is_name(&ps->tok[ps->pos + 1], "in")) {
            next(ps);
            op = B_NOTIN;
        }
        if (op < 0) break;
        next(ps);
        n = binary(ps, t, op, n, parse_math1(ps));
    }
    return n;
}

static node *parse_not(parser *ps) {
    token *t = peek(ps);
    if (is_name(t, "not")) {
        next(ps);
        if (enter(ps, t)) return NULL;
        node *a = parse_not(ps);
        ps->depth--;
        if (!a) return NULL;
        node *n = mk(ps, N_NOT, t);
        if (n) n->a = a;
        return n;
    }
    return parse_compare(ps);
}

static node *parse_and(parser *ps) {
    node *n = parse_not(ps);
    while (n && is_name(peek(ps), "and")) {
        token *t = next(ps);
        n = binary(ps, t, B_AND, n, parse_not(ps));
    }
    return n;
}

static node *parse_or(parser *ps) {
    node *n = parse_and(ps);
    while (n && is_name(peek(ps), "or")) {
        token *t = next(ps);
        n = binary(ps, t, B_OR, n, parse_and(ps));
    }
    return n;
}

static node *parse_expr(parser *ps) {
    token *at = peek(ps);
    if (enter(ps, at)) return NULL;
    node *n = parse_or(ps);
    while (n && is_name(peek(ps), "if")) {
        token *t = next(ps);
        node *c = mk(ps, N_COND, t);
        if (!c) return NULL;
        c->a = n;
        c->b = parse_or(ps);
        if (!c->b) return NULL;
        if (is_name(peek(ps), "else")) {
            next(ps);
            c->c = parse_expr(ps);
            if (!c->c) return NULL;
        }
        n = c;
    }
    ps->depth--;
    return n;
}

static int parse_body(parser *ps, node ***body, size_t *nbody, const char *const *ends, const token *opener,
                      const char **which);

static int finish_tag(parser *ps) { return expect_kind(ps, TK_BLOCK_END, "'%}'"); }

static const char *const if_ends[] = {"elif", "else", "endif", NULL};
static const char *const endif_only[] = {"endif", NULL};
static const char *const for_ends[] = {"else", "endfor", NULL};
static const char *const endfor_only[] = {"endfor", NULL};

/* After `if` or `elif`: condition, body, and the rest up to endif. */
static node *parse_if(parser *ps, const token *kw) {
    if (enter(ps, kw)) return NULL;
    node *n = mk(ps, S_IF, kw);
    if (!n) return NULL;
    n->a = parse_expr(ps);
    if (!n->a || finish_tag(ps)) return NULL;
    const char *which = NULL;
    if (parse_body(ps, &n->body, &n->nbody, if_ends, kw, &which)) return NULL;
    const token *at = &ps->tok[ps->pos - 1];
    if (!strcmp(which, "elif")) {
        node *e = parse_if(ps, at);
        if (!e) return NULL;
        n->els = arena_alloc(&ps->t->ar, sizeof(node *));
        if (!n->els) {
            nomem(ps);
            return NULL;
        }
        n->els[0] = e;
        n->nels = 1;
    } else {
        if (finish_tag(ps)) return NULL;
        if (!strcmp(which, "else")) {
            if (parse_body(ps, &n->els, &n->nels, endif_only, kw, &which) || finish_tag(ps)) return NULL;
        }
    }
    ps->depth--;
    return n;
}

static node *parse_for(parser *ps, const token *kw) {
    if (enter(ps, kw)) return NULL;
    node *n = mk(ps, S_FOR, kw);
    if (!n) return NULL;
    token *v = next(ps);
    if (v->kind != TK_NAME) {
        perr(ps, v->line, v->col, "expected a loop variable, found %s", tok_desc(v));
        return NULL;
    }
    n->name = v->p;
    if (is_op(peek(ps), ",")) {
        /* for a, b in ...: each item is unpacked (a list of that many values). */
        const char *names[16];
        size_t cnt = 0;
        names[cnt++] = v->p;
        while (is_op(peek(ps), ",")) {
            token *c = next(ps);
            token *w = next(ps);
            if (w->kind != TK_NAME) {
                perr(ps, w->line, w->col, "expected a loop variable, found %s", tok_desc(w));
                return NULL;
            }
            if (cnt == sizeof names / sizeof names[0]) {
                perr(ps, c->line, c->col, "more than %zu loop variables", sizeof names / sizeof names[0]);
                return NULL;
            }
            names[cnt++] = w->p;
        }
        n->targets = arena_alloc(&ps->t->ar, cnt * sizeof *n->targets);
        if (!n->targets) {
            nomem(ps);
            return NULL;
        }
        memcpy((void *)n->targets, names, cnt * sizeof *names);
        n->ntargets = cnt;
    }
    token *in = next(ps);
    if (!is_name(in, "in")) {
        perr(ps, in->line, in->col, "expected 'in', found %s", tok_desc(in));
        return NULL;
    }
    n->a = parse_or(ps);
    if (!n->a) return NULL;
    if (is_name(peek(ps), "if")) {
        /* for x in items if cond: the loop runs over the items that pass. */
        next(ps);
        n->b = parse_expr(ps);
        if (!n->b) return NULL;
    }
    token *x = peek(ps);
    if (is_name(x, "recursive")) {
        perr(ps, x->line, x->col, "'for ... %s' is not supported", x->p);
        return NULL;
    }
    if (finish_tag(ps)) return NULL;
    const char *which = NULL;
    if (parse_body(ps, &n->body, &n->nbody, for_ends, kw, &which) || finish_tag(ps)) return NULL;
    if (!strcmp(which, "else")) {
        if (parse_body(ps, &n->els, &n->nels, endfor_only, kw, &which) || finish_tag(ps)) return NULL;
    }
    ps->depth--;
    return n;
}

static node *parse_set(parser *ps, const token *kw) {
    node *n = mk(ps, S_SET, kw);
    if (!n) return NULL;
    token *v = next(ps);
    if (v->kind != TK_NAME) {
        perr(ps, v->line, v->col, "expected a variable name after 'set', found %s", tok_desc(v));
        return NULL;
    }
    n->name = v->p;
    if (is_op(peek(ps), ".")) {
        next(ps);
        token *a = next(ps);
        if (a->kind != TK_NAME) {
            perr(ps, a->line, a->col, "expected an attribute name, found %s", tok_desc(a));
            return NULL;
        }
        n->attr = a->p;
    }
    token *eq = next(ps);
    if (eq->kind == TK_BLOCK_END) {
        perr(ps, eq->line, eq->col, "block assignment ('{%% set %s %%}...{%% endset %%}') is not supported", n->name);
        return NULL;
    }
    if (!is_op(eq, "=")) {
        perr(ps, eq->line, eq->col, "expected '=' in set, found %s", tok_desc(eq));
        return NULL;
    }
    n->a = parse_expr(ps);
    if (!n->a || finish_tag(ps)) return NULL;
    return n;
}

/* Statements until one of ends (consumed: the block opener and the end
 * keyword; *which names it) or, when ends is NULL, the end of the template. */
static int parse_body(parser *ps, node ***body, size_t *nbody, const char *const *ends, const token *opener,
                      const char **which) {
    nvec v = {0};
    int rc = -1;
    for (;;) {
        token *t = next(ps);
        node *s = NULL;
        if (t->kind == TK_EOF) {
            if (ends) {
                perr(ps, opener->line, opener->col, "'%s' is never closed (expected '%s')", opener->p, ends[0]);
                /* name the innermost end that would close it */
                goto done;
            }
            break;
        } else if (t->kind == TK_TEXT) {
            s = mk(ps, S_TEXT, t);
            if (s) s->lit = v_str(plain(t->p, t->len));
        } else if (t->kind == TK_VAR_BEGIN) {
            s = mk(ps, S_OUT, t);
            if (!s) goto done;
            s->a = parse_expr(ps);
            if (!s->a || expect_kind(ps, TK_VAR_END, "'}}'")) goto done;
        } else if (t->kind == TK_BLOCK_BEGIN) {
            token *kw = next(ps);
            if (kw->kind != TK_NAME) {
                perr(ps, kw->line, kw->col, "expected a tag name, found %s", tok_desc(kw));
                goto done;
            }
            int is_end = 0;
            for (int q = 0; ends && ends[q]; q++)
                if (!strcmp(ends[q], kw->p)) {
                    *which = ends[q];
                    is_end = 1;
                }
            if (is_end) break;
            if (!strcmp(kw->p, "if")) s = parse_if(ps, kw);
            else if (!strcmp(kw->p, "for")) s = parse_for(ps, kw);
            else if (!strcmp(kw->p, "set")) s = parse_set(ps, kw);
            else if (!strcmp(kw->p, "elif") || !strcmp(kw->p, "else") || !strcmp(kw->p, "endif") ||
                     !strcmp(kw->p, "endfor")) {
                perr(ps, kw->line, kw->col, "unexpected '%s'", kw->p);
                goto done;
            } else {
                perr(ps, kw->line, kw->col, "unknown tag '%s'", kw->p);
                goto done;
            }
        } else {
            perr(ps, t->line, t->col, "unexpected %s", tok_desc(t));
            goto done;
        }
        if (!s || nvec_push(ps, &v, s, NULL, NULL)) goto done;
    }
    if (nvec_finish(ps, &v, body, NULL, NULL)) goto done;
    *nbody = v.n;
    rc = 0;
done:
    nvec_free(&v);
    return rc;
}

lm_status lm_chat_template_compile(const char *source, lm_chat_template **out, lm_error *err) {
    if (!source || !out) return lm_error_set(err, LM_ERR_ARG, "lm_chat_template_compile: NULL argument");
    *out = NULL;
    size_t n = strlen(source);
    if (n > LM_CHAT_TEMPLATE_MAX_SOURCE) {
        return lm_error_set(err, LM_ERR_LIMIT, "chat template: source of %zu bytes is over the %zu-byte limit", n,
                            LM_CHAT_TEMPLATE_MAX_SOURCE);
    }
    lm_chat_template *t = calloc(1, sizeof *t);
    if (!t) return lm_error_set(err, LM_ERR_NOMEM, "chat template: out of memory");
    t->ar.limit = (size_t)256 << 20;
    parser ps;
    memset(&ps, 0, sizeof ps);
    ps.t = t;
    ps.err = err;
    ps.st = LM_OK;
    ps.lc_line = ps.lc_col = 1;
    ps.src = pdup(&ps, source, n);
    ps.n = n;
    if (!ps.src) nomem(&ps);
    if (ps.st == LM_OK && lex(&ps) == 0) parse_body(&ps, &t->body, &t->nbody, NULL, NULL, NULL);
    free(ps.tok);
    if (ps.st != LM_OK) {
        lm_chat_template_free(t);
        return ps.st;
    }
    *out = t;
    return LM_OK;
}

void lm_chat_template_free(lm_chat_template *t) {
    if (!t) return;
    arena_free(&t->ar);
    free(t);
}

/* ------------------------------------------------------------------ strings with spans */

typedef struct sbuf {
    char *p;
    size_t len, cap, limit;
    span *sp;
    size_t nsp, capsp;
    int over; /* 1: past limit, 2: out of memory */
} sbuf;

static void sb_free(sbuf *b) {
    free(b->p);
    free(b->sp);
    memset(b, 0, sizeof *b);
}

static int sb_put(sbuf *b, const char *p, size_t len, int32_t msg) {
    if (b->over) return -1;
    if (len == 0) return 0;
    if (len > b->limit || b->len > b->limit - len) {
        b->over = 1;
        return -1;
    }
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + len + 1) cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->over = 2;
            return -1;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, len);
    if (msg >= 0) {
        if (b->nsp && b->sp[b->nsp - 1].msg == msg && b->sp[b->nsp - 1].off + b->sp[b->nsp - 1].len == b->len) {
            b->sp[b->nsp - 1].len += len;
        } else {
            if (b->nsp == b->capsp) {
                size_t cap = b->capsp ? b->capsp * 2 : 8;
                span *ns = realloc(b->sp, cap * sizeof *ns);
                if (!ns) {
                    b->over = 2;
                    return -1;
                }
                b->sp = ns;
                b->capsp = cap;
            }
            span s = {b->len, len, msg};
            b->sp[b->nsp++] = s;
        }
    }
    b->len += len;
    b->p[b->len] = '\0';
    return 0;
}

static int sb_puts(sbuf *b, const char *s) { return sb_put(b, s, strlen(s), -1); }

static int sb_put_lstr(sbuf *b, lstr s) {
    size_t at = 0;
    for (size_t i = 0; i < s.nsp; i++) {
        if (sb_put(b, s.p + at, s.sp[i].off - at, -1)) return -1;
        if (sb_put(b, s.p + s.sp[i].off, s.sp[i].len, s.sp[i].msg)) return -1;
        at = s.sp[i].off + s.sp[i].len;
    }
    return sb_put(b, s.p + at, s.len - at, -1);
}

/* The message whose content byte i of s is, or -1. Linear; used per span. */
static int32_t lstr_msg_at(lstr s, size_t i, size_t *run_end) {
    for (size_t k = 0; k < s.nsp; k++) {
        if (i < s.sp[k].off) {
            *run_end = s.sp[k].off;
            return -1;
        }
        if (i < s.sp[k].off + s.sp[k].len) {
            *run_end = s.sp[k].off + s.sp[k].len;
            return s.sp[k].msg;
        }
    }
    *run_end = s.len;
    return -1;
}

/* ------------------------------------------------------------------ render state */

typedef struct frame {
    struct frame *up;
    const char **names;
    value *vals;
    size_t n, cap;
} frame;

typedef struct rt {
    arena ar;
    lm_error *err;
    lm_status st;
    frame *top;
    int64_t iters;
    size_t max_out;
    sbuf out;
} rt;

#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static int rfail(rt *r, const node *n, lm_status code, const char *fmt, ...) {
    if (r->st != LM_OK) return -1;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n) r->st = lm_error_set(r->err, code, "chat template line %d, column %d: %s", n->line, n->col, msg);
    else r->st = lm_error_set(r->err, code, "chat template: %s", msg);
    return -1;
}

static int rnomem(rt *r) {
    if (r->st == LM_OK) {
        if (r->ar.total >= r->ar.limit / 2)
            r->st = lm_error_set(r->err, LM_ERR_LIMIT, "chat template: render memory over the %zu-byte limit",
                                 r->ar.limit);
        else r->st = lm_error_set(r->err, LM_ERR_NOMEM, "chat template: out of memory");
    }
    return -1;
}

static void *ralloc(rt *r, size_t n) {
    void *p = arena_alloc(&r->ar, n);
    if (!p) rnomem(r);
    return p;
}

static sbuf sb_new(const rt *r) {
    sbuf b;
    memset(&b, 0, sizeof b);
    b.limit = r->max_out;
    return b;
}

static int sb_fail(rt *r, const node *n, sbuf *b) {
    int over = b->over;
    sb_free(b);
    if (over == 2) return rnomem(r);
    return rfail(r, n, LM_ERR_LIMIT, "text past the %zu-byte output limit", r->max_out);
}

/* Moves the builder's contents into the arena as a string. */
static int sb_finish(rt *r, const node *n, sbuf *b, lstr *out) {
    if (b->over) return sb_fail(r, n, b);
    char *p = ralloc(r, b->len + 1);
    span *sp = b->nsp ? ralloc(r, b->nsp * sizeof *sp) : NULL;
    if (!p || (b->nsp && !sp)) {
        sb_free(b);
        return -1;
    }
    if (b->len) memcpy(p, b->p, b->len);
    p[b->len] = '\0';
    if (b->nsp) memcpy(sp, b->sp, b->nsp * sizeof *sp);
    out->p = p;
    out->len = b->len;
    out->sp = sp;
    out->nsp = b->nsp;
    sb_free(b);
    return 0;
}

/* s[off, off+len) keeping its spans. */
static int lstr_sub(rt *r, lstr s, size_t off, size_t len, lstr *out) {
    out->p = s.p + off;
    out->len = len;
    out->sp = NULL;
    out->nsp = 0;
    size_t cnt = 0;
    for (size_t i = 0; i < s.nsp; i++)
        if (s.sp[i].off < off + len && s.sp[i].off + s.sp[i].len > off) cnt++;
    if (!cnt) return 0;
    span *sp = ralloc(r, cnt * sizeof *sp);
    if (!sp) return -1;
    size_t k = 0;
    for (size_t i = 0; i < s.nsp; i++) {
        size_t a = s.sp[i].off, b = s.sp[i].off + s.sp[i].len;
        if (a < off + len && b > off) {
            if (a < off) a = off;
            if (b > off + len) b = off + len;
            span x = {a - off, b - a, s.sp[i].msg};
            sp[k++] = x;
        }
    }
    out->sp = sp;
    out->nsp = k;
    return 0;
}

static int lstr_eq(lstr a, lstr b) { return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0); }

static int lstr_eqz(lstr a, const char *z) { return lstr_eq(a, plain(z, strlen(z))); }

static int lstr_cmp(lstr a, lstr b) {
    size_t m = a.len < b.len ? a.len : b.len;
    int c = m ? memcmp(a.p, b.p, m) : 0;
    if (c) return c;
    return a.len < b.len ? -1 : a.len > b.len;
}

static int lstr_find(lstr hay, lstr needle, size_t from, size_t *at) {
    if (needle.len > hay.len) return 0;
    for (size_t i = from; i + needle.len <= hay.len; i++)
        if (needle.len == 0 || memcmp(hay.p + i, needle.p, needle.len) == 0) {
            *at = i;
            return 1;
        }
    return 0;
}

/* ------------------------------------------------------------------ conversions */

static int truthy(value v) {
    switch (v.k) {
    case V_BOOL: return v.u.b;
    case V_INT: return v.u.i != 0;
    case V_STR: return v.u.s.len != 0;
    case V_LIST: return v.u.l->n != 0;
    case V_DICT: return v.u.d->n != 0 || v.u.d->ns;
    case V_LOOP: return 1;
    default: return 0;
    }
}

enum { ESC_JSON, ESC_REPR };

/* Writes s quoted and escaped (JSON or Python repr), keeping content marks
 * on the escaped characters. */
static int put_quoted(sbuf *b, lstr s, int mode) {
    char q = mode == ESC_JSON ? '"' : '\'';
    if (sb_put(b, &q, 1, -1)) return -1;
    size_t i = 0;
    while (i < s.len) {
        size_t end;
        int32_t msg = lstr_msg_at(s, i, &end);
        for (; i < end; i++) {
            unsigned char c = (unsigned char)s.p[i];
            char esc[8];
            const char *e = NULL;
            size_t elen = 2;
            if (c == (unsigned char)q || c == '\\') {
                esc[0] = '\\';
                esc[1] = (char)c;
                e = esc;
            } else if (c == '\n') e = "\\n";
            else if (c == '\r') e = "\\r";
            else if (c == '\t') e = "\\t";
            else if (c == '\b' && mode == ESC_JSON) e = "\\b";
            else if (c == '\f' && mode == ESC_JSON) e = "\\f";
            else if (c < 0x20 || c == 0x7f) {
                if (mode == ESC_JSON) snprintf(esc, sizeof esc, "\\u%04x", c);
                else snprintf(esc, sizeof esc, "\\x%02x", c);
                e = esc;
                elen = strlen(esc);
            }
            if (e ? sb_put(b, e, elen, msg) : sb_put(b, s.p + i, 1, msg)) return -1;
        }
    }
    return sb_put(b, &q, 1, -1);
}

static int put_int(sbuf *b, int64_t i) {
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)i);
    return sb_puts(b, buf);
}

static int put_repr(sbuf *b, value v, int depth);

/* str(v) into b: strings as they are, the rest as Python prints them. */
static int put_str(sbuf *b, value v, int depth) {
    switch (v.k) {
    case V_UNDEF: return 0;
    case V_NONE: return sb_puts(b, "None");
    case V_BOOL: return sb_puts(b, v.u.b ? "True" : "False");
    case V_INT: return put_int(b, v.u.i);
    case V_STR: return sb_put_lstr(b, v.u.s);
    default: return put_repr(b, v, depth);
    }
}

static int put_repr(sbuf *b, value v, int depth) {
    if (depth > LM_CHAT_TEMPLATE_MAX_DEPTH) {
        b->over = 1;
        return -1;
    }
    switch (v.k) {
    case V_STR: return put_quoted(b, v.u.s, ESC_REPR);
    case V_LIST:
        if (sb_puts(b, "[")) return -1;
        for (size_t i = 0; i < v.u.l->n; i++)
            if ((i && sb_puts(b, ", ")) || put_repr(b, v.u.l->v[i], depth + 1)) return -1;
        return sb_puts(b, "]");
    case V_DICT:
        if (v.u.d->ns) return sb_puts(b, "<Namespace>");
        if (sb_puts(b, "{")) return -1;
        for (size_t i = 0; i < v.u.d->n; i++)
            if ((i && sb_puts(b, ", ")) || put_quoted(b, v.u.d->k[i], ESC_REPR) || sb_puts(b, ": ") ||
                put_repr(b, v.u.d->v[i], depth + 1))
                return -1;
        return sb_puts(b, "}");
    case V_LOOP: return sb_puts(b, "<LoopContext>");
    default: return put_str(b, v, depth);
    }
}

static int put_newline_indent(sbuf *b, int64_t indent, int level) {
    if (sb_puts(b, "\n")) return -1;
    for (int64_t i = 0; i < indent * level; i++)
        if (sb_puts(b, " ")) return -1;
    return 0;
}

/* json.dumps(v, ensure_ascii=False[, indent]); indent < 0 means none.
 * Returns -1 on a builder failure, -2 on a value JSON cannot hold. */
static int put_json(sbuf *b, value v, int64_t indent, int level) {
    if (level > LM_CHAT_TEMPLATE_MAX_DEPTH) return -2;
    switch (v.k) {
    case V_NONE: return sb_puts(b, "null");
    case V_BOOL: return sb_puts(b, v.u.b ? "true" : "false");
    case V_INT: return put_int(b, v.u.i);
    case V_STR: return put_quoted(b, v.u.s, ESC_JSON);
    case V_LIST:
    case V_DICT: {
        int isd = v.k == V_DICT;
        size_t n = isd ? v.u.d->n : v.u.l->n;
        if (isd && v.u.d->ns) return -2;
        if (sb_puts(b, isd ? "{" : "[")) return -1;
        for (size_t i = 0; i < n; i++) {
            if (i && sb_puts(b, indent >= 0 ? "," : ", ")) return -1;
            if (indent >= 0 && put_newline_indent(b, indent, level + 1)) return -1;
            if (isd && (put_quoted(b, v.u.d->k[i], ESC_JSON) || sb_puts(b, ": "))) return -1;
            int rc = put_json(b, isd ? v.u.d->v[i] : v.u.l->v[i], indent, level + 1);
            if (rc) return rc;
        }
        if (n && indent >= 0 && put_newline_indent(b, indent, level)) return -1;
        return sb_puts(b, isd ? "}" : "]");
    }
    default: return -2;
    }
}

/* str(v) as a string value. */
static int to_lstr(rt *r, const node *n, value v, lstr *out) {
    if (v.k == V_STR) {
        *out = v.u.s;
        return 0;
    }
    sbuf b = sb_new(r);
    if (put_str(&b, v, 0)) return sb_fail(r, n, &b);
    return sb_finish(r, n, &b, out);
}

/* ------------------------------------------------------------------ dicts, frames */

static dict *dict_new(rt *r, size_t cap) {
    dict *d = ralloc(r, sizeof *d);
    if (!d) return NULL;
    memset(d, 0, sizeof *d);
    if (cap) {
        d->k = ralloc(r, cap * sizeof *d->k);
        d->v = ralloc(r, cap * sizeof *d->v);
        if (!d->k || !d->v) return NULL;
        d->cap = cap;
    }
    return d;
}

static value *dict_find(const dict *d, lstr key) {
    for (size_t i = 0; i < d->n; i++)
        if (lstr_eq(d->k[i], key)) return &d->v[i];
    return NULL;
}

static int dict_set(rt *r, dict *d, lstr key, value v) {
    value *slot = dict_find(d, key);
    if (slot) {
        *slot = v;
        return 0;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 4;
        lstr *nk = ralloc(r, cap * sizeof *nk);
        value *nv = ralloc(r, cap * sizeof *nv);
        if (!nk || !nv) return -1;
        if (d->n) {
            memcpy(nk, d->k, d->n * sizeof *nk);
            memcpy(nv, d->v, d->n * sizeof *nv);
        }
        d->k = nk;
        d->v = nv;
        d->cap = cap;
    }
    d->k[d->n] = key;
    d->v[d->n] = v;
    d->n++;
    return 0;
}

static frame *frame_push(rt *r) {
    frame *f = ralloc(r, sizeof *f);
    if (!f) return NULL;
    memset(f, 0, sizeof *f);
    f->up = r->top;
    r->top = f;
    return f;
}

static int frame_set(rt *r, frame *f, const char *name, value v) {
    for (size_t i = 0; i < f->n; i++)
        if (!strcmp(f->names[i], name)) {
            f->vals[i] = v;
            return 0;
        }
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 8;
        const char **nn = ralloc(r, cap * sizeof *nn);
        value *nv = ralloc(r, cap * sizeof *nv);
        if (!nn || !nv) return -1;
        if (f->n) {
            memcpy(nn, f->names, f->n * sizeof *nn);
            memcpy(nv, f->vals, f->n * sizeof *nv);
        }
        f->names = nn;
        f->vals = nv;
        f->cap = cap;
    }
    f->names[f->n] = name;
    f->vals[f->n] = v;
    f->n++;
    return 0;
}

static value lookup(const rt *r, const char *name) {
    for (const frame *f = r->top; f; f = f->up)
        for (size_t i = 0; i < f->n; i++)
            if (!strcmp(f->names[i], name)) return f->vals[i];
    return v_undef();
}

static value get_attr(value obj, lstr name) {
    if (obj.k == V_DICT) {
        value *v = dict_find(obj.u.d, name);
        return v ? *v : v_undef();
    }
    if (obj.k == V_LOOP) {
        const loopst *lp = obj.u.lp;
        if (lstr_eqz(name, "index")) return v_int(lp->i + 1);
        if (lstr_eqz(name, "index0")) return v_int(lp->i);
        if (lstr_eqz(name, "first")) return v_bool(lp->i == 0);
        if (lstr_eqz(name, "last")) return v_bool(lp->i == lp->n - 1);
        if (lstr_eqz(name, "length")) return v_int(lp->n);
        if (lstr_eqz(name, "revindex")) return v_int(lp->n - lp->i);
        if (lstr_eqz(name, "revindex0")) return v_int(lp->n - lp->i - 1);
        if (lstr_eqz(name, "previtem")) return lp->i > 0 ? lp->items->v[lp->i - 1] : v_undef();
        if (lstr_eqz(name, "nextitem")) return lp->i + 1 < lp->n ? lp->items->v[lp->i + 1] : v_undef();
    }
    return v_undef();
}

/* ------------------------------------------------------------------ evaluation */

static int eval(rt *r, const node *n, value *out);

static int values_equal(value a, value b, int depth) {
    if (depth > LM_CHAT_TEMPLATE_MAX_DEPTH) return 0;
    if ((a.k == V_INT || a.k == V_BOOL) && (b.k == V_INT || b.k == V_BOOL)) {
        int64_t x = a.k == V_INT ? a.u.i : a.u.b, y = b.k == V_INT ? b.u.i : b.u.b;
        return x == y;
    }
    if (a.k != b.k) return 0;
    switch (a.k) {
    case V_UNDEF:
    case V_NONE: return 1;
    case V_STR: return lstr_eq(a.u.s, b.u.s);
    case V_LIST:
        if (a.u.l->n != b.u.l->n) return 0;
        for (size_t i = 0; i < a.u.l->n; i++)
            if (!values_equal(a.u.l->v[i], b.u.l->v[i], depth + 1)) return 0;
        return 1;
    case V_DICT:
        if (a.u.d == b.u.d) return 1;
        if (a.u.d->n != b.u.d->n) return 0;
        for (size_t i = 0; i < a.u.d->n; i++) {
            value *o = dict_find(b.u.d, a.u.d->k[i]);
            if (!o || !values_equal(a.u.d->v[i], *o, depth + 1)) return 0;
        }
        return 1;
    default: return a.u.lp == b.u.lp;
    }
}

static list *list_new(rt *r, size_t n) {
    list *l = ralloc(r, sizeof *l);
    if (!l) return NULL;
    l->n = n;
    l->v = ralloc(r, (n ? n : 1) * sizeof *l->v);
    return l->v ? l : NULL;
}

static value v_list(list *l) {
    value v = v_undef();
    v.k = V_LIST;
    v.u.l = l;
    return v;
}

static int as_int(value v, int64_t *out) {
    if (v.k == V_INT) *out = v.u.i;
    else if (v.k == V_BOOL) *out = v.u.b;
    else return 0;
    return 1;
}

static int eval_bin(rt *r, const node *n, value *out) {
    value a, b;
    if (eval(r, n->a, &a)) return -1;
    if (n->op == B_AND) {
        if (!truthy(a)) return *out = a, 0;
        return eval(r, n->b, out);
    }
    if (n->op == B_OR) {
        if (truthy(a)) return *out = a, 0;
        return eval(r, n->b, out);
    }
    if (eval(r, n->b, &b)) return -1;
    int64_t x = 0, y = 0, z = 0;
    int ints = as_int(a, &x) && as_int(b, &y);
    switch (n->op) {
    case B_ADD:
        if (ints) {
            if (__builtin_add_overflow(x, y, &z)) return rfail(r, n, LM_ERR_LIMIT, "integer overflow");
            return *out = v_int(z), 0;
        }
        if (a.k == V_STR && b.k == V_STR) {
            sbuf s = sb_new(r);
            if (sb_put_lstr(&s, a.u.s) || sb_put_lstr(&s, b.u.s)) return sb_fail(r, n, &s);
            out->k = V_STR;
            return sb_finish(r, n, &s, &out->u.s);
        }
        if (a.k == V_LIST && b.k == V_LIST) {
            list *l = list_new(r, a.u.l->n + b.u.l->n);
            if (!l) return -1;
            if (a.u.l->n) memcpy(l->v, a.u.l->v, a.u.l->n * sizeof(value));
            if (b.u.l->n) memcpy(l->v + a.u.l->n, b.u.l->v, b.u.l->n * sizeof(value));
            return *out = v_list(l), 0;
        }
        return rfail(r, n, LM_ERR_ARG, "cannot add %s and %s", kind_name(a.k), kind_name(b.k));
    case B_SUB:
    case B_MUL:
    case B_MOD:
        if (n->op == B_MUL && ((a.k == V_STR && as_int(b, &y)) || (b.k == V_STR && as_int(a, &y)))) {
            lstr s = a.k == V_STR ? a.u.s : b.u.s;
            sbuf sb = sb_new(r);
            for (int64_t i = 0; i < y; i++)
                if (sb_put_lstr(&sb, s)) return sb_fail(r, n, &sb);
            out->k = V_STR;
            return sb_finish(r, n, &sb, &out->u.s);
        }
        if (!ints) return rfail(r, n, LM_ERR_ARG, "arithmetic on %s and %s", kind_name(a.k), kind_name(b.k));
        if (n->op == B_SUB) {
            if (__builtin_sub_overflow(x, y, &z)) return rfail(r, n, LM_ERR_LIMIT, "integer overflow");
        } else if (n->op == B_MUL) {
            if (__builtin_mul_overflow(x, y, &z)) return rfail(r, n, LM_ERR_LIMIT, "integer overflow");
        } else {
            if (y == 0) return rfail(r, n, LM_ERR_ARG, "modulo by zero");
            if (y == -1) z = 0;
            else {
                z = x % y;
                if (z != 0 && ((z < 0) != (y < 0))) z += y; /* Python's sign */
            }
        }
        return *out = v_int(z), 0;
    case B_CAT: {
        sbuf s = sb_new(r);
        if (put_str(&s, a, 0) || put_str(&s, b, 0)) return sb_fail(r, n, &s);
        out->k = V_STR;
        return sb_finish(r, n, &s, &out->u.s);
    }
    case B_EQ: return *out = v_bool(values_equal(a, b, 0)), 0;
    case B_NE: return *out = v_bool(!values_equal(a, b, 0)), 0;
    case B_LT:
    case B_GT:
    case B_LE:
    case B_GE: {
        int c;
        if (ints) c = x < y ? -1 : x > y;
        else if (a.k == V_STR && b.k == V_STR) c = lstr_cmp(a.u.s, b.u.s);
        else return rfail(r, n, LM_ERR_ARG, "cannot compare %s and %s", kind_name(a.k), kind_name(b.k));
        int res = n->op == B_LT ? c < 0 : n->op == B_GT ? c > 0 : n->op == B_LE ? c <= 0 : c >= 0;
        return *out = v_bool(res), 0;
    }
    case B_IN:
    case B_NOTIN: {
        int found = 0;
        if (b.k == V_STR) {
            if (a.k != V_STR) return rfail(r, n, LM_ERR_ARG, "'in <string>' needs a string on the left, not %s",
                                           kind_name(a.k));
            size_t at;
            found = lstr_find(b.u.s, a.u.s, 0, &at);
        } else if (b.k == V_LIST) {
            for (size_t i = 0; i < b.u.l->n && !found; i++) found = values_equal(a, b.u.l->v[i], 0);
        } else if (b.k == V_DICT) {
            found = a.k == V_STR && dict_find(b.u.d, a.u.s) != NULL;
        } else if (b.k != V_UNDEF) {
            return rfail(r, n, LM_ERR_ARG, "'in' needs a string, list or dict on the right, not %s", kind_name(b.k));
        }
        return *out = v_bool(n->op == B_IN ? found : !found), 0;
    }
    }
    return rfail(r, n, LM_ERR_ARG, "bad operator");
}

/* Python slice bounds. */
static int64_t slice_bound(int64_t v, int64_t len, int64_t lo, int64_t hi) {
    if (v < 0) v += len;
    if (v < lo) v = lo;
    if (v > hi) v = hi;
    return v;
}

static int eval_slice(rt *r, const node *n, value *out) {
    value obj, p[3];
    if (eval(r, n->a, &obj)) return -1;
    int has[3];
    int64_t iv[3] = {0, 0, 1};
    for (int i = 0; i < 3; i++) {
        p[i] = v_undef();
        if (n->args[i] && eval(r, n->args[i], &p[i])) return -1;
        has[i] = p[i].k != V_UNDEF && p[i].k != V_NONE;
        if (has[i] && !as_int(p[i], &iv[i])) return rfail(r, n, LM_ERR_ARG, "slice bounds must be integers");
    }
    int64_t step = has[2] ? iv[2] : 1;
    if (step == 0) return rfail(r, n, LM_ERR_ARG, "slice step cannot be zero");
    int64_t len;
    if (obj.k == V_LIST) len = (int64_t)obj.u.l->n;
    else if (obj.k == V_STR) len = (int64_t)obj.u.s.len;
    else if (obj.k == V_UNDEF) return *out = v_undef(), 0;
    else return rfail(r, n, LM_ERR_ARG, "cannot slice %s", kind_name(obj.k));
    int64_t start, stop;
    if (step > 0) {
        start = has[0] ? slice_bound(iv[0], len, 0, len) : 0;
        stop = has[1] ? slice_bound(iv[1], len, 0, len) : len;
    } else {
        start = has[0] ? slice_bound(iv[0], len, -1, len - 1) : len - 1;
        stop = has[1] ? slice_bound(iv[1], len, -1, len - 1) : -1;
    }
    if (obj.k == V_STR) {
        if (step != 1) return rfail(r, n, LM_ERR_UNSUPPORTED, "string slices with a step are not supported");
        out->k = V_STR;
        return lstr_sub(r, obj.u.s, (size_t)start, stop > start ? (size_t)(stop - start) : 0, &out->u.s);
    }
    size_t cnt = 0;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) cnt++;
    list *l = list_new(r, cnt);
    if (!l) return -1;
    size_t k = 0;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) l->v[k++] = obj.u.l->v[i];
    return *out = v_list(l), 0;
}

static int eval_index(rt *r, const node *n, value *out) {
    value obj, idx;
    if (eval(r, n->a, &obj) || eval(r, n->b, &idx)) return -1;
    int64_t i;
    *out = v_undef();
    if ((obj.k == V_DICT || obj.k == V_LOOP) && idx.k == V_STR) {
        *out = get_attr(obj, idx.u.s);
    } else if ((obj.k == V_LIST || obj.k == V_STR) && as_int(idx, &i)) {
        int64_t len = obj.k == V_LIST ? (int64_t)obj.u.l->n : (int64_t)obj.u.s.len;
        if (i < 0) i += len;
        if (i >= 0 && i < len) {
            if (obj.k == V_LIST) *out = obj.u.l->v[i];
            else {
                out->k = V_STR;
                return lstr_sub(r, obj.u.s, (size_t)i, 1, &out->u.s);
            }
        }
    }
    return 0;
}

static int is_ws_byte(char c, lstr chars, int have_chars) {
    if (have_chars) return chars.len && memchr(chars.p, c, chars.len) != NULL;
    return is_space(c);
}

static int strip(rt *r, lstr s, int left, int right, lstr chars, int have_chars, lstr *out) {
    size_t a = 0, b = s.len;
    if (left)
        while (a < b && is_ws_byte(s.p[a], chars, have_chars)) a++;
    if (right)
        while (b > a && is_ws_byte(s.p[b - 1], chars, have_chars)) b--;
    return lstr_sub(r, s, a, b - a, out);
}

static int change_case(rt *r, lstr s, int upper, lstr *out) {
    char *p = ralloc(r, s.len + 1);
    if (!p) return -1;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.p[i];
        if (upper && c >= 'a' && c <= 'z') c = (char)(c - 32);
        if (!upper && c >= 'A' && c <= 'Z') c = (char)(c + 32);
        p[i] = c;
    }
    p[s.len] = '\0';
    *out = s;
    out->p = p;
    return 0;
}

/* Positional argument i, or keyword kw, of call node n (evaluated), or
 * undefined when absent. */
static int arg(rt *r, const node *n, size_t i, const char *kw, value *out) {
    *out = v_undef();
    size_t pos = 0;
    for (size_t k = 0; k < n->nargs; k++) {
        if (n->kw[k]) {
            if (kw && !strcmp(n->kw[k], kw)) return eval(r, n->args[k], out);
        } else if (pos++ == i) {
            return eval(r, n->args[k], out);
        }
    }
    return 0;
}

static int check_args(rt *r, const node *n, size_t max_pos, const char *const *kws) {
    size_t pos = 0;
    for (size_t k = 0; k < n->nargs; k++) {
        if (!n->kw[k]) {
            if (++pos > max_pos) return rfail(r, n, LM_ERR_ARG, "'%s' takes at most %zu arguments", n->name, max_pos);
            continue;
        }
        int ok = 0;
        for (int q = 0; kws && kws[q]; q++) ok |= !strcmp(kws[q], n->kw[k]);
        if (!ok) return rfail(r, n, LM_ERR_ARG, "'%s' has no argument '%s'", n->name, n->kw[k]);
    }
    return 0;
}

static int need_str(rt *r, const node *n, value v, const char *what) {
    if (v.k != V_STR) return rfail(r, n, LM_ERR_ARG, "%s needs a string, not %s", what, kind_name(v.k));
    return 0;
}

static int eval_selectattr(rt *r, const node *n, value v, value *out);

static int eval_filter(rt *r, const node *n, value *out) {
    value v, a0;
    if (eval(r, n->a, &v)) return -1;
    static const char *const kw_tojson[] = {"indent", NULL};
    static const char *const kw_default[] = {"default_value", "boolean", NULL};
    static const char *const kw_join[] = {"d", NULL};
    switch (n->op) {
    case F_TRIM:
        if (check_args(r, n, 1, NULL)) return -1;
        if (arg(r, n, 0, NULL, &a0)) return -1;
        if (a0.k != V_UNDEF && need_str(r, n, a0, "trim's argument")) return -1;
        out->k = V_STR;
        if (v.k != V_STR && to_lstr(r, n, v, &v.u.s)) return -1;
        return strip(r, v.u.s, 1, 1, a0.u.s, a0.k == V_STR, &out->u.s);
    case F_TOJSON: {
        if (check_args(r, n, 1, kw_tojson) || arg(r, n, 0, "indent", &a0)) return -1;
        int64_t indent = -1;
        if (a0.k != V_UNDEF && a0.k != V_NONE && !as_int(a0, &indent))
            return rfail(r, n, LM_ERR_ARG, "tojson's indent must be an integer");
        if (indent > 64) indent = 64;
        sbuf b = sb_new(r);
        int rc = put_json(&b, v, indent, 0);
        if (rc == -2) {
            sb_free(&b);
            return rfail(r, n, LM_ERR_ARG, "tojson cannot write this value (%s, or nested too deeply)",
                         kind_name(v.k));
        }
        if (rc) return sb_fail(r, n, &b);
        out->k = V_STR;
        return sb_finish(r, n, &b, &out->u.s);
    }
    case F_LENGTH:
        if (check_args(r, n, 0, NULL)) return -1;
        if (v.k == V_STR) {
            int64_t cnt = 0;
            for (size_t i = 0; i < v.u.s.len; i++) cnt += ((unsigned char)v.u.s.p[i] & 0xC0) != 0x80;
            return *out = v_int(cnt), 0;
        }
        if (v.k == V_LIST) return *out = v_int((int64_t)v.u.l->n), 0;
        if (v.k == V_DICT) return *out = v_int((int64_t)v.u.d->n), 0;
        if (v.k == V_UNDEF) return *out = v_int(0), 0;
        return rfail(r, n, LM_ERR_ARG, "%s has no length", kind_name(v.k));
    case F_UPPER:
    case F_LOWER:
        if (check_args(r, n, 0, NULL)) return -1;
        if (v.k != V_STR && to_lstr(r, n, v, &v.u.s)) return -1;
        out->k = V_STR;
        return change_case(r, v.u.s, n->op == F_UPPER, &out->u.s);
    case F_DEFAULT: {
        value bl;
        if (check_args(r, n, 2, kw_default) || arg(r, n, 0, "default_value", &a0) || arg(r, n, 1, "boolean", &bl))
            return -1;
        if (a0.k == V_UNDEF) a0 = v_str(plain("", 0));
        int use = v.k == V_UNDEF || (truthy(bl) && !truthy(v));
        *out = use ? a0 : v;
        return 0;
    }
    case F_STRING:
        if (check_args(r, n, 0, NULL)) return -1;
        out->k = V_STR;
        return to_lstr(r, n, v, &out->u.s);
    case F_JOIN: {
        if (check_args(r, n, 1, kw_join) || arg(r, n, 0, "d", &a0)) return -1;
        if (a0.k != V_UNDEF && need_str(r, n, a0, "join's separator")) return -1;
        if (v.k != V_LIST) return rfail(r, n, LM_ERR_ARG, "join needs a list, not %s", kind_name(v.k));
        sbuf b = sb_new(r);
        for (size_t i = 0; i < v.u.l->n; i++)
            if ((i && a0.k == V_STR && sb_put_lstr(&b, a0.u.s)) || put_str(&b, v.u.l->v[i], 0))
                return sb_fail(r, n, &b);
        out->k = V_STR;
        return sb_finish(r, n, &b, &out->u.s);
    }
    case F_FIRST:
    case F_LAST:
        if (check_args(r, n, 0, NULL)) return -1;
        *out = v_undef();
        if (v.k == V_LIST && v.u.l->n) *out = v.u.l->v[n->op == F_FIRST ? 0 : v.u.l->n - 1];
        else if (v.k == V_STR && v.u.s.len) {
            out->k = V_STR;
            return lstr_sub(r, v.u.s, n->op == F_FIRST ? 0 : v.u.s.len - 1, 1, &out->u.s);
        } else if (v.k != V_LIST && v.k != V_STR && v.k != V_UNDEF) {
            return rfail(r, n, LM_ERR_ARG, "%s needs a list, not %s", n->name, kind_name(v.k));
        }
        return 0;
    case F_LIST: {
        if (check_args(r, n, 0, NULL)) return -1;
        if (v.k == V_LIST) return *out = v, 0;
        list *l;
        if (v.k == V_DICT) { /* the keys */
            l = list_new(r, v.u.d->n);
            if (!l) return -1;
            for (size_t i = 0; i < v.u.d->n; i++) l->v[i] = v_str(v.u.d->k[i]);
        } else if (v.k == V_STR) { /* the characters (code points) */
            size_t cnt = 0;
            for (size_t i = 0; i < v.u.s.len; i++) cnt += ((unsigned char)v.u.s.p[i] & 0xC0) != 0x80;
            l = list_new(r, cnt);
            if (!l) return -1;
            for (size_t i = 0, k = 0; i < v.u.s.len; k++) {
                size_t j = i + 1;
                while (j < v.u.s.len && ((unsigned char)v.u.s.p[j] & 0xC0) == 0x80) j++;
                l->v[k].k = V_STR;
                if (lstr_sub(r, v.u.s, i, j - i, &l->v[k].u.s)) return -1;
                i = j;
            }
        } else if (v.k == V_UNDEF) {
            l = list_new(r, 0);
            if (!l) return -1;
        } else {
            return rfail(r, n, LM_ERR_ARG, "list needs a list, dict or string, not %s", kind_name(v.k));
        }
        return *out = v_list(l), 0;
    }
    case F_SELECTATTR:
    case F_REJECTATTR: return eval_selectattr(r, n, v, out);
    }
    return rfail(r, n, LM_ERR_ARG, "bad filter");
}

static int test_value(int id, value v) {
    switch (id) {
    case T_DEFINED: return v.k != V_UNDEF;
    case T_UNDEFINED: return v.k == V_UNDEF;
    case T_NONE: return v.k == V_NONE;
    case T_STRING: return v.k == V_STR;
    case T_NUMBER: return v.k == V_INT || v.k == V_BOOL;
    case T_INTEGER: return v.k == V_INT;
    case T_BOOLEAN: return v.k == V_BOOL;
    case T_MAPPING: return v.k == V_DICT;
    case T_SEQUENCE: return v.k == V_LIST || v.k == V_STR || v.k == V_DICT;
    case T_TRUE: return v.k == V_BOOL && v.u.b;
    case T_FALSE: return v.k == V_BOOL && !v.u.b;
    }
    return 0;
}

static int eval_test(rt *r, const node *n, value *out) {
    value v;
    if (eval(r, n->a, &v)) return -1;
    int res = test_value(n->op, v);
    *out = v_bool(n->negate ? !res : res);
    return 0;
}

/* selectattr / rejectattr: the items of a list whose attribute (a dotted
 * path of dict keys) passes a test: truthiness without a test name, else
 * equalto / eq / == / ne / != against the test's argument, or one of the
 * `is` tests without an argument. */
static int eval_selectattr(rt *r, const node *n, value v, value *out) {
    value a0, a1, a2;
    if (check_args(r, n, 3, NULL) || arg(r, n, 0, NULL, &a0) || arg(r, n, 1, NULL, &a1) || arg(r, n, 2, NULL, &a2))
        return -1;
    if (need_str(r, n, a0, n->name)) return -1;
    if (a1.k != V_UNDEF && need_str(r, n, a1, "the test name")) return -1;
    int op = -1, tid = -1; /* op: 0 ==, 1 != */
    if (a1.k == V_STR) {
        if (lstr_eqz(a1.u.s, "equalto") || lstr_eqz(a1.u.s, "eq") || lstr_eqz(a1.u.s, "==")) op = 0;
        else if (lstr_eqz(a1.u.s, "ne") || lstr_eqz(a1.u.s, "!=")) op = 1;
        else {
            char nm[32];
            if (a1.u.s.len < sizeof nm) {
                memcpy(nm, a1.u.s.p, a1.u.s.len);
                nm[a1.u.s.len] = '\0';
                tid = lookup_named(tests, nm);
            }
            if (tid < 0 || a2.k != V_UNDEF)
                return rfail(r, n, LM_ERR_ARG, "%s: unsupported test '%.*s'", n->name,
                             (int)(a1.u.s.len > 40 ? 40 : a1.u.s.len), a1.u.s.p);
        }
    }
    if (v.k != V_LIST && v.k != V_UNDEF)
        return rfail(r, n, LM_ERR_ARG, "%s needs a list, not %s", n->name, kind_name(v.k));
    size_t total = v.k == V_LIST ? v.u.l->n : 0;
    list *l = list_new(r, total);
    if (!l) return -1;
    size_t cnt = 0;
    for (size_t i = 0; i < total; i++) {
        value x = v.u.l->v[i];
        lstr path = a0.u.s;
        for (size_t at = 0, j; at <= path.len; at = j + 1) {
            for (j = at; j < path.len && path.p[j] != '.'; j++) {}
            x = get_attr(x, plain(path.p + at, j - at));
        }
        int pass = op == 0 ? values_equal(x, a2, 0) : op == 1 ? !values_equal(x, a2, 0)
                 : tid >= 0 ? test_value(tid, x) : truthy(x);
        if (pass == (n->op == F_SELECTATTR)) l->v[cnt++] = v.u.l->v[i];
    }
    l->n = cnt;
    *out = v_list(l);
    return 0;
}

static int eval_method(rt *r, const node *n, value *out) {
    value obj, a0, a1;
    if (eval(r, n->a, &obj)) return -1;
    if (n->op == M_GET) {
        if (obj.k != V_DICT) return rfail(r, n, LM_ERR_ARG, "method 'get' needs a dict, not %s", kind_name(obj.k));
        if (check_args(r, n, 2, NULL) || arg(r, n, 0, NULL, &a0) || arg(r, n, 1, NULL, &a1)) return -1;
        value *found = a0.k == V_STR ? dict_find(obj.u.d, a0.u.s) : NULL;
        if (a1.k == V_UNDEF) a1.k = V_NONE;
        *out = found ? *found : a1;
        return 0;
    }
    if (n->op == M_ITEMS || n->op == M_KEYS || n->op == M_VALUES) {
        /* items() gives [key, value] lists (for k, v in d.items() unpacks them). */
        if (obj.k != V_DICT)
            return rfail(r, n, LM_ERR_ARG, "method '%s' needs a dict, not %s", n->name, kind_name(obj.k));
        if (check_args(r, n, 0, NULL)) return -1;
        const dict *d = obj.u.d;
        list *l = list_new(r, d->n);
        if (!l) return -1;
        for (size_t i = 0; i < d->n; i++) {
            if (n->op == M_KEYS) {
                l->v[i] = v_str(d->k[i]);
            } else if (n->op == M_VALUES) {
                l->v[i] = d->v[i];
            } else {
                list *kv = list_new(r, 2);
                if (!kv) return -1;
                kv->v[0] = v_str(d->k[i]);
                kv->v[1] = d->v[i];
                l->v[i] = v_list(kv);
            }
        }
        return *out = v_list(l), 0;
    }
    if (obj.k != V_STR)
        return rfail(r, n, LM_ERR_ARG, "method '%s' needs a string, not %s", n->name, kind_name(obj.k));
    lstr s = obj.u.s;
    switch (n->op) {
    case M_STRIP:
    case M_LSTRIP:
    case M_RSTRIP:
        if (check_args(r, n, 1, NULL) || arg(r, n, 0, NULL, &a0)) return -1;
        if (a0.k != V_UNDEF && a0.k != V_NONE && need_str(r, n, a0, n->name)) return -1;
        out->k = V_STR;
        return strip(r, s, n->op != M_RSTRIP, n->op != M_LSTRIP, a0.u.s, a0.k == V_STR, &out->u.s);
    case M_STARTSWITH:
    case M_ENDSWITH: {
        if (check_args(r, n, 1, NULL) || arg(r, n, 0, NULL, &a0)) return -1;
        if (need_str(r, n, a0, n->name)) return -1;
        lstr p = a0.u.s;
        int res = p.len <= s.len &&
                  (p.len == 0 || memcmp(n->op == M_STARTSWITH ? s.p : s.p + s.len - p.len, p.p, p.len) == 0);
        return *out = v_bool(res), 0;
    }
    case M_UPPER:
    case M_LOWER:
        if (check_args(r, n, 0, NULL)) return -1;
        out->k = V_STR;
        return change_case(r, s, n->op == M_UPPER, &out->u.s);
    case M_SPLIT: {
        if (check_args(r, n, 2, NULL) || arg(r, n, 0, NULL, &a0) || arg(r, n, 1, NULL, &a1)) return -1;
        int64_t maxsplit = -1;
        if (a1.k != V_UNDEF && !as_int(a1, &maxsplit)) return rfail(r, n, LM_ERR_ARG, "split's maxsplit must be an integer");
        int ws = a0.k == V_UNDEF || a0.k == V_NONE;
        if (!ws && need_str(r, n, a0, "split's separator")) return -1;
        if (!ws && a0.u.s.len == 0) return rfail(r, n, LM_ERR_ARG, "split: empty separator");
        /* Two passes: count, then fill. */
        list *l = NULL;
        for (int pass = 0; pass < 2; pass++) {
            size_t cnt = 0, i = 0;
            int64_t splits = 0;
            if (ws) {
                for (;;) {
                    while (i < s.len && is_space(s.p[i])) i++;
                    if (i >= s.len) break;
                    size_t j = i;
                    if (maxsplit >= 0 && splits >= maxsplit) {
                        j = s.len; /* Python keeps the remainder as it is */
                    } else {
                        while (j < s.len && !is_space(s.p[j])) j++;
                    }
                    if (pass && (l->v[cnt].k = V_STR, lstr_sub(r, s, i, j - i, &l->v[cnt].u.s))) return -1;
                    cnt++;
                    splits++;
                    i = j;
                }
            } else {
                for (;;) {
                    size_t at;
                    int more = (maxsplit < 0 || splits < maxsplit) && lstr_find(s, a0.u.s, i, &at);
                    size_t j = more ? at : s.len;
                    if (pass && (l->v[cnt].k = V_STR, lstr_sub(r, s, i, j - i, &l->v[cnt].u.s))) return -1;
                    cnt++;
                    splits++;
                    if (!more) break;
                    i = at + a0.u.s.len;
                }
            }
            if (!pass) {
                l = list_new(r, cnt);
                if (!l) return -1;
            }
        }
        return *out = v_list(l), 0;
    }
    case M_REPLACE: {
        value a2;
        if (check_args(r, n, 3, NULL) || arg(r, n, 0, NULL, &a0) || arg(r, n, 1, NULL, &a1) ||
            arg(r, n, 2, NULL, &a2))
            return -1;
        if (need_str(r, n, a0, "replace") || need_str(r, n, a1, "replace")) return -1;
        int64_t count = -1;
        if (a2.k != V_UNDEF && !as_int(a2, &count)) return rfail(r, n, LM_ERR_ARG, "replace's count must be an integer");
        if (a0.u.s.len == 0) return rfail(r, n, LM_ERR_UNSUPPORTED, "replace with an empty pattern is not supported");
        sbuf b = sb_new(r);
        size_t i = 0, at;
        int64_t done = 0;
        while ((count < 0 || done < count) && lstr_find(s, a0.u.s, i, &at)) {
            lstr piece;
            if (lstr_sub(r, s, i, at - i, &piece)) return sb_free(&b), -1;
            if (sb_put_lstr(&b, piece) || sb_put_lstr(&b, a1.u.s)) return sb_fail(r, n, &b);
            i = at + a0.u.s.len;
            done++;
        }
        lstr rest;
        if (lstr_sub(r, s, i, s.len - i, &rest)) return sb_free(&b), -1;
        if (sb_put_lstr(&b, rest)) return sb_fail(r, n, &b);
        out->k = V_STR;
        return sb_finish(r, n, &b, &out->u.s);
    }
    }
    return rfail(r, n, LM_ERR_ARG, "bad method");
}

static int eval_call(rt *r, const node *n, value *out) {
    value a0, a1, a2;
    switch (n->op) {
    case FN_RAISE: {
        if (check_args(r, n, 1, NULL) || arg(r, n, 0, NULL, &a0)) return -1;
        lstr s;
        if (to_lstr(r, n, a0, &s)) return -1;
        return rfail(r, n, LM_ERR_ARG, "raise_exception: %.*s", (int)(s.len > 300 ? 300 : s.len), s.p);
    }
    case FN_RANGE: {
        if (check_args(r, n, 3, NULL) || arg(r, n, 0, NULL, &a0) || arg(r, n, 1, NULL, &a1) ||
            arg(r, n, 2, NULL, &a2))
            return -1;
        int64_t start = 0, stop, step = 1;
        if (a1.k == V_UNDEF) {
            if (!as_int(a0, &stop)) return rfail(r, n, LM_ERR_ARG, "range needs integers");
        } else if (!as_int(a0, &start) || !as_int(a1, &stop) || (a2.k != V_UNDEF && !as_int(a2, &step))) {
            return rfail(r, n, LM_ERR_ARG, "range needs integers");
        }
        if (step == 0) return rfail(r, n, LM_ERR_ARG, "range step cannot be zero");
        /* count without overflow: work in doubles for the bound check */
        double span_d = step > 0 ? (double)stop - (double)start : (double)start - (double)stop;
        double cnt_d = span_d <= 0 ? 0 : span_d / (step > 0 ? (double)step : -(double)step);
        if (cnt_d > (double)LM_CHAT_TEMPLATE_MAX_ITERATIONS)
            return rfail(r, n, LM_ERR_LIMIT, "range of more than %d items", LM_CHAT_TEMPLATE_MAX_ITERATIONS);
        size_t cnt = 0;
        for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
            cnt++;
            if ((step > 0 && i > INT64_MAX - step) || (step < 0 && i < INT64_MIN - step)) break;
        }
        list *l = list_new(r, cnt);
        if (!l) return -1;
        for (size_t k = 0; k < cnt; k++) l->v[k] = v_int(start + (int64_t)k * step);
        return *out = v_list(l), 0;
    }
    case FN_NAMESPACE: {
        dict *d = dict_new(r, n->nargs);
        if (!d) return -1;
        d->ns = 1;
        for (size_t k = 0; k < n->nargs; k++) {
            if (!n->kw[k]) return rfail(r, n, LM_ERR_ARG, "namespace() takes only name=value arguments");
            value v;
            if (eval(r, n->args[k], &v) || dict_set(r, d, plain(n->kw[k], strlen(n->kw[k])), v)) return -1;
        }
        out->k = V_DICT;
        out->u.d = d;
        return 0;
    }
    }
    return rfail(r, n, LM_ERR_ARG, "bad function");
}

static int eval(rt *r, const node *n, value *out) {
    *out = v_undef();
    switch (n->kind) {
    case N_LIT: *out = n->lit; return 0;
    case N_VAR: *out = lookup(r, n->name); return 0;
    case N_ATTR: {
        value obj;
        if (eval(r, n->a, &obj)) return -1;
        *out = get_attr(obj, plain(n->name, strlen(n->name)));
        return 0;
    }
    case N_INDEX: return eval_index(r, n, out);
    case N_SLICE: return eval_slice(r, n, out);
    case N_BIN: return eval_bin(r, n, out);
    case N_NOT: {
        value a;
        if (eval(r, n->a, &a)) return -1;
        *out = v_bool(!truthy(a));
        return 0;
    }
    case N_NEG: {
        value a;
        int64_t x;
        if (eval(r, n->a, &a)) return -1;
        if (!as_int(a, &x)) return rfail(r, n, LM_ERR_ARG, "cannot negate %s", kind_name(a.k));
        if (x == INT64_MIN) return rfail(r, n, LM_ERR_LIMIT, "integer overflow");
        *out = v_int(-x);
        return 0;
    }
    case N_COND: {
        value c;
        if (eval(r, n->b, &c)) return -1;
        if (truthy(c)) return eval(r, n->a, out);
        if (n->c) return eval(r, n->c, out);
        return 0;
    }
    case N_LIST: {
        list *l = list_new(r, n->nargs);
        if (!l) return -1;
        for (size_t i = 0; i < n->nargs; i++)
            if (eval(r, n->args[i], &l->v[i])) return -1;
        *out = v_list(l);
        return 0;
    }
    case N_DICT: {
        dict *d = dict_new(r, n->nargs);
        if (!d) return -1;
        for (size_t i = 0; i < n->nargs; i++) {
            value k, v;
            if (eval(r, n->keys[i], &k) || eval(r, n->args[i], &v)) return -1;
            if (k.k != V_STR) return rfail(r, n, LM_ERR_ARG, "dict keys must be strings, not %s", kind_name(k.k));
            if (dict_set(r, d, k.u.s, v)) return -1;
        }
        out->k = V_DICT;
        out->u.d = d;
        return 0;
    }
    case N_FILTER: return eval_filter(r, n, out);
    case N_TEST: return eval_test(r, n, out);
    case N_METHOD: return eval_method(r, n, out);
    case N_CALL: return eval_call(r, n, out);
    }
    return rfail(r, n, LM_ERR_ARG, "bad expression");
}

static int exec_body(rt *r, node *const *body, size_t n);

/* Binds a for loop's variable(s) to one item: `for a, b in` unpacks a list
 * of exactly that many values. */
static int bind_targets(rt *r, const node *s, frame *f, value item) {
    if (!s->targets) return frame_set(r, f, s->name, item);
    if (item.k != V_LIST || item.u.l->n != s->ntargets)
        return rfail(r, s, LM_ERR_ARG, "cannot unpack %s%s into %zu loop variables", kind_name(item.k),
                     item.k == V_LIST ? " of another length" : "", s->ntargets);
    for (size_t k = 0; k < s->ntargets; k++)
        if (frame_set(r, f, s->targets[k], item.u.l->v[k])) return -1;
    return 0;
}

static int exec_stmt(rt *r, const node *s) {
    switch (s->kind) {
    case S_TEXT:
        if (sb_put_lstr(&r->out, s->lit.u.s)) return sb_fail(r, s, &r->out);
        return 0;
    case S_OUT: {
        value v;
        if (eval(r, s->a, &v)) return -1;
        if (put_str(&r->out, v, 0)) return sb_fail(r, s, &r->out);
        return 0;
    }
    case S_IF: {
        value c;
        if (eval(r, s->a, &c)) return -1;
        return truthy(c) ? exec_body(r, s->body, s->nbody) : exec_body(r, s->els, s->nels);
    }
    case S_SET: {
        value v;
        if (eval(r, s->a, &v)) return -1;
        if (!s->attr) return frame_set(r, r->top, s->name, v);
        value ns = lookup(r, s->name);
        if (ns.k != V_DICT || !ns.u.d->ns)
            return rfail(r, s, LM_ERR_ARG, "'%s.%s = ...' needs '%s' to be a namespace()", s->name, s->attr, s->name);
        return dict_set(r, ns.u.d, plain(s->attr, strlen(s->attr)), v);
    }
    case S_FOR: {
        value it;
        if (eval(r, s->a, &it)) return -1;
        list *items;
        if (it.k == V_LIST) {
            items = it.u.l;
        } else if (it.k == V_DICT) {
            items = list_new(r, it.u.d->n);
            if (!items) return -1;
            for (size_t i = 0; i < it.u.d->n; i++) items->v[i] = v_str(it.u.d->k[i]);
        } else if (it.k == V_UNDEF) {
            items = NULL;
        } else {
            return rfail(r, s, LM_ERR_ARG, "cannot loop over %s", kind_name(it.k));
        }
        if (items && s->b) {
            /* for ... if cond: keep the items that pass (loop.* count only
             * those); the condition sees the loop variables, not `loop`. */
            list *kept = list_new(r, items->n);
            if (!kept) return -1;
            size_t cnt = 0;
            frame *saved = r->top;
            frame *f = frame_push(r);
            if (!f) return -1;
            int rc = 0;
            for (size_t i = 0; i < items->n && rc == 0; i++) {
                if (++r->iters > LM_CHAT_TEMPLATE_MAX_ITERATIONS) {
                    rc = rfail(r, s, LM_ERR_LIMIT, "more than %d loop iterations", LM_CHAT_TEMPLATE_MAX_ITERATIONS);
                    break;
                }
                value c;
                f->n = 0;
                rc = bind_targets(r, s, f, items->v[i]);
                if (rc == 0) rc = eval(r, s->b, &c);
                if (rc == 0 && truthy(c)) kept->v[cnt++] = items->v[i];
            }
            r->top = saved;
            if (rc) return rc;
            kept->n = cnt;
            items = kept;
        }
        if (!items || items->n == 0) return exec_body(r, s->els, s->nels);
        loopst *lp = ralloc(r, sizeof *lp);
        if (!lp) return -1;
        lp->n = (int64_t)items->n;
        lp->items = items;
        value lv = v_undef();
        lv.k = V_LOOP;
        lv.u.lp = lp;
        /* One frame for the loop, emptied at each iteration (a fresh scope
         * without allocating per iteration). */
        frame *saved = r->top;
        frame *f = frame_push(r);
        if (!f) return -1;
        int rc = 0;
        for (size_t i = 0; i < items->n && rc == 0; i++) {
            if (++r->iters > LM_CHAT_TEMPLATE_MAX_ITERATIONS) {
                rc = rfail(r, s, LM_ERR_LIMIT, "more than %d loop iterations", LM_CHAT_TEMPLATE_MAX_ITERATIONS);
                break;
            }
            lp->i = (int64_t)i;
            f->n = 0;
            if (frame_set(r, f, "loop", lv) || bind_targets(r, s, f, items->v[i])) rc = -1;
            else rc = exec_body(r, s->body, s->nbody);
        }
        r->top = saved;
        return rc;
    }
    }
    return rfail(r, s, LM_ERR_ARG, "bad statement");
}

static int exec_body(rt *r, node *const *body, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (exec_stmt(r, body[i])) return -1;
    return 0;
}

/* ------------------------------------------------------------------ JSON for tools */

/* Marks all of s as bytes of message msg's content (untrusted). */
static int mark_content(rt *r, lstr *s, int32_t msg) {
    span *sp = ralloc(r, sizeof *sp);
    if (!sp) return -1;
    sp->off = 0, sp->len = s->len, sp->msg = msg;
    s->sp = sp, s->nsp = 1;
    return 0;
}

typedef struct jp {
    rt *r;
    const char *s;
    size_t n, i;
    const char *why;
    int32_t msg; /* >= 0: strings (keys and values) are marked as that message's content */
} jp;

static void jws(jp *j) {
    while (j->i < j->n && (j->s[j->i] == ' ' || j->s[j->i] == '\t' || j->s[j->i] == '\n' || j->s[j->i] == '\r'))
        j->i++;
}

static int jhex(jp *j, unsigned *out) {
    if (j->n - j->i < 4) return -1;
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        char c = j->s[j->i + k];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return -1;
    }
    j->i += 4;
    *out = v;
    return 0;
}

static int jstring(jp *j, lstr *out) {
    j->i++; /* opening quote */
    size_t end = j->i; /* escapes only shrink: size the buffer by the raw length */
    while (end < j->n && j->s[end] != '"') end += j->s[end] == '\\' ? 2 : 1;
    if (end > j->n) end = j->n;
    char *buf = ralloc(j->r, end - j->i + 1);
    if (!buf) return -1;
    size_t k = 0;
    while (j->i < j->n && j->s[j->i] != '"') {
        unsigned char c = (unsigned char)j->s[j->i];
        if (c < 0x20) return j->why = "control character in string", -1;
        if (c != '\\') {
            buf[k++] = (char)c;
            j->i++;
            continue;
        }
        if (++j->i >= j->n) break;
        char e = j->s[j->i++];
        switch (e) {
        case '"': case '\\': case '/': buf[k++] = e; break;
        case 'n': buf[k++] = '\n'; break;
        case 't': buf[k++] = '\t'; break;
        case 'r': buf[k++] = '\r'; break;
        case 'b': buf[k++] = '\b'; break;
        case 'f': buf[k++] = '\f'; break;
        case 'u': {
            unsigned cp, lo;
            if (jhex(j, &cp)) return j->why = "bad \\u escape", -1;
            if (cp >= 0xD800 && cp < 0xDC00) {
                if (j->n - j->i < 6 || j->s[j->i] != '\\' || j->s[j->i + 1] != 'u') return j->why = "lone surrogate", -1;
                j->i += 2;
                if (jhex(j, &lo) || lo < 0xDC00 || lo > 0xDFFF) return j->why = "lone surrogate", -1;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp < 0xE000) {
                return j->why = "lone surrogate", -1;
            }
            if (cp == 0) return j->why = "\\u0000 in string", -1;
            if (cp < 0x80) buf[k++] = (char)cp;
            else if (cp < 0x800) {
                buf[k++] = (char)(0xC0 | (cp >> 6));
                buf[k++] = (char)(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                buf[k++] = (char)(0xE0 | (cp >> 12));
                buf[k++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                buf[k++] = (char)(0x80 | (cp & 0x3F));
            } else {
                buf[k++] = (char)(0xF0 | (cp >> 18));
                buf[k++] = (char)(0x80 | ((cp >> 12) & 0x3F));
                buf[k++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                buf[k++] = (char)(0x80 | (cp & 0x3F));
            }
            break;
        }
        default: return j->why = "bad escape", -1;
        }
    }
    if (j->i >= j->n) return j->why = "unterminated string", -1;
    j->i++;
    buf[k] = '\0';
    *out = plain(buf, k);
    if (j->msg >= 0 && k) return mark_content(j->r, out, j->msg) ? (j->why = "out of memory", -1) : 0;
    return 0;
}

static int jvalue(jp *j, value *out, int depth) {
    if (depth > LM_CHAT_TEMPLATE_MAX_DEPTH) return j->why = "nested too deeply", -1;
    jws(j);
    if (j->i >= j->n) return j->why = "unexpected end", -1;
    char c = j->s[j->i];
    *out = v_undef();
    if (c == '"') {
        out->k = V_STR;
        return jstring(j, &out->u.s);
    }
    if (c == '{' || c == '[') {
        int isd = c == '{';
        char close = isd ? '}' : ']';
        j->i++;
        dict *d = NULL;
        value *items = NULL;
        size_t n = 0, cap = 0;
        if (isd && !(d = dict_new(j->r, 0))) return -1;
        jws(j);
        if (j->i < j->n && j->s[j->i] == close) {
            j->i++;
        } else {
            for (;;) {
                lstr key = {0};
                jws(j);
                if (isd) {
                    if (j->i >= j->n || j->s[j->i] != '"') return j->why = "expected a key", -1;
                    if (jstring(j, &key)) return -1;
                    jws(j);
                    if (j->i >= j->n || j->s[j->i] != ':') return j->why = "expected ':'", -1;
                    j->i++;
                }
                value v;
                if (jvalue(j, &v, depth + 1)) return -1;
                if (isd) {
                    if (dict_set(j->r, d, key, v)) return -1;
                } else {
                    if (n == cap) {
                        size_t nc = cap ? cap * 2 : 8;
                        value *ni = ralloc(j->r, nc * sizeof *ni);
                        if (!ni) return -1;
                        if (n) memcpy(ni, items, n * sizeof *ni);
                        items = ni;
                        cap = nc;
                    }
                    items[n++] = v;
                }
                jws(j);
                if (j->i < j->n && j->s[j->i] == ',') {
                    j->i++;
                    continue;
                }
                if (j->i < j->n && j->s[j->i] == close) {
                    j->i++;
                    break;
                }
                return j->why = "expected ',' or a closing bracket", -1;
            }
        }
        if (isd) {
            out->k = V_DICT;
            out->u.d = d;
        } else {
            list *l = ralloc(j->r, sizeof *l);
            if (!l) return -1;
            l->v = items;
            l->n = n;
            *out = v_list(l);
        }
        return 0;
    }
    static const struct {
        const char *w;
        int k, b;
    } words[] = {{"true", V_BOOL, 1}, {"false", V_BOOL, 0}, {"null", V_NONE, 0}};
    for (int q = 0; q < 3; q++) {
        size_t wl = strlen(words[q].w);
        if (j->n - j->i >= wl && !memcmp(j->s + j->i, words[q].w, wl)) {
            j->i += wl;
            out->k = words[q].k;
            out->u.b = words[q].b;
            return 0;
        }
    }
    if (c == '-' || is_digit(c)) {
        int neg = c == '-';
        if (neg) j->i++;
        if (j->i >= j->n || !is_digit(j->s[j->i])) return j->why = "bad number", -1;
        int64_t v = 0;
        while (j->i < j->n && is_digit(j->s[j->i])) {
            if (v > (INT64_MAX - (j->s[j->i] - '0')) / 10) return j->why = "number too large", -1;
            v = v * 10 + (j->s[j->i++] - '0');
        }
        if (j->i < j->n && (j->s[j->i] == '.' || j->s[j->i] == 'e' || j->s[j->i] == 'E'))
            return j->why = "only integer numbers are supported", -1;
        *out = v_int(neg ? -v : v);
        return 0;
    }
    return j->why = "unexpected character", -1;
}

/* ------------------------------------------------------------------ render */

/* s (NUL-terminated) as a string value marked as message msg's content. */
static int tainted(rt *r, const char *s, int32_t msg, lstr *out) {
    *out = plain(s, strlen(s));
    return out->len ? mark_content(r, out, msg) : 0; /* ralloc has set r->st on failure */
}

/* message.tool_calls, OpenAI's shape: [{"id", "type": "function", "function": {"name", "arguments"}}].
 * The arguments are a dict when their JSON parses (what Hugging Face templates expect, e.g.
 * `tool_call.arguments | tojson`), else the string as given. Every string is the message's content. */
static int add_tool_calls(rt *r, dict *d, const lm_chat_message *m, int32_t msg) {
    if (!m->tool_calls) return rfail(r, NULL, LM_ERR_ARG, "message %d: tool_calls is NULL", (int)msg);
    list *l = list_new(r, m->n_tool_calls);
    if (!l) return -1;
    for (size_t k = 0; k < m->n_tool_calls; k++) {
        const lm_chat_tool_call *tc = &m->tool_calls[k];
        if (!tc->name || !tc->arguments)
            return rfail(r, NULL, LM_ERR_ARG, "message %d: tool call %zu has no name or arguments", (int)msg, k);
        dict *call = dict_new(r, 3), *fn = dict_new(r, 2);
        lstr name, id, text;
        if (!call || !fn || tainted(r, tc->name, msg, &name) || tainted(r, tc->arguments, msg, &text)) return -1;
        value args = v_str(text);
        jp j = {r, tc->arguments, strlen(tc->arguments), 0, NULL, msg};
        value parsed;
        if (jvalue(&j, &parsed, 1) == 0) {
            jws(&j);
            if (j.i == j.n && parsed.k == V_DICT) args = parsed;
        }
        if (r->st != LM_OK) return -1;
        if (dict_set(r, fn, plain("name", 4), v_str(name)) || dict_set(r, fn, plain("arguments", 9), args)) return -1;
        if (tc->id && (tainted(r, tc->id, msg, &id) || dict_set(r, call, plain("id", 2), v_str(id)))) return -1;
        value fv = {V_DICT, {.d = fn}};
        if (dict_set(r, call, plain("type", 4), v_str(plain("function", 8))) || dict_set(r, call, plain("function", 8), fv))
            return -1;
        l->v[k].k = V_DICT;
        l->v[k].u.d = call;
    }
    return dict_set(r, d, plain("tool_calls", 10), v_list(l));
}

static int valid_role(const char *role) {
    return role && (!strcmp(role, "system") || !strcmp(role, "user") || !strcmp(role, "assistant") ||
                    !strcmp(role, "tool"));
}

lm_status lm_chat_template_render(const lm_chat_template *t, const lm_chat_message *msgs, size_t n,
                                  const lm_chat_render_options *opts, char **out, size_t *out_len,
                                  lm_chat_segment **segments, size_t *n_segments, lm_error *err) {
    if (!t || !out || !out_len || (n && !msgs) || (segments && !n_segments))
        return lm_error_set(err, LM_ERR_ARG, "lm_chat_template_render: NULL argument");
    *out = NULL;
    *out_len = 0;
    if (segments) {
        *segments = NULL;
        *n_segments = 0;
    }
    if (n > (size_t)INT32_MAX) return lm_error_set(err, LM_ERR_LIMIT, "chat template: too many messages");
    lm_chat_render_options dflt;
    memset(&dflt, 0, sizeof dflt);
    if (!opts) opts = &dflt;
    rt r;
    memset(&r, 0, sizeof r);
    r.err = err;
    r.st = LM_OK;
    r.max_out = opts->max_output ? opts->max_output : LM_CHAT_TEMPLATE_MAX_OUTPUT;
    /* Values may hold a few copies of the output; bound them too. */
    r.ar.limit = r.max_out > ((size_t)1 << 40) ? ((size_t)1 << 42) : 4 * r.max_out + ((size_t)16 << 20);
    r.out = sb_new(&r);

    list *ml = list_new(&r, n);
    frame *g = frame_push(&r);
    if (!ml || !g) goto done;
    for (size_t i = 0; i < n; i++) {
        if (!valid_role(msgs[i].role)) {
            rfail(&r, NULL, LM_ERR_ARG, "message %zu: role must be system, user, assistant or tool", i);
            goto done;
        }
        if (!msgs[i].content) {
            rfail(&r, NULL, LM_ERR_ARG, "message %zu: content is NULL", i);
            goto done;
        }
        dict *d = dict_new(&r, 4);
        if (!d) goto done;
        lstr content;
        if (tainted(&r, msgs[i].content, (int32_t)i, &content) ||
            dict_set(&r, d, plain("role", 4), v_str(plain(msgs[i].role, strlen(msgs[i].role)))) ||
            dict_set(&r, d, plain("content", 7), v_str(content)))
            goto done;
        if (msgs[i].n_tool_calls && add_tool_calls(&r, d, &msgs[i], (int32_t)i)) goto done;
        if (msgs[i].tool_call_id) {
            lstr id;
            if (tainted(&r, msgs[i].tool_call_id, (int32_t)i, &id) || dict_set(&r, d, plain("tool_call_id", 12), v_str(id)))
                goto done;
        }
        ml->v[i].k = V_DICT;
        ml->v[i].u.d = d;
    }
    const char *bos = opts->bos_token ? opts->bos_token : "";
    const char *eos = opts->eos_token ? opts->eos_token : "";
    if (frame_set(&r, g, "messages", v_list(ml)) || frame_set(&r, g, "bos_token", v_str(plain(bos, strlen(bos)))) ||
        frame_set(&r, g, "eos_token", v_str(plain(eos, strlen(eos)))) ||
        frame_set(&r, g, "add_generation_prompt", v_bool(opts->add_generation_prompt)))
        goto done;
    if (opts->tools_json) {
        /* The tools' names, descriptions and schemas may come from a client: untrusted, marked as
         * content of the pseudo-message n. */
        jp j = {&r, opts->tools_json, strlen(opts->tools_json), 0, NULL, (int32_t)n};
        value tools;
        if (jvalue(&j, &tools, 0) == 0) {
            jws(&j);
            if (j.i != j.n) j.why = "trailing characters";
            else if (tools.k != V_LIST) j.why = "not an array";
        }
        if (j.why || r.st != LM_OK) {
            if (r.st == LM_OK)
                rfail(&r, NULL, LM_ERR_ARG, "tools_json: %s at byte %zu", j.why ? j.why : "invalid", j.i);
            goto done;
        }
        if (frame_set(&r, g, "tools", tools)) goto done;
    }
    if (exec_body(&r, t->body, t->nbody)) goto done;

    if (segments) {
        /* TEMPLATE gaps between the content spans. */
        size_t cnt = 0, at = 0;
        for (size_t i = 0; i < r.out.nsp; i++) {
            cnt += r.out.sp[i].off > at;
            cnt++;
            at = r.out.sp[i].off + r.out.sp[i].len;
        }
        cnt += r.out.len > at;
        lm_chat_segment *seg = malloc((cnt ? cnt : 1) * sizeof *seg);
        if (!seg) {
            rnomem(&r);
            goto done;
        }
        size_t k = 0;
        at = 0;
        for (size_t i = 0; i < r.out.nsp; i++) {
            if (r.out.sp[i].off > at) {
                lm_chat_segment s = {at, r.out.sp[i].off - at, LM_CHAT_SEG_TEMPLATE, -1};
                seg[k++] = s;
            }
            lm_chat_segment s = {r.out.sp[i].off, r.out.sp[i].len, LM_CHAT_SEG_CONTENT, r.out.sp[i].msg};
            seg[k++] = s;
            at = r.out.sp[i].off + r.out.sp[i].len;
        }
        if (r.out.len > at) {
            lm_chat_segment s = {at, r.out.len - at, LM_CHAT_SEG_TEMPLATE, -1};
            seg[k++] = s;
        }
        *segments = seg;
        *n_segments = k;
    }
    if (!r.out.p) {
        r.out.p = malloc(1);
        if (!r.out.p) {
            if (segments) {
                free(*segments);
                *segments = NULL;
                *n_segments = 0;
            }
            rnomem(&r);
            goto done;
        }
        r.out.p[0] = '\0';
    }
    *out = r.out.p;
    *out_len = r.out.len;
    r.out.p = NULL;

done:
    sb_free(&r.out);
    arena_free(&r.ar);
    return r.st;
}

const char *const lm_chat_template_chatml =
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
