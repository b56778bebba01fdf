import Foundation

/// A problem with a checkpoint file, naming the file and what was wrong.
public struct CheckpointError: Error, CustomStringConvertible, Equatable {
    public let path: String
    public let reason: String
    public var description: String { "\(path): \(reason)" }

    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }
}

/// Reading and writing the safetensors format: an 8-byte little-endian header length, a JSON header
/// mapping each name to its dtype, shape and byte range, then the raw little-endian data.
public enum Safetensors {
    /// Headers larger than this are refused before anything is allocated for them (the reference
    /// implementation uses the same 100 MB limit).
    static let maximumHeaderBytes = 100_000_000

    /// Writes tensors (and string metadata) to `url` atomically: a temporary file in the same folder,
    /// flushed, then renamed over the target, so a crash never leaves a half-written checkpoint.
    public static func save<Scalar: TensorScalar>(_ tensors: [String: Tensor<Scalar>], metadata: [String: String] = [:],
                                                  to url: URL) throws {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        let names = tensors.keys.sorted()
        for name in names {
            let tensor = tensors[name]!
            let bytes = tensor.count * MemoryLayout<Scalar>.size
            header[name] = ["dtype": Scalar.dtypeName, "shape": tensor.shape, "data_offsets": [offset, offset + bytes]]
            offset += bytes
        }
        var headerBytes = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        // Pad with spaces so the data starts 8-byte aligned.
        headerBytes.append(contentsOf: [UInt8](repeating: 0x20, count: (8 - headerBytes.count % 8) % 8))
        var file = Data(capacity: 8 + headerBytes.count + offset)
        withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { file.append(contentsOf: $0) }
        file.append(headerBytes)
        for name in names {
            // Copied to the host from any device; raw bytes as they are in memory: x86-64 and arm64
            // are little-endian, as the format wants.
            tensors[name]!.scalars.withUnsafeBytes { file.append(contentsOf: $0) }
        }
        try writeAtomically(file, to: url)
    }

    static func writeAtomically(_ data: Data, to url: URL) throws {
        removeStaleTemporaries(of: url)
        let temporary = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).tmp-\(ProcessInfo.processInfo.processIdentifier)")
        guard FileManager.default.createFile(atPath: temporary.path, contents: nil) else {
            throw CheckpointError(path: url.path, reason: "cannot create temporary file \(temporary.path)")
        }
        do {
            let handle = try FileHandle(forWritingTo: temporary)
            try handle.write(contentsOf: data)
            try handle.synchronize()
            try handle.close()
            guard rename(temporary.path, url.path) == 0 else {
                throw CheckpointError(path: url.path, reason: "cannot rename \(temporary.path) over it: \(String(cString: strerror(errno)))")
            }
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw error
        }
    }

    /// Deletes the temporaries that saves of `url` killed before their rename left behind: those
    /// whose process no longer runs (a live one may be writing its own right now).
    static func removeStaleTemporaries(of url: URL) {
        let folder = url.deletingLastPathComponent(), prefix = ".\(url.lastPathComponent).tmp-"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder.path) else { return }
        for name in names where name.hasPrefix(prefix) {
            guard let pid = Int32(name.dropFirst(prefix.count)), pid != ProcessInfo.processInfo.processIdentifier else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH { try? FileManager.default.removeItem(at: folder.appendingPathComponent(name)) }
        }
    }

    /// One tensor as stored: its dtype string, shape and raw bytes.
    public struct Entry {
        public let dtype: String
        public let shape: [Int]
        public let data: Data

        /// The values converted to `Scalar` if the dtype is F32 or F64; throws otherwise.
        public func tensor<Scalar: TensorScalar>(_: Scalar.Type, name: String, path: String) throws -> Tensor<Scalar> {
            let values: [Scalar]
            switch dtype {
            case "F32": values = data.withUnsafeBytes { raw in (0..<(data.count / 4)).map { Scalar(raw.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self)) } }
            case "F64": values = data.withUnsafeBytes { raw in (0..<(data.count / 8)).map { Scalar(raw.loadUnaligned(fromByteOffset: $0 * 8, as: Double.self)) } }
            default: throw CheckpointError(path: path, reason: "tensor '\(name)' has dtype \(dtype); FlashGrad loads F32 and F64")
            }
            return Tensor(values, shape: shape)
        }
    }

    /// Bytes per element of the dtypes the format defines (FlashGrad converts F32 and F64).
    static let elementSizes: [String: Int] = [
        "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
        "I32": 4, "U32": 4, "F32": 4, "F64": 8, "I64": 8, "U64": 8,
    ]

    /// Reads and validates a file: every malformed header or range is a thrown ``CheckpointError``.
    public static func load(from url: URL) throws -> (entries: [String: Entry], metadata: [String: String]) {
        let path = url.path
        func fail(_ reason: String) -> CheckpointError { CheckpointError(path: path, reason: reason) }
        let file: Data
        do { file = try Data(contentsOf: url, options: .mappedIfSafe) } catch {
            throw fail("cannot read file: \(error.localizedDescription)")
        }
        guard file.count >= 8 else { throw fail("file is \(file.count) bytes, too short for the 8-byte header length") }
        let headerLength = file.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard headerLength <= UInt64(maximumHeaderBytes) else { throw fail("header length \(headerLength) exceeds the \(maximumHeaderBytes)-byte limit") }
        guard headerLength <= UInt64(file.count - 8) else {
            throw fail("header length \(headerLength) runs past the end of the \(file.count)-byte file (truncated?)")
        }
        let dataStart = 8 + Int(headerLength)
        // The rules of the reference implementation (Rust `safetensors`): a UTF-8 JSON object (no
        // byte-order mark), sizes and offsets as JSON integers, and tensors that cover the data
        // region exactly, without gaps, overlaps or trailing bytes. Stricter in one point: a name
        // given twice is an error (the reference keeps the last).
        let header: [(String, StrictJSON)]
        do {
            guard case .object(let members) = try StrictJSON.parse([UInt8](file[8..<dataStart])) else { throw fail("header is not a JSON object") }
            header = members
        } catch let error as StrictJSONError {
            throw fail("header is not a JSON object: \(error)")
        }
        let dataLength = file.count - dataStart
        var metadata: [String: String] = [:]
        var entries: [String: Entry] = [:]
        var ranges: [(start: Int, end: Int, name: String)] = []
        func sizes(_ value: StrictJSON?, _ what: String, of name: String) throws -> [Int] {
            guard case .array(let items)? = value else { throw fail("tensor '\(name)' needs dtype, shape and data_offsets (no \(what) array)") }
            return try items.map { item in
                guard case .integer(let size) = item, size >= 0 else {
                    throw fail("tensor '\(name)' has an invalid \(what) \(StrictJSON.array(items).text): entries must be non-negative JSON integers")
                }
                return size
            }
        }
        for (name, value) in header {
            if name == "__metadata__" {
                switch value {
                case .null: continue
                case .object(let members):
                    for (key, item) in members {
                        guard case .string(let text) = item else { throw fail("__metadata__ must map strings to strings; '\(key)' is \(item.text)") }
                        metadata[key] = text
                    }
                    continue
                default: throw fail("__metadata__ must be an object of strings or null")
                }
            }
            guard case .object(let members) = value else { throw fail("tensor '\(name)' needs dtype, shape and data_offsets") }
            let fields = Dictionary(members, uniquingKeysWith: { first, _ in first })
            guard case .string(let dtype)? = fields["dtype"] else { throw fail("tensor '\(name)' needs dtype, shape and data_offsets (no dtype string)") }
            guard let elementSize = elementSizes[dtype] else { throw fail("tensor '\(name)' has unknown dtype '\(dtype)'") }
            let shape = try sizes(fields["shape"], "shape", of: name)
            let offsets = try sizes(fields["data_offsets"], "data_offsets", of: name)
            guard offsets.count == 2, offsets[0] <= offsets[1] else { throw fail("tensor '\(name)' has invalid data_offsets \(offsets)") }
            guard offsets[1] <= dataLength else {
                throw fail("tensor '\(name)' data_offsets \(offsets) run past the \(dataLength) bytes of data (truncated?)")
            }
            // The element count may not overflow, and must match the byte range exactly.
            var count = 1
            for size in shape {
                let (product, overflow) = count.multipliedReportingOverflow(by: size)
                guard !overflow, product <= dataLength else { throw fail("tensor '\(name)' has an absurd shape \(shape) for \(dataLength) bytes of data") }
                count = product
            }
            guard count * elementSize == offsets[1] - offsets[0] else {
                throw fail("tensor '\(name)' of dtype \(dtype) and shape \(shape) needs \(count * elementSize) bytes, data_offsets give \(offsets[1] - offsets[0])")
            }
            ranges.append((offsets[0], offsets[1], name))
            entries[name] = Entry(dtype: dtype, shape: shape, data: file.subdata(in: (dataStart + offsets[0])..<(dataStart + offsets[1])))
        }
        ranges.sort { ($0.start, $0.end) < ($1.start, $1.end) }
        var covered = 0
        for range in ranges {
            guard range.start == covered else {
                throw fail(range.start < covered ? "tensor '\(range.name)' overlaps another (bytes \(range.start)..<\(range.end))"
                           : "bytes \(covered)..<\(range.start) of the data belong to no tensor (before '\(range.name)')")
            }
            covered = range.end
        }
        guard covered == dataLength else {
            throw fail("the tensors cover \(covered) of the \(dataLength) bytes of data: the file is not fully covered (a wrong header length?)")
        }
        return (entries, metadata)
    }

    /// Loads every tensor as `Scalar`, checking dtypes: F32 for Float, F64 for Double.
    public static func loadTensors<Scalar: TensorScalar>(_: Scalar.Type, from url: URL) throws
        -> (tensors: [String: Tensor<Scalar>], metadata: [String: String]) {
        let (entries, metadata) = try load(from: url)
        var problems: [String] = []
        var tensors: [String: Tensor<Scalar>] = [:]
        for (name, entry) in entries.sorted(by: { $0.key < $1.key }) {
            guard entry.dtype == Scalar.dtypeName else {
                problems.append("tensor '\(name)' has dtype \(entry.dtype), expected \(Scalar.dtypeName)")
                continue
            }
            tensors[name] = try entry.tensor(Scalar.self, name: name, path: url.path)
        }
        guard problems.isEmpty else { throw CheckpointError(path: url.path, reason: problems.joined(separator: "; ")) }
        return (tensors, metadata)
    }
}
