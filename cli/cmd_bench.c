/* llmos bench: prompt-processing and generation speed, like llama-bench's pp/tg,
 * quoted against the machine's measured read bandwidth and FMA peak. */
#include "args.h"
#include "commands.h"
#include "llmos/machine.h"
#include "llmos/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: llmos bench MODEL.gguf [-p 512] [-n 128] [-s SEQS] [-t THREADS] [-r REPEATS] [--kv f16|f32] [--json]\n"
            "\n"
            "Measures prompt processing (pp: P tokens into an empty cache in batches) and generation\n"
            "(tg: N tokens one at a time) in tokens/s, mean and standard deviation over R runs after\n"
            "a warm-up. Also measures the machine's read bandwidth, fp32 FMA peak and (with AVX-512\n"
            "VNNI) int8 dot-product peak with the same threads, before the first run and after each\n"
            "one, and quotes each run against the higher of the readings just before and after it (a\n"
            "shared machine's limits change from minute to minute, and a reading can come out low);\n"
            "the fractions reported are the means of the runs', the machine line shows the highest\n"
            "readings, and the cache-line round trip between the first two CPUs before and after the\n"
            "runs tells a VM's placements apart (its bandwidth and latency change together:\n"
            "docs/performance.md). Generation is reported as GB/s of weights read (and the fraction\n"
            "of the bandwidth), prompt processing as GFLOP/s: 2 per multiply-add of the layers'\n"
            "matrices for every prompt token, of the output matrix for the last one (whose logits are\n"
            "all a prompt needs) and of attention (each token's query against the keys up to it, and\n"
            "its weights against the values), and the fraction of the peak of the instructions its\n"
            "products use (int8 dot products for Q8_0, Q4_0, Q4_K and Q6_K matrices on VNNI CPUs, f32\n"
            "FMA for attention and otherwise, mixed in the prompt's proportions; the matrices' share\n"
            "alone is printed too). With -s S > 1 it also measures S sequences generated together\n"
            "(tgNxS: one decode step runs a token of each, each sequence in its own KV cache, as the\n"
            "slots of 'llmos serve --parallel S' do), in tokens/s over all of them.\n"
            "\n"
            "options:\n"
            "  -p, --n-prompt P   prompt tokens (default 512; 0 skips the test)\n"
            "  -n, --n-gen N      generated tokens (default 128; 0 skips the test)\n"
            "  -s, --seqs S       sequences generated together, 1 to 64 (default 1: tg only)\n"
            "  -t, --threads T    threads (default: all cores)\n"
            "  -r, --repeats R    runs per test (default 5)\n"
            "      --kv f16|f32   KV cache element type (default f16, as llama-bench)\n"
            "      --json         one JSON object per test on stdout\n"
            "  -h, --help         this help\n");
}

typedef struct run_stats {
    double mean, sd;
} run_stats;

static run_stats stats_of(const double *v, int n) {
    run_stats s = {0, 0};
    for (int i = 0; i < n; i++) s.mean += v[i];
    s.mean /= n;
    for (int i = 0; i < n; i++) s.sd += (v[i] - s.mean) * (v[i] - s.mean);
    s.sd = n > 1 ? sqrt(s.sd / (n - 1)) : 0;
    return s;
}

/* The machine's limits with the benchmark's threads. */
typedef struct limits {
    double bandwidth, fma_peak, int8_peak; /* GB/s, GFLOP/s, G-ops/s (0: no VNNI or not wanted) */
    const char *isa;
} limits;

/* One reading of all three, the bandwidth on the benchmark's probe buffer. */
static limits measure_limits(lm_bandwidth_probe *probe, int64_t threads, int want_int8) {
    limits l;
    l.bandwidth = lm_bandwidth_probe_measure(probe, 4);
    l.fma_peak = lm_measure_fma_peak((int)threads, &l.isa);
    l.int8_peak = want_int8 ? lm_measure_int8_peak((int)threads) : 0.0;
    return l;
}

/* a with each limit raised to b's where b read higher. A run is quoted
 * against the higher of the readings just before and after it: on a shared
 * VM the bandwidth moves between about 46 and 77 GB/s from one minute to
 * the next, and a single reading can come out several times too low (7.6
 * GB/s once, against 61-65 just before and after); quoted against readings
 * taken before and after all the runs, a run in a slow spell read as 56% of
 * a fast spell's bandwidth. */
static limits best_limits(limits a, limits b) {
    if (b.bandwidth > a.bandwidth) a.bandwidth = b.bandwidth;
    if (b.fma_peak > a.fma_peak) a.fma_peak = b.fma_peak;
    if (b.int8_peak > a.int8_peak) a.int8_peak = b.int8_peak;
    return a;
}

/* The rate at which the peaks do a prompt's operations when int8_share of
 * them go through int8 dot products and the rest through f32 FMA. */
static double mixed_peak(const limits *l, double int8_share) {
    if (l->int8_peak <= 0) return l->fma_peak;
    return 1.0 / (int8_share / l->int8_peak + (1.0 - int8_share) / l->fma_peak);
}

/* Runs n tokens from position 0, one at a time (generation) or as one
 * batch (prompt processing); returns tokens/s, or -1 on error. */
static double time_tokens(lm_context *ctx, int64_t n, int64_t n_vocab, uint64_t seed, int batched, lm_error *err) {
    int32_t *toks = malloc((size_t)n * sizeof *toks);
    if (!toks) {
        lm_error_set(err, LM_ERR_NOMEM, "out of memory");
        return -1;
    }
    for (int64_t i = 0; i < n; i++) toks[i] = (int32_t)((seed + (uint64_t)i * 2654435761u) % (uint64_t)n_vocab);
    const float *logits;
    double t0 = cli_now_seconds();
    lm_status st = LM_OK;
    if (batched) {
        st = lm_context_forward_batch(ctx, toks, n, 0, NULL, &logits, err);
    } else {
        for (int64_t i = 0; i < n && !st; i++) st = lm_context_forward(ctx, toks[i], i, &logits, err);
    }
    double dt = cli_now_seconds() - t0;
    free(toks);
    return st ? -1 : (double)n / dt;
}

/* Generates n tokens in each of the s contexts together, one batched step per position; returns
 * tokens/s over all of them, or -1 on error. logits: (s, n_vocab) scratch. */
static double time_multi(lm_context *const *ctxs, int64_t s, int64_t n, int64_t n_vocab, uint64_t seed, float *logits,
                         lm_error *err) {
    int32_t toks[64];
    int64_t pos[64];
    double t0 = cli_now_seconds();
    for (int64_t i = 0; i < n; i++) {
        for (int64_t b = 0; b < s; b++) {
            toks[b] = (int32_t)((seed + (uint64_t)(i * s + b) * 2654435761u) % (uint64_t)n_vocab);
            pos[b] = i;
        }
        if (lm_context_forward_multi(ctxs, toks, pos, s, logits, err)) return -1;
    }
    return (double)(n * s) / (cli_now_seconds() - t0);
}

int cmd_bench(int argc, char **argv) {
    const char *path = NULL;
    int64_t n_prompt = 512, n_gen = 128, repeats = 5, seqs = 1;
    int threads = cli_default_threads();
    int json = 0;
    lm_kv_type kv_type = LM_KV_F16;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v;
        if (arg_is(a, "-h", "--help")) {
            usage(stdout);
            return 0;
        } else if (arg_is(a, "-p", "--n-prompt")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_int64(a, v, 0, 1 << 20, &n_prompt)) return 2;
        } else if (arg_is(a, "-n", "--n-gen")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_int64(a, v, 0, 1 << 20, &n_gen)) return 2;
        } else if (arg_is(a, "-s", "--seqs")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_int64(a, v, 1, 64, &seqs)) return 2;
        } else if (arg_is(a, "-t", "--threads")) {
            if (arg_threads(argc, argv, &i, &threads)) return 2;
        } else if (arg_is(a, "-r", "--repeats")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_int64(a, v, 1, 1000, &repeats)) return 2;
        } else if (arg_is(a, NULL, "--kv")) {
            if (arg_kv_type(argc, argv, &i, &kv_type)) return 2;
        } else if (arg_is(a, NULL, "--json")) {
            json = 1;
        } else if (a[0] == '-' && a[1] != '\0') {
            cli_error("bench: unknown option '%s' (see 'llmos bench --help')", a);
            return 2;
        } else if (!path) {
            path = a;
        } else {
            cli_error("bench: unexpected argument '%s'", a);
            return 2;
        }
    }
    if (!path) {
        usage(stderr);
        return 2;
    }
    if (n_prompt == 0 && n_gen == 0) {
        cli_error("bench: -p and -n are both 0: nothing to measure");
        return 2;
    }
    lm_error err = {0};
    lm_model *m;
    if (lm_model_load(path, &m, &err)) {
        cli_error("cannot load %s: %s", path, err.message);
        return 1;
    }
    const lm_model_config *c = lm_model_get_config(m);
    int64_t n_ctx = n_prompt > n_gen ? n_prompt : n_gen;
    if (n_ctx < 1) n_ctx = 1;
    if (n_ctx > c->context_length) {
        cli_error("bench: %lld tokens do not fit the model's context of %lld", (long long)n_ctx, (long long)c->context_length);
        lm_model_free(m);
        return 2;
    }
    /* What one generated token reads: every tensor but the embedding table
     * (one row of it), unless the embedding doubles as the output matrix. */
    const lm_gguf *g = lm_model_get_gguf(m);
    uint64_t file_bytes = 0, per_token = 0, params = 0;
    for (int64_t i = 0; i < lm_gguf_tensor_count(g); i++) {
        const lm_gguf_tensor *t = lm_gguf_tensor_at(g, i);
        file_bytes += t->n_bytes;
        params += t->n_elements;
        int is_embd = strcmp(t->name, "token_embd.weight") == 0;
        if (!is_embd || c->tied_output) {
            per_token += t->n_bytes;
        } else {
            per_token += t->n_bytes / (uint64_t)t->ne[1];
        }
    }
    /* A prompt's work: the layers' matrices for every token, the output
     * matrix for the last (counting it for every token overstated the
     * 110M model's prompt FLOP/s by 29%), and attention's two products per
     * query head: the token at position i meets i + 1 keys (scores) and as
     * many values, head_dim multiply-adds each. Attention runs on f32 FMA;
     * at pp512 it is 5% of the 110M model's work but, at a quarter of the
     * int8 rate, a fifth of its time at the peaks, so leaving it out made a
     * prompt look 20% further from the machine's limit than it is. */
    const lm_matrix_params mp = lm_model_matrix_params(m);
    const double prompt_tokens = n_prompt > 0 ? (double)n_prompt : 1.0;
    const double attention_macs = 2.0 * (double)c->n_layers * (double)c->n_heads * (double)c->head_dim *
                                  (prompt_tokens * (prompt_tokens + 1) / 2);
    const double matrix_macs = (double)mp.layers * prompt_tokens + (double)mp.output;
    const double prompt_macs = matrix_macs + attention_macs;
    const double prompt_macs_int8 = (double)mp.layers_int8 * prompt_tokens + (double)mp.output_int8;
    double flops_per_token = 2.0 * prompt_macs / prompt_tokens;
    const int any_int8 = mp.layers_int8 + mp.output_int8 > 0;
    /* a buffer far larger than the caches: 1 GiB, or 256 MiB if that fails */
    lm_bandwidth_probe *probe = lm_bandwidth_probe_new(threads, (size_t)1 << 30);
    if (!probe) probe = lm_bandwidth_probe_new(threads, (size_t)256 << 20);
    if (!probe) {
        cli_error("bench: cannot allocate the bandwidth probe's buffer (256 MiB)");
        lm_model_free(m);
        return 1;
    }
    lm_context *ctx;
    if (lm_context_init_kv(m, n_ctx, threads, kv_type, &ctx, &err)) {
        cli_error("bench: %s", err.message);
        lm_bandwidth_probe_free(probe);
        lm_model_free(m);
        return 1;
    }
    /* per run: tokens/s, and the limit it is quoted against */
    double *pp = calloc((size_t)repeats, sizeof *pp), *tg = calloc((size_t)repeats, sizeof *tg);
    double *tgs = calloc((size_t)repeats, sizeof *tgs);
    limits *pp_ref = calloc((size_t)repeats, sizeof *pp_ref), *tg_ref = calloc((size_t)repeats, sizeof *tg_ref);
    lm_context **more = calloc((size_t)seqs, sizeof *more); /* the -s sequences' contexts; more[0] = ctx */
    float *multi_logits = seqs > 1 ? malloc((size_t)seqs * (size_t)c->n_vocab * sizeof *multi_logits) : NULL;
    int rc = 1;
    if (!pp || !tg || !tgs || !pp_ref || !tg_ref || !more || (seqs > 1 && !multi_logits)) {
        lm_error_set(&err, LM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    more[0] = ctx;
    for (int64_t b = 1; b < seqs; b++)
        if (lm_context_init_kv(m, n_ctx, threads, kv_type, &more[b], &err)) goto fail;
    /* Warm-up, as llama-bench does: page the weights in, start the threads,
     * and run the prompt test once (its first run also allocates and first
     * touches the batch buffers: 20-30% slower at 110M, which the mean of 3
     * runs then carried). */
    if (time_tokens(ctx, n_ctx < 4 ? n_ctx : 4, c->n_vocab, 1, 0, &err) < 0) goto fail;
    if (n_prompt && time_tokens(ctx, n_prompt, c->n_vocab, 3, 1, &err) < 0) goto fail;
    /* which machine the figures come from (the VM's two modes, llmos/machine.h) */
    const double round_trip_first = lm_measure_core_round_trip();
    limits reading = measure_limits(probe, threads, any_int8), highest = reading;
    for (int64_t r = 0; r < repeats; r++) {
        if (n_prompt) {
            if ((pp[r] = time_tokens(ctx, n_prompt, c->n_vocab, (uint64_t)r + 7, 1, &err)) < 0) goto fail;
            const limits after = measure_limits(probe, threads, any_int8);
            pp_ref[r] = best_limits(reading, after);
            highest = best_limits(highest, reading = after);
        }
        if (n_gen) {
            if ((tg[r] = time_tokens(ctx, n_gen, c->n_vocab, (uint64_t)r + 99, 0, &err)) < 0) goto fail;
            const limits after = measure_limits(probe, threads, any_int8);
            tg_ref[r] = best_limits(reading, after);
            highest = best_limits(highest, reading = after);
        }
        if (n_gen && seqs > 1 && (tgs[r] = time_multi(more, seqs, n_gen, c->n_vocab, (uint64_t)r + 5, multi_logits, &err)) < 0)
            goto fail;
    }
    /* The prompt's products run on int8 dot products for some matrices (the
     * x16 kernels) and f32 multiply-adds for the rest: its peak is the rate
     * at which the two peaks would do their shares of a token's operations;
     * and the same with the weight matrices alone (the figure before
     * attention was counted), so that runs stay comparable. Each run's
     * fraction is of its own readings' peak; the peaks reported are the
     * means of those. */
    const double int8_share = prompt_macs > 0 ? prompt_macs_int8 / prompt_macs : 0.0;
    const double matrix_int8_share = matrix_macs > 0 ? prompt_macs_int8 / matrix_macs : 0.0;
    double peak = 0, fma_peak = 0, int8_peak = 0, pp_fraction = 0, pp_matrix_fraction = 0, bandwidth = 0, tg_fraction = 0;
    for (int64_t r = 0; r < repeats; r++) {
        if (n_prompt) {
            const double gflops = pp[r] * flops_per_token / 1e9, matrix_gflops = pp[r] * (2.0 * matrix_macs / prompt_tokens) / 1e9;
            peak += mixed_peak(&pp_ref[r], int8_share) / (double)repeats;
            fma_peak += pp_ref[r].fma_peak / (double)repeats;
            int8_peak += pp_ref[r].int8_peak / (double)repeats;
            pp_fraction += gflops / mixed_peak(&pp_ref[r], int8_share) / (double)repeats;
            pp_matrix_fraction += matrix_gflops / mixed_peak(&pp_ref[r], matrix_int8_share) / (double)repeats;
        }
        if (n_gen) {
            bandwidth += tg_ref[r].bandwidth / (double)repeats;
            tg_fraction += tg[r] * (double)per_token / 1e9 / tg_ref[r].bandwidth / (double)repeats;
        }
    }
    const double round_trip_last = lm_measure_core_round_trip();
    const char *isa = highest.isa;
    const double attention_share = attention_macs / prompt_macs;
    run_stats sp = stats_of(pp, (int)repeats), sg = stats_of(tg, (int)repeats), ss = stats_of(tgs, (int)repeats);
    int multi = n_gen && seqs > 1;
    double pp_gflops = sp.mean * flops_per_token / 1e9, tg_gbs = sg.mean * (double)per_token / 1e9;
    if (json) {
        if (n_prompt) {
            printf("{\"test\":\"pp%lld\",\"tokens_per_s\":%.2f,\"stddev\":%.2f,\"gflop_per_s\":%.2f,\"peak_gflop_per_s\":%.1f,"
                   "\"peak_fraction\":%.4f,\"fma_peak_gflop_per_s\":%.1f,\"int8_peak_gop_per_s\":%.1f,\"int8_share\":%.4f,"
                   "\"attention_share\":%.4f,\"matrices_peak_fraction\":%.4f,"
                   "\"threads\":%lld,\"model_bytes\":%llu,\"params\":%llu,\"kv_cache\":\"%s\","
                   "\"round_trip_ns_first\":%.0f,\"round_trip_ns_last\":%.0f}\n",
                   (long long)n_prompt, sp.mean, sp.sd, pp_gflops, peak, pp_fraction, fma_peak, int8_peak, int8_share,
                   attention_share, pp_matrix_fraction, (long long)threads, (unsigned long long)file_bytes,
                   (unsigned long long)params, lm_kv_type_name(kv_type), round_trip_first, round_trip_last);
        }
        if (n_gen) {
            printf("{\"test\":\"tg%lld\",\"tokens_per_s\":%.2f,\"stddev\":%.2f,\"gb_per_s\":%.2f,\"bandwidth_gb_per_s\":%.1f,"
                   "\"bandwidth_fraction\":%.4f,\"threads\":%lld,\"model_bytes\":%llu,\"params\":%llu,\"kv_cache\":\"%s\","
                   "\"round_trip_ns_first\":%.0f,\"round_trip_ns_last\":%.0f}\n",
                   (long long)n_gen, sg.mean, sg.sd, tg_gbs, bandwidth, tg_fraction, (long long)threads,
                   (unsigned long long)file_bytes, (unsigned long long)params, lm_kv_type_name(kv_type), round_trip_first,
                   round_trip_last);
        }
        if (multi) {
            printf("{\"test\":\"tg%lldx%lld\",\"tokens_per_s\":%.2f,\"stddev\":%.2f,\"vs_tg\":%.3f,\"threads\":%lld,"
                   "\"model_bytes\":%llu,\"params\":%llu,\"kv_cache\":\"%s\"}\n",
                   (long long)n_gen, (long long)seqs, ss.mean, ss.sd, ss.mean / sg.mean, (long long)threads,
                   (unsigned long long)file_bytes, (unsigned long long)params, lm_kv_type_name(kv_type));
        }
    } else {
        printf("model: %s | %.3f B params | %.1f MB of tensors | %.1f MB read per generated token\n", path, (double)params / 1e9,
               (double)file_bytes / 1e6, (double)per_token / 1e6);
        printf("machine (highest readings): read bandwidth %.1f GB/s, fp32 FMA peak %.1f GFLOP/s (%s)", highest.bandwidth,
               highest.fma_peak, isa);
        if (highest.int8_peak > 0) printf(", int8 dot peak %.1f G-ops/s (avx512-vnni)", highest.int8_peak);
        printf(", %lld threads; KV cache %s\n", (long long)threads, lm_kv_type_name(kv_type));
        if (round_trip_first > 0 && round_trip_last > 0)
            printf("cache-line round trip between the first two CPUs: %.0f ns before the runs, %.0f after\n", round_trip_first,
                   round_trip_last);
        if (n_prompt) {
            printf("prompt: %.0f%% of the products through int8 dot products, the rest f32 FMA (attention %.1f%%): "
                   "peak %.1f G-ops/s; the weight matrices alone reach %.1f%% of their peak\n",
                   100 * int8_share, 100 * attention_share, peak, 100 * pp_matrix_fraction);
        }
        printf("| test   | tokens/s          | GB/s   | of bandwidth | GFLOP/s | of peak |\n");
        if (n_prompt) {
            printf("| pp%-4lld | %8.2f ± %-6.2f |        |              | %7.1f | %6.1f%% |\n", (long long)n_prompt, sp.mean, sp.sd,
                   pp_gflops, 100 * pp_fraction);
        }
        if (n_gen) {
            printf("| tg%-4lld | %8.2f ± %-6.2f | %6.1f | %11.1f%% |         |         |\n", (long long)n_gen, sg.mean, sg.sd, tg_gbs,
                   100 * tg_fraction);
        }
        if (multi)
            printf("tg%lld x %lld sequences together: %.2f ± %.2f tokens/s in all, %.2fx tg%lld\n", (long long)n_gen,
                   (long long)seqs, ss.mean, ss.sd, ss.mean / sg.mean, (long long)n_gen);
    }
    rc = 0;
    goto done;
fail:
    cli_error("bench: %s", err.message);
done:
    free(pp);
    free(tg);
    free(tgs);
    free(pp_ref);
    free(tg_ref);
    lm_bandwidth_probe_free(probe);
    for (int64_t b = 1; more && b < seqs; b++) lm_context_free(more[b]);
    free(more);
    free(multi_logits);
    lm_context_free(ctx);
    lm_model_free(m);
    return rc;
}
