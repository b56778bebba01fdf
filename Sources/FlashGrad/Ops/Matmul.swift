/// Matrix products through BLAS gemm, with batch broadcasting.
extension Tensor {
    private func matrixOperand() -> MatrixOperand<Scalar> {
        let r = rank, rows = shape[r - 2], columns = shape[r - 1]
        if strides[r - 1] == 1 && strides[r - 2] >= Swift.max(1, columns) {
            return MatrixOperand(tensor: self, transposed: false, leadingDimension: strides[r - 2])
        }
        if strides[r - 2] == 1 && strides[r - 1] >= Swift.max(1, rows) {
            return MatrixOperand(tensor: self, transposed: true, leadingDimension: strides[r - 1])
        }
        let copy = contiguousData()
        return MatrixOperand(tensor: copy, transposed: false, leadingDimension: Swift.max(1, columns))
    }

    /// Matrix product with NumPy semantics: [..., m, k] × [..., k, n] → [..., m, n], batch axes
    /// broadcast; a 1-D operand is treated as a row (left) or column (right) vector.
    public func matmul(_ other: Tensor) -> Tensor {
        precondition(rank >= 1 && other.rank >= 1, "matmul: scalars are not allowed (shapes \(shape) and \(other.shape))")
        if rank == 1 { return unsqueeze(0).matmul(other).squeeze(-2) }
        if other.rank == 1 { return matmul(other.unsqueeze(-1)).squeeze(-1) }
        let m = shape[rank - 2], k = shape[rank - 1], n = other.shape[other.rank - 1]
        precondition(other.shape[other.rank - 2] == k,
                     "matmul: inner sizes differ: \(shape) × \(other.shape) (\(k) vs \(other.shape[other.rank - 2]))")
        let batch = Shape.broadcast(Array(shape.dropLast(2)), Array(other.shape.dropLast(2)), op: "matmul")
        let a = expandedView(batch + [m, k]).matrixOperand(), b = other.expandedView(batch + [k, n]).matrixOperand()
        let out = Tensor(storage: TensorStorage(count: Shape.count(batch) * m * n), shape: batch + [m, n])
        if k == 0 { MemoryKernels.fill(out.basePointer, with: 0, count: out.count) }
        if k > 0 && m > 0 && n > 0 {
            GemmKernels.batched(batch: batch, m: m, n: n, k: k,
                                a: .init(tensor: a.tensor, transposed: a.transposed, leadingDimension: a.leadingDimension),
                                b: .init(tensor: b.tensor, transposed: b.transposed, leadingDimension: b.leadingDimension),
                                into: out.basePointer)
        }
        let lhs = detach(), rhs = other.detach()
        return Tensor.record(out, op: "matmul", inputs: [self, other]) { gradient in
            // C = A·B  ⇒  dA = dC·Bᵀ,  dB = Aᵀ·dC, each summed over the axes it was broadcast on.
            [self.requiresGrad ? gradient.matmul(rhs.transposed()).sum(toShape: lhs.shape) : nil,
             other.requiresGrad ? lhs.transposed().matmul(gradient).sum(toShape: rhs.shape) : nil]
        }
    }
}
