import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Why the CUDA backend cannot be used: a library, a symbol or a call that failed, with where it
/// looked or what the driver said.
public struct CUDAError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// A shared library opened at run time: nothing CUDA is linked at build time, so that FlashGrad
/// builds and runs its CPU path on machines with no GPU and no toolkit.
final class DynamicLibrary: @unchecked Sendable {
    let path: String
    private let handle: UnsafeMutableRawPointer

    /// Opens the first of `names` found in `FLASHGRAD_CUDA_PATH`'s folder, then the usual CUDA
    /// folders, then the loader's own search (`LD_LIBRARY_PATH`, the system cache), as PyTorch and
    /// tinygrad do.
    init(_ names: [String], what: String) throws {
        var folders: [String] = []
        if let override = ProcessInfo.processInfo.environment["FLASHGRAD_CUDA_PATH"] { folders += [override, override + "/lib64", override + "/lib"] }
        folders += ["/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib", "/usr/lib/x86_64-linux-gnu",
                    "/usr/lib/wsl/lib"]
        var tried: [String] = []
        for name in names {
            for candidate in folders.map({ "\($0)/\(name)" }) + [name] {
                tried.append(candidate)
                if candidate.contains("/") && !FileManager.default.fileExists(atPath: candidate) { continue }
                if let handle = dlopen(candidate, RTLD_NOW | RTLD_GLOBAL) {
                    self.handle = handle
                    path = candidate
                    return
                }
            }
        }
        throw CUDAError("\(what) not found: tried \(names.joined(separator: ", ")) in FLASHGRAD_CUDA_PATH, "
                        + "/usr/local/cuda/lib64 and the loader's path (LD_LIBRARY_PATH); set FLASHGRAD_CUDA_PATH to the folder that holds it")
    }

    /// The function `name` as the C type `F`.
    func function<F>(_ name: String, as _: F.Type = F.self) throws -> F {
        guard let symbol = dlsym(handle, name) else { throw CUDAError("symbol \(name) not found in \(path)") }
        return unsafeBitCast(symbol, to: F.self)
    }
}

typealias CUresult = Int32
typealias CUdeviceptr = UInt64
typealias OpaqueHandle = OpaquePointer?

/// The driver API entry points FlashGrad calls, from `libcuda.so.1` (the driver's own library,
/// never the toolkit's stub), bound by their versioned `_v2` names: the plain names are the
/// legacy 32-bit ABI.
struct CUDADriverAPI {
    let library: DynamicLibrary
    let cuInit: @convention(c) (UInt32) -> CUresult
    let cuDeviceGetCount: @convention(c) (UnsafeMutablePointer<Int32>) -> CUresult
    let cuDeviceGet: @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> CUresult
    let cuDeviceGetAttribute: @convention(c) (UnsafeMutablePointer<Int32>, Int32, Int32) -> CUresult
    let cuDeviceGetName: @convention(c) (UnsafeMutablePointer<CChar>, Int32, Int32) -> CUresult
    let cuDevicePrimaryCtxRetain: @convention(c) (UnsafeMutablePointer<OpaqueHandle>, Int32) -> CUresult
    let cuCtxSetCurrent: @convention(c) (OpaqueHandle) -> CUresult
    let cuCtxGetCurrent: @convention(c) (UnsafeMutablePointer<OpaqueHandle>) -> CUresult
    let cuCtxSynchronize: @convention(c) () -> CUresult
    let cuMemAlloc: @convention(c) (UnsafeMutablePointer<CUdeviceptr>, Int) -> CUresult
    let cuMemFree: @convention(c) (CUdeviceptr) -> CUresult
    let cuMemcpyHtoDAsync: @convention(c) (CUdeviceptr, UnsafeRawPointer, Int, OpaqueHandle) -> CUresult
    let cuMemcpyDtoH: @convention(c) (UnsafeMutableRawPointer, CUdeviceptr, Int) -> CUresult
    let cuMemGetInfo: @convention(c) (UnsafeMutablePointer<Int>, UnsafeMutablePointer<Int>) -> CUresult
    let cuModuleLoadData: @convention(c) (UnsafeMutablePointer<OpaqueHandle>, UnsafeRawPointer) -> CUresult
    let cuModuleGetFunction: @convention(c) (UnsafeMutablePointer<OpaqueHandle>, OpaqueHandle, UnsafePointer<CChar>) -> CUresult
    let cuLaunchKernel: @convention(c) (OpaqueHandle, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, OpaqueHandle,
                                        UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> CUresult
    let cuGetErrorString: @convention(c) (CUresult, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> CUresult
    let cuFuncSetAttribute: @convention(c) (OpaqueHandle, Int32, Int32) -> CUresult

    init() throws {
        let library = try DynamicLibrary(["libcuda.so.1"], what: "the CUDA driver (libcuda.so.1)")
        self.library = library
        cuInit = try library.function("cuInit")
        cuDeviceGetCount = try library.function("cuDeviceGetCount")
        cuDeviceGet = try library.function("cuDeviceGet")
        cuDeviceGetAttribute = try library.function("cuDeviceGetAttribute")
        cuDeviceGetName = try library.function("cuDeviceGetName")
        cuDevicePrimaryCtxRetain = try library.function("cuDevicePrimaryCtxRetain")
        cuCtxSetCurrent = try library.function("cuCtxSetCurrent")
        cuCtxGetCurrent = try library.function("cuCtxGetCurrent")
        cuCtxSynchronize = try library.function("cuCtxSynchronize")
        cuMemAlloc = try library.function("cuMemAlloc_v2")
        cuMemFree = try library.function("cuMemFree_v2")
        cuMemcpyHtoDAsync = try library.function("cuMemcpyHtoDAsync_v2")
        cuMemcpyDtoH = try library.function("cuMemcpyDtoH_v2")
        cuMemGetInfo = try library.function("cuMemGetInfo_v2")
        cuModuleLoadData = try library.function("cuModuleLoadData")
        cuModuleGetFunction = try library.function("cuModuleGetFunction")
        cuLaunchKernel = try library.function("cuLaunchKernel")
        cuGetErrorString = try library.function("cuGetErrorString")
        cuFuncSetAttribute = try library.function("cuFuncSetAttribute")
    }

    /// Throws with the call's name and the driver's words unless `result` is CUDA_SUCCESS.
    func check(_ result: CUresult, _ call: String) throws {
        guard result != 0 else { return }
        var text: UnsafePointer<CChar>?
        _ = cuGetErrorString(result, &text)
        throw CUDAError("\(call) failed: \(text.map { String(cString: $0) } ?? "error \(result)")")
    }
}

/// NVRTC, from `libnvrtc.so.13` (or `.12`): CUDA C source to a CUBIN at run time.
struct NVRTCAPI {
    let library: DynamicLibrary
    let nvrtcVersion: @convention(c) (UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>) -> Int32
    let nvrtcCreateProgram: @convention(c) (UnsafeMutablePointer<OpaqueHandle>, UnsafePointer<CChar>, UnsafePointer<CChar>?, Int32,
                                            UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<UnsafePointer<CChar>?>?) -> Int32
    let nvrtcCompileProgram: @convention(c) (OpaqueHandle, Int32, UnsafePointer<UnsafePointer<CChar>?>?) -> Int32
    let nvrtcGetCUBINSize: @convention(c) (OpaqueHandle, UnsafeMutablePointer<Int>) -> Int32
    let nvrtcGetCUBIN: @convention(c) (OpaqueHandle, UnsafeMutablePointer<CChar>) -> Int32
    let nvrtcGetProgramLogSize: @convention(c) (OpaqueHandle, UnsafeMutablePointer<Int>) -> Int32
    let nvrtcGetProgramLog: @convention(c) (OpaqueHandle, UnsafeMutablePointer<CChar>) -> Int32
    let nvrtcDestroyProgram: @convention(c) (UnsafeMutablePointer<OpaqueHandle>) -> Int32

    /// `names`: the library's file names (or paths) to try, newest first.
    init(names: [String] = ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"]) throws {
        let library = try DynamicLibrary(names, what: "NVRTC (libnvrtc.so.13 or .12)")
        self.library = library
        nvrtcVersion = try library.function("nvrtcVersion")
        nvrtcCreateProgram = try library.function("nvrtcCreateProgram")
        nvrtcCompileProgram = try library.function("nvrtcCompileProgram")
        nvrtcGetCUBINSize = try library.function("nvrtcGetCUBINSize")
        nvrtcGetCUBIN = try library.function("nvrtcGetCUBIN")
        nvrtcGetProgramLogSize = try library.function("nvrtcGetProgramLogSize")
        nvrtcGetProgramLog = try library.function("nvrtcGetProgramLog")
        nvrtcDestroyProgram = try library.function("nvrtcDestroyProgram")
    }
}

/// cuBLAS, from `libcublas.so.13` (or `.12`), for matrix products.
struct CUBLASAPI {
    // (handle, transa, transb, m, n, k, α, A, lda, [strideA,] B, ldb, [strideB,] β, C, ldc, [strideC, batchCount]); α, β on the host.
    typealias FloatGemm = @convention(c) (OpaqueHandle, Int32, Int32, Int32, Int32, Int32, UnsafePointer<Float>, CUdeviceptr, Int32,
                                          CUdeviceptr, Int32, UnsafePointer<Float>, CUdeviceptr, Int32) -> Int32
    typealias DoubleGemm = @convention(c) (OpaqueHandle, Int32, Int32, Int32, Int32, Int32, UnsafePointer<Double>, CUdeviceptr, Int32,
                                           CUdeviceptr, Int32, UnsafePointer<Double>, CUdeviceptr, Int32) -> Int32
    typealias FloatGemmStridedBatched = @convention(c) (OpaqueHandle, Int32, Int32, Int32, Int32, Int32, UnsafePointer<Float>,
                                                        CUdeviceptr, Int32, Int64, CUdeviceptr, Int32, Int64, UnsafePointer<Float>,
                                                        CUdeviceptr, Int32, Int64, Int32) -> Int32
    typealias DoubleGemmStridedBatched = @convention(c) (OpaqueHandle, Int32, Int32, Int32, Int32, Int32, UnsafePointer<Double>,
                                                         CUdeviceptr, Int32, Int64, CUdeviceptr, Int32, Int64, UnsafePointer<Double>,
                                                         CUdeviceptr, Int32, Int64, Int32) -> Int32
    let library: DynamicLibrary
    let cublasCreate: @convention(c) (UnsafeMutablePointer<OpaqueHandle>) -> Int32
    let cublasSetMathMode: @convention(c) (OpaqueHandle, Int32) -> Int32
    let cublasSgemm: FloatGemm
    let cublasDgemm: DoubleGemm
    let cublasSgemmStridedBatched: FloatGemmStridedBatched
    let cublasDgemmStridedBatched: DoubleGemmStridedBatched

    init() throws {
        let library = try DynamicLibrary(["libcublas.so.13", "libcublas.so.12", "libcublas.so"], what: "cuBLAS (libcublas.so.13 or .12)")
        self.library = library
        cublasCreate = try library.function("cublasCreate_v2")
        cublasSetMathMode = try library.function("cublasSetMathMode")
        cublasSgemm = try library.function("cublasSgemm_v2")
        cublasDgemm = try library.function("cublasDgemm_v2")
        cublasSgemmStridedBatched = try library.function("cublasSgemmStridedBatched")
        cublasDgemmStridedBatched = try library.function("cublasDgemmStridedBatched")
    }
}
