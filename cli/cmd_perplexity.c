/* llmos perplexity: how well a model predicts a text (and how far it is from another). */
#include "args.h"
#include "commands.h"
#include "llmos/perplexity.h"

#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: llmos perplexity MODEL.gguf --file TEXT [options]\n"
            "\n"
            "Tokenizes TEXT, cuts it into chunks of the context size, and reports the mean\n"
            "loss (nats per token), the perplexity, and bits per byte. With --kl-base, also\n"
            "the mean KL divergence from the base model's next-token distribution and how\n"
            "often both models rank the same token first.\n"
            "\n"
            "options:\n"
            "  -f, --file TEXT        the text to score (required)\n"
            "  -c, --ctx N            tokens per chunk including BOS (default 512, at most the model's)\n"
            "      --chunks N         score at most N chunks\n"
            "      --kl-base BASE     compare with BASE.gguf (same vocabulary)\n"
            "  -t, --threads N        threads (default: all cores)\n"
            "  -q, --quiet            no progress on stderr\n"
            "  -h, --help             this help\n");
}

static void show(void *user, const char *stage, int64_t done, int64_t total) {
    (void)user;
    fprintf(stderr, "\r%s: %lld / %lld", stage, (long long)done, (long long)total);
}

int cmd_perplexity(int argc, char **argv) {
    const char *model_path = NULL, *file = NULL, *base_path = NULL;
    lm_perplexity_params p = {512, 0, cli_default_threads(), NULL, NULL, NULL};
    int quiet = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v;
        if (arg_is(a, "-h", "--help")) {
            usage(stdout);
            return 0;
        } else if (arg_is(a, "-f", "--file")) {
            if (!(file = arg_value(argc, argv, &i))) return 2;
        } else if (arg_is(a, "-c", "--ctx")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_int64(a, v, 2, 1 << 24, &p.n_ctx)) return 2;
        } else if (arg_is(a, NULL, "--chunks")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_int64(a, v, 1, INT32_MAX, &p.max_chunks)) return 2;
        } else if (arg_is(a, NULL, "--kl-base")) {
            if (!(base_path = arg_value(argc, argv, &i))) return 2;
        } else if (arg_is(a, "-t", "--threads")) {
            if (arg_threads(argc, argv, &i, &p.n_threads)) return 2;
        } else if (arg_is(a, "-q", "--quiet")) {
            quiet = 1;
        } else if (a[0] == '-' && a[1] != '\0') {
            cli_error("perplexity: unknown option '%s' (see 'llmos perplexity --help')", a);
            return 2;
        } else if (!model_path) {
            model_path = a;
        } else {
            cli_error("perplexity: unexpected argument '%s'", a);
            return 2;
        }
    }
    if (!model_path || !file) {
        cli_error("perplexity needs MODEL.gguf and --file TEXT (see --help)");
        return 2;
    }
    size_t len;
    char *text = cli_read_all(file, &len);
    if (!text) {
        cli_error("perplexity: cannot read %s", file);
        return 1;
    }
    lm_error err = {0};
    lm_model *m = NULL, *base = NULL;
    int rc = 1;
    if (lm_model_load(model_path, &m, &err)) {
        cli_error("cannot load %s: %s", model_path, err.message);
        goto done;
    }
    if (base_path && lm_model_load(base_path, &base, &err)) {
        cli_error("cannot load %s: %s", base_path, err.message);
        goto done;
    }
    p.kl_base = base;
    if (!quiet && isatty(2)) p.progress = show; /* a counter redrawn with \r only makes sense on a terminal */
    lm_perplexity_result r;
    lm_status st = lm_perplexity(m, text, len, &p, &r, &err);
    if (!quiet) fputc('\n', stderr);
    if (st) {
        cli_error("perplexity: %s", err.message);
        goto done;
    }
    printf("chunks %lld, tokens scored %lld, bytes %llu\n", (long long)r.n_chunks, (long long)r.n_scored,
           (unsigned long long)r.n_bytes);
    printf("loss %.6f\nperplexity %.6f\nbits_per_byte %.6f\n", r.loss, r.perplexity, r.bits_per_byte);
    if (r.has_kl) printf("kl_divergence %.8f\ntop1_agreement %.6f\n", r.kl_mean, r.top1_agreement);
    rc = 0;
done:
    lm_model_free(m);
    lm_model_free(base);
    free(text);
    return rc;
}
