/// Pointwise math. Each op's backward sits next to its forward; the functions and their
/// derivatives are defined in ``UnaryFunction``.
extension Tensor {
    /// y = f(x; a, b) elementwise, recorded with dx = dy · f′(x); with `bias` (a vector along the last
    /// axis), f(x + bias) in the same kernel each way, the bias's gradient the sum of dx's rows (a
    /// linear layer's bias and activation).
    func unary(_ function: UnaryFunction, op: String, a: Scalar = 0, b: Scalar = 0, bias: Tensor? = nil) -> Tensor {
        if let bias {
            require(bias.rank == 1 && shape.last == bias.count, "\(op): bias of shape \(bias.shape) does not match the last axis of \(shape)")
            checkSameDevice(bias, op: op)
        }
        let x = contiguousData(), biasData = bias?.contiguousData()
        let y = Tensor.uninitialized(shape, on: device)
        backend.unary(function, x.view, bias: biasData?.view, a: a, b: b, into: y.view)
        let savedOutput = y.detach()
        return Tensor.record(y, op: op, inputs: [self] + (bias.map { [$0] } ?? [])) { gradient in
            let dy = gradient.contiguousData()
            let dx = Tensor.uninitialized(x.shape, on: x.device)
            x.backend.unaryDerivative(function, x: x.view, bias: biasData?.view, y: savedOutput.view, upstream: dy.view, a: a, b: b,
                                      into: dx.view)
            return [dx] + (biasData.map { [dx.sum(toShape: $0.shape)] } ?? [])
        }
    }

    /// −x
    public static prefix func - (x: Tensor) -> Tensor { x.unary(.negate, op: "neg") }
    /// eˣ
    public func exp() -> Tensor { unary(.exp, op: "exp") }
    /// Natural logarithm.
    public func log() -> Tensor { unary(.log, op: "log") }
    /// √x
    public func sqrt() -> Tensor { unary(.sqrt, op: "sqrt") }
    /// 1/√x
    public func rsqrt() -> Tensor { unary(.rsqrt, op: "rsqrt") }
    /// |x|, with gradient 0 at 0.
    public func abs() -> Tensor { unary(.abs, op: "abs") }
    /// Hyperbolic tangent.
    public func tanh() -> Tensor { unary(.tanh, op: "tanh") }
    /// σ(x) = 1/(1 + e⁻ˣ), computed without overflow for large |x|.
    public func sigmoid() -> Tensor { unary(.sigmoid, op: "sigmoid") }
    /// max(x, 0), with gradient 0 at 0.
    public func relu() -> Tensor { unary(.relu, op: "relu") }
    /// GELU, exact (erf) form or the tanh approximation.
    public func gelu(approximate: Bool = false) -> Tensor {
        approximate ? unary(.geluTanh, op: "gelu(tanh)") : unary(.geluErf, op: "gelu")
    }
    /// x·σ(x)
    public func silu() -> Tensor { unary(.silu, op: "silu") }
    /// Limits values to [min, max]; the gradient flows where min ≤ x ≤ max.
    public func clamp(min: Scalar = -.infinity, max: Scalar = .infinity) -> Tensor {
        require(min <= max, "clamp: min \(min) is greater than max \(max)")
        return unary(.clamp, op: "clamp", a: min, b: max)
    }
    /// xᵖ for a scalar exponent.
    public func pow(_ exponent: Scalar) -> Tensor { unary(.power, op: "pow", a: exponent) }
    /// xᵉ elementwise, with broadcasting.
    public func pow(_ exponent: Tensor) -> Tensor { Tensor.binary(.power, self, exponent) }

    /// Broadcast binary op and its backward, each input's gradient summed back to its own shape.
    static func binary(_ function: BinaryFunction, _ lhs: Tensor, _ rhs: Tensor) -> Tensor {
        let op = "\(function)"
        lhs.checkSameDevice(rhs, op: op)
        let shape = Shape.broadcast(lhs.shape, rhs.shape, op: op)
        let out = Tensor.uninitialized(shape, on: lhs.device)
        lhs.backend.binary(function, lhs.expandedView(shape).view, rhs.expandedView(shape).view, into: out.view)
        let lhsValue = lhs.detach(), rhsValue = rhs.detach(), outValue = out.detach()
        return record(out, op: op, inputs: [lhs, rhs]) { g in
            let (dl, dr): (Tensor?, Tensor?)
            switch function {
            case .add: (dl, dr) = (g, g)
            case .subtract: (dl, dr) = (g, -g)
            case .multiply: (dl, dr) = (g * rhsValue, g * lhsValue)
            case .divide: (dl, dr) = (g / rhsValue, -g * outValue / rhsValue)
            case .power:
                // d(aᵇ)/da = b·aᵇ⁻¹,  d(aᵇ)/db = aᵇ·ln a
                (dl, dr) = (g * rhsValue * lhsValue.pow(rhsValue - 1), rhs.requiresGrad ? g * outValue * lhsValue.log() : nil)
            }
            return [lhs.requiresGrad ? dl?.sum(toShape: lhs.shape) : nil, rhs.requiresGrad ? dr?.sum(toShape: rhs.shape) : nil]
        }
    }

    // Arithmetic with NumPy broadcasting; each gradient is summed back to its operand's shape.
    public static func + (lhs: Tensor, rhs: Tensor) -> Tensor { binary(.add, lhs, rhs) }
    public static func - (lhs: Tensor, rhs: Tensor) -> Tensor { binary(.subtract, lhs, rhs) }
    public static func * (lhs: Tensor, rhs: Tensor) -> Tensor { binary(.multiply, lhs, rhs) }
    public static func / (lhs: Tensor, rhs: Tensor) -> Tensor { binary(.divide, lhs, rhs) }

    // Arithmetic with a scalar: one fused a·x + b pass.
    public static func + (lhs: Tensor, rhs: Scalar) -> Tensor { lhs.unary(.affine, op: "add", a: 1, b: rhs) }
    public static func + (lhs: Scalar, rhs: Tensor) -> Tensor { rhs + lhs }
    public static func - (lhs: Tensor, rhs: Scalar) -> Tensor { lhs.unary(.affine, op: "sub", a: 1, b: -rhs) }
    public static func - (lhs: Scalar, rhs: Tensor) -> Tensor { rhs.unary(.affine, op: "sub", a: -1, b: lhs) }
    public static func * (lhs: Tensor, rhs: Scalar) -> Tensor { lhs.unary(.affine, op: "mul", a: rhs, b: 0) }
    public static func * (lhs: Scalar, rhs: Tensor) -> Tensor { rhs * lhs }
    public static func / (lhs: Tensor, rhs: Scalar) -> Tensor { lhs.unary(.affine, op: "div", a: 1 / rhs, b: 0) }
    public static func / (lhs: Scalar, rhs: Tensor) -> Tensor { Tensor.full(rhs.shape, lhs, device: rhs.device) / rhs }
}
