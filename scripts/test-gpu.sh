#!/usr/bin/env bash
# For a developer with an NVIDIA GPU (driver, and CUDA 12 or 13's libnvrtc and libcublas on the
# loader's path or under FLASHGRAD_CUDA_PATH): the CUDA test suite (backend and flash attention),
# the distributed tests through NCCL when there are two GPUs or more, then the GPU training check
# (`reverse --device cuda` must reach 99 % exact match). Says how each went; exits non-zero on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-dependencies.sh
if ! swift test --disable-swift-testing --filter "CUDABackendTests|CUDAFlashAttentionTests|DeviceTests" 2>&1 | tee /tmp/flashgrad-test-gpu.log; then
    echo "test-gpu: CUDA tests FAILED (log: /tmp/flashgrad-test-gpu.log)"; exit 1
fi
if grep -q "CUDA tests skipped" /tmp/flashgrad-test-gpu.log; then
    echo "test-gpu: no usable GPU, the CUDA tests were skipped: $(grep -m1 -o 'CUDA tests skipped: .*' /tmp/flashgrad-test-gpu.log)"; exit 1
fi
echo "test-gpu: CUDA tests passed"
gpus=$(nvidia-smi -L 2>/dev/null | grep -c "^GPU" || true)
if [ "$gpus" -ge 2 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 NCCL_NVLS_ENABLE=${NCCL_NVLS_ENABLE:-0}
    if ! FLASHGRAD_TEST_DEVICE=cuda timeout 600 mpirun -np 2 --bind-to none -x FLASHGRAD_TEST_DEVICE -x NCCL_NVLS_ENABLE \
        .build/debug/FlashGradPackageTests.xctest FlashGradDistributedTests.DistributedTests; then
        echo "test-gpu: distributed tests through NCCL FAILED"; exit 1
    fi
    echo "test-gpu: distributed tests passed through NCCL on 2 GPUs"
else
    echo "test-gpu: $gpus GPU(s): the distributed tests through NCCL need 2, not run"
fi
bash scripts/build-release.sh --product reverse
.build/release/reverse --device cuda --output runs/reverse-cuda | tee /tmp/flashgrad-reverse-cuda.log
accuracy=$(grep -o 'exact_match=[0-9.]*' /tmp/flashgrad-reverse-cuda.log | cut -d= -f2)
if python3 -c "import sys; sys.exit(0 if float('$accuracy') >= 0.99 else 1)"; then
    echo "test-gpu: reverse on the GPU reached exact match $accuracy (≥ 0.99)"
else
    echo "test-gpu: reverse on the GPU reached only exact match $accuracy (< 0.99)"; exit 1
fi
