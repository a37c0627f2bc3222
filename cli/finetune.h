/* What `llmos sft` and `llmos dpo` share: the training flags and the choice
 * of the chat template. */
#ifndef LLMOS_CLI_FINETUNE_H
#define LLMOS_CLI_FINETUNE_H

#include "llmos/chat_template.h"
#include "llmos/gguf.h"
#include "llmos/train.h"

#include <stdint.h>

/* The flags below, as shown in both commands' --help. */
#define FINETUNE_FLAGS_HELP                                                                                        \
    "      --template FILE      a Jinja chat template to train with (written into OUT)\n"              \
    "      --val-fraction F     held-out part of the data (default 0.1)\n"                                       \
    "      --strict             a bad line is an error (default: reported and skipped)\n"                        \
    "      --context T          tokens per row (default 512, at most the model's context)\n"                     \
    "      --batch B            rows per step (default 8)\n"                                                     \
    "      --max-steps N        optimizer steps (default 200)\n"                                                 \
    "      --lr LR              peak learning rate\n"                                                            \
    "      --warmup N           warmup steps (default 5%% of max steps)\n"                                       \
    "      --eval-every K       held-out evaluation every K steps (default 10 times a run)\n"                    \
    "      --lora-rank R        train a rank-R LoRA adapter (every layer's 7 matrices) instead of the\n"         \
    "                           weights; -o then names the adapter GGUF (llama.cpp's conventions),\n"           \
    "                           used with --lora at run time or merged by 'llmos lora merge'\n"                  \
    "      --lora-alpha A       the adapter's alpha; its scale is alpha / rank (default 2 * rank)\n"             \
    "      --checkpoint-every K --checkpoint-dir D --resume --json-log FILE --seed S --bf16\n"                  \
    "  -t, --threads N          threads (default: all cores)\n"                                                  \
    "  -o, --output FILE        the result (required)\n"                                                         \
    "  -q, --quiet              no progress or step lines\n"                                                     \
    "  -h, --help               this help\n"

typedef struct finetune_args {
    lm_train_options o;
    const char *model, *data, *template_file;
    double val_fraction;
    int strict;
    int64_t warmup, eval_every;
} finetune_args;

/* Defaults for a fine-tuning run with peak learning rate lr. */
void finetune_defaults(finetune_args *a, double lr);

/* Handles argv[*i] if it is one of the shared flags or a positional
 * argument (MODEL then DATA): 1 handled, 0 not one of them, -1 after an
 * error was printed. cmd is the command's name for messages. */
int finetune_arg(const char *cmd, int argc, char **argv, int *i, finetune_args *a);

/* After parsing: checks the required arguments, fills the derived defaults
 * (warmup, eval_every, init_model); 0 or -1 after an error. */
int finetune_finish(const char *cmd, finetune_args *a);

/* The chat template: --template, else the model's, else ChatML (which is
 * then written into the output). *source holds the text (free it); the
 * template goes to *tpl. 0 or -1 after an error. */
int finetune_template(const char *cmd, const lm_gguf *g, finetune_args *a, char **source, lm_chat_template **tpl);

#endif
