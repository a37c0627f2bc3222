/* AdamW, the gradient's global norm and the learning-rate schedule. */
#ifndef LLMOS_TRAIN_OPTIM_H
#define LLMOS_TRAIN_OPTIM_H

#include "llmos/train.h"
#include "model.h"

#include <stdint.h>

/* A run of parameters that weight decay does or does not apply to. */
typedef struct lm_param_segment { int64_t start, count; int decay; } lm_param_segment;

/* The segments of a layout (tensor by tensor); *n gets their count. NULL
 * when out of memory. */
lm_param_segment *lm_param_segments(const lm_train_layout *l, const lm_train_shape *s, int decay_embeddings, int64_t *n);

/* sqrt(sum g^2), summed in double over fixed chunks in a fixed order (the
 * same for any thread count). */
double lm_grad_norm(const float *g, int64_t n, int nt);
void lm_scale(float *g, int64_t n, float s, int nt);

/* One AdamW step t (from 1): m, v moments with bias correction; decoupled
 * decay p -= lr * wd * p on the segments marked decay. */
void lm_adamw_step(float *p, const float *g, float *m, float *v, const lm_param_segment *seg, int64_t n_seg, double lr,
                   const lm_train_options *o, int64_t t, int nt);

/* Learning rate of step (0-based): linear warmup to o->lr over warmup_steps,
 * then the schedule down to lr * min_lr_ratio at max_steps. */
double lm_lr_at(const lm_train_options *o, int64_t step);

#endif
