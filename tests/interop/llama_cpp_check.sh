#!/usr/bin/env bash
# Optional interoperability checks, not part of CI (they download ~725 MB of
# npm packages). llama.cpp itself, through the prebuilt binaries of the
# node-llama-cpp npm package:
#   1. loads a GGUF that `llmos convert` wrote and must continue "Once upon a
#      time" exactly as llama2.c documents;
#   2. loads a tokenizer that `llmos tokenizer train` wrote (GPT-4 split, so
#      llama.cpp's llama-bpe pre-tokenizer and ignore_merges) and must tokenize
#      llama.cpp's 46 test strings exactly as `llmos tokenize` does;
#   3. loads a model that `llmos train` wrote and continues a prompt greedily
#      exactly as `llmos run --temp 0` does.
#   4. applies a LoRA adapter that `llmos sft --lora-rank` wrote exactly as
#      `llmos run --lora` does.
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
version=$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$cache/node_modules/node-llama-cpp/package.json" | head -1)
if cmp -s "$cache/out.txt" "$root/tests/fixtures/stories260K_prompt_n64.txt"; then
  echo "llama.cpp (node-llama-cpp $version) reproduces the documented continuation from the llmos-written GGUF"
else
  echo "llama.cpp output differs:" >&2
  cat "$cache/out.txt" >&2
  exit 1
fi

# 2. A trained tokenizer, given a llama header (llama.cpp wants an architecture).
inp="$root/tests/fixtures/vocab/ggml-vocab-gpt-2.gguf.inp"
"$root/build/llmos" tokenizer train "$root/tests/fixtures/bpe-reference/corpus.en" --vocab 2000 --special '<|endoftext|>' -q -o "$cache/tok.gguf"
cc -I"$root/include" "$here/with_arch.c" "$root/build/libllmos.a" $(pkg-config --libs libpcre2-8 libutf8proc) -lm -fopenmp -o "$cache/with_arch"
"$cache/with_arch" "$cache/tok.gguf" "$cache/tok_arch.gguf"
cp "$here/tokenize.mjs" "$cache/tokenize.mjs"
(cd "$cache" && timeout 120 node tokenize.mjs "$cache/tok_arch.gguf" "$inp" 2>/dev/null) >"$cache/llama_cpp_ids.txt"
mismatches=0 cases=0
while IFS= read -r want; do
  cases=$((cases + 1))
  awk -v n="$cases" 'BEGIN { RS = "\n__ggml_vocab_test__\n"; ORS = "" } NR == n { print }' "$inp" >"$cache/case.txt"
  got=$("$root/build/llmos" tokenize "$cache/tok.gguf" --file "$cache/case.txt" --ids --no-bos)
  [ "$got" = "$want" ] || { mismatches=$((mismatches + 1)); echo "case $cases differs: llmos '$got' llama.cpp '$want'" >&2; }
done <"$cache/llama_cpp_ids.txt"
if [ "$mismatches" -eq 0 ]; then
  echo "llama.cpp tokenizes all $cases test strings exactly as llmos does with an llmos-trained llama-bpe tokenizer"
else
  echo "$mismatches of $cases test strings tokenize differently" >&2
  exit 1
fi

# 3. A model trained by llmos (a few steps on the TinyStories fixture, with
# stories260K's tokenizer): llama.cpp's greedy continuation equals llmos's.
"$root/build/llmos" data prepare --tokenizer "$root/tests/fixtures/stories260K.gguf" \
  "$root/tests/fixtures/text/tinystories_valid_head_20k.txt" -o "$cache/train-data" -q >/dev/null
rm -rf "$cache/trained.gguf.ckpt"
"$root/build/llmos" train --data "$cache/train-data" --tokenizer "$root/tests/fixtures/stories260K.gguf" --dim 64 \
  --layers 2 --heads 4 --kv-heads 2 --ffn 172 --context 128 --batch 8 --max-steps 60 --lr 3e-3 -q -o "$cache/trained.gguf"
(cd "$cache" && timeout 120 node complete.mjs "$cache/trained.gguf" "Once upon a time" 40) >"$cache/trained_llama.txt"
"$root/build/llmos" run "$cache/trained.gguf" -p "Once upon a time" -n 40 --temp 0 2>/dev/null >"$cache/trained_llmos.txt"
if cmp -s "$cache/trained_llama.txt" "$cache/trained_llmos.txt"; then
  echo "llama.cpp continues a prompt exactly as llmos does with an llmos-trained model: $(head -c 80 "$cache/trained_llmos.txt")"
else
  echo "llama.cpp and llmos continue the trained model differently:" >&2
  echo "llama.cpp: $(cat "$cache/trained_llama.txt")" >&2
  echo "llmos:     $(cat "$cache/trained_llmos.txt")" >&2
  exit 1
fi

# 4. A LoRA adapter trained by `llmos sft --lora-rank 8` on that model (the
# vocabulary kept as is): llama.cpp loads it as an adapter, and its greedy
# continuation with the adapter equals `llmos run --lora`'s (and differs from
# the model's own, so the adapter is really applied).
cp "$here/lora_complete.mjs" "$cache/lora_complete.mjs"
rm -rf "$cache/adapter.gguf.ckpt"
"$root/build/llmos" sft "$cache/trained.gguf" "$root/tests/fixtures/chat/identity_head.jsonl" --no-grow --lora-rank 8 \
  --context 128 --batch 4 --max-steps 20 --lr 1e-2 -q -o "$cache/adapter.gguf" >/dev/null
(cd "$cache" && timeout 120 node lora_complete.mjs "$cache/trained.gguf" "$cache/adapter.gguf" "Once upon a time" 40) \
  >"$cache/lora_llama.txt"
"$root/build/llmos" run "$cache/trained.gguf" --lora "$cache/adapter.gguf" -p "Once upon a time" -n 40 --temp 0 2>/dev/null \
  >"$cache/lora_llmos.txt"
if cmp -s "$cache/lora_llama.txt" "$cache/lora_llmos.txt" && ! cmp -s "$cache/lora_llmos.txt" "$cache/trained_llmos.txt"; then
  echo "llama.cpp applies an llmos-trained LoRA adapter exactly as llmos does: $(head -c 80 "$cache/lora_llmos.txt")"
else
  echo "llama.cpp and llmos differ with the adapter (or it changes nothing):" >&2
  echo "llama.cpp: $(cat "$cache/lora_llama.txt")" >&2
  echo "llmos:     $(cat "$cache/lora_llmos.txt")" >&2
  echo "no adapter: $(cat "$cache/trained_llmos.txt")" >&2
  exit 1
fi
