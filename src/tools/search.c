/* Document search index: SQLite FTS5 over a folder (llmos/search.h). */
#include "llmos/search.h"

#include "search_text.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define SCHEMA_VERSION 1
#define PASSAGE_BITS 20 /* rowid = (file id << PASSAGE_BITS) | passage number */
#define MAX_FILE_ID ((int64_t)1 << 42)
#define MAX_REL_PATH 4096

struct lm_search_index {
    sqlite3 *db;
    char *folder;
};

static lm_status db_error(lm_error *err, sqlite3 *db, const char *what) {
    int code = sqlite3_errcode(db);
    lm_status st = code == SQLITE_NOMEM ? LM_ERR_NOMEM
                   : code == SQLITE_NOTADB || code == SQLITE_CORRUPT ? LM_ERR_FORMAT
                                                                      : LM_ERR_IO;
    return lm_error_set(err, st, "search index: %s: %s", what, sqlite3_errmsg(db));
}

/* Fixed SQL only; user data always goes through bound parameters. */
static lm_status exec(sqlite3 *db, const char *sql, lm_error *err) {
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) return db_error(err, db, sql);
    return LM_OK;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

void lm_search_index_free(lm_search_index *idx) {
    if (!idx) return;
    sqlite3_close(idx->db);
    free(idx->folder);
    free(idx);
}

static lm_status check_fts5(sqlite3 *db, lm_error *err) {
    if (sqlite3_exec(db, "CREATE VIRTUAL TABLE temp.lm_fts5_probe USING fts5(x)", NULL, NULL, NULL) != SQLITE_OK)
        return lm_error_set(err, LM_ERR_UNSUPPORTED,
                            "search needs SQLite with FTS5, and this SQLite (%s) has none: %s", sqlite3_libversion(),
                            sqlite3_errmsg(db));
    return exec(db, "DROP TABLE temp.lm_fts5_probe", err);
}

static lm_status create_schema(sqlite3 *db, lm_error *err) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        return db_error(err, db, "reading the schema version");
    int rc = sqlite3_step(st);
    int version = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW) return db_error(err, db, "reading the schema version");
    if (version == SCHEMA_VERSION) return LM_OK;
    if (version != 0)
        return lm_error_set(err, LM_ERR_FORMAT,
                            "search index has schema version %d, this build uses %d: delete the file to rebuild it",
                            version, SCHEMA_VERSION);
    lm_status s = exec(db,
                       "BEGIN IMMEDIATE;"
                       "CREATE TABLE files(id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE,"
                       " size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, passages INTEGER NOT NULL);"
                       "CREATE VIRTUAL TABLE t USING fts5(path UNINDEXED, passage,"
                       " tokenize = 'porter unicode61 remove_diacritics 2');"
                       "PRAGMA user_version = 1;"
                       "COMMIT;",
                       err);
    if (s != LM_OK) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return s;
}

lm_status lm_search_index_open(const char *folder, const char *index_path, lm_search_index **out,
                               lm_error *err) {
    *out = NULL;
    if (!folder || !*folder) return lm_error_set(err, LM_ERR_ARG, "search: no folder given");
    struct stat sb;
    if (stat(folder, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return lm_error_set(err, LM_ERR_IO, "search: %s is not a readable folder", folder);
    lm_search_index *idx = calloc(1, sizeof *idx);
    char *path = NULL;
    if (!idx || !(idx->folder = dup_str(folder))) goto nomem;
    if (!index_path) {
        size_t n = strlen(folder) + sizeof "/.llmos-search.db";
        if (!(path = malloc(n))) goto nomem;
        snprintf(path, n, "%s/.llmos-search.db", folder);
    }
    const char *p = index_path ? index_path : path;
    lm_status s;
    if (sqlite3_open_v2(p, &idx->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        s = idx->db ? lm_error_set(err, LM_ERR_IO, "search: cannot open index %s: %s", p, sqlite3_errmsg(idx->db))
                    : lm_error_set(err, LM_ERR_NOMEM, "search: out of memory opening %s", p);
        goto fail;
    }
    sqlite3_busy_timeout(idx->db, 2000);
    sqlite3_db_config(idx->db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
    sqlite3_db_config(idx->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, (int *)NULL);
    if ((s = check_fts5(idx->db, err)) != LM_OK || (s = create_schema(idx->db, err)) != LM_OK) {
        lm_error_prefix(err, s, "%s: ", p);
        goto fail;
    }
    free(path);
    *out = idx;
    return LM_OK;
nomem:
    s = lm_error_set(err, LM_ERR_NOMEM, "search: out of memory");
fail:
    free(path);
    lm_search_index_free(idx);
    return s;
}

/* ---- walking the folder ---- */

typedef struct entry {
    char *rel;
} entry;

typedef struct walk {
    entry *v;
    size_t n, cap;
    size_t visited;
    lm_search_update_stats *stats;
} walk;

static int has_text_ext(const char *name) {
    static const char *exts[] = {".txt", ".md", ".markdown"};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof exts / sizeof *exts; i++) {
        size_t e = strlen(exts[i]);
        if (n > e && strcasecmp(name + n - e, exts[i]) == 0) return 1;
    }
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Collects the relative paths of candidate files under FOLDER/rel, sorted. */
static lm_status walk_dir(walk *w, const char *folder, const char *rel, int depth, lm_error *err) {
    char dir[2 * MAX_REL_PATH];
    snprintf(dir, sizeof dir, "%s%s%s", folder, *rel ? "/" : "", rel);
    DIR *d = opendir(dir);
    if (!d) {
        if (depth == 0) return lm_error_set(err, LM_ERR_IO, "search: cannot read folder %s: %s", dir, strerror(errno));
        return LM_OK; /* an unreadable subfolder is left out */
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    lm_status s = LM_OK;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') continue; /* ".", "..", hidden files, the index */
        if (++w->visited > LM_SEARCH_MAX_ENTRIES) {
            s = lm_error_set(err, LM_ERR_LIMIT, "search: more than %d entries under %s", LM_SEARCH_MAX_ENTRIES, folder);
            break;
        }
        if (n == cap) {
            size_t c = cap ? cap * 2 : 32;
            char **v = realloc(names, c * sizeof *v);
            if (!v) {
                s = lm_error_set(err, LM_ERR_NOMEM, "search: out of memory");
                break;
            }
            names = v, cap = c;
        }
        if (!(names[n] = dup_str(de->d_name))) {
            s = lm_error_set(err, LM_ERR_NOMEM, "search: out of memory");
            break;
        }
        n++;
    }
    closedir(d);
    if (s == LM_OK && n) qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n && s == LM_OK; i++) {
        char sub[MAX_REL_PATH + 1];
        int len = snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", names[i]);
        if (len < 0 || len >= MAX_REL_PATH) continue; /* path too long: left out */
        char full[2 * MAX_REL_PATH + 2];
        snprintf(full, sizeof full, "%s/%s", folder, sub);
        struct stat sb;
        if (lstat(full, &sb) != 0) continue;
        if (S_ISDIR(sb.st_mode)) {
            if (depth + 1 < LM_SEARCH_MAX_DEPTH) s = walk_dir(w, folder, sub, depth + 1, err);
            continue;
        }
        if (!has_text_ext(names[i])) continue;
        if (!S_ISREG(sb.st_mode) || sb.st_size > LM_SEARCH_MAX_FILE_BYTES) { /* symlinks, devices, big */
            w->stats->skipped++;
            continue;
        }
        if (w->n == LM_SEARCH_MAX_FILES) {
            s = lm_error_set(err, LM_ERR_LIMIT, "search: more than %d text files under %s", LM_SEARCH_MAX_FILES,
                             folder);
            break;
        }
        if (w->n == w->cap) {
            size_t c = w->cap ? w->cap * 2 : 64;
            entry *v = realloc(w->v, c * sizeof *v);
            if (!v) {
                s = lm_error_set(err, LM_ERR_NOMEM, "search: out of memory");
                break;
            }
            w->v = v, w->cap = c;
        }
        if (!(w->v[w->n].rel = dup_str(sub))) {
            s = lm_error_set(err, LM_ERR_NOMEM, "search: out of memory");
            break;
        }
        w->n++;
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return s;
}

/* Reads a regular file (no symlink) of at most the size cap; NULL (errno-free)
 * when it is not one, cannot be read, or holds a NUL byte. */
static char *read_text(const char *path, int64_t *size, int64_t *mtime_ns, size_t *len) {
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return NULL;
    struct stat sb;
    char *buf = NULL;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size > LM_SEARCH_MAX_FILE_BYTES) goto fail;
    size_t cap = (size_t)sb.st_size + 1, n = 0; /* one more byte sees growth */
    if (!(buf = malloc(cap + 1))) goto fail;
    while (n < cap) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) goto fail;
        if (r == 0) break;
        n += (size_t)r;
    }
    if (n > LM_SEARCH_MAX_FILE_BYTES || memchr(buf, '\0', n)) goto fail;
    close(fd);
    buf[n] = '\0';
    *size = (int64_t)sb.st_size;
    *mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
    *len = n;
    return buf;
fail:
    free(buf);
    close(fd);
    return NULL;
}

enum { S_SEL, S_INS_FILE, S_UPD_FILE, S_DEL_PASS, S_INS_PASS, S_SEEN, S_DEL_FILE, S_COUNT };

static const char *const update_sql[S_COUNT] = {
    "SELECT id, size, mtime_ns FROM files WHERE path = ?1",
    "INSERT INTO files(path, size, mtime_ns, passages) VALUES(?1, 0, 0, 0)",
    "UPDATE files SET size = ?2, mtime_ns = ?3, passages = ?4 WHERE id = ?1",
    "DELETE FROM t WHERE rowid >= ?1 AND rowid < ?2",
    "INSERT INTO t(rowid, path, passage) VALUES(?1, ?2, ?3)",
    "INSERT OR IGNORE INTO temp.seen(id) VALUES(?1)",
    "DELETE FROM files WHERE id = ?1",
};

static int step_done(sqlite3_stmt *st) {
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE;
}

static lm_status delete_passages(sqlite3 *db, sqlite3_stmt *del, int64_t id, lm_error *err) {
    sqlite3_bind_int64(del, 1, id << PASSAGE_BITS);
    sqlite3_bind_int64(del, 2, (id + 1) << PASSAGE_BITS);
    return step_done(del) ? LM_OK : db_error(err, db, "deleting passages");
}

/* (Re)indexes one file under id; *indexed 0 when the file was skipped. */
static lm_status index_file(lm_search_index *idx, sqlite3_stmt **q, const char *rel, int64_t id,
                            lm_search_update_stats *stats, int *indexed, lm_error *err) {
    char full[2 * MAX_REL_PATH + 2];
    snprintf(full, sizeof full, "%s/%s", idx->folder, rel);
    int64_t size, mtime;
    size_t len, clean_len, n = 0;
    *indexed = 0;
    char *raw = read_text(full, &size, &mtime, &len);
    if (!raw) {
        stats->skipped++;
        return LM_OK;
    }
    char *text = lm_search_utf8_clean(raw, len, &clean_len);
    free(raw);
    if (!text) return lm_error_set(err, LM_ERR_NOMEM, "search: out of memory reading %s", rel);
    lm_search_span *spans = NULL;
    lm_status s = lm_search_split(text, clean_len, &spans, &n, err);
    if (s == LM_OK && n >= ((size_t)1 << PASSAGE_BITS)) {
        stats->skipped++; /* cannot happen under the size cap; kept as a guard */
        goto done;
    }
    for (size_t i = 0; i < n && s == LM_OK; i++) {
        sqlite3_stmt *ins = q[S_INS_PASS];
        sqlite3_bind_int64(ins, 1, (id << PASSAGE_BITS) | (int64_t)(i + 1));
        sqlite3_bind_text(ins, 2, rel, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 3, text + spans[i].start, (int)spans[i].len, SQLITE_STATIC);
        if (!step_done(ins)) s = db_error(err, idx->db, "inserting a passage");
    }
    if (s == LM_OK) {
        sqlite3_stmt *upd = q[S_UPD_FILE];
        sqlite3_bind_int64(upd, 1, id);
        sqlite3_bind_int64(upd, 2, size);
        sqlite3_bind_int64(upd, 3, mtime);
        sqlite3_bind_int64(upd, 4, (int64_t)n);
        if (!step_done(upd)) s = db_error(err, idx->db, "recording a file");
    }
    if (s == LM_OK) {
        stats->passages += (int64_t)n;
        *indexed = 1;
    }
done:
    free(spans);
    free(text);
    return s;
}

static lm_status mark_seen(lm_search_index *idx, sqlite3_stmt **q, int64_t id, lm_error *err) {
    sqlite3_bind_int64(q[S_SEEN], 1, id);
    return step_done(q[S_SEEN]) ? LM_OK : db_error(err, idx->db, "marking a file");
}

static lm_status update_one(lm_search_index *idx, sqlite3_stmt **q, const char *rel, lm_search_update_stats *stats,
                            lm_error *err) {
    char full[2 * MAX_REL_PATH + 2];
    snprintf(full, sizeof full, "%s/%s", idx->folder, rel);
    struct stat sb;
    if (lstat(full, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        stats->skipped++;
        return LM_OK;
    }
    int64_t mtime = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
    sqlite3_stmt *sel = q[S_SEL];
    sqlite3_bind_text(sel, 1, rel, -1, SQLITE_STATIC);
    int rc = sqlite3_step(sel);
    int64_t id = -1, old_size = 0, old_mtime = 0;
    if (rc == SQLITE_ROW) {
        id = sqlite3_column_int64(sel, 0);
        old_size = sqlite3_column_int64(sel, 1);
        old_mtime = sqlite3_column_int64(sel, 2);
    }
    sqlite3_reset(sel);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return db_error(err, idx->db, "looking up a file");
    lm_status s;
    int indexed = 0;
    if (id >= 0) {
        if (old_size == (int64_t)sb.st_size && old_mtime == mtime) {
            stats->unchanged++;
            return mark_seen(idx, q, id, err);
        }
        if ((s = delete_passages(idx->db, q[S_DEL_PASS], id, err)) != LM_OK) return s;
        if ((s = index_file(idx, q, rel, id, stats, &indexed, err)) != LM_OK) return s;
        if (!indexed) return LM_OK; /* not seen: removed at the end */
        stats->updated++;
        return mark_seen(idx, q, id, err);
    }
    sqlite3_stmt *ins = q[S_INS_FILE];
    sqlite3_bind_text(ins, 1, rel, -1, SQLITE_STATIC);
    if (!step_done(ins)) return db_error(err, idx->db, "adding a file");
    id = sqlite3_last_insert_rowid(idx->db);
    if (id <= 0 || id >= MAX_FILE_ID) return lm_error_set(err, LM_ERR_LIMIT, "search: file id %lld past the cap", (long long)id);
    if ((s = index_file(idx, q, rel, id, stats, &indexed, err)) != LM_OK) return s;
    if (!indexed) { /* skipped: the new row goes again */
        sqlite3_bind_int64(q[S_DEL_FILE], 1, id);
        return step_done(q[S_DEL_FILE]) ? LM_OK : db_error(err, idx->db, "dropping a file");
    }
    stats->added++;
    return mark_seen(idx, q, id, err);
}

/* Drops every file the walk did not see (deleted, or now skipped). */
static lm_status remove_unseen(lm_search_index *idx, sqlite3_stmt **q, lm_search_update_stats *stats, lm_error *err) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(idx->db, "SELECT id FROM files WHERE id NOT IN (SELECT id FROM temp.seen)", -1, &st,
                           NULL) != SQLITE_OK)
        return db_error(err, idx->db, "preparing removal");
    int64_t *ids = NULL;
    size_t n = 0, cap = 0;
    lm_status s = LM_OK;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            size_t c = cap ? cap * 2 : 64;
            int64_t *v = realloc(ids, c * sizeof *v);
            if (!v) {
                s = lm_error_set(err, LM_ERR_NOMEM, "search: out of memory");
                break;
            }
            ids = v, cap = c;
        }
        ids[n++] = sqlite3_column_int64(st, 0);
    }
    if (s == LM_OK && rc != SQLITE_DONE) s = db_error(err, idx->db, "listing removed files");
    sqlite3_finalize(st);
    for (size_t i = 0; i < n && s == LM_OK; i++) {
        if ((s = delete_passages(idx->db, q[S_DEL_PASS], ids[i], err)) != LM_OK) break;
        sqlite3_bind_int64(q[S_DEL_FILE], 1, ids[i]);
        if (!step_done(q[S_DEL_FILE])) s = db_error(err, idx->db, "removing a file");
        else stats->removed++;
    }
    free(ids);
    return s;
}

lm_status lm_search_index_update(lm_search_index *idx, lm_search_update_stats *stats, lm_error *err) {
    lm_search_update_stats local;
    if (!stats) stats = &local;
    memset(stats, 0, sizeof *stats);
    if (!idx) return lm_error_set(err, LM_ERR_ARG, "search: no index");
    walk w = {.stats = stats};
    lm_status s = walk_dir(&w, idx->folder, "", 0, err);
    sqlite3_stmt *q[S_COUNT] = {0};
    int in_tx = 0;
    if (s != LM_OK) goto out;
    if ((s = exec(idx->db, "CREATE TEMP TABLE IF NOT EXISTS seen(id INTEGER PRIMARY KEY);", err)) != LM_OK ||
        (s = exec(idx->db, "BEGIN IMMEDIATE; DELETE FROM temp.seen;", err)) != LM_OK)
        goto out;
    in_tx = 1;
    for (int i = 0; i < S_COUNT; i++)
        if (sqlite3_prepare_v2(idx->db, update_sql[i], -1, &q[i], NULL) != SQLITE_OK) {
            s = db_error(err, idx->db, update_sql[i]);
            goto out;
        }
    for (size_t i = 0; i < w.n && s == LM_OK; i++) s = update_one(idx, q, w.v[i].rel, stats, err);
    if (s == LM_OK) s = remove_unseen(idx, q, stats, err);
    if (s == LM_OK) {
        for (int i = 0; i < S_COUNT; i++) sqlite3_finalize(q[i]), q[i] = NULL;
        s = exec(idx->db, "COMMIT", err);
        if (s == LM_OK) in_tx = 0;
    }
out:
    for (int i = 0; i < S_COUNT; i++) sqlite3_finalize(q[i]);
    if (in_tx) sqlite3_exec(idx->db, "ROLLBACK", NULL, NULL, NULL);
    for (size_t i = 0; i < w.n; i++) free(w.v[i].rel);
    free(w.v);
    return s;
}

/* ---- queries ---- */

void lm_search_hits_free(lm_search_hit *hits, int n) {
    for (int i = 0; hits && i < n; i++) {
        free(hits[i].path);
        free(hits[i].text);
    }
    free(hits);
}

lm_status lm_search_query(lm_search_index *idx, const char *query, int k, lm_search_hit **hits, int *n,
                          lm_error *err) {
    *hits = NULL;
    *n = 0;
    if (!idx || !query) return lm_error_set(err, LM_ERR_ARG, "search: no index or query");
    if (k < 1 || k > LM_SEARCH_MAX_K) return lm_error_set(err, LM_ERR_ARG, "search: k = %d is not in 1..%d", k, LM_SEARCH_MAX_K);
    char *expr = NULL;
    lm_status s = lm_search_match_expr(query, strlen(query), &expr, err);
    if (s != LM_OK || !expr) return s;
    sqlite3_stmt *st = NULL;
    lm_search_hit *v = calloc((size_t)k, sizeof *v);
    int m = 0;
    if (!v) {
        free(expr);
        return lm_error_set(err, LM_ERR_NOMEM, "search: out of memory");
    }
    if (sqlite3_prepare_v2(idx->db,
                           "SELECT path, rowid, passage, bm25(t) FROM t WHERE t MATCH ?1"
                           " ORDER BY bm25(t), rowid LIMIT ?2",
                           -1, &st, NULL) != SQLITE_OK) {
        s = db_error(err, idx->db, "preparing a query");
        goto out;
    }
    sqlite3_bind_text(st, 1, expr, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, k);
    int rc = SQLITE_DONE;
    while (m < k && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *path = (const char *)sqlite3_column_text(st, 0);
        const char *text = (const char *)sqlite3_column_text(st, 2);
        size_t tlen = (size_t)sqlite3_column_bytes(st, 2);
        lm_search_hit *h = &v[m];
        h->path = dup_str(path ? path : "");
        h->text = malloc(tlen + 1);
        m++;
        if (!h->path || !h->text) {
            s = lm_error_set(err, LM_ERR_NOMEM, "search: out of memory");
            goto out;
        }
        if (tlen) memcpy(h->text, text, tlen);
        h->text[tlen] = '\0';
        h->text_len = tlen;
        h->passage = sqlite3_column_int64(st, 1) & (((int64_t)1 << PASSAGE_BITS) - 1);
        h->score = sqlite3_column_double(st, 3);
    }
    if (m < k && rc != SQLITE_DONE) s = db_error(err, idx->db, "running a query");
out:
    sqlite3_finalize(st);
    free(expr);
    if (s != LM_OK) {
        lm_search_hits_free(v, m);
        return s;
    }
    if (m == 0) free(v), v = NULL;
    *hits = v;
    *n = m;
    return LM_OK;
}
