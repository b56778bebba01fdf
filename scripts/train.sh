#!/usr/bin/env bash
# The main job: installs what is missing, builds in release mode and trains the `reverse` Transformer.
# Extra arguments go to it (see `.build/release/reverse --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-release.sh
.build/release/reverse "$@"
