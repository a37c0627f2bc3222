/* Per-thread scratch buffers (scratch.h). */
#include "scratch.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct {
    void *p[LM_SCRATCH_SLOTS];
    size_t bytes[LM_SCRATCH_SLOTS];
} scratch_set;

static pthread_key_t key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static int key_ok;

static void set_free(void *p) {
    scratch_set *s = p;
    for (int i = 0; i < LM_SCRATCH_SLOTS; i++) free(s->p[i]);
    free(s);
}

static void key_init(void) { key_ok = pthread_key_create(&key, set_free) == 0; }

/* This thread's set, NULL if out of memory. */
static scratch_set *thread_set(void) {
    pthread_once(&key_once, key_init);
    if (!key_ok) return NULL;
    scratch_set *s = pthread_getspecific(key);
    if (!s && (s = calloc(1, sizeof *s)) && pthread_setspecific(key, s) != 0) {
        free(s);
        s = NULL;
    }
    return s;
}

void *lm_scratch(lm_scratch_slot slot, size_t bytes) {
    scratch_set *s = (unsigned)slot < LM_SCRATCH_SLOTS ? thread_set() : NULL;
    if (!s || bytes > SIZE_MAX - 63) return NULL;
    bytes = (bytes + 63) & ~(size_t)63; /* aligned_alloc wants a multiple of the alignment */
    if (bytes == 0) bytes = 64;
    if (s->bytes[slot] >= bytes) return s->p[slot];
    free(s->p[slot]);
    s->p[slot] = aligned_alloc(64, bytes);
    s->bytes[slot] = s->p[slot] ? bytes : 0;
    return s->p[slot];
}
