/// Keys and values computed so far by one attention layer, for incremental decoding.
public final class KeyValueCache<Scalar: TensorScalar> {
    /// [B, Hkv, N, D] and [B, Hkv, N, Dv], or nil before the first step.
    public private(set) var keys: Tensor<Scalar>?
    public private(set) var values: Tensor<Scalar>?

    public init() {}

    /// Positions already cached.
    public var length: Int { keys?.shape[2] ?? 0 }

    /// Appends this step's keys and values along the sequence axis and returns the whole sequence.
    func append(keys newKeys: Tensor<Scalar>, values newValues: Tensor<Scalar>) -> (Tensor<Scalar>, Tensor<Scalar>) {
        let k = keys.map { Tensor.concatenate([$0, newKeys], axis: 2) } ?? newKeys.contiguous()
        let v = values.map { Tensor.concatenate([$0, newValues], axis: 2) } ?? newValues.contiguous()
        keys = k.detach()
        values = v.detach()
        return (k, v)
    }

    /// Stores keys and values computed once (cross-attention over an encoder's output).
    func store(keys k: Tensor<Scalar>, values v: Tensor<Scalar>) {
        keys = k.detach()
        values = v.detach()
    }
}

/// Multi-head attention with separate query/key/value/output projections, self or cross, with
/// grouped-query heads, optional rotary embeddings, a KV cache, and a swappable implementation.
public final class MultiHeadAttention<Scalar: TensorScalar>: Module<Scalar> {
    public let query: Linear<Scalar>
    public let key: Linear<Scalar>
    public let value: Linear<Scalar>
    public let output: Linear<Scalar>
    public let heads: Int
    public let keyValueHeads: Int
    public let headDim: Int
    public let rotary: RotaryEmbedding?
    /// Dropout on the attention weights while training.
    public let attentionDropout: Scalar
    /// The attention implementation; swap it on a built or trained model (see ``Module/useAttention(_:)``).
    public var implementation: AttentionImplementation
    let generator: RandomGenerator

    public init(dim: Int, heads: Int, keyValueHeads: Int? = nil, implementation: AttentionImplementation = FlashAttention(),
                rotary: RotaryEmbedding? = nil, attentionDropout: Scalar = 0, generator: RandomGenerator = .shared) {
        precondition(dim % heads == 0, "MultiHeadAttention: dim \(dim) is not divisible by \(heads) heads")
        let kvHeads = keyValueHeads ?? heads
        precondition(heads % kvHeads == 0, "MultiHeadAttention: \(heads) heads are not a multiple of \(kvHeads) key/value heads")
        self.heads = heads
        self.keyValueHeads = kvHeads
        headDim = dim / heads
        query = Linear(dim, dim, generator: generator)
        key = Linear(dim, kvHeads * headDim, generator: generator)
        value = Linear(dim, kvHeads * headDim, generator: generator)
        output = Linear(dim, dim, generator: generator)
        self.rotary = rotary
        self.attentionDropout = attentionDropout
        self.implementation = implementation
        self.generator = generator
    }

    /// [B, N, heads·D] → [B, heads, N, D] as a strided view (no copy).
    private func splitHeads(_ x: Tensor<Scalar>, heads: Int) -> Tensor<Scalar> {
        x.reshape([x.shape[0], x.shape[1], heads, headDim]).permute([0, 2, 1, 3])
    }

    /// Attends from `x` [B, Nq, dim] to `context` [B, Nk, dim] (`x` itself when nil).
    ///
    /// - Parameters:
    ///   - keyPadding: which context positions are padding.
    ///   - causal: mask future positions (bottom-right aligned, so it also holds with a cache).
    ///   - cache: for self-attention, appends this step's keys/values; for cross-attention, keeps the
    ///     context's keys/values after the first call.
    public func callAsFunction(_ x: Tensor<Scalar>, context: Tensor<Scalar>? = nil, keyPadding: KeyPadding? = nil,
                               causal: Bool = false, cache: KeyValueCache<Scalar>? = nil) -> Tensor<Scalar> {
        let batch = x.shape[0], length = x.shape[1]
        let offset = context == nil ? (cache?.length ?? 0) : 0
        var q = splitHeads(query(x), heads: heads)
        if let rotary { q = rotary(q, offset: offset) }
        var k: Tensor<Scalar>, v: Tensor<Scalar>
        if let context, let cache, cache.length > 0 {
            (k, v) = (cache.keys!, cache.values!)
        } else {
            let source = context ?? x
            k = splitHeads(key(source), heads: keyValueHeads)
            v = splitHeads(value(source), heads: keyValueHeads)
            if let rotary, context == nil { k = rotary(k, offset: offset) }
            if let cache {
                if context == nil { (k, v) = cache.append(keys: k, values: v) } else { cache.store(keys: k, values: v) }
            }
        }
        var options = AttentionOptions<Scalar>(causal: causal, keyPadding: keyPadding)
        if isTraining && attentionDropout > 0 { options.dropout = (attentionDropout, generator.next()) }
        let attended = attention(query: q, key: k, value: v, options: options, implementation: implementation)
        return output(attended.permute([0, 2, 1, 3]).reshape([batch, length, heads * headDim]))
    }
}

extension Module {
    /// Switches every attention layer below this module to `implementation`; the weights stay as they are.
    public func useAttention(_ implementation: AttentionImplementation) {
        for case let layer as MultiHeadAttention<Scalar> in allModules { layer.implementation = implementation }
    }
}
