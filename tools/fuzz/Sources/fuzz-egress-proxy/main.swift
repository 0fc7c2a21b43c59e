// libFuzzer entry for the "egress-proxy" target, built with -parse-as-library (see CFuzzDriver.h).
import CFuzzDriver
import FuzzTargets

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    EgressProxyFuzzTarget.run(UnsafeRawBufferPointer(start: start, count: count))
    return 0
}

@_cdecl("fuzz_egress_proxy_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv, fuzzTestOneInput)
}
