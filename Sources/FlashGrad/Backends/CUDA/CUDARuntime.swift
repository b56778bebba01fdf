import Foundation

/// One CUDA device as FlashGrad drives it: the driver's primary context (the one cuBLAS picks up),
/// the legacy default stream (launches are asynchronous; the host waits only where it reads values),
/// kernels compiled by NVRTC for the device's own architecture, and a cuBLAS handle.
final class CUDARuntime: @unchecked Sendable {
    let index: Int
    let driver: CUDADriverAPI
    /// sm_XY of the device (attributes 75 and 76: compute capability major and minor).
    let architecture: String
    /// The device's model ("NVIDIA H100 80GB HBM3").
    let name: String
    private let context: OpaqueHandle
    private let compiler: KernelCompiler
    private let cublas: CUBLASAPI
    private let cublasHandle: OpaqueHandle
    private let lock = NSLock()
    /// Loaded kernels by precision, then name.
    private var functions: [String: [String: OpaqueHandle]] = [:]
    private var modules: [String: OpaqueHandle] = [:]
    private var launches = 0
    /// Dynamic shared memory each kernel was allowed so far.
    private var sharedOptIn: [OpaqueHandle: Int] = [:]
    private var mathMode: Int32 = 0

    /// Kernels launched so far.
    var launchCount: Int { lock.lock(); defer { lock.unlock() }; return launches }

    init(index: Int) throws {
        self.index = index
        driver = try CUDADriverAPI()
        try driver.check(driver.cuInit(0), "cuInit")
        var count: Int32 = 0
        try driver.check(driver.cuDeviceGetCount(&count), "cuDeviceGetCount")
        guard index < count else { throw CUDAError("cuda:\(index) does not exist: the driver reports \(count) device(s)") }
        var device: Int32 = 0
        try driver.check(driver.cuDeviceGet(&device, Int32(index)), "cuDeviceGet(\(index))")
        var major: Int32 = 0, minor: Int32 = 0
        try driver.check(driver.cuDeviceGetAttribute(&major, 75, device), "cuDeviceGetAttribute(compute capability major)")
        try driver.check(driver.cuDeviceGetAttribute(&minor, 76, device), "cuDeviceGetAttribute(compute capability minor)")
        architecture = "sm_\(major)\(minor)"
        var nameBytes = [CChar](repeating: 0, count: 256)
        try driver.check(driver.cuDeviceGetName(&nameBytes, Int32(nameBytes.count - 1), device), "cuDeviceGetName")
        name = String(cString: nameBytes)
        var context: OpaqueHandle = nil
        try driver.check(driver.cuDevicePrimaryCtxRetain(&context, device), "cuDevicePrimaryCtxRetain")
        self.context = context
        try driver.check(driver.cuCtxSetCurrent(context), "cuCtxSetCurrent")
        compiler = try KernelCompiler()
        cublas = try CUBLASAPI()
        var handle: OpaqueHandle = nil
        let status = cublas.cublasCreate(&handle)
        guard status == 0 else { throw CUDAError("cublasCreate failed with status \(status) on cuda:\(index)") }
        cublasHandle = handle
    }

    /// Makes this device's context current on the calling thread (every backend entry calls it:
    /// ops may run on any thread).
    func makeCurrent() {
        var current: OpaqueHandle = nil
        _ = driver.cuCtxGetCurrent(&current)
        if current != context { check(driver.cuCtxSetCurrent(context), "cuCtxSetCurrent") }
    }

    /// Stops with the call and the driver's words on failure: a failed launch or copy leaves the
    /// tensors involved undefined, so it cannot be a recoverable error.
    func check(_ result: CUresult, _ call: String) {
        do { try driver.check(result, call) } catch { fatalError("cuda:\(index): \(error)") }
    }

    /// Waits for every launch so far (and reports the first failure among them).
    func synchronize() { check(driver.cuCtxSynchronize(), "cuCtxSynchronize") }

    /// Host → device on the stream, in order with the launches, without waiting for them: the
    /// driver stages pageable memory before it returns, so `bytes` may go right after. (The
    /// synchronous copy would drain the stream first, and a step uploads indices and masks dozens
    /// of times.)
    func copyToDevice(_ address: CUdeviceptr, from bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        makeCurrent()
        check(driver.cuMemcpyHtoDAsync(address, base, bytes.count, nil), "cuMemcpyHtoDAsync")
    }

    // MARK: Kernels

    /// The kernel `name` of the module for `scalar` ("float" or "double"), compiled at first use.
    func function(_ name: String, scalar: String) -> OpaqueHandle {
        lock.lock(); defer { lock.unlock() }
        if let function = functions[scalar]?[name] { return function }
        let module = modules[scalar] ?? loadModule(scalar: scalar)
        modules[scalar] = module
        var function: OpaqueHandle = nil
        check(driver.cuModuleGetFunction(&function, module, name), "cuModuleGetFunction(\(name))")
        functions[scalar, default: [:]][name] = function
        return function
    }

    private func loadModule(scalar: String) -> OpaqueHandle {
        let source = CUDAKernelSource.source(scalar: scalar)
        let cubin: [UInt8]
        do { cubin = try compiler.cachedCUBIN(source: source, architecture: architecture) } catch { fatalError("cuda:\(index): \(error)") }
        var module: OpaqueHandle = nil
        cubin.withUnsafeBytes { check(driver.cuModuleLoadData(&module, $0.baseAddress!), "cuModuleLoadData(\(scalar) kernels)") }
        return module
    }

    /// Launches `function` on the default stream with `arguments` (each a value whose bytes are the
    /// kernel parameter), over `blocks` of ``CUDAKernelSource/threadsPerBlock`` threads.
    func launch(_ function: OpaqueHandle, blocks: Int, _ arguments: [KernelArgument]) {
        launch(function, grid: (blocks, 1), threads: CUDAKernelSource.threadsPerBlock, sharedBytes: 0, arguments)
    }

    /// Launches `function` over a grid of `grid.x` × `grid.y` blocks of `threads` threads, with
    /// `sharedBytes` of dynamic shared memory (past 48 KiB a kernel must opt in, once).
    func launch(_ function: OpaqueHandle, grid: (x: Int, y: Int), threads: Int, sharedBytes: Int, _ arguments: [KernelArgument]) {
        guard grid.x > 0 && grid.y > 0 else { return }
        makeCurrent()
        lock.lock()
        launches += 1
        let optIn = sharedBytes > 48 << 10 && (sharedOptIn[function] ?? 0) < sharedBytes
        if optIn { sharedOptIn[function] = sharedBytes }
        lock.unlock()
        // CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
        if optIn { check(driver.cuFuncSetAttribute(function, 8, Int32(sharedBytes)), "cuFuncSetAttribute(\(sharedBytes) bytes of shared memory)") }
        // All parameters in one buffer, each at an 8-byte-aligned offset (the driver copies them at launch).
        var offsets: [Int] = [], size = 0
        for argument in arguments {
            offsets.append(size)
            size += (argument.bytes.count + 7) / 8 * 8
        }
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: Swift.max(size, 8), alignment: 16)
        defer { buffer.deallocate() }
        for (argument, offset) in zip(arguments, offsets) {
            argument.bytes.withUnsafeBytes { (buffer + offset).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        }
        var parameters: [UnsafeMutableRawPointer?] = offsets.map { buffer + $0 }
        let result = parameters.withUnsafeMutableBufferPointer { buffer in
            driver.cuLaunchKernel(function, UInt32(grid.x), UInt32(grid.y), 1, UInt32(threads), 1, 1, UInt32(sharedBytes), nil,
                                  buffer.baseAddress, nil)
        }
        check(result, "cuLaunchKernel")
        #if DEBUG
        synchronize()  // surface a kernel's failure at the op that launched it
        #endif
    }

    /// Blocks for a grid-stride loop over `count` elements: enough to fill the device, no more.
    static func blocks(for count: Int) -> Int {
        Swift.min(Swift.max((count + CUDAKernelSource.threadsPerBlock - 1) / CUDAKernelSource.threadsPerBlock, 1), 65_535)
    }

    // MARK: cuBLAS

    /// Column-major gemm(s) on the default stream; `batch` > 1 with element strides between matrices.
    func gemm<T: TensorScalar>(_: T.Type, transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
                               a: CUdeviceptr, lda: Int, strideA: Int, b: CUdeviceptr, ldb: Int, strideB: Int,
                               c: CUdeviceptr, ldc: Int, strideC: Int, batch: Int, tensorFloat32: Bool) {
        makeCurrent()
        // CUBLAS_DEFAULT_MATH (0) is exact FP32; CUBLAS_TF32_TENSOR_OP_MATH (3) rounds inputs to TF32.
        let mode: Int32 = T.self == Float.self && tensorFloat32 ? 3 : 0
        lock.lock()
        if mode != mathMode {
            _ = cublas.cublasSetMathMode(cublasHandle, mode)
            mathMode = mode
        }
        lock.unlock()
        let opA: Int32 = transposeA ? 1 : 0, opB: Int32 = transposeB ? 1 : 0
        var status: Int32
        if T.self == Float.self {
            var one: Float = 1, zero: Float = 0
            status = batch == 1
                ? cublas.cublasSgemm(cublasHandle, opA, opB, Int32(m), Int32(n), Int32(k), &one, a, Int32(lda), b, Int32(ldb), &zero, c, Int32(ldc))
                : cublas.cublasSgemmStridedBatched(cublasHandle, opA, opB, Int32(m), Int32(n), Int32(k), &one, a, Int32(lda), Int64(strideA),
                                                   b, Int32(ldb), Int64(strideB), &zero, c, Int32(ldc), Int64(strideC), Int32(batch))
        } else {
            var one: Double = 1, zero: Double = 0
            status = batch == 1
                ? cublas.cublasDgemm(cublasHandle, opA, opB, Int32(m), Int32(n), Int32(k), &one, a, Int32(lda), b, Int32(ldb), &zero, c, Int32(ldc))
                : cublas.cublasDgemmStridedBatched(cublasHandle, opA, opB, Int32(m), Int32(n), Int32(k), &one, a, Int32(lda), Int64(strideA),
                                                   b, Int32(ldb), Int64(strideB), &zero, c, Int32(ldc), Int64(strideC), Int32(batch))
        }
        require(status == 0, "cuda:\(index): cuBLAS gemm (m \(m), n \(n), k \(k), batch \(batch)) failed with status \(status)")
    }
}

/// One kernel parameter: the bytes the kernel reads for it.
struct KernelArgument {
    let bytes: [UInt8]

    init(bytes: [UInt8]) { self.bytes = bytes }

    init<Value>(_ value: Value) {
        bytes = withUnsafeBytes(of: value) { Array($0) }
    }
}
