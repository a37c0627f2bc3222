#!/usr/bin/env bash
# The main job: installs what is missing, builds, and has the bundled model
# tell a story. Arguments are passed to `llmos run` (e.g. -p "Once upon a time").
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
if [ $# -eq 0 ]; then set -- --temp 0.8 --seed 42 -n 200; fi
exec build/llmos run tests/fixtures/stories260K.gguf "$@"
