/* Time of one draw from the sampler over a vocabulary of N tokens (default 32000), with nothing
 * cut (temperature 0.8, top-k 0, top-p 1, min-p 0: what the server uses by default) and with
 * llmos's chat defaults (top-k 40, top-p 0.95, min-p 0.05), and greedy.
 * usage: bench_sampler [N] [DRAWS] */
#include "llmos/sampler.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void run(const char *name, lm_sampler_params p, const float *logits, int n, int draws) {
    lm_sampler *s;
    lm_error err = {0};
    if (lm_sampler_init(&p, n, &s, &err)) {
        fprintf(stderr, "bench_sampler: %s\n", err.message);
        exit(1);
    }
    long sum = 0;
    double t0 = now();
    for (int i = 0; i < draws; i++) sum += lm_sampler_sample(s, logits, NULL, 0);
    printf("%-28s %8.1f us per draw (checksum %ld)\n", name, (now() - t0) / draws * 1e6, sum);
    lm_sampler_free(s);
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 32000, draws = argc > 2 ? atoi(argv[2]) : 2000;
    if (n < 1 || n > 10000000 || draws < 1) {
        fprintf(stderr, "usage: bench_sampler [N] [DRAWS]\n");
        return 2;
    }
    float *logits = malloc((size_t)n * sizeof *logits);
    if (!logits) return 1;
    for (int i = 0; i < n; i++) logits[i] = (float)((i * 2654435761u) % 1000) / 100.0f;
    lm_sampler_params p = lm_sampler_default_params();
    printf("vocabulary of %d tokens\n", n);
    run("chat defaults", p, logits, n, draws);
    p.temperature = 0.8f, p.top_k = 0, p.top_p = 1.0f, p.min_p = 0.0f;
    run("nothing cut (server)", p, logits, n, draws);
    p.temperature = 0.0f;
    run("greedy", p, logits, n, draws);
    free(logits);
    return 0;
}
