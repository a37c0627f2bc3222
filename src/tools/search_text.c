/* UTF-8 cleaning, passage splitting and query terms for document search. */
#include "search_text.h"

#include "llmos/search.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

size_t lm_search_utf8_seq(const unsigned char *s, size_t n) {
    if (n == 0) return 0;
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    unsigned cp, min;
    if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07, min = 0x10000;
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

size_t lm_search_utf8_prefix(const char *s, size_t len, size_t max) {
    if (len <= max) return len;
    size_t p = max;
    while (p > 0 && ((unsigned char)s[p] & 0xC0) == 0x80) p--;
    return p;
}

char *lm_search_utf8_clean(const char *s, size_t len, size_t *out_len) {
    if (len > (SIZE_MAX - 1) / 3) return NULL;
    char *out = malloc(len * 3 + 1); /* each invalid byte becomes 3 */
    if (!out) return NULL;
    const unsigned char *u = (const unsigned char *)s;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t k = lm_search_utf8_seq(u + i, len - i);
        if (k) {
            memcpy(out + o, s + i, k);
            o += k, i += k;
        } else {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3, i++;
        }
    }
    out[o] = '\0';
    if (out_len) *out_len = o;
    return out;
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

static size_t count_words(const char *s, size_t len) {
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (!is_space(s[i]) && (i == 0 || is_space(s[i - 1]))) n++;
    return n;
}

typedef struct span_list {
    lm_search_span *v;
    size_t n, cap;
} span_list;

/* Adds [start, end) less surrounding whitespace; 0 when out of memory. */
static int push(span_list *l, const char *text, size_t start, size_t end) {
    while (start < end && is_space(text[start])) start++;
    while (end > start && is_space(text[end - 1])) end--;
    if (start == end) return 1;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        lm_search_span *v = realloc(l->v, cap * sizeof *v);
        if (!v) return 0;
        l->v = v, l->cap = cap;
    }
    l->v[l->n++] = (lm_search_span){start, end - start};
    return 1;
}

/* Cuts [s, e) into pieces of at most MAX_WORDS words and MAX_PASSAGE_BYTES
 * bytes, at word ends where possible. */
static int push_cut(span_list *l, const char *text, size_t s, size_t e) {
    while (s < e) {
        while (s < e && is_space(text[s])) s++;
        if (s >= e) break;
        size_t limit = e - s > LM_SEARCH_MAX_PASSAGE_BYTES ? s + LM_SEARCH_MAX_PASSAGE_BYTES : e;
        size_t p = s, last_end = s, words = 0;
        while (p < limit) {
            if (is_space(text[p])) {
                p++;
                continue;
            }
            size_t q = p;
            while (q < e && !is_space(text[q])) q++;
            if (q > limit) break;
            p = last_end = q;
            if (++words == LM_SEARCH_MAX_WORDS) break;
        }
        size_t cut = last_end;
        if (cut == s) { /* one word longer than the byte cap: cut inside it */
            cut = s + lm_search_utf8_prefix(text + s, e - s, LM_SEARCH_MAX_PASSAGE_BYTES);
            if (cut == s) cut = limit;
        }
        if (!push(l, text, s, cut)) return 0;
        s = cut;
    }
    return 1;
}

lm_status lm_search_split(const char *text, size_t len, lm_search_span **spans, size_t *n, lm_error *err) {
    span_list l = {0};
    size_t cs = 0, ce = 0, cwords = 0; /* the passage being built; ce == cs: empty */
    int ok = 1;
    for (size_t i = 0; i < len && ok;) {
        /* next paragraph: skip blank lines, then take lines until a blank one */
        size_t ps = SIZE_MAX, pe = 0;
        while (i < len) {
            size_t ls = i, le = i;
            while (le < len && text[le] != '\n') le++;
            int blank = 1;
            for (size_t j = ls; j < le && blank; j++) blank = is_space(text[j]);
            i = le < len ? le + 1 : le;
            if (blank) {
                if (ps != SIZE_MAX) break;
                continue;
            }
            if (ps == SIZE_MAX) ps = ls;
            pe = le;
        }
        if (ps == SIZE_MAX) break;
        size_t pw = count_words(text + ps, pe - ps);
        if (pw > LM_SEARCH_MAX_WORDS || pe - ps > LM_SEARCH_MAX_PASSAGE_BYTES) {
            if (ce > cs) ok = push(&l, text, cs, ce);
            cs = ce = 0, cwords = 0;
            if (ok) ok = push_cut(&l, text, ps, pe);
            continue;
        }
        if (ce > cs && (cwords + pw > LM_SEARCH_MAX_WORDS || pe - cs > LM_SEARCH_MAX_PASSAGE_BYTES)) {
            ok = push(&l, text, cs, ce);
            cs = ce = 0, cwords = 0;
        }
        if (ce == cs) cs = ps;
        ce = pe, cwords += pw;
        if (cwords >= LM_SEARCH_MIN_WORDS) {
            if (ok) ok = push(&l, text, cs, ce);
            cs = ce = 0, cwords = 0;
        }
    }
    if (ok && ce > cs) ok = push(&l, text, cs, ce);
    if (!ok) {
        free(l.v);
        return lm_error_set(err, LM_ERR_NOMEM, "out of memory splitting passages");
    }
    *spans = l.v;
    *n = l.n;
    return LM_OK;
}

static int is_term_byte(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

lm_status lm_search_match_expr(const char *query, size_t len, char **expr, lm_error *err) {
    *expr = NULL;
    /* at most MAX_TERMS terms of MAX_TERM_BYTES, each quoted, " OR " between */
    size_t cap = LM_SEARCH_MAX_TERMS * (LM_SEARCH_MAX_TERM_BYTES + 6) + 1;
    char *out = malloc(cap);
    const char *terms[LM_SEARCH_MAX_TERMS];
    size_t term_len[LM_SEARCH_MAX_TERMS];
    if (!out) return lm_error_set(err, LM_ERR_NOMEM, "out of memory building a search query");
    const unsigned char *u = (const unsigned char *)query;
    size_t o = 0, nt = 0;
    for (size_t i = 0; i < len && nt < LM_SEARCH_MAX_TERMS;) {
        size_t start = i, end = i; /* end: the term's last byte within the byte cap */
        for (;;) {
            size_t k = 0;
            if (i < len && is_term_byte(u[i])) k = 1;
            else if (i < len && u[i] >= 0x80) k = lm_search_utf8_seq(u + i, len - i);
            if (!k) break;
            i += k;
            if (i - start <= LM_SEARCH_MAX_TERM_BYTES) end = i;
        }
        if (end == start) {
            i++; /* a separator */
            continue;
        }
        size_t tl = end - start;
        int dup = 0;
        for (size_t t = 0; t < nt && !dup; t++)
            dup = term_len[t] == tl && strncasecmp(terms[t], query + start, tl) == 0;
        if (dup) continue;
        terms[nt] = query + start, term_len[nt] = tl, nt++;
        if (o) memcpy(out + o, " OR ", 4), o += 4;
        out[o++] = '"';
        memcpy(out + o, query + start, tl), o += tl; /* no '"' can be in a term */
        out[o++] = '"';
    }
    if (nt == 0) {
        free(out);
        return LM_OK;
    }
    out[o] = '\0';
    *expr = out;
    return LM_OK;
}
