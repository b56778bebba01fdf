/// Gathers, selections and masks.
extension Tensor {
    /// Rows of this [vocabulary, dim] table at `indices`: result shape is indices.shape + [dim].
    /// The backward scatter-adds into the rows that were read.
    public func embedding(_ indices: IndexTensor) -> Tensor {
        require(rank == 2, "embedding: weight must be [vocabulary, dim], got shape \(shape)")
        let rows = shape[0], dim = shape[1]
        if let bad = indices.values.first(where: { $0 < 0 || $0 >= rows }) {
            fatalError("embedding: index \(bad) is out of range for a table of \(rows) rows (shape \(shape))")
        }
        let table = contiguousData()
        let out = Tensor.uninitialized(indices.shape + [dim], on: device)
        backend.gatherRows(table.view, indices: indices.values, dim: dim, into: out.view)
        let tableShape = shape, device = self.device
        return Tensor.record(out, op: "embedding", inputs: [self]) { gradient in
            let g = gradient.contiguousData()
            let dTable = Tensor.zeros(tableShape, device: device)
            g.backend.scatterAddRows(g.view, indices: indices.values, dim: dim, into: dTable.view)
            return [dTable]
        }
    }

    /// Elementwise choice: `ifTrue` where `condition` holds, else `ifFalse`; all three broadcast.
    public static func `where`(_ condition: BoolTensor, _ ifTrue: Tensor, _ ifFalse: Tensor) -> Tensor {
        ifTrue.checkSameDevice(ifFalse, op: "where")
        let shape = Shape.broadcast(Shape.broadcast(condition.shape, ifTrue.shape, op: "where"), ifFalse.shape, op: "where")
        let take = condition.broadcastValues(to: shape, op: "where")
        let a = ifTrue.expandedView(shape).contiguousData(), b = ifFalse.expandedView(shape).contiguousData()
        let out = Tensor.uninitialized(shape, on: ifTrue.device)
        out.backend.select(take, a.view, b.view, into: out.view)
        let device = ifTrue.device
        // The gradient is chosen, not multiplied by a 0/1 mask: a NaN gradient stays where it was
        // (as PyTorch's masked_fill backward), instead of 0·NaN spreading it to the other side.
        func choose(_ gradient: Tensor, keepingTrue: Bool) -> Tensor {
            let g = gradient.contiguousData(), chosen = Tensor.uninitialized(shape, on: device), zero = Tensor.zeros(shape, device: device)
            chosen.backend.select(take, keepingTrue ? g.view : zero.view, keepingTrue ? zero.view : g.view, into: chosen.view)
            return chosen
        }
        return record(out, op: "where", inputs: [ifTrue, ifFalse]) { gradient in
            [ifTrue.requiresGrad ? choose(gradient, keepingTrue: true).sum(toShape: ifTrue.shape) : nil,
             ifFalse.requiresGrad ? choose(gradient, keepingTrue: false).sum(toShape: ifFalse.shape) : nil]
        }
    }

    /// `value` where `mask` holds, this tensor elsewhere; no gradient flows to filled positions.
    public func maskedFill(_ mask: BoolTensor, _ value: Scalar) -> Tensor {
        Tensor.where(mask, Tensor(scalar: value, device: device), self)
    }

    /// Zeroes each element with probability `p` and scales the rest by 1/(1 − p) while training;
    /// the identity otherwise. The mask is a function of one seed drawn from `generator` and each
    /// element's position (``CounterRandom``), the same on every device.
    public func dropout(_ p: Scalar, training: Bool, generator: RandomGenerator = .shared) -> Tensor {
        checkDropoutProbability(p, op: "dropout")
        guard training, p > 0 else { return self }
        let keep = Tensor.uninitialized(shape, on: device)
        backend.dropoutMask(seed: generator.next(), probability: p, scale: 1 / (1 - p), into: keep.view)
        return self * keep
    }
}

/// The one rule for dropout probabilities (tensors, layers and attention alike): p in [0, 1), since
/// the kept values are scaled by 1/(1 − p).
func checkDropoutProbability<Scalar: TensorScalar>(_ p: Scalar, op: String) {
    require(p >= 0 && p < 1, "\(op): dropout probability must be in [0, 1), got \(p)")
}
