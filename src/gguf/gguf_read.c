/* GGUF reader. Layout (all little-endian):
 *   u32 magic "GGUF", u32 version, u64 n_tensors, u64 n_kv,
 *   n_kv x { string key, u32 value_type, value },
 *   n_tensors x { string name, u32 n_dims, u64 ne[n_dims], u32 type, u64 offset },
 *   padding to `general.alignment` (default 32), tensor data.
 * A string is u64 length + bytes; an array is u32 element type + u64 count + elements.
 * Nothing read here is trusted: see the checks at each step. */
#include "gguf_internal.h"

#include "../base/checked.h"
#include "llmos/file.h"

#include <stdlib.h>
#include <string.h>

typedef struct gguf_kv {
    char *key;
    lm_gguf_type type;     /* LM_GGUF_ARRAY for arrays */
    lm_gguf_type arr_type; /* element type; equals type for scalars */
    uint64_t n;            /* element count; 1 for scalars */
    const uint8_t *data;   /* numeric elements, in the file */
    lm_str *strs;          /* string elements, pointing into the file */
} gguf_kv;

struct lm_gguf {
    lm_mapped_file file; /* owned when opened from a path */
    const uint8_t *base;
    size_t size;
    uint32_t version;
    uint64_t alignment;
    uint64_t data_offset;
    int64_t n_kv;
    gguf_kv *kvs;
    int64_t n_tensors;
    lm_gguf_tensor *tensors;
};

typedef struct cursor {
    const uint8_t *base;
    size_t size;
    size_t pos;
    lm_error *err;
} cursor;

static size_t cursor_left(const cursor *c) { return c->size - c->pos; }

static lm_status cursor_read(cursor *c, void *dst, size_t n, const char *what) {
    if (n > cursor_left(c)) {
        return lm_error_set(c->err, LM_ERR_FORMAT,
                            "file truncated: %s at offset %zu needs %zu bytes, only %zu left",
                            what, c->pos, n, cursor_left(c));
    }
    memcpy(dst, c->base + c->pos, n);
    c->pos += n;
    return LM_OK;
}

#define READ(c, var, what) cursor_read((c), &(var), sizeof(var), (what))

static lm_status cursor_read_str(cursor *c, lm_str *out, const char *what) {
    uint64_t len = 0;
    lm_status st = READ(c, len, what);
    if (st) return st;
    if (len > cursor_left(c)) {
        return lm_error_set(c->err, LM_ERR_FORMAT,
                            "%s at offset %zu has length %llu, past the end of the file (%zu bytes left)",
                            what, c->pos - 8, (unsigned long long)len, cursor_left(c));
    }
    out->ptr = (const char *)c->base + c->pos;
    out->len = len;
    c->pos += (size_t)len;
    return LM_OK;
}

int lm_gguf_valid_name(const char *s, uint64_t len, uint64_t max_len) {
    if (len == 0 || len > max_len) return 0;
    return memchr(s, '\0', (size_t)len) == NULL;
}

static char *dup_str(lm_str s) {
    char *p = malloc((size_t)s.len + 1);
    if (p) {
        memcpy(p, s.ptr, (size_t)s.len);
        p[s.len] = '\0';
    }
    return p;
}

size_t lm_gguf_type_size(lm_gguf_type t) {
    switch (t) {
    case LM_GGUF_UINT8: case LM_GGUF_INT8: case LM_GGUF_BOOL: return 1;
    case LM_GGUF_UINT16: case LM_GGUF_INT16: return 2;
    case LM_GGUF_UINT32: case LM_GGUF_INT32: case LM_GGUF_FLOAT32: return 4;
    case LM_GGUF_UINT64: case LM_GGUF_INT64: case LM_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

const char *lm_gguf_type_name(lm_gguf_type t) {
    static const char *names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                  "bool", "str", "arr", "u64", "i64", "f64"};
    return (unsigned)t < LM_GGUF_TYPE_COUNT_ ? names[t] : "?";
}

/* Reads a value of element type t (n of them) into kv. */
static lm_status read_values(cursor *c, gguf_kv *kv, lm_gguf_type t, uint64_t n) {
    kv->arr_type = t;
    kv->n = n;
    if (t == LM_GGUF_STRING) {
        /* Every string needs at least its 8-byte length. */
        if (n > cursor_left(c) / 8) {
            return lm_error_set(c->err, LM_ERR_FORMAT,
                                "key '%s': array of %llu strings cannot fit in the %zu bytes left",
                                kv->key, (unsigned long long)n, cursor_left(c));
        }
        kv->strs = malloc((size_t)(n ? n : 1) * sizeof(lm_str));
        if (!kv->strs) return lm_error_set(c->err, LM_ERR_NOMEM, "out of memory");
        for (uint64_t j = 0; j < n; j++) {
            lm_status st = cursor_read_str(c, &kv->strs[j], "string value");
            if (st) return lm_error_prefix(c->err, st, "key '%s': ", kv->key);
        }
        return LM_OK;
    }
    size_t es = lm_gguf_type_size(t);
    if (es == 0) {
        if (t == LM_GGUF_ARRAY) {
            return lm_error_set(c->err, LM_ERR_UNSUPPORTED,
                                "key '%s': nested arrays are not supported", kv->key);
        }
        return lm_error_set(c->err, LM_ERR_FORMAT, "key '%s': unknown value type %u", kv->key,
                            (unsigned)t);
    }
    uint64_t bytes;
    if (lm_mul_overflow_u64(n, es, &bytes) || bytes > cursor_left(c)) {
        return lm_error_set(c->err, LM_ERR_FORMAT,
                            "key '%s': array of %llu %s values cannot fit in the %zu bytes left",
                            kv->key, (unsigned long long)n, lm_gguf_type_name(t), cursor_left(c));
    }
    kv->data = c->base + c->pos;
    if (t == LM_GGUF_BOOL) {
        for (uint64_t j = 0; j < n; j++) {
            if (kv->data[j] > 1) {
                return lm_error_set(c->err, LM_ERR_FORMAT, "key '%s': bool value %u is not 0 or 1",
                                    kv->key, kv->data[j]);
            }
        }
    }
    c->pos += (size_t)bytes;
    return LM_OK;
}

static lm_status read_kv(cursor *c, gguf_kv *kv) {
    lm_str key;
    lm_status st = cursor_read_str(c, &key, "metadata key");
    if (st) return st;
    if (!lm_gguf_valid_name(key.ptr, key.len, LM_GGUF_MAX_KEY_LEN)) {
        return lm_error_set(c->err, LM_ERR_FORMAT,
                            "metadata key at offset %zu is empty, too long or contains a NUL byte",
                            c->pos - (size_t)key.len - 8);
    }
    if (!(kv->key = dup_str(key))) return lm_error_set(c->err, LM_ERR_NOMEM, "out of memory");
    uint32_t type;
    if ((st = READ(c, type, "metadata value type"))) return st;
    if (type >= LM_GGUF_TYPE_COUNT_) {
        return lm_error_set(c->err, LM_ERR_FORMAT, "key '%s' has unknown value type %u", kv->key,
                            type);
    }
    kv->type = (lm_gguf_type)type;
    if (type != LM_GGUF_ARRAY) return read_values(c, kv, kv->type, 1);
    uint32_t arr_type;
    uint64_t n;
    if ((st = READ(c, arr_type, "array element type"))) return st;
    if ((st = READ(c, n, "array length"))) return st;
    if (arr_type >= LM_GGUF_TYPE_COUNT_) {
        return lm_error_set(c->err, LM_ERR_FORMAT, "key '%s': array has unknown element type %u",
                            kv->key, arr_type);
    }
    return read_values(c, kv, (lm_gguf_type)arr_type, n);
}

static lm_status read_tensor_info(cursor *c, lm_gguf_tensor *t, int64_t index) {
    lm_str name;
    lm_status st = cursor_read_str(c, &name, "tensor name");
    if (st) return st;
    if (!lm_gguf_valid_name(name.ptr, name.len, LM_GGUF_MAX_NAME - 1)) {
        return lm_error_set(c->err, LM_ERR_FORMAT,
                            "tensor %lld: name is empty, longer than %d bytes or contains a NUL byte",
                            (long long)index, LM_GGUF_MAX_NAME - 1);
    }
    char *nm = dup_str(name);
    if (!nm) return lm_error_set(c->err, LM_ERR_NOMEM, "out of memory");
    t->name = nm;
    uint32_t n_dims;
    if ((st = READ(c, n_dims, "tensor dimension count"))) return st;
    if (n_dims == 0 || n_dims > LM_GGUF_MAX_DIMS) {
        return lm_error_set(c->err, LM_ERR_FORMAT, "tensor '%s' has %u dimensions (must be 1 to %d)",
                            nm, n_dims, LM_GGUF_MAX_DIMS);
    }
    t->n_dims = n_dims;
    for (int d = 0; d < LM_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    uint64_t n_elements = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        uint64_t ne;
        if ((st = READ(c, ne, "tensor dimension"))) return st;
        if (ne == 0) {
            return lm_error_set(c->err, LM_ERR_FORMAT, "tensor '%s' has a zero dimension (ne[%u] = 0)",
                                nm, d);
        }
        if (ne > (uint64_t)INT64_MAX) {
            return lm_error_set(c->err, LM_ERR_FORMAT, "tensor '%s' has a negative dimension (ne[%u] = %lld)",
                                nm, d, (long long)ne);
        }
        if (lm_mul_overflow_u64(n_elements, ne, &n_elements) || n_elements > (uint64_t)INT64_MAX) {
            return lm_error_set(c->err, LM_ERR_FORMAT, "tensor '%s': element count overflows", nm);
        }
        t->ne[d] = (int64_t)ne;
    }
    t->n_elements = n_elements;
    uint32_t type;
    if ((st = READ(c, type, "tensor type"))) return st;
    const lm_type_info *ti = lm_type_get_info(type);
    if (!ti) return lm_error_set(c->err, LM_ERR_FORMAT, "tensor '%s' has unknown type %u", nm, type);
    t->type = (lm_type)type;
    if ((uint64_t)t->ne[0] % ti->block_size != 0) {
        return lm_error_set(c->err, LM_ERR_FORMAT,
                            "tensor '%s': row length %lld is not a multiple of the %s block size %u",
                            nm, (long long)t->ne[0], ti->name, ti->block_size);
    }
    uint64_t bytes;
    if (lm_mul_overflow_u64(n_elements / ti->block_size, ti->type_size, &bytes)) {
        return lm_error_set(c->err, LM_ERR_FORMAT, "tensor '%s': byte size overflows", nm);
    }
    t->n_bytes = bytes;
    if ((st = READ(c, t->offset, "tensor data offset"))) return st;
    return LM_OK;
}

static int cmp_kv_keys(const void *a, const void *b) {
    return strcmp((*(const gguf_kv *const *)a)->key, (*(const gguf_kv *const *)b)->key);
}
static int cmp_tensor_names(const void *a, const void *b) {
    return strcmp((*(const lm_gguf_tensor *const *)a)->name, (*(const lm_gguf_tensor *const *)b)->name);
}
static int cmp_tensor_offsets(const void *a, const void *b) {
    uint64_t x = (*(const lm_gguf_tensor *const *)a)->offset;
    uint64_t y = (*(const lm_gguf_tensor *const *)b)->offset;
    return x < y ? -1 : x > y;
}

/* Sorted view of pointers, for duplicate and overlap checks in O(n log n). */
static void **sorted_ptrs(void *items, int64_t n, size_t item_size, int (*cmp)(const void *, const void *)) {
    void **v = malloc((size_t)(n ? n : 1) * sizeof *v);
    if (!v) return NULL;
    for (int64_t i = 0; i < n; i++) v[i] = (uint8_t *)items + (size_t)i * item_size;
    qsort(v, (size_t)n, sizeof *v, cmp);
    return v;
}

static lm_status check_unique_keys(lm_gguf *g, lm_error *err) {
    void **v = sorted_ptrs(g->kvs, g->n_kv, sizeof(gguf_kv), cmp_kv_keys);
    if (!v) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    lm_status st = LM_OK;
    for (int64_t i = 1; i < g->n_kv && !st; i++) {
        if (cmp_kv_keys(&v[i - 1], &v[i]) == 0) {
            st = lm_error_set(err, LM_ERR_FORMAT, "duplicate metadata key '%s'", ((gguf_kv *)v[i])->key);
        }
    }
    free(v);
    return st;
}

static lm_status read_alignment(lm_gguf *g, lm_error *err) {
    g->alignment = LM_GGUF_DEFAULT_ALIGNMENT;
    int64_t i = lm_gguf_find_key(g, "general.alignment");
    if (i < 0) return LM_OK;
    const gguf_kv *kv = &g->kvs[i];
    if (kv->type != LM_GGUF_UINT32) {
        return lm_error_set(err, LM_ERR_FORMAT, "general.alignment has type %s, expected u32",
                            lm_gguf_type_name(kv->type));
    }
    uint32_t a;
    memcpy(&a, kv->data, 4);
    if (a == 0 || (a & (a - 1)) != 0) {
        return lm_error_set(err, LM_ERR_FORMAT, "general.alignment %u is not a power of two", a);
    }
    g->alignment = a;
    return LM_OK;
}

/* Places tensors in the data section: aligned, inside the file, not overlapping. */
static lm_status check_tensor_layout(lm_gguf *g, lm_error *err) {
    lm_gguf_tensor *ts = g->tensors;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        lm_gguf_tensor *t = &ts[i];
        if (t->offset % g->alignment != 0) {
            return lm_error_set(err, LM_ERR_FORMAT,
                                "tensor '%s': data offset %llu is not a multiple of the alignment %llu",
                                t->name, (unsigned long long)t->offset, (unsigned long long)g->alignment);
        }
        uint64_t start, end;
        if (lm_add_overflow_u64(g->data_offset, t->offset, &start) ||
            lm_add_overflow_u64(start, t->n_bytes, &end) || end > g->size) {
            return lm_error_set(err, LM_ERR_FORMAT,
                                "tensor '%s': data (offset %llu, %llu bytes) lies outside the file (%zu bytes)",
                                t->name, (unsigned long long)t->offset, (unsigned long long)t->n_bytes,
                                g->size);
        }
        t->data = g->base + start;
    }
    void **v = sorted_ptrs(ts, g->n_tensors, sizeof *ts, cmp_tensor_names);
    if (!v) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    lm_status st = LM_OK;
    for (int64_t i = 1; i < g->n_tensors && !st; i++) {
        if (cmp_tensor_names(&v[i - 1], &v[i]) == 0) {
            st = lm_error_set(err, LM_ERR_FORMAT, "duplicate tensor name '%s'", ((lm_gguf_tensor *)v[i])->name);
        }
    }
    if (!st) qsort(v, (size_t)g->n_tensors, sizeof *v, cmp_tensor_offsets);
    for (int64_t i = 1; i < g->n_tensors && !st; i++) {
        const lm_gguf_tensor *a = v[i - 1], *b = v[i];
        if (a->offset + a->n_bytes > b->offset) {
            st = lm_error_set(err, LM_ERR_FORMAT, "tensors '%s' and '%s' overlap", a->name, b->name);
        }
    }
    free(v);
    return st;
}

static lm_status parse(lm_gguf *g, lm_error *err) {
    cursor c = {g->base, g->size, 0, err};
    uint32_t magic;
    lm_status st;
    if (g->size < 4 || memcmp(g->base, "GGUF", 4) != 0) {
        return lm_error_set(err, LM_ERR_FORMAT, "not a GGUF file (bad magic)");
    }
    if ((st = READ(&c, magic, "magic"))) return st;
    if ((st = READ(&c, g->version, "version"))) return st;
    if (g->version == 1) {
        return lm_error_set(err, LM_ERR_UNSUPPORTED, "GGUF version 1 is not supported (only 2 and 3)");
    }
    if (g->version != 2 && g->version != 3) {
        if ((g->version & 0xffffu) == 0 && (g->version >> 24) <= 3) {
            return lm_error_set(err, LM_ERR_UNSUPPORTED,
                                "big-endian GGUF files are not supported (version field 0x%08x)", g->version);
        }
        return lm_error_set(err, LM_ERR_UNSUPPORTED, "unknown GGUF version %u (only 2 and 3)", g->version);
    }
    uint64_t n_tensors, n_kv;
    if ((st = READ(&c, n_tensors, "tensor count"))) return st;
    if ((st = READ(&c, n_kv, "metadata count"))) return st;
    /* A key-value needs >= 13 bytes (key length, type, 1-byte value); a
     * tensor info >= 32 (name length, n_dims, one dim, type, offset). */
    if (n_kv > LM_GGUF_MAX_KVS || n_kv > cursor_left(&c) / 13) {
        return lm_error_set(err, LM_ERR_FORMAT, "metadata count %llu is larger than the file could hold",
                            (unsigned long long)n_kv);
    }
    if (n_tensors > LM_GGUF_MAX_TENSORS || n_tensors > cursor_left(&c) / 32) {
        return lm_error_set(err, LM_ERR_FORMAT, "tensor count %llu is larger than the file could hold",
                            (unsigned long long)n_tensors);
    }
    g->kvs = calloc((size_t)(n_kv ? n_kv : 1), sizeof *g->kvs);
    g->tensors = calloc((size_t)(n_tensors ? n_tensors : 1), sizeof *g->tensors);
    if (!g->kvs || !g->tensors) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    for (uint64_t i = 0; i < n_kv; i++) {
        g->n_kv = (int64_t)i + 1; /* so that free() sees partially read entries */
        if ((st = read_kv(&c, &g->kvs[i]))) return st;
    }
    if ((st = check_unique_keys(g, err))) return st;
    if ((st = read_alignment(g, err))) return st;
    for (uint64_t i = 0; i < n_tensors; i++) {
        g->n_tensors = (int64_t)i + 1;
        if ((st = read_tensor_info(&c, &g->tensors[i], (int64_t)i))) return st;
    }
    if (lm_align_up_u64(c.pos, g->alignment, &g->data_offset)) {
        return lm_error_set(err, LM_ERR_FORMAT, "data offset overflows");
    }
    if (n_tensors > 0 && g->data_offset > g->size) {
        return lm_error_set(err, LM_ERR_FORMAT, "file truncated: data section starts at %llu, file has %zu bytes",
                            (unsigned long long)g->data_offset, g->size);
    }
    return check_tensor_layout(g, err);
}

static lm_status open_common(lm_gguf *g, lm_gguf **out, lm_error *err) {
    lm_status st = parse(g, err);
    if (st) {
        lm_gguf_free(g);
        return st;
    }
    *out = g;
    return LM_OK;
}

lm_status lm_gguf_open_memory(const void *data, size_t size, lm_gguf **out, lm_error *err) {
    *out = NULL;
    lm_gguf *g = calloc(1, sizeof *g);
    if (!g) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    g->base = data;
    g->size = data ? size : 0;
    return open_common(g, out, err);
}

lm_status lm_gguf_open(const char *path, lm_gguf **out, lm_error *err) {
    *out = NULL;
    lm_gguf *g = calloc(1, sizeof *g);
    if (!g) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    lm_status st = lm_file_map(path, &g->file, err);
    if (st) {
        free(g);
        return st;
    }
    g->base = g->file.data;
    g->size = g->file.size;
    return open_common(g, out, err);
}

void lm_gguf_free(lm_gguf *g) {
    if (!g) return;
    for (int64_t i = 0; i < g->n_kv; i++) {
        free(g->kvs[i].key);
        free(g->kvs[i].strs);
    }
    free(g->kvs);
    for (int64_t i = 0; i < g->n_tensors; i++) free((char *)g->tensors[i].name);
    free(g->tensors);
    lm_file_unmap(&g->file);
    free(g);
}

void lm_gguf_release_pages(const lm_gguf *g, const void *p, size_t n) { lm_file_release_pages(&g->file, p, n); }

uint32_t lm_gguf_version(const lm_gguf *g) { return g->version; }
uint64_t lm_gguf_alignment(const lm_gguf *g) { return g->alignment; }
uint64_t lm_gguf_data_offset(const lm_gguf *g) { return g->data_offset; }
uint64_t lm_gguf_file_size(const lm_gguf *g) { return g->size; }
int64_t lm_gguf_kv_count(const lm_gguf *g) { return g->n_kv; }
int64_t lm_gguf_tensor_count(const lm_gguf *g) { return g->n_tensors; }

int64_t lm_gguf_find_key(const lm_gguf *g, const char *key) {
    for (int64_t i = 0; i < g->n_kv; i++) {
        if (strcmp(g->kvs[i].key, key) == 0) return i;
    }
    return -1;
}

const char *lm_gguf_key(const lm_gguf *g, int64_t i) { return g->kvs[i].key; }
lm_gguf_type lm_gguf_kv_type(const lm_gguf *g, int64_t i) { return g->kvs[i].type; }
lm_gguf_type lm_gguf_arr_type(const lm_gguf *g, int64_t i) { return g->kvs[i].arr_type; }
uint64_t lm_gguf_arr_len(const lm_gguf *g, int64_t i) { return g->kvs[i].n; }
const void *lm_gguf_arr_data(const lm_gguf *g, int64_t i) { return g->kvs[i].data; }

lm_str lm_gguf_get_str(const lm_gguf *g, int64_t i, uint64_t j) {
    const gguf_kv *kv = &g->kvs[i];
    lm_str empty = {"", 0};
    if (kv->arr_type != LM_GGUF_STRING || j >= kv->n) return empty;
    return kv->strs[j];
}

/* Unaligned little-endian loads from the file. */
#define DEFINE_LOAD(T) static inline T load_##T(const uint8_t *p) { T v; memcpy(&v, p, sizeof v); return v; }
DEFINE_LOAD(float)
DEFINE_LOAD(double)
DEFINE_LOAD(uint16_t)
DEFINE_LOAD(int16_t)
DEFINE_LOAD(uint32_t)
DEFINE_LOAD(int32_t)
DEFINE_LOAD(uint64_t)
DEFINE_LOAD(int64_t)
#define LOAD_AS(T, p) load_##T(p)

/* Saturating conversion: NaN -> 0, out of range -> the nearest limit. */
static int64_t double_to_i64(double v) {
    if (v != v) return 0;
    if (v >= 9223372036854775807.0) return INT64_MAX;
    if (v <= -9223372036854775808.0) return INT64_MIN;
    return (int64_t)v;
}

double lm_gguf_get_f64(const lm_gguf *g, int64_t i, uint64_t j) {
    const gguf_kv *kv = &g->kvs[i];
    if (j >= kv->n || !kv->data) return 0.0;
    const uint8_t *p = kv->data + j * lm_gguf_type_size(kv->arr_type);
    switch (kv->arr_type) {
    case LM_GGUF_FLOAT32: return LOAD_AS(float, p);
    case LM_GGUF_FLOAT64: return LOAD_AS(double, p);
    case LM_GGUF_UINT64: return (double)LOAD_AS(uint64_t, p);
    default: return (double)lm_gguf_get_i64(g, i, j);
    }
}

int64_t lm_gguf_get_i64(const lm_gguf *g, int64_t i, uint64_t j) {
    const gguf_kv *kv = &g->kvs[i];
    if (j >= kv->n || !kv->data) return 0;
    const uint8_t *p = kv->data + j * lm_gguf_type_size(kv->arr_type);
    switch (kv->arr_type) {
    case LM_GGUF_UINT8: case LM_GGUF_BOOL: return *p;
    case LM_GGUF_INT8: return (int8_t)*p;
    case LM_GGUF_UINT16: return LOAD_AS(uint16_t, p);
    case LM_GGUF_INT16: return LOAD_AS(int16_t, p);
    case LM_GGUF_UINT32: return LOAD_AS(uint32_t, p);
    case LM_GGUF_INT32: return LOAD_AS(int32_t, p);
    case LM_GGUF_UINT64: {
        uint64_t v = LOAD_AS(uint64_t, p);
        return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
    }
    case LM_GGUF_INT64: return LOAD_AS(int64_t, p);
    case LM_GGUF_FLOAT32: return double_to_i64(LOAD_AS(float, p));
    case LM_GGUF_FLOAT64: return double_to_i64(LOAD_AS(double, p));
    default: return 0;
    }
}

static int is_integer_type(lm_gguf_type t) {
    return t == LM_GGUF_UINT8 || t == LM_GGUF_INT8 || t == LM_GGUF_UINT16 || t == LM_GGUF_INT16 ||
           t == LM_GGUF_UINT32 || t == LM_GGUF_INT32 || t == LM_GGUF_UINT64 || t == LM_GGUF_INT64;
}

lm_status lm_gguf_optional_u64(const lm_gguf *g, const char *key, uint64_t *out, lm_error *err) {
    int64_t i = lm_gguf_find_key(g, key);
    if (i < 0) return LM_OK;
    const gguf_kv *kv = &g->kvs[i];
    if (!is_integer_type(kv->type)) {
        return lm_error_set(err, LM_ERR_FORMAT, "metadata '%s' has type %s, expected an integer", key,
                            lm_gguf_type_name(kv->type));
    }
    if (kv->type == LM_GGUF_UINT64) {
        memcpy(out, kv->data, 8);
        return LM_OK;
    }
    int64_t v = lm_gguf_get_i64(g, i, 0);
    if (v < 0) return lm_error_set(err, LM_ERR_FORMAT, "metadata '%s' is negative (%lld)", key, (long long)v);
    *out = (uint64_t)v;
    return LM_OK;
}

lm_status lm_gguf_require_u64(const lm_gguf *g, const char *key, uint64_t *out, lm_error *err) {
    if (lm_gguf_find_key(g, key) < 0) return lm_error_set(err, LM_ERR_FORMAT, "required metadata '%s' is missing", key);
    return lm_gguf_optional_u64(g, key, out, err);
}

lm_status lm_gguf_optional_f64(const lm_gguf *g, const char *key, double *out, lm_error *err) {
    int64_t i = lm_gguf_find_key(g, key);
    if (i < 0) return LM_OK;
    lm_gguf_type t = g->kvs[i].type;
    if (t != LM_GGUF_FLOAT32 && t != LM_GGUF_FLOAT64 && !is_integer_type(t)) {
        return lm_error_set(err, LM_ERR_FORMAT, "metadata '%s' has type %s, expected a number", key,
                            lm_gguf_type_name(t));
    }
    *out = lm_gguf_get_f64(g, i, 0);
    return LM_OK;
}

lm_status lm_gguf_require_f64(const lm_gguf *g, const char *key, double *out, lm_error *err) {
    if (lm_gguf_find_key(g, key) < 0) return lm_error_set(err, LM_ERR_FORMAT, "required metadata '%s' is missing", key);
    return lm_gguf_optional_f64(g, key, out, err);
}

lm_status lm_gguf_optional_bool(const lm_gguf *g, const char *key, int *out, lm_error *err) {
    int64_t i = lm_gguf_find_key(g, key);
    if (i < 0) return LM_OK;
    if (g->kvs[i].type != LM_GGUF_BOOL) {
        return lm_error_set(err, LM_ERR_FORMAT, "metadata '%s' has type %s, expected bool", key,
                            lm_gguf_type_name(g->kvs[i].type));
    }
    *out = g->kvs[i].data[0] != 0;
    return LM_OK;
}

lm_status lm_gguf_require_str(const lm_gguf *g, const char *key, lm_str *out, lm_error *err) {
    int64_t i = lm_gguf_find_key(g, key);
    if (i < 0) return lm_error_set(err, LM_ERR_FORMAT, "required metadata '%s' is missing", key);
    if (g->kvs[i].type != LM_GGUF_STRING) {
        return lm_error_set(err, LM_ERR_FORMAT, "metadata '%s' has type %s, expected a string", key,
                            lm_gguf_type_name(g->kvs[i].type));
    }
    *out = g->kvs[i].strs[0];
    return LM_OK;
}

int lm_str_eq(lm_str s, const char *c) {
    size_t n = strlen(c);
    return s.len == n && memcmp(s.ptr, c, n) == 0;
}

int64_t lm_gguf_find_tensor(const lm_gguf *g, const char *name) {
    for (int64_t i = 0; i < g->n_tensors; i++) {
        if (strcmp(g->tensors[i].name, name) == 0) return i;
    }
    return -1;
}

const lm_gguf_tensor *lm_gguf_tensor_at(const lm_gguf *g, int64_t i) {
    if (i < 0 || i >= g->n_tensors) return NULL;
    return &g->tensors[i];
}
