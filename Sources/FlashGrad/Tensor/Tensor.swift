/// An N-dimensional, row-major array of `Float` or `Double` on one ``Device`` that records the
/// operations applied to it, so that ``backward(_:)`` can compute gradients.
///
/// A tensor is a view (a ``Layout``: shape, strides, offset) on shared storage: `reshape`,
/// `permute`, `expand` and slicing make views without copying, and ops ask for a contiguous copy
/// only when their kernel needs one.
public final class Tensor<Scalar: TensorScalar> {
    /// Storage and layout change together, and only when ``moveData(to:)`` moves a leaf.
    private(set) var storage: TensorStorage<Scalar>
    private(set) var layout: Layout

    /// Whether gradients flow to this tensor. Leaves set it; results of ops inherit it.
    public var requiresGrad: Bool
    /// The gradient accumulated by ``backward(_:)`` on a leaf that requires gradients.
    public var grad: Tensor?
    /// The recorded op that produced this tensor; `nil` for leaves and after the graph is freed.
    var gradientNode: GradientNode<Scalar>?
    /// Called with this leaf once a backward has added its last contribution to ``grad``.
    var gradientReadyHooks: [(Tensor) -> Void] = []

    init(storage: TensorStorage<Scalar>, layout: Layout, requiresGrad: Bool = false) {
        require(layout.shape.allSatisfy { $0 >= 0 }, "Tensor: negative size in shape \(layout.shape)")
        self.storage = storage
        self.layout = layout
        self.requiresGrad = requiresGrad
    }

    /// A contiguous tensor of `shape` on `device` whose elements are not set yet: what an op
    /// allocates for its result before a kernel writes every element.
    static func uninitialized(_ shape: [Int], on device: Device) -> Tensor {
        let backend = device.backend(for: "Tensor")
        return Tensor(storage: TensorStorage(count: Shape.count(shape), backend: backend), layout: .contiguous(shape))
    }

    /// Like ``uninitialized(_:on:)``, but dense in the memory order of `reference`'s axes (by
    /// decreasing stride, as PyTorch's `empty_like` keeps a layout; the last axis stays innermost): a
    /// result or gradient then shares the memory order of the tensor it belongs to, e.g. [B, H, N, D]
    /// heads interleaved as [B, N, H, D].
    static func uninitialized(_ shape: [Int], on device: Device, orderedLike reference: Tensor) -> Tensor {
        require(shape.count == reference.rank && !shape.isEmpty,
                "uninitialized: shape \(shape) and reference of shape \(reference.shape) differ in rank")
        let outer = (0..<(shape.count - 1)).sorted { (reference.strides[$0], $1) > (reference.strides[$1], $0) }
        let order = outer + [shape.count - 1]  // outermost first
        var strides = [Int](repeating: 0, count: shape.count), step = 1
        for axis in order.reversed() {
            strides[axis] = step
            step *= Swift.max(shape[axis], 1)
        }
        let backend = device.backend(for: "Tensor")
        return Tensor(storage: TensorStorage(count: Shape.count(shape), backend: backend), layout: Layout(shape: shape, strides: strides))
    }

    /// Creates a tensor from row-major `scalars` with the given `shape`, on `device`
    /// (``Device/default`` when nil).
    public convenience init(_ scalars: [Scalar], shape: [Int], device: Device? = nil, requiresGrad: Bool = false) {
        require(Shape.count(shape) == scalars.count,
                     "Tensor(_:shape:): \(scalars.count) scalars do not fill shape \(shape) (\(Shape.count(shape)) elements)")
        let backend = (device ?? .default).backend(for: "Tensor(_:shape:)")
        let storage = TensorStorage<Scalar>(count: scalars.count, backend: backend)
        backend.upload(scalars, into: storage, at: 0)
        self.init(storage: storage, layout: .contiguous(shape), requiresGrad: requiresGrad)
    }

    /// Creates a 1-D tensor from `scalars`.
    public convenience init(_ scalars: [Scalar], device: Device? = nil, requiresGrad: Bool = false) {
        self.init(scalars, shape: [scalars.count], device: device, requiresGrad: requiresGrad)
    }

    /// Creates a 0-D tensor holding `scalar`.
    public convenience init(scalar: Scalar, device: Device? = nil, requiresGrad: Bool = false) {
        self.init([scalar], shape: [], device: device, requiresGrad: requiresGrad)
    }

    /// Size of each axis.
    public var shape: [Int] { layout.shape }
    /// Number of elements.
    public var count: Int { layout.count }
    /// Number of axes.
    public var rank: Int { layout.rank }
    /// Where the elements live and the ops on this tensor run.
    public var device: Device { storage.device }

    var strides: [Int] { layout.strides }
    var offset: Int { layout.offset }
    var isContiguous: Bool { layout.isContiguous }

    /// This device's kernels.
    var backend: Backend { device.backend(for: "Tensor") }

    /// What a kernel is handed of this tensor.
    var view: BufferView<Scalar> { BufferView(storage, layout) }

    /// Another view of this tensor's storage, outside the graph.
    func viewing(_ layout: Layout) -> Tensor { Tensor(storage: storage, layout: layout) }

    /// This tensor if it is contiguous, otherwise a contiguous copy; outside the graph.
    func contiguousData() -> Tensor {
        isContiguous ? self : copy()
    }

    /// The elements in row-major order, copied to the host.
    public var scalars: [Scalar] { backend.download(view) }

    /// The single element of a one-element tensor, copied to the host.
    public var item: Scalar {
        require(count == 1, "item: tensor of shape \(shape) has \(count) elements, expected 1")
        return backend.download(viewing(Layout(shape: [], strides: [], offset: offset)).view)[0]
    }

    /// The element at a multi-index, copied to the host.
    public subscript(_ index: Int...) -> Scalar {
        require(index.count == rank, "subscript: \(index.count) indices for a tensor of shape \(shape)")
        var position = offset
        for (axis, i) in index.enumerated() {
            require(i >= 0 && i < shape[axis], "subscript: index \(i) out of range for axis \(axis) of shape \(shape)")
            position += i * strides[axis]
        }
        return backend.download(viewing(Layout(shape: [], strides: [], offset: position)).view)[0]
    }

    /// Overwrites the element at row-major position `index` of a contiguous tensor, outside the
    /// graph (``gradcheck(_:inputs:epsilon:absoluteTolerance:relativeTolerance:)`` perturbs inputs so).
    func setElement(at index: Int, to value: Scalar) {
        require(isContiguous && index >= 0 && index < count, "setElement: index \(index) of a tensor of shape \(shape)")
        backend.upload([value], into: storage, at: offset + index)
    }

    /// A tensor sharing this one's data but cut from the graph.
    public func detach() -> Tensor { viewing(layout) }

    /// A contiguous copy of the data on the same device, cut from the graph.
    public func copy() -> Tensor {
        let result = Tensor.uninitialized(shape, on: device)
        backend.copy(view, into: result.view)
        return result
    }

    /// Sets ``requiresGrad`` and returns self, for chaining at creation.
    @discardableResult
    public func requiringGrad(_ flag: Bool = true) -> Tensor {
        requiresGrad = flag
        return self
    }

    /// Overwrites this tensor's elements with `other`'s, in place and outside the graph (for
    /// optimizer updates and loading weights); `other` may be on another device.
    public func assign(_ other: Tensor) {
        require(other.shape == shape, "assign: shape \(other.shape) does not match \(shape)")
        let source = other.device == device ? other : withoutGradients { other.to(device) }
        backend.copy(source.view, into: view)
    }

    /// Clears the accumulated gradient.
    public func zeroGrad() { grad = nil }

    /// Stops with ``DeviceError/mismatch(op:devices:shapes:)`` unless `other` is on this tensor's device.
    func checkSameDevice(_ other: Tensor, op: String) {
        if other.device != device {
            fatalError("\(DeviceError.mismatch(op: op, devices: (device, other.device), shapes: (shape, other.shape)))")
        }
    }
}

extension Tensor {
    /// A copy on `device`, differentiable: the gradient is copied back to this tensor's device
    /// (as `Tensor.to` in PyTorch). This tensor itself when it is already there.
    public func to(_ device: Device) -> Tensor {
        if device == self.device { return self }
        let target = device.backend(for: "to(\(device))")
        let data = contiguousData()
        let storage = TensorStorage<Scalar>(count: count, backend: target)
        // Through the host: the one path every pair of devices has.
        target.upload(backend.download(data.view), into: storage, at: 0)
        let source = self.device
        return Tensor.record(Tensor(storage: storage, layout: .contiguous(shape)), op: "to(\(device))", inputs: [self]) { gradient in
            [gradient.to(source)]
        }
    }

    /// A copy in host memory (``to(_:)`` with `.cpu`).
    public func cpu() -> Tensor { to(.cpu) }

    /// Moves this leaf's data (and its gradient) to `device` in place, keeping the object, so that
    /// modules and optimizers that hold it see the move (``Module/to(_:)``).
    func moveData(to device: Device) {
        require(gradientNode == nil, "moveData: only leaves move in place; tensor of shape \(shape) was computed by an op")
        guard device != self.device else { return }
        let moved = withoutGradients { contiguousData().to(device) }
        storage = moved.storage
        layout = moved.layout
        grad?.moveData(to: device)
    }
}
