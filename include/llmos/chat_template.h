/* Chat templates: a small, strict Jinja-subset engine for the
 * `tokenizer.chat_template` that chat GGUFs carry.
 *
 * Trust model. The template source is trusted (its control tokens count),
 * but everything is bounded anyway: nesting depth, loop iterations, memory
 * and output size; a bad template is an error, never a crash. Message
 * contents are untrusted: they are only ever data (never re-parsed as
 * template), and the renderer reports which output bytes came from them
 * (segments, below) so the caller can tokenize them without special-token
 * parsing and build loss masks from them.
 *
 * Lexing follows what Hugging Face's apply_chat_template (and llama.cpp)
 * configure: trim_blocks and lstrip_blocks are on. So the first newline after
 * a `%}` or `#}` is dropped, and spaces/tabs from the start of a line up to a
 * `{%` or `{#` are dropped (`{%+` keeps them). `{{-`, `{%-`, `{#-` strip all
 * whitespace before the tag; `-}}`, `-%}`, `-#}` strip all whitespace after.
 * Comments are `{# ... #}`.
 *
 * Supported subset (anything else is a compile error that names the
 * construct and gives line:column):
 *   tags     {{ expr }}; {% if %} {% elif %} {% else %} {% endif %};
 *            {% for x in expr [if cond] %} ... [{% else %}] {% endfor %},
 *            also {% for k, v in d.items() %} (not `recursive`);
 *            {% set name = expr %}; {% set ns.attr = expr %}
 *   loop     loop.index loop.index0 loop.first loop.last loop.length
 *            loop.revindex loop.revindex0 loop.previtem loop.nextitem
 *   literals 'str' "str" (escapes \n \t \r \\ \' \" \0), integers, true/false,
 *            True/False, none/None, [list], {'key': value} dicts
 *   ops      a.b a['b'] a[i] a[start:stop:step] (strings: step 1 only),
 *            + (ints, strings, lists), - * % (ints), ~ (string concat),
 *            == != < > <= >=, and or not, in, not in, a if c else b,
 *            unary -
 *   tests    x is [not] defined / undefined / none / string / number /
 *            integer / boolean / mapping / sequence / iterable / true / false
 *   filters  trim, tojson[(indent=N)], length, count, upper, lower,
 *            default(v[, true]) / d, string, join([sep]), first, last, list,
 *            selectattr / rejectattr(attr[, test[, value]]) with the tests
 *            above and equalto / eq / == / ne / !=
 *   methods  strings: strip lstrip rstrip ([chars]), startswith endswith,
 *            upper lower, split([sep[, maxsplit]]), replace(old, new);
 *            dicts: get(key[, default]), items(), keys(), values()
 *   calls    raise_exception(msg) (render fails with msg), range([a,] b[, step]),
 *            namespace(name=value, ...)
 * Variables: messages (a list of dicts with 'role' and 'content', and
 * 'tool_calls' and 'tool_call_id' where the message has them), bos_token,
 * eos_token, add_generation_prompt, and tools (a list parsed from the
 * options' tools_json, undefined when not given). A for loop body is a new
 * scope per iteration (sets in it do not leak out; use a namespace).
 * Undefined values (missing variables, keys, attributes, out-of-range
 * indices) are falsy and render as nothing, as with Jinja's default
 * Undefined; arithmetic on them is a render error. Strings are bytes:
 * upper/lower change ASCII letters only, slices and indices count bytes,
 * length counts code points. tojson writes
 * like Python's json.dumps(ensure_ascii=False): ", " and ": " separators,
 * or "," and ": " with an indent.
 *
 * Segments. A render returns, besides the text, a list of segments that
 * cover the output exactly once, in order, without gaps: each segment is
 * either LM_CHAT_SEG_TEMPLATE (bytes the template wrote: its literal text,
 * bos/eos tokens, roles, numbers) or LM_CHAT_SEG_CONTENT with the index of
 * the message whose content value the bytes came from. The strings of a
 * message's tool calls (id, name, argument keys and values) and its
 * tool_call_id count as that message's content; the strings of tools count
 * as content of the pseudo-message n (one past the last message). Content
 * bytes keep their mark through concatenation, `set`, trim/strip, slicing,
 * upper/lower, and tojson (where the escaped characters of the string are
 * marked, not the quotes). Adjacent segments of the same kind and message
 * are merged. Roles must be one of system, user, assistant, tool, so they
 * are safe to treat as template text. */
#ifndef LLMOS_CHAT_TEMPLATE_H
#define LLMOS_CHAT_TEMPLATE_H

#include "llmos/base.h"

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LM_CHAT_TEMPLATE_MAX_OUTPUT ((size_t)64 << 20) /* default output cap, bytes */
#define LM_CHAT_TEMPLATE_MAX_DEPTH 64                  /* nesting of blocks and expressions */
#define LM_CHAT_TEMPLATE_MAX_ITERATIONS 1000000        /* loop iterations per render */
#define LM_CHAT_TEMPLATE_MAX_SOURCE ((size_t)1 << 20)  /* template source, bytes */

/* An OpenAI-style tool call of an assistant message. */
typedef struct lm_chat_tool_call {
    const char *id;        /* may be NULL */
    const char *name;      /* the function's name */
    const char *arguments; /* JSON text of the arguments (an object) */
} lm_chat_tool_call;

typedef struct lm_chat_message {
    const char *role;    /* "system", "user", "assistant" or "tool" */
    const char *content; /* NUL-terminated UTF-8; untrusted ("" for none) */
    /* Assistant messages: the calls, seen by the template as message.tool_calls =
     * [{"id", "type": "function", "function": {"name", "arguments"}}] (arguments a dict
     * when their JSON parses, else the string); absent when n_tool_calls is 0. */
    const lm_chat_tool_call *tool_calls;
    size_t n_tool_calls;
    const char *tool_call_id; /* tool messages: message.tool_call_id; NULL: absent */
} lm_chat_message;

typedef struct lm_chat_render_options {
    bool add_generation_prompt;
    const char *bos_token;  /* NULL means "" */
    const char *eos_token;  /* NULL means "" */
    const char *tools_json; /* a JSON array for the `tools` variable, or NULL (undefined) */
    size_t max_output;      /* output cap in bytes; 0 means LM_CHAT_TEMPLATE_MAX_OUTPUT */
} lm_chat_render_options;

typedef enum lm_chat_segment_kind {
    LM_CHAT_SEG_TEMPLATE = 0, /* trusted: written by the template */
    LM_CHAT_SEG_CONTENT = 1   /* untrusted: from messages[message].content */
} lm_chat_segment_kind;

typedef struct lm_chat_segment {
    size_t offset, length;
    lm_chat_segment_kind kind;
    int32_t message; /* message index for CONTENT, -1 for TEMPLATE */
} lm_chat_segment;

typedef struct lm_chat_template lm_chat_template;

/* ChatML (<|im_start|>role\ncontent<|im_end|>\n), the template llmos writes
 * into models that have none; llama.cpp recognises it. */
extern const char *const lm_chat_template_chatml;

/* Parses source once. The template is read-only afterwards and may be shared
 * between threads. */
lm_status lm_chat_template_compile(const char *source, lm_chat_template **out, lm_error *err);
void lm_chat_template_free(lm_chat_template *t);

/* Renders n messages. *out (NUL-terminated, *out_len bytes without the NUL)
 * and, when segments is not NULL, *segments (*n_segments entries) are
 * malloc'd; the caller frees them. opts may be NULL (all defaults). On
 * failure nothing is returned. raise_exception(msg) fails with LM_ERR_ARG
 * and msg in the error; the caps fail with LM_ERR_LIMIT. */
lm_status lm_chat_template_render(const lm_chat_template *t, const lm_chat_message *msgs, size_t n,
                                  const lm_chat_render_options *opts, char **out, size_t *out_len,
                                  lm_chat_segment **segments, size_t *n_segments, lm_error *err);

#ifdef __cplusplus
}
#endif
#endif
