import FlashGrad
import FlashGradModels
import XCTest

/// The CUDA backend against the CPU: every op's forward and backward on the same inputs, in Double
/// (tolerance 1e-9 relative to the largest value: the kernels differ from the CPU only in the order
/// of a few additions and in libm) and in Float (1e-5), gradchecks in Double on the GPU, and a
/// training step of a small Transformer. Skipped where there is no usable GPU, with the reason.
final class CUDABackendTests: XCTestCase {
    static let gpu = Device.cuda(0)

    override func setUpWithError() throws { try skipUnlessAvailable(Self.gpu, "CUDA tests") }

    func testToRoundTripCarriesGradientsBack() {
        assertRoundTripCarriesGradientsBack(through: Self.gpu)
    }

    /// Runs `body` on CPU inputs and on copies on the GPU; the outputs, and the gradients of ⟨output, r⟩
    /// for one random r, must agree within `tolerance` × the largest magnitude.
    func assertSameOnGPU<T: TensorScalar>(_ name: String, _ inputs: [Tensor<T>], tolerance: T, scale: T? = nil,
                                          file: StaticString = #filePath, line: UInt = #line, _ body: ([Tensor<T>]) -> Tensor<T>) {
        let cpuInputs = inputs.map { Tensor<T>($0.scalars, shape: $0.shape, requiresGrad: true) }
        let gpuInputs = inputs.map { Tensor<T>($0.scalars, shape: $0.shape, device: Self.gpu, requiresGrad: true) }
        let cpuOutput = body(cpuInputs), gpuOutput = body(gpuInputs)
        XCTAssertEqual(gpuOutput.device, Self.gpu, name, file: file, line: line)
        compare(name + " forward", cpuOutput.scalars, gpuOutput.scalars, tolerance: tolerance, scale: scale, file: file, line: line)
        guard cpuOutput.requiresGrad else { return }
        let projection = Tensor<T>.normal(cpuOutput.shape, generator: RandomGenerator(seed: 17))
        (cpuOutput * projection).sum().backward()
        (gpuOutput * projection.to(Self.gpu)).sum().backward()
        for (index, (cpu, gpu)) in zip(cpuInputs, gpuInputs).enumerated() {
            XCTAssertEqual(gpu.grad?.device, Self.gpu, "\(name) gradient \(index) device", file: file, line: line)
            compare("\(name) gradient \(index)", cpu.grad?.scalars ?? [], gpu.grad?.scalars ?? [], tolerance: tolerance, file: file, line: line)
        }
    }

    /// |expected − actual| ≤ tolerance × scale, the scale being the largest |expected| (at least 1) unless given.
    func compare<T: TensorScalar>(_ name: String, _ expected: [T], _ actual: [T], tolerance: T, scale: T? = nil,
                                  file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(expected.count, actual.count, name, file: file, line: line)
        let scale = scale ?? Swift.max(expected.map { $0.isFinite ? Swift.abs($0) : 0 }.max() ?? 0, 1)
        var worst: T = 0
        for (e, a) in zip(expected, actual) {
            if e.isNaN || a.isNaN || e.isInfinite || a.isInfinite {
                XCTAssertTrue((e.isNaN && a.isNaN) || e == a, "\(name): \(e) against \(a)", file: file, line: line)
                continue
            }
            worst = Swift.max(worst, Swift.abs(e - a))
        }
        XCTAssertLessThanOrEqual(worst, tolerance * scale, "\(name): max |CPU − CUDA| \(worst) > \(tolerance) × \(scale)", file: file, line: line)
    }

    func random<T: TensorScalar>(_ shape: [Int], _ seed: UInt64, low: T = -1, high: T = 1) -> Tensor<T> {
        Tensor<T>.uniform(shape, low: low, high: high, generator: RandomGenerator(seed: seed))
    }

    func elementwiseAndReductions<T: TensorScalar>(_: T.Type, tolerance: T) {
        let x: Tensor<T> = random([3, 4, 5], 1), positive: Tensor<T> = random([3, 4, 5], 2, low: 0.5, high: 2)
        let unary: [(String, (Tensor<T>) -> Tensor<T>)] = [
            ("neg", { -$0 }), ("exp", { $0.exp() }), ("tanh", { $0.tanh() }), ("sigmoid", { $0.sigmoid() }), ("relu", { $0.relu() }),
            ("gelu", { $0.gelu() }), ("gelu tanh", { $0.gelu(approximate: true) }), ("silu", { $0.silu() }), ("abs", { $0.abs() }),
            ("clamp", { $0.clamp(min: -0.5, max: 0.3) }), ("affine", { $0 * 3 - 1 }), ("cube", { $0.pow(3) }),
        ]
        for (name, f) in unary { assertSameOnGPU(name, [x], tolerance: tolerance) { f($0[0]) } }
        let positiveUnary: [(String, (Tensor<T>) -> Tensor<T>)] = [
            ("log", { $0.log() }), ("sqrt", { $0.sqrt() }), ("rsqrt", { $0.rsqrt() }), ("pow 1.5", { $0.pow(1.5) }), ("reciprocal", { 1 / $0 }),
        ]
        for (name, f) in positiveUnary { assertSameOnGPU(name, [positive], tolerance: tolerance) { f($0[0]) } }
        let row: Tensor<T> = random([5], 3), column: Tensor<T> = random([4, 1], 4, low: 0.5, high: 2)
        for activation in Activation.allCases {
            assertSameOnGPU("bias + \(activation)", [x, row], tolerance: tolerance) { $0[0].biasedActivation($0[1], activation) }
        }
        assertSameOnGPU("add broadcast", [x, row], tolerance: tolerance) { $0[0] + $0[1] }
        assertSameOnGPU("sub broadcast", [x, column], tolerance: tolerance) { $0[0] - $0[1] }
        assertSameOnGPU("mul transposed", [x, x], tolerance: tolerance) { $0[0].transposed(0, 2) * $0[1].transposed(0, 2) }
        assertSameOnGPU("div broadcast", [x, column], tolerance: tolerance) { $0[0] / $0[1] }
        assertSameOnGPU("pow tensor", [positive, x], tolerance: tolerance) { $0[0].pow($0[1]) }
        for axes in [nil, [0], [1], [2], [0, 2]] as [[Int]?] {
            assertSameOnGPU("sum \(String(describing: axes))", [x], tolerance: tolerance) { $0[0].sum(axes: axes) }
            assertSameOnGPU("mean \(String(describing: axes))", [x], tolerance: tolerance) { $0[0].mean(axes: axes, keepDims: true) }
        }
        for axis in [0, 1, 2] {
            assertSameOnGPU("max \(axis)", [x], tolerance: tolerance) { $0[0].max(axis: axis) }
            assertSameOnGPU("min \(axis)", [x], tolerance: tolerance) { $0[0].min(axis: axis) }
        }
        assertSameOnGPU("variance", [x], tolerance: tolerance) { $0[0].variance(axes: [1]) }
        // A long sum's rounding grows with Σ|x| (the CPU adds SIMD lanes per chunk, the GPU a tree), so
        // it is measured against Σ|x|: 1e-7 of it in Float is about twice the unit roundoff.
        let big: Tensor<T> = random([300_000], 5)
        let absoluteSum = big.scalars.reduce(0) { $0 + Swift.abs($1) }
        assertSameOnGPU("sum of 300k", [big], tolerance: T.self == Float.self ? 1e-7 : 1e-15, scale: absoluteSum) { $0[0].sum() }
        assertSameOnGPU("views", [x], tolerance: tolerance) {
            Tensor.concatenate([$0[0].slice(axis: 1, 1..<3), $0[0].permute([0, 2, 1]).reshape([3, 5, 4]).transposed(1, 2)], axis: 1).contiguous()
        }
        let mask = BoolTensor((0..<20).map { $0 % 3 == 0 }, shape: [4, 5])
        assertSameOnGPU("where", [x, row], tolerance: tolerance) { Tensor.where(mask, $0[0], $0[1]) }
        assertSameOnGPU("maskedFill", [x], tolerance: tolerance) { $0[0].maskedFill(mask, -7) }
    }

    func testElementwiseAndReductionsMatchTheCPU() {
        elementwiseAndReductions(Double.self, tolerance: 1e-9)
        elementwiseAndReductions(Float.self, tolerance: 1e-5)
    }

    func rowOps<T: TensorScalar>(_: T.Type, tolerance: T) {
        let x: Tensor<T> = random([6, 33], 6), weight: Tensor<T> = random([33], 7), bias: Tensor<T> = random([33], 8)
        assertSameOnGPU("softmax", [x], tolerance: tolerance) { $0[0].softmax() }
        assertSameOnGPU("softmax axis 0", [x], tolerance: tolerance) { $0[0].softmax(axis: 0) }
        assertSameOnGPU("logSoftmax", [x], tolerance: tolerance) { $0[0].logSoftmax() }
        let wide: Tensor<T> = random([3, 1000], 9)
        assertSameOnGPU("softmax 1000 wide", [wide], tolerance: tolerance) { $0[0].softmax() }
        assertSameOnGPU("layerNorm", [x, weight, bias], tolerance: tolerance) { $0[0].layerNorm(weight: $0[1], bias: $0[2]) }
        assertSameOnGPU("rmsNorm", [x, weight], tolerance: tolerance) { $0[0].rmsNorm(weight: $0[1]) }
        assertSameOnGPU("layerNorm with a residual", [x, x.exp(), weight, bias], tolerance: tolerance) {
            let r = $0[0].layerNorm(residual: $0[1], weight: $0[2], bias: $0[3])
            return r.sum * 0.5 + r.normalized
        }
        assertSameOnGPU("layerNorm without parameters", [wide], tolerance: tolerance) { $0[0].layerNorm() }
        let table: Tensor<T> = random([10, 4], 10)
        let indices = IndexTensor([3, 1, 3, 9, 0, 3], shape: [2, 3])
        assertSameOnGPU("embedding with repeats", [table], tolerance: tolerance) { $0[0].embedding(indices) }
        let logits: Tensor<T> = random([2, 3, 7], 11, low: -3, high: 3)
        let targets = IndexTensor([1, 6, -100, 0, 3, 3], shape: [2, 3])
        assertSameOnGPU("crossEntropy", [logits], tolerance: tolerance) { $0[0].crossEntropy(targets: targets) }
        assertSameOnGPU("crossEntropy smoothed", [logits], tolerance: tolerance) { $0[0].crossEntropy(targets: targets, labelSmoothing: 0.1) }
        let packing = PackedSequences(lengths: [3, 1], paddedLength: 4)
        let rows: Tensor<T> = random([4, 5], 12)
        assertSameOnGPU("unpacked and packed", [rows], tolerance: tolerance) { $0[0].unpacked(packing).exp().packed(packing) }
    }

    /// NaN propagates and a fully masked row (all −∞) gives 0 (log: −∞) on the GPU as on the CPU.
    func testNaNAndMaskedRowsAsOnTheCPU() {
        let rows = Tensor<Float>([.nan, 0, 1, -.infinity, -.infinity, -.infinity, 0, 1, 2], shape: [3, 3])
        XCTAssertEqual(rows.to(Self.gpu).softmax().scalars.map(\.isNaN), rows.softmax().scalars.map(\.isNaN))
        XCTAssertEqual(Array(rows.to(Self.gpu).softmax().scalars[3..<6]), [0, 0, 0])
        XCTAssertEqual(Array(rows.to(Self.gpu).logSoftmax().scalars[3..<6]), [-.infinity, -.infinity, -.infinity])
        XCTAssertTrue(rows.to(Self.gpu).logSoftmax().scalars[0..<3].allSatisfy(\.isNaN))
        compare("softmax of a finite row", Array(rows.softmax().scalars[6..<9]), Array(rows.to(Self.gpu).softmax().scalars[6..<9]), tolerance: 1e-6)
        XCTAssertTrue(Tensor<Float>([.nan, -1], device: Self.gpu).relu().scalars[0].isNaN, "relu(NaN) is NaN")
        XCTAssertTrue(rows.to(Self.gpu).max(axis: 1).scalars[0].isNaN, "max keeps NaN")
    }

    func testRowOpsMatchTheCPU() {
        rowOps(Double.self, tolerance: 1e-9)
        rowOps(Float.self, tolerance: 1e-5)
    }

    func products<T: TensorScalar>(_: T.Type, tolerance: T) {
        let a: Tensor<T> = random([2, 3, 4, 5], 13), b: Tensor<T> = random([3, 5, 6], 14), c: Tensor<T> = random([6, 4], 15)
        assertSameOnGPU("batched broadcast matmul", [a, b], tolerance: tolerance) { $0[0].matmul($0[1]) }
        assertSameOnGPU("transposed operands", [a, c], tolerance: tolerance) { $0[0].transposed().matmul($0[1].transposed()) }
        let vector: Tensor<T> = random([4], 18)
        assertSameOnGPU("matrix-vector", [c, vector], tolerance: tolerance) { $0[0].matmul($0[1]) }
        let permuted: Tensor<T> = random([4, 2, 3, 5], 16)
        assertSameOnGPU("heads through strides", [permuted, b], tolerance: tolerance) { $0[0].permute([1, 2, 0, 3]).matmul($0[1].slice(axis: 0, 0..<1)) }
        let spd = Tensor<T>([4, 1, 0.5, 1, 3, 0.2, 0.5, 0.2, 2], shape: [3, 3])
        let rhs: Tensor<T> = random([3, 2], 17)
        assertSameOnGPU("solve (through the host)", [spd, rhs], tolerance: tolerance) { $0[0].solve($0[1]) }
        assertSameOnGPU("cholesky (through the host)", [spd], tolerance: tolerance) { $0[0].cholesky() }
    }

    func testProductsMatchTheCPU() {
        products(Double.self, tolerance: 1e-9)
        products(Float.self, tolerance: 1e-5)
    }

    func testGradcheckInDoubleOnTheGPU() {
        let generator = RandomGenerator(seed: 21)
        func input(_ shape: [Int]) -> Tensor<Double> { randomInput(shape, generator).to(Self.gpu).detach().requiringGrad() }
        assertGradcheck({ ($0[0].matmul($0[1]) + $0[2]).tanh() }, inputs: [input([3, 4]), input([4, 2]), input([2])])
        assertGradcheck({ $0[0].layerNorm(weight: $0[1], bias: $0[2]).softmax() }, inputs: [input([2, 5]), input([5]), input([5])])
        assertGradcheck({ $0[0].logSoftmax(axis: 0).gelu() * $0[0].sigmoid() }, inputs: [input([3, 4])])
        assertGradcheck({ $0[0].embedding(IndexTensor([2, 0, 2])).max(axis: 1) }, inputs: [input([3, 4])])
        assertGradcheck({ $0[0].crossEntropy(targets: IndexTensor([1, 0, 3]), labelSmoothing: 0.2) }, inputs: [input([3, 4])])
        let options = AttentionOptions<Double>(causal: true, keyPadding: .lengths([3, 2]), alibiSlopes: [0.5, 0.25])
        assertGradcheck({ attention(query: $0[0], key: $0[1], value: $0[2], options: options, implementation: NaiveAttention()) },
                        inputs: [input([2, 2, 3, 4]), input([2, 2, 3, 4]), input([2, 2, 3, 4])])
    }

    func testDropoutDrawsTheSameMaskOnBothDevices() {
        let x = Tensor<Float>.ones([10_000])
        let cpu = x.dropout(0.25, training: true, generator: RandomGenerator(seed: 99)).scalars
        let gpu = x.to(Self.gpu).dropout(0.25, training: true, generator: RandomGenerator(seed: 99)).scalars
        XCTAssertEqual(cpu, gpu)
    }

    func testTrainingStepsMatchTheCPUAndTheModuleMoves() {
        var configuration = Transformer<Float>.Configuration(vocabularySize: 8)
        configuration.dim = 16; configuration.heads = 2; configuration.encoderLayers = 1; configuration.decoderLayers = 1
        configuration.feedForward = 32; configuration.maximumLength = 10
        let source = IndexTensor([1, 2, 3, 4, 5, 3, 1, 4, 0, 0], shape: [2, 5])
        let targetInput = IndexTensor([7, 5, 4, 3, 2, 7, 4, 1, 3, 0], shape: [2, 5])
        let targetOutput = IndexTensor([5, 4, 3, 2, 1, 4, 1, 3, 6, -100], shape: [2, 5])
        var losses: [Device: [Float]] = [:], weights: [Device: [Float]] = [:]
        for device in [Device.cpu, Self.gpu] {
            let model = Transformer<Float>(configuration, implementation: NaiveAttention(), generator: RandomGenerator(seed: 3))
            model.to(device)
            XCTAssertTrue(model.parameters.allSatisfy { $0.device == device })
            let optimizer = Adam.adamW(model.namedParameters, learningRate: 1e-2)
            for _ in 0..<5 {
                let loss = model(source: source, sourceLengths: [5, 3], target: targetInput).crossEntropy(targets: targetOutput)
                model.zeroGrad()
                loss.backward()
                clipGradientNorm(model.parameters, maximumNorm: 1)
                optimizer.step()
                losses[device, default: []].append(loss.item)
            }
            weights[device] = model.parameters[0].scalars
        }
        compare("losses", losses[.cpu]!, losses[Self.gpu]!, tolerance: 1e-4)
        compare("first parameter after 5 steps", weights[.cpu]!, weights[Self.gpu]!, tolerance: 1e-4)
    }

    /// The optimizers and clipping run one launch over all parameters, a block per 65,536-element
    /// chunk: sizes around the chunk and an empty parameter, against the CPU, step after step.
    /// Clipping is checked on its own: its norm adds in another order on each device, and Adam with
    /// L2 decay amplifies that rounding where the decay nearly cancels the gradient.
    func testFusedUpdatesOverManyParametersMatchTheCPU() {
        let sizes = [1, 0, 65_536, 65_537, 3, 150_000]
        func makeOptimizer(_ kind: String, _ parameters: [(String, Tensor<Float>)]) -> any Optimizer {
            switch kind {
            case "AdamW": return Adam.adamW(parameters, learningRate: 1e-2)
            case "Adam": return Adam(parameters, learningRate: 1e-2, weightDecay: 0.1)
            case "SGD Nesterov": return SGD(parameters, learningRate: 0.1, momentum: 0.9, nesterov: true, weightDecay: 0.01)
            default: return SGD(parameters, learningRate: 0.1)
            }
        }
        func gradients(step: Int, on device: Device) -> [Tensor<Float>] {
            sizes.enumerated().map { random([$0.element], UInt64(100 * step + $0.offset), low: Float(-2), high: 2).to(device) }
        }
        for kind in ["AdamW", "Adam", "SGD Nesterov", "SGD"] {
            var results: [Device: (parameters: [[Float]], clipped: [[Float]], norms: [Float])] = [:]
            for device in [Device.cpu, Self.gpu] {
                let parameters = sizes.enumerated().map { index, size in
                    random([size], UInt64(index) + 40, low: Float(-1), high: 1).to(device).detach().requiringGrad()
                }
                let optimizer = makeOptimizer(kind, parameters.enumerated().map { ("p\($0.offset)", $0.element) })
                var norms: [Float] = [], clipped: [[Float]] = []
                for step in 0..<3 {
                    for (parameter, gradient) in zip(parameters, gradients(step: step, on: device)) { parameter.grad = gradient }
                    norms.append(clipGradientNorm(parameters, maximumNorm: 10).item)
                    clipped += parameters.map { $0.grad!.scalars }
                    for (parameter, gradient) in zip(parameters, gradients(step: step, on: device)) { parameter.grad = gradient }
                    optimizer.step()
                }
                results[device] = (parameters.map(\.scalars), clipped, norms)
            }
            let (cpu, gpu) = (results[.cpu]!, results[Self.gpu]!)
            compare("\(kind): gradient norms", cpu.norms, gpu.norms, tolerance: 1e-5, scale: cpu.norms.max()!)
            for (index, (expected, actual)) in zip(cpu.clipped, gpu.clipped).enumerated() {
                compare("\(kind): clipped gradient \(index % sizes.count), step \(index / sizes.count)", expected, actual, tolerance: 1e-5)
            }
            for index in sizes.indices {
                compare("\(kind): parameter \(index) (\(sizes[index]) elements)", cpu.parameters[index], gpu.parameters[index], tolerance: 1e-5)
            }
        }
    }

    /// `reverse --device cuda` end to end, small: training with flash attention on the device,
    /// evaluation and a checkpoint.
    func testReverseTrainsOnTheDevice() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("flashgrad-reverse-cuda-\(ProcessInfo.processInfo.processIdentifier)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let outcome = try runExample("reverse", ["--device", "cuda", "--dim", "16", "--heads", "2", "--feed-forward", "16", "--encoder-layers", "1",
                                                 "--decoder-layers", "1", "--batch-size", "4", "--steps", "3", "--eval-size", "4",
                                                 "--eval-every", "0", "--show", "1", "--output", folder.path])
        XCTAssertEqual(outcome.status, 0, outcome.output)
        XCTAssertTrue(outcome.output.contains("on cuda:0 (\(Self.gpu.name)), attention flash"), outcome.output)
        XCTAssertTrue(outcome.output.contains("exact_match="), outcome.output)
        XCTAssertTrue(FileManager.default.fileExists(atPath: folder.appendingPathComponent("checkpoint.safetensors").path))
    }

    func testCheckpointsSaveFromAndLoadOntoTheGPU() throws {
        let model = Linear<Float>(3, 2).to(Self.gpu)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("cuda-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try Checkpoint.save(model: model, to: url)
        let cpuCopy = Linear<Float>(3, 2, generator: RandomGenerator(seed: 77))
        try Checkpoint.load(into: cpuCopy, from: url)
        XCTAssertEqual(cpuCopy.weight.scalars, model.weight.scalars)
        let gpuCopy = Linear<Float>(3, 2, generator: RandomGenerator(seed: 78)).to(Self.gpu)
        try Checkpoint.load(into: gpuCopy, from: url)
        XCTAssertEqual(gpuCopy.weight.device, Self.gpu)
        XCTAssertEqual(gpuCopy.bias?.scalars, model.bias?.scalars)
    }

    /// NCCL through the one GPU lent: a communicator of one rank (two processes cannot share a GPU
    /// in one NCCL communicator), so sums and broadcasts leave values as they are.
    func testNCCLCommunicatorOfOneRank() throws {
        let communicator = try NCCLCommunicator(uniqueID: try NCCLCommunicator.uniqueID(), rank: 0, worldSize: 1, device: Self.gpu)
        let a = Tensor<Float>([1, -2, 3], device: Self.gpu), b = Tensor<Double>([0.5, 4], device: Self.gpu)
        communicator.allReduce([a], average: false)
        communicator.allReduce([b], average: true)
        communicator.broadcast([a], from: 0)
        XCTAssertEqual(a.scalars, [1, -2, 3])
        XCTAssertEqual(b.scalars, [0.5, 4])
        // Several tensors go through one flat buffer and back.
        let c = Tensor<Float>([7], device: Self.gpu), empty = Tensor<Float>.zeros([0], device: Self.gpu)
        communicator.allReduce([a, empty, c], average: true)
        communicator.broadcast([c, a], from: 0)
        XCTAssertEqual(a.scalars, [1, -2, 3])
        XCTAssertEqual(c.scalars, [7])
    }

    func testAllocatorReusesFreedBlocksAndCounts() {
        let before = Self.gpu.memory
        do {
            let a = Tensor<Float>.zeros([1 << 20], device: Self.gpu)
            XCTAssertGreaterThanOrEqual(Self.gpu.memory.liveBytes, before.liveBytes + 4 << 20)
            _ = a.sum().item
        }
        let cached = Self.gpu.memory.cachedBytes
        XCTAssertGreaterThanOrEqual(cached, 4 << 20, "a freed block stays cached")
        let reusing = Tensor<Float>.zeros([1 << 20], device: Self.gpu)
        XCTAssertLessThan(Self.gpu.memory.cachedBytes, cached, "the next tensor of that size reuses it")
        XCTAssertEqual(reusing.count, 1 << 20)
    }
}
