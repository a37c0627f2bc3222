/* llmos tokenizer train: byte-level BPE from raw text files to a vocab-only GGUF. */
#include "args.h"
#include "commands.h"
#include "llmos/bpe_train.h"

#include <stdio.h>
#include <string.h>
#include <stdlib.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: llmos tokenizer train FILE... --vocab N -o TOK.gguf [options]\n"
            "\n"
            "Trains a byte-level BPE tokenizer on raw text files and writes it as a\n"
            "vocabulary-only GGUF (tokenizer.ggml.model = gpt2, with merges) that every\n"
            "llmos command accepts. Text is split on the special tokens, then into\n"
            "pre-tokens by the split expression; merges never cross pre-tokens; ties go to\n"
            "the lexicographically greater pair. Files are streamed, so memory grows with\n"
            "the number of distinct pre-tokens, not with the corpus.\n"
            "\n"
            "options:\n"
            "      --vocab N            vocabulary size: special tokens + 256 bytes + merges (required)\n"
            "      --special TOKEN      a special token (repeatable), e.g. --special '<|endoftext|>'\n"
            "      --split-regex R      PCRE2 pre-tokenizer expression (default: GPT-4's, as Llama 3)\n"
            "  -o, --output FILE        the GGUF to write (required)\n"
            "  -q, --quiet              no progress on stderr\n"
            "  -h, --help               this help\n");
}

static void show_progress(void *user, const char *stage, int64_t done, int64_t total) {
    *(int *)user = 1; /* a progress line is open */
    if (total > 0) fprintf(stderr, "\r%s: %lld / %lld", stage, (long long)done, (long long)total);
    else fprintf(stderr, "\r%s: %.1f MB", stage, (double)done / 1e6);
    if (total > 0 && done >= total) fputc('\n', stderr);
}

static int train(int argc, char **argv) {
    const char *out = NULL, *regex = NULL;
    const char **files = calloc((size_t)argc + 1, sizeof *files), **specials = calloc((size_t)argc + 1, sizeof *specials);
    size_t n_files = 0, n_special = 0;
    int64_t vocab = 0;
    int quiet = 0, rc = 2;
    if (!files || !specials) {
        cli_error("out of memory");
        goto done;
    }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v;
        if (arg_is(a, "-h", "--help")) {
            usage(stdout);
            rc = 0;
            goto done;
        } else if (arg_is(a, NULL, "--vocab")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_int64(a, v, 257, 1 << 24, &vocab)) goto done;
        } else if (arg_is(a, NULL, "--special")) {
            if (!(specials[n_special++] = arg_value(argc, argv, &i))) goto done;
        } else if (arg_is(a, NULL, "--split-regex")) {
            if (!(regex = arg_value(argc, argv, &i))) goto done;
        } else if (arg_is(a, "-o", "--output")) {
            if (!(out = arg_value(argc, argv, &i))) goto done;
        } else if (arg_is(a, "-q", "--quiet")) {
            quiet = 1;
        } else if (a[0] == '-' && a[1] != '\0') {
            cli_error("tokenizer train: unknown option '%s' (see 'llmos tokenizer train --help')", a);
            goto done;
        } else {
            files[n_files++] = a;
        }
    }
    if (n_files == 0 || vocab == 0 || !out) {
        cli_error("tokenizer train needs FILE..., --vocab N and -o OUT.gguf (see --help)");
        goto done;
    }
    int progress_open = 0;
    lm_bpe_train_params p = {vocab, specials, n_special, regex, quiet ? NULL : show_progress, &progress_open};
    lm_bpe_trainer *t;
    lm_error err = {0};
    rc = 1;
    double t0 = cli_now_seconds();
    if (lm_bpe_trainer_init(&p, &t, &err)) {
        cli_error("tokenizer train: %s", err.message);
        goto done;
    }
    for (size_t i = 0; i < n_files; i++) {
        if (lm_bpe_trainer_add_file(t, files[i], &err)) {
            if (progress_open) fputc('\n', stderr);
            cli_error("tokenizer train: %s", err.message);
            lm_bpe_trainer_free(t);
            goto done;
        }
    }
    if (progress_open) fputc('\n', stderr);
    progress_open = 0;
    if (lm_bpe_trainer_train(t, &err) || lm_bpe_trainer_write_gguf(t, out, &err)) {
        if (progress_open) fputc('\n', stderr);
        cli_error("tokenizer train: %s", err.message);
        lm_bpe_trainer_free(t);
        goto done;
    }
    if (!quiet) {
        fprintf(stderr, "wrote %s: %lld tokens (%lld merges) from %lld distinct pre-tokens in %.2f s\n", out,
                (long long)lm_bpe_trainer_vocab_size(t), (long long)lm_bpe_trainer_merge_count(t),
                (long long)lm_bpe_trainer_distinct_pretokens(t), cli_now_seconds() - t0);
    }
    if (lm_bpe_trainer_vocab_size(t) < vocab) {
        fprintf(stderr, "note: the text has no more pairs to merge; the vocabulary has %lld tokens, not %lld\n",
                (long long)lm_bpe_trainer_vocab_size(t), (long long)vocab);
    }
    lm_bpe_trainer_free(t);
    rc = 0;
done:
    free(files);
    free(specials);
    return rc;
}

int cmd_tokenizer(int argc, char **argv) {
    if (argc == 0 || arg_is(argv[0], "-h", "--help")) {
        usage(argc == 0 ? stderr : stdout);
        return argc == 0 ? 2 : 0;
    }
    if (strcmp(argv[0], "train") == 0) return train(argc - 1, argv + 1);
    cli_error("tokenizer: unknown subcommand '%s' (supported: train)", argv[0]);
    return 2;
}
