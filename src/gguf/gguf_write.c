/* GGUF writer: collects metadata and borrowed tensor data, then serialises
 * them in one pass, to a file (atomically) or to memory. The layout matches
 * what llama.cpp's gguf writer produces: tensors in insertion order, each
 * padded to the alignment. */
#include "gguf_internal.h"

#include "../base/checked.h"
#include "llmos/file.h"

#include <stdlib.h>
#include <string.h>

typedef struct writer_kv {
    char *key;
    lm_gguf_type type;
    uint8_t *value; /* the serialised value exactly as it goes in the file */
    size_t value_len;
} writer_kv;

typedef struct writer_tensor {
    char *name;
    lm_type type;
    uint32_t n_dims;
    int64_t ne[LM_GGUF_MAX_DIMS];
    uint64_t n_bytes;
    const void *data;
} writer_tensor;

struct lm_gguf_writer {
    writer_kv *kvs;
    size_t n_kv, cap_kv;
    writer_tensor *tensors;
    size_t n_tensors, cap_tensors;
    uint32_t alignment;
};

/* A growable byte buffer used to serialise values and headers. */
typedef struct buf {
    uint8_t *p;
    size_t len, cap;
    int failed;
} buf;

static void buf_put(buf *b, const void *data, size_t n) {
    if (b->failed || n == 0) return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n) cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}
static void buf_u32(buf *b, uint32_t v) { buf_put(b, &v, 4); }
static void buf_u64(buf *b, uint64_t v) { buf_put(b, &v, 8); }
static void buf_str(buf *b, const char *s, uint64_t n) {
    buf_u64(b, n);
    buf_put(b, s, (size_t)n);
}

lm_gguf_writer *lm_gguf_writer_init(void) {
    lm_gguf_writer *w = calloc(1, sizeof *w);
    if (w) w->alignment = LM_GGUF_DEFAULT_ALIGNMENT;
    return w;
}

void lm_gguf_writer_free(lm_gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kvs[i].key);
        free(w->kvs[i].value);
    }
    for (size_t i = 0; i < w->n_tensors; i++) free(w->tensors[i].name);
    free(w->kvs);
    free(w->tensors);
    free(w);
}

/* Takes ownership of the value buffer in all cases. */
static lm_status set_kv(lm_gguf_writer *w, const char *key, lm_gguf_type type, buf *value, lm_error *err) {
    if (value->failed) {
        free(value->p);
        return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    }
    if (!lm_gguf_valid_name(key, strlen(key), LM_GGUF_MAX_KEY_LEN)) {
        free(value->p);
        return lm_error_set(err, LM_ERR_ARG, "invalid metadata key");
    }
    for (size_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kvs[i].key, key) == 0) {
            free(w->kvs[i].value);
            w->kvs[i].type = type;
            w->kvs[i].value = value->p;
            w->kvs[i].value_len = value->len;
            return LM_OK;
        }
    }
    if (w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? w->cap_kv * 2 : 16;
        writer_kv *p = realloc(w->kvs, cap * sizeof *p);
        if (!p) {
            free(value->p);
            return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
        }
        w->kvs = p;
        w->cap_kv = cap;
    }
    char *k = strdup(key);
    if (!k) {
        free(value->p);
        return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    }
    w->kvs[w->n_kv++] = (writer_kv){k, type, value->p, value->len};
    return LM_OK;
}

static lm_status set_scalar(lm_gguf_writer *w, const char *key, lm_gguf_type t, const void *v, lm_error *err) {
    buf b = {0};
    buf_put(&b, v, lm_gguf_type_size(t));
    return set_kv(w, key, t, &b, err);
}

lm_status lm_gguf_writer_set_u32(lm_gguf_writer *w, const char *key, uint32_t v, lm_error *err) {
    return set_scalar(w, key, LM_GGUF_UINT32, &v, err);
}
lm_status lm_gguf_writer_set_i32(lm_gguf_writer *w, const char *key, int32_t v, lm_error *err) {
    return set_scalar(w, key, LM_GGUF_INT32, &v, err);
}
lm_status lm_gguf_writer_set_u64(lm_gguf_writer *w, const char *key, uint64_t v, lm_error *err) {
    return set_scalar(w, key, LM_GGUF_UINT64, &v, err);
}
lm_status lm_gguf_writer_set_f32(lm_gguf_writer *w, const char *key, float v, lm_error *err) {
    return set_scalar(w, key, LM_GGUF_FLOAT32, &v, err);
}
lm_status lm_gguf_writer_set_bool(lm_gguf_writer *w, const char *key, int v, lm_error *err) {
    uint8_t b = v ? 1 : 0;
    return set_scalar(w, key, LM_GGUF_BOOL, &b, err);
}
lm_status lm_gguf_writer_set_strn(lm_gguf_writer *w, const char *key, lm_str v, lm_error *err) {
    buf b = {0};
    buf_str(&b, v.ptr, v.len);
    return set_kv(w, key, LM_GGUF_STRING, &b, err);
}
lm_status lm_gguf_writer_set_str(lm_gguf_writer *w, const char *key, const char *v, lm_error *err) {
    lm_str s = {v, strlen(v)};
    return lm_gguf_writer_set_strn(w, key, s, err);
}

lm_status lm_gguf_writer_set_arr(lm_gguf_writer *w, const char *key, lm_gguf_type t, const void *data,
                                 uint64_t n, lm_error *err) {
    size_t es = lm_gguf_type_size(t);
    uint64_t bytes;
    if (es == 0) return lm_error_set(err, LM_ERR_ARG, "array of %s needs a fixed-size type", lm_gguf_type_name(t));
    if (lm_mul_overflow_u64(n, es, &bytes) || bytes > SIZE_MAX) return lm_error_set(err, LM_ERR_LIMIT, "array too large");
    buf b = {0};
    buf_u32(&b, (uint32_t)t);
    buf_u64(&b, n);
    buf_put(&b, data, (size_t)bytes);
    return set_kv(w, key, LM_GGUF_ARRAY, &b, err);
}

lm_status lm_gguf_writer_set_arr_str(lm_gguf_writer *w, const char *key, const lm_str *strs, uint64_t n,
                                     lm_error *err) {
    buf b = {0};
    buf_u32(&b, LM_GGUF_STRING);
    buf_u64(&b, n);
    for (uint64_t i = 0; i < n; i++) buf_str(&b, strs[i].ptr, strs[i].len);
    return set_kv(w, key, LM_GGUF_ARRAY, &b, err);
}

lm_status lm_gguf_writer_copy_kv(lm_gguf_writer *w, const lm_gguf *g, int64_t i, lm_error *err) {
    const char *key = lm_gguf_key(g, i);
    if (strcmp(key, "general.alignment") == 0) return lm_gguf_writer_set_alignment(w, (uint32_t)lm_gguf_alignment(g), err);
    lm_gguf_type t = lm_gguf_kv_type(g, i), at = lm_gguf_arr_type(g, i);
    uint64_t n = lm_gguf_arr_len(g, i);
    if (at == LM_GGUF_STRING) {
        buf b = {0};
        if (t == LM_GGUF_ARRAY) {
            buf_u32(&b, LM_GGUF_STRING);
            buf_u64(&b, n);
        }
        for (uint64_t j = 0; j < n; j++) {
            lm_str s = lm_gguf_get_str(g, i, j);
            buf_str(&b, s.ptr, s.len);
        }
        return set_kv(w, key, t, &b, err);
    }
    if (t == LM_GGUF_ARRAY) return lm_gguf_writer_set_arr(w, key, at, lm_gguf_arr_data(g, i), n, err);
    return set_scalar(w, key, t, lm_gguf_arr_data(g, i), err);
}

lm_status lm_gguf_writer_set_alignment(lm_gguf_writer *w, uint32_t alignment, lm_error *err) {
    if (alignment == 0 || (alignment & (alignment - 1))) {
        return lm_error_set(err, LM_ERR_ARG, "alignment %u is not a power of two", alignment);
    }
    w->alignment = alignment;
    return lm_gguf_writer_set_u32(w, "general.alignment", alignment, err);
}

lm_status lm_gguf_writer_add_tensor(lm_gguf_writer *w, const char *name, lm_type type, uint32_t n_dims,
                                    const int64_t *ne, const void *data, lm_error *err) {
    const lm_type_info *ti = lm_type_get_info(type);
    if (!ti) return lm_error_set(err, LM_ERR_ARG, "tensor '%s': unknown type %u", name, (unsigned)type);
    if (!lm_gguf_valid_name(name, strlen(name), LM_GGUF_MAX_NAME - 1)) {
        return lm_error_set(err, LM_ERR_ARG, "tensor name '%s' is empty or too long", name);
    }
    if (n_dims == 0 || n_dims > LM_GGUF_MAX_DIMS) {
        return lm_error_set(err, LM_ERR_ARG, "tensor '%s': %u dimensions", name, n_dims);
    }
    for (size_t i = 0; i < w->n_tensors; i++) {
        if (strcmp(w->tensors[i].name, name) == 0) {
            return lm_error_set(err, LM_ERR_ARG, "duplicate tensor name '%s'", name);
        }
    }
    writer_tensor t = {0};
    uint64_t n_el = 1;
    for (uint32_t d = 0; d < LM_GGUF_MAX_DIMS; d++) t.ne[d] = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] <= 0 || lm_mul_overflow_u64(n_el, (uint64_t)ne[d], &n_el)) {
            return lm_error_set(err, LM_ERR_ARG, "tensor '%s': bad dimension %lld", name, (long long)ne[d]);
        }
        t.ne[d] = ne[d];
    }
    if ((uint64_t)ne[0] % ti->block_size) {
        return lm_error_set(err, LM_ERR_ARG, "tensor '%s': row length not a multiple of %u", name, ti->block_size);
    }
    if (lm_mul_overflow_u64(n_el / ti->block_size, ti->type_size, &t.n_bytes)) {
        return lm_error_set(err, LM_ERR_ARG, "tensor '%s': size overflows", name);
    }
    t.type = type;
    t.n_dims = n_dims;
    t.data = data;
    if (w->n_tensors == w->cap_tensors) {
        size_t cap = w->cap_tensors ? w->cap_tensors * 2 : 64;
        writer_tensor *p = realloc(w->tensors, cap * sizeof *p);
        if (!p) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
        w->tensors = p;
        w->cap_tensors = cap;
    }
    if (!(t.name = strdup(name))) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    w->tensors[w->n_tensors++] = t;
    return LM_OK;
}

/* Serialises everything before the tensor data, padded to the alignment. */
static lm_status build_header(const lm_gguf_writer *w, buf *b, lm_error *err) {
    buf_u32(b, LM_GGUF_MAGIC);
    buf_u32(b, LM_GGUF_VERSION);
    buf_u64(b, w->n_tensors);
    buf_u64(b, w->n_kv);
    for (size_t i = 0; i < w->n_kv; i++) {
        buf_str(b, w->kvs[i].key, strlen(w->kvs[i].key));
        buf_u32(b, (uint32_t)w->kvs[i].type);
        buf_put(b, w->kvs[i].value, w->kvs[i].value_len);
    }
    uint64_t offset = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        const writer_tensor *t = &w->tensors[i];
        buf_str(b, t->name, strlen(t->name));
        buf_u32(b, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++) buf_u64(b, (uint64_t)t->ne[d]);
        buf_u32(b, (uint32_t)t->type);
        buf_u64(b, offset);
        if (lm_align_up_u64(offset + t->n_bytes, w->alignment, &offset)) {
            return lm_error_set(err, LM_ERR_LIMIT, "tensor data too large");
        }
    }
    static const uint8_t zeros[64] = {0};
    while (b->len % w->alignment) buf_put(b, zeros, 1);
    if (b->failed) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    return LM_OK;
}

typedef lm_status (*sink_fn)(void *ctx, const void *data, size_t n, lm_error *err);

static lm_status write_all(const lm_gguf_writer *w, sink_fn sink, void *ctx, lm_error *err) {
    buf h = {0};
    lm_status st = build_header(w, &h, err);
    if (!st) st = sink(ctx, h.p, h.len, err);
    free(h.p);
    static const uint8_t zeros[64] = {0};
    for (size_t i = 0; i < w->n_tensors && !st; i++) {
        const writer_tensor *t = &w->tensors[i];
        st = sink(ctx, t->data, (size_t)t->n_bytes, err);
        size_t pad = (size_t)((w->alignment - t->n_bytes % w->alignment) % w->alignment);
        while (!st && pad > 0) {
            size_t k = pad < sizeof zeros ? pad : sizeof zeros;
            st = sink(ctx, zeros, k, err);
            pad -= k;
        }
    }
    return st;
}

static lm_status sink_file(void *ctx, const void *data, size_t n, lm_error *err) {
    return lm_atomic_file_write(ctx, data, n, err);
}

static lm_status sink_memory(void *ctx, const void *data, size_t n, lm_error *err) {
    buf *b = ctx;
    buf_put(b, data, n);
    return b->failed ? lm_error_set(err, LM_ERR_NOMEM, "out of memory") : LM_OK;
}

lm_status lm_gguf_writer_write_file(lm_gguf_writer *w, const char *path, lm_error *err) {
    lm_atomic_file *f;
    lm_status st = lm_atomic_file_open(path, &f, err);
    if (st) return st;
    st = write_all(w, sink_file, f, err);
    if (st) {
        lm_atomic_file_abort(f);
        return st;
    }
    return lm_atomic_file_commit(f, err);
}

lm_status lm_gguf_writer_write_memory(lm_gguf_writer *w, uint8_t **out, size_t *out_size, lm_error *err) {
    buf b = {0};
    lm_status st = write_all(w, sink_memory, &b, err);
    if (st) {
        free(b.p);
        return st;
    }
    *out = b.p;
    *out_size = b.len;
    return LM_OK;
}
