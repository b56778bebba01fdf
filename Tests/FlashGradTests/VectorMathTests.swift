@testable import FlashGrad
import XCTest

final class VectorMathTests: XCTestCase {
    /// The stated bound of the vectorised exp: relative error ≤ 4e-7 on [−87, 88], and 0 for −∞.
    static let expRelativeErrorBound = 4e-7

    func testVectorisedExpErrorBound() {
        var worst = 0.0
        var x: Float = -87
        while x <= 88 {
            var lanes = VectorMath.FloatVector()
            for lane in 0..<lanes.scalarCount { lanes[lane] = x + Float(lane) * 0.0003 }
            let result = VectorMath.exp(lanes)
            for lane in 0..<lanes.scalarCount {
                let exact = Foundation.exp(Double(lanes[lane]))
                worst = Swift.max(worst, Swift.abs(Double(result[lane]) - exact) / exact)
            }
            x += 0.0137
        }
        XCTAssertLessThanOrEqual(worst, Self.expRelativeErrorBound)
        let edge = VectorMath.exp(VectorMath.FloatVector(repeating: -.infinity))
        XCTAssertEqual(edge, VectorMath.FloatVector(repeating: 0))
        // NaN stays NaN and +∞ gives +∞ (so that attention cannot mistake them for masked scores).
        var special = VectorMath.FloatVector(repeating: 1)
        special[0] = .nan; special[1] = .infinity; special[2] = -.infinity; special[3] = 89; special[4] = -.nan
        let results = VectorMath.exp(special)
        XCTAssertTrue(results[0].isNaN && results[4].isNaN, "\(results)")
        XCTAssertEqual(results[1], .infinity)
        XCTAssertEqual(results[2], 0)
        XCTAssertEqual(results[3], .infinity)  // past 88.37 the kernel saturates to +∞ (true value 4.5e38 overflows Float too)
        XCTAssertEqual(results[5], Foundation.exp(1), accuracy: 4e-7 * Foundation.exp(1))
    }

    func testMaximumPropagatesNaN() {
        for position in [3, 20, 33] {  // in a vector, in the second vector, in the tail
            var values = [Float](repeating: 1, count: 35)
            values[position] = .nan
            XCTAssertTrue(values.withUnsafeBufferPointer { VectorMath.maximum($0.baseAddress!, count: 35) }.isNaN, "NaN at \(position)")
        }
        var doubles = [Double](repeating: 1, count: 5)
        doubles[2] = .nan
        XCTAssertTrue(doubles.withUnsafeBufferPointer { Double.maximum($0.baseAddress!, count: 5) }.isNaN)
    }

    func testExponentiateMatchesScalarExpAndSums() {
        var values: [Float] = (0..<37).map { Float($0) * -0.7 }
        let total = values.withUnsafeMutableBufferPointer { VectorMath.exponentiate($0.baseAddress!, count: 37, subtracting: 1) }
        var expected: Float = 0
        for i in 0..<37 {
            let exact = Foundation.exp(Float(i) * -0.7 - 1)
            XCTAssertEqual(values[i], exact, accuracy: exact * 4e-7)
            expected += exact
        }
        XCTAssertEqual(total, expected, accuracy: expected * 1e-6)
    }
}

extension VectorMathTests {
    func testMaximumFindsTheLargestInTheVectorPartAndInTheTail() {
        for count in [0, 1, 15, 16, 17, 40] {
            for position in 0..<Swift.max(count, 1) where count > 0 {
                var values = [Float](repeating: -3, count: count)
                values[position] = 2.5
                XCTAssertEqual(values.withUnsafeBufferPointer { VectorMath.maximum($0.baseAddress!, count: count) }, 2.5,
                               "count \(count), largest at \(position)")
            }
        }
        XCTAssertEqual([Float]().withUnsafeBufferPointer { VectorMath.maximum($0.baseAddress ?? UnsafePointer(bitPattern: 8)!, count: 0) },
                       -.infinity, "no values: −∞")
        let masked = [Double](repeating: -.infinity, count: 9)
        XCTAssertEqual(masked.withUnsafeBufferPointer { Double.maximum($0.baseAddress!, count: 9) }, -.infinity)
    }
}
