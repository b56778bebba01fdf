/// Memory-efficient exact attention (FlashAttention-2 on the CPU): memory grows linearly with the
/// sequence length. Supports every ``AttentionFeature``. See ``FlashAttentionKernels``.
public struct FlashAttention: AttentionImplementation {
    public init() {}

    public var name: String { "flash" }

    public var supportedFeatures: Set<AttentionFeature> { Set(AttentionFeature.allCases) }

    public func compute<Scalar: TensorScalar>(query: Tensor<Scalar>, key: Tensor<Scalar>, value: Tensor<Scalar>,
                                              options: AttentionOptions<Scalar>, returnLogSumExp: Bool) -> AttentionResult<Scalar> {
        let problem = AttentionProblem<Scalar>(queryShape: query.shape, keyShape: key.shape, valueShape: value.shape, options: options)
        // The kernels read heads through strides: only rows must be contiguous (no copy for [B, N, H, D] views).
        let q = query.withContiguousRows(), k = key.withContiguousRows(), v = value.withContiguousRows()
        // The forward writes every element of both (zeros and −∞ for fully masked rows): no fill.
        let outputShape = [problem.batch, problem.queryHeads, problem.queryLength, problem.valueDim]
        let output = Tensor<Scalar>(storage: TensorStorage(count: Shape.count(outputShape)), shape: outputShape)
        let logSumExpShape = [problem.batch, problem.queryHeads, problem.queryLength]
        let logSumExp = Tensor<Scalar>(storage: TensorStorage(count: Shape.count(logSumExpShape)), shape: logSumExpShape)
        FlashAttentionKernels.forward(problem, query: HeadMatrices(q), key: HeadMatrices(k), value: HeadMatrices(v),
                                      output: output.basePointer, logSumExp: logSumExp.basePointer)
        let savedOutput = output.detach(), savedLogSumExp = logSumExp.detach()
        let recorded = Tensor.record(output, op: "flashAttention", inputs: [query, key, value]) { gradient in
            let dO = gradient.contiguousData()
            let dQ = Tensor<Scalar>.zeros([problem.batch, problem.queryHeads, problem.queryLength, problem.headDim])
            let dK = Tensor<Scalar>.zeros([problem.batch, problem.keyValueHeads, problem.keyLength, problem.headDim])
            let dV = Tensor<Scalar>.zeros([problem.batch, problem.keyValueHeads, problem.keyLength, problem.valueDim])
            FlashAttentionKernels.backward(problem, query: HeadMatrices(q), key: HeadMatrices(k), value: HeadMatrices(v),
                                           output: savedOutput.basePointer, outputGradient: dO.basePointer,
                                           logSumExp: savedLogSumExp.basePointer, queryGradient: dQ.basePointer,
                                           keyGradient: dK.basePointer, valueGradient: dV.basePointer)
            return [dQ, dK, dV]
        }
        return AttentionResult(output: recorded, logSumExp: returnLogSumExp ? savedLogSumExp : nil)
    }
}

extension Tensor {
    /// Outside the graph: this tensor if its last axis is contiguous and rows don't overlap (what
    /// the tile kernels need of a matrix), otherwise a contiguous copy.
    func withContiguousRows() -> Tensor {
        let last = rank - 1
        if rank >= 2 && strides[last] == 1 && strides[last - 1] >= shape[last] { return detach() }
        return contiguousData().detach()
    }
}
