/* Pre-tokenization: splitting text into pieces that BPE never merges across,
 * with one or more PCRE2 regular expressions (Unicode properties, JIT).
 *
 * With several expressions, each one splits the pieces the previous one made
 * (as llama.cpp's unicode_regex_split does): matches become pieces and so do
 * the unmatched gaps between them, so no byte of the input is ever dropped.
 * Each piece is matched as a subject of its own (look-arounds stop at its
 * edges). Invalid UTF-8 never matches and ends up in gap pieces. */
#ifndef LLMOS_PRETOK_H
#define LLMOS_PRETOK_H

#include "llmos/base.h"

#define LM_PRETOK_MAX_PATTERNS 8

typedef struct lm_pretok lm_pretok;

/* A named pre-tokenizer: its expressions and the flags llama.cpp sets. */
typedef struct lm_pretok_def {
    const char *names; /* comma-separated tokenizer.ggml.pre values */
    const char *patterns[LM_PRETOK_MAX_PATTERNS];
    int ignore_merges; /* a pre-token that is itself a token is emitted whole */
    int add_bos;       /* default for tokenizer.ggml.add_bos_token */
} lm_pretok_def;

/* NULL when the name is unknown; an empty name means "default". */
const lm_pretok_def *lm_pretok_find_def(const char *name, size_t len);

lm_status lm_pretok_compile(const char *const *patterns, size_t n_patterns, lm_pretok **out, lm_error *err);
/* The expressions llama.cpp uses for tokenizer.ggml.pre = name;
 * LM_ERR_UNSUPPORTED naming it when unknown. */
lm_status lm_pretok_for_name(const char *name, size_t name_len, lm_pretok **out, lm_error *err);
void lm_pretok_free(lm_pretok *p);

/* Calls piece(user, ptr, len) for every piece in order. A piece callback
 * that fails sets its own message and returns its status, which stops the
 * split and is returned; a regex past its match limit gives LM_ERR_LIMIT. */
typedef lm_status (*lm_pretok_piece_fn)(void *user, const char *piece, size_t len);
lm_status lm_pretok_split(const lm_pretok *p, const char *text, size_t len, lm_pretok_piece_fn piece, void *user,
                          lm_error *err);

/* The tokenizer.ggml.pre name whose expressions are exactly this one
 * pattern (GPT-2's in either common spelling -> "gpt-2", GPT-4's ->
 * "llama-bpe"), or NULL. */
const char *lm_pretok_name_for_pattern(const char *pattern);

/* GPT-2's split expression and GPT-4's (cl100k, also Llama 3's). */
extern const char *const lm_pretok_gpt2_pattern;
extern const char *const lm_pretok_gpt4_pattern;

#endif
