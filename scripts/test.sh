#!/usr/bin/env bash
# The whole test suite, as CI runs it:
#   1. install missing Debian packages;
#   2. Release build + every test (ctest);
#   3. AddressSanitizer + UndefinedBehaviorSanitizer build + every test;
#   4. libFuzzer build of the GGUF loader target, run for a fixed number of inputs.
# FUZZ_RUNS overrides the fuzzing budget (default 200000 inputs).
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

step "fuzzing the GGUF loader"
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DLLMOS_SANITIZE=ON -DLLMOS_FUZZ=ON -DLLMOS_TESTS=ON >/dev/null
cmake --build build-fuzz -j "$jobs" --target fuzz_gguf test_gguf_corrupt
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
build-fuzz/tests/test_gguf_corrupt --write-seed "$corpus/seed.gguf"
set +e
build-fuzz/tests/fuzz/fuzz_gguf -runs="${FUZZ_RUNS:-200000}" -max_len=8192 -seed=1 -print_final_stats=1 \
  -artifact_prefix=build-fuzz/ "$corpus" 2>&1 | grep -v -E '^#[0-9]+' | tail -n 30
record "${PIPESTATUS[0]}" "fuzzing"
set -e

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
