import FlashGrad
import XCTest

/// Attention computed one chunk of queries at a time with the naive ops: a third implementation
/// defined outside the library, supporting only plain and causal attention. It reads the resolved
/// scale and the visible keys from the problem instead of re-deriving them.
struct ChunkedAttention: AttentionImplementation {
    var chunkSize = 3
    var name: String { "chunked" }
    var supportedFeatures: Set<AttentionFeature> { [.causal] }

    func compute<Scalar: TensorScalar>(query: Tensor<Scalar>, key: Tensor<Scalar>, value: Tensor<Scalar>,
                                       problem: AttentionProblem<Scalar>, returnLogSumExp: Bool) -> AttentionResult<Scalar> {
        var pieces: [Tensor<Scalar>] = []
        for start in stride(from: 0, to: problem.queryLength, by: chunkSize) {
            let rows = start..<Swift.min(start + chunkSize, problem.queryLength)
            var scores = query.slice(axis: 2, rows).matmul(key.transposed()) * problem.scale
            if problem.hasScoreBias {
                let hidden = rows.flatMap { i in (0..<problem.keyLength).map { !problem.visibleKeys(batch: 0, row: i).contains($0) } }
                scores = scores.maskedFill(BoolTensor(hidden, shape: [rows.count, problem.keyLength]), -.infinity)
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
                                       problem: AttentionProblem<Scalar>, returnLogSumExp: Bool) -> AttentionResult<Scalar> {
        var wrong = problem.options
        wrong.scale = problem.scale * 1.1
        return NaiveAttention().compute(query: query, key: key, value: value,
                                        problem: AttentionProblem(query: query, key: key, value: value, options: wrong),
                                        returnLogSumExp: returnLogSumExp)
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
        let query = Tensor<Float>.zeros([1, 4, 3, 8]), keyOrValue = Tensor<Float>.zeros([1, 2, 3, 8])
        let problem = AttentionProblem(query: query, key: keyOrValue, value: keyOrValue, options: options)
        let reasons = ChunkedAttention().unsupportedReasons(for: problem, returnLogSumExp: true)
        XCTAssertEqual(reasons, [
            "attention implementation 'chunked' does not support dropout",
            "attention implementation 'chunked' does not support softcap",
            "attention implementation 'chunked' does not support groupedQueryHeads",
            "attention implementation 'chunked' does not support logSumExp",
        ])
        XCTAssertTrue(FlashAttention().unsupportedReasons(for: problem, returnLogSumExp: true).isEmpty)
        // Devices are asked for as features are: flash has kernels for the CPU and CUDA, naive runs anywhere.
        XCTAssertTrue(FlashAttention().supports(device: .cpu))
        XCTAssertTrue(FlashAttention().supports(device: .cuda(0)))
        XCTAssertTrue(NaiveAttention().supports(device: .cuda(0)))
    }

    func testUnknownNameThrowsWithTheKnownNames() {
        XCTAssertThrowsError(try AttentionRegistry.implementation(named: "flahs")) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("'flahs'") && text.contains("flash") && text.contains("naive"), text)
        }
    }
}
