import ArgumentParser
import FlashGrad
import FlashGradDistributed
import FlashGradModels
import Foundation
import ExampleSupport

/// Tokens of the reversal task: digits 0…9, then padding and the sequence markers.
enum Token {
    static let padding = 10, begin = 11, end = 12, vocabularySize = 13
    static let maximumSourceLength = 32, minimumSourceLength = 8
    /// BOS + 32 digits + EOS.
    static let maximumTargetLength = maximumSourceLength + 2
}

/// A batch of the reversal task: random digits in, the same digits reversed out.
struct ReversalBatch {
    let source: IndexTensor         // [B, 32], padded
    let sourceLengths: [Int]
    let targetInput: IndexTensor    // [B, 33]: BOS + reversed digits + EOS, minus the last position
    let targetOutput: IndexTensor   // [B, 33]: the same shifted left by one
    let digits: [[Int]]

    init(size: Int, generator: RandomGenerator) {
        var source: [Int] = [], lengths: [Int] = [], input: [Int] = [], output: [Int] = [], digits: [[Int]] = []
        let span = UInt64(Token.maximumSourceLength - Token.minimumSourceLength + 1)
        for _ in 0..<size {
            let length = Token.minimumSourceLength + Int(generator.next() % span)
            let row = (0..<length).map { _ in Int(generator.next() % 10) }
            digits.append(row)
            lengths.append(length)
            source += row + [Int](repeating: Token.padding, count: Token.maximumSourceLength - length)
            let target = [Token.begin] + row.reversed() + [Token.end]
            let padded = target + [Int](repeating: Token.padding, count: Token.maximumTargetLength - target.count)
            input += padded.dropLast()
            output += padded.dropFirst()
        }
        self.source = IndexTensor(source, shape: [size, Token.maximumSourceLength])
        sourceLengths = lengths
        targetInput = IndexTensor(input, shape: [size, Token.maximumTargetLength - 1])
        targetOutput = IndexTensor(output, shape: [size, Token.maximumTargetLength - 1])
        self.digits = digits
    }

    /// Target positions that count for the loss: the digits and EOS.
    var targetLengths: [Int] { digits.map { $0.count + 1 } }
    var targetTokenCount: Int { targetLengths.reduce(0, +) }
}

@main
struct Reverse: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reverse",
        abstract: "Train an encoder-decoder Transformer to reverse digit sequences (FlashGrad's main example).",
        discussion: """
            Sources are random digits of length 8…32; targets are the digits reversed, between BOS and EOS.
            Prints a progress line, writes metrics.csv, training.svg and checkpoint.safetensors to --output,
            and ends with a line exact_match=<fraction of 1000 held-out sequences reversed exactly>.
            """)

    @Option(help: "Attention implementation: \(AttentionRegistry.names.joined(separator: ", ")).") var attention = "flash"
    @Option(help: "Training steps.") var steps = 3000
    @Option(help: "Sequences per batch.") var batchSize = 64
    @Option(help: "Peak learning rate (AdamW).") var learningRate = 1e-3
    @Option(help: "Linear warm-up steps before the cosine decay.") var warmup = 100
    @Option(help: "Gradient clipping: maximum global norm.") var clip = 1.0
    @Option(help: "Model width.") var dim = 128
    @Option(help: "Attention heads.") var heads = 4
    @Option(help: "Encoder layers.") var encoderLayers = 2
    @Option(help: "Decoder layers.") var decoderLayers = 2
    @Option(help: "Feed-forward width.") var feedForward = 512
    @Option(help: "Feed-forward activation: relu or gelu (relu matches PyTorch's nn.Transformer default).") var activation = "relu"
    @Option(help: "Norm placement: pre or post.") var norm = "pre"
    @Option(help: "Positions: learned or sinusoidal.") var positions = "learned"
    @Option(help: "Dropout probability.") var dropout = 0.0
    @Option(help: "Random seed (model initialisation and data).") var seed: UInt64 = 0
    @Option(help: "Evaluate held-out exact match every this many steps (0: only at the end).") var evalEvery = 500
    @Option(help: "Held-out sequences for evaluation.") var evalSize = 1000
    @Option(help: "Save a checkpoint every this many steps (0: only at the end).") var checkpointEvery = 500
    @Option(help: "Folder for metrics, plot and checkpoint.") var output = "runs/reverse"
    @Option(help: "Resume from this checkpoint file.") var resume: String?
    @Option(help: "Stop (with a checkpoint) after this many steps of the schedule, to continue later with --resume.")
    var stopAfter: Int?
    @Option(help: "Threads for FlashGrad and OpenBLAS.") var threads = ProcessInfo.processInfo.activeProcessorCount
    @Option(help: "Device to train on: cpu, cuda or cuda:N.") var device = "cpu"
    @Option(help: "Examples to show at the end.") var show = 5
    @Flag(help: "Data-parallel over the processes of `mpirun -np N` (MPI): --batch-size is per process.") var distributed = false
    @Option(help: "With --distributed: the last rank fails on purpose at this step (to check that the others stop).")
    var failAtStep: Int?
    @Option(help: "Without --distributed: draw each step's batch as this many shards of --batch-size and average their losses, as that many ranks of --distributed would (to check one against the other).")
    var shards = 1

    func validate() throws {
        try validateAttentionName(attention)
        guard Activation(rawValue: activation) != nil else { throw ValidationError("--activation must be relu or gelu, got '\(activation)'") }
        guard NormPlacement(rawValue: norm) != nil else { throw ValidationError("--norm must be pre or post, got '\(norm)'") }
        guard ["learned", "sinusoidal"].contains(positions) else { throw ValidationError("--positions must be learned or sinusoidal, got '\(positions)'") }
        try requireAtLeast(1, ("--steps", steps), ("--batch-size", batchSize), ("--eval-size", evalSize), ("--threads", threads),
                           ("--dim", dim), ("--heads", heads), ("--feed-forward", feedForward), ("--decoder-layers", decoderLayers))
        try requireAtLeast(0, ("--encoder-layers", encoderLayers), ("--warmup", warmup), ("--eval-every", evalEvery),
                           ("--checkpoint-every", checkpointEvery), ("--show", show))
        if let stopAfter { try requireAtLeast(1, ("--stop-after", stopAfter)) }
        if let failAtStep { try requireAtLeast(0, ("--fail-at-step", failAtStep)) }
        try requireAtLeast(1, ("--shards", shards))
        if distributed && shards > 1 { throw ValidationError("--shards emulates ranks in one process; with --distributed each rank is one shard") }
        try requirePositiveAndFinite(("--learning-rate", learningRate), ("--clip", clip))
        guard dropout >= 0 && dropout < 1 else { throw ValidationError("--dropout must be in [0, 1), got \(dropout)") }
        guard dim % heads == 0 else { throw ValidationError("--dim \(dim) must be divisible by --heads \(heads)") }
        if let resume, !FileManager.default.fileExists(atPath: resume) { throw ValidationError("--resume: no such file '\(resume)'") }
    }

    func run() throws {
        Parallel.threadCount = threads
        let group = distributed ? try ProcessGroup.fromEnvironment() : nil
        // Distributed on GPUs: each process takes the GPU of its local rank (NCCL between them).
        var device = try parseDevice(self.device)
        if let group, case .cuda = device {
            device = .cuda(group.localRank)
            try device.checkAvailable()
        }
        // Everything the run creates (parameters, optimizer state, batches) lives there.
        Device.default = device
        var implementation = try AttentionRegistry.implementation(named: attention)
        if !implementation.supports(device: device) {
            print("reverse: attention '\(implementation.name)' has no kernels for \(device) yet; using 'naive' there")
            implementation = NaiveAttention()
        }
        var configuration = Transformer<Float>.Configuration(vocabularySize: Token.vocabularySize)
        configuration.dim = dim; configuration.heads = heads; configuration.encoderLayers = encoderLayers
        configuration.decoderLayers = decoderLayers; configuration.feedForward = feedForward
        configuration.activation = Activation(rawValue: activation)!
        configuration.normPlacement = NormPlacement(rawValue: norm)!; configuration.learnedPositions = positions == "learned"
        configuration.dropout = Float(dropout); configuration.maximumLength = Token.maximumTargetLength
        let modelGenerator = RandomGenerator(seed: seed)
        let model = Transformer<Float>(configuration, implementation: implementation, generator: modelGenerator)
        // Distributed: every rank starts from rank 0's weights and averages gradients after each backward.
        let parallel = group.map { DataParallel(model, group: $0) }
        let isMainRank = (group?.rank ?? 0) == 0
        let optimizer = Adam.adamW(model.namedParameters, learningRate: Float(learningRate))
        let schedule = WarmupCosineSchedule(peak: learningRate, warmupSteps: warmup, totalSteps: steps)
        var dataGenerator = RandomGenerator(seed: seed &+ 1)
        let heldOut = ReversalBatch(size: evalSize, generator: RandomGenerator(seed: 12_345))

        let folder = URL(fileURLWithPath: output)
        do { try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true) } catch {
            throw ValidationError("--output: cannot create the folder '\(output)': \((error as NSError).localizedFailureReason ?? error.localizedDescription)")
        }
        guard FileManager.default.isWritableFile(atPath: folder.path) else { throw ValidationError("--output: the folder '\(output)' is not writable") }
        let checkpointURL = folder.appendingPathComponent("checkpoint.safetensors")
        // Throughput counts training time only (not evaluation or checkpoints), as the PyTorch reference does.
        var startStep = 0, tokens = 0, trainingSeconds = 0.0
        if let resume {
            let metadata = try Checkpoint.load(into: model, optimizer: optimizer, from: URL(fileURLWithPath: resume))
            guard let step = metadata["step"].flatMap(Int.init), let dataState = metadata["data_generator"].flatMap(UInt64.init),
                  let modelState = metadata["model_generator"].flatMap(UInt64.init) else {
                throw ValidationError("--resume: '\(resume)' has no training metadata (step, data_generator, model_generator)")
            }
            // The checkpoint's model must be the one asked for (shapes alone do not show --heads).
            let differences = modelDescription.keys.sorted().compactMap { key -> String? in
                guard let saved = metadata[key], saved != modelDescription[key] else { return nil }
                return "--\(key) is \(modelDescription[key]!) here, \(saved) in the checkpoint"
            }
            guard differences.isEmpty else { throw ValidationError("--resume: '\(resume)' holds another model: " + differences.joined(separator: "; ")) }
            guard step <= steps else { throw ValidationError("--resume: '\(resume)' is at step \(step), past --steps \(steps)") }
            startStep = step
            dataGenerator = RandomGenerator(seed: dataState)
            modelGenerator.reseed(modelState)
            tokens = metadata["tokens"].flatMap(Int.init) ?? 0
            trainingSeconds = metadata["training_seconds"].flatMap(Double.init) ?? 0
            print("resumed from \(resume) at step \(startStep)")
        }
        let ranks = group.map { " × \($0.worldSize) ranks" } ?? ""
        if isMainRank {
            print("reverse: \(model.parameterCount) parameters on \(device) (\(device.name)), attention \(implementation.name), "
                  + "\(steps) steps of \(batchSize)\(ranks), \(threads) threads")
        }
        // Only rank 0 reports, evaluates and writes files.
        let metrics = isMainRank ? try MetricsLog(csvURL: folder.appendingPathComponent("metrics.csv"), resumeStep: resume == nil ? nil : startStep) : nil
        let progress = ProgressReporter(totalSteps: steps, startStep: startStep)

        func saveCheckpoint(step: Int) throws {
            try Checkpoint.save(model: model, optimizer: optimizer, metadata: [
                "step": "\(step)", "data_generator": "\(dataGenerator.state)", "model_generator": "\(modelGenerator.state)",
                "tokens": "\(tokens)", "training_seconds": "\(trainingSeconds)", "attention": implementation.name,
            ].merging(modelDescription) { $1 }, to: checkpointURL)
        }

        model.train()
        let lastStep = Swift.min(steps, stopAfter ?? steps)
        var trainingLaunches = 0, synchronizeSeconds = 0.0, waitSeconds = 0.0
        for step in startStep..<lastStep {
            let stepStart = DispatchTime.now().uptimeNanoseconds, launchesBefore = device.launchedKernels
            // Distributed: this rank's shard of the step's global batch, a function of (seed, step, rank);
            // with --shards, every shard of it in one process.
            let shardIndices = group.map { [$0.rank] } ?? (shards > 1 ? Array(0..<shards) : [])
            let batches = shardIndices.isEmpty ? [ReversalBatch(size: batchSize, generator: dataGenerator)]
                : shardIndices.map { ReversalBatch(size: batchSize, generator: RandomGenerator(seed: shardSeed(seed, step: step, rank: $0))) }
            if let group, let failAtStep, step == failAtStep, group.rank == group.worldSize - 1 {
                group.abort("--fail-at-step \(step): failing on purpose")
            }
            optimizer.learningRate = Float(schedule.learningRate(step: step))
            // Only real positions go through the model (packed rows): the same loss as the padded batch with
            // padding ignored, without computing the padding. Shards: the mean of their means, as the
            // average of the ranks' gradients is.
            let losses = batches.map { batch in
                model.packedLogits(source: batch.source, sourceLengths: batch.sourceLengths, target: batch.targetInput,
                                   targetLengths: batch.targetLengths)
                    .crossEntropy(targets: IndexTensor(batch.targetOutput.values.filter { $0 != Token.padding }))
            }
            let loss = losses.count == 1 ? losses[0] : losses.dropFirst().reduce(losses[0], +) / Float(losses.count)
            model.zeroGrad()
            loss.backward()
            if let parallel {
                // Timed apart: waiting for the slowest rank (shards differ in length) and the all-reduce itself.
                let waitStart = DispatchTime.now().uptimeNanoseconds
                parallel.group.barrier()
                let reduceStart = DispatchTime.now().uptimeNanoseconds
                parallel.synchronizeGradients()
                waitSeconds += Double(reduceStart - waitStart) / 1e9
                synchronizeSeconds += Double(DispatchTime.now().uptimeNanoseconds - reduceStart) / 1e9
            }
            clipGradientNorm(model.parameters, maximumNorm: Float(clip))
            optimizer.step()
            trainingLaunches += device.launchedKernels - launchesBefore
            // Distributed: the tokens and the mean loss of every rank (one small all-reduce), so that the
            // throughput and the logged loss are the run's (what one process with --shards logs).
            let stepTokens = batches.reduce(0) { $0 + $1.targetTokenCount }
            var reportedLoss = loss
            if let group {
                let counts = Tensor<Double>(scalar: Double(stepTokens), device: .cpu)
                group.allReduce([counts])
                tokens += Int(counts.item)
                // Averaged where it lives (NCCL on a GPU, issued on the stream), so that only rank 0,
                // which reads it, waits for the device.
                reportedLoss = loss.detach().copy()
                group.allReduce([reportedLoss], .average)
            } else {
                tokens += stepTokens
            }
            trainingSeconds += Double(DispatchTime.now().uptimeNanoseconds - stepStart) / 1e9
            guard isMainRank else { continue }
            // Read after the step is issued, so that a GPU is never waited for mid-step.
            let lossValue = reportedLoss.item
            guard lossValue.isFinite else {
                throw ValidationError("the loss became \(lossValue) at step \(step + 1) (learning rate \(optimizer.learningRate)): "
                                      + "training diverged; lower --learning-rate or --clip")
            }
            progress.update(step: step + 1, loss: Double(lossValue), tokensPerSecond: Double(tokens) / trainingSeconds)
            let evaluate = (evalEvery > 0 && (step + 1) % evalEvery == 0) || step + 1 == steps
            var accuracy: Double?
            if evaluate {
                accuracy = exactMatch(model, heldOut).accuracy
                progress.message(String(format: "step %d: held-out exact match %.4f", step + 1, accuracy!))
            }
            try metrics?.append(.init(step: step + 1, loss: Double(lossValue), learningRate: Double(optimizer.learningRate),
                                      tokensPerSecond: Double(tokens) / trainingSeconds, seconds: trainingSeconds, accuracy: accuracy))
            if (checkpointEvery > 0 && (step + 1) % checkpointEvery == 0) || step + 1 == lastStep { try saveCheckpoint(step: step + 1) }
        }
        guard isMainRank else { return }
        progress.finish()
        if lastStep < steps {
            print("stopped after step \(lastStep) of \(steps); continue with --resume \(checkpointURL.path)")
            return
        }
        try metrics?.writePlot(to: folder.appendingPathComponent("training.svg"), title: "reverse (\(implementation.name) attention)")

        let (accuracy, predictions) = exactMatch(model, heldOut)
        for row in 0..<Swift.min(show, evalSize) {
            let mark = predictions[row] == Array(heldOut.digits[row].reversed()) ? "ok " : "BAD"
            print("\(mark) \(heldOut.digits[row].map(String.init).joined()) → \(predictions[row].map(String.init).joined())")
        }
        print(String(format: "trained %d steps in %.1f s (%.0f target tokens/s, evaluation excluded)", steps, trainingSeconds, Double(tokens) / trainingSeconds))
        if let group {
            let stepCount = Double(Swift.max(lastStep - startStep, 1))
            print(String(format: "gradient all-reduce over %d ranks: %.2f ms per step, after %.2f ms waiting for the slowest rank (rank 0)",
                         group.worldSize, synchronizeSeconds / stepCount * 1e3, waitSeconds / stepCount * 1e3))
        }
        if device != .cpu { print("kernel launches per training step on \(device): \(trainingLaunches / Swift.max(lastStep - startStep, 1))") }
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let memory = Device.cpu.memory
        print(String(format: "peak resident memory %.0f MiB (host tensors: %.0f MiB at most at once, %.0f MiB cached for reuse now)",
                     Double(usage.ru_maxrss) / 1024, Double(memory.peakBytes) / 1_048_576, Double(memory.cachedBytes) / 1_048_576))
        print("metrics: \(folder.appendingPathComponent("metrics.csv").path), plot: \(folder.appendingPathComponent("training.svg").path), checkpoint: \(checkpointURL.path)")
        print(String(format: "exact_match=%.4f", accuracy))
    }

    /// The options that shape the model, as checkpoint metadata (a resume must ask for the same model).
    var modelDescription: [String: String] {
        ["dim": "\(dim)", "heads": "\(heads)", "encoder-layers": "\(encoderLayers)", "decoder-layers": "\(decoderLayers)",
         "feed-forward": "\(feedForward)", "activation": activation, "norm": norm, "positions": positions]
    }

    /// Greedy-decodes the held-out set with the KV cache; a sequence counts when every digit is right.
    func exactMatch(_ model: Transformer<Float>, _ data: ReversalBatch) -> (accuracy: Double, predictions: [[Int]]) {
        model.eval()
        defer { model.train() }
        let predictions = model.greedyDecode(data.source, sourceLengths: data.sourceLengths, begin: Token.begin, end: Token.end,
                                             maximumLength: Token.maximumTargetLength - 1)
        let correct = zip(predictions, data.digits).filter { $0 == Array($1.reversed()) }.count
        return (Double(correct) / Double(data.digits.count), predictions)
    }
}
