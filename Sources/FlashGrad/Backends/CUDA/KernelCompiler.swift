import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// CUDA C source to a CUBIN through NVRTC. It needs no GPU and no driver, so the kernels' source
/// can be compiled (and its register use read) on any machine that has NVRTC, CI's included.
struct KernelCompiler {
    private let nvrtc: NVRTCAPI

    /// What NVRTC made of a source: the CUBIN, and its log (with ptxas's register and spill
    /// report when asked for).
    struct Compilation {
        let cubin: [UInt8]
        let log: String
    }

    init(nvrtc: NVRTCAPI? = nil) throws {
        self.nvrtc = try nvrtc ?? NVRTCAPI()
    }

    /// NVRTC's version, as (major, minor).
    var version: (major: Int, minor: Int) {
        var major: Int32 = 0, minor: Int32 = 0
        _ = nvrtc.nvrtcVersion(&major, &minor)
        return (Int(major), Int(minor))
    }

    /// Compiles `source` for `architecture` ("sm_90"): a CUBIN, not PTX (PTX from a newer NVRTC
    /// fails on an older driver). `reportResources` adds ptxas's per-kernel registers and spills to the log.
    func compile(source: String, architecture: String, reportResources: Bool = false) throws -> Compilation {
        var program: OpaqueHandle = nil
        guard nvrtc.nvrtcCreateProgram(&program, source, "flashgrad.cu", 0, nil, nil) == 0 else { throw CUDAError("nvrtcCreateProgram failed") }
        defer { _ = nvrtc.nvrtcDestroyProgram(&program) }
        let options = ["--gpu-architecture=\(architecture)", "--std=c++17", "-default-device"] + (reportResources ? ["--ptxas-options=-v"] : [])
        let cOptions = options.map { strdup($0) }
        defer { cOptions.forEach { free($0) } }
        let status = cOptions.map { UnsafePointer($0) }.withUnsafeBufferPointer { nvrtc.nvrtcCompileProgram(program, Int32(options.count), $0.baseAddress) }
        var logSize = 0
        _ = nvrtc.nvrtcGetProgramLogSize(program, &logSize)
        var logBytes = [CChar](repeating: 0, count: logSize + 1)
        _ = nvrtc.nvrtcGetProgramLog(program, &logBytes)
        let log = String(cString: logBytes)
        guard status == 0 else {
            throw CUDAError("NVRTC \(version.major).\(version.minor) could not compile FlashGrad's kernels for \(architecture): \(log)")
        }
        var size = 0
        guard nvrtc.nvrtcGetCUBINSize(program, &size) == 0, size > 0 else { throw CUDAError("nvrtcGetCUBINSize failed") }
        var cubin = [CChar](repeating: 0, count: size)
        guard nvrtc.nvrtcGetCUBIN(program, &cubin) == 0 else { throw CUDAError("nvrtcGetCUBIN failed") }
        return Compilation(cubin: cubin.map { UInt8(bitPattern: $0) }, log: log)
    }

    /// ``compile(source:architecture:reportResources:)``'s CUBIN, from the disk cache when the
    /// same source, architecture and NVRTC version were compiled before (`$FLASHGRAD_CACHE` or
    /// `~/.cache/flashgrad/kernels`): a fresh process skips the tens of seconds NVRTC takes.
    func cachedCUBIN(source: String, architecture: String) throws -> [UInt8] {
        let key = String(format: "%016llx", Self.hash(source)) + "-\(architecture)-nvrtc\(version.major).\(version.minor)"
        let folder = ProcessInfo.processInfo.environment["FLASHGRAD_CACHE"].map { URL(fileURLWithPath: $0) }
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/flashgrad/kernels")
        let file = folder.appendingPathComponent(key + ".cubin")
        if let cached = try? Data(contentsOf: file), !cached.isEmpty { return [UInt8](cached) }
        let cubin = try compile(source: source, architecture: architecture).cubin
        // Written to a temporary name and renamed, so a concurrent process never reads half a file.
        try? FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let temporary = folder.appendingPathComponent(".\(key).\(ProcessInfo.processInfo.processIdentifier).tmp")
        if (try? Data(cubin).write(to: temporary)) != nil { _ = rename(temporary.path, file.path) }
        return cubin
    }

    /// FNV-1a over the source's bytes: stable across runs (Swift's `Hasher` is seeded per process).
    private static func hash(_ text: String) -> UInt64 {
        var value: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 { value = (value ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return value
    }
}

/// One kernel's resources as ptxas reported them.
struct KernelResources: Equatable {
    let name: String
    let registers: Int
    let spillStores: Int
    let spillLoads: Int
    let stackBytes: Int

    /// Every kernel in a ptxas `-v` log, in order of appearance.
    static func parse(ptxasLog log: String) -> [KernelResources] {
        var result: [KernelResources] = []
        var name: String?, stack = 0, stores = 0, loads = 0
        for line in log.split(separator: "\n").map(String.init) {
            if let range = line.range(of: "Function properties for ") {
                name = String(line[range.upperBound...]).trimmingCharacters(in: .whitespaces)
            } else if line.contains("bytes stack frame") {
                let numbers = line.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
                if numbers.count >= 3 { (stack, stores, loads) = (numbers[0], numbers[1], numbers[2]) }
            } else if let range = line.range(of: "Used "), let current = name {
                let registers = Int(line[range.upperBound...].prefix(while: \.isNumber)) ?? 0
                result.append(KernelResources(name: current, registers: registers, spillStores: stores, spillLoads: loads, stackBytes: stack))
                name = nil
            }
        }
        return result
    }
}
