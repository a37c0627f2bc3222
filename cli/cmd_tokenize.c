/* llmos tokenize: text -> token ids with any GGUF's tokenizer (vocab-only files too). */
#include "args.h"
#include "commands.h"
#include "llmos/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: llmos tokenize MODEL.gguf [TEXT | --file FILE] [options]\n"
            "\n"
            "Tokenizes TEXT (or FILE, or standard input when neither is given) with the\n"
            "tokenizer in MODEL.gguf; the file may hold only a vocabulary.\n"
            "Without --ids: one line per token, 'ID<TAB>PIECE', the piece being the bytes\n"
            "the token stands for with \\n, \\t, \\r, \\\\ and other control or non-UTF-8\n"
            "bytes escaped (\\xNN).\n"
            "\n"
            "options:\n"
            "      --ids          print only the ids, separated by single spaces, on one line\n"
            "      --no-bos       do not add BOS/EOS (or [CLS]/[SEP]) even if the metadata asks\n"
            "      --special      treat the text as trusted: control tokens written in it\n"
            "                     (<s>, <|endoftext|>, ...) become control tokens\n"
            "  -f, --file FILE    read the text from FILE\n"
            "  -h, --help         this help\n");
}

/* Prints bytes so that one token stays on one line and invalid UTF-8 shows. */
static void print_piece(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        size_t seq = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        int valid = seq > 1 && i + seq <= n;
        for (size_t k = 1; valid && k < seq; k++) valid = ((unsigned char)s[i + k] & 0xc0) == 0x80;
        if (valid) {
            fwrite(s + i, 1, seq, stdout);
            i += seq - 1;
        } else if (c == '\n') fputs("\\n", stdout);
        else if (c == '\t') fputs("\\t", stdout);
        else if (c == '\r') fputs("\\r", stdout);
        else if (c == '\\') fputs("\\\\", stdout);
        else if (c < 0x20 || c >= 0x7f) printf("\\x%02x", c);
        else putchar(c);
    }
}

int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *text_arg = NULL, *file = NULL;
    int ids_only = 0, special = 0, no_bos = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (arg_is(a, "-h", "--help")) {
            usage(stdout);
            return 0;
        } else if (arg_is(a, NULL, "--ids")) {
            ids_only = 1;
        } else if (arg_is(a, NULL, "--special")) {
            special = 1;
        } else if (arg_is(a, NULL, "--no-bos")) {
            no_bos = 1;
        } else if (arg_is(a, "-f", "--file")) {
            if (!(file = arg_value(argc, argv, &i))) return 2;
        } else if (a[0] == '-' && a[1] != '\0') {
            cli_error("tokenize: unknown option '%s' (see 'llmos tokenize --help')", a);
            return 2;
        } else if (!model) {
            model = a;
        } else if (!text_arg) {
            text_arg = a;
        } else {
            cli_error("tokenize: unexpected argument '%s' (quote the text)", a);
            return 2;
        }
    }
    if (!model) {
        usage(stderr);
        return 2;
    }
    if (text_arg && file) {
        cli_error("tokenize: give TEXT or --file, not both");
        return 2;
    }
    char *text;
    size_t len;
    if (text_arg) {
        len = strlen(text_arg);
        text = malloc(len + 1);
        if (text) memcpy(text, text_arg, len + 1);
    } else {
        text = cli_read_all(file, &len);
    }
    if (!text) {
        cli_error("tokenize: cannot read %s", file ? file : "standard input");
        return 1;
    }
    lm_error err = {0};
    lm_gguf *g;
    lm_tokenizer *tok = NULL;
    if (lm_gguf_open(model, &g, &err)) {
        cli_error("cannot read %s: %s", model, err.message);
        free(text);
        return 1;
    }
    lm_status st = lm_tokenizer_load(g, &tok, &err);
    lm_gguf_free(g);
    if (st) {
        cli_error("cannot load the tokenizer of %s: %s", model, err.message);
        free(text);
        return 1;
    }
    int32_t *ids;
    size_t n;
    unsigned flags = (no_bos ? 0 : LM_ENCODE_ADD_SPECIAL) | (special ? LM_ENCODE_PARSE_SPECIAL : 0);
    st = lm_tokenizer_encode(tok, text, len, flags, &ids, &n, &err);
    free(text);
    if (st) {
        cli_error("tokenize: %s", err.message);
        lm_tokenizer_free(tok);
        return 1;
    }
    size_t cap = lm_tokenizer_max_piece_len(tok);
    char *piece = malloc(cap);
    for (size_t i = 0; i < n; i++) {
        if (ids_only) {
            printf(i ? " %d" : "%d", ids[i]);
        } else {
            int64_t k = piece ? lm_tokenizer_decode_token(tok, ids[i], LM_DECODE_SPECIAL, piece, cap) : 0;
            printf("%d\t", ids[i]);
            print_piece(piece, k > 0 ? (size_t)k : 0);
            putchar('\n');
        }
    }
    if (ids_only) putchar('\n');
    free(piece);
    free(ids);
    lm_tokenizer_free(tok);
    return fflush(stdout) == 0 ? 0 : 1;
}
