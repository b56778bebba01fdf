extension Tensor {
    /// Layer normalisation over the last axis: (x − mean)/√(var + ε)·weight + bias (biased variance).
    public func layerNorm(weight: Tensor? = nil, bias: Tensor? = nil, epsilon: Scalar = 1e-5) -> Tensor {
        normalize(centered: true, residual: nil, weight: weight, bias: bias, epsilon: epsilon, op: "layerNorm").normalized
    }

    /// RMS normalisation over the last axis: x/√(mean x² + ε)·weight.
    public func rmsNorm(weight: Tensor? = nil, epsilon: Scalar = 1e-6) -> Tensor {
        normalize(centered: false, residual: nil, weight: weight, bias: nil, epsilon: epsilon, op: "rmsNorm").normalized
    }

    /// self + residual and its layer normalisation, in one kernel: a Transformer's residual
    /// connection and the norm after it (FlashAttention's `layer_norm_fn(x, residual=…)`).
    public func layerNorm(residual: Tensor, weight: Tensor? = nil, bias: Tensor? = nil,
                          epsilon: Scalar = 1e-5) -> (sum: Tensor, normalized: Tensor) {
        normalize(centered: true, residual: residual, weight: weight, bias: bias, epsilon: epsilon, op: "layerNorm")
    }

    /// self + residual and its RMS normalisation, in one kernel.
    public func rmsNorm(residual: Tensor, weight: Tensor? = nil, epsilon: Scalar = 1e-6) -> (sum: Tensor, normalized: Tensor) {
        normalize(centered: false, residual: residual, weight: weight, bias: nil, epsilon: epsilon, op: "rmsNorm")
    }

    /// The normalisation of `sum`: self, or self + residual (computed in the same kernel and recorded
    /// as an addition, so that its gradient flows to both).
    private func normalize(centered: Bool, residual: Tensor?, weight: Tensor?, bias: Tensor?, epsilon: Scalar,
                           op: String) -> (sum: Tensor, normalized: Tensor) {
        require(rank >= 1, "\(op): input must have at least one axis, got shape \(shape)")
        let length = shape[rank - 1], rows = count / Swift.max(1, length)
        for (name, parameter) in [("weight", weight), ("bias", bias)] {
            if let parameter {
                require(parameter.shape == [length], "\(op): \(name) has shape \(parameter.shape), expected [\(length)] for input \(shape)")
            }
        }
        if let residual { require(residual.shape == shape, "\(op): residual of shape \(residual.shape) does not match the input \(shape)") }
        for other in [residual, weight, bias].compactMap({ $0 }) { checkSameDevice(other, op: op) }
        let w = weight?.contiguousData(), b = bias?.contiguousData()
        var x = contiguousData(), sum = self
        let y = Tensor.uninitialized(shape, on: device)
        let mean = Tensor.uninitialized([rows], on: device), reciprocalDeviation = Tensor.uninitialized([rows], on: device)
        if let residual {
            let summed = Tensor.uninitialized(shape, on: device)
            backend.normalize(x.view, residual: (residual.contiguousData().view, summed.view), rows: rows, length: length,
                              centered: centered, epsilon: epsilon, weight: w?.view, bias: b?.view, into: y.view, mean: mean.view,
                              reciprocalDeviation: reciprocalDeviation.view)
            sum = Tensor.record(summed, op: "add", inputs: [self, residual]) { [$0, $0] }
            x = summed.detach()
        } else {
            backend.normalize(x.view, residual: nil, rows: rows, length: length, centered: centered, epsilon: epsilon, weight: w?.view,
                              bias: b?.view, into: y.view, mean: mean.view, reciprocalDeviation: reciprocalDeviation.view)
        }
        let normalizedInput = x
        let inputs = [sum] + [weight, bias].compactMap { $0 }
        let normalized = Tensor.record(y, op: op, inputs: inputs) { gradient in
            let dy = gradient.contiguousData()
            let dx = Tensor.uninitialized(normalizedInput.shape, on: normalizedInput.device)
            let dWeight = weight.map { _ in Tensor.uninitialized([length], on: normalizedInput.device) }
            let dBias = bias.map { _ in Tensor.uninitialized([length], on: normalizedInput.device) }
            normalizedInput.backend.normalizeBackward(normalizedInput.view, upstream: dy.view, rows: rows, length: length, centered: centered,
                                                      weight: w?.view, mean: mean.view, reciprocalDeviation: reciprocalDeviation.view,
                                                      dx: dx.view, dWeight: dWeight?.view, dBias: dBias?.view)
            return [dx] + [dWeight, dBias].compactMap { $0 }
        }
        return (sum, normalized)
    }
}
