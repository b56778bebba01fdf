// The register-blocked tile product for one level and element type (see FlashKernelsLevel.h):
// B is read in place row by row and A element by element through two strides, so neither a
// transposed operand (Pᵀ, dSᵀ) nor a tile of scores needs the packing copy a BLAS call makes.

#define GEMM_NAME(name) CAT(CAT(name, SUFFIX), LEVEL)
#define LANES ((long)(VECTOR_BYTES / sizeof(ELEMENT)))

// One register block: `rows` (1…BLOCK_ROWS) rows of C by `G` vectors of columns, over all of k. A
// short block still runs BLOCK_ROWS accumulator rows (the missing ones re-read A's last row) and
// stores only its own: independent FMA chains keep the FMA units busy.
TARGET __attribute__((always_inline)) static inline void GEMM_NAME(block)(
    const int G, long rows, long k, ELEMENT alpha, const ELEMENT *a, long a_row_stride, long a_column_stride,
    const ELEMENT *b, long ldb, ELEMENT *c, long ldc, int accumulate) {
    VECTOR acc[BLOCK_ROWS][GROUP];
    const ELEMENT *a_rows[BLOCK_ROWS];
    for (int r = 0; r < BLOCK_ROWS; r++) {
        a_rows[r] = a + (r < rows ? r : rows - 1) * a_row_stride;
        for (int g = 0; g < G; g++) acc[r][g] = (VECTOR){};
    }
    for (long p = 0; p < k; p++) {
        VECTOR b_row[GROUP];
        for (int g = 0; g < G; g++) __builtin_memcpy(&b_row[g], b + p * ldb + g * LANES, sizeof(VECTOR));
        for (int r = 0; r < BLOCK_ROWS; r++) {
            // x − (+0) is x for every x (−0 and NaN included), so this folds to one broadcast load;
            // 0 + x would not (0 + −0 is +0) and costs a scalar add per element.
            VECTOR broadcast = a_rows[r][p * a_column_stride] - (VECTOR){};
            for (int g = 0; g < G; g++) acc[r][g] += broadcast * b_row[g];
        }
    }
    for (int r = 0; r < BLOCK_ROWS && r < rows; r++) {
        for (int g = 0; g < G; g++) {
            ELEMENT *out = c + r * ldc + g * LANES;
            VECTOR result = acc[r][g] * alpha;
            if (accumulate) {
                VECTOR old;
                __builtin_memcpy(&old, out, sizeof old);
                result += old;
            }
            __builtin_memcpy(out, &result, sizeof result);
        }
    }
}

TARGET static void GEMM_NAME(tile_gemm)(long m, long n, long k, ELEMENT alpha, const ELEMENT *a, long a_row_stride,
                                        long a_column_stride, const ELEMENT *b, long ldb, ELEMENT *c, long ldc, int accumulate) {
    long column = 0;
    // Column strips of GROUP vectors, then single vectors, then the rest narrower than a vector.
    // Within a strip every block of rows reuses the same rows of B, which stay in L1.
    for (; column + GROUP * LANES <= n; column += GROUP * LANES)
        for (long row = 0; row < m; row += BLOCK_ROWS)
            GEMM_NAME(block)(GROUP, m - row < BLOCK_ROWS ? m - row : BLOCK_ROWS, k, alpha, a + row * a_row_stride, a_row_stride,
                             a_column_stride, b + column, ldb, c + row * ldc + column, ldc, accumulate);
    for (; column + LANES <= n; column += LANES)
        for (long row = 0; row < m; row += BLOCK_ROWS)
            GEMM_NAME(block)(1, m - row < BLOCK_ROWS ? m - row : BLOCK_ROWS, k, alpha, a + row * a_row_stride, a_row_stride,
                             a_column_stride, b + column, ldb, c + row * ldc + column, ldc, accumulate);
    for (long i = 0; column < n && i < m; i++) {
        for (long j = column; j < n; j++) {
            ELEMENT sum = 0;
            for (long p = 0; p < k; p++) sum += a[i * a_row_stride + p * a_column_stride] * b[p * ldb + j];
            c[i * ldc + j] = accumulate ? c[i * ldc + j] + alpha * sum : alpha * sum;
        }
    }
}

#undef GEMM_NAME
#undef LANES
