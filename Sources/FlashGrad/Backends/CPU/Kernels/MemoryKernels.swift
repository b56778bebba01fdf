/// Fills, copies, gathers and selections, specialised so that generic callers never move
/// elements one witness-table call at a time.
enum MemoryKernels {
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    static func fill<T: TensorScalar>(_ destination: UnsafeMutablePointer<T>, with value: T, count: Int) {
        destination.initialize(repeating: value, count: count)
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    static func copy<T: TensorScalar>(from source: UnsafePointer<T>, to destination: UnsafeMutablePointer<T>, count: Int) {
        destination.update(from: source, count: count)
    }

    /// out[p] = table[indices[p]] row by row (rows of `dim` elements), zeros where the index is −1.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    static func gatherRows<T: TensorScalar>(_ table: UnsafePointer<T>, indices: [Int], dim: Int, into out: UnsafeMutablePointer<T>) {
        for (position, row) in indices.enumerated() {
            if row < 0 { (out + position * dim).update(repeating: 0, count: dim) } else { (out + position * dim).update(from: table + row * dim, count: dim) }
        }
    }

    /// table[indices[p]] += source[p] row by row, in index order (deterministic).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    static func scatterAddRows<T: TensorScalar>(_ source: UnsafePointer<T>, indices: [Int], dim: Int, into table: UnsafeMutablePointer<T>) {
        for (position, row) in indices.enumerated() {
            let target = table + row * dim, values = source + position * dim
            for i in 0..<dim { target[i] += values[i] }
        }
    }

    /// out[i] = condition[i] ? a[i] : b[i] over contiguous buffers.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    static func select<T: TensorScalar>(_ condition: [Bool], _ a: UnsafePointer<T>, _ b: UnsafePointer<T>, into out: UnsafeMutablePointer<T>) {
        for i in condition.indices { out[i] = condition[i] ? a[i] : b[i] }
    }

    /// 1 where a[i] == b[i], else 0.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    static func equal<T: TensorScalar>(_ a: UnsafePointer<T>, _ b: UnsafePointer<T>, count: Int, into out: UnsafeMutablePointer<T>) {
        for i in 0..<count { out[i] = a[i] == b[i] ? 1 : 0 }
    }
}

extension MemoryKernels {
    /// Copies between arbitrarily strided views of the same shape.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    static func stridedCopy<T: TensorScalar>(shape: [Int], from source: UnsafePointer<T>, strides sourceStrides: [Int],
                                      to destination: UnsafeMutablePointer<T>, strides destinationStrides: [Int]) {
        let total = Shape.count(shape)
        if total == 0 { return }
        guard let inner = shape.last else { destination[0] = source[0]; return }
        let rank = shape.count
        let sInner = sourceStrides[rank - 1], dInner = destinationStrides[rank - 1]
        var index = [Int](repeating: 0, count: rank - 1)
        var sourceOffset = 0, destinationOffset = 0
        for _ in 0..<(total / Swift.max(inner, 1)) {
            if sInner == 1 && dInner == 1 {
                (destination + destinationOffset).update(from: source + sourceOffset, count: inner)
            } else {
                for i in 0..<inner { destination[destinationOffset + i * dInner] = source[sourceOffset + i * sInner] }
            }
            // Advance the outer multi-index like an odometer.
            var axis = rank - 2
            while axis >= 0 {
                index[axis] += 1
                sourceOffset += sourceStrides[axis]
                destinationOffset += destinationStrides[axis]
                if index[axis] < shape[axis] { break }
                sourceOffset -= sourceStrides[axis] * shape[axis]
                destinationOffset -= destinationStrides[axis] * shape[axis]
                index[axis] = 0
                axis -= 1
            }
        }
    }
}

/// Cross entropy over rows of log-probabilities.
enum LossKernels {
    /// Per row: loss = (1 − ε)·(−log p[t]) + ε·mean_c(−log p[c]), 0 on ignored rows.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    static func crossEntropyRows<T: TensorScalar>(logProbabilities: UnsafePointer<T>, targets: [Int], classes: Int, ignoreIndex: Int,
                                                  smoothing: T, into rowLosses: UnsafeMutablePointer<T>) {
        for (row, target) in targets.enumerated() {
            let logP = logProbabilities + row * classes
            guard target != ignoreIndex else { rowLosses[row] = 0; continue }
            var smoothed: T = 0
            if smoothing > 0 { for c in 0..<classes { smoothed -= logP[c] } }
            rowLosses[row] = (1 - smoothing) * -logP[target] + smoothing * smoothed / T(classes)
        }
    }

    /// ∂/∂logits = (p − ((1 − ε)·onehot(t) + ε/C)) · scale, zero on ignored rows.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    static func crossEntropyBackward<T: TensorScalar>(logProbabilities: UnsafePointer<T>, targets: [Int], classes: Int, ignoreIndex: Int,
                                                      smoothing: T, scale: T, into gradient: UnsafeMutablePointer<T>) {
        for (row, target) in targets.enumerated() {
            let logP = logProbabilities + row * classes, out = gradient + row * classes
            guard target != ignoreIndex else { out.initialize(repeating: 0, count: classes); continue }
            for c in 0..<classes { out[c] = (T.exp(logP[c]) - smoothing / T(classes)) * scale }
            out[target] -= (1 - smoothing) * scale
        }
    }
}
