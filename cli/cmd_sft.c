/* llmos sft: supervised fine-tuning on conversations, the loss on the
 * assistant's tokens only. */
#include "args.h"
#include "commands.h"
#include "finetune.h"
#include "llmos/conversation.h"
#include "llmos/gguf.h"
#include "llmos/sft.h"
#include "llmos/train.h"
#include "llmos/vocab_grow.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: llmos sft BASE.gguf DATA.jsonl -o CHAT.gguf [options]\n"
            "\n"
            "Fine-tunes BASE on the conversations of DATA.jsonl (one {\"messages\": [...]} object or bare\n"
            "array of {role, content} messages per line). Each conversation is rendered with the\n"
            "model's chat template (tokenizer.chat_template, or --template, or ChatML), tokenized\n"
            "with the template's control tokens and the messages as plain text, and packed into\n"
            "rows of the context; the loss counts only the assistant's tokens and its end-of-turn\n"
            "marker. The last --val-fraction of the conversations is held out for the validation\n"
            "loss. Bad lines are reported with their line number and skipped (--strict: refused).\n"
            "Checkpoints, --resume, logs and the loss curve work as in 'llmos train'.\n"
            "\n"
            "When the template writes control strings that BASE's vocabulary lacks (<|name|>, <name>,\n"
            "</name>, [NAME], [/NAME] in the template's own text, e.g. ChatML's <|im_start|> and\n"
            "<|im_end|> for a model without them), they are first added as control tokens: a copy\n"
            "of BASE with the vocabulary and the embedding (and untied output) grown, the new rows\n"
            "the mean of the old ones, goes to CKPT_DIR/grown-base.gguf (reused by --resume), and\n"
            "the run starts from it. The marker that ends an assistant turn becomes the end-of-turn\n"
            "token (unless BASE names one), so 'llmos chat' and 'llmos run' stop on it. --no-grow\n"
            "keeps the vocabulary as it is (the markers are then plain text).\n"
            "\n"
            "options:\n"
            "      --no-grow            do not add the template's missing control tokens\n" FINETUNE_FLAGS_HELP
            "\n"
            "The learning rate defaults to 1e-4. With --lora-rank and a grown vocabulary, the adapter's\n"
            "base is CKPT_DIR/grown-base.gguf.\n");
}

/* When the template writes control strings BASE's vocabulary lacks: a copy
 * of BASE with them added (CKPT_DIR/grown-base.gguf, kept for --resume),
 * which the run then starts from; *g and *tok become the grown file's.
 * Returns 0 when done (or nothing was missing), 1 on failure. */
static int grow_base(const char *base, const lm_chat_template *tpl, lm_train_options *o, lm_gguf **g, lm_tokenizer **tok,
                     char *path, size_t cap) {
    lm_error err = {0};
    lm_chat_controls c, left = {0};
    if (lm_chat_missing_controls(*tok, tpl, &c, &err)) {
        cli_error("sft: %s", err.message);
        return 1;
    }
    if (c.n == 0) return 0;
    int rc = 1;
    lm_gguf *ng = NULL;
    lm_tokenizer *nt = NULL;
    char dir[4096];
    int len = o->checkpoint_dir ? snprintf(dir, sizeof dir, "%s", o->checkpoint_dir)
                                : snprintf(dir, sizeof dir, "%s.ckpt", o->out_path);
    if (len < 0 || (size_t)len >= sizeof dir || (size_t)snprintf(path, cap, "%s/grown-base.gguf", dir) >= cap) {
        cli_error("sft: path too long: %.40s...", dir);
        goto done;
    }
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        cli_error("sft: cannot create %s: %s", dir, strerror(errno));
        goto done;
    }
    int reuse = o->resume && access(path, R_OK) == 0;
    if (!reuse && lm_vocab_grow(base, path, (const char *const *)c.items, c.n, c.end_of_turn, &err)) {
        cli_error("sft: %s", err.message);
        goto done;
    }
    const char *s = c.n == 1 ? "" : "s";
    if (reuse) printf("resuming from %s, the base with %zu control token%s added:", path, c.n, s);
    else printf("added %zu control token%s to the vocabulary:", c.n, s);
    for (size_t i = 0; i < c.n; i++) printf(" %s", c.items[i]);
    if (reuse) printf("\n");
    else printf(" (%s)\n", path);
    fflush(stdout);
    if (lm_gguf_open(path, &ng, &err) || lm_tokenizer_load(ng, &nt, &err) || lm_chat_missing_controls(nt, tpl, &left, &err)) {
        cli_error("sft: %s: %s", path, err.message);
        goto done;
    }
    if (left.n) {
        cli_error("sft: %s lacks the template's %s: remove it, or run without --resume", path, left.items[0]);
        goto done;
    }
    lm_tokenizer_free(*tok);
    lm_gguf_free(*g);
    *g = ng, *tok = nt;
    ng = NULL, nt = NULL;
    o->init_model = path;
    rc = 0;
done:
    lm_tokenizer_free(nt);
    lm_gguf_free(ng);
    lm_chat_controls_free(&left);
    lm_chat_controls_free(&c);
    return rc;
}

static void report_skip(void *user, int64_t line, const char *reason) {
    fprintf(stderr, "%s:%lld: skipped: %s\n", (const char *)user, (long long)line, reason);
}

int cmd_sft(int argc, char **argv) {
    finetune_args fa;
    finetune_defaults(&fa, 1e-4);
    int no_grow = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (arg_is(a, "-h", "--help")) {
            usage(stdout);
            return 0;
        } else if (arg_is(a, NULL, "--no-grow")) {
            no_grow = 1;
            continue;
        }
        int r = finetune_arg("sft", argc, argv, &i, &fa);
        if (r < 0) return 2;
        if (r == 0) {
            cli_error("sft: unknown option '%s' (see 'llmos sft --help')", a);
            return 2;
        }
    }
    if (finetune_finish("sft", &fa)) return 2;
    lm_train_options o = fa.o;
    const char *base = fa.model, *data = fa.data;
    const double val_fraction = fa.val_fraction;
    const int strict = fa.strict;

    int rc = 1;
    lm_error err = {0};
    lm_gguf *g = NULL;
    lm_tokenizer *tok = NULL;
    lm_chat_template *tpl = NULL;
    lm_conversation_set *set = NULL;
    lm_sft_example *ex = NULL;
    char *source = NULL;
    int warned_calls = 0;
    int32_t *tin = NULL, *ttg = NULL, *vin = NULL, *vtg = NULL;
    size_t n_ex = 0;
    char grown[4096];
    if (lm_gguf_open(base, &g, &err) || lm_tokenizer_load(g, &tok, &err)) {
        cli_error("sft: %s: %s", base, err.message);
        goto done;
    }
    if (finetune_template("sft", g, &fa, &source, &tpl)) goto done;
    o.chat_template = fa.o.chat_template;
    if (!no_grow && grow_base(base, tpl, &o, &g, &tok, grown, sizeof grown)) goto done;
    lm_conversation_read_options ro = {0};
    ro.strict = strict, ro.on_skip = report_skip, ro.user = (void *)data;
    if (lm_conversations_read_ex(data, &ro, &set, &err)) {
        cli_error("sft: %s", err.message);
        goto done;
    }
    if (set->n < 2) {
        cli_error("sft: %s has %lld usable conversations; at least 2 are needed", data, (long long)set->n);
        goto done;
    }
    ex = calloc((size_t)set->n, sizeof *ex);
    if (!ex) goto done;
    for (int64_t c = 0; c < set->n; c++) {
        const lm_conversation *conv = &set->items[c];
        lm_chat_message *msgs;
        if (lm_conversation_messages(conv, &msgs, &err)) {
            cli_error("sft: %s", err.message);
            goto done;
        }
        int has_calls = 0;
        for (int32_t m = 0; m < conv->n_messages; m++) has_calls |= conv->messages[m].n_tool_calls > 0;
        if (has_calls && !warned_calls && !strstr(source ? source : "", "tool_calls")) {
            fprintf(stderr, "sft: warning: %s has tool calls the chat template does not render (it never reads "
                            "message.tool_calls); give a template that does with --template\n", data);
            warned_calls = 1;
        }
        lm_status st = lm_sft_tokenize_tools(tok, tpl, msgs, (size_t)conv->n_messages, conv->tools_json, &ex[n_ex], &err);
        free(msgs);
        if (st) {
            fprintf(stderr, "%s:%lld: skipped: %s\n", data, (long long)conv->line, err.message);
            continue;
        }
        n_ex++;
    }
    if (n_ex < 2) {
        cli_error("sft: only %zu of the conversations in %s could be tokenized; at least 2 are needed", n_ex, data);
        goto done;
    }
    size_t n_val = (size_t)(val_fraction * (double)n_ex + 0.5);
    if (val_fraction > 0 && n_val == 0) n_val = 1;
    if (n_val >= n_ex) n_val = n_ex - 1;
    int64_t tr_rows, va_rows, cut_t, cut_v;
    int32_t pad = lm_tokenizer_eos(tok) >= 0 ? lm_tokenizer_eos(tok) : 0;
    if (lm_sft_pack(ex, n_ex - n_val, o.context, pad, &tin, &ttg, &tr_rows, &cut_t, &err) ||
        lm_sft_pack(ex + (n_ex - n_val), n_val, o.context, pad, &vin, &vtg, &va_rows, &cut_v, &err)) {
        cli_error("sft: %s", err.message);
        goto done;
    }
    if (!o.quiet) {
        printf("conversations: %lld read, %lld lines skipped; %zu train, %zu val; %lld + %lld rows of %lld tokens",
               (long long)set->n, (long long)set->n_skipped, n_ex - n_val, n_val, (long long)tr_rows, (long long)va_rows,
               (long long)o.context);
        if (cut_t + cut_v) printf(" (%lld conversations cut to fit)", (long long)(cut_t + cut_v));
        printf("\n");
    }
    lm_train_rows rt = {tin, ttg, tr_rows}, rv = {vin, vtg, va_rows};
    o.rows_train = &rt;
    o.rows_val = va_rows > 0 ? &rv : NULL;
    int early;
    if (lm_train_run(&o, &early, &err)) {
        cli_error("sft: %s", err.message);
        goto done;
    }
    rc = 0;
done:
    for (size_t i = 0; ex && i < n_ex; i++) lm_sft_example_free(&ex[i]);
    free(ex);
    free(tin), free(ttg), free(vin), free(vtg);
    free(source);
    lm_conversation_set_free(set);
    lm_chat_template_free(tpl);
    lm_tokenizer_free(tok);
    lm_gguf_free(g);
    return rc;
}
