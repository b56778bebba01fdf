import FlashGrad
import XCTest

/// The flash op's own backward against central differences in Double, one option at a time.
final class FlashAttentionGradcheckTests: XCTestCase {
    func check(_ options: AttentionOptions<Double>, queryHeads: Int = 2, keyValueHeads: Int = 2, queryLength: Int = 4,
               keyLength: Int = 5, batch: Int = 1, file: StaticString = #filePath, line: UInt = #line) {
        let generator = RandomGenerator(seed: 11)
        let q = Tensor<Double>.normal([batch, queryHeads, queryLength, 3], generator: generator, requiresGrad: true)
        let k = Tensor<Double>.normal([batch, keyValueHeads, keyLength, 3], generator: generator, requiresGrad: true)
        let v = Tensor<Double>.normal([batch, keyValueHeads, keyLength, 2], generator: generator, requiresGrad: true)
        assertGradcheck({ attention(query: $0[0], key: $0[1], value: $0[2], options: options, implementation: FlashAttention()) },
                        inputs: [q, k, v], file: file, line: line)
    }

    func testPlain() { check(AttentionOptions()) }
    func testScale() { check(AttentionOptions(scale: 0.7)) }
    func testCausal() { check(AttentionOptions(causal: true)) }
    func testCausalWithMoreQueriesThanKeys() { check(AttentionOptions(causal: true), queryLength: 6, keyLength: 3) }
    func testKeyLengths() { check(AttentionOptions(keyPadding: .lengths([3, 0])), batch: 2) }
    func testKeyPaddingMask() { check(AttentionOptions(keyPadding: .mask(BoolTensor([true, false, false, true, false], shape: [1, 5])))) }
    func testBooleanMask() { check(AttentionOptions(mask: .boolean(BoolTensor((0..<20).map { $0 % 3 != 0 }, shape: [4, 5])))) }
    func testAdditiveMask() {
        check(AttentionOptions(mask: .additive(Tensor<Double>.normal([1, 2, 1, 5], generator: RandomGenerator(seed: 2)))))
    }
    func testGroupedQuery() { check(AttentionOptions(), queryHeads: 4, keyValueHeads: 2) }
    func testMultiQuery() { check(AttentionOptions(causal: true), queryHeads: 3, keyValueHeads: 1) }
    func testDropoutWithFixedSeed() { check(AttentionOptions(dropout: (0.3, 1234))) }
    func testSlidingWindow() { check(AttentionOptions(window: (left: 1, right: 1))) }
    func testAlibi() { check(AttentionOptions(alibiSlopes: [0.5, 0.125])) }
    func testSoftcap() { check(AttentionOptions(softcap: 1.5)) }
    func testEverythingTogether() {
        check(AttentionOptions(scale: 0.6, causal: true, keyPadding: .lengths([5, 4]), mask: .boolean(BoolTensor([true, true, false, true, true])),
                               dropout: (0.2, 9), window: (left: 3, right: nil), alibiSlopes: [0.2, 0.4, 0.6, 0.8], softcap: 2),
              queryHeads: 4, keyValueHeads: 2, batch: 2)
    }
}
