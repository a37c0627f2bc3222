#include "strmap.h"

#include <stdlib.h>
#include <string.h>

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

int lm_strmap_init(lm_strmap *m, size_t expected) {
    memset(m, 0, sizeof *m);
    size_t cap = 16;
    while (cap < expected * 2 + 1) {
        if (cap > SIZE_MAX / 4) return -1;
        cap *= 2;
    }
    m->keys = calloc(cap, sizeof *m->keys);
    m->key_lens = calloc(cap, sizeof *m->key_lens);
    m->values = calloc(cap, sizeof *m->values);
    if (!m->keys || !m->key_lens || !m->values) {
        lm_strmap_free(m);
        return -1;
    }
    m->cap = cap;
    return 0;
}

void lm_strmap_free(lm_strmap *m) {
    free(m->keys);
    free(m->key_lens);
    free(m->values);
    memset(m, 0, sizeof *m);
}

static size_t find_slot(const lm_strmap *m, const char *key, size_t len) {
    size_t i = (size_t)hash_bytes(key, len) & (m->cap - 1);
    while (m->keys[i]) {
        if (m->key_lens[i] == len && memcmp(m->keys[i], key, len) == 0) return i;
        i = (i + 1) & (m->cap - 1);
    }
    return i;
}

int lm_strmap_put(lm_strmap *m, const char *key, size_t len, int32_t value) {
    if (len > UINT32_MAX) return -1;
    if ((m->count + 1) * 2 > m->cap) {
        lm_strmap bigger;
        if (lm_strmap_init(&bigger, m->count * 2 + 2) != 0) return -1;
        for (size_t i = 0; i < m->cap; i++) {
            if (m->keys[i]) {
                size_t j = find_slot(&bigger, m->keys[i], m->key_lens[i]);
                bigger.keys[j] = m->keys[i];
                bigger.key_lens[j] = m->key_lens[i];
                bigger.values[j] = m->values[i];
            }
        }
        bigger.count = m->count;
        lm_strmap_free(m);
        *m = bigger;
    }
    size_t i = find_slot(m, key, len);
    if (m->keys[i]) return 1;
    m->keys[i] = key;
    m->key_lens[i] = (uint32_t)len;
    m->values[i] = value;
    m->count++;
    return 0;
}

int32_t lm_strmap_get(const lm_strmap *m, const char *key, size_t len) {
    if (m->cap == 0) return -1;
    size_t i = find_slot(m, key, len);
    return m->keys[i] ? m->values[i] : -1;
}
