import FlashGrad
import FlashGradModels
import XCTest

final class ModuleTests: XCTestCase {
    func tinyTransformer(_ implementation: AttentionImplementation = FlashAttention(), seed: UInt64 = 1,
                         norm: NormPlacement = .preNorm) -> Transformer<Float> {
        var c = Transformer<Float>.Configuration(vocabularySize: 7)
        c.dim = 16; c.heads = 2; c.encoderLayers = 1; c.decoderLayers = 1; c.feedForward = 32; c.maximumLength = 12
        c.normPlacement = norm
        return Transformer(c, implementation: implementation, generator: RandomGenerator(seed: seed))
    }

    func testHierarchicalParameterNamesAndCount() {
        let model = tinyTransformer()
        let names = model.namedParameters.map(\.0)
        XCTAssertTrue(names.contains("encoderLayers.0.selfAttention.query.weight"), "\(names)")
        XCTAssertTrue(names.contains("decoderLayers.0.crossAttention.output.bias"))
        XCTAssertTrue(names.contains("decoderLayers.0.feedForward.expand.weight"))
        XCTAssertTrue(names.contains("tokenEmbedding.weight"))
        XCTAssertEqual(Set(names).count, names.count, "names are unique")
        // 7·16 embedding + 12·16 positions + encoder (4 projections of 16·16+16, FF 16·32+32 + 32·16+16, 2 norms of 32)
        // + decoder (8 projections, FF, 3 norms) + 2 final norms + output 16·7+7.
        let attention = 4 * (16 * 16 + 16), feedForward = 16 * 32 + 32 + 32 * 16 + 16, norm = 32
        let expected = 7 * 16 + 12 * 16 + (attention + feedForward + 2 * norm) + (2 * attention + feedForward + 3 * norm) + 2 * norm + 16 * 7 + 7
        XCTAssertEqual(model.parameterCount, expected)
        XCTAssertNil(tinyTransformer(norm: .postNorm).encoderNorm)
    }

    func testStateDictionaryRoundTripAndMismatchReport() throws {
        let source = tinyTransformer(seed: 1), target = tinyTransformer(seed: 2)
        XCTAssertNotEqual(source.tokenEmbedding.weight.scalars, target.tokenEmbedding.weight.scalars)
        try target.loadStateDictionary(source.stateDictionary())
        for ((name, a), (_, b)) in zip(source.namedParameters, target.namedParameters) { XCTAssertEqual(a.scalars, b.scalars, name) }
        var broken = source.stateDictionary()
        broken["tokenEmbedding.weight"] = Tensor<Float>.zeros([3, 3])
        broken.removeValue(forKey: "outputProjection.bias")
        broken["extra.weight"] = Tensor<Float>.zeros([1])
        XCTAssertThrowsError(try target.loadStateDictionary(broken)) { error in
            let problems = (error as! StateDictionaryError).problems
            XCTAssertEqual(problems.count, 3, "\(problems)")
            XCTAssertTrue(problems.contains("missing parameter 'outputProjection.bias'"))
            XCTAssertTrue(problems.contains("unexpected parameter 'extra.weight'"))
            XCTAssertTrue(problems.contains("parameter 'tokenEmbedding.weight' has shape [3, 3] in the state, [7, 16] in the model"))
        }
    }

    func testTrainEvalModeReachesEveryLayer() {
        let model = tinyTransformer()
        model.eval()
        XCTAssertTrue(model.allModules.allSatisfy { !$0.isTraining })
        model.train()
        XCTAssertTrue(model.allModules.allSatisfy { $0.isTraining })
        let dropout = Dropout<Float>(0.5, generator: RandomGenerator(seed: 1))
        let x = Tensor<Float>.ones([1000])
        let dropped = dropout(x).scalars
        XCTAssertEqual(Float(dropped.filter { $0 == 0 }.count) / 1000, 0.5, accuracy: 0.06)
        XCTAssertTrue(dropped.allSatisfy { $0 == 0 || $0 == 2 })
        dropout.eval()
        XCTAssertEqual(dropout(x).scalars, x.scalars)
    }

    func testLayersMatchHandComputedValues() {
        let linear = Linear<Double>(2, 1)
        linear.weight.assign(Tensor([2, -1], shape: [1, 2]))
        linear.bias!.assign(Tensor([0.5]))
        XCTAssertEqual(linear(Tensor([3, 4, 1, 1], shape: [2, 1, 2])).scalars, [2.5, 1.5])
        let rope = RotaryEmbedding()
        let x = Tensor<Double>([1, 0], shape: [1, 1, 1, 2])
        // Position 1, frequency 1: (1, 0) rotates by one radian.
        let rotated = rope(x, offset: 1).scalars
        XCTAssertEqual(rotated[0], cos(1.0), accuracy: 1e-12)
        XCTAssertEqual(rotated[1], sin(1.0), accuracy: 1e-12)
        let sinusoid = SinusoidalPositionalEmbedding<Double>(dim: 4)(length: 2, offset: 0).scalars
        XCTAssertEqual(sinusoid, [0, 1, 0, 1, sin(1), cos(1), sin(0.01), cos(0.01)].map { $0 }, "sin/cos pairs at positions 0 and 1")
    }

    func testLayerGradientsInDouble() {
        let generator = RandomGenerator(seed: 4)
        let layer = TransformerEncoderLayer<Double>(dim: 4, heads: 2, keyValueHeads: 1, feedForward: 6, rotary: RotaryEmbedding(),
                                                    generator: generator)
        let x = Tensor<Double>.normal([2, 3, 4], generator: generator, requiresGrad: true)
        assertGradcheck({ layer($0[0], keyPadding: .lengths([3, 2]), causal: true) }, inputs: [x])
        let weight = layer.feedForward.expand.weight
        assertGradcheck({ _ in layer(x.detach(), causal: true) }, inputs: [weight])
    }

    func testSwappingAttentionKeepsOutputsAndGradients() {
        let model = tinyTransformer()
        let source = IndexTensor([1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 10 % 7, 5], shape: [2, 6])
        let target = IndexTensor([6, 1, 2, 3, 6, 4, 5, 0], shape: [2, 4])
        func run() -> [Float] {
            model.zeroGrad()
            let loss = model(source: source, sourceLengths: [6, 4], target: target).crossEntropy(targets: IndexTensor([1, 2, 3, 4, 4, 5, 0, 1], shape: [2, 4]))
            loss.backward()
            return [loss.item] + model.parameters.flatMap { $0.grad!.scalars }
        }
        let flash = run()
        model.useAttention(NaiveAttention())
        XCTAssertTrue(model.allModules.compactMap { $0 as? MultiHeadAttention<Float> }.allSatisfy { $0.implementation.name == "naive" })
        let naive = run()
        let largest = naive.map(abs).max()!
        for (a, b) in zip(flash, naive) { XCTAssertEqual(a, b, accuracy: 1e-4 * largest) }
    }
}
