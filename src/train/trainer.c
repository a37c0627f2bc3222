/* The training loop: data, model, AdamW, evaluation, logs, checkpoints and
 * the final GGUF (llmos/train.h). */
#include "llmos/train.h"

#include "../base/rng.h"
#include "checkpoint.h"
#include "dpo.h"
#include "export.h"
#include "lora_train.h"
#include "llmos/data.h"
#include "llmos/init.h"
#include "llmos/machine.h"
#include "llmos/model.h"
#include "model.h"
#include "ops.h"
#include "optim.h"
#include "plot.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void lm_train_options_default(lm_train_options *o) {
    memset(o, 0, sizeof *o);
    o->context = 256;
    o->batch = 8;
    o->lr = 1e-3;
    o->min_lr_ratio = 0.1;
    o->schedule = LM_LR_COSINE;
    o->weight_decay = 0.1;
    o->beta1 = 0.9;
    o->beta2 = 0.95;
    o->adam_eps = 1e-8;
    o->grad_clip = 1.0;
    o->eval_batches = 8;
    o->seed = 1337;
    o->n_threads = 1;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* SIGINT / SIGTERM ask the loop to stop after the current step (with a
 * checkpoint); a second signal ends the process at once. */
static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) {
    stop_requested = 1;
    signal(sig, SIG_DFL);
}

static void warn_line(const char *msg) { fprintf(stderr, "llmos train: warning: %s\n", msg); }

static lm_status make_dir(const char *path, lm_error *err) {
    if (mkdir(path, 0777) == 0 || errno == EEXIST) {
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return LM_OK;
        return lm_error_set(err, LM_ERR_IO, "%s exists and is not a directory", path);
    }
    return lm_error_set(err, LM_ERR_IO, "cannot create %s: %s", path, strerror(errno));
}

/* Everything one run holds. */
typedef struct run {
    const lm_train_options *o;
    lm_data *train, *val;
    lm_train_shape shape;
    lm_trm_f32 *model;
    char arch[32];          /* the model's general.architecture */
    lm_lora_state *lora;    /* LoRA runs: the trained factors */
    float *opt_p, *opt_g;   /* what the optimizer updates: the parameters, or the LoRA factors */
    int64_t n_opt;
    double *ref_train, *ref_val; /* DPO: the reference model's log-probability of each row */
    int64_t *pairs;         /* DPO: the pair of each half of the micro-batch (B / 2) */
    lm_dpo_stats dpo;       /* DPO: the last held-out statistics */
    float *m, *v;
    lm_param_segment *seg;
    int64_t n_seg, n_params;
    int32_t *inputs, *targets; /* (B, T) */
    lm_rng rng;
    char template_path[4096], ckpt_dir[4096];
    double flops_per_token, peak_gflops;
    lm_loss_point *curve;
    int64_t n_curve, cap_curve;
    FILE *json;
} run;

/* Micro-batch from the training split: B windows of T+1 tokens at random
 * positions (inputs: the first T, targets: the last T). */
static void sample_batch(run *r) {
    const int64_t B = r->o->batch, T = r->o->context;
    if (r->o->dpo_beta > 0) { /* DPO: B / 2 random pairs, each two rows */
        const lm_train_rows *rows = r->o->rows_train;
        for (int64_t b = 0; b < B / 2; b++) {
            int64_t pair = (int64_t)(lm_rng_next(&r->rng) % (uint64_t)(rows->n_rows / 2));
            r->pairs[b] = pair;
            memcpy(r->inputs + 2 * b * T, rows->inputs + 2 * pair * T, (size_t)(2 * T) * sizeof(int32_t));
            memcpy(r->targets + 2 * b * T, rows->targets + 2 * pair * T, (size_t)(2 * T) * sizeof(int32_t));
        }
        return;
    }
    if (r->o->rows_train) { /* SFT: B random packed rows */
        const lm_train_rows *rows = r->o->rows_train;
        for (int64_t b = 0; b < B; b++) {
            int64_t row = (int64_t)(lm_rng_next(&r->rng) % (uint64_t)rows->n_rows);
            memcpy(r->inputs + b * T, rows->inputs + row * T, (size_t)T * sizeof(int32_t));
            memcpy(r->targets + b * T, rows->targets + row * T, (size_t)T * sizeof(int32_t));
        }
        return;
    }
    const int64_t span = lm_data_tokens(r->train) - T;
    int32_t *window = malloc((size_t)(T + 1) * sizeof *window);
    for (int64_t b = 0; b < B; b++) {
        int64_t pos = (int64_t)(lm_rng_next(&r->rng) % (uint64_t)span);
        if (window) {
            lm_data_read(r->train, pos, window, T + 1);
            memcpy(r->inputs + b * T, window, (size_t)T * sizeof *window);
            memcpy(r->targets + b * T, window + 1, (size_t)T * sizeof *window);
        } else { /* two reads overlap by one token; the same values */
            lm_data_read(r->train, pos, r->inputs + b * T, T);
            lm_data_read(r->train, pos + 1, r->targets + b * T, T);
        }
    }
    free(window);
}

/* Validation window w into row b of the batch: a held-out packed row (SFT)
 * or T+1 tokens of the val split; past the last window, a masked row. */
static void fill_val(run *r, int64_t w, int64_t b, int64_t n_windows) {
    const int64_t T = r->o->context;
    int32_t *in = r->inputs + b * T, *tg = r->targets + b * T;
    if (w >= n_windows) {
        memset(in, 0, (size_t)T * sizeof *in);
        for (int64_t t = 0; t < T; t++) tg[t] = -1;
    } else if (r->o->rows_val) {
        memcpy(in, r->o->rows_val->inputs + w * T, (size_t)T * sizeof *in);
        memcpy(tg, r->o->rows_val->targets + w * T, (size_t)T * sizeof *tg);
    } else {
        lm_data_read(r->val, w * T, in, T);
        lm_data_read(r->val, w * T + 1, tg, T);
    }
}

/* Mean loss over the first n_windows validation windows (all of them when
 * n_windows <= 0). */
static double evaluate(run *r, int64_t n_windows) {
    const int64_t B = r->o->batch, T = r->o->context;
    if (r->o->dpo_beta > 0) { /* every held-out pair */
        lm_dpo_evaluate(r->model, r->o->rows_val, r->ref_val, r->o->dpo_beta, B, T, r->inputs, r->targets, &r->dpo);
        return r->dpo.loss;
    }
    int64_t avail = r->o->rows_val ? r->o->rows_val->n_rows : (lm_data_tokens(r->val) - 1) / T;
    if (n_windows <= 0 || n_windows > avail) n_windows = avail;
    double sum = 0;
    int64_t count = 0;
    for (int64_t w0 = 0; w0 < n_windows; w0 += B) {
        for (int64_t b = 0; b < B; b++) fill_val(r, w0 + b, b, n_windows);
        int64_t scored;
        sum += lm_trm_forward_f32(r->model, r->inputs, r->targets, &scored);
        count += scored;
    }
    return count ? sum / (double)count : NAN;
}

static void curve_add(run *r, lm_loss_point p) {
    if (r->n_curve == r->cap_curve) {
        int64_t cap = r->cap_curve ? r->cap_curve * 2 : 256;
        lm_loss_point *q = realloc(r->curve, (size_t)cap * sizeof *q);
        if (!q) return; /* the plot loses points, training goes on */
        r->curve = q, r->cap_curve = cap;
    }
    r->curve[r->n_curve++] = p;
}

/* Model: from --init, or a new one written to CKPT_DIR/init.gguf first (so
 * a resumed run and the exported model share its metadata). */
static lm_status setup_model(run *r, lm_error *err) {
    const lm_train_options *o = r->o;
    if (o->init_model) {
        snprintf(r->template_path, sizeof r->template_path, "%.3000s", o->init_model);
    } else {
        snprintf(r->template_path, sizeof r->template_path, "%.3000s/init.gguf", r->ckpt_dir);
        if (!(o->resume && access(r->template_path, R_OK) == 0)) {
            lm_init_params ip = {o->dim, o->n_layers, o->n_heads, o->n_kv_heads, o->ffn_dim, o->context, o->tokenizer, 0,
                                 LM_TYPE_F32, o->seed, o->n_threads, NULL, NULL};
            lm_status st = lm_model_init(&ip, r->template_path, err);
            if (st) return lm_error_prefix(err, st, "initialising the model: ");
        }
    }
    lm_model *m;
    lm_status st = lm_model_load(r->template_path, &m, err);
    if (st) return lm_error_prefix(err, st, "%s: ", r->template_path);
    snprintf(r->arch, sizeof r->arch, "%s", lm_model_get_config(m)->arch);
    st = lm_train_shape_of(m, &r->shape, err);
    if (!st && r->train && (uint32_t)r->shape.n_vocab < lm_data_vocab_size(r->train)) {
        st = lm_error_set(err, LM_ERR_ARG, "the data's vocabulary (%u tokens) is larger than the model's (%lld)",
                          lm_data_vocab_size(r->train), (long long)r->shape.n_vocab);
    }
    if (!st) st = lm_trm_create_f32(&r->shape, o->batch, o->context, o->n_threads, &r->model, err);
    if (!st) {
        lm_train_params_from_model(m, lm_trm_layout_f32(r->model), lm_trm_params_f32(r->model));
        r->n_params = lm_trm_layout_f32(r->model)->n_params;
    }
    lm_model_free(m);
    return st;
}

/* Model FLOPs per trained token: 6 per matrix weight (forward 2, backward
 * 4) and the attention products, 6 * layers * T * H * hd with the causal
 * half counted. */
static double flops_per_token(const lm_train_shape *s, int64_t T) {
    const int64_t D = s->dim, qd = s->n_heads * s->head_dim, kvd = s->n_kv_heads * s->head_dim, F = s->ffn_dim;
    double matrix = (double)s->n_layers * (double)(qd * D + 2 * kvd * D + D * qd + 3 * F * D) + (double)s->n_vocab * D;
    return 6 * matrix + 6.0 * (double)s->n_layers * (double)T * (double)qd;
}

static void log_json(run *r, const lm_train_step_info *in) {
    if (!r->json) return;
    fprintf(r->json, "{\"step\":%lld,\"loss\":%.6f,\"lr\":%.6g,\"grad_norm\":%.6f,\"tokens_per_s\":%.1f,\"mfu\":%.4f",
            (long long)in->step, in->loss, in->lr, in->grad_norm, in->tokens_per_s, in->mfu);
    if (in->val_loss >= 0) fprintf(r->json, ",\"val_loss\":%.6f", in->val_loss);
    if (in->val_loss >= 0 && r->o->dpo_beta > 0) {
        fprintf(r->json, ",\"val_reward_margin\":%.6f,\"val_reward_accuracy\":%.4f,\"val_likelihood_accuracy\":%.4f",
                r->dpo.margin, r->dpo.reward_accuracy, r->dpo.likelihood_accuracy);
    }
    fprintf(r->json, "}\n");
    fflush(r->json);
}

static void show_step(const run *r, const lm_train_step_info *in, int every) {
    if (r->o->quiet) return;
    int tty = isatty(2);
    if (tty) { /* a progress bar, redrawn in place */
        int width = 30, filled = (int)(width * (double)in->step / (double)(in->max_steps ? in->max_steps : 1));
        fprintf(stderr, "\r[%.*s%*s] step %lld/%lld loss %.4f %.0f tok/s", filled, "##############################",
                width - filled, "", (long long)in->step, (long long)in->max_steps, in->loss, in->tokens_per_s);
        fflush(stderr);
    }
    if (in->step % every == 0 || in->step == in->max_steps || in->val_loss >= 0) {
        if (tty) fprintf(stderr, "\r%*s\r", 80, "");
        printf("step %6lld/%lld  loss %.4f%s", (long long)in->step, (long long)in->max_steps, in->loss,
               in->val_loss >= 0 ? "" : "");
        if (in->val_loss >= 0) printf("  val %.4f", in->val_loss);
        printf("  lr %.2e  grad norm %.3f  %.0f tok/s  MFU %.1f%%  %.0fs\n", in->lr, in->grad_norm, in->tokens_per_s,
               100 * in->mfu, in->elapsed_s);
        if (in->val_loss >= 0 && r->o->dpo_beta > 0) {
            printf("    held-out pairs: reward margin %.4f, reward accuracy %.1f%%, likelihood accuracy %.1f%%\n",
                   r->dpo.margin, 100 * r->dpo.reward_accuracy, 100 * r->dpo.likelihood_accuracy);
        }
        fflush(stdout);
    }
}

static lm_status save_checkpoint(run *r, const lm_ckpt_state *cs, lm_error *err) {
    char path[4096];
    lm_status st = lm_ckpt_save(r->ckpt_dir, &r->shape, r->n_opt, r->opt_p, r->m, r->v, cs, path, err);
    if (!st && !r->o->quiet) {
        if (isatty(2)) fprintf(stderr, "\r%*s\r", 80, "");
        printf("checkpoint: %s\n", path);
    }
    return st;
}

static lm_status train_loop(run *r, int *stopped_early, lm_error *err) {
    const lm_train_options *o = r->o;
    const int64_t B = o->batch, T = o->context, tokens_per_micro = B * T;
    const int64_t accum = o->batch_tokens > tokens_per_micro ? (o->batch_tokens + tokens_per_micro - 1) / tokens_per_micro : 1;
    float *params = lm_trm_params_f32(r->model), *grads = lm_trm_grads_f32(r->model);
    lm_ckpt_state cs = {0};
    double *row_scale = o->dpo_beta > 0 ? malloc((size_t)B * sizeof *row_scale) : NULL, *row_logp = NULL;
    if (o->dpo_beta > 0 && (!row_scale || !(row_logp = malloc((size_t)B * sizeof *row_logp)))) {
        free(row_scale);
        return lm_error_set(err, LM_ERR_NOMEM, "out of memory");
    }
    lm_rng_seed(&r->rng, o->seed ^ 0xda7a5eedull);
    memcpy(cs.rng, r->rng.s, sizeof cs.rng);
    if (o->resume) {
        char path[4096];
        int found;
        lm_ckpt_load_latest(r->ckpt_dir, &r->shape, r->n_opt, r->opt_p, r->m, r->v, &cs, path, &found, warn_line, err);
        if (found && r->lora) lm_lora_state_apply(r->lora, params, o->n_threads);
        if (found) {
            memcpy(r->rng.s, cs.rng, sizeof cs.rng);
            if (!o->quiet) printf("resuming from %s (step %lld)\n", path, (long long)cs.step);
        } else if (!o->quiet) {
            printf("no checkpoint in %s: starting from step 0\n", r->ckpt_dir);
        }
    }
    const int every = o->max_steps >= 100 ? (int)(o->max_steps / 50) : 1;
    double t_start = now_s() - cs.elapsed_s;
    *stopped_early = 0;
    lm_status st = LM_OK;
    for (int64_t step = cs.step; step < o->max_steps; step++) {
        double t0 = now_s();
        double lr = lm_lr_at(o, step), loss_sum = 0;
        memset(grads, 0, (size_t)r->n_params * sizeof *grads);
        for (int64_t a = 0; a < accum; a++) {
            sample_batch(r);
            int64_t scored;
            double loss = lm_trm_forward_f32(r->model, r->inputs, r->targets, &scored);
            if (o->dpo_beta > 0) {
                /* d(mean pair loss)/d(summed token loss of a row) = -d(loss)/d(log-probability of the row) */
                const int64_t P = B / 2;
                lm_dpo_row_logps(r->model, r->targets, B, T, row_logp);
                double mean = 0;
                for (int64_t b = 0; b < P; b++) {
                    const int64_t pair = r->pairs[b];
                    double margin, d;
                    mean += lm_dpo_pair_loss(row_logp[2 * b], row_logp[2 * b + 1], r->ref_train[2 * pair],
                                             r->ref_train[2 * pair + 1], o->dpo_beta, &margin, &d) / (double)P;
                    row_scale[2 * b] = -d / ((double)P * (double)accum);
                    row_scale[2 * b + 1] = d / ((double)P * (double)accum);
                }
                loss_sum += mean;
                lm_trm_backward_rows_f32(r->model, row_scale);
            } else {
                loss_sum += scored ? loss / (double)scored : 0;
                lm_trm_backward_f32(r->model, scored ? 1.0 / ((double)scored * (double)accum) : 0.0);
            }
        }
        if (r->lora) lm_lora_state_backward(r->lora, grads, o->n_threads);
        double gnorm = lm_grad_norm(r->opt_g, r->n_opt, o->n_threads);
        if (o->grad_clip > 0 && gnorm > o->grad_clip) lm_scale(r->opt_g, r->n_opt, (float)(o->grad_clip / gnorm), o->n_threads);
        lm_adamw_step(r->opt_p, r->opt_g, r->m, r->v, r->seg, r->n_seg, lr, o, step + 1, o->n_threads);
        if (r->lora) lm_lora_state_apply(r->lora, params, o->n_threads);
        double dt = now_s() - t0;
        cs.step = step + 1;
        cs.tokens_seen += accum * tokens_per_micro;
        memcpy(cs.rng, r->rng.s, sizeof cs.rng);
        lm_train_step_info info = {cs.step, o->max_steps, loss_sum / (double)accum, -1, lr, gnorm,
                                   (double)(accum * tokens_per_micro) / dt, 0, now_s() - t_start};
        info.mfu = info.tokens_per_s * r->flops_per_token / (r->peak_gflops * 1e9);
        int last = cs.step == o->max_steps;
        int out_of_time = o->time_budget_s > 0 && info.elapsed_s >= o->time_budget_s;
        if ((r->val || o->rows_val) && ((o->eval_every > 0 && cs.step % o->eval_every == 0) || last || out_of_time || stop_requested)) {
            info.val_loss = evaluate(r, o->eval_batches * B);
        }
        log_json(r, &info);
        show_step(r, &info, every);
        curve_add(r, (lm_loss_point){info.step, info.loss, info.val_loss, lr});
        cs.elapsed_s = info.elapsed_s;
        int save = last || out_of_time || stop_requested || (o->checkpoint_every > 0 && cs.step % o->checkpoint_every == 0);
        if (save && (st = save_checkpoint(r, &cs, err))) break;
        if (!last && (out_of_time || stop_requested)) {
            *stopped_early = 1;
            /* Said even with quiet: it is the outcome, not progress. */
            printf("stopped at step %lld (%s)\n", (long long)cs.step, stop_requested ? "signal" : "time budget");
            break;
        }
    }
    if (!st && o->max_steps <= cs.step && r->n_curve == 0 && !o->quiet) printf("nothing to do: the checkpoint is at step %lld\n", (long long)cs.step);
    free(row_scale);
    free(row_logp);
    return st;
}

static lm_status train_setup_and_run(run *rp, int *stopped_early, lm_error *err);

/* Packed rows come from the caller: every input must be a token of the
 * model and every target one or -1, or the embedding lookup would read out
 * of bounds. */
static lm_status check_rows(const lm_train_rows *rows, int64_t T, int64_t n_vocab, const char *what, lm_error *err) {
    if (!rows) return LM_OK;
    if (rows->n_rows < 0 || rows->n_rows > ((int64_t)1 << 40) / T) {
        return lm_error_set(err, LM_ERR_LIMIT, "%lld %s rows are too many", (long long)rows->n_rows, what);
    }
    for (int64_t i = 0; i < rows->n_rows * T; i++) {
        if (rows->inputs[i] < 0 || rows->inputs[i] >= n_vocab || rows->targets[i] < -1 || rows->targets[i] >= n_vocab) {
            return lm_error_set(err, LM_ERR_ARG, "%s row %lld holds a token outside the vocabulary of %lld", what,
                                (long long)(i / T), (long long)n_vocab);
        }
    }
    return LM_OK;
}

lm_status lm_train_run(const lm_train_options *o, int *stopped_early, lm_error *err) {
    *stopped_early = 0;
    if ((!o->data_dir && !o->rows_train) || !o->out_path) return lm_error_set(err, LM_ERR_ARG, "training needs data and an output path");
    if (o->rows_train && o->rows_train->n_rows < 1) return lm_error_set(err, LM_ERR_ARG, "no training rows");
    if (!o->init_model && !o->tokenizer) return lm_error_set(err, LM_ERR_ARG, "a new model needs --tokenizer (or start from --init)");
    if (o->context < 2 || o->batch < 1 || o->max_steps < 1 || !(o->lr > 0) || o->n_threads < 1) {
        return lm_error_set(err, LM_ERR_ARG, "context (>= 2), batch, max steps, learning rate and threads must be positive");
    }
    run r = {0};
    r.o = o;
    /* From the start: a signal during setup (which can take seconds) stops
     * the run after its first step rather than being lost. */
    stop_requested = 0;
    void (*old_int)(int) = signal(SIGINT, on_signal), (*old_term)(int) = signal(SIGTERM, on_signal);
    lm_status st = train_setup_and_run(&r, stopped_early, err);
    signal(SIGINT, old_int);
    signal(SIGTERM, old_term);
    return st;
}

/* lm_train_run after the signal handlers are in place. */
static lm_status train_setup_and_run(run *rp, int *stopped_early, lm_error *err) {
    run r = *rp;
    const lm_train_options *o = r.o;
    lm_status st = LM_OK;
    if (!o->rows_train) st = lm_data_open(o->data_dir, "train", &r.train, err);
    if (st) return st;
    if (r.train && lm_data_tokens(r.train) <= o->context) {
        lm_data_close(r.train);
        return lm_error_set(err, LM_ERR_ARG, "the train split has %lld tokens, fewer than the context + 1 (%lld)",
                            (long long)lm_data_tokens(r.train), (long long)(o->context + 1));
    }
    lm_error verr = {0};
    if (o->rows_train) {
        r.val = NULL;
    } else if (lm_data_open(o->data_dir, "val", &r.val, &verr) != LM_OK) {
        r.val = NULL;
        if (!o->quiet) printf("no validation split (%s): validation loss not reported\n", verr.message);
    } else if (lm_data_tokens(r.val) <= o->context) {
        lm_data_close(r.val);
        r.val = NULL;
        if (!o->quiet) printf("the validation split is shorter than one context: validation loss not reported\n");
    }
    const char *dir = o->checkpoint_dir ? o->checkpoint_dir : o->out_path;
    if (strlen(dir) > 3000 || (o->init_model && strlen(o->init_model) > 3000)) {
        st = lm_error_set(err, LM_ERR_ARG, "path too long: %.40s...", dir);
    } else {
        snprintf(r.ckpt_dir, sizeof r.ckpt_dir, o->checkpoint_dir ? "%s" : "%s.ckpt", dir);
        if (!(st = make_dir(r.ckpt_dir, err))) st = setup_model(&r, err);
    }
    if (!st) st = check_rows(o->rows_train, o->context, r.shape.n_vocab, "training", err);
    if (!st) st = check_rows(o->rows_val, o->context, r.shape.n_vocab, "validation", err);
    if (!st && o->dpo_beta > 0) {
        if (!o->rows_train || o->batch % 2 || o->rows_train->n_rows % 2 || (o->rows_val && o->rows_val->n_rows % 2)) {
            st = lm_error_set(err, LM_ERR_ARG, "DPO needs an even batch and rows in pairs");
        }
    }
    if (!st && o->lora_rank > 0) {
        double alpha = o->lora_alpha > 0 ? o->lora_alpha : 2.0 * (double)o->lora_rank;
        st = lm_lora_state_create(&r.shape, lm_trm_layout_f32(r.model), lm_trm_params_f32(r.model), o->lora_rank,
                                  (float)alpha, o->seed, &r.lora, err);
    }
    if (!st) {
        if (r.lora) {
            r.opt_p = lm_lora_state_params(r.lora), r.opt_g = lm_lora_state_grads(r.lora);
            r.n_opt = lm_lora_state_count(r.lora);
            r.n_seg = 1;
            if ((r.seg = malloc(sizeof *r.seg))) r.seg[0] = (lm_param_segment){0, r.n_opt, 1};
        } else {
            r.opt_p = lm_trm_params_f32(r.model), r.opt_g = lm_trm_grads_f32(r.model);
            r.n_opt = r.n_params;
            r.seg = lm_param_segments(lm_trm_layout_f32(r.model), &r.shape, o->decay_embeddings, &r.n_seg);
        }
        r.m = calloc((size_t)r.n_opt, sizeof *r.m);
        r.v = calloc((size_t)r.n_opt, sizeof *r.v);
        r.inputs = malloc((size_t)(o->batch * o->context) * sizeof *r.inputs);
        r.targets = malloc((size_t)(o->batch * o->context) * sizeof *r.targets);
        if (o->dpo_beta > 0) {
            r.pairs = malloc((size_t)(o->batch / 2) * sizeof *r.pairs);
            r.ref_train = malloc((size_t)o->rows_train->n_rows * sizeof *r.ref_train);
            r.ref_val = malloc((size_t)(o->rows_val ? o->rows_val->n_rows : 1) * sizeof *r.ref_val);
        }
        if (!r.m || !r.v || !r.inputs || !r.targets || !r.seg ||
            (o->dpo_beta > 0 && (!r.pairs || !r.ref_train || !r.ref_val))) {
            st = lm_error_set(err, LM_ERR_NOMEM, "out of memory for the optimizer state");
        }
    }
    if (!st && o->dpo_beta > 0) { /* the reference model's log-probabilities: the starting weights */
        double t0 = now_s();
        lm_dpo_logps_all(r.model, o->rows_train, o->batch, o->context, r.inputs, r.targets, r.ref_train);
        if (o->rows_val) {
            lm_dpo_logps_all(r.model, o->rows_val, o->batch, o->context, r.inputs, r.targets, r.ref_val);
            evaluate(&r, 0);
        }
        if (!o->quiet) {
            printf("reference log-probabilities of %lld pairs in %.1f s\n",
                   (long long)(o->rows_train->n_rows + (o->rows_val ? o->rows_val->n_rows : 0)) / 2, now_s() - t0);
            if (o->rows_val) {
                printf("the starting model on %lld held-out pairs: likelihood accuracy %.1f%% (chosen more likely than rejected)\n",
                       (long long)r.dpo.n_pairs, 100 * r.dpo.reference_accuracy);
            }
        }
    }
    if (!st && r.lora && !o->quiet) {
        printf("LoRA: rank %lld on every layer's 7 matrices, %lld trainable values; the weights are frozen\n",
               (long long)o->lora_rank, (long long)r.n_opt);
    }
    if (!st && o->json_log && !(r.json = fopen(o->json_log, "a"))) {
        st = lm_error_set(err, LM_ERR_IO, "cannot open %s: %s", o->json_log, strerror(errno));
    }
    if (!st) {
        const char *isa;
        r.peak_gflops = lm_measure_fma_peak(o->n_threads, &isa);
        r.flops_per_token = flops_per_token(&r.shape, o->context);
        if (!o->quiet) {
            printf("model: %lld parameters (dim %lld, %lld layers, %lld heads, %lld kv heads, ffn %lld, vocab %lld)\n",
                   (long long)r.n_params, (long long)r.shape.dim, (long long)r.shape.n_layers, (long long)r.shape.n_heads,
                   (long long)r.shape.n_kv_heads, (long long)r.shape.ffn_dim, (long long)r.shape.n_vocab);
            if (o->rows_train) {
                printf("data: %lld training rows, %lld validation; %lld x %lld tokens per micro-batch\n",
                       (long long)o->rows_train->n_rows, o->rows_val ? (long long)o->rows_val->n_rows : 0LL,
                       (long long)o->batch, (long long)o->context);
            } else {
                printf("data: %lld training tokens, %lld validation; %lld x %lld tokens per micro-batch\n",
                       (long long)lm_data_tokens(r.train), r.val ? (long long)lm_data_tokens(r.val) : 0LL,
                       (long long)o->batch, (long long)o->context);
            }
            printf("machine: %.0f GFLOP/s peak (%s, %d threads) for MFU\n", r.peak_gflops, isa, o->n_threads);
        }
        int bf16 = lm_tr_set_bf16(o->bf16);
        if (o->bf16 && !bf16) warn_line("this CPU has no AVX-512 BF16 dot product: training in f32");
        if (bf16 && !o->quiet) printf("precision: weight products in bf16 (f32 accumulation and master weights)\n");
        st = train_loop(&r, stopped_early, err);
        lm_tr_set_bf16(0);
    }
    if (!st && (r.val || o->rows_val) && !*stopped_early) {
        double vl = evaluate(&r, 0);
        if (o->dpo_beta > 0) { /* said even with quiet: it is the outcome */
            printf("held-out pairs (%lld): DPO loss %.4f, reward margin %.4f, reward accuracy %.1f%%, likelihood accuracy "
                   "%.1f%% (the starting model: %.1f%%)\n",
                   (long long)r.dpo.n_pairs, r.dpo.loss, r.dpo.margin, 100 * r.dpo.reward_accuracy,
                   100 * r.dpo.likelihood_accuracy, 100 * r.dpo.reference_accuracy);
        } else if (!o->quiet) {
            printf("validation loss over the whole val split: %.4f\n", vl);
        }
    }
    if (!st && r.lora) {
        st = lm_lora_state_export(r.lora, r.arch, o->out_path, err);
    } else if (!st) {
        st = lm_train_export(r.template_path, &r.shape, lm_trm_layout_f32(r.model), lm_trm_params_f32(r.model),
                             o->chat_template, o->out_path, err);
    }
    if (!st && r.n_curve) st = lm_write_loss_curve(o->out_path, r.curve, r.n_curve, err);
    if (!st && !o->quiet) printf("wrote %s (and %s.loss.csv, %s.loss.svg)\n", o->out_path, o->out_path, o->out_path);
    if (r.json) fclose(r.json);
    lm_lora_state_free(r.lora);
    free(r.pairs);
    free(r.ref_train);
    free(r.ref_val);
    free(r.curve);
    free(r.m);
    free(r.v);
    free(r.inputs);
    free(r.targets);
    free(r.seg);
    lm_trm_free_f32(r.model);
    if (r.train) lm_data_close(r.train);
    if (r.val) lm_data_close(r.val);
    return st;
}
