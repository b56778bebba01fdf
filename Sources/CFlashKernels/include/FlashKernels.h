#ifndef FLASHGRAD_FLASH_KERNELS_H
#define FLASHGRAD_FLASH_KERNELS_H

/// The CPU kernels on FlashAttention's hot path, compiled once per instruction-set level (AVX-512,
/// AVX2 with FMA, and the baseline x86-64 or the machine's default elsewhere) and chosen when the
/// library loads, so that a plain `swift build -c release` gets the wide kernels without
/// `-target-cpu` flags. `FLASHGRAD_CPU_LEVEL=avx2` (or `baseline`) forces a lower level.

/// The levels, highest first. A level above what the CPU supports is never chosen.
typedef enum { FLASHGRAD_LEVEL_AVX512 = 0, FLASHGRAD_LEVEL_AVX2 = 1, FLASHGRAD_LEVEL_BASELINE = 2 } flashgrad_cpu_level;

/// The level in use, and its name ("avx512", "avx2", "baseline").
flashgrad_cpu_level flashgrad_kernel_level(void);
const char *flashgrad_kernel_level_name(flashgrad_cpu_level level);
/// Whether this CPU runs `level`'s kernels.
int flashgrad_kernel_level_supported(flashgrad_cpu_level level);
/// Switches to `level` (for tests and comparisons); returns 0 if the CPU does not support it.
int flashgrad_set_kernel_level(flashgrad_cpu_level level);

/// C[m×n] = α·A·B, or C += α·A·B when `accumulate`: A[i, p] at a[i·a_row_stride + p·a_column_stride],
/// B's rows contiguous and `ldb` apart, C's rows `ldc` apart.
void flashgrad_tile_gemm_f32(long m, long n, long k, float alpha, const float *a, long a_row_stride, long a_column_stride,
                             const float *b, long ldb, float *c, long ldc, int accumulate);
void flashgrad_tile_gemm_f64(long m, long n, long k, double alpha, const double *a, long a_row_stride, long a_column_stride,
                             const double *b, long ldb, double *c, long ldc, int accumulate);

/// x[i] ← e^(x[i] − shift) for i < count; returns their sum. NaN stays NaN, −∞ gives 0.
float flashgrad_exponentiate_f32(float *x, long count, float shift);
/// The largest of x[0..<count] (−∞ for none, NaN if any is NaN).
float flashgrad_maximum_f32(const float *x, long count);

#endif
