/* The `code` tool (llmos/code_tool.h): one fresh Lua 5.4 state per run, made
 * with lua_newstate over an allocator that counts bytes and refuses growth
 * past the memory cap. Everything that touches the state - opening the
 * libraries, loading, running, rendering the values (which may call
 * __tostring) - runs inside one lua_pcall, so no Lua error can reach the
 * default panic handler (abort).
 *
 * Stopping for good: when the instruction or output limit is hit, the reason
 * is recorded and the count hook is set to fire on every instruction of the
 * thread, raising the reason again; so a `pcall` loop around the offending
 * code gets an error at its own next instruction and so on up to the top.
 * Hooks do not run inside __gc finalizers, which is why setmetatable refuses
 * __gc. */
#include "llmos/code_tool.h"

#include <cJSON.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HOOK_EVERY 1000
/* A memory refusal with this many Lua call levels on the stack is reported
 * as a stack overflow: the recursion, not the data, ran out of memory. */
#define DEEP_LEVELS 10000

typedef struct sandbox {
    lm_code_limits lim;
    size_t used;       /* bytes held by the Lua state */
    lua_State *L;      /* the main thread, once created */
    int64_t executed;  /* instructions counted, plus C work charged */
    int hook_every;
    char *out;         /* printed output, malloc'd, at most lim.max_output bytes */
    size_t out_len, out_cap;
    int deep;          /* a refused allocation had a deep call stack */
    int host_nomem;    /* the host could not grow the output buffer */
    char reason[160];  /* set when the run is stopped for good */
} sandbox;

static void *sb_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    sandbox *sb = ud;
    size_t old = ptr ? osize : 0; /* with ptr NULL, osize is a type tag */
    if (nsize == 0) {
        free(ptr);
        sb->used -= old;
        return NULL;
    }
    if (nsize > old && nsize - old > sb->lim.max_memory - sb->used) {
        lua_Debug ar;
        if (sb->L && !sb->deep && lua_getstack(sb->L, DEEP_LEVELS, &ar)) sb->deep = 1;
        return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (!p) return nsize <= old ? ptr : NULL; /* a failed shrink keeps the block */
    sb->used = sb->used - old + nsize;
    return p;
}

static sandbox *sb_of(lua_State *L) {
    void *ud = NULL;
    lua_getallocf(L, &ud);
    return ud;
}

static void sb_hook(lua_State *L, lua_Debug *ar);

/* Raises the recorded reason and makes every later instruction raise it. */
static int sb_stop(lua_State *L) {
    sandbox *sb = sb_of(L);
    lua_sethook(L, sb_hook, LUA_MASKCOUNT, 1);
    lua_pushstring(L, sb->reason);
    return lua_error(L);
}

static void sb_over_instructions(lua_State *L) {
    sandbox *sb = sb_of(L);
    snprintf(sb->reason, sizeof sb->reason, "instruction limit reached (%lld instructions)",
             (long long)sb->lim.max_instructions);
    sb_stop(L);
}

static void sb_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    sandbox *sb = sb_of(L);
    if (sb->reason[0]) sb_stop(L);
    sb->executed += sb->hook_every;
    if (sb->executed >= sb->lim.max_instructions) sb_over_instructions(L);
}

/* Charges work done in a C loop to the instruction budget. */
static void sb_charge(lua_State *L, lua_Unsigned cost) {
    sandbox *sb = sb_of(L);
    if (sb->reason[0]) sb_stop(L);
    if (cost >= (lua_Unsigned)(sb->lim.max_instructions - sb->executed)) {
        sb->executed = sb->lim.max_instructions;
        sb_over_instructions(L);
    }
    sb->executed += (int64_t)cost;
}

/* Calls upvalue 1 (the wrapped library function) with this call's arguments. */
static int call_original(lua_State *L) {
    int n = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, n, LUA_MULTRET);
    return lua_gettop(L);
}

/* Elements between i and j inclusive, 0 when j < i. */
static lua_Unsigned span(lua_Integer i, lua_Integer j) {
    return j < i ? 0 : (lua_Unsigned)j - (lua_Unsigned)i + 1;
}

static int sb_table_move(lua_State *L) {
    sb_charge(L, span(luaL_checkinteger(L, 2), luaL_checkinteger(L, 3)));
    return call_original(L);
}

static int sb_table_insert(lua_State *L) {
    if (lua_gettop(L) == 3 && lua_type(L, 1) == LUA_TTABLE) {
        lua_Integer n = luaL_len(L, 1);
        sb_charge(L, span(luaL_checkinteger(L, 2), n));
    }
    return call_original(L);
}

static int sb_table_remove(lua_State *L) {
    if (lua_gettop(L) >= 2 && lua_type(L, 1) == LUA_TTABLE) {
        lua_Integer n = luaL_len(L, 1);
        sb_charge(L, span(luaL_checkinteger(L, 2), n));
    }
    return call_original(L);
}

static int sb_table_sort(lua_State *L) {
    if (lua_type(L, 1) == LUA_TTABLE) {
        lua_Integer n = luaL_len(L, 1);
        if (n > 1) {
            lua_Unsigned cost = 0, bits = 1;
            while (bits < 64 && ((lua_Unsigned)1 << bits) < (lua_Unsigned)n) bits++;
            cost = (lua_Unsigned)n > ((lua_Unsigned)-1) / bits ? (lua_Unsigned)-1 : (lua_Unsigned)n * bits;
            sb_charge(L, cost);
        }
    }
    return call_original(L);
}

/* string.rep of an empty string and separator loops n times in C for "". */
static int sb_string_rep(lua_State *L) {
    size_t l, lsep;
    luaL_checklstring(L, 1, &l);
    luaL_checkinteger(L, 2);
    luaL_optlstring(L, 3, "", &lsep);
    if (l == 0 && lsep == 0) {
        lua_pushliteral(L, "");
        return 1;
    }
    return call_original(L);
}

/* load(chunk [, chunkname [, mode [, env]]]) with the mode forced to text. */
static int sb_load(lua_State *L) {
    if (lua_gettop(L) < 3) lua_settop(L, 3);
    lua_pushliteral(L, "t");
    lua_replace(L, 3);
    return call_original(L);
}

static int sb_setmetatable(lua_State *L) {
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL) return luaL_error(L, "__gc metamethods are not allowed");
        lua_pop(L, 1);
    }
    return call_original(L);
}

static int sb_collectgarbage(lua_State *L) {
    const char *opt = luaL_optstring(L, 1, "collect");
    if (strcmp(opt, "collect") && strcmp(opt, "count") && strcmp(opt, "step") &&
        strcmp(opt, "isrunning"))
        return luaL_error(L, "collectgarbage('%s') is not available", opt);
    return call_original(L);
}

/* An error raised in a hook leaves the thread's hooks off (Lua restores
 * them at the pcall that catches it). So after a stop no user code may run
 * before that: xpcall's message handler is skipped, and a killed coroutine's
 * to-be-closed variables are never closed (coroutine.close, coroutine.wrap). */
static int sb_msgh(lua_State *L) {
    if (sb_of(L)->reason[0]) return 1; /* keep the error object */
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

static int sb_xpcall(lua_State *L) {
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushvalue(L, 2);
    lua_pushcclosure(L, sb_msgh, 1);
    lua_replace(L, 2);
    return call_original(L);
}

static int sb_co_close(lua_State *L) {
    if (sb_of(L)->reason[0]) return sb_stop(L);
    return call_original(L);
}

/* lcorolib's auxwrap, with the stop check before lua_resetthread. */
static int sb_auxwrap(lua_State *L) {
    lua_State *co = lua_tothread(L, lua_upvalueindex(1));
    int narg = lua_gettop(L), nres;
    if (!lua_checkstack(co, narg)) return luaL_error(L, "too many arguments to resume");
    lua_xmove(L, co, narg);
    int st = lua_resume(co, L, narg, &nres);
    if (st == LUA_OK || st == LUA_YIELD) {
        if (!lua_checkstack(L, nres + 1)) {
            lua_pop(co, nres);
            return luaL_error(L, "too many results to resume");
        }
        lua_xmove(co, L, nres);
        return nres;
    }
    lua_xmove(co, L, 1);
    if (sb_of(L)->reason[0]) return sb_stop(L);
    int stat = lua_status(co);
    if (stat != LUA_OK && stat != LUA_YIELD) { /* error in the coroutine: close its tbc variables */
        stat = lua_resetthread(co);
        lua_pop(L, 1);
        lua_xmove(co, L, 1);
    }
    if (stat != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
        luaL_where(L, 1);
        lua_insert(L, -2);
        lua_concat(L, 2);
    }
    return lua_error(L);
}

static int sb_co_wrap(lua_State *L) {
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_State *co = lua_newthread(L);
    lua_pushvalue(L, 1);
    lua_xmove(L, co, 1);
    lua_pushcclosure(L, sb_auxwrap, 1);
    return 1;
}

static void sb_write(lua_State *L, const char *s, size_t n) {
    sandbox *sb = sb_of(L);
    if (sb->reason[0]) sb_stop(L);
    size_t room = sb->lim.max_output - sb->out_len, take = n < room ? n : room;
    if (sb->out_len + take > sb->out_cap) {
        size_t cap = sb->out_cap ? sb->out_cap : 256;
        while (cap < sb->out_len + take) cap = cap > sb->lim.max_output / 2 ? sb->lim.max_output : cap * 2;
        char *p = realloc(sb->out, cap);
        if (!p) {
            sb->host_nomem = 1;
            snprintf(sb->reason, sizeof sb->reason, "out of memory");
            sb_stop(L);
        }
        sb->out = p;
        sb->out_cap = cap;
    }
    if (take) memcpy(sb->out + sb->out_len, s, take);
    sb->out_len += take;
    if (take < n) {
        snprintf(sb->reason, sizeof sb->reason, "output limit reached (%zu bytes)", sb->lim.max_output);
        sb_stop(L);
    }
}

static int sb_print(lua_State *L) {
    int n = lua_gettop(L);
    for (int i = 1; i <= n; i++) {
        size_t len;
        const char *s = luaL_tolstring(L, i, &len);
        if (i > 1) sb_write(L, "\t", 1);
        sb_write(L, s, len);
        lua_pop(L, 1);
    }
    sb_write(L, "\n", 1);
    return 0;
}

static void wrap(lua_State *L, int table, const char *name, lua_CFunction fn) {
    lua_getfield(L, table, name);
    lua_pushcclosure(L, fn, 1);
    lua_setfield(L, table, name);
}

static void set_nil(lua_State *L, int table, const char *name) {
    lua_pushnil(L);
    lua_setfield(L, table, name);
}

static void sb_open_libs(lua_State *L) {
    static const luaL_Reg libs[] = {{LUA_GNAME, luaopen_base},     {LUA_STRLIBNAME, luaopen_string},
                                    {LUA_TABLIBNAME, luaopen_table}, {LUA_MATHLIBNAME, luaopen_math},
                                    {LUA_UTF8LIBNAME, luaopen_utf8}, {LUA_COLIBNAME, luaopen_coroutine}};
    for (size_t i = 0; i < sizeof libs / sizeof libs[0]; i++) {
        luaL_requiref(L, libs[i].name, libs[i].func, 1);
        lua_pop(L, 1);
    }
    lua_pushglobaltable(L);
    int g = lua_gettop(L);
    set_nil(L, g, "dofile");
    set_nil(L, g, "loadfile");
    set_nil(L, g, "warn");
    set_nil(L, g, "require");
    lua_pushcfunction(L, sb_print);
    lua_setfield(L, g, "print");
    wrap(L, g, "load", sb_load);
    wrap(L, g, "setmetatable", sb_setmetatable);
    wrap(L, g, "collectgarbage", sb_collectgarbage);
    wrap(L, g, "xpcall", sb_xpcall);
    lua_getfield(L, g, LUA_STRLIBNAME);
    set_nil(L, g + 1, "dump");
    wrap(L, g + 1, "rep", sb_string_rep);
    lua_getfield(L, g, LUA_TABLIBNAME);
    wrap(L, g + 2, "move", sb_table_move);
    wrap(L, g + 2, "insert", sb_table_insert);
    wrap(L, g + 2, "remove", sb_table_remove);
    wrap(L, g + 2, "sort", sb_table_sort);
    lua_getfield(L, g, LUA_COLIBNAME);
    wrap(L, g + 3, "close", sb_co_close);
    lua_pushcfunction(L, sb_co_wrap);
    lua_setfield(L, g + 3, "wrap");
    lua_settop(L, 0);
}

/* Protected body: (source, length) -> rendered values or nil. */
static int sb_main(lua_State *L) {
    sandbox *sb = sb_of(L);
    const char *src = lua_touserdata(L, 1);
    size_t len = (size_t)lua_tointeger(L, 2);
    lua_settop(L, 0);
    sb_open_libs(L);
    if (luaL_loadbufferx(L, src, len, "=code", "t") != LUA_OK) return lua_error(L);
    lua_sethook(L, sb_hook, LUA_MASKCOUNT, sb->hook_every);
    lua_call(L, 0, LUA_MULTRET);
    int n = lua_gettop(L);
    if (n == 0) return 0;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1) luaL_addstring(&b, ", ");
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    return 1;
}

/* ---- assembling the result ---------------------------------------------- */

typedef struct text {
    char *p;
    size_t len, cap;
    int nomem;
} text;

static void text_add(text *t, const char *s, size_t n) {
    if (t->nomem) return;
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 256;
        while (cap < t->len + n + 1) cap *= 2;
        char *p = realloc(t->p, cap);
        if (!p) {
            t->nomem = 1;
            return;
        }
        t->p = p;
        t->cap = cap;
    }
    memcpy(t->p + t->len, s, n);
    t->len += n;
    t->p[t->len] = '\0';
}

static void text_str(text *t, const char *s) { text_add(t, s, strlen(s)); }

/* Length of the valid UTF-8 sequence at s (no NUL, overlong or surrogate), 0 if none. */
static size_t utf8_valid(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c == 0) return 0;
    if (c < 0x80) return 1;
    size_t k = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
    if (k == 0 || c > 0xF4 || k > n) return 0;
    for (size_t i = 1; i < k; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    if (c == 0xE0 && s[1] < 0xA0) return 0; /* overlong */
    if (c == 0xED && s[1] > 0x9F) return 0; /* surrogate */
    if (c == 0xF0 && s[1] < 0x90) return 0; /* overlong */
    if (c == 0xF4 && s[1] > 0x8F) return 0; /* past U+10FFFF */
    return k;
}

static void text_add_utf8(text *t, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, start = 0;
    while (i < n) {
        size_t k = utf8_valid(u + i, n - i);
        if (k) {
            i += k;
            continue;
        }
        text_add(t, s + start, i - start);
        text_add(t, "\xEF\xBF\xBD", 3);
        start = ++i;
    }
    text_add(t, s + start, n - start);
}

/* Adds s (n bytes) as UTF-8, cut at `cap` bytes with a marker. */
static void text_add_capped(text *t, const char *s, size_t n, size_t cap) {
    text_add_utf8(t, s, n < cap ? n : cap);
    if (n > cap) text_str(t, " ...(truncated)");
}

static void add_error(text *t, lua_State *L, int status, const sandbox *sb) {
    char msg[256];
    text_str(t, "error: ");
    if (sb->reason[0]) {
        snprintf(msg, sizeof msg, "%s", sb->reason);
    } else if (status == LUA_ERRMEM && sb->deep) {
        snprintf(msg, sizeof msg, "stack overflow (recursion deeper than the memory limit of %zu bytes allows)",
                 sb->lim.max_memory);
    } else if (status == LUA_ERRMEM) {
        snprintf(msg, sizeof msg, "memory limit reached (%zu bytes)", sb->lim.max_memory);
    } else if (lua_type(L, -1) == LUA_TSTRING) {
        size_t n;
        const char *s = lua_tolstring(L, -1, &n);
        text_add_capped(t, s, n, sb->lim.max_output);
        return;
    } else if (lua_isinteger(L, -1)) {
        snprintf(msg, sizeof msg, "%lld", (long long)lua_tointeger(L, -1));
    } else if (lua_type(L, -1) == LUA_TNUMBER) {
        snprintf(msg, sizeof msg, "%.14g", (double)lua_tonumber(L, -1));
    } else {
        snprintf(msg, sizeof msg, "(error object is a %s value)", luaL_typename(L, -1));
    }
    text_str(t, msg);
}

static lm_status finish(lua_State *L, int status, sandbox *sb, lm_tool_result *out, lm_error *err) {
    text t = {0};
    if (sb->out_len) {
        text_str(&t, "stdout:\n");
        text_add_utf8(&t, sb->out, sb->out_len);
        if (sb->out[sb->out_len - 1] != '\n') text_str(&t, "\n");
    }
    if (status == LUA_OK) {
        if (lua_type(L, -1) == LUA_TSTRING) {
            size_t n;
            const char *v = lua_tolstring(L, -1, &n);
            text_str(&t, "value: ");
            text_add_capped(&t, v, n, sb->lim.max_output);
        } else if (!sb->out_len) {
            text_str(&t, "(no output)");
        }
    } else {
        add_error(&t, L, status, sb);
    }
    if (!t.p) text_str(&t, "");
    if (t.nomem || sb->host_nomem) {
        free(t.p);
        return lm_error_set(err, LM_ERR_NOMEM, "code: out of memory");
    }
    out->text = t.p;
    out->len = t.len;
    out->is_error = status != LUA_OK;
    return LM_OK;
}

lm_code_limits lm_code_limits_default(void) {
    lm_code_limits l = {LM_CODE_DEFAULT_INSTRUCTIONS, LM_CODE_DEFAULT_MEMORY, LM_CODE_DEFAULT_OUTPUT};
    return l;
}

static lm_status resolve_limits(const lm_code_limits *lim, lm_code_limits *r, lm_error *err) {
    *r = lm_code_limits_default();
    if (!lim) return LM_OK;
    if (lim->max_instructions < 0) return lm_error_set(err, LM_ERR_ARG, "code: max_instructions is negative");
    if (lim->max_memory && lim->max_memory < LM_CODE_MIN_MEMORY)
        return lm_error_set(err, LM_ERR_ARG, "code: max_memory must be at least %zu bytes", LM_CODE_MIN_MEMORY);
    if (lim->max_instructions) r->max_instructions = lim->max_instructions;
    if (lim->max_memory) r->max_memory = lim->max_memory;
    if (lim->max_output) r->max_output = lim->max_output;
    return LM_OK;
}

lm_status lm_code_run(const char *source, const lm_code_limits *lim, lm_tool_result *out, lm_error *err) {
    if (!source || !out) return lm_error_set(err, LM_ERR_ARG, "code: NULL source or result");
    memset(out, 0, sizeof *out);
    sandbox sb;
    memset(&sb, 0, sizeof sb);
    lm_status st = resolve_limits(lim, &sb.lim, err);
    if (st != LM_OK) return st;
    sb.hook_every = sb.lim.max_instructions < HOOK_EVERY ? (int)sb.lim.max_instructions : HOOK_EVERY;
    lua_State *L = lua_newstate(sb_alloc, &sb);
    if (!L) return lm_error_set(err, LM_ERR_NOMEM, "code: cannot create a Lua state");
    sb.L = L;
    lua_pushcfunction(L, sb_main);
    lua_pushlightuserdata(L, (void *)source);
    lua_pushinteger(L, (lua_Integer)strlen(source));
    int status = lua_pcall(L, 2, 1, 0);
    st = finish(L, status, &sb, out, err);
    lua_close(L);
    free(sb.out);
    return st;
}

/* ---- the tool ------------------------------------------------------------ */

static const char code_schema[] = "{\"type\":\"object\",\"properties\":{\"code\":{\"type\":\"string\","
                                  "\"description\":\"Lua 5.4 source; print() output and returned "
                                  "values come back\"}},\"required\":[\"code\"],"
                                  "\"additionalProperties\":false}";

static lm_status result_text(lm_tool_result *out, const char *msg, int is_error, lm_error *err) {
    size_t n = strlen(msg);
    out->text = malloc(n + 1);
    if (!out->text) return lm_error_set(err, LM_ERR_NOMEM, "code: out of memory");
    memcpy(out->text, msg, n + 1);
    out->len = n;
    out->is_error = is_error;
    return LM_OK;
}

static lm_status code_call(void *state, const char *args_json, lm_tool_result *out, lm_error *err) {
    if (!out) return lm_error_set(err, LM_ERR_ARG, "code: NULL result");
    memset(out, 0, sizeof *out);
    cJSON *root = args_json ? cJSON_Parse(args_json) : NULL;
    const cJSON *code = cJSON_IsObject(root) ? cJSON_GetObjectItemCaseSensitive(root, "code") : NULL;
    int extra = 0;
    if (code)
        for (const cJSON *it = root->child; it; it = it->next) extra |= !it->string || strcmp(it->string, "code");
    lm_status st;
    if (!cJSON_IsString(code) || !code->valuestring || extra)
        st = result_text(out, "error: invalid arguments: expected {\"code\": \"<Lua 5.4 source>\"}", 1, err);
    else
        st = lm_code_run(code->valuestring, state, out, err);
    cJSON_Delete(root);
    return st;
}

lm_status lm_tool_code(lm_tool *out, const lm_code_limits *lim, lm_error *err) {
    if (!out) return lm_error_set(err, LM_ERR_ARG, "code: NULL tool");
    memset(out, 0, sizeof *out);
    lm_code_limits *state = malloc(sizeof *state);
    if (!state) return lm_error_set(err, LM_ERR_NOMEM, "code: out of memory");
    lm_status st = resolve_limits(lim, state, err);
    if (st != LM_OK) {
        free(state);
        return st;
    }
    out->name = "code";
    out->description = "Runs a Lua 5.4 snippet in a sandbox (no files, no os) and returns what it "
                       "printed and the values it returned.";
    out->parameters_schema = code_schema;
    out->call = code_call;
    out->free_state = free;
    out->state = state;
    return LM_OK;
}
