import Foundation

/// The CPU device: host memory from ``CPUAllocator``, kernels in `Kernels/` over unsafe pointers,
/// OpenBLAS and LAPACKE for products and factorizations, threads through ``Parallel``.
final class CPUBackend: Backend {
    static let shared = CPUBackend()

    let device = Device.cpu
    let allocator: DeviceAllocator = CPUAllocator.shared
    let launchedKernels = 0
    /// The first "model name" of /proc/cpuinfo ("cpu" where there is none).
    let name: String = {
        let info = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let line = info.split(separator: "\n").first { $0.hasPrefix("model name") }
        return line.flatMap { $0.split(separator: ":", maxSplits: 1).last }.map { $0.trimmingCharacters(in: .whitespaces) } ?? "cpu"
    }()

    // MARK: Host transfers

    func upload<T: TensorScalar>(_ values: [T], into destination: TensorStorage<T>, at offset: Int) {
        require(offset >= 0 && offset + values.count <= destination.count, "upload: \(values.count) values at \(offset) overrun \(destination.count)")
        values.withUnsafeBufferPointer { source in
            if let base = source.baseAddress { MemoryKernels.copy(from: base, to: destination.hostPointer + offset, count: values.count) }
        }
    }

    func download<T: TensorScalar>(_ source: BufferView<T>) -> [T] {
        let count = source.count
        // Through the specialised copy kernels: Array(UnsafeBufferPointer) in generic code moves one
        // element at a time through the value witness table.
        return [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            if let base = buffer.baseAddress {
                if source.layout.isContiguous {
                    MemoryKernels.copy(from: source.pointer, to: base, count: count)
                } else {
                    MemoryKernels.stridedCopy(shape: source.layout.shape, from: source.pointer, strides: source.layout.strides,
                                              to: base, strides: Shape.contiguousStrides(source.layout.shape))
                }
            }
            initialized = count
        }
    }

    // MARK: Memory

    func copy<T: TensorScalar>(_ source: BufferView<T>, into destination: BufferView<T>) {
        require(source.layout.shape == destination.layout.shape, "copy: shapes \(source.layout.shape) and \(destination.layout.shape) differ")
        MemoryKernels.stridedCopy(shape: source.layout.shape, from: source.pointer, strides: source.layout.strides,
                                  to: destination.pointer, strides: destination.layout.strides)
    }

    func fill<T: TensorScalar>(_ destination: BufferView<T>, with value: T) {
        MemoryKernels.fill(destination.pointer, with: value, count: destination.count)
    }

    func copy<T: TensorScalar>(_ pairs: [(source: BufferView<T>, destination: BufferView<T>)]) {
        for (source, destination) in pairs { MemoryKernels.copy(from: source.pointer, to: destination.pointer, count: source.count) }
    }

    func gatherRows<T: TensorScalar>(_ table: BufferView<T>, indices: [Int], dim: Int, into out: BufferView<T>) {
        MemoryKernels.gatherRows(table.pointer, indices: indices, dim: dim, into: out.pointer)
    }

    func scatterAddRows<T: TensorScalar>(_ source: BufferView<T>, indices: [Int], dim: Int, into table: BufferView<T>) {
        MemoryKernels.scatterAddRows(source.pointer, indices: indices, dim: dim, into: table.pointer)
    }

    // MARK: Elementwise

    func unary<T: TensorScalar>(_ function: UnaryFunction, _ x: BufferView<T>, bias: BufferView<T>?, a: T, b: T, into y: BufferView<T>) {
        ElementwiseKernels.unary(function, x.pointer, bias: bias.map { UnsafePointer($0.pointer) }, width: bias?.count ?? 1, y.pointer,
                                 count: y.count, a: a, b: b)
    }

    func unaryDerivative<T: TensorScalar>(_ function: UnaryFunction, x: BufferView<T>, bias: BufferView<T>?, y: BufferView<T>,
                                          upstream dy: BufferView<T>, a: T, b: T, into dx: BufferView<T>) {
        ElementwiseKernels.unaryDerivative(function, x: x.pointer, bias: bias.map { UnsafePointer($0.pointer) }, width: bias?.count ?? 1,
                                           y: y.pointer, upstream: dy.pointer, into: dx.pointer, count: dx.count, a: a, b: b)
    }

    func binary<T: TensorScalar>(_ function: BinaryFunction, _ a: BufferView<T>, _ b: BufferView<T>, into out: BufferView<T>) {
        ElementwiseKernels.binary(function, shape: out.layout.shape, a.pointer, strides: a.layout.strides,
                                  b.pointer, strides: b.layout.strides, into: out.pointer)
    }

    func select<T: TensorScalar>(_ condition: [Bool], _ a: BufferView<T>, _ b: BufferView<T>, into out: BufferView<T>) {
        MemoryKernels.select(condition, a.pointer, b.pointer, into: out.pointer)
    }

    func equal<T: TensorScalar>(_ a: BufferView<T>, _ b: BufferView<T>, into out: BufferView<T>) {
        MemoryKernels.equal(a.pointer, b.pointer, count: out.count, into: out.pointer)
    }

    func dropoutMask<T: TensorScalar>(seed: UInt64, probability: T, scale: T, into out: BufferView<T>) {
        ElementwiseKernels.dropoutMask(out.pointer, count: out.count, probability: probability, scale: scale, seed: seed)
    }

    // MARK: Reductions and rows

    func reduce<T: TensorScalar>(_ kind: ReductionKind, _ x: BufferView<T>, outer: Int, length: Int, inner: Int, into out: BufferView<T>) {
        ReductionKernels.reduce(kind, x.pointer, outer: outer, length: length, inner: inner, into: out.pointer)
    }

    func sumOfSquares<T: TensorScalar>(_ views: [BufferView<T>], into out: BufferView<T>) {
        out.pointer.pointee = views.reduce(T(0)) { $0 + ReductionKernels.sumOfSquares($1.pointer, count: $1.count) }
    }

    func softmax<T: TensorScalar>(_ x: BufferView<T>, rows: Int, length: Int, log: Bool, into y: BufferView<T>) {
        SoftmaxKernels.forward(x.pointer, rows: rows, length: length, log: log, into: y.pointer)
    }

    func softmaxBackward<T: TensorScalar>(output y: BufferView<T>, upstream dy: BufferView<T>, rows: Int, length: Int, log: Bool,
                                          into dx: BufferView<T>) {
        SoftmaxKernels.backward(y.pointer, dy.pointer, rows: rows, length: length, log: log, into: dx.pointer)
    }

    func normalize<T: TensorScalar>(_ x: BufferView<T>, residual: (add: BufferView<T>, sum: BufferView<T>)?, rows: Int, length: Int,
                                    centered: Bool, epsilon: T, weight: BufferView<T>?, bias: BufferView<T>?, into y: BufferView<T>,
                                    mean: BufferView<T>, reciprocalDeviation: BufferView<T>) {
        NormalizationKernels.forward(x.pointer, residual: residual.map { (UnsafePointer($0.add.pointer), $0.sum.pointer) },
                                     rows: rows, length: length, centered: centered, epsilon: epsilon,
                                     weight: weight.map { UnsafePointer($0.pointer) }, bias: bias.map { UnsafePointer($0.pointer) },
                                     into: y.pointer, mean: mean.pointer, reciprocalDeviation: reciprocalDeviation.pointer)
    }

    func normalizeBackward<T: TensorScalar>(_ x: BufferView<T>, upstream dy: BufferView<T>, rows: Int, length: Int, centered: Bool,
                                            weight: BufferView<T>?, mean: BufferView<T>, reciprocalDeviation: BufferView<T>,
                                            dx: BufferView<T>, dWeight: BufferView<T>?, dBias: BufferView<T>?) {
        NormalizationKernels.backward(x.pointer, dy.pointer, rows: rows, length: length, centered: centered,
                                      weight: weight.map { UnsafePointer($0.pointer) }, mean: mean.pointer,
                                      reciprocalDeviation: reciprocalDeviation.pointer, dx: dx.pointer,
                                      dWeight: dWeight?.pointer, dBias: dBias?.pointer)
    }

    func crossEntropyRows<T: TensorScalar>(logProbabilities: BufferView<T>, targets: [Int], classes: Int, ignoreIndex: Int,
                                           smoothing: T, into rowLosses: BufferView<T>) {
        LossKernels.crossEntropyRows(logProbabilities: logProbabilities.pointer, targets: targets, classes: classes,
                                     ignoreIndex: ignoreIndex, smoothing: smoothing, into: rowLosses.pointer)
    }

    func crossEntropyBackward<T: TensorScalar>(logProbabilities: BufferView<T>, targets: [Int], classes: Int, ignoreIndex: Int,
                                               smoothing: T, upstream: BufferView<T>, scale: T, into gradient: BufferView<T>) {
        LossKernels.crossEntropyBackward(logProbabilities: logProbabilities.pointer, targets: targets, classes: classes,
                                         ignoreIndex: ignoreIndex, smoothing: smoothing, scale: upstream.pointer.pointee * scale,
                                         into: gradient.pointer)
    }

    // MARK: Products and factorizations

    func matmul<T: TensorScalar>(batch: [Int], m: Int, n: Int, k: Int, a: MatrixOperand<T>, b: MatrixOperand<T>, into c: BufferView<T>) {
        GemmKernels.batched(batch: batch, m: m, n: n, k: k, a: a, b: b, into: c.pointer)
    }

    func luSolve<T: TensorScalar>(_ a: BufferView<T>, _ b: BufferView<T>, n: Int, columns: Int) -> Int {
        T.luSolve(n: n, nrhs: columns, a: a.pointer, b: b.pointer)
    }

    func choleskyFactor<T: TensorScalar>(_ a: BufferView<T>, n: Int) -> Int { T.choleskyFactor(n: n, a: a.pointer) }

    func triangularSolve<T: TensorScalar>(_ a: BufferView<T>, _ b: BufferView<T>, left: Bool, lower: Bool, transposeA: Bool, m: Int, n: Int) {
        T.triangularSolve(left: left, lower: lower, transA: transposeA, m: m, n: n, a: a.pointer, lda: left ? m : n,
                          b: b.pointer, ldb: n)
    }

    func thinQ<T: TensorScalar>(_ a: BufferView<T>, m: Int, n: Int) -> Int { T.thinQ(m: m, n: n, a: a.pointer) }

    // MARK: Optimizers

    func sgdUpdate<T: TensorScalar>(_ parameters: [ParameterBuffers<T>], learningRate: T, momentum: T, weightDecay: T, nesterov: Bool) {
        for p in parameters {
            OptimizerKernels.sgd(p.parameter.pointer, p.gradient.pointer, momentumBuffer: p.state.first?.pointer, count: p.parameter.count,
                                 learningRate: learningRate, momentum: momentum, weightDecay: weightDecay, nesterov: nesterov)
        }
    }

    func adamUpdate<T: TensorScalar>(_ parameters: [ParameterBuffers<T>], learningRate: T, beta1: T, beta2: T, epsilon: T,
                                     weightDecay: T, decoupled: Bool, step: Int) {
        for p in parameters {
            OptimizerKernels.adam(p.parameter.pointer, p.gradient.pointer, firstMoment: p.state[0].pointer, secondMoment: p.state[1].pointer,
                                  count: p.parameter.count, learningRate: learningRate, beta1: beta1, beta2: beta2, epsilon: epsilon,
                                  weightDecay: weightDecay, decoupled: decoupled, step: step)
        }
    }

    func scale<T: TensorScalar>(_ views: [BufferView<T>], by factor: BufferView<T>) {
        let value = factor.pointer.pointee
        for view in views { ElementwiseKernels.unary(.affine, view.pointer, bias: nil, width: 1, view.pointer, count: view.count, a: value, b: 0) }
    }

    // MARK: Attention

    func flashAttentionLimitations<T: TensorScalar>(_ problem: AttentionProblem<T>) -> [String] { [] }

    func flashAttentionForward<T: TensorScalar>(_ problem: AttentionProblem<T>, query: BufferView<T>, key: BufferView<T>,
                                                value: BufferView<T>, output: BufferView<T>, logSumExp: BufferView<T>) {
        FlashAttentionKernels.forward(problem, query: HeadMatrices(query), key: HeadMatrices(key), value: HeadMatrices(value),
                                      output: HeadMatrices(output), logSumExp: logSumExp.pointer)
    }

    func flashAttentionBackward<T: TensorScalar>(_ problem: AttentionProblem<T>, query: BufferView<T>, key: BufferView<T>,
                                                 value: BufferView<T>, output: BufferView<T>, outputGradient: BufferView<T>,
                                                 logSumExp: BufferView<T>, queryGradient: BufferView<T>,
                                                 keyGradient: BufferView<T>, valueGradient: BufferView<T>) {
        // The kernels add into the gradients: zeroed first (dense, perhaps with their heads interleaved).
        for gradient in [queryGradient, keyGradient, valueGradient] {
            require(gradient.layout.isDense, "flash attention backward: gradients must be dense, got strides \(gradient.layout.strides)")
            MemoryKernels.fill(gradient.pointer, with: 0, count: gradient.count)
        }
        FlashAttentionKernels.backward(problem, query: HeadMatrices(query), key: HeadMatrices(key), value: HeadMatrices(value),
                                       output: HeadMatrices(output), outputGradient: HeadMatrices(outputGradient),
                                       logSumExp: logSumExp.pointer, queryGradient: HeadMatrices(queryGradient),
                                       keyGradient: HeadMatrices(keyGradient), valueGradient: HeadMatrices(valueGradient))
    }
}

extension TensorStorage {
    /// The host address of element 0; only CPU storage has one.
    var hostPointer: UnsafeMutablePointer<Scalar> {
        require(device == .cpu, "a \(device) buffer was handed to a CPU kernel")
        return UnsafeMutablePointer(bitPattern: address)!
    }
}

extension BufferView {
    /// The host address of the view's first element.
    var pointer: UnsafeMutablePointer<Scalar> { storage.hostPointer + layout.offset }
}
