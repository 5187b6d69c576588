import Foundation
import Testing
@testable import StargzReader

/// `ZstdCodec.decompress` takes a one-call path (a kept context, no window
/// buffer) for a whole frame, and the streaming path for anything else: both
/// give the same bytes, and neither serves what a damaged frame says.
@Suite struct ZstdCodecTests {
    let content: [UInt8] = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 / 7) }

    @Test func wholeFramesPartsAndSeveralFramesDecodeAlike() throws {
        let frame = try ZstdCodec.compressFrame(content[...], level: 19)
        // Many whole frames in a row reuse kept contexts.
        for _ in 0..<50 {
            #expect(try ZstdCodec.decompress(frame[...], skip: 0, count: content.count) == content)
        }
        #expect(try ZstdCodec.decompress(frame[...], skip: 1000, count: content.count - 1000) == Array(content[1000...]))
        #expect(try ZstdCodec.decompress(frame[...], skip: 10, count: 500) == Array(content[10..<510]))
        let second = try ZstdCodec.compressFrame(content[..<1000], level: 3)
        #expect(try ZstdCodec.decompress((frame + second)[...], skip: 0, count: content.count + 1000)
                == content + content[..<1000])
    }

    @Test func aDamagedOrShortFrameIsRefused() throws {
        var frame = try ZstdCodec.compressFrame(content[...], level: 19)
        #expect(throws: StargzError.self) { try ZstdCodec.decompress(frame[...], skip: 0, count: content.count + 1) }
        frame[frame.count / 2] ^= 0xff
        #expect(throws: StargzError.self) { try ZstdCodec.decompress(frame[...], skip: 0, count: content.count) }
    }
}
