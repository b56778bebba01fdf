/// Gathers, selections and masks.
extension Tensor {
    /// Rows of this [vocabulary, dim] table at `indices`: result shape is indices.shape + [dim].
    /// The backward scatter-adds into the rows that were read.
    public func embedding(_ indices: IndexTensor) -> Tensor {
        precondition(rank == 2, "embedding: weight must be [vocabulary, dim], got shape \(shape)")
        let rows = shape[0], dim = shape[1]
        if let bad = indices.values.first(where: { $0 < 0 || $0 >= rows }) {
            preconditionFailure("embedding: index \(bad) is out of range for a table of \(rows) rows (shape \(shape))")
        }
        let table = contiguousData()
        let out = Tensor(storage: TensorStorage(count: indices.count * dim), shape: indices.shape + [dim])
        MemoryKernels.gatherRows(table.basePointer, indices: indices.values, dim: dim, into: out.basePointer)
        let tableShape = shape
        return Tensor.record(out, op: "embedding", inputs: [self]) { gradient in
            let g = gradient.contiguousData()
            let dTable = Tensor.zeros(tableShape)
            MemoryKernels.scatterAddRows(g.basePointer, indices: indices.values, dim: dim, into: dTable.basePointer)
            return [dTable]
        }
    }

    /// Elementwise choice: `ifTrue` where `condition` holds, else `ifFalse`; all three broadcast.
    public static func `where`(_ condition: BoolTensor, _ ifTrue: Tensor, _ ifFalse: Tensor) -> Tensor {
        let shape = Shape.broadcast(Shape.broadcast(condition.shape, ifTrue.shape, op: "where"), ifFalse.shape, op: "where")
        let take = condition.broadcastValues(to: shape, op: "where")
        let a = ifTrue.expandedView(shape).contiguousData(), b = ifFalse.expandedView(shape).contiguousData()
        let out = Tensor(storage: TensorStorage(count: Shape.count(shape)), shape: shape)
        MemoryKernels.select(take, a.basePointer, b.basePointer, into: out.basePointer)
        let keep = Tensor(take.map { $0 ? 1 : 0 }, shape: shape)
        return record(out, op: "where", inputs: [ifTrue, ifFalse]) { gradient in
            [ifTrue.requiresGrad ? (gradient * keep).sum(toShape: ifTrue.shape) : nil,
             ifFalse.requiresGrad ? (gradient * (1 - keep)).sum(toShape: ifFalse.shape) : nil]
        }
    }

    /// `value` where `mask` holds, this tensor elsewhere; no gradient flows to filled positions.
    public func maskedFill(_ mask: BoolTensor, _ value: Scalar) -> Tensor {
        Tensor.where(mask, Tensor(scalar: value), self)
    }

    /// Zeroes each element with probability `p` and scales the rest by 1/(1 − p) while training;
    /// the identity otherwise.
    public func dropout(_ p: Scalar, training: Bool, generator: RandomGenerator = .shared) -> Tensor {
        precondition(p >= 0 && p <= 1, "dropout: probability must be in [0, 1], got \(p)")
        guard training, p > 0 else { return self }
        let scale: Scalar = p == 1 ? 0 : 1 / (1 - p)
        let keep = Tensor(storage: TensorStorage(count: count), shape: shape)
        ElementwiseKernels.dropoutMask(keep.basePointer, count: count, probability: p, scale: scale, generator: generator)
        return self * keep
    }
}
