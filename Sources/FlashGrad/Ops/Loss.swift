extension Tensor {
    /// Cross entropy between logits [..., classes] and integer targets [...], averaged over the
    /// targets that are not `ignoreIndex`.
    ///
    /// With label smoothing ε the target distribution is (1 − ε)·onehot + ε/classes, as in PyTorch.
    /// When every target is ignored the loss is 0 with zero gradient (PyTorch gives NaN).
    public func crossEntropy(targets: IndexTensor, ignoreIndex: Int = -100, labelSmoothing: Scalar = 0) -> Tensor {
        require(rank >= 1, "crossEntropy: logits need a class axis, got shape \(shape)")
        let classes = shape[rank - 1]
        require(targets.shape == Array(shape.dropLast()),
                     "crossEntropy: targets of shape \(targets.shape) do not match logits \(shape) without the class axis")
        require(labelSmoothing >= 0 && labelSmoothing <= 1, "crossEntropy: labelSmoothing must be in [0, 1], got \(labelSmoothing)")
        if let bad = targets.values.first(where: { $0 != ignoreIndex && ($0 < 0 || $0 >= classes) }) {
            fatalError("crossEntropy: target \(bad) is out of range for \(classes) classes")
        }
        let logProbabilities = withoutGradients { logSoftmax(axis: -1) }.contiguousData()
        let counted = targets.values.filter { $0 != ignoreIndex }.count
        let rowLosses = Tensor.uninitialized([targets.count], on: device)
        backend.crossEntropyRows(logProbabilities: logProbabilities.view, targets: targets.values, classes: classes,
                                 ignoreIndex: ignoreIndex, smoothing: labelSmoothing, into: rowLosses.view)
        // Stays on the device: nothing here waits for the value.
        let logitShape = shape, device = self.device
        let loss = withoutGradients { counted == 0 ? Tensor.zeros([], device: device) : rowLosses.sum() / Scalar(counted) }
        return Tensor.record(loss, op: "crossEntropy", inputs: [self]) { gradient in
            // d loss / d logits = (softmax − target distribution) / counted, zero on ignored rows.
            let dLogits = Tensor.uninitialized(logitShape, on: device)
            dLogits.backend.crossEntropyBackward(logProbabilities: logProbabilities.view, targets: targets.values, classes: classes,
                                                 ignoreIndex: ignoreIndex, smoothing: labelSmoothing,
                                                 upstream: gradient.contiguousData().view, scale: counted == 0 ? 0 : 1 / Scalar(counted),
                                                 into: dLogits.view)
            return [dLogits]
        }
    }
}
