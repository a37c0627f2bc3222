/* Element types: half precision against the CPU's own conversion
 * instructions, dequantisation against an element-wise reading of each
 * format written here, quantise/dequantise error bounds, the matrix-vector
 * path against dequantise-then-dot, and quantised models against F32 on
 * perplexity (Q8_0 within 0.5%, Q4_K_M within 5%). */
#include "base/cpu.h"
#include "base/rng.h"
#include "llmos/init.h"
#include "llmos/perplexity.h"
#include "llmos/quantize.h"
#include "llmos/types.h"
#include "tensor/fp16.h"
#include "tensor/kernels.h"
#include "tensor/ops.h"
#include "tensor/quant_blocks.h"
#include "test.h"

#include <math.h>
#include <unistd.h>

#define FIX(name) LLMOS_FIXTURES "/" name

static lm_rng rng;
static float uniform(float lo, float hi) { return lo + (hi - lo) * (float)lm_rng_uniform(&rng); }

/* ---- half precision ---- */

#if defined(__x86_64__)
#include <immintrin.h>
__attribute__((target("f16c"))) static uint16_t hw_to_half(float f) { return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT); }
__attribute__((target("f16c"))) static float hw_from_half(uint16_t h) { return _cvtsh_ss(h); }
#endif

static void test_half(void) {
    int bad_roundtrip = 0, bad_bf16 = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = lm_fp16_to_fp32((uint16_t)h);
        if (isnan(f) ? !isnan(lm_fp16_to_fp32(lm_fp32_to_fp16(f))) : lm_fp32_to_fp16(f) != h) bad_roundtrip++;
        float b = lm_bf16_to_fp32((uint16_t)h);
        if (!isnan(b) && lm_fp32_to_bf16(b) != h) bad_bf16++;
    }
    CHECKF(bad_roundtrip == 0, "%d half values do not survive fp16 -> fp32 -> fp16", bad_roundtrip);
    CHECKF(bad_bf16 == 0, "%d bfloat16 values do not survive bf16 -> fp32 -> bf16", bad_bf16);
    /* Ties round to even: 1 + 2^-11 is halfway between 1 and the next half. */
    CHECK(lm_fp32_to_fp16(1.0f + 0x1p-11f) == 0x3c00);
    CHECK(lm_fp32_to_fp16(1.0f + 3 * 0x1p-11f) == 0x3c02);
    CHECK(lm_fp32_to_fp16(65520.0f) == 0x7c00); /* rounds to infinity */
    CHECK(lm_fp32_to_bf16(1.0f + 0x1p-8f) == 0x3f80);
#if defined(__x86_64__)
    if (lm_cpu_has_avx2()) { /* implies F16C */
        int mismatches = 0;
        for (uint32_t h = 0; h < 65536; h++) {
            float a = lm_fp16_to_fp32((uint16_t)h), b = hw_from_half((uint16_t)h);
            if (!(isnan(a) && isnan(b)) && memcmp(&a, &b, 4) != 0) mismatches++;
        }
        for (int i = 0; i < 1000000; i++) {
            uint32_t bits = (uint32_t)lm_rng_next(&rng);
            float f;
            memcpy(&f, &bits, 4);
            uint16_t a = lm_fp32_to_fp16(f), b = hw_to_half(f);
            if (isnan(f) ? !(isnan(lm_fp16_to_fp32(a)) && isnan(lm_fp16_to_fp32(b))) : a != b) mismatches++;
        }
        CHECKF(mismatches == 0, "%d conversions differ from the CPU's F16C instructions", mismatches);
        printf("fp16 conversions agree with F16C on all 65536 halves and 1,000,000 random floats\n");
    }
#endif
}

/* ---- an element-wise reading of each format (independent of dequant.c's loops) ---- */

static float ref_element(lm_type t, const uint8_t *block, int k) {
    uint16_t h;
    switch (t) {
    case LM_TYPE_Q4_0: {
        const block_q4_0 *b = (const void *)block;
        int nib = k < 16 ? b->qs[k] & 15 : b->qs[k - 16] >> 4;
        return lm_fp16_to_fp32(b->d) * (nib - 8);
    }
    case LM_TYPE_Q4_1: {
        const block_q4_1 *b = (const void *)block;
        int nib = k < 16 ? b->qs[k] & 15 : b->qs[k - 16] >> 4;
        return lm_fp16_to_fp32(b->d) * nib + lm_fp16_to_fp32(b->m);
    }
    case LM_TYPE_Q5_0: case LM_TYPE_Q5_1: {
        const uint8_t *qh = t == LM_TYPE_Q5_0 ? ((const block_q5_0 *)(const void *)block)->qh : ((const block_q5_1 *)(const void *)block)->qh;
        const uint8_t *qs = t == LM_TYPE_Q5_0 ? ((const block_q5_0 *)(const void *)block)->qs : ((const block_q5_1 *)(const void *)block)->qs;
        int nib = k < 16 ? qs[k] & 15 : qs[k - 16] >> 4;
        int q = nib | (((qh[k / 8] >> (k % 8)) & 1) << 4);
        memcpy(&h, block, 2);
        if (t == LM_TYPE_Q5_0) return lm_fp16_to_fp32(h) * (q - 16);
        uint16_t m;
        memcpy(&m, block + 2, 2);
        return lm_fp16_to_fp32(h) * q + lm_fp16_to_fp32(m);
    }
    case LM_TYPE_Q8_0: {
        const block_q8_0 *b = (const void *)block;
        return lm_fp16_to_fp32(b->d) * b->qs[k];
    }
    case LM_TYPE_Q2_K: {
        const block_q2_K *b = (const void *)block;
        int half = k / 128, j = (k % 128) / 32, r = k % 32;
        int level = (b->qs[32 * half + r] >> (2 * j)) & 3;
        uint8_t sc = b->scales[8 * half + 2 * j + (r >= 16)];
        return lm_fp16_to_fp32(b->d) * (sc & 15) * level - lm_fp16_to_fp32(b->dmin) * (sc >> 4);
    }
    case LM_TYPE_Q3_K: {
        const block_q3_K *b = (const void *)block;
        int half = k / 128, j = (k % 128) / 32, r = k % 32, is = 8 * half + 2 * j + (r >= 16);
        int level = (b->qs[32 * half + r] >> (2 * j)) & 3;
        int high_set = (b->hmask[r] >> (4 * half + j)) & 1;
        int low = is < 8 ? b->scales[is] & 15 : b->scales[is - 8] >> 4;
        int hi = (b->scales[8 + is % 4] >> (2 * (is / 4))) & 3;
        int scale = (low | (hi << 4)) - 32;
        return lm_fp16_to_fp32(b->d) * scale * (level - (high_set ? 0 : 4));
    }
    case LM_TYPE_Q4_K: case LM_TYPE_Q5_K: {
        const uint8_t *s = t == LM_TYPE_Q4_K ? ((const block_q4_K *)(const void *)block)->scales : ((const block_q5_K *)(const void *)block)->scales;
        const uint8_t *qs = t == LM_TYPE_Q4_K ? ((const block_q4_K *)(const void *)block)->qs : ((const block_q5_K *)(const void *)block)->qs;
        int g = k / 64, within = k % 64, sub = 2 * g + (within >= 32), l = within % 32;
        int q = within < 32 ? qs[32 * g + l] & 15 : qs[32 * g + l] >> 4;
        if (t == LM_TYPE_Q5_K) q += ((((const block_q5_K *)(const void *)block)->qh[l] >> sub) & 1) * 16;
        int sc = sub < 4 ? s[sub] & 63 : (s[sub + 4] & 15) | ((s[sub - 4] >> 6) << 4);
        int m = sub < 4 ? s[sub + 4] & 63 : (s[sub + 4] >> 4) | ((s[sub] >> 6) << 4);
        uint16_t d, dmin;
        memcpy(&d, block, 2);
        memcpy(&dmin, block + 2, 2);
        return lm_fp16_to_fp32(d) * sc * q - lm_fp16_to_fp32(dmin) * m;
    }
    case LM_TYPE_Q6_K: {
        const block_q6_K *b = (const void *)block;
        int half = k / 128, within = k % 128, quarter = within / 32, l = within % 32;
        const uint8_t *ql = b->ql + 64 * half, *qh = b->qh + 32 * half;
        int low = quarter == 0 ? ql[l] & 15 : quarter == 1 ? ql[l + 32] & 15 : quarter == 2 ? ql[l] >> 4 : ql[l + 32] >> 4;
        int q = (low | (((qh[l] >> (2 * quarter)) & 3) << 4)) - 32;
        return lm_fp16_to_fp32(b->d) * b->scales[8 * half + 2 * quarter + l / 16] * q;
    }
    default:
        return NAN;
    }
}

static void random_half(uint8_t *p) {
    uint16_t h = lm_fp32_to_fp16(uniform(-0.1f, 0.1f));
    memcpy(p, &h, 2);
}

static void test_dequant_formats(void) {
    lm_type types[] = {LM_TYPE_Q4_0, LM_TYPE_Q4_1, LM_TYPE_Q5_0, LM_TYPE_Q5_1, LM_TYPE_Q8_0,
                       LM_TYPE_Q2_K, LM_TYPE_Q3_K, LM_TYPE_Q4_K, LM_TYPE_Q5_K, LM_TYPE_Q6_K};
    for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
        lm_type t = types[ti];
        const lm_type_info *info = lm_type_get_info(t);
        int bad = 0;
        for (int trial = 0; trial < 200; trial++) {
            uint8_t block[512];
            for (uint32_t i = 0; i < info->type_size; i++) block[i] = (uint8_t)lm_rng_next(&rng);
            /* Finite half fields where each format keeps them. */
            switch (t) {
            case LM_TYPE_Q4_0: case LM_TYPE_Q5_0: case LM_TYPE_Q8_0: random_half(block); break;
            case LM_TYPE_Q4_1: case LM_TYPE_Q5_1: case LM_TYPE_Q4_K: case LM_TYPE_Q5_K: random_half(block); random_half(block + 2); break;
            case LM_TYPE_Q2_K: random_half(block + 80); random_half(block + 82); break;
            case LM_TYPE_Q3_K: random_half(block + 108); break;
            case LM_TYPE_Q6_K: random_half(block + 208); break;
            default: break;
            }
            float y[256];
            REQUIRE(lm_dequantize_row(t, block, y, info->block_size, NULL) == LM_OK);
            for (uint32_t k = 0; k < info->block_size; k++) {
                float want = ref_element(t, block, (int)k);
                if (fabsf(y[k] - want) > 1e-6f * (1 + fabsf(want))) bad++;
            }
        }
        CHECKF(bad == 0, "%s: %d elements differ from the format definition", info->name, bad);
    }
}

/* ---- quantisers ---- */

static void fill(float *x, int64_t n, int kind) {
    for (int64_t i = 0; i < n; i++) {
        switch (kind) {
        case 0: x[i] = uniform(-1, 1); break;
        case 1: x[i] = uniform(-1, 1) * uniform(-1, 1) * 3; break;          /* peaked */
        case 2: x[i] = (i % 37 == 0) ? uniform(-20, 20) : uniform(-0.5f, 0.5f); break; /* outliers */
        case 3: x[i] = 0; break;
        default: x[i] = 0.75f; break;
        }
    }
}

/* Relative RMS error of quantise -> dequantise, per type and data kind. For
 * uniform data on [-1, 1] a grid step s gives an RMS error of s / sqrt(12)
 * against an RMS of 1 / sqrt(3): relative error s / 2. The bounds are that
 * with 10-25% headroom (q4_0 loses a little more to its clamp at level 15). */
static void test_quantizers(void) {
    struct {
        lm_type t;
        double max_rel_rmse; /* on uniform data */
    } types[] = {{LM_TYPE_F16, 1e-3},        {LM_TYPE_BF16, 5e-3},        {LM_TYPE_Q8_0, 1.1 / 127 / 2},
                 {LM_TYPE_Q5_0, 1.1 / 16 / 2},  {LM_TYPE_Q5_1, 1.1 * 2 / 31 / 2}, {LM_TYPE_Q4_0, 1.25 / 8 / 2},
                 {LM_TYPE_Q4_1, 1.1 * 2 / 15 / 2}, {LM_TYPE_Q6_K, 1.1 / 32 / 2},  {LM_TYPE_Q5_K, 1.1 * 2 / 31 / 2},
                 {LM_TYPE_Q4_K, 1.1 * 2 / 15 / 2}, {LM_TYPE_Q8_K, 1.1 / 127 / 2}};
    int64_t sizes_blocks[] = {1, 2, 3, 7};
    for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
        lm_type t = types[ti].t;
        const lm_type_info *info = lm_type_get_info(t);
        int64_t bs = info->block_size == 1 ? 32 : info->block_size;
        double worst = 0;
        for (size_t si = 0; si < 4; si++) {
            for (int kind = 0; kind < 5; kind++) {
                int64_t n = bs * sizes_blocks[si];
                float *x = malloc((size_t)n * 4), *y = malloc((size_t)n * 4);
                uint8_t *q = malloc(lm_type_row_size(t, n) + 1);
                fill(x, n, kind);
                REQUIRE(lm_quantize_row(t, x, q, n, NULL) == LM_OK);
                REQUIRE(lm_dequantize_row(t, q, y, n, NULL) == LM_OK);
                double se = 0, ss = 0, maxerr = 0;
                for (int64_t i = 0; i < n; i++) {
                    se += (double)(x[i] - y[i]) * (x[i] - y[i]);
                    ss += (double)x[i] * x[i];
                    if (fabs(x[i] - y[i]) > maxerr) maxerr = fabs(x[i] - y[i]);
                }
                double rel = ss > 0 ? sqrt(se / ss) : sqrt(se);
                if (kind == 0 && rel > worst) worst = rel;
                if (kind == 0) CHECKF(rel <= types[ti].max_rel_rmse, "%s: relative RMS error %.4f > %.4f", info->name, rel, types[ti].max_rel_rmse);
                if (kind == 3) CHECKF(maxerr == 0, "%s: zeros do not stay zero", info->name);
                if (kind == 4) CHECKF(maxerr <= 0.75 * types[ti].max_rel_rmse, "%s: a constant row comes back off by %g", info->name, maxerr);
                if (kind == 2) CHECKF(rel <= 0.25, "%s: rows with outliers: relative RMS error %.3f", info->name, rel);
                free(x);
                free(y);
                free(q);
            }
        }
        printf("%-5s relative RMS error on uniform data: %.5f\n", info->name, worst);
    }
    /* Bytes per block as the GGUF format definitions give them. */
    CHECK(lm_type_row_size(LM_TYPE_Q4_K, 512) == 288 && lm_type_row_size(LM_TYPE_Q8_0, 64) == 68);
    CHECK(lm_type_row_size(LM_TYPE_Q6_K, 100) == 0);
    CHECK(lm_quantize_row(LM_TYPE_Q2_K, NULL, NULL, 256, NULL) == LM_ERR_UNSUPPORTED);
    CHECK(lm_type_from_name("Q4_k") == LM_TYPE_Q4_K && lm_type_from_name("nope") == -1);
}

/* ---- the matrix-vector path ---- */

static void test_matvec(void) {
    lm_type types[] = {LM_TYPE_F32, LM_TYPE_F16, LM_TYPE_BF16, LM_TYPE_Q8_0, LM_TYPE_Q4_0, LM_TYPE_Q4_1,
                       LM_TYPE_Q5_0, LM_TYPE_Q5_1, LM_TYPE_Q4_K, LM_TYPE_Q5_K, LM_TYPE_Q6_K};
    int64_t shapes[][2] = {{1, 256}, {7, 512}, {33, 768}, {300, 256}, {5, 2304}};
    for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
        for (size_t si = 0; si < 5; si++) {
            int64_t rows = shapes[si][0], cols = shapes[si][1];
            size_t row_bytes = lm_type_row_size(types[ti], cols);
            uint8_t *w = malloc(row_bytes * (size_t)rows);
            float *row = malloc((size_t)cols * 4), *x = malloc((size_t)cols * 4);
            float *y1 = malloc((size_t)rows * 4), *y2 = malloc((size_t)rows * 4);
            for (int64_t r = 0; r < rows; r++) {
                fill(row, cols, 0);
                lm_quantize_row(types[ti], row, w + (size_t)r * row_bytes, cols, NULL);
            }
            fill(x, cols, 1);
            lm_weight W = {w, types[ti], rows, cols, row_bytes};
            lm_matvec(y1, &W, x, 1);
            lm_matvec(y2, &W, x, 2);
            /* Integer kernels see activations rounded to 8 bits per block of
             * `ab` values: each is off by at most amax(block) / 254. */
            lm_act_kind kind = lm_act_kind_for(types[ti]);
            int64_t ab = kind == LM_ACT_Q8A ? 32 : kind == LM_ACT_Q8K ? QK_K : 0;
            int bad = 0;
            for (int64_t r = 0; r < rows; r++) {
                lm_dequantize_row(types[ti], w + (size_t)r * row_bytes, row, cols, NULL);
                double want = 0, mag = 0, act_err = 0;
                for (int64_t i = 0; i < cols; i++) {
                    want += (double)row[i] * x[i];
                    mag += fabs((double)row[i] * x[i]);
                    if (ab) {
                        float amax = 0;
                        for (int64_t k = i / ab * ab; k < (i / ab + 1) * ab; k++) amax = fmaxf(amax, fabsf(x[k]));
                        act_err += fabs((double)row[i]) * amax / 254;
                    }
                }
                if (fabs(y1[r] - want) > 1.01 * act_err + 1e-5 * mag + 1e-6) bad++;
                if (y1[r] != y2[r]) bad++;
            }
            CHECKF(bad == 0, "%s %lldx%lld: %d rows differ", lm_type_get_info(types[ti])->name, (long long)rows, (long long)cols, bad);
            free(w);
            free(row);
            free(x);
            free(y1);
            free(y2);
        }
    }
}

/* ---- whole models ---- */

static double perplexity_of(const char *path, const lm_model *base, double *kl) {
    lm_error err = {0};
    lm_model *m;
    REQUIRE(lm_model_load(path, &m, &err) == LM_OK);
    size_t len;
    char *text = test_read_file(FIX("text/tinystories_valid_head_20k.txt"), &len);
    REQUIRE(text);
    lm_perplexity_params p = {256, 8, 2, base, NULL, NULL}; /* 8 chunks: 2,040 tokens scored */
    lm_perplexity_result r;
    lm_status st = lm_perplexity(m, text, len, &p, &r, &err);
    CHECKF(st == LM_OK, "%s", err.message);
    if (kl) *kl = r.kl_mean;
    free(text);
    lm_model_free(m);
    return r.perplexity;
}

static void test_models(void) {
    char dir[] = "/tmp/llmos-quant-XXXXXX";
    REQUIRE(mkdtemp(dir));
    lm_error err = {0};
    lm_model *base;
    REQUIRE(lm_model_load(FIX("stories260K.gguf"), &base, &err) == LM_OK);
    double ppl_f32 = perplexity_of(FIX("stories260K.gguf"), NULL, NULL);
    struct {
        const char *scheme;
        double max_rel;
    } cases[] = {{"q8_0", 0.005}, {"q4_K_M", 0.05}, {"f16", 0.001}};
    for (size_t i = 0; i < 3; i++) {
        char out[128];
        snprintf(out, sizeof out, "%s/%s.gguf", dir, cases[i].scheme);
        lm_quantize_params qp = {cases[i].scheme, 2, NULL, NULL};
        lm_quantize_stats stats;
        CHECKF(lm_quantize_model(FIX("stories260K.gguf"), out, &qp, &stats, &err) == LM_OK, "%s", err.message);
        CHECKF(stats.n_quantized == 37 && stats.n_kept == 11, "%lld quantized, %lld kept", (long long)stats.n_quantized,
               (long long)stats.n_kept); /* 37 matrices; 11 norm vectors */
        double kl;
        double ppl = perplexity_of(out, base, &kl);
        double rel = ppl / ppl_f32 - 1;
        printf("%-7s perplexity %.4f (f32 %.4f, %+.3f%%), KL %.6f\n", cases[i].scheme, ppl, ppl_f32, 100 * rel, kl);
        CHECKF(fabs(rel) <= cases[i].max_rel, "%s: perplexity %.4f is %.2f%% from f32's %.4f", cases[i].scheme, ppl, 100 * rel, ppl_f32);
        /* Metadata kept; the file says what it holds. */
        lm_gguf *g;
        REQUIRE(lm_gguf_open(out, &g, &err) == LM_OK);
        CHECK(lm_gguf_kv_count(g) == 19 + 2);
        uint64_t ftype = 0;
        CHECK(lm_gguf_require_u64(g, "general.file_type", &ftype, &err) == LM_OK);
        CHECK(ftype == (i == 0 ? 7u : i == 1 ? 15u : 1u));
        const lm_gguf_tensor *down = lm_gguf_tensor_at(g, lm_gguf_find_tensor(g, "blk.0.ffn_down.weight"));
        CHECK(down && down->type == LM_TYPE_F16); /* rows of 172: no 32-block type fits */
        const lm_gguf_tensor *norm = lm_gguf_tensor_at(g, lm_gguf_find_tensor(g, "blk.0.attn_norm.weight"));
        CHECK(norm && norm->type == LM_TYPE_F32);
        lm_gguf_free(g);
        unlink(out);
    }
    lm_quantize_params bad = {"q3_Z", 1, NULL, NULL};
    CHECK(lm_quantize_model(FIX("stories260K.gguf"), "/tmp/never.gguf", &bad, NULL, &err) == LM_ERR_ARG);
    CHECK(strstr(err.message, "unknown quantization type 'q3_Z'") != NULL);
    CHECK(access("/tmp/never.gguf", F_OK) != 0);
    lm_model_free(base);
    rmdir(dir);
}

/* Largest |a - b| over largest |a|. */
static double max_rel_diff(const float *a, const float *b, int64_t n) {
    double diff = 0, scale = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        diff = d > diff ? d : diff;
        scale = fabs(a[i]) > scale ? fabs(a[i]) : scale;
    }
    return scale > 0 ? diff / scale : diff;
}

/* Batched prefill against token-by-token forwarding: batches below
 * LM_GEMM_MIN_TOKENS use the same dot products and give exactly the same
 * logits; larger ones go through the f32 GEMM over dequantised weights and
 * agree within tol (the single-token path quantises activations to 8 bits
 * for integer weight types, the GEMM does not). */
static void batch_matches_sequential(const char *path, double tol, lm_kv_type kv) {
    lm_error err = {0};
    lm_model *m;
    REQUIRE(lm_model_load(path, &m, &err) == LM_OK);
    const int64_t n = 150, nv = lm_model_get_config(m)->n_vocab, start = 10, small = 5;
    int32_t toks[150];
    for (int64_t i = 0; i < n; i++) toks[i] = (int32_t)(lm_rng_next(&rng) % (uint64_t)nv);
    lm_context *a, *b;
    REQUIRE(lm_context_init_kv(m, n, 2, kv, &a, &err) == LM_OK && lm_context_init_kv(m, n, 2, kv, &b, &err) == LM_OK);
    CHECK(lm_context_set_batch_size(b, 0, &err) == LM_ERR_ARG && lm_context_set_batch_size(b, n + 1, &err) == LM_ERR_ARG);
    CHECK(lm_context_set_batch_size(b, 64, &err) == LM_OK); /* 140 tokens cross two batch boundaries */
    float *seq = malloc((size_t)(n * nv) * 4), *bat = malloc((size_t)(n * nv) * 4);
    const float *lg;
    for (int64_t i = 0; i < n; i++) {
        REQUIRE(lm_context_forward(a, toks[i], i, &lg, &err) == LM_OK);
        memcpy(seq + i * nv, lg, (size_t)nv * 4);
    }
    /* The first tokens one at a time, then a small batch (exact), then the
     * rest (crossing batch boundaries) in one call. */
    for (int64_t i = 0; i < start - small; i++) {
        REQUIRE(lm_context_forward(b, toks[i], i, &lg, &err) == LM_OK);
        memcpy(bat + i * nv, lg, (size_t)nv * 4);
    }
    int64_t s0 = start - small;
    CHECK(lm_context_forward_batch(b, toks + s0, small, s0, bat + s0 * nv, &lg, &err) == LM_OK);
    CHECKF(memcmp(seq, bat, (size_t)(start * nv) * 4) == 0, "%s: small-batch logits differ from token-by-token ones",
           path);
    CHECK(memcmp(lg, seq + (start - 1) * nv, (size_t)nv * 4) == 0);
    CHECK(lm_context_forward_batch(b, toks + start, n - start, start, bat + start * nv, &lg, &err) == LM_OK);
    double worst = 0;
    int argmax_agree = 0;
    for (int64_t i = start; i < n; i++) {
        double d = max_rel_diff(seq + i * nv, bat + i * nv, nv);
        worst = d > worst ? d : worst;
        int64_t as = 0, ab = 0;
        for (int64_t v = 1; v < nv; v++) {
            if (seq[i * nv + v] > seq[i * nv + as]) as = v;
            if (bat[i * nv + v] > bat[i * nv + ab]) ab = v;
        }
        argmax_agree += as == ab;
    }
    printf("%s (%s KV cache): batched vs token-by-token logits: max relative difference %.2e (tolerance %.0e), argmax "
           "agrees at %d/%lld positions\n",
           path, lm_kv_type_name(kv), worst, tol, argmax_agree, (long long)(n - start));
    CHECKF(worst <= tol, "%s: batched logits differ from token-by-token ones by %.3e", path, worst);
    CHECK(max_rel_diff(seq + (n - 1) * nv, lg, nv) <= tol);
    CHECK(lm_context_forward_batch(b, toks, 2, n - 1, NULL, NULL, &err) == LM_ERR_LIMIT);
    free(seq);
    free(bat);
    lm_context_free(a);
    lm_context_free(b);
    lm_model_free(m);
}

/* A one-token step (lm_context_forward_step with n = 1: the server
 * decoding for one client, which takes the single-token forward pass)
 * against the same sequence's token in a two-sequence step, bit for bit,
 * with both KV cache types, 2 threads. */
static void single_step_matches_shared(const char *path) {
    lm_error err = {0};
    lm_model *m;
    REQUIRE(lm_model_load(path, &m, &err) == LM_OK);
    const int64_t nv = lm_model_get_config(m)->n_vocab, n = 24;
    float *one = malloc((size_t)nv * 4), *two = malloc((size_t)(2 * nv) * 4);
    int bad = 0;
    for (int kv = 0; kv < 2; kv++) {
        const lm_kv_type type = kv ? LM_KV_F16 : LM_KV_F32;
        lm_context *a, *b, *c;
        REQUIRE(lm_context_init_kv(m, n, 2, type, &a, &err) == LM_OK && lm_context_init_kv(m, n, 2, type, &b, &err) == LM_OK &&
                lm_context_init_kv(m, n, 2, type, &c, &err) == LM_OK);
        for (int64_t i = 0; i < n; i++) {
            int32_t tok[2] = {(int32_t)((i * 7919 + 3) % nv), (int32_t)((i * 104729 + 11) % nv)};
            int64_t pos[2] = {i, i};
            lm_context *alone[1] = {a}, *pair[2] = {b, c};
            CHECK(lm_context_forward_step(alone, tok, pos, 1, NULL, one, &err) == LM_OK);
            CHECK(lm_context_forward_step(pair, tok, pos, 2, NULL, two, &err) == LM_OK);
            bad += memcmp(one, two, (size_t)nv * 4) != 0;
        }
        lm_context_free(a);
        lm_context_free(b);
        lm_context_free(c);
    }
    CHECKF(bad == 0, "%s: %d one-token steps differ from the same token in a two-sequence step", path, bad);
    free(one);
    free(two);
    lm_model_free(m);
}

/* A prompt of n tokens at 1, 2 and 3 threads, then one token decoded after
 * it: the same logits bit for bit. Split by rows or (from 64 tokens a
 * thread, x16 matrices) each layer's tail by tokens, every value is
 * computed as one thread computes it; the decoded token reads every cached
 * key and value. */
static void batch_same_across_threads(const char *path, lm_kv_type kv) {
    lm_error err = {0};
    lm_model *m;
    REQUIRE(lm_model_load(path, &m, &err) == LM_OK);
    const int64_t n = 200, nv = lm_model_get_config(m)->n_vocab;
    int32_t toks[200];
    for (int64_t i = 0; i < n; i++) toks[i] = (int32_t)((i * 7919 + 5) % nv);
    float *ref = malloc((size_t)(n * nv) * 4), *got = malloc((size_t)(n * nv) * 4);
    float *next_ref = malloc((size_t)nv * 4);
    REQUIRE(ref && got && next_ref);
    int bad = 0;
    for (int threads = 1; threads <= 3; threads++) {
        lm_context *c;
        REQUIRE(lm_context_init_kv(m, n + 1, threads, kv, &c, &err) == LM_OK);
        float *out = threads == 1 ? ref : got;
        memset(out, 0xff, (size_t)(n * nv) * 4); /* NaNs: a row left unwritten differs */
        CHECK(lm_context_forward_batch(c, toks, n, 0, out, NULL, &err) == LM_OK);
        const float *next;
        CHECK(lm_context_forward(c, toks[0], n, &next, &err) == LM_OK);
        if (threads == 1) memcpy(next_ref, next, (size_t)nv * 4);
        if (threads > 1 && memcmp(ref, got, (size_t)(n * nv) * 4) != 0) {
            printf("%s: %d threads' prompt logits differ from one thread's\n", path, threads);
            bad++;
        }
        if (threads > 1 && memcmp(next_ref, next, (size_t)nv * 4) != 0) {
            printf("%s: the token after %d threads' prompt differs from one thread's\n", path, threads);
            bad++;
        }
        lm_context_free(c);
    }
    free(next_ref);
    CHECKF(bad == 0, "%s (%s cache): prompt logits depend on the thread count", path, lm_kv_type_name(kv));
    free(ref);
    free(got);
    lm_model_free(m);
}

static void test_batch(void) {
    batch_matches_sequential(FIX("stories260K.gguf"), 1e-4, LM_KV_F32);
    /* K-quant and Q4_0 kernels need 256-wide rows: random models of that width. */
    const lm_type types[] = {LM_TYPE_Q4_K, LM_TYPE_Q6_K, LM_TYPE_Q4_0, LM_TYPE_F16};
    const double tols[] = {5e-2, 5e-2, 5e-2, 1e-4};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        char path[] = "/tmp/llmos-batch-XXXXXX";
        int fd = mkstemp(path);
        REQUIRE(fd >= 0);
        close(fd);
        lm_init_params p = {256, 2, 4, 2, 512, 256, NULL, 300, types[i], 5, 2, NULL, NULL};
        lm_error err = {0};
        CHECKF(lm_model_init(&p, path, &err) == LM_OK, "%s", err.message);
        /* Then the same tokens with an f16 cache: decoding splits the heads'
         * Q, K, V, cache rows and attention over the 2 threads, each storing
         * half of a row. (The random stream then goes on as after the f32 run
         * alone: the tests after this one have tight error bounds on their
         * random data.) */
        const lm_rng before = rng;
        batch_matches_sequential(path, tols[i], LM_KV_F32);
        const lm_rng after = rng;
        rng = before;
        batch_matches_sequential(path, tols[i], LM_KV_F16);
        rng = after;
        single_step_matches_shared(path);
        batch_same_across_threads(path, LM_KV_F16);
        unlink(path);
    }
    /* Q4_K_M: Q and K in Q4_K, V in Q6_K in some layers (activations of two
     * kinds, which a prompt's steps quantise for both). */
    char f16[] = "/tmp/llmos-batch-XXXXXX", mix[] = "/tmp/llmos-batch-XXXXXX";
    int fa = mkstemp(f16), fb = mkstemp(mix);
    REQUIRE(fa >= 0 && fb >= 0);
    close(fa);
    close(fb);
    lm_init_params p = {256, 3, 4, 2, 512, 256, NULL, 300, LM_TYPE_F16, 5, 2, NULL, NULL};
    lm_error err = {0};
    lm_quantize_params qp = {"q4_K_M", 2, NULL, NULL};
    CHECKF(lm_model_init(&p, f16, &err) == LM_OK && lm_quantize_model(f16, mix, &qp, NULL, &err) == LM_OK, "%s",
           err.message);
    lm_model *m;
    REQUIRE(lm_model_load(mix, &m, &err) == LM_OK);
    int mixed = 0;
    for (int64_t i = 0; i < lm_gguf_tensor_count(lm_model_get_gguf(m)); i++) {
        const lm_gguf_tensor *t = lm_gguf_tensor_at(lm_model_get_gguf(m), i);
        mixed += strstr(t->name, "attn_v") && t->type == LM_TYPE_Q6_K;
    }
    lm_model_free(m);
    CHECKF(mixed > 0, "q4_K_M: no layer's V in Q6_K (%d)", mixed);
    const lm_rng before = rng; /* (the tests after this one keep their random data, as above) */
    batch_matches_sequential(mix, 5e-2, LM_KV_F32);
    rng = before;
    batch_matches_sequential(mix, 5e-2, LM_KV_F16);
    rng = before;
    batch_same_across_threads(mix, LM_KV_F32);
    unlink(f16);
    unlink(mix);
}

int main(void) {
    lm_rng_seed(&rng, 7);
    test_batch();
    test_half();
    test_dequant_formats();
    test_quantizers();
    test_matvec();
    test_models();
    TEST_END();
}
