import CVMFSBackend
import Foundation

/// Layers a mounted CVMFS repository (`unpacked.cern.ch`, published by
/// DUCC) holds unpacked: the layer's directory is used in place as an
/// overlay lower directory and nothing is downloaded. The lookup only stats
/// paths, with a timeout, so a stalled autofs mount becomes a fallback.
struct MountedCVMFSLayerSource: LayerSource {
    let name = "cvmfs"
    let title = "CVMFS"
    let event = SnapshotEvents.Kind.cvmfs
    let locator: CVMFSLayerLocator

    func serve(_ request: LayerRequest) -> LayerOffer {
        switch locator.locate(layerDigest: request.layerDigest) {
        case .found(let directory):
            return .served(ServedLayer(record: RemoteLayerRecord(source: name, layerDigest: request.layerDigest,
                                                                 directories: [directory])))
        case .absent:
            return .notServed(reason: "not in CVMFS repository \(locator.configuration.repository)")
        case .unavailable(let reason):
            return .notServed(reason: "CVMFS: \(reason)")
        }
    }
}
