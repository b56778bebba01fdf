/// Shape-changing ops. Each returns a view on the same storage where the strides allow it.
extension Tensor {
    /// The same elements with a new shape; one axis may be -1 and is inferred.
    public func reshape(_ newShape: [Int]) -> Tensor {
        var resolved = newShape
        if let unknown = newShape.firstIndex(of: -1) {
            let known = newShape.enumerated().filter { $0.offset != unknown }.map(\.element).reduce(1, *)
            require(known > 0 && count % known == 0, "reshape: cannot reshape \(shape) into \(newShape)")
            resolved[unknown] = count / known
        }
        require(Shape.count(resolved) == count,
                     "reshape: cannot reshape \(shape) (\(count) elements) into \(newShape)")
        let data = contiguousData()
        let result = data.viewing(.contiguous(resolved, offset: data.offset))
        let inputShape = shape
        return Tensor.record(result, op: "reshape", inputs: [self]) { [$0.reshape(inputShape)] }
    }

    /// Reorders the axes: result axis i is input axis `order[i]`.
    public func permute(_ order: [Int]) -> Tensor {
        require(order.count == rank && Set(order) == Set(0..<rank),
                     "permute: \(order) is not a permutation of the axes of shape \(shape)")
        let result = viewing(Layout(shape: order.map { shape[$0] }, strides: order.map { strides[$0] }, offset: offset))
        var inverse = [Int](repeating: 0, count: rank)
        for (i, axis) in order.enumerated() { inverse[axis] = i }
        return Tensor.record(result, op: "permute", inputs: [self]) { [$0.permute(inverse)] }
    }

    /// Swaps two axes.
    public func transposed(_ axis0: Int = -2, _ axis1: Int = -1) -> Tensor {
        let a = Shape.normalizeAxis(axis0, rank: rank, op: "transposed"), b = Shape.normalizeAxis(axis1, rank: rank, op: "transposed")
        var order = Array(0..<rank)
        order.swapAt(a, b)
        return permute(order)
    }

    /// Inserts an axis of size 1.
    public func unsqueeze(_ axis: Int) -> Tensor {
        var newShape = shape
        newShape.insert(1, at: Shape.normalizeAxis(axis, rank: rank + 1, op: "unsqueeze"))
        return reshape(newShape)
    }

    /// Removes axes of size 1 (the given one, or all).
    public func squeeze(_ axis: Int? = nil) -> Tensor {
        if let axis {
            let a = Shape.normalizeAxis(axis, rank: rank, op: "squeeze")
            require(shape[a] == 1, "squeeze: axis \(axis) of shape \(shape) has size \(shape[a]), not 1")
            var newShape = shape
            newShape.remove(at: a)
            return reshape(newShape)
        }
        return reshape(shape.filter { $0 != 1 })
    }

    /// Broadcasts to `newShape` without copying (stride 0 on repeated axes).
    public func expand(_ newShape: [Int]) -> Tensor {
        let inputShape = shape
        return Tensor.record(expandedView(newShape), op: "expand", inputs: [self]) { [$0.sum(toShape: inputShape)] }
    }

    /// The broadcast view behind ``expand(_:)``, outside the graph; kernels read operands through it.
    func expandedView(_ newShape: [Int]) -> Tensor {
        require(newShape.count >= rank, "expand: cannot expand shape \(shape) to fewer axes \(newShape)")
        let lead = newShape.count - rank
        var newStrides = [Int](repeating: 0, count: newShape.count)
        for i in 0..<rank {
            require(shape[i] == newShape[lead + i] || shape[i] == 1,
                         "expand: cannot expand shape \(shape) to \(newShape) (axis \(i): \(shape[i]) vs \(newShape[lead + i]))")
            newStrides[lead + i] = shape[i] == 1 && newShape[lead + i] != 1 ? 0 : strides[i]
        }
        return viewing(Layout(shape: newShape, strides: newStrides, offset: offset))
    }

    /// Elements `range` along `axis`, as a view.
    public func slice(axis: Int, _ range: Range<Int>) -> Tensor {
        let a = Shape.normalizeAxis(axis, rank: rank, op: "slice")
        require(range.lowerBound >= 0 && range.upperBound <= shape[a],
                     "slice: range \(range) is out of bounds for axis \(axis) of shape \(shape)")
        var newShape = shape
        newShape[a] = range.count
        let result = viewing(Layout(shape: newShape, strides: strides, offset: offset + range.lowerBound * strides[a]))
        let inputShape = shape, device = self.device
        return Tensor.record(result, op: "slice", inputs: [self]) { gradient in
            let full = Tensor.zeros(inputShape, device: device)
            full.backend.copy(gradient.view, into: full.slice(axis: a, range).view)
            return [full]
        }
    }

    /// Joins tensors along `axis`; all other sizes must agree.
    public static func concatenate(_ tensors: [Tensor], axis: Int) -> Tensor {
        require(!tensors.isEmpty, "concatenate: no tensors given")
        let first = tensors[0]
        let a = Shape.normalizeAxis(axis, rank: first.rank, op: "concatenate")
        for t in tensors {
            require(t.rank == first.rank && (0..<t.rank).allSatisfy { $0 == a || t.shape[$0] == first.shape[$0] },
                         "concatenate: shapes \(tensors.map(\.shape)) do not agree outside axis \(axis)")
        }
        var newShape = first.shape
        newShape[a] = tensors.map { $0.shape[a] }.reduce(0, +)
        for t in tensors { first.checkSameDevice(t, op: "concatenate") }
        let result = Tensor.uninitialized(newShape, on: first.device)
        var start = 0
        var ranges: [Range<Int>] = []
        for t in tensors {
            let range = start..<(start + t.shape[a])
            result.backend.copy(t.view, into: result.slice(axis: a, range).view)
            ranges.append(range)
            start += t.shape[a]
        }
        return record(result, op: "concatenate", inputs: tensors) { gradient in
            ranges.map { gradient.slice(axis: a, $0) }
        }
    }

    /// Splits along `axis` into pieces of the given sizes.
    public func split(sizes: [Int], axis: Int) -> [Tensor] {
        let a = Shape.normalizeAxis(axis, rank: rank, op: "split")
        require(sizes.reduce(0, +) == shape[a], "split: sizes \(sizes) do not add up to \(shape[a]) on axis \(axis) of shape \(shape)")
        var start = 0
        return sizes.map { size in
            defer { start += size }
            return slice(axis: a, start..<(start + size))
        }
    }

    /// Splits along `axis` into `chunks` pieces of equal size (the last may be smaller), like `torch.chunk`.
    public func chunk(_ chunks: Int, axis: Int) -> [Tensor] {
        let a = Shape.normalizeAxis(axis, rank: rank, op: "chunk")
        require(chunks > 0, "chunk: chunks must be positive, got \(chunks)")
        let size = (shape[a] + chunks - 1) / chunks
        var sizes: [Int] = []
        var remaining = shape[a]
        while remaining > 0 { sizes.append(Swift.min(size, remaining)); remaining -= size }
        return split(sizes: sizes, axis: a)
    }

    /// A contiguous copy when the layout is strided, otherwise this tensor; gradients pass through.
    public func contiguous() -> Tensor {
        if isContiguous { return self }
        return Tensor.record(contiguousData(), op: "contiguous", inputs: [self]) { [$0] }
    }

    /// Sums a broadcast gradient back to `target` (the shape before broadcasting).
    func sum(toShape target: [Int]) -> Tensor {
        if shape == target { return self }
        let lead = rank - target.count
        require(lead >= 0, "sum(toShape:): cannot reduce \(shape) to \(target)")
        var axes = Array(0..<lead)
        for (i, size) in target.enumerated() where size == 1 && shape[lead + i] != 1 { axes.append(lead + i) }
        let result = axes.isEmpty ? self : sum(axes: axes, keepDims: true)
        return result.shape == target ? result : result.reshape(target)
    }
}
