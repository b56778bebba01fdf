import FlashGrad
import FlashGradDistributed
import FlashGradModels
import XCTest

/// Run under `mpirun -np 2` (scripts/test.sh does); in a plain `swift test` they are skipped with the
/// launcher's reason. Every rank runs every test, and every collective is reached by every rank.
/// With `FLASHGRAD_TEST_DEVICE=cuda` each rank works on its local rank's GPU, so the collectives
/// go through NCCL (on a machine with several GPUs, and on the CUDA emulator in scripts/test.sh).
final class DistributedTests: XCTestCase {
    nonisolated(unsafe) static var reasonGiven = false

    /// Where the tensors of these tests live: the CPU (MPI), or this rank's GPU (NCCL).
    func device(_ group: ProcessGroup) throws -> Device {
        guard ProcessInfo.processInfo.environment["FLASHGRAD_TEST_DEVICE"] == "cuda" else { return .cpu }
        let device = Device.cuda(group.localRank)
        try device.checkAvailable()
        return device
    }

    override func invokeTest() {
        // Every tensor a test makes goes to the tested device.
        guard let group = try? ProcessGroup.fromEnvironment(), let device = try? device(group) else { return super.invokeTest() }
        withDevice(device) { super.invokeTest() }
    }

    func group() throws -> ProcessGroup {
        do {
            let group = try ProcessGroup.fromEnvironment()
            guard group.worldSize >= 2 else { throw XCTSkip("distributed tests need 2 or more ranks, got \(group.worldSize)") }
            _ = try device(group)  // asked for CUDA without a usable GPU: an error, not a silent run on the CPU
            return group
        } catch let error as DistributedError {
            defer { Self.reasonGiven = true }
            throw XCTSkip(Self.reasonGiven ? "not under mpirun (reason above)" : "distributed tests skipped: \(error)")
        }
    }

    func testCollectives() throws {
        let group = try group()
        let r = Float(group.rank), n = Float(group.worldSize)
        let a = Tensor<Float>([r, 1], shape: [2]), b = Tensor<Float>([2 * r], shape: [1, 1])
        group.allReduce([a, b])
        let rankSum = n * (n - 1) / 2
        XCTAssertEqual(a.scalars, [rankSum, n])
        XCTAssertEqual(b.scalars, [2 * rankSum])
        let c = Tensor<Double>([Double(group.rank) * 4])
        group.allReduce([c], .average)
        XCTAssertEqual(c.item, 4 * Double(rankSum) / Double(n), accuracy: 1e-12)
        let d = Tensor<Float>([r + 10, r])
        group.broadcast([d], from: group.worldSize - 1)
        XCTAssertEqual(d.scalars, [n - 1 + 10, n - 1])
        let gathered = group.allGather(Tensor<Float>([r, -r]))
        XCTAssertEqual(gathered.shape, [group.worldSize, 2])
        XCTAssertEqual(gathered.scalars, (0..<group.worldSize).flatMap { [Float($0), -Float($0)] })
        group.barrier()
    }

    func tinyGPT(seed: UInt64) -> GPT<Float> {
        var c = GPT<Float>.Configuration(vocabularySize: 9)
        c.dim = 16; c.heads = 2; c.layers = 2; c.feedForward = 32; c.maximumLength = 8
        // Flash where the device has its kernels; the reduction under test is the same either way.
        let flash = FlashAttention()
        return GPT(c, implementation: flash.supports(device: .default) ? flash : NaiveAttention(), generator: RandomGenerator(seed: seed))
    }

    /// Shard `rank` of step `step`'s global batch: `perRank` sequences of 8 tokens and their next tokens.
    func shard(step: Int, rank: Int, perRank: Int) -> (input: [Int], target: [Int]) {
        let generator = RandomGenerator(seed: shardSeed(7, step: step, rank: rank))
        let tokens = (0..<(perRank * 9)).map { _ in Int(generator.next() % 9) }
        var input: [Int] = [], target: [Int] = []
        for s in 0..<perRank {
            input += tokens[(s * 9)..<(s * 9 + 8)]
            target += tokens[(s * 9 + 1)..<(s * 9 + 9)]
        }
        return (input, target)
    }

    /// 20 steps of SGD (whose update scales with the gradient, unlike Adam's, so a sum in place of
    /// the average shows) on N ranks × 2 sequences against one process on all 2N.
    func trainAgainstOneProcess(_ group: ProcessGroup, reduction: ReduceOperation)
        -> (lossDifference: Float, parameterDifference: Float, ranksBitwiseEqual: Bool) {
        let perRank = 2, steps = 20
        // Rank 1 starts from other weights: DataParallel must hand everyone rank 0's.
        // Buckets of 4 KiB: the tiny model's gradients go in many all-reduces, most started during the backward.
        let distributed = DataParallel(tinyGPT(seed: group.rank == 0 ? 1 : 99), group: group, reduction: reduction, bucketBytes: 4096)
        XCTAssertGreaterThan(distributed.bucketCount, 4)
        let reference = tinyGPT(seed: 1)
        let optimizer = SGD(distributed.module.namedParameters, learningRate: 0.1)
        let referenceOptimizer = SGD(reference.namedParameters, learningRate: 0.1)
        var lossDifference: Float = 0
        for step in 0..<steps {
            let mine = shard(step: step, rank: group.rank, perRank: perRank)
            let loss = (distributed.module as! GPT<Float>)(IndexTensor(mine.input, shape: [perRank, 8]))
                .crossEntropy(targets: IndexTensor(mine.target, shape: [perRank, 8]))
            distributed.module.zeroGrad()
            loss.backward()
            XCTAssertEqual(distributed.bucketsStarted, distributed.bucketCount, "every bucket starts during the backward")
            distributed.synchronizeGradients()
            optimizer.step()
            let globalLoss = loss.detach().copy()
            group.allReduce([globalLoss], .average)

            let shards = (0..<group.worldSize).map { shard(step: step, rank: $0, perRank: perRank) }
            let all = group.worldSize * perRank
            let referenceLoss = reference(IndexTensor(shards.flatMap(\.input), shape: [all, 8]))
                .crossEntropy(targets: IndexTensor(shards.flatMap(\.target), shape: [all, 8]))
            reference.zeroGrad()
            referenceLoss.backward()
            referenceOptimizer.step()
            lossDifference = Swift.max(lossDifference, Swift.abs(globalLoss.item - referenceLoss.item))
        }
        let parameterDifference = zip(distributed.module.parameters, reference.parameters)
            .map { pair in zip(pair.0.scalars, pair.1.scalars).map { Swift.abs($0 - $1) }.max() ?? 0 }.max() ?? 0
        // Every rank applied the same averaged gradients: their weights must agree to the bit.
        let mine = Tensor<Float>(distributed.module.parameters.flatMap(\.scalars))
        let everyones = group.allGather(mine).scalars
        let ranksBitwiseEqual = (0..<group.worldSize).allSatisfy { Array(everyones[($0 * mine.count)..<(($0 + 1) * mine.count)]) == mine.scalars }
        return (lossDifference, parameterDifference, ranksBitwiseEqual)
    }

    /// Float rounding differs between averaging per-rank gradients and one full-batch gradient, by
    /// a few units of 1e-7 per step; 20 steps stay far below 1e-4.
    static let tolerance: Float = 1e-4

    func testRanksReproduceOneProcessWithTheWholeBatch() throws {
        let group = try group()
        let (loss, parameters, ranksAgree) = trainAgainstOneProcess(group, reduction: .average)
        XCTAssertTrue(ranksAgree, "the ranks' weights differ after 20 steps")
        if group.rank == 0 { print("DistributedTests on \(Device.default): \(group.worldSize) ranks against one process, 20 steps: loss difference \(loss), parameter difference \(parameters)") }
        XCTAssertLessThan(loss, Self.tolerance, "largest loss difference over 20 steps")
        XCTAssertLessThan(parameters, Self.tolerance, "largest parameter difference after 20 steps")
    }

    func testASumInPlaceOfTheAverageIsCaught() throws {
        let group = try group()
        let (_, parameters, _) = trainAgainstOneProcess(group, reduction: .sum)
        if group.rank == 0 { print("DistributedTests: with a sum in place of the average: parameter difference \(parameters)") }
        XCTAssertGreaterThan(parameters, 100 * Self.tolerance, "gradients summed over \(group.worldSize) ranks must not pass for averaged")
    }
}
