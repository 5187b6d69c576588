import Foundation

/// Builds OCI image layouts from directories with the shared `rootfs-to-oci`
/// tool, so tests push real images with real skopeo.
public enum OCIImage {
    /// Path to the shared tools (`../shared/bin` next to the repository).
    public static var sharedBin: String {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        return repo.deletingLastPathComponent().appendingPathComponent("shared/bin").path
    }

    /// Packs `rootfs` as a one-layer gzip image at `layout` with `tag`; returns
    /// the skopeo source `oci:LAYOUT:TAG`.
    public static func layout(from rootfs: String, at layout: String, tag: String = "img",
                              command: String = #"["/bin/sh"]"#) throws -> String {
        try Command.check([sharedBin + "/rootfs-to-oci", rootfs, layout, tag, command])
        return "oci:\(layout):\(tag)"
    }
}
