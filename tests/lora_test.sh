#!/usr/bin/env bash
# End-to-end tests of LoRA adapters on the command line: `llmos lora merge`
# and `lora info`, `run` / `perplexity` / `chat` with --lora (the same text
# and loss as the merged model), and clean failures (message + non-zero exit,
# never a signal) on bad input.
# Usage: lora_test.sh path/to/llmos path/to/test_lora fixtures-dir
set -uo pipefail
llmos=$1
test_lora=$2
fix=$3
model=$fix/stories260K.gguf
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }

# expect_fail DESCRIPTION -- command...: exit status 1 or 2 (not a signal), an "llmos:" message on stderr.
expect_fail() {
  local what=$1
  shift 2
  "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  if [ "$rc" -ne 1 ] && [ "$rc" -ne 2 ]; then bad "$what: exit $rc ($(head -c 300 "$tmp/err"))"; return; fi
  if ! grep -q '^llmos: ' "$tmp/err"; then bad "$what: no 'llmos:' message: $(head -c 300 "$tmp/err")"; return; fi
  ok
}

$test_lora --write-adapter "$tmp/a.gguf" || bad "writing the adapter"
if $llmos lora --help | grep -q '^usage: llmos lora merge'; then ok; else bad "lora --help"; fi
$llmos lora info "$tmp/a.gguf" >"$tmp/info" || bad "lora info"
if grep -q '^architecture llama$' "$tmp/info" && grep -q '^tensors 35$' "$tmp/info" && grep -q '^alpha 16$' "$tmp/info" \
  && grep -q 'blk.4.ffn_down.weight .* rank 8 scale 2$' "$tmp/info"; then ok; else bad "lora info: $(head -5 "$tmp/info")"; fi

$llmos lora merge "$model" "$tmp/a.gguf" -o "$tmp/merged.gguf" -q || bad "lora merge"
$llmos lora merge "$model" "$tmp/a.gguf" -o "$tmp/half.gguf" --scale 0.5 -q -t 1 || bad "lora merge --scale"
if [ -s "$tmp/merged.gguf" ] && ! cmp -s "$tmp/merged.gguf" "$tmp/half.gguf"; then ok; else bad "merged files"; fi

# Generation: the adapter at run time gives the merged model's text, and not the base's.
run=(--temp 0 -n 48 -p "Once upon a time" -t 2)
$llmos run "$model" "${run[@]}" >"$tmp/base.txt" 2>/dev/null || bad "run base"
$llmos run "$model" --lora "$tmp/a.gguf" "${run[@]}" >"$tmp/lora.txt" 2>/dev/null || bad "run --lora"
$llmos run "$tmp/merged.gguf" "${run[@]}" >"$tmp/merged.txt" 2>/dev/null || bad "run merged"
$llmos run "$model" --lora "$tmp/a.gguf" --lora-scale 0.5 "${run[@]}" >"$tmp/lora_half.txt" 2>/dev/null || bad "run --lora-scale"
$llmos run "$tmp/half.gguf" "${run[@]}" >"$tmp/half.txt" 2>/dev/null || bad "run half"
if cmp -s "$tmp/lora.txt" "$tmp/merged.txt"; then ok; else bad "run --lora differs from the merged model: $(head -c 200 "$tmp/lora.txt") | $(head -c 200 "$tmp/merged.txt")"; fi
if cmp -s "$tmp/lora_half.txt" "$tmp/half.txt"; then ok; else bad "--lora-scale 0.5 differs from merge --scale 0.5"; fi
if ! cmp -s "$tmp/lora.txt" "$tmp/base.txt"; then ok; else bad "the adapter does not change the text"; fi

# Perplexity: the same loss (to 4 decimals) with the adapter and with the merged model.
text=$fix/text/tinystories_valid_head_20k.txt
$llmos perplexity "$model" --lora "$tmp/a.gguf" -f "$text" -c 128 --chunks 2 -q -t 2 >"$tmp/ppl_lora" || bad "perplexity --lora"
$llmos perplexity "$tmp/merged.gguf" -f "$text" -c 128 --chunks 2 -q -t 2 >"$tmp/ppl_merged" || bad "perplexity merged"
l1=$(sed -n 's/^loss //p' "$tmp/ppl_lora")
l2=$(sed -n 's/^loss //p' "$tmp/ppl_merged")
if [ -n "$l1" ] && awk -v a="$l1" -v b="$l2" 'BEGIN { d = a - b; exit !(d < 1e-4 && d > -1e-4) }'; then ok
else bad "perplexity: loss $l1 with --lora, $l2 merged"; fi

# Chat takes the flag too.
if echo "hello" | $llmos chat "$model" --lora "$tmp/a.gguf" -n 8 --temp 0 -t 1 >"$tmp/chat" 2>"$tmp/chat_err"; then ok
else bad "chat --lora: $(head -c 300 "$tmp/chat_err")"; fi

# Bad input.
head -c 1000 "$tmp/a.gguf" >"$tmp/cut.gguf"
expect_fail "truncated adapter" -- $llmos run "$model" --lora "$tmp/cut.gguf" -n 4
expect_fail "a model as the adapter" -- $llmos run "$model" --lora "$model" -n 4
expect_fail "missing adapter" -- $llmos perplexity "$model" --lora "$tmp/none.gguf" -f "$text"
expect_fail "bad --lora-scale" -- $llmos run "$model" --lora "$tmp/a.gguf" --lora-scale abc
expect_fail "--lora without a value" -- $llmos run "$model" --lora
expect_fail "chat, truncated adapter" -- $llmos chat "$model" --lora "$tmp/cut.gguf"
expect_fail "merge: truncated adapter" -- $llmos lora merge "$model" "$tmp/cut.gguf" -o "$tmp/x.gguf"
expect_fail "merge: adapter as the base" -- $llmos lora merge "$tmp/a.gguf" "$tmp/a.gguf" -o "$tmp/x.gguf"
expect_fail "merge: no output" -- $llmos lora merge "$model" "$tmp/a.gguf"
expect_fail "merge: bad scale" -- $llmos lora merge "$model" "$tmp/a.gguf" -o "$tmp/x.gguf" --scale nan
expect_fail "info: a model" -- $llmos lora info "$model"
expect_fail "unknown subcommand" -- $llmos lora frobnicate
if [ ! -e "$tmp/x.gguf" ]; then ok; else bad "a failed merge left $tmp/x.gguf"; fi

echo "lora: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
