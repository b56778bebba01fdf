/// y = x·Wᵀ + b over the last axis, with W stored [outputs, inputs] as in PyTorch.
public final class Linear<Scalar: TensorScalar>: Module<Scalar> {
    public let weight: Tensor<Scalar>
    public let bias: Tensor<Scalar>?

    /// Weights and bias uniform in ±1/√inputs (PyTorch's default).
    public init(_ inputs: Int, _ outputs: Int, bias: Bool = true, generator: RandomGenerator = .shared) {
        let bound = 1 / Scalar(inputs).squareRoot()
        weight = parameter(Tensor.uniform([outputs, inputs], low: -bound, high: bound, generator: generator))
        self.bias = bias ? parameter(Tensor.uniform([outputs], low: -bound, high: bound, generator: generator)) : nil
    }

    public func callAsFunction(_ x: Tensor<Scalar>) -> Tensor<Scalar> {
        let rows = product(x)
        return (bias.map { rows + $0 } ?? rows).reshape(Array(x.shape.dropLast()) + [weight.shape[0]])
    }

    /// activation(x·Wᵀ + b), the bias and the activation in one kernel (each way).
    public func callAsFunction(_ x: Tensor<Scalar>, activation: Activation) -> Tensor<Scalar> {
        let rows = product(x)
        return (bias.map { rows.biasedActivation($0, activation) } ?? activation(rows)).reshape(Array(x.shape.dropLast()) + [weight.shape[0]])
    }

    /// x·Wᵀ as [rows, outputs]: one gemm over all leading axes; Wᵀ is a strided view, not a copy.
    private func product(_ x: Tensor<Scalar>) -> Tensor<Scalar> {
        require(x.shape.last == weight.shape[1], "Linear: input of shape \(x.shape) must end in \(weight.shape[1])")
        return x.reshape([-1, weight.shape[1]]).matmul(weight.transposed())
    }
}

/// Rows of a [vocabulary, dim] table looked up by token index.
public final class Embedding<Scalar: TensorScalar>: Module<Scalar> {
    public let weight: Tensor<Scalar>

    /// Weights N(0, 1), as in PyTorch.
    public init(_ vocabulary: Int, _ dim: Int, generator: RandomGenerator = .shared) {
        weight = parameter(Tensor.normal([vocabulary, dim], generator: generator))
    }

    public func callAsFunction(_ indices: IndexTensor) -> Tensor<Scalar> { weight.embedding(indices) }
}

/// Layer normalisation over the last axis with a learned scale and shift.
public final class LayerNorm<Scalar: TensorScalar>: Module<Scalar> {
    public let weight: Tensor<Scalar>
    public let bias: Tensor<Scalar>
    public let epsilon: Scalar

    public init(_ dim: Int, epsilon: Scalar = 1e-5) {
        weight = parameter(Tensor.ones([dim]))
        bias = parameter(Tensor.zeros([dim]))
        self.epsilon = epsilon
    }

    public func callAsFunction(_ x: Tensor<Scalar>) -> Tensor<Scalar> { x.layerNorm(weight: weight, bias: bias, epsilon: epsilon) }

    /// x + residual and its normalisation, in one kernel (a residual connection and the norm after it).
    public func callAsFunction(_ x: Tensor<Scalar>, residual: Tensor<Scalar>) -> (sum: Tensor<Scalar>, normalized: Tensor<Scalar>) {
        x.layerNorm(residual: residual, weight: weight, bias: bias, epsilon: epsilon)
    }
}

/// RMS normalisation over the last axis with a learned scale.
public final class RMSNorm<Scalar: TensorScalar>: Module<Scalar> {
    public let weight: Tensor<Scalar>
    public let epsilon: Scalar

    public init(_ dim: Int, epsilon: Scalar = 1e-6) {
        weight = parameter(Tensor.ones([dim]))
        self.epsilon = epsilon
    }

    public func callAsFunction(_ x: Tensor<Scalar>) -> Tensor<Scalar> { x.rmsNorm(weight: weight, epsilon: epsilon) }
}

/// Zeroes activations with probability `probability` while training; the identity in eval mode.
public final class Dropout<Scalar: TensorScalar>: Module<Scalar> {
    public let probability: Scalar
    let generator: RandomGenerator

    public init(_ probability: Scalar, generator: RandomGenerator = .shared) {
        checkDropoutProbability(probability, op: "Dropout")
        self.probability = probability
        self.generator = generator
    }

    public func callAsFunction(_ x: Tensor<Scalar>) -> Tensor<Scalar> {
        x.dropout(probability, training: isTraining, generator: generator)
    }
}

/// The activation between the two linear layers of a feed-forward block.
public enum Activation: String, CaseIterable {
    case gelu, relu

    var function: UnaryFunction { self == .gelu ? .geluErf : .relu }

    public func callAsFunction<Scalar>(_ x: Tensor<Scalar>) -> Tensor<Scalar> { x.unary(function, op: rawValue) }
}

extension Tensor {
    /// activation(self + bias), `bias` a vector along the last axis, in one kernel each way (a
    /// linear layer's bias and activation, as the feed-forward blocks use them).
    public func biasedActivation(_ bias: Tensor, _ activation: Activation) -> Tensor {
        unary(activation.function, op: "\(activation.rawValue)(x + bias)", bias: bias)
    }
}

/// Linear → activation → dropout → linear.
public final class FeedForward<Scalar: TensorScalar>: Module<Scalar> {
    public let expand: Linear<Scalar>
    public let contract: Linear<Scalar>
    public let dropout: Dropout<Scalar>
    public let activation: Activation

    public init(_ dim: Int, hidden: Int, activation: Activation = .gelu, dropout: Scalar = 0, generator: RandomGenerator = .shared) {
        expand = Linear(dim, hidden, generator: generator)
        contract = Linear(hidden, dim, generator: generator)
        self.dropout = Dropout(dropout, generator: generator)
        self.activation = activation
    }

    public func callAsFunction(_ x: Tensor<Scalar>) -> Tensor<Scalar> {
        contract(dropout(expand(x, activation: activation)))
    }
}
