/// Fused row normalisation: LayerNorm (centered) and RMSNorm (not centered).
///
/// x̂ = (x − μ)·r with r = 1/√(var + ε)   (RMSNorm: μ = 0, var = mean x²);  y = x̂·w + b.
enum NormalizationKernels {
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    /// With `residual`, the rows normalised are x + residual.add, written to residual.sum first.
    static func forward<T: TensorScalar>(_ x: UnsafePointer<T>, residual: (add: UnsafePointer<T>, sum: UnsafeMutablePointer<T>)?,
                                         rows: Int, length: Int, centered: Bool, epsilon: T,
                                         weight: UnsafePointer<T>?, bias: UnsafePointer<T>?,
                                         into y: UnsafeMutablePointer<T>, mean: UnsafeMutablePointer<T>,
                                         reciprocalDeviation: UnsafeMutablePointer<T>) {
        Parallel.forRanges(rows, minimumPerThread: Swift.max(1, Parallel.minimumElementsPerThread / Swift.max(1, length))) { range in
            for row in range {
                var input = x + row * length
                let output = y + row * length
                if let (add, sum) = residual {
                    let summed = sum + row * length, added = add + row * length
                    for i in 0..<length { summed[i] = input[i] + added[i] }
                    input = UnsafePointer(summed)
                }
                var mu: T = 0
                if centered {
                    for i in 0..<length { mu += input[i] }
                    mu /= T(length)
                }
                var squares: T = 0
                for i in 0..<length { let d = input[i] - mu; squares += d * d }
                let r = 1 / (squares / T(length) + epsilon).squareRoot()
                mean[row] = mu
                reciprocalDeviation[row] = r
                for i in 0..<length {
                    var value = (input[i] - mu) * r
                    if let weight { value *= weight[i] }
                    if let bias { value += bias[i] }
                    output[i] = value
                }
            }
        }
    }

    /// dx̂ = dy·w;  LayerNorm: dx = r·(dx̂ − mean(dx̂) − x̂·mean(dx̂∘x̂));  RMSNorm drops the mean(dx̂) term.
    /// dw = Σ_rows dy∘x̂,  db = Σ_rows dy (summed row by row in order, so results are deterministic).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    static func backward<T: TensorScalar>(_ x: UnsafePointer<T>, _ dy: UnsafePointer<T>, rows: Int, length: Int, centered: Bool,
                                          weight: UnsafePointer<T>?, mean: UnsafePointer<T>, reciprocalDeviation: UnsafePointer<T>,
                                          dx: UnsafeMutablePointer<T>, dWeight: UnsafeMutablePointer<T>?, dBias: UnsafeMutablePointer<T>?) {
        Parallel.forRanges(rows, minimumPerThread: Swift.max(1, Parallel.minimumElementsPerThread / Swift.max(1, length))) { range in
            for row in range {
                let input = x + row * length, up = dy + row * length, down = dx + row * length
                let mu = mean[row], r = reciprocalDeviation[row]
                var sumGradient: T = 0, sumGradientTimesNormalized: T = 0
                for i in 0..<length {
                    let g = up[i] * (weight?[i] ?? 1)
                    sumGradient += g
                    sumGradientTimesNormalized += g * (input[i] - mu) * r
                }
                let meanGradient = centered ? sumGradient / T(length) : 0
                let meanProjection = sumGradientTimesNormalized / T(length)
                for i in 0..<length {
                    let g = up[i] * (weight?[i] ?? 1)
                    down[i] = r * (g - meanGradient - (input[i] - mu) * r * meanProjection)
                }
            }
        }
        if let dWeight { dWeight.initialize(repeating: 0, count: length) }
        if let dBias { dBias.initialize(repeating: 0, count: length) }
        for row in 0..<rows {
            let input = x + row * length, up = dy + row * length
            let mu = mean[row], r = reciprocalDeviation[row]
            if let dWeight { for i in 0..<length { dWeight[i] += up[i] * (input[i] - mu) * r } }
            if let dBias { for i in 0..<length { dBias[i] += up[i] } }
        }
    }
}
