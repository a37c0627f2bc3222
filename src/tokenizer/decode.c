/* Tokens -> bytes: per token (lm_tokenizer_decode_token) and streaming
 * (lm_detokenizer), which holds a UTF-8 character split across tokens. */
#include "tokenizer_internal.h"

#include "unicode.h"

#include <stdlib.h>
#include <string.h>

/* Token text with U+2581 as ' ' (SentencePiece, WordPiece). */
static int64_t unescape_spaces(lm_str s, char *buf, size_t cap) {
    size_t n = 0;
    for (uint64_t i = 0; i < s.len; i++) {
        if (i + 2 < s.len && memcmp(s.ptr + i, "\xe2\x96\x81", 3) == 0) {
            if (n >= cap) return -1;
            buf[n++] = ' ';
            i += 2;
        } else {
            if (n >= cap) return -1;
            buf[n++] = s.ptr[i];
        }
    }
    return (int64_t)n;
}

/* Byte-level text -> the bytes it stands for; characters outside the
 * mapping (never in a well-formed vocabulary) are copied as they are. */
static int64_t unmap_bytes(lm_str s, char *buf, size_t cap) {
    size_t n = 0;
    for (uint64_t i = 0; i < s.len;) {
        uint32_t cp;
        size_t k = lm_utf8_decode((const uint8_t *)s.ptr + i, (size_t)(s.len - i), &cp);
        int b = k ? lm_unicode_to_byte(cp) : -1;
        if (b >= 0) {
            if (n >= cap) return -1;
            buf[n++] = (char)b;
        } else {
            if (k == 0) k = 1;
            if (n + k > cap) return -1;
            memcpy(buf + n, s.ptr + i, k);
            n += k;
        }
        i += k;
    }
    return (int64_t)n;
}

static int byte_token_value(lm_str s) {
    if (s.len != 6 || memcmp(s.ptr, "<0x", 3) != 0 || s.ptr[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s.ptr[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

int64_t lm_tokenizer_decode_token(const lm_tokenizer *tok, int32_t id, unsigned flags, char *buf, size_t cap) {
    if (id < 0 || id >= tok->n_vocab) return -1;
    lm_str s = lm_tok_text(tok, id);
    int64_t n;
    switch ((lm_token_type)tok->types[id]) {
    case LM_TOKEN_CONTROL:
    case LM_TOKEN_UNKNOWN:
        if (!(flags & LM_DECODE_SPECIAL)) return 0;
        /* fall through */
    case LM_TOKEN_USER_DEFINED:
        if (s.len > cap) return -1;
        memcpy(buf, s.ptr, (size_t)s.len);
        n = (int64_t)s.len;
        break;
    case LM_TOKEN_UNUSED:
        return 0;
    case LM_TOKEN_BYTE: {
        int v = byte_token_value(s);
        if (v >= 0) {
            if (cap < 1) return -1;
            buf[0] = (char)v;
            return 1;
        }
    }
        /* fall through */
    default:
        n = tok->family == FAMILY_BPE ? unmap_bytes(s, buf, cap) : unescape_spaces(s, buf, cap);
        break;
    }
    if (n > 0 && (flags & LM_DECODE_STRIP_SPACE) && buf[0] == ' ') {
        memmove(buf, buf + 1, (size_t)n - 1);
        n--;
    }
    return n;
}

struct lm_detokenizer {
    const lm_tokenizer *tok;
    unsigned flags;
    int at_start;     /* nothing but BOS so far: SPM strips the dummy-prefix space */
    char pending[4];  /* the start of a character split across tokens */
    size_t n_pending;
    char *scratch;
    size_t scratch_cap;
};

lm_status lm_detokenizer_init(const lm_tokenizer *tok, unsigned flags, lm_detokenizer **out, lm_error *err) {
    *out = NULL;
    lm_detokenizer *d = calloc(1, sizeof *d);
    if (!d) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    d->tok = tok;
    d->flags = flags & LM_DECODE_SPECIAL;
    d->at_start = 1;
    d->scratch_cap = lm_tokenizer_max_piece_len(tok) + 4;
    if (!(d->scratch = malloc(d->scratch_cap))) {
        free(d);
        return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    }
    *out = d;
    return LM_OK;
}

void lm_detokenizer_free(lm_detokenizer *d) {
    if (!d) return;
    free(d->scratch);
    free(d);
}

size_t lm_detokenizer_max_output(const lm_detokenizer *d) { return d->scratch_cap; }

/* Length of the incomplete UTF-8 character at the end of s, 0 if none. */
static size_t incomplete_tail(const char *s, size_t n) {
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        uint8_t c = (uint8_t)s[n - back];
        if ((c & 0xc0) == 0x80) continue; /* continuation: look further back */
        size_t need = (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 1;
        return need > back ? back : 0;
    }
    return 0;
}

int64_t lm_detokenizer_push(lm_detokenizer *d, int32_t id, char *out, size_t cap) {
    const lm_tokenizer *tok = d->tok;
    unsigned flags = d->flags;
    /* The first word's space is the SentencePiece dummy prefix or the
     * WordPiece word-start mark, not text. */
    if (d->at_start && (tok->add_space_prefix || tok->family == FAMILY_WPM)) flags |= LM_DECODE_STRIP_SPACE;
    memcpy(d->scratch, d->pending, d->n_pending);
    int64_t n = lm_tokenizer_decode_token(tok, id, flags, d->scratch + d->n_pending, d->scratch_cap - d->n_pending);
    if (n < 0) return -1;
    if (id != tok->bos && (n > 0 || tok->types[id] != LM_TOKEN_CONTROL)) d->at_start = 0;
    size_t total = d->n_pending + (size_t)n, hold = incomplete_tail(d->scratch, total);
    if (total - hold > cap) return -1;
    memcpy(out, d->scratch, total - hold);
    memcpy(d->pending, d->scratch + total - hold, hold);
    d->n_pending = hold;
    return (int64_t)(total - hold);
}

int64_t lm_detokenizer_flush(lm_detokenizer *d, char *out, size_t cap) {
    if (d->n_pending > cap) return -1;
    memcpy(out, d->pending, d->n_pending);
    int64_t n = (int64_t)d->n_pending;
    d->n_pending = 0;
    return n;
}
