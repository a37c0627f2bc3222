/* Token shards: writer -> reader round trips (widths 2 and 4, shard
 * boundaries, wrap-around, stale shards), every corrupt shard refused with a
 * message naming the file, and data preparation from text: the token stream
 * is BOS + encode(document) + EOS per document, documents cut the same way
 * whatever the read chunk, the last 10% in val. */
#include "llmos/data.h"
#include "test.h"

#include <dirent.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#define FIX(name) LLMOS_FIXTURES "/" name

static char g_root[256];

/* A fresh directory under the test's temporary root. */
static const char *new_dir(const char *name) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", g_root, name);
    mkdir(path, 0755);
    return path;
}

static void rm_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char path[1024];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) rm_tree(path);
        else unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    REQUIRE(f);
    REQUIRE(fwrite(data, 1, n, f) == n);
    fclose(f);
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static int64_t file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (int64_t)st.st_size : -1;
}

/* Writes tokens through the writer in uneven pieces. */
static void write_split(const char *dir, const char *split, uint32_t vocab, int64_t shard_tokens, const int32_t *t,
                        size_t n, int64_t *shards) {
    lm_error err = {0};
    lm_data_writer *w;
    REQUIRE(lm_data_writer_open(dir, split, vocab, shard_tokens, &w, &err) == LM_OK);
    size_t pieces[] = {1, 3, 10, 0, 2, 17};
    size_t at = 0, k = 0;
    while (at < n) {
        size_t take = pieces[k++ % 6];
        if (take > n - at) take = n - at;
        CHECKF(lm_data_writer_write(w, t + at, take, &err) == LM_OK, "%s", err.message);
        at += take;
    }
    CHECKF(lm_data_writer_finish(w, &err) == LM_OK, "%s", err.message);
    CHECK(lm_data_writer_tokens(w) == (int64_t)n);
    *shards = lm_data_writer_shards(w);
    lm_data_writer_free(w);
}

/* Every window (pos, n), pos negative and past the end too, equals the expected stream. */
static void check_reads(const lm_data *d, const int32_t *t, int64_t total) {
    int32_t buf[400];
    int64_t lens[] = {1, 2, 7, 13, total - 1, total, total + 1, 3 * total + 5};
    int bad = 0;
    for (int64_t pos = -2 * total - 3; pos < 3 * total + 3; pos++) {
        for (size_t k = 0; k < sizeof lens / sizeof *lens; k++) {
            int64_t n = lens[k];
            if (n <= 0 || n > 400) continue;
            memset(buf, 0xff, sizeof buf);
            lm_data_read(d, pos, buf, n);
            for (int64_t i = 0; i < n && !bad; i++) {
                int64_t g = ((pos + i) % total + total) % total;
                if (buf[i] != t[g]) {
                    fprintf(stderr, "read(pos %lld, n %lld)[%lld] = %d, expected %d\n", (long long)pos, (long long)n,
                            (long long)i, buf[i], t[g]);
                    bad = 1;
                }
            }
            if (n < 400 && buf[n] != -1) bad = 1; /* nothing past n written */
        }
    }
    CHECK(!bad);
}

static void test_roundtrip(void) {
    lm_error err = {0};
    /* Width 2, small shards: 50 tokens in shards of 7. */
    {
        const char *dir = new_dir("w2");
        int32_t t[50];
        for (int i = 0; i < 50; i++) t[i] = (i * 37 + 5) % 1000;
        t[3] = 999;
        t[4] = 0;
        int64_t shards;
        write_split(dir, "train", 1000, 7, t, 50, &shards);
        CHECK(shards == 8);
        char path[600];
        snprintf(path, sizeof path, "%s/train_000007.bin", dir);
        CHECK(file_size(path) == 32 + 1 * 2);
        snprintf(path, sizeof path, "%s/train_000000.bin", dir);
        CHECK(file_size(path) == 32 + 7 * 2);
        size_t n;
        unsigned char *h = (unsigned char *)test_read_file(path, &n);
        REQUIRE(h);
        CHECK(memcmp(h, "LMTOKENS", 8) == 0 && h[8] == 1 && h[12] == 2 && h[16] == 7 && h[24] == 0xe8 && h[25] == 3);
        CHECK(h[32] == (unsigned char)t[0] && h[33] == (unsigned)t[0] >> 8); /* little-endian */
        free(h);
        lm_data *d;
        CHECKF(lm_data_open(dir, "train", &d, &err) == LM_OK, "%s", err.message);
        if (d) {
            CHECK(lm_data_tokens(d) == 50);
            CHECK(lm_data_vocab_size(d) == 1000);
            CHECK(lm_data_shard_count(d) == 8);
            check_reads(d, t, 50);
            lm_data_close(d);
        }
        /* A shorter rewrite removes the stale shards of that split only. */
        int64_t vshards;
        write_split(dir, "val", 1000, 7, t, 20, &vshards);
        CHECK(vshards == 3);
        write_split(dir, "train", 1000, 100, t + 10, 30, &shards);
        CHECK(shards == 1);
        snprintf(path, sizeof path, "%s/train_000001.bin", dir);
        CHECK(!file_exists(path));
        snprintf(path, sizeof path, "%s/val_000002.bin", dir);
        CHECK(file_exists(path));
        CHECKF(lm_data_open(dir, "train", &d, &err) == LM_OK, "%s", err.message);
        if (d) {
            CHECK(lm_data_tokens(d) == 30 && lm_data_shard_count(d) == 1);
            check_reads(d, t + 10, 30);
            lm_data_close(d);
        }
        CHECKF(lm_data_open(dir, "val", &d, &err) == LM_OK, "%s", err.message);
        if (d) {
            check_reads(d, t, 20);
            lm_data_close(d);
        }
    }
    /* Width 4: a vocabulary past 65536; ids up to vocab - 1. */
    {
        const char *dir = new_dir("w4");
        int32_t t[31];
        for (int i = 0; i < 31; i++) t[i] = (int32_t)((i * 2654435761u) % 70000u);
        t[0] = 69999;
        t[1] = 65536;
        t[2] = 65535;
        int64_t shards;
        write_split(dir, "train", 70000, 4, t, 31, &shards);
        CHECK(shards == 8);
        char path[600];
        snprintf(path, sizeof path, "%s/train_000000.bin", dir);
        CHECK(file_size(path) == 32 + 4 * 4);
        lm_data *d;
        CHECKF(lm_data_open(dir, "train", &d, &err) == LM_OK, "%s", err.message);
        if (d) {
            CHECK(lm_data_tokens(d) == 31 && lm_data_vocab_size(d) == 70000);
            check_reads(d, t, 31);
            lm_data_close(d);
        }
    }
    /* The width boundary: 65536 tokens still fit in 2 bytes. */
    CHECK(lm_data_token_width(65536) == 2 && lm_data_token_width(65537) == 4 && lm_data_token_width(1) == 2);
    {
        const char *dir = new_dir("w2max");
        int32_t t[3] = {65535, 0, 40000};
        int64_t shards;
        write_split(dir, "train", 65536, 0, t, 3, &shards);
        char path[600];
        snprintf(path, sizeof path, "%s/train_000000.bin", dir);
        CHECK(shards == 1 && file_size(path) == 32 + 3 * 2);
        lm_data *d;
        CHECKF(lm_data_open(dir, "train", &d, &err) == LM_OK, "%s", err.message);
        if (d) {
            check_reads(d, t, 3);
            lm_data_close(d);
        }
    }
    /* The writer refuses ids outside the vocabulary and bad arguments. */
    {
        lm_data_writer *w;
        REQUIRE(lm_data_writer_open(new_dir("wbad"), "train", 10, 0, &w, &err) == LM_OK);
        int32_t bad1[] = {1, 10}, bad2[] = {-1};
        CHECK(lm_data_writer_write(w, bad1, 2, &err) == LM_ERR_ARG && strstr(err.message, "10"));
        CHECK(lm_data_writer_write(w, bad2, 1, &err) == LM_ERR_ARG);
        CHECK(lm_data_writer_tokens(w) == 0);
        lm_data_writer_free(w);
        CHECK(lm_data_writer_open(g_root, "../x", 10, 0, &w, &err) == LM_ERR_ARG && w == NULL);
        CHECK(lm_data_writer_open(g_root, "train", 0, 0, &w, &err) == LM_ERR_ARG);
        CHECK(lm_data_writer_open(g_root, "train", 10, -1, &w, &err) == LM_ERR_ARG);
        CHECK(lm_data_writer_open(g_root, "train", 10, LM_DATA_MAX_SHARD_TOKENS + 1, &w, &err) == LM_ERR_ARG);
        char path[600];
        snprintf(path, sizeof path, "%s/afile", g_root);
        write_file(path, "x", 1);
        CHECK(lm_data_writer_open(path, "train", 10, 0, &w, &err) == LM_ERR_IO && strstr(err.message, "not a directory"));
        /* Parents are created. */
        snprintf(path, sizeof path, "%s/deep/er/dir", g_root);
        CHECKF(lm_data_writer_open(path, "train", 10, 0, &w, &err) == LM_OK, "%s", err.message);
        lm_data_writer_free(w);
        snprintf(path, sizeof path, "%s/deep/er/dir", g_root);
        struct stat st;
        CHECK(stat(path, &st) == 0 && S_ISDIR(st.st_mode));
    }
}

/* ---- corrupt shards ---- */

static void put32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* A valid shard image: vocab 100, width 2, count tokens i % 100. */
static size_t make_shard(unsigned char *buf, uint32_t vocab, uint32_t width, uint64_t count) {
    memcpy(buf, "LMTOKENS", 8);
    put32(buf + 8, 1);
    put32(buf + 12, width);
    put64(buf + 16, count);
    put32(buf + 24, vocab);
    put32(buf + 28, 0);
    for (uint64_t i = 0; i < count; i++) {
        if (width == 2) {
            buf[32 + 2 * i] = (unsigned char)(i % 100);
            buf[33 + 2 * i] = 0;
        } else {
            put32(buf + 32 + 4 * i, (uint32_t)(i % 100));
        }
    }
    return 32 + count * width;
}

/* Opens dir/train and expects failure with a message holding both needles. */
static void expect_refused(const char *case_name, const char *dir, const char *needle1, const char *needle2) {
    lm_error err = {0};
    lm_data *d = (lm_data *)1;
    lm_status st = lm_data_open(dir, "train", &d, &err);
    CHECKF(st != LM_OK, "%s: accepted", case_name);
    CHECKF(d == NULL, "%s: *out not NULL", case_name);
    CHECKF(strstr(err.message, needle1) != NULL, "%s: message '%s' lacks '%s'", case_name, err.message, needle1);
    if (needle2) {
        CHECKF(strstr(err.message, needle2) != NULL, "%s: message '%s' lacks '%s'", case_name, err.message, needle2);
    }
    if (st == LM_OK) lm_data_close(d);
}

static void test_corrupt(void) {
    unsigned char buf[32 + 4 * 64];
    char path[600], path2[600];
    struct {
        const char *name;
        const char *needle;
    } cases[] = {
        {"bad magic", "bad magic"},
        {"version", "version 2"},
        {"width 3", "width 3"},
        {"width 4 for a small vocabulary", "width 4"},
        {"width 2 for a large vocabulary", "width 2"},
        {"extra byte", "size mismatch"},
        {"truncated tokens", "truncated"},
        {"truncated header", "truncated"},
        {"empty file", "truncated"},
        {"token id out of range", "not below the vocabulary size"},
        {"count past 2^40", "2^40"},
        {"reserved field", "reserved"},
        {"vocabulary 0", "vocabulary size 0"},
        {"count larger than the file", "size mismatch"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        char name[32];
        snprintf(name, sizeof name, "corrupt%zu", c);
        const char *dir = new_dir(name);
        snprintf(path, sizeof path, "%s/train_000000.bin", dir);
        size_t n = make_shard(buf, 100, 2, 16);
        switch (c) {
        case 0: buf[3] ^= 0x20; break;
        case 1: put32(buf + 8, 2); break;
        case 2: put32(buf + 12, 3); break;
        case 3: n = make_shard(buf, 100, 4, 16); break;
        case 4: n = make_shard(buf, 70000, 2, 16); break;
        case 5: buf[n++] = 0; break;
        case 6: n -= 3; break;
        case 7: n = 10; break;
        case 8: n = 0; break;
        case 9: buf[32 + 2 * 5] = 100; break;
        case 10: put64(buf + 16, ((uint64_t)1 << 40) + 1); break;
        case 11: put32(buf + 28, 1); break;
        case 12: put32(buf + 24, 0); break;
        case 13: put64(buf + 16, (uint64_t)1 << 39); break;
        }
        write_file(path, buf, n);
        expect_refused(cases[c].name, dir, cases[c].needle, "train_000000.bin");
    }
    /* A bad id in the second shard of a width-4 split is found too, with its position. */
    {
        const char *dir = new_dir("corrupt_id4");
        snprintf(path, sizeof path, "%s/train_000000.bin", dir);
        write_file(path, buf, make_shard(buf, 70000, 4, 8));
        size_t n = make_shard(buf, 70000, 4, 8);
        put32(buf + 32 + 4 * 6, 70000);
        snprintf(path, sizeof path, "%s/train_000001.bin", dir);
        write_file(path, buf, n);
        expect_refused("width-4 id out of range", dir, "train_000001.bin", "token 6 has id 70000");
    }
    /* Mixed vocabulary sizes. */
    {
        const char *dir = new_dir("mixed");
        snprintf(path, sizeof path, "%s/train_000000.bin", dir);
        write_file(path, buf, make_shard(buf, 100, 2, 8));
        snprintf(path2, sizeof path2, "%s/train_000001.bin", dir);
        write_file(path2, buf, make_shard(buf, 200, 2, 8));
        expect_refused("mixed vocabulary sizes", dir, "train_000001.bin", "vocabulary size 200 differs from 100");
    }
    /* A gap in the numbering. */
    {
        const char *dir = new_dir("gap");
        snprintf(path, sizeof path, "%s/train_000000.bin", dir);
        write_file(path, buf, make_shard(buf, 100, 2, 8));
        snprintf(path2, sizeof path2, "%s/train_000002.bin", dir);
        write_file(path2, buf, make_shard(buf, 100, 2, 8));
        expect_refused("missing shard", dir, "train_000001.bin", "missing");
    }
    /* No shards; only shards of another split or near-miss names; zero tokens; no directory. */
    {
        const char *dir = new_dir("none");
        snprintf(path, sizeof path, "%s/val_000000.bin", dir);
        write_file(path, buf, make_shard(buf, 100, 2, 8));
        snprintf(path, sizeof path, "%s/train_00000.bin", dir);
        write_file(path, buf, make_shard(buf, 100, 2, 8));
        snprintf(path, sizeof path, "%s/train_000000.bin.tmp.1", dir);
        write_file(path, buf, make_shard(buf, 100, 2, 8));
        expect_refused("no shards", dir, "no train shards", NULL);
        dir = new_dir("zero");
        snprintf(path, sizeof path, "%s/train_000000.bin", dir);
        write_file(path, buf, make_shard(buf, 100, 2, 0));
        expect_refused("zero tokens", dir, "no tokens", NULL);
        snprintf(path, sizeof path, "%s/does-not-exist", g_root);
        expect_refused("missing directory", path, "does-not-exist", NULL);
        /* A directory named like a shard. */
        dir = new_dir("dirshard");
        snprintf(path, sizeof path, "%s/train_000000.bin", dir);
        mkdir(path, 0755);
        expect_refused("directory as shard", dir, "train_000000.bin", NULL);
    }
    /* Empty shards next to full ones read correctly (reader's search). */
    {
        const char *dir = new_dir("empties");
        int32_t t[24];
        for (int i = 0; i < 24; i++) t[i] = i % 100;
        snprintf(path, sizeof path, "%s/train_000000.bin", dir);
        write_file(path, buf, make_shard(buf, 100, 2, 0));
        snprintf(path, sizeof path, "%s/train_000001.bin", dir);
        write_file(path, buf, make_shard(buf, 100, 2, 10));
        snprintf(path, sizeof path, "%s/train_000002.bin", dir);
        write_file(path, buf, make_shard(buf, 100, 2, 0));
        snprintf(path, sizeof path, "%s/train_000003.bin", dir);
        write_file(path, buf, make_shard(buf, 100, 2, 14));
        snprintf(path, sizeof path, "%s/train_000004.bin", dir);
        write_file(path, buf, make_shard(buf, 100, 2, 0));
        for (int i = 10; i < 24; i++) t[i] = (i - 10) % 100;
        lm_error err = {0};
        lm_data *d;
        CHECKF(lm_data_open(dir, "train", &d, &err) == LM_OK, "%s", err.message);
        if (d) {
            CHECK(lm_data_tokens(d) == 24 && lm_data_shard_count(d) == 5);
            check_reads(d, t, 24);
            lm_data_close(d);
        }
    }
}

/* Every truncation and many single-byte header changes of a shard: refused
 * with a message, or (a change that keeps the shard valid, like another
 * vocabulary size that still covers the ids) read back within the vocabulary. */
static void test_mutations(void) {
    unsigned char good[32 + 2 * 16], buf[sizeof good];
    size_t n = make_shard(good, 100, 2, 16);
    char path[600];
    const char *dir = new_dir("mutate");
    snprintf(path, sizeof path, "%s/train_000000.bin", dir);
    int refused = 0, accepted = 0, bad = 0;
    for (size_t variant = 0; variant < n + 32 * 4; variant++) {
        memcpy(buf, good, n);
        size_t len = n;
        if (variant < n) {
            len = variant; /* every truncation */
        } else {
            size_t at = (variant - n) / 4, k = (variant - n) % 4;
            unsigned char vals[4] = {0, 1, 0xff, (unsigned char)(good[at] ^ 0x80)};
            if (vals[k] == good[at]) continue;
            buf[at] = vals[k];
        }
        write_file(path, buf, len);
        lm_error err = {0};
        lm_data *d;
        if (lm_data_open(dir, "train", &d, &err) != LM_OK) {
            refused++;
            if (!strstr(err.message, "train_000000.bin")) bad++;
            continue;
        }
        accepted++;
        int32_t t[16];
        lm_data_read(d, 0, t, 16);
        for (int i = 0; i < 16; i++) bad += t[i] < 0 || (uint32_t)t[i] >= lm_data_vocab_size(d);
        lm_data_close(d);
    }
    CHECKF(bad == 0, "%d bad outcomes", bad);
    CHECKF(refused > 100 && accepted < 20, "%d refused, %d accepted", refused, accepted);
}

/* ---- preparation from text ---- */

static lm_tokenizer *load_tokenizer(const char *path) {
    lm_error err = {0};
    lm_gguf *g;
    if (lm_gguf_open(path, &g, &err)) {
        fprintf(stderr, "%s: %s\n", path, err.message);
        exit(1);
    }
    lm_tokenizer *tok;
    lm_status st = lm_tokenizer_load(g, &tok, &err);
    lm_gguf_free(g);
    if (st) {
        fprintf(stderr, "%s: %s\n", path, err.message);
        exit(1);
    }
    return tok;
}

typedef struct stream {
    int32_t *v;
    size_t n, cap;
} stream;

static void push(stream *s, int32_t t) {
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 256;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
        REQUIRE(s->v);
    }
    s->v[s->n++] = t;
}

/* BOS + encode(doc) + EOS. */
static void push_doc(stream *s, const lm_tokenizer *tok, const char *doc) {
    int32_t *ids;
    size_t n;
    lm_error err = {0};
    REQUIRE(lm_tokenizer_encode(tok, doc, strlen(doc), 0, &ids, &n, &err) == LM_OK);
    if (lm_tokenizer_bos(tok) >= 0) push(s, lm_tokenizer_bos(tok));
    for (size_t i = 0; i < n; i++) push(s, ids[i]);
    if (lm_tokenizer_eos(tok) >= 0) push(s, lm_tokenizer_eos(tok));
    free(ids);
}

/* The whole split equals expect (an empty expect: the split must not open). */
static void check_split(const char *dir, const char *split, const stream *expect, const char *what) {
    lm_error err = {0};
    lm_data *d;
    lm_status st = lm_data_open(dir, split, &d, &err);
    if (expect->n == 0) {
        CHECKF(st != LM_OK && strstr(err.message, "no"), "%s: %s split should be absent", what, split);
        if (st == LM_OK) lm_data_close(d);
        return;
    }
    CHECKF(st == LM_OK, "%s: %s: %s", what, split, err.message);
    if (st) return;
    CHECKF(lm_data_tokens(d) == (int64_t)expect->n, "%s: %s has %lld tokens, expected %zu", what, split,
           (long long)lm_data_tokens(d), expect->n);
    if (lm_data_tokens(d) == (int64_t)expect->n) {
        int32_t *got = malloc(expect->n * sizeof *got);
        REQUIRE(got);
        lm_data_read(d, 0, got, (int64_t)expect->n);
        size_t i = 0;
        while (i < expect->n && got[i] == expect->v[i]) i++;
        CHECKF(i == expect->n, "%s: %s differs at token %zu", what, split, i);
        free(got);
    }
    lm_data_close(d);
}

static void test_prepare(void) {
    lm_tokenizer *tok = load_tokenizer(FIX("stories260K.gguf"));
    REQUIRE(lm_tokenizer_bos(tok) == 1 && lm_tokenizer_eos(tok) == 2);
    /* 20 documents over two files, with blank runs, white-space-only pieces,
     * CR/tab padding and a control token written as text. */
    const char *docs[20] = {
        "Once upon a time there was a cat.",
        "The cat liked milk.\nIt drank it every day.",
        "One day, the cat met a dog.",
        "<s> is not a BOS here </s>",
        "They played\tall day.",
        "Tom said, \"Hi!\"",
        "A", "B c", "Lily had a red ball.", "Ben ran fast.",
        "Document eleven.", "The end of file one.",
        "File two begins.", "Sun and moon.", "Twelve\n apples.", "x",
        "The bird sang.", "Rain fell.", "Penultimate document.", "The last one, in val.",
    };
    char text1[4096], text2[4096];
    int n1 = 0, n2 = 0;
    n1 += snprintf(text1 + n1, sizeof text1 - (size_t)n1, "\n\n  \n\n");
    for (int i = 0; i < 12; i++) {
        /* The first file ends without a delimiter: its last document must not run into the next file. */
        n1 += snprintf(text1 + n1, sizeof text1 - (size_t)n1, "%s%s%s%s%s", i % 3 == 0 ? "  " : "", docs[i],
                       i % 4 == 1 ? " \r" : "", i < 11 ? "\n\n" : "", i == 5 ? "\n\n \t \n\n\n" : "");
    }
    for (int i = 12; i < 20; i++) {
        n2 += snprintf(text2 + n2, sizeof text2 - (size_t)n2, "%s%s", docs[i], i < 19 ? "\n\n" : "\n");
    }
    char f1[600], f2[600], fempty[600];
    snprintf(f1, sizeof f1, "%s/one.txt", g_root);
    snprintf(f2, sizeof f2, "%s/two.txt", g_root);
    snprintf(fempty, sizeof fempty, "%s/blank.txt", g_root);
    write_file(f1, text1, (size_t)n1);
    write_file(f2, text2, (size_t)n2);
    write_file(fempty, " \n\n\t\n", 5);

    stream train = {0}, val = {0};
    for (int i = 0; i < 18; i++) push_doc(&train, tok, docs[i]);
    for (int i = 18; i < 20; i++) push_doc(&val, tok, docs[i]);
    /* BOS only at document starts: the "<s>" in document 4 is text. */
    int bos = 0;
    for (size_t i = 0; i < train.n; i++) bos += train.v[i] == 1;
    CHECK(bos == 18);

    const char *files[] = {f1, fempty, f2};
    size_t chunks[] = {1, 2, 3, 7, 64, 0};
    for (size_t c = 0; c < sizeof chunks / sizeof *chunks; c++) {
        char what[64];
        snprintf(what, sizeof what, "chunk %zu", chunks[c]);
        const char *dir = new_dir("prep");
        lm_data_prepare_params p = {0};
        p.tok = tok;
        p.files = files;
        p.n_files = 3;
        p.out_dir = dir;
        p.val_fraction = 0.1;
        p.delimiter = LM_DATA_DEFAULT_DELIMITER;
        p.delimiter_len = 2;
        p.shard_tokens = c % 2 ? 16 : 0;
        p.chunk_bytes = chunks[c];
        lm_data_prepare_stats s;
        lm_error err = {0};
        CHECKF(lm_data_prepare(&p, &s, &err) == LM_OK, "%s: %s", what, err.message);
        CHECKF(s.documents == 20 && s.train_documents == 18 && s.val_documents == 2, "%s: %lld documents (%lld/%lld)",
               what, (long long)s.documents, (long long)s.train_documents, (long long)s.val_documents);
        CHECK(s.train_tokens == (int64_t)train.n && s.val_tokens == (int64_t)val.n);
        CHECK(s.tokens == s.train_tokens + s.val_tokens && s.text_tokens == s.tokens - 40);
        CHECK(s.input_bytes == n1 + n2 + 5);
        int64_t expect_train_shards = p.shard_tokens ? ((int64_t)train.n + 15) / 16 : 1;
        CHECKF(s.train_shards == expect_train_shards && s.val_shards == (p.shard_tokens ? ((int64_t)val.n + 15) / 16 : 1),
               "%s: %lld/%lld shards", what, (long long)s.train_shards, (long long)s.val_shards);
        check_split(dir, "train", &train, what);
        check_split(dir, "val", &val, what);
    }

    /* A multi-byte delimiter split across chunks; no val split; stale val shards removed. */
    {
        char f3[600];
        snprintf(f3, sizeof f3, "%s/eot.txt", g_root);
        const char *t3 = "first<|endoftext|>  second doc\n\n still second<|endoftext|><|endoftext|>third";
        write_file(f3, t3, strlen(t3));
        stream all = {0}, none = {0};
        push_doc(&all, tok, "first");
        push_doc(&all, tok, "second doc\n\n still second");
        push_doc(&all, tok, "third");
        const char *fs[] = {f3};
        for (size_t chunk = 1; chunk <= 20; chunk += 3) {
            lm_data_prepare_params p = {0};
            p.tok = tok;
            p.files = fs;
            p.n_files = 1;
            p.out_dir = new_dir("prep"); /* holds val shards from above */
            p.delimiter = "<|endoftext|>";
            p.delimiter_len = strlen(p.delimiter);
            p.chunk_bytes = chunk;
            lm_data_prepare_stats s;
            lm_error err = {0};
            CHECKF(lm_data_prepare(&p, &s, &err) == LM_OK, "%s", err.message);
            CHECK(s.documents == 3 && s.val_documents == 0 && s.val_shards == 0);
            check_split(p.out_dir, "train", &all, "endoftext delimiter");
            check_split(p.out_dir, "val", &none, "endoftext delimiter");
        }
        /* --delimiter none: each file one document (the blank file is skipped). */
        stream whole = {0}, wval = {0};
        char *a = test_read_file(f1, NULL), *b = test_read_file(f3, NULL);
        REQUIRE(a && b);
        /* trim as the library does */
        char *s1 = a + strspn(a, " \n\t\r");
        size_t l1 = strlen(s1);
        while (l1 > 0 && strchr(" \n\t\r", s1[l1 - 1])) s1[--l1] = '\0';
        push_doc(&whole, tok, s1);
        push_doc(&wval, tok, b);
        const char *fs2[] = {f1, fempty, f3};
        lm_data_prepare_params p = {0};
        p.tok = tok;
        p.files = fs2;
        p.n_files = 3;
        p.out_dir = new_dir("whole");
        p.val_fraction = 0.01; /* rounds to 0, but one document still goes to val */
        p.chunk_bytes = 5;
        lm_data_prepare_stats s;
        lm_error err = {0};
        CHECKF(lm_data_prepare(&p, &s, &err) == LM_OK, "%s", err.message);
        CHECK(s.documents == 2 && s.train_documents == 1 && s.val_documents == 1);
        check_split(p.out_dir, "train", &whole, "delimiter none");
        check_split(p.out_dir, "val", &wval, "delimiter none");
        free(a);
        free(b);
        free(all.v);
        free(whole.v);
        free(wval.v);
    }

    /* The val share rounds to the nearest document: 10 docs at 0.25 -> 3 (2.5 rounds up), 0.5 -> 5. */
    {
        char f4[600];
        snprintf(f4, sizeof f4, "%s/ten.txt", g_root);
        write_file(f4, "a\n\nb\n\nc\n\nd\n\ne\n\nf\n\ng\n\nh\n\ni\n\nj", 28);
        const char *fs[] = {f4};
        double fr[] = {0.25, 0.5, 0.99, 0.04};
        int64_t expect_val[] = {3, 5, 9, 1};
        for (int k = 0; k < 4; k++) {
            lm_data_prepare_params p = {0};
            p.tok = tok;
            p.files = fs;
            p.n_files = 1;
            p.out_dir = new_dir("ten");
            p.val_fraction = fr[k];
            p.delimiter = "\n\n";
            p.delimiter_len = 2;
            lm_data_prepare_stats s;
            lm_error err = {0};
            CHECKF(lm_data_prepare(&p, &s, &err) == LM_OK, "%s", err.message);
            CHECKF(s.documents == 10 && s.val_documents == expect_val[k], "fraction %g: %lld val documents", fr[k],
                   (long long)s.val_documents);
        }
    }

    /* Errors: each names the problem. */
    {
        lm_data_prepare_params p = {0};
        p.tok = tok;
        p.files = files;
        p.n_files = 3;
        p.out_dir = new_dir("errs");
        p.delimiter = "\n\n";
        p.delimiter_len = 2;
        lm_error err = {0};
        p.val_fraction = 1;
        CHECK(lm_data_prepare(&p, NULL, &err) == LM_ERR_ARG && strstr(err.message, "fraction"));
        p.val_fraction = -0.1;
        CHECK(lm_data_prepare(&p, NULL, &err) == LM_ERR_ARG);
        p.val_fraction = 0.1;
        char missing[600];
        snprintf(missing, sizeof missing, "%s/missing.txt", g_root);
        const char *fm[] = {f1, missing};
        p.files = fm;
        p.n_files = 2;
        CHECK(lm_data_prepare(&p, NULL, &err) == LM_ERR_IO && strstr(err.message, "missing.txt"));
        const char *fd[] = {g_root};
        p.files = fd;
        p.n_files = 1;
        CHECK(lm_data_prepare(&p, NULL, &err) == LM_ERR_IO && strstr(err.message, "not a regular file"));
        const char *fe[] = {fempty};
        p.files = fe;
        CHECK(lm_data_prepare(&p, NULL, &err) == LM_ERR_FORMAT && strstr(err.message, "no documents"));
        p.files = files;
        p.n_files = 3;
        p.max_document_bytes = 30;
        CHECK(lm_data_prepare(&p, NULL, &err) == LM_ERR_LIMIT && strstr(err.message, "one.txt") &&
              strstr(err.message, "longer than 30"));
        p.max_document_bytes = 0;
        char notdir[600];
        snprintf(notdir, sizeof notdir, "%s/afile", g_root);
        p.out_dir = notdir;
        CHECK(lm_data_prepare(&p, NULL, &err) == LM_ERR_IO && strstr(err.message, "not a directory"));
    }
    free(train.v);
    free(val.v);
    lm_tokenizer_free(tok);
}

int main(void) {
    snprintf(g_root, sizeof g_root, "/tmp/llmos_test_data.XXXXXX");
    REQUIRE(mkdtemp(g_root));
    test_roundtrip();
    test_corrupt();
    test_mutations();
    test_prepare();
    rm_tree(g_root);
    TEST_END();
}
