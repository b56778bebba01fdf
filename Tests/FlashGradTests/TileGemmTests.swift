@testable import FlashGrad
import XCTest

/// TileGemm against a plain triple loop in Double, at every instruction-set level this CPU runs,
/// over shapes that exercise every path of the kernel: full and partial row blocks, wide and
/// one-vector strips, tail columns, A read transposed through its strides, overwrite and accumulate.
final class TileGemmTests: XCTestCase {
    func check<T: TensorScalar>(_: T.Type, m: Int, n: Int, k: Int, transposedA: Bool, accumulate: Bool,
                                tolerance: Double, file: StaticString = #filePath, line: UInt = #line) {
        let generator = RandomGenerator(seed: UInt64(m * 1000 + n * 10 + k))
        let a = (0..<(m * k)).map { _ in generator.normal(T.self) }
        let b = (0..<(k * n)).map { _ in generator.normal(T.self) }
        let initial = (0..<(m * n)).map { _ in generator.normal(T.self) }
        // B's rows are `ldb` apart with padding between them, C's `ldc`, to catch a stride mix-up.
        let ldb = n + 3, ldc = n + 5
        var paddedB = [T](repeating: .nan, count: k * ldb)
        for p in 0..<k { for j in 0..<n { paddedB[p * ldb + j] = b[p * n + j] } }
        var c = [T](repeating: .nan, count: m * ldc)
        for i in 0..<m { for j in 0..<n { c[i * ldc + j] = initial[i * n + j] } }
        // A is stored m×k row-major, or k×m (its transpose) and read through swapped strides.
        let storedA = transposedA ? (0..<(k * m)).map { index in a[(index % m) * k + index / m] } : a
        let alpha: T = 0.75
        storedA.withUnsafeBufferPointer { aBuffer in
            paddedB.withUnsafeBufferPointer { bBuffer in
                c.withUnsafeMutableBufferPointer { cBuffer in
                    TileGemm.multiply(m: m, n: n, k: k, alpha: alpha, a: aBuffer.baseAddress!,
                                      aRowStride: transposedA ? 1 : k, aColumnStride: transposedA ? m : 1,
                                      b: bBuffer.baseAddress!, ldb: ldb, c: cBuffer.baseAddress!, ldc: ldc, accumulate: accumulate)
                }
            }
        }
        var worst = 0.0
        for i in 0..<m {
            for j in 0..<n {
                var dot = 0.0
                for p in 0..<k { dot += Double(a[i * k + p]) * Double(b[p * n + j]) }
                let expected = 0.75 * dot + (accumulate ? Double(initial[i * n + j]) : 0)
                worst = Swift.max(worst, Swift.abs(Double(c[i * ldc + j]) - expected))
            }
            for j in n..<ldc { XCTAssertTrue(c[i * ldc + j].isNaN, "wrote past column n", file: file, line: line) }
        }
        XCTAssertLessThanOrEqual(worst, tolerance, "\(T.self) m \(m) n \(n) k \(k) transposedA \(transposedA) accumulate \(accumulate)",
                                 file: file, line: line)
    }

    func testMatchesTripleLoopOverEveryBlockShape() {
        let saved = CPUKernelLevel.current
        defer { CPUKernelLevel.current = saved }
        for level in CPUKernelLevel.supported {
        CPUKernelLevel.current = level
        for (m, n, k) in [(1, 1, 1), (6, 64, 64), (7, 80, 5), (13, 17, 33), (9, 48, 7), (4, 100, 19), (128, 130, 64), (5, 3, 0), (0, 16, 4)] {
            for transposedA in [false, true] {
                for accumulate in [false, true] {
                    // Float: sums of k products of unit normals, |error| ≲ k·2⁻²³·few; Double far below.
                    check(Float.self, m: m, n: n, k: k, transposedA: transposedA, accumulate: accumulate, tolerance: 1e-4)
                    check(Double.self, m: m, n: n, k: k, transposedA: transposedA, accumulate: accumulate, tolerance: 1e-12)
                }
            }
        }
        }
    }
}
