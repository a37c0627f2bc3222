/* llmos init: a random-weight Llama model of any shape. */
#include "args.h"
#include "commands.h"
#include "llmos/init.h"

#include <stdio.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: llmos init --dim D --layers L --heads H --ffn F -o OUT.gguf [options]\n"
            "\n"
            "Writes a Llama-architecture GGUF with random weights (N(0, 0.02), residual\n"
            "projections scaled by 1/sqrt(2L), norms 1), for benchmarks and as the start\n"
            "of pre-training. The same seed gives the same file for any thread count.\n"
            "\n"
            "options:\n"
            "      --dim D              embedding size\n"
            "      --layers L           transformer blocks\n"
            "      --heads H            attention heads\n"
            "      --kv-heads K         key/value heads (default: H)\n"
            "      --ffn F              feed-forward size\n"
            "      --context T          context length (default 2048)\n"
            "      --vocab-from TOK     copy the tokenizer of TOK.gguf (e.g. from 'llmos tokenizer train')\n"
            "      --vocab N            or a synthetic SentencePiece-style vocabulary of N tokens (default 32000)\n"
            "      --type T             weight matrices: f32 (default), f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_K, q5_K, q6_K\n"
            "      --seed S             random seed (default 1)\n"
            "  -t, --threads N          threads (default: all cores)\n"
            "  -o, --output FILE        the GGUF to write (required)\n"
            "  -q, --quiet              no progress on stderr\n"
            "  -h, --help               this help\n");
}

static void show(void *user, const char *stage, int64_t done, int64_t total) {
    (void)user;
    fprintf(stderr, "\r%lld/%lld %-40.40s", (long long)done, (long long)total, stage);
}

int cmd_init(int argc, char **argv) {
    lm_init_params p = {0, 0, 0, 0, 0, 2048, NULL, 32000, LM_TYPE_F32, 1, cli_default_threads(), NULL, NULL};
    const char *out = NULL;
    int quiet = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v;
#define INT_OPT(flag, field, lo, hi)                                                          \
    else if (arg_is(a, NULL, flag)) {                                                         \
        if (!(v = arg_value(argc, argv, &i)) || arg_int64(a, v, lo, hi, &p.field)) return 2; \
    }
        if (arg_is(a, "-h", "--help")) {
            usage(stdout);
            return 0;
        }
        INT_OPT("--dim", dim, 1, 1 << 20)
        INT_OPT("--layers", n_layers, 1, 4096)
        INT_OPT("--heads", n_heads, 1, 1 << 16)
        INT_OPT("--kv-heads", n_kv_heads, 1, 1 << 16)
        INT_OPT("--ffn", ffn_dim, 1, 1 << 22)
        INT_OPT("--context", context_length, 1, 1 << 24)
        INT_OPT("--vocab", vocab_size, 259, 1 << 24)
#undef INT_OPT
        else if (arg_is(a, NULL, "--vocab-from")) {
            if (!(p.vocab_from = arg_value(argc, argv, &i))) return 2;
        } else if (arg_is(a, NULL, "--type")) {
            if (!(v = arg_value(argc, argv, &i))) return 2;
            int t = lm_type_from_name(v);
            if (t < 0) {
                cli_error("init: unknown type '%s' (see --help)", v);
                return 2;
            }
            p.type = (lm_type)t;
        } else if (arg_is(a, NULL, "--seed")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_uint64(a, v, &p.seed)) return 2;
        } else if (arg_is(a, "-t", "--threads")) {
            if (arg_threads(argc, argv, &i, &p.n_threads)) return 2;
        } else if (arg_is(a, "-o", "--output")) {
            if (!(out = arg_value(argc, argv, &i))) return 2;
        } else if (arg_is(a, "-q", "--quiet")) {
            quiet = 1;
        } else {
            cli_error("init: unexpected argument '%s' (see 'llmos init --help')", a);
            return 2;
        }
    }
    if (!p.dim || !p.n_layers || !p.n_heads || !p.ffn_dim || !out) {
        cli_error("init needs --dim, --layers, --heads, --ffn and -o (see --help)");
        return 2;
    }
    if (!quiet) p.progress = show;
    lm_error err = {0};
    double t0 = cli_now_seconds();
    lm_status st = lm_model_init(&p, out, &err);
    if (!quiet && st != LM_ERR_ARG) fputc('\n', stderr);
    if (st) {
        cli_error("init: %s", err.message);
        return st == LM_ERR_ARG ? 2 : 1;
    }
    if (!quiet) fprintf(stderr, "wrote %s in %.1f s\n", out, cli_now_seconds() - t0);
    return 0;
}
