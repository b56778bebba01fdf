/// In-place parameter updates, one pass over each parameter's memory.
enum OptimizerKernels {
    /// SGD with momentum buffer b (PyTorch's form): g ← g + λθ;  b ← μb + g;  step = g + μb (Nesterov) or b;  θ ← θ − η·step
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    static func sgd<T: TensorScalar>(_ parameter: UnsafeMutablePointer<T>, _ gradient: UnsafePointer<T>,
                                     momentumBuffer: UnsafeMutablePointer<T>?, count: Int, learningRate: T,
                                     momentum: T, weightDecay: T, nesterov: Bool) {
        for i in 0..<count {
            let g = gradient[i] + weightDecay * parameter[i]
            var step = g
            if let buffer = momentumBuffer {
                buffer[i] = momentum * buffer[i] + g
                step = nesterov ? g + momentum * buffer[i] : buffer[i]
            }
            parameter[i] -= learningRate * step
        }
    }

    /// Adam / AdamW: m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²;  θ ← θ − η·(m/(1−β₁ᵗ)) / (√(v/(1−β₂ᵗ)) + ε).
    /// Weight decay is added to g (Adam, L2) or applied to θ directly as θ ← θ(1 − ηλ) (AdamW, decoupled).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    static func adam<T: TensorScalar>(_ parameter: UnsafeMutablePointer<T>, _ gradient: UnsafePointer<T>,
                                      firstMoment m: UnsafeMutablePointer<T>, secondMoment v: UnsafeMutablePointer<T>,
                                      count: Int, learningRate: T, beta1: T, beta2: T, epsilon: T, weightDecay: T,
                                      decoupled: Bool, step: Int) {
        let correction1 = 1 - T.pow(beta1, step), correction2 = 1 - T.pow(beta2, step)
        for i in 0..<count {
            var g = gradient[i]
            if decoupled { parameter[i] *= 1 - learningRate * weightDecay } else { g += weightDecay * parameter[i] }
            m[i] = beta1 * m[i] + (1 - beta1) * g
            v[i] = beta2 * v[i] + (1 - beta2) * g * g
            parameter[i] -= learningRate * (m[i] / correction1) / ((v[i] / correction2).squareRoot() + epsilon)
        }
    }
}
