import CVMFSBackend
import Foundation

/// Layers a mounted CVMFS repository (`unpacked.cern.ch`, published by
/// DUCC) holds unpacked: the layer's directory is used in place as an
/// overlay lower directory, between its whiteout directories when it has
/// whiteouts (`WhiteoutLayers`), and nothing is downloaded. The repository
/// is the one cvmfs2 mounted (`[cvmfs] mode = "mounted"`, or `auto` where
/// it is mounted; without cvmfs2, `LazyCVMFSLayerSource` serves layers
/// over HTTP instead). The lookup stats paths with a timeout, so a
/// stalled autofs mount becomes a fallback.
struct MountedCVMFSLayerSource: LayerSource {
    let name = "cvmfs"
    let title = "CVMFS"
    let event = SnapshotEvents.Kind.cvmfs
    let locator: CVMFSLayerLocator

    func serve(_ request: LayerRequest) -> LayerOffer {
        switch locator.locate(layerDigest: request.layerDigest) {
        case .found(let directory):
            return .served(ServedLayer(record: RemoteLayerRecord(source: name, layerDigest: request.layerDigest,
                                                                 directories: locator.lowerDirectories(
                                                                    layerDigest: request.layerDigest, layerDirectory: directory))))
        case .absent:
            return .notServed(reason: "not in CVMFS repository \(locator.configuration.repository)")
        case .unavailable(let reason):
            return .notServed(reason: "CVMFS: \(reason)")
        }
    }
}
