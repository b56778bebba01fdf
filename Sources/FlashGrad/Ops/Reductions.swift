/// Sums, means, extrema and variance along axes.
extension Tensor {
    /// Reduces one axis of a contiguous tensor viewed as [outer, length, inner].
    private func reduce(_ kind: ReductionKind, axis: Int) -> Tensor {
        let x = contiguousData()
        let outer = shape[..<axis].reduce(1, *), inner = shape[(axis + 1)...].reduce(1, *)
        var newShape = shape
        newShape[axis] = 1
        let out = Tensor.uninitialized(newShape, on: device)
        backend.reduce(kind, x.view, outer: outer, length: shape[axis], inner: inner, into: out.view)
        return out
    }

    private func resolveAxes(_ axes: [Int]?, op: String) -> [Int] {
        guard let axes else { return Array(0..<rank) }
        let resolved = axes.map { Shape.normalizeAxis($0, rank: rank, op: op) }
        require(Set(resolved).count == resolved.count, "\(op): repeated axis in \(axes)")
        return resolved.sorted()
    }

    private func dropAxes(_ reduced: Tensor, _ axes: [Int], keepDims: Bool) -> Tensor {
        keepDims ? reduced : reduced.reshape(reduced.shape.enumerated().filter { !axes.contains($0.offset) }.map(\.element))
    }

    /// Sum over `axes` (all axes when nil).
    public func sum(axes: [Int]? = nil, keepDims: Bool = false) -> Tensor {
        let resolved = resolveAxes(axes, op: "sum")
        var out = self.detach()
        for axis in resolved { out = out.reduce(.sum, axis: axis) }
        let inputShape = shape
        let kept = Tensor.record(out, op: "sum", inputs: [self]) { [$0.expand(inputShape)] }
        return dropAxes(kept, resolved, keepDims: keepDims)
    }

    public func sum(axis: Int, keepDims: Bool = false) -> Tensor { sum(axes: [axis], keepDims: keepDims) }

    /// Mean over `axes` (all axes when nil).
    public func mean(axes: [Int]? = nil, keepDims: Bool = false) -> Tensor {
        let resolved = resolveAxes(axes, op: "mean")
        let n = resolved.map { shape[$0] }.reduce(1, *)
        return sum(axes: resolved, keepDims: keepDims) / Scalar(n)
    }

    public func mean(axis: Int, keepDims: Bool = false) -> Tensor { mean(axes: [axis], keepDims: keepDims) }

    /// Maximum along `axis`; the gradient is shared equally among tied maxima (as `torch.amax`).
    public func max(axis: Int, keepDims: Bool = false) -> Tensor { extremum(.max, axis: axis, keepDims: keepDims) }

    /// Minimum along `axis`; the gradient is shared equally among tied minima (as `torch.amin`).
    public func min(axis: Int, keepDims: Bool = false) -> Tensor { extremum(.min, axis: axis, keepDims: keepDims) }

    private func extremum(_ kind: ReductionKind, axis: Int, keepDims: Bool) -> Tensor {
        let a = Shape.normalizeAxis(axis, rank: rank, op: "\(kind)")
        require(shape[a] > 0, "\(kind): axis \(axis) of shape \(shape) is empty")
        let out = reduce(kind, axis: a)
        let input = detach(), value = out.detach()
        let kept = Tensor.record(out, op: "\(kind)", inputs: [self]) { gradient in
            let winners = withoutGradients { input.equalMask(value) }
            let ties = winners.sum(axis: a, keepDims: true)
            return [winners * (gradient / ties)]
        }
        return dropAxes(kept, [a], keepDims: keepDims)
    }

    /// 1 where this tensor equals `other` (broadcast), else 0; not differentiable.
    func equalMask(_ other: Tensor) -> Tensor {
        checkSameDevice(other, op: "equal")
        let shape = Shape.broadcast(self.shape, other.shape, op: "equal")
        let a = expandedView(shape).contiguousData(), b = other.expandedView(shape).contiguousData()
        let out = Tensor.uninitialized(shape, on: device)
        backend.equal(a.view, b.view, into: out.view)
        return out
    }

    /// Variance over `axes`, with Bessel's correction when `unbiased` (the PyTorch default).
    public func variance(axes: [Int]? = nil, unbiased: Bool = true, keepDims: Bool = false) -> Tensor {
        let resolved = resolveAxes(axes, op: "variance")
        let n = resolved.map { shape[$0] }.reduce(1, *)
        require(!unbiased || n > 1, "variance: unbiased variance needs at least 2 elements, axes \(resolved) of shape \(shape) have \(n)")
        let centered = self - mean(axes: resolved, keepDims: true)
        return (centered * centered).sum(axes: resolved, keepDims: keepDims) / Scalar(unbiased ? n - 1 : n)
    }
}
