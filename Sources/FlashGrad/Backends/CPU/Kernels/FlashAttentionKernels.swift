/// The per-(batch, head) matrices of a [B, H, N, dim] tensor whose rows are contiguous.
struct HeadMatrices<T: TensorScalar> {
    let base: UnsafeMutablePointer<T>
    let batchStride: Int, headStride: Int, rowStride: Int

    init(_ view: BufferView<T>) {
        let strides = view.layout.strides
        require(strides[3] == 1, "HeadMatrices: rows must be contiguous")
        base = view.pointer
        batchStride = strides[0]; headStride = strides[1]; rowStride = strides[2]
    }

    @inline(__always)
    func matrix(_ b: Int, _ h: Int) -> UnsafeMutablePointer<T> { base + b * batchStride + h * headStride }
}

/// Every head's matrix transposed, [B, H, dim, stride] contiguous: the B operand of a product with
/// the transpose (Q·Kᵀ, dO·Vᵀ) as ``TileGemm`` reads it, keys along SIMD vectors. Each row is
/// padded with zeros by one vector, so a tile may be rounded up to whole vectors anywhere.
/// Linear in the sequence length, like the tensor; the owner calls ``deallocate()``.
struct TransposedHeads<T: TensorScalar> {
    let base: UnsafeMutablePointer<T>
    /// Elements between consecutive rows (one per dim), ≥ the sequence length + a vector.
    let stride: Int
    private let matrixSize: Int, count: Int

    init(_ source: HeadMatrices<T>, batch: Int, heads: Int, rows: Int, dim: Int) {
        let stride = rows + T.Vector.scalarCount
        let matrixSize = dim * stride
        let base = CPUAllocator.shared.allocate(T.self, count: batch * heads * matrixSize)
        // Contiguous runs of heads per thread, as the op that produced the tensor split it, so that
        // each thread mostly reads what is in its own L2.
        Parallel.forRanges(batch * heads, minimumPerThread: 1) { items in
            for item in items {
                let from = source.matrix(item / heads, item % heads), to = base + item * matrixSize
                // Row by row: each source row is read contiguously and its elements go to `dim` rows
                // of the result, whose cache lines stay in L1 until a vector of rows has filled them
                // (faster than square blocks, see BENCHMARKS.md); wrapping arithmetic, because the
                // checked form doubles the loop's instructions.
                for r in 0..<rows {
                    let row = from + r &* source.rowStride
                    for d in 0..<dim { to[d &* stride &+ r] = row[d] }
                }
                for d in 0..<dim { (to + d * stride + rows).initialize(repeating: 0, count: stride - rows) }
            }
        }
        self.base = base; self.stride = stride; self.matrixSize = matrixSize
        count = batch * heads * matrixSize
    }

    /// The transposed matrix of (batch · heads + head), the same index as the source's.
    func matrix(_ index: Int) -> UnsafePointer<T> { UnsafePointer(base + index * matrixSize) }

    func deallocate() { CPUAllocator.shared.deallocate(base, count: count) }
}

/// Buffers one worker thread reuses across its work items (allocated once, not per tile), freed with it.
final class ScratchBuffers<T: TensorScalar> {
    private let counts: [Int]
    private let buffers: [UnsafeMutablePointer<T>]

    /// One buffer per entry of `counts`, of that many elements.
    init(counts: [Int]) {
        self.counts = counts
        buffers = counts.map { CPUAllocator.shared.allocate(T.self, count: $0) }
    }

    subscript(index: Int) -> UnsafeMutablePointer<T> { buffers[index] }

    deinit { for (buffer, count) in zip(buffers, counts) { CPUAllocator.shared.deallocate(buffer, count: count) } }
}

/// FlashAttention-2 on the CPU: tiles of Q rows against tiles of K/V rows, an online softmax in the
/// forward, and a backward that recomputes each tile of scores from the saved log-sum-exp.
/// Nothing of size Nq×Nk is allocated: scratch is one tile per worker, plus Kᵀ (and Vᵀ in the
/// backward) of size N·D, the operands ``TileGemm`` multiplies score tiles with.
enum FlashAttentionKernels {
    /// Query rows per tile: a multiple of ``TileGemm``'s six-row register block, so no tile ends in
    /// single-row blocks. A 96 × 768 Float tile of scores is 288 KiB, within the 1 MiB L2; the
    /// fastest of the shapes measured (BENCHMARKS.md, "Tile sizes").
    static let blockRows = 96
    /// Key rows per forward tile (see ``blockRows``).
    static let blockColumns = 768
    /// Key rows per backward tile: narrower than the forward's, because a causal backward visits the
    /// diagonal tiles whole and wider tiles waste more of them (128 and 512 measured no faster).
    static let backwardBlockColumns = 256

    /// `count` rounded up to whole SIMD vectors of T.
    @inline(__always)
    static func vectorRounded<T: TensorScalar>(_ count: Int, _: T.Type) -> Int {
        let width = T.Vector.scalarCount
        return (count + width - 1) / width * width
    }

    /// S = softcap(scale·Q·Kᵀ) + alibi + mask (`keyTransposed` is this head's Kᵀ) for rows
    /// `rowStart..<rowStart+rows` and key columns `columnStart..<columnStart+columns`, −∞ where not
    /// visible. Rows of `scores` are `scoreStride` apart, `columns` rounded up to whole vectors (the
    /// product fills the rounding with values nothing reads). Writes tanh(·) of the softcap to
    /// `softcapTanh` (same layout) when given (the backward needs 1 − tanh²).
    @inline(__always)
    static func scoreTile<T: TensorScalar>(_ problem: AttentionProblem<T>, batch b: Int, head h: Int,
                                           query: UnsafePointer<T>, queryStride: Int, keyTransposed: UnsafePointer<T>,
                                           keyTransposedStride: Int, rowStart: Int, rows: Int, columnStart: Int, columns: Int,
                                           scores: UnsafeMutablePointer<T>, scoreStride: Int, softcapTanh: UnsafeMutablePointer<T>?) {
        TileGemm.multiply(m: rows, n: scoreStride, k: problem.headDim, alpha: problem.scale,
                          a: query + rowStart * queryStride, aRowStride: queryStride, aColumnStride: 1,
                          b: keyTransposed + columnStart, ldb: keyTransposedStride, c: scores, ldc: scoreStride, accumulate: false)
        for r in 0..<rows {
            let i = rowStart + r
            let row = scores + r * scoreStride
            if let cap = problem.softcap {
                for c in 0..<columns {
                    let t = T.tanh(row[c] / cap)
                    softcapTanh?[r * scoreStride + c] = t
                    row[c] = cap * t
                }
            }
            if let slopes = problem.alibiSlopes {
                let slope = slopes[h], aligned = i + problem.diagonalOffset
                for c in 0..<columns { row[c] -= slope * T(Swift.abs(aligned - (columnStart + c))) }
            }
            if let mask = problem.additiveMaskView {
                let strides = mask.layout.strides
                let maskRow = mask.pointer + b * strides[0] + h * strides[1] + i * strides[2] + columnStart * strides[3]
                for c in 0..<columns { row[c] += maskRow[c * strides[3]] }
            }
            // Positional masks are one interval per row: fill what lies outside it.
            let visible = problem.visibleKeys(batch: b, row: i)
            let firstVisible = Swift.min(Swift.max(visible.lowerBound - columnStart, 0), columns)
            let endVisible = Swift.max(Swift.min(visible.upperBound - columnStart, columns), firstVisible)
            row.initialize(repeating: -.infinity, count: firstVisible)
            (row + endVisible).initialize(repeating: -.infinity, count: columns - endVisible)
            if let padded = problem.paddedKeys {
                for c in 0..<columns where padded[b * problem.keyLength + columnStart + c] { row[c] = -.infinity }
            }
        }
    }

    /// Forward. Per block of Q rows, with running max m, running sum l and accumulator O:
    ///   m' = max(m, rowmax S);  P = exp(S − m');  l ← e^(m−m')·l + rowsum P;  O ← e^(m−m')·O + P·V
    /// then O ← O / l and LSE = m + log l. Dropout scales P·V only, never l.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    static func forward<T: TensorScalar>(_ problem: AttentionProblem<T>, query: HeadMatrices<T>, key: HeadMatrices<T>,
                                         value: HeadMatrices<T>, output: HeadMatrices<T>,
                                         logSumExp: UnsafeMutablePointer<T>) {
        let p = problem
        let rowBlocks = (p.queryLength + blockRows - 1) / blockRows
        let keepScale: T = 1 / (1 - p.dropoutProbability)
        let items = p.batch * p.queryHeads * rowBlocks
        // Scratch per worker, sized to the problem (short sequences need far less than a full tile).
        let tileRows = Swift.min(blockRows, p.queryLength), tileColumns = vectorRounded(Swift.min(blockColumns, p.keyLength), T.self)
        let scratch = (0..<Parallel.workerCount(for: items)).map { _ in
            ScratchBuffers<T>(counts: [tileRows * tileColumns, tileRows * p.valueDim, tileRows, tileRows])
        }
        let keyTransposed = TransposedHeads(key, batch: p.batch, heads: p.keyValueHeads, rows: p.keyLength, dim: p.headDim)
        defer { keyTransposed.deallocate() }
        Parallel.forEachItem(items) { item, worker in
            let b = item / (p.queryHeads * rowBlocks), h = (item / rowBlocks) % p.queryHeads
            let rowStart = (item % rowBlocks) * blockRows, rows = Swift.min(blockRows, p.queryLength - rowStart)
            let kvHead = h / p.groupSize
            let q = query.matrix(b, h), v = value.matrix(b, kvHead)
            let kT = keyTransposed.matrix(b * p.keyValueHeads + kvHead)
            let buffers = scratch[worker]
            let scores = buffers[0], accumulator = buffers[1], runningMax = buffers[2], runningSum = buffers[3]
            accumulator.initialize(repeating: 0, count: rows * p.valueDim)
            runningMax.initialize(repeating: -.infinity, count: rows)
            runningSum.initialize(repeating: 0, count: rows)

            let visible = p.visibleKeys(batch: b, rows: rowStart..<(rowStart + rows))
            var columnStart = visible.lowerBound
            while columnStart < visible.upperBound {
                let columns = Swift.min(blockColumns, visible.upperBound - columnStart)
                let scoreStride = vectorRounded(columns, T.self)
                scoreTile(p, batch: b, head: h, query: q, queryStride: query.rowStride, keyTransposed: kT,
                          keyTransposedStride: keyTransposed.stride, rowStart: rowStart, rows: rows,
                          columnStart: columnStart, columns: columns, scores: scores, scoreStride: scoreStride, softcapTanh: nil)
                for r in 0..<rows {
                    let row = scores + r * scoreStride
                    let tileMax = T.maximum(row, count: columns)
                    // NaN (a NaN or infinite input this row sees) propagates to the row's output, as in naive attention.
                    let newMax = tileMax.isNaN || runningMax[r].isNaN ? T.nan : Swift.max(runningMax[r], tileMax)
                    if newMax == -.infinity {  // nothing visible yet in this row: P = 0, state unchanged
                        row.initialize(repeating: 0, count: columns)
                        continue
                    }
                    let correction = T.exp(runningMax[r] - newMax)
                    let tileSum = T.exponentiate(row, count: columns, subtracting: newMax)
                    runningSum[r] = runningSum[r] * correction + tileSum
                    runningMax[r] = newMax
                    if correction != 1 {
                        let out = accumulator + r * p.valueDim
                        for d in 0..<p.valueDim { out[d] *= correction }
                    }
                    if p.dropoutProbability > 0 {
                        for c in 0..<columns {
                            row[c] *= p.keeps(batch: b, head: h, row: rowStart + r, column: columnStart + c) ? keepScale : 0
                        }
                    }
                }
                TileGemm.multiply(m: rows, n: p.valueDim, k: columns, alpha: 1, a: scores, aRowStride: scoreStride, aColumnStride: 1,
                                  b: v + columnStart * value.rowStride, ldb: value.rowStride,
                                  c: accumulator, ldc: p.valueDim, accumulate: true)
                columnStart += columns
            }
            let headIndex = b * p.queryHeads + h
            for r in 0..<rows {
                let i = rowStart + r
                let out = output.matrix(b, h) + i * output.rowStride
                let sum = runningSum[r]
                if sum == 0 {  // fully masked row: output 0, log-sum-exp −∞
                    out.initialize(repeating: 0, count: p.valueDim)
                    logSumExp[headIndex * p.queryLength + i] = -.infinity
                    continue
                }
                let inverse = 1 / sum
                for d in 0..<p.valueDim { out[d] = accumulator[r * p.valueDim + d] * inverse }
                logSumExp[headIndex * p.queryLength + i] = runningMax[r] + T.log(sum)
            }
        }
    }

    /// Backward, one work item per (batch, key/value head), so each item owns its dK, dV and the dQ
    /// of its query-head group: no atomics, a fixed summation order, bitwise repeatable results.
    /// With fewer such groups than threads (long sequences, small batches) each group's key blocks
    /// are dealt round-robin to several items (so that causal work balances); item s > 0 of a
    /// group sums its dQ into a partial of its own, added to dQ afterwards in split order, so
    /// results stay bitwise repeatable for a given thread count.
    ///   D = rowsum(dO ∘ O);  P = exp(S − LSE);  dV += (P∘Z)ᵀ·dO;  dP = (dO·Vᵀ)∘Z;
    ///   dS = P ∘ (dP − D) (∘ (1 − tanh²) under softcap);  dQ += scale·dS·K;  dK += scale·dSᵀ·Q
    /// where Z is the dropout mask scaled by 1/(1 − p) (all ones without dropout).
    /// The gradients are zeroed by the caller; every [B, H, N, ·] operand is read or written through
    /// its strides (rows contiguous), so heads may be interleaved in memory.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    static func backward<T: TensorScalar>(_ problem: AttentionProblem<T>, query: HeadMatrices<T>, key: HeadMatrices<T>,
                                          value: HeadMatrices<T>, output: HeadMatrices<T>, outputGradient: HeadMatrices<T>,
                                          logSumExp: UnsafePointer<T>, queryGradient: HeadMatrices<T>,
                                          keyGradient: HeadMatrices<T>, valueGradient: HeadMatrices<T>) {
        let p = problem
        let keepScale: T = 1 / (1 - p.dropoutProbability)
        // D_i = Σ_d dO_id · O_id, once per query row.
        let rowCount = p.batch * p.queryHeads * p.queryLength
        let rowDot = CPUAllocator.shared.allocate(T.self, count: rowCount)
        defer { CPUAllocator.shared.deallocate(rowDot, count: rowCount) }
        Parallel.forRanges(rowCount, minimumPerThread: 1024) { range in
            for row in range {
                let b = row / (p.queryHeads * p.queryLength), h = row / p.queryLength % p.queryHeads, i = row % p.queryLength
                let o = output.matrix(b, h) + i * output.rowStride, dO = outputGradient.matrix(b, h) + i * outputGradient.rowStride
                var dot: T = 0
                for d in 0..<p.valueDim { dot += dO[d] * o[d] }
                rowDot[row] = dot
            }
        }
        let groups = p.batch * p.keyValueHeads
        let keyBlocks = (p.keyLength + backwardBlockColumns - 1) / backwardBlockColumns
        let threads = Parallel.threadCount
        let splits = groups >= threads ? 1 : Swift.max(1, Swift.min(keyBlocks, (threads + groups - 1) / groups))
        let queryGradientCount = p.batch * p.queryHeads * p.queryLength * p.headDim
        let partialCount = (splits - 1) * queryGradientCount
        let partials = CPUAllocator.shared.allocate(T.self, count: partialCount)
        partials.initialize(repeating: 0, count: partialCount)
        defer { CPUAllocator.shared.deallocate(partials, count: partialCount) }
        let items = groups * splits
        let tileRows = Swift.min(blockRows, p.queryLength)
        let tileColumns = vectorRounded(Swift.min(backwardBlockColumns, p.keyLength), T.self)
        let scratch = (0..<Parallel.workerCount(for: items)).map { _ in
            ScratchBuffers<T>(counts: [tileRows * tileColumns, tileRows * tileColumns, p.softcap == nil ? 0 : tileRows * tileColumns,
                                       tileColumns * p.headDim, tileColumns * p.valueDim])
        }
        let keyTransposed = TransposedHeads(key, batch: p.batch, heads: p.keyValueHeads, rows: p.keyLength, dim: p.headDim)
        let valueTransposed = TransposedHeads(value, batch: p.batch, heads: p.keyValueHeads, rows: p.keyLength, dim: p.valueDim)
        defer { keyTransposed.deallocate(); valueTransposed.deallocate() }
        Parallel.forEachItem(items) { item, worker in
            let group = item / splits, split = item % splits
            let b = group / p.keyValueHeads, kvHead = group % p.keyValueHeads
            let k = key.matrix(b, kvHead)
            let kT = keyTransposed.matrix(group), vT = valueTransposed.matrix(group)
            // Split 0 adds into dQ itself, the others into contiguous partials of their own.
            let partial = partials + Swift.max(split - 1, 0) * queryGradientCount
            let buffers = scratch[worker]
            let probabilities = buffers[0], scoreGradient = buffers[1]
            let softcapTanh: UnsafeMutablePointer<T>? = p.softcap == nil ? nil : buffers[2]
            let keyAccumulator = buffers[3], valueAccumulator = buffers[4]
            var columnStart = split * backwardBlockColumns
            while columnStart < p.keyLimit[b] {
                let columns = Swift.min(backwardBlockColumns, p.keyLimit[b] - columnStart)
                let scoreStride = vectorRounded(columns, T.self)
                keyAccumulator.initialize(repeating: 0, count: columns * p.headDim)
                valueAccumulator.initialize(repeating: 0, count: columns * p.valueDim)
                for h in (kvHead * p.groupSize)..<((kvHead + 1) * p.groupSize) {
                    let headIndex = b * p.queryHeads + h
                    let q = query.matrix(b, h)
                    let dO = outputGradient.matrix(b, h), dORowStride = outputGradient.rowStride
                    let dQ = split == 0 ? queryGradient.matrix(b, h) : partial + headIndex * p.queryLength * p.headDim
                    let dQRowStride = split == 0 ? queryGradient.rowStride : p.headDim
                    var rowStart = 0
                    while rowStart < p.queryLength {
                        let rows = Swift.min(blockRows, p.queryLength - rowStart)
                        defer { rowStart += rows }
                        let visible = p.visibleKeys(batch: b, rows: rowStart..<(rowStart + rows))
                        if visible.upperBound <= columnStart || visible.lowerBound >= columnStart + columns { continue }
                        scoreTile(p, batch: b, head: h, query: q, queryStride: query.rowStride, keyTransposed: kT,
                                  keyTransposedStride: keyTransposed.stride, rowStart: rowStart, rows: rows,
                                  columnStart: columnStart, columns: columns, scores: probabilities, scoreStride: scoreStride,
                                  softcapTanh: softcapTanh)
                        // dP = dO·Vᵀ
                        TileGemm.multiply(m: rows, n: scoreStride, k: p.valueDim, alpha: 1,
                                          a: dO + rowStart * dORowStride, aRowStride: dORowStride, aColumnStride: 1,
                                          b: vT + columnStart, ldb: valueTransposed.stride, c: scoreGradient, ldc: scoreStride,
                                          accumulate: false)
                        for r in 0..<rows {
                            let i = rowStart + r
                            let lse = logSumExp[headIndex * p.queryLength + i], rowD = rowDot[headIndex * p.queryLength + i]
                            let probabilityRow = probabilities + r * scoreStride, gradientRow = scoreGradient + r * scoreStride
                            if lse == -.infinity {  // fully masked row: no gradient anywhere
                                probabilityRow.initialize(repeating: 0, count: columns)
                                gradientRow.initialize(repeating: 0, count: columns)
                                continue
                            }
                            // P = exp(S − LSE): the forward's probabilities, recomputed.
                            _ = T.exponentiate(probabilityRow, count: columns, subtracting: lse)
                            // dS = P ∘ (dP∘Z − D);  the dropped-out P∘Z is what multiplied V.
                            if p.dropoutProbability == 0 {  // Z = 1: a loop the compiler vectorises
                                for c in 0..<columns { gradientRow[c] = probabilityRow[c] * (gradientRow[c] - rowD) }
                            } else {
                                for c in 0..<columns {
                                    let factor = p.keeps(batch: b, head: h, row: i, column: columnStart + c) ? keepScale : 0
                                    gradientRow[c] = probabilityRow[c] * (gradientRow[c] * factor - rowD)
                                    probabilityRow[c] *= factor
                                }
                            }
                            if let softcapTanh {
                                let t = softcapTanh + r * scoreStride
                                for c in 0..<columns { gradientRow[c] *= 1 - t[c] * t[c] }
                            }
                        }
                        // dV += (P∘Z)ᵀ·dO  (Pᵀ read through swapped strides)
                        TileGemm.multiply(m: columns, n: p.valueDim, k: rows, alpha: 1,
                                          a: probabilities, aRowStride: 1, aColumnStride: scoreStride,
                                          b: dO + rowStart * dORowStride, ldb: dORowStride,
                                          c: valueAccumulator, ldc: p.valueDim, accumulate: true)
                        // dK += scale·dSᵀ·Q
                        TileGemm.multiply(m: columns, n: p.headDim, k: rows, alpha: p.scale,
                                          a: scoreGradient, aRowStride: 1, aColumnStride: scoreStride,
                                          b: q + rowStart * query.rowStride, ldb: query.rowStride,
                                          c: keyAccumulator, ldc: p.headDim, accumulate: true)
                        // dQ += scale·dS·K
                        TileGemm.multiply(m: rows, n: p.headDim, k: columns, alpha: p.scale,
                                          a: scoreGradient, aRowStride: scoreStride, aColumnStride: 1,
                                          b: k + columnStart * key.rowStride, ldb: key.rowStride,
                                          c: dQ + rowStart * dQRowStride, ldc: dQRowStride, accumulate: true)
                    }
                }
                let dK = keyGradient.matrix(b, kvHead), dV = valueGradient.matrix(b, kvHead)
                for c in 0..<columns {
                    (dK + (columnStart + c) * keyGradient.rowStride).update(from: keyAccumulator + c * p.headDim, count: p.headDim)
                    (dV + (columnStart + c) * valueGradient.rowStride).update(from: valueAccumulator + c * p.valueDim, count: p.valueDim)
                }
                columnStart += splits * backwardBlockColumns
            }
        }
        // dQ = split 0's sum + split 1's + …, in that order for every element.
        if splits > 1 {
            Parallel.forRanges(rowCount) { range in
                for row in range {
                    let b = row / (p.queryHeads * p.queryLength), h = row / p.queryLength % p.queryHeads, i = row % p.queryLength
                    let dQ = queryGradient.matrix(b, h) + i * queryGradient.rowStride
                    for d in 0..<p.headDim {
                        var sum = dQ[d]
                        for split in 0..<(splits - 1) { sum += partials[split * queryGradientCount + row * p.headDim + d] }
                        dQ[d] = sum
                    }
                }
            }
        }
    }
}
