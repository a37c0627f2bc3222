/* Training: 10 AdamW steps of the trainer's f32 model against an
 * independent float64 reference written here (its own forward pass,
 * gradients by central finite differences, its own AdamW), and checkpoint
 * files (round trip, corruption, truncation, falling back to the previous
 * one). */
#include "base/rng.h"
#include "test.h"
#include "train/checkpoint.h"
#include "train/model.h"
#include "train/optim.h"

#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- The reference: a Llama forward pass in plain float64 loops ---- */

enum { V = 13, D = 8, L = 1, H = 2, KVH = 1, HD = 4, F = 12, B = 2, T = 6 };

/* Parameter offsets in the same layout as the trainer (model.h). */
enum {
    P_EMB = 0,
    P_ANORM = P_EMB + V * D,
    P_WQ = P_ANORM + D,
    P_WK = P_WQ + H * HD * D,
    P_WV = P_WK + KVH * HD * D,
    P_WO = P_WV + KVH * HD * D,
    P_FNORM = P_WO + D * H * HD,
    P_WG = P_FNORM + D,
    P_WU = P_WG + F * D,
    P_WD = P_WU + F * D,
    P_ONORM = P_WD + D * F,
    P_OUT = P_ONORM + D,
    P_N = P_OUT + V * D
};

static void ref_rmsnorm(double *out, const double *x, const double *w) {
    double ss = 0;
    for (int i = 0; i < D; i++) ss += x[i] * x[i];
    double r = 1 / sqrt(ss / D + 1e-5);
    for (int i = 0; i < D; i++) out[i] = x[i] * r * w[i];
}

/* y (rows) = W (rows, cols) x */
static void ref_mv(double *y, const double *W, const double *x, int rows, int cols) {
    for (int r = 0; r < rows; r++) {
        y[r] = 0;
        for (int c = 0; c < cols; c++) y[r] += W[r * cols + c] * x[c];
    }
}

static void ref_rope(double *v, int pos) {
    for (int i = 0; i < HD / 2; i++) {
        double a = pos * pow(10000.0, -2.0 * i / HD), c = cos(a), s = sin(a);
        double x0 = v[2 * i], x1 = v[2 * i + 1];
        v[2 * i] = x0 * c - x1 * s;
        v[2 * i + 1] = x0 * s + x1 * c;
    }
}

/* Mean cross-entropy over all B*T positions. */
static double ref_loss(const double *p, const int *in, const int *tg) {
    double total = 0;
    for (int b = 0; b < B; b++) {
        double x[T][D], q[T][H * HD], k[T][KVH * HD], v[T][KVH * HD];
        for (int t = 0; t < T; t++) memcpy(x[t], p + P_EMB + in[b * T + t] * D, sizeof x[t]);
        double n[D];
        for (int t = 0; t < T; t++) {
            ref_rmsnorm(n, x[t], p + P_ANORM);
            ref_mv(q[t], p + P_WQ, n, H * HD, D);
            ref_mv(k[t], p + P_WK, n, KVH * HD, D);
            ref_mv(v[t], p + P_WV, n, KVH * HD, D);
            for (int h = 0; h < H; h++) ref_rope(q[t] + h * HD, t);
            for (int h = 0; h < KVH; h++) ref_rope(k[t] + h * HD, t);
        }
        for (int t = 0; t < T; t++) {
            double ao[H * HD];
            for (int h = 0; h < H; h++) {
                int kh = h / (H / KVH);
                double s[T], mx = -1e300, z = 0;
                for (int u = 0; u <= t; u++) {
                    s[u] = 0;
                    for (int i = 0; i < HD; i++) s[u] += q[t][h * HD + i] * k[u][kh * HD + i];
                    s[u] /= sqrt((double)HD);
                    mx = fmax(mx, s[u]);
                }
                for (int u = 0; u <= t; u++) z += (s[u] = exp(s[u] - mx));
                for (int i = 0; i < HD; i++) {
                    ao[h * HD + i] = 0;
                    for (int u = 0; u <= t; u++) ao[h * HD + i] += s[u] / z * v[u][kh * HD + i];
                }
            }
            double o[D];
            ref_mv(o, p + P_WO, ao, D, H * HD);
            for (int i = 0; i < D; i++) x[t][i] += o[i];
            ref_rmsnorm(n, x[t], p + P_FNORM);
            double g[F], u[F], hh[F];
            ref_mv(g, p + P_WG, n, F, D);
            ref_mv(u, p + P_WU, n, F, D);
            for (int i = 0; i < F; i++) hh[i] = g[i] / (1 + exp(-g[i])) * u[i];
            ref_mv(o, p + P_WD, hh, D, F);
            for (int i = 0; i < D; i++) x[t][i] += o[i];
            ref_rmsnorm(n, x[t], p + P_ONORM);
            double logits[V], mx = -1e300, z = 0;
            ref_mv(logits, p + P_OUT, n, V, D);
            for (int i = 0; i < V; i++) mx = fmax(mx, logits[i]);
            for (int i = 0; i < V; i++) z += exp(logits[i] - mx);
            total += log(z) + mx - logits[tg[b * T + t]];
        }
    }
    return total / (B * T);
}

static int is_norm(int i) {
    return (i >= P_ANORM && i < P_ANORM + D) || (i >= P_FNORM && i < P_FNORM + D) || (i >= P_ONORM && i < P_ONORM + D);
}

static void check_trajectory(void) {
    lm_rng rng;
    lm_rng_seed(&rng, 77);
    double *p = malloc(P_N * sizeof *p), *g = malloc(P_N * sizeof *g), *m = calloc(P_N, sizeof *m), *v = calloc(P_N, sizeof *v);
    for (int i = 0; i < P_N; i++) p[i] = is_norm(i) ? 1.0 : 0.2 * (2 * lm_rng_uniform(&rng) - 1);
    int in[B * T], tg[B * T];
    for (int i = 0; i < B * T; i++) in[i] = (int)(lm_rng_next(&rng) % V), tg[i] = (int)(lm_rng_next(&rng) % V);

    /* The trainer's pieces on the same start. */
    lm_train_shape s = {D, L, H, KVH, HD, F, V, 0, 1e-5, 10000.0};
    lm_error err = {0};
    lm_trm_f32 *tm;
    REQUIRE(lm_trm_create_f32(&s, B, T, 2, &tm, &err) == LM_OK);
    REQUIRE(lm_trm_layout_f32(tm)->n_params == P_N);
    float *tp = lm_trm_params_f32(tm), *tgr = lm_trm_grads_f32(tm), *tmm = calloc(P_N, 4), *tv = calloc(P_N, 4);
    for (int i = 0; i < P_N; i++) tp[i] = (float)p[i];
    int64_t n_seg;
    lm_param_segment *seg = lm_param_segments(lm_trm_layout_f32(tm), &s, 0, &n_seg);
    lm_train_options o;
    lm_train_options_default(&o);
    o.lr = 3e-2, o.weight_decay = 0.1, o.max_steps = 10, o.warmup_steps = 2, o.grad_clip = 1.0;
    int32_t in32[B * T], tg32[B * T];
    for (int i = 0; i < B * T; i++) in32[i] = in[i], tg32[i] = tg[i];
    double worst = 0;
    for (int step = 0; step < 10; step++) {
        double lr = lm_lr_at(&o, step);
        /* reference: loss, finite-difference gradient, clip, AdamW */
        double loss = ref_loss(p, in, tg), norm = 0;
        for (int i = 0; i < P_N; i++) {
            double keep = p[i], h = 1e-5;
            p[i] = keep + h;
            double lp = ref_loss(p, in, tg);
            p[i] = keep - h;
            double lmn = ref_loss(p, in, tg);
            p[i] = keep;
            g[i] = (lp - lmn) / (2 * h);
            norm += g[i] * g[i];
        }
        norm = sqrt(norm);
        double clip = norm > 1.0 ? 1.0 / norm : 1.0;
        for (int i = 0; i < P_N; i++) {
            double gi = g[i] * clip;
            m[i] = 0.9 * m[i] + 0.1 * gi;
            v[i] = 0.95 * v[i] + 0.05 * gi * gi;
            double mh = m[i] / (1 - pow(0.9, step + 1)), vh = v[i] / (1 - pow(0.95, step + 1));
            int decay = !is_norm(i) && !(i >= P_EMB && i < P_EMB + V * D);
            p[i] -= lr * mh / (sqrt(vh) + 1e-8) + (decay ? lr * 0.1 * p[i] : 0);
        }
        /* trainer */
        memset(tgr, 0, P_N * sizeof *tgr);
        int64_t scored;
        double tl = lm_trm_forward_f32(tm, in32, tg32, &scored) / (double)scored;
        lm_trm_backward_f32(tm, 1.0 / (double)scored);
        double tn = lm_grad_norm(tgr, P_N, 2);
        if (tn > 1.0) lm_scale(tgr, P_N, (float)(1.0 / tn), 2);
        lm_adamw_step(tp, tgr, tmm, tv, seg, n_seg, lr, &o, step + 1, 2);
        double e = fabs(tl - loss) / loss;
        worst = e > worst ? e : worst;
        printf("step %2d: loss %.7f (reference %.7f), grad norm %.6f (%.6f)\n", step + 1, tl, loss, tn, norm);
        CHECKF(fabs(tn - norm) < 1e-4 * norm, "step %d: gradient norm %.7f vs reference %.7f", step + 1, tn, norm);
    }
    printf("10-step loss trajectory: worst relative difference from the float64 reference %.2e\n", worst);
    CHECKF(worst < 1e-4, "trajectory off by %.3e", worst);
    free(p), free(g), free(m), free(v), free(tmm), free(tv), free(seg);
    lm_trm_free_f32(tm);
}

/* ---- Checkpoints ---- */

static void check_checkpoints(void) {
    char dir[] = "/tmp/llmos-ckpt-XXXXXX";
    REQUIRE(mkdtemp(dir));
    lm_train_shape s = {D, L, H, KVH, HD, F, V, 0, 1e-5, 10000.0};
    const int64_t n = P_N;
    float *p = malloc(n * 4), *m = malloc(n * 4), *v = malloc(n * 4), *p2 = malloc(n * 4), *m2 = malloc(n * 4), *v2 = malloc(n * 4);
    for (int64_t i = 0; i < n; i++) p[i] = (float)i * 0.5f, m[i] = -(float)i, v[i] = (float)(i % 7);
    lm_ckpt_state st = {5, 123, {1, 2, 3, 4}, 999, 12.5}, st2;
    char path[4096], path5[4096];
    lm_error err = {0};
    REQUIRE(lm_ckpt_save(dir, &s, n, p, m, v, &st, path5, &err) == LM_OK);
    CHECK(lm_ckpt_load(path5, &s, n, p2, m2, v2, &st2, &err) == LM_OK);
    CHECK(memcmp(p, p2, n * 4) == 0 && memcmp(m, m2, n * 4) == 0 && memcmp(v, v2, n * 4) == 0);
    CHECK(st2.step == 5 && st2.data_pos == 123 && st2.rng[3] == 4 && st2.tokens_seen == 999 && st2.elapsed_s == 12.5);
    /* Another shape is refused. */
    lm_train_shape other = s;
    other.ffn_dim = 11;
    CHECK(lm_ckpt_load(path5, &other, n, p2, m2, v2, &st2, &err) == LM_ERR_FORMAT);
    /* Steps 6 and 7: three files, of which the oldest is removed. */
    st.step = 6;
    p[0] = 42;
    REQUIRE(lm_ckpt_save(dir, &s, n, p, m, v, &st, path, &err) == LM_OK);
    st.step = 7;
    p[0] = 43;
    char path7[4096];
    REQUIRE(lm_ckpt_save(dir, &s, n, p, m, v, &st, path7, &err) == LM_OK);
    CHECK(access(path5, F_OK) != 0);
    /* A flipped bit in the newest: refused by the checksum, the previous one loads. */
    FILE *f = fopen(path7, "r+b");
    REQUIRE(f);
    fseek(f, 300, SEEK_SET);
    int c = fgetc(f);
    fseek(f, 300, SEEK_SET);
    fputc(c ^ 0x10, f);
    fclose(f);
    CHECK(lm_ckpt_load(path7, &s, n, p2, m2, v2, &st2, &err) == LM_ERR_FORMAT);
    CHECK(strstr(err.message, "checksum") != NULL);
    int found;
    CHECK(lm_ckpt_load_latest(dir, &s, n, p2, m2, v2, &st2, path, &found, NULL, &err) == LM_OK);
    CHECK(found && st2.step == 6 && p2[0] == 42);
    /* Truncated: refused with its size. */
    REQUIRE(truncate(path, 1000) == 0);
    CHECK(lm_ckpt_load(path, &s, n, p2, m2, v2, &st2, &err) == LM_ERR_FORMAT);
    CHECK(strstr(err.message, "truncated") != NULL);
    CHECK(lm_ckpt_load_latest(dir, &s, n, p2, m2, v2, &st2, path, &found, NULL, &err) == LM_OK && !found);
    /* Not a checkpoint at all. */
    f = fopen(path7, "wb");
    fputs("hello", f);
    fclose(f);
    CHECK(lm_ckpt_load(path7, &s, n, p2, m2, v2, &st2, &err) == LM_ERR_FORMAT);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    free(p), free(m), free(v), free(p2), free(m2), free(v2);
}

int main(void) {
    check_trajectory();
    check_checkpoints();
    TEST_END();
}
