#!/usr/bin/env bash
# The whole test suite, as CI runs it:
#   1. install missing Debian packages;
#   2. Release build + every test (ctest);
#   3. AddressSanitizer + UndefinedBehaviorSanitizer build + every test;
#   4. libFuzzer builds of the GGUF loader and tokenizer targets, each run for a
#      fixed number of inputs (FUZZ_RUNS, default 200000; FUZZ_TOKENIZER_RUNS, default 20000).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
failed=0
passed=0

step() { printf '\n=== %s\n' "$*"; }
record() { if [ "$1" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAILED: $2"; fi; }

step "dependencies"
scripts/install-deps.sh

step "release build and tests"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$jobs"
set +e
ctest --test-dir build --output-on-failure -j "$jobs"
record $? "release tests"
set -e

step "ASan + UBSan build and tests"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DLLMOS_SANITIZE=ON >/dev/null
cmake --build build-asan -j "$jobs"
set +e
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j "$jobs"
record $? "sanitizer tests"
set -e

step "fuzzing the GGUF loader, the tokenizers and the conversation reader"
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLLMOS_SANITIZE=ON -DLLMOS_FUZZ=ON -DLLMOS_TESTS=ON >/dev/null
cmake --build build-fuzz -j "$jobs" --target fuzz_gguf fuzz_tokenizer fuzz_conversation test_gguf_corrupt
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
mkdir -p "$corpus/gguf" "$corpus/text" "$corpus/conv"
build-fuzz/tests/test_gguf_corrupt --write-seed "$corpus/gguf/seed.gguf"
cp tests/fixtures/vocab/ggml-vocab-gpt-2.gguf.inp "$corpus/text/"
head -3 tests/fixtures/chat/identity_head.jsonl >"$corpus/conv/identity.jsonl"
printf '%s\n' '{"prompt": "Hi", "chosen": "Hello!", "rejected": {"role": "assistant", "content": "Go away."}}' \
  '{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": null, "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {"a": 1}}}]}, {"role": "tool", "tool_call_id": "1", "content": "2"}], "tools": [{"type": "function", "function": {"name": "f"}}]}' \
  >"$corpus/conv/pairs_and_tools.jsonl"
# fuzz TARGET RUNS MAX_LEN CORPUS: a fixed budget; crashes are kept under build-fuzz/.
fuzz() {
  set +e
  build-fuzz/tests/fuzz/"$1" -runs="$2" -max_len="$3" -seed=1 -print_final_stats=1 \
    -artifact_prefix=build-fuzz/ "$4" 2>&1 | grep -v -E '^#[0-9]+' | tail -n 30
  record "${PIPESTATUS[0]}" "fuzzing $1"
  set -e
}
fuzz fuzz_gguf "${FUZZ_RUNS:-200000}" 8192 "$corpus/gguf"
fuzz fuzz_tokenizer "${FUZZ_TOKENIZER_RUNS:-20000}" 512 "$corpus/text"
fuzz fuzz_conversation "${FUZZ_CONVERSATION_RUNS:-30000}" 4096 "$corpus/conv"

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
