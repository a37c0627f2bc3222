/* Conversations: chat data for fine-tuning, read from JSONL.
 *
 * Each non-blank line of the file is one conversation, in either form:
 *   {"messages": [{"role": "user", "content": "..."}, ...], "tools": [...]}
 *                                       (OpenAI; "tools" optional, other keys ignored)
 *   [{"role": "user", "content": "..."}, ...]                      (a bare array of messages)
 * Roles are "system", "user", "assistant" and "tool". An assistant message may
 * carry OpenAI-style tool calls,
 *   "tool_calls": [{"id": "...", "type": "function",
 *                   "function": {"name": "...", "arguments": "{...}"}}, ...]
 * and a tool message a "tool_call_id". Content is a string; only an assistant
 * message with tool calls may have null (or no) content. Other keys of a
 * message are ignored.
 *
 * The file is untrusted input. A line is bad when it is longer than the line
 * cap, is not UTF-8, is not valid JSON (raw control characters in strings and
 * "\u0000" included), has the wrong shape, names an unknown role, has a
 * content that is not a string, a key given twice, more messages than the
 * cap (or more JSON values than LM_CONV_MAX_JSON_VALUES), no messages, or no
 * assistant message. A bad line is never silently
 * dropped: with strict set the whole read fails with an error naming the line
 * and the reason; otherwise the line is skipped and recorded (line number and
 * reason) in the set's skipped list, and passed to the callback if one is
 * given. Blank lines (only spaces, tabs, CR) are not conversations and not
 * bad. Lines end at LF; a CR before it is dropped; a UTF-8 byte-order mark at
 * the start of the file is ignored. Memory is bounded: one line at a time is
 * held besides the result, and every count has a cap. */
#ifndef LLMOS_CONVERSATION_H
#define LLMOS_CONVERSATION_H

#include "llmos/base.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LM_CONV_MAX_LINE_BYTES ((size_t)16 << 20)        /* 16 MiB per line, CR/LF excluded */
#define LM_CONV_MAX_MESSAGES 10000                       /* messages per conversation */
#define LM_CONV_MAX_TOOL_CALLS 1000                      /* tool calls per message */
#define LM_CONV_MAX_JSON_VALUES 1000000                /* JSON values per line (bounds cJSON's tree) */
#define LM_CONV_MAX_CONVERSATIONS ((int64_t)10000000)    /* conversations per file */
#define LM_CONV_MAX_SKIPPED ((int64_t)1000000)           /* bad lines recorded per file */

typedef enum lm_chat_role {
    LM_CHAT_SYSTEM = 0,
    LM_CHAT_USER = 1,
    LM_CHAT_ASSISTANT = 2,
    LM_CHAT_TOOL = 3
} lm_chat_role;

/* "system", "user", "assistant", "tool" (or "unknown"). */
const char *lm_chat_role_name(lm_chat_role role);
/* The role named by the n bytes at name; 0 if it is one of the four, else -1. */
int lm_chat_role_parse(const char *name, size_t n, lm_chat_role *out);

typedef struct lm_conv_tool_call {
    char *id;        /* NULL when the call has no "id" */
    char *name;      /* the function's name, non-empty */
    char *arguments; /* the arguments as JSON text, as written in the file ("" when absent);
                        an arguments object (not the OpenAI string form) is stored as compact JSON */
} lm_conv_tool_call;

typedef struct lm_conv_message {
    lm_chat_role role;
    char *content;      /* UTF-8, NUL-terminated, no NUL inside; NULL only for an assistant
                           message with tool calls whose content is null or absent */
    size_t content_len; /* strlen(content), 0 when content is NULL */
    lm_conv_tool_call *tool_calls; /* assistant only; NULL when n_tool_calls is 0 */
    int32_t n_tool_calls;
    char *tool_call_id; /* tool messages: the "tool_call_id", or NULL when absent */
} lm_conv_message;

typedef struct lm_conversation {
    lm_conv_message *messages; /* n_messages >= 1, at least one of them an assistant message
                                  (preference pairs: the prompt, no assistant message needed) */
    int32_t n_messages;
    char *chosen, *rejected;   /* preference pairs only: the two answers to the prompt; else NULL */
    char *tools_json; /* the object form's "tools" (OpenAI tool objects) as compact JSON, or NULL */
    int64_t line; /* 1-based line of the file it came from */
} lm_conversation;

typedef struct lm_conversation_skip {
    int64_t line; /* 1-based */
    char *reason; /* e.g. "message 2: unknown role \"bot\"" */
} lm_conversation_skip;

typedef struct lm_conversation_set {
    lm_conversation *items; /* in file order */
    int64_t n;
    lm_conversation_skip *skipped; /* bad lines skipped (non-strict reads), in file order */
    int64_t n_skipped;
    int64_t n_lines; /* lines in the file, blank ones included */
} lm_conversation_set;

/* Called once per skipped line, in file order (non-strict reads only). */
typedef void (*lm_conversation_skip_fn)(void *user, int64_t line, const char *reason);

typedef struct lm_conversation_read_options {
    int strict;                  /* 1: the first bad line fails the read */
    size_t max_line_bytes;       /* 0: LM_CONV_MAX_LINE_BYTES */
    int32_t max_messages;        /* 0: LM_CONV_MAX_MESSAGES; at most that */
    int64_t max_conversations;   /* 0: LM_CONV_MAX_CONVERSATIONS */
    int64_t max_skipped;         /* 0: LM_CONV_MAX_SKIPPED */
    int pairs;                   /* 1: lines are preference pairs (see below) */
    lm_conversation_skip_fn on_skip; /* may be NULL */
    void *user;
} lm_conversation_read_options;

/* Reads path (see the top of this file). strict: 0 skips and records bad
 * lines, 1 fails on the first with LM_ERR_FORMAT and a message
 * "PATH:LINE: REASON". Also fails with LM_ERR_IO when the file cannot be read,
 * and LM_ERR_LIMIT past max_conversations conversations or max_skipped bad
 * lines. A file with no conversation at all is not an error (n == 0). On
 * success *out is a new set for lm_conversation_set_free; on failure it is
 * NULL. */
lm_status lm_conversations_read(const char *path, int strict, lm_conversation_set **out, lm_error *err);

/* The same with explicit limits and a skip callback; opts may be NULL (the
 * defaults, non-strict). Limits above the defaults are clamped to them.
 *
 * With opts->pairs each line is a preference pair for DPO, an object with
 *   the prompt: "prompt" (a string: one user message) or "messages" (an
 *     array of messages, as above, no assistant message required), and
 *   "chosen" and "rejected": each a string, an assistant message object, or
 *     an array of messages whose last is the assistant's answer.
 * The prompt goes into messages, the answers into chosen and rejected. */
lm_status lm_conversations_read_ex(const char *path, const lm_conversation_read_options *opts,
                                   lm_conversation_set **out, lm_error *err);

void lm_conversation_set_free(lm_conversation_set *set);
/* One chat request's JSON, e.g. the body of an OpenAI chat completion request:
 * an object with "messages" (and optionally "tools"; other keys are ignored) or
 * a bare array of messages, checked as a file's line is, but without needing
 * an assistant message. LM_ERR_FORMAT says what is wrong; on failure *out is
 * empty. Free with lm_conversation_free. */
lm_status lm_conversation_parse(const char *json, size_t n, lm_conversation *out, lm_error *err);
void lm_conversation_free(lm_conversation *c);

/* Frees a message's strings and calls (malloc'd, as the reader makes them) and zeroes it. */
void lm_conv_message_free(lm_conv_message *m);

/* The conversation's messages as chat-template messages (n_messages of them, plus
 * one zeroed slot for a caller's answer), tool calls and tool_call_ids included;
 * a null content becomes "". The strings are c's: *out (one malloc'd block, free
 * it) is valid while c is. */
struct lm_chat_message;
lm_status lm_conversation_messages(const lm_conversation *c, struct lm_chat_message **out, lm_error *err);

#ifdef __cplusplus
}
#endif
#endif
