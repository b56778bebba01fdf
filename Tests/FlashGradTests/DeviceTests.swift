import Dispatch
import FlashGrad
import XCTest

/// A value two threads hand over; each test orders the accesses with semaphores.
final class Shared<Value>: @unchecked Sendable {
    var value: Value
    init(_ value: Value) { self.value = value }
}

final class DeviceTests: XCTestCase {
    func testTensorsLiveOnTheDefaultDeviceUnlessGivenOne() {
        XCTAssertEqual(Device.default, .cpu)
        XCTAssertEqual(Tensor<Float>.zeros([2]).device, .cpu)
        XCTAssertEqual(Tensor<Float>([1, 2], device: .cpu).device, .cpu)
        XCTAssertEqual(withDevice(.cpu) { Tensor<Double>.normal([3]).device }, .cpu)
        XCTAssertEqual((Tensor<Float>.ones([2, 2]) * 3).device, .cpu)
        XCTAssertEqual(Device.cuda(1).description, "cuda:1")
    }

    func testScopedDefaultIsPerThread() {
        // Inside withDevice on this thread, another thread still sees the process default.
        let seenElsewhere = Shared(Device.cuda(7))
        withDevice(.cuda(3)) {
            XCTAssertEqual(Device.default, .cuda(3))
            let done = DispatchSemaphore(value: 0)
            Thread { seenElsewhere.value = Device.default; done.signal() }.start()
            done.wait()
        }
        XCTAssertEqual(seenElsewhere.value, .cpu)
        XCTAssertEqual(Device.default, .cpu)
    }

    func testUnavailableDeviceIsAThrownErrorNamingIt() {
        // Asking is safe on any machine; without a GPU the error names the device and what is missing.
        XCTAssertTrue(Device.cpu.isAvailable)
        XCTAssertFalse(Device.cpu.name.isEmpty)
        if !Device.cuda(0).isAvailable {
            XCTAssertThrowsError(try Device.cuda(0).checkAvailable()) { error in
                XCTAssertTrue("\(error)".hasPrefix("device cuda:0 is not available: "), "\(error)")
            }
        }
        XCTAssertThrowsError(try Device.cuda(1000).checkAvailable()) { error in
            XCTAssertTrue("\(error)".hasPrefix("device cuda:1000 is not available: "), "\(error)")
        }
        XCTAssertThrowsError(try Device.cuda(-1).checkAvailable()) { error in
            XCTAssertEqual("\(error)", "device cuda:-1 has a negative index")
        }
    }

    func testDeviceMismatchMessageNamesTheOpDevicesAndShapes() {
        let error = DeviceError.mismatch(op: "matmul", devices: (.cpu, .cuda(0)), shapes: ([2, 3], [3, 4]))
        XCTAssertEqual("\(error)", "matmul: operands are on different devices: cpu (shape [2, 3]) and cuda:0 (shape [3, 4]); move one with .to(_:)")
    }

    /// On the CPU `to(.cpu)` is the identity; `CUDABackendTests` runs the same round trip through the GPU.
    func testToRoundTripCarriesGradientsBack() {
        assertRoundTripCarriesGradientsBack(through: .cpu)
    }
}

func assertRoundTripCarriesGradientsBack(through device: Device, file: StaticString = #filePath, line: UInt = #line) {
    let x = Tensor<Double>([1, -2, 3], requiresGrad: true)
    let there = x.to(device)
    XCTAssertEqual(there.device, device, file: file, line: line)
    let back = (there * there).cpu()
    XCTAssertEqual(back.device, .cpu, file: file, line: line)
    XCTAssertEqual(back.scalars, [1, 4, 9], file: file, line: line)
    x.zeroGrad()
    back.sum().backward()
    XCTAssertEqual(x.grad?.device, .cpu, file: file, line: line)
    XCTAssertEqual(x.grad?.scalars, [2, -4, 6], "gradient through \(device)", file: file, line: line)
    assertGradcheck({ ($0[0].to(device) * $0[0].to(device)).cpu() }, inputs: [randomInput([2, 3], RandomGenerator(seed: 4))],
                    file: file, line: line)
}

extension DeviceTests {

    func testNoGradientModeIsPerThread() {
        let x = Tensor<Float>.ones([64, 64], requiresGrad: true)
        // Deterministic: another thread is inside withoutGradients while this one records.
        let entered = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0), finished = DispatchSemaphore(value: 0)
        let recordedThere = Shared(true)
        Thread {
            withoutGradients {
                entered.signal()
                release.wait()
                recordedThere.value = (x * 2).requiresGrad
            }
            finished.signal()
        }.start()
        entered.wait()
        XCTAssertTrue((x * 2).requiresGrad, "the other thread's withoutGradients switched recording off here")
        release.signal()
        finished.wait()
        XCTAssertFalse(recordedThere.value)
        // Under load: backwards on a second thread while this one records graphs. This thread keeps
        // recording until the other has finished at least one backward, however the two are scheduled.
        let stop = DispatchSemaphore(value: 0), firstBackward = DispatchSemaphore(value: 0)
        let backwards = Shared(0)
        Thread {
            let w = Tensor<Float>.normal([64, 64], requiresGrad: true)
            while stop.wait(timeout: .now()) == .timedOut {
                (w.matmul(w).relu().sum()).backward()
                backwards.value += 1
                if backwards.value == 1 { firstBackward.signal() }
            }
            finished.signal()
        }.start()
        var recorded = 0, unrecorded = 0
        let deadline = DispatchTime.now() + .seconds(60)
        while recorded + unrecorded < 300 || firstBackward.wait(timeout: .now()) == .timedOut {
            if (x.matmul(x) + 1).exp().sum().requiresGrad { recorded += 1 } else { unrecorded += 1 }
            if DispatchTime.now() > deadline { break }
        }
        stop.signal()
        finished.wait()
        XCTAssertEqual(unrecorded, 0, "graphs left unrecorded while \(backwards.value) backwards ran on another thread")
        XCTAssertGreaterThan(backwards.value, 0, "the other thread ran no backward in 60 s")
    }

    func testManualSeedReachesDropoutBuiltBeforeIt() {
        let dropout = Dropout<Float>(0.5)  // draws from RandomGenerator.shared
        let x = Tensor<Float>.ones([256])
        RandomGenerator.manualSeed(11)
        let first = dropout(x).scalars
        RandomGenerator.manualSeed(11)
        XCTAssertEqual(dropout(x).scalars, first)
        RandomGenerator.manualSeed(12)
        XCTAssertNotEqual(dropout(x).scalars, first)
    }

    func testDropoutMaskIsAFunctionOfTheSeedAndPosition() {
        // The same seed gives the same mask whatever the thread split: 1M elements run on every thread.
        let x = Tensor<Float>.ones([1 << 20])
        let a = x.dropout(0.3, training: true, generator: RandomGenerator(seed: 5)).scalars
        Parallel.threadCount = 1
        defer { Parallel.threadCount = ProcessInfo.processInfo.activeProcessorCount }
        let b = x.dropout(0.3, training: true, generator: RandomGenerator(seed: 5)).scalars
        XCTAssertEqual(a, b)
        XCTAssertEqual(Double(a.filter { $0 == 0 }.count) / Double(a.count), 0.3, accuracy: 0.005)
    }

    /// A module with a buffer: a non-trainable tensor that is saved and moved but never trained.
    final class Scaled: Module<Float> {
        let weight = Tensor<Float>.ones([3], requiresGrad: true)
        let scale = Tensor<Float>([2, 2, 2])
        let inner = Linear<Float>(3, 3)
    }

    func testBuffersAreNotParametersAndReflectionIsCached() {
        let module = Scaled()
        XCTAssertEqual(module.namedParameters.map(\.0), ["weight", "inner.weight", "inner.bias"])
        XCTAssertEqual(module.namedBuffers.map(\.0), ["scale"])
        XCTAssertEqual(Set(module.stateDictionary().keys), ["weight", "scale", "inner.weight", "inner.bias"])
        XCTAssertTrue(zip(module.parameters, module.parameters).allSatisfy { $0 === $1 })
        let before = module.parameters.map(ObjectIdentifier.init)
        module.to(.cpu)
        XCTAssertEqual(module.parameters.map(ObjectIdentifier.init), before, "to(_:) moves tensors in place")
        XCTAssertTrue((module.parameters + module.namedBuffers.map(\.1)).allSatisfy { $0.device == .cpu })
    }

    func testAllocatorCountsTheFlashKernelsScratch() {
        let generator = RandomGenerator(seed: 2)
        let (batch, heads, length, dim) = (1, 2, 300, 16)
        let q = Tensor<Float>.normal([batch, heads, length, dim], generator: generator)
        let k = Tensor<Float>.normal([batch, heads, length, dim], generator: generator)
        let v = Tensor<Float>.normal([batch, heads, length, dim], generator: generator)
        Device.cpu.resetPeakMemory()
        let live = Device.cpu.memory.liveBytes
        let output = attention(query: q, key: k, value: v)
        let peak = Device.cpu.memory.peakBytes
        // Output and log-sum-exp, plus Kᵀ padded by one vector per row, which only the kernel allocates.
        let results = (output.count + batch * heads * length) * 4
        let keyTransposed = batch * heads * dim * (length + Float.Vector.scalarCount) * 4
        XCTAssertGreaterThanOrEqual(peak - live, results + keyTransposed)
    }
}
