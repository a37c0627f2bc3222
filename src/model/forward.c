/* The forward pass for one token, read top to bottom like llama2.c's run.c:
 *   x = embed(token)
 *   per layer: x += Wo · attention(rope(Wq·n(x)), rope(Wk·n(x)), Wv·n(x))
 *              x += Wdown · (silu(Wgate·n(x)) * Wup·n(x))
 *   logits = Wout · n(x)
 * where n() is RMSNorm with the layer's weight. */
#include "model_internal.h"

#include "../base/checked.h"
#include "../base/pool.h"
#include "../base/scratch.h"
#include "../tensor/attention.h"
#include "../tensor/gemm.h"
#include "../tensor/kernels.h"
#include "../tensor/ops.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Positions past n_ctx in the by-pair rope table: a block of NR (at most 64,
 * lm_attn_scratch_floats) queries' padded columns read up to NR - 1 past
 * the last position; there the table is the identity. */
enum { ROPE_T_PAD = 64 };

struct lm_context {
    const lm_model *model;
    int64_t n_ctx;
    int n_threads;
    lm_kv_type kv_type;
    void *k_cache;   /* (n_layers, n_ctx, kv_dim) floats, or IEEE halves (kv_type LM_KV_F16) */
    void *v_cache;   /* (n_layers, n_ctx, kv_dim) likewise */
    float *k_row, *v_row; /* (kv_dim) with an f16 cache: a token's key and value before they are stored */
    float *rope;     /* (n_ctx, rope_dim / 2, 2): cos, sin per position and pair */
    float *rope_t;   /* (2, rope_dim / 2, n_ctx + ROPE_T_PAD): the same cosines, then sines, by pair (lm_attn_rope) */
    float *x;        /* (dim) residual stream */
    float *xb;       /* (dim) normalised input of a sub-layer */
    float *xb2;      /* (dim) sub-layer output */
    float *q;        /* (n_heads * head_dim) */
    float *att_out;  /* (n_heads * head_dim) */
    float *att;      /* (n_heads, n_ctx) attention weights */
    float *hb;       /* (ffn_dim) gate */
    float *hb2;      /* (ffn_dim) up */
    float *hb_act;   /* (ffn_dim) floats' room: hb quantised for the down projection (lm_ffn_swiglu_act) */
    float *logits;   /* (n_vocab) */
    /* Prefill buffers for up to batch_cap tokens, allocated on first use. */
    int64_t batch_cap;
    float *bx, *bxb, *bxb2; /* (BATCH, dim) */
    float *bq, *batt;       /* (BATCH, n_heads * head_dim) */
    float *bk, *bv;         /* (BATCH, kv_dim) */
    float *bh, *bh2;        /* (BATCH, ffn_dim) */
    float *batt_scratch;    /* (n_threads, n_ctx) attention weights */
    /* With a LoRA adapter attached: A x and B (A x) for up to lora_n tokens. */
    int64_t lora_n, lora_rank, lora_rows;
    float *lora_t; /* (lora_n, lora_rank) */
    float *lora_y; /* (lora_n, lora_rows) */
};

/* Tokens per prefill batch: each weight matrix is dequantised once per batch
 * (see tensor/gemm.h), so bigger batches amortise it better; 512 tokens of a
 * 1.1B model take ~35 MB of buffers. Contexts smaller than this allocate
 * only n_ctx rows. */
#define BATCH 512

/* a x b x c elements of elt bytes, zeroed, on a cache line (calloc's large
 * blocks start 16 bytes past a page: every 64-byte vector of the batch
 * buffers and the cache then straddled two lines; aligned, a 110M prompt
 * ran 2-4% faster in alternating runs). calloc still gives the zeros (untouched pages of a large
 * block stay unallocated until used); the block's own address sits in the
 * 8 bytes below the aligned one, for free_elems. Sets *failed (and gives
 * NULL) on overflow or no memory. */
static void *alloc_elems(int64_t a, int64_t b, int64_t c, size_t elt, int *failed) {
    size_t n;
    if (*failed || lm_mul_overflow_size((size_t)a, (size_t)b, &n) || lm_mul_overflow_size(n, (size_t)c, &n) ||
        lm_mul_overflow_size(n, elt, &n) || lm_add_overflow_size(n, 64, &n)) {
        *failed = 1;
        return NULL;
    }
    char *block = calloc(1, n);
    if (!block) {
        *failed = 1;
        return NULL;
    }
    /* calloc gives 16-byte alignment: 16 to 64 bytes up to the next line */
    char *p = block + 64 - (uintptr_t)block % 64;
    memcpy(p - sizeof block, &block, sizeof block);
    return p;
}

/* Frees what alloc_elems gave (NULL does nothing). */
static void free_elems(void *p) {
    if (!p) return;
    char *block;
    memcpy(&block, (char *)p - sizeof block, sizeof block);
    free(block);
}

static float *alloc_floats(int64_t a, int64_t b, int64_t c, int *failed) { return alloc_elems(a, b, c, sizeof(float), failed); }

int lm_kv_type_parse(const char *name, lm_kv_type *out) {
    if (strcmp(name, "f32") == 0) *out = LM_KV_F32;
    else if (strcmp(name, "f16") == 0) *out = LM_KV_F16;
    else return -1;
    return 0;
}

const char *lm_kv_type_name(lm_kv_type kv) { return kv == LM_KV_F16 ? "f16" : "f32"; }

lm_kv_type lm_context_kv_type(const lm_context *c) { return c->kv_type; }

/* Bytes of one cache element. */
static size_t kv_elt(const lm_context *c) { return c->kv_type == LM_KV_F16 ? sizeof(uint16_t) : sizeof(float); }

/* The cache's row of (layer, pos): kv_dim elements. */
static void *kv_at(const lm_context *c, void *cache, int64_t layer, int64_t pos) {
    const int64_t kv_dim = c->model->cfg.n_kv_heads * c->model->cfg.head_dim;
    return (char *)cache + (size_t)((layer * c->n_ctx + pos) * kv_dim) * kv_elt(c);
}

/* Stores a token's key and value (kv_dim floats each) at (layer, pos). */
static void kv_store(lm_context *c, int64_t layer, int64_t pos, const float *k, const float *v) {
    const int64_t kv_dim = c->model->cfg.n_kv_heads * c->model->cfg.head_dim;
    if (c->kv_type == LM_KV_F16) {
        const lm_kernels *kn = lm_kernels_best();
        kn->to_f16(kv_at(c, c->k_cache, layer, pos), k, kv_dim);
        kn->to_f16(kv_at(c, c->v_cache, layer, pos), v, kv_dim);
    } else {
        memcpy(kv_at(c, c->k_cache, layer, pos), k, (size_t)kv_dim * sizeof(float));
        memcpy(kv_at(c, c->v_cache, layer, pos), v, (size_t)kv_dim * sizeof(float));
    }
}

lm_status lm_context_init(const lm_model *m, int64_t n_ctx, int n_threads, lm_context **out, lm_error *err) {
    return lm_context_init_kv(m, n_ctx, n_threads, LM_KV_F32, out, err);
}

lm_status lm_context_init_kv(const lm_model *m, int64_t n_ctx, int n_threads, lm_kv_type kv, lm_context **out,
                             lm_error *err) {
    const lm_model_config *c = &m->cfg;
    *out = NULL;
    if (n_ctx < 1 || n_ctx > c->context_length) {
        return lm_error_set(err, LM_ERR_ARG, "context size %lld is outside 1..%lld (the model's context length)",
                            (long long)n_ctx, (long long)c->context_length);
    }
    if (n_threads < 1) return lm_error_set(err, LM_ERR_ARG, "thread count must be at least 1");
    if (kv != LM_KV_F32 && kv != LM_KV_F16) return lm_error_set(err, LM_ERR_ARG, "unknown KV cache type %d", (int)kv);
    lm_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    ctx->model = m;
    ctx->n_ctx = n_ctx;
    ctx->batch_cap = n_ctx < BATCH ? n_ctx : BATCH;
    ctx->n_threads = n_threads;
    int64_t kv_dim = c->n_kv_heads * c->head_dim, q_dim = c->n_heads * c->head_dim;
    int failed = 0;
    ctx->kv_type = kv;
    ctx->k_cache = alloc_elems(c->n_layers, n_ctx, kv_dim, kv_elt(ctx), &failed);
    ctx->v_cache = alloc_elems(c->n_layers, n_ctx, kv_dim, kv_elt(ctx), &failed);
    if (kv == LM_KV_F16) {
        ctx->k_row = alloc_floats(kv_dim, 1, 1, &failed);
        ctx->v_row = alloc_floats(kv_dim, 1, 1, &failed);
    }
    ctx->rope = alloc_floats(n_ctx, c->rope_dim / 2 + 1, 2, &failed);
    ctx->rope_t = alloc_floats(n_ctx + ROPE_T_PAD, c->rope_dim / 2 + 1, 2, &failed);
    ctx->x = alloc_floats(c->dim, 1, 1, &failed);
    ctx->xb = alloc_floats(c->dim, 1, 1, &failed);
    ctx->xb2 = alloc_floats(c->dim, 1, 1, &failed);
    ctx->q = alloc_floats(q_dim, 1, 1, &failed);
    ctx->att_out = alloc_floats(q_dim, 1, 1, &failed);
    ctx->att = alloc_floats(c->n_heads, n_ctx, 1, &failed);
    ctx->hb = alloc_floats(c->ffn_dim, 1, 1, &failed);
    ctx->hb2 = alloc_floats(c->ffn_dim, 1, 1, &failed);
    ctx->hb_act = alloc_floats(c->ffn_dim, 1, 1, &failed);
    ctx->logits = alloc_floats(c->n_vocab, 1, 1, &failed);
    if (failed) {
        lm_context_free(ctx);
        return lm_error_set(err, LM_ERR_NOMEM, "cannot allocate the KV cache for %lld positions", (long long)n_ctx);
    }
    /* theta(pos, i) = pos * base^(-2i / rope_dim), computed in double. */
    int64_t half = c->rope_dim / 2;
    for (int64_t pos = 0; pos < n_ctx; pos++) {
        for (int64_t i = 0; i < half; i++) {
            double theta = (double)pos * pow(c->rope_base, -2.0 * (double)i / (double)c->rope_dim);
            ctx->rope[(pos * half + i) * 2] = (float)cos(theta);
            ctx->rope[(pos * half + i) * 2 + 1] = (float)sin(theta);
        }
    }
    /* by pair, for a block of queries' positions at once; past n_ctx (a
     * block's padded columns) the identity */
    const int64_t stride = n_ctx + ROPE_T_PAD;
    for (int64_t i = 0; i < half; i++) {
        for (int64_t pos = 0; pos < stride; pos++) {
            ctx->rope_t[i * stride + pos] = pos < n_ctx ? ctx->rope[(pos * half + i) * 2] : 1.0f;
            ctx->rope_t[(half + i) * stride + pos] = pos < n_ctx ? ctx->rope[(pos * half + i) * 2 + 1] : 0.0f;
        }
    }
    *out = ctx;
    return LM_OK;
}

static void free_batch(lm_context *c) {
    float **bufs[] = {&c->bx,  &c->bxb, &c->bxb2, &c->bq,          &c->batt,
                      &c->bk,  &c->bv,  &c->bh,   &c->bh2, &c->batt_scratch};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) {
        free_elems(*bufs[i]);
        *bufs[i] = NULL;
    }
}

void lm_context_free(lm_context *c) {
    if (!c) return;
    free_elems(c->k_cache);
    free_elems(c->v_cache);
    free_elems(c->k_row);
    free_elems(c->v_row);
    free_elems(c->rope);
    free_elems(c->rope_t);
    free_elems(c->x);
    free_elems(c->xb);
    free_elems(c->xb2);
    free_elems(c->q);
    free_elems(c->att_out);
    free_elems(c->att);
    free_elems(c->hb);
    free_elems(c->hb2);
    free_elems(c->hb_act);
    free_elems(c->logits);
    free_elems(c->lora_t);
    free_elems(c->lora_y);
    free_batch(c);
    free(c);
}

int64_t lm_context_size(const lm_context *c) { return c->n_ctx; }

/* Scratch for n tokens through the model's adapter (if any), grown on
 * demand: an adapter attached after the context was made still works. */
static lm_status lora_scratch(lm_context *ctx, int64_t n, lm_error *err) {
    const lm_model *m = ctx->model;
    if (!m->lora || (ctx->lora_n >= n && ctx->lora_rank >= m->lora_max_rank && ctx->lora_rows >= m->lora_max_rows)) {
        return LM_OK;
    }
    free_elems(ctx->lora_t);
    free_elems(ctx->lora_y);
    int failed = 0;
    ctx->lora_t = alloc_floats(n, m->lora_max_rank, 1, &failed);
    ctx->lora_y = alloc_floats(n, m->lora_max_rows, 1, &failed);
    if (failed) {
        free_elems(ctx->lora_t);
        free_elems(ctx->lora_y);
        ctx->lora_t = ctx->lora_y = NULL;
        ctx->lora_n = ctx->lora_rank = ctx->lora_rows = 0;
        return lm_error_set(err, LM_ERR_NOMEM, "cannot allocate the LoRA adapter's buffers");
    }
    ctx->lora_n = n;
    ctx->lora_rank = m->lora_max_rank;
    ctx->lora_rows = m->lora_max_rows;
    return LM_OK;
}

/* Y (n, rows) += B (scale * (A X)) for X (n, cols): two thin products through
 * lm_matmul, which for fewer than LM_GEMM_MIN_TOKENS tokens equals n calls of
 * lm_matvec bit for bit, so small batches still match decoding exactly. */
static void lora_add(lm_context *ctx, float *Y, const lora_factors *f, const float *X, int64_t n) {
    int64_t rank = f->a.rows, rows = f->b.rows;
    lm_matmul(ctx->lora_t, &f->a, X, n, ctx->n_threads);
    for (int64_t i = 0; i < n * rank; i++) ctx->lora_t[i] *= f->scale;
    lm_matmul(ctx->lora_y, &f->b, ctx->lora_t, n, ctx->n_threads);
    for (int64_t i = 0; i < n * rows; i++) Y[i] += ctx->lora_y[i];
}

/* y (rows) = W x (cols), plus the adapter's B (scale * A x) when W has one. */
static void matvec(lm_context *ctx, float *y, const lm_weight *w, const lora_factors *f, const float *x) {
    lm_matvec(y, w, x, ctx->n_threads);
    if (f) lora_add(ctx, y, f, x, 1);
}

/* Y (n, rows) = X (n, cols) @ W^T, plus the adapter's part. */
static void matmul(lm_context *ctx, float *Y, const lm_weight *w, const lora_factors *f, const float *X, int64_t n) {
    lm_matmul(Y, w, X, n, ctx->n_threads);
    if (f) lora_add(ctx, Y, f, X, n);
}

/* Ys[i] (n, rows_i) = X (n, cols) @ W_i^T for matrices sharing the input X
 * (lm_matmul_shared: one activation quantisation and one parallel region), plus
 * each one's adapter part. */
static void matmul_shared(lm_context *ctx, int count, float *const *Ys, const lm_weight *const *ws,
                          const lora_factors *const *fs, const float *X, int64_t n) {
    lm_matmul_shared(Ys, ws, count, X, n, ctx->n_threads);
    for (int i = 0; i < count; i++) {
        if (fs[i]) lora_add(ctx, Ys[i], fs[i], X, n);
    }
}

/* Q, K, V of X (n, dim): one shared product. */
static void project_qkv(lm_context *ctx, const layer_weights *w, const float *X, float *q, float *k, float *v, int64_t n) {
    float *const ys[3] = {q, k, v};
    const lm_weight *const ws[3] = {&w->wq, &w->wk, &w->wv};
    const lora_factors *const fs[3] = {w->lora[LORA_Q], w->lora[LORA_K], w->lora[LORA_V]};
    matmul_shared(ctx, 3, ys, ws, fs, X, n);
}

/* The FFN's gate and up projections of X (n, dim): one shared product. */
static void project_gate_up(lm_context *ctx, const layer_weights *w, const float *X, float *gate, float *up, int64_t n) {
    float *const ys[2] = {gate, up};
    const lm_weight *const ws[2] = {&w->w_gate, &w->w_up};
    const lora_factors *const fs[2] = {w->lora[LORA_GATE], w->lora[LORA_UP]};
    matmul_shared(ctx, 2, ys, ws, fs, X, n);
}

/* One head's causal attention: query q (head_dim) against cached positions
 * 0..pos of layer `layer`, KV head at kv_off; att (pos + 1) is scratch;
 * writes out (head_dim). */
static void attend_head(const lm_context *ctx, int64_t layer, int64_t pos, int64_t kv_off, const float *q, float *out,
                        float *att) {
    const lm_model_config *c = &ctx->model->cfg;
    const lm_kernels *k = lm_kernels_best();
    int64_t hd = c->head_dim, kv_dim = c->n_kv_heads * hd;
    float scale = (float)(1.0 / sqrt((double)hd));
    if (ctx->kv_type == LM_KV_F16) {
        const uint16_t *k_layer = kv_at(ctx, ctx->k_cache, layer, 0), *v_layer = kv_at(ctx, ctx->v_cache, layer, 0);
        k->attn_scores_f16(att, q, k_layer + kv_off, kv_dim, pos + 1, hd, scale);
        k->softmax(att, pos + 1);
        k->attn_values_f16(out, att, v_layer + kv_off, kv_dim, pos + 1, hd);
        return;
    }
    const float *k_layer = kv_at(ctx, ctx->k_cache, layer, 0), *v_layer = kv_at(ctx, ctx->v_cache, layer, 0);
    k->attn_scores(att, q, k_layer + kv_off, kv_dim, pos + 1, hd, scale);
    k->softmax(att, pos + 1);
    k->attn_values(out, att, v_layer + kv_off, kv_dim, pos + 1, hd);
}

/* Attention work items: (token b, head h) for b < n, h < n_heads, item
 * b * n_heads + h. Token b belongs to ctxs[b] (a decode step of several
 * sequences) or to `lead` (one sequence), sits at position pos[b] or
 * pos0 + b, and has its query at q + b * q_dim + h * head_dim and its output
 * at out + (the same). Thread t's scratch is scratch + t * lead->n_ctx. */
typedef struct {
    const lm_context *lead;
    lm_context *const *ctxs;
    const int64_t *pos;
    int64_t pos0, layer;
    const float *q;
    float *out, *scratch;
} attn_job;

static void attend_items(void *arg, int64_t begin, int64_t end, int thread) {
    const attn_job *j = arg;
    const lm_model_config *c = &j->lead->model->cfg;
    const int64_t hd = c->head_dim, group = c->n_heads / c->n_kv_heads, q_dim = c->n_heads * hd;
    float *att = j->scratch + thread * j->lead->n_ctx;
    for (int64_t i = begin; i < end; i++) {
        const int64_t b = i / c->n_heads, h = i % c->n_heads, at = b * q_dim + h * hd;
        attend_head(j->ctxs ? j->ctxs[b] : j->lead, j->layer, j->pos ? j->pos[b] : j->pos0 + b, (h / group) * hd,
                    j->q + at, j->out + at, att);
    }
}

/* Causal attention of the current query against cached positions 0..pos:
 * heads split evenly (ctx->att has a row per head, so per thread too). */
static void attention(lm_context *ctx, int64_t layer, int64_t pos) {
    const lm_model_config *c = &ctx->model->cfg;
    int parallel = ctx->n_threads > 1 && c->n_heads * (pos + 1) * c->head_dim >= (1 << 15);
    attn_job j = {.lead = ctx, .pos0 = pos, .layer = layer, .q = ctx->q, .out = ctx->att_out, .scratch = ctx->att};
    lm_parallel_for(parallel ? ctx->n_threads : 1, c->n_heads, attend_items, &j);
}

/* Causal attention for a batch of n queries at positions pos0..pos0+n-1
 * (their keys and values already cached): every (token, head) pair is one
 * work item, so threads stay busy across the whole batch. Gives exactly
 * what n calls of attention() give. */
static void attention_batch_items(lm_context *ctx, int64_t layer, int64_t n, int64_t pos0) {
    attn_job j = {.lead = ctx, .pos0 = pos0, .layer = layer, .q = ctx->bq, .out = ctx->batt, .scratch = ctx->batt_scratch};
    lm_parallel_for_dynamic(ctx->n_threads, n * ctx->model->cfg.n_heads, 4, attend_items, &j);
}

typedef struct {
    lm_context *ctx;
    int64_t layer, n, pos0;
    _Atomic int failed;
    int64_t packed[LM_POOL_MAX_THREADS]; /* the KV head each thread's scratch holds, or -1 */
} attn_gemm_job;

/* Heads begin .. end - 1 (lm_parallel_for: each thread takes its own run of
 * heads first, the heads whose queries it computed: x16_spread); a thread
 * packs a KV head once for the heads in turn that share it
 * (tensor/attention.h). */
static void attend_heads_gemm(void *arg, int64_t begin, int64_t end, int thread) {
    attn_gemm_job *j = arg;
    lm_context *ctx = j->ctx;
    const lm_model_config *c = &ctx->model->cfg;
    const lm_gemm_kernel *g = lm_gemm_kernel_attention();
    const int64_t n = j->n, pos0 = j->pos0, hd = c->head_dim, group = c->n_heads / c->n_kv_heads,
                  q_dim = c->n_heads * hd, kv_dim = c->n_kv_heads * hd, keys = pos0 + n;
    const float scale = (float)(1.0 / sqrt((double)hd));
    const size_t floats = lm_attn_scratch_floats(g, keys, hd);
    /* (a nonzero count of floats has a size that fits: lm_attn_scratch_floats checks) */
    float *scratch = floats ? lm_scratch(LM_SCRATCH_ATTN, floats * sizeof(float)) : NULL;
    if (!scratch) atomic_store(&j->failed, 1);
    /* the queries are rotated as the attention packs them */
    const int64_t stride = ctx->n_ctx + ROPE_T_PAD;
    const lm_attn_rope rope = {ctx->rope_t, ctx->rope_t + c->rope_dim / 2 * stride, stride, c->rope_dim};
    for (int64_t h = begin; h < end && !atomic_load_explicit(&j->failed, memory_order_relaxed); h++) {
        if (j->packed[thread] != h / group) {
            const int64_t kv_off = (h / group) * hd;
            const int half = ctx->kv_type == LM_KV_F16;
            const size_t elt = half ? sizeof(uint16_t) : sizeof(float);
            const lm_kv_head kv = {(const char *)kv_at(ctx, ctx->k_cache, j->layer, 0) + (size_t)kv_off * elt,
                                   (const char *)kv_at(ctx, ctx->v_cache, j->layer, 0) + (size_t)kv_off * elt, kv_dim, half};
            lm_attn_pack_head(g, kv, keys, hd, scratch);
            j->packed[thread] = h / group;
        }
        lm_attn_causal(g, scratch, keys, hd, ctx->bq + h * hd, q_dim, n, pos0, scale, &rope,
                       ctx->batt + h * hd, q_dim);
    }
}

/* The same for large batches, through the GEMM micro-kernel: per head and
 * block of queries, S^T = K Q^T over the cached positions the block sees,
 * each query's exponentials e^(scale (s - max)) down its column (causal),
 * O^T = V^T P^T / each query's sum. One head per thread at a time; the sums
 * run in another order than attention()'s, so the results differ in the
 * last bits. Returns 0 if out of memory (some heads may be done; the caller
 * redoes all). */
static int attention_batch_gemm(lm_context *ctx, int64_t layer, int64_t n, int64_t pos0) {
    attn_gemm_job j = {.ctx = ctx, .layer = layer, .n = n, .pos0 = pos0};
    for (int t = 0; t < LM_POOL_MAX_THREADS; t++) j.packed[t] = -1;
    lm_parallel_for(ctx->n_threads, ctx->model->cfg.n_heads, attend_heads_gemm, &j);
    return !atomic_load(&j.failed);
}

/* Whether a batch of n tokens takes the GEMM attention, which rotates the
 * queries itself (rope_and_store then leaves them). */
static int attention_batch_rotates(int64_t n) { return n >= LM_GEMM_MIN_TOKENS && lm_gemm_kernel_best() != NULL; }

static void rope_queries(lm_context *ctx, int64_t n, int64_t pos0);

static void attention_batch(lm_context *ctx, int64_t layer, int64_t n, int64_t pos0) {
    /* Small batches stay bit-identical to token-by-token decoding. */
    if (attention_batch_rotates(n)) {
        if (attention_batch_gemm(ctx, layer, n, pos0)) return;
        rope_queries(ctx, n, pos0); /* out of memory: the items' way, from rotated queries */
    }
    attention_batch_items(ctx, layer, n, pos0);
}

/* One token's Q, K and V products, rope, cache store and attention (xb ->
 * att_out) as one region in which each thread takes an even run of KV heads
 * and their query heads: it computes their rows of Q, K and V, rotates them,
 * stores its keys and values and attends with them, so none of those rows,
 * nor the cache rows of its heads, comes from the other core (on a VM whose
 * two vCPUs sit on two CCDs a cache line between them takes ~220 ns one
 * way). Bit for bit the separate steps. k, v: the token's key and value
 * rows (in the cache for an f32 one). 0 (nothing done) with LoRA on Q, K or
 * V, or where the matrices do not qualify (x16 with a kernel, one type and
 * width, heads of whole groups of 16 rows). */
typedef struct {
    lm_context *ctx;
    const layer_weights *w;
    int64_t layer, pos;
    const void *x_act;
    float *k, *v;
    const float *rope;
} qkv_job;

static void qkv_attend(void *arg, int thread, int n_threads) {
    const qkv_job *j = arg;
    lm_context *ctx = j->ctx;
    const lm_model_config *c = &ctx->model->cfg;
    const int64_t hd = c->head_dim, group = c->n_heads / c->n_kv_heads;
    int64_t kh0, kh1;
    lm_split(c->n_kv_heads, thread, n_threads, &kh0, &kh1);
    if (kh1 <= kh0) return;
    const int64_t qh0 = kh0 * group, qh1 = kh1 * group;
    lm_matvec_rows_act(ctx->q, &j->w->wq, j->x_act, qh0 * hd, qh1 * hd);
    lm_matvec_rows_act(j->k, &j->w->wk, j->x_act, kh0 * hd, kh1 * hd);
    lm_matvec_rows_act(j->v, &j->w->wv, j->x_act, kh0 * hd, kh1 * hd);
    lm_rope_f32(ctx->q + qh0 * hd, qh1 - qh0, hd, c->rope_dim, j->rope);
    lm_rope_f32(j->k + kh0 * hd, kh1 - kh0, hd, c->rope_dim, j->rope);
    if (ctx->kv_type == LM_KV_F16) {
        const lm_kernels *kn = lm_kernels_best();
        kn->to_f16((uint16_t *)kv_at(ctx, ctx->k_cache, j->layer, j->pos) + kh0 * hd, j->k + kh0 * hd, (kh1 - kh0) * hd);
        kn->to_f16((uint16_t *)kv_at(ctx, ctx->v_cache, j->layer, j->pos) + kh0 * hd, j->v + kh0 * hd, (kh1 - kh0) * hd);
    }
    float *att = ctx->att + thread * ctx->n_ctx; /* a row per thread, as attention()'s */
    for (int64_t h = qh0; h < qh1; h++) {
        attend_head(ctx, j->layer, j->pos, (h / group) * hd, ctx->q + h * hd, ctx->att_out + h * hd, att);
    }
}

static int qkv_attend_one_token(lm_context *ctx, const layer_weights *w, int64_t layer, int64_t pos, float *k, float *v,
                                const float *rope) {
    const lm_model_config *c = &ctx->model->cfg;
    const int64_t hd = c->head_dim, cols = w->wq.cols;
    if (w->lora[LORA_Q] || w->lora[LORA_K] || w->lora[LORA_V] || hd % 16 || w->wk.type != w->wq.type ||
        w->wv.type != w->wq.type || w->wk.cols != cols || w->wv.cols != cols || w->wk.layout != w->wq.layout ||
        w->wv.layout != w->wq.layout) {
        return 0;
    }
    const void *x_act = lm_x16_quantize(&w->wq, ctx->xb);
    if (!x_act) return 0;
    /* below ~64K multiply-adds, one thread (as the products' threads_for) */
    const int64_t macs = (w->wq.rows + w->wk.rows + w->wv.rows) * cols;
    int nt = macs >= (1 << 16) ? ctx->n_threads : 1;
    if (nt > c->n_kv_heads) nt = (int)c->n_kv_heads;
    qkv_job j = {ctx, w, layer, pos, x_act, k, v, rope};
    lm_parallel(nt, qkv_attend, &j);
    return 1;
}

/* One token's feed-forward products, xb -> xb2, with each core keeping its
 * rows of gate, up and SwiGLU (lm_ffn_swiglu_act): bit for bit the separate
 * steps. 0 (nothing done) with LoRA on any of the three or where the
 * matrices do not qualify. */
static int ffn_one_token(lm_context *ctx, const layer_weights *w) {
    if (w->lora[LORA_GATE] || w->lora[LORA_UP] || w->lora[LORA_DOWN]) return 0;
    return lm_ffn_swiglu_act(ctx->hb, ctx->hb2, ctx->hb_act, &w->w_gate, &w->w_up, &w->w_down, ctx->xb, ctx->n_threads) &&
           lm_matvec_act(ctx->xb2, &w->w_down, ctx->hb_act, ctx->n_threads);
}

lm_status lm_context_forward(lm_context *ctx, int32_t token, int64_t pos, const float **logits, lm_error *err) {
    const lm_model *m = ctx->model;
    const lm_model_config *c = &m->cfg;
    if (token < 0 || token >= c->n_vocab) {
        return lm_error_set(err, LM_ERR_ARG, "token id %d is outside the vocabulary (%lld tokens)", token,
                            (long long)c->n_vocab);
    }
    if (pos < 0 || pos >= ctx->n_ctx) {
        return lm_error_set(err, LM_ERR_LIMIT, "position %lld is past the context size %lld", (long long)pos,
                            (long long)ctx->n_ctx);
    }
    lm_status st = lora_scratch(ctx, 1, err);
    if (st) return st;
    int64_t dim = c->dim, hd = c->head_dim;
    int nt = ctx->n_threads;
    float eps = (float)c->norm_eps;
    const float *rope = ctx->rope + pos * (c->rope_dim / 2) * 2;
    lm_weight_row(&m->tok_embd, token, ctx->x);

    for (int64_t l = 0; l < c->n_layers; l++) {
        const layer_weights *w = &m->layers[l];
        /* An f32 cache takes the key and value in place; an f16 one once they are final. */
        const int half = ctx->kv_type == LM_KV_F16;
        float *k = half ? ctx->k_row : kv_at(ctx, ctx->k_cache, l, pos);
        float *v = half ? ctx->v_row : kv_at(ctx, ctx->v_cache, l, pos);

        lm_rmsnorm_f32(ctx->xb, ctx->x, w->attn_norm, dim, eps);
        if (!qkv_attend_one_token(ctx, w, l, pos, k, v, rope)) {
            project_qkv(ctx, w, ctx->xb, ctx->q, k, v, 1);
            lm_rope_f32(ctx->q, c->n_heads, hd, c->rope_dim, rope);
            lm_rope_f32(k, c->n_kv_heads, hd, c->rope_dim, rope);
            if (half) kv_store(ctx, l, pos, k, v);
            attention(ctx, l, pos);
        }
        matvec(ctx, ctx->xb2, &w->wo, w->lora[LORA_O], ctx->att_out);
        lm_add_f32(ctx->x, ctx->xb2, dim);

        lm_rmsnorm_f32(ctx->xb, ctx->x, w->ffn_norm, dim, eps);
        if (!ffn_one_token(ctx, w)) {
            project_gate_up(ctx, w, ctx->xb, ctx->hb, ctx->hb2, 1);
            lm_swiglu_f32(ctx->hb, ctx->hb2, c->ffn_dim);
            matvec(ctx, ctx->xb2, &w->w_down, w->lora[LORA_DOWN], ctx->hb);
        }
        lm_add_f32(ctx->x, ctx->xb2, dim);
    }
    lm_rmsnorm_f32(ctx->x, ctx->x, m->output_norm, dim, eps);
    lm_matvec(ctx->logits, &m->output, ctx->x, nt);
    *logits = ctx->logits;
    return LM_OK;
}

lm_status lm_context_set_batch_size(lm_context *c, int64_t n, lm_error *err) {
    if (n < 1 || n > c->n_ctx) {
        return lm_error_set(err, LM_ERR_ARG, "batch size %lld is outside 1..%lld (the context size)", (long long)n,
                            (long long)c->n_ctx);
    }
    free_batch(c);
    c->batch_cap = n;
    return LM_OK;
}

static lm_status alloc_batch(lm_context *ctx, lm_error *err) {
    if (ctx->bx) return LM_OK;
    const lm_model_config *c = &ctx->model->cfg;
    int64_t q_dim = c->n_heads * c->head_dim, kv_dim = c->n_kv_heads * c->head_dim;
    int failed = 0;
    const int64_t cap = ctx->batch_cap;
    ctx->bx = alloc_floats(cap, c->dim, 1, &failed);
    ctx->bxb = alloc_floats(cap, c->dim, 1, &failed);
    ctx->bxb2 = alloc_floats(cap, c->dim, 1, &failed);
    ctx->bq = alloc_floats(cap, q_dim, 1, &failed);
    ctx->batt = alloc_floats(cap, q_dim, 1, &failed);
    ctx->bk = alloc_floats(cap, kv_dim, 1, &failed);
    ctx->bv = alloc_floats(cap, kv_dim, 1, &failed);
    ctx->bh = alloc_floats(cap, c->ffn_dim, 1, &failed);
    ctx->bh2 = alloc_floats(cap, c->ffn_dim, 1, &failed);
    ctx->batt_scratch = alloc_floats(ctx->n_threads, ctx->n_ctx, 1, &failed);
    if (failed) {
        free_batch(ctx);
        return lm_error_set(err, LM_ERR_NOMEM, "cannot allocate prefill buffers");
    }
    return LM_OK;
}

/* The per-token steps between a batch's matrix products, split over the
 * threads by tokens once the batch is big enough: for each token b,
 * x_b += add_b (if add), out_b = rmsnorm(x_b) * norm (if norm), and
 * gate_b = silu(gate_b) * up_b (if gate). Each value is computed as one
 * token alone would compute it. */
typedef struct {
    float *x, *out, *gate;
    const float *add, *norm, *up;
    const lm_weight *act_for; /* then each result (out_b, or gate_b) is also quantised for it into act */
    uint8_t *act;
    size_t act_bytes;          /* a row's, lm_x16_act_bytes(act_for) */
    const lm_weight *act_for2; /* and, if set, for this one (another activation kind) into act2 */
    uint8_t *act2;
    size_t act_bytes2;
    int gated;    /* gate already holds silu(gate) * up (lm_matmul_swiglu_act): only quantised */
    int row_only; /* with norm and act_for: out_b is only the quantiser's input, kept in a per-thread row (out is
                   * not written: 1.5 MB a layer less through the caches at 110M pp512, +1.3% in the VM's two-CCD
                   * mode, 10 alternating runs) */
    int64_t dim, ffn;
    float eps;
} token_steps;

static void token_steps_range(void *arg, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const token_steps *j = arg;
    /* (out of memory for the row: out's rows, as without row_only) */
    float *row_buf = j->row_only && j->norm && j->act_for ? lm_scratch(LM_SCRATCH_ROW, (size_t)j->dim * sizeof(float)) : NULL;
    for (int64_t b = begin; b < end; b++) {
        float *x = j->x ? j->x + b * j->dim : NULL, *out = row_buf ? row_buf : j->out + b * j->dim;
        if (j->add) lm_add_f32(x, j->add + b * j->dim, j->dim);
        if (j->norm) lm_rmsnorm_f32(out, x, j->norm, j->dim, j->eps);
        if (j->gate && !j->gated) lm_swiglu_f32(j->gate + b * j->ffn, j->up + b * j->ffn, j->ffn);
        const float *row = j->gate ? j->gate + b * j->ffn : out;
        if (j->act_for) lm_x16_quantize_into(j->act_for, row, j->act + b * j->act_bytes);
        if (j->act_for2) lm_x16_quantize_into(j->act_for2, row, j->act2 + b * j->act_bytes2);
    }
}

static void run_token_steps(const lm_context *ctx, token_steps *j, int64_t n) {
    const lm_model_config *c = &ctx->model->cfg;
    j->dim = c->dim;
    j->ffn = c->ffn_dim;
    j->eps = (float)c->norm_eps;
    const int64_t values = n * (j->gate ? c->ffn_dim : c->dim);
    lm_parallel_for(values >= 8192 ? ctx->n_threads : 1, n, token_steps_range, j);
}

/* A batch product group's input quantised by the per-token steps: where the
 * matrices qualify (lm_x16_act_bytes: x16 matrices of one type and width; no
 * adapter on any), the steps quantise each row
 * as they finish it and the product reads them (lm_matmul_shared_act: a
 * region and a pass over the rows fewer than quantising in the product).
 * The rows go where the products quantise theirs, the calling thread's
 * activation scratch (one buffer for every product: a context's own buffer
 * measured no faster, and took 4 MB more at 110M); a second kind for the
 * same rows goes into LM_SCRATCH_ACT2 (fused_act_in). Returns a row's bytes
 * and sets *act, or 0: the product quantises its input itself. */
static size_t fused_act_in(lm_scratch_slot slot, const lm_weight *const *ws, const lora_factors *const *fs, int n,
                           int64_t n_tok, uint8_t **act) {
    const size_t bytes = lm_x16_act_bytes(ws, n);
    size_t total;
    if (bytes == 0 || lm_mul_overflow_size(bytes, (size_t)n_tok, &total)) return 0;
    for (int i = 0; i < n; i++) {
        if (fs[i]) return 0;
    }
    *act = lm_scratch(slot, total);
    return *act ? bytes : 0;
}

static size_t fused_act(const lm_weight *const *ws, const lora_factors *const *fs, int n, int64_t n_tok,
                        uint8_t **act) {
    return fused_act_in(LM_SCRATCH_ACT, ws, fs, n, n_tok, act);
}

/* Ys[i] = the steps' results (X, n rows) @ ws[i]^T: from the rows the steps
 * quantised into act (bytes > 0), else from X. unwritten_norm: the steps
 * kept X's rows only to quantise them (row_only), so taking X (the product
 * refusing the rows, which lm_x16_act_bytes rules out) first makes it:
 * rmsnorm(bx) * unwritten_norm. */
static void shared_after_steps(lm_context *ctx, int count, float *const *Ys, const lm_weight *const *ws,
                               const lora_factors *const *fs, float *X, const float *unwritten_norm,
                               const uint8_t *act, size_t bytes, int64_t n) {
    if (bytes && lm_matmul_shared_act(Ys, ws, count, act, n, ctx->n_threads)) return;
    if (unwritten_norm) run_token_steps(ctx, &(token_steps){.x = ctx->bx, .out = X, .norm = unwritten_norm}, n);
    matmul_shared(ctx, count, Ys, ws, fs, X, n);
}

/* A batch layer's steps up to Q, K and V: x += add (the previous layer's
 * feed-forward output, if any), xb = rmsnorm(x), then the three products. */
static void norm_then_qkv(lm_context *ctx, const layer_weights *w, const float *add, int64_t n) {
    float *const ys[3] = {ctx->bq, ctx->bk, ctx->bv};
    const lm_weight *const ws[3] = {&w->wq, &w->wk, &w->wv};
    const lora_factors *const fs[3] = {w->lora[LORA_Q], w->lora[LORA_K], w->lora[LORA_V]};
    uint8_t *act = NULL, *act2 = NULL;
    size_t bytes = fused_act(ws, fs, 3, n, &act), bytes2 = 0;
    /* Q and K of one type, V of another (Q4_K_M's Q4_K and Q6_K, whose
     * activations differ): the steps quantise for both, two products */
    if (!bytes && (bytes = fused_act(ws, fs, 2, n, &act)) != 0 &&
        (bytes2 = fused_act_in(LM_SCRATCH_ACT2, ws + 2, fs + 2, 1, n, &act2)) == 0) {
        bytes = 0;
    }
    run_token_steps(ctx, &(token_steps){.x = ctx->bx, .add = add, .out = ctx->bxb, .norm = w->attn_norm,
                                         .act_for = bytes ? ws[0] : NULL, .act = act, .act_bytes = bytes,
                                         .act_for2 = bytes2 ? ws[2] : NULL, .act2 = act2, .act_bytes2 = bytes2,
                                         .row_only = 1}, n);
    if (bytes2 && lm_matmul_shared_act(ys, ws, 2, act, n, ctx->n_threads) &&
        lm_matmul_shared_act(ys + 2, ws + 2, 1, act2, n, ctx->n_threads)) {
        return;
    }
    shared_after_steps(ctx, 3, ys, ws, fs, ctx->bxb, bytes ? w->attn_norm : NULL, act, bytes2 ? 0 : bytes, n);
}

/* From the attention's output projection (in bxb2) to the feed-forward
 * block's output (in bxb2): x += bxb2, xb = rmsnorm(x), gate and up,
 * h = silu(gate) * up, down. */
static void feed_forward_batch(lm_context *ctx, const layer_weights *w, int64_t n) {
    float *const ys[2] = {ctx->bh, ctx->bh2};
    const lm_weight *const ws[2] = {&w->w_gate, &w->w_up};
    const lora_factors *const fs[2] = {w->lora[LORA_GATE], w->lora[LORA_UP]};
    uint8_t *act = NULL;
    size_t bytes = fused_act(ws, fs, 2, n, &act);
    run_token_steps(ctx, &(token_steps){.x = ctx->bx, .add = ctx->bxb2, .out = ctx->bxb, .norm = w->ffn_norm,
                                         .act_for = bytes ? ws[0] : NULL, .act = act, .act_bytes = bytes,
                                         .row_only = 1}, n);
    shared_after_steps(ctx, 2, ys, ws, fs, ctx->bxb, bytes ? w->ffn_norm : NULL, act, bytes, n);
    const lm_weight *const down[1] = {&w->w_down};
    const lora_factors *const down_f[1] = {w->lora[LORA_DOWN]};
    float *const down_y[1] = {ctx->bxb2};
    bytes = fused_act(down, down_f, 1, n, &act);
    run_token_steps(ctx, &(token_steps){.gate = ctx->bh, .up = ctx->bh2, .act_for = bytes ? down[0] : NULL,
                                         .act = act, .act_bytes = bytes}, n);
    shared_after_steps(ctx, 1, down_y, down, down_f, ctx->bh, NULL, act, bytes, n);
}

/* A batch layer's tail split by tokens: thread t takes its even run of the
 * batch through wo, x += wo's output, rmsnorm, gate and up, silu(gate) * up
 * and down, each product over all of a matrix's rows for its own tokens
 * (lm_matmul_shared_act on one thread). Split by rows, every product read
 * all the tokens' activations, half of them written by the other thread;
 * in the VM's two-CCD mode each of those lines came from the other core.
 * Here nothing a thread reads after wo's input was written by another. Each
 * value is computed as a single token computes it (the x16 products' rows
 * equal lm_matvec's), so the results are the same bits. The price: both
 * threads read every weight (from L3, or DRAM on two CCDs: at 110M Q4_K_M
 * a layer's 3-3.4 MB a thread, against the ~6.6 ms a layer of a 512-token
 * prompt takes at ~6,500 tokens/s). */
typedef struct {
    lm_context *ctx;
    const layer_weights *w;
    int64_t n;
    size_t wo_bytes, gate_up_bytes, down_bytes; /* a row's quantised activations for each product */
} tail_job;

/* At least this many tokens a thread: below, the products' x32 kernels do
 * not pay (X32_BYTES_MIN_TOKENS), and reading every weight twice costs more
 * than it saves. And at most this many bytes of the tail's weights: against
 * the split by rows (medians of 4-6 alternating runs of 10 prefills of 512),
 * the 110M model's Q4_K_M (3.4 MB) 1.012 in the VM's two-CCD mode and Q8_0
 * (5.6 MB) 1.009 in its one-CCD mode, Q4_0 (3 MB) 0.996, but F16 (10.6 MB)
 * 0.977 and the 1.1B model's Q4_K_M (22-25 MB) 0.984 and Q8_0 (41 MB) 0.987. */
enum { TAIL_MIN_TOKENS = 64 };
#define TAIL_MAX_WEIGHT_BYTES ((uint64_t)8 << 20)

static uint64_t weight_bytes(const lm_weight *w) { return (uint64_t)w->rows * (uint64_t)w->row_bytes; }

/* The calling thread's scratch slot for n rows of bytes each, NULL if out
 * of memory (the product then quantises its own input). */
static uint8_t *rows_scratch(lm_scratch_slot slot, size_t bytes, int64_t n) {
    size_t total;
    if (lm_mul_overflow_size(bytes, (size_t)n, &total)) return NULL;
    return lm_scratch(slot, total);
}

static void tail_by_tokens(void *arg, int thread, int n_threads) {
    const tail_job *j = arg;
    lm_context *ctx = j->ctx;
    const layer_weights *w = j->w;
    const lm_model_config *c = &ctx->model->cfg;
    const int64_t dim = c->dim, ffn = c->ffn_dim, q_dim = c->n_heads * c->head_dim;
    int64_t b0, b1;
    lm_split(j->n, thread, n_threads, &b0, &b1);
    const int64_t n = b1 - b0;
    if (n < 1) return;
    float *const x = ctx->bx + b0 * dim, *const xb = ctx->bxb + b0 * dim, *const o = ctx->bxb2 + b0 * dim;
    const float *const att = ctx->batt + b0 * q_dim;
    float *const ys_o[1] = {o}, *const ys_h[2] = {ctx->bh + b0 * ffn, ctx->bh2 + b0 * ffn};
    const lm_weight *const wo[1] = {&w->wo}, *const gate_up[2] = {&w->w_gate, &w->w_up}, *const down[1] = {&w->w_down};
    /* o = att @ wo^T */
    uint8_t *act = rows_scratch(LM_SCRATCH_ACT, j->wo_bytes, n);
    if (act) {
        for (int64_t b = 0; b < n; b++) lm_x16_quantize_into(&w->wo, att + b * q_dim, act + (size_t)b * j->wo_bytes);
        lm_matmul_shared_act(ys_o, wo, 1, act, n, 1);
    } else {
        lm_matmul(o, &w->wo, att, n, 1);
    }
    /* x += o; rmsnorm(x), quantised for gate and up (or into xb) */
    act = rows_scratch(LM_SCRATCH_ACT, j->gate_up_bytes, n);
    token_steps steps = {.x = x, .add = o, .out = xb, .norm = w->ffn_norm, .act_for = act ? gate_up[0] : NULL,
                         .act = act, .act_bytes = j->gate_up_bytes, .row_only = act != NULL, .dim = dim, .ffn = ffn,
                         .eps = (float)c->norm_eps};
    token_steps_range(&steps, 0, n, thread);
    /* h = silu(gate) * up, gated and quantised for down a tile at a time, h never written (against gating in
     * the product, then quantising: 110M pp512 Q4_K_M 1.011 one-CCD, 1.006 two-CCD; Q8_0 0.998, Q4_0 1.001);
     * o = h @ down^T */
    uint8_t *down_act = act ? rows_scratch(LM_SCRATCH_ACT2, j->down_bytes, n) : NULL;
    if (down_act && lm_matmul_swiglu_quantize(down_act, down[0], gate_up[0], gate_up[1], act, n)) {
        lm_matmul_shared_act(ys_o, down, 1, down_act, n, 1);
        return;
    }
    /* (ffn not whole 256s, or down's activations f32:) h = silu(gate) * up, gated in the product where it
     * can (110M pp512 against gating after: Q4_K_M 1.031, Q8_0 1.009, Q4_0 1.002; split by rows, the 1.1B
     * model's Q4_K_M gained 1.009 but Q4_0 and Q8_0, whose kernels leave the weights to the hardware's
     * prefetchers, lost 0.989 and 0.994, so the rows split keeps gating after), quantised for down;
     * o = h @ down^T */
    const int gated = act && lm_matmul_swiglu_act(ys_h[0], ys_h[1], gate_up[0], gate_up[1], act, n, 1);
    if (act && !gated) lm_matmul_shared_act(ys_h, gate_up, 2, act, n, 1);
    else if (!act) lm_matmul_shared(ys_h, gate_up, 2, xb, n, 1);
    act = rows_scratch(LM_SCRATCH_ACT, j->down_bytes, n);
    steps = (token_steps){.gate = ys_h[0], .up = ys_h[1], .gated = gated, .act_for = act ? down[0] : NULL, .act = act,
                          .act_bytes = j->down_bytes, .dim = dim, .ffn = ffn};
    token_steps_range(&steps, 0, n, thread);
    if (act) lm_matmul_shared_act(ys_o, down, 1, act, n, 1);
    else lm_matmul(o, &w->w_down, ys_h[0], n, 1);
}

/* From the attention's output (in batt) to the feed-forward block's output
 * (in bxb2): by tokens (tail_by_tokens) where every product has an x16
 * kernel and no adapter, each thread gets TAIL_MIN_TOKENS and the weights
 * are at most TAIL_MAX_WEIGHT_BYTES, else by rows. */
static void layer_tail_batch(lm_context *ctx, const layer_weights *w, int64_t n) {
    const lm_weight *const wo[1] = {&w->wo}, *const gate_up[2] = {&w->w_gate, &w->w_up}, *const down[1] = {&w->w_down};
    tail_job j = {ctx, w, n, lm_x16_act_bytes(wo, 1), lm_x16_act_bytes(gate_up, 2), lm_x16_act_bytes(down, 1)};
    const int adapters = w->lora[LORA_O] || w->lora[LORA_GATE] || w->lora[LORA_UP] || w->lora[LORA_DOWN];
    const uint64_t bytes =
        weight_bytes(&w->wo) + weight_bytes(&w->w_gate) + weight_bytes(&w->w_up) + weight_bytes(&w->w_down);
    if (ctx->n_threads >= 2 && n >= (int64_t)TAIL_MIN_TOKENS * ctx->n_threads && !adapters && j.wo_bytes &&
        j.gate_up_bytes && j.down_bytes && bytes <= TAIL_MAX_WEIGHT_BYTES) {
        lm_parallel(ctx->n_threads, tail_by_tokens, &j);
        return;
    }
    matmul(ctx, ctx->bxb2, &w->wo, w->lora[LORA_O], ctx->batt, n);
    feed_forward_batch(ctx, w, n);
}

/* After a batch's Q, K, V product: token b's query and key rotated for its position, and its key
 * and value stored in its sequence's cache. Token b is ctxs[b]'s at pos[b] (a step of several
 * sequences) or lead's at pos0 + b; the rows are lead's batch buffers. Split by tokens once the
 * batch is big enough (alone, a 512-token prompt's were ~3% of a 110M model's prefill). */
typedef struct {
    lm_context *lead;
    lm_context *const *ctxs;
    const int64_t *pos;
    int64_t pos0, layer;
    int queries, keys; /* what to rotate (and store: the keys and values) */
} rope_store_job;

static void rope_store_range(void *arg, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const rope_store_job *j = arg;
    const lm_model_config *c = &j->lead->model->cfg;
    const int64_t hd = c->head_dim, q_dim = c->n_heads * hd, kv_dim = c->n_kv_heads * hd, half = c->rope_dim / 2;
    for (int64_t b = begin; b < end; b++) {
        lm_context *x = j->ctxs ? j->ctxs[b] : j->lead;
        const int64_t pos = j->pos ? j->pos[b] : j->pos0 + b;
        const float *rope = x->rope + pos * half * 2;
        if (j->queries) lm_rope_f32(j->lead->bq + b * q_dim, c->n_heads, hd, c->rope_dim, rope);
        if (!j->keys) continue;
        lm_rope_f32(j->lead->bk + b * kv_dim, c->n_kv_heads, hd, c->rope_dim, rope);
        kv_store(x, j->layer, pos, j->lead->bk + b * kv_dim, j->lead->bv + b * kv_dim);
    }
}

static void rope_and_store(lm_context *lead, lm_context *const *ctxs, const int64_t *pos, int64_t pos0, int64_t layer,
                           int64_t n, int queries) {
    const lm_model_config *c = &lead->model->cfg;
    rope_store_job j = {lead, ctxs, pos, pos0, layer, queries, 1};
    lm_parallel_for(n * c->n_heads * c->head_dim >= 8192 ? lead->n_threads : 1, n, rope_store_range, &j);
}

static void rope_queries(lm_context *ctx, int64_t n, int64_t pos0) {
    rope_store_job j = {ctx, NULL, NULL, pos0, 0, 1, 0};
    lm_parallel_for(n * ctx->model->cfg.n_heads * ctx->model->cfg.head_dim >= 8192 ? ctx->n_threads : 1, n,
                    rope_store_range, &j);
}

/* One batch of n <= batch_cap tokens; the same steps as lm_context_forward, with
 * matrix-matrix products. */
static void forward_chunk(lm_context *ctx, const int32_t *tokens, int64_t n, int64_t pos0, float *logits_all,
                          int want_last) {
    const lm_model *m = ctx->model;
    const lm_model_config *c = &m->cfg;
    const int64_t dim = c->dim;
    int nt = ctx->n_threads;
    for (int64_t b = 0; b < n; b++) lm_weight_row(&m->tok_embd, tokens[b], ctx->bx + b * dim);
    for (int64_t l = 0; l < c->n_layers; l++) {
        const layer_weights *w = &m->layers[l];
        /* (the previous layer's feed-forward output joins the residual here) */
        norm_then_qkv(ctx, w, l > 0 ? ctx->bxb2 : NULL, n);
        rope_and_store(ctx, NULL, NULL, pos0, l, n, !attention_batch_rotates(n));
        /* Causal attention: token b sees positions up to pos0 + b. */
        attention_batch(ctx, l, n, pos0);
        layer_tail_batch(ctx, w, n);
    }
    run_token_steps(ctx, &(token_steps){.x = ctx->bx, .add = c->n_layers > 0 ? ctx->bxb2 : NULL, .out = ctx->bx, .norm = m->output_norm}, n);
    if (logits_all) lm_matmul(logits_all, &m->output, ctx->bx, n, nt);
    if (want_last) lm_matvec(ctx->logits, &m->output, ctx->bx + (n - 1) * dim, nt);
}

lm_status lm_context_forward_batch(lm_context *ctx, const int32_t *tokens, int64_t n, int64_t pos0, float *logits_all,
                                   const float **logits, lm_error *err) {
    const lm_model_config *c = &ctx->model->cfg;
    if (n < 1) return lm_error_set(err, LM_ERR_ARG, "a batch needs at least one token");
    if (pos0 < 0 || n > ctx->n_ctx || pos0 > ctx->n_ctx - n) {
        return lm_error_set(err, LM_ERR_LIMIT, "positions %lld..%lld are past the context size %lld", (long long)pos0,
                            (long long)(pos0 + n - 1), (long long)ctx->n_ctx);
    }
    for (int64_t i = 0; i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= c->n_vocab) {
            return lm_error_set(err, LM_ERR_ARG, "token id %d is outside the vocabulary (%lld tokens)", tokens[i],
                                (long long)c->n_vocab);
        }
    }
    lm_status st = alloc_batch(ctx, err);
    if (!st) st = lora_scratch(ctx, ctx->batch_cap, err);
    for (int64_t done = 0; done < n && !st; done += ctx->batch_cap) {
        int64_t k = n - done < ctx->batch_cap ? n - done : ctx->batch_cap;
        int last = done + k == n;
        forward_chunk(ctx, tokens + done, k, pos0 + done, logits_all ? logits_all + done * c->n_vocab : NULL,
                      last && logits != NULL);
    }
    if (!st && logits) *logits = ctx->logits;
    return st;
}

int64_t lm_context_batch_size(const lm_context *c) { return c->batch_cap; }

/* Whether products with w run on int8 dot products: an x16 kernel (which
 * lm_matmul takes at any token count) whose activations are 8-bit. */
static int int8_kernel(const lm_weight *w) {
    return w->layout == LM_LAYOUT_X16 && lm_kernels_best()->dot_x16[w->type] && lm_x16_act(w->type) != LM_ACT_F32;
}

lm_matrix_params lm_model_matrix_params(const lm_model *m) {
    lm_matrix_params p = {0, 0, (uint64_t)(m->output.rows * m->output.cols), 0};
    if (int8_kernel(&m->output)) p.output_int8 = p.output;
    for (int64_t l = 0; l < m->cfg.n_layers; l++) {
        const layer_weights *w = &m->layers[l];
        const lm_weight *all[] = {&w->wq, &w->wk, &w->wv, &w->wo, &w->w_gate, &w->w_up, &w->w_down};
        for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
            const uint64_t n = (uint64_t)(all[i]->rows * all[i]->cols);
            p.layers += n;
            if (int8_kernel(all[i])) p.layers_int8 += n;
        }
    }
    return p;
}

lm_status lm_context_forward_multi(lm_context *const *ctxs, const int32_t *tokens, const int64_t *pos, int64_t n,
                                   float *logits_all, lm_error *err) {
    return lm_context_forward_step(ctxs, tokens, pos, n, NULL, logits_all, err);
}

/* One step of n tokens of one or more sequences: the matrix products are shared (every weight
 * matrix read once for all n), every token's key and value go into its sequence's cache before
 * any token attends (so a chunk of a prompt sees itself causally), and each token attends only
 * to its own sequence. ctxs[0]'s batch buffers serve the whole step. */
lm_status lm_context_forward_step(lm_context *const *ctxs, const int32_t *tokens, const int64_t *pos, int64_t n,
                                  const unsigned char *want, float *logits, lm_error *err) {
    if (n < 1 || !ctxs || !ctxs[0]) return lm_error_set(err, LM_ERR_ARG, "a step needs at least one sequence");
    lm_context *lead = ctxs[0];
    const lm_model *m = lead->model;
    const lm_model_config *c = &m->cfg;
    lm_status st = alloc_batch(lead, err);
    if (!st) st = lora_scratch(lead, lead->batch_cap, err);
    if (st) return st;
    if (n > lead->batch_cap)
        return lm_error_set(err, LM_ERR_LIMIT, "%lld sequences in one step; at most %lld", (long long)n, (long long)lead->batch_cap);
    for (int64_t b = 0; b < n; b++) {
        const lm_context *x = ctxs[b];
        if (!x || x->model != m || x->n_ctx > lead->n_ctx)
            return lm_error_set(err, LM_ERR_ARG, "sequence %lld: another model, or a larger context than the first", (long long)b);
        if (tokens[b] < 0 || tokens[b] >= c->n_vocab)
            return lm_error_set(err, LM_ERR_ARG, "token id %d is outside the vocabulary (%lld tokens)", tokens[b], (long long)c->n_vocab);
        if (pos[b] < 0 || pos[b] >= x->n_ctx)
            return lm_error_set(err, LM_ERR_LIMIT, "sequence %lld: position %lld is past its context size %lld", (long long)b,
                                (long long)pos[b], (long long)x->n_ctx);
        for (int64_t a = 0; a < b; a++)
            if (ctxs[a] == x && pos[a] == pos[b])
                return lm_error_set(err, LM_ERR_ARG, "token %lld: position %lld of its sequence comes twice in one step",
                                    (long long)b, (long long)pos[b]);
    }
    /* One token of one sequence whose logits are wanted (the server decoding
     * for a single client): the single-token forward pass, whose regions keep
     * each core's rows on its core; its logits equal this step's bit for bit
     * (tested). */
    if (n == 1 && (!want || want[0])) {
        const float *one;
        st = lm_context_forward(lead, tokens[0], pos[0], &one, err);
        if (!st) memcpy(logits, one, (size_t)c->n_vocab * sizeof *logits);
        return st;
    }
    const int64_t dim = c->dim;
    for (int64_t b = 0; b < n; b++) lm_weight_row(&m->tok_embd, tokens[b], lead->bx + b * dim);
    for (int64_t l = 0; l < c->n_layers; l++) {
        const layer_weights *w = &m->layers[l];
        /* (the previous layer's feed-forward output joins the residual here) */
        norm_then_qkv(lead, w, l > 0 ? lead->bxb2 : NULL, n);
        rope_and_store(lead, ctxs, pos, 0, l, n, 1);
        attn_job aj = {.lead = lead, .ctxs = ctxs, .pos = pos, .layer = l, .q = lead->bq, .out = lead->batt,
                       .scratch = lead->batt_scratch};
        lm_parallel_for_dynamic(lead->n_threads, n * c->n_heads, 4, attend_items, &aj);
        layer_tail_batch(lead, w, n);
    }
    /* The wanted tokens' rows move up to the front (a row only ever moves to a
     * lower one), so one product makes exactly the logits asked for. */
    int64_t k = n;
    if (want) {
        k = 0;
        for (int64_t b = 0; b < n; b++) {
            if (!want[b]) continue;
            if (k != b) memcpy(lead->bx + k * dim, lead->bx + b * dim, (size_t)dim * sizeof(float));
            if (c->n_layers > 0 && k != b) memcpy(lead->bxb2 + k * dim, lead->bxb2 + b * dim, (size_t)dim * sizeof(float));
            k++;
        }
    }
    if (k == 0) return LM_OK;
    run_token_steps(lead, &(token_steps){.x = lead->bx, .add = c->n_layers > 0 ? lead->bxb2 : NULL, .out = lead->bx, .norm = m->output_norm}, k);
    lm_matmul(logits, &m->output, lead->bx, k, lead->n_threads);
    return LM_OK;
}
