/* A copy of a model GGUF with control tokens appended to its vocabulary
 * and its embedding (and untied output) grown to match (llmos/vocab_grow.h). */
#include "llmos/vocab_grow.h"

#include "../base/checked.h"
#include "llmos/gguf.h"
#include "llmos/tokenizer.h"
#include "llmos/types.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static lm_status check_tokens(const char *const *tokens, size_t n, int32_t eot, lm_error *err) {
    if (n == 0 || n > LM_VOCAB_GROW_MAX_TOKENS) {
        return lm_error_set(err, LM_ERR_ARG, "%zu new tokens: give 1 to %d", n, LM_VOCAB_GROW_MAX_TOKENS);
    }
    if (eot < -1 || (eot >= 0 && (size_t)eot >= n)) {
        return lm_error_set(err, LM_ERR_ARG, "end-of-turn index %d is outside the %zu new tokens", (int)eot, n);
    }
    for (size_t i = 0; i < n; i++) {
        if (!tokens[i]) return lm_error_set(err, LM_ERR_ARG, "new token %zu is NULL", i);
        size_t len = strnlen(tokens[i], LM_VOCAB_GROW_MAX_TOKEN_LEN + 1);
        if (len == 0 || len > LM_VOCAB_GROW_MAX_TOKEN_LEN) {
            return lm_error_set(err, LM_ERR_ARG, "new token %zu is empty or longer than %d bytes", i,
                                LM_VOCAB_GROW_MAX_TOKEN_LEN);
        }
        for (size_t k = 0; k < len; k++) {
            unsigned char c = (unsigned char)tokens[i][k];
            if (c <= ' ' || c == 0x7f) {
                return lm_error_set(err, LM_ERR_ARG, "new token '%s' holds white space or a control character", tokens[i]);
            }
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(tokens[i], tokens[j]) == 0) return lm_error_set(err, LM_ERR_ARG, "new token '%s' is given twice", tokens[i]);
        }
    }
    return LM_OK;
}

/* (rows + n, cols) f32: the tensor's rows dequantised, then n copies of their mean. */
static lm_status grow_matrix(const lm_gguf_tensor *t, int64_t rows, size_t n, float **out, lm_error *err) {
    *out = NULL;
    if (t->n_dims != 2 || t->ne[1] != rows || t->ne[2] != 1 || t->ne[3] != 1) {
        return lm_error_set(err, LM_ERR_FORMAT, "tensor '%s' has shape [%lld, %lld], expected %lld rows (the vocabulary)",
                            t->name, (long long)t->ne[0], (long long)t->ne[1], (long long)rows);
    }
    const int64_t cols = t->ne[0];
    size_t row_bytes = lm_type_row_size(t->type, cols), cells, bytes;
    if (!lm_type_can_dequantize(t->type) || row_bytes == 0) {
        const lm_type_info *ti = lm_type_get_info(t->type);
        return lm_error_set(err, LM_ERR_UNSUPPORTED, "tensor '%s' has type %s, which cannot be converted", t->name,
                            ti ? ti->name : "?");
    }
    if (lm_mul_overflow_size((size_t)rows + n, (size_t)cols, &cells) || lm_mul_overflow_size(cells, sizeof(float), &bytes)) {
        return lm_error_set(err, LM_ERR_LIMIT, "tensor '%s' is too large to grow", t->name);
    }
    float *w = malloc(bytes);
    double *sum = calloc((size_t)cols, sizeof *sum);
    if (!w || !sum) {
        free(w), free(sum);
        return lm_error_set(err, LM_ERR_NOMEM, "out of memory growing '%s'", t->name);
    }
    lm_status st = LM_OK;
    for (int64_t r = 0; r < rows && !st; r++) {
        float *row = w + (size_t)r * (size_t)cols;
        st = lm_dequantize_row(t->type, (const uint8_t *)t->data + (size_t)r * row_bytes, row, cols, err);
        for (int64_t c = 0; c < cols && !st; c++) sum[c] += row[c];
    }
    for (size_t k = 0; k < n && !st; k++) {
        float *row = w + ((size_t)rows + k) * (size_t)cols;
        for (int64_t c = 0; c < cols; c++) row[c] = (float)(sum[c] / (double)rows);
    }
    free(sum);
    if (st) {
        free(w);
        return lm_error_prefix(err, st, "tensor '%s': ", t->name);
    }
    *out = w;
    return LM_OK;
}

/* The tokenizer arrays with the new tokens appended, set on the writer. */
static lm_status set_vocab(lm_gguf_writer *w, const lm_gguf *g, int64_t V, const char *const *tokens, size_t n,
                           lm_error *err) {
    const size_t total = (size_t)V + n;
    int64_t i_tok = lm_gguf_find_key(g, "tokenizer.ggml.tokens"), i_sc = lm_gguf_find_key(g, "tokenizer.ggml.scores"),
            i_ty = lm_gguf_find_key(g, "tokenizer.ggml.token_type");
    lm_str *strs = malloc(total * sizeof *strs);
    int32_t *types = malloc(total * sizeof *types);
    float *scores = i_sc >= 0 ? malloc(total * sizeof *scores) : NULL;
    lm_status st = LM_OK;
    if (!strs || !types || (i_sc >= 0 && !scores)) st = lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < total && !st; i++) {
        if (i < (size_t)V) {
            strs[i] = lm_gguf_get_str(g, i_tok, i);
            types[i] = i_ty >= 0 ? (int32_t)lm_gguf_get_i64(g, i_ty, i) : LM_TOKEN_NORMAL;
            if (scores) scores[i] = (float)lm_gguf_get_f64(g, i_sc, i);
        } else {
            strs[i] = (lm_str){tokens[i - (size_t)V], strlen(tokens[i - (size_t)V])};
            types[i] = LM_TOKEN_CONTROL;
            if (scores) scores[i] = 0.0f;
        }
    }
    if (!st) st = lm_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", strs, total, err);
    if (!st) st = lm_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", LM_GGUF_INT32, types, total, err);
    if (!st && scores) st = lm_gguf_writer_set_arr(w, "tokenizer.ggml.scores", LM_GGUF_FLOAT32, scores, total, err);
    free(strs);
    free(types);
    free(scores);
    return st;
}

/* {arch}.vocab_size and tokenizer.ggml.eot_token_id. */
static lm_status set_counts(lm_gguf_writer *w, const lm_gguf *g, int64_t V, size_t n, int32_t eot, lm_error *err) {
    int64_t i_arch = lm_gguf_find_key(g, "general.architecture");
    lm_status st = LM_OK;
    if (i_arch >= 0 && lm_gguf_kv_type(g, i_arch) == LM_GGUF_STRING) {
        lm_str arch = lm_gguf_get_str(g, i_arch, 0);
        char key[128];
        if (arch.len <= 64 && memchr(arch.ptr, 0, (size_t)arch.len) == NULL) {
            snprintf(key, sizeof key, "%.*s.vocab_size", (int)arch.len, arch.ptr);
            if (lm_gguf_find_key(g, key) >= 0) st = lm_gguf_writer_set_u32(w, key, (uint32_t)((size_t)V + n), err);
        }
    }
    if (!st && eot >= 0) {
        uint64_t old = UINT64_MAX;
        st = lm_gguf_optional_u64(g, "tokenizer.ggml.eot_token_id", &old, err);
        if (!st && (old == UINT64_MAX || old == UINT32_MAX)) {
            st = lm_gguf_writer_set_u32(w, "tokenizer.ggml.eot_token_id", (uint32_t)(V + eot), err);
        }
    }
    return st;
}

static lm_status grow(const lm_gguf *g, const char *out_path, const char *const *tokens, size_t n, int32_t eot,
                      lm_error *err) {
    lm_tokenizer *tok;
    lm_status st = lm_tokenizer_load(g, &tok, err);
    if (st) return st;
    const int64_t V = lm_tokenizer_vocab_size(tok);
    for (size_t i = 0; i < n && !st; i++) {
        int32_t id = lm_tokenizer_find(tok, tokens[i], strlen(tokens[i]));
        if (id >= 0) st = lm_error_set(err, LM_ERR_ARG, "'%s' is already token %d of the vocabulary", tokens[i], (int)id);
    }
    lm_tokenizer_free(tok);
    if (st) return st;
    if ((uint64_t)V + n > LM_TOKENIZER_MAX_VOCAB) {
        return lm_error_set(err, LM_ERR_LIMIT, "a vocabulary of %lld + %zu tokens is above %d", (long long)V, n,
                            LM_TOKENIZER_MAX_VOCAB);
    }
    lm_gguf_writer *w = lm_gguf_writer_init();
    if (!w) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    float *grown[2] = {NULL, NULL};
    size_t n_grown = 0;
    for (int64_t i = 0; i < lm_gguf_kv_count(g) && !st; i++) st = lm_gguf_writer_copy_kv(w, g, i, err);
    if (!st) st = set_vocab(w, g, V, tokens, n, err);
    if (!st) st = set_counts(w, g, V, n, eot, err);
    for (int64_t i = 0; i < lm_gguf_tensor_count(g) && !st; i++) {
        const lm_gguf_tensor *t = lm_gguf_tensor_at(g, i);
        if ((strcmp(t->name, "token_embd.weight") == 0 || strcmp(t->name, "output.weight") == 0) && n_grown < 2) {
            st = grow_matrix(t, V, n, &grown[n_grown], err);
            int64_t ne[2] = {t->ne[0], V + (int64_t)n};
            if (!st) st = lm_gguf_writer_add_tensor(w, t->name, LM_TYPE_F32, 2, ne, grown[n_grown++], err);
        } else {
            st = lm_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, err);
        }
    }
    if (!st) st = lm_gguf_writer_write_file(w, out_path, err);
    lm_gguf_writer_free(w);
    free(grown[0]);
    free(grown[1]);
    return st;
}

lm_status lm_vocab_grow(const char *in_path, const char *out_path, const char *const *tokens, size_t n, int32_t eot,
                        lm_error *err) {
    lm_status st = check_tokens(tokens, n, eot, err);
    if (st) return st;
    if (strcmp(in_path, out_path) == 0) return lm_error_set(err, LM_ERR_ARG, "%s: the grown copy must go to another file", in_path);
    lm_gguf *g;
    if ((st = lm_gguf_open(in_path, &g, err))) return lm_error_prefix(err, st, "%s: ", in_path);
    st = grow(g, out_path, tokens, n, eot, err);
    lm_gguf_free(g);
    if (st) return lm_error_prefix(err, st, "growing %s: ", in_path);
    return LM_OK;
}
