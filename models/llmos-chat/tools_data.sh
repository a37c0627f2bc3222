#!/usr/bin/env bash
# Synthetic tool-use conversations for the calculator: "What is A op B?" with A and B of 3 to 12 digits and
# op one of + - *; the answer is a calculator call, the tool's result (computed here by bc), and the
# final sentence that copies it. Usage: tools_data.sh N SEED OUT.jsonl OUT.answers
set -euo pipefail
n=$1
seed=$2
out=$3
answers=$4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
awk -v n="$n" -v seed="$seed" 'function num(d,   s, i) { s = int(1 + rand() * 9); for (i = 1; i < d; i++) s = s int(rand() * 10); return s }
  BEGIN { srand(seed); split("+ - *", ops, " ")
    for (k = 0; k < n; k++) { a = num(3 + int(rand() * 10)); b = num(3 + int(rand() * 10)); print a "\t" ops[1 + int(rand() * 3)] "\t" b } }' \
  >"$tmp/q.tsv"
awk -F'\t' '{ print $1 $2 $3 }' "$tmp/q.tsv" | BC_LINE_LENGTH=0 bc >"$tmp/r.txt"
paste "$tmp/q.tsv" "$tmp/r.txt" | awk -F'\t' '{ print $4 }' >"$answers"
paste "$tmp/q.tsv" "$tmp/r.txt" | jq -R -c 'split("\t") as [$a, $op, $b, $r]
  | ($a + " " + $op + " " + $b) as $e
  | [{role: "user", content: ("What is " + $e + "?")},
     {role: "assistant", content: ("<tool_call>\n" + ({name: "calculator", arguments: {expression: $e}} | tojson) + "\n</tool_call>")},
     {role: "tool", content: $r},
     {role: "assistant", content: ($e + " = " + $r + ".")}]' >"$out"
