/* llmos tool: list the tools and call one by hand, as the model would. */
#include "args.h"
#include "commands.h"
#include "llmos/calculator.h"
#include "llmos/code_tool.h"
#include "llmos/search.h"
#include "llmos/tool.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: llmos tool list [--folder DIR]\n"
            "       llmos tool call NAME ARGS_JSON [--folder DIR] [--index FILE]\n"
            "\n"
            "The tools a model can call: 'list' prints each one's name, description and the JSON\n"
            "Schema of its arguments; 'call' runs one on arguments given as JSON, as the chat loop\n"
            "does with a model's call, and prints the result. A call the tool refuses (bad\n"
            "arguments, division by zero, a sandbox limit) prints its error and exits 1.\n"
            "\n"
            "tools:\n"
            "  calculator   exact arithmetic: {\"expression\": \"2^100 / 3\"}\n"
            "  code         a Lua 5.4 snippet in a sandbox: {\"code\": \"return 6 * 7\"}\n"
            "  search       full-text search of the .txt/.md files of --folder DIR: {\"query\": \"...\", \"k\": 3}\n"
            "\n"
            "options:\n"
            "      --folder DIR   the documents of the search tool (indexed incrementally)\n"
            "      --index FILE   where the search index lives (default DIR/.llmos-search.db)\n"
            "  -h, --help         this help\n");
}

/* Makes the tool called name; 0 or -1 after printing the error. */
static int make_tool(const char *name, const char *folder, const char *index, lm_tool *t) {
    lm_error err = {0};
    lm_status st;
    memset(t, 0, sizeof *t);
    if (strcmp(name, "calculator") == 0) {
        st = lm_tool_calculator(t, &err);
    } else if (strcmp(name, "code") == 0) {
        lm_code_limits lim = lm_code_limits_default();
        st = lm_tool_code(t, &lim, &err);
    } else if (strcmp(name, "search") == 0) {
        if (!folder) {
            cli_error("tool: search needs --folder DIR");
            return -1;
        }
        st = lm_tool_search(t, folder, index, &err);
    } else {
        cli_error("tool: unknown tool '%s' (calculator, code, search)", name);
        return -1;
    }
    if (st) {
        cli_error("tool: %s: %s", name, err.message);
        return -1;
    }
    return 0;
}

int cmd_tool(int argc, char **argv) {
    const char *pos[3] = {NULL, NULL, NULL}, *folder = NULL, *index = NULL;
    int n_pos = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (arg_is(a, "-h", "--help")) {
            usage(stdout);
            return 0;
        } else if (arg_is(a, NULL, "--folder")) {
            if (!(folder = arg_value(argc, argv, &i))) return 2;
        } else if (arg_is(a, NULL, "--index")) {
            if (!(index = arg_value(argc, argv, &i))) return 2;
        } else if (a[0] == '-' && a[1] && n_pos < 2) {
            cli_error("tool: unknown option '%s' (see 'llmos tool --help')", a);
            return 2;
        } else if (n_pos < 3) {
            pos[n_pos++] = a;
        } else {
            cli_error("tool: unexpected argument '%s' (see 'llmos tool --help')", a);
            return 2;
        }
    }
    if (n_pos == 1 && strcmp(pos[0], "list") == 0) {
        const char *names[] = {"calculator", "code", "search"};
        for (int i = 0; i < 3; i++) {
            lm_tool t;
            if (i == 2 && !folder) {
                printf("search\n  (needs --folder DIR)\n");
                continue;
            }
            if (make_tool(names[i], folder, index, &t)) return 1;
            printf("%s\n  %s\n  arguments: %s\n", t.name, t.description, t.parameters_schema);
            lm_tool_free(&t);
        }
        return 0;
    }
    if (n_pos != 3 || strcmp(pos[0], "call") != 0) {
        usage(stderr);
        return 2;
    }
    lm_tool t;
    if (make_tool(pos[1], folder, index, &t)) return 1;
    lm_tool_result r = {0};
    lm_error err = {0};
    lm_status st = t.call(t.state, pos[2], &r, &err);
    int rc = 0;
    if (st) {
        cli_error("tool: %s: %s", pos[1], err.message);
        rc = 1;
    } else if (r.is_error) {
        cli_error("tool: %s: %s", pos[1], r.text ? r.text : "error");
        rc = 1;
    } else {
        fwrite(r.text, 1, r.len, stdout);
        if (r.len == 0 || r.text[r.len - 1] != '\n') fputc('\n', stdout);
    }
    lm_tool_result_free(&r);
    lm_tool_free(&t);
    return rc;
}
