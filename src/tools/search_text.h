/* The text side of document search (llmos/search.h): UTF-8 cleaning, passage
 * splitting and the query → FTS5 MATCH expression. Pure functions, no SQLite. */
#ifndef LLMOS_SEARCH_TEXT_H
#define LLMOS_SEARCH_TEXT_H

#include "llmos/base.h"

#include <stddef.h>

typedef struct lm_search_span {
    size_t start, len; /* bytes of the text */
} lm_search_span;

/* Length of the valid UTF-8 sequence at s (1..4), 0 if invalid (overlong,
 * surrogate, past U+10FFFF, truncated). */
size_t lm_search_utf8_seq(const unsigned char *s, size_t n);

/* The longest prefix of s[0..len) of at most max bytes that ends on a
 * character boundary (s is valid UTF-8). */
size_t lm_search_utf8_prefix(const char *s, size_t len, size_t max);

/* A malloc'd NUL-terminated copy of s with each invalid byte replaced by
 * U+FFFD; NULL when out of memory. */
char *lm_search_utf8_clean(const char *s, size_t len, size_t *out_len);

/* Passages of text (valid UTF-8), in order; *spans malloc'd (NULL if none). */
lm_status lm_search_split(const char *text, size_t len, lm_search_span **spans, size_t *n, lm_error *err);

/* The MATCH expression for an untrusted query ("\"a\" OR \"b\""), malloc'd;
 * *expr is NULL when the query has no terms. */
lm_status lm_search_match_expr(const char *query, size_t len, char **expr, lm_error *err);

#endif
