/* Text files -> train/val token shards, in two streaming passes: the first
 * counts the documents (so the split point is known), the second encodes them
 * and feeds the two shard writers. Both passes cut documents with the same
 * code, reading fixed-size chunks and carrying the last delimiter_len - 1
 * bytes over so a delimiter split between two chunks is still found. */
#include "llmos/data.h"

#include "../base/bytes.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DEFAULT_CHUNK ((size_t)1 << 20)
#define DEFAULT_MAX_DOCUMENT ((size_t)64 << 20)

typedef struct prep {
    const lm_data_prepare_params *p;
    lm_data_prepare_stats *stats;
    int encode; /* 0: counting pass; 1: encoding pass */
    const char *file;
    /* The current document from its first non-blank byte on (bytes kept only
     * when encoding; the length is tracked in both passes). */
    char *doc;
    size_t doc_len, doc_cap, max_doc;
    int64_t doc_start; /* file offset where the current document begins */
    int64_t n_docs;    /* non-empty documents so far in this pass */
    int64_t n_train;   /* encoding pass: documents [0, n_train) go to train */
    lm_data_writer *train, *val;
    int32_t bos, eos;
    const char *stage;
    int64_t done, total; /* bytes, for progress */
} prep;

static int is_blank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

static lm_status append(prep *pr, const char *s, size_t n, lm_error *err) {
    if (pr->doc_len == 0) {
        while (n > 0 && is_blank(*s)) {
            s++;
            n--;
        }
        if (n == 0) return LM_OK;
    }
    if (n > pr->max_doc - pr->doc_len) {
        return lm_error_set(err, LM_ERR_LIMIT,
                            "%s: the document at byte %lld is longer than %zu bytes (separate documents with a "
                            "delimiter)",
                            pr->file, (long long)pr->doc_start, pr->max_doc);
    }
    if (pr->encode) {
        if (pr->doc_len + n > pr->doc_cap) {
            size_t cap = pr->doc_cap ? pr->doc_cap : 4096;
            while (cap < pr->doc_len + n) cap *= 2;
            char *q = realloc(pr->doc, cap);
            if (!q) return lm_error_set(err, LM_ERR_NOMEM, "out of memory for a document of %zu bytes", cap);
            pr->doc = q;
            pr->doc_cap = cap;
        }
        memcpy(pr->doc + pr->doc_len, s, n);
    }
    pr->doc_len += n;
    return LM_OK;
}

static lm_status write_doc(prep *pr, lm_error *err) {
    size_t len = pr->doc_len;
    while (len > 0 && is_blank(pr->doc[len - 1])) len--;
    int64_t index = pr->n_docs++;
    int to_val = index >= pr->n_train;
    int32_t *ids;
    size_t n;
    /* Plain text: no special-token parsing, no BOS/EOS from the tokenizer's settings. */
    lm_status st = lm_tokenizer_encode(pr->p->tok, pr->doc, len, 0, &ids, &n, err);
    if (st) return lm_error_prefix(err, st, "%s: document at byte %lld: ", pr->file, (long long)pr->doc_start);
    lm_data_writer *w = to_val ? pr->val : pr->train;
    int64_t specials = 0;
    if (pr->bos >= 0) {
        st = lm_data_writer_write(w, &pr->bos, 1, err);
        specials++;
    }
    if (st == LM_OK) st = lm_data_writer_write(w, ids, n, err);
    if (st == LM_OK && pr->eos >= 0) {
        st = lm_data_writer_write(w, &pr->eos, 1, err);
        specials++;
    }
    free(ids);
    if (st) return st;
    lm_data_prepare_stats *s = pr->stats;
    int64_t t = (int64_t)n + specials;
    s->text_bytes += (int64_t)len;
    s->text_tokens += (int64_t)n;
    s->tokens += t;
    if (to_val) {
        s->val_documents++;
        s->val_tokens += t;
    } else {
        s->train_documents++;
        s->train_tokens += t;
    }
    return LM_OK;
}

/* Ends the current document; the next one starts at file offset next_start. */
static lm_status end_doc(prep *pr, int64_t next_start, lm_error *err) {
    lm_status st = LM_OK;
    if (pr->doc_len > 0) {
        if (pr->encode) st = write_doc(pr, err);
        else pr->n_docs++;
    }
    pr->doc_len = 0;
    pr->doc_start = next_start;
    return st;
}

static void report(prep *pr, int64_t done) {
    if (pr->p->progress) pr->p->progress(pr->p->progress_user, pr->stage, done, pr->total);
}

/* One file through the document cutter; rbuf holds chunk + delimiter_len bytes.
 * *size: the bytes read. */
static lm_status run_file(prep *pr, const char *path, char *rbuf, size_t chunk, int64_t *size, lm_error *err) {
    const lm_data_prepare_params *p = pr->p;
    const char *delim = p->delimiter;
    size_t dlen = p->delimiter_len;
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return lm_error_set(err, LM_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    pr->file = path;
    pr->doc_len = 0;
    pr->doc_start = 0;
    lm_status st = LM_OK;
    size_t carry = 0;
    int64_t consumed = 0; /* file offset of rbuf[0] + carry after each read, i.e. bytes read */
    for (;;) {
        size_t got = fread(rbuf + carry, 1, chunk, f);
        if (got == 0) {
            if (ferror(f)) st = lm_error_set(err, LM_ERR_IO, "cannot read %s: %s", path, strerror(errno));
            break;
        }
        consumed += (int64_t)got;
        size_t len = carry + got, pos = 0;
        int64_t base = consumed - (int64_t)len; /* file offset of rbuf[0] */
        if (delim) {
            const char *hit;
            while (st == LM_OK && (hit = lm_memmem(rbuf + pos, len - pos, delim, dlen)) != NULL) {
                size_t at = (size_t)(hit - rbuf);
                st = append(pr, rbuf + pos, at - pos, err);
                pos = at + dlen;
                if (st == LM_OK) st = end_doc(pr, base + (int64_t)pos, err);
            }
            size_t keep = len - pos < dlen - 1 ? len - pos : dlen - 1;
            if (st == LM_OK) st = append(pr, rbuf + pos, len - pos - keep, err);
            memmove(rbuf, rbuf + len - keep, keep);
            carry = keep;
        } else {
            st = append(pr, rbuf, len, err);
        }
        if (st) break;
        pr->done += (int64_t)got;
        report(pr, pr->done < pr->total ? pr->done : pr->total);
    }
    if (st == LM_OK) st = append(pr, rbuf, carry, err);
    if (st == LM_OK) st = end_doc(pr, consumed, err);
    fclose(f);
    *size = consumed;
    return st;
}

static lm_status run_pass(prep *pr, int encode, const int64_t *sizes, char *rbuf, size_t chunk, lm_error *err) {
    const lm_data_prepare_params *p = pr->p;
    pr->encode = encode;
    pr->stage = encode ? "tokenizing" : "counting";
    pr->n_docs = 0;
    pr->done = 0;
    report(pr, 0);
    for (size_t i = 0; i < p->n_files; i++) {
        int64_t size = 0;
        lm_status st = run_file(pr, p->files[i], rbuf, chunk, &size, err);
        if (st) return st;
        if (size != sizes[i]) {
            return lm_error_set(err, LM_ERR_IO, "%s changed while it was being read (%lld bytes, then %lld)",
                                p->files[i], (long long)sizes[i], (long long)size);
        }
    }
    report(pr, pr->total);
    return LM_OK;
}

lm_status lm_data_prepare(const lm_data_prepare_params *p, lm_data_prepare_stats *stats, lm_error *err) {
    lm_data_prepare_stats local;
    if (!stats) stats = &local;
    memset(stats, 0, sizeof *stats);
    if (!p || !p->tok || !p->out_dir) return lm_error_set(err, LM_ERR_ARG, "no tokenizer or output directory");
    if (!p->files || p->n_files == 0) return lm_error_set(err, LM_ERR_ARG, "no input files");
    if (!(p->val_fraction >= 0 && p->val_fraction < 1)) {
        return lm_error_set(err, LM_ERR_ARG, "validation fraction %g is outside [0, 1)", p->val_fraction);
    }
    if (p->delimiter && p->delimiter_len == 0) return lm_error_set(err, LM_ERR_ARG, "empty document delimiter");
    size_t chunk = p->chunk_bytes ? p->chunk_bytes : DEFAULT_CHUNK;
    if (chunk > ((size_t)1 << 30) || (p->delimiter && p->delimiter_len > ((size_t)1 << 20))) {
        return lm_error_set(err, LM_ERR_ARG, "read chunk or delimiter too long");
    }

    /* Every input is a readable regular file before anything is written. */
    int64_t *sizes = calloc(p->n_files, sizeof *sizes);
    if (!sizes) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    int64_t total = 0;
    for (size_t i = 0; i < p->n_files; i++) {
        struct stat st;
        if (stat(p->files[i], &st) != 0) {
            free(sizes);
            return lm_error_set(err, LM_ERR_IO, "cannot open %s: %s", p->files[i], strerror(errno));
        }
        if (!S_ISREG(st.st_mode)) {
            free(sizes);
            return lm_error_set(err, LM_ERR_IO, "%s is not a regular file", p->files[i]);
        }
        sizes[i] = (int64_t)st.st_size;
        total += sizes[i];
    }
    stats->input_bytes = total;

    prep pr = {0};
    pr.p = p;
    pr.stats = stats;
    pr.max_doc = p->max_document_bytes ? p->max_document_bytes : DEFAULT_MAX_DOCUMENT;
    pr.bos = lm_tokenizer_bos(p->tok);
    pr.eos = lm_tokenizer_eos(p->tok);
    pr.total = total;
    uint32_t vocab = (uint32_t)lm_tokenizer_vocab_size(p->tok);
    char *rbuf = malloc(chunk + (p->delimiter ? p->delimiter_len : 0));
    lm_status st = rbuf ? LM_OK : lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    /* The writers create the directory, so a bad one fails before the long passes. */
    if (st == LM_OK) st = lm_data_writer_open(p->out_dir, "train", vocab, p->shard_tokens, &pr.train, err);
    if (st == LM_OK) st = lm_data_writer_open(p->out_dir, "val", vocab, p->shard_tokens, &pr.val, err);
    if (st == LM_OK) st = run_pass(&pr, 0, sizes, rbuf, chunk, err);
    int64_t n_docs = pr.n_docs;
    if (st == LM_OK && n_docs == 0) {
        st = lm_error_set(err, LM_ERR_FORMAT, "no documents: the input is empty or only white space");
    }
    if (st == LM_OK) {
        int64_t n_val = 0;
        if (p->val_fraction > 0 && n_docs > 1) {
            n_val = llround(p->val_fraction * (double)n_docs);
            if (n_val < 1) n_val = 1;
            if (n_val > n_docs - 1) n_val = n_docs - 1;
        }
        pr.n_train = n_docs - n_val;
        st = run_pass(&pr, 1, sizes, rbuf, chunk, err);
    }
    if (st == LM_OK && pr.n_docs != n_docs) {
        st = lm_error_set(err, LM_ERR_IO, "the input changed between the two passes (%lld documents, then %lld)",
                          (long long)n_docs, (long long)pr.n_docs);
    }
    stats->documents = pr.n_docs;
    if (st == LM_OK) st = lm_data_writer_finish(pr.train, err);
    if (st == LM_OK) st = lm_data_writer_finish(pr.val, err);
    if (pr.train) stats->train_shards = lm_data_writer_shards(pr.train);
    if (pr.val) stats->val_shards = lm_data_writer_shards(pr.val);
    lm_data_writer_free(pr.train);
    lm_data_writer_free(pr.val);
    free(pr.doc);
    free(rbuf);
    free(sizes);
    return st;
}
