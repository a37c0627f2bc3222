/* llmos convert: other checkpoint formats -> GGUF. */
#include "args.h"
#include "commands.h"
#include "llmos/convert.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: llmos convert llama2c CHECKPOINT.bin TOKENIZER.bin -o OUT.gguf [options]\n"
            "\n"
            "Converts a llama2.c checkpoint (legacy header or version-1 \"ak42\") and its\n"
            "tokenizer.bin into a GGUF file for architecture 'llama', with the metadata\n"
            "keys, tensor names and layouts llama.cpp uses. The output is written atomically.\n"
            "\n"
            "options:\n"
            "  -o, --output FILE          the GGUF file to write (required)\n"
            "      --context-length N     llama.context_length (default: the checkpoint's seq_len)\n"
            "      --name NAME            general.name (default: llama)\n"
            "  -h, --help                 this help\n");
}

int cmd_convert(int argc, char **argv) {
    const char *pos[3] = {0}, *out = NULL;
    int n_pos = 0;
    lm_convert_llama2c_options opt = {0, NULL};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v;
        if (arg_is(a, "-h", "--help")) {
            usage(stdout);
            return 0;
        } else if (arg_is(a, "-o", "--output")) {
            if (!(out = arg_value(argc, argv, &i))) return 2;
        } else if (arg_is(a, NULL, "--context-length")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_int64(a, v, 1, UINT32_MAX, &opt.context_length)) return 2;
        } else if (arg_is(a, NULL, "--name")) {
            if (!(opt.name = arg_value(argc, argv, &i))) return 2;
        } else if (a[0] == '-' && a[1] != '\0') {
            cli_error("convert: unknown option '%s' (see 'llmos convert --help')", a);
            return 2;
        } else if (n_pos < 3) {
            pos[n_pos++] = a;
        } else {
            cli_error("convert: unexpected argument '%s'", a);
            return 2;
        }
    }
    if (n_pos == 0) {
        usage(stderr);
        return 2;
    }
    if (strcmp(pos[0], "llama2c") != 0) {
        cli_error("convert: unknown source format '%s' (supported: llama2c)", pos[0]);
        return 2;
    }
    if (n_pos != 3 || !out) {
        cli_error("convert llama2c needs CHECKPOINT.bin TOKENIZER.bin -o OUT.gguf");
        return 2;
    }
    lm_error err = {0};
    if (lm_convert_llama2c(pos[1], pos[2], out, &opt, &err)) {
        cli_error("convert: %s", err.message);
        return 1;
    }
    fprintf(stderr, "wrote %s\n", out);
    return 0;
}
