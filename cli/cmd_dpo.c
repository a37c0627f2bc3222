/* llmos dpo: direct preference optimisation on pairs of answers. */
#include "args.h"
#include "commands.h"
#include "finetune.h"
#include "llmos/conversation.h"
#include "llmos/gguf.h"
#include "llmos/sft.h"
#include "llmos/train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: llmos dpo CHAT.gguf PAIRS.jsonl -o OUT.gguf [options]\n"
            "\n"
            "Direct preference optimisation: teaches CHAT to prefer the chosen answer of each pair over\n"
            "the rejected one, against a frozen copy of itself (the reference). Each line of PAIRS.jsonl is\n"
            "  {\"prompt\": \"...\", \"chosen\": \"...\", \"rejected\": \"...\"}  or\n"
            "  {\"messages\": [{role, content}...], \"chosen\": ..., \"rejected\": ...}\n"
            "where an answer is a string, an assistant message, or messages ending with the answer.\n"
            "Prompt and answer are rendered with the chat template; only the answer's tokens (and its\n"
            "end-of-turn marker) are scored. The loss is -log sigmoid(beta * ((pc - rc) - (pr - rr)))\n"
            "with p the model's and r the reference's summed log-probabilities of the chosen (c) and\n"
            "rejected (r) answers. The last --val-fraction of the pairs is held out: the run reports\n"
            "their reward margin, reward accuracy (margin > 0) and likelihood accuracy (the chosen\n"
            "answer more likely than the rejected one), for the starting model and after training.\n"
            "\n"
            "options:\n"
            "      --beta B             the DPO temperature (default 0.1)\n" FINETUNE_FLAGS_HELP
            "\n"
            "Defaults differing from 'llmos sft': learning rate 5e-5, 100 steps, context 256.\n");
}

static void report_skip(void *user, int64_t line, const char *reason) {
    fprintf(stderr, "%s:%lld: skipped: %s\n", (const char *)user, (long long)line, reason);
}

/* The row of one answer: prompt and answer rendered and packed into T + 1
 * tokens, only the answer's tokens scored. Returns 0, or -1 with *why set
 * (err->message for library errors). */
static int answer_row(const lm_tokenizer *tok, const lm_chat_template *tpl, lm_chat_message *msgs, size_t n_prompt,
                      const char *answer, int64_t T, int32_t pad, int32_t *in, int32_t *tg, const char **why,
                      lm_error *err) {
    int32_t *prefix = NULL, *pin = NULL, *ptg = NULL;
    size_t n_prefix = 0;
    lm_sft_example ex = {0};
    int64_t rows = 0, cut = 0;
    int rc = -1;
    *why = NULL;
    msgs[n_prompt].role = "assistant";
    msgs[n_prompt].content = answer;
    if (lm_chat_tokenize(tok, tpl, msgs, n_prompt, 1, &prefix, &n_prefix, err) ||
        lm_sft_tokenize(tok, tpl, msgs, n_prompt + 1, &ex, err)) {
        goto done;
    }
    if ((size_t)ex.n < n_prefix || memcmp(ex.tokens, prefix, n_prefix * sizeof *prefix) != 0) {
        *why = "the template does not render the prompt as the start of the conversation with its answer";
        goto done;
    }
    for (size_t i = 0; i < n_prefix; i++) ex.train[i] = 0;
    if (lm_sft_pack(&ex, 1, T, pad, &pin, &ptg, &rows, &cut, err)) goto done;
    int64_t scored = 0;
    for (int64_t t = 0; t < T; t++) scored += ptg[t] >= 0;
    if (rows != 1 || scored == 0) {
        *why = "the prompt leaves no room for the answer in the context";
        goto done;
    }
    memcpy(in, pin, (size_t)T * sizeof *in);
    memcpy(tg, ptg, (size_t)T * sizeof *tg);
    rc = 0;
done:
    free(prefix), free(pin), free(ptg);
    lm_sft_example_free(&ex);
    return rc;
}

int cmd_dpo(int argc, char **argv) {
    finetune_args a;
    finetune_defaults(&a, 5e-5);
    a.o.max_steps = 100, a.o.context = 256;
    a.o.dpo_beta = 0.1;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i], *v;
        float f;
        if (arg_is(arg, "-h", "--help")) {
            usage(stdout);
            return 0;
        } else if (arg_is(arg, NULL, "--beta")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_float(arg, v, 1e-4, 1e4, &f)) return 2;
            a.o.dpo_beta = f;
            continue;
        }
        int r = finetune_arg("dpo", argc, argv, &i, &a);
        if (r < 0) return 2;
        if (r == 0) {
            cli_error("dpo: unknown option '%s' (see 'llmos dpo --help')", arg);
            return 2;
        }
    }
    if (finetune_finish("dpo", &a)) return 2;
    if (a.o.batch % 2) {
        cli_error("dpo: --batch must be even (each pair is two rows)");
        return 2;
    }
    lm_train_options *o = &a.o;

    int rc = 1;
    lm_error err = {0};
    lm_gguf *g = NULL;
    lm_tokenizer *tok = NULL;
    lm_chat_template *tpl = NULL;
    lm_conversation_set *set = NULL;
    lm_chat_message *msgs = NULL;
    char *source = NULL;
    int32_t *inputs = NULL, *targets = NULL;
    int64_t n_pairs = 0;
    if (lm_gguf_open(a.model, &g, &err) || lm_tokenizer_load(g, &tok, &err)) {
        cli_error("dpo: %s: %s", a.model, err.message);
        goto done;
    }
    if (finetune_template("dpo", g, &a, &source, &tpl)) goto done;
    lm_conversation_read_options ro = {0};
    ro.strict = a.strict, ro.pairs = 1, ro.on_skip = report_skip, ro.user = (void *)a.data;
    if (lm_conversations_read_ex(a.data, &ro, &set, &err)) {
        cli_error("dpo: %s", err.message);
        goto done;
    }
    const int64_t T = o->context;
    size_t row_bytes = (size_t)T * sizeof(int32_t);
    if (set->n < 2 || (size_t)set->n > SIZE_MAX / 2 / row_bytes) {
        cli_error("dpo: %s has %lld usable pairs; at least 2 are needed", a.data, (long long)set->n);
        goto done;
    }
    inputs = malloc((size_t)set->n * 2 * row_bytes);
    targets = malloc((size_t)set->n * 2 * row_bytes);
    if (!inputs || !targets) {
        cli_error("dpo: out of memory for %lld pairs", (long long)set->n);
        goto done;
    }
    int32_t pad = lm_tokenizer_eos(tok) >= 0 ? lm_tokenizer_eos(tok) : 0;
    for (int64_t c = 0; c < set->n; c++) {
        const lm_conversation *conv = &set->items[c];
        free(msgs);
        if (lm_conversation_messages(conv, &msgs, &err)) {
            cli_error("dpo: %s", err.message);
            goto done;
        }
        const char *why = NULL;
        int32_t *in = inputs + 2 * n_pairs * T, *tg = targets + 2 * n_pairs * T;
        if (answer_row(tok, tpl, msgs, (size_t)conv->n_messages, conv->chosen, T, pad, in, tg, &why, &err) ||
            answer_row(tok, tpl, msgs, (size_t)conv->n_messages, conv->rejected, T, pad, in + T, tg + T, &why, &err)) {
            if (a.strict) {
                cli_error("dpo: %s:%lld: %s", a.data, (long long)conv->line, why ? why : err.message);
                goto done;
            }
            fprintf(stderr, "%s:%lld: skipped: %s\n", a.data, (long long)conv->line, why ? why : err.message);
            continue;
        }
        n_pairs++;
    }
    if (n_pairs < 2) {
        cli_error("dpo: only %lld of the pairs in %s could be used; at least 2 are needed", (long long)n_pairs, a.data);
        goto done;
    }
    int64_t n_val = (int64_t)(a.val_fraction * (double)n_pairs + 0.5);
    if (a.val_fraction > 0 && n_val == 0) n_val = 1;
    if (n_val >= n_pairs) n_val = n_pairs - 1;
    const int64_t n_train = n_pairs - n_val;
    if (!o->quiet) {
        printf("pairs: %lld read, %lld lines skipped, %lld usable; %lld train, %lld held out; rows of %lld tokens, beta %g\n",
               (long long)set->n, (long long)set->n_skipped, (long long)n_pairs, (long long)n_train, (long long)n_val,
               (long long)T, o->dpo_beta);
    }
    lm_train_rows rt = {inputs, targets, 2 * n_train};
    lm_train_rows rv = {inputs + 2 * n_train * T, targets + 2 * n_train * T, 2 * n_val};
    o->rows_train = &rt;
    o->rows_val = n_val > 0 ? &rv : NULL;
    int early;
    if (lm_train_run(o, &early, &err)) {
        cli_error("dpo: %s", err.message);
        goto done;
    }
    rc = 0;
done:
    free(inputs), free(targets), free(msgs);
    free(source);
    lm_conversation_set_free(set);
    lm_chat_template_free(tpl);
    lm_tokenizer_free(tok);
    lm_gguf_free(g);
    return rc;
}
