// swift-tools-version:6.0
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "zrc-relay",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "zrc-relay", targets: ["ZRCRelayCLI"]),
        .library(name: "QUICTransport", targets: ["QUICTransport"]),
        .library(name: "RelayCore", targets: ["RelayCore"]),
        .library(name: "RelayClient", targets: ["RelayClient"]),
        // Fuzz entry points, used by tools/fuzz (libFuzzer) and zrc-fuzz-replay (make test).
        .library(name: "FuzzTargets", targets: ["FuzzTargets"]),
        .executable(name: "zrc-fuzz-replay", targets: ["ZRCFuzzReplay"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-configuration", from: "1.4.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
    ],
    targets: [
        // The one C module: only what Swift cannot import from ngtcp2 0.12.1, GnuTLS and glibc.
        .target(
            name: "CNGTCP2",
            linkerSettings: [
                .linkedLibrary("ngtcp2_crypto_gnutls"),
                .linkedLibrary("ngtcp2"),
                .linkedLibrary("gnutls"),
            ]
        ),
        .target(
            name: "QUICTransport",
            dependencies: [
                "CNGTCP2",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "RelayCore",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // The fleet's shared state (DESIGN §8): records, the interface, the in-memory default.
        .target(name: "SharedState", dependencies: ["RelayCore"], swiftSettings: swiftSettings),
        // The same interface on Redis.
        .target(
            name: "RedisSharedState",
            dependencies: [
                "SharedState", "RedisClient", "RelayCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "RelayEngine",
            dependencies: [
                "RelayCore", "QUICTransport", "SharedState",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "RelayClient",
            dependencies: [
                "RelayCore", "QUICTransport", "YamuxNIO", "WebSocketTransport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // A Redis client on SwiftNIO (RESP2/RESP3, pipelining, pub/sub, timeouts, reconnect with
        // backoff, AUTH, TLS for rediss://); no Swift Redis package is reachable here.
        // RESP2/RESP3 codec, Redis URLs, backoff: pure.
        .target(name: "RedisProtocol", swiftSettings: swiftSettings),
        .target(
            name: "RedisClient",
            dependencies: [
                "RedisProtocol", "RelayCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "RelayAdmin",
            dependencies: [
                "RelayCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Yamux",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "YamuxNIO",
            dependencies: ["Yamux", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ReverseTunnel",
            dependencies: [
                "Yamux", "YamuxNIO", "RelayCore", "WebSocketTransport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                // Named tunnels (DESIGN §11): llhttp-based head parsing, SNI, TLS, metrics.
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // WebSocket (RFC 6455) as a byte-stream transport, HTTP CONNECT proxies and the dialer
        // that chains them (DESIGN §9 v3): shared by the relay fallback, its client and the tunnel.
        .target(
            name: "WebSocketTransport",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The egress proxy of DESIGN §12: the pure core (lines, policy, breaker, HTTP head) …
        .target(name: "EgressProxy", swiftSettings: swiftSettings),
        // … and its NIO shells: `proxy server`, `proxy agent`, the private CA of `pki`.
        .target(
            name: "EgressProxyNIO",
            dependencies: [
                "EgressProxy", "RelayCore", "Yamux", "YamuxNIO",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "RelayFallback",
            dependencies: [
                "RelayEngine", "RelayCore", "QUICTransport", "Yamux", "YamuxNIO", "WebSocketTransport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "RelayConfig",
            dependencies: [
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "TOMLKit", package: "TOMLKit"),
            ],
            swiftSettings: swiftSettings
        ),
        // The relay process composed from its services: settings → core configuration, the
        // relay, the fallback, HTTP endpoints, reload, drain. The executable only runs it.
        .target(
            name: "RelayApp",
            dependencies: [
                "QUICTransport",
                "RelayConfig",
                "RelayCore",
                "RelayEngine",
                "RelayAdmin",
                "RelayFallback",
                "SharedState",
                "RedisSharedState",
                "RedisProtocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "ZRCRelayCLI",
            dependencies: [
                "QUICTransport",
                "RelayApp",
                "RelayConfig",
                "RelayCore",
                "RelayEngine",
                "RelayClient",
                "ReverseTunnel",
                "WebSocketTransport",
                "EgressProxy",
                "EgressProxyNIO",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ],
            swiftSettings: swiftSettings
        ),
        // Benchmark helper for tools/bench/yamux (not part of the product).
        .executableTarget(
            name: "YamuxBench",
            dependencies: [
                "YamuxNIO",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            path: "Sources/YamuxBench",
            swiftSettings: swiftSettings
        ),
        // Fuzz targets (tools/fuzz/README.md): one entry function per parser or state machine.
        .target(
            name: "FuzzTargets",
            dependencies: [
                "RelayCore", "RelayConfig", "Yamux", "YamuxNIO", "ReverseTunnel", "RedisProtocol", "SharedState",
                "WebSocketTransport", "EgressProxy",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // Replays the fuzz corpora and runs a short mutation smoke without libFuzzer (make test).
        .executableTarget(
            name: "ZRCFuzzReplay",
            dependencies: ["FuzzTargets"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RelayCoreTests",
            dependencies: ["RelayCore", .product(name: "Crypto", package: "swift-crypto"), .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ZRCTestSupport",
            path: "Tests/ZRCTestSupport"
        ),
        .testTarget(
            name: "RelayEngineTests",
            dependencies: ["ZRCTestSupport", "RelayEngine", "RelayClient", "RelayCore", "QUICTransport", "RelayFallback",
                           .product(name: "Crypto", package: "swift-crypto"),
                           .product(name: "NIOPosix", package: "swift-nio")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RelayAdminTests",
            dependencies: ["RelayAdmin", .product(name: "HummingbirdTesting", package: "hummingbird")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "YamuxTests",
            dependencies: ["Yamux", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "YamuxNIOTests",
            dependencies: [
                "Yamux", "YamuxNIO", "ReverseTunnel",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "WebSocketTransportTests",
            dependencies: [
                "WebSocketTransport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ReverseTunnelTests",
            dependencies: [
                "ReverseTunnel", "Yamux", "YamuxNIO",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RelayConfigTests",
            dependencies: ["RelayConfig"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RelayAppTests",
            dependencies: [
                "RelayApp", "RelayConfig", "RelayEngine", "RelayClient", "RelayCore", "QUICTransport", "ZRCTestSupport",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ServiceLifecycleTestKit", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RedisClientTests",
            dependencies: ["RedisClient", "RedisSharedState", "SharedState", "RelayCore", .product(name: "Logging", package: "swift-log"),
                           .product(name: "NIOPosix", package: "swift-nio"), .product(name: "NIOSSL", package: "swift-nio-ssl")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "EgressProxyTests",
            dependencies: ["EgressProxy", "RelayCore"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "EgressProxyNIOTests",
            dependencies: [
                "EgressProxy", "EgressProxyNIO", "Yamux", "YamuxNIO",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "QUICTransportTests",
            dependencies: ["QUICTransport", "ZRCTestSupport"],
            swiftSettings: swiftSettings
        ),
    ]
)
