/// A register-blocked matrix product for the tiles of FlashAttention, written with SIMD vectors so
/// that it uses AVX-512 (OpenBLAS on this machine runs its AVX2 kernel), and shaped for the tiles:
/// B is read in place row by row and A element by element through two strides, so neither a
/// transposed operand (Pᵀ, dSᵀ) nor a tile of scores needs the packing copy a BLAS call makes.
enum TileGemm {
    /// C[m×n] = α·A[m×k]·B[k×n], or C += α·A·B when `accumulate`. A[i, p] is
    /// `a[i·aRowStride + p·aColumnStride]`; B's rows are contiguous, `ldb` apart; C's rows `ldc` apart.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    static func multiply<T: TensorScalar>(m: Int, n: Int, k: Int, alpha: T,
                                          a: UnsafePointer<T>, aRowStride: Int, aColumnStride: Int,
                                          b: UnsafePointer<T>, ldb: Int,
                                          c: UnsafeMutablePointer<T>, ldc: Int, accumulate: Bool) {
        let operands = Operands(k: k, alpha: alpha, aRowStride: aRowStride, aColumnStride: aColumnStride,
                                ldb: ldb, ldc: ldc, accumulate: accumulate)
        // Column strips of four vectors, then two, then one, then the rest narrower than a vector.
        // Within a strip every block of rows reuses the same rows of B, which stay in L1.
        var column = 0
        while column + VectorQuad<T>.width <= n {
            operands.strip(VectorQuad<T>.self, m: m, a: a, b: b + column, c: c + column)
            column += VectorQuad<T>.width
        }
        if column + VectorPair<T>.width <= n {
            operands.strip(VectorPair<T>.self, m: m, a: a, b: b + column, c: c + column)
            column += VectorPair<T>.width
        }
        if column + VectorSingle<T>.width <= n {
            operands.strip(VectorSingle<T>.self, m: m, a: a, b: b + column, c: c + column)
            column += VectorSingle<T>.width
        }
        if column < n { operands.tailColumns(column..<n, m: m, a: a, b: b, c: c) }
    }
}

/// The scalars one row of a register block holds: a few SIMD vectors side by side.
protocol VectorGroup {
    associatedtype Scalar: TensorScalar
    /// Scalars per group.
    static var width: Int { get }
    init()
    init(loading pointer: UnsafePointer<Scalar>)
    /// self += a·b, with `a` broadcast to every lane.
    mutating func addProduct(_ a: Scalar, _ b: Self)
    /// Writes α·self to `pointer`, or adds it to what is there.
    func store(to pointer: UnsafeMutablePointer<Scalar>, alpha: Scalar, accumulate: Bool)
}

extension VectorGroup {
    @inline(__always)
    static func load(_ pointer: UnsafePointer<Scalar>) -> Scalar.Vector {
        UnsafeRawPointer(pointer).loadUnaligned(as: Scalar.Vector.self)
    }

    @inline(__always)
    static func store(_ vector: Scalar.Vector, to pointer: UnsafeMutablePointer<Scalar>, alpha: Scalar, accumulate: Bool) {
        let result = accumulate ? VectorMath.multiplyAdd(load(pointer), vector, Scalar.Vector(repeating: alpha)) : vector * alpha
        UnsafeMutableRawPointer(pointer).storeBytes(of: result, as: Scalar.Vector.self)
    }
}

/// Four vectors: 64 Floats, one row of a D = 64 head.
struct VectorQuad<Scalar: TensorScalar>: VectorGroup {
    var v0, v1, v2, v3: Scalar.Vector
    static var width: Int { 4 * Scalar.Vector.scalarCount }

    @inline(__always) init() { v0 = .zero; v1 = .zero; v2 = .zero; v3 = .zero }

    @inline(__always) init(loading pointer: UnsafePointer<Scalar>) {
        let w = Scalar.Vector.scalarCount
        v0 = Self.load(pointer); v1 = Self.load(pointer + w); v2 = Self.load(pointer + 2 * w); v3 = Self.load(pointer + 3 * w)
    }

    @inline(__always) mutating func addProduct(_ a: Scalar, _ b: Self) {
        let broadcast = Scalar.Vector(repeating: a)
        v0 = VectorMath.multiplyAdd(v0, broadcast, b.v0); v1 = VectorMath.multiplyAdd(v1, broadcast, b.v1)
        v2 = VectorMath.multiplyAdd(v2, broadcast, b.v2); v3 = VectorMath.multiplyAdd(v3, broadcast, b.v3)
    }

    @inline(__always) func store(to pointer: UnsafeMutablePointer<Scalar>, alpha: Scalar, accumulate: Bool) {
        let w = Scalar.Vector.scalarCount
        Self.store(v0, to: pointer, alpha: alpha, accumulate: accumulate)
        Self.store(v1, to: pointer + w, alpha: alpha, accumulate: accumulate)
        Self.store(v2, to: pointer + 2 * w, alpha: alpha, accumulate: accumulate)
        Self.store(v3, to: pointer + 3 * w, alpha: alpha, accumulate: accumulate)
    }
}

/// Two vectors: 32 Floats, one row of a D = 32 head.
struct VectorPair<Scalar: TensorScalar>: VectorGroup {
    var v0, v1: Scalar.Vector
    static var width: Int { 2 * Scalar.Vector.scalarCount }

    @inline(__always) init() { v0 = .zero; v1 = .zero }

    @inline(__always) init(loading pointer: UnsafePointer<Scalar>) {
        v0 = Self.load(pointer); v1 = Self.load(pointer + Scalar.Vector.scalarCount)
    }

    @inline(__always) mutating func addProduct(_ a: Scalar, _ b: Self) {
        let broadcast = Scalar.Vector(repeating: a)
        v0 = VectorMath.multiplyAdd(v0, broadcast, b.v0); v1 = VectorMath.multiplyAdd(v1, broadcast, b.v1)
    }

    @inline(__always) func store(to pointer: UnsafeMutablePointer<Scalar>, alpha: Scalar, accumulate: Bool) {
        Self.store(v0, to: pointer, alpha: alpha, accumulate: accumulate)
        Self.store(v1, to: pointer + Scalar.Vector.scalarCount, alpha: alpha, accumulate: accumulate)
    }
}

/// One vector, for the columns left after the wider strips.
struct VectorSingle<Scalar: TensorScalar>: VectorGroup {
    var v0: Scalar.Vector
    static var width: Int { Scalar.Vector.scalarCount }

    @inline(__always) init() { v0 = .zero }
    @inline(__always) init(loading pointer: UnsafePointer<Scalar>) { v0 = Self.load(pointer) }

    @inline(__always) mutating func addProduct(_ a: Scalar, _ b: Self) {
        v0 = VectorMath.multiplyAdd(v0, Scalar.Vector(repeating: a), b.v0)
    }

    @inline(__always) func store(to pointer: UnsafeMutablePointer<Scalar>, alpha: Scalar, accumulate: Bool) {
        Self.store(v0, to: pointer, alpha: alpha, accumulate: accumulate)
    }
}

/// What stays fixed across the blocks of one product.
private struct Operands<T: TensorScalar> {
    let k: Int, alpha: T, aRowStride: Int, aColumnStride: Int, ldb: Int, ldc: Int, accumulate: Bool

    /// Rows per register block: 6 rows × 4 vectors are 24 accumulators, which with 4 vectors of B
    /// and a broadcast fit AVX-512's 32 registers.
    static var blockRows: Int { 6 }

    @inline(__always)
    func strip<G: VectorGroup>(_: G.Type, m: Int, a: UnsafePointer<T>, b: UnsafePointer<T>, c: UnsafeMutablePointer<T>)
    where G.Scalar == T {
        var row = 0
        while row < m {
            block(G.self, rows: Swift.min(Self.blockRows, m - row), a: a + row * aRowStride, b: b, c: c + row * ldc)
            row += Self.blockRows
        }
    }

    /// One register block: `rows` (1…6) rows of C by one group of columns, over all of k. A block
    /// of fewer than six rows (the last of a strip) still runs six accumulators, the missing rows
    /// re-reading the last row of A, and stores only its own rows: six independent FMA chains keep
    /// the FMA units busy where one row alone would wait on each FMA's latency.
    @inline(__always)
    func block<G: VectorGroup>(_: G.Type, rows: Int, a: UnsafePointer<T>, b: UnsafePointer<T>, c: UnsafeMutablePointer<T>)
    where G.Scalar == T {
        let last = rows - 1
        let a0 = a, a1 = a + Swift.min(1, last) * aRowStride, a2 = a + Swift.min(2, last) * aRowStride
        let a3 = a + Swift.min(3, last) * aRowStride, a4 = a + Swift.min(4, last) * aRowStride
        let a5 = a + Swift.min(5, last) * aRowStride
        var r0 = G(), r1 = G(), r2 = G(), r3 = G(), r4 = G(), r5 = G()
        var offset = 0, bRow = b
        for _ in 0..<k {
            let bGroup = G(loading: bRow)
            r0.addProduct(a0[offset], bGroup); r1.addProduct(a1[offset], bGroup)
            r2.addProduct(a2[offset], bGroup); r3.addProduct(a3[offset], bGroup)
            r4.addProduct(a4[offset], bGroup); r5.addProduct(a5[offset], bGroup)
            offset += aColumnStride
            bRow += ldb
        }
        r0.store(to: c, alpha: alpha, accumulate: accumulate)
        if rows > 1 { r1.store(to: c + ldc, alpha: alpha, accumulate: accumulate) }
        if rows > 2 { r2.store(to: c + 2 * ldc, alpha: alpha, accumulate: accumulate) }
        if rows > 3 { r3.store(to: c + 3 * ldc, alpha: alpha, accumulate: accumulate) }
        if rows > 4 { r4.store(to: c + 4 * ldc, alpha: alpha, accumulate: accumulate) }
        if rows > 5 { r5.store(to: c + 5 * ldc, alpha: alpha, accumulate: accumulate) }
    }

    /// The last columns, fewer than a vector's width (a head dim that is not a multiple of 16, the
    /// last keys of a tile): B's columns are copied into a zero-padded panel one vector wide and C's
    /// into a vector-wide scratch, so they go through the same vector kernels as the rest.
    func tailColumns(_ columns: Range<Int>, m: Int, a: UnsafePointer<T>, b: UnsafePointer<T>, c: UnsafeMutablePointer<T>) {
        let width = VectorSingle<T>.width, count = columns.count
        withUnsafeTemporaryAllocation(of: T.self, capacity: (k + m) * width) { buffer in
            let panel = buffer.baseAddress!, block = panel + k * width
            for p in 0..<k {
                for j in 0..<width { panel[p * width + j] = j < count ? b[p * ldb + columns.lowerBound + j] : 0 }
            }
            for i in 0..<m {
                for j in 0..<width { block[i * width + j] = accumulate && j < count ? c[i * ldc + columns.lowerBound + j] : 0 }
            }
            let padded = Operands(k: k, alpha: alpha, aRowStride: aRowStride, aColumnStride: aColumnStride,
                                  ldb: width, ldc: width, accumulate: accumulate)
            padded.strip(VectorSingle<T>.self, m: m, a: a, b: panel, c: block)
            for i in 0..<m {
                for j in 0..<count { c[i * ldc + columns.lowerBound + j] = block[i * width + j] }
            }
        }
    }
}
