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
        require(dim % heads == 0, "MultiHeadAttention: dim \(dim) is not divisible by \(heads) heads")
        let kvHeads = keyValueHeads ?? heads
        require(heads % kvHeads == 0, "MultiHeadAttention: \(heads) heads are not a multiple of \(kvHeads) key/value heads")
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

    /// Attends from `x` [B, Nq, dim] to `context` [B, Nk, dim] (`x` itself when nil).
    ///
    /// - Parameters:
    ///   - keyPadding: which context positions are padding.
    ///   - causal: mask future positions (bottom-right aligned, so it also holds with a cache).
    ///   - cache: for self-attention, appends this step's keys/values; for cross-attention, keeps the
    ///     context's keys/values after the first call.
    ///   - packing: `x` is packed [T, dim] rows (see ``PackedSequences``); the result is packed too.
    ///   - contextPacking: `context` is packed; its padding is masked by key lengths.
    public func callAsFunction(_ x: Tensor<Scalar>, context: Tensor<Scalar>? = nil, keyPadding: KeyPadding? = nil,
                               causal: Bool = false, cache: KeyValueCache<Scalar>? = nil,
                               packing: PackedSequences? = nil, contextPacking: PackedSequences? = nil) -> Tensor<Scalar> {
        // Projections run on whatever rows there are; heads need the padded [B, N, …] layout.
        func heads(_ projected: Tensor<Scalar>, _ layout: PackedSequences?, count: Int) -> Tensor<Scalar> {
            let padded = layout.map { projected.unpacked($0) } ?? projected
            return padded.reshape([padded.shape[0], padded.shape[1], count, headDim]).permute([0, 2, 1, 3])
        }
        let keyLayout = context == nil ? packing : contextPacking
        let offset = context == nil ? (cache?.length ?? 0) : 0
        var q = heads(query(x), packing, count: self.heads)
        if let rotary { q = rotary(q, offset: offset) }
        var k: Tensor<Scalar>, v: Tensor<Scalar>
        if context != nil, let cache, cache.length > 0 {
            (k, v) = (cache.keys!, cache.values!)
        } else {
            let source = context ?? x
            k = heads(key(source), keyLayout, count: keyValueHeads)
            v = heads(value(source), keyLayout, count: keyValueHeads)
            if let rotary, context == nil { k = rotary(k, offset: offset) }
            if let cache {
                if context == nil { (k, v) = cache.append(keys: k, values: v) } else { cache.store(keys: k, values: v) }
            }
        }
        var options = AttentionOptions<Scalar>(causal: causal, keyPadding: keyPadding ?? keyLayout.map { .lengths($0.lengths) })
        if isTraining && attentionDropout > 0 { options.dropout = (attentionDropout, generator.next()) }
        let attended = attention(query: q, key: k, value: v, options: options, implementation: implementation)
        let merged = attended.permute([0, 2, 1, 3]).reshape([q.shape[0], q.shape[2], self.heads * headDim])
        return output(packing.map { merged.packed($0) } ?? merged)
    }
}

extension Module {
    /// Switches every attention layer below this module to `implementation`; the weights stay as they are.
    public func useAttention(_ implementation: AttentionImplementation) {
        for case let layer as MultiHeadAttention<Scalar> in allModules { layer.implementation = implementation }
    }
}
