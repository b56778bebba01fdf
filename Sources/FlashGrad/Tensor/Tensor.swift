/// An N-dimensional, row-major array of `Float` or `Double` that records the operations applied to
/// it, so that ``backward(_:)`` can compute gradients.
///
/// A tensor is a view (shape, strides, offset) on shared storage: `reshape`, `permute`, `expand` and
/// slicing make views without copying, and kernels ask for a contiguous copy only when they need one.
public final class Tensor<Scalar: TensorScalar> {
    /// Size of each axis.
    public let shape: [Int]
    let strides: [Int]
    let offset: Int
    let storage: TensorStorage<Scalar>

    /// Whether gradients flow to this tensor. Leaves set it; results of ops inherit it.
    public var requiresGrad: Bool
    /// The gradient accumulated by ``backward(_:)`` on a leaf that requires gradients.
    public var grad: Tensor?
    /// The recorded op that produced this tensor; `nil` for leaves and after the graph is freed.
    var gradientNode: GradientNode<Scalar>?

    init(storage: TensorStorage<Scalar>, shape: [Int], strides: [Int], offset: Int = 0, requiresGrad: Bool = false) {
        precondition(shape.allSatisfy { $0 >= 0 }, "Tensor: negative size in shape \(shape)")
        self.storage = storage
        self.shape = shape
        self.strides = strides
        self.offset = offset
        self.requiresGrad = requiresGrad
    }

    /// A new contiguous tensor that owns `storage`.
    convenience init(storage: TensorStorage<Scalar>, shape: [Int]) {
        self.init(storage: storage, shape: shape, strides: Shape.contiguousStrides(shape))
    }

    /// Creates a tensor from row-major `scalars` with the given `shape`.
    public convenience init(_ scalars: [Scalar], shape: [Int], requiresGrad: Bool = false) {
        precondition(Shape.count(shape) == scalars.count,
                     "Tensor(_:shape:): \(scalars.count) scalars do not fill shape \(shape) (\(Shape.count(shape)) elements)")
        self.init(storage: TensorStorage(scalars), shape: shape)
        self.requiresGrad = requiresGrad
    }

    /// Creates a 1-D tensor from `scalars`.
    public convenience init(_ scalars: [Scalar], requiresGrad: Bool = false) {
        self.init(scalars, shape: [scalars.count], requiresGrad: requiresGrad)
    }

    /// Creates a 0-D tensor holding `scalar`.
    public convenience init(scalar: Scalar, requiresGrad: Bool = false) {
        self.init([scalar], shape: [], requiresGrad: requiresGrad)
    }

    /// Number of elements.
    public var count: Int { Shape.count(shape) }
    /// Number of axes.
    public var rank: Int { shape.count }

    var isContiguous: Bool { strides == Shape.contiguousStrides(shape) }

    /// Pointer to the first element; valid for `count` elements when the tensor is contiguous.
    var basePointer: UnsafeMutablePointer<Scalar> { storage.pointer + offset }

    /// This tensor if it is contiguous, otherwise a contiguous copy; outside the graph.
    func contiguousData() -> Tensor {
        if isContiguous { return self }
        let result = Tensor(storage: TensorStorage(count: count), shape: shape)
        StridedCopy.copy(shape: shape, from: storage.pointer + offset, strides: strides,
                         to: result.storage.pointer, strides: result.strides)
        return result
    }

    /// The elements in row-major order.
    public var scalars: [Scalar] {
        let data = contiguousData()
        // Through the specialised copy kernel: Array(UnsafeBufferPointer) in generic code moves one
        // element at a time through the value witness table.
        return [Scalar](unsafeUninitializedCapacity: count) { buffer, initialized in
            if let base = buffer.baseAddress { MemoryKernels.copy(from: data.basePointer, to: base, count: count) }
            initialized = count
        }
    }

    /// The single element of a one-element tensor.
    public var item: Scalar {
        precondition(count == 1, "item: tensor of shape \(shape) has \(count) elements, expected 1")
        return basePointer[0]
    }

    /// The element at a multi-index.
    public subscript(_ index: Int...) -> Scalar {
        precondition(index.count == rank, "subscript: \(index.count) indices for a tensor of shape \(shape)")
        var position = offset
        for (axis, i) in index.enumerated() {
            precondition(i >= 0 && i < shape[axis], "subscript: index \(i) out of range for axis \(axis) of shape \(shape)")
            position += i * strides[axis]
        }
        return storage.pointer[position]
    }

    /// A tensor sharing this one's data but cut from the graph.
    public func detach() -> Tensor {
        Tensor(storage: storage, shape: shape, strides: strides, offset: offset)
    }

    /// A contiguous copy of the data, cut from the graph.
    public func copy() -> Tensor {
        let result = Tensor(storage: TensorStorage(count: count), shape: shape)
        StridedCopy.copy(shape: shape, from: basePointer, strides: strides,
                         to: result.storage.pointer, strides: result.strides)
        return result
    }

    /// Sets ``requiresGrad`` and returns self, for chaining at creation.
    @discardableResult
    public func requiringGrad(_ flag: Bool = true) -> Tensor {
        requiresGrad = flag
        return self
    }

    /// Overwrites this tensor's elements with `other`'s, in place and outside the graph (for
    /// optimizer updates and loading weights).
    public func assign(_ other: Tensor) {
        precondition(other.shape == shape, "assign: shape \(other.shape) does not match \(shape)")
        StridedCopy.copy(shape: shape, from: other.basePointer, strides: other.strides, to: basePointer, strides: strides)
    }

    /// Clears the accumulated gradient.
    public func zeroGrad() { grad = nil }
}

/// Copies between arbitrarily strided views of the same shape.
enum StridedCopy {
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    static func copy<T: TensorScalar>(shape: [Int], from source: UnsafePointer<T>, strides sourceStrides: [Int],
                                      to destination: UnsafeMutablePointer<T>, strides destinationStrides: [Int]) {
        let total = Shape.count(shape)
        if total == 0 { return }
        guard let inner = shape.last else { destination[0] = source[0]; return }
        let rank = shape.count
        let sInner = sourceStrides[rank - 1], dInner = destinationStrides[rank - 1]
        var index = [Int](repeating: 0, count: rank - 1)
        var sourceOffset = 0, destinationOffset = 0
        for _ in 0..<(total / Swift.max(inner, 1)) {
            if sInner == 1 && dInner == 1 {
                (destination + destinationOffset).update(from: source + sourceOffset, count: inner)
            } else {
                for i in 0..<inner { destination[destinationOffset + i * dInner] = source[sourceOffset + i * sInner] }
            }
            // Advance the outer multi-index like an odometer.
            var axis = rank - 2
            while axis >= 0 {
                index[axis] += 1
                sourceOffset += sourceStrides[axis]
                destinationOffset += destinationStrides[axis]
                if index[axis] < shape[axis] { break }
                sourceOffset -= sourceStrides[axis] * shape[axis]
                destinationOffset -= destinationStrides[axis] * shape[axis]
                index[axis] = 0
                axis -= 1
            }
        }
    }
}
