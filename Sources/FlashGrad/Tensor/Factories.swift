extension Tensor {
    /// A tensor of `shape` filled with `value`.
    public static func full(_ shape: [Int], _ value: Scalar, requiresGrad: Bool = false) -> Tensor {
        let t = Tensor(storage: TensorStorage(repeating: value, count: Shape.count(shape)), shape: shape)
        t.requiresGrad = requiresGrad
        return t
    }

    /// A tensor of zeros.
    public static func zeros(_ shape: [Int], requiresGrad: Bool = false) -> Tensor {
        full(shape, 0, requiresGrad: requiresGrad)
    }

    /// A tensor of ones.
    public static func ones(_ shape: [Int], requiresGrad: Bool = false) -> Tensor {
        full(shape, 1, requiresGrad: requiresGrad)
    }

    /// Values `start, start + step, …` below `end`, like `torch.arange`.
    public static func arange(_ start: Scalar = 0, _ end: Scalar, step: Scalar = 1) -> Tensor {
        precondition(step != 0, "arange: step must not be 0")
        let count = Swift.max(0, Int(((end - start) / step).rounded(.up)))
        return Tensor((0..<count).map { start + Scalar($0) * step })
    }

    /// The n×n identity matrix.
    public static func eye(_ n: Int) -> Tensor {
        let t = zeros([n, n])
        for i in 0..<n { t.storage.pointer[i * n + i] = 1 }
        return t
    }

    /// Uniform values in [low, high) from `generator` (``RandomGenerator/shared`` by default).
    public static func uniform(_ shape: [Int], low: Scalar = 0, high: Scalar = 1,
                               generator: RandomGenerator = .shared, requiresGrad: Bool = false) -> Tensor {
        let values = (0..<Shape.count(shape)).map { _ in low + (high - low) * generator.uniform(Scalar.self) }
        return Tensor(values, shape: shape, requiresGrad: requiresGrad)
    }

    /// Normal values with the given mean and standard deviation.
    public static func normal(_ shape: [Int], mean: Scalar = 0, std: Scalar = 1,
                              generator: RandomGenerator = .shared, requiresGrad: Bool = false) -> Tensor {
        let values = (0..<Shape.count(shape)).map { _ in mean + std * generator.normal(Scalar.self) }
        return Tensor(values, shape: shape, requiresGrad: requiresGrad)
    }

    /// A zero tensor with this tensor's shape.
    public func zerosLike() -> Tensor { Tensor.zeros(shape) }
}
