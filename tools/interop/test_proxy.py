"""Egress proxy over mutual TLS end to end (DESIGN §12): certificates from `zrc-relay pki`,
the built `zrc-relay proxy server` and `proxy agent`, local HTTP/HTTPS/WebSocket test servers
and plain Python clients, all on 127.0.0.1."""
import base64
import concurrent.futures
import hashlib
import http.client
import http.server
import os
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import threading
import time
import urllib.request

import pytest

from conftest import free_port, relay_binary


# ---------------------------------------------------------------- helpers

def zrc(*args, timeout=30):
    return subprocess.run([relay_binary(), *args], capture_output=True, text=True, timeout=timeout)


class Proc:
    """A zrc-relay child process whose output goes to a log file."""

    def __init__(self, log_path, *args):
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.p = subprocess.Popen([relay_binary(), *args], stdout=self.log, stderr=subprocess.STDOUT)

    def logs(self):
        return self.log_path.read_bytes().decode(errors="replace")

    def wait_log(self, text, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if text in self.logs():
                return
            if self.p.poll() is not None:
                raise AssertionError(f"exited {self.p.returncode} before {text!r}:\n{self.logs()}")
            time.sleep(0.05)
        raise AssertionError(f"no {text!r} in:\n{self.logs()}")

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()
        return self.p.returncode


def wait_port(port, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


def rss_peak_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Origin(http.server.BaseHTTPRequestHandler):
    """The destination: answers every method with what it received."""
    protocol_version = "HTTP/1.1"

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        digest, seen = hashlib.sha256(), 0
        while seen < length:
            chunk = self.rfile.read(min(1 << 20, length - seen))
            if not chunk:
                break
            digest.update(chunk)
            seen += len(chunk)
        if self.path == "/slow":
            time.sleep(1.0)
        proxy_headers = ",".join(sorted(h for h in self.headers.keys() if h.lower().startswith("proxy-")))
        body = f"{self.command} {self.path} {seen} {digest.hexdigest()} proxy-headers=[{proxy_headers}] " \
               f"connection={self.headers.get('Connection')}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        # Hop-by-hop and Proxy-* headers the agent must not pass back.
        self.send_header("Keep-Alive", "timeout=5")
        self.send_header("Proxy-Test", "x")
        self.send_header("Connection", "keep-alive, X-Hop")
        self.send_header("X-Hop", "1")
        self.send_header("X-Kept", "yes")
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer

    def log_message(self, *args):
        pass


class OriginServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


def start_origin(port=0, tls_context=None):
    server = OriginServer(("127.0.0.1", port), Origin)
    if tls_context is not None:
        server.socket = tls_context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def ws_echo_server():
    """A tiny WebSocket echo server (RFC 6455 handshake; text frames up to 125 bytes)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)

    def serve(conn):
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            key = [l.split(b":", 1)[1].strip() for l in data.split(b"\r\n") if l.lower().startswith(b"sec-websocket-key:")][0]
            accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
            while True:
                head = recv_exact(conn, 2)
                if head is None:
                    return
                length = head[1] & 0x7F
                mask = recv_exact(conn, 4)
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(recv_exact(conn, length)))
                if head[0] & 0x0F == 8:
                    conn.sendall(b"\x88\x00")
                    return
                conn.sendall(bytes([0x81, len(payload)]) + payload)

    def accept_loop():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept_loop, daemon=True).start()
    return listener


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def proxy_request(agent_port, method, url, body=None, headers=None, timeout=20):
    conn = http.client.HTTPConnection("127.0.0.1", agent_port, timeout=timeout)
    try:
        conn.request(method, url, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    assert zrc("pki", "init", "--dir", str(d)).returncode == 0
    assert zrc("pki", "issue", "--dir", str(d), "--name", "server", "--server", "--dns", "localhost", "--ip", "127.0.0.1").returncode == 0
    assert zrc("pki", "issue", "--dir", str(d), "--name", "agent-one", "--client").returncode == 0
    other = tmp_path_factory.mktemp("other-ca")
    assert zrc("pki", "init", "--dir", str(other), "--name", "someone else").returncode == 0
    assert zrc("pki", "issue", "--dir", str(other), "--name", "rogue", "--client").returncode == 0
    return d, other


class Pair:
    """A proxy server and an agent connected to it."""

    def __init__(self, tmp, pki_dir, server_args=(), agent_args=(), metrics=False):
        self.pki = pki_dir
        # Any host on any port: the local test servers use free ports, so only the
        # private-address rule (and --allow-private) decides.
        (tmp / "allow").write_text("# every destination\n*\n")
        self.allow_args = ["--allow-file", str(tmp / "allow")]
        self.server_port = free_port()
        self.agent_port = free_port()
        self.metrics_port = free_port() if metrics else None
        self.tmp = tmp
        self.server = self.start_server(self.server_port, server_args)
        self.agent = Proc(tmp / "agent.log", "proxy", "agent", "--server", f"127.0.0.1:{self.server_port}",
                          "--listen", f"127.0.0.1:{self.agent_port}", "--ca", str(pki_dir / "ca.crt"),
                          "--cert", str(pki_dir / "agent-one.crt"), "--key", str(pki_dir / "agent-one.key"),
                          "--log-level", "debug", *agent_args)
        self.agent.wait_log("tunnel up")

    def start_server(self, port, args=(), name="server.log"):
        extra = ["--metrics-listen", f"127.0.0.1:{self.metrics_port}"] if self.metrics_port else []
        server = Proc(self.tmp / name, "proxy", "server", "--listen", f"127.0.0.1:{port}", "--ca", str(self.pki / "ca.crt"),
                      "--cert", str(self.pki / "server.crt"), "--key", str(self.pki / "server.key"), *self.allow_args,
                      *extra, *args)
        server.wait_log("proxy server listening")
        return server

    def stop(self):
        codes = (self.agent.stop(), self.server.stop())
        return codes


@pytest.fixture(scope="module")
def private_pair(pki, tmp_path_factory):
    pair = Pair(tmp_path_factory.mktemp("private"), pki[0], server_args=["--allow-private"], metrics=True)
    yield pair
    pair.stop()


@pytest.fixture(scope="module")
def strict_pair(pki, tmp_path_factory):
    pair = Pair(tmp_path_factory.mktemp("strict"), pki[0])
    yield pair
    pair.stop()


@pytest.fixture(scope="module")
def origin():
    server = start_origin()
    yield server
    server.shutdown()
    server.server_close()


# ---------------------------------------------------------------- pki

def test_pki_files_modes_and_no_overwrite(pki):
    d, _ = pki
    for key in ("ca.key", "server.key", "agent-one.key"):
        assert stat.S_IMODE(os.stat(d / key).st_mode) == 0o600, key
    again = zrc("pki", "init", "--dir", str(d))
    assert again.returncode == 1 and "ca.crt" in again.stderr, again.stderr
    again = zrc("pki", "issue", "--dir", str(d), "--name", "agent-one", "--client")
    assert again.returncode == 1 and "agent-one.crt" in again.stderr, again.stderr
    assert zrc("pki", "issue", "--dir", str(d), "--name", "x", "--server").returncode == 2  # --server needs --dns
    if shutil.which("openssl"):  # optional here
        text = subprocess.run(["openssl", "x509", "-in", str(d / "server.crt"), "-noout", "-text"], capture_output=True, text=True).stdout
        assert "prime256v1" in text and "DNS:localhost" in text and "IP Address:127.0.0.1" in text, text
        chain = subprocess.run(["openssl", "verify", "-CAfile", str(d / "ca.crt"), str(d / "agent-one.crt")], capture_output=True, text=True)
        assert chain.returncode == 0, chain.stdout + chain.stderr


# ---------------------------------------------------------------- HTTP through the agent

def test_methods_with_bodies_and_dropped_proxy_headers(private_pair, origin):
    port = origin.server_address[1]
    for method in ("GET", "POST", "PUT", "DELETE"):
        body = os.urandom(100_000) if method in ("POST", "PUT") else None
        status, headers, data = proxy_request(private_pair.agent_port, method, f"http://127.0.0.1:{port}/m?x=1",
                                              body=body, headers={"Proxy-Authorization": "Basic eDp5", "Proxy-Foo": "1"})
        assert status == 200, (method, status, headers, data)
        length = len(body) if body else 0
        digest = hashlib.sha256(body or b"").hexdigest()
        assert data.decode().startswith(f"{method} /m?x=1 {length} {digest} proxy-headers=[] connection=close"), data
        assert headers.get("X-Kept") == "yes" and headers.get("Connection") == "close", headers
        for dropped in ("Keep-Alive", "Proxy-Test", "X-Hop"):
            assert dropped not in headers, headers


def test_malformed_requests_get_400(private_pair):
    status, headers, _ = proxy_request(private_pair.agent_port, "GET", "/origin-form")
    assert status == 400 and headers.get("X-Zrc-Proxy-Error") == "bad_request"
    with socket.create_connection(("127.0.0.1", private_pair.agent_port), timeout=5) as s:
        s.sendall(b"GARBAGE\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 400 ")


def test_https_via_connect(private_pair, pki):
    d, _ = pki
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(d / "server.crt", d / "server.key")
    tls_origin = start_origin(tls_context=server_ctx)
    try:
        client_ctx = ssl.create_default_context(cafile=str(d / "ca.crt"))
        conn = http.client.HTTPSConnection("127.0.0.1", private_pair.agent_port, context=client_ctx, timeout=10)
        conn.set_tunnel("localhost", tls_origin.server_address[1])
        conn.request("POST", "/secure", body=b"hello")
        response = conn.getresponse()
        assert response.status == 200
        assert response.read().startswith(b"POST /secure 5 ")
        conn.close()
    finally:
        tls_origin.shutdown()
        tls_origin.server_close()


def test_websocket_echo(private_pair):
    listener = ws_echo_server()
    port = listener.getsockname()[1]
    try:
        with socket.create_connection(("127.0.0.1", private_pair.agent_port), timeout=10) as s:
            key = base64.b64encode(os.urandom(16)).decode()
            s.sendall(f"GET http://127.0.0.1:{port}/chat HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
            head = b""
            while b"\r\n\r\n" not in head:
                head += s.recv(1)
            assert head.startswith(b"HTTP/1.1 101"), head
            for text in (b"hello", b"through the tunnel"):
                mask = os.urandom(4)
                s.sendall(bytes([0x81, 0x80 | len(text)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(text)))
                frame = recv_exact(s, 2)
                assert frame == bytes([0x81, len(text)])
                assert recv_exact(s, len(text)) == text
    finally:
        listener.close()


def test_hundred_concurrent_connections(private_pair, origin):
    port = origin.server_address[1]

    def one(i):
        return proxy_request(private_pair.agent_port, "POST", f"http://127.0.0.1:{port}/c{i}", body=str(i).encode() * 100)

    with concurrent.futures.ThreadPoolExecutor(100) as pool:
        results = list(pool.map(one, range(100)))
    for i, (status, _, data) in enumerate(results):
        assert status == 200, (i, status, data)
        assert data.startswith(f"POST /c{i} {len(str(i)) * 100} ".encode())


def test_streamed_body_keeps_memory_bounded(private_pair, origin):
    port = origin.server_address[1]
    size = 100 * 1024 * 1024

    def body():
        block = b"z" * (1 << 20)
        for _ in range(size >> 20):
            yield block

    started = time.time()
    status, _, data = proxy_request(private_pair.agent_port, "PUT", f"http://127.0.0.1:{port}/big", body=body(),
                                    headers={"Content-Length": str(size)}, timeout=120)
    elapsed = time.time() - started
    assert status == 200
    assert data.startswith(f"PUT /big {size} {hashlib.sha256(b'z' * size).hexdigest()}".encode())
    agent_mb, server_mb = rss_peak_mb(private_pair.agent.p.pid), rss_peak_mb(private_pair.server.p.pid)
    print(f"100 MB in {elapsed:.1f} s; peak RSS agent {agent_mb:.0f} MB, server {server_mb:.0f} MB")
    assert agent_mb < 100 and server_mb < 100, (agent_mb, server_mb)


def test_access_log_and_metrics(private_pair, origin):
    proxy_request(private_pair.agent_port, "GET", f"http://127.0.0.1:{origin.server_address[1]}/metrics-check")
    private_pair.server.wait_log("outcome=ok")
    logs = private_pair.server.logs()
    line = [l for l in logs.splitlines() if "outcome=ok" in l][-1]
    for key in ("zrc.agent=agent-one", "zrc.destination=127.0.0.1:", "bytes_up=", "bytes_down=", "duration_ms="):
        assert key in line, line
    text = urllib.request.urlopen(f"http://127.0.0.1:{private_pair.metrics_port}/metrics", timeout=5).read().decode()
    for name in ("zrc_proxy_streams_active", 'zrc_proxy_streams_total{outcome="ok"}', 'zrc_proxy_bytes_total{direction="up"}',
                 'zrc_proxy_bytes_total{direction="down"}', "zrc_proxy_circuit_open"):
        assert name in text, name


# ---------------------------------------------------------------- policy

@pytest.mark.parametrize("url", [
    "http://127.0.0.1:{port}/", "http://localhost:{port}/", "http://169.254.169.254/latest/meta-data/",
    "http://[::ffff:127.0.0.1]:{port}/", "http://169.254.170.2/v2/credentials", "http://10.1.2.3/",
])
def test_private_destinations_denied(strict_pair, origin, url):
    status, headers, _ = proxy_request(strict_pair.agent_port, "GET", url.format(port=origin.server_address[1]))
    assert status == 403 and headers.get("X-Zrc-Proxy-Error") == "denied", (status, headers)


def test_connect_to_private_denied(strict_pair):
    conn = http.client.HTTPConnection("127.0.0.1", strict_pair.agent_port, timeout=10)
    conn.request("CONNECT", "localhost:443")
    response = conn.getresponse()
    assert response.status == 403 and response.getheader("X-Zrc-Proxy-Error") == "denied"
    conn.close()


def test_proxy_never_dials_itself(private_pair):
    status, headers, _ = proxy_request(private_pair.agent_port, "GET", f"http://127.0.0.1:{private_pair.server_port}/")
    assert status == 403 and headers.get("X-Zrc-Proxy-Error") == "denied"


# ---------------------------------------------------------------- circuit breaker

def test_circuit_breaker_opens_and_closes(pki, tmp_path):
    pair = Pair(tmp_path, pki[0], server_args=["--allow-private", "--circuit-open-seconds", "2"])
    try:
        dead = free_port()
        url = f"http://127.0.0.1:{dead}/"
        for i in range(5):
            status, headers, _ = proxy_request(pair.agent_port, "GET", url)
            assert status == 502 and headers.get("X-Zrc-Proxy-Error") == "dial_failed", (i, status, headers)
        started = time.time()
        status, headers, _ = proxy_request(pair.agent_port, "GET", url)
        assert status == 503 and headers.get("X-Zrc-Proxy-Error") == "circuit_open", (status, headers)
        assert time.time() - started < 1.0
        back = start_origin(dead)
        try:
            time.sleep(2.2)
            status, _, data = proxy_request(pair.agent_port, "GET", url)
            assert status == 200, data
            status, _, _ = proxy_request(pair.agent_port, "GET", url)
            assert status == 200
        finally:
            back.shutdown()
            back.server_close()
    finally:
        pair.stop()


def test_max_streams_answers_busy(pki, tmp_path):
    pair = Pair(tmp_path, pki[0], server_args=["--allow-private", "--max-streams", "2"])
    listener = ws_echo_server()  # any TCP server that keeps connections open
    held = []
    try:
        for _ in range(2):
            s = socket.create_connection(("127.0.0.1", pair.agent_port), timeout=10)
            s.sendall(f"CONNECT 127.0.0.1:{listener.getsockname()[1]} HTTP/1.1\r\n\r\n".encode())
            assert s.recv(100).startswith(b"HTTP/1.1 200"), "stream not opened"
            held.append(s)
        conn = http.client.HTTPConnection("127.0.0.1", pair.agent_port, timeout=10)
        conn.request("CONNECT", f"127.0.0.1:{listener.getsockname()[1]}")
        response = conn.getresponse()
        assert response.status == 503 and response.getheader("X-Zrc-Proxy-Error") == "busy"
        conn.close()
    finally:
        for s in held:
            s.close()
        listener.close()
        pair.stop()


# ---------------------------------------------------------------- certificates

def test_agent_with_another_cas_certificate_exits_1(pki, tmp_path):
    d, other = pki
    pair_port = free_port()
    server = Proc(tmp_path / "server.log", "proxy", "server", "--listen", f"127.0.0.1:{pair_port}", "--ca", str(d / "ca.crt"),
                  "--cert", str(d / "server.crt"), "--key", str(d / "server.key"))
    try:
        server.wait_log("proxy server listening")
        marker = tmp_path / "exited"
        agent = subprocess.run([relay_binary(), "proxy", "agent", "--server", f"127.0.0.1:{pair_port}", "--listen",
                                f"127.0.0.1:{free_port()}", "--ca", str(d / "ca.crt"), "--cert", str(other / "rogue.crt"),
                                "--key", str(other / "rogue.key"), "--on-exit-cmd", f"touch {marker}"],
                               capture_output=True, text=True, timeout=20)
        assert agent.returncode == 1, agent.stderr
        assert "TLS" in agent.stderr, agent.stderr
        assert marker.exists()
        server.wait_log("agent refused in the TLS handshake")
        # And an agent that verifies the server against another CA.
        agent = subprocess.run([relay_binary(), "proxy", "agent", "--server", f"127.0.0.1:{pair_port}", "--listen",
                                f"127.0.0.1:{free_port()}", "--ca", str(other / "ca.crt"), "--cert", str(other / "rogue.crt"),
                                "--key", str(other / "rogue.key")], capture_output=True, text=True, timeout=20)
        assert agent.returncode == 1 and "TLS" in agent.stderr, agent.stderr
    finally:
        server.stop()


def test_server_certificate_for_another_name_exits_1(pki, tmp_path):
    d, _ = pki
    assert zrc("pki", "issue", "--dir", str(tmp_path), "--name", "elsewhere", "--server", "--dns", "other.example").returncode == 1  # no CA there
    for f in ("ca.crt", "ca.key"):
        (tmp_path / f).write_bytes((d / f).read_bytes())
    assert zrc("pki", "issue", "--dir", str(tmp_path), "--name", "elsewhere", "--server", "--dns", "other.example").returncode == 0
    port = free_port()
    server = Proc(tmp_path / "server.log", "proxy", "server", "--listen", f"127.0.0.1:{port}", "--ca", str(d / "ca.crt"),
                  "--cert", str(tmp_path / "elsewhere.crt"), "--key", str(tmp_path / "elsewhere.key"))
    try:
        server.wait_log("proxy server listening")
        agent = subprocess.run([relay_binary(), "proxy", "agent", "--server", f"127.0.0.1:{port}", "--listen", f"127.0.0.1:{free_port()}",
                                "--ca", str(d / "ca.crt"), "--cert", str(d / "agent-one.crt"), "--key", str(d / "agent-one.key")],
                               capture_output=True, text=True, timeout=20)
        assert agent.returncode == 1 and "TLS" in agent.stderr, agent.stderr
    finally:
        server.stop()


def test_client_without_certificate_refused(pki, tmp_path):
    d, _ = pki
    port = free_port()
    server = Proc(tmp_path / "server.log", "proxy", "server", "--listen", f"127.0.0.1:{port}", "--ca", str(d / "ca.crt"),
                  "--cert", str(d / "server.crt"), "--key", str(d / "server.key"))
    try:
        server.wait_log("proxy server listening")
        ctx = ssl.create_default_context(cafile=str(d / "ca.crt"))
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
                with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                    tls.sendall(b"\x00" * 12)
                    if not tls.recv(1):
                        raise ConnectionError("closed")
        server.wait_log("agent refused in the TLS handshake")
    finally:
        server.stop()


# ---------------------------------------------------------------- resilience

def test_tunnel_down_discover_and_on_exit(pki, tmp_path, origin):
    d, _ = pki
    pair = Pair(tmp_path, d, server_args=["--allow-private"], agent_args=[
        "--discover-cmd", f"cat {tmp_path / 'next'}", "--on-exit-cmd", f"touch {tmp_path / 'on-exit'}"])
    second = None
    try:
        url = f"http://127.0.0.1:{origin.server_address[1]}/flow"
        assert proxy_request(pair.agent_port, "GET", url)[0] == 200
        pair.server.stop(signal.SIGKILL)
        time.sleep(0.3)
        started = time.time()
        status, headers, _ = proxy_request(pair.agent_port, "GET", url)
        assert status == 503 and headers.get("X-Zrc-Proxy-Error") == "tunnel_down", (status, headers)
        assert time.time() - started < 1.0
        new_port = free_port()
        (tmp_path / "next").write_text(f"127.0.0.1:{new_port}\n")
        second = pair.start_server(new_port, ["--allow-private"], name="server2.log")
        deadline = time.time() + 25
        while time.time() < deadline:
            if proxy_request(pair.agent_port, "GET", url)[0] == 200:
                break
            time.sleep(0.3)
        else:
            raise AssertionError(pair.agent.logs())
        assert "--discover-cmd found a server" in pair.agent.logs()
        # Graceful shutdown: a request under way finishes; then exit 0 and --on-exit-cmd.
        result = {}
        worker = threading.Thread(target=lambda: result.update(r=proxy_request(pair.agent_port, "GET",
                                  f"http://127.0.0.1:{origin.server_address[1]}/slow")))
        worker.start()
        time.sleep(0.4)
        assert pair.agent.stop() == 0
        worker.join(10)
        assert result["r"][0] == 200
        assert (tmp_path / "on-exit").exists()
    finally:
        pair.agent.stop()
        pair.server.stop()
        if second:
            second.stop()
