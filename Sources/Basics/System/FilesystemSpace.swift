/// A filesystem's free and total space as `statvfs` reports it to
/// unprivileged writers (blocks reserved for root count as used).
public struct FilesystemSpace: Sendable, Equatable {
    public var availableBytes: Int64
    public var totalBytes: Int64
    public var availableInodes: Int64
    public var totalInodes: Int64
    /// Allocation unit: a file takes its size rounded up to it.
    public var blockSize: Int

    public init(availableBytes: Int64, totalBytes: Int64, availableInodes: Int64, totalInodes: Int64, blockSize: Int) {
        self.availableBytes = availableBytes
        self.totalBytes = totalBytes
        self.availableInodes = availableInodes
        self.totalInodes = totalInodes
        self.blockSize = blockSize
    }
}
