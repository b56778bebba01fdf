import Foundation

/// The result of an attention call.
public struct AttentionResult<Scalar: TensorScalar> {
    /// [batch, queryHeads, queryLength, valueDim]
    public let output: Tensor<Scalar>
    /// [batch, queryHeads, queryLength], natural log of each row's softmax denominator (−∞ for a
    /// fully masked row); present when asked for. Not differentiable.
    public let logSumExp: Tensor<Scalar>?

    public init(output: Tensor<Scalar>, logSumExp: Tensor<Scalar>?) {
        self.output = output
        self.logSumExp = logSumExp
    }
}

/// A way of computing scaled dot-product attention. FlashGrad ships ``NaiveAttention`` and
/// ``FlashAttention``; conform a type of your own and ``AttentionRegistry/register(_:)`` it to add one.
public protocol AttentionImplementation {
    /// The name used to pick it at runtime (for example from a command-line flag).
    var name: String { get }

    /// The features it can compute; asking for another fails with the reasons listed.
    var supportedFeatures: Set<AttentionFeature> { get }

    /// Whether it can compute on tensors on `device`; asked before every call, as the features are.
    /// An implementation built from ordinary ops runs wherever they do (the default).
    func supports(device: Device) -> Bool

    /// Why it cannot serve this particular problem on a supported device (a head dimension its
    /// kernels do not cover, say); empty by default.
    func limitations<Scalar: TensorScalar>(for problem: AttentionProblem<Scalar>) -> [String]

    /// Computes attention for a problem resolved and validated once by the caller.
    ///
    /// - Parameters: query [B, Hq, Nq, D], key [B, Hkv, Nk, D], value [B, Hkv, Nk, Dv], Hq a multiple
    ///   of Hkv; `problem` holds the resolved scale, masks, window and alignment.
    func compute<Scalar: TensorScalar>(query: Tensor<Scalar>, key: Tensor<Scalar>, value: Tensor<Scalar>,
                                       problem: AttentionProblem<Scalar>, returnLogSumExp: Bool) -> AttentionResult<Scalar>
}

extension AttentionImplementation {
    public func supports(device: Device) -> Bool { true }

    public func limitations<Scalar: TensorScalar>(for problem: AttentionProblem<Scalar>) -> [String] { [] }

    /// Why this implementation cannot serve `problem`; empty when it can.
    public func unsupportedReasons<Scalar: TensorScalar>(for problem: AttentionProblem<Scalar>, returnLogSumExp: Bool) -> [String] {
        var needed = problem.options.featuresInUse
        if problem.queryHeads != problem.keyValueHeads { needed.append(.groupedQueryHeads) }
        if returnLogSumExp { needed.append(.logSumExp) }
        var reasons = needed.filter { !supportedFeatures.contains($0) }
            .map { "attention implementation '\(name)' does not support \($0.rawValue)" }
        if !supports(device: problem.device) {
            reasons.append("attention implementation '\(name)' does not support device \(problem.device)")
        } else {
            reasons += limitations(for: problem)
        }
        return reasons
    }
}

/// Scaled dot-product attention with the chosen implementation.
///
/// Stops with a message listing the reasons when `implementation` does not support the options;
/// it never falls back to another implementation silently.
public func attention<Scalar: TensorScalar>(
    query: Tensor<Scalar>, key: Tensor<Scalar>, value: Tensor<Scalar>,
    options: AttentionOptions<Scalar> = AttentionOptions(),
    implementation: AttentionImplementation = FlashAttention()
) -> Tensor<Scalar> {
    attentionWithLogSumExp(query: query, key: key, value: value, options: options, implementation: implementation,
                           returnLogSumExp: false).output
}

/// Like ``attention(query:key:value:options:implementation:)``, also returning the row log-sum-exp
/// when `returnLogSumExp` is set.
public func attentionWithLogSumExp<Scalar: TensorScalar>(
    query: Tensor<Scalar>, key: Tensor<Scalar>, value: Tensor<Scalar>,
    options: AttentionOptions<Scalar> = AttentionOptions(),
    implementation: AttentionImplementation = FlashAttention(),
    returnLogSumExp: Bool = true
) -> AttentionResult<Scalar> {
    // Resolved once (validating shapes, devices and options with messages that name them), then
    // handed to the implementation.
    let problem = AttentionProblem(query: query, key: key, value: value, options: options)
    let reasons = implementation.unsupportedReasons(for: problem, returnLogSumExp: returnLogSumExp)
    require(reasons.isEmpty, reasons.joined(separator: "; "))
    return implementation.compute(query: query, key: key, value: value, problem: problem, returnLogSumExp: returnLogSumExp)
}

/// Attention implementations by name, for choosing one at runtime.
/// Safe to use from several threads.
public enum AttentionRegistry {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var implementations: [String: AttentionImplementation] = [
        "naive": NaiveAttention(), "flash": FlashAttention(),
    ]

    /// Adds (or replaces) an implementation under its ``AttentionImplementation/name``.
    public static func register(_ implementation: AttentionImplementation) {
        lock.lock(); defer { lock.unlock() }
        implementations[implementation.name] = implementation
    }

    /// Registered names, sorted.
    public static var names: [String] {
        lock.lock(); defer { lock.unlock() }
        return implementations.keys.sorted()
    }

    /// The implementation called `name`.
    public static func implementation(named name: String) throws -> AttentionImplementation {
        lock.lock()
        let implementation = implementations[name]
        lock.unlock()
        guard let implementation else { throw AttentionError.unknownImplementation(name: name, known: names) }
        return implementation
    }
}

public enum AttentionError: Error, CustomStringConvertible, Equatable {
    case unknownImplementation(name: String, known: [String])

    public var description: String {
        switch self {
        case let .unknownImplementation(name, known):
            return "unknown attention implementation '\(name)'; choose one of: \(known.joined(separator: ", "))"
        }
    }
}
