/// Variable-length sequences stored as rows of real tokens only, without padding (the "varlen" or
/// "unpadded" layout): sequence b has `lengths[b]` tokens, padded to `paddedLength` elsewhere.
///
/// Row-wise layers (linear, norms, feed-forward) then do no work on padding; attention unpacks its
/// queries, keys and values to the padded layout and masks the padding by key lengths.
public struct PackedSequences: Equatable {
    public let lengths: [Int]
    public let paddedLength: Int
    /// For each packed row, its row b·paddedLength + i in the padded [B·N] layout.
    let paddedRows: [Int]
    /// For each padded row, its packed row, or −1 for padding: the inverse of ``paddedRows``.
    let packedRows: [Int]

    public init(lengths: [Int], paddedLength: Int) {
        for length in lengths {
            require(length >= 0 && length <= paddedLength, "PackedSequences: length \(length) outside 0…\(paddedLength)")
        }
        self.lengths = lengths
        self.paddedLength = paddedLength
        paddedRows = lengths.enumerated().flatMap { b, length in (0..<length).map { b * paddedLength + $0 } }
        var packedRows = [Int](repeating: -1, count: lengths.count * paddedLength)
        for (packed, padded) in paddedRows.enumerated() { packedRows[padded] = packed }
        self.packedRows = packedRows
    }

    public var batch: Int { lengths.count }
    /// Real tokens in the batch: the number of packed rows.
    public var tokenCount: Int { paddedRows.count }
}

extension Tensor {
    /// [B, N, …] → [T, …]: the rows of real tokens, in sequence order.
    public func packed(_ packing: PackedSequences) -> Tensor {
        require(rank >= 2 && shape[0] == packing.batch && shape[1] == packing.paddedLength,
                     "packed: tensor of shape \(shape) does not match \(packing.batch) sequences padded to \(packing.paddedLength)")
        let rest = Array(shape.dropFirst(2))
        let rows = reshape([shape[0] * shape[1], Shape.count(rest)])
        return rows.gatheringRows(packing.paddedRows, inverse: packing.packedRows).reshape([packing.tokenCount] + rest)
    }

    /// [T, …] → [B, N, …] with zeros at padding; the inverse of ``packed(_:)``.
    public func unpacked(_ packing: PackedSequences) -> Tensor {
        require(rank >= 1 && shape[0] == packing.tokenCount,
                     "unpacked: tensor of shape \(shape) does not hold \(packing.tokenCount) packed rows")
        let rest = Array(shape.dropFirst())
        let rows = reshape([packing.tokenCount, Shape.count(rest)])
        return rows.gatheringRows(packing.packedRows, inverse: packing.paddedRows).reshape([packing.batch, packing.paddedLength] + rest)
    }

    /// Rows of this [rows, width] tensor at `indices` (−1: a row of zeros), each row read at most
    /// once, so that the backward is the gather through the inverse map (`inverse[indices[p]] = p`,
    /// −1 elsewhere): one kernel each way, where an embedding's backward zeroes and scatter-adds.
    private func gatheringRows(_ indices: [Int], inverse: [Int]) -> Tensor {
        let width = shape[1], source = contiguousData()
        let out = Tensor.uninitialized([indices.count, width], on: device)
        backend.gatherRows(source.view, indices: indices, dim: width, into: out.view)
        return Tensor.record(out, op: "gatherRows", inputs: [self]) { gradient in [gradient.gatheringRows(inverse, inverse: indices)] }
    }
}
