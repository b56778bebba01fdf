/// Updates parameters from their gradients. State (moments, step count) can be saved and restored
/// by name, so a resumed run continues exactly.
public protocol Optimizer: AnyObject {
    associatedtype Scalar: TensorScalar
    /// The learning rate of the next ``step()``; schedules set it before each step.
    var learningRate: Scalar { get set }
    /// Steps taken so far.
    var stepCount: Int { get }
    /// Applies one update to every parameter that has a gradient.
    func step()
    /// The optimizer's state as named tensors (saved beside the model in a checkpoint).
    func stateDictionary() -> [String: Tensor<Scalar>]
    /// Restores what ``stateDictionary()`` returned.
    func loadStateDictionary(_ state: [String: Tensor<Scalar>]) throws
}

/// Stochastic gradient descent with optional momentum, Nesterov momentum and weight decay.
public final class SGD<Scalar: TensorScalar>: Optimizer {
    public let parameters: [(String, Tensor<Scalar>)]
    public var learningRate: Scalar
    public let momentum: Scalar, weightDecay: Scalar, nesterov: Bool
    public private(set) var stepCount = 0
    private var momentumBuffers: [Tensor<Scalar>]

    public init(_ parameters: [(String, Tensor<Scalar>)], learningRate: Scalar, momentum: Scalar = 0,
                nesterov: Bool = false, weightDecay: Scalar = 0) {
        require(!nesterov || momentum > 0, "SGD: Nesterov momentum needs momentum > 0")
        self.parameters = parameters
        self.learningRate = learningRate
        self.momentum = momentum
        self.nesterov = nesterov
        self.weightDecay = weightDecay
        momentumBuffers = parameters.map { $0.1.zerosLike() }
    }

    public func step() {
        stepCount += 1
        let updates = parameterBuffers(zip(parameters.map { $0.1 }, momentumBuffers).map { ($0, momentum > 0 ? [$1] : []) }, op: "SGD.step")
        for (device, group) in updates {
            device.backend(for: "SGD.step").sgdUpdate(group, learningRate: learningRate, momentum: momentum, weightDecay: weightDecay,
                                                       nesterov: nesterov)
        }
    }

    public func stateDictionary() -> [String: Tensor<Scalar>] {
        var state = Dictionary(uniqueKeysWithValues: zip(parameters, momentumBuffers).map { ("\($0.0.0).momentum", $0.1) })
        state["step"] = Tensor(scalar: Scalar(stepCount))
        return state
    }

    public func loadStateDictionary(_ state: [String: Tensor<Scalar>]) throws {
        stepCount = try loadOptimizerState(state, into: zip(parameters, momentumBuffers).map { ("\($0.0.0).momentum", $0.1) })
    }
}

/// Adam (L2 weight decay added to the gradient) or AdamW (decoupled weight decay), as in PyTorch.
public final class Adam<Scalar: TensorScalar>: Optimizer {
    public let parameters: [(String, Tensor<Scalar>)]
    public var learningRate: Scalar
    public let beta1: Scalar, beta2: Scalar, epsilon: Scalar, weightDecay: Scalar
    /// `true` for AdamW.
    public let decoupledWeightDecay: Bool
    public private(set) var stepCount = 0
    private var firstMoments: [Tensor<Scalar>], secondMoments: [Tensor<Scalar>]

    public init(_ parameters: [(String, Tensor<Scalar>)], learningRate: Scalar = 1e-3, beta1: Scalar = 0.9, beta2: Scalar = 0.999,
                epsilon: Scalar = 1e-8, weightDecay: Scalar = 0, decoupledWeightDecay: Bool = false) {
        self.parameters = parameters
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        self.decoupledWeightDecay = decoupledWeightDecay
        firstMoments = parameters.map { $0.1.zerosLike() }
        secondMoments = parameters.map { $0.1.zerosLike() }
    }

    /// AdamW with PyTorch's default weight decay of 0.01.
    public static func adamW(_ parameters: [(String, Tensor<Scalar>)], learningRate: Scalar = 1e-3, beta1: Scalar = 0.9,
                             beta2: Scalar = 0.999, epsilon: Scalar = 1e-8, weightDecay: Scalar = 0.01) -> Adam {
        Adam(parameters, learningRate: learningRate, beta1: beta1, beta2: beta2, epsilon: epsilon, weightDecay: weightDecay,
             decoupledWeightDecay: true)
    }

    public func step() {
        stepCount += 1
        let updates = parameterBuffers(parameters.indices.map { (parameters[$0].1, [firstMoments[$0], secondMoments[$0]]) }, op: "Adam.step")
        for (device, group) in updates {
            device.backend(for: "Adam.step").adamUpdate(group, learningRate: learningRate, beta1: beta1, beta2: beta2, epsilon: epsilon,
                                                         weightDecay: weightDecay, decoupled: decoupledWeightDecay, step: stepCount)
        }
    }

    private var namedState: [(String, Tensor<Scalar>)] {
        parameters.indices.flatMap { i in
            [("\(parameters[i].0).exp_avg", firstMoments[i]), ("\(parameters[i].0).exp_avg_sq", secondMoments[i])]
        }
    }

    public func stateDictionary() -> [String: Tensor<Scalar>] {
        var state = Dictionary(uniqueKeysWithValues: namedState)
        state["step"] = Tensor(scalar: Scalar(stepCount))
        return state
    }

    public func loadStateDictionary(_ state: [String: Tensor<Scalar>]) throws {
        stepCount = try loadOptimizerState(state, into: namedState)
    }
}

/// What one fused update per device takes: each parameter that has a gradient, with its gradient
/// (contiguous) and its optimizer state (moved to the parameter's device), grouped by device in the
/// order the devices first appear. (Here and in clipping, closures rather than key paths: a key
/// path into a generic type is built at run time on every call, which showed in a GPU step's host time.)
private func parameterBuffers<Scalar>(_ parameters: [(Tensor<Scalar>, state: [Tensor<Scalar>])], op: String)
    -> [(Device, [ParameterBuffers<Scalar>])] {
    var groups: [(Device, [ParameterBuffers<Scalar>])] = []
    for (parameter, state) in parameters {
        guard let grad = parameter.grad else { continue }
        require(parameter.isContiguous, "\(op): parameter of shape \(parameter.shape) must be contiguous")
        parameter.checkSameDevice(grad, op: op)
        for tensor in state { tensor.moveData(to: parameter.device) }
        let buffers = ParameterBuffers(parameter: parameter.view, gradient: grad.contiguousData().view, state: state.map { $0.view })
        if let index = groups.firstIndex(where: { $0.0 == parameter.device }) {
            groups[index].1.append(buffers)
        } else {
            groups.append((parameter.device, [buffers]))
        }
    }
    return groups
}

/// Checks names, shapes and the step count (reporting every mismatch), then copies state into
/// `targets` and returns the step count. The step must be a whole number that `Scalar` holds
/// exactly: a file's NaN, infinity, −1 or 2.5 is refused, never converted.
private func loadOptimizerState<Scalar>(_ state: [String: Tensor<Scalar>], into targets: [(String, Tensor<Scalar>)]) throws -> Int {
    var problems: [String] = []
    // Integers up to 2^(significand bits + 1) are exact: 2^24 in Float, 2^53 in Double.
    let largestStep = Scalar(sign: .plus, exponent: Scalar.Exponent(Scalar.significandBitCount + 1), significand: 1)
    var step = 0
    if let value = state["step"] {
        if value.shape != [] {
            problems.append("optimizer entry 'step' has shape \(value.shape), expected a scalar ([])")
        } else if let count = Optional(value.item), count.isFinite, count >= 0, count <= largestStep, count.rounded() == count {
            step = Int(count)
        } else {
            problems.append("optimizer entry 'step' is \(value.item); it must be a whole number from 0 to \(largestStep)")
        }
    } else {
        problems.append("missing optimizer entry 'step'")
    }
    let expected = Set(targets.map(\.0) + ["step"])
    for (name, target) in targets {
        guard let value = state[name] else { problems.append("missing optimizer entry '\(name)'"); continue }
        if value.shape != target.shape { problems.append("optimizer entry '\(name)' has shape \(value.shape), expected \(target.shape)") }
    }
    for name in state.keys.sorted() where !expected.contains(name) { problems.append("unexpected optimizer entry '\(name)'") }
    guard problems.isEmpty else { throw StateDictionaryError(problems: problems) }
    for (name, target) in targets { target.assign(state[name]!) }
    return step
}

/// Scales all gradients so that their joint L2 norm is at most `maximumNorm`, as PyTorch's
/// `clip_grad_norm_`: every gradient is multiplied by min(1, maximumNorm / (norm + 1e-6)), computed
/// where the gradients are, so that a GPU step never waits for the host. Returns the norm before
/// clipping as a one-element tensor (read it with `item`).
@discardableResult
public func clipGradientNorm<Scalar: TensorScalar>(_ parameters: [Tensor<Scalar>], maximumNorm: Scalar) -> Tensor<Scalar> {
    require(maximumNorm > 0, "clipGradientNorm: maximumNorm must be positive, got \(maximumNorm)")
    // Scaled in place, as PyTorch's clip_grad_norm_ does: each gradient made contiguous first, and
    // a parameter listed twice (tied weights) counted and scaled once.
    var seen = Set<ObjectIdentifier>()
    let unique = parameters.filter { seen.insert(ObjectIdentifier($0)).inserted }
    for parameter in unique { if let grad = parameter.grad, !grad.isContiguous { parameter.grad = grad.contiguousData() } }
    let gradients = unique.compactMap { $0.grad }
    guard let first = gradients.first else { return Tensor(scalar: 0) }
    return withoutGradients {
        // Σ g² per device, each backend reading its own buffers, then added on the first gradient's device.
        let squares = Dictionary(grouping: gradients, by: { $0.device }).map { device, group -> Tensor<Scalar> in
            let sum = Tensor<Scalar>.uninitialized([], on: device)
            sum.backend.sumOfSquares(group.map { $0.view }, into: sum.view)
            return sum.to(first.device)
        }
        let norm = squares.dropFirst().reduce(squares[0], +).sqrt()
        let scale = (maximumNorm / (norm + 1e-6)).clamp(max: 1)
        for (device, group) in Dictionary(grouping: gradients, by: { $0.device }) {
            let factor = scale.to(device)
            device.backend(for: "clipGradientNorm").scale(group.map { $0.view }, by: factor.view)
        }
        return norm
    }
}
