/* Text -> tokens for every family: split off special tokens (all of them for
 * trusted text, only user-defined ones otherwise), encode each raw fragment
 * with the family's algorithm, add BOS/EOS as asked. */
#include "tokenizer_internal.h"

#include "../base/bytes.h"

#include <stdlib.h>
#include <string.h>

typedef struct fragment {
    size_t start, len; /* raw text, when token < 0 */
    int32_t token;
} fragment;

typedef struct fragments {
    fragment *v;
    size_t n, cap;
} fragments;

static int frag_push(fragments *f, fragment x) {
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 16;
        fragment *p = realloc(f->v, cap * sizeof *p);
        if (!p) return -1;
        f->v = p;
        f->cap = cap;
    }
    f->v[f->n++] = x;
    return 0;
}

/* llama.cpp's tokenizer_st_partition: each special token, longest first,
 * splits every raw fragment at each of its occurrences. */
static lm_status partition(const lm_tokenizer *tok, const char *text, size_t len, int parse_special, fragments *out,
                           lm_error *err) {
    fragments cur = {0}, next = {0};
    if (frag_push(&cur, (fragment){0, len, -1}) < 0) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    for (size_t s = 0; s < tok->n_specials; s++) {
        int32_t id = tok->specials[s];
        if (!parse_special && tok->types[id] != LM_TOKEN_USER_DEFINED) continue;
        lm_str t = lm_tok_text(tok, id);
        next.n = 0;
        int changed = 0;
        for (size_t i = 0; i < cur.n; i++) {
            fragment f = cur.v[i];
            while (f.token < 0 && f.len >= t.len) {
                const char *hit = lm_memmem(text + f.start, f.len, t.ptr, (size_t)t.len);
                if (!hit) break;
                size_t at = (size_t)(hit - text);
                changed = 1;
                if (at > f.start && frag_push(&next, (fragment){f.start, at - f.start, -1}) < 0) goto oom;
                if (frag_push(&next, (fragment){at, (size_t)t.len, id}) < 0) goto oom;
                f.len -= at + (size_t)t.len - f.start;
                f.start = at + (size_t)t.len;
            }
            if ((f.token >= 0 || f.len > 0) && frag_push(&next, f) < 0) goto oom;
        }
        if (changed) {
            fragments tmp = cur;
            cur = next;
            next = tmp;
        }
    }
    free(next.v);
    *out = cur;
    return LM_OK;
oom:
    free(cur.v);
    free(next.v);
    return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
}

lm_status lm_tokenizer_encode(const lm_tokenizer *tok, const char *text, size_t len, unsigned flags, int32_t **tokens,
                              size_t *n_tokens, lm_error *err) {
    *tokens = NULL;
    *n_tokens = 0;
    token_vec out = {0};
    fragments frags = {0};
    int add_special = (flags & LM_ENCODE_ADD_SPECIAL) != 0;
    lm_status st = LM_OK;
    if (len > 0 && (st = partition(tok, text, len, (flags & LM_ENCODE_PARSE_SPECIAL) != 0, &frags, err))) return st;
    if (add_special && tok->add_bos && tok->bos >= 0 && token_vec_push(&out, tok->bos) < 0) goto oom;
    int prev_special = 1; /* SPM: a dummy-prefix space starts the text and follows each special token */
    for (size_t i = 0; i < frags.n && !st; i++) {
        const fragment *f = &frags.v[i];
        if (f->token >= 0) {
            if (token_vec_push(&out, f->token) < 0) goto oom;
            prev_special = 1;
            continue;
        }
        const char *p = text + f->start;
        switch (tok->family) {
        case FAMILY_SPM: st = lm_spm_encode(tok, p, f->len, tok->add_space_prefix && prev_special, &out, err); break;
        case FAMILY_BPE: st = lm_bpe_encode(tok, p, f->len, &out, err); break;
        case FAMILY_WPM: st = lm_wpm_encode(tok, p, f->len, &out, err); break;
        }
        prev_special = 0;
    }
    if (st) goto fail;
    if (add_special) {
        int32_t last = tok->family == FAMILY_WPM ? tok->sep : tok->add_eos ? tok->eos : -1;
        if (last >= 0 && token_vec_push(&out, last) < 0) goto oom;
    }
    free(frags.v);
    *tokens = out.v;
    *n_tokens = out.n;
    return LM_OK;
oom:
    st = lm_error_set(err, LM_ERR_NOMEM, "out of memory");
fail:
    free(frags.v);
    free(out.v);
    return st;
}
