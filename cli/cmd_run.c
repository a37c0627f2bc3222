/* llmos run: prompt in, prompt + continuation out on stdout; statistics on stderr. */
#include "args.h"
#include "commands.h"
#include "model_setup.h"
#include "llmos/generate.h"
#include "llmos/lora.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: llmos run MODEL.gguf [options]\n"
            "\n"
            "Writes the prompt followed by the generated text to stdout; load time and\n"
            "speed go to stderr. Stops at end-of-sequence or after N tokens.\n"
            "\n"
            "options:\n"
            "  -p, --prompt TEXT        text to continue (default: empty, start from BOS)\n"
            "  -n, --n-predict N        tokens to generate at most (default 256)\n"
            "      --temp T             temperature; 0 = greedy (default 0.8)\n"
            "      --top-k K            keep the K most likely tokens; 0 = all (default 40)\n"
            "      --top-p P            keep the smallest set with probability >= P (default 0.95)\n"
            "      --min-p M            drop tokens below M x the top probability (default 0.05)\n"
            "      --repeat-penalty R   penalise recent tokens; 1 = off (default 1)\n"
            "      --repeat-last-n N    how many recent tokens the penalty sees (default 64)\n"
            "      --seed S             random seed (default: from the clock, printed on stderr)\n"
            "  -c, --ctx-size N         KV cache positions (default: prompt + N, at most the model's)\n"
            "  -t, --threads N          threads (default: all cores)\n"
            "      --kv f16|f32         KV cache element type (default f16, as llama.cpp: half the\n"
            "                           memory and reads of f32, logits within ~1e-3 of it)\n"
            "      --no-bos             do not add the BOS token\n"
            "      --lora FILE          apply a LoRA adapter (GGUF) at run time\n"
            "      --lora-scale S       scale of the adapter (default 1)\n"
            "  -h, --help               this help\n");
}

typedef struct output {
    const char *prompt;
    int prompt_written; /* the prompt goes out once generation has started, so errors leave stdout empty */
} output;

static int write_prompt(output *o) {
    o->prompt_written = 1;
    size_t n = strlen(o->prompt);
    return n && fwrite(o->prompt, 1, n, stdout) != n;
}

static int write_piece(void *user, int32_t token, const char *text, size_t len) {
    output *o = user;
    (void)token;
    if (!o->prompt_written && write_prompt(o)) return 1;
    if (len && fwrite(text, 1, len, stdout) != len) return 1;
    fflush(stdout);
    return 0;
}

int cmd_run(int argc, char **argv) {
    const char *model_path = NULL, *prompt = "", *lora_path = NULL;
    float lora_scale = 1.0f;
    lm_generate_params gp = {lm_sampler_default_params(), 256, 0, 0, -1};
    int seed_given = 0;
    gp.n_threads = cli_default_threads();
    gp.kv_type = LM_KV_F16;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v;
        int64_t n;
        if (arg_is(a, "-h", "--help")) {
            usage(stdout);
            return 0;
        } else if (arg_is(a, "-p", "--prompt")) {
            if (!(prompt = arg_value(argc, argv, &i))) return 2;
        } else if (arg_is(a, "-n", "--n-predict")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_int64(a, v, 0, INT32_MAX, &gp.n_predict)) return 2;
        } else if (arg_is(a, NULL, "--temp")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_float(a, v, 0, 100, &gp.sampling.temperature)) return 2;
        } else if (arg_is(a, NULL, "--top-k")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_int64(a, v, 0, INT32_MAX, &n)) return 2;
            gp.sampling.top_k = (int32_t)n;
        } else if (arg_is(a, NULL, "--top-p")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_float(a, v, 1e-6, 1, &gp.sampling.top_p)) return 2;
        } else if (arg_is(a, NULL, "--min-p")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_float(a, v, 0, 1, &gp.sampling.min_p)) return 2;
        } else if (arg_is(a, NULL, "--repeat-penalty")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_float(a, v, 1e-3, 100, &gp.sampling.repeat_penalty)) return 2;
        } else if (arg_is(a, NULL, "--repeat-last-n")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_int64(a, v, 0, INT32_MAX, &n)) return 2;
            gp.sampling.repeat_last_n = (int32_t)n;
        } else if (arg_is(a, NULL, "--seed")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_uint64(a, v, &gp.sampling.seed)) return 2;
            seed_given = 1;
        } else if (arg_is(a, "-c", "--ctx-size")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_int64(a, v, 1, INT32_MAX, &gp.n_ctx)) return 2;
        } else if (arg_is(a, "-t", "--threads")) {
            if (arg_threads(argc, argv, &i, &gp.n_threads)) return 2;
        } else if (arg_is(a, NULL, "--kv")) {
            if (arg_kv_type(argc, argv, &i, &gp.kv_type)) return 2;
        } else if (arg_is(a, NULL, "--no-bos")) {
            gp.add_bos = 0;
        } else if (arg_is(a, NULL, "--lora")) {
            if (!(lora_path = arg_value(argc, argv, &i))) return 2;
        } else if (arg_is(a, NULL, "--lora-scale")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_float(a, v, -1000, 1000, &lora_scale)) return 2;
        } else if (a[0] == '-' && a[1] != '\0') {
            cli_error("run: unknown option '%s' (see 'llmos run --help')", a);
            return 2;
        } else if (!model_path) {
            model_path = a;
        } else {
            cli_error("run: unexpected argument '%s'", a);
            return 2;
        }
    }
    if (!model_path) {
        usage(stderr);
        return 2;
    }

    lm_error err = {0};
    lm_model *model;
    double t0 = cli_now_seconds();
    if (!(model = cli_load_model("run", model_path, lora_path, lora_scale))) return 1;
    double load_s = cli_now_seconds() - t0;
    if (lm_model_get_config(model)->context_length < gp.n_ctx) {
        cli_error("--ctx-size %lld is larger than the model's context length %lld", (long long)gp.n_ctx,
                  (long long)lm_model_get_config(model)->context_length);
        lm_model_free(model);
        return 2;
    }
    if (!seed_given) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        gp.sampling.seed = (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec;
    }
    output out = {prompt, 0};
    lm_generate_stats stats;
    lm_status st = lm_generate(model, prompt, strlen(prompt), &gp, write_piece, &out, &stats, &err);
    lm_model_free(model);
    if (st) {
        cli_error("%s", err.message);
        return 1;
    }
    if (!out.prompt_written) write_prompt(&out);
    if (isatty(STDOUT_FILENO)) fputc('\n', stdout);
    fflush(stdout);
    fprintf(stderr, "load: %.1f ms | prompt: %lld tokens, %.1f tokens/s | generation: %lld tokens, %.1f tokens/s%s\n",
            load_s * 1e3, (long long)stats.n_prompt,
            stats.prompt_seconds > 0 ? (double)stats.n_prompt / stats.prompt_seconds : 0.0,
            (long long)stats.n_generated,
            stats.generate_seconds > 0 ? (double)stats.n_generated / stats.generate_seconds : 0.0,
            stats.stop_reason == 2 ? " | stopped: context full" : "");
    if (!seed_given && gp.sampling.temperature > 0) fprintf(stderr, "seed: %llu\n", (unsigned long long)gp.sampling.seed);
    return 0;
}
