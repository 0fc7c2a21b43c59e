// UDP echo on a hand-written loop: epoll_wait, recvmmsg into 64 preallocated slots, sendmmsg
// the batch back. No allocation per datagram (the shape of QUICTransport's loop).
import CMMsg
import Glibc

let port = UInt16(CommandLine.arguments.dropFirst().first ?? "") ?? 20002
let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
var size: Int32 = 8 << 20
setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, 4)
setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, 4)
var addr = sockaddr_in()
addr.sin_family = sa_family_t(AF_INET)
addr.sin_port = port.bigEndian
addr.sin_addr.s_addr = UInt32(0x7F000001).bigEndian
_ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
let n = 64, slot = 2048
let buffers = UnsafeMutableRawPointer.allocate(byteCount: n * slot, alignment: 16)
let names = UnsafeMutablePointer<sockaddr_storage>.allocate(capacity: n)
let iovs = UnsafeMutablePointer<iovec>.allocate(capacity: n)
let msgs = UnsafeMutablePointer<CMMsg_mmsghdr>.allocate(capacity: n)
for i in 0..<n {
    iovs[i] = iovec(iov_base: buffers + i * slot, iov_len: slot)
    msgs[i] = CMMsg_mmsghdr()
    msgs[i].msg_hdr.msg_name = UnsafeMutableRawPointer(names + i)
    msgs[i].msg_hdr.msg_iov = iovs + i
    msgs[i].msg_hdr.msg_iovlen = 1
}
let ep = epoll_create1(0)
var ev = epoll_event(events: EPOLLIN.rawValue, data: epoll_data_t(fd: fd))
epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev)
var events = [epoll_event](repeating: epoll_event(), count: 4)
print("ready \(port)")
while true {
    _ = epoll_wait(ep, &events, 4, -1)
    while true {
        for i in 0..<n {
            msgs[i].msg_hdr.msg_namelen = socklen_t(MemoryLayout<sockaddr_storage>.size)
            iovs[i].iov_len = slot
        }
        let got = CMMsg_recvmmsg(fd, msgs, UInt32(n), Int32(MSG_DONTWAIT))
        if got <= 0 { break }
        for i in 0..<Int(got) { iovs[i].iov_len = Int(msgs[i].msg_len) }
        var start = 0
        while start < Int(got) {
            let sent = CMMsg_sendmmsg(fd, msgs + start, UInt32(Int(got) - start), 0)
            if sent <= 0 { break }
            start += Int(sent)
        }
        if got < n { break }
    }
}
