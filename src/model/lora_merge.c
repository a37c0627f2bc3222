/* lm_lora_merge: a base GGUF plus an adapter -> one GGUF whose adapted
 * matrices are W + scale * B A in F32 (llama.cpp's llama-export-lora does
 * the same); everything else is copied as it is. */
#include "llmos/lora.h"

#include "../base/checked.h"
#include "../base/strmap.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* out (rows, cols) = W + scale * B A, W dequantised row by row:
 * out[r, :] = W[r, :] + sum_k (scale * B[r, k]) A[k, :]. */
static lm_status merge_tensor(const lm_gguf_tensor *w, const lm_lora_tensor *t, float scale, float *out, int n_threads,
                              lm_error *err) {
    const int64_t rows = t->rows, cols = t->cols, rank = t->rank;
    const size_t row_bytes = lm_type_row_size(w->type, cols);
    int failed = 0;
    (void)n_threads; /* unused without OpenMP */
#pragma omp parallel for num_threads(n_threads) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        float *o = out + r * cols;
        if (lm_dequantize_row(w->type, (const uint8_t *)w->data + (size_t)r * row_bytes, o, cols, NULL)) {
#pragma omp atomic write
            failed = 1;
            continue;
        }
        for (int64_t k = 0; k < rank; k++) {
            const float c = scale * t->b[r * rank + k];
            const float *a = t->a + k * cols;
            for (int64_t j = 0; j < cols; j++) o[j] += c * a[j];
        }
    }
    if (failed) return lm_error_set(err, LM_ERR_FORMAT, "tensor '%s': cannot convert %s to F32", w->name,
                                    lm_type_get_info(w->type)->name);
    return LM_OK;
}

/* The base tensor an adapter tensor changes, checked. */
static lm_status check_target(const lm_gguf *g, const lm_lora_tensor *t, lm_error *err) {
    int64_t i = lm_gguf_find_tensor(g, t->name);
    if (i < 0) {
        return lm_error_set(err, LM_ERR_ARG, "the adapter changes '%s', which the base model does not have%s", t->name,
                            strcmp(t->name, "output.weight") == 0 ? " (its output is tied to token_embd)" : "");
    }
    const lm_gguf_tensor *w = lm_gguf_tensor_at(g, i);
    if (w->n_dims != 2 || w->ne[0] != t->cols || w->ne[1] != t->rows) {
        return lm_error_set(err, LM_ERR_ARG, "the adapter's '%s' is (%lld, %lld), the base tensor's ggml shape is [%lld, %lld, %lld, %lld]",
                            t->name, (long long)t->rows, (long long)t->cols, (long long)w->ne[0], (long long)w->ne[1],
                            (long long)w->ne[2], (long long)w->ne[3]);
    }
    if (!lm_type_can_dequantize(w->type)) {
        return lm_error_set(err, LM_ERR_UNSUPPORTED, "base tensor '%s' has type %s, which cannot be converted to F32",
                            t->name, lm_type_get_info(w->type)->name);
    }
    return LM_OK;
}

lm_status lm_lora_merge(const char *base_path, const char *adapter_path, const char *out_path,
                        const lm_lora_merge_params *params, lm_error *err) {
    lm_lora_merge_params p = params ? *params : (lm_lora_merge_params){1.0f, 1, NULL, NULL};
    if (!isfinite(p.scale)) return lm_error_set(err, LM_ERR_ARG, "LoRA scale %g is not finite", p.scale);
    if (p.n_threads < 1) p.n_threads = 1;
    lm_lora *l = NULL;
    lm_gguf *g = NULL;
    lm_gguf_writer *w = NULL;
    float **buffers = NULL;
    int64_t n = 0;
    lm_strmap adapted = {0};
    lm_status st = lm_lora_read(adapter_path, &l, err);
    if (st) return lm_error_prefix(err, st, "adapter %s: ", adapter_path);
    if ((st = lm_gguf_open(base_path, &g, err))) {
        st = lm_error_prefix(err, st, "base %s: ", base_path);
        goto done;
    }
    lm_str arch;
    if ((st = lm_gguf_require_str(g, "general.architecture", &arch, err))) goto done;
    if (!lm_str_eq(arch, l->arch)) {
        st = lm_error_set(err, LM_ERR_ARG, "the adapter is for architecture '%s', the base model is '%.*s'", l->arch,
                          (int)(arch.len > 32 ? 32 : arch.len), arch.ptr);
        goto done;
    }
    int64_t gt = lm_gguf_find_key(g, "general.type");
    if (gt >= 0 && lm_gguf_kv_type(g, gt) == LM_GGUF_STRING && lm_str_eq(lm_gguf_get_str(g, gt, 0), "adapter")) {
        st = lm_error_set(err, LM_ERR_ARG, "the base %s is itself an adapter", base_path);
        goto done;
    }
    for (int64_t i = 0; i < l->n_tensors && !st; i++) st = check_target(g, &l->tensors[i], err);
    if (st) goto done;
    /* adapter tensor name -> index (names are unique: they come in pairs from a GGUF) */
    if (lm_strmap_init(&adapted, (size_t)l->n_tensors)) {
        st = lm_error_set(err, LM_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int64_t i = 0; i < l->n_tensors && !st; i++) {
        if (lm_strmap_put(&adapted, l->tensors[i].name, strlen(l->tensors[i].name), (int32_t)i) < 0) {
            st = lm_error_set(err, LM_ERR_NOMEM, "out of memory");
        }
    }
    if (st) goto done;
    n = lm_gguf_tensor_count(g);
    buffers = calloc((size_t)(n ? n : 1), sizeof *buffers);
    w = lm_gguf_writer_init();
    if (!buffers || !w) {
        st = lm_error_set(err, LM_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int64_t i = 0; i < lm_gguf_kv_count(g) && !st; i++) st = lm_gguf_writer_copy_kv(w, g, i, err);
    if (!st && lm_gguf_alignment(g) != LM_GGUF_DEFAULT_ALIGNMENT) {
        st = lm_gguf_writer_set_alignment(w, (uint32_t)lm_gguf_alignment(g), err);
    }
    for (int64_t i = 0; i < n && !st; i++) {
        const lm_gguf_tensor *bt = lm_gguf_tensor_at(g, i);
        int32_t k = lm_strmap_get(&adapted, bt->name, strlen(bt->name));
        const lm_lora_tensor *t = k >= 0 ? &l->tensors[k] : NULL;
        if (!t) {
            st = lm_gguf_writer_add_tensor(w, bt->name, bt->type, bt->n_dims, bt->ne, bt->data, err);
            continue;
        }
        if (p.progress) p.progress(p.progress_user, bt->name, i, n);
        size_t count, bytes;
        if (lm_mul_overflow_size((size_t)t->rows, (size_t)t->cols, &count) || lm_mul_overflow_size(count, sizeof(float), &bytes)) {
            st = lm_error_set(err, LM_ERR_LIMIT, "tensor '%s' is too large", bt->name);
            break;
        }
        if (!(buffers[i] = malloc(bytes))) {
            st = lm_error_set(err, LM_ERR_NOMEM, "out of memory merging '%s'", bt->name);
            break;
        }
        if ((st = merge_tensor(bt, t, lm_lora_scale(l, t, p.scale), buffers[i], p.n_threads, err))) break;
        st = lm_gguf_writer_add_tensor(w, bt->name, LM_TYPE_F32, 2, bt->ne, buffers[i], err);
    }
    if (!st && p.progress) p.progress(p.progress_user, "writing", n, n);
    if (!st) st = lm_gguf_writer_write_file(w, out_path, err);
done:
    lm_strmap_free(&adapted);
    for (int64_t i = 0; buffers && i < n; i++) free(buffers[i]);
    free(buffers);
    lm_gguf_writer_free(w);
    lm_gguf_free(g);
    lm_lora_free(l);
    return st;
}
