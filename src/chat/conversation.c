/* Conversations from JSONL: a bounded line reader, a pre-scan of each line
 * (UTF-8, NUL bytes, control characters and "\u0000" in strings, which cJSON
 * would accept or silently truncate), cJSON for the structure, and the checks
 * of the message shape. Bad lines are skipped and recorded, or fail the read. */
#include "llmos/conversation.h"
#include "llmos/chat_template.h"

#include "../base/checked.h"

#include <cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- roles ---- */

static const char *const role_names[] = {"system", "user", "assistant", "tool"};

const char *lm_chat_role_name(lm_chat_role role) {
    if ((int)role >= 0 && (int)role < 4) return role_names[role];
    return "unknown";
}

int lm_chat_role_parse(const char *name, size_t n, lm_chat_role *out) {
    if (!name) return -1;
    for (int i = 0; i < 4; i++) {
        if (strlen(role_names[i]) == n && memcmp(role_names[i], name, n) == 0) {
            if (out) *out = (lm_chat_role)i;
            return 0;
        }
    }
    return -1;
}

/* ---- freeing ---- */

void lm_conv_message_free(lm_conv_message *m) {
    free(m->content);
    for (int32_t i = 0; i < m->n_tool_calls; i++) {
        free(m->tool_calls[i].id);
        free(m->tool_calls[i].name);
        free(m->tool_calls[i].arguments);
    }
    free(m->tool_calls);
    free(m->tool_call_id);
    memset(m, 0, sizeof *m);
}

static void conversation_free(lm_conversation *c) {
    for (int32_t i = 0; i < c->n_messages; i++) lm_conv_message_free(&c->messages[i]);
    free(c->messages);
    free(c->chosen);
    free(c->rejected);
    free(c->tools_json);
    c->tools_json = NULL;
    c->messages = NULL;
    c->chosen = c->rejected = NULL;
    c->n_messages = 0;
}

void lm_conversation_set_free(lm_conversation_set *set) {
    if (!set) return;
    for (int64_t i = 0; i < set->n; i++) conversation_free(&set->items[i]);
    free(set->items);
    for (int64_t i = 0; i < set->n_skipped; i++) free(set->skipped[i].reason);
    free(set->skipped);
    free(set);
}

/* ---- small helpers ---- */

static char *dup_str(const char *s) {
    size_t n = strlen(s);
    char *p = malloc(n + 1);
    if (p) memcpy(p, s, n + 1);
    return p;
}

/* p (an array of elem-byte items with *cap slots) grown to hold need items,
 * doubling, never past max items; NULL (p untouched) on allocation failure or
 * size overflow. */
static void *grow(void *p, int64_t *cap, int64_t need, size_t elem, int64_t max) {
    if (need <= *cap) return p;
    if (need > max) return NULL;
    int64_t ncap = *cap ? *cap : 16;
    while (ncap < need) ncap = ncap > max / 2 ? max : ncap * 2;
    size_t bytes;
    if (lm_mul_overflow_size((size_t)ncap, elem, &bytes)) return NULL;
    void *q = realloc(p, bytes);
    if (!q) return NULL;
    *cap = ncap;
    return q;
}

/* Outcome of parsing one line. */
enum { LINE_OK = 0, LINE_BAD = 1, LINE_NOMEM = -1 };

/* "a user", "an assistant", ... for messages. */
static const char *role_with_article(lm_chat_role role) {
    static const char *const names[] = {"a system", "a user", "an assistant", "a tool"};
    return (int)role >= 0 && (int)role < 4 ? names[role] : "an unknown";
}

static int bad(char *reason, size_t cap, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static int bad(char *reason, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, cap, fmt, ap);
    va_end(ap);
    return LINE_BAD;
}

/* ---- the pre-scan ---- */

/* Length of the valid UTF-8 sequence at s[0..n), or 0 (overlong forms,
 * surrogates and code points past U+10FFFF are invalid). */
static size_t utf8_len(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07;
    else return 0;
    if (len > n) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/* Checks what cJSON does not: the line is UTF-8, has no NUL byte, and its
 * strings hold no raw control character and no "\u0000" (which would cut a
 * C string short); and bounds the tree cJSON will build (a value per comma or
 * opening bracket, plus one), so a line costs at most a fixed multiple of
 * LM_CONV_MAX_JSON_VALUES nodes whatever its length. */
static int prescan(const char *line, size_t n, char *reason, size_t rcap) {
    const unsigned char *s = (const unsigned char *)line;
    int in_string = 0;
    size_t i = 0, values = 1;
    while (i < n) {
        unsigned char c = s[i];
        if (c == 0) return bad(reason, rcap, "NUL byte at byte %zu", i + 1);
        if (c >= 0x80) {
            size_t k = utf8_len(s + i, n - i);
            if (!k) return bad(reason, rcap, "invalid UTF-8 at byte %zu", i + 1);
            i += k;
            continue;
        }
        if (in_string) {
            if (c < 0x20) return bad(reason, rcap, "invalid JSON: control character in a string at byte %zu", i + 1);
            if (c == '"') in_string = 0;
            else if (c == '\\' && i + 1 < n && s[i + 1] >= 0x20 && s[i + 1] < 0x80) {
                if (s[i + 1] == 'u' && i + 6 <= n && memcmp(s + i + 2, "0000", 4) == 0)
                    return bad(reason, rcap, "string contains \\u0000 at byte %zu", i + 1);
                i += 2; /* the escaped character is ASCII in valid JSON; cJSON checks the rest */
                continue;
            }
        } else if (c == '"') {
            in_string = 1;
        } else if ((c == ',' || c == '[' || c == '{') && ++values > LM_CONV_MAX_JSON_VALUES) {
            return bad(reason, rcap, "more than %d JSON values", LM_CONV_MAX_JSON_VALUES);
        }
        i++;
    }
    return LINE_OK;
}

/* ---- the shape ---- */

static const char *type_name(const cJSON *v) {
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    return "an unknown value";
}

/* The member key of obj, or NULL; *dup set when the key appears twice. */
static const cJSON *member(const cJSON *obj, const char *key, int *dup) {
    const cJSON *found = NULL;
    *dup = 0;
    for (const cJSON *c = obj->child; c; c = c->next) {
        if (c->string && strcmp(c->string, key) == 0) {
            if (found) {
                *dup = 1;
                return found;
            }
            found = c;
        }
    }
    return found;
}

#define MEMBER(var, obj, key, ...)                                                          \
    do {                                                                                    \
        int dup_;                                                                           \
        var = member(obj, key, &dup_);                                                      \
        if (dup_) return bad(reason, rcap, __VA_ARGS__);                                    \
    } while (0)

typedef struct limits {
    size_t max_line_bytes;
    int32_t max_messages;
    int64_t max_conversations;
    int64_t max_skipped;
    int pairs;
    int request; /* a chat request: no assistant message needed */
} limits;

static int parse_tool_calls(const cJSON *arr, int mi, lm_conv_message *m, char *reason, size_t rcap) {
    int32_t count = 0;
    for (const cJSON *c = arr->child; c; c = c->next) {
        if (++count > LM_CONV_MAX_TOOL_CALLS)
            return bad(reason, rcap, "message %d: more than %d tool calls", mi, LM_CONV_MAX_TOOL_CALLS);
    }
    if (count == 0) return LINE_OK;
    size_t bytes;
    if (lm_mul_overflow_size((size_t)count, sizeof *m->tool_calls, &bytes)) return LINE_NOMEM;
    m->tool_calls = malloc(bytes);
    if (!m->tool_calls) return LINE_NOMEM;
    int32_t k = 0;
    for (const cJSON *c = arr->child; c; c = c->next, k++) {
        const cJSON *id, *type, *fn, *name, *args;
        if (!cJSON_IsObject(c)) return bad(reason, rcap, "message %d: tool call %d is not an object", mi, k + 1);
        MEMBER(id, c, "id", "message %d: tool call %d has \"id\" twice", mi, k + 1);
        MEMBER(type, c, "type", "message %d: tool call %d has \"type\" twice", mi, k + 1);
        MEMBER(fn, c, "function", "message %d: tool call %d has \"function\" twice", mi, k + 1);
        if (id && !cJSON_IsNull(id) && !cJSON_IsString(id))
            return bad(reason, rcap, "message %d: tool call %d: \"id\" is %s, not a string", mi, k + 1, type_name(id));
        if (type && !(cJSON_IsString(type) && strcmp(type->valuestring, "function") == 0))
            return bad(reason, rcap, "message %d: tool call %d: \"type\" is not \"function\"", mi, k + 1);
        if (!fn || !cJSON_IsObject(fn))
            return bad(reason, rcap, "message %d: tool call %d has no \"function\" object", mi, k + 1);
        MEMBER(name, fn, "name", "message %d: tool call %d has \"name\" twice", mi, k + 1);
        MEMBER(args, fn, "arguments", "message %d: tool call %d has \"arguments\" twice", mi, k + 1);
        if (!name || !cJSON_IsString(name) || !name->valuestring[0])
            return bad(reason, rcap, "message %d: tool call %d: \"name\" is not a non-empty string", mi, k + 1);
        if (args && !cJSON_IsNull(args) && !cJSON_IsString(args) && !cJSON_IsObject(args))
            return bad(reason, rcap, "message %d: tool call %d: \"arguments\" is %s, not a string", mi, k + 1,
                       type_name(args));

        lm_conv_tool_call *t = &m->tool_calls[k];
        memset(t, 0, sizeof *t);
        m->n_tool_calls = k + 1; /* from here on lm_conv_message_free frees this call */
        t->name = dup_str(name->valuestring);
        if (!t->name) return LINE_NOMEM;
        if (id && cJSON_IsString(id) && !(t->id = dup_str(id->valuestring))) return LINE_NOMEM;
        if (args && cJSON_IsString(args)) t->arguments = dup_str(args->valuestring);
        else if (args && cJSON_IsObject(args)) {
            char *text = cJSON_PrintUnformatted(args); /* cJSON's allocator: copied into ours */
            if (text) t->arguments = dup_str(text);
            cJSON_free(text);
        } else t->arguments = dup_str("");
        if (!t->arguments) return LINE_NOMEM;
    }
    return LINE_OK;
}

static int parse_message(const cJSON *obj, int mi, lm_conv_message *m, char *reason, size_t rcap) {
    const cJSON *role, *content, *calls, *call_id;
    if (!cJSON_IsObject(obj)) return bad(reason, rcap, "message %d is %s, not an object", mi, type_name(obj));
    MEMBER(role, obj, "role", "message %d has \"role\" twice", mi);
    MEMBER(content, obj, "content", "message %d has \"content\" twice", mi);
    MEMBER(calls, obj, "tool_calls", "message %d has \"tool_calls\" twice", mi);
    MEMBER(call_id, obj, "tool_call_id", "message %d has \"tool_call_id\" twice", mi);

    if (!role) return bad(reason, rcap, "message %d has no \"role\"", mi);
    if (!cJSON_IsString(role)) return bad(reason, rcap, "message %d: \"role\" is %s, not a string", mi, type_name(role));
    if (lm_chat_role_parse(role->valuestring, strlen(role->valuestring), &m->role) != 0)
        return bad(reason, rcap, "message %d: unknown role \"%.40s\"", mi, role->valuestring);

    if (calls && !cJSON_IsNull(calls)) {
        if (m->role != LM_CHAT_ASSISTANT)
            return bad(reason, rcap, "message %d: \"tool_calls\" on %s message", mi, role_with_article(m->role));
        if (!cJSON_IsArray(calls))
            return bad(reason, rcap, "message %d: \"tool_calls\" is %s, not an array", mi, type_name(calls));
        int r = parse_tool_calls(calls, mi, m, reason, rcap);
        if (r != LINE_OK) return r;
    }
    if (call_id && !cJSON_IsNull(call_id)) {
        if (m->role != LM_CHAT_TOOL)
            return bad(reason, rcap, "message %d: \"tool_call_id\" on %s message", mi, role_with_article(m->role));
        if (!cJSON_IsString(call_id))
            return bad(reason, rcap, "message %d: \"tool_call_id\" is %s, not a string", mi, type_name(call_id));
        if (!(m->tool_call_id = dup_str(call_id->valuestring))) return LINE_NOMEM;
    }

    if (!content || cJSON_IsNull(content)) {
        if (m->role == LM_CHAT_ASSISTANT && m->n_tool_calls > 0) return LINE_OK;
        return bad(reason, rcap, content ? "message %d: content is null" : "message %d has no \"content\"", mi);
    }
    if (!cJSON_IsString(content))
        return bad(reason, rcap, "message %d: content is %s, not a string", mi, type_name(content));
    m->content_len = strlen(content->valuestring); /* exact: the pre-scan rejected NULs */
    if (!(m->content = dup_str(content->valuestring))) return LINE_NOMEM;
    return LINE_OK;
}

static int parse_messages(const cJSON *msgs, const limits *lim, int need_assistant, lm_conversation *conv,
                          char *reason, size_t rcap);

/* "tools": an array of OpenAI tool objects, {"type": "function", "function": {"name": ...}},
 * kept as compact JSON text for the chat template. */
static int parse_tools(const cJSON *root, lm_conversation *conv, char *reason, size_t rcap) {
    const cJSON *tools;
    MEMBER(tools, root, "tools", "\"tools\" appears twice");
    if (!tools || cJSON_IsNull(tools)) return LINE_OK;
    if (!cJSON_IsArray(tools)) return bad(reason, rcap, "\"tools\" is %s, not an array", type_name(tools));
    int k = 0;
    for (const cJSON *t = tools->child; t; t = t->next, k++) {
        const cJSON *fn = cJSON_IsObject(t) ? cJSON_GetObjectItemCaseSensitive(t, "function") : NULL;
        const cJSON *name = cJSON_IsObject(fn) ? cJSON_GetObjectItemCaseSensitive(fn, "name") : NULL;
        if (!cJSON_IsString(name) || !name->valuestring[0])
            return bad(reason, rcap, "tool %d: not {\"type\": \"function\", \"function\": {\"name\": ...}}", k);
    }
    char *text = cJSON_PrintUnformatted(tools); /* cJSON's allocator: copied into ours */
    if (text) conv->tools_json = dup_str(text);
    cJSON_free(text);
    return conv->tools_json ? LINE_OK : LINE_NOMEM;
}

static int parse_conversation(const cJSON *root, const limits *lim, lm_conversation *conv, char *reason,
                              size_t rcap) {
    const cJSON *msgs;
    if (cJSON_IsArray(root)) {
        msgs = root;
    } else if (cJSON_IsObject(root)) {
        MEMBER(msgs, root, "messages", "\"messages\" appears twice");
        if (!msgs) return bad(reason, rcap, "object has no \"messages\"");
        if (!cJSON_IsArray(msgs)) return bad(reason, rcap, "\"messages\" is %s, not an array", type_name(msgs));
        int r = parse_tools(root, conv, reason, rcap);
        if (r != LINE_OK) return r;
    } else {
        return bad(reason, rcap, "line is %s, not an object or an array of messages", type_name(root));
    }
    return parse_messages(msgs, lim, !lim->request, conv, reason, rcap);
}

/* A preference pair's answer: a string, an assistant message, or messages
 * whose last is the assistant's. *out is malloc'd. */
static int parse_answer(const cJSON *v, const char *key, char **out, char *reason, size_t rcap) {
    if (!v) return bad(reason, rcap, "no \"%s\"", key);
    if (cJSON_IsArray(v)) {
        const cJSON *last = v->child;
        if (!last) return bad(reason, rcap, "\"%s\" is an empty array", key);
        while (last->next) last = last->next;
        v = last;
    }
    if (cJSON_IsObject(v)) {
        lm_conv_message m;
        memset(&m, 0, sizeof m);
        int r = parse_message(v, 1, &m, reason, rcap);
        if (r == LINE_OK && (m.role != LM_CHAT_ASSISTANT || !m.content)) {
            r = bad(reason, rcap, "\"%s\" is not an assistant message with content", key);
        }
        if (r == LINE_OK) *out = m.content, m.content = NULL;
        lm_conv_message_free(&m);
        if (r == LINE_BAD) {
            char inner[320];
            snprintf(inner, sizeof inner, "%s", reason);
            return bad(reason, rcap, "\"%s\": %s", key, inner);
        }
        return r;
    }
    if (!cJSON_IsString(v)) return bad(reason, rcap, "\"%s\" is %s, not a string or a message", key, type_name(v));
    return (*out = dup_str(v->valuestring)) ? LINE_OK : LINE_NOMEM;
}

static int parse_pair(const cJSON *root, const limits *lim, lm_conversation *conv, char *reason, size_t rcap) {
    const cJSON *prompt, *msgs, *chosen, *rejected;
    if (!cJSON_IsObject(root)) return bad(reason, rcap, "line is %s, not an object", type_name(root));
    MEMBER(prompt, root, "prompt", "\"prompt\" appears twice");
    MEMBER(msgs, root, "messages", "\"messages\" appears twice");
    MEMBER(chosen, root, "chosen", "\"chosen\" appears twice");
    MEMBER(rejected, root, "rejected", "\"rejected\" appears twice");
    if (!!prompt == !!msgs) return bad(reason, rcap, "a pair needs one of \"prompt\" and \"messages\"");
    int r;
    if (prompt) {
        if (!cJSON_IsString(prompt)) return bad(reason, rcap, "\"prompt\" is %s, not a string", type_name(prompt));
        if (!(conv->messages = calloc(1, sizeof *conv->messages))) return LINE_NOMEM;
        conv->n_messages = 1;
        conv->messages[0].role = LM_CHAT_USER;
        if (!(conv->messages[0].content = dup_str(prompt->valuestring))) return LINE_NOMEM;
        conv->messages[0].content_len = strlen(prompt->valuestring);
    } else {
        if (!cJSON_IsArray(msgs)) return bad(reason, rcap, "\"messages\" is %s, not an array", type_name(msgs));
        if ((r = parse_messages(msgs, lim, 0, conv, reason, rcap)) != LINE_OK) return r;
    }
    if ((r = parse_answer(chosen, "chosen", &conv->chosen, reason, rcap)) != LINE_OK) return r;
    return parse_answer(rejected, "rejected", &conv->rejected, reason, rcap);
}

static int parse_messages(const cJSON *msgs, const limits *lim, int need_assistant, lm_conversation *conv,
                          char *reason, size_t rcap) {

    int32_t count = 0;
    for (const cJSON *c = msgs->child; c; c = c->next) {
        if (++count > lim->max_messages) return bad(reason, rcap, "more than %d messages", (int)lim->max_messages);
    }
    if (count == 0) return bad(reason, rcap, "empty conversation (no messages)");
    size_t bytes;
    if (lm_mul_overflow_size((size_t)count, sizeof *conv->messages, &bytes)) return LINE_NOMEM;
    conv->messages = calloc(1, bytes);
    if (!conv->messages) return LINE_NOMEM;

    int mi = 0, assistants = 0;
    for (const cJSON *c = msgs->child; c; c = c->next, mi++) {
        conv->n_messages = mi + 1; /* conversation_free frees what is filled */
        int r = parse_message(c, mi + 1, &conv->messages[mi], reason, rcap);
        if (r != LINE_OK) return r;
        assistants += conv->messages[mi].role == LM_CHAT_ASSISTANT;
    }
    if (!assistants && need_assistant) return bad(reason, rcap, "no assistant message");
    return LINE_OK;
}

static int is_json_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* One line (n bytes, NUL-terminated) into *conv; LINE_BAD with a reason. */
static int parse_line(const char *line, size_t n, const limits *lim, lm_conversation *conv, char *reason,
                      size_t rcap) {
    int r = prescan(line, n, reason, rcap);
    if (r != LINE_OK) return r;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(line, n, &end, 0);
    if (!root) {
        size_t at = (end && end >= line && end <= line + n) ? (size_t)(end - line) + 1 : 0;
        if (at) return bad(reason, rcap, "invalid JSON at byte %zu", at);
        return bad(reason, rcap, "invalid JSON");
    }
    size_t off = (end && end >= line && end <= line + n) ? (size_t)(end - line) : n;
    while (off < n && is_json_space(line[off])) off++;
    if (off < n) {
        cJSON_Delete(root);
        return bad(reason, rcap, "invalid JSON: text after the value at byte %zu", off + 1);
    }
    r = lim->pairs ? parse_pair(root, lim, conv, reason, rcap) : parse_conversation(root, lim, conv, reason, rcap);
    cJSON_Delete(root);
    if (r != LINE_OK) conversation_free(conv);
    return r;
}

/* ---- the bounded line reader ---- */

typedef struct reader {
    FILE *f;
    size_t pos, len;
    int eof;
    char *line; /* NUL-terminated */
    size_t line_len, line_cap;
    size_t max; /* content bytes per line */
    unsigned char buf[1 << 16];
} reader;

enum { RL_LINE = 1, RL_EOF = 0, RL_IO = -1, RL_NOMEM = -2 };

/* Reads the next line (without its LF, and without a CR before the LF).
 * A line over r->max bytes is consumed to its end but not kept: *too_long. */
static int read_line(reader *r, int *too_long) {
    int got = 0;
    *too_long = 0;
    r->line_len = 0;
    size_t keep = r->max + 1; /* one more for a CR dropped afterwards */
    for (;;) {
        if (r->pos == r->len) {
            if (r->eof) break;
            r->len = fread(r->buf, 1, sizeof r->buf, r->f);
            r->pos = 0;
            if (r->len == 0) {
                if (ferror(r->f)) return RL_IO;
                r->eof = 1;
                break;
            }
        }
        got = 1;
        unsigned char *start = r->buf + r->pos;
        unsigned char *nl = memchr(start, '\n', r->len - r->pos);
        size_t chunk = nl ? (size_t)(nl - start) : r->len - r->pos;
        if (!*too_long) {
            if (chunk > keep - r->line_len) {
                *too_long = 1;
            } else {
                size_t need = r->line_len + chunk + 1;
                if (need > r->line_cap) {
                    size_t cap = r->line_cap ? r->line_cap : 4096;
                    while (cap < need) cap = cap > (keep + 1) / 2 ? keep + 1 : cap * 2;
                    char *p = realloc(r->line, cap);
                    if (!p) return RL_NOMEM;
                    r->line = p;
                    r->line_cap = cap;
                }
                memcpy(r->line + r->line_len, start, chunk);
                r->line_len += chunk;
            }
        }
        r->pos += chunk + (nl ? 1 : 0);
        if (nl) break;
    }
    if (!got) return RL_EOF;
    if (!*too_long) {
        if (r->line_len > 0 && r->line[r->line_len - 1] == '\r') r->line_len--;
        if (r->line_len > r->max) *too_long = 1;
    }
    if (*too_long) r->line_len = 0;
    if (r->line) r->line[r->line_len] = '\0';
    return RL_LINE;
}

/* ---- the read ---- */

lm_status lm_conversations_read(const char *path, int strict, lm_conversation_set **out, lm_error *err) {
    lm_conversation_read_options o;
    memset(&o, 0, sizeof o);
    o.strict = strict;
    return lm_conversations_read_ex(path, &o, out, err);
}

lm_status lm_conversations_read_ex(const char *path, const lm_conversation_read_options *opts,
                                   lm_conversation_set **out, lm_error *err) {
    if (out) *out = NULL;
    if (!path || !out) return lm_error_set(err, LM_ERR_ARG, "lm_conversations_read: path and out are required");
    lm_conversation_read_options o;
    if (opts) o = *opts;
    else memset(&o, 0, sizeof o);
    limits lim;
    memset(&lim, 0, sizeof lim);
    lim.max_line_bytes = o.max_line_bytes && o.max_line_bytes < LM_CONV_MAX_LINE_BYTES ? o.max_line_bytes
                                                                                       : LM_CONV_MAX_LINE_BYTES;
    lim.max_messages = o.max_messages > 0 && o.max_messages < LM_CONV_MAX_MESSAGES ? o.max_messages
                                                                                    : LM_CONV_MAX_MESSAGES;
    lim.max_conversations = o.max_conversations > 0 && o.max_conversations < LM_CONV_MAX_CONVERSATIONS
                                ? o.max_conversations
                                : LM_CONV_MAX_CONVERSATIONS;
    lim.pairs = o.pairs;
    lim.max_skipped = o.max_skipped > 0 && o.max_skipped < LM_CONV_MAX_SKIPPED ? o.max_skipped : LM_CONV_MAX_SKIPPED;

    FILE *f = fopen(path, "rb");
    if (!f) return lm_error_set(err, LM_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    reader *r = calloc(1, sizeof *r);
    lm_conversation_set *set = calloc(1, sizeof *set);
    lm_status st = LM_OK;
    if (!r || !set) {
        st = lm_error_set(err, LM_ERR_NOMEM, "out of memory reading %s", path);
        goto done;
    }
    r->f = f;
    r->max = lim.max_line_bytes;

    int64_t cap_items = 0, cap_skipped = 0, lineno = 0;
    char reason[320];
    for (;;) {
        int too_long;
        int rl = read_line(r, &too_long);
        if (rl == RL_EOF) break;
        if (rl == RL_IO) {
            st = lm_error_set(err, LM_ERR_IO, "%s: read error after line %lld: %s", path, (long long)lineno,
                              strerror(errno));
            goto done;
        }
        if (rl == RL_NOMEM) {
            st = lm_error_set(err, LM_ERR_NOMEM, "%s:%lld: out of memory", path, (long long)lineno + 1);
            goto done;
        }
        lineno++;

        const char *s = r->line ? r->line : "";
        size_t n = r->line_len;
        if (lineno == 1 && n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) s += 3, n -= 3;
        int res;
        lm_conversation conv;
        memset(&conv, 0, sizeof conv);
        if (too_long) {
            res = bad(reason, sizeof reason, "line longer than %zu bytes", lim.max_line_bytes);
        } else {
            size_t k = 0;
            while (k < n && (s[k] == ' ' || s[k] == '\t' || s[k] == '\r')) k++;
            if (k == n) continue; /* blank */
            res = parse_line(s, n, &lim, &conv, reason, sizeof reason);
        }
        if (res == LINE_NOMEM) {
            st = lm_error_set(err, LM_ERR_NOMEM, "%s:%lld: out of memory", path, (long long)lineno);
            goto done;
        }
        if (res == LINE_OK) {
            if (set->n >= lim.max_conversations) {
                conversation_free(&conv);
                st = lm_error_set(err, LM_ERR_LIMIT, "%s:%lld: more than %lld conversations", path,
                                  (long long)lineno, (long long)lim.max_conversations);
                goto done;
            }
            lm_conversation *items = grow(set->items, &cap_items, set->n + 1, sizeof *items, lim.max_conversations);
            if (!items) {
                conversation_free(&conv);
                st = lm_error_set(err, LM_ERR_NOMEM, "%s:%lld: out of memory", path, (long long)lineno);
                goto done;
            }
            set->items = items;
            conv.line = lineno;
            set->items[set->n++] = conv;
            continue;
        }
        /* A bad line. */
        if (o.strict) {
            st = lm_error_set(err, LM_ERR_FORMAT, "%s:%lld: %s", path, (long long)lineno, reason);
            goto done;
        }
        if (set->n_skipped >= lim.max_skipped) {
            st = lm_error_set(err, LM_ERR_LIMIT, "%s:%lld: more than %lld bad lines (this one: %s)", path,
                              (long long)lineno, (long long)lim.max_skipped, reason);
            goto done;
        }
        char *rs = dup_str(reason);
        lm_conversation_skip *sk =
            rs ? grow(set->skipped, &cap_skipped, set->n_skipped + 1, sizeof *sk, lim.max_skipped) : NULL;
        if (!sk) {
            free(rs);
            st = lm_error_set(err, LM_ERR_NOMEM, "%s:%lld: out of memory", path, (long long)lineno);
            goto done;
        }
        set->skipped = sk;
        set->skipped[set->n_skipped].line = lineno;
        set->skipped[set->n_skipped].reason = rs;
        set->n_skipped++;
        if (o.on_skip) o.on_skip(o.user, lineno, reason);
    }
    set->n_lines = lineno;

done:
    if (r) free(r->line);
    free(r);
    fclose(f);
    if (st != LM_OK) {
        lm_conversation_set_free(set);
        return st;
    }
    *out = set;
    return LM_OK;
}

lm_status lm_conversation_messages(const lm_conversation *c, lm_chat_message **out, lm_error *err) {
    *out = NULL;
    size_t n_calls = 0, bytes;
    for (int32_t i = 0; i < c->n_messages; i++) n_calls += (size_t)c->messages[i].n_tool_calls;
    /* One block: the messages, then their calls. */
    size_t n_msgs = (size_t)c->n_messages, calls_bytes;
    if (lm_mul_overflow_size(n_msgs + 1, sizeof(lm_chat_message), &bytes) ||
        lm_mul_overflow_size(n_calls, sizeof(lm_chat_tool_call), &calls_bytes) ||
        lm_add_overflow_size(bytes, calls_bytes, &bytes))
        return lm_error_set(err, LM_ERR_LIMIT, "conversation too large");
    lm_chat_message *m = calloc(1, bytes);
    if (!m) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    lm_chat_tool_call *calls = (lm_chat_tool_call *)(m + n_msgs + 1);
    for (int32_t i = 0; i < c->n_messages; i++) {
        const lm_conv_message *cm = &c->messages[i];
        m[i].role = lm_chat_role_name(cm->role);
        m[i].content = cm->content ? cm->content : "";
        m[i].tool_call_id = cm->tool_call_id;
        if (cm->n_tool_calls > 0) {
            m[i].tool_calls = calls;
            m[i].n_tool_calls = (size_t)cm->n_tool_calls;
            for (int32_t k = 0; k < cm->n_tool_calls; k++) {
                calls->id = cm->tool_calls[k].id;
                calls->name = cm->tool_calls[k].name;
                calls->arguments = cm->tool_calls[k].arguments;
                calls++;
            }
        }
    }
    *out = m;
    return LM_OK;
}

lm_status lm_conversation_parse(const char *json, size_t n, lm_conversation *out, lm_error *err) {
    memset(out, 0, sizeof *out);
    if (n > LM_CONV_MAX_LINE_BYTES) return lm_error_set(err, LM_ERR_LIMIT, "request of %zu bytes is too large", n);
    char *copy = malloc(n + 1);
    if (!copy) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    memcpy(copy, json, n);
    copy[n] = 0;
    limits lim = {LM_CONV_MAX_LINE_BYTES, LM_CONV_MAX_MESSAGES, 1, 0, 0, 1};
    char reason[320];
    int r = parse_line(copy, n, &lim, out, reason, sizeof reason);
    free(copy);
    if (r == LINE_NOMEM) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    if (r != LINE_OK) return lm_error_set(err, LM_ERR_FORMAT, "%s", reason);
    return LM_OK;
}

void lm_conversation_free(lm_conversation *c) { conversation_free(c); }
