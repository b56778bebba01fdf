import Foundation

/// Where a tensor's elements live and where the kernels of its ops run.
///
/// Every tensor has one. Factories use ``Device/default`` unless handed a device; ops require
/// their operands on one device and put the result there; ``Tensor/to(_:)`` copies between devices.
public enum Device: Hashable, Sendable, CustomStringConvertible {
    /// Host memory, FlashGrad's CPU kernels (OpenBLAS, LAPACKE and SIMD loops in Swift).
    case cpu
    /// The NVIDIA GPU with this index.
    case cuda(Int)

    /// `cpu`, `cuda:0`, … as PyTorch writes them.
    public var description: String {
        switch self {
        case .cpu: return "cpu"
        case .cuda(let index): return "cuda:\(index)"
        }
    }

    /// Whether this build and machine can run tensors on this device; never crashes.
    public var isAvailable: Bool { (try? backend()) != nil }

    /// This device's backend, or an error that says why there is none.
    func backend() throws -> Backend {
        switch self {
        case .cpu: return CPUBackend.shared
        case .cuda(let index):
            guard index >= 0 else { throw DeviceError.invalidIndex(self) }
            do { return try CUDABackend.shared(index: index) } catch { throw DeviceError.unavailable(self, reason: "\(error)") }
        }
    }

    /// Throws ``DeviceError`` when tensors cannot be placed on this device, naming the reason;
    /// call it once where a user picks the device (a command-line flag, a configuration).
    public func checkAvailable() throws { _ = try backend() }

    /// The backend for an op that already holds a tensor or was handed this device: stops with the
    /// op's name and the reason when there is none.
    func backend(for op: String) -> Backend {
        do { return try backend() } catch { fatalError("\(op): \(error)") }
    }
}

/// A device that cannot be used and why, or operands of one op on different devices.
public enum DeviceError: Error, CustomStringConvertible {
    case unavailable(Device, reason: String)
    case invalidIndex(Device)
    /// As candle's `DeviceMismatchBinaryOp`: the op, then each operand's device and shape.
    case mismatch(op: String, devices: (Device, Device), shapes: ([Int], [Int]))

    public var description: String {
        switch self {
        case let .unavailable(device, reason): return "device \(device) is not available: \(reason)"
        case let .invalidIndex(device): return "device \(device) has a negative index"
        case let .mismatch(op, devices, shapes):
            return "\(op): operands are on different devices: \(devices.0) (shape \(shapes.0)) and \(devices.1) (shape \(shapes.1)); "
                + "move one with .to(_:)"
        }
    }
}

extension Device {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var processDefault = Device.cpu
    /// Set by ``withDevice(_:_:)`` for the current thread or task only.
    @TaskLocal static var scopedDefault: Device?

    /// The device factories and initialisers use when not handed one: the innermost
    /// ``withDevice(_:_:)`` on this thread, otherwise the process-wide default (`.cpu` at start),
    /// which setting this property changes (as `torch.set_default_device`).
    public static var `default`: Device {
        get {
            if let scoped = scopedDefault { return scoped }
            lock.lock(); defer { lock.unlock() }
            return processDefault
        }
        set {
            lock.lock(); defer { lock.unlock() }
            processDefault = newValue
        }
    }
}

/// Runs `body` with `device` as ``Device/default`` on this thread (and the tasks it starts), like
/// `with torch.device(...)`; other threads keep theirs.
@discardableResult
public func withDevice<Result>(_ device: Device, _ body: () throws -> Result) rethrows -> Result {
    try Device.$scopedDefault.withValue(device, operation: body)
}

/// Bytes held by one device's tensors and its allocator's cache.
public struct MemoryStatistics: Equatable, Sendable {
    /// Bytes in buffers that are in use now.
    public let liveBytes: Int
    /// The most bytes in use at once since the last ``Device/resetPeakMemory()``.
    public let peakBytes: Int
    /// Freed bytes the allocator keeps for reuse.
    public let cachedBytes: Int
    /// Buffers the allocator had to get from the system or the device driver, because its cache had
    /// none of the size: slow on a GPU, so it should stop growing once training is under way.
    public let systemAllocations: Int
}

extension Device {
    /// Memory statistics of this device's allocator (every buffer goes through it, kernel scratch included).
    public var memory: MemoryStatistics { backend(for: "memory").allocator.statistics }

    /// Starts a new peak measurement from the bytes in use now.
    public func resetPeakMemory() { backend(for: "resetPeakMemory").allocator.resetPeak() }

    /// Returns every cached buffer to the system.
    public func emptyMemoryCache() { backend(for: "emptyMemoryCache").allocator.emptyCache() }

    /// The hardware's name as its driver reports it (`torch.cuda.get_device_name`): the GPU's model,
    /// or the CPU's as `/proc/cpuinfo` gives it. Benchmarks print it beside their figures.
    public var name: String { backend(for: "name").name }

    /// GPU kernels launched on this device so far (0 on the CPU, whose kernels are function calls):
    /// a small model on a GPU is bound by launches, so this is the number to watch.
    public var launchedKernels: Int { backend(for: "launchedKernels").launchedKernels }
}
