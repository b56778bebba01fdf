extension Tensor {
    /// Numerically stable softmax along `axis`. A slice that is entirely −∞ (fully masked) gives zeros.
    public func softmax(axis: Int = -1) -> Tensor { softmaxFamily(axis: axis, log: false) }

    /// Numerically stable log softmax along `axis`.
    public func logSoftmax(axis: Int = -1) -> Tensor { softmaxFamily(axis: axis, log: true) }

    private func softmaxFamily(axis: Int, log: Bool) -> Tensor {
        let a = Shape.normalizeAxis(axis, rank: rank, op: log ? "logSoftmax" : "softmax")
        // The kernel works on contiguous last-axis rows; move `axis` last and back.
        if a != rank - 1 {
            return transposed(a, -1).softmaxFamily(axis: -1, log: log).transposed(a, -1)
        }
        let x = contiguousData(), length = shape[a], rows = count / Swift.max(1, length)
        let y = Tensor.uninitialized(shape, on: device)
        backend.softmax(x.view, rows: rows, length: length, log: log, into: y.view)
        let output = y.detach()
        return Tensor.record(y, op: log ? "logSoftmax" : "softmax", inputs: [self]) { gradient in
            let dy = gradient.contiguousData()
            let dx = Tensor.uninitialized(output.shape, on: output.device)
            output.backend.softmaxBackward(output: output.view, upstream: dy.view, rows: rows, length: length, log: log, into: dx.view)
            return [dx]
        }
    }
}
