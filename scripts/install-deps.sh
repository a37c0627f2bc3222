#!/usr/bin/env bash
# Installs the Debian packages llmos needs to build and test, if any are missing.
# Safe to run again: it installs nothing when everything is present.
#
#   build-essential  gcc, make, libc headers (the compiler; gcc's libgomp gives OpenMP threads)
#   cmake            the build
#   clang            libFuzzer builds of the parsers' fuzz targets
#   libclang-rt-dev  clang's sanitizer and libFuzzer runtimes
#   pkg-config       finds the libraries below
#   libpcre2-dev     PCRE2: Unicode regular expressions (with JIT) for BPE pre-tokenizers
#   libutf8proc-dev  utf8proc: Unicode normalisation, case and categories for WordPiece
#   libcjson-dev     cJSON: JSON parsing (conversations; later the server and tool calls)
#   libedit-dev      libedit: line editing and history in `llmos chat`
#   liblua5.4-dev    Lua 5.4: the sandboxed interpreter of the `code` tool
#   libsqlite3-dev   SQLite (with FTS5): the full-text index of the `search` tool
#   libmicrohttpd-dev  libmicrohttpd: the HTTP server of `llmos serve`
#   bc               an independent arbitrary-precision calculator the calculator tool's tests compare with
#   jq               JSON on the command line: the model recipe's data scripts, the tests' checks of saved chats
#   curl             the HTTP client the server's tests drive it with
#   nodejs, npm      the server's tests with clients we did not write (OpenAI's Node.js client, Playwright),
#                    installed by the tests with npm ci; bench/serve_load.mjs, the server's load test
#   chromium         the headless browser the chat page's test drives
set -euo pipefail

packages=(build-essential cmake clang libclang-rt-dev pkg-config libpcre2-dev libutf8proc-dev libcjson-dev libedit-dev
          liblua5.4-dev libsqlite3-dev libmicrohttpd-dev bc jq curl chromium)
# Node.js: Debian's nodejs with its npm, unless a Node.js with npm is installed already (some
# machines have a packaged Node.js 20 that bundles npm; Debian's npm would conflict with it).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then packages+=(nodejs npm); fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
