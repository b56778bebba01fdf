import RealModule

/// The learning rate as a function of the step (0-based).
public protocol LearningRateSchedule {
    func learningRate(step: Int) -> Double
}

/// The same rate at every step.
public struct ConstantSchedule: LearningRateSchedule {
    public let rate: Double
    public init(_ rate: Double) { self.rate = rate }
    public func learningRate(step: Int) -> Double { rate }
}

/// Linear warm-up from rate/warmup to `peak` over `warmupSteps`, then cosine decay to `minimum` at `totalSteps`.
public struct WarmupCosineSchedule: LearningRateSchedule {
    public let peak: Double, minimum: Double
    public let warmupSteps: Int, totalSteps: Int

    public init(peak: Double, warmupSteps: Int, totalSteps: Int, minimum: Double = 0) {
        require(warmupSteps >= 0 && totalSteps > 0, "WarmupCosineSchedule: steps must be positive")
        self.peak = peak
        self.minimum = minimum
        self.warmupSteps = warmupSteps
        self.totalSteps = totalSteps
    }

    public func learningRate(step: Int) -> Double {
        let warmup = warmupSteps > 0 ? Swift.min(1, Double(step + 1) / Double(warmupSteps)) : 1
        let progress = Swift.min(Double(step), Double(totalSteps)) / Double(totalSteps)
        return minimum + (peak - minimum) * warmup * 0.5 * (1 + Double.cos(Double.pi * progress))
    }
}
