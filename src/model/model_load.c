/* Reads the hyper-parameters from metadata, checks them against each other,
 * and binds every weight to its tensor in the mapped file after checking its
 * type and exact shape; then re-lays the matrices for the x16 kernels. */
#define _DEFAULT_SOURCE /* madvise */
#include "model_internal.h"

#include "../base/checked.h"
#include "../base/pool.h"
#include "../tensor/kernels.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Sizes beyond these are not a model this engine can run; they keep every
 * product below in range. */
#define MAX_DIM (1 << 20)
#define MAX_LAYERS 4096
#define MAX_CONTEXT (1 << 24)

static lm_status arch_u64(const lm_gguf *g, const char *arch, const char *suffix, int required, uint64_t *out,
                          lm_error *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return required ? lm_gguf_require_u64(g, key, out, err) : lm_gguf_optional_u64(g, key, out, err);
}

static lm_status arch_f64(const lm_gguf *g, const char *arch, const char *suffix, double *out, lm_error *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return lm_gguf_optional_f64(g, key, out, err);
}

static lm_status check_range(const char *what, uint64_t v, uint64_t lo, uint64_t hi, lm_error *err) {
    if (v < lo || v > hi) {
        return lm_error_set(err, LM_ERR_FORMAT, "%s = %llu is outside %llu..%llu", what, (unsigned long long)v,
                            (unsigned long long)lo, (unsigned long long)hi);
    }
    return LM_OK;
}

static lm_status read_config(const lm_gguf *g, int64_t n_vocab, lm_model_config *c, lm_error *err) {
    lm_str arch;
    lm_status st = lm_gguf_require_str(g, "general.architecture", &arch, err);
    if (st) return st;
    if (!lm_str_eq(arch, "llama")) {
        return lm_error_set(err, LM_ERR_UNSUPPORTED, "architecture '%.*s' is not supported (only llama)",
                            (int)(arch.len > 32 ? 32 : arch.len), arch.ptr);
    }
    snprintf(c->arch, sizeof c->arch, "llama");
    uint64_t dim, n_layers, n_heads, n_kv_heads, head_dim, ffn, ctx, rope_dim, v_dim;
    if ((st = arch_u64(g, c->arch, "embedding_length", 1, &dim, err))) return st;
    if ((st = arch_u64(g, c->arch, "block_count", 1, &n_layers, err))) return st;
    if ((st = arch_u64(g, c->arch, "attention.head_count", 1, &n_heads, err))) return st;
    if ((st = arch_u64(g, c->arch, "feed_forward_length", 1, &ffn, err))) return st;
    if ((st = arch_u64(g, c->arch, "context_length", 1, &ctx, err))) return st;
    if ((st = check_range("embedding_length", dim, 1, MAX_DIM, err))) return st;
    if ((st = check_range("block_count", n_layers, 1, MAX_LAYERS, err))) return st;
    if ((st = check_range("attention.head_count", n_heads, 1, dim, err))) return st;
    if ((st = check_range("feed_forward_length", ffn, 1, MAX_DIM, err))) return st;
    if ((st = check_range("context_length", ctx, 1, MAX_CONTEXT, err))) return st;
    n_kv_heads = n_heads;
    if ((st = arch_u64(g, c->arch, "attention.head_count_kv", 0, &n_kv_heads, err))) return st;
    if ((st = check_range("attention.head_count_kv", n_kv_heads, 1, n_heads, err))) return st;
    if (n_heads % n_kv_heads != 0) {
        return lm_error_set(err, LM_ERR_FORMAT, "head_count %llu is not a multiple of head_count_kv %llu",
                            (unsigned long long)n_heads, (unsigned long long)n_kv_heads);
    }
    head_dim = dim / n_heads;
    if ((st = arch_u64(g, c->arch, "attention.key_length", 0, &head_dim, err))) return st;
    v_dim = head_dim;
    if ((st = arch_u64(g, c->arch, "attention.value_length", 0, &v_dim, err))) return st;
    if ((st = check_range("attention.key_length", head_dim, 1, MAX_DIM / n_heads, err))) return st;
    if (v_dim != head_dim) {
        return lm_error_set(err, LM_ERR_UNSUPPORTED, "attention.value_length %llu differs from key_length %llu",
                            (unsigned long long)v_dim, (unsigned long long)head_dim);
    }
    rope_dim = head_dim;
    if ((st = arch_u64(g, c->arch, "rope.dimension_count", 0, &rope_dim, err))) return st;
    if ((st = check_range("rope.dimension_count", rope_dim, 0, head_dim, err))) return st;
    if (rope_dim % 2) {
        return lm_error_set(err, LM_ERR_FORMAT, "rope.dimension_count %llu must be even", (unsigned long long)rope_dim);
    }
    c->rope_base = 10000.0;
    c->norm_eps = 1e-5;
    if ((st = arch_f64(g, c->arch, "rope.freq_base", &c->rope_base, err))) return st;
    if ((st = arch_f64(g, c->arch, "attention.layer_norm_rms_epsilon", &c->norm_eps, err))) return st;
    if (!(c->rope_base > 0.0 && c->rope_base < 1e12)) {
        return lm_error_set(err, LM_ERR_FORMAT, "rope.freq_base %g is not a positive number", c->rope_base);
    }
    if (!(c->norm_eps >= 0.0 && c->norm_eps < 1.0)) {
        return lm_error_set(err, LM_ERR_FORMAT, "layer_norm_rms_epsilon %g is outside [0, 1)", c->norm_eps);
    }
    c->n_vocab = n_vocab;
    c->dim = (int64_t)dim;
    c->n_layers = (int64_t)n_layers;
    c->n_heads = (int64_t)n_heads;
    c->n_kv_heads = (int64_t)n_kv_heads;
    c->head_dim = (int64_t)head_dim;
    c->ffn_dim = (int64_t)ffn;
    c->context_length = (int64_t)ctx;
    c->rope_dim = (int64_t)rope_dim;
    return LM_OK;
}

/* Finds a tensor of exactly ne = [ne0] or [ne0, ne1] whose type the
 * engine computes with; NULL (and LM_OK) when absent and not required. */
static lm_status find_checked(const lm_gguf *g, const char *name, int64_t ne0, int64_t ne1, int required,
                              const lm_gguf_tensor **out, lm_error *err) {
    *out = NULL;
    int64_t i = lm_gguf_find_tensor(g, name);
    if (i < 0) return required ? lm_error_set(err, LM_ERR_FORMAT, "required tensor '%s' is missing", name) : LM_OK;
    const lm_gguf_tensor *t = lm_gguf_tensor_at(g, i);
    uint32_t want_dims = ne1 > 1 ? 2 : 1;
    int shape_ok = t->ne[0] == ne0 && t->ne[1] == ne1 && t->ne[2] == 1 && t->ne[3] == 1 &&
                   (t->n_dims == want_dims || (t->n_dims == 2 && want_dims == 1 && ne1 == 1));
    if (!shape_ok) {
        return lm_error_set(err, LM_ERR_FORMAT, "tensor '%s' has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld]",
                            name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3],
                            (long long)ne0, (long long)ne1);
    }
    if (!lm_type_can_dequantize(t->type)) {
        return lm_error_set(err, LM_ERR_UNSUPPORTED, "tensor '%s' has type %s, which this build cannot compute with", name,
                            lm_type_get_info(t->type)->name);
    }
    /* Block structs hold 16- and 32-bit fields. */
    if ((uintptr_t)t->data % 4 != 0) {
        return lm_error_set(err, LM_ERR_FORMAT, "tensor '%s' data is not aligned to 4 bytes", name);
    }
    *out = t;
    return LM_OK;
}

/* A matrix (ne1 rows of ne0), kept in its stored type. */
static lm_status bind_matrix(const lm_gguf *g, const char *name, int64_t ne0, int64_t ne1, int required, lm_weight *w,
                             lm_error *err) {
    const lm_gguf_tensor *t;
    memset(w, 0, sizeof *w);
    lm_status st = find_checked(g, name, ne0, ne1, required, &t, err);
    if (st || !t) return st;
    *w = (lm_weight){t->data, t->type, ne1, ne0, lm_type_row_size(t->type, ne0)};
    return LM_OK;
}

/* A vector (norm weights): used as floats, converted once if stored otherwise. */
static lm_status bind_vector(lm_model *m, const char *name, int64_t n, const float **out, lm_error *err) {
    const lm_gguf_tensor *t;
    lm_status st = find_checked(m->gguf, name, n, 1, 1, &t, err);
    if (st) return st;
    if (t->type == LM_TYPE_F32) {
        *out = t->data;
        return LM_OK;
    }
    float **owned = realloc(m->owned, (m->n_owned + 1) * sizeof *owned);
    if (!owned) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    m->owned = owned;
    float *v = malloc((size_t)n * sizeof *v);
    if (!v) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    m->owned[m->n_owned++] = v;
    if ((st = lm_dequantize_row(t->type, t->data, v, n, err))) return lm_error_prefix(err, st, "tensor '%s': ", name);
    *out = v;
    return LM_OK;
}

static lm_status bind_weights(lm_model *m, lm_error *err) {
    const lm_model_config *c = &m->cfg;
    const lm_gguf *g = m->gguf;
    int64_t q_dim = c->n_heads * c->head_dim, kv_dim = c->n_kv_heads * c->head_dim;
    lm_status st;
    if ((st = bind_matrix(g, "token_embd.weight", c->dim, c->n_vocab, 1, &m->tok_embd, err))) return st;
    if ((st = bind_vector(m, "output_norm.weight", c->dim, &m->output_norm, err))) return st;
    if ((st = bind_matrix(g, "output.weight", c->dim, c->n_vocab, 0, &m->output, err))) return st;
    m->cfg.tied_output = m->output.data == NULL;
    if (!m->output.data) m->output = m->tok_embd;
    m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
    if (!m->layers) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    for (int64_t l = 0; l < c->n_layers; l++) {
        layer_weights *w = &m->layers[l];
        char name[LM_GGUF_MAX_NAME];
#define NAME(suffix) (snprintf(name, sizeof name, "blk.%lld." suffix, (long long)l), name)
#define MATRIX(field, suffix, ne0, ne1) \
    if ((st = bind_matrix(g, NAME(suffix), (ne0), (ne1), 1, &w->field, err))) return st;
        if ((st = bind_vector(m, NAME("attn_norm.weight"), c->dim, &w->attn_norm, err))) return st;
        if ((st = bind_vector(m, NAME("ffn_norm.weight"), c->dim, &w->ffn_norm, err))) return st;
        MATRIX(wq, "attn_q.weight", c->dim, q_dim)
        MATRIX(wk, "attn_k.weight", c->dim, kv_dim)
        MATRIX(wv, "attn_v.weight", c->dim, kv_dim)
        MATRIX(wo, "attn_output.weight", q_dim, c->dim)
        MATRIX(w_gate, "ffn_gate.weight", c->dim, c->ffn_dim)
        MATRIX(w_up, "ffn_up.weight", c->dim, c->ffn_dim)
        MATRIX(w_down, "ffn_down.weight", c->ffn_dim, c->dim)
#undef MATRIX
#undef NAME
    }
    return LM_OK;
}

/* One buffer for all packed matrices: 2 MiB aligned and marked for
 * transparent huge pages, so filling it faults 2 MiB at a time rather than
 * 4 KiB (with packing then on two threads, loading the 1.1B Q8_0 model took
 * 3.4 s with 4 KiB pages, 0.7 s with these) and decoding streams it with
 * fewer TLB misses. One buffer,
 * not one per matrix: rounding each up to 2 MiB would waste up to 2 MiB a
 * matrix of resident memory. */
static void *alloc_packed(size_t bytes) {
    const size_t huge = (size_t)2 << 20;
    size_t rounded = (bytes + huge - 1) / huge * huge;
    if (rounded < bytes) return NULL;
    void *p = aligned_alloc(huge, rounded);
    if (p) madvise(p, rounded, MADV_HUGEPAGE);
    return p;
}

/* Re-lays each matrix whose type the kernels have an x16 layout for
 * (packed.h), unless LLMOS_REPACK=0. The copies replace the file's bytes,
 * whose pages are then released, so resident memory stays about the file's
 * size. If memory runs out the matrices stay as they are: slower, still
 * correct. */
static void pack_matrices(lm_model *m) {
    const char *env = getenv("LLMOS_REPACK");
    if (env && strcmp(env, "0") == 0) return;
    const lm_kernels *k = lm_kernels_best();
    const int64_t n_layers = m->cfg.n_layers;
    lm_weight **list = malloc((1 + 7 * (size_t)n_layers) * sizeof *list);
    if (!list) return;
    size_t count = 0, total = 0;
    /* The output matrix even when tied: token lookups then read rows of the
     * x16 copy (tok_embd stays a view of the file, read a row at a time). */
    list[count++] = &m->output;
    for (int64_t l = 0; l < n_layers; l++) {
        layer_weights *w = &m->layers[l];
        lm_weight *ws[7] = {&w->wq, &w->wk, &w->wv, &w->wo, &w->w_gate, &w->w_up, &w->w_down};
        for (int i = 0; i < 7; i++) list[count++] = ws[i];
    }
    size_t *offset = malloc(count * sizeof *offset);
    for (size_t i = 0; offset && i < count; i++) {
        const lm_weight *w = list[i];
        size_t bytes = k->dot_x16[w->type] ? lm_x16_size(w->type, w->rows, w->cols) : 0;
        offset[i] = bytes ? total : SIZE_MAX;
        if (bytes && lm_add_overflow_size(total, (bytes + 63) & ~(size_t)63, &total)) total = SIZE_MAX;
    }
    uint8_t *arena = offset && total && total != SIZE_MAX ? alloc_packed(total) : NULL;
    if (arena) {
        /* On every core, in the worker pool that will run the model (an
         * OpenMP team here outlived the load: libgomp, counting more
         * threads than CPUs once the server's worker started its own, then
         * slept at every barrier, and decoding ran at half speed). */
        const int threads = lm_cpu_count();
        for (size_t i = 0; i < count; i++) {
            lm_weight *w = list[i];
            if (offset[i] == SIZE_MAX) continue;
            lm_x16_pack(w->type, w->data, w->rows, w->cols, arena + offset[i], threads);
            lm_gguf_release_pages(m->gguf, w->data, (size_t)w->rows * w->row_bytes);
            w->data = arena + offset[i];
            w->layout = LM_LAYOUT_X16;
        }
        m->packed = arena;
    }
    free(offset);
    free(list);
}

lm_status lm_model_load_gguf(lm_gguf *g, lm_model **out, lm_error *err) {
    *out = NULL;
    lm_model *m = calloc(1, sizeof *m);
    if (!m) {
        lm_gguf_free(g);
        return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    }
    m->gguf = g;
    lm_status st = lm_tokenizer_load(g, &m->tokenizer, err);
    if (!st) st = read_config(g, lm_tokenizer_vocab_size(m->tokenizer), &m->cfg, err);
    if (!st) st = bind_weights(m, err);
    if (!st) pack_matrices(m);
    if (st) {
        lm_model_free(m);
        return st;
    }
    *out = m;
    return LM_OK;
}

lm_status lm_model_load(const char *path, lm_model **out, lm_error *err) {
    lm_gguf *g;
    *out = NULL;
    lm_status st = lm_gguf_open(path, &g, err);
    if (st) return st;
    return lm_model_load_gguf(g, out, err);
}

void lm_model_free(lm_model *m) {
    if (!m) return;
    lm_model_lora_free(m); /* before the layers, which point at its factors */
    lm_tokenizer_free(m->tokenizer);
    lm_gguf_free(m->gguf);
    free(m->layers);
    for (size_t i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    free(m->packed);
    free(m);
}

const lm_model_config *lm_model_get_config(const lm_model *m) { return &m->cfg; }
const lm_tokenizer *lm_model_get_tokenizer(const lm_model *m) { return m->tokenizer; }
const lm_gguf *lm_model_get_gguf(const lm_model *m) { return m->gguf; }
