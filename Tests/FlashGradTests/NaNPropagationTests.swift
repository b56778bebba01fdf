import FlashGrad
import XCTest

/// NaN and infinities are never hidden: they reach the outputs that depend on them, as in PyTorch,
/// and flash attention marks the same rows NaN as naive attention, across tile boundaries. (Fully
/// masked attention rows give 0 on purpose; that is not hiding anything.)
final class NaNPropagationTests: XCTestCase {
    func testElementwiseAndSoftmaxFollowPyTorch() {
        XCTAssertTrue(Tensor<Float>([.nan]).relu().item.isNaN, "relu(NaN) is NaN")
        XCTAssertEqual(Tensor<Float>([-2, 3]).relu().scalars, [0, 3])
        XCTAssertTrue(Tensor<Float>([.nan, 0], shape: [1, 2]).softmax().scalars.allSatisfy(\.isNaN), "softmax([nan, 0]) is [nan, nan]")
        XCTAssertTrue(Tensor<Double>([.nan, 0], shape: [1, 2]).logSoftmax().scalars.allSatisfy(\.isNaN))
        // A row of −∞ (fully masked): 0 in softmax, on purpose (PyTorch's softmax gives NaN, its
        // attention's "safe" softmax 0), and log 0 = −∞ in log softmax, so that the two agree; the
        // other rows untouched.
        let rows = Tensor<Float>([-.infinity, -.infinity, 0, 0], shape: [2, 2])
        XCTAssertEqual(rows.softmax().scalars, [0, 0, 0.5, 0.5])
        XCTAssertEqual(Array(rows.logSoftmax().scalars[0..<2]), [-.infinity, -.infinity])
        XCTAssertEqual(Array(rows.logSoftmax().scalars[2..<4]), [-Float.log(2), -Float.log(2)])
    }

    /// Which rows of the output are NaN, and the NaN pattern of each gradient, for one implementation.
    func nanPattern(_ implementation: AttentionImplementation, _ q: Tensor<Float>, _ k: Tensor<Float>, _ v: Tensor<Float>,
                    _ options: AttentionOptions<Float>) -> (rows: Set<Int>, gradients: [[Bool]]) {
        let inputs = [q, k, v].map { $0.detach().requiringGrad() }
        let output = attention(query: inputs[0], key: inputs[1], value: inputs[2], options: options, implementation: implementation)
        output.sum().backward()
        let dim = output.shape[3], values = output.scalars
        let rows = Set((0..<(values.count / dim)).filter { row in values[(row * dim)..<((row + 1) * dim)].contains(where: \.isNaN) })
        for row in 0..<(values.count / dim) where !rows.contains(row) {
            XCTAssertTrue(values[(row * dim)..<((row + 1) * dim)].allSatisfy(\.isFinite), "\(implementation.name): row \(row) is neither NaN nor finite")
        }
        return (rows, inputs.map { $0.grad!.scalars.map(\.isNaN) })
    }

    /// One bad value in Q, K or the mask, rows and keys spanning several of the CPU kernels' tiles
    /// (96 query rows, 768 keys), causal or not: flash and naive agree on every NaN.
    func testAttentionPropagatesNaNAndInfinityToTheRowsThatSeeThem() {
        let queries = 200, keys = 1000, dim = 16
        let generator = RandomGenerator(seed: 4)
        func input(_ rows: Int) -> [Float] { Tensor<Float>.normal([rows * dim], generator: generator).scalars }
        let q0 = input(queries), k0 = input(keys), v0 = input(keys)
        func tensors(query: [Float] = [], key: [Float] = []) -> (Tensor<Float>, Tensor<Float>, Tensor<Float>) {
            (Tensor(query.isEmpty ? q0 : query, shape: [1, 1, queries, dim]), Tensor(key.isEmpty ? k0 : key, shape: [1, 1, keys, dim]),
             Tensor(v0, shape: [1, 1, keys, dim]))
        }
        func setting(_ values: [Float], row: Int, to value: Float) -> [Float] { settingRow(row, of: values, width: dim, to: value) }
        var mask = [Float](repeating: 0, count: queries * keys)
        mask[50 * keys + 10] = .nan
        // Causal, aligned bottom-right: row i sees keys j ≤ i + 800, so key 900 is seen from row 100 on.
        // The last field: whether the gradients' NaN patterns must match too (see below).
        let cases: [(String, (Tensor<Float>, Tensor<Float>, Tensor<Float>), AttentionOptions<Float>, Set<Int>?, Bool)] = [
            ("NaN query row 150", tensors(query: setting(q0, row: 150, to: .nan)), AttentionOptions(), Set([150]), true),
            ("NaN query row 150, causal", tensors(query: setting(q0, row: 150, to: .nan)), AttentionOptions(causal: true), Set([150]), true),
            ("NaN mask entry (50, 10)", tensors(), AttentionOptions(mask: .additive(Tensor(mask, shape: [queries, keys]))), Set([50]), true),
            ("NaN key 900", tensors(key: setting(k0, row: 900, to: .nan)), AttentionOptions(), Set(0..<queries), false),
            ("NaN key 900, causal", tensors(key: setting(k0, row: 900, to: .nan)), AttentionOptions(causal: true), Set(100..<queries), false),
            ("NaN key 900, window", tensors(key: setting(k0, row: 900, to: .nan)), AttentionOptions(window: (left: 50, right: 50)),
             Set(50...150), false),
            ("+∞ key 900, causal", tensors(key: setting(k0, row: 900, to: .infinity)), AttentionOptions(causal: true), nil, false),
        ]
        for (label, (q, k, v), options, expected, sameGradients) in cases {
            let flash = nanPattern(FlashAttention(), q, k, v, options), naive = nanPattern(NaiveAttention(), q, k, v, options)
            if let expected { XCTAssertEqual(flash.rows, expected, "\(label): flash's NaN rows") }
            XCTAssertFalse(flash.rows.isEmpty, "\(label): the bad value reached no row")
            XCTAssertEqual(flash.rows, naive.rows, "\(label): flash and naive NaN rows differ")
            // Every row whose output is NaN has a NaN query gradient, in both.
            for (name, pattern) in [("flash", flash.gradients[0]), ("naive", naive.gradients[0])] {
                for row in flash.rows { XCTAssertTrue(pattern[(row * dim)..<((row + 1) * dim)].allSatisfy { $0 }, "\(label): \(name) dQuery row \(row)") }
            }
            // A NaN inside K also meets zero weights (0·NaN = NaN) in the backward's products; naive
            // attention forms every product, flash only those of the tiles a block of rows can see,
            // so past the rows above the two may differ there. With Q or the mask bad, they may not.
            guard sameGradients else { continue }
            for (name, (a, b)) in zip(["dQuery", "dKey", "dValue"], zip(flash.gradients, naive.gradients)) {
                let differing = zip(a, b).enumerated().filter { $0.element.0 != $0.element.1 }
                XCTAssertTrue(differing.isEmpty, "\(label): \(name) NaN pattern differs between flash and naive at \(differing.count) of \(a.count) "
                              + "elements, first \(differing.prefix(3).map { "\($0.offset / dim): flash \($0.element.0), naive \($0.element.1)" })")
            }
        }
    }
}
