import CFlashKernels

/// The instruction-set level of FlashAttention's CPU kernels (the tile products, the vectorised
/// exp and row maximum): chosen when the library loads as the highest this CPU supports, or lower
/// with `FLASHGRAD_CPU_LEVEL=avx2` or `baseline` in the environment (as `OPENBLAS_CORETYPE` and
/// `ATEN_CPU_CAPABILITY`); settable for comparisons and tests.
public enum CPUKernelLevel: String, CaseIterable, Sendable {
    case avx512, avx2, baseline

    /// The level the kernels run at now.
    public static var current: CPUKernelLevel {
        get { Self(flashgrad_kernel_level()) }
        set { require(newValue.isSupported, "CPUKernelLevel: this CPU does not support \(newValue.rawValue)"); _ = flashgrad_set_kernel_level(newValue.cLevel) }
    }

    /// The levels this CPU runs, highest first.
    public static var supported: [CPUKernelLevel] { allCases.filter(\.isSupported) }

    public var isSupported: Bool { flashgrad_kernel_level_supported(cLevel) != 0 }

    var cLevel: flashgrad_cpu_level {
        switch self {
        case .avx512: return FLASHGRAD_LEVEL_AVX512
        case .avx2: return FLASHGRAD_LEVEL_AVX2
        case .baseline: return FLASHGRAD_LEVEL_BASELINE
        }
    }

    init(_ level: flashgrad_cpu_level) {
        switch level {
        case FLASHGRAD_LEVEL_AVX512: self = .avx512
        case FLASHGRAD_LEVEL_AVX2: self = .avx2
        default: self = .baseline
        }
    }
}
