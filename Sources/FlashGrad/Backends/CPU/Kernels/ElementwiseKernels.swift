import RealModule

/// Pointwise loops over host memory; the functions themselves are defined in ``UnaryFunction``.
enum ElementwiseKernels {
    /// `range` of a row-major buffer of rows of `width`, cut at the row boundaries: `body(row start,
    /// columns)` for each piece, so that a loop over the columns runs contiguous (and vectorises).
    @inline(__always)
    private static func forRowSegments(_ range: Range<Int>, width: Int, _ body: (Int, Range<Int>) -> Void) {
        var i = range.lowerBound
        while i < range.upperBound {
            let column = i % width, start = i - column, end = Swift.min(range.upperBound, start + width)
            body(start, column..<(end - start))
            i = end
        }
    }

    /// y[i] = f(x[i] + bias[i mod width]) over contiguous buffers (f(x[i]) without a bias).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    static func unary<T: TensorScalar>(_ function: UnaryFunction, _ x: UnsafePointer<T>, bias: UnsafePointer<T>?, width: Int,
                                       _ y: UnsafeMutablePointer<T>, count: Int, a: T, b: T) {
        Parallel.forRanges(count) { range in
            function.evaluate(T.self, a: a, b: b) { value, _ in
                guard let bias else { for i in range { y[i] = value(x[i]) }; return }
                forRowSegments(range, width: width) { start, columns in
                    for c in columns { y[start + c] = value(x[start + c] + bias[c]) }
                }
            }
        }
    }

    /// dx[i] = dy[i] · f′(x[i] + bias[i mod width]), with y at hand for functions whose derivative uses it.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    static func unaryDerivative<T: TensorScalar>(_ function: UnaryFunction, x: UnsafePointer<T>, bias: UnsafePointer<T>?, width: Int,
                                                 y: UnsafePointer<T>, upstream dy: UnsafePointer<T>, into dx: UnsafeMutablePointer<T>,
                                                 count: Int, a: T, b: T) {
        Parallel.forRanges(count) { range in
            function.evaluate(T.self, a: a, b: b) { _, derivative in
                guard let bias else { for i in range { dx[i] = dy[i] * derivative(x[i], y[i]) }; return }
                forRowSegments(range, width: width) { start, columns in
                    for c in columns { dx[start + c] = dy[start + c] * derivative(x[start + c] + bias[c], y[start + c]) }
                }
            }
        }
    }

    /// mask[i] = scale where CounterRandom.uniform(seed, 0, i) ≥ p, else 0: a function of (seed, i)
    /// alone, so any thread (or device) draws the same mask.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    static func dropoutMask<T: TensorScalar>(_ mask: UnsafeMutablePointer<T>, count: Int, probability: T, scale: T, seed: UInt64) {
        let threshold = Float(probability)
        Parallel.forRanges(count) { range in
            for i in range { mask[i] = CounterRandom.uniform(seed: seed, 0, UInt64(i)) >= threshold ? scale : 0 }
        }
    }
}

extension ElementwiseKernels {
    /// out = f(a, b) where `a` and `b` are read through broadcast strides (0 on broadcast axes) and
    /// `out` is contiguous with shape `shape`.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    static func binary<T: TensorScalar>(_ function: BinaryFunction, shape: [Int],
                                        _ a: UnsafePointer<T>, strides aStrides: [Int],
                                        _ b: UnsafePointer<T>, strides bStrides: [Int],
                                        into out: UnsafeMutablePointer<T>) {
        let total = Shape.count(shape)
        if total == 0 { return }
        // One loop per function over a run of elements, so each loop vectorises when both strides are 1.
        @inline(__always) func run(_ o: UnsafeMutablePointer<T>, _ pa: UnsafePointer<T>, _ aStride: Int,
                                   _ pb: UnsafePointer<T>, _ bStride: Int, count: Int) {
            if aStride == 1 && bStride == 1 {
                switch function {
                case .add: for j in 0..<count { o[j] = pa[j] + pb[j] }
                case .subtract: for j in 0..<count { o[j] = pa[j] - pb[j] }
                case .multiply: for j in 0..<count { o[j] = pa[j] * pb[j] }
                case .divide: for j in 0..<count { o[j] = pa[j] / pb[j] }
                case .power: for j in 0..<count { o[j] = UnaryFunction.power(pa[j], pb[j]) }
                }
                return
            }
            switch function {
            case .add: for j in 0..<count { o[j] = pa[j * aStride] + pb[j * bStride] }
            case .subtract: for j in 0..<count { o[j] = pa[j * aStride] - pb[j * bStride] }
            case .multiply: for j in 0..<count { o[j] = pa[j * aStride] * pb[j * bStride] }
            case .divide: for j in 0..<count { o[j] = pa[j * aStride] / pb[j * bStride] }
            case .power: for j in 0..<count { o[j] = UnaryFunction.power(pa[j * aStride], pb[j * bStride]) }
            }
        }
        let contiguous = Shape.contiguousStrides(shape)
        if aStrides == contiguous && bStrides == contiguous {
            Parallel.forRanges(total) { range in
                run(out + range.lowerBound, a + range.lowerBound, 1, b + range.lowerBound, 1, count: range.count)
            }
            return
        }
        // General case: rows of the last axis, the outer index decoded per row.
        let rank = shape.count
        let inner = shape[rank - 1]
        let rows = total / inner
        Parallel.forRanges(rows, minimumPerThread: Swift.max(1, Parallel.minimumElementsPerThread / inner)) { rowRange in
            for row in rowRange {
                var remainder = row, aOffset = 0, bOffset = 0
                for axis in stride(from: rank - 2, through: 0, by: -1) {
                    let i = remainder % shape[axis]
                    remainder /= shape[axis]
                    aOffset += i * aStrides[axis]
                    bOffset += i * bStrides[axis]
                }
                run(out + row * inner, a + aOffset, aStrides[rank - 1], b + bOffset, bStrides[rank - 1], count: inner)
            }
        }
    }
}
