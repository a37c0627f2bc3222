/* Chooses the kernel table: the best the CPU runs, or LLMOS_KERNELS. */
#include "kernels.h"

#include "../base/cpu.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cpu_has_avx2(void) { return lm_cpu_has_avx2(); }

#if defined(__x86_64__)
/* AVX2's table with the VNNI kernels where there are some. */
static lm_kernels avx512_table;
static pthread_once_t avx512_once = PTHREAD_ONCE_INIT;

static void build_avx512(void) {
    avx512_table = lm_kernels_avx2;
    avx512_table.name = "avx512";
    const lm_kernels *v = &lm_kernels_avx512_vnni_only;
    for (int t = 0; t < LM_TYPE_COUNT_; t++) {
        if (v->dot[t]) {
            /* AVX2's four-token kernel would not sum as the new dot does
             * (nor read a new activation layout). */
            avx512_table.dot[t] = v->dot[t];
            avx512_table.dot4[t] = v->dot4[t];
        }
        if (v->act[t]) avx512_table.act[t] = v->act[t];
        avx512_table.dot_x16[t] = v->dot_x16[t];
        avx512_table.dot_x16_pair[t] = v->dot_x16_pair[t];
        avx512_table.dot_x32[t] = v->dot_x32[t];
    }
    if (v->attn_scores) avx512_table.attn_scores = v->attn_scores;
    if (v->attn_values) avx512_table.attn_values = v->attn_values;
    if (v->attn_scores_f16) avx512_table.attn_scores_f16 = v->attn_scores_f16;
    if (v->attn_values_f16) avx512_table.attn_values_f16 = v->attn_values_f16;
    if (v->to_f16) avx512_table.to_f16 = v->to_f16;
    if (v->from_f16) avx512_table.from_f16 = v->from_f16;
    if (v->softmax) avx512_table.softmax = v->softmax;
    if (v->swiglu) avx512_table.swiglu = v->swiglu;
    if (v->softmax_exp) avx512_table.softmax_exp = v->softmax_exp;
    if (v->rope) avx512_table.rope = v->rope;
    if (v->softmax_exp_cols) avx512_table.softmax_exp_cols = v->softmax_exp_cols;
    if (v->rmsnorm) avx512_table.rmsnorm = v->rmsnorm;
    if (v->add) avx512_table.add = v->add;
    if (v->rope_cols) avx512_table.rope_cols = v->rope_cols;
}
#endif

const lm_kernels *lm_kernels_named(const char *name) {
    if (strcmp(name, "scalar") == 0) return &lm_kernels_scalar;
#if defined(__x86_64__)
    if (strcmp(name, "avx2") == 0) return cpu_has_avx2() ? &lm_kernels_avx2 : NULL;
    if (strcmp(name, "avx512") == 0) {
        if (!lm_cpu_has_avx512_vnni()) return NULL;
        pthread_once(&avx512_once, build_avx512);
        return &avx512_table;
    }
#endif
    return NULL;
}

static const lm_kernels *chosen;
static pthread_once_t chosen_once = PTHREAD_ONCE_INIT;

static void choose(void) {
    const char *forced = getenv("LLMOS_KERNELS");
    if (forced && *forced) {
        chosen = lm_kernels_named(forced);
        if (chosen) return;
        fprintf(stderr, "llmos: LLMOS_KERNELS=%s is unknown or not supported by this CPU; using the best available\n", forced);
    }
#if defined(__x86_64__)
    if ((chosen = lm_kernels_named("avx512"))) return;
    if (cpu_has_avx2()) {
        chosen = &lm_kernels_avx2;
        return;
    }
#endif
    chosen = &lm_kernels_scalar;
}

const lm_kernels *lm_kernels_best(void) {
    pthread_once(&chosen_once, choose);
    return chosen;
}
