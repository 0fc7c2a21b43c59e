#if canImport(Glibc)
import Glibc
#endif

/// Blocks the calling thread until SIGINT or SIGTERM arrives.
enum SignalWaiter {
    static func waitForTermination() {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &set, nil)
        var signal: Int32 = 0
        sigwait(&set, &signal)
    }
}
