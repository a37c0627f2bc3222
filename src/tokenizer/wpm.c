/* WordPiece (tokenizer.ggml.model = "bert"), as llama.cpp's llm_tokenizer_wpm:
 * each code point is reduced to the first code point of its NFD
 * decomposition (dropping accents) and lower-cased; whitespace separates
 * words; control characters are dropped; punctuation, ASCII symbols and CJK
 * ideographs are words of their own. Each word, prefixed with U+2581 (the GGUF
 * form of a word start; "##" continuations are stored bare), is split by
 * greedy longest match; a word with no full match becomes [UNK]. */
#include "tokenizer_internal.h"

#include "unicode.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

static int is_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0d) || c == 0x20 || c == 0x85 || c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a) ||
           c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

static int is_chinese(uint32_t c) {
    return (c >= 0x4e00 && c <= 0x9fff) || (c >= 0x3400 && c <= 0x4dbf) || (c >= 0x20000 && c <= 0x2a6df) ||
           (c >= 0x2a700 && c <= 0x2b73f) || (c >= 0x2b740 && c <= 0x2b81f) || (c >= 0x2b920 && c <= 0x2ceaf) ||
           (c >= 0xf900 && c <= 0xfaff) || (c >= 0x2f800 && c <= 0x2fa1f);
}

static uint32_t nfd_first(uint32_t c) {
    utf8proc_int32_t buf[8];
    int last = 0;
    utf8proc_ssize_t n = utf8proc_decompose_char((utf8proc_int32_t)c, buf, 8, UTF8PROC_DECOMPOSE, &last);
    return n > 0 ? (uint32_t)buf[0] : c;
}

/* Greedy longest match of "▁" + word; appends [UNK] if it does not fully match. */
static lm_status encode_word(const lm_tokenizer *tok, const char *word, size_t n, token_vec *out, lm_error *err) {
    size_t first = out->n, max = tok->max_token_len;
    for (size_t i = 0; i < n;) {
        int32_t id = -1;
        size_t j = i + max < n ? i + max : n;
        for (; j > i; j--) {
            if ((id = lm_tok_find(tok, word + i, j - i)) >= 0) break;
        }
        if (id < 0) {
            out->n = first;
            break;
        }
        if (token_vec_push(out, id) < 0) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
        i = j;
    }
    if (out->n == first) {
        if (tok->unk < 0) return lm_error_set(err, LM_ERR_FORMAT, "a word has no tokens and the vocabulary has no unknown token");
        if (token_vec_push(out, tok->unk) < 0) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    }
    return LM_OK;
}

lm_status lm_wpm_encode(const lm_tokenizer *tok, const char *text, size_t len, token_vec *out, lm_error *err) {
    /* A word: "▁" then at most 4 bytes per input byte's code point. */
    char *word = malloc(3 + 4 * len + 4);
    if (!word) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    memcpy(word, "\xe2\x96\x81", 3);
    size_t wn = 3;
    lm_status st = LM_OK;
#define FLUSH()                                                         \
    do {                                                                \
        if (wn > 3 && (st = encode_word(tok, word, wn, out, err))) goto done; \
        wn = 3;                                                         \
    } while (0)
    for (size_t pos = 0; pos < len;) {
        uint32_t c;
        size_t k = lm_utf8_decode((const uint8_t *)text + pos, len - pos, &c);
        if (k == 0) { /* invalid UTF-8: llama.cpp sees U+FFFD, which it drops */
            pos++;
            continue;
        }
        pos += k;
        c = nfd_first(c);
        if (is_space(c)) {
            FLUSH();
            continue;
        }
        utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)c);
        if (c == 0 || c == 0xfffd || cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF ||
            cat == UTF8PROC_CATEGORY_CS || cat == UTF8PROC_CATEGORY_CO || cat == UTF8PROC_CATEGORY_CN) {
            continue;
        }
        uint32_t lower = (uint32_t)utf8proc_tolower((utf8proc_int32_t)c);
        int punct = cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
        int symbol = cat >= UTF8PROC_CATEGORY_SM && cat <= UTF8PROC_CATEGORY_SO;
        if (punct || (c < 0x7f && symbol) || is_chinese(c)) {
            FLUSH();
            wn += lm_utf8_encode(lower, word + wn);
            FLUSH();
        } else {
            wn += lm_utf8_encode(lower, word + wn);
        }
    }
    FLUSH();
#undef FLUSH
done:
    free(word);
    return st;
}
