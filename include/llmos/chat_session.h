/* A chat session: a conversation with a model, kept as messages (tool calls
 * included), rendered through the chat template, and answered with the tool
 * loop. The KV cache is reused between turns for the longest prefix a new
 * render shares with what is cached, so each turn runs only the new tokens.
 *
 * The tool loop (when a toolbox is given): the assistant's answer streams out
 * until the model opens a tool call. With the tags <tool_call> and
 * </tool_call> as control tokens of the vocabulary, only those tokens open and
 * close a call (the same text written as ordinary tokens, e.g. copied from a
 * document, is plain text); without them the tags are found in the text
 * (lm_tool_call_scanner). When the call closes, generation stops, the call is
 * run (lm_toolbox_run: parsed, checked against the tool's schema, run with its
 * limits), the assistant message is stored with the call in its tool_calls
 * (or, for a template that never reads tool_calls, with the call's text in its
 * content), the result is added as a `tool` message (untrusted content: it is
 * tokenized as plain text, never scanned for calls or control tokens), and
 * the answer goes on, up to LM_CHAT_MAX_CALLS_PER_REPLY calls per reply.
 * Without a toolbox, tag tokens of the vocabulary are never sampled: with tools
 * off the model cannot start a call.
 *
 * A session borrows its model, context, sampler, template and toolbox, which
 * must outlive it; one thread at a time. */
#ifndef LLMOS_CHAT_SESSION_H
#define LLMOS_CHAT_SESSION_H

#include "llmos/base.h"
#include "llmos/chat_template.h"
#include "llmos/conversation.h"
#include "llmos/model.h"
#include "llmos/sampler.h"
#include "llmos/toolbox.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LM_CHAT_MAX_CALLS_PER_REPLY 8

typedef struct lm_chat_session lm_chat_session;

typedef enum lm_finish_reason {
    LM_FINISH_STOP = 0,      /* the model ended its turn */
    LM_FINISH_LENGTH = 1,    /* max_tokens or the context ended it */
    LM_FINISH_TOOL_CALLS = 2 /* it called a client's tool (lm_chat_session_set_client_tools) */
} lm_finish_reason;

typedef struct lm_chat_reply_stats {
    int64_t prompt_tokens;     /* of the first round's render */
    int64_t completion_tokens; /* generated, over all rounds */
    lm_finish_reason finish;
} lm_chat_reply_stats;

typedef struct lm_chat_reply_hooks {
    /* The answer's text as it is generated (never a call's text); a non-LM_OK
     * status stops the reply with that status. May be NULL. */
    lm_status (*on_text)(void *user, const char *text, size_t n);
    /* After each call ran: its name and arguments (NULL when the call did not
     * parse), the result text and whether it is an error. May be NULL. */
    void (*on_tool)(void *user, const char *name, const char *arguments, const char *result, int is_error);
    /* Notes for the user ("the oldest turn was dropped"). May be NULL. */
    void (*on_note)(void *user, const char *note);
    /* Polled once per token; non-zero ends the answer there (Ctrl-C). May be NULL. */
    int (*should_stop)(void *user);
    void *user;
} lm_chat_reply_hooks;

/* template_source (the template's text) tells whether the template renders
 * tool calls; tools may be NULL (no tool loop, no tools in the prompt). */
lm_status lm_chat_session_init(lm_chat_session **out, const lm_model *m, lm_context *ctx, lm_sampler *smp,
                               const lm_chat_template *tpl, const char *template_source, const lm_toolbox *tools,
                               lm_error *err);
void lm_chat_session_free(lm_chat_session *s);

/* Appends a message (role system, user, assistant or tool). */
lm_status lm_chat_session_add(lm_chat_session *s, const char *role, const char *content, lm_error *err);
/* Sets (or replaces) the system prompt, the first message. */
lm_status lm_chat_session_set_system(lm_chat_session *s, const char *content, lm_error *err);
/* Forgets the messages, the system prompt too unless keep_system. */
void lm_chat_session_reset(lm_chat_session *s, int keep_system);
size_t lm_chat_session_count(const lm_chat_session *s);

/* Tools defined by a client (an OpenAI tools array, JSON text; NULL: none),
 * used when the session has no toolbox: the template renders them, and a call
 * the model writes ends the reply, stored as the assistant message's tool_calls
 * with finish LM_FINISH_TOOL_CALLS, for the client to run and answer with a
 * tool message. */
lm_status lm_chat_session_set_client_tools(lm_chat_session *s, const char *tools_json, lm_error *err);
/* Replaces the sampler (per-request sampling parameters). */
void lm_chat_session_set_sampler(lm_chat_session *s, lm_sampler *smp);
/* Replaces the conversation with c's messages, taking them over (c is left empty). */
void lm_chat_session_take(lm_chat_session *s, lm_conversation *c);
/* Message i as stored (tool calls included), or NULL past the end. */
const lm_conv_message *lm_chat_session_message(const lm_chat_session *s, size_t i);
/* Token counts and finish reason of the last reply. */
const lm_chat_reply_stats *lm_chat_session_stats(const lm_chat_session *s);

/* Writes the conversation as one JSONL line, {"messages": [...]} with OpenAI's
 * tool_calls and tool_call_id, atomically. */
lm_status lm_chat_session_save(const lm_chat_session *s, const char *path, lm_error *err);
/* Replaces the conversation with the first one of a conversations file
 * (conversation.h; tool calls included). */
lm_status lm_chat_session_load(lm_chat_session *s, const char *path, lm_error *err);

/* Answers the conversation: renders it with the generation prompt (dropping
 * the oldest whole turns, never the system prompt nor the turn being
 * answered, while it does not fit with room for max_tokens more), generates
 * at most max_tokens per answer round (fewer when the context ends first)
 * with the tool loop above, and appends the assistant's message(s) and the
 * tool messages. LM_ERR_LIMIT when what is left does not fit in the context
 * at all (a user message that was just added is then removed). */
lm_status lm_chat_session_reply(lm_chat_session *s, int64_t max_tokens, const lm_chat_reply_hooks *hooks,
                                lm_error *err);

/* The same reply, a token at a time, for a caller that runs the model itself
 * (a server decoding several sessions in one batched pass):
 *
 *   begin_reply(s, max_tokens, hooks)       renders the conversation
 *   loop: next(s, &token, &pos)             prefills what the cache lacks, then
 *                                           samples from the last logits
 *         token == LM_CHAT_DONE: the reply is complete (its messages are stored)
 *         token == LM_CHAT_PREFILLING: a chunk of the prompt ran (see
 *                  set_prefill_chunk); call next() again
 *         else run token at pos in lm_chat_session_context(s), then
 *         accept(s, logits)                 the logits (n_vocab floats) it gave,
 *                                           read until the next call to next()
 *
 * Tool calls run by the session's toolbox, and the prefill of the round after
 * each, happen inside next(). An error from begin_reply or next ends the reply
 * (nothing of it is stored); abort_reply ends it early, e.g. when the model
 * could not be run. hooks is copied; its user pointer must stay valid. */
#define LM_CHAT_DONE (-1)
#define LM_CHAT_PREFILLING (-2)
lm_status lm_chat_session_begin_reply(lm_chat_session *s, int64_t max_tokens, const lm_chat_reply_hooks *hooks,
                                      lm_error *err);
lm_status lm_chat_session_next(lm_chat_session *s, int32_t *token, int64_t *pos, lm_error *err);
void lm_chat_session_accept(lm_chat_session *s, const float *logits);
void lm_chat_session_abort_reply(lm_chat_session *s);
/* Whether a reply is in progress. */
int lm_chat_session_replying(const lm_chat_session *s);
/* The context the session decodes in. */
lm_context *lm_chat_session_context(const lm_chat_session *s);
/* At most this many prompt tokens run per call to next() (0, the default: the
 * whole prompt at once), so a caller decoding other sequences between calls
 * keeps them going while a long prompt is read. LM_CHAT_PREFILL_BY_CALLER:
 * next() runs none; while the reply's prompt is not all cached it returns
 * LM_CHAT_PREFILLING, and the caller runs the tokens lm_chat_session_prompt
 * gives (in its own steps, with other sequences' tokens: see
 * lm_context_forward_step) and says so with lm_chat_session_prompt_ran. */
#define LM_CHAT_PREFILL_BY_CALLER ((size_t)-1)
void lm_chat_session_set_prefill_chunk(lm_chat_session *s, size_t tokens);
/* The prompt tokens of the reply in progress that the cache still lacks:
 * their count (0: none), *tokens (valid until prompt_ran or the reply ends)
 * and the position of the first. */
size_t lm_chat_session_prompt(const lm_chat_session *s, const int32_t **tokens, int64_t *pos0);
/* The first n of those ran (their keys and values are in the cache). When
 * they are the last, logits are the last one's (n_vocab floats, read until
 * the next call to next()); LM_ERR_ARG if they are missing then. */
lm_status lm_chat_session_prompt_ran(lm_chat_session *s, size_t n, const float *logits, lm_error *err);
/* Forgets what the cache holds (another user of the context overwrote it). */
void lm_chat_session_forget_cache(lm_chat_session *s);

#ifdef __cplusplus
}
#endif
#endif
