/* A table of hand-corrupted GGUF files, each built here from a valid one, and
 * the verdict each must get: rejected, with a message naming the problem.
 * Modelled on llama.cpp's tests/test-gguf.cpp. Run under ASan+UBSan in CI.
 *
 * `test_gguf_corrupt --write-seed FILE` writes the valid base file (the
 * fuzzer's seed corpus). */
#include "llmos/model.h"
#include "test.h"

/* ---- the valid base: a 1-layer llama with an 8-token vocabulary ---- */

enum variant {
    V_BASE,
    V_SCORES_INT,     /* tokenizer.ggml.scores stored as i32 */
    V_TYPES_SHORT,    /* token_type one entry short */
    V_TOKENS_NOT_STR, /* tokens stored as u32 */
    V_EMPTY_VOCAB,
    V_BOS_OUT,
    V_EOS_OUT,
    V_ALIGN_3,
    V_ALIGN_U64,
    V_TOKENIZER_MODEL,
    V_ARCH,
    V_HEADS_0,
    V_KV_HEADS_3,
    V_NO_BLOCK_COUNT,
    V_Q_SHAPE,
    V_I32_WEIGHT,
    V_NO_OUTPUT_NORM,
    V_CONTEXT_0,
    V_DIM_STRING,
};

enum { DIM = 8, HEADS = 2, KV_HEADS = 1, HEAD_DIM = 4, FFN = 16, VOCAB = 8, CTX = 16 };

static float weights[4096];

static uint8_t *build(enum variant v, size_t *size) {
    lm_error err = {0};
    lm_gguf_writer *w = lm_gguf_writer_init();
    REQUIRE(w);
    for (size_t i = 0; i < sizeof weights / sizeof *weights; i++) weights[i] = (float)((i * 37) % 17) / 17.0f - 0.5f;
#define OK(call) REQUIRE((call) == LM_OK)
    OK(lm_gguf_writer_set_str(w, "general.architecture", v == V_ARCH ? "gpt2" : "llama", &err));
    OK(lm_gguf_writer_set_str(w, "general.name", "corrupt-test", &err));
    if (v == V_DIM_STRING) OK(lm_gguf_writer_set_str(w, "llama.embedding_length", "eight", &err));
    else OK(lm_gguf_writer_set_u32(w, "llama.embedding_length", DIM, &err));
    if (v != V_NO_BLOCK_COUNT) OK(lm_gguf_writer_set_u32(w, "llama.block_count", 1, &err));
    OK(lm_gguf_writer_set_u32(w, "llama.attention.head_count", v == V_HEADS_0 ? 0 : HEADS, &err));
    OK(lm_gguf_writer_set_u32(w, "llama.attention.head_count_kv", v == V_KV_HEADS_3 ? 3 : KV_HEADS, &err));
    OK(lm_gguf_writer_set_u32(w, "llama.feed_forward_length", FFN, &err));
    OK(lm_gguf_writer_set_u32(w, "llama.context_length", v == V_CONTEXT_0 ? 0 : CTX, &err));
    OK(lm_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f, &err));
    OK(lm_gguf_writer_set_u32(w, "test.aaaa", 1, &err));
    OK(lm_gguf_writer_set_u32(w, "test.bbbb", 2, &err));
    OK(lm_gguf_writer_set_bool(w, "test.flag", 1, &err));
    if (v == V_ALIGN_3) OK(lm_gguf_writer_set_u32(w, "general.alignment", 3, &err));
    if (v == V_ALIGN_U64) OK(lm_gguf_writer_set_u64(w, "general.alignment", 32, &err));
    OK(lm_gguf_writer_set_str(w, "tokenizer.ggml.model", v == V_TOKENIZER_MODEL ? "no-such-model" : "llama", &err));
    lm_str tokens[VOCAB] = {{"<unk>", 5}, {"<s>", 3}, {"</s>", 4}, {"a", 1}, {"b", 1},
                            {"\xe2\x96\x81" "a", 4}, {"ab", 2}, {"\xe2\x96\x81", 3}};
    uint32_t ids[VOCAB] = {0, 1, 2, 3, 4, 5, 6, 7};
    if (v == V_TOKENS_NOT_STR) OK(lm_gguf_writer_set_arr(w, "tokenizer.ggml.tokens", LM_GGUF_UINT32, ids, VOCAB, &err));
    else OK(lm_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", tokens, v == V_EMPTY_VOCAB ? 0 : VOCAB, &err));
    float scores[VOCAB] = {0, 0, 0, -1, -2, -3, -4, -5};
    int32_t types[VOCAB] = {2, 3, 3, 1, 1, 1, 1, 1};
    if (v == V_SCORES_INT) OK(lm_gguf_writer_set_arr(w, "tokenizer.ggml.scores", LM_GGUF_INT32, types, VOCAB, &err));
    else OK(lm_gguf_writer_set_arr(w, "tokenizer.ggml.scores", LM_GGUF_FLOAT32, scores, VOCAB, &err));
    OK(lm_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", LM_GGUF_INT32, types, v == V_TYPES_SHORT ? VOCAB - 1 : VOCAB, &err));
    OK(lm_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", v == V_BOS_OUT ? VOCAB : 1, &err));
    OK(lm_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", v == V_EOS_OUT ? 1000 : 2, &err));

    int64_t emb[2] = {DIM, VOCAB}, norm[1] = {DIM}, q[2] = {DIM, HEADS * HEAD_DIM}, kv[2] = {DIM, KV_HEADS * HEAD_DIM};
    int64_t o[2] = {HEADS * HEAD_DIM, DIM}, up[2] = {DIM, FFN}, down[2] = {FFN, DIM}, bad_q[2] = {DIM, 4};
    OK(lm_gguf_writer_add_tensor(w, "token_embd.weight", LM_TYPE_F32, 2, emb, weights, &err));
    if (v != V_NO_OUTPUT_NORM) OK(lm_gguf_writer_add_tensor(w, "output_norm.weight", LM_TYPE_F32, 1, norm, weights, &err));
    OK(lm_gguf_writer_add_tensor(w, "blk.0.attn_norm.weight", LM_TYPE_F32, 1, norm, weights, &err));
    OK(lm_gguf_writer_add_tensor(w, "blk.0.attn_q.weight", v == V_I32_WEIGHT ? LM_TYPE_I32 : LM_TYPE_F32, 2,
                                 v == V_Q_SHAPE ? bad_q : q, weights, &err));
    OK(lm_gguf_writer_add_tensor(w, "blk.0.attn_k.weight", LM_TYPE_F32, 2, kv, weights, &err));
    OK(lm_gguf_writer_add_tensor(w, "blk.0.attn_v.weight", LM_TYPE_F32, 2, kv, weights, &err));
    OK(lm_gguf_writer_add_tensor(w, "blk.0.attn_output.weight", LM_TYPE_F32, 2, o, weights, &err));
    OK(lm_gguf_writer_add_tensor(w, "blk.0.ffn_norm.weight", LM_TYPE_F32, 1, norm, weights, &err));
    OK(lm_gguf_writer_add_tensor(w, "blk.0.ffn_gate.weight", LM_TYPE_F32, 2, up, weights, &err));
    OK(lm_gguf_writer_add_tensor(w, "blk.0.ffn_up.weight", LM_TYPE_F32, 2, up, weights, &err));
    OK(lm_gguf_writer_add_tensor(w, "blk.0.ffn_down.weight", LM_TYPE_F32, 2, down, weights, &err));
#undef OK
    uint8_t *buf;
    REQUIRE(lm_gguf_writer_write_memory(w, &buf, size, &err) == LM_OK);
    lm_gguf_writer_free(w);
    return buf;
}

/* ---- helpers to find and patch fields of the serialised file ---- */

static size_t find(const uint8_t *buf, size_t n, const char *needle) {
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++) {
        if (memcmp(buf + i, needle, k) == 0) return i;
    }
    fprintf(stderr, "needle '%s' not found\n", needle);
    exit(1);
}
static void put_u32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put_u64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint64_t get_u64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}
/* Offset of the u32 value type that follows a key. */
static size_t kv_type_at(const uint8_t *b, size_t n, const char *key) { return find(b, n, key) + strlen(key); }
/* Offset of a tensor info's n_dims field; dims follow, then type, then offset. */
static size_t tinfo_at(const uint8_t *b, size_t n, const char *name) { return find(b, n, name) + strlen(name); }
static size_t tinfo_type_at(const uint8_t *b, size_t n, const char *name) {
    size_t at = tinfo_at(b, n, name);
    uint32_t nd;
    memcpy(&nd, b + at, 4);
    return at + 4 + 8 * nd;
}
static size_t tinfo_offset_at(const uint8_t *b, size_t n, const char *name) { return tinfo_type_at(b, n, name) + 4; }

enum mutation {
    M_NONE,
    M_MAGIC, M_VERSION_1, M_VERSION_99, M_BIG_ENDIAN, M_TENSOR_COUNT_HUGE, M_KV_COUNT_HUGE,
    M_KEY_LEN_HUGE, M_STRING_LEN_HUGE, M_STRING_ARRAY_HUGE, M_FLOAT_ARRAY_HUGE, M_VALUE_TYPE,
    M_ARRAY_ELEM_TYPE, M_NESTED_ARRAY, M_TENSOR_TYPE_REMOVED, M_TENSOR_TYPE_HUGE, M_DIMS_5, M_DIMS_0,
    M_DIM_ZERO, M_DIM_NEGATIVE, M_ELEMENTS_OVERFLOW, M_BYTES_OVERFLOW, M_OFFSET_OUTSIDE, M_OFFSET_WRAPS,
    M_OFFSET_MISALIGNED, M_OVERLAP, M_DUP_KEY, M_DUP_TENSOR, M_KEY_NUL, M_TENSOR_NAME_NUL, M_BOOL_2,
    M_DATA_TRUNCATED, M_ARRAY_STRING_LEN_HUGE, M_KEY_RENAMED, M_TENSOR_RENAMED, M_ROW_NOT_BLOCKS, M_EMPTY_FILE, M_TENSOR_NAME_LONG,
};

static size_t mutate(uint8_t *b, size_t n, enum mutation m) {
    switch (m) {
    case M_NONE: break;
    case M_MAGIC: b[0] = 'X'; break;
    case M_VERSION_1: put_u32(b + 4, 1); break;
    case M_VERSION_99: put_u32(b + 4, 99); break;
    case M_BIG_ENDIAN: put_u32(b + 4, 0x03000000u); break;
    case M_TENSOR_COUNT_HUGE: put_u64(b + 8, 1ull << 40); break;
    case M_KV_COUNT_HUGE: put_u64(b + 16, 1ull << 40); break;
    case M_KEY_LEN_HUGE: put_u64(b + 24, 1ull << 62); break;
    case M_STRING_LEN_HUGE: put_u64(b + kv_type_at(b, n, "general.name") + 4, 1ull << 50); break;
    case M_STRING_ARRAY_HUGE: put_u64(b + kv_type_at(b, n, "tokenizer.ggml.tokens") + 8, 1ull << 60); break;
    case M_FLOAT_ARRAY_HUGE: put_u64(b + kv_type_at(b, n, "tokenizer.ggml.scores") + 8, 1ull << 62); break;
    case M_VALUE_TYPE: put_u32(b + kv_type_at(b, n, "general.name"), 99); break;
    case M_ARRAY_ELEM_TYPE: put_u32(b + kv_type_at(b, n, "tokenizer.ggml.tokens") + 4, 77); break;
    case M_NESTED_ARRAY: put_u32(b + kv_type_at(b, n, "tokenizer.ggml.scores") + 4, 9); break;
    case M_TENSOR_TYPE_REMOVED: put_u32(b + tinfo_type_at(b, n, "blk.0.attn_q.weight"), 4); break;
    case M_TENSOR_TYPE_HUGE: put_u32(b + tinfo_type_at(b, n, "blk.0.attn_q.weight"), 1000); break;
    case M_DIMS_5: put_u32(b + tinfo_at(b, n, "blk.0.attn_q.weight"), 5); break;
    case M_DIMS_0: put_u32(b + tinfo_at(b, n, "blk.0.attn_q.weight"), 0); break;
    case M_DIM_ZERO: put_u64(b + tinfo_at(b, n, "blk.0.attn_q.weight") + 4, 0); break;
    case M_DIM_NEGATIVE: put_u64(b + tinfo_at(b, n, "blk.0.attn_q.weight") + 4, (uint64_t)-8); break;
    case M_ELEMENTS_OVERFLOW:
        put_u64(b + tinfo_at(b, n, "blk.0.attn_q.weight") + 4, 1ull << 32);
        put_u64(b + tinfo_at(b, n, "blk.0.attn_q.weight") + 12, 1ull << 32);
        break;
    case M_BYTES_OVERFLOW:
        put_u64(b + tinfo_at(b, n, "blk.0.attn_q.weight") + 4, 1ull << 31);
        put_u64(b + tinfo_at(b, n, "blk.0.attn_q.weight") + 12, 1ull << 31);
        break;
    case M_OFFSET_OUTSIDE: put_u64(b + tinfo_offset_at(b, n, "blk.0.ffn_down.weight"), 1ull << 40); break;
    case M_OFFSET_WRAPS: put_u64(b + tinfo_offset_at(b, n, "blk.0.ffn_down.weight"), UINT64_MAX - 31); break;
    case M_OFFSET_MISALIGNED: {
        uint8_t *p = b + tinfo_offset_at(b, n, "blk.0.attn_k.weight");
        put_u64(p, get_u64(p) + 4);
        break;
    }
    case M_OVERLAP:
        put_u64(b + tinfo_offset_at(b, n, "blk.0.attn_k.weight"), get_u64(b + tinfo_offset_at(b, n, "blk.0.attn_q.weight")));
        break;
    case M_DUP_KEY: memcpy(b + find(b, n, "test.bbbb"), "test.aaaa", 9); break;
    case M_DUP_TENSOR: memcpy(b + find(b, n, "blk.0.attn_k.weight"), "blk.0.attn_q.weight", 19); break;
    case M_KEY_NUL: b[find(b, n, "test.aaaa") + 4] = '\0'; break;
    case M_TENSOR_NAME_NUL: b[find(b, n, "blk.0.attn_q.weight") + 5] = '\0'; break;
    case M_BOOL_2: b[kv_type_at(b, n, "test.flag") + 4] = 2; break;
    case M_DATA_TRUNCATED: return n - 16;
    case M_ARRAY_STRING_LEN_HUGE: put_u64(b + kv_type_at(b, n, "tokenizer.ggml.tokens") + 16, 1000000); break;
    case M_KEY_RENAMED: memcpy(b + find(b, n, "llama.block_count"), "llama.block_cXunt", 17); break;
    case M_TENSOR_RENAMED: memcpy(b + find(b, n, "output_norm.weight"), "output_norX.weight", 18); break;
    case M_ROW_NOT_BLOCKS: put_u32(b + tinfo_type_at(b, n, "blk.0.attn_q.weight"), 2 /* q4_0 */); break;
    case M_EMPTY_FILE: return 0;
    case M_TENSOR_NAME_LONG: {
        /* Claim the 19-byte name is 70 bytes long (it then swallows what follows). */
        size_t at = find(b, n, "blk.0.attn_q.weight");
        put_u64(b + at - 8, 70);
        break;
    }
    }
    return n;
}

typedef struct corrupt_case {
    const char *what;
    enum variant variant;
    enum mutation mutation;
    const char *expect; /* the message must contain this */
} corrupt_case;

static const corrupt_case cases[] = {
    {"bad magic", V_BASE, M_MAGIC, "bad magic"},
    {"empty file", V_BASE, M_EMPTY_FILE, "bad magic"},
    {"version 1", V_BASE, M_VERSION_1, "version 1"},
    {"unknown version", V_BASE, M_VERSION_99, "unknown GGUF version 99"},
    {"big-endian file", V_BASE, M_BIG_ENDIAN, "big-endian"},
    {"tensor count past file size", V_BASE, M_TENSOR_COUNT_HUGE, "tensor count"},
    {"metadata count past file size", V_BASE, M_KV_COUNT_HUGE, "metadata count"},
    {"huge key length", V_BASE, M_KEY_LEN_HUGE, "past the end of the file"},
    {"huge string length", V_BASE, M_STRING_LEN_HUGE, "past the end of the file"},
    {"huge string array", V_BASE, M_STRING_ARRAY_HUGE, "array of 1152921504606846976 strings cannot fit"},
    {"huge float array (size overflows)", V_BASE, M_FLOAT_ARRAY_HUGE, "cannot fit"},
    {"unknown value type", V_BASE, M_VALUE_TYPE, "unknown value type 99"},
    {"unknown array element type", V_BASE, M_ARRAY_ELEM_TYPE, "unknown element type 77"},
    {"nested array", V_BASE, M_NESTED_ARRAY, "nested arrays"},
    {"removed tensor type", V_BASE, M_TENSOR_TYPE_REMOVED, "unknown type 4"},
    {"unknown tensor type", V_BASE, M_TENSOR_TYPE_HUGE, "unknown type 1000"},
    {"5 dimensions", V_BASE, M_DIMS_5, "has 5 dimensions"},
    {"0 dimensions", V_BASE, M_DIMS_0, "has 0 dimensions"},
    {"zero dimension", V_BASE, M_DIM_ZERO, "zero dimension"},
    {"negative dimension", V_BASE, M_DIM_NEGATIVE, "negative dimension"},
    {"element count overflows", V_BASE, M_ELEMENTS_OVERFLOW, "element count overflows"},
    {"byte size overflows", V_BASE, M_BYTES_OVERFLOW, "byte size overflows"},
    {"data offset outside the file", V_BASE, M_OFFSET_OUTSIDE, "lies outside the file"},
    {"data offset wraps around", V_BASE, M_OFFSET_WRAPS, "lies outside the file"},
    {"misaligned data offset", V_BASE, M_OFFSET_MISALIGNED, "not a multiple of the alignment"},
    {"overlapping tensors", V_BASE, M_OVERLAP, "overlap"},
    {"duplicate key", V_BASE, M_DUP_KEY, "duplicate metadata key 'test.aaaa'"},
    {"duplicate tensor name", V_BASE, M_DUP_TENSOR, "duplicate tensor name 'blk.0.attn_q.weight'"},
    {"NUL byte in key", V_BASE, M_KEY_NUL, "NUL byte"},
    {"NUL byte in tensor name", V_BASE, M_TENSOR_NAME_NUL, "NUL byte"},
    {"tensor name too long", V_BASE, M_TENSOR_NAME_LONG, "longer than 63 bytes"},
    {"bool that is not 0 or 1", V_BASE, M_BOOL_2, "not 0 or 1"},
    {"tensor data truncated", V_BASE, M_DATA_TRUNCATED, "lies outside the file"},
    {"string in an array past the end", V_BASE, M_ARRAY_STRING_LEN_HUGE, "key 'tokenizer.ggml.tokens': string value"},
    {"row not a whole number of blocks", V_BASE, M_ROW_NOT_BLOCKS, "not a multiple of the q4_0 block size"},
    {"alignment not a power of two", V_ALIGN_3, M_NONE, "general.alignment 3 is not a power of two"},
    {"alignment of the wrong type", V_ALIGN_U64, M_NONE, "general.alignment has type u64"},
    {"required metadata missing", V_NO_BLOCK_COUNT, M_NONE, "required metadata 'llama.block_count' is missing"},
    {"required metadata renamed", V_BASE, M_KEY_RENAMED, "required metadata 'llama.block_count' is missing"},
    {"metadata of the wrong type", V_DIM_STRING, M_NONE, "'llama.embedding_length' has type str"},
    {"zero heads", V_HEADS_0, M_NONE, "head_count = 0"},
    {"more kv heads than heads", V_KV_HEADS_3, M_NONE, "head_count_kv = 3"},
    {"zero context length", V_CONTEXT_0, M_NONE, "context_length = 0"},
    {"unsupported architecture", V_ARCH, M_NONE, "architecture 'gpt2' is not supported"},
    {"unknown tokenizer model", V_TOKENIZER_MODEL, M_NONE, "tokenizer model 'no-such-model' is not supported"},
    {"vocabulary of the wrong element type", V_TOKENS_NOT_STR, M_NONE, "'tokenizer.ggml.tokens' must be an array of str"},
    {"scores of the wrong element type", V_SCORES_INT, M_NONE, "'tokenizer.ggml.scores' must be an array of f32"},
    {"token types of the wrong length", V_TYPES_SHORT, M_NONE, "'tokenizer.ggml.token_type' has 7 entries, the vocabulary has 8"},
    {"empty vocabulary", V_EMPTY_VOCAB, M_NONE, "vocabulary size 0"},
    {"BOS outside the vocabulary", V_BOS_OUT, M_NONE, "bos_token_id' = 8 is outside the vocabulary"},
    {"EOS outside the vocabulary", V_EOS_OUT, M_NONE, "eos_token_id' = 1000 is outside the vocabulary"},
    {"required tensor missing", V_NO_OUTPUT_NORM, M_NONE, "required tensor 'output_norm.weight' is missing"},
    {"required tensor renamed", V_BASE, M_TENSOR_RENAMED, "required tensor 'output_norm.weight' is missing"},
    {"tensor of the wrong shape", V_Q_SHAPE, M_NONE, "'blk.0.attn_q.weight' has shape [8, 4, 1, 1], expected [8, 8]"},
    {"tensor of an unsupported type", V_I32_WEIGHT, M_NONE, "'blk.0.attn_q.weight' has type i32, which this build cannot compute with"},
};

/* Parses, then loads the model; returns the status and fills err. */
static lm_status load(const uint8_t *buf, size_t n, lm_error *err) {
    lm_gguf *g;
    lm_status st = lm_gguf_open_memory(buf, n, &g, err);
    if (st) return st;
    lm_model *m;
    st = lm_model_load_gguf(g, &m, err);
    if (st == LM_OK) lm_model_free(m);
    return st;
}

static void test_base_is_valid(void) {
    size_t n;
    uint8_t *b = build(V_BASE, &n);
    lm_error err = {0};
    CHECKF(load(b, n, &err) == LM_OK, "the base file must load: %s", err.message);
    free(b);
}

static void test_cases(void) {
    size_t n_cases = sizeof cases / sizeof *cases;
    CHECK(n_cases >= 25);
    for (size_t i = 0; i < n_cases; i++) {
        const corrupt_case *c = &cases[i];
        size_t n;
        uint8_t *b = build(c->variant, &n);
        n = mutate(b, n, c->mutation);
        lm_error err = {0};
        lm_status st = load(b, n, &err);
        CHECKF(st != LM_OK, "%s: accepted", c->what);
        CHECKF(st == LM_OK || strstr(err.message, c->expect) != NULL, "%s: message '%s' does not contain '%s'", c->what,
               err.message, c->expect);
        /* The same verdict when the caller does not ask for a message. */
        CHECKF(load(b, n, NULL) != LM_OK, "%s: accepted when no error struct is passed", c->what);
        free(b);
    }
    printf("%zu corrupted files rejected\n", n_cases);
}

/* Every prefix shorter than the header (and a sample of longer ones) fails
 * cleanly with a message about the file ending early. */
static void test_truncation(void) {
    size_t n;
    uint8_t *b = build(V_BASE, &n);
    lm_error err = {0};
    lm_gguf *g;
    REQUIRE(lm_gguf_open_memory(b, n, &g, &err) == LM_OK);
    size_t header = (size_t)lm_gguf_data_offset(g);
    lm_gguf_free(g);
    int bad = 0;
    for (size_t cut = 0; cut < n; cut++) {
        /* A private copy so ASan catches any read past the cut. */
        uint8_t *copy = malloc(cut ? cut : 1);
        memcpy(copy, b, cut);
        lm_error e = {0};
        lm_status st = load(copy, cut, &e);
        if (load(copy, cut, NULL) == LM_OK) st = LM_OK; /* must fail without an error struct too */
        int named = strstr(e.message, "truncated") || strstr(e.message, "magic") || strstr(e.message, "could hold") ||
                    strstr(e.message, "past the end") || strstr(e.message, "cannot fit") ||
                    strstr(e.message, "outside the file");
        if (st == LM_OK || !named) {
            if (bad++ < 5) fprintf(stderr, "truncated at %zu of %zu: status %d, '%s'\n", cut, n, st, e.message);
        }
        free(copy);
    }
    CHECKF(bad == 0, "%d truncations were not rejected with a message about the end of the file", bad);
    printf("truncation at each of %zu bytes rejected (header: %zu bytes)\n", n, header);
    free(b);
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--write-seed") == 0) {
        size_t n;
        uint8_t *b = build(V_BASE, &n);
        FILE *f = fopen(argv[2], "wb");
        REQUIRE(f && fwrite(b, 1, n, f) == n && fclose(f) == 0);
        free(b);
        return 0;
    }
    test_base_is_valid();
    test_cases();
    test_truncation();
    TEST_END();
}
