import Foundation

/// `[cri]`: the CRI image-service proxy kubelet talks to instead of
/// containerd (`imageServiceEndpoint`), so that the credentials it sends
/// with `PullImage` reach Starling's lazy fetches.
public struct CRISettings: Sendable, Equatable {
    /// Where the proxy listens (directory 0700, socket 0600, root's); "" =
    /// no proxy; nil = `cri.sock` beside the snapshots socket
    /// (`/run/starling/cri.sock` by default).
    public var address: String?
    /// containerd's CRI socket, where every call is forwarded; nil = the
    /// top-level `containerd_address` (containerd serves CRI on its main socket).
    public var containerdAddress: String?
    /// A captured credential whose repository no snapshot uses is kept
    /// this long after its pull (the pull's layers may still be coming).
    public var credentialGraceSeconds: Double = 600
    /// A `PullImage` starts opening the image's layers at once, while
    /// containerd resolves the image, instead of at containerd's first
    /// Prepare (`PullAhead`).
    public var openLayersOnPull = true

    public init() {}

    /// The settings with every default filled in.
    public func resolved(snapshotsAddress: String, containerdAddress mainSocket: String) -> CRISettings {
        var settings = self
        if settings.address == nil {
            settings.address = (snapshotsAddress as NSString).deletingLastPathComponent + "/cri.sock"
        }
        if settings.containerdAddress == nil {
            settings.containerdAddress = mainSocket.isEmpty ? "/run/containerd/containerd.sock" : mainSocket
        }
        return settings
    }

    public var isEnabled: Bool { address != "" }
}
