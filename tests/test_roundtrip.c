/* Writer -> reader round trips for every GGUF value type, arrays and
 * alignment; tokenizer decode(encode(x)) == x for arbitrary bytes. */
#include "base/rng.h"
#include "llmos/model.h"
#include "test.h"

#include <unistd.h>

#define FIX(name) LLMOS_FIXTURES "/" name

static void test_gguf_values(void) {
    lm_error err = {0};
    lm_gguf_writer *w = lm_gguf_writer_init();
    REQUIRE(w);
    uint8_t u8s[3] = {1, 2, 255};
    int8_t i8s[2] = {-128, 127};
    uint16_t u16s[2] = {0, 65535};
    int16_t i16s[2] = {-32768, 32767};
    int32_t i32s[3] = {INT32_MIN, 0, INT32_MAX};
    uint64_t u64s[2] = {0, UINT64_MAX};
    int64_t i64s[2] = {INT64_MIN, INT64_MAX};
    double f64s[2] = {-1.5, 1e300};
    uint8_t bools[2] = {1, 0};
    lm_str strs[3] = {{"", 0}, {"h\0llo", 5}, {"\xe2\x96\x81x", 4}};
    CHECK(lm_gguf_writer_set_u32(w, "a.u32", 4000000000u, &err) == LM_OK);
    CHECK(lm_gguf_writer_set_i32(w, "a.i32", -7, &err) == LM_OK);
    CHECK(lm_gguf_writer_set_u64(w, "a.u64", 1ull << 60, &err) == LM_OK);
    CHECK(lm_gguf_writer_set_f32(w, "a.f32", 0.25f, &err) == LM_OK);
    CHECK(lm_gguf_writer_set_bool(w, "a.bool", 1, &err) == LM_OK);
    CHECK(lm_gguf_writer_set_str(w, "a.str", "hello", &err) == LM_OK);
    CHECK(lm_gguf_writer_set_str(w, "a.str", "replaced", &err) == LM_OK); /* same key: replaced in place */
    CHECK(lm_gguf_writer_set_arr(w, "b.u8", LM_GGUF_UINT8, u8s, 3, &err) == LM_OK);
    CHECK(lm_gguf_writer_set_arr(w, "b.i8", LM_GGUF_INT8, i8s, 2, &err) == LM_OK);
    CHECK(lm_gguf_writer_set_arr(w, "b.u16", LM_GGUF_UINT16, u16s, 2, &err) == LM_OK);
    CHECK(lm_gguf_writer_set_arr(w, "b.i16", LM_GGUF_INT16, i16s, 2, &err) == LM_OK);
    CHECK(lm_gguf_writer_set_arr(w, "b.i32", LM_GGUF_INT32, i32s, 3, &err) == LM_OK);
    CHECK(lm_gguf_writer_set_arr(w, "b.u64", LM_GGUF_UINT64, u64s, 2, &err) == LM_OK);
    CHECK(lm_gguf_writer_set_arr(w, "b.i64", LM_GGUF_INT64, i64s, 2, &err) == LM_OK);
    CHECK(lm_gguf_writer_set_arr(w, "b.f64", LM_GGUF_FLOAT64, f64s, 2, &err) == LM_OK);
    CHECK(lm_gguf_writer_set_arr(w, "b.bool", LM_GGUF_BOOL, bools, 2, &err) == LM_OK);
    CHECK(lm_gguf_writer_set_arr(w, "b.empty", LM_GGUF_FLOAT32, NULL, 0, &err) == LM_OK);
    CHECK(lm_gguf_writer_set_arr_str(w, "b.str", strs, 3, &err) == LM_OK);
    CHECK(lm_gguf_writer_set_arr(w, "b.str2", LM_GGUF_STRING, strs, 3, &err) != LM_OK);
    CHECK(lm_gguf_writer_set_alignment(w, 64, &err) == LM_OK);
    CHECK(lm_gguf_writer_set_alignment(w, 48, &err) != LM_OK);
    float t1[6] = {1, 2, 3, 4, 5, 6};
    uint16_t t2[3] = {1, 2, 3};
    int64_t ne1[2] = {3, 2}, ne2[1] = {3}, bad[1] = {0};
    CHECK(lm_gguf_writer_add_tensor(w, "t1", LM_TYPE_F32, 2, ne1, t1, &err) == LM_OK);
    CHECK(lm_gguf_writer_add_tensor(w, "t2", LM_TYPE_F16, 1, ne2, t2, &err) == LM_OK);
    CHECK(lm_gguf_writer_add_tensor(w, "t1", LM_TYPE_F32, 1, ne2, t1, &err) != LM_OK);
    CHECK(lm_gguf_writer_add_tensor(w, "t3", LM_TYPE_F32, 1, bad, t1, &err) != LM_OK);
    CHECK(lm_gguf_writer_add_tensor(w, "t4", LM_TYPE_Q4_0, 1, ne2, t1, &err) != LM_OK);

    char dir[] = "/tmp/llmos-roundtrip-XXXXXX";
    REQUIRE(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/values.gguf", dir);
    REQUIRE(lm_gguf_writer_write_file(w, path, &err) == LM_OK);
    lm_gguf_writer_free(w);

    lm_gguf *g;
    REQUIRE(lm_gguf_open(path, &g, &err) == LM_OK);
    CHECK(lm_gguf_version(g) == 3);
    CHECK(lm_gguf_alignment(g) == 64);
    CHECK(lm_gguf_data_offset(g) % 64 == 0);
    CHECK(lm_gguf_kv_count(g) == 18);
    int64_t k;
    uint64_t u;
    double d;
    CHECK(lm_gguf_require_u64(g, "a.u32", &u, &err) == LM_OK && u == 4000000000u);
    CHECK(lm_gguf_require_u64(g, "a.i32", &u, &err) != LM_OK); /* negative */
    CHECK(lm_gguf_require_u64(g, "a.u64", &u, &err) == LM_OK && u == 1ull << 60);
    CHECK(lm_gguf_require_f64(g, "a.f32", &d, &err) == LM_OK && d == 0.25);
    int flag = 0;
    CHECK(lm_gguf_optional_bool(g, "a.bool", &flag, &err) == LM_OK && flag == 1);
    lm_str s;
    CHECK(lm_gguf_require_str(g, "a.str", &s, &err) == LM_OK && lm_str_eq(s, "replaced"));
    CHECK(strcmp(lm_gguf_key(g, 5), "a.str") == 0); /* the replaced key kept its place */
    CHECK((k = lm_gguf_find_key(g, "b.u8")) >= 0 && lm_gguf_arr_len(g, k) == 3 && lm_gguf_get_i64(g, k, 2) == 255);
    CHECK((k = lm_gguf_find_key(g, "b.i8")) >= 0 && lm_gguf_get_i64(g, k, 0) == -128);
    CHECK((k = lm_gguf_find_key(g, "b.u16")) >= 0 && lm_gguf_get_i64(g, k, 1) == 65535);
    CHECK((k = lm_gguf_find_key(g, "b.i16")) >= 0 && lm_gguf_get_i64(g, k, 0) == -32768);
    CHECK((k = lm_gguf_find_key(g, "b.i32")) >= 0 && lm_gguf_get_i64(g, k, 0) == INT32_MIN);
    CHECK((k = lm_gguf_find_key(g, "b.u64")) >= 0 && lm_gguf_arr_type(g, k) == LM_GGUF_UINT64);
    CHECK((k = lm_gguf_find_key(g, "b.i64")) >= 0 && lm_gguf_get_i64(g, k, 0) == INT64_MIN && lm_gguf_get_i64(g, k, 1) == INT64_MAX);
    CHECK((k = lm_gguf_find_key(g, "b.f64")) >= 0 && lm_gguf_get_f64(g, k, 1) == 1e300);
    CHECK((k = lm_gguf_find_key(g, "b.bool")) >= 0 && lm_gguf_get_i64(g, k, 0) == 1);
    CHECK((k = lm_gguf_find_key(g, "b.empty")) >= 0 && lm_gguf_arr_len(g, k) == 0);
    CHECK((k = lm_gguf_find_key(g, "b.str")) >= 0 && lm_gguf_arr_len(g, k) == 3);
    if (k >= 0) {
        for (int i = 0; i < 3; i++) {
            lm_str x = lm_gguf_get_str(g, k, (uint64_t)i);
            CHECK(x.len == strs[i].len && memcmp(x.ptr, strs[i].ptr, (size_t)x.len) == 0);
        }
    }
    CHECK(lm_gguf_tensor_count(g) == 2);
    const lm_gguf_tensor *t = lm_gguf_tensor_at(g, lm_gguf_find_tensor(g, "t1"));
    CHECK(t && t->ne[0] == 3 && t->ne[1] == 2 && t->n_bytes == 24 && memcmp(t->data, t1, 24) == 0);
    t = lm_gguf_tensor_at(g, lm_gguf_find_tensor(g, "t2"));
    CHECK(t && t->type == LM_TYPE_F16 && t->offset % 64 == 0 && memcmp(t->data, t2, 6) == 0);

    /* Copying every key into a new writer reproduces the metadata exactly. */
    lm_gguf_writer *w2 = lm_gguf_writer_init();
    for (int64_t i = 0; i < lm_gguf_kv_count(g); i++) CHECK(lm_gguf_writer_copy_kv(w2, g, i, &err) == LM_OK);
    uint8_t *buf;
    size_t n;
    CHECK(lm_gguf_writer_write_memory(w2, &buf, &n, &err) == LM_OK);
    lm_gguf *g2;
    CHECK(lm_gguf_open_memory(buf, n, &g2, &err) == LM_OK);
    CHECK(lm_gguf_kv_count(g2) == lm_gguf_kv_count(g) && lm_gguf_alignment(g2) == 64);
    for (int64_t i = 0; i < lm_gguf_kv_count(g) && i < lm_gguf_kv_count(g2); i++) {
        CHECK(strcmp(lm_gguf_key(g, i), lm_gguf_key(g2, i)) == 0);
        CHECK(lm_gguf_kv_type(g, i) == lm_gguf_kv_type(g2, i) && lm_gguf_arr_len(g, i) == lm_gguf_arr_len(g2, i));
        CHECK(lm_gguf_get_f64(g, i, 0) == lm_gguf_get_f64(g2, i, 0));
    }
    lm_gguf_free(g2);
    free(buf);
    lm_gguf_writer_free(w2);
    lm_gguf_free(g);
    unlink(path);
    rmdir(dir);
}

/* decode(encode(x)) == x on random bytes, invalid UTF-8 included. A literal
 * U+2581 is left out: SentencePiece normalises ' ' to U+2581, so the two are
 * the same symbol to the model and both decode as a space. */
static void test_tokenizer_roundtrip(void) {
    lm_error err = {0};
    lm_gguf *g;
    REQUIRE(lm_gguf_open(FIX("stories260K.gguf"), &g, &err) == LM_OK);
    lm_tokenizer *tok;
    REQUIRE(lm_tokenizer_load(g, &tok, &err) == LM_OK);
    lm_gguf_free(g); /* the tokenizer keeps its own copy */
    lm_rng rng;
    lm_rng_seed(&rng, 42);
    static const char *alphabet[] = {" ", "  ", "a", "e", "the", " Lily", "\n", "\xc3\xa9", "\xff",
                                     "\x80", "\xe2\x82", "<s>", "</s>", "\xf0\x9f\x98\x80", "\0", "\t"};
    size_t n_alpha = sizeof alphabet / sizeof *alphabet;
    int failures = 0;
    char *text = malloc(4096), *back = malloc(4096 * 8);
    size_t piece_cap = lm_tokenizer_max_piece_len(tok);
    for (int iter = 0; iter < 2000; iter++) {
        size_t len = 0, parts = lm_rng_next(&rng) % 40;
        for (size_t p = 0; p < parts; p++) {
            if (lm_rng_next(&rng) % 3 == 0) {
                text[len++] = (char)(lm_rng_next(&rng) & 0xff); /* any byte */
            } else {
                const char *a = alphabet[lm_rng_next(&rng) % n_alpha];
                size_t al = a[0] ? strlen(a) : 1;
                memcpy(text + len, a, al);
                len += al;
            }
        }
        int32_t *ids;
        size_t n;
        if (lm_tokenizer_encode(tok, text, len, LM_ENCODE_ADD_SPECIAL, &ids, &n, &err) != LM_OK) {
            failures++;
            continue;
        }
        size_t blen = 0;
        for (size_t i = 0; i < n; i++) {
            REQUIRE(blen + piece_cap < 4096 * 8);
            int64_t k = lm_tokenizer_decode_token(tok, ids[i], i == 1 ? LM_DECODE_STRIP_SPACE : 0, back + blen, piece_cap);
            CHECK(k >= 0);
            if (k > 0) blen += (size_t)k;
        }
        if (blen != len || memcmp(back, text, len) != 0) {
            if (failures++ < 3) fprintf(stderr, "round trip failed for %zu bytes -> %zu tokens -> %zu bytes\n", len, n, blen);
        }
        free(ids);
    }
    CHECKF(failures == 0, "%d of 2000 random texts did not survive encode/decode", failures);
    /* "<s>" in text is three characters, not the control token. */
    int32_t *ids;
    size_t n;
    CHECK(lm_tokenizer_encode(tok, "<s>", 3, 0, &ids, &n, &err) == LM_OK);
    for (size_t i = 0; i < n; i++) CHECK(ids[i] != lm_tokenizer_bos(tok));
    free(ids);
    free(text);
    free(back);
    lm_tokenizer_free(tok);
}

/* A failure stays a failure when the caller passes no error struct. */
static void test_error_prefix(void) {
    CHECK(lm_error_prefix(NULL, LM_ERR_FORMAT, "ctx: ") == LM_ERR_FORMAT);
    lm_error e;
    lm_error_set(&e, LM_ERR_IO, "cannot open");
    CHECK(lm_error_prefix(&e, LM_ERR_IO, "%s: ", "file") == LM_ERR_IO && strcmp(e.message, "file: cannot open") == 0);
}

int main(void) {
    test_error_prefix();
    test_gguf_values();
    test_tokenizer_roundtrip();
    TEST_END();
}
