/* The tools a conversation may call, and one call run end to end (llmos/toolbox.h). */
#include "llmos/toolbox.h"

#include "llmos/calculator.h"
#include "llmos/code_tool.h"
#include "llmos/search.h"
#include "llmos/tool_call.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

lm_status lm_toolbox_init(lm_toolbox *tb, const char *list, const char *folder, lm_error *err) {
    memset(tb, 0, sizeof *tb);
    const char *at = list ? list : "";
    lm_status st = LM_OK;
    while (!st) {
        const char *end = strchr(at, ',');
        size_t len = end ? (size_t)(end - at) : strlen(at);
        if (len == 0) {
            st = lm_error_set(err, LM_ERR_ARG, "an empty tool name (the list is comma-separated: calculator,code,search)");
            break;
        }
        if (tb->n == LM_TOOLBOX_MAX) {
            st = lm_error_set(err, LM_ERR_LIMIT, "at most %d tools", LM_TOOLBOX_MAX);
            break;
        }
        for (size_t i = 0; i < tb->n && !st; i++) {
            if (strlen(tb->tools[i].name) == len && memcmp(tb->tools[i].name, at, len) == 0)
                st = lm_error_set(err, LM_ERR_ARG, "tool '%.*s' is named twice", (int)len, at);
        }
        if (st) break;
        lm_tool *tool = &tb->tools[tb->n];
        if (len == 10 && memcmp(at, "calculator", 10) == 0) {
            st = lm_tool_calculator(tool, err);
        } else if (len == 4 && memcmp(at, "code", 4) == 0) {
            lm_code_limits lim = lm_code_limits_default();
            st = lm_tool_code(tool, &lim, err);
        } else if (len == 6 && memcmp(at, "search", 6) == 0) {
            st = folder ? lm_tool_search(tool, folder, NULL, err)
                        : lm_error_set(err, LM_ERR_ARG, "the search tool needs a folder of documents");
        } else {
            st = lm_error_set(err, LM_ERR_ARG, "unknown tool '%.*s' (calculator, code, search)", (int)len, at);
        }
        if (st) break;
        tb->n++;
        if (!end) break;
        at = end + 1;
    }
    if (!st) st = lm_tools_json(tb->tools, tb->n, &tb->tools_json, err);
    if (st) lm_toolbox_free(tb);
    return st;
}

void lm_toolbox_free(lm_toolbox *tb) {
    for (size_t i = 0; i < tb->n; i++) lm_tool_free(&tb->tools[i]);
    free(tb->tools_json);
    memset(tb, 0, sizeof *tb);
}

const lm_tool *lm_toolbox_find(const lm_toolbox *tb, const char *name) {
    for (size_t i = 0; tb && i < tb->n; i++) {
        if (strcmp(tb->tools[i].name, name) == 0) return &tb->tools[i];
    }
    return NULL;
}

/* "error: WHY", malloc'd. */
static char *error_text(const char *why) {
    size_t n = strlen(why) + 8;
    char *s = malloc(n);
    if (s) snprintf(s, n, "error: %s", why);
    return s;
}

lm_status lm_toolbox_run(const lm_toolbox *tb, const char *call_json, size_t n, char **name, char **arguments,
                         char **result, int *is_error, lm_error *err) {
    *name = *arguments = *result = NULL;
    *is_error = 1;
    lm_error perr = {0};
    if (lm_tool_call_parse(call_json, n, name, arguments, &perr)) {
        if (!(*result = error_text(perr.message))) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
        return LM_OK;
    }
    const lm_tool *tool = lm_toolbox_find(tb, *name);
    char why[256];
    lm_tool_result r = {0};
    lm_status st = LM_OK;
    if (!tool) {
        snprintf(why, sizeof why, "no tool named '%.64s' is enabled", *name);
        *result = error_text(why);
    } else if (lm_tool_args_validate(tool->parameters_schema, *arguments, why, sizeof why)) {
        *result = error_text(why);
    } else if ((st = tool->call(tool->state, *arguments, &r, err))) {
        lm_error_prefix(err, st, "tool %s: ", *name);
    } else {
        *is_error = r.is_error;
        *result = r.is_error ? error_text(r.text ? r.text : "failed") : strdup(r.text ? r.text : "");
    }
    lm_tool_result_free(&r);
    if (!st && !*result) st = lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    if (st) {
        free(*name), free(*arguments), free(*result);
        *name = *arguments = *result = NULL;
    }
    return st;
}
