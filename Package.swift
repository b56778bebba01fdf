// swift-tools-version:5.9
import PackageDescription

let package = Package(
    name: "FlashGrad",
    products: [
        .library(name: "FlashGrad", targets: ["FlashGrad"]),
        .library(name: "FlashGradModels", targets: ["FlashGradModels"]),
        // Data-parallel training over MPI: its own product, so that FlashGrad alone never needs MPI.
        .library(name: "FlashGradDistributed", targets: ["FlashGradDistributed"]),
        .executable(name: "reverse", targets: ["Reverse"]),
        .executable(name: "gpt", targets: ["GPTExample"]),
        .executable(name: "autograd-demo", targets: ["AutogradDemo"]),
        .executable(name: "attention-bench", targets: ["AttentionBench"]),
        .executable(name: "core-bench", targets: ["CoreBench"]),
        .executable(name: "launch-bench", targets: ["LaunchBench"]),
        .executable(name: "allreduce-bench", targets: ["AllReduceBench"]),
        .executable(name: "embed", targets: ["Embed"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-numerics", from: "1.1.1"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // OpenBLAS (cblas) and LAPACKE, found through pkg-config.
        .systemLibrary(
            name: "COpenBLAS",
            path: "Sources/COpenBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev", "liblapacke-dev", "pkg-config"])]
        ),
        // Open MPI, found through pkg-config; a shim re-exports the handles that are C macros.
        .systemLibrary(
            name: "CMPI",
            path: "Sources/CMPI",
            pkgConfig: "ompi-c",
            providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]
        ),
        .target(
            name: "FlashGradDistributed",
            dependencies: ["FlashGrad", "CMPI"],
            path: "Sources/FlashGradDistributed"
        ),
        // The one NCCL call Swift cannot make itself (a struct passed by value); no CUDA headers needed.
        .target(name: "CNCCL", path: "Sources/CNCCL"),
        // FlashAttention's CPU hot loops, compiled per instruction set and chosen at run time (no build flags).
        .target(name: "CFlashKernels", path: "Sources/CFlashKernels"),
        .target(
            name: "FlashGrad",
            dependencies: [
                "COpenBLAS", "CNCCL", "CFlashKernels",
                .product(name: "RealModule", package: "swift-numerics"),
            ],
            path: "Sources/FlashGrad"
        ),
        .target(
            name: "FlashGradModels",
            dependencies: ["FlashGrad", .product(name: "RealModule", package: "swift-numerics")],
            path: "Models"
        ),
        .target(
            name: "ExampleSupport",
            dependencies: ["FlashGrad", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Examples/Support"
        ),
        .executableTarget(
            name: "Reverse",
            dependencies: [
                "FlashGrad", "FlashGradModels", "FlashGradDistributed", "ExampleSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Examples/Reverse"
        ),
        .executableTarget(
            name: "GPTExample",
            dependencies: [
                "FlashGrad", "FlashGradModels", "FlashGradDistributed", "ExampleSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Examples/GPT"
        ),
        .executableTarget(
            name: "AutogradDemo",
            dependencies: ["FlashGrad"],
            path: "Examples/AutogradDemo"
        ),
        .executableTarget(
            name: "AttentionBench",
            dependencies: ["FlashGrad", "ExampleSupport", "COpenBLAS", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Examples/AttentionBench"
        ),
        .executableTarget(
            name: "CoreBench",
            dependencies: ["FlashGrad", "ExampleSupport", "COpenBLAS", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Examples/CoreBench"
        ),
        .executableTarget(
            name: "LaunchBench",
            dependencies: ["FlashGrad", "FlashGradModels", "ExampleSupport", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Examples/LaunchBench"
        ),
        .executableTarget(
            name: "AllReduceBench",
            dependencies: [
                "FlashGrad", "FlashGradModels", "FlashGradDistributed", "ExampleSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Examples/AllReduceBench"
        ),
        .executableTarget(
            name: "Embed",
            dependencies: ["FlashGrad", "FlashGradModels", "ExampleSupport", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Examples/Embed"
        ),
        // Fixtures/ is read from the source tree (#filePath), not bundled.
        .testTarget(name: "FlashGradTests", dependencies: ["FlashGrad", "FlashGradModels"], exclude: ["Fixtures"]),
        .testTarget(name: "FlashGradDistributedTests", dependencies: ["FlashGrad", "FlashGradModels", "FlashGradDistributed"]),
    ]
)
