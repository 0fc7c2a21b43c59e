// swift-tools-version:6.0
// libFuzzer binaries for the fuzz targets of the root package (see README.md). Built only by
// `make fuzz`, with its own scratch path and -sanitize=fuzzer,address.
import Foundation
import PackageDescription

// A package depended on by path is identified by its folder's name, whatever the checkout is called.
let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
let rootIdentity = root.lastPathComponent.lowercased()

// libFuzzer binary name → the FuzzTargets entry it calls (one Sources/<name>/main.swift each).
let binaries = [
    "fuzz-control-frame", "fuzz-token", "fuzz-yamux-frame", "fuzz-yamux-session", "fuzz-tunnel-hello", "fuzz-config",
    "fuzz-revocations-file", "fuzz-resp", "fuzz-fleet-record", "fuzz-websocket-server", "fuzz-egress-proxy",
    "fuzz-named-tunnel",
]

let package = Package(
    name: "zrc-relay-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [.package(path: "../..")],
    targets: [.target(name: "CFuzzDriver")] + binaries.map { name in
        .executableTarget(
            name: name,
            dependencies: ["CFuzzDriver", .product(name: "FuzzTargets", package: rootIdentity)],
            path: "Sources/\(name)"
        )
    }
)
