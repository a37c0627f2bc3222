#!/usr/bin/env bash
# Tool-use conversations for the llmos-chat recipe (OpenAI form: "tool_calls" on the assistant's
# message, "tool" messages, and the "tools" the conversation may use). Every tool result is what
# llmos's own tool returns for the call.
# Usage: models/llmos-chat/tools_data.sh LLMOS SHARED_DATA_DIR WORK_DIR     (needs jq, awk, bc)
#
# Writes into WORK_DIR/tools:
#   arith_train.jsonl      12,000 "What is A op B?" (A, B of 3 to 12 digits, op + - *), answered with a
#                          calculator call and a sentence that gives its result
#   arith_plain.jsonl      1,500 such questions with no tools offered, answered directly
#   arith_test.jsonl       the 500 held-out questions (another seed; none is in the training set),
#   arith_test.answers     with bc's results, for tools_eval.sh
#   gsm8k_train.jsonl      GSM8K train problems whose <<expr=result>> annotations become calculator
#                          calls (the text before each is the assistant's, the calculator's result
#                          is the tool message; problems whose expressions the calculator refuses
#                          are left out)
#   gsm8k_test.txt         GSM8K test questions, one per line, and their answers (gsm8k_test.answers),
#                          for tools_eval.sh
#   towns/*.md             150 short documents about fictional towns, the search tool's folder
#   search_train.jsonl     questions about the towns answered with a search call and the fact
#   mix.jsonl              all of the training sets above and 1,000 of the SFT mix's conversations,
#                          shuffled with a fixed seed (the first tool stage)
#   replay.jsonl           all of the SFT mix and a quarter of the tool sets (the second stage, which
#                          brings back the assistant's talk that the first stage wears down)
set -euo pipefail
llmos=$1
src=$2
out=$3/tools
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
calc_tool='{"type": "function", "function": {"name": "calculator"}}'
search_tool='{"type": "function", "function": {"name": "search"}}'

# --- arithmetic: "A<TAB>op<TAB>B" lines, bc's results, then the conversations
questions() { # N SEED
  awk -v n="$1" -v seed="$2" 'function num(d,   s, i) { s = int(1 + rand() * 9); for (i = 1; i < d; i++) s = s int(rand() * 10); return s }
    BEGIN { srand(seed); split("+ - *", ops, " ")
      for (k = 0; k < n; k++) { a = num(3 + int(rand() * 10)); b = num(3 + int(rand() * 10)); print a "\t" ops[1 + int(rand() * 3)] "\t" b } }'
}
questions 12000 101 >"$tmp/train.tsv"
questions 1500 202 >"$tmp/plain.tsv"
questions 500 999 | sort -u | grep -v -x -F -f "$tmp/train.tsv" | head -n 500 >"$tmp/test.tsv"
for s in train plain test; do
  awk -F'\t' '{ print $1 $2 $3 }' "$tmp/$s.tsv" | BC_LINE_LENGTH=0 bc >"$tmp/$s.res"
  paste "$tmp/$s.tsv" "$tmp/$s.res" >"$tmp/$s.all"
done
cut -f4 "$tmp/test.all" >"$out/arith_test.answers"
# The wording varies a little; the held-out questions all use "What is ...?".
arith_jq='split("\t") as [$a, $op, $b, $r] | ($a + " " + $op + " " + $b) as $e
  | (["What is " + $e + "?", "Compute " + $e + ".", "Calculate " + $e, "How much is " + $e + "?", "What is " + $e + "?"]
     | .[(($a | length) + ($b | length)) % 5]) as $q'
jq -R -c "$arith_jq"' | {messages: [{role: "user", content: $q},
    {role: "assistant", content: "", tool_calls: [{id: "call_1", type: "function",
      function: {name: "calculator", arguments: ({expression: $e} | tojson)}}]},
    {role: "tool", tool_call_id: "call_1", content: $r},
    {role: "assistant", content: ($e + " = " + $r + ".")}], tools: ['"$calc_tool"']}' "$tmp/train.all" >"$out/arith_train.jsonl"
jq -R -c "$arith_jq"' | {messages: [{role: "user", content: $q}, {role: "assistant", content: ($e + " = " + $r + ".")}]}' \
  "$tmp/plain.all" >"$out/arith_plain.jsonl"
jq -R -c 'split("\t") as [$a, $op, $b, $r] | [{role: "user", content: ("What is " + $a + " " + $op + " " + $b + "?")}]' \
  "$tmp/test.all" >"$out/arith_test.jsonl"

# --- GSM8K: each <<expr=result>> becomes a call; the calculator's own result is the tool message
jq -r '.answer | [scan("<<([^=<>]*)=")[0]] | .[]' "$src/eval/gsm8k/train.jsonl" | sort -u >"$tmp/gsm_exprs.txt"
while IFS= read -r e; do
  r=$("$llmos" tool call calculator "$(jq -n -c --arg e "$e" '{expression: $e}')" 2>/dev/null) || r="!error"
  printf '%s\t%s\n' "$e" "$r"
done <"$tmp/gsm_exprs.txt" >"$tmp/gsm_results.tsv"
jq -c -n --rawfile res "$tmp/gsm_results.tsv" '
  ($res | split("\n") | map(select(length > 0) | split("\t") | {(.[0]): .[1]}) | add) as $calc
  | inputs
  | (.answer | split("\n#### ")) as [$work, $final]
  | [$work | splits("<<|>>")] as $parts        # text, expr=result, text, expr=result, ..., text
  | if ([range(1; $parts | length; 2) | $parts[.] | split("=")[0] | $calc[.] // "!error"] | any(startswith("!")))
    then empty else
    {messages: ([{role: "user", content: .question}]
      + [range(1; $parts | length; 2) as $i | ($parts[$i] | split("=")[0]) as $e
         | {role: "assistant", content: ($parts[$i - 1] | sub("^\\s+"; "")), tool_calls: [{id: ("call_" + ($i | tostring)),
             type: "function", function: {name: "calculator", arguments: ({expression: $e} | tojson)}}]},
           {role: "tool", tool_call_id: ("call_" + ($i | tostring)), content: $calc[$e]}]
      + [{role: "assistant", content: (($parts[-1] | sub("^\\s+"; "")) + "\nThe answer is " + $final + ".")}]),
     tools: ['"$calc_tool"']} end' "$src/eval/gsm8k/train.jsonl" >"$out/gsm8k_train.jsonl"
jq -r '.question | gsub("\n"; " ")' "$src/eval/gsm8k/test.jsonl" >"$out/gsm8k_test.txt"
jq -r '.answer | split("#### ")[1] | gsub(","; "")' "$src/eval/gsm8k/test.jsonl" >"$out/gsm8k_test.answers"

# --- search: fictional towns, one document each; questions answered from the search result
rm -rf "$out/towns" && mkdir -p "$out/towns"
awk -v dir="$out/towns" 'BEGIN { srand(7)
  n1 = split("Bel Cor Dun Ash Mar Hol Tor Wyn Fen Ral Kes Lun Pim Quar Sel Vor Gal Ost Bram Tam", a, " ")
  n2 = split("ford wick mere ton brook holm dale stead moor by gate field", b, " ")
  n3 = split("Alder Birch Cedar Linden Rowan Willow Hazel Elm Maple Aspen", r, " ")
  n4 = split("Ada Ben Cara Dev Ezra Flora Gus Hana Ivo Jun Kai Lena Milo Nell Otto Pia", f, " ")
  n5 = split("Hart Vance Moss Reed Stone Frost Gale Wren Pike Lowe", l, " ")
  while (k < 150) { name = a[1 + int(rand() * n1)] b[1 + int(rand() * n2)]; if (name in seen) continue; seen[name] = 1; k++
    pop = 1000 + int(rand() * 90000); year = 1100 + int(rand() * 800); river = r[1 + int(rand() * n3)]
    mayor = f[1 + int(rand() * n4)] " " l[1 + int(rand() * n5)]
    file = dir "/" tolower(name) ".md"
    printf "# %s\n\n%s is a town on the %s River. It was founded in %d. The population of %s is %d. The mayor of %s is %s.\n",
      name, name, river, year, name, pop, name, mayor >file
    close(file)
    print name "\tpopulation\t" pop; print name "\tfounded\t" year; print name "\triver\t" river " River"; print name "\tmayor\t" mayor } }' \
  >"$tmp/facts.tsv"
while IFS=$'\t' read -r town what fact; do
  case $what in
  population) q="What is the population of $town?" query="population of $town" a="The population of $town is $fact." ;;
  founded) q="When was $town founded?" query="$town founded" a="$town was founded in $fact." ;;
  river) q="Which river is $town on?" query="$town river" a="$town is on the $fact." ;;
  mayor) q="Who is the mayor of $town?" query="mayor of $town" a="The mayor of $town is $fact." ;;
  esac
  args=$(jq -n -c --arg q "$query" '{query: $q, k: 2}')
  r=$("$llmos" tool call search "$args" --folder "$out/towns" --index "$tmp/towns.db")
  jq -n -c --arg q "$q" --arg args "$args" --arg r "$r" --arg a "$a" \
    '{messages: [{role: "user", content: $q},
       {role: "assistant", content: "", tool_calls: [{id: "call_1", type: "function", function: {name: "search", arguments: $args}}]},
       {role: "tool", tool_call_id: "call_1", content: $r}, {role: "assistant", content: $a}],
      tools: ['"$calc_tool"', '"$search_tool"']}'
done <"$tmp/facts.tsv" >"$out/search_train.jsonl"

# --- the mix
shuf -n 1000 --random-source=<(yes 11) "$3/sft.jsonl" >"$tmp/chat.jsonl"
cat "$out/arith_train.jsonl" "$out/arith_plain.jsonl" "$out/gsm8k_train.jsonl" "$out/search_train.jsonl" "$tmp/chat.jsonl" |
  shuf --random-source=<(yes 12) >"$out/mix.jsonl"
# The replay mix of the second tool stage: all of the SFT mix (the assistant's talk, which the first
# stage's 1,000 conversations did not keep) with a quarter of the tool sets.
{ cat "$3/sft.jsonl"; head -n 3000 "$out/arith_train.jsonl"; head -n 500 "$out/arith_plain.jsonl"
  head -n 1500 "$out/gsm8k_train.jsonl"; cat "$out/search_train.jsonl"; } | shuf --random-source=<(yes 13) >"$out/replay.jsonl"
for f in arith_train arith_plain arith_test gsm8k_train search_train mix replay; do echo "$f: $(wc -l <"$out/$f.jsonl")"; done
