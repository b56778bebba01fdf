import RealModule

/// Pointwise functions y = f(x; a, b), each defined once, value and derivative side by side, in
/// ``evaluate(_:a:b:_:)``; adding one is a case there and a method in `Arithmetic.swift`.
enum UnaryFunction {
    case negate, exp, log, sqrt, rsqrt, abs, tanh, sigmoid, relu, geluTanh, geluErf, silu
    case clamp      // min(max(x, a), b)
    case power      // x^a
    case affine     // a·x + b

    /// Calls `body` with this function's f(x) and f′ as a function of x and y = f(x). Always
    /// inlined, so that a kernel's loop inside `body` is compiled once per function with direct calls.
    @inline(__always)
    func evaluate<T: TensorScalar>(_: T.Type, a: T, b: T,
                                   _ body: (_ value: (T) -> T, _ derivative: (_ x: T, _ y: T) -> T) -> Void) {
        switch self {
        case .negate: body({ -$0 }, { _, _ in -1 })
        case .exp: body({ T.exp($0) }, { _, y in y })
        case .log: body({ T.log($0) }, { x, _ in 1 / x })
        case .sqrt: body({ $0.squareRoot() }, { _, y in 0.5 / y })
        case .rsqrt: body({ 1 / $0.squareRoot() }, { _, y in -0.5 * y * y * y })
        case .abs: body({ Swift.abs($0) }, { x, _ in x > 0 ? 1 : (x < 0 ? -1 : 0) })
        case .tanh: body({ T.tanh($0) }, { _, y in 1 - y * y })
        case .sigmoid: body({ UnaryFunction.sigmoid($0) }, { _, y in y * (1 - y) })
        case .relu: body({ $0 < 0 ? 0 : $0 }, { x, _ in x > 0 ? 1 : 0 })  // NaN stays NaN, as in PyTorch
        case .geluTanh:
            // d/dx ½x(1 + tanh u) = ½(1 + tanh u) + ½x(1 − tanh²u)·u′,  u = √(2/π)(x + 0.044715x³)
            body({ 0.5 * $0 * (1 + T.tanh(UnaryFunction.geluTanhInner($0))) }, { x, _ in
                let t: T = T.tanh(UnaryFunction.geluTanhInner(x))
                let innerDerivative: T = T(0.7978845608028654) * (1 + 3 * T(0.044715) * x * x)
                let half: T = 0.5
                return half * (1 + t) + half * x * (1 - t * t) * innerDerivative
            })
        case .geluErf:
            // d/dx xΦ(x) = Φ(x) + x·φ(x)
            body({ 0.5 * $0 * (1 + T.erf($0 * T(0.70710678118654752))) }, { x, _ in
                0.5 * (1 + T.erf(x * T(0.70710678118654752))) + x * T.exp(-0.5 * x * x) * T(0.3989422804014327)
            })
        case .silu: body({ $0 * UnaryFunction.sigmoid($0) }, { x, _ in let s = UnaryFunction.sigmoid(x); return s * (1 + x * (1 - s)) })
        case .clamp: body({ Swift.min(Swift.max($0, a), b) }, { x, _ in x >= a && x <= b ? 1 : 0 })
        case .power: body({ UnaryFunction.power($0, a) }, { x, _ in a * UnaryFunction.power(x, a - 1) })
        case .affine: body({ a * $0 + b }, { _, _ in a })
        }
    }

    @inline(__always)
    static func sigmoid<T: TensorScalar>(_ x: T) -> T {
        // Two branches keep exp's argument ≤ 0, so neither overflows.
        if x >= 0 { return 1 / (1 + T.exp(-x)) }
        let e = T.exp(x)
        return e / (1 + e)
    }

    @inline(__always)
    static func geluTanhInner<T: TensorScalar>(_ x: T) -> T {
        T(0.7978845608028654) * (x + T(0.044715) * x * x * x)
    }

    /// x^p, exact for negative bases when p is an integer (as `torch.pow` is).
    @inline(__always)
    static func power<T: TensorScalar>(_ x: T, _ p: T) -> T {
        if p == p.rounded(), Swift.abs(p) < T(1 << 30) { return T.pow(x, Int(p)) }
        return T.pow(x, p)
    }
}
