import FlashGrad
import RealModule

/// A decoder-only language model (GPT-style): token and learned position embeddings, pre-LN causal
/// self-attention blocks, a final norm and a linear head; sampling with a KV cache.
public final class GPT<Scalar: TensorScalar>: Module<Scalar> {
    public struct Configuration {
        public var vocabularySize: Int
        public var dim = 128
        public var heads = 4
        public var keyValueHeads: Int? = nil
        public var layers = 4
        public var feedForward = 512
        public var dropout: Scalar = 0
        public var maximumLength = 128

        public init(vocabularySize: Int) { self.vocabularySize = vocabularySize }
    }

    public let configuration: Configuration
    public let tokenEmbedding: Embedding<Scalar>
    public let positions: LearnedPositionalEmbedding<Scalar>
    public let blocks: [TransformerEncoderLayer<Scalar>]
    public let finalNorm: LayerNorm<Scalar>
    public let head: Linear<Scalar>

    public init(_ c: Configuration, implementation: AttentionImplementation = FlashAttention(), generator: RandomGenerator = .shared) {
        configuration = c
        tokenEmbedding = Embedding(c.vocabularySize, c.dim, generator: generator)
        positions = LearnedPositionalEmbedding(maximumLength: c.maximumLength, dim: c.dim, generator: generator)
        blocks = (0..<c.layers).map { _ in
            TransformerEncoderLayer(dim: c.dim, heads: c.heads, keyValueHeads: c.keyValueHeads, feedForward: c.feedForward,
                                    dropout: c.dropout, implementation: implementation, generator: generator)
        }
        finalNorm = LayerNorm(c.dim)
        head = Linear(c.dim, c.vocabularySize, generator: generator)
    }

    /// Next-token logits [B, N, vocabulary] for [B, N] tokens at positions `offset ..< offset + N`.
    public func callAsFunction(_ tokens: IndexTensor, caches: [KeyValueCache<Scalar>]? = nil, offset: Int = 0) -> Tensor<Scalar> {
        require(offset + tokens.shape[1] <= configuration.maximumLength,
                     "GPT: \(offset + tokens.shape[1]) positions exceed the maximum length \(configuration.maximumLength)")
        var h = tokenEmbedding(tokens) + positions(length: tokens.shape[1], offset: offset)
        for (index, block) in blocks.enumerated() { h = block(h, causal: true, cache: caches?[index]) }
        return head(finalNorm(h))
    }

    /// Continues `prompt` by `count` tokens, sampling from softmax(logits / temperature) restricted to
    /// the `topK` most likely tokens (greedy when temperature is 0). Feeds one token a step through
    /// the KV cache; stops early at `stop` when given.
    public func generate(prompt: [Int], count: Int, temperature: Double = 1, topK: Int? = nil, stop: Int? = nil,
                         generator: RandomGenerator = .shared) -> [Int] {
        require(!prompt.isEmpty, "GPT.generate: the prompt must not be empty")
        require(temperature >= 0, "GPT.generate: temperature must be ≥ 0, got \(temperature)")
        return withoutGradients {
            let caches = blocks.map { _ in KeyValueCache<Scalar>() }
            var logits = self(IndexTensor(prompt, shape: [1, prompt.count]), caches: caches)
            var generated: [Int] = []
            for _ in 0..<count {
                let last = logits.slice(axis: 1, (logits.shape[1] - 1)..<logits.shape[1]).scalars.map(Double.init)
                let next = sample(last, temperature: temperature, topK: topK, generator: generator)
                if next == stop { break }
                generated.append(next)
                let position = prompt.count + generated.count - 1
                if position + 1 >= configuration.maximumLength { break }
                logits = self(IndexTensor([next], shape: [1, 1]), caches: caches, offset: position)
            }
            return generated
        }
    }
}

/// A token index drawn from logits: argmax at temperature 0, else softmax(logits/T) over the top k.
func sample(_ logits: [Double], temperature: Double, topK: Int?, generator: RandomGenerator) -> Int {
    let best = logits.indices.max { logits[$0] < logits[$1] }!
    if temperature == 0 { return best }
    var candidates = logits.indices.sorted { logits[$0] > logits[$1] }
    if let topK { candidates = Array(candidates.prefix(Swift.max(1, topK))) }
    let weights = candidates.map { Double.exp((logits[$0] - logits[best]) / temperature) }
    var threshold = generator.uniform(Double.self) * weights.reduce(0, +)
    for (candidate, weight) in zip(candidates, weights) {
        threshold -= weight
        if threshold < 0 { return candidate }
    }
    return candidates.last!
}
