/* Byte-string helpers missing from ISO C. */
#ifndef LLMOS_BYTES_H
#define LLMOS_BYTES_H

#include <stddef.h>
#include <string.h>

/* First occurrence of needle (nl bytes) in hay (hl bytes), or NULL. */
static inline const char *lm_memmem(const char *hay, size_t hl, const char *needle, size_t nl) {
    if (nl == 0) return hay;
    while (hl >= nl) {
        const char *p = memchr(hay, needle[0], hl - nl + 1);
        if (!p) return NULL;
        if (memcmp(p, needle, nl) == 0) return p;
        hl -= (size_t)(p - hay) + 1;
        hay = p + 1;
    }
    return NULL;
}

#endif
