#!/usr/bin/env bash
# Runs the test suite twice, installing system packages first if needed: a debug build (the portable
# code path: baseline x86-64, multiply-adds unfused) and a release build for this CPU as
# scripts/build-release.sh makes it (the kernels' AVX-512 path with fused multiply-adds).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-dependencies.sh --with-python
# XCTest only: the suite has no Swift Testing tests, whose empty summary would end the output.
swift test --disable-swift-testing "$@"
swift test --disable-swift-testing -c release -Xswiftc -enable-testing -Xswiftc -target-cpu -Xswiftc native \
    --build-path .build/native-tests "$@"
