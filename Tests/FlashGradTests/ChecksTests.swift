import FlashGrad
import Foundation
import XCTest

/// The library's checks print their message in every build, optimised ones included (where
/// Swift's `precondition` would stop without a word). `scripts/test.sh` runs the suite in a debug
/// and in a release build, so both are covered.
final class ChecksTests: XCTestCase {
    /// Trips a shape check, when run as the child process of the test below (and does nothing otherwise).
    func testTripAShapeCheckWhenAsked() {
        guard ProcessInfo.processInfo.environment["FLASHGRAD_TRIP_CHECK"] == "1" else { return }
        _ = Tensor<Float>.zeros([2, 3]).matmul(Tensor<Float>.zeros([4, 5]))
    }

    func testMessagesReachTheUserInEveryBuild() throws {
        let child = Process(), errors = Pipe()
        child.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])  // this test bundle
        child.arguments = ["FlashGradTests.ChecksTests/testTripAShapeCheckWhenAsked"]
        child.environment = ProcessInfo.processInfo.environment.merging(["FLASHGRAD_TRIP_CHECK": "1", "SWIFT_BACKTRACE": "enable=no"]) { $1 }
        child.standardError = errors
        child.standardOutput = FileHandle.nullDevice
        try child.run()
        let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        child.waitUntilExit()
        XCTAssertNotEqual(child.terminationStatus, 0, "the check did not stop the child")
        XCTAssertTrue(text.contains("matmul: inner sizes differ: [2, 3] × [4, 5]"), "the child's standard error: \(text)")
    }
}
