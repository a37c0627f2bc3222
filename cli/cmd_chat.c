/* llmos chat: a conversation with a chat model in the terminal, or one
 * answer per input line when stdin is not a terminal. */
#include "args.h"
#include "commands.h"
#include "model_setup.h"
#include "llmos/gguf.h"
#include "llmos/lora.h"
#include "llmos/model.h"
#include "llmos/sampler.h"
#include "llmos/chat_session.h"
#include "llmos/toolbox.h"

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
            "                  [-n N] [-c CTX] [-t THREADS] [--kv f16|f32] [--lora FILE [--lora-scale S]]\n"
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
            "      --kv f16|f32         KV cache element type (default f16, as llama.cpp: half the\n"
            "                           memory and reads of f32, logits within ~1e-3 of it)\n"
            "      --lora FILE          apply a LoRA adapter (GGUF) at run time\n"
            "      --lora-scale S       scale of the adapter (default 1)\n"
            "  -h, --help               this help\n");
}

/* The session's hooks for the terminal: the answer to stdout, tool calls and notes to stderr. */
static lm_status print_text(void *user, const char *text, size_t n) {
    (void)user;
    fwrite(text, 1, n, stdout);
    fflush(stdout);
    return LM_OK;
}

static void print_tool(void *user, const char *name, const char *args, const char *result, int is_error) {
    (void)user, (void)is_error;
    if (name) fprintf(stderr, "[tool] %s %s -> %s\n", name, args, result);
    else fprintf(stderr, "[tool] malformed call -> %s\n", result);
}

static void print_note(void *user, const char *note) {
    (void)user;
    fprintf(stderr, "(%s)\n", note);
}

static int stop_requested(void *user) {
    (void)user;
    return interrupted != 0;
}

int cmd_chat(int argc, char **argv) {
    const char *path = NULL, *system = NULL, *lora_path = NULL, *tool_list = NULL, *tool_folder = NULL;
    float lora_scale = 1.0f;
    lm_sampler_params sp = lm_sampler_default_params();
    sp.temperature = 0.7f, sp.top_k = 40, sp.top_p = 0.95f, sp.seed = 1;
    int64_t n_predict = 256, n_ctx = 0;
    int threads = cli_default_threads();
    lm_kv_type kv_type = LM_KV_F16;
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
        } else if (arg_is(a, NULL, "--kv")) {
            if (arg_kv_type(argc, argv, &i, &kv_type)) return 2;
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
    lm_chat_session *chat = NULL;
    lm_toolbox tools = {0};
    char *tpl_text = NULL, *line = NULL;
    int rc = 1;
    if (!(m = cli_load_model("chat", path, lora_path, lora_scale))) goto done;
    const lm_model_config *cfg = lm_model_get_config(m);
    if (!n_ctx) n_ctx = cfg->context_length < 4096 ? cfg->context_length : 4096;
    if (n_ctx > cfg->context_length) n_ctx = cfg->context_length;
    if (!(tpl = cli_chat_template("chat", lm_model_get_gguf(m), NULL, &tpl_text, NULL))) goto done;
    if (tool_list && lm_toolbox_init(&tools, tool_list, tool_folder, &err)) {
        cli_error("chat: --tools: %s", err.message);
        goto done;
    }
    if (lm_context_init_kv(m, n_ctx, threads, kv_type, &ctx, &err) || lm_sampler_init(&sp, cfg->n_vocab, &smp, &err) ||
        lm_chat_session_init(&chat, m, ctx, smp, tpl, tpl_text, tool_list ? &tools : NULL, &err) ||
        (system && lm_chat_session_set_system(chat, system, &err))) {
        cli_error("chat: %s", err.message);
        goto done;
    }
    const lm_chat_reply_hooks hooks = {print_text, print_tool, print_note, stop_requested, NULL};
    int tty = isatty(0);
    void (*old_int)(int) = signal(SIGINT, on_sigint);
    size_t cap_line = 0;
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
                lm_chat_session_reset(chat, 1);
                fprintf(stderr, "(conversation reset)\n");
            } else if (strncmp(line, "/system ", 8) == 0) {
                if (lm_chat_session_set_system(chat, line + 8, &err)) goto fail;
            } else if (strncmp(line, "/save ", 6) == 0) {
                if (lm_chat_session_save(chat, line + 6, &err)) fprintf(stderr, "cannot save to %s: %s\n", line + 6, err.message);
                else fprintf(stderr, "(saved %zu messages to %s)\n", lm_chat_session_count(chat), line + 6);
            } else if (strncmp(line, "/load ", 6) == 0) {
                if (lm_chat_session_load(chat, line + 6, &err)) fprintf(stderr, "cannot load %s: %s\n", line + 6, err.message);
                else fprintf(stderr, "(loaded %zu messages)\n", lm_chat_session_count(chat));
            } else {
                fprintf(stderr, "unknown command %s (/reset, /system TEXT, /save FILE, /load FILE, /quit)\n", line);
            }
            continue;
        }
        if (lm_chat_session_add(chat, "user", line, &err)) goto fail;
        interrupted = 0;
        lm_status st = lm_chat_session_reply(chat, n_predict, &hooks, &err);
        fputc('\n', stdout);
        fflush(stdout);
        if (st == LM_ERR_LIMIT) {
            fprintf(stderr, "(%s)\n", err.message);
        } else if (st) {
            goto fail;
        }
    }
    rc = 0;
    signal(SIGINT, old_int);
    goto done;
fail:
    cli_error("chat: %s", err.message);
done:
    free(line);
    lm_chat_session_free(chat);
    lm_toolbox_free(&tools);
    free(tpl_text);
    lm_chat_template_free(tpl);
    lm_sampler_free(smp);
    lm_context_free(ctx);
    lm_model_free(m);
    return rc;
}
