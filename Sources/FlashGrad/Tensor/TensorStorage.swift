import Foundation

/// A flat, manually managed buffer of scalars shared by a tensor and its views.
///
/// Kernels read and write it through unsafe pointers; everything above the kernels sees `Tensor`.
final class TensorStorage<Scalar: TensorScalar> {
    let pointer: UnsafeMutablePointer<Scalar>
    let count: Int

    init(count: Int) {
        self.count = count
        pointer = MemoryPool.allocate(bytes: Swift.max(count, 1) * MemoryLayout<Scalar>.stride)
            .bindMemory(to: Scalar.self, capacity: Swift.max(count, 1))
    }

    convenience init(repeating value: Scalar, count: Int) {
        self.init(count: count)
        MemoryKernels.fill(pointer, with: value, count: count)
    }

    convenience init(_ values: [Scalar]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { MemoryKernels.copy(from: $0.baseAddress!, to: pointer, count: values.count) }
    }

    deinit { MemoryPool.release(UnsafeMutableRawPointer(pointer), bytes: Swift.max(count, 1) * MemoryLayout<Scalar>.stride) }
}

/// Keeps large freed buffers for reuse by the next tensor of the same size.
///
/// Fresh large allocations come from the kernel as untouched pages, and faulting them in costs
/// more than the elementwise op that fills them; training allocates the same sizes every step.
/// Also counts live bytes, so benchmarks can report the peak memory of tensors.
public enum MemoryPool {
    /// Buffers smaller than this go straight to malloc, which already recycles them cheaply.
    static let minimumPooledBytes = 1 << 20
    /// Cached (free) bytes are capped here; beyond it freed buffers go back to the system.
    static let maximumCachedBytes = 1 << 30
    private static let alignment = 64  // one cache line, and what AVX-512 loads like

    private static let lock = NSLock()
    private static var cache: [Int: [UnsafeMutableRawPointer]] = [:]
    private static var cachedBytes = 0
    private static var live = 0
    private static var peak = 0

    static func allocate(bytes: Int) -> UnsafeMutableRawPointer {
        lock.lock()
        live += bytes
        peak = Swift.max(peak, live)
        if bytes >= minimumPooledBytes, let reused = cache[bytes]?.popLast() {
            cachedBytes -= bytes
            lock.unlock()
            return reused
        }
        lock.unlock()
        return UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: alignment)
    }

    static func release(_ pointer: UnsafeMutableRawPointer, bytes: Int) {
        lock.lock()
        live -= bytes
        if bytes >= minimumPooledBytes && cachedBytes + bytes <= maximumCachedBytes {
            cache[bytes, default: []].append(pointer)
            cachedBytes += bytes
            lock.unlock()
            return
        }
        lock.unlock()
        pointer.deallocate()
    }

    /// Bytes held by live tensors now.
    public static var liveBytes: Int { lock.lock(); defer { lock.unlock() }; return live }

    /// The most bytes live tensors held at once since the last ``resetPeak()``.
    public static var peakBytes: Int { lock.lock(); defer { lock.unlock() }; return peak }

    /// Starts a new peak measurement from the current live bytes.
    public static func resetPeak() { lock.lock(); peak = live; lock.unlock() }

    /// Returns every cached buffer to the system.
    public static func emptyCache() {
        lock.lock()
        for buffers in cache.values { for buffer in buffers { buffer.deallocate() } }
        cache = [:]
        cachedBytes = 0
        lock.unlock()
    }
}
