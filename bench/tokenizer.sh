#!/usr/bin/env bash
# Tokenizer benchmarks for docs/performance.md:
#   - encoding MB/s on tinyshakespeare.txt with the GPT-2 vocabulary, one thread;
#   - BPE training time on 10 MiB of text at vocabulary 8192.
# Usage: bench/tokenizer.sh [SHARED_DATA_DIR]   (after scripts/build.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data}
bin=build/bench/bench_tokenizer
"$bin" encode tests/fixtures/vocab/ggml-vocab-gpt-2.gguf "$data/text/tinyshakespeare.txt" 10
# 10 MiB: every text in shared/data, then the TinyStories head repeated to fill.
corpus=$(mktemp)
trap 'rm -f "$corpus"' EXIT
cat "$data"/text/*.txt "$data"/chat/* "$data"/eval/gsm8k/*.jsonl >"$corpus"
while [ "$(stat -c %s "$corpus")" -lt 10485760 ]; do cat "$data/text/tinystories_valid_head.txt" >>"$corpus"; done
truncate -s 10485760 "$corpus"
"$bin" train 8192 "$corpus"
