import FlashGrad
import Foundation
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

/// What an example executable printed (stdout and stderr together) and its exit status.
struct ExampleOutcome { let status: Int32; let output: String }

/// Runs the example `product` built next to this test bundle; skips when it is not built.
func runExample(_ product: String, _ arguments: [String], environment: [String: String] = [:]) throws -> ExampleOutcome {
    let folder = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    let executable = folder.appendingPathComponent(product)
    guard FileManager.default.isExecutableFile(atPath: executable.path) else {
        throw XCTSkip("\(product) is not built next to the test bundle (\(folder.path)); `swift build` builds it")
    }
    let process = Process(), pipe = Pipe()
    process.executableURL = executable
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(["SWIFT_BACKTRACE": "enable=no"].merging(environment) { $1 }) { $1 }
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    return ExampleOutcome(status: process.terminationStatus, output: output)
}

/// Why a device cannot be used, said in full by the first test that skips and referred to after.
nonisolated(unsafe) private var deviceReasonPrinted = false

/// Skips the calling test, with the reason, unless `device` is usable.
func skipUnlessAvailable(_ device: Device, _ suite: String) throws {
    do { try device.checkAvailable() } catch {
        defer { deviceReasonPrinted = true }
        throw XCTSkip(deviceReasonPrinted ? "no \(device) (reason above)" : "\(suite) skipped: \(error)")
    }
}

/// `values` as rows of `width` with row `row` set to `value` throughout.
func settingRow(_ row: Int, of values: [Float], width: Int, to value: Float) -> [Float] {
    var copy = values
    for d in 0..<width { copy[row * width + d] = value }
    return copy
}
