import ArgumentParser
import COpenBLAS
import ExampleSupport
import FlashGrad
import Foundation

/// Times attention implementations forward and forward+backward, with peak tensor memory and the
/// same-run cblas_sgemm rate for reference.
@main
struct AttentionBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attention-bench",
        abstract: "Forward and forward+backward time, GFLOP/s and peak memory of attention implementations.",
        discussion: """
            FLOP model: forward 4·B·H·Nq·Nk·D, backward 2.5× the forward; causal halves both.
            peak_MiB counts tensor bytes live at once during forward+backward (inputs included);
            rss_MiB is the process's peak resident memory so far (a running maximum over the rows).
            On a GPU every timed call ends when the device has finished (a read of one element), and
            the reference rate is FlashGrad's FP32 matmul (cuBLAS) at 4096³ instead of cblas_sgemm.
            """)

    @Option(help: "Device: cpu, cuda or cuda:N.") var device = "cpu"
    @Option(help: "Batch size.") var batch = 1
    @Option(help: "Heads.") var heads = 8
    @Option(help: "Head dimension D.") var dim = 64
    @Option(help: "Comma-separated sequence lengths N (Nq = Nk).") var lengths = "256,512,1024,2048,4096"
    @Option(help: "Causal settings to run: no, yes or both.") var causal = "both"
    @Option(help: "Comma-separated implementation names.") var implementations = "naive,flash"
    @Option(help: "Threads for FlashGrad and OpenBLAS.") var threads = 2
    @Option(help: "Timed repetitions; the median is reported (one run skips the warm-up).") var repetitions = 3
    @Option(help: "Skip an implementation whose estimated memory exceeds this many GiB.") var memoryLimit = 16.0
    @Flag(help: "Print one JSON object per line instead of a table.") var json = false

    func validate() throws {
        guard ["no", "yes", "both"].contains(causal) else { throw ValidationError("--causal must be no, yes or both, got '\(causal)'") }
        guard parsedLengths != nil else { throw ValidationError("--lengths must be comma-separated positive integers, got '\(lengths)'") }
        for name in implementations.split(separator: ",") {
            try validateAttentionName(String(name))
        }
        try requireAtLeast(1, ("--threads", threads), ("--repetitions", repetitions), ("--batch", batch), ("--heads", heads), ("--dim", dim))
        guard memoryLimit > 0 && memoryLimit.isFinite else { throw ValidationError("--memory-limit must be a positive number of GiB, got \(memoryLimit)") }
    }

    var parsedLengths: [Int]? {
        let values = lengths.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) > 0 }) else { return nil }
        return values.map { $0! }
    }

    func run() throws {
        Parallel.threadCount = threads
        let device = try parseDevice(self.device)
        Device.default = device
        if !json {
            let reference = device == .cpu ? "cblas_sgemm 2048³" : "FP32 matmul 4096³ on \(device)"
            print("B=\(batch) H=\(heads) D=\(dim) device=\(device) (\(device.name)) threads=\(threads) cpu-kernels=\(CPUKernelLevel.current.rawValue), "
                  + "median of \(repetitions); fwd/sgemm against \(reference) measured before each N")
            print("     N causal  impl    fwd_ms  fwdbwd_ms  fwd_GF/s  fb_GF/s  fwd/sgemm  peak_MiB  rss_MiB  sgemm_GF/s")
        }
        let causalSettings = causal == "both" ? [false, true] : [causal == "yes"]
        for n in parsedLengths! {
            // The reference rate is re-measured next to each length, since the machine's load drifts.
            let sgemm = device == .cpu ? sgemmRate() : deviceMatmulRate()
            for isCausal in causalSettings {
                for name in implementations.split(separator: ",").map(String.init) {
                    let implementation = try AttentionRegistry.implementation(named: name)
                    let estimate = estimatedBytes(name: name, n: n)
                    if estimate > memoryLimit * 1024 * 1024 * 1024 {
                        let message = "skipped: \(name) at N=\(n) would need about \(format(estimate / 1_073_741_824)) GiB (limit \(memoryLimit) GiB)"
                        if json { print("{\"n\":\(n),\"causal\":\(isCausal),\"implementation\":\"\(name)\",\"skipped\":\"\(message)\"}") }
                        else { print(String(format: "%6d %6@ %6@  %@", n, "\(isCausal)", name, message)) }
                        continue
                    }
                    report(measure(implementation, n: n, causal: isCausal), n: n, causal: isCausal, name: name, sgemm: sgemm)
                }
            }
        }
    }

    struct Measurement { let forward: Double, forwardBackward: Double, peakBytes: Int }

    func measure(_ implementation: AttentionImplementation, n: Int, causal: Bool) -> Measurement {
        let generator = RandomGenerator(seed: 0)
        let shape = [batch, heads, n, dim]
        let q = Tensor<Float>.normal(shape, generator: generator, requiresGrad: true)
        let k = Tensor<Float>.normal(shape, generator: generator, requiresGrad: true)
        let v = Tensor<Float>.normal(shape, generator: generator, requiresGrad: true)
        let upstream = Tensor<Float>.normal(shape, generator: generator)
        let options = AttentionOptions<Float>(causal: causal)
        let forward = median {
            withoutGradients { waitForDevice(attention(query: q, key: k, value: v, options: options, implementation: implementation)) }
        }
        Device.default.resetPeakMemory()
        let forwardBackward = median {
            for t in [q, k, v] { t.zeroGrad() }
            attention(query: q, key: k, value: v, options: options, implementation: implementation).backward(upstream)
            waitForDevice(q.grad!)
        }
        return Measurement(forward: forward, forwardBackward: forwardBackward, peakBytes: Device.default.memory.peakBytes)
    }

    /// Returns once the device has computed `tensor` (a read of one element; nothing to wait for on the CPU).
    func waitForDevice(_ tensor: Tensor<Float>) {
        guard tensor.device != .cpu else { return }
        _ = tensor.reshape([tensor.count]).slice(axis: 0, 0..<1).item
    }

    /// FlashGrad's FP32 matrix product at 4096³ on the device, for the fraction-of-sgemm column.
    func deviceMatmulRate() -> Double {
        let size = 4096
        let a = Tensor<Float>.ones([size, size]), b = Tensor<Float>.ones([size, size])
        let time = medianSeconds(repetitions: Swift.max(repetitions, 5)) { waitForDevice(a.matmul(b)) }
        return 2 * pow(Double(size), 3) / time / 1e9
    }

    func report(_ m: Measurement, n: Int, causal: Bool, name: String, sgemm: Double) {
        let forwardFlops = 4 * Double(batch * heads) * Double(n) * Double(n) * Double(dim) * (causal ? 0.5 : 1)
        let forwardRate = forwardFlops / m.forward / 1e9, totalRate = 3.5 * forwardFlops / m.forwardBackward / 1e9
        let peakMiB = Double(m.peakBytes) / 1_048_576
        if json {
            print("{\"n\":\(n),\"causal\":\(causal),\"implementation\":\"\(name)\",\"batch\":\(batch),\"heads\":\(heads),\"dim\":\(dim),"
                + "\"threads\":\(threads),\"cpu_kernels\":\"\(CPUKernelLevel.current.rawValue)\",\"forward_ms\":\(format(m.forward * 1e3)),\"forward_backward_ms\":\(format(m.forwardBackward * 1e3)),"
                + "\"forward_gflops\":\(format(forwardRate)),\"forward_backward_gflops\":\(format(totalRate)),"
                + "\"forward_fraction_of_sgemm\":\(format(forwardRate / sgemm)),\"sgemm_gflops\":\(format(sgemm)),\"peak_mib\":\(format(peakMiB)),"
                + "\"max_rss_mib\":\(format(maximumResidentMiB()))}")
        } else {
            print(String(format: "%6d %6@ %6@ %8.1f %10.1f %9.1f %8.1f %10.2f %9.1f %8.0f %11.1f", n, "\(causal)", name, m.forward * 1e3,
                         m.forwardBackward * 1e3, forwardRate, totalRate, forwardRate / sgemm, peakMiB, maximumResidentMiB(), sgemm))
        }
    }

    /// What the naive path would hold: about six [B, H, N, N] Float tensors at once in forward+backward.
    func estimatedBytes(name: String, n: Int) -> Double {
        // In Double: at N = 2³¹ the naive estimate alone is past Int's range.
        let vectors = 12 * Double(batch) * Double(heads) * Double(n) * Double(dim) * 4
        return name == "naive" ? vectors + 6 * Double(batch) * Double(heads) * Double(n) * Double(n) * 4 : vectors
    }

    /// cblas_sgemm at 2048³ with the same threads, for the fraction-of-sgemm column.
    func sgemmRate() -> Double {
        let size = 2048
        let a = [Float](repeating: 0.5, count: size * size), b = [Float](repeating: 0.25, count: size * size)
        var c = [Float](repeating: 0, count: size * size)
        let time = medianSeconds(repetitions: Swift.max(repetitions, 5)) {
            openblas_set_num_threads(Int32(threads))  // FlashGrad keeps OpenBLAS single-threaded; the baseline uses all threads
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(size), Int32(size), Int32(size), 1,
                        a, Int32(size), b, Int32(size), 0, &c, Int32(size))
        }
        openblas_set_num_threads(1)
        Thread.sleep(forTimeInterval: openBLASSettleSeconds)
        return 2 * pow(Double(size), 3) / time / 1e9
    }

    func median(_ body: () -> Void) -> Double { medianSeconds(repetitions: repetitions, body) }

    /// The process's peak resident memory so far (everything, not only tensors).
    func maximumResidentMiB() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_maxrss) / 1024
    }

    func format(_ value: Double) -> String { String(format: "%.2f", value) }
}
