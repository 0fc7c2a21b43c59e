// libFuzzer entry for the "yamux-session" target; built with -parse-as-library, libFuzzer supplies main.
import FuzzTargets

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    YamuxSessionFuzzTarget.run(UnsafeRawBufferPointer(start: start, count: count))
    return 0
}
