/* Tool calls on the wire: the <tool_call> scanner over pieces cut at every
 * byte, the call's JSON, argument validation against the real tools'
 * schemas, and the tools array a template renders. */
#include "llmos/calculator.h"
#include "llmos/code_tool.h"
#include "llmos/search.h"
#include "llmos/tool_call.h"
#include "llmos/toolbox.h"
#include "test.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* What the scanner reported, as one string: text verbatim, calls as [CALL:body]. */
typedef struct sink {
    char buf[1 << 18];
    size_t len;
    int calls;
} sink;

static void sink_add(sink *k, const char *p, size_t n) {
    REQUIRE(k->len + n < sizeof k->buf);
    memcpy(k->buf + k->len, p, n);
    k->len += n;
    k->buf[k->len] = '\0';
}

static lm_status on_text(void *user, const char *t, size_t n) {
    CHECK(n > 0);
    sink_add(user, t, n);
    return LM_OK;
}

static lm_status on_call(void *user, const char *c, size_t n) {
    sink *k = user;
    CHECK(c[n] == '\0');
    k->calls++;
    sink_add(k, "[CALL:", 6);
    sink_add(k, c, n);
    sink_add(k, "]", 1);
    return LM_OK;
}

/* Feeds text in pieces of `step` bytes (0: whole), after a first cut at `cut`. */
static lm_status scan(const char *text, size_t cut, size_t step, size_t cap, sink *k, lm_error *err) {
    memset(k, 0, sizeof *k);
    lm_tool_call_scanner *s = NULL;
    REQUIRE(lm_tool_call_scanner_init(&s, cap, on_text, on_call, k, err) == LM_OK);
    size_t n = strlen(text), i = 0;
    lm_status st = LM_OK;
    if (cut > n) cut = n;
    if (cut) st = lm_tool_call_scanner_push(s, text, cut, err), i = cut;
    while (st == LM_OK && i < n) {
        size_t m = step && step < n - i ? step : n - i;
        st = lm_tool_call_scanner_push(s, text + i, m, err);
        i += m;
    }
    if (st == LM_OK) st = lm_tool_call_scanner_finish(s, err);
    lm_tool_call_scanner_free(s);
    return st;
}

/* The same output whether text arrives whole, byte by byte, or cut in two at any point. */
static void expect_scan(const char *text, const char *want, int calls) {
    sink k;
    lm_error err = {0};
    lm_status st = scan(text, 0, 0, 0, &k, &err);
    CHECKF(st == LM_OK && !strcmp(k.buf, want) && k.calls == calls, "[%s]\n got [%s] (%s)", text, k.buf, err.message);
    st = scan(text, 0, 1, 0, &k, &err);
    CHECKF(st == LM_OK && !strcmp(k.buf, want), "bytewise [%s]\n got [%s]", text, k.buf);
    for (size_t cut = 1; cut < strlen(text); cut++) {
        st = scan(text, cut, 0, 0, &k, &err);
        CHECKF(st == LM_OK && !strcmp(k.buf, want) && k.calls == calls, "cut %zu [%s]\n got [%s]", cut, text, k.buf);
        st = scan(text, cut, 3, 0, &k, &err);
        CHECKF(st == LM_OK && !strcmp(k.buf, want), "cut %zu step 3 [%s]\n got [%s]", cut, text, k.buf);
    }
}

#define CALC "{\"name\": \"calculator\", \"arguments\": {\"expression\": \"2+2\"}}"

static void test_scanner(void) {
    expect_scan("hello world", "hello world", 0);
    expect_scan("", "", 0);
    expect_scan("<tool_call>\n" CALC "\n</tool_call>", "[CALL:" CALC "]", 1);
    expect_scan("Let me compute.\n<tool_call>\n" CALC "\n</tool_call>\nDone.",
                "Let me compute.\n[CALL:" CALC "]\nDone.", 1);
    /* Things that look like a start and are not. */
    expect_scan("a <tool and <tool_cal> and <<tool_call>x</tool_call> <",
                "a <tool and <tool_cal> and <[CALL:x] <", 1);
    expect_scan("x < y, <tool_c", "x < y, <tool_c", 0);
    expect_scan("<tool_callx", "<tool_callx", 0);
    /* Inside a call, partial close tags are part of the body. */
    expect_scan("<tool_call>{\"a\": \"</tool_cal <\"}</tool_call>", "[CALL:{\"a\": \"</tool_cal <\"}]", 1);
    expect_scan("<tool_call><</tool_call>", "[CALL:<]", 1);
    /* Two calls. */
    expect_scan("<tool_call>\n{\"name\":\"a\"}\n</tool_call>\n<tool_call>\n{\"name\":\"b\"}\n</tool_call>",
                "[CALL:{\"name\":\"a\"}]\n[CALL:{\"name\":\"b\"}]", 2);
    expect_scan("<tool_call></tool_call>", "[CALL:]", 1);

    /* Unterminated at the end. */
    sink k;
    lm_error err = {0};
    lm_status st = scan("text <tool_call>{\"name\": \"calc", 0, 1, 0, &k, &err);
    CHECKF(st == LM_ERR_FORMAT && strstr(err.message, "not closed") && !strcmp(k.buf, "text ") && k.calls == 0,
           "%d %s [%s]", st, err.message, k.buf);
    st = scan("<tool_call>{}</tool_ca", 0, 0, 0, &k, &err);
    CHECK(st == LM_ERR_FORMAT && k.calls == 0);

    /* Over the cap: an error, sticky; the text before it was shown. */
    st = scan("hi <tool_call>0123456789</tool_call>", 0, 0, 10, &k, &err);
    CHECKF(st == LM_OK && k.calls == 1, "exactly the cap: %s", err.message);
    st = scan("hi <tool_call>0123456789A</tool_call>", 0, 0, 10, &k, &err);
    CHECKF(st == LM_ERR_LIMIT && strstr(err.message, "longer than 10") && !strcmp(k.buf, "hi ") && k.calls == 0,
           "%d %s [%s]", st, err.message, k.buf);
    st = scan("hi <tool_call>0123456789A</tool_call>", 0, 1, 10, &k, &err);
    CHECK(st == LM_ERR_LIMIT && !strcmp(k.buf, "hi "));
    {
        lm_tool_call_scanner *s;
        REQUIRE(lm_tool_call_scanner_init(&s, 0, on_text, on_call, &k, &err) == LM_OK);
        memset(&k, 0, sizeof k);
        CHECK(lm_tool_call_scanner_push(s, "<tool_call>", 11, &err) == LM_OK);
        CHECK(lm_tool_call_scanner_in_call(s));
        static char big[(64 << 10) + 1];
        memset(big, 'x', sizeof big);
        CHECK(lm_tool_call_scanner_push(s, big, sizeof big, &err) == LM_ERR_LIMIT);
        CHECK(lm_tool_call_scanner_push(s, "</tool_call>", 12, &err) == LM_ERR_LIMIT);
        CHECK(lm_tool_call_scanner_finish(s, &err) == LM_ERR_LIMIT);
        CHECK(k.calls == 0);
        lm_tool_call_scanner_free(s);
    }
    /* NULL callbacks drop output. */
    {
        lm_tool_call_scanner *s;
        REQUIRE(lm_tool_call_scanner_init(&s, 0, NULL, NULL, NULL, &err) == LM_OK);
        CHECK(lm_tool_call_scanner_push(s, "a<tool_call>b</tool_call>c<", 27, &err) == LM_OK);
        CHECK(lm_tool_call_scanner_finish(s, &err) == LM_OK);
        lm_tool_call_scanner_free(s);
    }
}

static void expect_parse(const char *json, const char *name, const char *args) {
    char *n = NULL, *a = NULL;
    lm_error err = {0};
    lm_status st = lm_tool_call_parse(json, strlen(json), &n, &a, &err);
    CHECKF(st == LM_OK && n && a && !strcmp(n, name) && !strcmp(a, args), "%s: %s -> [%s] [%s]", json, err.message,
           n ? n : "", a ? a : "");
    free(n);
    free(a);
}

static void expect_parse_error(const char *json, const char *needle) {
    char *n = (char *)1, *a = (char *)1;
    lm_error err = {0};
    lm_status st = lm_tool_call_parse(json, strlen(json), &n, &a, &err);
    CHECKF(st == LM_ERR_FORMAT && !n && !a && strstr(err.message, needle), "%s: %d %s", json, st, err.message);
}

static void test_parse(void) {
    expect_parse(CALC, "calculator", "{\"expression\":\"2+2\"}");
    expect_parse("  \n" CALC "\n ", "calculator", "{\"expression\":\"2+2\"}");
    expect_parse("{\"name\": \"search\", \"arguments\": \"{\\\"query\\\": \\\"cats\\\", \\\"k\\\": 2}\"}", "search",
                 "{\"query\":\"cats\",\"k\":2}");
    expect_parse("{\"name\": \"code\"}", "code", "{}");
    expect_parse("{\"arguments\": {}, \"name\": \"x\", \"extra\": 1}", "x", "{}");
    expect_parse_error("{\"arguments\": {}}", "missing \"name\"");
    expect_parse_error("{\"name\": 3, \"arguments\": {}}", "\"name\" must be");
    expect_parse_error("{\"name\": \"\", \"arguments\": {}}", "\"name\" must be");
    expect_parse_error("{\"name\": \"a\", \"arguments\": [1]}", "\"arguments\" must be an object");
    expect_parse_error("{\"name\": \"a\", \"arguments\": 5}", "\"arguments\" must be an object");
    expect_parse_error("{\"name\": \"a\", \"arguments\": \"[1]\"}", "\"arguments\" must be an object");
    expect_parse_error("{\"name\": \"a\", \"arguments\": \"{oops\"}", "\"arguments\" string is not valid JSON");
    expect_parse_error("{\"name\": \"a\", \"arguments\": {", "not valid JSON");
    expect_parse_error(CALC " trailing", "not valid JSON");
    expect_parse_error("", "not valid JSON");
    expect_parse_error("[1, 2]", "not a JSON object");
    /* Length is honoured: no read past n. */
    char *n = NULL, *a = NULL;
    CHECK(lm_tool_call_parse(CALC "garbage", strlen(CALC), &n, &a, NULL) == LM_OK);
    free(n);
    free(a);
    CHECK(lm_tool_call_parse(CALC, strlen(CALC) - 1, &n, &a, NULL) == LM_ERR_FORMAT);
}

static void expect_valid(const char *schema, const char *args) {
    char why[256];
    lm_status st = lm_tool_args_validate(schema, args, why, sizeof why);
    CHECKF(st == LM_OK && why[0] == '\0', "%s: %s", args, why);
}

static void expect_invalid(const char *schema, const char *args, const char *want) {
    char why[256];
    lm_status st = lm_tool_args_validate(schema, args, why, sizeof why);
    CHECKF(st == LM_ERR_ARG && !strcmp(why, want), "%s: [%s] want [%s]", args, why, want);
}

static void test_validate(void) {
    lm_error err = {0};
    lm_tool tools[3];
    REQUIRE(lm_tool_calculator(&tools[0], &err) == LM_OK);
    REQUIRE(lm_tool_code(&tools[1], NULL, &err) == LM_OK);
    char dir[] = "/tmp/llmos-tool-call-XXXXXX";
    REQUIRE(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/a.txt", dir);
    FILE *f = fopen(path, "w");
    REQUIRE(f);
    fputs("cats hunt mice\n", f);
    fclose(f);
    lm_status st = lm_tool_search(&tools[2], dir, NULL, &err);
    CHECKF(st == LM_OK, "%s", err.message);
    int have_search = st == LM_OK;

    const char *calc = tools[0].parameters_schema, *code = tools[1].parameters_schema;
    expect_valid(calc, "{\"expression\": \"2+2\"}");
    expect_invalid(calc, "{}", "missing required property 'expression'");
    expect_invalid(calc, "{\"expression\": 4}", "property 'expression' must be a string");
    expect_invalid(calc, "{\"expression\": \"1\", \"x\": 1}", "unknown property 'x'");
    expect_invalid(calc, "{\"expression\": \"1\", \"expression\": \"2\"}", "duplicate property 'expression'");
    expect_invalid(calc, "[\"2+2\"]", "arguments must be an object");
    expect_invalid(calc, "{\"expression\": ", "arguments are not valid JSON");
    expect_invalid(calc, "{} {}", "arguments are not valid JSON");
    expect_valid(code, "{\"code\": \"return 1\"}");
    expect_invalid(code, "{\"code\": null}", "property 'code' must be a string");
    expect_invalid(code, "{\"source\": \"x\"}", "missing required property 'code'");
    if (have_search) {
        const char *search = tools[2].parameters_schema;
        expect_valid(search, "{\"query\": \"cats\"}");
        expect_valid(search, "{\"query\": \"cats\", \"k\": 10}");
        expect_valid(search, "{\"query\": \"cats\", \"k\": 1.0}");
        expect_invalid(search, "{\"query\": \"cats\", \"k\": 2.5}", "property 'k' must be an integer");
        expect_invalid(search, "{\"query\": \"cats\", \"k\": \"3\"}", "property 'k' must be an integer");
        expect_invalid(search, "{\"query\": \"cats\", \"k\": 0}", "property 'k' must be at least 1");
        expect_invalid(search, "{\"query\": \"cats\", \"k\": 11}", "property 'k' must be at most 10");
        expect_invalid(search, "{\"k\": 3}", "missing required property 'query'");
        expect_invalid(search, "{\"query\": true}", "property 'query' must be a string");
    }

    /* The rest of the subset. */
    const char *s = "{\"type\":\"object\",\"properties\":{"
                    "\"unit\":{\"type\":\"string\",\"enum\":[\"c\",\"f\"]},"
                    "\"on\":{\"type\":\"boolean\"},"
                    "\"x\":{\"type\":\"number\",\"minimum\":-1.5},"
                    "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},"
                    "\"opt\":{\"type\":[\"string\",\"null\"]},"
                    "\"sub\":{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\"}},\"required\":[\"n\"]}"
                    "},\"pattern\":\"ignored\",\"x-unknown\":{}}";
    expect_valid(s, "{}");
    expect_valid(s, "{\"unit\":\"c\",\"on\":false,\"x\":-1.5,\"tags\":[\"a\"],\"opt\":null,\"sub\":{\"n\":3},\"more\":1}");
    expect_invalid(s, "{\"unit\":\"k\"}", "property 'unit' must be one of 'c', 'f'");
    expect_invalid(s, "{\"on\":1}", "property 'on' must be a boolean");
    expect_invalid(s, "{\"x\":-2}", "property 'x' must be at least -1.5");
    expect_invalid(s, "{\"x\":\"1\"}", "property 'x' must be a number");
    expect_invalid(s, "{\"tags\":\"a\"}", "property 'tags' must be an array");
    expect_invalid(s, "{\"tags\":[\"a\",2]}", "property 'tags[1]' must be a string");
    expect_invalid(s, "{\"opt\":3}", "property 'opt' must be a string or null");
    expect_invalid(s, "{\"sub\":{}}", "missing required property 'sub.n'");
    expect_invalid(s, "{\"sub\":{\"n\":0.5}}", "property 'sub.n' must be an integer");
    expect_invalid(s, "{\"sub\":[]}", "property 'sub' must be an object");
    expect_invalid("{\"type\":", "{}", "schema is not valid JSON");
    CHECK(lm_tool_args_validate(calc, "{}", NULL, 0) == LM_ERR_ARG);
    char tiny[8];
    CHECK(lm_tool_args_validate(calc, "{}", tiny, sizeof tiny) == LM_ERR_ARG && strlen(tiny) == 7);

    /* The tools array, read back. */
    char *json = NULL;
    st = lm_tools_json(tools, have_search ? 3 : 2, &json, &err);
    CHECKF(st == LM_OK && json, "%s", err.message);
    cJSON *arr = json ? cJSON_Parse(json) : NULL;
    CHECK(cJSON_IsArray(arr) && cJSON_GetArraySize(arr) == (have_search ? 3 : 2));
    for (int i = 0; arr && i < cJSON_GetArraySize(arr); i++) {
        cJSON *e = cJSON_GetArrayItem(arr, i);
        cJSON *fn = cJSON_GetObjectItemCaseSensitive(e, "function");
        CHECK(!strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "type")), "function"));
        CHECK(!strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(fn, "name")), tools[i].name));
        CHECK(!strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(fn, "description")),
                      tools[i].description));
        cJSON *want = cJSON_Parse(tools[i].parameters_schema);
        CHECK(cJSON_Compare(cJSON_GetObjectItemCaseSensitive(fn, "parameters"), want, 1));
        cJSON_Delete(want);
        /* name, description, parameters in that order, as templates print them. */
        CHECK(fn && fn->child && !strcmp(fn->child->string, "name") && fn->child->next &&
              !strcmp(fn->child->next->string, "description"));
    }
    cJSON_Delete(arr);
    free(json);
    CHECK(lm_tools_json(NULL, 0, &json, &err) == LM_OK && !strcmp(json, "[]"));
    free(json);
    lm_tool bad = {.name = "bad", .description = "d", .parameters_schema = "{oops"};
    json = (char *)1;
    CHECK(lm_tools_json(&bad, 1, &json, &err) == LM_ERR_FORMAT && !json && strstr(err.message, "'bad'"));

    for (int i = 0; i < (have_search ? 3 : 2); i++) lm_tool_free(&tools[i]);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

/* The toolbox: enabling tools by name, and a call run from its JSON to the tool message. */
static void test_toolbox(void) {
    lm_toolbox tb;
    lm_error err = {0};
    CHECK(lm_toolbox_init(&tb, "calculator,shell", NULL, &err) == LM_ERR_ARG && strstr(err.message, "'shell'"));
    CHECK(tb.n == 0 && tb.tools_json == NULL);
    CHECK(lm_toolbox_init(&tb, "calculator,,code", NULL, &err) == LM_ERR_ARG && strstr(err.message, "empty"));
    CHECK(lm_toolbox_init(&tb, "code,code", NULL, &err) == LM_ERR_ARG && strstr(err.message, "twice"));
    CHECK(lm_toolbox_init(&tb, "search", NULL, &err) == LM_ERR_ARG && strstr(err.message, "folder"));
    REQUIRE(lm_toolbox_init(&tb, "calculator,code", NULL, &err) == LM_OK);
    CHECK(tb.n == 2 && lm_toolbox_find(&tb, "code") && !lm_toolbox_find(&tb, "search"));
    CHECK(strstr(tb.tools_json, "\"name\":\"calculator\"") != NULL);
    static const struct {
        const char *call, *name, *result;
        int is_error;
    } cases[] = {
        {"{\"name\": \"calculator\", \"arguments\": {\"expression\": \"2^70\"}}", "calculator", "1180591620717411303424", 0},
        {"{\"name\": \"calculator\", \"arguments\": \"{\\\"expression\\\": \\\"7 / 0\\\"}\"}", "calculator",
         "error: division by zero", 1},
        {"{\"name\": \"code\", \"arguments\": {\"code\": \"return 6 * 7\"}}", "code", "value: 42", 0},
        {"{\"name\": \"calculator\", \"arguments\": {\"expr\": \"1\"}}", "calculator", "error: ", 1},
        {"{\"name\": \"search\", \"arguments\": {\"query\": \"x\"}}", "search", "error: no tool named 'search' is enabled", 1},
        {"{\"name\": calculator}", NULL, "error: ", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *name, *args, *result;
        int is_error;
        REQUIRE(lm_toolbox_run(&tb, cases[i].call, strlen(cases[i].call), &name, &args, &result, &is_error, &err) == LM_OK);
        CHECKF((name == NULL) == (cases[i].name == NULL) && (!name || strcmp(name, cases[i].name) == 0) &&
                   strncmp(result, cases[i].result, strlen(cases[i].result)) == 0 && is_error == cases[i].is_error,
               "case %zu: %s -> %s (error %d)", i, name ? name : "(no name)", result, is_error);
        if (cases[i].result[0] != 'e') CHECK(strstr(result, cases[i].result) != NULL);
        free(name), free(args), free(result);
    }
    lm_toolbox_free(&tb);
    CHECK(tb.n == 0);
}

int main(void) {
    test_scanner();
    test_parse();
    test_validate();
    test_toolbox();
    TEST_END();
}
