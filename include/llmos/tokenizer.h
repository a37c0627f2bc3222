/* Tokenizers driven by GGUF metadata (tokenizer.ggml.*).
 *
 * Supported families: "llama" (SentencePiece-style BPE with scores and byte
 * fallback). A tokenizer copies what it needs, so the GGUF may be closed
 * after lm_tokenizer_load. */
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

/* The longest decode_token output, for sizing buffers. */
size_t lm_tokenizer_max_piece_len(const lm_tokenizer *tok);

/* Encodes len bytes of text (any bytes; invalid UTF-8 goes through byte
 * fallback). *tokens is malloc'd; the caller frees it. */
lm_status lm_tokenizer_encode(const lm_tokenizer *tok, const char *text, size_t len, int add_bos,
                              int32_t **tokens, size_t *n_tokens, lm_error *err);

/* Writes the bytes token id stands for into buf (at most cap bytes) and
 * returns their count, or -1 if cap is too small or id is invalid. Control
 * tokens decode to nothing. strip_leading_space removes the space that the
 * SentencePiece dummy prefix puts at the start of a text. */
int64_t lm_tokenizer_decode_token(const lm_tokenizer *tok, int32_t id, int strip_leading_space,
                                  char *buf, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
