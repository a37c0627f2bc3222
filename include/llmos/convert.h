/* Converters from other checkpoint formats to GGUF. */
#ifndef LLMOS_CONVERT_H
#define LLMOS_CONVERT_H

#include "llmos/base.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lm_convert_llama2c_options {
    int64_t context_length; /* 0: the checkpoint's seq_len */
    const char *name;       /* general.name; NULL: "llama" */
} lm_convert_llama2c_options;

/* Converts a llama2.c checkpoint (legacy 7-int header or version-1 "ak42")
 * and its tokenizer.bin into a GGUF with llama.cpp's metadata keys, tensor
 * names and layouts for architecture "llama". Writes out_path atomically. */
lm_status lm_convert_llama2c(const char *checkpoint_path, const char *tokenizer_path, const char *out_path,
                             const lm_convert_llama2c_options *options, lm_error *err);

#ifdef __cplusplus
}
#endif
#endif
