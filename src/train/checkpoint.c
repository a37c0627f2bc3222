/* Checkpoint files: a 256-byte header (magic, version, checksum, the model
 * shape and the loop state), then params, m and v as little-endian f32. */
#include "checkpoint.h"

#include "../base/checked.h"
#include "llmos/file.h"

#include <dirent.h>
#include <stddef.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CKPT_MAGIC "LMCKPT\r\n"
#define CKPT_VERSION 1u
#define CKPT_HEADER 256

/* The header after magic, version and checksum, as written (all 8-byte fields). */
typedef struct ckpt_fields {
    int64_t dim, n_layers, n_heads, n_kv_heads, head_dim, ffn_dim, n_vocab, tied;
    double norm_eps, rope_theta;
    int64_t n_params;
    int64_t step, data_pos;
    uint64_t rng[4];
    int64_t tokens_seen;
    double elapsed_s;
} ckpt_fields;

_Static_assert(24 + sizeof(ckpt_fields) <= CKPT_HEADER, "checkpoint header");

/* A 64-bit checksum over 8-byte words (the tail zero-padded): each word is
 * mixed in with a multiply and a shift, so any flipped bit changes it. */
typedef struct ckhash { uint64_t h; } ckhash;

static void ckhash_update(ckhash *c, const void *data, size_t n) {
    const uint8_t *p = data;
    uint64_t h = c->h;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0x9E3779B97F4A7C15ull;
        h ^= h >> 29;
        p += 8, n -= 8;
    }
    if (n) {
        uint64_t w = 0;
        memcpy(&w, p, n);
        h = (h ^ w ^ ((uint64_t)n << 56)) * 0x9E3779B97F4A7C15ull;
        h ^= h >> 29;
    }
    c->h = h;
}

static void fields_from(ckpt_fields *f, const lm_train_shape *s, int64_t n_params, const lm_ckpt_state *st) {
    memset(f, 0, sizeof *f);
    f->dim = s->dim, f->n_layers = s->n_layers, f->n_heads = s->n_heads, f->n_kv_heads = s->n_kv_heads;
    f->head_dim = s->head_dim, f->ffn_dim = s->ffn_dim, f->n_vocab = s->n_vocab, f->tied = s->tied_output;
    f->norm_eps = s->norm_eps, f->rope_theta = s->rope_theta, f->n_params = n_params;
    if (st) {
        f->step = st->step, f->data_pos = st->data_pos, f->tokens_seen = st->tokens_seen, f->elapsed_s = st->elapsed_s;
        memcpy(f->rng, st->rng, sizeof f->rng);
    }
}

/* Fault injection for the crash test (tests/cli_test.sh): with
 * LLMOS_FAULT_KILL_IN_CHECKPOINT=STEP the process kills itself (SIGKILL, as
 * `kill -9` would) halfway through writing that step's checkpoint. */
static void fault_point(int64_t step) {
    const char *at = getenv("LLMOS_FAULT_KILL_IN_CHECKPOINT");
    if (at && atoll(at) == step) raise(SIGKILL);
}

static void ckpt_name(char *out, size_t cap, const char *dir, int64_t step) {
    snprintf(out, cap, "%s/ckpt_%08lld.bin", dir, (long long)step);
}

/* Steps of the ckpt_*.bin files in dir, ascending; *n gets the count. */
static int64_t *list_checkpoints(const char *dir, int64_t *n) {
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return NULL;
    int64_t cap = 16, *steps = malloc((size_t)cap * sizeof *steps);
    struct dirent *e;
    while (steps && (e = readdir(d))) {
        long long step;
        char tail[8];
        if (sscanf(e->d_name, "ckpt_%lld.%4s", &step, tail) != 2 || strcmp(tail, "bin") != 0 || step < 0) continue;
        char expect[64];
        snprintf(expect, sizeof expect, "ckpt_%08lld.bin", step);
        if (strcmp(expect, e->d_name) != 0) continue;
        if (*n == cap) {
            int64_t *grown = realloc(steps, (size_t)(cap *= 2) * sizeof *steps);
            if (!grown) break;
            steps = grown;
        }
        steps[(*n)++] = step;
    }
    closedir(d);
    for (int64_t i = 1; steps && i < *n; i++) { /* insertion sort: a handful of files */
        int64_t v = steps[i], j = i;
        while (j > 0 && steps[j - 1] > v) steps[j] = steps[j - 1], j--;
        steps[j] = v;
    }
    return steps;
}

lm_status lm_ckpt_save(const char *dir, const lm_train_shape *s, int64_t n_params, const float *params, const float *m,
                       const float *v, const lm_ckpt_state *state, char *path, lm_error *err) {
    ckpt_name(path, 4096, dir, state->step);
    uint8_t header[CKPT_HEADER];
    memset(header, 0, sizeof header);
    ckpt_fields f;
    fields_from(&f, s, n_params, state);
    memcpy(header, CKPT_MAGIC, 8);
    uint32_t version = CKPT_VERSION, hsize = CKPT_HEADER;
    memcpy(header + 8, &version, 4);
    memcpy(header + 12, &hsize, 4);
    memcpy(header + 24, &f, sizeof f);
    size_t bytes = (size_t)n_params * sizeof(float);
    ckhash c = {0x6c6c6d6f73ull};
    ckhash_update(&c, header + 24, CKPT_HEADER - 24);
    ckhash_update(&c, params, bytes);
    ckhash_update(&c, m, bytes);
    ckhash_update(&c, v, bytes);
    memcpy(header + 16, &c.h, 8);
    lm_atomic_file *af;
    lm_status st = lm_atomic_file_open(path, &af, err);
    if (st) return st;
    if (!(st = lm_atomic_file_write(af, header, sizeof header, err)) && !(st = lm_atomic_file_write(af, params, bytes, err)) &&
        !(st = lm_atomic_file_write(af, m, bytes, err))) {
        fault_point(state->step);
        st = lm_atomic_file_write(af, v, bytes, err);
    }
    if (!st) {
        st = lm_atomic_file_commit(af, err);
    } else {
        lm_atomic_file_abort(af);
    }
    if (st) return st;
    /* Keep this checkpoint and the one before it. */
    int64_t n, *steps = list_checkpoints(dir, &n);
    for (int64_t i = 0; steps && i + 2 < n; i++) {
        char old[4096];
        ckpt_name(old, sizeof old, dir, steps[i]);
        unlink(old);
    }
    free(steps);
    return LM_OK;
}

lm_status lm_ckpt_load(const char *path, const lm_train_shape *s, int64_t n_params, float *params, float *m, float *v,
                       lm_ckpt_state *state, lm_error *err) {
    lm_mapped_file file;
    lm_status st = lm_file_map(path, &file, err);
    if (st) return st;
    const uint8_t *p = file.data;
    size_t bytes = (size_t)n_params * sizeof(float), want;
    if (lm_mul_overflow_size(bytes, 3, &want) || lm_add_overflow_size(want, CKPT_HEADER, &want)) {
        lm_file_unmap(&file);
        return lm_error_set(err, LM_ERR_LIMIT, "%s: model too large", path);
    }
    ckpt_fields f, expect;
    uint32_t version = 0, hsize = 0;
    uint64_t sum = 0;
    if (file.size < CKPT_HEADER || memcmp(p, CKPT_MAGIC, 8) != 0) {
        st = lm_error_set(err, LM_ERR_FORMAT, "%s is not an llmos checkpoint", path);
    } else {
        memcpy(&version, p + 8, 4);
        memcpy(&hsize, p + 12, 4);
        memcpy(&sum, p + 16, 8);
        memcpy(&f, p + 24, sizeof f);
        fields_from(&expect, s, n_params, NULL);
        if (version != CKPT_VERSION || hsize != CKPT_HEADER) {
            st = lm_error_set(err, LM_ERR_FORMAT, "%s: checkpoint version %u is not supported", path, version);
        } else if (file.size != want) {
            st = lm_error_set(err, LM_ERR_FORMAT, "%s: %zu bytes, expected %zu (truncated or not this model's)", path,
                              file.size, want);
        } else if (memcmp(&f, &expect, offsetof(ckpt_fields, step)) != 0) {
            st = lm_error_set(err, LM_ERR_FORMAT, "%s: the checkpoint is of another model shape (dim %lld, %lld layers, vocab %lld)",
                              path, (long long)f.dim, (long long)f.n_layers, (long long)f.n_vocab);
        } else if (f.step < 0 || f.tokens_seen < 0 || !(f.elapsed_s >= 0)) {
            st = lm_error_set(err, LM_ERR_FORMAT, "%s: bad loop state", path);
        } else {
            ckhash c = {0x6c6c6d6f73ull};
            ckhash_update(&c, p + 24, file.size - 24);
            if (c.h != sum) st = lm_error_set(err, LM_ERR_FORMAT, "%s: checksum mismatch (the file is corrupt)", path);
        }
    }
    if (!st) {
        memcpy(params, p + CKPT_HEADER, bytes);
        memcpy(m, p + CKPT_HEADER + bytes, bytes);
        memcpy(v, p + CKPT_HEADER + 2 * bytes, bytes);
        state->step = f.step, state->data_pos = f.data_pos, state->tokens_seen = f.tokens_seen, state->elapsed_s = f.elapsed_s;
        memcpy(state->rng, f.rng, sizeof f.rng);
    }
    lm_file_unmap(&file);
    return st;
}

lm_status lm_ckpt_load_latest(const char *dir, const lm_train_shape *s, int64_t n_params, float *params, float *m,
                              float *v, lm_ckpt_state *state, char *path, int *found,
                              void (*warn)(const char *message), lm_error *err) {
    *found = 0;
    int64_t n, *steps = list_checkpoints(dir, &n);
    for (int64_t i = n - 1; steps && i >= 0; i--) {
        ckpt_name(path, 4096, dir, steps[i]);
        lm_error e = {0};
        if (lm_ckpt_load(path, s, n_params, params, m, v, state, &e) == LM_OK) {
            *found = 1;
            break;
        }
        if (warn) {
            char msg[sizeof e.message + 64];
            snprintf(msg, sizeof msg, "%s; trying an older checkpoint", e.message);
            warn(msg);
        }
    }
    free(steps);
    (void)err;
    return LM_OK;
}
