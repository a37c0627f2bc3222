/* Tool calls on the wire: how generated text carries a call, how its JSON is
 * read, how arguments are checked against a tool's schema, and the tools
 * list a chat template renders.
 *
 * Wire format (Hermes / Qwen 2.5, what the Qwen 2.5 tool-use template asks
 * for): the assistant writes
 *
 *   <tool_call>
 *   {"name": "calculator", "arguments": {"expression": "2+2"}}
 *   </tool_call>
 *
 * Everything outside the tags is plain text for the user. The tags are
 * matched byte for byte (case-sensitive); model output is untrusted, so the
 * text of a call is capped and every parse is bounds-checked. */
#ifndef LLMOS_TOOL_CALL_H
#define LLMOS_TOOL_CALL_H

#include "llmos/base.h"
#include "llmos/tool.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LM_TOOL_CALL_OPEN "<tool_call>"
#define LM_TOOL_CALL_CLOSE "</tool_call>"
#define LM_TOOL_CALL_MAX_BYTES ((size_t)64 << 10) /* default cap on the text of one call */

/* Plain text to show (n > 0; not NUL-terminated, valid only during the call). */
typedef lm_status (*lm_tool_call_text_fn)(void *user, const char *text, size_t n);
/* A complete call: the bytes between the tags with surrounding whitespace
 * trimmed (NUL-terminated at call[n], valid only during the call). */
typedef lm_status (*lm_tool_call_call_fn)(void *user, const char *call, size_t n);

/* Incremental detector over decoded pieces of generated text. Pieces may cut
 * anywhere (inside a tag, inside a UTF-8 character): a possible start of
 * "<tool_call>" ("<", "<tool_c", ...) is held back until the next bytes
 * decide it, then shown as text if it was not a tag. Callbacks run in text
 * order, from inside push and finish; a callback's non-LM_OK status is
 * returned by push and the scanner stays failed. */
typedef struct lm_tool_call_scanner lm_tool_call_scanner;

/* max_call_bytes: cap on the text between the tags (0: LM_TOOL_CALL_MAX_BYTES).
 * on_text and on_call may be NULL (that output is dropped). */
lm_status lm_tool_call_scanner_init(lm_tool_call_scanner **out, size_t max_call_bytes, lm_tool_call_text_fn on_text,
                                    lm_tool_call_call_fn on_call, void *user, lm_error *err);
void lm_tool_call_scanner_free(lm_tool_call_scanner *s);

/* Feeds n bytes of generated text. LM_ERR_LIMIT once a call passes the cap;
 * after any failure every later push and finish return the same status. */
lm_status lm_tool_call_scanner_push(lm_tool_call_scanner *s, const char *piece, size_t n, lm_error *err);

/* End of generation: a held-back partial "<tool_c" is shown as text; an
 * opened but unclosed call is LM_ERR_FORMAT ("tool call not closed"). */
lm_status lm_tool_call_scanner_finish(lm_tool_call_scanner *s, lm_error *err);

/* 1 while inside an opened, not yet closed call (so a UI can show "calling..."). */
int lm_tool_call_scanner_in_call(const lm_tool_call_scanner *s);

/* Reads the JSON of one call: an object with a non-empty string "name" and
 * "arguments" either an object or a JSON string holding an object (as
 * OpenAI sends it); a missing "arguments" counts as {}. Surrounding
 * whitespace is allowed, anything else after the object is not. On LM_OK
 * *name and *arguments_json are malloc'd NUL-terminated strings (the
 * arguments re-serialised compactly); on failure both are NULL and err says
 * why (LM_ERR_FORMAT; LM_ERR_LIMIT past LM_TOOL_CALL_MAX_BYTES). */
lm_status lm_tool_call_parse(const char *json, size_t n, char **name, char **arguments_json, lm_error *err);

/* Checks arguments (JSON text) against a JSON Schema (text), for the subset
 * our tools use:
 *   type            "object" "string" "integer" "number" "boolean" "array"
 *                   "null", or an array of these (any may match); "integer"
 *                   takes numbers with no fractional part (2.0 included)
 *   properties      per-property schemas, applied recursively
 *   required        names that must be present
 *   additionalProperties  false: names outside properties are rejected; a
 *                   schema: extra properties must match it
 *   minimum maximum inclusive bounds on numbers
 *   enum            the value must equal one of the listed values
 *   items           a schema every array element must match
 * Other keywords (description, default, format, pattern, minLength, ...) are
 * ignored. Objects may not repeat a name (the tools would see only one).
 * Returns LM_OK when valid, else LM_ERR_ARG with `why` (may be NULL)
 * naming the first problem: "missing required property 'expression'",
 * "property 'k' must be an integer", "unknown property 'x'", "arguments are
 * not valid JSON"; nested names are written a.b and a[2]. An unparsable
 * schema is LM_ERR_ARG too ("schema is not valid JSON"); LM_ERR_NOMEM when
 * out of memory. */
lm_status lm_tool_args_validate(const char *schema_json, const char *args_json, char *why, size_t why_cap);

/* The OpenAI-style tools array for a template's `tools` variable:
 * [{"type":"function","function":{"name":...,"description":...,
 * "parameters":<schema>}}, ...]. *json is malloc'd and NUL-terminated.
 * LM_ERR_FORMAT when a tool's schema is not a JSON object. */
lm_status lm_tools_json(const lm_tool *tools, size_t n, char **json, lm_error *err);

#ifdef __cplusplus
}
#endif
#endif
