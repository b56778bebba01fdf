// swift-tools-version:5.9
// A package outside FlashGrad that depends on it as any user's package would, built with a plain
// `swift build -c release` (no flags): FlashGrad's kernels must be fast without `-target-cpu`.
import PackageDescription

let package = Package(
    name: "FlashConsumer",
    dependencies: [.package(name: "FlashGrad", path: "../..")],
    targets: [
        .executableTarget(name: "FlashConsumer", dependencies: [.product(name: "FlashGrad", package: "FlashGrad")],
                          path: "Sources/FlashConsumer"),
    ]
)
