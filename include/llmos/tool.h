/* Tools the model can call (the "peripherals"): each is a module with a
 * name, a description, the JSON Schema of its arguments (OpenAI's function
 * "parameters"), limits, and a call that takes the arguments as JSON text
 * and returns text for a `tool` message.
 *
 * Arguments come from model output and results go back into the context:
 * both are untrusted. A call never crashes on bad arguments: it returns
 * LM_OK with is_error set and a message the model can read ("division by
 * zero", "instruction limit reached"), and fails (non-LM_OK) only when the
 * tool itself cannot work (out of memory, an unreadable index). */
#ifndef LLMOS_TOOL_H
#define LLMOS_TOOL_H

#include "llmos/base.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lm_tool_result {
    char *text;   /* malloc'd, NUL-terminated UTF-8 */
    size_t len;
    int is_error; /* 1: text explains why the call did not succeed */
} lm_tool_result;

void lm_tool_result_free(lm_tool_result *r);

typedef struct lm_tool {
    const char *name;              /* "calculator", "code", "search" */
    const char *description;       /* one sentence for the model and the user */
    const char *parameters_schema; /* JSON Schema (an object) of the arguments */
    lm_status (*call)(void *state, const char *args_json, lm_tool_result *out, lm_error *err);
    void (*free_state)(void *state);
    void *state;
} lm_tool;

/* Frees the tool's state (the struct itself is the caller's). */
void lm_tool_free(lm_tool *t);

#ifdef __cplusplus
}
#endif
#endif
