import ArgumentParser
import ExampleSupport
import FlashGrad
import FlashGradModels
import Foundation

/// Where the time of a small model's training step goes on a device: the host's time to issue
/// the step's ops (Swift, the backend, the driver's launch calls) against the time it then waits
/// for the device to finish them. A step bound by the host waits little; one bound by the device
/// waits long.
@main
struct LaunchBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "launch-bench", abstract: "Host issue time against device time, per op and per training step of `reverse`'s model.")

    @Option(help: "Device: cpu, cuda or cuda:N.") var device = "cuda"
    @Option(help: "Training steps to time (after 20 of warm-up).") var steps = 100
    @Flag(help: "Every sequence 32 digits long, so every step has the same shapes.") var fixedLength = false
    @Option(help: "Attention implementation: \(AttentionRegistry.names.joined(separator: ", ")).") var attention = "flash"

    func validate() throws {
        try requireAtLeast(1, ("--steps", steps))
        try validateAttentionName(attention)
    }

    func run() throws {
        let device = try parseDevice(self.device)
        Device.default = device
        print("launch-bench on \(device): \(device.name)")
        // One op on 16 elements, issued 5000 times: the fixed cost of an op.
        let a = Tensor<Float>.ones([16]), b = Tensor<Float>.ones([16])
        _ = (a + b).sum().item
        var start = Date()
        var sum = a
        for _ in 0..<5000 { sum = sum + b }
        let issue = Date().timeIntervalSince(start)
        _ = sum.sum().item
        let total = Date().timeIntervalSince(start)
        print(String(format: "add of 16 Floats on %@: %.2f µs to issue, %.2f µs per op with the device's work", "\(device)",
                     issue / 5000 * 1e6, total / 5000 * 1e6))

        // TF32 against exact FP32 on a 512³ product, both against the CPU.
        let left = Tensor<Float>.normal([512, 512], generator: RandomGenerator(seed: 3), device: .cpu)
        let right = Tensor<Float>.normal([512, 512], generator: RandomGenerator(seed: 4), device: .cpu)
        let reference = left.matmul(right).scalars
        for precision in [Float32MatmulPrecision.highest, .high] {
            Float32MatmulPrecision.current = precision
            let product = left.to(device).matmul(right.to(device)).scalars
            let error = zip(reference, product).map { Swift.abs($0 - $1) }.max()! / reference.map(Swift.abs).max()!
            print(String(format: "512³ matmul on %@ with precision %@: max |difference from the CPU| / max |value| = %.2e",
                         "\(device)", "\(precision)", error))
        }
        Float32MatmulPrecision.current = .highest

        var configuration = Transformer<Float>.Configuration(vocabularySize: 13)
        configuration.maximumLength = 34
        let model = Transformer<Float>(configuration, implementation: try AttentionRegistry.implementation(named: attention),
                                       generator: RandomGenerator(seed: 1))
        let optimizer = Adam.adamW(model.namedParameters, learningRate: 1e-3)
        let generator = RandomGenerator(seed: 2)
        var issueSeconds = 0.0, waitSeconds = 0.0, launches = 0, allocations = 0
        for step in 0..<(steps + 20) {
            // A batch like reverse's: 64 sequences of 8…32 digits, packed; targets reversed between BOS and EOS.
            let lengths = (0..<64).map { _ in fixedLength ? 32 : 8 + Int(generator.next() % 25) }
            let digits = lengths.map { length in (0..<length).map { _ in Int(generator.next() % 10) } }
            let sourceLength = lengths.max()!, targetLength = sourceLength + 1
            let source = IndexTensor(digits.flatMap { $0 + Array(repeating: 10, count: sourceLength - $0.count) }, shape: [64, sourceLength])
            let targetInput = IndexTensor(digits.flatMap { [11] + $0.reversed() + Array(repeating: 10, count: targetLength - 1 - $0.count) },
                                          shape: [64, targetLength])
            let targetOutput = IndexTensor(digits.flatMap { $0.reversed() + [12] }, shape: [lengths.reduce(0, +) + 64])
            let before = device.launchedKernels, allocationsBefore = device.memory.systemAllocations
            start = Date()
            let logits = model.packedLogits(source: source, sourceLengths: lengths, target: targetInput, targetLengths: lengths.map { $0 + 1 })
            let loss = logits.crossEntropy(targets: targetOutput)
            model.zeroGrad()
            loss.backward()
            clipGradientNorm(model.parameters, maximumNorm: 1)
            optimizer.step()
            let issued = Date()
            _ = loss.item
            if step >= 20 {
                issueSeconds += issued.timeIntervalSince(start)
                waitSeconds += Date().timeIntervalSince(issued)
                launches += device.launchedKernels - before
                allocations += device.memory.systemAllocations - allocationsBefore
            }
        }
        print(String(format: "training step of reverse's model on %@: %.2f ms to issue, then %.2f ms waiting for the device; "
                     + "%d kernel launches, %.1f allocations missing the cache", "\(device)", issueSeconds / Double(steps) * 1e3,
                     waitSeconds / Double(steps) * 1e3, launches / steps, Double(allocations) / Double(steps)))
    }
}
