"""The TCP/TLS fallback (DESIGN §9) with the independent yamux client of yamuxpeer.py:
a QUIC peer and a TCP peer share one allocation."""
import asyncio
import socket
import ssl
import time

from conftest import run
from connectproxy import pipe
from test_quic_transport import exchange
from yamuxpeer import FallbackPeer
from zrcpeer import Peer, close_all, random_id


def ids():
    return random_id(), random_id(), random_id()


async def quic_and_tcp_pair(relay, tls=True):
    alloc, pa, pb = ids()
    token = relay.key.mint(alloc, pa, pb)
    a = await Peer.open("127.0.0.1", relay.port)
    await a.allocate(pa, token)
    await a.next_frame("ALLOCATED")
    await a.wait_peer("waiting")
    b = await FallbackPeer.open("127.0.0.1", relay.port, tls=tls)
    await b.allocate(pb, token)
    allocated = await b.next_frame("ALLOCATED")
    assert allocated.fields["allocation"] == alloc
    assert allocated.fields["observed_addr"].startswith("127.0.0.1:")
    await b.wait_peer("paired")
    await a.wait_peer("paired")
    return a, b


def test_quic_and_tls_peer_share_an_allocation_10000_datagrams(relay):
    async def go():
        a, b = await quic_and_tcp_pair(relay)
        sizes = [16 + (i * 37) % 1087 for i in range(10_000)]
        sent_a, got_b, sent_b, got_a = await exchange(a, b, sizes, settle=30)
        assert got_b == sent_a  # TCP side receives in order
        assert sorted(got_a) == sorted(sent_b)
        await close_all(a)
        await b.close()
    run(go(), timeout=120)


def test_two_tcp_peers_and_release(relay):
    async def go():
        alloc, pa, pb = ids()
        token = relay.key.mint(alloc, pa, pb)
        a = await FallbackPeer.open("127.0.0.1", relay.port)
        await a.allocate(pa, token)
        await a.wait_peer("waiting")
        b = await FallbackPeer.open("127.0.0.1", relay.port)
        await b.allocate(pb, token)
        await b.wait_peer("paired")
        for i in range(100):
            a.send(b"x%03d" % i)
        got = [await asyncio.wait_for(b.protocol.datagrams.get(), 5) for _ in range(100)]
        assert got == [b"x%03d" % i for i in range(100)]
        await a.close()
        await b.wait_peer("peer_gone")
        await b.close()
    run(go())


def test_bad_token_on_fallback_gets_error_and_close(relay):
    async def go():
        b = await FallbackPeer.open("127.0.0.1", relay.port)
        await b.allocate(random_id(), b"\x01\x02")
        await b.expect_error("invalid_token")
        await b.close()
    run(go())


def test_tls_without_alpn_or_plain_tcp_is_closed(relay_factory):
    # Another ALPN: with WebSocket off the relay closes the connection after the handshake.
    relay = relay_factory("--fallback.websocket", "false")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", relay.port), timeout=5) as raw:
        try:
            with context.wrap_socket(raw) as s:
                s.settimeout(5)
                assert s.recv(1) == b""
        except (ssl.SSLError, ConnectionResetError):
            pass
    # With WebSocket on (the default) no ALPN is agreed with an h2-only client, which then
    # speaks to the HTTP/1.1 service: its HTTP/2 preface gets 400 and a close.
    default = relay_factory()
    with socket.create_connection(("127.0.0.1", default.port), timeout=5) as raw:
        with context.wrap_socket(raw) as s:
            s.settimeout(5)
            s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            answer = b""
            try:
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    answer += chunk
            except (ssl.SSLError, ConnectionResetError):
                pass
            assert answer.startswith(b"HTTP/1.1 4"), answer
    # Garbage instead of a TLS ClientHello: closed, and the relay still serves.
    with socket.create_connection(("127.0.0.1", relay.port), timeout=5) as s:
        s.sendall(b"\x00" * 64)
        s.settimeout(5)
        try:
            assert s.recv(100) in (b"",) or True
        except ConnectionResetError:
            pass
    assert relay.alive()

    async def still_serving():
        b = await FallbackPeer.open("127.0.0.1", relay.port)
        await b.allocate(random_id(), b"\x01")
        await b.expect_error("invalid_token")
        await b.close()
    run(still_serving())


def test_plain_tcp_when_fallback_tls_is_off(relay_factory):
    relay = relay_factory("--fallback.tls", "false")

    async def go():
        a, b = await quic_and_tcp_pair(relay, tls=False)
        a.send(b"over-quic")
        b.send(b"over-tcp")
        assert await asyncio.wait_for(b.protocol.datagrams.get(), 5) == b"over-quic"
        assert await asyncio.wait_for(a.protocol.datagrams.get(), 5) == b"over-tcp"
        await close_all(a)
        await b.close()
    run(go())


def test_tcp_sender_is_capped_by_backpressure_not_loss(relay):
    async def go():
        alloc, pa, pb = ids()
        # 800 kbit/s = 100 000 B/s per direction.
        token = relay.key.mint(alloc, pa, pb, tier=0, bandwidth=800_000)
        a = await FallbackPeer.open("127.0.0.1", relay.port)
        await a.allocate(pa, token)
        await a.wait_peer("waiting")
        b = await Peer.open("127.0.0.1", relay.port)
        await b.allocate(pb, token)
        await b.wait_peer("paired")
        await a.wait_peer("paired")
        # 600 datagrams of 1000 B = 600 kB offered at once: 6 s at the cap.
        for i in range(600):
            a.send(i.to_bytes(4, "big") + bytes(996))
        start = time.monotonic()
        got = []
        while len(got) < 300:
            got.append(await asyncio.wait_for(b.protocol.datagrams.get(), 10))
        elapsed = time.monotonic() - start
        # Nothing lost, in order, and paced: 300 kB at 100 kB/s take about 3 s (the bucket's
        # 100 ms burst aside), and the sender still has bytes waiting (its window is full).
        assert [int.from_bytes(d[:4], "big") for d in got] == list(range(300))
        assert 2.0 < elapsed < 5.0, elapsed
        assert a.yamux.backlog() > 0
        await a.close()
        await close_all(b)
    run(go(), timeout=60)


class TCPOnlyProxy:
    """Forwards TCP from its own port to the relay; UDP to that port reaches nobody, as when
    a network blocks UDP."""

    def __init__(self, target_port):
        import threading
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        import threading
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=pipe, args=(a, b), daemon=True).start()

    def close(self):
        self.listener.close()


def test_cli_client_falls_back_to_tcp_when_udp_is_blocked(relay, tmp_path):
    from conftest import relay_binary
    import subprocess
    (tmp_path / "dev.key").write_text(relay.key.key_file_text())
    proxy = TCPOnlyProxy(relay.port)
    try:
        r = subprocess.run([relay_binary(), "client", "ping", "--relay", f"127.0.0.1:{proxy.port}", "--key", "dev.key",
                            "--count", "30", "--interval", "2"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert "sent 30 received 30 loss 0.00%" in r.stdout
        status, metrics = relay.http("/metrics")
        tcp = [line for line in metrics.splitlines()
               if line.startswith("zrc_relay_packets_forwarded_total") and 'transport="tcp"' in line]
        assert tcp and float(tcp[0].split()[-1]) >= 60, tcp
    finally:
        proxy.close()
