import Foundation

/// An NVIDIA GPU: device memory from ``CUDAAllocator``, the kernels of ``CUDAKernelSource`` and
/// ``CUDAFlashAttentionSource`` compiled at run time, cuBLAS for products. Factorizations go
/// through the host (LAPACK on the CPU).
final class CUDABackend: Backend, @unchecked Sendable {
    let device: Device
    let allocator: DeviceAllocator
    let runtime: CUDARuntime
    var launchedKernels: Int { runtime.launchCount }
    var name: String { runtime.name }

    private init(index: Int) throws {
        runtime = try CUDARuntime(index: index)
        device = .cuda(index)
        allocator = CUDAAllocator(runtime: runtime)
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var backends: [Int: Result<CUDABackend, CUDAError>] = [:]

    /// The backend of cuda:`index`, created once; the error (a missing library, no such device)
    /// is remembered, so asking again is cheap and says the same.
    static func shared(index: Int) throws -> CUDABackend {
        lock.lock(); defer { lock.unlock() }
        if let known = backends[index] { return try known.get() }
        let result: Result<CUDABackend, CUDAError>
        do { result = .success(try CUDABackend(index: index)) } catch let error as CUDAError { result = .failure(error) } catch {
            result = .failure(CUDAError("\(error)"))
        }
        backends[index] = result
        return try result.get()
    }

    // MARK: Helpers

    fileprivate func address<T>(_ view: BufferView<T>) -> CUdeviceptr {
        require(view.storage.device == device, "a \(view.storage.device) buffer was handed to the \(device) backend")
        return CUdeviceptr(view.storage.address) + CUdeviceptr(view.layout.offset * MemoryLayout<T>.stride)
    }

    private func address<T>(_ view: BufferView<T>?) -> CUdeviceptr { view.map { address($0) } ?? 0 }

    private func kernel<T: TensorScalar>(_ name: String, _: T.Type) -> OpaqueHandle {
        runtime.function(name, scalar: T.self == Float.self ? "float" : "double")
    }

    private func launch<T: TensorScalar>(_ name: String, _ type: T.Type, count: Int, _ arguments: [KernelArgument]) {
        runtime.launch(kernel(name, type), blocks: CUDARuntime.blocks(for: count), arguments)
    }

    private func launch<T: TensorScalar>(_ name: String, _ type: T.Type, blocks: Int, _ arguments: [KernelArgument]) {
        runtime.launch(kernel(name, type), blocks: blocks, arguments)
    }

    /// The `Strides` struct of the kernels: a shape and two sets of strides.
    private func strides(shape: [Int], _ first: [Int], _ second: [Int]) -> KernelArgument {
        require(shape.count <= CUDAKernelSource.maximumRank,
                     "\(device): tensors of rank \(shape.count) exceed the \(CUDAKernelSource.maximumRank) axes the CUDA kernels index")
        let rank = CUDAKernelSource.maximumRank
        func padded(_ values: [Int], _ fill: Int) -> [Int64] { values.map(Int64.init) + Array(repeating: Int64(fill), count: rank - values.count) }
        return KernelArgument(words: padded(shape, 1) + padded(first, 0) + padded(second, 0) + [Int64(shape.count)])
    }

    /// A host array in device memory for the duration of one call.
    fileprivate final class DeviceArray {
        let address: CUdeviceptr
        private let bytes: Int
        private let allocator: DeviceAllocator

        init<Element>(_ values: [Element], backend: CUDABackend) {
            allocator = backend.allocator
            bytes = Swift.max(values.count * MemoryLayout<Element>.stride, 1)
            address = CUdeviceptr(allocator.allocate(bytes: bytes))
            if !values.isEmpty { values.withUnsafeBytes { backend.runtime.copyToDevice(address, from: $0) } }
        }

        deinit { allocator.release(UInt(address), bytes: bytes) }
    }

    /// A contiguous device copy of a view (the view itself when it already is one).
    private func contiguous<T: TensorScalar>(_ view: BufferView<T>) -> BufferView<T> {
        if view.layout.isContiguous { return view }
        let copy = BufferView(TensorStorage<T>(count: view.count, backend: self), .contiguous(view.layout.shape))
        self.copy(view, into: copy)
        return copy
    }

    // MARK: Host transfers

    func upload<T: TensorScalar>(_ values: [T], into destination: TensorStorage<T>, at offset: Int) {
        require(offset >= 0 && offset + values.count <= destination.count, "upload: \(values.count) values at \(offset) overrun \(destination.count)")
        guard !values.isEmpty else { return }
        let target = address(BufferView(destination, .contiguous([values.count], offset: offset)))
        values.withUnsafeBytes { runtime.copyToDevice(target, from: $0) }
    }

    func download<T: TensorScalar>(_ source: BufferView<T>) -> [T] {
        let data = contiguous(source)
        let count = data.count
        guard count > 0 else { return [] }
        runtime.makeCurrent()
        var values = [T](repeating: 0, count: count)
        // Synchronous: waits for the kernels that produce the values, and reports their failures.
        values.withUnsafeMutableBytes { runtime.check(runtime.driver.cuMemcpyDtoH($0.baseAddress!, address(data), $0.count), "cuMemcpyDtoH") }
        return values
    }

    // MARK: Memory

    func copy<T: TensorScalar>(_ source: BufferView<T>, into destination: BufferView<T>) {
        require(source.layout.shape == destination.layout.shape, "copy: shapes \(source.layout.shape) and \(destination.layout.shape) differ")
        let shape = source.layout.shape
        launch("strided_copy", T.self, count: source.count,
               [KernelArgument(address(source)), KernelArgument(address(destination)),
                strides(shape: shape, source.layout.strides, destination.layout.strides), KernelArgument(Int64(source.count))])
    }

    func fill<T: TensorScalar>(_ destination: BufferView<T>, with value: T) {
        launch("fill", T.self, count: destination.count,
               [KernelArgument(address(destination)), KernelArgument(value), KernelArgument(Int64(destination.count))])
    }

    func copy<T: TensorScalar>(_ pairs: [(source: BufferView<T>, destination: BufferView<T>)]) {
        let list = tensorList(pairs.map { ($0.source.count, [address($0.source), address($0.destination)]) })
        launch("copy_list", T.self, blocks: list.blocks, [KernelArgument(list.table.address), KernelArgument(Int64(list.tensors))])
    }

    func gatherRows<T: TensorScalar>(_ table: BufferView<T>, indices: [Int], dim: Int, into out: BufferView<T>) {
        let rows = DeviceArray(indices.map(Int64.init), backend: self)
        launch("gather_rows", T.self, count: indices.count * dim,
               [KernelArgument(address(table)), KernelArgument(rows.address), KernelArgument(address(out)),
                KernelArgument(Int64(indices.count)), KernelArgument(Int64(dim))])
    }

    func scatterAddRows<T: TensorScalar>(_ source: BufferView<T>, indices: [Int], dim: Int, into table: BufferView<T>) {
        // Positions grouped by target row on the host, each group in index order, so that each output
        // element is one thread's sum in index order: deterministic, and the CPU's order of additions.
        // A counting sort (rows are 0..<table rows): no hashing or comparison sort on the step's path.
        guard dim > 0, !indices.isEmpty else { return }
        let tableRows = table.count / dim
        var rowStart = [Int](repeating: 0, count: tableRows + 1)  // becomes: positions before row r
        for row in indices { rowStart[row + 1] += 1 }
        var rows: [Int64] = [], starts: [Int64] = [0]
        for row in 0..<tableRows {
            if rowStart[row + 1] > 0 { rows.append(Int64(row)); starts.append(starts[starts.count - 1] + Int64(rowStart[row + 1])) }
            rowStart[row + 1] += rowStart[row]
        }
        var positions = [Int64](repeating: 0, count: indices.count)
        for (position, row) in indices.enumerated() {
            positions[rowStart[row]] = Int64(position)
            rowStart[row] += 1
        }
        let rowArray = DeviceArray(rows, backend: self), startArray = DeviceArray(starts, backend: self)
        let positionArray = DeviceArray(positions, backend: self)
        launch("scatter_add_rows", T.self, count: rows.count * dim,
               [KernelArgument(address(source)), KernelArgument(rowArray.address), KernelArgument(startArray.address),
                KernelArgument(positionArray.address), KernelArgument(address(table)), KernelArgument(Int64(rows.count)),
                KernelArgument(Int64(dim))])
    }

    // MARK: Elementwise

    func unary<T: TensorScalar>(_ function: UnaryFunction, _ x: BufferView<T>, bias: BufferView<T>?, a: T, b: T, into y: BufferView<T>) {
        launch("unary", T.self, count: y.count,
               [KernelArgument(function.kernelCode), KernelArgument(address(x)), KernelArgument(address(bias)),
                KernelArgument(Int64(bias?.count ?? 1)), KernelArgument(address(y)), KernelArgument(Int64(y.count)), KernelArgument(a),
                KernelArgument(b)])
    }

    func unaryDerivative<T: TensorScalar>(_ function: UnaryFunction, x: BufferView<T>, bias: BufferView<T>?, y: BufferView<T>,
                                          upstream dy: BufferView<T>, a: T, b: T, into dx: BufferView<T>) {
        launch("unary_backward", T.self, count: dx.count,
               [KernelArgument(function.kernelCode), KernelArgument(address(x)), KernelArgument(address(bias)),
                KernelArgument(Int64(bias?.count ?? 1)), KernelArgument(address(y)), KernelArgument(address(dy)), KernelArgument(address(dx)),
                KernelArgument(Int64(dx.count)), KernelArgument(a), KernelArgument(b)])
    }

    func binary<T: TensorScalar>(_ function: BinaryFunction, _ a: BufferView<T>, _ b: BufferView<T>, into out: BufferView<T>) {
        let code = KernelArgument(function.kernelCode)
        if a.layout.isContiguous && b.layout.isContiguous {
            launch("binary_contiguous", T.self, count: out.count,
                   [code, KernelArgument(address(a)), KernelArgument(address(b)), KernelArgument(address(out)), KernelArgument(Int64(out.count))])
        } else {
            launch("binary_strided", T.self, count: out.count,
                   [code, KernelArgument(address(a)), KernelArgument(address(b)), KernelArgument(address(out)),
                    strides(shape: out.layout.shape, a.layout.strides, b.layout.strides), KernelArgument(Int64(out.count))])
        }
    }

    func select<T: TensorScalar>(_ condition: [Bool], _ a: BufferView<T>, _ b: BufferView<T>, into out: BufferView<T>) {
        let flags = DeviceArray(condition.map { UInt8($0 ? 1 : 0) }, backend: self)
        launch("select_values", T.self, count: out.count,
               [KernelArgument(flags.address), KernelArgument(address(a)), KernelArgument(address(b)), KernelArgument(address(out)),
                KernelArgument(Int64(out.count))])
    }

    func equal<T: TensorScalar>(_ a: BufferView<T>, _ b: BufferView<T>, into out: BufferView<T>) {
        launch("equal_values", T.self, count: out.count,
               [KernelArgument(address(a)), KernelArgument(address(b)), KernelArgument(address(out)), KernelArgument(Int64(out.count))])
    }

    func dropoutMask<T: TensorScalar>(seed: UInt64, probability: T, scale: T, into out: BufferView<T>) {
        launch("dropout_mask", T.self, count: out.count,
               [KernelArgument(seed), KernelArgument(Float(probability)), KernelArgument(scale), KernelArgument(address(out)),
                KernelArgument(Int64(out.count))])
    }

    // MARK: Reductions and rows

    func reduce<T: TensorScalar>(_ kind: ReductionKind, _ x: BufferView<T>, outer: Int, length: Int, inner: Int, into out: BufferView<T>) {
        if inner == 1 && length > 0 {
            launch("reduce_rows", T.self, blocks: outer,
                   [KernelArgument(kind.kernelCode), KernelArgument(address(x)), KernelArgument(address(out)), KernelArgument(Int64(length))])
        } else {
            launch("reduce_middle", T.self, blocks: outer * ((inner + 31) / 32),
                   [KernelArgument(kind.kernelCode), KernelArgument(address(x)), KernelArgument(address(out)),
                    KernelArgument(Int64(length)), KernelArgument(Int64(inner))])
        }
    }

    /// The table of a multi-tensor kernel (`list_chunk` in the kernels): per tensor its length, its
    /// first block and its addresses, empty tensors left out; and the blocks the launch takes.
    private func tensorList(_ tensors: [(count: Int, addresses: [CUdeviceptr])]) -> (table: DeviceArray, tensors: Int, blocks: Int) {
        var table: [Int64] = [], blocks = 0, listed = 0
        for tensor in tensors where tensor.count > 0 {
            table += [Int64(tensor.count), Int64(blocks)] + tensor.addresses.map { Int64(bitPattern: $0) }
            blocks += (tensor.count + CUDAKernelSource.listChunk - 1) / CUDAKernelSource.listChunk
            listed += 1
        }
        return (DeviceArray(table, backend: self), listed, blocks)
    }

    func sumOfSquares<T: TensorScalar>(_ views: [BufferView<T>], into out: BufferView<T>) {
        // One partial per chunk of every view, then one row reduction: two launches, nothing waits on the host.
        let list = tensorList(views.map { ($0.count, [address($0)]) })
        guard list.blocks > 0 else { fill(out, with: 0); return }
        let partials = TensorStorage<T>(count: list.blocks, backend: self)
        launch("sum_of_squares_list", T.self, blocks: list.blocks,
               [KernelArgument(list.table.address), KernelArgument(Int64(list.tensors)),
                KernelArgument(address(BufferView(partials, .contiguous([list.blocks]))))])
        reduce(.sum, BufferView(partials, .contiguous([list.blocks])), outer: 1, length: list.blocks, inner: 1, into: out)
    }

    func scale<T: TensorScalar>(_ views: [BufferView<T>], by factor: BufferView<T>) {
        let list = tensorList(views.map { ($0.count, [address($0)]) })
        launch("scale_list", T.self, blocks: list.blocks,
               [KernelArgument(list.table.address), KernelArgument(Int64(list.tensors)), KernelArgument(address(factor))])
    }

    func softmax<T: TensorScalar>(_ x: BufferView<T>, rows: Int, length: Int, log: Bool, into y: BufferView<T>) {
        launch("softmax_rows", T.self, blocks: rows,
               [KernelArgument(address(x)), KernelArgument(address(y)), KernelArgument(Int64(length)), KernelArgument(Int32(log ? 1 : 0))])
    }

    func softmaxBackward<T: TensorScalar>(output y: BufferView<T>, upstream dy: BufferView<T>, rows: Int, length: Int, log: Bool,
                                          into dx: BufferView<T>) {
        launch("softmax_rows_backward", T.self, blocks: rows,
               [KernelArgument(address(y)), KernelArgument(address(dy)), KernelArgument(address(dx)), KernelArgument(Int64(length)),
                KernelArgument(Int32(log ? 1 : 0))])
    }

    func normalize<T: TensorScalar>(_ x: BufferView<T>, residual: (add: BufferView<T>, sum: BufferView<T>)?, rows: Int, length: Int,
                                    centered: Bool, epsilon: T, weight: BufferView<T>?, bias: BufferView<T>?, into y: BufferView<T>,
                                    mean: BufferView<T>, reciprocalDeviation: BufferView<T>) {
        launch("normalize_rows", T.self, blocks: rows,
               [KernelArgument(address(x)), KernelArgument(address(residual?.add)), KernelArgument(address(residual?.sum)),
                KernelArgument(address(y)), KernelArgument(address(mean)), KernelArgument(address(reciprocalDeviation)),
                KernelArgument(address(weight)), KernelArgument(address(bias)), KernelArgument(Int64(length)),
                KernelArgument(Int32(centered ? 1 : 0)), KernelArgument(epsilon)])
    }

    func normalizeBackward<T: TensorScalar>(_ x: BufferView<T>, upstream dy: BufferView<T>, rows: Int, length: Int, centered: Bool,
                                            weight: BufferView<T>?, mean: BufferView<T>, reciprocalDeviation: BufferView<T>,
                                            dx: BufferView<T>, dWeight: BufferView<T>?, dBias: BufferView<T>?) {
        launch("normalize_rows_backward", T.self, blocks: rows,
               [KernelArgument(address(x)), KernelArgument(address(dy)), KernelArgument(address(weight)), KernelArgument(address(mean)),
                KernelArgument(address(reciprocalDeviation)), KernelArgument(address(dx)), KernelArgument(Int64(length)),
                KernelArgument(Int32(centered ? 1 : 0))])
        if dWeight != nil || dBias != nil {
            launch("normalize_parameter_gradients", T.self, blocks: (length + 31) / 32,
                   [KernelArgument(address(x)), KernelArgument(address(dy)), KernelArgument(address(mean)), KernelArgument(address(reciprocalDeviation)),
                    KernelArgument(address(dWeight)), KernelArgument(address(dBias)), KernelArgument(Int64(rows)), KernelArgument(Int64(length))])
        }
    }

    func crossEntropyRows<T: TensorScalar>(logProbabilities: BufferView<T>, targets: [Int], classes: Int, ignoreIndex: Int,
                                           smoothing: T, into rowLosses: BufferView<T>) {
        let targetArray = DeviceArray(targets.map(Int64.init), backend: self)
        launch("cross_entropy_rows", T.self, count: targets.count,
               [KernelArgument(address(logProbabilities)), KernelArgument(targetArray.address), KernelArgument(address(rowLosses)),
                KernelArgument(Int64(targets.count)), KernelArgument(Int64(classes)), KernelArgument(Int64(ignoreIndex)),
                KernelArgument(smoothing)])
    }

    func crossEntropyBackward<T: TensorScalar>(logProbabilities: BufferView<T>, targets: [Int], classes: Int, ignoreIndex: Int,
                                               smoothing: T, upstream: BufferView<T>, scale: T, into gradient: BufferView<T>) {
        let targetArray = DeviceArray(targets.map(Int64.init), backend: self)
        launch("cross_entropy_backward", T.self, count: targets.count * classes,
               [KernelArgument(address(logProbabilities)), KernelArgument(targetArray.address), KernelArgument(address(upstream)),
                KernelArgument(address(gradient)), KernelArgument(Int64(targets.count)), KernelArgument(Int64(classes)),
                KernelArgument(Int64(ignoreIndex)), KernelArgument(smoothing), KernelArgument(scale)])
    }

    // MARK: Products and factorizations

    func matmul<T: TensorScalar>(batch: [Int], m: Int, n: Int, k: Int, a: MatrixOperand<T>, b: MatrixOperand<T>, into c: BufferView<T>) {
        // Row-major C = A·B is column-major Cᵀ = Bᵀ·Aᵀ: B goes first, and a row-major operand read
        // column-major is its own transpose, so "transposed" flips meaning.
        let batchCount = Shape.count(batch), batchStrides = Shape.contiguousStrides(batch)
        let elementSize = MemoryLayout<T>.stride
        let aBase = CUdeviceptr(a.view.storage.address), bBase = CUdeviceptr(b.view.storage.address), cBase = address(c)
        let tensorFloat32 = Float32MatmulPrecision.current == .high
        func call(aOffset: Int, bOffset: Int, cOffset: Int, aStride: Int, bStride: Int, count: Int) {
            runtime.gemm(T.self, transposeA: b.transposed, transposeB: a.transposed, m: n, n: m, k: k,
                         a: bBase + CUdeviceptr(bOffset * elementSize), lda: b.leadingDimension, strideA: bStride,
                         b: aBase + CUdeviceptr(aOffset * elementSize), ldb: a.leadingDimension, strideB: aStride,
                         c: cBase + CUdeviceptr(cOffset * elementSize), ldc: n, strideC: m * n, batch: count, tensorFloat32: tensorFloat32)
        }
        // One strided-batched call when each operand steps through the batch by one stride.
        if let aStride = Self.uniformBatchStride(a, batch: batch), let bStride = Self.uniformBatchStride(b, batch: batch) {
            call(aOffset: a.view.layout.offset, bOffset: b.view.layout.offset, cOffset: 0, aStride: aStride, bStride: bStride, count: batchCount)
            return
        }
        for index in 0..<batchCount {
            call(aOffset: a.offset(batchIndex: index, batchStrides: batchStrides), bOffset: b.offset(batchIndex: index, batchStrides: batchStrides),
                 cOffset: index * m * n, aStride: 0, bStride: 0, count: 1)
        }
    }

    /// The single element stride between consecutive matrices of the flattened batch, when there is one.
    private static func uniformBatchStride<T>(_ operand: MatrixOperand<T>, batch: [Int]) -> Int? {
        let strides = Array(operand.view.layout.strides.prefix(batch.count))
        let axes = batch.indices.filter { batch[$0] > 1 }
        guard let innermost = axes.last else { return 0 }
        let stride = strides[innermost]
        var expected = stride
        for axis in axes.reversed() {
            guard strides[axis] == expected else { return nil }
            expected *= batch[axis]
        }
        return stride
    }

    /// Runs a CPU factorization on host copies and writes the results back: LAPACK has no GPU
    /// counterpart here, and these ops serve initialisation and small solves.
    /// The views are contiguous (the ops hand factorizations fresh copies).
    private func throughHost<T: TensorScalar>(_ views: [BufferView<T>], _ body: ([BufferView<T>]) -> Int) -> Int {
        let cpu = CPUBackend.shared
        let hostViews = views.map { view -> BufferView<T> in
            require(view.layout.isContiguous, "\(device): a factorization needs contiguous operands")
            let storage = TensorStorage<T>(count: view.count, backend: cpu)
            cpu.upload(download(view), into: storage, at: 0)
            return BufferView(storage, .contiguous(view.layout.shape))
        }
        let info = body(hostViews)
        for (view, host) in zip(views, hostViews) { upload(cpu.download(host), into: view.storage, at: view.layout.offset) }
        return info
    }

    func luSolve<T: TensorScalar>(_ a: BufferView<T>, _ b: BufferView<T>, n: Int, columns: Int) -> Int {
        throughHost([a, b]) { CPUBackend.shared.luSolve($0[0], $0[1], n: n, columns: columns) }
    }

    func choleskyFactor<T: TensorScalar>(_ a: BufferView<T>, n: Int) -> Int {
        throughHost([a]) { CPUBackend.shared.choleskyFactor($0[0], n: n) }
    }

    func triangularSolve<T: TensorScalar>(_ a: BufferView<T>, _ b: BufferView<T>, left: Bool, lower: Bool, transposeA: Bool, m: Int, n: Int) {
        _ = throughHost([a, b]) { CPUBackend.shared.triangularSolve($0[0], $0[1], left: left, lower: lower, transposeA: transposeA, m: m, n: n); return 0 }
    }

    func thinQ<T: TensorScalar>(_ a: BufferView<T>, m: Int, n: Int) -> Int {
        throughHost([a]) { CPUBackend.shared.thinQ($0[0], m: m, n: n) }
    }

    // MARK: Optimizers

    func sgdUpdate<T: TensorScalar>(_ parameters: [ParameterBuffers<T>], learningRate: T, momentum: T, weightDecay: T, nesterov: Bool) {
        let list = tensorList(parameters.map { ($0.parameter.count, [address($0.parameter), address($0.gradient), address($0.state.first)]) })
        launch("sgd_update_list", T.self, blocks: list.blocks,
               [KernelArgument(list.table.address), KernelArgument(Int64(list.tensors)), KernelArgument(learningRate),
                KernelArgument(momentum), KernelArgument(weightDecay), KernelArgument(Int32(nesterov ? 1 : 0))])
    }

    func adamUpdate<T: TensorScalar>(_ parameters: [ParameterBuffers<T>], learningRate: T, beta1: T, beta2: T, epsilon: T,
                                     weightDecay: T, decoupled: Bool, step: Int) {
        // The bias corrections as the CPU kernel computes them (integer powers on the host).
        let correction1 = 1 - T.pow(beta1, step), correction2 = 1 - T.pow(beta2, step)
        let list = tensorList(parameters.map { p in
            (p.parameter.count, [address(p.parameter), address(p.gradient), address(p.state[0]), address(p.state[1])])
        })
        launch("adam_update_list", T.self, blocks: list.blocks,
               [KernelArgument(list.table.address), KernelArgument(Int64(list.tensors)), KernelArgument(learningRate),
                KernelArgument(beta1), KernelArgument(beta2), KernelArgument(epsilon), KernelArgument(weightDecay),
                KernelArgument(Int32(decoupled ? 1 : 0)), KernelArgument(correction1), KernelArgument(correction2)])
    }

    // MARK: Attention

    func flashAttentionLimitations<T: TensorScalar>(_ problem: AttentionProblem<T>) -> [String] {
        var reasons: [String] = []
        if CUDAFlashAttentionSource.configuration(headDim: problem.headDim, valueDim: problem.valueDim,
                                                  scalarBytes: MemoryLayout<T>.stride) == nil {
            reasons.append("flash attention on \(device) covers head dims up to \(T.self == Float.self ? 256 : 128) for \(T.self), "
                           + "got D = \(problem.headDim), Dv = \(problem.valueDim)")
        }
        if problem.batch * problem.queryHeads > 65_535 {
            reasons.append("flash attention on \(device) takes at most 65,535 batch·heads (one grid column each), "
                           + "got \(problem.batch) × \(problem.queryHeads)")
        }
        return reasons
    }

    /// A [B, H, N, ·] view with contiguous rows as the flash kernels take it: its address and its
    /// batch, head and row strides.
    private func headStrided<T>(_ view: BufferView<T>) -> (CUdeviceptr, [Int]) { (address(view), Array(view.layout.strides.prefix(3))) }

    func flashAttentionForward<T: TensorScalar>(_ problem: AttentionProblem<T>, query: BufferView<T>, key: BufferView<T>,
                                                value: BufferView<T>, output: BufferView<T>, logSumExp: BufferView<T>) {
        let call = FlashCall(problem, backend: self, query: headStrided(query), key: headStrided(key), value: headStrided(value))
        var buffers = FlashCall<T>.Buffers()
        (buffers.output, buffers.logSumExp) = (headStrided(output), address(logSumExp))
        call.launch("flash_forward", grid: (call.tiles(problem.queryLength), problem.batch * problem.queryHeads), buffers)
    }

    func flashAttentionBackward<T: TensorScalar>(_ problem: AttentionProblem<T>, query: BufferView<T>, key: BufferView<T>,
                                                 value: BufferView<T>, output: BufferView<T>, outputGradient: BufferView<T>,
                                                 logSumExp: BufferView<T>, queryGradient: BufferView<T>,
                                                 keyGradient: BufferView<T>, valueGradient: BufferView<T>) {
        let p = problem
        let call = FlashCall(p, backend: self, query: headStrided(query), key: headStrided(key), value: headStrided(value))
        let rows = p.batch * p.queryHeads * p.queryLength
        let rowDot = BufferView(TensorStorage<T>(count: Swift.max(rows, 1), backend: self), .contiguous([Swift.max(rows, 1)]))
        var buffers = FlashCall<T>.Buffers()
        (buffers.output, buffers.logSumExp, buffers.outputGradient) = (headStrided(output), address(logSumExp), headStrided(outputGradient))
        (buffers.rowDot, buffers.query, buffers.key, buffers.value) = (address(rowDot), headStrided(queryGradient), headStrided(keyGradient),
                                                                       headStrided(valueGradient))
        // D = rowsum(dO ∘ O), once per query row.
        call.launch("flash_row_dot", grid: (CUDARuntime.blocks(for: rows), 1), buffers, tiled: false, [KernelArgument(address(rowDot))])
        call.launch("flash_backward_kv", grid: (call.tiles(p.keyLength), p.batch * p.keyValueHeads), buffers)
        call.launch("flash_backward_q", grid: (call.tiles(p.queryLength), p.batch * p.queryHeads), buffers)
    }
}

extension KernelArgument {
    /// Consecutive 64-bit words (a struct of `long long` fields and a trailing `int`).
    init(words: [Int64]) {
        self.init(bytes: words.withUnsafeBytes { Array($0) })
    }
}

extension UnaryFunction {
    /// The case's number in the kernels' `switch` (declaration order).
    var kernelCode: Int32 {
        switch self {
        case .negate: return 0
        case .exp: return 1
        case .log: return 2
        case .sqrt: return 3
        case .rsqrt: return 4
        case .abs: return 5
        case .tanh: return 6
        case .sigmoid: return 7
        case .relu: return 8
        case .geluTanh: return 9
        case .geluErf: return 10
        case .silu: return 11
        case .clamp: return 12
        case .power: return 13
        case .affine: return 14
        }
    }
}

extension BinaryFunction {
    var kernelCode: Int32 {
        switch self {
        case .add: return 0
        case .subtract: return 1
        case .multiply: return 2
        case .divide: return 3
        case .power: return 4
        }
    }
}

extension ReductionKind {
    var kernelCode: Int32 {
        switch self {
        case .sum: return 0
        case .max: return 1
        case .min: return 2
        }
    }
}

/// One flash attention call's kernel parameters (the `FlashParams` struct of
/// ``CUDAFlashAttentionSource``), with the host arrays it points to copied to the device.
private struct FlashCall<T: TensorScalar> {
    let backend: CUDABackend
    let block: Int, dim: Int
    /// Every `FlashParams` field up to the backward's pointers, as 64-bit words; the output's and the
    /// log-sum-exp's addresses, the backward's and every buffer's strides come with each launch.
    private let words: [UInt64]
    /// Device copies of the ALiBi slopes, key limits and padding mask, alive until the launches are issued.
    private let arrays: [AnyObject]

    init(_ p: AttentionProblem<T>, backend: CUDABackend, query: (CUdeviceptr, [Int]), key: (CUdeviceptr, [Int]), value: (CUdeviceptr, [Int])) {
        let reasons = backend.flashAttentionLimitations(p)
        require(reasons.isEmpty, reasons.joined(separator: "; "))
        (block, dim) = CUDAFlashAttentionSource.configuration(headDim: p.headDim, valueDim: p.valueDim, scalarBytes: MemoryLayout<T>.stride)!
        self.backend = backend
        let keyLimits = CUDABackend.DeviceArray(p.keyLimit.map(Int64.init), backend: backend)
        let alibi = p.alibiSlopes.map { CUDABackend.DeviceArray($0, backend: backend) }
        let padded = p.paddedKeys.map { CUDABackend.DeviceArray($0.map { UInt8($0 ? 1 : 0) }, backend: backend) }
        arrays = [keyLimits] + [alibi, padded].compactMap { $0 }
        func word(_ value: Int) -> UInt64 { UInt64(bitPattern: Int64(value)) }
        func word(_ value: T) -> UInt64 { Double(value).bitPattern }
        let mask = p.additiveMaskView
        let maskStrides = mask?.layout.strides ?? [0, 0, 0, 0]
        let keepScale: T = 1 / (1 - p.dropoutProbability)
        // In the struct's order: pointers, strides, sizes, scalars, masks, window, seed.
        var words: [UInt64] = [UInt64(query.0), UInt64(key.0), UInt64(value.0), 0, 0]
        words += [query.1, key.1, value.1].flatMap { $0.map(word) }
        words += [p.batch, p.queryHeads, p.keyValueHeads, p.queryLength, p.keyLength, p.headDim, p.valueDim].map(word)
        words += [word(p.scale), word(p.softcap ?? 0), word(keepScale), word(p.dropoutProbability)]
        words += [UInt64(alibi?.address ?? 0), UInt64(mask.map { backend.address($0) } ?? 0)]
        words += maskStrides.map(word)
        words += [UInt64(keyLimits.address), UInt64(padded?.address ?? 0)]
        words += [p.left == Int.max ? -1 : p.left, p.right == Int.max ? -1 : p.right].map(word)
        words.append(p.dropoutSeed)
        self.words = words
    }

    /// Query or key tiles covering `length` rows.
    func tiles(_ length: Int) -> Int { (length + block - 1) / block }

    /// The output, log-sum-exp and gradient buffers of a launch: addresses, and the batch, head and
    /// row strides of the [B, H, N, ·] ones (any layout with contiguous rows; zeros where absent).
    struct Buffers {
        var output: (CUdeviceptr, [Int]) = (0, [0, 0, 0])
        var logSumExp: CUdeviceptr = 0
        var outputGradient: (CUdeviceptr, [Int]) = (0, [0, 0, 0])
        var rowDot: CUdeviceptr = 0
        var query: (CUdeviceptr, [Int]) = (0, [0, 0, 0])
        var key: (CUdeviceptr, [Int]) = (0, [0, 0, 0])
        var value: (CUdeviceptr, [Int]) = (0, [0, 0, 0])
    }

    /// Launches the kernel `name`: of this call's tile configuration (`name_BLKxDMAX`, 128 threads)
    /// when `tiled`, else a grid-stride kernel of 256 threads; `extra` follows the parameters.
    func launch(_ name: String, grid: (x: Int, y: Int), _ buffers: Buffers, tiled: Bool = true, _ extra: [KernelArgument] = []) {
        func word(_ value: Int) -> UInt64 { UInt64(bitPattern: Int64(value)) }
        var parameters = words
        parameters[3] = UInt64(buffers.output.0)
        parameters[4] = UInt64(buffers.logSumExp)
        parameters += [buffers.outputGradient.0, buffers.rowDot, buffers.query.0, buffers.key.0, buffers.value.0].map { UInt64($0) }
        parameters += [buffers.output.1, buffers.outputGradient.1, buffers.query.1, buffers.key.1, buffers.value.1].flatMap { $0.map(word) }
        let scalar = T.self == Float.self ? "float" : "double"
        let function = backend.runtime.function(tiled ? "\(name)_\(block)x\(dim)" : name, scalar: scalar)
        let sharedBytes = tiled ? CUDAFlashAttentionSource.sharedElements(kernel: name, block: block, dim: dim) * MemoryLayout<T>.stride : 0
        backend.runtime.launch(function, grid: grid, threads: tiled ? CUDAFlashAttentionSource.threadsPerBlock : CUDAKernelSource.threadsPerBlock,
                               sharedBytes: sharedBytes, [KernelArgument(bytes: parameters.withUnsafeBytes { Array($0) })] + extra)
        withExtendedLifetime(arrays) {}
    }
}

