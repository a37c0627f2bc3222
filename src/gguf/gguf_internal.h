/* Shared between the GGUF reader and writer; not part of the public API. */
#ifndef LLMOS_GGUF_INTERNAL_H
#define LLMOS_GGUF_INTERNAL_H

#include "llmos/gguf.h"

/* GGUF caps keys at 65535 bytes; tensor names at GGML_MAX_NAME - 1. */
#define LM_GGUF_MAX_KEY_LEN 65535u
/* No real model has anywhere near this many; it bounds allocations. */
#define LM_GGUF_MAX_TENSORS (1u << 20)
#define LM_GGUF_MAX_KVS (1u << 20)

int lm_gguf_valid_name(const char *s, uint64_t len, uint64_t max_len);

#endif
