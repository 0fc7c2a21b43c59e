@testable import RelayAdmin
import Testing

@Suite struct AdminRouteTests {
    @Test func routesMethodsAndUnknownPaths() {
        #expect(AdminRoute.match(method: "GET", path: "/admin/allocations") == .route(.listAllocations))
        #expect(AdminRoute.match(method: "DELETE", path: "/admin/allocations/abc") == .route(.terminateAllocation("abc")))
        #expect(AdminRoute.match(method: "PUT", path: "/admin/allocations/abc") == .methodNotAllowed(allowed: ["DELETE", "GET"]))
        #expect(AdminRoute.match(method: "POST", path: "/admin/revocations") == .route(.createRevocation))
        #expect(AdminRoute.match(method: "DELETE", path: "/admin/blocklist/10.0.0.0%2F8") == .route(.deleteBlocklist("10.0.0.0/8")))
        #expect(AdminRoute.match(method: "PUT", path: "/admin/log-level") == .route(.setLogLevel))
        #expect(AdminRoute.match(method: "GET", path: "/admin/events") == .route(.events))
        for path in ["/", "/admin", "/admin/", "/admin/nothing", "/admin/allocations/a/b", "/other/stats", "/admin//x",
                     "/admin/blocklist/%zz"] {
            #expect(AdminRoute.match(method: "GET", path: path) == .notFound, "\(path)")
        }
    }

    @Test func bearerTokensAndConstantTimeCompare() {
        #expect(AdminResponder.bearerToken("Bearer abc") == "abc")
        #expect(AdminResponder.bearerToken("bearer  abc ") == "abc")
        #expect(AdminResponder.bearerToken("Basic abc") == nil)
        #expect(AdminResponder.bearerToken(nil) == nil)
        #expect(AdminResponder.constantTimeEqual(Array("same".utf8), Array("same".utf8)))
        #expect(!AdminResponder.constantTimeEqual(Array("same".utf8), Array("samf".utf8)))
        #expect(!AdminResponder.constantTimeEqual(Array("same".utf8), Array("same-longer".utf8)))
        #expect(AdminResponder.durationSeconds("90s") == 90 && AdminResponder.durationSeconds("2h") == 7200)
        #expect(AdminResponder.durationSeconds("1y") == nil && AdminResponder.durationSeconds("h") == nil)
    }
}
