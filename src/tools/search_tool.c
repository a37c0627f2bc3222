/* The `search` tool: lm_search_query behind the lm_tool interface. */
#include "llmos/search.h"

#include "search_text.h"

#include <cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ARGS_BYTES 65536
#define DEFAULT_K 5

static const char schema[] = "{\"type\":\"object\",\"properties\":{\"query\":{\"type\":\"string\"},"
                             "\"k\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":10}},"
                             "\"required\":[\"query\"],\"additionalProperties\":false}";

static lm_status set_text(lm_tool_result *out, int is_error, const char *text, lm_error *err) {
    size_t n = strlen(text);
    out->text = malloc(n + 1);
    if (!out->text) return lm_error_set(err, LM_ERR_NOMEM, "search: out of memory");
    memcpy(out->text, text, n + 1);
    out->len = n;
    out->is_error = is_error;
    return LM_OK;
}

/* Appends to a buffer of capacity LM_SEARCH_TOOL_RESULT_BYTES + 1; returns
 * how many bytes of s fit (cut on a character boundary). */
static size_t append(char *buf, size_t *len, const char *s, size_t n) {
    size_t room = LM_SEARCH_TOOL_RESULT_BYTES - *len;
    size_t take = lm_search_utf8_prefix(s, n, room);
    memcpy(buf + *len, s, take);
    *len += take;
    buf[*len] = '\0';
    return take;
}

static lm_status format_hits(const lm_search_hit *hits, int n, lm_tool_result *out, lm_error *err) {
    static const char cut[] = "\n[... results cut at the size limit]";
    char *buf = malloc(LM_SEARCH_TOOL_RESULT_BYTES + 1);
    if (!buf) return lm_error_set(err, LM_ERR_NOMEM, "search: out of memory");
    size_t len = 0;
    int truncated = 0;
    /* keep room for the truncation note so it always fits */
    const size_t body_cap = LM_SEARCH_TOOL_RESULT_BYTES - (sizeof cut - 1);
    for (int i = 0; i < n && !truncated; i++) {
        char head[4200];
        int hl = snprintf(head, sizeof head, "[%d] %s (passage %lld)\n", i + 1, hits[i].path, (long long)hits[i].passage);
        if (hl < 0 || (size_t)hl >= sizeof head) hl = (int)strlen(head);
        const char *parts[3] = {head, hits[i].text, "\n\n"};
        size_t lens[3] = {(size_t)hl, hits[i].text_len, 2};
        for (int p = 0; p < 3 && !truncated; p++) {
            size_t room = body_cap - len;
            size_t take = lm_search_utf8_prefix(parts[p], lens[p], room);
            memcpy(buf + len, parts[p], take);
            len += take;
            truncated = take < lens[p];
        }
    }
    buf[len] = '\0';
    if (truncated) append(buf, &len, cut, sizeof cut - 1);
    out->text = buf;
    out->len = len;
    out->is_error = 0;
    return LM_OK;
}

static lm_status search_call(void *state, const char *args_json, lm_tool_result *out, lm_error *err) {
    lm_search_index *idx = state;
    memset(out, 0, sizeof *out);
    if (!args_json) return set_text(out, 1, "arguments missing: expected {\"query\": \"...\"}", err);
    size_t alen = strlen(args_json);
    if (alen > MAX_ARGS_BYTES) return set_text(out, 1, "arguments too long", err);
    cJSON *args = cJSON_ParseWithLength(args_json, alen);
    const char *msg = NULL;
    const cJSON *query = NULL;
    int k = DEFAULT_K;
    if (!args || !cJSON_IsObject(args)) msg = "arguments are not a JSON object: expected {\"query\": \"...\"}";
    for (const cJSON *it = args && !msg ? args->child : NULL; it && !msg; it = it->next) {
        if (it->string && strcmp(it->string, "query") == 0) {
            if (query || !cJSON_IsString(it)) msg = "\"query\" must be one string";
            query = it;
        } else if (it->string && strcmp(it->string, "k") == 0) {
            double d = it->valuedouble;
            if (!cJSON_IsNumber(it) || !(d >= 1 && d <= LM_SEARCH_TOOL_MAX_K) || d != (double)(int)d)
                msg = "\"k\" must be an integer from 1 to 10";
            else k = (int)d;
        } else {
            msg = "unknown argument: only \"query\" and \"k\" are accepted";
        }
    }
    if (!msg && !query) msg = "\"query\" is required";
    if (msg) {
        cJSON_Delete(args);
        return set_text(out, 1, msg, err);
    }
    lm_search_hit *hits = NULL;
    int n = 0;
    lm_status s = lm_search_index_update(idx, NULL, err);
    if (s == LM_OK) s = lm_search_query(idx, query->valuestring, k, &hits, &n, err);
    cJSON_Delete(args);
    if (s != LM_OK) return s;
    if (n == 0) s = set_text(out, 0, "no results: no passage matches the query", err);
    else s = format_hits(hits, n, out, err);
    lm_search_hits_free(hits, n);
    return s;
}

static void search_free(void *state) { lm_search_index_free(state); }

lm_status lm_tool_search(lm_tool *out, const char *folder, const char *index_path, lm_error *err) {
    memset(out, 0, sizeof *out);
    lm_search_index *idx = NULL;
    lm_status s = lm_search_index_open(folder, index_path, &idx, err);
    if (s == LM_OK) s = lm_search_index_update(idx, NULL, err);
    if (s != LM_OK) {
        lm_search_index_free(idx);
        return s;
    }
    out->name = "search";
    out->description = "Full-text search of the user's document folder: returns the best-matching passages, "
                       "each with its file and passage number.";
    out->parameters_schema = schema;
    out->call = search_call;
    out->free_state = search_free;
    out->state = idx;
    return LM_OK;
}
