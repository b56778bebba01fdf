extension Tensor: CustomStringConvertible {
    /// Edge items shown per axis when a tensor is too large to print in full (as NumPy does).
    private static var edgeItems: Int { 3 }
    /// Above this many elements the printout is abbreviated with "…".
    private static var summaryThreshold: Int { 1000 }

    /// Shape, type and values, e.g. `Tensor<Float>(shape: [2, 2], [[1, 2], [3, 4]])`.
    public var description: String {
        let values = scalars
        let abbreviate = values.count > Tensor.summaryThreshold
        let strides = Shape.contiguousStrides(shape)
        func format(_ value: Scalar) -> String {
            let text = "\(value)"
            return text.hasSuffix(".0") ? String(text.dropLast(2)) : text
        }
        func render(axis: Int, offset: Int) -> String {
            if axis == shape.count { return format(values[offset]) }
            let size = shape[axis]
            var pieces: [String] = []
            if abbreviate && size > 2 * Tensor.edgeItems {
                pieces = (0..<Tensor.edgeItems).map { render(axis: axis + 1, offset: offset + $0 * strides[axis]) }
                pieces.append("…")
                pieces += ((size - Tensor.edgeItems)..<size).map { render(axis: axis + 1, offset: offset + $0 * strides[axis]) }
            } else {
                pieces = (0..<size).map { render(axis: axis + 1, offset: offset + $0 * strides[axis]) }
            }
            return "[" + pieces.joined(separator: ", ") + "]"
        }
        let grad = requiresGrad ? ", requiresGrad: true" : ""
        let place = device == .cpu ? "" : ", device: \(device)"
        return "Tensor<\(Scalar.self)>(shape: \(shape)\(place)\(grad), \(count == 0 ? "[]" : render(axis: 0, offset: 0)))"
    }
}
