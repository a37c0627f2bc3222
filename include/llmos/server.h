/* An OpenAI-compatible HTTP server over a chat model (libmicrohttpd).
 *
 * Endpoints: POST /v1/chat/completions (messages with tool calls, tools,
 * tool_choice, temperature, top_p, top_k, max_tokens, seed, stop, stream as
 * server-sent events, usage counts), POST /v1/completions (a raw prompt, no
 * template), GET /v1/models, GET /health, GET /metrics (Prometheus text), and
 * GET / (the chat page, src/server/chat_page.html compiled in).
 * Errors have OpenAI's shape, {"error": {"message", "type", "param", "code"}},
 * with the HTTP status that fits (400 bad request, 401 bad key, 404 unknown
 * route or model, 405, 413 body too large, 503 queue full).
 *
 * Requests are untrusted: the body is capped, JSON is checked field by field,
 * max_tokens is capped, the API key (when set) is compared in constant time,
 * and a client that goes away stops its generation at the next token.
 * Continuous batching: `parallel` slots, each with its own context (KV cache)
 * and chat session, decode together, one token each per batched forward pass
 * (lm_context_forward_multi); requests join and leave between steps, and wait
 * in a bounded queue while every slot is busy. A new request's prompt runs in
 * chunks between the steps, so it does not stall the others for its length.
 * Clients' tools are rendered for the model and its calls returned to the
 * client as tool_calls (finish_reason "tool_calls"); with a server toolbox
 * (--tools) the server runs the calls itself instead. */
#ifndef LLMOS_SERVER_H
#define LLMOS_SERVER_H

#include "llmos/base.h"
#include "llmos/chat_template.h"
#include "llmos/model.h"
#include "llmos/toolbox.h"

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lm_server_options {
    const char *host;        /* address to bind (default 127.0.0.1: loopback only) */
    int port;                /* default 8080; 0: any free port (see on_listen) */
    const char *api_key;     /* when set, requests need "Authorization: Bearer KEY" */
    const char *model_name;  /* the id in /v1/models and responses */
    size_t max_body;         /* request body cap in bytes (default 1 MiB) */
    int64_t max_tokens;      /* cap and default of a request's max_tokens (default 512) */
    int queue;               /* requests waiting beyond the one running (default 16); more get 503 */
    int timeout_s;           /* idle connection timeout (default 30) */
    int64_t n_ctx;           /* context of each slot (0: the model's, at most 4096) */
    int parallel;            /* slots: requests decoded together, each with its own KV cache (default 1, at most 256) */
    int64_t prefill_chunk;   /* prompt tokens a step runs (all slots' together, with the others' next
                                tokens), so the others keep decoding while a long prompt is read
                                (default 128; -1: as many as a step holds, the contexts' batch size) */
    int threads;             /* compute threads */
    lm_kv_type kv_type;      /* the slots' KV caches (0: f32) */
    /* Called once listening, with the port (useful with port 0). May be NULL. */
    void (*on_listen)(void *user, int port);
    void *user;
} lm_server_options;

/* Serves until *stop becomes non-zero (e.g. set by a SIGINT handler).
 * template_source tells whether the template renders tool calls; tools may be
 * NULL. Fails when the address cannot be bound. */
lm_status lm_server_run(const lm_model *m, const lm_chat_template *tpl, const char *template_source,
                        const lm_toolbox *tools, const lm_server_options *opts, volatile sig_atomic_t *stop,
                        lm_error *err);

#ifdef __cplusplus
}
#endif
#endif
