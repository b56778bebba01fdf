extension Tensor {
    /// Layer normalisation over the last axis: (x − mean)/√(var + ε)·weight + bias (biased variance).
    public func layerNorm(weight: Tensor? = nil, bias: Tensor? = nil, epsilon: Scalar = 1e-5) -> Tensor {
        normalize(centered: true, weight: weight, bias: bias, epsilon: epsilon, op: "layerNorm")
    }

    /// RMS normalisation over the last axis: x/√(mean x² + ε)·weight.
    public func rmsNorm(weight: Tensor? = nil, epsilon: Scalar = 1e-6) -> Tensor {
        normalize(centered: false, weight: weight, bias: nil, epsilon: epsilon, op: "rmsNorm")
    }

    private func normalize(centered: Bool, weight: Tensor?, bias: Tensor?, epsilon: Scalar, op: String) -> Tensor {
        require(rank >= 1, "\(op): input must have at least one axis, got shape \(shape)")
        let length = shape[rank - 1], rows = count / Swift.max(1, length)
        for (name, parameter) in [("weight", weight), ("bias", bias)] {
            if let parameter {
                require(parameter.shape == [length], "\(op): \(name) has shape \(parameter.shape), expected [\(length)] for input \(shape)")
            }
        }
        for parameter in [weight, bias].compactMap({ $0 }) { checkSameDevice(parameter, op: op) }
        let x = contiguousData(), w = weight?.contiguousData(), b = bias?.contiguousData()
        let y = Tensor.uninitialized(shape, on: device)
        let mean = Tensor.uninitialized([rows], on: device), reciprocalDeviation = Tensor.uninitialized([rows], on: device)
        backend.normalize(x.view, rows: rows, length: length, centered: centered, epsilon: epsilon, weight: w?.view, bias: b?.view,
                          into: y.view, mean: mean.view, reciprocalDeviation: reciprocalDeviation.view)
        let inputs = [self] + [weight, bias].compactMap { $0 }
        return Tensor.record(y, op: op, inputs: inputs) { gradient in
            let dy = gradient.contiguousData()
            let dx = Tensor.uninitialized(x.shape, on: x.device)
            let dWeight = weight.map { _ in Tensor.uninitialized([length], on: x.device) }
            let dBias = bias.map { _ in Tensor.uninitialized([length], on: x.device) }
            x.backend.normalizeBackward(x.view, upstream: dy.view, rows: rows, length: length, centered: centered, weight: w?.view,
                                        mean: mean.view, reciprocalDeviation: reciprocalDeviation.view, dx: dx.view,
                                        dWeight: dWeight?.view, dBias: dBias?.view)
            return [dx] + [dWeight, dBias].compactMap { $0 }
        }
    }
}
