/* The forward and backward pass of every operation of the Llama block, each
 * backward next to its forward twin, written once for a REAL type and
 * compiled twice (ops_f32.c, ops_f64.c): f32 for training, f64 for the
 * gradient checks against finite differences.
 *
 * Shapes are row-major; N = B * T tokens. Backward functions add into
 * their parameter gradients (dW +=) so micro-batches accumulate, and write
 * or add their input gradients as each comment says. Every reduction runs in
 * a fixed order whatever the thread count: results are reproducible bit for
 * bit, which is what lets a resumed run continue exactly.
 *
 * The including file defines REAL (float or double), SFX (f32 or f64) and
 * MATMUL_NT / MATMUL_NN / MATMUL_TN (C = A B^T, A B, A^T B; see ops.h), and
 * LM_TR_ATTENTION_PROVIDED if it has its own attention. */
#include <math.h>
#include <string.h>

#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(lm_tr_##name, SFX)

/* out (N, D) = table[tokens] */
void FN(embedding_fwd)(REAL *out, const REAL *table, const int32_t *tokens, int64_t N, int64_t D) {
    for (int64_t i = 0; i < N; i++) memcpy(out + i * D, table + (int64_t)tokens[i] * D, (size_t)D * sizeof(REAL));
}

/* dtable[tokens[i]] += dout[i]; parallel over columns so each element is
 * summed in token order. */
void FN(embedding_bwd)(REAL *dtable, const REAL *dout, const int32_t *tokens, int64_t N, int64_t D, int nt) {
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t j = 0; j < D; j++) {
        for (int64_t i = 0; i < N; i++) dtable[(int64_t)tokens[i] * D + j] += dout[i * D + j];
    }
}

/* out = x * rstd * w with rstd = 1 / sqrt(mean(x^2) + eps), per row. */
void FN(rmsnorm_fwd)(REAL *out, REAL *rstd, const REAL *x, const REAL *w, int64_t N, int64_t D, double eps, int nt) {
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < N; i++) {
        const REAL *xi = x + i * D;
        double ss = 0;
        for (int64_t j = 0; j < D; j++) ss += (double)xi[j] * xi[j];
        REAL r = (REAL)(1.0 / sqrt(ss / (double)D + eps));
        rstd[i] = r;
        for (int64_t j = 0; j < D; j++) out[i * D + j] = xi[j] * r * w[j];
    }
}

/* dx += d(out)/dx . dout; dw += sum over rows of dout * x * rstd.
 * With g = dout * w: dx = rstd * g - rstd^3 / D * x * sum(g * x). */
void FN(rmsnorm_bwd)(REAL *dx, REAL *dw, const REAL *dout, const REAL *x, const REAL *w, const REAL *rstd, int64_t N,
                     int64_t D, int nt) {
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < N; i++) {
        const REAL *xi = x + i * D, *gi = dout + i * D;
        double dot = 0;
        for (int64_t j = 0; j < D; j++) dot += (double)gi[j] * w[j] * xi[j];
        REAL r = rstd[i], c = (REAL)((double)r * r * r * dot / (double)D);
        for (int64_t j = 0; j < D; j++) dx[i * D + j] += r * gi[j] * w[j] - c * xi[j];
    }
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t j = 0; j < D; j++) {
        REAL s = 0;
        for (int64_t i = 0; i < N; i++) s += dout[i * D + j] * x[i * D + j] * rstd[i];
        dw[j] += s;
    }
}

/* Y (N, O) = X (N, I) W^T, W (O, I). */
void FN(matmul_fwd)(REAL *Y, const REAL *X, const REAL *W, int64_t N, int64_t I, int64_t O, int nt) {
    MATMUL_NT(Y, X, W, N, O, I, 0, nt);
}

/* dX (N, I) = or += dY W (accumulate_dx); dW (O, I) += dY^T X. */
void FN(matmul_bwd)(REAL *dX, REAL *dW, const REAL *dY, const REAL *X, const REAL *W, int64_t N, int64_t I, int64_t O,
                    int accumulate_dx, int nt) {
    if (dX) MATMUL_NN(dX, dY, W, N, I, O, accumulate_dx, nt);
    MATMUL_TN(dW, dY, X, O, I, N, 1, nt);
}

/* Rotates pairs (2i, 2i+1) of each head of row r by the angle of position
 * r % T: cos_sin (T, hd / 2, 2). sign -1 rotates back (the backward pass:
 * the transpose of a rotation is its inverse). */
void FN(rope)(REAL *x, const double *cos_sin, int64_t N, int64_t T, int64_t n_heads, int64_t hd, int sign, int nt) {
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t r = 0; r < N; r++) {
        const double *cs = cos_sin + (r % T) * hd;
        for (int64_t h = 0; h < n_heads; h++) {
            REAL *v = x + (r * n_heads + h) * hd;
            for (int64_t i = 0; i < hd / 2; i++) {
                REAL c = (REAL)cs[2 * i], s = (REAL)(sign * cs[2 * i + 1]);
                REAL a = v[2 * i], b = v[2 * i + 1];
                v[2 * i] = a * c - b * s;
                v[2 * i + 1] = a * s + b * c;
            }
        }
    }
}

#ifndef LM_TR_ATTENTION_PROVIDED /* ops_f32.c has a GEMM-based version */
/* Causal attention per sequence b and head h, with kv head h / (H / KVH):
 * att[b,h,t,:t+1] = softmax(q_t . k_s / sqrt(hd)), out_t = sum_s att * v_s.
 * q, out (B, T, H, hd); k, v (B, T, KVH, hd); att (B, H, T, T), zero above
 * the diagonal. */
void FN(attention_fwd)(REAL *out, REAL *att, const REAL *q, const REAL *k, const REAL *v, int64_t B, int64_t T,
                       int64_t H, int64_t KVH, int64_t hd, int nt) {
    const int64_t group = H / KVH;
    const REAL scale = (REAL)(1.0 / sqrt((double)hd));
#pragma omp parallel for collapse(2) num_threads(nt) schedule(static)
    for (int64_t b = 0; b < B; b++) {
        for (int64_t h = 0; h < H; h++) {
            const int64_t kh = h / group;
            for (int64_t t = 0; t < T; t++) {
                const REAL *qt = q + ((b * T + t) * H + h) * hd;
                REAL *a = att + ((b * H + h) * T + t) * T;
                REAL max = -INFINITY;
                for (int64_t s = 0; s <= t; s++) {
                    const REAL *ks = k + ((b * T + s) * KVH + kh) * hd;
                    REAL d = 0;
                    for (int64_t i = 0; i < hd; i++) d += qt[i] * ks[i];
                    a[s] = d * scale;
                    max = a[s] > max ? a[s] : max;
                }
                REAL sum = 0;
                for (int64_t s = 0; s <= t; s++) {
                    a[s] = (REAL)exp((double)(a[s] - max));
                    sum += a[s];
                }
                for (int64_t s = 0; s <= t; s++) a[s] /= sum;
                for (int64_t s = t + 1; s < T; s++) a[s] = 0;
                REAL *o = out + ((b * T + t) * H + h) * hd;
                for (int64_t i = 0; i < hd; i++) o[i] = 0;
                for (int64_t s = 0; s <= t; s++) {
                    const REAL *vs = v + ((b * T + s) * KVH + kh) * hd;
                    for (int64_t i = 0; i < hd; i++) o[i] += a[s] * vs[i];
                }
            }
        }
    }
}

/* dq = (written), dk, dv = (written): with dP = dout . v, dS = P * (dP -
 * sum(P * dP)): dq_t = scale sum_s dS k_s, dk_s = scale sum_t dS q_t, dv_s =
 * sum_t P dout_t. Heads sharing a kv head add into its dk, dv: the loop
 * over (b, kv head) keeps that sum in a fixed order. scratch: B * KVH * T. */
void FN(attention_bwd)(REAL *dq, REAL *dk, REAL *dv, const REAL *dout, const REAL *att, const REAL *q, const REAL *k,
                       const REAL *v, int64_t B, int64_t T, int64_t H, int64_t KVH, int64_t hd, REAL *scratch, int nt) {
    const int64_t group = H / KVH;
    const REAL scale = (REAL)(1.0 / sqrt((double)hd));
#pragma omp parallel for collapse(2) num_threads(nt) schedule(static)
    for (int64_t b = 0; b < B; b++) {
        for (int64_t kh = 0; kh < KVH; kh++) {
            REAL *ds = scratch + (b * KVH + kh) * T;
            for (int64_t s = 0; s < T; s++) {
                REAL *dks = dk + ((b * T + s) * KVH + kh) * hd, *dvs = dv + ((b * T + s) * KVH + kh) * hd;
                for (int64_t i = 0; i < hd; i++) dks[i] = dvs[i] = 0;
            }
            for (int64_t h = kh * group; h < (kh + 1) * group; h++) {
                for (int64_t t = 0; t < T; t++) {
                    const REAL *a = att + ((b * H + h) * T + t) * T;
                    const REAL *dot = dout + ((b * T + t) * H + h) * hd, *qt = q + ((b * T + t) * H + h) * hd;
                    REAL *dqt = dq + ((b * T + t) * H + h) * hd;
                    REAL pdp = 0;
                    for (int64_t s = 0; s <= t; s++) {
                        const REAL *vs = v + ((b * T + s) * KVH + kh) * hd;
                        REAL d = 0;
                        for (int64_t i = 0; i < hd; i++) d += dot[i] * vs[i];
                        ds[s] = d;
                        pdp += a[s] * d;
                    }
                    for (int64_t i = 0; i < hd; i++) dqt[i] = 0;
                    for (int64_t s = 0; s <= t; s++) {
                        REAL g = a[s] * (ds[s] - pdp) * scale;
                        const REAL *ks = k + ((b * T + s) * KVH + kh) * hd;
                        REAL *dks = dk + ((b * T + s) * KVH + kh) * hd, *dvs = dv + ((b * T + s) * KVH + kh) * hd;
                        for (int64_t i = 0; i < hd; i++) {
                            dqt[i] += g * ks[i];
                            dks[i] += g * qt[i];
                            dvs[i] += a[s] * dot[i];
                        }
                    }
                }
            }
        }
    }
}

#endif

/* h = silu(gate) * up, silu(g) = g / (1 + e^-g). */
void FN(swiglu_fwd)(REAL *h, const REAL *gate, const REAL *up, int64_t n, int nt) {
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        REAL g = gate[i], sig = (REAL)(1.0 / (1.0 + exp(-(double)g)));
        h[i] = g * sig * up[i];
    }
}

/* dgate, dup (written) from dh. silu'(g) = sig (1 + g (1 - sig)). */
void FN(swiglu_bwd)(REAL *dgate, REAL *dup, const REAL *dh, const REAL *gate, const REAL *up, int64_t n, int nt) {
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        REAL g = gate[i], sig = (REAL)(1.0 / (1.0 + exp(-(double)g)));
        dgate[i] = dh[i] * up[i] * sig * (1 + g * (1 - sig));
        dup[i] = dh[i] * g * sig;
    }
}

/* logits (N, V) become probabilities in place; losses[i] = -log p[target]
 * (0 where target < 0: masked). Returns the sum of the losses. */
double FN(crossentropy_fwd)(REAL *logits, REAL *losses, const int32_t *targets, int64_t N, int64_t V, int nt) {
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < N; i++) {
        REAL *l = logits + i * V;
        REAL max = l[0];
        for (int64_t j = 1; j < V; j++) max = l[j] > max ? l[j] : max;
        double sum = 0;
        for (int64_t j = 0; j < V; j++) sum += exp((double)(l[j] - max));
        double log_sum = log(sum);
        losses[i] = targets[i] >= 0 ? (REAL)(log_sum - (double)(l[targets[i]] - max)) : 0;
        for (int64_t j = 0; j < V; j++) l[j] = (REAL)exp((double)(l[j] - max) - log_sum);
    }
    double total = 0;
    for (int64_t i = 0; i < N; i++) total += losses[i];
    return total;
}

/* probs (N, V) become dlogits in place: (p - onehot(target)) * scale; rows
 * with a masked target get 0. */
void FN(crossentropy_bwd)(REAL *probs, const int32_t *targets, int64_t N, int64_t V, REAL scale, int nt) {
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < N; i++) {
        REAL *p = probs + i * V;
        if (targets[i] < 0) {
            for (int64_t j = 0; j < V; j++) p[j] = 0;
            continue;
        }
        for (int64_t j = 0; j < V; j++) p[j] *= scale;
        p[targets[i]] -= scale;
    }
}

/* The same with a scale per row of T positions: row_scale[i / T]. */
void FN(crossentropy_bwd_rows)(REAL *probs, const int32_t *targets, int64_t N, int64_t V, int64_t T,
                               const double *row_scale, int nt) {
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < N; i++) {
        REAL *p = probs + i * V;
        const REAL scale = (REAL)row_scale[i / T];
        if (targets[i] < 0) {
            for (int64_t j = 0; j < V; j++) p[j] = 0;
            continue;
        }
        for (int64_t j = 0; j < V; j++) p[j] *= scale;
        p[targets[i]] -= scale;
    }
}

#undef FN
#undef CAT
#undef CAT_
