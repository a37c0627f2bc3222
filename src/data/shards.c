/* Token shards: the writer (buffer one shard, write it atomically) and the
 * reader (map every shard of a split, validate it all, copy tokens out at any
 * global position with wrap-around). */
#include "llmos/data.h"
#include "llmos/file.h"

#include "../base/checked.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_SHARD_INDEX 999999999LL /* at most 9 digits in a name */

int lm_data_token_width(uint32_t vocab_size) { return vocab_size <= 65536u ? 2 : 4; }

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get_u64(const uint8_t *p) { return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32; }

static int valid_split(const char *split) {
    size_t n = split ? strlen(split) : 0;
    if (n == 0 || n > 64) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = split[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-')) return 0;
    }
    return 1;
}

/* DIR/SPLIT_NNNNNN.bin, malloc'd. */
static char *shard_path(const char *dir, const char *split, int64_t index) {
    size_t n = strlen(dir) + strlen(split) + 32;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s_%06lld.bin", dir, split, (long long)index);
    return p;
}

/* The index of a file name of the form SPLIT_NNNNNN.bin (exactly as
 * shard_path writes it), or -1. */
static int64_t shard_index(const char *name, const char *split) {
    size_t ls = strlen(split), ln = strlen(name);
    if (ln < ls + 1 + 6 + 4 || strncmp(name, split, ls) != 0 || name[ls] != '_') return -1;
    if (strcmp(name + ln - 4, ".bin") != 0) return -1;
    const char *d = name + ls + 1;
    size_t nd = ln - ls - 1 - 4;
    if (nd > 9) return -1;
    int64_t v = 0;
    for (size_t i = 0; i < nd; i++) {
        if (d[i] < '0' || d[i] > '9') return -1;
        v = v * 10 + (d[i] - '0');
    }
    /* Canonical spelling only: at least 6 digits, no extra leading zeros. */
    char canon[24];
    snprintf(canon, sizeof canon, "%06lld", (long long)v);
    if (strlen(canon) != nd || memcmp(canon, d, nd) != 0) return -1;
    return v;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The sorted indices of the shards of split in dir (*out malloc'd, may be
 * NULL when *n is 0). */
static lm_status list_shards(const char *dir, const char *split, int64_t **out, size_t *n, lm_error *err) {
    *out = NULL;
    *n = 0;
    DIR *dh = opendir(dir);
    if (!dh) return lm_error_set(err, LM_ERR_IO, "cannot open the directory %s: %s", dir, strerror(errno));
    int64_t *v = NULL;
    size_t cnt = 0, cap = 0;
    struct dirent *e;
    errno = 0;
    while ((e = readdir(dh)) != NULL) {
        int64_t idx = shard_index(e->d_name, split);
        if (idx < 0) continue;
        if (cnt == cap) {
            size_t nc = cap ? cap * 2 : 16;
            int64_t *p = realloc(v, nc * sizeof *p);
            if (!p) {
                free(v);
                closedir(dh);
                return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
            }
            v = p;
            cap = nc;
        }
        v[cnt++] = idx;
        errno = 0;
    }
    int e_read = errno;
    closedir(dh);
    if (e_read) {
        free(v);
        return lm_error_set(err, LM_ERR_IO, "cannot read the directory %s: %s", dir, strerror(e_read));
    }
    if (cnt > 1) qsort(v, cnt, sizeof *v, cmp_i64);
    *out = v;
    *n = cnt;
    return LM_OK;
}

/* mkdir -p, then checks that dir is a directory. */
static lm_status make_dir(const char *dir, lm_error *err) {
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) return lm_error_set(err, LM_ERR_IO, "%s exists and is not a directory", dir);
        return LM_OK;
    }
    char *p = strdup(dir);
    if (!p) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    size_t n = strlen(p);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0') continue;
        char c = p[i];
        p[i] = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            int e = errno;
            lm_error_set(err, LM_ERR_IO, "cannot create the directory %s: %s", p, strerror(e));
            free(p);
            return LM_ERR_IO;
        }
        p[i] = c;
    }
    free(p);
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        return lm_error_set(err, LM_ERR_IO, "cannot create the directory %s", dir);
    }
    return LM_OK;
}

/* ---- writer ---- */

struct lm_data_writer {
    char *dir, *split;
    uint32_t vocab;
    int width;
    int64_t shard_tokens;
    uint8_t *buf; /* the current shard's tokens, little-endian */
    size_t cap;   /* bytes */
    int64_t n_buf, total, shards;
};

lm_status lm_data_writer_open(const char *dir, const char *split, uint32_t vocab_size, int64_t shard_tokens,
                              lm_data_writer **out, lm_error *err) {
    *out = NULL;
    if (!dir || !*dir) return lm_error_set(err, LM_ERR_ARG, "no output directory");
    if (!valid_split(split)) return lm_error_set(err, LM_ERR_ARG, "bad split name (1-64 of A-Z a-z 0-9 -)");
    if (vocab_size == 0 || vocab_size > INT32_MAX) {
        return lm_error_set(err, LM_ERR_ARG, "vocabulary size %u is outside 1..%d", vocab_size, INT32_MAX);
    }
    if (shard_tokens == 0) shard_tokens = LM_DATA_DEFAULT_SHARD_TOKENS;
    if (shard_tokens < 1 || shard_tokens > LM_DATA_MAX_SHARD_TOKENS) {
        return lm_error_set(err, LM_ERR_ARG, "tokens per shard %lld is outside 1..2^40", (long long)shard_tokens);
    }
    lm_status st = make_dir(dir, err);
    if (st) return st;
    lm_data_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->dir = strdup(dir)) || !(w->split = strdup(split))) {
        if (w) free(w->dir);
        free(w);
        return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    }
    w->vocab = vocab_size;
    w->width = lm_data_token_width(vocab_size);
    w->shard_tokens = shard_tokens;
    *out = w;
    return LM_OK;
}

static lm_status flush_shard(lm_data_writer *w, lm_error *err) {
    char *path = shard_path(w->dir, w->split, w->shards);
    if (!path) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    if (w->shards > MAX_SHARD_INDEX) {
        lm_error_set(err, LM_ERR_LIMIT, "%s: too many shards (raise the tokens per shard)", path);
        free(path);
        return LM_ERR_LIMIT;
    }
    uint8_t h[LM_DATA_HEADER_SIZE];
    memcpy(h, LM_DATA_MAGIC, 8);
    put_u32(h + 8, LM_DATA_VERSION);
    put_u32(h + 12, (uint32_t)w->width);
    put_u64(h + 16, (uint64_t)w->n_buf);
    put_u32(h + 24, w->vocab);
    put_u32(h + 28, 0);
    lm_atomic_file *f;
    lm_status st = lm_atomic_file_open(path, &f, err);
    if (st == LM_OK) {
        st = lm_atomic_file_write(f, h, sizeof h, err);
        if (st == LM_OK) st = lm_atomic_file_write(f, w->buf, (size_t)w->n_buf * (size_t)w->width, err);
        if (st == LM_OK) st = lm_atomic_file_commit(f, err);
        else lm_atomic_file_abort(f);
    }
    free(path);
    if (st) return st;
    w->shards++;
    w->n_buf = 0;
    return LM_OK;
}

lm_status lm_data_writer_write(lm_data_writer *w, const int32_t *tokens, size_t n, lm_error *err) {
    for (size_t i = 0; i < n; i++) {
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= w->vocab) {
            return lm_error_set(err, LM_ERR_ARG, "token id %d is outside the vocabulary (size %u)", tokens[i],
                                w->vocab);
        }
    }
    size_t width = (size_t)w->width;
    while (n > 0) {
        int64_t room = w->shard_tokens - w->n_buf;
        size_t take = (uint64_t)room < n ? (size_t)room : n;
        size_t need = ((size_t)w->n_buf + take) * width;
        if (need > w->cap) {
            size_t full = (size_t)w->shard_tokens * width; /* <= 2^42: no overflow */
            size_t cap = w->cap ? w->cap : 65536 * width;
            while (cap < need) cap *= 2;
            if (cap > full) cap = full;
            uint8_t *p = realloc(w->buf, cap);
            if (!p) return lm_error_set(err, LM_ERR_NOMEM, "out of memory for a shard of %zu bytes", cap);
            w->buf = p;
            w->cap = cap;
        }
        uint8_t *dst = w->buf + (size_t)w->n_buf * width;
        if (width == 2) {
            for (size_t i = 0; i < take; i++) {
                uint32_t t = (uint32_t)tokens[i];
                dst[2 * i] = (uint8_t)t;
                dst[2 * i + 1] = (uint8_t)(t >> 8);
            }
        } else {
            for (size_t i = 0; i < take; i++) put_u32(dst + 4 * i, (uint32_t)tokens[i]);
        }
        w->n_buf += (int64_t)take;
        w->total += (int64_t)take;
        tokens += take;
        n -= take;
        if (w->n_buf == w->shard_tokens) {
            lm_status st = flush_shard(w, err);
            if (st) return st;
        }
    }
    return LM_OK;
}

lm_status lm_data_writer_finish(lm_data_writer *w, lm_error *err) {
    if (w->n_buf > 0) {
        lm_status st = flush_shard(w, err);
        if (st) return st;
    }
    int64_t *idx;
    size_t n;
    lm_status st = list_shards(w->dir, w->split, &idx, &n, err);
    if (st) return st;
    for (size_t i = 0; i < n && st == LM_OK; i++) {
        if (idx[i] < w->shards) continue;
        char *path = shard_path(w->dir, w->split, idx[i]);
        if (!path) st = lm_error_set(err, LM_ERR_NOMEM, "out of memory");
        else if (unlink(path) != 0 && errno != ENOENT) {
            st = lm_error_set(err, LM_ERR_IO, "cannot remove the old shard %s: %s", path, strerror(errno));
        }
        free(path);
    }
    free(idx);
    return st;
}

void lm_data_writer_free(lm_data_writer *w) {
    if (!w) return;
    free(w->buf);
    free(w->dir);
    free(w->split);
    free(w);
}

int64_t lm_data_writer_tokens(const lm_data_writer *w) { return w->total; }
int64_t lm_data_writer_shards(const lm_data_writer *w) { return w->shards; }

/* ---- reader ---- */

typedef struct shard {
    lm_mapped_file map;
    const uint8_t *tokens;
    int64_t start, count;
} shard;

struct lm_data {
    shard *shards;
    int64_t n_shards, total;
    uint32_t vocab;
    int width;
};

/* Checks one mapped shard; the message names path. */
static lm_status check_shard(const char *path, const lm_mapped_file *m, shard *s, uint32_t *vocab,
                             const char *first_path, lm_error *err) {
    const uint8_t *p = m->data;
    if (m->size < LM_DATA_HEADER_SIZE) {
        return lm_error_set(err, LM_ERR_FORMAT, "%s: truncated: %zu bytes, shorter than the %d-byte header", path,
                            m->size, LM_DATA_HEADER_SIZE);
    }
    if (memcmp(p, LM_DATA_MAGIC, 8) != 0) {
        return lm_error_set(err, LM_ERR_FORMAT, "%s: bad magic (not a token shard: no \"%s\")", path, LM_DATA_MAGIC);
    }
    uint32_t version = get_u32(p + 8), width = get_u32(p + 12), voc = get_u32(p + 24), reserved = get_u32(p + 28);
    uint64_t count = get_u64(p + 16);
    if (version != LM_DATA_VERSION) {
        return lm_error_set(err, LM_ERR_FORMAT, "%s: unsupported version %u (this build reads version %d)", path,
                            version, LM_DATA_VERSION);
    }
    if (voc == 0 || voc > INT32_MAX) {
        return lm_error_set(err, LM_ERR_FORMAT, "%s: vocabulary size %u is outside 1..%d", path, voc, INT32_MAX);
    }
    if (width != 2 && width != 4) {
        return lm_error_set(err, LM_ERR_FORMAT, "%s: bad token width %u (must be 2 or 4)", path, width);
    }
    if (width != (uint32_t)lm_data_token_width(voc)) {
        return lm_error_set(err, LM_ERR_FORMAT, "%s: bad token width %u for a vocabulary of %u (must be %d)", path,
                            width, voc, lm_data_token_width(voc));
    }
    if (reserved != 0) return lm_error_set(err, LM_ERR_FORMAT, "%s: reserved header field is %u, not 0", path, reserved);
    if (count > (uint64_t)LM_DATA_MAX_SHARD_TOKENS) {
        return lm_error_set(err, LM_ERR_LIMIT, "%s: token count %llu is past the limit of 2^40", path,
                            (unsigned long long)count);
    }
    uint64_t expect; /* count <= 2^40 and width <= 4: cannot overflow, checked anyway */
    if (lm_mul_overflow_u64(count, width, &expect) || lm_add_overflow_u64(expect, LM_DATA_HEADER_SIZE, &expect) ||
        expect != (uint64_t)m->size) {
        return lm_error_set(err, LM_ERR_FORMAT,
                            "%s: size mismatch: %zu bytes, but the header says %llu tokens of %u bytes (%llu bytes)%s",
                            path, m->size, (unsigned long long)count, width,
                            (unsigned long long)(LM_DATA_HEADER_SIZE + count * width),
                            (uint64_t)m->size < LM_DATA_HEADER_SIZE + count * width ? ": truncated" : "");
    }
    if (*vocab && voc != *vocab) {
        return lm_error_set(err, LM_ERR_FORMAT, "%s: vocabulary size %u differs from %u in %s", path, voc, *vocab,
                            first_path);
    }
    *vocab = voc;
    const uint8_t *t = p + LM_DATA_HEADER_SIZE;
    /* Every id below the vocabulary size: a maximum first (fast), the position only on failure. */
    uint32_t max = 0;
    if (width == 2) {
        if (voc < 65536) {
            for (uint64_t i = 0; i < count; i++) {
                uint32_t v = (uint32_t)t[2 * i] | (uint32_t)t[2 * i + 1] << 8;
                max = v > max ? v : max;
            }
        }
    } else {
        for (uint64_t i = 0; i < count; i++) {
            uint32_t v = get_u32(t + 4 * i);
            max = v > max ? v : max;
        }
    }
    if (count > 0 && max >= voc) {
        for (uint64_t i = 0; i < count; i++) {
            uint32_t v = width == 2 ? ((uint32_t)t[2 * i] | (uint32_t)t[2 * i + 1] << 8) : get_u32(t + 4 * i);
            if (v >= voc) {
                return lm_error_set(err, LM_ERR_FORMAT,
                                    "%s: token %llu has id %u, not below the vocabulary size %u", path,
                                    (unsigned long long)i, v, voc);
            }
        }
    }
    s->tokens = t;
    s->count = (int64_t)count;
    return LM_OK;
}

lm_status lm_data_open(const char *dir, const char *split, lm_data **out, lm_error *err) {
    *out = NULL;
    if (!dir || !*dir) return lm_error_set(err, LM_ERR_ARG, "no data directory");
    if (!valid_split(split)) {
        return lm_error_set(err, LM_ERR_ARG, "bad split name '%s' (1-64 of A-Z a-z 0-9 -)", split ? split : "");
    }
    int64_t *idx;
    size_t n;
    lm_status st = list_shards(dir, split, &idx, &n, err);
    if (st) return st;
    if (n == 0) {
        return lm_error_set(err, LM_ERR_FORMAT, "%s: no %s shards (%s_000000.bin, ...)", dir, split, split);
    }
    for (size_t i = 0; i < n; i++) {
        if (idx[i] != (int64_t)i) {
            lm_error_set(err, LM_ERR_FORMAT, "%s: shard %s_%06lld.bin is missing (there is %s_%06lld.bin)", dir,
                         split, (long long)i, split, (long long)idx[i]);
            free(idx);
            return LM_ERR_FORMAT;
        }
    }
    free(idx);
    lm_data *d = calloc(1, sizeof *d);
    if (d) d->shards = calloc(n, sizeof *d->shards);
    if (!d || !d->shards) {
        free(d);
        return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    }
    char *first = shard_path(dir, split, 0);
    if (!first) st = lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n && st == LM_OK; i++) {
        char *path = shard_path(dir, split, (int64_t)i);
        if (!path) {
            st = lm_error_set(err, LM_ERR_NOMEM, "out of memory");
            break;
        }
        shard *s = &d->shards[i];
        st = lm_file_map(path, &s->map, err);
        d->n_shards = (int64_t)i + 1; /* unmapped on failure */
        if (st == LM_OK) st = check_shard(path, &s->map, s, &d->vocab, first, err);
        if (st == LM_OK) {
            s->start = d->total;
            if (s->count > INT64_MAX / 2 - d->total) {
                st = lm_error_set(err, LM_ERR_LIMIT, "%s: too many tokens in the split", path);
            } else {
                d->total += s->count;
            }
        }
        free(path);
    }
    if (st == LM_OK && d->total == 0) {
        st = lm_error_set(err, LM_ERR_FORMAT, "%s: the %s shards hold no tokens", dir, split);
    }
    free(first);
    if (st) {
        lm_data_close(d);
        return st;
    }
    d->width = lm_data_token_width(d->vocab);
    *out = d;
    return LM_OK;
}

int64_t lm_data_tokens(const lm_data *d) { return d->total; }
uint32_t lm_data_vocab_size(const lm_data *d) { return d->vocab; }
int64_t lm_data_shard_count(const lm_data *d) { return d->n_shards; }

void lm_data_read(const lm_data *d, int64_t pos, int32_t *out, int64_t n) {
    if (!d || !out || n <= 0 || d->total <= 0) return;
    int64_t p = pos % d->total;
    if (p < 0) p += d->total;
    /* The last shard starting at or before p: never an empty one, since an
     * empty shard starts where the next one does (or at the total). */
    int64_t lo = 0, hi = d->n_shards - 1;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo + 1) / 2;
        if (d->shards[mid].start <= p) lo = mid;
        else hi = mid - 1;
    }
    int64_t s = lo, off = p - d->shards[s].start;
    while (n > 0) {
        const shard *sh = &d->shards[s];
        int64_t take = sh->count - off < n ? sh->count - off : n;
        if (d->width == 2) {
            const uint8_t *t = sh->tokens + 2 * off;
            for (int64_t i = 0; i < take; i++) out[i] = (int32_t)((uint32_t)t[2 * i] | (uint32_t)t[2 * i + 1] << 8);
        } else {
            const uint8_t *t = sh->tokens + 4 * off;
            for (int64_t i = 0; i < take; i++) out[i] = (int32_t)get_u32(t + 4 * i);
        }
        out += take;
        n -= take;
        off = 0;
        if (++s == d->n_shards) s = 0;
    }
}

void lm_data_close(lm_data *d) {
    if (!d) return;
    for (int64_t i = 0; i < d->n_shards; i++) lm_file_unmap(&d->shards[i].map);
    free(d->shards);
    free(d);
}
