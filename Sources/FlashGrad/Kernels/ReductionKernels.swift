/// Reductions over the middle axis of a contiguous [outer, length, inner] block.
enum ReductionKind { case sum, max, min }

enum ReductionKernels {
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    static func reduce<T: TensorScalar>(_ kind: ReductionKind, _ x: UnsafePointer<T>, outer: Int, length: Int, inner: Int,
                                        into out: UnsafeMutablePointer<T>) {
        let initial: T = kind == .sum ? 0 : (kind == .max ? -.infinity : .infinity)
        Parallel.forRanges(outer, minimumPerThread: Swift.max(1, Parallel.minimumElementsPerThread / Swift.max(1, length * inner))) { range in
            for o in range {
                let row = out + o * inner
                row.initialize(repeating: initial, count: inner)
                for r in 0..<length {
                    let source = x + (o * length + r) * inner
                    switch kind {
                    case .sum: for i in 0..<inner { row[i] += source[i] }
                    case .max: for i in 0..<inner where source[i] > row[i] || source[i].isNaN { row[i] = source[i] }
                    case .min: for i in 0..<inner where source[i] < row[i] || source[i].isNaN { row[i] = source[i] }
                    }
                }
            }
        }
    }
}
