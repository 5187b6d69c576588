import FuseFS
import LazyLayer

/// The production content source: the lazy data path (cache, fetches,
/// read-ahead, prefetch, background fetch) already has the index, the
/// verified reads and the state JSON the filesystem asks for. The
/// conformance lives here, where the two are composed, so FuseFS never
/// depends on the data path.
extension LazyLayer: LayerContentSource {}
