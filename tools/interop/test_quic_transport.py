"""QUIC transport interop with aioquic (an independent QUIC implementation), through the relay."""
import asyncio
import os
import socket
import struct
import time

import pytest

from conftest import run
from udpproxy import UDPProxy
from zrcpeer import Peer, client_configuration, close_all, paired, random_id


def tagged(tag: int, seq: int, size: int) -> bytes:
    head = struct.pack(">BI", tag, seq)
    return head + os.urandom(max(0, size - len(head)))


async def exchange(a: Peer, b: Peer, sizes, settle=3.0):
    """Sends len(sizes) datagrams each way (paced) and returns (sent_a, got_b, sent_b, got_a)."""
    sent_a, sent_b = [], []
    for i, size in enumerate(sizes):
        da, db = tagged(0xA, i, size), tagged(0xB, i, size)
        sent_a.append(da)
        sent_b.append(db)
        a.send(da)
        b.send(db)
        if i % 25 == 24:
            await asyncio.sleep(0.01)
    got_a, got_b = [], []
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline and (len(got_b) < len(sent_a) or len(got_a) < len(sent_b)):
        await asyncio.sleep(0.02)
        while not b.protocol.datagrams.empty():
            got_b.append(b.protocol.datagrams.get_nowait())
        while not a.protocol.datagrams.empty():
            got_a.append(a.protocol.datagrams.get_nowait())
    return sent_a, got_b, sent_b, got_a


def token_for(relay, **kw):
    peer_a, peer_b = random_id(), random_id()
    return relay.key.mint(random_id(), peer_a, peer_b, **kw), peer_a, peer_b


async def paired_through(proxy, relay):
    """Peer A reaches the relay through `proxy`, peer B directly; both paired."""
    token, pa, pb = token_for(relay)
    a = await Peer.open("127.0.0.1", proxy.port)
    await a.allocate(pa, token)
    await a.wait_peer("waiting")
    b = await Peer.open("127.0.0.1", relay.port)
    await b.allocate(pb, token)
    await b.wait_peer("paired")
    await a.wait_peer("paired")
    return a, b


def test_handshake_negotiates_alpn_and_datagrams(relay):
    async def go():
        p = await Peer.open("127.0.0.1", relay.port)
        quic = p.protocol._quic
        assert quic.tls.alpn_negotiated == "zrc-relay/1"
        assert quic._remote_max_datagram_frame_size >= 1500
        await p.close()
    run(go())


def test_wrong_alpn_is_refused_and_relay_stays_healthy(relay):
    async def go():
        with pytest.raises(ConnectionError):
            await Peer.open("127.0.0.1", relay.port, configuration=client_configuration(alpn="h3"))
        p = await Peer.open("127.0.0.1", relay.port)
        await p.close()
    run(go())
    assert relay.alive()


def test_thousand_datagrams_each_way_byte_identical(relay):
    async def go():
        token, pa, pb = token_for(relay)
        a, b = await paired("127.0.0.1", relay.port, token, pa, pb)
        sizes = [1 + (i * 37) % 1100 for i in range(1000)]
        sent_a, got_b, sent_b, got_a = await exchange(a, b, sizes)
        assert sorted(got_b) == sorted(sent_a)
        assert sorted(got_a) == sorted(sent_b)
        await a.close()
        await b.close()
    run(go())


def test_payloads_up_to_the_path_limit_after_pmtud(relay):
    async def go():
        token, pa, pb = token_for(relay)
        a, b = await paired("127.0.0.1", relay.port, token, pa, pb)
        # Let PMTUD raise the relay's path MTU towards 1452-byte UDP payloads.
        for _ in range(20):
            a.send(b"warm")
            b.send(b"warm")
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        for q in (a.protocol.datagrams, b.protocol.datagrams):
            while not q.empty():
                q.get_nowait()
        # 1400 B is about the limit of a 1452-byte UDP payload after QUIC overhead (8-byte
        # aioquic CIDs; 16-byte relay CIDs on the other direction).
        sizes = [1100 + i * 300 // 199 for i in range(200)]
        sent_a, got_b, sent_b, got_a = await exchange(a, b, sizes)
        assert sorted(got_b) == sorted(sent_a)
        assert sorted(got_a) == sorted(sent_b)
        assert max(len(x) for x in got_b) == 1400
        await a.close()
        await b.close()
    run(go())


def test_nat_rebinding_keeps_the_connection(relay):
    proxy = UDPProxy(relay.port)

    async def go():
        a, b = await paired_through(proxy, relay)
        sent_a, got_b, sent_b, got_a = await exchange(a, b, [200] * 100)
        assert sorted(got_b) == sorted(sent_a) and sorted(got_a) == sorted(sent_b)
        for _ in range(2):
            proxy.rebind()
            a.send(b"probe")  # elicits path validation on the new source port
            await asyncio.sleep(0.5)
            for q in (a.protocol.datagrams, b.protocol.datagrams):
                while not q.empty():
                    q.get_nowait()
            sent_a, got_b, sent_b, got_a = await exchange(a, b, [300] * 100)
            assert sorted(got_b) == sorted(sent_a)
            assert sorted(got_a) == sorted(sent_b)
        assert a.protocol.terminated is None
        await a.close()
        await b.close()
    try:
        run(go())
    finally:
        proxy.close()
    assert proxy.rebinds == 2


def test_retry_when_forced(relay_factory):
    relay = relay_factory("--quic.retry", "always")
    proxy = UDPProxy(relay.port)

    async def go():
        a, b = await paired_through(proxy, relay)
        sent_a, got_b, sent_b, got_a = await exchange(a, b, [100] * 50)
        assert sorted(got_b) == sorted(sent_a)
        await a.close()
        await b.close()
    try:
        run(go())
    finally:
        proxy.close()
    # A v1 Retry packet starts with 0b1111xxxx.
    assert any(p[0] & 0xF0 == 0xF0 for p in proxy.server_packets)


def test_bad_input_never_crashes_and_never_amplifies(relay):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.02)
    target = ("127.0.0.1", relay.port)
    worst = [0.0]

    def probe(data: bytes):
        sock.sendto(data, target)
        received = 0
        end = time.time() + 0.03
        while time.time() < end:
            try:
                received += len(sock.recv(65535))
            except socket.timeout:
                pass
        ratio = received / len(data)
        worst[0] = max(worst[0], ratio)
        assert received <= 3 * len(data), f"{received} bytes answered {len(data)}"
        return received

    rng = __import__("random").Random(1234)
    for _ in range(300):
        probe(os.urandom(rng.randint(1, 1500)))
    # Tiny garbage gets no answer at all.
    for n in range(1, 21):
        assert probe(os.urandom(n)) == 0
    # Long headers with an unknown version: VN only for ≥ 1200 bytes, smaller than the input.
    for size in (100, 1199, 1200, 1400):
        pkt = bytes([0xC0]) + b"\x1a\x2a\x3a\x4a" + bytes([8]) + os.urandom(8) + bytes([8]) + os.urandom(8)
        got = probe(pkt + os.urandom(size - len(pkt)))
        if size < 1200:
            assert got == 0
    # Truncated and corrupted v1 Initials.
    initial = bytes([0xC3]) + b"\x00\x00\x00\x01" + bytes([8]) + os.urandom(8) + bytes([8]) + os.urandom(8) + b"\x00\x44\xd0"
    for cut in (7, 20, 30, 200):
        probe((initial + os.urandom(1300))[:cut])
    probe(initial + os.urandom(1300))
    # Short headers with random DCIDs: stateless reset, smaller than the trigger.
    for size in (10, 30, 60, 1200):
        probe(bytes([0x40 | rng.randint(0, 0x3F)]) + os.urandom(size - 1))
    # Oversized datagrams.
    for size in (2000, 9000, 65000):
        try:
            probe(os.urandom(size))
        except OSError:
            pass
    sock.close()
    assert relay.alive()

    async def go():
        token, pa, pb = token_for(relay)
        a, b = await paired("127.0.0.1", relay.port, token, pa, pb)
        sent_a, got_b, _, _ = await exchange(a, b, [64] * 20)
        assert sorted(got_b) == sorted(sent_a)
        await a.close()
        await b.close()
    run(go())


def test_idle_timeout_releases_a_vanished_client(relay_factory):
    relay = relay_factory("--quic.max-idle-timeout", "2s", "--limits.keepalive-interval", "1s")
    proxy = UDPProxy(relay.port)

    def wait_for_log(text, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and text not in relay.logs():
            time.sleep(0.05)
        return text in relay.logs()

    async def go():
        a = await Peer.open("127.0.0.1", proxy.port)
        assert wait_for_log("connection established", 5), \
            f"the relay never saw the handshake (proxy {proxy.port} → {relay.port}, {len(proxy.server_packets)} packets back)\n{relay.logs()}"
        # The client vanishes: nothing passes the proxy any more.
        proxy.running = False
        assert wait_for_log("idle timeout", 6), relay.logs()
        a.protocol._quic._close_event = None
    try:
        run(go())
    finally:
        proxy.close()


def test_fifty_concurrent_connections_route_correctly(relay):
    async def go():
        pairs = []
        for _ in range(25):
            token, pa, pb = token_for(relay)
            pairs.append(await paired("127.0.0.1", relay.port, token, pa, pb))
        results = await asyncio.gather(*(exchange(a, b, [100 + i for i in range(20)]) for a, b in pairs))
        for sent_a, got_b, sent_b, got_a in results:
            assert sorted(got_b) == sorted(sent_a)
            assert sorted(got_a) == sorted(sent_b)
        await close_all(*[p for pair in pairs for p in pair])
    run(go(), timeout=120)
