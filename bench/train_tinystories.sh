#!/usr/bin/env bash
# The pre-training run of docs/training.md, end to end with llmos alone:
#   1. split ../shared/data/text/tinystories_valid_head.txt by paragraphs
#      (blank lines) into the first 90% (train) and the last 10% (val);
#   2. train a byte-level BPE tokenizer, vocabulary 512, on the train part;
#   3. tokenize both parts into shards (train_*.bin, val_*.bin);
#   4. train a model of the stories260K shape (dim 64, 5 layers, 8 heads,
#      4 kv heads, ffn 172) for at most 30 minutes on 2 threads;
#   5. report bits per byte on the val text for it and for stories260K.gguf
#      (its own tokenizer): bits per byte compare across tokenizers.
# Usage: bench/train_tinystories.sh [WORK_DIR] [MAX_STEPS] [LR]   (after scripts/build.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/llmos-tinystories}
steps=${2:-2000}
lr=${3:-2e-3}
llmos=build/llmos
text=../shared/data/text/tinystories_valid_head.txt
mkdir -p "$work"
n=$(awk 'BEGIN { RS = "" } END { print NR }' "$text")
cut=$((n * 9 / 10))
awk -v cut="$cut" -v out="$work/train.txt" -v val="$work/val.txt" 'BEGIN { RS = ""; ORS = "\n\n" }
  { print > (NR <= cut ? out : val) }' "$text"
echo "paragraphs: $n ($cut train); bytes: $(wc -c <"$work/train.txt") train, $(wc -c <"$work/val.txt") val"
$llmos tokenizer train "$work/train.txt" --vocab 512 --special '<|endoftext|>' -q -o "$work/tok.gguf"
$llmos data prepare --tokenizer "$work/tok.gguf" "$work/train.txt" -o "$work/data" --val-fraction 0 -q
$llmos data prepare --tokenizer "$work/tok.gguf" "$work/val.txt" -o "$work/val" --val-fraction 0 -q
mv "$work/val/train_000000.bin" "$work/data/val_000000.bin"
start=$(date +%s)
$llmos train --data "$work/data" --tokenizer "$work/tok.gguf" --dim 64 --layers 5 --heads 8 --kv-heads 4 --ffn 172 \
  --context 256 --batch 16 --max-steps "$steps" --lr "$lr" --warmup 100 --eval-every 100 --eval-batches 16 \
  --checkpoint-every 500 --time-budget 1800 -t 2 --json-log "$work/log.jsonl" -o "$work/model.gguf"
echo "training took $(( $(date +%s) - start )) s"
echo "== trained model on the val text"
$llmos perplexity "$work/model.gguf" --file "$work/val.txt" --ctx 256
echo "== stories260K.gguf on the val text"
$llmos perplexity tests/fixtures/stories260K.gguf --file "$work/val.txt" --ctx 256
