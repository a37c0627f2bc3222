/* Training data: token shards on disk, their writer and reader, and the
 * preparation of shards from raw text files.
 *
 * A shard (format in docs/formats.md) is a 32-byte header — magic "LMTOKENS",
 * u32 version 1, u32 token width (2 when the vocabulary has at most 65536
 * tokens, else 4), u64 token count, u32 vocabulary size, u32 reserved 0 — and
 * the tokens, little-endian. A split ("train", "val") of a directory is the
 * shards DIR/SPLIT_000000.bin, DIR/SPLIT_000001.bin, ... in that order.
 *
 * Shards are untrusted input: lm_data_open checks every header and every
 * token id before it returns, so lm_data_read never meets a bad value. */
#ifndef LLMOS_DATA_H
#define LLMOS_DATA_H

#include "llmos/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LM_DATA_MAGIC "LMTOKENS"
#define LM_DATA_VERSION 1
#define LM_DATA_HEADER_SIZE 32
#define LM_DATA_MAX_SHARD_TOKENS ((int64_t)1 << 40)
#define LM_DATA_DEFAULT_SHARD_TOKENS ((int64_t)100000000)

/* The token width a vocabulary of vocab_size tokens gets: 2 or 4 bytes. */
int lm_data_token_width(uint32_t vocab_size);

/* ---- Writer: streams tokens of one split into shards. ----
 *
 * Tokens are buffered until a shard is full (shard_tokens of them), then the
 * shard is written atomically (temporary file, fsync, rename); memory is one
 * shard, at most shard_tokens × width bytes. */
typedef struct lm_data_writer lm_data_writer;

/* Creates dir (and missing parents) if needed; it must otherwise be a
 * directory. split: 1-64 characters of [A-Za-z0-9-]. vocab_size: 1..INT32_MAX.
 * shard_tokens: 1..LM_DATA_MAX_SHARD_TOKENS, or 0 for the default. */
lm_status lm_data_writer_open(const char *dir, const char *split, uint32_t vocab_size, int64_t shard_tokens,
                              lm_data_writer **out, lm_error *err);
/* Appends n tokens; each must be in 0..vocab_size-1 (else LM_ERR_ARG and
 * nothing of this call is written). */
lm_status lm_data_writer_write(lm_data_writer *w, const int32_t *tokens, size_t n, lm_error *err);
/* Writes the last, partly filled shard, then removes the shards of this split
 * that a previous run left in dir past the last one written (so the split is
 * exactly what this writer wrote; with no tokens, it has no shards). */
lm_status lm_data_writer_finish(lm_data_writer *w, lm_error *err);
/* Frees the writer; tokens not yet in a finished shard are dropped. */
void lm_data_writer_free(lm_data_writer *w);
int64_t lm_data_writer_tokens(const lm_data_writer *w); /* tokens written so far */
int64_t lm_data_writer_shards(const lm_data_writer *w); /* shard files committed so far */

/* ---- Reader: one split, memory-mapped; read-only once open, so threads may
 * call lm_data_read on the same lm_data at once. ---- */
typedef struct lm_data lm_data;

/* Opens every shard of split in dir. Fails, with a message naming the file
 * and the problem, on: no shards or zero tokens in all; a gap in the
 * numbering; a shard with a bad magic, version, width (2 or 4, as the
 * vocabulary size requires), reserved field, count (at most 2^40), size
 * (exactly 32 + count × width) or vocabulary size (1..INT32_MAX, the same in
 * every shard); a token id not below the vocabulary size. */
lm_status lm_data_open(const char *dir, const char *split, lm_data **out, lm_error *err);
int64_t lm_data_tokens(const lm_data *d); /* all shards together, > 0 */
uint32_t lm_data_vocab_size(const lm_data *d);
int64_t lm_data_shard_count(const lm_data *d);
/* Copies n tokens starting at global position pos (taken modulo the total,
 * negative positions too), wrapping from the end of the last shard to the
 * start of the first. */
void lm_data_read(const lm_data *d, int64_t pos, int32_t *out, int64_t n);
void lm_data_close(lm_data *d);

/* ---- Preparation: text files -> train and val shards. ----
 *
 * Documents are the pieces of each file between delimiters (a document never
 * spans two files); each is trimmed of surrounding ASCII white space, skipped
 * if empty, encoded as plain text (no special-token parsing, no BOS/EOS from
 * the tokenizer's own settings) and written as BOS + tokens + EOS, leaving out
 * BOS or EOS when the tokenizer has none. Files are read twice in chunks: the
 * first pass counts the documents, the second encodes them; the last
 * round(val_fraction × documents) documents in file order go to "val" (at
 * least one when val_fraction > 0 and there are two or more documents, never
 * all of them), the rest to "train". Memory: one chunk, one document, one
 * shard per split. */
typedef struct lm_data_prepare_params {
    const lm_tokenizer *tok;
    const char *const *files;
    size_t n_files;
    const char *out_dir;
    double val_fraction;      /* 0 <= val_fraction < 1 */
    const char *delimiter;    /* delimiter_len bytes; NULL: each file is one document */
    size_t delimiter_len;     /* >= 1 when delimiter is set */
    int64_t shard_tokens;     /* 0: LM_DATA_DEFAULT_SHARD_TOKENS */
    size_t chunk_bytes;       /* read size; 0: 1 MiB */
    size_t max_document_bytes; /* a longer document is an error; 0: 64 MiB */
    lm_progress_fn progress;  /* stages "counting" and "tokenizing", in bytes; may be NULL */
    void *progress_user;
} lm_data_prepare_params;

typedef struct lm_data_prepare_stats {
    int64_t documents, train_documents, val_documents;
    int64_t tokens, train_tokens, val_tokens; /* BOS and EOS included */
    int64_t text_bytes;                       /* bytes of the trimmed documents */
    int64_t text_tokens;                      /* their tokens, BOS and EOS not counted */
    int64_t input_bytes;                      /* size of the files */
    int64_t train_shards, val_shards;
} lm_data_prepare_stats;

/* The default delimiter: a blank line. */
#define LM_DATA_DEFAULT_DELIMITER "\n\n"

lm_status lm_data_prepare(const lm_data_prepare_params *p, lm_data_prepare_stats *stats, lm_error *err);

#ifdef __cplusplus
}
#endif
#endif
