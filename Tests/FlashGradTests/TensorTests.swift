import FlashGrad
import XCTest

final class TensorTests: XCTestCase {
    func testFactoriesAndShapes() {
        XCTAssertEqual(Tensor<Float>.zeros([2, 3]).scalars, [0, 0, 0, 0, 0, 0])
        XCTAssertEqual(Tensor<Double>.full([2], 7).scalars, [7, 7])
        XCTAssertEqual(Tensor<Float>.arange(0, 5).scalars, [0, 1, 2, 3, 4])
        XCTAssertEqual(Tensor<Float>.arange(1, 2, step: 0.25).scalars, [1, 1.25, 1.5, 1.75])
        XCTAssertEqual(Tensor<Double>.eye(3).scalars, [1, 0, 0, 0, 1, 0, 0, 0, 1])
        let t = Tensor<Float>(Array(0..<24).map(Float.init), shape: [2, 3, 4])
        XCTAssertEqual(t.count, 24)
        XCTAssertEqual(t[1, 2, 3], 23)
    }

    func testSeededRandomIsReproducible() {
        let a = Tensor<Float>.normal([100], generator: RandomGenerator(seed: 7))
        let b = Tensor<Float>.normal([100], generator: RandomGenerator(seed: 7))
        let c = Tensor<Float>.normal([100], generator: RandomGenerator(seed: 8))
        XCTAssertEqual(a.scalars, b.scalars)
        XCTAssertNotEqual(a.scalars, c.scalars)
        let big = Tensor<Double>.normal([20000], generator: RandomGenerator(seed: 1))
        XCTAssertEqual(big.mean().item, 0, accuracy: 0.03)
        XCTAssertEqual(big.variance().item, 1, accuracy: 0.05)
        let uniform = Tensor<Double>.uniform([20000], low: 2, high: 4, generator: RandomGenerator(seed: 1))
        XCTAssertGreaterThanOrEqual(uniform.scalars.min()!, 2)
        XCTAssertLessThan(uniform.scalars.max()!, 4)
        XCTAssertEqual(uniform.mean().item, 3, accuracy: 0.02)
    }

    func testViewsShareStorageAndCopyOnlyWhenNeeded() {
        let t = Tensor<Float>(Array(0..<6).map(Float.init), shape: [2, 3])
        XCTAssertEqual(t.transposed().scalars, [0, 3, 1, 4, 2, 5])
        XCTAssertEqual(t.transposed().shape, [3, 2])
        XCTAssertEqual(t.reshape([3, -1]).shape, [3, 2])
        XCTAssertEqual(t.unsqueeze(0).shape, [1, 2, 3])
        XCTAssertEqual(t.unsqueeze(0).squeeze(0).shape, [2, 3])
        XCTAssertEqual(t.slice(axis: 1, 1..<3).scalars, [1, 2, 4, 5])
        XCTAssertEqual(Tensor<Float>([1, 2], shape: [2, 1]).expand([2, 3]).scalars, [1, 1, 1, 2, 2, 2])
        XCTAssertEqual(t.permute([1, 0]).reshape([6]).scalars, [0, 3, 1, 4, 2, 5])
        let parts = t.chunk(2, axis: 1)
        XCTAssertEqual(parts.map(\.shape), [[2, 2], [2, 1]])
        XCTAssertEqual(Tensor.concatenate(parts, axis: 1).scalars, t.scalars)
        XCTAssertEqual(t.split(sizes: [1, 1], axis: 0)[1].scalars, [3, 4, 5])
    }

    func testBroadcastingArithmetic() {
        let a = Tensor<Float>([1, 2, 3], shape: [3, 1])
        let b = Tensor<Float>([10, 20], shape: [2])
        XCTAssertEqual((a + b).shape, [3, 2])
        XCTAssertEqual((a + b).scalars, [11, 21, 12, 22, 13, 23])
        XCTAssertEqual((a * b).scalars, [10, 20, 20, 40, 30, 60])
        XCTAssertEqual((b - 1).scalars, [9, 19])
        XCTAssertEqual((2 / b).scalars, [0.2, 0.1])
    }

    func testReductions() {
        let t = Tensor<Double>([1, 5, 3, 4, 2, 6], shape: [2, 3])
        XCTAssertEqual(t.sum().item, 21)
        XCTAssertEqual(t.sum(axis: 0).scalars, [5, 7, 9])
        XCTAssertEqual(t.sum(axis: 1, keepDims: true).shape, [2, 1])
        XCTAssertEqual(t.mean(axis: 1).scalars, [3, 4])
        XCTAssertEqual(t.max(axis: 1).scalars, [5, 6])
        XCTAssertEqual(t.min(axis: 0).scalars, [1, 2, 3])
        XCTAssertEqual(t.variance(axes: [1]).scalars, [4, 4])
        XCTAssertEqual(t.variance(axes: [1], unbiased: false).scalars[0], 8.0 / 3, accuracy: 1e-12)
    }

    func testMatmulAgainstHandComputedValues() {
        let a = Tensor<Float>([1, 2, 3, 4, 5, 6], shape: [2, 3])
        let b = Tensor<Float>([7, 8, 9, 10, 11, 12], shape: [3, 2])
        XCTAssertEqual(a.matmul(b).scalars, [58, 64, 139, 154])
        XCTAssertEqual(a.matmul(a.transposed()).scalars, [14, 32, 32, 77])
        let batched = Tensor<Float>.ones([4, 2, 3]).matmul(b)
        XCTAssertEqual(batched.shape, [4, 2, 2])
        XCTAssertEqual(batched.scalars.prefix(2), [27, 30])
        XCTAssertEqual(a.matmul(Tensor<Float>([1, 1, 1])).scalars, [6, 15])
    }

    /// Products large enough to be split across threads (by batch, by rows, by columns), with
    /// transposed operands, against a plain triple loop in Double.
    func testLargeMatmulsSplitAcrossThreadsMatchAReferenceLoop() {
        let generator = RandomGenerator(seed: 21)
        func reference(_ a: Tensor<Double>, _ b: Tensor<Double>) -> [Double] {
            let m = a.shape[0], k = a.shape[1], n = b.shape[1]
            let x = a.scalars, y = b.scalars
            return (0..<(m * n)).map { index in (0..<k).reduce(0.0) { $0 + x[index / n * k + $1] * y[$1 * n + index % n] } }
        }
        let cases: [(Tensor<Double>, Tensor<Double>)] = [
            (Tensor.normal([130, 100], generator: generator), Tensor.normal([100, 120], generator: generator)),       // rows
            (Tensor.normal([300, 40], generator: generator).transposed(), Tensor.normal([300, 500], generator: generator)),  // columns, Aᵀ
            (Tensor.normal([90, 200], generator: generator), Tensor.normal([150, 200], generator: generator).transposed()),  // Bᵀ
        ]
        for (a, b) in cases {
            let product = a.matmul(b).scalars
            for (x, y) in zip(product, reference(a.contiguous(), b.contiguous())) { XCTAssertEqual(x, y, accuracy: 1e-10) }
        }
        let batchedA = Tensor<Double>.normal([3, 70, 50], generator: generator), shared = Tensor<Double>.normal([50, 90], generator: generator)
        let batched = batchedA.matmul(shared)
        for index in 0..<3 {
            let expected = reference(batchedA.slice(axis: 0, index..<(index + 1)).reshape([70, 50]), shared)
            for (x, y) in zip(batched.slice(axis: 0, index..<(index + 1)).scalars, expected) { XCTAssertEqual(x, y, accuracy: 1e-10) }
        }
    }

    func testSoftmaxIsStableForLargeLogits() {
        let t = Tensor<Float>([1000, 1001, 1002], shape: [1, 3])
        let p = t.softmax().scalars
        XCTAssertEqual(p.reduce(0, +), 1, accuracy: 1e-6)
        XCTAssertEqual(p[2], 0.66524096, accuracy: 1e-6)
        XCTAssertEqual(t.logSoftmax().scalars[2], -0.40760596, accuracy: 1e-5)
    }

    func testDescriptionShowsShapeTypeAndValues() {
        XCTAssertEqual(Tensor<Float>([1, 2, 3, 4], shape: [2, 2]).description, "Tensor<Float>(shape: [2, 2], [[1, 2], [3, 4]])")
        let large = Tensor<Double>.zeros([2000]).description
        XCTAssertTrue(large.contains("…"), large)
        XCTAssertLessThan(large.count, 200)
    }

    func testLinalgValues() {
        let a = Tensor<Double>([4, 2, 2, 3], shape: [2, 2])
        let l = a.cholesky()
        assertClose(l.matmul(l.transposed()), a, tolerance: 1e-12)
        XCTAssertEqual(l[0, 1], 0)
        let x = a.solve(Tensor<Double>([2, 1]))
        assertClose(a.matmul(x), Tensor<Double>([2, 1]), tolerance: 1e-12)
        let q = Tensor<Double>.orthogonal(5, 3, generator: RandomGenerator(seed: 3))
        assertClose(q.transposed().matmul(q), Tensor<Double>.eye(3), tolerance: 1e-12)
        let wide = Tensor<Float>.orthogonal(3, 5, generator: RandomGenerator(seed: 3))
        assertClose(wide.matmul(wide.transposed()), Tensor<Float>.eye(3), tolerance: 1e-5)
    }

    func testAutogradAccumulatesFreesAndRespectsNoGrad() {
        let x = Tensor<Double>([1, 2, 3], requiresGrad: true)
        let y = (x * x).sum()
        y.backward()
        XCTAssertEqual(x.grad?.scalars, [2, 4, 6])
        (x * 3).sum().backward()
        XCTAssertEqual(x.grad?.scalars, [5, 7, 9], "gradients accumulate until zeroGrad")
        x.zeroGrad()
        XCTAssertNil(x.grad)
        let z = withoutGradients { x * 2 }
        XCTAssertFalse(z.requiresGrad)
        XCTAssertFalse(x.detach().requiresGrad)
        // A value used twice gets both contributions.
        let w = Tensor<Double>([2], requiresGrad: true)
        let u = w * w
        (u + u).sum().backward()
        XCTAssertEqual(w.grad?.scalars, [8])
        // Leaves that receive the same gradient tensor (from an add) still get separate storage.
        let a = Tensor<Double>([1, 2], requiresGrad: true), b = Tensor<Double>([3, 4], requiresGrad: true)
        let seed = Tensor<Double>([5, 6])
        (a + b).backward(seed)
        a.grad!.assign(Tensor<Double>([0, 0]))
        XCTAssertEqual(b.grad?.scalars, [5, 6])
        XCTAssertEqual(seed.scalars, [5, 6])
    }

    func testGradientReadyHookSeesTheWholeGradientOnce() {
        let w = Tensor<Double>([1, 2], requiresGrad: true)
        var seen: [[Double]] = []
        w.registerGradientReadyHook { seen.append($0.grad!.scalars) }
        // w feeds two branches: the hook must fire once, after both contributions (3 + 2w).
        ((w * 3).sum() + (w * w).sum()).backward()
        XCTAssertEqual(seen, [[5, 7]])
        w.zeroGrad()
        (w * 2).sum().backward()
        XCTAssertEqual(seen, [[5, 7], [2, 2]])
    }
}

final class WhereTests: XCTestCase {
    /// A mask broadcast over a leading, a middle and a trailing axis picks the same elements as
    /// the index arithmetic spelled out.
    func testMaskBroadcastOverEveryKindOfAxis() {
        let mask = BoolTensor([true, false, false, true, true, false], shape: [2, 1, 3, 1])
        let values = (0..<(4 * 2 * 5 * 3 * 2)).map(Float.init)
        let x = Tensor<Float>(values, shape: [4, 2, 5, 3, 2])
        let filled = x.maskedFill(mask, -1).scalars
        for (flat, value) in values.enumerated() {
            let i1 = flat / 30 % 2, i3 = flat / 2 % 3  // the mask's two non-broadcast axes
            XCTAssertEqual(filled[flat], mask.values[i1 * 3 + i3] ? -1 : value, "element \(flat)")
        }
    }
}
