import FlashGrad
import XCTest

/// Gradchecks in Double, failing the test with the worst element when the check fails.
func assertGradcheck(_ function: ([Tensor<Double>]) -> Tensor<Double>, inputs: [Tensor<Double>],
                     absoluteTolerance: Double = 1e-5, relativeTolerance: Double = 1e-3,
                     file: StaticString = #filePath, line: UInt = #line) {
    let result = gradcheck(function, inputs: inputs, absoluteTolerance: absoluteTolerance, relativeTolerance: relativeTolerance)
    XCTAssertTrue(result.passed, result.description, file: file, line: line)
}

/// Random Double tensor that requires gradients, from a per-test generator.
func randomInput(_ shape: [Int], _ generator: RandomGenerator, low: Double = -1, high: Double = 1) -> Tensor<Double> {
    Tensor<Double>.uniform(shape, low: low, high: high, generator: generator, requiresGrad: true)
}

/// Largest |a − b| over two tensors of one shape.
func maxAbsoluteDifference<T: TensorScalar>(_ a: Tensor<T>, _ b: Tensor<T>) -> T {
    precondition(a.shape == b.shape, "shapes \(a.shape) and \(b.shape) differ")
    return zip(a.scalars, b.scalars).map { Swift.abs($0 - $1) }.max() ?? 0
}

func assertClose<T: TensorScalar>(_ a: Tensor<T>, _ b: Tensor<T>, tolerance: T, _ message: String = "",
                                  file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.shape, b.shape, message, file: file, line: line)
    guard a.shape == b.shape else { return }
    let difference = maxAbsoluteDifference(a, b)
    XCTAssertLessThanOrEqual(difference, tolerance, "max |difference| \(difference) > \(tolerance) \(message)", file: file, line: line)
}

extension Device {
    /// Whether this is the CUDA emulator of `Tests/CUDAEmulator` (a GPU's work on one host core),
    /// on which the tests shrink or skip what only a GPU finishes in time.
    var isCUDAEmulator: Bool { name == "FlashGrad CUDA emulator" }
}
