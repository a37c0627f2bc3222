/* LoRA adapter files (llama.cpp's adapter GGUF) in and out, and attaching an
 * adapter to a loaded model. The file is untrusted: every name, type, shape
 * and count is checked before a byte of tensor data is read, and the factors
 * are converted to F32 copies owned by the lm_lora. */
#include "llmos/lora.h"

#include "../base/checked.h"
#include "../base/strmap.h"
#include "model_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* More adapted matrices than any model this engine loads has (4096 layers x 7
 * is under this); dimensions as the model loader's MAX_DIM. */
#define MAX_LORA_TENSORS (1 << 16)
#define MAX_LORA_DIM (1 << 20)

static const char SUFFIX_A[] = ".lora_a", SUFFIX_B[] = ".lora_b";
#define SUFFIX_LEN 7

static int ends_with(const char *s, size_t n, const char *suffix) {
    size_t k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

/* ---- lm_lora basics ---- */

void lm_lora_free(lm_lora *lora) {
    if (!lora) return;
    for (int64_t i = 0; i < lora->n_tensors && lora->tensors; i++) {
        free(lora->tensors[i].a);
        free(lora->tensors[i].b);
    }
    free(lora->tensors);
    free(lora);
}

float lm_lora_scale(const lm_lora *lora, const lm_lora_tensor *t, float user_scale) {
    /* llama.cpp: alpha ? adapter_scale * alpha / rank : adapter_scale. */
    return lora->alpha != 0.0f ? user_scale * lora->alpha / (float)t->rank : user_scale;
}

/* A tensor's shape as a caller (code LM_ERR_ARG) or a file (LM_ERR_FORMAT)
 * gave it: sizes in range, rank at most min(rows, cols). */
static lm_status check_shape(const char *name, int64_t rows, int64_t cols, int64_t rank, lm_status code, lm_error *err) {
    if (rows < 1 || rows > MAX_LORA_DIM || cols < 1 || cols > MAX_LORA_DIM) {
        return lm_error_set(err, code, "LoRA tensor '%s': matrix (%lld, %lld) is outside 1..%d", name,
                            (long long)rows, (long long)cols, MAX_LORA_DIM);
    }
    int64_t max_rank = rows < cols ? rows : cols;
    if (rank < 1 || rank > max_rank) {
        return lm_error_set(err, code, "LoRA tensor '%s': rank %lld is outside 1..%lld (min of rows %lld, cols %lld)",
                            name, (long long)rank, (long long)max_rank, (long long)rows, (long long)cols);
    }
    return LM_OK;
}

/* ---- writing ---- */

static int64_t first_non_finite(const float *p, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(p[i])) return i;
    }
    return -1;
}

lm_status lm_lora_write(const char *path, const lm_lora *lora, lm_error *err) {
    if (!lora || !path) return lm_error_set(err, LM_ERR_ARG, "lm_lora_write: no adapter or path");
    if (memchr(lora->arch, 0, sizeof lora->arch) == NULL || lora->arch[0] == 0) {
        return lm_error_set(err, LM_ERR_ARG, "LoRA adapter: architecture is empty or not terminated");
    }
    if (!isfinite(lora->alpha)) return lm_error_set(err, LM_ERR_ARG, "LoRA adapter: alpha %g is not finite", lora->alpha);
    if (lora->n_tensors < 1 || lora->n_tensors > MAX_LORA_TENSORS || !lora->tensors) {
        return lm_error_set(err, LM_ERR_ARG, "LoRA adapter: %lld tensors (need 1..%d)", (long long)lora->n_tensors,
                            MAX_LORA_TENSORS);
    }
    lm_gguf_writer *w = lm_gguf_writer_init();
    if (!w) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    lm_status st = lm_gguf_writer_set_str(w, "general.architecture", lora->arch, err);
    if (!st) st = lm_gguf_writer_set_str(w, "general.type", "adapter", err);
    if (!st) st = lm_gguf_writer_set_str(w, "adapter.type", "lora", err);
    if (!st) st = lm_gguf_writer_set_f32(w, "adapter.lora.alpha", lora->alpha, err);
    for (int64_t i = 0; i < lora->n_tensors && !st; i++) {
        const lm_lora_tensor *t = &lora->tensors[i];
        const char *nul = memchr(t->name, 0, sizeof t->name);
        size_t len = nul ? (size_t)(nul - t->name) : sizeof t->name;
        if (len == 0 || len + SUFFIX_LEN > LM_GGUF_MAX_NAME - 1) {
            st = lm_error_set(err, LM_ERR_ARG, "LoRA tensor %lld: name '%.*s' is empty or longer than %d bytes",
                              (long long)i, (int)len, t->name, LM_GGUF_MAX_NAME - 1 - SUFFIX_LEN);
            break;
        }
        if ((st = check_shape(t->name, t->rows, t->cols, t->rank, LM_ERR_ARG, err))) break;
        if (!t->a || !t->b) {
            st = lm_error_set(err, LM_ERR_ARG, "LoRA tensor '%s': factor A or B is missing", t->name);
            break;
        }
        /* A diverged run's NaNs would make a file no reader accepts: say so now. */
        int64_t bad = first_non_finite(t->a, t->rank * t->cols), bad_b = first_non_finite(t->b, t->rows * t->rank);
        if (bad >= 0 || bad_b >= 0) {
            st = lm_error_set(err, LM_ERR_ARG, "LoRA tensor '%s': %s element %lld is not finite", t->name,
                              bad >= 0 ? "A" : "B", (long long)(bad >= 0 ? bad : bad_b));
            break;
        }
        char name[LM_GGUF_MAX_NAME];
        int64_t ne_a[2] = {t->cols, t->rank}, ne_b[2] = {t->rank, t->rows};
        snprintf(name, sizeof name, "%.*s%s", (int)len, t->name, SUFFIX_A);
        if ((st = lm_gguf_writer_add_tensor(w, name, LM_TYPE_F32, 2, ne_a, t->a, err))) break;
        snprintf(name, sizeof name, "%.*s%s", (int)len, t->name, SUFFIX_B);
        st = lm_gguf_writer_add_tensor(w, name, LM_TYPE_F32, 2, ne_b, t->b, err);
    }
    if (!st) st = lm_gguf_writer_write_file(w, path, err);
    lm_gguf_writer_free(w);
    return st;
}

/* ---- reading ---- */

/* A string metadata value that must be present and equal `want`. */
static lm_status require_str_eq(const lm_gguf *g, const char *key, const char *want, const char *what, lm_error *err) {
    int64_t i = lm_gguf_find_key(g, key);
    if (i < 0) return lm_error_set(err, LM_ERR_FORMAT, "not a LoRA adapter: %s is missing (%s)", key, what);
    if (lm_gguf_kv_type(g, i) != LM_GGUF_STRING) {
        return lm_error_set(err, LM_ERR_FORMAT, "not a LoRA adapter: %s has type %s, expected a string", key,
                            lm_gguf_type_name(lm_gguf_kv_type(g, i)));
    }
    lm_str s = lm_gguf_get_str(g, i, 0);
    if (!lm_str_eq(s, want)) {
        return lm_error_set(err, LM_ERR_FORMAT, "not a LoRA adapter: %s is '%.*s', expected '%s'", key,
                            (int)(s.len > 40 ? 40 : s.len), s.ptr, want);
    }
    return LM_OK;
}

static lm_status read_header(const lm_gguf *g, lm_lora *l, lm_error *err) {
    lm_status st = require_str_eq(g, "general.type", "adapter", "a model, not an adapter?", err);
    if (!st) st = require_str_eq(g, "adapter.type", "lora", "an adapter of another kind?", err);
    if (st) return st;
    lm_str arch;
    if ((st = lm_gguf_require_str(g, "general.architecture", &arch, err))) return st;
    if (arch.len == 0 || arch.len >= sizeof l->arch || memchr(arch.ptr, 0, arch.len)) {
        return lm_error_set(err, LM_ERR_FORMAT, "LoRA adapter: general.architecture is empty or longer than %d bytes",
                            (int)sizeof l->arch - 1);
    }
    memcpy(l->arch, arch.ptr, arch.len);
    l->arch[arch.len] = 0;
    double alpha = 0.0; /* absent: llama.cpp takes 0, i.e. scale = user_scale */
    if ((st = lm_gguf_optional_f64(g, "adapter.lora.alpha", &alpha, err))) return st;
    if (!isfinite(alpha) || fabs(alpha) > 1e30) {
        return lm_error_set(err, LM_ERR_FORMAT, "LoRA adapter: adapter.lora.alpha %g is not a finite f32", alpha);
    }
    l->alpha = (float)alpha;
    return LM_OK;
}

/* A factor's ggml shape is 2-D [ne0, ne1] and its type converts to F32. */
static lm_status check_factor(const lm_gguf_tensor *t, lm_error *err) {
    if (t->n_dims != 2 || t->ne[2] != 1 || t->ne[3] != 1) {
        return lm_error_set(err, LM_ERR_FORMAT, "LoRA tensor '%s' has %u dimensions, expected 2", t->name, t->n_dims);
    }
    if (!lm_type_can_dequantize(t->type)) {
        return lm_error_set(err, LM_ERR_UNSUPPORTED, "LoRA tensor '%s' has type %s, which cannot be read as F32", t->name,
                            lm_type_get_info(t->type)->name);
    }
    return LM_OK;
}

/* Converts tensor t (ne[1] rows of ne[0]) into a new F32 array, rejecting
 * values that are not finite. */
static lm_status load_factor(const lm_gguf_tensor *t, float **out, lm_error *err) {
    int64_t ne0 = t->ne[0], ne1 = t->ne[1];
    size_t n, bytes;
    if (lm_mul_overflow_size((size_t)ne0, (size_t)ne1, &n) || lm_mul_overflow_size(n, sizeof(float), &bytes)) {
        return lm_error_set(err, LM_ERR_LIMIT, "LoRA tensor '%s' is too large", t->name);
    }
    float *p = malloc(bytes ? bytes : 1);
    if (!p) return lm_error_set(err, LM_ERR_NOMEM, "out of memory reading LoRA tensor '%s'", t->name);
    size_t row_bytes = lm_type_row_size(t->type, ne0);
    for (int64_t r = 0; r < ne1; r++) {
        lm_status st = lm_dequantize_row(t->type, (const uint8_t *)t->data + (size_t)r * row_bytes, p + r * ne0, ne0, err);
        if (st) {
            free(p);
            return lm_error_prefix(err, st, "LoRA tensor '%s': ", t->name);
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(p[i])) {
            free(p);
            return lm_error_set(err, LM_ERR_FORMAT, "LoRA tensor '%s' holds a value that is not finite (element %zu)",
                                t->name, i);
        }
    }
    *out = p;
    return LM_OK;
}

/* Pairs every "X.lora_a" with "X.lora_b" (b_of[i]: the index of a's partner,
 * -1 for tensors that are not an a), counting the pairs. */
static lm_status pair_tensors(const lm_gguf *g, int64_t *b_of, int64_t *n_pairs, lm_error *err) {
    int64_t n = lm_gguf_tensor_count(g), n_b = 0;
    lm_strmap bs;
    if (lm_strmap_init(&bs, (size_t)n)) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    lm_status st = LM_OK;
    for (int64_t i = 0; i < n && !st; i++) {
        const char *name = lm_gguf_tensor_at(g, i)->name;
        size_t len = strlen(name);
        b_of[i] = -1;
        if (ends_with(name, len, SUFFIX_B)) {
            if (lm_strmap_put(&bs, name, len - SUFFIX_LEN, (int32_t)i) < 0) st = lm_error_set(err, LM_ERR_NOMEM, "out of memory");
            n_b++;
        } else if (!ends_with(name, len, SUFFIX_A) && !ends_with(name, len, "_norm.weight")) {
            st = lm_error_set(err, LM_ERR_FORMAT, "tensor '%s' is not a LoRA factor (no .lora_a or .lora_b suffix)", name);
        }
    }
    int64_t pairs = 0;
    for (int64_t i = 0; i < n && !st; i++) {
        const char *name = lm_gguf_tensor_at(g, i)->name;
        size_t len = strlen(name);
        if (!ends_with(name, len, SUFFIX_A)) continue;
        int32_t j = lm_strmap_get(&bs, name, len - SUFFIX_LEN);
        if (j < 0) {
            st = lm_error_set(err, LM_ERR_FORMAT, "LoRA tensor '%.*s' has lora_a but no lora_b", (int)(len - SUFFIX_LEN), name);
        } else {
            b_of[i] = j;
            pairs++;
        }
    }
    if (!st && pairs != n_b) {
        /* Some b has no a: name the first. */
        for (int64_t i = 0; i < n; i++) {
            const char *name = lm_gguf_tensor_at(g, i)->name;
            size_t len = strlen(name);
            if (!ends_with(name, len, SUFFIX_B)) continue;
            char a_name[LM_GGUF_MAX_NAME + 8];
            snprintf(a_name, sizeof a_name, "%.*s%s", (int)(len - SUFFIX_LEN), name, SUFFIX_A);
            if (lm_gguf_find_tensor(g, a_name) < 0) {
                st = lm_error_set(err, LM_ERR_FORMAT, "LoRA tensor '%.*s' has lora_b but no lora_a", (int)(len - SUFFIX_LEN),
                                  name);
                break;
            }
        }
        if (!st) st = lm_error_set(err, LM_ERR_FORMAT, "LoRA adapter: lora_a and lora_b tensors do not pair up");
    }
    if (!st && pairs == 0) st = lm_error_set(err, LM_ERR_FORMAT, "LoRA adapter has no lora_a/lora_b tensors");
    if (!st && pairs > MAX_LORA_TENSORS) {
        st = lm_error_set(err, LM_ERR_LIMIT, "LoRA adapter has %lld tensor pairs, more than %d", (long long)pairs,
                          MAX_LORA_TENSORS);
    }
    lm_strmap_free(&bs);
    *n_pairs = pairs;
    return st;
}

/* One pair: A ne = [cols, rank], B ne = [rank, rows] (llama.cpp checks
 * W.ne0 == A.ne0, W.ne1 == B.ne1 and A.ne1 == B.ne0). */
static lm_status read_pair(const lm_gguf_tensor *ta, const lm_gguf_tensor *tb, lm_lora_tensor *t, lm_error *err) {
    size_t base_len = strlen(ta->name) - SUFFIX_LEN;
    if (base_len == 0) return lm_error_set(err, LM_ERR_FORMAT, "LoRA tensor '%s' names no base tensor", ta->name);
    memcpy(t->name, ta->name, base_len); /* < 64 bytes: fits name[96] */
    t->name[base_len] = 0;
    if (strcmp(t->name, "token_embd.weight") == 0) {
        return lm_error_set(err, LM_ERR_UNSUPPORTED,
                            "LoRA adapters of token_embd.weight are not supported (llama.cpp stores them transposed)");
    }
    lm_status st = check_factor(ta, err);
    if (!st) st = check_factor(tb, err);
    if (st) return st;
    if (ta->ne[1] != tb->ne[0]) {
        return lm_error_set(err, LM_ERR_FORMAT,
                            "LoRA tensor '%s': lora_a is [%lld, %lld] and lora_b [%lld, %lld]; their rank (a.ne1, b.ne0) differs",
                            t->name, (long long)ta->ne[0], (long long)ta->ne[1], (long long)tb->ne[0], (long long)tb->ne[1]);
    }
    t->cols = ta->ne[0];
    t->rank = ta->ne[1];
    t->rows = tb->ne[1];
    if ((st = check_shape(t->name, t->rows, t->cols, t->rank, LM_ERR_FORMAT, err))) return st;
    if ((st = load_factor(ta, &t->a, err))) return st;
    return load_factor(tb, &t->b, err);
}

lm_status lm_lora_read_gguf(const lm_gguf *g, lm_lora **out, lm_error *err) {
    *out = NULL;
    int64_t n = lm_gguf_tensor_count(g), pairs = 0;
    lm_lora *l = calloc(1, sizeof *l);
    int64_t *b_of = malloc((size_t)(n ? n : 1) * sizeof *b_of);
    lm_status st = LM_OK;
    if (!l || !b_of) {
        st = lm_error_set(err, LM_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((st = read_header(g, l, err)) || (st = pair_tensors(g, b_of, &pairs, err))) goto done;
    if (!(l->tensors = calloc((size_t)pairs, sizeof *l->tensors))) {
        st = lm_error_set(err, LM_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int64_t i = 0; i < n && !st; i++) {
        if (b_of[i] < 0) continue;
        l->n_tensors++; /* counted first, so lm_lora_free sees a half-read pair */
        st = read_pair(lm_gguf_tensor_at(g, i), lm_gguf_tensor_at(g, b_of[i]), &l->tensors[l->n_tensors - 1], err);
    }
done:
    free(b_of);
    if (st) {
        lm_lora_free(l);
        return st;
    }
    *out = l;
    return LM_OK;
}

lm_status lm_lora_read(const char *path, lm_lora **out, lm_error *err) {
    *out = NULL;
    lm_gguf *g;
    lm_status st = lm_gguf_open(path, &g, err);
    if (st) return st;
    st = lm_lora_read_gguf(g, out, err);
    lm_gguf_free(g);
    return st;
}

/* ---- attaching to a model ---- */

void lm_model_lora_free(lm_model *m) {
    for (int64_t i = 0; i < m->n_lora; i++) free(m->lora[i].data);
    free(m->lora);
    m->lora = NULL;
    m->n_lora = 0;
    m->lora_max_rank = m->lora_max_rows = 0;
    for (int64_t l = 0; m->layers && l < m->cfg.n_layers; l++) {
        for (int k = 0; k < LORA_KINDS; k++) m->layers[l].lora[k] = NULL;
    }
}

static const char *const kind_suffix[LORA_KINDS] = {
    [LORA_Q] = "attn_q.weight",         [LORA_K] = "attn_k.weight",   [LORA_V] = "attn_v.weight",
    [LORA_O] = "attn_output.weight",    [LORA_GATE] = "ffn_gate.weight", [LORA_UP] = "ffn_up.weight",
    [LORA_DOWN] = "ffn_down.weight",
};

static const lm_weight *kind_weight(const layer_weights *w, int kind) {
    const lm_weight *ws[LORA_KINDS] = {&w->wq, &w->wk, &w->wv, &w->wo, &w->w_gate, &w->w_up, &w->w_down};
    return ws[kind];
}

/* "blk.N.<suffix>" -> layer N and the kind; 0 when the name is not one. */
static int parse_matrix_name(const char *name, int64_t n_layers, int64_t *layer, int *kind) {
    if (strncmp(name, "blk.", 4) != 0 || name[4] < '0' || name[4] > '9') return 0;
    int64_t l = 0;
    const char *p = name + 4;
    for (; *p >= '0' && *p <= '9'; p++) {
        l = l * 10 + (*p - '0');
        if (l >= n_layers) return 0;
    }
    if (*p != '.' || (p - name > 5 && name[4] == '0')) return 0; /* "blk.01." is not layer 1 */
    for (int k = 0; k < LORA_KINDS; k++) {
        if (strcmp(p + 1, kind_suffix[k]) == 0) {
            *layer = l;
            *kind = k;
            return 1;
        }
    }
    return 0;
}

lm_status lm_model_attach_lora(lm_model *m, const lm_lora *lora, float user_scale, lm_error *err) {
    if (!m || !lora) return lm_error_set(err, LM_ERR_ARG, "lm_model_attach_lora: no model or adapter");
    if (m->lora) return lm_error_set(err, LM_ERR_ARG, "the model already has a LoRA adapter attached");
    if (!isfinite(user_scale)) return lm_error_set(err, LM_ERR_ARG, "LoRA scale %g is not finite", user_scale);
    if (strncmp(lora->arch, m->cfg.arch, sizeof lora->arch) != 0) {
        return lm_error_set(err, LM_ERR_ARG, "the adapter is for architecture '%.*s', the model is '%s'",
                            (int)sizeof lora->arch, lora->arch, m->cfg.arch);
    }
    if (lora->n_tensors < 1 || lora->n_tensors > MAX_LORA_TENSORS || !lora->tensors) {
        return lm_error_set(err, LM_ERR_ARG, "the adapter has %lld tensors", (long long)lora->n_tensors);
    }
    /* Check everything before changing the model. */
    int64_t *where = malloc((size_t)lora->n_tensors * sizeof *where); /* layer * LORA_KINDS + kind */
    uint8_t *seen = calloc((size_t)m->cfg.n_layers * LORA_KINDS, 1);
    lora_factors *f = calloc((size_t)lora->n_tensors, sizeof *f);
    lm_status st = LM_OK;
    if (!where || !seen || !f) st = lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    int64_t max_rank = 0, max_rows = 0;
    for (int64_t i = 0; i < lora->n_tensors && !st; i++) {
        const lm_lora_tensor *t = &lora->tensors[i];
        char name[sizeof t->name + 1];
        snprintf(name, sizeof name, "%.*s", (int)sizeof t->name, t->name);
        int64_t layer;
        int kind;
        if (!parse_matrix_name(name, m->cfg.n_layers, &layer, &kind)) {
            if (strcmp(name, "output.weight") == 0 || strcmp(name, "token_embd.weight") == 0) {
                st = lm_error_set(err, LM_ERR_UNSUPPORTED,
                                  "the adapter changes %s, which is not adapted at run time (merge it with 'llmos lora merge')",
                                  name);
            } else {
                st = lm_error_set(err, LM_ERR_ARG, "the adapter's tensor '%s' names no adaptable matrix of the model", name);
            }
            break;
        }
        const lm_weight *w = kind_weight(&m->layers[layer], kind);
        if (t->rows != w->rows || t->cols != w->cols) {
            st = lm_error_set(err, LM_ERR_ARG, "the adapter's '%s' is (%lld, %lld), the model's matrix is (%lld, %lld)", name,
                              (long long)t->rows, (long long)t->cols, (long long)w->rows, (long long)w->cols);
            break;
        }
        if ((st = check_shape(name, t->rows, t->cols, t->rank, LM_ERR_ARG, err))) break;
        if (!t->a || !t->b) {
            st = lm_error_set(err, LM_ERR_ARG, "the adapter's '%s' lacks factor A or B", name);
            break;
        }
        where[i] = layer * LORA_KINDS + kind;
        if (seen[where[i]]++) {
            st = lm_error_set(err, LM_ERR_ARG, "the adapter changes '%s' twice", name);
            break;
        }
        size_t na = (size_t)(t->rank * t->cols), nb = (size_t)(t->rows * t->rank); /* < 2^40 by check_shape */
        float *data = malloc((na + nb) * sizeof *data);
        if (!data) {
            st = lm_error_set(err, LM_ERR_NOMEM, "out of memory copying the adapter's '%s'", name);
            break;
        }
        memcpy(data, t->a, na * sizeof *data);
        memcpy(data + na, t->b, nb * sizeof *data);
        f[i].data = data;
        f[i].a = (lm_weight){data, LM_TYPE_F32, t->rank, t->cols, (size_t)t->cols * sizeof(float)};
        f[i].b = (lm_weight){data + na, LM_TYPE_F32, t->rows, t->rank, (size_t)t->rank * sizeof(float)};
        f[i].scale = lm_lora_scale(lora, t, user_scale);
        if (t->rank > max_rank) max_rank = t->rank;
        if (t->rows > max_rows) max_rows = t->rows;
    }
    if (st) {
        for (int64_t i = 0; f && i < lora->n_tensors; i++) free(f[i].data);
        free(f);
    } else {
        m->lora = f;
        m->n_lora = lora->n_tensors;
        m->lora_max_rank = max_rank;
        m->lora_max_rows = max_rows;
        for (int64_t i = 0; i < lora->n_tensors; i++) {
            m->layers[where[i] / LORA_KINDS].lora[where[i] % LORA_KINDS] = &f[i];
        }
    }
    free(where);
    free(seen);
    return st;
}

lm_status lm_model_attach_lora_file(lm_model *m, const char *path, float user_scale, lm_error *err) {
    lm_lora *l;
    lm_status st = lm_lora_read(path, &l, err);
    if (st) return st;
    st = lm_model_attach_lora(m, l, user_scale, err);
    lm_lora_free(l);
    return st;
}
