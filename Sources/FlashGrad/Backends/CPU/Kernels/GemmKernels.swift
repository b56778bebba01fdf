/// Batched matrix products split across FlashGrad's threads, each part one single-threaded BLAS call.
enum GemmKernels {
    /// Below this many multiply-adds a thread's share is not worth waking it for.
    static let minimumMultiplyAddsPerThread = 1 << 18

    /// C[i] = A[i]·B[i] for every batch index, C contiguous [batch…, m, n].
    static func batched<T: TensorScalar>(batch: [Int], m: Int, n: Int, k: Int, a: MatrixOperand<T>, b: MatrixOperand<T>,
                                         into c: UnsafeMutablePointer<T>) {
        let batchCount = Shape.count(batch), batchStrides = Shape.contiguousStrides(batch)
        let work = m * n * k
        // Split the batch when it alone feeds every thread; otherwise split each product's rows (or columns).
        let parts = Swift.max(1, Swift.min(Parallel.threadCount, batchCount * work / minimumMultiplyAddsPerThread))
        Parallel.ensureSingleThreadedBLAS()
        if parts == 1 {
            for index in 0..<batchCount {
                product(a, b, index: index, batchStrides: batchStrides, rows: 0..<m, columns: 0..<n, k: k, n: n, into: c + index * m * n)
            }
            return
        }
        if batchCount >= parts {
            Parallel.forEachItem(batchCount) { index, _ in
                product(a, b, index: index, batchStrides: batchStrides, rows: 0..<m, columns: 0..<n, k: k, n: n, into: c + index * m * n)
            }
            return
        }
        let splitRows = m >= n
        let extent = splitRows ? m : n
        Parallel.forEachItem(batchCount * parts) { item, _ in
            let index = item / parts, part = item % parts
            let range = (part * extent / parts)..<((part + 1) * extent / parts)
            product(a, b, index: index, batchStrides: batchStrides, rows: splitRows ? range : 0..<m,
                    columns: splitRows ? 0..<n : range, k: k, n: n, into: c + index * m * n)
        }
    }

    /// One block C[rows, columns] of batch `index`; `c` points at that batch's m×n output.
    private static func product<T: TensorScalar>(_ a: MatrixOperand<T>, _ b: MatrixOperand<T>, index: Int, batchStrides: [Int],
                                                 rows: Range<Int>, columns: Range<Int>, k: Int, n: Int,
                                                 into c: UnsafeMutablePointer<T>) {
        guard !rows.isEmpty, !columns.isEmpty else { return }
        // Row r of op(A) starts at r·lda (stored as is) or at column r (stored transposed); likewise for B's columns.
        let aStart = a.offset(batchIndex: index, batchStrides: batchStrides) + rows.lowerBound * (a.transposed ? 1 : a.leadingDimension)
        let bStart = b.offset(batchIndex: index, batchStrides: batchStrides) + columns.lowerBound * (b.transposed ? b.leadingDimension : 1)
        T.gemm(transA: a.transposed, transB: b.transposed, m: rows.count, n: columns.count, k: k, alpha: 1,
               a: a.view.storage.hostPointer + aStart, lda: a.leadingDimension,
               b: b.view.storage.hostPointer + bStart, ldb: b.leadingDimension,
               beta: 0, c: c + rows.lowerBound * n + columns.lowerBound, ldc: n)
    }
}
