/// The kernels of one device: everything the ops need to compute, and nothing else.
///
/// Ops validate shapes, allocate their results through ``Tensor/uninitialized(_:on:)``, call one of
/// these and record their backward. Arguments are storages with layouts (``BufferView``), never
/// tensors; a result is a contiguous view the op allocated on the same device. "Contiguous" below
/// means row-major and dense from the view's offset. A new device is one ``Device`` case, one
/// ``DeviceAllocator`` and one conformance to this protocol (see `Backends/CPU` and `Backends/CUDA`).
protocol Backend: AnyObject {
    var device: Device { get }
    var allocator: DeviceAllocator { get }
    /// The hardware's name as its driver reports it.
    var name: String { get }
    /// Kernels launched so far on a device that launches them (0 where kernels are function calls).
    var launchedKernels: Int { get }

    // MARK: Host transfers: the only ways values cross between the host and the device.

    /// Writes `values` into `destination` from element `offset` on.
    func upload<T: TensorScalar>(_ values: [T], into destination: TensorStorage<T>, at offset: Int)
    /// The elements of a view in row-major order.
    func download<T: TensorScalar>(_ source: BufferView<T>) -> [T]

    // MARK: Memory

    /// Copies between two views of one shape, any strides.
    func copy<T: TensorScalar>(_ source: BufferView<T>, into destination: BufferView<T>)
    /// Sets every element of a contiguous view to `value`.
    func fill<T: TensorScalar>(_ destination: BufferView<T>, with value: T)
    /// Copies each source into its destination (contiguous views of one count each), all at once:
    /// one launch on a GPU, e.g. to gather many gradients into one buffer for a collective and back.
    func copy<T: TensorScalar>(_ pairs: [(source: BufferView<T>, destination: BufferView<T>)])
    /// out[p] = table[indices[p]], rows of `dim` elements (index −1: a row of zeros); table and out contiguous.
    func gatherRows<T: TensorScalar>(_ table: BufferView<T>, indices: [Int], dim: Int, into out: BufferView<T>)
    /// table[indices[p]] += source[p], rows of `dim` elements, in index order (deterministic).
    func scatterAddRows<T: TensorScalar>(_ source: BufferView<T>, indices: [Int], dim: Int, into table: BufferView<T>)

    // MARK: Elementwise (contiguous unless said otherwise)

    /// y = f(x + bias; a, b), the bias (if any) a [width] vector added along x's last axis of width:
    /// a linear layer's bias and activation in one pass.
    func unary<T: TensorScalar>(_ function: UnaryFunction, _ x: BufferView<T>, bias: BufferView<T>?, a: T, b: T, into y: BufferView<T>)
    /// dx = dy · f′(x + bias), with y = f(x + bias) at hand.
    func unaryDerivative<T: TensorScalar>(_ function: UnaryFunction, x: BufferView<T>, bias: BufferView<T>?, y: BufferView<T>,
                                          upstream dy: BufferView<T>, a: T, b: T, into dx: BufferView<T>)
    /// out = f(a, b); `a` and `b` are views of out's shape with any strides (0 on broadcast axes).
    func binary<T: TensorScalar>(_ function: BinaryFunction, _ a: BufferView<T>, _ b: BufferView<T>, into out: BufferView<T>)
    /// out = condition ? a : b.
    func select<T: TensorScalar>(_ condition: [Bool], _ a: BufferView<T>, _ b: BufferView<T>, into out: BufferView<T>)
    /// out = 1 where a == b, else 0.
    func equal<T: TensorScalar>(_ a: BufferView<T>, _ b: BufferView<T>, into out: BufferView<T>)
    /// out[i] = scale where the counter-based uniform of (seed, i) is ≥ probability, else 0: the same
    /// mask on every device for the same seed.
    func dropoutMask<T: TensorScalar>(seed: UInt64, probability: T, scale: T, into out: BufferView<T>)

    // MARK: Reductions and rows

    /// Reduces the middle axis of a contiguous [outer, length, inner] block into [outer, inner].
    func reduce<T: TensorScalar>(_ kind: ReductionKind, _ x: BufferView<T>, outer: Int, length: Int, inner: Int, into out: BufferView<T>)
    /// Σ x² over every element of every (contiguous) view, into the one-element `out`.
    func sumOfSquares<T: TensorScalar>(_ views: [BufferView<T>], into out: BufferView<T>)
    /// Softmax or log softmax over contiguous rows of `length`.
    func softmax<T: TensorScalar>(_ x: BufferView<T>, rows: Int, length: Int, log: Bool, into y: BufferView<T>)
    func softmaxBackward<T: TensorScalar>(output y: BufferView<T>, upstream dy: BufferView<T>, rows: Int, length: Int, log: Bool,
                                          into dx: BufferView<T>)
    /// LayerNorm (`centered`) or RMSNorm over rows; saves each row's mean and 1/σ for the backward.
    /// With `residual`, normalises x + residual.add and writes that sum into residual.sum as well:
    /// a residual connection and the norm after it in one pass.
    func normalize<T: TensorScalar>(_ x: BufferView<T>, residual: (add: BufferView<T>, sum: BufferView<T>)?, rows: Int, length: Int,
                                    centered: Bool, epsilon: T, weight: BufferView<T>?, bias: BufferView<T>?, into y: BufferView<T>,
                                    mean: BufferView<T>, reciprocalDeviation: BufferView<T>)
    func normalizeBackward<T: TensorScalar>(_ x: BufferView<T>, upstream dy: BufferView<T>, rows: Int, length: Int, centered: Bool,
                                            weight: BufferView<T>?, mean: BufferView<T>, reciprocalDeviation: BufferView<T>,
                                            dx: BufferView<T>, dWeight: BufferView<T>?, dBias: BufferView<T>?)
    /// Each row's smoothed cross entropy from log-probabilities [rows, classes] into `rowLosses` [rows]
    /// (0 where the target is `ignoreIndex`).
    func crossEntropyRows<T: TensorScalar>(logProbabilities: BufferView<T>, targets: [Int], classes: Int, ignoreIndex: Int,
                                           smoothing: T, into rowLosses: BufferView<T>)
    /// ∂loss/∂logits times `upstream` (a one-element view, read where it lives) times `scale`, zero
    /// on ignored rows.
    func crossEntropyBackward<T: TensorScalar>(logProbabilities: BufferView<T>, targets: [Int], classes: Int, ignoreIndex: Int,
                                               smoothing: T, upstream: BufferView<T>, scale: T, into gradient: BufferView<T>)

    // MARK: Products and factorizations

    /// C[i] = op(A[i])·op(B[i]) for every index of `batch`; C contiguous [batch…, m, n].
    func matmul<T: TensorScalar>(batch: [Int], m: Int, n: Int, k: Int, a: MatrixOperand<T>, b: MatrixOperand<T>, into c: BufferView<T>)
    /// Solves A·X = B in place by LU (A [n, n] becomes its factors, B [n, nrhs] the solution); LAPACK's info.
    func luSolve<T: TensorScalar>(_ a: BufferView<T>, _ b: BufferView<T>, n: Int, columns: Int) -> Int
    /// The lower Cholesky factor in place (the upper triangle is left as it was); LAPACK's info.
    func choleskyFactor<T: TensorScalar>(_ a: BufferView<T>, n: Int) -> Int
    /// Solves op(A)·X = B (`left`) or X·op(A) = B in place for triangular A [n, n]; B is [m, n].
    func triangularSolve<T: TensorScalar>(_ a: BufferView<T>, _ b: BufferView<T>, left: Bool, lower: Bool, transposeA: Bool, m: Int, n: Int)
    /// Householder QR of an [m, n] matrix (m ≥ n) in place, leaving the thin Q; LAPACK's info.
    func thinQ<T: TensorScalar>(_ a: BufferView<T>, m: Int, n: Int) -> Int

    // MARK: Optimizers: in place, over all parameters at once (one launch on a GPU, not one per tensor)

    /// SGD; each parameter's `state` is its momentum buffer when momentum > 0, else empty.
    func sgdUpdate<T: TensorScalar>(_ parameters: [ParameterBuffers<T>], learningRate: T, momentum: T, weightDecay: T, nesterov: Bool)
    /// Adam or AdamW; each parameter's `state` is its first and second moment.
    func adamUpdate<T: TensorScalar>(_ parameters: [ParameterBuffers<T>], learningRate: T, beta1: T, beta2: T, epsilon: T,
                                     weightDecay: T, decoupled: Bool, step: Int)
    /// Multiplies every element of every (contiguous) view by the one element of `factor`, in place.
    func scale<T: TensorScalar>(_ views: [BufferView<T>], by factor: BufferView<T>)

    // MARK: Attention

    /// Why this backend's flash kernels cannot compute `problem` (a head dimension they do not
    /// cover, say); empty when they can.
    func flashAttentionLimitations<T: TensorScalar>(_ problem: AttentionProblem<T>) -> [String]
    /// FlashAttention forward: output [B, Hq, Nq, Dv] and log-sum-exp [B, Hq, Nq] (contiguous); q, k,
    /// v and the output are [B, H, N, ·] views with contiguous rows (heads may be interleaved).
    func flashAttentionForward<T: TensorScalar>(_ problem: AttentionProblem<T>, query: BufferView<T>, key: BufferView<T>,
                                                value: BufferView<T>, output: BufferView<T>, logSumExp: BufferView<T>)
    /// FlashAttention backward into dQ, dK, dV, every element of which it writes; like q, k, v, the
    /// output, its gradient and dQ, dK, dV are views with contiguous rows.
    func flashAttentionBackward<T: TensorScalar>(_ problem: AttentionProblem<T>, query: BufferView<T>, key: BufferView<T>,
                                                 value: BufferView<T>, output: BufferView<T>, outputGradient: BufferView<T>,
                                                 logSumExp: BufferView<T>, queryGradient: BufferView<T>,
                                                 keyGradient: BufferView<T>, valueGradient: BufferView<T>)
}

/// How the last two axes of a [batch…, rows, columns] view go to a matrix product without a copy:
/// as stored (row-major, rows `leadingDimension` apart) or transposed (column-major).
struct MatrixOperand<Scalar: TensorScalar> {
    let view: BufferView<Scalar>
    let transposed: Bool
    let leadingDimension: Int

    /// Element offset of the matrix for batch index `index` (batch axes may have stride 0).
    func offset(batchIndex index: Int, batchStrides: [Int]) -> Int {
        var offset = view.layout.offset, remainder = index
        for axis in 0..<batchStrides.count {
            offset += remainder / batchStrides[axis] * view.layout.strides[axis]
            remainder %= batchStrides[axis]
        }
        return offset
    }
}

/// Binary arithmetic on broadcast operands.
enum BinaryFunction {
    case add, subtract, multiply, divide, power
}

/// Reductions along one axis.
enum ReductionKind { case sum, max, min }

/// One parameter as a fused optimizer step sees it: contiguous views of the parameter, its
/// gradient and the optimizer's per-element state, all of one shape.
struct ParameterBuffers<T: TensorScalar> {
    let parameter: BufferView<T>
    let gradient: BufferView<T>
    let state: [BufferView<T>]
}
