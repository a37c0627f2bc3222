#include "llmos/init.h"

#include "../base/checked.h"
#include "../base/hash.h"
#include "../base/rng.h"
#include "llmos/gguf.h"
#include "llmos/tokenizer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LM_PI 3.14159265358979323846

typedef struct tensor_plan {
    char name[LM_GGUF_MAX_NAME];
    int64_t ne0, ne1; /* ne1 == 1: a norm vector */
    float std;        /* 0: all ones */
    void *data;
} tensor_plan;

/* Rows of a matrix: N(0, std) through Box-Muller, one stream per row, then quantised. */
static lm_status fill_matrix(tensor_plan *p, uint64_t seed, uint64_t index, lm_type type, int n_threads, lm_error *err) {
    size_t row_bytes = lm_type_row_size(type, p->ne0), total;
    if (lm_mul_overflow_size(row_bytes, (size_t)p->ne1, &total)) return lm_error_set(err, LM_ERR_LIMIT, "'%s' is too large", p->name);
    if (!(p->data = malloc(total ? total : 1))) return lm_error_set(err, LM_ERR_NOMEM, "out of memory for '%s'", p->name);
    int failed = 0;
#pragma omp parallel num_threads(n_threads)
    {
        float *row = malloc((size_t)p->ne0 * sizeof *row);
        if (!row) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (int64_t r = 0; r < p->ne1; r++) {
            if (!row) continue;
            lm_rng rng;
            lm_rng_seed(&rng, lm_mix64(seed ^ lm_mix64(index * 0x9e3779b97f4a7c15ull + (uint64_t)r)));
            for (int64_t i = 0; i < p->ne0; i += 2) {
                double u1 = lm_rng_uniform(&rng), u2 = lm_rng_uniform(&rng);
                double mag = p->std * sqrt(-2.0 * log(u1 > 0 ? u1 : 1e-300));
                row[i] = (float)(mag * cos(2 * LM_PI * u2));
                if (i + 1 < p->ne0) row[i + 1] = (float)(mag * sin(2 * LM_PI * u2));
            }
            lm_quantize_row(type, row, (uint8_t *)p->data + (size_t)r * row_bytes, p->ne0, NULL);
        }
        free(row);
    }
    return failed ? lm_error_set(err, LM_ERR_NOMEM, "out of memory") : LM_OK;
}

/* A SentencePiece-style vocabulary: <unk> <s> </s>, the 256 byte tokens, then "▁tN". */
static lm_status synthetic_vocab(lm_gguf_writer *w, int64_t n, lm_error *err) {
    if (n < 259 || n > LM_TOKENIZER_MAX_VOCAB) return lm_error_set(err, LM_ERR_ARG, "vocabulary size %lld must be in 259..%d", (long long)n, LM_TOKENIZER_MAX_VOCAB);
    lm_str *tokens = calloc((size_t)n, sizeof *tokens);
    float *scores = calloc((size_t)n, sizeof *scores);
    int32_t *types = calloc((size_t)n, sizeof *types);
    char *arena = malloc((size_t)n * 16);
    lm_status st = LM_OK;
    if (!tokens || !scores || !types || !arena) {
        st = lm_error_set(err, LM_ERR_NOMEM, "out of memory");
        goto done;
    }
    char *p = arena;
    for (int64_t i = 0; i < n; i++) {
        int len;
        if (i == 0) len = sprintf(p, "<unk>"), types[i] = LM_TOKEN_UNKNOWN;
        else if (i == 1) len = sprintf(p, "<s>"), types[i] = LM_TOKEN_CONTROL;
        else if (i == 2) len = sprintf(p, "</s>"), types[i] = LM_TOKEN_CONTROL;
        else if (i < 259) len = sprintf(p, "<0x%02X>", (unsigned)(i - 3)), types[i] = LM_TOKEN_BYTE;
        else len = sprintf(p, "\xe2\x96\x81t%lld", (long long)i), types[i] = LM_TOKEN_NORMAL, scores[i] = (float)-i;
        tokens[i] = (lm_str){p, (uint64_t)len};
        p += len;
    }
    if (!st) st = lm_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama", err);
    if (!st) st = lm_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", tokens, (uint64_t)n, err);
    if (!st) st = lm_gguf_writer_set_arr(w, "tokenizer.ggml.scores", LM_GGUF_FLOAT32, scores, (uint64_t)n, err);
    if (!st) st = lm_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", LM_GGUF_INT32, types, (uint64_t)n, err);
    if (!st) st = lm_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0, err);
    if (!st) st = lm_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1, err);
    if (!st) st = lm_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2, err);
done:
    free(tokens);
    free(scores);
    free(types);
    free(arena);
    return st;
}

/* Copies the tokenizer.* keys of another GGUF; returns its vocabulary size. */
static lm_status copy_vocab(lm_gguf_writer *w, const char *path, int64_t *n_vocab, lm_error *err) {
    lm_gguf *g;
    lm_status st = lm_gguf_open(path, &g, err);
    if (st) return lm_error_prefix(err, st, "%s: ", path);
    lm_tokenizer *tok;
    if ((st = lm_tokenizer_load(g, &tok, err))) {
        lm_gguf_free(g);
        return lm_error_prefix(err, st, "%s: ", path);
    }
    *n_vocab = lm_tokenizer_vocab_size(tok);
    lm_tokenizer_free(tok);
    for (int64_t i = 0; i < lm_gguf_kv_count(g) && !st; i++) {
        if (strncmp(lm_gguf_key(g, i), "tokenizer.", 10) == 0) st = lm_gguf_writer_copy_kv(w, g, i, err);
    }
    lm_gguf_free(g);
    return st;
}

lm_status lm_model_init(const lm_init_params *p, const char *out_path, lm_error *err) {
    const lm_type_info *ti = lm_type_get_info(p->type);
    if (!ti || !lm_type_can_quantize(p->type) || p->type == LM_TYPE_Q8_K) {
        return lm_error_set(err, LM_ERR_ARG, "cannot write weights of type %s", ti ? ti->name : "?");
    }
    if (p->dim < 1 || p->n_layers < 1 || p->n_heads < 1 || p->ffn_dim < 1 || p->context_length < 1) {
        return lm_error_set(err, LM_ERR_ARG, "dim, layers, heads, ffn and context must be positive");
    }
    int64_t kv_heads = p->n_kv_heads > 0 ? p->n_kv_heads : p->n_heads;
    if (p->dim % p->n_heads || p->n_heads % kv_heads || (p->dim / p->n_heads) % 2) {
        return lm_error_set(err, LM_ERR_ARG, "dim %lld, heads %lld and kv heads %lld do not fit: dim must be a multiple of heads, heads of kv heads, and the head size even",
                            (long long)p->dim, (long long)p->n_heads, (long long)kv_heads);
    }
    if (p->dim % ti->block_size || p->ffn_dim % ti->block_size) {
        return lm_error_set(err, LM_ERR_ARG, "dim %lld and ffn %lld must be multiples of %s's block size %u", (long long)p->dim,
                            (long long)p->ffn_dim, ti->name, ti->block_size);
    }
    int64_t hd = p->dim / p->n_heads, kv_dim = hd * kv_heads;
    lm_gguf_writer *w = lm_gguf_writer_init();
    if (!w) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    int64_t n_vocab = p->vocab_size;
    lm_status st = p->vocab_from ? copy_vocab(w, p->vocab_from, &n_vocab, err) : synthetic_vocab(w, p->vocab_size, err);
#define TRY(call) if (!st) st = (call)
    TRY(lm_gguf_writer_set_str(w, "general.architecture", "llama", err));
    TRY(lm_gguf_writer_set_str(w, "general.name", "llmos-init", err));
    TRY(lm_gguf_writer_set_u32(w, "llama.context_length", (uint32_t)p->context_length, err));
    TRY(lm_gguf_writer_set_u32(w, "llama.embedding_length", (uint32_t)p->dim, err));
    TRY(lm_gguf_writer_set_u32(w, "llama.feed_forward_length", (uint32_t)p->ffn_dim, err));
    TRY(lm_gguf_writer_set_u32(w, "llama.attention.head_count", (uint32_t)p->n_heads, err));
    TRY(lm_gguf_writer_set_u32(w, "llama.attention.head_count_kv", (uint32_t)kv_heads, err));
    TRY(lm_gguf_writer_set_u32(w, "llama.block_count", (uint32_t)p->n_layers, err));
    TRY(lm_gguf_writer_set_u32(w, "llama.rope.dimension_count", (uint32_t)hd, err));
    TRY(lm_gguf_writer_set_f32(w, "llama.rope.freq_base", 10000.0f, err));
    TRY(lm_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f, err));
#undef TRY
    int64_t n_tensors = 3 + 9 * p->n_layers;
    tensor_plan *plan = calloc((size_t)n_tensors, sizeof *plan);
    if (!st && !plan) st = lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    if (!st) {
        float std = 0.02f, resid = (float)(0.02 / sqrt(2.0 * (double)p->n_layers));
        int64_t k = 0;
#define PLAN(nm, a, b, s) do { snprintf(plan[k].name, LM_GGUF_MAX_NAME, "%s", nm); plan[k].ne0 = (a); plan[k].ne1 = (b); plan[k].std = (s); k++; } while (0)
        PLAN("token_embd.weight", p->dim, n_vocab, std);
        PLAN("output_norm.weight", p->dim, 1, 0);
        PLAN("output.weight", p->dim, n_vocab, std);
        for (int64_t l = 0; l < p->n_layers; l++) {
            char nm[LM_GGUF_MAX_NAME];
#define LAYER(suffix, a, b, s) do { snprintf(nm, sizeof nm, "blk.%lld." suffix, (long long)l); PLAN(nm, a, b, s); } while (0)
            LAYER("attn_q.weight", p->dim, p->dim, std);
            LAYER("attn_k.weight", p->dim, kv_dim, std);
            LAYER("attn_v.weight", p->dim, kv_dim, std);
            LAYER("attn_output.weight", p->dim, p->dim, resid);
            LAYER("attn_norm.weight", p->dim, 1, 0);
            LAYER("ffn_gate.weight", p->dim, p->ffn_dim, std);
            LAYER("ffn_down.weight", p->ffn_dim, p->dim, resid);
            LAYER("ffn_up.weight", p->dim, p->ffn_dim, std);
            LAYER("ffn_norm.weight", p->dim, 1, 0);
#undef LAYER
        }
#undef PLAN
    }
    for (int64_t i = 0; i < n_tensors && !st; i++) {
        tensor_plan *t = &plan[i];
        if (p->progress) p->progress(p->progress_user, t->name, i, n_tensors);
        int64_t ne[2] = {t->ne0, t->ne1};
        if (t->ne1 == 1) { /* a norm: ones, F32 */
            float *v = malloc((size_t)t->ne0 * sizeof *v);
            if (!v) {
                st = lm_error_set(err, LM_ERR_NOMEM, "out of memory");
                break;
            }
            for (int64_t j = 0; j < t->ne0; j++) v[j] = 1.0f;
            t->data = v;
            st = lm_gguf_writer_add_tensor(w, t->name, LM_TYPE_F32, 1, ne, v, err);
        } else {
            st = fill_matrix(t, p->seed, (uint64_t)i, p->type, p->n_threads > 0 ? p->n_threads : 1, err);
            if (!st) st = lm_gguf_writer_add_tensor(w, t->name, p->type, 2, ne, t->data, err);
        }
    }
    if (!st && p->progress) p->progress(p->progress_user, "writing", n_tensors, n_tensors);
    if (!st) st = lm_gguf_writer_write_file(w, out_path, err);
    for (int64_t i = 0; plan && i < n_tensors; i++) free(plan[i].data);
    free(plan);
    lm_gguf_writer_free(w);
    return st;
}
