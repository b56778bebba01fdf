import CNCCL
import Foundation

/// NCCL from `libnccl.so.2`, opened at run time like the rest of the CUDA backend.
struct NCCLAPI {
    let library: DynamicLibrary
    let ncclGetUniqueId: @convention(c) (UnsafeMutableRawPointer) -> Int32
    let ncclCommInitRank: UnsafeMutableRawPointer  // called through the C shim: its id is passed by value
    let ncclAllReduce: @convention(c) (CUdeviceptr, CUdeviceptr, Int, Int32, Int32, OpaqueHandle, OpaqueHandle) -> Int32
    let ncclBroadcast: @convention(c) (CUdeviceptr, CUdeviceptr, Int, Int32, Int32, OpaqueHandle, OpaqueHandle) -> Int32
    let ncclGroupStart: @convention(c) () -> Int32
    let ncclGroupEnd: @convention(c) () -> Int32
    let ncclGetErrorString: @convention(c) (Int32) -> UnsafePointer<CChar>?

    init() throws {
        let library = try DynamicLibrary(["libnccl.so.2", "libnccl.so"], what: "NCCL (libnccl.so.2)")
        self.library = library
        ncclGetUniqueId = try library.function("ncclGetUniqueId")
        ncclCommInitRank = try library.function("ncclCommInitRank", as: UnsafeMutableRawPointer.self)
        ncclAllReduce = try library.function("ncclAllReduce")
        ncclBroadcast = try library.function("ncclBroadcast")
        ncclGroupStart = try library.function("ncclGroupStart")
        ncclGroupEnd = try library.function("ncclGroupEnd")
        ncclGetErrorString = try library.function("ncclGetErrorString")
    }

    func check(_ result: Int32, _ call: String) throws {
        guard result != 0 else { return }
        throw CUDAError("\(call) failed: \(ncclGetErrorString(result).map { String(cString: $0) } ?? "NCCL error \(result)")")
    }
}

/// Collectives on CUDA tensors between processes, one GPU each, through NCCL on the CUDA backend's
/// stream. One process makes the ``uniqueID()`` and hands it to the others (FlashGradDistributed
/// broadcasts it over MPI); each then joins with its rank.
public final class NCCLCommunicator: @unchecked Sendable {
    public let rank: Int
    public let worldSize: Int
    public let device: Device
    private let api: NCCLAPI
    private let backend: CUDABackend
    private let communicator: OpaqueHandle

    /// The bytes of a new NCCL unique id (`ncclGetUniqueId`).
    public static func uniqueID() throws -> [UInt8] {
        let api = try NCCLAPI()
        var bytes = [UInt8](repeating: 0, count: Int(FLASHGRAD_NCCL_UNIQUE_ID_BYTES))
        try bytes.withUnsafeMutableBytes { try api.check(api.ncclGetUniqueId($0.baseAddress!), "ncclGetUniqueId") }
        return bytes
    }

    /// Joins the communicator named by `uniqueID` as `rank` of `worldSize`, on `device` (a GPU).
    public init(uniqueID: [UInt8], rank: Int, worldSize: Int, device: Device) throws {
        guard case .cuda(let index) = device else { throw CUDAError("NCCL communicates between GPUs; \(device) is not one") }
        guard uniqueID.count == Int(FLASHGRAD_NCCL_UNIQUE_ID_BYTES) else {
            throw CUDAError("an NCCL unique id has \(FLASHGRAD_NCCL_UNIQUE_ID_BYTES) bytes, got \(uniqueID.count)")
        }
        guard rank >= 0 && rank < worldSize else { throw CUDAError("NCCL rank \(rank) outside 0..<\(worldSize)") }
        let api = try NCCLAPI(), backend = try CUDABackend.shared(index: index)
        backend.runtime.makeCurrent()
        var communicator: UnsafeMutableRawPointer?
        let result = uniqueID.withUnsafeBytes { id in
            flashgrad_nccl_comm_init_rank(api.ncclCommInitRank, &communicator, Int32(worldSize),
                                          id.baseAddress!.assumingMemoryBound(to: CChar.self), Int32(rank))
        }
        try api.check(result, "ncclCommInitRank(rank \(rank) of \(worldSize) on \(device))")
        self.api = api
        self.backend = backend
        self.communicator = OpaquePointer(communicator)
        self.rank = rank
        self.worldSize = worldSize
        self.device = device
    }

    private func dataType<Scalar: TensorScalar>(_: Scalar.Type) -> Int32 { Scalar.self == Float.self ? 7 : 8 }  // ncclFloat32, ncclFloat64

    /// The tensor's first element on the device, for a contiguous tensor on this communicator's GPU.
    private func address<Scalar>(_ tensor: Tensor<Scalar>) -> CUdeviceptr {
        require(tensor.device == device, "NCCL on \(device): a tensor on \(tensor.device) with shape \(tensor.shape)")
        require(tensor.isContiguous, "NCCL: tensors must be contiguous, got shape \(tensor.shape) with strides \(tensor.strides)")
        return CUdeviceptr(tensor.storage.address) + CUdeviceptr(tensor.offset * MemoryLayout<Scalar>.stride)
    }

    /// Sums (or averages) each tensor over the ranks, in place.
    public func allReduce<Scalar: TensorScalar>(_ tensors: [Tensor<Scalar>], average: Bool) {
        flattened(tensors, "ncclAllReduce") { buffer, count in
            try api.check(api.ncclAllReduce(buffer, buffer, count, dataType(Scalar.self), average ? 4 : 0, communicator, nil),
                          "ncclAllReduce of \(count) \(Scalar.self)s")  // ncclAvg, ncclSum
        }
    }

    /// Overwrites each tensor with rank `root`'s, in place.
    public func broadcast<Scalar: TensorScalar>(_ tensors: [Tensor<Scalar>], from root: Int) {
        flattened(tensors, "ncclBroadcast") { buffer, count in
            try api.check(api.ncclBroadcast(buffer, buffer, count, dataType(Scalar.self), Int32(root), communicator, nil),
                          "ncclBroadcast of \(count) \(Scalar.self)s from rank \(root)")
        }
    }

    /// `collective` on one buffer holding all of `tensors`: several tensors are copied into one
    /// (a single launch) and back afterwards, as PyTorch's DDP flattens its buckets: one NCCL call on a
    /// large buffer is much faster than many grouped small ones (BENCHMARKS.md, data-parallel on two GPUs).
    private func flattened<Scalar: TensorScalar>(_ tensors: [Tensor<Scalar>], _ what: String,
                                                 _ collective: (CUdeviceptr, Int) throws -> Void) {
        backend.runtime.makeCurrent()
        let nonEmpty = tensors.filter { $0.count > 0 }
        guard nonEmpty.count > 1 else {
            run(what) { for tensor in nonEmpty { try collective(address(tensor), tensor.count) } }
            return
        }
        let total = nonEmpty.reduce(0) { $0 + $1.count }
        let flat = Tensor<Scalar>.uninitialized([total], on: device)
        var offset = 0
        let pieces = nonEmpty.map { tensor -> BufferView<Scalar> in
            defer { offset += tensor.count }
            return flat.viewing(.contiguous([tensor.count], offset: offset)).view
        }
        for tensor in nonEmpty { _ = address(tensor) }  // checks device and contiguity
        backend.copy(zip(nonEmpty, pieces).map { ($0.view, $1) })
        run(what) { try collective(address(flat), total) }
        backend.copy(zip(pieces, nonEmpty).map { ($0, $1.view) })
    }

    /// `body`'s calls as one NCCL group; a failure stops this process with the rank and NCCL's
    /// words, and its launcher (mpirun) then stops the others.
    private func run(_ what: String, _ body: () throws -> Void) {
        do {
            try api.check(api.ncclGroupStart(), "ncclGroupStart")
            try body()
            try api.check(api.ncclGroupEnd(), "ncclGroupEnd")
        } catch {
            fatalError("rank \(rank) of \(worldSize), \(device): \(what): \(error)")
        }
    }
}
