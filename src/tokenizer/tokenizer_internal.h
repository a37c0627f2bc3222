#ifndef LLMOS_TOKENIZER_INTERNAL_H
#define LLMOS_TOKENIZER_INTERNAL_H

#include "../base/strmap.h"
#include "llmos/tokenizer.h"

typedef enum tokenizer_family {
    FAMILY_SPM = 0 /* tokenizer.ggml.model = "llama" */
} tokenizer_family;

struct lm_tokenizer {
    tokenizer_family family;
    int32_t n_vocab;
    char *text_arena;      /* all token texts back to back */
    uint64_t *text_offset; /* (n_vocab + 1) offsets into text_arena */
    float *scores;         /* (n_vocab) */
    uint8_t *types;        /* (n_vocab) lm_token_type */
    lm_strmap text_to_id;
    int32_t byte_to_id[256]; /* <0xNN> tokens; -1 if absent */
    int32_t bos, eos, eot, unk;
    int add_bos, add_eos, add_space_prefix;
};

lm_status lm_spm_encode(const lm_tokenizer *tok, const char *text, size_t len, int32_t **out, size_t *n_out,
                        size_t *cap_out, lm_error *err);

#endif
