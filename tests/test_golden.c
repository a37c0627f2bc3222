/* Golden tests against references we did not write: stories260K's documented
 * greedy story (llama2.c), its prompt encoding, and llama.cpp's own GGUF of
 * the model, which `llmos convert` must reproduce tensor for tensor. */
#include "llmos/convert.h"
#include "llmos/generate.h"
#include "test.h"

#include <unistd.h>

#define FIX(name) LLMOS_FIXTURES "/" name

typedef struct collected {
    int32_t ids[1024];
    size_t n_ids;
    char text[8192];
    size_t n_text;
} collected;

static int collect(void *user, int32_t token, const char *text, size_t len) {
    collected *c = user;
    if (c->n_ids < 1024) c->ids[c->n_ids++] = token;
    if (c->n_text + len < sizeof c->text) {
        memcpy(c->text + c->n_text, text, len);
        c->n_text += len;
        c->text[c->n_text] = '\0';
    }
    return 0;
}

static lm_generate_params greedy(int64_t n) {
    lm_generate_params p = {lm_sampler_default_params(), n, 0, 1, -1};
    p.sampling.temperature = 0.0f;
    return p;
}

/* Greedy story from an empty prompt: the documented 256 ids and text. */
static void check_story(const char *model_path, int n_threads) {
    lm_error err = {0};
    lm_model *m;
    lm_status st = lm_model_load(model_path, &m, &err);
    CHECKF(st == LM_OK, "%s: %s", model_path, err.message);
    if (st) return;
    char *want_text = test_read_file(FIX("stories260K_greedy.txt"), NULL);
    char *want_ids_text = test_read_file(FIX("stories260K_greedy_ids.txt"), NULL);
    REQUIRE(want_text && want_ids_text);
    static collected c;
    memset(&c, 0, sizeof c);
    lm_generate_params p = greedy(256);
    p.n_threads = n_threads;
    lm_generate_stats stats;
    st = lm_generate(m, "", 0, &p, collect, &c, &stats, &err);
    CHECKF(st == LM_OK, "%s", err.message);
    CHECK(c.n_ids == 256);
    CHECK(stats.n_prompt == 1);
    char *tokp = want_ids_text;
    int mismatches = 0;
    for (size_t i = 0; i < 256; i++) {
        long want = strtol(tokp, &tokp, 10);
        if (i < c.n_ids && c.ids[i] != want) mismatches++;
    }
    CHECKF(mismatches == 0, "%s: %d of 256 ids differ from the documented greedy story", model_path, mismatches);
    CHECKF(strcmp(c.text, want_text) == 0, "%s: story text differs:\n%s", model_path, c.text);
    free(want_text);
    free(want_ids_text);
    lm_model_free(m);
}

static void check_prompt(void) {
    lm_error err = {0};
    lm_model *m;
    REQUIRE(lm_model_load(FIX("stories260K.gguf"), &m, &err) == LM_OK);
    int32_t *ids;
    size_t n;
    const char *prompt = "Once upon a time";
    CHECK(lm_tokenizer_encode(lm_model_get_tokenizer(m), prompt, strlen(prompt), LM_ENCODE_ADD_SPECIAL, &ids, &n, &err) == LM_OK);
    int32_t want[] = {1, 403, 407, 261, 378};
    CHECKF(n == 5 && memcmp(ids, want, sizeof want) == 0, "encode gave %zu tokens", n);
    free(ids);

    /* llama2.c's "-n 64" is 64 positions: BOS + 4 prompt tokens + 59... it
     * prints 60 sampled tokens; the documented text is prompt + those. */
    static collected c;
    memset(&c, 0, sizeof c);
    lm_generate_params p = greedy(60);
    CHECK(lm_generate(m, prompt, strlen(prompt), &p, collect, &c, NULL, &err) == LM_OK);
    char *want_text = test_read_file(FIX("stories260K_prompt_n64.txt"), NULL);
    REQUIRE(want_text);
    char full[8192 + 64];
    snprintf(full, sizeof full, "%s%s", prompt, c.text);
    CHECKF(strcmp(full, want_text) == 0, "prompt continuation differs:\n%s", full);
    free(want_text);
    lm_model_free(m);
}

static int arrays_equal(const lm_gguf *a, const lm_gguf *b, const char *key) {
    int64_t i = lm_gguf_find_key(a, key), j = lm_gguf_find_key(b, key);
    if (i < 0 || j < 0) return 0;
    if (lm_gguf_kv_type(a, i) != lm_gguf_kv_type(b, j) || lm_gguf_arr_type(a, i) != lm_gguf_arr_type(b, j) ||
        lm_gguf_arr_len(a, i) != lm_gguf_arr_len(b, j)) {
        return 0;
    }
    uint64_t n = lm_gguf_arr_len(a, i);
    if (lm_gguf_arr_type(a, i) == LM_GGUF_STRING) {
        for (uint64_t k = 0; k < n; k++) {
            lm_str x = lm_gguf_get_str(a, i, k), y = lm_gguf_get_str(b, j, k);
            if (x.len != y.len || memcmp(x.ptr, y.ptr, (size_t)x.len) != 0) return 0;
        }
        return 1;
    }
    return memcmp(lm_gguf_arr_data(a, i), lm_gguf_arr_data(b, j), (size_t)n * lm_gguf_type_size(lm_gguf_arr_type(a, i))) == 0;
}

/* Converted file vs the official GGUF: same tensors bit for bit, same
 * architecture metadata and vocabulary. */
static void check_converted(const char *checkpoint, const char *out) {
    lm_error err = {0};
    lm_convert_llama2c_options opt = {2048, NULL}; /* the official file says 2048 */
    lm_status st = lm_convert_llama2c(checkpoint, FIX("tok512.bin"), out, &opt, &err);
    CHECKF(st == LM_OK, "convert %s: %s", checkpoint, err.message);
    if (st) return;
    lm_gguf *ref, *got;
    REQUIRE(lm_gguf_open(FIX("stories260K.gguf"), &ref, &err) == LM_OK);
    st = lm_gguf_open(out, &got, &err);
    CHECKF(st == LM_OK, "reading converted file: %s", err.message);
    if (st) {
        lm_gguf_free(ref);
        return;
    }
    CHECK(lm_gguf_tensor_count(got) == lm_gguf_tensor_count(ref));
    for (int64_t i = 0; i < lm_gguf_tensor_count(ref); i++) {
        const lm_gguf_tensor *r = lm_gguf_tensor_at(ref, i);
        int64_t j = lm_gguf_find_tensor(got, r->name);
        CHECKF(j >= 0, "converted file lacks %s", r->name);
        if (j < 0) continue;
        const lm_gguf_tensor *t = lm_gguf_tensor_at(got, j);
        CHECKF(t->type == r->type && t->n_dims == r->n_dims && memcmp(t->ne, r->ne, sizeof t->ne) == 0 &&
                   t->n_bytes == r->n_bytes && memcmp(t->data, r->data, (size_t)r->n_bytes) == 0,
               "tensor %s differs", r->name);
        CHECKF(t->offset == r->offset, "tensor %s at offset %llu, official %llu", r->name,
               (unsigned long long)t->offset, (unsigned long long)r->offset);
    }
    /* Every architecture key of the official file, with the same type and value. */
    for (int64_t i = 0; i < lm_gguf_kv_count(ref); i++) {
        const char *key = lm_gguf_key(ref, i);
        if (strncmp(key, "llama.", 6) != 0 && strcmp(key, "general.architecture") != 0) continue;
        int64_t j = lm_gguf_find_key(got, key);
        CHECKF(j >= 0, "converted file lacks %s", key);
        if (j < 0) continue;
        CHECKF(lm_gguf_kv_type(got, j) == lm_gguf_kv_type(ref, i), "%s has another type", key);
        if (lm_gguf_kv_type(ref, i) == LM_GGUF_STRING) {
            lm_str a = lm_gguf_get_str(ref, i, 0), b = lm_gguf_get_str(got, j, 0);
            CHECKF(a.len == b.len && memcmp(a.ptr, b.ptr, (size_t)a.len) == 0, "%s differs", key);
        } else {
            CHECKF(memcmp(lm_gguf_arr_data(ref, i), lm_gguf_arr_data(got, j), lm_gguf_type_size(lm_gguf_kv_type(ref, i))) == 0,
                   "%s differs", key);
        }
    }
    CHECKF(arrays_equal(ref, got, "tokenizer.ggml.tokens"), "tokens differ");
    CHECKF(arrays_equal(ref, got, "tokenizer.ggml.scores"), "scores differ");
    CHECKF(arrays_equal(ref, got, "tokenizer.ggml.token_type"), "token types differ");
    const char *ids[] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id"};
    for (int k = 0; k < 3; k++) {
        uint64_t a = 99, b = 98;
        lm_gguf_require_u64(ref, ids[k], &a, NULL);
        lm_gguf_require_u64(got, ids[k], &b, NULL);
        CHECKF(a == b, "%s: %llu vs %llu", ids[k], (unsigned long long)b, (unsigned long long)a);
    }
    lm_gguf_free(ref);
    lm_gguf_free(got);
    check_story(out, 1);
}

/* Without --context-length the converter states the checkpoint's own seq_len. */
static void check_default_context(const char *out) {
    lm_error err = {0};
    CHECK(lm_convert_llama2c(FIX("stories260K.bin"), FIX("tok512.bin"), out, NULL, &err) == LM_OK);
    lm_gguf *g;
    REQUIRE(lm_gguf_open(out, &g, &err) == LM_OK);
    uint64_t ctx = 0;
    CHECK(lm_gguf_require_u64(g, "llama.context_length", &ctx, &err) == LM_OK);
    CHECK(ctx == 512);
    lm_gguf_free(g);
}

int main(void) {
    check_story(FIX("stories260K.gguf"), 1);
    check_story(FIX("stories260K.gguf"), 2);
    check_prompt();
    char dir[] = "/tmp/llmos-golden-XXXXXX";
    REQUIRE(mkdtemp(dir));
    char out[256];
    snprintf(out, sizeof out, "%s/legacy.gguf", dir);
    check_converted(FIX("stories260K.bin"), out);
    unlink(out);
    snprintf(out, sizeof out, "%s/v1.gguf", dir);
    check_converted(FIX("stories260K.v1.bin"), out);
    unlink(out);
    snprintf(out, sizeof out, "%s/default.gguf", dir);
    check_default_context(out);
    unlink(out);
    rmdir(dir);
    TEST_END();
}
