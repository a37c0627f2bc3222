/* DPO's loss and held-out statistics (dpo.h). */
#include "dpo.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void lm_dpo_row_logps(const lm_trm_f32 *m, const int32_t *targets, int64_t B, int64_t T, double *out) {
    const float *losses = lm_trm_token_losses_f32(m);
    for (int64_t b = 0; b < B; b++) {
        double sum = 0;
        for (int64_t t = 0; t < T; t++) {
            if (targets[b * T + t] >= 0) sum -= losses[b * T + t];
        }
        out[b] = sum;
    }
}

/* log(1 + e^x) without overflow. */
static double softplus(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }

double lm_dpo_pair_loss(double pc, double pr, double rc, double rr, double beta, double *margin, double *dloss_dpc) {
    const double z = beta * ((pc - rc) - (pr - rr));
    *margin = z;
    /* loss = -log sigmoid(z) = softplus(-z); d/dz = -sigmoid(-z) */
    *dloss_dpc = -beta / (1 + exp(z));
    return softplus(-z);
}

void lm_dpo_logps_all(lm_trm_f32 *m, const lm_train_rows *rows, int64_t B, int64_t T, int32_t *inputs,
                      int32_t *targets, double *out) {
    for (int64_t r0 = 0; r0 < rows->n_rows; r0 += B) {
        for (int64_t b = 0; b < B; b++) {
            int64_t r = r0 + b;
            if (r < rows->n_rows) {
                memcpy(inputs + b * T, rows->inputs + r * T, (size_t)T * sizeof *inputs);
                memcpy(targets + b * T, rows->targets + r * T, (size_t)T * sizeof *targets);
            } else { /* past the end: an unscored row */
                memset(inputs + b * T, 0, (size_t)T * sizeof *inputs);
                for (int64_t t = 0; t < T; t++) targets[b * T + t] = -1;
            }
        }
        lm_trm_forward_f32(m, inputs, targets, NULL);
        const int64_t nb = rows->n_rows - r0 < B ? rows->n_rows - r0 : B;
        lm_dpo_row_logps(m, targets, nb, T, out + r0);
    }
}

void lm_dpo_evaluate(lm_trm_f32 *m, const lm_train_rows *rows, const double *ref, double beta, int64_t B, int64_t T,
                     int32_t *inputs, int32_t *targets, lm_dpo_stats *out) {
    memset(out, 0, sizeof *out);
    const int64_t n_pairs = rows->n_rows / 2;
    if (n_pairs == 0) return;
    double *logp = malloc((size_t)rows->n_rows * sizeof *logp);
    if (!logp) {
        out->loss = NAN;
        return;
    }
    lm_dpo_logps_all(m, rows, B, T, inputs, targets, logp);
    for (int64_t i = 0; i < n_pairs; i++) {
        double pc = logp[2 * i], pr = logp[2 * i + 1], rc = ref[2 * i], rr = ref[2 * i + 1], margin, d;
        out->loss += lm_dpo_pair_loss(pc, pr, rc, rr, beta, &margin, &d);
        out->margin += margin;
        out->reward_accuracy += margin > 0;
        out->likelihood_accuracy += pc > pr;
        out->reference_accuracy += rc > rr;
    }
    free(logp);
    out->n_pairs = n_pairs;
    out->loss /= (double)n_pairs;
    out->margin /= (double)n_pairs;
    out->reward_accuracy /= (double)n_pairs;
    out->likelihood_accuracy /= (double)n_pairs;
    out->reference_accuracy /= (double)n_pairs;
}
