/* llmos serve: the OpenAI-compatible HTTP server over a chat model. */
#include "args.h"
#include "commands.h"
#include "model_setup.h"
#include "llmos/model.h"
#include "llmos/server.h"
#include "llmos/toolbox.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

static void usage(FILE *out) {
    fprintf(out,
            "usage: llmos serve MODEL.gguf [--host 127.0.0.1] [--port 8080] [--parallel N] [--api-key KEY] [options]\n"
            "\n"
            "Serves MODEL over HTTP in OpenAI's dialect, so OpenAI clients can use it:\n"
            "  GET  /                      a chat page (streaming, system prompt, temperature, stop)\n"
            "  POST /v1/chat/completions   messages (with tool calls), tools, tool_choice (auto, none),\n"
            "                              temperature, top_p, top_k, max_tokens, seed, stop, stream\n"
            "                              (server-sent events); usage counts in the answer\n"
            "  POST /v1/completions        a raw prompt continued (no chat template)\n"
            "  GET  /v1/models             the model's id\n"
            "  GET  /health                {\"status\":\"ok\"} (no API key needed)\n"
            "  GET  /metrics               counters in Prometheus's text format\n"
            "Errors come in OpenAI's shape with their HTTP status. Up to --parallel answers are\n"
            "generated together (continuous batching: each slot has its own KV cache, and all of\n"
            "them advance by one token per pass over the weights); other requests wait in a queue\n"
            "(--queue), past which they get 503. A client's tools are shown to the model and its\n"
            "calls returned as tool_calls for the client to run; with --tools the server runs its\n"
            "own tools instead. Binds to loopback unless --host says otherwise. Ctrl-C stops it.\n"
            "\n"
            "options:\n"
            "      --host ADDR          IPv4 address to listen on (default 127.0.0.1)\n"
            "      --port N             port (default 8080; 0 picks a free one, printed at start)\n"
            "      --parallel N         slots decoding together (default 1, at most 64); each holds\n"
            "                           a KV cache of --ctx tokens\n"
            "      --prefill-chunk N    prompt tokens a step reads (all slots' together, in the same\n"
            "                           pass as the other slots' next tokens), so the other slots keep\n"
            "                           streaming meanwhile (default 128; 0: as many as a step holds, 512)\n"
            "      --api-key KEY        require 'Authorization: Bearer KEY' (compared in constant time)\n"
            "      --model-name NAME    the model's id in the API (default: the file name)\n"
            "      --max-body BYTES     request body cap (default 1048576)\n"
            "      --max-tokens N       cap and default of max_tokens (default 512)\n"
            "      --queue N            requests that may wait (default 16)\n"
            "      --timeout S          idle connection timeout in seconds (default 30)\n"
            "      --tools LIST         tools the server runs itself (calculator, code, search)\n"
            "      --tool-folder DIR    the documents of the search tool\n"
            "  -c, --ctx N              context size (default: the model's, at most 4096)\n"
            "  -t, --threads N          threads (default: all cores)\n"
            "      --kv f16|f32         KV cache element type (default f16, as llama.cpp: half the\n"
            "                           memory and reads of f32, logits within ~1e-3 of it)\n"
            "  -h, --help               this help\n");
}

static void on_listen(void *user, int port) {
    const lm_server_options *o = user;
    printf("llmos serve: listening on http://%s:%d with %d slot%s (Ctrl-C stops)\n", o->host, port,
           o->parallel > 1 ? o->parallel : 1, o->parallel > 1 ? "s" : "");
    fflush(stdout);
}

int cmd_serve(int argc, char **argv) {
    const char *path = NULL, *tool_list = NULL, *tool_folder = NULL;
    lm_server_options o;
    memset(&o, 0, sizeof o);
    o.host = "127.0.0.1";
    o.port = 8080;
    o.threads = cli_default_threads();
    o.kv_type = LM_KV_F16;
    char name[128] = "";
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v;
        int64_t k;
        if (arg_is(a, "-h", "--help")) {
            usage(stdout);
            return 0;
        } else if (arg_is(a, NULL, "--host")) {
            if (!(o.host = arg_value(argc, argv, &i))) return 2;
        } else if (arg_is(a, NULL, "--port")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_int64(a, v, 0, 65535, &k)) return 2;
            o.port = (int)k;
        } else if (arg_is(a, NULL, "--parallel")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_int64(a, v, 1, 64, &k)) return 2;
            o.parallel = (int)k;
        } else if (arg_is(a, NULL, "--prefill-chunk")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_int64(a, v, 0, 1 << 20, &k)) return 2;
            o.prefill_chunk = k ? k : -1;
        } else if (arg_is(a, NULL, "--api-key")) {
            if (!(o.api_key = arg_value(argc, argv, &i))) return 2;
        } else if (arg_is(a, NULL, "--model-name")) {
            if (!(o.model_name = arg_value(argc, argv, &i))) return 2;
        } else if (arg_is(a, NULL, "--max-body")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_int64(a, v, 1024, (int64_t)1 << 30, &k)) return 2;
            o.max_body = (size_t)k;
        } else if (arg_is(a, NULL, "--max-tokens")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_int64(a, v, 1, 1 << 20, &o.max_tokens)) return 2;
        } else if (arg_is(a, NULL, "--queue")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_int64(a, v, 1, 256, &k)) return 2;
            o.queue = (int)k;
        } else if (arg_is(a, NULL, "--timeout")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_int64(a, v, 1, 3600, &k)) return 2;
            o.timeout_s = (int)k;
        } else if (arg_is(a, NULL, "--tools")) {
            if (!(tool_list = arg_value(argc, argv, &i))) return 2;
        } else if (arg_is(a, NULL, "--tool-folder")) {
            if (!(tool_folder = arg_value(argc, argv, &i))) return 2;
        } else if (arg_is(a, "-c", "--ctx")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_int64(a, v, 16, 1 << 20, &o.n_ctx)) return 2;
        } else if (arg_is(a, "-t", "--threads")) {
            if (arg_threads(argc, argv, &i, &o.threads)) return 2;
        } else if (arg_is(a, NULL, "--kv")) {
            if (arg_kv_type(argc, argv, &i, &o.kv_type)) return 2;
        } else if (a[0] == '-' && a[1]) {
            cli_error("serve: unknown option '%s' (see 'llmos serve --help')", a);
            return 2;
        } else if (!path) {
            path = a;
        } else {
            cli_error("serve: unexpected argument '%s' (see 'llmos serve --help')", a);
            return 2;
        }
    }
    if (!path) {
        cli_error("serve: a model is required (see 'llmos serve --help')");
        return 2;
    }
    if (!o.model_name) { /* the file name without its folder and .gguf */
        const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        snprintf(name, sizeof name, "%s", base);
        size_t n = strlen(name);
        if (n > 5 && strcmp(name + n - 5, ".gguf") == 0) name[n - 5] = 0;
        o.model_name = name;
    }
    lm_error err = {0};
    lm_model *m = NULL;
    lm_chat_template *tpl = NULL;
    char *tpl_text = NULL;
    lm_toolbox tools = {0};
    int rc = 1;
    if (!(m = cli_load_model("serve", path, NULL, 1.0f))) goto done;
    if (!(tpl = cli_chat_template("serve", lm_model_get_gguf(m), NULL, &tpl_text, NULL))) goto done;
    if (tool_list && lm_toolbox_init(&tools, tool_list, tool_folder, &err)) {
        cli_error("serve: --tools: %s", err.message);
        goto done;
    }
    o.on_listen = on_listen;
    o.user = &o;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN); /* a client that goes away is the server's business, not a signal */
    if (lm_server_run(m, tpl, tpl_text, tool_list ? &tools : NULL, &o, &stop_requested, &err)) {
        cli_error("serve: %s", err.message);
        goto done;
    }
    printf("llmos serve: stopped\n");
    rc = 0;
done:
    lm_toolbox_free(&tools);
    free(tpl_text);
    lm_chat_template_free(tpl);
    lm_model_free(m);
    return rc;
}
