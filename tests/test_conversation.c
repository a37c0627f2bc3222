/* Conversations from JSONL: the identity fixture, one line of each bad kind
 * (line numbers and reasons, skipped or fatal), the OpenAI messages form,
 * tool calls, CRLF line endings, and the caps (messages, line length,
 * conversations, skipped lines). */
#include "llmos/conversation.h"
#include "test.h"

#include <unistd.h>

static char tmpdir[64];
static int tmp_count;

/* Writes n bytes to a new file in the test's temporary directory. */
static char *write_tmp(const char *data, size_t n) {
    static char path[128];
    snprintf(path, sizeof path, "%s/f%d.jsonl", tmpdir, tmp_count++);
    FILE *f = fopen(path, "wb");
    REQUIRE(f);
    REQUIRE(fwrite(data, 1, n, f) == n);
    REQUIRE(fclose(f) == 0);
    return path;
}

static char *write_str(const char *s) { return write_tmp(s, strlen(s)); }

static lm_conversation_set *read_ok(const char *path, int strict) {
    lm_error err = {0};
    lm_conversation_set *set = NULL;
    lm_status st = lm_conversations_read(path, strict, &set, &err);
    if (st != LM_OK || !set) {
        fprintf(stderr, "lm_conversations_read(%s): %s\n", path, err.message);
        exit(1);
    }
    return set;
}

static int has(const char *s, const char *sub) { return s && strstr(s, sub) != NULL; }

static void test_fixture(void) {
    lm_conversation_set *set = read_ok(LLMOS_FIXTURES "/chat/identity_head.jsonl", 1);
    CHECK(set->n == 20);
    CHECK(set->n_skipped == 0);
    CHECK(set->n_lines == 20);
    static const int want_len[20] = {4, 8, 8, 12, 6, 2, 6, 2, 8, 6, 8, 12, 2, 8, 8, 12, 10, 8, 10, 4};
    int64_t total = 0, wrong_role = 0, bad_content = 0;
    for (int64_t i = 0; i < set->n && i < 20; i++) {
        const lm_conversation *c = &set->items[i];
        CHECKF(c->line == i + 1, "conversation %lld from line %lld", (long long)i, (long long)c->line);
        CHECKF(c->n_messages == want_len[i], "line %lld: %d messages, want %d", (long long)i + 1, c->n_messages,
               want_len[i]);
        for (int32_t k = 0; k < c->n_messages; k++) {
            const lm_conv_message *m = &c->messages[k];
            total++;
            wrong_role += m->role != (k % 2 ? LM_CHAT_ASSISTANT : LM_CHAT_USER);
            bad_content += !m->content || m->content_len == 0 || strlen(m->content) != m->content_len ||
                           m->n_tool_calls != 0 || m->tool_call_id != NULL;
        }
    }
    CHECK(total == 144);
    CHECK(wrong_role == 0);
    CHECK(bad_content == 0);
    CHECK(has(set->items[0].messages[0].content, "Hey nanochat! I'm a CS student"));
    CHECK(has(set->items[0].messages[3].content, "approximately $73"));
    lm_conversation_set_free(set);
}

typedef struct skip_log {
    int64_t lines[64];
    int n;
} skip_log;

static void on_skip(void *user, int64_t line, const char *reason) {
    skip_log *log = user;
    (void)reason;
    if (log->n < 64) log->lines[log->n++] = line;
}

#define UA "{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":\"hello\"}"

static void test_bad_lines(void) {
    static const struct {
        const char *text; /* NULL: the line is valid; "" and spaces: blank */
        const char *reason;
    } lines[] = {
        {"[" UA "]", NULL},                                                            /* 1 */
        {"", NULL},                                                                    /* 2 blank */
        {"{\"messages\": [" UA, "invalid JSON"},                                       /* 3 */
        {"42", "a number, not an object or an array"},                                 /* 4 */
        {"{\"conversation\": [" UA "]}", "object has no \"messages\""},                /* 5 */
        {"{\"messages\": \"hi\"}", "\"messages\" is a string, not an array"},          /* 6 */
        {"[]", "empty conversation"},                                                  /* 7 */
        {"[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"bot\",\"content\":\"y\"}]",
         "message 2: unknown role \"bot\""},                                           /* 8 */
        {"[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"x\"}]},"
         "{\"role\":\"assistant\",\"content\":\"y\"}]",
         "message 1: content is an array, not a string"},                              /* 9 */
        {"[{\"role\":\"system\",\"content\":\"s\"},{\"role\":\"user\",\"content\":\"x\"}]",
         "no assistant message"},                                                      /* 10 */
        {"{\"id\": 7, \"messages\": [" UA "], \"source\": {\"a\": [1, 2]}}", NULL},    /* 11 */
        {"[" UA "] []", "text after the value"},                                       /* 12 */
        {"[{\"role\":\"user\",\"content\":\"\xff\"}," UA "]", "invalid UTF-8"},        /* 13 */
        {"[{\"role\":\"user\",\"content\":\"a\\u0000b\"}," UA "]", "\\u0000"},         /* 14 */
        {"[{\"role\":\"user\",\"content\":\"a\tb\"}," UA "]", "control character"},    /* 15 */
        {"[{\"content\":\"x\"}," UA "]", "message 1 has no \"role\""},                 /* 16 */
        {"[{\"role\":\"user\",\"role\":\"assistant\",\"content\":\"x\"}," UA "]",
         "message 1 has \"role\" twice"},                                              /* 17 */
        {"[" UA ",{\"role\":\"user\",\"content\":5}]", "message 3: content is a number"}, /* 18 */
        {"[{\"role\":\"user\",\"content\":null}," UA "]", "message 1: content is null"}, /* 19 */
        {"[{\"role\":\"user\",\"content\":\"x\",\"tool_calls\":[]}," UA "]",
         "\"tool_calls\" on a user message"},                                          /* 20 */
        {"[\"hi\"," UA "]", "message 1 is a string, not an object"},                   /* 21 */
        {"  \t ", NULL},                                                               /* 22 blank */
        {"[{\"role\":\"user\"}," UA "]", "message 1 has no \"content\""},              /* 23 */
        {"[{\"role\":7,\"content\":\"x\"}," UA "]", "\"role\" is a number"},           /* 24 */
        {"[{\"role\":\"user\",\"content\":\"a \\\\u0000 b \\u00e9\"}," UA "]", NULL},  /* 25: an escaped backslash */
    };
    const int n_lines = (int)(sizeof lines / sizeof lines[0]);
    char buf[8192];
    size_t len = 0;
    for (int i = 0; i < n_lines; i++) {
        size_t k = strlen(lines[i].text);
        REQUIRE(len + k + 1 < sizeof buf);
        memcpy(buf + len, lines[i].text, k);
        len += k;
        if (i + 1 < n_lines) buf[len++] = '\n'; /* the last line has no newline */
    }
    const char *path = write_tmp(buf, len);

    skip_log log = {{0}, 0};
    lm_conversation_read_options o;
    memset(&o, 0, sizeof o);
    o.on_skip = on_skip;
    o.user = &log;
    lm_error err = {0};
    lm_conversation_set *set = NULL;
    REQUIRE(lm_conversations_read_ex(path, &o, &set, &err) == LM_OK && set);
    CHECK(set->n_lines == n_lines);
    int want_valid = 0, want_skipped = 0;
    for (int i = 0; i < n_lines; i++) {
        if (lines[i].reason) want_skipped++;
        else if (lines[i].text[strspn(lines[i].text, " \t")] != '\0') want_valid++;
    }
    CHECKF(set->n == want_valid, "%lld conversations, want %d", (long long)set->n, want_valid);
    CHECKF(set->n_skipped == want_skipped, "%lld skipped, want %d", (long long)set->n_skipped, want_skipped);
    CHECK(log.n == want_skipped);
    int64_t si = 0, ci = 0;
    for (int i = 0; i < n_lines; i++) {
        if (lines[i].reason) {
            if (si >= set->n_skipped) break;
            const lm_conversation_skip *s = &set->skipped[si];
            CHECKF(s->line == i + 1, "skip %lld at line %lld, want %d", (long long)si, (long long)s->line, i + 1);
            CHECKF(has(s->reason, lines[i].reason), "line %d: reason \"%s\", want \"%s\"", i + 1, s->reason,
                   lines[i].reason);
            CHECK(si >= log.n || log.lines[si] == i + 1);
            si++;
        } else if (lines[i].text[strspn(lines[i].text, " \t")] != '\0') {
            if (ci >= set->n) break;
            CHECKF(set->items[ci].line == i + 1, "conversation %lld at line %lld, want %d", (long long)ci,
                   (long long)set->items[ci].line, i + 1);
            ci++;
        }
    }
    /* Line 25: "\\u0000" is a backslash and text, not a NUL; \u00e9 is é. */
    const lm_conversation *last = &set->items[set->n - 1];
    CHECK(last->line == 25 && strcmp(last->messages[0].content, "a \\u0000 b \xc3\xa9") == 0);
    lm_conversation_set_free(set);

    /* Strict: the first bad line fails the read, naming the line and why. */
    set = (lm_conversation_set *)1;
    lm_error_clear(&err);
    CHECK(lm_conversations_read(path, 1, &set, &err) == LM_ERR_FORMAT);
    CHECK(set == NULL);
    CHECKF(has(err.message, ".jsonl:3: invalid JSON"), "strict error: %s", err.message);
}

static void test_messages_form(void) {
    const char *path = write_str(
        "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\", \"name\": \"sys\"},\n"
        "{\"role\": \"user\", \"content\": \"Say \\\"hi\\\"\\n\\ud83d\\ude00\"},\n"
        "{\"role\": \"assistant\", \"content\": \"\", \"weight\": 1}], \"meta\": null}\n");
    /* A JSON value may not span lines: that was three bad lines. */
    lm_conversation_set *set = read_ok(path, 0);
    CHECK(set->n == 0 && set->n_skipped == 3 && set->n_lines == 3);
    lm_conversation_set_free(set);

    path = write_str("{\"meta\": {\"messages\": 1}, \"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\", "
                     "\"name\": \"sys\"}, {\"role\": \"user\", \"content\": \"Say \\\"hi\\\"\\n\\ud83d\\ude00\"}, "
                     "{\"role\": \"assistant\", \"content\": \"\", \"weight\": 1}]}\n");
    set = read_ok(path, 1);
    REQUIRE(set->n == 1);
    const lm_conversation *c = &set->items[0];
    REQUIRE(c->n_messages == 3);
    CHECK(c->messages[0].role == LM_CHAT_SYSTEM && strcmp(c->messages[0].content, "Be brief.") == 0);
    CHECK(c->messages[1].role == LM_CHAT_USER && strcmp(c->messages[1].content, "Say \"hi\"\n\xf0\x9f\x98\x80") == 0);
    CHECK(c->messages[1].content_len == 13);
    CHECK(c->messages[2].role == LM_CHAT_ASSISTANT && c->messages[2].content && c->messages[2].content_len == 0);
    lm_conversation_set_free(set);

    lm_chat_role r;
    CHECK(lm_chat_role_parse("tool", 4, &r) == 0 && r == LM_CHAT_TOOL);
    CHECK(lm_chat_role_parse("Tool", 4, &r) != 0);
    CHECK(lm_chat_role_parse("assistant", 5, &r) != 0);
    CHECK(strcmp(lm_chat_role_name(LM_CHAT_ASSISTANT), "assistant") == 0);
}

static void test_tool_calls(void) {
    const char *path = write_str(
        "{\"messages\": [{\"role\": \"user\", \"content\": \"Weather in Paris and Oslo?\"}, "
        "{\"role\": \"assistant\", \"content\": null, \"tool_calls\": ["
        "{\"id\": \"call_1\", \"type\": \"function\", \"function\": {\"name\": \"get_weather\", "
        "\"arguments\": \"{\\\"city\\\": \\\"Paris\\\"}\"}}, "
        "{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}}]}, "
        "{\"role\": \"tool\", \"tool_call_id\": \"call_1\", \"content\": \"18C\"}, "
        "{\"role\": \"tool\", \"content\": \"9C\"}, "
        "{\"role\": \"assistant\", \"content\": \"Paris 18C, Oslo 9C.\"}]}\n"
        /* 2: no content at all, one call without arguments: fine */
        "[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\",\"tool_calls\":[{\"function\":{\"name\":\"f\"}}]}]\n"
        /* 3: no name */
        "[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"function\":{\"arguments\":\"{}\"}}]}]\n"
        /* 4: arguments a number */
        "[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\",\"tool_calls\":[{\"function\":{\"name\":\"f\",\"arguments\":3}}]}]\n"
        /* 5: null content without tool calls */
        "[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[]}]\n"
        /* 6: tool_call_id on an assistant message */
        "[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\",\"content\":\"y\",\"tool_call_id\":\"c\"}]\n"
        /* 7: type not function */
        "[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\",\"tool_calls\":[{\"type\":\"code\",\"function\":{\"name\":\"f\"}}]}]\n");
    lm_conversation_set *set = read_ok(path, 0);
    REQUIRE(set->n == 2);
    const lm_conversation *c = &set->items[0];
    REQUIRE(c->n_messages == 5);
    const lm_conv_message *a = &c->messages[1];
    CHECK(a->role == LM_CHAT_ASSISTANT && a->content == NULL && a->content_len == 0);
    REQUIRE(a->n_tool_calls == 2);
    CHECK(a->tool_calls[0].id && strcmp(a->tool_calls[0].id, "call_1") == 0);
    CHECK(strcmp(a->tool_calls[0].name, "get_weather") == 0);
    CHECK(strcmp(a->tool_calls[0].arguments, "{\"city\": \"Paris\"}") == 0);
    CHECK(a->tool_calls[1].id == NULL);
    CHECK(strcmp(a->tool_calls[1].arguments, "{\"city\":\"Oslo\"}") == 0);
    CHECK(c->messages[2].role == LM_CHAT_TOOL && c->messages[2].tool_call_id &&
          strcmp(c->messages[2].tool_call_id, "call_1") == 0 && strcmp(c->messages[2].content, "18C") == 0);
    CHECK(c->messages[3].tool_call_id == NULL);
    CHECK(c->messages[4].n_tool_calls == 0 && c->messages[4].tool_calls == NULL);

    c = &set->items[1];
    CHECK(c->line == 2 && c->n_messages == 2 && c->messages[1].content == NULL && c->messages[1].n_tool_calls == 1 &&
          strcmp(c->messages[1].tool_calls[0].arguments, "") == 0);

    static const char *const want[] = {"tool call 1: \"name\" is not a non-empty string",
                                       "tool call 1: \"arguments\" is a number",
                                       "message 2: content is null", "\"tool_call_id\" on an assistant message",
                                       "\"type\" is not \"function\""};
    REQUIRE(set->n_skipped == 5);
    for (int i = 0; i < 5; i++) {
        CHECK(set->skipped[i].line == i + 3);
        CHECKF(has(set->skipped[i].reason, want[i]), "line %d: \"%s\"", i + 3, set->skipped[i].reason);
    }
    lm_conversation_set_free(set);
}

static void test_crlf(void) {
    const char *path = write_str("\xEF\xBB\xBF[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":\"b\"}]\r\n"
                                 "\r\n"
                                 "{\"messages\":[{\"role\":\"user\",\"content\":\"c\\r\"},"
                                 "{\"role\":\"assistant\",\"content\":\"d\"}]}\r\n"
                                 "[1]\r\n"
                                 "[{\"role\":\"user\",\"content\":\"e\"},{\"role\":\"assistant\",\"content\":\"f\"}]\r");
    lm_conversation_set *set = read_ok(path, 0);
    REQUIRE(set->n == 3);
    CHECK(set->n_lines == 5);
    CHECK(set->items[0].line == 1 && strcmp(set->items[0].messages[1].content, "b") == 0);
    CHECK(set->items[1].line == 3 && strcmp(set->items[1].messages[0].content, "c\r") == 0);
    CHECK(set->items[2].line == 5 && strcmp(set->items[2].messages[1].content, "f") == 0);
    REQUIRE(set->n_skipped == 1);
    CHECK(set->skipped[0].line == 4 && has(set->skipped[0].reason, "message 1 is a number"));
    lm_conversation_set_free(set);
}

/* A line of n_messages alternating user/assistant messages. */
static char *many_messages(int n_messages, size_t *len) {
    static const char *const msg[2] = {"{\"role\":\"user\",\"content\":\"q\"},",
                                       "{\"role\":\"assistant\",\"content\":\"a\"},"};
    size_t cap = (size_t)n_messages * strlen(msg[1]) + 16;
    char *s = malloc(cap);
    REQUIRE(s);
    size_t n = 0;
    s[n++] = '[';
    for (int i = 0; i < n_messages; i++) {
        size_t k = strlen(msg[i % 2]);
        memcpy(s + n, msg[i % 2], k);
        n += k;
    }
    s[n - 1] = ']'; /* replaces the last comma */
    s[n++] = '\n';
    *len = n;
    return s;
}

static void test_caps(void) {
    /* 10,000 messages is fine, 10,001 is a bad line. */
    size_t n1, n2;
    char *l1 = many_messages(LM_CONV_MAX_MESSAGES, &n1), *l2 = many_messages(LM_CONV_MAX_MESSAGES + 1, &n2);
    char *both = malloc(n1 + n2);
    REQUIRE(both);
    memcpy(both, l1, n1);
    memcpy(both + n1, l2, n2);
    const char *path = write_tmp(both, n1 + n2);
    free(l1);
    free(l2);
    free(both);
    lm_conversation_set *set = read_ok(path, 0);
    REQUIRE(set->n == 1 && set->n_skipped == 1);
    CHECK(set->items[0].n_messages == LM_CONV_MAX_MESSAGES);
    CHECK(set->items[0].messages[LM_CONV_MAX_MESSAGES - 1].role == LM_CHAT_ASSISTANT);
    CHECK(set->skipped[0].line == 2 && has(set->skipped[0].reason, "more than 10000 messages"));
    lm_conversation_set_free(set);

    /* Line length: a 100-byte cap; the line below is exactly 100 bytes. */
    char line[256];
    snprintf(line, sizeof line, "[%s,{\"role\":\"assistant\",\"content\":\"%s\"}]",
             "{\"role\":\"user\",\"content\":\"q\"}", "01234567890123456789012345678901234");
    REQUIRE(strlen(line) == 100);
    char file[2048];
    snprintf(file, sizeof file, "%s\r\n%s\n%s \n%s", line, line, line, line);
    path = write_str(file);
    lm_conversation_read_options o;
    memset(&o, 0, sizeof o);
    o.max_line_bytes = 100;
    lm_error err = {0};
    set = NULL;
    REQUIRE(lm_conversations_read_ex(path, &o, &set, &err) == LM_OK);
    CHECK(set->n == 3 && set->n_skipped == 1);
    CHECK(set->n_skipped == 1 && set->skipped[0].line == 3 && has(set->skipped[0].reason, "longer than 100 bytes"));
    lm_conversation_set_free(set);

    /* The default 16 MiB cap, on a line of 16 MiB + 1 between two good ones. */
    size_t big = LM_CONV_MAX_LINE_BYTES + 1;
    char *huge = malloc(big + 2 * 128);
    REQUIRE(huge);
    size_t n = 0;
    n += (size_t)sprintf(huge + n, "%s\n", line);
    huge[n++] = '[';
    memset(huge + n, ' ', big - 2);
    n += big - 2;
    huge[n++] = ']';
    n += (size_t)sprintf(huge + n, "\n%s\n", line);
    path = write_tmp(huge, n);
    free(huge);
    set = read_ok(path, 0);
    CHECK(set->n == 2 && set->items[1].line == 3);
    CHECK(set->n_skipped == 1 && set->skipped[0].line == 2 && has(set->skipped[0].reason, "longer than 16777216"));
    lm_conversation_set_free(set);

    /* Conversations and skipped lines past their caps fail the read. */
    snprintf(file, sizeof file, "%s\n[]\n%s\n[]\n%s\n", line, line, line);
    path = write_str(file);
    memset(&o, 0, sizeof o);
    o.max_conversations = 2;
    set = NULL;
    CHECK(lm_conversations_read_ex(path, &o, &set, &err) == LM_ERR_LIMIT && set == NULL);
    CHECKF(has(err.message, ":5: more than 2 conversations"), "%s", err.message);
    memset(&o, 0, sizeof o);
    o.max_skipped = 1;
    CHECK(lm_conversations_read_ex(path, &o, &set, &err) == LM_ERR_LIMIT && set == NULL);
    CHECKF(has(err.message, ":4: more than 1 bad lines"), "%s", err.message);
    o.max_skipped = 2;
    REQUIRE(lm_conversations_read_ex(path, &o, &set, &err) == LM_OK);
    CHECK(set->n == 3 && set->n_skipped == 2);
    lm_conversation_set_free(set);

    /* More JSON values than the cap, in an ignored key: bad before cJSON builds them. */
    size_t n_values = LM_CONV_MAX_JSON_VALUES;
    char *wide = malloc(2 * n_values + 256);
    REQUIRE(wide);
    n = (size_t)sprintf(wide, "{\"messages\":[" UA "],\"x\":[");
    for (size_t i = 0; i < n_values; i++) wide[n++] = '0', wide[n++] = ',';
    n += (size_t)sprintf(wide + n, "0]}\n");
    path = write_tmp(wide, n);
    free(wide);
    set = read_ok(path, 0);
    CHECK(set->n == 0 && set->n_skipped == 1 && has(set->skipped[0].reason, "more than 1000000 JSON values"));
    lm_conversation_set_free(set);

    /* Nesting deeper than cJSON's limit, in a key that is otherwise ignored. */
    size_t depth = 5000;
    char *deep = malloc(2 * depth + 256);
    REQUIRE(deep);
    n = (size_t)sprintf(deep, "{\"x\":");
    memset(deep + n, '[', depth);
    n += depth;
    memset(deep + n, ']', depth);
    n += depth;
    n += (size_t)sprintf(deep + n, ",\"messages\":[" UA "]}\n");
    path = write_tmp(deep, n);
    free(deep);
    set = read_ok(path, 0);
    CHECK(set->n == 0 && set->n_skipped == 1 && has(set->skipped[0].reason, "invalid JSON"));
    lm_conversation_set_free(set);
}

static void test_files(void) {
    lm_error err = {0};
    lm_conversation_set *set = NULL;
    CHECK(lm_conversations_read("/nonexistent/x.jsonl", 0, &set, &err) == LM_ERR_IO && set == NULL);
    CHECK(has(err.message, "/nonexistent/x.jsonl"));
    CHECK(lm_conversations_read(tmpdir, 0, &set, &err) == LM_ERR_IO && set == NULL);
    CHECK(lm_conversations_read(NULL, 0, &set, &err) == LM_ERR_ARG);
    set = read_ok(write_str(""), 1);
    CHECK(set->n == 0 && set->n_skipped == 0 && set->n_lines == 0);
    lm_conversation_set_free(set);
    set = read_ok(write_str("\n\n  \n"), 1);
    CHECK(set->n == 0 && set->n_skipped == 0 && set->n_lines == 3);
    lm_conversation_set_free(set);
    lm_conversation_set_free(NULL);
}

/* Preference pairs (opts.pairs): the prompt forms, the answer forms, and
 * each malformed pair skipped with a reason naming the problem. */
static void test_pairs(void) {
    const char *text =
        "{\"prompt\": \"Who are you?\", \"chosen\": \"I am llmos.\", \"rejected\": \"A cat.\"}\n"
        "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"Hi\"}],"
        " \"chosen\": {\"role\": \"assistant\", \"content\": \"Hello!\"},"
        " \"rejected\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Go away.\"}]}\n"
        "{\"chosen\": \"a\", \"rejected\": \"b\"}\n"
        "{\"prompt\": \"x\", \"messages\": [], \"chosen\": \"a\", \"rejected\": \"b\"}\n"
        "{\"prompt\": \"x\", \"chosen\": \"a\"}\n"
        "{\"prompt\": \"x\", \"chosen\": 5, \"rejected\": \"b\"}\n"
        "{\"prompt\": \"x\", \"chosen\": {\"role\": \"user\", \"content\": \"a\"}, \"rejected\": \"b\"}\n"
        "{\"prompt\": \"x\", \"chosen\": [], \"rejected\": \"b\"}\n"
        "[{\"role\": \"user\", \"content\": \"a\"}]\n";
    const char *path = write_str(text);
    lm_conversation_read_options o;
    memset(&o, 0, sizeof o);
    o.pairs = 1;
    lm_error err = {0};
    lm_conversation_set *set = NULL;
    REQUIRE(lm_conversations_read_ex(path, &o, &set, &err) == LM_OK);
    CHECK(set->n == 2);
    CHECK(set->items[0].n_messages == 1 && set->items[0].messages[0].role == LM_CHAT_USER);
    CHECK(has(set->items[0].messages[0].content, "Who are you?") && has(set->items[0].chosen, "llmos"));
    CHECK(has(set->items[0].rejected, "cat"));
    CHECK(set->items[1].n_messages == 2 && set->items[1].messages[0].role == LM_CHAT_SYSTEM);
    CHECK(has(set->items[1].chosen, "Hello!") && has(set->items[1].rejected, "Go away."));
    CHECK(set->n_skipped == 7);
    const char *want[] = {"one of \"prompt\" and \"messages\"", "one of \"prompt\" and \"messages\"",
                          "no \"rejected\"", "\"chosen\" is a number", "not an assistant message",
                          "empty array", "not an object"};
    for (int i = 0; i < 7 && i < set->n_skipped; i++) {
        CHECKF(has(set->skipped[i].reason, want[i]), "pair line %lld: \"%s\" lacks \"%s\"",
               (long long)set->skipped[i].line, set->skipped[i].reason, want[i]);
    }
    lm_conversation_set_free(set);
    /* strict: the first bad pair fails the read with its line */
    o.strict = 1;
    CHECK(lm_conversations_read_ex(path, &o, &set, &err) == LM_ERR_FORMAT && has(err.message, ":3:"));
    /* conversations are not pairs: without opts.pairs the prompt-only lines are refused */
    set = read_ok(write_str("{\"prompt\": \"x\", \"chosen\": \"a\", \"rejected\": \"b\"}\n"), 0);
    CHECK(set->n == 0 && set->n_skipped == 1);
    lm_conversation_set_free(set);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/llmos_conv_XXXXXX");
    REQUIRE(mkdtemp(tmpdir));
    test_fixture();
    test_bad_lines();
    test_messages_form();
    test_tool_calls();
    test_crlf();
    test_caps();
    test_files();
    test_pairs();
    for (int i = 0; i < tmp_count; i++) {
        char path[128];
        snprintf(path, sizeof path, "%s/f%d.jsonl", tmpdir, i);
        remove(path);
    }
    rmdir(tmpdir);
    TEST_END();
}
