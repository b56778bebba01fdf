#!/usr/bin/env bash
# Runs the test suite (debug build), installing system packages first if needed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-dependencies.sh --with-python
# XCTest only: the suite has no Swift Testing tests, whose empty summary would end the output.
swift test --disable-swift-testing "$@"
