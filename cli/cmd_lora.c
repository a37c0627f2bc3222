/* llmos lora: merge an adapter into its base model, or describe one. */
#include "args.h"
#include "commands.h"
#include "llmos/lora.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: llmos lora merge BASE.gguf ADAPTER.gguf -o OUT.gguf [--scale S] [-t N] [-q]\n"
            "       llmos lora info ADAPTER.gguf\n"
            "\n"
            "LoRA adapters in llama.cpp's GGUF format (general.type = adapter): each adapted\n"
            "matrix W gets W + scale * B A, scale = S * alpha / rank (S alone when alpha is 0).\n"
            "'run', 'chat' and 'perplexity' apply an adapter at run time with --lora FILE.\n"
            "\n"
            "merge   writes OUT.gguf: the base with every adapted matrix replaced by\n"
            "        W + scale * B A in F32; all other tensors and all metadata are copied.\n"
            "info    prints the adapter's architecture, alpha and tensors.\n"
            "\n"
            "options:\n"
            "  -o, --output OUT     the merged model (merge; required)\n"
            "      --scale S        user scale (default 1)\n"
            "  -t, --threads N      threads (default: all cores)\n"
            "  -q, --quiet          no progress on stderr\n"
            "  -h, --help           this help\n");
}

static void show(void *user, const char *stage, int64_t done, int64_t total) {
    (void)user;
    fprintf(stderr, "\rmerging %lld/%lld %-40s", (long long)done, (long long)total, stage);
    fflush(stderr);
}

static int lora_merge(int argc, char **argv) {
    const char *paths[2] = {NULL, NULL}, *out = NULL;
    int n_paths = 0, quiet = 0;
    lm_lora_merge_params p = {1.0f, cli_default_threads(), NULL, NULL};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v;
        if (arg_is(a, "-h", "--help")) {
            usage(stdout);
            return 0;
        } else if (arg_is(a, "-o", "--output")) {
            if (!(out = arg_value(argc, argv, &i))) return 2;
        } else if (arg_is(a, NULL, "--scale")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_float(a, v, -1000, 1000, &p.scale)) return 2;
        } else if (arg_is(a, "-t", "--threads")) {
            if (arg_threads(argc, argv, &i, &p.n_threads)) return 2;
        } else if (arg_is(a, "-q", "--quiet")) {
            quiet = 1;
        } else if (a[0] == '-' && a[1] != '\0') {
            cli_error("lora merge: unknown option '%s' (see 'llmos lora --help')", a);
            return 2;
        } else if (n_paths < 2) {
            paths[n_paths++] = a;
        } else {
            cli_error("lora merge: unexpected argument '%s'", a);
            return 2;
        }
    }
    if (n_paths != 2 || !out) {
        cli_error("lora merge needs BASE.gguf ADAPTER.gguf -o OUT.gguf (see 'llmos lora --help')");
        return 2;
    }
    if (!quiet && isatty(2)) p.progress = show;
    lm_error err = {0};
    lm_status st = lm_lora_merge(paths[0], paths[1], out, &p, &err);
    if (p.progress) fputc('\n', stderr);
    if (st) {
        cli_error("lora merge: %s", err.message);
        return 1;
    }
    if (!quiet) fprintf(stderr, "wrote %s\n", out);
    return 0;
}

static int lora_info(int argc, char **argv) {
    const char *path = NULL;
    for (int i = 0; i < argc; i++) {
        if (arg_is(argv[i], "-h", "--help")) {
            usage(stdout);
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            cli_error("lora info: unknown option '%s'", argv[i]);
            return 2;
        } else if (!path) {
            path = argv[i];
        } else {
            cli_error("lora info: unexpected argument '%s'", argv[i]);
            return 2;
        }
    }
    if (!path) {
        cli_error("lora info needs ADAPTER.gguf");
        return 2;
    }
    lm_error err = {0};
    lm_lora *l;
    if (lm_lora_read(path, &l, &err)) {
        cli_error("lora info: %s: %s", path, err.message);
        return 1;
    }
    int64_t params = 0;
    for (int64_t i = 0; i < l->n_tensors; i++) params += l->tensors[i].rank * (l->tensors[i].rows + l->tensors[i].cols);
    printf("architecture %s\nalpha %g\ntensors %lld\nparameters %lld\n", l->arch, (double)l->alpha,
           (long long)l->n_tensors, (long long)params);
    for (int64_t i = 0; i < l->n_tensors; i++) {
        const lm_lora_tensor *t = &l->tensors[i];
        printf("  %-32s (%lld, %lld) rank %lld scale %g\n", t->name, (long long)t->rows, (long long)t->cols,
               (long long)t->rank, (double)lm_lora_scale(l, t, 1.0f));
    }
    lm_lora_free(l);
    return 0;
}

int cmd_lora(int argc, char **argv) {
    if (argc < 1 || arg_is(argv[0], "-h", "--help")) {
        usage(argc < 1 ? stderr : stdout);
        return argc < 1 ? 2 : 0;
    }
    if (strcmp(argv[0], "merge") == 0) return lora_merge(argc - 1, argv + 1);
    if (strcmp(argv[0], "info") == 0) return lora_info(argc - 1, argv + 1);
    cli_error("lora: unknown subcommand '%s' (merge or info)", argv[0]);
    return 2;
}
