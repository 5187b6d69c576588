extension LayerIndex {
    /// Resolves `path` inside the layer the way the kernel would inside a
    /// container whose root is this layer: symlinks are followed (absolute
    /// targets from the layer root, at most `maxSymlinks` of them), and ".."
    /// at the root stays at the root, so nothing resolves outside the layer.
    /// Returns nil when a component is missing here (it may live in another
    /// layer of the image) or the symlinks loop.
    public func resolve(path: String, maxSymlinks: Int = 40) -> EntryID? {
        var pending = Self.components(path).reversed() as [Substring]
        var stack: [EntryID] = []  // directories from the root down; empty = root
        var hops = 0
        while let component = pending.popLast() {
            let current = stack.last ?? root
            if component == "." { continue }
            if component == ".." { _ = stack.popLast(); continue }
            guard let next = lookup(String(component), in: current) else { return nil }
            guard type(of: next) == .symlink else {
                stack.append(next)
                continue
            }
            hops += 1
            guard hops <= maxSymlinks, let target = entry(next).linkTarget else { return nil }
            if target.hasPrefix("/") { stack.removeAll() }
            pending.append(contentsOf: Self.components(target).reversed())
        }
        return stack.last ?? root
    }

    private static func components(_ path: String) -> [Substring] {
        path.split(separator: "/", omittingEmptySubsequences: true)
    }
}
