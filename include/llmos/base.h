/* llmos base: status codes and error messages shared by every module.
 *
 * Library functions return an lm_status and, on failure, fill an lm_error
 * (which may be NULL when the caller does not want the message). Nothing in
 * the library exits or aborts on bad input. */
#ifndef LLMOS_BASE_H
#define LLMOS_BASE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LLMOS_VERSION "0.1.0"

typedef enum lm_status {
    LM_OK = 0,
    LM_ERR_ARG = 1,         /* the caller passed something invalid */
    LM_ERR_IO = 2,          /* a file could not be opened, read or written */
    LM_ERR_FORMAT = 3,      /* input data is malformed or inconsistent */
    LM_ERR_UNSUPPORTED = 4, /* valid input that this build cannot handle */
    LM_ERR_NOMEM = 5,       /* an allocation failed */
    LM_ERR_LIMIT = 6        /* a size or count is past a safety limit */
} lm_status;

typedef struct lm_error {
    lm_status code;
    char message[512];
} lm_error;

/* Sets err (if not NULL) and returns code, so callers can write
 * `return lm_error_set(err, LM_ERR_FORMAT, "bad %s", what);`. */
lm_status lm_error_set(lm_error *err, lm_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Prepends context ("while loading X: ") to an existing message and returns
 * status, so `return lm_error_prefix(err, st, "...")` keeps the failure even
 * when err is NULL. */
lm_status lm_error_prefix(lm_error *err, lm_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

void lm_error_clear(lm_error *err);

/* Progress of long work: what is being done, how much is done, of how much
 * (total -1 when unknown). */
typedef void (*lm_progress_fn)(void *user, const char *stage, int64_t done, int64_t total);

const char *lm_status_name(lm_status status);

#ifdef __cplusplus
}
#endif
#endif
