import Foundation

/// Prints training progress: one line rewritten in place on a terminal, plain lines otherwise.
public final class ProgressReporter {
    let totalSteps: Int
    let plainEvery: Int
    let isTerminal = isatty(STDOUT_FILENO) != 0
    let start = Date()
    let startStep: Int

    /// `plainEvery`: how often a plain line is printed when stdout is not a terminal.
    public init(totalSteps: Int, startStep: Int = 0, plainEvery: Int = 50) {
        self.totalSteps = totalSteps
        self.startStep = startStep
        self.plainEvery = plainEvery
    }

    public var elapsed: Double { Date().timeIntervalSince(start) }

    /// Reports step `step` (1-based) with the loss and throughput.
    public func update(step: Int, loss: Double, tokensPerSecond: Double) {
        let done = step - startStep
        let remaining = done > 0 ? elapsed / Double(done) * Double(totalSteps - step) : 0
        let line = String(format: "step %d/%d  loss %.4f  %.0f tok/s  elapsed %@  ETA %@", step, totalSteps, loss, tokensPerSecond,
                          Self.clock(elapsed), Self.clock(remaining))
        if isTerminal {
            print("\r\u{1B}[K" + line, terminator: "")
            fflush(stdout)
        } else if step % plainEvery == 0 || step == totalSteps {
            print(line)
            fflush(stdout)  // redirected stdout is block-buffered: `tail -f log` would show nothing until exit
        }
    }

    /// Prints a message on its own line without breaking the in-place progress line.
    public func message(_ text: String) {
        if isTerminal { print("\r\u{1B}[K", terminator: "") }
        print(text)
        fflush(stdout)
    }

    /// Ends the in-place line.
    public func finish() {
        if isTerminal { print("") }
    }

    static func clock(_ seconds: Double) -> String {
        let total = Int(seconds.rounded())
        return String(format: "%d:%02d:%02d", total / 3600, total / 60 % 60, total % 60)
    }
}
