#include "FlashKernels.h"
#include <stdlib.h>
#include <string.h>

// The same sources, once per level (see FlashKernelsLevel.h for the register blocks).
#if defined(__x86_64__)
#define LEVEL avx512
#define TARGET __attribute__((target("avx512f,avx512vl,avx512dq,avx2,fma")))
#define VECTOR_BYTES 64
#define BLOCK_ROWS 6
#define GROUP 4
#include "FlashKernelsLevel.h"
#undef LEVEL
#undef TARGET
#undef VECTOR_BYTES
#undef BLOCK_ROWS
#undef GROUP

#define LEVEL avx2
#define TARGET __attribute__((target("avx2,fma")))
#define VECTOR_BYTES 32
#define BLOCK_ROWS 4
#define GROUP 3
#include "FlashKernelsLevel.h"
#undef LEVEL
#undef TARGET
#undef VECTOR_BYTES
#undef BLOCK_ROWS
#undef GROUP
#endif

#define LEVEL baseline
#define TARGET
#define VECTOR_BYTES 16
#define BLOCK_ROWS 4
#define GROUP 2
#include "FlashKernelsLevel.h"
#undef LEVEL
#undef TARGET
#undef VECTOR_BYTES
#undef BLOCK_ROWS
#undef GROUP

typedef struct {
    void (*gemm_f32)(long, long, long, float, const float *, long, long, const float *, long, float *, long, int);
    void (*gemm_f64)(long, long, long, double, const double *, long, long, const double *, long, double *, long, int);
    float (*exponentiate_f32)(float *, long, float);
    float (*maximum_f32)(const float *, long);
} kernels;

static const kernels levels[3] = {
#if defined(__x86_64__)
    {tile_gemm_f32_avx512, tile_gemm_f64_avx512, exponentiate_f32_avx512, maximum_f32_avx512},
    {tile_gemm_f32_avx2, tile_gemm_f64_avx2, exponentiate_f32_avx2, maximum_f32_avx2},
#else
    {tile_gemm_f32_baseline, tile_gemm_f64_baseline, exponentiate_f32_baseline, maximum_f32_baseline},
    {tile_gemm_f32_baseline, tile_gemm_f64_baseline, exponentiate_f32_baseline, maximum_f32_baseline},
#endif
    {tile_gemm_f32_baseline, tile_gemm_f64_baseline, exponentiate_f32_baseline, maximum_f32_baseline},
};

static flashgrad_cpu_level current = FLASHGRAD_LEVEL_BASELINE;

int flashgrad_kernel_level_supported(flashgrad_cpu_level level) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    switch (level) {
    case FLASHGRAD_LEVEL_AVX512:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")
            && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case FLASHGRAD_LEVEL_AVX2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    default: return 1;
    }
#else
    return level == FLASHGRAD_LEVEL_BASELINE;
#endif
}

// Chosen once when the library loads: the highest level the CPU supports, or lower if
// FLASHGRAD_CPU_LEVEL asks (as OPENBLAS_CORETYPE and ATEN_CPU_CAPABILITY do).
__attribute__((constructor)) static void choose_level(void) {
    flashgrad_cpu_level level = FLASHGRAD_LEVEL_AVX512;
    while (!flashgrad_kernel_level_supported(level)) level++;
    const char *forced = getenv("FLASHGRAD_CPU_LEVEL");
    for (flashgrad_cpu_level l = FLASHGRAD_LEVEL_AVX512; forced && l <= FLASHGRAD_LEVEL_BASELINE; l++) {
        if (strcmp(forced, flashgrad_kernel_level_name(l)) == 0 && l > level) level = l;
    }
    current = level;
}

flashgrad_cpu_level flashgrad_kernel_level(void) { return current; }

const char *flashgrad_kernel_level_name(flashgrad_cpu_level level) {
    switch (level) {
    case FLASHGRAD_LEVEL_AVX512: return "avx512";
    case FLASHGRAD_LEVEL_AVX2: return "avx2";
    default: return "baseline";
    }
}

int flashgrad_set_kernel_level(flashgrad_cpu_level level) {
    if (!flashgrad_kernel_level_supported(level)) return 0;
    current = level;
    return 1;
}

void flashgrad_tile_gemm_f32(long m, long n, long k, float alpha, const float *a, long a_row_stride, long a_column_stride,
                             const float *b, long ldb, float *c, long ldc, int accumulate) {
    levels[current].gemm_f32(m, n, k, alpha, a, a_row_stride, a_column_stride, b, ldb, c, ldc, accumulate);
}

void flashgrad_tile_gemm_f64(long m, long n, long k, double alpha, const double *a, long a_row_stride, long a_column_stride,
                             const double *b, long ldb, double *c, long ldc, int accumulate) {
    levels[current].gemm_f64(m, n, k, alpha, a, a_row_stride, a_column_stride, b, ldb, c, ldc, accumulate);
}

float flashgrad_exponentiate_f32(float *x, long count, float shift) { return levels[current].exponentiate_f32(x, count, shift); }

float flashgrad_maximum_f32(const float *x, long count) { return levels[current].maximum_f32(x, count); }
