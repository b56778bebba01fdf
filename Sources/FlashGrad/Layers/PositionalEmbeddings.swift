import RealModule

/// Learned absolute positions: a [maximumLength, dim] table added to token embeddings.
public final class LearnedPositionalEmbedding<Scalar: TensorScalar>: Module<Scalar> {
    public let weight: Tensor<Scalar>

    public init(maximumLength: Int, dim: Int, generator: RandomGenerator = .shared) {
        weight = parameter(Tensor.normal([maximumLength, dim], generator: generator))
    }

    /// Embeddings of positions `offset ..< offset + length`: [length, dim].
    public func callAsFunction(length: Int, offset: Int = 0) -> Tensor<Scalar> {
        require(offset >= 0 && offset + length <= weight.shape[0],
                     "LearnedPositionalEmbedding: positions \(offset)..<\(offset + length) exceed the table of \(weight.shape[0])")
        return weight.slice(axis: 0, offset..<(offset + length))
    }
}

/// Fixed sinusoidal positions (Vaswani et al.): sin on even features, cos on odd ones.
public final class SinusoidalPositionalEmbedding<Scalar: TensorScalar>: Module<Scalar> {
    public let dim: Int

    public init(dim: Int) { self.dim = dim }

    public func callAsFunction(length: Int, offset: Int = 0) -> Tensor<Scalar> {
        var values: [Scalar] = []
        values.reserveCapacity(length * dim)
        for position in offset..<(offset + length) {
            for feature in 0..<dim {
                let frequency = Double.pow(10_000, -Double(feature / 2 * 2) / Double(dim))
                let angle = Double(position) * frequency
                values.append(Scalar(feature % 2 == 0 ? Double.sin(angle) : Double.cos(angle)))
            }
        }
        return Tensor(values, shape: [length, dim])
    }
}

/// Rotary position embeddings (RoPE, Su et al.), in the half-split layout used by GPT-NeoX and Llama:
/// features (x₁, x₂) = (x[..<D/2], x[D/2...]) rotate to (x₁cos θ − x₂sin θ, x₂cos θ + x₁sin θ),
/// θ = position · base^(−2i/D).
public struct RotaryEmbedding {
    public let base: Double

    public init(base: Double = 10_000) { self.base = base }

    /// Rotates [B, H, N, D] queries or keys at positions `offset ..< offset + N`.
    public func callAsFunction<Scalar: TensorScalar>(_ x: Tensor<Scalar>, offset: Int = 0) -> Tensor<Scalar> {
        let length = x.shape[2], dim = x.shape[3]
        require(dim % 2 == 0, "RotaryEmbedding: head dim must be even, got \(dim)")
        let half = dim / 2
        var cosines: [Scalar] = [], sines: [Scalar] = []
        for position in offset..<(offset + length) {
            for i in 0..<half {
                let angle = Double(position) * Double.pow(base, -2 * Double(i) / Double(dim))
                cosines.append(Scalar(Double.cos(angle)))
                sines.append(Scalar(Double.sin(angle)))
            }
        }
        let cosine = Tensor(cosines, shape: [length, half], device: x.device), sine = Tensor(sines, shape: [length, half], device: x.device)
        let first = x.slice(axis: 3, 0..<half), second = x.slice(axis: 3, half..<dim)
        return Tensor.concatenate([first * cosine - second * sine, second * cosine + first * sine], axis: 3)
    }
}
