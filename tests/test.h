/* A minimal test harness: CHECK records a failure and carries on, so one run
 * reports every broken expectation. Each test program ends with TEST_END. */
#ifndef LLMOS_TEST_H
#define LLMOS_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_failures_;
static int test_checks_;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        test_checks_++;                                                              \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            test_failures_++;                                                        \
        }                                                                            \
    } while (0)

#define CHECKF(cond, ...)                                                            \
    do {                                                                             \
        test_checks_++;                                                              \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                            \
            fputc('\n', stderr);                                                     \
            test_failures_++;                                                        \
        }                                                                            \
    } while (0)

/* Fatal: the rest of the test cannot run. */
#define REQUIRE(cond)                                                                \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: REQUIRE failed: %s\n", __FILE__, __LINE__, #cond); \
            exit(1);                                                                 \
        }                                                                            \
    } while (0)

#define TEST_END()                                                                   \
    do {                                                                             \
        printf("%d checks, %d failed\n", test_checks_, test_failures_);              \
        return test_failures_ ? 1 : 0;                                               \
    } while (0)

#ifndef LLMOS_FIXTURES
#define LLMOS_FIXTURES "tests/fixtures"
#endif

static inline char *test_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    if (p) {
        p[n] = '\0';
        if (len) *len = (size_t)n;
    }
    return p;
}

#endif
