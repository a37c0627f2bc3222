/* Byte-level BPE training.
 *
 * Text is split on special tokens, then into pre-tokens by a regular
 * expression (GPT-4's by default); only distinct pre-tokens and their counts
 * are kept, so memory grows with the vocabulary of the corpus, not its size.
 * Each step merges the most frequent adjacent pair, counted over all
 * pre-token occurrences and never across pre-tokens; ties go to the
 * lexicographically greater pair of byte strings. Pair counts are updated
 * incrementally (only the words containing the merged pair are touched).
 *
 * Vocabulary layout: special tokens, then the 256 bytes (in GPT-2's
 * bytes_to_unicode order), then one token per merge. */
#ifndef LLMOS_BPE_TRAIN_H
#define LLMOS_BPE_TRAIN_H

#include "llmos/gguf.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lm_bpe_train_params {
    int64_t vocab_size;                /* specials + 256 + merges */
    const char *const *special_tokens; /* may be NULL */
    size_t n_special;
    const char *split_regex;           /* NULL: GPT-4's expression */
    lm_progress_fn progress;           /* may be NULL */
    void *progress_user;
} lm_bpe_train_params;

typedef struct lm_bpe_trainer lm_bpe_trainer;

lm_status lm_bpe_trainer_init(const lm_bpe_train_params *params, lm_bpe_trainer **out, lm_error *err);
void lm_bpe_trainer_free(lm_bpe_trainer *t);

/* Counts the pre-tokens of a piece of text (pre-tokens never span calls). */
lm_status lm_bpe_trainer_add_text(lm_bpe_trainer *t, const char *text, size_t len, lm_error *err);
/* Streams a file in chunks cut where no pre-token can span the cut. */
lm_status lm_bpe_trainer_add_file(lm_bpe_trainer *t, const char *path, lm_error *err);

lm_status lm_bpe_trainer_train(lm_bpe_trainer *t, lm_error *err);

/* Results, after train. */
int64_t lm_bpe_trainer_vocab_size(const lm_bpe_trainer *t);
lm_str lm_bpe_trainer_token_bytes(const lm_bpe_trainer *t, int64_t id);
int64_t lm_bpe_trainer_merge_count(const lm_bpe_trainer *t);
/* The two token ids merge i joined. */
void lm_bpe_trainer_merge(const lm_bpe_trainer *t, int64_t i, int32_t *left, int32_t *right);
int64_t lm_bpe_trainer_distinct_pretokens(const lm_bpe_trainer *t);

/* Writes a vocab-only GGUF (tokenizer.ggml.model = "gpt2", with merges). */
lm_status lm_bpe_trainer_write_gguf(const lm_bpe_trainer *t, const char *path, lm_error *err);

#ifdef __cplusplus
}
#endif
#endif
