import NIOCore
import NIOHTTP1
@testable import ReverseTunnel
import Testing

@Suite struct HTTPResponseObserverTests {
    @Test func statusesAndEndsInOrderWithHeadResponses() {
        let observer = HTTPResponseObserver()
        observer.requestSent(HTTPRequestHead(version: .http1_1, method: .HEAD, uri: "/"))
        observer.requestSent(HTTPRequestHead(version: .http1_1, method: .GET, uri: "/"))
        let bytes = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n" + "HTTP/1.1 100 Continue\r\n\r\n"
            + "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n"
        var events: [HTTPResponseObserver.Event] = []
        for byte in bytes.utf8 { events += observer.feed(ByteBuffer(bytes: [byte])) }
        #expect(events == [.head(status: 200), .end, .head(status: 404), .end])
    }

    @Test func garbageIsReportedOnce() {
        let observer = HTTPResponseObserver()
        observer.requestSent(HTTPRequestHead(version: .http1_1, method: .GET, uri: "/"))
        #expect(observer.feed(ByteBuffer(string: "NOT HTTP AT ALL\r\n\r\n")) == [.lost])
        #expect(observer.feed(ByteBuffer(string: "HTTP/1.1 200 OK\r\n\r\n")) == [])
    }

    @Test func switchingProtocolsStopsObserving() {
        let observer = HTTPResponseObserver()
        observer.requestSent(HTTPRequestHead(version: .http1_1, method: .GET, uri: "/ws"))
        let events = observer.feed(ByteBuffer(string: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\u{81}\u{2}hi"))
        #expect(events.first == .head(status: 101))
        #expect(observer.feed(ByteBuffer(string: "garbage")) == [])
    }
}
