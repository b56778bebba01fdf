import RealModule

/// FlashGrad's seeded random number generator (SplitMix64): the same seed gives the same numbers
/// on every run and machine.
public final class RandomGenerator: RandomNumberGenerator {
    /// The whole state: save it and pass it to `init(seed:)` to continue the same sequence.
    public private(set) var state: UInt64

    public init(seed: UInt64) { state = seed }

    /// Continues from a saved ``state``.
    public func reseed(_ state: UInt64) { self.state = state }

    public func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return CounterRandom.mix(state)
    }

    /// Uniform in [0, 1).
    public func uniform<T: TensorScalar>(_: T.Type = T.self) -> T {
        T(Double(next() >> 11) * 0x1.0p-53)
    }

    /// Standard normal, by Box–Muller.
    public func normal<T: TensorScalar>(_: T.Type = T.self) -> T {
        let u1 = 1 - Double(next() >> 11) * 0x1.0p-53  // (0, 1], so the log is finite
        let u2 = Double(next() >> 11) * 0x1.0p-53
        return T(Double.sqrt(-2 * Double.log(u1)) * Double.cos(2 * Double.pi * u2))
    }

    /// The generator used when an API is not handed one. Reseed it with ``manualSeed(_:)``.
    public static var shared = RandomGenerator(seed: 0)

    /// Reseeds ``shared``, like `torch.manual_seed`.
    public static func manualSeed(_ seed: UInt64) { shared = RandomGenerator(seed: seed) }
}

/// Stateless random numbers from a key and counters: the same inputs always give the same value,
/// so a backward pass can regenerate a dropout mask instead of storing it.
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
