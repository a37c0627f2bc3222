/* UTF-8 helpers and GPT-2's byte <-> unicode mapping (byte-level BPE stores
 * every byte as a printable code point so token texts are valid UTF-8). */
#ifndef LLMOS_UNICODE_H
#define LLMOS_UNICODE_H

#include <stddef.h>
#include <stdint.h>

/* Length of the well-formed UTF-8 sequence at s (n bytes left), else 1. */
size_t lm_utf8_len(const uint8_t *s, size_t n);
/* Decodes one well-formed sequence; returns its length, or 0 if malformed. */
size_t lm_utf8_decode(const uint8_t *s, size_t n, uint32_t *cp);
/* Encodes cp into out (>= 4 bytes); returns the length. */
size_t lm_utf8_encode(uint32_t cp, char *out);

/* byte -> code point of GPT-2's bytes_to_unicode. */
uint32_t lm_byte_to_unicode(uint8_t b);
/* code point -> byte, or -1 if cp is not in the mapping. */
int lm_unicode_to_byte(uint32_t cp);
/* The order in which GPT-2 lists the 256 byte tokens: printable bytes
 * ('!'..'~', 0xA1..0xAC, 0xAE..0xFF) first, then the rest ascending. */
uint8_t lm_gpt2_byte_order(int i);

/* Appends the byte-level encoding of len bytes (each byte as its UTF-8
 * mapped code point, at most 2 bytes each) to out; returns bytes written. */
size_t lm_bytes_to_unicode_text(const uint8_t *in, size_t len, char *out);

#endif
