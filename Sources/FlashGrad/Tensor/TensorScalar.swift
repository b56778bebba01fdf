import COpenBLAS
import RealModule

/// The element types a ``Tensor`` can hold: `Float` for training, `Double` for gradient checks.
///
/// One generic implementation serves both; the requirements below are the few places where the
/// precision picks a different BLAS or LAPACK routine or SIMD vector.
public protocol TensorScalar: Real, BinaryFloatingPoint, SIMDScalar, Codable, CustomStringConvertible
where RawSignificand: FixedWidthInteger {
    /// Name used in descriptions and in safetensors headers (`F32`, `F64`).
    static var dtypeName: String { get }

    /// The widest SIMD vector of this scalar that one AVX-512 register holds (16 Floats, 8 Doubles):
    /// the unit of the register-blocked tile kernels.
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
}

private func cblasTranspose(_ t: Bool) -> CBLAS_TRANSPOSE { t ? CblasTrans : CblasNoTrans }

extension Float: TensorScalar {
    public typealias Vector = SIMD16<Float>
    public static var dtypeName: String { "F32" }

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

extension Double: TensorScalar {
    public typealias Vector = SIMD8<Double>
    public static var dtypeName: String { "F64" }

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
