import CMPI
import FlashGrad
import Foundation

/// A collective that failed or a launch that cannot form a group, naming the rank and the reason.
public struct DistributedError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// How ``ProcessGroup/allReduce(_:_:)`` combines the ranks' values.
public enum ReduceOperation: Sendable {
    case sum
    /// The sum divided by the world size (what data-parallel gradients need).
    case average
}

/// The processes of one training run, as `torch.distributed`'s default group: over MPI (Open MPI)
/// for CPU tensors, over NCCL for CUDA tensors (its unique id made on rank 0 and broadcast over
/// MPI; one communicator per process and GPU). Collectives copy tensors through host arrays, so every call sees plain Swift
/// values; MPI's own errors stop the run with the rank that saw them. The element loops are
/// specialised for Float and Double: generic, they go through the witness table per element
/// (ten times slower, BENCHMARKS.md).
public final class ProcessGroup: @unchecked Sendable {
    public let rank: Int
    public let worldSize: Int
    /// This process's index among those on its machine: the GPU it should use, as `cuda(localRank)`.
    public let localRank: Int
    private var communicators: [Device: NCCLCommunicator] = [:]

    private init(rank: Int, worldSize: Int, localRank: Int) {
        self.rank = rank
        self.worldSize = worldSize
        self.localRank = localRank
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var world: ProcessGroup?

    /// Environment variables by which `mpirun` (Open MPI, MPICH or Slurm's PMI) marks its processes.
    static let launcherVariables = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"]

    /// Joins the run `mpirun` started (MPI is initialised once per process and finalised at exit).
    /// Throws when the process was not started by a launcher, saying how to start it.
    public static func fromEnvironment() throws -> ProcessGroup {
        lock.lock(); defer { lock.unlock() }
        if let world { return world }
        let environment = ProcessInfo.processInfo.environment
        guard launcherVariables.contains(where: { environment[$0] != nil }) else {
            throw DistributedError("not started by an MPI launcher (none of \(launcherVariables.joined(separator: ", ")) is set): "
                                   + "run N processes with `mpirun -np N <program>` (as root add --allow-run-as-root)")
        }
        var provided: Int32 = 0
        let status = MPI_Init_thread(nil, nil, flashgrad_mpi_thread_funneled(), &provided)
        guard status == MPI_SUCCESS else { throw DistributedError("MPI_Init_thread failed (\(status))") }
        // Errors come back as codes, reported with the rank, instead of MPI's own abort.
        MPI_Comm_set_errhandler(flashgrad_mpi_comm_world(), flashgrad_mpi_errors_return())
        atexit { var finalized: Int32 = 0; MPI_Finalized(&finalized); if finalized == 0 { MPI_Finalize() } }
        var rank: Int32 = 0, size: Int32 = 0
        MPI_Comm_rank(flashgrad_mpi_comm_world(), &rank)
        MPI_Comm_size(flashgrad_mpi_comm_world(), &size)
        let localRank = ["OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"].lazy.compactMap { environment[$0].flatMap(Int.init) }.first
        let group = ProcessGroup(rank: Int(rank), worldSize: Int(size), localRank: localRank ?? Int(rank))
        world = group
        return group
    }

    /// Stops every process of the run (MPI_Abort), after printing why on this rank: a rank that
    /// fails must not leave the others waiting in a collective.
    public func abort(_ reason: String) -> Never {
        FileHandle.standardError.write(Data("rank \(rank) of \(worldSize): \(reason); stopping every rank\n".utf8))
        MPI_Abort(flashgrad_mpi_comm_world(), 1)
        exit(1)
    }

    private func check(_ status: Int32, _ call: String) {
        guard status != MPI_SUCCESS else { return }
        var length: Int32 = 0
        var text = [CChar](repeating: 0, count: Int(flashgrad_mpi_max_error_string()) + 1)
        MPI_Error_string(status, &text, &length)
        abort("\(call) failed: \(String(cString: text))")
    }

    private static func datatype<Scalar: TensorScalar>(_: Scalar.Type) -> MPI_Datatype {
        Scalar.self == Float.self ? flashgrad_mpi_float() : flashgrad_mpi_double()
    }

    /// The NCCL communicator of this process's GPU `device`, made at first use: rank 0 makes the
    /// unique id and MPI broadcasts it, so every rank must reach this together (as every collective).
    private func communicator(for device: Device) -> NCCLCommunicator {
        if let known = communicators[device] { return known }
        var id = [UInt8](repeating: 0, count: 128)
        if rank == 0 {
            do { id = try NCCLCommunicator.uniqueID() } catch { abort("NCCL: \(error)") }
        }
        check(id.withUnsafeMutableBytes { MPI_Bcast($0.baseAddress, Int32($0.count), flashgrad_mpi_byte(), 0, flashgrad_mpi_comm_world()) },
              "MPI_Bcast of the NCCL unique id")
        do {
            let communicator = try NCCLCommunicator(uniqueID: id, rank: rank, worldSize: worldSize, device: device)
            communicators[device] = communicator
            return communicator
        } catch { abort("\(error)") }
    }

    /// The device of every tensor of one collective, which must agree.
    private func commonDevice<Scalar>(_ tensors: [Tensor<Scalar>], _ op: String) -> Device? {
        guard let device = tensors.first?.device else { return nil }
        if let other = tensors.first(where: { $0.device != device }) {
            abort("\(op): tensors on \(device) and \(other.device) in one call")
        }
        return device
    }

    /// Runs a collective on CUDA tensors through this process's NCCL communicator, on contiguous
    /// copies of strided views that are written back afterwards.
    private func throughNCCL<Scalar: TensorScalar>(_ tensors: [Tensor<Scalar>], on device: Device,
                                                   _ body: (NCCLCommunicator, [Tensor<Scalar>]) -> Void) {
        let data = withoutGradients { tensors.map { $0.contiguous() } }
        body(communicator(for: device), data)
        for (tensor, copy) in zip(tensors, data) where copy !== tensor { tensor.assign(copy) }
    }

    /// Combines each tensor over all ranks, in place: one all-reduce for all of them (MPI for CPU
    /// tensors, an NCCL group for CUDA tensors).
    public func allReduce<Scalar: TensorScalar>(_ tensors: [Tensor<Scalar>], _ operation: ReduceOperation = .sum) {
        startAllReduce(tensors, operation).wait()
    }

    /// Starts combining each tensor over all ranks and returns at once; ``PendingAllReduce/wait()``
    /// writes the results back. Every rank must start the same all-reduces in the same order.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func startAllReduce<Scalar: TensorScalar>(_ tensors: [Tensor<Scalar>], _ operation: ReduceOperation = .sum)
        -> PendingAllReduce<Scalar> {
        if let device = commonDevice(tensors, "allReduce"), device != .cpu {
            // NCCL already runs in order on the device's stream: issuing it is starting it.
            throughNCCL(tensors, on: device) { $0.allReduce($1, average: operation == .average) }
            return PendingAllReduce(group: self, tensors: [], operation: operation)
        }
        let pending = PendingAllReduce(group: self, tensors: tensors, operation: operation)
        guard pending.buffer.count > 0 else { return pending }
        let count = Int32(pending.buffer.count)
        check(MPI_Iallreduce(flashgrad_mpi_in_place(), pending.buffer.baseAddress, count, Self.datatype(Scalar.self), flashgrad_mpi_sum(),
                             flashgrad_mpi_comm_world(), &pending.request), "MPI_Iallreduce of \(count) \(Scalar.self)s")
        return pending
    }

    /// Waits for a nonblocking request, stopping every rank if it failed.
    func wait(_ request: inout MPI_Request?, _ what: String) { check(MPI_Wait(&request, nil), what) }

    /// Overwrites each tensor with rank `root`'s, with one MPI_Bcast for all of them.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func broadcast<Scalar: TensorScalar>(_ tensors: [Tensor<Scalar>], from root: Int = 0) {
        require(root >= 0 && root < worldSize, "broadcast: root \(root) outside 0..<\(worldSize)")
        if let device = commonDevice(tensors, "broadcast"), device != .cpu {
            throughNCCL(tensors, on: device) { $0.broadcast($1, from: root) }
            return
        }
        var values = tensors.flatMap(\.scalars)
        guard !values.isEmpty else { return }
        let count = Int32(values.count)
        check(values.withUnsafeMutableBufferPointer {
            MPI_Bcast($0.baseAddress, count, Self.datatype(Scalar.self), Int32(root), flashgrad_mpi_comm_world())
        }, "MPI_Bcast of \(values.count) \(Scalar.self)s from rank \(root)")
        scatter(values, into: tensors)
    }

    /// Every rank's `tensor`, stacked along a new first axis of size ``worldSize``.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func allGather<Scalar: TensorScalar>(_ tensor: Tensor<Scalar>) -> Tensor<Scalar> {
        let values = tensor.scalars
        var gathered = [Scalar](repeating: 0, count: values.count * worldSize)
        let count = Int32(values.count)
        check(values.withUnsafeBufferPointer { source in
            gathered.withUnsafeMutableBufferPointer {
                MPI_Allgather(source.baseAddress, count, Self.datatype(Scalar.self), $0.baseAddress, count, Self.datatype(Scalar.self),
                              flashgrad_mpi_comm_world())
            }
        }, "MPI_Allgather of \(values.count) \(Scalar.self)s")
        return Tensor(gathered, shape: [worldSize] + tensor.shape, device: tensor.device)
    }

    /// Waits until every rank has called it.
    public func barrier() { check(MPI_Barrier(flashgrad_mpi_comm_world()), "MPI_Barrier") }

    /// Writes consecutive runs of `values` back into `tensors`, each on its own device.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    func scatter<Scalar: TensorScalar>(_ values: [Scalar], into tensors: [Tensor<Scalar>]) {
        var start = 0
        for tensor in tensors {
            tensor.assign(Tensor(Array(values[start..<(start + tensor.count)]), shape: tensor.shape, device: tensor.device))
            start += tensor.count
        }
    }
}

/// An all-reduce in flight, from ``ProcessGroup/startAllReduce(_:_:)``: the tensors' values sit in
/// its own buffer (MPI reads and writes it while the caller goes on) until ``wait()`` writes the
/// results back into the tensors.
public final class PendingAllReduce<Scalar: TensorScalar> {
    private let group: ProcessGroup
    private let tensors: [Tensor<Scalar>]
    private let operation: ReduceOperation
    let buffer: UnsafeMutableBufferPointer<Scalar>
    var request: MPI_Request?
    private var finished = false

    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    init(group: ProcessGroup, tensors: [Tensor<Scalar>], operation: ReduceOperation) {
        self.group = group
        self.tensors = tensors
        self.operation = operation
        let values = tensors.flatMap(\.scalars)
        buffer = .allocate(capacity: values.count)
        _ = buffer.initialize(from: values)
        finished = values.isEmpty  // nothing to reduce: no request is made
    }

    /// Waits for the reduction and writes it into the tensors (averaged if asked); once.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func wait() {
        guard !finished else { return }
        finished = true
        group.wait(&request, "MPI_Wait for an all-reduce of \(buffer.count) \(Scalar.self)s")
        var values = Array(buffer)
        if operation == .average { values = values.map { $0 / Scalar(group.worldSize) } }
        group.scatter(values, into: tensors)
    }

    deinit {
        require(finished, "PendingAllReduce dropped before wait(): MPI would write into freed memory")
        buffer.deallocate()
    }
}
