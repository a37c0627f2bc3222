/* AdamW with decoupled weight decay (Loshchilov & Hutter), global-norm
 * clipping and the learning-rate schedules. */
#include "optim.h"

#include <math.h>
#include <stdlib.h>

lm_param_segment *lm_param_segments(const lm_train_layout *l, const lm_train_shape *s, int decay_embeddings, int64_t *n) {
    const int64_t D = s->dim, hd = s->head_dim, qd = s->n_heads * hd, kvd = s->n_kv_heads * hd, F = s->ffn_dim;
    lm_param_segment *seg = malloc((size_t)(3 + 9 * s->n_layers) * sizeof *seg);
    if (!seg) return NULL;
    int64_t k = 0;
    seg[k++] = (lm_param_segment){l->tok_embd, s->n_vocab * D, decay_embeddings};
    for (int64_t i = 0; i < s->n_layers; i++) {
        const lm_train_layer_offsets *o = &l->layers[i];
        seg[k++] = (lm_param_segment){o->attn_norm, D, 0};
        seg[k++] = (lm_param_segment){o->wq, qd * D, 1};
        seg[k++] = (lm_param_segment){o->wk, kvd * D, 1};
        seg[k++] = (lm_param_segment){o->wv, kvd * D, 1};
        seg[k++] = (lm_param_segment){o->wo, D * qd, 1};
        seg[k++] = (lm_param_segment){o->ffn_norm, D, 0};
        seg[k++] = (lm_param_segment){o->w_gate, F * D, 1};
        seg[k++] = (lm_param_segment){o->w_up, F * D, 1};
        seg[k++] = (lm_param_segment){o->w_down, D * F, 1};
    }
    seg[k++] = (lm_param_segment){l->output_norm, D, 0};
    if (!s->tied_output) seg[k++] = (lm_param_segment){l->output, s->n_vocab * D, 1};
    *n = k;
    return seg;
}

enum { NORM_CHUNK = 1 << 16 };

double lm_grad_norm(const float *g, int64_t n, int nt) {
    int64_t chunks = (n + NORM_CHUNK - 1) / NORM_CHUNK;
    double *part = malloc((size_t)(chunks > 0 ? chunks : 1) * sizeof *part);
    double total = 0;
    if (!part) { /* the same sum, one thread */
        for (int64_t i = 0; i < n; i++) total += (double)g[i] * g[i];
        return sqrt(total);
    }
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t c = 0; c < chunks; c++) {
        double s = 0;
        int64_t end = (c + 1) * NORM_CHUNK < n ? (c + 1) * NORM_CHUNK : n;
        for (int64_t i = c * NORM_CHUNK; i < end; i++) s += (double)g[i] * g[i];
        part[c] = s;
    }
    for (int64_t c = 0; c < chunks; c++) total += part[c];
    free(part);
    return sqrt(total);
}

void lm_scale(float *g, int64_t n, float s, int nt) {
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < n; i++) g[i] *= s;
}

void lm_adamw_step(float *p, const float *g, float *m, float *v, const lm_param_segment *seg, int64_t n_seg, double lr,
                   const lm_train_options *o, int64_t t, int nt) {
    const float b1 = (float)o->beta1, b2 = (float)o->beta2, eps = (float)o->adam_eps;
    const float c1 = (float)(1.0 / (1.0 - pow(o->beta1, (double)t))), c2 = (float)(1.0 / (1.0 - pow(o->beta2, (double)t)));
    const float flr = (float)lr;
    for (int64_t s = 0; s < n_seg; s++) {
        const float decay = seg[s].decay ? (float)(lr * o->weight_decay) : 0.0f;
        const int64_t a = seg[s].start, e = seg[s].start + seg[s].count;
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int64_t i = a; i < e; i++) {
            float gi = g[i];
            m[i] = b1 * m[i] + (1 - b1) * gi;
            v[i] = b2 * v[i] + (1 - b2) * gi * gi;
            float mh = m[i] * c1, vh = v[i] * c2;
            p[i] -= flr * mh / (sqrtf(vh) + eps) + decay * p[i];
        }
    }
}

double lm_lr_at(const lm_train_options *o, int64_t step) {
    if (o->warmup_steps > 0 && step < o->warmup_steps) return o->lr * (double)(step + 1) / (double)o->warmup_steps;
    if (o->schedule == LM_LR_CONSTANT) return o->lr;
    double min_lr = o->lr * o->min_lr_ratio;
    int64_t span = o->max_steps - o->warmup_steps;
    double progress = span > 1 ? (double)(step - o->warmup_steps) / (double)(span - 1) : 1.0;
    if (progress > 1) progress = 1;
    if (progress < 0) progress = 0;
    if (o->schedule == LM_LR_LINEAR) return o->lr + (min_lr - o->lr) * progress;
    return min_lr + 0.5 * (o->lr - min_lr) * (1 + cos(3.14159265358979323846 * progress));
}
