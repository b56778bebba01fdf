#!/usr/bin/env bash
# Release build of every product, with the kernels' SIMD code compiled for this machine's CPU
# (AVX2/AVX-512 where present; Swift's default target is baseline x86-64 with SSE only).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-dependencies.sh
swift build -c release -Xswiftc -target-cpu -Xswiftc native "$@"
