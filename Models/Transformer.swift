import FlashGrad

/// An encoder–decoder Transformer for sequence-to-sequence tasks (Vaswani et al.), with token
/// embeddings shared by source and target, and greedy decoding that uses a KV cache.
public final class Transformer<Scalar: TensorScalar>: Module<Scalar> {
    public struct Configuration {
        public var vocabularySize: Int
        public var dim = 128
        public var heads = 4
        public var keyValueHeads: Int? = nil
        public var encoderLayers = 2
        public var decoderLayers = 2
        public var feedForward = 512
        public var activation = Activation.gelu
        public var dropout: Scalar = 0
        public var normPlacement = NormPlacement.preNorm
        public var maximumLength = 64
        public var learnedPositions = true

        public init(vocabularySize: Int) { self.vocabularySize = vocabularySize }
    }

    public let configuration: Configuration
    public let tokenEmbedding: Embedding<Scalar>
    public let learnedPositions: LearnedPositionalEmbedding<Scalar>?
    public let sinusoidalPositions: SinusoidalPositionalEmbedding<Scalar>?
    public let encoderLayers: [TransformerEncoderLayer<Scalar>]
    public let decoderLayers: [TransformerDecoderLayer<Scalar>]
    /// Final norms of the pre-LN stacks (post-LN layers end normalised already).
    public let encoderNorm: LayerNorm<Scalar>?
    public let decoderNorm: LayerNorm<Scalar>?
    public let outputProjection: Linear<Scalar>

    public init(_ c: Configuration, implementation: AttentionImplementation = FlashAttention(), generator: RandomGenerator = .shared) {
        configuration = c
        tokenEmbedding = Embedding(c.vocabularySize, c.dim, generator: generator)
        learnedPositions = c.learnedPositions ? LearnedPositionalEmbedding(maximumLength: c.maximumLength, dim: c.dim, generator: generator) : nil
        sinusoidalPositions = c.learnedPositions ? nil : SinusoidalPositionalEmbedding(dim: c.dim)
        encoderLayers = (0..<c.encoderLayers).map { _ in
            TransformerEncoderLayer(dim: c.dim, heads: c.heads, keyValueHeads: c.keyValueHeads, feedForward: c.feedForward,
                                    activation: c.activation, dropout: c.dropout, normPlacement: c.normPlacement,
                                    implementation: implementation, generator: generator)
        }
        decoderLayers = (0..<c.decoderLayers).map { _ in
            TransformerDecoderLayer(dim: c.dim, heads: c.heads, keyValueHeads: c.keyValueHeads, feedForward: c.feedForward,
                                    activation: c.activation, dropout: c.dropout, normPlacement: c.normPlacement,
                                    implementation: implementation, generator: generator)
        }
        encoderNorm = c.normPlacement == .preNorm ? LayerNorm(c.dim) : nil
        decoderNorm = c.normPlacement == .preNorm ? LayerNorm(c.dim) : nil
        outputProjection = Linear(c.dim, c.vocabularySize, generator: generator)
    }

    /// Token plus position embeddings of [B, N] tokens at positions `offset ..< offset + N`.
    private func embed(_ tokens: IndexTensor, offset: Int = 0) -> Tensor<Scalar> {
        let length = tokens.shape[1]
        let positions = learnedPositions?(length: length, offset: offset) ?? sinusoidalPositions!(length: length, offset: offset)
        return tokenEmbedding(tokens) + positions
    }

    /// Encodes [B, Ns] source tokens; `sourceLengths[b]` tokens of row b are real, the rest padding.
    public func encode(_ source: IndexTensor, sourceLengths: [Int]) -> Tensor<Scalar> {
        var h = embed(source)
        for layer in encoderLayers { h = layer(h, keyPadding: .lengths(sourceLengths)) }
        return encoderNorm?(h) ?? h
    }

    /// Next-token logits [B, Nt, vocabulary] for [B, Nt] target tokens given the encoder's `memory`.
    public func decode(_ target: IndexTensor, memory: Tensor<Scalar>, sourceLengths: [Int],
                       caches: [TransformerDecoderLayer<Scalar>.Cache]? = nil, offset: Int = 0) -> Tensor<Scalar> {
        var h = embed(target, offset: offset)
        for (index, layer) in decoderLayers.enumerated() {
            h = layer(h, memory: memory, memoryPadding: .lengths(sourceLengths), cache: caches?[index])
        }
        return outputProjection(decoderNorm?(h) ?? h)
    }

    /// Teacher-forced logits for training.
    public func callAsFunction(source: IndexTensor, sourceLengths: [Int], target: IndexTensor) -> Tensor<Scalar> {
        decode(target, memory: encode(source, sourceLengths: sourceLengths), sourceLengths: sourceLengths)
    }

    /// Teacher-forced logits for the real target positions only, packed [T, vocabulary] in sequence
    /// order: row b's first `targetLengths[b]` positions. Source and target padding never pass through
    /// the linear layers, norms or feed-forward blocks (see ``PackedSequences``); the loss over these
    /// rows equals the padded call's loss over the same positions.
    public func packedLogits(source: IndexTensor, sourceLengths: [Int], target: IndexTensor, targetLengths: [Int]) -> Tensor<Scalar> {
        let sourcePacking = PackedSequences(lengths: sourceLengths, paddedLength: source.shape[1])
        let targetPacking = PackedSequences(lengths: targetLengths, paddedLength: target.shape[1])
        var memory = embed(source).packed(sourcePacking)
        for layer in encoderLayers { memory = layer(memory, packing: sourcePacking) }
        memory = encoderNorm?(memory) ?? memory
        var h = embed(target).packed(targetPacking)
        for layer in decoderLayers { h = layer(h, memory: memory, packing: targetPacking, memoryPacking: sourcePacking) }
        return outputProjection(decoderNorm?(h) ?? h)
    }

    /// Greedy decoding with a KV cache: each step feeds only the newest token. Returns, per row, the
    /// tokens after `begin` up to (not including) `end`, or `maximumLength` tokens.
    public func greedyDecode(_ source: IndexTensor, sourceLengths: [Int], begin: Int, end: Int, maximumLength: Int) -> [[Int]] {
        withoutGradients {
            let batch = source.shape[0]
            let memory = encode(source, sourceLengths: sourceLengths)
            let caches = decoderLayers.map { _ in TransformerDecoderLayer<Scalar>.Cache() }
            var outputs = [[Int]](repeating: [], count: batch)
            var finished = [Bool](repeating: false, count: batch)
            var current = [Int](repeating: begin, count: batch)
            for step in 0..<maximumLength {
                let logits = decode(IndexTensor(current, shape: [batch, 1]), memory: memory, sourceLengths: sourceLengths,
                                    caches: caches, offset: step)
                current = argmaxRows(logits.reshape([batch, -1]))
                for row in 0..<batch where !finished[row] {
                    if current[row] == end { finished[row] = true } else { outputs[row].append(current[row]) }
                }
                if !finished.contains(false) { break }
            }
            return outputs
        }
    }
}

/// Index of the largest value in each row of a [rows, columns] tensor.
func argmaxRows<Scalar: TensorScalar>(_ logits: Tensor<Scalar>) -> [Int] {
    let columns = logits.shape[1], values = logits.scalars
    return (0..<logits.shape[0]).map { row in
        let slice = values[(row * columns)..<((row + 1) * columns)]
        return slice.indices.max { slice[$0] < slice[$1] }! - row * columns
    }
}
