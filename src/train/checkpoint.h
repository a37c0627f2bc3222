/* Training checkpoints: weights, AdamW moments and the loop's state in one
 * file with a checksum, written atomically (temporary file, fsync, rename).
 * Format in docs/formats.md. */
#ifndef LLMOS_TRAIN_CHECKPOINT_H
#define LLMOS_TRAIN_CHECKPOINT_H

#include "model.h"

#include <stdint.h>

typedef struct lm_ckpt_state {
    int64_t step;        /* optimizer steps done */
    int64_t data_pos;    /* reserved, 0: training batches come from rng, validation always starts at 0 */
    uint64_t rng[4];     /* batch sampling state */
    int64_t tokens_seen;
    double elapsed_s;    /* training time before this checkpoint */
} lm_ckpt_state;

/* Writes DIR/ckpt_STEP.bin (STEP = state->step, 8 digits) and then removes
 * checkpoints older than the previous one, so two stay on disk. path gets
 * the file's name (at least 4096 bytes). */
lm_status lm_ckpt_save(const char *dir, const lm_train_shape *s, int64_t n_params, const float *params, const float *m,
                       const float *v, const lm_ckpt_state *state, char *path, lm_error *err);

/* Loads the newest checkpoint in dir that passes its checks; a newer one
 * that fails (bad checksum, truncated, another model's shape) is reported
 * through warn and skipped. *found = 0 (and LM_OK) when dir holds none. */
lm_status lm_ckpt_load_latest(const char *dir, const lm_train_shape *s, int64_t n_params, float *params, float *m,
                              float *v, lm_ckpt_state *state, char *path, int *found,
                              void (*warn)(const char *message), lm_error *err);

/* Loads one checkpoint file (the checks as above). */
lm_status lm_ckpt_load(const char *path, const lm_train_shape *s, int64_t n_params, float *params, float *m, float *v,
                       lm_ckpt_state *state, lm_error *err);

#endif
