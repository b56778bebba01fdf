import FlashGrad
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

    func testCorrectBackwardPasses() {
        let x = randomInput([3, 2], RandomGenerator(seed: 5))
        XCTAssertTrue(gradcheck({ $0[0] * $0[0] }, inputs: [x]).passed)
    }
}
