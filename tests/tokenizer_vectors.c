/* The llama.cpp tokenizer test vectors through the command line:
 *   tokenizer_vectors LLMOS_BINARY DIR
 * For every DIR/NAME.gguf with NAME.gguf.inp and NAME.gguf.out beside it,
 * each test string of the .inp (separated by "\n__ggml_vocab_test__\n", as
 * llama.cpp's test-tokenizer-0 reads them) goes through
 * `llmos tokenize NAME.gguf --file CASE --ids --no-bos` (add_special and
 * parse_special off, as in llama.cpp's test) and must print the ids of the
 * matching .out line. Drop another triple into DIR and it is checked too. */
#include "test.h"

#include <dirent.h>
#include <unistd.h>

static const char *SEP = "\n__ggml_vocab_test__\n";

static void trim(char *s) {
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\r')) s[--n] = '\0';
    size_t k = 0;
    while (s[k] == ' ') k++;
    memmove(s, s + k, n - k + 1);
}

static void check_triple(const char *llmos, const char *dir, const char *name) {
    char gguf[1024], inp[1100], outp[1100], tmp[] = "/tmp/llmos-vec-XXXXXX";
    snprintf(gguf, sizeof gguf, "%s/%s", dir, name);
    snprintf(inp, sizeof inp, "%s.inp", gguf);
    snprintf(outp, sizeof outp, "%s.out", gguf);
    size_t in_len = 0;
    char *in = test_read_file(inp, &in_len), *out = test_read_file(outp, NULL);
    if (!in || !out) {
        printf("%s: no .inp/.out beside it, skipped\n", name);
        free(in);
        free(out);
        return;
    }
    int fd = mkstemp(tmp);
    REQUIRE(fd >= 0);
    close(fd);
    int cases = 0, passed = 0;
    /* .out lines in order; empty lines are empty expectations (not skipped). */
    char *expect = out, *line_end = strchr(expect, '\n');
    if (line_end) *line_end = '\0';
    size_t pos = 0, sep_len = strlen(SEP);
    while (pos < in_len) {
        const char *next = strstr(in + pos, SEP);
        size_t len = next ? (size_t)(next - (in + pos)) : in_len - pos;
        FILE *f = fopen(tmp, "wb");
        REQUIRE(f && fwrite(in + pos, 1, len, f) == len && fclose(f) == 0);
        char cmd[4096], got[65536] = "";
        snprintf(cmd, sizeof cmd, "'%s' tokenize '%s' --file '%s' --ids --no-bos", llmos, gguf, tmp);
        FILE *p = popen(cmd, "r");
        REQUIRE(p);
        size_t n = fread(got, 1, sizeof got - 1, p);
        got[n] = '\0';
        int rc = pclose(p);
        trim(got);
        char want[65536] = "";
        if (expect) {
            snprintf(want, sizeof want, "%s", expect);
            trim(want);
        }
        cases++;
        if (rc == 0 && expect && strcmp(got, want) == 0) {
            passed++;
        } else {
            fprintf(stderr, "%s case %d: '%.60s'\n  want: %.200s\n  got:  %.200s (exit %d)\n", name, cases, in + pos, want, got, rc);
        }
        if (line_end) {
            expect = line_end + 1;
            line_end = strchr(expect, '\n');
            if (line_end) *line_end = '\0';
        } else {
            expect = NULL;
        }
        if (!next) break;
        pos += len + sep_len;
    }
    CHECKF(cases > 0 && passed == cases, "%s: %d of %d vectors passed", name, passed, cases);
    printf("%s: %d/%d\n", name, passed, cases);
    unlink(tmp);
    free(in);
    free(out);
}

int main(int argc, char **argv) {
    REQUIRE(argc == 3);
    DIR *d = opendir(argv[2]);
    REQUIRE(d);
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n > 5 && strcmp(e->d_name + n - 5, ".gguf") == 0) {
            check_triple(argv[1], argv[2], e->d_name);
            files++;
        }
    }
    closedir(d);
    CHECK(files > 0);
    TEST_END();
}
