#ifndef LLMOS_CLI_COMMANDS_H
#define LLMOS_CLI_COMMANDS_H

/* Each subcommand gets argv after the subcommand name and returns the exit status. */
int cmd_run(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_tokenizer(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_sft(int argc, char **argv);
int cmd_dpo(int argc, char **argv);
int cmd_tool(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_data(int argc, char **argv);
int cmd_lora(int argc, char **argv);

#endif
