/* LoRA adapters: a random rank-8 adapter on every matrix of every block of
 * stories260K survives a write/read round trip; hand-made bad adapter files
 * are each refused with a message naming the problem; an attached adapter
 * changes the logits, and they equal the logits of the merged model (within
 * 1e-4) token by token and in a batched prefill that takes the GEMM path.
 * `test_lora --write-adapter FILE` writes the adapter for lora_test.sh. */
#include "base/rng.h"
#include "llmos/gguf.h"
#include "llmos/lora.h"
#include "llmos/model.h"
#include "tensor/fp16.h"
#include "test.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MODEL LLMOS_FIXTURES "/stories260K.gguf"
#define RANK 8
#define N_TOK 20

static char dir[64];
static lm_rng rng;

static const char *tmp_path(const char *name) {
    static char buf[8][128];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 128, "%s/%s", dir, name);
    return p;
}

static float rnd(float amp) { return (float)((lm_rng_uniform(&rng) * 2.0 - 1.0) * amp); }

static float *rnd_array(int64_t n, float amp) {
    float *p = malloc((size_t)n * sizeof *p);
    REQUIRE(p);
    for (int64_t i = 0; i < n; i++) p[i] = rnd(amp);
    return p;
}

/* An adapter of rank RANK on all 7 matrices of every block. */
static lm_lora *make_adapter(const lm_model_config *c) {
    static const char *const kinds[7] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
    int64_t q = c->n_heads * c->head_dim, kv = c->n_kv_heads * c->head_dim;
    int64_t rows[7] = {q, kv, kv, c->dim, c->ffn_dim, c->ffn_dim, c->dim};
    int64_t cols[7] = {c->dim, c->dim, c->dim, q, c->dim, c->dim, c->ffn_dim};
    lm_lora *l = calloc(1, sizeof *l);
    REQUIRE(l);
    snprintf(l->arch, sizeof l->arch, "%s", c->arch);
    l->alpha = 16.0f; /* scale = 16 / 8 = 2 */
    l->n_tensors = c->n_layers * 7;
    l->tensors = calloc((size_t)l->n_tensors, sizeof *l->tensors);
    REQUIRE(l->tensors);
    for (int64_t layer = 0; layer < c->n_layers; layer++) {
        for (int k = 0; k < 7; k++) {
            lm_lora_tensor *t = &l->tensors[layer * 7 + k];
            snprintf(t->name, sizeof t->name, "blk.%lld.%s.weight", (long long)layer, kinds[k]);
            t->rows = rows[k];
            t->cols = cols[k];
            t->rank = RANK;
            t->a = rnd_array(RANK * t->cols, 0.1f);
            t->b = rnd_array(t->rows * RANK, 0.1f);
        }
    }
    return l;
}

static void round_trip(const lm_lora *l, const char *path) {
    lm_error err = {0};
    lm_lora *r = NULL;
    CHECKF(lm_lora_read(path, &r, &err) == LM_OK, "%s", err.message);
    if (!r) return;
    CHECK(strcmp(r->arch, l->arch) == 0);
    CHECK(r->alpha == l->alpha);
    CHECK(r->n_tensors == l->n_tensors);
    for (int64_t i = 0; i < l->n_tensors && i < r->n_tensors; i++) {
        const lm_lora_tensor *a = &l->tensors[i], *b = &r->tensors[i];
        CHECKF(strcmp(a->name, b->name) == 0, "%s vs %s", a->name, b->name);
        CHECK(a->rows == b->rows && a->cols == b->cols && a->rank == b->rank);
        CHECK(memcmp(a->a, b->a, (size_t)(a->rank * a->cols) * sizeof(float)) == 0);
        CHECK(memcmp(a->b, b->b, (size_t)(a->rows * a->rank) * sizeof(float)) == 0);
    }
    lm_lora_tensor t = {.rank = 8};
    CHECK(lm_lora_scale(r, &t, 1.0f) == 2.0f && lm_lora_scale(r, &t, 0.5f) == 1.0f);
    float alpha = r->alpha;
    r->alpha = 0.0f;
    CHECK(lm_lora_scale(r, &t, 0.75f) == 0.75f);
    r->alpha = alpha;
    lm_lora_free(r);
}

/* ---- bad adapter files ---- */

static lm_gguf_writer *header(const char *gtype, const char *atype, const char *arch) {
    lm_gguf_writer *w = lm_gguf_writer_init();
    REQUIRE(w);
    if (arch) REQUIRE(lm_gguf_writer_set_str(w, "general.architecture", arch, NULL) == LM_OK);
    if (gtype) REQUIRE(lm_gguf_writer_set_str(w, "general.type", gtype, NULL) == LM_OK);
    if (atype) REQUIRE(lm_gguf_writer_set_str(w, "adapter.type", atype, NULL) == LM_OK);
    REQUIRE(lm_gguf_writer_set_f32(w, "adapter.lora.alpha", 8.0f, NULL) == LM_OK);
    return w;
}

static float zeros[1 << 16];

static void add(lm_gguf_writer *w, const char *name, int64_t ne0, int64_t ne1) {
    int64_t ne[2] = {ne0, ne1};
    REQUIRE(ne0 * ne1 <= (int64_t)(sizeof zeros / sizeof *zeros));
    lm_error err = {0};
    CHECKF(lm_gguf_writer_add_tensor(w, name, LM_TYPE_F32, 2, ne, zeros, &err) == LM_OK, "%s", err.message);
}

/* Writes w, expects lm_lora_read to fail with `needle` in the message. */
static void expect_read_fails(const char *what, lm_gguf_writer *w, const char *needle) {
    const char *path = tmp_path("bad.gguf");
    lm_error err = {0};
    REQUIRE(lm_gguf_writer_write_file(w, path, &err) == LM_OK);
    lm_gguf_writer_free(w);
    lm_lora *l = NULL;
    lm_status st = lm_lora_read(path, &l, &err);
    CHECKF(st != LM_OK && l == NULL, "%s: accepted", what);
    CHECKF(st == LM_OK || strstr(err.message, needle) != NULL, "%s: message '%s' lacks '%s'", what, err.message, needle);
    if (st != LM_OK) printf("  %-28s -> %s\n", what, err.message);
    lm_lora_free(l);
}

/* Reads fine, but attaching it to m fails with `needle`. */
static void expect_attach_fails(const char *what, lm_gguf_writer *w, lm_model *m, const char *needle) {
    const char *path = tmp_path("bad_attach.gguf");
    lm_error err = {0};
    REQUIRE(lm_gguf_writer_write_file(w, path, &err) == LM_OK);
    lm_gguf_writer_free(w);
    lm_status st = lm_model_attach_lora_file(m, path, 1.0f, &err);
    CHECKF(st != LM_OK, "%s: accepted", what);
    CHECKF(st == LM_OK || strstr(err.message, needle) != NULL, "%s: message '%s' lacks '%s'", what, err.message, needle);
    if (st != LM_OK) printf("  %-28s -> %s\n", what, err.message);
}

static void bad_files(const char *good_path, lm_model *m) {
    const lm_model_config *c = lm_model_get_config(m);
    const int64_t d = c->dim;
    lm_error err = {0};
    lm_lora *l = NULL;
    printf("bad adapters:\n");

    /* Truncated: every cut of the good file's header and a few in its data. */
    size_t len;
    char *bytes = test_read_file(good_path, &len);
    REQUIRE(bytes);
    char cut_path[128]; /* tmp_path's buffers are reused: later calls would change it */
    snprintf(cut_path, sizeof cut_path, "%s", tmp_path("cut.gguf"));
    size_t cuts[] = {0, 3, 16, 24, 100, 400, len / 2, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        FILE *f = fopen(cut_path, "wb");
        REQUIRE(f && fwrite(bytes, 1, cuts[i], f) == cuts[i] && fclose(f) == 0);
        lm_status st = lm_lora_read(cut_path, &l, &err);
        CHECKF(st != LM_OK && err.message[0], "truncated to %zu bytes: accepted", cuts[i]);
        if (i == sizeof cuts / sizeof *cuts - 1) printf("  %-28s -> %s\n", "truncated", err.message);
    }
    free(bytes);

    /* A model is not an adapter. */
    CHECK(lm_lora_read(MODEL, &l, &err) != LM_OK && strstr(err.message, "general.type"));
    printf("  %-28s -> %s\n", "model file", err.message);

    lm_gguf_writer *w = header("model", "lora", "llama");
    add(w, "blk.0.attn_q.weight.lora_a", d, 4);
    add(w, "blk.0.attn_q.weight.lora_b", 4, d);
    expect_read_fails("general.type = model", w, "general.type");

    w = header("adapter", "control_vector", "llama");
    add(w, "blk.0.attn_q.weight.lora_a", d, 4);
    add(w, "blk.0.attn_q.weight.lora_b", 4, d);
    expect_read_fails("adapter.type", w, "adapter.type");

    w = header("adapter", "lora", NULL);
    add(w, "blk.0.attn_q.weight.lora_a", d, 4);
    add(w, "blk.0.attn_q.weight.lora_b", 4, d);
    expect_read_fails("no architecture", w, "general.architecture");

    w = header("adapter", "lora", "llama");
    add(w, "blk.0.attn_q.weight.lora_a", d, 4);
    add(w, "blk.0.attn_q.weight.lora_b", 4, d);
    add(w, "blk.0.attn_k.weight.lora_a", d, 4);
    expect_read_fails("missing lora_b", w, "no lora_b");

    w = header("adapter", "lora", "llama");
    add(w, "blk.0.attn_q.weight.lora_b", 4, d);
    expect_read_fails("missing lora_a", w, "no lora_a");

    w = header("adapter", "lora", "llama");
    add(w, "blk.0.attn_q.weight.lora_a", d, 4);
    add(w, "blk.0.attn_q.weight.lora_b", 5, d);
    expect_read_fails("ranks of a and b differ", w, "rank");

    w = header("adapter", "lora", "llama");
    add(w, "blk.0.attn_q.weight.lora_a", 4, 8);
    add(w, "blk.0.attn_q.weight.lora_b", 8, d);
    expect_read_fails("rank > min(rows, cols)", w, "rank 8 is outside 1..4");

    w = header("adapter", "lora", "llama");
    {
        int64_t ne[3] = {d, 4, 2};
        REQUIRE(lm_gguf_writer_add_tensor(w, "blk.0.attn_q.weight.lora_a", LM_TYPE_F32, 3, ne, zeros, NULL) == LM_OK);
    }
    add(w, "blk.0.attn_q.weight.lora_b", 4, d);
    expect_read_fails("3-D factor", w, "dimensions");

    w = header("adapter", "lora", "llama");
    add(w, "blk.0.attn_q.weight", d, d);
    expect_read_fails("not a factor", w, "not a LoRA factor");

    w = header("adapter", "lora", "llama");
    add(w, "token_embd.weight.lora_a", 4, c->n_vocab);
    add(w, "token_embd.weight.lora_b", d, 4);
    expect_read_fails("token_embd", w, "token_embd");

    w = header("adapter", "lora", "llama");
    expect_read_fails("no tensors", w, "no lora_a/lora_b");

    w = header("adapter", "lora", "llama");
    add(w, ".lora_a", d, 4);
    add(w, ".lora_b", 4, d);
    expect_read_fails("empty base name", w, "names no base tensor");

    w = header("adapter", "lora", "llama");
    zeros[5] = NAN;
    add(w, "blk.0.attn_q.weight.lora_a", d, 4);
    add(w, "blk.0.attn_q.weight.lora_b", 4, d);
    expect_read_fails("NaN", w, "not finite");
    zeros[5] = 0.0f;

    /* Valid files that do not fit this model. */
    w = header("adapter", "lora", "gpt2");
    add(w, "blk.0.attn_q.weight.lora_a", d, 4);
    add(w, "blk.0.attn_q.weight.lora_b", 4, d);
    expect_attach_fails("wrong architecture", w, m, "architecture");

    w = header("adapter", "lora", "llama");
    add(w, "blk.0.attn_q.weight.lora_a", d / 2, 4);
    add(w, "blk.0.attn_q.weight.lora_b", 4, d);
    expect_attach_fails("wrong shape", w, m, "the model's matrix is");

    w = header("adapter", "lora", "llama");
    add(w, "blk.99.attn_q.weight.lora_a", d, 4);
    add(w, "blk.99.attn_q.weight.lora_b", 4, d);
    expect_attach_fails("no such layer", w, m, "names no adaptable matrix");

    w = header("adapter", "lora", "llama");
    add(w, "output.weight.lora_a", d, 4);
    add(w, "output.weight.lora_b", 4, c->n_vocab);
    expect_attach_fails("output.weight", w, m, "lora merge");

    /* Merging a mismatched adapter fails too, and writes nothing. */
    w = header("adapter", "lora", "gpt2");
    add(w, "blk.0.attn_q.weight.lora_a", d, 4);
    add(w, "blk.0.attn_q.weight.lora_b", 4, d);
    REQUIRE(lm_gguf_writer_write_file(w, tmp_path("gpt2.gguf"), NULL) == LM_OK);
    lm_gguf_writer_free(w);
    CHECK(lm_lora_merge(MODEL, tmp_path("gpt2.gguf"), tmp_path("never.gguf"), NULL, &err) != LM_OK &&
          strstr(err.message, "architecture"));
    CHECK(access(tmp_path("never.gguf"), F_OK) != 0);
    CHECK(lm_lora_merge(tmp_path("gpt2.gguf"), tmp_path("gpt2.gguf"), tmp_path("never.gguf"), NULL, &err) != LM_OK);
    unlink(tmp_path("gpt2.gguf"));
    unlink(tmp_path("bad.gguf"));
    unlink(tmp_path("bad_attach.gguf"));
    unlink(cut_path);
}

/* F16 factors are read (converted to F32). */
static void f16_factors(int64_t d) {
    lm_gguf_writer *w = header("adapter", "lora", "llama");
    uint16_t ha[64 * 4], hb[4 * 64];
    REQUIRE(d <= 64);
    for (int64_t i = 0; i < d * 4; i++) {
        ha[i] = lm_fp32_to_fp16((float)i / 64.0f);
        hb[i] = lm_fp32_to_fp16(-(float)i / 128.0f);
    }
    int64_t ne_a[2] = {d, 4}, ne_b[2] = {4, d};
    REQUIRE(lm_gguf_writer_add_tensor(w, "blk.0.ffn_up.weight.lora_a", LM_TYPE_F16, 2, ne_a, ha, NULL) == LM_OK);
    REQUIRE(lm_gguf_writer_add_tensor(w, "blk.0.ffn_up.weight.lora_b", LM_TYPE_F16, 2, ne_b, hb, NULL) == LM_OK);
    const char *path = tmp_path("f16.gguf");
    REQUIRE(lm_gguf_writer_write_file(w, path, NULL) == LM_OK);
    lm_gguf_writer_free(w);
    lm_error err = {0};
    lm_lora *l = NULL;
    CHECKF(lm_lora_read(path, &l, &err) == LM_OK, "%s", err.message);
    if (l) {
        CHECK(l->n_tensors == 1 && l->tensors[0].rank == 4 && l->tensors[0].cols == d && l->tensors[0].rows == d);
        CHECK(l->tensors[0].a[10] == 10.0f / 64.0f && l->tensors[0].b[7] == -7.0f / 128.0f);
        CHECK(l->alpha == 8.0f);
    }
    lm_lora_free(l);
    unlink(path);
}

/* Merging handles any 2-D base tensor, output.weight included:
 * merged[r, c] = W[r, c] + (alpha / rank) * sum_k B[r, k] A[k, c]. */
static void merge_output(const lm_model_config *c) {
    lm_gguf *g;
    lm_error err = {0};
    REQUIRE(lm_gguf_open(MODEL, &g, &err) == LM_OK);
    int64_t oi = lm_gguf_find_tensor(g, "output.weight");
    if (oi < 0) { /* tied: nothing to merge into */
        lm_gguf_free(g);
        return;
    }
    const lm_gguf_tensor *w = lm_gguf_tensor_at(g, oi);
    REQUIRE(w->type == LM_TYPE_F32);
    lm_lora l = {.alpha = 4.0f, .n_tensors = 1};
    snprintf(l.arch, sizeof l.arch, "%s", c->arch);
    lm_lora_tensor t = {.name = "output.weight", .rows = c->n_vocab, .cols = c->dim, .rank = 2};
    t.a = rnd_array(2 * c->dim, 0.5f);
    t.b = rnd_array(c->n_vocab * 2, 0.5f);
    l.tensors = &t;
    const char *ap = tmp_path("out_adapter.gguf"), *mp = tmp_path("out_merged.gguf");
    CHECKF(lm_lora_write(ap, &l, &err) == LM_OK, "%s", err.message);
    lm_lora_merge_params p = {0.5f, 1, NULL, NULL}; /* scale 0.5 * 4 / 2 = 1 */
    CHECKF(lm_lora_merge(MODEL, ap, mp, &p, &err) == LM_OK, "%s", err.message);
    lm_gguf *gm;
    REQUIRE(lm_gguf_open(mp, &gm, &err) == LM_OK);
    const lm_gguf_tensor *m = lm_gguf_tensor_at(gm, lm_gguf_find_tensor(gm, "output.weight"));
    REQUIRE(m && m->type == LM_TYPE_F32);
    const float *W = w->data, *M = m->data;
    double worst = 0;
    for (int64_t r = 0; r < c->n_vocab; r += 7) {
        for (int64_t j = 0; j < c->dim; j++) {
            double want = W[r * c->dim + j] + (double)t.b[r * 2] * t.a[j] + (double)t.b[r * 2 + 1] * t.a[c->dim + j];
            double d = fabs(want - M[r * c->dim + j]);
            worst = d > worst ? d : worst;
        }
    }
    CHECKF(worst < 1e-5, "merged output.weight is off by %g", worst);
    lm_gguf_free(gm);
    lm_gguf_free(g);
    free(t.a);
    free(t.b);
    unlink(ap);
    unlink(mp);
}

/* ---- logits ---- */

static double max_abs_diff(const float *a, const float *b, int64_t n) {
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= worst)) worst = d; /* NaN counts as worst */
    }
    return worst;
}

/* (N_TOK, n_vocab) logits token by token, and batched (all N_TOK at once). */
static void logits_of(const lm_model *m, const int32_t *toks, float *seq, float *bat) {
    lm_error err = {0};
    int64_t nv = lm_model_get_config(m)->n_vocab;
    lm_context *c;
    REQUIRE(lm_context_init(m, N_TOK, 2, &c, &err) == LM_OK);
    const float *lg;
    for (int64_t i = 0; i < N_TOK; i++) {
        REQUIRE(lm_context_forward(c, toks[i], i, &lg, &err) == LM_OK);
        memcpy(seq + i * nv, lg, (size_t)nv * sizeof *lg);
    }
    lm_context_free(c);
    if (!bat) return;
    REQUIRE(lm_context_init(m, N_TOK, 2, &c, &err) == LM_OK);
    REQUIRE(lm_context_forward_batch(c, toks, N_TOK, 0, bat, NULL, &err) == LM_OK);
    lm_context_free(c);
}

static void logits_match_merge(const lm_lora *lora, const char *adapter_path) {
    lm_error err = {0};
    lm_model *base, *adapted, *merged, *zero;
    REQUIRE(lm_model_load(MODEL, &base, &err) == LM_OK);
    REQUIRE(lm_model_load(MODEL, &adapted, &err) == LM_OK);
    REQUIRE(lm_model_load(MODEL, &zero, &err) == LM_OK);
    const int64_t nv = lm_model_get_config(base)->n_vocab;
    CHECKF(lm_model_attach_lora(adapted, lora, 1.0f, &err) == LM_OK, "%s", err.message);
    CHECK(lm_model_attach_lora(adapted, lora, 1.0f, &err) == LM_ERR_ARG && strstr(err.message, "already"));
    CHECKF(lm_model_attach_lora_file(zero, adapter_path, 0.0f, &err) == LM_OK, "%s", err.message);
    lm_lora_merge_params mp = {1.0f, 2, NULL, NULL};
    const char *merged_path = tmp_path("merged.gguf");
    CHECKF(lm_lora_merge(MODEL, adapter_path, merged_path, &mp, &err) == LM_OK, "%s", err.message);
    REQUIRE(lm_model_load(merged_path, &merged, &err) == LM_OK);

    int32_t toks[N_TOK];
    for (int i = 0; i < N_TOK; i++) toks[i] = (int32_t)(1 + lm_rng_next(&rng) % (uint64_t)(nv - 1));
    size_t bytes = (size_t)(N_TOK * nv) * sizeof(float);
    float *b_seq = malloc(bytes), *a_seq = malloc(bytes), *a_bat = malloc(bytes), *m_seq = malloc(bytes),
          *m_bat = malloc(bytes), *z_seq = malloc(bytes);
    REQUIRE(b_seq && a_seq && a_bat && m_seq && m_bat && z_seq);
    logits_of(base, toks, b_seq, NULL);
    logits_of(adapted, toks, a_seq, a_bat);
    logits_of(merged, toks, m_seq, m_bat);
    logits_of(zero, toks, z_seq, NULL);

    double changed = max_abs_diff(b_seq, a_seq, N_TOK * nv);
    double dec = max_abs_diff(a_seq, m_seq, N_TOK * nv), bat = max_abs_diff(a_bat, m_bat, N_TOK * nv);
    double self = max_abs_diff(a_seq, a_bat, N_TOK * nv);
    printf("adapter vs base: max |logit diff| %.3g; adapter vs merged: decode %.3g, batched prefill of %d %.3g; "
           "adapter batched vs decode %.3g\n",
           changed, dec, N_TOK, bat, self);
    CHECKF(changed > 0.05, "the adapter barely changes the logits (%.3g)", changed);
    CHECKF(dec <= 1e-4, "decode: adapter and merged model differ by %.3g", dec);
    CHECKF(bat <= 1e-4, "batched: adapter and merged model differ by %.3g", bat);
    CHECKF(self <= 1e-4, "adapter: batched and decoded logits differ by %.3g", self);
    CHECKF(memcmp(b_seq, z_seq, bytes) == 0, "an adapter at scale 0 changes the logits");

    /* A small batch (< LM_GEMM_MIN_TOKENS) equals decoding bit for bit. */
    lm_context *c;
    REQUIRE(lm_context_init(adapted, N_TOK, 2, &c, &err) == LM_OK);
    CHECK(lm_context_forward_batch(c, toks, 6, 0, a_bat, NULL, &err) == LM_OK);
    CHECK(memcmp(a_bat, a_seq, (size_t)(6 * nv) * sizeof(float)) == 0);
    lm_context_free(c);

    /* The merged file: adapted matrices are F32, the rest and the metadata as before. */
    lm_gguf *gb, *gm;
    REQUIRE(lm_gguf_open(MODEL, &gb, &err) == LM_OK && lm_gguf_open(merged_path, &gm, &err) == LM_OK);
    CHECK(lm_gguf_kv_count(gb) == lm_gguf_kv_count(gm) && lm_gguf_tensor_count(gb) == lm_gguf_tensor_count(gm));
    for (int64_t i = 0; i < lm_gguf_kv_count(gb) && i < lm_gguf_kv_count(gm); i++) {
        CHECK(strcmp(lm_gguf_key(gb, i), lm_gguf_key(gm, i)) == 0);
    }
    int64_t ti = lm_gguf_find_tensor(gm, "token_embd.weight");
    REQUIRE(ti >= 0);
    const lm_gguf_tensor *te = lm_gguf_tensor_at(gm, ti), *tb = lm_gguf_tensor_at(gb, lm_gguf_find_tensor(gb, "token_embd.weight"));
    CHECK(te->type == tb->type && te->n_bytes == tb->n_bytes && memcmp(te->data, tb->data, te->n_bytes) == 0);
    ti = lm_gguf_find_tensor(gm, "blk.0.ffn_down.weight");
    CHECK(ti >= 0 && lm_gguf_tensor_at(gm, ti)->type == LM_TYPE_F32);
    lm_gguf_free(gb);
    lm_gguf_free(gm);

    free(b_seq);
    free(a_seq);
    free(a_bat);
    free(m_seq);
    free(m_bat);
    free(z_seq);
    unlink(merged_path);
    lm_model_free(base);
    lm_model_free(adapted);
    lm_model_free(merged);
    lm_model_free(zero);
}

int main(int argc, char **argv) {
    lm_rng_seed(&rng, 260);
    if (argc == 3 && strcmp(argv[1], "--write-adapter") == 0) { /* for lora_test.sh */
        lm_error err = {0};
        lm_model *m;
        REQUIRE(lm_model_load(MODEL, &m, &err) == LM_OK);
        lm_lora *l = make_adapter(lm_model_get_config(m));
        lm_status st = lm_lora_write(argv[2], l, &err);
        if (st) fprintf(stderr, "%s\n", err.message);
        lm_lora_free(l);
        lm_model_free(m);
        return st ? 1 : 0;
    }
    snprintf(dir, sizeof dir, "/tmp/llmos_test_lora_XXXXXX");
    REQUIRE(mkdtemp(dir));
    lm_error err = {0};
    lm_model *m;
    REQUIRE(lm_model_load(MODEL, &m, &err) == LM_OK);
    const lm_model_config *c = lm_model_get_config(m);

    lm_lora *lora = make_adapter(c);
    char path[128]; /* tmp_path's buffers are reused */
    snprintf(path, sizeof path, "%s", tmp_path("adapter.gguf"));
    CHECKF(lm_lora_write(path, lora, &err) == LM_OK, "%s", err.message);
    round_trip(lora, path);

    /* lm_lora_write refuses what it cannot write. */
    lm_lora bad = *lora;
    bad.n_tensors = 0;
    CHECK(lm_lora_write(tmp_path("x.gguf"), &bad, &err) == LM_ERR_ARG);
    lm_lora_tensor t = lora->tensors[0];
    bad.tensors = &t;
    bad.n_tensors = 1;
    t.rank = 65;
    CHECK(lm_lora_write(tmp_path("x.gguf"), &bad, &err) == LM_ERR_ARG && strstr(err.message, "rank"));
    t.rank = RANK;
    float *b = malloc((size_t)(t.rows * RANK) * sizeof *b);
    REQUIRE(b);
    memcpy(b, t.b, (size_t)(t.rows * RANK) * sizeof *b);
    b[3] = INFINITY;
    t.b = b;
    CHECK(lm_lora_write(tmp_path("x.gguf"), &bad, &err) == LM_ERR_ARG && strstr(err.message, "B element 3 is not finite"));
    t.b = lora->tensors[0].b;
    free(b);
    memset(t.name, 'x', sizeof t.name - 1);
    t.name[sizeof t.name - 1] = 0;
    CHECK(lm_lora_write(tmp_path("x.gguf"), &bad, &err) == LM_ERR_ARG && strstr(err.message, "longer"));
    CHECK(access(tmp_path("x.gguf"), F_OK) != 0);

    bad_files(path, m);
    f16_factors(c->dim);
    merge_output(c);
    logits_match_merge(lora, path);

    lm_lora_free(lora);
    lm_model_free(m);
    unlink(path);
    rmdir(dir);
    TEST_END();
}
