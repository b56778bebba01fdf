import CFlashKernels

/// A register-blocked matrix product for the tiles of FlashAttention: B is read in place row by row
/// and A element by element through two strides, so neither a transposed operand (Pᵀ, dSᵀ) nor a
/// tile of scores needs the packing copy a BLAS call makes. The kernel is C
/// (`Sources/CFlashKernels`), compiled for AVX-512, AVX2 + FMA and the baseline and chosen at run
/// time (``CPUKernelLevel``), since Swift cannot compile one function for several instruction sets.
enum TileGemm {
    /// C[m×n] = α·A[m×k]·B[k×n], or C += α·A·B when `accumulate`. A[i, p] is
    /// `a[i·aRowStride + p·aColumnStride]`; B's rows are contiguous, `ldb` apart; C's rows `ldc` apart.
    @inline(__always)
    static func multiply<T: TensorScalar>(m: Int, n: Int, k: Int, alpha: T,
                                          a: UnsafePointer<T>, aRowStride: Int, aColumnStride: Int,
                                          b: UnsafePointer<T>, ldb: Int,
                                          c: UnsafeMutablePointer<T>, ldc: Int, accumulate: Bool) {
        if T.self == Float.self {
            flashgrad_tile_gemm_f32(m, n, k, unsafeBitCast(alpha, to: Float.self), UnsafeRawPointer(a).assumingMemoryBound(to: Float.self), aRowStride, aColumnStride,
                                    UnsafeRawPointer(b).assumingMemoryBound(to: Float.self), ldb,
                                    UnsafeMutableRawPointer(c).assumingMemoryBound(to: Float.self), ldc, accumulate ? 1 : 0)
        } else {
            flashgrad_tile_gemm_f64(m, n, k, unsafeBitCast(alpha, to: Double.self), UnsafeRawPointer(a).assumingMemoryBound(to: Double.self), aRowStride, aColumnStride,
                                    UnsafeRawPointer(b).assumingMemoryBound(to: Double.self), ldb,
                                    UnsafeMutableRawPointer(c).assumingMemoryBound(to: Double.self), ldc, accumulate ? 1 : 0)
        }
    }
}
