/// Memory-efficient exact attention (FlashAttention-2): memory grows linearly with the sequence
/// length. Supports every ``AttentionFeature`` on every device: the CPU's kernels are in
/// `Backends/CPU/Kernels/FlashAttentionKernels.swift`, the GPU's in
/// `Backends/CUDA/CUDAFlashAttentionSource.swift` (head dims up to 256 in Float, 128 in Double).
public struct FlashAttention: AttentionImplementation {
    public init() {}

    public var name: String { "flash" }

    public var supportedFeatures: Set<AttentionFeature> { Set(AttentionFeature.allCases) }

    public func limitations<Scalar: TensorScalar>(for problem: AttentionProblem<Scalar>) -> [String] {
        problem.device.backend(for: "flash attention").flashAttentionLimitations(problem)
    }

    public func compute<Scalar: TensorScalar>(query: Tensor<Scalar>, key: Tensor<Scalar>, value: Tensor<Scalar>,
                                              problem: AttentionProblem<Scalar>, returnLogSumExp: Bool) -> AttentionResult<Scalar> {
        let backend = query.backend, device = query.device
        // The kernels read and write heads through strides: only rows must be contiguous, so [B, N, H, D]
        // views (heads split off a projection) go in without a copy, and the output and the gradients
        // come out in their inputs' memory order, so that merging the heads back is no copy either.
        let q = query.withContiguousRows(), k = key.withContiguousRows(), v = value.withContiguousRows()
        // The forward writes every element of both (zeros and −∞ for fully masked rows).
        let output = Tensor<Scalar>.uninitialized([problem.batch, problem.queryHeads, problem.queryLength, problem.valueDim],
                                                  on: device, orderedLike: q)
        let logSumExp = Tensor<Scalar>.uninitialized([problem.batch, problem.queryHeads, problem.queryLength], on: device)
        backend.flashAttentionForward(problem, query: q.view, key: k.view, value: v.view, output: output.view, logSumExp: logSumExp.view)
        let savedOutput = output.detach(), savedLogSumExp = logSumExp.detach()
        let recorded = Tensor.record(output, op: "flashAttention", inputs: [query, key, value]) { gradient in
            let dO = gradient.withContiguousRows()
            // The backward writes every element (the GPU's kernels store each row once; the CPU's zero first).
            let dQ = Tensor<Scalar>.uninitialized(q.shape, on: device, orderedLike: q)
            let dK = Tensor<Scalar>.uninitialized(k.shape, on: device, orderedLike: k)
            let dV = Tensor<Scalar>.uninitialized(v.shape, on: device, orderedLike: v)
            backend.flashAttentionBackward(problem, query: q.view, key: k.view, value: v.view, output: savedOutput.view,
                                           outputGradient: dO.view, logSumExp: savedLogSumExp.view, queryGradient: dQ.view,
                                           keyGradient: dK.view, valueGradient: dV.view)
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
