import FlashGrad
import XCTest

final class OptimizerTests: XCTestCase {
    /// One parameter θ = [1, −2] with fixed gradient g = [0.5, 1].
    func makeParameter() -> [(String, Tensor<Double>)] {
        let theta = Tensor<Double>([1, -2], requiresGrad: true)
        theta.grad = Tensor([0.5, 1])
        return [("theta", theta)]
    }

    func testSGDWithMomentumNesterovAndWeightDecay() {
        let p = makeParameter()
        let sgd = SGD(p, learningRate: 0.1, momentum: 0.9, nesterov: true, weightDecay: 0.01)
        sgd.step()
        // g' = g + 0.01θ = [0.51, 0.98];  b = g';  step = g' + 0.9b = 1.9g';  θ − 0.1·step
        XCTAssertEqual(p[0].1.scalars[0], 1 - 0.1 * 1.9 * 0.51, accuracy: 1e-12)
        XCTAssertEqual(p[0].1.scalars[1], -2 - 0.1 * 1.9 * 0.98, accuracy: 1e-12)
        let plain = makeParameter()
        SGD(plain, learningRate: 0.5).step()
        XCTAssertEqual(plain[0].1.scalars, [0.75, -2.5])
    }

    func testAdamAndAdamWFirstSteps() {
        // First Adam step moves each coordinate by lr·sign(g) (bias-corrected m/√v = g/|g|), up to ε.
        let p = makeParameter()
        let adam = Adam(p, learningRate: 0.1)
        adam.step()
        XCTAssertEqual(p[0].1.scalars[0], 0.9, accuracy: 1e-7)
        XCTAssertEqual(p[0].1.scalars[1], -2.1, accuracy: 1e-7)
        // Second step with the same gradient: m̂ = g, v̂ = g², so again lr·sign(g).
        adam.step()
        XCTAssertEqual(p[0].1.scalars[0], 0.8, accuracy: 1e-7)
        let q = makeParameter()
        let adamW = Adam.adamW(q, learningRate: 0.1, weightDecay: 0.5)
        adamW.step()
        // Decoupled: θ(1 − 0.1·0.5) then − 0.1·sign(g).
        XCTAssertEqual(q[0].1.scalars[0], 1 * 0.95 - 0.1, accuracy: 1e-7)
        XCTAssertEqual(q[0].1.scalars[1], -2 * 0.95 - 0.1, accuracy: 1e-7)
        let r = makeParameter()
        Adam(r, learningRate: 0.1, weightDecay: 0.5).step()
        // L2: g' = g + 0.5θ = [1, 0], so the second coordinate's step is 0/(0 + ε) = 0.
        XCTAssertEqual(r[0].1.scalars[0], 0.9, accuracy: 1e-7)
        XCTAssertEqual(r[0].1.scalars[1], -2, accuracy: 1e-7)
    }

    func testClipByGlobalNorm() {
        let a = Tensor<Double>([0], requiresGrad: true), b = Tensor<Double>([0, 0], requiresGrad: true)
        a.grad = Tensor([3]); b.grad = Tensor([0, 4])
        let norm = clipGradientNorm([a, b], maximumNorm: 1)
        XCTAssertEqual(norm.item, 5)
        XCTAssertEqual(a.grad!.scalars[0], 0.6, accuracy: 1e-6)
        XCTAssertEqual(b.grad!.scalars[1], 0.8, accuracy: 1e-6)
        XCTAssertEqual(clipGradientNorm([a, b], maximumNorm: 10).item, 1, accuracy: 1e-6, "below the bound nothing changes")
        // In place, as PyTorch: a gradient held elsewhere is scaled too; a parameter listed twice counts once;
        // a strided gradient is replaced by a contiguous one that is scaled.
        let held = a.grad!, (aBefore, bBefore) = (a.grad!.scalars[0], b.grad!.scalars[1])
        let c = Tensor<Double>([0, 0], requiresGrad: true)
        c.grad = Tensor([6, 0, 8, 0], shape: [2, 2]).slice(axis: 1, 0..<1).squeeze(1)
        let total = (aBefore * aBefore + bBefore * bBefore + 100).squareRoot()
        XCTAssertEqual(clipGradientNorm([a, b, c, c], maximumNorm: 0.5).item, total, accuracy: 1e-12)
        let factor = 0.5 / (total + 1e-6)
        XCTAssertEqual(held.scalars[0], aBefore * factor, accuracy: 1e-12)
        XCTAssertEqual(c.grad!.scalars[0], 6 * factor, accuracy: 1e-12)
        XCTAssertEqual(c.grad!.scalars[1], 8 * factor, accuracy: 1e-12)
    }

    func testSchedules() {
        let schedule = WarmupCosineSchedule(peak: 1e-3, warmupSteps: 100, totalSteps: 1000)
        XCTAssertEqual(schedule.learningRate(step: 0), 1e-5 * 0.5 * (1 + cos(0)), accuracy: 1e-12)
        XCTAssertEqual(schedule.learningRate(step: 99), 1e-3 * 0.5 * (1 + cos(Double.pi * 0.099)), accuracy: 1e-12)
        XCTAssertEqual(schedule.learningRate(step: 500), 0.5e-3, accuracy: 1e-12)
        XCTAssertEqual(schedule.learningRate(step: 1000), 0, accuracy: 1e-12)
        XCTAssertEqual(ConstantSchedule(0.1).learningRate(step: 7), 0.1)
    }

    func testOptimizerStateRoundTrip() throws {
        let p = makeParameter()
        let adam = Adam(p, learningRate: 0.1)
        adam.step()
        let restored = Adam(makeParameter(), learningRate: 0.1)
        try restored.loadStateDictionary(adam.stateDictionary())
        XCTAssertEqual(restored.stepCount, 1)
        XCTAssertEqual(restored.stateDictionary()["theta.exp_avg"]!.scalars, adam.stateDictionary()["theta.exp_avg"]!.scalars)
        XCTAssertThrowsError(try restored.loadStateDictionary(["step": Tensor(scalar: 1)])) { error in
            XCTAssertTrue("\(error)".contains("missing optimizer entry 'theta.exp_avg'"), "\(error)")
        }
    }
}

final class OptimizerStateTests: XCTestCase {
    /// A step count read from a file is a whole number Float holds exactly, or the load is refused
    /// with the value named (one flipped bit in a checkpoint must not crash the loader).
    func testBadStepCountsAreRefused() {
        let weight = Tensor<Float>.ones([2]).requiringGrad()
        check(Adam.adamW([("w", weight)], learningRate: 0.1))
        check(SGD([("w", weight)], learningRate: 0.1, momentum: 0.9))
        func check<O: Optimizer>(_ optimizer: O) where O.Scalar == Float {
            let good = optimizer.stateDictionary()
            for bad: Float in [.nan, .infinity, -.infinity, 9.3e18, -1, 2.5, 16_777_217 * 2] {
                var state = good
                state["step"] = Tensor(scalar: bad)
                XCTAssertThrowsError(try optimizer.loadStateDictionary(state), "step \(bad)") { error in
                    XCTAssertTrue("\(error)".contains("optimizer entry 'step' is"), "\(error)")
                }
            }
            var state = good
            state["step"] = Tensor<Float>([3], shape: [1, 1])
            XCTAssertThrowsError(try optimizer.loadStateDictionary(state)) { XCTAssertTrue("\($0)".contains("has shape [1, 1], expected a scalar")) }
            state["step"] = Tensor(scalar: 7)
            XCTAssertNoThrow(try optimizer.loadStateDictionary(state))
            XCTAssertEqual(optimizer.stepCount, 7)
        }
    }
}
