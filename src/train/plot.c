/* A small SVG line plot: training loss as a line, validation loss as dots,
 * on shared axes with tick labels. */
#include "plot.h"

#include "llmos/file.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A growing text buffer. */
typedef struct sbuf { char *p; size_t len, cap; int failed; } sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#include <stdarg.h>
static void sb_printf(sbuf *b, const char *fmt, ...) {
    if (b->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap + (size_t)n + 1) * 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->failed = 1;
            return;
        }
        b->p = q, b->cap = cap;
    }
}

static lm_status write_text(const char *path, const sbuf *b, lm_error *err) {
    if (b->failed) return lm_error_set(err, LM_ERR_NOMEM, "out of memory writing %s", path);
    lm_atomic_file *f;
    lm_status st = lm_atomic_file_open(path, &f, err);
    if (st) return st;
    if ((st = lm_atomic_file_write(f, b->p, b->len, err))) {
        lm_atomic_file_abort(f);
        return st;
    }
    return lm_atomic_file_commit(f, err);
}

lm_status lm_write_loss_curve(const char *base, const lm_loss_point *pts, int64_t n, lm_error *err) {
    char path[4096];
    sbuf csv = {0}, svg = {0};
    sb_printf(&csv, "step,loss,val_loss,lr\n");
    double lo = INFINITY, hi = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        if (pts[i].val_loss >= 0) {
            sb_printf(&csv, "%lld,%.6f,%.6f,%.6g\n", (long long)pts[i].step, pts[i].loss, pts[i].val_loss, pts[i].lr);
        } else {
            sb_printf(&csv, "%lld,%.6f,,%.6g\n", (long long)pts[i].step, pts[i].loss, pts[i].lr);
        }
        double vals[2] = {pts[i].loss, pts[i].val_loss};
        for (int k = 0; k < 2; k++) {
            if (k == 1 && vals[k] < 0) continue;
            if (!isfinite(vals[k])) continue;
            lo = vals[k] < lo ? vals[k] : lo;
            hi = vals[k] > hi ? vals[k] : hi;
        }
    }
    if (!(lo < hi)) lo = (isfinite(lo) ? lo : 0) - 1, hi = lo + 2;
    const double W = 720, Hh = 420, left = 60, right = 20, top = 30, bottom = 45;
    int64_t s0 = n ? pts[0].step : 0, s1 = n ? pts[n - 1].step : 1;
    if (s1 <= s0) s1 = s0 + 1;
#define X(step) (left + (W - left - right) * (double)((step) - s0) / (double)(s1 - s0))
#define Y(v) (top + (Hh - top - bottom) * (1 - ((v) - lo) / (hi - lo)))
    sb_printf(&svg, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-family=\"sans-serif\" font-size=\"12\">\n", W, Hh);
    sb_printf(&svg, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    sb_printf(&svg, "<text x=\"%.0f\" y=\"18\">loss (train: line, validation: dots)</text>\n", left);
    for (int t = 0; t <= 4; t++) { /* horizontal grid and loss labels */
        double v = lo + (hi - lo) * t / 4;
        sb_printf(&svg, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", left, W - right, Y(v), Y(v));
        sb_printf(&svg, "<text x=\"5\" y=\"%.1f\">%.3f</text>\n", Y(v) + 4, v);
    }
    for (int t = 0; t <= 4; t++) { /* step labels */
        int64_t st = s0 + (s1 - s0) * t / 4;
        sb_printf(&svg, "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%lld</text>\n", X(st), Hh - 25, (long long)st);
    }
    sb_printf(&svg, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">step</text>\n", (left + W - right) / 2, Hh - 8);
    sb_printf(&svg, "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" points=\"");
    for (int64_t i = 0; i < n; i++) {
        if (isfinite(pts[i].loss)) sb_printf(&svg, "%.1f,%.1f ", X(pts[i].step), Y(pts[i].loss));
    }
    sb_printf(&svg, "\"/>\n");
    for (int64_t i = 0; i < n; i++) {
        if (pts[i].val_loss >= 0 && isfinite(pts[i].val_loss)) {
            sb_printf(&svg, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"#d62728\"/>\n", X(pts[i].step), Y(pts[i].val_loss));
        }
    }
    sb_printf(&svg, "</svg>\n");
#undef X
#undef Y
    lm_status st;
    snprintf(path, sizeof path, "%s.loss.csv", base);
    st = write_text(path, &csv, err);
    if (!st) {
        snprintf(path, sizeof path, "%s.loss.svg", base);
        st = write_text(path, &svg, err);
    }
    free(csv.p);
    free(svg.p);
    return st;
}
