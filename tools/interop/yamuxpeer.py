"""An independent client of the relay's TCP fallback (DESIGN §9), on asyncio.

A minimal yamux client written from hashicorp/yamux `spec.md` (12-byte header: version,
type, flags, stream id, length; Data / WindowUpdate / Ping / GoAway; SYN / ACK / FIN / RST;
256 KiB initial window), over TLS 1.3 with ALPN `zrc-relay/1` (or plain TCP). Stream 1
carries the control frames of §4, stream 3 the datagrams as `length u16 | payload`.
`FallbackPeer` mirrors zrcpeer.Peer, so the same tests drive a QUIC and a TCP peer.
"""
import asyncio
import ssl
import struct
import time
from typing import Optional

from zrcpeer import ALPN, ERROR_CODES, allocate, parse_frames

DATA, WINDOW_UPDATE, PING, GO_AWAY = 0, 1, 2, 3
SYN, ACK, FIN, RST = 1, 2, 4, 8
INITIAL_WINDOW = 256 * 1024
HEADER = struct.Struct(">BBHII")



def tls_client_context(alpn=ALPN) -> ssl.SSLContext:
    """TLS 1.3 client context for the relay's fallback (certificate not verified), offering `alpn`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    if alpn:
        context.set_alpn_protocols([alpn])
    return context

class _Stream:
    def __init__(self, sid):
        self.id = sid
        self.send_window = INITIAL_WINDOW
        self.pending = bytearray()
        self.unacknowledged = 0  # received bytes not yet given back with a WindowUpdate
        self.reset = False
        self.fin = False


class YamuxClient:
    """Client side of one yamux session (odd stream ids)."""

    def __init__(self, reader, writer, on_data):
        self.reader, self.writer = reader, writer
        self.on_data = on_data
        self.streams = {}
        self.next_id = 1
        self.go_away: Optional[int] = None
        self.untracked_resets = set()  # stream ids the peer reset that this client never opened
        self.closed = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(self._read_loop())

    @classmethod
    async def connect(cls, host, port, on_data, tls=True, alpn=ALPN):
        context = tls_client_context(alpn) if tls else None
        reader, writer = await asyncio.open_connection(host, port, ssl=context)
        return cls(reader, writer, on_data)

    def _frame(self, ftype, flags, sid, length, payload=b""):
        self.writer.write(HEADER.pack(0, ftype, flags, sid, length) + payload)

    def send_raw_frame(self, ftype, flags, sid, length, payload=b""):
        """Writes one frame as given, outside the client's stream bookkeeping (for tests)."""
        self._frame(ftype, flags, sid, length, payload)

    def open_stream(self) -> int:
        sid = self.next_id
        self.next_id += 2
        self.streams[sid] = _Stream(sid)
        self._frame(WINDOW_UPDATE, SYN, sid, 0)
        return sid

    def write(self, sid, data: bytes):
        stream = self.streams[sid]
        stream.pending += data
        self._flush(stream)

    def _flush(self, stream):
        while stream.pending and stream.send_window > 0 and not stream.reset:
            n = min(len(stream.pending), stream.send_window, 64 * 1024)
            self._frame(DATA, 0, stream.id, n, bytes(stream.pending[:n]))
            del stream.pending[:n]
            stream.send_window -= n

    def close_write(self, sid):
        self._frame(WINDOW_UPDATE, FIN, sid, 0)

    def backlog(self) -> int:
        return sum(len(s.pending) for s in self.streams.values())

    async def _read_exactly(self, n):
        return await self.reader.readexactly(n)

    async def _read_loop(self):
        try:
            while True:
                header = await self._read_exactly(12)
                version, ftype, flags, sid, length = HEADER.unpack(header)
                assert version == 0, f"yamux version {version}"
                if ftype == DATA:
                    payload = await self._read_exactly(length) if length else b""
                    stream = self.streams.get(sid)
                    if stream is None:
                        if flags & RST:
                            self.untracked_resets.add(sid)
                        continue
                    if payload:
                        self.on_data(sid, payload)
                        stream.unacknowledged += len(payload)
                        if stream.unacknowledged >= INITIAL_WINDOW // 2:
                            self._frame(WINDOW_UPDATE, 0, sid, stream.unacknowledged)
                            stream.unacknowledged = 0
                    self._stream_flags(stream, flags)
                elif ftype == WINDOW_UPDATE:
                    stream = self.streams.get(sid)
                    if stream is None:
                        if flags & RST:
                            self.untracked_resets.add(sid)
                        continue
                    stream.send_window += length
                    self._stream_flags(stream, flags)
                    self._flush(stream)
                elif ftype == PING:
                    if flags & SYN:
                        self._frame(PING, ACK, 0, length)
                elif ftype == GO_AWAY:
                    self.go_away = length
                else:
                    raise AssertionError(f"unknown yamux frame type {ftype}")
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            self.closed.set()

    def _stream_flags(self, stream, flags):
        if flags & RST:
            stream.reset = True
        if flags & FIN:
            stream.fin = True

    async def close(self):
        try:
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), 1)
        except Exception:
            pass
        self.task.cancel()


class _Inbox:
    """Same shape as zrcpeer.PeerProtocol's queues, so tests treat both peers alike."""

    def __init__(self):
        self.control = bytearray()
        self.frames: asyncio.Queue = asyncio.Queue()
        self.datagrams: asyncio.Queue = asyncio.Queue()
        self.closed = asyncio.Event()


class FallbackPeer:
    """One ZRC peer on the TCP fallback."""

    CONTROL, DATAGRAMS = 1, 3

    def __init__(self):
        self.protocol = _Inbox()
        self.inbound = bytearray()
        self.yamux: Optional[YamuxClient] = None

    @classmethod
    async def open(cls, host: str, port: int, tls=True, alpn=ALPN) -> "FallbackPeer":
        peer = cls()
        peer.yamux = await YamuxClient.connect(host, port, peer._on_data, tls=tls, alpn=alpn)
        assert peer.yamux.open_stream() == cls.CONTROL
        assert peer.yamux.open_stream() == cls.DATAGRAMS
        asyncio.get_running_loop().create_task(peer._watch_close())
        return peer

    async def _watch_close(self):
        await self.yamux.closed.wait()
        self.protocol.closed.set()

    def _on_data(self, sid, payload):
        if sid == self.CONTROL:
            self.protocol.control += payload
            for f in parse_frames(self.protocol.control):
                self.protocol.frames.put_nowait(f)
        elif sid == self.DATAGRAMS:
            self.inbound += payload
            while len(self.inbound) >= 2:
                (n,) = struct.unpack(">H", self.inbound[:2])
                if len(self.inbound) < 2 + n:
                    break
                self.protocol.datagrams.put_nowait(bytes(self.inbound[2:2 + n]))
                del self.inbound[:2 + n]

    async def allocate(self, peer_id: bytes, token: bytes):
        self.send_control(allocate(peer_id, token))

    def send_control(self, data: bytes):
        self.yamux.write(self.CONTROL, data)

    def send(self, payload: bytes):
        self.yamux.write(self.DATAGRAMS, struct.pack(">H", len(payload)) + payload)

    async def next_frame(self, kind: Optional[str] = None, timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {kind or 'frame'} within {timeout}s")
            f = await asyncio.wait_for(self.protocol.frames.get(), remaining)
            if kind is None or f.kind == kind:
                return f

    async def wait_peer(self, state: str, timeout: float = 10.0):
        while True:
            f = await self.next_frame("PEER", timeout)
            if f.fields["state"] == state:
                return f

    async def expect_error(self, name: str, timeout: float = 10.0):
        f = await self.next_frame("ERROR", timeout)
        assert f.fields["code"] == ERROR_CODES[name], f"expected {name}, got {f.fields}"
        await asyncio.wait_for(self.protocol.closed.wait(), timeout)
        return f

    async def close(self):
        if self.yamux:
            await self.yamux.close()
