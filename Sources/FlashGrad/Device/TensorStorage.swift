/// Where one device's buffers come from and go back to. Every buffer on a device goes through its
/// allocator, tensors and kernel scratch alike, so that its statistics count everything.
protocol DeviceAllocator: AnyObject, Sendable {
    /// An address the device's backend understands, for `bytes` bytes (at least 1).
    func allocate(bytes: Int) -> UInt
    func release(_ address: UInt, bytes: Int)
    var statistics: MemoryStatistics { get }
    func resetPeak()
    func emptyCache()
}

/// A flat buffer of scalars on one device, shared by a tensor and its views and released to the
/// device's allocator when the last of them goes.
///
/// Its address means something only to the backend of its device; everything above the backends
/// sees tensors and layouts.
final class TensorStorage<Scalar: TensorScalar> {
    let device: Device
    let count: Int
    /// A host address on the CPU, a device address elsewhere.
    let address: UInt
    private let allocator: DeviceAllocator

    /// Uninitialised storage for `count` scalars on `backend`'s device.
    init(count: Int, backend: Backend) {
        self.count = count
        device = backend.device
        allocator = backend.allocator
        address = allocator.allocate(bytes: Swift.max(count, 1) * MemoryLayout<Scalar>.stride)
    }

    deinit { allocator.release(address, bytes: Swift.max(count, 1) * MemoryLayout<Scalar>.stride) }
}

/// How a tensor's elements sit in its storage: sizes, steps between elements along each axis (0 on
/// broadcast axes) and the position of the first element, all in elements.
struct Layout: Equatable {
    let shape: [Int]
    let strides: [Int]
    let offset: Int

    init(shape: [Int], strides: [Int], offset: Int = 0) {
        self.shape = shape
        self.strides = strides
        self.offset = offset
    }

    /// Row-major and dense, starting at `offset`.
    static func contiguous(_ shape: [Int], offset: Int = 0) -> Layout {
        Layout(shape: shape, strides: Shape.contiguousStrides(shape), offset: offset)
    }

    var count: Int { Shape.count(shape) }
    var rank: Int { shape.count }
    var isContiguous: Bool { strides == Shape.contiguousStrides(shape) }
    /// Whether the elements fill `count` consecutive positions from `offset`, in whatever order
    /// (a permutation of a contiguous layout, as ``Tensor/uninitialized(_:on:orderedLike:)`` makes).
    var isDense: Bool {
        // Axes by increasing stride: each must step over exactly the elements of the ones before it.
        var covered = 1
        for (size, stride) in zip(shape, strides).filter({ $0.0 > 1 }).sorted(by: { $0.1 < $1.1 }) {
            if stride != covered { return false }
            covered *= size
        }
        return true
    }
}

/// What a kernel is handed of a tensor: its storage and the layout of the view.
struct BufferView<Scalar: TensorScalar> {
    let storage: TensorStorage<Scalar>
    let layout: Layout

    init(_ storage: TensorStorage<Scalar>, _ layout: Layout) {
        self.storage = storage
        self.layout = layout
    }

    var count: Int { layout.count }
}
