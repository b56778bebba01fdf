import RealModule

/// Pointwise functions y = f(x; a, b) and their derivatives, evaluated by one kernel for all.
enum UnaryFunction {
    case negate, exp, log, sqrt, rsqrt, abs, tanh, sigmoid, relu, geluTanh, geluErf, silu
    case clamp      // min(max(x, a), b)
    case power      // x^a
    case affine     // a·x + b
}

enum ElementwiseKernels {
    /// y[i] = f(x[i]) over contiguous buffers.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    static func unary<T: TensorScalar>(_ function: UnaryFunction, _ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>,
                                       count: Int, a: T, b: T) {
        Parallel.forRanges(count) { range in
            @inline(__always) func map(_ f: (T) -> T) { for i in range { y[i] = f(x[i]) } }
            switch function {
            case .negate: map { -$0 }
            case .exp: map { T.exp($0) }
            case .log: map { T.log($0) }
            case .sqrt: map { $0.squareRoot() }
            case .rsqrt: map { 1 / $0.squareRoot() }
            case .abs: map { Swift.abs($0) }
            case .tanh: map { T.tanh($0) }
            case .sigmoid: map { sigmoid($0) }
            case .relu: map { $0 > 0 ? $0 : 0 }
            case .geluTanh: map { 0.5 * $0 * (1 + T.tanh(geluTanhInner($0))) }
            case .geluErf: map { 0.5 * $0 * (1 + T.erf($0 * T(0.70710678118654752))) }
            case .silu: map { $0 * sigmoid($0) }
            case .clamp: map { Swift.min(Swift.max($0, a), b) }
            case .power: map { power($0, a) }
            case .affine: map { a * $0 + b }
            }
        }
    }

    /// dx[i] = dy[i] · f′(x[i]), with y = f(x) at hand for functions whose derivative uses it.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    static func unaryDerivative<T: TensorScalar>(_ function: UnaryFunction, x: UnsafePointer<T>, y: UnsafePointer<T>,
                                                 upstream dy: UnsafePointer<T>, into dx: UnsafeMutablePointer<T>,
                                                 count: Int, a: T, b: T) {
        Parallel.forRanges(count) { range in
            @inline(__always) func map(_ derivative: (T, T) -> T) { for i in range { dx[i] = dy[i] * derivative(x[i], y[i]) } }
            switch function {
            case .negate: map { _, _ in -1 }
            case .exp: map { _, y in y }
            case .log: map { x, _ in 1 / x }
            case .sqrt: map { _, y in 0.5 / y }
            case .rsqrt: map { _, y in -0.5 * y * y * y }
            case .abs: map { x, _ in x > 0 ? 1 : (x < 0 ? -1 : 0) }
            case .tanh: map { _, y in 1 - y * y }
            case .sigmoid: map { _, y in y * (1 - y) }
            case .relu: map { x, _ in x > 0 ? 1 : 0 }
            case .geluTanh:
                // d/dx ½x(1+tanh u) = ½(1+tanh u) + ½x(1−tanh²u)·u′,  u = √(2/π)(x + 0.044715x³)
                map { x, _ in
                    let t: T = T.tanh(geluTanhInner(x))
                    let innerDerivative: T = T(0.7978845608028654) * (1 + 3 * T(0.044715) * x * x)
                    let half: T = 0.5
                    return half * (1 + t) + half * x * (1 - t * t) * innerDerivative
                }
            case .geluErf:
                // d/dx xΦ(x) = Φ(x) + x·φ(x)
                map { x, _ in
                    0.5 * (1 + T.erf(x * T(0.70710678118654752))) + x * T.exp(-0.5 * x * x) * T(0.3989422804014327)
                }
            case .silu: map { x, _ in let s = sigmoid(x); return s * (1 + x * (1 - s)) }
            case .clamp: map { x, _ in x >= a && x <= b ? 1 : 0 }
            case .power: map { x, _ in a * power(x, a - 1) }
            case .affine: map { _, _ in a }
            }
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

extension ElementwiseKernels {
    /// mask[i] = scale with probability 1 − p, else 0, drawn in order from `generator`.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    static func dropoutMask<T: TensorScalar>(_ mask: UnsafeMutablePointer<T>, count: Int, probability: T, scale: T,
                                             generator: RandomGenerator) {
        for i in 0..<count { mask[i] = generator.uniform(T.self) >= probability ? scale : 0 }
    }
}

/// Binary arithmetic on broadcast operands.
enum BinaryFunction {
    case add, subtract, multiply, divide, power
}

extension ElementwiseKernels {
    /// out = f(a, b) where `a` and `b` are read through broadcast strides (0 on broadcast axes) and
    /// `out` is contiguous with shape `shape`.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    static func binary<T: TensorScalar>(_ function: BinaryFunction, shape: [Int],
                                        _ a: UnsafePointer<T>, strides aStrides: [Int],
                                        _ b: UnsafePointer<T>, strides bStrides: [Int],
                                        into out: UnsafeMutablePointer<T>) {
        let total = Shape.count(shape)
        if total == 0 { return }
        // One loop per function over a run of elements, so each loop vectorises when both strides are 1.
        @inline(__always) func run(_ o: UnsafeMutablePointer<T>, _ pa: UnsafePointer<T>, _ aStride: Int,
                                   _ pb: UnsafePointer<T>, _ bStride: Int, count: Int) {
            if aStride == 1 && bStride == 1 {
                switch function {
                case .add: for j in 0..<count { o[j] = pa[j] + pb[j] }
                case .subtract: for j in 0..<count { o[j] = pa[j] - pb[j] }
                case .multiply: for j in 0..<count { o[j] = pa[j] * pb[j] }
                case .divide: for j in 0..<count { o[j] = pa[j] / pb[j] }
                case .power: for j in 0..<count { o[j] = power(pa[j], pb[j]) }
                }
                return
            }
            switch function {
            case .add: for j in 0..<count { o[j] = pa[j * aStride] + pb[j * bStride] }
            case .subtract: for j in 0..<count { o[j] = pa[j * aStride] - pb[j * bStride] }
            case .multiply: for j in 0..<count { o[j] = pa[j * aStride] * pb[j * bStride] }
            case .divide: for j in 0..<count { o[j] = pa[j * aStride] / pb[j * bStride] }
            case .power: for j in 0..<count { o[j] = power(pa[j * aStride], pb[j * bStride]) }
            }
        }
        let contiguous = Shape.contiguousStrides(shape)
        if aStrides == contiguous && bStrides == contiguous {
            Parallel.forRanges(total) { range in
                run(out + range.lowerBound, a + range.lowerBound, 1, b + range.lowerBound, 1, count: range.count)
            }
            return
        }
        // General case: rows of the last axis, the outer index decoded per row.
        let rank = shape.count
        let inner = shape[rank - 1]
        let rows = total / inner
        Parallel.forRanges(rows, minimumPerThread: Swift.max(1, Parallel.minimumElementsPerThread / inner)) { rowRange in
            for row in rowRange {
                var remainder = row, aOffset = 0, bOffset = 0
                for axis in stride(from: rank - 2, through: 0, by: -1) {
                    let i = remainder % shape[axis]
                    remainder /= shape[axis]
                    aOffset += i * aStrides[axis]
                    bOffset += i * bStrides[axis]
                }
                run(out + row * inner, a + aOffset, aStrides[rank - 1], b + bOffset, bStrides[rank - 1], count: inner)
            }
        }
    }
}
