/// A flat, manually managed buffer of scalars shared by a tensor and its views.
///
/// Kernels read and write it through unsafe pointers; everything above the kernels sees `Tensor`.
final class TensorStorage<Scalar: TensorScalar> {
    let pointer: UnsafeMutablePointer<Scalar>
    let count: Int

    init(count: Int) {
        self.count = count
        pointer = .allocate(capacity: Swift.max(count, 1))
    }

    convenience init(repeating value: Scalar, count: Int) {
        self.init(count: count)
        pointer.initialize(repeating: value, count: count)
    }

    convenience init(_ values: [Scalar]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { pointer.initialize(from: $0.baseAddress!, count: values.count) }
    }

    deinit { pointer.deallocate() }
}
