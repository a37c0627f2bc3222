/* Loads the vocabulary from GGUF metadata and validates it: array element
 * types and lengths, special token ids inside the vocabulary. */
#include "tokenizer_internal.h"

#include "../base/checked.h"

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

/* A special token id: absent -> *out unchanged; present -> must be in the
 * vocabulary. */
static lm_status get_token_id(const lm_gguf *g, const char *key, int32_t n_vocab, int32_t *out, lm_error *err) {
    uint64_t v = UINT64_MAX;
    lm_status st = lm_gguf_optional_u64(g, key, &v, err);
    if (st) return st;
    if (v == UINT64_MAX) return LM_OK;
    if (v >= (uint64_t)n_vocab) {
        return lm_error_set(err, LM_ERR_FORMAT, "metadata '%s' = %llu is outside the vocabulary (%d tokens)", key,
                            (unsigned long long)v, n_vocab);
    }
    *out = (int32_t)v;
    return LM_OK;
}

static lm_status load(const lm_gguf *g, lm_tokenizer *tok, lm_error *err) {
    lm_str model;
    lm_status st = lm_gguf_require_str(g, "tokenizer.ggml.model", &model, err);
    if (st) return st;
    if (lm_str_eq(model, "llama")) {
        tok->family = FAMILY_SPM;
    } else {
        return lm_error_set(err, LM_ERR_UNSUPPORTED, "tokenizer model '%.*s' is not supported", (int)(model.len > 64 ? 64 : model.len),
                            model.ptr);
    }
    int64_t i_tokens, i_scores, i_types;
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
        if (i_scores >= 0) tok->scores[i] = (float)lm_gguf_get_f64(g, i_scores, i);
        int64_t type = i_types >= 0 ? lm_gguf_get_i64(g, i_types, i) : LM_TOKEN_NORMAL;
        if (type < LM_TOKEN_UNDEFINED || type > LM_TOKEN_BYTE) {
            return lm_error_set(err, LM_ERR_FORMAT, "token %llu has unknown token type %lld", (unsigned long long)i,
                                (long long)type);
        }
        tok->types[i] = (uint8_t)type;
    }
    tok->text_offset[n] = off;
    for (int b = 0; b < 256; b++) tok->byte_to_id[b] = -1;
    for (uint64_t i = 0; i < n; i++) {
        const char *t = tok->text_arena + tok->text_offset[i];
        size_t len = (size_t)(tok->text_offset[i + 1] - tok->text_offset[i]);
        if (lm_strmap_put(&tok->text_to_id, t, len, (int32_t)i) < 0) {
            return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
        }
        if (tok->types[i] == LM_TOKEN_BYTE) {
            int v = parse_byte_token(t, len);
            if (v < 0) {
                return lm_error_set(err, LM_ERR_FORMAT, "byte token %llu is not of the form <0xNN>", (unsigned long long)i);
            }
            if (tok->byte_to_id[v] < 0) tok->byte_to_id[v] = (int32_t)i;
        }
    }

    tok->bos = tok->eos = tok->eot = tok->unk = -1;
    if (tok->family == FAMILY_SPM) {
        tok->add_bos = 1;
        tok->add_space_prefix = 1;
    }
    if ((st = get_token_id(g, "tokenizer.ggml.bos_token_id", tok->n_vocab, &tok->bos, err))) return st;
    if ((st = get_token_id(g, "tokenizer.ggml.eos_token_id", tok->n_vocab, &tok->eos, err))) return st;
    if ((st = get_token_id(g, "tokenizer.ggml.eot_token_id", tok->n_vocab, &tok->eot, err))) return st;
    if ((st = get_token_id(g, "tokenizer.ggml.unknown_token_id", tok->n_vocab, &tok->unk, err))) return st;
    if ((st = lm_gguf_optional_bool(g, "tokenizer.ggml.add_bos_token", &tok->add_bos, err))) return st;
    if ((st = lm_gguf_optional_bool(g, "tokenizer.ggml.add_eos_token", &tok->add_eos, err))) return st;
    if ((st = lm_gguf_optional_bool(g, "tokenizer.ggml.add_space_prefix", &tok->add_space_prefix, err))) return st;
    if (tok->add_bos && tok->bos < 0) tok->add_bos = 0;
    return LM_OK;
}

lm_status lm_tokenizer_load(const lm_gguf *g, lm_tokenizer **out, lm_error *err) {
    *out = NULL;
    lm_tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    lm_status st = load(g, tok, err);
    if (st) {
        lm_tokenizer_free(tok);
        return lm_error_prefix(err, "tokenizer: ");
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
    uint64_t max = 3; /* the unknown-token glyph */
    for (int32_t i = 0; i < tok->n_vocab; i++) {
        uint64_t len = tok->text_offset[i + 1] - tok->text_offset[i];
        if (len > max) max = len;
    }
    return (size_t)max;
}

lm_token_type lm_tokenizer_token_type(const lm_tokenizer *tok, int32_t id) {
    if (id < 0 || id >= tok->n_vocab) return LM_TOKEN_UNDEFINED;
    return (lm_token_type)tok->types[id];
}

lm_str lm_tokenizer_token_text(const lm_tokenizer *tok, int32_t id) {
    lm_str s = {"", 0};
    if (id < 0 || id >= tok->n_vocab) return s;
    s.ptr = tok->text_arena + tok->text_offset[id];
    s.len = tok->text_offset[id + 1] - tok->text_offset[id];
    return s;
}
