import ArgumentParser
import ExampleSupport
import FlashGrad
import FlashGradDistributed
import FlashGradModels
import Foundation

/// All-reduce time and bandwidth of ``ProcessGroup`` under `mpirun -np N`: single tensors of
/// several sizes, and the gradients of `reverse`'s default model in ``DataParallel``'s buckets.
/// Bandwidths as nccl-tests defines them: algbw = bytes / time, busbw = algbw · 2(N − 1)/N (the
/// bytes each link carries in a ring, comparable across N). `scripts/bench/torch_allreduce.py`
/// times `torch.distributed` on the same sizes.
@main
struct AllReduceBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "allreduce-bench", abstract: "All-reduce time and bus bandwidth of FlashGrad's process group (run under mpirun).")

    @Option(help: "Device: cpu (MPI) or cuda (each rank on its local rank's GPU, NCCL).") var device = "cuda"
    @Option(help: "Comma-separated sizes in bytes of Float32 tensors.") var sizes = "65536,1048576,4194304,26214400,104857600"
    @Option(help: "Timed all-reduces per size (after 5 of warm-up); the median is reported.") var iterations = 20

    func run() throws {
        let group = try ProcessGroup.fromEnvironment()
        var device = try parseDevice(self.device)
        if case .cuda = device { device = .cuda(group.localRank); try device.checkAvailable() }
        Device.default = device
        let byteSizes = sizes.split(separator: ",").compactMap { Int($0) }
        guard !byteSizes.isEmpty, byteSizes.allSatisfy({ $0 >= 4 }) else { throw ValidationError("--sizes must be byte counts ≥ 4, got '\(sizes)'") }

        // Each timed call ends with a read of one element, which waits for the device (a no-op on the CPU).
        func median(_ tensors: [Tensor<Float>]) -> Double {
            var times: [Double] = []
            for iteration in 0..<(iterations + 5) {
                group.barrier()
                waitForDevice(tensors[0])
                let start = DispatchTime.now().uptimeNanoseconds
                group.allReduce(tensors, .average)
                waitForDevice(tensors[0])
                if iteration >= 5 { times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9) }
            }
            return times.sorted()[times.count / 2]
        }
        func waitForDevice(_ tensor: Tensor<Float>) { _ = tensor.reshape([tensor.count]).slice(axis: 0, 0..<1).item }
        func report(_ name: String, bytes: Int, seconds: Double) {
            guard group.rank == 0 else { return }
            let algorithmBandwidth = Double(bytes) / seconds / 1e9
            let busBandwidth = algorithmBandwidth * 2 * Double(group.worldSize - 1) / Double(group.worldSize)
            print(String(format: "%-34@ %12d %10.1f %10.2f %10.2f", name as NSString, bytes, seconds * 1e6, algorithmBandwidth, busBandwidth))
        }
        if group.rank == 0 {
            print("allreduce-bench: \(group.worldSize) ranks on \(device)\(device == .cpu ? "" : " (one GPU per rank)"), median of \(iterations)")
            print(String(format: "%-34@ %12@ %10@ %10@ %10@", "tensors" as NSString, "bytes" as NSString, "time_us" as NSString,
                         "algbw_GB/s" as NSString, "busbw_GB/s" as NSString))
        }
        for bytes in byteSizes {
            let tensor = Tensor<Float>.ones([bytes / 4])
            report("one tensor", bytes: bytes, seconds: median([tensor]))
        }
        // The reverse example's default model, its gradients in DataParallel's buckets.
        let model = Transformer<Float>(Transformer<Float>.Configuration(vocabularySize: 13), implementation: NaiveAttention())
        let parallel = DataParallel(model, group: group)
        for (index, bucket) in parallel.buckets.enumerated() {
            let gradients = bucket.map { $0.zerosLike() + 1 }
            report("reverse's model, bucket \(index + 1) (\(bucket.count) tensors)", bytes: gradients.reduce(0) { $0 + $1.count * 4 },
                   seconds: median(gradients))
        }
    }
}
