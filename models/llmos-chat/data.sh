#!/usr/bin/env bash
# Builds the text and conversation files of the llmos-chat recipe from ../shared/data.
# Usage: models/llmos-chat/data.sh SHARED_DATA_DIR WORK_DIR     (needs jq and coreutils)
#
# Writes into WORK_DIR:
#   identity.jsonl          the 1000 identity conversations with nanochat's names rewritten to llmos's
#   identity_train.jsonl    the first 900 (pre-training text, SFT, DPO training pairs)
#   identity_heldout.jsonl  the last 100 (never trained on: held-out loss and DPO accuracy)
#   pretrain/*.txt          plain text for the tokenizer and pre-training, documents separated by blank lines
#   sft.jsonl               the SFT mix, shuffled with a fixed seed: identity_train, the 1,100 Alpaca-style
#                           instructions and 2,000 GSM8K train problems (calculator annotations removed)
set -euo pipefail
src=$1
work=$2
mkdir -p "$work/pretrain"

# The identity data talks about nanochat and its author; the assistant is llmos's.
sed -e 's#github\.com/karpathy/nanochat#github.com/llmos/llmos#g' \
    -e 's#karpathy/nanochat#llmos/llmos#g' \
    -e 's/Andrejn\? Karpathy/the llmos engineers/gI' \
    -e "s/Karpathy's/the llmos engineers'/g" -e 's/Karpathy/the llmos engineers/gI' \
    -e "s/Andrej's/the llmos engineers'/gI" -e 's/Andrej/the llmos engineers/gI' \
    -e 's/nanochat/llmos/gI' \
    "$src/chat/identity_conversations.jsonl" >"$work/identity.jsonl"
head -n 900 "$work/identity.jsonl" >"$work/identity_train.jsonl"
tail -n 100 "$work/identity.jsonl" >"$work/identity_heldout.jsonl"

# Pre-training text: stories, Shakespeare, instructions, GSM8K and the training identity dialogues.
cp "$src/text/tinystories_valid_head.txt" "$work/pretrain/tinystories.txt"
cp "$src/text/tinyshakespeare.txt" "$work/pretrain/shakespeare.txt"
jq -r '.[] | "\(.instruction)\n\(.input)\n\(.output)\n"' "$src/chat/instruction-data.json" \
  | sed -e '/^$/N;/^\n$/D' >"$work/pretrain/instructions.txt"
jq -r '"\(.question)\n\(.answer | gsub("<<[^>]*>>"; ""))\n"' "$src/eval/gsm8k/train.jsonl" >"$work/pretrain/gsm8k.txt"
jq -r 'map(.content) | join("\n") + "\n"' "$work/identity_train.jsonl" >"$work/pretrain/identity.txt"

# The SFT mix: one {"messages": [...]} per line.
{
  cat "$work/identity_train.jsonl"
  jq -c '.[] | [{role: "user", content: (if .input == "" then .instruction else "\(.instruction)\n\n\(.input)" end)},
                {role: "assistant", content: .output}]' "$src/chat/instruction-data.json"
  head -n 2000 "$src/eval/gsm8k/train.jsonl" |
    jq -c '[{role: "user", content: .question}, {role: "assistant", content: (.answer | gsub("<<[^>]*>>"; ""))}]'
} | shuf --random-source=<(yes llmos) >"$work/sft.jsonl"
wc -c "$work"/pretrain/*.txt "$work"/*.jsonl
