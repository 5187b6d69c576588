import LazyLayer

/// The production content source: the lazy data path (cache, coalesced range
/// fetches, prefetch, background fetch) already has the index, the verified
/// reads and the state JSON the filesystem asks for.
extension LazyLayer: LayerContentSource {}
