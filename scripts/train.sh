#!/usr/bin/env bash
# The main job: builds in release mode and trains the toy Transformer (extra arguments go to it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-dependencies.sh
swift run -c release autograd-demo "$@"
