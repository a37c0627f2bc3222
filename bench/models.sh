#!/usr/bin/env bash
# Speed of the two reference shapes of issue 4 (random weights, synthetic
# 32000-token vocabulary) in several types, 2 threads:
#   110M: dim 768, 12 layers, 12 heads, ffn 2048
#   1.1B: dim 2048, 22 layers, 32 heads, 4 kv heads, ffn 5632 (TinyLlama's shape)
# Usage: bench/models.sh [WORK_DIR] [PP] [TG] [REPEATS]   (after scripts/build.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/llmos-bench}
pp=${2:-64}
tg=${3:-64}
reps=${4:-3}
mkdir -p "$work"
llmos=build/llmos
shape_110m="--dim 768 --layers 12 --heads 12 --ffn 2048"
shape_1b="--dim 2048 --layers 22 --heads 32 --kv-heads 4 --ffn 5632"
build/bench/bench_machine 2
for spec in "110m:$shape_110m" "1b:$shape_1b"; do
  name=${spec%%:*}
  shape=${spec#*:}
  [ -f "$work/$name-f16.gguf" ] || $llmos init $shape --vocab 32000 --type f16 -t 2 -q -o "$work/$name-f16.gguf"
  for type in f16 q8_0 q4_0 q4_K_M; do
    model="$work/$name-$type.gguf"
    [ -f "$model" ] || $llmos quantize "$work/$name-f16.gguf" "$model" "$type" -t 2 -q
    echo "== $name $type"
    $llmos bench "$model" -p "$pp" -n "$tg" -r "$reps" -t 2 --json
  done
done
