#ifndef LLMOS_TOKENIZER_INTERNAL_H
#define LLMOS_TOKENIZER_INTERNAL_H

#include "../base/strmap.h"
#include "bigram_heap.h"
#include "llmos/tokenizer.h"
#include "pretok.h"

typedef enum tokenizer_family {
    FAMILY_SPM = 0, /* tokenizer.ggml.model = "llama": SentencePiece BPE with scores */
    FAMILY_BPE = 1, /* "gpt2": byte-level BPE with merges and a pre-tokenizer */
    FAMILY_WPM = 2  /* "bert": WordPiece */
} tokenizer_family;

/* One BPE merge, keyed by its two token ids. */
typedef struct merge_slot {
    uint64_t key; /* ((uint64)left << 32 | right) + 1; 0 = empty */
    int32_t rank;
    int32_t result;
} merge_slot;

struct lm_tokenizer {
    tokenizer_family family;
    int32_t n_vocab;
    char *text_arena;      /* all token texts back to back */
    uint64_t *text_offset; /* (n_vocab + 1) offsets into text_arena */
    float *scores;         /* (n_vocab) */
    uint8_t *types;        /* (n_vocab) lm_token_type */
    lm_strmap text_to_id;
    size_t max_token_len;  /* longest token text, bytes */

    int32_t byte_to_id[256]; /* SPM: <0xNN> byte tokens; BPE: the token of byte b's mapped character; -1 if absent */

    /* BPE */
    merge_slot *merges;
    size_t merge_cap; /* power of two */
    lm_pretok *pretok;
    int ignore_merges;

    /* Tokens matched in text before anything else: CONTROL, USER_DEFINED and
     * UNKNOWN ids, longest text first (ties by id). */
    int32_t *specials;
    size_t n_specials;

    int32_t bos, eos, eot, unk, sep;
    int add_bos, add_eos, add_space_prefix;
};

/* Family encoders: append the tokens of one fragment of raw text. */
lm_status lm_spm_encode(const lm_tokenizer *tok, const char *text, size_t len, int prefix_space, token_vec *out,
                        lm_error *err);
lm_status lm_bpe_encode(const lm_tokenizer *tok, const char *text, size_t len, token_vec *out, lm_error *err);
lm_status lm_wpm_encode(const lm_tokenizer *tok, const char *text, size_t len, token_vec *out, lm_error *err);

lm_str lm_tok_text(const lm_tokenizer *tok, int32_t id);
int32_t lm_tok_find(const lm_tokenizer *tok, const char *text, size_t len);

#endif
