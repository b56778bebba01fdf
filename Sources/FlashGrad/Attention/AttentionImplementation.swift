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

    /// Computes attention for already validated shapes and options.
    ///
    /// - Parameters: query [B, Hq, Nq, D], key [B, Hkv, Nk, D], value [B, Hkv, Nk, Dv], Hq a multiple of Hkv.
    func compute<Scalar: TensorScalar>(query: Tensor<Scalar>, key: Tensor<Scalar>, value: Tensor<Scalar>,
                                       options: AttentionOptions<Scalar>, returnLogSumExp: Bool) -> AttentionResult<Scalar>
}

extension AttentionImplementation {
    /// Why this implementation cannot serve a call with these options and heads; empty when it can.
    public func unsupportedReasons<Scalar: TensorScalar>(options: AttentionOptions<Scalar>, queryHeads: Int, keyValueHeads: Int,
                                                         returnLogSumExp: Bool) -> [String] {
        var needed = options.featuresInUse
        if queryHeads != keyValueHeads { needed.append(.groupedQueryHeads) }
        if returnLogSumExp { needed.append(.logSumExp) }
        return needed.filter { !supportedFeatures.contains($0) }
            .map { "attention implementation '\(name)' does not support \($0.rawValue)" }
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
    // Validates shapes and options with messages that name them.
    _ = AttentionProblem(queryShape: query.shape, keyShape: key.shape, valueShape: value.shape, options: options)
    let reasons = implementation.unsupportedReasons(options: options, queryHeads: query.shape[1], keyValueHeads: key.shape[1],
                                                    returnLogSumExp: returnLogSumExp)
    precondition(reasons.isEmpty, reasons.joined(separator: "; "))
    return implementation.compute(query: query, key: key, value: value, options: options, returnLogSumExp: returnLogSumExp)
}

/// Attention implementations by name, for choosing one at runtime.
public enum AttentionRegistry {
    private static var implementations: [String: AttentionImplementation] = [
        "naive": NaiveAttention(), "flash": FlashAttention(),
    ]

    /// Adds (or replaces) an implementation under its ``AttentionImplementation/name``.
    public static func register(_ implementation: AttentionImplementation) {
        implementations[implementation.name] = implementation
    }

    /// Registered names, sorted.
    public static var names: [String] { implementations.keys.sorted() }

    /// The implementation called `name`.
    public static func implementation(named name: String) throws -> AttentionImplementation {
        guard let implementation = implementations[name] else {
            throw AttentionError.unknownImplementation(name: name, known: names)
        }
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
