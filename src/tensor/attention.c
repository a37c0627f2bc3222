/* Causal attention of a block of queries against one KV head through the
 * GEMM micro-kernel (see attention.h for the shapes). */
#include "attention.h"

#include "../base/checked.h"
#include "kernels.h"

#include <string.h>

/* Where each part of the scratch starts, in floats (each 64-byte aligned):
 *   ka    K, ceil(keys / MR) panels of (hd, MR)
 *   va    V^T, ceil(hd / MR) panels of (keys, MR)
 *   qb    Q^T, one B panel (hd, NR)
 *   st    S^T, then P^T: (ceil(keys / MR) * MR, NR)
 *   ot    O^T: (ceil(hd / MR) * MR, NR)
 *   sums  NR
 *   rows  max(MR, NR) rows of hd: cache rows converted from halves, a last
 *         panel's rows padded with zeros, a block's queries or outputs */
typedef struct {
    size_t ka, va, qb, st, ot, sums, rows, total;
} attn_layout;

/* 0 on overflow (the layout is then unusable). */
static int layout_of(const lm_gemm_kernel *g, int64_t keys, int64_t hd, attn_layout *l) {
    if (keys < 1 || hd < 1 || g->nr > 64) return 0;
    const uint64_t mr = (uint64_t)g->mr, nr = (uint64_t)g->nr;
    const uint64_t key_rows = ((uint64_t)keys + mr - 1) / mr * mr, dim_rows = ((uint64_t)hd + mr - 1) / mr * mr;
    uint64_t sizes[7] = {0, 0, 0, 0, 0, nr, (mr > nr ? mr : nr) * (uint64_t)hd};
    if (lm_mul_overflow_u64(key_rows, (uint64_t)hd, &sizes[0]) ||
        lm_mul_overflow_u64(dim_rows, (uint64_t)keys, &sizes[1]) ||
        lm_mul_overflow_u64((uint64_t)hd, nr, &sizes[2]) ||
        lm_mul_overflow_u64(key_rows, nr, &sizes[3]) || lm_mul_overflow_u64(dim_rows, nr, &sizes[4])) {
        return 0;
    }
    size_t *const at[7] = {&l->ka, &l->va, &l->qb, &l->st, &l->ot, &l->sums, &l->rows};
    uint64_t offset = 0;
    for (int i = 0; i < 7; i++) {
        *at[i] = (size_t)offset;
        uint64_t padded;
        if (lm_align_up_u64(sizes[i], 16, &padded) || lm_add_overflow_u64(offset, padded, &offset)) return 0;
    }
    if (offset > SIZE_MAX / sizeof(float)) return 0;
    l->total = (size_t)offset;
    return 1;
}

size_t lm_attn_scratch_floats(const lm_gemm_kernel *g, int64_t keys, int64_t hd) {
    attn_layout l;
    return layout_of(g, keys, hd, &l) ? l.total : 0;
}

/* dst (kc, MR) = MR rows of src (ld apart) transposed. */
static void pack_a(const lm_gemm_kernel *g, const float *src, int64_t ld, int64_t kc, float *dst) {
    if (g->pack_a) {
        g->pack_a(src, ld, kc, dst);
        return;
    }
    for (int64_t k = 0; k < kc; k++) {
        for (int i = 0; i < g->mr; i++) dst[k * g->mr + i] = src[i * ld + k];
    }
}

/* Position t's key (which 0) or value (1) as hd floats: in place for a
 * float cache, else converted into buf. */
static const float *kv_row(const lm_kv_head *kv, int which, int64_t t, int64_t hd, float *buf) {
    const void *base = which ? kv->v : kv->k;
    if (!kv->half) return (const float *)base + t * kv->stride;
    lm_kernels_best()->from_f16(buf, (const uint16_t *)base + t * kv->stride, hd);
    return buf;
}

/* dst (n, len) = the first len values of n rows of src (ld apart); len 8
 * or 12, as constants the compiler turns into moves. */
static void copy_runs(float *dst, const float *src, int64_t ld, int64_t n, int len) {
    if (len == 12) {
        for (int64_t i = 0; i < n; i++) memcpy(dst + i * 12, src + i * ld, 12 * sizeof *dst);
    } else {
        for (int64_t i = 0; i < n; i++) memcpy(dst + i * 8, src + i * ld, 8 * sizeof *dst);
    }
}

void lm_attn_pack_head(const lm_gemm_kernel *g, lm_kv_head kv, int64_t keys, int64_t hd, float *scratch) {
    attn_layout l;
    if (!layout_of(g, keys, hd, &l)) return;
    const int64_t mr = g->mr;
    float *rows = scratch + l.rows;
    /* K: MR keys a panel, transposed to (hd, MR); a float cache's full
     * panels straight from the cache, the rest through the row buffer. */
    for (int64_t t0 = 0; t0 < keys; t0 += mr) {
        float *panel = scratch + l.ka + t0 * hd;
        const int64_t n = keys - t0 < mr ? keys - t0 : mr;
        if (!kv.half && n == mr) {
            pack_a(g, (const float *)kv.k + t0 * kv.stride, kv.stride, hd, panel);
            continue;
        }
        for (int64_t i = 0; i < mr; i++) {
            if (i >= n) {
                memset(rows + i * hd, 0, (size_t)hd * sizeof *rows);
                continue;
            }
            const float *r = kv_row(&kv, 0, t0 + i, hd, rows + i * hd);
            if (r != rows + i * hd) memcpy(rows + i * hd, r, (size_t)hd * sizeof *rows);
        }
        pack_a(g, rows, hd, hd, panel);
    }
    /* V^T: panel p holds dimensions p MR .. p MR + MR - 1 of every key, MR
     * values a key (a run of the key's row), zeros past hd. A chunk of keys
     * at a time is taken into the row buffer, then written a panel at a
     * time: each panel's part of the chunk is one contiguous run (a key at
     * a time across the panels took 1.5-2x as long: 110M's heads packed in
     * 19-35 us, now 12-19, on one thread). */
    const int64_t chunk = mr > g->nr ? mr : g->nr;
    for (int64_t t0 = 0; t0 < keys; t0 += chunk) {
        const int64_t n = keys - t0 < chunk ? keys - t0 : chunk;
        for (int64_t i = 0; i < n; i++) {
            const float *r = kv_row(&kv, 1, t0 + i, hd, rows + i * hd);
            if (r != rows + i * hd) memcpy(rows + i * hd, r, (size_t)hd * sizeof *rows);
        }
        for (int64_t d0 = 0; d0 < hd; d0 += mr) {
            float *dst = scratch + l.va + d0 * keys + t0 * mr;
            if (d0 + mr <= hd && (mr == 12 || mr == 8)) { /* fixed-size copies: a library call per run cost more */
                copy_runs(dst, rows + d0, hd, n, (int)mr);
                continue;
            }
            for (int64_t i = 0; i < n; i++) {
                for (int64_t j = 0; j < mr; j++) dst[i * mr + j] = d0 + j < hd ? rows[i * hd + d0 + j] : 0.0f;
            }
        }
    }
}

void lm_attn_causal(const lm_gemm_kernel *g, float *scratch, int64_t keys, int64_t hd, const float *q, int64_t q_stride,
                    int64_t n, int64_t pos0, float scale, const lm_attn_rope *rope, float *out, int64_t out_stride) {
    attn_layout l;
    if (!layout_of(g, keys, hd, &l) || pos0 + n > keys) return;
    const lm_kernels *k = lm_kernels_best();
    const int64_t mr = g->mr, nr = g->nr;
    float *qb = scratch + l.qb, *st = scratch + l.st, *ot = scratch + l.ot, *sums = scratch + l.sums;
    float *buf = scratch + l.rows;
    /* the transposer takes rows in eights (the kernels' NR are 8, 16, 32) */
    const int by_eights = nr % 8 == 0 && hd % 8 == 0;
    for (int64_t q0 = 0; q0 < n; q0 += nr) {
        const int64_t rows = n - q0 < nr ? n - q0 : nr, first = pos0 + q0, seen = first + rows;
        /* Q^T: the block's queries across, zeros for missing ones (a full
         * block straight from Q's rows) */
        if (by_eights && rows == nr) {
            g->transpose(q + q0 * q_stride, q_stride, nr, hd, qb, nr);
        } else if (by_eights) {
            for (int64_t j = 0; j < nr; j++) {
                /* eights of fixed size: inline moves, not a library call per query */
                const float *src = q + (q0 + j) * q_stride;
                for (int64_t d = 0; d < hd; d += 8) {
                    if (j < rows) memcpy(buf + j * hd + d, src + d, 8 * sizeof *buf);
                    else memset(buf + j * hd + d, 0, 8 * sizeof *buf);
                }
            }
            g->transpose(buf, hd, nr, hd, qb, nr);
        } else {
            for (int64_t d = 0; d < hd; d++) {
                for (int64_t j = 0; j < nr; j++) qb[d * nr + j] = j < rows ? q[(q0 + j) * q_stride + d] : 0.0f;
            }
        }
        if (rope) k->rope_cols(qb, nr, rope->rope_dim, rope->cos_t, rope->sin_t, rope->stride, first);
        /* The next block's queries and this block's output rows asked for
         * while the products run: both come from, or go to, rows another
         * core touched last (Q's product is split by rows, rope by tokens),
         * and waiting for them was most of this function's own time. */
        for (int64_t j = 0; j < nr && q0 + nr + j < n; j++) {
            for (int64_t d = 0; d < hd; d += 16) __builtin_prefetch(q + (q0 + nr + j) * q_stride + d, 0);
        }
        for (int64_t j = 0; j < rows; j++) {
            for (int64_t d = 0; d < hd; d += 16) __builtin_prefetch(out + (q0 + j) * out_stride + d, 1);
        }
        /* S^T for the keys the block sees (the last panel's extra keys are
         * zeros in K, and no column sees them) */
        for (int64_t t0 = 0; t0 < seen; t0 += mr) g->micro(hd, scratch + l.ka + t0 * hd, qb, st + t0 * nr, nr, 0);
        k->softmax_exp_cols(st, seen, nr, first, scale, sums);
        for (int64_t d0 = 0; d0 < hd; d0 += mr) g->micro(seen, scratch + l.va + d0 * keys, st, ot + d0 * nr, nr, 0);
        /* O = (O^T)^T, each query's row divided by its sum (a full block
         * transposed straight into the output rows, then scaled there) */
        const int direct = by_eights && rows == nr;
        if (direct) g->transpose(ot, nr, hd, nr, out + q0 * out_stride, out_stride);
        else if (by_eights) g->transpose(ot, nr, hd, nr, buf, hd);
        for (int64_t j = 0; j < rows; j++) {
            const float inv = (float)(1.0 / (double)sums[j]);
            float *o = out + (q0 + j) * out_stride;
            if (by_eights) {
                const float *from = direct ? o : buf + j * hd;
                for (int64_t d = 0; d < hd; d += 8) { /* through a copy of 8, which the compiler vectorises */
                    float v[8];
                    for (int i = 0; i < 8; i++) v[i] = from[d + i] * inv;
                    memcpy(o + d, v, sizeof v);
                }
            } else {
                for (int64_t d = 0; d < hd; d++) o[d] = ot[d * nr + j] * inv;
            }
        }
    }
}
