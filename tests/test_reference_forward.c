/* The engine's forward pass against an independent float64 reference.
 *
 * Each configuration builds a random small Llama model as an in-memory GGUF,
 * loads it with the library, and feeds a fixed token sequence through
 * lm_context_forward one position at a time. The reference below is written
 * from the math of the Llama architecture (llama.cpp's "normal" RoPE on
 * adjacent pairs), plainly and in double precision, sharing no code with
 * src/. At every position the engine's logits must agree with the reference
 * to 1e-4 relative (max abs difference / max abs reference logit), and a
 * two-thread context must give logits bit-identical to a one-thread one. */
#include "llmos/model.h"
#include "test.h"

#include <math.h>
#include <stdint.h>

#define REL_TOL 1e-4

typedef struct config {
    const char *name;
    int dim, n_layers, n_heads, n_kv_heads;
    int head_dim;      /* 0: dim / n_heads, and no attention.key_length key */
    int ffn_dim, n_vocab, context_length;
    int rope_dim;      /* 0: no rope.dimension_count key (full head) */
    float rope_base;   /* 0: no rope.freq_base key (10000) */
    float norm_eps;    /* 0: no layer_norm_rms_epsilon key (1e-5) */
    int tied;          /* 1: no output.weight; token_embd is the output */
    int n_tokens;      /* sequence length fed through the model */
    uint64_t seed;
} config;

/* ---- a seeded generator (splitmix64), independent of the library's ---- */

static uint64_t rng_state;

static uint64_t rng_next(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [-1, 1). */
static double rng_sym(void) { return (double)(rng_next() >> 11) * 0x1.0p-52 - 1.0; }

/* ---- the random model ---- */

typedef struct layer {
    float *attn_norm, *wq, *wk, *wv, *wo, *ffn_norm, *w_gate, *w_up, *w_down;
} layer;

typedef struct weights {
    float *tok_embd;    /* (n_vocab, dim) */
    float *output_norm; /* (dim) */
    float *output;      /* (n_vocab, dim); NULL when tied */
    layer *layers;
} weights;

static float *rand_floats(size_t n, double center, double half_width) {
    float *p = malloc(n * sizeof *p);
    REQUIRE(p);
    for (size_t i = 0; i < n; i++) p[i] = (float)(center + half_width * rng_sym());
    return p;
}

/* A projection (n_out, n_in) whose outputs have about gain^2 variance for
 * unit-variance inputs: uniform with variance gain^2 / n_in. */
static float *rand_proj(int n_out, int n_in, double gain) {
    return rand_floats((size_t)n_out * (size_t)n_in, 0.0, gain * sqrt(3.0 / n_in));
}

static int head_dim_of(const config *c) { return c->head_dim ? c->head_dim : c->dim / c->n_heads; }
static int rope_dim_of(const config *c) { return c->rope_dim ? c->rope_dim : head_dim_of(c); }
static double rope_base_of(const config *c) { return c->rope_base != 0.0f ? (double)c->rope_base : 10000.0; }
/* The file stores epsilon as f32, so the model sees the float's value. */
static double eps_of(const config *c) { return c->norm_eps != 0.0f ? (double)c->norm_eps : 1e-5; }

static weights make_weights(const config *c) {
    weights w;
    int hd = head_dim_of(c), q_dim = c->n_heads * hd, kv_dim = c->n_kv_heads * hd;
    rng_state = c->seed;
    w.tok_embd = rand_floats((size_t)c->n_vocab * (size_t)c->dim, 0.0, 1.0);
    w.output_norm = rand_floats((size_t)c->dim, 1.0, 0.25);
    w.output = c->tied ? NULL : rand_proj(c->n_vocab, c->dim, 2.0);
    w.layers = calloc((size_t)c->n_layers, sizeof *w.layers);
    REQUIRE(w.layers);
    for (int l = 0; l < c->n_layers; l++) {
        layer *L = &w.layers[l];
        L->attn_norm = rand_floats((size_t)c->dim, 1.0, 0.25);
        /* Larger q and k make the attention peaked rather than nearly
         * uniform, so errors in RoPE or head mapping show in the logits. */
        L->wq = rand_proj(q_dim, c->dim, 1.5);
        L->wk = rand_proj(kv_dim, c->dim, 1.5);
        L->wv = rand_proj(kv_dim, c->dim, 1.0);
        L->wo = rand_proj(c->dim, q_dim, 1.0);
        L->ffn_norm = rand_floats((size_t)c->dim, 1.0, 0.25);
        L->w_gate = rand_proj(c->ffn_dim, c->dim, 1.0);
        L->w_up = rand_proj(c->ffn_dim, c->dim, 1.0);
        L->w_down = rand_proj(c->dim, c->ffn_dim, 1.0);
    }
    return w;
}

static void free_weights(const config *c, weights *w) {
    free(w->tok_embd);
    free(w->output_norm);
    free(w->output);
    for (int l = 0; l < c->n_layers; l++) {
        layer *L = &w->layers[l];
        free(L->attn_norm);
        free(L->wq);
        free(L->wk);
        free(L->wv);
        free(L->wo);
        free(L->ffn_norm);
        free(L->w_gate);
        free(L->w_up);
        free(L->w_down);
    }
    free(w->layers);
}

/* ---- the GGUF ---- */

#define OK(expr)                                                           \
    do {                                                                   \
        lm_status st_ = (expr);                                            \
        if (st_ != LM_OK) {                                                \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #expr,  \
                    err.message);                                          \
            exit(1);                                                       \
        }                                                                  \
    } while (0)

/* A 2-D weight (n_out, n_in) row-major, stored as ggml ne = [n_in, n_out]. */
static void add_2d(lm_gguf_writer *gw, const char *name, const float *data, int n_in, int n_out) {
    lm_error err = {0};
    int64_t ne[2] = {n_in, n_out};
    OK(lm_gguf_writer_add_tensor(gw, name, LM_TYPE_F32, 2, ne, data, &err));
}

static void add_1d(lm_gguf_writer *gw, const char *name, const float *data, int n) {
    lm_error err = {0};
    int64_t ne[1] = {n};
    OK(lm_gguf_writer_add_tensor(gw, name, LM_TYPE_F32, 1, ne, data, &err));
}

static void build_gguf(const config *c, const weights *w, uint8_t **buf, size_t *size) {
    lm_error err = {0};
    int hd = head_dim_of(c), q_dim = c->n_heads * hd, kv_dim = c->n_kv_heads * hd;
    lm_gguf_writer *gw = lm_gguf_writer_init();
    REQUIRE(gw);
    OK(lm_gguf_writer_set_str(gw, "general.architecture", "llama", &err));
    OK(lm_gguf_writer_set_str(gw, "general.name", c->name, &err));
    OK(lm_gguf_writer_set_u32(gw, "llama.context_length", (uint32_t)c->context_length, &err));
    OK(lm_gguf_writer_set_u32(gw, "llama.embedding_length", (uint32_t)c->dim, &err));
    OK(lm_gguf_writer_set_u32(gw, "llama.block_count", (uint32_t)c->n_layers, &err));
    OK(lm_gguf_writer_set_u32(gw, "llama.feed_forward_length", (uint32_t)c->ffn_dim, &err));
    OK(lm_gguf_writer_set_u32(gw, "llama.attention.head_count", (uint32_t)c->n_heads, &err));
    OK(lm_gguf_writer_set_u32(gw, "llama.attention.head_count_kv", (uint32_t)c->n_kv_heads, &err));
    if (c->head_dim) OK(lm_gguf_writer_set_u32(gw, "llama.attention.key_length", (uint32_t)c->head_dim, &err));
    if (c->rope_dim) OK(lm_gguf_writer_set_u32(gw, "llama.rope.dimension_count", (uint32_t)c->rope_dim, &err));
    if (c->rope_base != 0.0f) OK(lm_gguf_writer_set_f32(gw, "llama.rope.freq_base", c->rope_base, &err));
    if (c->norm_eps != 0.0f) {
        OK(lm_gguf_writer_set_f32(gw, "llama.attention.layer_norm_rms_epsilon", c->norm_eps, &err));
    }

    OK(lm_gguf_writer_set_str(gw, "tokenizer.ggml.model", "llama", &err));
    char(*text)[16] = malloc((size_t)c->n_vocab * sizeof *text);
    lm_str *toks = malloc((size_t)c->n_vocab * sizeof *toks);
    REQUIRE(text && toks);
    for (int i = 0; i < c->n_vocab; i++) {
        int n = snprintf(text[i], sizeof text[i], "tok%d", i);
        toks[i].ptr = text[i];
        toks[i].len = (uint64_t)n;
    }
    OK(lm_gguf_writer_set_arr_str(gw, "tokenizer.ggml.tokens", toks, (uint64_t)c->n_vocab, &err));
    OK(lm_gguf_writer_set_u32(gw, "tokenizer.ggml.bos_token_id", 1, &err));
    OK(lm_gguf_writer_set_u32(gw, "tokenizer.ggml.eos_token_id", 2, &err));

    add_2d(gw, "token_embd.weight", w->tok_embd, c->dim, c->n_vocab);
    add_1d(gw, "output_norm.weight", w->output_norm, c->dim);
    if (!c->tied) add_2d(gw, "output.weight", w->output, c->dim, c->n_vocab);
    for (int l = 0; l < c->n_layers; l++) {
        const layer *L = &w->layers[l];
        char name[64];
#define NAME(suffix) (snprintf(name, sizeof name, "blk.%d." suffix, l), name)
        add_1d(gw, NAME("attn_norm.weight"), L->attn_norm, c->dim);
        add_2d(gw, NAME("attn_q.weight"), L->wq, c->dim, q_dim);
        add_2d(gw, NAME("attn_k.weight"), L->wk, c->dim, kv_dim);
        add_2d(gw, NAME("attn_v.weight"), L->wv, c->dim, kv_dim);
        add_2d(gw, NAME("attn_output.weight"), L->wo, q_dim, c->dim);
        add_1d(gw, NAME("ffn_norm.weight"), L->ffn_norm, c->dim);
        add_2d(gw, NAME("ffn_gate.weight"), L->w_gate, c->dim, c->ffn_dim);
        add_2d(gw, NAME("ffn_up.weight"), L->w_up, c->dim, c->ffn_dim);
        add_2d(gw, NAME("ffn_down.weight"), L->w_down, c->ffn_dim, c->dim);
#undef NAME
    }
    OK(lm_gguf_writer_write_memory(gw, buf, size, &err));
    lm_gguf_writer_free(gw);
    free(text);
    free(toks);
}

/* ---- the float64 reference ---- */

/* y (n_out) = W (n_out, n_in) x (n_in) */
static void ref_matvec(double *y, const float *W, const double *x, int n_out, int n_in) {
    for (int o = 0; o < n_out; o++) {
        double s = 0.0;
        for (int i = 0; i < n_in; i++) s += (double)W[(size_t)o * (size_t)n_in + (size_t)i] * x[i];
        y[o] = s;
    }
}

/* out = x / sqrt(mean(x^2) + eps) * weight */
static void ref_rmsnorm(double *out, const double *x, const float *weight, int n, double eps) {
    double ss = 0.0;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    double rms = sqrt(ss / n + eps);
    for (int i = 0; i < n; i++) out[i] = x[i] / rms * (double)weight[i];
}

/* Rotates the pairs (v[2i], v[2i+1]), 2i < rope_dim, by pos * base^(-2i / rope_dim). */
static void ref_rope(double *v, int rope_dim, double base, int pos) {
    for (int i = 0; 2 * i < rope_dim; i++) {
        double theta = pos * pow(base, -2.0 * i / rope_dim);
        double a = v[2 * i], b = v[2 * i + 1];
        v[2 * i] = a * cos(theta) - b * sin(theta);
        v[2 * i + 1] = a * sin(theta) + b * cos(theta);
    }
}

static double silu(double x) { return x / (1.0 + exp(-x)); }

/* Logits (n_tokens, n_vocab) for every prefix of tokens. */
static double *ref_forward(const config *c, const weights *w, const int32_t *tokens, int n_tokens) {
    int dim = c->dim, hd = head_dim_of(c), q_dim = c->n_heads * hd, kv_dim = c->n_kv_heads * hd;
    int rope_dim = rope_dim_of(c), group = c->n_heads / c->n_kv_heads;
    double base = rope_base_of(c), eps = eps_of(c);
    size_t kv_size = (size_t)c->n_layers * (size_t)n_tokens * (size_t)kv_dim;
    double *K = malloc(kv_size * sizeof *K), *V = malloc(kv_size * sizeof *V);
    double *x = malloc((size_t)dim * sizeof *x), *h = malloc((size_t)dim * sizeof *h);
    double *o = malloc((size_t)dim * sizeof *o);
    double *q = malloc((size_t)q_dim * sizeof *q), *att = malloc((size_t)q_dim * sizeof *att);
    double *g = malloc((size_t)c->ffn_dim * sizeof *g), *u = malloc((size_t)c->ffn_dim * sizeof *u);
    double *score = malloc((size_t)n_tokens * sizeof *score);
    double *logits = malloc((size_t)n_tokens * (size_t)c->n_vocab * sizeof *logits);
    REQUIRE(K && V && x && h && o && q && att && g && u && score && logits);

    for (int pos = 0; pos < n_tokens; pos++) {
        for (int i = 0; i < dim; i++) x[i] = w->tok_embd[(size_t)tokens[pos] * (size_t)dim + (size_t)i];
        for (int l = 0; l < c->n_layers; l++) {
            const layer *L = &w->layers[l];
            double *Kl = K + (size_t)l * (size_t)n_tokens * (size_t)kv_dim;
            double *Vl = V + (size_t)l * (size_t)n_tokens * (size_t)kv_dim;
            double *k = Kl + (size_t)pos * (size_t)kv_dim, *v = Vl + (size_t)pos * (size_t)kv_dim;

            ref_rmsnorm(h, x, L->attn_norm, dim, eps);
            ref_matvec(q, L->wq, h, q_dim, dim);
            ref_matvec(k, L->wk, h, kv_dim, dim);
            ref_matvec(v, L->wv, h, kv_dim, dim);
            for (int hh = 0; hh < c->n_heads; hh++) ref_rope(q + hh * hd, rope_dim, base, pos);
            for (int hh = 0; hh < c->n_kv_heads; hh++) ref_rope(k + hh * hd, rope_dim, base, pos);

            /* Causal attention: query head hh reads kv head hh / group. */
            for (int hh = 0; hh < c->n_heads; hh++) {
                int kvh = hh / group;
                double max = -INFINITY, sum = 0.0;
                for (int t = 0; t <= pos; t++) {
                    double s = 0.0;
                    for (int i = 0; i < hd; i++) s += q[hh * hd + i] * Kl[(size_t)t * (size_t)kv_dim + (size_t)(kvh * hd + i)];
                    score[t] = s / sqrt((double)hd);
                    if (score[t] > max) max = score[t];
                }
                for (int t = 0; t <= pos; t++) {
                    score[t] = exp(score[t] - max);
                    sum += score[t];
                }
                for (int i = 0; i < hd; i++) {
                    double a = 0.0;
                    for (int t = 0; t <= pos; t++) a += score[t] / sum * Vl[(size_t)t * (size_t)kv_dim + (size_t)(kvh * hd + i)];
                    att[hh * hd + i] = a;
                }
            }
            ref_matvec(o, L->wo, att, dim, q_dim);
            for (int i = 0; i < dim; i++) x[i] += o[i];

            ref_rmsnorm(h, x, L->ffn_norm, dim, eps);
            ref_matvec(g, L->w_gate, h, c->ffn_dim, dim);
            ref_matvec(u, L->w_up, h, c->ffn_dim, dim);
            for (int i = 0; i < c->ffn_dim; i++) g[i] = silu(g[i]) * u[i];
            ref_matvec(o, L->w_down, g, dim, c->ffn_dim);
            for (int i = 0; i < dim; i++) x[i] += o[i];
        }
        ref_rmsnorm(h, x, w->output_norm, dim, eps);
        ref_matvec(logits + (size_t)pos * (size_t)c->n_vocab, c->tied ? w->tok_embd : w->output, h, c->n_vocab, dim);
    }
    free(K);
    free(V);
    free(x);
    free(h);
    free(o);
    free(q);
    free(att);
    free(g);
    free(u);
    free(score);
    return logits;
}

/* ---- the comparison ---- */

static double worst_overall;

/* Continuous batching: three sequences of different lengths and contents, each in its own
 * context, decoded a few steps together with lm_context_forward_multi, give the logits each
 * gives decoded alone with lm_context_forward (to matrix-product rounding). */
static void check_multi(const config *c, const lm_model *m, const int32_t *tokens) {
    enum { S = 3, STEPS = 4 };
    lm_error err = {0};
    lm_context *alone[S], *multi[S];
    int64_t len[S] = {c->n_tokens / 4, c->n_tokens / 2, c->n_tokens - STEPS - 1}, pos[S];
    int32_t *seq[S];
    for (int k = 0; k < S; k++) {
        OK(lm_context_init(m, c->n_tokens, 2, &alone[k], &err));
        OK(lm_context_init(m, c->n_tokens, 2, &multi[k], &err));
        seq[k] = malloc((size_t)c->n_tokens * sizeof *seq[k]);
        REQUIRE(seq[k]);
        for (int i = 0; i < c->n_tokens; i++) seq[k][i] = tokens[(i + 7 * k) % c->n_tokens];
        OK(lm_context_forward_batch(alone[k], seq[k], len[k], 0, NULL, NULL, &err));
        OK(lm_context_forward_batch(multi[k], seq[k], len[k], 0, NULL, NULL, &err));
        pos[k] = len[k];
    }
    float *got = malloc((size_t)S * (size_t)c->n_vocab * sizeof *got);
    REQUIRE(got);
    double worst = 0;
    for (int step = 0; step < STEPS; step++) {
        int32_t tok[S];
        for (int k = 0; k < S; k++) tok[k] = seq[k][pos[k]];
        OK(lm_context_forward_multi(multi, tok, pos, S, got, &err));
        for (int k = 0; k < S; k++) {
            const float *want;
            OK(lm_context_forward(alone[k], tok[k], pos[k], &want, &err));
            double max_diff = 0, max_ref = 0;
            for (int i = 0; i < c->n_vocab; i++) {
                double d = fabs((double)got[(size_t)k * (size_t)c->n_vocab + (size_t)i] - want[i]);
                if (!(d <= max_diff)) max_diff = d;
                if (fabs(want[i]) > max_ref) max_ref = fabs(want[i]);
            }
            if (!(max_diff / max_ref <= worst)) worst = max_diff / max_ref;
            pos[k]++;
        }
    }
    /* A chunk of sequence 0's tokens (positions p..p+2, in one step with sequence 1's next token,
     * only the chunk's last and sequence 1's logits wanted) gives what they give one at a time. */
    {
        lm_context *step[4] = {multi[0], multi[1], multi[0], multi[0]};
        int32_t tok[4] = {seq[0][pos[0]], seq[1][pos[1]], seq[0][pos[0] + 1], seq[0][pos[0] + 2]};
        int64_t at[4] = {pos[0], pos[1], pos[0] + 1, pos[0] + 2};
        const unsigned char want[4] = {0, 1, 0, 1};
        OK(lm_context_forward_step(step, tok, at, 4, want, got, &err));
        /* The wanted rows in step order: sequence 1's token (entry 1), then the chunk's last (entry 3). */
        const float *other = got, *chunk_last = got + c->n_vocab, *want_logits;
        const int chunk[3] = {0, 2, 3};
        for (int i = 0; i < 3; i++) OK(lm_context_forward(alone[0], tok[chunk[i]], at[chunk[i]], &want_logits, &err));
        double d0 = 0, r0 = 0;
        for (int i = 0; i < c->n_vocab; i++) {
            d0 = fmax(d0, fabs((double)chunk_last[i] - want_logits[i]));
            r0 = fmax(r0, fabs(want_logits[i]));
        }
        OK(lm_context_forward(alone[1], tok[1], at[1], &want_logits, &err));
        double d1 = 0, r1 = 0;
        for (int i = 0; i < c->n_vocab; i++) {
            d1 = fmax(d1, fabs((double)other[i] - want_logits[i]));
            r1 = fmax(r1, fabs(want_logits[i]));
        }
        if (!(d0 / r0 <= worst)) worst = d0 / r0;
        if (!(d1 / r1 <= worst)) worst = d1 / r1;
    }
    printf("%-34s 3 sequences in one step, and a chunk of one: worst relative difference from each alone %.3e\n", c->name, worst);
    CHECKF(worst <= 1e-5, "%s: several sequences in one step differ from each alone by %.3g relative", c->name, worst);
    /* A position twice in one step, or a position past its context, is refused. */
    lm_context *twice[2] = {multi[0], multi[0]};
    int32_t t2[2] = {0, 0};
    int64_t p2[2] = {pos[0], pos[0]};
    CHECK(lm_context_forward_multi(twice, t2, p2, 2, got, &err) == LM_ERR_ARG);
    int64_t past[1] = {c->n_tokens};
    CHECK(lm_context_forward_multi(multi, t2, past, 1, got, &err) == LM_ERR_LIMIT);
    for (int k = 0; k < S; k++) {
        lm_context_free(alone[k]);
        lm_context_free(multi[k]);
        free(seq[k]);
    }
    free(got);
}

/* The worst over positions of max |logit - ref| / max |ref| (ref: float64, (n, n_vocab)). */
static double worst_vs_ref(const config *c, const float *got, const double *ref, int n) {
    double worst = 0;
    for (int p = 0; p < n; p++) {
        const float *g = got + (size_t)p * (size_t)c->n_vocab;
        const double *r = ref + (size_t)p * (size_t)c->n_vocab;
        double max_diff = 0, max_ref = 0;
        for (int i = 0; i < c->n_vocab; i++) {
            double d = fabs((double)g[i] - r[i]);
            if (!(d <= max_diff)) max_diff = d;
            if (fabs(r[i]) > max_ref) max_ref = fabs(r[i]);
        }
        if (!(max_diff / max_ref <= worst)) worst = max_diff / max_ref;
    }
    return worst;
}

/* An f16 KV cache against the float64 reference: token by token, as one
 * prefill batch (the GEMM attention from LM_GEMM_MIN_TOKENS tokens), and a
 * decode step shared with another sequence. Keys and values rounded to half
 * (11 significant bits) move the logits by ~1e-3 of their scale here. */
#define F16_KV_TOL 5e-3 /* 4x the worst measured (1.25e-3); a wrong row or head is off by O(0.1) */
static double worst_f16_kv;

static void check_f16_kv(const config *c, const lm_model *m, const int32_t *tokens, const double *ref) {
    lm_error err = {0};
    const size_t nv = (size_t)c->n_vocab;
    float *got = malloc((size_t)c->n_tokens * nv * sizeof *got);
    REQUIRE(got);
    lm_context *one, *batch, *other;
    OK(lm_context_init_kv(m, c->n_tokens, 2, LM_KV_F16, &one, &err));
    OK(lm_context_init_kv(m, c->n_tokens, 2, LM_KV_F16, &batch, &err));
    OK(lm_context_init_kv(m, c->n_tokens, 2, LM_KV_F16, &other, &err));
    CHECK(lm_context_kv_type(one) == LM_KV_F16);
    for (int pos = 0; pos < c->n_tokens; pos++) {
        const float *logits;
        OK(lm_context_forward(one, tokens[pos], pos, &logits, &err));
        memcpy(got + (size_t)pos * nv, logits, nv * sizeof *got);
    }
    double w_token = worst_vs_ref(c, got, ref, c->n_tokens);
    /* All but the last token as one batch, the last in a step with another sequence. */
    const int n = c->n_tokens - 1;
    OK(lm_context_forward_batch(batch, tokens, n, 0, got, NULL, &err));
    double w_batch = worst_vs_ref(c, got, ref, n);
    OK(lm_context_forward_batch(other, tokens, 3, 0, NULL, NULL, &err));
    lm_context *step[2] = {other, batch};
    int32_t tok[2] = {tokens[3], tokens[n]};
    int64_t pos[2] = {3, n};
    float *two = malloc(2 * nv * sizeof *two);
    REQUIRE(two);
    OK(lm_context_forward_multi(step, tok, pos, 2, two, &err));
    double w_multi = worst_vs_ref(c, two + nv, ref + (size_t)n * nv, 1);
    printf("%-34s f16 KV cache: worst relative error %.3e token by token, %.3e batched, %.3e in a shared step\n", c->name,
           w_token, w_batch, w_multi);
    double w = w_token > w_batch ? w_token : w_batch;
    if (w_multi > w) w = w_multi;
    CHECKF(w <= F16_KV_TOL, "%s: an f16 KV cache is off by %.3g relative (bound %g)", c->name, w, F16_KV_TOL);
    if (!(w <= worst_f16_kv)) worst_f16_kv = w;
    lm_context_free(one);
    lm_context_free(batch);
    lm_context_free(other);
    free(got);
    free(two);
}

static void run_config(const config *c) {
    lm_error err = {0};
    weights w = make_weights(c);
    int32_t *tokens = malloc((size_t)c->n_tokens * sizeof *tokens);
    REQUIRE(tokens);
    /* The first and last vocabulary rows are in the sequence, the rest random. */
    for (int i = 0; i < c->n_tokens; i++) tokens[i] = (int32_t)(rng_next() % (uint64_t)c->n_vocab);
    tokens[0] = 0;
    tokens[c->n_tokens / 2] = c->n_vocab - 1;

    uint8_t *buf;
    size_t size;
    build_gguf(c, &w, &buf, &size);
    lm_gguf *g;
    OK(lm_gguf_open_memory(buf, size, &g, &err));
    lm_model *m;
    OK(lm_model_load_gguf(g, &m, &err));

    /* The configuration the engine read back. */
    const lm_model_config *mc = lm_model_get_config(m);
    CHECKF(mc->n_vocab == c->n_vocab && mc->dim == c->dim && mc->n_layers == c->n_layers &&
               mc->n_heads == c->n_heads && mc->n_kv_heads == c->n_kv_heads && mc->head_dim == head_dim_of(c) &&
               mc->ffn_dim == c->ffn_dim && mc->context_length == c->context_length,
           "%s: shape read back differs", c->name);
    CHECKF(mc->rope_dim == rope_dim_of(c), "%s: rope_dim %lld, want %d", c->name, (long long)mc->rope_dim,
           rope_dim_of(c));
    CHECKF(mc->rope_base == rope_base_of(c), "%s: rope_base %g, want %g", c->name, mc->rope_base, rope_base_of(c));
    CHECKF(mc->norm_eps == eps_of(c), "%s: norm_eps %g, want %g", c->name, mc->norm_eps, eps_of(c));
    CHECKF(mc->tied_output == c->tied, "%s: tied_output %d, want %d", c->name, mc->tied_output, c->tied);

    double *ref = ref_forward(c, &w, tokens, c->n_tokens);

    lm_context *ctx1, *ctx2;
    OK(lm_context_init(m, c->n_tokens, 1, &ctx1, &err));
    OK(lm_context_init(m, c->context_length, 2, &ctx2, &err));
    float *l1 = malloc((size_t)c->n_vocab * sizeof *l1);
    REQUIRE(l1);
    double worst = 0.0;
    int worst_pos = -1, bad_positions = 0, thread_mismatches = 0;
    for (int pos = 0; pos < c->n_tokens; pos++) {
        const float *logits;
        lm_status st = lm_context_forward(ctx1, tokens[pos], pos, &logits, &err);
        if (st) {
            CHECKF(st == LM_OK, "%s: forward at %d: %s", c->name, pos, err.message);
            break;
        }
        memcpy(l1, logits, (size_t)c->n_vocab * sizeof *l1);
        const double *r = ref + (size_t)pos * (size_t)c->n_vocab;
        double max_diff = 0.0, max_ref = 0.0;
        int finite = 1;
        for (int i = 0; i < c->n_vocab; i++) {
            finite &= isfinite(l1[i]) != 0;
            double d = fabs((double)l1[i] - r[i]);
            if (d > max_diff) max_diff = d;
            if (fabs(r[i]) > max_ref) max_ref = fabs(r[i]);
        }
        double rel = finite ? max_diff / max_ref : INFINITY;
        if (!(rel <= REL_TOL)) {
            bad_positions++;
            if (bad_positions <= 3) {
                fprintf(stderr, "%s: position %d: relative error %.3g (max |diff| %.3g, max |ref| %.3g)\n", c->name,
                        pos, rel, max_diff, max_ref);
            }
        }
        if (!(rel <= worst)) {
            worst = rel;
            worst_pos = pos;
        }

        st = lm_context_forward(ctx2, tokens[pos], pos, &logits, &err);
        if (st) {
            CHECKF(st == LM_OK, "%s: 2-thread forward at %d: %s", c->name, pos, err.message);
            break;
        }
        if (memcmp(l1, logits, (size_t)c->n_vocab * sizeof *l1) != 0) thread_mismatches++;
    }
    /* Out-of-range tokens and positions are refused, not run. */
    const float *dummy;
    CHECK(lm_context_forward(ctx1, c->n_vocab, 0, &dummy, &err) != LM_OK);
    CHECK(lm_context_forward(ctx1, -1, 0, &dummy, &err) != LM_OK);
    CHECK(lm_context_forward(ctx1, 0, c->n_tokens, &dummy, &err) != LM_OK);
    CHECKF(bad_positions == 0, "%s: %d of %d positions are off by more than %g relative", c->name, bad_positions,
           c->n_tokens, REL_TOL);
    CHECKF(thread_mismatches == 0, "%s: 2-thread logits differ from 1-thread ones at %d positions", c->name,
           thread_mismatches);
    printf("%-34s worst relative error %.3e (position %d of %d)\n", c->name, worst, worst_pos, c->n_tokens);
    check_multi(c, m, tokens);
    check_f16_kv(c, m, tokens, ref);
    if (!(worst <= worst_overall)) worst_overall = worst;

    free(l1);
    free(ref);
    lm_context_free(ctx1);
    lm_context_free(ctx2);
    lm_model_free(m);
    free(buf); /* only after lm_model_free: the weights live in it */
    free(tokens);
    free_weights(c, &w);
}

int main(void) {
    static const config configs[] = {
        /* GQA 6/2, partial rotary (4 of 6), base 1000, eps 1e-3, untied. */
        {"gqa-partial-rope-untied", 36, 2, 6, 2, 0, 40, 37, 64, 4, 1000.0f, 1e-3f, 0, 32, 11},
        /* GQA 6/3, full rotary, default base and eps (keys absent), tied. */
        {"gqa-default-rope-tied", 48, 3, 6, 3, 0, 52, 37, 32, 0, 0.0f, 0.0f, 1, 32, 22},
        /* MQA 4/1 with key_length 10 != dim/heads, partial rotary 6 of 10,
         * base 500000, eps 1e-6, untied. */
        {"mqa-keylength-partial-rope", 44, 2, 4, 1, 10, 60, 37, 48, 6, 500000.0f, 1e-6f, 0, 32, 33},
        /* Plain multi-head attention, one layer, tied. */
        {"mha-one-layer-tied", 20, 1, 2, 2, 0, 28, 37, 40, 0, 0.0f, 1e-2f, 1, 32, 44},
        /* Large enough that matvecs (>= 64k mult-adds) and, past position
         * ~124, attention go parallel, so the 2-thread check means something. */
        {"large-parallel-gqa", 264, 2, 6, 2, 0, 260, 300, 160, 40, 20000.0f, 1e-5f, 0, 144, 55},
    };
    for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++) run_config(&configs[i]);
    printf("worst relative error over all configurations: %.3e (tolerance %g)\n", worst_overall, REL_TOL);
    TEST_END();
}
