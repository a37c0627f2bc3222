/* Every kernel of every instruction-set path this CPU runs, against the
 * scalar kernel on the same activations: random rows (valid quantised data
 * and raw random blocks), awkward lengths (one block, odd counts, tails not a
 * multiple of the vector width), many rows. */
#include "base/cpu.h"
#include "base/rng.h"
#include "llmos/types.h"
#include "tensor/attention.h"
#include "tensor/fp16.h"
#include "tensor/dequant_fast.h"
#include "tensor/gemm.h"
#include "tensor/kernels.h"
#include "tensor/ops.h"
#include "tensor/packed.h"
#include "test.h"

#include <math.h>

static lm_rng rng;

static float uniform(float lo, float hi) { return lo + (hi - lo) * (float)lm_rng_uniform(&rng); }

/* Overwrites the half-precision fields of random blocks with finite values. */
static void sanitize(lm_type t, uint8_t *row, int64_t n_blocks) {
    size_t size = lm_type_get_info(t)->type_size;
    for (int64_t b = 0; b < n_blocks; b++) {
        uint8_t *blk = row + (size_t)b * size;
        uint16_t h1 = lm_fp32_to_fp16(uniform(-0.05f, 0.05f)), h2 = lm_fp32_to_fp16(uniform(-0.05f, 0.05f));
        switch (t) {
        case LM_TYPE_Q8_0: case LM_TYPE_Q4_0: memcpy(blk, &h1, 2); break;
        case LM_TYPE_Q4_K: case LM_TYPE_Q5_K: memcpy(blk, &h1, 2); memcpy(blk + 2, &h2, 2); break;
        case LM_TYPE_Q6_K: memcpy(blk + 208, &h1, 2); break;
        default: break;
        }
    }
}

static void check_path(const lm_kernels *k) {
    const lm_kernels *ref = &lm_kernels_scalar;
    int checked = 0;
    for (int t = 0; t < LM_TYPE_COUNT_; t++) {
        if (!k->dot[t]) continue;
        CHECKF(ref->dot[t] != NULL, "%s has a %s kernel the scalar path lacks", k->name, lm_type_get_info((uint32_t)t)->name);
        const lm_type_info *info = lm_type_get_info((uint32_t)t);
        int64_t bs = info->block_size;
        int64_t lengths_elem[] = {1, 7, 15, 16, 17, 37, 256, 1001};
        int64_t lengths_blocks[] = {1, 2, 3, 9};
        size_t n_lengths = bs == 1 ? 8 : 4;
        int bad = 0;
        double worst = 0;
        for (size_t li = 0; li < n_lengths; li++) {
            int64_t n = bs == 1 ? lengths_elem[li] : bs * lengths_blocks[li];
            /* The scalar kernel and this path's may want different layouts
             * of the same quantised activations. */
            lm_act_kind kind = lm_kernels_act(k, (lm_type)t), ref_kind = lm_act_kind_for((lm_type)t);
            if (kind != LM_ACT_F32 && kind != LM_ACT_Q8K && n % 32) continue;
            for (int trial = 0; trial < 40; trial++) {
                size_t row_bytes = lm_type_row_size((lm_type)t, n);
                uint8_t *row = malloc(row_bytes);
                float *x = malloc((size_t)n * 4), *wf = malloc((size_t)n * 4);
                void *act = malloc(lm_act_size(kind, n)), *ref_act = malloc(lm_act_size(ref_kind, n));
                for (int64_t i = 0; i < n; i++) x[i] = uniform(-2, 2);
                if (trial % 2 == 0) {
                    for (int64_t i = 0; i < n; i++) wf[i] = uniform(-1, 1);
                    lm_quantize_row((lm_type)t, wf, row, n, NULL);
                } else {
                    for (size_t i = 0; i < row_bytes; i++) row[i] = (uint8_t)lm_rng_next(&rng);
                    if (t == LM_TYPE_F16 || t == LM_TYPE_BF16) {
                        for (int64_t i = 0; i < n; i++) {
                            uint16_t h = t == LM_TYPE_F16 ? lm_fp32_to_fp16(uniform(-1, 1)) : lm_fp32_to_bf16(uniform(-1, 1));
                            memcpy(row + 2 * i, &h, 2);
                        }
                    } else if (t == LM_TYPE_F32) {
                        for (int64_t i = 0; i < n; i++) ((float *)(void *)row)[i] = uniform(-1, 1);
                    } else {
                        sanitize((lm_type)t, row, n / bs);
                    }
                }
                lm_act_quantize(kind, x, act, n);
                lm_act_quantize(ref_kind, x, ref_act, n);
                float a = ref->dot[t](row, ref_act, n), b = k->dot[t](row, act, n);
                if (k->dot4[t]) { /* four activation vectors: each result equals dot's of that vector, bit for bit */
                    size_t sz = lm_act_size(kind, n);
                    uint8_t *four = malloc(4 * sz);
                    float *xj = malloc((size_t)n * 4), out[4], want[4];
                    for (int j = 0; j < 4; j++) {
                        for (int64_t i = 0; i < n; i++) xj[i] = j == 0 ? x[i] : uniform(-2, 2);
                        lm_act_quantize(kind, xj, four + j * sz, n);
                        want[j] = k->dot[t](row, four + j * sz, n);
                    }
                    k->dot4[t](row, four, sz, n, out);
                    for (int j = 0; j < 4; j++) {
                        if (memcmp(&out[j], &want[j], sizeof out[j]) != 0) bad++;
                    }
                    free(xj);
                    free(four);
                }
                /* Magnitude of the terms, for a relative tolerance. */
                lm_dequantize_row((lm_type)t, row, wf, n, NULL);
                double mag = 0;
                for (int64_t i = 0; i < n; i++) mag += fabs((double)wf[i] * x[i]);
                double err = fabs((double)a - b) / (mag + 1e-30);
                if (err > worst) worst = err;
                if (!(err <= 1e-5) || isnan(b)) bad++;
                free(row);
                free(x);
                free(wf);
                free(act);
                free(ref_act);
                checked++;
            }
        }
        CHECKF(bad == 0, "%s %s: %d of the dot products differ from scalar (worst relative %.2e)", k->name, info->name, bad, worst);
        if (k != ref) printf("%-6s %-5s worst relative difference from scalar %.2e\n", k->name, info->name, worst);
    }
    CHECK(checked > 0);
}

/* Random rows of type t: quantised floats (even trials) or raw random
 * blocks with finite scales (odd trials). */
static void random_rows(lm_type t, uint8_t *data, int64_t rows, int64_t cols, int trial) {
    size_t rb = lm_type_row_size(t, cols);
    float *wf = malloc((size_t)cols * 4);
    for (int64_t r = 0; r < rows; r++) {
        uint8_t *row = data + (size_t)r * rb;
        if (trial % 2 == 0 || t == LM_TYPE_F16) { /* (random halves would hold NaNs) */
            for (int64_t i = 0; i < cols; i++) wf[i] = uniform(-1, 1);
            lm_quantize_row(t, wf, row, cols, NULL);
        } else {
            for (size_t i = 0; i < rb; i++) row[i] = (uint8_t)lm_rng_next(&rng);
            sanitize(t, row, cols / (int64_t)lm_type_get_info(t)->block_size);
        }
    }
    free(wf);
}

/* The x16 layouts and kernels of a path (packed.h): packing round-trips
 * byte for byte; each kernel matches the scalar dot of the unpacked row,
 * and a token's results do not depend on how many tokens share the call
 * (1 to 9: the kernels take 4 or 8 at a time); rows not a multiple of 16
 * (one row, 15, 17, 33). */
static void check_x16(const lm_kernels *k) {
    const lm_kernels *ref = &lm_kernels_scalar;
    const int64_t shapes[][2] = {{1, 32}, {15, 96}, {16, 64}, {17, 288}, {33, 32}, {40, 512}};
    for (int t = 0; t < LM_TYPE_COUNT_; t++) {
        if (!k->dot_x16[t]) continue;
        CHECK(lm_x16_supported((lm_type)t));
        const char *name = lm_type_get_info((uint32_t)t)->name;
        int bad_pack = 0, bad_dot = 0, bad_same = 0, bad_pair = 0, pairs = 0, bad_x32 = 0, x32s = 0;
        double worst = 0;
        for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
            for (int trial = 0; trial < 6; trial++) {
                const int64_t bs = lm_x16_block_cols((lm_type)t);
                const int64_t rows = shapes[si][0], cols = bs == 32 ? shapes[si][1] : bs * (1 + (int64_t)si % 3);
                const int64_t groups = (rows + 15) / 16;
                const size_t rb = lm_type_row_size((lm_type)t, cols), psize = lm_x16_size((lm_type)t, rows, cols);
                CHECK(psize == (size_t)groups * lm_x16_group_bytes((lm_type)t, cols));
                uint8_t *data = malloc(rb * (size_t)rows), *packed = malloc(psize), *back = malloc(rb);
                random_rows((lm_type)t, data, rows, cols, trial);
                lm_x16_pack((lm_type)t, data, rows, cols, packed, 1 + trial % 3);
                for (int64_t r = 0; r < rows; r++) {
                    lm_x16_unpack_row((lm_type)t, packed, cols, r, 0, cols, back);
                    bad_pack += memcmp(back, data + (size_t)r * rb, rb) != 0;
                }
                const lm_act_kind kind = lm_x16_act((lm_type)t);
                const size_t asz = lm_act_size(kind, cols), rsz = lm_act_size(lm_act_kind_for((lm_type)t), cols);
                /* MAX_TOK for the single-group kernels; the two-group prompt kernels
                 * also 40 .. X32_TOK (the K-quants' unpack the weights once a call
                 * from 40 tokens on, then take 6 a pass). */
                enum { MAX_TOK = 9, X32_FROM = 40, X32_TOK = 51 };
                uint8_t *act = malloc(X32_TOK * asz), *ref_act = malloc(X32_TOK * rsz);
                float *x = malloc((size_t)cols * 4);
                for (int j = 0; j < X32_TOK; j++) {
                    for (int64_t i = 0; i < cols; i++) x[i] = uniform(-2, 2);
                    lm_act_quantize(kind, x, act + j * asz, cols);
                    lm_act_quantize(lm_act_kind_for((lm_type)t), x, ref_act + j * rsz, cols);
                }
                /* Two full groups at once, where the path has it: bit for bit the two single calls. */
                if (k->dot_x16_pair[t] && rows >= 32) {
                    const uint8_t *g0 = packed, *g1 = packed + lm_x16_group_bytes((lm_type)t, cols);
                    float ya[16], yb[16], wa[16], wb[16];
                    k->dot_x16_pair[t](g1, g0, act, cols, ya, yb); /* either order */
                    k->dot_x16[t](g1, act, asz, cols, 1, wa, 16);
                    k->dot_x16[t](g0, act, asz, cols, 1, wb, 16);
                    bad_pair += memcmp(ya, wa, sizeof ya) != 0 || memcmp(yb, wb, sizeof yb) != 0;
                    pairs++;
                }
                /* Two adjacent groups for 1..9 and 40..51 tokens, where the path has it: bit for bit the single calls. */
                if (k->dot_x32[t] && rows >= 32) {
                    const size_t gb = lm_x16_group_bytes((lm_type)t, cols);
                    for (int n_tok = 1; n_tok <= X32_TOK; n_tok += n_tok == MAX_TOK ? X32_FROM - MAX_TOK : 1) {
                        float two[X32_TOK][32], single[X32_TOK][32];
                        k->dot_x32[t](packed, gb, act, asz, cols, n_tok, two[0], 32);
                        k->dot_x16[t](packed, act, asz, cols, n_tok, single[0], 32);
                        k->dot_x16[t](packed + gb, act, asz, cols, n_tok, single[0] + 16, 32);
                        bad_x32 += memcmp(two, single, (size_t)n_tok * sizeof two[0]) != 0;
                        x32s++;
                    }
                }
                for (int64_t g = 0; g < groups; g++) {
                    const uint8_t *grp = packed + (size_t)g * lm_x16_group_bytes((lm_type)t, cols);
                    float one[MAX_TOK][16], many[MAX_TOK][16];
                    for (int n_tok = 1; n_tok <= MAX_TOK; n_tok++) {
                        k->dot_x16[t](grp, act, asz, cols, n_tok, many[0], 16);
                        if (n_tok == 1) {
                            for (int j = 0; j < MAX_TOK; j++) k->dot_x16[t](grp, act + j * asz, asz, cols, 1, one[j], 16);
                        }
                        for (int j = 0; j < n_tok; j++) bad_same += memcmp(one[j], many[j], sizeof one[j]) != 0;
                    }
                    for (int i = 0; i < 16 && g * 16 + i < rows; i++) {
                        const uint8_t *row = data + (size_t)(g * 16 + i) * rb;
                        for (int j = 0; j < MAX_TOK; j++) {
                            float want = ref->dot[t](row, ref_act + j * rsz, cols);
                            float wf[1024];
                            lm_dequantize_row((lm_type)t, row, wf, cols, NULL);
                            double mag = 0;
                            for (int64_t c = 0; c < cols; c++) mag += fabs((double)wf[c]) * 2;
                            double err = fabs((double)want - one[j][i]) / (mag + 1e-30);
                            worst = err > worst ? err : worst;
                            bad_dot += !(err <= 1e-5);
                        }
                    }
                }
                free(data), free(packed), free(back), free(act), free(ref_act), free(x);
            }
        }
        CHECKF(bad_pack == 0, "%s x16 %s: %d rows do not unpack to the bytes packed", k->name, name, bad_pack);
        CHECKF(bad_dot == 0, "%s x16 %s: %d dot products differ from scalar (worst relative %.2e)", k->name, name, bad_dot,
               worst);
        CHECKF(bad_same == 0, "%s x16 %s: %d results depend on the tokens sharing the call", k->name, name, bad_same);
        CHECKF(bad_pair == 0, "%s x16 %s: %d of %d two-group calls differ from single ones", k->name, name, bad_pair, pairs);
        CHECKF(!k->dot_x16_pair[t] || pairs > 0, "%s x16 %s: the two-group kernel was not tried", k->name, name);
        CHECKF(bad_x32 == 0, "%s x16 %s: %d of %d two-group prompt calls differ from single ones", k->name, name, bad_x32,
               x32s);
        CHECKF(!k->dot_x32[t] || x32s > 0, "%s x16 %s: the two-group prompt kernel was not tried", k->name, name);
        printf("%-6s %-5s x16: packing round-trips, worst relative difference from scalar %.2e\n", k->name, name, worst);
    }
}

/* lm_matvec, lm_matmul, the prefill GEMM and row lookup on an x16 matrix,
 * against the same matrix in GGUF's layout: equal bit for bit where both
 * dequantise (GEMM, lookup), within the kernels' tolerance for the dot
 * products, and matmul's tokens equal to matvec's bit for bit (what the
 * server's batched steps rely on); 1 and 3 threads. */
static void check_x16_ops(void) {
    const lm_kernels *k = lm_kernels_best();
    const lm_gemm_kernel *g = lm_gemm_kernel_best();
    int types = 0;
    for (int t = 0; t < LM_TYPE_COUNT_; t++) {
        if (!k->dot_x16[t]) continue;
        types++;
        const int64_t rows = 37, cols = 512, n_tok = 19;
        const size_t rb = lm_type_row_size((lm_type)t, cols);
        uint8_t *data = malloc(rb * rows), *packed = malloc(lm_x16_size((lm_type)t, rows, cols));
        random_rows((lm_type)t, data, rows, cols, 0);
        lm_x16_pack((lm_type)t, data, rows, cols, packed, 2);
        lm_weight wr = {data, (lm_type)t, rows, cols, rb, LM_LAYOUT_ROWS}, wp = {packed, (lm_type)t, rows, cols, rb, LM_LAYOUT_X16};
        float *x = malloc(n_tok * cols * 4), *ya = malloc(n_tok * rows * 4), *yb = malloc(n_tok * rows * 4), v[37];
        for (int64_t i = 0; i < n_tok * cols; i++) x[i] = uniform(-2, 2);
        int bad_gemm = 0, bad_row = 0, bad_mv = 0, bad_mm = 0;
        for (int threads = 1; threads <= 3; threads += 2) {
            if (g) {
                CHECK(lm_gemm(g, ya, &wr, x, n_tok, threads) && lm_gemm(g, yb, &wp, x, n_tok, threads));
                bad_gemm += memcmp(ya, yb, (size_t)(n_tok * rows) * 4) != 0;
            }
            lm_matmul(yb, &wp, x, 9, threads); /* the x16 kernels: 8 + 1 or 4 + 4 + 1 tokens */
            for (int64_t j = 0; j < 9; j++) {
                lm_matvec(v, &wp, x + j * cols, threads);
                bad_mm += memcmp(v, yb + j * rows, sizeof v) != 0;
                lm_matvec(ya, &wr, x + j * cols, threads);
                for (int64_t r = 0; r < rows; r++) bad_mv += !(fabsf(v[r] - ya[r]) <= 1e-4f * (1 + fabsf(ya[r])));
            }
        }
        float ra[512], rbuf[512];
        for (int64_t r = 0; r < rows; r++) {
            lm_weight_row(&wr, r, ra);
            lm_weight_row(&wp, r, rbuf);
            bad_row += memcmp(ra, rbuf, sizeof ra) != 0;
        }
        const char *name = lm_type_get_info((uint32_t)t)->name;
        CHECKF(bad_gemm == 0, "x16 %s: the GEMM differs from GGUF's layout", name);
        CHECKF(bad_row == 0, "x16 %s: %d looked-up rows differ", name, bad_row);
        CHECKF(bad_mv == 0, "x16 %s: %d matvec outputs differ from GGUF's layout", name, bad_mv);
        CHECKF(bad_mm == 0, "x16 %s: %d matmul tokens differ from matvec", name, bad_mm);
        /* Three matrices sharing the input (rows 37, 16 and 5: groups that
         * end mid-way), each equal to its own lm_matmul bit for bit; on 3
         * and 7 threads (a prompt's items spread each matrix over the
         * threads: with 7, some of the parts are empty). */
        uint8_t *d2 = malloc(rb * 16), *d3 = malloc(rb * 5);
        uint8_t *p2 = malloc(lm_x16_size((lm_type)t, 16, cols)), *p3 = malloc(lm_x16_size((lm_type)t, 5, cols));
        random_rows((lm_type)t, d2, 16, cols, 0);
        random_rows((lm_type)t, d3, 5, cols, 1);
        lm_x16_pack((lm_type)t, d2, 16, cols, p2, 1);
        lm_x16_pack((lm_type)t, d3, 5, cols, p3, 1);
        lm_weight w2 = {p2, (lm_type)t, 16, cols, rb, LM_LAYOUT_X16}, w3 = {p3, (lm_type)t, 5, cols, rb, LM_LAYOUT_X16};
        const lm_weight *const shared[3] = {&wp, &w2, &w3};
        int bad_shared = 0;
        const int64_t shared_tokens[] = {1, 6, n_tok}; /* the x16 kernels, then the GEMM (x holds n_tok tokens) */
        for (size_t si = 0; si < 3; si++) {
            const int64_t n_tok = shared_tokens[si];
            float *got[3], *want = malloc((size_t)(n_tok * rows) * 4);
            for (int i = 0; i < 3; i++) got[i] = malloc((size_t)(n_tok * shared[i]->rows) * 4);
            for (int threads = 3; threads <= 7; threads += 4) {
                for (int i = 0; i < 3; i++) memset(got[i], 0xff, (size_t)(n_tok * shared[i]->rows) * 4); /* NaNs */
                lm_matmul_shared(got, shared, 3, x, n_tok, threads);
                for (int i = 0; i < 3; i++) {
                    lm_matmul(want, shared[i], x, n_tok, 1);
                    bad_shared += memcmp(got[i], want, (size_t)(n_tok * shared[i]->rows) * 4) != 0;
                }
            }
            for (int i = 0; i < 3; i++) free(got[i]);
            free(want);
        }
        CHECKF(bad_shared == 0, "x16 %s: %d shared-input products differ from their own matmul", name, bad_shared);
        free(d2), free(d3), free(p2), free(p3);
        free(data), free(packed), free(x), free(ya), free(yb);
    }
    printf("x16 matvec, matmul, GEMM, lookup and shared-input products: %d types agree with GGUF's layout\n", types);
}

/* Packed x16 matrix of type t, rows x cols of random weights (trial picks
 * the data); the caller frees w->data. */
static lm_weight random_x16(lm_type t, int64_t rows, int64_t cols, int trial) {
    const size_t rb = lm_type_row_size(t, cols);
    uint8_t *data = malloc(rb * (size_t)rows), *packed = malloc(lm_x16_size(t, rows, cols));
    random_rows(t, data, rows, cols, trial);
    lm_x16_pack(t, data, rows, cols, packed, 1);
    free(data);
    return (lm_weight){packed, t, rows, cols, rb, LM_LAYOUT_X16};
}

/* Products sharing an input from rows already quantised: lm_matmul_shared_act
 * from rows quantised by lm_x16_quantize_into (what a prompt's per-token
 * steps do) equals lm_matmul_shared and each matrix's own lm_matmul bit for
 * bit at 1, 6 and 45 tokens (the K-quants' two-group passes start at 40);
 * matrices of different types (Q4_K_M's Q4_K Q and K with its Q6_K V) are
 * refused by lm_x16_act_bytes and lm_matmul_shared_act, and
 * lm_matmul_shared still gives each its own product. */
static void check_x16_shared_act(void) {
    const lm_kernels *k = lm_kernels_best();
    if (!k->dot_x16[LM_TYPE_Q4_K] || !k->dot_x16[LM_TYPE_Q6_K]) {
        printf("shared products from pre-quantised rows: no Q4_K and Q6_K x16 kernels here, skipped\n");
        return;
    }
    const int64_t cols = 512, max_tok = 45;
    const lm_weight wq = random_x16(LM_TYPE_Q4_K, 48, cols, 0), wk = random_x16(LM_TYPE_Q4_K, 21, cols, 1),
                    wv = random_x16(LM_TYPE_Q4_K, 37, cols, 2), w6 = random_x16(LM_TYPE_Q6_K, 37, cols, 3);
    const lm_weight *const ws[3] = {&wq, &wk, &wv}, *const mixed[3] = {&wq, &wk, &w6};
    const size_t bytes = lm_x16_act_bytes(ws, 3);
    CHECKF(bytes == lm_x16_act_bytes(ws + 2, 1) && bytes > 0, "Q4_K: %zu activation bytes a row", bytes);
    CHECKF(lm_x16_act_bytes(mixed, 3) == 0, "Q4_K with Q6_K taken as one job");
    float *x = malloc((size_t)(max_tok * cols) * 4), *want = malloc((size_t)(max_tok * 48) * 4), *got[2][3];
    uint8_t *act = malloc(bytes * (size_t)max_tok);
    for (int64_t i = 0; i < max_tok * cols; i++) x[i] = uniform(-2, 2);
    for (int64_t b = 0; b < max_tok; b++) lm_x16_quantize_into(ws[0], x + b * cols, act + (size_t)b * bytes);
    int bad = 0, taken = 1, mixed_refused = 1;
    const int64_t tokens[] = {1, 6, max_tok};
    for (size_t ti = 0; ti < 3; ti++) {
        const int64_t n = tokens[ti];
        for (int v = 0; v < 2; v++) {
            for (int i = 0; i < 3; i++) got[v][i] = malloc((size_t)(n * ws[i]->rows) * 4);
        }
        taken &= lm_matmul_shared_act(got[1], ws, 3, act, n, 2);
        mixed_refused &= !lm_matmul_shared_act(got[1], mixed, 3, act, n, 2);
        for (int m = 0; m < 2; m++) {
            const lm_weight *const *set = m ? mixed : ws;
            lm_matmul_shared(got[0], set, 3, x, n, 2);
            for (int i = 0; i < 3; i++) {
                lm_matmul(want, set[i], x, n, 1);
                for (int v = 0; v <= !m; v++) bad += memcmp(got[v][i], want, (size_t)(n * set[i]->rows) * 4) != 0;
            }
        }
        for (int v = 0; v < 2; v++) {
            for (int i = 0; i < 3; i++) free(got[v][i]);
        }
    }
    CHECKF(taken, "lm_matmul_shared_act refused three Q4_K matrices");
    CHECKF(mixed_refused, "lm_matmul_shared_act took Q4_K with Q6_K");
    CHECKF(bad == 0, "shared products: %d differ from their own matmul", bad);
    printf("shared products from pre-quantised rows (Q4_K x 3) and across types (Q4_K, Q6_K): equal to their own "
           "matmul\n");
    free(x), free(want), free(act);
    free((void *)wq.data), free((void *)wk.data), free((void *)wv.data), free((void *)w6.data);
}

/* A prompt's gate and up of type t (rows, cols; data from trials trial and
 * trial + 1) and max_tok random input rows quantised for them, bytes a row;
 * gate_up_free releases it. */
typedef struct {
    lm_weight gate, up;
    uint8_t *act;
    size_t bytes;
} gate_up;

static gate_up gate_up_random(lm_type t, int64_t rows, int64_t cols, int64_t max_tok, int trial) {
    gate_up c = {random_x16(t, rows, cols, trial), random_x16(t, rows, cols, trial + 1), NULL, 0};
    const lm_weight *const ws[2] = {&c.gate, &c.up};
    c.bytes = lm_x16_act_bytes(ws, 2);
    float *x = malloc((size_t)(max_tok * cols) * 4);
    c.act = malloc(c.bytes * (size_t)max_tok);
    REQUIRE(c.bytes && x && c.act);
    for (int64_t i = 0; i < max_tok * cols; i++) x[i] = uniform(-2, 2);
    for (int64_t b = 0; b < max_tok; b++) lm_x16_quantize_into(&c.gate, x + b * cols, c.act + (size_t)b * c.bytes);
    free(x);
    return c;
}

static void gate_up_free(gate_up *c) {
    free(c->act);
    free((void *)c->gate.data), free((void *)c->up.data);
}

/* A prompt's gate and up with the gating inside the product
 * (lm_matmul_swiglu_act) against lm_matmul_shared_act then lm_swiglu_f32,
 * bit for bit: every type with an x32 kernel, 96 rows (three pairs of
 * groups: an uneven split over 2 threads), 2048 columns, 2 to 301 tokens
 * (the K-quants' x32 passes start at 40; at 2048 columns a chunk holds at
 * most 112 tokens, 96 for Q8_0 and Q4_0, so 301 take three or four), 1 to
 * 3 threads, into NaN-filled outputs; and the shapes it must refuse. */
static void check_matmul_swiglu(void) {
    const lm_kernels *k = lm_kernels_best();
    const int64_t cols = 2048, rows = 96, max_tok = 301;
    int cases = 0, bad = 0, refused_ok = 1;
    for (int t = 0; t < LM_TYPE_COUNT_; t++) {
        if (!k->dot_x32[t]) continue;
        gate_up c = gate_up_random((lm_type)t, rows, cols, max_tok, 5);
        const lm_weight wg = c.gate, wu = c.up, *const ws[2] = {&c.gate, &c.up};
        const uint8_t *act = c.act;
        float *h = malloc((size_t)(max_tok * rows) * 4), *h_up = malloc((size_t)(max_tok * rows) * 4);
        float *g = malloc((size_t)(max_tok * rows) * 4), *u = malloc((size_t)(max_tok * rows) * 4);
        REQUIRE(h && h_up && g && u);
        const int64_t tokens[] = {2, 7, 45, max_tok};
        for (size_t ti = 0; ti < sizeof tokens / sizeof *tokens; ti++) {
            const int64_t n = tokens[ti];
            float *const ys[2] = {g, u};
            CHECK(lm_matmul_shared_act(ys, ws, 2, act, n, 1));
            for (int64_t b = 0; b < n; b++) lm_swiglu_f32(g + b * rows, u + b * rows, rows);
            for (int threads = 1; threads <= 3; threads++) {
                memset(h, 0xFF, (size_t)(n * rows) * 4);
                CHECK(lm_matmul_swiglu_act(h, h_up, &wg, &wu, act, n, threads));
                bad += memcmp(h, g, (size_t)(n * rows) * 4) != 0;
                cases++;
            }
        }
        /* rows not a multiple of 32, gate and up of different shapes, one token: refused, nothing written */
        const lm_weight odd_g = {wg.data, wg.type, 80, cols, wg.row_bytes, LM_LAYOUT_X16};
        const lm_weight odd_u = {wu.data, wu.type, 80, cols, wu.row_bytes, LM_LAYOUT_X16};
        const lm_weight short_u = {wu.data, wu.type, 64, cols, wu.row_bytes, LM_LAYOUT_X16};
        h[0] = 0.0f;
        refused_ok &= !lm_matmul_swiglu_act(h, h_up, &odd_g, &odd_u, act, 8, 2) &&
                      !lm_matmul_swiglu_act(h, h_up, &wg, &short_u, act, 8, 2) &&
                      !lm_matmul_swiglu_act(h, h_up, &wg, &wu, act, 1, 2) && h[0] == 0.0f;
        free(h), free(h_up), free(g), free(u);
        gate_up_free(&c);
    }
    CHECKF(bad == 0, "gated prompt products: %d of %d cases differ from the product then lm_swiglu_f32", bad, cases);
    CHECK(refused_ok);
    printf("gated prompt products: %d cases (types with x32 kernels x 2-301 tokens x 1-3 threads) equal the product "
           "then lm_swiglu_f32\n", cases);
}

/* The gated values quantised for down without H
 * (lm_matmul_swiglu_quantize) against lm_matmul_swiglu_act then
 * lm_x16_quantize_into, byte for byte: every gate/up type with an x32
 * kernel against every down type with an x16 kernel (F16's f32
 * activations refused), 512 rows (two 256-value pieces), 2048 columns
 * (301 tokens in three or four chunks, as above), into 0xA5-filled rows;
 * and rows not a multiple of 256 refused. */
static void check_swiglu_quantize(void) {
    const lm_kernels *k = lm_kernels_best();
    const int64_t cols = 2048, rows = 512, max_tok = 301;
    int cases = 0, bad = 0, refused_ok = 1;
    for (int t = 0; t < LM_TYPE_COUNT_; t++) {
        if (!k->dot_x32[t]) continue;
        gate_up c = gate_up_random((lm_type)t, rows, cols, max_tok, 7);
        const lm_weight wg = c.gate, wu = c.up;
        const uint8_t *act = c.act;
        float *h = malloc((size_t)(max_tok * rows) * 4), *h_up = malloc((size_t)(max_tok * rows) * 4);
        REQUIRE(h && h_up);
        for (int td = 0; td < LM_TYPE_COUNT_; td++) {
            if (!k->dot_x16[td]) continue;
            const lm_weight wd = random_x16((lm_type)td, 32, rows, 9);
            const lm_weight *const dn[1] = {&wd};
            const size_t db = lm_x16_act_bytes(dn, 1);
            uint8_t *want = malloc(db * (size_t)max_tok), *got = malloc(db * (size_t)max_tok);
            REQUIRE(db && want && got);
            const int64_t tokens[] = {2, 45, max_tok};
            for (size_t ti = 0; ti < sizeof tokens / sizeof *tokens; ti++) {
                const int64_t n = tokens[ti];
                memset(got, 0xA5, db * (size_t)n);
                const int took = lm_matmul_swiglu_quantize(got, &wd, &wg, &wu, act, n);
                if (lm_x16_act((lm_type)td) == LM_ACT_F32) {
                    refused_ok &= !took && got[0] == 0xA5;
                    continue;
                }
                CHECK(took && lm_matmul_swiglu_act(h, h_up, &wg, &wu, act, n, 1));
                for (int64_t b = 0; b < n; b++) lm_x16_quantize_into(&wd, h + b * rows, want + (size_t)b * db);
                bad += memcmp(got, want, db * (size_t)n) != 0;
                cases++;
            }
            const lm_weight odd = {wg.data, wg.type, 480, cols, wg.row_bytes, LM_LAYOUT_X16};
            const lm_weight odd_d = {wd.data, wd.type, 32, 480, wd.row_bytes, LM_LAYOUT_X16};
            refused_ok &= !lm_matmul_swiglu_quantize(got, &odd_d, &odd, &odd, act, 8);
            free(want), free(got), free((void *)wd.data);
        }
        free(h), free(h_up);
        gate_up_free(&c);
    }
    CHECKF(cases > 0 && bad == 0, "gated and quantised prompt products: %d of %d cases differ", bad, cases);
    CHECK(refused_ok);
    printf("gated prompt products quantised for down: %d cases equal gating then lm_x16_quantize_into\n", cases);
}

/* A decode token's feed-forward middle (lm_ffn_swiglu_act, then
 * lm_matvec_act with W_down) against the separate steps (lm_matmul_shared,
 * lm_swiglu_f32, lm_matvec) bit for bit: every x16 type for gate and up,
 * every one for down (so the down activations' blocks are 16, 32 or 256
 * values), 512 rows (an even and an uneven split of the blocks over 3
 * threads), 1 to 3 threads; and a shape it must refuse. */
static void check_ffn_one_token(void) {
    const lm_kernels *k = lm_kernels_best();
    const int64_t dim = 256, ffn = 512;
    int cases = 0, bad = 0, refused_ok = 1;
    for (int tg = 0; tg < LM_TYPE_COUNT_; tg++) {
        if (!k->dot_x16[tg]) continue;
        for (int td = 0; td < LM_TYPE_COUNT_; td++) {
            if (!k->dot_x16[td]) continue;
            const lm_type tgu = (lm_type)tg, tdn = (lm_type)td;
            const size_t rb = lm_type_row_size(tgu, dim), rbd = lm_type_row_size(tdn, ffn);
            uint8_t *dg = malloc(rb * ffn), *du = malloc(rb * ffn), *dd = malloc(rbd * dim);
            uint8_t *pg = malloc(lm_x16_size(tgu, ffn, dim)), *pu = malloc(lm_x16_size(tgu, ffn, dim));
            uint8_t *pd = malloc(lm_x16_size(tdn, dim, ffn));
            random_rows(tgu, dg, ffn, dim, 2);
            random_rows(tgu, du, ffn, dim, 3);
            random_rows(tdn, dd, dim, ffn, 4);
            lm_x16_pack(tgu, dg, ffn, dim, pg, 1);
            lm_x16_pack(tgu, du, ffn, dim, pu, 1);
            lm_x16_pack(tdn, dd, dim, ffn, pd, 1);
            const lm_weight wg = {pg, tgu, ffn, dim, rb, LM_LAYOUT_X16}, wu = {pu, tgu, ffn, dim, rb, LM_LAYOUT_X16};
            const lm_weight wd = {pd, tdn, dim, ffn, rbd, LM_LAYOUT_X16};
            float x[256], h[512], h_up[512], g[512], u[512], y[256], want[256];
            float *act = malloc(ffn * sizeof(float));
            for (int64_t i = 0; i < dim; i++) x[i] = uniform(-2, 2);
            for (int threads = 1; threads <= 3; threads++) {
                memset(h, 0xFF, sizeof h); /* NaNs: every row must be written */
                memset(y, 0xFF, sizeof y);
                CHECK(lm_ffn_swiglu_act(h, h_up, act, &wg, &wu, &wd, x, threads));
                CHECK(lm_matvec_act(y, &wd, act, threads));
                float *const ys[2] = {g, u};
                const lm_weight *const ws[2] = {&wg, &wu};
                lm_matmul_shared(ys, ws, 2, x, 1, threads);
                lm_swiglu_f32(g, u, ffn);
                lm_matvec(want, &wd, g, threads);
                bad += memcmp(h, g, sizeof h) != 0 || memcmp(y, want, sizeof y) != 0;
                cases++;
            }
            /* gate and up of different row counts: refused, nothing written */
            const lm_weight short_up = {pu, tgu, ffn - 16, dim, rb, LM_LAYOUT_X16};
            memset(h, 0, sizeof h);
            refused_ok &= !lm_ffn_swiglu_act(h, h_up, act, &wg, &short_up, &wd, x, 2) && h[0] == 0.0f;
            free(dg), free(du), free(dd), free(pg), free(pu), free(pd), free(act);
        }
    }
    CHECKF(cases > 0 && bad == 0, "one-token feed-forward: %d of %d cases differ from the separate steps", bad, cases);
    CHECK(refused_ok);
    printf("one-token feed-forward step: %d type pairs x 1-3 threads equal the separate steps\n", cases / 3);
}

/* A GEMM micro-kernel and its driver against a float64 product of the
 * dequantised weights: every shape's edges (tokens not a multiple of MR,
 * rows not a multiple of NR, one row, one token, columns past one KC block),
 * 1 to 3 threads. */
static void check_gemm(const lm_gemm_kernel *g) {
    const lm_type types[] = {LM_TYPE_F32, LM_TYPE_F16, LM_TYPE_BF16, LM_TYPE_Q8_0, LM_TYPE_Q4_0, LM_TYPE_Q4_K, LM_TYPE_Q6_K};
    const int64_t shapes[][3] = {/* rows, cols (in 256s), tokens */
                                 {1, 1, 1}, {33, 1, 13}, {64, 3, 24}, {70, 2, 37}, {17, 5, 16}, {96, 1, 12}};
    double worst = 0;
    int bad = 0, cases = 0;
    for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
        for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
            int64_t rows = shapes[si][0], cols = 256 * shapes[si][1], n_tok = shapes[si][2];
            size_t rb = lm_type_row_size(types[ti], cols);
            uint8_t *wdata = malloc(rb * (size_t)rows);
            float *wf = malloc((size_t)(rows * cols) * 4), *x = malloc((size_t)(n_tok * cols) * 4);
            float *y = malloc((size_t)(n_tok * rows) * 4);
            for (int64_t i = 0; i < rows * cols; i++) wf[i] = uniform(-1, 1);
            for (int64_t r = 0; r < rows; r++) lm_quantize_row(types[ti], wf + r * cols, wdata + (size_t)r * rb, cols, NULL);
            for (int64_t r = 0; r < rows; r++) lm_dequantize_row(types[ti], wdata + (size_t)r * rb, wf + r * cols, cols, NULL);
            for (int64_t i = 0; i < n_tok * cols; i++) x[i] = uniform(-2, 2);
            lm_weight w = {wdata, types[ti], rows, cols, rb};
            for (int threads = 1; threads <= 3; threads += 2) {
                for (int64_t i = 0; i < n_tok * rows; i++) y[i] = NAN; /* every output must be written */
                CHECK(lm_gemm(g, y, &w, x, n_tok, threads) == 1);
                for (int64_t t = 0; t < n_tok; t++) {
                    for (int64_t r = 0; r < rows; r++) {
                        double ref = 0, mag = 0;
                        for (int64_t k = 0; k < cols; k++) {
                            ref += (double)wf[r * cols + k] * x[t * cols + k];
                            mag += fabs((double)wf[r * cols + k] * x[t * cols + k]);
                        }
                        double err = fabs(y[t * rows + r] - ref) / (mag > 0 ? mag : 1);
                        worst = err > worst ? err : worst;
                        bad += !(err < 1e-6);
                    }
                }
                cases++;
            }
            free(wdata);
            free(wf);
            free(x);
            free(y);
        }
    }
    printf("gemm %s (%dx%d tiles): %d cases, worst error %.2e of the sum of |products|\n", g->name, g->mr, g->nr, cases,
           worst);
    CHECKF(bad == 0, "gemm %s: %d outputs off by more than 1e-6 of the sum of |products|", g->name, bad);
}

/* lm_attn_causal against causal attention in double precision: caches of
 * floats and of halves (rows wider than the head, as with several KV
 * heads), queries from position 0 or later, blocks that do and do not fill
 * the kernel's panels, head sizes that are and are not a multiple of 8 and
 * of MR; outputs start as NaNs, so every one must be written. */
static void check_attn_causal(const lm_gemm_kernel *g) {
    const int64_t head_dims[] = {64, 20, 12, 3, 128};
    const int64_t cases[][2] = {{1, 0}, {5, 0}, {33, 0}, {70, 0}, {17, 9}, {40, 100}}; /* queries, first position */
    double worst = 0;
    int runs = 0, rope_bad = 0;
    for (size_t hi = 0; hi < sizeof head_dims / sizeof *head_dims; hi++) {
        const int64_t hd = head_dims[hi], stride = hd + 5, q_stride = hd + 3, o_stride = hd + 1;
        for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
            const int64_t n = cases[ci][0], pos0 = cases[ci][1], keys = pos0 + n;
            float *kf = malloc((size_t)(keys * stride) * sizeof *kf), *vf = malloc((size_t)(keys * stride) * sizeof *vf);
            uint16_t *kh = malloc((size_t)(keys * stride) * sizeof *kh), *vh = malloc((size_t)(keys * stride) * sizeof *vh);
            float *q = malloc((size_t)(n * q_stride) * sizeof *q), *out = malloc((size_t)(n * o_stride) * sizeof *out);
            for (int64_t i = 0; i < keys * stride; i++) { /* values halves hold exactly: one reference for both */
                kh[i] = lm_fp32_to_fp16(uniform(-2, 2));
                vh[i] = lm_fp32_to_fp16(uniform(-1, 1));
                kf[i] = lm_fp16_to_fp32(kh[i]);
                vf[i] = lm_fp16_to_fp32(vh[i]);
            }
            for (int64_t i = 0; i < n * q_stride; i++) q[i] = uniform(-2, 2);
            const float scale = (float)(1.0 / sqrt((double)hd));
            const size_t floats = lm_attn_scratch_floats(g, keys, hd);
            float *scratch = aligned_alloc(64, (floats * sizeof(float) + 63) & ~(size_t)63);
            for (int half = 0; half < 2; half++) {
                const lm_kv_head kv = {half ? (const void *)kh : kf, half ? (const void *)vh : vf, stride, half};
                lm_attn_pack_head(g, kv, keys, hd, scratch);
                memset(out, 0xff, (size_t)(n * o_stride) * sizeof *out);
                lm_attn_causal(g, scratch, keys, hd, q, q_stride, n, pos0, scale, NULL, out, o_stride);
                for (int64_t i = 0; i < n; i++) {
                    const int64_t seen = pos0 + i + 1;
                    double *p = malloc((size_t)seen * sizeof *p), max = -INFINITY, sum = 0;
                    for (int64_t t = 0; t < seen; t++) {
                        double d = 0;
                        for (int64_t c = 0; c < hd; c++) d += (double)q[i * q_stride + c] * kf[t * stride + c];
                        p[t] = d * scale;
                        max = p[t] > max ? p[t] : max;
                    }
                    for (int64_t t = 0; t < seen; t++) sum += p[t] = exp(p[t] - max);
                    for (int64_t c = 0; c < hd; c++) {
                        double want = 0;
                        for (int64_t t = 0; t < seen; t++) want += p[t] / sum * vf[t * stride + c];
                        const double e = fabs(out[i * o_stride + c] - want);
                        if (!(e <= worst)) worst = e != e ? INFINITY : e; /* a NaN is the worst */
                    }
                    free(p);
                }
                runs++;
                /* with a rotary table: the same bits as queries rotated by the table's
                 * lm_rope_fn first (rope over all of the head, or its first half) */
                for (int part = 1; part <= 2; part++) {
                    const int64_t rope_dim = hd / part / 2 * 2, pairs = rope_dim / 2, stride = keys + 64;
                    float *table = malloc((size_t)(2 * pairs * stride + 1) * sizeof *table);
                    float *cs = malloc((size_t)(2 * pairs + 1) * sizeof *cs);
                    float *qr = malloc((size_t)(n * q_stride) * sizeof *qr);
                    float *ref = malloc((size_t)(n * o_stride) * sizeof *ref);
                    for (int64_t i = 0; i < 2 * pairs * stride; i++) table[i] = uniform(-1, 1);
                    memcpy(qr, q, (size_t)(n * q_stride) * sizeof *qr);
                    for (int64_t i = 0; i < n; i++) {
                        for (int64_t pi = 0; pi < pairs; pi++) {
                            cs[2 * pi] = table[pi * stride + pos0 + i];
                            cs[2 * pi + 1] = table[(pairs + pi) * stride + pos0 + i];
                        }
                        lm_kernels_best()->rope(qr + i * q_stride, 1, hd, rope_dim, cs);
                    }
                    const lm_attn_rope rope = {table, table + pairs * stride, stride, rope_dim};
                    memset(ref, 0xff, (size_t)(n * o_stride) * sizeof *ref);
                    lm_attn_causal(g, scratch, keys, hd, qr, q_stride, n, pos0, scale, NULL, ref, o_stride);
                    memset(out, 0xff, (size_t)(n * o_stride) * sizeof *out);
                    lm_attn_causal(g, scratch, keys, hd, q, q_stride, n, pos0, scale, &rope, out, o_stride);
                    for (int64_t i = 0; i < n; i++) {
                        rope_bad += memcmp(out + i * o_stride, ref + i * o_stride, (size_t)hd * sizeof *out) != 0;
                    }
                    free(table), free(cs), free(qr), free(ref);
                }
            }
            free(scratch), free(kf), free(vf), free(kh), free(vh), free(q), free(out);
        }
    }
    printf("attention gemm %s: %d runs, worst error %.2e\n", g->name, runs, worst);
    CHECKF(rope_bad == 0, "attention gemm %s: %d outputs differ with the queries rotated in the attention", g->name,
           rope_bad);
    CHECKF(worst < 2e-6, "attention gemm %s: outputs off by %.2e", g->name, worst);
    CHECK(lm_attn_scratch_floats(g, 0, 64) == 0 && lm_attn_scratch_floats(g, INT64_MAX / 2, INT64_MAX / 2) == 0);
}

/* The attention kernels and softmax of a path against the scalar ones: head
 * sizes that are and are not a multiple of the vector width (and past the
 * 128 that the 512-bit kernels keep in registers), 1 to 300 keys,
 * scores spanning past exp's underflow. */
static void check_attention(const lm_kernels *k) {
    const lm_kernels *ref = &lm_kernels_scalar;
    const int64_t head_dims[] = {64, 48, 7, 128, 8, 16, 144, 200};
    double worst_s = 0, worst_v = 0, worst_sm = 0, worst_s16 = 0, worst_v16 = 0;
    for (size_t hi = 0; hi < sizeof head_dims / sizeof *head_dims; hi++) {
        int64_t hd = head_dims[hi], stride = hd * 3 + 5;
        for (int64_t n = 1; n <= 300; n += 37) {
            float *q = malloc((size_t)hd * 4), *kv = malloc((size_t)(n * stride) * 4);
            float *a = malloc((size_t)n * 4), *b = malloc((size_t)n * 4), *oa = malloc((size_t)hd * 4),
                  *ob = malloc((size_t)hd * 4);
            for (int64_t i = 0; i < hd; i++) q[i] = uniform(-1, 1);
            for (int64_t i = 0; i < n * stride; i++) kv[i] = uniform(-1, 1);
            uint16_t *kv16 = malloc((size_t)(n * stride) * 2);
            ref->to_f16(kv16, kv, n * stride);
            k->attn_scores(a, q, kv, stride, n, hd, 0.125f);
            ref->attn_scores(b, q, kv, stride, n, hd, 0.125f);
            for (int64_t t = 0; t < n; t++) {
                double e = fabs(a[t] - b[t]) / (0.125 * hd);
                worst_s = e > worst_s ? e : worst_s;
            }
            k->attn_scores_f16(a, q, kv16, stride, n, hd, 0.125f);
            ref->attn_scores_f16(b, q, kv16, stride, n, hd, 0.125f);
            for (int64_t t = 0; t < n; t++) {
                double e = fabs(a[t] - b[t]) / (0.125 * hd);
                worst_s16 = e > worst_s16 ? e : worst_s16;
            }
            for (int64_t t = 0; t < n; t++) a[t] = b[t] = uniform(-100, 5); /* some far below the max */
            k->softmax(a, n);
            ref->softmax(b, n);
            for (int64_t t = 0; t < n; t++) {
                double e = fabs(a[t] - b[t]) / (b[t] > 1e-30 ? b[t] : 1e-30);
                if (b[t] < 1e-37 && a[t] < 1e-37) e = 0; /* both underflowed */
                worst_sm = e > worst_sm ? e : worst_sm;
            }
            { /* the exponentials and their sum alone (the prefill's attention) */
                float *c = malloc((size_t)n * 4), *d = malloc((size_t)n * 4);
                for (int64_t t = 0; t < n; t++) c[t] = d[t] = uniform(-800, 40);
                const double sc = k->softmax_exp(c, n, 0.125f), sd = ref->softmax_exp(d, n, 0.125f);
                double e = fabs(sc - sd) / sd;
                for (int64_t t = 0; t < n; t++) {
                    double et = fabs(c[t] - d[t]) / (d[t] > 1e-30 ? d[t] : 1e-30);
                    if (d[t] < 1e-37 && c[t] < 1e-37) et = 0;
                    e = et > e ? et : e;
                }
                worst_sm = e > worst_sm ? e : worst_sm;
                free(c), free(d);
            }
            k->attn_values(oa, b, kv, stride, n, hd);
            ref->attn_values(ob, b, kv, stride, n, hd);
            for (int64_t i = 0; i < hd; i++) {
                double e = fabs(oa[i] - ob[i]);
                worst_v = e > worst_v ? e : worst_v;
            }
            k->attn_values_f16(oa, b, kv16, stride, n, hd);
            ref->attn_values_f16(ob, b, kv16, stride, n, hd);
            for (int64_t i = 0; i < hd; i++) {
                double e = fabs(oa[i] - ob[i]);
                worst_v16 = e > worst_v16 ? e : worst_v16;
            }
            free(q), free(kv), free(kv16), free(a), free(b), free(oa), free(ob);
        }
    }
    printf("%s attention: scores %.1e, softmax %.1e relative, values %.1e; over f16: scores %.1e, values %.1e\n",
           k->name, worst_s, worst_sm, worst_v, worst_s16, worst_v16);
    CHECKF(worst_s < 1e-6 && worst_sm < 1e-6 && worst_v < 1e-6 && worst_s16 < 1e-6 && worst_v16 < 1e-6,
           "%s attention kernels differ from the scalar ones", k->name);
}

/* The f16 KV cache's conversions against the software ones (fp16.h), bit
 * for bit: lengths around the vector width; normal, subnormal, overflowing,
 * halfway (ties to even) values, zeros of both signs and infinities. NaN
 * must stay NaN (its payload may differ). */
static void check_f16_conversions(const lm_kernels *k) {
    enum { N = 203 };
    float src[N], back_k[N], back_ref[N];
    uint16_t h_k[N], h_ref[N], all[N];
    int bad = 0;
    for (int64_t n = 1; n <= N; n += 17) {
        for (int64_t i = 0; i < n; i++) {
            switch (i % 9) {
            case 0: src[i] = uniform(-70000, 70000); break;      /* some past half's 65504 */
            case 1: src[i] = uniform(-1e-6, 1e-6); break;        /* subnormal halves */
            case 2: src[i] = (float)(1 + 2 * (i % 5)) * 0x1p-11f + 1.0f; break; /* halfway between halves */
            case 3: src[i] = i % 2 ? -0.0f : INFINITY; break;
            case 4: src[i] = i % 2 ? NAN : -INFINITY; break;
            default: src[i] = uniform(-4, 4); break;
            }
        }
        k->to_f16(h_k, src, n);
        lm_kernels_scalar.to_f16(h_ref, src, n);
        for (int64_t i = 0; i < n; i++) {
            int nan_k = (h_k[i] & 0x7C00) == 0x7C00 && (h_k[i] & 0x3FF), nan_ref = (h_ref[i] & 0x7C00) == 0x7C00 && (h_ref[i] & 0x3FF);
            if (nan_k != nan_ref || (!nan_ref && h_k[i] != h_ref[i])) bad++;
        }
    }
    for (int64_t base = 0; base < 65536; base += N) { /* every half, in runs of N (or fewer at the end) */
        const int64_t n = 65536 - base < N ? 65536 - base : N;
        for (int64_t i = 0; i < n; i++) all[i] = (uint16_t)(base + i);
        k->from_f16(back_k, all, n);
        lm_kernels_scalar.from_f16(back_ref, all, n);
        for (int64_t i = 0; i < n; i++) {
            if (isnan(back_ref[i]) ? !isnan(back_k[i]) : memcmp(&back_k[i], &back_ref[i], 4) != 0) bad++;
        }
    }
    CHECKF(bad == 0, "%s: %d f16 conversions differ from the software ones", k->name, bad);
}

/* The feed-forward gate against the scalar one (expf): lengths around the
 * vector width, values from far below exp's underflow to far above. */
static void check_swiglu(const lm_kernels *k) {
    double worst = 0;
    for (int64_t n = 1; n <= 70; n += 3) {
        float g[70], up[70], a[70], b[70];
        for (int64_t i = 0; i < n; i++) {
            g[i] = i % 7 == 0 ? uniform(-120, 120) : uniform(-12, 12);
            up[i] = uniform(-2, 2);
            a[i] = b[i] = g[i];
        }
        k->swiglu(a, up, n);
        lm_kernels_scalar.swiglu(b, up, n);
        for (int64_t i = 0; i < n; i++) {
            double e = fabs(a[i] - b[i]) / (fabs(b[i]) > 1e-30 ? fabs(b[i]) : 1e-30);
            if (fabs(b[i]) < 1e-30 && fabs(a[i]) < 1e-30) e = 0; /* both (next to) zero */
            worst = e > worst ? e : worst;
        }
    }
    printf("%s swiglu: %.1e relative\n", k->name, worst);
    CHECKF(worst < 1e-6, "%s swiglu differs from the scalar one by %.1e", k->name, worst);
}

/* Rotary embedding against the plain pairwise formula, bit for bit (each
 * product rounded, then the sum): head sizes around the vector widths, the
 * rotated part shorter than the head, heads after the first. */
static void check_rope(const lm_kernels *k) {
    static const int64_t shapes[][2] = {{64, 64}, {64, 32}, {6, 6}, {10, 4}, {48, 48}, {34, 34}, {40, 18}, {128, 96}, {2, 2}};
    int bad = 0;
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        const int64_t hd = shapes[si][0], rd = shapes[si][1];
        for (int64_t heads = 1; heads <= 3; heads++) {
            float x[3 * 128], want[3 * 128], cs[128];
            for (int64_t i = 0; i < heads * hd; i++) x[i] = want[i] = uniform(-3, 3);
            for (int64_t i = 0; i < rd / 2; i++) {
                double angle = uniform(-10, 10);
                cs[2 * i] = (float)cos(angle);
                cs[2 * i + 1] = (float)sin(angle);
            }
            for (int64_t h = 0; h < heads; h++) {
                for (int64_t i = 0; i < rd / 2; i++) {
                    float *v = want + h * hd, c = cs[2 * i], sn = cs[2 * i + 1], a = v[2 * i], b = v[2 * i + 1];
                    float ac = a * c, bs = b * sn, as = a * sn, bc = b * c;
                    v[2 * i] = ac - bs;
                    v[2 * i + 1] = as + bc;
                }
            }
            k->rope(x, heads, hd, rd, cs);
            bad += memcmp(x, want, (size_t)(heads * hd) * sizeof *x) != 0;
        }
    }
    CHECKF(bad == 0, "%s rope: %d shapes differ from the pairwise formula", k->name, bad);
    /* rope_cols: a block of queries transposed (columns 1..40, 2..64 rotated
     * values), each column as its row through rope, bit for bit */
    int bad_cols = 0;
    for (int64_t nr = 1; nr <= 40; nr += 13) {
        for (int64_t rd = 2; rd <= 64; rd += 62) {
            const int64_t pairs = rd / 2, stride = 50, pos = 7;
            float qt[64 * 40], rows[40 * 64], table[2 * 32 * 50], cs[64];
            for (int64_t i = 0; i < rd * nr; i++) qt[i] = uniform(-3, 3);
            for (int64_t i = 0; i < 2 * pairs * stride; i++) table[i] = uniform(-1, 1);
            for (int64_t j = 0; j < nr; j++) {
                for (int64_t d = 0; d < rd; d++) rows[j * rd + d] = qt[d * nr + j];
                for (int64_t i = 0; i < pairs; i++) {
                    cs[2 * i] = table[i * stride + pos + j];
                    cs[2 * i + 1] = table[(pairs + i) * stride + pos + j];
                }
                k->rope(rows + j * rd, 1, rd, rd, cs);
            }
            k->rope_cols(qt, nr, rd, table, table + pairs * stride, stride, pos);
            for (int64_t j = 0; j < nr; j++) {
                for (int64_t d = 0; d < rd; d++) {
                    bad_cols += memcmp(&qt[d * nr + j], &rows[j * rd + d], sizeof(float)) != 0;
                }
            }
        }
    }
    CHECKF(bad_cols == 0, "%s rope_cols: %d values differ from rope's", k->name, bad_cols);
}

/* rmsnorm and add against the scalar table, bit for bit (its sums' order
 * is part of the contract), and rmsnorm against the formula in double
 * (which the scalar table must meet too): lengths around the vector widths
 * and a model's 768, in place and not, values of several magnitudes. */
static void check_rmsnorm_add(const lm_kernels *k) {
    int bad = 0;
    double worst = 0;
    for (int64_t n = 1; n <= 800; n = n < 70 ? n + 1 : n + 349) {
        float x[800], w[800], a[800], b[800], c[800];
        for (int64_t i = 0; i < n; i++) {
            x[i] = uniform(-3, 3) * (float)pow(10.0, (double)(i % 5) - 2);
            w[i] = uniform(0.5, 1.5);
            c[i] = uniform(-1, 1);
        }
        k->rmsnorm(a, x, w, n, 1e-5f);
        lm_kernels_scalar.rmsnorm(b, x, w, n, 1e-5f);
        bad += memcmp(a, b, (size_t)n * sizeof *a) != 0;
        double ss = 0;
        for (int64_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
        const double scale = 1.0 / sqrt(ss / (double)n + 1e-5f);
        for (int64_t i = 0; i < n; i++) {
            const double want = x[i] * scale * w[i], e = fabs(a[i] - want) / (fabs(want) > 1e-30 ? fabs(want) : 1e-30);
            if (!(e <= worst)) worst = e != e ? INFINITY : e;
        }
        memcpy(a, x, (size_t)n * sizeof *a);
        k->rmsnorm(a, a, w, n, 1e-5f); /* in place */
        bad += memcmp(a, b, (size_t)n * sizeof *a) != 0;
        memcpy(a, x, (size_t)n * sizeof *a);
        memcpy(b, x, (size_t)n * sizeof *b);
        k->add(a, c, n);
        lm_kernels_scalar.add(b, c, n);
        bad += memcmp(a, b, (size_t)n * sizeof *a) != 0;
        for (int64_t i = 0; i < n; i++) bad += b[i] != x[i] + c[i];
    }
    CHECKF(bad == 0, "%s rmsnorm/add: %d results differ from the scalar table's", k->name, bad);
    CHECKF(worst < 1e-6, "%s rmsnorm differs from the formula in double by %.1e", k->name, worst);
}

/* The column softmax against double precision: widths around the vector
 * widths (to 64), blocks of queries whose first sees no rows before it or
 * many, rows fewer than the columns see; rows past a column's last are
 * exactly 0. */
static void check_softmax_exp_cols(const lm_kernels *k) {
    static const int64_t widths[] = {1, 7, 8, 9, 16, 17, 32, 33, 48, 64};
    double worst = 0;
    int zeros_bad = 0;
    for (size_t wi = 0; wi < sizeof widths / sizeof *widths; wi++) {
        const int64_t width = widths[wi];
        for (int64_t first = 0; first <= 40; first += 13) {
            for (int64_t rows = 1; rows <= first + width; rows += 1 + (first + width) / 5) {
                float s[110 * 64], orig[110 * 64], sums[64];
                for (int64_t i = 0; i < rows * width; i++) s[i] = orig[i] = uniform(-20, 20);
                const float scale = 0.125f;
                k->softmax_exp_cols(s, rows, width, first, scale, sums);
                for (int64_t j = 0; j < width; j++) {
                    const int64_t seen = first + j + 1 < rows ? first + j + 1 : rows;
                    double max = orig[j], sum = 0;
                    for (int64_t r = 1; r < seen; r++) max = orig[r * width + j] > max ? orig[r * width + j] : max;
                    for (int64_t r = 0; r < seen; r++) {
                        double e = exp(((double)orig[r * width + j] - max) * scale);
                        double d = fabs(s[r * width + j] - e) / e;
                        worst = d > worst ? d : worst;
                        sum += e;
                    }
                    for (int64_t r = seen; r < rows; r++) zeros_bad += s[r * width + j] != 0.0f;
                    double d = fabs(sums[j] - sum) / sum;
                    worst = d > worst ? d : worst;
                }
            }
        }
    }
    printf("%s column softmax: %.1e relative\n", k->name, worst);
    CHECKF(worst < 1e-6, "%s column softmax differs from double precision by %.1e", k->name, worst);
    CHECKF(zeros_bad == 0, "%s column softmax: %d values past a column's last row are not 0", k->name, zeros_bad);
}

#if defined(__x86_64__)
/* Vectorised dequantisation equals the scalar reference bit for bit, on
 * quantised data and on raw random blocks (every bit pattern of scales). */
/* AVX2's activation quantiser against the reference, byte for byte: random blocks of several
 * magnitudes, a zero block, and values whose scaled form is exactly k + 1/2 or just below 1/2
 * (where rounding by adding 0.5 would go wrong). */
static void check_quantize_q8a_avx2(void) {
    enum { NB = 64 };
    float x[NB * 32];
    block_q8a a[NB], b[NB];
    int differ = 0;
    for (int trial = 0; trial < 50; trial++) {
        for (int i = 0; i < NB * 32; i++) x[i] = uniform(-1, 1) * (float)pow(10.0, (double)(i / 32 % 7) - 3);
        for (int i = 0; i < 32; i++) x[i] = 0; /* block 0: all zero */
        x[32] = 127; /* block 1: d = 1, so the values are the scaled values */
        for (int i = 33; i < 64; i++) x[i] = (float)((i % 2 ? 1 : -1) * ((i % 60) + 0.5));
        x[40] = 0.49999997f, x[41] = -0.49999997f, x[42] = 0.5f, x[43] = -0.5f, x[44] = -0.0f;
        /* NB blocks (runs of 8 sharing a scale), then NB - 1 (a scale a block) */
        lm_quantize_q8a_ref(x, a, NB);
        lm_quantize_q8a_avx2(x, b, NB);
        differ += memcmp(a, b, sizeof a) != 0;
        lm_quantize_q8a_ref(x, a, NB - 1);
        lm_quantize_q8a_avx2(x, b, NB - 1);
        differ += memcmp(a, b, (NB - 1) * sizeof *a) != 0;
    }
    CHECKF(differ == 0, "avx2 q8a quantisation differs from the reference in %d of 100 calls", differ);
    /* block_q8s, NB - 1 blocks (not runs of 8): the same values, with their sums. */
    block_q8s c[NB], r[NB];
    lm_quantize_q8s_avx2(x, c, NB - 1);
    int bad_s = 0;
    for (int k = 0; k < NB - 1; k++) {
        int32_t sum = 0;
        for (int i = 0; i < 32; i++) sum += a[k].qs[i];
        bad_s += c[k].d != a[k].d || c[k].sum != sum || memcmp(c[k].qs, a[k].qs, 32) != 0;
    }
    CHECKF(bad_s == 0, "avx2 q8s quantisation: %d blocks differ from q8a's values and sums", bad_s);
    /* NB blocks, runs of 8 sharing a scale: the reference's bytes, and its
     * scale from each run's largest magnitude */
    lm_quantize_q8s_avx2(x, c, NB);
    lm_quantize_q8s_ref(x, r, NB);
    int bad_run = 0;
    for (int k = 0; k < NB; k++) {
        float amax = 0;
        for (int i = 0; i < 256; i++) amax = fmaxf(amax, fabsf(x[256 * (k / 8) + i]));
        bad_run += r[k].d != amax / 127;
    }
    CHECKF(memcmp(c, r, sizeof c) == 0, "avx2 q8s quantisation in runs of 8 differs from the reference");
    CHECKF(bad_run == 0, "q8s reference: %d blocks without their run's scale", bad_run);
    if (lm_cpu_has_avx512_vnni()) { /* AVX-512's, over 1..NB blocks (a partial group of 16, runs of 8 or not) */
        int bad_512 = 0;
        for (int nb = 1; nb <= NB; nb++) {
            block_q8s e[NB];
            memset(e, 0x5A, sizeof e);
            lm_quantize_q8s_avx2(x, c, nb);
            lm_quantize_q8s_avx512(x, e, nb);
            bad_512 += memcmp(e, c, (size_t)nb * sizeof *e) != 0 || (nb < NB && e[nb].d == c[nb].d);
        }
        CHECKF(bad_512 == 0, "avx512 q8s quantisation differs from avx2's in %d of %d calls", bad_512, NB);
    }
    CHECK(a[1].qs[8] == 0 && a[1].qs[10] == 1 && a[1].qs[11] == -1 && a[1].qs[1] == 34 && a[1].qs[2] == -35);
    if (differ == 0) printf("avx2 q8a quantisation: equal to the reference byte for byte\n");
}

/* The same for Q8_K (the K-quant kernels' activations): magnitudes from 1e-3
 * to 1e3, a zero block, ties for the largest magnitude (+a before -a and the
 * reverse), values that scale to exactly k + 1/2. */
static void check_quantize_q8_K_avx2(void) {
    enum { NB = 8 };
    float x[NB * QK_K];
    block_q8_K a[NB], b[NB];
    int differ = 0;
    for (int trial = 0; trial < 50; trial++) {
        for (int i = 0; i < NB * QK_K; i++) x[i] = uniform(-1, 1) * (float)pow(10.0, (double)(i / QK_K % 7) - 3);
        for (int i = 0; i < QK_K; i++) x[i] = 0;            /* block 0: all zero */
        x[QK_K + 5] = 2.0f, x[QK_K + 9] = -2.0f;           /* block 1: +max first */
        x[2 * QK_K + 3] = -3.0f, x[2 * QK_K + 200] = 3.0f; /* block 2: -max first */
        x[3 * QK_K] = -127.0f; /* block 3: iscale 1, values at k + 1/2 */
        for (int i = 1; i < 64; i++) x[3 * QK_K + i] = (float)((i % 2 ? 1 : -1) * ((i % 60) + 0.5));
        memset(a, 0x55, sizeof a), memset(b, 0x55, sizeof b); /* padding alike */
        REQUIRE(lm_quantize_row(LM_TYPE_Q8_K, x, a, NB * QK_K, NULL) == LM_OK);
        lm_quantize_q8_K_avx2(x, b, NB);
        differ += memcmp(a, b, sizeof a) != 0;
        if (lm_cpu_has_avx512_vnni()) {
            memset(b, 0x55, sizeof b);
            lm_quantize_q8_K_avx512(x, b, NB);
            differ += memcmp(a, b, sizeof a) != 0;
            /* the activation kinds made in the pass: sums of 32 (bsums 8..15 zero), bytes + 128 */
            block_q8_K want[NB];
            for (int kind = 0; kind < 2; kind++) {
                memcpy(want, a, sizeof a);
                for (int blk = 0; blk < NB; blk++) {
                    if (kind == 0) {
                        for (int j = 0; j < 8; j++) {
                            want[blk].bsums[j] = (int16_t)(a[blk].bsums[2 * j] + a[blk].bsums[2 * j + 1]);
                        }
                        memset(want[blk].bsums + 8, 0, 8 * sizeof want[blk].bsums[0]);
                    } else {
                        for (int j = 0; j < QK_K; j++) want[blk].qs[j] = (int8_t)((uint8_t)a[blk].qs[j] ^ 0x80u);
                    }
                }
                memset(b, 0x55, sizeof b);
                lm_quantize_q8_K_kind_avx512(x, b, NB, kind == 0, kind == 1);
                differ += memcmp(want, b, sizeof want) != 0;
            }
        }
    }
    CHECKF(differ == 0, "avx2 or avx512 q8_K quantisation differs from the reference in %d of 50 trials", differ);
    if (differ == 0) printf("avx2%s q8_K quantisation: equal to the reference byte for byte\n", lm_cpu_has_avx512_vnni() ? " and avx512" : "");
}

static void check_dequant_avx2(void) {
    int types = 0;
    for (int t = 0; t < LM_TYPE_COUNT_; t++) {
        if (!lm_dequant_avx2[t]) continue;
        types++;
        int64_t bs = lm_type_get_info((uint32_t)t)->block_size;
        int differ = 0;
        for (int trial = 0; trial < 60; trial++) {
            int64_t n = bs * (1 + trial % 5) * (bs == 1 ? 37 : 1);
            size_t rb = lm_type_row_size((lm_type)t, n);
            uint8_t *row = malloc(rb);
            float *a = malloc((size_t)n * 4), *b = malloc((size_t)n * 4);
            if (trial % 2) {
                for (size_t i = 0; i < rb; i++) row[i] = (uint8_t)lm_rng_next(&rng);
                sanitize((lm_type)t, row, n / bs);
            } else {
                for (int64_t i = 0; i < n; i++) a[i] = uniform(-3, 3);
                lm_quantize_row((lm_type)t, a, row, n, NULL);
            }
            lm_dequantize_row((lm_type)t, row, a, n, NULL);
            lm_dequant_avx2[t](row, b, n);
            for (int64_t i = 0; i < n; i++) differ += memcmp(&a[i], &b[i], 4) != 0 && !(a[i] != a[i] && b[i] != b[i]);
            free(row);
            free(a);
            free(b);
        }
        CHECKF(differ == 0, "avx2 dequantisation of %s differs from the scalar one in %d values",
               lm_type_get_info((uint32_t)t)->name, differ);
    }
    printf("avx2 dequantisation: %d types equal to the scalar reference bit for bit\n", types);
    CHECK(types >= 6);
    /* The 8x8 transposition, with a tail of columns, from packed rows and
     * from rows 24 apart into rows 19 apart (nothing between them written). */
    for (int64_t kc = 1; kc <= 21; kc += 4) {
        for (int strided = 0; strided < 2; strided++) {
            const int64_t ld = strided ? 24 : kc, ldd = strided ? 19 : 16;
            float src[16 * 24], dst[21 * 19];
            for (int i = 0; i < 16 * 24; i++) src[i] = (float)i;
            for (int i = 0; i < 21 * 19; i++) dst[i] = -1.0f;
            lm_gemm_transpose_avx2(src, ld, 16, kc, dst, ldd);
            int bad = 0;
            for (int64_t k = 0; k < kc; k++) {
                for (int j = 0; j < ldd; j++) bad += dst[k * ldd + j] != (j < 16 ? src[j * ld + k] : -1.0f);
            }
            CHECKF(bad == 0, "transpose of 16 x %lld (rows %lld apart, into rows %lld apart): %d values misplaced",
                   (long long)kc, (long long)ld, (long long)ldd, bad);
        }
    }
}
#endif

int main(void) {
    lm_rng_seed(&rng, 99);
#if defined(__x86_64__)
    if (lm_kernels_named("avx2")) check_dequant_avx2();
    if (lm_kernels_named("avx2")) {
        check_quantize_q8a_avx2();
        check_quantize_q8_K_avx2();
    }
#endif
#if defined(__x86_64__)
    check_attn_causal(&lm_gemm_scalar);
    if (lm_kernels_named("avx2")) check_gemm(&lm_gemm_avx2), check_attn_causal(&lm_gemm_avx2);
    if (lm_kernels_named("avx512") && lm_gemm_kernel_best() == &lm_gemm_avx512) {
        check_gemm(&lm_gemm_avx512);
        check_attn_causal(&lm_gemm_avx512);
        check_gemm(&lm_gemm_avx512_attn);
        check_attn_causal(&lm_gemm_avx512_attn);
    }
#endif
    const char *paths[] = {"scalar", "avx2", "avx512"};
    int ran = 0;
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        const lm_kernels *k = lm_kernels_named(paths[i]);
        if (!k) {
            printf("%s: not supported by this CPU, skipped\n", paths[i]);
            continue;
        }
        check_path(k);
        check_x16(k);
        check_attention(k);
        check_f16_conversions(k);
        check_swiglu(k);
        check_rope(k);
        check_softmax_exp_cols(k);
        check_rmsnorm_add(k);
        ran++;
    }
    CHECK(ran >= 1);
    check_x16_ops();
    check_x16_shared_act();
    check_matmul_swiglu();
    check_swiglu_quantize();
    check_ffn_one_token();
    CHECK(lm_kernels_named("no-such-isa") == NULL);
    CHECK(lm_kernels_best() != NULL);
    TEST_END();
}
