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
        precondition(rank >= 1, "\(op): input must have at least one axis, got shape \(shape)")
        let length = shape[rank - 1], rows = count / Swift.max(1, length)
        for (name, parameter) in [("weight", weight), ("bias", bias)] {
            if let parameter {
                precondition(parameter.shape == [length], "\(op): \(name) has shape \(parameter.shape), expected [\(length)] for input \(shape)")
            }
        }
        let x = contiguousData(), w = weight?.contiguousData(), b = bias?.contiguousData()
        let y = Tensor(storage: TensorStorage(count: count), shape: shape)
        let mean = TensorStorage<Scalar>(count: rows), reciprocalDeviation = TensorStorage<Scalar>(count: rows)
        NormalizationKernels.forward(x.basePointer, rows: rows, length: length, centered: centered, epsilon: epsilon,
                                     weight: w.map { UnsafePointer($0.basePointer) }, bias: b.map { UnsafePointer($0.basePointer) },
                                     into: y.basePointer, mean: mean.pointer, reciprocalDeviation: reciprocalDeviation.pointer)
        let inputs = [self] + [weight, bias].compactMap { $0 }
        return Tensor.record(y, op: op, inputs: inputs) { gradient in
            let dy = gradient.contiguousData()
            let dx = Tensor(storage: TensorStorage(count: x.count), shape: x.shape)
            let dWeight = weight.map { _ in Tensor.zeros([length]) }, dBias = bias.map { _ in Tensor.zeros([length]) }
            NormalizationKernels.backward(x.basePointer, dy.basePointer, rows: rows, length: length, centered: centered,
                                          weight: w.map { UnsafePointer($0.basePointer) }, mean: mean.pointer,
                                          reciprocalDeviation: reciprocalDeviation.pointer, dx: dx.basePointer,
                                          dWeight: dWeight?.basePointer, dBias: dBias?.basePointer)
            return [dx] + [dWeight, dBias].compactMap { $0 }
        }
    }
}
