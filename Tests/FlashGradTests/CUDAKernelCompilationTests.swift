@testable import FlashGrad
import Foundation
import XCTest

/// The CUDA kernels' source compiled by NVRTC for an H100 (sm_90): NVRTC needs no GPU, so this runs
/// wherever NVRTC is found (CI installs it from PyPI, `nvidia-cuda-nvrtc`) and catches a kernel that
/// no longer compiles before it reaches a GPU. ptxas's report is read for spills.
final class CUDAKernelCompilationTests: XCTestCase {
    /// NVRTC from the usual places, else the file `FLASHGRAD_TEST_NVRTC` names (scripts/test.sh
    /// points it at the PyPI wheel's library).
    static func compiler() throws -> KernelCompiler {
        if let compiler = try? KernelCompiler() { return compiler }
        if let path = ProcessInfo.processInfo.environment["FLASHGRAD_TEST_NVRTC"] {
            return try KernelCompiler(nvrtc: NVRTCAPI(names: [path]))
        }
        throw XCTSkip("CUDA kernel compilation tests skipped: NVRTC not found (install PyPI's nvidia-cuda-nvrtc and set FLASHGRAD_TEST_NVRTC to its libnvrtc.so.13)")
    }

    /// Every kernel compiles for both precisions; each flash kernel the dispatcher can pick is in
    /// the CUBIN; the Float flash kernels (the ones timed against PyTorch) keep everything in
    /// registers. (Double's 32×64 forward spills a few bytes at 128 registers: printed, not failed.)
    func testEveryKernelCompilesForTheH100AndTheFloatFlashKernelsDoNotSpill() throws {
        let compiler = try Self.compiler()
        for scalar in ["float", "double"] {
            let started = Date()
            let compilation = try compiler.compile(source: CUDAKernelSource.source(scalar: scalar), architecture: "sm_90", reportResources: true)
            XCTAssertGreaterThan(compilation.cubin.count, 1000)
            // For reading the machine code: cuobjdump -sass <folder>/float-sm_90.cubin
            if let folder = ProcessInfo.processInfo.environment["FLASHGRAD_TEST_CUBIN_FOLDER"] {
                try Data(compilation.cubin).write(to: URL(fileURLWithPath: folder).appendingPathComponent("\(scalar)-sm_90.cubin"))
            }
            let kernels = KernelResources.parse(ptxasLog: compilation.log)
            print("NVRTC \(compiler.version.major).\(compiler.version.minor), sm_90, \(scalar): \(kernels.count) kernels in "
                  + String(format: "%.1f s", Date().timeIntervalSince(started)))
            let scalarBytes = scalar == "float" ? 4 : 8
            let flashNames = Set([32, 64, 128, 256].compactMap { dim in
                CUDAFlashAttentionSource.configuration(headDim: dim, valueDim: dim, scalarBytes: scalarBytes)
            }.flatMap { c in ["forward", "backward_kv", "backward_q"].map { "flash_\($0)_\(c.block)x\(c.dim)" } })
            XCTAssertEqual(flashNames.subtracting(kernels.map(\.name)), [], "flash kernels missing from the \(scalar) CUBIN")
            for kernel in kernels where kernel.name.hasPrefix("flash_") {
                print("  \(kernel.name): \(kernel.registers) registers, spills \(kernel.spillStores) B stored / \(kernel.spillLoads) B loaded")
                if scalar == "float" { XCTAssertEqual(kernel.spillStores + kernel.spillLoads, 0, "\(kernel.name) spills registers") }
            }
        }
    }

    func testResourceReportParsing() {
        let log = """
        ptxas info    : Compiling entry function 'k' for 'sm_90'
        ptxas info    : Function properties for k
        ptxas         .     8 bytes stack frame, 4 bytes spill stores, 12 bytes spill loads
        ptxas info    : Used 40 registers, used 1 barriers, 16 bytes cmem[0]
        """
        XCTAssertEqual(KernelResources.parse(ptxasLog: log),
                       [KernelResources(name: "k", registers: 40, spillStores: 4, spillLoads: 12, stackBytes: 8)])
    }
}
