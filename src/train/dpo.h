/* Direct preference optimisation (Rafailov et al. 2023) on pairs of rows:
 * row 2i is a prompt with the chosen answer, row 2i + 1 the same prompt with
 * the rejected one; only the answers' tokens are scored. With the policy's
 * summed log-probabilities pc, pr and the frozen reference model's rc, rr,
 *   margin = beta * ((pc - rc) - (pr - rr)),  loss = -log sigmoid(margin).
 * The reference's values are computed once, before training, with the
 * starting weights (the reference model is the model being tuned). */
#ifndef LLMOS_TRAIN_DPO_H
#define LLMOS_TRAIN_DPO_H

#include "llmos/train.h"
#include "model.h"

/* Summed log-probability of the scored targets of each of B rows of T, from
 * the token losses of the last scored forward. */
void lm_dpo_row_logps(const lm_trm_f32 *m, const int32_t *targets, int64_t B, int64_t T, double *out);

/* The loss of one pair; *margin gets the reward margin and *dloss_dpc the
 * derivative of the loss with respect to pc (that with respect to pr is its
 * negative). */
double lm_dpo_pair_loss(double pc, double pr, double rc, double rr, double beta, double *margin, double *dloss_dpc);

/* The summed log-probabilities of every row of rows (n_rows values into
 * out), B rows per forward pass; inputs and targets are (B, T) scratch. */
void lm_dpo_logps_all(lm_trm_f32 *m, const lm_train_rows *rows, int64_t B, int64_t T, int32_t *inputs,
                      int32_t *targets, double *out);

/* Held-out statistics over the pairs of rows. */
typedef struct lm_dpo_stats {
    double loss, margin;   /* means */
    double reward_accuracy;     /* fraction of pairs with margin > 0 */
    double likelihood_accuracy; /* fraction with pc > pr (the policy alone) */
    double reference_accuracy;  /* fraction with rc > rr (the starting model) */
    int64_t n_pairs;
} lm_dpo_stats;

void lm_dpo_evaluate(lm_trm_f32 *m, const lm_train_rows *rows, const double *ref, double beta, int64_t B, int64_t T,
                     int32_t *inputs, int32_t *targets, lm_dpo_stats *out);

#endif
