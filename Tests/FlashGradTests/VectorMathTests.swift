@testable import FlashGrad
import Foundation
import XCTest

/// The vectorised exp, exponentiate and row maximum of the flash kernels, at every instruction-set
/// level this CPU runs (``CPUKernelLevel``), against Foundation's scalar functions.
final class VectorMathTests: XCTestCase {
    /// The stated bound of the vectorised exp: relative error ≤ 4e-7 on [−87, 88], and 0 for −∞.
    static let expRelativeErrorBound = 4e-7

    func atEveryLevel(_ body: (CPUKernelLevel) -> Void) {
        let saved = CPUKernelLevel.current
        defer { CPUKernelLevel.current = saved }
        XCTAssertTrue(CPUKernelLevel.supported.contains(.baseline))
        for level in CPUKernelLevel.supported {
            CPUKernelLevel.current = level
            body(level)
        }
    }

    /// e^(x − 0) of each value through `Float.exponentiate`, the vector kernel (with its tail).
    func exponentiated(_ values: [Float]) -> [Float] {
        var copy = values
        _ = copy.withUnsafeMutableBufferPointer { Float.exponentiate($0.baseAddress!, count: $0.count, subtracting: 0) }
        return copy
    }

    func testVectorisedExpErrorBound() {
        atEveryLevel { level in
            let xs = stride(from: Float(-87), through: 88, by: 0.0037).map { $0 }
            let worst = zip(xs, exponentiated(xs)).map { x, y in Swift.abs(Double(y) - Foundation.exp(Double(x))) / Foundation.exp(Double(x)) }.max()!
            XCTAssertLessThanOrEqual(worst, Self.expRelativeErrorBound, "\(level)")
            // NaN stays NaN, +∞ gives +∞, −∞ gives 0 (so attention cannot mistake NaN for a masked score).
            let special = exponentiated([.nan, .infinity, -.infinity, 89, -.nan, 1] + [Float](repeating: 0, count: 17))
            XCTAssertTrue(special[0].isNaN && special[4].isNaN, "\(level): \(special)")
            XCTAssertEqual(special[1], .infinity, "\(level)")
            XCTAssertEqual(special[2], 0, "\(level)")
            XCTAssertEqual(special[3], .infinity, "\(level): past 88.37 the kernel saturates to +∞")
            XCTAssertEqual(special[5], Foundation.exp(1), accuracy: 4e-7 * Foundation.exp(1), "\(level)")
        }
    }

    func testExponentiateMatchesScalarExpAndSums() {
        atEveryLevel { level in
            for count in [1, 7, 16, 37, 64] {  // tails only, whole vectors, both
                var values: [Float] = (0..<count).map { Float($0) * -0.7 }
                let total = values.withUnsafeMutableBufferPointer { Float.exponentiate($0.baseAddress!, count: count, subtracting: 1) }
                var expected: Float = 0
                for i in 0..<count {
                    let exact = Foundation.exp(Float(i) * -0.7 - 1)
                    XCTAssertEqual(values[i], exact, accuracy: exact * 4e-7, "\(level), count \(count)")
                    expected += exact
                }
                XCTAssertEqual(total, expected, accuracy: expected * 1e-6, "\(level), count \(count)")
            }
        }
    }

    func testMaximumFindsTheLargestAndPropagatesNaN() {
        atEveryLevel { level in
            for count in [0, 1, 5, 16, 35] {
                for position in 0..<count {
                    var values = (0..<count).map { Float($0 % 7) - 10 }
                    values[position] = 5
                    XCTAssertEqual(values.withUnsafeBufferPointer { Float.maximum($0.baseAddress!, count: count) }, 5, "\(level), \(count), \(position)")
                    values[position] = .nan
                    XCTAssertTrue(values.withUnsafeBufferPointer { Float.maximum($0.baseAddress!, count: count) }.isNaN, "\(level), NaN at \(position)")
                }
            }
            XCTAssertEqual([Float]().withUnsafeBufferPointer { Float.maximum($0.baseAddress ?? UnsafePointer(bitPattern: 8)!, count: 0) }, -.infinity)
        }
        var doubles = [Double](repeating: 1, count: 5)
        doubles[2] = .nan
        XCTAssertTrue(doubles.withUnsafeBufferPointer { Double.maximum($0.baseAddress!, count: 5) }.isNaN)
    }
}
