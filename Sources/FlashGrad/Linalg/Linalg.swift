/// Differentiable linear algebra through LAPACKE, on single [n, n] matrices.
extension Tensor {
    /// X with A·X = B (`self` is A [n, n], `rhs` is B [n, k] or [n]), by LU with partial pivoting.
    public func solve(_ rhs: Tensor) -> Tensor {
        precondition(rank == 2 && shape[0] == shape[1], "solve: A must be square [n, n], got shape \(shape)")
        let n = shape[0]
        precondition((rhs.rank == 1 || rhs.rank == 2) && rhs.shape[0] == n,
                     "solve: B must be [\(n)] or [\(n), k] for A of shape \(shape), got \(rhs.shape)")
        let columns = rhs.rank == 1 ? 1 : rhs.shape[1]
        let factors = copy(), solution = rhs.copy()
        let info = Scalar.luSolve(n: n, nrhs: columns, a: factors.basePointer, b: solution.basePointer)
        precondition(info == 0, "solve: matrix of shape \(shape) is singular (LAPACK gesv info \(info))")
        let a = detach(), x = solution.detach()
        return Tensor.record(solution, op: "solve", inputs: [self, rhs]) { gradient in
            // X = A⁻¹B  ⇒  dB = A⁻ᵀ·dX,  dA = −dB·Xᵀ
            let dB = a.transposed().solve(gradient)
            let dA = rhs.rank == 1 ? -(dB.unsqueeze(1).matmul(x.unsqueeze(0))) : -(dB.matmul(x.transposed()))
            return [dA, dB]
        }
    }

    /// Lower-triangular L with L·Lᵀ = A for a symmetric positive-definite A (only its lower triangle is read).
    public func cholesky() -> Tensor {
        precondition(rank == 2 && shape[0] == shape[1], "cholesky: A must be square [n, n], got shape \(shape)")
        let n = shape[0]
        let factor = copy()
        let info = Scalar.choleskyFactor(n: n, a: factor.basePointer)
        precondition(info == 0, "cholesky: matrix of shape \(shape) is not positive definite (LAPACK potrf info \(info))")
        for row in 0..<n { for column in (row + 1)..<Swift.max(row + 1, n) { factor.basePointer[row * n + column] = 0 } }
        let lower = factor.detach()
        return Tensor.record(factor, op: "cholesky", inputs: [self]) { gradient in
            // dA = ½·L⁻ᵀ·Φ(Lᵀ·dL)·L⁻¹ symmetrised, where Φ keeps the lower triangle and halves the diagonal.
            let phi = lower.transposed().matmul(gradient).copy()
            for row in 0..<n {
                phi.basePointer[row * n + row] *= 0.5
                for column in (row + 1)..<Swift.max(row + 1, n) { phi.basePointer[row * n + column] = 0 }
            }
            // S = L⁻ᵀ·Φ, then S·L⁻¹, each by a triangular solve.
            Scalar.triangularSolve(left: true, lower: true, transA: true, m: n, n: n, a: lower.basePointer, lda: n,
                                   b: phi.basePointer, ldb: n)
            Scalar.triangularSolve(left: false, lower: true, transA: false, m: n, n: n, a: lower.basePointer, lda: n,
                                   b: phi.basePointer, ldb: n)
            return [(phi + phi.transposed()) * 0.5]
        }
    }

    /// A [rows, columns] matrix with orthonormal columns (or rows, when wider than tall) scaled by
    /// `gain`, from the QR factorisation of a normal matrix (Saxe et al., as `torch.nn.init.orthogonal_`).
    public static func orthogonal(_ rows: Int, _ columns: Int, gain: Scalar = 1, generator: RandomGenerator = .shared) -> Tensor {
        let tall = rows >= columns
        let m = tall ? rows : columns, n = tall ? columns : rows
        let q = Tensor.normal([m, n], generator: generator)
        let info = Scalar.thinQ(m: m, n: n, a: q.basePointer)
        precondition(info == 0, "orthogonal: LAPACK QR failed (info \(info))")
        let result = tall ? q : q.transposed().copy()
        return result * gain
    }
}
