import FlashGrad
import XCTest

/// One attention call's shapes and options, for comparing implementations.
struct AttentionCase: CustomStringConvertible {
    var batch = 1, queryHeads = 2, keyValueHeads = 2, queryLength = 5, keyLength = 7, headDim = 8, valueDim = 8
    var options = AttentionOptions<Float>()
    var label = ""

    var description: String {
        "\(label) B\(batch) Hq\(queryHeads) Hkv\(keyValueHeads) Nq\(queryLength) Nk\(keyLength) D\(headDim) Dv\(valueDim)"
    }

    func inputs<T: TensorScalar>(_ generator: RandomGenerator, _: T.Type) -> (Tensor<T>, Tensor<T>, Tensor<T>) {
        (Tensor<T>.normal([batch, queryHeads, queryLength, headDim], generator: generator, requiresGrad: true),
         Tensor<T>.normal([batch, keyValueHeads, keyLength, headDim], generator: generator, requiresGrad: true),
         Tensor<T>.normal([batch, keyValueHeads, keyLength, valueDim], generator: generator, requiresGrad: true))
    }
}

/// Forward, log-sum-exp (where supported) and gradients of one implementation, by name.
func runAttention(_ implementation: AttentionImplementation, _ query: Tensor<Float>, _ key: Tensor<Float>, _ value: Tensor<Float>,
                  options: AttentionOptions<Float>, upstream: Tensor<Float>) -> [String: Tensor<Float>] {
    for t in [query, key, value] { t.zeroGrad() }
    let result = attentionWithLogSumExp(query: query, key: key, value: value, options: options, implementation: implementation,
                                        returnLogSumExp: implementation.supportedFeatures.contains(.logSumExp))
    result.output.backward(upstream)
    var values = ["output": result.output.detach(), "dQuery": query.grad!, "dKey": key.grad!, "dValue": value.grad!]
    values["logSumExp"] = result.logSumExp
    return values
}

/// fp32 forward agreement for N(0, 1) inputs (the issue's bound).
let attentionForwardTolerance: Float = 2e-5
/// Gradient agreement, relative to the largest gradient magnitude (the issue's bound).
let attentionGradientRelativeTolerance: Float = 1e-4

/// Asserts flash matches naive on a case: output, log-sum-exp and the three gradients.
func assertFlashMatchesNaive(_ c: AttentionCase, seed: UInt64, file: StaticString = #filePath, line: UInt = #line) {
    assertImplementationsAgree(FlashAttention(), NaiveAttention(), c, seed: seed, file: file, line: line)
}

func assertImplementationsAgree(_ candidate: AttentionImplementation, _ reference: AttentionImplementation, _ c: AttentionCase,
                                seed: UInt64, file: StaticString = #filePath, line: UInt = #line) {
    let (failures, _) = compareImplementations(candidate, reference, c, seed: seed)
    for failure in failures { XCTFail("\(c): \(failure)", file: file, line: line) }
}

/// Returns the disagreements (empty when the implementations agree) and the largest one seen.
func compareImplementations(_ candidate: AttentionImplementation, _ reference: AttentionImplementation, _ c: AttentionCase,
                            seed: UInt64) -> ([String], Float) {
    let generator = RandomGenerator(seed: seed)
    let (q, k, v) = c.inputs(generator, Float.self)
    let upstream = Tensor<Float>.normal([c.batch, c.queryHeads, c.queryLength, c.valueDim], generator: generator)
    let got = runAttention(candidate, q, k, v, options: c.options, upstream: upstream)
    let want = runAttention(reference, q, k, v, options: c.options, upstream: upstream)
    return attentionDisagreements(got, want)
}

/// Where two runs' outputs, log-sum-exps and gradients differ beyond the suite's tolerances (empty
/// when they agree), and the largest difference relative to its tolerance's scale.
func attentionDisagreements(_ got: [String: Tensor<Float>], _ want: [String: Tensor<Float>],
                            forwardTolerance: Float = attentionForwardTolerance,
                            gradientTolerance: Float = attentionGradientRelativeTolerance) -> ([String], Float) {
    var failures: [String] = []
    var worst: Float = 0
    // Gradients are compared against the largest gradient magnitude of the call (a gradient that
    // is zero in exact arithmetic, as dQ with one key, is roundoff in both implementations).
    let gradientScale = Swift.max(["dQuery", "dKey", "dValue"].flatMap { want[$0]!.scalars.map { Swift.abs($0) } }.max() ?? 0, 1e-6)
    for name in ["output", "logSumExp", "dQuery", "dKey", "dValue"] {
        guard let a = got[name]?.scalars, let b = want[name]?.scalars else { continue }
        let isGradient = name.hasPrefix("d")
        if a.contains(where: { $0.isNaN }) || (name != "logSumExp" && a.contains(where: { !$0.isFinite })) {
            failures.append("\(name) has NaN or Inf")
            continue
        }
        var difference: Float = 0
        for (x, y) in zip(a, b) where x != y {  // x == y covers −∞ == −∞ in the log-sum-exp of masked rows
            difference = Swift.max(difference, Swift.abs(x - y).isNaN ? .infinity : Swift.abs(x - y))
        }
        let tolerance = isGradient ? gradientTolerance * gradientScale : forwardTolerance
        worst = Swift.max(worst, isGradient ? difference / gradientScale : difference)
        if difference > tolerance { failures.append("\(name) differs by \(difference) > \(tolerance)") }
    }
    return (failures, worst)
}

extension AttentionCase {
    /// Every option alone and combined, on small shapes (shared by the CPU and CUDA suites).
    static func optionCases() -> [AttentionCase] {
        var cases: [AttentionCase] = []
        func add(_ label: String, _ configure: (inout AttentionCase) -> Void) {
            var c = AttentionCase()
            c.label = label
            configure(&c)
            cases.append(c)
        }
        add("plain") { _ in }
        add("scale") { $0.options.scale = 0.3 }
        add("causal") { $0.options.causal = true }
        add("causal Nq>Nk (first rows fully masked)") { $0.options.causal = true; $0.queryLength = 9; $0.keyLength = 4 }
        add("key lengths") { $0.batch = 3; $0.options.keyPadding = .lengths([7, 2, 0]) }
        add("key padding mask") {
            $0.batch = 2
            $0.options.keyPadding = .mask(BoolTensor([false, true, false, false, true, true, true,
                                                      true, true, true, true, true, true, true], shape: [2, 7]))
        }
        add("boolean mask") {
            let values = (0..<35).map { $0 % 3 != 0 }
            $0.options.mask = .boolean(BoolTensor(values, shape: [1, 1, 5, 7]))
        }
        add("boolean mask, a fully masked row") {
            let values = (0..<35).map { $0 / 7 == 2 ? false : $0 % 2 == 0 }
            $0.options.mask = .boolean(BoolTensor(values, shape: [5, 7]))
        }
        add("additive mask") {
            $0.options.mask = .additive(Tensor<Float>.normal([2, 1, 7], generator: RandomGenerator(seed: 3)))
        }
        add("grouped-query") { $0.queryHeads = 4; $0.keyValueHeads = 2 }
        add("multi-query") { $0.queryHeads = 3; $0.keyValueHeads = 1 }
        add("dropout") { $0.options.dropout = (0.3, 42) }
        add("window") { $0.options.window = (left: 2, right: 1) }
        add("window left only") { $0.options.window = (left: 1, right: nil) }
        add("alibi") { $0.options.alibiSlopes = [0.5, 0.25] }
        add("softcap") { $0.options.softcap = 2 }
        add("Dv ≠ D") { $0.valueDim = 3; $0.headDim = 5 }
        add("everything") {
            $0.batch = 2; $0.queryHeads = 4; $0.keyValueHeads = 2; $0.queryLength = 6; $0.keyLength = 9; $0.valueDim = 5
            $0.options = AttentionOptions(scale: 0.4, causal: true, keyPadding: .lengths([9, 5]),
                                          mask: .boolean(BoolTensor((0..<54).map { $0 % 5 != 1 }, shape: [6, 9])),
                                          dropout: (0.2, 7), window: (left: 4, right: nil), alibiSlopes: [0.1, 0.2, 0.3, 0.4], softcap: 3)
        }
        add("causal + padding + GQA") {
            $0.batch = 2; $0.queryHeads = 4; $0.keyValueHeads = 1; $0.queryLength = 7
            $0.options = AttentionOptions(causal: true, keyPadding: .lengths([3, 7]))
        }
        add("softcap + alibi + dropout") { $0.options = AttentionOptions(dropout: (0.5, 1), alibiSlopes: [1, 2], softcap: 1.5) }
        return cases
    }

    /// A seeded random sweep over sizes (1…300, including non-multiples of the tile sizes), head
    /// dims, Dv ≠ D and random option combinations.
    static func randomSweep(trials: Int) -> [AttentionCase] {
        let generator = RandomGenerator(seed: 99)
        let lengths = [1, 2, 17, 63, 64, 65, 127, 129, 200, 300]
        let dims = [1, 3, 16, 64, 80, 128]
        var cases: [AttentionCase] = []
        for trial in 0..<trials {
            func pick<E>(_ values: [E]) -> E { values[Int(generator.next() % UInt64(values.count))] }
            func coin() -> Bool { generator.next() % 3 == 0 }
            var c = AttentionCase()
            c.queryLength = pick(lengths); c.keyLength = pick(lengths)
            c.headDim = pick(dims); c.valueDim = coin() ? pick(dims) : c.headDim
            c.keyValueHeads = pick([1, 2]); c.queryHeads = c.keyValueHeads * pick([1, 2])
            c.batch = pick([1, 2])
            // Keep the naive reference's N² tensors small enough for a quick debug-mode test.
            if c.queryLength * c.keyLength * c.queryHeads * c.batch * Swift.max(c.headDim, c.valueDim) > 6_000_000 { c.headDim = 16; c.valueDim = 16 }
            var o = AttentionOptions<Float>()
            o.causal = coin()
            if coin() { o.keyPadding = .lengths((0..<c.batch).map { _ in Int(generator.next() % UInt64(c.keyLength + 1)) }) }
            if coin() { o.dropout = (0.25, generator.next()) }
            if coin() { o.window = (left: Int(generator.next() % 40), right: coin() ? nil : Int(generator.next() % 40)) }
            if coin() { o.alibiSlopes = (0..<c.queryHeads).map { Float($0 + 1) * 0.05 } }
            if coin() { o.softcap = 5 }
            if coin() {
                o.mask = .boolean(BoolTensor((0..<(c.queryLength * c.keyLength)).map { _ in generator.next() % 5 != 0 },
                                             shape: [c.queryLength, c.keyLength]))
            }
            c.options = o
            c.label = "trial \(trial) causal=\(o.causal) padding=\(o.keyPadding != nil) dropout=\(o.dropout != nil) window=\(o.window.map { "\($0)" } ?? "-") alibi=\(o.alibiSlopes != nil) softcap=\(o.softcap != nil) mask=\(o.mask != nil)"
            cases.append(c)
        }
        return cases
    }
}

final class AttentionTests: XCTestCase {
    func testEachOptionAloneAndCombined() {
        for (index, c) in AttentionCase.optionCases().enumerated() { assertFlashMatchesNaive(c, seed: UInt64(index)) }
    }

    /// The flash kernels at every instruction-set level this CPU runs give naive attention's values.
    func testEveryKernelLevelMatchesNaive() {
        let saved = CPUKernelLevel.current
        defer { CPUKernelLevel.current = saved }
        for level in CPUKernelLevel.supported {
            CPUKernelLevel.current = level
            for (index, c) in (AttentionCase.optionCases() + AttentionCase.randomSweep(trials: 12)).enumerated() {
                let (failures, _) = compareImplementations(FlashAttention(), NaiveAttention(), c, seed: UInt64(index) + 77)
                for failure in failures { XCTFail("\(level): \(c): \(failure)") }
            }
        }
    }

    func testRandomSweep() {
        for (trial, c) in AttentionCase.randomSweep(trials: 60).enumerated() { assertFlashMatchesNaive(c, seed: UInt64(trial) + 1000) }
    }

    /// Keys spanning several column tiles, so the online softmax rescales across tiles.
    func testSequencesLongerThanOneTile() {
        var c = AttentionCase()
        c.queryLength = 130; c.keyLength = 1100; c.headDim = 16; c.valueDim = 16
        assertFlashMatchesNaive(c, seed: 500)
        c.options = AttentionOptions(causal: true, keyPadding: .lengths([1030]), window: (left: 700, right: nil))
        assertFlashMatchesNaive(c, seed: 501)
        c.options = AttentionOptions(dropout: (0.2, 3), alibiSlopes: [0.01, 0.02], softcap: 4)
        assertFlashMatchesNaive(c, seed: 502)
    }

    func testEmptySequences() {
        for (queryLength, keyLength) in [(0, 5), (4, 0)] {
            let q = Tensor<Float>.normal([1, 2, queryLength, 4], requiresGrad: true)
            let k = Tensor<Float>.normal([1, 2, keyLength, 4], requiresGrad: true)
            let v = Tensor<Float>.normal([1, 2, keyLength, 3], requiresGrad: true)
            let output = attention(query: q, key: k, value: v)
            XCTAssertEqual(output.shape, [1, 2, queryLength, 3])
            XCTAssertTrue(output.scalars.allSatisfy { $0 == 0 })
            output.sum().backward()
            XCTAssertTrue(q.grad!.scalars.allSatisfy { $0 == 0 } && k.grad!.scalars.allSatisfy { $0 == 0 })
        }
    }

    func testNoNaNWhenEverythingIsMasked() {
        var c = AttentionCase()
        c.batch = 2
        c.options.keyPadding = .lengths([0, 0])
        let (q, k, v) = c.inputs(RandomGenerator(seed: 1), Float.self)
        let result = attentionWithLogSumExp(query: q, key: k, value: v, options: c.options, implementation: FlashAttention())
        XCTAssertTrue(result.output.scalars.allSatisfy { $0 == 0 })
        XCTAssertTrue(result.logSumExp!.scalars.allSatisfy { $0 == -.infinity })
        result.output.sum().backward()
        for t in [q, k, v] { XCTAssertTrue(t.grad!.scalars.allSatisfy { $0 == 0 }) }
    }

    /// Heads read through strides ([B, N, H, D] tensors permuted to [B, H, N, D], as the layers pass
    /// them) give bitwise what contiguous heads give: the kernels' row and head strides are honoured.
    func testHeadsInterleavedInMemoryMatchContiguousHeads() {
        let generator = RandomGenerator(seed: 21)
        let options = AttentionOptions<Float>(causal: true)
        func interleaved(_ heads: Int, _ length: Int) -> Tensor<Float> {
            Tensor<Float>.normal([2, length, heads, 32], generator: generator).permute([0, 2, 1, 3]).detach().requiringGrad()
        }
        let q = interleaved(4, 100), k = interleaved(2, 300), v = interleaved(2, 300)
        let upstream = Tensor<Float>.normal([2, 4, 100, 32], generator: generator)
        let strided = runAttention(FlashAttention(), q, k, v, options: options, upstream: upstream)
        let contiguous = [q, k, v].map { $0.copy().requiringGrad() }
        let reference = runAttention(FlashAttention(), contiguous[0], contiguous[1], contiguous[2], options: options, upstream: upstream)
        for name in ["output", "logSumExp", "dQuery", "dKey", "dValue"] {
            XCTAssertEqual(strided[name]!.scalars, reference[name]!.scalars, name)
        }
    }

    /// One (batch, head) and many key blocks: the backward splits the key blocks over the threads
    /// (dQ partials summed in a fixed order). It matches naive attention, repeats bitwise for a
    /// thread count, and agrees across thread counts to rounding.
    func testBackwardSplitOverKeyBlocksForLongSequences() {
        let saved = Parallel.threadCount
        defer { Parallel.threadCount = saved }
        for causal in [false, true] {
            var c = AttentionCase()
            c.batch = 1; c.queryHeads = 1; c.keyValueHeads = 1; c.queryLength = 300; c.keyLength = 800; c.headDim = 16; c.valueDim = 16
            c.options = AttentionOptions(causal: causal, dropout: (0.1, 9))
            let generator = RandomGenerator(seed: 31)
            let (q, k, v) = c.inputs(generator, Float.self)
            let upstream = Tensor<Float>.normal([1, 1, 300, 16], generator: generator)
            var gradients: [Int: [String: Tensor<Float>]] = [:]
            for threads in [1, 3] {
                Parallel.threadCount = threads
                let first = runAttention(FlashAttention(), q, k, v, options: c.options, upstream: upstream)
                let again = runAttention(FlashAttention(), q, k, v, options: c.options, upstream: upstream)
                for name in ["dQuery", "dKey", "dValue"] { XCTAssertEqual(first[name]!.scalars, again[name]!.scalars, "\(name), \(threads) threads") }
                gradients[threads] = first
            }
            let naive = runAttention(NaiveAttention(), q, k, v, options: c.options, upstream: upstream)
            for threads in [1, 3] {
                for failure in attentionDisagreements(gradients[threads]!, naive).0 { XCTFail("causal \(causal), \(threads) threads: \(failure)") }
            }
        }
    }

    func testBackwardIsBitwiseDeterministic() {
        var c = AttentionCase()
        c.queryHeads = 4; c.keyValueHeads = 2; c.queryLength = 150; c.keyLength = 190; c.headDim = 32; c.valueDim = 32
        c.options = AttentionOptions(causal: true, dropout: (0.1, 5))
        let generator = RandomGenerator(seed: 8)
        let (q, k, v) = c.inputs(generator, Float.self)
        let upstream = Tensor<Float>.normal([1, 4, 150, 32], generator: generator)
        let first = runAttention(FlashAttention(), q, k, v, options: c.options, upstream: upstream)
        for _ in 0..<3 {
            let again = runAttention(FlashAttention(), q, k, v, options: c.options, upstream: upstream)
            for name in ["dQuery", "dKey", "dValue"] { XCTAssertEqual(first[name]!.scalars, again[name]!.scalars, name) }
        }
    }
}
