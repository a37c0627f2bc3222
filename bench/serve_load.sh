#!/usr/bin/env bash
# The server's load test: 8 streaming clients for SECONDS against `llmos serve --parallel 1`, then
# against `--parallel 8` (continuous batching), on loopback; prints each run's JSON and the ratio
# of their tokens per second. Needs Node.js (bench/serve_load.mjs).
# usage: bench/serve_load.sh LLMOS MODEL.gguf [SECONDS=60] [MAX_TOKENS=128] [THREADS=2]
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 LLMOS MODEL.gguf [SECONDS=60] [MAX_TOKENS=128] [THREADS=2]" >&2; exit 2; }
llmos=$1 model=$2 seconds=${3:-60} max_tokens=${4:-128} threads=${5:-2}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT

run() { # run PARALLEL: one load test against a fresh server with that many slots
  "$llmos" serve "$model" --port 0 -t "$threads" --parallel "$1" --queue 64 --max-tokens "$max_tokens" >"$tmp/out" 2>"$tmp/err" &
  pid=$!
  for _ in $(seq 1 300); do grep -q 'listening on' "$tmp/out" 2>/dev/null && break; sleep 0.1; done
  local url
  url=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$tmp/out")
  [ -n "$url" ] || { echo "the server did not start: $(cat "$tmp/err")" >&2; exit 1; }
  node "$here/serve_load.mjs" "$url" --clients 8 --seconds "$seconds" --max-tokens "$max_tokens" --label "parallel $1" | tee "$tmp/p$1.json"
  kill -TERM "$pid"
  wait "$pid" || true
  pid=
}
run 1
run 8
one=$(jq .tokens_per_s "$tmp/p1.json") eight=$(jq .tokens_per_s "$tmp/p8.json")
echo "tokens/s: parallel 1 $one, parallel 8 $eight, ratio $(echo "scale=2; $eight / $one" | bc)"
