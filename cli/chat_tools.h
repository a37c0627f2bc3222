/* `llmos chat --tools`: the enabled tools, the scanner that finds a
 * <tool_call> in the answer being generated, and running a captured call. */
#ifndef LLMOS_CLI_CHAT_TOOLS_H
#define LLMOS_CLI_CHAT_TOOLS_H

#include "llmos/tool.h"
#include "llmos/tool_call.h"

#include <stddef.h>

enum { CHAT_MAX_TOOLS = 3, CHAT_MAX_CALLS_PER_TURN = 8 };

typedef struct chat_tools {
    lm_tool tools[CHAT_MAX_TOOLS];
    size_t n;
    char *tools_json;              /* the OpenAI-style array for templates that render tools */
    lm_tool_call_scanner *scanner; /* reset for each answer */
    char *call;                    /* the call captured in this answer, or NULL */
    size_t call_len;
} chat_tools;

/* Enables the comma-separated tools of list (calculator, code, search; search needs
 * folder). 0, or -1 after printing the error. */
int chat_tools_init(chat_tools *t, const char *list, const char *folder);
void chat_tools_free(chat_tools *t);

/* Starts a new answer: a fresh scanner whose text goes to stdout. 0 or -1. */
int chat_tools_begin(chat_tools *t);
/* Feeds generated text; 0, or -1 when the scanner failed (the message is printed). */
int chat_tools_push(chat_tools *t, const char *text, size_t n);
/* The end of an answer without a call: flushes held-back text. */
void chat_tools_end(chat_tools *t);

/* Runs the captured call (parse, check the arguments against the tool's schema,
 * call): the text of the `tool` message that answers it, malloc'd, or NULL when
 * out of memory. Every call and result is logged to stderr. */
char *chat_tools_run(chat_tools *t);

#endif
