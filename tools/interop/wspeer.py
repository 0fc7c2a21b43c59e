"""An independent WebSocket client of the relay (DESIGN §9 v3): the `websockets` package from
PyPI does RFC 6455; yamuxpeer.py's yamux client runs over its binary messages.

`WebSocketPeer` mirrors yamuxpeer.FallbackPeer (and so zrcpeer.Peer), so tests drive it alike.
"""
import asyncio
import ssl
from typing import Optional

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from yamuxpeer import FallbackPeer, YamuxClient

SUBPROTOCOL = "zrc-relay.v1"
PATH = "/zrc-relay/v1"


def tls_context(alpn: Optional[str] = "http/1.1") -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if alpn:
        context.set_alpn_protocols([alpn])
    return context


class WebSocketByteStream:
    """The reader/writer pair YamuxClient wants, over one WebSocket: bytes out are sent as
    binary messages (coalesced per loop turn), messages in are read as one byte stream."""

    def __init__(self, ws):
        self.ws = ws
        self.buffer = bytearray()
        self.outbox: asyncio.Queue = asyncio.Queue()
        self.sender = asyncio.get_running_loop().create_task(self._send_loop())

    async def readexactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            try:
                message = await self.ws.recv()
            except ConnectionClosed:
                raise asyncio.IncompleteReadError(bytes(self.buffer), n)
            assert isinstance(message, bytes), "the relay sends binary messages only"
            self.buffer += message
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    def write(self, data: bytes):
        self.outbox.put_nowait(bytes(data))

    async def _send_loop(self):
        try:
            while True:
                chunk = bytearray(await self.outbox.get())
                while not self.outbox.empty() and len(chunk) < 256 * 1024:
                    chunk += self.outbox.get_nowait()
                await self.ws.send(bytes(chunk))
        except (ConnectionClosed, asyncio.CancelledError):
            pass

    def close(self):
        self.sender.cancel()
        asyncio.get_running_loop().create_task(self.ws.close())

    async def wait_closed(self):
        await self.ws.wait_closed()


async def open_websocket(url: str, alpn: Optional[str] = "http/1.1", **kw):
    """A `websockets` connection offering the relay's subprotocol."""
    context = tls_context(alpn) if url.startswith("wss://") else None
    return await connect(url, ssl=context, subprotocols=[SUBPROTOCOL], compression=None,
                         max_size=2 ** 21, open_timeout=10, **kw)


class WebSocketPeer(FallbackPeer):
    """One ZRC peer on the relay's WebSocket service."""

    @classmethod
    async def open_url(cls, url: str, alpn: Optional[str] = "http/1.1") -> "WebSocketPeer":
        peer = cls()
        peer.ws = await open_websocket(url, alpn)
        assert peer.ws.subprotocol == SUBPROTOCOL
        stream = WebSocketByteStream(peer.ws)
        peer.yamux = YamuxClient(stream, stream, peer._on_data)
        assert peer.yamux.open_stream() == cls.CONTROL
        assert peer.yamux.open_stream() == cls.DATAGRAMS
        asyncio.get_running_loop().create_task(peer._watch_close())
        return peer
