/* llmos quantize: a GGUF model to a smaller GGUF model. */
#include "args.h"
#include "commands.h"
#include "llmos/quantize.h"

#include <stdio.h>
#include <unistd.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: llmos quantize IN.gguf OUT.gguf TYPE [-t THREADS]\n"
            "\n"
            "Writes OUT.gguf (atomically) with every metadata key of IN.gguf, the weight\n"
            "matrices in TYPE and everything else unchanged.\n"
            "\n"
            "TYPE: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_K, q5_K, q6_K,\n"
            "      q4_K_M, q5_K_M (llama.cpp's mixes: the output matrix and some attn_v /\n"
            "      ffn_down layers in q6_K). A matrix whose rows are not a whole number of\n"
            "      the type's blocks falls back as llama.cpp does (q4_K -> q5_0, q5_K -> q5_1,\n"
            "      q6_K -> q8_0, otherwise f16).\n"
            "\n"
            "options:\n"
            "  -t, --threads N   threads (default: all cores)\n"
            "  -q, --quiet       no progress bar on stderr (it is shown on a terminal only)\n"
            "  -h, --help        this help\n");
}

static void show(void *user, const char *stage, int64_t done, int64_t total) {
    (void)user;
    int width = 30, filled = total > 0 ? (int)(width * done / total) : 0;
    fprintf(stderr, "\r[%.*s%*s] %lld/%lld %-40.40s", filled, "##############################", width - filled, "",
            (long long)done, (long long)total, stage);
}

int cmd_quantize(int argc, char **argv) {
    const char *pos[3] = {0};
    int n_pos = 0, quiet = 0;
    lm_quantize_params p = {NULL, cli_default_threads(), NULL, NULL};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (arg_is(a, "-h", "--help")) {
            usage(stdout);
            return 0;
        } else if (arg_is(a, "-t", "--threads")) {
            if (arg_threads(argc, argv, &i, &p.n_threads)) return 2;
        } else if (arg_is(a, "-q", "--quiet")) {
            quiet = 1;
        } else if (a[0] == '-' && a[1] != '\0') {
            cli_error("quantize: unknown option '%s' (see 'llmos quantize --help')", a);
            return 2;
        } else if (n_pos < 3) {
            pos[n_pos++] = a;
        } else {
            cli_error("quantize: unexpected argument '%s'", a);
            return 2;
        }
    }
    if (n_pos != 3) {
        usage(stderr);
        return 2;
    }
    p.scheme = pos[2];
    if (!quiet && isatty(2)) p.progress = show; /* a bar redrawn with \r only makes sense on a terminal */
    lm_quantize_stats stats;
    lm_error err = {0};
    double t0 = cli_now_seconds();
    lm_status st = lm_quantize_model(pos[0], pos[1], &p, &stats, &err);
    if (!quiet && st != LM_ERR_ARG) fputc('\n', stderr);
    if (st) {
        cli_error("quantize: %s", err.message);
        return st == LM_ERR_ARG ? 2 : 1;
    }
    if (!quiet) {
        fprintf(stderr, "wrote %s: %lld tensors quantized (%lld to a fallback type), %lld kept; %.1f MB -> %.1f MB in %.1f s\n",
                pos[1], (long long)stats.n_quantized, (long long)stats.n_fallback, (long long)stats.n_kept,
                (double)stats.bytes_in / 1e6, (double)stats.bytes_out / 1e6, cli_now_seconds() - t0);
    }
    return 0;
}
