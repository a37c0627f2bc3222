#!/usr/bin/env bash
# Accuracy on arithmetic questions with and without the calculator tool.
# Usage: tools_eval.sh LLMOS MODEL TEST.jsonl TEST.answers WORK_DIR
# Each question is asked in a fresh conversation at temperature 0; the answer counts as right when the
# last number in the model's final message equals bc's result.
set -euo pipefail
llmos=$1
model=$2
test=$3
answers=$4
work=$5
mkdir -p "$work"
jq -r '.[0].content' "$test" >"$work/questions.txt"
for mode in with without; do
  rm -rf "$work/$mode" && mkdir -p "$work/$mode"
  flags=()
  [ "$mode" = with ] && flags=(--tools calculator)
  awk -v dir="$work/$mode" '{ printf "%s\n/save %s/%05d.jsonl\n/reset\n", $0, dir, NR }' "$work/questions.txt" |
    "$llmos" chat "$model" "${flags[@]}" --temp 0 -n 96 -t 2 >/dev/null 2>"$work/$mode.log"
  right=0 total=0
  while IFS= read -r want; do
    total=$((total + 1))
    f=$(printf '%s/%s/%05d.jsonl' "$work" "$mode" "$total")
    got=$( [ -f "$f" ] && jq -r '[.messages[] | select(.role == "assistant")] | last | .content // ""' "$f" \
      | grep -oE -- '-?[0-9]+' | tail -1 || true)
    [ "$got" = "$want" ] && right=$((right + 1))
  done <"$answers"
  calls=$(grep -c '^\[tool\] calculator' "$work/$mode.log" || true)
  echo "$mode tools: $right / $total right ($(awk -v r="$right" -v t="$total" 'BEGIN { printf "%.1f", 100 * r / t }')%), $calls calculator calls"
done
