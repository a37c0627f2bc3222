#include "args.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void cli_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("llmos: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int arg_int64(const char *flag, const char *text, int64_t lo, int64_t hi, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || *end != '\0') {
        cli_error("%s: '%s' is not an integer", flag, text);
        return -1;
    }
    if (v < lo || v > hi) {
        cli_error("%s: %lld is outside %lld..%lld", flag, v, (long long)lo, (long long)hi);
        return -1;
    }
    *out = v;
    return 0;
}

int arg_uint64(const char *flag, const char *text, uint64_t *out) {
    char *end;
    errno = 0;
    if (text[0] == '-') {
        cli_error("%s: '%s' must not be negative", flag, text);
        return -1;
    }
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || end == text || *end != '\0') {
        cli_error("%s: '%s' is not a non-negative integer", flag, text);
        return -1;
    }
    *out = v;
    return 0;
}

int arg_float(const char *flag, const char *text, double lo, double hi, float *out) {
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end != '\0' || !isfinite(v)) {
        cli_error("%s: '%s' is not a number", flag, text);
        return -1;
    }
    if (v < lo || v > hi) {
        cli_error("%s: %g is outside %g..%g", flag, v, lo, hi);
        return -1;
    }
    *out = (float)v;
    return 0;
}

const char *arg_value(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        cli_error("%s needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

int arg_is(const char *arg, const char *short_name, const char *long_name) {
    return (short_name && strcmp(arg, short_name) == 0) || (long_name && strcmp(arg, long_name) == 0);
}

double cli_now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

char *cli_read_all(const char *path, size_t *len) {
    FILE *f = path ? fopen(path, "rb") : stdin;
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
        if (n == cap) {
            char *p = realloc(buf, 2 * cap + 1);
            if (!p) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = p;
            cap *= 2;
        }
    }
    if (buf && ferror(f)) {
        free(buf);
        buf = NULL;
    }
    if (path) fclose(f);
    if (buf) {
        buf[n] = '\0';
        *len = n;
    }
    return buf;
}

int cli_default_threads(void) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return cores > 0 ? (int)cores : 1;
}

int arg_threads(int argc, char **argv, int *i, int *out) {
    const char *flag = argv[*i], *v = arg_value(argc, argv, i);
    int64_t n;
    if (!v || arg_int64(flag, v, 1, 1024, &n)) return -1;
    *out = (int)n;
    return 0;
}

int arg_kv_type(int argc, char **argv, int *i, lm_kv_type *out) {
    const char *flag = argv[*i], *v = arg_value(argc, argv, i);
    if (!v) return -1;
    if (lm_kv_type_parse(v, out)) {
        cli_error("%s: '%s' is not a KV cache type (f16 or f32)", flag, v);
        return -1;
    }
    return 0;
}
