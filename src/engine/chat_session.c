/* A conversation with a model and the tool loop (llmos/chat_session.h). */
#include "llmos/chat_session.h"

#include "llmos/conversation.h"
#include "llmos/file.h"
#include "llmos/sft.h"
#include "llmos/tokenizer.h"
#include "llmos/tool_call.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lm_chat_session {
    const lm_model *model;
    const lm_tokenizer *tok;
    lm_context *ctx;
    lm_sampler *smp;
    const lm_chat_template *tpl;
    const lm_toolbox *tools;
    int template_has_calls; /* the template reads message.tool_calls */
    int32_t open_tag, close_tag; /* <tool_call> and </tool_call> as control tokens, or -1 */
    int64_t n_ctx;
    lm_detokenizer *detok;
    lm_conv_message *msgs; /* the conversation; strings owned */
    size_t n, cap;
    float *banned; /* (n_vocab) logits with the tool-call tags at -inf, when tools are off; else NULL */
    int32_t *kv; /* (n_ctx) the tokens whose keys and values are in the cache, in order */
    size_t n_kv;
    int64_t calls; /* tool calls so far: ids call_1, call_2, ... */
    char *client_tools; /* a client's tools array: rendered, calls returned to the client, not run */
    lm_chat_reply_stats stats; /* of the last reply */
    struct reply_state *reply; /* the reply in progress */
    size_t prefill_chunk; /* tokens of prompt a call to next() runs at most (0: all) */
};

typedef struct reply_state reply_state;
static void reply_clear(reply_state *r);
static reply_state *reply_new(void);

/* The tools array the template sees: the toolbox's, else the client's, else none. */
static const char *tools_json(const lm_chat_session *s) {
    return s->tools ? s->tools->tools_json : s->client_tools;
}

/* ---- growable text ---- */

typedef struct text {
    char *p;
    size_t len, cap;
} text;

static int text_add(text *t, const char *s, size_t n) {
    if (t->len + n + 1 > t->cap) {
        size_t cap = (t->len + n + 1) * 2;
        char *p = realloc(t->p, cap);
        if (!p) return -1;
        t->p = p, t->cap = cap;
    }
    memcpy(t->p + t->len, s, n);
    t->len += n;
    t->p[t->len] = 0;
    return 0;
}

static char *text_take(text *t) {
    char *p = t->p ? t->p : calloc(1, 1);
    memset(t, 0, sizeof *t);
    return p;
}

/* ---- messages ---- */

/* Appends a message taking ownership of content (and of call, one tool call, when not NULL). */
static lm_status push_owned(lm_chat_session *s, lm_chat_role role, char *content, lm_conv_tool_call *call,
                            char *tool_call_id, lm_error *err) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        lm_conv_message *m = realloc(s->msgs, cap * sizeof *m);
        if (!m) goto nomem;
        s->msgs = m, s->cap = cap;
    }
    lm_conv_message *m = &s->msgs[s->n];
    memset(m, 0, sizeof *m);
    m->role = role;
    m->content = content;
    m->content_len = content ? strlen(content) : 0;
    m->tool_call_id = tool_call_id;
    if (call) {
        m->tool_calls = call;
        m->n_tool_calls = 1;
    }
    s->n++;
    return LM_OK;
nomem:
    free(content);
    free(tool_call_id);
    if (call) {
        free(call->id), free(call->name), free(call->arguments), free(call);
    }
    return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
}

static void drop(lm_chat_session *s, size_t from, size_t to) {
    if (to <= from) return;
    for (size_t i = from; i < to; i++) lm_conv_message_free(&s->msgs[i]);
    memmove(s->msgs + from, s->msgs + to, (s->n - to) * sizeof *s->msgs);
    s->n -= to - from;
}

static int has_system(const lm_chat_session *s) { return s->n && s->msgs[0].role == LM_CHAT_SYSTEM; }

lm_status lm_chat_session_add(lm_chat_session *s, const char *role, const char *content, lm_error *err) {
    lm_chat_role r;
    if (lm_chat_role_parse(role, strlen(role), &r))
        return lm_error_set(err, LM_ERR_ARG, "unknown role '%.32s' (system, user, assistant, tool)", role);
    char *copy = strdup(content);
    if (!copy) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    return push_owned(s, r, copy, NULL, NULL, err);
}

lm_status lm_chat_session_set_system(lm_chat_session *s, const char *content, lm_error *err) {
    if (has_system(s)) drop(s, 0, 1);
    lm_status st = lm_chat_session_add(s, "system", content, err);
    if (st) return st;
    lm_conv_message m = s->msgs[s->n - 1];
    memmove(s->msgs + 1, s->msgs, (s->n - 1) * sizeof *s->msgs);
    s->msgs[0] = m;
    return LM_OK;
}

void lm_chat_session_reset(lm_chat_session *s, int keep_system) { drop(s, keep_system && has_system(s), s->n); }

size_t lm_chat_session_count(const lm_chat_session *s) { return s->n; }

/* ---- init ---- */

static int32_t control_token(const lm_tokenizer *tok, const char *s) {
    int32_t id = lm_tokenizer_find(tok, s, strlen(s));
    return id >= 0 && lm_tokenizer_token_type(tok, id) == LM_TOKEN_CONTROL ? id : -1;
}

lm_status lm_chat_session_init(lm_chat_session **out, const lm_model *m, lm_context *ctx, lm_sampler *smp,
                               const lm_chat_template *tpl, const char *template_source, const lm_toolbox *tools,
                               lm_error *err) {
    *out = NULL;
    lm_chat_session *s = calloc(1, sizeof *s);
    if (!s) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    s->model = m, s->ctx = ctx, s->smp = smp, s->tpl = tpl, s->tools = tools && tools->n ? tools : NULL;
    s->tok = lm_model_get_tokenizer(m);
    s->n_ctx = lm_context_size(ctx);
    s->template_has_calls = template_source && strstr(template_source, "tool_calls") != NULL;
    s->open_tag = control_token(s->tok, LM_TOOL_CALL_OPEN);
    s->close_tag = control_token(s->tok, LM_TOOL_CALL_CLOSE);
    if (s->open_tag < 0 || s->close_tag < 0) s->open_tag = s->close_tag = -1;
    lm_status st = lm_detokenizer_init(s->tok, 0, &s->detok, err);
    if (!st && !(s->kv = malloc((size_t)s->n_ctx * sizeof *s->kv))) st = lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    if (!st && !(s->reply = reply_new())) st = lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    /* Tools off: the model cannot open a call (a tool-trained model would otherwise end its answer
     * on the tag, a control token). */
    if (!st && !s->tools && s->open_tag >= 0 &&
        !(s->banned = malloc((size_t)lm_model_get_config(m)->n_vocab * sizeof *s->banned)))
        st = lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    if (st) {
        lm_chat_session_free(s);
        return st;
    }
    *out = s;
    return LM_OK;
}

void lm_chat_session_free(lm_chat_session *s) {
    if (!s) return;
    drop(s, 0, s->n);
    free(s->msgs);
    free(s->kv);
    if (s->reply) reply_clear(s->reply);
    free(s->reply);
    free(s->banned);
    free(s->client_tools);
    lm_detokenizer_free(s->detok);
    free(s);
}

lm_status lm_chat_session_set_client_tools(lm_chat_session *s, const char *tools_json, lm_error *err) {
    free(s->client_tools);
    s->client_tools = NULL;
    if (tools_json && !(s->client_tools = strdup(tools_json))) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    return LM_OK;
}

void lm_chat_session_set_sampler(lm_chat_session *s, lm_sampler *smp) { s->smp = smp; }

void lm_chat_session_take(lm_chat_session *s, lm_conversation *c) {
    drop(s, 0, s->n);
    free(s->msgs);
    s->msgs = c->messages;
    s->n = s->cap = (size_t)c->n_messages;
    c->messages = NULL;
    c->n_messages = 0;
}

const lm_chat_reply_stats *lm_chat_session_stats(const lm_chat_session *s) { return &s->stats; }

const lm_conv_message *lm_chat_session_message(const lm_chat_session *s, size_t i) {
    return i < s->n ? &s->msgs[i] : NULL;
}

/* ---- save and load ---- */

lm_status lm_chat_session_save(const lm_chat_session *s, const char *path, lm_error *err) {
    cJSON *root = cJSON_CreateObject(), *arr = root ? cJSON_AddArrayToObject(root, "messages") : NULL;
    int ok = arr != NULL;
    for (size_t i = 0; ok && i < s->n; i++) {
        const lm_conv_message *m = &s->msgs[i];
        cJSON *o = cJSON_CreateObject();
        ok = o && cJSON_AddItemToArray(arr, o) && cJSON_AddStringToObject(o, "role", lm_chat_role_name(m->role));
        if (ok) ok = m->content ? cJSON_AddStringToObject(o, "content", m->content) != NULL
                                : cJSON_AddNullToObject(o, "content") != NULL;
        if (ok && m->n_tool_calls) {
            cJSON *calls = cJSON_AddArrayToObject(o, "tool_calls");
            ok = calls != NULL;
            for (int32_t k = 0; ok && k < m->n_tool_calls; k++) {
                const lm_conv_tool_call *c = &m->tool_calls[k];
                cJSON *co = cJSON_CreateObject(), *fn = NULL;
                ok = co && cJSON_AddItemToArray(calls, co) && (!c->id || cJSON_AddStringToObject(co, "id", c->id)) &&
                     cJSON_AddStringToObject(co, "type", "function") && (fn = cJSON_AddObjectToObject(co, "function")) &&
                     cJSON_AddStringToObject(fn, "name", c->name) &&
                     cJSON_AddStringToObject(fn, "arguments", c->arguments ? c->arguments : "{}");
            }
        }
        if (ok && m->tool_call_id) ok = cJSON_AddStringToObject(o, "tool_call_id", m->tool_call_id) != NULL;
    }
    char *json = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!json) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    lm_atomic_file *f;
    lm_status st = lm_atomic_file_open(path, &f, err);
    if (!st) {
        st = lm_atomic_file_write(f, json, strlen(json), err);
        if (!st) st = lm_atomic_file_write(f, "\n", 1, err);
        if (!st) st = lm_atomic_file_commit(f, err);
        else lm_atomic_file_abort(f);
    }
    cJSON_free(json);
    return st;
}

lm_status lm_chat_session_load(lm_chat_session *s, const char *path, lm_error *err) {
    lm_conversation_set *set;
    lm_status st = lm_conversations_read(path, 1, &set, err);
    if (st) return st;
    if (set->n < 1) {
        lm_conversation_set_free(set);
        return lm_error_set(err, LM_ERR_FORMAT, "%s holds no conversation", path);
    }
    lm_chat_session_take(s, &set->items[0]);
    lm_conversation_set_free(set);
    return LM_OK;
}

/* ---- the reply ---- */

/* Renders the conversation with the generation prompt into *toks. */
static lm_status render(lm_chat_session *s, int32_t **toks, size_t *nt, lm_error *err) {
    lm_conversation view = {0};
    view.messages = s->msgs;
    view.n_messages = (int32_t)s->n;
    lm_chat_message *msgs;
    lm_status st = lm_conversation_messages(&view, &msgs, err);
    if (st) return st;
    st = lm_chat_tokenize_tools(s->tok, s->tpl, msgs, s->n, 1, tools_json(s), toks, nt, err);
    free(msgs);
    return st;
}

typedef struct scan_state {
    const lm_chat_reply_hooks *hooks;
    text *answer;
    text *call;
    int have_call;
    lm_error *err;
} scan_state;

/* A reply in progress (lm_chat_session_begin_reply .. the last lm_chat_session_next). A reply is
 * rounds: each renders the conversation, prefills what the cache lacks, and generates until the
 * answer ends or a tool call closes; a call run by the toolbox starts the next round. */
struct reply_state {
    int active;
    int64_t max_tokens;          /* per round */
    lm_chat_reply_hooks hooks;   /* a copy; all NULL when none were given */
    text answer, call;           /* the answer's text of this round; the call being written */
    int round;
    const float *logits;         /* (n_vocab) of the last token run */
    int64_t pos, made;           /* the next token's position; tokens generated this round */
    int calls_on, token_tags;    /* calls are rendered; their tags are control tokens */
    int in_call, have_call;      /* between tag tokens; a call closed */
    lm_tool_call_scanner *scanner; /* finds the tags in the text, when they are not tokens */
    scan_state ss;
    int32_t pending;             /* the token handed out by next, until accepted; -1 none */
    int32_t *toks;               /* the round's render while its prefill runs (nt tokens, done cached) */
    size_t nt, done;
};

static lm_status show(const lm_chat_reply_hooks *h, text *answer, const char *p, size_t n, lm_error *err) {
    if (text_add(answer, p, n)) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    lm_status st = h && h->on_text ? h->on_text(h->user, p, n) : LM_OK;
    return st ? lm_error_set(err, st, "the reply was stopped") : LM_OK;
}

static lm_status scan_text(void *user, const char *p, size_t n) {
    scan_state *ss = user;
    return show(ss->hooks, ss->answer, p, n, ss->err);
}

static lm_status scan_call(void *user, const char *p, size_t n) {
    scan_state *ss = user;
    if (ss->have_call) return LM_OK; /* one call per round: generation stops at the first */
    ss->have_call = 1;
    return text_add(ss->call, p, n) ? LM_ERR_NOMEM : LM_OK;
}

/* Trims ASCII white space around t's text in place. */
static void trim(text *t) {
    if (!t->p) return; /* nothing was written (a call opened and closed at once) */
    size_t a = 0, b = t->len;
    while (a < b && strchr(" \t\r\n", t->p[a])) a++;
    while (b > a && strchr(" \t\r\n", t->p[b - 1])) b--;
    memmove(t->p, t->p + a, b - a);
    t->len = b - a;
    t->p[t->len] = 0;
}

/* Decoded text goes to the call being written, the scanner (tags found in the text), or the answer. */
static lm_status emit(reply_state *r, const char *p, size_t n, lm_error *err) {
    if (r->in_call) {
        if (r->call.len + n > LM_TOOL_CALL_MAX_BYTES)
            return lm_error_set(err, LM_ERR_LIMIT, "a tool call is longer than %zu bytes", LM_TOOL_CALL_MAX_BYTES);
        return text_add(&r->call, p, n) ? lm_error_set(err, LM_ERR_NOMEM, "out of memory") : LM_OK;
    }
    if (r->scanner) return lm_tool_call_scanner_push(r->scanner, p, n, err);
    return show(&r->hooks, &r->answer, p, n, err);
}

static void note(reply_state *r, const char *text) {
    if (r->hooks.on_note) r->hooks.on_note(r->hooks.user, text);
}

/* Stores the assistant's round that ended in a call, runs the call and adds its result. */
static lm_status run_call(lm_chat_session *s, text *answer, text *call, const lm_chat_reply_hooks *h, lm_error *err) {
    trim(call);
    char *name, *args, *result;
    int is_error;
    lm_status st = lm_toolbox_run(s->tools, call->p ? call->p : "", call->len, &name, &args, &result, &is_error, err);
    if (st) return st;
    if (h && h->on_tool) h->on_tool(h->user, name, args, result, is_error);
    char id[32];
    snprintf(id, sizeof id, "call_%lld", (long long)++s->calls);
    lm_conv_tool_call *tc = NULL;
    if (name && s->template_has_calls) {
        /* The template writes "\n" between the text and the call: the text is what came before it. */
        if (answer->len && answer->p[answer->len - 1] == '\n') answer->p[--answer->len] = 0;
        tc = calloc(1, sizeof *tc);
        if (tc) tc->id = strdup(id), tc->name = name, tc->arguments = args, name = args = NULL;
        if (!tc || !tc->id) st = lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    } else if (text_add(answer, LM_TOOL_CALL_OPEN "\n", strlen(LM_TOOL_CALL_OPEN) + 1) ||
               text_add(answer, call->p ? call->p : "", call->len) ||
               text_add(answer, "\n" LM_TOOL_CALL_CLOSE, strlen(LM_TOOL_CALL_CLOSE) + 1)) {
        st = lm_error_set(err, LM_ERR_NOMEM, "out of memory"); /* a template without tool_calls: the call stays text */
    }
    free(name), free(args);
    if (st) {
        if (tc) free(tc->id), free(tc->name), free(tc->arguments), free(tc);
        free(result);
        return st;
    }
    st = push_owned(s, LM_CHAT_ASSISTANT, text_take(answer), tc, NULL, err);
    char *tool_id = tc ? strdup(id) : NULL;
    if (!st) st = push_owned(s, LM_CHAT_TOOL, result, NULL, tool_id, err);
    else free(result), free(tool_id);
    call->len = 0;
    return st;
}

/* Appends the call's text, between its tags, to the answer (a call that is not run). */
static lm_status call_as_text(text *answer, const text *call, lm_error *err) {
    if (text_add(answer, LM_TOOL_CALL_OPEN, strlen(LM_TOOL_CALL_OPEN)) || text_add(answer, call->p ? call->p : "", call->len) ||
        text_add(answer, LM_TOOL_CALL_CLOSE, strlen(LM_TOOL_CALL_CLOSE)))
        return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    return LM_OK;
}

/* Stores the round that ended in a call for the client (not run): the assistant message with the
 * call in its tool_calls; a call that does not parse stays in the answer as text. */
static lm_status return_call(lm_chat_session *s, text *answer, text *call, lm_error *err) {
    trim(call);
    char *name = NULL, *args = NULL;
    lm_error perr = {0};
    if (lm_tool_call_parse(call->p ? call->p : "", call->len, &name, &args, &perr)) {
        lm_status st = call_as_text(answer, call, err);
        return st ? st : push_owned(s, LM_CHAT_ASSISTANT, text_take(answer), NULL, NULL, err);
    }
    if (answer->len && answer->p[answer->len - 1] == '\n') answer->p[--answer->len] = 0;
    char id[32];
    snprintf(id, sizeof id, "call_%lld", (long long)++s->calls);
    lm_conv_tool_call *tc = calloc(1, sizeof *tc);
    if (tc) tc->id = strdup(id), tc->name = name, tc->arguments = args, name = args = NULL;
    free(name), free(args);
    if (!tc || !tc->id) {
        if (tc) free(tc->id), free(tc->name), free(tc->arguments), free(tc);
        return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    }
    s->stats.finish = LM_FINISH_TOOL_CALLS;
    return push_owned(s, LM_CHAT_ASSISTANT, text_take(answer), tc, NULL, err);
}

/* Frees what the reply in progress holds; nothing is stored. */
static void reply_clear(reply_state *r) {
    lm_tool_call_scanner_free(r->scanner);
    free(r->toks);
    free(r->answer.p);
    free(r->call.p);
    memset(r, 0, sizeof *r);
    r->pending = -1;
}

static reply_state *reply_new(void) {
    reply_state *r = calloc(1, sizeof *r);
    if (r) r->pending = -1;
    return r;
}

/* Starts a round: renders (dropping the oldest whole turns while it does not fit with room to
 * answer), keeps what the cache lacks for prefill(), and makes ready to generate. */
static lm_status start_round(lm_chat_session *s, lm_error *err) {
    reply_state *r = s->reply;
    int32_t *toks = NULL;
    size_t nt = 0;
    lm_status st;
    for (;;) {
        if ((st = render(s, &toks, &nt, err))) return st;
        /* Only whole earlier turns go: from the first message after the system prompt up to
         * the next user message, never the turn being answered (its question, its calls). */
        size_t first = has_system(s), upto = first + 1;
        while (upto < s->n && s->msgs[upto].role != LM_CHAT_USER) upto++;
        if ((int64_t)nt + r->max_tokens <= s->n_ctx || upto >= s->n || first >= s->n) break;
        free(toks);
        toks = NULL;
        drop(s, first, upto);
        note(r, "the context is full: the oldest turn was dropped");
    }
    if ((int64_t)nt >= s->n_ctx) {
        free(toks);
        if (r->round == 0 && s->n && s->msgs[s->n - 1].role == LM_CHAT_USER) drop(s, s->n - 1, s->n);
        return lm_error_set(err, LM_ERR_LIMIT, "the conversation does not fit in the context of %lld tokens",
                            (long long)s->n_ctx);
    }
    /* Reuse the cache for the longest prefix shared with what is cached; at least the last
     * token runs, for the logits. The rest is prefilled by prefill(), from next(). */
    size_t p = 0;
    while (p < s->n_kv && p + 1 < nt && s->kv[p] == toks[p]) p++;
    s->n_kv = p;
    free(r->toks);
    r->toks = toks, r->nt = nt, r->done = p;
    if (r->round == 0) s->stats.prompt_tokens = (int64_t)nt;
    s->stats.finish = LM_FINISH_LENGTH; /* until an end-of-turn token says otherwise */
    r->pos = (int64_t)nt;
    r->made = 0;
    r->in_call = r->have_call = 0;
    r->calls_on = tools_json(s) != NULL;
    r->token_tags = r->calls_on && s->open_tag >= 0;
    r->ss = (scan_state){&r->hooks, &r->answer, &r->call, 0, err};
    if (r->calls_on && !r->token_tags) return lm_tool_call_scanner_init(&r->scanner, 0, scan_text, scan_call, &r->ss, err);
    return LM_OK;
}

/* n more of the round's prompt tokens are in the cache; the last one's logits come with the last. */
static lm_status prompt_cached(lm_chat_session *s, size_t n, const float *logits, lm_error *err) {
    reply_state *r = s->reply;
    if (r->done + n == r->nt && !logits) return lm_error_set(err, LM_ERR_ARG, "the prompt's last token needs its logits");
    memcpy(s->kv + r->done, r->toks + r->done, n * sizeof *s->kv);
    r->done += n;
    s->n_kv = r->done;
    if (r->done == r->nt) {
        free(r->toks);
        r->toks = NULL;
        r->logits = logits;
    }
    return LM_OK;
}

/* Runs up to max (0: all) of the round's tokens that the cache lacks; when none are left, the
 * last one's logits are the first to sample from. */
static lm_status prefill(lm_chat_session *s, size_t max, lm_error *err) {
    reply_state *r = s->reply;
    size_t n = r->nt - r->done;
    if (max && n > max) n = max;
    const float *logits;
    lm_status st = lm_context_forward_batch(s->ctx, r->toks + r->done, (int64_t)n, (int64_t)r->done, NULL, &logits, err);
    if (st) return st; /* the cache holds the first n_kv tokens still */
    return prompt_cached(s, n, logits, err);
}

/* Ends a round: flushes the text, then runs a call (and starts the next round) or stores the
 * answer; *done says the reply is complete. */
static lm_status end_round(lm_chat_session *s, int *done, lm_error *err) {
    reply_state *r = s->reply;
    char piece[1024];
    lm_status st = LM_OK;
    *done = 0;
    int64_t k = lm_detokenizer_flush(s->detok, piece, sizeof piece);
    if (k > 0) st = emit(r, piece, (size_t)k, err);
    if (r->scanner) {
        if (!st && !r->ss.have_call) {
            lm_error ferr = {0};
            if (lm_tool_call_scanner_finish(r->scanner, &ferr)) note(r, ferr.message);
        }
        lm_tool_call_scanner_free(r->scanner);
        r->scanner = NULL;
        r->have_call = r->ss.have_call;
    }
    if (st) return st;
    if (r->in_call) { /* an unclosed call stays in the answer as text */
        note(r, "the answer ended inside a tool call");
        if (text_add(&r->answer, LM_TOOL_CALL_OPEN, strlen(LM_TOOL_CALL_OPEN)) ||
            text_add(&r->answer, r->call.p ? r->call.p : "", r->call.len))
            return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
        r->call.len = 0;
        r->in_call = 0;
    }
    if (r->have_call && s->tools && r->round < LM_CHAT_MAX_CALLS_PER_REPLY) {
        if ((st = run_call(s, &r->answer, &r->call, &r->hooks, err))) return st;
        r->round++;
        return start_round(s, err);
    }
    *done = 1;
    if (r->have_call && !s->tools) return return_call(s, &r->answer, &r->call, err);
    if (r->have_call) { /* past the calls a reply may make: the call stays in the answer as text */
        if ((st = call_as_text(&r->answer, &r->call, err))) return st;
        note(r, "too many tool calls in one reply: this one was not run");
    }
    return push_owned(s, LM_CHAT_ASSISTANT, text_take(&r->answer), NULL, NULL, err);
}

/* Ends the reply in progress: what the detokenizer still holds of a character is dropped (a
 * stopped reply must not leave bytes for the next one), and the reply's state is freed. */
static void reply_end(lm_chat_session *s) {
    char piece[1024]; /* as in end_round: more than a character's bytes */
    (void)lm_detokenizer_flush(s->detok, piece, sizeof piece);
    reply_clear(s->reply);
}

lm_status lm_chat_session_begin_reply(lm_chat_session *s, int64_t max_tokens, const lm_chat_reply_hooks *h,
                                      lm_error *err) {
    reply_state *r = s->reply;
    reply_clear(r);
    memset(&s->stats, 0, sizeof s->stats);
    if (max_tokens < 0) return lm_error_set(err, LM_ERR_ARG, "max_tokens must be >= 0");
    r->max_tokens = max_tokens;
    if (h) r->hooks = *h;
    lm_status st = start_round(s, err);
    if (st) reply_end(s);
    else r->active = 1;
    return st;
}

int lm_chat_session_replying(const lm_chat_session *s) { return s->reply->active; }

lm_context *lm_chat_session_context(const lm_chat_session *s) { return s->ctx; }

void lm_chat_session_forget_cache(lm_chat_session *s) { s->n_kv = 0; }

void lm_chat_session_set_prefill_chunk(lm_chat_session *s, size_t tokens) { s->prefill_chunk = tokens; }

size_t lm_chat_session_prompt(const lm_chat_session *s, const int32_t **tokens, int64_t *pos0) {
    const reply_state *r = s->reply;
    if (!r->active || !r->toks) return 0;
    *tokens = r->toks + r->done;
    *pos0 = (int64_t)r->done;
    return r->nt - r->done;
}

lm_status lm_chat_session_prompt_ran(lm_chat_session *s, size_t n, const float *logits, lm_error *err) {
    reply_state *r = s->reply;
    if (!r->active || !r->toks || n > r->nt - r->done)
        return lm_error_set(err, LM_ERR_ARG, "%zu prompt tokens ran, but the reply has %zu to run", n,
                            r->active && r->toks ? r->nt - r->done : 0);
    return prompt_cached(s, n, logits, err);
}

/* One token of the round, sampled from the last logits. Returns 1 with *id to run, 0 when the
 * round ends here (the token is not run), or an error. */
static int sample_one(lm_chat_session *s, int32_t *out, lm_status *st, lm_error *err) {
    reply_state *r = s->reply;
    const lm_chat_reply_hooks *h = &r->hooks;
    char piece[1024];
    *st = LM_OK;
    if (r->have_call || r->ss.have_call) return 0; /* the call is complete: run it before going on */
    if (h->should_stop && h->should_stop(h->user)) return 0;
    if (r->made >= r->max_tokens || r->pos >= s->n_ctx) return 0;
    const float *logits = r->logits;
    if (s->banned && !r->calls_on) {
        memcpy(s->banned, logits, (size_t)lm_model_get_config(s->model)->n_vocab * sizeof *s->banned);
        s->banned[s->open_tag] = s->banned[s->close_tag] = -INFINITY;
        logits = s->banned;
    }
    int32_t id = lm_sampler_sample(s->smp, logits, NULL, 0);
    if (r->token_tags && (id == s->open_tag || id == s->close_tag)) {
        int64_t k = lm_detokenizer_flush(s->detok, piece, sizeof piece);
        if (k > 0 && (*st = emit(r, piece, (size_t)k, err))) return 0;
        if (id == s->open_tag) {
            r->in_call = 1; /* a second open inside a call is ignored */
        } else if (r->in_call) {
            r->in_call = 0;
            r->have_call = 1;
        }
    } else if (lm_tokenizer_is_eog(s->tok, id) || lm_tokenizer_token_type(s->tok, id) == LM_TOKEN_CONTROL) {
        s->stats.finish = LM_FINISH_STOP;
        return 0; /* the end of the answer (or a control token it must not contain) */
    } else {
        int64_t k = lm_detokenizer_push(s->detok, id, piece, sizeof piece);
        if (k > 0) *st = emit(r, piece, (size_t)k, err);
        if (*st == LM_ERR_LIMIT) {
            /* A call past the cap (model output is untrusted): the answer ends here; a call
             * written between tag tokens still goes to the toolbox, which answers it with an
             * error the model can read. */
            note(r, err->message);
            *st = LM_OK;
            if (r->in_call) r->in_call = 0, r->have_call = 1;
            return 0;
        }
        if (*st) return 0;
    }
    *out = id;
    return 1;
}

lm_status lm_chat_session_next(lm_chat_session *s, int32_t *token, int64_t *pos, lm_error *err) {
    reply_state *r = s->reply;
    *token = LM_CHAT_DONE;
    *pos = 0;
    if (!r->active) return lm_error_set(err, LM_ERR_ARG, "no reply is in progress");
    if (r->pending >= 0) return lm_error_set(err, LM_ERR_ARG, "the last token was not accepted");
    lm_status st = LM_OK;
    r->ss.err = err; /* the scanner's callbacks report into this call's error */
    for (;;) {
        int32_t id;
        if (r->toks) { /* the round's prompt first, a chunk per call when chunks are set */
            if (s->prefill_chunk == LM_CHAT_PREFILL_BY_CALLER) { /* the caller runs it */
                *token = LM_CHAT_PREFILLING;
                return LM_OK;
            }
            if ((st = prefill(s, s->prefill_chunk, err))) break;
            if (r->toks) {
                *token = LM_CHAT_PREFILLING;
                return LM_OK;
            }
        }
        if (sample_one(s, &id, &st, err)) {
            r->pending = *token = id;
            *pos = r->pos;
            return LM_OK;
        }
        int done = 0;
        if (st || (st = end_round(s, &done, err)) || done) break;
    }
    reply_end(s);
    return st;
}

void lm_chat_session_accept(lm_chat_session *s, const float *logits) {
    reply_state *r = s->reply;
    if (!r->active || r->pending < 0) return;
    s->kv[s->n_kv++] = r->pending; /* pos == n_kv: the cache grows by this token */
    r->pending = -1;
    r->logits = logits;
    r->pos++;
    r->made++;
    s->stats.completion_tokens++;
}

void lm_chat_session_abort_reply(lm_chat_session *s) {
    reply_end(s);
    /* Every accepted token is in the cache; a token handed out but not accepted is not counted. */
}

lm_status lm_chat_session_reply(lm_chat_session *s, int64_t max_tokens, const lm_chat_reply_hooks *h, lm_error *err) {
    lm_status st = lm_chat_session_begin_reply(s, max_tokens, h, err);
    while (!st) {
        int32_t token;
        int64_t pos;
        const float *logits;
        if ((st = lm_chat_session_next(s, &token, &pos, err)) || token == LM_CHAT_DONE) break;
        if (token == LM_CHAT_PREFILLING) continue;
        if ((st = lm_context_forward(s->ctx, token, pos, &logits, err))) {
            lm_chat_session_abort_reply(s);
            break;
        }
        lm_chat_session_accept(s, logits);
    }
    return st;
}
