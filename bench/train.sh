#!/usr/bin/env bash
# Training speed: tokens/s and MFU (against the FMA peak `llmos train`
# measures at start) for shapes of ~1M, ~10M and ~100M parameters at
# context 256, and for the GPT-2 124M shape at B=4, T=64 (llm.c's
# train_gpt2.c reference), 2 threads. Synthetic data: the TinyStories
# fixture tokenized with stories260K's 512-token vocabulary (and GPT-2's
# for the 124M shape). Each line is the last step's JSON of a short run.
# Usage: bench/train.sh [WORK_DIR] [STEPS]   (after scripts/build.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/llmos-train-bench}
steps=${2:-6}
llmos=build/llmos
fix=tests/fixtures
mkdir -p "$work"
$llmos data prepare --tokenizer "$fix/stories260K.gguf" "$fix/text/tinystories_valid_head_20k.txt" -o "$work/d512" -q >/dev/null
$llmos data prepare --tokenizer "$fix/vocab/ggml-vocab-gpt-2.gguf" "$fix/text/tinystories_valid_head_20k.txt" -o "$work/dgpt2" -q >/dev/null
run() { # name data tokenizer batch context shape...
  local name=$1 data=$2 tok=$3 b=$4 t=$5
  shift 5
  rm -rf "$work/$name.gguf.ckpt"
  $llmos train --data "$work/$data" --tokenizer "$tok" "$@" --context "$t" --batch "$b" --max-steps "$steps" \
    --eval-every 0 -t 2 -q --json-log "$work/$name.jsonl" -o "$work/$name.gguf"
  echo "$name (B=$b, T=$t): $(tail -1 "$work/$name.jsonl")"
  rm -f "$work/$name.jsonl"
}
run 1m d512 "$fix/stories260K.gguf" 8 256 --dim 128 --layers 4 --heads 4 --ffn 344
run 10m d512 "$fix/stories260K.gguf" 8 256 --dim 384 --layers 6 --heads 6 --ffn 1024
run 100m d512 "$fix/stories260K.gguf" 4 256 --dim 768 --layers 12 --heads 12 --ffn 2048
run gpt2-124m dgpt2 "$fix/vocab/ggml-vocab-gpt-2.gguf" 4 64 --dim 768 --layers 12 --heads 12 --ffn 2048
