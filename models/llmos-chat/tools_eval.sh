#!/usr/bin/env bash
# Tool use of a chat model, measured: accuracy on the held-out arithmetic questions with the
# calculator and without it, and the calls it makes on GSM8K test questions.
# Usage: models/llmos-chat/tools_eval.sh LLMOS MODEL TOOLS_DIR OUT_DIR [GSM8K_QUESTIONS]
#   TOOLS_DIR: what tools_data.sh wrote (arith_test.jsonl, arith_test.answers, gsm8k_test.txt)
#   GSM8K_QUESTIONS: how many of the 1,319 test questions to ask (default all)
# Each question is asked in a fresh conversation at temperature 0 (llmos chat, one answer per
# line, /save after each). An arithmetic answer is right when the last number of the model's
# final message equals bc's result. A GSM8K call is well-formed when it parses as a call of a
# tool that is enabled and its arguments match the calculator's JSON Schema.
set -euo pipefail
llmos=$1
model=$2
data=$3
out=$4
n_gsm=${5:-100000}
mkdir -p "$out"

# ask NAME QUESTIONS_FILE CHAT_FLAGS...: every conversation saved as OUT/NAME/NNNNN.jsonl, the log in OUT/NAME.log
ask() {
  local name=$1 questions=$2
  shift 2
  rm -rf "${out:?}/$name" && mkdir -p "$out/$name"
  awk -v dir="$out/$name" '{ printf "%s\n/save %s/%05d.jsonl\n/reset\n", $0, dir, NR }' "$questions" |
    "$llmos" chat "$model" --temp 0 -t 2 "$@" >/dev/null 2>"$out/$name.log"
}

jq -r '.[0].content' "$data/arith_test.jsonl" >"$out/arith_questions.txt"
for mode in with without; do
  flags=(-n 96)
  [ "$mode" = with ] && flags+=(--tools calculator)
  ask "arith_$mode" "$out/arith_questions.txt" "${flags[@]}"
  right=0 total=0
  while IFS= read -r want; do
    total=$((total + 1))
    f=$(printf '%s/arith_%s/%05d.jsonl' "$out" "$mode" "$total")
    got=$( [ -f "$f" ] && jq -r '[.messages[] | select(.role == "assistant")] | last | .content // ""' "$f" \
      | grep -oE -- '-?[0-9]+' | tail -1 || true)
    [ "$got" = "$want" ] && right=$((right + 1))
  done <"$data/arith_test.answers"
  calls=$(grep -c '^\[tool\] ' "$out/arith_$mode.log" || true)
  echo "arithmetic, $mode tools: $right / $total right ($(awk -v r="$right" -v t="$total" 'BEGIN { printf "%.1f", 100 * r / t }')%), $calls tool calls"
done

head -n "$n_gsm" "$data/gsm8k_test.txt" >"$out/gsm8k_questions.txt"
ask gsm8k "$out/gsm8k_questions.txt" -n 200 --tools calculator
total=$(grep -c '^\[tool\] ' "$out/gsm8k.log" || true)
malformed=$(grep -c '^\[tool\] malformed call' "$out/gsm8k.log" || true)
# A parsed call the schema refuses, or of a tool that is not enabled, is not well-formed either.
refused=$(grep -E '^\[tool\] ' "$out/gsm8k.log" | grep -v '^\[tool\] malformed call' |
  grep -c -E -- '-> error: (no tool named|missing required property|unknown property|property .* must be|arguments are not valid JSON)' || true)
computed=$(grep -E '^\[tool\] calculator ' "$out/gsm8k.log" | grep -c -v -- '-> error: ' || true)
asked=$(wc -l <"$out/gsm8k_questions.txt")
with_call=$(for f in "$out"/gsm8k/*.jsonl; do jq -r '[.messages[] | select(.role == "tool")] | length' "$f"; done | grep -c -v '^0$' || true)
wf=$((total - malformed - refused))
right=0 n=0
while IFS= read -r want && [ "$n" -lt "$asked" ]; do
  n=$((n + 1))
  got=$(jq -r '[.messages[] | select(.role == "assistant")] | last | .content // ""' "$(printf '%s/gsm8k/%05d.jsonl' "$out" "$n")" \
    | grep -oE -- '-?[0-9]+(\.[0-9]+)?' | tail -1 || true)
  [ "$got" = "$want" ] && right=$((right + 1))
done <"$data/gsm8k_test.answers"
echo "GSM8K test ($asked questions): $right answered right (the last number of the answer); $total calculator calls in $with_call of them; well-formed $wf / $total ($(awk -v a="$wf" -v t="$total" 'BEGIN { printf "%.1f", t ? 100 * a / t : 0 }')%); the calculator computed $computed of them (the rest: its errors, e.g. a malformed expression)"
