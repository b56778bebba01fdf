/// The CUDA backend's kernels, as CUDA C compiled by NVRTC at first use, once per precision
/// (`T` is `float` or `double`). No toolkit headers: NVRTC declares the math functions itself.
///
/// Each kernel mirrors the CPU kernel of the same name in `Backends/CPU/Kernels`, with the same
/// order of additions wherever the CPU's is fixed (row reductions excepted, which use a tree), so
/// that results agree to rounding. Loops are grid-stride; a block is 256 threads.
enum CUDAKernelSource {
    static let threadsPerBlock = 256
    /// Axes the strided kernels take (a `Strides` struct passed by value).
    static let maximumRank = 8

    /// Elements per block of the multi-tensor kernels (`list_chunk`): enough work per block to hide
    /// its start, few enough blocks for small tensors.
    static let listChunk = 1 << 16

    static func source(scalar: String) -> String {
        "typedef \(scalar) T;\n#define SCALAR_BYTES \(scalar == "float" ? 4 : 8)\n#define LIST_CHUNK \(listChunk)\n" + body
            + CUDAFlashAttentionSource.body
    }

    private static let body = #"""
typedef long long i64;
typedef unsigned long long u64;
#define MAX_RANK 8
#define THREADS 256
#define GRID_STRIDE(i, n) for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (i64)gridDim.x * blockDim.x)

struct Strides { i64 shape[MAX_RANK]; i64 first[MAX_RANK]; i64 second[MAX_RANK]; int rank; };

// Element i of a row-major index space, located through two sets of strides.
__device__ __forceinline__ void locate(const Strides& s, i64 i, i64& first, i64& second) {
    first = 0; second = 0;
    for (int axis = s.rank - 1; axis >= 0; --axis) {
        i64 k = i % s.shape[axis]; i /= s.shape[axis];
        first += k * s.first[axis]; second += k * s.second[axis];
    }
}

__device__ __forceinline__ T sigmoid_of(T x) { if (x >= 0) return T(1) / (T(1) + exp(-x)); T e = exp(x); return e / (T(1) + e); }
__device__ __forceinline__ T gelu_inner(T x) { return T(0.7978845608028654) * (x + T(0.044715) * x * x * x); }

// UnaryFunction, in its declaration order: f(x) and f'(x) given y = f(x).
__device__ __forceinline__ T unary_value(int fn, T x, T a, T b) {
    switch (fn) {
    case 0: return -x;
    case 1: return exp(x);
    case 2: return log(x);
    case 3: return sqrt(x);
    case 4: return T(1) / sqrt(x);
    case 5: return fabs(x);
    case 6: return tanh(x);
    case 7: return sigmoid_of(x);
    case 8: return x < 0 ? T(0) : x;
    case 9: return T(0.5) * x * (T(1) + tanh(gelu_inner(x)));
    case 10: return T(0.5) * x * (T(1) + erf(x * T(0.70710678118654752)));
    case 11: return x * sigmoid_of(x);
    case 12: return fmin(fmax(x, a), b);
    case 13: return pow(x, a);
    default: return a * x + b;
    }
}

__device__ __forceinline__ T unary_derivative(int fn, T x, T y, T a, T b) {
    switch (fn) {
    case 0: return T(-1);
    case 1: return y;
    case 2: return T(1) / x;
    case 3: return T(0.5) / y;
    case 4: return T(-0.5) * y * y * y;
    case 5: return x > 0 ? T(1) : (x < 0 ? T(-1) : T(0));
    case 6: return T(1) - y * y;
    case 7: return y * (T(1) - y);
    case 8: return x > 0 ? T(1) : T(0);
    case 9: { T t = tanh(gelu_inner(x)); T inner = T(0.7978845608028654) * (T(1) + T(3) * T(0.044715) * x * x);
              return T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * inner; }
    case 10: return T(0.5) * (T(1) + erf(x * T(0.70710678118654752))) + x * exp(T(-0.5) * x * x) * T(0.3989422804014327);
    case 11: { T s = sigmoid_of(x); return s * (T(1) + x * (T(1) - s)); }
    case 12: return (x >= a && x <= b) ? T(1) : T(0);
    case 13: return a * pow(x, a - T(1));
    default: return a;
    }
}

// BinaryFunction, in its declaration order.
__device__ __forceinline__ T binary_value(int fn, T x, T y) {
    switch (fn) {
    case 0: return x + y;
    case 1: return x - y;
    case 2: return x * y;
    case 3: return x / y;
    default: return pow(x, y);
    }
}

extern "C" __global__ void fill(T* out, T value, i64 n) { GRID_STRIDE(i, n) out[i] = value; }

extern "C" __global__ void strided_copy(const T* source, T* destination, Strides s, i64 n) {
    GRID_STRIDE(i, n) { i64 from, to; locate(s, i, from, to); destination[to] = source[from]; }
}

// y = f(x + bias), the bias (or none: null) along rows of `width`.
extern "C" __global__ void unary(int fn, const T* x, const T* bias, i64 width, T* y, i64 n, T a, T b) {
    GRID_STRIDE(i, n) y[i] = unary_value(fn, bias ? x[i] + bias[i % width] : x[i], a, b);
}

extern "C" __global__ void unary_backward(int fn, const T* x, const T* bias, i64 width, const T* y, const T* dy, T* dx, i64 n, T a, T b) {
    GRID_STRIDE(i, n) dx[i] = dy[i] * unary_derivative(fn, bias ? x[i] + bias[i % width] : x[i], y[i], a, b);
}

extern "C" __global__ void binary_contiguous(int fn, const T* a, const T* b, T* out, i64 n) {
    GRID_STRIDE(i, n) out[i] = binary_value(fn, a[i], b[i]);
}

extern "C" __global__ void binary_strided(int fn, const T* a, const T* b, T* out, Strides s, i64 n) {
    GRID_STRIDE(i, n) { i64 p, q; locate(s, i, p, q); out[i] = binary_value(fn, a[p], b[q]); }
}

extern "C" __global__ void select_values(const unsigned char* condition, const T* a, const T* b, T* out, i64 n) {
    GRID_STRIDE(i, n) out[i] = condition[i] ? a[i] : b[i];
}

extern "C" __global__ void equal_values(const T* a, const T* b, T* out, i64 n) { GRID_STRIDE(i, n) out[i] = a[i] == b[i] ? T(1) : T(0); }

// CounterRandom.uniform(seed, 0, i) of the CPU, bit for bit: SplitMix64's finaliser, 24 bits.
__device__ __forceinline__ u64 mix(u64 z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
extern "C" __global__ void dropout_mask(u64 seed, float probability, T scale, T* out, i64 n) {
    u64 key = mix(seed ^ mix(0ULL + 0x632BE59BD9B4E019ULL));
    GRID_STRIDE(i, n) {
        float u = (float)(mix(key + (u64)i) >> 40) * (1.0f / 16777216.0f);
        out[i] = u >= probability ? scale : T(0);
    }
}

__device__ __forceinline__ T combine(int kind, T acc, T v) {
    if (kind == 0) return acc + v;
    if (kind == 1) return (v > acc || v != v) ? v : acc;
    return (v < acc || v != v) ? v : acc;
}
__device__ __forceinline__ T reduction_start(int kind) {
    return kind == 0 ? T(0) : (kind == 1 ? -__int_as_float(0x7f800000) : __int_as_float(0x7f800000));
}

// A fixed-shape tree over the block's partials: the same order on every run.
__device__ T block_reduce(int kind, T value, T* shared) {
    shared[threadIdx.x] = value;
    __syncthreads();
    for (int stride = THREADS / 2; stride > 0; stride >>= 1) {
        if (threadIdx.x < stride) shared[threadIdx.x] = combine(kind, shared[threadIdx.x], shared[threadIdx.x + stride]);
        __syncthreads();
    }
    T result = shared[0];
    __syncthreads();
    return result;
}

// [outer, length] → [outer]: one block per row.
extern "C" __global__ void reduce_rows(int kind, const T* x, T* out, i64 length) {
    __shared__ T shared[THREADS];
    const T* row = x + (i64)blockIdx.x * length;
    T acc = reduction_start(kind);
    for (i64 j = threadIdx.x; j < length; j += THREADS) acc = combine(kind, acc, row[j]);
    acc = block_reduce(kind, acc, shared);
    if (threadIdx.x == 0) out[blockIdx.x] = acc;
}

// [outer, length, inner] → [outer, inner]: a block per (outer index, 32 columns); warp w adds rows
// r ≡ w (mod 8) in order, then the 8 partials are combined in warp order (fixed: deterministic).
// A thread per output alone left most of the GPU idle on bias gradients (inner 512, length 1300).
extern "C" __global__ void reduce_middle(int kind, const T* x, T* out, i64 length, i64 inner) {
    __shared__ T partial[8][32];
    i64 tiles = (inner + 31) / 32;
    i64 o = blockIdx.x / tiles, k = (blockIdx.x % tiles) * 32 + threadIdx.x % 32;
    int group = threadIdx.x / 32;
    T acc = reduction_start(kind);
    if (k < inner) for (i64 r = group; r < length; r += 8) acc = combine(kind, acc, x[(o * length + r) * inner + k]);
    partial[group][threadIdx.x % 32] = acc;
    __syncthreads();
    if (group == 0 && k < inner) {
        T total = partial[0][threadIdx.x];
        for (int g = 1; g < 8; ++g) total = combine(kind, total, partial[g][threadIdx.x]);
        out[o * inner + k] = total;
    }
}

// Σ x² of one contiguous run per block of a grid over `chunks` chunks; partials added on the host in order.
// Multi-tensor kernels: one launch over a list of tensors (all the gradients, all the parameters),
// one block per chunk of LIST_CHUNK elements of one tensor. `table` holds, per tensor, its length,
// its first block and then `addresses` addresses (the tensor's, its gradient's, ...).
struct ListChunk { i64 tensor, start, end; };
__device__ __forceinline__ ListChunk list_chunk(const i64* table, i64 tensors, int addresses) {
    const i64 stride = 2 + addresses;
    i64 low = 0, high = tensors - 1;  // the last tensor whose first block is at most this block
    while (low < high) {
        const i64 middle = (low + high + 1) / 2;
        if (table[middle * stride + 1] <= (i64)blockIdx.x) low = middle; else high = middle - 1;
    }
    const i64 n = table[low * stride], start = ((i64)blockIdx.x - table[low * stride + 1]) * LIST_CHUNK;
    return ListChunk{low, start, start + LIST_CHUNK < n ? start + LIST_CHUNK : n};
}
__device__ __forceinline__ T* list_address(const i64* table, const ListChunk& c, int addresses, int which) {
    return (T*)table[c.tensor * (2 + addresses) + 2 + which];
}

// Each listed source copied to its destination.
extern "C" __global__ void copy_list(const i64* table, i64 tensors) {
    const ListChunk c = list_chunk(table, tensors, 2);
    const T* source = list_address(table, c, 2, 0); T* destination = list_address(table, c, 2, 1);
    for (i64 j = c.start + threadIdx.x; j < c.end; j += THREADS) destination[j] = source[j];
}

// One partial Σ x² per chunk, for all tensors of the list.
extern "C" __global__ void sum_of_squares_list(const i64* table, i64 tensors, T* partials) {
    __shared__ T shared[THREADS];
    const ListChunk c = list_chunk(table, tensors, 1);
    const T* x = list_address(table, c, 1, 0);
    T acc = 0;
    for (i64 j = c.start + threadIdx.x; j < c.end; j += THREADS) acc += x[j] * x[j];
    acc = block_reduce(0, acc, shared);
    if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

// x ← x · factor for all tensors of the list; the factor is read on the device (no wait for the host).
extern "C" __global__ void scale_list(const i64* table, i64 tensors, const T* factor) {
    const ListChunk c = list_chunk(table, tensors, 1);
    T* x = list_address(table, c, 1, 0);
    const T f = *factor;
    for (i64 j = c.start + threadIdx.x; j < c.end; j += THREADS) x[j] = f * x[j] + T(0);  // as the CPU's affine
}

// Softmax over rows, one block a row, as the CPU's: NaN in a row gives NaN; a row of −∞ gives 0 (log: −∞).
extern "C" __global__ void softmax_rows(const T* x, T* y, i64 length, int take_log) {
    __shared__ T shared[THREADS];
    const T* in = x + (i64)blockIdx.x * length; T* out = y + (i64)blockIdx.x * length;
    T m = reduction_start(1);
    for (i64 j = threadIdx.x; j < length; j += THREADS) m = combine(1, m, in[j]);
    m = block_reduce(1, m, shared);
    if (m == reduction_start(1)) m = 0;
    T total = 0;
    for (i64 j = threadIdx.x; j < length; j += THREADS) total += exp(in[j] - m);
    total = block_reduce(0, total, shared);
    if (take_log) { T lt = log(total); for (i64 j = threadIdx.x; j < length; j += THREADS) out[j] = total == T(0) ? reduction_start(1) : (in[j] - m) - lt; }
    else { T inverse = total == T(0) ? T(0) : T(1) / total; for (i64 j = threadIdx.x; j < length; j += THREADS) out[j] = exp(in[j] - m) * inverse; }
}

// Softmax: dx = y ∘ (dy − Σ dy∘y).  Log softmax: dx = dy − eʸ·Σ dy.
extern "C" __global__ void softmax_rows_backward(const T* y, const T* dy, T* dx, i64 length, int take_log) {
    __shared__ T shared[THREADS];
    i64 base = (i64)blockIdx.x * length;
    T dot = 0;
    for (i64 j = threadIdx.x; j < length; j += THREADS) dot += take_log ? dy[base + j] : dy[base + j] * y[base + j];
    dot = block_reduce(0, dot, shared);
    for (i64 j = threadIdx.x; j < length; j += THREADS)
        dx[base + j] = take_log ? dy[base + j] - exp(y[base + j]) * dot : y[base + j] * (dy[base + j] - dot);
}

// LayerNorm (centered) / RMSNorm, one block a row: x̂ = (x − μ)·r, r = 1/√(var + ε), y = x̂·w + b.
// With `residual`, the row normalised is x + residual, written to `sum` first (each thread reads back
// only what it wrote).
extern "C" __global__ void normalize_rows(const T* x, const T* residual, T* sum, T* y, T* mean, T* rstd, const T* weight,
                                          const T* bias, i64 length, int centered, T epsilon) {
    __shared__ T shared[THREADS];
    i64 base = (i64)blockIdx.x * length;
    if (residual) {
        for (i64 j = threadIdx.x; j < length; j += THREADS) sum[base + j] = x[base + j] + residual[base + j];
        x = sum;
    }
    T mu = 0;
    if (centered) {
        for (i64 j = threadIdx.x; j < length; j += THREADS) mu += x[base + j];
        mu = block_reduce(0, mu, shared) / T(length);
    }
    T squares = 0;
    for (i64 j = threadIdx.x; j < length; j += THREADS) { T d = x[base + j] - mu; squares += d * d; }
    squares = block_reduce(0, squares, shared);
    T r = T(1) / sqrt(squares / T(length) + epsilon);
    if (threadIdx.x == 0) { mean[blockIdx.x] = mu; rstd[blockIdx.x] = r; }
    for (i64 j = threadIdx.x; j < length; j += THREADS) {
        T v = (x[base + j] - mu) * r;
        if (weight) v *= weight[j];
        if (bias) v += bias[j];
        y[base + j] = v;
    }
}

// dx̂ = dy·w;  dx = r·(dx̂ − mean(dx̂) − x̂·mean(dx̂∘x̂)) (RMSNorm drops the mean(dx̂) term).
extern "C" __global__ void normalize_rows_backward(const T* x, const T* dy, const T* weight, const T* mean, const T* rstd,
                                                   T* dx, i64 length, int centered) {
    __shared__ T shared[THREADS];
    i64 base = (i64)blockIdx.x * length;
    T mu = mean[blockIdx.x], r = rstd[blockIdx.x];
    T sum_g = 0, sum_gx = 0;
    for (i64 j = threadIdx.x; j < length; j += THREADS) {
        T g = dy[base + j] * (weight ? weight[j] : T(1));
        sum_g += g; sum_gx += g * (x[base + j] - mu) * r;
    }
    sum_g = block_reduce(0, sum_g, shared);
    sum_gx = block_reduce(0, sum_gx, shared);
    T mean_g = centered ? sum_g / T(length) : T(0), mean_gx = sum_gx / T(length);
    for (i64 j = threadIdx.x; j < length; j += THREADS) {
        T g = dy[base + j] * (weight ? weight[j] : T(1));
        dx[base + j] = r * (g - mean_g - (x[base + j] - mu) * r * mean_gx);
    }
}

// dw = Σ_rows dy∘x̂, db = Σ_rows dy: a block per 32 columns, rows split over 8 warps as in reduce_middle.
extern "C" __global__ void normalize_parameter_gradients(const T* x, const T* dy, const T* mean, const T* rstd,
                                                         T* dweight, T* dbias, i64 rows, i64 length) {
    __shared__ T partial_w[8][32], partial_b[8][32];
    i64 j = (i64)blockIdx.x * 32 + threadIdx.x % 32;
    int group = threadIdx.x / 32;
    T w = 0, b = 0;
    if (j < length) for (i64 row = group; row < rows; row += 8) {
        T up = dy[row * length + j];
        w += up * (x[row * length + j] - mean[row]) * rstd[row];
        b += up;
    }
    partial_w[group][threadIdx.x % 32] = w; partial_b[group][threadIdx.x % 32] = b;
    __syncthreads();
    if (group == 0 && j < length) {
        for (int g = 1; g < 8; ++g) { w += partial_w[g][threadIdx.x]; b += partial_b[g][threadIdx.x]; }
        if (dweight) dweight[j] = w;
        if (dbias) dbias[j] = b;
    }
}

// out[p] = table[indices[p]], a row of zeros where the index is −1.
extern "C" __global__ void gather_rows(const T* table, const i64* indices, T* out, i64 count, i64 dim) {
    GRID_STRIDE(i, count * dim) { const i64 row = indices[i / dim]; out[i] = row < 0 ? T(0) : table[row * dim + i % dim]; }
}

// table[rows[u]] += source[positions[starts[u]..<starts[u+1]]], positions in order: deterministic.
extern "C" __global__ void scatter_add_rows(const T* source, const i64* rows, const i64* starts, const i64* positions,
                                           T* table, i64 unique_rows, i64 dim) {
    GRID_STRIDE(i, unique_rows * dim) {
        i64 u = i / dim, d = i % dim;
        T acc = table[rows[u] * dim + d];
        for (i64 k = starts[u]; k < starts[u + 1]; ++k) acc += source[positions[k] * dim + d];
        table[rows[u] * dim + d] = acc;
    }
}

// Per row: loss = (1 − ε)(−log p[t]) + ε·mean_c(−log p[c]), 0 when ignored.
extern "C" __global__ void cross_entropy_rows(const T* log_p, const i64* targets, T* row_loss, i64 rows, i64 classes,
                                              i64 ignore_index, T smoothing) {
    GRID_STRIDE(row, rows) {
        const T* lp = log_p + row * classes;
        i64 t = targets[row];
        if (t == ignore_index) { row_loss[row] = 0; continue; }
        T smoothed = 0;
        if (smoothing > 0) for (i64 c = 0; c < classes; ++c) smoothed -= lp[c];
        row_loss[row] = (T(1) - smoothing) * -lp[t] + smoothing * smoothed / T(classes);
    }
}

// ∂/∂logits = (p − ((1 − ε)·onehot(t) + ε/C))·upstream·scale, zero on ignored rows; the upstream
// gradient is read here, on the device, so the backward never waits for it on the host.
extern "C" __global__ void cross_entropy_backward(const T* log_p, const i64* targets, const T* upstream, T* gradient,
                                                  i64 rows, i64 classes, i64 ignore_index, T smoothing, T scale) {
    GRID_STRIDE(i, rows * classes) {
        i64 row = i / classes, c = i % classes, t = targets[row];
        T factor = upstream[0] * scale;
        gradient[i] = t == ignore_index ? T(0)
            : (exp(log_p[i]) - smoothing / T(classes) - (c == t ? T(1) - smoothing : T(0))) * factor;
    }
}

// Over a list of (parameter, gradient, momentum buffer or null).
extern "C" __global__ void sgd_update_list(const i64* table, i64 tensors, T learning_rate, T momentum, T weight_decay, int nesterov) {
    const ListChunk c = list_chunk(table, tensors, 3);
    T* parameter = list_address(table, c, 3, 0); const T* gradient = list_address(table, c, 3, 1); T* buffer = list_address(table, c, 3, 2);
    for (i64 i = c.start + threadIdx.x; i < c.end; i += THREADS) {
        T g = gradient[i] + weight_decay * parameter[i];
        T step = g;
        if (buffer) { buffer[i] = momentum * buffer[i] + g; step = nesterov ? g + momentum * buffer[i] : buffer[i]; }
        parameter[i] -= learning_rate * step;
    }
}

// Over a list of (parameter, gradient, first moment, second moment).
extern "C" __global__ void adam_update_list(const i64* table, i64 tensors, T learning_rate, T beta1, T beta2, T epsilon,
                                            T weight_decay, int decoupled, T correction1, T correction2) {
    const ListChunk c = list_chunk(table, tensors, 4);
    T* parameter = list_address(table, c, 4, 0); const T* gradient = list_address(table, c, 4, 1);
    T* m = list_address(table, c, 4, 2); T* v = list_address(table, c, 4, 3);
    for (i64 i = c.start + threadIdx.x; i < c.end; i += THREADS) {
        T g = gradient[i];
        if (decoupled) parameter[i] *= T(1) - learning_rate * weight_decay; else g += weight_decay * parameter[i];
        m[i] = beta1 * m[i] + (T(1) - beta1) * g;
        v[i] = beta2 * v[i] + (T(1) - beta2) * g * g;
        parameter[i] -= learning_rate * (m[i] / correction1) / (sqrt(v[i] / correction2) + epsilon);
    }
}
"""#
}
