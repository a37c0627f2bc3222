/* Small helpers shared by the subcommands: strict number parsing and
 * consistent error reporting. */
#ifndef LLMOS_CLI_ARGS_H
#define LLMOS_CLI_ARGS_H

#include <stddef.h>
#include <stdint.h>

#include "llmos/model.h"

/* Each returns 0 on success; on failure prints "llmos: FLAG: ..." and returns -1. */
int arg_int64(const char *flag, const char *text, int64_t lo, int64_t hi, int64_t *out);
int arg_float(const char *flag, const char *text, double lo, double hi, float *out);
int arg_uint64(const char *flag, const char *text, uint64_t *out);

/* For "--flag VALUE": returns argv[*i + 1] and advances, or prints an error
 * and returns NULL when the value is missing. */
const char *arg_value(int argc, char **argv, int *i);

/* Matches argv[i] against a short and a long spelling (short may be NULL). */
int arg_is(const char *arg, const char *short_name, const char *long_name);

/* Prints "llmos: <message>" to stderr. */
void cli_error(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

double cli_now_seconds(void);

/* The default thread count: the online cores (at least 1). */
int cli_default_threads(void);
/* For "-t N": parses the value after argv[*i] into *out (1..1024); 0 on
 * success, -1 after printing the error. */
int arg_threads(int argc, char **argv, int *i, int *out);
/* For "--kv TYPE": f16 or f32 into *out; 0 on success, -1 after printing the error. */
int arg_kv_type(int argc, char **argv, int *i, lm_kv_type *out);

/* Reads a whole file (or standard input when path is NULL) into a malloc'd
 * buffer with a NUL after the *len bytes; NULL on failure. */
char *cli_read_all(const char *path, size_t *len);

#endif
