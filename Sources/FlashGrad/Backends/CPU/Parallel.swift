import COpenBLAS
import Dispatch
import Foundation

/// Splits loops across cores with Dispatch, sized so that threads never outnumber the cores.
public enum Parallel {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var configuredThreadCount = ProcessInfo.processInfo.activeProcessorCount

    /// Worker threads FlashGrad uses for its own kernels (defaults to the active processor count);
    /// one process-wide setting, safe to read and set from any thread.
    public static var threadCount: Int {
        get { lock.lock(); defer { lock.unlock() }; return configuredThreadCount }
        set {
            require(newValue >= 1, "Parallel.threadCount must be ≥ 1, got \(newValue)")
            lock.lock(); configuredThreadCount = newValue; lock.unlock()
        }
    }

    /// Below this many elements an elementwise loop stays on one thread: waking a thread costs more.
    static let minimumElementsPerThread = 1 << 15

    /// Calls `body` on disjoint ranges covering `0..<count`, in parallel when the work is large.
    static func forRanges(_ count: Int, minimumPerThread: Int = minimumElementsPerThread,
                          _ body: (Range<Int>) -> Void) {
        let chunks = Swift.min(threadCount, Swift.max(1, count / Swift.max(minimumPerThread, 1)))
        if chunks <= 1 { body(0..<count); return }
        DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
            body((chunk * count / chunks)..<((chunk + 1) * count / chunks))
        }
    }

    /// Threads ``forEachItem(_:_:)`` uses for `count` items; size per-thread scratch with it.
    static func workerCount(for count: Int) -> Int { Swift.max(1, Swift.min(threadCount, count)) }

    /// Runs `count` independent work items over ``workerCount(for:)`` threads (Dispatch's pool).
    /// `body` receives the item and the index of the worker running it, for per-worker scratch.
    static func forEachItem(_ count: Int, _ body: (_ item: Int, _ worker: Int) -> Void) {
        ensureSingleThreadedBLAS()
        let workers = workerCount(for: count)
        if workers <= 1 { for item in 0..<count { body(item, 0) }; return }
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            var item = worker
            while item < count {
                body(item, worker)
                item += workers
            }
        }
    }

    /// FlashGrad splits BLAS work across its own threads, so OpenBLAS runs each call on the calling
    /// thread: one pool of threads, never two pools competing for the same cores.
    static func ensureSingleThreadedBLAS() {
        if openblas_get_num_threads() != 1 { openblas_set_num_threads(1) }
    }
}
