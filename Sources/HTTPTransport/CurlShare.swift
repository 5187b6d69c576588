import CCurl
import Foundation

/// Initialises libcurl once per process, before any handle exists.
///
/// `curl_global_init` is not thread-safe; Swift's lazy global initialisation
/// runs this exactly once even when many threads race to create clients.
let curlGlobalInitialisation: Bool = {
    curl_global_init(Int(CURL_GLOBAL_ALL)) == CURLE_OK
}()

/// A curl share handle holding the DNS cache and TLS session cache of every
/// easy handle of one `HTTPClient`, so that a new connection to a known
/// registry skips the lookup and resumes its TLS session.
///
/// Connections themselves are *not* shared here: libcurl does not support a
/// shared connection cache across concurrent threads. They are reused through
/// the per-host pool of easy handles instead (`CurlHandlePool`).
///
/// libcurl calls the lock callbacks from whichever thread uses an easy handle;
/// one mutex per kind of shared data, as the curl documentation requires.
final class CurlShare: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer
    /// Indexed by `curl_lock_data` raw value; fixed after init.
    private let locks: [NSLock]

    init() {
        _ = curlGlobalInitialisation
        // curl_share_init only fails on allocation failure.
        guard let share = curl_share_init() else { preconditionFailure("curl_share_init: out of memory") }
        handle = share
        locks = (0..<Int(CURL_LOCK_DATA_LAST.rawValue)).map { _ in NSLock() }
        let context = Unmanaged.passUnretained(self).toOpaque()
        _ = starling_share_setopt_pointer(share, CURLSHOPT_USERDATA, context)
        _ = starling_share_setopt_lock_function(share) { _, data, _, context in
            guard let context else { return }
            let share = Unmanaged<CurlShare>.fromOpaque(context).takeUnretainedValue()
            share.lock(for: data).lock()
        }
        _ = starling_share_setopt_unlock_function(share) { _, data, context in
            guard let context else { return }
            let share = Unmanaged<CurlShare>.fromOpaque(context).takeUnretainedValue()
            share.lock(for: data).unlock()
        }
        _ = starling_share_setopt_long(share, CURLSHOPT_SHARE, Int(CURL_LOCK_DATA_DNS.rawValue))
        _ = starling_share_setopt_long(share, CURLSHOPT_SHARE, Int(CURL_LOCK_DATA_SSL_SESSION.rawValue))
    }

    private func lock(for data: curl_lock_data) -> NSLock {
        let index = Int(data.rawValue)
        return locks[index >= 0 && index < locks.count ? index : 0]
    }

    deinit {
        curl_share_cleanup(handle)
    }
}
