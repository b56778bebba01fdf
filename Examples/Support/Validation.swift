import ArgumentParser
import FlashGrad

/// Checks a command-line attention name against the registry, for `validate()` in the examples.
public func validateAttentionName(_ name: String) throws {
    do { _ = try AttentionRegistry.implementation(named: name) } catch { throw ValidationError("\(error)") }
}

/// Parses a command-line device (`cpu`, `cuda`, `cuda:N`) and checks that it can be used, so that a
/// missing GPU or CUDA library is one clear error before any work starts.
public func parseDevice(_ text: String) throws -> Device {
    let device: Device
    switch text {
    case "cpu": device = .cpu
    case "cuda": device = .cuda(0)
    default:
        guard text.hasPrefix("cuda:"), let index = Int(text.dropFirst(5)), index >= 0 else {
            throw ValidationError("--device must be cpu, cuda or cuda:N, got '\(text)'")
        }
        device = .cuda(index)
    }
    do { try device.checkAvailable() } catch { throw ValidationError("--device \(text): \(error)") }
    return device
}

/// Throws a validation error naming every option whose value is below `minimum`, with its value.
public func requireAtLeast(_ minimum: Int, _ options: (name: String, value: Int)...) throws {
    let bad = options.filter { $0.value < minimum }
    guard bad.isEmpty else {
        throw ValidationError(bad.map { "\($0.name) must be at least \(minimum), got \($0.value)" }.joined(separator: "; "))
    }
}

/// Throws a validation error naming every option that is not a positive finite number.
public func requirePositiveAndFinite(_ options: (name: String, value: Double)...) throws {
    let bad = options.filter { !($0.value > 0 && $0.value.isFinite) }
    guard bad.isEmpty else {
        throw ValidationError(bad.map { "\($0.name) must be a positive finite number, got \($0.value)" }.joined(separator: "; "))
    }
}
