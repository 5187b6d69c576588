/// Turns a set of chunks (in blob order) into as few range requests as
/// allowed: neighbours whose gap is at most `maxGap` bytes share a range, and
/// no range grows beyond `maxBytes` (a single larger chunk still gets its own).
struct RangeCoalescer {
    var maxGap: Int64
    var maxBytes: Int64

    struct Request {
        var range: Range<Int64>
        /// Indexes into the input of the chunks this range serves.
        var members: [Int]
    }

    func plan(_ ranges: [Range<Int64>]) -> [Request] {
        var requests: [Request] = []
        for (i, r) in ranges.enumerated() {
            if var last = requests.last,
               r.lowerBound >= last.range.lowerBound,
               r.lowerBound <= last.range.upperBound + maxGap,
               max(last.range.upperBound, r.upperBound) - last.range.lowerBound <= maxBytes {
                last.range = last.range.lowerBound..<max(last.range.upperBound, r.upperBound)
                last.members.append(i)
                requests[requests.count - 1] = last
            } else {
                requests.append(Request(range: r, members: [i]))
            }
        }
        return requests
    }
}
