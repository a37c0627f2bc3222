/* libFuzzer target for the tokenizers: any bytes are encoded as untrusted
 * and as trusted text with GPT-2's byte-level BPE and stories260K's
 * SentencePiece vocabulary, then decoded with the streaming decoder.
 * decode(encode(x)) must equal x for untrusted text, byte for byte; any
 * difference traps, so the fuzzer reports it as a crash. A small WordPiece
 * vocabulary encodes and decodes every input too (it lower-cases, so it
 * cannot round-trip; it must only not fail or crash). */
#include "llmos/tokenizer.h"

#include <stdlib.h>
#include <string.h>

#ifndef LLMOS_FIXTURES
#define LLMOS_FIXTURES "tests/fixtures"
#endif

static lm_tokenizer *toks[2], *wordpiece;

static lm_tokenizer *make_wordpiece(void) {
    lm_str tokens[] = {{"[PAD]", 5}, {"[UNK]", 5}, {"[CLS]", 5}, {"[SEP]", 5}, {"\xe2\x96\x81hello", 8},
                       {"\xe2\x96\x81world", 8}, {"\xe2\x96\x81!", 4}, {"ab", 2}, {"\xe2\x96\x81" "a", 4}, {"b", 1}};
    int32_t types[10] = {3, 2, 3, 3, 1, 1, 1, 1, 1, 1};
    lm_error err;
    lm_gguf_writer *w = lm_gguf_writer_init();
    lm_gguf_writer_set_str(w, "tokenizer.ggml.model", "bert", &err);
    lm_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", tokens, 10, &err);
    lm_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", LM_GGUF_INT32, types, 10, &err);
    lm_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 1, &err);
    lm_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 2, &err);
    lm_gguf_writer_set_u32(w, "tokenizer.ggml.seperator_token_id", 3, &err);
    uint8_t *buf;
    size_t n;
    lm_gguf *g;
    lm_tokenizer *t = NULL;
    if (lm_gguf_writer_write_memory(w, &buf, &n, &err) || lm_gguf_open_memory(buf, n, &g, &err)) abort();
    if (lm_tokenizer_load(g, &t, &err)) abort();
    lm_gguf_free(g);
    free(buf);
    lm_gguf_writer_free(w);
    return t;
}

static lm_tokenizer *load(const char *path) {
    lm_gguf *g;
    lm_error err;
    lm_tokenizer *t = NULL;
    if (lm_gguf_open(path, &g, &err) != LM_OK) abort();
    if (lm_tokenizer_load(g, &t, &err) != LM_OK) abort();
    lm_gguf_free(g);
    return t;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    toks[0] = load(LLMOS_FIXTURES "/vocab/ggml-vocab-gpt-2.gguf");
    toks[1] = load(LLMOS_FIXTURES "/stories260K.gguf");
    wordpiece = make_wordpiece();
    return 0;
}

static size_t decode(const lm_tokenizer *tok, const int32_t *ids, size_t n, char *out, size_t cap) {
    lm_detokenizer *d;
    lm_error err;
    if (lm_detokenizer_init(tok, 0, &d, &err) != LM_OK) return 0;
    size_t len = 0, step = lm_detokenizer_max_output(d);
    for (size_t i = 0; i < n && len + step <= cap; i++) {
        int64_t k = lm_detokenizer_push(d, ids[i], out + len, step);
        if (k < 0) __builtin_trap();
        len += (size_t)k;
    }
    int64_t k = len + step <= cap ? lm_detokenizer_flush(d, out + len, step) : -1;
    if (k < 0) __builtin_trap();
    len += (size_t)k;
    lm_detokenizer_free(d);
    return len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *text = (const char *)data;
    for (int t = 0; t < 2; t++) {
        lm_error err;
        int32_t *ids;
        size_t n;
        if (lm_tokenizer_encode(toks[t], text, size, LM_ENCODE_ADD_SPECIAL, &ids, &n, &err) != LM_OK) __builtin_trap();
        /* Every token decodes to at most 256 bytes here; 8x the input plus slack is plenty. */
        size_t cap = size * 8 + 4096;
        char *back = malloc(cap);
        if (!back) abort();
        size_t len = decode(toks[t], ids, n, back, cap);
        if (len != size || memcmp(back, text, size) != 0) __builtin_trap();
        free(back);
        free(ids);
        if (lm_tokenizer_encode(toks[t], text, size, LM_ENCODE_PARSE_SPECIAL, &ids, &n, &err) == LM_OK) free(ids);
    }
    lm_error err;
    int32_t *ids;
    size_t n;
    if (lm_tokenizer_encode(wordpiece, text, size, LM_ENCODE_ADD_SPECIAL | LM_ENCODE_PARSE_SPECIAL, &ids, &n, &err) != LM_OK) {
        __builtin_trap();
    }
    char *back = malloc(n * 16 + 16);
    if (!back) abort();
    decode(wordpiece, ids, n, back, n * 16 + 16);
    free(back);
    free(ids);
    return 0;
}
