// One instruction-set level of the kernels: included by FlashKernels.c once per level, with
// LEVEL (a name suffix), TARGET (a target attribute or nothing), VECTOR_BYTES (the register width)
// and BLOCK_ROWS × GROUP (the register block: accumulators = rows × group vectors, chosen so that
// they, a group of B and a broadcast fit the level's registers). One source for every level.

#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)
#define NAME(name) CAT(name, LEVEL)

typedef float NAME(vf) __attribute__((vector_size(VECTOR_BYTES)));
typedef int NAME(vi) __attribute__((vector_size(VECTOR_BYTES)));
typedef double NAME(vd) __attribute__((vector_size(VECTOR_BYTES)));

#define ELEMENT float
#define VECTOR NAME(vf)
#define SUFFIX f32
#include "FlashKernelsGemm.h"
#undef ELEMENT
#undef VECTOR
#undef SUFFIX
#define ELEMENT double
#define VECTOR NAME(vd)
#define SUFFIX f64
#include "FlashKernelsGemm.h"
#undef ELEMENT
#undef VECTOR
#undef SUFFIX

#define VF NAME(vf)
#define VI NAME(vi)
#define WIDTH ((long)(VECTOR_BYTES / sizeof(float)))

TARGET static inline VF NAME(select)(VI mask, VF yes, VF no) { return (VF)(((VI)yes & mask) | ((VI)no & ~mask)); }

// eˣ by range reduction x = n·ln2 + r, |r| ≤ ln2/2, a degree-7 Taylor polynomial for eʳ and 2ⁿ
// built in the exponent bits: relative error ≤ 4e-7 on [−87, 88]; 0 below −87.3, +∞ above
// 88.37 (where 2ⁿ leaves the normal range), NaN for NaN (it fails every comparison).
TARGET static inline VF NAME(exp)(VF x) {
    const VF lowest = (VF){} - 87.33654f, highest = (VF){} + 88.37f, magic = (VF){} + 12582912.0f;
    VI below = x < lowest, above = x > highest;
    VF clamped = NAME(select)(above, highest, NAME(select)(below, lowest, x));
    // Adding 1.5·2²³ rounds x·log₂e to the nearest integer n, which then sits in the low mantissa bits.
    VF shifted = magic + clamped * 1.442695040888963f;
    VF n = shifted - magic;
    // ln 2 in two parts so that n·ln2 is subtracted without rounding error.
    VF r = (clamped + n * -0.693145751953125f) + n * -1.428606765330187e-06f;
    VF p = (VF){} + 1.0f / 5040;
    p = 1.0f / 720 + p * r; p = 1.0f / 120 + p * r; p = 1.0f / 24 + p * r; p = 1.0f / 6 + p * r;
    p = 0.5f + p * r; p = 1.0f + p * r; p = 1.0f + p * r;
    VI twoToN = (((VI)shifted - (VI)magic) + 127) << 23;
    VF result = p * (VF)twoToN;
    result = NAME(select)(below, (VF){}, result);
    return NAME(select)(above, (VF){} + __builtin_inff(), result);
}

TARGET static float NAME(exponentiate_f32)(float *x, long count, float shift) {
    VF sums = {};
    long i = 0;
    for (; i + WIDTH <= count; i += WIDTH) {
        VF v;
        __builtin_memcpy(&v, x + i, sizeof v);
        v = NAME(exp)(v - shift);
        __builtin_memcpy(x + i, &v, sizeof v);
        sums += v;
    }
    if (i < count) {  // the tail through the same polynomial, padded with −∞ (which maps to 0)
        VF tail = (VF){} - __builtin_inff();
        for (long lane = 0; lane < count - i; lane++) tail[lane] = x[i + lane] - shift;
        tail = NAME(exp)(tail);
        for (long lane = 0; lane < count - i; lane++) x[i + lane] = tail[lane];
        sums += tail;
    }
    float total = 0;
    for (long lane = 0; lane < WIDTH; lane++) total += sums[lane];
    return total;
}

TARGET static float NAME(maximum_f32)(const float *x, long count) {
    VF maxima = (VF){} - __builtin_inff();
    VI nan = {};
    long i = 0;
    for (; i + WIDTH <= count; i += WIDTH) {
        VF v;
        __builtin_memcpy(&v, x + i, sizeof v);
        maxima = NAME(select)(v > maxima, v, maxima);
        nan |= v != v;
    }
    float result = -__builtin_inff();
    for (long lane = 0; lane < WIDTH; lane++) {
        if (nan[lane]) return __builtin_nanf("");
        if (maxima[lane] > result) result = maxima[lane];
    }
    for (; i < count; i++) {
        if (x[i] != x[i]) return __builtin_nanf("");
        if (x[i] > result) result = x[i];
    }
    return result;
}

#undef VF
#undef VI
#undef WIDTH
#undef NAME
