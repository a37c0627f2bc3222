/* The loss curve next to a trained model: CSV and an SVG plot. */
#ifndef LLMOS_TRAIN_PLOT_H
#define LLMOS_TRAIN_PLOT_H

#include "llmos/base.h"

#include <stdint.h>

typedef struct lm_loss_point { int64_t step; double loss, val_loss, lr; } lm_loss_point; /* val_loss < 0: none */

/* Writes base.loss.csv and base.loss.svg (atomically). */
lm_status lm_write_loss_curve(const char *base, const lm_loss_point *pts, int64_t n, lm_error *err);

#endif
