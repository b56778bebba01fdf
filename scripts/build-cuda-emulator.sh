#!/usr/bin/env bash
# Builds the CUDA emulator (Tests/CUDAEmulator) into .build/cuda-emulator as libcuda.so.1,
# libnvrtc.so.13, libcublas.so.13 and libnccl.so.2: point FLASHGRAD_CUDA_PATH there to run the CUDA backend, and
# its tests, on a machine without a GPU (slowly; for correctness). Prints the folder.
set -euo pipefail
cd "$(dirname "$0")/.."
folder=.build/cuda-emulator
mkdir -p "$folder"
# Swift's toolchain brings clang; the system's compilers otherwise.
c_compiler=$(command -v clang || command -v cc)
cxx_compiler=$(command -v clang++ || command -v c++)
"$c_compiler" -std=gnu11 -O2 -fPIC -shared -Wall -Wextra -Wno-unused-parameter \
    -DEMULATOR_PRELUDE="\"$PWD/Tests/CUDAEmulator/prelude.h\"" -DEMULATOR_CXX="\"$cxx_compiler\"" $(pkg-config --cflags openblas) \
    -o "$folder/libcuda.so.1" Tests/CUDAEmulator/driver.c $(pkg-config --libs openblas) -ldl -lpthread
cp "$folder/libcuda.so.1" "$folder/libnvrtc.so.13"
cp "$folder/libcuda.so.1" "$folder/libcublas.so.13"
cp "$folder/libcuda.so.1" "$folder/libnccl.so.2"
echo "$PWD/$folder"
