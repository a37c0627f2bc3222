/* A string -> int32 hash map with open addressing. Keys are borrowed: they
 * must outlive the map. Built once, then read-only (safe to share). */
#ifndef LLMOS_STRMAP_H
#define LLMOS_STRMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct lm_strmap {
    const char **keys;
    uint32_t *key_lens;
    int32_t *values;
    size_t cap; /* power of two, > 2 * count */
    size_t count;
} lm_strmap;

/* 0 on success, -1 on allocation failure. */
int lm_strmap_init(lm_strmap *m, size_t expected);
void lm_strmap_free(lm_strmap *m);
/* Inserts or, if the key exists, keeps the first value (returns 1). */
int lm_strmap_put(lm_strmap *m, const char *key, size_t len, int32_t value);
/* -1 when absent. */
int32_t lm_strmap_get(const lm_strmap *m, const char *key, size_t len);

#endif
