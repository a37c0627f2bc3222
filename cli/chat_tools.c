/* The tool loop's pieces for `llmos chat --tools` (chat_tools.h). */
#include "chat_tools.h"

#include "args.h"
#include "llmos/calculator.h"
#include "llmos/code_tool.h"
#include "llmos/search.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int chat_tools_init(chat_tools *t, const char *list, const char *folder) {
    memset(t, 0, sizeof *t);
    lm_error err = {0};
    const char *at = list;
    while (*at) {
        const char *end = strchr(at, ',');
        size_t len = end ? (size_t)(end - at) : strlen(at);
        lm_status st = LM_OK;
        if (len == 0) {
            cli_error("chat: --tools: an empty tool name (the list is comma-separated: calculator,code,search)");
            return -1;
        }
        if (t->n == CHAT_MAX_TOOLS) {
            cli_error("chat: --tools: at most %d tools", CHAT_MAX_TOOLS);
            return -1;
        }
        for (size_t i = 0; i < t->n; i++) {
            if (strlen(t->tools[i].name) == len && memcmp(t->tools[i].name, at, len) == 0) {
                cli_error("chat: --tools: '%.*s' is named twice", (int)len, at);
                return -1;
            }
        }
        lm_tool *tool = &t->tools[t->n];
        if (len == 10 && memcmp(at, "calculator", 10) == 0) {
            st = lm_tool_calculator(tool, &err);
        } else if (len == 4 && memcmp(at, "code", 4) == 0) {
            lm_code_limits lim = lm_code_limits_default();
            st = lm_tool_code(tool, &lim, &err);
        } else if (len == 6 && memcmp(at, "search", 6) == 0) {
            if (!folder) {
                cli_error("chat: the search tool needs --tool-folder DIR");
                return -1;
            }
            st = lm_tool_search(tool, folder, NULL, &err);
        } else {
            cli_error("chat: --tools: unknown tool '%.*s' (calculator, code, search)", (int)len, at);
            return -1;
        }
        if (st) {
            cli_error("chat: tool %.*s: %s", (int)len, at, err.message);
            return -1;
        }
        t->n++;
        at = end ? end + 1 : at + len;
    }
    if (t->n == 0) {
        cli_error("chat: --tools: no tool named (calculator, code, search)");
        return -1;
    }
    if (lm_tools_json(t->tools, t->n, &t->tools_json, &err)) {
        cli_error("chat: %s", err.message);
        return -1;
    }
    return 0;
}

void chat_tools_free(chat_tools *t) {
    for (size_t i = 0; i < t->n; i++) lm_tool_free(&t->tools[i]);
    lm_tool_call_scanner_free(t->scanner);
    free(t->tools_json);
    free(t->call);
    memset(t, 0, sizeof *t);
}

static lm_status on_text(void *user, const char *text, size_t n) {
    (void)user;
    fwrite(text, 1, n, stdout);
    fflush(stdout);
    return LM_OK;
}

static lm_status on_call(void *user, const char *call, size_t n) {
    chat_tools *t = user;
    if (t->call) return LM_OK; /* one call per answer: the loop stops generating after the first */
    if (!(t->call = malloc(n + 1))) return LM_ERR_NOMEM;
    memcpy(t->call, call, n);
    t->call[n] = 0;
    t->call_len = n;
    return LM_OK;
}

int chat_tools_begin(chat_tools *t) {
    lm_error err = {0};
    lm_tool_call_scanner_free(t->scanner);
    t->scanner = NULL;
    free(t->call);
    t->call = NULL;
    if (lm_tool_call_scanner_init(&t->scanner, 0, on_text, on_call, t, &err)) {
        cli_error("chat: %s", err.message);
        return -1;
    }
    return 0;
}

int chat_tools_push(chat_tools *t, const char *text, size_t n) {
    lm_error err = {0};
    if (lm_tool_call_scanner_push(t->scanner, text, n, &err)) {
        fprintf(stderr, "\n(tool call refused: %s)\n", err.message);
        return -1;
    }
    return 0;
}

void chat_tools_end(chat_tools *t) {
    lm_error err = {0};
    if (t->scanner && lm_tool_call_scanner_finish(t->scanner, &err)) fprintf(stderr, "\n(%s)\n", err.message);
}

/* "error: MESSAGE" as the tool message's text. */
static char *error_text(const char *msg) {
    size_t n = strlen(msg) + 8;
    char *s = malloc(n);
    if (s) snprintf(s, n, "error: %s", msg);
    return s;
}

char *chat_tools_run(chat_tools *t) {
    lm_error err = {0};
    char *name = NULL, *args = NULL, *text = NULL;
    if (lm_tool_call_parse(t->call, t->call_len, &name, &args, &err)) {
        text = error_text(err.message);
        fprintf(stderr, "[tool] malformed call: %s\n", err.message);
        return text;
    }
    const lm_tool *tool = NULL;
    for (size_t i = 0; i < t->n; i++) {
        if (strcmp(t->tools[i].name, name) == 0) tool = &t->tools[i];
    }
    char why[256];
    lm_tool_result r = {0};
    if (!tool) {
        snprintf(why, sizeof why, "no tool named '%.64s' is enabled", name);
        text = error_text(why);
    } else if (lm_tool_args_validate(tool->parameters_schema, args, why, sizeof why)) {
        text = error_text(why);
    } else if (tool->call(tool->state, args, &r, &err)) {
        text = error_text(err.message);
    } else {
        text = r.is_error ? error_text(r.text ? r.text : "failed") : strdup(r.text ? r.text : "");
    }
    fprintf(stderr, "[tool] %s %s -> %s\n", name, args, text ? text : "(out of memory)");
    lm_tool_result_free(&r);
    free(name);
    free(args);
    return text;
}
