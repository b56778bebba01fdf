import CFlashKernels
import COpenBLAS

/// What the CPU kernels need of a precision: its SIMD vector (the one policy for vector width of the
/// Swift loops: 16 Floats or 8 Doubles), its BLAS and LAPACK routines, and its vectorised
/// exponential and maximum (for Float the C kernels of `CFlashKernels`, chosen per CPU at run time;
/// libm for Double).
public protocol CPUScalar: SIMDScalar, Hashable, Codable {
    /// The unit of the register-blocked and vectorised loops.
    associatedtype Vector: SIMD where Vector.Scalar == Self

    /// C ← α·op(A)·op(B) + β·C, row-major.
    static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Self,
        a: UnsafePointer<Self>, lda: Int, b: UnsafePointer<Self>, ldb: Int,
        beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int)

    /// Solves op(A)·X = B or X·op(A) = B in place for triangular A (row-major).
    static func triangularSolve(
        left: Bool, lower: Bool, transA: Bool, m: Int, n: Int,
        a: UnsafePointer<Self>, lda: Int, b: UnsafeMutablePointer<Self>, ldb: Int)

    /// LU solve of A·X = B in place; returns LAPACK's info (0 on success).
    static func luSolve(n: Int, nrhs: Int, a: UnsafeMutablePointer<Self>, b: UnsafeMutablePointer<Self>) -> Int

    /// Cholesky factorisation in place (lower); returns LAPACK's info.
    static func choleskyFactor(n: Int, a: UnsafeMutablePointer<Self>) -> Int

    /// Householder QR of an m×n matrix (m ≥ n) in place; `a` becomes the thin Q. Returns info.
    static func thinQ(m: Int, n: Int, a: UnsafeMutablePointer<Self>) -> Int

    /// x[i] ← e^(x[i] − shift) over a contiguous run; returns Σ of the results.
    static func exponentiate(_ x: UnsafeMutablePointer<Self>, count: Int, subtracting shift: Self) -> Self

    /// The largest of `count` values (−∞ for none).
    static func maximum(_ x: UnsafePointer<Self>, count: Int) -> Self
}

private func cblasTranspose(_ t: Bool) -> CBLAS_TRANSPOSE { t ? CblasTrans : CblasNoTrans }

extension Float: CPUScalar {
    public typealias Vector = SIMD16<Float>

    public static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        cblas_sgemm(CblasRowMajor, cblasTranspose(transA), cblasTranspose(transB),
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    public static func triangularSolve(
        left: Bool, lower: Bool, transA: Bool, m: Int, n: Int,
        a: UnsafePointer<Float>, lda: Int, b: UnsafeMutablePointer<Float>, ldb: Int
    ) {
        cblas_strsm(CblasRowMajor, left ? CblasLeft : CblasRight, lower ? CblasLower : CblasUpper,
                    cblasTranspose(transA), CblasNonUnit, Int32(m), Int32(n), 1, a, Int32(lda), b, Int32(ldb))
    }

    public static func luSolve(n: Int, nrhs: Int, a: UnsafeMutablePointer<Float>, b: UnsafeMutablePointer<Float>) -> Int {
        var pivots = [Int32](repeating: 0, count: n)
        return Int(LAPACKE_sgesv(LAPACK_ROW_MAJOR, Int32(n), Int32(nrhs), a, Int32(n), &pivots, b, Int32(nrhs)))
    }

    public static func choleskyFactor(n: Int, a: UnsafeMutablePointer<Float>) -> Int {
        Int(LAPACKE_spotrf(LAPACK_ROW_MAJOR, Int8(UInt8(ascii: "L")), Int32(n), a, Int32(n)))
    }

    public static func thinQ(m: Int, n: Int, a: UnsafeMutablePointer<Float>) -> Int {
        var tau = [Float](repeating: 0, count: n)
        let info = LAPACKE_sgeqrf(LAPACK_ROW_MAJOR, Int32(m), Int32(n), a, Int32(n), &tau)
        if info != 0 { return Int(info) }
        return Int(LAPACKE_sorgqr(LAPACK_ROW_MAJOR, Int32(m), Int32(n), Int32(n), a, Int32(n), &tau))
    }
}

extension Double: CPUScalar {
    public typealias Vector = SIMD8<Double>

    public static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Double,
        a: UnsafePointer<Double>, lda: Int, b: UnsafePointer<Double>, ldb: Int,
        beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int
    ) {
        cblas_dgemm(CblasRowMajor, cblasTranspose(transA), cblasTranspose(transB),
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    public static func triangularSolve(
        left: Bool, lower: Bool, transA: Bool, m: Int, n: Int,
        a: UnsafePointer<Double>, lda: Int, b: UnsafeMutablePointer<Double>, ldb: Int
    ) {
        cblas_dtrsm(CblasRowMajor, left ? CblasLeft : CblasRight, lower ? CblasLower : CblasUpper,
                    cblasTranspose(transA), CblasNonUnit, Int32(m), Int32(n), 1, a, Int32(lda), b, Int32(ldb))
    }

    public static func luSolve(n: Int, nrhs: Int, a: UnsafeMutablePointer<Double>, b: UnsafeMutablePointer<Double>) -> Int {
        var pivots = [Int32](repeating: 0, count: n)
        return Int(LAPACKE_dgesv(LAPACK_ROW_MAJOR, Int32(n), Int32(nrhs), a, Int32(n), &pivots, b, Int32(nrhs)))
    }

    public static func choleskyFactor(n: Int, a: UnsafeMutablePointer<Double>) -> Int {
        Int(LAPACKE_dpotrf(LAPACK_ROW_MAJOR, Int8(UInt8(ascii: "L")), Int32(n), a, Int32(n)))
    }

    public static func thinQ(m: Int, n: Int, a: UnsafeMutablePointer<Double>) -> Int {
        var tau = [Double](repeating: 0, count: n)
        let info = LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, Int32(m), Int32(n), a, Int32(n), &tau)
        if info != 0 { return Int(info) }
        return Int(LAPACKE_dorgqr(LAPACK_ROW_MAJOR, Int32(m), Int32(n), Int32(n), a, Int32(n), &tau))
    }
}

extension Float {
    public static func exponentiate(_ x: UnsafeMutablePointer<Float>, count: Int, subtracting shift: Float) -> Float {
        flashgrad_exponentiate_f32(x, count, shift)
    }

    public static func maximum(_ x: UnsafePointer<Float>, count: Int) -> Float { flashgrad_maximum_f32(x, count) }
}

extension Double {
    public static func exponentiate(_ x: UnsafeMutablePointer<Double>, count: Int, subtracting shift: Double) -> Double {
        var total: Double = 0
        for i in 0..<count {
            x[i] = Double.exp(x[i] - shift)
            total += x[i]
        }
        return total
    }

    public static func maximum(_ x: UnsafePointer<Double>, count: Int) -> Double {
        var result = -Double.infinity
        for i in 0..<count {
            if x[i].isNaN { return .nan }
            if x[i] > result { result = x[i] }
        }
        return result
    }
}
