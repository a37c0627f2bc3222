/* Tool calls on the wire (llmos/tool_call.h): the <tool_call> scanner, the
 * call's JSON, argument validation against a JSON-Schema subset, and the
 * OpenAI-style tools array. */
#include "llmos/tool_call.h"

#include <cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- scanner ---------------------------------------------------------- */

static const char open_tag[] = LM_TOOL_CALL_OPEN;
static const char close_tag[] = LM_TOOL_CALL_CLOSE;
#define OPEN_LEN (sizeof open_tag - 1)
#define CLOSE_LEN (sizeof close_tag - 1)

struct lm_tool_call_scanner {
    lm_tool_call_text_fn on_text;
    lm_tool_call_call_fn on_call;
    void *user;
    size_t cap;      /* most bytes between the tags */
    int in_call;     /* 0: outside, 1: between the tags */
    size_t match;    /* bytes of the current tag matched so far (held back) */
    lm_status failed;
    char failed_msg[256];
    char *text; /* plain text gathered during one push */
    size_t text_len, text_cap;
    char *body; /* the call so far, body[cap] always fits */
    size_t body_len;
};

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

static lm_status fail(lm_tool_call_scanner *s, lm_error *err, lm_status st, const char *msg) {
    s->failed = st;
    snprintf(s->failed_msg, sizeof s->failed_msg, "%s", msg);
    return lm_error_set(err, st, "%s", msg);
}

lm_status lm_tool_call_scanner_init(lm_tool_call_scanner **out, size_t max_call_bytes, lm_tool_call_text_fn on_text,
                                    lm_tool_call_call_fn on_call, void *user, lm_error *err) {
    if (!out) return lm_error_set(err, LM_ERR_ARG, "tool call scanner: NULL output");
    *out = NULL;
    if (max_call_bytes == 0) max_call_bytes = LM_TOOL_CALL_MAX_BYTES;
    if (max_call_bytes > ((size_t)1 << 30)) return lm_error_set(err, LM_ERR_ARG, "tool call scanner: cap too large");
    lm_tool_call_scanner *s = calloc(1, sizeof *s);
    if (!s) return lm_error_set(err, LM_ERR_NOMEM, "tool call scanner: out of memory");
    s->body = malloc(max_call_bytes + 1);
    if (!s->body) {
        free(s);
        return lm_error_set(err, LM_ERR_NOMEM, "tool call scanner: out of memory");
    }
    s->on_text = on_text;
    s->on_call = on_call;
    s->user = user;
    s->cap = max_call_bytes;
    *out = s;
    return LM_OK;
}

void lm_tool_call_scanner_free(lm_tool_call_scanner *s) {
    if (!s) return;
    free(s->text);
    free(s->body);
    free(s);
}

int lm_tool_call_scanner_in_call(const lm_tool_call_scanner *s) { return s && s->in_call; }

static lm_status text_add(lm_tool_call_scanner *s, const char *p, size_t n, lm_error *err) {
    if (n == 0) return LM_OK;
    if (n > s->text_cap - s->text_len) {
        size_t need = s->text_len + n, c = s->text_cap ? s->text_cap : 256;
        if (need < s->text_len) return fail(s, err, LM_ERR_NOMEM, "tool call scanner: out of memory");
        while (c < need) {
            if (c > ((size_t)-1) / 2) return fail(s, err, LM_ERR_NOMEM, "tool call scanner: out of memory");
            c *= 2;
        }
        char *t = realloc(s->text, c);
        if (!t) return fail(s, err, LM_ERR_NOMEM, "tool call scanner: out of memory");
        s->text = t;
        s->text_cap = c;
    }
    memcpy(s->text + s->text_len, p, n);
    s->text_len += n;
    return LM_OK;
}

static lm_status text_flush(lm_tool_call_scanner *s, lm_error *err) {
    if (s->text_len == 0) return LM_OK;
    size_t n = s->text_len;
    s->text_len = 0;
    if (!s->on_text) return LM_OK;
    lm_status st = s->on_text(s->user, s->text, n);
    if (st != LM_OK) return fail(s, err, st, "tool call scanner: text callback failed");
    return LM_OK;
}

static lm_status body_add(lm_tool_call_scanner *s, const char *p, size_t n, lm_error *err) {
    if (n > s->cap - s->body_len) {
        char msg[128];
        snprintf(msg, sizeof msg, "tool call longer than %zu bytes", s->cap);
        return fail(s, err, LM_ERR_LIMIT, msg);
    }
    memcpy(s->body + s->body_len, p, n);
    s->body_len += n;
    return LM_OK;
}

static lm_status emit_call(lm_tool_call_scanner *s, lm_error *err) {
    lm_status st = text_flush(s, err);
    if (st != LM_OK) return st;
    size_t a = 0, b = s->body_len;
    while (a < b && is_space(s->body[a])) a++;
    while (b > a && is_space(s->body[b - 1])) b--;
    s->body[b] = '\0';
    s->body_len = 0;
    if (!s->on_call) return LM_OK;
    st = s->on_call(s->user, s->body + a, b - a);
    if (st != LM_OK) return fail(s, err, st, "tool call scanner: call callback failed");
    return LM_OK;
}

lm_status lm_tool_call_scanner_push(lm_tool_call_scanner *s, const char *piece, size_t n, lm_error *err) {
    if (!s || (!piece && n)) return lm_error_set(err, LM_ERR_ARG, "tool call scanner: NULL argument");
    if (s->failed) return lm_error_set(err, s->failed, "%s", s->failed_msg);
    lm_status st = LM_OK;
    size_t run = 0; /* start of the current run of plain bytes in piece (outside) or body bytes (inside) */
    for (size_t i = 0; i < n && st == LM_OK; i++) {
        char c = piece[i];
        const char *tag = s->in_call ? close_tag : open_tag;
        size_t tag_len = s->in_call ? CLOSE_LEN : OPEN_LEN;
        if (c == tag[s->match]) {
            /* The run before a tag start goes out first; the tag bytes are held. */
            if (s->match == 0) st = s->in_call ? body_add(s, piece + run, i - run, err) : text_add(s, piece + run, i - run, err);
            if (st != LM_OK) break;
            if (++s->match == tag_len) {
                s->match = 0;
                if (s->in_call) {
                    s->in_call = 0;
                    st = emit_call(s, err);
                } else {
                    s->in_call = 1;
                    s->body_len = 0;
                    st = text_flush(s, err); /* text before a call is shown before it */
                }
            }
            run = i + 1;
            continue;
        }
        if (s->match == 0) continue; /* stays in the run */
        /* A held partial tag that did not complete: its bytes are content. The
         * tags have '<' only at the start, so the restart is at c at most. */
        st = s->in_call ? body_add(s, tag, s->match, err) : text_add(s, tag, s->match, err);
        s->match = 0;
        if (st != LM_OK) break;
        run = i;
        if (c == tag[0]) {
            s->match = 1;
            run = i + 1;
        }
    }
    if (st == LM_OK && s->match == 0 && run < n)
        st = s->in_call ? body_add(s, piece + run, n - run, err) : text_add(s, piece + run, n - run, err);
    if (st == LM_OK) st = text_flush(s, err);
    return st;
}

lm_status lm_tool_call_scanner_finish(lm_tool_call_scanner *s, lm_error *err) {
    if (!s) return lm_error_set(err, LM_ERR_ARG, "tool call scanner: NULL argument");
    if (s->failed) return lm_error_set(err, s->failed, "%s", s->failed_msg);
    if (s->in_call) {
        char msg[128];
        snprintf(msg, sizeof msg, "tool call not closed before the end of the output (%zu bytes after <tool_call>)",
                 s->body_len + s->match);
        return fail(s, err, LM_ERR_FORMAT, msg);
    }
    lm_status st = text_add(s, open_tag, s->match, err);
    s->match = 0;
    if (st == LM_OK) st = text_flush(s, err);
    return st;
}

/* ---- the call's JSON -------------------------------------------------- */

static char *dup_str(const char *p) {
    size_t n = strlen(p);
    char *d = malloc(n + 1);
    if (d) memcpy(d, p, n + 1);
    return d;
}

/* Parses exactly one JSON value from p[0..n) (whitespace around allowed). */
static cJSON *parse_whole(const char *p, size_t n) {
    const char *end = NULL;
    cJSON *v = cJSON_ParseWithLengthOpts(p, n, &end, 0);
    if (!v) return NULL;
    size_t used = end ? (size_t)(end - p) : n;
    if (used > n) used = n;
    for (size_t i = used; i < n; i++) {
        if (!is_space(p[i])) {
            cJSON_Delete(v);
            return NULL;
        }
    }
    return v;
}

/* Serialises v into a malloc'd string (copied out of cJSON's allocator). */
static char *print_json(const cJSON *v) {
    char *p = cJSON_PrintUnformatted(v);
    if (!p) return NULL;
    char *d = dup_str(p);
    cJSON_free(p);
    return d;
}

lm_status lm_tool_call_parse(const char *json, size_t n, char **name, char **arguments_json, lm_error *err) {
    if (!json || !name || !arguments_json) return lm_error_set(err, LM_ERR_ARG, "tool call: NULL argument");
    *name = NULL;
    *arguments_json = NULL;
    if (n > LM_TOOL_CALL_MAX_BYTES)
        return lm_error_set(err, LM_ERR_LIMIT, "tool call: %zu bytes, more than %zu", n, LM_TOOL_CALL_MAX_BYTES);
    cJSON *root = parse_whole(json, n);
    if (!root) return lm_error_set(err, LM_ERR_FORMAT, "tool call: not valid JSON");
    lm_status st = LM_OK;
    cJSON *args_owned = NULL;
    if (!cJSON_IsObject(root)) {
        st = lm_error_set(err, LM_ERR_FORMAT, "tool call: not a JSON object");
        goto done;
    }
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(root, "name");
    if (!nm) {
        st = lm_error_set(err, LM_ERR_FORMAT, "tool call: missing \"name\"");
        goto done;
    }
    if (!cJSON_IsString(nm) || !nm->valuestring[0]) {
        st = lm_error_set(err, LM_ERR_FORMAT, "tool call: \"name\" must be a non-empty string");
        goto done;
    }
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(root, "arguments");
    if (cJSON_IsString(args)) {
        args_owned = parse_whole(args->valuestring, strlen(args->valuestring));
        if (!args_owned) {
            st = lm_error_set(err, LM_ERR_FORMAT, "tool call: \"arguments\" string is not valid JSON");
            goto done;
        }
        args = args_owned;
    }
    if (args && !cJSON_IsObject(args)) {
        st = lm_error_set(err, LM_ERR_FORMAT, "tool call: \"arguments\" must be an object");
        goto done;
    }
    *name = dup_str(nm->valuestring);
    *arguments_json = args ? print_json(args) : dup_str("{}");
    if (!*name || !*arguments_json) {
        free(*name);
        free(*arguments_json);
        *name = *arguments_json = NULL;
        st = lm_error_set(err, LM_ERR_NOMEM, "tool call: out of memory");
    }
done:
    cJSON_Delete(args_owned);
    cJSON_Delete(root);
    return st;
}

/* ---- argument validation ---------------------------------------------- */

#define MAX_OBJECT_MEMBERS 1024 /* duplicate-name check is quadratic */

typedef struct vctx {
    char *why;
    size_t why_cap;
} vctx;

static lm_status invalid(vctx *v, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static lm_status invalid(vctx *v, const char *fmt, ...) {
    if (v->why && v->why_cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(v->why, v->why_cap, fmt, ap);
        va_end(ap);
    }
    return LM_ERR_ARG;
}

/* "property 'a.b'" for a path, "arguments" at the top. */
static void subject(char *buf, size_t cap, const char *path) {
    if (path[0]) snprintf(buf, cap, "property '%s'", path);
    else snprintf(buf, cap, "arguments");
}

static int type_matches(const char *t, const cJSON *v) {
    if (!strcmp(t, "object")) return cJSON_IsObject(v);
    if (!strcmp(t, "array")) return cJSON_IsArray(v);
    if (!strcmp(t, "string")) return cJSON_IsString(v);
    if (!strcmp(t, "boolean")) return cJSON_IsBool(v);
    if (!strcmp(t, "null")) return cJSON_IsNull(v);
    if (!strcmp(t, "number")) return cJSON_IsNumber(v) && isfinite(v->valuedouble);
    if (!strcmp(t, "integer"))
        return cJSON_IsNumber(v) && isfinite(v->valuedouble) && floor(v->valuedouble) == v->valuedouble;
    return 1; /* an unknown type name constrains nothing */
}

static const char *type_phrase(const char *t) {
    if (!strcmp(t, "object")) return "an object";
    if (!strcmp(t, "array")) return "an array";
    if (!strcmp(t, "string")) return "a string";
    if (!strcmp(t, "boolean")) return "a boolean";
    if (!strcmp(t, "null")) return "null";
    if (!strcmp(t, "number")) return "a number";
    if (!strcmp(t, "integer")) return "an integer";
    return t;
}

static lm_status check_type(vctx *v, const cJSON *type, const cJSON *val, const char *who) {
    if (cJSON_IsString(type)) {
        if (type_matches(type->valuestring, val)) return LM_OK;
        return invalid(v, "%s must be %s", who, type_phrase(type->valuestring));
    }
    if (!cJSON_IsArray(type)) return LM_OK;
    char list[256] = "";
    size_t used = 0;
    int any = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, type) {
        if (!cJSON_IsString(t)) continue;
        any = 1;
        if (type_matches(t->valuestring, val)) return LM_OK;
        int w = snprintf(list + used, sizeof list - used, "%s%s", used ? " or " : "", type_phrase(t->valuestring));
        if (w > 0) used += (size_t)w < sizeof list - used ? (size_t)w : sizeof list - used - 1;
    }
    return any ? invalid(v, "%s must be %s", who, list) : LM_OK;
}

static lm_status check_enum(vctx *v, const cJSON *en, const cJSON *val, const char *who) {
    if (!cJSON_IsArray(en)) return LM_OK;
    const cJSON *e;
    cJSON_ArrayForEach(e, en) {
        if (cJSON_Compare(e, val, 1)) return LM_OK;
    }
    char list[256] = "";
    size_t used = 0;
    cJSON_ArrayForEach(e, en) {
        if (!cJSON_IsString(e)) continue;
        int w = snprintf(list + used, sizeof list - used, "%s'%s'", used ? ", " : "", e->valuestring);
        if (w < 0 || (size_t)w >= sizeof list - used) break;
        used += (size_t)w;
    }
    if (used) return invalid(v, "%s must be one of %s", who, list);
    return invalid(v, "%s is not one of the allowed values", who);
}

static lm_status validate(vctx *v, const cJSON *schema, const cJSON *val, const char *path, int depth);

static lm_status validate_object(vctx *v, const cJSON *schema, const cJSON *val, const char *path, int depth) {
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(schema, "properties");
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(schema, "required");
    const cJSON *extra = cJSON_GetObjectItemCaseSensitive(schema, "additionalProperties");
    if (!cJSON_IsObject(props)) props = NULL;
    char sub[512];
    if (cJSON_GetArraySize(val) > MAX_OBJECT_MEMBERS) {
        subject(sub, sizeof sub, path);
        return invalid(v, "%s has more than %d properties", sub, MAX_OBJECT_MEMBERS);
    }
    if (cJSON_IsArray(req)) {
        const cJSON *r;
        cJSON_ArrayForEach(r, req) {
            if (!cJSON_IsString(r) || cJSON_GetObjectItemCaseSensitive(val, r->valuestring)) continue;
            return invalid(v, "missing required property '%s%s%s'", path, path[0] ? "." : "", r->valuestring);
        }
    }
    const cJSON *m;
    cJSON_ArrayForEach(m, val) {
        const char *key = m->string ? m->string : "";
        snprintf(sub, sizeof sub, "%s%s%s", path, path[0] ? "." : "", key);
        for (const cJSON *p = val->child; p != m; p = p->next)
            if (p->string && !strcmp(p->string, key)) return invalid(v, "duplicate property '%s'", sub);
        const cJSON *ps = props ? cJSON_GetObjectItemCaseSensitive(props, key) : NULL;
        lm_status st = LM_OK;
        if (ps) st = validate(v, ps, m, sub, depth + 1);
        else if (cJSON_IsFalse(extra)) st = invalid(v, "unknown property '%s'", sub);
        else if (cJSON_IsObject(extra)) st = validate(v, extra, m, sub, depth + 1);
        if (st != LM_OK) return st;
    }
    return LM_OK;
}

static lm_status validate(vctx *v, const cJSON *schema, const cJSON *val, const char *path, int depth) {
    if (!cJSON_IsObject(schema)) return LM_OK; /* true / {} / anything else: no constraint */
    if (depth > 64) return invalid(v, "schema nested too deeply");
    char who[512];
    subject(who, sizeof who, path);
    lm_status st = check_type(v, cJSON_GetObjectItemCaseSensitive(schema, "type"), val, who);
    if (st != LM_OK) return st;
    st = check_enum(v, cJSON_GetObjectItemCaseSensitive(schema, "enum"), val, who);
    if (st != LM_OK) return st;
    if (cJSON_IsNumber(val)) {
        const cJSON *lo = cJSON_GetObjectItemCaseSensitive(schema, "minimum");
        const cJSON *hi = cJSON_GetObjectItemCaseSensitive(schema, "maximum");
        if (cJSON_IsNumber(lo) && !(val->valuedouble >= lo->valuedouble))
            return invalid(v, "%s must be at least %.15g", who, lo->valuedouble);
        if (cJSON_IsNumber(hi) && !(val->valuedouble <= hi->valuedouble))
            return invalid(v, "%s must be at most %.15g", who, hi->valuedouble);
    }
    if (cJSON_IsObject(val)) return validate_object(v, schema, val, path, depth);
    if (cJSON_IsArray(val)) {
        const cJSON *items = cJSON_GetObjectItemCaseSensitive(schema, "items");
        if (!cJSON_IsObject(items)) return LM_OK;
        int i = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, val) {
            char sub[512];
            snprintf(sub, sizeof sub, "%s[%d]", path, i++);
            st = validate(v, items, e, sub, depth + 1);
            if (st != LM_OK) return st;
        }
    }
    return LM_OK;
}

lm_status lm_tool_args_validate(const char *schema_json, const char *args_json, char *why, size_t why_cap) {
    vctx v = {why, why_cap};
    if (why && why_cap) why[0] = '\0';
    if (!schema_json || !args_json) return invalid(&v, "NULL schema or arguments");
    size_t an = strlen(args_json);
    if (an > LM_TOOL_CALL_MAX_BYTES) return invalid(&v, "arguments longer than %zu bytes", LM_TOOL_CALL_MAX_BYTES);
    cJSON *schema = parse_whole(schema_json, strlen(schema_json));
    if (!schema) return invalid(&v, "schema is not valid JSON");
    cJSON *args = parse_whole(args_json, an);
    if (!args) {
        cJSON_Delete(schema);
        return invalid(&v, "arguments are not valid JSON");
    }
    lm_status st = validate(&v, schema, args, "", 0);
    cJSON_Delete(args);
    cJSON_Delete(schema);
    return st;
}

/* ---- the tools array -------------------------------------------------- */

lm_status lm_tools_json(const lm_tool *tools, size_t n, char **json, lm_error *err) {
    if (!json || (!tools && n)) return lm_error_set(err, LM_ERR_ARG, "tools json: NULL argument");
    *json = NULL;
    cJSON *arr = cJSON_CreateArray();
    if (!arr) return lm_error_set(err, LM_ERR_NOMEM, "tools json: out of memory");
    lm_status st = LM_OK;
    for (size_t i = 0; i < n && st == LM_OK; i++) {
        const lm_tool *t = &tools[i];
        if (!t->name) {
            st = lm_error_set(err, LM_ERR_ARG, "tools json: tool %zu has no name", i);
            break;
        }
        cJSON *params = t->parameters_schema ? parse_whole(t->parameters_schema, strlen(t->parameters_schema))
                                             : cJSON_Parse("{\"type\":\"object\",\"properties\":{}}");
        if (!params || !cJSON_IsObject(params)) {
            cJSON_Delete(params);
            st = lm_error_set(err, LM_ERR_FORMAT, "tools json: the schema of tool '%s' is not a JSON object", t->name);
            break;
        }
        /* Ownership: params goes to fn, fn to entry, entry to arr; whatever is
         * not yet attached when something fails is deleted here. */
        cJSON *fn = cJSON_CreateObject(), *entry = cJSON_CreateObject();
        int ok = fn && entry && cJSON_AddStringToObject(fn, "name", t->name) &&
                 (!t->description || cJSON_AddStringToObject(fn, "description", t->description));
        if (ok && cJSON_AddItemToObject(fn, "parameters", params)) params = NULL;
        else ok = 0;
        ok = ok && cJSON_AddStringToObject(entry, "type", "function");
        if (ok && cJSON_AddItemToObject(entry, "function", fn)) fn = NULL;
        else ok = 0;
        if (ok && cJSON_AddItemToArray(arr, entry)) entry = NULL;
        else ok = 0;
        cJSON_Delete(params);
        cJSON_Delete(fn);
        cJSON_Delete(entry);
        if (!ok) st = lm_error_set(err, LM_ERR_NOMEM, "tools json: out of memory");
    }
    if (st == LM_OK) {
        *json = print_json(arr);
        if (!*json) st = lm_error_set(err, LM_ERR_NOMEM, "tools json: out of memory");
    }
    cJSON_Delete(arr);
    return st;
}
