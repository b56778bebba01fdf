import Foundation
import RealModule

/// FlashGrad's seeded random number generator (SplitMix64): the same seed gives the same numbers
/// on every run and machine. Safe to share between threads (draws are serialised by a lock).
public final class RandomGenerator: RandomNumberGenerator, @unchecked Sendable {
    private let lock = NSLock()
    private var _state: UInt64

    public init(seed: UInt64) { _state = seed }

    /// The whole state: save it and pass it to `init(seed:)` or ``reseed(_:)`` to continue the same sequence.
    public var state: UInt64 { lock.lock(); defer { lock.unlock() }; return _state }

    /// Continues from a saved ``state`` (or restarts from a seed).
    public func reseed(_ state: UInt64) { lock.lock(); _state = state; lock.unlock() }

    public func next() -> UInt64 {
        lock.lock(); defer { lock.unlock() }
        return unlockedNext()
    }

    @inline(__always)
    private func unlockedNext() -> UInt64 {
        _state &+= 0x9E37_79B9_7F4A_7C15
        return CounterRandom.mix(_state)
    }

    /// Uniform in [0, 1).
    public func uniform<T: TensorScalar>(_: T.Type = T.self) -> T {
        T(Self.unit(next()))
    }

    /// Standard normal, by Box–Muller.
    public func normal<T: TensorScalar>(_: T.Type = T.self) -> T {
        lock.lock(); defer { lock.unlock() }
        return T(Self.boxMuller(unlockedNext(), unlockedNext()))
    }

    /// `count` uniform values in [0, 1), drawn under one lock: the same numbers as `count` calls of ``uniform(_:)``.
    /// (Specialised: generic, each value would go through the witness table.)
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func uniformValues<T: TensorScalar>(_: T.Type, count: Int) -> [T] {
        lock.lock(); defer { lock.unlock() }
        return (0..<count).map { _ in T(Self.unit(unlockedNext())) }
    }

    /// `count` standard normal values, drawn under one lock: the same numbers as `count` calls of ``normal(_:)``.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func normalValues<T: TensorScalar>(_: T.Type, count: Int) -> [T] {
        lock.lock(); defer { lock.unlock() }
        return (0..<count).map { _ in T(Self.boxMuller(unlockedNext(), unlockedNext())) }
    }

    private static func unit(_ bits: UInt64) -> Double { Double(bits >> 11) * 0x1.0p-53 }

    private static func boxMuller(_ first: UInt64, _ second: UInt64) -> Double {
        let u1 = 1 - unit(first)  // (0, 1], so the log is finite
        let u2 = unit(second)
        return Double.sqrt(-2 * Double.log(u1)) * Double.cos(2 * Double.pi * u2)
    }

    /// The generator used when an API is not handed one. Reseed it with ``manualSeed(_:)``.
    public static let shared = RandomGenerator(seed: 0)

    /// Reseeds ``shared`` in place, like `torch.manual_seed`: modules built before the call (their
    /// dropout holds ``shared``) draw from the new sequence too.
    public static func manualSeed(_ seed: UInt64) { shared.reseed(seed) }
}

/// Stateless random numbers from a key and counters: the same inputs always give the same value,
/// so a backward pass can regenerate a dropout mask instead of storing it, and every thread or
/// device draws the same mask.
public enum CounterRandom {
    /// SplitMix64's finaliser: a bijective mix with good avalanche.
    @inline(__always)
    public static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1) from a seed and two counters.
    @inline(__always)
    public static func uniform(seed: UInt64, _ stream: UInt64, _ counter: UInt64) -> Float {
        let bits = mix(mix(seed ^ mix(stream &+ 0x632B_E59B_D9B4_E019)) &+ counter)
        return Float(bits >> 40) * 0x1.0p-24
    }
}
