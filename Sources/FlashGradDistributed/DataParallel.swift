import FlashGrad

/// Data-parallel training, as PyTorch's `DistributedDataParallel`: every rank holds the whole
/// model and a shard of each global batch; after `backward()` the gradients are averaged over the
/// ranks, so that clipping and the optimizer then run unchanged and identically everywhere.
public final class DataParallel<Scalar: TensorScalar> {
    public let module: Module<Scalar>
    public let group: ProcessGroup
    /// Gradients are averaged in buckets of about this many bytes, as DDP's default.
    public static var bucketBytes: Int { 25 << 20 }
    /// Parameters in reverse registration order (the last layers' gradients are ready first in
    /// the backward), cut into buckets.
    let buckets: [[Tensor<Scalar>]]

    /// Wraps `module` and makes every rank start from rank 0's parameters and buffers.
    public init(_ module: Module<Scalar>, group: ProcessGroup) {
        self.module = module
        self.group = group
        var buckets: [[Tensor<Scalar>]] = [], current: [Tensor<Scalar>] = [], bytes = 0
        for parameter in module.parameters.reversed() {
            current.append(parameter)
            bytes += parameter.count * MemoryLayout<Scalar>.stride
            if bytes >= Self.bucketBytes { buckets.append(current); current = []; bytes = 0 }
        }
        if !current.isEmpty { buckets.append(current) }
        self.buckets = buckets
        if group.worldSize > 1 { group.broadcast(module.parameters + module.namedBuffers.map(\.1), from: 0) }
    }

    /// Averages (or sums) every parameter's gradient over the ranks, bucket by bucket; a parameter
    /// that got no gradient on this rank takes part with zeros. Call it after `backward()`. Nothing
    /// to do on one rank.
    public func synchronizeGradients(_ operation: ReduceOperation = .average) {
        guard group.worldSize > 1 else { return }
        for bucket in buckets {
            for parameter in bucket where parameter.grad == nil { parameter.grad = parameter.zerosLike() }
            group.allReduce(bucket.map { $0.grad! }, operation)
        }
    }
}

/// The seed of rank `rank`'s shard of a global batch: N ranks drawing shards 0..<N see together
/// what one process drawing the same N shards in turn sees.
public func shardSeed(_ seed: UInt64, step: Int, rank: Int) -> UInt64 {
    CounterRandom.mix(seed ^ CounterRandom.mix(UInt64(step) &+ 0x9E37_79B9_7F4A_7C15 &* UInt64(rank + 1)))
}
