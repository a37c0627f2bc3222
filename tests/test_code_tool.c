/* The `code` tool: ordinary snippets give their output and values; every
 * sandbox escape and limit of issue 7 (os, io, require, dofile/loadfile,
 * binary chunks, string.rep and table memory bombs, infinite loops, deep
 * recursion of each kind, huge output, coroutine bombs, C-loop CPU bombs,
 * __gc finalizers, metatable tricks) ends with its clear message, and the
 * next run in the same process still works. */
#include "llmos/code_tool.h"
#include "test.h"

#include <string.h>
#include <time.h>

static lm_tool_result run_lim(const char *src, const lm_code_limits *lim) {
    lm_tool_result r;
    lm_error err = {0};
    lm_status st = lm_code_run(src, lim, &r, &err);
    CHECKF(st == LM_OK, "%s: %s", src, err.message);
    REQUIRE(st == LM_OK && r.text);
    CHECK(strlen(r.text) == r.len);
    return r;
}

/* The process survives and the next run is clean. */
static void check_alive(void) {
    lm_tool_result r = run_lim("return 1 + 1", NULL);
    CHECKF(!r.is_error && !strcmp(r.text, "value: 2"), "after: %s", r.text);
    lm_tool_result_free(&r);
}

/* Runs src and checks the whole text. */
static void expect(const char *src, int is_error, const char *want) {
    lm_tool_result r = run_lim(src, NULL);
    CHECKF(r.is_error == is_error && !strcmp(r.text, want), "%s\n  got: [%s]\n  want: [%s]", src, r.text, want);
    lm_tool_result_free(&r);
}

/* Runs src under lim and checks that it fails with `needle` in the text and
 * within a few seconds. */
static void expect_error_lim(const char *src, const lm_code_limits *lim, const char *needle) {
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    lm_tool_result r = run_lim(src, lim);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    CHECKF(r.is_error && strstr(r.text, needle), "%s\n  got: [%.300s]\n  want: [%s]", src, r.text, needle);
    CHECKF(s < 20.0, "%s took %.1f s", src, s);
    CHECKF(!strchr(r.text, '/') || strstr(needle, "/"), "host path in [%.300s]", r.text);
    lm_tool_result_free(&r);
    check_alive();
}

static void expect_error(const char *src, const char *needle) { expect_error_lim(src, NULL, needle); }

static void test_normal(void) {
    expect("return 6 * 7", 0, "value: 42");
    expect("local s = 0 for i = 1, 100 do s = s + i end return s", 0, "value: 5050");
    expect("return ('abc'):upper() .. string.format('%03d', 5), string.rep('ab', 3, '-')", 0,
           "value: ABC005, ab-ab-ab");
    expect("return #string.rep('', math.maxinteger), #string.rep('x', 0)", 0, "value: 0, 0");
    expect("print('hi', 1, nil, true)", 0, "stdout:\nhi\t1\tnil\ttrue\n");
    expect("print('a') print('b') return 3", 0, "stdout:\na\nb\nvalue: 3");
    expect("return 1, 'two', nil", 0, "value: 1, two, nil");
    expect("return nil", 0, "value: nil");
    expect("local x = 1", 0, "(no output)");
    expect("return 2^0.5 > 1.41, math.floor(7 / 2), 7 // 2, 1 / 2", 0, "value: true, 3, 3, 0.5");
    expect("local t = {5, 3, 9, 1} table.sort(t) table.insert(t, 1, 0) table.remove(t, 2)"
           " return table.concat(t, ',')",
           0, "value: 0,3,5,9");
    expect("return table.concat(table.move({1, 2, 3}, 1, 3, 2), ',')", 0, "value: 1,1,2,3");
    expect("return utf8.char(233, 8364), utf8.len('h\\u{e9}')", 0, "value: \xc3\xa9\xe2\x82\xac, 2");
    expect("local co = coroutine.wrap(function() for i = 1, 3 do coroutine.yield(i) end end)"
           " return co() + co() + co()",
           0, "value: 6");
    expect("return xpcall(error, function(m) return 'handled: ' .. m end, 'x')", 0, "value: false, handled: x");
    expect("local co = coroutine.wrap(function() error('e') end) return pcall(co)", 0, "value: false, code:1: e");
    expect("local co = coroutine.wrap(function() local x <close> = setmetatable({}, {__close = function()"
           " print('closed') end}) error('e', 0) end) return pcall(co)",
           0, "stdout:\nclosed\nvalue: false, e");
    expect("local co = coroutine.wrap(function() end) co() return pcall(co)", 0,
           "value: false, cannot resume dead coroutine");
    expect("return load('return 1 + 2')(), load('return x', 'c', 't', {x = 5})()", 0, "value: 3, 5");
    expect("return setmetatable({}, {__tostring = function() return 'obj' end})", 0, "value: obj");
    expect("return type(collectgarbage('count')), collectgarbage()", 0, "value: number, 0");
    expect("return _ENV == _G, getmetatable('').__index == string", 0, "value: true, true");
    expect("print('a\\255b\\0c')", 0, "stdout:\na\xef\xbf\xbd" "b\xef\xbf\xbd" "c\n");
    check_alive();
}

static void test_errors(void) {
    expect("error('boom')", 1, "error: code:1: boom");
    expect("print('partial') error('boom', 0)", 1, "stdout:\npartial\nerror: boom");
    expect("error({})", 1, "error: (error object is a table value)");
    expect("error(42)", 1, "error: 42");
    expect_error("return 1 +", "code:1: unexpected symbol near <eof>");
    expect_error("local t = nil\nreturn t.x", "code:2: attempt to index a nil value (local 't')");
}

static void test_escapes(void) {
    expect_error("os.execute('touch /tmp/llmos_pwned')", "attempt to index a nil value (global 'os')");
    expect_error("return io.open('/etc/passwd'):read('a')", "attempt to index a nil value (global 'io')");
    expect_error("return require('os')", "attempt to call a nil value (global 'require')");
    expect_error("return dofile('/etc/passwd')", "attempt to call a nil value (global 'dofile')");
    expect_error("return loadfile('/etc/passwd')", "attempt to call a nil value (global 'loadfile')");
    expect_error("return package.loaded.os", "attempt to index a nil value (global 'package')");
    expect_error("return debug.getregistry()", "attempt to index a nil value (global 'debug')");
    expect_error("return string.dump(print)", "attempt to call a nil value (field 'dump')");
    expect("return os, io, package, debug, require, dofile, loadfile, string.dump, warn", 0,
           "value: nil, nil, nil, nil, nil, nil, nil, nil, nil");
    /* The string metatable leads only to the sandbox's string table. */
    expect("local s = getmetatable('').__index return s.dump, rawget(s, 'dump'), ('').dump, s == string", 0,
           "value: nil, nil, nil, true");
    /* Everything reachable from _G. */
    expect("local n = {} for k in pairs(_G) do n[#n + 1] = k end table.sort(n) return table.concat(n, ' ')", 0,
           "value: _G _VERSION assert collectgarbage coroutine error getmetatable ipairs load math next "
           "pairs pcall print rawequal rawget rawlen rawset select setmetatable string table tonumber "
           "tostring type utf8 xpcall");
    /* Binary chunks: a crafted header through load in every mode, and as the snippet itself. */
    static const char *bin = "local c = '\\27Lua\\84\\0\\25\\147\\13\\10\\26\\10\\4\\8\\8\\120\\86\\0\\0\\0\\0\\0\\0'"
                             " .. string.rep('\\0', 64) ";
    char src[512];
    snprintf(src, sizeof src, "%s return load(c)", bin);
    expect(src, 0, "value: nil, attempt to load a binary chunk (mode is 't')");
    snprintf(src, sizeof src, "%s return load(c, 'x', 'b')", bin);
    expect(src, 0, "value: nil, attempt to load a binary chunk (mode is 't')");
    snprintf(src, sizeof src, "%s return load(c, 'x', 'bt', {})", bin);
    expect(src, 0, "value: nil, attempt to load a binary chunk (mode is 't')");
    snprintf(src, sizeof src, "%s local parts = {c} return load(function() return table.remove(parts) end)", bin);
    expect(src, 0, "value: nil, attempt to load a binary chunk (mode is 't')");
    expect_error("\x1bLua\x54", "attempt to load a binary chunk (mode is 't')");
    /* Finalizers run without hooks: refused. */
    expect_error("setmetatable({}, {__gc = function() while true do end end})", "__gc metamethods are not allowed");
    expect_error("collectgarbage('stop')", "collectgarbage('stop') is not available");
}

static void test_limits(void) {
    /* Memory. */
    expect_error("return #string.rep('x', 1e9)", "memory limit reached (16777216 bytes)");
    expect_error("local s = 'x' while true do s = s .. s end", "memory limit reached");
    expect_error("local t = {} for i = 1, 1e9 do t[i] = i end", "memory limit reached");
    expect_error("local t = {} for i = 1, 1e9 do t[i] = {} end", "memory limit reached");
    expect("return pcall(string.rep, 'x', 1e9)", 0, "value: false, not enough memory");
    /* Instructions, also when pcall catches the error. */
    expect_error("while true do end", "instruction limit reached (10000000 instructions)");
    expect_error("local function f() return f() end return f()", "instruction limit reached");
    expect_error("while true do pcall(function() while true do end end) end", "instruction limit reached");
    expect_error("while true do pcall(error) end", "instruction limit reached");
    expect_error("local co = coroutine.wrap(function() while true do end end) co()", "instruction limit reached");
    expect_error("while true do coroutine.resume(coroutine.create(function() while true do end end)) end",
                 "instruction limit reached");
    expect_error("local ok = xpcall(function() while true do end end, function() while true do end end)"
                 " while true do end",
                 "instruction limit reached");
    /* Code that Lua would run with hooks off after a stop: message handlers and __close. */
    expect_error("local x <close> = setmetatable({}, {__close = function() while true do end end}) while true do end",
                 "instruction limit reached");
    expect_error("local co = coroutine.create(function() local x <close> = setmetatable({}, {__close = function()"
                 " while true do end end}) while true do end end) coroutine.resume(co) coroutine.close(co)",
                 "instruction limit reached");
    expect_error("local co = coroutine.wrap(function() local x <close> = setmetatable({}, {__close = function()"
                 " while true do end end}) while true do end end) pcall(co) while true do end",
                 "instruction limit reached");
    expect_error("local co = coroutine.create(function() local x <close> = setmetatable({}, {__close = function()"
                 " while true do end end}) for i = 1, 1e9 do print(i) end end) coroutine.resume(co) coroutine.close(co)",
                 "output limit reached");
    /* C loops the snippet controls are charged. */
    expect_error("table.move({}, 1, 1e15, 1, {})", "instruction limit reached");
    expect_error("local t = setmetatable({}, {__len = function() return 1 << 50 end}) table.insert(t, 1, 0)",
                 "instruction limit reached");
    expect_error("local t = setmetatable({}, {__len = function() return 1 << 50 end}) table.remove(t, 1)",
                 "instruction limit reached");
    expect_error("local t = setmetatable({}, {__len = function() return (1 << 31) - 2 end,"
                 " __index = rawlen, __newindex = rawequal}) table.sort(t)",
                 "instruction limit reached");
    /* Deep recursion: Lua calls (memory) and C calls (Lua's C stack limit). */
    expect_error("local function f() return f() + 1 end return f()", "stack overflow");
    expect_error("local function f(n) local x = {f(n + 1)} return x end f(1)", "stack overflow");
    expect_error("local t = setmetatable({}, {__index = function(t, k) return t[k] end}) return t.x",
                 "stack overflow");
    expect_error("local function f() return coroutine.wrap(f)() end return f()", "stack overflow");
    expect_error("local function f(s) return (s:gsub('.', f)) end return f('ab')", "stack overflow");
    expect_error("return " "((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((("
                 "((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((("
                 "((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((1",
                 "overflow");
    lm_code_limits big = {0, (size_t)256 << 20, 0};
    expect_error_lim("local function f() return f() + 1 end return f()", &big, "stack overflow");
    /* Output, also when pcall catches the error. */
    expect_error("for i = 1, 1e9 do print(i) end", "output limit reached (65536 bytes)");
    expect_error("while true do pcall(print, string.rep('x', 100)) end", "output limit reached");
    expect_error("print(string.rep('y', 1e6))", "output limit reached");
    /* Coroutine bombs. */
    expect_error("local t = {} while true do t[#t + 1] = coroutine.create(function() end) end", "memory limit reached");
    expect_error("local t = {} while true do local co = coroutine.wrap(function() coroutine.yield() end) co()"
                 " t[#t + 1] = co end",
                 "memory limit reached");
    /* Custom limits. */
    lm_code_limits small = {1000, 0, 10};
    expect_error_lim("for i = 1, 1e6 do end", &small, "instruction limit reached (1000 instructions)");
    lm_tool_result r = run_lim("print('12345678901234')", &small);
    CHECKF(r.is_error && !strcmp(r.text, "stdout:\n1234567890\nerror: output limit reached (10 bytes)"), "%s", r.text);
    lm_tool_result_free(&r);
    r = run_lim("return string.rep('z', 30)", &small);
    CHECKF(!r.is_error && !strcmp(r.text, "value: zzzzzzzzzz ...(truncated)"), "%s", r.text);
    lm_tool_result_free(&r);
    lm_code_limits tiny = {0, 1024, 0};
    lm_error err;
    CHECK(lm_code_run("return 1", &tiny, &r, &err) == LM_ERR_ARG);
    lm_code_limits neg = {-1, 0, 0};
    CHECK(lm_code_run("return 1", &neg, &r, &err) == LM_ERR_ARG);
    check_alive();
}

static void test_tool(void) {
    lm_tool t;
    lm_error err;
    REQUIRE(lm_tool_code(&t, NULL, &err) == LM_OK);
    CHECK(!strcmp(t.name, "code"));
    CHECK(strstr(t.parameters_schema, "\"required\":[\"code\"]"));
    CHECK(strstr(t.parameters_schema, "\"additionalProperties\":false"));
    lm_tool_result r;
    REQUIRE(t.call(t.state, "{\"code\": \"print('hi') return 40 + 2\"}", &r, &err) == LM_OK);
    CHECKF(!r.is_error && !strcmp(r.text, "stdout:\nhi\nvalue: 42"), "%s", r.text);
    lm_tool_result_free(&r);
    static const char *bad[] = {"not json", "[]", "{}", "{\"code\": 5}", "{\"code\": \"1\", \"x\": 1}", "", NULL};
    for (int i = 0; i < 7; i++) {
        REQUIRE(t.call(t.state, bad[i], &r, &err) == LM_OK);
        CHECKF(r.is_error && strstr(r.text, "invalid arguments"), "%s -> %s", bad[i] ? bad[i] : "NULL", r.text);
        lm_tool_result_free(&r);
    }
    REQUIRE(t.call(t.state, "{\"code\": \"while true do end\"}", &r, &err) == LM_OK);
    CHECK(r.is_error && strstr(r.text, "instruction limit reached"));
    lm_tool_result_free(&r);
    lm_tool_free(&t);
}

int main(void) {
    test_normal();
    test_errors();
    test_escapes();
    test_limits();
    test_tool();
    TEST_END();
}
