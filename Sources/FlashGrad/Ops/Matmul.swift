import Foundation

/// How Float matrix products may round on devices with tensor cores, as PyTorch's
/// `torch.set_float32_matmul_precision`. The CPU always computes in FP32.
public enum Float32MatmulPrecision: Sendable {
    /// Exact FP32 (the default).
    case highest
    /// TF32 tensor cores on CUDA: inputs rounded to a 10-bit mantissa, FP32 accumulation.
    case high

    private static let lock = NSLock()
    nonisolated(unsafe) private static var setting = Float32MatmulPrecision.highest

    /// The process-wide setting.
    public static var current: Float32MatmulPrecision {
        get { lock.lock(); defer { lock.unlock() }; return setting }
        set { lock.lock(); setting = newValue; lock.unlock() }
    }
}

/// Matrix products through the backend's batched gemm, with batch broadcasting.
extension Tensor {
    /// The last two axes as a gemm operand: as stored, transposed, or (neither) a contiguous copy.
    private func matrixOperand() -> MatrixOperand<Scalar> {
        let r = rank, rows = shape[r - 2], columns = shape[r - 1]
        if strides[r - 1] == 1 && strides[r - 2] >= Swift.max(1, columns) {
            return MatrixOperand(view: view, transposed: false, leadingDimension: strides[r - 2])
        }
        if strides[r - 2] == 1 && strides[r - 1] >= Swift.max(1, rows) {
            return MatrixOperand(view: view, transposed: true, leadingDimension: strides[r - 1])
        }
        return MatrixOperand(view: contiguousData().view, transposed: false, leadingDimension: Swift.max(1, columns))
    }

    /// A 2-D view whose columns are contiguous: the transpose of a row-major matrix.
    var isTransposedMatrix: Bool { rank == 2 && shape[0] > 1 && shape[1] > 1 && strides == [1, shape[0]] }

    /// Matrix product with NumPy semantics: [..., m, k] × [..., k, n] → [..., m, n], batch axes
    /// broadcast; a 1-D operand is treated as a row (left) or column (right) vector.
    public func matmul(_ other: Tensor) -> Tensor {
        require(rank >= 1 && other.rank >= 1, "matmul: scalars are not allowed (shapes \(shape) and \(other.shape))")
        checkSameDevice(other, op: "matmul")
        if rank == 1 { return unsqueeze(0).matmul(other).squeeze(-2) }
        if other.rank == 1 { return matmul(other.unsqueeze(-1)).squeeze(-1) }
        let m = shape[rank - 2], k = shape[rank - 1], n = other.shape[other.rank - 1]
        require(other.shape[other.rank - 2] == k,
                     "matmul: inner sizes differ: \(shape) × \(other.shape) (\(k) vs \(other.shape[other.rank - 2]))")
        let batch = Shape.broadcast(Array(shape.dropLast(2)), Array(other.shape.dropLast(2)), op: "matmul")
        let out = Tensor.uninitialized(batch + [m, n], on: device)
        if k == 0 { backend.fill(out.view, with: 0) }
        if k > 0 && m > 0 && n > 0 {
            backend.matmul(batch: batch, m: m, n: n, k: k, a: expandedView(batch + [m, k]).matrixOperand(),
                           b: other.expandedView(batch + [k, n]).matrixOperand(), into: out.view)
        }
        let lhs = detach(), rhs = other.detach()
        return Tensor.record(out, op: "matmul", inputs: [self, other]) { gradient in
            // C = A·B  ⇒  dA = dC·Bᵀ,  dB = Aᵀ·dC, each summed over the axes it was broadcast on. A
            // transposed matrix operand (Wᵀ in Linear) gets its gradient as (dCᵀ·A)ᵀ or (B·dCᵀ)ᵀ, in its own
            // memory order, so that the parameter behind it receives a contiguous gradient, not a copy.
            [self.requiresGrad ? (lhs.isTransposedMatrix && rhs.rank == 2 ? rhs.matmul(gradient.transposed()).transposed()
                                                        : gradient.matmul(rhs.transposed()).sum(toShape: lhs.shape)) : nil,
             other.requiresGrad ? (rhs.isTransposedMatrix && lhs.rank == 2 ? gradient.transposed().matmul(lhs).transposed()
                                                          : lhs.transposed().matmul(gradient).sum(toShape: rhs.shape)) : nil]
        }
    }
}
