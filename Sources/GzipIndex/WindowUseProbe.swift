import StargzReader

/// Finds which bytes of a checkpoint's window the stream after it copies,
/// so the index can store the window with every other byte zeroed: in
/// real layers a few thousand of the 32 KiB are ever referred to, and a
/// window that is mostly zeros compresses to a tenth of its size. The index
/// is what a cold start fetches before anything else, and the windows were
/// three quarters of it.
///
/// How: two more inflaters resume at the checkpoint beside the builder's,
/// each with the window's bytes changed by a different non-zero mask that
/// encodes their position (`1 + k % 255` and `1 + k / 255`). Deflate's
/// decoding does not depend on the data it produces, so the three streams
/// decode the same symbols; an output byte that differs between them was
/// copied, directly or through earlier output, from window byte `k`, and
/// the two differences name `k`. Literal bytes never differ.
///
/// The probe ends once 32 KiB of output in a row owe nothing to the window
/// (no back-reference reaches further), at the end of the gzip member, or,
/// for data that keeps copying from the window (long runs of one byte),
/// after `limit` bytes: then the whole window is kept. Whatever it
/// decides, every byte a reader serves is still checked against the file's
/// digest.
final class WindowUseProbe {
    let window: [UInt8]
    private let marked: [ZlibInflater]
    /// Output of each marked inflater not yet compared with the builder's.
    private var ahead: [[UInt8]] = [[], []]
    /// The builder's output not yet compared (when it runs ahead).
    private var behind: [UInt8] = []
    private var compared: Int64 = 0
    private var lastCopied: Int64 = -1
    private var used: [Bool]
    private var wholeWindow = false
    private var streamEnded = [false, false]
    private var scratch = [UInt8](repeating: 0, count: 64 << 10)
    private let limit: Int64
    private(set) var finished = false

    /// Resumes at a block boundary: `bits` of `boundaryByte` (the last byte
    /// consumed) begin the next block, and the input goes on after it.
    init(window: [UInt8], bits: Int, boundaryByte: UInt8, limit: Int64) throws {
        self.window = window
        self.limit = limit
        used = [Bool](repeating: false, count: window.count)
        var inflaters: [ZlibInflater] = []
        for marker in 0..<2 {
            let inflater = try ZlibInflater(framing: .raw)
            try inflater.prime(bits: bits, value: Int(boundaryByte >> (8 - bits)))
            try inflater.setDictionary(window.indices.map { window[$0] ^ Self.mask($0, marker: marker) })
            inflaters.append(inflater)
        }
        marked = inflaters
        if window.isEmpty { finished = true }
    }

    /// The masks of window byte `k`, non-zero, together naming `k` (for k < 255 * 255).
    private static func mask(_ k: Int, marker: Int) -> UInt8 {
        UInt8(1 + (marker == 0 ? k % 255 : k / 255))
    }

    /// The window to store: the bytes the stream copies, zeros elsewhere.
    var sparseWindow: [UInt8] {
        wholeWindow ? window : window.indices.map { used[$0] ? window[$0] : 0 }
    }

    /// The builder consumed `input` and produced `output` (its next bytes
    /// after the checkpoint); the marked inflaters decode the same input.
    func follow(input: UnsafeRawBufferPointer, output: UnsafeRawBufferPointer) {
        guard !finished else { return }
        do {
            for i in marked.indices { try decode(input, with: i) }
        } catch {
            keepWholeWindow()
            return
        }
        behind.append(contentsOf: output)
        compare()
        if compared >= limit { keepWholeWindow() }
    }

    /// The stream has ended: what was compared is all there is.
    func finish() {
        finished = true
    }

    private func decode(_ input: UnsafeRawBufferPointer, with i: Int) throws {
        var cursor = 0
        while !streamEnded[i] {
            let step = try scratch.withUnsafeMutableBytes { out in
                try marked[i].inflate(UnsafeRawBufferPointer(rebasing: input[cursor...]), into: out, stopAtBlocks: false)
            }
            cursor += step.consumed
            ahead[i].append(contentsOf: scratch[0..<step.produced])
            if step.streamEnded { streamEnded[i] = true }
            // All of the input decoded, and nothing held back for want of room.
            if cursor == input.count && step.produced < scratch.count { return }
            if step.consumed == 0 && step.produced == 0 { return }
        }
    }

    private func compare() {
        let count = min(behind.count, ahead[0].count, ahead[1].count)
        if count > 0 { compare(count) }
        let allCompared = streamEnded.allSatisfy { $0 } && ahead.allSatisfy(\.isEmpty)
        if allCompared || compared - (lastCopied + 1) >= Int64(ZlibInflater.windowSize) { finished = true }
    }

    private func compare(_ count: Int) {
        behind.withUnsafeBufferPointer { plain in
            ahead[0].withUnsafeBufferPointer { first in
                ahead[1].withUnsafeBufferPointer { second in
                    for j in 0..<count where plain[j] != first[j] {
                        let k = (Int(plain[j] ^ second[j]) - 1) * 255 + Int(plain[j] ^ first[j]) - 1
                        if k >= 0 && k < used.count { used[k] = true } else { wholeWindow = true }
                        lastCopied = compared + Int64(j)
                    }
                }
            }
        }
        compared += Int64(count)
        behind.removeFirst(count)
        ahead[0].removeFirst(count)
        ahead[1].removeFirst(count)
    }

    private func keepWholeWindow() {
        wholeWindow = true
        finished = true
    }
}
