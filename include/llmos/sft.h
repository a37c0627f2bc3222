/* Supervised fine-tuning data: a conversation rendered through the model's
 * chat template and tokenized with a loss mask, and examples packed into
 * training rows. */
#ifndef LLMOS_SFT_H
#define LLMOS_SFT_H

#include "llmos/chat_template.h"
#include "llmos/tokenizer.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lm_sft_example {
    int32_t *tokens;
    uint8_t *train; /* 1: the loss counts this token (as a prediction target) */
    int64_t n;
} lm_sft_example;

/* Renders msgs (no generation prompt; BOS/EOS strings from the tokenizer)
 * and tokenizes the result segment by segment: the template's own text with
 * special-token parsing (its control tokens count), message contents as plain
 * text (a "<|im_start|>" typed by a user stays text). train marks what the
 * model writes in each assistant turn: from where the answer starts (the end
 * of the render of the earlier messages with the generation prompt, when the
 * full render begins with it; else the message's first content) up to and
 * including the first control token after it that is not a tool-call tag (the
 * end-of-turn marker the model must learn to emit). So an assistant message's
 * tool calls, template text around them included, are trained; tool results
 * and everything else are not. Segments are cut where an answer starts, so
 * the answer is tokenized as the model generates it after the prompt. */
lm_status lm_sft_tokenize(const lm_tokenizer *tok, const lm_chat_template *tpl, const lm_chat_message *msgs, size_t n,
                          lm_sft_example *out, lm_error *err);
/* The same with the template's `tools` set from tools_json (NULL: undefined). */
lm_status lm_sft_tokenize_tools(const lm_tokenizer *tok, const lm_chat_template *tpl, const lm_chat_message *msgs,
                                size_t n, const char *tools_json, lm_sft_example *out, lm_error *err);
void lm_sft_example_free(lm_sft_example *e);

/* The same rendering and tokenization for inference (chat): with the
 * generation prompt if asked, no mask. *tokens is malloc'd. */
lm_status lm_chat_tokenize(const lm_tokenizer *tok, const lm_chat_template *tpl, const lm_chat_message *msgs, size_t n,
                           int add_generation_prompt, int32_t **tokens, size_t *n_tokens, lm_error *err);
/* The same with the template's `tools` variable set from tools_json (an
 * OpenAI-style tools array, lm_tools_json), or undefined when NULL. */
lm_status lm_chat_tokenize_tools(const lm_tokenizer *tok, const lm_chat_template *tpl, const lm_chat_message *msgs,
                                 size_t n, int add_generation_prompt, const char *tools_json, int32_t **tokens,
                                 size_t *n_tokens, lm_error *err);

/* The control strings a chat template writes, found by rendering sample
 * conversations (system, user, assistant; with and without the generation
 * prompt; without the system message if the template refuses one) and
 * scanning only the template's own text (never message contents) for
 * markers (a sample with a tool call, its result and a tool list too, where
 * the template renders it): <|name|> (name: 1..64 bytes, no '|', '<', '>' or white space),
 * <name> and </name> (name: a lowercase letter, then up to 63 lowercase
 * letters, digits or '_'), [NAME] and [/NAME] (an uppercase letter, then 1..63
 * uppercase letters, digits or '_'). Only markers that are not tokens of tok
 * are returned, in order of first appearance. Fails only when no sample
 * renders (the template's error) or on too many strings; out is then empty.
 * Free with lm_chat_controls_free. */
#define LM_CHAT_MAX_CONTROLS 64

typedef struct lm_chat_controls {
    char **items;        /* n NUL-terminated strings */
    size_t n;
    int32_t end_of_turn; /* index in items of the marker that closes an assistant turn, or -1 */
} lm_chat_controls;

lm_status lm_chat_missing_controls(const lm_tokenizer *tok, const lm_chat_template *tpl, lm_chat_controls *out,
                                   lm_error *err);
void lm_chat_controls_free(lm_chat_controls *c);

/* Packs whole examples, in order, into rows of T + 1 tokens (a new row when
 * the next example does not fit in what is left); the rest of a row is
 * pad_token. For row r, inputs[r*T + t] = row[t] and targets[r*T + t] =
 * row[t + 1] where that token is trained, else -1. An example longer than
 * T + 1 is cut to T + 1 tokens (*truncated counts them). inputs and targets
 * are malloc'd. */
lm_status lm_sft_pack(const lm_sft_example *ex, size_t n, int64_t T, int32_t pad_token, int32_t **inputs,
                      int32_t **targets, int64_t *n_rows, int64_t *truncated, lm_error *err);

#ifdef __cplusplus
}
#endif
#endif
