/* llmos sft: supervised fine-tuning on conversations, the loss on the
 * assistant's tokens only. */
#include "args.h"
#include "commands.h"
#include "llmos/conversation.h"
#include "llmos/gguf.h"
#include "llmos/sft.h"
#include "llmos/train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
            "options:\n"
            "      --template FILE      a Jinja chat template to use (and write into CHAT.gguf if BASE has none)\n"
            "      --val-fraction F     held-out conversations (default 0.1)\n"
            "      --strict             a bad line is an error\n"
            "      --context T          tokens per row (default 512, at most BASE's context)\n"
            "      --batch B            rows per step (default 8)\n"
            "      --max-steps N        optimizer steps (default 200)\n"
            "      --lr LR              peak learning rate (default 1e-4)\n"
            "      --warmup N           warmup steps (default 5%% of max steps)\n"
            "      --eval-every K       validation loss every K steps (default 10 times a run)\n"
            "      --checkpoint-every K --checkpoint-dir D --resume --json-log FILE --seed S --bf16\n"
            "  -t, --threads N          threads (default: all cores)\n"
            "  -o, --output FILE        the fine-tuned model (required)\n"
            "  -q, --quiet              no progress or step lines\n"
            "  -h, --help               this help\n");
}

static void report_skip(void *user, int64_t line, const char *reason) {
    fprintf(stderr, "%s:%lld: skipped: %s\n", (const char *)user, (long long)line, reason);
}

int cmd_sft(int argc, char **argv) {
    const char *base = NULL, *data = NULL, *template_file = NULL;
    double val_fraction = 0.1;
    int strict = 0;
    int64_t warmup = -1, eval_every = -1;
    lm_train_options o;
    lm_train_options_default(&o);
    o.n_threads = cli_default_threads();
    o.context = 512, o.max_steps = 200, o.lr = 1e-4, o.weight_decay = 0.0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v;
        float f;
        if (arg_is(a, "-h", "--help")) {
            usage(stdout);
            return 0;
        } else if (arg_is(a, NULL, "--template")) {
            if (!(template_file = arg_value(argc, argv, &i))) return 2;
        } else if (arg_is(a, NULL, "--val-fraction")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_float(a, v, 0, 0.9, &f)) return 2;
            val_fraction = f;
        } else if (arg_is(a, NULL, "--lr")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_float(a, v, 1e-12, 10, &f)) return 2;
            o.lr = f;
        } else if (arg_is(a, NULL, "--strict")) {
            strict = 1;
        } else if (arg_is(a, NULL, "--context")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_int64(a, v, 2, 1 << 16, &o.context)) return 2;
        } else if (arg_is(a, NULL, "--batch")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_int64(a, v, 1, 1 << 16, &o.batch)) return 2;
        } else if (arg_is(a, NULL, "--max-steps")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_int64(a, v, 1, (int64_t)1 << 40, &o.max_steps)) return 2;
        } else if (arg_is(a, NULL, "--warmup")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_int64(a, v, 0, (int64_t)1 << 40, &warmup)) return 2;
        } else if (arg_is(a, NULL, "--eval-every")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_int64(a, v, 0, (int64_t)1 << 40, &eval_every)) return 2;
        } else if (arg_is(a, NULL, "--checkpoint-every")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_int64(a, v, 0, (int64_t)1 << 40, &o.checkpoint_every)) return 2;
        } else if (arg_is(a, NULL, "--checkpoint-dir")) {
            if (!(o.checkpoint_dir = arg_value(argc, argv, &i))) return 2;
        } else if (arg_is(a, NULL, "--json-log")) {
            if (!(o.json_log = arg_value(argc, argv, &i))) return 2;
        } else if (arg_is(a, NULL, "--seed")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_uint64(a, v, &o.seed)) return 2;
        } else if (arg_is(a, NULL, "--resume")) {
            o.resume = 1;
        } else if (arg_is(a, NULL, "--bf16")) {
            o.bf16 = 1;
        } else if (arg_is(a, "-t", "--threads")) {
            if (arg_threads(argc, argv, &i, &o.n_threads)) return 2;
        } else if (arg_is(a, "-o", "--output")) {
            if (!(o.out_path = arg_value(argc, argv, &i))) return 2;
        } else if (arg_is(a, "-q", "--quiet")) {
            o.quiet = 1;
        } else if (a[0] == '-' && a[1]) {
            cli_error("sft: unknown option '%s' (see 'llmos sft --help')", a);
            return 2;
        } else if (!base) {
            base = a;
        } else if (!data) {
            data = a;
        } else {
            cli_error("sft: unexpected argument '%s' (see 'llmos sft --help')", a);
            return 2;
        }
    }
    if (!base || !data || !o.out_path) {
        cli_error("sft: BASE.gguf, DATA.jsonl and -o are required (see 'llmos sft --help')");
        return 2;
    }
    o.warmup_steps = warmup >= 0 ? warmup : o.max_steps / 20;
    o.eval_every = eval_every >= 0 ? eval_every : (o.max_steps >= 10 ? o.max_steps / 10 : 1);
    o.init_model = base;

    int rc = 1;
    lm_error err = {0};
    lm_gguf *g = NULL;
    lm_tokenizer *tok = NULL;
    lm_chat_template *tpl = NULL;
    lm_conversation_set *set = NULL;
    lm_sft_example *ex = NULL;
    char *source = NULL;
    int32_t *tin = NULL, *ttg = NULL, *vin = NULL, *vtg = NULL;
    size_t n_ex = 0;
    if (lm_gguf_open(base, &g, &err) || lm_tokenizer_load(g, &tok, &err)) {
        cli_error("sft: %s: %s", base, err.message);
        goto done;
    }
    /* The template: --template, else the model's, else ChatML (then written into the output). */
    const char *tpl_text = lm_chat_template_chatml;
    int64_t key = lm_gguf_find_key(g, "tokenizer.chat_template");
    if (template_file) {
        size_t len;
        if (!(source = cli_read_all(template_file, &len))) {
            cli_error("sft: cannot read %s", template_file);
            goto done;
        }
        tpl_text = source;
        o.chat_template = source;
    } else if (key >= 0) {
        lm_str s = lm_gguf_get_str(g, key, 0);
        if (!(source = malloc(s.len + 1))) goto done;
        memcpy(source, s.ptr, s.len);
        source[s.len] = 0;
        tpl_text = source;
    } else {
        o.chat_template = lm_chat_template_chatml;
    }
    if (lm_chat_template_compile(tpl_text, &tpl, &err)) {
        cli_error("sft: chat template: %s", err.message);
        goto done;
    }
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
        lm_chat_message *msgs = calloc((size_t)conv->n_messages, sizeof *msgs);
        if (!msgs) goto done;
        for (int32_t m = 0; m < conv->n_messages; m++) {
            msgs[m].role = lm_chat_role_name(conv->messages[m].role);
            msgs[m].content = conv->messages[m].content ? conv->messages[m].content : "";
        }
        lm_status st = lm_sft_tokenize(tok, tpl, msgs, (size_t)conv->n_messages, &ex[n_ex], &err);
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
