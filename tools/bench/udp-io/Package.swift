// swift-tools-version:6.0
// Measures the cost per datagram of two UDP I/O layers (no QUIC): SwiftNIO's DatagramChannel
// with vector reads, and a hand-written epoll + recvmmsg/sendmmsg loop like QUICTransport's.
import PackageDescription

let package = Package(
    name: "udp-io-bench",
    dependencies: [.package(url: "https://github.com/apple/swift-nio", from: "2.101.3")],
    targets: [
        .target(name: "CMMsg"),
        .executableTarget(name: "NIOEcho", dependencies: [.product(name: "NIOPosix", package: "swift-nio"), .product(name: "NIOCore", package: "swift-nio")]),
        .executableTarget(name: "RawEcho", dependencies: ["CMMsg"]),
    ]
)
