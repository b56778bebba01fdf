import ArgumentParser
import FlashGrad

/// Checks a command-line attention name against the registry, for `validate()` in the examples.
public func validateAttentionName(_ name: String) throws {
    do { _ = try AttentionRegistry.implementation(named: name) } catch { throw ValidationError("\(error)") }
}
