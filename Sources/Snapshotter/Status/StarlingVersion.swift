/// The version `starling status` reports (and the daemon logs at start).
enum StarlingVersion {
    static let current = "0.1.0-dev"
}
