#!/usr/bin/env bash
# llmos serve with clients we did not write, over loopback, with the bundled assistant:
#   - OpenAI's official Node.js client (npm package openai): a chat, a streamed chat, a tool call
#     and its answer, typed errors (tests/js/openai_test.mjs);
#   - the chat page in Debian's headless Chromium, driven by Playwright (npm package
#     playwright-core): type, see the answer stream, press Stop (tests/js/page_test.mjs).
# The npm packages are installed here with `npm ci` from tests/js/package-lock.json into
# WORK_DIR/js (once; again when the lock file changes); Node.js, npm and Chromium come from
# scripts/install-deps.sh.
# Usage: serve_clients_test.sh LLMOS MODELS_DIR WORK_DIR
set -u
llmos=$1
model=$2/llmos-chat/llmos-chat.gguf
js=$3/js
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; echo "serve_clients: 0 passed, 1 failed"; exit 1; }

for tool in node npm; do command -v "$tool" >/dev/null || fail "$tool is not installed (scripts/install-deps.sh installs it)"; done
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || fail "Chromium is not installed (scripts/install-deps.sh installs it)"

mkdir -p "$js"
cp "$here"/js/package.json "$here"/js/package-lock.json "$here"/js/*.mjs "$js/"
if ! cmp -s "$js/package-lock.json" "$js/node_modules/.installed-lock" 2>/dev/null; then
  ok=0
  for attempt in 1 2 3; do # the registry is a network service: a failed fetch is tried again
    (cd "$js" && npm ci --no-audit --no-fund --loglevel=error) && { ok=1; break; }
    sleep $((attempt * 5))
  done
  [ "$ok" = 1 ] || fail "npm ci could not install the client packages"
  cp "$js/package-lock.json" "$js/node_modules/.installed-lock"
fi

# Two slots: the page's stopped request and the next one may overlap. A high --max-tokens lets
# the page's second answer run until Stop.
"$llmos" serve "$model" --port 0 -t 2 --parallel 2 --max-tokens 100000 >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 1 300); do grep -q 'listening on' "$tmp/out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$tmp/out")
[ -n "$url" ] || fail "the server did not start: $(cat "$tmp/err")"

pass=0 failed=0
for t in openai_test page_test; do
  if (cd "$js" && timeout 300 node --test-reporter=spec "$t.mjs" "$url"); then pass=$((pass + 1))
  else failed=$((failed + 1)); echo "FAIL: $t"; fi
done
curl -s "$url/health" | grep -q ok || { failed=$((failed + 1)); echo "FAIL: the server stopped answering"; }
echo "serve_clients: $pass passed, $failed failed"
[ "$failed" -eq 0 ]
