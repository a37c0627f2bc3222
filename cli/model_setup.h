/* What several commands do the same way: load a model (with an optional
 * LoRA adapter) and choose its chat template. */
#ifndef LLMOS_CLI_MODEL_SETUP_H
#define LLMOS_CLI_MODEL_SETUP_H

#include "llmos/chat_template.h"
#include "llmos/gguf.h"
#include "llmos/model.h"

/* Loads path and attaches the adapter lora_path (if not NULL) at lora_scale;
 * NULL after printing "llmos: CMD: ..." */
lm_model *cli_load_model(const char *cmd, const char *path, const char *lora_path, float lora_scale);

/* Where a chat template came from. */
typedef enum cli_template_source { CLI_TEMPLATE_FILE, CLI_TEMPLATE_MODEL, CLI_TEMPLATE_CHATML } cli_template_source;

/* The chat template: template_file if not NULL, else g's tokenizer.chat_template, else ChatML.
 * *text gets a malloc'd copy of its text; *from (may be NULL) where it came from. NULL after
 * printing the error. */
lm_chat_template *cli_chat_template(const char *cmd, const lm_gguf *g, const char *template_file, char **text,
                                    cli_template_source *from);

#endif
