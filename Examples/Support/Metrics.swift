import Foundation

/// Training metrics written as CSV, row by row, and drawn as an SVG plot of loss and accuracy.
public final class MetricsLog {
    public struct Row {
        public let step: Int
        public let loss: Double
        public let learningRate: Double
        public let tokensPerSecond: Double
        /// Seconds spent training so far.
        public let seconds: Double
        public let accuracy: Double?

        public init(step: Int, loss: Double, learningRate: Double, tokensPerSecond: Double, seconds: Double, accuracy: Double?) {
            self.step = step
            self.loss = loss
            self.learningRate = learningRate
            self.tokensPerSecond = tokensPerSecond
            self.seconds = seconds
            self.accuracy = accuracy
        }
    }

    let csvURL: URL
    public private(set) var rows: [Row] = []

    /// Starts a CSV file at `csvURL`, keeping rows up to `resumeStep` when resuming from an earlier run.
    public init(csvURL: URL, resumeStep: Int? = nil) throws {
        self.csvURL = csvURL
        try FileManager.default.createDirectory(at: csvURL.deletingLastPathComponent(), withIntermediateDirectories: true)
        if let resumeStep, let text = try? String(contentsOf: csvURL, encoding: .utf8) {
            rows = text.split(separator: "\n").dropFirst().compactMap(Self.parse).filter { $0.step <= resumeStep }
        }
        try rewrite()
    }

    static let header = "step,loss,learning_rate,tokens_per_second,training_seconds,accuracy"

    static func parse(_ line: Substring) -> Row? {
        let fields = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        guard fields.count == 6, let step = Int(fields[0]), let loss = Double(fields[1]), let rate = Double(fields[2]),
              let speed = Double(fields[3]), let elapsed = Double(fields[4]) else { return nil }
        return Row(step: step, loss: loss, learningRate: rate, tokensPerSecond: speed, seconds: elapsed, accuracy: Double(fields[5]))
    }

    func rewrite() throws {
        let lines = [Self.header] + rows.map(Self.format)
        try (lines.joined(separator: "\n") + "\n").write(to: csvURL, atomically: true, encoding: .utf8)
    }

    static func format(_ row: Row) -> String {
        String(format: "%d,%.6f,%.6g,%.1f,%.2f,", row.step, row.loss, row.learningRate, row.tokensPerSecond, row.seconds)
            + (row.accuracy.map { String(format: "%.4f", $0) } ?? "")
    }

    public func append(_ row: Row) throws {
        rows.append(row)
        let handle = try FileHandle(forWritingTo: csvURL)
        try handle.seekToEnd()
        try handle.write(contentsOf: Data((Self.format(row) + "\n").utf8))
        try handle.close()
    }

    /// An SVG with the loss (left axis, log scale) and the accuracy (right axis, 0…1) against the step.
    public func writePlot(to url: URL, title: String) throws {
        let width = 720.0, height = 360.0, margin = 50.0
        let steps = rows.map { Double($0.step) }
        let maxStep = Swift.max(steps.max() ?? 1, 1)
        let losses = rows.map { Swift.max($0.loss, 1e-6) }
        let lowLoss = log10(losses.min() ?? 1e-3), highLoss = log10(losses.max() ?? 1)
        let span = Swift.max(highLoss - lowLoss, 1e-6)
        func x(_ step: Double) -> Double { margin + step / maxStep * (width - 2 * margin) }
        func lossY(_ loss: Double) -> Double { height - margin - (log10(loss) - lowLoss) / span * (height - 2 * margin) }
        func accuracyY(_ accuracy: Double) -> Double { height - margin - accuracy * (height - 2 * margin) }
        let lossPoints = zip(steps, losses).map { String(format: "%.1f,%.1f", x($0), lossY($1)) }.joined(separator: " ")
        let accuracyPoints = rows.compactMap { row in row.accuracy.map { String(format: "%.1f,%.1f", x(Double(row.step)), accuracyY($0)) } }
            .joined(separator: " ")
        let svg = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" font-family="sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(Int(width / 2))" y="20" text-anchor="middle" font-size="14">\(title)</text>
            <line x1="\(margin)" y1="\(height - margin)" x2="\(width - margin)" y2="\(height - margin)" stroke="black"/>
            <line x1="\(margin)" y1="\(margin)" x2="\(margin)" y2="\(height - margin)" stroke="black"/>
            <line x1="\(width - margin)" y1="\(margin)" x2="\(width - margin)" y2="\(height - margin)" stroke="black"/>
            <text x="\(Int(width / 2))" y="\(Int(height - 15))" text-anchor="middle">step (0…\(Int(maxStep)))</text>
            <text x="10" y="\(Int(margin - 10))" fill="steelblue">loss (log, \(String(format: "%.3g", pow(10, lowLoss)))…\(String(format: "%.3g", pow(10, highLoss))))</text>
            <text x="\(Int(width - 10))" y="\(Int(margin - 10))" text-anchor="end" fill="darkorange">exact-match accuracy (0…1)</text>
            <polyline fill="none" stroke="steelblue" stroke-width="1.5" points="\(lossPoints)"/>
            <polyline fill="none" stroke="darkorange" stroke-width="2" points="\(accuracyPoints)"/>
            </svg>
            """
        try svg.write(to: url, atomically: true, encoding: .utf8)
    }
}
