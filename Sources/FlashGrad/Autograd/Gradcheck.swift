/// The outcome of ``gradcheck(_:inputs:epsilon:absoluteTolerance:relativeTolerance:)``.
public struct GradcheckResult: CustomStringConvertible {
    /// The element whose analytic and numeric gradients disagree the most (relative to tolerance).
    public struct Element {
        public let input: Int
        public let index: [Int]
        public let analytic: Double
        public let numeric: Double
    }

    public let passed: Bool
    public let worst: Element?
    public let absoluteTolerance: Double
    public let relativeTolerance: Double

    public var description: String {
        guard let worst else { return "gradcheck: no input requires gradients" }
        let verdict = passed ? "passed" : "FAILED"
        return "gradcheck \(verdict): worst element is input \(worst.input) at \(worst.index): "
            + "analytic \(worst.analytic), numeric \(worst.numeric), |difference| \(Swift.abs(worst.analytic - worst.numeric)) "
            + "(allowed \(absoluteTolerance) + \(relativeTolerance)·|numeric|)"
    }
}

/// Compares the analytic gradient of `function` with central finite differences, in `Double`.
///
/// A non-scalar output is reduced to a scalar by a fixed random projection ⟨f(x), r⟩, so every
/// output element takes part. An element passes when |analytic − numeric| ≤ atol + rtol·|numeric|.
/// Only inputs with `requiresGrad` are checked.
public func gradcheck(
    _ function: ([Tensor<Double>]) -> Tensor<Double>,
    inputs: [Tensor<Double>],
    epsilon: Double = 1e-6,
    absoluteTolerance: Double = 1e-5,
    relativeTolerance: Double = 1e-3
) -> GradcheckResult {
    let probe = withoutGradients { function(inputs) }
    let projection = Tensor<Double>.normal(probe.shape, generator: RandomGenerator(seed: 0x5EED), device: probe.device)
    func scalarOutput() -> Double {
        withoutGradients { (function(inputs) * projection).sum().item }
    }

    for input in inputs { input.grad = nil }
    (function(inputs) * projection).sum().backward()

    var worst: GradcheckResult.Element?
    var worstExcess = -Double.infinity
    var passed = true
    for (inputIndex, input) in inputs.enumerated() where input.requiresGrad {
        require(input.isContiguous, "gradcheck: input \(inputIndex) must be contiguous")
        let analytic = input.grad?.scalars ?? [Double](repeating: 0, count: input.count)
        let strides = Shape.contiguousStrides(input.shape)
        let values = input.scalars
        for flat in 0..<input.count {
            let saved = values[flat]
            input.setElement(at: flat, to: saved + epsilon)
            let plus = scalarOutput()
            input.setElement(at: flat, to: saved - epsilon)
            let minus = scalarOutput()
            input.setElement(at: flat, to: saved)
            let numeric = (plus - minus) / (2 * epsilon)
            let excess = Swift.abs(analytic[flat] - numeric) - (absoluteTolerance + relativeTolerance * Swift.abs(numeric))
            if !(excess <= 0) { passed = false }
            if excess > worstExcess || worst == nil || excess.isNaN {
                worstExcess = excess.isNaN ? .infinity : excess
                let index = strides.enumerated().map { axis, stride in (flat / stride) % input.shape[axis] }
                worst = .init(input: inputIndex, index: index, analytic: analytic[flat], numeric: numeric)
            }
        }
    }
    for input in inputs { input.grad = nil }
    return GradcheckResult(passed: passed && worst != nil, worst: worst,
                           absoluteTolerance: absoluteTolerance, relativeTolerance: relativeTolerance)
}
