/* Copies a vocab-only GGUF and adds a llama architecture header so llama.cpp loads it vocab-only. */
#include "llmos/gguf.h"
#include <stdio.h>
int main(int argc, char **argv) {
    lm_gguf *g; lm_error err;
    if (argc != 3 || lm_gguf_open(argv[1], &g, &err)) { fprintf(stderr, "usage/%s\n", err.message); return 1; }
    lm_gguf_writer *w = lm_gguf_writer_init();
    lm_gguf_writer_set_str(w, "general.architecture", "llama", &err);
    const char *keys[] = {"llama.block_count", "llama.context_length", "llama.embedding_length", "llama.feed_forward_length", "llama.attention.head_count"};
    uint32_t vals[] = {1, 256, 64, 128, 4};
    for (int i = 0; i < 5; i++) lm_gguf_writer_set_u32(w, keys[i], vals[i], &err);
    lm_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f, &err);
    for (int64_t i = 0; i < lm_gguf_kv_count(g); i++) lm_gguf_writer_copy_kv(w, g, i, &err);
    if (lm_gguf_writer_write_file(w, argv[2], &err)) { fprintf(stderr, "%s\n", err.message); return 1; }
    return 0;
}
