import Foundation

/// The memory tier: decoded chunks the disk tier does not hold (no disk
/// tier, its filesystem at its reserve, chunks without a content digest),
/// bounded by total bytes, least recently used evicted first. A chunk on
/// disk is read from there (see `DiskChunkCache.read`). Once every byte of
/// a chunk has been read out (`noteRead`), the kernel's page cache holds
/// them, and a chunk the disk tier holds by then leaves this tier.
final class MemoryChunkCache: @unchecked Sendable {
    // @unchecked: all state is guarded by `lock`.
    private struct Node {
        var key: ChunkKey
        var bytes: [UInt8]
        /// Bytes read out of it since it came in (a range read twice counts twice).
        var readBytes = 0
        var previous: Int
        var next: Int
    }

    private let lock = NSLock()
    private let capacity: Int
    private var index: [ChunkKey: Int] = [:]
    private var nodes: [Node] = []
    private var freeList: [Int] = []
    /// Most recently used end of the list, and the least recently used end.
    private var head = -1
    private var tail = -1
    private var bytesUsed = 0

    /// Bytes currently held.
    var totalBytes: Int { lock.lock(); defer { lock.unlock() }; return bytesUsed }

    init(capacityBytes: Int) {
        capacity = max(0, capacityBytes)
    }

    func get(_ key: ChunkKey) -> [UInt8]? {
        lock.lock(); defer { lock.unlock() }
        guard let slot = index[key] else { return nil }
        moveToFront(slot)
        return nodes[slot].bytes
    }

    func contains(_ key: ChunkKey) -> Bool {
        lock.lock(); defer { lock.unlock() }
        return index[key] != nil
    }

    func put(_ key: ChunkKey, _ bytes: [UInt8]) {
        guard bytes.count <= capacity else { return }
        lock.lock(); defer { lock.unlock() }
        if let slot = index[key] {
            moveToFront(slot)
            return
        }
        while bytesUsed + bytes.count > capacity, tail >= 0 {
            remove(slot: tail)
        }
        let node = Node(key: key, bytes: bytes, previous: -1, next: head)
        let slot: Int
        if let free = freeList.popLast() {
            nodes[free] = node
            slot = free
        } else {
            nodes.append(node)
            slot = nodes.count - 1
        }
        if head >= 0 { nodes[head].previous = slot }
        head = slot
        if tail < 0 { tail = slot }
        index[key] = slot
        bytesUsed += bytes.count
    }

    /// `count` bytes of the chunk were read out; drops it once that makes
    /// all of it and `isKeptElsewhere` says the disk tier has it. Counting a
    /// range twice only drops it early: the disk tier gives it back (and it
    /// is verified again).
    func noteRead(_ key: ChunkKey, count: Int, isKeptElsewhere: () -> Bool) {
        lock.lock(); defer { lock.unlock() }
        guard let slot = index[key] else { return }
        nodes[slot].readBytes += count
        if nodes[slot].readBytes >= nodes[slot].bytes.count, isKeptElsewhere() { remove(slot: slot) }
    }

    func removeAll() {
        lock.lock(); defer { lock.unlock() }
        index.removeAll(); nodes.removeAll(); freeList.removeAll()
        head = -1; tail = -1; bytesUsed = 0
    }

    private func unlink(_ slot: Int) {
        let node = nodes[slot]
        if node.previous >= 0 { nodes[node.previous].next = node.next } else { head = node.next }
        if node.next >= 0 { nodes[node.next].previous = node.previous } else { tail = node.previous }
    }

    private func moveToFront(_ slot: Int) {
        guard slot != head else { return }
        unlink(slot)
        nodes[slot].previous = -1
        nodes[slot].next = head
        if head >= 0 { nodes[head].previous = slot }
        head = slot
        if tail < 0 { tail = slot }
    }

    private func remove(slot: Int) {
        unlink(slot)
        index[nodes[slot].key] = nil
        bytesUsed -= nodes[slot].bytes.count
        nodes[slot].bytes = []
        freeList.append(slot)
    }
}
