#define PCRE2_CODE_UNIT_WIDTH 8
#include "pretok.h"

#include <pcre2.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

struct lm_pretok {
    size_t n;
    pcre2_code *re[LM_PRETOK_MAX_PATTERNS];
    pcre2_match_context *mctx;
};

const char *const lm_pretok_gpt2_pattern =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
const char *const lm_pretok_gpt4_pattern =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* The expressions llama.cpp (src/llama-vocab.cpp, 2025) uses for each
 * tokenizer.ggml.pre, with its flags. "gpt-neox" is not a name llama.cpp
 * knows; NeoX-style vocabularies (mpt, olmo) use GPT-2's expression, so
 * llmos maps it there too. */
#define P_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define P_LLAMA3 "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define P_QWEN2 "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define P_TEKKEN "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define P_GPT4O "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define P_BLOOM " ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{0964}\\x{06D4}\\x{060C})]+"

static const lm_pretok_def pre_defs[] = {
    {"default", {"[\\p{P}\\$\\+<=>\\^~\\|]+", P_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"}, 0, 0},
    {"llama3,llama-v3,llama-bpe,falcon3,falcon-h1,pixtral,midm-2.0,lfm2", {P_LLAMA3}, 1, 1},
    {"dbrx,smaug-bpe,glm4,chatglm-bpe", {P_LLAMA3}, 0, 0},
    /* Code points written out: the original's Letterlike and Greek Extended
     * characters (U+2126, U+212A, U+1FBE, U+1F7D, U+1FD3, U+1FDB) must not be
     * NFC-normalised into their Greek look-alikes. */
    {"deepseek-llm",
     {"[\\r\\n]", "\\s?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}\\x{1C4}-\\x{293}\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}\\x{37F}\\x{386}\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}]+", "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+", "\\s+$", "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+", "\\p{N}+"}, 0, 0},
    {"deepseek-coder", {"[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+", "\\p{N}"}, 0, 0},
    {"falcon", {"[\\p{P}\\$\\+<=>\\^~\\|`]+", P_GPT2, "[0-9][0-9][0-9]"}, 0, 0},
    {"starcoder,refact,command-r,smollm,codeshell,exaone,minerva-7b", {"\\p{N}", P_GPT2}, 0, 0},
    {"gpt-2,phi-2,mpt,olmo,jais,trillion,granite-docling,gpt-neox,jina-es,jina-de,gigachat,jina-v1-en,"
     "jina-v2-es,jina-v2-de,jina-v2-code,roberta-bpe,a.x-4.0,mellum,modern-bert,exaone4",
     {P_GPT2}, 0, 0},
    {"qwen2,deepseek-r1-qwen,kormo,megrez,stablelm2,hunyuan,solar-open", {P_QWEN2}, 0, 0},
    {"poro-chat,bloom,gpt3-finnish", {P_BLOOM}, 0, 0},
    {"viking", {P_BLOOM, "\\p{N}"}, 0, 0},
    {"tekken", {P_TEKKEN}, 1, 1},
    {"gpt-4o,llama4,minimax-m2", {P_GPT4O}, 0, 0},
};

/* tiktoken's spelling of GPT-2's expression (as CS336 uses it); same language. */
static const char *const gpt2_pattern_tiktoken =
    "'(?:[sdmt]|ll|ve|re)| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

const char *lm_pretok_name_for_pattern(const char *pattern) {
    if (strcmp(pattern, lm_pretok_gpt2_pattern) == 0 || strcmp(pattern, gpt2_pattern_tiktoken) == 0) return "gpt-2";
    if (strcmp(pattern, lm_pretok_gpt4_pattern) == 0) return "llama-bpe";
    return NULL;
}

static int name_in_list(const char *list, const char *name, size_t len) {
    for (const char *p = list; *p;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == len && memcmp(p, name, len) == 0) return 1;
        if (!end) break;
        p = end + 1;
    }
    return 0;
}

const lm_pretok_def *lm_pretok_find_def(const char *name, size_t len) {
    if (len == 0) name = "default", len = 7; /* llama.cpp: missing pre-tokenizer -> default */
    for (size_t i = 0; i < sizeof pre_defs / sizeof *pre_defs; i++) {
        if (name_in_list(pre_defs[i].names, name, len)) return &pre_defs[i];
    }
    return NULL;
}

lm_status lm_pretok_for_name(const char *name, size_t name_len, lm_pretok **out, lm_error *err) {
    const lm_pretok_def *d = lm_pretok_find_def(name, name_len);
    if (!d) {
        *out = NULL;
        return lm_error_set(err, LM_ERR_UNSUPPORTED, "unknown pre-tokenizer '%.*s'", (int)(name_len > 64 ? 64 : name_len), name);
    }
    size_t n = 0;
    while (n < LM_PRETOK_MAX_PATTERNS && d->patterns[n]) n++;
    return lm_pretok_compile(d->patterns, n, out, err);
}

/* llama.cpp's \s is exactly these 25 code points (PCRE2's Unicode \s lacks
 * U+0085); patterns are rewritten to spell them out. */
#define SPACE_MEMBERS "\\t\\n\\x{0B}\\f\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"

static char *rewrite_spaces(const char *pattern) {
    size_t n = strlen(pattern), escapes = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        if (pattern[i] == '\\') escapes += pattern[i + 1] == 's' || pattern[i + 1] == 'S', i++;
    }
    /* Each \s or \S becomes at most "[^" SPACE_MEMBERS "]". */
    size_t cap = n + escapes * (sizeof SPACE_MEMBERS + 3) + 1;
    char *out = malloc(cap), *o = out;
    if (!out) return NULL;
    int in_class = 0;
    for (size_t i = 0; i < n; i++) {
        char c = pattern[i];
        if (c == '\\' && i + 1 < n) {
            char e = pattern[i + 1];
            if (e == 's' || (e == 'S' && !in_class)) {
                const char *open = in_class ? "" : e == 's' ? "[" : "[^", *close = in_class ? "" : "]";
                o += sprintf(o, "%s%s%s", open, SPACE_MEMBERS, close);
            } else {
                *o++ = c;
                *o++ = e;
            }
            i++;
            continue;
        }
        if (c == '[' && !in_class) {
            in_class = 1;
            *o++ = c;
            if (i + 1 < n && pattern[i + 1] == '^') *o++ = pattern[++i];
            if (i + 1 < n && pattern[i + 1] == ']') *o++ = pattern[++i]; /* a literal ] first in a class */
            continue;
        }
        if (c == ']' && in_class) in_class = 0;
        *o++ = c;
    }
    *o = '\0';
    return out;
}

lm_status lm_pretok_compile(const char *const *patterns, size_t n_patterns, lm_pretok **out, lm_error *err) {
    *out = NULL;
    if (n_patterns == 0 || n_patterns > LM_PRETOK_MAX_PATTERNS) {
        return lm_error_set(err, LM_ERR_ARG, "need 1 to %d split expressions", LM_PRETOK_MAX_PATTERNS);
    }
    lm_pretok *p = calloc(1, sizeof *p);
    if (!p) return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    /* Bounds backtracking, so no expression can hang on hostile text. */
    p->mctx = pcre2_match_context_create(NULL);
    if (!p->mctx) {
        free(p);
        return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    }
    pcre2_set_match_limit(p->mctx, 10u * 1000 * 1000);
    pcre2_set_depth_limit(p->mctx, 100000);
    for (size_t i = 0; i < n_patterns; i++) {
        int code;
        PCRE2_SIZE offset;
        char *rewritten = rewrite_spaces(patterns[i]);
        if (!rewritten) {
            lm_pretok_free(p);
            return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
        }
        p->re[i] = pcre2_compile((PCRE2_SPTR)rewritten, PCRE2_ZERO_TERMINATED,
                                 PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &code, &offset, NULL);
        free(rewritten);
        if (!p->re[i]) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(code, msg, sizeof msg);
            lm_pretok_free(p);
            return lm_error_set(err, LM_ERR_ARG, "split expression %zu: %s at offset %zu", i + 1, (const char *)msg,
                                (size_t)offset);
        }
        p->n = i + 1;
        pcre2_jit_compile(p->re[i], PCRE2_JIT_COMPLETE); /* falls back to the interpreter if JIT is unavailable */
    }
    *out = p;
    return LM_OK;
}

void lm_pretok_free(lm_pretok *p) {
    if (!p) return;
    for (size_t i = 0; i < p->n; i++) pcre2_code_free(p->re[i]);
    pcre2_match_context_free(p->mctx);
    free(p);
}

typedef struct split_state {
    const lm_pretok *p;
    pcre2_match_data *md[LM_PRETOK_MAX_PATTERNS];
    lm_pretok_piece_fn piece;
    void *user;
    lm_status status;
    lm_error *err;
} split_state;

static void split_level(split_state *s, size_t level, const char *text, size_t len);

static void emit(split_state *s, size_t level, const char *text, size_t len) {
    if (len == 0 || s->status) return;
    if (level + 1 < s->p->n) {
        split_level(s, level + 1, text, len);
    } else {
        s->status = s->piece(s->user, text, len);
    }
}

static void split_level(split_state *s, size_t level, const char *text, size_t len) {
    pcre2_code *re = s->p->re[level];
    pcre2_match_data *md = s->md[level];
    size_t pos = 0, gap = 0;
    while (pos < len && !s->status) {
        int rc = pcre2_match(re, (PCRE2_SPTR)text, len, pos, 0, md, s->p->mctx);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            s->status = lm_error_set(s->err, LM_ERR_LIMIT, "pre-tokenizer: %s", (const char *)msg);
            return;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t start = ov[0], end = ov[1];
        if (end == start) {
            /* An empty match: step over one character (or invalid byte). */
            pos = start + 1;
            while (pos < len && ((uint8_t)text[pos] & 0xc0) == 0x80) pos++;
            continue;
        }
        emit(s, level, text + gap, start - gap);
        emit(s, level, text + start, end - start);
        gap = pos = end;
    }
    emit(s, level, text + gap, len - gap);
}

lm_status lm_pretok_split(const lm_pretok *p, const char *text, size_t len, lm_pretok_piece_fn piece, void *user,
                          lm_error *err) {
    split_state s = {p, {0}, piece, user, LM_OK, err};
    for (size_t i = 0; i < p->n; i++) {
        s.md[i] = pcre2_match_data_create_from_pattern(p->re[i], NULL);
        if (!s.md[i]) s.status = lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    }
    if (!s.status) split_level(&s, 0, text, len);
    for (size_t i = 0; i < p->n; i++) pcre2_match_data_free(s.md[i]);
    return s.status;
}
