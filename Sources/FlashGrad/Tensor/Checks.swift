/// Stops with `message` when `condition` is false, in every build. Swift's `precondition` drops its
/// message from optimised builds, and these checks guard what a user can get wrong (shapes,
/// options, devices, indices): the message is the only help they get. (`fatalError` prints in every build.)
@inlinable @inline(__always)
public func require(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
                    file: StaticString = #fileID, line: UInt = #line) {
    if _slowPath(!condition()) { fatalError(message(), file: file, line: line) }
}
