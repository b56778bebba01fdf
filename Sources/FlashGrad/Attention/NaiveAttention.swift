/// The reference: attention from ordinary differentiable ops (matmul, masks, softmax, matmul).
/// It materialises the [B, Hq, Nq, Nk] scores, so memory grows with the square of the length.
public struct NaiveAttention: AttentionImplementation {
    public init() {}

    public var name: String { "naive" }

    public var supportedFeatures: Set<AttentionFeature> { Set(AttentionFeature.allCases) }

    public func compute<Scalar: TensorScalar>(query: Tensor<Scalar>, key: Tensor<Scalar>, value: Tensor<Scalar>,
                                              problem p: AttentionProblem<Scalar>, returnLogSumExp: Bool) -> AttentionResult<Scalar> {
        // Grouped heads: view Q as [B, Hkv, G, Nq, D] so each K/V head serves its group by broadcasting.
        let groupedQuery = query.reshape([p.batch, p.keyValueHeads, p.groupSize, p.queryLength, p.headDim])
        var scores = groupedQuery.matmul(key.unsqueeze(2).transposed()) * p.scale
        if let cap = p.softcap { scores = (scores / cap).tanh() * cap }
        scores = scores.reshape([p.batch, p.queryHeads, p.queryLength, p.keyLength])
        if p.hasScoreBias { scores = scores + scoreBias(p) }
        var probabilities = scores.softmax(axis: -1)
        if p.dropoutProbability > 0 { probabilities = probabilities * dropoutScale(p) }
        let output = probabilities.reshape([p.batch, p.keyValueHeads, p.groupSize, p.queryLength, p.keyLength])
            .matmul(value.unsqueeze(2))
            .reshape([p.batch, p.queryHeads, p.queryLength, p.valueDim])
        let logSumExp = returnLogSumExp ? withoutGradients { rowLogSumExp(scores) } : nil
        return AttentionResult(output: output, logSumExp: logSumExp)
    }

    /// ALiBi, the additive mask and −∞ where a key is not visible, broadcastable to [B, Hq, Nq, Nk].
    private func scoreBias<Scalar: TensorScalar>(_ p: AttentionProblem<Scalar>) -> Tensor<Scalar> {
        // Positions and padding vary with (batch, row, key) only: [B, 1, Nq, Nk].
        var positional = [Scalar](repeating: -.infinity, count: p.batch * p.queryLength * p.keyLength)
        for b in 0..<p.batch {
            for i in 0..<p.queryLength {
                let rowStart = (b * p.queryLength + i) * p.keyLength
                let visible = p.visibleKeys(batch: b, row: i)
                for j in visible where !(p.paddedKeys?[b * p.keyLength + j] ?? false) { positional[rowStart + j] = 0 }
            }
        }
        var bias = Tensor(positional, shape: [p.batch, 1, p.queryLength, p.keyLength], device: p.device)
        if let slopes = p.alibiSlopes {
            // −slope[h]·|i + Nk − Nq − j|: [1, Hq, Nq, Nk].
            var alibi: [Scalar] = []
            alibi.reserveCapacity(p.queryHeads * p.queryLength * p.keyLength)
            for h in 0..<p.queryHeads {
                for i in 0..<p.queryLength {
                    for j in 0..<p.keyLength { alibi.append(-slopes[h] * Scalar(Swift.abs(i + p.diagonalOffset - j))) }
                }
            }
            bias = bias + Tensor(alibi, shape: [1, p.queryHeads, p.queryLength, p.keyLength], device: p.device)
        }
        if let mask = p.additiveMask { bias = bias + mask }
        return bias
    }

    /// Z/(1 − p) for the dropout mask the flash kernels regenerate from the same seed.
    private func dropoutScale<Scalar: TensorScalar>(_ p: AttentionProblem<Scalar>) -> Tensor<Scalar> {
        let keep = 1 / (1 - p.dropoutProbability)
        var values: [Scalar] = []
        values.reserveCapacity(p.batch * p.queryHeads * p.queryLength * p.keyLength)
        for b in 0..<p.batch {
            for h in 0..<p.queryHeads {
                for i in 0..<p.queryLength {
                    for j in 0..<p.keyLength { values.append(p.keeps(batch: b, head: h, row: i, column: j) ? keep : 0) }
                }
            }
        }
        return Tensor(values, shape: [p.batch, p.queryHeads, p.queryLength, p.keyLength], device: p.device)
    }

    /// log Σ_j exp(s_ij) per row, −∞ for a row with no visible key.
    private func rowLogSumExp<Scalar: TensorScalar>(_ scores: Tensor<Scalar>) -> Tensor<Scalar> {
        let rowMax = scores.max(axis: -1, keepDims: true)
        let finiteMax = Tensor(rowMax.scalars.map { $0.isFinite ? $0 : 0 }, shape: rowMax.shape, device: rowMax.device)
        return ((scores - finiteMax).exp().sum(axis: -1, keepDims: true).log() + finiteMax).squeeze(-1)
    }
}
