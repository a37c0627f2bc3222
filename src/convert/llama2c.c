/* llama2.c checkpoints -> GGUF.
 *
 * Legacy format (run.c): int32 dim, hidden_dim, n_layers, n_heads, n_kv_heads,
 * vocab_size (negative: separate classifier), seq_len; then fp32 weights:
 * token embedding, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final,
 * freq_cis_real, freq_cis_imag (unused), [wcls].
 *
 * Version 1 (export.py version1_export): u32 magic "ak42", int32 version 1,
 * the same 7 ints, u8 shared_classifier, zero padding to 256 bytes; then
 * rms_att, rms_ffn, rms_final, token embedding, wq, wk, wv, wo, w1, w2, w3, [wcls].
 *
 * Every matrix is row-major (out, in), which is GGUF's ne = [in, out]; the
 * bytes are copied unchanged (llama2.c's RoPE is llama.cpp's normal RoPE, so
 * Q and K need no permutation). Tensor names, order and metadata follow
 * llama.cpp's convert-llama2c-to-ggml. */
#include "llmos/convert.h"

#include "../base/checked.h"
#include "llmos/file.h"
#include "llmos/gguf.h"
#include "llmos/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LLAMA2C_MAGIC 0x616b3432u
#define MAX_HPARAM (1 << 24)

typedef struct l2c_config {
    int64_t dim, hidden, n_layers, n_heads, n_kv_heads, vocab, seq_len;
    int shared_classifier;
} l2c_config;

/* Pointers into the mapped checkpoint; per-layer tensors are contiguous over layers. */
typedef struct l2c_weights {
    const float *tok_embd, *rms_att, *wq, *wk, *wv, *wo, *rms_ffn, *w1, *w2, *w3, *rms_final, *wcls;
} l2c_weights;

static lm_status read_config(const lm_mapped_file *f, l2c_config *c, size_t *weights_at, int *is_version1,
                             lm_error *err) {
    int32_t h[9];
    int version1 = 0;
    if (f->size >= 4) {
        uint32_t magic;
        memcpy(&magic, f->data, 4);
        version1 = magic == LLAMA2C_MAGIC;
    }
    if (version1) {
        if (f->size < 256) return lm_error_set(err, LM_ERR_FORMAT, "version-1 checkpoint shorter than its 256-byte header");
        memcpy(h, f->data, sizeof h);
        if (h[1] != 1) {
            return lm_error_set(err, LM_ERR_UNSUPPORTED, "llama2.c checkpoint version %d is not supported (only 1 and legacy)",
                                h[1]);
        }
        memmove(h, h + 2, 7 * sizeof *h);
        c->shared_classifier = f->data[36];
        if (c->shared_classifier > 1) return lm_error_set(err, LM_ERR_FORMAT, "shared_classifier byte is %u", c->shared_classifier);
        *weights_at = 256;
        *is_version1 = 1;
    } else {
        if (f->size < 28) return lm_error_set(err, LM_ERR_FORMAT, "checkpoint shorter than its 28-byte header");
        memcpy(h, f->data, 7 * sizeof *h);
        c->shared_classifier = h[5] > 0;
        if (h[5] < 0) h[5] = h[5] == INT32_MIN ? 0 : -h[5];
        *weights_at = 28;
        *is_version1 = 0;
    }
    c->dim = h[0];
    c->hidden = h[1];
    c->n_layers = h[2];
    c->n_heads = h[3];
    c->n_kv_heads = h[4];
    c->vocab = h[5];
    c->seq_len = h[6];
    const char *names[] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"};
    int64_t vals[] = {c->dim, c->hidden, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab, c->seq_len};
    for (int i = 0; i < 7; i++) {
        if (vals[i] < 1 || vals[i] > MAX_HPARAM) {
            return lm_error_set(err, LM_ERR_FORMAT, "checkpoint header: %s = %lld is outside 1..%d (not a llama2.c checkpoint?)",
                                names[i], (long long)vals[i], MAX_HPARAM);
        }
    }
    if (c->dim % c->n_heads || c->n_heads % c->n_kv_heads || (c->dim / c->n_heads) % 2) {
        return lm_error_set(err, LM_ERR_FORMAT, "checkpoint header: dim %lld, n_heads %lld, n_kv_heads %lld do not fit together",
                            (long long)c->dim, (long long)c->n_heads, (long long)c->n_kv_heads);
    }
    return LM_OK;
}

/* Hands out consecutive float arrays from the checkpoint, checking bounds. */
typedef struct cursor {
    const lm_mapped_file *f;
    uint64_t pos;
    int overflow;
} cursor;

static const float *take(cursor *c, int64_t a, int64_t b, int64_t d) {
    uint64_t n, bytes, end;
    if (lm_mul_overflow_u64((uint64_t)a, (uint64_t)b, &n) || lm_mul_overflow_u64(n, (uint64_t)d, &n) ||
        lm_mul_overflow_u64(n, 4, &bytes) || lm_add_overflow_u64(c->pos, bytes, &end)) {
        c->overflow = 1;
        return NULL;
    }
    const float *p = end <= c->f->size ? (const float *)(c->f->data + c->pos) : NULL;
    c->pos = end;
    return p;
}

static lm_status map_weights(const lm_mapped_file *f, const l2c_config *c, size_t at, int version1, l2c_weights *w,
                             lm_error *err) {
    int64_t L = c->n_layers, D = c->dim, H = c->hidden, kv = c->dim / c->n_heads * c->n_kv_heads;
    cursor cur = {f, at, 0};
    if (version1) {
        w->rms_att = take(&cur, L, D, 1);
        w->rms_ffn = take(&cur, L, D, 1);
        w->rms_final = take(&cur, D, 1, 1);
        w->tok_embd = take(&cur, c->vocab, D, 1);
    } else {
        w->tok_embd = take(&cur, c->vocab, D, 1);
        w->rms_att = take(&cur, L, D, 1);
    }
    w->wq = take(&cur, L, D, D);
    w->wk = take(&cur, L, kv, D);
    w->wv = take(&cur, L, kv, D);
    w->wo = take(&cur, L, D, D);
    if (!version1) w->rms_ffn = take(&cur, L, D, 1);
    w->w1 = take(&cur, L, H, D);
    w->w2 = take(&cur, L, D, H);
    w->w3 = take(&cur, L, H, D);
    if (!version1) {
        w->rms_final = take(&cur, D, 1, 1);
        take(&cur, c->seq_len, D / c->n_heads, 1); /* freq_cis_real, freq_cis_imag: unused */
    }
    w->wcls = c->shared_classifier ? w->tok_embd : take(&cur, c->vocab, D, 1);
    if (cur.overflow || cur.pos != f->size) {
        return lm_error_set(err, LM_ERR_FORMAT, "checkpoint is %zu bytes but its header implies %llu", f->size,
                            (unsigned long long)cur.pos);
    }
    return LM_OK;
}

/* llama2.c tokenizer.bin: int32 max_token_length, then per token float score,
 * int32 length, bytes. Converted to SentencePiece form as llama.cpp does. */
typedef struct l2c_vocab {
    lm_str *tokens;
    char *arena;
    float *scores;
    int32_t *types;
} l2c_vocab;

static void vocab_free(l2c_vocab *v) {
    free(v->tokens);
    free(v->arena);
    free(v->scores);
    free(v->types);
}

static int is_byte_token(const uint8_t *p, int32_t len) {
    return len == 6 && memcmp(p, "<0x", 3) == 0 && p[5] == '>';
}

static lm_status read_vocab(const lm_mapped_file *f, int64_t n_vocab, l2c_vocab *v, lm_error *err) {
    size_t pos = 4;
    if (f->size < 4) return lm_error_set(err, LM_ERR_FORMAT, "tokenizer file is shorter than its header");
    /* Spaces become U+2581 (3 bytes), so the arena needs at most 3x the file. */
    size_t arena_cap;
    if (lm_mul_overflow_size(f->size, 3, &arena_cap)) return lm_error_set(err, LM_ERR_LIMIT, "tokenizer file too large");
    v->tokens = calloc((size_t)n_vocab, sizeof *v->tokens);
    v->arena = malloc(arena_cap + 16);
    v->scores = calloc((size_t)n_vocab, sizeof *v->scores);
    v->types = calloc((size_t)n_vocab, sizeof *v->types);
    if (!v->tokens || !v->arena || !v->scores || !v->types) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    size_t used = 0;
    for (int64_t i = 0; i < n_vocab; i++) {
        int32_t len;
        if (f->size - pos < 8) {
            return lm_error_set(err, LM_ERR_FORMAT, "tokenizer file ends at token %lld of %lld", (long long)i, (long long)n_vocab);
        }
        memcpy(&v->scores[i], f->data + pos, 4);
        memcpy(&len, f->data + pos + 4, 4);
        pos += 8;
        if (len < 0 || (size_t)len > f->size - pos) {
            return lm_error_set(err, LM_ERR_FORMAT, "tokenizer file: token %lld has bad length %d", (long long)i, len);
        }
        const uint8_t *text = f->data + pos;
        pos += (size_t)len;
        char *dst = v->arena + used;
        size_t n = 0;
        if (i == 0) {
            memcpy(dst, "<unk>", n = 5);
            v->types[i] = LM_TOKEN_UNKNOWN;
        } else if (i == 1) {
            memcpy(dst, "<s>", n = 3);
            v->types[i] = LM_TOKEN_CONTROL;
        } else if (i == 2) {
            memcpy(dst, "</s>", n = 4);
            v->types[i] = LM_TOKEN_CONTROL;
        } else if (len == 0) {
            v->types[i] = LM_TOKEN_CONTROL;
        } else if (is_byte_token(text, len)) {
            memcpy(dst, text, n = 6);
            v->types[i] = LM_TOKEN_BYTE;
        } else {
            for (int32_t k = 0; k < len; k++) {
                if (text[k] == ' ') {
                    memcpy(dst + n, "\xe2\x96\x81", 3);
                    n += 3;
                } else {
                    dst[n++] = (char)text[k];
                }
            }
            v->types[i] = LM_TOKEN_NORMAL;
        }
        v->tokens[i] = (lm_str){dst, n};
        used += n;
    }
    return LM_OK;
}

static lm_status add(lm_gguf_writer *w, const char *name, const float *data, int64_t ne0, int64_t ne1, lm_error *err) {
    int64_t ne[2] = {ne0, ne1};
    return lm_gguf_writer_add_tensor(w, name, LM_TYPE_F32, ne1 > 1 ? 2 : 1, ne, data, err);
}

static lm_status build(lm_gguf_writer *w, const l2c_config *c, const l2c_weights *wt, const l2c_vocab *v,
                       const lm_convert_llama2c_options *opt, lm_error *err) {
    int64_t D = c->dim, H = c->hidden, hd = c->dim / c->n_heads, kv = hd * c->n_kv_heads;
    int64_t ctx = opt && opt->context_length > 0 ? opt->context_length : c->seq_len;
    lm_status st = LM_OK;
#define TRY(call) do { if ((st = (call))) return st; } while (0)
    TRY(lm_gguf_writer_set_str(w, "general.architecture", "llama", err));
    TRY(lm_gguf_writer_set_str(w, "general.name", opt && opt->name ? opt->name : "llama", err));
    TRY(lm_gguf_writer_set_u32(w, "llama.context_length", (uint32_t)ctx, err));
    TRY(lm_gguf_writer_set_u32(w, "llama.embedding_length", (uint32_t)D, err));
    TRY(lm_gguf_writer_set_u32(w, "llama.feed_forward_length", (uint32_t)H, err));
    TRY(lm_gguf_writer_set_u32(w, "llama.attention.head_count", (uint32_t)c->n_heads, err));
    TRY(lm_gguf_writer_set_u32(w, "llama.attention.head_count_kv", (uint32_t)c->n_kv_heads, err));
    TRY(lm_gguf_writer_set_u32(w, "llama.block_count", (uint32_t)c->n_layers, err));
    TRY(lm_gguf_writer_set_u32(w, "llama.rope.dimension_count", (uint32_t)hd, err));
    TRY(lm_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f, err));
    TRY(lm_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama", err));
    TRY(lm_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", v->tokens, (uint64_t)c->vocab, err));
    TRY(lm_gguf_writer_set_arr(w, "tokenizer.ggml.scores", LM_GGUF_FLOAT32, v->scores, (uint64_t)c->vocab, err));
    TRY(lm_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", LM_GGUF_INT32, v->types, (uint64_t)c->vocab, err));
    TRY(lm_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0, err));
    TRY(lm_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1, err));
    TRY(lm_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2, err));

    TRY(add(w, "token_embd.weight", wt->tok_embd, D, c->vocab, err));
    TRY(add(w, "output_norm.weight", wt->rms_final, D, 1, err));
    /* llama.cpp's converter writes the classifier even when it is shared. */
    TRY(add(w, "output.weight", wt->wcls, D, c->vocab, err));
    for (int64_t l = 0; l < c->n_layers; l++) {
        char name[LM_GGUF_MAX_NAME];
#define LAYER(suffix, base, ne0, ne1)                                                  \
    snprintf(name, sizeof name, "blk.%lld." suffix, (long long)l);                     \
    TRY(add(w, name, (base) + l * (int64_t)(ne0) * (int64_t)(ne1), (ne0), (ne1), err));
        LAYER("attn_q.weight", wt->wq, D, D)
        LAYER("attn_k.weight", wt->wk, D, kv)
        LAYER("attn_v.weight", wt->wv, D, kv)
        LAYER("attn_output.weight", wt->wo, D, D)
        LAYER("attn_norm.weight", wt->rms_att, D, 1)
        LAYER("ffn_gate.weight", wt->w1, D, H)
        LAYER("ffn_down.weight", wt->w2, H, D)
        LAYER("ffn_up.weight", wt->w3, D, H)
        LAYER("ffn_norm.weight", wt->rms_ffn, D, 1)
#undef LAYER
    }
#undef TRY
    return st;
}

lm_status lm_convert_llama2c(const char *checkpoint_path, const char *tokenizer_path, const char *out_path,
                             const lm_convert_llama2c_options *options, lm_error *err) {
    lm_mapped_file ckpt = {0}, tokf = {0};
    l2c_vocab vocab = {0};
    lm_gguf_writer *w = NULL;
    l2c_config cfg = {0};
    l2c_weights wt = {0};
    size_t at = 0;
    int version1 = 0;
    lm_status st = lm_file_map(checkpoint_path, &ckpt, err);
    if (!st && (st = read_config(&ckpt, &cfg, &at, &version1, err))) lm_error_prefix(err, st, "%s: ", checkpoint_path);
    if (!st && (st = map_weights(&ckpt, &cfg, at, version1, &wt, err))) lm_error_prefix(err, st, "%s: ", checkpoint_path);
    if (!st) st = lm_file_map(tokenizer_path, &tokf, err);
    if (!st && (st = read_vocab(&tokf, cfg.vocab, &vocab, err))) lm_error_prefix(err, st, "%s: ", tokenizer_path);
    if (!st && options && (options->context_length < 0 || options->context_length > UINT32_MAX)) {
        st = lm_error_set(err, LM_ERR_ARG, "context length %lld is out of range", (long long)options->context_length);
    }
    if (!st && !(w = lm_gguf_writer_init())) st = lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    if (!st) st = build(w, &cfg, &wt, &vocab, options, err);
    if (!st) st = lm_gguf_writer_write_file(w, out_path, err);
    lm_gguf_writer_free(w);
    vocab_free(&vocab);
    lm_file_unmap(&tokf);
    lm_file_unmap(&ckpt);
    return st;
}
