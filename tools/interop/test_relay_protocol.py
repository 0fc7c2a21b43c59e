"""The relay contract (DESIGN §3–§5) exercised by the independent aioquic peer in zrcpeer.py."""
import asyncio
import struct
import time

from conftest import run
from test_quic_transport import exchange
from zrcpeer import ERROR_CODES, Peer, close_all, paired, random_id, refresh, release


def ids():
    return random_id(), random_id(), random_id()


def test_pairing_and_ten_thousand_datagrams_each_way(relay):
    async def go():
        alloc, pa, pb = ids()
        token = relay.key.mint(alloc, pa, pb)
        a = await Peer.open("127.0.0.1", relay.port)
        await a.allocate(pa, token)
        allocated = await a.next_frame("ALLOCATED")
        assert allocated.fields["allocation"] == alloc
        assert allocated.fields["relay_port"] == relay.port
        assert allocated.fields["observed_addr"].startswith("127.0.0.1:")
        assert allocated.fields["quota"] == 0  # unlimited tier: no cap
        await a.wait_peer("waiting")
        b = await Peer.open("127.0.0.1", relay.port)
        await b.allocate(pb, token)
        await b.next_frame("ALLOCATED")
        await b.wait_peer("paired")
        await a.wait_peer("paired")
        sent_a, got_b, sent_b, got_a = await exchange(a, b, [16 + i % 200 for i in range(10_000)], settle=20)
        assert sorted(got_b) == sorted(sent_a)
        assert sorted(got_a) == sorted(sent_b)
        await close_all(a, b)
    run(go(), timeout=120)


def test_every_token_error_code(relay_factory):
    relay = relay_factory("--auth.audience", "fleet")
    from zrcpeer import DeviceKey
    stranger = DeviceKey()

    async def refused(peer_id, token, name):
        p = await Peer.open("127.0.0.1", relay.port)
        await p.allocate(peer_id, token)
        await p.expect_error(name)
        await p.close()

    async def go():
        alloc, pa, pb = ids()
        now = int(time.time())
        k = relay.key
        await refused(pa, b"\x01\x02", "invalid_token")
        bad_version = bytearray(k.mint(alloc, pa, pb, audience="fleet"))
        bad_version[0] = 2
        await refused(pa, bytes(bad_version), "invalid_token")
        forged = bytearray(k.mint(alloc, pa, pb, audience="fleet"))
        forged[-1] ^= 1
        await refused(pa, bytes(forged), "invalid_token")
        await refused(pa, stranger.mint(alloc, pa, pb, audience="fleet"), "untrusted_key")
        await refused(pa, k.mint(alloc, pa, pb, audience="other"), "wrong_audience")
        await refused(pa, k.mint(alloc, pa, pb, audience="fleet", issued_at=now + 600), "token_not_yet_valid")
        await refused(pa, k.mint(alloc, pa, pb, audience="fleet", issued_at=now - 7200, ttl=3600), "token_expired")
        await refused(pa, k.mint(alloc, pa, pb, audience="fleet", ttl=2 * 86400), "invalid_token")
        await refused(random_id(), k.mint(alloc, pa, pb, audience="fleet"), "unknown_peer")
    run(go())


def test_bad_frames_get_bad_message(relay):
    async def go():
        for data in (b"\x42\x00\x00", b"\x01\x10\x01", b"\x03\x00\x01\x00", b"\x81\x00\x00"):
            p = await Peer.open("127.0.0.1", relay.port)
            p.send_control(data)
            await p.expect_error("bad_message")
            await p.close()
    run(go())


def test_mismatch_capacity_rate_limit_and_release(relay_factory):
    relay = relay_factory("--limits.max-allocations", "1", "--security.allocation-rate-per-ip", "5/min")

    async def go():
        alloc, pa, pb = ids()
        token = relay.key.mint(alloc, pa, pb)
        a, b = await paired("127.0.0.1", relay.port, token, pa, pb)
        m = await Peer.open("127.0.0.1", relay.port)
        await m.allocate(pa, relay.key.mint(alloc, pa, random_id()))
        await m.expect_error("allocation_mismatch")
        c = await Peer.open("127.0.0.1", relay.port)
        other = random_id()
        await c.allocate(pa, relay.key.mint(other, pa, pb))
        await c.expect_error("capacity")
        d = await Peer.open("127.0.0.1", relay.port)
        await d.allocate(pa, b"x")
        await d.expect_error("invalid_token")
        e = await Peer.open("127.0.0.1", relay.port)
        await e.allocate(pa, token)
        await e.expect_error("rate_limited")
        a.send_control(release())
        await a.expect_error("released")
        await b.expect_error("released")
        await close_all(a, b, m, c, d, e)
    run(go())


def test_quota_exact_notice_once_then_ended(relay):
    async def go():
        alloc, pa, pb = ids()
        token = relay.key.mint(alloc, pa, pb, quota=10_000)
        a, b = await paired("127.0.0.1", relay.port, token, pa, pb)
        for i in range(101):
            a.send(bytes([i]) * 100)
            if i % 20 == 19:
                await asyncio.sleep(0.01)
        q = await a.next_frame("QUOTA")
        assert q.fields == {"used": 9_000, "quota": 10_000}
        q = await b.next_frame("QUOTA")
        assert q.fields == {"used": 9_000, "quota": 10_000}
        await a.expect_error("quota_exceeded")
        await b.expect_error("quota_exceeded")
        got = 0
        while not b.protocol.datagrams.empty():
            got += len(b.protocol.datagrams.get_nowait())
        assert got == 10_000
        assert a.protocol.frames.empty() or all(f.kind != "QUOTA" for f in list(a.protocol.frames._queue))
        again = await Peer.open("127.0.0.1", relay.port)
        await again.allocate(pa, token)
        await again.expect_error("allocation_ended")
        await close_all(a, b, again)
    run(go())


def test_bandwidth_cap_and_status(relay):
    async def go():
        alloc, pa, pb = ids()
        token = relay.key.mint(alloc, pa, pb, tier=0, bandwidth=2_000_000)
        a, b = await paired("127.0.0.1", relay.port, token, pa, pb)
        arrivals = []
        start = time.monotonic()
        sent = 0
        while time.monotonic() - start < 3.0:
            due = int((time.monotonic() - start) * 625)  # 5 Mbit/s of 1000-byte datagrams
            while sent < due:
                a.send(b"\x07" * 1000)
                sent += 1
            await asyncio.sleep(0.005)
            while not b.protocol.datagrams.empty():
                b.protocol.datagrams.get_nowait()
                arrivals.append(time.monotonic() - start)
        await asyncio.sleep(0.3)
        while not b.protocol.datagrams.empty():
            b.protocol.datagrams.get_nowait()
            arrivals.append(time.monotonic() - start)
        window = [t for t in arrivals if 0.5 <= t < 3.0]
        rate = len(window) * 1000 * 8 / 2.5
        # The bucket holds the rate; the Python sender's pacing jitter widens the window slightly.
        assert abs(rate - 2_000_000) / 2_000_000 <= 0.07, rate
        status = await a.next_frame("STATUS")
        assert status.fields["kind"] == 0 and status.fields["dropped"] > 0
        await close_all(a, b)
    run(go())


def test_reconnection_replaces_and_traffic_continues(relay):
    async def go():
        alloc, pa, pb = ids()
        token = relay.key.mint(alloc, pa, pb)
        a, b = await paired("127.0.0.1", relay.port, token, pa, pb)
        a2 = await Peer.open("127.0.0.1", relay.port)
        await a2.allocate(pa, token)
        g = await a.next_frame("GOAWAY")
        assert g.fields["reason"] == 2
        await asyncio.wait_for(a.protocol.closed.wait(), 5)
        assert a.protocol.terminated.error_code == 0
        await a2.wait_peer("paired")
        sent_a, got_b, sent_b, got_a = await exchange(a2, b, [50] * 100)
        assert sorted(got_b) == sorted(sent_a) and sorted(got_a) == sorted(sent_b)
        await close_all(a, a2, b)
    run(go())


def test_peer_gone_return_and_idle_timeout(relay_factory):
    relay = relay_factory("--limits.idle-timeout", "1s")

    async def go():
        alloc, pa, pb = ids()
        token = relay.key.mint(alloc, pa, pb)
        a, b = await paired("127.0.0.1", relay.port, token, pa, pb)
        await a.close()
        await b.wait_peer("peer_gone")
        a2 = await Peer.open("127.0.0.1", relay.port)
        await a2.allocate(pa, token)
        await a2.wait_peer("paired")
        await b.wait_peer("paired")
        await a2.close()
        await b.wait_peer("peer_gone")
        await b.expect_error("peer_timeout", timeout=5)
    run(go())


def test_pairing_timeout(relay_factory):
    relay = relay_factory("--limits.pairing-timeout", "1s")

    async def go():
        alloc, pa, pb = ids()
        a = await Peer.open("127.0.0.1", relay.port)
        await a.allocate(pa, relay.key.mint(alloc, pa, pb))
        await a.wait_peer("waiting")
        await a.expect_error("peer_timeout", timeout=5)
    run(go())


def test_refresh(relay):
    async def go():
        alloc, pa, pb = ids()
        a, b = await paired("127.0.0.1", relay.port, relay.key.mint(alloc, pa, pb, ttl=600), pa, pb)
        a.send_control(refresh(relay.key.mint(alloc, pa, pb, ttl=1200)))
        r = await a.next_frame("REFRESHED")
        assert r.fields["expires_at"] >= int(time.time()) + 1100
        a.send_control(refresh(relay.key.mint(random_id(), pa, pb)))
        e = await a.next_frame("ERROR")
        assert e.fields["code"] == ERROR_CODES["allocation_mismatch"]
        assert a.protocol.terminated is None  # a refused refresh changes nothing else
        await close_all(a, b)
    run(go())


def test_allocation_expiry(relay):
    async def go():
        alloc, pa, pb = ids()
        now = int(time.time())
        token = relay.key.mint(alloc, pa, pb, issued_at=now - 10, expires_at=now + 2)
        a, b = await paired("127.0.0.1", relay.port, token, pa, pb)
        await a.expect_error("allocation_expired", timeout=6)
        await b.expect_error("allocation_expired", timeout=6)
    run(go())


def test_relay_addr_is_an_ip_address_never_the_server_name(relay_factory):
    """DESIGN §2 v3: relay_addr is server.public_addr, else the relay's local IP towards the
    client; a client that dialled with SNI "localhost" is not told "localhost"."""
    wildcard = relay_factory("--server.listen-addr", "0.0.0.0")
    public = relay_factory("--server.public-addr", "relay.example.net")

    async def addr(relay):
        alloc, pa, pb = ids()
        p = await Peer.open("127.0.0.1", relay.port)  # the peer's configuration sends SNI "localhost"
        try:
            await p.allocate(pa, relay.key.mint(alloc, pa, pb))
            return (await p.next_frame("ALLOCATED")).fields["relay_addr"]
        finally:
            await close_all(p)

    assert run(addr(wildcard)) == "127.0.0.1"
    assert run(addr(public)) == "relay.example.net"


def _vn_reply_source(host: str, port: int, family=None) -> tuple:
    """Sends a 1200-byte long-header packet of an unknown QUIC version to host:port and
    returns the source address of the Version Negotiation reply."""
    import socket
    family = family or (socket.AF_INET6 if ":" in host else socket.AF_INET)
    s = socket.socket(family, socket.SOCK_DGRAM)
    try:
        s.settimeout(3)
        dcid, scid = random_id()[:8], random_id()[:8]
        packet = bytes([0xc0]) + struct.pack("!I", 0x1a2a3a4a) + bytes([8]) + dcid + bytes([8]) + scid
        s.sendto(packet + bytes(1200 - len(packet)), (host, port))
        _, source = s.recvfrom(2048)
        return source
    finally:
        s.close()


def test_wildcard_bind_answers_from_and_names_the_address_the_client_reached(relay_factory):
    """Issue 11 / DESIGN §2 v3: on a wildcard bind the relay learns each packet's destination
    (IP_PKTINFO / IPV6_RECVPKTINFO): ALLOCATED names the address the client dialled, and
    every reply — connection packets and stateless ones — leaves from it. 127.0.0.2 is a
    loopback address whose kernel-chosen source would be 127.0.0.1."""
    v4 = relay_factory("--server.listen-addr", "0.0.0.0", "--fallback.enabled", "false")
    dual = relay_factory("--server.listen-addr", "::", "--fallback.enabled", "false")

    async def addr(host, relay):
        alloc, pa, pb = ids()
        p = await Peer.open(host, relay.port)
        try:
            await p.allocate(pa, relay.key.mint(alloc, pa, pb))
            return (await p.next_frame("ALLOCATED")).fields["relay_addr"]
        finally:
            await close_all(p)

    assert _vn_reply_source("127.0.0.2", v4.port)[0] == "127.0.0.2"
    assert run(addr("127.0.0.2", v4)) == "127.0.0.2"
    assert run(addr("127.0.0.1", v4)) == "127.0.0.1"
    # Dual stack: IPv4 clients are told their IPv4 address (not ::ffff:…), IPv6 ones theirs.
    assert _vn_reply_source("127.0.0.2", dual.port)[0] == "127.0.0.2"
    assert run(addr("127.0.0.2", dual)) == "127.0.0.2"
    assert _vn_reply_source("::1", dual.port)[0] == "::1"
    assert run(addr("::1", dual)) == "::1"
