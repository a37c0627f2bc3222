/* Every kernel of every instruction-set path this CPU runs, against the
 * scalar kernel on the same activations: random rows (valid quantised data
 * and raw random blocks), awkward lengths (one block, odd counts, tails not a
 * multiple of the vector width), many rows. */
#include "base/rng.h"
#include "llmos/types.h"
#include "tensor/fp16.h"
#include "tensor/kernels.h"
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
            lm_act_kind kind = lm_act_kind_for((lm_type)t);
            if (kind == LM_ACT_Q8A && n % 32) continue;
            for (int trial = 0; trial < 40; trial++) {
                size_t row_bytes = lm_type_row_size((lm_type)t, n);
                uint8_t *row = malloc(row_bytes);
                float *x = malloc((size_t)n * 4), *wf = malloc((size_t)n * 4);
                void *act = malloc(lm_act_size(kind, n));
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
                float a = ref->dot[t](row, act, n), b = k->dot[t](row, act, n);
                if (k->dot4[t]) { /* four copies of the activations: each result equals dot's, bit for bit */
                    size_t sz = lm_act_size(kind, n);
                    uint8_t *four = malloc(4 * sz);
                    for (int j = 0; j < 4; j++) memcpy(four + j * sz, act, sz);
                    float out[4];
                    k->dot4[t](row, four, sz, n, out);
                    for (int j = 0; j < 4; j++) {
                        if (memcmp(&out[j], &b, sizeof b) != 0) bad++;
                    }
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
                checked++;
            }
        }
        CHECKF(bad == 0, "%s %s: %d of the dot products differ from scalar (worst relative %.2e)", k->name, info->name, bad, worst);
        if (k != ref) printf("%-6s %-5s worst relative difference from scalar %.2e\n", k->name, info->name, worst);
    }
    CHECK(checked > 0);
}

int main(void) {
    lm_rng_seed(&rng, 99);
    const char *paths[] = {"scalar", "avx2", "avx512"};
    int ran = 0;
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        const lm_kernels *k = lm_kernels_named(paths[i]);
        if (!k) {
            printf("%s: not supported by this CPU, skipped\n", paths[i]);
            continue;
        }
        check_path(k);
        ran++;
    }
    CHECK(ran >= 1);
    /* vpdpbusd and maddubs + madd give the same sums here: the VNNI kernels
     * must equal the AVX2 ones bit for bit. */
    const lm_kernels *a2 = lm_kernels_named("avx2"), *a5 = lm_kernels_named("avx512");
    if (a2 && a5) {
        lm_type types[] = {LM_TYPE_Q8_0, LM_TYPE_Q4_0};
        int differ = 0;
        for (int ti = 0; ti < 2; ti++) {
            for (int trial = 0; trial < 200; trial++) {
                int64_t n = 32 * (1 + (int64_t)(lm_rng_next(&rng) % 40));
                size_t rb = lm_type_row_size(types[ti], n), as = lm_act_size(LM_ACT_Q8A, n);
                uint8_t *row = malloc(rb), *act = malloc(4 * as);
                float *x = malloc((size_t)n * 4);
                for (int64_t i = 0; i < n; i++) x[i] = uniform(-1, 1);
                lm_quantize_row(types[ti], x, row, n, NULL);
                for (int j = 0; j < 4; j++) {
                    for (int64_t i = 0; i < n; i++) x[i] = uniform(-3, 3);
                    lm_act_quantize(LM_ACT_Q8A, x, act + j * as, n);
                }
                float r2 = a2->dot[types[ti]](row, act, n), r5 = a5->dot[types[ti]](row, act, n), o2[4], o5[4];
                a2->dot4[types[ti]](row, act, as, n, o2);
                a5->dot4[types[ti]](row, act, as, n, o5);
                differ += memcmp(&r2, &r5, 4) != 0 || memcmp(o2, o5, sizeof o2) != 0;
                free(row);
                free(act);
                free(x);
            }
        }
        CHECKF(differ == 0, "%d VNNI results differ from AVX2", differ);
    }
    CHECK(lm_kernels_named("no-such-isa") == NULL);
    CHECK(lm_kernels_best() != NULL);
    TEST_END();
}
