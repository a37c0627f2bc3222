/* llmos chat: a conversation with a chat model in the terminal, or one
 * answer per input line when stdin is not a terminal. */
#include "args.h"
#include "commands.h"
#include "chat_tools.h"
#include "model_setup.h"
#include "llmos/gguf.h"
#include "llmos/lora.h"
#include "llmos/model.h"
#include "llmos/sampler.h"
#include "llmos/sft.h"

#include "llmos/conversation.h"
#include "llmos/file.h"

#include <cjson/cJSON.h>
#include <editline/readline.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Ctrl-C during an answer stops that answer, not the program. */
static volatile sig_atomic_t interrupted;
static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

static void usage(FILE *out) {
    fprintf(out,
            "usage: llmos chat MODEL.gguf [--system TEXT] [--temp T] [--top-k K] [--top-p P] [--seed S]\n"
            "                  [-n N] [-c CTX] [-t THREADS] [--lora FILE [--lora-scale S]]\n"
            "\n"
            "Chats with MODEL through its chat template (tokenizer.chat_template, else ChatML): the\n"
            "template's control tokens count, what you type stays plain text. Answers stream to\n"
            "stdout. When stdin is not a terminal, each input line is one user message and each\n"
            "answer is printed on its own, so chats can be scripted. When the context fills, the\n"
            "oldest turns are dropped (the system prompt is kept) and a note goes to stderr.\n"
            "Ctrl-C stops the answer being written; Ctrl-D or /quit leaves. The KV cache is kept\n"
            "between turns: each turn runs only the tokens that differ from what is cached.\n"
            "\n"
            "commands (a line starting with /):\n"
            "  /reset           forget the conversation (the system prompt stays)\n"
            "  /system TEXT     set the system prompt\n"
            "  /save FILE       write the conversation as one JSONL line ({\"messages\": [...]})\n"
            "  /load FILE       continue a saved conversation (the first line of FILE)\n"
            "  /quit            leave (so does end of input)\n"
            "\n"
            "options:\n"
            "      --system TEXT        system prompt\n"
            "      --temp T             temperature; 0 = greedy (default 0.7)\n"
            "      --top-k K            (default 40)\n"
            "      --top-p P            (default 0.95)\n"
            "      --seed S             sampling seed (default 1)\n"
            "  -n N                     at most N tokens per answer (default 256)\n"
            "      --tools LIST         enable tools (comma-separated: calculator, code, search): when the\n"
            "                           model writes <tool_call>{\"name\": ..., \"arguments\": {...}}</tool_call>,\n"
            "                           the call is checked against the tool's schema and run, logged to\n"
            "                           stderr, its result added as a tool message, and the answer goes on\n"
            "      --tool-folder DIR    the documents of the search tool\n"
            "  -c, --ctx N              context size (default: the model's, at most 4096)\n"
            "  -t, --threads N          threads (default: all cores)\n"
            "      --lora FILE          apply a LoRA adapter (GGUF) at run time\n"
            "      --lora-scale S       scale of the adapter (default 1)\n"
            "  -h, --help               this help\n");
}

typedef struct chat {
    lm_chat_message *msgs;
    char **owned; /* the strings of msgs, freed with the chat */
    size_t n, cap;
} chat;

static int chat_add(chat *c, const char *role, const char *text, size_t len) {
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        lm_chat_message *m = realloc(c->msgs, cap * sizeof *m);
        if (!m) return -1;
        c->msgs = m;
        char **o = realloc(c->owned, cap * sizeof *o);
        if (!o) return -1;
        c->owned = o, c->cap = cap;
    }
    char *copy = malloc(len + 1);
    if (!copy) return -1;
    memcpy(copy, text, len);
    copy[len] = 0;
    c->owned[c->n] = copy;
    c->msgs[c->n] = (lm_chat_message){role, copy};
    c->n++;
    return 0;
}

/* Writes the conversation as one JSONL line, atomically. */
static int chat_save(const chat *c, const char *path) {
    cJSON *root = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(root, "messages");
    for (size_t i = 0; arr && i < c->n; i++) {
        cJSON *m = cJSON_CreateObject();
        if (!m || !cJSON_AddStringToObject(m, "role", c->msgs[i].role) || !cJSON_AddStringToObject(m, "content", c->msgs[i].content)) {
            cJSON_Delete(m);
            arr = NULL;
            break;
        }
        cJSON_AddItemToArray(arr, m);
    }
    char *text = arr ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!text) return -1;
    lm_error err = {0};
    lm_atomic_file *f;
    int rc = -1;
    if (lm_atomic_file_open(path, &f, &err) == LM_OK) {
        if (lm_atomic_file_write(f, text, strlen(text), &err) == LM_OK && lm_atomic_file_write(f, "\n", 1, &err) == LM_OK) {
            rc = lm_atomic_file_commit(f, &err) == LM_OK ? 0 : -1;
        } else {
            lm_atomic_file_abort(f);
        }
    }
    if (rc) fprintf(stderr, "cannot save to %s: %s\n", path, err.message);
    free(text);
    return rc;
}

static int chat_add(chat *c, const char *role, const char *text, size_t len);
static void chat_drop(chat *c, size_t from, size_t to);

/* Replaces the conversation with the first one in path. */
static void chat_load(chat *c, const char *path) {
    lm_error err = {0};
    lm_conversation_set *set;
    if (lm_conversations_read(path, 1, &set, &err)) {
        fprintf(stderr, "cannot load %s: %s\n", path, err.message);
        return;
    }
    if (set->n < 1) {
        fprintf(stderr, "%s holds no conversation\n", path);
    } else {
        chat_drop(c, 0, c->n);
        const lm_conversation *v = &set->items[0];
        for (int32_t i = 0; i < v->n_messages; i++) {
            const char *content = v->messages[i].content ? v->messages[i].content : "";
            if (chat_add(c, lm_chat_role_name(v->messages[i].role), content, strlen(content))) break;
        }
        fprintf(stderr, "(loaded %zu messages)\n", c->n);
    }
    lm_conversation_set_free(set);
}

/* Appends k bytes to the answer buffer; 0, or -1 when out of memory. */
static int answer_add(char **answer, size_t *alen, size_t *cap, const char *piece, size_t k) {
    if (*alen + k + 1 > *cap) {
        size_t ncap = (*alen + k + 1) * 2;
        char *na = realloc(*answer, ncap);
        if (!na) return -1;
        *answer = na, *cap = ncap;
    }
    memcpy(*answer + *alen, piece, k);
    *alen += k;
    return 0;
}

/* Drops messages [from, to). */
static void chat_drop(chat *c, size_t from, size_t to) {
    if (to <= from) return; /* also keeps memmove away from the NULL arrays of an empty chat */
    for (size_t i = from; i < to; i++) free(c->owned[i]);
    memmove(c->msgs + from, c->msgs + to, (c->n - to) * sizeof *c->msgs);
    memmove(c->owned + from, c->owned + to, (c->n - to) * sizeof *c->owned);
    c->n -= to - from;
}

int cmd_chat(int argc, char **argv) {
    const char *path = NULL, *system = NULL, *lora_path = NULL, *tool_list = NULL, *tool_folder = NULL;
    float lora_scale = 1.0f;
    lm_sampler_params sp = lm_sampler_default_params();
    sp.temperature = 0.7f, sp.top_k = 40, sp.top_p = 0.95f, sp.seed = 1;
    int64_t n_predict = 256, n_ctx = 0;
    int threads = cli_default_threads();
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v;
        int64_t k;
        if (arg_is(a, "-h", "--help")) {
            usage(stdout);
            return 0;
        } else if (arg_is(a, NULL, "--system")) {
            if (!(system = arg_value(argc, argv, &i))) return 2;
        } else if (arg_is(a, NULL, "--temp")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_float(a, v, 0, 100, &sp.temperature)) return 2;
        } else if (arg_is(a, NULL, "--top-p")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_float(a, v, 0, 1, &sp.top_p)) return 2;
        } else if (arg_is(a, NULL, "--top-k")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_int64(a, v, 0, 1 << 24, &k)) return 2;
            sp.top_k = (int32_t)k;
        } else if (arg_is(a, NULL, "--seed")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_uint64(a, v, &sp.seed)) return 2;
        } else if (arg_is(a, "-n", NULL)) {
            if (!(v = arg_value(argc, argv, &i)) || arg_int64(a, v, 1, 1 << 20, &n_predict)) return 2;
        } else if (arg_is(a, "-c", "--ctx")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_int64(a, v, 16, 1 << 20, &n_ctx)) return 2;
        } else if (arg_is(a, "-t", "--threads")) {
            if (arg_threads(argc, argv, &i, &threads)) return 2;
        } else if (arg_is(a, NULL, "--tools")) {
            if (!(tool_list = arg_value(argc, argv, &i))) return 2;
        } else if (arg_is(a, NULL, "--tool-folder")) {
            if (!(tool_folder = arg_value(argc, argv, &i))) return 2;
        } else if (arg_is(a, NULL, "--lora")) {
            if (!(lora_path = arg_value(argc, argv, &i))) return 2;
        } else if (arg_is(a, NULL, "--lora-scale")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_float(a, v, -1000, 1000, &lora_scale)) return 2;
        } else if (a[0] == '-' && a[1]) {
            cli_error("chat: unknown option '%s' (see 'llmos chat --help')", a);
            return 2;
        } else if (!path) {
            path = a;
        } else {
            cli_error("chat: unexpected argument '%s' (see 'llmos chat --help')", a);
            return 2;
        }
    }
    if (!path) {
        cli_error("chat: a model is required (see 'llmos chat --help')");
        return 2;
    }
    lm_error err = {0};
    lm_model *m = NULL;
    lm_context *ctx = NULL;
    lm_sampler *smp = NULL;
    lm_chat_template *tpl = NULL;
    lm_detokenizer *detok = NULL;
    char *tpl_text = NULL, *line = NULL, *answer = NULL;
    int32_t *kv = NULL; /* (n_ctx) the tokens whose keys and values are in the cache, in order */
    chat_tools tools = {0};
    int tools_on = 0;
    size_t n_kv = 0;
    chat c = {0};
    int rc = 1;
    if (!(m = cli_load_model("chat", path, lora_path, lora_scale))) goto done;
    const lm_tokenizer *tok = lm_model_get_tokenizer(m);
    const lm_model_config *cfg = lm_model_get_config(m);
    if (!n_ctx) n_ctx = cfg->context_length < 4096 ? cfg->context_length : 4096;
    if (n_ctx > cfg->context_length) n_ctx = cfg->context_length;
    if (!(tpl = cli_chat_template("chat", lm_model_get_gguf(m), NULL, &tpl_text, NULL))) goto done;
    if (lm_context_init(m, n_ctx, threads, &ctx, &err) || lm_sampler_init(&sp, cfg->n_vocab, &smp, &err) ||
        lm_detokenizer_init(tok, 0, &detok, &err)) {
        cli_error("chat: %s", err.message);
        goto done;
    }
    if (!(kv = malloc((size_t)n_ctx * sizeof *kv))) {
        cli_error("chat: out of memory");
        goto done;
    }
    if (tool_list && chat_tools_init(&tools, tool_list, tool_folder)) goto done;
    tools_on = tool_list != NULL;
    if (system && chat_add(&c, "system", system, strlen(system))) goto done;
    int tty = isatty(0);
    void (*old_int)(int) = signal(SIGINT, on_sigint);
    size_t cap_line = 0, cap_answer = 0;
    char piece[1024];
    for (;;) {
        ssize_t got;
        if (tty) { /* libedit: line editing and history */
            char *typed = readline("> ");
            if (!typed) break;
            if (*typed) add_history(typed);
            free(line);
            line = typed;
            got = (ssize_t)strlen(line);
            cap_line = (size_t)got + 1;
        } else {
            got = getline(&line, &cap_line, stdin);
            if (got < 0) break;
        }
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = 0;
        if (got == 0) continue;
        if (line[0] == '/') {
            if (strcmp(line, "/quit") == 0) break;
            if (strcmp(line, "/reset") == 0) {
                size_t keep = c.n && strcmp(c.msgs[0].role, "system") == 0;
                chat_drop(&c, keep, c.n);
                fprintf(stderr, "(conversation reset)\n");
                continue;
            }
            if (strncmp(line, "/system ", 8) == 0) {
                if (c.n && strcmp(c.msgs[0].role, "system") == 0) chat_drop(&c, 0, 1);
                if (chat_add(&c, "system", line + 8, strlen(line + 8))) goto done;
                /* move it to the front */
                lm_chat_message sm = c.msgs[c.n - 1];
                char *so = c.owned[c.n - 1];
                memmove(c.msgs + 1, c.msgs, (c.n - 1) * sizeof *c.msgs);
                memmove(c.owned + 1, c.owned, (c.n - 1) * sizeof *c.owned);
                c.msgs[0] = sm, c.owned[0] = so;
                continue;
            }
            if (strncmp(line, "/save ", 6) == 0) {
                if (chat_save(&c, line + 6) == 0) fprintf(stderr, "(saved %zu messages to %s)\n", c.n, line + 6);
                continue;
            }
            if (strncmp(line, "/load ", 6) == 0) {
                chat_load(&c, line + 6);
                continue;
            }
            fprintf(stderr, "unknown command %s (/reset, /system TEXT, /save FILE, /load FILE, /quit)\n", line);
            continue;
        }
        if (chat_add(&c, "user", line, (size_t)got)) goto done;
        /* One answer, or with tools up to CHAT_MAX_CALLS_PER_TURN rounds of: the answer up to a
         * tool call, the call run, its result added as a `tool` message, and generation again. */
        for (int round = 0;; round++) {
            /* Render; drop the oldest turns while it does not fit with room to answer. */
            int32_t *toks = NULL;
            size_t nt = 0;
            for (;;) {
                if (lm_chat_tokenize_tools(tok, tpl, c.msgs, c.n, 1, tools_on ? tools.tools_json : NULL, &toks, &nt, &err)) {
                    cli_error("chat: %s", err.message);
                    goto done;
                }
                size_t first = c.n && strcmp(c.msgs[0].role, "system") == 0;
                if ((int64_t)nt + n_predict <= n_ctx || c.n - first <= 1) break;
                free(toks);
                size_t drop = first + 1;
                while (drop < c.n - 1 && strcmp(c.msgs[drop].role, "user") != 0) drop++; /* a whole turn */
                chat_drop(&c, first, drop);
                fprintf(stderr, "(the context is full: the oldest turn was dropped)\n");
            }
            if ((int64_t)nt >= n_ctx) {
                free(toks);
                fprintf(stderr, "(the message does not fit in the context of %lld tokens)\n", (long long)n_ctx);
                if (round == 0) chat_drop(&c, c.n - 1, c.n);
                break;
            }
            /* Reuse the cache for the longest prefix this render shares with what is cached (the
             * earlier turns, unless turns were dropped or the conversation changed); at least the
             * last token is run to get the logits. */
            size_t p = 0;
            while (p < n_kv && p + 1 < nt && kv[p] == toks[p]) p++;
            const float *logits;
            lm_status st = lm_context_forward_batch(ctx, toks + p, (int64_t)(nt - p), (int64_t)p, NULL, &logits, &err);
            memcpy(kv, toks, nt * sizeof *kv);
            n_kv = st ? 0 : nt;
            free(toks);
            size_t alen = 0;
            int64_t pos = (int64_t)nt;
            interrupted = 0;
            if (tools_on && chat_tools_begin(&tools)) goto done;
            for (int64_t i = 0; !st && i < n_predict && pos < n_ctx && !interrupted; i++) {
                int32_t id = lm_sampler_sample(smp, logits, NULL, 0);
                int64_t k;
                if (lm_tokenizer_is_eog(tok, id) || lm_tokenizer_token_type(tok, id) == LM_TOKEN_CONTROL) {
                    /* a control token ends the answer, unless it is a tool-call tag of the vocabulary */
                    lm_str tag = lm_tokenizer_token_text(tok, id);
                    int is_tag = tools_on && ((tag.len == 11 && memcmp(tag.ptr, "<tool_call>", 11) == 0) ||
                                              (tag.len == 12 && memcmp(tag.ptr, "</tool_call>", 12) == 0));
                    if (!is_tag) break;
                    k = lm_detokenizer_flush(detok, piece, sizeof piece);
                    if (k > 0 && answer_add(&answer, &alen, &cap_answer, piece, (size_t)k)) break;
                    if (k > 0 && tools_on && chat_tools_push(&tools, piece, (size_t)k)) break;
                    memcpy(piece, tag.ptr, tag.len);
                    k = (int64_t)tag.len;
                } else {
                    k = lm_detokenizer_push(detok, id, piece, sizeof piece);
                }
                if (k > 0) {
                    if (answer_add(&answer, &alen, &cap_answer, piece, (size_t)k)) break;
                    if (!tools_on) {
                        fwrite(piece, 1, (size_t)k, stdout);
                        fflush(stdout);
                    } else if (chat_tools_push(&tools, piece, (size_t)k)) {
                        break;
                    }
                }
                kv[n_kv++] = id; /* pos == n_kv: the cache grows by this token */
                st = lm_context_forward(ctx, id, pos++, &logits, &err);
                if (tools_on && tools.call) break; /* the call is complete: run it before going on */
            }
            int64_t k = lm_detokenizer_flush(detok, piece, sizeof piece);
            if (k > 0 && !answer_add(&answer, &alen, &cap_answer, piece, (size_t)k)) {
                if (!tools_on) fwrite(piece, 1, (size_t)k, stdout);
                else chat_tools_push(&tools, piece, (size_t)k);
            }
            int called = tools_on && tools.call && round < CHAT_MAX_CALLS_PER_TURN;
            if (tools_on && !called) chat_tools_end(&tools);
            if (!called) {
                fputc('\n', stdout);
                fflush(stdout);
            }
            if (st) {
                cli_error("chat: %s", err.message);
                goto done;
            }
            if (chat_add(&c, "assistant", answer ? answer : "", alen)) goto done;
            if (!called) break;
            /* The result goes back as a `tool` message: untrusted content, never parsed for calls
             * or control tokens. */
            char *result = chat_tools_run(&tools);
            if (!result || chat_add(&c, "tool", result, strlen(result))) {
                free(result);
                goto done;
            }
            free(result);
        }
    }
    rc = 0;
    signal(SIGINT, old_int);
done:
    for (size_t i = 0; i < c.n; i++) free(c.owned[i]);
    free(c.msgs);
    free(c.owned);
    free(line);
    free(answer);
    free(kv);
    chat_tools_free(&tools);
    free(tpl_text);
    lm_detokenizer_free(detok);
    lm_chat_template_free(tpl);
    lm_sampler_free(smp);
    lm_context_free(ctx);
    lm_model_free(m);
    return rc;
}
