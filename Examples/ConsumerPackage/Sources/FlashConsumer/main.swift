import FlashGrad
import Foundation

// Flash attention forward and forward+backward, B = 1, H = 8, at the lengths and head dims given
// (default N ∈ {1024, 2048, 4096}, D ∈ {64, 128}), median of 3 after one warm-up, 2 threads, with
// the CPU kernel level in use: compare with `attention-bench` from `scripts/build-release.sh`.
let arguments = CommandLine.arguments.dropFirst()
let lengths = arguments.first.map { $0.split(separator: ",").compactMap { Int($0) } } ?? [1024, 2048, 4096]
let dims = arguments.dropFirst().first.map { $0.split(separator: ",").compactMap { Int($0) } } ?? [64, 128]
Parallel.threadCount = 2

func median(_ body: () -> Void) -> Double {
    body()
    let times = (0..<3).map { _ -> Double in
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
    }
    return times.sorted()[1]
}

// Warm-up: the first parallel call of a process starts Dispatch's worker threads, which would
// otherwise land in the first timed shape and nearly double it.
do {
    let x = Tensor<Float>.normal([1, 8, 512, 64])
    for _ in 0..<20 { _ = withoutGradients { attention(query: x, key: x, value: x) } }
}

print("flash-consumer: plain release build, cpu-kernels=\(CPUKernelLevel.current.rawValue), B=1 H=8, 2 threads, median of 3")
for dim in dims {
    for n in lengths {
        let generator = RandomGenerator(seed: 0)
        let q = Tensor<Float>.normal([1, 8, n, dim], generator: generator, requiresGrad: true)
        let k = Tensor<Float>.normal([1, 8, n, dim], generator: generator, requiresGrad: true)
        let v = Tensor<Float>.normal([1, 8, n, dim], generator: generator, requiresGrad: true)
        let upstream = Tensor<Float>.normal([1, 8, n, dim], generator: generator)
        let forward = median { withoutGradients { _ = attention(query: q, key: k, value: v) } }
        let total = median {
            for t in [q, k, v] { t.zeroGrad() }
            attention(query: q, key: k, value: v).backward(upstream)
        }
        print(String(format: "D=%3d N=%5d  forward %8.1f ms  forward+backward %8.1f ms", dim, n, forward, total))
    }
}
