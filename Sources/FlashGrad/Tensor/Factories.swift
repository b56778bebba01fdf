/// Factories. Each takes an optional device and otherwise uses ``Device/default``.
extension Tensor {
    /// A tensor of `shape` filled with `value`.
    public static func full(_ shape: [Int], _ value: Scalar, device: Device? = nil, requiresGrad: Bool = false) -> Tensor {
        let t = uninitialized(shape, on: device ?? .default)
        t.backend.fill(t.view, with: value)
        t.requiresGrad = requiresGrad
        return t
    }

    /// A tensor of zeros.
    public static func zeros(_ shape: [Int], device: Device? = nil, requiresGrad: Bool = false) -> Tensor {
        full(shape, 0, device: device, requiresGrad: requiresGrad)
    }

    /// A tensor of ones.
    public static func ones(_ shape: [Int], device: Device? = nil, requiresGrad: Bool = false) -> Tensor {
        full(shape, 1, device: device, requiresGrad: requiresGrad)
    }

    /// Values `start, start + step, …` below `end`, like `torch.arange`.
    public static func arange(_ start: Scalar = 0, _ end: Scalar, step: Scalar = 1, device: Device? = nil) -> Tensor {
        require(step != 0, "arange: step must not be 0")
        let count = Swift.max(0, Int(((end - start) / step).rounded(.up)))
        return Tensor((0..<count).map { start + Scalar($0) * step }, device: device)
    }

    /// The n×n identity matrix.
    public static func eye(_ n: Int, device: Device? = nil) -> Tensor {
        Tensor((0..<(n * n)).map { $0 / n == $0 % n ? 1 : 0 }, shape: [n, n], device: device)
    }

    /// Uniform values in [low, high) from `generator` (``RandomGenerator/shared`` by default).
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public static func uniform(_ shape: [Int], low: Scalar = 0, high: Scalar = 1, generator: RandomGenerator = .shared,
                               device: Device? = nil, requiresGrad: Bool = false) -> Tensor {
        let values = generator.uniformValues(Scalar.self, count: Shape.count(shape)).map { low + (high - low) * $0 }
        return Tensor(values, shape: shape, device: device, requiresGrad: requiresGrad)
    }

    /// Normal values with the given mean and standard deviation.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public static func normal(_ shape: [Int], mean: Scalar = 0, std: Scalar = 1, generator: RandomGenerator = .shared,
                              device: Device? = nil, requiresGrad: Bool = false) -> Tensor {
        let values = generator.normalValues(Scalar.self, count: Shape.count(shape)).map { mean + std * $0 }
        return Tensor(values, shape: shape, device: device, requiresGrad: requiresGrad)
    }

    /// A zero tensor with this tensor's shape, on its device.
    public func zerosLike() -> Tensor { Tensor.zeros(shape, device: device) }
}
