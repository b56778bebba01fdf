/// A mask added to the attention scores, broadcastable to [batch, queryHeads, queryLength, keyLength].
public enum AttentionMask<Scalar: TensorScalar> {
    /// `true` where a query may attend to a key (as in `torch.nn.functional.scaled_dot_product_attention`).
    case boolean(BoolTensor)
    /// Added to the scores; `-inf` removes a key. No gradient flows to it.
    case additive(Tensor<Scalar>)
}

/// Which keys of each sequence are padding.
public enum KeyPadding {
    /// Sequence b has `lengths[b]` real keys, at the start; the rest is padding.
    case lengths([Int])
    /// [batch, keyLength] with `true` marking padding, as `key_padding_mask` in `torch.nn.MultiheadAttention`.
    case mask(BoolTensor)
}

/// Everything that shapes the attention scores besides Q, K and V. Every option combines with the others.
///
/// Scores are s = softcap(scale·q·kᵀ) + alibi + mask, with disallowed positions at −∞, where
/// - causal: query i sees keys j ≤ i + Nk − Nq (the diagonal aligned bottom-right, as FlashAttention-2);
/// - window (left, right): query i sees keys i' − left ≤ j ≤ i' + right, with i' = i + Nk − Nq;
/// - alibi: −slope[h]·|i' − j|;  softcap: cap·tanh(s/cap).
/// A query row with no visible key gives output 0, log-sum-exp −∞ and zero gradients.
public struct AttentionOptions<Scalar: TensorScalar> {
    /// Multiplies q·kᵀ; `nil` means 1/√D.
    public var scale: Scalar?
    public var causal: Bool
    public var keyPadding: KeyPadding?
    public var mask: AttentionMask<Scalar>?
    /// Probability of dropping an attention weight, and the seed its mask is generated from.
    public var dropout: (probability: Scalar, seed: UInt64)?
    /// Keys visible to the left and right of the (aligned) diagonal; `nil` on a side means unbounded.
    public var window: (left: Int?, right: Int?)?
    /// One ALiBi slope per query head.
    public var alibiSlopes: [Scalar]?
    /// Softcap value `cap` in cap·tanh(s/cap).
    public var softcap: Scalar?

    public init(scale: Scalar? = nil, causal: Bool = false, keyPadding: KeyPadding? = nil, mask: AttentionMask<Scalar>? = nil,
                dropout: (probability: Scalar, seed: UInt64)? = nil, window: (left: Int?, right: Int?)? = nil,
                alibiSlopes: [Scalar]? = nil, softcap: Scalar? = nil) {
        self.scale = scale
        self.causal = causal
        self.keyPadding = keyPadding
        self.mask = mask
        self.dropout = dropout
        self.window = window
        self.alibiSlopes = alibiSlopes
        self.softcap = softcap
    }

    /// Names of the options in use, for messages about what an implementation supports.
    public var featuresInUse: [AttentionFeature] {
        var features: [AttentionFeature] = []
        if causal { features.append(.causal) }
        if keyPadding != nil { features.append(.keyPadding) }
        if mask != nil { features.append(.mask) }
        if dropout.map({ $0.probability > 0 }) ?? false { features.append(.dropout) }
        if window != nil { features.append(.slidingWindow) }
        if alibiSlopes != nil { features.append(.alibi) }
        if softcap != nil { features.append(.softcap) }
        return features
    }
}

/// The options an implementation may or may not support.
public enum AttentionFeature: String, CaseIterable {
    case causal, keyPadding, mask, dropout, slidingWindow, alibi, softcap, groupedQueryHeads, logSumExp
}

/// Shapes and options of one attention call, resolved and validated once by
/// ``attention(query:key:value:options:implementation:)`` and handed to the implementation, so that
/// every implementation (the naive reference, the flash kernels, one written outside the library)
/// applies the same rules without re-deriving them.
public struct AttentionProblem<Scalar: TensorScalar> {
    /// The options as the caller gave them.
    public let options: AttentionOptions<Scalar>
    /// Where query, key, value (and an additive mask) live.
    public let device: Device
    public let batch: Int, queryHeads: Int, keyValueHeads: Int
    public let queryLength: Int, keyLength: Int, headDim: Int, valueDim: Int
    /// The resolved scale (1/√D unless given).
    public let scale: Scalar
    public let softcap: Scalar?
    public let alibiSlopes: [Scalar]?
    public let dropoutProbability: Scalar
    public let dropoutSeed: UInt64
    /// Visible keys before and after the aligned diagonal (`Int.max` when unbounded; causal sets `right` to 0).
    public let left: Int, right: Int
    /// Per batch: keys at or past this index are padding (key lengths or the last unpadded key).
    public let keyLimit: [Int]
    /// [batch · keyLength], `true` where a key is padding; only for a padding mask with holes.
    public let paddedKeys: [Bool]?
    /// The additive or boolean mask as an additive one, as a strided view broadcast to [B, Hq, Nq, Nk].
    let additiveMaskView: BufferView<Scalar>?

    public var groupSize: Int { queryHeads / keyValueHeads }
    /// i' − i: the offset that aligns the causal diagonal bottom-right.
    public var diagonalOffset: Int { keyLength - queryLength }

    /// The additive mask (a boolean one converted: 0 where visible, −∞ elsewhere), broadcast to
    /// [B, Hq, Nq, Nk] without a copy; nil without a mask.
    public var additiveMask: Tensor<Scalar>? { additiveMaskView.map { Tensor(storage: $0.storage, layout: $0.layout) } }

    /// Validates shapes, devices and options, stopping with a message that names what was wrong.
    public init(query: Tensor<Scalar>, key: Tensor<Scalar>, value: Tensor<Scalar>, options: AttentionOptions<Scalar>) {
        let q = query.shape, k = key.shape, v = value.shape
        require(q.count == 4 && k.count == 4 && v.count == 4,
                     "attention: query, key and value must be [batch, heads, length, dim]; got \(q), \(k), \(v)")
        query.checkSameDevice(key, op: "attention")
        query.checkSameDevice(value, op: "attention")
        require(q[0] == k[0] && k[0] == v[0], "attention: batch sizes differ: query \(q), key \(k), value \(v)")
        require(k[1] == v[1] && k[2] == v[2], "attention: key \(k) and value \(v) must agree on heads and length")
        require(q[3] == k[3], "attention: query dim \(q[3]) differs from key dim \(k[3]) (query \(q), key \(k))")
        require(q[3] > 0 && v[3] > 0, "attention: head dims must be positive, got query \(q) and value \(v)")
        require(k[1] > 0 && q[1] % k[1] == 0,
                     "attention: query heads \(q[1]) must be a multiple of key/value heads \(k[1])")
        self.options = options
        device = query.device
        batch = q[0]; queryHeads = q[1]; keyValueHeads = k[1]
        queryLength = q[2]; keyLength = k[2]; headDim = q[3]; valueDim = v[3]
        scale = options.scale ?? 1 / Scalar(Swift.max(headDim, 1)).squareRoot()
        if let cap = options.softcap { require(cap > 0, "attention: softcap must be positive, got \(cap)") }
        softcap = options.softcap
        if let slopes = options.alibiSlopes {
            require(slopes.count == queryHeads, "attention: \(slopes.count) ALiBi slopes for \(queryHeads) query heads")
        }
        alibiSlopes = options.alibiSlopes
        let p = options.dropout?.probability ?? 0
        checkDropoutProbability(p, op: "attention")
        dropoutProbability = p
        dropoutSeed = options.dropout?.seed ?? 0
        var left = Int.max, right = Int.max
        if let window = options.window {
            if let l = window.left { require(l >= 0, "attention: window left must be ≥ 0, got \(l)"); left = l }
            if let r = window.right { require(r >= 0, "attention: window right must be ≥ 0, got \(r)"); right = r }
        }
        if options.causal { right = 0 }
        self.left = left
        self.right = right
        switch options.keyPadding {
        case .lengths(let lengths):
            require(lengths.count == q[0], "attention: \(lengths.count) key lengths for batch \(q[0])")
            for length in lengths {
                require(length >= 0 && length <= k[2], "attention: key length \(length) outside 0…\(k[2])")
            }
            keyLimit = lengths
            paddedKeys = nil
        case .mask(let mask):
            require(mask.shape == [q[0], k[2]], "attention: key padding mask \(mask.shape) must be [batch, keyLength] = [\(q[0]), \(k[2])]")
            keyLimit = (0..<q[0]).map { b in ((0..<k[2]).last { !mask.values[b * k[2] + $0] } ?? -1) + 1 }
            paddedKeys = mask.values
        case nil:
            keyLimit = [Int](repeating: k[2], count: q[0])
            paddedKeys = nil
        }
        let full = [q[0], q[1], q[2], k[2]]
        switch options.mask {
        case .additive(let tensor):
            require(Shape.broadcast(tensor.shape, full, op: "attention mask") == full,
                         "attention: mask of shape \(tensor.shape) does not broadcast to [B, Hq, Nq, Nk] = \(full)")
            query.checkSameDevice(tensor, op: "attention mask")
            additiveMaskView = tensor.expandedView(full).view
        case .boolean(let mask):
            require(Shape.broadcast(mask.shape, full, op: "attention mask") == full,
                         "attention: mask of shape \(mask.shape) does not broadcast to [B, Hq, Nq, Nk] = \(full)")
            let additive = Tensor<Scalar>(mask.values.map { $0 ? 0 : -Scalar.infinity }, shape: mask.shape, device: device)
            additiveMaskView = additive.expandedView(full).view
        case nil:
            additiveMaskView = nil
        }
    }

    /// Whether anything besides softcap changes the scaled scores (masks, padding, windows, ALiBi).
    public var hasScoreBias: Bool {
        left != Int.max || right != Int.max || keyLimit.contains { $0 < keyLength } || paddedKeys != nil
            || additiveMaskView != nil || alibiSlopes != nil
    }

    /// Keys query row `i` of batch `b` may see by position alone (causal, window, key lengths): j in the range.
    @inline(__always)
    public func visibleKeys(batch b: Int, row i: Int) -> Range<Int> {
        let aligned = i + diagonalOffset
        let lower = left == Int.max ? 0 : Swift.max(0, aligned - left)
        let upper = right == Int.max ? keyLimit[b] : Swift.min(keyLimit[b], aligned + right + 1)
        return lower..<Swift.max(lower, upper)
    }

    /// Keys any row of `rows` may see: the union of ``visibleKeys(batch:row:)``, for skipping blocks.
    public func visibleKeys(batch b: Int, rows: Range<Int>) -> Range<Int> {
        guard !rows.isEmpty else { return 0..<0 }
        let first = visibleKeys(batch: b, row: rows.lowerBound), last = visibleKeys(batch: b, row: rows.upperBound - 1)
        let lower = Swift.min(first.lowerBound, last.lowerBound), upper = Swift.max(first.upperBound, last.upperBound)
        return lower..<Swift.max(lower, upper)
    }

    /// Whether the dropout mask keeps weight (b, h, i, j): regenerated, never stored.
    @inline(__always)
    public func keeps(batch b: Int, head h: Int, row i: Int, column j: Int) -> Bool {
        CounterRandom.uniform(seed: dropoutSeed, UInt64(b * queryHeads + h), UInt64(i * keyLength + j)) >= Float(dropoutProbability)
    }
}
