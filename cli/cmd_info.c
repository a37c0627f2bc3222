/* llmos info: a GGUF file's header, metadata and tensor table, like gguf-dump. */
#include "args.h"
#include "commands.h"
#include "llmos/gguf.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: llmos info MODEL.gguf [--all]\n"
            "\n"
            "Prints the GGUF header, every metadata key with its type and value, and the\n"
            "tensor table (name, type, shape in ggml order, data offset, bytes).\n"
            "\n"
            "options:\n"
            "      --all      print every element of arrays (default: the first 8)\n"
            "  -h, --help     this help\n");
}

/* Prints a string from the file with control characters escaped. */
static void print_escaped(lm_str s, uint64_t max) {
    putchar('"');
    for (uint64_t i = 0; i < s.len && i < max; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c == '\n') fputs("\\n", stdout);
        else if (c == '\t') fputs("\\t", stdout);
        else if (c < 0x20 || c == 0x7f) printf("\\x%02x", c);
        else putchar(c);
    }
    if (s.len > max) fputs("...", stdout);
    putchar('"');
}

static void print_element(const lm_gguf *g, int64_t k, uint64_t j) {
    lm_gguf_type t = lm_gguf_arr_type(g, k);
    if (t == LM_GGUF_STRING) print_escaped(lm_gguf_get_str(g, k, j), 200);
    else if (t == LM_GGUF_FLOAT32 || t == LM_GGUF_FLOAT64) printf("%.9g", lm_gguf_get_f64(g, k, j));
    else if (t == LM_GGUF_BOOL) fputs(lm_gguf_get_i64(g, k, j) ? "true" : "false", stdout);
    else if (t == LM_GGUF_UINT64) {
        uint64_t v;
        memcpy(&v, (const uint8_t *)lm_gguf_arr_data(g, k) + j * 8, 8);
        printf("%llu", (unsigned long long)v);
    }
    else printf("%lld", (long long)lm_gguf_get_i64(g, k, j));
}

int cmd_info(int argc, char **argv) {
    const char *path = NULL;
    int all = 0;
    for (int i = 0; i < argc; i++) {
        if (arg_is(argv[i], "-h", "--help")) {
            usage(stdout);
            return 0;
        } else if (arg_is(argv[i], NULL, "--all")) {
            all = 1;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            cli_error("info: unknown option '%s' (see 'llmos info --help')", argv[i]);
            return 2;
        } else if (!path) {
            path = argv[i];
        } else {
            cli_error("info: unexpected argument '%s'", argv[i]);
            return 2;
        }
    }
    if (!path) {
        usage(stderr);
        return 2;
    }
    lm_gguf *g;
    lm_error err = {0};
    if (lm_gguf_open(path, &g, &err)) {
        cli_error("cannot read %s: %s", path, err.message);
        return 1;
    }
    printf("file: %s\nGGUF version %u, %llu bytes, alignment %llu, data at offset %llu\n", path, lm_gguf_version(g),
           (unsigned long long)lm_gguf_file_size(g), (unsigned long long)lm_gguf_alignment(g),
           (unsigned long long)lm_gguf_data_offset(g));
    printf("\n%lld metadata keys:\n", (long long)lm_gguf_kv_count(g));
    for (int64_t k = 0; k < lm_gguf_kv_count(g); k++) {
        lm_gguf_type t = lm_gguf_kv_type(g, k);
        printf("  %-45s ", lm_gguf_key(g, k));
        if (t == LM_GGUF_ARRAY) {
            uint64_t n = lm_gguf_arr_len(g, k), show = all ? n : (n < 8 ? n : 8);
            printf("arr[%s,%llu] [", lm_gguf_type_name(lm_gguf_arr_type(g, k)), (unsigned long long)n);
            for (uint64_t j = 0; j < show; j++) {
                if (j) fputs(", ", stdout);
                print_element(g, k, j);
            }
            fputs(show < n ? ", ...]\n" : "]\n", stdout);
        } else {
            printf("%-4s ", lm_gguf_type_name(t));
            print_element(g, k, 0);
            putchar('\n');
        }
    }
    printf("\n%lld tensors:\n", (long long)lm_gguf_tensor_count(g));
    printf("  %-5s %-32s %-7s %-28s %12s %12s\n", "#", "name", "type", "shape", "offset", "bytes");
    for (int64_t i = 0; i < lm_gguf_tensor_count(g); i++) {
        const lm_gguf_tensor *t = lm_gguf_tensor_at(g, i);
        char shape[96];
        int n = snprintf(shape, sizeof shape, "[");
        for (uint32_t d = 0; d < t->n_dims; d++) {
            n += snprintf(shape + n, sizeof shape - (size_t)n, "%s%lld", d ? ", " : "", (long long)t->ne[d]);
        }
        snprintf(shape + n, sizeof shape - (size_t)n, "]");
        printf("  %-5lld %-32s %-7s %-28s %12llu %12llu\n", (long long)i, t->name, lm_type_get_info(t->type)->name, shape,
               (unsigned long long)t->offset, (unsigned long long)t->n_bytes);
    }
    lm_gguf_free(g);
    return 0;
}
