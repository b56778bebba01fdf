/// FlashAttention-2 for the GPU as CUDA C, compiled with the rest of ``CUDAKernelSource`` (its `T`,
/// `i64`, `u64` and `mix`). The same algorithm as the CPU's `FlashAttentionKernels`, with the same
/// score rules (softcap, ALiBi, mask, positional visibility, padding) and dropout drawn from the same
/// counter-based generator, so both devices drop the same weights.
///
/// Layout of a block (128 threads, `BLK` query or key rows per tile): the threads form a 16 × 8
/// grid; thread (ty, tx) owns rows ty·BLK/16 … of the tile, score columns m·32 + tx·4 + e, and
/// output columns m·32 + tx·4 + e of the head dimension. Products are FP32 (or FP64) FMAs on CUDA
/// cores from shared-memory tiles; the 8 threads of a row sit in one warp, so the row max and sum
/// of the online softmax are three shuffles. Transposed tiles have a row stride of BLK + 1 so that
/// the transposing stores do not all hit one bank.
///
/// - `flash_forward`: one block per (query tile, batch·head): O and the log-sum-exp.
/// - `flash_backward_kv`: one block per (key tile, batch·key/value head): dK and dV accumulate in
///   registers while the query tiles of every query head of the group stream by.
/// - `flash_backward_q`: one block per (query tile, batch·head): dQ, recomputing P and dS.
/// A separate dQ pass instead of atomic adds makes gradients bitwise repeatable; it recomputes
/// Q·Kᵀ and dO·Vᵀ once more (7 tile products per backward instead of 5).
enum CUDAFlashAttentionSource {
    /// Threads per block of every flash kernel.
    static let threadsPerBlock = 128

    /// Rows per tile and the head-dimension bucket for a problem, or why none fits. Float: 64-row
    /// tiles up to D = 128, 32-row tiles at 256 (registers and shared memory); Double: 32-row tiles
    /// up to 128 (a 256-wide Double tile does not fit in shared memory).
    static func configuration(headDim: Int, valueDim: Int, scalarBytes: Int) -> (block: Int, dim: Int)? {
        guard let dim = [32, 64, 128, 256].first(where: { $0 >= Swift.max(headDim, valueDim) }) else { return nil }
        if scalarBytes == 4 { return (dim <= 128 ? 64 : 32, dim) }
        return dim <= 128 ? (32, dim) : nil
    }

    /// Dynamic shared memory of each kernel, in elements (see the kernels' layouts).
    static func sharedElements(kernel: String, block: Int, dim: Int) -> Int {
        let padded = block + 1
        switch kernel {
        case "flash_forward": return dim * padded * 2 + block * padded
        case "flash_backward_kv": return dim * padded * 4 + block * padded * 2 + block * 2
        default: return dim * padded * 4 + block * padded
        }
    }

    static let body = #"""

// ---------------------------------------------------------------------------------------------
// FlashAttention-2

// Every field 8 bytes, in the order CUDABackend writes them.
struct FlashParams {
    const T* q; const T* k; const T* v; T* o; T* lse;
    i64 qs[3]; i64 ks[3]; i64 vs[3];      // batch, head and row strides; the last axis is contiguous
    i64 B, Hq, Hkv, Nq, Nk, D, Dv;
    double scale, softcap, keep_scale, dropout_p;   // softcap 0: none
    const T* alibi;                        // one slope per query head, or null
    const T* mask; i64 ms[4];              // additive mask through broadcast strides, or null
    const i64* key_limit;                  // per batch: keys at or past it are padding
    const unsigned char* padded;           // [B, Nk] padding mask with holes, or null
    i64 left, right;                       // window around the aligned diagonal; −1: unbounded
    u64 seed;
    const T* dout; const T* rowdot; T* dq; T* dk; T* dv;
    i64 os[3]; i64 dos[3]; i64 dqs[3]; i64 dks[3]; i64 dvs[3];   // O, dO, dQ, dK, dV: batch, head, row strides
};

__device__ __forceinline__ T flash_neg_inf() { return T(-__int_as_float(0x7f800000)); }

// First key row i may see by position, and one past the last.
__device__ __forceinline__ i64 flash_lower(const FlashParams& p, i64 i) {
    i64 aligned = i + p.Nk - p.Nq;
    return p.left < 0 || aligned - p.left < 0 ? 0 : aligned - p.left;
}
// `limit` is key_limit[b]; a row past the last query sees nothing.
__device__ __forceinline__ i64 flash_upper(const FlashParams& p, i64 limit, i64 i) {
    if (i >= p.Nq) return 0;
    i64 aligned = i + p.Nk - p.Nq;
    return p.right < 0 || aligned + p.right + 1 > limit ? limit : aligned + p.right + 1;
}

// s = softcap(scale·raw) + alibi + mask, −∞ where (i, j) is not visible (j outside [lower, upper),
// row i's bounds by position, computed once per row and tile); t = tanh(·) of the softcap.
__device__ __forceinline__ T flash_score(const FlashParams& p, i64 b, i64 h, i64 i, i64 j, i64 lower, i64 upper, T raw, T& t) {
    t = T(0);
    if (j < lower || j >= upper) return flash_neg_inf();
    if (p.padded && p.padded[b * p.Nk + j]) return flash_neg_inf();
    T s = raw * T(p.scale);
    if (p.softcap > 0) { t = tanh(s / T(p.softcap)); s = T(p.softcap) * t; }
    if (p.alibi) { i64 distance = i + p.Nk - p.Nq - j; s -= p.alibi[h] * T(distance < 0 ? -distance : distance); }
    if (p.mask) s += p.mask[b * p.ms[0] + h * p.ms[1] + i * p.ms[2] + j * p.ms[3]];
    return s;
}

// CounterRandom.uniform(seed, b·Hq + h, i·Nk + j) >= p, as AttentionProblem.keeps on the CPU;
// `stream_key` is mix(seed ^ mix(b·Hq + h + C)), once per block.
__device__ __forceinline__ T flash_dropout_factor(const FlashParams& p, u64 stream_key, i64 i, i64 j) {
    if (p.dropout_p <= 0) return T(1);
    float u = (float)(mix(stream_key + (u64)(i * p.Nk + j)) >> 40) * (1.0f / 16777216.0f);
    return u >= (float)p.dropout_p ? T(p.keep_scale) : T(0);
}
__device__ __forceinline__ u64 flash_stream_key(const FlashParams& p, i64 b, i64 h) {
    return mix(p.seed ^ mix((u64)(b * p.Hq + h) + 0x632BE59BD9B4E019ULL));
}

// max that keeps NaN (fmax drops it): a NaN or infinite input a row sees makes the row NaN, as on the CPU.
__device__ __forceinline__ T flash_max(T a, T b) { return (a != a || b != b) ? a + b : fmax(a, b); }
__device__ __forceinline__ T flash_row_max(T x) {
    x = flash_max(x, __shfl_xor_sync(0xffffffffu, x, 1));
    x = flash_max(x, __shfl_xor_sync(0xffffffffu, x, 2));
    return flash_max(x, __shfl_xor_sync(0xffffffffu, x, 4));
}
__device__ __forceinline__ T flash_row_sum(T x) {
    x += __shfl_xor_sync(0xffffffffu, x, 1);
    x += __shfl_xor_sync(0xffffffffu, x, 2);
    return x + __shfl_xor_sync(0xffffffffu, x, 4);
}

// tile[d·(BLK+1) + r] = source row (first + r), element d: a [rows, dim] block transposed, zeros past `rows`.
template <int BLK>
__device__ __forceinline__ void flash_load_transposed(T* tile, const T* source, i64 row_stride, i64 first, i64 rows, i64 dim) {
    for (int index = threadIdx.x; index < BLK * dim; index += 128) {
        int r = index / dim, d = index % dim;
        tile[d * (BLK + 1) + r] = first + r < rows ? source[(first + r) * row_stride + d] : T(0);
    }
}
// tile[r·DMAX + d] = source row (first + r), element d, zeros past `rows`.
template <int BLK, int DMAX>
__device__ __forceinline__ void flash_load_rows(T* tile, const T* source, i64 row_stride, i64 first, i64 rows, i64 dim) {
    for (int index = threadIdx.x; index < BLK * dim; index += 128) {
        int r = index / dim, d = index % dim;
        tile[r * DMAX + d] = first + r < rows ? source[(first + r) * row_stride + d] : T(0);
    }
}

// acc[i][c] += Σ_k a[k][row i] · b[k][column c] over k < depth: the outer products every tile
// product of these kernels is made of. `a` is a transposed tile (row stride BLK + 1); `b` has rows
// of `b_stride`: a transposed tile too (S = Q·Kᵀ, dP = dO·Vᵀ) or a [BLK][DMAX] tile of rows (P·V, dSᵀ·Q, …).
template <int BLK, int COLUMNS>
__device__ __forceinline__ void flash_outer_products(T (&acc)[BLK / 16][COLUMNS / 8], const T* a, const T* b, int b_stride, i64 depth,
                                                     int ty, int tx) {
    constexpr int TR = BLK / 16, SP = BLK + 1;
    for (int k = 0; k < depth; ++k) {
        T x[TR], y[COLUMNS / 8];
        #pragma unroll
        for (int i = 0; i < TR; ++i) x[i] = a[k * SP + ty * TR + i];
        #pragma unroll
        for (int m = 0; m < COLUMNS / 32; ++m)
            #pragma unroll
            for (int e = 0; e < 4; ++e) y[m * 4 + e] = b[k * b_stride + m * 32 + tx * 4 + e];
        #pragma unroll
        for (int i = 0; i < TR; ++i)
            #pragma unroll
            for (int c = 0; c < COLUMNS / 8; ++c) acc[i][c] = fma(x[i], y[c], acc[i][c]);
    }
}

__device__ __forceinline__ int flash_column(int c, int tx) { return (c / 4) * 32 + tx * 4 + c % 4; }

// This thread's rows of a tile accumulator (row first + ty·TR + i) times factor[i], into the rows of
// `dst` (row stride `stride`) below `rows`, columns below `width`: the kernels' final stores.
template <int BLK, int DMAX>
__device__ __forceinline__ void flash_store_rows(T* dst, i64 stride, i64 first, i64 rows, i64 width,
                                                 const T (&acc)[BLK / 16][DMAX / 8], const T (&factor)[BLK / 16], int ty, int tx) {
    constexpr int TR = BLK / 16;
    #pragma unroll
    for (int i = 0; i < TR; ++i) {
        const i64 row = first + ty * TR + i;
        if (row >= rows) continue;
        #pragma unroll
        for (int d = 0; d < DMAX / 8; ++d) {
            const int column = flash_column(d, tx);
            if (column < width) dst[row * stride + column] = factor[i] * acc[i][d];
        }
    }
}

// Forward. Per query tile, with running max m, sum l and accumulator O per row:
//   m' = max(m, rowmax S);  P = exp(S − m');  l ← e^(m−m')·l + rowsum P;  O ← e^(m−m')·O + (P∘Z)·V
// then O / l and LSE = m + log l (0 and −∞ for a row that saw no key).
template <int BLK, int DMAX>
__device__ void flash_forward(const FlashParams& p) {
    constexpr int TR = BLK / 16, TC = BLK / 8, TD = DMAX / 8, SP = BLK + 1;
    extern __shared__ __align__(16) unsigned char flash_shared[];
    T* qt = (T*)flash_shared;        // [DMAX][SP]  Qᵀ
    T* kv = qt + DMAX * SP;          // [DMAX][SP]  Kᵀ, then [BLK][DMAX] V
    T* pt = kv + DMAX * SP;          // [BLK][SP]   (P∘Z)ᵀ
    const int tx = threadIdx.x % 8, ty = threadIdx.x / 8;
    const i64 b = blockIdx.y / p.Hq, h = blockIdx.y % p.Hq, kvh = h / (p.Hq / p.Hkv), i0 = (i64)blockIdx.x * BLK;
    const i64 limit = p.key_limit[b];
    const T* k = p.k + b * p.ks[0] + kvh * p.ks[1];
    const T* v = p.v + b * p.vs[0] + kvh * p.vs[1];
    flash_load_transposed<BLK>(qt, p.q + b * p.qs[0] + h * p.qs[1], p.qs[2], i0, p.Nq, p.D);
    const u64 stream_key = flash_stream_key(p, b, h);
    i64 lower[TR], upper[TR];
    #pragma unroll
    for (int i = 0; i < TR; ++i) { lower[i] = flash_lower(p, i0 + ty * TR + i); upper[i] = flash_upper(p, limit, i0 + ty * TR + i); }
    T m[TR], l[TR], acc[TR][TD];
    #pragma unroll
    for (int i = 0; i < TR; ++i) {
        m[i] = flash_neg_inf(); l[i] = T(0);
        #pragma unroll
        for (int d = 0; d < TD; ++d) acc[i][d] = T(0);
    }
    // Keys any row of the tile may see: tiles outside are skipped whole (causal, window, padding).
    const i64 last = (i0 + BLK < p.Nq ? i0 + BLK : p.Nq) - 1;
    const i64 first_key = flash_lower(p, i0), end_key = flash_upper(p, limit, last);
    for (i64 j0 = first_key; j0 < end_key; j0 += BLK) {
        __syncthreads();
        flash_load_transposed<BLK>(kv, k, p.ks[2], j0, p.Nk, p.D);
        __syncthreads();
        T s[TR][TC];
        #pragma unroll
        for (int i = 0; i < TR; ++i)
            #pragma unroll
            for (int c = 0; c < TC; ++c) s[i][c] = T(0);
        flash_outer_products<BLK, BLK>(s, qt, kv, BLK + 1, p.D, ty, tx);
        #pragma unroll
        for (int i = 0; i < TR; ++i) {
            const i64 row = i0 + ty * TR + i;
            T tile_max = flash_neg_inf(), t;
            #pragma unroll
            for (int c = 0; c < TC; ++c) {
                s[i][c] = flash_score(p, b, h, row, j0 + flash_column(c, tx), lower[i], upper[i], s[i][c], t);
                tile_max = flash_max(tile_max, s[i][c]);
            }
            const T new_max = flash_max(m[i], flash_row_max(tile_max));
            // A row that has seen no key yet keeps m = −∞, l = 0, O = 0 (P = exp(−∞) = 0): no
            // branch, so that every lane reaches the shuffles.
            const T base = new_max == flash_neg_inf() ? T(0) : new_max;
            const T correction = exp(m[i] - base);
            T sum = T(0);
            #pragma unroll
            for (int c = 0; c < TC; ++c) { s[i][c] = exp(s[i][c] - base); sum += s[i][c]; }
            l[i] = l[i] * correction + flash_row_sum(sum);
            m[i] = new_max;
            #pragma unroll
            for (int d = 0; d < TD; ++d) acc[i][d] *= correction;
            // Dropout scales what multiplies V, never l.
            #pragma unroll
            for (int c = 0; c < TC; ++c) s[i][c] *= flash_dropout_factor(p, stream_key, row, j0 + flash_column(c, tx));
        }
        __syncthreads();
        #pragma unroll
        for (int i = 0; i < TR; ++i)
            #pragma unroll
            for (int c = 0; c < TC; ++c) pt[flash_column(c, tx) * SP + ty * TR + i] = s[i][c];
        flash_load_rows<BLK, DMAX>(kv, v, p.vs[2], j0, p.Nk, p.Dv);
        __syncthreads();
        flash_outer_products<BLK, DMAX>(acc, pt, kv, DMAX, BLK, ty, tx);
    }
    const i64 head = b * p.Hq + h;
    T inverse[TR];
    #pragma unroll
    for (int i = 0; i < TR; ++i) {
        inverse[i] = l[i] == T(0) ? T(0) : T(1) / l[i];  // 0 for a row that saw no key; NaN stays NaN
        const i64 row = i0 + ty * TR + i;
        if (row < p.Nq && tx == 0) p.lse[head * p.Nq + row] = l[i] == T(0) ? flash_neg_inf() : m[i] + log(l[i]);
    }
    flash_store_rows<BLK, DMAX>(p.o + b * p.os[0] + h * p.os[1], p.os[2], i0, p.Nq, p.Dv, acc, inverse, ty, tx);
}

// P∘Z and dS = P ∘ (dP∘Z − D) (∘ (1 − tanh²) under softcap) of one score, from the raw products
// s = q·k and dp = dO·v, the row's log-sum-exp and D = rowsum(dO ∘ O).
__device__ __forceinline__ void flash_probability_and_gradient(const FlashParams& p, u64 stream_key, i64 b, i64 h, i64 row, i64 key,
                                                               i64 lower, i64 upper, T& s, T& dp, T lse, T row_dot) {
    T t;
    const T score = flash_score(p, b, h, row, key, lower, upper, s, t);
    const T probability = (score == flash_neg_inf() || lse == flash_neg_inf()) ? T(0) : exp(score - lse);
    const T z = flash_dropout_factor(p, stream_key, row, key);
    T gradient = probability * (dp * z - row_dot);
    if (p.softcap > 0) gradient *= T(1) - t * t;
    s = probability * z;
    dp = gradient;
}

// dV = Σ (P∘Z)ᵀ·dO and dK = scale·Σ dSᵀ·Q for one key tile, over every query head of its group.
// Threads own key rows here: the score products are computed transposed, Sᵀ = K·Qᵀ.
template <int BLK, int DMAX>
__device__ void flash_backward_kv(const FlashParams& p) {
    constexpr int TR = BLK / 16, TC = BLK / 8, TD = DMAX / 8, SP = BLK + 1;
    extern __shared__ __align__(16) unsigned char flash_shared[];
    T* kt = (T*)flash_shared;        // [DMAX][SP]  Kᵀ
    T* vt = kt + DMAX * SP;          // [DMAX][SP]  Vᵀ
    T* qa = vt + DMAX * SP;          // Qᵀ [DMAX][SP], then Q [BLK][DMAX]
    T* oa = qa + DMAX * SP;          // dOᵀ, then dO
    T* ps = oa + DMAX * SP;          // [BLK query][SP]  P∘Z
    T* ds = ps + BLK * SP;           // [BLK query][SP]  dS
    T* lse_tile = ds + BLK * SP;     // [BLK]
    T* dot_tile = lse_tile + BLK;    // [BLK]
    const int tx = threadIdx.x % 8, ty = threadIdx.x / 8;
    const i64 b = blockIdx.y / p.Hkv, kvh = blockIdx.y % p.Hkv, j0 = (i64)blockIdx.x * BLK, group = p.Hq / p.Hkv;
    const i64 limit = p.key_limit[b];
    flash_load_transposed<BLK>(kt, p.k + b * p.ks[0] + kvh * p.ks[1], p.ks[2], j0, p.Nk, p.D);
    flash_load_transposed<BLK>(vt, p.v + b * p.vs[0] + kvh * p.vs[1], p.vs[2], j0, p.Nk, p.Dv);
    T dk[TR][TD], dv[TR][TD];
    #pragma unroll
    for (int i = 0; i < TR; ++i)
        #pragma unroll
        for (int d = 0; d < TD; ++d) { dk[i][d] = T(0); dv[i][d] = T(0); }
    for (i64 h = kvh * group; h < (kvh + 1) * group; ++h) {
        const i64 head = b * p.Hq + h;
        const T* q = p.q + b * p.qs[0] + h * p.qs[1];
        const T* dout = p.dout + b * p.dos[0] + h * p.dos[1];
        const u64 stream_key = flash_stream_key(p, b, h);
        for (i64 i0 = 0; i0 < p.Nq; i0 += BLK) {
            const i64 last = (i0 + BLK < p.Nq ? i0 + BLK : p.Nq) - 1;
            if (flash_upper(p, limit, last) <= j0 || flash_lower(p, i0) >= j0 + BLK) continue;  // no visible key in this tile
            __syncthreads();
            flash_load_transposed<BLK>(qa, q, p.qs[2], i0, p.Nq, p.D);
            flash_load_transposed<BLK>(oa, dout, p.dos[2], i0, p.Nq, p.Dv);
            for (int r = threadIdx.x; r < BLK; r += 128) {
                const bool real = i0 + r < p.Nq;
                lse_tile[r] = real ? p.lse[head * p.Nq + i0 + r] : flash_neg_inf();
                dot_tile[r] = real ? p.rowdot[head * p.Nq + i0 + r] : T(0);
            }
            __syncthreads();
            T s[TR][TC], dp[TR][TC];
            #pragma unroll
            for (int i = 0; i < TR; ++i)
                #pragma unroll
                for (int c = 0; c < TC; ++c) { s[i][c] = T(0); dp[i][c] = T(0); }
            flash_outer_products<BLK, BLK>(s, kt, qa, BLK + 1, p.D, ty, tx);
            flash_outer_products<BLK, BLK>(dp, vt, oa, BLK + 1, p.Dv, ty, tx);
            #pragma unroll
            for (int c = 0; c < TC; ++c) {
                const int column = flash_column(c, tx);
                const i64 row = i0 + column, lower = flash_lower(p, row), upper = flash_upper(p, limit, row);
                #pragma unroll
                for (int i = 0; i < TR; ++i)
                    flash_probability_and_gradient(p, stream_key, b, h, row, j0 + ty * TR + i, lower, upper, s[i][c], dp[i][c],
                                                   lse_tile[column], dot_tile[column]);
            }
            __syncthreads();
            #pragma unroll
            for (int i = 0; i < TR; ++i)
                #pragma unroll
                for (int c = 0; c < TC; ++c) {
                    ps[flash_column(c, tx) * SP + ty * TR + i] = s[i][c];
                    ds[flash_column(c, tx) * SP + ty * TR + i] = dp[i][c];
                }
            flash_load_rows<BLK, DMAX>(qa, q, p.qs[2], i0, p.Nq, p.D);
            flash_load_rows<BLK, DMAX>(oa, dout, p.dos[2], i0, p.Nq, p.Dv);
            __syncthreads();
            flash_outer_products<BLK, DMAX>(dv, ps, oa, DMAX, BLK, ty, tx);
            flash_outer_products<BLK, DMAX>(dk, ds, qa, DMAX, BLK, ty, tx);
        }
    }
    T scale[TR], one[TR];
    #pragma unroll
    for (int i = 0; i < TR; ++i) { scale[i] = T(p.scale); one[i] = T(1); }
    flash_store_rows<BLK, DMAX>(p.dk + b * p.dks[0] + kvh * p.dks[1], p.dks[2], j0, p.Nk, p.D, dk, scale, ty, tx);
    flash_store_rows<BLK, DMAX>(p.dv + b * p.dvs[0] + kvh * p.dvs[1], p.dvs[2], j0, p.Nk, p.Dv, dv, one, ty, tx);
}

// dQ = scale·Σ dS·K for one query tile, recomputing P and dS over its visible key tiles.
template <int BLK, int DMAX>
__device__ void flash_backward_q(const FlashParams& p) {
    constexpr int TR = BLK / 16, TC = BLK / 8, TD = DMAX / 8, SP = BLK + 1;
    extern __shared__ __align__(16) unsigned char flash_shared[];
    T* qt = (T*)flash_shared;        // [DMAX][SP]  Qᵀ
    T* ot = qt + DMAX * SP;          // [DMAX][SP]  dOᵀ
    T* kb = ot + DMAX * SP;          // Kᵀ [DMAX][SP], then K [BLK][DMAX]
    T* vt = kb + DMAX * SP;          // [DMAX][SP]  Vᵀ
    T* dst = vt + DMAX * SP;         // [BLK key][SP]  dSᵀ
    const int tx = threadIdx.x % 8, ty = threadIdx.x / 8;
    const i64 b = blockIdx.y / p.Hq, h = blockIdx.y % p.Hq, kvh = h / (p.Hq / p.Hkv), i0 = (i64)blockIdx.x * BLK;
    const i64 head = b * p.Hq + h, limit = p.key_limit[b];
    const T* k = p.k + b * p.ks[0] + kvh * p.ks[1];
    const T* v = p.v + b * p.vs[0] + kvh * p.vs[1];
    flash_load_transposed<BLK>(qt, p.q + b * p.qs[0] + h * p.qs[1], p.qs[2], i0, p.Nq, p.D);
    flash_load_transposed<BLK>(ot, p.dout + b * p.dos[0] + h * p.dos[1], p.dos[2], i0, p.Nq, p.Dv);
    const u64 stream_key = flash_stream_key(p, b, h);
    T lse[TR], row_dot[TR], dq[TR][TD];
    i64 lower[TR], upper[TR];
    #pragma unroll
    for (int i = 0; i < TR; ++i) {
        const i64 row = i0 + ty * TR + i;
        lower[i] = flash_lower(p, row); upper[i] = flash_upper(p, limit, row);
        lse[i] = row < p.Nq ? p.lse[head * p.Nq + row] : flash_neg_inf();
        row_dot[i] = row < p.Nq ? p.rowdot[head * p.Nq + row] : T(0);
        #pragma unroll
        for (int d = 0; d < TD; ++d) dq[i][d] = T(0);
    }
    const i64 last = (i0 + BLK < p.Nq ? i0 + BLK : p.Nq) - 1;
    const i64 first_key = flash_lower(p, i0), end_key = flash_upper(p, limit, last);
    for (i64 j0 = first_key; j0 < end_key; j0 += BLK) {
        __syncthreads();
        flash_load_transposed<BLK>(kb, k, p.ks[2], j0, p.Nk, p.D);
        flash_load_transposed<BLK>(vt, v, p.vs[2], j0, p.Nk, p.Dv);
        __syncthreads();
        T s[TR][TC], dp[TR][TC];
        #pragma unroll
        for (int i = 0; i < TR; ++i)
            #pragma unroll
            for (int c = 0; c < TC; ++c) { s[i][c] = T(0); dp[i][c] = T(0); }
        flash_outer_products<BLK, BLK>(s, qt, kb, BLK + 1, p.D, ty, tx);
        flash_outer_products<BLK, BLK>(dp, ot, vt, BLK + 1, p.Dv, ty, tx);
        #pragma unroll
        for (int i = 0; i < TR; ++i)
            #pragma unroll
            for (int c = 0; c < TC; ++c)
                flash_probability_and_gradient(p, stream_key, b, h, i0 + ty * TR + i, j0 + flash_column(c, tx), lower[i], upper[i],
                                               s[i][c], dp[i][c], lse[i], row_dot[i]);
        __syncthreads();
        #pragma unroll
        for (int i = 0; i < TR; ++i)
            #pragma unroll
            for (int c = 0; c < TC; ++c) dst[flash_column(c, tx) * SP + ty * TR + i] = dp[i][c];
        flash_load_rows<BLK, DMAX>(kb, k, p.ks[2], j0, p.Nk, p.D);
        __syncthreads();
        flash_outer_products<BLK, DMAX>(dq, dst, kb, DMAX, BLK, ty, tx);
    }
    T scale[TR];
    #pragma unroll
    for (int i = 0; i < TR; ++i) scale[i] = T(p.scale);
    flash_store_rows<BLK, DMAX>(p.dq + b * p.dqs[0] + h * p.dqs[1], p.dqs[2], i0, p.Nq, p.D, dq, scale, ty, tx);
}

// D_i = Σ_d dO_id · O_id, once per query row.
// D = rowsum(dO ∘ O) for every query row (b, h, i), out contiguous [B, Hq, Nq].
extern "C" __global__ void flash_row_dot(const FlashParams p, T* out) {
    GRID_STRIDE(row, p.B * p.Hq * p.Nq) {
        const i64 b = row / (p.Hq * p.Nq), h = row / p.Nq % p.Hq, i = row % p.Nq;
        const T* o = p.o + b * p.os[0] + h * p.os[1] + i * p.os[2];
        const T* dout = p.dout + b * p.dos[0] + h * p.dos[1] + i * p.dos[2];
        T dot = T(0);
        for (i64 d = 0; d < p.Dv; ++d) dot += dout[d] * o[d];
        out[row] = dot;
    }
}

#define FLASH_KERNELS(BLK, DMAX) \
    extern "C" __global__ void __launch_bounds__(128) flash_forward_##BLK##x##DMAX(FlashParams p) { flash_forward<BLK, DMAX>(p); } \
    extern "C" __global__ void __launch_bounds__(128) flash_backward_kv_##BLK##x##DMAX(FlashParams p) { flash_backward_kv<BLK, DMAX>(p); } \
    extern "C" __global__ void __launch_bounds__(128) flash_backward_q_##BLK##x##DMAX(FlashParams p) { flash_backward_q<BLK, DMAX>(p); }
#if SCALAR_BYTES == 4
FLASH_KERNELS(64, 32)
FLASH_KERNELS(64, 64)
FLASH_KERNELS(64, 128)
FLASH_KERNELS(32, 256)
#else
FLASH_KERNELS(32, 32)
FLASH_KERNELS(32, 64)
FLASH_KERNELS(32, 128)
#endif
"""#
}
