import FlashGrad
import Foundation
import XCTest

/// gradcheck must be able to fail: an op with a deliberately wrong backward is caught.
final class GradcheckSelfTests: XCTestCase {
    /// y = x², with a backward that forgets the factor 2.
    private func wrongSquare(_ x: Tensor<Double>) -> Tensor<Double> {
        let y = withoutGradients { x * x }
        return Tensor.record(y, op: "wrongSquare", inputs: [x]) { gradient in [gradient * x.detach()] }
    }

    func testWrongBackwardIsCaught() {
        let x = randomInput([3, 2], RandomGenerator(seed: 5), low: 0.5, high: 1)
        let result = gradcheck({ self.wrongSquare($0[0]) }, inputs: [x])
        XCTAssertFalse(result.passed)
        let worst = try! XCTUnwrap(result.worst)
        XCTAssertEqual(worst.numeric, 2 * worst.analytic, accuracy: 1e-6)
        XCTAssertTrue(result.description.contains("FAILED"), result.description)
    }

    /// The README's custom op: softplus(x) = log(1 + eˣ) with backward σ(x).
    private func softplus(_ x: Tensor<Double>) -> Tensor<Double> {
        let y = withoutGradients { (x.exp() + 1).log() }
        let input = x.detach()
        return Tensor.record(y, op: "softplus", inputs: [x]) { gradient in [gradient * input.sigmoid()] }
    }

    func testReadmeCustomOpPasses() {
        let x = Tensor<Double>.normal([3, 4], generator: RandomGenerator(seed: 1), requiresGrad: true)
        let result = gradcheck({ self.softplus($0[0]) }, inputs: [x])
        XCTAssertTrue(result.passed, result.description)
        XCTAssertEqual(softplus(Tensor<Double>([0])).item, Foundation.log(2), accuracy: 1e-12)
    }

    func testCorrectBackwardPasses() {
        let x = randomInput([3, 2], RandomGenerator(seed: 5))
        XCTAssertTrue(gradcheck({ $0[0] * $0[0] }, inputs: [x]).passed)
    }
}
