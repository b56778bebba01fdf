import FlashGrad
import XCTest

/// Attention computed one chunk of queries at a time with the naive ops: a third implementation
/// defined outside the library, supporting only plain and causal attention.
struct ChunkedAttention: AttentionImplementation {
    var chunkSize = 3
    var name: String { "chunked" }
    var supportedFeatures: Set<AttentionFeature> { [.causal] }

    func compute<Scalar: TensorScalar>(query: Tensor<Scalar>, key: Tensor<Scalar>, value: Tensor<Scalar>,
                                       options: AttentionOptions<Scalar>, returnLogSumExp: Bool) -> AttentionResult<Scalar> {
        let queryLength = query.shape[2], keyLength = key.shape[2]
        let scale = options.scale ?? 1 / Scalar(query.shape[3]).squareRoot()
        var pieces: [Tensor<Scalar>] = []
        for start in stride(from: 0, to: queryLength, by: chunkSize) {
            let rows = start..<Swift.min(start + chunkSize, queryLength)
            var scores = query.slice(axis: 2, rows).matmul(key.transposed()) * scale
            if options.causal {
                let visible = rows.flatMap { i in (0..<keyLength).map { j in j <= i + keyLength - queryLength } }
                scores = scores.maskedFill(BoolTensor(visible.map { !$0 }, shape: [rows.count, keyLength]), -.infinity)
            }
            pieces.append(scores.softmax().matmul(value))
        }
        return AttentionResult(output: Tensor.concatenate(pieces, axis: 2), logSumExp: nil)
    }
}

/// A deliberately wrong implementation (scores scaled 10% too much) that the comparison must catch.
struct MisscaledAttention: AttentionImplementation {
    var name: String { "misscaled" }
    var supportedFeatures: Set<AttentionFeature> { Set(AttentionFeature.allCases) }

    func compute<Scalar: TensorScalar>(query: Tensor<Scalar>, key: Tensor<Scalar>, value: Tensor<Scalar>,
                                       options: AttentionOptions<Scalar>, returnLogSumExp: Bool) -> AttentionResult<Scalar> {
        var wrong = options
        wrong.scale = (options.scale ?? 1 / Scalar(query.shape[3]).squareRoot()) * 1.1
        return NaiveAttention().compute(query: query, key: key, value: value, options: wrong, returnLogSumExp: returnLogSumExp)
    }
}

final class AttentionImplementationTests: XCTestCase {
    func testRegisteredImplementationIsFoundByNameAndMatchesNaive() throws {
        AttentionRegistry.register(ChunkedAttention())
        XCTAssertTrue(AttentionRegistry.names.contains("chunked"))
        let chunked = try AttentionRegistry.implementation(named: "chunked")
        var c = AttentionCase()
        c.queryLength = 8; c.keyLength = 8
        c.options = AttentionOptions(causal: true)
        assertImplementationsAgree(chunked, NaiveAttention(), c, seed: 1)
        XCTAssertEqual(try AttentionRegistry.implementation(named: "flash").name, "flash")
        XCTAssertEqual(try AttentionRegistry.implementation(named: "naive").name, "naive")
    }

    func testWrongImplementationIsCaught() {
        let (failures, worst) = compareImplementations(MisscaledAttention(), NaiveAttention(), AttentionCase(), seed: 2)
        XCTAssertFalse(failures.isEmpty)
        XCTAssertGreaterThan(worst, 1e-3)
    }

    func testUnsupportedOptionsAreListed() {
        let options = AttentionOptions<Float>(causal: true, dropout: (0.1, 1), softcap: 3)
        let reasons = ChunkedAttention().unsupportedReasons(options: options, queryHeads: 4, keyValueHeads: 2, returnLogSumExp: true)
        XCTAssertEqual(reasons, [
            "attention implementation 'chunked' does not support dropout",
            "attention implementation 'chunked' does not support softcap",
            "attention implementation 'chunked' does not support groupedQueryHeads",
            "attention implementation 'chunked' does not support logSumExp",
        ])
        XCTAssertTrue(FlashAttention().unsupportedReasons(options: options, queryHeads: 4, keyValueHeads: 2, returnLogSumExp: true).isEmpty)
    }

    func testUnknownNameThrowsWithTheKnownNames() {
        XCTAssertThrowsError(try AttentionRegistry.implementation(named: "flahs")) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("'flahs'") && text.contains("flash") && text.contains("naive"), text)
        }
    }
}
