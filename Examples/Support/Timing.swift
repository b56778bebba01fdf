import Dispatch

/// Median wall time of `repetitions` runs of `body`, in seconds, after one warm-up run (skipped
/// when there is a single repetition, for long runs).
public func medianSeconds(repetitions: Int, _ body: () -> Void) -> Double {
    if repetitions > 1 { body() }
    var times: [Double] = []
    for _ in 0..<repetitions {
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
    return times.sorted()[times.count / 2]
}

/// After a multi-threaded OpenBLAS call, OpenBLAS's worker threads spin for a while before they
/// sleep, and would steal the cores from the next FlashGrad measurement. Waiting this long lets them
/// go idle (OpenBLAS's default spin is 2²⁸ cycles, well under 0.1 s here).
public let openBLASSettleSeconds = 0.3
