import RealModule

/// Vectorised transcendental kernels for the attention hot loops.
enum VectorMath {
    /// c + a·b lane by lane: one FMA per vector where the target has FMA (the `-target-cpu native`
    /// build), a multiply and an add where it has not. Not `addingProduct`: it demands the fused
    /// result, which a target without FMA computes with a libm `fmaf` call per lane.
    @inline(__always)
    static func multiplyAdd<V: SIMD>(_ c: V, _ a: V, _ b: V) -> V where V.Scalar: AlgebraicField {
        var result = c
        for lane in result.indices { result[lane] = Relaxed.multiplyAdd(a[lane], b[lane], c[lane]) }
        return result
    }

    typealias FloatVector = Float.Vector

    /// eˣ for a vector of Floats, by range reduction x = n·ln2 + r, |r| ≤ ln2/2, a degree-7 Taylor
    /// polynomial for eʳ (truncation error ≤ r⁸/8! ≈ 6e-9) and 2ⁿ built in the exponent bits.
    /// Tested bound: relative error ≤ 4e-7 (about 3 ulp) on [−87, 88]; exactly 0 below −87.3
    /// (so −∞ gives 0, as masking needs), +∞ above 88.37 (where 2ⁿ would leave the normal range;
    /// the true eˣ overflows from 88.72), and NaN for NaN.
    @inline(__always)
    static func exp(_ x: FloatVector) -> FloatVector {
        let lowest: Float = -87.33654, highest: Float = 88.37  // 2ⁿ stays a normal Float
        // NaN fails both comparisons and stays NaN through the polynomial.
        let clamped = x.replacing(with: lowest, where: x .< lowest).replacing(with: highest, where: x .> highest)
        // Adding 1.5·2²³ rounds x·log₂e to the nearest integer n, which then sits in the low mantissa bits.
        let magic = FloatVector(repeating: 12_582_912)
        let shifted = multiplyAdd(magic, clamped, FloatVector(repeating: 1.442695040888963))
        let n = shifted - magic
        // ln 2 split in two so that n·ln2 is subtracted without rounding error.
        let r = multiplyAdd(multiplyAdd(clamped, n, FloatVector(repeating: -0.693145751953125)),
                            n, FloatVector(repeating: -1.428606765330187e-06))
        // Horner's rule (fused multiply-adds in the native build), written out: a loop over an array
        // literal allocates the array on every call once this is inlined into a kernel.
        @inline(__always) func step(_ p: FloatVector, _ coefficient: Float) -> FloatVector {
            multiplyAdd(FloatVector(repeating: coefficient), p, r)
        }
        var p = FloatVector(repeating: 1.0 / 5040)
        p = step(p, 1.0 / 720); p = step(p, 1.0 / 120); p = step(p, 1.0 / 24); p = step(p, 1.0 / 6)
        p = step(p, 0.5); p = step(p, 1); p = step(p, 1)
        let integerN = unsafeBitCast(shifted, to: SIMD16<Int32>.self) &- unsafeBitCast(magic, to: SIMD16<Int32>.self)
        let twoToN = unsafeBitCast((integerN &+ 127) &<< 23, to: FloatVector.self)
        return (p * twoToN).replacing(with: 0, where: x .< lowest).replacing(with: .infinity, where: x .> highest)
    }

    /// x[i] ← e^(x[i] − shift) over a contiguous run; returns Σ of the results.
    @inline(__always)
    static func exponentiate(_ x: UnsafeMutablePointer<Float>, count: Int, subtracting shift: Float) -> Float {
        let width = FloatVector.scalarCount
        var sums = FloatVector()
        var i = 0
        let raw = UnsafeMutableRawPointer(x)
        while i + width <= count {
            let value = exp(raw.loadUnaligned(fromByteOffset: i * 4, as: FloatVector.self) - shift)
            raw.storeBytes(of: value, toByteOffset: i * 4, as: FloatVector.self)
            sums += value
            i += width
        }
        if i < count {
            // The tail goes through the same polynomial, padded with −∞ (which maps to 0).
            var tail = FloatVector(repeating: -.infinity)
            for lane in 0..<(count - i) { tail[lane] = x[i + lane] - shift }
            let value = exp(tail)
            for lane in 0..<(count - i) { x[i + lane] = value[lane] }
            sums += value
        }
        return sums.sum()
    }

    /// The largest of `count` values (−∞ for none, NaN if any is NaN), with the concrete vector
    /// type: generic SIMD comparisons and blends go lane by lane.
    @inline(__always)
    static func maximum(_ x: UnsafePointer<Float>, count: Int) -> Float {
        let width = FloatVector.scalarCount
        var maxima = FloatVector(repeating: -.infinity)
        var sawNaN = SIMDMask<FloatVector.MaskStorage>(repeating: false)
        var i = 0
        while i + width <= count {
            let values = UnsafeRawPointer(x + i).loadUnaligned(as: FloatVector.self)
            maxima.replace(with: values, where: values .> maxima)
            sawNaN .|= values .!= values
            i += width
        }
        if any(sawNaN) { return .nan }
        var result = maxima.max()
        while i < count {
            if x[i].isNaN { return .nan }
            if x[i] > result { result = x[i] }
            i += 1
        }
        return result
    }
}
