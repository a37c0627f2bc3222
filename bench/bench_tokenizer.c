/* Tokenizer benchmarks:
 *   bench_tokenizer encode VOCAB.gguf TEXT [REPEATS]   encoding speed, one thread
 *   bench_tokenizer train VOCAB_SIZE FILE...           BPE training time
 * Prints one JSON object per line so scripts can compare runs. */
#include "llmos/bpe_train.h"
#include "llmos/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return p;
}

static int bench_encode(const char *vocab, const char *text_path, int repeats) {
    lm_error err;
    lm_gguf *g;
    lm_tokenizer *tok;
    if (lm_gguf_open(vocab, &g, &err) || lm_tokenizer_load(g, &tok, &err)) {
        fprintf(stderr, "%s: %s\n", vocab, err.message);
        return 1;
    }
    lm_gguf_free(g);
    size_t len;
    char *text = read_all(text_path, &len);
    if (!text) {
        fprintf(stderr, "cannot read %s\n", text_path);
        return 1;
    }
    double best = 1e30, sum = 0;
    size_t n_tokens = 0;
    for (int r = 0; r < repeats; r++) {
        int32_t *ids;
        double t0 = now();
        if (lm_tokenizer_encode(tok, text, len, 0, &ids, &n_tokens, &err)) {
            fprintf(stderr, "encode: %s\n", err.message);
            return 1;
        }
        double dt = now() - t0;
        free(ids);
        sum += dt;
        if (dt < best) best = dt;
    }
    printf("{\"test\":\"encode\",\"vocab\":\"%s\",\"bytes\":%zu,\"tokens\":%zu,\"repeats\":%d,"
           "\"mb_per_s_best\":%.2f,\"mb_per_s_mean\":%.2f}\n",
           vocab, len, n_tokens, repeats, (double)len / best / 1e6, (double)len * repeats / sum / 1e6);
    free(text);
    lm_tokenizer_free(tok);
    return 0;
}

static int bench_train(int64_t vocab, char **files, int n_files) {
    const char *specials[] = {"<|endoftext|>"};
    lm_bpe_train_params p = {vocab, specials, 1, NULL, NULL, NULL};
    lm_bpe_trainer *t;
    lm_error err;
    double t0 = now();
    if (lm_bpe_trainer_init(&p, &t, &err)) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    size_t bytes = 0;
    for (int i = 0; i < n_files; i++) {
        FILE *f = fopen(files[i], "rb");
        if (f) {
            fseek(f, 0, SEEK_END);
            bytes += (size_t)ftell(f);
            fclose(f);
        }
        if (lm_bpe_trainer_add_file(t, files[i], &err)) {
            fprintf(stderr, "%s: %s\n", files[i], err.message);
            return 1;
        }
    }
    double t1 = now();
    if (lm_bpe_trainer_train(t, &err)) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    double t2 = now();
    printf("{\"test\":\"train\",\"bytes\":%zu,\"vocab\":%lld,\"merges\":%lld,\"distinct_pretokens\":%lld,"
           "\"count_s\":%.3f,\"merge_s\":%.3f,\"total_s\":%.3f}\n",
           bytes, (long long)vocab, (long long)lm_bpe_trainer_merge_count(t),
           (long long)lm_bpe_trainer_distinct_pretokens(t), t1 - t0, t2 - t1, t2 - t0);
    lm_bpe_trainer_free(t);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 4 && strcmp(argv[1], "encode") == 0) return bench_encode(argv[2], argv[3], argc > 4 ? atoi(argv[4]) : 5);
    if (argc >= 4 && strcmp(argv[1], "train") == 0) return bench_train(atoll(argv[2]), argv + 3, argc - 3);
    fprintf(stderr, "usage: bench_tokenizer encode VOCAB.gguf TEXT [REPEATS]\n"
                    "       bench_tokenizer train VOCAB_SIZE FILE...\n");
    return 2;
}
