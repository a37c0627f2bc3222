/* Tokenizer tests: the BPE trainer against the CS336 reference, control
 * tokens as a security boundary, decode(encode(x)) == x on arbitrary bytes
 * for every byte-exact family, streaming decode of split characters,
 * WordPiece, and clear errors for unknown tokenizer kinds. */
#include "base/rng.h"
#include "llmos/bpe_train.h"
#include "llmos/tokenizer.h"
#include "test.h"
#include "tokenizer/unicode.h"

#include <unistd.h>

#define FIX(name) LLMOS_FIXTURES "/" name

static const char *CS336_GPT2_PATTERN = "'(?:[sdmt]|ll|ve|re)| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static lm_tokenizer *load_tokenizer(const char *path) {
    lm_error err = {0};
    lm_gguf *g;
    if (lm_gguf_open(path, &g, &err)) {
        fprintf(stderr, "%s: %s\n", path, err.message);
        exit(1);
    }
    lm_tokenizer *tok;
    lm_status st = lm_tokenizer_load(g, &tok, &err);
    lm_gguf_free(g);
    if (st) {
        fprintf(stderr, "%s: %s\n", path, err.message);
        exit(1);
    }
    return tok;
}

/* The byte-level text of a trained token: specials as they are, others mapped. */
static size_t token_text(const lm_bpe_trainer *t, int64_t id, int64_t n_special, char *out) {
    lm_str b = lm_bpe_trainer_token_bytes(t, id);
    if (id < n_special) {
        memcpy(out, b.ptr, (size_t)b.len);
        return (size_t)b.len;
    }
    return lm_bytes_to_unicode_text((const uint8_t *)b.ptr, (size_t)b.len, out);
}

/* Next "key": id pair of a flat JSON object of strings to integers. */
static int next_json_entry(const char **p, char *key, long *id) {
    const char *s = strchr(*p, '"');
    if (!s) return 0;
    s++;
    size_t n = 0;
    while (*s && *s != '"') {
        if (*s == '\\') {
            s++;
            if (*s == 'u') {
                unsigned cp = (unsigned)strtoul((char[5]){s[1], s[2], s[3], s[4], 0}, NULL, 16);
                s += 5;
                if (cp >= 0xd800 && cp < 0xdc00 && s[0] == '\\' && s[1] == 'u') {
                    unsigned lo = (unsigned)strtoul((char[5]){s[2], s[3], s[4], s[5], 0}, NULL, 16);
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    s += 6;
                }
                n += lm_utf8_encode(cp, key + n);
                continue;
            }
            key[n++] = *s == 'n' ? '\n' : *s == 't' ? '\t' : *s == 'r' ? '\r' : *s;
            s++;
        } else {
            key[n++] = *s++;
        }
    }
    key[n] = '\0';
    s = strchr(s, ':');
    if (!s) return 0;
    *id = strtol(s + 1, (char **)p, 10);
    return 1;
}

static void test_trainer_reference(void) {
    const char *specials[] = {"<|endoftext|>"};
    lm_bpe_train_params p = {500, specials, 1, CS336_GPT2_PATTERN, NULL, NULL};
    lm_bpe_trainer *t;
    lm_error err = {0};
    REQUIRE(lm_bpe_trainer_init(&p, &t, &err) == LM_OK);
    REQUIRE(lm_bpe_trainer_add_file(t, FIX("bpe-reference/corpus.en"), &err) == LM_OK);
    REQUIRE(lm_bpe_trainer_train(t, &err) == LM_OK);
    CHECK(lm_bpe_trainer_vocab_size(t) == 500);
    CHECK(lm_bpe_trainer_merge_count(t) == 243);

    char *merges = test_read_file(FIX("bpe-reference/train-bpe-reference-merges.txt"), NULL);
    REQUIRE(merges);
    char *line = merges;
    int64_t i = 0, wrong = 0;
    for (; *line && i < lm_bpe_trainer_merge_count(t); i++) {
        char *end = strchr(line, '\n');
        if (end) *end = '\0';
        int32_t a, b;
        lm_bpe_trainer_merge(t, i, &a, &b);
        char got[256];
        size_t n = token_text(t, a, 1, got);
        got[n++] = ' ';
        n += token_text(t, b, 1, got + n);
        got[n] = '\0';
        if (strcmp(got, line) != 0 && wrong++ < 3) fprintf(stderr, "merge %lld: got '%s', reference '%s'\n", (long long)i, got, line);
        line = end ? end + 1 : line + strlen(line);
    }
    CHECKF(wrong == 0 && i == 243, "%lld of %lld merges differ from the reference", (long long)wrong, (long long)i);
    free(merges);

    char *vocab = test_read_file(FIX("bpe-reference/train-bpe-reference-vocab.json"), NULL);
    REQUIRE(vocab);
    const char *vp = vocab;
    char key[256];
    long id;
    int entries = 0, mismatched = 0;
    while (next_json_entry(&vp, key, &id)) {
        entries++;
        char ours[256];
        size_t n = id >= 0 && id < 500 ? token_text(t, id, 1, ours) : 0;
        ours[n] = '\0';
        if (strcmp(ours, key) != 0) mismatched++;
    }
    CHECKF(entries == 500 && mismatched == 0, "vocabulary: %d entries, %d differ in id or text", entries, mismatched);
    free(vocab);

    /* The written GGUF is a tokenizer every command accepts; its pre-tokenizer is GPT-2's. */
    char path[] = "/tmp/llmos-tok-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    close(fd);
    CHECK(lm_bpe_trainer_write_gguf(t, path, &err) == LM_OK);
    lm_bpe_trainer_free(t);
    lm_gguf *g;
    REQUIRE(lm_gguf_open(path, &g, &err) == LM_OK);
    lm_str pre;
    CHECK(lm_gguf_require_str(g, "tokenizer.ggml.pre", &pre, &err) == LM_OK && lm_str_eq(pre, "gpt-2"));
    lm_gguf_free(g);
    lm_tokenizer *tok = load_tokenizer(path);
    size_t len;
    char *corpus = test_read_file(FIX("bpe-reference/corpus.en"), &len);
    int32_t *ids;
    size_t n;
    CHECK(lm_tokenizer_encode(tok, corpus, len, 0, &ids, &n, &err) == LM_OK);
    CHECK(n > 0 && n < len / 2); /* 243 merges compress English well below 2 bytes a token */
    free(ids);
    free(corpus);
    lm_tokenizer_free(tok);
    unlink(path);
}

static int contains(const int32_t *ids, size_t n, int32_t id) {
    for (size_t i = 0; i < n; i++) {
        if (ids[i] == id) return 1;
    }
    return 0;
}

/* Control tokens written in untrusted text stay text. */
static void test_control_tokens(void) {
    struct {
        const char *path, *text;
        int32_t control;
    } cases[] = {
        {FIX("vocab/ggml-vocab-gpt-2.gguf"), "Hello<|endoftext|>world", 50256},
        {FIX("stories260K.gguf"), "Hello <s> world </s>", 1},
        {FIX("stories260K.gguf"), "Hello <s> world </s>", 2},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        lm_tokenizer *tok = load_tokenizer(cases[c].path);
        lm_error err = {0};
        int32_t *ids;
        size_t n;
        const char *text = cases[c].text;
        REQUIRE(lm_tokenizer_encode(tok, text, strlen(text), 0, &ids, &n, &err) == LM_OK);
        CHECKF(!contains(ids, n, cases[c].control), "untrusted '%s' produced control token %d", text, cases[c].control);
        free(ids);
        REQUIRE(lm_tokenizer_encode(tok, text, strlen(text), LM_ENCODE_PARSE_SPECIAL, &ids, &n, &err) == LM_OK);
        CHECKF(contains(ids, n, cases[c].control), "trusted '%s' lacks control token %d", text, cases[c].control);
        free(ids);
        lm_tokenizer_free(tok);
    }
}

/* Decodes with the streaming detokenizer, checking it against per-token decoding. */
static size_t decode_all(const lm_tokenizer *tok, const int32_t *ids, size_t n, char *out) {
    lm_detokenizer *d;
    lm_error err;
    REQUIRE(lm_detokenizer_init(tok, 0, &d, &err) == LM_OK);
    size_t len = 0, cap = lm_detokenizer_max_output(d);
    for (size_t i = 0; i < n; i++) {
        int64_t k = lm_detokenizer_push(d, ids[i], out + len, cap);
        CHECK(k >= 0);
        if (k > 0) len += (size_t)k;
    }
    int64_t k = lm_detokenizer_flush(d, out + len, cap);
    CHECK(k >= 0);
    if (k > 0) len += (size_t)k;
    lm_detokenizer_free(d);
    return len;
}

static void roundtrip_random(const char *name, const lm_tokenizer *tok, uint64_t seed) {
    static const char *alphabet[] = {" ", "  ", "a", "e", "the", " Lily", "\n", "\n\n", "\xc3\xa9", "\xff", "\x80", "\xe2\x82",
                                     "<s>", "</s>", "<|endoftext|>", "\xf0\x9f\x98\x80", "\t", "\xe2\x96\x81", "'s", "123",
                                     "\xe4\xb8\xad\xe6\x96\x87", "\r\n", "\xc2\x85", "!!"};
    size_t n_alpha = sizeof alphabet / sizeof *alphabet;
    lm_rng rng;
    lm_rng_seed(&rng, seed);
    char *text = malloc(8192), *back = malloc(8192 * 8);
    int failures = 0;
    const int iterations = 3000;
    for (int iter = 0; iter < iterations; iter++) {
        size_t len = 0, parts = lm_rng_next(&rng) % 60;
        for (size_t p = 0; p < parts; p++) {
            if (lm_rng_next(&rng) % 3 == 0) {
                text[len++] = (char)(lm_rng_next(&rng) & 0xff);
            } else {
                const char *a = alphabet[lm_rng_next(&rng) % n_alpha];
                memcpy(text + len, a, strlen(a));
                len += strlen(a);
            }
        }
        lm_error err;
        int32_t *ids;
        size_t n;
        if (lm_tokenizer_encode(tok, text, len, LM_ENCODE_ADD_SPECIAL, &ids, &n, &err) != LM_OK) {
            if (failures++ < 3) fprintf(stderr, "%s: encode failed: %s\n", name, err.message);
            continue;
        }
        size_t blen = decode_all(tok, ids, n, back);
        if (blen != len || memcmp(back, text, len) != 0) {
            if (failures++ < 3) fprintf(stderr, "%s: %zu bytes -> %zu tokens -> %zu bytes\n", name, len, n, blen);
        }
        free(ids);
    }
    CHECKF(failures == 0, "%s: %d of %d random texts did not survive encode/decode", name, failures, iterations);
    free(text);
    free(back);
}

static void test_roundtrip(void) {
    lm_tokenizer *gpt2 = load_tokenizer(FIX("vocab/ggml-vocab-gpt-2.gguf"));
    roundtrip_random("gpt-2 (byte-level BPE)", gpt2, 1);
    lm_tokenizer *spm = load_tokenizer(FIX("stories260K.gguf"));
    roundtrip_random("stories260K (SentencePiece)", spm, 2);

    /* A tokenizer trained here with the default (GPT-4 / Llama 3) expression:
     * exercises the llama-bpe pre-tokenizer and ignore_merges. */
    lm_bpe_train_params p = {400, NULL, 0, NULL, NULL, NULL};
    lm_bpe_trainer *t;
    lm_error err;
    REQUIRE(lm_bpe_trainer_init(&p, &t, &err) == LM_OK);
    REQUIRE(lm_bpe_trainer_add_file(t, FIX("bpe-reference/corpus.en"), &err) == LM_OK);
    REQUIRE(lm_bpe_trainer_train(t, &err) == LM_OK);
    char path[] = "/tmp/llmos-tok-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    close(fd);
    REQUIRE(lm_bpe_trainer_write_gguf(t, path, &err) == LM_OK);
    lm_bpe_trainer_free(t);
    lm_tokenizer *ours = load_tokenizer(path);
    roundtrip_random("trained llama-bpe", ours, 3);
    unlink(path);

    /* A character split over byte tokens comes out whole, once complete. */
    int32_t *ids;
    size_t n;
    const char *emoji = "\xf0\x9f\x98\x80";
    REQUIRE(lm_tokenizer_encode(gpt2, emoji, 4, 0, &ids, &n, &err) == LM_OK);
    CHECK(n >= 2);
    lm_detokenizer *d;
    REQUIRE(lm_detokenizer_init(gpt2, 0, &d, &err) == LM_OK);
    char out[64];
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t k = lm_detokenizer_push(d, ids[i], out + total, sizeof out - total);
        CHECKF(i + 1 == n ? k == 4 : k == 0, "push %zu of %zu gave %lld bytes", i, n, (long long)k);
        if (k > 0) total += (size_t)k;
    }
    CHECK(total == 4 && memcmp(out, emoji, 4) == 0);
    lm_detokenizer_free(d);
    free(ids);
    lm_tokenizer_free(gpt2);
    lm_tokenizer_free(spm);
    lm_tokenizer_free(ours);
}

static lm_tokenizer *tokenizer_from(lm_gguf_writer *w, lm_error *err, lm_status *st) {
    uint8_t *buf;
    size_t n;
    REQUIRE(lm_gguf_writer_write_memory(w, &buf, &n, err) == LM_OK);
    lm_gguf *g;
    REQUIRE(lm_gguf_open_memory(buf, n, &g, err) == LM_OK);
    lm_tokenizer *tok = NULL;
    *st = lm_tokenizer_load(g, &tok, err);
    lm_gguf_free(g);
    free(buf);
    return tok;
}

static void test_wordpiece(void) {
    lm_str tokens[] = {{"[PAD]", 5}, {"[UNK]", 5}, {"[CLS]", 5}, {"[SEP]", 5}, {"\xe2\x96\x81hello", 8},
                       {"\xe2\x96\x81world", 8}, {"\xe2\x96\x81!", 4}, {"\xe2\x96\x81,", 4}, {"\xe2\x96\x81" "cafe", 7},
                       {"\xe2\x96\x81un", 5}, {"aff", 3}, {"able", 4}, {"\xe2\x96\x81\xe4\xb8\xad", 6},
                       {"\xe2\x96\x81\xe5\x9b\xbd", 6}};
    int32_t types[14] = {3, 2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    lm_error err = {0};
    lm_gguf_writer *w = lm_gguf_writer_init();
    lm_gguf_writer_set_str(w, "tokenizer.ggml.model", "bert", &err);
    lm_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", tokens, 14, &err);
    lm_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", LM_GGUF_INT32, types, 14, &err);
    lm_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 1, &err);
    lm_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 2, &err);
    lm_gguf_writer_set_u32(w, "tokenizer.ggml.seperator_token_id", 3, &err);
    lm_status st;
    lm_tokenizer *tok = tokenizer_from(w, &err, &st);
    lm_gguf_writer_free(w);
    CHECKF(st == LM_OK, "%s", err.message);
    if (st) return;
    const char *text = "Hello, WORLD! Caf\xc3\xa9 unaffable \xe4\xb8\xad\xe5\x9b\xbd xyz\x01";
    int32_t want[] = {2, 4, 7, 5, 6, 8, 9, 10, 11, 12, 13, 1, 3};
    int32_t *ids;
    size_t n;
    CHECK(lm_tokenizer_encode(tok, text, strlen(text), LM_ENCODE_ADD_SPECIAL, &ids, &n, &err) == LM_OK);
    CHECKF(n == sizeof want / sizeof *want && memcmp(ids, want, sizeof want) == 0, "WordPiece gave %zu tokens", n);
    for (size_t i = 0; i < n && i < 13; i++) {
        if (ids[i] != want[i]) fprintf(stderr, "  token %zu: %d, want %d\n", i, ids[i], want[i]);
    }
    char out[256];
    size_t len = decode_all(tok, ids + 1, n - 2, out);
    out[len] = '\0';
    /* Word starts decode as spaces; [UNK] is a control-like token, not text. */
    CHECKF(strcmp(out, "hello , world ! cafe unaffable \xe4\xb8\xad \xe5\x9b\xbd") == 0, "WordPiece decoded '%s'", out);
    free(ids);
    lm_tokenizer_free(tok);
}

/* A special token that starts before another, shorter one but ends after it. */
static void test_trainer_specials(void) {
    const char *specials[] = {"<b>", "<a<b>"};
    lm_bpe_train_params p = {300, specials, 2, NULL, NULL, NULL};
    lm_bpe_trainer *t;
    lm_error err = {0};
    REQUIRE(lm_bpe_trainer_init(&p, &t, &err) == LM_OK);
    CHECK(lm_bpe_trainer_add_text(t, "<a<b>", 5, &err) == LM_OK);
    CHECKF(lm_bpe_trainer_distinct_pretokens(t) == 0, "%lld pre-tokens counted in a text that is one special token",
           (long long)lm_bpe_trainer_distinct_pretokens(t));
    lm_bpe_trainer_free(t);
    const char *bad[] = {"<a\nb>"};
    lm_bpe_train_params q = {300, bad, 1, NULL, NULL, NULL};
    CHECK(lm_bpe_trainer_init(&q, &t, &err) == LM_ERR_ARG && strstr(err.message, "newline"));
}

static void test_unknown_kinds(void) {
    lm_str tokens[] = {{"a", 1}, {"b", 1}};
    lm_str merges[] = {{"a b", 3}};
    const char *pre_values[] = {"no-such-pre", NULL};
    for (int k = 0; k < 2; k++) {
        lm_error err = {0};
        lm_gguf_writer *w = lm_gguf_writer_init();
        lm_gguf_writer_set_str(w, "tokenizer.ggml.model", k == 0 ? "gpt2" : "rwkv-world", &err);
        if (pre_values[k]) lm_gguf_writer_set_str(w, "tokenizer.ggml.pre", pre_values[k], &err);
        lm_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", tokens, 2, &err);
        lm_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, 1, &err);
        lm_status st;
        lm_tokenizer *tok = tokenizer_from(w, &err, &st);
        lm_gguf_writer_free(w);
        CHECK(st != LM_OK && tok == NULL);
        const char *want = k == 0 ? "unknown pre-tokenizer 'no-such-pre'" : "tokenizer model 'rwkv-world' is not supported";
        CHECKF(strstr(err.message, want) != NULL, "message '%s' lacks '%s'", err.message, want);
    }
}

int main(void) {
    test_trainer_reference();
    test_control_tokens();
    test_roundtrip();
    test_wordpiece();
    test_unknown_kinds();
    test_trainer_specials();
    TEST_END();
}
