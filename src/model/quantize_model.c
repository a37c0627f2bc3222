#include "llmos/quantize.h"

#include "../base/checked.h"
#include "llmos/types.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct scheme {
    const char *name;
    lm_type base;
    int k_mix;         /* q4_K_M / q5_K_M rules */
    uint32_t ftype;    /* llama.cpp's LLAMA_FTYPE for general.file_type */
} scheme;

static const scheme schemes[] = {
    {"f32", LM_TYPE_F32, 0, 0},     {"f16", LM_TYPE_F16, 0, 1},     {"bf16", LM_TYPE_BF16, 0, 32},
    {"q4_0", LM_TYPE_Q4_0, 0, 2},   {"q4_1", LM_TYPE_Q4_1, 0, 3},   {"q8_0", LM_TYPE_Q8_0, 0, 7},
    {"q5_0", LM_TYPE_Q5_0, 0, 8},   {"q5_1", LM_TYPE_Q5_1, 0, 9},   {"q4_K", LM_TYPE_Q4_K, 0, 14},
    {"q5_K", LM_TYPE_Q5_K, 0, 16},  {"q6_K", LM_TYPE_Q6_K, 0, 18},  {"q4_K_M", LM_TYPE_Q4_K, 1, 15},
    {"q5_K_M", LM_TYPE_Q5_K, 1, 17},
};

static const scheme *find_scheme(const char *name) {
    for (size_t i = 0; i < sizeof schemes / sizeof *schemes; i++) {
        if (strcasecmp(schemes[i].name, name) == 0) return &schemes[i];
    }
    return NULL;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* llama.cpp's use_more_bits: the first and last eighth, and every third layer between. */
static int use_more_bits(int64_t i, int64_t n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

/* The layer number of "blk.N.something", or -1. */
static int64_t layer_of(const char *name) {
    if (strncmp(name, "blk.", 4) != 0) return -1;
    char *end;
    long long v = strtoll(name + 4, &end, 10);
    return end != name + 4 && *end == '.' ? v : -1;
}

/* The type llama.cpp's rules give this tensor. */
static lm_type choose_type(const scheme *s, const char *name, int64_t n_layers, int tied) {
    if (!s->k_mix) return s->base;
    if (strcmp(name, "output.weight") == 0 || (tied && strcmp(name, "token_embd.weight") == 0)) return LM_TYPE_Q6_K;
    int64_t layer = layer_of(name);
    if (layer >= 0 && (ends_with(name, "attn_v.weight") || ends_with(name, "ffn_down.weight")) &&
        use_more_bits(layer, n_layers)) {
        return LM_TYPE_Q6_K;
    }
    return s->base;
}

/* A type whose blocks divide the row, as llama.cpp falls back. */
static lm_type fit_row(lm_type t, int64_t ne0) {
    while (ne0 % lm_type_get_info(t)->block_size != 0) {
        switch (t) {
        case LM_TYPE_Q4_K: t = LM_TYPE_Q5_0; break;
        case LM_TYPE_Q5_K: t = LM_TYPE_Q5_1; break;
        case LM_TYPE_Q6_K: t = LM_TYPE_Q8_0; break;
        default: t = LM_TYPE_F16; break;
        }
    }
    return t;
}

/* Quantises rows of a tensor (any dequantisable source type) in parallel. */
static lm_status quantize_tensor(const lm_gguf_tensor *t, lm_type to, void *out, int n_threads, lm_error *err) {
    int64_t ne0 = t->ne[0], rows = (int64_t)(t->n_elements / (uint64_t)ne0);
    size_t in_row = lm_type_row_size(t->type, ne0), out_row = lm_type_row_size(to, ne0);
    int failed = 0;
#pragma omp parallel num_threads(n_threads)
    {
        float *buf = malloc((size_t)ne0 * sizeof *buf);
        if (!buf) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 16)
        for (int64_t r = 0; r < rows; r++) {
            if (!buf) continue;
            lm_dequantize_row(t->type, (const uint8_t *)t->data + (size_t)r * in_row, buf, ne0, NULL);
            lm_quantize_row(to, buf, (uint8_t *)out + (size_t)r * out_row, ne0, NULL);
        }
        free(buf);
    }
    return failed ? lm_error_set(err, LM_ERR_NOMEM, "out of memory") : LM_OK;
}

lm_status lm_quantize_model(const char *in_path, const char *out_path, const lm_quantize_params *params,
                            lm_quantize_stats *stats, lm_error *err) {
    lm_quantize_stats local;
    if (!stats) stats = &local;
    memset(stats, 0, sizeof *stats);
    const scheme *s = find_scheme(params->scheme ? params->scheme : "");
    if (!s) {
        return lm_error_set(err, LM_ERR_ARG,
                            "unknown quantization type '%s' (f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_K, q5_K, q6_K, q4_K_M, q5_K_M)",
                            params->scheme ? params->scheme : "");
    }
    int n_threads = params->n_threads > 0 ? params->n_threads : 1;
    lm_gguf *g;
    lm_status st = lm_gguf_open(in_path, &g, err);
    if (st) return st;
    int64_t n = lm_gguf_tensor_count(g);
    void **buffers = calloc((size_t)(n ? n : 1), sizeof *buffers);
    lm_gguf_writer *w = lm_gguf_writer_init();
    if (!buffers || !w) {
        st = lm_error_set(err, LM_ERR_NOMEM, "out of memory");
        goto done;
    }
    uint64_t n_layers = 0;
    lm_str arch;
    if (lm_gguf_require_str(g, "general.architecture", &arch, NULL) == LM_OK && arch.len < 64) {
        char key[96];
        snprintf(key, sizeof key, "%.*s.block_count", (int)arch.len, arch.ptr);
        lm_gguf_optional_u64(g, key, &n_layers, NULL);
    }
    int tied = lm_gguf_find_tensor(g, "output.weight") < 0;
    for (int64_t i = 0; i < lm_gguf_kv_count(g) && !st; i++) {
        const char *key = lm_gguf_key(g, i);
        if (strcmp(key, "general.file_type") == 0 || strcmp(key, "general.quantization_version") == 0) continue;
        st = lm_gguf_writer_copy_kv(w, g, i, err);
    }
    if (!st && lm_gguf_alignment(g) != LM_GGUF_DEFAULT_ALIGNMENT) {
        st = lm_gguf_writer_set_alignment(w, (uint32_t)lm_gguf_alignment(g), err);
    }
    if (!st) st = lm_gguf_writer_set_u32(w, "general.quantization_version", 2, err);
    if (!st) st = lm_gguf_writer_set_u32(w, "general.file_type", s->ftype, err);
    for (int64_t i = 0; i < n && !st; i++) {
        const lm_gguf_tensor *t = lm_gguf_tensor_at(g, i);
        if (params->progress) params->progress(params->progress_user, t->name, i, n);
        stats->bytes_in += t->n_bytes;
        int is_matrix = t->n_dims >= 2 && ends_with(t->name, ".weight") && lm_type_can_dequantize(t->type);
        lm_type to = is_matrix ? choose_type(s, t->name, (int64_t)n_layers, tied) : t->type;
        if (is_matrix) {
            lm_type fitted = fit_row(to, t->ne[0]);
            if (fitted != to) stats->n_fallback++;
            to = fitted;
        }
        const void *data = t->data;
        if (to != t->type) {
            size_t row = lm_type_row_size(to, t->ne[0]), total;
            if (lm_mul_overflow_size(row, (size_t)(t->n_elements / (uint64_t)t->ne[0]), &total)) {
                st = lm_error_set(err, LM_ERR_LIMIT, "tensor '%s' is too large", t->name);
                break;
            }
            if (!(buffers[i] = malloc(total ? total : 1))) {
                st = lm_error_set(err, LM_ERR_NOMEM, "out of memory quantizing '%s'", t->name);
                break;
            }
            if ((st = quantize_tensor(t, to, buffers[i], n_threads, err))) break;
            data = buffers[i];
            stats->n_quantized++;
        } else {
            stats->n_kept++;
        }
        st = lm_gguf_writer_add_tensor(w, t->name, to, t->n_dims, t->ne, data, err);
        stats->bytes_out += lm_type_row_size(to, t->ne[0]) * (t->n_elements / (uint64_t)t->ne[0]);
    }
    if (!st && params->progress) params->progress(params->progress_user, "writing", n, n);
    if (!st) st = lm_gguf_writer_write_file(w, out_path, err);
done:
    for (int64_t i = 0; i < n && buffers; i++) free(buffers[i]);
    free(buffers);
    lm_gguf_writer_free(w);
    lm_gguf_free(g);
    return st;
}
