/* Tokenizers driven by GGUF metadata (tokenizer.ggml.*).
 *
 * Families: "llama" (SentencePiece-style BPE with scores and byte fallback),
 * "gpt2" (byte-level BPE with merges and a pre-tokenizer chosen by
 * tokenizer.ggml.pre) and "bert" (WordPiece). A tokenizer copies what it
 * needs, so the GGUF may be closed after lm_tokenizer_load. It is read-only
 * afterwards and may be shared between threads.
 *
 * Special tokens are a security boundary: control tokens (<s>, <|im_start|>,
 * ...) are recognised in text only with LM_ENCODE_PARSE_SPECIAL, which callers
 * pass for trusted text (a chat template), never for user input, tool output
 * or documents. */
#ifndef LLMOS_TOKENIZER_H
#define LLMOS_TOKENIZER_H

#include "llmos/gguf.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Token types as GGUF stores them in tokenizer.ggml.token_type. */
typedef enum lm_token_type {
    LM_TOKEN_UNDEFINED = 0,
    LM_TOKEN_NORMAL = 1,
    LM_TOKEN_UNKNOWN = 2,
    LM_TOKEN_CONTROL = 3,
    LM_TOKEN_USER_DEFINED = 4,
    LM_TOKEN_UNUSED = 5,
    LM_TOKEN_BYTE = 6
} lm_token_type;

#define LM_TOKENIZER_MAX_VOCAB (1 << 24)

typedef struct lm_tokenizer lm_tokenizer;

lm_status lm_tokenizer_load(const lm_gguf *g, lm_tokenizer **out, lm_error *err);
void lm_tokenizer_free(lm_tokenizer *tok);

int32_t lm_tokenizer_vocab_size(const lm_tokenizer *tok);
int32_t lm_tokenizer_bos(const lm_tokenizer *tok); /* -1 if none */
int32_t lm_tokenizer_eos(const lm_tokenizer *tok); /* -1 if none */
int lm_tokenizer_add_bos(const lm_tokenizer *tok);
/* End of generation: EOS, EOT, or BOS (a new document starts). */
int lm_tokenizer_is_eog(const lm_tokenizer *tok, int32_t id);
lm_token_type lm_tokenizer_token_type(const lm_tokenizer *tok, int32_t id);
/* The token's text as stored in the vocabulary. */
lm_str lm_tokenizer_token_text(const lm_tokenizer *tok, int32_t id);
/* The id of the token whose text is exactly len bytes of text (the first
 * such id), or -1. */
int32_t lm_tokenizer_find(const lm_tokenizer *tok, const char *text, size_t len);

/* The longest decode_token output, for sizing buffers. */
size_t lm_tokenizer_max_piece_len(const lm_tokenizer *tok);

enum {
    LM_ENCODE_ADD_SPECIAL = 1,  /* BOS/EOS as the metadata says ([CLS]/[SEP] for bert) */
    LM_ENCODE_PARSE_SPECIAL = 2 /* trusted text: control tokens in it become control tokens */
};

/* Encodes len bytes of text (any bytes: invalid UTF-8 is kept byte for
 * byte, so decoding gives the input back). *tokens is malloc'd; the caller
 * frees it. */
lm_status lm_tokenizer_encode(const lm_tokenizer *tok, const char *text, size_t len, unsigned flags,
                              int32_t **tokens, size_t *n_tokens, lm_error *err);

enum {
    LM_DECODE_SPECIAL = 1,    /* render control and unknown tokens as their text (else nothing) */
    LM_DECODE_STRIP_SPACE = 2 /* drop one leading space (the SentencePiece dummy prefix) */
};

/* Writes the bytes token id stands for into buf (at most cap bytes) and
 * returns their count, or -1 if cap is too small or id is invalid. */
int64_t lm_tokenizer_decode_token(const lm_tokenizer *tok, int32_t id, unsigned flags, char *buf, size_t cap);

/* Streaming decoder: feeds tokens one at a time and returns only complete
 * UTF-8 characters, holding the bytes of a character split across tokens
 * until it completes. Bytes that can never complete are passed through as
 * they are, so the concatenated output equals decoding all tokens at once. */
typedef struct lm_detokenizer lm_detokenizer;

lm_status lm_detokenizer_init(const lm_tokenizer *tok, unsigned flags, lm_detokenizer **out, lm_error *err);
void lm_detokenizer_free(lm_detokenizer *d);
/* The largest output of one push or flush, for sizing buffers. */
size_t lm_detokenizer_max_output(const lm_detokenizer *d);
/* Writes the newly complete bytes to out; returns their count or -1 (bad id or small cap). */
int64_t lm_detokenizer_push(lm_detokenizer *d, int32_t id, char *out, size_t cap);
/* Writes whatever is still held (an incomplete character at the end). */
int64_t lm_detokenizer_flush(lm_detokenizer *d, char *out, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
