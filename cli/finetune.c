/* The flags and template choice shared by `llmos sft` and `llmos dpo`. */
#include "finetune.h"

#include "args.h"
#include "model_setup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void finetune_defaults(finetune_args *a, double lr) {
    memset(a, 0, sizeof *a);
    lm_train_options_default(&a->o);
    a->o.n_threads = cli_default_threads();
    a->o.context = 512, a->o.max_steps = 200, a->o.lr = lr, a->o.weight_decay = 0.0;
    a->val_fraction = 0.1;
    a->warmup = -1, a->eval_every = -1;
}

int finetune_arg(const char *cmd, int argc, char **argv, int *i, finetune_args *a) {
    const char *arg = argv[*i], *v;
    lm_train_options *o = &a->o;
    float f;
    if (arg_is(arg, NULL, "--template")) {
        return (a->template_file = arg_value(argc, argv, i)) ? 1 : -1;
    } else if (arg_is(arg, NULL, "--val-fraction")) {
        if (!(v = arg_value(argc, argv, i)) || arg_float(arg, v, 0, 0.9, &f)) return -1;
        a->val_fraction = f;
    } else if (arg_is(arg, NULL, "--lr")) {
        if (!(v = arg_value(argc, argv, i)) || arg_float(arg, v, 1e-12, 10, &f)) return -1;
        o->lr = f;
    } else if (arg_is(arg, NULL, "--strict")) {
        a->strict = 1;
    } else if (arg_is(arg, NULL, "--context")) {
        if (!(v = arg_value(argc, argv, i)) || arg_int64(arg, v, 2, 1 << 16, &o->context)) return -1;
    } else if (arg_is(arg, NULL, "--batch")) {
        if (!(v = arg_value(argc, argv, i)) || arg_int64(arg, v, 1, 1 << 16, &o->batch)) return -1;
    } else if (arg_is(arg, NULL, "--max-steps")) {
        if (!(v = arg_value(argc, argv, i)) || arg_int64(arg, v, 1, (int64_t)1 << 40, &o->max_steps)) return -1;
    } else if (arg_is(arg, NULL, "--warmup")) {
        if (!(v = arg_value(argc, argv, i)) || arg_int64(arg, v, 0, (int64_t)1 << 40, &a->warmup)) return -1;
    } else if (arg_is(arg, NULL, "--eval-every")) {
        if (!(v = arg_value(argc, argv, i)) || arg_int64(arg, v, 0, (int64_t)1 << 40, &a->eval_every)) return -1;
    } else if (arg_is(arg, NULL, "--lora-rank")) {
        if (!(v = arg_value(argc, argv, i)) || arg_int64(arg, v, 1, 4096, &o->lora_rank)) return -1;
    } else if (arg_is(arg, NULL, "--lora-alpha")) {
        if (!(v = arg_value(argc, argv, i)) || arg_float(arg, v, 1e-6, 1e6, &f)) return -1;
        o->lora_alpha = f;
    } else if (arg_is(arg, NULL, "--checkpoint-every")) {
        if (!(v = arg_value(argc, argv, i)) || arg_int64(arg, v, 0, (int64_t)1 << 40, &o->checkpoint_every)) return -1;
    } else if (arg_is(arg, NULL, "--checkpoint-dir")) {
        return (o->checkpoint_dir = arg_value(argc, argv, i)) ? 1 : -1;
    } else if (arg_is(arg, NULL, "--json-log")) {
        return (o->json_log = arg_value(argc, argv, i)) ? 1 : -1;
    } else if (arg_is(arg, NULL, "--seed")) {
        if (!(v = arg_value(argc, argv, i)) || arg_uint64(arg, v, &o->seed)) return -1;
    } else if (arg_is(arg, NULL, "--resume")) {
        o->resume = 1;
    } else if (arg_is(arg, NULL, "--bf16")) {
        o->bf16 = 1;
    } else if (arg_is(arg, "-t", "--threads")) {
        if (arg_threads(argc, argv, i, &o->n_threads)) return -1;
    } else if (arg_is(arg, "-o", "--output")) {
        return (o->out_path = arg_value(argc, argv, i)) ? 1 : -1;
    } else if (arg_is(arg, "-q", "--quiet")) {
        o->quiet = 1;
    } else if (arg[0] == '-' && arg[1]) {
        return 0;
    } else if (!a->model) {
        a->model = arg;
    } else if (!a->data) {
        a->data = arg;
    } else {
        cli_error("%s: unexpected argument '%s' (see 'llmos %s --help')", cmd, arg, cmd);
        return -1;
    }
    return 1;
}

int finetune_finish(const char *cmd, finetune_args *a) {
    lm_train_options *o = &a->o;
    if (!a->model || !a->data || !o->out_path) {
        cli_error("%s: MODEL.gguf, DATA.jsonl and -o are required (see 'llmos %s --help')", cmd, cmd);
        return -1;
    }
    o->warmup_steps = a->warmup >= 0 ? a->warmup : o->max_steps / 20;
    o->eval_every = a->eval_every >= 0 ? a->eval_every : (o->max_steps >= 10 ? o->max_steps / 10 : 1);
    o->init_model = a->model;
    return 0;
}

int finetune_template(const char *cmd, const lm_gguf *g, finetune_args *a, char **source, lm_chat_template **tpl) {
    cli_template_source from;
    if (!(*tpl = cli_chat_template(cmd, g, a->template_file, source, &from))) return -1;
    /* a template the model does not carry is written into the output (if the model has none) */
    if (from != CLI_TEMPLATE_MODEL) a->o.chat_template = *source;
    return 0;
}
