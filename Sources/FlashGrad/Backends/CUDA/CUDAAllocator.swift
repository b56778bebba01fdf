import Foundation

/// Device memory for one GPU, PyTorch-style: freed blocks are kept by size and handed to the next
/// request of that size (cudaMalloc and cudaFree synchronise the device and cost far more than a
/// kernel); an out-of-memory error empties the cache and tries once more.
final class CUDAAllocator: DeviceAllocator, @unchecked Sendable {
    /// Requests are rounded up to a power of two from 512 bytes to 32 MiB, and to whole 32 MiB
    /// above, so that batches of varying lengths share a few block sizes instead of missing the
    /// cache at every new length (a miss is a cuMemAlloc, far slower than a kernel launch); the
    /// price is up to 2× the bytes below 32 MiB.
    static let smallestBlock = 512
    static let largeGranularity = 32 << 20

    private let runtime: CUDARuntime
    private let lock = NSLock()
    private var cache: [Int: [UInt]] = [:]
    private var cachedBytes = 0
    private var live = 0
    private var peak = 0
    private var systemAllocations = 0

    init(runtime: CUDARuntime) { self.runtime = runtime }

    static func rounded(_ bytes: Int) -> Int {
        if bytes > largeGranularity { return (bytes + largeGranularity - 1) / largeGranularity * largeGranularity }
        var block = smallestBlock
        while block < bytes { block <<= 1 }
        return block
    }

    func allocate(bytes requested: Int) -> UInt {
        let bytes = Self.rounded(requested)
        lock.lock(); defer { lock.unlock() }
        live += bytes
        peak = Swift.max(peak, live)
        if let reused = cache[bytes]?.popLast() {
            cachedBytes -= bytes
            return reused
        }
        runtime.makeCurrent()
        systemAllocations += 1
        var address: CUdeviceptr = 0
        var result = runtime.driver.cuMemAlloc(&address, bytes)
        if result == 2 {  // CUDA_ERROR_OUT_OF_MEMORY: give the cache back and try once more
            releaseCache()
            result = runtime.driver.cuMemAlloc(&address, bytes)
        }
        if result != 0 {
            var free = 0, total = 0
            _ = runtime.driver.cuMemGetInfo(&free, &total)
            fatalError("cuda:\(runtime.index): cannot allocate \(bytes) bytes: \(live - bytes) bytes live in tensors, "
                                + "\(cachedBytes) cached, the device reports \(free) of \(total) free (cuMemAlloc error \(result))")
        }
        return UInt(address)
    }

    func release(_ address: UInt, bytes requested: Int) {
        let bytes = Self.rounded(requested)
        lock.lock(); defer { lock.unlock() }
        live -= bytes
        // Reuse is safe without waiting: every kernel runs on the one stream, in order.
        cache[bytes, default: []].append(address)
        cachedBytes += bytes
    }

    var statistics: MemoryStatistics {
        lock.lock(); defer { lock.unlock() }
        return MemoryStatistics(liveBytes: live, peakBytes: peak, cachedBytes: cachedBytes, systemAllocations: systemAllocations)
    }

    func resetPeak() { lock.lock(); peak = live; lock.unlock() }

    func emptyCache() { lock.lock(); releaseCache(); lock.unlock() }

    /// Frees every cached block; the caller holds the lock. A cached block may still be read by a
    /// kernel queued before its tensor went away, so the stream is drained first.
    private func releaseCache() {
        runtime.makeCurrent()
        runtime.synchronize()
        for blocks in cache.values { for address in blocks { _ = runtime.driver.cuMemFree(CUdeviceptr(address)) } }
        cache = [:]
        cachedBytes = 0
    }
}
