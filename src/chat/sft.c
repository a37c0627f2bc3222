/* Conversations to training tokens with a loss mask (llmos/sft.h). */
#include "llmos/sft.h"

#include "../base/checked.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Appends n tokens with one train flag to the example, growing it. */
static lm_status append(lm_sft_example *e, int64_t *cap, const int32_t *toks, size_t n, uint8_t flag, lm_error *err) {
    if (e->n + (int64_t)n > *cap) {
        int64_t want = (*cap ? *cap * 2 : 256);
        while (want < e->n + (int64_t)n) want *= 2;
        int32_t *t = realloc(e->tokens, (size_t)want * sizeof *t);
        if (t) e->tokens = t;
        uint8_t *f = t ? realloc(e->train, (size_t)want) : NULL;
        if (!t || !f) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
        e->train = f;
        *cap = want;
    }
    memcpy(e->tokens + e->n, toks, n * sizeof *toks);
    memset(e->train + e->n, flag, n);
    e->n += (int64_t)n;
    return LM_OK;
}

/* The text of a special token id, or "" (for bos/eos strings). */
static char *token_string(const lm_tokenizer *tok, int32_t id) {
    if (id < 0) return calloc(1, 1);
    lm_str s = lm_tokenizer_token_text(tok, id);
    char *out = malloc(s.len + 1);
    if (out) {
        memcpy(out, s.ptr, s.len);
        out[s.len] = 0;
    }
    return out;
}

/* 1 when token id is a control token that ends an answer: any control token
 * but the tool-call tags, which an answer may contain. */
static int ends_answer(const lm_tokenizer *tok, int32_t id) {
    if (lm_tokenizer_token_type(tok, id) != LM_TOKEN_CONTROL) return 0;
    lm_str t = lm_tokenizer_token_text(tok, id);
    return !((t.len == 11 && memcmp(t.ptr, "<tool_call>", 11) == 0) || (t.len == 12 && memcmp(t.ptr, "</tool_call>", 12) == 0));
}

/* Where each assistant message's answer starts in the full render (text, len):
 * the length of the render of the messages before it with the generation
 * prompt, when the full render begins with exactly that text (so the template's
 * text that the model writes itself, e.g. a <tool_call> wrapper, is trained);
 * SIZE_MAX when it does not (or that render fails), and the answer then starts
 * at the message's first content. starts[i] is set for assistant messages only. */
static lm_status answer_starts(const lm_chat_template *tpl, const lm_chat_message *msgs, size_t n,
                               const lm_chat_render_options *full, const char *text, size_t len, size_t *starts,
                               lm_error *err) {
    for (size_t i = 0; i < n; i++) {
        starts[i] = SIZE_MAX;
        if (strcmp(msgs[i].role, "assistant") != 0) continue;
        lm_chat_render_options ro = *full;
        ro.add_generation_prompt = 1;
        char *prefix = NULL;
        size_t plen = 0;
        lm_error ignored = {0};
        lm_status st = lm_chat_template_render(tpl, msgs, i, &ro, &prefix, &plen, NULL, NULL, &ignored);
        if (st == LM_ERR_NOMEM) {
            free(prefix);
            return lm_error_set(err, st, "out of memory");
        }
        if (!st && plen <= len && memcmp(prefix, text, plen) == 0) starts[i] = plen;
        free(prefix);
    }
    return LM_OK;
}

/* Both entry points: render (with or without the generation prompt), then
 * tokenize segment by segment (each cut where an answer starts) with the
 * train flags of lm_sft_tokenize when mask is set. */
static lm_status tokenize_conversation(const lm_tokenizer *tok, const lm_chat_template *tpl, const lm_chat_message *msgs,
                                       size_t n, int add_generation_prompt, const char *tools_json, int mask,
                                       lm_sft_example *out, lm_error *err) {
    memset(out, 0, sizeof *out);
    char *bos = token_string(tok, lm_tokenizer_bos(tok)), *eos = token_string(tok, lm_tokenizer_eos(tok));
    char *text = NULL;
    size_t len = 0, n_seg = 0, *starts = NULL;
    lm_chat_segment *seg = NULL;
    lm_status st = LM_OK;
    if (!bos || !eos) st = lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    lm_chat_render_options ro = {add_generation_prompt != 0, bos, eos, tools_json, 0};
    if (!st) st = lm_chat_template_render(tpl, msgs, n, &ro, &text, &len, &seg, &n_seg, err);
    if (!st && mask && n) {
        if (!(starts = malloc(n * sizeof *starts))) st = lm_error_set(err, LM_ERR_NOMEM, "out of memory");
        if (!st) st = answer_starts(tpl, msgs, n, &ro, text, len, starts, err);
    }
    int64_t cap = 0;
    size_t next = 0;   /* the next assistant message whose answer start is still ahead */
    int training = 0;  /* inside an answer: trained up to and including its end marker */
    for (size_t i = 0; i < n_seg && !st; i++) {
        const lm_chat_segment *s = &seg[i];
        size_t at = s->offset, end = s->offset + s->length;
        while (at < end && !st) {
            /* Cut the segment where an answer starts (the answer is tokenized as the model writes it). */
            while (starts && next < n && (starts[next] == SIZE_MAX || starts[next] < at)) next++;
            size_t cut = end;
            if (starts && next < n && starts[next] < end) {
                if (starts[next] == at) {
                    training = 1;
                    next++;
                    continue;
                }
                cut = starts[next];
            }
            int is_content = s->kind == LM_CHAT_SEG_CONTENT;
            int32_t *toks = NULL;
            size_t nt = 0;
            st = lm_tokenizer_encode(tok, text + at, cut - at, is_content ? 0 : LM_ENCODE_PARSE_SPECIAL, &toks, &nt, err);
            if (st) break;
            if (is_content) {
                int assistant = s->message >= 0 && (size_t)s->message < n && strcmp(msgs[s->message].role, "assistant") == 0;
                if (assistant) training = 1; /* also where the answer's start was not found */
                else training = 0;
                st = append(out, &cap, toks, nt, (uint8_t)(mask && training), err);
            } else if (training) {
                size_t k = 0;
                while (k < nt && !ends_answer(tok, toks[k])) k++;
                size_t trained = k < nt ? k + 1 : nt;
                st = append(out, &cap, toks, trained, (uint8_t)(mask != 0), err);
                if (!st) st = append(out, &cap, toks + trained, nt - trained, 0, err);
                training = k >= nt; /* no end marker yet: keep going into the next piece */
            } else {
                st = append(out, &cap, toks, nt, 0, err);
            }
            free(toks);
            at = cut;
        }
    }
    free(starts);
    free(text);
    free(seg);
    free(bos);
    free(eos);
    if (st) lm_sft_example_free(out);
    return st;
}

lm_status lm_sft_tokenize(const lm_tokenizer *tok, const lm_chat_template *tpl, const lm_chat_message *msgs, size_t n,
                          lm_sft_example *out, lm_error *err) {
    return lm_sft_tokenize_tools(tok, tpl, msgs, n, NULL, out, err);
}

lm_status lm_sft_tokenize_tools(const lm_tokenizer *tok, const lm_chat_template *tpl, const lm_chat_message *msgs,
                                size_t n, const char *tools_json, lm_sft_example *out, lm_error *err) {
    return tokenize_conversation(tok, tpl, msgs, n, 0, tools_json, 1, out, err);
}

lm_status lm_chat_tokenize(const lm_tokenizer *tok, const lm_chat_template *tpl, const lm_chat_message *msgs, size_t n,
                           int add_generation_prompt, int32_t **tokens, size_t *n_tokens, lm_error *err) {
    return lm_chat_tokenize_tools(tok, tpl, msgs, n, add_generation_prompt, NULL, tokens, n_tokens, err);
}

lm_status lm_chat_tokenize_tools(const lm_tokenizer *tok, const lm_chat_template *tpl, const lm_chat_message *msgs,
                                 size_t n, int add_generation_prompt, const char *tools_json, int32_t **tokens,
                                 size_t *n_tokens, lm_error *err) {
    lm_sft_example e;
    lm_status st = tokenize_conversation(tok, tpl, msgs, n, add_generation_prompt, tools_json, 0, &e, err);
    if (st) return st;
    free(e.train);
    *tokens = e.tokens;
    *n_tokens = (size_t)e.n;
    return LM_OK;
}

/* ---- The control strings a template needs ---- */

static int is_lower(char c) { return c >= 'a' && c <= 'z'; }
static int is_upper(char c) { return c >= 'A' && c <= 'Z'; }
static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* The length of the marker that starts s (n bytes), or 0 (rules in sft.h). */
static size_t marker_len(const char *s, size_t n) {
    if (n >= 2 && s[0] == '<' && s[1] == '|') {
        size_t k = 2;
        while (k < n && k - 2 < 64 && s[k] && !strchr("|<> \t\n\r\f\v", s[k])) k++;
        return k > 2 && k + 1 < n && s[k] == '|' && s[k + 1] == '>' ? k + 2 : 0;
    }
    if (s[0] != '<' && s[0] != '[') return 0;
    int tag = s[0] == '<';
    size_t k = 1;
    if (k < n && s[k] == '/') k++;
    size_t name = k;
    if (k >= n || !(tag ? is_lower(s[k]) : is_upper(s[k]))) return 0;
    for (k++; k < n && k - name < 64 && ((tag ? is_lower(s[k]) : is_upper(s[k])) || is_digit(s[k]) || s[k] == '_');) k++;
    if (k - name < (tag ? 1u : 2u) || k >= n || s[k] != (tag ? '>' : ']')) return 0;
    return k + 1;
}

/* Adds a missing marker once; *index gets its place in c (or -1 if it is a token). */
static lm_status add_control(lm_chat_controls *c, const lm_tokenizer *tok, const char *s, size_t len, int32_t *index,
                             lm_error *err) {
    *index = -1;
    if (lm_tokenizer_find(tok, s, len) >= 0) return LM_OK;
    for (size_t i = 0; i < c->n; i++) {
        if (strlen(c->items[i]) == len && memcmp(c->items[i], s, len) == 0) {
            *index = (int32_t)i;
            return LM_OK;
        }
    }
    if (c->n == LM_CHAT_MAX_CONTROLS) {
        return lm_error_set(err, LM_ERR_LIMIT, "the chat template writes more than %d control strings the vocabulary lacks",
                            LM_CHAT_MAX_CONTROLS);
    }
    if (!c->items && !(c->items = calloc(LM_CHAT_MAX_CONTROLS, sizeof *c->items))) {
        return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    }
    char *copy = malloc(len + 1);
    if (!copy) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    memcpy(copy, s, len);
    copy[len] = 0;
    *index = (int32_t)c->n;
    c->items[c->n++] = copy;
    return LM_OK;
}

/* Scans one render's template segments. With closing >= 0, the first marker
 * after message closing's content sets c->end_of_turn (if it is missing). */
static lm_status scan_render(lm_chat_controls *c, const lm_tokenizer *tok, const char *text, const lm_chat_segment *seg,
                             size_t n_seg, int32_t closing, lm_error *err) {
    int after = 0; /* 1: after the closing message's content, no marker seen yet */
    for (size_t i = 0; i < n_seg; i++) {
        const lm_chat_segment *sg = &seg[i];
        if (sg->kind == LM_CHAT_SEG_CONTENT) {
            if (closing >= 0 && sg->message == closing) after = 1;
            continue;
        }
        const char *p = text + sg->offset;
        for (size_t k = 0; k < sg->length;) {
            size_t m = marker_len(p + k, sg->length - k);
            if (!m) {
                k++;
                continue;
            }
            int32_t index;
            lm_status st = add_control(c, tok, p + k, m, &index, err);
            if (st) return st;
            if (after) c->end_of_turn = index, after = 0;
            k += m;
        }
    }
    return LM_OK;
}

lm_status lm_chat_missing_controls(const lm_tokenizer *tok, const lm_chat_template *tpl, lm_chat_controls *out,
                                   lm_error *err) {
    memset(out, 0, sizeof *out);
    out->end_of_turn = -1;
    static const lm_chat_message sample[] = {
        {"system", "You are a helpful assistant."}, {"user", "Hello."}, {"assistant", "Hi there."}, {"user", "Thanks."}};
    /* A tool call and its result, with a tool list: the markers a template writes around calls. */
    static const lm_chat_tool_call call = {"call_1", "calculator", "{\"expression\": \"2 + 2\"}"};
    static const lm_chat_message tool_sample[] = {{"user", "What is 2 + 2?"},
                                                  {"assistant", "", &call, 1, NULL},
                                                  {"tool", "4", NULL, 0, "call_1"},
                                                  {"assistant", "4."}};
    static const char tools_json[] = "[{\"type\": \"function\", \"function\": {\"name\": \"calculator\", "
                                     "\"description\": \"Exact arithmetic.\", \"parameters\": {\"type\": "
                                     "\"object\", \"properties\": {\"expression\": {\"type\": \"string\"}}}}}]";
    /* (first message, count, generation prompt): with the system message, then without it; the
     * tool-call sample last (a template without tool support may refuse it). */
    static const int cases[5][3] = {{0, 3, 0}, {0, 4, 1}, {1, 2, 0}, {1, 3, 1}, {0, 4, 0}};
    char *bos = token_string(tok, lm_tokenizer_bos(tok)), *eos = token_string(tok, lm_tokenizer_eos(tok));
    lm_status st = bos && eos ? LM_OK : lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    lm_status first_failure = LM_OK;
    lm_error render_err = {0};
    int rendered = 0, eot_done = 0;
    for (int k = 0; k < 5 && !st; k++) {
        int tools = k == 4;
        lm_chat_render_options ro = {cases[k][2] != 0, bos, eos, tools ? tools_json : NULL, 0};
        char *text = NULL;
        size_t len = 0, n_seg = 0;
        lm_chat_segment *seg = NULL;
        lm_status rs = lm_chat_template_render(tpl, (tools ? tool_sample : sample) + cases[k][0], (size_t)cases[k][1],
                                               &ro, &text, &len, &seg, &n_seg, first_failure || tools ? NULL : &render_err);
        if (rs) {
            if (!first_failure && !tools) first_failure = rs;
            continue;
        }
        rendered = 1;
        /* Without the generation prompt the last message is the assistant's. */
        int32_t closing = !cases[k][2] && !eot_done ? cases[k][1] - 1 : -1;
        st = scan_render(out, tok, text, seg, n_seg, closing, err);
        eot_done |= closing >= 0;
        free(text);
        free(seg);
    }
    free(bos);
    free(eos);
    if (!st && !rendered) {
        st = first_failure;
        if (err) *err = render_err;
        lm_error_prefix(err, st, "the chat template cannot render a sample conversation: ");
    }
    if (st) lm_chat_controls_free(out);
    return st;
}

void lm_chat_controls_free(lm_chat_controls *c) {
    for (size_t i = 0; c->items && i < c->n; i++) free(c->items[i]);
    free(c->items);
    memset(c, 0, sizeof *c);
    c->end_of_turn = -1;
}

void lm_sft_example_free(lm_sft_example *e) {
    free(e->tokens);
    free(e->train);
    memset(e, 0, sizeof *e);
}

lm_status lm_sft_pack(const lm_sft_example *ex, size_t n, int64_t T, int32_t pad_token, int32_t **inputs,
                      int32_t **targets, int64_t *n_rows, int64_t *truncated, lm_error *err) {
    *inputs = *targets = NULL;
    *n_rows = *truncated = 0;
    if (T < 1) return lm_error_set(err, LM_ERR_ARG, "context %lld must be positive", (long long)T);
    /* First pass: count rows. */
    int64_t rows = 0, used = T + 1;
    for (size_t i = 0; i < n; i++) {
        int64_t len = ex[i].n < T + 1 ? ex[i].n : T + 1;
        if (len == 0) continue;
        if (used + len > T + 1) rows++, used = 0;
        used += len;
    }
    size_t cells;
    if (lm_mul_overflow_size((size_t)rows, (size_t)T, &cells) || cells > ((size_t)1 << 40)) {
        return lm_error_set(err, LM_ERR_LIMIT, "%lld rows of %lld tokens are too many", (long long)rows, (long long)T);
    }
    int32_t *row = malloc((size_t)(T + 1) * sizeof *row);
    uint8_t *flag = malloc((size_t)(T + 1));
    int32_t *in = malloc((cells ? cells : 1) * sizeof *in), *tg = malloc((cells ? cells : 1) * sizeof *tg);
    if (!row || !flag || !in || !tg) {
        free(row), free(flag), free(in), free(tg);
        return lm_error_set(err, LM_ERR_NOMEM, "out of memory packing %lld rows", (long long)rows);
    }
    int64_t r = -1;
    used = T + 1;
    /* Emits the row being filled (padding its rest). */
#define FLUSH()                                                                  \
    do {                                                                         \
        if (r >= 0) {                                                            \
            for (int64_t k = used; k < T + 1; k++) row[k] = pad_token, flag[k] = 0; \
            for (int64_t t = 0; t < T; t++) {                                    \
                in[r * T + t] = row[t];                                          \
                tg[r * T + t] = flag[t + 1] ? row[t + 1] : -1;                   \
            }                                                                    \
        }                                                                        \
    } while (0)
    for (size_t i = 0; i < n; i++) {
        int64_t len = ex[i].n;
        if (len == 0) continue;
        if (len > T + 1) len = T + 1, (*truncated)++;
        if (used + len > T + 1) {
            FLUSH();
            r++, used = 0;
        }
        memcpy(row + used, ex[i].tokens, (size_t)len * sizeof *row);
        memcpy(flag + used, ex[i].train, (size_t)len);
        used += len;
    }
    FLUSH();
#undef FLUSH
    free(row);
    free(flag);
    *inputs = in, *targets = tg, *n_rows = rows;
    return LM_OK;
}
