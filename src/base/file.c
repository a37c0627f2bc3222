#define _DEFAULT_SOURCE /* madvise */
#include "llmos/file.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

lm_status lm_file_map(const char *path, lm_mapped_file *out, lm_error *err) {
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return lm_error_set(err, LM_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return lm_error_set(err, LM_ERR_IO, "cannot stat %s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return lm_error_set(err, LM_ERR_IO, "%s is not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return LM_OK;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED) return lm_error_set(err, LM_ERR_IO, "cannot map %s: %s", path, strerror(e));
    out->data = p;
    out->size = (size_t)st.st_size;
    out->is_mapped = 1;
    return LM_OK;
}

void lm_file_release_pages(const lm_mapped_file *file, const void *p, size_t n) {
    if (!file || !file->is_mapped || !file->data) return;
    uintptr_t lo = (uintptr_t)p, hi = lo + n, base = (uintptr_t)file->data;
    if (lo < base || hi < lo || hi > base + file->size) return;
    long page_size = sysconf(_SC_PAGESIZE);
    uintptr_t page = page_size > 0 ? (uintptr_t)page_size : 4096;
    lo = (lo + page - 1) / page * page;
    hi = hi / page * page;
    if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

void lm_file_unmap(lm_mapped_file *file) {
    if (!file || !file->data) return;
    if (file->is_mapped) munmap((void *)file->data, file->size);
    else free((void *)file->data);
    memset(file, 0, sizeof *file);
}

struct lm_atomic_file {
    int fd;
    char *path;
    char *tmp_path;
};

lm_status lm_atomic_file_open(const char *path, lm_atomic_file **out, lm_error *err) {
    *out = NULL;
    lm_atomic_file *f = calloc(1, sizeof *f);
    size_t n = strlen(path) + 32;
    if (!f || !(f->path = strdup(path)) || !(f->tmp_path = malloc(n))) {
        if (f) free(f->path);
        free(f);
        return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    }
    snprintf(f->tmp_path, n, "%s.tmp.%ld", path, (long)getpid());
    f->fd = open(f->tmp_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (f->fd < 0) {
        lm_error_set(err, LM_ERR_IO, "cannot create %s: %s", f->tmp_path, strerror(errno));
        free(f->path);
        free(f->tmp_path);
        free(f);
        return LM_ERR_IO;
    }
    *out = f;
    return LM_OK;
}

lm_status lm_atomic_file_write(lm_atomic_file *f, const void *data, size_t size, lm_error *err) {
    const uint8_t *p = data;
    while (size > 0) {
        ssize_t w = write(f->fd, p, size > (1u << 30) ? (1u << 30) : size);
        if (w < 0) {
            if (errno == EINTR) continue;
            return lm_error_set(err, LM_ERR_IO, "cannot write %s: %s", f->tmp_path, strerror(errno));
        }
        p += w;
        size -= (size_t)w;
    }
    return LM_OK;
}

static void atomic_file_release(lm_atomic_file *f) {
    free(f->path);
    free(f->tmp_path);
    free(f);
}

void lm_atomic_file_abort(lm_atomic_file *f) {
    if (!f) return;
    close(f->fd);
    unlink(f->tmp_path);
    atomic_file_release(f);
}

lm_status lm_atomic_file_commit(lm_atomic_file *f, lm_error *err) {
    lm_status st = LM_OK;
    if (fsync(f->fd) != 0) {
        st = lm_error_set(err, LM_ERR_IO, "cannot sync %s: %s", f->tmp_path, strerror(errno));
    }
    if (close(f->fd) != 0 && st == LM_OK) {
        st = lm_error_set(err, LM_ERR_IO, "cannot close %s: %s", f->tmp_path, strerror(errno));
    }
    if (st == LM_OK && rename(f->tmp_path, f->path) != 0) {
        st = lm_error_set(err, LM_ERR_IO, "cannot rename %s to %s: %s", f->tmp_path, f->path,
                          strerror(errno));
    }
    if (st != LM_OK) {
        unlink(f->tmp_path);
    } else {
        /* Make the rename itself durable. */
        char *dir_copy = strdup(f->path);
        if (dir_copy) {
            int dfd = open(dirname(dir_copy), O_RDONLY);
            if (dfd >= 0) {
                fsync(dfd);
                close(dfd);
            }
            free(dir_copy);
        }
    }
    atomic_file_release(f);
    return st;
}
