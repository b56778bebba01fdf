@testable import FlashGrad
import XCTest

/// Every differentiable op, checked against central differences in Double, with broadcast shapes.
final class GradcheckTests: XCTestCase {
    let generator = RandomGenerator(seed: 2024)

    func testBinaryOpsWithBroadcasting() {
        let a = randomInput([3, 1, 4], generator), b = randomInput([2, 1], generator)
        assertGradcheck({ $0[0] + $0[1] }, inputs: [a, b])
        assertGradcheck({ $0[0] - $0[1] }, inputs: [a, b])
        assertGradcheck({ $0[0] * $0[1] }, inputs: [a, b])
        let positive = randomInput([2, 1], generator, low: 0.5, high: 2)
        assertGradcheck({ $0[0] / $0[1] }, inputs: [a, positive])
        let base = randomInput([3, 4], generator, low: 0.5, high: 2)
        assertGradcheck({ $0[0].pow($0[1]) }, inputs: [base, randomInput([4], generator)])
    }

    func testScalarOperators() {
        let a = randomInput([5], generator, low: 0.5, high: 2)
        assertGradcheck({ 2 - $0[0] * 3 + 1 }, inputs: [a])
        assertGradcheck({ 1 / $0[0] - $0[0] / 4 }, inputs: [a])
        assertGradcheck({ -$0[0] }, inputs: [a])
        assertGradcheck({ $0[0].pow(3) }, inputs: [randomInput([5], generator)])
        assertGradcheck({ $0[0].pow(-1.5) }, inputs: [a])
    }

    func testUnaryOps() {
        let x = randomInput([3, 5], generator, low: -2, high: 2)
        let positive = randomInput([3, 5], generator, low: 0.3, high: 3)
        assertGradcheck({ $0[0].exp() }, inputs: [x])
        assertGradcheck({ $0[0].log() }, inputs: [positive])
        assertGradcheck({ $0[0].sqrt() }, inputs: [positive])
        assertGradcheck({ $0[0].rsqrt() }, inputs: [positive])
        assertGradcheck({ $0[0].abs() }, inputs: [x])
        assertGradcheck({ $0[0].tanh() }, inputs: [x])
        assertGradcheck({ $0[0].sigmoid() }, inputs: [x])
        assertGradcheck({ $0[0].relu() }, inputs: [x])
        assertGradcheck({ $0[0].gelu() }, inputs: [x])
        assertGradcheck({ $0[0].gelu(approximate: true) }, inputs: [x])
        assertGradcheck({ $0[0].silu() }, inputs: [x])
        assertGradcheck({ $0[0].clamp(min: -0.5, max: 0.7) }, inputs: [x])
    }

    /// activation(x + bias) in one kernel: its gradients, and its values against the two ops it fuses.
    func testBiasedActivation() {
        for activation in Activation.allCases {
            assertGradcheck({ $0[0].biasedActivation($0[1], activation) }, inputs: [randomInput([2, 3, 4], generator), randomInput([4], generator)])
            let x = randomInput([5, 4], generator), bias = randomInput([4], generator)
            let unfused = activation(x + bias).scalars, fused = x.biasedActivation(bias, activation).scalars
            for (a, b) in zip(unfused, fused) { XCTAssertEqual(a, b, accuracy: 1e-15, "\(activation)") }
            // Large enough to be split over threads mid-row: the same values, and gradients.
            let wide = Tensor<Float>.normal([2001, 37], generator: RandomGenerator(seed: 5)).requiringGrad()
            let wideBias = Tensor<Float>.normal([37], generator: RandomGenerator(seed: 6)).requiringGrad()
            XCTAssertEqual(wide.biasedActivation(wideBias, activation).scalars, activation(wide + wideBias).scalars, "\(activation)")
            wide.biasedActivation(wideBias, activation).sum().backward()
            let (fusedInput, fusedBias) = (wide.grad!.scalars, wideBias.grad!.scalars)
            wide.zeroGrad(); wideBias.zeroGrad()
            activation(wide + wideBias).sum().backward()
            XCTAssertEqual(fusedInput, wide.grad!.scalars, "\(activation): input gradient")
            XCTAssertEqual(fusedBias, wideBias.grad!.scalars, "\(activation): bias gradient")
        }
    }

    func testMatmul() {
        assertGradcheck({ $0[0].matmul($0[1]) }, inputs: [randomInput([3, 4], generator), randomInput([4, 2], generator)])
        // Batch broadcasting: [2, 1, 3, 4] × [5, 4, 2] → [2, 5, 3, 2].
        assertGradcheck({ $0[0].matmul($0[1]) }, inputs: [randomInput([2, 1, 3, 4], generator), randomInput([5, 4, 2], generator)])
        // Transposed operands go to gemm without a copy.
        assertGradcheck({ $0[0].transposed().matmul($0[1].transposed()) },
                        inputs: [randomInput([4, 3], generator), randomInput([2, 4], generator)])
        assertGradcheck({ $0[0].matmul($0[1]) }, inputs: [randomInput([4], generator), randomInput([4, 3], generator)])
        assertGradcheck({ $0[0].transposed().matmul($0[1]) }, inputs: [randomInput([4, 3], generator), randomInput([2, 4, 2], generator)])
        // Linear's Wᵀ hands W a gradient in W's own layout, which the backward keeps without a copy.
        let linear = Linear<Double>(3, 2)
        linear(randomInput([5, 3], generator)).sum().backward()
        XCTAssertTrue(linear.weight.grad!.isContiguous)
    }

    func testReductions() {
        let x = randomInput([2, 3, 4], generator)
        assertGradcheck({ $0[0].sum() }, inputs: [x])
        assertGradcheck({ $0[0].sum(axes: [0, 2], keepDims: true) }, inputs: [x])
        assertGradcheck({ $0[0].mean(axis: 1) }, inputs: [x])
        assertGradcheck({ $0[0].max(axis: 2) }, inputs: [x])
        assertGradcheck({ $0[0].min(axis: 0, keepDims: true) }, inputs: [x])
        assertGradcheck({ $0[0].variance(axes: [1]) }, inputs: [x])
        assertGradcheck({ $0[0].variance(axes: [0, 2], unbiased: false, keepDims: true) }, inputs: [x])
    }

    func testSoftmaxFamily() {
        let x = randomInput([3, 5], generator, low: -3, high: 3)
        assertGradcheck({ $0[0].softmax() }, inputs: [x])
        assertGradcheck({ $0[0].logSoftmax() }, inputs: [x])
        assertGradcheck({ $0[0].softmax(axis: 0) }, inputs: [x])
        assertGradcheck({ $0[0].logSoftmax(axis: 0) }, inputs: [x])
    }

    func testNormalization() {
        let x = randomInput([4, 6], generator, low: -2, high: 2)
        assertGradcheck({ $0[0].layerNorm(weight: $0[1], bias: $0[2]) },
                        inputs: [x, randomInput([6], generator), randomInput([6], generator)])
        assertGradcheck({ $0[0].layerNorm() }, inputs: [x])
        assertGradcheck({ $0[0].rmsNorm(weight: $0[1]) }, inputs: [x, randomInput([6], generator)])
        // With a residual added in the same kernel: both outputs' gradients reach both inputs, and the
        // values equal the unfused addition and norm.
        let residual = randomInput([4, 6], generator)
        assertGradcheck({ let r = $0[0].layerNorm(residual: $0[1], weight: $0[2], bias: $0[3]); return r.sum * 0.5 + r.normalized },
                        inputs: [x, residual, randomInput([6], generator), randomInput([6], generator)])
        assertGradcheck({ let r = $0[0].rmsNorm(residual: $0[1], weight: $0[2]); return r.sum * 0.5 + r.normalized },
                        inputs: [x, residual, randomInput([6], generator)])
        let fused = x.layerNorm(residual: residual), unfused = (x + residual).layerNorm()
        XCTAssertEqual(fused.sum.scalars, (x + residual).scalars)
        XCTAssertEqual(fused.normalized.scalars, unfused.scalars)
    }

    func testViews() {
        let x = randomInput([2, 3, 4], generator)
        assertGradcheck({ $0[0].reshape([6, 4]) }, inputs: [x])
        assertGradcheck({ $0[0].permute([2, 0, 1]) * Tensor<Double>.arange(0, 3) }, inputs: [x])
        assertGradcheck({ $0[0].transposed(0, 2).contiguous() }, inputs: [x])
        assertGradcheck({ $0[0].slice(axis: 2, 1..<3) }, inputs: [x])
        assertGradcheck({ $0[0].unsqueeze(1).expand([2, 5, 3, 4]) }, inputs: [x])
        assertGradcheck({ Tensor.concatenate([$0[0], $0[1]], axis: 1) }, inputs: [x, randomInput([2, 2, 4], generator)])
        assertGradcheck({ $0[0].chunk(3, axis: 2)[1] * 2 }, inputs: [x])
        assertGradcheck({ $0[0].squeeze(1) }, inputs: [randomInput([3, 1, 2], generator)])
    }

    func testEmbeddingWhereMaskedFillDropout() {
        let table = randomInput([5, 3], generator)
        assertGradcheck({ $0[0].embedding(IndexTensor([1, 4, 1, 0], shape: [2, 2])) }, inputs: [table])
        let mask = BoolTensor([true, false, false, true, true, false], shape: [2, 3])
        assertGradcheck({ Tensor.where(mask, $0[0], $0[1]) }, inputs: [randomInput([2, 3], generator), randomInput([3], generator)])
        assertGradcheck({ $0[0].maskedFill(BoolTensor([true, false, true]), -5) }, inputs: [randomInput([2, 3], generator)])
        assertGradcheck({ $0[0].dropout(0.4, training: true, generator: RandomGenerator(seed: 9)) }, inputs: [randomInput([4, 5], generator)])
    }

    func testCrossEntropy() {
        let logits = randomInput([4, 5], generator, low: -2, high: 2)
        let targets = IndexTensor([1, 4, -100, 0])
        assertGradcheck({ $0[0].crossEntropy(targets: targets) }, inputs: [logits])
        assertGradcheck({ $0[0].crossEntropy(targets: targets, labelSmoothing: 0.1) }, inputs: [logits])
        assertGradcheck({ $0[0].reshape([2, 2, 5]).crossEntropy(targets: IndexTensor([1, 4, 3, 0], shape: [2, 2]), ignoreIndex: 3) },
                        inputs: [logits])
    }

    func testLinearAlgebra() {
        let a = randomInput([3, 3], generator)
        let b = randomInput([3, 2], generator)
        // Diagonally dominant, so the solve is well conditioned.
        assertGradcheck({ ($0[0] + Tensor<Double>.eye(3) * 4).solve($0[1]) }, inputs: [a, b])
        assertGradcheck({ ($0[0] + Tensor<Double>.eye(3) * 4).solve($0[1]) }, inputs: [a, randomInput([3], generator)])
        // Cholesky of a symmetric positive-definite matrix built from an arbitrary one.
        assertGradcheck({ ($0[0].matmul($0[0].transposed()) + Tensor<Double>.eye(3)).cholesky() }, inputs: [a])
    }

    func testComposite() {
        // A small MLP with a loss: exercises accumulation through shared subgraphs.
        let x = randomInput([4, 3], generator), w1 = randomInput([3, 5], generator), w2 = randomInput([5, 2], generator)
        assertGradcheck({ ($0[0].matmul($0[1]).tanh().matmul($0[2]) + $0[0].sum(axis: 1, keepDims: true)).logSoftmax().mean() },
                        inputs: [x, w1, w2])
    }
}
