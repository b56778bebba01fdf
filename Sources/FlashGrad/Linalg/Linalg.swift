/// Differentiable linear algebra through the backend's LAPACK factorizations, on single [n, n] matrices.
extension Tensor {
    /// X with A·X = B (`self` is A [n, n], `rhs` is B [n, k] or [n]), by LU with partial pivoting.
    public func solve(_ rhs: Tensor) -> Tensor {
        require(rank == 2 && shape[0] == shape[1], "solve: A must be square [n, n], got shape \(shape)")
        checkSameDevice(rhs, op: "solve")
        let n = shape[0]
        require((rhs.rank == 1 || rhs.rank == 2) && rhs.shape[0] == n,
                     "solve: B must be [\(n)] or [\(n), k] for A of shape \(shape), got \(rhs.shape)")
        let columns = rhs.rank == 1 ? 1 : rhs.shape[1]
        let factors = copy(), solution = rhs.copy()
        let info = backend.luSolve(factors.view, solution.view, n: n, columns: columns)
        require(info == 0, "solve: matrix of shape \(shape) is singular (LAPACK gesv info \(info))")
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
        require(rank == 2 && shape[0] == shape[1], "cholesky: A must be square [n, n], got shape \(shape)")
        let n = shape[0]
        let factors = copy()
        let info = backend.choleskyFactor(factors.view, n: n)
        require(info == 0, "cholesky: matrix of shape \(shape) is not positive definite (LAPACK potrf info \(info))")
        // LAPACK leaves A's upper triangle in place: keep the lower one.
        let lower = withoutGradients { factors * Tensor.triangle(n, diagonal: 1, device: device) }
        return Tensor.record(lower, op: "cholesky", inputs: [self]) { gradient in
            // dA = ½·L⁻ᵀ·Φ(Lᵀ·dL)·L⁻¹ symmetrised, where Φ keeps the lower triangle and halves the diagonal.
            let phi = (lower.transposed().matmul(gradient) * Tensor.triangle(n, diagonal: 0.5, device: lower.device)).contiguousData()
            // S = L⁻ᵀ·Φ, then S·L⁻¹, each by a triangular solve.
            lower.backend.triangularSolve(lower.view, phi.view, left: true, lower: true, transposeA: true, m: n, n: n)
            lower.backend.triangularSolve(lower.view, phi.view, left: false, lower: true, transposeA: false, m: n, n: n)
            return [(phi + phi.transposed()) * 0.5]
        }
    }

    /// [n, n] with 1 below the diagonal, `diagonal` on it and 0 above.
    private static func triangle(_ n: Int, diagonal: Scalar, device: Device) -> Tensor {
        Tensor((0..<(n * n)).map { $0 / n > $0 % n ? 1 : ($0 / n == $0 % n ? diagonal : 0) }, shape: [n, n], device: device)
    }

    /// A [rows, columns] matrix with orthonormal columns (or rows, when wider than tall) scaled by
    /// `gain`, from the QR factorisation of a normal matrix (Saxe et al., as `torch.nn.init.orthogonal_`).
    public static func orthogonal(_ rows: Int, _ columns: Int, gain: Scalar = 1, generator: RandomGenerator = .shared,
                                  device: Device? = nil) -> Tensor {
        let tall = rows >= columns
        let m = tall ? rows : columns, n = tall ? columns : rows
        let q = Tensor.normal([m, n], generator: generator, device: device)
        let info = q.backend.thinQ(q.view, m: m, n: n)
        require(info == 0, "orthogonal: LAPACK QR failed (info \(info))")
        let result = tall ? q : q.transposed().copy()
        return result * gain
    }
}
