/// The base of every layer and model: parameters and buffers found by reflection with
/// hierarchical names, train/eval mode, a state dictionary, and moving between devices.
///
/// A subclass declares its tensors as stored `Tensor` properties (optional ones too) and its
/// sublayers as stored `Module` properties or arrays of them; nothing needs listing by hand. A
/// stored tensor that requires gradients is a parameter (trained); one that does not is a buffer
/// (saved and moved with the module, never trained, as `register_buffer` in PyTorch). The name of
/// a tensor is the path of property names to it, with array indices:
/// `encoder.layers.0.selfAttention.query.weight`.
///
/// The tree is reflected once, on first use, and cached (stored tensors and sublayers are fixed
/// after `init`; ``to(_:)`` moves tensors in place rather than replacing them).
open class Module<Scalar: TensorScalar> {
    /// Whether the module is in training mode (dropout active). Set with ``train(_:)`` or ``eval()``.
    public private(set) var isTraining = true

    public init() {}

    /// This module's own tensors and sublayers, reflected once.
    private lazy var reflected: (tensors: [(String, Tensor<Scalar>)], children: [(String, Module)]) = {
        var tensors: [(String, Tensor<Scalar>)] = [], children: [(String, Module)] = []
        for (label, value) in storedProperties {
            if let tensor = value as? Tensor<Scalar> { tensors.append((label, tensor)) }
            if let module = value as? Module { children.append((label, module)) }
            if let modules = value as? [Module] { children += modules.enumerated().map { ("\(label).\($0.offset)", $0.element) } }
        }
        return (tensors, children)
    }()

    /// Stored properties of this object and its superclasses, in declaration order.
    private var storedProperties: [(String, Any)] {
        var mirrors: [Mirror] = []
        var mirror: Mirror? = Mirror(reflecting: self)
        while let current = mirror {
            mirrors.append(current)
            mirror = current.superclassMirror
        }
        return mirrors.reversed().flatMap { $0.children.compactMap { child in child.label.map { ($0, child.value) } } }
    }

    /// Direct sublayers with their names (array elements named by index).
    public var namedChildren: [(String, Module)] { reflected.children }

    /// Every tensor of this module and its sublayers, named by path, in declaration order.
    private lazy var namedTensors: [(String, Tensor<Scalar>)] = reflected.tensors
        + namedChildren.flatMap { prefix, child in child.namedTensors.map { ("\(prefix).\($0.0)", $0.1) } }

    /// Every parameter (a stored tensor that requires gradients) of this module and its sublayers,
    /// named by path, in declaration order.
    public var namedParameters: [(String, Tensor<Scalar>)] { namedTensors.filter { $0.1.requiresGrad } }

    public var parameters: [Tensor<Scalar>] { namedParameters.map { $0.1 } }

    /// Every buffer (a stored tensor that does not require gradients), named by path.
    public var namedBuffers: [(String, Tensor<Scalar>)] { namedTensors.filter { !$0.1.requiresGrad } }

    /// Total number of scalars in the parameters.
    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.count } }

    /// This module and every module below it.
    public var allModules: [Module] { [self] + namedChildren.flatMap { $0.1.allModules } }

    /// Sets training mode here and below (dropout active when `true`).
    public func train(_ training: Bool = true) {
        for module in allModules { module.isTraining = training }
    }

    /// Evaluation mode here and below.
    public func eval() { train(false) }

    /// Clears every parameter's gradient.
    public func zeroGrad() {
        for parameter in parameters { parameter.zeroGrad() }
    }

    /// Moves every parameter and buffer (and their gradients) to `device` in place, like
    /// `module.to(device)` in PyTorch; an optimizer built on the parameters moves its state to them
    /// at its next step.
    @discardableResult
    public func to(_ device: Device) -> Self {
        for (_, tensor) in namedTensors { tensor.moveData(to: device) }
        return self
    }

    /// Parameters and buffers by name, sharing storage with the module.
    public func stateDictionary() -> [String: Tensor<Scalar>] {
        Dictionary(namedTensors, uniquingKeysWith: { first, _ in first })
    }

    /// Copies values into the parameters by name, after checking that the names and shapes match;
    /// every mismatch is reported at once.
    public func loadStateDictionary(_ state: [String: Tensor<Scalar>]) throws {
        let own = stateDictionary()
        var problems: [String] = []
        for name in own.keys.sorted() where state[name] == nil { problems.append("missing parameter '\(name)'") }
        for name in state.keys.sorted() where own[name] == nil { problems.append("unexpected parameter '\(name)'") }
        for (name, parameter) in own.sorted(by: { $0.key < $1.key }) {
            if let value = state[name], value.shape != parameter.shape {
                problems.append("parameter '\(name)' has shape \(value.shape) in the state, \(parameter.shape) in the model")
            }
        }
        guard problems.isEmpty else { throw StateDictionaryError(problems: problems) }
        for (name, parameter) in own { parameter.assign(state[name]!) }
    }
}

/// Names, shapes or dtypes that did not match while loading parameters.
public struct StateDictionaryError: Error, CustomStringConvertible {
    public let problems: [String]
    public var description: String { "state dictionary does not match the model:\n  " + problems.joined(separator: "\n  ") }
}

/// A parameter: a leaf tensor that requires gradients.
func parameter<Scalar: TensorScalar>(_ tensor: Tensor<Scalar>) -> Tensor<Scalar> { tensor.requiringGrad() }
