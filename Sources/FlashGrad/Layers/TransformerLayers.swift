/// Where the layer norms sit: before each sublayer (pre-LN, stabler) or after each residual (post-LN, the original).
public enum NormPlacement: String, CaseIterable {
    case preNorm = "pre", postNorm = "post"
}

/// Self-attention and a feed-forward block, each with a residual connection.
public final class TransformerEncoderLayer<Scalar: TensorScalar>: Module<Scalar> {
    public let selfAttention: MultiHeadAttention<Scalar>
    public let feedForward: FeedForward<Scalar>
    public let attentionNorm: LayerNorm<Scalar>
    public let feedForwardNorm: LayerNorm<Scalar>
    public let residualDropout: Dropout<Scalar>
    public let normPlacement: NormPlacement

    public init(dim: Int, heads: Int, keyValueHeads: Int? = nil, feedForward hidden: Int, activation: Activation = .gelu,
                dropout: Scalar = 0, normPlacement: NormPlacement = .preNorm, normEpsilon: Scalar = 1e-5, rotary: RotaryEmbedding? = nil,
                implementation: AttentionImplementation = FlashAttention(), generator: RandomGenerator = .shared) {
        selfAttention = MultiHeadAttention(dim: dim, heads: heads, keyValueHeads: keyValueHeads, implementation: implementation,
                                           rotary: rotary, generator: generator)
        feedForward = FeedForward(dim, hidden: hidden, activation: activation, dropout: dropout, generator: generator)
        attentionNorm = LayerNorm(dim, epsilon: normEpsilon)
        feedForwardNorm = LayerNorm(dim, epsilon: normEpsilon)
        residualDropout = Dropout(dropout, generator: generator)
        self.normPlacement = normPlacement
    }

    /// With `packing`, `x` holds packed rows of real tokens (see ``PackedSequences``) and so does the result.
    public func callAsFunction(_ x: Tensor<Scalar>, keyPadding: KeyPadding? = nil, causal: Bool = false,
                               cache: KeyValueCache<Scalar>? = nil, packing: PackedSequences? = nil) -> Tensor<Scalar> {
        let attend = { (input: Tensor<Scalar>) in
            self.selfAttention(input, keyPadding: keyPadding, causal: causal, cache: cache, packing: packing)
        }
        // Each residual connection and the norm after it are one kernel (`LayerNorm(_:residual:)`).
        switch normPlacement {
        case .preNorm:
            let (h, normalized) = feedForwardNorm(x, residual: residualDropout(attend(attentionNorm(x))))
            return h + residualDropout(feedForward(normalized))
        case .postNorm:
            let h = attentionNorm(x, residual: residualDropout(attend(x))).normalized
            return feedForwardNorm(h, residual: residualDropout(feedForward(h))).normalized
        }
    }
}

/// Causal self-attention, cross-attention to the encoder's output, and a feed-forward block.
public final class TransformerDecoderLayer<Scalar: TensorScalar>: Module<Scalar> {
    public let selfAttention: MultiHeadAttention<Scalar>
    public let crossAttention: MultiHeadAttention<Scalar>
    public let feedForward: FeedForward<Scalar>
    public let selfAttentionNorm: LayerNorm<Scalar>
    public let crossAttentionNorm: LayerNorm<Scalar>
    public let feedForwardNorm: LayerNorm<Scalar>
    public let residualDropout: Dropout<Scalar>
    public let normPlacement: NormPlacement

    public init(dim: Int, heads: Int, keyValueHeads: Int? = nil, feedForward hidden: Int, activation: Activation = .gelu,
                dropout: Scalar = 0, normPlacement: NormPlacement = .preNorm, rotary: RotaryEmbedding? = nil,
                implementation: AttentionImplementation = FlashAttention(), generator: RandomGenerator = .shared) {
        selfAttention = MultiHeadAttention(dim: dim, heads: heads, keyValueHeads: keyValueHeads, implementation: implementation,
                                           rotary: rotary, generator: generator)
        crossAttention = MultiHeadAttention(dim: dim, heads: heads, keyValueHeads: keyValueHeads, implementation: implementation,
                                            generator: generator)
        feedForward = FeedForward(dim, hidden: hidden, activation: activation, dropout: dropout, generator: generator)
        selfAttentionNorm = LayerNorm(dim)
        crossAttentionNorm = LayerNorm(dim)
        feedForwardNorm = LayerNorm(dim)
        residualDropout = Dropout(dropout, generator: generator)
        self.normPlacement = normPlacement
    }

    /// Caches for incremental decoding: one for self-attention, one for the cross-attention keys/values.
    public struct Cache {
        public let selfAttention = KeyValueCache<Scalar>()
        public let crossAttention = KeyValueCache<Scalar>()
        public init() {}
    }

    /// With `packing` and `memoryPacking`, `x` and `memory` hold packed rows of real tokens (see
    /// ``PackedSequences``); the result is packed like `x`.
    public func callAsFunction(_ x: Tensor<Scalar>, memory: Tensor<Scalar>, memoryPadding: KeyPadding? = nil,
                               cache: Cache? = nil, packing: PackedSequences? = nil,
                               memoryPacking: PackedSequences? = nil) -> Tensor<Scalar> {
        let attendSelf = { (input: Tensor<Scalar>) in
            self.selfAttention(input, causal: true, cache: cache?.selfAttention, packing: packing)
        }
        let attendMemory = { (input: Tensor<Scalar>) in
            self.crossAttention(input, context: memory, keyPadding: memoryPadding, cache: cache?.crossAttention,
                                packing: packing, contextPacking: memoryPacking)
        }
        // Each residual connection and the norm after it are one kernel (`LayerNorm(_:residual:)`).
        switch normPlacement {
        case .preNorm:
            let (h1, normalized1) = crossAttentionNorm(x, residual: residualDropout(attendSelf(selfAttentionNorm(x))))
            let (h2, normalized2) = feedForwardNorm(h1, residual: residualDropout(attendMemory(normalized1)))
            return h2 + residualDropout(feedForward(normalized2))
        case .postNorm:
            var h = selfAttentionNorm(x, residual: residualDropout(attendSelf(x))).normalized
            h = crossAttentionNorm(h, residual: residualDropout(attendMemory(h))).normalized
            return feedForwardNorm(h, residual: residualDropout(feedForward(h))).normalized
        }
    }
}
