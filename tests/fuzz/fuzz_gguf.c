/* libFuzzer target for the model loader: any bytes -> GGUF parse -> every
 * metadata getter -> LoRA adapter read -> model + tokenizer load -> a short
 * forward pass and a tokenizer round trip. Nothing may crash, leak or read
 * out of bounds. */
#include "llmos/lora.h"
#include "llmos/model.h"

#include <stdlib.h>
#include <string.h>

static void touch_metadata(const lm_gguf *g) {
    volatile double sink = 0;
    for (int64_t i = 0; i < lm_gguf_kv_count(g); i++) {
        uint64_t n = lm_gguf_arr_len(g, i);
        for (uint64_t j = 0; j < n && j < 64; j++) {
            if (lm_gguf_arr_type(g, i) == LM_GGUF_STRING) sink += (double)lm_gguf_get_str(g, i, j).len;
            else sink += lm_gguf_get_f64(g, i, j) + (double)lm_gguf_get_i64(g, i, j);
        }
    }
    for (int64_t i = 0; i < lm_gguf_tensor_count(g); i++) {
        const lm_gguf_tensor *t = lm_gguf_tensor_at(g, i);
        if (t->n_bytes) sink += ((const uint8_t *)t->data)[t->n_bytes - 1];
    }
    (void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* A private, aligned copy so out-of-bounds reads are caught exactly. */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    memcpy(copy, data, size);
    lm_gguf *g;
    lm_error err;
    if (lm_gguf_open_memory(copy, size, &g, &err) == LM_OK) {
        touch_metadata(g);
        lm_lora *lora;
        if (lm_lora_read_gguf(g, &lora, &err) == LM_OK) lm_lora_free(lora);
        lm_model *m;
        if (lm_model_load_gguf(g, &m, &err) == LM_OK) {
            const lm_model_config *c = lm_model_get_config(m);
            /* Keep each input cheap: only run small models. */
            if (c->dim * c->n_layers <= 4096 && c->n_vocab <= 4096) {
                lm_context *ctx;
                if (lm_context_init(m, c->context_length < 4 ? c->context_length : 4, 1, &ctx, &err) == LM_OK) {
                    const float *logits;
                    for (int64_t pos = 0; pos < lm_context_size(ctx); pos++) {
                        lm_context_forward(ctx, (int32_t)(pos % c->n_vocab), pos, &logits, &err);
                    }
                    lm_context_forward(ctx, -1, 0, &logits, &err);
                    lm_context_free(ctx);
                }
            }
            const lm_tokenizer *tok = lm_model_get_tokenizer(m);
            int32_t *ids;
            size_t n;
            const char text[] = "Hello wor\xffld <s> \xe2\x96\x81 ";
            unsigned flags[2] = {LM_ENCODE_ADD_SPECIAL, LM_ENCODE_PARSE_SPECIAL};
            for (int f = 0; f < 2; f++) {
                if (lm_tokenizer_encode(tok, text, sizeof text - 1, flags[f], &ids, &n, &err) != LM_OK) continue;
                lm_detokenizer *d;
                if (lm_detokenizer_init(tok, LM_DECODE_SPECIAL, &d, &err) == LM_OK) {
                    size_t cap = lm_detokenizer_max_output(d);
                    char *piece = malloc(cap);
                    for (size_t i = 0; piece && i < n; i++) lm_detokenizer_push(d, ids[i], piece, cap);
                    if (piece) lm_detokenizer_flush(d, piece, cap);
                    free(piece);
                    lm_detokenizer_free(d);
                }
                free(ids);
            }
            lm_model_free(m);
        }
    }
    free(copy);
    return 0;
}
