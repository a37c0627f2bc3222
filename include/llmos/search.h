/* Document search: SQLite FTS5 with BM25 ranking over a folder of text and
 * Markdown files the user names, indexed incrementally.
 *
 * The index is one SQLite file (default FOLDER/.llmos-search.db): a `files`
 * table (path relative to the folder, size, mtime in ns, passage count) and
 * an FTS5 table `t(path UNINDEXED, passage)` whose rowid is
 * (file id << 20) | passage number, so a file's passages are one rowid range.
 *
 * Walking: recursive; regular files whose names end in .txt, .md or
 * .markdown (any case); names starting with '.' (the index itself, hidden
 * folders) are not visited, symlinks never followed, files over
 * LM_SEARCH_MAX_FILE_BYTES or containing a NUL byte skipped. An update
 * re-reads only files whose (size, mtime) changed and drops files that are
 * gone, all in one transaction.
 *
 * Passages: paragraphs are runs of non-blank lines. Consecutive paragraphs
 * are merged until a passage holds at least LM_SEARCH_MIN_WORDS words, never
 * past LM_SEARCH_MAX_WORDS words or LM_SEARCH_MAX_PASSAGE_BYTES bytes; a
 * longer paragraph is cut at word boundaries (inside a word only when one
 * word alone passes the byte cap). A passage is the file's text verbatim
 * (blank lines between merged paragraphs included), except that invalid
 * UTF-8 is replaced by U+FFFD.
 *
 * Queries are untrusted text and never reach FTS5 as syntax: the query is cut
 * into terms (runs of ASCII letters and digits and non-ASCII characters; all
 * else, invalid UTF-8 included, separates), at most LM_SEARCH_MAX_TERMS terms
 * of at most LM_SEARCH_MAX_TERM_BYTES bytes, duplicates dropped; each term is
 * double-quoted and the terms are joined with OR, so a passage matching any
 * term is a hit and BM25 puts those with more and rarer terms first (AND
 * would return nothing for a question with one word absent). A query with no
 * terms has no hits. */
#ifndef LLMOS_SEARCH_H
#define LLMOS_SEARCH_H

#include "llmos/base.h"
#include "llmos/tool.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LM_SEARCH_MAX_FILE_BYTES (8 << 20)
#define LM_SEARCH_MAX_FILES 20000
#define LM_SEARCH_MAX_ENTRIES 200000 /* directory entries visited per walk */
#define LM_SEARCH_MAX_DEPTH 32
#define LM_SEARCH_MIN_WORDS 100
#define LM_SEARCH_MAX_WORDS 300
#define LM_SEARCH_MAX_PASSAGE_BYTES 4096
#define LM_SEARCH_MAX_TERMS 32
#define LM_SEARCH_MAX_TERM_BYTES 64
#define LM_SEARCH_MAX_K 100
#define LM_SEARCH_TOOL_MAX_K 10
#define LM_SEARCH_TOOL_RESULT_BYTES 16384 /* cap on a tool result's text */

typedef struct lm_search_index lm_search_index;

typedef struct lm_search_update_stats {
    int64_t added, updated, removed, unchanged;
    int64_t skipped;  /* text-named files not indexed: symlinks, too big, NUL bytes, unreadable */
    int64_t passages; /* passages written by this update */
} lm_search_update_stats;

typedef struct lm_search_hit {
    char *path;      /* relative to the folder, '/'-separated */
    int64_t passage; /* 1-based within the file */
    char *text;      /* the passage, verbatim UTF-8, NUL-terminated */
    size_t text_len;
    double score; /* bm25(): lower is better */
} lm_search_hit;

/* Opens (creating if needed) the index of FOLDER at index_path (NULL:
 * FOLDER/.llmos-search.db). Fails with LM_ERR_UNSUPPORTED when the SQLite
 * library has no FTS5, LM_ERR_FORMAT when the file is not an index. Does not
 * walk the folder: call lm_search_index_update. */
lm_status lm_search_index_open(const char *folder, const char *index_path, lm_search_index **out,
                               lm_error *err);
void lm_search_index_free(lm_search_index *idx);

/* Brings the index up to date with the folder. stats may be NULL. */
lm_status lm_search_index_update(lm_search_index *idx, lm_search_update_stats *stats, lm_error *err);

/* The k (1..LM_SEARCH_MAX_K) best passages for query, best first. *hits is
 * malloc'd (NULL when *n is 0); free with lm_search_hits_free. */
lm_status lm_search_query(lm_search_index *idx, const char *query, int k, lm_search_hit **hits, int *n,
                          lm_error *err);
void lm_search_hits_free(lm_search_hit *hits, int n);

/* The `search` tool over FOLDER: opens and updates the index, and updates it
 * again before each call. Arguments {"query": string, "k": 1..10 (default
 * 5)}; the result lists "[i] path (passage N)\n<text>\n\n" for each hit,
 * within LM_SEARCH_TOOL_RESULT_BYTES, or says there are no results. Passage
 * text is data: it is returned verbatim, whatever it contains. */
lm_status lm_tool_search(lm_tool *out, const char *folder, const char *index_path, lm_error *err);

#ifdef __cplusplus
}
#endif
#endif
