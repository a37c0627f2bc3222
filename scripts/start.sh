#!/usr/bin/env bash
# The main job: installs what is missing, builds, and opens a chat with the
# assistant that llmos trained itself (models/llmos-chat/, its recipe and log
# beside it). Arguments are passed to `llmos chat` (e.g. --temp 0, --system TEXT).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
exec build/llmos chat models/llmos-chat/llmos-chat.gguf "$@"
