import ArgumentParser
import COpenBLAS
import ExampleSupport
import FlashGrad
import Foundation

/// Release-mode checks of the core performance floor: matmul against a direct cblas_sgemm call,
/// and elementwise ops against a plain copy of the same bytes, measured side by side.
@main
struct CoreBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "core-bench", abstract: "Matmul and elementwise throughput against sgemm and a memory copy.")

    @Option(help: "Matrix size n for the n×n×n product.") var size = 1024
    @Option(help: "Elements for the elementwise ops.") var elements = 16 * 1024 * 1024
    @Option(help: "Timed repetitions (the median is reported).") var repetitions = 9
    @Option(help: "Threads for FlashGrad kernels and OpenBLAS.") var threads = ProcessInfo.processInfo.activeProcessorCount

    func run() throws {
        Parallel.threadCount = threads
        let n = size
        let a = Tensor<Float>.normal([n, n]), b = Tensor<Float>.normal([n, n])
        let aValues = a.scalars, bValues = b.scalars
        var cValues = [Float](repeating: 0, count: n * n)
        let sgemm = median {
            openblas_set_num_threads(Int32(threads))  // FlashGrad keeps OpenBLAS single-threaded; the baseline uses all threads
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(n), Int32(n), 1,
                        aValues, Int32(n), bValues, Int32(n), 0, &cValues, Int32(n))
        }
        openblas_set_num_threads(1)
        Thread.sleep(forTimeInterval: openBLASSettleSeconds)
        let matmul = median { _ = a.matmul(b) }
        let flops = 2 * Double(n) * Double(n) * Double(n)
        print(String(format: "matmul %d³ Float: FlashGrad %.2f ms (%.1f GFLOP/s), cblas_sgemm %.2f ms (%.1f GFLOP/s), ratio %.3f",
                     n, matmul * 1e3, flops / matmul / 1e9, sgemm * 1e3, flops / sgemm / 1e9, sgemm / matmul))

        let x = Tensor<Float>.normal([elements]), y = Tensor<Float>.normal([elements])
        let source = x.scalars
        var destination = [Float](repeating: 0, count: elements)
        let copy = median { destination.withUnsafeMutableBufferPointer { d in source.withUnsafeBufferPointer { d.baseAddress!.update(from: $0.baseAddress!, count: elements) } } }
        print(String(format: "copy of %d Floats: %.2f ms", elements, copy * 1e3))
        for (name, op) in [("add", { _ = x + y }), ("mul", { _ = x * y }), ("relu", { _ = x.relu() }), ("exp", { _ = x.exp() }),
                           ("sum", { _ = x.sum() }), ("normal", { _ = Tensor<Float>.normal([elements]) })] as [(String, () -> Void)] {
            let time = median(op)
            print(String(format: "%@ on %d Floats: %.2f ms, %.2f× the copy", name, elements, time * 1e3, time / copy))
        }
    }

    func median(_ body: () -> Void) -> Double { medianSeconds(repetitions: repetitions, body) }
}
