import FlashGrad
import FlashGradModels
import Foundation
import XCTest

final class ModelTests: XCTestCase {
    func tinyTransformer(_ implementation: AttentionImplementation, seed: UInt64 = 3) -> Transformer<Float> {
        var c = Transformer<Float>.Configuration(vocabularySize: 8)
        c.dim = 16; c.heads = 2; c.encoderLayers = 1; c.decoderLayers = 1; c.feedForward = 32; c.maximumLength = 10
        return Transformer(c, implementation: implementation, generator: RandomGenerator(seed: seed))
    }

    func tinyGPT(_ implementation: AttentionImplementation, seed: UInt64 = 3) -> GPT<Float> {
        var c = GPT<Float>.Configuration(vocabularySize: 9)
        c.dim = 16; c.heads = 2; c.keyValueHeads = 1; c.layers = 2; c.feedForward = 32; c.maximumLength = 16
        return GPT(c, implementation: implementation, generator: RandomGenerator(seed: seed))
    }

    // One fixed batch: source [2, 5] with lengths 5 and 3; target = BOS (7) + source reversed.
    let source = IndexTensor([1, 2, 3, 4, 5, 3, 1, 4, 0, 0], shape: [2, 5])
    let targetInput = IndexTensor([7, 5, 4, 3, 2, 7, 4, 1, 3, 0], shape: [2, 5])
    let targetOutput = IndexTensor([5, 4, 3, 2, 1, 4, 1, 3, 6, -100], shape: [2, 5])

    func testTransformerOverfitsOneBatchWithEitherAttention() {
        for name in ["flash", "naive"] {
            let model = tinyTransformer(try! AttentionRegistry.implementation(named: name))
            let optimizer = Adam.adamW(model.namedParameters, learningRate: 1e-2)
            var loss: Float = .infinity
            for _ in 0..<150 {
                let logits = model(source: source, sourceLengths: [5, 3], target: targetInput)
                let l = logits.crossEntropy(targets: targetOutput)
                model.zeroGrad()
                l.backward()
                optimizer.step()
                loss = l.item
            }
            XCTAssertLessThan(loss, 0.02, "\(name) attention")
            model.eval()
            let decoded = model.greedyDecode(source, sourceLengths: [5, 3], begin: 7, end: 6, maximumLength: 6)
            XCTAssertEqual(decoded[1], [4, 1, 3], "\(name) attention")
        }
    }

    func testGPTOverfitsOneBatchWithEitherAttention() {
        let tokens = IndexTensor([1, 2, 3, 4, 5, 6, 7, 8, 8, 7, 6, 5, 4, 3, 2, 1], shape: [2, 8])
        let next = IndexTensor([2, 3, 4, 5, 6, 7, 8, 0, 7, 6, 5, 4, 3, 2, 1, 0], shape: [2, 8])
        for name in ["flash", "naive"] {
            let model = tinyGPT(try! AttentionRegistry.implementation(named: name))
            let optimizer = Adam.adamW(model.namedParameters, learningRate: 1e-2)
            var loss: Float = .infinity
            for _ in 0..<120 {
                let l = model(tokens).crossEntropy(targets: next)
                model.zeroGrad()
                l.backward()
                optimizer.step()
                loss = l.item
            }
            XCTAssertLessThan(loss, 0.02, "\(name) attention")
            XCTAssertEqual(model.generate(prompt: [8, 7], count: 6, temperature: 0), [6, 5, 4, 3, 2, 1], "\(name) attention")
        }
    }

    func testPackedLogitsEqualPaddedLogitsAndGradients() {
        let model = tinyTransformer(FlashAttention())
        let targetLengths = [5, 4]
        let packing = PackedSequences(lengths: targetLengths, paddedLength: 5)
        let validTargets = IndexTensor(zip(targetOutput.values, (0..<10).map { $0 % 5 < targetLengths[$0 / 5] }).filter { $1 }.map { $0.0 })
        func lossAndGradients(_ logits: () -> Tensor<Float>) -> (Tensor<Float>, [Float]) {
            model.zeroGrad()
            let rows = logits()
            rows.crossEntropy(targets: validTargets).backward()
            return (rows.detach(), model.parameters.flatMap { $0.grad?.scalars ?? [] })
        }
        let (padded, paddedGradients) = lossAndGradients {
            model(source: source, sourceLengths: [5, 3], target: targetInput).packed(packing)
        }
        let (packed, packedGradients) = lossAndGradients {
            model.packedLogits(source: source, sourceLengths: [5, 3], target: targetInput, targetLengths: targetLengths)
        }
        XCTAssertEqual(packed.shape, [9, 8])
        assertClose(packed, padded, tolerance: 1e-5)
        XCTAssertEqual(packedGradients.count, paddedGradients.count)
        let largest = paddedGradients.map(abs).max()!
        for (a, b) in zip(packedGradients, paddedGradients) { XCTAssertEqual(a, b, accuracy: 1e-5 * largest) }
    }

    func testPackAndUnpackAreInverseAndDifferentiable() {
        let packing = PackedSequences(lengths: [2, 0, 3], paddedLength: 3)
        let x = Tensor<Double>(Array(0..<18).map(Double.init), shape: [3, 3, 2])
        let packed = x.packed(packing)
        XCTAssertEqual(packed.shape, [5, 2])
        XCTAssertEqual(packed.scalars, [0, 1, 2, 3, 12, 13, 14, 15, 16, 17])
        XCTAssertEqual(packed.unpacked(packing).scalars, [0, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 12, 13, 14, 15, 16, 17])
        assertGradcheck({ $0[0].packed(packing) }, inputs: [randomInput([3, 3, 2], RandomGenerator(seed: 1))])
        assertGradcheck({ $0[0].unpacked(packing) }, inputs: [randomInput([5, 2], RandomGenerator(seed: 2))])
    }

    /// backward() frees the graph: live tensor memory returns to the same level after every step.
    func testMemoryDoesNotGrowAcrossTrainingSteps() {
        let model = tinyTransformer(FlashAttention())
        let optimizer = Adam.adamW(model.namedParameters, learningRate: 1e-3)
        var liveAfterStep: [Int] = []
        for _ in 0..<6 {
            let loss = model(source: source, sourceLengths: [5, 3], target: targetInput).crossEntropy(targets: targetOutput)
            model.zeroGrad()
            loss.backward()
            optimizer.step()
            liveAfterStep.append(Device.cpu.memory.liveBytes)
        }
        XCTAssertEqual(Set(liveAfterStep.dropFirst()).count, 1, "live bytes after each step: \(liveAfterStep)")
    }

    func testKeyValueCacheDecodingEqualsFullRecomputation() {
        let model = tinyTransformer(FlashAttention())
        model.eval()
        withoutGradients {
            let memory = model.encode(source, sourceLengths: [5, 3])
            let full = model.decode(targetInput, memory: memory, sourceLengths: [5, 3])
            let caches = model.decoderLayers.map { _ in TransformerDecoderLayer<Float>.Cache() }
            for step in 0..<5 {
                let token = IndexTensor([targetInput.values[step], targetInput.values[5 + step]], shape: [2, 1])
                let incremental = model.decode(token, memory: memory, sourceLengths: [5, 3], caches: caches, offset: step)
                assertClose(incremental, full.slice(axis: 1, step..<(step + 1)).contiguous(), tolerance: 1e-5, "step \(step)")
            }
        }
        let gpt = tinyGPT(FlashAttention())
        withoutGradients {
            let tokens = IndexTensor([3, 1, 4, 1, 5, 2], shape: [1, 6])
            let full = gpt(tokens)
            let caches = gpt.blocks.map { _ in KeyValueCache<Float>() }
            // A two-token prefill, then one token at a time.
            let prefill = gpt(IndexTensor([3, 1], shape: [1, 2]), caches: caches)
            assertClose(prefill, full.slice(axis: 1, 0..<2).contiguous(), tolerance: 1e-5)
            for position in 2..<6 {
                let step = gpt(IndexTensor([tokens.values[position]], shape: [1, 1]), caches: caches, offset: position)
                assertClose(step, full.slice(axis: 1, position..<(position + 1)).contiguous(), tolerance: 1e-5, "position \(position)")
            }
        }
    }

    /// Trains `steps` steps from `start`, drawing batches from `data`; returns the losses.
    func train(_ model: Transformer<Float>, _ optimizer: Adam<Float>, data: RandomGenerator, steps: Range<Int>) -> [Float] {
        steps.map { step in
            let digits = (0..<10).map { _ in Int(data.next() % 5) }
            let source = IndexTensor(digits, shape: [2, 5])
            let target = IndexTensor([7] + digits[0..<4].reversed() + [7] + digits[5..<9].reversed(), shape: [2, 5])
            let expected = IndexTensor(digits[0..<5].reversed() + digits[5..<10].reversed(), shape: [2, 5])
            optimizer.learningRate = Float(WarmupCosineSchedule(peak: 1e-2, warmupSteps: 2, totalSteps: 8).learningRate(step: step))
            let loss = model(source: source, sourceLengths: [5, 5], target: target).crossEntropy(targets: expected)
            model.zeroGrad()
            loss.backward()
            clipGradientNorm(model.parameters, maximumNorm: 1)
            optimizer.step()
            return loss.item
        }
    }

    func testResumeFromCheckpointGivesTheSameLosses() throws {
        let uninterrupted = tinyTransformer(FlashAttention())
        let straight = train(uninterrupted, Adam.adamW(uninterrupted.namedParameters), data: RandomGenerator(seed: 5), steps: 0..<8)

        let first = tinyTransformer(FlashAttention())
        let firstOptimizer = Adam.adamW(first.namedParameters)
        let data = RandomGenerator(seed: 5)
        let before = train(first, firstOptimizer, data: data, steps: 0..<4)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("resume-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try Checkpoint.save(model: first, optimizer: firstOptimizer, metadata: ["data": "\(data.state)"], to: url)

        let resumed = tinyTransformer(FlashAttention(), seed: 99)  // different initial weights, overwritten by the load
        let resumedOptimizer = Adam.adamW(resumed.namedParameters)
        let metadata = try Checkpoint.load(into: resumed, optimizer: resumedOptimizer, from: url)
        XCTAssertEqual(resumedOptimizer.stepCount, 4)
        let after = train(resumed, resumedOptimizer, data: RandomGenerator(seed: UInt64(metadata["data"]!)!), steps: 4..<8)
        XCTAssertEqual(before + after, straight, "bitwise the same losses")
    }

    func testCheckpointReportsEveryMismatch() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("mismatch-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try Checkpoint.save(model: tinyGPT(FlashAttention()), to: url)
        XCTAssertThrowsError(try Checkpoint.load(into: tinyTransformer(FlashAttention()), from: url)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains(url.path) && text.contains("missing parameter 'encoderLayers.0.selfAttention.query.weight'")
                          && text.contains("unexpected parameter 'blocks.0.selfAttention.query.weight'"), text)
        }
        let doubleModel = GPT<Double>(GPT<Double>.Configuration(vocabularySize: 9))
        XCTAssertThrowsError(try Checkpoint.load(into: doubleModel, from: url)) { error in
            XCTAssertTrue("\(error)".contains("has dtype F32, expected F64"), "\(error)")
        }
    }
}
