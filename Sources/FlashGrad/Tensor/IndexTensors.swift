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
        // One broadcast axis at a time, innermost first, each a repetition of whole blocks: copies
        // without index arithmetic per element (an attention mask is Hq·Nq·Nk values).
        var current = values, currentShape = Array(repeating: 1, count: target.count - shape.count) + shape
        for axis in (0..<target.count).reversed() where currentShape[axis] != target[axis] {
            let outer = Shape.count(Array(currentShape[..<axis])), inner = Shape.count(Array(currentShape[(axis + 1)...]))
            var expanded: [Bool] = []
            expanded.reserveCapacity(outer * target[axis] * inner)
            for block in 0..<outer {
                for _ in 0..<target[axis] { expanded.append(contentsOf: current[(block * inner)..<((block + 1) * inner)]) }
            }
            current = expanded
            currentShape[axis] = target[axis]
        }
        return current
    }
}
