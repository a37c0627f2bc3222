/* llmos perplexity: how well a model predicts a text (and how far it is from another). */
#include "args.h"
#include "commands.h"
#include "model_setup.h"
#include "llmos/lora.h"
#include "llmos/perplexity.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: llmos perplexity MODEL.gguf --file TEXT [options]\n"
            "       llmos perplexity MODEL.gguf --conversations FILE.jsonl [options]\n"
            "\n"
            "Tokenizes TEXT, cuts it into chunks of the context size, and reports the mean\n"
            "loss (nats per token), the perplexity, and bits per byte. With --kl-base, also\n"
            "the mean KL divergence from the base model's next-token distribution and how\n"
            "often both models rank the same token first.\n"
            "\n"
            "options:\n"
            "  -f, --file TEXT        the text to score\n"
            "      --conversations F  instead of a text: the mean loss on the assistant's tokens of the\n"
            "                         conversations in F (JSONL), masked as 'llmos sft' trains them\n"
            "      --template FILE    with --conversations: the chat template (default: the model's, else ChatML)\n"
            "  -c, --ctx N            tokens per chunk including BOS (default 512, at most the model's)\n"
            "      --chunks N         score at most N chunks\n"
            "      --kl-base BASE     compare with BASE.gguf (same vocabulary)\n"
            "      --lora FILE        apply a LoRA adapter (GGUF) to MODEL at run time\n"
            "      --lora-scale S     scale of the adapter (default 1)\n"
            "  -t, --threads N        threads (default: all cores)\n"
            "      --kv f32|f16       the model's KV cache (default f32, exact; --kl-base's stays f32)\n"
            "  -q, --quiet            no progress on stderr\n"
            "  -h, --help             this help\n");
}

static void show(void *user, const char *stage, int64_t done, int64_t total) {
    (void)user;
    fprintf(stderr, "\r%s: %lld / %lld", stage, (long long)done, (long long)total);
}

/* --conversations: the mean loss on the assistant's tokens, as `llmos sft` trains and holds out. */
static int conversation_loss(const char *model_path, const char *conv_path, const char *template_path,
                             const char *lora_path, float lora_scale, int64_t n_ctx, int n_threads) {
    lm_error err = {0};
    lm_model *m = NULL;
    lm_chat_template *tpl = NULL;
    lm_conversation_set *set = NULL;
    char *source = NULL;
    int rc = 1;
    if (!(m = cli_load_model("perplexity", model_path, lora_path, lora_scale)) ||
        !(tpl = cli_chat_template("perplexity", lm_model_get_gguf(m), template_path, &source, NULL))) {
        goto done;
    }
    if (lm_conversations_read(conv_path, 0, &set, &err)) {
        cli_error("perplexity: %s", err.message);
        goto done;
    }
    for (int64_t i = 0; i < set->n_skipped; i++) {
        fprintf(stderr, "%s:%lld: skipped: %s\n", conv_path, (long long)set->skipped[i].line, set->skipped[i].reason);
    }
    lm_chat_loss_result r;
    if (lm_chat_loss(m, tpl, set, n_ctx, n_threads, &r, &err)) {
        cli_error("perplexity: %s", err.message);
        goto done;
    }
    if (r.n_scored == 0) {
        cli_error("perplexity: %s has no assistant tokens to score", conv_path);
        goto done;
    }
    printf("conversations %lld\n", (long long)r.n_conversations);
    if (r.n_cut) printf("cut_to_context %lld\n", (long long)r.n_cut);
    if (r.n_skipped) printf("skipped %lld\n", (long long)r.n_skipped);
    printf("assistant_tokens %lld\n", (long long)r.n_scored);
    printf("loss %.4f\n", r.loss);
    printf("perplexity %.4f\n", exp(r.loss));
    rc = 0;
done:
    free(source);
    lm_conversation_set_free(set);
    lm_chat_template_free(tpl);
    lm_model_free(m);
    return rc;
}

int cmd_perplexity(int argc, char **argv) {
    const char *model_path = NULL, *file = NULL, *base_path = NULL, *lora_path = NULL, *conv_path = NULL,
               *template_path = NULL;
    float lora_scale = 1.0f;
    lm_perplexity_params p = {512, 0, cli_default_threads(), NULL, NULL, NULL};
    int quiet = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v;
        if (arg_is(a, "-h", "--help")) {
            usage(stdout);
            return 0;
        } else if (arg_is(a, "-f", "--file")) {
            if (!(file = arg_value(argc, argv, &i))) return 2;
        } else if (arg_is(a, "-c", "--ctx")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_int64(a, v, 2, 1 << 24, &p.n_ctx)) return 2;
        } else if (arg_is(a, NULL, "--chunks")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_int64(a, v, 1, INT32_MAX, &p.max_chunks)) return 2;
        } else if (arg_is(a, NULL, "--conversations")) {
            if (!(conv_path = arg_value(argc, argv, &i))) return 2;
        } else if (arg_is(a, NULL, "--template")) {
            if (!(template_path = arg_value(argc, argv, &i))) return 2;
        } else if (arg_is(a, NULL, "--kl-base")) {
            if (!(base_path = arg_value(argc, argv, &i))) return 2;
        } else if (arg_is(a, NULL, "--lora")) {
            if (!(lora_path = arg_value(argc, argv, &i))) return 2;
        } else if (arg_is(a, NULL, "--lora-scale")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_float(a, v, -1000, 1000, &lora_scale)) return 2;
        } else if (arg_is(a, "-t", "--threads")) {
            if (arg_threads(argc, argv, &i, &p.n_threads)) return 2;
        } else if (arg_is(a, NULL, "--kv")) {
            if (arg_kv_type(argc, argv, &i, &p.kv_type)) return 2;
        } else if (arg_is(a, "-q", "--quiet")) {
            quiet = 1;
        } else if (a[0] == '-' && a[1] != '\0') {
            cli_error("perplexity: unknown option '%s' (see 'llmos perplexity --help')", a);
            return 2;
        } else if (!model_path) {
            model_path = a;
        } else {
            cli_error("perplexity: unexpected argument '%s'", a);
            return 2;
        }
    }
    if (!model_path || !!file == !!conv_path) {
        cli_error("perplexity needs MODEL.gguf and one of --file TEXT and --conversations FILE (see --help)");
        return 2;
    }
    if (conv_path) return conversation_loss(model_path, conv_path, template_path, lora_path, lora_scale, p.n_ctx, p.n_threads);
    size_t len;
    char *text = cli_read_all(file, &len);
    if (!text) {
        cli_error("perplexity: cannot read %s", file);
        return 1;
    }
    lm_error err = {0};
    lm_model *m = NULL, *base = NULL;
    int rc = 1;
    if (!(m = cli_load_model("perplexity", model_path, lora_path, lora_scale))) goto done;
    if (base_path && lm_model_load(base_path, &base, &err)) {
        cli_error("cannot load %s: %s", base_path, err.message);
        goto done;
    }
    p.kl_base = base;
    if (!quiet && isatty(2)) p.progress = show; /* a counter redrawn with \r only makes sense on a terminal */
    lm_perplexity_result r;
    lm_status st = lm_perplexity(m, text, len, &p, &r, &err);
    if (!quiet) fputc('\n', stderr);
    if (st) {
        cli_error("perplexity: %s", err.message);
        goto done;
    }
    printf("chunks %lld, tokens scored %lld, bytes %llu\n", (long long)r.n_chunks, (long long)r.n_scored,
           (unsigned long long)r.n_bytes);
    printf("loss %.6f\nperplexity %.6f\nbits_per_byte %.6f\n", r.loss, r.perplexity, r.bits_per_byte);
    if (r.has_kl) printf("kl_divergence %.8f\ntop1_agreement %.6f\n", r.kl_mean, r.top1_agreement);
    rc = 0;
done:
    lm_model_free(m);
    lm_model_free(base);
    free(text);
    return rc;
}
