/// The reference: attention from ordinary differentiable ops (matmul, masks, softmax, matmul).
/// It materialises the [B, Hq, Nq, Nk] scores, so memory grows with the square of the length.
public struct NaiveAttention: AttentionImplementation {
    public init() {}

    public var name: String { "naive" }

    public var supportedFeatures: Set<AttentionFeature> { Set(AttentionFeature.allCases) }

    public func compute<Scalar: TensorScalar>(query: Tensor<Scalar>, key: Tensor<Scalar>, value: Tensor<Scalar>,
                                              options: AttentionOptions<Scalar>, returnLogSumExp: Bool) -> AttentionResult<Scalar> {
        let p = AttentionProblem<Scalar>(queryShape: query.shape, keyShape: key.shape, valueShape: value.shape, options: options)
        // Grouped heads: view Q as [B, Hkv, G, Nq, D] so each K/V head serves its group by broadcasting.
        let groupedQuery = query.reshape([p.batch, p.keyValueHeads, p.groupSize, p.queryLength, p.headDim])
        var scores = groupedQuery.matmul(key.unsqueeze(2).transposed()) * p.scale
        if let cap = p.softcap { scores = (scores / cap).tanh() * cap }
        scores = scores.reshape([p.batch, p.queryHeads, p.queryLength, p.keyLength]) + scoreBias(p)
        var probabilities = scores.softmax(axis: -1)
        if p.dropoutProbability > 0 { probabilities = probabilities * dropoutScale(p) }
        let output = probabilities.reshape([p.batch, p.keyValueHeads, p.groupSize, p.queryLength, p.keyLength])
            .matmul(value.unsqueeze(2))
            .reshape([p.batch, p.queryHeads, p.queryLength, p.valueDim])
        let logSumExp = returnLogSumExp ? withoutGradients { rowLogSumExp(scores) } : nil
        return AttentionResult(output: output, logSumExp: logSumExp)
    }

    /// ALiBi, the additive mask and −∞ where a key is not visible, as one [B, Hq, Nq, Nk] tensor.
    private func scoreBias<Scalar: TensorScalar>(_ p: AttentionProblem<Scalar>) -> Tensor<Scalar> {
        let bias = Tensor<Scalar>.zeros([p.batch, p.queryHeads, p.queryLength, p.keyLength])
        let mask = p.additiveMask?.scalars
        var flat = 0
        var values = bias.scalars
        for b in 0..<p.batch {
            for h in 0..<p.queryHeads {
                for i in 0..<p.queryLength {
                    let visible = p.visibleKeys(batch: b, row: i)
                    for j in 0..<p.keyLength {
                        var term: Scalar = mask?[flat] ?? 0
                        if let slopes = p.alibiSlopes { term -= slopes[h] * Scalar(Swift.abs(i + p.diagonalOffset - j)) }
                        if !visible.contains(j) || (p.paddedKeys?[b * p.keyLength + j] ?? false) { term = -.infinity }
                        values[flat] = term
                        flat += 1
                    }
                }
            }
        }
        return Tensor(values, shape: bias.shape)
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
        return Tensor(values, shape: [p.batch, p.queryHeads, p.queryLength, p.keyLength])
    }

    /// log Σ_j exp(s_ij) per row, −∞ for a row with no visible key.
    private func rowLogSumExp<Scalar: TensorScalar>(_ scores: Tensor<Scalar>) -> Tensor<Scalar> {
        let rowMax = scores.max(axis: -1, keepDims: true)
        let finiteMax = Tensor(rowMax.scalars.map { $0.isFinite ? $0 : 0 }, shape: rowMax.shape)
        return ((scores - finiteMax).exp().sum(axis: -1, keepDims: true).log() + finiteMax).squeeze(-1)
    }
}
