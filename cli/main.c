/* llmos: one program, one subcommand per stage of a model's life. */
#include "args.h"
#include "commands.h"
#include "llmos/base.h"

#include <stdio.h>
#include <string.h>

typedef struct command {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} command;

static const command commands[] = {
    {"run", cmd_run, "generate text from a prompt with a GGUF model"},
    {"info", cmd_info, "show a GGUF file's metadata and tensor table"},
    {"convert", cmd_convert, "convert another checkpoint format to GGUF"},
    {"quantize", cmd_quantize, "write a GGUF with its weight matrices in a smaller type"},
    {"init", cmd_init, "write a random-weight Llama model of any shape"},
    {"train", cmd_train, "pre-train a model on token shards (AdamW, checkpoints, resume)"},
    {"chat", cmd_chat, "chat with a model through its chat template (one answer per line when piped)"},
    {"serve", cmd_serve, "serve a chat model over HTTP in OpenAI's dialect (chat completions, streaming, tools)"},
    {"sft", cmd_sft, "fine-tune on conversations, the loss on the assistant's tokens"},
    {"tool", cmd_tool, "list the tools (calculator, code, search) or call one on JSON arguments"},
    {"dpo", cmd_dpo, "preference-tune on chosen/rejected answer pairs (direct preference optimisation)"},
    {"lora", cmd_lora, "merge a LoRA adapter into its base model (lora merge), describe one (lora info)"},
    {"bench", cmd_bench, "prompt and generation speed against the machine's limits"},
    {"perplexity", cmd_perplexity, "loss, perplexity and bits per byte of a model on a text"},
    {"tokenize", cmd_tokenize, "text to token ids with a GGUF's tokenizer"},
    {"tokenizer", cmd_tokenizer, "train a byte-level BPE tokenizer (tokenizer train)"},
    {"data", cmd_data, "tokenize text files into train/val token shards (data prepare)"},
};

static void usage(FILE *out) {
    fprintf(out, "usage: llmos COMMAND [ARGS...]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++) {
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    }
    fprintf(out, "\n'llmos COMMAND --help' describes a command. 'llmos --version' prints the version.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (arg_is(argv[1], "-h", "--help") || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("llmos %s\n", LLMOS_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++) {
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].fn(argc - 2, argv + 2);
    }
    cli_error("unknown command '%s' (try 'llmos --help')", argv[1]);
    return 2;
}
