import Foundation

/// Host memory for the CPU device: every tensor and every kernel's scratch comes from here.
///
/// Keeps freed buffers of 64 KiB and more for reuse: fresh large allocations come from the kernel
/// as untouched pages, and faulting them in costs more than the elementwise op that fills them.
/// Sizes are rounded up to eighths of their power of two (at most 12.5 % more), so that batches of
/// varying lengths reuse a few size classes instead of missing the cache at every new length.
final class CPUAllocator: DeviceAllocator, @unchecked Sendable {
    static let shared = CPUAllocator()

    /// Buffers smaller than this go straight to malloc, which recycles them without new pages.
    static let minimumPooledBytes = 64 << 10
    /// Cached (free) bytes are capped at the most bytes the process has had live at once (what it
    /// can reuse), at least this much and at most ``maximumCachedBytes``; beyond it freed buffers
    /// go back to the system.
    static let minimumCacheCapBytes = 64 << 20
    static let maximumCachedBytes = 1 << 30
    /// One cache line, and what AVX-512 loads like.
    private static let alignment = 64

    private let lock = NSLock()
    private var cache: [Int: [UnsafeMutableRawPointer]] = [:]
    private var cachedBytes = 0
    private var live = 0
    private var peak = 0
    /// The most bytes live at once since the start (``resetPeak()`` does not lower it).
    private var highWater = 0
    private var systemAllocations = 0

    func allocate(bytes: Int) -> UInt { UInt(bitPattern: allocateRaw(bytes: bytes)) }

    func release(_ address: UInt, bytes: Int) { releaseRaw(UnsafeMutableRawPointer(bitPattern: address)!, bytes: bytes) }

    /// The bytes actually held for a request (and counted in the statistics).
    static func sizeClass(_ bytes: Int) -> Int {
        guard bytes >= minimumPooledBytes else { return bytes }
        let step = (1 << (Int.bitWidth - 1 - bytes.leadingZeroBitCount)) / 8
        return (bytes + step - 1) / step * step
    }

    func allocateRaw(bytes requested: Int) -> UnsafeMutableRawPointer {
        let bytes = Self.sizeClass(requested)
        lock.lock()
        live += bytes
        peak = Swift.max(peak, live)
        highWater = Swift.max(highWater, live)
        if bytes >= Self.minimumPooledBytes, let reused = cache[bytes]?.popLast() {
            cachedBytes -= bytes
            lock.unlock()
            return reused
        }
        systemAllocations += 1
        lock.unlock()
        return UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: Self.alignment)
    }

    func releaseRaw(_ pointer: UnsafeMutableRawPointer, bytes requested: Int) {
        let bytes = Self.sizeClass(requested)
        lock.lock()
        live -= bytes
        let cap = Swift.min(Self.maximumCachedBytes, Swift.max(Self.minimumCacheCapBytes, highWater))
        if bytes >= Self.minimumPooledBytes && cachedBytes + bytes <= cap {
            cache[bytes, default: []].append(pointer)
            cachedBytes += bytes
            lock.unlock()
            return
        }
        lock.unlock()
        pointer.deallocate()
    }

    /// Uninitialised scratch of `count` scalars; give it back with ``deallocate(_:count:)``.
    func allocate<T>(_: T.Type, count: Int) -> UnsafeMutablePointer<T> {
        allocateRaw(bytes: Swift.max(count, 1) * MemoryLayout<T>.stride).bindMemory(to: T.self, capacity: Swift.max(count, 1))
    }

    func deallocate<T>(_ pointer: UnsafeMutablePointer<T>, count: Int) {
        releaseRaw(UnsafeMutableRawPointer(pointer), bytes: Swift.max(count, 1) * MemoryLayout<T>.stride)
    }

    /// Scratch that lives for the duration of `body`.
    func withScratch<T, Result>(_: T.Type, count: Int, _ body: (UnsafeMutablePointer<T>) throws -> Result) rethrows -> Result {
        let pointer = allocate(T.self, count: count)
        defer { deallocate(pointer, count: count) }
        return try body(pointer)
    }

    var statistics: MemoryStatistics {
        lock.lock(); defer { lock.unlock() }
        return MemoryStatistics(liveBytes: live, peakBytes: peak, cachedBytes: cachedBytes, systemAllocations: systemAllocations)
    }

    func resetPeak() { lock.lock(); peak = live; lock.unlock() }

    func emptyCache() {
        lock.lock()
        for buffers in cache.values { for buffer in buffers { buffer.deallocate() } }
        cache = [:]
        cachedBytes = 0
        lock.unlock()
    }
}
