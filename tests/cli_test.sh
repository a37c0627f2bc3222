#!/usr/bin/env bash
# End-to-end tests of the llmos command line: the documented outputs, the
# converter, --help everywhere, and clean failures (message + non-zero exit,
# never a signal) on bad input. Usage: cli_test.sh path/to/llmos fixtures-dir
set -uo pipefail
llmos=$1
fix=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }

# expect_fail CODE DESCRIPTION -- command...: exit status CODE, one "llmos:" line on stderr.
expect_fail() {
  local code=$1 what=$2
  shift 3
  "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  if [ "$rc" -ne "$code" ]; then bad "$what: exit $rc, expected $code ($(head -c 300 "$tmp/err"))"; return; fi
  if [ "$(wc -l <"$tmp/err")" -ne 1 ] || ! grep -q '^llmos: ' "$tmp/err"; then
    bad "$what: stderr is not one 'llmos:' line: $(head -c 300 "$tmp/err")"; return
  fi
  ok
}

same_file() { if cmp -s "$1" "$2"; then ok; else bad "$3: output differs"; diff <(head -c 2000 "$1") <(head -c 2000 "$2") | head -10 >&2; fi; }

# --help on every command.
for c in "" run info convert; do
  if $llmos $c --help >"$tmp/help" 2>&1 && grep -q '^usage: llmos' "$tmp/help"; then ok; else bad "llmos $c --help"; fi
done
if $llmos --version | grep -q '^llmos '; then ok; else bad "--version"; fi

# The documented greedy story, from the official GGUF; stdout holds nothing else.
$llmos run "$fix/stories260K.gguf" --temp 0 -n 256 >"$tmp/story" 2>"$tmp/stats" || bad "run failed"
same_file "$tmp/story" "$fix/stories260K_greedy.txt" "greedy story"
# ... with the KV cache in f32 as well as in the default f16.
$llmos run "$fix/stories260K.gguf" --temp 0 -n 256 --kv f32 >"$tmp/story32" 2>/dev/null || bad "run --kv f32 failed"
same_file "$tmp/story32" "$fix/stories260K_greedy.txt" "greedy story, f32 KV cache"
if grep -q 'generation: 256 tokens' "$tmp/stats"; then ok; else bad "statistics on stderr: $(cat "$tmp/stats")"; fi

# -p: the prompt followed by the continuation.
$llmos run "$fix/stories260K.gguf" -p "Once upon a time" --temp 0 -n 60 -t 2 >"$tmp/prompt" 2>/dev/null
same_file "$tmp/prompt" "$fix/stories260K_prompt_n64.txt" "prompt continuation"

# Both llama2.c formats convert to a model that tells the same story.
for ckpt in stories260K.bin stories260K.v1.bin; do
  if $llmos convert llama2c "$fix/$ckpt" "$fix/tok512.bin" -o "$tmp/$ckpt.gguf" 2>/dev/null; then ok; else bad "convert $ckpt"; fi
  $llmos run "$tmp/$ckpt.gguf" --temp 0 -n 256 >"$tmp/story2" 2>/dev/null
  same_file "$tmp/story2" "$fix/stories260K_greedy.txt" "story from converted $ckpt"
done
if ls "$tmp" | grep -q '\.tmp\.'; then bad "temporary files left behind"; else ok; fi

# info: header, 19 keys, 48 tensors.
$llmos info "$fix/stories260K.gguf" >"$tmp/info" || bad "info failed"
if grep -q '^19 metadata keys' "$tmp/info" && grep -q '^48 tensors' "$tmp/info" &&
   grep -q 'blk.4.ffn_down.weight *f32 *\[172, 64\]' "$tmp/info"; then ok; else bad "info output"; fi

# Seeded sampling is deterministic; another seed gives another text.
$llmos run "$fix/stories260K.gguf" --temp 1 --seed 7 -n 64 >"$tmp/s1" 2>/dev/null
$llmos run "$fix/stories260K.gguf" --temp 1 --seed 7 -n 64 -t 2 >"$tmp/s2" 2>/dev/null
$llmos run "$fix/stories260K.gguf" --temp 1 --seed 8 -n 64 >"$tmp/s3" 2>/dev/null
if cmp -s "$tmp/s1" "$tmp/s2" && ! cmp -s "$tmp/s1" "$tmp/s3"; then ok; else bad "seeded sampling"; fi

head -c 5000 "$fix/stories260K.gguf" >"$tmp/truncated.gguf"

# tokenize: ids on one line; control tokens only with --special; --help.
vocab="$fix/vocab/ggml-vocab-gpt-2.gguf"
if [ "$($llmos tokenize "$fix/stories260K.gguf" "Once upon a time" --ids)" = "1 403 407 261 378" ]; then ok; else bad "tokenize --ids"; fi
if [ "$($llmos tokenize "$vocab" "a<|endoftext|>" --ids)" = "64 27 91 437 1659 5239 91 29" ]; then ok; else bad "untrusted <|endoftext|>: $($llmos tokenize "$vocab" "a<|endoftext|>" --ids)"; fi
if [ "$($llmos tokenize "$vocab" "a<|endoftext|>" --ids --special)" = "64 50256" ]; then ok; else bad "trusted <|endoftext|>"; fi
if [ "$(printf 'Hello\tworld' | $llmos tokenize "$vocab" | head -2 | tr '\t' '|')" = "$(printf '15496|Hello\n197|\\t')" ]; then ok; else bad "tokenize pieces: $(printf 'Hello\tworld' | $llmos tokenize "$vocab" | head -2)"; fi
for c in tokenize "tokenizer train"; do
  if $llmos $c --help | grep -q '^usage: llmos'; then ok; else bad "llmos $c --help"; fi
done
# tokenizer train: a vocab-only GGUF that tokenize accepts, written atomically.
if $llmos tokenizer train "$fix/bpe-reference/corpus.en" --vocab 300 --special '<|endoftext|>' -q -o "$tmp/tok.gguf" &&
   [ "$($llmos tokenize "$tmp/tok.gguf" "<|endoftext|>the" --ids --special | cut -d' ' -f1)" = "0" ]; then ok; else bad "tokenizer train"; fi
# A custom split expression is carried in the file and used by tokenize.
if $llmos tokenizer train "$fix/bpe-reference/corpus.en" --vocab 300 --split-regex '[a-z]+| |[^a-z ]' -q -o "$tmp/tokre.gguf" &&
   $llmos info "$tmp/tokre.gguf" | grep -q 'tokenizer.llmos.split_regex' &&
   [ -n "$($llmos tokenize "$tmp/tokre.gguf" "the cat" --ids)" ]; then ok; else bad "tokenizer train with a custom --split-regex"; fi
expect_fail 2 "train without --vocab" -- $llmos tokenizer train "$fix/bpe-reference/corpus.en" -o "$tmp/t.gguf"
expect_fail 2 "train with a tiny vocab" -- $llmos tokenizer train "$fix/bpe-reference/corpus.en" --vocab 100 -o "$tmp/t.gguf"
expect_fail 1 "train with a bad regex" -- $llmos tokenizer train "$fix/bpe-reference/corpus.en" --vocab 300 --split-regex '(' -o "$tmp/t.gguf"
expect_fail 1 "train on a missing file" -- $llmos tokenizer train "$tmp/missing.txt" --vocab 300 -o "$tmp/t.gguf"
expect_fail 1 "tokenize with a truncated file" -- $llmos tokenize "$tmp/truncated.gguf" "x"
if [ -e "$tmp/t.gguf" ]; then bad "a failed training left its output"; else ok; fi

# data prepare: train/val shards whose numbers add up, written atomically; stale shards removed.
for c in data "data prepare"; do
  if $llmos $c --help | grep -q '^usage: llmos'; then ok; else bad "llmos $c --help"; fi
done
text="$fix/text/tinystories_valid_head_20k.txt"
prep() { $llmos data prepare --tokenizer "$fix/stories260K.gguf" "$@" >"$tmp/prep" 2>"$tmp/prep.err"; }
val() { awk -v k="$1" 'BEGIN { x = -1 } $1 == k { x = $2 } END { print x }' "$tmp/prep"; }
shard_bytes() { cat "$tmp/data/$1"_*.bin | wc -c; }
if prep "$text" -o "$tmp/data" -q; then ok; else bad "data prepare: $(cat "$tmp/prep.err")"; fi
if [ "$(val documents)" -eq 98 ] && [ "$(val val_documents)" -eq 10 ] &&
   [ $(($(val train_documents) + $(val val_documents))) -eq "$(val documents)" ] && [ "$(val tokens)" -gt 4000 ] &&
   [ $(($(val train_tokens) + $(val val_tokens))) -eq "$(val tokens)" ] && [ "$(val val_tokens)" -gt 0 ] &&
   [ "$(val train_shards)" -eq 1 ] && [ "$(val val_shards)" -eq 1 ] && grep -q '^bytes_per_token [1-9]\.' "$tmp/prep"; then ok
else bad "data prepare summary: $(cat "$tmp/prep")"; fi
# One shard per split: the 32-byte header, then 2 bytes per token (vocabulary 512).
if [ "$(head -c 8 "$tmp/data/train_000000.bin")" = LMTOKENS ] &&
   [ "$(shard_bytes train)" -eq $((32 + 2 * $(val train_tokens))) ] &&
   [ "$(shard_bytes val)" -eq $((32 + 2 * $(val val_tokens))) ]; then ok; else bad "data prepare shard sizes"; fi
total=$(val tokens)
# Shards of 1000 tokens: ceil(train_tokens / 1000) train shards holding the same tokens.
if prep "$text" -o "$tmp/data" --shard-tokens 1000 -q && [ "$(val tokens)" -eq "$total" ] &&
   [ "$(val train_shards)" -eq $((($(val train_tokens) + 999) / 1000)) ] &&
   [ "$(ls "$tmp/data" | grep -c '^train_')" -eq "$(val train_shards)" ] &&
   [ "$(shard_bytes train)" -eq $((32 * $(val train_shards) + 2 * $(val train_tokens))) ]; then ok
else bad "data prepare --shard-tokens: $(cat "$tmp/prep" "$tmp/prep.err")"; fi
# One document per file and no val split: the earlier shards past the new ones are gone.
if prep "$text" -o "$tmp/data" --delimiter none --val-fraction 0 -q && [ "$(val documents)" -eq 1 ] &&
   [ "$(val val_tokens)" -eq 0 ] && [ "$(ls "$tmp/data")" = train_000000.bin ]; then ok
else bad "data prepare --delimiter none: $(ls "$tmp/data") $(cat "$tmp/prep.err")"; fi
# An escaped delimiter: one document per line; the blank lines between the 98 paragraphs are skipped.
if prep "$text" -o "$tmp/data" --delimiter '\n' -q && [ "$(val documents)" -eq 98 ]; then ok; else bad "data prepare --delimiter '\\n'"; fi
if ls "$tmp/data" | grep -q '\.tmp\.'; then bad "data prepare left temporary files"; else ok; fi
: >"$tmp/blank.txt"
: >"$tmp/afile"
$llmos data >/dev/null 2>"$tmp/err"
if [ $? -eq 2 ] && grep -q '^usage: llmos data' "$tmp/err"; then ok; else bad "data without a subcommand"; fi
expect_fail 2 "unknown data subcommand" -- $llmos data frobnicate
expect_fail 2 "data prepare without --tokenizer" -- $llmos data prepare "$text" -o "$tmp/d2"
expect_fail 2 "data prepare without files" -- $llmos data prepare --tokenizer "$fix/stories260K.gguf" -o "$tmp/d2"
expect_fail 2 "--val-fraction 1" -- $llmos data prepare --tokenizer "$fix/stories260K.gguf" "$text" -o "$tmp/d2" --val-fraction 1
expect_fail 2 "--val-fraction -0.5" -- $llmos data prepare --tokenizer "$fix/stories260K.gguf" "$text" -o "$tmp/d2" --val-fraction -0.5
expect_fail 2 "--val-fraction abc" -- $llmos data prepare --tokenizer "$fix/stories260K.gguf" "$text" -o "$tmp/d2" --val-fraction abc
expect_fail 2 "--shard-tokens 0" -- $llmos data prepare --tokenizer "$fix/stories260K.gguf" "$text" -o "$tmp/d2" --shard-tokens 0
expect_fail 2 "unknown delimiter escape" -- $llmos data prepare --tokenizer "$fix/stories260K.gguf" "$text" -o "$tmp/d2" --delimiter '\q'
expect_fail 1 "data prepare a missing file" -- $llmos data prepare --tokenizer "$fix/stories260K.gguf" "$text" "$tmp/missing.txt" -o "$tmp/d2"
expect_fail 1 "data prepare with an unreadable tokenizer" -- $llmos data prepare --tokenizer "$tmp/truncated.gguf" "$text" -o "$tmp/d2"
expect_fail 1 "data prepare with no documents" -- $llmos data prepare --tokenizer "$fix/stories260K.gguf" "$tmp/blank.txt" -o "$tmp/d3"
expect_fail 1 "data prepare into a file" -- $llmos data prepare --tokenizer "$fix/stories260K.gguf" "$text" -o "$tmp/afile"
if [ -e "$tmp/d2" ]; then bad "a failed data prepare created its output directory"; else ok; fi

# quantize + perplexity: a Q8_0 model tells nearly the same story; perplexity reports its numbers.
if $llmos quantize "$fix/stories260K.gguf" "$tmp/q8.gguf" q8_0 -q && [ "$(stat -c %s "$tmp/q8.gguf")" -lt 500000 ]; then ok; else bad "quantize q8_0"; fi
if $llmos run "$tmp/q8.gguf" --temp 0 -n 20 2>/dev/null | grep -q '^Once upon a time'; then ok; else bad "run a q8_0 model"; fi
$llmos perplexity "$tmp/q8.gguf" -f "$fix/text/tinystories_valid_head_20k.txt" -c 128 --chunks 2 --kl-base "$fix/stories260K.gguf" -q >"$tmp/ppl" 2>&1
if grep -q '^perplexity [0-9]' "$tmp/ppl" && grep -q '^kl_divergence 0\.' "$tmp/ppl" && grep -q '^top1_agreement 0\.9' "$tmp/ppl"; then ok; else bad "perplexity: $(cat "$tmp/ppl")"; fi
# The f16 KV cache against the same model with an f32 one: a difference, and a small one.
$llmos perplexity "$fix/stories260K.gguf" -f "$fix/text/tinystories_valid_head_20k.txt" -c 128 --chunks 2 --kl-base "$fix/stories260K.gguf" --kv f16 -q >"$tmp/ppl16" 2>&1
if awk '/^kl_divergence/ {kl = $2} /^top1_agreement/ {top = $2} END {exit !(kl > 0 && kl < 1e-4 && top > 0.99)}' "$tmp/ppl16"; then ok; else bad "perplexity --kv f16: $(cat "$tmp/ppl16")"; fi
for c in quantize perplexity; do
  if $llmos $c --help | grep -q '^usage: llmos'; then ok; else bad "llmos $c --help"; fi
done
expect_fail 2 "unknown quantization type" -- $llmos quantize "$fix/stories260K.gguf" "$tmp/x.gguf" q3_Z
expect_fail 1 "quantize a truncated model" -- $llmos quantize "$tmp/truncated.gguf" "$tmp/x.gguf" q8_0 -q
expect_fail 2 "perplexity without --file" -- $llmos perplexity "$fix/stories260K.gguf"
expect_fail 1 "perplexity against another vocabulary" -- $llmos perplexity "$fix/stories260K.gguf" -f "$fix/text/tinystories_valid_head_20k.txt" --kl-base "$fix/vocab/ggml-vocab-gpt-2.gguf" -q

# init + bench: a random model of a given shape runs and reports its speed.
if $llmos init --dim 64 --layers 2 --heads 4 --kv-heads 2 --ffn 128 --vocab 300 --context 64 --seed 3 -t 1 -q -o "$tmp/init1.gguf" &&
   $llmos init --dim 64 --layers 2 --heads 4 --kv-heads 2 --ffn 128 --vocab 300 --context 64 --seed 3 -t 2 -q -o "$tmp/init2.gguf" &&
   cmp -s "$tmp/init1.gguf" "$tmp/init2.gguf"; then ok; else bad "init is not the same for 1 and 2 threads"; fi
if $llmos info "$tmp/init1.gguf" | grep -q '^21 tensors'; then ok; else bad "init tensor count"; fi
$llmos init --dim 256 --layers 1 --heads 4 --ffn 256 --vocab-from "$fix/stories260K.gguf" --type q4_K -q -o "$tmp/initk.gguf" || bad "init q4_K"
$llmos bench "$tmp/initk.gguf" -p 8 -n 8 -s 3 -r 2 -t 1 --json >"$tmp/bench" 2>&1
if grep -q '"test":"pp8","tokens_per_s":[0-9]' "$tmp/bench" && grep -q '"test":"tg8".*"bandwidth_fraction":' "$tmp/bench" &&
   grep -q '"test":"tg8x3","tokens_per_s":[0-9].*"vs_tg":[0-9]' "$tmp/bench"; then ok; else bad "bench: $(cat "$tmp/bench")"; fi
# attention's share of the prompt's products: 2 x 1 layer x 4 heads x 64 x (1 + ... + 8) = 18,432
# multiply-adds against 8 x 458,752 (the layer's matrices) + 131,072 (the output's, last token)
if grep -q '"test":"pp8".*"attention_share":0.0048,' "$tmp/bench"; then ok; else bad "bench attention share: $(cat "$tmp/bench")"; fi
expect_fail 2 "bench with 65 sequences" -- $llmos bench "$tmp/initk.gguf" -s 65
expect_fail 2 "bench with nothing to measure" -- $llmos bench "$tmp/initk.gguf" -p 0 -n 0
for c in init bench; do
  if $llmos $c --help | grep -q '^usage: llmos'; then ok; else bad "llmos $c --help"; fi
done
expect_fail 2 "init with heads not dividing dim" -- $llmos init --dim 100 --layers 1 --heads 3 --ffn 64 -q -o "$tmp/x.gguf"
expect_fail 2 "init with rows not whole blocks" -- $llmos init --dim 64 --layers 1 --heads 4 --ffn 64 --type q4_K -q -o "$tmp/x.gguf"
expect_fail 2 "init without a shape" -- $llmos init -o "$tmp/x.gguf"
expect_fail 2 "bench past the context" -- $llmos bench "$tmp/init1.gguf" -p 100 -n 8

# Bad input: a message and a non-zero exit, never a crash.
head -c 5000 "$fix/stories260K.gguf" >"$tmp/truncated.gguf"
printf 'GGUF\x03\x00\x00\x00' >"$tmp/tiny.gguf"
: >"$tmp/empty.gguf"
expect_fail 1 "missing model" -- $llmos run "$tmp/nope.gguf"
expect_fail 1 "truncated model" -- $llmos run "$tmp/truncated.gguf"
expect_fail 1 "truncated header" -- $llmos info "$tmp/tiny.gguf"
expect_fail 1 "empty file" -- $llmos info "$tmp/empty.gguf"
expect_fail 1 "directory as model" -- $llmos run "$tmp"
expect_fail 1 "not a checkpoint" -- $llmos convert llama2c "$fix/tok512.bin" "$fix/tok512.bin" -o "$tmp/x.gguf"
expect_fail 1 "tokenizer for another vocab" -- $llmos convert llama2c "$fix/stories260K.bin" "$tmp/tiny.gguf" -o "$tmp/x.gguf"
expect_fail 2 "unknown option" -- $llmos run "$fix/stories260K.gguf" --bogus
expect_fail 2 "bad number" -- $llmos run "$fix/stories260K.gguf" -n abc
expect_fail 2 "negative temperature" -- $llmos run "$fix/stories260K.gguf" --temp -1
expect_fail 2 "unknown KV cache type" -- $llmos run "$fix/stories260K.gguf" --kv q8
expect_fail 2 "missing value" -- $llmos run "$fix/stories260K.gguf" -p
expect_fail 2 "context beyond the model" -- $llmos run "$fix/stories260K.gguf" -c 100000
expect_fail 2 "unknown command" -- $llmos frobnicate
expect_fail 2 "unknown converter" -- $llmos convert gpt9 a b -o c
if [ -e "$tmp/x.gguf" ]; then bad "a failed conversion left its output"; else ok; fi
long_prompt=$(printf 'once upon a time %.0s' $(seq 1 400))
expect_fail 1 "prompt longer than the context" -- $llmos run "$fix/stories260K.gguf" -c 64 -p "$long_prompt"

# llmos tool: the three tools called by hand; refusals are one "llmos:" line and exit 1.
[ "$($llmos tool call calculator '{"expression": "2^100 / 4 - 1"}')" = "316912650057057350374175801343" ] && ok \
  || bad "tool call calculator"
[ "$($llmos tool call code '{"code": "return 6 * 7"}')" = "value: 42" ] && ok || bad "tool call code"
mkdir -p "$tmp/docs" && echo "The assistant was trained on two CPU cores." >"$tmp/docs/a.md" && echo "Cats sleep." >"$tmp/docs/b.txt"
$llmos tool call search '{"query": "cores"}' --folder "$tmp/docs" | grep -q '^\[1\] a.md (passage 1)' && ok || bad "tool call search"
expect_fail 1 "calculator: division by zero" -- $llmos tool call calculator '{"expression": "1/0"}'
expect_fail 1 "code: os.execute" -- $llmos tool call code '{"code": "os.execute(\"ls\")"}'
expect_fail 1 "tool: bad JSON" -- $llmos tool call calculator '{"expression": '
expect_fail 1 "tool: unknown tool" -- $llmos tool call shell '{}'
expect_fail 1 "search without a folder" -- $llmos tool call search '{"query": "x"}'
$llmos tool --help | grep -q '^usage: llmos tool' && ok || bad "tool --help"

echo "cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
