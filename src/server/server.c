/* The OpenAI-compatible HTTP server (llmos/server.h): libmicrohttpd with a
 * thread per connection, one worker thread that owns the model's context and
 * a chat session, and a bounded queue of jobs between them. A job is shared
 * by the connection and the worker (reference counted); the worker writes the
 * response (a whole JSON body, or server-sent events as they come) into the
 * job and signals; the connection sends it. */
#include "llmos/server.h"

#include "llmos/chat_session.h"
#include "llmos/conversation.h"
#include "llmos/sampler.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The chat page (src/server/chat_page.html, compiled in by CMake). */
extern const unsigned char lm_chat_page[];
extern const size_t lm_chat_page_len;

/* ------------------------------------------------------------------ jobs */

typedef struct job {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;      /* the connection's and the worker's */
    int done;      /* the response is complete */
    int cancelled; /* the client went away: stop generating */
    int stream;
    lm_conversation conv;
    lm_sampler_params sp;
    int64_t max_tokens;
    int completion;   /* POST /v1/completions: a raw prompt, no chat template */
    char *prompt;     /* its prompt */
    int client_tools; /* render the request's tools */
    char stop[4][65];   /* stop sequences (OpenAI allows 4), NUL-terminated; n_stop of them */
    int n_stop;
    int64_t created;
    char id[48];
    /* the response: the JSON body (status) or the SSE bytes, of which `sent` went out */
    char *out;
    size_t len, cap, sent;
    unsigned status;
} job;

static void job_unref(job *j) {
    pthread_mutex_lock(&j->mu);
    int last = --j->refs == 0;
    pthread_mutex_unlock(&j->mu);
    if (!last) return;
    lm_conversation_free(&j->conv);
    free(j->prompt);
    free(j->out);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j);
}

/* Appends to the response (called with j->mu held). 0, or -1 when out of memory. */
static int job_append(job *j, const char *p, size_t n) {
    if (j->len + n + 1 > j->cap) {
        size_t cap = (j->len + n + 1) * 2;
        char *o = realloc(j->out, cap);
        if (!o) return -1;
        j->out = o, j->cap = cap;
    }
    memcpy(j->out + j->len, p, n);
    j->len += n;
    j->out[j->len] = 0;
    return 0;
}

/* ------------------------------------------------------------------ server state */

#define QUEUE_MAX 256

typedef struct server {
    const lm_model *model;
    lm_server_options o;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job *queue[QUEUE_MAX];
    int qhead, qlen, stopping, running;
    /* metrics */
    unsigned long long requests, errors, prompt_tokens, completion_tokens;
    unsigned long long by_status[6]; /* 1xx..5xx */
} server;

static void count_status(server *s, unsigned status) {
    pthread_mutex_lock(&s->mu);
    s->requests++;
    if (status >= 100 && status < 600) s->by_status[status / 100]++;
    if (status >= 400) s->errors++;
    pthread_mutex_unlock(&s->mu);
}

/* ------------------------------------------------------------------ responses */

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *type, const char *body) {
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result ok = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ok;
}

/* OpenAI's error shape, {"error": {"message", "type", "param", "code"}}, added to root. */
static void add_error(cJSON *root, const char *type, const char *code, const char *message) {
    cJSON *e = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(e, "message", message);
    cJSON_AddStringToObject(e, "type", type);
    cJSON_AddNullToObject(e, "param");
    if (code) cJSON_AddStringToObject(e, "code", code);
    else cJSON_AddNullToObject(e, "code");
}

/* "usage": {"prompt_tokens", "completion_tokens", "total_tokens"}, added to root. */
static void add_usage(cJSON *root, const lm_chat_reply_stats *st) {
    cJSON *u = cJSON_AddObjectToObject(root, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", (double)st->prompt_tokens);
    cJSON_AddNumberToObject(u, "completion_tokens", (double)st->completion_tokens);
    cJSON_AddNumberToObject(u, "total_tokens", (double)(st->prompt_tokens + st->completion_tokens));
}

/* Ends the job: the last bytes of its response (root's JSON with that status, or the end of the
 * event stream), then done; root is consumed. */
static void job_finish(job *j, cJSON *root, unsigned status) {
    char *body = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    pthread_mutex_lock(&j->mu);
    if (j->stream) {
        job_append(j, "data: [DONE]\n\n", 14);
    } else {
        j->status = status;
        if (!body || job_append(j, body, strlen(body))) j->status = 500;
    }
    j->done = 1;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    cJSON_free(body);
}

static enum MHD_Result send_error(server *s, struct MHD_Connection *c, unsigned status, const char *type,
                                  const char *code, const char *message) {
    count_status(s, status);
    cJSON *root = cJSON_CreateObject();
    add_error(root, type, code, message);
    char *body = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    enum MHD_Result ok = send_text(c, status, "application/json", body ? body : "{}");
    cJSON_free(body);
    return ok;
}

/* ------------------------------------------------------------------ the worker */

typedef struct run_state {
    server *s;
    job *j;
    char *acc;         /* the answer's text so far */
    size_t len, cap;
    size_t emitted;    /* bytes of acc streamed to the client */
    int stopped;       /* a stop sequence was found; acc is cut before it */
} run_state;

/* One server-sent event with a chat.completion.chunk; delta is consumed. */
static void push_chunk(job *j, const char *model, cJSON *delta, const char *finish, const lm_chat_reply_stats *usage) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "id", j->id);
    cJSON_AddStringToObject(root, "object", j->completion ? "text_completion" : "chat.completion.chunk");
    cJSON_AddNumberToObject(root, "created", (double)j->created);
    cJSON_AddStringToObject(root, "model", model);
    cJSON *choices = cJSON_AddArrayToObject(root, "choices"), *ch = cJSON_CreateObject();
    cJSON_AddItemToArray(choices, ch);
    cJSON_AddNumberToObject(ch, "index", 0);
    if (j->completion) { /* a completion's chunk carries its text directly */
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(delta, "content");
        cJSON_AddStringToObject(ch, "text", cJSON_IsString(t) ? t->valuestring : "");
        cJSON_AddNullToObject(ch, "logprobs");
        cJSON_Delete(delta);
    } else {
        cJSON_AddItemToObject(ch, "delta", delta);
    }
    if (finish) cJSON_AddStringToObject(ch, "finish_reason", finish);
    else cJSON_AddNullToObject(ch, "finish_reason");
    if (usage) add_usage(root, usage);
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    pthread_mutex_lock(&j->mu);
    if (text && (job_append(j, "data: ", 6) || job_append(j, text, strlen(text)) || job_append(j, "\n\n", 2)))
        j->cancelled = 1; /* out of memory: give up on this client */
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    cJSON_free(text);
}

/* Length of the valid UTF-8 character at p (n bytes left), or 0 when it is not one (a stray
 * continuation byte, a truncated or overlong sequence, a surrogate, past U+10FFFF). */
static size_t utf8_char(const unsigned char *p, size_t n) {
    if (p[0] < 0x80) return p[0] != 0; /* NUL too: cJSON strings end there */
    size_t len = p[0] >= 0xF0 ? 4 : p[0] >= 0xE0 ? 3 : p[0] >= 0xC2 ? 2 : 0;
    if (!len || len > n || p[0] > 0xF4) return 0;
    for (size_t i = 1; i < len; i++)
        if ((p[i] & 0xC0) != 0x80) return 0;
    if (len == 3 && ((p[0] == 0xE0 && p[1] < 0xA0) || (p[0] == 0xED && p[1] >= 0xA0))) return 0;
    if (len == 4 && ((p[0] == 0xF0 && p[1] < 0x90) || (p[0] == 0xF4 && p[1] >= 0x90))) return 0;
    return len;
}

/* A JSON string of n bytes of model output: JSON text must be UTF-8, and a model can write any
 * bytes (a byte token that never completes a character), so each invalid byte becomes U+FFFD. */
static cJSON *utf8_string(const char *text, size_t n) {
    const unsigned char *p = (const unsigned char *)text;
    if (n > ((size_t)-1 - 1) / 3) return NULL;
    char *out = malloc(3 * n + 1), *o = out;
    if (!out) return NULL;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_char(p + i, n - i);
        if (k) memcpy(o, p + i, k), o += k, i += k;
        else memcpy(o, "\xEF\xBF\xBD", 3), o += 3, i++;
    }
    *o = 0;
    cJSON *s = cJSON_CreateString(out);
    free(out);
    return s;
}

/* Streams acc[emitted, upto) as a content delta. */
static lm_status emit_upto(run_state *rs, size_t upto) {
    if (!rs->j->stream || upto <= rs->emitted) {
        if (upto > rs->emitted) rs->emitted = upto;
        return LM_OK;
    }
    cJSON *delta = cJSON_CreateObject(), *content = utf8_string(rs->acc + rs->emitted, upto - rs->emitted);
    if (!delta || !content) {
        cJSON_Delete(delta);
        cJSON_Delete(content);
        return LM_ERR_NOMEM;
    }
    cJSON_AddItemToObject(delta, "content", content);
    push_chunk(rs->j, rs->s->o.model_name, delta, NULL, NULL);
    rs->emitted = upto;
    return LM_OK;
}

/* The answer's text as it comes: cut at the first stop sequence; what could still be the start
 * of one is held back from the stream until the next text decides. */
static lm_status on_text(void *user, const char *text, size_t n) {
    run_state *rs = user;
    if (rs->stopped) return LM_OK;
    if (rs->len + n + 1 > rs->cap) {
        size_t cap = (rs->len + n + 1) * 2;
        char *a = realloc(rs->acc, cap);
        if (!a) return LM_ERR_NOMEM;
        rs->acc = a, rs->cap = cap;
    }
    memcpy(rs->acc + rs->len, text, n);
    rs->len += n;
    rs->acc[rs->len] = 0;
    const job *j = rs->j;
    size_t cut = rs->len;
    for (int k = 0; k < j->n_stop; k++) {
        size_t sl = strlen(j->stop[k]);
        size_t from = rs->emitted > sl ? rs->emitted - sl : 0;
        const char *hit = strstr(rs->acc + from, j->stop[k]);
        if (hit && (size_t)(hit - rs->acc) < cut) cut = (size_t)(hit - rs->acc), rs->stopped = 1;
    }
    if (rs->stopped) {
        rs->len = cut;
        rs->acc[cut] = 0;
        return emit_upto(rs, cut);
    }
    /* The longest tail of acc that is a prefix of a stop sequence stays back. */
    size_t keep = 0;
    for (int k = 0; k < j->n_stop; k++) {
        size_t sl = strlen(j->stop[k]);
        for (size_t t = sl - 1 < rs->len ? sl - 1 : rs->len; t > keep; t--)
            if (memcmp(rs->acc + rs->len - t, j->stop[k], t) == 0) {
                keep = t;
                break;
            }
    }
    return emit_upto(rs, rs->len - keep);
}

static void on_tool(void *user, const char *name, const char *args, const char *result, int is_error) {
    (void)user, (void)is_error;
    fprintf(stderr, "[tool] %s %s -> %.200s\n", name ? name : "(malformed call)", args ? args : "", result);
}

static int should_stop(void *user) {
    run_state *rs = user;
    if (rs->stopped) return 1;
    pthread_mutex_lock(&rs->j->mu);
    int stop = rs->j->cancelled;
    pthread_mutex_unlock(&rs->j->mu);
    return stop;
}

static const char *finish_name(lm_finish_reason f, int stopped) {
    if (stopped) return "stop";
    return f == LM_FINISH_TOOL_CALLS ? "tool_calls" : f == LM_FINISH_LENGTH ? "length" : "stop";
}

/* The tool_calls array of an OpenAI message (streamed deltas carry an index). */
static cJSON *tool_calls_json(const lm_conv_message *m, int with_index) {
    cJSON *arr = cJSON_CreateArray();
    for (int32_t k = 0; arr && k < m->n_tool_calls; k++) {
        cJSON *c = cJSON_CreateObject(), *fn;
        cJSON_AddItemToArray(arr, c);
        if (with_index) cJSON_AddNumberToObject(c, "index", k);
        cJSON_AddStringToObject(c, "id", m->tool_calls[k].id ? m->tool_calls[k].id : "call_0");
        cJSON_AddStringToObject(c, "type", "function");
        fn = cJSON_AddObjectToObject(c, "function");
        const char *args = m->tool_calls[k].arguments ? m->tool_calls[k].arguments : "{}";
        cJSON_AddItemToObject(fn, "name", utf8_string(m->tool_calls[k].name, strlen(m->tool_calls[k].name)));
        cJSON_AddItemToObject(fn, "arguments", utf8_string(args, strlen(args)));
    }
    return arr;
}

/* A slot: one request being answered, in its own context (KV cache) and chat session. The worker
 * decodes all busy slots together, one token each per step (lm_context_forward_multi); requests
 * join and leave between steps. */
typedef struct slot {
    job *j;                  /* the request; NULL when the slot is free */
    lm_context *ctx;
    lm_chat_session *session; /* over ctx */
    lm_sampler *smp;         /* the request's sampling */
    run_state rs;
    lm_chat_reply_hooks hooks;
    size_t first_new;        /* the first message the reply adds */
    int began;               /* the chat reply began: the session's stats are this request's */
    /* POST /v1/completions: the raw prompt continued in ctx, as lm_generate does */
    lm_detokenizer *detok;
    int32_t *history;        /* (n_ctx) prompt and generated tokens, for the repetition penalty */
    const float *logits;
    int64_t pos;             /* of the next token; the prompt's first pos tokens are in the cache */
    int64_t n_prompt;        /* the prompt's tokens (history[0, n_prompt)) */
    lm_chat_reply_stats cstats;
    int64_t chunk;           /* prompt tokens of this slot in the step being run (0: its next token, or none) */
} slot;

static void count_tokens(server *s, const lm_chat_reply_stats *st) {
    pthread_mutex_lock(&s->mu);
    s->prompt_tokens += (unsigned long long)st->prompt_tokens;
    s->completion_tokens += (unsigned long long)st->completion_tokens;
    pthread_mutex_unlock(&s->mu);
}

/* Ends a chat request: builds its response from what the reply added (or the error st). */
static void chat_finish(server *s, slot *sl, lm_status st, lm_error *err) {
    job *j = sl->j;
    lm_chat_session *session = sl->session;
    run_state *rs = &sl->rs;
    if (!st && emit_upto(rs, rs->len)) st = lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    const lm_chat_reply_stats none = {0}, *stats = sl->began ? lm_chat_session_stats(session) : &none;
    count_tokens(s, stats);
    /* What the reply added: the assistant's text over all its messages, and its last message's calls. */
    cJSON *content = NULL, *calls = NULL;
    if (!st) {
        size_t n = lm_chat_session_count(session), total = 0;
        for (size_t i = sl->first_new; i < n; i++)
            if (lm_chat_session_message(session, i)->role == LM_CHAT_ASSISTANT) total += lm_chat_session_message(session, i)->content_len;
        char *all = malloc(total + 1);
        size_t at = 0;
        const lm_conv_message *last = NULL;
        for (size_t i = sl->first_new; all && i < n; i++) {
            const lm_conv_message *m = lm_chat_session_message(session, i);
            if (m->role != LM_CHAT_ASSISTANT) continue;
            if (m->content_len) memcpy(all + at, m->content, m->content_len), at += m->content_len;
            last = m;
        }
        if (all) all[at] = 0;
        content = !all ? NULL : rs->stopped ? utf8_string(rs->acc, rs->len) : utf8_string(all, at);
        free(all);
        if (last && last->n_tool_calls && stats->finish == LM_FINISH_TOOL_CALLS) calls = tool_calls_json(last, j->stream);
        if (!content) st = lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    }
    if (j->stream) {
        if (st) { /* the stream has begun: the error goes in an event */
            cJSON *delta = cJSON_CreateObject();
            cJSON_AddStringToObject(delta, "content", "");
            push_chunk(j, s->o.model_name, delta, "error", NULL);
            fprintf(stderr, "serve: %s\n", err->message);
        } else {
            if (calls) {
                cJSON *delta = cJSON_CreateObject();
                cJSON_AddItemToObject(delta, "tool_calls", calls);
                calls = NULL;
                push_chunk(j, s->o.model_name, delta, NULL, NULL);
            }
            push_chunk(j, s->o.model_name, cJSON_CreateObject(), finish_name(stats->finish, rs->stopped), stats);
        }
        job_finish(j, NULL, 200);
    } else {
        cJSON *root = cJSON_CreateObject();
        int too_long = st == LM_ERR_LIMIT;
        if (st) {
            add_error(root, too_long ? "invalid_request_error" : "server_error", too_long ? "context_length_exceeded" : NULL,
                      err->message);
        } else {
            cJSON_AddStringToObject(root, "id", j->id);
            cJSON_AddStringToObject(root, "object", "chat.completion");
            cJSON_AddNumberToObject(root, "created", (double)j->created);
            cJSON_AddStringToObject(root, "model", s->o.model_name);
            cJSON *choices = cJSON_AddArrayToObject(root, "choices"), *ch = cJSON_CreateObject(), *msg;
            cJSON_AddItemToArray(choices, ch);
            cJSON_AddNumberToObject(ch, "index", 0);
            msg = cJSON_AddObjectToObject(ch, "message");
            cJSON_AddStringToObject(msg, "role", "assistant");
            cJSON_AddItemToObject(msg, "content", content);
            content = NULL;
            if (calls) cJSON_AddItemToObject(msg, "tool_calls", calls), calls = NULL;
            cJSON_AddStringToObject(ch, "finish_reason", finish_name(stats->finish, rs->stopped));
            add_usage(root, stats);
        }
        job_finish(j, root, st ? (too_long ? 400 : 500) : 200);
    }
    cJSON_Delete(content);
    cJSON_Delete(calls);
}

/* Ends a completion request: its response from the text so far (or the error st). */
static void completion_finish(server *s, slot *sl, lm_status st, lm_error *err) {
    job *j = sl->j;
    run_state *rs = &sl->rs;
    char piece[1024];
    int64_t rest = !st && sl->detok ? lm_detokenizer_flush(sl->detok, piece, sizeof piece) : 0;
    if (rest > 0 && on_text(rs, piece, (size_t)rest)) st = lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    if (!st && emit_upto(rs, rs->len)) st = lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    const lm_chat_reply_stats *stats = &sl->cstats;
    count_tokens(s, stats);
    const char *finish = finish_name(stats->finish, rs->stopped);
    if (j->stream) {
        if (st) fprintf(stderr, "serve: %s\n", err->message);
        push_chunk(j, s->o.model_name, cJSON_CreateObject(), st ? "error" : finish, st ? NULL : stats);
        job_finish(j, NULL, 200);
    } else {
        cJSON *root = cJSON_CreateObject();
        int bad_request = st == LM_ERR_LIMIT || st == LM_ERR_ARG;
        if (st) {
            add_error(root, bad_request ? "invalid_request_error" : "server_error", NULL, err->message);
        } else {
            cJSON_AddStringToObject(root, "id", j->id);
            cJSON_AddStringToObject(root, "object", "text_completion");
            cJSON_AddNumberToObject(root, "created", (double)j->created);
            cJSON_AddStringToObject(root, "model", s->o.model_name);
            cJSON *choices = cJSON_AddArrayToObject(root, "choices"), *ch = cJSON_CreateObject();
            cJSON_AddItemToArray(choices, ch);
            cJSON_AddItemToObject(ch, "text", utf8_string(rs->acc ? rs->acc : "", rs->len));
            cJSON_AddNumberToObject(ch, "index", 0);
            cJSON_AddNullToObject(ch, "logprobs");
            cJSON_AddStringToObject(ch, "finish_reason", finish);
            add_usage(root, stats);
        }
        job_finish(j, root, st ? (bad_request ? 400 : 500) : 200);
    }
}

/* Ends the slot's request with status st and frees the slot. */
static void slot_finish(server *s, slot *sl, lm_status st, lm_error *err) {
    if (sl->j->completion) completion_finish(s, sl, st, err);
    else chat_finish(s, sl, st, err);
    if (lm_chat_session_replying(sl->session)) lm_chat_session_abort_reply(sl->session);
    lm_chat_session_set_sampler(sl->session, NULL);
    lm_sampler_free(sl->smp);
    lm_detokenizer_free(sl->detok);
    free(sl->history);
    free(sl->rs.acc);
    job_unref(sl->j);
    memset(&sl->rs, 0, sizeof sl->rs);
    sl->smp = NULL, sl->detok = NULL, sl->history = NULL, sl->j = NULL;
}

/* A completion's first part: the prompt tokenized as lm_generate does (BOS as the metadata says;
 * control-token look-alikes stay text) and run through the slot's context. */
static lm_status completion_start(server *s, slot *sl, lm_error *err) {
    const lm_tokenizer *tok = lm_model_get_tokenizer(s->model);
    int64_t n_ctx = lm_context_size(sl->ctx);
    int32_t *tokens = NULL;
    size_t n = 0;
    lm_status st = lm_tokenizer_encode(tok, sl->j->prompt, strlen(sl->j->prompt), LM_ENCODE_ADD_SPECIAL, &tokens, &n, err);
    if (st) return st;
    if (n == 0) st = lm_error_set(err, LM_ERR_ARG, "the prompt is empty and the model has no BOS token to start from");
    else if ((int64_t)n > n_ctx)
        st = lm_error_set(err, LM_ERR_LIMIT, "the prompt is %zu tokens, longer than the context (%lld)", n, (long long)n_ctx);
    else if (!(sl->history = malloc((size_t)n_ctx * sizeof *sl->history))) st = lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    if (!st) st = lm_detokenizer_init(tok, 0, &sl->detok, err);
    if (!st) {
        memcpy(sl->history, tokens, n * sizeof *tokens);
        lm_chat_session_forget_cache(sl->session); /* the chat cache is overwritten here */
        /* The prompt goes through the decoder too, so the first piece is decoded in context. */
        char piece[1024];
        for (size_t i = 0; i < n; i++) lm_detokenizer_push(sl->detok, tokens[i], piece, sizeof piece);
        lm_detokenizer_flush(sl->detok, piece, sizeof piece);
        sl->pos = 0; /* the prompt runs in chunks from completion_next */
        sl->n_prompt = (int64_t)n;
        sl->cstats.prompt_tokens = (int64_t)n;
        sl->cstats.finish = LM_FINISH_LENGTH;
    }
    free(tokens);
    return st;
}

/* A completion's next token: 1 with *token to run at *pos, 2 when a chunk of the prompt ran
 * (nothing to run), 0 when it is over. */
static int completion_next(server *s, slot *sl, int32_t *token, int64_t *pos, lm_status *st, lm_error *err) {
    const lm_tokenizer *tok = lm_model_get_tokenizer(s->model);
    int64_t n_ctx = lm_context_size(sl->ctx);
    *st = LM_OK;
    if (sl->pos < sl->n_prompt) return 2; /* the worker runs the prompt (slot_prompt) */
    if (sl->cstats.completion_tokens >= sl->j->max_tokens || sl->pos >= n_ctx || should_stop(&sl->rs)) return 0;
    int32_t next = lm_sampler_sample(sl->smp, sl->logits, sl->history, (size_t)sl->pos);
    if (lm_tokenizer_is_eog(tok, next)) {
        sl->cstats.finish = LM_FINISH_STOP;
        return 0;
    }
    sl->history[sl->pos] = next;
    sl->cstats.completion_tokens++;
    char piece[1024];
    int64_t k = lm_detokenizer_push(sl->detok, next, piece, sizeof piece);
    if (k > 0 && on_text(&sl->rs, piece, (size_t)k)) {
        *st = lm_error_set(err, LM_ERR_NOMEM, "out of memory");
        return 0;
    }
    if (sl->cstats.completion_tokens >= sl->j->max_tokens || sl->pos + 1 >= n_ctx || should_stop(&sl->rs)) return 0;
    *token = next;
    *pos = sl->pos;
    return 1;
}

/* Takes a job into a free slot and starts it (the prompt's prefill runs here). 0 when it is
 * running, else it has been answered (an error) and the slot is free again. */
static int slot_start(server *s, slot *sl, job *j) {
    lm_error err = {0};
    memset(&sl->rs, 0, sizeof sl->rs);
    memset(&sl->cstats, 0, sizeof sl->cstats);
    sl->j = j;
    sl->began = 0;
    sl->rs.s = s, sl->rs.j = j;
    sl->hooks = (lm_chat_reply_hooks){on_text, on_tool, NULL, should_stop, &sl->rs};
    lm_status st = lm_sampler_init(&j->sp, (int32_t)lm_model_get_config(s->model)->n_vocab, &sl->smp, &err);
    if (!st && j->stream && !j->completion) {
        cJSON *delta = cJSON_CreateObject();
        cJSON_AddStringToObject(delta, "role", "assistant");
        cJSON_AddStringToObject(delta, "content", "");
        push_chunk(j, s->o.model_name, delta, NULL, NULL);
    }
    if (!st && j->completion) {
        st = completion_start(s, sl, &err);
    } else if (!st) {
        sl->first_new = (size_t)j->conv.n_messages;
        st = lm_chat_session_set_client_tools(sl->session, j->client_tools ? j->conv.tools_json : NULL, &err);
        if (!st) {
            lm_chat_session_set_sampler(sl->session, sl->smp);
            lm_chat_session_take(sl->session, &j->conv);
            st = lm_chat_session_begin_reply(sl->session, j->max_tokens, &sl->hooks, &err);
            sl->began = 1; /* even when it failed: it reset the stats */
        }
    }
    if (!st) return 0;
    slot_finish(s, sl, st, &err);
    return -1;
}

/* The slot's next token to run: 1 with *token and *pos, 2 when a chunk of its prompt ran
 * instead, or 0 when its request is over (then answered, and the slot is free). */
static int slot_next(server *s, slot *sl, int32_t *token, int64_t *pos) {
    lm_error err = {0};
    lm_status st;
    int more;
    if (sl->j->completion) {
        more = completion_next(s, sl, token, pos, &st, &err);
    } else {
        st = lm_chat_session_next(sl->session, token, pos, &err);
        more = st ? 0 : *token == LM_CHAT_PREFILLING ? 2 : *token != LM_CHAT_DONE;
    }
    if (more) return more;
    slot_finish(s, sl, st, &err);
    return 0;
}

/* The prompt tokens the slot's request still has to run: their count (0: none), *tokens and the
 * position of the first. */
static int64_t slot_prompt(const slot *sl, const int32_t **tokens, int64_t *pos0) {
    if (sl->j->completion) {
        *tokens = sl->history + sl->pos;
        *pos0 = sl->pos;
        return sl->n_prompt - sl->pos;
    }
    return (int64_t)lm_chat_session_prompt(sl->session, tokens, pos0);
}

/* The first n of those ran in a step; logits: the last one's when they end the prompt, else NULL. */
static lm_status slot_prompt_ran(slot *sl, int64_t n, const float *logits, lm_error *err) {
    if (!sl->j->completion) return lm_chat_session_prompt_ran(sl->session, (size_t)n, logits, err);
    sl->pos += n;
    if (sl->pos == sl->n_prompt) sl->logits = logits;
    return LM_OK;
}

static void slot_accept(slot *sl, const float *logits) {
    if (sl->j->completion) {
        sl->logits = logits;
        sl->pos++;
    } else {
        lm_chat_session_accept(sl->session, logits);
    }
}

typedef struct worker_args {
    server *s;
    slot *slots;
    int n_slots;
    float *logits; /* (n_slots, n_vocab): a step's wanted logits (a slot wants one row at most) */
    /* a step's tokens (at most cap, the contexts' batch size, or n_slots when that is more;
     * the arrays hold max(n_ctx, n_slots)):
     * their contexts, tokens, positions, slots and whether their logits are wanted; then the
     * slots with prompt tokens to run (n_slots) */
    int64_t cap;
    lm_context **ctxs;
    int32_t *tokens;
    int64_t *pos;
    slot **batch;
    unsigned char *want;
    slot **filling;
} worker_args;

/* The scheduler: admits queued jobs into free slots, then runs one step for every busy slot. */
static void *worker(void *arg) {
    worker_args *w = arg;
    server *s = w->s;
    int64_t n_vocab = lm_model_get_config(s->model)->n_vocab;
    lm_context **ctxs = w->ctxs;
    int32_t *tokens = w->tokens;
    int64_t *pos = w->pos;
    slot **batch = w->batch, **filling = w->filling;
    unsigned char *want = w->want;
    int busy = 0;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!s->stopping && s->qlen == 0 && busy == 0) pthread_cond_wait(&s->cv, &s->mu);
        if (s->stopping) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        /* Admission: queued jobs take the free slots, in order. */
        job *admit[64];
        int n_admit = 0;
        while (s->qlen && busy + n_admit < w->n_slots && n_admit < 64) {
            admit[n_admit++] = s->queue[s->qhead];
            s->qhead = (s->qhead + 1) % QUEUE_MAX;
            s->qlen--;
        }
        pthread_mutex_unlock(&s->mu);
        for (int a = 0; a < n_admit; a++) {
            job *j = admit[a];
            pthread_mutex_lock(&j->mu);
            int gone = j->cancelled;
            if (gone) j->done = 1;
            pthread_mutex_unlock(&j->mu);
            if (gone) { /* a client that left while queued costs nothing */
                job_unref(j);
                continue;
            }
            slot *sl = NULL;
            for (int k = 0; k < w->n_slots && !sl; k++)
                if (!w->slots[k].j) sl = &w->slots[k];
            if (sl && slot_start(s, sl, j) == 0) busy++; /* admission counted the free slots: sl is found */
        }
        /* One step: each busy slot samples its next token, or has prompt tokens to run (a new
         * request's, or the next round's after a tool call). The next tokens go first; then
         * the prompts, up to prefill_chunk tokens in all, in slot order, in the same pass
         * over the weights (a prompt in a pass of its own reads every weight once more). */
        int n = 0, n_fill = 0;
        for (int k = 0; k < w->n_slots; k++) {
            slot *sl = &w->slots[k];
            if (!sl->j) continue;
            const int32_t *pt;
            int64_t p0;
            int r = slot_prompt(sl, &pt, &p0) > 0 ? 2 : slot_next(s, sl, &tokens[n], &pos[n]);
            if (r == 1) {
                ctxs[n] = sl->ctx;
                want[n] = 1;
                batch[n++] = sl;
            } else if (r == 0) {
                busy--;
            } else if (slot_prompt(sl, &pt, &p0) > 0) {
                filling[n_fill++] = sl;
            }
        }
        int64_t budget = s->o.prefill_chunk > 0 ? s->o.prefill_chunk : w->cap;
        for (int f = 0; f < n_fill && budget > 0 && n < w->cap; f++) {
            slot *sl = filling[f];
            const int32_t *pt;
            int64_t p0, left = slot_prompt(sl, &pt, &p0), k = left;
            if (k > budget) k = budget;
            if (k > w->cap - n) k = w->cap - n;
            for (int64_t i = 0; i < k; i++, n++) {
                ctxs[n] = sl->ctx, tokens[n] = pt[i], pos[n] = p0 + i, batch[n] = sl;
                want[n] = i == left - 1; /* the prompt's last token: the first to sample from */
            }
            sl->chunk = k;
            budget -= k;
        }
        pthread_mutex_lock(&s->mu);
        s->running = busy;
        pthread_mutex_unlock(&s->mu);
        if (n == 0) continue;
        lm_error err = {0};
        lm_status st = lm_context_forward_step(ctxs, tokens, pos, n, want, w->logits, &err);
        /* A slot's tokens are consecutive; the wanted logits come in the same order. */
        size_t row = 0;
        for (int b = 0; b < n; b++) {
            slot *sl = batch[b];
            const float *logits = !st && want[b] ? w->logits + row++ * (size_t)n_vocab : NULL;
            if (b + 1 < n && batch[b + 1] == sl) continue; /* within a chunk */
            lm_status sst = st;
            if (!sst && sl->chunk) sst = slot_prompt_ran(sl, sl->chunk, logits, &err);
            else if (!sst) slot_accept(sl, logits);
            sl->chunk = 0;
            if (sst) { /* the step failed: its requests end with the error */
                slot_finish(s, sl, sst, &err);
                busy--;
            }
        }
    }
    /* At shutdown: the requests running, then those still queued, are answered with an error. */
    for (int k = 0; k < w->n_slots; k++) {
        lm_error err = {0};
        if (w->slots[k].j) slot_finish(s, &w->slots[k], lm_error_set(&err, LM_ERR_IO, "the server is shutting down"), &err);
    }
    pthread_mutex_lock(&s->mu);
    s->running = 0;
    while (s->qlen) {
        job *j = s->queue[s->qhead];
        s->qhead = (s->qhead + 1) % QUEUE_MAX;
        s->qlen--;
        cJSON *root = cJSON_CreateObject();
        add_error(root, "server_error", NULL, "the server is shutting down");
        job_finish(j, root, 503);
        job_unref(j);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ------------------------------------------------------------------ requests */

typedef struct conn {
    char *body;
    size_t len, cap;
    int too_large;
    int unauthorized; /* a key is required and was not given: the body is not kept */
} conn;

/* Checks the request's fields and makes its job; on a bad request, *why and *status say why. */
static job *parse_request(server *s, int completion, const char *body, size_t len, unsigned *status, char *why,
                          size_t cap, const char **code) {
    *code = NULL;
    *status = 400;
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!root || !cJSON_IsObject(root)) {
        snprintf(why, cap, root ? "the body must be a JSON object" : "the body is not valid JSON");
        cJSON_Delete(root);
        return NULL;
    }
    job *j = calloc(1, sizeof *j);
    if (!j) {
        cJSON_Delete(root);
        snprintf(why, cap, "out of memory");
        *status = 500;
        return NULL;
    }
    j->sp = lm_sampler_default_params();
    j->sp.temperature = 1.0f, j->sp.top_p = 1.0f, j->sp.top_k = 0, j->sp.min_p = 0;
    j->sp.seed = (uint64_t)time(NULL);
    j->max_tokens = s->o.max_tokens;
    j->client_tools = 1;
    const char *bad = NULL;
    const cJSON *v;
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "model")) && !cJSON_IsNull(v)) {
        if (!cJSON_IsString(v)) bad = "'model' must be a string";
        else if (strcmp(v->valuestring, s->o.model_name) != 0) {
            snprintf(why, cap, "the model '%.100s' does not exist; this server has '%s'", v->valuestring, s->o.model_name);
            *status = 404;
            *code = "model_not_found";
            goto fail;
        }
    }
    if (!bad && (v = cJSON_GetObjectItemCaseSensitive(root, "stream")) && !cJSON_IsNull(v)) {
        if (!cJSON_IsBool(v)) bad = "'stream' must be a boolean";
        else j->stream = cJSON_IsTrue(v);
    }
    if (!bad && (v = cJSON_GetObjectItemCaseSensitive(root, "temperature")) && !cJSON_IsNull(v)) {
        if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 2) bad = "'temperature' must be a number from 0 to 2";
        else j->sp.temperature = (float)v->valuedouble;
    }
    if (!bad && (v = cJSON_GetObjectItemCaseSensitive(root, "top_p")) && !cJSON_IsNull(v)) {
        if (!cJSON_IsNumber(v) || v->valuedouble <= 0 || v->valuedouble > 1) bad = "'top_p' must be a number in (0, 1]";
        else j->sp.top_p = (float)v->valuedouble;
    }
    if (!bad && (v = cJSON_GetObjectItemCaseSensitive(root, "top_k")) && !cJSON_IsNull(v)) {
        if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1e6 || v->valuedouble != (int32_t)v->valuedouble)
            bad = "'top_k' must be a non-negative integer";
        else j->sp.top_k = (int32_t)v->valuedouble;
    }
    if (!bad && (v = cJSON_GetObjectItemCaseSensitive(root, "seed")) && !cJSON_IsNull(v)) {
        if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 9007199254740991.0) bad = "'seed' must be a non-negative integer";
        else j->sp.seed = (uint64_t)v->valuedouble;
    }
    const char *mt = cJSON_HasObjectItem(root, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
    if (!bad && (v = cJSON_GetObjectItemCaseSensitive(root, mt)) && !cJSON_IsNull(v)) {
        if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble > 1e15 ||
            v->valuedouble != (double)(int64_t)v->valuedouble) /* bounded before the cast */
            bad = "'max_tokens' must be a positive integer";
        else if ((int64_t)v->valuedouble < j->max_tokens) j->max_tokens = (int64_t)v->valuedouble;
    }
    if (!bad && (v = cJSON_GetObjectItemCaseSensitive(root, "n")) && !cJSON_IsNull(v) &&
        !(cJSON_IsNumber(v) && v->valuedouble == 1))
        bad = "only n = 1 is supported";
    if (!bad && (v = cJSON_GetObjectItemCaseSensitive(root, "stop")) && !cJSON_IsNull(v)) {
        /* a string or up to 4 strings, each 1..64 bytes */
        const cJSON *one = cJSON_IsString(v) ? v : cJSON_IsArray(v) ? v->child : NULL;
        if (!one && !cJSON_IsArray(v)) bad = "'stop' must be a string or an array of strings";
        for (; !bad && one; one = cJSON_IsString(v) ? NULL : one->next) {
            if (!cJSON_IsString(one) || !one->valuestring[0] || strlen(one->valuestring) > 64)
                bad = "each 'stop' sequence must be a string of 1 to 64 bytes";
            else if (j->n_stop == 4) bad = "at most 4 'stop' sequences";
            else snprintf(j->stop[j->n_stop++], sizeof j->stop[0], "%s", one->valuestring);
        }
    }
    if (!bad && (v = cJSON_GetObjectItemCaseSensitive(root, "tool_choice")) && !cJSON_IsNull(v)) {
        if (cJSON_IsString(v) && strcmp(v->valuestring, "none") == 0) j->client_tools = 0;
        else if (!(cJSON_IsString(v) && strcmp(v->valuestring, "auto") == 0))
            bad = "'tool_choice' must be \"auto\" or \"none\"";
    }
    j->completion = completion;
    if (completion) {
        v = cJSON_GetObjectItemCaseSensitive(root, "prompt");
        if (!bad && !cJSON_IsString(v)) bad = "'prompt' (a string) is required";
        if (!bad && !(j->prompt = strdup(v->valuestring))) {
            *status = 500;
            bad = "out of memory";
        }
    } else if (!bad && !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(root, "messages"))) {
        bad = "'messages' (an array) is required";
    }
    if (bad) {
        snprintf(why, cap, "%s", bad);
        goto fail;
    }
    lm_error err = {0};
    lm_status st = completion ? LM_OK : lm_conversation_parse(body, len, &j->conv, &err);
    if (st) {
        snprintf(why, cap, "%.380s", err.message);
        if (st == LM_ERR_NOMEM) *status = 500;
        goto fail;
    }
    cJSON_Delete(root);
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    j->refs = 2;
    j->created = (int64_t)time(NULL);
    static unsigned long long counter;
    snprintf(j->id, sizeof j->id, "%s-%llx-%llu", completion ? "cmpl" : "chatcmpl", (unsigned long long)j->created, __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED));
    return j;
fail:
    cJSON_Delete(root);
    lm_conversation_free(&j->conv);
    free(j->prompt);
    free(j);
    return NULL;
}

/* The stream's reader: waits for the worker's next bytes. */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    job *j = cls;
    pthread_mutex_lock(&j->mu);
    while (j->sent == j->len && !j->done) pthread_cond_wait(&j->cv, &j->mu);
    ssize_t n;
    if (j->sent < j->len) {
        size_t k = j->len - j->sent < max ? j->len - j->sent : max;
        memcpy(buf, j->out + j->sent, k);
        j->sent += k;
        n = (ssize_t)k;
    } else {
        n = MHD_CONTENT_READER_END_OF_STREAM;
    }
    pthread_mutex_unlock(&j->mu);
    return n;
}

/* The stream is over (sent, or the client went away): the connection's reference goes. */
static void stream_free(void *cls) {
    job *j = cls;
    pthread_mutex_lock(&j->mu);
    if (!j->done) j->cancelled = 1;
    pthread_mutex_unlock(&j->mu);
    job_unref(j);
}

/* Constant-time comparison of the Authorization header with "Bearer KEY". */
static int key_ok(const char *header, const char *key) {
    static const char prefix[] = "Bearer ";
    size_t kl = strlen(key), hl = header ? strlen(header) : 0;
    unsigned diff = hl != kl + 7;
    for (size_t i = 0; i < kl + 7; i++) {
        char want = i < 7 ? prefix[i] : key[i - 7];
        char got = i < hl ? header[i] : 0;
        diff |= (unsigned)(unsigned char)(want ^ got);
    }
    return diff == 0;
}

static enum MHD_Result chat_completion(server *s, struct MHD_Connection *c, conn *cn, int completion) {
    unsigned status;
    char why[400];
    const char *code;
    job *j = parse_request(s, completion, cn->body ? cn->body : "", cn->len, &status, why, sizeof why, &code);
    if (!j) return send_error(s, c, status, status == 404 ? "invalid_request_error" : status >= 500 ? "server_error" : "invalid_request_error", code, why);
    pthread_mutex_lock(&s->mu);
    int full = s->qlen >= s->o.queue || s->qlen >= QUEUE_MAX || s->stopping;
    if (!full) {
        s->queue[(s->qhead + s->qlen) % QUEUE_MAX] = j;
        s->qlen++;
        pthread_cond_signal(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    if (full) {
        j->refs = 1;
        job_unref(j);
        return send_error(s, c, 503, "server_error", "queue_full", "the server is busy: too many requests are waiting");
    }
    if (j->stream) {
        count_status(s, 200);
        struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, j, stream_free);
        if (!r) {
            stream_free(j);
            return MHD_NO;
        }
        MHD_add_response_header(r, "Content-Type", "text/event-stream");
        MHD_add_response_header(r, "Cache-Control", "no-cache");
        enum MHD_Result ok = MHD_queue_response(c, 200, r);
        MHD_destroy_response(r);
        return ok;
    }
    pthread_mutex_lock(&j->mu);
    while (!j->done) pthread_cond_wait(&j->cv, &j->mu);
    unsigned st = j->status;
    char *body = j->out ? strdup(j->out) : NULL;
    pthread_mutex_unlock(&j->mu);
    job_unref(j);
    count_status(s, st);
    enum MHD_Result ok = send_text(c, st, "application/json", body ? body : "{}");
    free(body);
    return ok;
}

static enum MHD_Result metrics(server *s, struct MHD_Connection *c) {
    char body[2048];
    pthread_mutex_lock(&s->mu);
    snprintf(body, sizeof body,
             "# HELP llmos_requests_total HTTP requests answered, by status class.\n"
             "# TYPE llmos_requests_total counter\n"
             "llmos_requests_total{code=\"2xx\"} %llu\nllmos_requests_total{code=\"4xx\"} %llu\n"
             "llmos_requests_total{code=\"5xx\"} %llu\n"
             "# HELP llmos_prompt_tokens_total Prompt tokens of chat completions.\n"
             "# TYPE llmos_prompt_tokens_total counter\nllmos_prompt_tokens_total %llu\n"
             "# HELP llmos_completion_tokens_total Tokens generated.\n"
             "# TYPE llmos_completion_tokens_total counter\nllmos_completion_tokens_total %llu\n"
             "# HELP llmos_requests_running Chat completions being generated.\n"
             "# TYPE llmos_requests_running gauge\nllmos_requests_running %d\n"
             "# HELP llmos_requests_queued Chat completions waiting.\n"
             "# TYPE llmos_requests_queued gauge\nllmos_requests_queued %d\n",
             s->by_status[2], s->by_status[4], s->by_status[5], s->prompt_tokens, s->completion_tokens, s->running,
             s->qlen);
    pthread_mutex_unlock(&s->mu);
    count_status(s, 200);
    return send_text(c, 200, "text/plain; version=0.0.4", body);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    server *s = cls;
    conn *cn = *con_cls;
    if (!cn) { /* the headers: the key is checked before any of the body is kept */
        if (!(cn = calloc(1, sizeof *cn))) return MHD_NO;
        *con_cls = cn;
        cn->unauthorized = s->o.api_key && strcmp(url, "/health") != 0 && strcmp(url, "/") != 0 &&
                           !key_ok(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization"), s->o.api_key);
        return MHD_YES;
    }
    if (*upload_size) { /* the body, in pieces: kept up to the cap */
        int keep = !cn->unauthorized && !cn->too_large; /* else the bytes are dropped as they come */
        if (keep && cn->len + *upload_size > s->o.max_body) {
            cn->too_large = 1;
        } else if (keep) {
            if (cn->len + *upload_size + 1 > cn->cap) {
                size_t cap = (cn->len + *upload_size + 1) * 2;
                char *b = realloc(cn->body, cap);
                if (!b) return MHD_NO;
                cn->body = b, cn->cap = cap;
            }
            memcpy(cn->body + cn->len, upload, *upload_size);
            cn->len += *upload_size;
            cn->body[cn->len] = 0;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (cn->unauthorized)
        return send_error(s, c, 401, "invalid_request_error", "invalid_api_key", "a valid API key is required (Authorization: Bearer KEY)");
    if (cn->too_large) {
        char why[96];
        snprintf(why, sizeof why, "the request body is larger than %zu bytes", s->o.max_body);
        return send_error(s, c, 413, "invalid_request_error", NULL, why);
    }
    int get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
    if (strcmp(url, "/") == 0) {
        if (!get) return send_error(s, c, 405, "invalid_request_error", NULL, "use GET /");
        count_status(s, 200);
        struct MHD_Response *r = MHD_create_response_from_buffer(lm_chat_page_len, (void *)lm_chat_page, MHD_RESPMEM_PERSISTENT);
        if (!r) return MHD_NO;
        MHD_add_response_header(r, "Content-Type", "text/html; charset=utf-8");
        /* The page loads nothing from elsewhere, and may only talk to this server. */
        MHD_add_response_header(r, "Content-Security-Policy",
                                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'");
        enum MHD_Result ok = MHD_queue_response(c, 200, r);
        MHD_destroy_response(r);
        return ok;
    }
    if (strcmp(url, "/health") == 0) {
        if (!get) return send_error(s, c, 405, "invalid_request_error", NULL, "use GET /health");
        count_status(s, 200);
        return send_text(c, 200, "application/json", "{\"status\":\"ok\"}");
    }
    if (strcmp(url, "/metrics") == 0) {
        if (!get) return send_error(s, c, 405, "invalid_request_error", NULL, "use GET /metrics");
        return metrics(s, c);
    }
    if (strcmp(url, "/v1/models") == 0) {
        if (!get) return send_error(s, c, 405, "invalid_request_error", NULL, "use GET /v1/models");
        char body[512];
        cJSON *name = cJSON_CreateString(s->o.model_name);
        char *quoted = cJSON_PrintUnformatted(name);
        snprintf(body, sizeof body, "{\"object\":\"list\",\"data\":[{\"id\":%s,\"object\":\"model\",\"created\":0,\"owned_by\":\"llmos\"}]}",
                 quoted ? quoted : "\"model\"");
        cJSON_free(quoted);
        cJSON_Delete(name);
        count_status(s, 200);
        return send_text(c, 200, "application/json", body);
    }
    if (strcmp(url, "/v1/chat/completions") == 0) {
        if (!post) return send_error(s, c, 405, "invalid_request_error", NULL, "use POST /v1/chat/completions");
        return chat_completion(s, c, cn, 0);
    }
    if (strcmp(url, "/v1/completions") == 0) {
        if (!post) return send_error(s, c, 405, "invalid_request_error", NULL, "use POST /v1/completions");
        return chat_completion(s, c, cn, 1);
    }
    char why[300];
    snprintf(why, sizeof why, "unknown route %.16s %.200s", method, url);
    return send_error(s, c, 404, "invalid_request_error", "unknown_url", why);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)cls, (void)c, (void)toe;
    conn *cn = *con_cls;
    if (cn) free(cn->body), free(cn);
    *con_cls = NULL;
}

/* ------------------------------------------------------------------ run */

lm_status lm_server_run(const lm_model *m, const lm_chat_template *tpl, const char *template_source,
                        const lm_toolbox *tools, const lm_server_options *opts, volatile sig_atomic_t *stop,
                        lm_error *err) {
    server *s = calloc(1, sizeof *s);
    if (!s) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    s->model = m, s->o = *opts;
    if (!s->o.host) s->o.host = "127.0.0.1";
    if (!s->o.model_name) s->o.model_name = "llmos";
    if (!s->o.max_body) s->o.max_body = (size_t)1 << 20;
    if (s->o.max_tokens <= 0) s->o.max_tokens = 512;
    if (s->o.queue <= 0) s->o.queue = 16;
    if (s->o.timeout_s <= 0) s->o.timeout_s = 30;
    if (s->o.threads <= 0) s->o.threads = 1;
    if (s->o.prefill_chunk == 0) s->o.prefill_chunk = 128;
    const lm_model_config *cfg = lm_model_get_config(m);
    int64_t n_ctx = s->o.n_ctx > 0 ? s->o.n_ctx : (cfg->context_length < 4096 ? cfg->context_length : 4096);
    if (n_ctx > cfg->context_length) n_ctx = cfg->context_length;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    lm_sampler *smp0 = NULL;
    struct MHD_Daemon *d = NULL;
    pthread_t th;
    int started = 0, n_slots = s->o.parallel > 0 ? s->o.parallel : 1;
    lm_sampler_params sp0 = lm_sampler_default_params();
    int too_many = n_slots > 256; /* refused below; nothing is sized by it */
    if (too_many) n_slots = 1;
    slot *slots = calloc((size_t)n_slots, sizeof *slots);
    float *logits = malloc((size_t)n_slots * (size_t)cfg->n_vocab * sizeof *logits);
    /* A step holds every slot's next token, and prompt tokens up to the contexts' batch size
     * (wa.cap, set below; at most n_ctx). */
    const int64_t cap = n_ctx > n_slots ? n_ctx : n_slots;
    worker_args wa = {s, slots, n_slots, logits, 0, calloc((size_t)cap, sizeof(lm_context *)),
                      calloc((size_t)cap, sizeof(int32_t)), calloc((size_t)cap, sizeof(int64_t)),
                      calloc((size_t)cap, sizeof(slot *)), calloc((size_t)cap, 1), calloc((size_t)n_slots, sizeof(slot *))};
    lm_status st = too_many ? lm_error_set(err, LM_ERR_ARG, "parallel must be 1 to 256 slots, not %d", s->o.parallel)
                   : slots && logits && wa.ctxs && wa.tokens && wa.pos && wa.batch && wa.want && wa.filling
                       ? LM_OK : lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    if (!st) st = lm_sampler_init(&sp0, (int32_t)cfg->n_vocab, &smp0, err);
    for (int k = 0; !st && k < n_slots; k++) {
        st = lm_context_init_kv(m, n_ctx, s->o.threads, s->o.kv_type, &slots[k].ctx, err);
        if (!st) st = lm_chat_session_init(&slots[k].session, m, slots[k].ctx, smp0, tpl, template_source, tools, err);
        if (!st) lm_chat_session_set_prefill_chunk(slots[k].session, LM_CHAT_PREFILL_BY_CALLER);
    }
    if (!st) wa.cap = lm_context_batch_size(slots[0].ctx);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)s->o.port);
    if (!st && inet_pton(AF_INET, s->o.host, &addr.sin_addr) != 1)
        st = lm_error_set(err, LM_ERR_ARG, "--host %s is not an IPv4 address", s->o.host);
    if (!st) {
        if (pthread_create(&th, NULL, worker, &wa)) st = lm_error_set(err, LM_ERR_IO, "cannot start the worker thread");
        else started = 1;
    }
    if (!st) {
        d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, handle, s,
                             MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_NOTIFY_COMPLETED, completed, s,
                             MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->o.timeout_s,
                             MHD_OPTION_CONNECTION_LIMIT, (unsigned)(s->o.queue + n_slots + 64), MHD_OPTION_END);
        if (!d) st = lm_error_set(err, LM_ERR_IO, "cannot listen on %s:%d (in use, or not allowed)", s->o.host, s->o.port);
    }
    if (!st) {
        const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
        int port = info ? (int)info->port : s->o.port;
        if (s->o.on_listen) s->o.on_listen(s->o.user, port);
        const struct timespec tick = {0, 100 * 1000 * 1000};
        while (!*stop) nanosleep(&tick, NULL);
    }
    if (d) MHD_stop_daemon(d);
    if (started) {
        pthread_mutex_lock(&s->mu);
        s->stopping = 1;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(th, NULL);
    }
    for (int k = 0; slots && k < n_slots; k++) {
        lm_chat_session_free(slots[k].session);
        lm_context_free(slots[k].ctx);
    }
    free(slots);
    free(logits);
    free(wa.ctxs), free(wa.tokens), free(wa.pos), free(wa.batch), free(wa.want), free(wa.filling);
    lm_sampler_free(smp0);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
    return st;
}
