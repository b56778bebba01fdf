import FlashGrad
import Foundation
import XCTest

/// The examples refuse bad arguments and bad checkpoint metadata with argument-parser's validation
/// error (exit code 64, a message naming the flag or file), never a crash: each case runs the
/// example built next to this test bundle.
final class CommandLineTests: XCTestCase {
    /// Runs `arguments` and expects a validation error whose message contains `expected`.
    func assertRefused(_ product: String, _ arguments: [String], _ expected: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let outcome = try runExample(product, arguments)
        XCTAssertEqual(outcome.status, 64, "\(product) \(arguments.joined(separator: " ")): \(outcome.output)", file: file, line: line)
        let errorLine = outcome.output.split(separator: "\n").first { $0.hasPrefix("Error:") }.map(String.init) ?? ""
        XCTAssertTrue(errorLine.contains(expected), "\(product) \(arguments.joined(separator: " ")): expected '\(expected)' in \(outcome.output)",
                      file: file, line: line)
    }

    func testReverseRefusesBadArguments() throws {
        let cases: [([String], String)] = [
            (["--heads", "0"], "--heads must be at least 1, got 0"),
            (["--dim", "0"], "--dim must be at least 1, got 0"),
            (["--feed-forward", "0"], "--feed-forward must be at least 1, got 0"),
            (["--dim=-16"], "--dim must be at least 1, got -16"),
            (["--heads=-4"], "--heads must be at least 1, got -4"),
            (["--encoder-layers=-1"], "--encoder-layers must be at least 0, got -1"),
            (["--warmup=-1"], "--warmup must be at least 0, got -1"),
            (["--stop-after=-1"], "--stop-after must be at least 1, got -1"),
            (["--stop-after", "0"], "--stop-after must be at least 1, got 0"),
            (["--show=-1"], "--show must be at least 0, got -1"),
            (["--learning-rate", "inf"], "--learning-rate must be a positive finite number, got inf"),
            (["--learning-rate", "nan"], "--learning-rate must be a positive finite number, got nan"),
            (["--clip", "0"], "--clip must be a positive finite number, got 0.0"),
            (["--dim", "100", "--heads", "3"], "--dim 100 must be divisible by --heads 3"),
            (["--dropout", "1"], "--dropout must be in [0, 1), got 1.0"),
            (["--device", "tpu"], "--device must be cpu, cuda or cuda:N, got 'tpu'"),
            (["--shards", "0"], "--shards must be at least 1, got 0"),
            (["--distributed", "--shards", "2"], "--shards emulates ranks in one process"),
            (["--attention", "flahs"], "unknown attention implementation 'flahs'"),
            (["--resume", "/nonexistent/checkpoint.safetensors"], "--resume: no such file"),
            (["--steps", "1", "--eval-size", "1", "--output", "/proc/flashgrad"], "--output: cannot create the folder '/proc/flashgrad'"),
        ]
        for (arguments, expected) in cases { try assertRefused("reverse", arguments, expected) }
    }

    /// A checkpoint resumes only into the model and schedule it was written for.
    func testReverseRefusesACheckpointOfAnotherRun() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("flashgrad-cli-\(ProcessInfo.processInfo.processIdentifier)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let small = ["--dim", "8", "--heads", "2", "--feed-forward", "8", "--encoder-layers", "1", "--decoder-layers", "1",
                     "--batch-size", "2", "--eval-size", "2", "--eval-every", "0", "--threads", "1", "--output", folder.path]
        let trained = try runExample("reverse", small + ["--steps", "2"])
        XCTAssertEqual(trained.status, 0, trained.output)
        let checkpoint = folder.appendingPathComponent("checkpoint.safetensors").path
        try assertRefused("reverse", small + ["--steps", "1", "--resume", checkpoint], "is at step 2, past --steps 1")
        try assertRefused("reverse", small + ["--steps", "4", "--heads", "4", "--resume", checkpoint],
                          "holds another model: --heads is 4 here, 2 in the checkpoint")
    }

    func testGPTSampleRefusesImpossibleCheckpointMetadata() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("flashgrad-gpt-\(ProcessInfo.processInfo.processIdentifier).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        let good = ["vocabulary": #"["a","b","c"]"#, "dim": "64", "heads": "4", "layers": "2", "context": "16", "key_value_heads": ""]
        let cases: [([String: String], String)] = [
            (["heads": "0"], "--dim, --heads, --layers must be positive"),
            (["heads": "3"], "--dim 64 must be divisible by --heads 3"),
            (["layers": "-1"], "--dim, --heads, --layers must be positive"),
            (["vocabulary": #"["a","b","a"]"#], "vocabulary lists \"a\" more than once"),
        ]
        for (change, expected) in cases {
            try Safetensors.save(["x": Tensor<Float>.zeros([1])], metadata: good.merging(change) { $1 }, to: url)
            try assertRefused("gpt", ["sample", "--checkpoint", url.path, "--prompt", "ab"], expected)
        }
    }

    /// `FLASHGRAD_CPU_LEVEL` lowers the level of the CPU kernels, and attention-bench reports the one in use.
    func testTheKernelLevelCanBeForcedAndIsReported() throws {
        for level in CPUKernelLevel.supported {
            let outcome = try runExample("attention-bench", ["--lengths", "64", "--causal", "no", "--implementations", "flash", "--repetitions", "1"],
                                  environment: ["FLASHGRAD_CPU_LEVEL": level.rawValue])
            XCTAssertEqual(outcome.status, 0, outcome.output)
            XCTAssertTrue(outcome.output.contains("cpu-kernels=\(level.rawValue)"), outcome.output)
        }
    }

    func testAttentionBenchSkipsWhatCannotFit() throws {
        let outcome = try runExample("attention-bench", ["--lengths", "2147483648", "--causal", "no", "--repetitions", "1"])
        XCTAssertEqual(outcome.status, 0, outcome.output)
        XCTAssertTrue(outcome.output.contains("skipped: flash at N=2147483648"), outcome.output)
        try assertRefused("attention-bench", ["--lengths", "0"], "--lengths must be comma-separated positive integers")
    }

    func testLaunchBenchRefusesBadArguments() throws {
        try assertRefused("launch-bench", ["--device", "cpu", "--steps", "0"], "--steps must be at least 1, got 0")
        try assertRefused("launch-bench", ["--device", "cpu", "--attention", "flahs"], "unknown attention implementation 'flahs'")
    }
}
