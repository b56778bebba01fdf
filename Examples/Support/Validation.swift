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
