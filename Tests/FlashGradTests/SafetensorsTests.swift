import FlashGrad
import Foundation
import XCTest

final class SafetensorsTests: XCTestCase {
    var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("flashgrad-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: folder) }

    func testRoundTripKeepsValuesShapesAndMetadata() throws {
        let url = folder.appendingPathComponent("a.safetensors")
        let tensors = ["w": Tensor<Float>([1, 2, 3, 4, 5, 6], shape: [2, 3]), "b": Tensor<Float>([-1.5]), "s": Tensor<Float>(scalar: 7)]
        try Safetensors.save(tensors, metadata: ["step": "12"], to: url)
        let (loaded, metadata) = try Safetensors.loadTensors(Float.self, from: url)
        XCTAssertEqual(metadata, ["step": "12"])
        XCTAssertEqual(Set(loaded.keys), ["w", "b", "s"])
        for (name, tensor) in tensors {
            XCTAssertEqual(loaded[name]!.shape, tensor.shape)
            XCTAssertEqual(loaded[name]!.scalars, tensor.scalars)
        }
        // Header layout: 8-byte length, then JSON padded so the data starts 8-byte aligned.
        let bytes = try Data(contentsOf: url)
        let headerLength = bytes.prefix(8).withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        XCTAssertEqual(headerLength % 8, 0)
        XCTAssertEqual(bytes.count, 8 + Int(headerLength) + 8 * 4)
        XCTAssertThrowsError(try Safetensors.loadTensors(Double.self, from: url)) { error in
            XCTAssertTrue("\(error)".contains("has dtype F32, expected F64"), "\(error)")
        }
    }

    /// Writes `header` (JSON text) and `data` as a safetensors file, with an optional forged length.
    func write(_ header: String, data: [UInt8] = [], declaredLength: UInt64? = nil, name: String = "bad.safetensors") throws -> URL {
        let url = folder.appendingPathComponent(name)
        var file = Data()
        withUnsafeBytes(of: (declaredLength ?? UInt64(header.utf8.count)).littleEndian) { file.append(contentsOf: $0) }
        file.append(Data(header.utf8))
        file.append(contentsOf: data)
        try file.write(to: url)
        return url
    }

    func assertThrows(_ url: URL, containing text: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try Safetensors.load(from: url), file: file, line: line) { error in
            XCTAssertTrue(error is CheckpointError, "\(error)", file: file, line: line)
            XCTAssertTrue("\(error)".contains(text), "'\(error)' should mention '\(text)'", file: file, line: line)
            XCTAssertTrue("\(error)".contains(url.path), "error names the file", file: file, line: line)
        }
    }

    func testMalformedFilesThrowClearErrors() throws {
        let valid = folder.appendingPathComponent("valid.safetensors")
        try Safetensors.save(["w": Tensor<Float>.ones([4, 4])], to: valid)
        let bytes = try Data(contentsOf: valid)
        let truncated = folder.appendingPathComponent("truncated.safetensors")
        try bytes.prefix(bytes.count - 10).write(to: truncated)
        assertThrows(truncated, containing: "truncated?")
        let tiny = folder.appendingPathComponent("tiny.safetensors")
        try Data([1, 2, 3]).write(to: tiny)
        assertThrows(tiny, containing: "too short")
        assertThrows(folder.appendingPathComponent("missing.safetensors"), containing: "cannot read file")
        assertThrows(try write("{\"w\": {\"dtype\": ", name: "json.safetensors"), containing: "not a JSON object")
        assertThrows(try write("[1, 2]", name: "array.safetensors"), containing: "not a JSON object")
        assertThrows(try write("{}", declaredLength: 1 << 62, name: "huge.safetensors"), containing: "exceeds")
        assertThrows(try write(#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: [0, 0, 0, 0], name: "range.safetensors"),
                     containing: "run past")
        assertThrows(try write(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
                               data: [UInt8](repeating: 0, count: 12), name: "overlap.safetensors"), containing: "overlap")
        assertThrows(try write(#"{"w":{"dtype":"F32","shape":[1000000000000,1000000000000],"data_offsets":[0,4]}}"#,
                               data: [0, 0, 0, 0], name: "absurd.safetensors"), containing: "absurd shape")
        assertThrows(try write(#"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0], name: "size.safetensors"),
                     containing: "needs 12 bytes")
        assertThrows(try write(#"{"w":{"dtype":"FLOAT","shape":[1],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0], name: "dtype.safetensors"),
                     containing: "unknown dtype 'FLOAT'")
        assertThrows(try write(#"{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0], name: "negative.safetensors"),
                     containing: "invalid shape")
        assertThrows(try write(#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}"#, data: [0, 0, 0, 0], name: "reversed.safetensors"),
                     containing: "invalid data_offsets")
        assertThrows(try write(#"{"w":{"shape":[1],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0], name: "fields.safetensors"),
                     containing: "needs dtype")
        assertThrows(try write(#"{"__metadata__":{"step":3}}"#, name: "metadata.safetensors"), containing: "__metadata__")
    }

    func testAtomicSaveLeavesThePreviousCheckpointWhenWritingFails() throws {
        let url = folder.appendingPathComponent("model.safetensors")
        try Safetensors.save(["w": Tensor<Float>([1, 2])], to: url)
        // A save that cannot complete (its folder vanished) must not touch the existing file.
        let gone = folder.appendingPathComponent("gone/model.safetensors")
        XCTAssertThrowsError(try Safetensors.save(["w": Tensor<Float>([3, 4])], to: gone))
        // Replace the target while it is read elsewhere: the reader keeps the old complete file.
        let before = try Data(contentsOf: url)
        try Safetensors.save(["w": Tensor<Float>([5, 6])], to: url)
        XCTAssertNotEqual(before, try Data(contentsOf: url))
        XCTAssertEqual(try Safetensors.loadTensors(Float.self, from: url).tensors["w"]!.scalars, [5, 6])
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.contains(".tmp-") }
        XCTAssertEqual(leftovers, [], "no temporary files left behind")
    }

    /// Python's `safetensors` package reads FlashGrad's file and writes one that FlashGrad loads.
    func testPythonSafetensorsInterop() throws {
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        probe.arguments = ["python3", "-c", "import safetensors.numpy"]
        probe.standardError = FileHandle.nullDevice
        try? probe.run()
        probe.waitUntilExit()
        guard probe.terminationStatus == 0 else {
            throw XCTSkip("python3 with the safetensors package is not installed (scripts/test.sh installs it)")
        }
        let ours = folder.appendingPathComponent("ours.safetensors"), theirs = folder.appendingPathComponent("theirs.safetensors")
        try Safetensors.save(["layer.weight": Tensor<Float>([1, 2, 3, 4, 5, 6], shape: [2, 3])], metadata: ["step": "3"], to: ours)
        let script = """
            import numpy as np, sys
            from safetensors.numpy import load_file, save_file
            from safetensors import safe_open
            t = load_file(sys.argv[1])
            assert t["layer.weight"].dtype == np.float32 and t["layer.weight"].shape == (2, 3), t
            assert (t["layer.weight"] == np.arange(1, 7, dtype=np.float32).reshape(2, 3)).all()
            with safe_open(sys.argv[1], "np") as f: assert f.metadata() == {"step": "3"}
            save_file({"x": np.array([[0.5, -1.0]], dtype=np.float32), "y": np.zeros((3,), dtype=np.float32)}, sys.argv[2])
            """
        let python = Process()
        python.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        python.arguments = ["python3", "-c", script, ours.path, theirs.path]
        try python.run()
        python.waitUntilExit()
        XCTAssertEqual(python.terminationStatus, 0, "Python could not read FlashGrad's file")
        let (loaded, _) = try Safetensors.loadTensors(Float.self, from: theirs)
        XCTAssertEqual(loaded["x"]!.shape, [1, 2])
        XCTAssertEqual(loaded["x"]!.scalars, [0.5, -1])
        XCTAssertEqual(loaded["y"]!.scalars, [0, 0, 0])
    }
}

final class AtomicSaveTests: XCTestCase {
    /// A save killed before its rename leaves `.NAME.tmp-PID`; the next save of NAME deletes those
    /// of processes that are gone, and leaves a running process's alone.
    func testStaleTemporariesAreRemovedByTheNextSave() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("flashgrad-stale-\(ProcessInfo.processInfo.processIdentifier)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let target = folder.appendingPathComponent("model.safetensors")
        // A process id that is not running, and one that is (init).
        let gone = (400_000..<500_000).first { kill(Int32($0), 0) != 0 && errno == ESRCH }!
        let stale = folder.appendingPathComponent(".model.safetensors.tmp-\(gone)")
        let live = folder.appendingPathComponent(".model.safetensors.tmp-1")
        let other = folder.appendingPathComponent(".other.safetensors.tmp-\(gone)")
        for file in [stale, live, other] { XCTAssertTrue(FileManager.default.createFile(atPath: file.path, contents: Data([1, 2, 3]))) }
        try Safetensors.save(["x": Tensor<Float>([1, 2])], to: target)
        XCTAssertFalse(FileManager.default.fileExists(atPath: stale.path), "the dead process's temporary is removed")
        XCTAssertTrue(FileManager.default.fileExists(atPath: live.path), "a running process's temporary stays")
        XCTAssertTrue(FileManager.default.fileExists(atPath: other.path), "another target's temporary stays")
        XCTAssertEqual(try Safetensors.loadTensors(Float.self, from: target).tensors["x"]?.scalars, [1, 2])
    }
}

/// Mutated files (`scripts/fixtures/safetensors_fuzz.py`, seeded): each one FlashGrad either loads
/// exactly as Python's `safetensors` does, or refuses with a `CheckpointError`; never a crash,
/// never a file the reference refuses. Skipped where Python's safetensors is not installed.
final class SafetensorsFuzzTests: XCTestCase {
    struct Expected: Decodable {
        struct Tensor: Decodable { let shape: [Int]; let hex: String }
        let file: String
        let loads: Bool
        let tensors: [String: Tensor]?
        let metadata: [String: String]?
    }

    func testMutatedFilesLoadAsTheReferenceDoesOrAreRefused() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("flashgrad-fuzz-\(ProcessInfo.processInfo.processIdentifier)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../scripts/fixtures/safetensors_fuzz.py")
        let python = Process()
        python.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        python.arguments = ["python3", script.standardizedFileURL.path, folder.path, "400"]
        python.standardOutput = FileHandle.nullDevice
        python.standardError = FileHandle.nullDevice
        try python.run()
        python.waitUntilExit()
        guard python.terminationStatus == 0 else {
            throw XCTSkip("python3 with the safetensors package is not installed (scripts/test.sh installs it): no reference for the fuzz corpus")
        }
        let manifest = try JSONDecoder().decode([Expected].self, from: Data(contentsOf: folder.appendingPathComponent("manifest.json")))
        XCTAssertEqual(manifest.count, 400)
        var loaded = 0, refused = 0, stricter: [String] = []
        for expected in manifest {
            let url = folder.appendingPathComponent(expected.file)
            do {
                let (entries, metadata) = try Safetensors.load(from: url)
                loaded += 1
                guard expected.loads, let tensors = expected.tensors else {
                    XCTFail("\(expected.file): FlashGrad loads a file Python's safetensors refuses"); continue
                }
                XCTAssertEqual(Set(entries.keys), Set(tensors.keys), expected.file)
                for (name, tensor) in tensors {
                    XCTAssertEqual(entries[name]?.shape, tensor.shape, "\(expected.file): \(name)")
                    XCTAssertEqual(entries[name].map { $0.data.map { String(format: "%02x", $0) }.joined() }, tensor.hex, "\(expected.file): \(name)")
                }
                XCTAssertEqual(metadata, expected.metadata ?? [:], expected.file)
            } catch let error as CheckpointError {
                refused += 1
                if expected.loads { stricter.append("\(expected.file): \(error.reason)") }
            } catch {
                XCTFail("\(expected.file): \(error) is not a CheckpointError")
            }
        }
        let referenceLoads = manifest.filter(\.loads).count
        print("SafetensorsFuzzTests: \(manifest.count) files, Python loads \(referenceLoads), FlashGrad loads \(loaded) and refuses \(refused); "
              + "refused where Python loads: \(stricter)")
        // The one deliberate difference: a tensor name given twice (the reference keeps the last).
        XCTAssertTrue(stricter.allSatisfy { $0.contains("duplicate key") }, "\(stricter)")
    }
}
