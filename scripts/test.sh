#!/usr/bin/env bash
# Runs the test suite (debug build), installing system packages first if needed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-dependencies.sh --with-python
swift test "$@"
