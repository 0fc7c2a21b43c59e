"""The WebSocket transport (DESIGN §9 v3) from outside: an independent WebSocket client
(`websockets` from PyPI) carrying an independent yamux client (yamuxpeer.py) pairs with an
aioquic peer; bad upgrades get their documented status or close code and disturb nobody;
`zrc-relay client` reaches the relay through an HTTP CONNECT proxy that only passes HTTPS.
"""
import asyncio
import os
import signal
import socket
import ssl
import subprocess
import time

from websockets.exceptions import ConnectionClosed

from conftest import free_port, relay_binary, run
from connectproxy import ConnectProxy
from test_quic_transport import exchange
from wspeer import PATH, WebSocketPeer, open_websocket, tls_context
from zrcpeer import Peer, close_all, random_id


def url(relay, tls=True, port=None):
    return f"{'wss' if tls else 'ws'}://127.0.0.1:{port or relay.port}{PATH}"


async def quic_and_websocket_pair(relay, tls=True, port=None, alpn="http/1.1"):
    alloc, pa, pb = random_id(), random_id(), random_id()
    token = relay.key.mint(alloc, pa, pb)
    a = await Peer.open("127.0.0.1", relay.port)
    await a.allocate(pa, token)
    await a.wait_peer("waiting")
    b = await WebSocketPeer.open_url(url(relay, tls, port), alpn=alpn)
    await b.allocate(pb, token)
    allocated = await b.next_frame("ALLOCATED")
    assert allocated.fields["allocation"] == alloc
    await b.wait_peer("paired")
    await a.wait_peer("paired")
    return a, b


def metric(relay, name, transport="websocket"):
    _, text = relay.http("/metrics")
    for line in text.splitlines():
        if line.startswith(f"zrc_relay_{name}{{") and f'transport="{transport}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def test_websocket_and_quic_peer_share_an_allocation_10000_datagrams(relay):
    async def go():
        a, b = await quic_and_websocket_pair(relay)
        sizes = [16 + (i * 37) % 1087 for i in range(10_000)]
        sent_a, got_b, sent_b, got_a = await exchange(a, b, sizes, settle=30)
        assert got_b == sent_a  # the WebSocket side receives in order, byte-identical
        assert sorted(got_a) == sorted(sent_b)
        await close_all(a)
        await b.close()
    run(go(), timeout=120)
    assert metric(relay, "packets_forwarded_total") >= 10_000


def http_exchange(port, request: bytes, tls=True, alpn="http/1.1"):
    """Sends raw bytes, returns (status line, headers dict, body) of the answer."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    s = tls_context(alpn).wrap_socket(raw) if tls else raw
    s.settimeout(5)
    s.sendall(request)
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except (ConnectionResetError, ssl.SSLError, socket.timeout):
        pass
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
    return lines[0], headers, body


def upgrade_request(path=PATH, protocol="zrc-relay.v1", version="13", upgrade=True):
    lines = [f"GET {path} HTTP/1.1", "Host: relay"]
    if upgrade:
        lines += ["Upgrade: websocket", "Connection: Upgrade"]
    lines += ["Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", f"Sec-WebSocket-Version: {version}"]
    if protocol:
        lines.append(f"Sec-WebSocket-Protocol: {protocol}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_bad_upgrades_get_their_status_or_close_code_and_disturb_nobody(relay):
    async def go():
        # A pair keeps forwarding while the abuse goes on.
        a, b = await quic_and_websocket_pair(relay)

        status, _, body = http_exchange(relay.port, upgrade_request(path="/nope"))
        assert " 404 " in status, status
        status, _, _ = http_exchange(relay.port, upgrade_request(protocol=None))
        assert " 400 " in status, status
        status, _, _ = http_exchange(relay.port, upgrade_request(protocol="other.v1"))
        assert " 400 " in status, status
        status, headers, _ = http_exchange(relay.port, upgrade_request(upgrade=False))
        assert " 426 " in status and headers.get("sec-websocket-version") == "13", (status, headers)
        status, headers, _ = http_exchange(relay.port, upgrade_request(version="8"))
        assert " 426 " in status and headers.get("sec-websocket-version") == "13", (status, headers)
        status, _, _ = http_exchange(relay.port, b"GET / HTTP/1.1\r\nHost: relay\r\n\r\n", alpn=None)
        assert " 404 " in status, status
        status, _, _ = http_exchange(relay.port, b"GARBAGE\r\n\r\n")
        assert " 400 " in status, status
        status, _, _ = http_exchange(relay.port, b"GET " + PATH.encode() + b" HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n")
        assert " 431 " in status, status

        # A message over 1 MiB: close 1009.
        ws = await open_websocket(url(relay))
        await ws.send(bytes(2 * 1024 * 1024))
        try:
            await asyncio.wait_for(ws.recv(), 5)
        except ConnectionClosed:
            pass
        assert ws.close_code == 1009, ws.close_code
        # Text instead of binary: 1003.
        ws = await open_websocket(url(relay))
        await ws.send("hello")
        try:
            await asyncio.wait_for(ws.recv(), 5)
        except ConnectionClosed:
            pass
        assert ws.close_code == 1003, ws.close_code
        # Garbage after the upgrade (an unmasked frame with a reserved opcode): 1002 or a close.
        ws = await open_websocket(url(relay))
        ws.transport.write(b"\x8b\x05hello")
        try:
            await asyncio.wait_for(ws.recv(), 5)
        except ConnectionClosed:
            pass
        assert ws.close_code in (1002, 1006), ws.close_code
        # Garbage yamux inside good messages: the yamux session ends, the relay stays.
        ws = await open_websocket(url(relay))
        await ws.send(b"\xff" * 64)
        try:
            await asyncio.wait_for(ws.recv(), 5)
        except ConnectionClosed:
            pass

        # The pair is undisturbed.
        sent_a, got_b, sent_b, got_a = await exchange(a, b, [100] * 200, settle=10)
        assert got_b == sent_a and sorted(got_a) == sorted(sent_b)
        await close_all(a)
        await b.close()
    run(go(), timeout=90)
    assert relay.alive()


def test_pings_are_answered(relay):
    async def go():
        ws = await open_websocket(url(relay), ping_interval=None)
        started = time.monotonic()
        pong = await ws.ping(b"zz")
        await asyncio.wait_for(pong, 5)
        assert time.monotonic() - started < 5
        await ws.close()
        assert ws.close_code == 1000
    run(go())


def test_plain_listener_and_extra_listen_speak_websocket_too(relay_factory):
    extra = free_port()
    relay = relay_factory("--fallback.tls", "false", "--fallback.extra-listen", f"127.0.0.1:{extra}")

    async def go():
        for port in (relay.port, extra):
            a, b = await quic_and_websocket_pair(relay, tls=False, port=port)
            a.send(b"over-quic")
            b.send(b"over-ws")
            assert await asyncio.wait_for(b.protocol.datagrams.get(), 5) == b"over-quic"
            assert await asyncio.wait_for(a.protocol.datagrams.get(), 5) == b"over-ws"
            await close_all(a)
            await b.close()
    run(go())


def test_tls_without_alpn_speaks_websocket(relay):
    async def go():
        a, b = await quic_and_websocket_pair(relay, alpn=None)
        b.send(b"no-alpn")
        assert await asyncio.wait_for(a.protocol.datagrams.get(), 5) == b"no-alpn"
        await close_all(a)
        await b.close()
    run(go())


def test_websocket_off_refuses_http(relay_factory):
    relay = relay_factory("--fallback.websocket", "false")
    status, _, _ = http_exchange(relay.port, upgrade_request(), alpn="http/1.1")
    assert status == "", status  # the TLS connection is closed without an answer


def test_drain_ends_websockets_with_close_1000(relay):
    async def go():
        a, b = await quic_and_websocket_pair(relay)
        relay.process.send_signal(signal.SIGTERM)
        goaway = await b.next_frame("GOAWAY", 10)
        assert goaway.fields["reason"] == 0
        # The client leaves as told (its control stream ends); the relay closes the WebSocket with 1000.
        b.yamux.close_write(b.CONTROL)
        await close_all(a)
        await asyncio.wait_for(b.ws.wait_closed(), 10)
        assert b.ws.close_code == 1000, b.ws.close_code
    run(go(), timeout=30)
    assert relay.process.wait(30) == 0


def test_client_ping_auto_ends_up_on_websocket_through_an_https_only_proxy(relay, tmp_path):
    """UDP gets nowhere (the client is given a port with no UDP listener), and the proxy drops
    TLS that offers ALPN zrc-relay/1: QUIC and the TCP fallback fail, WebSocket works."""
    (tmp_path / "dev.key").write_text(relay.key.key_file_text())
    front = free_port()
    proxy = ConnectProxy({f"127.0.0.1:{front}": relay.port}, refuse_alpn=b"zrc-relay/1")
    before = metric(relay, "packets_forwarded_total") or 0
    env = dict(os.environ, HTTPS_PROXY=proxy.url, NO_PROXY="example.org")
    try:
        result = subprocess.run([relay_binary(), "client", "ping", "--relay", f"127.0.0.1:{front}", "--key",
                                 str(tmp_path / "dev.key"), "--transport", "auto", "--count", "50"],
                                capture_output=True, text=True, timeout=60, env=env)
    finally:
        proxy.close()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "received 50" in result.stdout, result.stdout
    outcomes = [o for _, o in proxy.outcomes()]
    assert "alpn refused" in outcomes and "tunnel" in outcomes, outcomes
    assert (metric(relay, "packets_forwarded_total") or 0) >= before + 100


def test_a_refusing_proxy_shows_its_status_and_answer(relay, tmp_path):
    (tmp_path / "dev.key").write_text(relay.key.key_file_text())
    proxy = ConnectProxy({})
    try:
        result = subprocess.run([relay_binary(), "client", "ping", "--relay", f"127.0.0.1:{relay.port}", "--key",
                                 str(tmp_path / "dev.key"), "--transport", "websocket", "--proxy", proxy.url, "--count", "1"],
                                capture_output=True, text=True, timeout=30)
    finally:
        proxy.close()
    assert result.returncode != 0
    assert "403 Forbidden" in result.stderr and "is not allowed" in result.stderr, result.stderr


def test_resilient_client_pair_over_websocket(relay):
    from test_client import ClientProcess, pair_token
    token, pa, pb = pair_token(relay)
    target = ["--relay", f"wss://127.0.0.1:{relay.port}{PATH}", "--token", token]
    echo = ClientProcess("echo", *target, "--peer", pb)
    conn = ClientProcess("connect", *target, "--peer", pa, stdin=True)
    try:
        assert conn.wait_state("paired") and echo.wait_state("paired"), conn.lines + echo.lines
        assert any("connecting(websocket)" in line for line in conn.lines), conn.lines
        conn.process.stdin.write("over websocket\n")
        conn.process.stdin.flush()
        assert conn.output_line(5) == "over websocket\n"
    finally:
        conn.kill()
        echo.kill()
    assert metric(relay, "bytes_forwarded_total") > 0
