/// Reductions over the middle axis of a contiguous [outer, length, inner] block.
enum ReductionKernels {
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    static func reduce<T: TensorScalar>(_ kind: ReductionKind, _ x: UnsafePointer<T>, outer: Int, length: Int, inner: Int,
                                        into out: UnsafeMutablePointer<T>) {
        let initial: T = kind == .sum ? 0 : (kind == .max ? -.infinity : .infinity)
        if kind == .sum && inner == 1 {
            for o in 0..<outer { out[o] = sumContiguous(x + o * length, count: length) }
            return
        }
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

    /// Σ x[i] over a contiguous run: fixed chunks per thread, each summed with SIMD lanes, partials
    /// added in chunk order, so the result does not depend on the thread count's timing.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    static func sumContiguous<T: TensorScalar>(_ x: UnsafePointer<T>, count: Int) -> T {
        let chunkSize = Parallel.minimumElementsPerThread * 4
        let chunks = (count + chunkSize - 1) / chunkSize
        if chunks <= 1 { return sumSerial(x, count: count) }
        return CPUAllocator.shared.withScratch(T.self, count: chunks) { partials in
            Parallel.forRanges(chunks, minimumPerThread: 1) { range in
                for chunk in range {
                    let start = chunk * chunkSize
                    partials[chunk] = sumSerial(x + start, count: Swift.min(chunkSize, count - start))
                }
            }
            var total: T = 0
            for chunk in 0..<chunks { total += partials[chunk] }
            return total
        }
    }

    @inline(__always)
    static func sumSerial<T: TensorScalar>(_ x: UnsafePointer<T>, count: Int) -> T {
        var lanes = T.Vector()
        var i = 0
        while i + T.Vector.scalarCount <= count {
            lanes += UnsafeRawPointer(x + i).loadUnaligned(as: T.Vector.self)
            i += T.Vector.scalarCount
        }
        var total = lanes.sum()
        while i < count { total += x[i]; i += 1 }
        return total
    }

    /// Σ x[i]² over a contiguous run, in SIMD lanes.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    static func sumOfSquares<T: TensorScalar>(_ x: UnsafePointer<T>, count: Int) -> T {
        var lanes = T.Vector()
        var i = 0
        while i + T.Vector.scalarCount <= count {
            let value = UnsafeRawPointer(x + i).loadUnaligned(as: T.Vector.self)
            lanes += value * value
            i += T.Vector.scalarCount
        }
        var total = lanes.sum()
        while i < count { total += x[i] * x[i]; i += 1 }
        return total
    }
}
