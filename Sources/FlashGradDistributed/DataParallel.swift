import FlashGrad

/// Data-parallel training, as PyTorch's `DistributedDataParallel`: every rank holds the whole
/// model and a shard of each global batch; the gradients are averaged over the ranks, so that
/// clipping and the optimizer then run unchanged and identically everywhere.
///
/// Parameters are cut into buckets of about ``defaultBucketBytes`` in reverse registration order
/// (the last layers' gradients are complete first in the backward). A bucket's all-reduce starts
/// as soon as the backward has finished all of its gradients and the buckets before it have
/// started (every rank must start them in the same order), so communication overlaps the rest of
/// the backward; ``synchronizeGradients()`` starts what is left and waits for all of them.
public final class DataParallel<Scalar: TensorScalar> {
    public let module: Module<Scalar>
    public let group: ProcessGroup
    /// Sum or average (the default, what data-parallel gradients need).
    public let reduction: ReduceOperation
    /// DDP's default bucket size.
    public static var defaultBucketBytes: Int { 25 << 20 }
    /// The parameters, in the buckets and the order in which their gradients are all-reduced.
    public let buckets: [[Tensor<Scalar>]]
    /// How many all-reduces a step takes.
    public var bucketCount: Int { buckets.count }
    /// All-reduces started since the last ``synchronizeGradients()`` (by the backward, as buckets complete).
    public var bucketsStarted: Int { started.count }
    private let bucketOfParameter: [ObjectIdentifier: Int]
    private var readyCounts: [Int]
    private var started: [PendingAllReduce<Scalar>] = []

    /// Wraps `module` and makes every rank start from rank 0's parameters and buffers.
    public init(_ module: Module<Scalar>, group: ProcessGroup, reduction: ReduceOperation = .average,
                bucketBytes: Int = DataParallel.defaultBucketBytes) {
        require(bucketBytes > 0, "DataParallel: bucketBytes must be positive, got \(bucketBytes)")
        self.module = module
        self.group = group
        self.reduction = reduction
        var buckets: [[Tensor<Scalar>]] = [], current: [Tensor<Scalar>] = [], bytes = 0
        for parameter in module.parameters.reversed() {
            current.append(parameter)
            bytes += parameter.count * MemoryLayout<Scalar>.stride
            if bytes >= bucketBytes { buckets.append(current); current = []; bytes = 0 }
        }
        if !current.isEmpty { buckets.append(current) }
        self.buckets = buckets
        bucketOfParameter = Dictionary(uniqueKeysWithValues: buckets.enumerated().flatMap { index, bucket in
            bucket.map { (ObjectIdentifier($0), index) }
        })
        readyCounts = Array(repeating: 0, count: buckets.count)
        guard group.worldSize > 1 else { return }
        group.broadcast(module.parameters + module.namedBuffers.map(\.1), from: 0)
        for parameter in module.parameters {
            parameter.registerGradientReadyHook { [weak self] tensor in self?.gradientReady(tensor) }
        }
    }

    private func gradientReady(_ parameter: Tensor<Scalar>) {
        guard let bucket = bucketOfParameter[ObjectIdentifier(parameter)] else { return }
        require(bucket >= started.count,
                     "DataParallel: a gradient arrived for a bucket already being reduced; call synchronizeGradients() after each backward "
                     + "(accumulating several backwards per step is not supported)")
        readyCounts[bucket] += 1
        // Buckets start in order only, so that every rank issues the same all-reduces in the same order.
        while started.count < buckets.count && readyCounts[started.count] == buckets[started.count].count {
            start(bucket: started.count)
        }
    }

    private func start(bucket: Int) {
        // A parameter this rank gave no gradient takes part with zeros.
        for parameter in buckets[bucket] where parameter.grad == nil { parameter.grad = parameter.zerosLike() }
        started.append(group.startAllReduce(buckets[bucket].map { $0.grad! }, reduction))
    }

    /// Starts the buckets the backward did not complete, then waits for every all-reduce: after it
    /// every rank holds the same gradients. Call it once after each `backward()`; nothing to do on one rank.
    public func synchronizeGradients() {
        guard group.worldSize > 1 else { return }
        while started.count < buckets.count { start(bucket: started.count) }
        for pending in started { pending.wait() }
        started = []
        readyCounts = Array(repeating: 0, count: buckets.count)
    }
}

/// The seed of rank `rank`'s shard of a global batch: N ranks drawing shards 0..<N see together
/// what one process drawing the same N shards in turn sees.
public func shardSeed(_ seed: UInt64, step: Int, rank: Int) -> UInt64 {
    CounterRandom.mix(seed ^ CounterRandom.mix(UInt64(step) &+ 0x9E37_79B9_7F4A_7C15 &* UInt64(rank + 1)))
}
