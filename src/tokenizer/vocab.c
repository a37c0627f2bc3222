/* Loads a tokenizer from GGUF metadata and validates it: array element
 * types and lengths, token types, special token ids inside the vocabulary,
 * BPE merges that name real tokens. */
#include "tokenizer_internal.h"

#include "../base/checked.h"
#include "../base/hash.h"
#include "unicode.h"

#include <stdlib.h>
#include <string.h>

static lm_status get_array(const lm_gguf *g, const char *key, lm_gguf_type want, uint64_t n, int required,
                           int64_t *index, lm_error *err) {
    *index = lm_gguf_find_key(g, key);
    if (*index < 0) {
        return required ? lm_error_set(err, LM_ERR_FORMAT, "required metadata '%s' is missing", key) : LM_OK;
    }
    if (lm_gguf_kv_type(g, *index) != LM_GGUF_ARRAY || lm_gguf_arr_type(g, *index) != want) {
        return lm_error_set(err, LM_ERR_FORMAT, "metadata '%s' must be an array of %s", key, lm_gguf_type_name(want));
    }
    if (n != UINT64_MAX && lm_gguf_arr_len(g, *index) != n) {
        return lm_error_set(err, LM_ERR_FORMAT, "metadata '%s' has %llu entries, the vocabulary has %llu", key,
                            (unsigned long long)lm_gguf_arr_len(g, *index), (unsigned long long)n);
    }
    return LM_OK;
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* "<0xNN>" -> NN, else -1. */
static int parse_byte_token(const char *t, size_t len) {
    if (len != 6 || memcmp(t, "<0x", 3) != 0 || t[5] != '>') return -1;
    int hi = hex_digit(t[3]), lo = hex_digit(t[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

/* A special token id: absent, or -1 stored as u32/u64 (llama.cpp's "none"),
 * leaves *out unchanged; anything else must be inside the vocabulary. */
static lm_status get_token_id(const lm_gguf *g, const char *key, int32_t n_vocab, int32_t *out, lm_error *err) {
    uint64_t v = UINT64_MAX;
    lm_status st = lm_gguf_optional_u64(g, key, &v, err);
    if (st) return st;
    if (v == UINT64_MAX || v == UINT32_MAX) return LM_OK;
    if (v >= (uint64_t)n_vocab) {
        return lm_error_set(err, LM_ERR_FORMAT, "metadata '%s' = %llu is outside the vocabulary (%d tokens)", key,
                            (unsigned long long)v, n_vocab);
    }
    *out = (int32_t)v;
    return LM_OK;
}

lm_str lm_tok_text(const lm_tokenizer *tok, int32_t id) {
    lm_str s = {tok->text_arena + tok->text_offset[id], tok->text_offset[id + 1] - tok->text_offset[id]};
    return s;
}

int32_t lm_tok_find(const lm_tokenizer *tok, const char *text, size_t len) {
    return lm_strmap_get(&tok->text_to_id, text, len);
}

static lm_status load_tokens(const lm_gguf *g, lm_tokenizer *tok, lm_error *err) {
    int64_t i_tokens, i_scores, i_types;
    lm_status st;
    if ((st = get_array(g, "tokenizer.ggml.tokens", LM_GGUF_STRING, UINT64_MAX, 1, &i_tokens, err))) return st;
    uint64_t n = lm_gguf_arr_len(g, i_tokens);
    if (n == 0 || n > LM_TOKENIZER_MAX_VOCAB) {
        return lm_error_set(err, LM_ERR_FORMAT, "vocabulary size %llu is outside 1..%d", (unsigned long long)n,
                            LM_TOKENIZER_MAX_VOCAB);
    }
    tok->n_vocab = (int32_t)n;
    if ((st = get_array(g, "tokenizer.ggml.scores", LM_GGUF_FLOAT32, n, 0, &i_scores, err))) return st;
    if ((st = get_array(g, "tokenizer.ggml.token_type", LM_GGUF_INT32, n, 0, &i_types, err))) return st;

    uint64_t total = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (lm_add_overflow_u64(total, lm_gguf_get_str(g, i_tokens, i).len, &total)) {
            return lm_error_set(err, LM_ERR_FORMAT, "vocabulary text too large");
        }
    }
    tok->text_arena = malloc((size_t)total + 1);
    tok->text_offset = malloc((size_t)(n + 1) * sizeof *tok->text_offset);
    tok->scores = calloc((size_t)n, sizeof *tok->scores);
    tok->types = malloc((size_t)n);
    if (!tok->text_arena || !tok->text_offset || !tok->scores || !tok->types ||
        lm_strmap_init(&tok->text_to_id, (size_t)n) != 0) {
        return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    }
    uint64_t off = 0;
    for (uint64_t i = 0; i < n; i++) {
        lm_str s = lm_gguf_get_str(g, i_tokens, i);
        memcpy(tok->text_arena + off, s.ptr, (size_t)s.len);
        tok->text_offset[i] = off;
        off += s.len;
        if (s.len > tok->max_token_len) tok->max_token_len = (size_t)s.len;
        if (i_scores >= 0) tok->scores[i] = (float)lm_gguf_get_f64(g, i_scores, i);
        int64_t type = i_types >= 0 ? lm_gguf_get_i64(g, i_types, i) : LM_TOKEN_NORMAL;
        if (type < LM_TOKEN_UNDEFINED || type > LM_TOKEN_BYTE) {
            return lm_error_set(err, LM_ERR_FORMAT, "token %llu has unknown token type %lld", (unsigned long long)i,
                                (long long)type);
        }
        tok->types[i] = (uint8_t)type;
    }
    tok->text_offset[n] = off;
    for (uint64_t i = 0; i < n; i++) {
        lm_str s = lm_tok_text(tok, (int32_t)i);
        /* Duplicate texts keep their first id, as llama.cpp's map does. */
        if (lm_strmap_put(&tok->text_to_id, s.ptr, (size_t)s.len, (int32_t)i) < 0) {
            return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
        }
    }
    return LM_OK;
}

/* SPM byte-fallback tokens <0xNN>. */
static lm_status index_byte_tokens(lm_tokenizer *tok, lm_error *err) {
    for (int32_t i = 0; i < tok->n_vocab; i++) {
        if (tok->types[i] != LM_TOKEN_BYTE) continue;
        lm_str s = lm_tok_text(tok, i);
        int v = parse_byte_token(s.ptr, (size_t)s.len);
        if (v < 0) return lm_error_set(err, LM_ERR_FORMAT, "byte token %d is not of the form <0xNN>", i);
        if (tok->byte_to_id[v] < 0) tok->byte_to_id[v] = i;
    }
    return LM_OK;
}

/* BPE: the byte tokens, the merge table and the pre-tokenizer. */
static lm_status load_bpe(const lm_gguf *g, lm_tokenizer *tok, lm_error *err) {
    for (int b = 0; b < 256; b++) {
        char text[4];
        size_t n = lm_utf8_encode(lm_byte_to_unicode((uint8_t)b), text);
        tok->byte_to_id[b] = lm_tok_find(tok, text, n);
    }
    int64_t i_merges;
    lm_status st = get_array(g, "tokenizer.ggml.merges", LM_GGUF_STRING, UINT64_MAX, 1, &i_merges, err);
    if (st) return st;
    uint64_t n = lm_gguf_arr_len(g, i_merges);
    if (n > INT32_MAX / 4) return lm_error_set(err, LM_ERR_FORMAT, "%llu merges is too many", (unsigned long long)n);
    size_t cap = 16;
    while (cap < 2 * n + 2) cap *= 2;
    tok->merges = calloc(cap, sizeof *tok->merges);
    if (!tok->merges) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    tok->merge_cap = cap;
    for (uint64_t r = 0; r < n; r++) {
        lm_str m = lm_gguf_get_str(g, i_merges, r);
        /* "left right": split at the first space after the first byte (llama.cpp). */
        const char *sp = m.len > 1 ? memchr(m.ptr + 1, ' ', (size_t)m.len - 1) : NULL;
        if (!sp) return lm_error_set(err, LM_ERR_FORMAT, "merge %llu is not of the form 'left right'", (unsigned long long)r);
        size_t ll = (size_t)(sp - m.ptr), rl = (size_t)m.len - ll - 1;
        int32_t a = lm_tok_find(tok, m.ptr, ll), b = lm_tok_find(tok, sp + 1, rl), result = -1;
        if (a >= 0 && b >= 0 && ll + rl <= tok->max_token_len) {
            char *joined = malloc(ll + rl + 1);
            if (!joined) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
            memcpy(joined, m.ptr, ll);
            memcpy(joined + ll, sp + 1, rl);
            result = lm_tok_find(tok, joined, ll + rl);
            free(joined);
        }
        if (result < 0) continue; /* a merge that cannot produce a token never applies */
        uint64_t key = lm_pair_key(a, b);
        size_t j = (size_t)lm_mix64(key) & (cap - 1);
        while (tok->merges[j].key && tok->merges[j].key != key) j = (j + 1) & (cap - 1);
        if (tok->merges[j].key) continue; /* duplicate: the first (best) rank stays */
        tok->merges[j] = (merge_slot){key, (int32_t)r, result};
    }
    lm_str pre = {"", 0};
    int64_t i_pre = lm_gguf_find_key(g, "tokenizer.ggml.pre");
    if (i_pre >= 0 && (st = lm_gguf_require_str(g, "tokenizer.ggml.pre", &pre, err))) return st;
    const lm_pretok_def *def = lm_pretok_find_def(pre.ptr, (size_t)pre.len);
    if (!def) {
        return lm_error_set(err, LM_ERR_UNSUPPORTED, "unknown pre-tokenizer '%.*s' (tokenizer.ggml.pre)",
                            (int)(pre.len > 64 ? 64 : pre.len), pre.ptr);
    }
    tok->ignore_merges = def->ignore_merges;
    tok->add_bos = def->add_bos;
    /* llmos's own tokenizers with a custom split expression carry it. */
    int64_t i_re = lm_gguf_find_key(g, "tokenizer.llmos.split_regex");
    if (i_re >= 0) {
        lm_str re;
        if ((st = lm_gguf_require_str(g, "tokenizer.llmos.split_regex", &re, err))) return st;
        char *pattern = malloc((size_t)re.len + 1);
        if (!pattern) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
        memcpy(pattern, re.ptr, (size_t)re.len);
        pattern[re.len] = '\0';
        if (strlen(pattern) != re.len) st = lm_error_set(err, LM_ERR_FORMAT, "tokenizer.llmos.split_regex contains a NUL byte");
        const char *patterns[1] = {pattern};
        if (!st) st = lm_pretok_compile(patterns, 1, &tok->pretok, err);
        free(pattern);
        return st;
    }
    return lm_pretok_for_name(pre.ptr, (size_t)pre.len, &tok->pretok, err);
}

static int cmp_special(const void *a, const void *b, void *tok_) {
    const lm_tokenizer *tok = tok_;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    uint64_t lx = lm_tok_text(tok, x).len, ly = lm_tok_text(tok, y).len;
    if (lx != ly) return lx > ly ? -1 : 1;
    return (x > y) - (x < y);
}

/* Insertion sort keeps this free of qsort_r (not ISO C); special token
 * lists are short. */
static void sort_specials(lm_tokenizer *tok) {
    for (size_t i = 1; i < tok->n_specials; i++) {
        int32_t v = tok->specials[i];
        size_t j = i;
        while (j > 0 && cmp_special(&v, &tok->specials[j - 1], tok) < 0) {
            tok->specials[j] = tok->specials[j - 1];
            j--;
        }
        tok->specials[j] = v;
    }
}

static lm_status index_specials(lm_tokenizer *tok, lm_error *err) {
    size_t n = 0;
    for (int32_t i = 0; i < tok->n_vocab; i++) {
        uint8_t t = tok->types[i];
        if ((t == LM_TOKEN_CONTROL || t == LM_TOKEN_USER_DEFINED || t == LM_TOKEN_UNKNOWN) && lm_tok_text(tok, i).len > 0) n++;
    }
    if (n > 1u << 20) return lm_error_set(err, LM_ERR_LIMIT, "%zu special tokens is too many", n);
    tok->specials = malloc((n ? n : 1) * sizeof *tok->specials);
    if (!tok->specials) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    for (int32_t i = 0; i < tok->n_vocab; i++) {
        uint8_t t = tok->types[i];
        if ((t == LM_TOKEN_CONTROL || t == LM_TOKEN_USER_DEFINED || t == LM_TOKEN_UNKNOWN) && lm_tok_text(tok, i).len > 0) {
            tok->specials[tok->n_specials++] = i;
        }
    }
    sort_specials(tok);
    return LM_OK;
}

static lm_status load(const lm_gguf *g, lm_tokenizer *tok, lm_error *err) {
    lm_str model;
    lm_status st = lm_gguf_require_str(g, "tokenizer.ggml.model", &model, err);
    if (st) return st;
    if (lm_str_eq(model, "llama")) tok->family = FAMILY_SPM;
    else if (lm_str_eq(model, "gpt2")) tok->family = FAMILY_BPE;
    else if (lm_str_eq(model, "bert")) tok->family = FAMILY_WPM;
    else {
        return lm_error_set(err, LM_ERR_UNSUPPORTED, "tokenizer model '%.*s' is not supported (llama, gpt2, bert)",
                            (int)(model.len > 64 ? 64 : model.len), model.ptr);
    }
    if ((st = load_tokens(g, tok, err))) return st;
    for (int b = 0; b < 256; b++) tok->byte_to_id[b] = -1;
    tok->bos = tok->eos = tok->eot = tok->unk = tok->sep = -1;
    switch (tok->family) {
    case FAMILY_SPM:
        tok->add_bos = 1;
        tok->add_space_prefix = 1;
        st = index_byte_tokens(tok, err);
        break;
    case FAMILY_BPE:
        st = load_bpe(g, tok, err);
        break;
    case FAMILY_WPM:
        /* BERT's [CLS], [UNK], [SEP] unless the metadata says otherwise (llama.cpp's defaults). */
        if (tok->n_vocab > 102) {
            tok->bos = 101;
            tok->unk = 100;
            tok->sep = 102;
        }
        tok->add_bos = 1;
        break;
    }
    if (st) return st;
    if ((st = get_token_id(g, "tokenizer.ggml.bos_token_id", tok->n_vocab, &tok->bos, err))) return st;
    if ((st = get_token_id(g, "tokenizer.ggml.eos_token_id", tok->n_vocab, &tok->eos, err))) return st;
    if ((st = get_token_id(g, "tokenizer.ggml.eot_token_id", tok->n_vocab, &tok->eot, err))) return st;
    if ((st = get_token_id(g, "tokenizer.ggml.unknown_token_id", tok->n_vocab, &tok->unk, err))) return st;
    if ((st = get_token_id(g, "tokenizer.ggml.seperator_token_id", tok->n_vocab, &tok->sep, err))) return st;
    if ((st = lm_gguf_optional_bool(g, "tokenizer.ggml.add_bos_token", &tok->add_bos, err))) return st;
    if ((st = lm_gguf_optional_bool(g, "tokenizer.ggml.add_eos_token", &tok->add_eos, err))) return st;
    if ((st = lm_gguf_optional_bool(g, "tokenizer.ggml.add_space_prefix", &tok->add_space_prefix, err))) return st;
    if (tok->bos < 0) tok->add_bos = 0;
    if (tok->eos < 0) tok->add_eos = 0;
    return index_specials(tok, err);
}

lm_status lm_tokenizer_load(const lm_gguf *g, lm_tokenizer **out, lm_error *err) {
    *out = NULL;
    lm_tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    lm_status st = load(g, tok, err);
    if (st) {
        lm_tokenizer_free(tok);
        return lm_error_prefix(err, st, "tokenizer: ");
    }
    *out = tok;
    return LM_OK;
}

void lm_tokenizer_free(lm_tokenizer *tok) {
    if (!tok) return;
    free(tok->text_arena);
    free(tok->text_offset);
    free(tok->scores);
    free(tok->types);
    free(tok->merges);
    free(tok->specials);
    lm_pretok_free(tok->pretok);
    lm_strmap_free(&tok->text_to_id);
    free(tok);
}

int32_t lm_tokenizer_vocab_size(const lm_tokenizer *tok) { return tok->n_vocab; }
int32_t lm_tokenizer_bos(const lm_tokenizer *tok) { return tok->bos; }
int32_t lm_tokenizer_eos(const lm_tokenizer *tok) { return tok->eos; }
int lm_tokenizer_add_bos(const lm_tokenizer *tok) { return tok->add_bos; }

int lm_tokenizer_is_eog(const lm_tokenizer *tok, int32_t id) {
    return id >= 0 && (id == tok->eos || id == tok->eot || id == tok->bos);
}

size_t lm_tokenizer_max_piece_len(const lm_tokenizer *tok) {
    return tok->max_token_len > 3 ? tok->max_token_len : 3;
}

lm_token_type lm_tokenizer_token_type(const lm_tokenizer *tok, int32_t id) {
    if (id < 0 || id >= tok->n_vocab) return LM_TOKEN_UNDEFINED;
    return (lm_token_type)tok->types[id];
}

lm_str lm_tokenizer_token_text(const lm_tokenizer *tok, int32_t id) {
    lm_str s = {"", 0};
    if (id < 0 || id >= tok->n_vocab) return s;
    return lm_tok_text(tok, id);
}

int32_t lm_tokenizer_find(const lm_tokenizer *tok, const char *text, size_t len) {
    return lm_tok_find(tok, text, len);
}
