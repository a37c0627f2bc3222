/* llmos data prepare: text files -> train/val token shards for training. */
#include "args.h"
#include "commands.h"
#include "llmos/data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: llmos data prepare --tokenizer TOK.gguf FILE... -o DIR [options]\n"
            "\n"
            "Tokenizes text files into binary token shards for training:\n"
            "DIR/train_000000.bin, DIR/train_000001.bin, ... and DIR/val_000000.bin, ...\n"
            "(the format is in docs/formats.md). Documents are the pieces of each file\n"
            "between delimiters; each is trimmed of surrounding white space (empty ones\n"
            "are skipped) and written as BOS + tokens + EOS. The text is encoded as plain\n"
            "text: control tokens written in it (<s>, <|endoftext|>, ...) stay text.\n"
            "The last --val-fraction of the documents, in file order, form the val split,\n"
            "the rest the train split. The files are read twice in 1 MiB chunks (first to\n"
            "count the documents, then to tokenize them), so memory holds one document\n"
            "(at most 64 MiB) and one shard per split, never a whole file. Shards of an\n"
            "earlier run in DIR past the last one written are removed.\n"
            "\n"
            "options:\n"
            "      --tokenizer FILE   the GGUF whose tokenizer encodes the text (required)\n"
            "  -o, --output DIR       where the shards go, created if missing (required)\n"
            "      --val-fraction F   fraction of the documents for validation, 0 <= F < 1\n"
            "                         (default 0.1; 0: no val split)\n"
            "      --delimiter STR    the document separator (default '\\n\\n', a blank line);\n"
            "                         \\n, \\t, \\r and \\\\ are interpreted; 'none': each file\n"
            "                         is one document\n"
            "      --shard-tokens N   at most N tokens per shard (default 100000000)\n"
            "  -q, --quiet            no progress bar\n"
            "  -h, --help             this help\n"
            "\n"
            "The summary goes to stdout: documents, tokens, train/val tokens, bytes of\n"
            "document text per token (BOS/EOS not counted) and the shards written.\n");
}

static void usage_data(FILE *out) {
    fprintf(out,
            "usage: llmos data prepare --tokenizer TOK.gguf FILE... -o DIR [options]\n"
            "\n"
            "subcommands:\n"
            "  prepare    tokenize text files into train and val token shards\n"
            "\n"
            "'llmos data prepare --help' describes the options.\n");
}

typedef struct bar {
    const char *stage;
    int percent, open;
} bar;

static void show_progress(void *user, const char *stage, int64_t done, int64_t total) {
    bar *b = user;
    int pct = total > 0 ? (int)(100 * (done < total ? done : total) / total) : 100;
    int same = b->stage && strcmp(b->stage, stage) == 0;
    if (same && pct == b->percent) return; /* redraw only when the percentage moves */
    if (b->open && !same) fputc('\n', stderr);
    b->stage = stage;
    b->percent = pct;
    b->open = 1;
    char fill[31];
    int k = pct * 30 / 100;
    for (int i = 0; i < 30; i++) fill[i] = i < k ? '#' : '.';
    fill[30] = '\0';
    fprintf(stderr, "\r%-10s [%s] %3d%%  %.1f / %.1f MB", stage, fill, pct, (double)done / 1e6, (double)total / 1e6);
    if (done >= total) {
        fputc('\n', stderr);
        b->open = 0;
    }
    fflush(stderr);
}

/* Interprets \n, \t, \r and \\ in place; -1 on any other escape. */
static int unescape(char *s, size_t *len) {
    size_t o = 0;
    for (size_t i = 0; s[i]; i++) {
        if (s[i] != '\\') {
            s[o++] = s[i];
            continue;
        }
        char c = s[++i];
        if (c == 'n') s[o++] = '\n';
        else if (c == 't') s[o++] = '\t';
        else if (c == 'r') s[o++] = '\r';
        else if (c == '\\') s[o++] = '\\';
        else return -1;
    }
    s[o] = '\0';
    *len = o;
    return 0;
}

static int prepare(int argc, char **argv) {
    const char *tok_path = NULL, *out_dir = NULL, *delim_arg = NULL;
    const char **files = calloc((size_t)argc + 1, sizeof *files);
    size_t n_files = 0;
    float val_fraction = 0.1f;
    int64_t shard_tokens = LM_DATA_DEFAULT_SHARD_TOKENS;
    int quiet = 0, rc = 2;
    char *delim = NULL;
    lm_tokenizer *tok = NULL;
    if (!files) {
        cli_error("out of memory");
        return 1;
    }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v;
        if (arg_is(a, "-h", "--help")) {
            usage(stdout);
            rc = 0;
            goto done;
        } else if (arg_is(a, NULL, "--tokenizer")) {
            if (!(tok_path = arg_value(argc, argv, &i))) goto done;
        } else if (arg_is(a, "-o", "--output")) {
            if (!(out_dir = arg_value(argc, argv, &i))) goto done;
        } else if (arg_is(a, NULL, "--val-fraction")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_float(a, v, 0, 1, &val_fraction)) goto done;
            if (val_fraction >= 1) {
                cli_error("%s: must be below 1 (the train split cannot be empty)", a);
                goto done;
            }
        } else if (arg_is(a, NULL, "--delimiter")) {
            if (!(delim_arg = arg_value(argc, argv, &i))) goto done;
        } else if (arg_is(a, NULL, "--shard-tokens")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_int64(a, v, 1, LM_DATA_MAX_SHARD_TOKENS, &shard_tokens)) {
                goto done;
            }
        } else if (arg_is(a, "-q", "--quiet")) {
            quiet = 1;
        } else if (a[0] == '-' && a[1] != '\0') {
            cli_error("data prepare: unknown option '%s' (see 'llmos data prepare --help')", a);
            goto done;
        } else {
            files[n_files++] = a;
        }
    }
    if (!tok_path || !out_dir || n_files == 0) {
        cli_error("data prepare needs --tokenizer TOK.gguf, FILE... and -o DIR (see --help)");
        goto done;
    }
    size_t delim_len = 0;
    if (!delim_arg) delim_arg = "\\n\\n";
    if (strcmp(delim_arg, "none") != 0) {
        if (!(delim = strdup(delim_arg))) {
            cli_error("out of memory");
            rc = 1;
            goto done;
        }
        if (unescape(delim, &delim_len) != 0) {
            cli_error("--delimiter: '%s' has an unknown escape (only \\n, \\t, \\r and \\\\)", delim_arg);
            goto done;
        }
        if (delim_len == 0) {
            cli_error("--delimiter: empty (use 'none' for one document per file)");
            goto done;
        }
    }

    rc = 1;
    lm_error err = {0};
    lm_gguf *g;
    if (lm_gguf_open(tok_path, &g, &err)) {
        cli_error("cannot read %s: %s", tok_path, err.message);
        goto done;
    }
    lm_status st = lm_tokenizer_load(g, &tok, &err);
    lm_gguf_free(g);
    if (st) {
        cli_error("cannot load the tokenizer of %s: %s", tok_path, err.message);
        goto done;
    }

    bar b = {0};
    lm_data_prepare_params p = {0};
    p.tok = tok;
    p.files = files;
    p.n_files = n_files;
    p.out_dir = out_dir;
    p.val_fraction = val_fraction;
    p.delimiter = delim;
    p.delimiter_len = delim_len;
    p.shard_tokens = shard_tokens;
    p.progress = !quiet && isatty(STDERR_FILENO) ? show_progress : NULL;
    p.progress_user = &b;
    lm_data_prepare_stats s;
    double t0 = cli_now_seconds();
    st = lm_data_prepare(&p, &s, &err);
    if (b.open) fputc('\n', stderr);
    if (st) {
        cli_error("data prepare: %s", err.message);
        goto done;
    }
    printf("documents %lld\ntrain_documents %lld\nval_documents %lld\n", (long long)s.documents,
           (long long)s.train_documents, (long long)s.val_documents);
    printf("tokens %lld\ntrain_tokens %lld\nval_tokens %lld\n", (long long)s.tokens, (long long)s.train_tokens,
           (long long)s.val_tokens);
    printf("bytes_per_token %.4f\n", s.text_tokens > 0 ? (double)s.text_bytes / (double)s.text_tokens : 0.0);
    printf("train_shards %lld\nval_shards %lld\n", (long long)s.train_shards, (long long)s.val_shards);
    if (!quiet) {
        int64_t shards = s.train_shards + s.val_shards;
        fprintf(stderr, "wrote %lld shard%s to %s in %.2f s (%.3f MB of text)\n", (long long)shards,
                shards == 1 ? "" : "s", out_dir, cli_now_seconds() - t0,
                (double)s.input_bytes / 1e6);
        if (val_fraction > 0 && s.val_documents == 0) {
            fprintf(stderr, "note: only one document, so there is no val split\n");
        }
    }
    rc = fflush(stdout) == 0 ? 0 : 1;
done:
    lm_tokenizer_free(tok);
    free(delim);
    free(files);
    return rc;
}

int cmd_data(int argc, char **argv) {
    if (argc == 0 || arg_is(argv[0], "-h", "--help")) {
        usage_data(argc == 0 ? stderr : stdout);
        return argc == 0 ? 2 : 0;
    }
    if (strcmp(argv[0], "prepare") == 0) return prepare(argc - 1, argv + 1);
    cli_error("data: unknown subcommand '%s' (supported: prepare)", argv[0]);
    return 2;
}
