/// Integer indices with a shape, for embedding lookups and class targets.
public struct IndexTensor: Equatable {
    public let shape: [Int]
    public let values: [Int]

    public init(_ values: [Int], shape: [Int]? = nil) {
        let resolved = shape ?? [values.count]
        require(Shape.count(resolved) == values.count, "IndexTensor: \(values.count) values do not fill shape \(resolved)")
        self.shape = resolved
        self.values = values
    }

    public var count: Int { values.count }
}

/// Booleans with a shape, for `where`, `maskedFill` and attention masks.
public struct BoolTensor: Equatable {
    public let shape: [Int]
    public let values: [Bool]

    public init(_ values: [Bool], shape: [Int]? = nil) {
        let resolved = shape ?? [values.count]
        require(Shape.count(resolved) == values.count, "BoolTensor: \(values.count) values do not fill shape \(resolved)")
        self.shape = resolved
        self.values = values
    }

    /// The values laid out for `target`, broadcasting like a tensor.
    func broadcastValues(to target: [Int], op: String) -> [Bool] {
        let common = Shape.broadcast(shape, target, op: op)
        require(common == target, "\(op): mask of shape \(shape) does not broadcast to \(target)")
        if shape == target { return values }
        let lead = target.count - shape.count
        let sourceStrides = Shape.contiguousStrides(shape)
        let targetStrides = Shape.contiguousStrides(target)
        return (0..<Shape.count(target)).map { flat in
            var source = 0
            for axis in 0..<shape.count where shape[axis] != 1 {
                source += (flat / targetStrides[lead + axis]) % target[lead + axis] * sourceStrides[axis]
            }
            return values[source]
        }
    }
}
