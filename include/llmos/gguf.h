/* GGUF v3 reader and writer.
 *
 * The reader treats the file as hostile: every count is capped by what the
 * remaining bytes could hold, every size product is overflow-checked, every
 * offset must lie inside the file, and array element types are checked before
 * use. Tensor data stays in the (memory-mapped) file and is never copied.
 *
 * Strings inside the file are not NUL-terminated; they come back as lm_str
 * (pointer + length) pointing into the mapped file. Keys and tensor names are
 * validated to contain no NUL byte and are copied, so they are C strings. */
#ifndef LLMOS_GGUF_H
#define LLMOS_GGUF_H

#include "llmos/base.h"
#include "llmos/types.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LM_GGUF_MAGIC 0x46554747u /* "GGUF" little-endian */
#define LM_GGUF_VERSION 3u
#define LM_GGUF_DEFAULT_ALIGNMENT 32u
#define LM_GGUF_MAX_DIMS 4
#define LM_GGUF_MAX_NAME 64 /* tensor names, as ggml's GGML_MAX_NAME (incl. NUL) */

typedef enum lm_gguf_type {
    LM_GGUF_UINT8 = 0,
    LM_GGUF_INT8 = 1,
    LM_GGUF_UINT16 = 2,
    LM_GGUF_INT16 = 3,
    LM_GGUF_UINT32 = 4,
    LM_GGUF_INT32 = 5,
    LM_GGUF_FLOAT32 = 6,
    LM_GGUF_BOOL = 7,
    LM_GGUF_STRING = 8,
    LM_GGUF_ARRAY = 9,
    LM_GGUF_UINT64 = 10,
    LM_GGUF_INT64 = 11,
    LM_GGUF_FLOAT64 = 12,
    LM_GGUF_TYPE_COUNT_ = 13
} lm_gguf_type;

typedef struct lm_str {
    const char *ptr; /* not NUL-terminated */
    uint64_t len;
} lm_str;

typedef struct lm_gguf_tensor {
    const char *name;
    lm_type type;
    uint32_t n_dims;
    int64_t ne[LM_GGUF_MAX_DIMS]; /* ggml order: ne[0] is the contiguous dimension; unused = 1 */
    uint64_t n_elements;
    uint64_t offset;              /* relative to the data section */
    uint64_t n_bytes;
    const void *data;             /* inside the mapped file */
} lm_gguf_tensor;

typedef struct lm_gguf lm_gguf;

/* Opens and validates a file; tensor data is memory-mapped. */
lm_status lm_gguf_open(const char *path, lm_gguf **out, lm_error *err);
/* Parses a buffer the caller keeps alive until lm_gguf_free. */
lm_status lm_gguf_open_memory(const void *data, size_t size, lm_gguf **out, lm_error *err);
void lm_gguf_free(lm_gguf *g);
/* Tells the OS that tensor bytes [p, p + n) copied elsewhere are not needed
 * now (lm_file_release_pages); a no-op for a buffer. */
void lm_gguf_release_pages(const lm_gguf *g, const void *p, size_t n);

uint32_t lm_gguf_version(const lm_gguf *g);
uint64_t lm_gguf_alignment(const lm_gguf *g);
uint64_t lm_gguf_data_offset(const lm_gguf *g);
uint64_t lm_gguf_file_size(const lm_gguf *g);

/* Metadata. Index-based access; find returns -1 when absent. */
int64_t lm_gguf_kv_count(const lm_gguf *g);
int64_t lm_gguf_find_key(const lm_gguf *g, const char *key);
const char *lm_gguf_key(const lm_gguf *g, int64_t i);
lm_gguf_type lm_gguf_kv_type(const lm_gguf *g, int64_t i);
/* For arrays: element type and length. For scalars: their type and 1. */
lm_gguf_type lm_gguf_arr_type(const lm_gguf *g, int64_t i);
uint64_t lm_gguf_arr_len(const lm_gguf *g, int64_t i);
/* Raw little-endian element bytes of a numeric scalar or array (unaligned). */
const void *lm_gguf_arr_data(const lm_gguf *g, int64_t i);
/* String scalar (j = 0) or element j of a string array. */
lm_str lm_gguf_get_str(const lm_gguf *g, int64_t i, uint64_t j);
/* Numeric element j of a scalar or array, converted. */
double lm_gguf_get_f64(const lm_gguf *g, int64_t i, uint64_t j);
int64_t lm_gguf_get_i64(const lm_gguf *g, int64_t i, uint64_t j);

/* Typed look-ups by key that fail with a message naming the key. Integer
 * getters accept any integer type whose value fits. */
lm_status lm_gguf_require_u64(const lm_gguf *g, const char *key, uint64_t *out, lm_error *err);
lm_status lm_gguf_require_f64(const lm_gguf *g, const char *key, double *out, lm_error *err);
lm_status lm_gguf_require_str(const lm_gguf *g, const char *key, lm_str *out, lm_error *err);
/* Same, but absent keys leave *out untouched and return LM_OK. */
lm_status lm_gguf_optional_u64(const lm_gguf *g, const char *key, uint64_t *out, lm_error *err);
lm_status lm_gguf_optional_f64(const lm_gguf *g, const char *key, double *out, lm_error *err);
lm_status lm_gguf_optional_bool(const lm_gguf *g, const char *key, int *out, lm_error *err);

int lm_str_eq(lm_str s, const char *c);

const char *lm_gguf_type_name(lm_gguf_type t);
/* Bytes of one element of a fixed-size GGUF value type; 0 for string/array. */
size_t lm_gguf_type_size(lm_gguf_type t);

/* Tensors. */
int64_t lm_gguf_tensor_count(const lm_gguf *g);
int64_t lm_gguf_find_tensor(const lm_gguf *g, const char *name);
const lm_gguf_tensor *lm_gguf_tensor_at(const lm_gguf *g, int64_t i);

/* ---- Writer ---- */
typedef struct lm_gguf_writer lm_gguf_writer;

lm_gguf_writer *lm_gguf_writer_init(void);
void lm_gguf_writer_free(lm_gguf_writer *w);

/* Setting a key that exists replaces its value (its position is kept). */
lm_status lm_gguf_writer_set_u32(lm_gguf_writer *w, const char *key, uint32_t v, lm_error *err);
lm_status lm_gguf_writer_set_i32(lm_gguf_writer *w, const char *key, int32_t v, lm_error *err);
lm_status lm_gguf_writer_set_u64(lm_gguf_writer *w, const char *key, uint64_t v, lm_error *err);
lm_status lm_gguf_writer_set_f32(lm_gguf_writer *w, const char *key, float v, lm_error *err);
lm_status lm_gguf_writer_set_bool(lm_gguf_writer *w, const char *key, int v, lm_error *err);
lm_status lm_gguf_writer_set_str(lm_gguf_writer *w, const char *key, const char *v, lm_error *err);
lm_status lm_gguf_writer_set_strn(lm_gguf_writer *w, const char *key, lm_str v, lm_error *err);
/* A numeric array: n elements of type t (fixed-size types only), copied. */
lm_status lm_gguf_writer_set_arr(lm_gguf_writer *w, const char *key, lm_gguf_type t,
                                 const void *data, uint64_t n, lm_error *err);
lm_status lm_gguf_writer_set_arr_str(lm_gguf_writer *w, const char *key, const lm_str *strs,
                                     uint64_t n, lm_error *err);
/* Copies one key (any type) from a reader. */
lm_status lm_gguf_writer_copy_kv(lm_gguf_writer *w, const lm_gguf *g, int64_t i, lm_error *err);
lm_status lm_gguf_writer_set_alignment(lm_gguf_writer *w, uint32_t alignment, lm_error *err);

/* Adds a tensor; ne in ggml order. data is borrowed until the file is written. */
lm_status lm_gguf_writer_add_tensor(lm_gguf_writer *w, const char *name, lm_type type,
                                    uint32_t n_dims, const int64_t *ne, const void *data,
                                    lm_error *err);

/* Writes atomically (temp file, fsync, rename). */
lm_status lm_gguf_writer_write_file(lm_gguf_writer *w, const char *path, lm_error *err);
/* Serialises into a malloc'd buffer the caller frees. */
lm_status lm_gguf_writer_write_memory(lm_gguf_writer *w, uint8_t **out, size_t *out_size,
                                      lm_error *err);

#ifdef __cplusplus
}
#endif
#endif
