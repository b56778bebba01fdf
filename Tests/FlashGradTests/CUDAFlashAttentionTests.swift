import FlashGrad
import XCTest

/// Flash attention on the GPU against flash and naive on the CPU, on the same inputs: the CPU
/// suite's option cases and seeded sweep, long sequences, determinism, fully masked inputs, a
/// gradcheck in Double and N = 131072. FP32 is held to the CPU suite's tolerances (forward 2e-5
/// absolute, gradients 1e-4 relative to the largest gradient). Skipped without a usable GPU.
final class CUDAFlashAttentionTests: XCTestCase {
    static let gpu = Device.cuda(0)

    override func setUpWithError() throws { try skipUnlessAvailable(Self.gpu, "CUDA flash attention tests") }

    /// Runs flash on the GPU and flash and naive on the CPU for one case; the disagreements.
    func compareWithTheCPU(_ c: AttentionCase, seed: UInt64) -> [String] {
        let generator = RandomGenerator(seed: seed)
        let (q, k, v) = c.inputs(generator, Float.self)
        let upstream = Tensor<Float>.normal([c.batch, c.queryHeads, c.queryLength, c.valueDim], generator: generator)
        var options = c.options
        if case .additive(let mask) = options.mask { options.mask = .additive(mask.to(Self.gpu)) }
        let inputs = [q, k, v].map { $0.to(Self.gpu).detach().requiringGrad() }
        let got = runAttention(FlashAttention(), inputs[0], inputs[1], inputs[2], options: options, upstream: upstream.to(Self.gpu))
        var failures = attentionDisagreements(got, runAttention(FlashAttention(), q, k, v, options: c.options, upstream: upstream)).0
            .map { "against CPU flash: \($0)" }
        failures += attentionDisagreements(got, runAttention(NaiveAttention(), q, k, v, options: c.options, upstream: upstream)).0
            .map { "against CPU naive: \($0)" }
        return failures
    }

    func testEachOptionAloneAndCombined() {
        for (index, c) in AttentionCase.optionCases().enumerated() {
            for failure in compareWithTheCPU(c, seed: UInt64(index)) { XCTFail("\(c): \(failure)") }
        }
    }

    func testRandomSweep() {
        for (trial, c) in AttentionCase.randomSweep(trials: 60).enumerated() {
            for failure in compareWithTheCPU(c, seed: UInt64(trial) + 1000) { XCTFail("\(c): \(failure)") }
        }
    }

    /// Every head-dimension bucket of the kernels (32, 64, 128, 256) and Dv ≠ D across buckets.
    func testHeadDimensionsUpTo256() {
        for (index, (headDim, valueDim)) in [(1, 1), (33, 33), (96, 96), (128, 40), (130, 130), (200, 256), (256, 256)].enumerated() {
            var c = AttentionCase()
            c.queryLength = 70; c.keyLength = 90; c.headDim = headDim; c.valueDim = valueDim
            c.options = AttentionOptions(causal: index % 2 == 0)
            for failure in compareWithTheCPU(c, seed: UInt64(index) + 300) { XCTFail("\(c): \(failure)") }
        }
    }

    /// Many key tiles, so the online softmax rescales across them, against naive attention on the
    /// GPU (exact FP32 products through cuBLAS; the CPU's debug-build kernels would take minutes).
    /// The CUDA emulator runs N = 1024 (16 key tiles) instead: it computes a GPU's work on one core.
    func testLongSequences() {
        let lengths = Self.gpu.isCUDAEmulator ? [1024] : [4096, 8192]
        for (index, length) in lengths.enumerated() {
            for causal in [false, true] {
                let generator = RandomGenerator(seed: UInt64(index) + 700)
                var c = AttentionCase()
                c.queryLength = length; c.keyLength = length; c.headDim = 64; c.valueDim = 64; c.queryHeads = 2; c.keyValueHeads = 1
                let (q, k, v) = c.inputs(generator, Float.self)
                let inputs = [q, k, v].map { $0.to(Self.gpu).detach().requiringGrad() }
                let upstream = Tensor<Float>.normal([1, 2, length, 64], generator: generator).to(Self.gpu)
                let options = AttentionOptions<Float>(causal: causal)
                let got = runAttention(FlashAttention(), inputs[0], inputs[1], inputs[2], options: options, upstream: upstream)
                let want = runAttention(NaiveAttention(), inputs[0], inputs[1], inputs[2], options: options, upstream: upstream)
                for failure in attentionDisagreements(got, want).0 { XCTFail("N = \(length), causal \(causal): \(failure)") }
            }
        }
    }

    /// Heads interleaved in memory ([B, N, H, D] permuted, as a projection's output split into heads):
    /// read and written through strides, with the output and the gradients in the inputs' order.
    func testHeadsInterleavedInMemory() {
        let generator = RandomGenerator(seed: 22)
        let options = AttentionOptions<Float>(causal: true, keyPadding: .lengths([300, 170]))
        let inputs = [(4, 100), (2, 300), (2, 300)].map { Tensor<Float>.normal([2, $0.1, $0.0, 32], generator: generator) }
        let upstream = Tensor<Float>.normal([2, 100, 4, 32], generator: generator)
        let gpu = inputs.map { $0.to(Self.gpu).permute([0, 2, 1, 3]).detach().requiringGrad() }
        let got = runAttention(FlashAttention(), gpu[0], gpu[1], gpu[2], options: options,
                               upstream: upstream.to(Self.gpu).permute([0, 2, 1, 3]))
        let cpu = inputs.map { $0.permute([0, 2, 1, 3]).copy().requiringGrad() }
        let want = runAttention(FlashAttention(), cpu[0], cpu[1], cpu[2], options: options, upstream: upstream.permute([0, 2, 1, 3]).copy())
        for failure in attentionDisagreements(got, want).0 { XCTFail(failure) }
    }

    func testBackwardIsBitwiseDeterministic() {
        var c = AttentionCase()
        c.queryHeads = 4; c.keyValueHeads = 2; c.queryLength = 333; c.keyLength = 517; c.headDim = 64; c.valueDim = 64
        c.options = AttentionOptions(causal: true, dropout: (0.1, 5))
        let generator = RandomGenerator(seed: 8)
        let inputs = [c.inputs(generator, Float.self)].flatMap { [$0.0, $0.1, $0.2] }.map { $0.to(Self.gpu).detach().requiringGrad() }
        let upstream = Tensor<Float>.normal([1, 4, 333, 64], generator: generator).to(Self.gpu)
        let first = runAttention(FlashAttention(), inputs[0], inputs[1], inputs[2], options: c.options, upstream: upstream)
        for _ in 0..<3 {
            let again = runAttention(FlashAttention(), inputs[0], inputs[1], inputs[2], options: c.options, upstream: upstream)
            for name in ["output", "dQuery", "dKey", "dValue"] { XCTAssertEqual(first[name]!.scalars, again[name]!.scalars, name) }
        }
    }

    func testFullyMaskedInputsGiveZerosWithoutNaN() {
        let generator = RandomGenerator(seed: 1)
        let q = Tensor<Float>.normal([2, 2, 70, 16], generator: generator).to(Self.gpu).requiringGrad()
        let k = Tensor<Float>.normal([2, 2, 80, 16], generator: generator).to(Self.gpu).requiringGrad()
        let v = Tensor<Float>.normal([2, 2, 80, 16], generator: generator).to(Self.gpu).requiringGrad()
        let result = attentionWithLogSumExp(query: q, key: k, value: v, options: AttentionOptions(keyPadding: .lengths([0, 0])))
        XCTAssertTrue(result.output.scalars.allSatisfy { $0 == 0 })
        XCTAssertTrue(result.logSumExp!.scalars.allSatisfy { $0 == -.infinity })
        result.output.sum().backward()
        for t in [q, k, v] { XCTAssertTrue(t.grad!.scalars.allSatisfy { $0 == 0 }) }
    }

    /// A NaN or an infinity reaches the same output rows as on the CPU (the kernels' maximum keeps
    /// NaN; a row's sum of exponentials that is NaN is not mistaken for a row that saw no key), and
    /// the other rows agree to the usual tolerance; the rows that see nothing stay 0.
    func testNaNAndInfinityReachTheSameRowsAsOnTheCPU() {
        let queries = 150, keys = 300, dim = 16
        let generator = RandomGenerator(seed: 9)
        let q0 = Tensor<Float>.normal([queries * dim], generator: generator).scalars
        let k0 = Tensor<Float>.normal([keys * dim], generator: generator).scalars
        let v = Tensor<Float>.normal([1, 1, keys, dim], generator: generator)
        func setting(_ values: [Float], row: Int, to value: Float) -> [Float] { settingRow(row, of: values, width: dim, to: value) }
        var mask = [Float](repeating: 0, count: queries * keys)
        mask[50 * keys + 10] = .nan
        // The last field: whether some row must turn NaN (a padding key is seen by none).
        let cases: [(String, [Float], [Float], AttentionOptions<Float>, Bool)] = [
            ("NaN query row 100", setting(q0, row: 100, to: .nan), k0, AttentionOptions(), true),
            ("NaN key 200, causal", q0, setting(k0, row: 200, to: .nan), AttentionOptions(causal: true), true),
            ("+∞ key 200, causal", q0, setting(k0, row: 200, to: .infinity), AttentionOptions(causal: true), true),
            ("NaN key 200 behind padding", q0, setting(k0, row: 200, to: .nan), AttentionOptions(keyPadding: .lengths([200])), false),
            ("NaN mask entry (50, 10)", q0, k0, AttentionOptions(mask: .additive(Tensor(mask, shape: [queries, keys]))), true),
        ]
        for (label, queryValues, keyValues, options, reachesSomeRow) in cases {
            let q = Tensor(queryValues, shape: [1, 1, queries, dim]), k = Tensor(keyValues, shape: [1, 1, keys, dim])
            var gpuOptions = options
            if case .additive(let additive) = options.mask { gpuOptions.mask = .additive(additive.to(Self.gpu)) }
            let cpu = attention(query: q, key: k, value: v, options: options).scalars
            let gpu = attention(query: q.to(Self.gpu), key: k.to(Self.gpu), value: v.to(Self.gpu), options: gpuOptions).scalars
            let nanRows = { (values: [Float]) in Set((0..<queries).filter { row in values[(row * dim)..<((row + 1) * dim)].contains(where: \.isNaN) }) }
            XCTAssertEqual(!nanRows(cpu).isEmpty, reachesSomeRow, "\(label): NaN rows on the CPU: \(nanRows(cpu).count)")
            XCTAssertEqual(nanRows(gpu), nanRows(cpu), "\(label): NaN rows")
            let worst = zip(cpu, gpu).filter { !$0.0.isNaN && !$0.1.isNaN }.map { Swift.abs($0.0 - $0.1) }.max() ?? 0
            XCTAssertLessThanOrEqual(worst, 2e-5, "\(label): the other rows")
        }
    }

    func testGradcheckInDouble() {
        let generator = RandomGenerator(seed: 5)
        func input(_ shape: [Int]) -> Tensor<Double> { Tensor<Double>.normal(shape, generator: generator).to(Self.gpu).requiringGrad() }
        let options = AttentionOptions<Double>(causal: true, keyPadding: .lengths([6, 4]), dropout: (0.2, 3), alibiSlopes: [0.5, 0.25, 0.1, 0.2],
                                               softcap: 2)
        assertGradcheck({ attention(query: $0[0], key: $0[1], value: $0[2], options: options) },
                        inputs: [input([2, 4, 5, 3]), input([2, 2, 6, 3]), input([2, 2, 6, 2])])
    }

    func testHeadDimensionsTheKernelsDoNotCoverAreListed() {
        let query = Tensor<Float>.zeros([1, 1, 4, 300], device: Self.gpu)
        let problem = AttentionProblem(query: query, key: query, value: query, options: AttentionOptions())
        XCTAssertEqual(FlashAttention().unsupportedReasons(for: problem, returnLogSumExp: false),
                       ["flash attention on cuda:0 covers head dims up to 256 for Float, got D = 300, Dv = 300"])
        XCTAssertTrue(FlashAttention().unsupportedReasons(for: problem.onTheCPU(query), returnLogSumExp: false).isEmpty)
    }

    /// Memory linear in N: 131072 keys forward and backward, nothing of size N² allocated.
    func testVeryLongSequenceCompletesInLinearMemory() throws {
        try XCTSkipIf(Self.gpu.isCUDAEmulator, "N = 131072 would take hours on the CUDA emulator; it runs on a GPU")
        let length = 131_072
        let generator = RandomGenerator(seed: 2)
        let q = Tensor<Float>.normal([1, 1, length, 64], generator: generator).to(Self.gpu).requiringGrad()
        let k = Tensor<Float>.normal([1, 1, length, 64], generator: generator).to(Self.gpu).requiringGrad()
        let v = Tensor<Float>.normal([1, 1, length, 64], generator: generator).to(Self.gpu).requiringGrad()
        Self.gpu.resetPeakMemory()
        let output = attention(query: q, key: k, value: v, options: AttentionOptions(causal: true))
        output.sum().backward()
        let checksum = (output.sum() + q.grad!.sum() + k.grad!.sum() + v.grad!.sum()).item
        XCTAssertTrue(checksum.isFinite)
        // Inputs, output, gradients and the saved log-sum-exp: about 12 tensors of N × 64 Floats
        // (32 MiB each); one N × N score matrix alone would be 64 GiB.
        XCTAssertLessThan(Self.gpu.memory.peakBytes, 1 << 30, "peak \(Self.gpu.memory.peakBytes) bytes")
    }
}

private extension AttentionProblem {
    /// The same problem with CPU tensors of the query's shape (for comparing what each device allows).
    func onTheCPU(_ query: Tensor<Scalar>) -> AttentionProblem {
        let cpu = Tensor<Scalar>.zeros(query.shape, device: .cpu)
        return AttentionProblem(query: cpu, key: cpu, value: cpu, options: options)
    }
}
