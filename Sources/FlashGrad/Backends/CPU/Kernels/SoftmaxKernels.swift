/// Row-wise softmax over contiguous rows of length `length`.
enum SoftmaxKernels {
    /// y = softmax(x) or log softmax(x), subtracting the row max first so exp never overflows.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    static func forward<T: TensorScalar>(_ x: UnsafePointer<T>, rows: Int, length: Int, log: Bool, into y: UnsafeMutablePointer<T>) {
        Parallel.forRanges(rows, minimumPerThread: Swift.max(1, Parallel.minimumElementsPerThread / Swift.max(1, length))) { range in
            for row in range {
                let input = x + row * length, output = y + row * length
                // As PyTorch, a NaN makes the row NaN. A row of −∞ (fully masked) gives 0 on purpose,
                // where PyTorch's softmax gives NaN (its attention uses a "safe" softmax for it), and
                // log softmax gives log 0 = −∞ there, so that the two agree.
                var maximum = -T.infinity
                for i in 0..<length where input[i] > maximum || input[i].isNaN {
                    maximum = input[i]
                    if maximum.isNaN { break }
                }
                if maximum == -.infinity { maximum = 0 }  // a row of −∞: avoid (−∞) − (−∞)
                var total: T = 0
                for i in 0..<length {
                    output[i] = T.exp(input[i] - maximum)
                    total += output[i]
                }
                if log {
                    // (x − max) − log Σ keeps precision that x − (max + log Σ) would round away.
                    let logTotal = T.log(total)
                    for i in 0..<length { output[i] = total == 0 ? -.infinity : (input[i] - maximum) - logTotal }
                } else {
                    let inverse = total == 0 ? 0 : 1 / total
                    for i in 0..<length { output[i] *= inverse }
                }
            }
        }
    }

    /// Softmax: dx = y ∘ (dy − Σ dy∘y).  Log softmax: dx = dy − eʸ·Σ dy.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    static func backward<T: TensorScalar>(_ y: UnsafePointer<T>, _ dy: UnsafePointer<T>, rows: Int, length: Int, log: Bool,
                                          into dx: UnsafeMutablePointer<T>) {
        Parallel.forRanges(rows, minimumPerThread: Swift.max(1, Parallel.minimumElementsPerThread / Swift.max(1, length))) { range in
            for row in range {
                let out = y + row * length, up = dy + row * length, down = dx + row * length
                var dot: T = 0
                if log {
                    for i in 0..<length { dot += up[i] }
                    for i in 0..<length { down[i] = up[i] - T.exp(out[i]) * dot }
                } else {
                    for i in 0..<length { dot += up[i] * out[i] }
                    for i in 0..<length { down[i] = out[i] * (up[i] - dot) }
                }
            }
        }
    }
}
