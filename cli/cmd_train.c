/* llmos train: pre-training on token shards. */
#include "args.h"
#include "commands.h"
#include "llmos/train.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: llmos train --data DIR --tokenizer TOK.gguf [--init MODEL.gguf | --dim D --layers L\n"
            "                   --heads H [--kv-heads K] --ffn F] [--context T] --batch B --max-steps N\n"
            "                   [options] -o OUT.gguf\n"
            "\n"
            "Trains a Llama model on the token shards of 'llmos data prepare' (random windows of\n"
            "the train split), reports the validation loss, writes checkpoints (every K steps, at\n"
            "the end, and on Ctrl-C / SIGTERM) that --resume continues bit for bit, and writes\n"
            "the model as an F32 GGUF with the tokenizer inside, plus OUT.loss.csv and\n"
            "OUT.loss.svg.\n"
            "\n"
            "model:\n"
            "      --tokenizer TOK      GGUF whose tokenizer a new model gets\n"
            "      --init MODEL         start from this GGUF (any weight type) instead of a new model\n"
            "      --dim D --layers L --heads H --kv-heads K --ffn F   a new model's shape\n"
            "      --context T          tokens per sequence (default 256)\n"
            "batch and schedule:\n"
            "      --batch B            sequences per micro-batch (default 8)\n"
            "      --batch-tokens N     tokens per optimizer step, by gradient accumulation (default B*T)\n"
            "      --max-steps N        optimizer steps (required)\n"
            "      --time-budget S      stop after S seconds, with a checkpoint\n"
            "      --lr LR              peak learning rate (default 1e-3)\n"
            "      --min-lr-ratio R     final learning rate / peak (default 0.1)\n"
            "      --warmup N           warmup steps (default 5%% of max steps)\n"
            "      --schedule S         cosine (default), linear or constant\n"
            "      --weight-decay W     decoupled, matrices only (default 0.1)\n"
            "      --decay-embeddings   also decay the token embedding\n"
            "      --beta1 B --beta2 B  AdamW moments (default 0.9, 0.95)\n"
            "      --grad-clip C        clip the global gradient norm (default 1; 0: off)\n"
            "      --seed S             initialisation and batch sampling (default 1337)\n"
            "      --bf16               weight products in bf16 with f32 accumulation and master weights\n"
            "                           (AVX-512 BF16; ignored with a warning elsewhere)\n"
            "evaluation, checkpoints, logs:\n"
            "      --eval-every K       validation loss every K steps (default: 10 times a run)\n"
            "      --eval-batches N     micro-batches per evaluation (default 8)\n"
            "      --checkpoint-every K checkpoint every K steps (default: at the end only)\n"
            "      --checkpoint-dir D   where checkpoints go (default OUT.gguf.ckpt)\n"
            "      --resume             continue from the newest valid checkpoint there\n"
            "      --json-log FILE      append one JSON object per step\n"
            "  -t, --threads N          threads (default: all cores)\n"
            "  -o, --output FILE        the trained model (required)\n"
            "  -q, --quiet              no progress or step lines\n"
            "  -h, --help               this help\n");
}

int cmd_train(int argc, char **argv) {
    lm_train_options o;
    lm_train_options_default(&o);
    o.n_threads = cli_default_threads();
    int64_t warmup = -1, eval_every = -1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v;
        float f;
#define INT_OPT(flag, dst, lo, hi)                                                         \
    else if (arg_is(a, NULL, flag)) {                                                      \
        if (!(v = arg_value(argc, argv, &i)) || arg_int64(a, v, lo, hi, &(dst))) return 2; \
    }
#define REAL_OPT(flag, dst, lo, hi)                                                          \
    else if (arg_is(a, NULL, flag)) {                                                        \
        if (!(v = arg_value(argc, argv, &i)) || arg_float(a, v, lo, hi, &f)) return 2;       \
        (dst) = f;                                                                           \
    }
#define STR_OPT(flag, dst)                                   \
    else if (arg_is(a, NULL, flag)) {                        \
        if (!((dst) = arg_value(argc, argv, &i))) return 2;  \
    }
        if (arg_is(a, "-h", "--help")) {
            usage(stdout);
            return 0;
        }
        STR_OPT("--data", o.data_dir)
        STR_OPT("--tokenizer", o.tokenizer)
        STR_OPT("--init", o.init_model)
        STR_OPT("--checkpoint-dir", o.checkpoint_dir)
        STR_OPT("--json-log", o.json_log)
        INT_OPT("--dim", o.dim, 2, 1 << 16)
        INT_OPT("--layers", o.n_layers, 1, 1024)
        INT_OPT("--heads", o.n_heads, 1, 1024)
        INT_OPT("--kv-heads", o.n_kv_heads, 1, 1024)
        INT_OPT("--ffn", o.ffn_dim, 1, 1 << 18)
        INT_OPT("--context", o.context, 2, 1 << 16)
        INT_OPT("--batch", o.batch, 1, 1 << 16)
        INT_OPT("--batch-tokens", o.batch_tokens, 1, (int64_t)1 << 32)
        INT_OPT("--max-steps", o.max_steps, 1, (int64_t)1 << 40)
        INT_OPT("--warmup", warmup, 0, (int64_t)1 << 40)
        INT_OPT("--eval-every", eval_every, 0, (int64_t)1 << 40)
        INT_OPT("--eval-batches", o.eval_batches, 1, 1 << 20)
        INT_OPT("--checkpoint-every", o.checkpoint_every, 0, (int64_t)1 << 40)
        REAL_OPT("--time-budget", o.time_budget_s, 0, 1e9)
        REAL_OPT("--lr", o.lr, 1e-12, 10)
        REAL_OPT("--min-lr-ratio", o.min_lr_ratio, 0, 1)
        REAL_OPT("--weight-decay", o.weight_decay, 0, 10)
        REAL_OPT("--beta1", o.beta1, 0, 0.999999)
        REAL_OPT("--beta2", o.beta2, 0, 0.999999)
        REAL_OPT("--grad-clip", o.grad_clip, 0, 1e9)
#undef INT_OPT
#undef REAL_OPT
#undef STR_OPT
        else if (arg_is(a, NULL, "--schedule")) {
            if (!(v = arg_value(argc, argv, &i))) return 2;
            if (strcmp(v, "cosine") == 0) o.schedule = LM_LR_COSINE;
            else if (strcmp(v, "linear") == 0) o.schedule = LM_LR_LINEAR;
            else if (strcmp(v, "constant") == 0) o.schedule = LM_LR_CONSTANT;
            else {
                cli_error("train: unknown schedule '%s' (cosine, linear or constant)", v);
                return 2;
            }
        } else if (arg_is(a, NULL, "--decay-embeddings")) {
            o.decay_embeddings = 1;
        } else if (arg_is(a, NULL, "--bf16")) {
            o.bf16 = 1;
        } else if (arg_is(a, NULL, "--resume")) {
            o.resume = 1;
        } else if (arg_is(a, NULL, "--seed")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_uint64(a, v, &o.seed)) return 2;
        } else if (arg_is(a, "-t", "--threads")) {
            if (arg_threads(argc, argv, &i, &o.n_threads)) return 2;
        } else if (arg_is(a, "-o", "--output")) {
            if (!(o.out_path = arg_value(argc, argv, &i))) return 2;
        } else if (arg_is(a, "-q", "--quiet")) {
            o.quiet = 1;
        } else {
            cli_error("train: unexpected argument '%s' (see 'llmos train --help')", a);
            return 2;
        }
    }
    if (!o.data_dir || !o.out_path || !o.max_steps) {
        cli_error("train: --data, --max-steps and -o are required (see 'llmos train --help')");
        return 2;
    }
    if (!o.init_model && (!o.tokenizer || !o.dim || !o.n_layers || !o.n_heads || !o.ffn_dim)) {
        cli_error("train: a new model needs --tokenizer, --dim, --layers, --heads and --ffn (or --init MODEL.gguf)");
        return 2;
    }
    if (!o.n_kv_heads) o.n_kv_heads = o.n_heads;
    o.warmup_steps = warmup >= 0 ? warmup : o.max_steps / 20;
    o.eval_every = eval_every >= 0 ? eval_every : (o.max_steps >= 10 ? o.max_steps / 10 : 1);
    lm_error err = {0};
    int early;
    if (lm_train_run(&o, &early, &err)) {
        cli_error("train: %s", err.message);
        return 1;
    }
    return 0;
}
