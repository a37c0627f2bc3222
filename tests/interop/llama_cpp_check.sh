#!/usr/bin/env bash
# Optional interoperability check, not part of CI (it downloads ~725 MB of
# npm packages): llama.cpp itself, through the prebuilt binaries of the
# node-llama-cpp npm package, loads a GGUF that `llmos convert` wrote and must
# continue "Once upon a time" exactly as llama2.c documents.
#
# Usage: tests/interop/llama_cpp_check.sh [CACHE_DIR]   (run from the repo root after scripts/build.sh)
set -euo pipefail
cache=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/llmos-interop}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
mkdir -p "$cache"
if [ ! -d "$cache/node_modules/node-llama-cpp" ]; then
  (cd "$cache" && npm init -y >/dev/null && npm install node-llama-cpp@3 --no-audit --no-fund >/dev/null)
fi
cp "$here/complete.mjs" "$cache/complete.mjs"
"$root/build/llmos" convert llama2c "$root/tests/fixtures/stories260K.bin" "$root/tests/fixtures/tok512.bin" -o "$cache/stories260K.llmos.gguf"
(cd "$cache" && timeout 120 node complete.mjs "$cache/stories260K.llmos.gguf" "Once upon a time" 60) >"$cache/out.txt"
if cmp -s "$cache/out.txt" "$root/tests/fixtures/stories260K_prompt_n64.txt"; then
  echo "llama.cpp (node-llama-cpp $(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$cache/node_modules/node-llama-cpp/package.json" | head -1)) reproduces the documented continuation from the llmos-written GGUF"
else
  echo "llama.cpp output differs:" >&2
  cat "$cache/out.txt" >&2
  exit 1
fi
