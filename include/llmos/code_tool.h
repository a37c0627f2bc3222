/* The `code` tool: runs a Lua 5.4 snippet in a fresh, sandboxed interpreter.
 *
 * The sandbox has the base library (without dofile, loadfile, warn; `load`
 * accepts text chunks only; `collectgarbage` only "collect", "count", "step"
 * and "isrunning"; `setmetatable` refuses __gc), string (without dump),
 * table, math, utf8 and coroutine. There is no io, os, package, require or
 * debug, so no file, process or environment access.
 *
 * Limits: Lua instructions (a count hook; C loops whose length the snippet
 * controls - table.move, positional table.insert/remove, table.sort - are
 * charged too), bytes of Lua memory (a custom allocator refuses growth past the
 * cap, so Lua raises "not enough memory") and bytes of printed output. Hitting
 * the instruction or output limit stops the run for good (pcall cannot catch
 * it); a memory error can be caught like any Lua error.
 *
 * Result text (always valid UTF-8; invalid bytes and NUL become U+FFFD):
 *
 *   stdout:                 only when something was printed; then the output,
 *   <printed text>          ending with a newline
 *   value: 42, two, nil     only when the chunk returned values (tostring of
 *                           each, ", " between, truncated past max_output)
 *   error: <message>        instead of value: when the run failed (is_error)
 *
 * and "(no output)" when the chunk printed and returned nothing. Error
 * messages are Lua's, with chunk name "code" ("code:3: attempt to index a nil
 * value (global 'io')"), or one of "instruction limit reached (N
 * instructions)", "memory limit reached (N bytes)", "output limit reached (N
 * bytes)", "stack overflow (...)". */
#ifndef LLMOS_CODE_TOOL_H
#define LLMOS_CODE_TOOL_H

#include "llmos/base.h"
#include "llmos/tool.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LM_CODE_DEFAULT_INSTRUCTIONS 10000000
#define LM_CODE_DEFAULT_MEMORY ((size_t)16 << 20)
#define LM_CODE_DEFAULT_OUTPUT ((size_t)64 << 10)
#define LM_CODE_MIN_MEMORY ((size_t)64 << 10)

/* A field of 0 takes its default; a NULL limits pointer takes all defaults. */
typedef struct lm_code_limits {
    int64_t max_instructions; /* Lua VM instructions (checked every 1000) */
    size_t max_memory;        /* bytes the Lua state may hold, >= LM_CODE_MIN_MEMORY */
    size_t max_output;        /* bytes of print output (and of rendered values) */
} lm_code_limits;

lm_code_limits lm_code_limits_default(void);

/* Runs `source` (Lua text, NUL-terminated) and fills `out`. Returns LM_OK
 * whenever the snippet ran, failed or was stopped (out->is_error tells);
 * LM_ERR_ARG for NULL pointers or bad limits, LM_ERR_NOMEM when the host is
 * out of memory. */
lm_status lm_code_run(const char *source, const lm_code_limits *lim, lm_tool_result *out,
                      lm_error *err);

/* The tool "code": arguments {"code": "<Lua source>"}. */
lm_status lm_tool_code(lm_tool *out, const lm_code_limits *lim, lm_error *err);

#ifdef __cplusplus
}
#endif
#endif
