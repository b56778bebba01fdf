#!/usr/bin/env bash
# Runs the test suite twice, installing system packages first if needed: a debug build (the portable
# code path: baseline x86-64, multiply-adds unfused) and a release build for this CPU as
# scripts/build-release.sh makes it (the kernels' AVX-512 path with fused multiply-adds). Then the
# CUDA tests on the CUDA emulator, and the distributed tests under `mpirun -np 2`, on the CPU and on
# the emulator's GPUs (in the plain runs they skip: no GPU, no launcher).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-dependencies.sh --with-python
# NVRTC from PyPI lets the tests compile the CUDA kernels here, GPU or not.
nvrtc=$(bash scripts/find-nvrtc.sh)
[ -n "$nvrtc" ] && export FLASHGRAD_TEST_NVRTC="$nvrtc"
# XCTest only: the suite has no Swift Testing tests, whose empty summary would end the output.
swift test --disable-swift-testing "$@"
swift test --disable-swift-testing -c release -Xswiftc -enable-testing -Xswiftc -target-cpu -Xswiftc native \
    --build-path .build/native-tests "$@"
# The CUDA tests again on the CUDA emulator (Tests/CUDAEmulator: the kernels' source compiled for
# the host, each GPU thread a fiber), so that the CUDA backend is tested where there is no GPU.
emulator="$(bash scripts/build-cuda-emulator.sh)"
FLASHGRAD_CUDA_PATH="$emulator" FLASHGRAD_CACHE="$(mktemp -d)" \
    swift test --disable-swift-testing --skip-build --filter 'CUDABackendTests|CUDAFlashAttentionTests'
# Two ranks on this machine's cores (--oversubscribe: there may be fewer cores than ranks); Open MPI
# refuses root unless told, and CI runs as root. First through MPI on the CPU, then through NCCL
# with each rank on a GPU of the emulator (its NCCL goes through shared memory).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
timeout 600 mpirun -np 2 --oversubscribe .build/debug/FlashGradPackageTests.xctest FlashGradDistributedTests.DistributedTests
FLASHGRAD_CUDA_PATH="$emulator" FLASHGRAD_CACHE="$(mktemp -d)" FLASHGRAD_TEST_DEVICE=cuda \
    timeout 600 mpirun -np 2 --oversubscribe -x FLASHGRAD_CUDA_PATH -x FLASHGRAD_CACHE -x FLASHGRAD_TEST_DEVICE \
    .build/debug/FlashGradPackageTests.xctest FlashGradDistributedTests.DistributedTests
bash scripts/test-distributed-faults.sh
