/* Files: read-only memory maps and atomic writes. */
#ifndef LLMOS_FILE_H
#define LLMOS_FILE_H

#include "llmos/base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A read-only view of a whole file. data is NULL for an empty file. */
typedef struct lm_mapped_file {
    const uint8_t *data;
    size_t size;
    int is_mapped; /* 1: munmap on close; 0: the bytes were malloc'd */
} lm_mapped_file;

lm_status lm_file_map(const char *path, lm_mapped_file *out, lm_error *err);
void lm_file_unmap(lm_mapped_file *file);
/* Lets the OS drop the resident pages wholly inside [p, p + n) of a mapped
 * file (they are read from the file again if touched): for data the caller
 * has copied elsewhere. A no-op for malloc'd bytes or a range outside. */
void lm_file_release_pages(const lm_mapped_file *file, const void *p, size_t n);

/* Writes a file atomically: the content goes to PATH.tmp.PID, is fsync'd and
 * renamed over PATH, so readers see either the old or the whole new file. */
typedef struct lm_atomic_file lm_atomic_file;

lm_status lm_atomic_file_open(const char *path, lm_atomic_file **out, lm_error *err);
lm_status lm_atomic_file_write(lm_atomic_file *f, const void *data, size_t size, lm_error *err);
/* Commits (fsync + rename). The handle is freed either way. */
lm_status lm_atomic_file_commit(lm_atomic_file *f, lm_error *err);
/* Abandons the write and removes the temporary file. */
void lm_atomic_file_abort(lm_atomic_file *f);

#ifdef __cplusplus
}
#endif
#endif
