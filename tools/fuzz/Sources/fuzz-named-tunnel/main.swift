// libFuzzer entry for the "named-tunnel" target, built with -parse-as-library (see CFuzzDriver.h).
import CFuzzDriver
import FuzzTargets

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    NamedTunnelFuzzTarget.run(UnsafeRawBufferPointer(start: start, count: count))
    return 0
}

@_cdecl("fuzz_named_tunnel_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv, fuzzTestOneInput)
}
