"""An independent implementation of the ZRC relay client protocol (DESIGN.md §3–§4) on aioquic.

Written from the contract alone: token minting with `cryptography`'s Ed25519, the control-frame
codec, and a peer that binds to an allocation and exchanges DATAGRAM frames. Used by the
interop tests to prove the relay's contract is implementable from DESIGN.md.
"""
import asyncio
import hashlib
import os
import ssl
import struct
import time
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from aioquic.asyncio import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import (ConnectionTerminated, DatagramFrameReceived,
                                 HandshakeCompleted, StreamDataReceived)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, PrivateFormat, NoEncryption
import base64

ALPN = "zrc-relay/1"

ERROR_CODES = {
    "bad_message": 1, "invalid_token": 2, "untrusted_key": 3, "token_expired": 4,
    "allocation_mismatch": 5, "unknown_peer": 6, "capacity": 7, "rate_limited": 8, "blocked": 9,
    "quota_exceeded": 10, "allocation_expired": 11, "draining": 12, "internal": 13, "released": 14,
    "peer_timeout": 15, "admin_terminated": 16, "revoked": 17, "token_not_yet_valid": 18,
    "wrong_audience": 19, "allocation_ended": 20,
}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class DeviceKey:
    """An Ed25519 device key."""

    def __init__(self, private: Optional[Ed25519PrivateKey] = None):
        self.private = private or Ed25519PrivateKey.generate()

    @property
    def public_bytes(self) -> bytes:
        return self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def public_b64(self) -> str:
        return b64url(self.public_bytes)

    def key_file_text(self) -> str:
        """The format `zrc-relay token keygen` writes: the 32-byte seed, base64url."""
        return b64url(self.private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())) + "\n"

    def mint(self, allocation: bytes, peer_a: bytes, peer_b: bytes, issued_at: Optional[int] = None,
             ttl: int = 3600, tier: int = 2, bandwidth: int = 0, quota: int = 0,
             audience: Optional[str] = None, expires_at: Optional[int] = None) -> bytes:
        """RelayTokenV1: 194 bytes, big-endian, signature over the context string + 130 bytes."""
        issued = int(time.time()) - 5 if issued_at is None else issued_at
        expires = issued + ttl if expires_at is None else expires_at
        aud = hashlib.sha256(audience.encode()).digest()[:16] if audience else bytes(16)
        body = (bytes([1]) + self.public_bytes + aud + allocation + peer_a + peer_b
                + struct.pack(">QQ", issued, expires) + bytes([tier]) + struct.pack(">QQ", bandwidth, quota))
        assert len(body) == 130
        signature = self.private.sign(b"ZRC-RELAY-TOKEN-V1" + body)
        return body + signature


# --- control frames ------------------------------------------------------------------------

def frame(ftype: int, body: bytes) -> bytes:
    return struct.pack(">BH", ftype, len(body)) + body


def allocate(peer_id: bytes, token: bytes) -> bytes:
    return frame(0x01, peer_id + struct.pack(">H", len(token)) + token)


def refresh(token: bytes) -> bytes:
    return frame(0x02, struct.pack(">H", len(token)) + token)


def release() -> bytes:
    return frame(0x03, b"")


@dataclass
class Frame:
    kind: str
    fields: dict = field(default_factory=dict)


def parse_frames(buffer: bytearray) -> List[Frame]:
    """Consumes complete relay→client frames from `buffer`; raises ValueError on malformed ones."""
    out = []
    while len(buffer) >= 3:
        ftype, length = struct.unpack(">BH", buffer[:3])
        if length > 4096:
            raise ValueError("frame too long")
        if len(buffer) < 3 + length:
            break
        body = bytes(buffer[3:3 + length])
        del buffer[:3 + length]
        out.append(decode(ftype, body))
    return out


def decode(ftype: int, b: bytes) -> Frame:
    if ftype == 0x81:
        alloc = b[:16]
        expires, bw, quota, port = struct.unpack(">QQQH", b[16:42])
        rl = b[42]
        relay = b[43:43 + rl].decode()
        ol = b[43 + rl]
        observed = b[44 + rl:44 + rl + ol].decode()
        if 44 + rl + ol != len(b):
            raise ValueError("ALLOCATED length")
        return Frame("ALLOCATED", dict(allocation=alloc, expires_at=expires, bandwidth=bw, quota=quota,
                                       relay_port=port, relay_addr=relay, observed_addr=observed))
    if ftype == 0x82:
        if len(b) != 1 or b[0] > 2:
            raise ValueError("PEER")
        return Frame("PEER", dict(state=["waiting", "paired", "peer_gone"][b[0]]))
    if ftype == 0x83:
        used, quota = struct.unpack(">QQ", b)
        return Frame("QUOTA", dict(used=used, quota=quota))
    if ftype == 0x84:
        (expires,) = struct.unpack(">Q", b)
        return Frame("REFRESHED", dict(expires_at=expires))
    if ftype == 0x85:
        reason, reconnect, try_for, alt_len = struct.unpack(">BIIB", b[:10])
        alt = b[10:10 + alt_len].decode()
        if 10 + alt_len != len(b):
            raise ValueError("GOAWAY length")
        return Frame("GOAWAY", dict(reason=reason, reconnect_in_ms=reconnect, try_for_ms=try_for, alt=alt))
    if ftype == 0x86:
        kind, dropped = struct.unpack(">BQ", b)
        return Frame("STATUS", dict(kind=kind, dropped=dropped))
    if ftype == 0xFF:
        code, rlen = struct.unpack(">HH", b[:4])
        reason = b[4:4 + rlen].decode()
        if 4 + rlen != len(b):
            raise ValueError("ERROR length")
        return Frame("ERROR", dict(code=code, reason=reason))
    raise ValueError(f"unknown frame type {ftype:#x}")


# --- the peer ------------------------------------------------------------------------------

class PeerProtocol(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.control = bytearray()
        self.frames: asyncio.Queue = asyncio.Queue()
        self.datagrams: asyncio.Queue = asyncio.Queue()
        self.terminated: Optional[ConnectionTerminated] = None
        self.closed = asyncio.Event()

    def quic_event_received(self, event):
        if isinstance(event, DatagramFrameReceived):
            self.datagrams.put_nowait(event.data)
        elif isinstance(event, StreamDataReceived) and event.stream_id == 0:
            self.control += event.data
            for f in parse_frames(self.control):
                self.frames.put_nowait(f)
        elif isinstance(event, ConnectionTerminated):
            self.terminated = event
            self.closed.set()


def client_configuration(alpn: str = ALPN, max_datagram_size: int = 1452) -> QuicConfiguration:
    cfg = QuicConfiguration(is_client=True, alpn_protocols=[alpn], max_datagram_frame_size=65536,
                            verify_mode=ssl.CERT_NONE, max_datagram_size=max_datagram_size, idle_timeout=60.0)
    cfg.server_name = "localhost"
    return cfg


class Peer:
    """One ZRC peer bound (or binding) to an allocation through the relay."""

    def __init__(self, protocol: PeerProtocol, cm):
        self.protocol = protocol
        self._cm = cm

    @classmethod
    async def open(cls, host: str, port: int, configuration: Optional[QuicConfiguration] = None,
                   local_port: int = 0) -> "Peer":
        cm = connect(host, port, configuration=configuration or client_configuration(),
                     create_protocol=PeerProtocol, local_port=local_port, wait_connected=True)
        protocol = await cm.__aenter__()
        return cls(protocol, cm)

    async def allocate(self, peer_id: bytes, token: bytes):
        self.send_control(allocate(peer_id, token))

    def send_control(self, data: bytes):
        self.protocol._quic.send_stream_data(0, data)
        self.protocol.transmit()

    def send(self, payload: bytes):
        self.protocol._quic.send_datagram_frame(payload)
        self.protocol.transmit()

    async def next_frame(self, kind: Optional[str] = None, timeout: float = 10.0) -> Frame:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {kind or 'frame'} within {timeout}s")
            f = await asyncio.wait_for(self.protocol.frames.get(), remaining)
            if kind is None or f.kind == kind:
                return f

    async def expect_error(self, name: str, timeout: float = 10.0):
        f = await self.next_frame("ERROR", timeout)
        assert f.fields["code"] == ERROR_CODES[name], f"expected {name}, got {f.fields}"
        await asyncio.wait_for(self.protocol.closed.wait(), timeout)
        assert self.protocol.terminated.error_code == ERROR_CODES[name], self.protocol.terminated
        return f

    async def wait_peer(self, state: str, timeout: float = 10.0):
        while True:
            f = await self.next_frame("PEER", timeout)
            if f.fields["state"] == state:
                return f

    async def close(self):
        try:
            self.protocol.close()
            await asyncio.wait_for(self.protocol.wait_closed(), 0.3)
        except Exception:
            pass
        try:
            await asyncio.wait_for(self._cm.__aexit__(None, None, None), 0.3)
        except Exception:
            pass


async def paired(host: str, port: int, token: bytes, peer_a: bytes, peer_b: bytes, **kw) -> Tuple[Peer, Peer]:
    a = await Peer.open(host, port, **kw)
    await a.allocate(peer_a, token)
    await a.wait_peer("waiting")
    b = await Peer.open(host, port, **kw)
    await b.allocate(peer_b, token)
    await b.wait_peer("paired")
    await a.wait_peer("paired")
    return a, b


def random_id() -> bytes:
    return os.urandom(16)


async def close_all(*peers):
    await asyncio.gather(*(p.close() for p in peers))
