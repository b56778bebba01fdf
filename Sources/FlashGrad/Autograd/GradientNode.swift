/// One recorded op in the define-by-run graph: its inputs and how to turn the gradient of its
/// output into gradients of those inputs.
final class GradientNode<Scalar: TensorScalar> {
    let op: String
    var inputs: [Tensor<Scalar>]
    /// Maps ∂L/∂output to ∂L/∂input for each input (`nil` where an input needs none).
    var backward: ((Tensor<Scalar>) -> [Tensor<Scalar>?])?

    init(op: String, inputs: [Tensor<Scalar>], backward: @escaping (Tensor<Scalar>) -> [Tensor<Scalar>?]) {
        self.op = op
        self.inputs = inputs
        self.backward = backward
    }

    /// Drops the inputs and the closure so the graph's memory is returned after `backward()`.
    func release() {
        inputs = []
        backward = nil
    }
}

/// Whether ops record a graph: off inside ``withoutGradients(_:)`` and while a backward runs, on
/// the thread (or task) that runs them only, so that one thread's backward never stops another
/// thread from recording.
public enum GradientMode {
    @TaskLocal static var isEnabled = true
}

/// Runs `body` without recording a graph on this thread, like `torch.no_grad()`.
@discardableResult
public func withoutGradients<Result>(_ body: () throws -> Result) rethrows -> Result {
    try GradientMode.$isEnabled.withValue(false, operation: body)
}

extension Tensor {
    /// Attaches a backward to a freshly computed `output` when recording is on and some input
    /// requires gradients. Every differentiable op ends with this call, its backward beside it;
    /// a custom op does the same: compute `output` inside ``withoutGradients(_:)``, then record it.
    ///
    /// `backward` receives ∂L/∂output and returns ∂L/∂input for each input, in order (`nil` for
    /// none). It must not capture `output` itself (that would keep the graph alive): capture
    /// `output.detach()` instead.
    public static func record(_ output: Tensor, op: String, inputs: [Tensor],
                       backward: @escaping (Tensor) -> [Tensor?]) -> Tensor {
        guard GradientMode.isEnabled, inputs.contains(where: { $0.requiresGrad }) else { return output }
        output.requiresGrad = true
        output.gradientNode = GradientNode(op: op, inputs: inputs, backward: backward)
        return output
    }

    /// Reverse-mode differentiation from this tensor.
    ///
    /// Visits the graph once in reverse topological order, accumulates `grad` on leaves that
    /// require gradients and frees the graph. `gradient` defaults to 1 for a one-element tensor.
    public func backward(_ gradient: Tensor? = nil) {
        require(requiresGrad, "backward: tensor of shape \(shape) does not require gradients")
        let seed: Tensor
        if let gradient {
            require(gradient.shape == shape, "backward: gradient shape \(gradient.shape) does not match tensor shape \(shape)")
            checkSameDevice(gradient, op: "backward")
            seed = gradient
        } else {
            require(count == 1, "backward: implicit gradient needs a one-element tensor, got shape \(shape); pass a gradient")
            seed = Tensor.ones(shape, device: device)
        }
        withoutGradients {
            let order = topologicalOrder()
            var gradients: [ObjectIdentifier: Tensor] = [ObjectIdentifier(self): seed]
            // Storages already handed to a leaf (or owned by the caller's seed): a leaf may adopt a
            // fresh gradient's storage instead of copying it, but never one that another tensor holds.
            var claimedStorages: Set<ObjectIdentifier> = [ObjectIdentifier(seed.storage)]
            for tensor in order.reversed() {
                guard let upstream = gradients.removeValue(forKey: ObjectIdentifier(tensor)) else { continue }
                guard let node = tensor.gradientNode, let backward = node.backward else {
                    if tensor.requiresGrad {
                        // A leaf comes after every op that used it: its gradient is complete here.
                        tensor.accumulateGrad(upstream, claimedStorages: &claimedStorages)
                        for hook in tensor.gradientReadyHooks { hook(tensor) }
                    }
                    continue
                }
                let inputGradients = backward(upstream)
                for (input, inputGradient) in zip(node.inputs, inputGradients) {
                    guard input.requiresGrad, let inputGradient else { continue }
                    require(inputGradient.shape == input.shape,
                                 "backward of \(node.op): gradient shape \(inputGradient.shape) does not match input shape \(input.shape)")
                    let key = ObjectIdentifier(input)
                    if let existing = gradients[key] { gradients[key] = existing + inputGradient }
                    else { gradients[key] = inputGradient }
                }
                node.release()
                tensor.gradientNode = nil
            }
        }
    }

    /// Calls `hook` with this leaf during every later ``backward(_:)``, as soon as its ``grad`` holds
    /// that backward's whole contribution (PyTorch's `register_post_accumulate_grad_hook`):
    /// data-parallel training starts reducing a bucket of gradients while the backward goes on.
    public func registerGradientReadyHook(_ hook: @escaping (Tensor) -> Void) {
        require(gradientNode == nil, "registerGradientReadyHook: tensor of shape \(shape) is not a leaf")
        gradientReadyHooks.append(hook)
    }

    private func accumulateGrad(_ gradient: Tensor, claimedStorages: inout Set<ObjectIdentifier>) {
        if let grad { self.grad = grad + gradient; return }
        let ownsWholeStorage = gradient.isContiguous && gradient.offset == 0 && gradient.count == gradient.storage.count
        if ownsWholeStorage && claimedStorages.insert(ObjectIdentifier(gradient.storage)).inserted {
            self.grad = gradient.detach()
        } else {
            self.grad = gradient.copy()
        }
    }

    /// Depth-first post-order over the recorded graph, without recursion (graphs can be deep).
    private func topologicalOrder() -> [Tensor] {
        var order: [Tensor] = []
        var visited = Set<ObjectIdentifier>()
        var stack: [(Tensor, Bool)] = [(self, false)]
        while let (tensor, expanded) = stack.popLast() {
            if expanded { order.append(tensor); continue }
            guard visited.insert(ObjectIdentifier(tensor)).inserted else { continue }
            stack.append((tensor, true))
            for input in tensor.gradientNode?.inputs ?? [] where input.requiresGrad
                && !visited.contains(ObjectIdentifier(input)) {
                stack.append((input, false))
            }
        }
        return order
    }
}
