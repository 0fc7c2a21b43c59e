"""Helpers for the adversarial suite (test_abuse.py): memory sampling, metrics, good pairs that
keep probing, raw yamux floods that never read, and a flood of never-completed QUIC handshakes.

Everything here talks to 127.0.0.1 (or 127.0.0.2 as a second source address) only, and every
loop is bounded by a count and a deadline.
"""
import asyncio
import os
import select
import socket
import ssl
import threading
import time
from typing import Optional

from aioquic.buffer import Buffer
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.crypto import CryptoPair
from aioquic.quic.packet import pull_quic_header
from prometheus_client.parser import text_string_to_metric_families

from yamuxpeer import DATA, GO_AWAY, HEADER, INITIAL_WINDOW, PING, RST, SYN, ACK, WINDOW_UPDATE, FallbackPeer, tls_client_context
from zrcpeer import ALPN, Peer, client_configuration, random_id

MB = 1024 * 1024
HOST = "127.0.0.1"


# --- memory -----------------------------------------------------------------------------------

def rss_bytes(pid: int) -> Optional[int]:
    """VmRSS of a process in bytes, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


class RssSampler:
    """Samples a process's VmRSS every `interval` seconds in a thread; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.1):
        self.pid = pid
        self.interval = interval
        self.peak = rss_bytes(pid) or 0
        self.last = self.peak
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            value = rss_bytes(self.pid)
            if value is None:
                return
            self.last = value
            self.peak = max(self.peak, value)
            self._stop.wait(self.interval)

    def reset_peak(self):
        self.peak = rss_bytes(self.pid) or self.last

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(2)
        return self.peak


def mb(n: int) -> str:
    return f"{n / MB:.1f} MB"


# --- metrics ----------------------------------------------------------------------------------

def metric(relay, name: str, **labels) -> float:
    """Sum of the samples of `name` (e.g. `zrc_relay_packets_dropped_total`) whose labels include `labels`."""
    status, text = relay.http("/metrics")
    assert status == 200, status
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


async def ametric(relay, name: str, **labels) -> float:
    return await asyncio.to_thread(metric, relay, name, **labels)


# --- good pairs -------------------------------------------------------------------------------

def quic_configuration(max_datagram_size: int = 1452) -> QuicConfiguration:
    return client_configuration(max_datagram_size=max_datagram_size)


async def open_peer(relay, kind: str, max_datagram_size: int = 1452):
    """kind: `quic`, `tls` (fallback over TLS) or `tcp` (fallback over plain TCP)."""
    if kind == "quic":
        return await Peer.open(HOST, relay.port, configuration=quic_configuration(max_datagram_size))
    return await FallbackPeer.open(HOST, relay.port, tls=(kind == "tls"))


async def open_pair(relay, kind_a: str, kind_b: str, max_datagram_size: int = 1452, timeout: float = 10.0):
    """Two peers of one fresh allocation, paired. Kinds as for `open_peer`."""
    alloc, pa, pb = random_id(), random_id(), random_id()
    token = relay.key.mint(alloc, pa, pb)
    a = await asyncio.wait_for(open_peer(relay, kind_a, max_datagram_size), timeout)
    await a.allocate(pa, token)
    await a.next_frame("ALLOCATED", timeout)
    await a.wait_peer("waiting", timeout)
    b = await asyncio.wait_for(open_peer(relay, kind_b, max_datagram_size), timeout)
    await b.allocate(pb, token)
    await b.next_frame("ALLOCATED", timeout)
    await b.wait_peer("paired", timeout)
    await a.wait_peer("paired", timeout)
    return a, b


def drain(queue: asyncio.Queue) -> list:
    out = []
    while not queue.empty():
        out.append(queue.get_nowait())
    return out


async def forwarding(a, b, n: int = 20, timeout: float = 5.0, tag: bytes = b"chk"):
    """Sends n distinct datagrams each way (paced) and returns (received by b, received by a)
    among them, waiting up to `timeout` for all."""
    nonce = os.urandom(4).hex().encode()
    want_b = {tag + b"-ab-" + nonce + b"-%d" % i for i in range(n)}
    want_a = {tag + b"-ba-" + nonce + b"-%d" % i for i in range(n)}
    for i in range(n):
        a.send(tag + b"-ab-" + nonce + b"-%d" % i)
        b.send(tag + b"-ba-" + nonce + b"-%d" % i)
        await asyncio.sleep(0.005)
    got_b, got_a = set(), set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (len(got_b) < n or len(got_a) < n):
        await asyncio.sleep(0.02)
        got_b |= want_b.intersection(drain(b.protocol.datagrams))
        got_a |= want_a.intersection(drain(a.protocol.datagrams))
    return len(got_b), len(got_a)


async def assert_forwarding(a, b, n: int = 20, minimum: float = 0.9, what: str = "good pair"):
    """The good pair forwards: at least `minimum` of n datagrams arrive each way within 5 s."""
    to_b, to_a = await forwarding(a, b, n)
    assert to_b >= minimum * n and to_a >= minimum * n, \
        f"{what} stopped forwarding: {to_b}/{n} a→b, {to_a}/{n} b→a arrived within 5 s"


class Prober:
    """Keeps a good pair busy: one numbered datagram each way every `interval`; `stop()` says
    how many arrived."""

    def __init__(self, a, b, interval: float = 0.1):
        self.a, self.b, self.interval = a, b, interval
        self.sent = 0
        self.got_b = set()
        self.got_a = set()
        self._running = True
        self.task = asyncio.get_running_loop().create_task(self._run())

    def _collect(self):
        for d in drain(self.b.protocol.datagrams):
            if d.startswith(b"probe-ab-"):
                self.got_b.add(d)
        for d in drain(self.a.protocol.datagrams):
            if d.startswith(b"probe-ba-"):
                self.got_a.add(d)

    async def _run(self):
        while self._running:
            try:
                self.a.send(b"probe-ab-%d" % self.sent)
                self.b.send(b"probe-ba-%d" % self.sent)
            except Exception:
                pass
            self.sent += 1
            await asyncio.sleep(self.interval)
            self._collect()

    async def stop(self, grace: float = 2.0):
        self._running = False
        await self.task
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and (len(self.got_b) < self.sent or len(self.got_a) < self.sent):
            await asyncio.sleep(0.05)
            self._collect()
        return self.sent, len(self.got_b), len(self.got_a)


async def close_peers(*peers):
    for p in peers:
        try:
            await asyncio.wait_for(p.close(), 2)
        except Exception:
            pass


# --- raw yamux --------------------------------------------------------------------------------

def yframe(ftype: int, flags: int, sid: int, length: int, payload: bytes = b"") -> bytes:
    return HEADER.pack(0, ftype, flags, sid, length) + payload


def ping_flood_bytes(n: int) -> bytes:
    """n PING(SYN) frames with distinct opaque values."""
    return b"".join(HEADER.pack(0, PING, SYN, 0, i) for i in range(n))


def syn_flood_bytes(n: int, first_id: int = 5) -> bytes:
    """n WindowUpdate(SYN) frames opening client stream ids first_id, first_id + 2, ..."""
    return b"".join(HEADER.pack(0, WINDOW_UPDATE, SYN, first_id + 2 * i, 0) for i in range(n))


def window_flood_bytes(n: int, sid: int = 1) -> bytes:
    """Opens stream `sid`, then n zero-delta WindowUpdate frames on it."""
    return HEADER.pack(0, WINDOW_UPDATE, SYN, sid, 0) + HEADER.pack(0, WINDOW_UPDATE, 0, sid, 0) * n


def tls_context(alpn: Optional[str] = ALPN) -> ssl.SSLContext:
    return tls_client_context(alpn)


_CLOSED_EVENTS = select.POLLRDHUP | select.POLLHUP | select.POLLERR | select.POLLNVAL


class RawConn:
    """A TCP (or TLS) connection that writes raw bytes and never reads what comes back: its
    reading is paused at once, so whatever the peer sends piles up in the peer's buffers.
    Whether the peer closed is read from the socket's poll flags (FIN: POLLRDHUP, RST:
    POLLERR/POLLHUP) without consuming any data."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer
        writer.transport.pause_reading()
        self.fd = writer.get_extra_info("socket").fileno()
        self.poller = select.poll()
        self.poller.register(self.fd, _CLOSED_EVENTS)
        self.write_error: Optional[str] = None
        self.opened_at = time.monotonic()
        self.closed_at: Optional[float] = None
        # TLS: when the peer's close_notify was processed (asyncio then drops our writes).
        self.tls_closed_at: Optional[float] = None
        self.bytes_written = 0

    @classmethod
    async def open(cls, port: int, tls: bool = False, host: str = HOST, alpn: Optional[str] = ALPN):
        reader, writer = await asyncio.open_connection(host, port, ssl=tls_context(alpn) if tls else None)
        return cls(reader, writer)

    def tls_shut(self) -> bool:
        """Whether the peer has ended TLS (close_notify seen; the TCP connection may linger)."""
        if self.tls_closed_at is None:
            state = getattr(getattr(self.writer.transport, "_ssl_protocol", None), "_state", None)
            if state is not None and getattr(state, "name", "WRAPPED") not in ("WRAPPED", "DO_HANDSHAKE"):
                self.tls_closed_at = time.monotonic()
        return self.tls_closed_at is not None

    def peer_closed(self) -> bool:
        """Whether the peer closed the TCP connection (FIN or RST)."""
        if self.closed_at is not None:
            return True
        self.tls_shut()
        closed = self.write_error is not None or self.writer.transport.is_closing()
        if not closed:
            closed = any(events & _CLOSED_EVENTS for _, events in self.poller.poll(0))
        if closed:
            self.closed_at = time.monotonic()
        return closed

    async def write_all(self, data: bytes, deadline: float, repeat: bool = False, chunk: int = 48 * 1024) -> int:
        """Writes `data` (over and over with `repeat`) as fast as the connection takes it, until
        done, the peer closes, or `deadline` (monotonic). Returns the bytes written."""
        view = memoryview(data)
        while True:
            for offset in range(0, len(view), chunk):
                if self.peer_closed() or self.tls_shut() or time.monotonic() >= deadline:
                    return self.bytes_written
                piece = view[offset:offset + chunk]
                try:
                    self.writer.write(piece)
                    await asyncio.wait_for(self.writer.drain(), max(0.01, deadline - time.monotonic()))
                except asyncio.TimeoutError:
                    return self.bytes_written  # the peer stopped reading us
                except (ConnectionError, OSError, RuntimeError) as e:
                    self.write_error = repr(e)
                    self.peer_closed()
                    return self.bytes_written
                self.bytes_written += len(piece)
            if not repeat:
                return self.bytes_written

    async def wait_peer_closed(self, deadline: float) -> bool:
        while time.monotonic() < deadline:
            if self.peer_closed():
                return True
            await asyncio.sleep(0.05)
        return self.peer_closed()

    def close(self):
        try:
            self.writer.transport.abort()
        except Exception:
            pass


async def run_flood(port: int, kind: str, tls: bool, within: float = 10.0) -> dict:
    """Connects, writes one kind of flood without ever reading, and reports whether (and when,
    from the first byte written) the peer closed the connection within `within` seconds.

    Kinds: `ping` (PING SYN frames without pause until closed or `within` passes, 200 000 at
    least offered), `syn` (20 000 SYNs for streams 5, 7, 9, ...), `window` (stream 1, then
    100 000 zero-delta WindowUpdates)."""
    conn = await RawConn.open(port, tls=tls)
    start = time.monotonic()
    deadline = start + within
    frames = {"ping": ping_flood_bytes(200_000), "syn": syn_flood_bytes(20_000),
              "window": window_flood_bytes(100_000)}[kind]
    written = await conn.write_all(frames, deadline, repeat=(kind == "ping"))
    closed = await conn.wait_peer_closed(deadline)
    result = dict(kind=kind, tls=tls, frames_written=written // 12, closed=closed,
                  closed_after=(conn.closed_at - start) if closed and conn.closed_at else None,
                  tls_closed_after=(conn.tls_closed_at - start) if conn.tls_closed_at else None,
                  write_error=conn.write_error)
    conn.close()
    return result


def death_note(relay_log: str, returncode) -> str:
    """A short account of a crash: the fatal-error lines and the top of the crashed thread."""
    lines = relay_log.splitlines()
    keep = [l for l in lines if "Fatal error" in l or "Program crashed" in l or "Assertion `" in l]
    for i, l in enumerate(lines):
        if l.rstrip().endswith("crashed:"):
            keep.append(l.strip())
            keep += [x.strip()[:160] for x in lines[i + 1:i + 40] if "/work/main/Sources/" in x][:4]
            break
    if not keep:
        keep = lines[-10:]
    status = f"exit {returncode}" if returncode is not None else "crash report still being written"
    return f"{status}:\n    " + "\n    ".join(keep)


def describe_floods(results) -> str:
    lines = []
    for r in results:
        state = f"TCP closed after {r['closed_after']:.2f} s" if r["closed"] else "TCP still open"
        if r.get("tls_closed_after") is not None:
            state += f", TLS close_notify after {r['tls_closed_after']:.2f} s"
        lines.append(f"  {r['kind']:6s} {'tls' if r['tls'] else 'plain'}: {r['frames_written']} frames written, {state}"
                     + (f" ({r['write_error']})" if r["write_error"] else ""))
    return "\n".join(lines)


class YamuxProbe:
    """A yamux client speaking the protocol correctly but by hand, frame by frame, so a test can
    see every frame the server sends (window grants in particular)."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer
        self.windows = {}
        self.granted = {}
        self.received = {}
        self.go_away: Optional[int] = None
        self.resets = set()
        self.ping_acks = 0
        self.closed = asyncio.Event()
        self.closed_at: Optional[float] = None
        self.window_changed = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(self._read_loop())

    @classmethod
    async def open(cls, port: int, host: str = HOST):
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    def open_stream(self, sid: int):
        self.windows[sid] = INITIAL_WINDOW
        self.granted[sid] = 0
        self.received[sid] = bytearray()
        self.writer.write(yframe(WINDOW_UPDATE, SYN, sid, 0))

    async def _read_loop(self):
        try:
            while True:
                version, ftype, flags, sid, length = HEADER.unpack(await self.reader.readexactly(12))
                if ftype == DATA:
                    payload = await self.reader.readexactly(length) if length else b""
                    self.received.setdefault(sid, bytearray()).extend(payload)
                elif ftype == WINDOW_UPDATE:
                    if sid in self.windows:
                        self.windows[sid] += length
                        self.granted[sid] += length
                        self.window_changed.set()
                elif ftype == PING:
                    if flags & SYN:
                        self.writer.write(yframe(PING, ACK, 0, length))
                    if flags & ACK:
                        self.ping_acks += 1
                elif ftype == GO_AWAY:
                    self.go_away = length
                if flags & RST:
                    self.resets.add(sid)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            self.closed_at = time.monotonic()
            self.closed.set()
            self.window_changed.set()

    async def push(self, sid: int, total: int, frame_size: int, deadline: float) -> int:
        """Sends up to `total` bytes of 'A' on `sid` in DATA frames of `frame_size`, never beyond
        the window the server granted; stops at the deadline or when the session closes."""
        pushed = 0
        while pushed < total and not self.closed.is_set() and time.monotonic() < deadline:
            if self.windows[sid] >= frame_size:
                n = min(frame_size, total - pushed)
                self.writer.write(yframe(DATA, 0, sid, n, b"A" * n))
                self.windows[sid] -= n
                pushed += n
                if pushed % (16 * frame_size) == 0:
                    try:
                        await asyncio.wait_for(self.writer.drain(), max(0.01, deadline - time.monotonic()))
                    except (asyncio.TimeoutError, ConnectionError, OSError):
                        break
            else:
                self.window_changed.clear()
                try:
                    await asyncio.wait_for(self.window_changed.wait(), max(0.01, deadline - time.monotonic()))
                except asyncio.TimeoutError:
                    break
        return pushed

    def close(self):
        self.task.cancel()
        try:
            self.writer.transport.abort()
        except Exception:
            pass


# --- never-completed QUIC handshakes ----------------------------------------------------------

class _InitialTemplate:
    """One client Initial built by a fresh aioquic QuicConnection (ALPN zrc-relay/1, no
    certificate check), kept decrypted so that it can be sealed again under new connection ids:
    each sealed copy is, for the server, a new connection attempt with a new DCID."""

    def __init__(self, port: int):
        configuration = QuicConfiguration(is_client=True, alpn_protocols=[ALPN], verify_mode=ssl.CERT_NONE,
                                          max_datagram_frame_size=65536)
        configuration.server_name = "localhost"
        connection = QuicConnection(configuration=configuration)
        now = time.time()
        connection.connect((HOST, port), now=now)
        ((datagram, _),) = connection.datagrams_to_send(now=now)
        buf = Buffer(data=datagram)
        header = pull_quic_header(buf, host_cid_length=8)
        assert len(header.destination_cid) == 8 and len(header.source_cid) == 8
        pair = CryptoPair()
        pair.setup_initial(cid=header.destination_cid, is_client=False, version=header.version)
        plain_header, payload, number = pair.decrypt_packet(datagram[:header.packet_length], buf.tell(), 0)
        self.version = header.version
        self.plain_header, self.payload, self.number = plain_header, payload, number
        self.padding = datagram[header.packet_length:]

    def seal(self) -> bytes:
        dcid, scid = os.urandom(8), os.urandom(8)
        # first byte | version (4) | dcid len | dcid (8) | scid len | scid (8) | token len, length, pn
        header = self.plain_header[:6] + dcid + bytes([8]) + scid + self.plain_header[6 + 8 + 1 + 8:]
        pair = CryptoPair()
        pair.setup_initial(cid=dcid, is_client=True, version=self.version)
        return pair.encrypt_packet(header, self.payload, self.number) + self.padding


class InitialFlood:
    """Never-completed QUIC handshakes: `sockets` UDP sockets (each its own source port), each
    with its own ClientHello from a fresh aioquic QuicConnection, sending client Initials at
    `rate` per second in total, every one under fresh connection ids; answers (Retry, Initial,
    Handshake) are never fed back. Runs in a thread."""

    def __init__(self, port: int, sockets: int = 200, source: str = HOST):
        self.target = (HOST, port)
        self.templates = [_InitialTemplate(port) for _ in range(sockets)]
        self.sockets = []
        for _ in range(sockets):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((source, 0))
            s.setblocking(False)
            self.sockets.append(s)
        self.sent = 0
        self.send_errors = 0
        self.thread: Optional[threading.Thread] = None
        self.started_at = self.finished_at = None

    def start(self, rate: float, duration: float = None, count: int = None):
        self.thread = threading.Thread(target=self._run, args=(rate, duration, count), daemon=True)
        self.thread.start()

    def _run(self, rate, duration, count):
        start = self.started_at = time.monotonic()
        end = start + duration if duration else float("inf")
        total = count if count is not None else int(rate * duration)
        i = 0
        while i < total and time.monotonic() < end:
            due = start + i / rate
            delay = due - time.monotonic()
            if delay > 0.002:
                time.sleep(delay)
            k = i % len(self.sockets)
            try:
                self.sockets[k].sendto(self.templates[k].seal(), self.target)
                self.sent += 1
            except OSError:
                self.send_errors += 1
            i += 1
        self.finished_at = time.monotonic()

    def join(self, timeout=None):
        if self.thread:
            self.thread.join(timeout)

    def answers(self) -> dict:
        """Counts the packets the server sent back, by long-header type (read, never answered)."""
        kinds = {"retry": 0, "initial": 0, "handshake": 0, "other": 0}
        for s in self.sockets:
            while True:
                try:
                    data = s.recv(65535)
                except (BlockingIOError, OSError):
                    break
                if not data:
                    continue
                first = data[0]
                if (first & 0x80) == 0:
                    kinds["other"] += 1
                else:
                    kinds[["initial", "other", "handshake", "retry"][(first >> 4) & 0x3]] += 1
        return kinds

    def close(self):
        for s in self.sockets:
            s.close()


def can_bind(address: str) -> bool:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((address, 0))
        return True
    except OSError:
        return False
