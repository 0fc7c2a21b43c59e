"""Reverse tunnel end to end (DESIGN §9): the built `zrc-relay tunnel server|client`,
a local HTTP service and plain HTTP clients, all on 127.0.0.1."""
import concurrent.futures
import hashlib
import http.client
import http.server
import socket
import subprocess
import threading
import time

import pytest

from conftest import free_port, relay_binary


class Body(http.server.BaseHTTPRequestHandler):
    """GET /N answers a body derived from N (so every response can be checked)."""
    protocol_version = "HTTP/1.0"
    tag = b"one"

    def do_GET(self):
        n = self.path.strip("/")
        body = self.server.tag + b":" + hashlib.sha256(n.encode()).hexdigest().encode() * 64
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def expected(n, tag=b"one"):
    return tag + b":" + hashlib.sha256(str(n).encode()).hexdigest().encode() * 64


class LocalService:
    def __init__(self, port, tag=b"one"):
        self.port = port
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Body)
        self.server.daemon_threads = True
        self.server.tag = tag
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class Proc:
    def __init__(self, *args):
        self.args = [relay_binary(), "tunnel", *args]
        self.p = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def wait(self, timeout=15):
        out, _ = self.p.communicate(timeout=timeout)
        return self.p.returncode, out

    def alive(self):
        return self.p.poll() is None

    def stop(self):
        if self.alive():
            self.p.terminate()
            try:
                return self.wait(15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                return self.wait(5)
        return self.wait(5)


def wait_port(port, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"port {port} never opened")


def get(port, n, timeout=10.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", f"/{n}")
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_until_served(port, timeout=10.0, tag=b"one"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if get(port, 0, timeout=2) == (200, expected(0, tag)):
                return
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.1)
    raise AssertionError("the tunnel never served")


def public_connection_is_closed_at_once(port):
    """Connects and expects EOF or a reset within a second, without sending anything."""
    s = socket.create_connection(("127.0.0.1", port), timeout=2)
    s.settimeout(1.0)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False
    finally:
        s.close()


@pytest.fixture
def ports():
    return {"control": free_port(), "public": free_port(), "local": free_port(), "local2": free_port()}


@pytest.fixture
def procs():
    started = []
    yield started
    for p in started:
        p.stop()


def start(procs, *args):
    p = Proc(*args)
    procs.append(p)
    return p


def test_usage_errors_exit_2():
    for args in (["client"], ["client", "--server", "nohostport"], ["server", "--control-port", "70000"],
                 ["client", "--server", "127.0.0.1:1", "--local-port", "0"], ["server", "--bogus"]):
        r = subprocess.run([relay_binary(), "tunnel", *args], capture_output=True, text=True, timeout=10)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert "Usage" in r.stderr or "usage" in r.stderr.lower()
    r = subprocess.run([relay_binary(), "tunnel", "server", "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and "--control-port" in r.stdout and "--public-port" in r.stdout


def test_200_concurrent_requests_then_local_down_then_client_restart(ports, procs):
    local = LocalService(ports["local"])
    server = start(procs, "server", "--listen-addr", "127.0.0.1", "--control-port", str(ports["control"]),
                   "--public-port", str(ports["public"]))
    wait_port(ports["public"])
    # No client yet: public connections are closed at once.
    assert public_connection_is_closed_at_once(ports["public"])

    client = start(procs, "client", "--server", f"127.0.0.1:{ports['control']}", "--local-port", str(ports["local"]))
    wait_until_served(ports["public"])

    with concurrent.futures.ThreadPoolExecutor(max_workers=200) as pool:
        results = list(pool.map(lambda n: (n, get(ports["public"], n, timeout=30)), range(1, 201)))
    for n, (status, body) in results:
        assert status == 200 and body == expected(n), n

    # The local service goes away: public connections close cleanly, the tunnel stays up.
    local.stop()
    s = socket.create_connection(("127.0.0.1", ports["public"]), timeout=5)
    s.sendall(b"GET /1 HTTP/1.0\r\n\r\n")
    s.settimeout(5)
    try:
        assert s.recv(100) == b""
    except ConnectionResetError:
        pass
    s.close()
    assert client.alive() and server.alive()

    # The local service comes back: traffic resumes through the same tunnel.
    local = LocalService(ports["local"])
    wait_until_served(ports["public"])

    # Restart the tunnel client: refused while it is gone, served again when it is back.
    client.p.kill()
    client.wait()
    deadline = time.time() + 5
    while time.time() < deadline and not public_connection_is_closed_at_once(ports["public"]):
        time.sleep(0.1)
    assert public_connection_is_closed_at_once(ports["public"])
    start(procs, "client", "--server", f"127.0.0.1:{ports['control']}", "--local-port", str(ports["local"]))
    wait_until_served(ports["public"])
    assert get(ports["public"], 7) == (200, expected(7))
    local.stop()

    server.p.terminate()
    code, out = server.wait()
    assert code == 0, out
    assert "public connection closed" in out and "bytes_in=" in out and "bytes_out=" in out


def test_token_is_required_and_most_recent_client_wins(ports, procs):
    one = LocalService(ports["local"], tag=b"one")
    two = LocalService(ports["local2"], tag=b"two")
    start(procs, "server", "--listen-addr", "127.0.0.1", "--control-port", str(ports["control"]),
          "--public-port", str(ports["public"]), "--token", "s3cret")
    wait_port(ports["control"])
    bad = Proc("client", "--server", f"127.0.0.1:{ports['control']}", "--local-port", str(ports["local"]), "--token", "nope")
    code, out = bad.wait()
    assert code == 1 and "refused" in out and "bad token" in out, out
    missing = Proc("client", "--server", f"127.0.0.1:{ports['control']}", "--local-port", str(ports["local"]))
    code, out = missing.wait()
    assert code == 1 and "refused" in out, out
    assert public_connection_is_closed_at_once(ports["public"])

    first = start(procs, "client", "--server", f"127.0.0.1:{ports['control']}", "--local-port", str(ports["local"]),
                  "--token", "s3cret")
    wait_until_served(ports["public"], tag=b"one")
    start(procs, "client", "--server", f"127.0.0.1:{ports['control']}", "--local-port", str(ports["local2"]),
          "--token", "s3cret")
    wait_until_served(ports["public"], tag=b"two")
    assert get(ports["public"], 3) == (200, expected(3, b"two"))
    # DESIGN §9 v3: the superseded client is told REPLACED, logs it and exits 0.
    code, out = first.wait()
    assert code == 0 and "replaced by a newer client" in out, out
    # The current client's control connection is lost: the reference is cleared and public
    # connections are refused until a client connects.
    second = procs[-1]
    second.p.kill()
    second.wait()
    deadline = time.time() + 5
    while time.time() < deadline and not public_connection_is_closed_at_once(ports["public"]):
        time.sleep(0.1)
    assert public_connection_is_closed_at_once(ports["public"])
    start(procs, "client", "--server", f"127.0.0.1:{ports['control']}", "--local-port", str(ports["local"]),
          "--token", "s3cret")
    wait_until_served(ports["public"], tag=b"one")
    one.stop()
    two.stop()


def test_client_exits_clearly_when_server_unreachable_and_cleanly_when_it_closes(ports, procs):
    lonely = Proc("client", "--server", f"127.0.0.1:{ports['control']}", "--local-port", str(ports["local"]))
    code, out = lonely.wait()
    assert code == 1 and "cannot reach the tunnel server" in out, out

    server = start(procs, "server", "--listen-addr", "127.0.0.1", "--control-port", str(ports["control"]),
                   "--public-port", str(ports["public"]))
    wait_port(ports["control"])
    client = start(procs, "client", "--server", f"127.0.0.1:{ports['control']}", "--local-port", str(ports["local"]))
    time.sleep(0.5)  # connected and said hello
    assert client.alive()
    server.p.terminate()
    server.wait()
    code, out = client.wait()
    assert code == 0, out
    assert "closed the connection" in out


def test_tunnel_over_wss_carries_200_concurrent_requests(ports, procs, tmp_path):
    """`tunnel server --websocket` with TLS on the control port; the client reaches it as
    wss://…/zrc-relay/v1 (DESIGN §9 v3) and 200 concurrent public requests come back right."""
    from test_named_tunnels import make_cert
    crt, key = make_cert(tmp_path, "control", "IP:127.0.0.1,DNS:localhost")
    service = LocalService(ports["local"])
    try:
        start(procs, "server", "--listen-addr", "127.0.0.1", "--control-port", str(ports["control"]),
              "--public-port", str(ports["public"]), "--token", "s3cret", "--tls-cert", str(crt), "--tls-key", str(key),
              "--websocket")
        wait_port(ports["control"])
        client = start(procs, "client", "--server", f"wss://localhost:{ports['control']}/zrc-relay/v1",
                       "--local-port", str(ports["local"]), "--token", "s3cret", "--tls-ca", str(crt))
        wait_until_served(ports["public"])
        with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
            results = list(pool.map(lambda n: get(ports["public"], n, timeout=30), range(200)))
        assert all(status == 200 for status, _ in results)
        assert all(body == expected(n) for n, (_, body) in enumerate(results))
        assert client.alive()
        # A plain yamux client still works on the same port.
        plain = start(procs, "client", "--server", f"127.0.0.1:{ports['control']}", "--local-port", str(ports["local"]),
                      "--token", "s3cret", "--tls-ca", str(crt))
        code, out = client.wait(15)  # the WebSocket client is replaced by the newer plain one
        assert code == 0 and "replaced by a newer client" in out, out
        wait_until_served(ports["public"])
        assert plain.alive()
    finally:
        service.stop()


def test_tunnel_websocket_through_a_connect_proxy(ports, procs):
    """ws:// through an HTTP proxy that allows only CONNECT to the control port."""
    from connectproxy import ConnectProxy
    service = LocalService(ports["local"])
    proxy = ConnectProxy({f"127.0.0.1:{ports['control']}": ports["control"]})
    try:
        start(procs, "server", "--listen-addr", "127.0.0.1", "--control-port", str(ports["control"]),
              "--public-port", str(ports["public"]), "--websocket")
        wait_port(ports["control"])
        start(procs, "client", "--server", f"ws://127.0.0.1:{ports['control']}/zrc-relay/v1", "--proxy", proxy.url,
              "--local-port", str(ports["local"]))
        wait_until_served(ports["public"])
        assert get(ports["public"], 7) == (200, expected(7))
        assert [o for _, o in proxy.outcomes()] == ["tunnel"]
    finally:
        proxy.close()
        service.stop()
