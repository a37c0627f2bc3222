/* A toolbox: the tools a conversation may call, enabled by name, and one
 * call run from end to end (the arguments parsed and checked against the
 * tool's JSON Schema, the tool run, its result or error as text for a `tool`
 * message). Used by the chat session's tool loop (chat_session.h), so by
 * `llmos chat --tools` and the server alike. */
#ifndef LLMOS_TOOLBOX_H
#define LLMOS_TOOLBOX_H

#include "llmos/base.h"
#include "llmos/tool.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LM_TOOLBOX_MAX 8

typedef struct lm_toolbox {
    lm_tool tools[LM_TOOLBOX_MAX];
    size_t n;
    char *tools_json; /* the OpenAI-style tools array for the chat template (lm_tools_json) */
} lm_toolbox;

/* Enables the comma-separated tools of list: calculator, code (the default
 * sandbox limits), search (over the .txt/.md files of folder, indexed at
 * folder/.llmos-search.db; folder is required for it). LM_ERR_ARG names an
 * unknown, empty or repeated name; a tool that cannot start (an unreadable
 * folder) fails with its error. On failure tb is left empty. */
lm_status lm_toolbox_init(lm_toolbox *tb, const char *list, const char *folder, lm_error *err);
void lm_toolbox_free(lm_toolbox *tb);

/* The enabled tool called name, or NULL. */
const lm_tool *lm_toolbox_find(const lm_toolbox *tb, const char *name);

/* Runs the call whose JSON (as the model wrote it between the tags) is
 * call_json[0..n): {"name": ..., "arguments": {...}}. *result gets the text of
 * the tool message: the tool's output, or "error: WHY" for a malformed call, a
 * tool that is not enabled, arguments that do not match the schema, or a
 * refusal by the tool (division by zero, a sandbox limit); *is_error says
 * which. *name and *arguments get the call's name and compact arguments (NULL
 * when the call does not parse). All three are malloc'd. Fails (non-LM_OK, all
 * outputs NULL) only when out of memory or when a tool cannot work at all. */
lm_status lm_toolbox_run(const lm_toolbox *tb, const char *call_json, size_t n, char **name, char **arguments,
                         char **result, int *is_error, lm_error *err);

#ifdef __cplusplus
}
#endif
#endif
