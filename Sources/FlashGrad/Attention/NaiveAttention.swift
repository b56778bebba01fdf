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
        if let bias = additiveBias(p) { scores = scores + bias }
        // Hidden keys are replaced, not added −∞ to: a NaN or ∞ in a key reaches only the rows that see it.
        if let hidden = hiddenKeys(p) { scores = scores.maskedFill(hidden, -.infinity) }
        // A fully masked row gives 0 (softmax's documented choice for a row of −∞); NaN spreads over its row.
        var probabilities = scores.softmax(axis: -1)
        if p.dropoutProbability > 0 { probabilities = probabilities * dropoutScale(p) }
        let output = probabilities.reshape([p.batch, p.keyValueHeads, p.groupSize, p.queryLength, p.keyLength])
            .matmul(value.unsqueeze(2))
            .reshape([p.batch, p.queryHeads, p.queryLength, p.valueDim])
        let logSumExp = returnLogSumExp ? withoutGradients { rowLogSumExp(scores) } : nil
        return AttentionResult(output: output, logSumExp: logSumExp)
    }

    /// log Σ_j exp(s_ij) per row, −∞ for a row with no visible key: log Σ exp(s − m) + m with m the
    /// row max made finite (a row of −∞ then sums to 0, and NaN stays NaN), without reading the device.
    private func rowLogSumExp<Scalar: TensorScalar>(_ scores: Tensor<Scalar>) -> Tensor<Scalar> {
        let shift = scores.max(axis: -1, keepDims: true).clamp(min: -Scalar.greatestFiniteMagnitude)
        return ((scores - shift).exp().sum(axis: -1, keepDims: true).log() + shift).squeeze(-1)
    }

    /// `true` where a key is not visible by position or padding: [B, 1, Nq, Nk]; nil when all are.
    private func hiddenKeys<Scalar: TensorScalar>(_ p: AttentionProblem<Scalar>) -> BoolTensor? {
        guard p.left != Int.max || p.right != Int.max || p.keyLimit.contains(where: { $0 < p.keyLength }) || p.paddedKeys != nil else {
            return nil
        }
        var hidden = [Bool](repeating: true, count: p.batch * p.queryLength * p.keyLength)
        for b in 0..<p.batch {
            for i in 0..<p.queryLength {
                let rowStart = (b * p.queryLength + i) * p.keyLength
                for j in p.visibleKeys(batch: b, row: i) where !(p.paddedKeys?[b * p.keyLength + j] ?? false) { hidden[rowStart + j] = false }
            }
        }
        return BoolTensor(hidden, shape: [p.batch, 1, p.queryLength, p.keyLength])
    }

    /// ALiBi plus the additive mask, broadcastable to [B, Hq, Nq, Nk]; nil without either.
    private func additiveBias<Scalar: TensorScalar>(_ p: AttentionProblem<Scalar>) -> Tensor<Scalar>? {
        var bias = p.additiveMask
        if let slopes = p.alibiSlopes {
            // −slope[h]·|i + Nk − Nq − j|: [1, Hq, Nq, Nk].
            var alibi: [Scalar] = []
            alibi.reserveCapacity(p.queryHeads * p.queryLength * p.keyLength)
            for h in 0..<p.queryHeads {
                for i in 0..<p.queryLength {
                    for j in 0..<p.keyLength { alibi.append(-slopes[h] * Scalar(Swift.abs(i + p.diagonalOffset - j))) }
                }
            }
            let table = Tensor(alibi, shape: [1, p.queryHeads, p.queryLength, p.keyLength], device: p.device)
            bias = bias.map { $0 + table } ?? table
        }
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
}
