#!/usr/bin/env bash
# The server's load test: 8 streaming clients against `llmos serve --parallel 1` and against
# `--parallel 8` (continuous batching), on loopback, SECONDS each in 6 rounds taken in turn (so
# the VM's speed drifting during the run weighs on both alike); prints each server's JSON and the
# ratio of their tokens per second. Needs Node.js (bench/serve_load.mjs).
# usage: bench/serve_load.sh LLMOS MODEL.gguf [SECONDS=60] [MAX_TOKENS=128] [THREADS=2]
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 LLMOS MODEL.gguf [SECONDS=60] [MAX_TOKENS=128] [THREADS=2]" >&2; exit 2; }
llmos=$1 model=$2 seconds=${3:-60} max_tokens=${4:-128} threads=${5:-2}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$tmp"' EXIT

start() { # start PARALLEL: a server with that many slots; prints its URL
  "$llmos" serve "$model" --port 0 -t "$threads" --parallel "$1" --queue 64 --max-tokens "$max_tokens" >"$tmp/out$1" 2>"$tmp/err$1" &
  pids+=($!)
  for _ in $(seq 1 300); do grep -q 'listening on' "$tmp/out$1" 2>/dev/null && break; sleep 0.1; done
  sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$tmp/out$1"
}
one=$(start 1) eight=$(start 8)
[ -n "$one" ] && [ -n "$eight" ] || { echo "a server did not start: $(cat "$tmp"/err*)" >&2; exit 1; }
node "$here/serve_load.mjs" "$one" "$eight" --labels "parallel 1,parallel 8" --clients 8 --seconds "$seconds" \
  --rounds 6 --max-tokens "$max_tokens" | tee "$tmp/results"
p1=$(sed -n 1p "$tmp/results" | jq .tokens_per_s) p8=$(sed -n 2p "$tmp/results" | jq .tokens_per_s)
echo "tokens/s: parallel 1 $p1, parallel 8 $p8, ratio $(echo "scale=2; $p8 / $p1" | bc)"
