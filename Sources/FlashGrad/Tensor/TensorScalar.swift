import RealModule

/// The element types a ``Tensor`` can hold: `Float` for training, `Double` for gradient checks.
///
/// One generic implementation serves both; what the precision changes in the CPU kernels (BLAS and
/// LAPACK routines, SIMD vectors) is in ``CPUScalar``.
public protocol TensorScalar: Real, BinaryFloatingPoint, CPUScalar, Codable, CustomStringConvertible
where RawSignificand: FixedWidthInteger {
    /// Name used in descriptions and in safetensors headers (`F32`, `F64`).
    static var dtypeName: String { get }
}

extension Float: TensorScalar {
    public static var dtypeName: String { "F32" }
}

extension Double: TensorScalar {
    public static var dtypeName: String { "F64" }
}
