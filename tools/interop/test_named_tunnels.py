"""Named HTTP tunnels end to end (DESIGN §11): the built `zrc-relay tunnel server --http-port
--domain` and `tunnel client --name`, local HTTP services and independent HTTP/WebSocket
clients written here, all on 127.0.0.1. Host headers carry the names, so no DNS is needed.

Long timers are shortened with the server's hidden test flags (docs/TUNNELS.md):
`--test-head-timeout-ms`, `--test-response-timeout-ms`, `--test-hold-ms`."""
import base64
import concurrent.futures
import hashlib
import http.client
import http.server
import json
import os
import select
import socket
import ssl
import struct
import subprocess
import threading
import time
import urllib.request

import pytest

from conftest import free_port, relay_binary

DOMAIN = "t.test"
HEAD_TIMEOUT_MS = 1500
RESPONSE_TIMEOUT_MS = 2500
MB = 1 << 20


# --- local services ---------------------------------------------------------------------------

class Service(http.server.BaseHTTPRequestHandler):
    """GET /n/N: a body derived from the service's tag and N; GET /bytes/N: N bytes;
    POST /sha: the SHA-256 of the body; GET /headers: the X-Forwarded-* seen, as JSON;
    GET /slow/S: answers after S seconds; a WebSocket upgrade on /ws echoes frames."""
    protocol_version = "HTTP/1.1"

    def _send(self, body, status=200):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        parts = self.path.split("?")[0].strip("/").split("/")
        if parts[0] == "n":
            self._send(expected(self.server.tag, parts[1]))
        elif parts[0] == "bytes":
            n = int(parts[1])
            self.send_response(200)
            self.send_header("Content-Length", str(n))
            self.end_headers()
            block = b"0123456789abcdef" * 4096
            while n > 0:
                k = min(n, len(block))
                self.wfile.write(block[:k])
                n -= k
        elif parts[0] == "headers":
            seen = {k: self.headers.get_all(k) for k in ("X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Host")}
            self._send(json.dumps(seen).encode())
        elif parts[0] == "slow":
            time.sleep(float(parts[1]))
            self._send(b"late")
        elif parts[0] == "ws":
            self.websocket_echo()
        else:
            self._send(b"?", 404)

    def do_POST(self):
        n = int(self.headers["Content-Length"])
        h = hashlib.sha256()
        while n > 0:
            chunk = self.rfile.read(min(n, MB))
            if not chunk:
                break
            h.update(chunk)
            n -= len(chunk)
        self._send(h.hexdigest().encode())

    def websocket_echo(self):
        key = self.headers["Sec-WebSocket-Key"]
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        while True:
            frame = ws_read_frame(self.rfile.read)
            if frame is None or frame[0] == 0x8:
                ws_write_frame(self.wfile.write, 0x8, b"", mask=False)
                return
            ws_write_frame(self.wfile.write, frame[0], frame[1], mask=False)
            self.wfile.flush()

    def log_message(self, *args):
        pass


def expected(tag, n):
    return tag + b":" + hashlib.sha256(str(n).encode()).hexdigest().encode()


def ws_write_frame(write, opcode, payload, mask=True):
    header = bytes([0x80 | opcode])
    n = len(payload)
    m = 0x80 if mask else 0
    if n < 126:
        header += bytes([m | n])
    elif n < 65536:
        header += bytes([m | 126]) + struct.pack("!H", n)
    else:
        header += bytes([m | 127]) + struct.pack("!Q", n)
    if mask:
        key = os.urandom(4)
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        header += key
    write(header + payload)


def ws_read_frame(read):
    def exactly(n):
        out = b""
        while len(out) < n:
            chunk = read(n - len(out))
            if not chunk:
                return None
            out += chunk
        return out
    head = exactly(2)
    if head is None:
        return None
    opcode, n = head[0] & 0x0F, head[1] & 0x7F
    masked = head[1] & 0x80
    if n == 126:
        n = struct.unpack("!H", exactly(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", exactly(8))[0]
    key = exactly(4) if masked else None
    payload = exactly(n) if n else b""
    if key:
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return opcode, payload


class QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a caller that went away (the 504 test) is expected here


class LocalService:
    def __init__(self, tag):
        self.port = free_port()
        self.server = QuietServer(("127.0.0.1", self.port), Service)
        self.server.daemon_threads = True
        self.server.tag = tag
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


# --- processes --------------------------------------------------------------------------------

class Proc:
    def __init__(self, *args):
        self.args = [relay_binary(), "tunnel", *args]
        self.p = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.append(line)

    def output(self):
        return "".join(self.lines)

    def wait_for(self, text, timeout=10.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if text in self.output():
                return
            if self.p.poll() is not None and text not in self.output():
                self.reader.join(2)
                if text in self.output():
                    return
                raise AssertionError(f"exited {self.p.returncode} before {text!r}:\n{self.output()}")
            time.sleep(0.02)
        raise AssertionError(f"{text!r} not seen:\n{self.output()}")

    def wait(self, timeout=15):
        code = self.p.wait(timeout)
        self.reader.join(5)
        return code, self.output()

    def alive(self):
        return self.p.poll() is None

    def stop(self):
        if self.alive():
            self.p.terminate()
            try:
                self.p.wait(15)
            except subprocess.TimeoutExpired:
                self.p.kill()
        try:
            return self.wait(5)
        except subprocess.TimeoutExpired:
            return None, self.output()

    def rss_kib(self):
        fields = {}
        with open(f"/proc/{self.p.pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                fields[k] = v.strip()
        return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


class Cluster:
    """A named tunnel server plus its clients and services; everything stopped at the end."""

    def __init__(self, tmp_path, tokens=None, extra=()):
        self.tmp = tmp_path
        self.control = free_port()
        self.http = free_port()
        self.metrics = free_port()
        self.procs = []
        self.services = []
        args = ["server", "--listen-addr", "127.0.0.1", "--control-port", str(self.control), "--http-port", str(self.http),
                "--domain", DOMAIN, "--metrics-listen", f"127.0.0.1:{self.metrics}",
                "--test-head-timeout-ms", str(HEAD_TIMEOUT_MS), "--test-response-timeout-ms", str(RESPONSE_TIMEOUT_MS)]
        if tokens is not None:
            path = tmp_path / "tokens"
            path.write_text("# name token\n" + "".join(f"{n} {t}\n" for n, t in tokens.items()))
            args += ["--tokens-file", str(path)]
        self.server_args = args + list(extra)
        self.server = self.start_server()

    def start_server(self):
        server = self.spawn(*self.server_args)
        server.wait_for("named tunnel server listening")
        return server

    def spawn(self, *args):
        p = Proc(*args)
        self.procs.append(p)
        return p

    def service(self, tag):
        s = LocalService(tag)
        self.services.append(s)
        return s

    def client(self, name, port, token=None, *extra, wait=True):
        args = ["client", "--server", f"127.0.0.1:{self.control}", "--local-port", str(port)]
        if name:
            args += ["--name", name]
        if token:
            args += ["--token", token]
        c = self.spawn(*args, *extra)
        if wait:
            c.wait_for("tunnel ready: ")
        return c

    def close(self):
        for p in reversed(self.procs):
            p.stop()
        for s in self.services:
            s.stop()


@pytest.fixture
def cluster_factory(tmp_path):
    made = []

    def make(**kwargs):
        d = tmp_path / f"c{len(made)}"
        d.mkdir()
        c = Cluster.__new__(Cluster)
        made.append(c)
        c.procs, c.services = [], []
        Cluster.__init__(c, d, **kwargs)
        return c

    yield make
    for c in made:
        c.close()


def request(port, name, path, method="GET", body=None, headers=None, timeout=15.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        h = {"Host": f"{name}.{DOMAIN}:{port}"}
        h.update(headers or {})
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def raw_exchange(port, data, timeout=10.0, shut=False):
    """Sends raw bytes and reads until the server closes; returns (bytes, seconds)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    started = time.time()
    try:
        if data:
            s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
        return out, time.time() - started
    finally:
        s.close()


def metric(cluster, line_prefix):
    text = urllib.request.urlopen(f"http://127.0.0.1:{cluster.metrics}/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith(line_prefix + " ") or line.startswith(line_prefix + "{") and line.split(" ")[0] == line_prefix:
            return float(line.rsplit(" ", 1)[1])
    for line in text.splitlines():
        if line.split(" ")[0] == line_prefix:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{line_prefix} not in metrics:\n{text}")


TOKENS = {name: f"tok-{name}-9f3e1c" for name in ("alpha", "beta", "gamma", "idle", "down")}


@pytest.fixture
def three(cluster_factory):
    """A server with a tokens file, and alpha/beta/gamma each served by its own service."""
    c = cluster_factory(tokens=TOKENS)
    for name in ("alpha", "beta", "gamma"):
        svc = c.service(name.encode())
        c.client(name, svc.port, TOKENS[name])
    return c


# --- tests ------------------------------------------------------------------------------------

def test_300_concurrent_requests_over_three_names_reach_their_own_service(three):
    names = ["alpha", "beta", "gamma"]
    jobs = [(names[i % 3], i) for i in range(300)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=100) as pool:
        results = list(pool.map(lambda job: (job, request(three.http, job[0], f"/n/{job[1]}", timeout=30)), jobs))
    for (name, i), (status, body) in results:
        assert status == 200 and body == expected(name.encode(), i), (name, i, status, body[:80])
    assert metric(three, "zrc_tunnel_active") == 3
    assert metric(three, 'zrc_tunnel_requests_total{status_class="2xx"}') >= 300
    assert metric(three, 'zrc_tunnel_bytes_total{direction="out"}') > 0
    out = three.server.output()
    assert "tunnel connected" in out and "tunnel.name=beta" in out
    assert "method=GET" in out and "path=/n/7" in out and "status=200" in out and "bytes_in=" in out
    # Tokens never reach the logs.
    assert "9f3e1c" not in out


def test_forwarded_headers_are_set_and_forged_ones_replaced(three):
    status, body = request(three.http, "alpha", "/headers", headers={"X-Forwarded-For": "6.6.6.6",
                                                                     "X-Forwarded-Proto": "gopher", "X-Forwarded-Host": "evil"})
    assert status == 200
    seen = json.loads(body)
    assert seen["X-Forwarded-For"] == ["127.0.0.1"]
    assert seen["X-Forwarded-Host"] == [f"alpha.{DOMAIN}:{three.http}"]
    assert seen["X-Forwarded-Proto"] == ["http"]
    # Every request of a kept-alive connection is rewritten, not only the first.
    conn = http.client.HTTPConnection("127.0.0.1", three.http, timeout=10)
    for _ in range(3):
        conn.request("GET", "/headers", headers={"Host": f"Alpha.{DOMAIN}", "X-Forwarded-For": "1.2.3.4"})
        r = conn.getresponse()
        assert json.loads(r.read())["X-Forwarded-For"] == ["127.0.0.1"]
    conn.close()


def test_upload_and_download_100_mb_with_bounded_server_memory(three):
    size = 100 * MB
    rss_before, _ = three.server.rss_kib()
    started = time.time()
    conn = http.client.HTTPConnection("127.0.0.1", three.http, timeout=60)
    conn.request("GET", f"/bytes/{size}", headers={"Host": f"beta.{DOMAIN}"})
    r = conn.getresponse()
    got, h = 0, hashlib.sha256()
    while True:
        chunk = r.read(MB)
        if not chunk:
            break
        got += len(chunk)
    assert r.status == 200 and got == size
    down_s = time.time() - started

    block = os.urandom(MB)
    expected_sha = hashlib.sha256()
    for _ in range(100):
        expected_sha.update(block)

    def body():
        for _ in range(100):
            yield block
    started = time.time()
    conn = http.client.HTTPConnection("127.0.0.1", three.http, timeout=60)
    conn.request("POST", "/sha", body=body(), headers={"Host": f"beta.{DOMAIN}", "Content-Length": str(size)})
    r = conn.getresponse()
    assert r.status == 200 and r.read().decode() == expected_sha.hexdigest()
    up_s = time.time() - started
    rss_after, peak = three.server.rss_kib()
    print(f"\n100 MB down {down_s:.2f} s, up {up_s:.2f} s; server RSS {rss_before} -> {rss_after} KiB, peak {peak} KiB")
    assert peak < 200 * 1024, peak


def test_websocket_echo_through_a_tunnel(three):
    s = socket.create_connection(("127.0.0.1", three.http), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /ws HTTP/1.1\r\nHost: gamma.{DOMAIN}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    f = s.makefile("rb")
    status = f.readline()
    assert b" 101 " in status, status
    while f.readline() not in (b"\r\n", b""):
        pass
    for payload in (b"hello", os.urandom(300), os.urandom(70000)):
        ws_write_frame(s.sendall, 0x2, payload)
        opcode, echoed = ws_read_frame(f.read)
        assert opcode == 0x2 and echoed == payload
    ws_write_frame(s.sendall, 0x8, b"")
    assert ws_read_frame(f.read)[0] == 0x8
    s.close()


def test_errors_404_400_421_431_408_502_504(three):
    # 404: unknown name, another domain, the bare domain.
    assert request(three.http, "nobody", "/") == (404, b"no tunnel with this name\n")
    out, _ = raw_exchange(three.http, b"GET / HTTP/1.1\r\nHost: example.org\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 404 ")
    # 400: no Host, a bad name, garbage.
    out, _ = raw_exchange(three.http, b"GET / HTTP/1.0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400 ") and out.endswith(b"missing Host header\n")
    out, _ = raw_exchange(three.http, f"GET / HTTP/1.1\r\nHost: bad_name.{DOMAIN}\r\n\r\n".encode())
    assert out.startswith(b"HTTP/1.1 400 ") and b"bad name" in out
    out, _ = raw_exchange(three.http, b"\x16\x03\x01 not http\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400 ")
    # 421: a later request on the connection names another tunnel; the first is answered.
    out, _ = raw_exchange(three.http, (f"GET /n/1 HTTP/1.1\r\nHost: alpha.{DOMAIN}\r\n\r\n"
                                       f"GET /n/2 HTTP/1.1\r\nHost: beta.{DOMAIN}\r\n\r\n").encode())
    assert out.startswith(b"HTTP/1.1 200 ") and expected(b"alpha", 1) in out
    assert b"HTTP/1.1 421 Misdirected Request" in out and expected(b"beta", 2) not in out
    # 431: a head over 64 KiB.
    out, _ = raw_exchange(three.http, f"GET / HTTP/1.1\r\nHost: alpha.{DOMAIN}\r\nX: {'y' * 70000}\r\n\r\n".encode())
    assert out.startswith(b"HTTP/1.1 431 ")
    # 408: slowloris heads (50 of them), cut off after the (shortened) head timeout, holding
    # nobody else.
    slow = []
    for i in range(50):
        c = socket.create_connection(("127.0.0.1", three.http), timeout=10)
        c.sendall(f"GET / HTTP/1.1\r\nHost: alpha.{DOMAIN}\r\nX-Slow: {i}".encode())
        slow.append(c)
    started = time.time()
    assert request(three.http, "alpha", "/n/5") == (200, expected(b"alpha", 5))
    # Served before any slow head timed out (whatever the machine's load).
    assert select.select(slow, [], [], 0)[0] == [] or time.time() - started < HEAD_TIMEOUT_MS / 1000
    for c in slow:
        data = c.recv(4096)
        assert data.startswith(b"HTTP/1.1 408 "), data
        c.close()
    waited = time.time() - started
    assert HEAD_TIMEOUT_MS / 1000 - 0.5 < waited < HEAD_TIMEOUT_MS / 1000 + 2
    # 502: a name in the tokens file without a client; a client whose local service is down.
    assert request(three.http, "idle", "/") == (502, b"tunnel has no connected client\n")
    three.client("down", free_port(), TOKENS["down"])
    assert request(three.http, "down", "/") == (502, b"local service refused or reset the connection\n")
    # 504: the local service does not answer in time; the tunnel stays up.
    started = time.time()
    status, body = request(three.http, "alpha", "/slow/5")
    assert (status, body) == (504, b"local service sent no response in time\n")
    assert time.time() - started < RESPONSE_TIMEOUT_MS / 1000 + 1.5
    assert request(three.http, "alpha", "/n/6") == (200, expected(b"alpha", 6))
    for kind in ("not_found", "no_client", "bad_gateway", "timeout", "misdirected"):
        assert metric(three, f'zrc_tunnel_errors_total{{kind="{kind}"}}') >= 1, kind
    out = three.server.output()
    assert "status=504" in out and "status=421" in out and "status=408" in out


def test_killed_client_keeps_its_name_and_a_newer_client_replaces_the_older(three):
    alpha_client = three.procs[1]
    alpha_port = int(alpha_client.args[alpha_client.args.index("--local-port") + 1])
    # The client vanishes mid-response: the public connection is closed before the body ends.
    s = socket.create_connection(("127.0.0.1", three.http), timeout=10)
    s.sendall(f"GET /bytes/{500 * MB} HTTP/1.1\r\nHost: alpha.{DOMAIN}\r\n\r\n".encode())
    got = len(s.recv(65536))
    alpha_client.p.kill()
    alpha_client.wait()
    try:
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            got += len(chunk)
    except ConnectionResetError:
        pass
    s.close()
    assert 0 < got < 500 * MB
    deadline = time.time() + 5
    while request(three.http, "alpha", "/n/1")[0] != 502 and time.time() < deadline:
        time.sleep(0.05)
    assert request(three.http, "alpha", "/n/1") == (502, b"tunnel has no connected client\n")
    three.client("alpha", alpha_port, TOKENS["alpha"])
    assert request(three.http, "alpha", "/n/2") == (200, expected(b"alpha", 2))
    assert "name held" in three.server.output()

    # A second client for beta with the same token replaces the first, which exits 0.
    first = next(p for p in three.procs if "beta" in p.args)
    other = three.service(b"beta2")
    three.client("beta", other.port, TOKENS["beta"])
    code, out = first.wait()
    assert code == 0 and "replaced by a newer client" in out, out
    assert request(three.http, "beta", "/n/3") == (200, expected(b"beta2", 3))

    # A token for another name is refused, without retrying.
    denied = three.spawn("client", "--server", f"127.0.0.1:{three.control}", "--local-port", str(other.port),
                         "--name", "gamma", "--token", TOKENS["beta"])
    code, out = denied.wait()
    assert code == 1 and "name not allowed for this token" in out, out
    assert out.count("refused") == 1
    assert request(three.http, "gamma", "/n/4") == (200, expected(b"gamma", 4))
    # A bad name is refused by the client itself.
    r = subprocess.run([relay_binary(), "tunnel", "client", "--server", "127.0.0.1:1", "--name", "Bad_Name"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "bad name" in r.stderr


def test_random_names_hold_expiry_and_reconnect_after_a_server_restart(cluster_factory):
    c = cluster_factory(extra=("--token", "shared", "--test-hold-ms", "1500"))
    svc = c.service(b"rnd")
    client = c.client(None, svc.port, "shared")
    url = next(line for line in client.lines if "tunnel ready: " in line).split("tunnel ready: ")[1].strip()
    name = url.split("//")[1].split(".")[0]
    assert len(name) == 8 and url == f"http://{name}.{DOMAIN}:{c.http}/"
    assert request(c.http, name, "/n/1") == (200, expected(b"rnd", 1))
    named = c.client("fixed", svc.port, "shared")
    # A wrong shared token is denied.
    code, out = c.spawn("client", "--server", f"127.0.0.1:{c.control}", "--local-port", str(svc.port), "--name", "x",
                        "--token", "wrong").wait()
    assert code == 1 and "bad token" in out
    # The server restarts: the named client reconnects by itself (backoff from 0.5 s).
    c.server.stop()
    c.server = c.start_server()
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            if request(c.http, "fixed", "/n/2", timeout=2) == (200, expected(b"rnd", 2)):
                break
        except OSError:
            pass
        time.sleep(0.1)
    assert request(c.http, "fixed", "/n/2") == (200, expected(b"rnd", 2))
    assert named.alive() and "reconnecting" in named.output()
    # Its client gone, a name is held (502) and then freed (404).
    named.p.kill()
    named.wait()
    time.sleep(0.3)
    assert request(c.http, "fixed", "/")[0] == 502
    time.sleep(2.0)
    assert request(c.http, "fixed", "/")[0] == 404
    assert "held tunnel name freed" in c.server.output()


def make_cert(tmp, cn, san):
    key, crt = tmp / f"{cn}.key", tmp / f"{cn}.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(crt), "-days", "2", "-subj", f"/CN={cn}", "-addext", f"subjectAltName={san}"],
                   check=True, capture_output=True)
    return crt, key


def test_tls_control_connection_and_https_by_sni(cluster_factory, tmp_path):
    ctl_crt, ctl_key = make_cert(tmp_path, "control", "IP:127.0.0.1,DNS:localhost")
    pub_crt, pub_key = make_cert(tmp_path, "wild", f"DNS:*.{DOMAIN}")
    https = free_port()
    c = cluster_factory(extra=("--token", "s", "--tls-cert", str(ctl_crt), "--tls-key", str(ctl_key),
                               "--https-port", str(https), "--public-cert", str(pub_crt), "--public-key", str(pub_key)))
    assert "clear text" not in c.server.output()
    one, two = c.service(b"one"), c.service(b"two")
    c.client("one", one.port, "s", "--tls-ca", str(ctl_crt))
    c.client("two", two.port, "s", "--insecure")
    # Without TLS the client cannot talk to a TLS control port.
    code, out = c.spawn("client", "--server", f"127.0.0.1:{c.control}", "--local-port", str(one.port), "--name", "x",
                        "--token", "s", "--no-reconnect").wait(20)
    assert code == 1 and "clear text" in out
    ctx = ssl.create_default_context(cafile=str(pub_crt))
    for name, tag in (("one", b"one"), ("two", b"two")):
        conn = http.client.HTTPConnection("127.0.0.1", https, timeout=10)
        conn.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", https)), server_hostname=f"{name}.{DOMAIN}")
        conn.request("GET", "/headers", headers={"Host": f"{name}.{DOMAIN}"})
        r = conn.getresponse()
        assert r.status == 200 and json.loads(r.read())["X-Forwarded-Proto"] == ["https"]
        conn.request("GET", "/n/9", headers={"Host": f"{name}.{DOMAIN}"})
        r = conn.getresponse()
        assert r.read() == expected(tag, 9)
        conn.close()
    # SNI names one tunnel, Host another: 421.
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", https), timeout=10), server_hostname=f"one.{DOMAIN}")
    s.sendall(f"GET / HTTP/1.1\r\nHost: two.{DOMAIN}\r\n\r\n".encode())
    assert s.recv(100).startswith(b"HTTP/1.1 421 ")
    s.close()
    # A caller that never sends a ClientHello is closed after the head timeout.
    started = time.time()
    silent = socket.create_connection(("127.0.0.1", https), timeout=10)
    assert silent.recv(10) == b""
    assert time.time() - started < HEAD_TIMEOUT_MS / 1000 + 2
    silent.close()
    # The plain HTTP port still serves.
    assert request(c.http, "one", "/n/3") == (200, expected(b"one", 3))


def test_usage_errors_and_a_bad_tokens_file(tmp_path):
    for args in (["server", "--http-port", "0"], ["server", "--http-port", "0", "--domain", DOMAIN, "--public-port", "0"],
                 ["server", "--tokens-file", "f"], ["server", "--https-port", "0", "--domain", DOMAIN],
                 ["server", "--http-port", "0", "--domain", "bad_domain"],
                 ["server", "--http-port", "0", "--domain", DOMAIN, "--token", "a", "--tokens-file", "f"],
                 ["server", "--http-port", "0", "--domain", DOMAIN, "--token", "-"],
                 ["client", "--server", "127.0.0.1:1", "--tls-ca", "x", "--insecure"],
                 ["client", "--server", "127.0.0.1:1", "--name", "-x"]):
        r = subprocess.run([relay_binary(), "tunnel", *args], capture_output=True, text=True, timeout=10)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
    r = subprocess.run([relay_binary(), "tunnel", "server", "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and "--http-port" in r.stdout and "--tokens-file" in r.stdout and "--domain" in r.stdout
    assert "--test-" not in r.stdout
    bad = tmp_path / "tokens"
    bad.write_text("alpha tok-secret-1\nBad_Name tok-secret-2\n")
    r = subprocess.run([relay_binary(), "tunnel", "server", "--listen-addr", "127.0.0.1", "--control-port", "0", "--http-port", "0",
                        "--domain", DOMAIN, "--tokens-file", str(bad)], capture_output=True, text=True, timeout=10)
    assert r.returncode == 1 and "line 2" in r.stderr and "tok-secret" not in r.stderr, r.stderr
