import FlashGrad
import Foundation

/// BERT's tokenizer, as Hugging Face's `BertTokenizer` (and its fast `tokenizer.json` twin) does it:
///
/// 1. normalise: drop control characters, turn whitespace into spaces, put spaces around CJK
///    ideographs, strip accents (NFD, then no nonspacing marks) and lower-case (both when
///    `lowercase`, as uncased models are trained);
/// 2. split on whitespace, and make every punctuation character a word of its own;
/// 3. WordPiece: each word becomes the longest vocabulary entry that starts it, then the longest
///    `##`-prefixed entry for the rest, and so on; a word with no such split (or longer than 100
///    characters) becomes `[UNK]`;
/// 4. `[CLS] … [SEP]`, truncated to `maximumLength` tokens in all.
///
/// Works on Unicode scalars throughout (as the Rust implementation's `char`s), and looks tokens up
/// by their scalars, not by Swift's canonically equivalent `String` equality.
public struct WordPieceTokenizer {
    private let ids: [[Unicode.Scalar]: Int]
    public let vocabularySize: Int
    public let lowercase: Bool
    /// Tokens per sequence at most, `[CLS]` and `[SEP]` included.
    public let maximumLength: Int
    public let classToken: Int, separatorToken: Int, unknownToken: Int, paddingToken: Int
    static let maximumWordCharacters = 100

    /// Reads `vocab.txt` (one token per line, its id the line number).
    public init(vocabulary url: URL, lowercase: Bool = true, maximumLength: Int = 512) throws {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else {
            throw CheckpointError(path: url.path, reason: "cannot read the vocabulary (a UTF-8 vocab.txt, one token per line)")
        }
        var lines = text.components(separatedBy: "\n")
        if lines.last == "" { lines.removeLast() }
        var ids: [[Unicode.Scalar]: Int] = [:]
        for (id, line) in lines.enumerated() {
            let token = Array((line.hasSuffix("\r") ? String(line.dropLast()) : line).unicodeScalars)
            if ids[token] == nil { ids[token] = id }
        }
        func special(_ name: String) throws -> Int {
            guard let id = ids[Array(name.unicodeScalars)] else { throw CheckpointError(path: url.path, reason: "the vocabulary has no \(name) token") }
            return id
        }
        guard maximumLength >= 2 else { throw CheckpointError(path: url.path, reason: "maximumLength must be at least 2 ([CLS] and [SEP]), got \(maximumLength)") }
        self.ids = ids
        vocabularySize = lines.count
        self.lowercase = lowercase
        self.maximumLength = maximumLength
        classToken = try special("[CLS]")
        separatorToken = try special("[SEP]")
        unknownToken = try special("[UNK]")
        paddingToken = try special("[PAD]")
    }

    /// `[CLS]`, the WordPiece ids of `text`, `[SEP]`, truncated to ``maximumLength``.
    public func encode(_ text: String) -> [Int] {
        let pieces = words(text).flatMap(wordPieces)
        return [classToken] + pieces.prefix(maximumLength - 2) + [separatorToken]
    }

    /// Several texts as a right-padded [B, N] batch (N the longest) and each one's length.
    public func encodeBatch(_ texts: [String]) -> (ids: [[Int]], lengths: [Int], padded: [Int], paddedLength: Int) {
        let ids = texts.map(encode)
        let width = ids.map(\.count).max() ?? 0
        let padded = ids.flatMap { $0 + [Int](repeating: paddingToken, count: width - $0.count) }
        return (ids, ids.map(\.count), padded, width)
    }

    /// Steps 1 and 2: the normalised text split into words and punctuation.
    func words(_ text: String) -> [[Unicode.Scalar]] {
        var normalized = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            if scalar.value == 0 || scalar.value == 0xFFFD || (Self.isControl(scalar)) { continue }
            if Self.isWhitespace(scalar) {
                normalized.append(" ")
            } else if Self.isChineseCharacter(scalar) {
                normalized.append(" "); normalized.append(scalar); normalized.append(" ")
            } else {
                normalized.append(scalar)
            }
        }
        var string = String(normalized)
        if lowercase {
            let stripped = string.decomposedStringWithCanonicalMapping.unicodeScalars.filter { $0.properties.generalCategory != .nonspacingMark }
            string = String(String.UnicodeScalarView(stripped)).lowercased()
        }
        var words: [[Unicode.Scalar]] = [], current: [Unicode.Scalar] = []
        for scalar in string.unicodeScalars {
            if Self.isWhitespace(scalar) {
                if !current.isEmpty { words.append(current); current = [] }
            } else if Self.isPunctuation(scalar) {
                if !current.isEmpty { words.append(current); current = [] }
                words.append([scalar])
            } else {
                current.append(scalar)
            }
        }
        if !current.isEmpty { words.append(current) }
        return words
    }

    /// Step 3: greedy longest-match-first WordPiece of one word.
    func wordPieces(_ word: [Unicode.Scalar]) -> [Int] {
        guard word.count <= Self.maximumWordCharacters else { return [unknownToken] }
        var pieces: [Int] = [], start = 0
        let prefix = Array("##".unicodeScalars)
        while start < word.count {
            var end = word.count, found: Int?
            while start < end {
                let candidate = (start > 0 ? prefix : []) + word[start..<end]
                if let id = ids[candidate] { found = id; break }
                end -= 1
            }
            guard let id = found else { return [unknownToken] }
            pieces.append(id)
            start = end
        }
        return pieces
    }

    /// Control characters (general category C*), except tab, newline and carriage return, which count as whitespace.
    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        if scalar == "\t" || scalar == "\n" || scalar == "\r" { return false }
        switch scalar.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned: return true
        default: return false
        }
    }

    static func isWhitespace(_ scalar: Unicode.Scalar) -> Bool {
        scalar == " " || scalar == "\t" || scalar == "\n" || scalar == "\r" || scalar.properties.isWhitespace
    }

    /// ASCII punctuation and symbols (`$`, `+`, `^`, … count, as in BERT) and Unicode punctuation (P*).
    static func isPunctuation(_ scalar: Unicode.Scalar) -> Bool {
        let v = scalar.value
        if (33...47).contains(v) || (58...64).contains(v) || (91...96).contains(v) || (123...126).contains(v) { return true }
        switch scalar.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation, .initialPunctuation,
             .finalPunctuation, .otherPunctuation: return true
        default: return false
        }
    }

    /// The CJK Unified Ideographs blocks BERT isolates (not Japanese kana or Korean hangul).
    static func isChineseCharacter(_ scalar: Unicode.Scalar) -> Bool {
        let ranges: [ClosedRange<UInt32>] = [0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F,
                                             0x2B740...0x2B81F, 0x2B820...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F]
        return ranges.contains { $0.contains(scalar.value) }
    }
}
